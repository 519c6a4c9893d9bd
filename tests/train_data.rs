//! `meanflow train` on a user's own table, end to end: columns of mixed scales are standardised
//! (the model's units are recorded in config.json and undone by `sample`), labels never reach an
//! unconditional model, and data too large for the training precision stop the run with one line
//! and a checkpoint the tool reads back.

use std::path::Path;

mod common;

use common::{run as meanflow, succeeds};

fn scratch(name: &str) -> std::path::PathBuf {
    common::scratch("train_data", name)
}

/// A labelled table: class k's points are N(means[k], diag(sd^2)) in three columns whose scales
/// are 0.1, 1 and 1000 (as wine's run from 0.1 to 1000), label last. A deterministic LCG with a
/// Box-Muller transform, so the file is the same on every machine.
fn mixed_scale_table(path: &Path, rows_per_class: usize) {
    let means = [[0.3, -1.0, 800.0], [0.6, 0.0, 1200.0], [0.9, 1.0, 1600.0]];
    let sd = [0.05, 0.3, 100.0];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut text = String::new();
    for (k, mean) in means.iter().enumerate() {
        for _ in 0..rows_per_class {
            let mut row = Vec::new();
            for j in 0..3 {
                let (u1, u2) = (uniform(), uniform());
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                row.push(format!("{}", mean[j] + sd[j] * z));
            }
            row.push(k.to_string());
            text.push_str(&row.join(","));
            text.push('\n');
        }
    }
    std::fs::write(path, text).unwrap();
}

/// The per-column means of a CSV of samples.
fn column_means(path: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(path).unwrap();
    let rows: Vec<Vec<f64>> = text
        .lines()
        .filter(|l| {
            l.chars()
                .next()
                .is_some_and(|c| c == '-' || c.is_ascii_digit())
        })
        .map(|l| l.split(',').map(|x| x.parse().unwrap()).collect())
        .collect();
    let n = rows.len() as f64;
    (0..rows[0].len())
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n)
        .collect()
}

