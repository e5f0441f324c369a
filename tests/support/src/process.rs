//! Child processes that end with the test: killed and reaped on drop, whatever happened.

use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

/// A child process that is killed and reaped when the guard goes, so that a failing test
/// leaves no process behind.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    announce: Option<String>,
}

impl ChildGuard {
    /// Guards `child`.
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard {
            child: Some(child),
            announce: None,
        }
    }

    /// Says `(stopped WHAT)` on stderr if the drop has to kill the process.
    pub fn announce(mut self, what: impl Into<String>) -> ChildGuard {
        self.announce = Some(what.into());
        self
    }

    /// The process id, or 0 once the process has ended.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The child, while it has not been seen to end.
    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// The exit status if the process has ended (once: it is reaped then), else `None`.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(status)
            }
            _ => None,
        }
    }

    /// Waits up to `limit` for the process to end.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if child.kill().is_ok() {
                if let Some(what) = &self.announce {
                    eprintln!("(stopped {what})");
                }
            }
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_guarded_child_is_killed_on_drop() {
        let guard = ChildGuard::new(Command::new("sleep").arg("30").spawn().expect("sleep"));
        let pid = guard.id();
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        drop(guard);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn an_ended_child_says_how() {
        let mut guard = ChildGuard::new(Command::new("true").spawn().expect("true"));
        let status = guard.wait_for(Duration::from_secs(10)).expect("it ends");
        assert!(status.success());
        assert_eq!(guard.id(), 0);
    }
}
