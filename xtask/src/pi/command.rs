//! Running the programs the stages call: to their end, with a time limit, or for their output.

use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

/// Runs a command to its end; an error names `what` and the exit status.
pub(super) fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    check(status, what)
}

/// Runs a command in a process group of its own and stops the whole group (the command and
/// everything it started) if it runs longer than `limit`.
pub(super) fn run_bounded(
    command: &mut Command,
    limit: Duration,
    what: &str,
) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let mut child = command
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("cannot wait for {what}: {e}"))?
        {
            return check(status, what);
        }
        if Instant::now() > deadline {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
            thread::sleep(Duration::from_secs(5));
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
            return Err(format!(
                "{what} did not finish within {limit:?} and was stopped"
            ));
        }
        thread::sleep(Duration::from_millis(200));
    }
}

fn check(status: ExitStatus, what: &str) -> Result<(), String> {
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// A command's stdout, or an error naming it.
pub(super) fn output(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
