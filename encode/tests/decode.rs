//! The encoder's output checked by an independent decoder: FFmpeg's command-line tools.

mod common;

use rtcgear_capture::{h264, AccessUnit, Frame, FrameRate, Stamp};
use rtcgear_encode::{Encoder, EncoderConfig, Profile};
use rtcgear_test_support::tempdir::TempDir;

use common::{decode, pattern, probe_frames, probe_stream, psnr, write_stream};

const FPS: FrameRate = FrameRate { num: 30, den: 1 };

/// Encodes `frames`, asking for a keyframe before each frame whose counter is in `keyframes_at`,
/// and returns every packet, flushed at the end.
fn encode_all(config: EncoderConfig, frames: &[Frame], keyframes_at: &[u64]) -> Vec<AccessUnit> {
    let mut encoder = Encoder::new(config).expect("a valid config");
    let mut packets = Vec::new();
    for frame in frames {
        if keyframes_at.contains(&frame.counter()) {
            encoder.request_keyframe();
        }
        encoder
            .send_frame(frame)
            .expect("the frame matches the config");
        packets.extend(std::iter::from_fn(|| encoder.receive_packet()));
    }
    encoder.flush().expect("flushing works");
    packets.extend(std::iter::from_fn(|| encoder.receive_packet()));
    packets
}

/// The NAL unit types in an Annex B access unit, in order.
fn nal_types(data: &[u8]) -> Vec<u8> {
    h264::nal_units(data).map(h264::nal_type).collect()
}

#[test]
fn every_frame_decodes_with_good_quality_at_the_default_bitrate() {
    let (width, height) = (640, 480);
    let frames = pattern(width, height, 90);
    let packets = encode_all(EncoderConfig::new(width, height, FPS), &frames, &[]);

    assert_eq!(packets.len(), frames.len());
    for (n, packet) in packets.iter().enumerate() {
        assert_eq!(packet.counter, n as u64);
        assert_eq!(packet.time, frames[n].time());
    }
    let dir = TempDir::new("encode");
    let stream = write_stream(&packets, &dir, "quality.h264");
    let decoded = decode(&stream, width, height);
    assert_eq!(
        decoded.len(),
        frames.len(),
        "FFmpeg decoded a different number of frames"
    );

    // The timestamp barcode survives encoding: every decoded frame carries its counter and time.
    for (frame, decoded) in frames.iter().zip(&decoded) {
        let luma = &decoded[..(width * height) as usize];
        let stamp = Stamp::read_luma(luma, width as usize, height as usize, width as usize)
            .unwrap_or_else(|| panic!("no stamp in decoded frame {}", frame.counter()));
        assert_eq!(u64::from(stamp.counter), frame.counter());
        assert_eq!(stamp.wall_us, frame.time().wall_us);
    }

    let scores: Vec<f64> = frames
        .iter()
        .zip(&decoded)
        .map(|(frame, decoded)| psnr(&frame.to_packed(), decoded))
        .collect();
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    let worst = scores.iter().copied().fold(f64::INFINITY, f64::min);
    println!("PSNR at 640x480, default bitrate: mean {mean:.2} dB, worst {worst:.2} dB");
    assert!(mean > 35.0, "mean PSNR {mean:.2} dB is not above 35 dB");
    assert!(
        worst > 30.0,
        "worst frame's PSNR {worst:.2} dB is not above 30 dB"
    );
}

#[test]
fn a_requested_keyframe_is_an_idr_with_parameter_sets() {
    let (width, height) = (320, 240);
    let frames = pattern(width, height, 40);
    let packets = encode_all(EncoderConfig::new(width, height, FPS), &frames, &[13, 27]);
    let keyframes: Vec<u64> = packets
        .iter()
        .filter(|p| p.keyframe)
        .map(|p| p.counter)
        .collect();
    assert_eq!(keyframes, [0, 13, 27]);

    for packet in &packets {
        let types = nal_types(&packet.data);
        if packet.keyframe {
            let sps = types.iter().position(|&t| t == 7);
            let pps = types.iter().position(|&t| t == 8);
            let idr = types.iter().position(|&t| t == 5);
            assert!(
                matches!((sps, pps, idr), (Some(s), Some(p), Some(i)) if s < p && p < i),
                "keyframe {} lacks SPS, PPS before its IDR slice: {types:?}",
                packet.counter
            );
        } else {
            assert!(
                !types.contains(&5) && !types.contains(&7),
                "frame {} is not a keyframe but has IDR or SPS NAL units: {types:?}",
                packet.counter
            );
        }
    }

    let dir = TempDir::new("encode");
    let stream = write_stream(&packets, &dir, "keyframes.h264");
    let probed = probe_frames(&stream);
    assert_eq!(probed.len(), packets.len());
    for (packet, (key_frame, pict_type)) in packets.iter().zip(&probed) {
        assert_eq!(
            packet.keyframe, *key_frame,
            "frame {}: the encoder says keyframe={}, FFmpeg says key_frame={key_frame}",
            packet.counter, packet.keyframe
        );
        if packet.keyframe {
            assert_eq!(pict_type, "I");
        }
    }
}

