//! The H.264 flavour we send, and how to pick its payload type from a negotiation.

use rtcgear_capture::h264::{H264Profile, Profile};
use str0m::format::{Codec, PayloadParams};
use str0m::RtcConfig;

/// The profile we prefer: Constrained Baseline, level 3.1 (`42e01f`).
const PREFERRED: H264Profile = H264Profile::CONSTRAINED_BASELINE_31;
/// Constrained Baseline as plain Baseline decoders announce it (`42001f`).
const BASELINE_31: H264Profile = H264Profile {
    profile_idc: 66,
    constraints: 0,
    level_idc: 31,
};

/// Whether the stream we send (`None`: our encoder's) is Constrained Baseline.
pub(crate) fn is_constrained_baseline(stream: Option<H264Profile>) -> bool {
    stream.is_none_or(H264Profile::is_constrained_baseline)
}

/// Restricts `config` to the H.264 payload types we can send, packetization-mode 1 always.
///
/// For Constrained Baseline (`stream` `None`, rtcgear's encoder): constrained baseline
/// (preferred) and baseline (fallback for offers without the former). For a stream passed
/// through in another profile: that profile, and High for Main (a High decoder decodes Main).
///
/// The payload type numbers are str0m's defaults; the browser's own numbers win in the answer.
pub(crate) fn configure(config: RtcConfig, stream: Option<H264Profile>) -> RtcConfig {
    let mut config = config.clear_codecs();
    let codecs = config.codec_config();
    let stream = match stream {
        Some(stream) if !stream.is_constrained_baseline() => stream,
        _ => {
            codecs.add_h264(
                108.into(),
                Some(109.into()),
                true,
                PREFERRED.profile_level_id(),
            );
            codecs.add_h264(
                127.into(),
                Some(121.into()),
                true,
                BASELINE_31.profile_level_id(),
            );
            return config;
        }
    };
    codecs.add_h264(
        108.into(),
        Some(109.into()),
        true,
        stream.profile_level_id(),
    );
    if stream.profile() == Profile::Main {
        let high = H264Profile {
            profile_idc: 100,
            constraints: 0,
            level_idc: stream.level_idc,
        };
        codecs.add_h264(127.into(), Some(121.into()), true, high.profile_level_id());
    }
    config
}

/// How well negotiated `params` fit the stream we send (`stream`, `None` for our encoder's
/// Constrained Baseline); higher is better, `None` unusable.
///
/// Constrained Baseline may be announced, by RFC 6184 (table 5), as `42e0xx`, `4240xx` or
/// `4d80xx`; a plain baseline decoder (`4200xx`) decodes it as well. Another profile needs a
/// payload type of the same profile, or High for Main. Levels are not compared: browsers offer
/// `level-asymmetry-allowed`. Packetization-mode 0 is out: it cannot carry NAL units larger
/// than one packet.
pub(crate) fn score(params: &PayloadParams, stream: Option<H264Profile>) -> Option<u8> {
    let spec = params.spec();
    if spec.codec != Codec::H264 || spec.format.packetization_mode != Some(1) {
        return None;
    }
    let offered = spec
        .format
        .profile_level_id
        .map_or(PREFERRED, H264Profile::from_profile_level_id);
    if let Some(stream) = stream.filter(|s| !s.is_constrained_baseline()) {
        return match (stream.profile_idc, offered.profile_idc) {
            (s, o) if s == o => Some(3),
            (77, 100) => Some(2),
            _ => None,
        };
    }
    match offered.profile() {
        _ if offered == PREFERRED => Some(3),
        Profile::ConstrainedBaseline => Some(2),
        Profile::Baseline => Some(1),
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
        assert_eq!(score(&params(true, 0x42e01f), Some(PREFERRED)), Some(3));
    }

    #[test]
    fn passthrough_profiles_need_their_own() {
        let high = Some(H264Profile::from_profile_level_id(0x640029));
        assert_eq!(score(&params(true, 0x64001f), high), Some(3));
        assert_eq!(score(&params(true, 0x42e01f), high), None);
        assert_eq!(score(&params(true, 0x4d001f), high), None);
        let main = Some(H264Profile::from_profile_level_id(0x4d0028));
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
