//! Just enough STUN parsing to route a datagram to its viewer by ICE username.

/// STUN's magic cookie, bytes 4..8 of every RFC 5389 message.
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
/// The USERNAME attribute type.
const USERNAME: u16 = 0x0006;
const HEADER_LEN: usize = 20;

/// The local ufrag (`<local>:<remote>`, the part before the colon) from a STUN message's
/// USERNAME attribute, or `None` if `datagram` is not STUN or has no USERNAME.
///
/// A browser's connectivity check to us carries `USERNAME = <our ufrag>:<its ufrag>`, so the
/// part before the colon names the viewer whose answer handed out that ufrag. Integrity is
/// not checked here; str0m does that when the message reaches the viewer.
pub(crate) fn local_ufrag(datagram: &[u8]) -> Option<&[u8]> {
    let header = datagram.get(..HEADER_LEN)?;
    // The first two bits of a STUN message are zero, which sets it apart from DTLS and RTP.
    if header[0] & 0xc0 != 0 || header[4..8] != MAGIC_COOKIE {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut attributes = datagram.get(HEADER_LEN..HEADER_LEN + length)?;
    while let Some(attribute_header) = attributes.get(..4) {
        let kind = u16::from_be_bytes([attribute_header[0], attribute_header[1]]);
        let len = usize::from(u16::from_be_bytes([
            attribute_header[2],
            attribute_header[3],
        ]));
        let value = attributes.get(4..4 + len)?;
        if kind == USERNAME {
            let end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
            return Some(&value[..end]);
        }
        // Attribute values are padded to a multiple of four bytes.
        let padded = (len + 3) & !3;
        attributes = attributes.get(4 + padded..)?;
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A STUN Binding request with these attributes.
    pub(crate) fn binding_request(attributes: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, value) in attributes {
            body.extend_from_slice(&kind.to_be_bytes());
            body.extend_from_slice(&(value.len() as u16).to_be_bytes());
            body.extend_from_slice(value);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        let mut message = vec![0x00, 0x01];
        message.extend_from_slice(&(body.len() as u16).to_be_bytes());
        message.extend_from_slice(&MAGIC_COOKIE);
        message.extend_from_slice(&[7; 12]);
        message.extend_from_slice(&body);
        message
    }

    #[test]
    fn finds_the_local_ufrag() {
        let message = binding_request(&[(0x0024, &[0, 0, 0, 1]), (USERNAME, b"abcd:efgh")]);
        assert_eq!(local_ufrag(&message), Some(&b"abcd"[..]));
    }

    #[test]
    fn skips_padded_attributes() {
        let message = binding_request(&[(0x8022, b"odd"), (USERNAME, b"xyz:1")]);
        assert_eq!(local_ufrag(&message), Some(&b"xyz"[..]));
    }

    #[test]
    fn rejects_everything_else_without_panicking() {
        assert_eq!(local_ufrag(&[]), None);
        assert_eq!(local_ufrag(&[0x80; 40]), None, "RTP");
        assert_eq!(local_ufrag(&[22; 40]), None, "DTLS");
        assert_eq!(local_ufrag(&binding_request(&[])), None);
        let mut truncated = binding_request(&[(USERNAME, b"abcd:efgh")]);
        truncated.truncate(26);
        assert_eq!(local_ufrag(&truncated), None);
        let mut lying = binding_request(&[(USERNAME, b"abcd:efgh")]);
        lying[22..24].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(local_ufrag(&lying), None);
        for len in 0..64 {
            let garbage: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8 & 0x3f).collect();
            let _ = local_ufrag(&garbage);
        }
    }
}
