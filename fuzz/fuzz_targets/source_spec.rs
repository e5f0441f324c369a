//! The source string parser (`--source`, `--stream NAME=SOURCE`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtcgear_capture::SourceSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.parse::<SourceSpec>() {
        Ok(spec) => {
            // A parsed spec is stable: its Debug form never panics either.
            let _ = format!("{spec:?}");
        }
        Err(err) => assert!(!err.to_string().is_empty()),
    }
});
