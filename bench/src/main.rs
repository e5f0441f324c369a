//! The viewer-load bench (issue 4): the real `rtcgear serve` on loopback, N receive-only str0m
//! viewers in this process doing real ICE, DTLS and SRTP, a sample of them decoded in process by
//! libavcodec.
//!
//! ```text
//! cargo xtask bench viewers            # the whole matrix, release build (--quick: a short one)
//! cargo build --release -p rtcgear -p rtcgear-bench
//! target/release/rtcgear-bench viewers --viewers 1,10,50,100,200,500 \
//!     --size 1280x720,640x480 --seconds 10 --join-storm 100 --plot viewers.svg
//! ```
//!
//! Every viewer is counted at the packet level (sequence numbers, marker bits), which is cheap;
//! only `--sample` of them are depacketized and decoded, so the load client stays light.

mod decode;
mod latency;
mod pin;
mod report;
mod server;
mod soak;
mod viewer;

use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::decode::Decoder;
use crate::pin::CpuList;
use crate::report::{percentile, Machine, Point, RunResult};
use crate::server::Server;
use crate::viewer::{Counters, Load, Offered, Schedule};

#[derive(Parser)]
#[command(
    name = "rtcgear-bench",
    about = "Benchmarks of the real rtcgear server"
)]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Many WebRTC viewers of `rtcgear serve` on loopback: fps, loss, latency, CPU, memory.
    Viewers(ViewersArgs),
    /// Viewers joining and leaving `rtcgear serve` for a long while, the server's RSS, open
    /// descriptors and threads sampled: is it flat? Fails when it is not.
    Soak(SoakArgs),
    /// Headless Chromium plays the page: every presented frame's latency from the stamp in
    /// the picture, presented fps, and Chromium's own breakdown (jitter buffer, decode).
    Latency(LatencyArgs),
}

