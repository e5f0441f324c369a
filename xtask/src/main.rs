//! `cargo xtask`: the project's chores in one binary.
//!
//! - `cargo xtask ci`: what CI checks: formatting, clippy (warnings are errors), the docs
//!   (warnings are errors) and every test, end-to-end ones included.
//! - `cargo xtask bench`: the benchmarks, in release mode; their figures go into BENCHMARKS.md.
//!
//! System packages are the job of `scripts/deps.sh`, which `scripts/test.sh` runs first.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(&root, &args[1..]),
        Some("bench") => bench(&root, &args[1..]),
        Some("help" | "--help" | "-h") | None => {
            print_help();
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!(
            "unknown task {other:?}; `cargo xtask help` lists them"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err}");
            ExitCode::FAILURE
        }
    }
}

fn print_help() {
    println!(
        "cargo xtask TASK\n\n\
         Tasks:\n  \
         ci      fmt --check, clippy -D warnings, docs -D warnings, every test\n  \
         bench   the benchmarks in release mode (extra arguments go to cargo bench)\n"
    );
}

/// The workspace root: xtask lives one folder below it.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs one step, printing what it runs and how long it took.
fn step(root: &Path, title: &str, args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    eprintln!("\n==> {title}: cargo {}", args.join(" "));
    let started = Instant::now();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    eprintln!("<== {title}: {:.0} s", started.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("{title} failed ({status})"))
    }
}

fn ci(root: &Path, extra: &[String]) -> Result<(), String> {
    let started = Instant::now();
    step(root, "format", &["fmt", "--all", "--check"], &[])?;
    step(
        root,
        "clippy",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    step(
        root,
        "docs",
        &["doc", "--workspace", "--no-deps", "--locked"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    let mut test = vec!["test", "--workspace", "--locked"];
    test.extend(extra.iter().map(String::as_str));
    step(root, "tests", &test, &[])?;
    eprintln!(
        "\nci: every check passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn bench(root: &Path, extra: &[String]) -> Result<(), String> {
    let mut args = vec!["bench", "--workspace", "--locked"];
    args.extend(extra.iter().map(String::as_str));
    step(root, "benchmarks", &args, &[])
}
