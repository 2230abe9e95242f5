//! Memory of the replica store on object storage, against the bounds the documentation
//! promises: a whole ingest at most `(parallel + 2) * part_size + 8 MiB` above where it
//! started (the upload's parts in flight and the one filling, the HTTP client's hold on a
//! part being sent, the ingest's own buffers: measured 10.1, 13.1 and 19.2 MiB above
//! `(parallel + 1) * part_size` for parts of 5, 10 and 20 MiB, whatever `parallel`), and a
//! streamed read at most `2 * parallel` pieces of `part_size` (in flight, or waiting for the
//! reader) plus 4 MiB. A global allocator tracks the bytes
//! live on every thread and their peak; this binary has one test, so nothing else allocates
//! meanwhile. Against the real servers, as `tests/replica_object.rs`:
//!
//! ```text
//! .ci/object-servers start && . "$(.ci/object-servers dir)/env"
//! cargo test --release --features object-store --test replica_object_memory
//! ```
#![cfg(feature = "object-store")]

#[path = "common/source.rs"]
mod source;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

use blockdelta::replica::{Store, StoreConfig};
use blockdelta::{Codec, EncoderConfig, Extent, GenerationId};
use source::Rng;

struct Tracking;

static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n as i64, Ordering::Relaxed) + n as i64;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards to the system allocator; the bookkeeping is two atomics.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        grew(new_size);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// Runs `f`, returning its result and the peak of live bytes above what was live before.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, i64) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = f();
    (r, PEAK.load(Ordering::Relaxed) - base)
}

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| {
        panic!("{key} is not set: run `.ci/object-servers start` and source its env file")
    })
}

const MIB: u64 = 1 << 20;
const DISK: u64 = 96 * MIB;
const PART: u64 = 5 * MIB;
const PARALLEL: u64 = 2;

#[test]
fn uploads_and_reads_stay_within_their_documented_memory() {
    let unique = format!(
        "memory-{}-{}",
        std::process::id(),
        GenerationId::random().0[0]
    );
    let common = [
        ("part_size".to_string(), PART.to_string()),
        ("parallel".to_string(), PARALLEL.to_string()),
    ];
    let mut targets = vec![(
        format!("s3://{}/{unique}", env("BLOCKDELTA_TEST_S3_BUCKET")),
        vec![
            ("endpoint".to_string(), env("BLOCKDELTA_TEST_S3_ENDPOINT")),
            ("allow_http".to_string(), "true".to_string()),
        ],
    )];
    targets.push((
        format!("az://{}/{unique}", env("BLOCKDELTA_TEST_AZURE_CONTAINER")),
        vec![("use_emulator".to_string(), "true".to_string())],
    ));
    // 96 MiB of incompressible data, sent raw: the pack holds what the stream carries.
    let mut disk = vec![0u8; DISK as usize];
    Rng(5).fill(&mut disk);
    let disk_id = *b"object-memory-dk";
    let mut cfg = EncoderConfig::new(disk_id, GenerationId([3; 16]), 0, 1, DISK);
    cfg.compression = Codec::Raw;
    cfg.zero_detection = false;
    let stream =
        blockdelta::stream::encode_to_vec(cfg, &[Extent::new(0, DISK)], &mut disk.clone()).unwrap();
    let mut buf = vec![1u8; DISK as usize];
    for (url, mut o) in targets {
        o.extend(common.iter().cloned());
        let o: Vec<(&str, &str)> = o.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let store = Store::create_url(&url, &o, StoreConfig::new(disk_id)).unwrap();
        // The upload: parts in flight and the one filling, besides the ingest's own state
        // (a record of the stream, its index).
        let (id, up) = peak_during(|| {
            let mut ing = store.ingest(None).unwrap();
            for c in stream.chunks(MIB as usize) {
                ing.push(c).unwrap();
            }
            ing.finish().unwrap().point.id
        });
        let up_bound = ((PARALLEL + 2) * PART + 8 * MIB) as i64;
        // The read: pieces in flight or waiting for the reader, into the caller's buffer.
        let ((), read) = peak_during(|| store.read_at(id, 0, &mut buf).unwrap());
        let read_bound = (2 * PARALLEL * PART + 4 * MIB) as i64;
        assert!(buf == disk, "{url}: the point differs");
        eprintln!(
            "{url}: ingest of {} MiB peaked at {:.1} MiB above its start (bound {:.1} MiB), \
             read at {:.1} MiB (bound {:.1} MiB)",
            DISK / MIB,
            up as f64 / MIB as f64,
            up_bound as f64 / MIB as f64,
            read as f64 / MIB as f64,
            read_bound as f64 / MIB as f64
        );
        assert!(up <= up_bound, "{url}: the ingest peaked at {up} bytes");
        assert!(read <= read_bound, "{url}: the read peaked at {read} bytes");
        drop(store);
    }
}
