//! Zero allocations per frame in the parallel applier, on every thread: once the stream header
//! is accepted (which allocates the job pool and starts the workers), pushing, decoding on the
//! workers, applying, flushing and finishing allocate nothing. The counting allocator here is
//! global (not per thread, as in `tests/stream_alloc.rs`), since the workers decode; this binary
//! holds this one test so that nothing else allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use blockdelta::{
    Codec, DecoderConfig, EncodeCursor, Encoder, EncoderConfig, Extent, GenerationId,
    ParallelApplier, Secret,
};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; counting is one atomic add.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

const SIZE: usize = 8 << 20;

fn stream(codec: Codec, secret: Option<&[u8]>, record_size: u32) -> (Vec<u8>, Vec<u8>, usize) {
    let mut x = 7u32;
    let disk: Vec<u8> = (0..SIZE)
        .map(|i| match (i >> 16) % 3 {
            0 => 0,
            1 => (i / 100) as u8,
            _ => {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            }
        })
        .collect();
    let mut cfg = EncoderConfig::new([1; 16], GenerationId([2; 16]), 1, 2, SIZE as u64);
    cfg.compression = codec;
    cfg.record_size = record_size;
    cfg.secret = secret.map(|s| Secret::new(s).unwrap());
    let mut enc = Encoder::new(cfg).unwrap();
    let mut frame = vec![0u8; enc.max_frame_len()];
    let mut out = Vec::new();
    let header = enc.write_header(&mut frame).unwrap();
    out.extend_from_slice(&frame[..header]);
    let mut cursor = EncodeCursor::default();
    let extents = [Extent::new(0, SIZE as u64)];
    let mut src = disk.clone();
    while let Some(n) = enc
        .next_frame(&extents, &mut cursor, &mut src, &mut frame)
        .unwrap()
    {
        out.extend_from_slice(&frame[..n]);
    }
    let n = enc.finish(&mut frame).unwrap();
    out.extend_from_slice(&frame[..n]);
    (out, disk, header)
}

#[test]
fn no_allocation_per_frame_on_any_thread() {
    // Sanity: the counter sees allocations at all.
    let before = allocations();
    drop(std::hint::black_box(vec![0u8; 10]));
    assert_eq!(allocations() - before, 1);

    for codec in [Codec::Raw, Codec::Lz4] {
        for secret in [None, Some(b"alloc test secret".as_slice())] {
            for record_size in [4096, 1 << 20] {
                let (s, disk, header) = stream(codec, secret, record_size);
                for threads in [2, 4] {
                    let mut cfg = DecoderConfig::new();
                    cfg.secret = secret.map(|k| Secret::new(k).unwrap());
                    let mut app = ParallelApplier::new(cfg, vec![0u8; SIZE], threads);
                    // The header: the pool and the workers.
                    assert_eq!(app.push(&s[..header]).unwrap(), header);
                    let before = allocations();
                    // Every frame, in pieces, with the unconsumed tail pushed again.
                    let (mut at, mut end) = (header, header);
                    while at < s.len() {
                        end = (end + 300_000).min(s.len());
                        at += app.push(&s[at..end]).unwrap();
                    }
                    app.flush().unwrap();
                    app.finish().unwrap();
                    assert_eq!(
                        allocations() - before,
                        0,
                        "{codec:?}, encrypted {}, records {record_size}, threads {threads}",
                        secret.is_some()
                    );
                    assert!(app.into_target() == disk);
                }
            }
        }
    }
}
