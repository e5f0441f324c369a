//! The VP8 encoder's output checked by an independent decoder: FFmpeg's command-line tools read
//! the frames back from an IVF file.

#![cfg(feature = "vp8")]

mod common;

use rtcgear_capture::{AccessUnit, Codec, Frame, FrameRate, PixelFormat, Stamp};
use rtcgear_encode::{EncodeError, Vp8Config, Vp8Encoder};
use rtcgear_test_support::tempdir::TempDir;

use common::{decode_ivf, pattern, probe_ivf_frames, psnr, write_ivf};

const FPS: FrameRate = FrameRate { num: 30, den: 1 };

/// Encodes `frames`, asking for a keyframe before each frame whose counter is in `keyframes_at`,
/// and returns every packet, flushed at the end. Checks on the way that every frame comes out of
/// the call that sent it.
fn encode_all(config: Vp8Config, frames: &[Frame], keyframes_at: &[u64]) -> Vec<AccessUnit> {
    let mut encoder = Vp8Encoder::new(config).expect("a valid config");
    let mut packets = Vec::new();
    for frame in frames {
        if keyframes_at.contains(&frame.counter()) {
            encoder.request_keyframe();
        }
        encoder
            .send_frame(frame)
            .expect("the frame matches the config");
        let before = packets.len();
        packets.extend(std::iter::from_fn(|| encoder.receive_packet()));
        assert_eq!(
            packets.len(),
            before + 1,
            "frame {} should come out at once",
            frame.counter()
        );
    }
    encoder.flush().expect("flushing works");
    packets.extend(std::iter::from_fn(|| encoder.receive_packet()));
    packets
}

fn keyframes(packets: &[AccessUnit]) -> Vec<u64> {
    packets
        .iter()
        .filter(|p| p.keyframe)
        .map(|p| p.counter)
        .collect()
}

/// Whether a VP8 frame is a key frame by its own bits: the frame tag's bit 0 is clear, and the
/// start code 9d 01 2a follows the 3-byte tag.
fn is_vp8_keyframe(data: &[u8]) -> bool {
    data.len() >= 10 && data[0] & 1 == 0 && data[3..6] == [0x9d, 0x01, 0x2a]
}

/// Encodes the test pattern at this size with the defaults (and `threads`), decodes it with
/// FFmpeg and checks every frame: count, size, keyframe flags, the stamp's counter and time,
/// and the picture's quality. Returns the mean PSNR and the bitrate in kbit/s.
fn round_trip(width: u32, height: u32, count: u64, threads: u32) -> (f64, f64) {
    let frames = pattern(width, height, count);
    let mut config = Vp8Config::new(width, height, FPS);
    config.threads = threads;
    let packets = encode_all(config, &frames, &[]);

    assert_eq!(packets.len(), frames.len());
    assert!(packets[0].keyframe, "the first frame must be a key frame");
    for (n, packet) in packets.iter().enumerate() {
        assert_eq!(packet.codec, Codec::Vp8);
        assert_eq!(packet.counter, n as u64);
        assert_eq!(packet.time, frames[n].time());
        assert_eq!(
            packet.keyframe,
            is_vp8_keyframe(&packet.data),
            "frame {n}: the keyframe flag disagrees with the bitstream"
        );
    }

    let dir = TempDir::new("encode-vp8");
    let ivf = write_ivf(&packets, width, height, &dir, "round-trip.ivf");
    let probed = probe_ivf_frames(&ivf);
    assert_eq!(
        probed.len(),
        packets.len(),
        "ffprobe saw another frame count"
    );
    for (packet, &(key_frame, w, h)) in packets.iter().zip(&probed) {
        assert_eq!((w, h), (width, height), "frame {}", packet.counter);
        assert_eq!(packet.keyframe, key_frame, "frame {}", packet.counter);
    }

    let decoded = decode_ivf(&ivf, width, height);
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
    let bytes: usize = packets.iter().map(|p| p.data.len()).sum();
    let kbps = bytes as f64 * 8.0 / (count as f64 / FPS.as_f64()) / 1000.0;
    println!(
        "VP8 {width}x{height}, threads {threads}: mean PSNR {mean:.2} dB, worst {worst:.2} dB, \
         {kbps:.0} kbit/s (target {})",
        rtcgear_encode::default_kbps(width, height, FPS)
    );
    assert!(mean > 33.0, "mean PSNR {mean:.2} dB is not above 33 dB");
    assert!(
        worst > 28.0,
        "worst frame's PSNR {worst:.2} dB is not above 28 dB"
    );
    (mean, kbps)
}

#[test]
fn every_frame_round_trips_at_640x480() {
    let (_, kbps) = round_trip(640, 480, 90, 1);
    // Constant bitrate: at most a little over the target (the first key frame included).
    let target = f64::from(rtcgear_encode::default_kbps(640, 480, FPS));
    assert!(
        kbps < target * 1.3,
        "{kbps:.0} kbit/s is well over the {target} kbit/s target"
    );
}

