//! Offers the broadcast must refuse, with the right error and without panicking.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use rtcgear_capture::h264::H264Profile;
use rtcgear_rtc::{Broadcast, BroadcastConfig, LocalCandidate, RtcError};
use str0m::change::SdpOffer;
use str0m::media::{Direction, MediaKind};
use str0m::{Candidate, Rtc, RtcConfig};

use crate::sim::{client_offer, config, server_addr, Sim};

fn client_addr() -> SocketAddr {
    (Ipv4Addr::new(10, 0, 0, 99), 5000).into()
}

fn offer_with(codecs: impl FnOnce(RtcConfig) -> RtcConfig) -> String {
    let (_, _, (offer, _)) = client_offer(Instant::now(), client_addr(), codecs);
    offer.to_sdp_string()
}

fn browser_offer() -> String {
    offer_with(|config| config)
}

fn check(offer: &str, expected: fn(&RtcError) -> bool) {
    let now = Instant::now();
    let mut broadcast = Broadcast::new(now, config());
    match broadcast.handle_offer(now, offer) {
        Ok(_) => panic!("accepted a bad offer:\n{offer}"),
        Err(e) => assert!(expected(&e), "wrong error {e:?} for:\n{offer}"),
    }
    assert_eq!(broadcast.viewer_count(), 0);
}

#[test]
fn a_browser_like_offer_is_answered_with_h264_42e01f() {
    let now = Instant::now();
    let mut broadcast = Broadcast::new(now, config());
    let (_, answer) = broadcast
        .handle_offer(now, &browser_offer())
        .expect("accepted");
    assert!(answer.contains("H264/90000"), "{answer}");
    assert!(answer.contains("profile-level-id=42e01f"), "{answer}");
    assert!(answer.contains("packetization-mode=1"), "{answer}");
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(answer.contains(&format!(
        "{} {} typ host",
        server_addr().ip(),
        server_addr().port()
    )));
    assert!(!answer.contains("VP8"), "{answer}");
}

/// Each viewer can get its own candidates: here a remote one gets the LAN address and the
/// NAT's mapped address as a real server-reflexive candidate, and no loopback address.
#[test]
fn candidates_can_be_chosen_per_offer() {
    let now = Instant::now();
    let loopback: SocketAddr = (Ipv4Addr::LOCALHOST, 4000).into();
    let lan = server_addr();
    let mapped: SocketAddr = (Ipv4Addr::new(203, 0, 113, 7), 4444).into();
    let mut broadcast = Broadcast::new(now, BroadcastConfig::new(vec![lan, loopback]));
    let remote = [
        LocalCandidate::Host(lan),
        LocalCandidate::ServerReflexive {
            addr: mapped,
            base: lan,
        },
    ];
    let (_, answer) = broadcast
        .handle_offer_with_candidates(now, &browser_offer(), &remote)
        .expect("accepted");
    let candidates: Vec<&str> = answer
        .lines()
        .filter(|line| line.starts_with("a=candidate:"))
        .collect();
    assert_eq!(candidates.len(), 2, "{answer}");
    assert!(
        candidates[0].contains(&format!("{} {} typ host", lan.ip(), lan.port())),
        "{answer}"
    );
    assert!(
        candidates[1].ends_with("203.0.113.7 4444 typ srflx raddr 192.0.2.1 rport 4000"),
        "{answer}"
    );
    // The plain offer announces every configured host candidate, loopback too.
    let (_, answer) = broadcast
        .handle_offer(now, &browser_offer())
        .expect("accepted");
    assert!(answer.contains("127.0.0.1 4000 typ host"), "{answer}");
    assert!(!answer.contains("srflx"), "{answer}");
    // A host address given with the offer counts even if it is not configured.
    let mut bare = Broadcast::new(now, BroadcastConfig::new(Vec::new()));
    let (_, answer) = bare
        .handle_offer_with_candidates(now, &browser_offer(), &[LocalCandidate::Host(lan)])
        .expect("accepted");
    assert!(answer.contains("192.0.2.1 4000 typ host"), "{answer}");
    let reflexive_only = bare.handle_offer_with_candidates(now, &browser_offer(), &remote[1..]);
    assert!(
        matches!(reflexive_only, Err(RtcError::NoCandidates)),
        "{reflexive_only:?}"
    );
}

#[test]
fn garbage_is_malformed() {
    for garbage in [
        "",
        "hello",
        "v=0\r\n",
        "v=0\r\nm=video\r\n",
        "\u{0}\u{ff}\u{10ffff}",
    ] {
        check(garbage, |e| matches!(e, RtcError::MalformedSdp { .. }));
    }
}

#[test]
fn vp8_only_has_no_h264() {
    let offer = offer_with(|config| config.clear_codecs().enable_vp8(true));
    check(&offer, |e| matches!(e, RtcError::NoH264));
}

#[test]
fn high_profile_only_has_no_usable_h264() {
    let offer = offer_with(|mut config| {
        config = config.clear_codecs();
        config
            .codec_config()
            .add_h264(100.into(), None, true, 0x64001f);
        config
    });
    check(&offer, |e| matches!(e, RtcError::NoH264));
}

