//! A quick look at an offer before str0m negotiates it, and at the parser's complaints, for
//! precise errors; and the candidates an answer announces.

use std::net::{IpAddr, SocketAddr};

use crate::config::LocalCandidate;
use crate::output::Transport;

/// What [`Summary::of`] found in an SDP text.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Summary<'a> {
    /// There is an `m=video` line.
    pub(crate) video: bool,
    /// There is an `a=rtpmap:<pt> H264/90000` line.
    pub(crate) h264: bool,
    /// There is an `a=rtpmap:<pt> VP8/90000` line.
    pub(crate) vp8: bool,
    /// The first `a=setup:` value that is not `actpass`, which an offer may not have.
    pub(crate) fixed_setup: Option<&'a str>,
    /// The addresses of the offer's relayed candidates (`typ relay`): the TURN server's
    /// addresses for this viewer, from which its packets come when it is relayed.
    pub(crate) relays: Vec<SocketAddr>,
}

impl<'a> Summary<'a> {
    pub(crate) fn of(sdp: &'a str) -> Self {
        let mut summary = Summary::default();
        for line in sdp.lines().map(str::trim) {
            if line.starts_with("m=video ") {
                summary.video = true;
            } else if let Some(rtpmap) = line.strip_prefix("a=rtpmap:") {
                let encoding = rtpmap.split_whitespace().nth(1).unwrap_or("");
                let encoding = encoding.to_ascii_lowercase();
                summary.h264 |= encoding.starts_with("h264/");
                summary.vp8 |= encoding.starts_with("vp8/");
            } else if let Some(candidate) = line.strip_prefix("a=candidate:") {
                let fields: Vec<&str> = candidate.split_whitespace().collect();
                if let [_, _, _, _, ip, port, "typ", "relay", ..] = fields.as_slice() {
                    if let (Ok(ip), Ok(port)) = (ip.parse::<IpAddr>(), port.parse::<u16>()) {
                        summary.relays.push(SocketAddr::new(ip, port));
                    }
                }
            } else if let Some(setup) = line.strip_prefix("a=setup:") {
                if setup != "actpass" && summary.fixed_setup.is_none() {
                    summary.fixed_setup = Some(setup);
                }
            }
        }
        summary
    }
}

/// The `a=mid` values of the video m-lines of `sdp`, in order.
pub(crate) fn video_mids(sdp: &str) -> Vec<&str> {
    let mut mids = Vec::new();
    let mut in_video = false;
    for line in sdp.lines().map(str::trim) {
        if line.starts_with("m=") {
            in_video = line.starts_with("m=video ");
        } else if let Some(mid) = line.strip_prefix("a=mid:") {
            if in_video {
                mids.push(mid);
            }
        }
    }
    mids
}

/// `answer` (str0m's, with a host candidate line for every address and transport the session
/// accepts packets at) announcing exactly `candidates`: host candidate lines of other
/// addresses, or of the other transport, are dropped, and a `typ srflx` line is added for each server-reflexive candidate, after
/// the last candidate line of each media section that has any.
///
/// str0m itself cannot announce a server-reflexive candidate as an ICE-lite agent (it only
/// keeps host candidates then), and it needs not: a browser's checks to the mapped address
/// reach the socket at its base, a host candidate str0m knows.
pub(crate) fn announce(answer: &str, candidates: &[LocalCandidate]) -> String {
    let hosts: Vec<(Transport, SocketAddr)> = candidates
        .iter()
        .filter_map(|c| match *c {
            LocalCandidate::Host(addr) => Some((Transport::Udp, addr)),
            LocalCandidate::TcpHost(addr) => Some((Transport::Tcp, addr)),
            LocalCandidate::ServerReflexive { .. } => None,
        })
        .collect();
    let reflexive: Vec<String> = candidates
        .iter()
        .filter_map(|c| match *c {
            LocalCandidate::ServerReflexive { addr, base } => Some((addr, base)),
            LocalCandidate::Host(_) | LocalCandidate::TcpHost(_) => None,
        })
        .enumerate()
        .map(|(index, (addr, base))| {
            // RFC 8445 5.1.2.1: type preference 100 for server-reflexive, component 1.
            let local = 65535 - index as u32;
            let priority = (100u32 << 24) | (local << 8) | 255;
            format!(
                "a=candidate:srflx{index} 1 udp {priority} {} {} typ srflx raddr {} rport {}",
                addr.ip(),
                addr.port(),
                base.ip(),
                base.port()
            )
        })
        .collect();
    let mut out: Vec<String> = Vec::new();
    // Where the current media section's reflexive lines go: after its last candidate line.
    let mut insert_at: Option<usize> = None;
    let flush = |out: &mut Vec<String>, insert_at: &mut Option<usize>| {
        if let Some(at) = insert_at.take() {
            for (offset, line) in reflexive.iter().enumerate() {
                out.insert(at + offset, line.clone());
            }
        }
    };
    let ending = if answer.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    for line in answer.split(ending) {
        if line.starts_with("m=") {
            flush(&mut out, &mut insert_at);
        }
        if let Some(candidate) = line.strip_prefix("a=candidate:") {
            let fields: Vec<&str> = candidate.split_whitespace().collect();
            let host = match fields.as_slice() {
                [_, _, proto, _, ip, port, "typ", "host", ..] => {
                    let transport = if proto.eq_ignore_ascii_case("tcp") {
                        Transport::Tcp
                    } else {
                        Transport::Udp
                    };
                    ip.parse::<IpAddr>()
                        .ok()
                        .zip(port.parse::<u16>().ok())
                        .map(|(ip, port)| (transport, SocketAddr::new(ip, port)))
                }
                _ => None,
            };
            let keep = host.is_none_or(|host| hosts.contains(&host));
            if keep {
                out.push(line.to_string());
            }
            insert_at = Some(out.len());
            continue;
        }
        out.push(line.to_string());
    }
    flush(&mut out, &mut insert_at);
    out.join(ending)
}

