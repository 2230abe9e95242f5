//! The replica store's errors.

use std::fmt;
use std::io;

use crate::stream::StreamError;

/// Everything that can go wrong in the replica store. Each variant is a distinct condition a
/// caller can act on.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReplicaError {
    /// A storage call failed. When it was a write or sync, the store is now poisoned.
    Io {
        /// What the store was doing.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The stream was refused (damaged, stale, for another disk or generation, ...). Nothing
    /// visible changed.
    Stream(StreamError),
    /// A file of the store failed verification (magic, checksum, bounds or consistency).
    Corrupt {
        /// Which object.
        object: String,
        /// What was wrong.
        reason: String,
    },
    /// A file of the store has a major version this build does not know.
    UnsupportedVersion {
        /// Which object.
        object: String,
        /// Its major version.
        version: u16,
    },
    /// Another process has the store open for writing.
    Locked {
        /// The store's location.
        path: String,
    },
    /// No store exists there (open), or one already does (create).
    NotFound {
        /// The store's location.
        path: String,
    },
    /// A store already exists there.
    AlreadyExists {
        /// The store's location.
        path: String,
    },
    /// An earlier write or sync failed: the store refuses further changes until it is closed
    /// and opened again (which recovers it). A failed fsync is never retried.
    Poisoned,
    /// Another ingest is in progress on this store.
    IngestInProgress,
    /// There is no such recovery point.
    NoSuchPoint {
        /// The point's generation.
        generation: [u8; 16],
        /// Its sequence number.
        sequence: u64,
    },
    /// A read outside the point's disk.
    OutOfRange {
        /// Offset asked for.
        offset: u64,
        /// Length asked for.
        len: u64,
        /// The point's disk size.
        disk_size: u64,
    },
    /// The stream does not fit under the store's byte cap even after expiring every point
    /// but the newest; nothing visible changed.
    CapacityExceeded {
        /// Bytes the store would hold.
        needed: u64,
        /// The cap.
        cap: u64,
    },
    /// A rollback left points after the rollback point; discard them first.
    DetachedPointsExist {
        /// How many.
        count: usize,
    },
    /// The call does not make sense in the store's state or with these arguments.
    InvalidArgument {
        /// Why.
        reason: String,
    },
    /// A cut stream's resume point does not match the stream offered to continue it.
    ResumeMismatch {
        /// Why.
        reason: String,
    },
    /// The file system (or object store) ran out of space while the store was writing: the
    /// stream or change was refused, nothing visible changed and the store stays usable.
    StorageFull {
        /// What the store was writing.
        op: &'static str,
    },
    /// Another writer committed to the store first (two processes wrote one store at once,
    /// or a writer's lease on object storage was taken over). Nothing of this handle's change
    /// was committed; the handle is poisoned: open the store again to see the other writer's
    /// state.
    Conflict {
        /// The store's location.
        path: String,
    },
    /// The store was opened read-only: it refuses every change.
    ReadOnly,
    /// The URL's scheme names a backend this build does not have (`s3://` and `az://` need
    /// the cargo feature `object-store`), or no backend at all.
    UnsupportedScheme {
        /// The scheme (never the rest of the URL, which may hold credentials).
        scheme: String,
    },
    /// Data read back from the store failed its checksum.
    ChecksumMismatch {
        /// Which object.
        object: String,
        /// Byte offset of the failing 4 KiB chunk in it.
        offset: u64,
    },
}

impl fmt::Display for ReplicaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplicaError::Io { op, source } => write!(f, "replica store I/O error while {op}: {source}"),
            ReplicaError::Stream(e) => write!(f, "stream refused: {e}"),
            ReplicaError::Corrupt { object, reason } => write!(f, "store object {object} is corrupt: {reason}"),
            ReplicaError::UnsupportedVersion { object, version } => {
                write!(f, "store object {object} has major version {version}, which this build does not know")
            }
            ReplicaError::Locked { path } => write!(f, "store {path} is open for writing by another process"),
            ReplicaError::NotFound { path } => write!(f, "no store at {path}"),
            ReplicaError::AlreadyExists { path } => write!(f, "a store already exists at {path}"),
            ReplicaError::Poisoned => f.write_str(
                "an earlier write or sync failed; the store accepts no changes until it is reopened",
            ),
            ReplicaError::IngestInProgress => f.write_str("an ingest is in progress on this store"),
            ReplicaError::NoSuchPoint { generation, sequence } => {
                write!(f, "no recovery point {sequence} of generation {}", hex(generation))
            }
            ReplicaError::OutOfRange { offset, len, disk_size } => {
                write!(f, "read of {len} bytes at {offset} is past the point's disk size {disk_size}")
            }
            ReplicaError::CapacityExceeded { needed, cap } => {
                write!(f, "the store would hold {needed} bytes, over its cap of {cap}, even after expiring every older point")
            }
            ReplicaError::DetachedPointsExist { count } => {
                write!(f, "{count} points detached by a rollback still exist; discard them first")
            }
            ReplicaError::InvalidArgument { reason } => write!(f, "invalid argument: {reason}"),
            ReplicaError::ResumeMismatch { reason } => write!(f, "cannot resume: {reason}"),
            ReplicaError::StorageFull { op } => {
                write!(f, "out of space while {op}; nothing visible changed")
            }
            ReplicaError::Conflict { path } => write!(
                f,
                "another writer committed to store {path} first; nothing of this change was committed"
            ),
            ReplicaError::ReadOnly => f.write_str("the store was opened read-only"),
            ReplicaError::UnsupportedScheme { scheme } => write!(
                f,
                "this build has no store backend for URL scheme {scheme:?} (s3 and az need the cargo feature object-store)"
            ),
            ReplicaError::ChecksumMismatch { object, offset } => {
                write!(f, "checksum mismatch in store object {object} at offset {offset}")
            }
        }
    }
}

impl std::error::Error for ReplicaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReplicaError::Io { source, .. } => Some(source),
            ReplicaError::Stream(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StreamError> for ReplicaError {
    fn from(e: StreamError) -> Self {
        ReplicaError::Stream(e)
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn corrupt(object: &str, reason: impl Into<String>) -> ReplicaError {
    ReplicaError::Corrupt {
        object: object.to_string(),
        reason: reason.into(),
    }
}

pub(crate) fn io_err(op: &'static str) -> impl FnOnce(io::Error) -> ReplicaError {
    move |source| ReplicaError::Io { op, source }
}

/// Result of the replica store.
pub type Result<T, E = ReplicaError> = std::result::Result<T, E>;
