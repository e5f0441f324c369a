//! The H.264 flavour we send, and how to pick its payload type from a negotiation.

use str0m::format::{Codec, PayloadParams};
use str0m::RtcConfig;

/// The profile-level-id we prefer: constrained baseline, level 3.1.
const PREFERRED_PROFILE_LEVEL_ID: u32 = 0x42e01f;
const PROFILE_BASELINE: u8 = 0x42;
const PROFILE_MAIN: u8 = 0x4d;

/// Restricts `config` to the H.264 payload types we can send: packetization-mode 1 in
/// constrained baseline (preferred) and baseline (fallback for offers without the former).
///
/// The payload type numbers are str0m's defaults; the browser's own numbers win in the answer.
pub(crate) fn configure(config: RtcConfig) -> RtcConfig {
    let mut config = config.clear_codecs();
    let codecs = config.codec_config();
    codecs.add_h264(
        108.into(),
        Some(109.into()),
        true,
        PREFERRED_PROFILE_LEVEL_ID,
    );
    codecs.add_h264(127.into(), Some(121.into()), true, 0x42001f);
    config
}

/// How well negotiated `params` fit our encoder's output; higher is better, `None` unusable.
///
/// The encoder produces constrained baseline, which RFC 6184 (table 5) lets us announce as
/// `42e0xx`, `4240xx` or `4d80xx`; a plain baseline decoder (`4200xx`) decodes it as well.
/// Packetization-mode 0 is out: it cannot carry NAL units larger than one packet.
pub(crate) fn score(params: &PayloadParams) -> Option<u8> {
    let spec = params.spec();
    if spec.codec != Codec::H264 || spec.format.packetization_mode != Some(1) {
        return None;
    }
    let profile_level_id = spec
        .format
        .profile_level_id
        .unwrap_or(PREFERRED_PROFILE_LEVEL_ID);
    let [_, profile_idc, profile_iop, _] = profile_level_id.to_be_bytes();
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
        assert_eq!(score(&params(true, 0x42e01f)), Some(3));
        assert_eq!(score(&params(true, 0x42e034)), Some(2));
        assert_eq!(score(&params(true, 0x4d801f)), Some(2));
        assert_eq!(score(&params(true, 0x42001f)), Some(1));
    }

    #[test]
    fn rejects_what_the_encoder_cannot_feed() {
        assert_eq!(
            score(&params(false, 0x42e01f)),
            None,
            "packetization-mode 0"
        );
        assert_eq!(score(&params(true, 0x64001f)), None, "high");
        assert_eq!(score(&params(true, 0x4d001f)), None, "main");
    }

    #[test]
    fn configured_payload_types_are_all_usable() {
        let mut config = configure(RtcConfig::new());
        assert_eq!(config.codec_config().params().len(), 2);
        assert!(config
            .codec_config()
            .params()
            .iter()
            .all(|p| score(p).is_some()));
        let _ = config.build(Instant::now());
    }
}
