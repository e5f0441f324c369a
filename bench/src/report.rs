//! The figures of one run, the markdown table and the SVG plot.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Everything one run measured. Times are in milliseconds, CPU in % of one core.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunResult {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Viewers asked for.
    pub viewers: usize,
    /// Whether the viewers offered within one second (a join storm) rather than a few at a time.
    pub storm: bool,
    /// Viewers already watching when a join storm began (not counted in `viewers`).
    #[serde(default)]
    pub watchers: usize,
    /// Viewers whose offer the server answered.
    pub accepted: usize,
    /// Of the measured viewers, those that received at least one complete frame.
    pub playing: usize,
    /// Length of the measuring window, in seconds.
    pub window_s: f64,
    /// Delivered frames a second (marker bits), over every viewer (watchers included).
    pub fps_min: f64,
    pub fps_median: f64,
    /// RTP packets missing from the sequence numbers, % of those sent, over every viewer.
    pub rtp_loss_pct: f64,
    /// Decoded pictures of the sample in the window, and gaps in their stamp counters.
    pub sample_pictures: u64,
    pub sample_missing: u64,
    pub sample_unreadable: u64,
    /// Access units libavcodec could not decode.
    #[serde(default)]
    pub sample_decode_errors: u64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    /// Of the latency, the median time from an access unit's last packet to its decoded
    /// picture (JSON only, not in the table).
    #[serde(default)]
    pub decode_p50_ms: Option<f64>,
    /// From the first offer's POST to the last one's.
    #[serde(default)]
    pub offers_span_ms: Option<f64>,
    /// POST to answer, every offer.
    #[serde(default)]
    pub answer_p50_ms: Option<f64>,
    #[serde(default)]
    pub answer_p95_ms: Option<f64>,
    /// Offer to first complete frame (packet level: its last packet, at or after an IDR),
    /// every measured viewer.
    pub first_frame_p50_ms: Option<f64>,
    pub first_frame_p95_ms: Option<f64>,
    #[serde(default)]
    pub first_frame_max_ms: Option<f64>,
    /// Offer to first decoded picture, the sample.
    pub first_picture_p50_ms: Option<f64>,
    pub first_picture_p95_ms: Option<f64>,
    /// Offer to first decoded picture for one more viewer joining while the others watch.
    pub join_first_picture_ms: Option<f64>,
    /// The same viewer's first complete frame (packet level).
    pub join_first_frame_ms: Option<f64>,
    /// From the first offer until every measured viewer had a frame (all answered).
    pub all_playing_ms: Option<f64>,
    pub server_cpu_pct: f64,
    pub server_rss_mib: f64,
    /// The bench process without its decoding threads (every viewer's str0m, the sockets),
    /// in total and per viewer, and the sample's decoding threads.
    pub load_cpu_pct: f64,
    #[serde(default)]
    pub load_cpu_per_viewer_pct: f64,
    pub decoders_cpu_pct: f64,
    /// The machine's load average (1 minute) as the run began.
    #[serde(default)]
    pub loadavg_1m: Option<f64>,
    /// Datagrams dropped by full UDP receive buffers on the machine during the window (the
    /// viewers' and the server's sockets): non-zero means RTP loss may be the load client's.
    #[serde(default)]
    pub udp_receive_drops: Option<u64>,
}

/// Nearest-rank percentile of `values` (sorted here), or `None` when empty.
pub fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

fn ms(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{v:.0}"))
}

