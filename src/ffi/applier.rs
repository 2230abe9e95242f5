//! C ABI of the stream applier: `blockdelta_applier`, a decoder writing verified records through
//! C target callbacks.
//!
//! A single-threaded object: one thread at a time may call a given handle. No function here
//! blocks except by calling the target callbacks, which must not call back into the same
//! applier (`BLOCKDELTA_RESULT_REENTERED`), and, after `blockdelta_applier_set_threads` with 2 or
//! more, by waiting for its decode threads. The callbacks always run on the thread that calls
//! `blockdelta_applier_push` or `blockdelta_applier_finish`, never on a library thread.
//!
//! The handle holds a [`ParallelApplier`]: with one thread (the default) it is the sequential
//! [`Applier`](crate::Applier) itself.

// C-style signatures with many plain arguments are the ABI (naming and pointer-contract lints are
// allowed for the whole C layer in `ffi/mod.rs`).
#![allow(clippy::too_many_arguments)]

use std::cell::{Ref, RefCell, RefMut};
use std::ffi::c_void;

use super::callbacks::{
    blockdelta_range_fn, blockdelta_resize_fn, blockdelta_sync_fn, blockdelta_write_fn, secret_arg,
    CTarget, REENTERED,
};
use super::decoder::{expected_arg, write_header};
use super::error::{copy_handle_message, fail_thread, LastError};
use super::handle::{arg_ref, arg_slice, free_handle, into_handle, Out};
use super::panic::{boundary, boundary_value};
use super::result::blockdelta_result;
use crate::stream::{DecoderConfig, ParallelApplier, StreamError};

#[cfg(test)]
#[path = "tests/applier_guards.rs"]
mod guard_tests;
#[cfg(test)]
#[path = "tests/applier.rs"]
mod tests;

/// A decoder writing to C target callbacks (opaque). Create with `blockdelta_applier_new`.
///
/// The applier sits in a `RefCell`: a target callback that calls back into the same applier gets
/// `BLOCKDELTA_RESULT_REENTERED` and no second `&mut` to it is ever made.
pub struct blockdelta_applier {
    inner: RefCell<ParallelApplier<CTarget>>,
    last_error: LastError,
}

/// The applier, or `REENTERED` when a callback of this applier is running.
fn applier_mut(
    a: &blockdelta_applier,
) -> Result<RefMut<'_, ParallelApplier<CTarget>>, blockdelta_result> {
    a.inner.try_borrow_mut().map_err(|_| {
        a.last_error
            .record(blockdelta_result::Reentered, &REENTERED)
    })
}

/// Creates an applier: a decoder that writes verified records through the target callbacks, all
/// called with `ctx` on the thread that calls `blockdelta_applier_push`.
///
/// `size` is the replica's current size in bytes (required): a stream whose disk is larger is
/// refused with `BLOCKDELTA_RESULT_STREAM_TARGET_TOO_SMALL`. `max_size` is the largest size a
/// RESIZE may grow the replica to; 0 means `size` (no growth); below `size` is
/// `BLOCKDELTA_RESULT_INVALID_ARGUMENT`. The applier tracks the size through resizes, and no
/// callback ever receives a range past the current size nor a size above `max_size` (a RESIZE
/// above it gives `BLOCKDELTA_RESULT_STREAM_TARGET_TOO_SMALL` without calling `resize`).
///
/// `write` and `write_zeroes` are required; `discard` NULL falls back to `write_zeroes`; `resize`
/// NULL makes a RESIZE record fail with `BLOCKDELTA_RESULT_STREAM_RESIZE_UNSUPPORTED`; `sync`
/// (called at every BOOKMARK and at END) NULL is a no-op. A shrinking RESIZE is applied at END,
/// after verification and before the final sync, so a stream cut anywhere can be re-sent. A
/// callback must not call back into this applier (`BLOCKDELTA_RESULT_REENTERED`) nor free it.
/// Callbacks and `ctx` must stay valid until the applier is freed. `(secret, secret_len)` as for
/// `blockdelta_decoder_new`. `*applier_out` receives a handle the caller frees with
/// `blockdelta_applier_free`. Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_applier_new(
    size: u64,
    max_size: u64,
    secret: *const u8,
    secret_len: usize,
    write: blockdelta_write_fn,
    write_zeroes: blockdelta_range_fn,
    discard: blockdelta_range_fn,
    resize: blockdelta_resize_fn,
    sync: blockdelta_sync_fn,
    ctx: *mut c_void,
    applier_out: *mut *mut blockdelta_applier,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(applier_out)?;
        // SAFETY: `(secret, secret_len)` readable or `(NULL, 0)`.
        let secret = unsafe { secret_arg(secret, secret_len)? };
        let max_size = if max_size == 0 { size } else { max_size };
        if max_size < size {
            return Err(fail_thread(StreamError::InvalidArgument {
                reason: "max_size is below the replica's size",
            }));
        }
        let target = CTarget {
            size,
            max_size,
            ctx,
            write: write.ok_or(blockdelta_result::NullParameter)?,
            write_zeroes: write_zeroes.ok_or(blockdelta_result::NullParameter)?,
            discard,
            resize,
            sync,
        };
        let mut cfg = DecoderConfig::new();
        cfg.secret = secret;
        let h = blockdelta_applier {
            inner: RefCell::new(ParallelApplier::new(cfg, target, 1)),
            last_error: LastError::new(),
        };
        // SAFETY: checked non-NULL, writable per the contract.
        unsafe { out.write(into_handle(h)) };
        Ok(())
    })
}

