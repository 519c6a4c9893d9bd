//! The validation cases of issue 26's probe: sizes in a reference case's config (bug 4), count
//! flags without a range (bug 5), guidance scales the loss cannot compute (bug 6), and the
//! doubtful cases decided there: misshapen or superfluous tensors and times out of range in a
//! reference case, `sample --guidance` outside the trained scales, `--class all` with fewer
//! samples than classes, a checkpoint's weights beyond what its precision evaluates, and messages
//! that printed Rust internals. Each refusal is exit 2, one `error:` line naming the flag, file or
//! tensor, and the disk unchanged.

use meanflow::io::tensor_file::{StoredTensor, TensorFile};
use ndarray::Array2;
use std::path::{Path, PathBuf};

mod common;

use common::{refused as rejected, run};

fn data_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("{name}.safetensors"))
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `meanflow verify` of `file` refuses it: exit 2, one line naming the file and the needles,
/// nothing on stdout (no case was read, so no summary), the disk unchanged.
fn verify_refuses(file: &TensorFile, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    file.write(&dir.join("case.safetensors"), false).unwrap();
    let line = rejected(dir, &["verify", "case.safetensors"], needles);
    assert!(line.starts_with("error: case.safetensors: "), "{line}");
}

fn case(name: &str) -> TensorFile {
    TensorFile::read(&data_file(name)).unwrap()
}

/// `name` with its config edited by `f`.
fn with_config(name: &str, f: impl Fn(&mut serde_json::Value)) -> TensorFile {
    let mut file = case(name);
    let mut config: serde_json::Value = serde_json::from_str(&file.metadata["config"]).unwrap();
    f(&mut config);
    file.metadata.insert("config".into(), config.to_string());
    file
}

/// A stored tensor of `shape` (rank 1 or 2) with the values 0.1, 0.2, ...
fn tensor(shape: &[usize]) -> StoredTensor {
    let (rows, cols) = match shape {
        [n] => (1, *n),
        [m, n] => (*m, *n),
        _ => panic!("rank 1 or 2"),
    };
    StoredTensor {
        shape: shape.to_vec(),
        values: Array2::from_shape_fn((rows, cols), |(i, j)| 0.1 * (i * cols + j + 1) as f64),
        was_f32: false,
    }
}

/// Bug 4: a reference case's config goes through a checkpoint's checks and caps before anything
/// is allocated (depth 1e9 aborted on a 40 GB allocation, 2^59 panicked on capacity overflow).
#[test]
fn a_reference_case_config_is_validated_as_a_checkpoints() {
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            serde_json::json!({"depth": 1_000_000_000u64}),
            "config: depth must be at most 1024, got 1000000000",
        ),
        (
            serde_json::json!({"depth": 1u64 << 59}),
            "config: depth must be at most 1024",
        ),
        (
            serde_json::json!({"width": 1u64 << 40}),
            "give over 134217728 parameters",
        ),
        (
            serde_json::json!({"d": 1u64 << 21}),
            "config: data dimension must be at most 1048576",
        ),
        (
            serde_json::json!({"d": 1u64 << 20, "depth": 0}),
            "depth 0 on 1048576-D data",
        ),
        (
            serde_json::json!({"batch": 1u64 << 40}),
            "values per activation buffer",
        ),
        (
            serde_json::json!({"classes": 2000, "class_dim": 4}),
            "classes must be at most 1000",
        ),
        (serde_json::json!({"width": 0}), "width must be at least 1"),
    ];
    for (edit, needle) in cases {
        let file = with_config("mf_silu", |c| {
            for (k, v) in edit.as_object().unwrap() {
                c[k] = v.clone();
            }
        });
        verify_refuses(&file, &[needle]);
    }
}

