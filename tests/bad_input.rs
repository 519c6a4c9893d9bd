//! Bad input to the `meanflow` binary, case by case from issue 7: each gives exit code 2, one line
//! `error: ...` that names the problem and where (the file, the flag, the tensor), and leaves the
//! disk as it was: every file and folder under the test's scratch folder is compared, bytes and
//! all, before and after. (tests/cli.rs has more flag cases; tests/data_files.rs and
//! tests/fuzz_regressions.rs check the readers' errors one level down.)

use meanflow::io::tensor_file::TensorFile;
use meanflow::train::checkpoint::Checkpoint;
use serde_json::Value;
use std::path::{Path, PathBuf};

mod common;

use common::{refused as rejected, succeeds as ok};

fn scratch(name: &str) -> PathBuf {
    common::scratch("bad_input", name)
}

const TINY: &[&str] = &[
    "--batch",
    "16",
    "--width",
    "8",
    "--depth",
    "2",
    "--log-every",
    "5",
    "--eval-every",
    "0",
    "--checkpoint-every",
    "10",
];

/// A tiny run into `out`; `extra` flags replace those of [`TINY`].
fn train(dir: &Path, out: &str, steps: &str, extra: &[&str]) {
    let mut args = vec!["train", "--out", out, "--steps", steps];
    for pair in TINY.chunks(2) {
        if !extra.contains(&pair[0]) {
            args.extend_from_slice(pair);
        }
    }
    args.extend_from_slice(extra);
    ok(dir, &args);
}

fn npy(major: u8, dict: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[major, 0]);
    let header = format!("{dict}\n");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn f64s(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn bad_data_files() {
    let dir = scratch("data");
    let dict = |descr: &str, shape: &str| {
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}")
    };
    let files: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("empty.csv", b"".to_vec(), &["empty file"]),
        ("header.csv", b"x,y\n".to_vec(), &["header only"]),
        (
            "ragged.csv",
            b"1,2\n3,4\n5\n".to_vec(),
            &["line 3", "ragged row with 1 fields, expected 2"],
        ),
        (
            "text.csv",
            b"1,2\n3,abc\n".to_vec(),
            &["line 2, column 2", "non-numeric field \"abc\""],
        ),
        (
            "emptyfield.csv",
            b"1,2\n3,\n".to_vec(),
            &["line 2, column 2", "empty field"],
        ),
        (
            "nan.csv",
            b"1,2\nNaN,4\n".to_vec(),
            &["line 2, column 1", "non-finite"],
        ),
        (
            "inf.csv",
            b"1,2\n3,inf\n".to_vec(),
            &["line 2, column 2", "non-finite"],
        ),
        ("single.csv", b"1,2\n".to_vec(), &["a single data row"]),
        (
            "int.npy",
            npy(1, &dict("<i8", "(2, 1)"), &[0; 16]),
            &["unsupported NPY dtype", "<i8"],
        ),
        (
            "shape.npy",
            npy(1, &dict("<f8", "(2, 1, 1)"), &[0; 16]),
            &["unsupported NPY shape"],
        ),
        (
            "bigendian.npy",
            npy(1, &dict(">f8", "(2, 1)"), &[0; 16]),
            &["byte order", "big-endian"],
        ),
        (
            "truncated.npy",
            npy(1, &dict("<f8", "(3, 2)"), &f64s(&[1.0, 2.0, 3.0])),
            &["truncated NPY file", "needs 48 bytes, found 24"],
        ),
        (
            "lying.npy",
            npy(
                1,
                &dict("<f8", "(4611686018427387904, 4)"),
                &f64s(&[1.0, 2.0]),
            ),
            &["bad NPY header", "too large"],
        ),
        (
            "nan.npy",
            npy(1, &dict("<f8", "(2,)"), &f64s(&[1.0, f64::NAN])),
            &["row 2, column 1", "non-finite"],
        ),
        ("notnpy.npy", b"1,2\n3,4\n".to_vec(), &["bad magic"]),
        ("nul.csv", vec![0u8; 64], &["line 1", "a NUL byte"]),
        (
            "wide.csv",
            {
                let row = vec!["0"; (1 << 20) + 1].join(",");
                format!("{row}\n{row}\n").into_bytes()
            },
            &["1048577 columns", "at most 1048576"],
        ),
    ];
    for (name, bytes, _) in &files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    std::fs::create_dir(dir.join("folder.csv")).unwrap();
    std::fs::write(dir.join("good.csv"), "1,2\n3,4\n5,6\n").unwrap();
    let mut cases: Vec<(&str, &[&str])> = files.iter().map(|(n, _, e)| (*n, *e)).collect();
    cases.push(("missing.csv", &["file not found"]));
    cases.push(("folder.csv", &["cannot read file"]));
    for (name, needles) in cases {
        let mut with_path = vec![name];
        with_path.extend_from_slice(needles);
        rejected(
            &dir,
            &["train", "--out", "run", "--steps", "5", "--dataset", name],
            &with_path,
        );
        rejected(
            &dir,
            &[
                "eval",
                "--samples",
                name,
                "--dataset",
                "two_moons",
                "--json",
                "e.json",
            ],
            &with_path,
        );
        rejected(
            &dir,
            &["eval", "--samples", "good.csv", "--data", name],
            &with_path,
        );
    }
}

