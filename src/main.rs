//! The `portcullis` binary: parse the command line, hand over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    portcullis::cli::main(portcullis::cli::Cli::parse())
}