/// Doubtful case decided: a tensor of the wrong shape, one the config does not have, or a time
/// out of range is refused naming the tensor and what was expected (`expect.u` as [3, 8] or [24]
/// was compared element by element, an extra parameter ignored, r > t computed).
#[test]
fn reference_case_tensors_have_the_shapes_and_ranges_of_their_config() {
    // mf_silu: d = 2, width 16, depth 3, batch 8, heads u.
    let edited = |f: &dyn Fn(&mut TensorFile)| {
        let mut file = case("mf_silu");
        f(&mut file);
        file
    };
    let cases: Vec<(TensorFile, Vec<&str>)> = vec![
        (
            edited(&|f| {
                f.tensors.insert("expect.u".into(), tensor(&[2, 8]));
            }),
            vec!["tensor 'expect.u' has shape [2, 8], expected [8, 2]"],
        ),
        (
            edited(&|f| {
                f.tensors.insert("expect.u".into(), tensor(&[16]));
            }),
            vec!["tensor 'expect.u' has shape [16], expected [8, 2]"],
        ),
        (
            edited(&|f| {
                f.tensors.insert("expect.ell".into(), tensor(&[8, 2]));
            }),
            vec!["tensor 'expect.ell' has shape [8, 2], expected [8] or [8, 1]"],
        ),
        (
            edited(&|f| {
                f.tensors.insert("expect.loss".into(), tensor(&[2]));
            }),
            vec!["tensor 'expect.loss' has shape [2], expected [1] or [1, 1]"],
        ),
        (
            edited(&|f| {
                f.tensors
                    .insert("expect.grad.trunk.0.weight".into(), tensor(&[4, 16]));
            }),
            vec!["tensor 'expect.grad.trunk.0.weight' has shape [4, 16], expected [16, 4]"],
        ),
        (
            edited(&|f| {
                f.tensors.insert("trunk.3.weight".into(), tensor(&[16, 16]));
            }),
            vec![
                "unexpected tensor 'trunk.3.weight'",
                "depth 3",
                "trunk.0 to trunk.2, u_head",
            ],
        ),
        (
            edited(&|f| {
                f.tensors.insert("v_head.bias".into(), tensor(&[2]));
            }),
            vec!["unexpected tensor 'v_head.bias'", "heads u"],
        ),
        (
            edited(&|f| {
                f.tensors.insert("expect.v_head".into(), tensor(&[8, 2]));
            }),
            vec!["unexpected tensor 'expect.v_head'", "heads u"],
        ),
        (
            edited(&|f| {
                f.tensors.insert("expect.grad.bogus".into(), tensor(&[1]));
            }),
            vec!["unexpected tensor 'expect.grad.bogus'"],
        ),
        (
            edited(&|f| {
                let t = f.tensors.get_mut("batch.t").unwrap();
                t.values[[2, 0]] = 1.5;
            }),
            vec!["tensor 'batch.t': row 2 holds 1.5, outside [0, 1]"],
        ),
        (
            edited(&|f| {
                let t = f.tensors.get_mut("batch.t").unwrap();
                t.values[[1, 0]] = -0.25;
            }),
            vec!["tensor 'batch.t': row 1 holds -0.25, outside [0, 1]"],
        ),
        (
            edited(&|f| {
                let t = f.tensors["batch.t"].values[[5, 0]];
                f.tensors.get_mut("batch.r").unwrap().values[[5, 0]] = t + 0.125;
            }),
            vec!["tensor 'batch.r': row 5 holds", "r is in [0, t]"],
        ),
        (
            edited(&|f| {
                f.tensors.get_mut("batch.r").unwrap().values[[0, 0]] = -0.5;
            }),
            vec!["tensor 'batch.r': row 0 holds -0.5", "r is in [0, t]"],
        ),
    ];
    for (file, needles) in cases {
        verify_refuses(&file, &needles);
    }
    // [B] and [B, 1] are both per-row shapes, as documented; the unedited cases all load.
    let mut file = case("mf_silu");
    let ell = file.tensors["expect.ell"].clone();
    let n = ell.values.len();
    file.tensors.insert(
        "expect.ell".into(),
        StoredTensor {
            shape: vec![n, 1],
            values: ell.values.into_shape_with_order((n, 1)).unwrap(),
            was_f32: false,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    file.write(&dir.path().join("column.safetensors"), false)
        .unwrap();
    let out = ok(dir.path(), &["verify", "column.safetensors"]);
    assert!(out.contains("1 of 1 cases within"), "{out}");
}

/// Bug 5: `bench --repeats 1e11` aborted on the allocation of its timings, 2^61 panicked; every
/// count flag now has a range, refused when the flags are read.
#[test]
fn count_flags_are_refused_outside_their_range() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    for (args, needle) in [
        (
            &["bench", "--repeats", "100000000000"][..],
            "invalid value '100000000000' for '--repeats <REPEATS>': must be between 1 and 100000",
        ),
        (
            &["bench", "--repeats", "2305843009213693952"],
            "'--repeats <REPEATS>': must be between 1 and 100000",
        ),
        (
            &["bench", "--repeats", "0"],
            "'--repeats <REPEATS>': must be between 1 and 100000",
        ),
        (
            &["bench", "--warmup", "18446744073709551615"],
            "'--warmup <WARMUP>': must be between 0 and 100000",
        ),
        (
            &["bench", "--threads", "1,512"],
            "'--threads <THREADS>': must be between 1 and 256",
        ),
        (
            &["train", "--threads", "0"],
            "'--threads <THREADS>': must be between 1 and 256",
        ),
        (
            &["train", "--batch", "100000000000"],
            "'--batch <BATCH>': must be between 1 and 16777216 (2^24)",
        ),
        (
            &["train", "--width", "-3"],
            "'--width <WIDTH>': not a whole number; must be between 1 and 1048576 (2^20)",
        ),
        (
            &["train", "--depth", "1025"],
            "'--depth <DEPTH>': must be between 1 and 1024",
        ),
        (
            &["train", "--eval-samples", "99999999999999999999999"],
            "'--eval-samples <N>': must be between 0 and 16777216 (2^24)",
        ),
        (
            &["train", "--log-every", "0"],
            "'--log-every <STEPS>': must be between 1 and 9007199254740992 (2^53)",
        ),
        (
            &["sample", "--checkpoint", "c", "--out", "s.csv", "--n", "0"],
            "'--n <N>': must be between 1 and 268435456 (2^28)",
        ),
        (
            &[
                "sample",
                "--checkpoint",
                "c",
                "--out",
                "s.csv",
                "--euler",
                "0",
            ],
            "'--euler <K>': must be between 1 and 1048576 (2^20)",
        ),
    ] {
        rejected(dir, args, &[needle]);
    }
    // train and bench say the same of --threads.
    let train = rejected(dir, &["train", "--threads", "300"], &[]);
    let bench = rejected(dir, &["bench", "--threads", "300"], &[]);
    assert_eq!(train, bench);
}

/// Message fix: a number beyond f64's range is out of range, naming the flag, not "inf".
#[test]
fn a_number_beyond_f64_is_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    for args in [
        &["train", "--lr", "1e400"][..],
        &["train", "--time-mu", "-1e400"],
        &["verify", "--tolerance", "1e400", "x.safetensors"],
        &[
            "sample",
            "--checkpoint",
            "c",
            "--out",
            "s.csv",
            "--guidance",
            "1e400",
        ],
    ] {
        let flag = args[args.len() - 2];
        let flag = if args[0] == "verify" {
            "--tolerance"
        } else {
            flag
        };
        let e = rejected(
            dir,
            args,
            &[flag, "is out of range (max 1.8e308 in magnitude)"],
        );
        assert!(!e.contains("inf"), "{e}");
    }
    rejected(
        dir,
        &["train", "--dataset", "digits", "--guidance", "target:1e400"],
        &["--guidance target:1e400: 1e400 is out of range"],
    );
}

