//! The command line: clap's definitions of the commands and their flags, the stabilizer's
//! flags that `serve --stabilize` and `stabilize` share, and the parsers of flag values.

use std::net::{IpAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use rtcgear_server::IceServer;
use rtcgear_stabilize::{BorderType, Smoothing, StabilizerConfig};

/// Stream live video to web browsers over WebRTC: encoded once to H.264, sent to every viewer.
#[derive(Parser, Debug)]
#[command(name = "rtcgear", version, about, long_about = None)]
pub struct Cli {
    /// More logging: -v for debug, -vv for trace (RUST_LOG overrides it).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only warnings and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
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
pub struct ServeArgs {
    /// The default stream's source: `test` (the built-in test pattern), a video file (MP4, MKV,
    /// … anything FFmpeg reads), a network stream URL (rtsp://, rtmp://, http(s)://, srt://,
    /// udp://), a video site's page (see --stream-mode), a V4L2 camera (N or /dev/videoN; see
    /// `rtcgear devices`), or a Raspberry Pi camera (pi:N, through the Pi's rpicam-vid).
    #[arg(long, default_value = "test", value_name = "SOURCE")]
    pub source: String,

    /// A named stream, served at /NAME/ (repeatable): NAME=SOURCE, e.g. `--stream yard=test`.
    #[arg(long = "stream", value_name = "NAME=SOURCE")]
    pub streams: Vec<String>,

    /// Address to listen on (HTTP and media). 0.0.0.0 listens on every interface.
    #[arg(long, default_value = "0.0.0.0", value_name = "IP")]
    pub bind: IpAddr,

    /// HTTP port for the page and signalling (0 picks a free one).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,

    /// The one UDP port for every viewer's media (default: the same number as --port).
    #[arg(long, value_name = "PORT")]
    pub udp_port: Option<u16>,

    /// ICE over TCP, for viewers whose UDP is blocked, on a TCP port of its own (default: on
    /// the HTTP port, which then takes HTTP, HTTPS and ICE-TCP alike).
    #[arg(long, value_name = "PORT", conflicts_with = "no_tcp")]
    pub tcp_port: Option<u16>,

    /// No ICE over TCP: media over UDP only.
    #[arg(long)]
    pub no_tcp: bool,

    /// How viewers' browsers trade delay for smoothness: balanced lets the browser buffer for
    /// a jittery network; low asks it to show each frame as soon as it is decoded (see
    /// BENCHMARKS.md, Browser latency).
    #[arg(long, value_enum, default_value_t = LatencyArg::Balanced)]
    pub latency: LatencyArg,

    /// Frame size, WIDTHxHEIGHT: the test pattern's size (default 1280x720); other sources
    /// are scaled to it when it is given.
    #[arg(long, value_parser = parse_size, value_name = "WxH")]
    pub size: Option<(u32, u32)>,

    /// Frames a second: the test pattern's and a Pi camera's, and a hint to V4L2 cameras (which
    /// take their nearest rate).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub fps: u32,

    /// Video bitrate in kbit/s (default: chosen for the size and rate).
    #[arg(long, value_name = "KBPS", value_parser = clap::value_parser!(u32).range(50..=100_000))]
    pub bitrate: Option<u32>,

    /// Decode and encode H.264 sources again instead of passing them through as they are.
    /// H.264 without B-frames in a file or network stream is passed through to viewers by
    /// default (no transform asked for): next to no CPU, but keyframes come only as the source
    /// sends them, so a viewer that loses a picture waits for the next one.
    #[arg(long)]
    pub transcode: bool,

    /// The picture format: for a V4L2 camera, the format to capture in (yuyv, nv12, yu12,
    /// mjpeg, or h264 from a camera with its own encoder, passed through; default: the best raw
    /// or MJPEG format the camera offers at the size and rate); for any source, `gray` to serve
    /// it in shades of grey (vidgear's `colorspace`).
    #[arg(long, value_name = "FORMAT", value_parser = parse_format)]
    pub format: Option<String>,

    /// Resolve http(s) sources that are a video site's page to its media stream, with yt-dlp
    /// (vidgear's `stream_mode`), picking a quality to match --size. YouTube, Twitch, Vimeo and
    /// Dailymotion pages are resolved without this flag. Needs yt-dlp installed (`pipx install
    /// yt-dlp` or `pip install yt-dlp`; RTCGEAR_YT_DLP names another program).
    #[arg(long)]
    pub stream_mode: bool,

    /// What a Raspberry Pi camera (pi:N) delivers: `h264` from the Pi's hardware encoder,
    /// passed through (Pi 4, 3, Zero 2), `yuv420` raw frames encoded here (Pi 5, or with
    /// --stabilize/--transcode), or `auto` to pick by the Pi model. rpicam-vid (or
    /// libcamera-vid) must be installed; RTCGEAR_RPICAM_VID names another program.
    #[arg(long, value_name = "CODEC", default_value = "auto", value_parser = ["auto", "h264", "yuv420"])]
    pub pi_codec: String,

    /// Play file sources again from the start when they end, forever (vidgear's
    /// `enable_infinite_frames`).
    #[arg(long = "loop")]
    pub looping: bool,

    /// Wait this many seconds before opening file and network sources (vidgear's `time_delay`).
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0, value_parser = parse_delay)]
    pub start_delay: f64,

    /// Stabilize the video (vidgear's `stabilize=True`): track the camera's shake and warp it
    /// away.
    #[arg(long, help_heading = "Stabilization")]
    pub stabilize: bool,

    #[command(flatten)]
    pub stabilizer: StabilizerArgs,

    /// Serve the page from this folder's templates/ and static/ (see `rtcgear export-web`).
    #[arg(long, value_name = "DIR")]
    pub web_dir: Option<PathBuf>,

    /// A STUN or TURN server for the browsers and WHEP clients (repeatable): stun:HOST:PORT,
    /// turn:USER:PASS@HOST:PORT?transport=udp|tcp or turns:…, or turn:HOST:PORT with
    /// --turn-secret (the port and the transport may be left out). The password follows the
    /// last ':' before the last '@', so a user name may hold ':'; percent-escapes are decoded
    /// (%40 for '@', %3A for ':', %25 for '%'). A turn: server without ?transport= is offered
    /// over UDP and TCP both.
    #[arg(long = "ice-server", value_name = "URL", value_parser = parse_ice_server)]
    pub ice_servers: Vec<IceServer>,

    /// The secret shared with the TURN server (coturn's static-auth-secret, with
    /// use-auth-secret): every page and WHEP answer gets fresh time-limited credentials for
    /// each --ice-server turn:HOST:PORT given without any. Never printed or logged.
    #[arg(
        long,
        env = "RTCGEAR_TURN_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub turn_secret: Option<String>,

    /// How long the TURN credentials made with --turn-secret stay valid, in hours. A page
    /// keeps the ones it got for its reconnections, so make it outlast a page left open.
    #[arg(long, value_name = "HOURS", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=8760))]
    pub turn_ttl: u64,

    /// A public address to announce to viewers (repeatable), for a host behind NAT that
    /// forwards the UDP port, or with a LAN and a public address. An IP or a host name,
    /// resolved once at start (every address it has).
    #[arg(long = "public-ip", value_name = "IP|HOST", value_parser = parse_public_ip)]
    pub public_ips: Vec<PublicIp>,

    /// The most viewers at once over all streams; more get 503 with Retry-After.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_viewers: Option<u64>,

    /// Threads that send the video to the viewers (default: one per CPU core, at most 64).
    /// Each takes a share of the viewers; one that cannot keep up with its share takes no
    /// more (their offers get 503 with Retry-After) until it does again.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=64))]
    pub rtc_threads: Option<u64>,

    /// An origin allowed to call /whep and /offer from its own pages (repeatable; `*` for any).
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,

    /// Turn access control on with this secret: WHEP needs `Authorization: Bearer SECRET`, the
    /// page basic auth (any user, SECRET as the password) or the signed link printed at start.
    #[arg(
        long,
        env = "RTCGEAR_TOKEN",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub token: Option<String>,

    /// How long the printed signed link stays valid, in hours.
    #[arg(long, value_name = "HOURS", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=8760))]
    pub link_ttl: u64,

    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key (PKCS#8 or RSA) of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Keep capturing and encoding when nobody watches (default: idle until a viewer comes).
    #[arg(long)]
    pub always_live: bool,

    /// Offers (/whep, /offer) allowed per client address and minute, N (at most 20) of them at
    /// once; more get 429 with Retry-After. 0 turns the limit off.
    #[arg(long, value_name = "N", default_value_t = 60, help_heading = "Limits")]
    pub offer_rate: u32,

    /// The most HTTP connections at once, in total; more are turned away with 503.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Limits")]
    pub max_connections: u64,

    /// The most HTTP connections at once from one address (IPv6: one /64).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Limits")]
    pub max_connections_per_ip: u64,

    /// Seconds a client may take to send a whole request (head and body); slower ones get 408.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600), help_heading = "Limits")]
    pub request_timeout: u64,

    /// Seconds a keep-alive HTTP connection may sit idle before it is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), help_heading = "Limits")]
    pub idle_timeout: u64,
}

#[derive(Args, Debug)]
pub struct StabilizeArgs {
    /// The video to stabilize.
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// The file to write: .mp4, .mkv or .mov.
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    #[command(flatten)]
    pub stabilizer: StabilizerArgs,
    /// x264's constant rate factor: lower is better quality and bigger files.
    #[arg(long, default_value_t = 20.0, value_parser = parse_crf)]
    pub crf: f32,
}

#[derive(Args, Debug)]
pub struct EncodeArgs {
    /// The file to write.
    #[arg(short, long, default_value = "rtcgear-test.h264", value_name = "FILE")]
    pub output: PathBuf,

    /// Frame size, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720", value_parser = parse_size, value_name = "WxH")]
    pub size: (u32, u32),

    /// Frames per second.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub fps: u32,

    /// How many frames to encode.
    #[arg(long, default_value_t = 150, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub frames: u64,

    /// Video bitrate in kbit/s (default: chosen for the size and rate).
    #[arg(long, value_name = "KBPS", value_parser = clap::value_parser!(u32).range(50..=100_000))]
    pub bitrate: Option<u32>,
}

/// The stabilizer's settings, shared by `serve --stabilize` and `stabilize`.
#[derive(Args, Debug)]
pub struct StabilizerArgs {
    /// Frames either side that the camera path is averaged over (the moving average delays the
    /// video by as many frames; with --smoothing causal it is the filter's time constant).
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..=300),
          value_name = "FRAMES", help_heading = "Stabilization")]
    pub smoothing_radius: u64,

    /// How the path is smoothed: `average` (vidgear's, delays by --smoothing-radius frames) or
    /// `causal` (no delay, for live viewing).
    #[arg(long, default_value = "average", value_parser = ["average", "causal"],
          help_heading = "Stabilization")]
    pub smoothing: String,

    /// Pixels of border added around the stabilized picture (vidgear's BORDER_SIZE).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1000),
          value_name = "PIXELS", help_heading = "Stabilization")]
    pub border_size: u32,

    /// Zoom in to hide the borders instead of adding them (vidgear's CROP_N_ZOOM).
    #[arg(long, help_heading = "Stabilization")]
    pub crop_zoom: bool,

    /// How the border is filled: black, reflect, reflect_101, replicate or wrap (vidgear's
    /// BORDER_TYPE).
    #[arg(long, default_value = "black", value_parser = parse_border, value_name = "TYPE",
          help_heading = "Stabilization")]
    pub border_type: BorderType,
}

