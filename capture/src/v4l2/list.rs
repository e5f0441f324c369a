//! What [`V4l2Source::list`] finds: the cameras, their formats, sizes and frame rates.

use std::io;
use std::path::{Path, PathBuf};

use v4l::video::Capture;
use v4l::Device;

use super::link::check_caps;
use super::negotiate::{fourcc_string, rates_of, sizes_of, Sizes, DEFAULT_FPS, DEFAULT_SIZE};
use super::{V4l2Format, V4l2Source};
use crate::FrameRate;

/// A camera as [`V4l2Source::list`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceInfo {
    /// The device node, e.g. `/dev/video0`.
    pub path: PathBuf,
    /// The card's name, e.g. `HD Pro Webcam C920`.
    pub name: String,
    /// The kernel driver, e.g. `uvcvideo`.
    pub driver: String,
    /// Where it is attached, e.g. `usb-0000:00:14.0-1`.
    pub bus: String,
    /// What it can deliver.
    pub formats: Vec<FormatInfo>,
}

/// One pixel format of a camera, with its sizes and rates.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FormatInfo {
    /// The four-character code, e.g. `YUYV`.
    pub fourcc: String,
    /// The driver's description, e.g. `YUYV 4:2:2`.
    pub description: String,
    /// The format as [`V4l2Source`] reads it; `None` when it cannot (yet).
    pub format: Option<V4l2Format>,
    /// Sizes with their frame rates. For a camera with a range of sizes, these are the smallest
    /// and the largest, and `stepwise` is set.
    pub sizes: Vec<SizeInfo>,
    /// Whether the sizes are a range (any size between the two listed, in steps).
    pub stepwise: bool,
}

/// A frame size and the rates a camera offers at it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SizeInfo {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rates, as the driver lists them (for a range: its ends).
    pub rates: Vec<FrameRate>,
}

impl V4l2Source {
    /// The cameras on this machine (`/dev/video*` nodes that capture video), with their formats,
    /// sizes and frame rates, in device order. Nodes that cannot be opened are left out.
    pub fn list() -> Vec<DeviceInfo> {
        let mut nodes: Vec<(u32, PathBuf)> = match std::fs::read_dir("/dev") {
            Ok(entries) => entries
                .flatten()
                .filter_map(|entry| {
                    let name = entry.file_name();
                    let number = name.to_str()?.strip_prefix("video")?.parse().ok()?;
                    Some((number, entry.path()))
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        nodes.sort();
        nodes
            .into_iter()
            .filter_map(|(_, path)| match describe(&path) {
                Ok(info) => info,
                Err(err) => {
                    tracing::debug!("{}: skipped: {err}", path.display());
                    None
                }
            })
            .collect()
    }
}

/// One node as [`V4l2Source::list`] shows it; `None` for a node that does not capture video.
fn describe(path: &Path) -> io::Result<Option<DeviceInfo>> {
    let device = Device::with_path(path)?;
    let caps = device.query_caps()?;
    if check_caps(caps.capabilities).is_err() {
        return Ok(None);
    }
    let mut formats = Vec::new();
    for description in device.enum_formats()? {
        let fourcc = description.fourcc;
        let Sizes {
            sizes: mut listed,
            stepwise,
        } = sizes_of(&device, fourcc, DEFAULT_SIZE);
        if stepwise {
            // Just the ends of the range, not the point picked for the default size.
            listed = vec![listed[0], listed[listed.len() - 1]];
        }
        let sizes = listed
            .into_iter()
            .map(|(width, height)| {
                let mut rates = rates_of(&device, fourcc, width, height, DEFAULT_FPS);
                rates.sort_by(|a, b| b.as_f64().total_cmp(&a.as_f64()));
                rates.dedup();
                SizeInfo {
                    width,
                    height,
                    rates,
                }
            })
            .collect();
        formats.push(FormatInfo {
            fourcc: fourcc_string(fourcc.repr),
            description: description.description,
            format: V4l2Format::from_fourcc(fourcc.repr),
            sizes,
            stepwise,
        });
    }
    Ok(Some(DeviceInfo {
        path: path.to_path_buf(),
        name: caps.card,
        driver: caps.driver,
        bus: caps.bus,
        formats,
    }))
}
