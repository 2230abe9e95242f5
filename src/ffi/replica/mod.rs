//! C ABI of the replica store: `blockdelta_store` (one disk's recovery points), `blockdelta_ingest`
//! (one stream becoming a point), and the snapshot lists `blockdelta_point_list` and
//! `blockdelta_extent_list`.
//!
//! Handle lifetimes, in one place:
//! - `blockdelta_store`: from `blockdelta_store_create` / `blockdelta_store_open`, freed with
//!   `blockdelta_store_free`. Every store function may be called from any number of threads at
//!   once (the store serialises its changes itself); only `_free` must not race with them.
//! - `blockdelta_ingest`: from `blockdelta_store_ingest_begin`, always freed with
//!   `blockdelta_ingest_free`, whatever happened (finished, failed or abandoned). It keeps the
//!   store's data alive: freeing the store first is allowed, the store's files stay open (and
//!   locked) until the ingest is freed too. One thread at a time per ingest.
//! - `blockdelta_point_list`, `blockdelta_extent_list`: immutable snapshots owned by the caller
//!   and freed with their `_free`; independent of the store (they outlive it). Any thread.
//!
//! The mapping of `ReplicaError` to C codes lives here, on the C side: the store never imports
//! `ffi`.

use std::ffi::{c_char, CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::error::record_thread_error;
use super::handle::arg_ref;
use super::result::{blockdelta_result, ToResult};
use crate::replica::{PointId, ReplicaError};
use crate::tracker::GenerationId;

pub mod ingest;
pub mod points;
pub mod store;

#[cfg(test)]
#[path = "../tests/replica.rs"]
mod tests;

#[cfg(test)]
thread_local! {
    /// Test hook: the next store call on this thread panics inside its panic boundary.
    pub(crate) static PANIC_NEXT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Panics when a test asked for it (compiled into tests only).
pub(crate) fn test_panic_hook() {
    #[cfg(test)]
    if PANIC_NEXT.with(|p| p.replace(false)) {
        panic!("test panic inside a store call");
    }
}

/// Names a recovery point: the tracker generation and the checkpoint (the `to_seq` of the
/// stream that made it). A plain value type that never grows; copy it freely.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct blockdelta_point_id {
    /// The tracker generation (16 bytes).
    pub generation: [u8; 16],
    /// The checkpoint.
    pub sequence: u64,
}

impl From<PointId> for blockdelta_point_id {
    fn from(p: PointId) -> Self {
        blockdelta_point_id {
            generation: p.generation.0,
            sequence: p.sequence,
        }
    }
}

impl From<blockdelta_point_id> for PointId {
    fn from(p: blockdelta_point_id) -> Self {
        PointId {
            generation: GenerationId(p.generation),
            sequence: p.sequence,
        }
    }
}

/// The C code of each replica store error, 1:1; a refused stream keeps its stream code.
impl ToResult for ReplicaError {
    fn to_result(&self) -> blockdelta_result {
        use blockdelta_result as R;
        match self {
            ReplicaError::Io { .. } => R::ReplicaIo,
            ReplicaError::Stream(e) => e.to_result(),
            ReplicaError::Corrupt { .. } => R::ReplicaCorrupt,
            ReplicaError::UnsupportedVersion { .. } => R::ReplicaUnsupportedVersion,
            ReplicaError::Locked { .. } => R::ReplicaLocked,
            ReplicaError::NotFound { .. } => R::ReplicaNotFound,
            ReplicaError::AlreadyExists { .. } => R::ReplicaAlreadyExists,
            ReplicaError::Poisoned => R::ReplicaPoisoned,
            ReplicaError::IngestInProgress => R::ReplicaIngestInProgress,
            ReplicaError::NoSuchPoint { .. } => R::ReplicaNoSuchPoint,
            ReplicaError::OutOfRange { .. } => R::ReplicaOutOfRange,
            ReplicaError::CapacityExceeded { .. } => R::ReplicaCapacityExceeded,
            ReplicaError::DetachedPointsExist { .. } => R::ReplicaDetachedPointsExist,
            ReplicaError::InvalidArgument { .. } => R::ReplicaInvalidArgument,
            ReplicaError::ResumeMismatch { .. } => R::ReplicaResumeMismatch,
            ReplicaError::ChecksumMismatch { .. } => R::ReplicaChecksumMismatch,
            ReplicaError::StorageFull { .. } => R::ReplicaStorageFull,
            ReplicaError::Conflict { .. } => R::ReplicaConflict,
            ReplicaError::UnsupportedScheme { .. } => R::ReplicaUnsupportedScheme,
            ReplicaError::ReadOnly => R::ReplicaReadOnly,
            // `ReplicaError` is non-exhaustive only for other crates; a new variant must get
            // its code here.
        }
    }
}

/// Reads a point id argument.
///
/// # Safety
/// `p` is NULL or points to a readable `blockdelta_point_id`.
pub(crate) unsafe fn point_arg(
    p: *const blockdelta_point_id,
) -> Result<PointId, blockdelta_result> {
    // SAFETY: forwarded contract.
    Ok((*unsafe { arg_ref(p)? }).into())
}

/// Reads a NUL-terminated path (any bytes but NUL; not necessarily UTF-8). An empty path is
/// `BLOCKDELTA_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that lives for `'a`.
pub(crate) unsafe fn path_arg<'a>(p: *const c_char) -> Result<&'a Path, blockdelta_result> {
    if p.is_null() {
        return Err(blockdelta_result::NullParameter);
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    if bytes.is_empty() {
        let code = blockdelta_result::InvalidArgument;
        record_thread_error(code, &"a path is empty");
        return Err(code);
    }
    Ok(Path::new(OsStr::from_bytes(bytes)))
}
