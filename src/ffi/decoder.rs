//! C ABI of the stream decoder: `blockdelta_decoder` and the `blockdelta_record` it hands out.
//!
//! The decoder verifies frames and describes each record; it calls no callback. A
//! single-threaded object: one thread at a time may call a given handle. Nothing here blocks.

use super::callbacks::{id16, secret_arg};
use super::error::{copy_handle_message, LastError};
use super::handle::{arg_ref, arg_slice, free_handle, into_handle, out_slice, Out};
use super::panic::{boundary, boundary_value};
use super::result::blockdelta_result;
use crate::stream::{
    BookmarkKind, Codec, Decoded, Decoder, DecoderConfig, Expected, Record, StreamError,
    StreamHeader,
};
use crate::tracker::GenerationId;

#[cfg(test)]
#[path = "tests/decoder.rs"]
mod tests;

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

/// A stream decoder (opaque). Create with `blockdelta_decoder_new`, free with `blockdelta_decoder_free`.
pub struct blockdelta_decoder {
    inner: Decoder,
    last_error: LastError,
}

/// # Safety
/// Pointer arguments as documented on `blockdelta_decoder_expect`.
pub(crate) unsafe fn expected_arg(
    disk_id: *const u8,
    generation: *const u8,
    replica_seq: u64,
    check_replica_seq: bool,
) -> Result<Expected, blockdelta_result> {
    // SAFETY: forwarded contract.
    let (disk_id, generation) = unsafe { (id16(disk_id)?, id16(generation)?) };
    Ok(Expected {
        disk_id,
        generation: generation.map(GenerationId),
        replica_seq: check_replica_seq.then_some(replica_seq),
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
/// (16 bytes each, copied; NULL = not checked) and, when `check_replica_seq`, `replica_seq`: the
/// checkpoint the replica is at. A stream is accepted iff
/// `from_seq <= replica_seq < to_seq`: `to_seq <= replica_seq` gives
/// `BLOCKDELTA_RESULT_STREAM_ALREADY_APPLIED` (a stream that was applied can never be applied
/// again), `from_seq > replica_seq` gives `BLOCKDELTA_RESULT_STREAM_WRONG_SEQUENCE` (a gap).
/// `check_replica_seq` false checks no sequence (`replica_seq` is ignored). Never blocks.
#[no_mangle]
pub extern "C" fn blockdelta_decoder_expect(
    decoder: *mut blockdelta_decoder,
    disk_id: *const u8,
    generation: *const u8,
    replica_seq: u64,
    check_replica_seq: bool,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle used by this thread only, or NULL.
        let d = unsafe { decoder.as_mut() }.ok_or(blockdelta_result::NullParameter)?;
        // SAFETY: ids are NULL or 16 readable bytes.
        let e = unsafe { expected_arg(disk_id, generation, replica_seq, check_replica_seq)? };
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
            write_header(
                h,
                disk_id_out,
                generation_out,
                from_seq_out,
                to_seq_out,
                disk_size_out,
            )
        }
    })
}

/// Writes a header's fields to the outputs that are not NULL.
///
/// # Safety
/// Each pointer is NULL or writable (16 bytes for the ids).
pub(crate) unsafe fn write_header(
    h: &StreamHeader,
    disk_id_out: *mut u8,
    generation_out: *mut u8,
    from_seq_out: *mut u64,
    to_seq_out: *mut u64,
    disk_size_out: *mut u64,
) -> Result<(), blockdelta_result> {
    // SAFETY: per the function's contract.
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
