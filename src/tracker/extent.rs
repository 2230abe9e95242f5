//! Value types shared by the tracker, the stream and the C ABI.

use std::fmt;

/// A byte range of a disk: `len` bytes starting at `offset`.
///
/// Exposed to C as the plain value type `blockdelta_extent` (it will never grow).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Extent {
    /// First byte of the range.
    pub offset: u64,
    /// Length of the range in bytes.
    pub len: u64,
}

impl Extent {
    /// A new extent.
    pub const fn new(offset: u64, len: u64) -> Self {
        Extent { offset, len }
    }

    /// One past the last byte, or `None` if that overflows `u64`.
    pub const fn checked_end(&self) -> Option<u64> {
        self.offset.checked_add(self.len)
    }
}

/// A tracker's generation: a random 128-bit id, new whenever a tracker is created or its
/// continuity of tracking is lost. Two checkpoints are comparable only within one generation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GenerationId(pub [u8; 16]);

impl GenerationId {
    /// A fresh random id from the operating system's CSPRNG.
    pub fn random() -> Self {
        use ring::rand::SecureRandom;
        let mut b = [0u8; 16];
        // The system RNG only fails if the OS has no entropy source at all; a tracker cannot
        // promise unique generations without one, so that is a fatal environment error.
        ring::rand::SystemRandom::new()
            .fill(&mut b)
            .expect("the operating system's random number generator failed");
        GenerationId(b)
    }
}

impl fmt::Debug for GenerationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GenerationId({self})")
    }
}

impl fmt::Display for GenerationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
