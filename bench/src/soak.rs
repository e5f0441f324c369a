//! The soak: viewers join and leave `rtcgear serve` continuously for a set time while the
//! server's resident memory, open file descriptors and threads are sampled; then every viewer
//! leaves, and the verdict says whether the server stayed flat.
//!
//! Half the leaving viewers end their session with WHEP's `DELETE`, half just go silent and
//! are timed out by the server (after its 15 s ICE timeout), so both ways out are covered.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::server::{rss_kib, Server};
use crate::viewer::Load;

/// What a soak run is asked to do.
#[derive(Clone, Debug)]
pub struct SoakPlan {
    /// How long viewers come and go.
    pub duration: Duration,
    /// Viewers connected at once.
    pub viewers: usize,
    /// One viewer leaves and another joins this often.
    pub churn: Duration,
    /// Samples before the end of this are the warm-up: not part of the growth figures.
    pub warm_up: Duration,
    /// The test pattern's size and rate.
    pub size: (u32, u32),
    pub fps: u32,
    /// RSS growth after warm-up allowed as noise: this much, or 10 % of the warm-up's figure,
    /// whichever is more.
    pub rss_margin_kib: u64,
    /// Open descriptors and threads allowed above the baseline once every viewer has left.
    pub slack: u64,
}

/// One sample of the server process.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub seconds: f64,
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
    /// Viewers the server counts (from `/api/streams`).
    pub viewers: u64,
}

/// The figures and the verdict.
#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub seconds: f64,
    pub joins: usize,
    pub leaves_with_delete: usize,
    pub leaves_silent: usize,
    pub refused: Vec<String>,
    /// Before any viewer.
    pub baseline: Sample,
    /// The median of the samples just after warm-up, and of the last ones under load.
    pub after_warm_up: Sample,
    pub end_of_load: Sample,
    /// Once every viewer left and the server timed out the silent ones.
    pub after_leaving: Sample,
    pub peak: Sample,
    /// Least-squares slope of RSS after warm-up, KiB per minute.
    pub rss_slope_kib_per_min: f64,
    pub samples: Vec<Sample>,
    pub flat: bool,
    pub findings: Vec<String>,
}

