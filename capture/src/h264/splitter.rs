//! A raw Annex B byte stream, arriving in chunks, cut into access units (pictures).

use super::{find_start_code, nal_type, nal_units};

/// Cuts an Annex B byte stream, arriving in chunks of any size, into access units (pictures).
///
/// A picture ends where the next one begins (ITU-T H.264 7.4.1.2.3): at an access unit
/// delimiter, SPS, PPS or SEI after a slice, or at a slice that starts a new picture
/// (`first_mb_in_slice` 0). So the last picture comes out only once the next one starts, or
/// on [`finish`](Self::finish), which a reader calls when the stream ends or pauses.
#[derive(Debug, Default)]
pub struct AccessUnitSplitter {
    buf: Vec<u8>,
}

impl AccessUnitSplitter {
    /// An empty splitter.
    pub fn new() -> AccessUnitSplitter {
        AccessUnitSplitter::default()
    }

    /// Adds bytes from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that have not come out yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete access unit, with its start codes, if the stream has shown where it
    /// ends.
    pub fn next_unit(&mut self) -> Option<Vec<u8>> {
        // Anything before the first start code cannot be decoded: drop it.
        match find_start_code(&self.buf, 0) {
            Some((0, _)) => {}
            Some((begin, _)) => {
                self.buf.drain(..begin);
            }
            None => {
                // Keep a possible start code's beginning.
                let keep = self.buf.len().min(3);
                self.buf.drain(..self.buf.len() - keep);
                return None;
            }
        }
        let mut seen_slice = false;
        let mut search = 0;
        while let Some((begin, nal)) = find_start_code(&self.buf, search) {
            // The header byte and the one after it decide; wait for them.
            let (Some(&header), Some(&next)) = (self.buf.get(nal), self.buf.get(nal + 1)) else {
                return None;
            };
            let kind = header & 0x1f;
            let is_slice = matches!(kind, nal_type::SLICE | nal_type::IDR);
            // first_mb_in_slice is ue(v): 0 is the single bit 1.
            let starts_picture = is_slice && next & 0x80 != 0;
            let boundary = matches!(kind, nal_type::SEI | nal_type::SPS | nal_type::PPS)
                || matches!(kind, nal_type::AUD | 14..=18)
                || starts_picture;
            if seen_slice && boundary && begin > 0 {
                let rest = self.buf.split_off(begin);
                return Some(std::mem::replace(&mut self.buf, rest));
            }
            seen_slice |= is_slice;
            search = nal;
        }
        None
    }

    /// Everything held, as the last access unit, if it has a slice (the stream ended or
    /// paused after it); anything else is dropped.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let data = std::mem::take(&mut self.buf);
        nal_units(&data)
            .any(|nal| matches!(nal_type(nal), nal_type::SLICE | nal_type::IDR))
            .then_some(data)
    }

    /// Whether the bytes held so far contain a slice, so [`finish`](Self::finish) would give
    /// a picture.
    pub fn holds_picture(&self) -> bool {
        nal_units(&self.buf).any(|nal| matches!(nal_type(nal), nal_type::SLICE | nal_type::IDR))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::samples::*;
    use crate::h264::{has_sps, is_keyframe};

    #[test]
    fn splitter_cuts_at_every_picture_whatever_the_chunks() {
        let stream = [
            annexb(&[SPS, PPS, IDR]),
            annexb(&[P, P_SECOND_SLICE]),
            annexb(&[&[0x09, 0x10], P]),
            annexb(&[SPS, PPS, IDR]),
        ]
        .concat();
        for chunk in [1, 2, 3, 5, 7, 64] {
            let mut splitter = AccessUnitSplitter::new();
            let mut units = Vec::new();
            splitter.push(&[0xff, 0x00]); // garbage before the first start code
            for piece in stream.chunks(chunk) {
                splitter.push(piece);
                while let Some(unit) = splitter.next_unit() {
                    units.push(unit);
                }
            }
            units.extend(splitter.finish());
            assert_eq!(units.len(), 4, "chunks of {chunk}");
            assert_eq!(units[0], annexb(&[SPS, PPS, IDR]));
            assert_eq!(
                units[1],
                annexb(&[P, P_SECOND_SLICE]),
                "two slices, one picture"
            );
            assert_eq!(units[2], annexb(&[&[0x09, 0x10], P]));
            assert!(is_keyframe(&units[3]) && has_sps(&units[3]));
            assert_eq!(units.concat(), stream);
        }
    }

    #[test]
    fn finish_drops_what_is_no_picture() {
        let mut splitter = AccessUnitSplitter::new();
        splitter.push(&annexb(&[SPS, PPS]));
        assert!(!splitter.holds_picture());
        assert!(splitter.finish().is_none());
        assert_eq!(splitter.pending(), 0);
    }
}
