//! Issue 13: one process per run folder, no panic on a stdout or stderr that cannot be written,
//! stop signals honoured in every long phase, the progress and metrics a long or short run owes.
//! (The bad-input cases of issue 13 are in tests/bad_input.rs.)

use meanflow::run::config::RunConfig;
use meanflow::train::checkpoint::Checkpoint;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::BIN;

fn scratch(name: &str) -> PathBuf {
    common::scratch("reliability", name)
}

/// Tiny settings: a few milliseconds per hundred steps.
const TINY: &[&str] = &[
    "--batch",
    "16",
    "--width",
    "8",
    "--depth",
    "2",
    "--eval-every",
    "0",
    "--log-every",
    "10",
];

fn train_command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("train")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The names in a folder, sorted (hidden ones too).
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn config_seed(run: &Path) -> u64 {
    let text = std::fs::read_to_string(run.join("config.json")).unwrap();
    RunConfig::parse(&text).unwrap().1.seed
}

#[test]
fn two_runs_into_one_folder_exactly_one_runs() {
    let dir = scratch("two_runs");
    for attempt in 0..20 {
        let run = dir.join("same");
        let _ = std::fs::remove_dir_all(&run);
        // Both endless: whichever starts second, however late, finds the first still running.
        let start = |seed: &str| -> Child {
            let mut args = vec!["--out", "same", "--steps", "1000000000", "--seed", seed];
            args.extend_from_slice(TINY);
            train_command(&dir, &args).spawn().unwrap()
        };
        let mut children = [(start("1"), 1u64), (start("2"), 2u64)];
        let waited = Instant::now();
        let first_done = loop {
            if let Some(i) = (0..2).find(|&i| children[i].0.try_wait().unwrap().is_some()) {
                break i;
            }
            assert!(
                waited.elapsed() < Duration::from_secs(60),
                "attempt {attempt}: both still running after 60 s"
            );
            std::thread::sleep(Duration::from_millis(2));
        };
        let [(a, seed_a), (b, seed_b)] = children;
        let ((loser, _), (winner, winner_seed)) = if first_done == 0 {
            ((a, seed_a), (b, seed_b))
        } else {
            ((b, seed_b), (a, seed_a))
        };
        let winner_pid = winner.id();
        let refused = loser.wait_with_output().unwrap();
        assert_eq!(refused.status.code(), Some(2), "attempt {attempt}");
        assert_eq!(
            text(&refused.stderr).trim(),
            format!("error: run folder same is in use by process {winner_pid}"),
            "attempt {attempt}"
        );
        common::wait_for_metrics_lines(&run, 2);
        common::send_signal(&winner, "TERM");
        let out = winner.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(143), "attempt {attempt}");
        // The folder is the winner's alone: config, checkpoint and metrics agree.
        assert_eq!(config_seed(&run), winner_seed, "attempt {attempt}");
        let ck = Checkpoint::read(&run.join("checkpoint.safetensors")).unwrap();
        assert_eq!(ck.config.seed, winner_seed, "attempt {attempt}");
        let steps: Vec<u64> = common::metrics(&run)
            .iter()
            .map(|l| l["step"].as_u64().unwrap())
            .collect();
        assert_eq!(
            steps,
            (1..=ck.step / 10).map(|k| 10 * k).collect::<Vec<_>>(),
            "attempt {attempt}: the metrics of one run up to its checkpoint"
        );
        // No staging folder is left behind.
        assert_eq!(entries(&dir), vec!["same"], "attempt {attempt}");
    }
}