impl StabilizerArgs {
    pub fn config(&self) -> StabilizerConfig {
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
pub fn gray(args: &ServeArgs) -> bool {
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

/// A `--public-ip`: the addresses of an IP or a host name, resolved while parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicIp(pub Vec<IpAddr>);

fn parse_public_ip(s: &str) -> Result<PublicIp, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(PublicIp(vec![ip]));
    }
    // `[::1]` as written in URLs.
    if let Some(ip) = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .and_then(|s| s.parse::<IpAddr>().ok())
    {
        return Ok(PublicIp(vec![ip]));
    }
    if s.is_empty() || s.contains(['/', ' ', ':']) {
        return Err(format!("{s:?} is neither an IP address nor a host name"));
    }
    let mut ips: Vec<IpAddr> = (s, 0)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve the host name {s:?}: {e}"))?
        .map(|addr| addr.ip())
        .collect();
    ips.dedup();
    if ips.is_empty() {
        return Err(format!("the host name {s:?} has no address"));
    }
    Ok(PublicIp(ips))
}

fn parse_ice_server(s: &str) -> Result<IceServer, String> {
    s.parse()
        .map_err(|e: rtcgear_server::ServerError| e.to_string())
}

/// `--latency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LatencyArg {
    /// Each frame shown as soon as it is decoded (a playout delay of 0).
    Low,
    /// The browser's own jitter buffer.
    Balanced,
}
