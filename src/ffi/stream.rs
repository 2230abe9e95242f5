//! C ABI of the delta stream: `blockdelta_encoder`, `blockdelta_decoder`, `blockdelta_applier`.
//!
//! The encoder reads disk bytes through a C read callback and writes frames into caller
//! buffers sized by `blockdelta_encoder_bound`. The decoder hands out verified records; the
//! applier writes them through C target callbacks. All three are single-threaded objects: one
//! thread at a time may call a given handle (different handles are independent). No function
//! here blocks except by calling the caller's own callbacks.

// C-style signatures with many plain arguments are the ABI (naming and pointer-contract lints are
// allowed for the whole C layer in `ffi/mod.rs`).
#![allow(clippy::too_many_arguments)]

use std::ffi::{c_int, c_void};
use std::io;

use super::error::{copy_handle_message, fail_thread, LastError};
use super::handle::{arg_ref, arg_slice, free_handle, into_handle, out_slice, Out};
use super::panic::{boundary, boundary_value};
use super::result::blockdelta_result;
use crate::stream::{
    Applier, ApplyTarget, BlockSource, Bookmark, BookmarkKind, Codec, Decoded, Decoder,
    DecoderConfig, EncodeCursor, Encoder, EncoderConfig, Expected, Record, Secret, StreamError,
};
use crate::tracker::{Extent, ExtentKind, GenerationId};

/// Encoder flag: try lz4 on DATA records (raw is kept when lz4 does not pay).
pub const BLOCKDELTA_ENCODE_LZ4: u32 = 1;
/// Encoder flag: send all-zero records as ZERO records.
pub const BLOCKDELTA_ENCODE_ZERO_DETECTION: u32 = 2;

/// `blockdelta_record.kind`: the input holds no whole frame yet; call again with more bytes.
pub const BLOCKDELTA_RECORD_NEED_MORE: u32 = 0;
/// `kind`: the stream header was verified (see `blockdelta_decoder_header`).
pub const BLOCKDELTA_RECORD_HEADER: u32 = 1;
/// `kind`: DATA: `data`/`data_len` (decoded bytes) belong at `offset`; `aux` is the codec (0 raw, 1 lz4).
pub const BLOCKDELTA_RECORD_DATA: u32 = 2;
/// `kind`: ZERO: `offset`..`offset + len` reads as zeros.
pub const BLOCKDELTA_RECORD_ZERO: u32 = 3;
/// `kind`: DISCARD: `offset`..`offset + len` is unmapped, contents unspecified.
pub const BLOCKDELTA_RECORD_DISCARD: u32 = 4;
/// `kind`: RESIZE: the disk now has `len` bytes.
pub const BLOCKDELTA_RECORD_RESIZE: u32 = 5;
/// `kind`: BOOKMARK: `offset` = id, `len` = timestamp (ns since the Unix epoch), `aux` = kind
/// (1 crash-consistent, 2 application-consistent), `data`/`data_len` = UTF-8 label (not NUL-terminated).
pub const BLOCKDELTA_RECORD_BOOKMARK: u32 = 6;
/// `kind`: END: the stream is complete; `offset` = record count, `len` = byte count, `aux` = checksum.
pub const BLOCKDELTA_RECORD_END: u32 = 7;
/// `kind`: an optional record type this library does not know, verified and skipped; `aux` = its type.
pub const BLOCKDELTA_RECORD_SKIPPED: u32 = 8;

/// One decoded item. A plain value type that will not grow: later record kinds reuse these
/// fields. `data` points into the input passed to `blockdelta_decoder_next` or into the
/// decoder, and is valid until the next call on that decoder or until the input is freed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct blockdelta_record {
    /// `BLOCKDELTA_RECORD_*`.
    pub kind: u32,
    /// Kind-specific (see each `BLOCKDELTA_RECORD_*`).
    pub aux: u32,
    /// Disk offset, or kind-specific.
    pub offset: u64,
    /// Length in bytes, or kind-specific.
    pub len: u64,
    /// Payload (DATA) or label (BOOKMARK); NULL otherwise.
    pub data: *const u8,
    /// Bytes at `data`.
    pub data_len: usize,
}

/// Reads `len` bytes of the source disk at `offset` into `buf`. Returns 0 on success; non-zero
/// on failure (a positive value is reported as that errno). Called only from within
/// `blockdelta_encoder_next`, on the calling thread; `buf` is valid only during the call.
pub type blockdelta_read_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, offset: u64, buf: *mut u8, len: usize) -> c_int>;
/// Writes `len` bytes from `buf` at `offset` of the replica. Returns 0 on success.
pub type blockdelta_write_fn = Option<
    unsafe extern "C" fn(ctx: *mut c_void, offset: u64, buf: *const u8, len: usize) -> c_int,
>;
/// Makes `offset`..`offset + len` read as zeros (write_zeroes) or unmaps it (discard). Returns 0 on success.
pub type blockdelta_range_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, offset: u64, len: u64) -> c_int>;
/// Resizes the replica to `new_size` bytes. Returns 0 on success.
pub type blockdelta_resize_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, new_size: u64) -> c_int>;
/// Makes everything written so far durable. Returns 0 on success.
pub type blockdelta_sync_fn = Option<unsafe extern "C" fn(ctx: *mut c_void) -> c_int>;

fn callback_error(rc: c_int) -> io::Error {
    if rc > 0 {
        io::Error::from_raw_os_error(rc)
    } else {
        io::ErrorKind::Other.into()
    }
}

struct CSource {
    read: unsafe extern "C" fn(*mut c_void, u64, *mut u8, usize) -> c_int,
    ctx: *mut c_void,
}

impl BlockSource for CSource {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        // SAFETY: the caller of `blockdelta_encoder_new` promised a valid callback and context;
        // `buf` is a live, writable slice for the duration of the call.
        rc(unsafe { (self.read)(self.ctx, offset, buf.as_mut_ptr(), buf.len()) })
    }
}

struct CTarget {
    ctx: *mut c_void,
    write: unsafe extern "C" fn(*mut c_void, u64, *const u8, usize) -> c_int,
    write_zeroes: unsafe extern "C" fn(*mut c_void, u64, u64) -> c_int,
    discard: blockdelta_range_fn,
    resize: blockdelta_resize_fn,
    sync: blockdelta_sync_fn,
}

fn rc(r: c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(callback_error(r))
    }
}

// SAFETY (for every call below): the caller of `blockdelta_applier_new` promised valid
// callbacks and context for the applier's lifetime; slices passed are live during the call.
impl ApplyTarget for CTarget {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        // SAFETY: see the impl comment.
        rc(unsafe { (self.write)(self.ctx, offset, data.as_ptr(), data.len()) })
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        // SAFETY: see the impl comment.
        rc(unsafe { (self.write_zeroes)(self.ctx, offset, len) })
    }
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        match self.discard {
            // SAFETY: see the impl comment.
            Some(f) => rc(unsafe { f(self.ctx, offset, len) }),
            None => self.write_zeroes(offset, len),
        }
    }
    fn resize(&mut self, new_size: u64) -> io::Result<()> {
        match self.resize {
            // SAFETY: see the impl comment.
            Some(f) => rc(unsafe { f(self.ctx, new_size) }),
            None => Err(io::ErrorKind::Unsupported.into()),
        }
    }
    fn sync(&mut self) -> io::Result<()> {
        match self.sync {
            // SAFETY: see the impl comment.
            Some(f) => rc(unsafe { f(self.ctx) }),
            None => Ok(()),
        }
    }
}

/// A stream encoder (opaque). Create with `blockdelta_encoder_new`, free with `blockdelta_encoder_free`.
pub struct blockdelta_encoder {
    inner: Encoder,
    source: CSource,
    extents: Vec<Extent>,
    cursor: EncodeCursor,
    last_error: LastError,
}

/// A stream decoder (opaque). Create with `blockdelta_decoder_new`, free with `blockdelta_decoder_free`.
pub struct blockdelta_decoder {
    inner: Decoder,
    last_error: LastError,
}

/// A decoder writing to C target callbacks (opaque). Create with `blockdelta_applier_new`.
pub struct blockdelta_applier {
    inner: Applier<CTarget>,
    last_error: LastError,
}

/// Reads a 16-byte id; NULL is `None` when `optional`.
///
/// # Safety
/// `p` is NULL or valid for 16 reads.
unsafe fn id16(p: *const u8) -> Result<Option<[u8; 16]>, blockdelta_result> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and valid for 16 bytes per the caller's contract.
    let s = unsafe { arg_slice(p, 16)? };
    let mut a = [0u8; 16];
    a.copy_from_slice(s);
    Ok(Some(a))
}

