//! `blockdelta_ingest`: one delta stream, pushed in chunks, becoming a recovery point.
//!
//! Lifetime: `blockdelta_store_ingest_begin` creates it, `blockdelta_ingest_free` always ends
//! it (as rustls-ffi's connections: one constructor, one `_free`, whatever happened in between).
//! `blockdelta_ingest_finish` does not free it. After a successful finish, or after any error
//! that refuses the stream, the ingest is over: the store is released at once (a new ingest may
//! begin before this one is freed) and later pushes or finishes give
//! `BLOCKDELTA_RESULT_STREAM_POISONED`. The one error that does not end it is
//! `BLOCKDELTA_RESULT_STREAM_TRUNCATED` from a finish before END: push the rest and finish again.
//!
//! One thread at a time per ingest (concurrent calls wait for each other); the store may be
//! used from other threads meanwhile (reads run alongside, changes wait for the ingest).

use std::ffi::c_char;
use std::sync::Arc;

use parking_lot::Mutex;

use super::blockdelta_point_id;
use super::points::blockdelta_point_list;
use super::store::blockdelta_store;
use crate::ffi::callbacks::secret_arg;
use crate::ffi::error::{copy_handle_message, LastError};
use crate::ffi::handle::{arg_ref, arg_slice, free_handle, into_handle, Out};
use crate::ffi::panic::{boundary, boundary_value};
use crate::ffi::result::blockdelta_result;
use crate::replica::{Expired, Ingest, ReplicaError, Store};
use crate::stream::StreamError;

/// A stream being ingested into a store (opaque). Create with `blockdelta_store_ingest_begin`,
/// always free with `blockdelta_ingest_free`.
pub struct blockdelta_ingest {
    /// Declared before `_store`, so dropped first: the `Ingest` borrows the `Store` that `_store`
    /// keeps alive (see `blockdelta_store_ingest_begin`). `None` once the ingest is over.
    inner: Mutex<Option<Ingest<'static>>>,
    _store: Arc<Store>,
    /// Points the finished ingest expired early to stay under the byte cap.
    expired: Mutex<Vec<Expired>>,
    last_error: LastError,
}

/// Starts ingesting a stream into the store. `(secret, secret_len)` is the stream's secret
/// (copied; at least 16 bytes); `(NULL, 0)` means the stream must be unencrypted, and with a
/// secret an unencrypted stream is refused. The stream must continue the store's lineage (same
/// disk, same generation, `from_seq <= head < to_seq`; a stream already ingested gives
/// `BLOCKDELTA_RESULT_STREAM_ALREADY_APPLIED`). One ingest at a time per store
/// (`BLOCKDELTA_RESULT_REPLICA_INGEST_IN_PROGRESS`). On success `*ingest_out` receives a handle
/// the caller frees with `blockdelta_ingest_free`; it keeps the store's data alive, so it may
/// outlive the store handle. Never blocks on I/O; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_ingest_begin(
    store: *mut blockdelta_store,
    secret: *const u8,
    secret_len: usize,
    ingest_out: *mut *mut blockdelta_ingest,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: NULL or a live store handle.
        let s = unsafe { arg_ref(store)? };
        let out = Out::new(ingest_out)?;
        // SAFETY: `(secret, secret_len)` readable or `(NULL, 0)`.
        let secret = unsafe { secret_arg(secret, secret_len) }
            .map_err(|c| s.last_error.adopt_thread_error(c))?;
        let store = Arc::clone(&s.inner);
        // SAFETY: the `Store` lives in the `Arc`'s heap allocation, which never moves and which
        // the handle keeps alive (its `_store` field) for as long as the `Ingest` exists: the
        // `Ingest` is dropped before that `Arc` (field order, and `finish`/errors drop it
        // earlier). Only shared references to the `Store` are ever made.
        let store_ref: &'static Store = unsafe { &*Arc::as_ptr(&store) };
        let ingest = store_ref.ingest(secret).map_err(|e| s.last_error.fail(e))?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out.write(into_handle(handle(ingest, store))) };
        Ok(())
    })
}

/// Runs `f` on the live ingest; an error ends the ingest and is recorded on the handle.
fn handle(ingest: Ingest<'static>, store: Arc<Store>) -> blockdelta_ingest {
    blockdelta_ingest {
        inner: Mutex::new(Some(ingest)),
        _store: store,
        expired: Mutex::new(Vec::new()),
        last_error: LastError::new(),
    }
}

