//! The browser-latency bench: headless Chromium plays the real page of `rtcgear serve`, and
//! every frame it presents is timed against the capture time in the frame's own stamp.
//!
//! Chromium by default, or Firefox (`--browser firefox`), which plays VP8. For each presented
//! frame (`requestVideoFrameCallback`) the page's video is drawn to a canvas
//! and the stamp read (`window.rtcgearStamp`, the page's own reader); the frame's latency is its
//! expected display time (the callback's `expectedDisplayTime`, on the page's wall clock) less
//! the capture time in the stamp. The callback's `receiveTime` (when the frame's last packet
//! arrived) splits that into the server and network's share and the browser's. Chromium's own
//! `getStats` over the same window adds its jitter buffer, decode time and dropped frames.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rtcgear_test_support::firefox::FirefoxLaunch;
use rtcgear_test_support::webdriver::{Browser, Launch};
use serde::Serialize;
use serde_json::Value;

use crate::report::percentile;
use crate::server::Server;
use crate::viewer::{Load, Schedule};

/// The browser that plays the page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BrowserKind {
    /// Debian's chromium under chromedriver (H.264).
    #[default]
    Chromium,
    /// Debian's firefox-esr under geckodriver (VP8: it has no H.264 as Debian ships it).
    Firefox,
}

/// What one window of one browser measured.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyRun {
    pub browser: BrowserKind,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Bench viewers watching beside the browser.
    pub others: usize,
    pub window_s: f64,
    /// Frames presented a second.
    pub presented_fps: f64,
    /// Presented frames whose stamp was read, and frames the stamp counters skipped.
    pub stamped: usize,
    pub skipped: u64,
    /// Capture to expected display, ms.
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
    /// Capture to the frame's last packet received, ms (p50).
    pub to_receive_p50_ms: Option<f64>,
    /// The frame's last packet to its display, ms (p50).
    pub receive_to_display_p50_ms: Option<f64>,
    /// Chromium's figures over the window: jitter buffer delay and decode time per frame,
    /// frames dropped, freezes.
    pub jitter_buffer_ms: Option<f64>,
    pub decode_ms: Option<f64>,
    pub processing_ms: Option<f64>,
    pub frames_dropped: Option<f64>,
    pub freezes: Option<f64>,
}

/// Records every presented frame for `seconds`, with `getStats` before and after; run in the
/// page once it plays. Answers `{rows, before, after}`: a row is `[expected display (ms, wall
/// clock), receive time (ms, wall clock, or null), stamp wall time (ms, or null), stamp
/// counter (or null)]`.
const RECORD: &str = r#"
const done = arguments[arguments.length - 1];
const seconds = arguments[0];
const video = document.getElementById('video');
const canvas = document.createElement('canvas');
const ctx = canvas.getContext('2d', { willReadFrequently: true });
const rows = [];
const inbound = async () => {
  const stats = await window.rtcgear.pc.getStats();
  let found = null;
  stats.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') found = s; });
  return found;
};
const origin = performance.timeOrigin;
inbound().then(before => {
  const end = performance.now() + seconds * 1000;
  const onFrame = (now, meta) => {
    const w = video.videoWidth, h = video.videoHeight;
    let stamp = null;
    if (w && h) {
      const r = Math.min(h, Math.ceil((4 * w) / 32));
      if (canvas.width !== w || canvas.height !== r) { canvas.width = w; canvas.height = r; }
      ctx.drawImage(video, 0, 0, w, r, 0, 0, w, r);
      stamp = window.rtcgearStamp.read(ctx.getImageData(0, 0, w, r));
    }
    rows.push([
      origin + meta.expectedDisplayTime,
      meta.receiveTime === undefined ? null : origin + meta.receiveTime,
      stamp ? stamp.wallUs / 1000 : null,
      stamp ? stamp.counter : null,
    ]);
    if (performance.now() < end) video.requestVideoFrameCallback(onFrame);
    else inbound().then(after => done({ rows, before, after }), e => done({ error: String(e) }));
  };
  video.requestVideoFrameCallback(onFrame);
}, e => done({ error: String(e) }));
"#;

