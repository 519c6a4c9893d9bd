//! The command-line tool: argument definitions, dispatch, and the error and exit-code policy.
//!
//! Exit codes: 0 success; 1 a run or check that failed (non-finite loss, tolerance exceeded), or
//! stdout / stderr that could not be written ([`output`]); 2 bad user input (flags, files,
//! checkpoints, a run folder in use by another process), reported as one `error: ...` line before
//! anything is written; 128 + the signal after an interruption (130 Ctrl-C / SIGINT, 143 SIGTERM,
//! 129 SIGHUP; the checkpoint is written first).

mod bench;
mod common;
mod data;
mod eval;
pub mod output;
mod pictures;
mod progress;
mod quality;
mod sample;
mod stop_signal;
mod study;
mod train;
mod verify;

use clap::{Parser, Subcommand};
use output::{errln, Stream};

/// Exit code of bad user input.
pub const EXIT_USAGE: i32 = 2;
/// Exit code of a run or check that failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit code after an interruption by a signal: 128 + the signal number, as a shell reports a
/// process killed by it (130 for Ctrl-C / SIGINT, 143 for SIGTERM, 129 for SIGHUP).
pub fn exit_code_for_signal(signal: i32) -> i32 {
    128 + signal
}

/// "SIGINT", "SIGTERM", "SIGHUP", or "signal N".
pub fn signal_name(signal: i32) -> String {
    match signal {
        2 => "SIGINT".into(),
        15 => "SIGTERM".into(),
        1 => "SIGHUP".into(),
        n => format!("signal {n}"),
    }
}

/// An error to report as one `error: ...` line, with its exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub message: String,
}

impl CliError {
    /// Bad user input: exit code 2.
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// A run that failed: exit code 1.
    pub fn failed(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_FAILED,
            message: message.into(),
        }
    }
}

pub type CliResult<T> = Result<T, CliError>;

/// Train and use one-step generative models (MeanFlow, improved MeanFlow) on the CPU.
#[derive(Parser, Debug)]
#[command(name = "meanflow", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a model; writes a run folder (config, metrics, checkpoint, pictures).
    Train(Box<train::TrainArgs>),
    /// Draw samples from a checkpoint.
    Sample(sample::SampleArgs),
    /// Sliced W1 and energy distance between samples and data, with the data-vs-data floor.
    Eval(eval::EvalArgs),
    /// Class accuracy, Fréchet distance and memorisation of a digits model's samples.
    Quality(quality::QualityArgs),
    /// Write points of a built-in dataset to a CSV or NPY file.
    Data(data::DataArgs),
    /// Recompute reference cases and compare every quantity.
    Verify(verify::VerifyArgs),
    /// Time the training step on the benchmark configs (see README, Performance).
    Bench(bench::BenchArgs),
    /// The MF vs iMF study: five instruments, pictures and a summary (docs/study.md).
    Study(study::StudyArgs),
}

/// Clap's error as one line: the lines before the usage, tips dropped, joined.
fn one_line(rendered: &str) -> String {
    let mut parts = Vec::new();
    for line in rendered.lines() {
        let t = line.trim();
        if t.starts_with("Usage:") || t.starts_with("For more information") {
            break;
        }
        if t.is_empty() || t.starts_with("tip:") {
            continue;
        }
        parts.push(t.to_string());
    }
    let joined = parts.join(" ");
    let body = joined.strip_prefix("error:").unwrap_or(&joined).trim();
    format!("error: {body}")
}

/// Parses the arguments, runs the command, and returns the exit code (see [`output`] for what a
/// failed write to stdout or stderr does to it).
pub fn main() -> i32 {
    // A data file's layout notes (a header, a delimiter, class names) follow stderr's rules.
    meanflow::data::csv::set_note_sink(|note| errln!("note: {note}"));
    let code = run_command();
    output::final_exit_code(code)
}

fn run_command() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            // Help and version go to stdout, the usage shown on a missing subcommand to stderr.
            let (code, stream) = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => (0, Stream::Stdout),
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => (EXIT_USAGE, Stream::Stderr),
                _ => {
                    errln!("{}", one_line(&e.render().to_string()));
                    return EXIT_USAGE;
                }
            };
            if let Err(io_error) = e.print() {
                output::record_failure(stream, &io_error);
            }
            return code;
        }
    };
    if let Err(message) = meanflow::linalg::matmul::requested_gemm_backend() {
        errln!("error: {message}");
        return EXIT_USAGE;
    }
    let result = match cli.command {
        Command::Train(args) => train::run(*args),
        Command::Sample(args) => sample::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Quality(args) => quality::run(args),
        Command::Data(args) => data::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Study(args) => study::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            errln!("error: {}", e.message);
            e.code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn clap_errors_become_one_line() {
        let rendered = "error: the following required arguments were not provided:\n  --samples <FILE>\n\nUsage: meanflow eval --samples <FILE>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "error: the following required arguments were not provided: --samples <FILE>"
        );
        let rendered = "error: unexpected argument '--bogus' found\n\n  tip: to pass '--bogus' as a value, use '-- --bogus'\n\nUsage: x\n";
        assert_eq!(
            one_line(rendered),
            "error: unexpected argument '--bogus' found"
        );
    }
}
