//! Applier entry points driven as from C, and whole streams through all three handles (see
//! `ffi/tests/common.rs`).

use crate::ffi::test_support::*;

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
        BLOCKDELTA_RECORD_DISCARD as X, BLOCKDELTA_RECORD_END as E, BLOCKDELTA_RECORD_HEADER as H,
        BLOCKDELTA_RECORD_RESIZE as R, BLOCKDELTA_RECORD_ZERO as Z,
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
    assert_eq!(consumed, 0, "consumed_out is written on failure too");
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
        let wrong = b"wrong secret, 16+ bytes";
        let mut t = Replica::new(DISK);
        let mut app = null_mut();
        assert_eq!(
            blockdelta_applier_new(
                t.disk.len() as u64,
                0,
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
        blockdelta_applier_new(
            DISK as u64,
            0,
            secret,
            len,
            write,
            zero,
            None,
            None,
            None,
            ctx,
            out,
        )
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
    // Written on failure too: nothing before the refused header was consumed.
    assert_eq!(consumed, 0);
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
