//! Issue 8 through the C entry points: the replica's position and size, short secrets,
//! re-entrant callbacks, and `consumed_out` on failure. Driven as from C (see
//! `ffi/tests/common.rs`); small enough for miri.

use crate::ffi::test_support::*;

fn fix_crc(frame: &mut [u8]) {
    let mut h = crc32fast::Hasher::new();
    h.update(&frame[..20]);
    h.update(&frame[24..]);
    let crc = h.finalize();
    frame[20..24].copy_from_slice(&crc.to_le_bytes());
}

/// A record frame built by hand (`docs/FORMAT.md`), CRC re-signed as an attacker would.
fn record_frame(seq: u64, rtype: u16, value: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(b"BDfr");
    f.extend_from_slice(&[2, 0, 0, 0]);
    f.extend_from_slice(&seq.to_le_bytes());
    f.extend_from_slice(&(8 + value.len() as u32).to_le_bytes());
    f.extend_from_slice(&[0; 4]);
    f.extend_from_slice(&rtype.to_le_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&(value.len() as u32).to_le_bytes());
    f.extend_from_slice(value);
    fix_crc(&mut f);
    f
}

/// A plaintext stream 41 -> 42 whose header declares `disk_size`, with the given record
/// frames (type, value) and a correct END.
fn hostile_stream(disk_size: u64, records: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut src = new_source();
    let mut header = plain_header_frame(&mut src);
    header[24 + 68..24 + 76].copy_from_slice(&disk_size.to_le_bytes());
    fix_crc(&mut header);
    let mut chain = crc32fast::Hasher::new();
    chain.update(&header[..24]);
    let mut out = header;
    for (i, (t, v)) in records.iter().enumerate() {
        let f = record_frame(i as u64 + 1, *t, v);
        chain.update(&f[..24]);
        out.extend_from_slice(&f);
    }
    let mut end = Vec::new();
    end.extend_from_slice(&(records.len() as u64).to_le_bytes());
    end.extend_from_slice(&(out.len() as u64).to_le_bytes());
    end.extend_from_slice(&chain.finalize().to_le_bytes());
    end.extend_from_slice(&[0; 4]);
    out.extend(record_frame(records.len() as u64 + 1, 0x80FF, &end));
    out
}

fn plain_applier(t: &mut Replica, size: u64, max_size: u64) -> *mut blockdelta_applier {
    let mut app = null_mut();
    assert_eq!(
        blockdelta_applier_new(
            size,
            max_size,
            null(),
            0,
            Some(t_write),
            Some(t_zero),
            Some(t_discard),
            Some(t_resize),
            Some(t_sync),
            (t as *mut Replica).cast(),
            &mut app,
        ),
        OK
    );
    app
}

/// A hostile stream: header disk size, records (type, value), the expected result.
type Case = (u64, Vec<(u16, Vec<u8>)>, blockdelta_result);

fn calls(t: &Replica) -> u32 {
    t.writes + t.zeroes + t.discards + t.resizes + t.syncs
}