const PLAYING: &str = "return !!window.rtcgear && window.rtcgear.state === 'connected' \
    && window.rtcgear.stats.framesDecoded > 0 && document.getElementById('video').videoWidth > 0";

/// Measures one browser playing `server`'s page, with `others` bench viewers watching too.
pub fn measure(
    (browser_kind, chromium_flags): (BrowserKind, &[String]),
    server: &Server,
    size: (u32, u32),
    fps: u32,
    others: usize,
    seconds: f64,
    threads: usize,
) -> Result<LatencyRun> {
    let mut load = Load::new(
        threads,
        format!("{}/whep", server.base_url),
        Duration::from_secs_f64(120.0 + seconds + others as f64 * 0.2),
    );
    if others > 0 {
        eprintln!("  {others} bench viewers start watching");
        let prepared = (0..others)
            .map(|id| crate::viewer::prepare(id, None))
            .collect::<Result<Vec<_>>>()?;
        let schedule = Schedule {
            concurrency: 4,
            spread: None,
        };
        load.add_viewers(prepared, schedule, true);
        crate::wait_playing(&load, &(0..others), Duration::from_secs(60));
    }
    let limit = Duration::from_secs_f64(seconds + 60.0);
    let browser = match browser_kind {
        BrowserKind::Chromium => {
            let launch = chromium_flags
                .iter()
                .fold(Launch::from_path().timeout(limit), |launch, flag| {
                    launch.flag(flag)
                });
            Browser::launch(launch)
        }
        BrowserKind::Firefox => Browser::launch_firefox(FirefoxLaunch::find().timeout(limit)),
    }
    .map_err(|e| anyhow::anyhow!("{browser_kind:?}: {e}"))?;
    browser
        .try_goto(&format!("{}/", server.base_url))
        .map_err(|e| anyhow::anyhow!("loading the page: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let playing = browser.try_eval(PLAYING).ok();
        if playing == Some(Value::Bool(true)) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the page did not play within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Warm-up: the jitter buffer settles, the encoder's first keyframes pass.
    std::thread::sleep(Duration::from_secs(2));
    let answer = browser
        .command(
            "POST",
            "/execute/async",
            serde_json::json!({ "script": RECORD, "args": [seconds] }),
        )
        .map_err(|e| anyhow::anyhow!("recording in the page: {e}"))?;
    let answer = answer.get("value").cloned().unwrap_or(answer);
    if let Some(error) = answer.get("error") {
        bail!("the page's recorder failed: {error}");
    }
    let mut run = summarize(&answer, size, fps, others, seconds)?;
    run.browser = browser_kind;
    load.stop();
    Ok(run)
}

/// Figures from the recorder's answer.
fn summarize(
    answer: &Value,
    (width, height): (u32, u32),
    fps: u32,
    others: usize,
    seconds: f64,
) -> Result<LatencyRun> {
    let rows = answer["rows"].as_array().context("no rows recorded")?;
    let field = |row: &Value, i: usize| row.get(i).and_then(Value::as_f64);
    let mut latency = Vec::new();
    let mut to_receive = Vec::new();
    let mut receive_to_display = Vec::new();
    let mut skipped = 0u64;
    let mut last_counter: Option<f64> = None;
    for row in rows {
        let (Some(display), Some(stamp)) = (field(row, 0), field(row, 2)) else {
            continue;
        };
        latency.push(display - stamp);
        if let Some(received) = field(row, 1) {
            to_receive.push(received - stamp);
            receive_to_display.push(display - received);
        }
        if let Some(counter) = field(row, 3) {
            if let Some(last) = last_counter {
                let gap = counter - last - 1.0;
                if (1.0..1000.0).contains(&gap) {
                    skipped += gap as u64;
                }
            }
            last_counter = Some(counter);
        }
    }
    if latency.is_empty() {
        bail!("no presented frame had a readable stamp");
    }
    let stamped = latency.len();
    let span = match (
        rows.first().and_then(|r| field(r, 0)),
        rows.last().and_then(|r| field(r, 0)),
    ) {
        (Some(first), Some(last)) if last > first => (last - first) / 1000.0,
        _ => seconds,
    };
    let (before, after) = (&answer["before"], &answer["after"]);
    let delta = |key: &str| -> Option<f64> { Some(after[key].as_f64()? - before[key].as_f64()?) };
    let per_frame = |total: &str, count: &str| -> Option<f64> {
        let count = delta(count)?;
        (count > 0.0).then(|| delta(total).unwrap_or(0.0) * 1000.0 / count)
    };
    Ok(LatencyRun {
        browser: BrowserKind::Chromium,
        width,
        height,
        fps,
        others,
        window_s: span,
        presented_fps: (rows.len().saturating_sub(1)) as f64 / span,
        stamped,
        skipped,
        p50_ms: percentile(&mut latency, 50.0).unwrap_or(f64::NAN),
        p95_ms: percentile(&mut latency, 95.0).unwrap_or(f64::NAN),
        max_ms: percentile(&mut latency, 100.0).unwrap_or(f64::NAN),
        to_receive_p50_ms: percentile(&mut to_receive, 50.0),
        receive_to_display_p50_ms: percentile(&mut receive_to_display, 50.0),
        jitter_buffer_ms: per_frame("jitterBufferDelay", "jitterBufferEmittedCount"),
        decode_ms: per_frame("totalDecodeTime", "framesDecoded"),
        processing_ms: per_frame("totalProcessingDelay", "framesDecoded"),
        frames_dropped: delta("framesDropped"),
        freezes: delta("freezeCount"),
    })
}

/// The runs as a Markdown table.
pub fn table(runs: &[LatencyRun]) -> String {
    let ms = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.1}"));
    let count = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.0}"));
    let mut out = String::from(
        "| browser | size | bench viewers beside | presented fps | latency p50 / p95 / max (ms) | \
         capture→received p50 (ms) | received→display p50 (ms) | jitter buffer (ms/frame) | \
         decode (ms/frame) | processing (ms/frame) | dropped | freezes | stamps skipped |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for run in runs {
        out.push_str(&format!(
            "| {:?} | {}x{} | {} | {:.1} | {:.0} / {:.0} / {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            run.browser,
            run.width,
            run.height,
            run.others,
            run.presented_fps,
            run.p50_ms,
            run.p95_ms,
            run.max_ms,
            ms(run.to_receive_p50_ms),
            ms(run.receive_to_display_p50_ms),
            ms(run.jitter_buffer_ms),
            ms(run.decode_ms),
            ms(run.processing_ms),
            count(run.frames_dropped),
            count(run.freezes),
            run.skipped,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_come_from_the_rows_and_the_stats_deltas() {
        let rows: Vec<Value> = (0..31)
            .map(|i| {
                let display = 1_000_000.0 + f64::from(i) * 33.3;
                serde_json::json!([display, display - 10.0, display - 30.0, i])
            })
            .collect();
        let answer = serde_json::json!({
            "rows": rows,
            "before": { "jitterBufferDelay": 1.0, "jitterBufferEmittedCount": 100,
                        "totalDecodeTime": 0.5, "framesDecoded": 100, "framesDropped": 2 },
            "after": { "jitterBufferDelay": 1.3, "jitterBufferEmittedCount": 130,
                       "totalDecodeTime": 0.56, "framesDecoded": 130, "framesDropped": 2 },
        });
        let run = summarize(&answer, (640, 480), 30, 0, 1.0).expect("figures");
        assert!((run.p50_ms - 30.0).abs() < 1e-6);
        assert_eq!(run.to_receive_p50_ms, Some(20.0));
        assert_eq!(run.receive_to_display_p50_ms, Some(10.0));
        assert!(
            (run.presented_fps - 30.03).abs() < 0.1,
            "{}",
            run.presented_fps
        );
        assert!((run.jitter_buffer_ms.unwrap() - 10.0).abs() < 1e-6);
        assert!((run.decode_ms.unwrap() - 2.0).abs() < 1e-6);
        assert_eq!(run.frames_dropped, Some(0.0));
        assert_eq!(run.skipped, 0);
        assert!(table(&[run]).contains("| Chromium | 640x480 | 0 | 30.0 | 30 / 30 / 30 |"));
    }
}
