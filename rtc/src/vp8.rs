//! VP8 frames to RTP payloads (RFC 7741), once for every viewer, as `packetize` does H.264.
//!
//! Each payload starts with the VP8 payload descriptor: the S bit on the first packet of the
//! frame, partition index 0, and a 15-bit picture ID (as browsers' own senders put it), which
//! lets a receiver tell a lost frame from a late one. The frame is cut into payloads of equal
//! size; the last one carries the RTP marker.

use std::sync::Arc;

use crate::packetize::Packet;

/// `X`: an extension byte follows.
const EXTENDED: u8 = 0x80;
/// `S`: the start of a VP8 partition (here: of the frame).
const START: u8 = 0x10;
/// `I`: a picture ID follows.
const PICTURE_ID: u8 = 0x80;
/// `M`: the picture ID has 15 bits.
const LONG_PICTURE_ID: u8 = 0x80;
/// The payload descriptor's length: first byte, extension byte, two bytes of picture ID.
pub(crate) const DESCRIPTOR_LEN: usize = 4;

/// Splits one VP8 frame into RTP payloads of at most `max_payload` bytes, descriptor
/// included, with picture ID `picture_id` (its low 15 bits).
pub(crate) fn packetize(frame: &[u8], max_payload: usize, picture_id: u16) -> Vec<Packet> {
    if frame.is_empty() {
        return Vec::new();
    }
    let room = max_payload.saturating_sub(DESCRIPTOR_LEN).max(1);
    // Sizes within a byte of each other, so that no packet is a runt.
    let count = frame.len().div_ceil(room);
    let (base, longer) = (frame.len() / count, frame.len() % count);
    let id = picture_id & 0x7fff;
    let mut out = Vec::with_capacity(count);
    let mut rest = frame;
    for index in 0..count {
        let (chunk, after) = rest.split_at(base + usize::from(index < longer));
        rest = after;
        let mut payload = Vec::with_capacity(DESCRIPTOR_LEN + chunk.len());
        let start = if index == 0 { START } else { 0 };
        payload.extend_from_slice(&[
            EXTENDED | start,
            PICTURE_ID,
            LONG_PICTURE_ID | (id >> 8) as u8,
            id as u8,
        ]);
        payload.extend_from_slice(chunk);
        out.push(Packet {
            payload: Arc::from(payload),
            marker: false,
        });
    }
    if let Some(last) = out.last_mut() {
        last.marker = true;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frame again from `packets`, checking each descriptor on the way, as a receiver
    /// would read it.
    fn reassemble(packets: &[Packet], picture_id: u16) -> Vec<u8> {
        let mut frame = Vec::new();
        for (index, packet) in packets.iter().enumerate() {
            let p = &packet.payload;
            assert_eq!(p[0] & EXTENDED, EXTENDED);
            assert_eq!(p[0] & START != 0, index == 0, "S only on the first");
            assert_eq!(p[0] & 0x07, 0, "partition 0");
            assert_eq!(p[1], PICTURE_ID);
            let id = u16::from_be_bytes([p[2], p[3]]);
            assert_eq!(id & 0x8000, 0x8000);
            assert_eq!(id & 0x7fff, picture_id & 0x7fff);
            assert_eq!(packet.marker, index + 1 == packets.len());
            frame.extend_from_slice(&p[DESCRIPTOR_LEN..]);
        }
        frame
    }

    #[test]
    fn a_small_frame_is_one_packet() {
        let frame = [0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        let packets = packetize(&frame, 1200, 7);
        assert_eq!(packets.len(), 1);
        assert_eq!(reassemble(&packets, 7), frame);
    }

    #[test]
    fn a_large_frame_is_cut_evenly_and_comes_back_whole() {
        let frame: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let packets = packetize(&frame, 1200, 0x8123);
        assert_eq!(packets.len(), 9);
        assert!(packets.iter().all(|p| p.payload.len() <= 1200));
        let sizes: Vec<usize> = packets.iter().map(|p| p.payload.len()).collect();
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        assert_eq!(reassemble(&packets, 0x8123), frame);
    }

    #[test]
    fn nothing_in_nothing_out() {
        assert!(packetize(&[], 1200, 1).is_empty());
    }
}