/// A labelled CSV of three classes, 2-D.
fn labelled_csv(dir: &Path) {
    let mut text = String::new();
    for i in 0..60 {
        let c = i % 3;
        let a = i as f64 * 0.37;
        text.push_str(&format!(
            "{},{},{c}\n",
            c as f64 + a.sin() * 0.2,
            a.cos() * 0.2
        ));
    }
    std::fs::write(dir.join("three.csv"), text).unwrap();
}

const TINY: &[&str] = &[
    "--steps",
    "2",
    "--batch",
    "8",
    "--width",
    "8",
    "--depth",
    "1",
    "--eval-every",
    "0",
    "--log-every",
    "1",
];

/// Bug 6: `--guidance target:1e39` passed, made the run folder and failed at step 1 with NaN
/// (1e30: an infinite loss). w and w_max are in (0, 1e6], refused before anything is written.
#[test]
fn guidance_scales_beyond_what_the_loss_computes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    labelled_csv(dir);
    for (guidance, needle) in [
        (
            "target:1e39",
            "guidance scale w = 1e39 is out of range (0, 1e6]",
        ),
        (
            "target:1e30",
            "guidance scale w = 1e30 is out of range (0, 1e6]",
        ),
        ("target:2:1", "kappa = 1 is out of range [0, 1)"),
        ("input:2e6", "w_max = 2e6 is out of range (0, 1e6]"),
    ] {
        let mut args = vec![
            "train",
            "--dataset",
            "three.csv",
            "--label-column",
            "-1",
            "--out",
            "run",
            "--guidance",
            guidance,
        ];
        args.extend_from_slice(TINY);
        rejected(dir, &args, &[&format!("--guidance {guidance}: "), needle]);
    }
}

