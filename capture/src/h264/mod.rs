//! The H.264 bitstream, read once for every crate: NAL units of an Annex B stream, keyframes
//! and parameter sets, the profile an SPS announces ([`H264Profile`], [`Profile`]), AVCC
//! (MP4/MKV) packets to Annex B, and the splitting of a raw byte stream (a pipe from
//! `rpicam-vid`, say) into access units. Sources use it for passthrough, `rtcgear-rtc` to cut
//! access units into RTP payloads and to match a stream's profile to a browser's offer.
//!
//! Only that much is parsed: NAL headers, the first bytes of an SPS, and a slice header's
//! first fields. Nothing here decodes pictures.
//!
//! ```
//! use rtcgear_capture::h264::{self, AccessUnitSplitter, H264Profile};
//!
//! // SPS (Constrained Baseline 3.1), PPS and an IDR slice, then the next picture's slice.
//! let stream = [
//!     &[0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0xac][..],
//!     &[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80],
//!     &[0, 0, 1, 0x65, 0x88, 0x84, 0x00],
//!     &[0, 0, 1, 0x41, 0x9a, 0x21],
//! ]
//! .concat();
//! let mut splitter = AccessUnitSplitter::new();
//! splitter.push(&stream);
//! let first = splitter.next_unit().expect("the second picture ends the first");
//! assert!(h264::is_keyframe(&first));
//! let sps = h264::nal_units(&first).next().unwrap();
//! assert_eq!(H264Profile::from_sps(sps).unwrap().to_string(), "Constrained Baseline 3.1");
//! // The last picture is complete only when the stream says so: more data, or its end.
//! assert!(splitter.next_unit().is_none());
//! assert!(!h264::is_keyframe(&splitter.finish().unwrap()));
//! ```

mod bits;
mod profile;
#[cfg(test)]
mod samples;
mod sets;
mod splitter;

use bits::Bits;
pub use profile::{H264Profile, Profile};
pub use sets::{AvcConfig, ParameterSets};
pub use splitter::AccessUnitSplitter;

/// NAL unit types (ITU-T H.264 table 7-1) that passthrough cares about.
pub mod nal_type {
    /// A slice of a non-IDR picture.
    pub const SLICE: u8 = 1;
    /// A slice of an IDR picture: a decoder can start here.
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
}

/// The type of a NAL unit (its first byte's low five bits); 0 for an empty one.
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// The NAL units of Annex B data, each without its start code (header byte first).
pub fn nal_units(data: &[u8]) -> NalUnits<'_> {
    NalUnits {
        data,
        pos: find_start_code(data, 0).map_or(data.len(), |(_, end)| end),
    }
}

/// Iterator over the NAL units of Annex B data; see [`nal_units`].
#[derive(Debug, Clone)]
pub struct NalUnits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while self.pos < self.data.len() {
            let start = self.pos;
            let (end, next) = match find_start_code(self.data, start) {
                Some((code, after)) => (code, after),
                None => (self.data.len(), self.data.len()),
            };
            self.pos = next;
            let mut nal = &self.data[start..end];
            while let [rest @ .., 0] = nal {
                nal = rest;
            }
            if !nal.is_empty() {
                return Some(nal);
            }
        }
        None
    }
}

/// The first start code (`00 00 01`) at or after `from`: where it begins (a zero byte in front
/// of it counts as part of it, making the four-byte form) and where its NAL unit begins.
fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= data.len() {
        // Skip ahead fast: a start code's third byte is 1, and its second is 0.
        if data[i + 2] > 1 {
            i += 3;
            continue;
        }
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            let begin = if i > from && data[i - 1] == 0 {
                i - 1
            } else {
                i
            };
            return Some((begin, i + 3));
        }
        i += 1;
    }
    None
}

/// Whether Annex B data holds an IDR slice, so a decoder can start on it.
pub fn is_keyframe(data: &[u8]) -> bool {
    nal_units(data).any(|nal| nal_type(nal) == nal_type::IDR)
}

