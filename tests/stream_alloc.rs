//! Zero allocations per record: once an encoder is built, and once a decoder or applier has
//! accepted a stream's header (which allocates that stream's scratch) or been resumed from a
//! checkpoint (the same scratch), producing and consuming frames allocates nothing. A counting
//! global allocator (per thread, so parallel tests do not disturb each other) proves it for every
//! codec and with encryption. The parallel applier decodes on worker threads: for it the count
//! is global (all threads), which holds because this binary has one test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use blockdelta::{
    Applier, Bookmark, BookmarkKind, Codec, Decoded, Decoder, DecoderConfig, EncodeCursor, Encoder,
    EncoderConfig, Extent, GenerationId, ParallelApplier, ParallelEncoder, Secret,
};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Allocations on every thread.
static ALL_THREADS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; counting touches only a const-initialised
// thread-local `Cell`, which never allocates, and an atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        ALL_THREADS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        ALL_THREADS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(|c| c.get())
}

const SIZE: usize = 4 << 20;

fn disk() -> Vec<u8> {
    let mut x: u32 = 7;
    (0..SIZE)
        .map(|i| match (i >> 18) % 3 {
            0 => 0,
            1 => (i / 100) as u8,
            _ => {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            }
        })
        .collect()
}

fn dcfg(secret: Option<&[u8]>) -> DecoderConfig {
    let mut c = DecoderConfig::new();
    c.secret = secret.map(|s| Secret::new(s).unwrap());
    c
}