/// The runs as a markdown table.
pub fn table(runs: &[RunResult]) -> String {
    let mut out = String::new();
    out.push_str(
        "| size | viewers | playing | fps min / median | RTP loss % | stamp gaps (sample) \
         | latency p50 / p95 / max (ms) | offer→frame p50 / p95 / max (ms, all) \
         | offer→picture p50 / p95 (ms, sample) | join while watching: picture / frame (ms) \
         | all playing (ms) | server CPU % | server RSS MiB | load CPU % (per viewer) \
         | decoders CPU % | load avg |\n",
    );
    out.push_str(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: \
         | ---: | ---: | ---: | ---: |\n",
    );
    for r in runs {
        let viewers = if r.storm && r.watchers > 0 {
            format!("{} (storm, {} watching)", r.viewers, r.watchers)
        } else if r.storm {
            format!("{} (storm)", r.viewers)
        } else {
            r.viewers.to_string()
        };
        let _ = writeln!(
            out,
            "| {}x{} | {} | {}/{} | {:.1} / {:.1} | {:.3} | {} of {} | {} / {} / {} \
             | {} / {} / {} | {} / {} | {} / {} | {} | {:.1} | {:.1} | {:.1} ({:.3}) | {:.1} \
             | {} |",
            r.width,
            r.height,
            viewers,
            r.playing,
            r.accepted,
            r.fps_min,
            r.fps_median,
            r.rtp_loss_pct,
            r.sample_missing,
            r.sample_pictures + r.sample_missing,
            ms(r.latency_p50_ms),
            ms(r.latency_p95_ms),
            ms(r.latency_max_ms),
            ms(r.first_frame_p50_ms),
            ms(r.first_frame_p95_ms),
            ms(r.first_frame_max_ms),
            ms(r.first_picture_p50_ms),
            ms(r.first_picture_p95_ms),
            ms(r.join_first_picture_ms),
            ms(r.join_first_frame_ms),
            ms(r.all_playing_ms),
            r.server_cpu_pct,
            r.server_rss_mib,
            r.load_cpu_pct,
            r.load_cpu_per_viewer_pct,
            r.decoders_cpu_pct,
            r.loadavg_1m.map_or("–".into(), |l| format!("{l:.1}")),
        );
    }
    out
}

/// Server CPU and RSS per extra viewer, from the slope between the smallest and largest run of
/// each size (join storms left out).
pub fn per_viewer(runs: &[RunResult]) -> String {
    let mut out = String::new();
    let mut sizes: Vec<(u32, u32)> = runs.iter().map(|r| (r.width, r.height)).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for (w, h) in sizes {
        let of_size: Vec<&RunResult> = runs
            .iter()
            .filter(|r| !r.storm && (r.width, r.height) == (w, h))
            .collect();
        let (Some(low), Some(high)) = (
            of_size.iter().min_by_key(|r| r.viewers),
            of_size.iter().max_by_key(|r| r.viewers),
        ) else {
            continue;
        };
        if high.viewers <= low.viewers {
            continue;
        }
        let extra = (high.viewers - low.viewers) as f64;
        let _ = writeln!(
            out,
            "- {w}x{h}, {} → {} viewers: server CPU {:.3} % of a core and RSS {:.0} KiB per extra \
             viewer; the load client {:.3} % of a core per extra viewer",
            low.viewers,
            high.viewers,
            (high.server_cpu_pct - low.server_cpu_pct) / extra,
            (high.server_rss_mib - low.server_rss_mib) * 1024.0 / extra,
            (high.load_cpu_pct - low.load_cpu_pct) / extra,
        );
    }
    out
}

const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

struct Series {
    label: String,
    colour: &'static str,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

/// Three panels against the number of viewers (log scale): delivered fps, server CPU, latency.
pub fn svg(runs: &[RunResult]) -> String {
    let mut sizes: Vec<(u32, u32)> = runs.iter().map(|r| (r.width, r.height)).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut panels: [(&str, Vec<Series>); 3] = [
        ("delivered fps (solid: median, dashed: min)", Vec::new()),
        ("server CPU, % of one core", Vec::new()),
        ("latency ms (solid: p50, dashed: p95)", Vec::new()),
    ];
    for (i, (w, h)) in sizes.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let of_size: Vec<&RunResult> = runs
            .iter()
            .filter(|r| !r.storm && (r.width, r.height) == (*w, *h))
            .collect();
        let line = |f: &dyn Fn(&RunResult) -> Option<f64>, dashed: bool| Series {
            label: format!("{w}x{h}"),
            colour,
            dashed,
            points: of_size
                .iter()
                .filter_map(|r| f(r).map(|y| (r.viewers as f64, y)))
                .collect(),
        };
        panels[0].1.push(line(&|r| Some(r.fps_median), false));
        panels[0].1.push(line(&|r| Some(r.fps_min), true));
        panels[1].1.push(line(&|r| Some(r.server_cpu_pct), false));
        panels[2].1.push(line(&|r| r.latency_p50_ms, false));
        panels[2].1.push(line(&|r| r.latency_p95_ms, true));
    }
    let (pw, ph) = (380.0, 280.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="11">"#,
        pw * 3.0,
        ph
    );
    out.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (n, (title, series)) in panels.iter().enumerate() {
        panel(&mut out, n as f64 * pw, pw, ph, title, series);
    }
    out.push_str("</svg>\n");
    out
}

