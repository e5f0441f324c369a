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

use std::fmt;

use crate::CaptureError;

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

/// Reads the bits of a NAL unit's payload, skipping emulation prevention bytes (`00 00 03`).
struct Bits<'a> {
    data: &'a [u8],
    byte: usize,
    bit: u32,
    zeros: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Bits<'a> {
        Bits {
            data,
            byte: 0,
            bit: 0,
            zeros: 0,
        }
    }

    fn bit(&mut self) -> Option<u32> {
        if self.bit == 0 {
            let mut value = *self.data.get(self.byte)?;
            if self.zeros >= 2 && value == 3 {
                self.byte += 1;
                self.zeros = 0;
                value = *self.data.get(self.byte)?;
            }
            self.zeros = if value == 0 { self.zeros + 1 } else { 0 };
        }
        let value = *self.data.get(self.byte)?;
        let out = u32::from(value >> (7 - self.bit) & 1);
        self.bit += 1;
        if self.bit == 8 {
            self.bit = 0;
            self.byte += 1;
        }
        Some(out)
    }

    /// An unsigned Exp-Golomb number, `ue(v)`; `None` past the end or above `u32::MAX`.
    fn exp_golomb(&mut self) -> Option<u32> {
        let mut leading = 0;
        while self.bit()? == 0 {
            leading += 1;
            if leading > 31 {
                return None;
            }
        }
        let mut rest = 0u32;
        for _ in 0..leading {
            rest = rest << 1 | self.bit()?;
        }
        Some((1u32 << leading) - 1 + rest)
    }
}

/// An H.264 profile by name: what a decoder must support. See [`H264Profile::profile`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Profile {
    /// Constrained Baseline: what every WebRTC endpoint decodes. Baseline with
    /// `constraint_set1`, or Main with `constraint_set0` (RFC 6184, table 5).
    ConstrainedBaseline,
    /// Baseline without `constraint_set1` (`profile_idc` 66).
    Baseline,
    /// Main (77).
    Main,
    /// Extended (88).
    Extended,
    /// High (100).
    High,
    /// Constrained High: High with `constraint_set4` and `constraint_set5`.
    ConstrainedHigh,
    /// High 10 (110): 10-bit samples.
    High10,
    /// High 4:2:2 (122).
    High422,
    /// High 4:4:4 Predictive (244).
    High444,
    /// Another `profile_idc`.
    Other(u8),
}

impl Profile {
    /// The profile's name, e.g. "High".
    pub fn name(self) -> &'static str {
        match self {
            Profile::ConstrainedBaseline => "Constrained Baseline",
            Profile::Baseline => "Baseline",
            Profile::Main => "Main",
            Profile::Extended => "Extended",
            Profile::High => "High",
            Profile::ConstrainedHigh => "Constrained High",
            Profile::High10 => "High 10",
            Profile::High422 => "High 4:2:2",
            Profile::High444 => "High 4:4:4",
            Profile::Other(_) => "unknown profile",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The profile, constraint flags and level of an H.264 stream, from its SPS: the three bytes
/// that `profile-level-id` carries in SDP.
///
/// ```
/// use rtcgear_capture::h264::{H264Profile, Profile};
///
/// let high = H264Profile::from_profile_level_id(0x640028);
/// assert_eq!(high.profile(), Profile::High);
/// assert_eq!(high.to_string(), "High 4.0");
/// assert_eq!(H264Profile::from_profile_level_id(0x42e01f), H264Profile::CONSTRAINED_BASELINE_31);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct H264Profile {
    /// `profile_idc`: 66 Baseline, 77 Main, 100 High, …
    pub profile_idc: u8,
    /// The `constraint_set0..5` flags and reserved bits, as one byte.
    pub constraints: u8,
    /// `level_idc`: ten times the level (31 is 3.1).
    pub level_idc: u8,
}

impl H264Profile {
    /// Constrained Baseline 3.1 (`42e01f`), what every WebRTC endpoint decodes.
    pub const CONSTRAINED_BASELINE_31: H264Profile = H264Profile {
        profile_idc: 66,
        constraints: 0xe0,
        level_idc: 31,
    };

