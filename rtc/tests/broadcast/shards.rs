//! A broadcast that is one shard of several: its viewers and ufrags carry its mark, and its
//! viewers play as any others do.

use std::time::{Duration, Instant};

use rtcgear_rtc::{Broadcast, Shard};

use crate::sim::{client_offer, config, FakeFrames, Sim};

/// The second of three shards numbers its viewers 2, 5, 8, ..., tags its ufrags so a driver
/// routes the viewers' STUN requests to it, and streams to them as a lone broadcast does.
#[test]
fn a_shard_marks_its_viewers_and_ufrags_and_plays() {
    let shard = Shard::new(1, 3).unwrap();
    let now = Instant::now();
    let mut broadcast = Broadcast::new(now, config().with_shard(shard));
    let (_client, _mid, (offer, _pending)) =
        client_offer(now, "192.0.2.50:5000".parse().unwrap(), |c| c);
    let (id, answer) = broadcast
        .handle_offer(now, &offer.to_sdp_string())
        .expect("answered");
    assert_eq!(id.get(), 2);
    assert_eq!(Shard::of_viewer(id, 3), 1);
    let ufrag = answer
        .lines()
        .find_map(|line| line.strip_prefix("a=ice-ufrag:"))
        .expect("a ufrag");
    assert!(ufrag.starts_with('B'), "{ufrag}");

    let mut sim = Sim::new(config().with_shard(shard));
    let a = sim.add_client();
    let b = sim.add_client();
    let ids: Vec<u64> = [a, b].iter().map(|&i| sim.clients[i].id.get()).collect();
    assert_eq!(ids, [2, 5]);
    sim.connect_all();
    sim.stream(&mut FakeFrames::new(), Duration::from_secs(1), Some(30));
    for index in [a, b] {
        assert!(sim.clients[index].frames.len() >= 20, "client {index}");
    }
}
