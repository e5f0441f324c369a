//! Tests that take turns within one test program.

use std::sync::{Mutex, MutexGuard};

/// A turn for a test that streams video: on two cores, two browsers or encoders at once
/// would measure the machine rather than rtcgear. Held until the guard is dropped; a test that
/// panicked while holding it does not stop the others.
pub fn heavy() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
