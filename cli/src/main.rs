//! `rtcgear`: stream live video to web browsers over WebRTC.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

mod stabilize;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use rtcgear_capture::v4l2::{V4l2Format, V4l2Source};
use rtcgear_capture::{
    EncodedSource, FrameRate, OpenOptions, OpenedSource, PiCodec, Source, SourceSpec, TestPattern,
};
use rtcgear_encode::{Encoder, EncoderConfig, RateControl};
use rtcgear_server::{IceServer, Server, ServerConfig, StreamConfig};
use rtcgear_stabilize::{BorderType, Smoothing, Stabilized, StabilizerConfig};

/// Stream live video to web browsers over WebRTC: encoded once to H.264, sent to every viewer.
#[derive(Parser, Debug)]
#[command(name = "rtcgear", version, about, long_about = None)]
struct Cli {
    /// More logging: -v for debug, -vv for trace (RUST_LOG overrides it).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Only warnings and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve one or more streams to browsers (the built-in test pattern by default).
    Serve(Box<ServeArgs>),
    /// Stabilize a video file (anything FFmpeg reads) into an H.264 MP4, MKV or MOV file.
    Stabilize(StabilizeArgs),
    /// Encode the test pattern to an H.264 (Annex B) file, to check the encoder.
    Encode(EncodeArgs),
    /// List the V4L2 cameras (for `--source N` or `/dev/videoN`) with their formats, sizes and
    /// frame rates.
    Devices,
    /// Write the default page templates and static files into a folder, to customise them and
    /// serve them with `serve --web-dir`.
    ExportWeb {
        /// The folder to write into (made if missing).
        dir: PathBuf,
        /// Overwrite files that are there already.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// The default stream's source: `test` (the built-in test pattern), a video file (MP4, MKV,
    /// … anything FFmpeg reads), a network stream URL (rtsp://, rtmp://, http(s)://, srt://,
    /// udp://), a video site's page (see --stream-mode), a V4L2 camera (N or /dev/videoN; see
    /// `rtcgear devices`), or a Raspberry Pi camera (pi:N, through the Pi's rpicam-vid).
    #[arg(long, default_value = "test", value_name = "SOURCE")]
    source: String,

    /// A named stream, served at /NAME/ (repeatable): NAME=SOURCE, e.g. `--stream yard=test`.
    #[arg(long = "stream", value_name = "NAME=SOURCE")]
    streams: Vec<String>,

    /// Address to listen on (HTTP and media). 0.0.0.0 listens on every interface.
    #[arg(long, default_value = "0.0.0.0", value_name = "IP")]
    bind: IpAddr,

    /// HTTP port for the page and signalling (0 picks a free one).
    #[arg(long, default_value_t = 8000)]
    port: u16,

    /// The one UDP port for every viewer's media (default: the same number as --port).
    #[arg(long, value_name = "PORT")]
    udp_port: Option<u16>,

    /// Frame size, WIDTHxHEIGHT: the test pattern's size (default 1280x720); other sources
    /// are scaled to it when it is given.
    #[arg(long, value_parser = parse_size, value_name = "WxH")]
    size: Option<(u32, u32)>,

    /// Frames a second: the test pattern's and a Pi camera's, and a hint to V4L2 cameras (which
    /// take their nearest rate).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    fps: u32,

    /// Video bitrate in kbit/s (default: chosen for the size and rate).
    #[arg(long, value_name = "KBPS", value_parser = clap::value_parser!(u32).range(50..=100_000))]
    bitrate: Option<u32>,

    /// Decode and encode H.264 sources again instead of passing them through as they are.
    /// H.264 without B-frames in a file or network stream is passed through to viewers by
    /// default (no transform asked for): next to no CPU, but keyframes come only as the source
    /// sends them, so a viewer that loses a picture waits for the next one.
    #[arg(long)]
    transcode: bool,

    /// The picture format: for a V4L2 camera, the format to capture in (yuyv, nv12, yu12,
    /// mjpeg, or h264 from a camera with its own encoder, passed through; default: the best raw
    /// or MJPEG format the camera offers at the size and rate); for any source, `gray` to serve
    /// it in shades of grey (vidgear's `colorspace`).
    #[arg(long, value_name = "FORMAT", value_parser = parse_format)]
    format: Option<String>,

    /// Resolve http(s) sources that are a video site's page to its media stream, with yt-dlp
    /// (vidgear's `stream_mode`), picking a quality to match --size. YouTube, Twitch, Vimeo and
    /// Dailymotion pages are resolved without this flag. Needs yt-dlp installed (`pipx install
    /// yt-dlp` or `pip install yt-dlp`; RTCGEAR_YT_DLP names another program).
    #[arg(long)]
    stream_mode: bool,

    /// What a Raspberry Pi camera (pi:N) delivers: `h264` from the Pi's hardware encoder,
    /// passed through (Pi 4, 3, Zero 2), `yuv420` raw frames encoded here (Pi 5, or with
    /// --stabilize/--transcode), or `auto` to pick by the Pi model. rpicam-vid (or
    /// libcamera-vid) must be installed; RTCGEAR_RPICAM_VID names another program.
    #[arg(long, value_name = "CODEC", default_value = "auto", value_parser = ["auto", "h264", "yuv420"])]
    pi_codec: String,

    /// Play file sources again from the start when they end, forever (vidgear's
    /// `enable_infinite_frames`).
    #[arg(long = "loop")]
    looping: bool,

    /// Wait this many seconds before opening file and network sources (vidgear's `time_delay`).
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0, value_parser = parse_delay)]
    start_delay: f64,

    /// Stabilize the video (vidgear's `stabilize=True`): track the camera's shake and warp it
    /// away.
    #[arg(long, help_heading = "Stabilization")]
    stabilize: bool,

    #[command(flatten)]
    stabilizer: StabilizerArgs,

    /// Serve the page from this folder's templates/ and static/ (see `rtcgear export-web`).
    #[arg(long, value_name = "DIR")]
    web_dir: Option<PathBuf>,

    /// A STUN or TURN server for the browsers (repeatable): stun:HOST:PORT or
    /// turn:USER:PASS@HOST:PORT.
    #[arg(long = "ice-server", value_name = "URL", value_parser = parse_ice_server)]
    ice_servers: Vec<IceServer>,

    /// A public IP to announce to viewers, for a host behind NAT that forwards the UDP port.
    #[arg(long, value_name = "IP")]
    public_ip: Option<IpAddr>,

    /// The most viewers at once over all streams; more get 503 with Retry-After.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_viewers: Option<u64>,

    /// An origin allowed to call /whep and /offer from its own pages (repeatable; `*` for any).
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,

    /// Turn access control on with this secret: WHEP needs `Authorization: Bearer SECRET`, the
    /// page basic auth (any user, SECRET as the password) or the signed link printed at start.
    #[arg(
        long,
        env = "RTCGEAR_TOKEN",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    token: Option<String>,

    /// How long the printed signed link stays valid, in hours.
    #[arg(long, value_name = "HOURS", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=8760))]
    link_ttl: u64,

    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The PEM private key (PKCS#8 or RSA) of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Keep capturing and encoding when nobody watches (default: idle until a viewer comes).
    #[arg(long)]
    always_live: bool,

    /// Offers (/whep, /offer) allowed per client address and minute, N (at most 20) of them at
    /// once; more get 429 with Retry-After. 0 turns the limit off.
    #[arg(long, value_name = "N", default_value_t = 60, help_heading = "Limits")]
    offer_rate: u32,

    /// The most HTTP connections at once, in total; more are turned away with 503.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Limits")]
    max_connections: u64,

    /// The most HTTP connections at once from one address (IPv6: one /64).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Limits")]
    max_connections_per_ip: u64,

    /// Seconds a client may take to send a whole request (head and body); slower ones get 408.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600), help_heading = "Limits")]
    request_timeout: u64,

    /// Seconds a keep-alive HTTP connection may sit idle before it is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), help_heading = "Limits")]
    idle_timeout: u64,
}

