//! C ABI of the stream encoder: `blockdelta_encoder`.
//!
//! The encoder reads disk bytes through a C read callback and writes frames into caller
//! buffers sized by `blockdelta_encoder_bound`. A single-threaded object: one thread at a time
//! may call a given handle. No function here blocks except by calling the read callback, which
//! must not call back into the same encoder (`BLOCKDELTA_RESULT_REENTERED`).

// C-style signatures with many plain arguments are the ABI (naming and pointer-contract lints are
// allowed for the whole C layer in `ffi/mod.rs`).
#![allow(clippy::too_many_arguments)]

use std::cell::{RefCell, RefMut};
use std::ffi::c_void;

use super::callbacks::{
    blockdelta_read_fn, blockdelta_region_fn, blockdelta_will_read_fn, id16, secret_arg, CSource,
    REENTERED,
};
use super::error::{copy_handle_message, fail_thread, LastError};
use super::handle::{arg_extents, arg_ref, arg_slice, free_handle, into_handle, out_slice, Out};
use super::panic::{boundary, boundary_value};
use super::result::blockdelta_result;
use crate::stream::{
    Bookmark, BookmarkKind, Codec, EncodeCursor, Encoder, EncoderConfig, ParallelEncoder,
    StreamError,
};
use crate::tracker::{Extent, GenerationId};

#[cfg(test)]
#[path = "tests/encoder.rs"]
mod tests;

/// Encoder flag: try lz4 on DATA records (raw is kept when lz4 does not pay).
pub const BLOCKDELTA_ENCODE_LZ4: u32 = 1;
/// Encoder flag: send zeros as ZERO records: every run of all-zero blocks, and every hole the
/// region callback reports (`blockdelta_encoder_set_source_hints`), which is not read.
pub const BLOCKDELTA_ENCODE_ZERO_DETECTION: u32 = 2;
/// Encoder flag: send the holes the region callback reports as DISCARD instead of ZERO (for
/// a replica meant to be thin whose ZERO allocates). Needs `BLOCKDELTA_ENCODE_ZERO_DETECTION`.
/// A DISCARD's contents are unspecified: a target whose discard does not read back zeros keeps
/// its old bytes where the source reads zeros.
pub const BLOCKDELTA_ENCODE_HOLES_AS_DISCARD: u32 = 4;

/// A stream encoder (opaque). Create with `blockdelta_encoder_new`, free with `blockdelta_encoder_free`.
///
/// Its state sits in a `RefCell`: a read callback that calls back into the same encoder gets
/// `BLOCKDELTA_RESULT_REENTERED` and no second `&mut` to the state is ever made.
pub struct blockdelta_encoder {
    state: RefCell<EncoderState>,
    last_error: LastError,
}

struct EncoderState {
    inner: Inner,
    /// The configuration, to rebuild the encoder with threads before its header.
    config: EncoderConfig,
    header_written: bool,
    source: CSource,
    extents: Vec<Extent>,
    cursor: EncodeCursor,
}

/// The encoder on the caller's thread only, or with threads (`blockdelta_encoder_set_threads`).
enum Inner {
    Single(Box<Encoder>),
    Parallel(Box<ParallelEncoder>),
}

/// Calls the same method on either encoder.
macro_rules! inner {
    ($inner:expr, $e:ident => $call:expr) => {
        match $inner {
            Inner::Single($e) => $call,
            Inner::Parallel($e) => $call,
        }
    };
}

/// The encoder's state, or `REENTERED` when a callback of this encoder is running.
fn encoder_state(e: &blockdelta_encoder) -> Result<RefMut<'_, EncoderState>, blockdelta_result> {
    e.state.try_borrow_mut().map_err(|_| {
        e.last_error
            .record(blockdelta_result::Reentered, &REENTERED)
    })
}

