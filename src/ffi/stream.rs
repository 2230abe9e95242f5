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

use super::error::{copy_handle_message, record_thread_error, LastError};
use super::handle::{arg_ref, arg_slice, free_handle, into_handle, out_slice, Out};
use super::panic::{boundary, boundary_value};
use super::result::{blockdelta_result, ToResult};
use crate::stream::{
    Applier, ApplyTarget, BlockSource, Bookmark, BookmarkKind, Codec, Decoded, Decoder,
    DecoderConfig, EncodeCursor, Encoder, EncoderConfig, Expected, Record, Secret, StreamError,
};
use crate::tracker::{Extent, GenerationId};

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
        let rc = unsafe { (self.read)(self.ctx, offset, buf.as_mut_ptr(), buf.len()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(callback_error(rc))
        }
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

fn fail_thread(e: StreamError) -> blockdelta_result {
    let code = e.to_result();
    record_thread_error(code, &e);
    code
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
    // SAFETY: `encoder` is NULL or a live handle.
    boundary_value(0, || {
        unsafe { arg_ref(encoder) }
            .map(|e| e.inner.max_frame_len())
            .unwrap_or(0)
    })
}

/// Runs `f` on a live encoder, mapping its error onto the handle's last error.
///
/// # Safety
/// `encoder` is NULL or a live handle used by this thread only.
unsafe fn with_encoder(
    encoder: *mut blockdelta_encoder,
    dst: *mut u8,
    dst_cap: usize,
    written_out: *mut usize,
    f: impl FnOnce(&mut blockdelta_encoder, &mut [u8]) -> Result<usize, StreamError>,
) -> blockdelta_result {
    boundary(|| {
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
    })
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
/// `(NULL, 0)` is an empty list. Replaces any list not yet fully encoded. Allocates; never blocks.
#[no_mangle]
pub extern "C" fn blockdelta_encoder_set_extents(
    encoder: *mut blockdelta_encoder,
    extents: *const Extent,
    count: usize,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: per the contract, a non-NULL handle is live and not shared during the call.
        let enc = unsafe { encoder.as_mut() }.ok_or(blockdelta_result::NullParameter)?;
        // SAFETY: `(extents, count)` is readable or `(NULL, 0)`.
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
    // SAFETY: `(label, label_len)` is readable or `(NULL, 0)` per the contract.
    let label = match unsafe { arg_slice(label, label_len) } {
        Ok(l) => l,
        Err(code) => return code,
    };
    // SAFETY: forwarded contract.
    unsafe {
        with_encoder(encoder, dst, dst_cap, written_out, |e, d| {
            let kind =
                u8::try_from(kind)
                    .ok()
                    .and_then(bookmark_kind)
                    .ok_or(StreamError::InvalidArgument {
                    reason:
                        "bookmark kind must be 1 (crash-consistent) or 2 (application-consistent)",
                })?;
            let label = std::str::from_utf8(label).map_err(|_| StreamError::InvalidArgument {
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
/// Allocates about 2 MiB of scratch now; never blocks; any thread.
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