/// # Safety
/// `secret` is NULL with `len == 0`, or valid for `len` reads.
unsafe fn secret_arg(secret: *const u8, len: usize) -> Result<Option<Secret>, blockdelta_result> {
    // SAFETY: forwarded contract.
    let s = unsafe { arg_slice(secret, len)? };
    Ok(if secret.is_null() {
        None
    } else {
        Some(Secret::new(s))
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
        if flags & !(BLOCKDELTA_ENCODE_LZ4 | BLOCKDELTA_ENCODE_ZERO_DETECTION) != 0 {
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
        cfg.secret = secret;
        let inner = Encoder::new(cfg).map_err(fail_thread)?;
        let h = blockdelta_encoder {
            inner,
            source: CSource {
                read,
                ctx: read_ctx,
            },
            extents: Vec::new(),
            cursor: EncodeCursor::default(),
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

/// The size a `dst` buffer needs for any frame of this encoder (0 for NULL). Never blocks.
#[no_mangle]
pub extern "C" fn blockdelta_encoder_bound(encoder: *const blockdelta_encoder) -> usize {
    boundary_value(0, || {
        // SAFETY: `encoder` is NULL or a live handle.
        unsafe { arg_ref(encoder) }
            .map(|e| e.inner.max_frame_len())
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
    f: impl FnOnce(&mut blockdelta_encoder, &mut [u8]) -> Result<usize, StreamError>,
) -> Result<(), blockdelta_result> {
    // SAFETY: per the contract, a non-NULL handle is live and not shared during the call.
    let enc = unsafe { encoder.as_mut() }.ok_or(blockdelta_result::NullParameter)?;
    let out = Out::new(written_out)?;
    // SAFETY: `(dst, dst_cap)` is a writable region or `(NULL, 0)` per the contract.
    let dst = unsafe { out_slice(dst, dst_cap)? };
    match f(enc, dst) {
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
    f: impl FnOnce(&mut blockdelta_encoder, &mut [u8]) -> Result<usize, StreamError>,
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
            e.inner.write_header(d)
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
        // SAFETY: per the contract, a non-NULL handle is live and not shared during the call.
        let enc = unsafe { encoder.as_mut() }.ok_or(blockdelta_result::NullParameter)?;
        // An `Extent` with a `kind` that is not a variant would be undefined behaviour in Rust:
        // check the raw numbers C wrote before viewing the array as extents.
        for i in 0..if extents.is_null() { 0 } else { count } {
            // SAFETY: `(extents, count)` is readable; `kind` is read as the `u32` it is in C,
            // through a raw pointer (no reference to a possibly invalid `Extent` is made).
            let kind = unsafe {
                std::ptr::addr_of!((*extents.add(i)).kind)
                    .cast::<u32>()
                    .read()
            };
            if ExtentKind::from_u32(kind).is_none() {
                return Err(enc.last_error.record(
                    blockdelta_result::InvalidArgument,
                    &format_args!("extent {i} has kind {kind}: not BLOCKDELTA_EXTENT_KIND_WRITE (0) or _DISCARD (1)"),
                ));
            }
        }
        // SAFETY: `(extents, count)` is readable or `(NULL, 0)`; every kind was checked above.
        let list = unsafe { arg_slice(extents, count)? };
        enc.inner
            .check_extents(list)
            .map_err(|e| enc.last_error.fail(e))?;
        enc.extents.clear();
        enc.extents.extend_from_slice(list);
        enc.cursor = EncodeCursor::default();
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
            let blockdelta_encoder {
                inner,
                source,
                extents,
                cursor,
                ..
            } = e;
            Ok(inner.next_frame(extents, cursor, source, d)?.unwrap_or(0))
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
        with_encoder(encoder, dst, dst_cap, written_out, |e, d| {
            e.inner.write_zero(offset, len, d)
        })
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
        with_encoder(encoder, dst, dst_cap, written_out, |e, d| {
            e.inner.write_discard(offset, len, d)
        })
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
        with_encoder(encoder, dst, dst_cap, written_out, |e, d| {
            e.inner.write_resize(new_size, d)
        })
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
                e.inner.write_bookmark(
                    &Bookmark {
                        id,
                        timestamp_ns,
                        kind,
                        label,
                    },
                    d,
                )
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
    unsafe { with_encoder(encoder, dst, dst_cap, written_out, |e, d| e.inner.finish(d)) }
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

/// # Safety
/// Pointer arguments as documented on `blockdelta_decoder_expect`.
unsafe fn expected_arg(
    disk_id: *const u8,
    generation: *const u8,
    from_seq: u64,
    check_from_seq: bool,
) -> Result<Expected, blockdelta_result> {
    // SAFETY: forwarded contract.
    let (disk_id, generation) = unsafe { (id16(disk_id)?, id16(generation)?) };
    Ok(Expected {
        disk_id,
        generation: generation.map(GenerationId),
        from_seq: check_from_seq.then_some(from_seq),
    })
}

/// Creates a decoder. `(secret, secret_len)` is the secret for encrypted streams (copied); with a
/// secret, unencrypted streams are refused; `(NULL, 0)` accepts only unencrypted streams.
/// `*decoder_out` receives a handle the caller frees with `blockdelta_decoder_free`.
/// Never blocks; any thread. Scratch is allocated when the stream header is decoded, sized by
/// the stream's record size (at most about 2 MiB); decoding records allocates nothing, except
/// that an encrypted frame larger than the declared record size allows (only a later writer's
/// optional record type can be) grows the plaintext buffer once.
#[no_mangle]
pub extern "C" fn blockdelta_decoder_new(
    secret: *const u8,
    secret_len: usize,
    decoder_out: *mut *mut blockdelta_decoder,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(decoder_out)?;
        // SAFETY: `(secret, secret_len)` readable or `(NULL, 0)`.
        let secret = unsafe { secret_arg(secret, secret_len)? };
        let mut cfg = DecoderConfig::new();
        cfg.secret = secret;
        let h = blockdelta_decoder {
            inner: Decoder::new(cfg),
            last_error: LastError::new(),
        };
        // SAFETY: checked non-NULL, writable per the contract.
        unsafe { out.write(into_handle(h)) };
        Ok(())
    })
}

/// Frees a decoder; NULL is a no-op. Record data it handed out becomes invalid. Never blocks.
#[no_mangle]
pub extern "C" fn blockdelta_decoder_free(decoder: *mut blockdelta_decoder) {
    // SAFETY: NULL or a handle from `blockdelta_decoder_new`, freed once.
    boundary_value((), || unsafe { free_handle(decoder) })
}

/// Sets what the stream must match, before the header is decoded: `disk_id` and `generation`
/// (16 bytes each, copied; NULL = not checked) and, when `check_from_seq`, the checkpoint the
/// replica is at (a stale or replayed stream is refused). Never blocks.
#[no_mangle]
pub extern "C" fn blockdelta_decoder_expect(
    decoder: *mut blockdelta_decoder,
    disk_id: *const u8,
    generation: *const u8,
    from_seq: u64,
    check_from_seq: bool,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle used by this thread only, or NULL.
        let d = unsafe { decoder.as_mut() }.ok_or(blockdelta_result::NullParameter)?;
        // SAFETY: ids are NULL or 16 readable bytes.
        let e = unsafe { expected_arg(disk_id, generation, from_seq, check_from_seq)? };
        d.inner.set_expected(e).map_err(|e| d.last_error.fail(e))
    })
}

/// Verifies the frame at the start of `(input, input_len)` (caller-owned, read only) and
/// describes it in `*record_out`; `*consumed_out` receives the bytes used (0 with
/// `BLOCKDELTA_RECORD_NEED_MORE`). Nothing is returned from a frame that fails verification, and
/// after an error the decoder refuses further input. `record_out->data` is valid until the next
/// call on this decoder or until `input` changes. Never blocks; one thread at a time per decoder.
#[no_mangle]
pub extern "C" fn blockdelta_decoder_next(
    decoder: *mut blockdelta_decoder,
    input: *const u8,
    input_len: usize,
    consumed_out: *mut usize,
    record_out: *mut blockdelta_record,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle used by this thread only, or NULL.
        let d = unsafe { decoder.as_mut() }.ok_or(blockdelta_result::NullParameter)?;
        let consumed_out = Out::new(consumed_out)?;
        let record_out = Out::new(record_out)?;
        // SAFETY: `(input, input_len)` readable or `(NULL, 0)`.
        let input = unsafe { arg_slice(input, input_len)? };
        let empty = blockdelta_record {
            kind: BLOCKDELTA_RECORD_NEED_MORE,
            aux: 0,
            offset: 0,
            len: 0,
            data: std::ptr::null(),
            data_len: 0,
        };
        let (rec, consumed) = match d.inner.next(input) {
            Err(e) => return Err(d.last_error.fail(e)),
            Ok(Decoded::NeedMore { .. }) => (empty, 0),
            Ok(Decoded::Header { consumed, .. }) => (
                blockdelta_record {
                    kind: BLOCKDELTA_RECORD_HEADER,
                    ..empty
                },
                consumed,
            ),
            Ok(Decoded::Record { record, consumed }) => (record_view(&record, empty), consumed),
        };
        // SAFETY: both checked non-NULL and writable per the contract.
        unsafe {
            consumed_out.write(consumed);
            record_out.write(rec);
        }
        Ok(())
    })
}

fn record_view(r: &Record<'_>, empty: blockdelta_record) -> blockdelta_record {
    match *r {
        Record::Data {
            offset,
            data,
            codec,
        } => blockdelta_record {
            kind: BLOCKDELTA_RECORD_DATA,
            aux: u32::from(codec == Codec::Lz4),
            offset,
            len: data.len() as u64,
            data: data.as_ptr(),
            data_len: data.len(),
        },
        Record::Zero { offset, len } => blockdelta_record {
            kind: BLOCKDELTA_RECORD_ZERO,
            offset,
            len,
            ..empty
        },
        Record::Discard { offset, len } => blockdelta_record {
            kind: BLOCKDELTA_RECORD_DISCARD,
            offset,
            len,
            ..empty
        },
        Record::Resize { new_size } => blockdelta_record {
            kind: BLOCKDELTA_RECORD_RESIZE,
            len: new_size,
            ..empty
        },
        Record::Bookmark(b) => blockdelta_record {
            kind: BLOCKDELTA_RECORD_BOOKMARK,
            aux: match b.kind {
                BookmarkKind::CrashConsistent => 1,
                _ => 2,
            },
            offset: b.id,
            len: b.timestamp_ns,
            data: b.label.as_ptr(),
            data_len: b.label.len(),
        },
        Record::End(e) => blockdelta_record {
            kind: BLOCKDELTA_RECORD_END,
            aux: e.checksum,
            offset: e.records,
            len: e.bytes,
            ..empty
        },
        Record::Skipped { record_type } => blockdelta_record {
            kind: BLOCKDELTA_RECORD_SKIPPED,
            aux: u32::from(record_type),
            ..empty
        },
    }
}

/// Copies the decoded stream header's fields: `disk_id_out` and `generation_out` receive 16 bytes
/// each (caller-owned; NULL to skip), the others one value each (NULL to skip).
/// `BLOCKDELTA_RESULT_STREAM_INVALID_STATE` before the header has been decoded. Never blocks.
#[no_mangle]
pub extern "C" fn blockdelta_decoder_header(
    decoder: *const blockdelta_decoder,
    disk_id_out: *mut u8,
    generation_out: *mut u8,
    from_seq_out: *mut u64,
    to_seq_out: *mut u64,
    disk_size_out: *mut u64,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle or NULL.
        let d = unsafe { arg_ref(decoder)? };
        let Some(h) = d.inner.header() else {
            return Err(d.last_error.fail(StreamError::InvalidState {
                reason: "no stream header decoded yet",
            }));
        };
        // SAFETY: each output is NULL or writable (16 bytes for the ids) per the contract.
        unsafe {
            if !disk_id_out.is_null() {
                out_slice(disk_id_out, 16)?.copy_from_slice(&h.disk_id);
            }
            if !generation_out.is_null() {
                out_slice(generation_out, 16)?.copy_from_slice(&h.generation.0);
            }
            for (p, v) in [
                (from_seq_out, h.from_seq),
                (to_seq_out, h.to_seq),
                (disk_size_out, h.disk_size),
            ] {
                if !p.is_null() {
                    p.write(v);
                }
            }
        }
        Ok(())
    })
}

/// Call at the end of input: OK if a verified END was decoded, `BLOCKDELTA_RESULT_STREAM_TRUNCATED`
/// if the stream stopped before END. Never blocks.
#[no_mangle]
pub extern "C" fn blockdelta_decoder_finish(
    decoder: *const blockdelta_decoder,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle or NULL.
        let d = unsafe { arg_ref(decoder)? };
        d.inner
            .finish()
            .map(|_| ())
            .map_err(|e| d.last_error.fail(e))
    })
}