#[derive(Args, Debug)]
struct StabilizeArgs {
    /// The video to stabilize.
    #[arg(value_name = "IN")]
    input: PathBuf,
    /// The file to write: .mp4, .mkv or .mov.
    #[arg(value_name = "OUT")]
    output: PathBuf,
    #[command(flatten)]
    stabilizer: StabilizerArgs,
    /// x264's constant rate factor: lower is better quality and bigger files.
    #[arg(long, default_value_t = 20.0, value_parser = parse_crf)]
    crf: f32,
}

#[derive(Args, Debug)]
struct EncodeArgs {
    /// The file to write.
    #[arg(short, long, default_value = "rtcgear-test.h264", value_name = "FILE")]
    output: PathBuf,

    /// Frame size, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720", value_parser = parse_size, value_name = "WxH")]
    size: (u32, u32),

    /// Frames per second.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    fps: u32,

    /// How many frames to encode.
    #[arg(long, default_value_t = 150, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    frames: u64,

    /// Video bitrate in kbit/s (default: chosen for the size and rate).
    #[arg(long, value_name = "KBPS", value_parser = clap::value_parser!(u32).range(50..=100_000))]
    bitrate: Option<u32>,
}

/// The stabilizer's settings, shared by `serve --stabilize` and `stabilize`.
#[derive(Args, Debug)]
struct StabilizerArgs {
    /// Frames either side that the camera path is averaged over (the moving average delays the
    /// video by as many frames; with --smoothing causal it is the filter's time constant).
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..=300),
          value_name = "FRAMES", help_heading = "Stabilization")]
    smoothing_radius: u64,

    /// How the path is smoothed: `average` (vidgear's, delays by --smoothing-radius frames) or
    /// `causal` (no delay, for live viewing).
    #[arg(long, default_value = "average", value_parser = ["average", "causal"],
          help_heading = "Stabilization")]
    smoothing: String,

    /// Pixels of border added around the stabilized picture (vidgear's BORDER_SIZE).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1000),
          value_name = "PIXELS", help_heading = "Stabilization")]
    border_size: u32,

    /// Zoom in to hide the borders instead of adding them (vidgear's CROP_N_ZOOM).
    #[arg(long, help_heading = "Stabilization")]
    crop_zoom: bool,

    /// How the border is filled: black, reflect, reflect_101, replicate or wrap (vidgear's
    /// BORDER_TYPE).
    #[arg(long, default_value = "black", value_parser = parse_border, value_name = "TYPE",
          help_heading = "Stabilization")]
    border_type: BorderType,
}

