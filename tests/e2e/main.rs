//! End-to-end tests: the real server, a real browser, real outside WebRTC clients.

mod auth;
mod bad_input;
mod browser;
mod codecs;
mod firefox;
mod limits;
mod outside;
mod sources;

/// Tests that stream video take turns: on two cores, two browsers at once would measure the
/// machine rather than rtcgear.
pub use rtcgear_test_support::serial::heavy;