/// Creates an encoder for one stream.
///
/// `disk_id` and `generation` point to 16 bytes each (copied). The checkpoints must satisfy
/// `from_seq < to_seq`. `block_size` is a power of two from 512 to 1 MiB; `record_size` (1 byte to
/// 1 MiB, 0 = 1 MiB) is the largest raw payload per DATA record. `flags` is a combination of
/// `BLOCKDELTA_ENCODE_*`. `(secret, secret_len)` enables AES-256-GCM; `(NULL, 0)` disables it; the
/// secret is copied. `read` is called with `read_ctx` from `blockdelta_encoder_next` only; both
/// must stay valid until the encoder is freed. On success `*encoder_out` receives a handle the
/// caller owns and frees with `blockdelta_encoder_free`.
/// Allocates all scratch memory now (about 2x `record_size`); never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_encoder_new(
    disk_id: *const u8,
    generation: *const u8,
    from_seq: u64,
    to_seq: u64,
    disk_size: u64,
    block_size: u32,
    record_size: u32,
    flags: u32,
    secret: *const u8,
    secret_len: usize,
    read: blockdelta_read_fn,
    read_ctx: *mut c_void,
    encoder_out: *mut *mut blockdelta_encoder,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(encoder_out)?;
        // SAFETY: the caller passes 16-byte ids and a (secret, secret_len) region per the docs.
        let (disk_id, generation, secret) = unsafe {
            (
                id16(disk_id)?.ok_or(blockdelta_result::NullParameter)?,
                id16(generation)?.ok_or(blockdelta_result::NullParameter)?,
                secret_arg(secret, secret_len)?,
            )
        };
        let read = read.ok_or(blockdelta_result::NullParameter)?;
        let known = BLOCKDELTA_ENCODE_LZ4
            | BLOCKDELTA_ENCODE_ZERO_DETECTION
            | BLOCKDELTA_ENCODE_HOLES_AS_DISCARD;
        if flags & !known != 0 {
            return Err(fail_thread(StreamError::InvalidArgument {
                reason: "unknown encoder flags",
            }));
        }
        let mut cfg = EncoderConfig::new(
            disk_id,
            GenerationId(generation),
            from_seq,
            to_seq,
            disk_size,
        );
        cfg.block_size = block_size;
        if record_size != 0 {
            cfg.record_size = record_size;
        }
        cfg.compression = if flags & BLOCKDELTA_ENCODE_LZ4 != 0 {
            Codec::Lz4
        } else {
            Codec::Raw
        };
        cfg.zero_detection = flags & BLOCKDELTA_ENCODE_ZERO_DETECTION != 0;
        cfg.holes_as_discard = flags & BLOCKDELTA_ENCODE_HOLES_AS_DISCARD != 0;
        cfg.secret = secret;
        let inner = Inner::Single(Box::new(Encoder::new(cfg.clone()).map_err(fail_thread)?));
        let h = blockdelta_encoder {
            state: RefCell::new(EncoderState {
                inner,
                config: cfg,
                header_written: false,
                source: CSource {
                    read,
                    region: None,
                    will_read: None,
                    ctx: read_ctx,
                },
                extents: Vec::new(),
                cursor: EncodeCursor::default(),
            }),
            last_error: LastError::new(),
        };
        // SAFETY: `encoder_out` was checked non-NULL and is writable per the contract.
        unsafe { out.write(into_handle(h)) };
        Ok(())
    })
}

/// Frees an encoder; NULL is a no-op. The handle must not be used afterwards. Never blocks.
#[no_mangle]
pub extern "C" fn blockdelta_encoder_free(encoder: *mut blockdelta_encoder) {
    // SAFETY: `encoder` is NULL or a handle from `blockdelta_encoder_new`, freed once.
    boundary_value((), || unsafe { free_handle(encoder) })
}

/// Lets the encoder ask the source where its holes are and tell it what it reads soon, through
/// two optional callbacks called with the `read_ctx` of `blockdelta_encoder_new`, only from
/// within `blockdelta_encoder_next` on the calling thread (NULL: none, the default).
///
/// - `region`: with `BLOCKDELTA_ENCODE_ZERO_DETECTION`, a hole it reports is sent as one ZERO
///   record (DISCARD with `BLOCKDELTA_ENCODE_HOLES_AS_DISCARD`) and never read. An answer of 0
///   bytes, or past `end`, fails the call with `BLOCKDELTA_RESULT_STREAM_SOURCE_IO`.
/// - `will_read`: called for the extents up to 32 MiB ahead of the one being read (nearby ranges
///   merged), so that a source can start reading them (e.g. `posix_fadvise(WILLNEED)`, or
///   requests sent ahead to an NBD server).
///
/// Set them before the first `blockdelta_encoder_next`. Never blocks; one thread at a time.
#[no_mangle]
pub extern "C" fn blockdelta_encoder_set_source_hints(
    encoder: *mut blockdelta_encoder,
    region: blockdelta_region_fn,
    will_read: blockdelta_will_read_fn,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: per the contract, a non-NULL handle is live.
        let enc = unsafe { arg_ref(encoder)? };
        let mut st = encoder_state(enc)?;
        st.source.region = region;
        st.source.will_read = will_read;
        Ok(())
    })
}

