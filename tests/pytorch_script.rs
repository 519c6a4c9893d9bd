//! scripts/pytorch/continue_training.py (docs/pytorch.md) on real checkpoints: one from
//! `meanflow train` (unconditional, f32, EMA, warm-up, clipping, weight decay) and three
//! conditional ones written from a Rust `Trainer`: iMF with the v-head and guidance as an input
//! (f64, exact), MF with guidance in the target, and a resmlp trunk with iMF's guidance interval
//! as an input too (f64, exact).
//! Each must pass the script's check against `meanflow verify` within 1e-6, train a few steps with
//! finite losses and write its PyTorch file.
//!
//! Needs `python3` with `torch` and `safetensors`; without them each test prints why it is skipped
//! and passes (CI has no PyTorch).

use meanflow::flow::guidance::Guidance;
use meanflow::flow::loss::{LossConfig, LossPreset};
use meanflow::flow::model::{Architecture, Heads, ModelConfig};
use meanflow::flow::time_sampler::TimeSampler;
use meanflow::io::tensor_file::{StoredTensor, TensorFile};
use meanflow::linalg::float::Float;
use meanflow::rng::Rng;
use meanflow::train::checkpoint::Checkpoint;
use meanflow::train::optim::AdamConfig;
use meanflow::train::{TrainConfig, Trainer, TrainingData};
use ndarray::Array2;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The error the script must reach against the Rust engine, in f64.
const CHECK_TOL: f64 = 1e-6;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pytorch/continue_training.py")
}

fn meanflow_bin() -> &'static str {
    env!("CARGO_BIN_EXE_meanflow")
}

/// Why PyTorch cannot run here, or None if `python3 -c 'import torch, safetensors'` succeeds.
fn pytorch_missing() -> Option<String> {
    match Command::new("python3")
        .args(["-c", "import torch, safetensors"])
        .output()
    {
        Err(e) => Some(format!("python3 cannot be run: {e}")),
        Ok(out) if !out.status.success() => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().last().unwrap_or("no output").to_string();
            Some(format!("`import torch, safetensors` fails: {last}"))
        }
        Ok(_) => None,
    }
}

