//! A bit reader for NAL unit payloads: Exp-Golomb numbers past emulation prevention bytes.

/// Reads the bits of a NAL unit's payload, skipping emulation prevention bytes (`00 00 03`).
pub(super) struct Bits<'a> {
    data: &'a [u8],
    byte: usize,
    bit: u32,
    zeros: u32,
}

impl<'a> Bits<'a> {
    pub(super) fn new(data: &'a [u8]) -> Bits<'a> {
        Bits {
            data,
            byte: 0,
            bit: 0,
            zeros: 0,
        }
    }

    pub(super) fn bit(&mut self) -> Option<u32> {
        if self.bit == 0 {
            let mut value = *self.data.get(self.byte)?;
            if self.zeros >= 2 && value == 3 {
                self.byte += 1;
                self.zeros = 0;
                value = *self.data.get(self.byte)?;
            }
            self.zeros = if value == 0 { self.zeros + 1 } else { 0 };
        }
        let value = *self.data.get(self.byte)?;
        let out = u32::from(value >> (7 - self.bit) & 1);
        self.bit += 1;
        if self.bit == 8 {
            self.bit = 0;
            self.byte += 1;
        }
        Some(out)
    }

    /// An unsigned Exp-Golomb number, `ue(v)`; `None` past the end or above `u32::MAX`.
    pub(super) fn exp_golomb(&mut self) -> Option<u32> {
        let mut leading = 0;
        while self.bit()? == 0 {
            leading += 1;
            if leading > 31 {
                return None;
            }
        }
        let mut rest = 0u32;
        for _ in 0..leading {
            rest = rest << 1 | self.bit()?;
        }
        Some((1u32 << leading) - 1 + rest)
    }
}