/// `--unconditional` on labelled data trains, evaluates and draws its pictures without ever
/// giving a class to the unconditional model (it panicked at the first evaluation: "class 2 of a
/// model with 0 classes"), and the checkpoint samples.
#[test]
fn an_unconditional_model_of_labelled_data_evaluates_and_samples() {
    let dir = scratch("unconditional");
    mixed_scale_table(&dir.join("table.csv"), 40);
    let out = succeeds(
        &dir,
        &[
            "train",
            "--dataset",
            "table.csv",
            "--label-column",
            "-1",
            "--unconditional",
            "--steps",
            "60",
            "--eval-every",
            "20",
            "--out",
            "run",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("sliced W1"), "{stdout}");
    assert!(dir.join("run/samples.png").exists());
    let config = std::fs::read_to_string(dir.join("run/config.json")).unwrap();
    assert!(config.contains("\"classes\": 0"), "{config}");
    succeeds(
        &dir,
        &[
            "sample",
            "--checkpoint",
            "run/checkpoint.safetensors",
            "--n",
            "5",
            "--out",
            "s.csv",
        ],
    );
}

/// `--unconditional` on data without labels says nothing, so it is refused like every flag that
/// does not apply, and nothing is written.
#[test]
fn unconditional_on_unlabelled_data_is_refused() {
    let dir = scratch("unconditional_unlabelled");
    mixed_scale_table(&dir.join("table.csv"), 10);
    for dataset in ["table.csv", "two_moons"] {
        let out = meanflow(
            &dir,
            &[
                "train",
                "--dataset",
                dataset,
                "--unconditional",
                "--out",
                "run",
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{dataset}: {stderr}");
        assert!(
            stderr.starts_with("error: --unconditional applies to labelled data"),
            "{dataset}: {stderr}"
        );
        assert!(!dir.join("run").exists());
    }
}

/// A table whose columns have scales 0.1, 1 and 1000 trains as given: config.json records each
/// column's mean and deviation over the training pool, the samples come back in the data's units,
/// and the per-class means of the samples are within a tenth of the class's deviation... of the
/// largest column at least; the small column, which the model once drew as noise of deviation 1
/// (data: 0.05), is within 0.5 of its class deviation.
#[test]
fn a_table_of_mixed_scales_is_standardised_and_sampled_back_in_its_units() {
    let dir = scratch("mixed_scales");
    mixed_scale_table(&dir.join("table.csv"), 200);
    succeeds(
        &dir,
        &[
            "train",
            "--dataset",
            "table.csv",
            "--label-column",
            "-1",
            "--steps",
            "1500",
            "--eval-every",
            "0",
            "--out",
            "run",
        ],
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/config.json")).unwrap())
            .unwrap();
    let scale: Vec<f64> = config["units"]["scale"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    // Each column's deviation over the whole table: the class spread and the noise.
    for (j, (got, expected)) in scale.iter().zip([0.25, 0.87, 330.0]).enumerate() {
        assert!(
            (got / expected - 1.0).abs() < 0.1,
            "column {j}: scale {got}, expected about {expected}"
        );
    }
    let class_sd = [0.05, 0.3, 100.0];
    let means = [[0.3, -1.0, 800.0], [0.6, 0.0, 1200.0], [0.9, 1.0, 1600.0]];
    for (k, mean) in means.iter().enumerate() {
        let file = format!("class{k}.csv");
        succeeds(
            &dir,
            &[
                "sample",
                "--checkpoint",
                "run/checkpoint.safetensors",
                "--class",
                &k.to_string(),
                "--n",
                "2000",
                "--out",
                &file,
            ],
        );
        let got = column_means(&dir.join(&file));
        for j in 0..3 {
            let off = (got[j] - mean[j]).abs() / class_sd[j];
            assert!(
                off < 0.5,
                "class {k}, column {j}: sample mean {} against {}, {off:.2} deviations off",
                got[j],
                mean[j]
            );
        }
    }
}

/// Data whose gradients Adam cannot square in f32 (N(0, 1) x 1e12 in the data's own units) stop
/// the run at its first step with one line naming the cause and what to do, exit 1, and leave the
/// step-0 checkpoint, which `sample` reads (it used to train on with an infinite second moment and
/// write a checkpoint every command refused). Standardised, as by default, the same file trains.
#[test]
fn data_too_large_for_f32_stop_the_run_with_a_readable_checkpoint() {
    let dir = scratch("too_large");
    let mut text = String::new();
    for i in 0..200 {
        let x = (i as f64 * 0.731).sin() * 1e12;
        let y = (i as f64 * 1.37).cos() * 1e12;
        text.push_str(&format!("{x},{y}\n"));
    }
    std::fs::write(dir.join("big.csv"), text).unwrap();
    let out = meanflow(
        &dir,
        &[
            "train",
            "--dataset",
            "big.csv",
            "--no-standardize",
            "--steps",
            "50",
            "--out",
            "raw",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let error = stderr.lines().find(|l| l.starts_with("error: ")).unwrap();
    for needle in [
        "step 1: gradient norm",
        "f32",
        "--no-standardize",
        "--precision f64",
    ] {
        assert!(error.contains(needle), "{needle:?} not in {error}");
    }
    succeeds(
        &dir,
        &[
            "sample",
            "--checkpoint",
            "raw/checkpoint.safetensors",
            "--n",
            "3",
            "--out",
            "s.csv",
        ],
    );
    succeeds(
        &dir,
        &[
            "train",
            "--dataset",
            "big.csv",
            "--steps",
            "50",
            "--eval-every",
            "0",
            "--out",
            "std",
        ],
    );
}

/// A resumed run keeps its units: `--no-standardize` against a standardised run is refused, and
/// on a built-in dataset (which has its own units), fresh or resumed, too.
#[test]
fn no_standardize_is_refused_where_it_cannot_apply() {
    let dir = scratch("no_standardize");
    mixed_scale_table(&dir.join("table.csv"), 20);
    succeeds(
        &dir,
        &[
            "train",
            "--dataset",
            "table.csv",
            "--steps",
            "10",
            "--eval-every",
            "0",
            "--out",
            "run",
        ],
    );
    let moons = [
        "train",
        "--dataset",
        "two_moons",
        "--steps",
        "10",
        "--out",
        "moons",
    ];
    succeeds(&dir, &moons);
    for args in [
        &[
            "train",
            "--resume",
            "moons",
            "--steps",
            "20",
            "--no-standardize",
        ][..],
        &[
            "train",
            "--resume",
            "run",
            "--steps",
            "20",
            "--no-standardize",
        ][..],
        &[
            "train",
            "--dataset",
            "two_moons",
            "--no-standardize",
            "--out",
            "toy",
        ][..],
    ] {
        let out = meanflow(&dir, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("--no-standardize"), "{args:?}: {stderr}");
    }
    assert!(!dir.join("toy").exists());
}

/// Two recipes that diverge on two_moons (learning rates 0.1 and 0.03, ten times the default and
/// more): in f64 the loss climbs through finite values, and the divergence guard stops the run
/// after three metrics lines above 100x the median; in f32 the gradient outgrows what Adam can
/// square first. Either way: exit 1, one line that says the loss diverged and what to try, and
/// the last checkpoint on disk is from before the climb, which `sample` reads. (Such a run used to
/// train on for thousands of steps at a loss of 1e31 and exit 0.)
#[test]
fn a_diverging_run_stops_with_the_last_good_checkpoint() {
    let dir = scratch("diverging");
    for (name, precision, lr) in [("guard", "f64", "0.1"), ("overflow", "f32", "0.03")] {
        let out = meanflow(
            &dir,
            &[
                "train",
                "--dataset",
                "two_moons",
                "--precision",
                precision,
                "--lr",
                lr,
                "--steps",
                "3000",
                "--log-every",
                "10",
                "--checkpoint-every",
                "20",
                "--eval-every",
                "0",
                "--out",
                name,
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        let error = stderr.lines().find(|l| l.starts_with("error: ")).unwrap();
        for needle in [
            "the loss diverged",
            "--lr",
            "--clip",
            "last good checkpoint",
        ] {
            assert!(error.contains(needle), "{name}: {needle:?} not in {error}");
        }
        let step: u64 = error
            .split("checkpoint (step ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no checkpoint step in {error}"));
        // The checkpoint is that step's, and its line's error is of the run's usual size (step
        // 0, the initial weights, has no line: the f64 run explodes within its first lines).
        let lines = common::metrics(&dir.join(name));
        if let Some(at) = lines.iter().find(|l| l["step"] == step) {
            assert!(at["mse"].as_f64().unwrap() < 100.0, "{name}: {at}");
        } else {
            assert_eq!(step, 0, "{name}: no metrics line at the checkpoint's step");
        }
        let sampled = succeeds(
            &dir,
            &[
                "sample",
                "--checkpoint",
                &format!("{name}/checkpoint.safetensors"),
                "--n",
                "3",
                "--out",
                &format!("{name}.csv"),
            ],
        );
        let said = String::from_utf8_lossy(&sampled.stdout);
        assert!(said.contains(&format!("step {step})")), "{name}: {said}");
    }
}

/// MF's guidance interval trains (config.json records it), and is refused where it does not
/// apply: with guidance as an input, without guidance, reversed or outside [0, 1], or given to
/// an unconditional model; a resume with another interval is refused.
#[test]
fn the_guidance_interval_trains_and_is_refused_where_it_does_not_apply() {
    let dir = scratch("guidance_interval");
    mixed_scale_table(&dir.join("table.csv"), 20);
    let labelled = [
        "train",
        "--dataset",
        "table.csv",
        "--label-column",
        "-1",
        "--steps",
        "20",
    ];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        labelled.iter().chain(extra).copied().collect()
    };
    succeeds(
        &dir,
        &with(&[
            "--loss",
            "mf",
            "--guidance",
            "target:2",
            "--guidance-interval",
            "0.3,0.7",
            "--eval-every",
            "0",
            "--out",
            "run",
        ]),
    );
    let config = std::fs::read_to_string(dir.join("run/config.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(
        config["train"]["loss"]["guidance_interval"],
        serde_json::json!([0.3, 0.7])
    );
    for (args, needle) in [
        (
            with(&["--guidance", "input:2", "--guidance-interval", "0.3,0.7"]),
            "target",
        ),
        (with(&["--guidance-interval", "0.3,0.7"]), "target"),
        (
            with(&["--guidance", "target:2", "--guidance-interval", "0.7,0.3"]),
            "t_min < t_max",
        ),
        (
            with(&["--guidance", "target:2", "--guidance-interval", "0,1.5"]),
            "t_max <= 1",
        ),
        (
            with(&["--guidance", "target:2", "--guidance-interval", "0.3"]),
            "T_MIN,T_MAX",
        ),
        (
            vec![
                "train",
                "--dataset",
                "table.csv",
                "--guidance-interval",
                "0.3,0.7",
            ],
            "class-conditional",
        ),
        (
            vec![
                "train",
                "--resume",
                "run",
                "--steps",
                "30",
                "--guidance-interval",
                "0.2,0.7",
            ],
            "guidance-interval",
        ),
    ] {
        let mut args = args;
        if args[1] != "--resume" {
            args.extend(["--out", "refused"]);
        }
        let out = meanflow(&dir, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {needle:?} not in {stderr}"
        );
        assert!(!dir.join("refused").exists());
    }
}

/// r's own logit-normal (`--r-time-mu`, `--r-time-sigma`, py-meanflow's sampler) is recorded in
/// config.json beside t's, kept by a resume, and refused with uniform times or another value on
/// resume.
#[test]
fn r_of_its_own_distribution_is_recorded_and_kept() {
    let dir = scratch("r_distribution");
    succeeds(
        &dir,
        &[
            "train",
            "--dataset",
            "two_moons",
            "--steps",
            "10",
            "--eval-every",
            "0",
            "--r-time-mu",
            "-4",
            "--out",
            "run",
        ],
    );
    let config = std::fs::read_to_string(dir.join("run/config.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(
        config["train"]["time"]["r_distribution"],
        serde_json::json!({"kind": "logit-normal", "mu": -4.0, "sigma": 1.0})
    );
    succeeds(
        &dir,
        &[
            "train",
            "--resume",
            "run",
            "--steps",
            "20",
            "--r-time-mu",
            "-4",
        ],
    );
    for args in [
        &[
            "train",
            "--resume",
            "run",
            "--steps",
            "30",
            "--r-time-sigma",
            "2",
        ][..],
        &[
            "train",
            "--dataset",
            "two_moons",
            "--time-dist",
            "uniform",
            "--r-time-mu",
            "-4",
            "--out",
            "u",
        ][..],
    ] {
        let out = meanflow(&dir, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("r-time"), "{args:?}: {stderr}");
    }
}