#[test]
fn a_run_being_trained_cannot_be_resumed_or_reused() {
    let dir = scratch("live_resume");
    let mut args = vec!["--out", "run", "--steps", "1000000000"];
    args.extend_from_slice(TINY);
    let child = train_command(&dir, &args).spawn().unwrap();
    let run = dir.join("run");
    common::wait_for_metrics_lines(&run, 3);
    let step_before = Checkpoint::read(&run.join("checkpoint.safetensors"))
        .unwrap()
        .step;
    for args in [
        &["--resume", "run", "--steps", "20"][..],
        &["--resume", "run"],
        &["--out", "run", "--steps", "20"],
    ] {
        let out = train_command(&dir, args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            text(&out.stderr).trim(),
            format!("error: run folder run is in use by process {}", child.id()),
            "{args:?}"
        );
    }
    // Another command may read the live run and write beside it, not over its files.
    std::fs::write(dir.join("points.csv"), "1,2\n3,4\n5,6\n").unwrap();
    let other = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let out = other(&[
        "eval",
        "--samples",
        "points.csv",
        "--dataset",
        "two_moons",
        "--json",
        "run/config.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim(),
        format!(
            "error: --json run/config.json: run folder run is in use by process {}",
            child.id()
        )
    );
    let out = other(&[
        "sample",
        "--checkpoint",
        "run/checkpoint.safetensors",
        "--out",
        "run/mine.csv",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    common::send_signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", text(&out.stderr));
    let stopped = Checkpoint::read(&run.join("checkpoint.safetensors"))
        .unwrap()
        .step;
    assert!(stopped >= step_before);
    // Now that nobody holds it, the run continues.
    let target = (stopped + 10).to_string();
    let out = train_command(&dir, &["--resume", "run", "--steps", &target])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
#[cfg(unix)]
fn only_staging_folders_of_dead_processes_are_removed() {
    let dir = scratch("staging");
    // A live process (a sleeping child) and a dead one (a child that has exited).
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    for pid in [sleeper.id(), gone.id()] {
        let staging = dir.join(format!(".run.tmp{pid}"));
        std::fs::create_dir(&staging).unwrap();
        std::fs::write(staging.join("config.json"), "{}").unwrap();
    }
    let mut args = vec!["--out", "run", "--steps", "20"];
    args.extend_from_slice(TINY);
    let out = train_command(&dir, &args).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        entries(&dir),
        vec![format!(".run.tmp{}", sleeper.id()), "run".to_string()],
        "the live process's staging folder must stay, the dead one's go"
    );
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

/// Opens /dev/full for writing: every write fails with ENOSPC.
#[cfg(unix)]
fn dev_full() -> Stdio {
    Stdio::from(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    )
}

/// Runs `meanflow args` in `dir` with stdout, stderr or both on /dev/full.
#[cfg(unix)]
fn run_with_full(dir: &Path, args: &[&str], stdout_full: bool, stderr_full: bool) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir).stdin(Stdio::null());
    cmd.stdout(if stdout_full {
        dev_full()
    } else {
        Stdio::piped()
    });
    cmd.stderr(if stderr_full {
        dev_full()
    } else {
        Stdio::piped()
    });
    cmd.output().unwrap()
}

#[test]
#[cfg(unix)]
fn a_full_stdout_or_stderr_is_never_a_panic_and_the_files_are_written() {
    let dir = scratch("dev_full");
    let mut args = vec!["train", "--out", "base", "--steps", "30"];
    args.extend_from_slice(TINY);
    let out = run_with_full(&dir, &args, false, false);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::write(dir.join("points.csv"), "1,2\n3,4\n5,6\n7,8\n").unwrap();
    let reference = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .read_dir()
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .unwrap();
    let reference = reference.to_str().unwrap().to_string();
    // (arguments, the file the command must still write)
    let mut cases: Vec<(Vec<&str>, Option<&str>)> = vec![
        (
            vec![
                "sample",
                "--checkpoint",
                "base/checkpoint.safetensors",
                "--out",
                "s.csv",
                "--png",
                "s.png",
            ],
            Some("s.png"),
        ),
        (
            vec![
                "eval",
                "--samples",
                "points.csv",
                "--dataset",
                "two_moons",
                "--json",
                "e.json",
            ],
            Some("e.json"),
        ),
        (
            vec![
                "data",
                "--dataset",
                "circles",
                "--n",
                "10",
                "--out",
                "d.csv",
            ],
            Some("d.csv"),
        ),
        (vec!["verify", &reference], None),
        (
            vec!["study", "identity", "--quick", "--out", "study"],
            Some("study/summary.md"),
        ),
        (
            vec![
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
            ],
            None,
        ),
        (vec!["--help"], None),
        (vec!["train", "--help"], None),
        (vec!["--version"], None),
    ];
    let mut train = vec!["train", "--out", "t", "--steps", "30"];
    train.extend_from_slice(TINY);
    cases.push((train, Some("t/samples.png")));
    for (args, file) in &cases {
        for (stdout_full, stderr_full) in [(true, false), (false, true), (true, true)] {
            if let Some(file) = file {
                let path = dir.join(file);
                let _ = std::fs::remove_file(&path);
                if args[0] == "train" {
                    let _ = std::fs::remove_dir_all(dir.join("t"));
                }
                if args[0] == "study" {
                    let _ = std::fs::remove_dir_all(dir.join("study"));
                }
            }
            let out = run_with_full(&dir, args, stdout_full, stderr_full);
            let stderr = text(&out.stderr);
            let what = format!("{args:?} stdout full {stdout_full}, stderr full {stderr_full}");
            assert!(!stderr.contains("panicked"), "{what}: {stderr}");
            // Every case prints to stdout; train and study print progress to stderr too (the
            // others only errors and warnings, and a full stderr they never write to is no
            // failure).
            let prints_to_stderr = ["train", "study"].contains(&args[0]) && args.len() > 2;
            let expected = if stdout_full || (stderr_full && prints_to_stderr) {
                1
            } else {
                0
            };
            assert_eq!(out.status.code(), Some(expected), "{what}: {stderr}");
            if stdout_full && !stderr_full {
                assert!(
                    stderr
                        .lines()
                        .last()
                        .is_some_and(|l| l.starts_with("error: cannot write to standard output")),
                    "{what}: {stderr}"
                );
            }
            if let Some(file) = file {
                assert!(dir.join(file).is_file(), "{what}: {file} not written");
            }
        }
    }
    // A bad flag with a full stderr is still bad input.
    for stdout_full in [false, true] {
        let out = run_with_full(&dir, &["train", "--bogus"], stdout_full, true);
        assert_eq!(out.status.code(), Some(2));
        let out = run_with_full(&dir, &["train", "--steps", "0"], stdout_full, true);
        assert_eq!(out.status.code(), Some(2));
    }
}

#[test]
fn a_closed_stdout_still_gets_the_pictures() {
    // `meanflow train | head -1`, with the reader gone before the summary (closed at once, so
    // that no line can slip into the pipe's buffer first).
    let dir = scratch("closed_pipe");
    let mut args = vec!["train", "--out", "run", "--steps", "30"];
    args.extend_from_slice(TINY);
    let mut child = Command::new(BIN)
        .args(&args)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("error: cannot write to standard output"),
        "{stderr}"
    );
    for file in ["samples.png", "loss.png", "checkpoint.safetensors"] {
        assert!(dir.join("run").join(file).is_file(), "{file} missing");
    }
}

/// Sends `signal` once `ready` holds, and returns how long the process took to exit after it,
/// with its output.
fn signal_when(child: Child, ready: impl Fn() -> bool, signal: &str) -> (Duration, Output) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < Duration::from_secs(120), "never ready");
        std::thread::sleep(Duration::from_millis(5));
    }
    common::send_signal(&child, signal);
    let sent = Instant::now();
    let out = child.wait_with_output().unwrap();
    (sent.elapsed(), out)
}

