//! Faults: a training process killed (SIGKILL) at random moments loses nothing but the steps since
//! its last checkpoint, and SIGTERM ends a run cleanly with exit code 143.

use meanflow::rng::Rng;
use meanflow::run::config::RunConfig;
use meanflow::train::checkpoint::Checkpoint;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

use common::BIN;

/// Tiny settings, a checkpoint every 7 steps (so that kills land during writes too) and an
/// evaluation every 50.
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
    "50",
    "--eval-samples",
    "64",
    "--checkpoint-every",
    "7",
];

/// Far more steps than a session runs before it is killed.
const ENDLESS: &str = "1000000000";

fn scratch(name: &str) -> PathBuf {
    common::scratch("kill_resume", name)
}

fn train_command(run: &Path, steps: &str) -> Command {
    let mut cmd = Command::new(BIN);
    if run.join("config.json").is_file() {
        cmd.args(["train", "--resume", run.to_str().unwrap(), "--steps", steps]);
    } else {
        cmd.args(["train", "--out", run.to_str().unwrap(), "--steps", steps]);
        cmd.args(TINY);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Sorted names in a folder.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `.NAME.tmpPID`: a temporary file or staging folder of `name`.
fn is_temporary(entry: &str, name: &str) -> bool {
    entry
        .strip_prefix(&format!(".{name}.tmp"))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

use common::metrics;

/// What a killed run leaves must be usable: the folder is absent, or it holds config.json,
/// metrics.jsonl and a checkpoint that load (plus, at most, temporary files of those). Returns the
/// checkpoint's step, and whether a temporary file or staging folder was left.
fn check_remains(dir: &Path, run: &Path, kill: usize) -> (Option<u64>, bool) {
    let stagings: Vec<String> = entries(dir)
        .into_iter()
        .filter(|e| e != "run")
        .inspect(|e| assert!(is_temporary(e, "run"), "kill {kill}: stray entry {e}"))
        .collect();
    assert!(
        stagings.len() <= 1,
        "kill {kill}: staging folders pile up: {stagings:?}"
    );
    if !run.exists() {
        return (None, !stagings.is_empty());
    }
    let names = entries(run);
    for name in &names {
        let known = [
            ".lock",
            "checkpoint.safetensors",
            "config.json",
            "metrics.jsonl",
        ];
        assert!(
            known.contains(&name.as_str()) || known.iter().any(|k| is_temporary(name, k)),
            "kill {kill}: unexpected file {name} in the run folder: {names:?}"
        );
    }
    let text = std::fs::read_to_string(run.join("config.json"))
        .unwrap_or_else(|e| panic!("kill {kill}: config.json: {e}"));
    RunConfig::parse(&text).unwrap_or_else(|e| panic!("kill {kill}: config.json: {e}"));
    let ck = Checkpoint::read(&run.join("checkpoint.safetensors"))
        .unwrap_or_else(|e| panic!("kill {kill}: {e}"));
    // metrics.jsonl is appended line by line: every complete line parses (a kill in the middle
    // of a write may leave a last line without its newline, which a resume drops).
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let complete = log.rsplit_once('\n').map_or("", |(done, _)| done);
    for line in complete.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("kill {kill}: metrics line {line:?}: {e}"));
        assert!(v["step"].as_u64().is_some(), "kill {kill}: {line}");
    }
    let temporaries =
        !stagings.is_empty() || names.iter().any(|n| n.starts_with('.') && n != ".lock");
    (Some(ck.step), temporaries)
}

#[test]
fn sigkill_at_random_moments_loses_nothing_and_resumes_exactly() {
    let dir = scratch("sigkill");
    let run = dir.join("run");
    let mut rng = Rng::seed_from_u64(0x5EED_0007);
    let mut step = None::<u64>;
    let mut resumed_from_a_checkpoint = 0;
    let mut kills = 0;
    let mut left_temporaries = 0;
    // At least 20 kills; a few more if the checkpoint has not moved past step 0 three times yet
    // (a slow machine), at most 40.
    while kills < 20 || (resumed_from_a_checkpoint < 3 && kills < 40) {
        if step.is_some_and(|s| s > 0) {
            resumed_from_a_checkpoint += 1;
        }
        let mut child = train_command(&run, ENDLESS).spawn().unwrap();
        // A quarter of the kills in the first 10 ms (setting up the run folder), the others
        // later, during steps and checkpoint writes.
        let delay_us = if rng.below(4) == 0 {
            rng.below(10_000)
        } else {
            10_000 + rng.below(140_000)
        };
        std::thread::sleep(Duration::from_micros(delay_us as u64));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            status.code().is_none(),
            "kill {kills}: the run ended by itself: {status}"
        );
        kills += 1;
        let (now, temporaries) = check_remains(&dir, &run, kills);
        left_temporaries += usize::from(temporaries);
        if let (Some(before), None) = (step, now) {
            panic!("kill {kills}: the run folder (checkpoint at step {before}) disappeared");
        }
        if let (Some(before), Some(after)) = (step, now) {
            assert!(
                after >= before,
                "kill {kills}: the checkpoint went back from step {before} to {after}"
            );
        }
        step = now;
    }
    assert!(
        resumed_from_a_checkpoint >= 3,
        "only {resumed_from_a_checkpoint} sessions resumed from a checkpoint past step 0"
    );

    eprintln!(
        "{kills} kills ({left_temporaries} left a temporary file or folder); {resumed_from_a_checkpoint} sessions resumed from a checkpoint past step 0; last checkpoint at step {step:?}"
    );
    // Finish the run, then run the same length without interruption: the same metrics and the
    // same checkpoint file, byte for byte.
    let total = (step.unwrap_or(0) + 60).to_string();
    let status = train_command(&run, &total).status().unwrap();
    assert!(status.success(), "the final resume failed: {status}");
    let mut expected = vec![
        ".lock",
        "checkpoint.safetensors",
        "config.json",
        "metrics.jsonl",
    ];
    if run.join("samples.png").exists() {
        expected.extend(["loss.png", "samples.png"]);
    }
    expected.sort();
    assert_eq!(
        entries(&run),
        expected,
        "temporary files left after a resume"
    );
    let reference = dir.join("reference");
    let status = train_command(&reference, &total).status().unwrap();
    assert!(status.success());
    assert_eq!(metrics(&run), metrics(&reference));
    assert_eq!(
        std::fs::read(run.join("checkpoint.safetensors")).unwrap(),
        std::fs::read(reference.join("checkpoint.safetensors")).unwrap(),
        "checkpoint bytes differ from the uninterrupted run's"
    );
}

#[test]
fn sigterm_finishes_the_step_writes_the_checkpoint_and_exits_143() {
    let dir = scratch("sigterm");
    let run = dir.join("run");
    let child = train_command(&run, ENDLESS)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_for_metrics_lines(&run, 2);
    common::send_signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    let ck = Checkpoint::read(&run.join("checkpoint.safetensors")).unwrap();
    assert!(ck.step >= 10, "stopped at step {}", ck.step);
    assert!(
        stderr.contains(&format!("interrupted at step {} (SIGTERM)", ck.step)),
        "{stderr}"
    );
    // The run continues from there.
    let total = (ck.step + 20).to_string();
    let status = train_command(&run, &total).status().unwrap();
    assert!(status.success());
    let after = Checkpoint::read(&run.join("checkpoint.safetensors")).unwrap();
    assert_eq!(after.step, ck.step + 20);
}