fn check(codec: Codec, secret: Option<&[u8]>, record_size: u32) {
    let mut src = disk();
    let extents = [
        Extent::new(0, SIZE as u64 / 2),
        Extent::new(SIZE as u64 / 2 + 512, SIZE as u64 / 2 - 1024),
    ];
    let mut cfg = EncoderConfig::new([1; 16], GenerationId([2; 16]), 1, 2, SIZE as u64);
    cfg.compression = codec;
    cfg.record_size = record_size;
    cfg.secret = secret.map(|s| Secret::new(s).unwrap());
    let mut enc = Encoder::new(cfg.clone()).unwrap();
    let mut frame = vec![0u8; enc.max_frame_len()];
    let mut stream = Vec::with_capacity(2 * SIZE);
    let mut cursor = EncodeCursor::default();
    let bookmark = Bookmark {
        id: 1,
        timestamp_ns: 2,
        kind: BookmarkKind::CrashConsistent,
        label: "point",
    };

    let before = allocations();
    let mut frames = 0;
    let n = enc.write_header(&mut frame).unwrap();
    stream.extend_from_slice(&frame[..n]);
    while let Some(n) = enc
        .next_frame(&extents, &mut cursor, &mut src, &mut frame)
        .unwrap()
    {
        stream.extend_from_slice(&frame[..n]);
        frames += 1;
    }
    let n = enc.write_bookmark(&bookmark, &mut frame).unwrap();
    stream.extend_from_slice(&frame[..n]);
    let n = enc.finish(&mut frame).unwrap();
    stream.extend_from_slice(&frame[..n]);
    let encode_allocs = allocations() - before;
    assert!(frames >= 4, "{frames} frames");
    assert_eq!(
        encode_allocs,
        0,
        "encoder allocated ({codec:?}, encrypted {})",
        secret.is_some()
    );

    // The parallel encoder on one thread: the same promise, the same bytes (without a random
    // salt). `set_extents` copies the list (allocating once per list), before the count.
    let mut penc = ParallelEncoder::new(cfg, 1).unwrap();
    let mut pstream = Vec::with_capacity(2 * SIZE);
    penc.set_extents(&extents).unwrap();
    let before = allocations();
    let n = penc.write_header(&mut frame).unwrap();
    pstream.extend_from_slice(&frame[..n]);
    while let Some(n) = penc.next_frame(&mut src, &mut frame).unwrap() {
        pstream.extend_from_slice(&frame[..n]);
    }
    let n = penc.write_bookmark(&bookmark, &mut frame).unwrap();
    pstream.extend_from_slice(&frame[..n]);
    let n = penc.finish(&mut frame).unwrap();
    pstream.extend_from_slice(&frame[..n]);
    assert_eq!(allocations() - before, 0, "parallel encoder allocated");
    if secret.is_none() {
        let first = pstream.iter().zip(&stream).position(|(a, b)| a != b);
        assert!(
            pstream == stream,
            "parallel encoder wrote other bytes: {} vs {}, first difference at {first:?}",
            pstream.len(),
            stream.len()
        );
    }

    // The decoder on its own (data handed out borrowed). Its scratch is allocated when the
    // header is accepted: once per stream, before the first record.
    // `Decoder::new` allocates nothing (docs/STREAM.md): everything waits for the header.
    let cfg = dcfg(secret);
    let before = allocations();
    let mut dec = Decoder::new(cfg);
    assert_eq!(allocations() - before, 0, "Decoder::new allocated");
    let before = allocations();
    let Decoded::Header { consumed, .. } = dec.next(&stream).unwrap() else {
        panic!("the stream starts with its header")
    };
    let scratch = allocations() - before;
    // The associated data (header frame), plus plaintext and lz4 buffers as the stream needs.
    let expected = 1 + usize::from(secret.is_some()) + usize::from(codec == Codec::Lz4);
    assert_eq!(scratch, expected as u64, "decoder scratch ({codec:?})");
    let before = allocations();
    let mut at = consumed;
    let mut checksum = 0u64;
    loop {
        match dec.next(&stream[at..]).unwrap() {
            Decoded::Header { .. } => panic!("a second header"),
            Decoded::Record { record, consumed } => {
                at += consumed;
                checksum += consumed as u64;
                if matches!(record, blockdelta::Record::End(_)) {
                    break;
                }
            }
            Decoded::NeedMore { .. } => panic!("whole stream given"),
            _ => unreachable!(),
        }
    }
    assert_eq!(allocations() - before, 0, "decoder allocated ({codec:?})");
    assert!(checksum > 0);

    // A decoder resumed from a checkpoint (after the header and one record): `resume` allocates
    // the same scratch as accepting the header, and its records allocate nothing either.
    let mut dec = Decoder::new(dcfg(secret));
    let Decoded::Header { consumed, .. } = dec.next(&stream).unwrap() else {
        panic!("the stream starts with its header")
    };
    let Decoded::Record { .. } = dec.next(&stream[consumed..]).unwrap() else {
        panic!("a record follows the header")
    };
    let checkpoint = dec.checkpoint().unwrap();
    drop(dec);
    let cfg = dcfg(secret);
    let before = allocations();
    let mut dec = Decoder::resume(cfg, &checkpoint).unwrap();
    assert_eq!(
        allocations() - before,
        expected as u64,
        "resume scratch ({codec:?})"
    );
    let before = allocations();
    let mut at = checkpoint.stream_offset() as usize;
    loop {
        match dec.next(&stream[at..]).unwrap() {
            Decoded::Record { record, consumed } => {
                at += consumed;
                if matches!(record, blockdelta::Record::End(_)) {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        allocations() - before,
        0,
        "resumed decoder allocated ({codec:?})"
    );

    // The applier into a preallocated in-memory disk.
    let mut app = Applier::new(dcfg(secret), vec![0u8; SIZE]);
    let before = allocations();
    let used = app.push(&stream).unwrap();
    app.finish().unwrap();
    assert_eq!(
        allocations() - before,
        expected as u64,
        "applier allocated more than its scratch ({codec:?})"
    );
    assert_eq!(used, stream.len());
    let replica = app.into_target();

    // In-place decryption in the caller's buffer.
    let mut owned = stream.clone();
    let mut app = Applier::new(dcfg(secret), vec![0u8; SIZE]);
    let before = allocations();
    assert_eq!(app.push_in_place(&mut owned).unwrap(), stream.len());
    assert_eq!(
        allocations() - before,
        expected as u64,
        "in-place applier allocated more than its scratch ({codec:?})"
    );
    assert!(app.into_target() == replica);
    assert!(replica[..SIZE / 2] == src[..SIZE / 2]);

    // The parallel applier, on every thread: accepting the header allocates its job pool and
    // starts its workers; after that, pushing (in pieces, the unconsumed tail pushed again),
    // decoding on the workers, applying, flushing and finishing allocate nothing.
    let header = 24 + u32::from_le_bytes(stream[16..20].try_into().unwrap()) as usize;
    for threads in [2, 4] {
        let mut app = ParallelApplier::new(dcfg(secret), vec![0u8; SIZE], threads);
        assert_eq!(app.push(&stream[..header]).unwrap(), header);
        let before = ALL_THREADS.load(Ordering::Relaxed);
        let (mut at, mut end) = (header, header);
        while at < stream.len() {
            end = (end + 300_000).min(stream.len());
            at += app.push(&stream[at..end]).unwrap();
        }
        app.flush().unwrap();
        app.finish().unwrap();
        assert_eq!(
            ALL_THREADS.load(Ordering::Relaxed) - before,
            0,
            "parallel applier allocated ({codec:?}, encrypted {}, threads {threads})",
            secret.is_some()
        );
        assert!(app.into_target() == replica);
    }
}

#[test]
fn no_allocation_per_record() {
    // Sanity: the counter sees allocations at all.
    let before = allocations();
    drop(std::hint::black_box(vec![0u8; 10]));
    assert_eq!(allocations() - before, 1);

    for codec in [Codec::Raw, Codec::Lz4] {
        for secret in [None, Some(b"alloc test secret".as_slice())] {
            for record_size in [4096, 65536, 1 << 20] {
                check(codec, secret, record_size);
            }
        }
    }
}
