//! VP8 for viewers whose offers have no usable H.264, beside H.264 viewers of the same
//! broadcast: each gets its own codec, and keyframe requests name the codec.

use std::time::Duration;

use rtcgear_capture::{AccessUnit, CaptureTime, Codec};
use rtcgear_rtc::{BroadcastEvent, RtcError};

use crate::sim::{config, FakeFrames, Sim, FRAME};

/// A VP8 frame as libvpx makes them, as far as a receiver looks: a key frame's tag has bit 0
/// clear and the start code 9d 01 2a; the rest is `counter` repeated.
fn vp8_frame(counter: u64, keyframe: bool) -> Vec<u8> {
    let mut data = vec![if keyframe { 0x10 } else { 0x11 }, 0x02, 0x00];
    if keyframe {
        data.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]);
    }
    // Large enough to take several packets.
    data.extend(std::iter::repeat_n(counter as u8, 3000));
    data
}

fn vp8_unit(sim: &Sim, counter: u64, keyframe: bool) -> AccessUnit {
    let time = CaptureTime {
        wall_us: 1_700_000_000_000_000 + counter * 33_333,
        instant: sim.now,
    };
    AccessUnit {
        data: vp8_frame(counter, keyframe).into(),
        keyframe,
        counter,
        time,
        codec: Codec::Vp8,
    }
}

fn vp8_only(config: str0m::RtcConfig) -> str0m::RtcConfig {
    config.clear_codecs().enable_vp8(true)
}

#[test]
fn a_vp8_viewer_gets_vp8_and_an_h264_viewer_h264() {
    let mut sim = Sim::new(config().with_vp8(true));
    let h264 = sim.add_client();
    let vp8 = sim
        .try_add_client(vp8_only)
        .expect("a VP8 offer is answered");
    // One viewer in each codec: (H.264, VP8).
    assert_eq!(sim.broadcast.viewer_counts(), (1, 1));
    sim.connect_all();
    for codec in [Codec::H264, Codec::Vp8] {
        assert!(
            sim.events
                .iter()
                .any(|(_, e)| *e == BroadcastEvent::KeyframeNeeded(codec)),
            "a keyframe asked for in {codec}"
        );
    }

    // A frame in each codec, every frame time; a keyframe in each every 30.
    let mut frames = FakeFrames::new();
    let mut vp8_sent = Vec::new();
    for counter in 0..60u64 {
        sim.run_for(FRAME);
        sim.send_frame(&mut frames, Some(30));
        let unit = vp8_unit(&sim, counter, counter % 30 == 0);
        vp8_sent.push(unit.data.to_vec());
        sim.send_unit(&unit);
    }
    sim.run_for(Duration::from_millis(200));

    let got = |index: usize| -> Vec<Vec<u8>> {
        sim.clients[index]
            .frames
            .iter()
            .map(|(_, data)| data.data.to_vec())
            .collect()
    };
    let (h264_got, vp8_got) = (got(h264), got(vp8));
    assert!(h264_got.len() > 30, "{} H.264 frames", h264_got.len());
    assert!(
        h264_got.iter().all(|f| f.starts_with(&[0, 0, 0, 1])),
        "the H.264 viewer got H.264 only"
    );
    // The VP8 viewer starts on a key frame and gets every VP8 frame from there, whole.
    assert!(vp8_got.len() >= 30, "{} VP8 frames", vp8_got.len());
    let first = vp8_sent.len() - vp8_got.len();
    assert_eq!(first % 30, 0, "starts on a key frame");
    assert_eq!(vp8_got, vp8_sent[first..]);
}

#[test]
fn a_vp8_viewer_asks_the_vp8_encoder_for_key_frames() {
    let mut sim = Sim::new(config().with_vp8(true));
    let vp8 = sim.try_add_client(vp8_only).expect("answered");
    sim.connect_all();
    for counter in 0..40u64 {
        sim.run_for(FRAME);
        let unit = vp8_unit(&sim, counter, counter == 0);
        sim.send_unit(&unit);
    }
    let before = sim.events.len();
    sim.send_pli(vp8);
    sim.run_for(Duration::from_millis(300));
    let asked: Vec<_> = sim.events[before..]
        .iter()
        .filter_map(|(_, e)| match e {
            BroadcastEvent::KeyframeNeeded(codec) => Some(*codec),
            _ => None,
        })
        .collect();
    assert_eq!(asked, [Codec::Vp8]);
}

#[test]
fn without_vp8_a_vp8_offer_is_refused_and_with_it_one_with_neither() {
    let mut sim = Sim::new(config());
    let refused = sim.try_add_client(vp8_only);
    assert!(matches!(refused, Err(RtcError::NoH264)), "{refused:?}");
    let mut sim = Sim::new(config().with_vp8(true));
    let neither = sim.try_add_client(|config| config.clear_codecs().enable_vp9(true));
    let err = neither.expect_err("refused");
    assert!(matches!(err, RtcError::NoCodec), "{err:?}");
    assert!(err.to_string().contains("nor VP8"), "{err}");
}
