//! Viewers coming, watching and going.

use std::time::Duration;

use rtcgear_capture::h264;
use rtcgear_rtc::{BroadcastEvent, DisconnectReason};

use crate::sim::{access_unit, config, nal_units, FakeFrames, FrameSource, Sim, FRAME};

/// Both viewers get every frame from their first keyframe on, byte for byte.
#[test]
fn two_viewers_receive_the_stream() {
    let mut sim = Sim::new(config());
    let a = sim.add_client();
    let b = sim.add_client();
    assert_eq!(sim.broadcast.viewer_count(), 2);
    sim.connect_all();
    let mut frames = FakeFrames::new();
    sim.stream(&mut frames, Duration::from_secs(2), Some(30));

    for index in [a, b] {
        let client = &sim.clients[index];
        let connected = sim
            .event_time(&BroadcastEvent::ViewerConnected(client.id))
            .expect("ViewerConnected");
        let received = &client.frames;
        assert!(!received.is_empty(), "client {index} got no frames");
        assert!(
            h264::is_keyframe(&received[0].1.data),
            "client {index} starts on an IDR"
        );
        // Everything sent from the first keyframe after connecting arrived, in order.
        let first = sim
            .sent
            .iter()
            .position(|(t, keyframe, _)| *t >= connected && *keyframe)
            .expect("a keyframe after connecting");
        let expected = &sim.sent[first..];
        assert_eq!(received.len(), expected.len(), "client {index}");
        for ((_, data), (_, _, sent)) in received.iter().zip(expected) {
            assert_eq!(nal_units(&data.data), nal_units(sent));
        }
    }
}

/// A viewer that joins a running stream makes the broadcast ask for a keyframe at once and
/// starts on it, even though the encoder sends no periodic keyframes.
#[test]
fn late_joiner_gets_a_keyframe_promptly() {
    let mut sim = Sim::new(config());
    let a = sim.add_client();
    sim.connect_all();
    let mut frames = FakeFrames::new();
    sim.stream(&mut frames, Duration::from_secs(1), None);
    let requests_before = sim.keyframe_requests().len();
    assert_eq!(requests_before, 1, "one request, for the first viewer");

    let b = sim.add_client();
    sim.stream(&mut frames, Duration::from_secs(1), None);
    let connected = sim
        .event_time(&BroadcastEvent::ViewerConnected(sim.clients[b].id))
        .expect("the late viewer connects");
    let requests = sim.keyframe_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1], connected,
        "KeyframeNeeded comes with ViewerConnected"
    );

    let late = &sim.clients[b].frames;
    assert!(!late.is_empty());
    assert!(
        h264::is_keyframe(&late[0].1.data),
        "the late viewer starts on an IDR"
    );
    assert!(
        late[0].0 - connected <= FRAME + Duration::from_millis(2),
        "and gets it with the next frame"
    );
    assert_eq!(
        sim.clients[b]
            .frames
            .iter()
            .filter(|(_, d)| h264::is_keyframe(&d.data))
            .count(),
        1
    );
    // The first viewer carried on through the join.
    assert!(sim.clients[a].frames.len() >= 55);
}

/// A viewer that vanishes is dropped after the ICE timeout; the others do not notice.
#[test]
fn vanished_viewer_is_dropped_after_ice_timeout() {
    let mut sim = Sim::new(config());
    let stays = sim.add_client();
    let goes = sim.add_client();
    let stays_too = sim.add_client();
    sim.connect_all();
    let mut frames = FakeFrames::new();
    sim.stream(&mut frames, Duration::from_secs(1), Some(60));

    let gone_at = sim.now;
    let gone = sim.clients[goes].id;
    sim.vanish(goes);
    let before: Vec<usize> = sim.clients.iter().map(|c| c.frames.len()).collect();
    sim.stream(&mut frames, Duration::from_secs(7), Some(60));

    let disconnected = sim
        .event_time(&BroadcastEvent::ViewerDisconnected(
            gone,
            DisconnectReason::IceTimeout,
        ))
        .expect("the vanished viewer is dropped");
    let after = disconnected - gone_at;
    assert!(
        after >= Duration::from_millis(4000) && after <= Duration::from_millis(5500),
        "dropped {after:?} after vanishing, the timeout is 5 s"
    );
    assert_eq!(sim.broadcast.viewer_count(), 2);
    let disconnects = sim
        .events
        .iter()
        .filter(|(_, e)| matches!(e, BroadcastEvent::ViewerDisconnected(..)))
        .count();
    assert_eq!(disconnects, 1);
    for index in [stays, stays_too] {
        let got = sim.clients[index].frames.len() - before[index];
        assert!(
            got >= 205,
            "client {index} got {got} of 210 frames meanwhile"
        );
    }
}

