//! H.264 access units to RTP payloads (RFC 6184, packetization mode 1), once for every viewer.
//!
//! str0m's frame API packetizes each frame again for every session. A broadcast sends the
//! same frame to every viewer, so [`Broadcast`](crate::Broadcast) packetizes it here once and
//! hands every session the same reference-counted payloads through str0m's RTP API; only the
//! RTP header (sequence number, SSRC, extensions) and the encryption differ between viewers.

use std::sync::Arc;

use rtcgear_capture::h264::{nal_type, nal_units};

/// One RTP payload of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packet {
    pub(crate) payload: Arc<[u8]>,
    /// The last packet of the access unit (the RTP marker bit).
    pub(crate) marker: bool,
}

const NAL_TYPE_MASK: u8 = 0x1f;
const NAL_REF_IDC_MASK: u8 = 0x60;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;
const FU_START: u8 = 0x80;
const FU_END: u8 = 0x40;

/// The largest RTP payload str0m's own packetizer makes with its default MTU: the datagram
/// target (1150) less the SRTP tag (16), rounded down to the cipher block (16). The RTP header
/// and its extensions come on top, as they do for str0m's frames.
pub(crate) const MAX_PAYLOAD: usize = (1150 - 16) / 16 * 16;

/// Splits an Annex B access unit into RTP payloads of at most `max_payload` bytes: one NAL unit
/// a packet where it fits, FU-A fragments of equal size where it does not, and SPS and PPS
/// aggregated (STAP-A) in one packet. Access unit delimiters are left out, as browsers' own
/// senders do. The last payload carries the marker.
pub(crate) fn packetize(access_unit: &[u8], max_payload: usize) -> Vec<Packet> {
    let mut out: Vec<Packet> = Vec::new();
    let mut parameter_sets: Vec<&[u8]> = Vec::new();
    for nal in nal_units(access_unit) {
        match nal_type(nal) {
            nal_type::AUD => {}
            nal_type::SPS | nal_type::PPS => parameter_sets.push(nal),
            _ => {
                flush_parameter_sets(&mut parameter_sets, max_payload, &mut out);
                emit(nal, max_payload, &mut out);
            }
        }
    }
    flush_parameter_sets(&mut parameter_sets, max_payload, &mut out);
    if let Some(last) = out.last_mut() {
        last.marker = true;
    }
    out
}

fn flush_parameter_sets(sets: &mut Vec<&[u8]>, max_payload: usize, out: &mut Vec<Packet>) {
    let aggregate = 1 + sets.iter().map(|nal| 2 + nal.len()).sum::<usize>();
    if sets.len() > 1 && aggregate <= max_payload {
        let nri = sets
            .iter()
            .map(|nal| nal[0] & NAL_REF_IDC_MASK)
            .max()
            .unwrap_or(0);
        let mut stap = Vec::with_capacity(aggregate);
        stap.push(STAP_A | nri);
        for nal in sets.iter() {
            // Fits, so each is shorter than 64 KiB.
            stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            stap.extend_from_slice(nal);
        }
        out.push(packet(stap));
    } else {
        for nal in sets.iter() {
            emit(nal, max_payload, out);
        }
    }
    sets.clear();
}

fn emit(nal: &[u8], max_payload: usize, out: &mut Vec<Packet>) {
    if nal.len() <= max_payload {
        out.push(packet(nal.to_vec()));
        return;
    }
    // FU-A: the NAL header's bits go in the two FU bytes, the rest is cut into fragments of
    // one size but the last, the fewest that fit: datagrams of equal size can leave in one
    // segmented send (UDP GSO), and no runt packet trails a frame more than it must.
    let header = nal[0];
    let body = &nal[1..];
    let room = max_payload.saturating_sub(2).max(1);
    let size = body.len().div_ceil(body.len().div_ceil(room).max(1)).max(1);
    let count = body.len().div_ceil(size);
    for (i, fragment) in body.chunks(size).enumerate() {
        let mut fu_header = header & NAL_TYPE_MASK;
        if i == 0 {
            fu_header |= FU_START;
        }
        if i + 1 == count {
            fu_header |= FU_END;
        }
        let mut payload = Vec::with_capacity(2 + fragment.len());
        payload.push(FU_A | (header & (NAL_REF_IDC_MASK | 0x80)));
        payload.push(fu_header);
        payload.extend_from_slice(fragment);
        out.push(packet(payload));
    }
}