/// Whether Annex B data holds a sequence parameter set.
pub fn has_sps(data: &[u8]) -> bool {
    nal_units(data).any(|nal| nal_type(nal) == nal_type::SPS)
}

/// Whether Annex B data holds a B slice (a picture predicted from a later one), which browsers'
/// WebRTC decoders do not expect. Reads each slice header's `slice_type`.
pub fn has_b_slices(data: &[u8]) -> bool {
    nal_units(data).any(|nal| slice_type(nal).is_some_and(|kind| kind % 5 == 1))
}

/// A slice's `slice_type` (0 P, 1 B, 2 I, 3 SP, 4 SI; plus 5 when every slice of the picture
/// has that type), or `None` for another NAL unit or a header cut short.
fn slice_type(nal: &[u8]) -> Option<u32> {
    if !matches!(nal_type(nal), nal_type::SLICE | nal_type::IDR) {
        return None;
    }
    let mut bits = Bits::new(nal.get(1..)?);
    let _first_mb_in_slice = bits.exp_golomb()?;
    bits.exp_golomb()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::samples::*;

    #[test]
    fn nal_units_without_start_codes_or_trailing_zeros() {
        let data = [&[0u8, 0, 1][..], SPS, &[0, 0, 0, 0, 1], PPS, &[0, 0]].concat();
        let nals: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(nals, vec![SPS, PPS]);
        assert_eq!(nal_units(b"no start code").count(), 0);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
    }

    #[test]
    fn start_codes_are_found_wherever_they_are() {
        // Where the start code begins (with a zero in front, the four-byte form), and where
        // its NAL unit begins.
        assert_eq!(find_start_code(&[0, 0, 1], 0), Some((0, 3)));
        assert_eq!(find_start_code(&[0, 0, 0, 1], 0), Some((0, 4)));
        assert_eq!(find_start_code(&[5, 0, 0, 1], 0), Some((1, 4)));
        assert_eq!(find_start_code(&[5, 7, 0, 0, 0, 1, 3], 0), Some((2, 6)));
        assert_eq!(find_start_code(&[0, 2, 0, 1, 0, 0], 0), None);
        assert_eq!(find_start_code(&[9, 9, 9, 9, 0, 0, 1], 0), Some((4, 7)));
        assert_eq!(find_start_code(&[9, 9, 9, 9, 0, 0, 1], 5), None);
        assert_eq!(find_start_code(&[1, 0, 0], 0), None);
    }

    #[test]
    fn b_slices_are_found_by_their_slice_type() {
        // After the NAL header: first_mb_in_slice 0 (the bit 1), then slice_type.
        let i_all = [0x65, 0x88, 0x84]; // 1 0001000: type 7, I
        let p = [0x41, 0xe0]; // 1 1: type 0, P
        let b = [0x01, 0xa0]; // 1 010: type 1, B
        let b_all = [0x41, 0x9c]; // 1 00111: type 6, B
        assert_eq!(slice_type(&i_all), Some(7));
        assert_eq!(slice_type(&p), Some(0));
        assert_eq!(slice_type(&b), Some(1));
        assert_eq!(slice_type(&b_all), Some(6));
        assert_eq!(slice_type(SPS), None);
        assert_eq!(slice_type(&[0x41]), None, "cut short");
        assert_eq!(slice_type(&[0x41, 0, 0, 0, 0, 0]), None, "all zeros");
        assert!(!has_b_slices(&annexb(&[SPS, PPS, &i_all, &p])));
        assert!(has_b_slices(&annexb(&[&p, &b])));
        assert!(has_b_slices(&annexb(&[&b_all])));
        // Emulation prevention bytes inside the header are skipped: first_mb_in_slice
        // 2^23 - 1 is 23 zeros, a 1 and 23 zeros, then type 1 is 010; those bits are the bytes
        // 00 00 01 00 00 00 80, escaped as 00 00 03 01 00 00 03 00 80.
        let escaped = [0x01, 0x00, 0x00, 0x03, 0x01, 0x00, 0x00, 0x03, 0x00, 0x80];
        assert_eq!(slice_type(&escaped), Some(1));
    }
}