/// Makes the encoder use `threads` threads in all (1 to 256; 1 is the default): the calling
/// thread plans and reads, and `threads - 1` threads started now compress, seal and checksum.
/// Only before `blockdelta_encoder_header` (after it: `BLOCKDELTA_RESULT_INVALID_STATE`). The
/// stream's bytes are the same for every thread count.
///
/// The read callback is still called only on the thread calling `blockdelta_encoder_next`, so a
/// source that must be read from one thread (an event loop, an SPDK reactor) works unchanged;
/// the library's threads touch only its own buffers. The library owns these threads (rather
/// than handing work to the caller's) because they only compute: no I/O, no callback, no
/// blocking but on each other, joined by `blockdelta_encoder_free`.
///
/// A list already set with `blockdelta_encoder_set_extents` is kept. With threads,
/// `blockdelta_encoder_next` reads ahead: it calls the read callback for up to
/// `2 * threads + 1` jobs (each up to one record size of data) before returning the first
/// frame, and `blockdelta_encoder_set_extents` drops the frames planned but not yet returned.
/// Allocates `2 * threads + 1` jobs of `2 * record_size + (record_size / block_size + 514) * 88`
/// bytes (about 2.2 MiB for 1 MiB records of 4 KiB blocks); any thread.
#[no_mangle]
pub extern "C" fn blockdelta_encoder_set_threads(
    encoder: *mut blockdelta_encoder,
    threads: u32,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: per the contract, a non-NULL handle is live.
        let enc = unsafe { arg_ref(encoder)? };
        let mut st = encoder_state(enc)?;
        if st.header_written {
            return Err(enc.last_error.fail(StreamError::InvalidState {
                reason: "set the threads before the stream header",
            }));
        }
        let threads = threads as usize;
        let inner = if threads == 1 {
            Encoder::new(st.config.clone()).map(|e| Inner::Single(Box::new(e)))
        } else {
            // A list set before this call carries over (nothing of it was encoded yet: no
            // frame comes before the header).
            ParallelEncoder::new(st.config.clone(), threads).and_then(|mut p| {
                p.set_extents(&st.extents)?;
                Ok(Inner::Parallel(Box::new(p)))
            })
        };
        st.inner = inner.map_err(|e| enc.last_error.fail(e))?;
        st.cursor = EncodeCursor::default();
        Ok(())
    })
}

/// The size a `dst` buffer needs for any frame of this encoder (0 for NULL, and 0 when called
/// from within this encoder's read callback). Never blocks.
#[no_mangle]
pub extern "C" fn blockdelta_encoder_bound(encoder: *const blockdelta_encoder) -> usize {
    boundary_value(0, || {
        // SAFETY: `encoder` is NULL or a live handle.
        unsafe { arg_ref(encoder) }
            .ok()
            .and_then(|e| {
                e.state
                    .try_borrow()
                    .ok()
                    .map(|s| inner!(&s.inner, x => x.max_frame_len()))
            })
            .unwrap_or(0)
    })
}

/// Runs `f` on a live encoder, mapping its error onto the handle's last error. Call it inside
/// the panic boundary (see [`with_encoder`]).
///
/// # Safety
/// `encoder` is NULL or a live handle used by this thread only; `(dst, dst_cap)` is writable
/// or `(NULL, 0)`; `written_out` is NULL or writable.
unsafe fn encoder_call(
    encoder: *mut blockdelta_encoder,
    dst: *mut u8,
    dst_cap: usize,
    written_out: *mut usize,
    f: impl FnOnce(&mut EncoderState, &mut [u8]) -> Result<usize, StreamError>,
) -> Result<(), blockdelta_result> {
    // SAFETY: per the contract, a non-NULL handle is live. Only a shared reference is made: a
    // re-entrant call from the read callback finds the state borrowed.
    let enc = unsafe { arg_ref(encoder)? };
    let out = Out::new(written_out)?;
    // SAFETY: `(dst, dst_cap)` is a writable region or `(NULL, 0)` per the contract.
    let dst = unsafe { out_slice(dst, dst_cap)? };
    let mut state = encoder_state(enc)?;
    match f(&mut state, dst) {
        Ok(n) => {
            // SAFETY: checked non-NULL, writable per the contract.
            unsafe { out.write(n) };
            Ok(())
        }
        Err(e) => Err(enc.last_error.fail(e)),
    }
}

