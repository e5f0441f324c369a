//! Decoding a sampled viewer's video with the `ffmpeg` CLI and reading the stamp of each picture.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use rtcgear_capture::Stamp;

/// One decoded picture.
#[derive(Clone, Copy, Debug)]
pub struct Decoded {
    pub at: Instant,
    /// Wall clock at decode minus the stamp's capture time, in microseconds.
    pub latency_us: i64,
    pub counter: u32,
}

/// What a decoder has seen so far.
#[derive(Default, Debug)]
pub struct DecodeLog {
    pub pictures: Vec<Decoded>,
    /// Pictures whose stamp did not read (damaged or missing).
    pub unreadable: u64,
    /// When each access unit was handed to ffmpeg; with one picture an access unit, picture
    /// `k` minus write `k` is the time spent in the decoding pipe.
    pub written: Vec<Instant>,
}

impl DecodeLog {
    /// Time from writing each access unit to ffmpeg to reading its picture, in milliseconds.
    pub fn pipe_delays_ms(&self) -> Vec<f64> {
        if self.pictures.len() + self.unreadable as usize > self.written.len() {
            return Vec::new();
        }
        self.pictures
            .iter()
            .zip(&self.written)
            .map(|(p, w)| p.at.saturating_duration_since(*w).as_secs_f64() * 1000.0)
            .collect()
    }
}

/// An `ffmpeg` child decoding one viewer's Annex B stream to grey pictures.
pub struct Decoder {
    child: Child,
    pub input: SyncSender<Vec<u8>>,
    pub log: Arc<Mutex<DecodeLog>>,
}

impl Decoder {
    /// Starts `ffmpeg` for pictures of `width` x `height`. Start it before the offer, so that
    /// its start-up does not count in the time to the first picture.
    pub fn start(width: usize, height: usize) -> Result<Decoder> {
        let mut child = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostats", "-loglevel", "error"])
            // One thread and low delay: a picture comes out as soon as its access unit is in.
            .args([
                "-threads",
                "1",
                "-flags",
                "low_delay",
                "-fflags",
                "nobuffer",
            ])
            .args(["-probesize", "32", "-analyzeduration", "0"])
            .args(["-f", "h264", "-i", "pipe:0"])
            .args([
                "-fps_mode",
                "passthrough",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "gray",
            ])
            .args(["-flush_packets", "1"])
            .arg("pipe:1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start ffmpeg (the bench decodes a sample of viewers with it)")?;
        let mut stdin = child.stdin.take().context("stdin is piped")?;
        let mut stdout = child.stdout.take().context("stdout is piped")?;
        // A few seconds of access units; more means ffmpeg has stalled, and frames are dropped.
        let (input, units) = mpsc::sync_channel::<Vec<u8>>(120);
        let log = Arc::new(Mutex::new(DecodeLog::default()));
        let writer_log = Arc::clone(&log);
        std::thread::spawn(move || {
            for unit in units {
                if let Ok(mut log) = writer_log.lock() {
                    log.written.push(Instant::now());
                }
                if stdin.write_all(&unit).and_then(|_| stdin.flush()).is_err() {
                    break;
                }
            }
        });
        let reader_log = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut picture = vec![0u8; width * height];
            while stdout.read_exact(&mut picture).is_ok() {
                let at = Instant::now();
                let wall_us = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as i64);
                let stamp = Stamp::read_luma(&picture, width, height, width);
                // A poisoned lock means the bench is panicking anyway.
                let Ok(mut log) = reader_log.lock() else {
                    break;
                };
                match stamp {
                    Some(stamp) => log.pictures.push(Decoded {
                        at,
                        latency_us: wall_us - stamp.wall_us as i64,
                        counter: stamp.counter,
                    }),
                    None => log.unreadable += 1,
                }
            }
        });
        Ok(Decoder { child, input, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// When the first picture came out, if one did.
    pub fn first_picture(&self) -> Option<Instant> {
        self.log
            .lock()
            .ok()
            .and_then(|l| l.pictures.first().map(|d| d.at))
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
