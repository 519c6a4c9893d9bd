//! The six reference cases in tests/data, computed by an independent PyTorch implementation:
//! every expected tensor, gradients included, reproduced in f64 within GOLDEN_REL_TOL.

use meanflow::verify::check::GOLDEN_REL_TOL;
use meanflow::verify::reference::ReferenceCase;
use std::path::PathBuf;

fn case(name: &str) -> ReferenceCase {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("{name}.safetensors"));
    ReferenceCase::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn check(name: &str) {
    let c = case(name);
    let errors = c.compare();
    assert!(
        errors.len() >= 11 + 2 * c.params.named_tensors().len() / 2,
        "{name}: too few expected quantities"
    );
    let worst = errors
        .iter()
        .max_by(|a, b| a.max_rel.total_cmp(&b.max_rel))
        .unwrap();
    println!(
        "{name}: {} quantities, worst {} rel {:.2e} abs {:.2e}",
        errors.len(),
        worst.name,
        worst.max_rel,
        worst.max_abs
    );
    for e in &errors {
        assert!(
            e.max_rel <= GOLDEN_REL_TOL,
            "{name}: {} relative error {:.3e} (abs {:.3e})",
            e.name,
            e.max_rel,
            e.max_abs
        );
    }
}

#[test]
fn mf_silu() {
    check("mf_silu");
}
#[test]
fn imf_silu() {
    check("imf_silu");
}
#[test]
fn imf_exact_silu() {
    check("imf_exact_silu");
}
#[test]
fn imf_vhead_tanh() {
    check("imf_vhead_tanh");
}
#[test]
fn mf_exact_tanh() {
    check("mf_exact_tanh");
}
#[test]
fn blend_gelu() {
    check("blend_gelu");
}
