//! A viewer on a path too thin for the stream: it skips to the next keyframe instead of
//! falling ever further behind, and the others neither slow down nor get extra keyframes.

use std::time::Duration;

use str0m_netem::{Bitrate, DataSize, NetemConfig};

use crate::sim::{config, nal_units, FakeFrames, Link, Sim, FPS};

/// The stream is about 190 kbit/s (700-byte delta frames at 30 fps, a 4 kB keyframe every
/// 2 s, like `rtcgear serve`'s encoder); the slow viewer's path carries 100 kbit/s behind a
/// 16 kB queue. Over 12 s the slow viewer asks for keyframes again and again: only a few of
/// its requests make keyframes, it is sent less than the fast viewer, and it still shows
/// pictures to the end. The fast viewer gets every frame, at once (within the simulation's 1 ms step).
#[test]
fn a_slow_viewer_skips_to_keyframes_and_costs_the_others_nothing() {
    let gop = 2 * FPS;
    let mut sim = Sim::new(config());
    let fast = sim.add_client();
    let slow = sim.add_client();
    sim.connect_all();
    sim.set_link(fast, Link::new(NetemConfig::new(), NetemConfig::new()));
    let thin = NetemConfig::new()
        .latency(Duration::from_millis(20))
        .link(Bitrate::kbps(100), DataSize::bytes(16_000))
        .seed(5);
    let up = NetemConfig::new()
        .latency(Duration::from_millis(20))
        .seed(6);
    sim.set_link(slow, Link::new(thin, up));
    let mut frames = FakeFrames::new();
    let start = sim.now;
    let seconds = 12;
    sim.stream(&mut frames, Duration::from_secs(seconds), Some(gop));

    let slow_client = &sim.clients[slow];
    let link = slow_client.link.as_ref().expect("a link");
    let keyframes: Vec<_> = sim
        .sent
        .iter()
        .enumerate()
        .filter(|(_, (_, keyframe, _))| *keyframe)
        .map(|(n, (t, _, _))| (n, t.duration_since(start)))
        .collect();
    let asked = keyframes
        .iter()
        .filter(|(n, _)| !n.is_multiple_of(gop as usize))
        .count();
    eprintln!(
        "fast viewer: {} datagrams; slow viewer: {} datagrams sent to it, {} arrived; {} frames shown ({} in the last 4 s), \
         {} broken, {} PLIs; {asked} keyframes asked for beyond the {} periodic; keyframes at \
         {keyframes:?}",
        sim.clients[fast].link.as_ref().expect("a link").down_sent,
        link.down_sent,
        link.down_delivered.len(),
        slow_client.playback.shown.len(),
        slow_client
            .playback
            .shown_between(sim.now - Duration::from_secs(4), sim.now),
        slow_client.playback.broken,
        slow_client.plis,
        sim.sent.len().div_ceil(gop as usize),
    );

    // The slow viewer kept asking, but made at most a keyframe every 2 s or so beyond the
    // encoder's own. (Without skipping: 16, two a second, for everyone.)
    assert!(slow_client.plis >= 8, "it asked: {} PLIs", slow_client.plis);
    assert!(
        asked <= 2 + seconds as usize / 2,
        "{asked} keyframes asked for"
    );
    // It was sent less than the fast viewer: delta frames were skipped, and what it could no
    // longer use was not sent again. (Without skipping: 772 datagrams against 465, mostly
    // retransmissions.)
    let fast_datagrams = sim.clients[fast].link.as_ref().expect("a link").down_sent;
    assert!(
        link.down_sent < fast_datagrams,
        "{} datagrams sent to the slow viewer, {fast_datagrams} to the fast one",
        link.down_sent
    );
    // And it still shows pictures at the end. (Without skipping: none in the last 4 s.)
    assert!(
        slow_client
            .playback
            .shown_between(sim.now - Duration::from_secs(4), sim.now)
            >= 10
    );

    // The fast viewer: every frame, never broken, each as soon as it was sent.
    let fast_client = &sim.clients[fast];
    assert_eq!(fast_client.playback.broken, 0);
    assert_eq!(fast_client.plis, 0);
    let received = &fast_client.frames;
    assert_eq!(received.len(), sim.sent.len());
    for ((at, data), (sent_at, _, sent)) in received.iter().zip(&sim.sent) {
        assert_eq!(nal_units(&data.data), nal_units(sent));
        // The simulation steps 1 ms at a time; the path adds nothing.
        assert!(*at - *sent_at <= Duration::from_millis(2));
    }
}
