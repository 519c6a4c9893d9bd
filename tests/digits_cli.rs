//! End to end: class-conditional training on the built-in digits and on labelled files, the
//! guidance flags, conditional sampling and `meanflow quality`, through the binary.

mod common;

use common::BIN;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scratch(name: &str) -> PathBuf {
    common::scratch("digits_cli", name)
}

fn meanflow(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(args: &[&str]) -> String {
    let out = meanflow(args);
    assert!(
        out.status.success(),
        "meanflow {args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Exit 2, one line on stderr containing `needle`, nothing on stdout.
fn refused(args: &[&str], needle: &str) {
    let out = meanflow(args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn small_digits_run(out: &Path, steps: &str, extra: &[&str]) {
    let mut args = vec![
        "train",
        "--dataset",
        "digits",
        "--width",
        "24",
        "--depth",
        "2",
        "--batch",
        "64",
        "--steps",
        steps,
        "--eval-every",
        "20",
        "--log-every",
        "10",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&args);
}

fn read_csv(path: &Path) -> Vec<Vec<f64>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && l.chars().next().is_some_and(|c| c != 'x'))
        .map(|l| l.split(',').map(|v| v.trim().parse().unwrap()).collect())
        .collect()
}

/// A conditional digits run: config, picture, samples of the asked classes in pixels, quality.
#[test]
fn digits_train_a_conditional_model_that_samples_and_scores() {
    let dir = scratch("conditional");
    let run = dir.join("run");
    small_digits_run(&run, "40", &["--guidance", "input:3"]);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    let model = &config["train"]["model"];
    assert_eq!(model["dim"], 64);
    assert_eq!(model["classes"], 10);
    assert_eq!(model["guidance_input"], true);
    assert_eq!(config["train"]["loss"]["label_dropout"], 0.1);
    assert_eq!(config["dataset"]["name"], "digits");
    assert_eq!(config["pool_points"], 1497);
    assert_eq!(config["held_out_points"], 300);
    // samples.png is the image grid: two panels of 10 x 10 images of 8 x 8 pixels, not a scatter.
    let png = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(run.join("samples.png")).unwrap(),
    ))
    .read_info()
    .unwrap();
    let (w, h) = (png.info().width, png.info().height);
    assert!(w > 2 * 10 * 40 && h > 10 * 40 && w < 1200, "{w} x {h}");

    let checkpoint = run.join("checkpoint.safetensors");
    let ck = checkpoint.to_str().unwrap();
    let samples = dir.join("s.csv");
    let picture = dir.join("s.png");
    let stdout = ok(&[
        "sample",
        "--checkpoint",
        ck,
        "--n",
        "20",
        "--class",
        "3,7",
        "--guidance",
        "2",
        "--out",
        samples.to_str().unwrap(),
        "--png",
        picture.to_str().unwrap(),
    ]);
    assert!(stdout.contains("classes 3,7, guidance 2"), "{stdout}");
    let rows = read_csv(&samples);
    assert_eq!(rows.len(), 20);
    assert!(rows.iter().all(|r| r.len() == 64));
    // In pixels: centred near 8, not near 0 as the model's units are.
    let mean = rows.iter().flatten().sum::<f64>() / (20.0 * 64.0);
    assert!((2.0..14.0).contains(&mean), "mean pixel {mean}");
    assert!(picture.exists());

    let json = dir.join("q.json");
    let stdout = ok(&[
        "quality",
        "--checkpoint",
        ck,
        "--per-class",
        "5",
        "--guidance",
        "2",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(stdout.contains("class accuracy"), "{stdout}");
    let q: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(q["n"], 50);
    assert!(q["accuracy"].as_f64().unwrap() <= 1.0);
    assert!(q["frechet"].as_f64().unwrap() > q["frechet_floor"].as_f64().unwrap());

    refused(
        &[
            "sample",
            "--checkpoint",
            ck,
            "--class",
            "10",
            "--out",
            samples.to_str().unwrap(),
        ],
        "'10' is not a class of the model (0 to 9)",
    );
    refused(
        &[
            "sample",
            "--checkpoint",
            ck,
            "--guidance",
            "0.5",
            "--out",
            samples.to_str().unwrap(),
        ],
        "must be finite and >= 1",
    );
}

/// Resuming a conditional run with guidance drawn as an input gives the uninterrupted run's
/// checkpoint, bit for bit (labels, dropped labels and scales come from the saved stream).
#[test]
fn a_conditional_run_resumes_bit_for_bit() {
    let dir = scratch("resume");
    let (whole, halves) = (dir.join("whole"), dir.join("halves"));
    small_digits_run(&whole, "40", &["--guidance", "input:3", "--seed", "4"]);
    small_digits_run(&halves, "20", &["--guidance", "input:3", "--seed", "4"]);
    ok(&[
        "train",
        "--resume",
        halves.to_str().unwrap(),
        "--steps",
        "40",
    ]);
    let a = std::fs::read(whole.join("checkpoint.safetensors")).unwrap();
    let b = std::fs::read(halves.join("checkpoint.safetensors")).unwrap();
    assert!(a == b, "the resumed checkpoint differs");
    refused(
        &[
            "train",
            "--resume",
            halves.to_str().unwrap(),
            "--steps",
            "60",
            "--guidance",
            "input:5",
        ],
        "--guidance input:5 conflicts with the resumed run's guidance input:3",
    );
}

/// MF's guidance in the target fixes the scale: sampling refuses another one and says why.
#[test]
fn target_guidance_fixes_the_scale() {
    let dir = scratch("target");
    let run = dir.join("run");
    small_digits_run(&run, "10", &["--loss", "mf", "--guidance", "target:2:0.5"]);
    let ck = run.join("checkpoint.safetensors");
    refused(
        &[
            "sample",
            "--checkpoint",
            ck.to_str().unwrap(),
            "--guidance",
            "3",
            "--out",
            dir.join("s.csv").to_str().unwrap(),
        ],
        "samples scale 4 (w / (1 - kappa)) and only that",
    );
}

/// A labelled CSV file trains a conditional model of its classes; bad labels and misplaced label
/// flags are refused in one line naming the problem.
#[test]
fn labelled_files_and_their_bad_input() {
    let dir = scratch("files");
    let good = dir.join("points.csv");
    let mut csv = String::from("x,y,label\n");
    for i in 0..60 {
        let class = i % 3;
        csv += &format!(
            "{},{},{class}\n",
            class as f64 + 0.01 * i as f64,
            -(class as f64)
        );
    }
    std::fs::write(&good, csv).unwrap();
    let run = dir.join("run");
    ok(&[
        "train",
        "--dataset",
        good.to_str().unwrap(),
        "--label-column",
        "-1",
        "--steps",
        "10",
        "--width",
        "8",
        "--batch",
        "16",
        "--guidance",
        "target:1.5",
        "--out",
        run.to_str().unwrap(),
    ]);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["train"]["model"]["classes"], 3);
    assert_eq!(config["train"]["model"]["dim"], 2);
    assert_eq!(config["dataset"]["label_column"], -1);

    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "x,label\n1.0,0\n2.0,2.5\n3.0,1\n").unwrap();
    let out = dir.join("never");
    refused(
        &[
            "train",
            "--dataset",
            bad.to_str().unwrap(),
            "--label-column",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
        "line 3, column 2",
    );
    assert!(!out.exists());
    refused(
        &[
            "train",
            "--dataset",
            "two_moons",
            "--label-column",
            "0",
            "--out",
            out.to_str().unwrap(),
        ],
        "--label-column applies to a CSV / NPY file",
    );
    refused(
        &[
            "train",
            "--dataset",
            "two_moons",
            "--guidance",
            "input:3",
            "--out",
            out.to_str().unwrap(),
        ],
        "--guidance applies to a class-conditional model",
    );
    refused(
        &[
            "train",
            "--dataset",
            "digits",
            "--guidance",
            "input:3",
            "--label-dropout",
            "0",
            "--out",
            out.to_str().unwrap(),
        ],
        "guidance needs label dropout > 0",
    );
    refused(
        &[
            "train",
            "--dataset",
            "digits",
            "--guidance",
            "cfg:3",
            "--out",
            out.to_str().unwrap(),
        ],
        "--guidance cfg:3: expected none",
    );
    assert!(!out.exists());
}
