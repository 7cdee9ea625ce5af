//! `annal`: the command-line tool for annal event stores. See `annal --help` and
//! `docs/cli.md`.
//!
//! - `args` — the command line (clap);
//! - `commands` — one file per subcommand, and opening a store directory;
//! - `output` — human lines and JSON on stdout;
//! - `payload` — event data and metadata as JSON, both ways;
//! - `exit` — exit codes and the error every command returns.

mod args;
mod commands;
mod exit;
mod output;
mod payload;

use std::process::ExitCode;

use clap::Parser;

use crate::{args::Cli, exit::Failure};

fn main() -> ExitCode {
    // Bad arguments print clap's message and exit 2; --help and --version exit 0.
    let cli = Cli::parse();
    match commands::run(cli.command) {
        Ok(exit) => exit.into(),
        Err(Failure::BrokenPipe) => exit::Exit::Ok.into(),
        Err(Failure::Error { exit, message }) => {
            eprintln!("annal: {message}");
            exit.into()
        }
    }
}
