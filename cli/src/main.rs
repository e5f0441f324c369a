//! `rtcgear`: stream live video to web browsers over WebRTC.
//!
//! This file parses the command line, sets up logging, hands each command to its module and
//! turns the outcome into the exit code: `args` has the flags, `serve`, `stabilize`, `encode`,
//! `devices` and `export_web` one command each, and `source` opens what `--source` and
//! `--stream` name.

use std::process::ExitCode;

use clap::Parser;

mod args;
mod devices;
mod encode;
mod export_web;
mod serve;
mod source;
mod stabilize;

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Encode(args) => encode::run(args),
        Command::Stabilize(args) => stabilize::run(stabilize::Job {
            config: args.stabilizer.config(),
            input: args.input,
            output: args.output,
            crf: args.crf,
        }),
        Command::ExportWeb { dir, force } => export_web::run(&dir, force),
        Command::Devices => devices::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rtcgear: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(log_colours())
        .init();
}

/// Whether the log may use colour: only on a terminal, and never with `NO_COLOR` set to
/// anything but the empty string (<https://no-color.org>). Logs piped to a file or journald
/// stay free of escape sequences.
fn log_colours() -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}