/// [`encoder_call`] inside the panic boundary.
///
/// # Safety
/// As [`encoder_call`].
unsafe fn with_encoder(
    encoder: *mut blockdelta_encoder,
    dst: *mut u8,
    dst_cap: usize,
    written_out: *mut usize,
    f: impl FnOnce(&mut EncoderState, &mut [u8]) -> Result<usize, StreamError>,
) -> blockdelta_result {
    // SAFETY: forwarded contract.
    boundary(|| unsafe { encoder_call(encoder, dst, dst_cap, written_out, f) })
}

/// Writes the stream header frame into `dst` (`dst_cap` bytes, caller-owned); `*written_out`
/// receives its length. Must be the first frame. `BLOCKDELTA_RESULT_BUFFER_TOO_SMALL` if `dst_cap`
/// is below `blockdelta_encoder_bound`. Never blocks; one thread at a time per encoder.
#[no_mangle]
pub extern "C" fn blockdelta_encoder_header(
    encoder: *mut blockdelta_encoder,
    dst: *mut u8,
    dst_cap: usize,
    written_out: *mut usize,
) -> blockdelta_result {
    // SAFETY: forwarded contract.
    unsafe {
        with_encoder(encoder, dst, dst_cap, written_out, |e, d| {
            let n = inner!(&mut e.inner, x => x.write_header(d))?;
            e.header_written = true;
            Ok(n)
        })
    }
}

/// Sets the extents to encode next (copied; they may be freed after the call). They must ascend
/// without overlap, start at or after everything already encoded, and lie within the disk.
/// `(NULL, 0)` is an empty list. Replaces any list not yet fully encoded. A DISCARD extent
/// (`kind` `BLOCKDELTA_EXTENT_KIND_DISCARD`) becomes one DISCARD record, nothing is read for it;
/// any other `kind` than WRITE or DISCARD is `BLOCKDELTA_RESULT_INVALID_ARGUMENT`. Allocates;
/// never blocks.
#[no_mangle]
pub extern "C" fn blockdelta_encoder_set_extents(
    encoder: *mut blockdelta_encoder,
    extents: *const Extent,
    count: usize,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: per the contract, a non-NULL handle is live.
        let enc = unsafe { arg_ref(encoder)? };
        // SAFETY: the caller passes `(extents, count)` readable or `(NULL, 0)`.
        let list = unsafe {
            arg_extents(extents, count, |i, kind| {
                enc.last_error.record(
                    blockdelta_result::InvalidArgument,
                    &format_args!("extent {i} has kind {kind}: not BLOCKDELTA_EXTENT_KIND_WRITE (0) or _DISCARD (1)"),
                )
            })?
        };
        let mut st = encoder_state(enc)?;
        let st = &mut *st;
        match &mut st.inner {
            Inner::Single(x) => x.check_extents(list),
            Inner::Parallel(x) => x.set_extents(list),
        }
        .map_err(|e| enc.last_error.fail(e))?;
        // Kept in both modes: `blockdelta_encoder_set_threads` carries the list over.
        st.extents.clear();
        st.extents.extend_from_slice(list);
        st.cursor = EncodeCursor::default();
        Ok(())
    })
}

/// Encodes the next record of the current extent list into `dst`, reading through the read
/// callback. `*written_out` receives the frame length, or 0 when the list is exhausted. On error
/// nothing is consumed and the call may be retried. Blocks only inside the read callback; one
/// thread at a time per encoder.
#[no_mangle]
pub extern "C" fn blockdelta_encoder_next(
    encoder: *mut blockdelta_encoder,
    dst: *mut u8,
    dst_cap: usize,
    written_out: *mut usize,
) -> blockdelta_result {
    // SAFETY: forwarded contract.
    unsafe {
        with_encoder(encoder, dst, dst_cap, written_out, |e, d| {
            let EncoderState {
                inner,
                source,
                extents,
                cursor,
                ..
            } = e;
            let n = match inner {
                Inner::Single(x) => x.next_frame(extents, cursor, source, d)?,
                Inner::Parallel(x) => x.next_frame(source, d)?,
            };
            Ok(n.unwrap_or(0))
        })
    }
}