impl StabilizerArgs {
    fn config(&self) -> StabilizerConfig {
        let smoothing = match self.smoothing.as_str() {
            "causal" => Smoothing::Causal,
            _ => Smoothing::MovingAverage,
        };
        StabilizerConfig::new()
            .smoothing_radius(self.smoothing_radius as usize)
            .smoothing(smoothing)
            .border_size(self.border_size)
            .crop_zoom(self.crop_zoom)
            .border_type(self.border_type)
    }
}

fn parse_crf(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if (0.0..=51.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a CRF from 0 to 51")),
    }
}

fn parse_format(s: &str) -> Result<String, String> {
    let format = s.to_ascii_lowercase();
    match format.as_str() {
        "gray" | "grey" => Ok("gray".into()),
        "yuyv" | "yuy2" | "nv12" | "yu12" | "i420" | "mjpeg" | "mjpg" | "h264" => Ok(format),
        _ => Err("expected gray, or a camera format: yuyv, nv12, yu12, mjpeg or h264".into()),
    }
}

/// Whether --format asks for grey pictures.
fn gray(args: &ServeArgs) -> bool {
    args.format.as_deref() == Some("gray")
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{s:?} is not WIDTHxHEIGHT, e.g. 1280x720"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|_| format!("{s:?} is not WIDTHxHEIGHT, e.g. 1280x720"))
    };
    let (w, h) = (parse(w)?, parse(h)?);
    if !(32..=7680).contains(&w) || !(32..=4320).contains(&h) || w % 2 != 0 || h % 2 != 0 {
        return Err(format!(
            "{w}x{h}: width and height must be even, from 32x32 to 7680x4320"
        ));
    }
    Ok((w, h))
}