/// The SDP parser's message on one line, without the memory address it puts in (which means
/// nothing to whoever sent the offer).
pub(crate) fn tidy_parse_error(message: &str) -> String {
    let mut out = Vec::new();
    for line in message.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let line = match line.find(" at PointerOffset(") {
            Some(start) => {
                let end = line[start..]
                    .find(')')
                    .map_or(line.len(), |e| start + e + 1);
                format!("{}{}", &line[..start], &line[end..])
            }
            None => line.to_string(),
        };
        out.push(line);
    }
    out.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_interesting_lines() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=setup:actpass\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\na=rtpmap:96 VP8/90000\r\n\
                   a=rtpmap:102 h264/90000\r\na=setup:active\r\n";
        let summary = Summary::of(sdp);
        assert!(summary.video);
        assert!(summary.h264);
        assert_eq!(summary.fixed_setup, Some("active"));
        assert!(summary.relays.is_empty());
    }

    #[test]
    fn finds_relayed_candidates() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
                   a=candidate:1 1 udp 2122260223 192.168.1.9 50000 typ host\r\n\
                   a=candidate:2 1 udp 41885439 198.51.100.3 61000 typ relay raddr 0.0.0.0 \
                   rport 0\r\n";
        assert_eq!(
            Summary::of(sdp).relays,
            ["198.51.100.3:61000".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn finds_video_mids() {
        let sdp = "v=0\r\na=mid:x\r\nm=audio 9 RTP/AVP 0\r\na=mid:a\r\n\
                   m=video 9 RTP/AVP 96\r\na=mid:v1\r\nm=video 9 RTP/AVP 96\r\na=mid:v2\r\n";
        assert_eq!(video_mids(sdp), ["v1", "v2"]);
    }

    #[test]
    fn empty_input() {
        assert_eq!(Summary::of(""), Summary::default());
    }

    #[test]
    fn parse_errors_read_on_one_line_without_addresses() {
        let raw = "SDP parse: Parse error at PointerOffset(0x7fb4d8000f60)\nUnexpected `g`\nExpected `v`\nsdp line";
        assert_eq!(
            tidy_parse_error(raw),
            "SDP parse: Parse error; Unexpected `g`; Expected `v`; sdp line"
        );
    }

    #[test]
    fn announces_the_chosen_hosts_and_reflexive_candidates() {
        let answer = "v=0\r\nc=IN IP4 0.0.0.0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n\
                      a=candidate:1 1 udp 2130706175 127.0.0.1 4000 typ host\r\n\
                      a=candidate:2 1 udp 2130706174 192.168.1.5 4000 typ host\r\n\
                      a=end-of-candidates\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\n";
        let lan: SocketAddr = "192.168.1.5:4000".parse().unwrap();
        let public: SocketAddr = "203.0.113.7:4000".parse().unwrap();
        let announced = announce(
            answer,
            &[
                LocalCandidate::Host(lan),
                LocalCandidate::ServerReflexive {
                    addr: public,
                    base: lan,
                },
            ],
        );
        assert!(!announced.contains("127.0.0.1"), "{announced}");
        assert_eq!(
            announced,
            "v=0\r\nc=IN IP4 0.0.0.0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n\
             a=candidate:2 1 udp 2130706174 192.168.1.5 4000 typ host\r\n\
             a=candidate:srflx0 1 udp 1694498815 203.0.113.7 4000 typ srflx raddr 192.168.1.5 \
             rport 4000\r\na=end-of-candidates\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
             a=mid:1\r\n"
        );
        // Everything announced: the answer is unchanged.
        let all = [
            LocalCandidate::Host("127.0.0.1:4000".parse().unwrap()),
            LocalCandidate::Host(lan),
        ];
        assert_eq!(announce(answer, &all), answer);
    }

    #[test]
    fn tells_tcp_candidates_from_udp_ones_at_the_same_address() {
        let answer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n\
                      a=candidate:1 1 udp 2130706175 192.168.1.5 4000 typ host\r\n\
                      a=candidate:2 1 tcp 1526725887 192.168.1.5 4000 typ host tcptype passive\r\n\
                      a=end-of-candidates\r\n";
        let lan: SocketAddr = "192.168.1.5:4000".parse().unwrap();
        let udp = announce(answer, &[LocalCandidate::Host(lan)]);
        assert!(udp.contains(" udp ") && !udp.contains(" tcp "), "{udp}");
        let tcp = announce(answer, &[LocalCandidate::TcpHost(lan)]);
        assert!(tcp.contains(" tcp ") && !tcp.contains(" udp "), "{tcp}");
        let both = [LocalCandidate::Host(lan), LocalCandidate::TcpHost(lan)];
        assert_eq!(announce(answer, &both), answer);
    }
}
