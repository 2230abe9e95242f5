//! Value types shared by the tracker, the stream and the C ABI.

use std::fmt;

/// A byte range of a disk: `len` bytes starting at `offset`, written or discarded.
///
/// Exposed to C as the plain value type `blockdelta_extent` (24 bytes). It grew in 0.2 (from 16
/// bytes) to say whether the range was written or discarded (`kind`, plus a reserved word that
/// must be zero); it is not meant to grow again.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Extent {
    /// First byte of the range.
    pub offset: u64,
    /// Length of the range in bytes.
    pub len: u64,
    /// Whether the range was written (its data must be read and shipped) or discarded.
    pub kind: ExtentKind,
    /// Reserved: zero.
    pub reserved: u32,
}

/// What happened to an [`Extent`] last. In C a `uint32_t` holding
/// `BLOCKDELTA_EXTENT_KIND_WRITE` (0) or `BLOCKDELTA_EXTENT_KIND_DISCARD` (1).
#[repr(u32)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExtentKind {
    /// Written: the replica needs the source's data.
    #[default]
    Write = 0,
    /// Discarded (trimmed/unmapped) as whole blocks: the replica needs a DISCARD, no data.
    Discard = 1,
}

impl ExtentKind {
    /// The kind with this number, if there is one (for values that come from C).
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            0 => Some(ExtentKind::Write),
            1 => Some(ExtentKind::Discard),
            _ => None,
        }
    }
}

impl Extent {
    /// A written extent.
    pub const fn new(offset: u64, len: u64) -> Self {
        Extent {
            offset,
            len,
            kind: ExtentKind::Write,
            reserved: 0,
        }
    }

    /// A discarded extent.
    pub const fn discard(offset: u64, len: u64) -> Self {
        Extent {
            offset,
            len,
            kind: ExtentKind::Discard,
            reserved: 0,
        }
    }

    /// One past the last byte, or `None` if that overflows `u64`.
    pub const fn checked_end(&self) -> Option<u64> {
        self.offset.checked_add(self.len)
    }
}

/// A tracker's generation: a random 128-bit id, new whenever a tracker is created or its
/// continuity of tracking is lost, or the one a replica store chose for its new lineage after a
/// rollback (`Tracker::adopt_lineage`). Two checkpoints are comparable only within one
/// generation.
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
