//! [`Shard`]: one of several broadcasts of the same stream, each with its own viewers, so that
//! a driver can spread viewers over threads; and [`Packetizer`]/[`Packetized`], which cut each
//! picture into RTP payloads once for all of them.
//!
//! A driver with several threads gives each one a [`Broadcast`](crate::Broadcast) of every
//! stream, configured with its [`Shard`]. The shard marks what it hands out, so the driver
//! can route without asking anyone: every viewer id it makes is the shard's
//! ([`Shard::of_viewer`]), and every local ICE ufrag starts with the shard's tag, so the
//! viewer's STUN requests name their shard ([`Shard::of_packet`]). The driver routes a
//! viewer's later packets by the address its STUN requests came from.

use std::sync::Arc;
use std::time::Instant;

use rtcgear_capture::{AccessUnit, Codec};

use crate::output::ViewerId;
use crate::packetize::{self, Packet};
use crate::stun;
use crate::vp8;

/// The characters that tag a ufrag with its shard: all ICE characters (RFC 8445), one per
/// shard.
const TAGS: &[u8; Shard::MAX as usize] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Which of `count` broadcasts of one stream a [`Broadcast`](crate::Broadcast) is
/// ([`BroadcastConfig::shard`](crate::BroadcastConfig::shard)); the default is the only one.
///
/// ```
/// use rtcgear_rtc::{Shard, ViewerId};
///
/// let second = Shard::new(1, 4).unwrap();
/// assert_eq!(second.index(), 1);
/// // Viewer ids 2, 6, 10, ... are the second shard's.
/// assert_eq!(Shard::of_viewer(ViewerId::from_raw(6), 4), 1);
/// assert!(Shard::new(4, 4).is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u8,
    count: u8,
}

impl Shard {
    /// The most shards of one stream.
    pub const MAX: u8 = 64;

    /// Shard `index` of `count` (`index < count <= MAX`), or `None`.
    pub fn new(index: usize, count: usize) -> Option<Shard> {
        if count == 0 || count > usize::from(Shard::MAX) || index >= count {
            return None;
        }
        Some(Shard {
            index: index as u8,
            count: count as u8,
        })
    }

    /// Its index, from 0.
    pub fn index(self) -> usize {
        usize::from(self.index)
    }

    /// How many shards there are.
    pub fn count(self) -> usize {
        usize::from(self.count)
    }

    /// The shard of `count` that made `viewer`.
    pub fn of_viewer(viewer: ViewerId, count: usize) -> usize {
        (viewer.get().saturating_sub(1) % count.max(1) as u64) as usize
    }

    /// The shard of `count` whose viewer a packet is for, when it is a STUN request carrying
    /// the ICE username (a browser's connectivity check, always its first packet on a path);
    /// `None` for anything else. With one shard, always that one.
    pub fn of_packet(packet: &[u8], count: usize) -> Option<usize> {
        if count <= 1 {
            return Some(0);
        }
        let tag = *stun::local_ufrag(packet)?.first()?;
        let index = TAGS.iter().position(|&t| t == tag)?;
        (index < count).then_some(index)
    }

    /// The first viewer id this shard hands out; the next ones follow `count` apart.
    pub(crate) fn first_viewer(self) -> u64 {
        u64::from(self.index) + 1
    }

