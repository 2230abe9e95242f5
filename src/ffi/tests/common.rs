//! Shared fixtures of the C ABI unit tests: an in-memory source disk and replica behind
//! `extern "C"` callbacks, and helpers that drive the entry points the way a C program does
//! (raw pointers, context pointers, caller-owned frame buffers), so that
//! `cargo +nightly miri test --lib ffi::` executes every `unsafe` block of the stream C layer.
//! Sizes are small: miri is slow.
#![allow(dead_code)]

pub(crate) use crate::ffi::applier::*;
pub(crate) use crate::ffi::callbacks::*;
pub(crate) use crate::ffi::decoder::*;
pub(crate) use crate::ffi::encoder::*;
pub(crate) use crate::ffi::error::blockdelta_last_error;
pub(crate) use crate::ffi::result::blockdelta_result;
pub(crate) use crate::stream::StreamError;
pub(crate) use crate::tracker::Extent;
pub(crate) use std::ffi::{c_char, c_int, c_void, CStr};
pub(crate) use std::ptr::{null, null_mut};

/// A `blockdelta_extent` as C lays it out, whose `kind` may be any `uint32_t`: an unknown one
/// must be refused before Rust views the array as `Extent`s (an invalid enum value would be
/// undefined behaviour). Pass `array.as_ptr().cast::<Extent>()`.
#[repr(C)]
pub(crate) struct RawExtent {
    pub(crate) offset: u64,
    pub(crate) len: u64,
    pub(crate) kind: u32,
    pub(crate) reserved: u32,
}

const _: () = assert!(std::mem::size_of::<RawExtent>() == std::mem::size_of::<Extent>());

pub(crate) const DISK: usize = 64 * 1024;
/// The size after the stream's RESIZE record; the source holds this much.
pub(crate) const GROWN: usize = DISK + 8 * 1024;
pub(crate) const RECORD: u32 = 4096;
pub(crate) const DISK_ID: [u8; 16] = *b"miri-stream-0001";
pub(crate) const GENERATION: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
pub(crate) const SECRET: &[u8] = b"miri test secret, 16+ bytes";
pub(crate) const FLAGS: u32 = BLOCKDELTA_ENCODE_LZ4 | BLOCKDELTA_ENCODE_ZERO_DETECTION;
pub(crate) const BOOKMARK_TS: u64 = 1_700_000_000_000_000_000;
pub(crate) const OK: blockdelta_result = blockdelta_result::Ok;
pub(crate) const NULL: blockdelta_result = blockdelta_result::NullParameter;

/// Text (compresses), zeros, pseudo-random bytes (kept raw), text.
pub(crate) fn source_disk() -> Vec<u8> {
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
pub(crate) struct Source {
    pub(crate) disk: Vec<u8>,
    /// Non-zero: the next read fails with this code (and clears it).
    pub(crate) fail_next: c_int,
    pub(crate) reads: u32,
}

pub(crate) fn range(size: usize, offset: u64, len: u64) -> Option<std::ops::Range<usize>> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    (end <= size).then_some(start..end)
}

