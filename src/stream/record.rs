//! Decoded records: what the decoder hands to the applier once a frame is fully verified.

/// How a DATA record's payload is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// Stored as is.
    Raw,
    /// An lz4 block (no frame, no size prefix).
    Lz4,
}

/// The consistency of a recovery point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BookmarkKind {
    /// The disk as after a power cut at that moment.
    CrashConsistent,
    /// Applications were quiesced (e.g. VSS, fsfreeze) for this point.
    ApplicationConsistent,
}

impl BookmarkKind {
    pub(crate) fn code(self) -> u8 {
        match self {
            BookmarkKind::CrashConsistent => 1,
            BookmarkKind::ApplicationConsistent => 2,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(BookmarkKind::CrashConsistent),
            2 => Some(BookmarkKind::ApplicationConsistent),
            _ => None,
        }
    }
}

/// A recovery point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bookmark<'a> {
    /// Caller-chosen id.
    pub id: u64,
    /// Time of the recovery point, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Its consistency.
    pub kind: BookmarkKind,
    /// A UTF-8 label of at most 1024 bytes.
    pub label: &'a str,
}

/// The END record's totals, checked by the decoder against what it received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EndSummary {
    /// Record frames between the header and END.
    pub records: u64,
    /// Bytes of every frame before END (header frame included).
    pub bytes: u64,
    /// CRC32 over the 24-byte frame headers of every frame before END.
    pub checksum: u32,
}

/// One verified record. Slices borrow the decoder's input or its scratch and live until the
/// next call on the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Record<'a> {
    /// `data` (already decompressed) belongs at `offset`.
    Data {
        /// Disk offset.
        offset: u64,
        /// The decoded bytes.
        data: &'a [u8],
        /// How they were stored on the wire.
        codec: Codec,
    },
    /// The range reads as zeros.
    Zero {
        /// Disk offset.
        offset: u64,
        /// Length in bytes.
        len: u64,
    },
    /// The range is unmapped; its contents are unspecified.
    Discard {
        /// Disk offset.
        offset: u64,
        /// Length in bytes.
        len: u64,
    },
    /// The disk now has this size.
    Resize {
        /// New size in bytes.
        new_size: u64,
    },
    /// A recovery point: everything before it is durable once the applier has synced.
    Bookmark(Bookmark<'a>),
    /// The stream is complete and its totals matched.
    End(EndSummary),
    /// An optional record type this reader does not know; verified and skipped.
    Skipped {
        /// Its type.
        record_type: u16,
    },
}