    /// Reads the profile from an SPS NAL unit (header byte first, as [`nal_units`] gives it).
    pub fn from_sps(nal: &[u8]) -> Option<H264Profile> {
        match nal {
            [header, profile_idc, constraints, level_idc, ..] if header & 0x1f == nal_type::SPS => {
                Some(H264Profile {
                    profile_idc: *profile_idc,
                    constraints: *constraints,
                    level_idc: *level_idc,
                })
            }
            _ => None,
        }
    }

    /// The profile of the first SPS in Annex B data.
    pub fn from_annexb(data: &[u8]) -> Option<H264Profile> {
        nal_units(data).find_map(H264Profile::from_sps)
    }

    /// From SDP's `profile-level-id` (its low three bytes), e.g. `0x42e01f`.
    pub fn from_profile_level_id(id: u32) -> H264Profile {
        let [_, profile_idc, constraints, level_idc] = id.to_be_bytes();
        H264Profile {
            profile_idc,
            constraints,
            level_idc,
        }
    }

    /// The three bytes of SDP's `profile-level-id`, e.g. `0x42e01f`.
    pub fn profile_level_id(self) -> u32 {
        u32::from_be_bytes([0, self.profile_idc, self.constraints, self.level_idc])
    }

    /// The profile by name, from `profile_idc` and the constraint flags.
    pub fn profile(self) -> Profile {
        match self.profile_idc {
            66 if self.constraints & 0x40 != 0 => Profile::ConstrainedBaseline,
            66 => Profile::Baseline,
            77 if self.constraints & 0x80 != 0 => Profile::ConstrainedBaseline,
            77 => Profile::Main,
            88 => Profile::Extended,
            100 if self.constraints & 0x0c == 0x0c => Profile::ConstrainedHigh,
            100 => Profile::High,
            110 => Profile::High10,
            122 => Profile::High422,
            244 => Profile::High444,
            other => Profile::Other(other),
        }
    }

    /// Whether a Constrained Baseline decoder decodes this stream.
    pub fn is_constrained_baseline(self) -> bool {
        self.profile() == Profile::ConstrainedBaseline
    }

    /// Whether browsers decode this profile over WebRTC: Baseline, Main and High (8-bit 4:2:0).
    /// High 10, 4:2:2 and 4:4:4 profiles are not.
    pub fn browsers_decode(self) -> bool {
        matches!(self.profile_idc, 66 | 77 | 100)
    }

    /// Whether the profile allows B-frames (Main and above do; Baseline does not).
    pub fn allows_b_frames(self) -> bool {
        !matches!(
            self.profile(),
            Profile::Baseline | Profile::ConstrainedBaseline
        )
    }

    /// The profile's name, e.g. "High".
    pub fn name(self) -> &'static str {
        self.profile().name()
    }
}

impl fmt::Display for H264Profile {
    /// The profile and level, e.g. "High 4.1".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}.{}",
            self.name(),
            self.level_idc / 10,
            self.level_idc % 10
        )
    }
}

/// A stream's parameter sets (SPS and PPS), kept so that every keyframe passed on can start a
/// decoder on its own, also when the stream sent them once only (in a file's header, or
/// before the first picture of a camera).
///
/// ```
/// use rtcgear_capture::h264::{self, ParameterSets};
///
/// let mut sets = ParameterSets::default();
/// sets.update(&[0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
/// assert!(sets.is_complete());
///
/// // An IDR picture that came without them gets them in front of its first slice; other
/// // pictures pass as they are.
/// let idr = vec![0, 0, 0, 1, 0x65, 0x88, 0x84];
/// let unit = sets.complete(idr);
/// let types: Vec<u8> = h264::nal_units(&unit).map(h264::nal_type).collect();
/// assert_eq!(types, [7, 8, 5]);
/// let p = vec![0, 0, 0, 1, 0x41, 0x9a, 0x21];
/// assert_eq!(sets.complete(p.clone()), p);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParameterSets {
    /// Sequence parameter sets, header byte first.
    pub sps: Vec<Vec<u8>>,
    /// Picture parameter sets, header byte first.
    pub pps: Vec<Vec<u8>>,
}

impl ParameterSets {
    /// The parameter sets found in Annex B data (a stream's header, say).
    pub fn from_annexb(data: &[u8]) -> ParameterSets {
        let mut sets = ParameterSets::default();
        sets.update(data);
        sets
    }

