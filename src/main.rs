//! `meanflow`: train, sample, evaluate and verify MeanFlow models from the command line.
//! The logic lives in [`cli`], one module per subcommand; see docs/cli.md.

mod cli;

fn main() {
    // SIGPIPE stays ignored (Rust's default), so a closed stdout (`meanflow train | head -1`) is a
    // failed write that cli::output handles, not a kill that would cost a run its pictures.
    std::process::exit(cli::main());
}
