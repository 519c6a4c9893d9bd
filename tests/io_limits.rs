//! Issue 26's file bugs, end to end: named pipes as outputs (written once, whole, never probed),
//! the size limit of every reader (a device, a pipe or a file over its kind's limit is refused
//! before it is read), outputs that would replace a run's files, a checkpoint or a read-only
//! file, refused commands that leave every byte and modification time as it was, paths through
//! a missing folder, and the checksum of a checkpoint's tensor data.

mod common;

use common::{refused, refused_with, succeeds as ok};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

/// A finished tiny run in `dir/run` (about half a second).
fn tiny_run(dir: &Path) -> PathBuf {
    ok(
        dir,
        &[
            "train",
            "--out",
            "run",
            "--steps",
            "3",
            "--batch",
            "16",
            "--width",
            "8",
            "--depth",
            "1",
            "--eval-every",
            "0",
            "--log-every",
            "1",
        ],
    );
    dir.join("run")
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path, read only during the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// Reads the named pipe `path` to its end on a thread (as `cat p > got &` would).
#[cfg(unix)]
fn reader(path: &Path) -> std::thread::JoinHandle<Vec<u8>> {
    let path = path.to_path_buf();
    std::thread::spawn(move || std::fs::read(path).unwrap())
}

/// Bug 3: a named pipe as an output gets the whole output, once; the command neither hangs nor
/// hands the reader an early end of file (it used to open the pipe as a write test and close it).
#[cfg(unix)]
#[test]
fn a_named_pipe_output_gets_the_whole_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = tiny_run(d);
    let fifo = d.join("p.csv");
    mkfifo(&fifo);

    let got = reader(&fifo);
    let out = ok(
        d,
        &[
            "data",
            "--dataset",
            "two_moons",
            "--n",
            "3",
            "--out",
            "p.csv",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrote 3 points"));
    let text = String::from_utf8(got.join().unwrap()).unwrap();
    assert_eq!(text.lines().count(), 3, "the reader got: {text:?}");

    let got = reader(&fifo);
    let checkpoint = run.join("checkpoint.safetensors");
    let args = [
        "sample",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--out",
        "p.csv",
        "--n",
        "5",
    ];
    ok(d, &args);
    let text = String::from_utf8(got.join().unwrap()).unwrap();
    assert_eq!(text.lines().count(), 5, "the reader got: {text:?}");

    std::fs::write(d.join("s.csv"), "0,0\n1,1\n0,1\n1,0\n").unwrap();
    let json = d.join("p.json");
    mkfifo(&json);
    let got = reader(&json);
    ok(
        d,
        &[
            "eval",
            "--samples",
            "s.csv",
            "--dataset",
            "two_moons",
            "--json",
            "p.json",
        ],
    );
    let value: serde_json::Value = serde_json::from_slice(&got.join().unwrap()).unwrap();
    assert_eq!(value["n"], 4);
}

/// Bug 7: a device, a pipe or standard input is refused by name at once, by every reader; it
/// used to be read until memory ran out (`/dev/zero`) or, for `/dev/stdin`, read by `eval` but
/// "No such file or directory" for `train`.
#[cfg(unix)]
#[test]
fn devices_pipes_and_standard_input_are_refused_by_every_reader() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("s.csv"), "0,0\n1,1\n0,1\n").unwrap();
    let device = ["/dev/zero: ", "is a device, not a regular file"];
    refused(d, &["verify", "/dev/zero"], &device);
    refused(
        d,
        &["train", "--dataset", "/dev/zero", "--steps", "1"],
        &device,
    );
    refused(
        d,
        &["sample", "--checkpoint", "/dev/zero", "--out", "x.csv"],
        &device,
    );
    refused(
        d,
        &["eval", "--samples", "/dev/zero", "--dataset", "two_moons"],
        &device,
    );
    refused(
        d,
        &["eval", "--samples", "s.csv", "--data", "/dev/zero"],
        &device,
    );
    refused(d, &["quality", "--checkpoint", "/dev/zero"], &device);
    for args in [
        &["train", "--dataset", "/dev/stdin", "--steps", "1"][..],
        &["eval", "--samples", "/dev/stdin", "--dataset", "two_moons"],
        &["verify", "/dev/stdin"],
    ] {
        let mut child = Command::new("echo")
            .arg("1,2\n3,4\n5,6")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pipe = Stdio::from(child.stdout.take().unwrap());
        refused_with(
            d,
            args,
            pipe,
            &["/dev/stdin: ", "is a pipe, not a regular file"],
        );
        child.wait().unwrap();
    }
    refused(
        d,
        &["eval", "--samples", "-", "--dataset", "two_moons"],
        &["-: ", "is standard input"],
    );
}

/// Bug 7: a regular file over its kind's limit is refused from its length, before it is read
/// (sparse files: nothing is written to disk).
#[test]
fn files_over_their_limit_are_refused_before_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sparse = |name: &str, len: u64| {
        std::fs::File::create(d.join(name))
            .unwrap()
            .set_len(len)
            .unwrap();
    };
    sparse("big.csv", (2 << 30) + 1);
    sparse("big.safetensors", (4 << 30) + (64 << 20) + 1);
    sparse("case.safetensors", (1 << 30) + 1);
    refused(
        d,
        &["train", "--dataset", "big.csv", "--steps", "1"],
        &["big.csv: cannot read file: larger than the 2 GiB a point file may be"],
    );
    refused(
        d,
        &["eval", "--samples", "big.csv", "--dataset", "two_moons"],
        &["larger than the 2 GiB a point file may be"],
    );
    refused(
        d,
        &[
            "sample",
            "--checkpoint",
            "big.safetensors",
            "--out",
            "x.csv",
        ],
        &["big.safetensors: larger than the 4.06 GiB a checkpoint may be"],
    );
    refused(
        d,
        &["verify", "case.safetensors"],
        &["case.safetensors: larger than the 1 GiB a reference case may be"],
    );
}

