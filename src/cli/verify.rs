//! `meanflow verify`: recompute reference cases (see tests/data/README.md) and compare.
//!
//! The error of a quantity is `max |actual - expected| / max(max |expected|, 1e-8)`
//! ([`meanflow::verify::check`]'s relative error); a case passes when every quantity is within the
//! tolerance. Exit 0 if all pass, 1 if one fails, 2 if a file cannot be loaded.

use super::output::{errln, outln};
use super::{CliError, CliResult, EXIT_FAILED, EXIT_USAGE};
use clap::Args;
use meanflow::verify::check::GOLDEN_REL_TOL;
use meanflow::verify::reference::ReferenceCase;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Reference case files (.safetensors)
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Largest relative error that passes
    #[arg(long, allow_hyphen_values = true, default_value_t = GOLDEN_REL_TOL, value_parser = super::common::number)]
    pub tolerance: f64,
}

/// `meanflow verify`.
pub fn run(args: VerifyArgs) -> CliResult<i32> {
    let tol = args.tolerance;
    if !(tol >= 0.0 && tol.is_finite()) {
        return Err(CliError::usage(format!(
            "--tolerance must be finite and >= 0, got {tol}"
        )));
    }
    let (mut failed, mut unreadable) = (0usize, 0usize);
    for path in &args.files {
        let case = match ReferenceCase::load(path) {
            Ok(c) => c,
            Err(e) => {
                errln!("error: {e}");
                unreadable += 1;
                continue;
            }
        };
        let errors = case.compare();
        let width = errors
            .iter()
            .map(|e| e.name.len())
            .max()
            .unwrap_or(8)
            .max(8);
        outln!("{} ({})", case.name, path.display());
        outln!(
            "  {:<width$}  {:>10}  {:>10}",
            "quantity",
            "max abs",
            "max rel"
        );
        let mut case_failed = 0;
        for e in &errors {
            // NaN errors fail too.
            let bad = e.max_rel.is_nan() || e.max_rel > tol;
            case_failed += usize::from(bad);
            outln!(
                "  {:<width$}  {:>10.3e}  {:>10.3e}{}",
                e.name,
                e.max_abs,
                e.max_rel,
                if bad { "  FAIL" } else { "" }
            );
        }
        let worst = errors.iter().map(|e| e.max_rel).fold(0.0f64, f64::max);
        if case_failed == 0 {
            outln!(
                "  pass: {} quantities, worst relative error {worst:.3e} <= {tol:e}",
                errors.len()
            );
        } else {
            outln!(
                "  FAIL: {case_failed} of {} quantities above the tolerance {tol:e}",
                errors.len()
            );
            failed += 1;
        }
    }
    let total = args.files.len();
    // With no case read there is nothing to sum up: the error lines say it all, and bad input
    // leaves stdout empty.
    if unreadable < total {
        outln!(
            "{} of {total} cases within {tol:e} ({failed} above it, {unreadable} unreadable)",
            total - failed - unreadable
        );
    }
    Ok(if unreadable > 0 {
        EXIT_USAGE
    } else if failed > 0 {
        EXIT_FAILED
    } else {
        0
    })
}
