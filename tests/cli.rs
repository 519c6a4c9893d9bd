//! The `meanflow` binary end to end, on tiny settings: run folders, checkpoints that load back
//! and resume bit for bit, reproducibility, sample / eval / data / verify, and bad input.

use meanflow::data::ToyDataset;
use meanflow::io::tensor_file::TensorFile;
use meanflow::rng::Rng;
use meanflow::train::checkpoint::{Checkpoint, Precision};
use meanflow::train::{builtin_pool_points, Trainer};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;

use common::BIN;

/// A fresh, empty folder for one test.
fn scratch(name: &str) -> PathBuf {
    common::scratch("cli", name)
}

fn meanflow(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs and requires exit code 0.
fn ok(args: &[&str]) -> Output {
    let out = meanflow(args);
    assert!(
        out.status.success(),
        "meanflow {args:?} failed ({:?}):\n{}",
        out.status.code(),
        text(&out.stderr)
    );
    out
}

/// Tiny training settings (a fraction of a second per run).
const TINY: &[&str] = &[
    "--batch",
    "32",
    "--width",
    "16",
    "--depth",
    "2",
    "--log-every",
    "25",
    "--eval-every",
    "100",
    "--eval-samples",
    "200",
    "--checkpoint-every",
    "150",
];

fn train(out: &Path, steps: u64, extra: &[&str]) -> Output {
    let steps = steps.to_string();
    let mut args = vec!["train", "--out", out.to_str().unwrap(), "--steps", &steps];
    args.extend_from_slice(TINY);
    args.extend_from_slice(extra);
    ok(&args)
}

use common::metrics;

fn checkpoint_file(run: &Path) -> TensorFile {
    TensorFile::read(&run.join("checkpoint.safetensors")).unwrap()
}

#[test]
fn a_run_folder_has_every_file_and_its_checkpoint_loads_back() {
    let dir = scratch("folder");
    let run = dir.join("run");
    let out = train(&run, 300, &[]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("sliced W1 vs 200 held-out points"),
        "{stdout}"
    );
    for f in ["config.json", "metrics.jsonl", "checkpoint.safetensors"] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    // Pictures: written, or (in a build without the plotting module) said to be skipped.
    for png in ["samples.png", "loss.png"] {
        assert!(
            run.join(png).is_file() || stdout.contains("draws no pictures"),
            "{png}: neither written nor reported: {stdout}"
        );
    }

    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["format"], "meanflow-run-v2");
    assert_eq!(config["dataset"]["name"], "two_moons");
    assert_eq!(config["loss_preset"], "imf");
    assert_eq!(config["train"]["time"]["fraction_equal"], 0.5);
    assert_eq!(config["train"]["ema_decay"], 0.999);

    let lines = metrics(&run);
    assert_eq!(lines.len(), 12, "a line every 25 steps");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["step"], 25 * (i as u64 + 1));
        for key in ["loss", "loss_u", "mse", "grad_norm", "lr"] {
            assert!(l[key].as_f64().unwrap().is_finite(), "{key} in {l}");
        }
        assert_eq!(
            l.get("sw1").is_some(),
            (i + 1) % 4 == 0,
            "sw1 every 100 steps: {l}"
        );
    }

    // The file: PyTorch names and shapes, 1-D biases, EMA and Adam tensors, metadata.
    let file = checkpoint_file(&run);
    assert_eq!(file.metadata["format"], "meanflow-checkpoint-v2");
    assert_eq!(file.metadata["step"], "300");
    assert!(file.metadata.contains_key("rng_state"));
    assert!(file.metadata.contains_key("config"));
    assert_eq!(file.tensors["trunk.0.weight"].shape, vec![16, 4]);
    assert_eq!(file.tensors["trunk.0.bias"].shape, vec![16]);
    assert_eq!(file.tensors["u_head.weight"].shape, vec![2, 16]);
    for prefix in ["", "ema.", "adam.m.", "adam.v."] {
        for name in ["trunk.0", "trunk.1", "u_head"] {
            for part in ["weight", "bias"] {
                let key = format!("{prefix}{name}.{part}");
                let t = file.tensors.get(&key).unwrap_or_else(|| panic!("{key}"));
                assert!(t.was_f32, "{key} stored as f32");
            }
        }
    }
    assert_eq!(file.tensors.len(), 4 * 6);

    // The same run in the library: identical parameters, EMA, moments and RNG.
    let ck = Checkpoint::read(&run.join("checkpoint.safetensors")).unwrap();
    assert_eq!(ck.precision, Precision::F32);
    assert_eq!(ck.step, 300);
    let ds = ToyDataset::TwoMoons;
    let pool = ds.sample(builtin_pool_points(2), &mut Rng::stream(0, 2));
    let mut trainer = Trainer::<f32>::new(ck.config, pool);
    for _ in 0..300 {
        trainer.step().unwrap();
    }
    let again = Checkpoint::from_trainer(&trainer);
    assert_eq!(again.params, ck.params);
    assert_eq!(again.ema, ck.ema);
    assert_eq!(again.adam, ck.adam);
    assert_eq!(again.rng, ck.rng);
}

