//! The H.264 flavour we send, and how to pick its payload type from a negotiation.

use str0m::format::{Codec, PayloadParams};
use str0m::RtcConfig;

/// The profile-level-id we prefer: constrained baseline, level 3.1.
const PREFERRED_PROFILE_LEVEL_ID: u32 = 0x42e01f;
const PROFILE_BASELINE: u8 = 0x42;
const PROFILE_MAIN: u8 = 0x4d;

const PROFILE_HIGH: u8 = 0x64;

/// Whether `profile_level_id` (of the stream we send) is Constrained Baseline, which is what
/// `None` means too.
pub(crate) fn is_constrained_baseline(stream: Option<u32>) -> bool {
    let Some(id) = stream else {
        return true;
    };
    let [_, profile_idc, profile_iop, _] = id.to_be_bytes();
    profile_idc == PROFILE_BASELINE && profile_iop & 0x40 != 0
        || profile_idc == PROFILE_MAIN && profile_iop & 0x80 != 0
}

/// Restricts `config` to the H.264 payload types we can send, packetization-mode 1 always.
///
/// For Constrained Baseline (`stream` `None`, rtcgear's encoder): constrained baseline
/// (preferred) and baseline (fallback for offers without the former). For a stream passed
/// through in another profile: that profile, and High for Main (a High decoder decodes Main).
///
/// The payload type numbers are str0m's defaults; the browser's own numbers win in the answer.
pub(crate) fn configure(config: RtcConfig, stream: Option<u32>) -> RtcConfig {
    let mut config = config.clear_codecs();
    let codecs = config.codec_config();
    if is_constrained_baseline(stream) {
        codecs.add_h264(
            108.into(),
            Some(109.into()),
            true,
            PREFERRED_PROFILE_LEVEL_ID,
        );
        codecs.add_h264(127.into(), Some(121.into()), true, 0x42001f);
        return config;
    }
    let id = stream.unwrap_or(PREFERRED_PROFILE_LEVEL_ID);
    let [_, profile_idc, _, level] = id.to_be_bytes();
    codecs.add_h264(108.into(), Some(109.into()), true, id);
    if profile_idc == PROFILE_MAIN {
        let high = u32::from_be_bytes([0, PROFILE_HIGH, 0, level]);
        codecs.add_h264(127.into(), Some(121.into()), true, high);
    }
    config
}

/// How well negotiated `params` fit the stream we send (`stream`'s profile-level-id, `None`
/// for our encoder's Constrained Baseline); higher is better, `None` unusable.
///
/// Constrained Baseline may be announced, by RFC 6184 (table 5), as `42e0xx`, `4240xx` or
/// `4d80xx`; a plain baseline decoder (`4200xx`) decodes it as well. Another profile needs a
/// payload type of the same profile, or High for Main. Levels are not compared: browsers offer
/// `level-asymmetry-allowed`. Packetization-mode 0 is out: it cannot carry NAL units larger
/// than one packet.
pub(crate) fn score(params: &PayloadParams, stream: Option<u32>) -> Option<u8> {
    let spec = params.spec();
    if spec.codec != Codec::H264 || spec.format.packetization_mode != Some(1) {
        return None;
    }
    let profile_level_id = spec
        .format
        .profile_level_id
        .unwrap_or(PREFERRED_PROFILE_LEVEL_ID);
    let [_, profile_idc, profile_iop, _] = profile_level_id.to_be_bytes();
    if !is_constrained_baseline(stream) {
        let [_, stream_idc, _, _] = stream.unwrap_or(0).to_be_bytes();
        return match (stream_idc, profile_idc) {
            (s, p) if s == p => Some(3),
            (PROFILE_MAIN, PROFILE_HIGH) => Some(2),
            _ => None,
        };
    }
    let constraint_set0 = profile_iop & 0x80 != 0;
    let constraint_set1 = profile_iop & 0x40 != 0;
    match profile_idc {
        _ if profile_level_id == PREFERRED_PROFILE_LEVEL_ID => Some(3),
        PROFILE_BASELINE if constraint_set1 => Some(2),
        PROFILE_MAIN if constraint_set0 => Some(2),
        PROFILE_BASELINE => Some(1),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn params(packetization_mode: bool, profile_level_id: u32) -> PayloadParams {
        let mut config = RtcConfig::new().clear_codecs();
        config
            .codec_config()
            .add_h264(96.into(), None, packetization_mode, profile_level_id);
        // One payload type was just added, so `params()[0]` exists.
        config.codec_config().params()[0]
    }

    #[test]
    fn prefers_constrained_baseline() {
        assert_eq!(score(&params(true, 0x42e01f), None), Some(3));
        assert_eq!(score(&params(true, 0x42e034), None), Some(2));
        assert_eq!(score(&params(true, 0x4d801f), None), Some(2));
        assert_eq!(score(&params(true, 0x42001f), None), Some(1));
        assert_eq!(score(&params(true, 0x42e01f), Some(0x42e01f)), Some(3));
    }

    #[test]
    fn passthrough_profiles_need_their_own() {
        let high = Some(0x640029);
        assert_eq!(score(&params(true, 0x64001f), high), Some(3));
        assert_eq!(score(&params(true, 0x42e01f), high), None);
        assert_eq!(score(&params(true, 0x4d001f), high), None);
        let main = Some(0x4d0028);
        assert_eq!(score(&params(true, 0x4d001f), main), Some(3));
        assert_eq!(score(&params(true, 0x64001f), main), Some(2));
        assert_eq!(score(&params(false, 0x4d001f), main), None);
        for stream in [high, main] {
            let mut config = configure(RtcConfig::new(), stream);
            assert!(config
                .codec_config()
                .params()
                .iter()
                .all(|p| score(p, stream).is_some()));
        }
    }

    #[test]
    fn rejects_what_the_encoder_cannot_feed() {
        assert_eq!(
            score(&params(false, 0x42e01f), None),
            None,
            "packetization-mode 0"
        );
        assert_eq!(score(&params(true, 0x64001f), None), None, "high");
        assert_eq!(score(&params(true, 0x4d001f), None), None, "main");
    }

    #[test]
    fn configured_payload_types_are_all_usable() {
        let mut config = configure(RtcConfig::new(), None);
        assert_eq!(config.codec_config().params().len(), 2);
        assert!(config
            .codec_config()
            .params()
            .iter()
            .all(|p| score(p, None).is_some()));
        let _ = config.build(Instant::now());
    }
}