#[test]
fn a_stream_is_accepted_iff_from_seq_le_replica_seq_lt_to_seq() {
    let mut src = new_source();
    let stream = encode(&mut src); // 41 -> 42
    for (replica_seq, want) in [
        (40, blockdelta_result::StreamWrongSequence),
        (42, blockdelta_result::StreamAlreadyApplied),
        (43, blockdelta_result::StreamAlreadyApplied),
        (u64::MAX, blockdelta_result::StreamAlreadyApplied),
    ] {
        let mut t = Replica::new(DISK);
        let app = new_applier(&mut t, true, true);
        let r = blockdelta_applier_expect(
            app,
            DISK_ID.as_ptr(),
            GENERATION.as_ptr(),
            replica_seq,
            true,
        );
        assert_eq!(r, OK);
        assert_eq!(push_all(app, &stream, usize::MAX), want, "{replica_seq}");
        assert_eq!(calls(&t), 0, "{replica_seq}: the target saw the stream");
        if want == blockdelta_result::StreamAlreadyApplied {
            assert!(
                applier_error(app).contains("already applied"),
                "{}",
                applier_error(app)
            );
        }
        blockdelta_applier_free(app);
    }

    // Accepted at 41; afterwards the applier says what it applied.
    let mut t = Replica::new(DISK);
    let app = new_applier(&mut t, true, true);
    let (mut from, mut to, mut size) = (0, 0, 0);
    let mut gen = [0u8; 16];
    assert_eq!(
        blockdelta_applier_header(
            app,
            null_mut(),
            gen.as_mut_ptr(),
            &mut from,
            &mut to,
            &mut size
        ),
        blockdelta_result::StreamInvalidState
    );
    let (mut records, mut bytes, mut checksum) = (0u64, 0u64, 0u32);
    let r = blockdelta_applier_expect(app, DISK_ID.as_ptr(), GENERATION.as_ptr(), 41, true);
    assert_eq!(r, OK);
    assert_eq!(push_all(app, &stream, 5000), OK);
    let mut id = [0u8; 16];
    assert_eq!(
        blockdelta_applier_header(
            app,
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
    assert_eq!(
        blockdelta_applier_end(app, &mut records, &mut bytes, &mut checksum),
        OK
    );
    assert!(records > 0 && bytes > 0 && bytes < stream.len() as u64);
    assert_eq!(
        blockdelta_applier_end(app, null_mut(), null_mut(), null_mut()),
        OK
    );
    blockdelta_applier_free(app);

    // Not finished: no END summary.
    let mut t = Replica::new(DISK);
    let app = new_applier(&mut t, true, true);
    assert_eq!(
        push_all(app, &stream[..stream.len() - 1], 5000),
        blockdelta_result::StreamTruncated
    );
    assert_eq!(
        blockdelta_applier_end(app, &mut records, null_mut(), null_mut()),
        blockdelta_result::StreamInvalidState
    );
    blockdelta_applier_free(app);
}

/// The hostile plaintext streams of issue 8: a 2^62-byte disk reached the C callbacks with
/// write(2^50, 16), zero(2^51, 2^61) and resize(2^64-1). No callback may receive a range
/// outside what the replica is allowed to be.
#[test]
fn hostile_sizes_never_reach_the_c_callbacks() {
    let data = |offset: u64| {
        let mut v = offset.to_le_bytes().to_vec();
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&[0xAB; 16]);
        (0x8001u16, v)
    };
    let zero = |offset: u64, len: u64| {
        (
            0x8002u16,
            [offset.to_le_bytes(), len.to_le_bytes()].concat(),
        )
    };
    let resize = |size: u64| (0x8004u16, size.to_le_bytes().to_vec());
    let cases: Vec<Case> = vec![
        (
            1 << 62,
            vec![data(1 << 50), zero(1 << 51, 1 << 61), resize(u64::MAX)],
            blockdelta_result::StreamInvalidDiskSize,
        ),
        (
            1 << 60,
            vec![data(1 << 50), zero(1 << 51, 1 << 58)],
            blockdelta_result::StreamTargetTooSmall,
        ),
        (
            DISK as u64,
            vec![resize(u64::MAX)],
            blockdelta_result::StreamInvalidDiskSize,
        ),
        (
            DISK as u64,
            vec![resize(0)],
            blockdelta_result::StreamInvalidDiskSize,
        ),
        // Growth above the replica's maximum (here: its size) never calls `resize`.
        (
            DISK as u64,
            vec![resize(1 << 40)],
            blockdelta_result::StreamTargetTooSmall,
        ),
        (
            DISK as u64,
            vec![data(DISK as u64)],
            blockdelta_result::StreamExtentOutOfRange,
        ),
    ];
    for (disk_size, records, want) in cases {
        let stream = hostile_stream(disk_size, &records);
        let mut t = Replica::new(DISK);
        let app = plain_applier(&mut t, DISK as u64, 0);
        assert_eq!(push_all(app, &stream, usize::MAX), want, "disk {disk_size}");
        blockdelta_applier_free(app);
        assert_eq!(calls(&t), 0, "disk {disk_size}: a callback was called");
        assert_eq!(t.disk.len(), DISK);
    }
    // Growth within the maximum is applied; the size is tracked, so a write past the grown end
    // is still refused.
    let grown = DISK as u64 + 4096;
    let stream = hostile_stream(DISK as u64, &[resize(grown), data(grown - 16)]);
    let mut t = Replica::new(DISK);
    let app = plain_applier(&mut t, DISK as u64, grown);
    assert_eq!(push_all(app, &stream, usize::MAX), OK);
    blockdelta_applier_free(app);
    assert_eq!((t.resizes, t.writes, t.disk.len() as u64), (1, 1, grown));

    // A replica smaller than the stream's disk is refused before any callback.
    let stream = hostile_stream(DISK as u64, &[]);
    let mut t = Replica::new(DISK);
    let app = plain_applier(&mut t, DISK as u64 - 1, 0);
    assert_eq!(
        push_all(app, &stream, usize::MAX),
        blockdelta_result::StreamTargetTooSmall
    );
    blockdelta_applier_free(app);
    assert_eq!(calls(&t), 0);

    // A maximum below the size is a caller error.
    let mut app = null_mut();
    let r = blockdelta_applier_new(
        10,
        9,
        null(),
        0,
        Some(t_write),
        Some(t_zero),
        None,
        None,
        None,
        null_mut(),
        &mut app,
    );
    assert_eq!(r, blockdelta_result::InvalidArgument);
    assert!(app.is_null());
}

#[test]
fn secrets_shorter_than_16_bytes_are_refused() {
    let short = [7u8; 15];
    let empty: &[u8] = &[];
    for (p, len) in [(empty.as_ptr(), 0), (short.as_ptr(), short.len())] {
        let mut app = null_mut();
        let r = blockdelta_applier_new(
            DISK as u64,
            0,
            p,
            len,
            Some(t_write),
            Some(t_zero),
            None,
            None,
            None,
            null_mut(),
            &mut app,
        );
        assert_eq!(r, blockdelta_result::StreamSecretTooShort);
        assert!(app.is_null());
        let mut dec = null_mut();
        assert_eq!(
            blockdelta_decoder_new(p, len, &mut dec),
            blockdelta_result::StreamSecretTooShort
        );
        assert!(dec.is_null());
        assert!(thread_error().contains("too short"), "{}", thread_error());
        let mut enc = null_mut();
        let r = blockdelta_encoder_new(
            DISK_ID.as_ptr(),
            GENERATION.as_ptr(),
            1,
            2,
            DISK as u64,
            4096,
            RECORD,
            0,
            p,
            len,
            Some(read_source),
            null_mut(),
            &mut enc,
        );
        assert_eq!(r, blockdelta_result::StreamSecretTooShort);
        assert!(enc.is_null());
    }
    // (NULL, 0) is "no encryption"; 16 bytes are enough.
    let mut dec = null_mut();
    assert_eq!(blockdelta_decoder_new(null(), 0, &mut dec), OK);
    blockdelta_decoder_free(dec);
    let ok = [7u8; 16];
    assert_eq!(blockdelta_decoder_new(ok.as_ptr(), ok.len(), &mut dec), OK);
    blockdelta_decoder_free(dec);
}

/// A replica whose write callback calls back into the applier that is calling it.
struct Reentrant {
    app: *mut blockdelta_applier,
    stream: Vec<u8>,
    inner: Vec<blockdelta_result>,
    writes: u32,
}

unsafe extern "C" fn reenter_write(
    ctx: *mut c_void,
    _off: u64,
    _buf: *const u8,
    _len: usize,
) -> c_int {
    // SAFETY: `ctx` is the test's `Reentrant`, alive for the applier's lifetime; the applier
    // holds no reference to it.
    let r = unsafe { &mut *ctx.cast::<Reentrant>() };
    r.writes += 1;
    let mut consumed = usize::MAX;
    let rc = blockdelta_applier_push(r.app, r.stream.as_ptr(), r.stream.len(), &mut consumed);
    r.inner.push(rc);
    r.inner.push(blockdelta_applier_finish(r.app));
    let mut to = 0;
    r.inner.push(blockdelta_applier_header(
        r.app,
        null_mut(),
        null_mut(),
        null_mut(),
        &mut to,
        null_mut(),
    ));
    r.inner
        .push(blockdelta_applier_expect(r.app, null(), null(), 0, false));
    0
}

unsafe extern "C" fn reenter_zero(_ctx: *mut c_void, _offset: u64, _len: u64) -> c_int {
    0
}

/// A source whose read callback calls back into the encoder that is calling it.
struct ReentrantSource {
    enc: *mut blockdelta_encoder,
    inner: Vec<blockdelta_result>,
    bound: usize,
}

unsafe extern "C" fn reenter_read(
    ctx: *mut c_void,
    _offset: u64,
    buf: *mut u8,
    len: usize,
) -> c_int {
    // SAFETY: `ctx` is the test's `ReentrantSource`; `buf` is writable for `len` bytes.
    let (s, buf) = unsafe {
        (
            &mut *ctx.cast::<ReentrantSource>(),
            std::slice::from_raw_parts_mut(buf, len),
        )
    };
    buf.fill(0x42);
    let mut frame = [0u8; 64];
    let mut n = usize::MAX;
    s.inner.push(blockdelta_encoder_next(
        s.enc,
        frame.as_mut_ptr(),
        frame.len(),
        &mut n,
    ));
    s.inner
        .push(blockdelta_encoder_set_extents(s.enc, null(), 0));
    s.inner.push(blockdelta_encoder_finish(
        s.enc,
        frame.as_mut_ptr(),
        frame.len(),
        &mut n,
    ));
    s.bound = blockdelta_encoder_bound(s.enc);
    0
}

/// A callback that pushed into the same applier got OK and END was verified while the outer
/// write still ran (and, through C, two `&mut` to one applier existed: undefined behaviour).
/// Now every re-entrant call is refused with `REENTERED` and changes nothing.
#[test]
fn callbacks_that_reenter_their_handle_are_refused() {
    let mut src = new_source();
    let mut header = plain_header_frame(&mut src);
    // One DATA record at 0, then END (plaintext, hand-built).
    let mut v = 0u64.to_le_bytes().to_vec();
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&[0xAB; 16]);
    let data = record_frame(1, 0x8001, &v);
    let mut chain = crc32fast::Hasher::new();
    chain.update(&header[..24]);
    chain.update(&data[..24]);
    let mut end = 1u64.to_le_bytes().to_vec();
    end.extend_from_slice(&((header.len() + data.len()) as u64).to_le_bytes());
    end.extend_from_slice(&chain.finalize().to_le_bytes());
    end.extend_from_slice(&[0; 4]);
    let end = record_frame(2, 0x80FF, &end);
    let tail = [data, end].concat();
    let mut whole = header.clone();
    whole.extend_from_slice(&tail);

    let mut r = Reentrant {
        app: null_mut(),
        stream: tail.clone(),
        inner: Vec::new(),
        writes: 0,
    };
    let ctx: *mut Reentrant = &mut r;
    let mut app = null_mut();
    assert_eq!(
        blockdelta_applier_new(
            DISK as u64,
            0,
            null(),
            0,
            Some(reenter_write),
            Some(reenter_zero),
            None,
            None,
            None,
            ctx.cast(),
            &mut app,
        ),
        OK
    );
    // SAFETY: no reference to `r` is live while the applier may call back.
    unsafe { (*ctx).app = app };
    let mut consumed = 0;
    let hl = header.len();
    assert_eq!(
        blockdelta_applier_push(app, header.as_mut_ptr(), hl, &mut consumed),
        OK
    );
    // The outer push applies DATA (its callback re-enters, refused) and then END.
    assert_eq!(
        blockdelta_applier_push(app, tail.as_ptr(), tail.len(), &mut consumed),
        OK
    );
    assert_eq!(consumed, tail.len());
    assert_eq!(blockdelta_applier_finish(app), OK);
    // SAFETY: the applier is idle; nothing else refers to `r`.
    let (writes, inner) = unsafe { ((*ctx).writes, std::mem::take(&mut (*ctx).inner)) };
    assert_eq!(writes, 1);
    assert_eq!(inner, [blockdelta_result::Reentered; 4]);
    assert!(
        applier_error(app).contains("called back"),
        "{}",
        applier_error(app)
    );
    blockdelta_applier_free(app);
    drop(whole);

    // The encoder's read callback.
    let mut s = ReentrantSource {
        enc: null_mut(),
        inner: Vec::new(),
        bound: usize::MAX,
    };
    let sctx: *mut ReentrantSource = &mut s;
    let mut enc = null_mut();
    assert_eq!(
        blockdelta_encoder_new(
            DISK_ID.as_ptr(),
            GENERATION.as_ptr(),
            1,
            2,
            DISK as u64,
            4096,
            RECORD,
            0,
            null(),
            0,
            Some(reenter_read),
            sctx.cast(),
            &mut enc,
        ),
        OK
    );
    // SAFETY: no reference to `s` is live while the encoder may call back.
    unsafe { (*sctx).enc = enc };
    let mut frame = vec![0u8; blockdelta_encoder_bound(enc)];
    let mut n = 0;
    assert_eq!(
        blockdelta_encoder_header(enc, frame.as_mut_ptr(), frame.len(), &mut n),
        OK
    );
    let extents = [Extent::new(0, 4096)];
    assert_eq!(blockdelta_encoder_set_extents(enc, extents.as_ptr(), 1), OK);
    assert_eq!(
        blockdelta_encoder_next(enc, frame.as_mut_ptr(), frame.len(), &mut n),
        OK
    );
    assert!(n > 4096);
    // SAFETY: the encoder is idle.
    let (inner, bound) = unsafe { (std::mem::take(&mut (*sctx).inner), (*sctx).bound) };
    assert_eq!(inner, [blockdelta_result::Reentered; 3]);
    assert_eq!(bound, 0, "bound is 0 from within a callback");
    // The refused calls changed nothing: the list is still there, exhausted, and END follows.
    assert_eq!(
        blockdelta_encoder_next(enc, frame.as_mut_ptr(), frame.len(), &mut n),
        OK
    );
    assert_eq!(n, 0);
    assert_eq!(
        blockdelta_encoder_finish(enc, frame.as_mut_ptr(), frame.len(), &mut n),
        OK
    );
    blockdelta_encoder_free(enc);
}

