//! Just enough STUN (RFC 5389) to ask a STUN server which public address the media socket is
//! seen from: a Binding Request out, the (XOR-)MAPPED-ADDRESS of the Binding Success Response
//! back.
//!
//! The encoding and parsing are pure functions; [`ask`] is the one piece of I/O, run on a
//! thread of its own once the server runs: it sends from the media socket, and the RTC thread,
//! which reads that socket, hands the answers over.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::config::IceServer;

/// The magic cookie every RFC 5389 message carries after its type and length.
const MAGIC_COOKIE: u32 = 0x2112_A442;
const HEADER_LEN: usize = 20;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const BINDING_ERROR: u16 = 0x0111;
const ATTR_MAPPED_ADDRESS: u16 = 0x0001;
const ATTR_ERROR_CODE: u16 = 0x0009;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;

/// The 96-bit id that pairs a response with its request.
pub(crate) type TransactionId = [u8; 12];

/// A transaction id that another party cannot guess easily.
///
/// std's `RandomState` is seeded from the operating system's randomness, so hashing the time
/// and the process id with it gives unpredictable bits without a crate for random numbers.
/// (STUN needs the id to be unguessable only so that an off-path sender cannot forge an answer.)
pub(crate) fn new_transaction_id() -> TransactionId {
    let state = RandomState::new();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut id = [0u8; 12];
    for (index, chunk) in id.chunks_mut(8).enumerate() {
        let mut hasher = state.build_hasher();
        hasher.write_usize(index);
        hasher.write_u32(std::process::id());
        hasher.write_u128(nanos);
        let bits = hasher.finish().to_be_bytes();
        chunk.copy_from_slice(&bits[..chunk.len()]);
    }
    id
}

/// A Binding Request with no attributes.
pub(crate) fn binding_request(id: &TransactionId) -> [u8; HEADER_LEN] {
    let mut message = [0u8; HEADER_LEN];
    message[0..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    // Bytes 2..4 are the attribute length: none.
    message[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    message[8..20].copy_from_slice(id);
    message
}

/// What a datagram says about our Binding Request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Not a STUN response to our request (another transaction, or not STUN at all): ignore it.
    Unrelated,
    /// A success response with the address the server saw the request come from.
    Mapped(SocketAddr),
    /// A response to our request that gives no usable address, and why.
    Failed(String),
}

/// Reads `data` as the response to the Binding Request with transaction `id`.
///
/// Prefers XOR-MAPPED-ADDRESS, falling back to the older MAPPED-ADDRESS that some servers
/// still send. MESSAGE-INTEGRITY and FINGERPRINT are not checked: a Binding Request without
/// credentials gets no integrity, and the transaction id already ties the answer to us.
pub(crate) fn parse_response(data: &[u8], id: &TransactionId) -> Reply {
    if data.len() < HEADER_LEN
        // The two top bits of every STUN message are zero.
        || data[0] & 0xC0 != 0
        || data[4..8] != MAGIC_COOKIE.to_be_bytes()
        || data[8..20] != id[..]
    {
        return Reply::Unrelated;
    }
    let kind = u16::from_be_bytes([data[0], data[1]]);
    if kind != BINDING_SUCCESS && kind != BINDING_ERROR {
        return Reply::Unrelated;
    }
    let length = usize::from(u16::from_be_bytes([data[2], data[3]]));
    if length % 4 != 0 || HEADER_LEN + length > data.len() {
        return Reply::Failed(format!(
            "malformed response (attribute length {length} in {} bytes)",
            data.len()
        ));
    }
    let attributes = match attributes(&data[HEADER_LEN..HEADER_LEN + length]) {
        Ok(attributes) => attributes,
        Err(why) => return Reply::Failed(format!("malformed response ({why})")),
    };
    if kind == BINDING_ERROR {
        let reason = attributes
            .iter()
            .find(|(kind, _)| *kind == ATTR_ERROR_CODE)
            .and_then(|(_, value)| error_code(value))
            .unwrap_or_else(|| "without an ERROR-CODE".into());
        return Reply::Failed(format!("error response {reason}"));
    }
    let xor = attributes
        .iter()
        .find(|(kind, _)| *kind == ATTR_XOR_MAPPED_ADDRESS);
    let plain = attributes
        .iter()
        .find(|(kind, _)| *kind == ATTR_MAPPED_ADDRESS);
    let address = match (xor, plain) {
        (Some((_, value)), _) => address(value, Some(id)),
        (None, Some((_, value))) => address(value, None),
        (None, None) => return Reply::Failed("no MAPPED-ADDRESS in the response".into()),
    };
    match address {
        Some(address) => Reply::Mapped(address),
        None => Reply::Failed("malformed MAPPED-ADDRESS".into()),
    }
}

/// Splits the attribute section into (type, value) pairs, each value padded to 4 bytes.
fn attributes(mut data: &[u8]) -> Result<Vec<(u16, &[u8])>, &'static str> {
    let mut found = Vec::new();
    while !data.is_empty() {
        if data.len() < 4 {
            return Err("truncated attribute header");
        }
        let kind = u16::from_be_bytes([data[0], data[1]]);
        let length = usize::from(u16::from_be_bytes([data[2], data[3]]));
        let padded = length.div_ceil(4) * 4;
        if 4 + padded > data.len() {
            return Err("attribute longer than the message");
        }
        found.push((kind, &data[4..4 + length]));
        data = &data[4 + padded..];
    }
    Ok(found)
}