#[test]
fn data_whose_dimension_does_not_match() {
    let dir = scratch("dims");
    std::fs::write(dir.join("three.csv"), "1,2,3\n4,5,6\n7,8,9\n").unwrap();
    let points: String = (0..40).map(|i| format!("{i},{}\n", i * i % 7)).collect();
    std::fs::write(dir.join("points.csv"), &points).unwrap();
    rejected(
        &dir,
        &["eval", "--samples", "three.csv", "--dataset", "two_moons"],
        &["dimension mismatch", "three.csv", "3 columns"],
    );
    // A run on a 2-column file; the file then changes to 3 columns: the resume names the file.
    train(&dir, "run", "10", &["--dataset", "points.csv"]);
    let three: String = (0..40).map(|i| format!("{i},{},1\n", i % 5)).collect();
    std::fs::write(dir.join("points.csv"), three).unwrap();
    rejected(
        &dir,
        &["train", "--resume", "run", "--steps", "20"],
        &["points.csv", "changed since the run started", "now 40 x 3"],
    );
    rejected(
        &dir,
        &[
            "train",
            "--resume",
            "run",
            "--steps",
            "20",
            "--dataset",
            "three.csv",
        ],
        &["--dataset", "conflicts"],
    );
}

/// The parts of a safetensors file: its header as JSON and the data bytes.
fn split_safetensors(bytes: &[u8]) -> (serde_json::Map<String, Value>, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header.as_object().unwrap().clone(), bytes[8 + n..].to_vec())
}

