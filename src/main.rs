//! `meanflow`: train, sample, evaluate and verify MeanFlow models from the command line.
//! The logic lives in [`cli`], one module per subcommand; see docs/cli.md.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
