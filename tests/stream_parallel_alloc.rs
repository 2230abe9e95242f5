//! `ParallelEncoder` with worker threads allocates nothing while it encodes: every buffer is
//! made in `new`. A global counter (every thread, this binary holds this one test only) counts
//! the allocations of a whole extent list's frames, after a first list has run (each thread's
//! first wait registers it with the lock library, once).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use blockdelta::{Codec, EncoderConfig, Extent, GenerationId, ParallelEncoder, Secret};

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

const SIZE: usize = 16 << 20;

#[test]
fn no_allocation_while_encoding_on_threads() {
    let mut x: u32 = 11;
    let mut src: Vec<u8> = (0..SIZE)
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
    for (codec, secret) in [(Codec::Lz4, true), (Codec::Raw, false), (Codec::Lz4, false)] {
        for threads in [2, 3] {
            let mut cfg = EncoderConfig::new([1; 16], GenerationId([2; 16]), 1, 2, SIZE as u64);
            cfg.compression = codec;
            if secret {
                cfg.secret = Some(Secret::new(b"alloc test secret").unwrap());
            }
            let mut enc = ParallelEncoder::new(cfg, threads).unwrap();
            let mut frame = vec![0u8; enc.max_frame_len()];
            enc.write_header(&mut frame).unwrap();
            let first = [Extent::new(0, SIZE as u64 / 4)];
            let second = [
                Extent::new(SIZE as u64 / 4, 4096),
                Extent::new(SIZE as u64 / 4 + 8192, SIZE as u64 / 2),
                Extent::new(SIZE as u64 * 7 / 8, SIZE as u64 / 8),
            ];
            enc.set_extents(&first).unwrap();
            let mut sum = 0usize;
            while let Some(f) = enc.next_frames(&mut src).unwrap() {
                sum += f.len();
            }
            // The list's copy may grow; set it before counting.
            enc.set_extents(&second).unwrap();
            let before = ALLOCATIONS.load(Ordering::SeqCst);
            while let Some(n) = enc.next_frame(&mut src, &mut frame).unwrap() {
                sum += n;
            }
            let n = enc.finish(&mut frame).unwrap();
            let allocated = ALLOCATIONS.load(Ordering::SeqCst) - before;
            assert!(sum + n > SIZE / 4);
            assert_eq!(
                allocated, 0,
                "{codec:?} encrypted {secret}, {threads} threads"
            );
        }
    }
}
