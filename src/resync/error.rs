//! Errors of checksum resync.

use std::fmt;
use std::io;

use crate::stream::StreamError;

/// What went wrong while hashing, decoding a hash list, comparing or encoding.
#[derive(Debug)]
#[non_exhaustive]
pub enum ResyncError {
    /// The block size is not a power of two from 4 KiB to 1 MiB.
    InvalidBlockSize(u32),
    /// The disk size is 0 or above 2^60 bytes (the stream's `MAX_DISK_SIZE`).
    InvalidDiskSize(u64),
    /// Reading the disk failed at `offset`.
    Io {
        /// The first byte of the read that failed.
        offset: u64,
        /// The error.
        source: io::Error,
    },
    /// A hash list ends before a field: it starts at byte `at` and needs `need` more bytes.
    Truncated {
        /// Offset of the field.
        at: usize,
        /// Bytes it needs.
        need: usize,
    },
    /// A hash list is shorter than its checksum (4 bytes).
    NoChecksum,
    /// A hash list's CRC-32 does not match its bytes.
    Checksum,
    /// Not a hash list: the magic bytes are wrong.
    Magic,
    /// A hash list of a major version this build does not read.
    UnsupportedVersion(u16),
    /// A reserved field or flag is not zero.
    ReservedNotZero(&'static str),
    /// Bytes remain after the last hash.
    Trailing {
        /// How many.
        extra: usize,
    },
    /// A count in a hash list is impossible for its disk and block size, or for its length.
    BadCount {
        /// The count.
        what: &'static str,
        /// Its value.
        value: u64,
        /// The largest value possible there.
        max: u64,
    },
    /// A hash list's disk size or block size is out of range (a damaged or forged list, not
    /// the caller's argument: that is [`ResyncError::InvalidDiskSize`] or
    /// [`ResyncError::InvalidBlockSize`]).
    BadField {
        /// Which field.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// The run map of a hash list is malformed: a varint is overlong, a run other than the
    /// first is empty, or the runs do not add up to the block count / data count.
    BadRunMap(&'static str),
    /// The list carries an authentication tag but was read without a secret
    /// (`HashList::decode`): read it with `HashList::decode_authenticated`.
    UnexpectedTag,
    /// A secret was given but the list carries no authentication tag: it may have been
    /// replaced in transit.
    Unauthenticated,
    /// The list's authentication tag does not verify: changed in transit, or another secret.
    AuthenticationFailed,
    /// Two lists cannot be compared: different block sizes.
    BlockSizeMismatch {
        /// The replica's block size.
        replica: u32,
        /// The source's block size.
        source: u32,
    },
    /// Two lists cannot be compared: they were hashed with different salts.
    SaltMismatch,
    /// The live path (`ResyncPlan::adopt`) needs the replica, the source and the tracker at
    /// one size: resize the replica first, or ship with `ResyncPlan::encode`.
    SizeMismatch {
        /// The replica's size (its hash list's).
        replica: u64,
        /// The source's size (its hash list's).
        source: u64,
        /// The tracker's disk size.
        tracker: u64,
    },
    /// Encoding the delta stream failed.
    Stream(StreamError),
    /// The tracker refused the plan's extents (`Tracker::adopt_lineage`).
    Tracker(crate::TrackerError),
    /// The sink refused a frame of the stream.
    Sink(io::Error),
}

impl fmt::Display for ResyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResyncError::InvalidBlockSize(b) => {
                write!(
                    f,
                    "block size {b} is not a power of two from 4 KiB to 1 MiB"
                )
            }
            ResyncError::InvalidDiskSize(s) => {
                write!(f, "disk size {s} is not 1 byte to 2^60 bytes")
            }
            ResyncError::Io { offset, source } => {
                write!(f, "reading the disk at byte {offset}: {source}")
            }
            ResyncError::Truncated { at, need } => {
                write!(f, "hash list ends at byte {at} (needs {need} more)")
            }
            ResyncError::NoChecksum => write!(f, "hash list too short for a checksum"),
            ResyncError::Checksum => write!(f, "hash list checksum mismatch"),
            ResyncError::Magic => write!(f, "not a hash list (bad magic)"),
            ResyncError::UnsupportedVersion(v) => {
                write!(f, "hash list major version {v} is not supported")
            }
            ResyncError::ReservedNotZero(what) => {
                write!(f, "hash list reserved {what} is not zero")
            }
            ResyncError::Trailing { extra } => {
                write!(f, "hash list has {extra} unexpected bytes at the end")
            }
            ResyncError::BadCount { what, value, max } => {
                write!(f, "hash list {what} is {value}, at most {max} possible")
            }
            ResyncError::SizeMismatch {
                replica,
                source,
                tracker,
            } => write!(
                f,
                "the replica ({replica} bytes), the source ({source}) and the tracker \
                 ({tracker}) differ in size: resize the replica first, or encode the plan"
            ),
            ResyncError::Tracker(e) => write!(f, "the tracker refused the plan: {e}"),
            ResyncError::BadField { what, value } => {
                write!(f, "hash list {what} {value} is out of range")
            }
            ResyncError::BadRunMap(why) => write!(f, "hash list run map: {why}"),
            ResyncError::UnexpectedTag => {
                write!(f, "hash list is authenticated but no secret was given")
            }
            ResyncError::Unauthenticated => {
                write!(
                    f,
                    "hash list carries no authentication tag but a secret was given"
                )
            }
            ResyncError::AuthenticationFailed => {
                write!(
                    f,
                    "hash list authentication failed (changed, or another secret)"
                )
            }
            ResyncError::BlockSizeMismatch { replica, source } => write!(
                f,
                "hash lists of different block sizes (replica {replica}, source {source})"
            ),
            ResyncError::SaltMismatch => write!(f, "hash lists hashed with different salts"),
            ResyncError::Stream(e) => write!(f, "encoding the resync stream: {e}"),
            ResyncError::Sink(e) => write!(f, "sending the resync stream: {e}"),
        }
    }
}

impl std::error::Error for ResyncError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ResyncError::Io { source, .. } => Some(source),
            ResyncError::Stream(e) => Some(e),
            ResyncError::Sink(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StreamError> for ResyncError {
    fn from(e: StreamError) -> Self {
        ResyncError::Stream(e)
    }
}

impl From<crate::codec::Fault> for ResyncError {
    fn from(f: crate::codec::Fault) -> Self {
        use crate::codec::FaultKind;
        match f.kind {
            FaultKind::Short { at, need } => ResyncError::Truncated { at, need },
            FaultKind::NotZero { .. } => ResyncError::ReservedNotZero("header field"),
            FaultKind::Trailing { extra } => ResyncError::Trailing { extra },
            FaultKind::NoChecksum => ResyncError::NoChecksum,
            FaultKind::Checksum => ResyncError::Checksum,
            FaultKind::Magic => ResyncError::Magic,
            FaultKind::Version(v) => ResyncError::UnsupportedVersion(v),
        }
    }
}