    /// Takes the parameter sets in Annex B data: those it holds replace the ones kept, SPS and
    /// PPS each on its own.
    pub fn update(&mut self, data: &[u8]) {
        let (mut sps, mut pps) = (Vec::new(), Vec::new());
        for nal in nal_units(data) {
            match nal_type(nal) {
                nal_type::SPS => sps.push(nal.to_vec()),
                nal_type::PPS => pps.push(nal.to_vec()),
                _ => {}
            }
        }
        if !sps.is_empty() {
            self.sps = sps;
        }
        if !pps.is_empty() {
            self.pps = pps;
        }
    }

    /// Whether there is at least one SPS and one PPS, enough to start a decoder.
    pub fn is_complete(&self) -> bool {
        !self.sps.is_empty() && !self.pps.is_empty()
    }

    /// The profile of the first SPS.
    pub fn profile(&self) -> Option<H264Profile> {
        self.sps.first().and_then(|sps| H264Profile::from_sps(sps))
    }

    /// Whether an access unit (Annex B) needs parameter sets put in front: an IDR picture
    /// without its own SPS or PPS.
    pub fn lacks_sets(unit: &[u8]) -> bool {
        let (mut idr, mut sps, mut pps) = (false, false, false);
        for nal in nal_units(unit) {
            match nal_type(nal) {
                nal_type::IDR => idr = true,
                nal_type::SPS => sps = true,
                nal_type::PPS => pps = true,
                _ => {}
            }
        }
        idr && !(sps && pps)
    }

    /// An access unit (Annex B) ready to start a decoder: as it came, unless it
    /// [lacks its sets](ParameterSets::lacks_sets); then with these put in front of its first
    /// slice (after any access unit delimiter and SEI), every byte of it kept.
    pub fn complete(&self, unit: Vec<u8>) -> Vec<u8> {
        if !ParameterSets::lacks_sets(&unit) {
            return unit;
        }
        let first_slice = nal_units(&unit)
            .find(|nal| matches!(nal_type(nal), nal_type::SLICE | nal_type::IDR))
            // The NAL unit lies inside `unit`: its offset is the distance between the two.
            .map(|nal| nal.as_ptr() as usize - unit.as_ptr() as usize);
        let Some(offset) = first_slice else {
            return unit;
        };
        // Where the slice's start code begins, a zero in front of it included.
        let mut at = offset.saturating_sub(3);
        if at > 0 && unit[at - 1] == 0 {
            at -= 1;
        }
        let mut out = Vec::with_capacity(unit.len() + 64);
        out.extend_from_slice(&unit[..at]);
        for set in self.sps.iter().chain(&self.pps) {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(set);
        }
        out.extend_from_slice(&unit[at..]);
        out
    }

    /// Appends the NAL units of one picture (header byte first, as [`nal_units`] gives them)
    /// to `out` in Annex B form. An IDR picture without its own SPS or PPS gets these in front
    /// of its first slice (after any access unit delimiter and SEI, as H.264 orders them).
    pub fn write_annexb<'a>(&self, nals: impl IntoIterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
        let nals: Vec<&[u8]> = nals.into_iter().filter(|nal| !nal.is_empty()).collect();
        let has = |kind: u8| nals.iter().any(|nal| nal_type(nal) == kind);
        let start = |out: &mut Vec<u8>, nal: &[u8]| {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        };
        let mut sets_written = !has(nal_type::IDR) || (has(nal_type::SPS) && has(nal_type::PPS));
        for nal in nals {
            if !sets_written && matches!(nal_type(nal), nal_type::SLICE | nal_type::IDR) {
                for set in self.sps.iter().chain(&self.pps) {
                    start(out, set);
                }
                sets_written = true;
            }
            start(out, nal);
        }
    }
}

/// The decoder configuration record of MP4 and Matroska (`avcC`): how long the NAL length
/// prefixes are, and the SPS and PPS that Annex B carries in band instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvcConfig {
    /// Bytes in each NAL unit's length prefix: 1, 2 or 4.
    pub length_size: usize,
    /// The record's sequence and picture parameter sets.
    pub sets: ParameterSets,
}

