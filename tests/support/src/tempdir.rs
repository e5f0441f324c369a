//! Folders for one test, removed when dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A folder removed, with everything in it, when this is dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty folder under the system's temp folder, named
    /// `rtcgear-PREFIX-PROCESS-N`: no other test of this process, nor any other process, uses
    /// it.
    ///
    /// # Panics
    ///
    /// If the folder cannot be made.
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("rtcgear-{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a temp folder");
        TempDir(path)
    }

    /// The folder `path`, made if it is not there yet, and removed on drop like a new one.
    pub fn at(path: impl Into<PathBuf>) -> std::io::Result<TempDir> {
        let path = path.into();
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_folder_is_new_and_goes_on_drop() {
        let (a, b) = (TempDir::new("support"), TempDir::new("support"));
        assert_ne!(a.path(), b.path());
        std::fs::write(a.path().join("file"), "x").expect("the folder is writable");
        let path = a.path().to_path_buf();
        drop(a);
        assert!(!path.exists());
        assert!(b.path().is_dir());
    }
}