    /// The tag that starts every local ufrag of this shard, none when it is the only one (so
    /// a lone broadcast's ufrags are str0m's own).
    pub(crate) fn ufrag_tag(self) -> Option<char> {
        (self.count > 1).then(|| char::from(TAGS[usize::from(self.index)]))
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

/// One encoded picture cut into RTP payloads, shared (reference-counted) by every broadcast
/// and viewer it goes to: [`Broadcast::handle_packetized`](crate::Broadcast::handle_packetized).
#[derive(Debug, Clone)]
pub struct Packetized {
    pub(crate) codec: Codec,
    pub(crate) capture: Instant,
    pub(crate) keyframe: bool,
    pub(crate) packets: Arc<[Packet]>,
}

impl Packetized {
    /// The picture's codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Whether it is a keyframe.
    pub fn keyframe(&self) -> bool {
        self.keyframe
    }

    /// Its capture time.
    pub fn capture(&self) -> Instant {
        self.capture
    }

    /// How many RTP packets it makes.
    pub fn packet_count(&self) -> usize {
        self.packets.len()
    }
}

/// Cuts one stream's access units of one codec into RTP payloads: H.264 (RFC 6184,
/// packetization mode 1) or VP8 (RFC 7741, whose picture IDs count up here). Keep one per
/// stream and codec.
///
/// ```
/// use rtcgear_capture::{AccessUnit, CaptureTime, Codec};
/// use rtcgear_rtc::Packetizer;
///
/// let idr = vec![0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00];
/// let unit = AccessUnit::h264(idr, true, 0, CaptureTime::now());
/// let packetized = Packetizer::default().packetize(&unit).unwrap();
/// assert_eq!(packetized.codec(), Codec::H264);
/// assert_eq!(packetized.packet_count(), 1);
/// ```
#[derive(Debug, Default)]
pub struct Packetizer {
    vp8_picture_id: u16,
}

impl Packetizer {
    /// The payloads of `unit`, or `None` for a codec no broadcast sends (neither H.264 nor
    /// VP8).
    pub fn packetize(&mut self, unit: &AccessUnit) -> Option<Packetized> {
        let packets: Arc<[Packet]> = match unit.codec {
            Codec::H264 => packetize::packetize(&unit.data, packetize::MAX_PAYLOAD).into(),
            Codec::Vp8 => {
                let id = self.vp8_picture_id;
                self.vp8_picture_id = id.wrapping_add(1) & 0x7fff;
                vp8::packetize(&unit.data, packetize::MAX_PAYLOAD, id).into()
            }
            _ => return None,
        };
        Some(Packetized {
            codec: unit.codec,
            capture: unit.time.instant,
            keyframe: unit.keyframe,
            packets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A browser's connectivity check to `ufrag`.
    fn check(ufrag: &str) -> Vec<u8> {
        let username = format!("{ufrag}:browser");
        crate::stun::tests::binding_request(&[(0x0006, username.as_bytes())])
    }

    #[test]
    fn every_shard_reads_back_from_its_tag_and_its_viewer_ids() {
        for count in [2, 3, 64] {
            for index in 0..count {
                let shard = Shard::new(index, count).unwrap();
                let tag = shard.ufrag_tag().unwrap();
                let packet = check(&format!("{tag}xYz9"));
                assert_eq!(Shard::of_packet(&packet, count), Some(index));
                for k in 0..5 {
                    let id = ViewerId::from_raw(shard.first_viewer() + k * count as u64);
                    assert_eq!(Shard::of_viewer(id, count), index);
                }
            }
        }
    }

    #[test]
    fn one_shard_changes_nothing_and_bad_tags_route_nowhere() {
        let only = Shard::default();
        assert_eq!((only.index(), only.count(), only.first_viewer()), (0, 1, 1));
        assert_eq!(only.ufrag_tag(), None);
        assert_eq!(Shard::of_packet(b"not stun", 1), Some(0));
        assert_eq!(Shard::of_packet(b"not stun at all, too short?", 2), None);
        // A tag past the count, or not a tag at all.
        assert_eq!(Shard::of_packet(&check("Cabc"), 2), None);
        assert_eq!(Shard::of_packet(&check("-abc"), 2), None);
        assert!(Shard::new(0, 0).is_none());
        assert!(Shard::new(0, 65).is_none());
    }

    #[test]
    fn vp8_picture_ids_count_up_per_packetizer() {
        let unit = |key| {
            let data = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
            let mut unit = AccessUnit::h264(data, key, 0, rtcgear_capture::CaptureTime::now());
            unit.codec = Codec::Vp8;
            unit
        };
        let mut packetizer = Packetizer::default();
        let first = packetizer.packetize(&unit(true)).unwrap();
        let second = packetizer.packetize(&unit(false)).unwrap();
        // The picture id follows the payload descriptor's first byte (X bit set).
        assert_ne!(
            first.packets[0].payload[..4],
            second.packets[0].payload[..4]
        );
        assert!(first.keyframe() && !second.keyframe());
    }
}