impl AvcConfig {
    /// Parses an `avcC` record (a stream's "extradata" in FFmpeg).
    pub fn parse(record: &[u8]) -> Result<AvcConfig, CaptureError> {
        let bad = |why: &str| CaptureError::InvalidArgument(format!("bad avcC record: {why}"));
        if record.len() < 7 || record[0] != 1 {
            return Err(bad("too short or not version 1"));
        }
        let length_size = usize::from(record[4] & 3) + 1;
        if length_size == 3 {
            return Err(bad("3-byte NAL lengths"));
        }
        let mut pos = 5;
        let read_sets = |count: usize, pos: &mut usize| -> Result<Vec<Vec<u8>>, CaptureError> {
            let mut sets = Vec::with_capacity(count);
            for _ in 0..count {
                let len_bytes = record.get(*pos..*pos + 2).ok_or_else(|| bad("truncated"))?;
                let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
                let set = record
                    .get(*pos + 2..*pos + 2 + len)
                    .ok_or_else(|| bad("truncated parameter set"))?;
                sets.push(set.to_vec());
                *pos += 2 + len;
            }
            Ok(sets)
        };
        let sps_count = usize::from(record[pos] & 0x1f);
        pos += 1;
        let sps = read_sets(sps_count, &mut pos)?;
        let pps_count = usize::from(*record.get(pos).ok_or_else(|| bad("no PPS count"))?);
        pos += 1;
        let pps = read_sets(pps_count, &mut pos)?;
        if sps.is_empty() || pps.is_empty() {
            return Err(bad("no SPS or no PPS"));
        }
        Ok(AvcConfig {
            length_size,
            sets: ParameterSets { sps, pps },
        })
    }

    /// The profile of the first SPS.
    pub fn profile(&self) -> Option<H264Profile> {
        self.sets.profile()
    }

    /// Appends `packet` (length-prefixed NAL units) to `out` in Annex B form. An IDR picture
    /// without its own SPS and PPS gets this record's in front, so every keyframe can start a
    /// decoder on its own.
    pub fn to_annexb(&self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), CaptureError> {
        let mut nals = Vec::new();
        let mut pos = 0;
        while pos < packet.len() {
            let len_bytes = packet
                .get(pos..pos + self.length_size)
                .ok_or_else(|| truncated("a NAL length"))?;
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            pos += self.length_size;
            let nal = packet
                .get(pos..pos + len)
                .ok_or_else(|| truncated("a NAL unit"))?;
            pos += len;
            nals.push(nal);
        }
        self.sets.write_annexb(nals, out);
        Ok(())
    }
}

