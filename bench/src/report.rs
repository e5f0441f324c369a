//! The figures of one run, the markdown table and the SVG plot.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Everything one run measured. Times are in milliseconds, CPU in % of one core.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunResult {
    /// Which of the point's `--repeat` runs this is, from 1.
    #[serde(default)]
    pub run: usize,
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
    /// Viewers (watchers included) whose offer the server refused with 503, shedding load past
    /// its capacity. Not failures: the run measures the viewers it admitted.
    #[serde(default)]
    pub refused: usize,
    /// Viewers that failed: an offer that failed for another reason than 503, or an admitted
    /// viewer (watchers included) not playing, or whose session had died, by the window's end.
    #[serde(default)]
    pub failed: usize,
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
    /// The server refused that viewer's offer with 503.
    #[serde(default)]
    pub join_refused: bool,
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

/// The machine a bench ran on, and how it was set up.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    /// `model name` of `/proc/cpuinfo`.
    pub cpu_model: Option<String>,
    /// CPUs online.
    pub cpus: usize,
    /// The load average (1, 5 and 15 minutes) as the bench began.
    pub loadavg_start: Option<[f64; 3]>,
    /// `--server-cpus` and `--load-cpus`, as given.
    pub server_cpus: Option<String>,
    pub load_cpus: Option<String>,
    /// `--serve-flag`s, in order.
    pub serve_flags: Vec<String>,
    /// Runs of each point.
    pub repeat: usize,
}

impl Machine {
    /// What this machine is, now.
    pub fn here() -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines().find_map(|line| {
                    let (key, value) = line.split_once(':')?;
                    (key.trim() == "model name").then(|| value.trim().to_string())
                })
            });
        // SAFETY: sysconf only reads a constant.
        let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        let loadavg_start = std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| {
            let v: Vec<f64> = l
                .split_whitespace()
                .take(3)
                .filter_map(|f| f.parse().ok())
                .collect();
            Some([*v.first()?, *v.get(1)?, *v.get(2)?])
        });
        Machine {
            cpu_model,
            cpus: usize::try_from(online).unwrap_or(0),
            loadavg_start,
            ..Machine::default()
        }
    }

    /// One line for the report, before the table.
    pub fn line(&self) -> String {
        let mut line = format!(
            "Machine: {}, {} CPUs, load average {} at start",
            self.cpu_model.as_deref().unwrap_or("unknown CPU"),
            self.cpus,
            self.loadavg_start
                .map_or("–".into(), |[a, b, c]| format!("{a:.2} {b:.2} {c:.2}")),
        );
        if let Some(cpus) = &self.server_cpus {
            let _ = write!(line, "; server on CPUs {cpus}");
        }
        if let Some(cpus) = &self.load_cpus {
            let _ = write!(line, "; bench on CPUs {cpus}");
        }
        if !self.serve_flags.is_empty() {
            let _ = write!(line, "; `rtcgear serve {}`", self.serve_flags.join(" "));
        }
        if self.repeat > 1 {
            let _ = write!(line, "; {} runs of each point", self.repeat);
        }
        line.push('.');
        line
    }
}

/// A figure over a point's runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub min: f64,
    /// The middle run's, or the mean of the two middle ones.
    pub median: f64,
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            min: v[0],
            median,
            max: v[n - 1],
        })
    }

    /// `min / median / max`, or the one figure when they are equal as shown.
    fn show(spread: Option<Spread>, decimals: usize) -> String {
        let Some(s) = spread else {
            return "–".into();
        };
        let [min, median, max] = [s.min, s.median, s.max].map(|v| format!("{v:.decimals$}"));
        if min == max {
            min
        } else {
            format!("{min} / {median} / {max}")
        }
    }
}

/// One (size, viewers) point over its runs: each figure's min, median and max.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Point {
    pub width: u32,
    pub height: u32,
    pub viewers: usize,
    pub storm: bool,
    pub watchers: usize,
    /// Runs asked for, runs that measured, and runs that measured with no failed viewer.
    pub runs: usize,
    pub measured: usize,
    pub clean: usize,
    /// Why the runs that did not measure failed.
    pub errors: Vec<String>,
    pub refused: Option<Spread>,
    /// Viewers admitted (answered).
    pub accepted: Option<Spread>,
    pub fps_min: Option<Spread>,
    pub fps_median: Option<Spread>,
    pub latency_p50_ms: Option<Spread>,
    pub latency_p95_ms: Option<Spread>,
    pub server_cpu_pct: Option<Spread>,
    pub server_rss_mib: Option<Spread>,
    pub load_cpu_pct: Option<Spread>,
}