/// Copies the decoder's last error message; rules as `blockdelta_encoder_last_error`.
#[no_mangle]
pub extern "C" fn blockdelta_decoder_last_error(
    decoder: *const blockdelta_decoder,
    buf: *mut std::ffi::c_char,
    cap: usize,
    len_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle or NULL; `(buf, cap)` writable or `(NULL, 0)`.
        unsafe { copy_handle_message(&arg_ref(decoder)?.last_error, buf, cap, len_out) }
    })
}

/// Creates an applier: a decoder that writes verified records through the target callbacks, all
/// called with `ctx` on the thread that calls `blockdelta_applier_push`. `write` and
/// `write_zeroes` are required; `discard` NULL falls back to `write_zeroes`; `resize` NULL makes
/// a RESIZE record fail with `BLOCKDELTA_RESULT_STREAM_RESIZE_UNSUPPORTED`; `sync` (called at
/// every BOOKMARK and at END) NULL is a no-op. Callbacks and `ctx` must stay valid until the
/// applier is freed. `(secret, secret_len)` as for `blockdelta_decoder_new`. `*applier_out`
/// receives a handle the caller frees with `blockdelta_applier_free`. Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_applier_new(
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
        let target = CTarget {
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
            inner: Applier::new(cfg, target),
            last_error: LastError::new(),
        };
        // SAFETY: checked non-NULL, writable per the contract.
        unsafe { out.write(into_handle(h)) };
        Ok(())
    })
}

/// Frees an applier; NULL is a no-op. Never blocks.
#[no_mangle]
pub extern "C" fn blockdelta_applier_free(applier: *mut blockdelta_applier) {
    // SAFETY: NULL or a handle from `blockdelta_applier_new`, freed once.
    boundary_value((), || unsafe { free_handle(applier) })
}

/// As `blockdelta_decoder_expect`, for an applier.
#[no_mangle]
pub extern "C" fn blockdelta_applier_expect(
    applier: *mut blockdelta_applier,
    disk_id: *const u8,
    generation: *const u8,
    from_seq: u64,
    check_from_seq: bool,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle used by this thread only, or NULL.
        let a = unsafe { applier.as_mut() }.ok_or(blockdelta_result::NullParameter)?;
        // SAFETY: ids are NULL or 16 readable bytes.
        let e = unsafe { expected_arg(disk_id, generation, from_seq, check_from_seq)? };
        a.inner.set_expected(e).map_err(|e| a.last_error.fail(e))
    })
}

/// Verifies and applies every whole frame at the start of `(input, input_len)` (caller-owned,
/// read only); `*consumed_out` receives the bytes used. Keep the rest and call again with it
/// followed by more input. A frame is written only after it is fully verified; after an error the
/// applier refuses further input. Blocks only inside the target callbacks; one thread at a time.
#[no_mangle]
pub extern "C" fn blockdelta_applier_push(
    applier: *mut blockdelta_applier,
    input: *const u8,
    input_len: usize,
    consumed_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle used by this thread only, or NULL.
        let a = unsafe { applier.as_mut() }.ok_or(blockdelta_result::NullParameter)?;
        let out = Out::new(consumed_out)?;
        // SAFETY: `(input, input_len)` readable or `(NULL, 0)`.
        let input = unsafe { arg_slice(input, input_len)? };
        let n = a.inner.push(input).map_err(|e| a.last_error.fail(e))?;
        // SAFETY: checked non-NULL, writable per the contract.
        unsafe { out.write(n) };
        Ok(())
    })
}