/// Doubtful case (a): an output never replaces a run folder's state or a safetensors file, even
/// of a finished run (it used to replace checkpoint.safetensors with JSON).
#[test]
fn outputs_never_replace_a_runs_files_or_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_run(d);
    std::fs::write(d.join("s.csv"), "0,0\n1,1\n0,1\n").unwrap();
    let eval = |json: &str| {
        [
            "eval",
            "--samples",
            "s.csv",
            "--dataset",
            "two_moons",
            "--json",
            json,
        ]
        .map(String::from)
    };
    for file in [
        "checkpoint.safetensors",
        "config.json",
        "metrics.jsonl",
        ".lock",
    ] {
        let args = eval(&format!("run/{file}"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(d, &args, &[&format!("is the {file} of the run folder run")]);
    }
    std::fs::copy(
        d.join("run/checkpoint.safetensors"),
        d.join("copy.safetensors"),
    )
    .unwrap();
    let args = eval("copy.safetensors");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    refused(d, &args, &["is a safetensors file"]);
    refused(
        d,
        &["data", "--dataset", "two_moons", "--out", "run/config.json"],
        &["the file name must end in .csv or .npy"],
    );
}

/// Doubtful case (b): a read-only output is refused (it used to be replaced and left 0644).
#[cfg(unix)]
#[test]
fn a_read_only_output_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ro = d.join("ro.csv");
    std::fs::write(&ro, "1,2\n").unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o444)).unwrap();
    refused(
        d,
        &["data", "--dataset", "two_moons", "--out", "ro.csv"],
        &["--out ro.csv: is read-only"],
    );
    std::fs::write(d.join("s.csv"), "0,0\n1,1\n0,1\n").unwrap();
    let ro_json = d.join("ro.json");
    std::fs::write(&ro_json, "{}\n").unwrap();
    std::fs::set_permissions(&ro_json, std::fs::Permissions::from_mode(0o444)).unwrap();
    refused(
        d,
        &[
            "eval",
            "--samples",
            "s.csv",
            "--dataset",
            "two_moons",
            "--json",
            "ro.json",
        ],
        &["--json ro.json: is read-only"],
    );
    assert_eq!(
        std::fs::metadata(&ro).unwrap().permissions().mode() & 0o777,
        0o444
    );
}

/// Doubtful case (c): a refused command leaves every byte and modification time as it was: no
/// write-test file in the output's folder, and a refused resume sets `.lock`'s times back.
#[test]
fn a_refused_command_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = tiny_run(d);
    // An old time, so that a rewrite within the same clock tick still shows.
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let lock = std::fs::File::options()
        .write(true)
        .open(run.join(".lock"))
        .unwrap();
    lock.set_modified(old).unwrap();
    drop(lock);
    std::fs::create_dir(d.join("out")).unwrap();
    let times = std::fs::FileTimes::new().set_modified(old);
    std::fs::File::open(d.join("out"))
        .unwrap()
        .set_times(times)
        .unwrap();
    // The output is checked, then the checkpoint read fails.
    refused(
        d,
        &[
            "sample",
            "--checkpoint",
            "missing.safetensors",
            "--out",
            "out/x.csv",
        ],
        &["missing.safetensors"],
    );
    refused(
        d,
        &["train", "--resume", "run", "--steps", "1"],
        &["--steps"],
    );
    refused(
        d,
        &["train", "--resume", "run", "--steps", "5", "--lr", "0.5"],
        &["--lr"],
    );
}

/// Doubtful case (e): a path through a missing folder (`x/../run`) is refused as that folder
/// missing, for every kind of output; it used to create `x` (train, study) or name `x/..`.
#[test]
fn a_path_through_a_missing_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = "the folder ./x does not exist";
    refused(
        d,
        &["train", "--out", "./x/../run", "--steps", "1"],
        &[missing],
    );
    refused(
        d,
        &["data", "--dataset", "two_moons", "--out", "./x/../p.csv"],
        &[missing],
    );
    refused(d, &["study", "--quick", "--out", "./x/../s"], &[missing]);
    std::fs::write(d.join("s.csv"), "0,0\n1,1\n0,1\n").unwrap();
    refused(
        d,
        &[
            "eval",
            "--samples",
            "s.csv",
            "--dataset",
            "two_moons",
            "--json",
            "./x/../e.json",
        ],
        &[missing],
    );
    assert!(!d.join("x").exists());
}

/// Item 4: a flipped bit in a checkpoint's tensor data is found by the checksum our writer stores;
/// it used to load as a slightly different model.
#[test]
fn a_flipped_bit_in_tensor_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = tiny_run(d);
    let bytes = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert!(String::from_utf8_lossy(&bytes[8..8 + header]).contains("\"data_checksum\":\"fnv1a64:"));
    let mut flipped = bytes.clone();
    // The lowest mantissa bit of the last value: still a plausible number.
    let last = flipped.len() - 4;
    flipped[last] ^= 1;
    std::fs::write(d.join("flipped.safetensors"), &flipped).unwrap();
    refused(
        d,
        &[
            "sample",
            "--checkpoint",
            "flipped.safetensors",
            "--out",
            "x.csv",
        ],
        &["flipped.safetensors: the tensor data is corrupted"],
    );
    std::fs::write(run.join("checkpoint.safetensors"), &flipped).unwrap();
    refused(
        d,
        &["train", "--resume", "run", "--steps", "5"],
        &["the tensor data is corrupted"],
    );
}