/// The point a run belongs to: its size, viewers, whether a join storm, and its watchers.
pub type Key = ((u32, u32), usize, bool, usize);

/// The point run `r` belongs to.
pub fn key(r: &RunResult) -> Key {
    ((r.width, r.height), r.viewers, r.storm, r.watchers)
}

impl Point {
    /// Point `k`, `runs` runs of it asked for, from those of `results` that measured and the
    /// `errors` of those that did not.
    pub fn of(k: Key, runs: usize, results: &[RunResult], errors: Vec<String>) -> Point {
        let ((width, height), viewers, storm, watchers) = k;
        let mine: Vec<&RunResult> = results.iter().filter(|r| key(r) == k).collect();
        let spread =
            |f: &dyn Fn(&RunResult) -> Option<f64>| Spread::of(mine.iter().filter_map(|r| f(r)));
        Point {
            width,
            height,
            viewers,
            storm,
            watchers,
            runs,
            measured: mine.len(),
            clean: mine.iter().filter(|r| r.failed == 0).count(),
            errors,
            refused: spread(&|r| Some(r.refused as f64)),
            accepted: spread(&|r| Some(r.accepted as f64)),
            fps_min: spread(&|r| Some(r.fps_min)),
            fps_median: spread(&|r| Some(r.fps_median)),
            latency_p50_ms: spread(&|r| r.latency_p50_ms),
            latency_p95_ms: spread(&|r| r.latency_p95_ms),
            server_cpu_pct: spread(&|r| Some(r.server_cpu_pct)),
            server_rss_mib: spread(&|r| Some(r.server_rss_mib)),
            load_cpu_pct: spread(&|r| Some(r.load_cpu_pct)),
        }
    }

    fn median(spread: Option<Spread>) -> Option<f64> {
        spread.map(|s| s.median)
    }
}

fn viewers_cell(viewers: usize, storm: bool, watchers: usize) -> String {
    if storm && watchers > 0 {
        format!("{viewers} (storm, {watchers} watching)")
    } else if storm {
        format!("{viewers} (storm)")
    } else {
        viewers.to_string()
    }
}

