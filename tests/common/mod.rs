//! Helpers shared by the end-to-end test files (each file is its own crate and uses a subset).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The `meanflow` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_meanflow");

/// A fresh, empty folder `<target tmp>/<suite>/<name>` for one test.
pub fn scratch(suite: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(suite)
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A run folder's metrics.jsonl as JSON objects, without the timing field (which differs
/// between otherwise identical runs).
pub fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("steps_per_s");
            v
        })
        .collect()
}

/// Waits until the run's metrics.jsonl has `lines` lines (the run is stepping), at most 60 s.
pub fn wait_for_metrics_lines(run: &Path, lines: usize) {
    let start = Instant::now();
    let path = run.join("metrics.jsonl");
    while std::fs::read_to_string(&path).map_or(true, |t| t.lines().count() < lines) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no {lines} metrics lines in {} after 60 s",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` ("INT", "TERM", ...) to the child process with kill(1).
pub fn send_signal(child: &Child, signal: &str) {
    let sent = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal} {} failed", child.id());
}