/// Same file, byte for byte (and, for a readable failure, the same tensors and metadata).
fn assert_same_checkpoint(a: &Path, b: &Path) {
    let (fa, fb) = (checkpoint_file(a), checkpoint_file(b));
    assert_eq!(fa.metadata, fb.metadata);
    assert_eq!(
        fa.tensors.keys().collect::<Vec<_>>(),
        fb.tensors.keys().collect::<Vec<_>>()
    );
    for (name, t) in &fa.tensors {
        let u = &fb.tensors[name];
        assert_eq!(t.shape, u.shape, "{name}");
        let bits = |x: &meanflow::io::tensor_file::StoredTensor| {
            x.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        assert_eq!(bits(t), bits(u), "{name} differs");
    }
    let bytes = |r: &Path| std::fs::read(r.join("checkpoint.safetensors")).unwrap();
    assert!(
        bytes(a) == bytes(b),
        "{} and {} hold the same checkpoint in different bytes",
        a.display(),
        b.display()
    );
}

#[test]
fn resume_after_stopping_equals_an_uninterrupted_run() {
    let dir = scratch("resume");
    let (full, part) = (dir.join("full"), dir.join("part"));
    train(&full, 400, &[]);
    train(&part, 170, &[]);
    assert_eq!(
        Checkpoint::read(&part.join("checkpoint.safetensors"))
            .unwrap()
            .step,
        170
    );
    ok(&[
        "train",
        "--resume",
        part.to_str().unwrap(),
        "--steps",
        "400",
    ]);
    assert_eq!(metrics(&full), metrics(&part));
    assert_same_checkpoint(&full, &part);
    let config = |r: &Path| std::fs::read_to_string(r.join("config.json")).unwrap();
    assert_eq!(config(&full), config(&part));

    // Resuming a finished run does nothing more.
    ok(&["train", "--resume", part.to_str().unwrap()]);
    assert_eq!(metrics(&full), metrics(&part));
}

#[test]
fn resume_after_ctrl_c_equals_an_uninterrupted_run() {
    let dir = scratch("ctrl_c");
    let (int, full) = (dir.join("interrupted"), dir.join("full"));
    let mut args: Vec<&str> = vec![
        "train",
        "--out",
        int.to_str().unwrap(),
        "--steps",
        "100000000",
    ];
    args.extend_from_slice(TINY);
    let child = Command::new(BIN)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the run is stepping, then Ctrl-C.
    common::wait_for_metrics_lines(&int, 2);
    common::send_signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted at step"), "{stderr}");
    assert!(stderr.contains("(SIGINT)"), "{stderr}");

    let stopped = Checkpoint::read(&int.join("checkpoint.safetensors"))
        .unwrap()
        .step;
    let total = (stopped + 130).to_string();
    ok(&[
        "train",
        "--resume",
        int.to_str().unwrap(),
        "--steps",
        &total,
    ]);
    train(&full, stopped + 130, &[]);
    assert_eq!(metrics(&full), metrics(&int));
    assert_same_checkpoint(&full, &int);
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    let dir = scratch("seed");
    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    train(&a, 150, &["--seed", "7"]);
    train(&b, 150, &["--seed", "7"]);
    train(&c, 150, &["--seed", "8"]);
    assert_eq!(metrics(&a), metrics(&b));
    assert_same_checkpoint(&a, &b);
    assert_ne!(metrics(&a), metrics(&c));
}

#[test]
fn other_losses_and_f64() {
    let dir = scratch("variants");
    let run = dir.join("mf64");
    train(
        &run,
        50,
        &["--loss", "mf", "--precision", "f64", "--ema", "none"],
    );
    let ck = Checkpoint::read(&run.join("checkpoint.safetensors")).unwrap();
    assert_eq!(ck.precision, Precision::F64);
    assert_eq!(ck.config.loss.beta, 0.0);
    assert_eq!(ck.config.time.fraction_equal, 0.75);
    assert!(ck.ema.is_none());
    let run = dir.join("head");
    train(
        &run,
        50,
        &[
            "--loss",
            "imf-head",
            "--exact",
            "--conditioning",
            "fourier2",
        ],
    );
    let lines = metrics(&run);
    assert!(lines[0]["loss_v"].as_f64().is_some());
    let file = checkpoint_file(&run);
    assert_eq!(file.tensors["v_head.bias"].shape, vec![2]);
    assert_eq!(file.tensors["trunk.0.weight"].shape, vec![16, 2 + 10]);
}

#[test]
fn sample_eval_and_data() {
    let dir = scratch("sample");
    let run = dir.join("run");
    train(&run, 200, &[]);
    let ck = run.join("checkpoint.safetensors");
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();

    ok(&[
        "sample",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--n",
        "300",
        "--out",
        &p("one.csv"),
    ]);
    let one = meanflow::data::load(dir.join("one.csv")).unwrap();
    assert_eq!(one.dim(), (300, 2));
    ok(&[
        "sample",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--n",
        "300",
        "--steps",
        "2",
        "--ema",
        "--out",
        &p("two.npy"),
        "--seed",
        "3",
    ]);
    assert_eq!(
        meanflow::data::load(dir.join("two.npy")).unwrap().dim(),
        (300, 2)
    );
    ok(&[
        "sample",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--n",
        "100",
        "--euler",
        "8",
        "--out",
        &p("euler.csv"),
    ]);
    // Same seed, same samples.
    ok(&[
        "sample",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--n",
        "300",
        "--out",
        &p("again.csv"),
    ]);
    assert_eq!(
        std::fs::read(dir.join("one.csv")).unwrap(),
        std::fs::read(dir.join("again.csv")).unwrap()
    );

    let out = ok(&[
        "eval",
        "--samples",
        &p("one.csv"),
        "--dataset",
        "two_moons",
        "--json",
        &p("eval.json"),
    ]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("sliced W1") && stdout.contains("energy distance"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("eval.json")).unwrap()).unwrap();
    assert_eq!(report["n"], 300);
    assert_eq!(report["projections"], 1024);
    let (sw1, floor) = (
        report["sliced_w1"].as_f64().unwrap(),
        report["floor"]["sliced_w1"].as_f64().unwrap(),
    );
    assert!(sw1 > 0.0 && floor > 0.0 && sw1.is_finite(), "{report}");
    assert!(report["energy_distance"].as_f64().unwrap() >= 0.0);

    ok(&[
        "data",
        "--dataset",
        "two_moons",
        "--n",
        "500",
        "--out",
        &p("moons.csv"),
        "--seed",
        "4",
    ]);
    ok(&[
        "data",
        "--dataset",
        "gaussian_narrow:3",
        "--n",
        "50",
        "--out",
        &p("g.npy"),
    ]);
    assert_eq!(
        meanflow::data::load(dir.join("moons.csv")).unwrap().dim(),
        (500, 2)
    );
    assert_eq!(
        meanflow::data::load(dir.join("g.npy")).unwrap().dim(),
        (50, 3)
    );
    let out = ok(&[
        "eval",
        "--samples",
        &p("one.csv"),
        "--data",
        &p("moons.csv"),
        "--n",
        "200",
    ]);
    assert!(
        text(&out.stdout).contains("n = 200"),
        "{}",
        text(&out.stdout)
    );

    // Training on a data file.
    let file_run = dir.join("file_run");
    train(&file_run, 60, &["--dataset", &p("moons.csv")]);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file_run.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["dataset"]["kind"], "file");
    assert_eq!(config["held_out_points"], 100);
    assert_eq!(config["pool_points"], 400);
    ok(&[
        "train",
        "--resume",
        file_run.to_str().unwrap(),
        "--steps",
        "80",
    ]);
}

