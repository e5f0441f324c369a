//! Files and network streams through FFmpeg's libraries (feature `ffmpeg`): RTSP, RTMP, HTTP
//! (HLS, MPEG-TS, MP4), SRT, UDP, and any file FFmpeg reads.
//!
//! [`FfmpegSource`] decodes the video into I420 frames; [`FfmpegH264Source`] passes H.264 that
//! browsers play on as it is, never decoded, and [`FfmpegH264Source::open_or_decode`] opens an
//! input once and decodes it when it cannot be passed through ([`FfmpegOpened`]). Both play
//! the same way, as [`FfmpegOptions`] say: at the pace of the stream's timestamps, a file looped
//! on request with time going forward, a network stream that drops reopened with a growing
//! pause while errors say why, its URL resolved anew at each open by a [`UrlResolver`] if one
//! is set (a video site's page, through [`ytdlp`](crate::ytdlp)).
//!
//! [`H264Decoder`] turns passed-through H.264 back into pictures, for a viewer that needs them
//! encoded in another codec.
//!
//! The files, one job each: `playback` (the options and the playback loop both sources share),
//! `decode` ([`FfmpegSource`]), `h264` ([`FfmpegH264Source`]) and `decoder` ([`H264Decoder`]).

mod decode;
mod decoder;
mod h264;
mod playback;

pub use decode::FfmpegSource;
pub use decoder::H264Decoder;
pub use h264::{FfmpegH264Source, FfmpegOpened};
pub use playback::{FfmpegOptions, UrlResolver};