/// Stops the ingest here and keeps the stream resumable, even across a restart of the process:
/// the data so far is synced and a resume point committed. `*offset_out` receives the stream
/// offset from which the sender must re-send the rest (see `blockdelta_store_resume_ingest`).
/// The ingest is over afterwards (free it). Only after the header and before END
/// (`BLOCKDELTA_RESULT_REPLICA_INVALID_ARGUMENT` otherwise, which also ends the ingest). Blocks
/// on file I/O and fsync; one thread at a time.
#[no_mangle]
pub extern "C" fn blockdelta_ingest_suspend(
    ingest: *mut blockdelta_ingest,
    offset_out: *mut u64,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: NULL or a live handle from `blockdelta_store_ingest_begin`.
        let h = unsafe { arg_ref(ingest)? };
        let out = Out::new(offset_out)?;
        let Some(ing) = h.inner.lock().take() else {
            return Err(h.last_error.fail(StreamError::Poisoned));
        };
        let offset = ing.suspend().map_err(|e| h.last_error.fail(e))?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out.write(offset) };
        Ok(())
    })
}

/// Whether the store holds a cut stream it can resume: `*present_out` receives true and
/// `*target_out` the point the stream would create (its generation and `to_seq`) and
/// `*offset_out` the stream offset the sender must continue from; else false and both outputs
/// zeroed. Reads the resume point (a small file); any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_pending_ingest(
    store: *const blockdelta_store,
    target_out: *mut blockdelta_point_id,
    offset_out: *mut u64,
    present_out: *mut bool,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: NULL or a live store handle.
        let s = unsafe { arg_ref(store)? };
        let (t, o, p) = (
            Out::new(target_out)?,
            Out::new(offset_out)?,
            Out::new(present_out)?,
        );
        let pending = s.inner.pending_ingest().map_err(|e| s.last_error.fail(e))?;
        let (id, off) = match pending {
            Some(x) => (
                blockdelta_point_id {
                    generation: x.header.generation.0,
                    sequence: x.header.to_seq,
                },
                x.stream_offset,
            ),
            None => (
                blockdelta_point_id {
                    generation: [0; 16],
                    sequence: 0,
                },
                0,
            ),
        };
        // SAFETY: all checked non-NULL; writable per the contract.
        unsafe {
            t.write(id);
            o.write(off);
            p.write(pending.is_some());
        }
        Ok(())
    })
}

/// Continues the store's cut stream: `(header_frame, header_len)` is the stream's first frame
/// (24-byte frame header and body) as the sender has it, and only that exact stream can continue
/// (`BLOCKDELTA_RESULT_REPLICA_RESUME_MISMATCH` otherwise; the resume point stays). The secret as
/// for `blockdelta_store_ingest_begin`. On success `*ingest_out` receives an ingest handle (free
/// it with `blockdelta_ingest_free`) and `*offset_out` the stream offset from which to push the
/// rest. Blocks on file I/O; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_resume_ingest(
    store: *mut blockdelta_store,
    secret: *const u8,
    secret_len: usize,
    header_frame: *const u8,
    header_len: usize,
    ingest_out: *mut *mut blockdelta_ingest,
    offset_out: *mut u64,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: NULL or a live store handle.
        let s = unsafe { arg_ref(store)? };
        let (out, off) = (Out::new(ingest_out)?, Out::new(offset_out)?);
        // SAFETY: `(secret, secret_len)` readable or `(NULL, 0)`.
        let secret = unsafe { secret_arg(secret, secret_len) }
            .map_err(|c| s.last_error.adopt_thread_error(c))?;
        // SAFETY: `(header_frame, header_len)` readable or `(NULL, 0)`.
        let frame = unsafe { arg_slice(header_frame, header_len)? };
        let store = Arc::clone(&s.inner);
        // SAFETY: as in `blockdelta_store_ingest_begin`: the handle keeps the `Arc` alive for as
        // long as the `Ingest`, which it drops first.
        let store_ref: &'static Store = unsafe { &*Arc::as_ptr(&store) };
        let (ingest, offset) = store_ref
            .resume_ingest(secret, frame)
            .map_err(|e| s.last_error.fail(e))?;
        // SAFETY: both checked non-NULL; writable per the contract.
        unsafe {
            out.write(into_handle(handle(ingest, store)));
            off.write(offset);
        }
        Ok(())
    })
}

/// Drops the store's cut stream and its resume point, if any. Blocks on file I/O; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_discard_pending(
    store: *mut blockdelta_store,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: NULL or a live store handle.
        let s = unsafe { arg_ref(store)? };
        s.inner.discard_pending().map_err(|e| s.last_error.fail(e))
    })
}

