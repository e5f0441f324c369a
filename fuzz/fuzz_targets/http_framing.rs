//! The gate's framing of raw request bytes: it must never panic, and a framed request must
//! lie within the input and within the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtcgear_server::fuzzing::frame_request;

fuzz_target!(|data: &[u8]| {
    match frame_request(data) {
        None => assert!(data.len() <= 16 * 1024 + 4 || !data.windows(4).any(|w| w == b"\r\n\r\n")),
        Some(Ok((head, body))) => {
            assert!(head <= data.len() && head >= 4);
            assert!(head <= 16 * 1024 + 4);
            assert!(body <= 64 * 1024);
        }
        Some(Err(status)) => assert!(matches!(status, 400 | 411 | 413 | 431), "{status}"),
    }
});