macro_rules! require_pytorch {
    ($test:expr) => {
        if let Some(why) = pytorch_missing() {
            println!(
                "skipped {}: {why} (needs python3 with torch and safetensors)",
                $test
            );
            return;
        }
    };
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run_script(checkpoint: &Path, data: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new("python3")
        .arg(script())
        .arg(checkpoint)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args([
            "--meanflow",
            meanflow_bin(),
            "--device",
            "cpu",
            "--log-every",
            "1",
        ])
        .args(extra)
        // One thread each: the tests run side by side on a small machine.
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("python3 runs")
}

/// The max relative error the script printed for its check.
fn check_error(stdout: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("check against meanflow verify:"))
        .unwrap_or_else(|| panic!("no check line in:\n{stdout}"));
    let after = line
        .split("max relative error ")
        .nth(1)
        .unwrap_or_else(|| panic!("{line}"));
    after
        .split_whitespace()
        .next()
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

/// Runs the script for `steps` steps from step `start` and checks what it printed and wrote.
fn continue_and_check(
    checkpoint: &Path,
    data: &Path,
    start: u64,
    steps: u64,
    uv: bool,
    extra: &[&str],
) -> String {
    let dir = checkpoint.parent().unwrap();
    let out_file = dir.join("continued.pt");
    let began = std::time::Instant::now();
    let steps_arg = steps.to_string();
    let mut args = vec!["--steps", steps_arg.as_str()];
    args.extend(extra);
    let out = run_script(checkpoint, data, &out_file, &args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    println!("{stdout}({:.1}s)", began.elapsed().as_secs_f64());
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let error = check_error(&stdout);
    assert!(
        error <= CHECK_TOL,
        "max relative error {error:e}:\n{stdout}"
    );
    let losses: Vec<f64> = stdout
        .lines()
        .filter(|l| l.starts_with("step "))
        .map(|l| {
            let mut words = l.split_whitespace();
            let k: u64 = words.nth(1).unwrap().parse().unwrap();
            assert_eq!(words.next(), Some("loss"), "{l}");
            assert_eq!(l.contains(" loss_v "), uv, "{l}");
            let loss: f64 = words.next().unwrap().parse().unwrap();
            assert!(loss.is_finite() && loss >= 0.0, "{l}");
            k
        })
        .map(|k| k as f64)
        .collect();
    let want: Vec<f64> = (start + 1..=start + steps).map(|k| k as f64).collect();
    assert_eq!(losses, want, "{stdout}");
    assert!(
        stdout.contains(&format!("(step {})", start + steps)),
        "{stdout}"
    );
    assert!(
        std::fs::metadata(&out_file).is_ok_and(|m| m.len() > 0),
        "{out_file:?} not written"
    );
    stdout
}

/// The script's check of the step meanflow took after the checkpoint, within `CHECK_TOL`.
fn assert_step_replayed(stdout: &str) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("check of step"))
        .unwrap_or_else(|| panic!("no step check in:\n{stdout}"));
    let error: f64 = line
        .split("max relative error ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(error <= CHECK_TOL, "{line}");
}

#[test]
fn a_cli_checkpoint_continues_in_pytorch() {
    require_pytorch!("a_cli_checkpoint_continues_in_pytorch");
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let data = dir.path().join("moons.npy");
    let cli = |args: &[&str]| {
        let out = Command::new(meanflow_bin()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    };
    cli(&[
        "train",
        "--dataset",
        "two_moons",
        "--loss",
        "imf",
        "--steps",
        "20",
        "--width",
        "16",
        "--depth",
        "2",
        "--batch",
        "32",
        "--conditioning",
        "fourier2",
        "--warmup",
        "30",
        "--clip",
        "1.0",
        "--weight-decay",
        "0.01",
        "--ema",
        "0.99",
        "--eval-every",
        "0",
        "--out",
        run.to_str().unwrap(),
    ]);
    cli(&[
        "data",
        "--dataset",
        "two_moons",
        "--n",
        "1000",
        "--out",
        data.to_str().unwrap(),
    ]);
    let checkpoint = run.join("checkpoint.safetensors");
    continue_and_check(&checkpoint, &data, 20, 8, false, &[]);

    // The check can fail: below rounding it must, and then nothing is trained.
    let out = run_script(
        &checkpoint,
        &data,
        &dir.path().join("never.pt"),
        &["--steps", "3", "--tolerance", "1e-30"],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(check_error(&stdout) > 1e-30, "{stdout}");
    assert!(stdout.contains(") FAIL"), "{stdout}");
    assert!(!dir.path().join("never.pt").exists());
}

/// Three Gaussian blobs in 2-D, one class each.
fn blobs(n: usize) -> TrainingData {
    let mut rng = Rng::seed_from_u64(9);
    let centres = [(-2.0, 0.0), (2.0, 0.0), (0.0, 2.0)];
    let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
    let points = Array2::from_shape_fn((n, 2), |(i, j)| {
        let c = centres[labels[i]];
        (if j == 0 { c.0 } else { c.1 }) + 0.3 * rng.normal()
    });
    TrainingData { points, labels }
}

/// Trains `config` for `steps` on the blobs in precision T, writes the checkpoint and the data (a
/// CSV with the class last) into `dir`, and returns their paths.
fn conditional_checkpoint<T: Float>(
    config: TrainConfig,
    steps: usize,
    dir: &Path,
) -> (PathBuf, PathBuf) {
    let data = blobs(300);
    let mut csv = String::new();
    for (row, label) in data.points.rows().into_iter().zip(&data.labels) {
        writeln!(csv, "{:?},{:?},{label}", row[0], row[1]).unwrap();
    }
    let data_path = dir.join("blobs.csv");
    std::fs::write(&data_path, csv).unwrap();
    let mut trainer = Trainer::<T>::new(config, data);
    for _ in 0..steps {
        trainer.step().unwrap();
    }
    let checkpoint = dir.join("checkpoint.safetensors");
    Checkpoint::from_trainer(&trainer)
        .write(&checkpoint)
        .unwrap();
    write_next_step(&mut trainer, &dir.join("next_step.safetensors"));
    (checkpoint, data_path)
}

/// Takes one more step and writes its batch and the parameters and EMA after it, for the script's
/// `--check-step` (one shard: `threads` = 1).
fn write_next_step<T: Float>(trainer: &mut Trainer<T>, path: &Path) {
    assert_eq!(trainer.config.threads, 1);
    trainer.step().unwrap();
    let mut file = TensorFile::default();
    let mut put = |name: String, values: Array2<f64>| {
        let shape = vec![values.nrows(), values.ncols()];
        let stored = StoredTensor {
            shape,
            values,
            was_f32: false,
        };
        file.tensors.insert(name, stored);
    };
    let f64s = |a: &Array2<T>| a.mapv(|x| x.to_f64());
    let batch = trainer.engine.shards()[0].batch();
    put("batch.x".into(), f64s(&batch.x));
    put("batch.e".into(), f64s(&batch.e));
    put("batch.t".into(), f64s(&batch.t));
    put("batch.r".into(), f64s(&batch.r));
    let labels = batch.labels.iter().map(|&c| c as f64).collect::<Vec<_>>();
    put(
        "batch.labels".into(),
        Array2::from_shape_vec((labels.len(), 1), labels).unwrap(),
    );
    if trainer.config.model.guidance_input {
        put("batch.scales".into(), f64s(&batch.scales));
    }
    if trainer.config.model.guidance_interval_input {
        put("batch.intervals".into(), f64s(&batch.intervals));
    }
    for (name, values) in trainer.params.named_tensors() {
        put(format!("after.{name}"), values.mapv(|x| x.to_f64()));
    }
    if let Some(ema) = &trainer.ema {
        for (name, values) in ema.named_tensors() {
            put(format!("after.ema.{name}"), values.mapv(|x| x.to_f64()));
        }
    }
    file.write(path, false).unwrap();
}

fn conditional_config(loss: LossConfig, heads: Heads) -> TrainConfig {
    TrainConfig {
        model: ModelConfig {
            width: 16,
            depth: 2,
            heads,
            classes: 3,
            class_dim: 4,
            guidance_input: loss.guidance.is_input(),
            ..ModelConfig::default()
        },
        loss,
        time: TimeSampler::imf_default(),
        adam: AdamConfig {
            clip_norm: Some(2.0),
            ..AdamConfig::default()
        },
        batch: 24,
        ema_decay: Some(0.95),
        seed: 5,
        threads: 1,
    }
}

#[test]
fn a_conditional_imf_head_checkpoint_with_guidance_as_input_continues_in_pytorch() {
    require_pytorch!(
        "a_conditional_imf_head_checkpoint_with_guidance_as_input_continues_in_pytorch"
    );
    let dir = tempfile::tempdir().unwrap();
    let loss = LossConfig {
        exact: true,
        guidance: Guidance::Input { w_max: 3.0 },
        label_dropout: 0.25,
        ..LossConfig::preset(LossPreset::ImfHead)
    };
    let config = conditional_config(loss, Heads::UV);
    let (checkpoint, data) = conditional_checkpoint::<f64>(config, 6, dir.path());
    let next = dir.path().join("next_step.safetensors");
    let next = ["--check-step", next.to_str().unwrap()];
    let stdout = continue_and_check(&checkpoint, &data, 6, 6, true, &next);
    assert_step_replayed(&stdout);
}

#[test]
fn a_conditional_mf_checkpoint_with_guidance_in_the_target_continues_in_pytorch() {
    require_pytorch!(
        "a_conditional_mf_checkpoint_with_guidance_in_the_target_continues_in_pytorch"
    );
    let dir = tempfile::tempdir().unwrap();
    let loss = LossConfig {
        guidance: Guidance::Target { w: 2.0, kappa: 0.3 },
        label_dropout: 0.2,
        ..LossConfig::preset(LossPreset::Mf)
    };
    let mut config = conditional_config(loss, Heads::U);
    config.time = TimeSampler::mf_default();
    config.adam.weight_decay = 0.05;
    config.adam.warmup_steps = 10;
    let (checkpoint, data) = conditional_checkpoint::<f64>(config, 6, dir.path());
    let next = dir.path().join("next_step.safetensors");
    let next = ["--check-step", next.to_str().unwrap()];
    let stdout = continue_and_check(&checkpoint, &data, 6, 6, false, &next);
    assert_step_replayed(&stdout);
}

/// A resmlp (input layer, 2 residual blocks with layer norm that see c, LN of the last) written
/// from a `Trainer`: iMF with the v-head source, exact (the gradient goes through the JVP of every
/// layer norm, reverse over forward), guidance and its interval as inputs, f64. The script builds
/// the module from the config's architecture and its check, the replay of the next step and the
/// training must pass as for an mlp.
#[test]
fn a_resmlp_checkpoint_with_the_interval_input_continues_in_pytorch() {
    require_pytorch!("a_resmlp_checkpoint_with_the_interval_input_continues_in_pytorch");
    let dir = tempfile::tempdir().unwrap();
    let loss = LossConfig {
        exact: true,
        guidance: Guidance::Input { w_max: 3.0 },
        label_dropout: 0.25,
        ..LossConfig::preset(LossPreset::ImfHead)
    };
    let mut config = conditional_config(loss, Heads::UV);
    config.model.architecture = Architecture::Residual;
    config.model.guidance_interval_input = true;
    let (checkpoint, data) = conditional_checkpoint::<f64>(config, 6, dir.path());
    let next = dir.path().join("next_step.safetensors");
    let next = ["--check-step", next.to_str().unwrap()];
    let stdout = continue_and_check(&checkpoint, &data, 6, 6, true, &next);
    assert!(stdout.contains("model resmlp 2 x 16"), "{stdout}");
    assert_step_replayed(&stdout);
}
