//! The profile and level an SPS announces, and SDP's `profile-level-id`.

use std::fmt;

use super::{nal_type, nal_units};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::samples::*;

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
}