/// Points per evaluation that make one evaluation take seconds on this machine (sliced W1 over
/// 1024 directions of that many points).
const SLOW_EVAL_SAMPLES: &str = "300000";

#[test]
fn a_signal_during_the_final_evaluation_stops_within_a_second() {
    let dir = scratch("final_phase");
    let run = dir.join("run");
    for (signal, code) in [("TERM", 143), ("INT", 130), ("HUP", 129)] {
        let _ = std::fs::remove_dir_all(&run);
        let mut args = vec!["--out", "run", "--steps", "30"];
        args.extend_from_slice(TINY);
        args.extend_from_slice(&["--eval-samples", SLOW_EVAL_SAMPLES]);
        let child = train_command(&dir, &args).spawn().unwrap();
        // The last metrics line is written just before the final checkpoint.
        let ready =
            || Checkpoint::read(&run.join("checkpoint.safetensors")).is_ok_and(|ck| ck.step == 30);
        let (took, out) = signal_when(child, ready, signal);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "SIG{signal}: {stderr}");
        assert!(
            took < Duration::from_millis(1500),
            "SIG{signal}: exited {took:?} after the signal"
        );
        assert!(
            stderr.contains("during the final evaluation and pictures"),
            "{stderr}"
        );
        assert_eq!(
            entries(&run),
            vec![
                ".lock",
                "checkpoint.safetensors",
                "config.json",
                "metrics.jsonl"
            ],
            "SIG{signal}"
        );
    }
}