fn tests_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn reference_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(tests_data())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    files.sort();
    assert!(files.len() >= 6);
    files
}

#[test]
fn verify_passes_on_the_reference_cases_and_fails_below_rounding() {
    let files = reference_files();
    let mut args = vec!["verify"];
    args.extend(files.iter().map(String::as_str));
    let out = ok(&args);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("grad.trunk.0.weight"), "{stdout}");
    assert!(
        stdout.contains(&format!("{n} of {n} cases within", n = files.len())),
        "{stdout}"
    );

    args.extend(["--tolerance", "1e-30"]);
    let out = meanflow(&args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("FAIL"));

    let not_a_case = tests_data().join("README.md");
    let out = meanflow(&["verify", not_a_case.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("README.md"),
        "{stderr}"
    );
}

/// Exit code 2, one `error:` line that contains `needle`, and nothing created at `out`.
fn rejected(args: &[&str], needle: &str, out: Option<&Path>) {
    let o = meanflow(args);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: not one line: {stderr}"
    );
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    assert!(
        stderr.to_lowercase().contains(&needle.to_lowercase()),
        "{args:?}: '{needle}' not in: {stderr}"
    );
    if let Some(out) = out {
        assert!(!out.exists(), "{args:?} created {}", out.display());
    }
}

#[test]
fn bad_input_exits_2_with_one_line_and_writes_nothing() {
    let dir = scratch("bad");
    let out = dir.join("never");
    let o = out.to_str().unwrap();
    let bad_csv = dir.join("bad.csv");
    std::fs::write(&bad_csv, "1,2\n3,x\n").unwrap();
    let bad_csv = bad_csv.to_str().unwrap().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["--batch", "0"], "batch"),
        (&["--steps", "0"], "steps"),
        (&["--width", "0"], "width"),
        (&["--depth", "0"], "depth"),
        (&["--lr", "0"], "learning rate"),
        (&["--lr", "nan"], "learning rate"),
        (&["--lr", "-1"], "learning rate"),
        (&["--beta", "1.5"], "beta"),
        (&["--beta1", "1"], "beta1"),
        (&["--p", "-1"], "p must"),
        (&["--c", "0"], "c must"),
        (&["--time-sigma", "0"], "sigma"),
        (&["--frac-equal", "2"], "r = t"),
        (&["--ema", "1.5"], "--ema"),
        (
            &["--threads", "0"],
            "'--threads <THREADS>': must be between 1 and 256",
        ),
        (&["--dataset", "nope"], "unknown dataset 'nope'"),
        // The list names every built-in set, the digits too.
        (
            &["--dataset", "nope"],
            "built-in datasets are digits, checkerboard",
        ),
        (&["--dataset", "missing.csv"], "missing.csv: file not found"),
        (&["--architecture", "nope"], "unknown architecture 'nope'"),
        (&["--dataset", &bad_csv], "non-numeric"),
        (&["--activation", "nope"], "unknown activation"),
        (&["--loss", "nope"], "unknown loss"),
        (&["--precision", "f16"], "precision"),
        (&["--v-source", "head", "--heads", "u"], "heads = uv"),
        (&["--batch", "-3"], "--batch"),
        (&["--bogus"], "--bogus"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["train", "--out", o];
        args.extend_from_slice(extra);
        rejected(&args, needle, Some(&out));
    }
    rejected(
        &[
            "train",
            "--out",
            "/proc/meanflow-cannot-write-here/run",
            "--steps",
            "1",
        ],
        "cannot create the run folder",
        None,
    );

    // Resume: conflicting options, missing folders.
    let run = dir.join("run");
    train(&run, 30, &[]);
    let r = run.to_str().unwrap();
    rejected(
        &["train", "--resume", r, "--lr", "0.01"],
        "--lr 0.01 conflicts",
        None,
    );
    rejected(&["train", "--resume", r, "--width", "32"], "--width", None);
    rejected(
        &["train", "--resume", r, "--dataset", "circles"],
        "--dataset",
        None,
    );
    rejected(
        &["train", "--resume", r, "--out", o],
        "--resume",
        Some(&out),
    );
    rejected(&["train", "--resume", o], "not a folder", Some(&out));
    rejected(&["train", "--out", r], "not empty", None);

    // sample / eval / data / verify.
    let ck = run.join("checkpoint.safetensors");
    let ck = ck.to_str().unwrap();
    let csv = dir.join("s.csv");
    let s = csv.to_str().unwrap();
    rejected(
        &["sample", "--checkpoint", "nope.safetensors", "--out", s],
        "nope.safetensors",
        Some(&csv),
    );
    rejected(
        &["sample", "--checkpoint", &bad_csv, "--out", s],
        "bad.csv",
        Some(&csv),
    );
    rejected(
        &["sample", "--checkpoint", ck, "--out", "x.txt"],
        ".csv or .npy",
        None,
    );
    rejected(
        &["sample", "--checkpoint", ck, "--n", "0", "--out", s],
        "--n",
        Some(&csv),
    );
    rejected(
        &[
            "sample",
            "--checkpoint",
            ck,
            "--out",
            "/nonexistent/dir/s.csv",
        ],
        "does not exist",
        None,
    );
    rejected(
        &[
            "sample",
            "--checkpoint",
            ck,
            "--steps",
            "2",
            "--euler",
            "3",
            "--out",
            s,
        ],
        "--euler",
        Some(&csv),
    );
    let no_ema = dir.join("no_ema");
    train(&no_ema, 10, &["--ema", "none"]);
    let ck2 = no_ema.join("checkpoint.safetensors");
    rejected(
        &[
            "sample",
            "--checkpoint",
            ck2.to_str().unwrap(),
            "--ema",
            "--out",
            s,
        ],
        "no EMA",
        Some(&csv),
    );

    ok(&[
        "data",
        "--dataset",
        "gaussian_narrow:3",
        "--n",
        "40",
        "--out",
        s,
    ]);
    rejected(
        &["eval", "--samples", s, "--dataset", "two_moons"],
        "dimension mismatch",
        None,
    );
    rejected(&["eval", "--samples", s], "--data", None);
    rejected(
        &["eval", "--samples", "missing.csv", "--dataset", "two_moons"],
        "missing.csv",
        None,
    );
    let d = dir.join("d.csv");
    rejected(
        &["data", "--dataset", "nope", "--out", d.to_str().unwrap()],
        "unknown dataset",
        Some(&d),
    );
    rejected(
        &[
            "data",
            "--dataset",
            "circles",
            "--n",
            "1",
            "--out",
            d.to_str().unwrap(),
        ],
        "--n",
        Some(&d),
    );
    rejected(
        &["verify", "missing.safetensors"],
        "missing.safetensors",
        None,
    );
    rejected(
        &["verify", "--tolerance", "nan", &reference_files()[0]],
        "tolerance",
        None,
    );
}

