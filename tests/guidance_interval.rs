//! iMF's guidance interval as an input, end to end: `train --guidance input:WMAX
//! --guidance-interval random` on a small labelled CSV trains a model that takes (w, t_min, t_max),
//! resumes bit for bit, and samples with `sample --guidance W --interval A,B`; the flags that do
//! not fit are refused with one line and nothing written.

mod common;

use common::{refused, succeeds};
use std::path::Path;

fn scratch(name: &str) -> std::path::PathBuf {
    common::scratch("guidance_interval", name)
}

/// Three classes of 2-D points around (-2, 0), (0, 2) and (2, 0), label last; deterministic.
fn labelled_table(path: &Path) {
    let centres = [[-2.0, 0.0], [0.0, 2.0], [2.0, 0.0]];
    let mut text = String::new();
    for i in 0..90 {
        let k = i % 3;
        let a = 0.37 * i as f64;
        let (x, y) = (
            centres[k][0] + 0.3 * a.sin(),
            centres[k][1] + 0.3 * (1.7 * a).cos(),
        );
        text.push_str(&format!("{x},{y},{k}\n"));
    }
    std::fs::write(path, text).unwrap();
}

/// `train` on the table with the given extra flags into `out`.
fn train(dir: &Path, out: &str, steps: &str, extra: &[&str]) {
    let mut args = vec![
        "train",
        "--dataset",
        "table.csv",
        "--label-column",
        "-1",
        "--width",
        "16",
        "--depth",
        "2",
        "--batch",
        "24",
        "--steps",
        steps,
        "--eval-every",
        "0",
        "--checkpoint-every",
        "0",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    succeeds(dir, &args);
}

fn sample(dir: &Path, out: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "sample",
        "--checkpoint",
        "run/checkpoint.safetensors",
        "--class",
        "all",
        "--n",
        "9",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    succeeds(dir, &args);
    std::fs::read_to_string(dir.join(out)).unwrap()
}

const INTERVAL_RUN: [&str; 4] = ["--guidance", "input:3", "--guidance-interval", "random"];

/// The run records the interval input, resumes to the checkpoint of an uninterrupted run byte for
/// byte, and samples with `--interval`: the interval changes the samples, and no `--interval` is
/// [0, 1].
#[test]
fn a_model_with_the_interval_input_trains_resumes_and_samples() {
    let dir = scratch("train_sample");
    labelled_table(&dir.join("table.csv"));
    train(&dir, "run", "40", &INTERVAL_RUN);
    let config = std::fs::read_to_string(dir.join("run/config.json")).unwrap();
    assert!(
        config.contains("\"guidance_interval_input\": true"),
        "{config}"
    );

    // Resumed to 80 steps (the interval flag restated) against 80 steps in one go.
    let mut resume = vec!["train", "--resume", "run", "--steps", "80"];
    resume.extend_from_slice(&INTERVAL_RUN);
    succeeds(&dir, &resume);
    train(&dir, "straight", "80", &INTERVAL_RUN);
    assert!(
        std::fs::read(dir.join("run/checkpoint.safetensors")).unwrap()
            == std::fs::read(dir.join("straight/checkpoint.safetensors")).unwrap(),
        "the resumed checkpoint differs from the uninterrupted run's"
    );

    let official = sample(
        &dir,
        "a.csv",
        &["--guidance", "3", "--interval", "0.4,0.65"],
    );
    let full = sample(&dir, "b.csv", &["--guidance", "3", "--interval", "0,1"]);
    let default = sample(&dir, "c.csv", &["--guidance", "3"]);
    assert_ne!(official, full, "the interval is an input: it changes u");
    assert_eq!(full, default, "no --interval is [0, 1]");
    assert_eq!(official.lines().count(), 9);
}

/// `--guidance-interval random` goes with `--guidance input:WMAX` only, MF's fixed interval not
/// with it; a resume keeps its interval; `--interval` needs a model that takes one and an
/// interval 0 <= A < B <= 1.
#[test]
fn flags_that_do_not_fit_are_refused() {
    let dir = scratch("refusals");
    labelled_table(&dir.join("table.csv"));
    let base = [
        "train",
        "--dataset",
        "table.csv",
        "--label-column",
        "-1",
        "--out",
        "x",
    ];
    let with = |extra: &[&'static str]| {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        v
    };
    refused(
        &dir,
        &with(&["--guidance", "target:2", "--guidance-interval", "random"]),
        &["--guidance-interval random", "--guidance input:WMAX"],
    );
    refused(
        &dir,
        &with(&["--guidance-interval", "random"]),
        &["--guidance-interval random", "iMF's"],
    );
    refused(
        &dir,
        &with(&["--guidance", "input:3", "--guidance-interval", "0.3,0.7"]),
        &["guidance in the target", "--guidance-interval random"],
    );
    refused(
        &dir,
        &with(&["--guidance", "input:3", "--guidance-interval", "sometimes"]),
        &["--guidance-interval sometimes", "random"],
    );

    // A model with a guidance input but no interval input.
    train(&dir, "run", "5", &["--guidance", "input:3"]);
    let sample = |extra: &[&'static str]| {
        let mut v = vec![
            "sample",
            "--checkpoint",
            "run/checkpoint.safetensors",
            "--n",
            "4",
            "--out",
            "s.csv",
        ];
        v.extend_from_slice(extra);
        v
    };
    refused(
        &dir,
        &sample(&["--guidance", "2", "--interval", "0.4,0.65"]),
        &[
            "--interval 0.4,0.65",
            "does not take a guidance interval",
            "--guidance-interval random",
        ],
    );
    refused(
        &dir,
        &["train", "--resume", "run", "--guidance-interval", "random"],
        &["--guidance-interval random conflicts", "none"],
    );

    train(&dir, "interval", "5", &INTERVAL_RUN);
    let sample_interval = |interval: &'static str| {
        vec![
            "sample",
            "--checkpoint",
            "interval/checkpoint.safetensors",
            "--n",
            "4",
            "--interval",
            interval,
            "--out",
            "s.csv",
        ]
    };
    for bad in ["0.7,0.2", "0.5,0.5", "-0.1,0.5", "0.2,1.5"] {
        refused(&dir, &sample_interval(bad), &["0 <= A < B <= 1"]);
    }
    refused(&dir, &sample_interval("0.4"), &["expected two times A,B"]);
    refused(
        &dir,
        &[
            "train",
            "--resume",
            "interval",
            "--guidance-interval",
            "0.2,0.8",
        ],
        &["--guidance-interval 0.2,0.8 conflicts", "random"],
    );
}