fn panel(out: &mut String, x0: f64, pw: f64, ph: f64, title: &str, series: &[Series]) {
    let (left, right, top, bottom) = (x0 + 50.0, x0 + pw - 15.0, 30.0, ph - 40.0);
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .collect();
    let x_max = xs.iter().copied().fold(1.0, f64::max).max(2.0).log10();
    let y_max = nice(ys.iter().copied().fold(0.0, f64::max));
    let px = |x: f64| left + (x.max(1.0).log10() / x_max) * (right - left);
    let py = |y: f64| bottom - (y / y_max) * (bottom - top);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="18" text-anchor="middle" font-weight="bold">{title}</text>"#,
        (left + right) / 2.0
    );
    let _ = writeln!(
        out,
        r##"<path d="M{left},{top} V{bottom} H{right}" stroke="#444" fill="none"/>"##
    );
    for i in 0..=4 {
        let y = y_max * f64::from(i) / 4.0;
        let _ = writeln!(
            out,
            r##"<text x="{}" y="{}" text-anchor="end">{y:.0}</text><path d="M{left},{} H{right}" stroke="#ddd"/>"##,
            left - 4.0,
            py(y) + 4.0,
            py(y)
        );
    }
    let mut ticks = xs.clone();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    for x in ticks {
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">{x:.0}</text>"#,
            px(x),
            bottom + 14.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">viewers (log scale)</text>"#,
        (left + right) / 2.0,
        bottom + 30.0
    );
    let mut legend_y = top + 10.0;
    for s in series {
        if s.points.is_empty() {
            continue;
        }
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let dash = if s.dashed {
            r#" stroke-dasharray="5,3""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
            path.join(" "),
            s.colour
        );
        if !s.dashed {
            let _ = writeln!(
                out,
                r#"<text x="{}" y="{legend_y}" fill="{}" text-anchor="end">{}</text>"#,
                right - 4.0,
                s.colour,
                s.label
            );
            legend_y += 14.0;
        }
    }
}

/// A round number at or above `v` for the top of an axis.
fn nice(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let step = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * step >= v {
            return m * step;
        }
    }
    10.0 * step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 50.0), Some(50.0));
        assert_eq!(percentile(&mut v, 95.0), Some(95.0));
        assert_eq!(percentile(&mut v, 100.0), Some(100.0));
        assert_eq!(percentile(&mut [], 50.0), None);
        assert_eq!(percentile(&mut [7.0], 95.0), Some(7.0));
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice(29.7), 50.0);
        assert_eq!(nice(31.0), 50.0);
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(180.0), 200.0);
    }

    #[test]
    fn table_and_plot_cover_every_run() {
        let run = |viewers, cpu| RunResult {
            width: 640,
            height: 480,
            fps: 30,
            viewers,
            server_cpu_pct: cpu,
            fps_median: 30.0,
            latency_p50_ms: Some(20.0),
            ..RunResult::default()
        };
        let runs = [run(1, 2.0), run(101, 12.0)];
        let table = table(&runs);
        assert_eq!(table.lines().count(), 4);
        assert!(per_viewer(&runs).contains("0.100 %"));
        let svg = svg(&runs);
        assert!(svg.starts_with("<svg") && svg.contains("polyline"));
    }
}
