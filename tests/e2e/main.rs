//! End-to-end tests: the real server, a real browser, real outside WebRTC clients.

mod auth;
mod bad_input;
mod browser;
mod limits;
mod outside;
mod sources;

use std::sync::{Mutex, MutexGuard};

/// Tests that stream video take turns: on two cores, two browsers at once would measure the
/// machine rather than rtcgear.
pub fn heavy() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
