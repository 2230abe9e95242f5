//! Zero allocations after construction: mark, take, cursor reads, commit, abort, resize,
//! mark_all, adopt_lineage and statistics reuse what `Tracker::new` allocated. Proven with a counting global
//! allocator that counts the allocations made by the thread under test (the test harness's own
//! threads allocate at times of their choosing and are not counted). The activity log's C write
//! path (a writer handle's begin of an active region and complete, errors included) too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use blockdelta::{Extent, GenerationId, Tracker, TrackerConfig};

struct Counting;
thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    // Per thread: the two tests run at once, and one global count reset by one test in the
    // middle of the other's region lost the other's allocations (CI saw a tracker's
    // construction counted as 0).
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

/// Counts one allocation if this thread is counting.
fn count() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: defers every operation to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counted<R>(f: impl FnOnce() -> R) -> (R, usize) {
    ALLOCS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (r, ALLOCS.with(Cell::get))
}

#[test]
fn no_allocation_after_construction() {
    const GIB: u64 = 1 << 30;
    let tracker = Tracker::new(
        TrackerConfig::new(4 * GIB)
            .granularity(4096)
            .capacity(8 * GIB)
            .start_clean(true),
    )
    .unwrap();
    let mut out = [Extent::default(); 64];

    let (dirty, allocs) = counted(|| {
        let mut dirty = 0;
        for round in 0..5u64 {
            for i in 0..10_000u64 {
                let off = (i * 7919 * 4096 + round * 512) % (4 * GIB - 70_000);
                tracker.mark_write(off, 4096 + (i % 17) * 4096).unwrap();
                if i % 10 == 0 {
                    tracker.mark_discard(off, 512).unwrap();
                }
                if i % 10 == 5 {
                    // Whole blocks: discard bits through take, abort and commit.
                    tracker.mark_discard(off & !4095, 3 * 4096).unwrap();
                }
            }
            let err = tracker.mark_write(4 * GIB, 1).unwrap_err(); // error path too
            assert!(matches!(err, blockdelta::TrackerError::OutOfRange { .. }));
            let info = tracker.take().unwrap();
            let mut cursor = info.cursor();
            loop {
                let n = tracker.extents(&mut cursor, &mut out).unwrap();
                if n == 0 {
                    break;
                }
                dirty += out[..n].iter().map(|e| e.len).sum::<u64>();
            }
            if round % 2 == 0 {
                tracker.abort(info.sequence).unwrap();
            } else {
                tracker.commit(info.generation, info.sequence).unwrap();
            }
            let _ = tracker.stats();
            let _ = tracker.memory_usage();
            if round == 3 {
                // A store's lineage, with a checkpoint taken: folded back, extents marked.
                let _ = tracker.take().unwrap();
                let store = [Extent::new(GIB, 3 * 4096), Extent::discard(7, 9000)];
                let g = GenerationId([3; 16]);
                tracker.adopt_lineage(g, 100, &store).unwrap();
                let bad = [Extent::new(4 * GIB, 1)];
                assert!(tracker.adopt_lineage(g, 100, &bad).is_err()); // error paths too
                assert!(tracker.adopt_lineage(g, u64::MAX, &[]).is_err());
            }
        }
        tracker.resize(8 * GIB).unwrap();
        tracker.resize(2 * GIB).unwrap();
        tracker.mark_all();
        let info = tracker.take().unwrap();
        tracker.commit(info.generation, info.sequence).unwrap();
        dirty
    });
    assert!(dirty > 0, "the workload really marked blocks");
    assert_eq!(
        allocs, 0,
        "tracker operations allocated {allocs} times after construction"
    );

    // The counter itself works: constructing a tracker allocates.
    let (_t, allocs) = counted(|| Tracker::new(TrackerConfig::new(GIB)).unwrap());
    assert!(allocs > 0);
}

/// The activity log's write path through the C ABI: `blockdelta_tracker_writer_begin` of an
/// active region and `_complete` (and their error paths, which record a message) allocate
/// nothing, as the Rust `ActivityWriter` does not.
#[test]
fn the_c_writer_hot_path_allocates_nothing() {
    use blockdelta::ffi::result::blockdelta_result as R;
    use blockdelta::ffi::tracker::*;

    let dir = tempfile::tempdir().unwrap();
    let path = std::ffi::CString::new(dir.path().join("t").to_str().unwrap()).unwrap();
    let config = blockdelta_activity_log_config {
        region_size: 64 << 10,
        active_regions: 4,
        ..Default::default()
    };
    let (mut t, mut reason, mut w) = (std::ptr::null_mut(), 0, std::ptr::null_mut());
    let id = [7u8; 16];
    let rc = blockdelta_tracker_load_with_log(
        path.as_ptr(),
        1 << 24,
        512,
        4096,
        0,
        0,
        id.as_ptr(),
        std::ptr::null(),
        0,
        0,
        &config,
        &mut t,
        &mut reason,
    );
    assert_eq!(rc, R::Ok);
    assert_eq!(blockdelta_tracker_writer_new(t, &mut w), R::Ok);
    let (mut admitted, mut token, mut ticket) = (false, 0, 0);
    // Activate the first region (a group commit allocates nothing either, but it syncs).
    loop {
        let rc =
            blockdelta_tracker_writer_begin(w, 0, 4096, &mut admitted, &mut token, &mut ticket);
        assert_eq!(rc, R::Ok);
        if admitted {
            break;
        }
        assert_eq!(blockdelta_tracker_wait(t, ticket), R::Ok);
    }
    assert_eq!(blockdelta_tracker_writer_complete(w, token, 0, 4096), R::Ok);

    let (n, allocs) = counted(|| {
        let mut n = 0;
        for i in 0..10_000u64 {
            let off = (i * 4096) % (64 << 10);
            let rc = blockdelta_tracker_writer_begin(
                w,
                off,
                4096,
                &mut admitted,
                &mut token,
                &mut ticket,
            );
            assert!(rc == R::Ok && admitted);
            let rc = if i % 7 == 0 {
                blockdelta_tracker_writer_complete_discard(w, token, off, 512)
            } else {
                blockdelta_tracker_writer_complete(w, token, off, 4096)
            };
            assert_eq!(rc, R::Ok);
            n += 1;
        }
        // Error paths: out of range, a token of a write told to wait.
        let rc =
            blockdelta_tracker_writer_begin(w, 1 << 24, 1, &mut admitted, &mut token, &mut ticket);
        assert_eq!(rc, R::TrackerOutOfRange);
        assert_eq!(
            blockdelta_tracker_writer_complete(w, 0, 0, 1),
            R::InvalidArgument
        );
        n
    });
    assert_eq!(n, 10_000);
    assert_eq!(allocs, 0, "the C write path allocated {allocs} times");
    blockdelta_tracker_writer_free(w);
    assert_eq!(blockdelta_tracker_close(t), R::Ok);
}
