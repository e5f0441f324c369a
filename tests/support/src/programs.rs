//! The programs the tests run (Chromium, ChromeDriver, FFmpeg, openssl, curl), found on the
//! `PATH`.

use std::path::PathBuf;

/// `program` as found on the `PATH`, or `None`.
pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// `program` as found on the `PATH`.
///
/// # Panics
///
/// If it is not there, naming the Debian `package` that has it and the command that installs
/// it.
pub fn require(program: &str, package: &str) -> PathBuf {
    find(program).unwrap_or_else(|| {
        panic!(
            "{program} is not installed: these tests need Debian's {package}; \
             the README's test command (`./scripts/test.sh`) installs it"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_the_path_or_not_at_all() {
        assert!(find("sh").is_some_and(|p| p.is_absolute()));
        assert_eq!(find("no-such-program-anywhere"), None);
    }
}
