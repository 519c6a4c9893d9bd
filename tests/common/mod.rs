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

// ----- running the binary -------------------------------------------------------------------------

/// The most one command of a test may take: a hang fails the test instead of blocking it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `meanflow args` in `dir` (its working folder) with `stdin`, killed and the test failed
/// after [`COMMAND_TIMEOUT`].
pub fn run_with(dir: &Path, args: &[&str], stdin: std::process::Stdio) -> std::process::Output {
    use std::process::Stdio;
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read both pipes while the child runs, so that a full pipe cannot stall it.
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut bytes).map(|_| bytes)
    });
    let err_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut bytes).map(|_| bytes)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > COMMAND_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?}: still running after {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    std::process::Output {
        status,
        stdout: out_reader.join().unwrap().unwrap(),
        stderr: err_reader.join().unwrap().unwrap(),
    }
}

/// [`run_with`] with no standard input.
pub fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    run_with(dir, args, std::process::Stdio::null())
}

/// Runs and requires exit 0.
pub fn succeeds(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every file and folder under `dir` (itself included) with its bytes (a file over 1 MiB: its
/// length, for sparse files) and modification time.
pub type Snapshot = std::collections::BTreeMap<PathBuf, (Option<Vec<u8>>, std::time::SystemTime)>;

pub fn snapshot(dir: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        out.insert(
            d.clone(),
            (None, std::fs::metadata(&d).unwrap().modified().unwrap()),
        );
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                let bytes = if meta.len() > 1 << 20 {
                    meta.len().to_le_bytes().to_vec()
                } else {
                    std::fs::read(&p).unwrap()
                };
                out.insert(p, (Some(bytes), meta.modified().unwrap()));
            }
        }
    }
    out
}

/// Runs with `stdin` and requires what bad input gets: exit 2, one line `error: ...` holding
/// every needle and no Rust internals (`Some(`, `None`), nothing on stdout, and `dir` as it was:
/// the same files and folders with the same bytes and modification times. Returns the line.
pub fn refused_with(
    dir: &Path,
    args: &[&str],
    stdin: std::process::Stdio,
    needles: &[&str],
) -> String {
    let before = snapshot(dir);
    let out = run_with(dir, args, stdin);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: not one line: {stderr}"
    );
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{args:?}: {n:?} not in: {stderr}");
    }
    assert!(
        !stderr.contains("Some(") && !stderr.contains("None"),
        "{args:?}: Rust internals in: {stderr}"
    );
    assert!(out.stdout.is_empty(), "{args:?}: printed to stdout");
    let after = snapshot(dir);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "{args:?}: files created or removed"
    );
    for (path, was) in &before {
        assert!(&after[path] == was, "{args:?}: {} changed", path.display());
    }
    stderr
}

/// [`refused_with`] with no standard input.
pub fn refused(dir: &Path, args: &[&str], needles: &[&str]) -> String {
    refused_with(dir, args, std::process::Stdio::null(), needles)
}
