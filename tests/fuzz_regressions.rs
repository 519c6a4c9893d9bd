//! The fuzzers' corpus as ordinary tests: every file under tests/data/fuzz/<target>/ goes through
//! the same entry point as the fuzz target of that name (fuzz/fuzz_targets/<target>.rs), with the
//! same checks. A file named `ok-*` must be accepted; every other file (`bad-*` hand-made invalid
//! inputs, `crash-*` inputs a fuzzer found) must be rejected with an error. None may panic.
//! fuzz/README.md says how to run the fuzzers and add what they find here.

use meanflow::data::csv::parse_csv;
use meanflow::data::npy::parse_npy;
use meanflow::run::config::RunConfig;
use meanflow::train::checkpoint::{Checkpoint, Precision};
use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let out: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    // Each corpus has valid and invalid inputs.
    assert!(out.iter().any(|(n, _)| n.starts_with("ok-")), "{target}");
    assert!(out.iter().any(|(n, _)| !n.starts_with("ok-")), "{target}");
    out
}

/// Runs `check` on every file and requires Ok for `ok-*` files and Err for the others. A panic
/// inside `check` fails the test naming the file.
fn run<E: std::fmt::Display>(target: &str, check: impl Fn(&[u8]) -> Result<(), E>) {
    for (name, bytes) in corpus(target) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&bytes)));
        let result = result.unwrap_or_else(|_| panic!("{target}/{name}: panicked"));
        match (name.starts_with("ok-"), result) {
            (true, Err(e)) => panic!("{target}/{name}: rejected: {e}"),
            (false, Ok(())) => panic!("{target}/{name}: accepted an invalid input"),
            (false, Err(e)) => {
                let message = e.to_string();
                assert!(
                    !message.is_empty() && !message.contains('\n'),
                    "{target}/{name}: not a one-line message: {message:?}"
                );
            }
            (true, Ok(())) => {}
        }
    }
}

#[test]
fn csv_corpus() {
    run("csv", |bytes| {
        parse_csv(Path::new("fuzz.csv"), bytes).map(|csv| {
            assert!(csv.data.nrows() >= 2);
            assert!(csv.data.iter().all(|v| v.is_finite()));
        })
    });
}

#[test]
fn npy_corpus() {
    run("npy", |bytes| {
        parse_npy(Path::new("fuzz.npy"), bytes).map(|a| {
            assert!(a.nrows() >= 2 && a.ncols() >= 1);
            assert!(a.iter().all(|v| v.is_finite()));
            assert!(a.len() * 4 <= bytes.len());
        })
    });
}

#[test]
fn checkpoint_corpus() {
    let path = Path::new("fuzz.safetensors");
    run("checkpoint", |bytes| {
        Checkpoint::parse(bytes, path).map(|ck| {
            // What loads writes back to bytes that load to the same checkpoint, and writing that
            // again gives the same bytes (the writer depends only on the contents).
            let f32 = ck.precision == Precision::F32;
            let again = ck.to_tensor_file().to_bytes(f32);
            let back = Checkpoint::parse(&again, path).unwrap();
            assert_eq!(back, ck);
            assert_eq!(back.to_tensor_file().to_bytes(f32), again);
        })
    });
}

#[test]
fn config_corpus() {
    run("config", |bytes| {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        RunConfig::parse(text)
            .map(|(run, config)| {
                let again = serde_json::to_string(&run).unwrap();
                let (run2, config2) = RunConfig::parse(&again).unwrap();
                assert_eq!(run2, run);
                assert_eq!(config2, config);
            })
            .map_err(|e| e.to_string())
    });
}