#[derive(clap::Args, Clone)]
struct LatencyArgs {
    /// Frame sizes of the test pattern, WxH, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1280x720,640x480", value_parser = parse_size)]
    size: Vec<(u32, u32)>,
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Bench viewers watching beside the browser, one run each (first size only for those
    /// above 0).
    #[arg(long, value_delimiter = ',', default_value = "0,200")]
    others: Vec<usize>,
    /// Length of each measuring window, after 2 s of warm-up.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Runs of each point, one after the other.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// The browser that plays the page.
    #[arg(long, value_enum, default_value_t = latency::BrowserKind::Chromium)]
    browser: latency::BrowserKind,
    /// More flags for Chromium (settings under test), e.g.
    /// --chromium-flag=--disable-gpu-vsync.
    #[arg(long = "chromium-flag", allow_hyphen_values = true)]
    chromium_flags: Vec<String>,
    /// Worker threads running the bench viewers.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// More flags for `rtcgear serve` (the settings under test), e.g. --serve-flag=--bitrate
    /// --serve-flag=1500.
    #[arg(long = "serve-flag", allow_hyphen_values = true)]
    serve_flags: Vec<String>,
    /// The `rtcgear` binary (default: beside this one, e.g. target/release/rtcgear).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Write every run's figures as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args, Clone)]
struct SoakArgs {
    /// How long viewers come and go, in minutes.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Viewers connected at once.
    #[arg(long, default_value_t = 8)]
    viewers: usize,
    /// Seconds between one viewer leaving and the next joining.
    #[arg(long, default_value_t = 2.0)]
    churn_seconds: f64,
    /// Seconds of warm-up left out of the growth figures (default: a quarter of the run, at
    /// most 2 minutes).
    #[arg(long)]
    warm_up_seconds: Option<f64>,
    /// The test pattern's size, WxH.
    #[arg(long, default_value = "320x240", value_parser = parse_size)]
    size: (u32, u32),
    #[arg(long, default_value_t = 15)]
    fps: u32,
    /// RSS growth after warm-up taken as noise, MiB (or 10 % if more).
    #[arg(long, default_value_t = 16)]
    rss_margin_mib: u64,
    /// Descriptors and threads allowed above the baseline once every viewer has left.
    #[arg(long, default_value_t = 4)]
    slack: u64,
    /// The `rtcgear` binary (default: beside this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Write the report, every sample included, as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args, Clone)]
struct ViewersArgs {
    /// Numbers of viewers, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,10,50,100,200")]
    viewers: Vec<usize>,
    /// Frame sizes of the test pattern, WxH, one set of runs each.
    #[arg(long, value_delimiter = ',', default_value = "1280x720,640x480", value_parser = parse_size)]
    size: Vec<(u32, u32)>,
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Length of each run's measuring window (after every viewer plays and 1 s of warm-up).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Viewers decoded (libavcodec, in process) for latency and stamp checks, spread evenly
    /// over each run's viewers.
    #[arg(long, default_value_t = 5)]
    sample: usize,
    /// After the other runs, this many viewers offering within one second (first size only).
    #[arg(long)]
    join_storm: Option<usize>,
    /// Viewers already watching when the join storm starts.
    #[arg(long, default_value_t = 0)]
    storm_watchers: usize,
    /// Offers in flight at once while a run's viewers join (a storm has one thread an offer).
    #[arg(long, default_value_t = 4)]
    offer_threads: usize,
    /// Worker threads running the viewers.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Runs of each point, a fresh server each (one round of every point after the other);
    /// the table then gives each figure's min / median / max over the runs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// More flags for `rtcgear serve` (the settings under test), e.g.
    /// --serve-flag=--rtc-threads --serve-flag=2. A --max-viewers here replaces the bench's.
    #[arg(long = "serve-flag", allow_hyphen_values = true)]
    serve_flags: Vec<String>,
    /// CPUs the server runs on, a list as taskset -c takes it (1, 0,1 or 0-3).
    #[arg(long, value_name = "LIST", value_parser = pin::parse)]
    server_cpus: Option<CpuList>,
    /// CPUs this bench (its viewers, offers and decoders) runs on, a list as --server-cpus.
    #[arg(long, value_name = "LIST", value_parser = pin::parse)]
    load_cpus: Option<CpuList>,
    /// How the viewers reach the server's media: UDP, or ICE-TCP on its HTTP port.
    #[arg(long, value_enum, default_value_t = viewer::Transport::Udp)]
    transport: viewer::Transport,
    /// The `rtcgear` binary (default: beside this one, e.g. target/release/rtcgear).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Write an SVG plot of fps, server CPU and latency against the number of viewers.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Write every run's figures as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("{s:?} is not WIDTHxHEIGHT"))?;
    let w: u32 = w.parse().map_err(|_| format!("bad width in {s:?}"))?;
    let h: u32 = h.parse().map_err(|_| format!("bad height in {s:?}"))?;
    if w < 32 || h < 32 {
        return Err(format!("{s:?} is too small for the stamp"));
    }
    Ok((w, h))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Bench::Viewers(args) => viewers(&args),
        Bench::Soak(args) => soak(&args),
        Bench::Latency(args) => latency(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rtcgear-bench: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn soak(args: &SoakArgs) -> Result<()> {
    let bin = server_bin(args.server_bin.as_ref())?;
    if !(args.minutes > 0.0 && args.churn_seconds > 0.0) || args.viewers == 0 {
        bail!("--minutes, --churn-seconds and --viewers must be positive");
    }
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let warm_up = args.warm_up_seconds.map_or_else(
        || (duration / 4).min(Duration::from_secs(120)),
        Duration::from_secs_f64,
    );
    let plan = soak::SoakPlan {
        duration,
        viewers: args.viewers,
        churn: Duration::from_secs_f64(args.churn_seconds),
        warm_up,
        size: args.size,
        fps: args.fps,
        rss_margin_kib: args.rss_margin_mib * 1024,
        slack: args.slack,
    };
    let report = soak::run(&bin, &plan, true)?;
    soak::print(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if !report.flat {
        bail!(
            "the server did not stay flat: {}",
            report.findings.join("; ")
        );
    }
    Ok(())
}

/// The `rtcgear` binary: the one given, or the one beside this bench.
fn server_bin(given: Option<&PathBuf>) -> Result<PathBuf> {
    let bin = match given {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the bench binary has a folder")?
            .join("rtcgear"),
    };
    if !bin.exists() {
        bail!(
            "no server binary at {}: build it first (cargo build --release -p rtcgear) or pass --server-bin",
            bin.display()
        );
    }
    Ok(bin)
}

/// The JSON of a viewers bench: the machine, every run, and each point over its runs.
#[derive(serde::Serialize)]
struct ViewersReport<'a> {
    machine: &'a Machine,
    runs: &'a [RunResult],
    points: Vec<Point>,
}

fn viewers(args: &ViewersArgs) -> Result<()> {
    let bin = server_bin(args.server_bin.as_ref())?;
    let repeat = args.repeat.max(1) as usize;
    let mut machine = Machine::here();
    machine.server_cpus = args.server_cpus.as_ref().map(ToString::to_string);
    machine.load_cpus = args.load_cpus.as_ref().map(ToString::to_string);
    machine.serve_flags.clone_from(&args.serve_flags);
    machine.repeat = repeat;
    // Before any thread starts: the workers, offer threads and decoders inherit it.
    if let Some(cpus) = &args.load_cpus {
        cpus.pin_this_thread()
            .with_context(|| format!("cannot pin the bench to CPUs {cpus} (--load-cpus)"))?;
    }
    raise_fd_limit();
    eprintln!("{}", machine.line());
    let mut plan: Vec<report::Key> = Vec::new();
    for &size in &args.size {
        for &n in &args.viewers {
            plan.push((size, n, false, 0));
        }
    }
    if let (Some(n), Some(&size)) = (args.join_storm, args.size.first()) {
        plan.push((size, n, true, args.storm_watchers));
    }
    let mut runs: Vec<RunResult> = Vec::new();
    let mut errors: Vec<(report::Key, String)> = Vec::new();
    let points = |runs: &[RunResult], errors: &[(report::Key, String)]| -> Vec<Point> {
        plan.iter()
            .map(|&k| {
                let mine = errors.iter().filter(|e| e.0 == k).map(|e| e.1.clone());
                Point::of(k, repeat, runs, mine.collect())
            })
            .collect()
    };
    // Round after round, so that a slow spell of the machine spreads over the points.
    for round in 1..=repeat {
        for &k in &plan {
            let ((w, h), n, storm, _) = k;
            let what = if storm { "a join storm of " } else { "" };
            let of = if repeat > 1 {
                format!(", run {round} of {repeat}")
            } else {
                String::new()
            };
            eprintln!(
                "== {w}x{h}, {what}{n} viewers over {:?}{of} (load average {:.2})",
                args.transport,
                load_average().unwrap_or(0.0)
            );
            match run(args, &bin, (w, h), n, storm) {
                Ok(mut result) => {
                    result.run = round;
                    eprintln!("{}", report::table(std::slice::from_ref(&result)));
                    runs.push(result);
                }
                // The first run failing is a setup problem most of the time: stop there.
                Err(e) if runs.is_empty() && errors.is_empty() => {
                    return Err(e.context(format!("the run of {n} viewers at {w}x{h}")));
                }
                Err(e) => {
                    eprintln!("  the run failed: {e:#}");
                    errors.push((k, format!("run {round}: {e:#}")));
                }
            }
            if let Some(path) = &args.json {
                let json = ViewersReport {
                    machine: &machine,
                    runs: &runs,
                    points: points(&runs, &errors),
                };
                std::fs::write(path, serde_json::to_string_pretty(&json)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    let points = points(&runs, &errors);
    // Every run of a point together, in the plan's order.
    let place = |r: &RunResult| plan.iter().position(|&k| k == report::key(r));
    runs.sort_by_key(|r| (place(r), r.run));
    println!("{}\n", machine.line());
    if repeat > 1 {
        println!(
            "Each figure: min / median / max over the runs of the point (one figure when they \
             agree); clean runs: those with no failed viewer.\n"
        );
        println!("{}", report::summary(&points));
        println!("Every run:\n");
    }
    println!("{}", report::table(&runs));
    print!("{}", report::per_viewer(&points));
    if let Some(path) = &args.plot {
        std::fs::write(path, report::svg(&points))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if !errors.is_empty() {
        let list: Vec<String> = errors
            .iter()
            .map(|(((w, h), n, _, _), e)| format!("{n} viewers at {w}x{h}, {e}"))
            .collect();
        bail!(
            "{} of {} runs failed: {}",
            errors.len(),
            plan.len() * repeat,
            list.join("; ")
        );
    }
    Ok(())
}

fn latency(args: &LatencyArgs) -> Result<()> {
    let bin = server_bin(args.server_bin.as_ref())?;
    raise_fd_limit();
    let mut plan = Vec::new();
    for (i, &size) in args.size.iter().enumerate() {
        for &others in &args.others {
            if others == 0 || i == 0 {
                plan.push((size, others));
            }
        }
    }
    let mut runs = Vec::new();
    for round in 1..=args.rounds.max(1) {
        for &(size, others) in &plan {
            eprintln!(
                "== round {round}: {}x{}, Chromium beside {others} bench viewers (load average {:.2})",
                size.0,
                size.1,
                load_average().unwrap_or(0.0)
            );
            let server = Server::start_with(&bin, size, args.fps, others + 16, &args.serve_flags)?;
            std::thread::sleep(Duration::from_millis(500));
            let run = latency::measure(
                (args.browser, &args.chromium_flags),
                &server,
                size,
                args.fps,
                others,
                args.seconds,
                args.threads,
            )
            .with_context(|| format!("{}x{} beside {others} viewers", size.0, size.1))?;
            eprintln!("{}", latency::table(std::slice::from_ref(&run)));
            runs.push(run);
            if let Some(path) = &args.json {
                std::fs::write(path, serde_json::to_string_pretty(&runs)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    println!("{}", latency::table(&runs));
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// CPU seconds of the server, of this process and of the decoding threads, at one moment.
fn cpu_now(server: &Server, decoders: &[&Decoder]) -> (f64, f64, f64) {
    let server = server::cpu_seconds(&server.pid().to_string()).unwrap_or(0.0);
    let own = server::cpu_seconds("self").unwrap_or(0.0);
    let decoders = decoders
        .iter()
        .filter_map(|d| server::cpu_seconds(&d.proc_path()?))
        .sum();
    (server, own, decoders)
}

/// Raises this process's soft limit of open descriptors to the hard limit: each viewer holds a
/// UDP socket, and a storm's offers as many TCP connections.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                eprintln!(
                    "cannot raise the descriptor limit: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// The machine's load average over the last minute, from `/proc/loadavg`.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Waits (at most `limit`) until every answered viewer of `ids` has its first frame, saying
/// every second how many do.
fn wait_playing(load: &Load, ids: &Range<usize>, limit: Duration) -> Vec<Counters> {
    let deadline = Instant::now() + limit;
    let mut next_progress = Instant::now() + Duration::from_secs(1);
    loop {
        let counters: Vec<Counters> = load
            .snapshot()
            .into_iter()
            .filter(|c| ids.contains(&c.id))
            .collect();
        let playing = counters
            .iter()
            .filter(|c| c.first_frame_at.is_some())
            .count();
        let now = Instant::now();
        // Viewers whose offer failed never reach a worker: wait for those that did.
        if playing == counters.len() || now >= deadline {
            return counters;
        }
        if now >= next_progress {
            next_progress += Duration::from_secs(1);
            eprintln!("  playing: {playing} of {}", counters.len());
        }
        // Each look interrupts the workers; 20 ms is finer than what it measures needs.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A run's offers that were not answered: refused with 503 (the server shedding load), or
/// failed otherwise.
#[derive(Default)]
struct Tally {
    refused: usize,
    failed: usize,
}

impl Tally {
    /// Counts `offers`' refusals and failures, and says what each failure was (`who`: whose
    /// offers they are).
    fn count<T>(&mut self, offers: &[Result<T>], who: &str) {
        for e in offers.iter().filter_map(|o| o.as_ref().err()) {
            if viewer::is_refused(e) {
                self.refused += 1;
            } else {
                self.failed += 1;
                eprintln!("  {who}'s offer failed: {e:#}");
            }
        }
    }
}

/// One run: a fresh server; for a join storm, `--storm-watchers` viewers watching first; then
/// `n` viewers (offering within one second if `storm`, else `--offer-threads` at a time), the
/// measuring window, then one more viewer joining while they all watch.
fn run(
    args: &ViewersArgs,
    bin: &std::path::Path,
    size: (u32, u32),
    n: usize,
    storm: bool,
) -> Result<RunResult> {
    let loadavg = load_average();
    let watchers = if storm { args.storm_watchers } else { 0 };
    let mut tally = Tally::default();
    let total = watchers + n;
    let server = Server::start_pinned(
        bin,
        size,
        args.fps,
        total + 16,
        &args.serve_flags,
        args.server_cpus.as_ref(),
    )?;
    // Room for slow connects at large N; the workers stop by themselves after this.
    let limit = Duration::from_secs_f64(120.0 + args.seconds + total as f64 * 0.2);
    let mut load = Load::new(args.threads, format!("{}/whep", server.base_url), limit);
    // Let the capture and encode threads start before the first offer.
    std::thread::sleep(Duration::from_millis(500));
    let gentle = Schedule {
        concurrency: args.offer_threads.max(1),
        spread: None,
    };

    if watchers > 0 {
        eprintln!("  {watchers} viewers start watching");
        let prepared = (0..watchers)
            .map(|id| viewer::prepare_over(id, None, args.transport))
            .collect::<Result<Vec<_>>>()?;
        let offers = load.add_viewers(prepared, gentle, true);
        tally.count(&offers, "a watcher");
        wait_playing(&load, &(0..watchers), Duration::from_secs(30));
    }

    // The measured viewers, and which of them are decoded: spread over the group, so that a
    // storm's sample holds early and late offers.
    let group = watchers..total;
    let ids: Vec<usize> = group.clone().collect();
    let sample = args.sample.min(n);
    let sampled: Vec<usize> = (0..sample).map(|k| ids[k * n / sample.max(1)]).collect();
    let mut decoders: Vec<(usize, Decoder)> = Vec::new();
    let mut prepared = Vec::with_capacity(n);
    for &id in &ids {
        let input = if sampled.contains(&id) {
            let decoder = Decoder::start(format!("decode-{id}"))?;
            let input = decoder.input.clone();
            decoders.push((id, decoder));
            Some(input)
        } else {
            None
        };
        prepared.push(viewer::prepare_over(id, input, args.transport)?);
    }
    let schedule = if storm {
        Schedule {
            concurrency: n.min(128),
            spread: Some(Duration::from_secs(1)),
        }
    } else {
        gentle
    };
    let offers = load.add_viewers(prepared, schedule, true);
    let offered: Vec<Offered> = offers
        .iter()
        .filter_map(|o| o.as_ref().ok().copied())
        .collect();
    tally.count(&offers, "a viewer");
    let accepted = offered.len();
    let first_offer = offered.iter().map(|o| o.at).min();
    let last_offer = offered.iter().map(|o| o.at).max();
    let offers_span_ms = first_offer.zip(last_offer).map(|(a, b)| ms(b - a));
    let mut answers: Vec<f64> = offered.iter().map(|o| ms(o.answered - o.at)).collect();

    let counters = wait_playing(&load, &group, Duration::from_secs(30));
    let playing = counters
        .iter()
        .filter(|c| c.first_frame_at.is_some())
        .count();
    let all_playing_ms = (playing == accepted && accepted == n)
        .then(|| counters.iter().filter_map(|c| c.first_frame_at).max())
        .flatten()
        .zip(first_offer)
        .map(|(last, first)| ms(last - first));
    let mut first_frames: Vec<f64> = counters
        .iter()
        .filter_map(|c| Some(ms(c.first_frame_at? - c.offered_at?)))
        .collect();
    // Warm-up; decoders trail the packets by a decode at most.
    std::thread::sleep(Duration::from_secs(1));
    let offered_at = |id: usize| offered.iter().find(|o| o.id == id).map(|o| o.at);
    let mut first_pictures: Vec<f64> = decoders
        .iter()
        .filter_map(|(id, d)| Some(ms(d.first_picture()? - offered_at(*id)?)))
        .collect();

    // The measuring window.
    eprintln!("  measuring for {:.0} s", args.seconds);
    let decoder_list: Vec<&Decoder> = decoders.iter().map(|(_, d)| d).collect();
    let before = load.snapshot();
    let (server_a, own_a, dec_a) = cpu_now(&server, &decoder_list);
    let drops_a = server::udp_receive_buffer_errors();
    let window_start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    let after = load.snapshot();
    let (server_b, own_b, dec_b) = cpu_now(&server, &decoder_list);
    let udp_receive_drops = drops_a
        .zip(server::udp_receive_buffer_errors())
        .map(|(a, b)| b.saturating_sub(a));
    if let Some(drops) = udp_receive_drops.filter(|&d| d > 0) {
        eprintln!(
            "  {drops} datagrams dropped by full UDP receive buffers during the window: RTP \
             loss may be the load client's"
        );
    }
    let window_end = Instant::now();
    let window = (window_end - window_start).as_secs_f64();
    // Admitted viewers (watchers too) that never played, or whose session died.
    let not_playing = after
        .iter()
        .filter(|c| c.first_frame_at.is_none() || c.dead)
        .count();
    if not_playing > 0 {
        eprintln!("  {not_playing} admitted viewers not playing (or dead) by the window's end");
    }
    let rss = server::rss_kib(&server.pid().to_string()).unwrap_or(0);

    let mut fps: Vec<f64> = Vec::new();
    let (mut sent, mut lost) = (0u64, 0u64);
    for b in &after {
        let a = before
            .iter()
            .find(|a| a.id == b.id)
            .cloned()
            .unwrap_or_else(|| Counters {
                first_seq: b.first_seq,
                ..Counters::default()
            });
        fps.push((b.frames - a.frames) as f64 / window);
        let expected = b.expected().saturating_sub(a.expected());
        sent += expected;
        lost += expected.saturating_sub(b.packets - a.packets);
    }

    let (mut latencies, mut pictures, mut missing, mut unreadable) = (Vec::new(), 0, 0, 0);
    let (mut decode_times, mut decode_errors) = (Vec::new(), 0);
    for decoder in &decoder_list {
        let Ok(log) = decoder.log.lock() else {
            continue;
        };
        unreadable += log.unreadable;
        decode_errors += log.errors;
        let mut previous: Option<u32> = None;
        for p in log
            .pictures
            .iter()
            .filter(|p| p.at >= window_start && p.at < window_end)
        {
            latencies.push(p.latency_us as f64 / 1000.0);
            decode_times.push(p.decode_us as f64 / 1000.0);
            pictures += 1;
            if let Some(prev) = previous {
                missing += u64::from(p.counter.wrapping_sub(prev).saturating_sub(1));
            }
            previous = Some(p.counter);
        }
    }

    // One more viewer joins while the others watch.
    let join_id = total;
    let mut join_refused = false;
    let join_first_picture_ms = match Decoder::start(format!("decode-{join_id}")) {
        Ok(decoder) => match load.add_viewer(join_id, Some(decoder.input.clone())) {
            Ok(offered) => {
                let deadline = offered + Duration::from_secs(5);
                while decoder.first_picture().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(2));
                }
                decoder.first_picture().map(|t| ms(t - offered))
            }
            Err(e) => {
                join_refused = viewer::is_refused(&e);
                tally.count::<()>(&[Err(e)], "the joining viewer");
                None
            }
        },
        Err(e) => {
            eprintln!("  the joining viewer's decoder: {e:#}");
            None
        }
    };
    let join_first_frame_ms = load
        .snapshot()
        .iter()
        .find(|c| c.id == join_id)
        .and_then(|c| Some(ms(c.first_frame_at? - c.offered_at?)));
    load.stop();
    drop(decoders);
    drop(server);
    if let Some(span) = offers_span_ms {
        eprintln!("  the {accepted} answered offers went out within {span:.0} ms");
    }
    if join_refused {
        tally.refused -= 1;
        eprintln!("  the joining viewer was refused with 503");
    }
    if tally.refused > 0 {
        eprintln!(
            "  {} of the {total} viewers refused with 503",
            tally.refused
        );
    }

    let load_cpu_pct = 100.0 * ((own_b - own_a) - (dec_b - dec_a)) / window;
    Ok(RunResult {
        run: 1,
        width: size.0,
        height: size.1,
        fps: args.fps,
        viewers: n,
        storm,
        watchers,
        accepted,
        refused: tally.refused,
        join_refused,
        failed: tally.failed + not_playing,
        playing,
        window_s: window,
        fps_min: percentile(&mut fps, 0.0).unwrap_or(0.0),
        fps_median: percentile(&mut fps, 50.0).unwrap_or(0.0),
        rtp_loss_pct: if sent == 0 {
            0.0
        } else {
            100.0 * lost as f64 / sent as f64
        },
        sample_pictures: pictures,
        sample_missing: missing,
        sample_unreadable: unreadable,
        sample_decode_errors: decode_errors,
        latency_p50_ms: percentile(&mut latencies, 50.0),
        latency_p95_ms: percentile(&mut latencies, 95.0),
        latency_max_ms: percentile(&mut latencies, 100.0),
        decode_p50_ms: percentile(&mut decode_times, 50.0),
        offers_span_ms,
        answer_p50_ms: percentile(&mut answers, 50.0),
        answer_p95_ms: percentile(&mut answers, 95.0),
        first_frame_p50_ms: percentile(&mut first_frames, 50.0),
        first_frame_p95_ms: percentile(&mut first_frames, 95.0),
        first_frame_max_ms: percentile(&mut first_frames, 100.0),
        first_picture_p50_ms: percentile(&mut first_pictures, 50.0),
        first_picture_p95_ms: percentile(&mut first_pictures, 95.0),
        join_first_picture_ms,
        join_first_frame_ms,
        all_playing_ms,
        server_cpu_pct: 100.0 * (server_b - server_a) / window,
        server_rss_mib: rss as f64 / 1024.0,
        load_cpu_pct,
        load_cpu_per_viewer_pct: load_cpu_pct / total.max(1) as f64,
        decoders_cpu_pct: 100.0 * (dec_b - dec_a) / window,
        loadavg_1m: loadavg,
        udp_receive_drops,
    })
}