/// Call at the end of input: OK when END was verified and the target synced (the replica is at
/// the stream's to_seq); `BLOCKDELTA_RESULT_STREAM_TRUNCATED` if END never came. Never blocks.
#[no_mangle]
pub extern "C" fn blockdelta_applier_finish(
    applier: *const blockdelta_applier,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle or NULL.
        let a = unsafe { arg_ref(applier)? };
        a.inner
            .finish()
            .map(|_| ())
            .map_err(|e| a.last_error.fail(e))
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

/// These tests drive the C entry points the way a C program does (raw pointers, `extern "C"`
/// callbacks with a context pointer, caller-owned frame buffers), so that `cargo miri test --lib`
/// executes every `unsafe` block of this file. Sizes are small: miri is slow.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::error::blockdelta_last_error;
    use std::ffi::{c_char, CStr};
    use std::ptr::{null, null_mut};

    const DISK: usize = 64 * 1024;
    /// The size after the stream's RESIZE record; the source holds this much.
    const GROWN: usize = DISK + 8 * 1024;
    const RECORD: u32 = 4096;
    const DISK_ID: [u8; 16] = *b"miri-stream-0001";
    const GENERATION: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
    const SECRET: &[u8] = b"miri test secret";
    const FLAGS: u32 = BLOCKDELTA_ENCODE_LZ4 | BLOCKDELTA_ENCODE_ZERO_DETECTION;
    const BOOKMARK_TS: u64 = 1_700_000_000_000_000_000;
    const OK: blockdelta_result = blockdelta_result::Ok;
    const NULL: blockdelta_result = blockdelta_result::NullParameter;

    /// Text (compresses), zeros, pseudo-random bytes (kept raw), text.
    fn source_disk() -> Vec<u8> {
        let text = b"blockdelta C ABI under miri: encode, decode, apply. ";
        let mut x = 2_463_534_242u32;
        (0..GROWN)
            .map(|i| match i {
                _ if i < 16384 => text[i % text.len()],
                _ if i < 32768 => 0,
                _ if i < 49152 => {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                }
                _ => text[i % text.len()],
            })
            .collect()
    }

    /// The in-memory source disk a C program would hand to the read callback.
    struct Source {
        disk: Vec<u8>,
        /// Non-zero: the next read fails with this code (and clears it).
        fail_next: c_int,
        reads: u32,
    }

    fn range(size: usize, offset: u64, len: u64) -> Option<std::ops::Range<usize>> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        (end <= size).then_some(start..end)
    }

    unsafe extern "C" fn read_source(
        ctx: *mut c_void,
        offset: u64,
        buf: *mut u8,
        len: usize,
    ) -> c_int {
        // SAFETY: every encoder in these tests gets a `Source` that outlives it as `read_ctx`,
        // and the encoder passes a buffer valid for `len` writes.
        let (src, buf) = unsafe {
            (
                &mut *ctx.cast::<Source>(),
                std::slice::from_raw_parts_mut(buf, len),
            )
        };
        if src.fail_next != 0 {
            return std::mem::take(&mut src.fail_next);
        }
        let Some(r) = range(src.disk.len(), offset, len as u64) else {
            return 22; // EINVAL
        };
        buf.copy_from_slice(&src.disk[r]);
        src.reads += 1;
        0
    }

    /// The replica a C program would hand to the target callbacks, with call counts.
    #[derive(Default)]
    struct Replica {
        disk: Vec<u8>,
        writes: u32,
        zeroes: u32,
        discards: u32,
        resizes: u32,
        syncs: u32,
        /// A callback name ("write", "discard", ...) and the code it then returns.
        fail: Option<(&'static str, c_int)>,
    }

    impl Replica {
        fn new(size: usize) -> Self {
            Replica {
                disk: vec![0xEE; size],
                ..Replica::default()
            }
        }

        fn failure(&self, op: &str) -> c_int {
            match self.fail {
                Some((f, rc)) if f == op => rc,
                _ => 0,
            }
        }

        fn fill(&mut self, offset: u64, len: u64, v: u8) -> c_int {
            match range(self.disk.len(), offset, len) {
                Some(r) => {
                    self.disk[r].fill(v);
                    0
                }
                None => 22,
            }
        }
    }

    /// # Safety
    /// `ctx` is the `Replica` given to `blockdelta_applier_new`, alive and not otherwise borrowed.
    unsafe fn replica<'a>(ctx: *mut c_void) -> &'a mut Replica {
        // SAFETY: per the function's contract.
        unsafe { &mut *ctx.cast::<Replica>() }
    }

    unsafe extern "C" fn t_write(
        ctx: *mut c_void,
        offset: u64,
        buf: *const u8,
        len: usize,
    ) -> c_int {
        // SAFETY: `ctx` is the test's `Replica`; the applier passes `len` readable bytes.
        let (t, data) = unsafe { (replica(ctx), std::slice::from_raw_parts(buf, len)) };
        let rc = t.failure("write");
        if rc != 0 {
            return rc;
        }
        let Some(r) = range(t.disk.len(), offset, len as u64) else {
            return 22;
        };
        t.disk[r].copy_from_slice(data);
        t.writes += 1;
        0
    }

    unsafe extern "C" fn t_zero(ctx: *mut c_void, offset: u64, len: u64) -> c_int {
        // SAFETY: `ctx` is the test's `Replica`.
        let t = unsafe { replica(ctx) };
        t.zeroes += 1;
        t.fill(offset, len, 0)
    }

    unsafe extern "C" fn t_discard(ctx: *mut c_void, offset: u64, len: u64) -> c_int {
        // SAFETY: `ctx` is the test's `Replica`.
        let t = unsafe { replica(ctx) };
        let rc = t.failure("discard");
        if rc != 0 {
            return rc;
        }
        t.discards += 1;
        t.fill(offset, len, 0)
    }

    unsafe extern "C" fn t_resize(ctx: *mut c_void, new_size: u64) -> c_int {
        // SAFETY: `ctx` is the test's `Replica`.
        let t = unsafe { replica(ctx) };
        t.resizes += 1;
        t.disk.resize(new_size as usize, 0);
        0
    }

    unsafe extern "C" fn t_sync(ctx: *mut c_void) -> c_int {
        // SAFETY: `ctx` is the test's `Replica`.
        let t = unsafe { replica(ctx) };
        let rc = t.failure("sync");
        if rc == 0 {
            t.syncs += 1;
        }
        rc
    }

    /// AES-GCM and HKDF come from `ring`'s C and assembly code, which miri cannot run: under
    /// miri the streams are unencrypted (secret `(NULL, 0)`); natively they are encrypted.
    fn secret() -> (*const u8, usize) {
        if cfg!(miri) {
            (null(), 0)
        } else {
            (SECRET.as_ptr(), SECRET.len())
        }
    }

    fn message(buf: &[c_char]) -> &str {
        // SAFETY: the last-error functions NUL-terminate within `buf`.
        unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap()
    }

    fn thread_error() -> String {
        let mut buf = [0 as c_char; 512];
        assert_eq!(
            blockdelta_last_error(buf.as_mut_ptr(), buf.len(), null_mut()),
            OK
        );
        message(&buf).to_owned()
    }

    fn applier_error(app: *const blockdelta_applier) -> String {
        let mut buf = [0 as c_char; 512];
        let mut len = 0;
        assert_eq!(
            blockdelta_applier_last_error(app, buf.as_mut_ptr(), buf.len(), &mut len),
            OK
        );
        assert_eq!(len, message(&buf).len());
        message(&buf).to_owned()
    }

    fn new_encoder(src: *mut Source) -> *mut blockdelta_encoder {
        let (secret, secret_len) = secret();
        let mut enc = null_mut();
        assert_eq!(
            blockdelta_encoder_new(
                DISK_ID.as_ptr(),
                GENERATION.as_ptr(),
                41,
                42,
                DISK as u64,
                4096,
                RECORD,
                FLAGS,
                secret,
                secret_len,
                Some(read_source),
                src.cast(),
                &mut enc,
            ),
            OK
        );
        assert!(!enc.is_null());
        enc
    }

    /// Encodes the test stream as `tests/c/stream.c` does: header, an explicit extent list
    /// (text -> lz4 DATA, zeros -> ZERO, random -> raw DATA), ZERO, DISCARD, BOOKMARK, RESIZE,
    /// one extent past the old end, END. Returns the stream.
    fn encode(src: &mut Source) -> Vec<u8> {
        let enc = new_encoder(src);
        let bound = blockdelta_encoder_bound(enc);
        assert!(
            (RECORD as usize..RECORD as usize + 1200).contains(&bound),
            "{bound}"
        );
        let mut frame = vec![0u8; bound];
        let mut stream = Vec::new();
        let mut n = 0;
        let mut emit = |r: blockdelta_result, frame: &[u8], n: usize| {
            assert_eq!(r, OK, "{}", thread_error());
            stream.extend_from_slice(&frame[..n]);
        };
        emit(
            blockdelta_encoder_header(enc, frame.as_mut_ptr(), bound, &mut n),
            &frame,
            n,
        );
        let extents = [
            Extent::new(0, 10000),
            Extent::new(16384, 8192),
            Extent::new(32768, 6000),
        ];
        assert_eq!(
            blockdelta_encoder_set_extents(enc, extents.as_ptr(), extents.len()),
            OK
        );
        loop {
            let r = blockdelta_encoder_next(enc, frame.as_mut_ptr(), bound, &mut n);
            if r == OK && n == 0 {
                break;
            }
            emit(r, &frame, n);
        }
        let frame_ptr = frame.as_mut_ptr();
        emit(
            blockdelta_encoder_zero(enc, 40960, 4096, frame_ptr, bound, &mut n),
            &frame,
            n,
        );
        emit(
            blockdelta_encoder_discard(enc, 49152, 4096, frame.as_mut_ptr(), bound, &mut n),
            &frame,
            n,
        );
        let label = b"miri";
        emit(
            blockdelta_encoder_bookmark(
                enc,
                7,
                BOOKMARK_TS,
                2,
                label.as_ptr(),
                label.len(),
                frame.as_mut_ptr(),
                bound,
                &mut n,
            ),
            &frame,
            n,
        );
        emit(
            blockdelta_encoder_resize(enc, GROWN as u64, frame.as_mut_ptr(), bound, &mut n),
            &frame,
            n,
        );
        let grown = [Extent::new(DISK as u64, 4096)];
        assert_eq!(blockdelta_encoder_set_extents(enc, grown.as_ptr(), 1), OK);
        loop {
            let r = blockdelta_encoder_next(enc, frame.as_mut_ptr(), bound, &mut n);
            if r == OK && n == 0 {
                break;
            }
            emit(r, &frame, n);
        }
        emit(
            blockdelta_encoder_finish(enc, frame.as_mut_ptr(), bound, &mut n),
            &frame,
            n,
        );
        // Nothing may follow END.
        assert_eq!(
            blockdelta_encoder_next(enc, frame.as_mut_ptr(), bound, &mut n),
            blockdelta_result::StreamInvalidState
        );
        blockdelta_encoder_free(enc);
        stream
    }

    /// The replica `encode`'s stream produces from an old replica of `0xEE` bytes.
    fn expected_replica(src: &[u8]) -> Vec<u8> {
        let mut e = vec![0xEE; DISK];
        e[..10000].copy_from_slice(&src[..10000]);
        e[16384..24576].fill(0);
        e[32768..38768].copy_from_slice(&src[32768..38768]);
        e[40960..45056].fill(0);
        e[49152..53248].fill(0);
        e.resize(GROWN, 0);
        e[DISK..DISK + 4096].copy_from_slice(&src[DISK..DISK + 4096]);
        e
    }

    fn new_applier(t: &mut Replica, discard: bool, resize: bool) -> *mut blockdelta_applier {
        let (secret, secret_len) = secret();
        let mut app = null_mut();
        assert_eq!(
            blockdelta_applier_new(
                secret,
                secret_len,
                Some(t_write),
                Some(t_zero),
                if discard { Some(t_discard) } else { None },
                if resize { Some(t_resize) } else { None },
                Some(t_sync),
                (t as *mut Replica).cast(),
                &mut app,
            ),
            OK
        );
        app
    }

    /// Pushes `stream` in pieces of `chunk` bytes (as from a socket), keeping the unconsumed
    /// tail, then finishes. Returns the first failure.
    fn push_all(app: *mut blockdelta_applier, stream: &[u8], chunk: usize) -> blockdelta_result {
        let (mut start, mut avail) = (0, 0);
        while start < stream.len() {
            avail = (avail + chunk).min(stream.len() - start);
            let mut consumed = usize::MAX;
            let r = blockdelta_applier_push(app, stream[start..].as_ptr(), avail, &mut consumed);
            if r != OK {
                assert_eq!(consumed, usize::MAX, "consumed_out written on failure");
                return r;
            }
            if consumed == 0 && start + avail == stream.len() {
                break; // an incomplete frame at the end
            }
            start += consumed;
            avail -= consumed;
        }
        blockdelta_applier_finish(app)
    }

    #[test]
    fn encode_decode_apply_through_the_c_abi() {
        let mut src = new_source();
        let stream = encode(&mut src);
        assert_eq!(src.reads, 8, "one read per extent record (6 DATA, 2 ZERO)");

        // Decode: record kinds, DATA bytes, the header's fields.
        let (secret, secret_len) = secret();
        let mut dec = null_mut();
        assert_eq!(blockdelta_decoder_new(secret, secret_len, &mut dec), OK);
        assert_eq!(
            blockdelta_decoder_expect(dec, DISK_ID.as_ptr(), GENERATION.as_ptr(), 41, true),
            OK
        );
        let mut id = [0u8; 16];
        assert_eq!(
            blockdelta_decoder_header(
                dec,
                id.as_mut_ptr(),
                null_mut(),
                null_mut(),
                null_mut(),
                null_mut()
            ),
            blockdelta_result::StreamInvalidState,
            "no header decoded yet"
        );
        assert_eq!(id, [0; 16], "nothing written on failure");
        let mut rec = blockdelta_record {
            kind: 99,
            aux: 0,
            offset: 0,
            len: 0,
            data: null(),
            data_len: 0,
        };
        let mut consumed = usize::MAX;
        // (NULL, 0) is empty input; a partial frame asks for more.
        assert_eq!(
            blockdelta_decoder_next(dec, null(), 0, &mut consumed, &mut rec),
            OK
        );
        assert_eq!((rec.kind, consumed), (BLOCKDELTA_RECORD_NEED_MORE, 0));
        assert_eq!(
            blockdelta_decoder_next(dec, stream.as_ptr(), 30, &mut consumed, &mut rec),
            OK
        );
        assert_eq!((rec.kind, consumed), (BLOCKDELTA_RECORD_NEED_MORE, 0));
        let mut counts = [0u32; 9];
        let mut kinds = Vec::new();
        let mut at = 0;
        loop {
            let r = blockdelta_decoder_next(
                dec,
                stream[at..].as_ptr(),
                stream.len() - at,
                &mut consumed,
                &mut rec,
            );
            assert_eq!(r, OK, "{}", thread_error());
            assert!(consumed > 0);
            counts[rec.kind as usize] += 1;
            kinds.push(rec.kind);
            match rec.kind {
                BLOCKDELTA_RECORD_DATA => {
                    // SAFETY: `data` is valid for `data_len` bytes until the next call.
                    let data = unsafe { std::slice::from_raw_parts(rec.data, rec.data_len) };
                    let at = rec.offset as usize;
                    assert_eq!(data, &src.disk[at..at + data.len()], "DATA at {at}");
                    assert_eq!(rec.len, rec.data_len as u64);
                    // Text compresses; the random bytes are kept raw.
                    let lz4 = !(32768..49152).contains(&at);
                    assert_eq!(rec.aux, u32::from(lz4), "codec of DATA at {at}");
                }
                BLOCKDELTA_RECORD_ZERO => {
                    assert!([16384, 20480, 40960].contains(&rec.offset));
                    assert_eq!((rec.len, rec.data), (4096, null()));
                }
                BLOCKDELTA_RECORD_DISCARD => assert_eq!((rec.offset, rec.len), (49152, 4096)),
                BLOCKDELTA_RECORD_RESIZE => assert_eq!(rec.len, GROWN as u64),
                BLOCKDELTA_RECORD_BOOKMARK => {
                    // SAFETY: the label is valid for `data_len` bytes until the next call.
                    let label = unsafe { std::slice::from_raw_parts(rec.data, rec.data_len) };
                    assert_eq!((rec.offset, rec.len, rec.aux), (7, BOOKMARK_TS, 2));
                    assert_eq!(label, b"miri");
                }
                BLOCKDELTA_RECORD_END => {
                    // Records before END, and every byte before the END frame.
                    assert_eq!(rec.offset, 12);
                    assert_eq!(rec.len, at as u64);
                }
                _ => {}
            }
            at += consumed;
            if rec.kind == BLOCKDELTA_RECORD_END {
                break;
            }
        }
        assert_eq!(at, stream.len());
        use self::{
            BLOCKDELTA_RECORD_BOOKMARK as B, BLOCKDELTA_RECORD_DATA as D,
            BLOCKDELTA_RECORD_DISCARD as X, BLOCKDELTA_RECORD_END as E,
            BLOCKDELTA_RECORD_HEADER as H, BLOCKDELTA_RECORD_RESIZE as R,
            BLOCKDELTA_RECORD_ZERO as Z,
        };
        assert_eq!(kinds, [H, D, D, D, Z, Z, D, D, Z, X, B, R, D, E]);
        let (mut from, mut to, mut size) = (0, 0, 0);
        let mut gen = [0u8; 16];
        assert_eq!(
            blockdelta_decoder_header(
                dec,
                id.as_mut_ptr(),
                gen.as_mut_ptr(),
                &mut from,
                &mut to,
                &mut size
            ),
            OK
        );
        assert_eq!(
            (id, gen, from, to, size),
            (DISK_ID, GENERATION, 41, 42, DISK as u64)
        );
        // All outputs are optional.
        assert_eq!(
            blockdelta_decoder_header(
                dec,
                null_mut(),
                null_mut(),
                null_mut(),
                null_mut(),
                null_mut()
            ),
            OK
        );
        assert_eq!(blockdelta_decoder_finish(dec), OK);
        blockdelta_decoder_free(dec);

        // Apply through every target callback, in socket-sized pieces.
        let mut t = Replica::new(DISK);
        let app = new_applier(&mut t, true, true);
        assert_eq!(
            blockdelta_applier_expect(app, DISK_ID.as_ptr(), GENERATION.as_ptr(), 41, true),
            OK
        );
        assert_eq!(push_all(app, &stream, 3000), OK, "{}", applier_error(app));
        blockdelta_applier_free(app);
        assert!(t.disk == expected_replica(&src.disk), "replica differs");
        assert_eq!(
            (t.writes, t.zeroes, t.discards, t.resizes, t.syncs),
            (6, 3, 1, 1, 2),
            "syncs at BOOKMARK and END"
        );

        // Without discard and resize callbacks: DISCARD falls back to write_zeroes, and
        // RESIZE cannot be applied.
        let mut t = Replica::new(DISK);
        let app = new_applier(&mut t, false, false);
        assert_eq!(
            push_all(app, &stream, usize::MAX),
            blockdelta_result::StreamResizeUnsupported
        );
        assert!(
            applier_error(app).contains("cannot be resized"),
            "{}",
            applier_error(app)
        );
        blockdelta_applier_free(app);
        assert_eq!((t.zeroes, t.discards, t.resizes, t.syncs), (4, 0, 0, 1));
        assert!(t.disk[..DISK] == expected_replica(&src.disk)[..DISK]);
    }

    fn new_source() -> Source {
        Source {
            disk: source_disk(),
            fail_next: 0,
            reads: 0,
        }
    }

    #[test]
    fn a_flipped_bit_or_a_wrong_key_is_refused_before_the_target_sees_the_frame() {
        let mut src = new_source();
        let mut stream = encode(&mut src);
        // The first frame after the header is a DATA frame; the header frame's length is what
        // the decoder consumes first.
        let mut dec = null_mut();
        let (secret, secret_len) = secret();
        assert_eq!(blockdelta_decoder_new(secret, secret_len, &mut dec), OK);
        let mut rec = blockdelta_record {
            kind: 0,
            aux: 0,
            offset: 0,
            len: 0,
            data: null(),
            data_len: 0,
        };
        let mut header_len = 0;
        assert_eq!(
            blockdelta_decoder_next(
                dec,
                stream.as_ptr(),
                stream.len(),
                &mut header_len,
                &mut rec
            ),
            OK
        );
        assert_eq!(rec.kind, BLOCKDELTA_RECORD_HEADER);
        blockdelta_decoder_free(dec);

        // A flipped bit inside the first DATA frame: refused, nothing written.
        stream[header_len + 40] ^= 0x08;
        let mut t = Replica::new(DISK);
        let app = new_applier(&mut t, true, true);
        assert_eq!(
            push_all(app, &stream, usize::MAX),
            blockdelta_result::StreamChecksumMismatch
        );
        assert!(
            applier_error(app).contains("checksum"),
            "{}",
            applier_error(app)
        );
        assert_eq!((t.writes, t.zeroes, t.syncs), (0, 0, 0));
        assert!(t.disk.iter().all(|&b| b == 0xEE));
        // After an error the applier refuses further input.
        let mut consumed = usize::MAX;
        assert_eq!(
            blockdelta_applier_push(app, stream.as_ptr(), stream.len(), &mut consumed),
            blockdelta_result::StreamPoisoned
        );
        assert_eq!(consumed, usize::MAX, "consumed_out written on failure");
        blockdelta_applier_free(app);
        stream[header_len + 40] ^= 0x08;

        // A flipped bit in END: everything before it is applied, END is not synced.
        let last = stream.len() - 1;
        stream[last] ^= 0x01;
        let mut t = Replica::new(DISK);
        let app = new_applier(&mut t, true, true);
        assert_eq!(
            push_all(app, &stream, 5000),
            blockdelta_result::StreamChecksumMismatch
        );
        blockdelta_applier_free(app);
        assert_eq!((t.writes, t.syncs), (6, 1), "only the BOOKMARK was synced");
        stream[last] ^= 0x01;

        // The decoder refuses the same way and hands out no record.
        stream[header_len + 40] ^= 0x08;
        let mut dec = null_mut();
        assert_eq!(blockdelta_decoder_new(secret, secret_len, &mut dec), OK);
        let mut consumed = 0;
        assert_eq!(
            blockdelta_decoder_next(dec, stream.as_ptr(), stream.len(), &mut consumed, &mut rec),
            OK
        );
        rec.kind = 99;
        consumed = usize::MAX;
        assert_eq!(
            blockdelta_decoder_next(
                dec,
                stream[header_len..].as_ptr(),
                stream.len() - header_len,
                &mut consumed,
                &mut rec
            ),
            blockdelta_result::StreamChecksumMismatch
        );
        assert_eq!(
            (rec.kind, consumed),
            (99, usize::MAX),
            "outputs written on failure"
        );
        blockdelta_decoder_free(dec);
        stream[header_len + 40] ^= 0x08;

        // A truncated stream: END never came.
        let mut t = Replica::new(DISK);
        let app = new_applier(&mut t, true, true);
        assert_eq!(
            push_all(app, &stream[..stream.len() - 10], 4096),
            blockdelta_result::StreamTruncated
        );
        blockdelta_applier_free(app);

        // A wrong key: refused at the first record, before any write. (Natively only: under
        // miri the stream is not encrypted, see `secret`.)
        if !cfg!(miri) {
            let wrong = b"wrong secret";
            let mut t = Replica::new(DISK);
            let mut app = null_mut();
            assert_eq!(
                blockdelta_applier_new(
                    wrong.as_ptr(),
                    wrong.len(),
                    Some(t_write),
                    Some(t_zero),
                    None,
                    None,
                    None,
                    (&mut t as *mut Replica).cast(),
                    &mut app,
                ),
                OK
            );
            assert_eq!(
                push_all(app, &stream, 4096),
                blockdelta_result::StreamAuthenticationFailed
            );
            blockdelta_applier_free(app);
            assert_eq!(t.writes, 0);
        }
    }

    /// A `blockdelta_record` the tests can check was not written.
    fn sentinel_record() -> blockdelta_record {
        blockdelta_record {
            kind: 99,
            aux: 99,
            offset: 99,
            len: 99,
            data: null(),
            data_len: 99,
        }
    }

    /// Checks a handle's `_last_error` copy rules against the full message `full`.
    fn check_copies(
        copy: impl Fn(*mut c_char, usize, *mut usize) -> blockdelta_result,
        full: &str,
    ) {
        assert!(full.len() > 16, "{full}");
        // Truncated to cap - 1 bytes plus the NUL; len_out has the full length.
        let mut small = [0x55 as c_char; 16];
        let mut len = 0;
        assert_eq!(copy(small.as_mut_ptr(), small.len(), &mut len), OK);
        assert_eq!(len, full.len());
        assert_eq!(small[15], 0);
        assert_eq!(message(&small), &full[..15]);
        // (NULL, 0) only reports the length; len_out may be NULL.
        len = 0;
        assert_eq!(copy(null_mut(), 0, &mut len), OK);
        assert_eq!(len, full.len());
        let mut big = [0x55 as c_char; 512];
        assert_eq!(copy(big.as_mut_ptr(), big.len(), null_mut()), OK);
        assert_eq!(message(&big), full);
        // NULL with a capacity is refused and reports nothing.
        len = 7;
        assert_eq!(copy(null_mut(), 16, &mut len), NULL);
        assert_eq!(len, 7);
        // A one-byte buffer holds just the NUL.
        let mut one = [0x55 as c_char; 1];
        assert_eq!(copy(one.as_mut_ptr(), 1, null_mut()), OK);
        assert_eq!(one[0], 0);
    }

    #[test]
    fn encoder_arguments_buffers_and_errors() {
        let mut src = new_source();
        let ctx = (&mut src as *mut Source).cast::<c_void>();
        let new = |id: *const u8,
                   block: u32,
                   flags: u32,
                   secret: (*const u8, usize),
                   read: blockdelta_read_fn,
                   out: *mut *mut blockdelta_encoder| {
            blockdelta_encoder_new(
                id,
                GENERATION.as_ptr(),
                41,
                42,
                DISK as u64,
                block,
                RECORD,
                flags,
                secret.0,
                secret.1,
                read,
                ctx,
                out,
            )
        };
        let id = DISK_ID.as_ptr();
        let none = (null(), 0);
        let read: blockdelta_read_fn = Some(read_source);
        let mut enc = null_mut();
        assert_eq!(new(id, 4096, FLAGS, none, read, null_mut()), NULL);
        assert_eq!(new(null(), 4096, FLAGS, none, read, &mut enc), NULL);
        assert_eq!(new(id, 4096, FLAGS, none, None, &mut enc), NULL);
        assert_eq!(new(id, 4096, FLAGS, (null(), 5), read, &mut enc), NULL);
        assert_eq!(thread_error(), "a required pointer argument was NULL");
        assert_eq!(
            new(id, 4096, 4, none, read, &mut enc),
            blockdelta_result::InvalidArgument
        );
        assert_eq!(thread_error(), "invalid argument: unknown encoder flags");
        assert_eq!(
            new(id, 1000, FLAGS, none, read, &mut enc),
            blockdelta_result::InvalidArgument
        );
        assert!(thread_error().contains("block size"), "{}", thread_error());
        assert!(enc.is_null(), "encoder_out written on failure");
        assert_eq!(blockdelta_encoder_bound(null()), 0);
        blockdelta_encoder_free(null_mut());

        let enc = new_encoder(ctx.cast());
        let bound = blockdelta_encoder_bound(enc);
        let mut frame = vec![0xA5u8; bound];
        let untouched = frame.clone();
        let mut n = usize::MAX;
        // Too small a buffer: refused, nothing written; (NULL, 0) is an empty buffer.
        assert_eq!(
            blockdelta_encoder_header(enc, frame.as_mut_ptr(), 10, &mut n),
            blockdelta_result::BufferTooSmall
        );
        assert_eq!(
            blockdelta_encoder_header(enc, null_mut(), 0, &mut n),
            blockdelta_result::BufferTooSmall
        );
        assert!(frame == untouched && n == usize::MAX, "written on failure");
        let too_small = {
            let mut buf = [0 as c_char; 512];
            let mut len = 0;
            assert_eq!(
                blockdelta_encoder_last_error(enc, buf.as_mut_ptr(), buf.len(), &mut len),
                OK
            );
            message(&buf).to_owned()
        };
        assert!(
            too_small.starts_with("output buffer of 0 bytes is too small"),
            "{too_small}"
        );
        check_copies(
            |b, c, l| blockdelta_encoder_last_error(enc, b, c, l),
            &too_small,
        );
        let mut buf = [0 as c_char; 8];
        assert_eq!(
            blockdelta_encoder_last_error(null(), buf.as_mut_ptr(), 8, null_mut()),
            NULL
        );
        // NULL buffer with a capacity, NULL written_out, NULL handle.
        let frame_ptr = frame.as_mut_ptr();
        assert_eq!(
            blockdelta_encoder_header(enc, null_mut(), bound, &mut n),
            NULL
        );
        assert_eq!(
            blockdelta_encoder_header(enc, frame_ptr, bound, null_mut()),
            NULL
        );
        assert_eq!(
            blockdelta_encoder_header(null_mut(), frame_ptr, bound, &mut n),
            NULL
        );
        assert_eq!(n, usize::MAX);
        assert_eq!(blockdelta_encoder_header(enc, frame_ptr, bound, &mut n), OK);
        assert!(n > 0 && n < bound);
        assert_eq!(
            blockdelta_encoder_header(enc, frame_ptr, bound, &mut n),
            blockdelta_result::StreamInvalidState
        );

        // Extent lists: (NULL, 0) is empty; bad lists are refused.
        assert_eq!(blockdelta_encoder_set_extents(enc, null(), 0), OK);
        assert_eq!(blockdelta_encoder_next(enc, frame_ptr, bound, &mut n), OK);
        assert_eq!(n, 0, "an empty list is exhausted at once");
        assert_eq!(blockdelta_encoder_set_extents(enc, null(), 2), NULL);
        let one = [Extent::new(0, 8192)];
        assert_eq!(
            blockdelta_encoder_set_extents(null_mut(), one.as_ptr(), 1),
            NULL
        );
        let unsorted = [Extent::new(8192, 1), Extent::new(0, 1)];
        assert_eq!(
            blockdelta_encoder_set_extents(enc, unsorted.as_ptr(), 2),
            blockdelta_result::StreamExtentOverlap
        );
        let past_end = [Extent::new(DISK as u64 - 4096, 8192)];
        assert_eq!(
            blockdelta_encoder_set_extents(enc, past_end.as_ptr(), 1),
            blockdelta_result::StreamExtentOutOfRange
        );
        assert_eq!(blockdelta_encoder_set_extents(enc, one.as_ptr(), 1), OK);

        // A DATA frame that does not fit is refused before the source is read.
        n = usize::MAX;
        frame.fill(0xA5);
        assert_eq!(
            blockdelta_encoder_next(enc, frame_ptr, 64, &mut n),
            blockdelta_result::BufferTooSmall
        );
        assert!(frame == untouched && n == usize::MAX && src_reads(ctx) == 0);
        // A failing read callback: its errno in the message; nothing consumed, so a retry works.
        set_read_failure(ctx, 5);
        assert_eq!(
            blockdelta_encoder_next(enc, frame_ptr, bound, &mut n),
            blockdelta_result::StreamSourceIo
        );
        assert_eq!(n, usize::MAX);
        let msg = thread_error();
        assert!(
            msg.starts_with("block source read 0+4096 failed") && msg.contains("os error 5"),
            "{msg}"
        );
        set_read_failure(ctx, -1);
        assert_eq!(
            blockdelta_encoder_next(enc, frame_ptr, bound, &mut n),
            blockdelta_result::StreamSourceIo
        );
        assert_eq!(blockdelta_encoder_next(enc, frame_ptr, bound, &mut n), OK);
        assert!(n > 0 && src_reads(ctx) == 1);
        assert_eq!(blockdelta_encoder_next(enc, frame_ptr, bound, &mut n), OK);
        assert_eq!(blockdelta_encoder_next(enc, frame_ptr, bound, &mut n), OK);
        assert_eq!(n, 0);

        // ZERO/DISCARD/RESIZE/BOOKMARK argument checks.
        assert_eq!(
            blockdelta_encoder_zero(enc, 16384, 0, frame_ptr, bound, &mut n),
            blockdelta_result::InvalidArgument
        );
        assert_eq!(
            blockdelta_encoder_discard(enc, 0, 4096, frame_ptr, bound, &mut n),
            blockdelta_result::StreamExtentOverlap,
            "before what was already encoded"
        );
        assert_eq!(
            blockdelta_encoder_resize(enc, 1 << 20, frame_ptr, 8, &mut n),
            blockdelta_result::BufferTooSmall
        );
        let bookmark = |kind: u32, label: *const u8, len: usize, n: &mut usize| {
            blockdelta_encoder_bookmark(enc, 1, 2, kind, label, len, frame_ptr, bound, n)
        };
        assert_eq!(
            bookmark(3, null(), 0, &mut n),
            blockdelta_result::InvalidArgument
        );
        assert!(thread_error().contains("bookmark kind"));
        let not_utf8 = [0xFFu8, 0xFE];
        assert_eq!(
            bookmark(1, not_utf8.as_ptr(), 2, &mut n),
            blockdelta_result::InvalidArgument
        );
        assert_eq!(bookmark(1, null(), 4, &mut n), NULL);
        assert_eq!(thread_error(), "a required pointer argument was NULL");
        let long = vec![b'x'; 1025];
        assert_eq!(
            bookmark(1, long.as_ptr(), long.len(), &mut n),
            blockdelta_result::StreamOversizedLength
        );
        assert_eq!(n, 0, "still the last successful call's value");
        assert_eq!(
            bookmark(1, null(), 0, &mut n),
            OK,
            "(NULL, 0) is an empty label"
        );
        assert!(n > 0);
        assert_eq!(blockdelta_encoder_finish(enc, frame_ptr, bound, &mut n), OK);
        assert_eq!(
            blockdelta_encoder_finish(enc, frame_ptr, bound, &mut n),
            blockdelta_result::StreamInvalidState
        );
        blockdelta_encoder_free(enc);
    }

    fn src_reads(ctx: *mut c_void) -> u32 {
        // SAFETY: `ctx` is the test's live `Source`, not borrowed elsewhere during the call.
        unsafe { (*ctx.cast::<Source>()).reads }
    }

    fn set_read_failure(ctx: *mut c_void, rc: c_int) {
        // SAFETY: as in `src_reads`.
        unsafe { (*ctx.cast::<Source>()).fail_next = rc };
    }

    /// The header frame of an unencrypted stream.
    fn plain_header_frame(src: &mut Source) -> Vec<u8> {
        let mut enc = null_mut();
        assert_eq!(
            blockdelta_encoder_new(
                DISK_ID.as_ptr(),
                GENERATION.as_ptr(),
                41,
                42,
                DISK as u64,
                4096,
                RECORD,
                0,
                null(),
                0,
                Some(read_source),
                (src as *mut Source).cast(),
                &mut enc,
            ),
            OK
        );
        let mut frame = vec![0u8; blockdelta_encoder_bound(enc)];
        let mut n = 0;
        assert_eq!(
            blockdelta_encoder_header(enc, frame.as_mut_ptr(), frame.len(), &mut n),
            OK
        );
        blockdelta_encoder_free(enc);
        frame.truncate(n);
        frame
    }

    #[test]
    fn decoder_arguments_and_errors() {
        let mut src = new_source();
        let header = plain_header_frame(&mut src);
        let mut dec = null_mut();
        assert_eq!(blockdelta_decoder_new(null(), 0, null_mut()), NULL);
        assert_eq!(blockdelta_decoder_new(null(), 5, &mut dec), NULL);
        assert!(dec.is_null());
        blockdelta_decoder_free(null_mut());

        // With a secret, an unencrypted stream is refused (a possible downgrade). Dropping
        // this decoder wipes its copy of the secret.
        assert_eq!(
            blockdelta_decoder_new(SECRET.as_ptr(), SECRET.len(), &mut dec),
            OK
        );
        let mut rec = sentinel_record();
        let mut consumed = usize::MAX;
        assert_eq!(
            blockdelta_decoder_next(dec, header.as_ptr(), header.len(), &mut consumed, &mut rec),
            blockdelta_result::StreamEncryptionRequired
        );
        assert_eq!((rec.kind, consumed), (99, usize::MAX));
        let mut buf = [0 as c_char; 512];
        assert_eq!(
            blockdelta_decoder_last_error(dec, buf.as_mut_ptr(), buf.len(), null_mut()),
            OK
        );
        let full = message(&buf).to_owned();
        assert_eq!(full, StreamError::EncryptionRequired.to_string());
        check_copies(|b, c, l| blockdelta_decoder_last_error(dec, b, c, l), &full);
        blockdelta_decoder_free(dec);
        assert_eq!(
            blockdelta_decoder_last_error(null(), buf.as_mut_ptr(), buf.len(), null_mut()),
            NULL
        );

        // NULL handle, outputs and input with a length.
        assert_eq!(blockdelta_decoder_new(null(), 0, &mut dec), OK);
        let input = header.as_ptr();
        let len = header.len();
        assert_eq!(
            blockdelta_decoder_next(null_mut(), input, len, &mut consumed, &mut rec),
            NULL
        );
        assert_eq!(
            blockdelta_decoder_next(dec, input, len, null_mut(), &mut rec),
            NULL
        );
        assert_eq!(
            blockdelta_decoder_next(dec, input, len, &mut consumed, null_mut()),
            NULL
        );
        assert_eq!(
            blockdelta_decoder_next(dec, null(), len, &mut consumed, &mut rec),
            NULL
        );
        assert_eq!((rec.kind, consumed), (99, usize::MAX));
        assert_eq!(
            blockdelta_decoder_expect(null_mut(), null(), null(), 0, false),
            NULL
        );
        assert_eq!(blockdelta_decoder_finish(null()), NULL);
        let mut from = 0;
        assert_eq!(
            blockdelta_decoder_header(
                null(),
                null_mut(),
                null_mut(),
                &mut from,
                null_mut(),
                null_mut()
            ),
            NULL
        );
        // The replica is at checkpoint 40, the stream starts at 41: refused.
        assert_eq!(blockdelta_decoder_expect(dec, null(), null(), 40, true), OK);
        assert_eq!(
            blockdelta_decoder_next(dec, input, len, &mut consumed, &mut rec),
            blockdelta_result::StreamWrongSequence
        );
        assert_eq!(
            blockdelta_decoder_finish(dec),
            blockdelta_result::StreamPoisoned
        );
        blockdelta_decoder_free(dec);

        // Ids not checked (NULL) and no sequence check: the header passes; END never came.
        assert_eq!(blockdelta_decoder_new(null(), 0, &mut dec), OK);
        assert_eq!(blockdelta_decoder_expect(dec, null(), null(), 0, false), OK);
        assert_eq!(
            blockdelta_decoder_next(dec, input, len, &mut consumed, &mut rec),
            OK
        );
        assert_eq!((rec.kind, consumed), (BLOCKDELTA_RECORD_HEADER, len));
        assert_eq!(
            blockdelta_decoder_expect(dec, null(), null(), 0, false),
            blockdelta_result::StreamInvalidState,
            "too late once the header is decoded"
        );
        assert_eq!(
            blockdelta_decoder_finish(dec),
            blockdelta_result::StreamTruncated
        );
        blockdelta_decoder_free(dec);
    }

    #[test]
    fn applier_arguments_and_failing_callbacks() {
        let mut t = Replica::new(DISK);
        let ctx = (&mut t as *mut Replica).cast::<c_void>();
        let mut app = null_mut();
        let new = |secret: *const u8,
                   len: usize,
                   write: blockdelta_write_fn,
                   zero: blockdelta_range_fn,
                   out: *mut *mut blockdelta_applier| {
            blockdelta_applier_new(secret, len, write, zero, None, None, None, ctx, out)
        };
        let (w, z): (blockdelta_write_fn, blockdelta_range_fn) = (Some(t_write), Some(t_zero));
        assert_eq!(new(null(), 0, w, z, null_mut()), NULL);
        assert_eq!(new(null(), 0, None, z, &mut app), NULL);
        assert_eq!(new(null(), 0, w, None, &mut app), NULL);
        assert_eq!(new(null(), 3, w, z, &mut app), NULL);
        assert!(app.is_null());
        blockdelta_applier_free(null_mut());
        let mut consumed = usize::MAX;
        let mut buf = [0 as c_char; 64];
        assert_eq!(
            blockdelta_applier_push(null_mut(), null(), 0, &mut consumed),
            NULL
        );
        assert_eq!(blockdelta_applier_finish(null()), NULL);
        assert_eq!(
            blockdelta_applier_expect(null_mut(), null(), null(), 0, false),
            NULL
        );
        assert_eq!(
            blockdelta_applier_last_error(null(), buf.as_mut_ptr(), 64, null_mut()),
            NULL
        );

        // The stream is for another disk.
        assert_eq!(new(null(), 0, w, z, &mut app), OK);
        let other = *b"another-disk-id!";
        assert_eq!(
            blockdelta_applier_expect(app, other.as_ptr(), null(), 0, false),
            OK
        );
        let mut src = new_source();
        let header = plain_header_frame(&mut src);
        assert_eq!(blockdelta_applier_push(app, null(), 0, &mut consumed), OK);
        assert_eq!(consumed, 0, "(NULL, 0) is empty input");
        assert_eq!(
            blockdelta_applier_push(app, header.as_ptr(), header.len(), null_mut()),
            NULL
        );
        assert_eq!(
            blockdelta_applier_push(app, null(), header.len(), &mut consumed),
            NULL
        );
        consumed = usize::MAX;
        assert_eq!(
            blockdelta_applier_push(app, header.as_ptr(), header.len(), &mut consumed),
            blockdelta_result::StreamWrongDisk
        );
        assert_eq!(consumed, usize::MAX);
        let full = applier_error(app);
        assert!(full.len() > 16, "{full}");
        check_copies(|b, c, l| blockdelta_applier_last_error(app, b, c, l), &full);
        blockdelta_applier_free(app);

        // A failing target callback: the callback's errno reaches the handle's last error,
        // and the applier refuses further input.
        let stream = encode(&mut src);
        for (op, rc, needle) in [
            ("write", 5, "target write at 0 failed"),
            ("discard", -1, "target discard at 49152 failed"),
            ("sync", 28, "target sync at 0 failed"),
        ] {
            let mut t = Replica::new(DISK);
            t.fail = Some((op, rc));
            let app = new_applier(&mut t, true, true);
            assert_eq!(
                push_all(app, &stream, usize::MAX),
                blockdelta_result::StreamTargetIo
            );
            let msg = applier_error(app);
            assert!(msg.starts_with(needle), "{msg}");
            if rc > 0 {
                assert!(msg.contains(&format!("os error {rc}")), "{msg}");
            }
            assert_eq!(
                blockdelta_applier_push(app, stream.as_ptr(), stream.len(), &mut consumed),
                blockdelta_result::StreamPoisoned
            );
            assert_eq!(
                blockdelta_applier_finish(app),
                blockdelta_result::StreamPoisoned
            );
            blockdelta_applier_free(app);
        }
    }
}
