//! Encoder entry points driven as from C (see `ffi/tests/common.rs`).

use crate::ffi::test_support::*;

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
        new(id, 4096, 8, none, read, &mut enc),
        blockdelta_result::InvalidArgument
    );
    assert_eq!(thread_error(), "invalid argument: unknown encoder flags");
    assert_eq!(
        new(
            id,
            4096,
            BLOCKDELTA_ENCODE_HOLES_AS_DISCARD,
            none,
            read,
            &mut enc
        ),
        blockdelta_result::InvalidArgument
    );
    assert!(
        thread_error().contains("zero_detection"),
        "{}",
        thread_error()
    );
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
    // An extent kind C wrote that is neither WRITE nor DISCARD: refused before Rust ever views
    // the array as `Extent`s (an invalid enum value would be undefined behaviour).
    let bad = [
        RawExtent {
            offset: 0,
            len: 4096,
            kind: 0,
            reserved: 0,
        },
        RawExtent {
            offset: 8192,
            len: 4096,
            kind: 7,
            reserved: 0,
        },
    ];
    assert_eq!(
        blockdelta_encoder_set_extents(enc, bad.as_ptr().cast::<Extent>(), 2),
        blockdelta_result::InvalidArgument
    );
    let mut buf = [0 as c_char; 512];
    assert_eq!(
        blockdelta_encoder_last_error(enc, buf.as_mut_ptr(), buf.len(), null_mut()),
        OK
    );
    assert!(
        message(&buf).contains("extent 1 has kind 7"),
        "{}",
        message(&buf)
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

/// The source's hole: the region callback reports 16384..32768 (zeros in `source_disk`) as one.
unsafe extern "C" fn region(
    ctx: *mut c_void,
    offset: u64,
    end: u64,
    hole: *mut bool,
    len: *mut u64,
) -> c_int {
    let _ = ctx;
    let (is_hole, stop) = match offset {
        _ if offset < 16384 => (false, 16384),
        _ if offset < 32768 => (true, 32768),
        _ => (false, end),
    };
    // SAFETY: the encoder passes two live out-pointers.
    unsafe {
        *hole = is_hole;
        *len = stop.min(end) - offset;
    }
    0
}

unsafe extern "C" fn will_read(ctx: *mut c_void, offset: u64, len: u64) {
    let _ = (ctx, offset, len);
    HINTS.with(|h| h.set(h.get() + 1));
}

thread_local! {
    static HINTS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

#[test]
fn source_hints_skip_the_hole_and_threads_give_the_same_replica() {
    for (threads, flags) in [
        (1u32, FLAGS),
        (2, FLAGS),
        (2, FLAGS | BLOCKDELTA_ENCODE_HOLES_AS_DISCARD),
    ] {
        let mut src = new_source();
        let enc = new_encoder_with(&mut src, flags);
        assert_eq!(blockdelta_encoder_set_threads(null_mut(), 2), NULL);
        assert_eq!(
            blockdelta_encoder_set_threads(enc, 0),
            blockdelta_result::InvalidArgument
        );
        assert_eq!(blockdelta_encoder_set_threads(enc, threads), OK);
        assert_eq!(
            blockdelta_encoder_set_source_hints(enc, Some(region), Some(will_read)),
            OK
        );
        let bound = blockdelta_encoder_bound(enc);
        let mut frame = vec![0u8; bound];
        let mut stream = Vec::new();
        let mut n = 0;
        assert_eq!(
            blockdelta_encoder_header(enc, frame.as_mut_ptr(), bound, &mut n),
            OK
        );
        stream.extend_from_slice(&frame[..n]);
        assert_eq!(
            blockdelta_encoder_set_threads(enc, 3),
            blockdelta_result::StreamInvalidState
        );
        let extents = [Extent::new(0, DISK as u64)];
        assert_eq!(blockdelta_encoder_set_extents(enc, extents.as_ptr(), 1), OK);
        HINTS.with(|h| h.set(0));
        loop {
            assert_eq!(
                blockdelta_encoder_next(enc, frame.as_mut_ptr(), bound, &mut n),
                OK,
                "{}",
                thread_error()
            );
            if n == 0 {
                break;
            }
            stream.extend_from_slice(&frame[..n]);
        }
        assert_eq!(
            blockdelta_encoder_finish(enc, frame.as_mut_ptr(), bound, &mut n),
            OK
        );
        stream.extend_from_slice(&frame[..n]);
        blockdelta_encoder_free(enc);
        // 16 records of 4 KiB, of which the 4 of the hole are never read.
        assert_eq!(src.reads, 12, "threads {threads}");
        assert!(HINTS.with(|h| h.get()) > 0);
        let mut t = Replica::new(DISK);
        t.disk.fill(0xEE);
        let app = new_applier(&mut t, true, false);
        assert_eq!(push_all(app, &stream, stream.len()), OK);
        assert_eq!(blockdelta_applier_finish(app), OK);
        blockdelta_applier_free(app);
        assert!(t.disk[..DISK] == src.disk[..DISK], "threads {threads}");
        let discards = flags & BLOCKDELTA_ENCODE_HOLES_AS_DISCARD != 0;
        assert_eq!(t.discards > 0, discards, "threads {threads}");
    }
}