fn truncated(what: &str) -> CaptureError {
    CaptureError::InvalidArgument(format!(
        "a truncated H.264 packet: {what} runs past its end"
    ))
}

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

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter()
            .flat_map(|nal| [&[0u8, 0, 0, 1][..], nal].concat())
            .collect()
    }

    const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x29, 0xac];
    const PPS: &[u8] = &[0x68, 0xee, 0x3c];
    const IDR: &[u8] = &[0x65, 0x88, 0x80, 0x10];
    const P: &[u8] = &[0x41, 0x9a, 0x02];
    const P_SECOND_SLICE: &[u8] = &[0x41, 0x5a, 0x02];

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
    fn profiles() {
        let high = H264Profile::from_sps(SPS).unwrap();
        assert_eq!(high.to_string(), "High 4.1");
        assert_eq!(high.profile_level_id(), 0x640029);
        assert!(high.browsers_decode() && high.allows_b_frames());
        let cb = H264Profile::CONSTRAINED_BASELINE_31;
        assert!(cb.is_constrained_baseline() && !cb.allows_b_frames());
        assert_eq!(cb.profile_level_id(), 0x42e01f);
        assert!(H264Profile::from_sps(PPS).is_none());
        assert!(H264Profile::from_sps(&[0x67, 0x42]).is_none());
        let hi10 = H264Profile {
            profile_idc: 110,
            constraints: 0,
            level_idc: 40,
        };
        assert!(!hi10.browsers_decode());
        assert_eq!(hi10.profile(), Profile::High10);
        // Every profile-level-id byte survives the round trip.
        for id in [0x42e01f, 0x4d0028, 0x640029, 0x6e0032, 0xff00ff] {
            assert_eq!(
                H264Profile::from_profile_level_id(id).profile_level_id(),
                id
            );
        }
        // RFC 6184 table 5: Constrained Baseline announced three ways; plain Baseline is not.
        for id in [0x42e01f, 0x42401f, 0x4d801f] {
            let profile = H264Profile::from_profile_level_id(id);
            assert_eq!(profile.profile(), Profile::ConstrainedBaseline, "{id:06x}");
        }
        let baseline = H264Profile::from_profile_level_id(0x42001f);
        assert_eq!(baseline.profile(), Profile::Baseline);
        assert!(!baseline.allows_b_frames());
        let main = H264Profile::from_profile_level_id(0x4d0028);
        assert_eq!(
            (main.profile(), main.to_string().as_str()),
            (Profile::Main, "Main 4.0")
        );
        assert_eq!(
            H264Profile::from_profile_level_id(0x640c1f).profile(),
            Profile::ConstrainedHigh
        );
        assert_eq!(
            H264Profile::from_profile_level_id(0x2c001f).profile(),
            Profile::Other(44)
        );
    }

    #[test]
    fn parameter_sets_go_in_front_of_the_first_slice_of_an_idr_lacking_them() {
        let annexb = |nals: &[&[u8]]| -> Vec<u8> {
            nals.iter()
                .flat_map(|nal| [&[0u8, 0, 0, 1][..], nal].concat())
                .collect()
        };
        const AUD: &[u8] = &[0x09, 0xf0];
        const SEI: &[u8] = &[0x06, 0x05, 0x01, 0x80];
        let mut sets = ParameterSets::default();
        assert!(!sets.is_complete());
        let bare = annexb(&[AUD, SEI, IDR]);
        assert_eq!(
            sets.complete(bare.clone()),
            bare,
            "nothing to put in front yet"
        );
        sets.update(&annexb(&[SPS, PPS, P]));
        assert!(sets.is_complete());
        assert_eq!(sets.profile(), H264Profile::from_sps(SPS));
        assert_eq!(sets.complete(bare), annexb(&[AUD, SEI, SPS, PPS, IDR]));
        // Three-byte start codes and a slice in two NAL units keep every byte.
        let short = [&[0u8, 0, 1][..], IDR, &[0, 0, 1], IDR].concat();
        let done = sets.complete(short.clone());
        assert_eq!(done, [annexb(&[SPS, PPS]), short].concat());
        // Pictures that start a decoder on their own, or are no IDR, pass as they are.
        for unit in [annexb(&[SPS, PPS, IDR]), annexb(&[P]), annexb(&[SEI])] {
            assert_eq!(sets.complete(unit.clone()), unit);
        }
        // A new SPS replaces the old; the PPS stays.
        let other_sps: &[u8] = &[0x67, 0x42, 0xe0, 0x28, 0xac];
        sets.update(&annexb(&[other_sps]));
        assert_eq!((sets.sps.len(), sets.sps[0].as_slice()), (1, other_sps));
        assert_eq!(sets.pps, vec![PPS.to_vec()]);
    }

    #[test]
    fn avcc_packets_become_annexb_with_parameter_sets_before_idr() {
        let record = [
            &[1u8, 0x64, 0x00, 0x29, 0xff, 0xe1, 0, SPS.len() as u8][..],
            SPS,
            &[1, 0, PPS.len() as u8],
            PPS,
        ]
        .concat();
        let config = AvcConfig::parse(&record).unwrap();
        assert_eq!(config.length_size, 4);
        assert_eq!(config.profile().unwrap().profile_idc, 100);
        let packet = [&[0u8, 0, 0, IDR.len() as u8][..], IDR].concat();
        let mut out = Vec::new();
        config.to_annexb(&packet, &mut out).unwrap();
        assert_eq!(out, annexb(&[SPS, PPS, IDR]));
        let packet = [&[0u8, 0, 0, P.len() as u8][..], P].concat();
        out.clear();
        config.to_annexb(&packet, &mut out).unwrap();
        assert_eq!(out, annexb(&[P]));
        assert!(config.to_annexb(&[0, 0, 0, 9, 1], &mut out).is_err());
        assert!(AvcConfig::parse(&[1, 2, 3]).is_err());
        assert!(AvcConfig::parse(&record[..10]).is_err());
    }

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

    #[test]
    fn finish_drops_what_is_no_picture() {
        let mut splitter = AccessUnitSplitter::new();
        splitter.push(&annexb(&[SPS, PPS]));
        assert!(!splitter.holds_picture());
        assert!(splitter.finish().is_none());
        assert_eq!(splitter.pending(), 0);
    }
}