fn with_ingest<T>(
    ingest: *const blockdelta_ingest,
    f: impl FnOnce(&mut Ingest<'static>) -> Result<T, ReplicaError>,
) -> Result<T, blockdelta_result> {
    // SAFETY: NULL or a live handle from `blockdelta_store_ingest_begin`.
    let h = unsafe { arg_ref(ingest)? };
    let mut slot = h.inner.lock();
    let Some(ing) = slot.as_mut() else {
        return Err(h.last_error.fail(StreamError::Poisoned));
    };
    f(ing).map_err(|e| {
        // The stream was refused: release the store now.
        *slot = None;
        h.last_error.fail(e)
    })
}

/// Feeds `(data, len)` (caller-owned, read during the call only) as the next bytes of the
/// stream, in any chunking. Every frame is verified before it is used; nothing is visible
/// until `blockdelta_ingest_finish` succeeds. An error refuses the stream and ends the ingest.
/// Blocks on file writes; one thread at a time.
#[no_mangle]
pub extern "C" fn blockdelta_ingest_push(
    ingest: *mut blockdelta_ingest,
    data: *const u8,
    len: usize,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: `(data, len)` readable or `(NULL, 0)`.
        let data = unsafe { arg_slice(data, len)? };
        with_ingest(ingest, |i| i.push(data))
    })
}

/// Completes the ingest after the stream's END was pushed: syncs the data, commits the new
/// recovery point, and writes its id to `*point_out`. Only then is the point durable and
/// listed, and the sender may commit its tracker checkpoint (`point_out->sequence`). Before END
/// it gives `BLOCKDELTA_RESULT_STREAM_TRUNCATED` and the ingest stays open for more input; any
/// other error ends it. Does not free the handle (call `blockdelta_ingest_free`). Blocks on file
/// I/O and fsync; one thread at a time.
#[no_mangle]
pub extern "C" fn blockdelta_ingest_finish(
    ingest: *mut blockdelta_ingest,
    point_out: *mut blockdelta_point_id,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: NULL or a live handle from `blockdelta_store_ingest_begin`.
        let h = unsafe { arg_ref(ingest)? };
        let out = Out::new(point_out)?;
        let mut slot = h.inner.lock();
        let Some(ing) = slot.take() else {
            return Err(h.last_error.fail(StreamError::Poisoned));
        };
        if !ing.is_complete() {
            // `Ingest::finish` would consume the ingest; keep it open for the rest of the stream.
            *slot = Some(ing);
            return Err(h.last_error.record(
                blockdelta_result::StreamTruncated,
                &"the stream has not reached its END record yet: push the rest and finish again",
            ));
        }
        let done = ing.finish().map_err(|e| h.last_error.fail(e))?;
        *h.expired.lock() = done.expired;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out.write(done.point.id.into()) };
        Ok(())
    })
}

/// After a successful `blockdelta_ingest_finish`: `*count_out` receives how many points the
/// ingest expired early to stay under the store's byte cap (0 before a successful finish), and
/// when `expired_out` is not NULL, `*expired_out` receives a list of them (with
/// `BLOCKDELTA_POINT_FIELD_EXPIRY_REASON` set) that the caller frees with
/// `blockdelta_point_list_free`. Never blocks; one thread at a time.
#[no_mangle]
pub extern "C" fn blockdelta_ingest_expired(
    ingest: *const blockdelta_ingest,
    count_out: *mut usize,
    expired_out: *mut *mut blockdelta_point_list,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: NULL or a live handle from `blockdelta_store_ingest_begin`.
        let h = unsafe { arg_ref(ingest)? };
        let count = Out::new(count_out)?;
        let expired = h.expired.lock().clone();
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { count.write(expired.len()) };
        if !expired_out.is_null() {
            let list = blockdelta_point_list::from_expired(expired);
            // SAFETY: non-NULL and writable per the contract.
            unsafe { expired_out.write(into_handle(list)) };
        }
        Ok(())
    })
}

/// Frees an ingest; NULL is a no-op. An ingest that was not finished is abandoned: nothing
/// visible changed and its partial data is dropped. Releases the store (and, when the store
/// handle was already freed, closes it). No other call on the ingest may be running or follow.
#[no_mangle]
pub extern "C" fn blockdelta_ingest_free(ingest: *mut blockdelta_ingest) {
    // SAFETY: NULL or a handle from `blockdelta_store_ingest_begin`, freed once.
    boundary_value((), || unsafe { free_handle(ingest) })
}

/// Copies the ingest's last error message; rules as `blockdelta_last_error`.
#[no_mangle]
pub extern "C" fn blockdelta_ingest_last_error(
    ingest: *const blockdelta_ingest,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle or NULL; `(buf, cap)` writable or `(NULL, 0)`.
        unsafe { copy_handle_message(&arg_ref(ingest)?.last_error, buf, cap, len_out) }
    })
}
