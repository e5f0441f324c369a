//! Viewers behind lossy links (`str0m-netem`): NACK and retransmission recover lost packets,
//! PLI and a keyframe recover lost pictures, and viewers on clean links never notice.

use std::time::Duration;

use rtcgear_capture::h264;
use str0m_netem::{GilbertElliot, NetemConfig, Probability, RandomLoss};

use crate::sim::{config, nal_units, FakeFrames, Link, Sim, FPS};

/// A path with `loss` random loss, 20 ms ± 5 ms of delay (so packets overtake each other) and
/// 1% duplicates, seeded.
fn lossy(loss: f32, seed: u64) -> NetemConfig {
    NetemConfig::new()
        .latency(Duration::from_millis(20))
        .jitter(Duration::from_millis(5))
        .loss(RandomLoss::new(Probability::new(loss)))
        .duplicate(Probability::new(0.01))
        .seed(seed)
}

/// One viewer behind 2% loss each way, one on a clean path, 10 s of 30 fps video with
/// keyframes only on request: the lossy one shows at least 28 frames a second, every one of
/// them the frame that was sent; the clean one gets every frame, never sees a broken picture,
/// and the stream carries no keyframes beyond the joins and the lossy viewer's PLIs.
#[test]
fn two_percent_loss_still_plays_and_spares_the_others() {
    for seed in [1, 2, 3] {
        let mut sim = Sim::new(config());
        let clean = sim.add_client();
        let lossy_viewer = sim.add_client();
        sim.set_link(
            lossy_viewer,
            Link::new(lossy(0.02, seed), lossy(0.02, seed + 100)),
        );
        sim.clients[clean].sends_pli = true;
        sim.connect_all();
        let mut frames = FakeFrames::new();
        let start = sim.now;
        sim.stream(&mut frames, Duration::from_secs(10), None);

        // Playback from 1 s on, once both have started.
        let from = start + Duration::from_secs(1);
        let seconds = 9;
        let lossy_client = &sim.clients[lossy_viewer];
        let link = lossy_client.link.as_ref().expect("a link");
        let shown = lossy_client.playback.shown_between(from, sim.now);
        eprintln!(
            "seed {seed}: {} of {} datagrams to the viewer lost, {} of {} from it; shown {shown} \
             frames in {seconds} s, {} broken, {} PLIs; {} keyframes sent",
            link.down_lost(),
            link.down_sent,
            link.up_lost(),
            link.up_sent,
            lossy_client.playback.broken,
            lossy_client.plis,
            sim.sent.iter().filter(|(_, k, _)| *k).count(),
        );
        // Viewers send little (receiver reports, NACKs), so 2% of it may well be nothing.
        assert!(
            link.down_lost() * 100 >= link.down_sent,
            "seed {seed}: the link really lost packets"
        );
        let nacks = lossy_client.ingress.as_ref().map_or(0, |s| s.nacks);
        assert!(nacks > 0, "seed {seed}: lost packets were asked for again");
        assert!(
            shown >= 28 * seconds,
            "seed {seed}: {shown} frames shown in {seconds} s"
        );
        for &index in &lossy_client.playback.shown_frames {
            let data = &lossy_client.frames[index].1.data;
            assert!(
                sim.sent
                    .iter()
                    .any(|(_, _, sent)| nal_units(sent) == nal_units(data)),
                "seed {seed}: a shown frame is one that was sent"
            );
        }

        // The clean viewer: everything from its first keyframe on, in order, never broken.
        let clean_client = &sim.clients[clean];
        assert_eq!(clean_client.playback.broken, 0, "seed {seed}");
        assert_eq!(clean_client.plis, 0, "seed {seed}");
        let received = &clean_client.frames;
        assert!(h264::is_keyframe(&received[0].1.data));
        let first = sim
            .sent
            .iter()
            .position(|(_, _, sent)| nal_units(sent) == nal_units(&received[0].1.data))
            .expect("the first frame was sent");
        assert_eq!(received.len(), sim.sent.len() - first, "seed {seed}");
        for ((_, data), (_, _, sent)) in received.iter().zip(&sim.sent[first..]) {
            assert_eq!(nal_units(&data.data), nal_units(sent), "seed {seed}");
        }
        assert!(clean_client.playback.shown.len() >= 29 * seconds);

        // Keyframes: one for each join (perhaps shared), and at most one for each PLI.
        let keyframes = sim.sent.iter().filter(|(_, k, _)| *k).count();
        assert!(
            keyframes <= 2 + lossy_client.plis,
            "seed {seed}: {keyframes} keyframes for {} PLIs",
            lossy_client.plis
        );
        assert!(keyframes <= 1 + (10 * FPS as usize) / 30, "seed {seed}");
    }
}