fn parse_border(s: &str) -> Result<BorderType, String> {
    s.parse()
        .map_err(|e: rtcgear_stabilize::StabilizeError| e.to_string())
}

fn parse_delay(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=600.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds from 0 to 600")),
    }
}

fn parse_ice_server(s: &str) -> Result<IceServer, String> {
    s.parse()
        .map_err(|e: rtcgear_server::ServerError| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Encode(args) => encode(args),
        Command::Stabilize(args) => stabilize::run(stabilize::Job {
            config: args.stabilizer.config(),
            input: args.input,
            output: args.output,
            crf: args.crf,
        }),
        Command::ExportWeb { dir, force } => export_web(&dir, force),
        Command::Devices => devices(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rtcgear: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(log_colours())
        .init();
}

/// Whether the log may use colour: only on a terminal, and never with `NO_COLOR` set to
/// anything but the empty string (<https://no-color.org>). Logs piped to a file or journald
/// stay free of escape sequences.
fn log_colours() -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

/// Why H.264 is not passed through, when the flags ask for something only decoding and
/// encoding again can do (--bitrate is the library's to weigh: a Pi's hardware encoder takes
/// it).
fn transcode_reason(args: &ServeArgs) -> Option<&'static str> {
    if args.transcode {
        Some("--transcode asks for it")
    } else if gray(args) {
        Some("--format gray needs the pictures")
    } else if args.stabilize {
        Some("--stabilize needs the pictures")
    } else {
        None
    }
}

/// Builds the source a `--source` or `--stream` value names (through
/// `rtcgear_capture::open`, with the stabilizer on top when asked for), and says whether it
/// is live (a network stream or camera, to keep reading even when nobody watches).
fn open_source(flag: &str, spec: &str, args: &ServeArgs) -> anyhow::Result<(OpenedSource, bool)> {
    let parsed: SourceSpec = spec
        .parse()
        .map_err(|e| anyhow::anyhow!("{flag} {spec:?}: {e}"))?;
    let camera_format = args.format.clone().filter(|_| !gray(args));
    if let Some(format) = camera_format.as_deref() {
        if !matches!(parsed, SourceSpec::Camera(_)) {
            bail!(
                "--format {format}: a capture format applies to V4L2 cameras only; other \
                 sources take --format gray"
            );
        }
    }
    if camera_format.as_deref() == Some("h264") {
        // Said here, where the flags have names: the library would say the same without them.
        let reason =
            transcode_reason(args).or(args.bitrate.map(|_| "--bitrate sets the encoder's rate"));
        if let Some(reason) = reason {
            bail!(
                "--format h264 passes the camera's H.264 through, but {reason}: pick a raw \
                 camera format (--format yuyv, nv12, yu12 or mjpeg) to have it encoded here"
            );
        }
    }
    let mut options = OpenOptions::default();
    options.size = args.size;
    options.fps = args.fps;
    options.camera_format = camera_format;
    options.gray = gray(args);
    options.decode_reason = transcode_reason(args).map(str::to_string);
    options.bitrate_kbps = args.bitrate;
    options.looping = args.looping;
    options.start_delay = Duration::from_secs_f64(args.start_delay);
    options.stream_mode = args.stream_mode;
    options.pi_codec = match args.pi_codec.as_str() {
        "h264" => PiCodec::H264,
        "yuv420" => PiCodec::Yuv420,
        _ => PiCodec::Auto,
    };
    let opened = rtcgear_capture::open(&parsed, &options).with_context(|| {
        if args.stream_mode {
            format!("{flag} {spec:?} (--stream-mode)")
        } else {
            format!("{flag} {spec:?}")
        }
    })?;
    let live = opened.live;
    Ok(match opened.source {
        OpenedSource::Frames(frames) => (OpenedSource::Frames(stabilized(frames, args)?), live),
        encoded => (encoded, live),
    })
}

/// Wraps the source in the stabilizer when --stabilize asks for it.
fn stabilized(source: Box<dyn Source>, args: &ServeArgs) -> anyhow::Result<Box<dyn Source>> {
    if !args.stabilize {
        return Ok(source);
    }
    let config = args.stabilizer.config();
    let stabilized = Stabilized::new(source, config).context("--stabilize")?;
    Ok(Box::new(stabilized))
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // The server checks this too, but cannot name the flag.
    if let Some(dir) = args.web_dir.as_ref().filter(|dir| !dir.is_dir()) {
        bail!(
            "--web-dir {}: no such folder (make one with `rtcgear export-web {}`)",
            dir.display(),
            dir.display()
        );
    }
    let config = {
        let mut config = ServerConfig::default();
        config.bind = args.bind;
        config.http_port = args.port;
        config.udp_port = args.udp_port;
        config.public_ip = args.public_ip;
        config.ice_servers = args.ice_servers.clone();
        config.max_viewers = args.max_viewers.map(|n| n as usize);
        config.web_dir = args.web_dir.clone();
        config.cors_origins = args.cors_origins.clone();
        config.access_token = args.token.clone();
        config.link_ttl = Duration::from_secs(args.link_ttl * 3600);
        config.tls_cert = args.tls_cert.clone();
        config.tls_key = args.tls_key.clone();
        config.offer_rate = args.offer_rate;
        config.offer_burst = args.offer_rate.clamp(1, 20);
        config.max_connections = usize::try_from(args.max_connections).unwrap_or(usize::MAX);
        config.max_connections_per_ip =
            usize::try_from(args.max_connections_per_ip).unwrap_or(usize::MAX);
        config.request_timeout = Duration::from_secs(args.request_timeout);
        config.idle_timeout = Duration::from_secs(args.idle_timeout);
        config
    };
    let mut builder = Server::builder().config(config);
    let add = |name: &str, source: OpenedSource, live: bool| {
        let label = if name.is_empty() { "default" } else { name };
        let stream = match source {
            OpenedSource::Frames(source) => {
                let info = source.info();
                tracing::info!(
                    "stream {label:?}: {}x{} at {} fps, encoded here",
                    info.width,
                    info.height,
                    info.fps
                );
                StreamConfig::new(name, source)
            }
            OpenedSource::Encoded(source) => {
                let info = source.info();
                tracing::info!(
                    "stream {label:?}: {}x{} at {} fps, H.264 passed through",
                    info.width,
                    info.height,
                    info.fps
                );
                StreamConfig::passthrough(name, source)
            }
        };
        let mut stream = stream
            .always_live(args.always_live)
            .pause_source_when_idle(!live);
        if let Some(kbps) = args.bitrate {
            stream = stream.bitrate_kbps(kbps);
        }
        stream
    };
    let (source, live) = open_source("--source", &args.source, &args)?;
    builder = builder.stream(add("", source, live));
    for spec in &args.streams {
        let (name, source) = spec
            .split_once('=')
            .with_context(|| format!("--stream {spec:?}: expected NAME=SOURCE, e.g. yard=test"))?;
        if name.is_empty() {
            bail!("--stream {spec:?}: the name is empty (the default stream is --source)");
        }
        let (source, live) = open_source("--stream", source, &args)?;
        builder = builder.stream(add(name, source, live));
    }
    let server = builder.build().map_err(|e| {
        anyhow::anyhow!("{e}").context(match e {
            rtcgear_server::ServerError::Bind { .. } => "pick other ports with --port / --udp-port",
            _ => "cannot start the server",
        })
    })?;
    let stop = server.shutdown_handle();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.flag())
            .context("installing the signal handler")?;
    }
    tracing::info!(
        "media on UDP {}; ICE candidates {:?}",
        server.udp_addr().port(),
        server.candidates()
    );
    let urls = server.urls();
    // With --token, print signed links (never the secret itself).
    let link = server
        .link_token()
        .map(|token| format!("?token={token}"))
        .unwrap_or_default();
    let mut out = std::io::stdout().lock();
    writeln!(out, "rtcgear is streaming. Open one of these in a browser:")?;
    for url in &urls {
        writeln!(out, "  {url}{link}")?;
    }
    for name in args
        .streams
        .iter()
        .filter_map(|s| s.split_once('=').map(|(n, _)| n))
    {
        writeln!(out, "  {}{name}/{link}", urls[0])?;
    }
    writeln!(out, "Press Ctrl-C to stop.")?;
    drop(out);
    server.run().context("the server stopped with an error")?;
    debug_assert!(stop.flag().load(Ordering::Relaxed));
    Ok(())
}