/// Frees an applier; NULL is a no-op. With decode threads (`blockdelta_applier_set_threads`) it
/// stops and joins them, waiting for the frame each may be decoding; otherwise never blocks. Not
/// from within its own callbacks.
#[no_mangle]
pub extern "C" fn blockdelta_applier_free(applier: *mut blockdelta_applier) {
    // SAFETY: NULL or a handle from `blockdelta_applier_new`, freed once.
    boundary_value((), || unsafe { free_handle(applier) })
}

/// As `blockdelta_decoder_expect`, for an applier: `replica_seq` is the checkpoint the replica is
/// at; a stream is accepted iff `from_seq <= replica_seq < to_seq`.
#[no_mangle]
pub extern "C" fn blockdelta_applier_expect(
    applier: *mut blockdelta_applier,
    disk_id: *const u8,
    generation: *const u8,
    replica_seq: u64,
    check_replica_seq: bool,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle or NULL; only a shared reference is made.
        let a = unsafe { arg_ref(applier)? };
        // SAFETY: ids are NULL or 16 readable bytes.
        let e = unsafe { expected_arg(disk_id, generation, replica_seq, check_replica_seq)? };
        let r = applier_mut(a)?.set_expected(e);
        r.map_err(|e| a.last_error.fail(e))
    })
}

/// Verifies and applies every whole frame at the start of `(input, input_len)` (caller-owned,
/// read only, copied before the call returns); `*consumed_out` receives the bytes used. Keep the
/// rest and call again with it followed by more input. A frame is written only after it is fully
/// verified; after an error the applier refuses further input, except that bytes after a
/// verified END give `BLOCKDELTA_RESULT_STREAM_TRAILING_DATA` and leave the applier finished.
///
/// With 2 or more threads (`blockdelta_applier_set_threads`), the consumed frames are accepted
/// into the decode pipeline and may not be applied yet when the call returns: the error of a
/// frame may then be returned by a later push or by `blockdelta_applier_finish` (never after
/// anything behind that frame was written), and the call blocks while the pipeline is full,
/// applying frames meanwhile.
///
/// The one exception to "outputs only on success": `*consumed_out` is also written when the call
/// fails (with any code but `NULL_PARAMETER`, `PANIC` and `REENTERED`): the bytes of this input
/// before the failing frame, which were verified and applied (0 when the failing frame came with
/// an earlier push). Blocks inside the target callbacks (called on this thread) and waiting for
/// the decode threads; one thread at a time; a callback calling it on the same applier gets
/// `BLOCKDELTA_RESULT_REENTERED`.
#[no_mangle]
pub extern "C" fn blockdelta_applier_push(
    applier: *mut blockdelta_applier,
    input: *const u8,
    input_len: usize,
    consumed_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle or NULL; only a shared reference is made, so a callback that
        // re-enters finds the applier borrowed.
        let a = unsafe { arg_ref(applier)? };
        let out = Out::new(consumed_out)?;
        // SAFETY: `(input, input_len)` readable or `(NULL, 0)`.
        let input = unsafe { arg_slice(input, input_len)? };
        let mut app = applier_mut(a)?;
        let r = app.push(input);
        let consumed = app.consumed();
        drop(app);
        // SAFETY: checked non-NULL, writable per the contract.
        unsafe { out.write(consumed) };
        r.map(|_| ()).map_err(|e| a.last_error.fail(e))
    })
}

/// Call at the end of input: OK when END was verified and the target synced (the replica is at
/// the stream's to_seq; `blockdelta_applier_header` says which stream it was, to commit exactly
/// that checkpoint); `BLOCKDELTA_RESULT_STREAM_TRUNCATED` if END never came. With 2 or more
/// threads it first applies every frame pushed (calling the target callbacks on this thread,
/// and blocking until the decode threads are done with them), so it may return the error of a
/// frame pushed earlier; with one thread it never blocks. A callback calling it on the same
/// applier gets `BLOCKDELTA_RESULT_REENTERED`.
#[no_mangle]
pub extern "C" fn blockdelta_applier_finish(
    applier: *const blockdelta_applier,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle or NULL; only a shared reference is made (the applier is in a
        // `RefCell`).
        let a = unsafe { arg_ref(applier)? };
        let r = applier_mut(a)?.finish();
        r.map(|_| ()).map_err(|e| a.last_error.fail(e))
    })
}