/// Doubtful cases decided: `sample --guidance` outside [1, 1 + w_max], the scales a guidance-input
/// model was trained on, is refused (3.5 and 1e300 for `input:2`); `--class all` (or a list) with
/// fewer samples than classes is refused rather than leaving classes without samples.
#[test]
fn sampling_stays_within_the_trained_scales_and_samples_every_class() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    labelled_csv(dir);
    let mut args = vec![
        "train",
        "--dataset",
        "three.csv",
        "--label-column",
        "-1",
        "--out",
        "run",
        "--guidance",
        "input:2",
    ];
    args.extend_from_slice(TINY);
    ok(dir, &args);
    let ck = "run/checkpoint.safetensors";
    let sample = |extra: &[&str]| {
        let mut a = vec!["sample", "--checkpoint", ck, "--out", "s.csv"];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let refuse = |extra: &[&str], needles: &[&str]| {
        let a = sample(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        rejected(dir, &a, needles);
    };
    for w in ["3.5", "1e300"] {
        refuse(
            &["--guidance", w, "--class", "0"],
            &[
                &format!("--guidance {}", w.parse::<f64>().unwrap()),
                "outside [1, 3], the scales the model was trained on (--guidance input:2)",
            ],
        );
    }
    refuse(&["--guidance", "0.5"], &["--guidance 0.5", ">= 1"]);
    refuse(
        &["--class", "all", "--n", "2"],
        &[
            "--n 2 is fewer than the 3 classes of --class all",
            "--n 3 or more",
        ],
    );
    refuse(
        &["--class", "0,2", "--n", "1"],
        &["--n 1 is fewer than the 2 classes --class 0,2 names"],
    );
    for extra in [
        &["--guidance", "3", "--class", "all", "--n", "3"][..],
        &["--guidance", "1", "--class", "1"],
    ] {
        let a = sample(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        ok(dir, &a);
    }
}

/// Doubtful case decided: a checkpoint whose weights (or EMA) exceed 2^-10 sqrt(MAX) of its
/// precision is refused by the parser, so `sample` and `train --resume` say the same (exit 2;
/// it was exit 1 for sample and a resume to exit 0 with `SW1 NaN`).
#[test]
fn weights_beyond_the_precision_are_refused_alike_by_sample_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut args = vec!["train", "--out", "run"];
    args.extend_from_slice(TINY);
    ok(dir, &args);
    let path = dir.join("run/checkpoint.safetensors");
    let good = TensorFile::read(&path).unwrap();
    for (name, value) in [("ema.trunk.0.weight", 3e38), ("u_head.bias", -1e17)] {
        let mut bad = good.clone();
        bad.tensors.get_mut(name).unwrap().values[[0, 0]] = value;
        std::fs::write(&path, bad.to_bytes(true)).unwrap();
        let needles = [
            "run/checkpoint.safetensors: tensor",
            &format!("'{name}' holds {value:.3e}, beyond 1.8e16"),
            "of f32",
        ];
        let from_sample = rejected(
            dir,
            &[
                "sample",
                "--checkpoint",
                "run/checkpoint.safetensors",
                "--out",
                "s.csv",
            ],
            &needles,
        );
        let from_resume = rejected(dir, &["train", "--resume", "run", "--steps", "4"], &needles);
        assert_eq!(from_sample, from_resume);
    }
}

/// Message fix: a file of another format is named in plain words, not `Some("...")`.
#[test]
fn a_reference_case_given_as_a_checkpoint_is_named_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut file = case("mf_silu");
    file.metadata
        .insert("format".into(), "meanflow-golden-v1".into());
    file.write(&dir.join("case.safetensors"), false).unwrap();
    rejected(
        dir,
        &["sample", "--checkpoint", "case.safetensors", "--out", "s.csv"],
        &[
            "case.safetensors: not a meanflow checkpoint (metadata 'format' is 'meanflow-golden-v1', a reference case, which `meanflow verify` reads; expected 'meanflow-checkpoint-v2')",
        ],
    );
    let file = case("mf_silu");
    file.write(&dir.join("plain.safetensors"), false).unwrap();
    rejected(
        dir,
        &[
            "sample",
            "--checkpoint",
            "plain.safetensors",
            "--out",
            "s.csv",
        ],
        &["its metadata has no 'format' entry"],
    );
}
