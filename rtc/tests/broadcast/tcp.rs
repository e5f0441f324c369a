//! ICE over TCP: a viewer that reaches the broadcast only over TCP (its UDP blocked) gets the
//! same stream as a UDP viewer, beside it.

use std::time::Duration;

use rtcgear_rtc::{BroadcastEvent, Transport};

use crate::sim::{config, nal_units, server_addr, FakeFrames, Sim};

/// A configuration with the test's address as a passive TCP candidate too.
fn with_tcp() -> rtcgear_rtc::BroadcastConfig {
    config().with_tcp_candidates(vec![server_addr()])
}

#[test]
fn a_tcp_viewer_and_a_udp_viewer_get_the_same_frames() {
    let mut sim = Sim::new(with_tcp());
    let udp = sim.add_client();
    let tcp = sim
        .try_add_client_over(Transport::Tcp, |config| config)
        .expect("an offer with a TCP candidate is answered");
    sim.connect_all();
    let mut frames = FakeFrames::new();
    sim.stream(&mut frames, Duration::from_secs(2), Some(30));

    for index in [udp, tcp] {
        let client = &sim.clients[index];
        assert!(
            sim.event_time(&BroadcastEvent::ViewerConnected(client.id))
                .is_some(),
            "client {index} ({}) connected",
            client.transport
        );
        assert!(client.frames.len() > 30, "client {index} got frames");
    }
    let paths = sim.broadcast.viewer_paths();
    assert_eq!((paths.udp, paths.tcp, paths.relay), (1, 1, 0), "{paths:?}");
    // From the first frame both have, they have the same ones.
    let (a, b) = (&sim.clients[udp].frames, &sim.clients[tcp].frames);
    let skip = a.len().saturating_sub(b.len());
    let (a, b) = (&a[skip..], &b[b.len().saturating_sub(a.len() - skip)..]);
    assert_eq!(a.len(), b.len());
    for ((_, x), (_, y)) in a.iter().zip(b) {
        assert_eq!(nal_units(&x.data), nal_units(&y.data));
    }
}

#[test]
fn the_answer_lists_the_tcp_candidate_after_the_udp_one() {
    let mut sim = Sim::new(with_tcp());
    let (_, _, offer) = crate::sim::client_offer(sim.now, server_addr(), |c| c);
    let (_, answer) = sim
        .broadcast
        .handle_offer(sim.now, &offer.0.to_sdp_string())
        .expect("answered");
    let candidates: Vec<&str> = answer
        .lines()
        .filter(|line| line.starts_with("a=candidate:"))
        .collect();
    assert_eq!(candidates.len(), 2, "{answer}");
    assert!(candidates[0].contains(" udp "), "{}", candidates[0]);
    assert!(
        candidates[1].contains(" tcp ") && candidates[1].contains(" typ host tcptype passive"),
        "{}",
        candidates[1]
    );
    let priority = |line: &str| -> u32 {
        line.split_whitespace()
            .nth(3)
            .and_then(|p| p.parse().ok())
            .expect("a priority")
    };
    assert!(priority(candidates[0]) > priority(candidates[1]));
}

/// Without TCP candidates a TCP packet, even a STUN request with a known user name, reaches
/// no viewer.
#[test]
fn tcp_packets_are_refused_without_tcp_candidates() {
    let mut sim = Sim::new(config());
    let result = sim.try_add_client_over(Transport::Tcp, |config| config);
    let index = result.expect("the offer is answered (over UDP)");
    sim.run_for(Duration::from_secs(1));
    let client = &sim.clients[index];
    assert!(
        sim.event_time(&BroadcastEvent::ViewerConnected(client.id))
            .is_none(),
        "a TCP-only client cannot connect to a UDP-only broadcast"
    );
}
