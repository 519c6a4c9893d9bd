//! Every line the tool prints goes through here, so that a stdout or stderr that cannot be written
//! (a full disk, `>/dev/full`, a closed pipe as in `meanflow train | head -1`) never panics and
//! never costs the work its files.
//!
//! `println!` panics when a write fails, and the default SIGPIPE disposition kills the process at
//! the first write to a closed pipe. The binary keeps Rust's default (SIGPIPE ignored, so a write to
//! a closed pipe fails with `EPIPE`), and [`outln!`] / [`errln!`] write a line and flush it. The
//! first failure on a stream is remembered and that stream is left alone from then on: the command
//! finishes its work (a run still writes its checkpoint and pictures) and [`final_exit_code`] turns
//! a success into exit 1, with one `error:` line on stderr if stderr still works.
//!
//! The output *files* of the commands are checked here too, before any work: [`check_output_file`].

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Standard output or standard error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "standard output",
            Stream::Stderr => "standard error",
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// Per stream: has a write failed (then nothing more is written there).
static FAILED: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];
/// The first failure, as `stream: error`, for the closing message.
static FIRST_FAILURE: Mutex<Option<String>> = Mutex::new(None);

/// Writes `text` to `stream` and flushes; a failure is remembered (see the module doc) and the
/// stream is not written again. Returns whether the text was written.
pub fn write_text(stream: Stream, text: &str) -> bool {
    if FAILED[stream.index()].load(Ordering::SeqCst) {
        return false;
    }
    let result = match stream {
        Stream::Stdout => {
            let mut out = io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|_| out.flush())
        }
        Stream::Stderr => {
            let mut err = io::stderr().lock();
            err.write_all(text.as_bytes()).and_then(|_| err.flush())
        }
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            record_failure(stream, &e);
            false
        }
    }
}

/// Remembers that `stream` cannot be written (also for writes made elsewhere, e.g. by clap).
pub fn record_failure(stream: Stream, error: &io::Error) {
    FAILED[stream.index()].store(true, Ordering::SeqCst);
    let mut first = FIRST_FAILURE.lock().unwrap_or_else(|p| p.into_inner());
    if first.is_none() {
        *first = Some(format!("cannot write to {}: {error}", stream.name()));
    }
}

/// Writes one line (the formatted arguments and a newline); see [`write_text`].
pub fn write_line(stream: Stream, args: fmt::Arguments) -> bool {
    let mut text = args.to_string();
    text.push('\n');
    write_text(stream, &text)
}

/// Whether a write to stdout or stderr has failed.
pub fn any_failure() -> bool {
    FAILED.iter().any(|f| f.load(Ordering::SeqCst))
}

/// The exit code once the command is done: `code` when it is not 0 (bad input stays 2, an
/// interruption 128 + the signal), else 1 when stdout or stderr could not be written, with one
/// `error:` line saying so on stderr (when stderr works).
pub fn final_exit_code(code: i32) -> i32 {
    if code != 0 || !any_failure() {
        return code;
    }
    let first = FIRST_FAILURE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_default();
    write_line(Stream::Stderr, format_args!("error: {first}"));
    super::EXIT_FAILED
}

/// `println!` that never panics: a line to stdout through [`write_line`].
macro_rules! outln {
    ($($arg:tt)*) => {
        {
            let _ = $crate::cli::output::write_line(
                $crate::cli::output::Stream::Stdout,
                format_args!($($arg)*),
            );
        }
    };
}

/// `eprintln!` that never panics: a line to stderr through [`write_line`].
macro_rules! errln {
    ($($arg:tt)*) => {
        {
            let _ = $crate::cli::output::write_line(
                $crate::cli::output::Stream::Stderr,
                format_args!($($arg)*),
            );
        }
    };
}

pub(crate) use errln;
pub(crate) use outln;

/// Checks, before any work and without touching the disk, that `path` can take an output file of
/// a command given by `flag` (one `error:` line, exit 2, otherwise):
/// [`meanflow::io::target::check_output_file`] (the folder exists, also every folder named before
/// a `..`; not read-only; a device or a named pipe is written in place and never opened here),
/// and no file of another kind that the tool keeps: a file of a run folder owned by a live run,
/// a run folder's state (config.json, metrics.jsonl, checkpoint.safetensors, `.lock`) even when
/// the run is finished, or any safetensors file (a checkpoint, a reference case).
pub fn check_output_file(path: &std::path::Path, flag: &str) -> super::CliResult<()> {
    use meanflow::run::folder::{run_state_file, RUN_FILES};
    use meanflow::run::lock::{self, LockError};
    let refuse = |reason: String| {
        Err(super::CliError::usage(format!(
            "{flag} {}: {reason}",
            path.display()
        )))
    };
    if let Err(e) = meanflow::io::target::check_output_file(path) {
        return refuse(e.to_string());
    }
    let resolved = meanflow::io::atomic::follow_symlinks(path);
    let folder = resolved
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    // The folder as the user wrote it, for messages.
    let named = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    // The files of a live run folder belong to the process that owns it.
    let is_run_file = resolved
        .file_name()
        .is_some_and(|name| RUN_FILES.iter().any(|f| name == *f));
    if is_run_file {
        if let Some(pid) = lock::holder(folder) {
            return refuse(
                LockError::InUse {
                    folder: named.to_path_buf(),
                    pid,
                }
                .to_string(),
            );
        }
    }
    if let Some((file, run)) = run_state_file(path) {
        // A symbolic link into a run folder names the folder it leads to.
        let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        let run = if is_link { run.as_path() } else { named };
        return refuse(format!(
            "is the {file} of the run folder {}; an output must not replace a run's files",
            run.display()
        ));
    }
    if meanflow::io::tensor_file::is_safetensors_file(path) {
        return refuse(
            "is a safetensors file (a checkpoint or a reference case); an output must not replace one"
                .into(),
        );
    }
    Ok(())
}
