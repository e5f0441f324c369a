//! Sample NAL units and Annex B helpers for the module's tests.

/// NAL units behind four-byte start codes.
pub(super) fn annexb(nals: &[&[u8]]) -> Vec<u8> {
    nals.iter()
        .flat_map(|nal| [&[0u8, 0, 0, 1][..], nal].concat())
        .collect()
}

/// High 4.1.
pub(super) const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x29, 0xac];
pub(super) const PPS: &[u8] = &[0x68, 0xee, 0x3c];
pub(super) const IDR: &[u8] = &[0x65, 0x88, 0x80, 0x10];
pub(super) const P: &[u8] = &[0x41, 0x9a, 0x02];
/// A second slice of the same picture as [`P`] (`first_mb_in_slice` above 0).
pub(super) const P_SECOND_SLICE: &[u8] = &[0x41, 0x5a, 0x02];