/// Reads a (XOR-)MAPPED-ADDRESS value; `xor_id` is the transaction id for the XOR form.
fn address(value: &[u8], xor_id: Option<&TransactionId>) -> Option<SocketAddr> {
    // The XOR key: the magic cookie, then (for IPv6) the transaction id.
    let mut key = [0u8; 16];
    if let Some(id) = xor_id {
        key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        key[4..].copy_from_slice(id);
    }
    let family = *value.get(1)?;
    let port =
        u16::from_be_bytes([*value.get(2)?, *value.get(3)?]) ^ u16::from_be_bytes([key[0], key[1]]);
    let ip = match (family, value.len()) {
        (0x01, 8) => {
            let mut octets = [0u8; 4];
            for (i, octet) in octets.iter_mut().enumerate() {
                *octet = value[4 + i] ^ key[i];
            }
            IpAddr::V4(Ipv4Addr::from(octets))
        }
        (0x02, 20) => {
            let mut octets = [0u8; 16];
            for (i, octet) in octets.iter_mut().enumerate() {
                *octet = value[4 + i] ^ key[i];
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Reads an ERROR-CODE value as `"420 (Unknown Attribute)"`.
fn error_code(value: &[u8]) -> Option<String> {
    let class = u16::from(*value.get(2)? & 0x07);
    let number = u16::from(*value.get(3)?);
    let reason = String::from_utf8_lossy(&value[4..]);
    Some(format!("{} ({})", class * 100 + number, reason.trim()))
}

/// Whether a browser could use `addr` as a candidate: the same test str0m applies to host
/// candidates, so a confused STUN server cannot make every later offer fail.
pub(crate) fn is_usable(addr: SocketAddr) -> bool {
    let ip_ok = match addr.ip() {
        IpAddr::V4(v4) => {
            !v4.is_unspecified() && !v4.is_link_local() && !v4.is_broadcast() && !v4.is_multicast()
        }
        IpAddr::V6(v6) => !v6.is_unspecified() && !v6.is_multicast(),
    };
    ip_ok && addr.port() != 0
}

/// Whether `data` is a STUN Binding response (success or error). The server is ICE-lite: it
/// answers browsers' Binding requests and never sends its own to them, so a Binding response
/// that reaches the media socket can only answer the request to the STUN server.
pub(crate) fn is_binding_response(data: &[u8]) -> bool {
    data.len() >= HEADER_LEN
        && data[4..8] == MAGIC_COOKIE.to_be_bytes()
        && matches!(
            u16::from_be_bytes([data[0], data[1]]),
            BINDING_SUCCESS | BINDING_ERROR
        )
}

/// Asks `server` for the address the media socket is seen from, waiting at most `wait` in all
/// once the server's name is resolved.
///
/// `socket` is a clone of the media socket, used to send only: the RTC thread reads every
/// datagram and passes Binding responses on through `replies`, as `(source, datagram)`. The
/// request goes out three times (at 0, ⅓ and ⅔ of `wait`), as UDP may lose it. Gives up early
/// when `stop` is set. The error is a reason for the log.
pub(crate) fn ask(
    socket: &UdpSocket,
    server: &IceServer,
    replies: &Receiver<(SocketAddr, Vec<u8>)>,
    wait: Duration,
    stop: &AtomicBool,
) -> Result<(SocketAddr, SocketAddr), String> {
    const SENDS: u32 = 3;
    let local = socket
        .local_addr()
        .map_err(|e| format!("reading the socket's address: {e}"))?;
    let target = resolve(&server.host_port(), local)?;
    let id = new_transaction_id();
    let request = binding_request(&id);
    let started = Instant::now();
    let mut last_error = None;
    for send in 0..SENDS {
        if stop.load(Ordering::Relaxed) {
            return Err("the server stopped first".into());
        }
        if let Err(err) = socket.send_to(&request, target) {
            // Sending may fail for good (no route from the bound address); keep the reason and
            // try again at the next turn, as it may also be a passing hiccup.
            last_error = Some(format!("sending to {target}: {err}"));
        }
        let turn_end = started + wait * (send + 1) / SENDS;
        loop {
            let now = Instant::now();
            if now >= turn_end {
                break;
            }
            // Short waits, to notice `stop`.
            let left = (turn_end - now).min(Duration::from_millis(100));
            match replies.recv_timeout(left) {
                Ok((source, data)) if source == target => match parse_response(&data, &id) {
                    Reply::Mapped(mapped) if is_usable(mapped) => {
                        return Ok((mapped, base(local, target)))
                    }
                    Reply::Mapped(mapped) => {
                        return Err(format!("it answered with an unusable address {mapped}"))
                    }
                    Reply::Failed(why) => return Err(format!("{target} answered: {why}")),
                    Reply::Unrelated => {}
                },
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    if stop.load(Ordering::Relaxed) {
                        return Err("the server stopped first".into());
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err("the server stopped first".into())
                }
            }
        }
    }
    Err(match last_error {
        Some(err) => format!("no answer from {target} within {wait:?} ({err})"),
        None => format!("no answer from {target} within {wait:?}"),
    })
}

/// The STUN server's address in the socket's family. A socket bound to `::` also reaches IPv4
/// servers through IPv4-mapped addresses (Linux, macOS and Windows are dual-stack by default).
fn resolve(host_port: &str, local: SocketAddr) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = host_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host_port}: {e}"))?
        .collect();
    if let Some(addr) = addrs.iter().find(|a| a.is_ipv4() == local.is_ipv4()) {
        return Ok(*addr);
    }
    if let (SocketAddr::V6(local), Some(SocketAddr::V4(v4))) =
        (local, addrs.iter().find(|a| a.is_ipv4()))
    {
        if local.ip().is_unspecified() {
            return Ok(SocketAddr::new(
                IpAddr::V6(v4.ip().to_ipv6_mapped()),
                v4.port(),
            ));
        }
    }
    let family = if local.is_ipv4() { "IPv4" } else { "IPv6" };
    Err(format!(
        "{host_port} has no {family} address (found {addrs:?}) for the media socket on {local}"
    ))
}

/// The local address a socket bound to `local` sends from towards `target`: `local` itself,
/// or for a socket bound to every interface, the address the system's routes pick (a
/// connected UDP socket learns it without sending anything).
fn base(local: SocketAddr, target: SocketAddr) -> SocketAddr {
    if !local.ip().is_unspecified() {
        return SocketAddr::new(local.ip().to_canonical(), local.port());
    }
    let unspecified = SocketAddr::new(local.ip(), 0);
    let routed = UdpSocket::bind(unspecified)
        .and_then(|probe| probe.connect(target).map(|()| probe))
        .and_then(|probe| probe.local_addr());
    match routed {
        Ok(routed) => SocketAddr::new(routed.ip().to_canonical(), local.port()),
        Err(err) => {
            tracing::debug!("no route to {target} to learn the base address: {err}");
            SocketAddr::new(local.ip().to_canonical(), local.port())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transaction id of the RFC 5769 sample responses.
    const RFC5769_ID: TransactionId = [
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ];

    /// RFC 5769 section 2.2, "Sample IPv4 Response".
    const RFC5769_IPV4: [u8; 80] = [
        0x01, 0x01, 0x00, 0x3c, // Response type and message length
        0x21, 0x12, 0xa4, 0x42, // Magic cookie
        0xb7, 0xe7, 0xa7, 0x01, // Transaction ID
        0xbc, 0x34, 0xd6, 0x86, //
        0xfa, 0x87, 0xdf, 0xae, //
        0x80, 0x22, 0x00, 0x0b, // SOFTWARE attribute header
        0x74, 0x65, 0x73, 0x74, // "test vector", padded
        0x20, 0x76, 0x65, 0x63, //
        0x74, 0x6f, 0x72, 0x20, //
        0x00, 0x20, 0x00, 0x08, // XOR-MAPPED-ADDRESS attribute header
        0x00, 0x01, 0xa1, 0x47, // Address family (IPv4) and xor'd mapped port number
        0xe1, 0x12, 0xa6, 0x43, // Xor'd mapped IPv4 address
        0x00, 0x08, 0x00, 0x14, // MESSAGE-INTEGRITY attribute header
        0x2b, 0x91, 0xf5, 0x99, // HMAC-SHA1 fingerprint
        0xfd, 0x9e, 0x90, 0xc3, //
        0x8c, 0x74, 0x89, 0xf9, //
        0x2a, 0xf9, 0xba, 0x53, //
        0xf0, 0x6b, 0xe7, 0xd7, //
        0x80, 0x28, 0x00, 0x04, // FINGERPRINT attribute header
        0xc0, 0x7d, 0x4c, 0x96, // Reversed CRC32 fingerprint
    ];

    /// RFC 5769 section 2.3, "Sample IPv6 Response".
    const RFC5769_IPV6: [u8; 92] = [
        0x01, 0x01, 0x00, 0x48, // Response type and message length
        0x21, 0x12, 0xa4, 0x42, // Magic cookie
        0xb7, 0xe7, 0xa7, 0x01, // Transaction ID
        0xbc, 0x34, 0xd6, 0x86, //
        0xfa, 0x87, 0xdf, 0xae, //
        0x80, 0x22, 0x00, 0x0b, // SOFTWARE attribute header
        0x74, 0x65, 0x73, 0x74, // "test vector", padded
        0x20, 0x76, 0x65, 0x63, //
        0x74, 0x6f, 0x72, 0x20, //
        0x00, 0x20, 0x00, 0x14, // XOR-MAPPED-ADDRESS attribute header
        0x00, 0x02, 0xa1, 0x47, // Address family (IPv6) and xor'd mapped port number
        0x01, 0x13, 0xa9, 0xfa, // Xor'd mapped IPv6 address
        0xa5, 0xd3, 0xf1, 0x79, //
        0xbc, 0x25, 0xf4, 0xb5, //
        0xbe, 0xd2, 0xb9, 0xd9, //
        0x00, 0x08, 0x00, 0x14, // MESSAGE-INTEGRITY attribute header
        0xa3, 0x82, 0x95, 0x4e, // HMAC-SHA1 fingerprint
        0x4b, 0xe6, 0x7b, 0xf1, //
        0x17, 0x84, 0xc9, 0x7c, //
        0x82, 0x92, 0xc2, 0x75, //
        0xbf, 0xe3, 0xed, 0x41, //
        0x80, 0x28, 0x00, 0x04, // FINGERPRINT attribute header
        0xc8, 0xfb, 0x0b, 0x4c, // Reversed CRC32 fingerprint
    ];

    fn check(data: &[u8], id: &TransactionId, expected: Reply) {
        assert_eq!(parse_response(data, id), expected);
    }

    fn mapped(s: &str) -> Reply {
        Reply::Mapped(s.parse().expect("a test address"))
    }

    /// A success response with the given attributes (type, value), padded as STUN wants.
    fn response(kind: u16, id: &TransactionId, attributes: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (attribute, value) in attributes {
            body.extend_from_slice(&attribute.to_be_bytes());
            body.extend_from_slice(&(value.len() as u16).to_be_bytes());
            body.extend_from_slice(value);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        let mut message = binding_request(id).to_vec();
        message[0..2].copy_from_slice(&kind.to_be_bytes());
        message[2..4].copy_from_slice(&(body.len() as u16).to_be_bytes());
        message.extend_from_slice(&body);
        message
    }

    #[test]
    fn rfc5769_sample_responses() {
        check(&RFC5769_IPV4, &RFC5769_ID, mapped("192.0.2.1:32853"));
        check(
            &RFC5769_IPV6,
            &RFC5769_ID,
            mapped("[2001:db8:1234:5678:11:2233:4455:6677]:32853"),
        );
    }

    #[test]
    fn binding_request_header() {
        let id = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let request = binding_request(&id);
        assert_eq!(
            &request[..8],
            &[0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]
        );
        assert_eq!(&request[8..], &id);
        // Our own request is not a response.
        check(&request, &id, Reply::Unrelated);
    }

    #[test]
    fn other_transactions_and_other_protocols_are_unrelated() {
        let mut other = RFC5769_ID;
        other[11] ^= 1;
        check(&RFC5769_IPV4, &other, Reply::Unrelated);
        let mut no_cookie = RFC5769_IPV4;
        no_cookie[4] = 0;
        check(&no_cookie, &RFC5769_ID, Reply::Unrelated);
        // An RTP-looking datagram (version 2 in the top bits).
        let mut rtp = RFC5769_IPV4;
        rtp[0] = 0x80;
        check(&rtp, &RFC5769_ID, Reply::Unrelated);
        check(&RFC5769_IPV4[..19], &RFC5769_ID, Reply::Unrelated);
        check(&[], &RFC5769_ID, Reply::Unrelated);
    }

    #[test]
    fn plain_mapped_address_is_the_fallback() {
        let id = new_transaction_id();
        let plain: &[u8] = &[0, 1, 0x30, 0x39, 198, 51, 100, 20];
        check(
            &response(BINDING_SUCCESS, &id, &[(ATTR_MAPPED_ADDRESS, plain)]),
            &id,
            mapped("198.51.100.20:12345"),
        );
        // With both, XOR-MAPPED-ADDRESS wins (some NATs rewrite the plain one).
        let port = 12345u16 ^ 0x2112;
        let ip = [198 ^ 0x21, 51 ^ 0x12, 100 ^ 0xa4, 21 ^ 0x42];
        let xor: &[u8] = &[
            0,
            1,
            (port >> 8) as u8,
            port as u8,
            ip[0],
            ip[1],
            ip[2],
            ip[3],
        ];
        check(
            &response(
                BINDING_SUCCESS,
                &id,
                &[(ATTR_MAPPED_ADDRESS, plain), (ATTR_XOR_MAPPED_ADDRESS, xor)],
            ),
            &id,
            mapped("198.51.100.21:12345"),
        );
    }

    #[test]
    fn failures_say_why() {
        let id = new_transaction_id();
        let error = response(
            BINDING_ERROR,
            &id,
            &[(ATTR_ERROR_CODE, b"\0\0\x04\x14Unknown Attribute")],
        );
        let Reply::Failed(why) = parse_response(&error, &id) else {
            panic!("an error response is a failure");
        };
        assert!(why.contains("420 (Unknown Attribute)"), "{why}");

        let empty = response(BINDING_SUCCESS, &id, &[]);
        assert!(
            matches!(parse_response(&empty, &id), Reply::Failed(why) if why.contains("no MAPPED"))
        );

        let bad_family = response(
            BINDING_SUCCESS,
            &id,
            &[(ATTR_XOR_MAPPED_ADDRESS, &[0, 3, 0, 0, 1, 2, 3, 4])],
        );
        assert!(matches!(parse_response(&bad_family, &id), Reply::Failed(_)));

        // The length field promises more than the datagram has.
        let mut truncated = RFC5769_IPV4.to_vec();
        truncated.truncate(60);
        assert!(matches!(
            parse_response(&truncated, &RFC5769_ID),
            Reply::Failed(why) if why.contains("malformed")
        ));
        // An attribute runs past the end of the message.
        let mut overlong = RFC5769_IPV4;
        overlong[22..24].copy_from_slice(&[0x00, 0xff]);
        assert!(matches!(
            parse_response(&overlong, &RFC5769_ID),
            Reply::Failed(_)
        ));
    }

    #[test]
    fn transaction_ids_differ() {
        let ids: Vec<_> = (0..16).map(|_| new_transaction_id()).collect();
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn unusable_addresses() {
        for bad in [
            "0.0.0.0:1000",
            "224.0.0.1:1000",
            "169.254.1.1:1000",
            "[::]:1000",
            "1.2.3.4:0",
        ] {
            assert!(!is_usable(bad.parse().expect("a test address")), "{bad}");
        }
        assert!(is_usable(
            "203.0.113.7:4000".parse().expect("a test address")
        ));
    }

    #[test]
    fn resolve_matches_the_socket_family() {
        let v4: SocketAddr = "127.0.0.1:5000".parse().expect("a test address");
        let v6: SocketAddr = "[::]:5000".parse().expect("a test address");
        let v6_only: SocketAddr = "[::1]:5000".parse().expect("a test address");
        assert_eq!(
            resolve("127.0.0.1:3478", v4),
            Ok("127.0.0.1:3478".parse().expect("a test address"))
        );
        assert_eq!(
            resolve("127.0.0.1:3478", v6),
            Ok("[::ffff:127.0.0.1]:3478".parse().expect("a test address"))
        );
        assert!(resolve("127.0.0.1:3478", v6_only).is_err());
        assert!(resolve("[::1]:3478", v4).is_err());
    }

    #[test]
    fn binding_responses_are_told_apart() {
        let id = new_transaction_id();
        assert!(is_binding_response(&response(BINDING_SUCCESS, &id, &[])));
        assert!(is_binding_response(&response(BINDING_ERROR, &id, &[])));
        assert!(is_binding_response(&RFC5769_IPV4));
        assert!(!is_binding_response(&binding_request(&id)));
        assert!(!is_binding_response(b"not stun at all, not at all"));
        assert!(!is_binding_response(&[0x01, 0x01, 0, 0]));
    }

    #[test]
    fn the_base_is_the_bound_address_or_the_routed_one() {
        let target: SocketAddr = "127.0.0.1:3478".parse().unwrap();
        let port = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(base(port("127.0.0.1:4000"), target), port("127.0.0.1:4000"));
        assert_eq!(base(port("0.0.0.0:4000"), target), port("127.0.0.1:4000"));
        assert_eq!(
            base(port("[::ffff:127.0.0.1]:4000"), target),
            port("127.0.0.1:4000")
        );
    }
}