pub(crate) unsafe extern "C" fn read_source(
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
pub(crate) struct Replica {
    pub(crate) disk: Vec<u8>,
    pub(crate) writes: u32,
    pub(crate) zeroes: u32,
    pub(crate) discards: u32,
    pub(crate) resizes: u32,
    pub(crate) syncs: u32,
    /// A callback name ("write", "discard", ...) and the code it then returns.
    pub(crate) fail: Option<(&'static str, c_int)>,
}

impl Replica {
    pub(crate) fn new(size: usize) -> Self {
        Replica {
            disk: vec![0xEE; size],
            ..Replica::default()
        }
    }

    pub(crate) fn failure(&self, op: &str) -> c_int {
        match self.fail {
            Some((f, rc)) if f == op => rc,
            _ => 0,
        }
    }

    pub(crate) fn fill(&mut self, offset: u64, len: u64, v: u8) -> c_int {
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
pub(crate) unsafe fn replica<'a>(ctx: *mut c_void) -> &'a mut Replica {
    // SAFETY: per the function's contract.
    unsafe { &mut *ctx.cast::<Replica>() }
}

pub(crate) unsafe extern "C" fn t_write(
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

pub(crate) unsafe extern "C" fn t_zero(ctx: *mut c_void, offset: u64, len: u64) -> c_int {
    // SAFETY: `ctx` is the test's `Replica`.
    let t = unsafe { replica(ctx) };
    t.zeroes += 1;
    t.fill(offset, len, 0)
}

pub(crate) unsafe extern "C" fn t_discard(ctx: *mut c_void, offset: u64, len: u64) -> c_int {
    // SAFETY: `ctx` is the test's `Replica`.
    let t = unsafe { replica(ctx) };
    let rc = t.failure("discard");
    if rc != 0 {
        return rc;
    }
    t.discards += 1;
    t.fill(offset, len, 0)
}

pub(crate) unsafe extern "C" fn t_resize(ctx: *mut c_void, new_size: u64) -> c_int {
    // SAFETY: `ctx` is the test's `Replica`.
    let t = unsafe { replica(ctx) };
    t.resizes += 1;
    t.disk.resize(new_size as usize, 0);
    0
}

pub(crate) unsafe extern "C" fn t_sync(ctx: *mut c_void) -> c_int {
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
pub(crate) fn secret() -> (*const u8, usize) {
    if cfg!(miri) {
        (null(), 0)
    } else {
        (SECRET.as_ptr(), SECRET.len())
    }
}

pub(crate) fn message(buf: &[c_char]) -> &str {
    // SAFETY: the last-error functions NUL-terminate within `buf`.
    unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap()
}

pub(crate) fn thread_error() -> String {
    let mut buf = [0 as c_char; 512];
    assert_eq!(
        blockdelta_last_error(buf.as_mut_ptr(), buf.len(), null_mut()),
        OK
    );
    message(&buf).to_owned()
}

pub(crate) fn applier_error(app: *const blockdelta_applier) -> String {
    let mut buf = [0 as c_char; 512];
    let mut len = 0;
    assert_eq!(
        blockdelta_applier_last_error(app, buf.as_mut_ptr(), buf.len(), &mut len),
        OK
    );
    assert_eq!(len, message(&buf).len());
    message(&buf).to_owned()
}

pub(crate) fn new_encoder(src: *mut Source) -> *mut blockdelta_encoder {
    new_encoder_with(src, FLAGS)
}

/// [`new_encoder`] with these `BLOCKDELTA_ENCODE_*` flags.
pub(crate) fn new_encoder_with(src: *mut Source, flags: u32) -> *mut blockdelta_encoder {
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
            flags,
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
pub(crate) fn encode(src: &mut Source) -> Vec<u8> {
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
pub(crate) fn expected_replica(src: &[u8]) -> Vec<u8> {
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

pub(crate) fn new_applier(t: &mut Replica, discard: bool, resize: bool) -> *mut blockdelta_applier {
    let (secret, secret_len) = secret();
    let mut app = null_mut();
    assert_eq!(
        blockdelta_applier_new(
            t.disk.len() as u64,
            GROWN as u64,
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
pub(crate) fn push_all(
    app: *mut blockdelta_applier,
    stream: &[u8],
    chunk: usize,
) -> blockdelta_result {
    let (mut start, mut avail) = (0, 0);
    while start < stream.len() {
        avail = (avail + chunk).min(stream.len() - start);
        let mut consumed = usize::MAX;
        let r = blockdelta_applier_push(app, stream[start..].as_ptr(), avail, &mut consumed);
        if r != OK {
            // The one output written on failure: the verified frames before the failing one.
            assert!(consumed <= avail, "consumed_out {consumed} on failure");
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

pub(crate) fn new_source() -> Source {
    Source {
        disk: source_disk(),
        fail_next: 0,
        reads: 0,
    }
}

/// A `blockdelta_record` the tests can check was not written.
pub(crate) fn sentinel_record() -> blockdelta_record {
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
pub(crate) fn check_copies(
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

pub(crate) fn src_reads(ctx: *mut c_void) -> u32 {
    // SAFETY: `ctx` is the test's live `Source`, not borrowed elsewhere during the call.
    unsafe { (*ctx.cast::<Source>()).reads }
}

pub(crate) fn set_read_failure(ctx: *mut c_void, rc: c_int) {
    // SAFETY: as in `src_reads`.
    unsafe { (*ctx.cast::<Source>()).fail_next = rc };
}

/// The header frame of an unencrypted stream.
pub(crate) fn plain_header_frame(src: &mut Source) -> Vec<u8> {
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