/// Writes a ZERO record (`offset`..`offset + len` reads as zeros) into `dst`; same buffer rules
/// as `blockdelta_encoder_header`. The range must come after everything already encoded.
#[no_mangle]
pub extern "C" fn blockdelta_encoder_zero(
    encoder: *mut blockdelta_encoder,
    offset: u64,
    len: u64,
    dst: *mut u8,
    dst_cap: usize,
    written_out: *mut usize,
) -> blockdelta_result {
    // SAFETY: forwarded contract.
    unsafe {
        with_encoder(
            encoder,
            dst,
            dst_cap,
            written_out,
            |e, d| inner!(&mut e.inner, x => x.write_zero(offset, len, d)),
        )
    }
}

/// Writes a DISCARD record (`offset`..`offset + len` unmapped); same rules as `blockdelta_encoder_zero`.
#[no_mangle]
pub extern "C" fn blockdelta_encoder_discard(
    encoder: *mut blockdelta_encoder,
    offset: u64,
    len: u64,
    dst: *mut u8,
    dst_cap: usize,
    written_out: *mut usize,
) -> blockdelta_result {
    // SAFETY: forwarded contract.
    unsafe {
        with_encoder(
            encoder,
            dst,
            dst_cap,
            written_out,
            |e, d| inner!(&mut e.inner, x => x.write_discard(offset, len, d)),
        )
    }
}

/// Writes a RESIZE record (the disk has `new_size` bytes from here on); same buffer rules.
#[no_mangle]
pub extern "C" fn blockdelta_encoder_resize(
    encoder: *mut blockdelta_encoder,
    new_size: u64,
    dst: *mut u8,
    dst_cap: usize,
    written_out: *mut usize,
) -> blockdelta_result {
    // SAFETY: forwarded contract.
    unsafe {
        with_encoder(
            encoder,
            dst,
            dst_cap,
            written_out,
            |e, d| inner!(&mut e.inner, x => x.write_resize(new_size, d)),
        )
    }
}

/// Writes a BOOKMARK record. `kind` is 1 (crash-consistent) or 2 (application-consistent);
/// `(label, label_len)` is UTF-8 of at most 1024 bytes (copied; `(NULL, 0)` is empty). Same buffer rules.
#[no_mangle]
pub extern "C" fn blockdelta_encoder_bookmark(
    encoder: *mut blockdelta_encoder,
    id: u64,
    timestamp_ns: u64,
    kind: u32,
    label: *const u8,
    label_len: usize,
    dst: *mut u8,
    dst_cap: usize,
    written_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: `(label, label_len)` is readable or `(NULL, 0)` per the contract.
        let label = unsafe { arg_slice(label, label_len)? };
        // SAFETY: forwarded contract.
        unsafe {
            encoder_call(encoder, dst, dst_cap, written_out, |e, d| {
                let kind = u8::try_from(kind)
                    .ok()
                    .and_then(bookmark_kind)
                    .ok_or(StreamError::InvalidArgument {
                    reason:
                        "bookmark kind must be 1 (crash-consistent) or 2 (application-consistent)",
                })?;
                let label =
                    std::str::from_utf8(label).map_err(|_| StreamError::InvalidArgument {
                        reason: "bookmark label is not UTF-8",
                    })?;
                let b = Bookmark {
                    id,
                    timestamp_ns,
                    kind,
                    label,
                };
                inner!(&mut e.inner, x => x.write_bookmark(&b, d))
            })
        }
    })
}

fn bookmark_kind(k: u8) -> Option<BookmarkKind> {
    match k {
        1 => Some(BookmarkKind::CrashConsistent),
        2 => Some(BookmarkKind::ApplicationConsistent),
        _ => None,
    }
}

/// Writes the END record; nothing may follow. Same buffer rules as `blockdelta_encoder_header`.
#[no_mangle]
pub extern "C" fn blockdelta_encoder_finish(
    encoder: *mut blockdelta_encoder,
    dst: *mut u8,
    dst_cap: usize,
    written_out: *mut usize,
) -> blockdelta_result {
    // SAFETY: forwarded contract.
    unsafe {
        with_encoder(
            encoder,
            dst,
            dst_cap,
            written_out,
            |e, d| inner!(&mut e.inner, x => x.finish(d)),
        )
    }
}

/// Copies the encoder's last error message (NUL-terminated, truncated to `cap - 1` bytes) into
/// `buf`; `*len_out` (if not NULL) receives the full length. Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_encoder_last_error(
    encoder: *const blockdelta_encoder,
    buf: *mut std::ffi::c_char,
    cap: usize,
    len_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle or NULL; `(buf, cap)` writable or `(NULL, 0)`.
        unsafe { copy_handle_message(&arg_ref(encoder)?.last_error, buf, cap, len_out) }
    })
}
