//! Parameter sets kept for keyframes that come without them, and MP4/Matroska's `avcC`
//! record with its length-prefixed NAL units.

use super::{nal_type, nal_units, H264Profile};
use crate::CaptureError;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::samples::*;

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
}