#[test]
fn a_signal_during_an_evaluation_stops_at_once_and_the_resume_writes_the_same_lines() {
    let dir = scratch("mid_run_eval");
    let settings: &[&str] = &[
        "--batch",
        "16",
        "--width",
        "8",
        "--depth",
        "2",
        "--log-every",
        "10",
        "--eval-every",
        "20",
        "--eval-samples",
        "40000",
    ];
    let interrupted = dir.join("interrupted");
    let mut args = vec!["--out", "interrupted", "--steps", "1000000000"];
    args.extend_from_slice(settings);
    let child = train_command(&dir, &args).spawn().unwrap();
    // The line of step 10 is out: the evaluation of step 20 comes within milliseconds.
    let (took, out) = signal_when(
        child,
        || {
            std::fs::read_to_string(interrupted.join("metrics.jsonl"))
                .is_ok_and(|t| t.lines().count() >= 1)
        },
        "TERM",
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(took < Duration::from_millis(1500), "exited {took:?} after");
    let ck = Checkpoint::read(&interrupted.join("checkpoint.safetensors")).unwrap();
    let step = ck.step;
    if stderr.contains("during its evaluation") {
        assert_eq!(step % 20, 0, "{stderr}");
        assert!(ck.extra["train_log"].contains("\"pending_line\":true"));
    }
    // Resumed to a later step, it equals a run that was never interrupted.
    let total = (step + 30).to_string();
    let out = train_command(&dir, &["--resume", "interrupted", "--steps", &total])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut args = vec!["--out", "straight", "--steps", &total];
    args.extend_from_slice(settings);
    let out = train_command(&dir, &args).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        common::metrics(&interrupted),
        common::metrics(&dir.join("straight"))
    );
    assert_eq!(
        std::fs::read(interrupted.join("checkpoint.safetensors")).unwrap(),
        std::fs::read(dir.join("straight/checkpoint.safetensors")).unwrap()
    );
}

#[test]
fn without_a_terminal_progress_comes_at_least_every_ten_seconds() {
    let dir = scratch("progress");
    let mut args = vec!["--out", "run", "--steps", "1000000000"];
    args.extend_from_slice(TINY);
    let mut child = train_command(&dir, &args).spawn().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let start = Instant::now();
    let mut times = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.starts_with("step ") {
            assert!(line.contains("/1000000000"), "{line}");
            times.push(start.elapsed());
            break;
        }
    }
    common::send_signal(&child, "TERM");
    child.wait().unwrap();
    // A tenth of the run is far away: this line is the 10-second one.
    assert_eq!(times.len(), 1);
    assert!(
        times[0] < Duration::from_secs(13),
        "first progress line after {times:?}"
    );
}

