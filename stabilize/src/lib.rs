//! Real-time video stabilization for rtcgear.
//!
//! This crate will track features between consecutive frames, estimate the camera's motion,
//! smooth its trajectory and warp each frame by the correction, in the send/receive shape of the
//! encoder. It depends only on `rtcgear-capture`'s frame vocabulary, so it can be used on its own.
//!
//! It holds no API yet: the stabilization issue fills it in.