/// PLIs become KeyframeNeeded: a burst from everyone is one request, and a request soon
/// after the last one waits for the 250 ms slot.
#[test]
fn pli_is_coalesced_and_rate_limited() {
    let mut sim = Sim::new(config());
    let a = sim.add_client();
    let b = sim.add_client();
    sim.connect_all();
    let mut frames = FakeFrames::new();
    sim.stream(&mut frames, Duration::from_secs(1), None);
    let start = sim.keyframe_requests().len();

    // The client sends its PLIs on its next timer, a millisecond later.
    let t1 = sim.now;
    sim.send_pli(a);
    sim.send_pli(b);
    sim.run_for(Duration::from_millis(20));
    let requests = sim.keyframe_requests()[start..].to_vec();
    assert_eq!(requests.len(), 1, "two PLIs at once: one request");
    let first = requests[0];
    assert!(
        first - t1 <= Duration::from_millis(5),
        "at once: {:?}",
        first - t1
    );

    // The driver answers with a keyframe; a new PLI soon after has to wait for its slot.
    sim.stream(&mut frames, Duration::from_millis(50), None);
    assert!(sim
        .sent
        .iter()
        .any(|(t, keyframe, _)| *t > first && *keyframe));
    sim.send_pli(a);
    sim.run_for(Duration::from_millis(20));
    assert_eq!(sim.keyframe_requests().len() - start, 1, "too soon");
    sim.stream(&mut frames, Duration::from_millis(500), None);
    let requests = sim.keyframe_requests()[start..].to_vec();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let gap = requests[1] - first;
    assert!(
        gap >= Duration::from_millis(250) && gap <= Duration::from_millis(255),
        "second request {gap:?} after the first"
    );
}

/// `remove_viewer` reports the viewer gone at once and tells the browser.
#[test]
fn removed_viewer_is_reported_and_closed() {
    let mut sim = Sim::new(config());
    let a = sim.add_client();
    let b = sim.add_client();
    sim.connect_all();
    let mut frames = FakeFrames::new();
    sim.stream(&mut frames, Duration::from_millis(500), Some(30));

    let id = sim.clients[a].id;
    sim.clients[a].routed = false;
    assert!(sim.broadcast.remove_viewer(id));
    assert!(!sim.broadcast.remove_viewer(id), "only once");
    assert_eq!(sim.broadcast.viewer_count(), 1);
    let before = sim.clients[a].frames.len();
    sim.stream(&mut frames, Duration::from_millis(500), Some(30));
    assert!(sim
        .event_time(&BroadcastEvent::ViewerDisconnected(
            id,
            DisconnectReason::Removed
        ))
        .is_some());
    assert_eq!(
        sim.clients[a].frames.len(),
        before,
        "no frames after removal"
    );
    assert!(sim.clients[a].closed, "the browser was told");
    assert!(sim.clients[b].frames.len() > before);
}

/// Doing several things before polling is allowed: output queues up inside.
#[test]
fn several_mutations_before_polling() {
    let mut sim = Sim::new(config());
    let a = sim.add_client();
    sim.connect_all();
    let mut frames = FakeFrames::new();
    sim.stream(&mut frames, Duration::from_millis(200), Some(30));
    let before = sim.clients[a].frames.len();
    for _ in 0..3 {
        let (keyframe, data) = frames.next(false);
        let unit = access_unit(sim.now, 0, keyframe, &data);
        sim.broadcast.handle_frame(sim.now, &unit);
        sim.broadcast.handle_timeout(sim.now);
        sim.now += FRAME;
    }
    sim.run_for(Duration::from_millis(100));
    assert_eq!(sim.clients[a].frames.len(), before + 3);
}

/// A viewer that hangs up properly (DTLS close_notify) is reported at once.
#[test]
fn viewer_that_closes_is_reported() {
    let mut sim = Sim::new(config());
    let a = sim.add_client();
    let b = sim.add_client();
    sim.connect_all();
    let mut frames = FakeFrames::new();
    sim.stream(&mut frames, Duration::from_millis(300), Some(30));

    let closed_at = sim.now;
    sim.close(a);
    sim.stream(&mut frames, Duration::from_millis(300), Some(30));
    let id = sim.clients[a].id;
    let reported = sim
        .event_time(&BroadcastEvent::ViewerDisconnected(
            id,
            DisconnectReason::Closed,
        ))
        .expect("reported");
    assert!(reported - closed_at <= Duration::from_millis(5));
    assert_eq!(sim.broadcast.viewer_count(), 1);
    assert!(sim.clients[b].frames.len() >= 17);
}

/// Extreme configurations are odd but no reason to panic.
#[test]
fn huge_durations_do_not_panic() {
    let config = config()
        .with_ice_timeout(Duration::MAX)
        .with_keyframe_interval(Duration::MAX)
        .with_keyframe_retry(Duration::MAX);
    let mut sim = Sim::new(config);
    let a = sim.add_client();
    sim.connect_all();
    let mut frames = FakeFrames::new();
    sim.stream(&mut frames, Duration::from_millis(300), None);
    sim.send_pli(a);
    sim.stream(&mut frames, Duration::from_millis(300), None);
    assert!(!sim.clients[a].frames.is_empty());
}
