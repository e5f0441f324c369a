//! Decoding a sampled viewer's video in this process with libavcodec (through `ffmpeg-next`)
//! and reading the stamp of each picture.
//!
//! Each sampled viewer gets a thread of its own, fed whole access units over a channel as str0m
//! hands them over. The decoder runs with one thread and `AV_CODEC_FLAG_LOW_DELAY`, without a
//! parser: an access unit in is a picture out at once, so the time a picture is decoded is the
//! time its last packet arrived plus the decode itself, with no pipe and no probing, and the
//! stream's first IDR is the first picture.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, Once};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use ffmpeg_next as ff;
use rtcgear_capture::Stamp;

/// One access unit (Annex B) of a sampled viewer, with the time its last packet arrived.
pub struct Unit {
    pub arrived: Instant,
    pub data: Arc<[u8]>,
}

/// One decoded picture.
#[derive(Clone, Copy, Debug)]
pub struct Decoded {
    pub at: Instant,
    /// Wall clock at decode minus the stamp's capture time, in microseconds.
    pub latency_us: i64,
    /// From the arrival of the access unit to its decoded picture, in microseconds.
    pub decode_us: u64,
    pub counter: u32,
}

/// What a decoder has seen so far.
#[derive(Default, Debug)]
pub struct DecodeLog {
    pub pictures: Vec<Decoded>,
    /// Pictures whose stamp did not read (damaged or missing).
    pub unreadable: u64,
    /// Access units libavcodec refused or could not decode.
    pub errors: u64,
}

/// A decoding thread for one viewer. It ends when every sender of its input is gone.
pub struct Decoder {
    pub input: SyncSender<Unit>,
    pub log: Arc<Mutex<DecodeLog>>,
    /// The thread's id (for its CPU time in `/proc/self/task`), once it has started.
    tid: Arc<AtomicI32>,
}

impl Decoder {
    /// Opens libavcodec's H.264 decoder on a thread of its own. Start it before the offer, so
    /// that its start-up does not count in the time to the first picture.
    pub fn start(name: String) -> Result<Decoder> {
        static INIT: Once = Once::new();
        INIT.call_once(|| {
            // Only registers codecs and sets up logging; an error leaves `find` to report it.
            let _ = ff::init();
            ff::util::log::set_level(ff::util::log::Level::Fatal);
        });
        let codec = ff::codec::decoder::find(ff::codec::Id::H264)
            .context("libavcodec has no H.264 decoder")?;
        let mut context = ff::codec::context::Context::new_with_codec(codec);
        // No reordering delay and no frame threads: each access unit's picture comes out of
        // the call that sent it.
        context.set_flags(ff::codec::Flags::LOW_DELAY);
        context.set_threading(ff::codec::threading::Config {
            kind: ff::codec::threading::Type::Slice,
            count: 1,
            ..Default::default()
        });
        let decoder = context
            .decoder()
            .video()
            .context("cannot open the H.264 decoder")?;
        // A few seconds of access units; more means the decoder has stalled, and units are
        // dropped by the viewer rather than stalling its worker.
        let (input, units) = mpsc::sync_channel::<Unit>(120);
        let log = Arc::new(Mutex::new(DecodeLog::default()));
        let tid = Arc::new(AtomicI32::new(0));
        let (thread_log, thread_tid) = (Arc::clone(&log), Arc::clone(&tid));
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                // SAFETY: gettid takes no arguments and cannot fail.
                thread_tid.store(unsafe { libc::gettid() }, Ordering::Relaxed);
                decode(decoder, &units, &thread_log);
            })
            .context("cannot start a decoding thread")?;
        Ok(Decoder { input, log, tid })
    }

    /// `self/task/TID`, the decoding thread's entry under `/proc`, once it runs.
    pub fn proc_path(&self) -> Option<String> {
        let tid = self.tid.load(Ordering::Relaxed);
        (tid > 0).then(|| format!("self/task/{tid}"))
    }

    /// When the first picture came out, if one did.
    pub fn first_picture(&self) -> Option<Instant> {
        self.log
            .lock()
            .ok()
            .and_then(|l| l.pictures.first().map(|d| d.at))
    }
}

/// The decoding loop: one access unit in, its picture out, its stamp read.
fn decode(mut decoder: ff::decoder::Video, units: &Receiver<Unit>, log: &Mutex<DecodeLog>) {
    let mut picture = ff::frame::Video::empty();
    for unit in units {
        let packet = ff::Packet::copy(&unit.data);
        if decoder.send_packet(&packet).is_err() {
            if let Ok(mut log) = log.lock() {
                log.errors += 1;
            }
            continue;
        }
        // With low delay there is at most one picture an access unit; the bound guards
        // against a decoder that would hand out more.
        for _ in 0..4 {
            if decoder.receive_frame(&mut picture).is_err() {
                break;
            }
            let at = Instant::now();
            let wall_us = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64);
            let (width, height) = (picture.width() as usize, picture.height() as usize);
            let stamp = Stamp::read_luma(picture.data(0), width, height, picture.stride(0));
            // A poisoned lock means the bench is panicking anyway.
            let Ok(mut log) = log.lock() else {
                return;
            };
            match stamp {
                Some(stamp) => log.pictures.push(Decoded {
                    at,
                    latency_us: wall_us - stamp.wall_us as i64,
                    decode_us: at.saturating_duration_since(unit.arrived).as_micros() as u64,
                    counter: stamp.counter,
                }),
                None => log.unreadable += 1,
            }
        }
    }
}