/// A failed push reports the bytes of the frames it verified and applied before the failure.
#[test]
fn a_failed_push_reports_what_it_consumed() {
    let mut src = new_source();
    let mut stream = encode(&mut src);
    let last = stream.len() - 1;
    stream[last] ^= 1; // END's last byte
    let end_len = 24 + 8 + 24 + if cfg!(miri) { 0 } else { 16 };
    let mut t = Replica::new(DISK);
    let app = new_applier(&mut t, true, true);
    let mut consumed = usize::MAX;
    let r = blockdelta_applier_push(app, stream.as_ptr(), stream.len(), &mut consumed);
    assert_ne!(r, OK);
    assert_eq!(consumed, stream.len() - end_len);
    blockdelta_applier_free(app);
}

#[test]
fn set_threads_before_the_first_push_decodes_on_threads_and_calls_back_on_the_callers() {
    let mut src = new_source();
    let stream = encode(&mut src);
    let expected = expected_replica(&src.disk);
    // The rules: 1 to 64, before the first push only; NULL handle.
    assert_eq!(
        blockdelta_applier_set_threads(null_mut(), 2),
        blockdelta_result::NullParameter
    );
    let mut t = Replica::new(DISK);
    let app = new_applier(&mut t, true, true);
    for bad in [0, 65, u32::MAX] {
        assert_eq!(
            blockdelta_applier_set_threads(app, bad),
            blockdelta_result::InvalidArgument,
            "{bad}"
        );
    }
    assert_eq!(blockdelta_applier_set_threads(app, 2), OK);
    let mut consumed = 0;
    assert_eq!(blockdelta_applier_push(app, null(), 0, &mut consumed), OK);
    assert_eq!(
        blockdelta_applier_set_threads(app, 3),
        blockdelta_result::StreamInvalidState
    );
    assert!(
        applier_error(app).contains("first push"),
        "{}",
        applier_error(app)
    );
    // Applied exactly as with one thread, in pieces as from a socket.
    assert_eq!(push_all(app, &stream, 3000), OK);
    assert!(t.disk == expected);
    let mut to = 0;
    let r = blockdelta_applier_header(app, null_mut(), null_mut(), null_mut(), &mut to, null_mut());
    assert_eq!((r, to), (OK, 42));
    blockdelta_applier_free(app);

    // A flipped bit in the last DATA frame: the frames before it are written, nothing of it
    // nor after it, and the error surfaces by finish at the latest.
    let mut bad = stream.clone();
    let at = bad.len() - 100;
    bad[at] ^= 1;
    let mut one = Replica::new(DISK);
    let app1 = new_applier(&mut one, true, true);
    let r1 = push_all(app1, &bad, usize::MAX);
    let mut two = Replica::new(DISK);
    let app2 = new_applier(&mut two, true, true);
    assert_eq!(blockdelta_applier_set_threads(app2, 2), OK);
    let r2 = push_all(app2, &bad, usize::MAX);
    assert_ne!(r1, OK);
    assert_eq!(r1, r2);
    assert_eq!(calls(&one), calls(&two));
    assert!(one.disk == two.disk);
    blockdelta_applier_free(app1);
    blockdelta_applier_free(app2);
}