#[test]
fn keyframes_come_at_the_interval_or_only_on_request() {
    let (width, height) = (160, 120);
    let frames = pattern(width, height, 25);
    let mut config = EncoderConfig::new(width, height, FPS);
    config.keyframe_interval = 10;
    let keyframes = |packets: Vec<AccessUnit>| -> Vec<u64> {
        packets
            .iter()
            .filter(|p| p.keyframe)
            .map(|p| p.counter)
            .collect()
    };
    assert_eq!(
        keyframes(encode_all(config.clone(), &frames, &[])),
        [0, 10, 20]
    );
    config.keyframe_interval = 0;
    assert_eq!(keyframes(encode_all(config, &frames, &[17])), [0, 17]);
}

#[test]
fn the_default_profile_is_constrained_baseline() {
    let (width, height) = (640, 480);
    let frames = pattern(width, height, 5);
    let check = |profile: Option<Profile>, expected: &str| {
        let mut config = EncoderConfig::new(width, height, FPS);
        if let Some(profile) = profile {
            config.profile = profile;
        }
        let packets = encode_all(config, &frames, &[]);
        let dir = TempDir::new("encode");
        let stream = write_stream(&packets, &dir, "profile.h264");
        assert_eq!(probe_stream(&stream, "profile"), expected);
        packets
    };
    let packets = check(None, "Constrained Baseline");
    // The SPS: profile_idc 66, constraint_set0 and constraint_set1, level 3.0 at 640x480p30,
    // under the 42e01f that browsers offer.
    let data = &packets[0].data;
    let sps = data
        .windows(5)
        .position(|w| w[..4] == [0, 0, 0, 1] && w[4] & 0x1f == 7)
        .expect("the first packet has an SPS");
    assert_eq!(&data[sps + 5..sps + 8], &[0x42, 0xc0, 0x1e]);
    check(Some(Profile::Main), "Main");
    check(Some(Profile::High), "High");
}

#[test]
fn delayed_frames_keep_their_counters_through_frame_threads_and_b_frames() {
    let (width, height) = (320, 240);
    let frames = pattern(width, height, 30);
    let mut config = EncoderConfig::new(width, height, FPS);
    config.profile = Profile::High;
    config.preset = "fast".to_owned();
    config.tune = None;
    config.threads = 2;

    let mut encoder = Encoder::new(config).expect("a valid config");
    let mut packets = Vec::new();
    let mut delayed = false;
    for frame in &frames {
        encoder
            .send_frame(frame)
            .expect("the frame matches the config");
        let before = packets.len();
        packets.extend(std::iter::from_fn(|| encoder.receive_packet()));
        delayed |= packets.len() == before;
    }
    assert!(delayed, "x264 should hold frames back without zerolatency");
    encoder.flush().expect("flushing works");
    packets.extend(std::iter::from_fn(|| encoder.receive_packet()));
    assert!(encoder.receive_packet().is_none());

    assert_eq!(packets.len(), frames.len());
    let mut counters: Vec<u64> = packets.iter().map(|p| p.counter).collect();
    assert_ne!(
        counters,
        (0..30).collect::<Vec<_>>(),
        "B-frames reorder the output"
    );
    counters.sort_unstable();
    assert_eq!(counters, (0..30).collect::<Vec<_>>());
    for packet in &packets {
        assert_eq!(packet.time, frames[packet.counter as usize].time());
    }
    let dir = TempDir::new("encode");
    let stream = write_stream(&packets, &dir, "delayed.h264");
    assert_eq!(decode(&stream, width, height).len(), frames.len());
}