/// The runs as a markdown table. A `run` column when a point ran more than once, `refused`
/// and `failed` columns when any run had some.
pub fn table(runs: &[RunResult]) -> String {
    let show_run = runs.iter().any(|r| r.run > 1);
    let show_refused = runs.iter().any(|r| r.refused > 0);
    let show_failed = runs.iter().any(|r| r.failed > 0);
    let mut out = String::new();
    let mut head = String::from("| size | viewers |");
    let mut rule = String::from("| --- | ---: |");
    for (shown, name) in [
        (show_run, " run |"),
        (show_refused, " refused (503) |"),
        (show_failed, " failed |"),
    ] {
        if shown {
            head.push_str(name);
            rule.push_str(" ---: |");
        }
    }
    out.push_str(&head);
    out.push_str(
        " playing | fps min / median | RTP loss % | stamp gaps (sample) \
         | latency p50 / p95 / max (ms) | offer→frame p50 / p95 / max (ms, all) \
         | offer→picture p50 / p95 (ms, sample) | join while watching: picture / frame (ms) \
         | all playing (ms) | server CPU % | server RSS MiB | load CPU % (per viewer) \
         | decoders CPU % | load avg |\n",
    );
    out.push_str(&rule);
    out.push_str(
        " ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: \
         | ---: | ---: | ---: | ---: |\n",
    );
    for r in runs {
        let _ = write!(
            out,
            "| {}x{} | {} |",
            r.width,
            r.height,
            viewers_cell(r.viewers, r.storm, r.watchers)
        );
        for (shown, value) in [
            (show_run, r.run),
            (show_refused, r.refused),
            (show_failed, r.failed),
        ] {
            if shown {
                let _ = write!(out, " {value} |");
            }
        }
        let _ = writeln!(
            out,
            " {}/{} | {:.1} / {:.1} | {:.3} | {} of {} | {} / {} / {} \
             | {} / {} / {} | {} / {} | {} / {} | {} | {:.1} | {:.1} | {:.1} ({:.3}) | {:.1} \
             | {} |",
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
            if r.join_refused {
                "503".into()
            } else {
                ms(r.join_first_picture_ms)
            },
            if r.join_refused {
                "503".into()
            } else {
                ms(r.join_first_frame_ms)
            },
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

/// The points as a markdown table: each figure as min / median / max over the point's runs
/// (one figure when they agree), and how many runs had no failed viewer. A `refused` column
/// when any run had some.
pub fn summary(points: &[Point]) -> String {
    let show_refused = points
        .iter()
        .any(|p| p.refused.is_some_and(|s| s.max > 0.0));
    let mut out = String::new();
    out.push_str("| size | viewers | clean runs |");
    if show_refused {
        out.push_str(" refused (503) |");
    }
    out.push_str(
        " fps min | fps median | latency p50 (ms) | latency p95 (ms) | server CPU % \
         | server RSS MiB |\n| --- | ---: | ---: |",
    );
    if show_refused {
        out.push_str(" ---: |");
    }
    out.push_str(" ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for p in points {
        let _ = write!(
            out,
            "| {}x{} | {} | {} of {} |",
            p.width,
            p.height,
            viewers_cell(p.viewers, p.storm, p.watchers),
            p.clean,
            p.runs
        );
        if show_refused {
            let _ = write!(out, " {} |", Spread::show(p.refused, 0));
        }
        let _ = writeln!(
            out,
            " {} | {} | {} | {} | {} | {} |",
            Spread::show(p.fps_min, 1),
            Spread::show(p.fps_median, 1),
            Spread::show(p.latency_p50_ms, 0),
            Spread::show(p.latency_p95_ms, 0),
            Spread::show(p.server_cpu_pct, 1),
            Spread::show(p.server_rss_mib, 1),
        );
    }
    out
}

/// Server CPU and RSS per extra viewer, from the slope between the smallest and largest point
/// of each size (medians over their runs; join storms left out).
pub fn per_viewer(points: &[Point]) -> String {
    let mut out = String::new();
    let mut sizes: Vec<(u32, u32)> = points.iter().map(|p| (p.width, p.height)).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for (w, h) in sizes {
        let of_size: Vec<&Point> = points
            .iter()
            .filter(|p| !p.storm && p.measured > 0 && (p.width, p.height) == (w, h))
            .collect();
        let (Some(low), Some(high)) = (
            of_size.iter().min_by_key(|p| p.viewers),
            of_size.iter().max_by_key(|p| p.viewers),
        ) else {
            continue;
        };
        // Per viewer admitted: with refusals, fewer than asked for.
        let admitted = |p: &Point| Point::median(p.accepted).unwrap_or(p.viewers as f64);
        let extra = admitted(high) - admitted(low);
        if high.viewers <= low.viewers || extra <= 0.0 {
            continue;
        }
        let slope = |f: fn(&Point) -> Option<Spread>| {
            Point::median(f(high)).unwrap_or(0.0) - Point::median(f(low)).unwrap_or(0.0)
        };
        let medians = if low.runs > 1 || high.runs > 1 {
            " (medians of the runs)"
        } else {
            ""
        };
        let refused = if admitted(high) < high.viewers as f64 || admitted(low) < low.viewers as f64
        {
            format!(", {} → {} admitted", admitted(low), admitted(high))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "- {w}x{h}, {} → {} viewers{refused}{medians}: server CPU {:.3} % of a core and RSS \
             {:.0} KiB per extra viewer; the load client {:.3} % of a core per extra viewer",
            low.viewers,
            high.viewers,
            slope(|p| p.server_cpu_pct) / extra,
            slope(|p| p.server_rss_mib) * 1024.0 / extra,
            slope(|p| p.load_cpu_pct) / extra,
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

/// Three panels against the number of viewers (log scale): delivered fps, server CPU, latency;
/// each point's median over its runs.
pub fn svg(points: &[Point]) -> String {
    let mut sizes: Vec<(u32, u32)> = points.iter().map(|p| (p.width, p.height)).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut panels: [(&str, Vec<Series>); 3] = [
        ("delivered fps (solid: median, dashed: min)", Vec::new()),
        ("server CPU, % of one core", Vec::new()),
        ("latency ms (solid: p50, dashed: p95)", Vec::new()),
    ];
    for (i, (w, h)) in sizes.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let of_size: Vec<&Point> = points
            .iter()
            .filter(|p| !p.storm && (p.width, p.height) == (*w, *h))
            .collect();
        let line = |f: fn(&Point) -> Option<Spread>, dashed: bool| Series {
            label: format!("{w}x{h}"),
            colour,
            dashed,
            points: of_size
                .iter()
                .filter_map(|p| Point::median(f(p)).map(|y| (p.viewers as f64, y)))
                .collect(),
        };
        panels[0].1.push(line(|p| p.fps_median, false));
        panels[0].1.push(line(|p| p.fps_min, true));
        panels[1].1.push(line(|p| p.server_cpu_pct, false));
        panels[2].1.push(line(|p| p.latency_p50_ms, false));
        panels[2].1.push(line(|p| p.latency_p95_ms, true));
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
            accepted: viewers,
            server_cpu_pct: cpu,
            fps_median: 30.0,
            latency_p50_ms: Some(20.0),
            ..RunResult::default()
        };
        let runs = [run(1, 2.0), run(101, 12.0)];
        let table = table(&runs);
        assert_eq!(table.lines().count(), 4);
        assert!(!table.contains("refused") && !table.contains("| run |"));
        let points: Vec<Point> = [1, 101]
            .map(|n| Point::of(((640, 480), n, false, 0), 1, &runs, Vec::new()))
            .into();
        assert!(per_viewer(&points).contains("0.100 %"));
        // Half the larger point's viewers refused: per viewer admitted.
        let mut refused = runs.clone();
        refused[1].accepted = 51;
        refused[1].refused = 50;
        let points: Vec<Point> = [1, 101]
            .map(|n| Point::of(((640, 480), n, false, 0), 1, &refused, Vec::new()))
            .into();
        let line = per_viewer(&points);
        assert!(
            line.contains("0.200 %") && line.contains("1 → 51 admitted"),
            "{line}"
        );
        let svg = svg(&points);
        assert!(svg.starts_with("<svg") && svg.contains("polyline"));
    }

    #[test]
    fn repeated_runs_are_summed_up_by_min_median_max() {
        let run = |run, cpu, refused, failed| RunResult {
            run,
            width: 640,
            height: 480,
            viewers: 20,
            server_cpu_pct: cpu,
            refused,
            failed,
            latency_p50_ms: (run != 2).then_some(10.0 * run as f64),
            ..RunResult::default()
        };
        let runs = [run(1, 4.0, 0, 0), run(2, 8.0, 3, 0), run(3, 5.0, 0, 1)];
        let table = table(&runs);
        assert!(
            table.contains("| run | refused (503) | failed |"),
            "{table}"
        );
        assert!(table.contains("| 640x480 | 20 | 2 | 3 | 0 |"), "{table}");
        let point = Point::of(((640, 480), 20, false, 0), 4, &runs, vec!["gone".into()]);
        assert_eq!((point.runs, point.measured, point.clean), (4, 3, 2));
        assert_eq!(
            point.server_cpu_pct,
            Some(Spread {
                min: 4.0,
                median: 5.0,
                max: 8.0
            })
        );
        // Only the runs that measured it; two: the mean of the middle.
        assert_eq!(point.latency_p50_ms.map(|s| s.median), Some(20.0));
        let summary = summary(&[point]);
        assert!(summary.contains("| 2 of 4 | 0 / 0 / 3 |"), "{summary}");
        assert!(summary.contains("| 4.0 / 5.0 / 8.0 |"), "{summary}");
        assert_eq!(Spread::of([]), None);
        assert_eq!(Spread::show(Spread::of([29.91, 29.94]), 1), "29.9");
    }
}
