//! The GOP cache: the frames since the last keyframe, for viewers that connect between
//! keyframes of a stream whose keyframes cannot be asked for (see
//! [`BroadcastConfig::gop_cache`](crate::BroadcastConfig::gop_cache)).

use std::sync::Arc;
use std::time::Instant;

use str0m::media::MediaTime;
use tracing::warn;

use crate::packetize::Packet;

/// The most frames a GOP cache holds (see
/// [`BroadcastConfig::gop_cache`](crate::BroadcastConfig::gop_cache)): 16 s at 30 fps. str0m
/// takes at most 512 frames written between two polls.
pub const GOP_CACHE_MAX_FRAMES: usize = 480;

/// The most bytes a GOP cache holds (see
/// [`BroadcastConfig::gop_cache`](crate::BroadcastConfig::gop_cache)).
pub const GOP_CACHE_MAX_BYTES: usize = 24 << 20;

/// The frames from the last keyframe on, each with its capture instant, RTP time and
/// payloads.
#[derive(Default)]
pub(crate) struct GopCache {
    frames: Vec<(Instant, MediaTime, Arc<[Packet]>)>,
    bytes: usize,
    /// The GOP outgrew the limits: nothing is cached until the next keyframe.
    overflowed: bool,
}

impl GopCache {
    /// Adds a frame: a keyframe starts the cache afresh, a delta frame joins it if it follows
    /// a cached keyframe and fits within [`GOP_CACHE_MAX_FRAMES`] and [`GOP_CACHE_MAX_BYTES`].
    pub(crate) fn add(
        &mut self,
        capture: Instant,
        rtp_time: MediaTime,
        keyframe: bool,
        data: Arc<[Packet]>,
    ) {
        if keyframe {
            self.frames.clear();
            self.bytes = 0;
            self.overflowed = false;
        } else if self.frames.is_empty() || self.overflowed {
            return;
        }
        let size: usize = data.iter().map(|packet| packet.payload.len()).sum();
        if self.frames.len() >= GOP_CACHE_MAX_FRAMES || self.bytes + size > GOP_CACHE_MAX_BYTES {
            warn!(
                frames = self.frames.len(),
                bytes = self.bytes,
                "the keyframe interval is too long for the GOP cache; new viewers wait for the \
                 next keyframe"
            );
            self.frames.clear();
            self.bytes = 0;
            self.overflowed = true;
            return;
        }
        self.bytes += size;
        self.frames.push((capture, rtp_time, data));
    }

    /// The newest frame's capture instant, or `None` if nothing is cached.
    pub(crate) fn newest_capture(&self) -> Option<Instant> {
        self.frames.last().map(|&(capture, _, _)| capture)
    }

    /// The cached frames, oldest first, as a viewer that connects now gets them: their RTP
    /// times squeezed one tick apart just before the newest frame's own, so they go out in
    /// one burst, the decoder catches up at once, and the live frames that follow keep their
    /// spacing.
    pub(crate) fn squeezed(&self) -> impl Iterator<Item = (MediaTime, &[Packet])> + '_ {
        let count = self.frames.len() as u64;
        let newest = self
            .frames
            .last()
            .map_or(0, |&(_, rtp_time, _)| rtp_time.numer());
        self.frames
            .iter()
            .enumerate()
            .map(move |(i, (_, _, packets))| {
                let rtp_time = MediaTime::from_90khz(newest.saturating_sub(count - 1 - i as u64));
                (rtp_time, &packets[..])
            })
    }

    /// How many frames are cached.
    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    /// How many payload bytes are cached.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn frame(size: usize) -> Arc<[Packet]> {
        vec![Packet {
            payload: vec![0x41; size].into(),
            marker: true,
        }]
        .into()
    }

    fn rtp_times(gop: &GopCache) -> Vec<u64> {
        gop.squeezed().map(|(time, _)| time.numer()).collect()
    }

    #[test]
    fn a_keyframe_starts_the_cache_afresh() {
        let t0 = Instant::now();
        let mut gop = GopCache::default();
        gop.add(t0, MediaTime::from_90khz(0), false, frame(10));
        assert_eq!(
            gop.len(),
            0,
            "a delta frame without its keyframe is useless"
        );
        gop.add(t0, MediaTime::from_90khz(3000), true, frame(100));
        gop.add(t0, MediaTime::from_90khz(6000), false, frame(10));
        assert_eq!((gop.len(), gop.bytes()), (2, 110));
        let newest = t0 + Duration::from_millis(100);
        gop.add(newest, MediaTime::from_90khz(9000), true, frame(50));
        assert_eq!((gop.len(), gop.bytes()), (1, 50));
        assert_eq!(gop.newest_capture(), Some(newest));
    }

    #[test]
    fn cached_frames_are_squeezed_before_the_newest() {
        let t0 = Instant::now();
        let mut gop = GopCache::default();
        assert_eq!(gop.newest_capture(), None);
        assert!(rtp_times(&gop).is_empty());
        for (i, keyframe) in [true, false, false].into_iter().enumerate() {
            gop.add(
                t0,
                MediaTime::from_90khz(i as u64 * 3000),
                keyframe,
                frame(10),
            );
        }
        assert_eq!(rtp_times(&gop), vec![5998, 5999, 6000]);
    }

    #[test]
    fn an_overlong_gop_is_dropped_until_the_next_keyframe() {
        let t0 = Instant::now();
        let mut gop = GopCache::default();
        gop.add(t0, MediaTime::from_90khz(0), true, frame(10));
        gop.add(
            t0,
            MediaTime::from_90khz(1),
            false,
            frame(GOP_CACHE_MAX_BYTES),
        );
        assert_eq!(gop.len(), 0);
        gop.add(t0, MediaTime::from_90khz(2), false, frame(10));
        assert_eq!(gop.len(), 0, "nothing more until the next keyframe");
        gop.add(t0, MediaTime::from_90khz(3), true, frame(10));
        for i in 1..GOP_CACHE_MAX_FRAMES as u64 {
            gop.add(t0, MediaTime::from_90khz(3 + i), false, frame(1));
        }
        assert_eq!(gop.len(), GOP_CACHE_MAX_FRAMES);
        gop.add(t0, MediaTime::from_90khz(9999), false, frame(1));
        assert_eq!(gop.len(), 0);
    }
}