fn join_safetensors(header: &serde_json::Map<String, Value>, data: &[u8]) -> Vec<u8> {
    let mut h = serde_json::to_vec(header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out
}

/// A safetensors file of `file`'s tensors, all F32 except `f64_name`, stored as F64.
fn mixed_dtypes(file: &TensorFile, f64_name: &str) -> Vec<u8> {
    use safetensors::tensor::{serialize, Dtype, TensorView};
    let buffers: Vec<(String, Vec<usize>, Vec<u8>, Dtype)> = file
        .tensors
        .iter()
        .map(|(name, t)| {
            let (bytes, dtype) = if name == f64_name {
                (
                    f64s(&t.values.iter().copied().collect::<Vec<_>>()),
                    Dtype::F64,
                )
            } else {
                let b = t
                    .values
                    .iter()
                    .flat_map(|&v| (v as f32).to_le_bytes())
                    .collect();
                (b, Dtype::F32)
            };
            (name.clone(), t.shape.clone(), bytes, dtype)
        })
        .collect();
    let views = buffers.iter().map(|(name, shape, bytes, dtype)| {
        (
            name.clone(),
            TensorView::new(*dtype, shape.clone(), bytes).unwrap(),
        )
    });
    let metadata = file.metadata.clone().into_iter().collect();
    serialize(views, Some(metadata)).unwrap()
}

/// Checkpoint variants: (file name, bytes, what the message must say besides the file name).
fn broken_checkpoints(good: &[u8]) -> Vec<(&'static str, Vec<u8>, Vec<&'static str>)> {
    let file = TensorFile::parse(good, Path::new("x")).unwrap();
    let edit = |f: &dyn Fn(&mut TensorFile)| {
        let mut copy = file.clone();
        f(&mut copy);
        copy.to_bytes(true)
    };
    let header_edit = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let (mut header, data) = split_safetensors(good);
        f(&mut header);
        join_safetensors(&header, &data)
    };
    let config_edit = |f: &dyn Fn(&mut Value)| {
        edit(&|t: &mut TensorFile| {
            let mut config: Value = serde_json::from_str(&t.metadata["config"]).unwrap();
            f(&mut config);
            t.metadata.insert("config".into(), config.to_string());
        })
    };
    let mut flipped = good.to_vec();
    for b in &mut flipped[8..40] {
        *b ^= 0x5a;
    }
    let mut huge_len = good.to_vec();
    huge_len[..8].copy_from_slice(&(1u64 << 62).to_le_bytes());
    vec![
        (
            "truncated.safetensors",
            good[..good.len() / 2].to_vec(),
            vec!["not a valid safetensors file"],
        ),
        (
            "truncated_header.safetensors",
            good[..20].to_vec(),
            vec!["not a valid safetensors file"],
        ),
        (
            "empty.safetensors",
            Vec::new(),
            vec!["not a valid safetensors file"],
        ),
        (
            "corrupted.safetensors",
            flipped,
            vec!["not a valid safetensors file"],
        ),
        (
            "header_length_lies.safetensors",
            huge_len,
            vec!["not a valid safetensors file"],
        ),
        (
            "offsets_lie.safetensors",
            header_edit(&|h| {
                h["trunk.0.bias"]["data_offsets"][1] = Value::from(1u64 << 40);
            }),
            vec!["not a valid safetensors file"],
        ),
        (
            "shape_lies.safetensors",
            header_edit(&|h| {
                h["trunk.0.bias"]["shape"] = serde_json::json!([1u64 << 62, 16]);
            }),
            vec!["not a valid safetensors file"],
        ),
        (
            "missing_tensor.safetensors",
            edit(&|t| {
                t.tensors.remove("u_head.bias");
            }),
            vec!["missing tensor 'u_head.bias'"],
        ),
        (
            "missing_adam.safetensors",
            edit(&|t| {
                t.tensors.remove("adam.v.trunk.1.weight");
            }),
            vec!["missing tensor 'adam.v.trunk.1.weight'"],
        ),
        (
            "extra_tensor.safetensors",
            edit(&|t| {
                let b = t.tensors["trunk.0.bias"].clone();
                t.tensors.insert("bogus.weight".into(), b);
            }),
            vec!["unexpected tensor 'bogus.weight'"],
        ),
        (
            "wrong_shape.safetensors",
            edit(&|t| {
                let w = t.tensors.get_mut("trunk.1.weight").unwrap();
                w.shape = vec![4, 16];
                w.values = w.values.clone().into_shape_with_order((4, 16)).unwrap();
            }),
            vec!["tensor 'trunk.1.weight' has shape [4, 16], expected [8, 8]"],
        ),
        (
            "wrong_rank.safetensors",
            header_edit(&|h| {
                h["u_head.bias"]["shape"] = serde_json::json!([1, 1, 2]);
            }),
            vec!["tensor 'u_head.bias'", "expected 1 or 2 dimensions"],
        ),
        (
            "int_dtype.safetensors",
            header_edit(&|h| {
                h["u_head.bias"]["dtype"] = Value::from("I32");
            }),
            vec!["tensor 'u_head.bias' has dtype I32"],
        ),
        (
            "f64_in_f32.safetensors",
            mixed_dtypes(&file, "trunk.0.bias"),
            vec!["tensor 'trunk.0.bias' is stored as f64", "precision is f32"],
        ),
        (
            "nan_value.safetensors",
            edit(&|t| {
                t.tensors.get_mut("u_head.weight").unwrap().values[[1, 3]] = f64::NAN;
            }),
            vec!["tensor 'u_head.weight'", "non-finite"],
        ),
        (
            "config_width_lies.safetensors",
            config_edit(&|c| c["model"]["width"] = Value::from(12)),
            vec!["tensor 'trunk.0.weight' has shape [8, 4], expected [12, 4]"],
        ),
        (
            "config_depth_lies.safetensors",
            config_edit(&|c| c["model"]["depth"] = Value::from(3)),
            vec!["missing tensor 'trunk.2.weight'"],
        ),
        (
            "config_heads_lie.safetensors",
            config_edit(&|c| c["model"]["heads"] = Value::from("uv")),
            vec!["missing tensor 'v_head.weight'"],
        ),
        (
            "config_huge.safetensors",
            config_edit(&|c| c["model"]["depth"] = Value::from(1u64 << 40)),
            vec!["metadata 'config'", "depth must be at most 1024"],
        ),
        (
            "config_not_json.safetensors",
            edit(&|t| {
                t.metadata.insert("config".into(), "{\"model\": ".into());
            }),
            vec!["metadata 'config'"],
        ),
        (
            "config_missing.safetensors",
            edit(&|t| {
                t.metadata.remove("config");
            }),
            vec!["metadata has no 'config' entry"],
        ),
        (
            "not_a_checkpoint.safetensors",
            edit(&|t| {
                t.metadata.remove("format");
            }),
            vec!["not a meanflow checkpoint"],
        ),
        (
            "bad_step.safetensors",
            edit(&|t| {
                t.metadata.insert("step".into(), "-1".into());
            }),
            vec!["metadata 'step'"],
        ),
        (
            "bad_rng.safetensors",
            edit(&|t| {
                t.metadata
                    .insert("rng_state".into(), "{\"words\": [1]}".into());
            }),
            vec!["metadata 'rng_state'"],
        ),
        // Contents that parse but that no run can have (issue 13).
        (
            "zero_rng.safetensors",
            edit(&|t| {
                t.metadata
                    .insert("rng_state".into(), r#"{"s": [0, 0, 0, 0]}"#.into());
            }),
            vec!["metadata 'rng_state'", "all four words are 0"],
        ),
        (
            "negative_rng_word.safetensors",
            edit(&|t| {
                t.metadata
                    .insert("rng_state".into(), r#"{"s": [1, 2, 3, -4]}"#.into());
            }),
            vec!["metadata 'rng_state'", "-4"],
        ),
        // A checkpoint of the format before the random stream moved to `rand`.
        (
            "old_format.safetensors",
            edit(&|t| {
                t.metadata
                    .insert("format".into(), "meanflow-checkpoint-v1".into());
            }),
            vec![
                "checkpoint format 'meanflow-checkpoint-v1'",
                "reads 'meanflow-checkpoint-v2' only",
            ],
        ),
        (
            "absurd_step.safetensors",
            edit(&|t| {
                t.metadata.insert("step".into(), u64::MAX.to_string());
            }),
            vec!["metadata 'step'", "18446744073709551615 is beyond 2^53"],
        ),
        (
            "ema_without_decay.safetensors",
            config_edit(&|c| c["ema_decay"] = Value::Null),
            vec!["unexpected tensor 'ema.trunk.0.weight'"],
        ),
        (
            "negative_second_moment.safetensors",
            edit(&|t| {
                t.tensors.get_mut("adam.v.trunk.1.weight").unwrap().values[[2, 3]] = -1.0;
            }),
            vec!["tensor 'adam.v.trunk.1.weight' holds -1", "never negative"],
        ),
    ]
}

#[test]
fn bad_checkpoints_for_sample_and_resume() {
    let dir = scratch("checkpoints");
    train(&dir, "run", "12", &[]);
    let good = std::fs::read(dir.join("run/checkpoint.safetensors")).unwrap();
    Checkpoint::parse(&good, Path::new("x")).unwrap();
    std::fs::create_dir(dir.join("cks")).unwrap();
    for (name, bytes, needles) in broken_checkpoints(&good) {
        let path = format!("cks/{name}");
        std::fs::write(dir.join(&path), &bytes).unwrap();
        let mut with_path = vec![path.as_str()];
        with_path.extend_from_slice(&needles);
        rejected(
            &dir,
            &["sample", "--checkpoint", &path, "--out", "s.csv"],
            &with_path,
        );
        // The same file in a run folder: --resume refuses it and changes nothing.
        std::fs::write(dir.join("run/checkpoint.safetensors"), &bytes).unwrap();
        let mut with_path = vec!["run/checkpoint.safetensors"];
        with_path.extend_from_slice(&needles);
        rejected(
            &dir,
            &["train", "--resume", "run", "--steps", "20"],
            &with_path,
        );
    }
    // A valid file whose step is beyond the run's steps (config.json says 12).
    let mut beyond = TensorFile::parse(&good, Path::new("x")).unwrap();
    beyond.metadata.insert("step".into(), "1000".into());
    std::fs::write(
        dir.join("run/checkpoint.safetensors"),
        beyond.to_bytes(true),
    )
    .unwrap();
    for steps in ["20", "5000"] {
        rejected(
            &dir,
            &["train", "--resume", "run", "--steps", steps],
            &[
                "run/checkpoint.safetensors: metadata 'step' is 1000",
                "beyond the run's 12 steps (run/config.json)",
            ],
        );
    }
    std::fs::write(dir.join("run/checkpoint.safetensors"), &good).unwrap();
    // Bookkeeping no run can have.
    for (train_log, needle) in [
        (
            r#"{"steps":500,"skipped":0,"loss":1.0,"loss_u":1.0,"loss_v":0.0,"mse":1.0,"grad_norm":1.0}"#,
            "500 steps and 0 skipped since the last line, more than the checkpoint's 12",
        ),
        (
            r#"{"steps":2,"skipped":0,"loss":-1.0,"loss_u":1.0,"loss_v":0.0,"mse":1.0,"grad_norm":1.0}"#,
            "'loss' is -1",
        ),
    ] {
        let mut edited = TensorFile::parse(&good, Path::new("x")).unwrap();
        edited.metadata.insert("train_log".into(), train_log.into());
        std::fs::write(
            dir.join("run/checkpoint.safetensors"),
            edited.to_bytes(true),
        )
        .unwrap();
        rejected(
            &dir,
            &["train", "--resume", "run", "--steps", "20"],
            &["run/checkpoint.safetensors: metadata 'train_log'", needle],
        );
    }
    std::fs::write(dir.join("run/checkpoint.safetensors"), &good).unwrap();
    // A run never goes back: fewer --steps than it has done.
    rejected(
        &dir,
        &["train", "--resume", "run", "--steps", "5"],
        &[
            "--steps 5: the run is already at step 12",
            "--steps 12 or more",
        ],
    );
    rejected(
        &dir,
        &[
            "sample",
            "--checkpoint",
            "nope.safetensors",
            "--out",
            "s.csv",
        ],
        &["nope.safetensors", "cannot read the file"],
    );
    rejected(
        &dir,
        &["sample", "--checkpoint", "run", "--out", "s.csv"],
        &["run", "cannot read the file"],
    );
}

#[test]
fn a_checkpoint_from_another_model_is_refused() {
    let dir = scratch("other_model");
    train(&dir, "run", "12", &[]);
    for (name, extra) in [
        ("wider", &["--width", "12"][..]),
        ("deeper", &["--depth", "3"]),
        ("heads", &["--loss", "imf-head"]),
        ("f64", &["--precision", "f64"]),
        ("seed", &["--seed", "5"]),
    ] {
        train(&dir, name, "12", extra);
        let theirs = std::fs::read(dir.join(name).join("checkpoint.safetensors")).unwrap();
        let ours = dir.join("run/checkpoint.safetensors");
        let good = std::fs::read(&ours).unwrap();
        std::fs::write(&ours, theirs).unwrap();
        rejected(
            &dir,
            &["train", "--resume", "run", "--steps", "20"],
            &[
                "run/checkpoint.safetensors does not match run/config.json",
                "a different run's checkpoint",
            ],
        );
        std::fs::write(&ours, good).unwrap();
    }
    // config.json that is not a run config, or missing.
    let config = dir.join("run/config.json");
    let good = std::fs::read(&config).unwrap();
    for (text, needle) in [
        ("{", "EOF while parsing"),
        ("{\"format\": \"meanflow-run-v2\"}", "missing field"),
        (
            "{\"format\": \"meanflow-run-v1\", \"train\": 1}",
            "format 'meanflow-run-v1', expected 'meanflow-run-v2'",
        ),
        ("\"x\"", "invalid type: string"),
    ] {
        std::fs::write(&config, text).unwrap();
        rejected(
            &dir,
            &["train", "--resume", "run", "--steps", "20"],
            &["run/config.json", needle],
        );
    }
    let mut wrong_format: Value = serde_json::from_slice(&good).unwrap();
    wrong_format["format"] = Value::from("meanflow-run-v9");
    std::fs::write(&config, wrong_format.to_string()).unwrap();
    rejected(
        &dir,
        &["train", "--resume", "run"],
        &["run/config.json", "format 'meanflow-run-v9'"],
    );
    let mut bad_lr: Value = serde_json::from_slice(&good).unwrap();
    bad_lr["train"]["adam"]["lr"] = Value::from(-1.0);
    std::fs::write(&config, bad_lr.to_string()).unwrap();
    rejected(
        &dir,
        &["train", "--resume", "run"],
        &["run/config.json", "learning rate must be finite and > 0"],
    );
    std::fs::remove_file(&config).unwrap();
    rejected(
        &dir,
        &["train", "--resume", "run"],
        &["run/config.json", "cannot read the run config"],
    );
    std::fs::write(&config, &good).unwrap();
}

#[test]
fn bad_flags() {
    let dir = scratch("flags");
    let train_cases: &[(&[&str], &str)] = &[
        (
            &["--batch", "0"],
            "'--batch <BATCH>': must be between 1 and",
        ),
        (
            &["--steps", "0"],
            "'--steps <STEPS>': must be between 1 and",
        ),
        (
            &["--width", "0"],
            "'--width <WIDTH>': must be between 1 and",
        ),
        (
            &["--depth", "0"],
            "'--depth <DEPTH>': must be between 1 and 1024",
        ),
        (
            &["--lr", "0"],
            "learning rate must be finite and > 0, got 0",
        ),
        (
            &["--lr", "-0.1"],
            "learning rate must be finite and > 0, got -0.1",
        ),
        (
            &["--lr", "nan"],
            "learning rate must be finite and > 0, got NaN",
        ),
        (
            &["--lr", "inf"],
            "learning rate must be finite and > 0, got inf",
        ),
        (&["--beta", "1.5"], "beta must be in [0, 1], got 1.5"),
        (&["--beta", "-0.1"], "beta must be in [0, 1], got -0.1"),
        (&["--beta", "nan"], "beta must be in [0, 1], got NaN"),
        (&["--p", "-1"], "p must be finite and >= 0, got -1"),
        (&["--p", "inf"], "p must be finite and >= 0, got inf"),
        (&["--c", "0"], "c must be finite and > 0, got 0"),
        (&["--c", "-1e-3"], "c must be finite and > 0, got -0.001"),
        (
            &["--time-sigma", "0"],
            "sigma must be finite and > 0, got 0",
        ),
        (
            &["--time-sigma", "-1"],
            "sigma must be finite and > 0, got -1",
        ),
        (
            &["--time-sigma", "nan"],
            "sigma must be finite and > 0, got NaN",
        ),
        (&["--time-mu", "inf"], "mu must be finite"),
        (&["--frac-equal", "-0.5"], "r = t must be in [0, 1]"),
        (&["--beta1", "1"], "beta1 must be in [0, 1)"),
        (&["--beta2", "-0.5"], "beta2 must be in [0, 1)"),
        (
            &["--weight-decay", "-1"],
            "weight decay must be finite and >= 0",
        ),
        (&["--clip", "0"], "clip norm must be finite and > 0"),
        (&["--ema", "1"], "--ema 1: expected a decay in [0, 1)"),
        (&["--ema", "-0.5"], "--ema -0.5: expected a decay in [0, 1)"),
        (&["--lr", "1e39"], "--lr 1e39 is beyond the range of f32"),
        (&["--c", "1e39"], "--c 1e39 is beyond the range of f32"),
        (
            &["--time-mu", "-1e39"],
            "--time-mu -1e39 is beyond the range of f32",
        ),
        (
            &["--steps", "9007199254740993"],
            "'--steps <STEPS>': must be between 1 and 9007199254740992 (2^53)",
        ),
        (&["--dataset", "nope"], "unknown dataset 'nope'"),
        (&["--dataset", "gaussian:0"], "SIGMA"),
        (&["--activation", "nope"], "unknown activation 'nope'"),
        (&["--loss", "nope"], "unknown loss"),
        (&["--time-dist", "nope"], "--time-dist nope"),
        (
            &["--conditioning", "fourier99"],
            "unknown conditioning 'fourier99'",
        ),
        (&["--heads", "x"], "unknown heads 'x'"),
        (&["--v-source", "x"], "unknown v-source 'x'"),
        (&["--precision", "f16"], "unknown precision 'f16'"),
        (
            &["--threads", "0"],
            "'--threads <THREADS>': must be between 1 and 256",
        ),
        (
            &["--threads", "1000"],
            "'--threads <THREADS>': must be between 1 and 256",
        ),
        (
            &["--log-every", "0"],
            "'--log-every <STEPS>': must be between 1 and",
        ),
        (
            &["--eval-samples", "1"],
            "--eval-samples must be at least 2",
        ),
        (&["--steps", "-1"], "--steps"),
        (&["--bogus"], "--bogus"),
        // Sizes that cannot be allocated.
        (&["--width", "100000"], "the model is too large"),
        (
            &["--width", "100000000"],
            "'--width <WIDTH>': must be between 1 and 1048576 (2^20)",
        ),
        (
            &["--depth", "5000"],
            "'--depth <DEPTH>': must be between 1 and 1024",
        ),
        (&["--batch", "10000000"], "lower the batch or the width"),
        (
            &["--batch", "100000000000"],
            "'--batch <BATCH>': must be between 1 and 16777216 (2^24)",
        ),
        (
            &["--dataset", "gaussian_narrow:100000000"],
            "DIM '100000000'",
        ),
        (&["--eval-samples", "10000000"], "--eval-samples 10000000"),
        (
            &["--eval-samples", "100000000000"],
            "'--eval-samples <N>': must be between 0 and 16777216 (2^24)",
        ),
    ];
    for (extra, needle) in train_cases {
        let mut args = vec!["train", "--out", "run"];
        args.extend_from_slice(extra);
        rejected(&dir, &args, &[needle]);
        // Without --out: the default folder under runs/ is not created either.
        let mut args = vec!["train"];
        args.extend_from_slice(extra);
        rejected(&dir, &args, &[needle]);
    }
    // Output folders that cannot be written.
    rejected(
        &dir,
        &["train", "--out", "/proc/meanflow-run", "--steps", "1"],
        &["cannot create the run folder /proc/meanflow-run"],
    );
    rejected(
        &dir,
        &["data", "--dataset", "circles", "--out", "/proc/points.csv"],
        &["--out /proc/points.csv", "cannot write in the folder /proc"],
    );
    rejected(
        &dir,
        &["data", "--dataset", "circles", "--out", "nodir/points.csv"],
        &["--out nodir/points.csv", "does not exist"],
    );
    rejected(
        &dir,
        &[
            "data",
            "--dataset",
            "circles",
            "--n",
            "200000000",
            "--out",
            "d.csv",
        ],
        &["--n 200000000"],
    );
    train(&dir, "done", "12", &[]);
    let ck = "done/checkpoint.safetensors";
    for (extra, needle) in [
        (
            &["--out", "/proc/s.csv"][..],
            "cannot write in the folder /proc",
        ),
        (
            &["--out", "s.csv", "--png", "/proc/s.png"],
            "--png /proc/s.png",
        ),
        (&["--out", "s.txt"], ".csv or .npy"),
        (
            &["--out", "s.csv", "--n", "0"],
            "'--n <N>': must be between 1 and 268435456 (2^28)",
        ),
        (&["--out", "s.csv", "--n", "100000000"], "--n 100000000"),
        (
            &["--out", "s.csv", "--n", "100000000000"],
            "'--n <N>': must be between 1 and 268435456 (2^28)",
        ),
        (
            &["--out", "s.csv", "--steps", "0"],
            "'--steps <STEPS>': must be between 1 and 1048576 (2^20)",
        ),
        (
            &["--out", "s.csv", "--euler", "0"],
            "'--euler <K>': must be between 1 and 1048576 (2^20)",
        ),
        (
            &["--out", "s.csv", "--steps", "100000000000"],
            "'--steps <STEPS>': must be between 1 and 1048576 (2^20)",
        ),
    ] {
        let mut args = vec!["sample", "--checkpoint", ck];
        args.extend_from_slice(extra);
        rejected(&dir, &args, &[needle]);
    }
    ok(
        &dir,
        &[
            "data",
            "--dataset",
            "circles",
            "--n",
            "50",
            "--out",
            "c.csv",
        ],
    );
    rejected(
        &dir,
        &[
            "eval",
            "--samples",
            "c.csv",
            "--dataset",
            "circles",
            "--json",
            "/proc/e.json",
        ],
        &["--json /proc/e.json", "cannot write in the folder /proc"],
    );
    rejected(
        &dir,
        &[
            "eval",
            "--samples",
            "c.csv",
            "--dataset",
            "circles",
            "--n",
            "1",
        ],
        &["'1' for '--n <N>': must be between 2 and 268435456 (2^28)"],
    );
    rejected(
        &dir,
        &["eval", "--samples", "c.csv", "--dataset", "nope"],
        &["unknown dataset 'nope'"],
    );

    // A resume that names a run with other settings.
    for (flag, value) in [
        ("--lr", "0.01"),
        ("--width", "16"),
        ("--depth", "3"),
        ("--batch", "8"),
        ("--loss", "mf"),
        ("--beta", "0.5"),
        ("--seed", "3"),
        ("--activation", "tanh"),
        ("--precision", "f64"),
        ("--heads", "uv"),
        ("--ema", "0.9"),
        ("--dataset", "circles"),
    ] {
        rejected(
            &dir,
            &["train", "--resume", "done", flag, value],
            &[&format!("{flag} {value} conflicts with the resumed run's")],
        );
    }
    rejected(
        &dir,
        &["train", "--resume", "nowhere"],
        &["--resume nowhere: not a folder"],
    );
    rejected(
        &dir,
        &["train", "--resume", "done", "--out", "other"],
        &["--out other: cannot be used with --resume"],
    );
    rejected(
        &dir,
        &["train", "--out", "done"],
        &["--out done: the folder exists and is not empty"],
    );
    rejected(
        &dir,
        &["train", "--out", "c.csv"],
        &["--out c.csv", "not a folder"],
    );
    // Under a file, however deep: the file is named, not the OS's "File exists".
    for out in ["c.csv/run", "c.csv/a/b/run"] {
        rejected(
            &dir,
            &["train", "--out", out],
            &[&format!(
                "cannot create the run folder {out}: c.csv is not a folder"
            )],
        );
    }
    rejected(
        &dir,
        &["study", "identity", "--quick", "--out", "c.csv/a/study"],
        &["--out c.csv/a/study: c.csv is not a folder"],
    );
    rejected(
        &dir,
        &["data", "--dataset", "circles", "--out", "c.csv/points.csv"],
        &["--out c.csv/points.csv: c.csv is not a folder"],
    );
}

/// Issue 13: values a run's precision cannot square are bad input, named by file, line (or row)
/// and column, or by the flag of a built-in dataset; a wider precision takes what fits it.
#[test]
fn values_beyond_the_run_precision() {
    let dir = scratch("magnitude");
    std::fs::write(dir.join("e39.csv"), "1,2\n1e39,3\n4,5\n").unwrap();
    std::fs::write(dir.join("e17.csv"), "1,2\n3,-1e17\n4,5\n").unwrap();
    std::fs::write(dir.join("e200.csv"), "1e200,2\n3,4\n").unwrap();
    let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }";
    std::fs::write(
        dir.join("e39.npy"),
        npy(1, dict, &f64s(&[1.0, 2.0, 3.0, 1e39])),
    )
    .unwrap();
    for (dataset, needles) in [
        (
            "e39.csv",
            &[
                "e39.csv: line 2, column 1: value 1e39 is out of range",
                "f32",
            ][..],
        ),
        (
            "e17.csv",
            &["e17.csv: line 2, column 2", "-1e17", "--precision f64"],
        ),
        ("e39.npy", &["e39.npy: row 2, column 2", "1e39"]),
        (
            "gaussian:1e300",
            &["--dataset gaussian:1e300: its points reach", "f32"],
        ),
        ("gaussian:1e19:2", &["--dataset gaussian:1e19:2"]),
    ] {
        rejected(
            &dir,
            &[
                "train",
                "--out",
                "run",
                "--steps",
                "2",
                "--dataset",
                dataset,
            ],
            needles,
        );
    }
    // f64 takes 1e17 and 1e39, not 1e200 nor gaussian:1e300.
    for dataset in ["e200.csv", "gaussian:1e300"] {
        rejected(
            &dir,
            &[
                "train",
                "--precision",
                "f64",
                "--out",
                "run",
                "--dataset",
                dataset,
            ],
            &[dataset, "f64"],
        );
    }
    train(
        &dir,
        "run64",
        "2",
        &["--precision", "f64", "--dataset", "e17.csv"],
    );
    // eval computes in f64.
    rejected(
        &dir,
        &["eval", "--samples", "e200.csv", "--dataset", "circles"],
        &["e200.csv: line 1, column 1", "out of range"],
    );
    std::fs::write(dir.join("one.csv"), "1\n2\n3\n").unwrap();
    rejected(
        &dir,
        &[
            "eval",
            "--samples",
            "one.csv",
            "--dataset",
            "gaussian:1e300",
        ],
        &["--dataset gaussian:1e300", "an evaluation in f64"],
    );
}

/// Issue 13: no output overwrites an input, whatever the path that names it (the same name, a
/// symbolic link).
#[test]
fn outputs_never_overwrite_inputs() {
    let dir = scratch("outputs_onto_inputs");
    train(&dir, "run", "12", &[]);
    // A checkpoint under a name that passes the output checks.
    std::fs::copy(dir.join("run/checkpoint.safetensors"), dir.join("ck.csv")).unwrap();
    std::fs::write(dir.join("s.csv"), "1,2\n3,4\n5,6\n").unwrap();
    std::fs::write(dir.join("d.csv"), "1,2\n3,4\n5,6\n").unwrap();
    let mut cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["sample", "--checkpoint", "ck.csv", "--out", "ck.csv"],
            "--out ck.csv: is the --checkpoint file ck.csv",
        ),
        (
            vec!["sample", "--checkpoint", "ck.csv", "--out", "./ck.csv"],
            "--out ./ck.csv: is the --checkpoint file ck.csv",
        ),
        (
            vec![
                "eval",
                "--samples",
                "s.csv",
                "--dataset",
                "circles",
                "--json",
                "s.csv",
            ],
            "--json s.csv: is the --samples file s.csv",
        ),
        (
            vec![
                "eval",
                "--samples",
                "s.csv",
                "--data",
                "d.csv",
                "--json",
                "d.csv",
            ],
            "--json d.csv: is the --data file d.csv",
        ),
    ];
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("ck.csv", dir.join("link.csv")).unwrap();
        cases.push((
            vec!["sample", "--checkpoint", "ck.csv", "--out", "link.csv"],
            "--out link.csv: is the --checkpoint file ck.csv",
        ));
    }
    for (args, needle) in cases {
        rejected(&dir, &args, &[needle]);
    }
}