/// A stream passed through in High profile is answered with the browser's High payload type,
/// and refused, with the reason, by a browser that offers none.
#[test]
fn a_high_profile_stream_needs_a_high_payload_type() {
    let now = Instant::now();
    let high = config()
        .with_gop_cache(true)
        .with_h264_profile(Some(H264Profile::from_profile_level_id(0x640028)));
    // str0m's default codecs, like a browser's, include High.
    let mut broadcast = Broadcast::new(now, high.clone());
    let (_, answer) = broadcast
        .handle_offer(now, &browser_offer())
        .expect("accepted");
    assert!(answer.contains("profile-level-id=64"), "{answer}");
    assert!(!answer.contains("profile-level-id=42"), "{answer}");

    let baseline_only = offer_with(|mut config| {
        config = config.clear_codecs();
        config
            .codec_config()
            .add_h264(100.into(), None, true, 0x42e01f);
        config
    });
    let mut broadcast = Broadcast::new(now, high);
    let err = broadcast
        .handle_offer(now, &baseline_only)
        .expect_err("no High payload type");
    assert!(
        matches!(
            err,
            RtcError::ProfileNotOffered { profile } if profile.profile_level_id() == 0x640028
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("640028"), "{err}");
}

#[test]
fn baseline_only_is_accepted() {
    let offer = offer_with(|mut config| {
        config = config.clear_codecs();
        config
            .codec_config()
            .add_h264(100.into(), None, true, 0x42001f);
        config
    });
    let now = Instant::now();
    let mut broadcast = Broadcast::new(now, config());
    let (_, answer) = broadcast.handle_offer(now, &offer).expect("accepted");
    assert!(answer.contains("profile-level-id=42001f"), "{answer}");
}

#[test]
fn audio_only_has_no_video() {
    let mut rtc = Rtc::new(Instant::now());
    rtc.add_local_candidate(Candidate::host(client_addr(), "udp").expect("candidate"));
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, _) = change.apply().expect("an offer");
    check(&offer.to_sdp_string(), |e| matches!(e, RtcError::NoVideo));
}

#[test]
fn an_answer_is_not_an_offer() {
    // A sender offers H.264; a browser-like peer answers. That answer is not an offer.
    let now = Instant::now();
    let mut sender = Rtc::new(now);
    sender.add_local_candidate(Candidate::host(server_addr(), "udp").expect("candidate"));
    let mut change = sender.sdp_api();
    change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, _) = change.apply().expect("an offer");
    let mut browser = Rtc::new(now);
    browser.add_local_candidate(Candidate::host(client_addr(), "udp").expect("candidate"));
    let answer = browser
        .sdp_api()
        .accept_offer(SdpOffer::from_sdp_string(&offer.to_sdp_string()).expect("parses"))
        .expect("answered");
    check(&answer.to_sdp_string(), |e| {
        matches!(e, RtcError::NotAnOffer { .. })
    });
}

#[test]
fn viewer_limit() {
    let mut sim = Sim::new(config().with_max_viewers(Some(2)));
    sim.add_client();
    sim.add_client();
    let third = sim.try_add_client(|config| config);
    assert!(
        matches!(third, Err(RtcError::ViewerLimit { max: 2 })),
        "{third:?}"
    );
    assert_eq!(sim.broadcast.viewer_count(), 2);
}

#[test]
fn no_candidates_is_a_configuration_error() {
    let now = Instant::now();
    let mut broadcast = Broadcast::new(now, BroadcastConfig::new(Vec::new()));
    let result = broadcast.handle_offer(now, &browser_offer());
    assert!(matches!(result, Err(RtcError::NoCandidates)), "{result:?}");
}

/// Every prefix of a good offer, cut at a line, and every line dropped in turn: errors or
/// answers, never a panic.
#[test]
fn mangled_offers_never_panic() {
    let offer = browser_offer();
    let lines: Vec<&str> = offer.split("\r\n").collect();
    let now = Instant::now();
    let mut broadcast = Broadcast::new(now, config());
    for cut in 0..lines.len() {
        let _ = broadcast.handle_offer(now, &lines[..cut].join("\r\n"));
        let mut dropped = lines.clone();
        dropped.remove(cut);
        let _ = broadcast.handle_offer(now, &dropped.join("\r\n"));
    }
}

/// Datagrams from nowhere are refused, without panicking.
#[test]
fn stray_datagrams_are_refused() {
    let mut sim = Sim::new(config());
    sim.add_client();
    sim.connect_all();
    let stranger: SocketAddr = (Ipv4Addr::new(203, 0, 113, 7), 9999).into();
    let mut stun = vec![0, 1, 0, 12, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[1; 12]);
    stun.extend_from_slice(&[0, 6, 0, 8]);
    stun.extend_from_slice(b"nope:xyz");
    let datagrams: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0x80; 12],
        vec![0x80; 200],
        vec![22, 254, 253, 0, 0],
        stun,
        (0..=255).collect(),
    ];
    for datagram in &datagrams {
        assert!(!sim
            .broadcast
            .handle_receive(sim.now, stranger, server_addr(), datagram));
    }
}