#[test]
fn every_frame_round_trips_at_1280x720_with_the_default_threads() {
    round_trip(1280, 720, 45, 0);
}

#[test]
fn a_size_off_the_macroblock_grid_round_trips() {
    // 322x242 is not a multiple of 16 either way: VP8 codes padded macroblocks and crops.
    round_trip(322, 242, 20, 1);
}

#[test]
fn an_odd_size_is_a_clear_error() {
    for (width, height) in [(321, 242), (322, 241), (0, 240), (320, 0)] {
        let err = Vp8Encoder::new(Vp8Config::new(width, height, FPS)).unwrap_err();
        assert!(matches!(err, EncodeError::InvalidConfig(_)), "{err:?}");
        assert!(
            err.to_string().contains(&format!("{width}x{height}")),
            "{err}"
        );
    }
}

#[test]
fn a_requested_keyframe_comes_on_the_next_frame() {
    let (width, height) = (320, 240);
    let frames = pattern(width, height, 40);
    let packets = encode_all(Vp8Config::new(width, height, FPS), &frames, &[13, 27, 28]);
    assert_eq!(keyframes(&packets), [0, 13, 27, 28]);

    let dir = TempDir::new("encode-vp8");
    let ivf = write_ivf(&packets, width, height, &dir, "keyframes.ivf");
    let probed: Vec<bool> = probe_ivf_frames(&ivf).iter().map(|p| p.0).collect();
    let flags: Vec<bool> = packets.iter().map(|p| p.keyframe).collect();
    assert_eq!(probed, flags, "FFmpeg sees key frames elsewhere");
    assert_eq!(decode_ivf(&ivf, width, height).len(), frames.len());
}

#[test]
fn keyframes_come_at_the_interval_or_only_on_request() {
    let (width, height) = (160, 120);
    let frames = pattern(width, height, 25);
    let mut config = Vp8Config::new(width, height, FPS);
    config.keyframe_interval = 10;
    assert_eq!(
        keyframes(&encode_all(config.clone(), &frames, &[])),
        [0, 10, 20]
    );
    config.keyframe_interval = 0;
    assert_eq!(keyframes(&encode_all(config, &frames, &[17])), [0, 17]);
    // The default: every two seconds.
    let frames = pattern(width, height, 125);
    let packets = encode_all(Vp8Config::new(width, height, FPS), &frames, &[]);
    assert_eq!(keyframes(&packets), [0, 60, 120]);
}

#[test]
fn a_frame_of_another_size_is_refused_and_the_encoder_goes_on() {
    let (width, height) = (64, 48);
    let mut encoder = Vp8Encoder::new(Vp8Config::new(width, height, FPS)).expect("a valid config");
    for (w, h) in [(48, 64), (64, 50), (66, 48), (1280, 720)] {
        let frame = Frame::new(w, h, PixelFormat::I420).expect("a valid size");
        let err = encoder.send_frame(&frame).unwrap_err();
        assert!(
            matches!(err, EncodeError::FrameSize { got_width, got_height, .. }
                if (got_width, got_height) == (w, h)),
            "{err:?}"
        );
        assert!(err.to_string().contains(&format!("{w}x{h}")), "{err}");
    }
    assert!(encoder.receive_packet().is_none());
    let frame = Frame::new(width, height, PixelFormat::I420)
        .expect("a valid size")
        .with_meta(7, rtcgear_capture::CaptureTime::now());
    encoder.send_frame(&frame).expect("the frame fits");
    let packet = encoder.receive_packet().expect("no look-ahead");
    assert_eq!(packet.counter, 7);
    assert!(packet.keyframe, "the first frame encoded is the key frame");
}

#[test]
fn bad_configs_are_errors_naming_the_value() {
    let mut config = Vp8Config::new(640, 480, FPS);
    config.kbps = 0;
    let err = Vp8Encoder::new(config).unwrap_err();
    assert!(err.to_string().contains("bitrate"), "{err}");
    let mut config = Vp8Config::new(640, 480, FPS);
    config.speed = 20;
    let err = Vp8Encoder::new(config).unwrap_err();
    assert!(err.to_string().contains("got 20"), "{err}");
    let config = Vp8Config::new(640, 480, FrameRate { num: 0, den: 1 });
    assert!(matches!(
        Vp8Encoder::new(config),
        Err(EncodeError::InvalidConfig(_))
    ));
}

#[test]
fn every_speed_and_thread_count_encodes() {
    let (width, height) = (320, 240);
    let frames = pattern(width, height, 10);
    for speed in [-16, -6, 0, 8, 16] {
        for threads in [1, 2, 4] {
            let mut config = Vp8Config::new(width, height, FPS);
            config.speed = speed;
            config.threads = threads;
            let packets = encode_all(config, &frames, &[]);
            assert_eq!(
                packets.len(),
                frames.len(),
                "speed {speed}, {threads} threads"
            );
            assert!(packets[0].keyframe);
        }
    }
}