#[test]
fn a_non_finite_loss_stops_the_run_and_keeps_the_checkpoint() {
    let dir = scratch("nonfinite");
    let run = dir.join("run");
    let r = run.to_str().unwrap();
    // An enormous learning rate overflows f32 within a few steps.
    let mut args = vec!["train", "--out", r, "--steps", "200", "--lr", "1e30"];
    args.extend_from_slice(TINY);
    let out = meanflow(&args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with("error: step ") && last.contains("non-finite"),
        "{stderr}"
    );
    assert!(last.contains("last good checkpoint (step 0)"), "{stderr}");
    let ck = Checkpoint::read(&run.join("checkpoint.safetensors")).unwrap();
    assert_eq!(ck.step, 0);

    // --skip-nonfinite skips, and still gives up when every step is non-finite.
    let run2 = dir.join("skip");
    let mut args = vec![
        "train",
        "--out",
        run2.to_str().unwrap(),
        "--steps",
        "500",
        "--lr",
        "1e30",
        "--skip-nonfinite",
    ];
    args.extend_from_slice(TINY);
    let out = meanflow(&args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("skipped") && stderr.contains("in a row"),
        "{stderr}"
    );
}

#[test]
#[cfg(unix)]
fn a_closed_stdout_is_a_failed_write_not_a_panic() {
    let mut child = Command::new(BIN)
        .args([
            "bench",
            "--config",
            "c1",
            "--loss",
            "mf",
            "--threads",
            "1",
            "--warmup",
            "0",
            "--repeats",
            "1",
            "--no-peak",
            "--json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // Close the reading end before the benchmark prints: `meanflow bench | head -0`.
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("the binary finishes");
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert_eq!(output.status.code(), Some(1), "status {:?}", output.status);
    assert!(
        stderr.contains("error: cannot write to standard output"),
        "{stderr}"
    );
}

/// Issue 13: `gaussian:SIGMA` keeps the sign of SIGMA's exponent.
#[test]
fn gaussian_sigma_with_a_negative_exponent() {
    let dir = scratch("gaussian_exponent");
    let out = dir.join("g.csv");
    ok(&[
        "data",
        "--dataset",
        "gaussian:1e-3:2",
        "--n",
        "200",
        "--out",
        out.to_str().unwrap(),
    ]);
    let points = meanflow::data::load(&out).unwrap();
    let largest = points.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(largest > 1e-4 && largest < 1e-2, "{largest}");
    train(&dir.join("run"), 20, &["--dataset", "GAUSSIAN:1E-3"]);
}

/// Issue 13: `sample` uses the EMA weights when the checkpoint has them, as train's summary and
/// samples.png do; `--raw` takes the raw weights.
#[test]
fn sample_uses_the_ema_weights_by_default() {
    let dir = scratch("sample_ema");
    let run = dir.join("run");
    train(&run, 60, &["--ema", "0.9"]);
    let ck = run.join("checkpoint.safetensors");
    let sample = |name: &str, extra: &[&str]| {
        let path = dir.join(name);
        let mut args = vec![
            "sample",
            "--checkpoint",
            ck.to_str().unwrap(),
            "--n",
            "50",
            "--out",
            path.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = ok(&args);
        (std::fs::read(path).unwrap(), text(&out.stdout))
    };
    let (default, said) = sample("default.csv", &[]);
    let (ema, _) = sample("ema.csv", &["--ema"]);
    let (raw, said_raw) = sample("raw.csv", &["--raw"]);
    assert_eq!(default, ema);
    assert_ne!(default, raw);
    assert!(said.contains("EMA weights"), "{said}");
    assert!(said_raw.contains("raw weights"), "{said_raw}");
    // Without an EMA the raw weights are the only ones.
    let plain = dir.join("plain");
    train(&plain, 20, &["--ema", "none"]);
    let path = dir.join("plain.csv");
    let out = ok(&[
        "sample",
        "--checkpoint",
        plain.join("checkpoint.safetensors").to_str().unwrap(),
        "--out",
        path.to_str().unwrap(),
    ]);
    assert!(text(&out.stdout).contains("raw weights"));
}

/// Issue 13: a data file that moved can be resumed by giving its new path (the values are what
/// counts); without it, the message says so.
#[test]
fn a_moved_data_file_resumes_from_its_new_path() {
    let dir = scratch("moved_data");
    let points: String = (0..60).map(|i| format!("{},{}\n", i % 7, i % 5)).collect();
    let (old, new) = (dir.join("points.csv"), dir.join("moved.csv"));
    std::fs::write(&old, &points).unwrap();
    let run = dir.join("run");
    train(&run, 30, &["--dataset", old.to_str().unwrap()]);
    std::fs::rename(&old, &new).unwrap();
    let r = run.to_str().unwrap();
    let out = meanflow(&["train", "--resume", r, "--steps", "60"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("not there any more; if it moved, give its new path with --dataset"),
        "{}",
        text(&out.stderr)
    );
    ok(&[
        "train",
        "--resume",
        r,
        "--steps",
        "60",
        "--dataset",
        new.to_str().unwrap(),
    ]);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    let stored = config["dataset"]["path"].as_str().unwrap();
    assert!(stored.ends_with("moved.csv"), "{stored}");
    // The same run as one that never moved.
    std::fs::write(&old, &points).unwrap();
    let straight = dir.join("straight");
    train(&straight, 60, &["--dataset", old.to_str().unwrap()]);
    assert_eq!(metrics(&run), metrics(&straight));
    // Other values under the new name are another dataset.
    std::fs::write(&new, "1,2\n3,4\n5,6\n7,8\n").unwrap();
    let out = meanflow(&[
        "train",
        "--resume",
        r,
        "--steps",
        "90",
        "--dataset",
        new.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("conflicts with the resumed run's dataset"),
        "{}",
        text(&out.stderr)
    );
}

/// Issue 13 (doubtful items): the held-out note gives the row count; eval's n is what it used;
/// verify names a training checkpoint; a built-in name is the built-in dataset even when a file
/// of that name is in the working folder; a 250-byte folder name works.
#[test]
fn messages_and_names_a_careful_user_expects() {
    let dir = scratch("careful_user");
    let six = dir.join("six.csv");
    std::fs::write(&six, "1,2\n3,4\n5,6\n7,8\n9,1\n2,3\n").unwrap();
    let run = dir.join("run");
    let out = train(&run, 20, &["--dataset", six.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("too few rows for a held-out set (6 rows;"),
        "{stderr}"
    );

    // eval reports the n it used, and refuses an --n beyond what it has.
    let three = dir.join("three.csv");
    std::fs::write(&three, "1,2\n3,4\n5,6\n").unwrap();
    let json = dir.join("e.json");
    ok(&[
        "eval",
        "--samples",
        six.to_str().unwrap(),
        "--data",
        three.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["n"], 3);
    for (n, needle) in [("7", "the samples"), ("4", "the data")] {
        rejected(
            &[
                "eval",
                "--samples",
                six.to_str().unwrap(),
                "--data",
                three.to_str().unwrap(),
                "--n",
                n,
            ],
            needle,
            None,
        );
    }

    // verify on a training checkpoint says what the file is.
    let ck = run.join("checkpoint.safetensors");
    let out = meanflow(&["verify", ck.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("a meanflow training checkpoint, not a reference case"),
        "{}",
        text(&out.stderr)
    );

    // A file named like a built-in dataset does not shadow it; ./NAME names the file.
    std::fs::write(dir.join("circles"), "1,2\n3,4\n5,6\n").unwrap();
    let out = Command::new(BIN)
        .args(["train", "--out", "builtin", "--steps", "5"])
        .args(TINY)
        .args(["--dataset", "circles"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = std::fs::read_to_string(dir.join("builtin/config.json")).unwrap();
    assert!(config.contains("\"kind\": \"builtin\""), "{config}");
    let out = Command::new(BIN)
        .args(["train", "--out", "file", "--steps", "5"])
        .args(TINY)
        .args(["--dataset", "./circles"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = std::fs::read_to_string(dir.join("file/config.json")).unwrap();
    assert!(config.contains("\"kind\": \"file\""), "{config}");

    // Folder names up to the file-name limit (the staging name is no longer than the limit).
    for len in [240, 255] {
        let long = dir.join("a".repeat(len));
        train(&long, 5, &[]);
        assert!(long.join("checkpoint.safetensors").is_file());
    }
}

/// Issue 13: an output path that is a symbolic link is written where it points; the link stays.
#[test]
#[cfg(unix)]
fn an_output_symlink_is_followed() {
    let dir = scratch("symlink_output");
    std::fs::create_dir(dir.join("real")).unwrap();
    std::fs::write(dir.join("real/points.csv"), "old\n").unwrap();
    std::os::unix::fs::symlink("real/points.csv", dir.join("link.csv")).unwrap();
    let link = dir.join("link.csv");
    ok(&[
        "data",
        "--dataset",
        "circles",
        "--n",
        "10",
        "--out",
        link.to_str().unwrap(),
    ]);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let points = meanflow::data::load(dir.join("real/points.csv")).unwrap();
    assert_eq!(points.dim(), (10, 2));
    // A device is written in place, never replaced by a file.
    std::os::unix::fs::symlink("/dev/null", dir.join("null.csv")).unwrap();
    let null = dir.join("null.csv");
    ok(&[
        "data",
        "--dataset",
        "circles",
        "--out",
        null.to_str().unwrap(),
    ]);
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    let out = ok(&[
        "eval",
        "--samples",
        link.to_str().unwrap(),
        "--dataset",
        "circles",
        "--json",
        "/dev/stdout",
    ]);
    assert!(
        text(&out.stdout).contains("\"sliced_w1\""),
        "{}",
        text(&out.stdout)
    );
}

/// Issue 13: a disk that fills up while a run folder is set up: exit 2, the message names the run
/// folder and the file (not the staging folder, which is gone), and nothing is left.
#[test]
#[cfg(unix)]
fn a_full_disk_at_the_start_leaves_nothing() {
    use std::os::unix::process::CommandExt;
    let dir = scratch("disk_full");
    for (limit, file) in [(512u64, "config.json"), (4096, "checkpoint.safetensors")] {
        let mut cmd = Command::new(BIN);
        cmd.args(["train", "--out", "run", "--steps", "5"])
            .args(TINY)
            .current_dir(&dir);
        // SAFETY: between fork and exec only async-signal-safe calls: setrlimit and signal.
        unsafe {
            cmd.pre_exec(move || {
                // Writes beyond `limit` bytes fail (EFBIG) instead of raising SIGXFSZ.
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let rlimit = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.starts_with(&format!(
                "error: cannot create the run folder run: {file}: "
            )),
            "{stderr}"
        );
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "{stderr}");
    }
}