/// Bursts of loss (tens of packets in a row, retransmissions included) that NACK cannot mend
/// in time: the lossy viewer's picture breaks, its PLIs bring keyframes through the limiter
/// (never closer than the keyframe interval), and it plays again after each and once the
/// path is clean for the last 2 s; the clean viewer still gets every frame intact.
#[test]
fn loss_bursts_recover_through_pli_and_a_keyframe() {
    let burst = |seed| {
        NetemConfig::new()
            .latency(Duration::from_millis(20))
            .loss(
                // Bursts of 40 packets on average (a packet a frame here: 1.3 s), longer than
                // sent packets are kept for resending, a few in the 10 s.
                GilbertElliot::new()
                    .good_duration(100.0)
                    .bad_duration(40.0)
                    .loss_in_bad(Probability::new(1.0)),
            )
            .seed(seed)
    };
    let mut sim = Sim::new(config());
    let clean = sim.add_client();
    let lossy_viewer = sim.add_client();
    sim.clients[clean].sends_pli = true;
    sim.connect_all();
    // Bursts on the way to the viewer only: it sends a few datagrams a second, so a burst
    // counted in its packets would silence its PLIs for many seconds.
    sim.set_link(lossy_viewer, Link::new(burst(11), lossy(0.02, 12)));
    let mut frames = FakeFrames::new();
    let start = sim.now;
    sim.stream(&mut frames, Duration::from_secs(8), None);
    // The last 2 s on a clean path: the viewer must be playing again at the end.
    let link = sim.clients[lossy_viewer].link.take().expect("a link");
    sim.stream(&mut frames, Duration::from_secs(2), None);

    let lossy_client = &sim.clients[lossy_viewer];
    let keyframes: Vec<_> = sim
        .sent
        .iter()
        .filter(|(_, keyframe, _)| *keyframe)
        .map(|(t, _, _)| *t)
        .collect();
    eprintln!(
        "{} of {} datagrams to the viewer lost; {} frames shown, {} broken, {} PLIs; keyframes \
         at {:?}",
        link.down_lost(),
        link.down_sent,
        lossy_client.playback.shown.len(),
        lossy_client.playback.broken,
        lossy_client.plis,
        keyframes
            .iter()
            .map(|t| t.duration_since(start))
            .collect::<Vec<_>>(),
    );
    let playback = &lossy_client.playback;
    assert!(playback.broken > 0, "the bursts broke the picture");
    assert!(lossy_client.plis > 0);
    assert!(keyframes.len() >= 2, "a keyframe mended it");
    assert!(keyframes.len() <= 1 + lossy_client.plis);
    for pair in keyframes.windows(2) {
        assert!(pair[1] - pair[0] >= config().keyframe_interval);
    }
    // Every break was mended within 1.5 s, and the viewer plays at the end.
    let longest_break = playback
        .shown_frames
        .windows(2)
        .map(|pair| pair[1] - pair[0] - 1)
        .max()
        .unwrap_or(0);
    assert!(
        longest_break <= 45,
        "{longest_break} frames broken in a row"
    );
    let end = sim.now;
    assert!(playback.shown_between(end - Duration::from_secs(1), end) >= 28);

    let clean_client = &sim.clients[clean];
    assert_eq!(clean_client.playback.broken, 0);
    assert_eq!(clean_client.plis, 0);
    assert!(clean_client.frames.len() >= sim.sent.len() - 1);
}
