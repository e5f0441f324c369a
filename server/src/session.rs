//! The names of WHEP sessions in their URLs (`/whep/NAME`): the viewer's number with a tag
//! that only this server can make, for that stream, so that nobody can end another viewer's
//! session by guessing its URL (viewers are numbered per stream, so a name of one stream must
//! not fit another's), and a page's leftover `DELETE` from before a restart ends nothing of
//! the new server's.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use rtcgear_rtc::ViewerId;

use crate::auth::{hex, unhex};

/// Bytes of the HMAC in a session's name: 128 bits, as hex.
const TAG_BYTES: usize = 16;

/// Makes and checks session names with a key drawn when the server starts.
pub(crate) struct SessionNames {
    key: hmac::Key,
}

impl SessionNames {
    /// Names under a new random key.
    pub(crate) fn new() -> SessionNames {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            // Only fails when the system has no randomness, and then nothing secure works.
            .expect("the system's random number generator");
        SessionNames { key }
    }

    /// The name of `viewer` of stream `stream`: `N-TAG`, its number and 32 hex digits.
    pub(crate) fn name(&self, stream: usize, viewer: ViewerId) -> String {
        format!("{}-{}", viewer.get(), hex(&self.tag(stream, viewer.get())))
    }

    /// The viewer a name stands for, if this server made it for stream `stream`.
    pub(crate) fn parse(&self, stream: usize, name: &str) -> Option<ViewerId> {
        let (number, tag) = name.split_once('-')?;
        let number: u64 = number.parse().ok()?;
        let given = unhex(tag).filter(|tag| tag.len() == TAG_BYTES)?;
        verify_slices_are_equal(&given, &self.tag(stream, number)).ok()?;
        Some(ViewerId::from_raw(number))
    }

    fn tag(&self, stream: usize, number: u64) -> [u8; TAG_BYTES] {
        let mut message = [0; 16];
        message[..8].copy_from_slice(&(stream as u64).to_be_bytes());
        message[8..].copy_from_slice(&number.to_be_bytes());
        let signed = hmac::sign(&self.key, &message);
        let mut tag = [0; TAG_BYTES];
        tag.copy_from_slice(&signed.as_ref()[..TAG_BYTES]);
        tag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_unguessable() {
        let names = SessionNames::new();
        let viewer = ViewerId::from_raw(7);
        let name = names.name(0, viewer);
        assert!(name.starts_with("7-") && name.len() == 2 + 32, "{name}");
        assert_eq!(names.parse(0, &name), Some(viewer));
        // Viewers are numbered per stream: viewer 7 of another stream has another name.
        assert_ne!(names.name(1, viewer), name);
        assert_eq!(names.parse(1, &name), None);
        // Another number with the same tag, a changed tag, bare numbers and garbage: refused.
        let tag = &name[2..];
        let mut flipped = name.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).expect("hex stays text");
        for bad in [
            format!("8-{tag}"),
            flipped,
            "7".to_string(),
            "7-".to_string(),
            format!("7-{}", &tag[..30]),
            format!("7-{tag}0"),
            format!("7-+{}", &tag[1..]),
            "x-y".to_string(),
            String::new(),
        ] {
            assert_eq!(names.parse(0, &bad), None, "{bad:?}");
        }
        // Another server (a restart) makes other names and does not take these.
        let other = SessionNames::new();
        assert_ne!(other.name(0, viewer), name);
        assert_eq!(other.parse(0, &name), None);
    }
}
