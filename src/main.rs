//! `meanflow`: train, sample, evaluate and verify MeanFlow models from the command line.
//! The logic lives in [`cli`], one module per subcommand; see docs/cli.md.

mod cli;

fn main() {
    // Rust ignores SIGPIPE, which turns a closed stdout (`meanflow bench | head -1`) into a panic
    // in println!; the default disposition ends the process quietly, as other command-line tools do.
    #[cfg(unix)]
    // SAFETY: first thing in main, before any other thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(cli::main());
}