/// Decodes the stream on `threads` threads: the calling thread and `threads - 1` decode threads
/// that the applier starts when the stream header is accepted and stops in
/// `blockdelta_applier_free` (CRC32, AES-256-GCM and lz4 run there; every target callback still
/// runs on the thread calling `blockdelta_applier_push` or `blockdelta_applier_finish`, in stream
/// order). 1 (the default) decodes on the calling thread only. Memory, allocated when the
/// header is accepted: two buffers of one frame per thread (up to eight for records below
/// 256 KiB), each with one record of lz4 scratch for lz4 streams: at most about 4 MiB per thread.
///
/// Only before the first `blockdelta_applier_push` (`BLOCKDELTA_RESULT_STREAM_INVALID_STATE`
/// after); `threads` 1 to 64 (`BLOCKDELTA_RESULT_INVALID_ARGUMENT` otherwise). Never blocks; one
/// thread at a time; a callback calling it on the same applier gets
/// `BLOCKDELTA_RESULT_REENTERED`.
#[no_mangle]
pub extern "C" fn blockdelta_applier_set_threads(
    applier: *mut blockdelta_applier,
    threads: u32,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle or NULL; only a shared reference is made.
        let a = unsafe { arg_ref(applier)? };
        let threads = usize::try_from(threads).unwrap_or(usize::MAX);
        let r = applier_mut(a)?.set_threads(threads);
        r.map_err(|e| a.last_error.fail(e))
    })
}

/// The applier, read-only, or `REENTERED` when one of its callbacks is running.
fn applier_ref(
    a: &blockdelta_applier,
) -> Result<Ref<'_, ParallelApplier<CTarget>>, blockdelta_result> {
    a.inner.try_borrow().map_err(|_| {
        a.last_error
            .record(blockdelta_result::Reentered, &REENTERED)
    })
}

/// Copies the header of the stream the applier accepted, as `blockdelta_decoder_header`:
/// `disk_id_out` and `generation_out` 16 bytes each, the others one value each (each NULL to
/// skip). After a successful `blockdelta_applier_finish` this is the stream that was applied:
/// commit exactly `to_seq` of that generation. `BLOCKDELTA_RESULT_STREAM_INVALID_STATE` before a
/// header was accepted. Never blocks.
#[no_mangle]
pub extern "C" fn blockdelta_applier_header(
    applier: *const blockdelta_applier,
    disk_id_out: *mut u8,
    generation_out: *mut u8,
    from_seq_out: *mut u64,
    to_seq_out: *mut u64,
    disk_size_out: *mut u64,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle or NULL.
        let a = unsafe { arg_ref(applier)? };
        let h = applier_ref(a)?.header().copied();
        let Some(h) = h else {
            return Err(a.last_error.fail(StreamError::InvalidState {
                reason: "no stream header accepted yet",
            }));
        };
        // SAFETY: each output is NULL or writable per the contract.
        unsafe {
            write_header(
                &h,
                disk_id_out,
                generation_out,
                from_seq_out,
                to_seq_out,
                disk_size_out,
            )
        }
    })
}

/// The END totals of the stream the applier finished: `*records_out` (record frames),
/// `*bytes_out` (bytes before END) and `*checksum_out` (each NULL to skip).
/// `BLOCKDELTA_RESULT_STREAM_INVALID_STATE` unless END was verified and the target synced.
/// Never blocks.
#[no_mangle]
pub extern "C" fn blockdelta_applier_end(
    applier: *const blockdelta_applier,
    records_out: *mut u64,
    bytes_out: *mut u64,
    checksum_out: *mut u32,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle or NULL.
        let a = unsafe { arg_ref(applier)? };
        let applied = applier_ref(a)?.applied();
        let Some(applied) = applied else {
            return Err(a.last_error.fail(StreamError::InvalidState {
                reason: "the stream has not been applied to its END",
            }));
        };
        // SAFETY: each output is NULL or writable per the contract.
        unsafe {
            if !records_out.is_null() {
                records_out.write(applied.end.records);
            }
            if !bytes_out.is_null() {
                bytes_out.write(applied.end.bytes);
            }
            if !checksum_out.is_null() {
                checksum_out.write(applied.end.checksum);
            }
        }
        Ok(())
    })
}

/// Copies the applier's last error message; rules as `blockdelta_encoder_last_error`.
#[no_mangle]
pub extern "C" fn blockdelta_applier_last_error(
    applier: *const blockdelta_applier,
    buf: *mut std::ffi::c_char,
    cap: usize,
    len_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle or NULL; `(buf, cap)` writable or `(NULL, 0)`.
        unsafe { copy_handle_message(&arg_ref(applier)?.last_error, buf, cap, len_out) }
    })
}