fn encode(args: EncodeArgs) -> anyhow::Result<()> {
    let (width, height) = args.size;
    let fps = FrameRate::from_int(args.fps).context("--fps must be above 0")?;
    let pattern = TestPattern::builder()
        .size(width, height)
        .fps(fps)
        .paced(false)
        .frames(args.frames)
        .build()
        .context("--size: cannot make the test pattern")?;
    let mut config = EncoderConfig::new(width, height, fps);
    if let Some(kbps) = args.bitrate {
        config.rate = RateControl::Bitrate { kbps };
    }
    let mut encoder = Encoder::new(config).context("cannot start the encoder")?;
    let file = std::fs::File::create(&args.output)
        .with_context(|| format!("--output: cannot create {}", args.output.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let started = Instant::now();
    let mut last_report = Instant::now();
    let (mut frames, mut bytes) = (0u64, 0u64);
    let info = pattern.info();
    let mut write = |packet: rtcgear_encode::EncodedFrame,
                     out: &mut std::io::BufWriter<std::fs::File>|
     -> anyhow::Result<()> {
        out.write_all(&packet.data).context("writing the output")?;
        frames += 1;
        bytes += packet.data.len() as u64;
        Ok(())
    };
    for frame in pattern {
        let frame = frame?;
        encoder.send_frame(&frame)?;
        while let Some(packet) = encoder.receive_packet() {
            write(packet, &mut out)?;
        }
        if last_report.elapsed() > Duration::from_secs(1) {
            eprintln!("encoded {} of {} frames", frame.counter() + 1, args.frames);
            last_report = Instant::now();
        }
    }
    encoder.flush()?;
    while let Some(packet) = encoder.receive_packet() {
        write(packet, &mut out)?;
    }
    out.flush().context("writing the output")?;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "wrote {} frames of {}x{} H.264 ({} KiB, {:.0} frames/s) to {}",
        frames,
        info.width,
        info.height,
        bytes / 1024,
        frames as f64 / elapsed.max(1e-6),
        args.output.display()
    );
    println!(
        "play it with: ffplay -f h264 -framerate {} {}",
        args.fps,
        args.output.display()
    );
    Ok(())
}

/// `rtcgear devices`: the V4L2 cameras with their formats, sizes and frame rates.
fn devices() -> anyhow::Result<()> {
    let cameras = V4l2Source::list();
    let mut out = std::io::stdout().lock();
    if cameras.is_empty() {
        writeln!(
            out,
            "no V4L2 cameras found (no /dev/video* node that captures video)"
        )?;
        return Ok(());
    }
    for camera in cameras {
        writeln!(
            out,
            "{}  {} (driver {}, {})",
            camera.path.display(),
            camera.name,
            camera.driver,
            camera.bus
        )?;
        for format in &camera.formats {
            let note = match format.format {
                None => "  (rtcgear cannot read this one yet)",
                Some(V4l2Format::H264) => "  (passed through with --format h264)",
                Some(_) => "",
            };
            writeln!(out, "  {} {}{note}", format.fourcc, format.description)?;
            for size in &format.sizes {
                let rates: Vec<String> = size.rates.iter().map(|r| r.to_string()).collect();
                writeln!(
                    out,
                    "    {}x{}  {} fps",
                    size.width,
                    size.height,
                    rates.join(", ")
                )?;
            }
            if format.stepwise {
                writeln!(out, "    (any size between these two, in steps)")?;
            }
        }
    }
    Ok(())
}

fn export_web(dir: &std::path::Path, force: bool) -> anyhow::Result<()> {
    let written = rtcgear_server::export_web_files(dir, force)?;
    if written.is_empty() {
        println!(
            "{} has every file already; nothing written (--force overwrites)",
            dir.display()
        );
    } else {
        for path in &written {
            println!("wrote {}", path.display());
        }
        println!("serve them with: rtcgear serve --web-dir {}", dir.display());
    }
    Ok(())
}