fn packet(payload: Vec<u8>) -> Packet {
    Packet {
        payload: payload.into(),
        marker: false,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Reassembles payloads into NAL units, as a receiver does (RFC 6184 section 5.8).
    fn depacketize(packets: &[Packet]) -> Vec<Vec<u8>> {
        let mut nals = Vec::new();
        let mut fragment: Option<Vec<u8>> = None;
        for packet in packets {
            let p = &packet.payload[..];
            match p[0] & NAL_TYPE_MASK {
                STAP_A => {
                    let mut rest = &p[1..];
                    while rest.len() >= 2 {
                        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                        nals.push(rest[2..2 + len].to_vec());
                        rest = &rest[2 + len..];
                    }
                    assert!(rest.is_empty(), "STAP-A has trailing bytes");
                }
                FU_A => {
                    if p[1] & FU_START != 0 {
                        assert!(fragment.is_none(), "FU-A start inside a fragment");
                        fragment = Some(vec![(p[0] & 0xe0) | (p[1] & NAL_TYPE_MASK)]);
                    }
                    let nal = fragment.as_mut().expect("FU-A without a start");
                    nal.extend_from_slice(&p[2..]);
                    if p[1] & FU_END != 0 {
                        nals.push(fragment.take().unwrap());
                    }
                }
                _ => nals.push(p.to_vec()),
            }
        }
        assert!(fragment.is_none(), "FU-A without an end");
        nals
    }

    fn nal(kind: u8, len: usize, seed: u8) -> Vec<u8> {
        let mut nal = vec![0x60 | kind];
        // Never 0, so no start code or trailing zero appears inside.
        nal.extend((0..len - 1).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1));
        nal
    }

    fn annex_b(nals: &[Vec<u8>], long_codes: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for nal in nals {
            if long_codes {
                out.push(0);
            }
            out.extend_from_slice(&[0, 0, 1]);
            out.extend_from_slice(nal);
        }
        out
    }

    #[test]
    fn an_idr_access_unit_round_trips() {
        let sps = nal(nal_type::SPS, 12, 1);
        let pps = nal(nal_type::PPS, 4, 2);
        let idr = nal(5, 5000, 3);
        let au = annex_b(
            &[vec![0x09, 0xf0], sps.clone(), pps.clone(), idr.clone()],
            true,
        );
        let packets = packetize(&au, MAX_PAYLOAD);
        assert_eq!(packets[0].payload[0] & NAL_TYPE_MASK, STAP_A);
        assert_eq!(depacketize(&packets), vec![sps, pps, idr]);
        assert!(packets.iter().all(|p| p.payload.len() <= MAX_PAYLOAD));
        let markers: Vec<bool> = packets.iter().map(|p| p.marker).collect();
        assert_eq!(markers.iter().filter(|&&m| m).count(), 1);
        assert_eq!(markers.last(), Some(&true));
    }

    #[test]
    fn fragments_are_of_equal_size() {
        let slice = nal(1, 3 * MAX_PAYLOAD, 9);
        let packets = packetize(&annex_b(std::slice::from_ref(&slice), false), MAX_PAYLOAD);
        assert_eq!(packets.len(), 4);
        let sizes: Vec<usize> = packets.iter().map(|p| p.payload.len()).collect();
        assert!(sizes[..3].iter().all(|&size| size == sizes[0]));
        assert!(sizes[3] <= sizes[0]);
        assert_eq!(depacketize(&packets), vec![slice]);
    }

    #[test]
    fn slices_and_short_start_codes() {
        let slices: Vec<Vec<u8>> = (0..4).map(|i| nal(1, 300 + i * 700, i as u8)).collect();
        let packets = packetize(&annex_b(&slices, false), MAX_PAYLOAD);
        assert_eq!(depacketize(&packets), slices);
        assert!(packets.iter().all(|p| p.payload.len() <= MAX_PAYLOAD));
    }

    #[test]
    fn trailing_zeros_and_a_tiny_budget() {
        let slice = nal(1, 40, 5);
        let mut au = annex_b(std::slice::from_ref(&slice), true);
        au.extend_from_slice(&[0, 0]);
        let packets = packetize(&au, 7);
        assert!(packets.iter().all(|p| p.payload.len() <= 7));
        assert_eq!(depacketize(&packets), vec![slice]);
    }

    #[test]
    fn nothing_in_nothing_out() {
        assert!(packetize(&[], MAX_PAYLOAD).is_empty());
        assert!(packetize(&[0, 0, 0, 1], MAX_PAYLOAD).is_empty());
        assert!(packetize(&[0, 0, 1, 0x09, 0xf0], MAX_PAYLOAD).is_empty());
    }

    /// One NAL unit as an encoder writes it: a header (forbidden bit clear, any importance, a
    /// type a single NAL unit can have), and a body with emulation prevention (no `00 00 0x`
    /// with x <= 3 inside) ending in the RBSP stop bit, so no start code hides in it.
    fn arbitrary_nal() -> impl Strategy<Value = Vec<u8>> {
        let size = prop_oneof![0..64usize, 0..2_000usize, 0..20_000usize];
        (0u8..4, 1u8..24, size).prop_flat_map(|(nri, kind, size)| {
            // Bytes below 64 become zeros, so zero runs (and escapes) are common.
            prop::collection::vec(any::<u8>(), size).prop_map(move |raw| {
                let mut nal = vec![(nri << 5) | kind];
                let mut zeros = 0;
                for byte in raw.into_iter().map(|b| if b < 64 { 0 } else { b }) {
                    if zeros >= 2 && byte <= 3 {
                        nal.push(3);
                        zeros = 0;
                    }
                    nal.push(byte);
                    zeros = if byte == 0 { zeros + 1 } else { 0 };
                }
                nal.push(0x80);
                nal
            })
        })
    }

    /// An access unit: NAL units behind 3- or 4-byte start codes, some followed by zero bytes
    /// (trailing_zero_8bits), which belong to no NAL unit.
    fn arbitrary_access_unit() -> impl Strategy<Value = (Vec<Vec<u8>>, Vec<u8>)> {
        let framed = (arbitrary_nal(), any::<bool>(), 0usize..3);
        prop::collection::vec(framed, 1..8).prop_map(|nals| {
            let mut access_unit = Vec::new();
            for (nal, long_code, trailing_zeros) in &nals {
                if *long_code {
                    access_unit.push(0);
                }
                access_unit.extend_from_slice(&[0, 0, 1]);
                access_unit.extend_from_slice(nal);
                access_unit.extend(std::iter::repeat_n(0, *trailing_zeros));
            }
            (
                nals.into_iter().map(|(nal, _, _)| nal).collect(),
                access_unit,
            )
        })
    }

    proptest! {
        // Access units of up to 8 NAL units of up to 20 kB: 256 cases take a fraction of a
        // second in a debug build.
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any access unit cut into payloads for any budget a path allows comes back whole:
        /// the same NAL units in the same order (but access unit delimiters, left out on
        /// purpose), no payload over the budget, FU-A fragments of one size but the last, and
        /// one marker, on the last payload.
        #[test]
        fn any_access_unit_round_trips_at_any_budget(
            (nals, access_unit) in arbitrary_access_unit(),
            max_payload in 200usize..=1500,
        ) {
            let packets = packetize(&access_unit, max_payload);
            let expected: Vec<Vec<u8>> = nals
                .into_iter()
                .filter(|nal| nal[0] & NAL_TYPE_MASK != nal_type::AUD)
                .collect();
            prop_assert_eq!(depacketize(&packets), expected);
            prop_assert!(packets.iter().all(|p| p.payload.len() <= max_payload));
            let markers: Vec<usize> = (0..packets.len()).filter(|&i| packets[i].marker).collect();
            prop_assert_eq!(markers, packets.len().checked_sub(1).into_iter().collect::<Vec<_>>());
            for fragments in fu_a_runs(&packets) {
                let (last, rest) = fragments.split_last().expect("a run has a packet");
                prop_assert!(rest.iter().all(|p| p.payload.len() == fragments[0].payload.len()));
                prop_assert!(last.payload.len() <= fragments[0].payload.len());
            }
        }
    }

    /// The packets of each FU-A fragmented NAL unit, start to end.
    fn fu_a_runs(packets: &[Packet]) -> Vec<&[Packet]> {
        let mut runs = Vec::new();
        let mut start = None;
        for (i, packet) in packets.iter().enumerate() {
            if packet.payload[0] & NAL_TYPE_MASK != FU_A {
                continue;
            }
            if packet.payload[1] & FU_START != 0 {
                start = Some(i);
            }
            if packet.payload[1] & FU_END != 0 {
                if let Some(start) = start.take() {
                    runs.push(&packets[start..=i]);
                }
            }
        }
        runs
    }
}