/// Runs the soak against `bin` and returns the report; `progress` prints a line a minute.
pub fn run(bin: &Path, plan: &SoakPlan, progress: bool) -> Result<SoakReport> {
    let server = Server::start(bin, plan.size, plan.fps, plan.viewers * 4 + 16)?;
    let pid = server.pid().to_string();
    let api = format!("{}/api/streams", server.base_url);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let started = Instant::now();
    let sample = |agent: &ureq::Agent| -> Result<Sample> {
        let viewers = agent
            .get(&api)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_json::<serde_json::Value>().ok())
            .map_or(0, |v| {
                v["streams"]
                    .as_array()
                    .map_or(0, |s| s.iter().filter_map(|s| s["viewers"].as_u64()).sum())
            });
        Ok(Sample {
            seconds: started.elapsed().as_secs_f64(),
            rss_kib: rss_kib(&pid).context("the server's RSS")?,
            fds: count_fds(&pid).context("the server's descriptors")?,
            threads: threads(&pid).context("the server's threads")?,
            viewers,
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let baseline = sample(&agent)?;

    let mut load = Load::new(
        2,
        format!("{}/whep", server.base_url),
        plan.duration + Duration::from_secs(120),
    );
    let mut active = std::collections::VecDeque::new();
    let (mut joins, mut deleted, mut silent) = (0usize, 0usize, 0usize);
    let mut samples = Vec::new();
    let sample_every = Duration::from_secs(5)
        .min(plan.duration / 6)
        .max(Duration::from_secs(1));
    let mut next_sample = Instant::now();
    let mut next_churn = Instant::now();
    let mut next_progress = Instant::now() + Duration::from_secs(60);
    let load_start = Instant::now();
    while load_start.elapsed() < plan.duration {
        let now = Instant::now();
        if now >= next_churn {
            next_churn = now + plan.churn;
            if active.len() >= plan.viewers {
                if let Some(id) = active.pop_front() {
                    // Alternate the two ways of leaving.
                    let delete = (deleted + silent) % 2 == 0;
                    load.remove_viewer(id, delete)?;
                    if delete {
                        deleted += 1;
                    } else {
                        silent += 1;
                    }
                }
            }
            // Fill up to the target (at the start, everyone joins in the first rounds).
            while active.len() < plan.viewers {
                let id = joins;
                joins += 1;
                if load.add_viewer(id, None).is_ok() {
                    active.push_back(id);
                }
                if active.len() < plan.viewers && joins % 4 == 0 {
                    break;
                }
            }
        }
        if now >= next_sample {
            next_sample = now + sample_every;
            samples.push(sample(&agent)?);
        }
        if progress && now >= next_progress {
            next_progress = now + Duration::from_secs(60);
            if let Some(last) = samples.last() {
                eprintln!(
                    "soak: {:5.0} s  {:3} viewers  {:5} joins  RSS {:7.1} MiB  {:4} fds  {:3} threads",
                    last.seconds,
                    last.viewers,
                    joins,
                    last.rss_kib as f64 / 1024.0,
                    last.fds,
                    last.threads
                );
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused = load.refused.clone();
    // Everyone leaves: half through DELETE, half silently; then the server's ICE timeout
    // (15 s) ends the silent ones.
    while let Some(id) = active.pop_front() {
        let delete = (deleted + silent) % 2 == 0;
        load.remove_viewer(id, delete)?;
        if delete {
            deleted += 1;
        } else {
            silent += 1;
        }
    }
    load.stop();
    let settle = Instant::now() + Duration::from_secs(40);
    let mut after = sample(&agent)?;
    while Instant::now() < settle {
        std::thread::sleep(Duration::from_secs(2));
        after = sample(&agent)?;
        if after.viewers == 0
            && after.fds <= baseline.fds + plan.slack
            && after.threads <= baseline.threads + plan.slack
        {
            // Give idle worker threads a last chance to end, then take the figure.
            std::thread::sleep(Duration::from_secs(6));
            after = sample(&agent)?;
            break;
        }
    }
    drop(server);

    let warm_up_end = plan.warm_up.as_secs_f64();
    let under_load: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.seconds >= warm_up_end)
        .collect();
    let window = (under_load.len() / 5).clamp(1, 6);
    let after_warm_up = median(&under_load[..window.min(under_load.len())])
        .context("no sample after warm-up; run longer")?;
    let end_of_load = median(&under_load[under_load.len().saturating_sub(window)..])
        .context("no sample at the end")?;
    let peak = samples
        .iter()
        .max_by_key(|s| s.rss_kib)
        .cloned()
        .unwrap_or_else(|| baseline.clone());
    let slope = slope_per_minute(&under_load);

    let mut findings = Vec::new();
    let margin = plan.rss_margin_kib.max(after_warm_up.rss_kib / 10);
    let growth = end_of_load.rss_kib as i64 - after_warm_up.rss_kib as i64;
    if growth > margin as i64 {
        findings.push(format!(
            "RSS grew {:.1} MiB after warm-up (allowed {:.1} MiB)",
            growth as f64 / 1024.0,
            margin as f64 / 1024.0
        ));
    }
    if after.fds > baseline.fds + plan.slack {
        findings.push(format!(
            "{} descriptors open after every viewer left, {} before any came",
            after.fds, baseline.fds
        ));
    }
    if after.threads > baseline.threads + plan.slack {
        findings.push(format!(
            "{} threads after every viewer left, {} before any came",
            after.threads, baseline.threads
        ));
    }
    if after.viewers != 0 {
        findings.push(format!(
            "{} viewers still counted after all left",
            after.viewers
        ));
    }
    if joins > 0 && refused.len() * 10 > joins {
        findings.push(format!("{} of {joins} joins were refused", refused.len()));
    }
    Ok(SoakReport {
        seconds: started.elapsed().as_secs_f64(),
        joins,
        leaves_with_delete: deleted,
        leaves_silent: silent,
        refused,
        baseline,
        after_warm_up,
        end_of_load,
        after_leaving: after,
        peak,
        rss_slope_kib_per_min: slope,
        samples,
        flat: findings.is_empty(),
        findings,
    })
}

/// Prints the report as a few lines of text.
pub fn print(report: &SoakReport) {
    let row = |label: &str, s: &Sample| {
        println!(
            "{label:<22} {:7.0} s  RSS {:7.1} MiB  {:4} fds  {:3} threads  {:3} viewers",
            s.seconds,
            s.rss_kib as f64 / 1024.0,
            s.fds,
            s.threads,
            s.viewers
        );
    };
    println!(
        "soak: {:.0} s, {} joins, {} leaves by DELETE, {} silent, {} refused",
        report.seconds,
        report.joins,
        report.leaves_with_delete,
        report.leaves_silent,
        report.refused.len()
    );
    row("before any viewer", &report.baseline);
    row("after warm-up", &report.after_warm_up);
    row("end of load", &report.end_of_load);
    row("peak RSS", &report.peak);
    row("after all left", &report.after_leaving);
    println!(
        "RSS slope after warm-up: {:+.1} KiB/min",
        report.rss_slope_kib_per_min
    );
    if report.flat {
        println!("verdict: flat");
    } else {
        println!("verdict: NOT flat: {}", report.findings.join("; "));
    }
}

fn median(samples: &[&Sample]) -> Option<Sample> {
    if samples.is_empty() {
        return None;
    }
    let pick = |f: fn(&Sample) -> u64| {
        let mut values: Vec<u64> = samples.iter().map(|s| f(s)).collect();
        values.sort_unstable();
        values[values.len() / 2]
    };
    Some(Sample {
        seconds: samples[samples.len() / 2].seconds,
        rss_kib: pick(|s| s.rss_kib),
        fds: pick(|s| s.fds),
        threads: pick(|s| s.threads),
        viewers: pick(|s| s.viewers),
    })
}

fn slope_per_minute(samples: &[&Sample]) -> f64 {
    let n = samples.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean_t = samples.iter().map(|s| s.seconds).sum::<f64>() / n;
    let mean_r = samples.iter().map(|s| s.rss_kib as f64).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for s in samples {
        num += (s.seconds - mean_t) * (s.rss_kib as f64 - mean_r);
        den += (s.seconds - mean_t).powi(2);
    }
    if den == 0.0 {
        0.0
    } else {
        num / den * 60.0
    }
}

fn count_fds(pid: &str) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

fn threads(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}