#[test]
fn the_last_step_always_has_a_metrics_line() {
    let dir = scratch("last_line");
    for (steps, expected) in [("7", vec![7]), ("35", vec![10, 20, 30, 35])] {
        let out_name = format!("run{steps}");
        let mut args = vec!["--out", &out_name, "--steps", steps];
        args.extend_from_slice(TINY);
        let out = train_command(&dir, &args).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let steps: Vec<u64> = common::metrics(&dir.join(&out_name))
            .iter()
            .map(|l| l["step"].as_u64().unwrap())
            .collect();
        assert_eq!(steps, expected);
    }
    // The 35-step run extended to 50 equals a 50-step run (the line at 35 was the end's only).
    let out = train_command(&dir, &["--resume", "run35", "--steps", "50"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut args = vec!["--out", "run50", "--steps", "50"];
    args.extend_from_slice(TINY);
    assert!(train_command(&dir, &args)
        .output()
        .unwrap()
        .status
        .success());
    assert_eq!(
        common::metrics(&dir.join("run35")),
        common::metrics(&dir.join("run50"))
    );
}

#[test]
fn runs_started_together_without_out_each_get_their_own_folder() {
    let dir = scratch("default_names");
    let children: Vec<Child> = (0..3)
        .map(|seed| {
            let seed = seed.to_string();
            let mut args = vec!["--steps", "200", "--seed", &seed];
            args.extend_from_slice(TINY);
            train_command(&dir, &args).spawn().unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let runs = entries(&dir.join("runs"));
    assert_eq!(runs.len(), 3, "{runs:?}");
    let mut seeds: Vec<u64> = runs
        .iter()
        .map(|r| config_seed(&dir.join("runs").join(r)))
        .collect();
    seeds.sort();
    assert_eq!(seeds, vec![0, 1, 2]);
}

#[test]
fn two_resumes_of_one_folder_exactly_one_runs() {
    let dir = scratch("two_resumes");
    let mut args = vec!["--out", "run", "--steps", "100"];
    args.extend_from_slice(TINY);
    assert!(train_command(&dir, &args)
        .output()
        .unwrap()
        .status
        .success());
    let run = dir.join("run");
    for attempt in 0..10 {
        let start = || {
            train_command(&dir, &["--resume", "run", "--steps", "1000000000"])
                .spawn()
                .unwrap()
        };
        let mut children = [start(), start()];
        let waited = Instant::now();
        let first_done = loop {
            if let Some(i) = (0..2).find(|&i| children[i].try_wait().unwrap().is_some()) {
                break i;
            }
            assert!(
                waited.elapsed() < Duration::from_secs(60),
                "attempt {attempt}"
            );
            std::thread::sleep(Duration::from_millis(2));
        };
        let [a, b] = children;
        let (loser, winner) = if first_done == 0 { (a, b) } else { (b, a) };
        let winner_pid = winner.id();
        let refused = loser.wait_with_output().unwrap();
        assert_eq!(refused.status.code(), Some(2), "attempt {attempt}");
        assert_eq!(
            text(&refused.stderr).trim(),
            format!("error: run folder run is in use by process {winner_pid}"),
            "attempt {attempt}"
        );
        std::thread::sleep(Duration::from_millis(20));
        common::send_signal(&winner, "TERM");
        assert_eq!(winner.wait_with_output().unwrap().status.code(), Some(143));
        let ck = Checkpoint::read(&run.join("checkpoint.safetensors")).unwrap();
        let steps: Vec<u64> = common::metrics(&run)
            .iter()
            .map(|l| l["step"].as_u64().unwrap())
            .collect();
        // One line per 10 steps up to the checkpoint: one run's metrics, never two interleaved.
        let expected: Vec<u64> = (1..=ck.step / 10).map(|k| 10 * k).collect();
        assert_eq!(steps, expected, "attempt {attempt}");
    }
}
