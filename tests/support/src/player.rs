//! rtcgear's player page as a test sees it through a [`Browser`]: the page keeps its state in
//! `window.rtcgear` (`state`, `stats.framesDecoded`, `reconnects`, `pc`, and `problem` and
//! `iceFailures` when its media found no route) and shows the video in `<video id="video">`.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::webdriver::Browser;
use crate::Error;

/// The player's state in one script: connection state, frames decoded and the video's size.
const STATE_SCRIPT: &str = "const r = window.rtcgear, v = document.getElementById('video'); \
    return {state: r ? r.state : 'loading', \
    frames: r && r.stats ? (r.stats.framesDecoded || 0) : 0, \
    width: v ? v.videoWidth : 0, height: v ? v.videoHeight : 0}";

/// What the player says when a wait times out.
const DIAGNOSIS_SCRIPT: &str = "return window.rtcgear ? {state: window.rtcgear.state, \
    says: document.getElementById('state').textContent, \
    reconnects: window.rtcgear.reconnects, problem: window.rtcgear.problem, \
    pc: window.rtcgear.pc && [window.rtcgear.pc.connectionState, \
    window.rtcgear.pc.iceConnectionState], stats: window.rtcgear.stats} : null";

/// The player's state at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayerState {
    /// The connection state (`connecting`, `connected`, `reconnecting`, or `failed` when the
    /// media found no route), or `loading` before the page's script has run.
    pub state: String,
    /// Frames decoded since the player last connected.
    pub frames: u64,
    /// The video's width in pixels, 0 before the first frame.
    pub width: u32,
    /// The video's height in pixels, 0 before the first frame.
    pub height: u32,
}

impl PlayerState {
    /// Whether the player is connected to the server.
    pub fn connected(&self) -> bool {
        self.state == "connected"
    }

    /// Whether it is connected and shows decoded frames.
    pub fn playing(&self) -> bool {
        self.connected() && self.frames > 0 && self.width > 0
    }
}

impl Browser {
    /// The player's state in the current tab.
    pub fn try_player_state(&self) -> Result<PlayerState, Error> {
        let value = self.try_eval(STATE_SCRIPT)?;
        let number = |key: &str| value[key].as_u64().unwrap_or(0);
        Ok(PlayerState {
            state: value["state"].as_str().unwrap_or("").to_string(),
            frames: number("frames"),
            width: u32::try_from(number("width")).unwrap_or(0),
            height: u32::try_from(number("height")).unwrap_or(0),
        })
    }

    /// Frames the player in the current tab has decoded since it last connected.
    pub fn frames_decoded(&self) -> u64 {
        self.eval("return window.rtcgear.stats.framesDecoded")
            .as_u64()
            .unwrap_or(0)
    }

    /// The video's size in the current tab, as `[width, height]`.
    pub fn video_size(&self) -> Value {
        self.eval(
            "const v = document.getElementById('video'); return [v.videoWidth, v.videoHeight]",
        )
    }

    /// Polls `script` every 100 ms until it returns `true`.
    ///
    /// # Panics
    ///
    /// After `limit`, with `what` and the player's state.
    pub fn wait_for(&self, what: &str, limit: Duration, script: &str) {
        let deadline = Instant::now() + limit;
        loop {
            if self.eval(script) == Value::Bool(true) {
                return;
            }
            if Instant::now() > deadline {
                let state = self.eval(DIAGNOSIS_SCRIPT);
                panic!("timed out after {limit:?} waiting for {what}; player: {state}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}
