//! Model check of the activity log's write/evict protocol with loom (`src/tracker/persist/
//! activity.rs`): every interleaving (up to the preemption bound) of writers admitting writes
//! to durably active regions with a group commit evicting regions.
//!
//! The invariant: a write that `begin` admitted (`Admission::Go`) to a region that is then
//! evicted has completed and marked before the evictor reads the region's dirty bits (after
//! `grace_period`), so the evicted bits (which go to the log record that drops the region)
//! hold it; a write that arrives too late is refused (`Admission::Wait`) and is not counted in
//! flight. The table's backward-shift deletion may hide an entry from a concurrent lookup
//! (a false "cold", which only sends the writer to the slow path), never show a region as hot
//! that is not.
//!
//! Run with: `RUSTFLAGS="--cfg loom" cargo test --release --test loom_activity`
//! (`.ci/run` does this with `LOOM_MAX_PREEMPTIONS=3`: 0.3 s; with no preemption bound, i.e.
//! every interleaving, the scenarios take about 45 s). Under loom there is no membarrier: the
//! writer's barrier is a real `fence(SeqCst)`.
//!
//! ## The model has teeth
//! Each of these deliberate breakages of `activity.rs` makes scenarios below fail (checked with
//! a temporary edit, `LOOM_MAX_PREEMPTIONS=3`, each found in under a second):
//! - `grace_period` with one epoch flip instead of two (`for _ in 0..1`):
//!   `a_write_begun_before_an_earlier_eviction_is_covered_by_the_next` and
//!   `a_write_to_a_moved_entry_racing_its_eviction_is_covered` fail ("block 9 was admitted to
//!   region 0 but is not in its eviction's bits [(0, 8)]"). The writer loads the epoch
//!   (parity 0), a whole first eviction flips it to 1 and finds parity 0 empty, the writer
//!   then counts its write under parity 0 and sees the region hot, and the second eviction,
//!   flipping 1 to 2, waits only for parity 1: it reads the region's bits before the write
//!   marked. The single-eviction scenarios pass with one flip: the second flip is needed only
//!   for a writer that loaded the epoch before an earlier grace period.
//! - No fence in the writer's `begin` (`writer_fence` a no-op): every scenario with a write
//!   to a victim fails (Dekker: the evictor's flag and the writer's count each go unseen by
//!   the other; the write is admitted and the grace period finds no count).
//! - `end_remote` with `Ordering::Relaxed`:
//!   `a_write_completed_on_another_thread_is_in_the_snapshot` fails (the evictor sees the
//!   count drop but not the mark).
//! - A refused write that keeps its count (`begin` without the `wrapping_sub` on `Wait`):
//!   "in-flight counts do not balance", or a grace period that never ends (loom: "Model
//!   exceeded maximum number of branches").
//! - `is_hot` ignoring `EVICTING`: `a_lookup_racing_a_backward_shift_never_sees_a_false_hot`
//!   ("the evicting region was seen hot") and every eviction scenario fail.
//!
//! Loom 0.7 does not order a plain store after a concurrent read-modify-write that read the
//! value before it (tokio-rs/loom#254): with `remove`'s plain stores, a writer's
//! `fetch_or(REF)` on a slot being shifted seemed to resurrect a moved entry (a false
//! counterexample: an RMW is atomic on real hardware and in C11). Under loom the table's
//! stores are therefore swaps (`Activity::set_entry`), which loom orders correctly.
#![cfg(loom)]

use std::sync::Arc;

use blockdelta::tracker::loom_activity::{region_words, ActivityModel};
use blockdelta::{Admission, Tracker, TrackerConfig};
use loom::thread;

const SECTOR: u64 = 512;
/// Regions of 16 KiB: 32 blocks, one live leaf word of the tracker.
const REGION_SHIFT: u32 = 14;
const REGION_BLOCKS: u64 = 1 << (REGION_SHIFT - 9);

fn tracker(regions: u64) -> Arc<Tracker> {
    Arc::new(
        Tracker::new(
            TrackerConfig::new(regions * REGION_BLOCKS * SECTOR)
                .granularity(SECTOR as u32)
                .start_clean(true),
        )
        .unwrap(),
    )
}

/// An activity table with `hot` durably active, and one claimed writer slot.
fn activity(hot: &[u64]) -> (Arc<ActivityModel>, u32) {
    let a = ActivityModel::new(REGION_SHIFT, 4, 1);
    for &r in hot {
        a.insert(r);
    }
    let slot = a.claim_slot().unwrap();
    (Arc::new(a), slot)
}

/// One eviction as the group commit does it: choose a victim (flag it evicting), grace
/// period, read its dirty bits, remove it from the table.
struct Eviction {
    victims: Vec<u64>,
    words: Vec<(u64, u64)>,
}

fn evict(a: &ActivityModel, t: &Tracker) -> Eviction {
    let victims = a.choose_victims(1);
    a.grace_period();
    let words = region_words(t, &victims, REGION_SHIFT);
    for &v in &victims {
        a.remove(v);
    }
    Eviction { victims, words }
}

fn spawn_evictor(
    a: &Arc<ActivityModel>,
    t: &Arc<Tracker>,
    n: usize,
) -> thread::JoinHandle<Vec<Eviction>> {
    let (a, t) = (Arc::clone(a), Arc::clone(t));
    thread::spawn(move || (0..n).map(|_| evict(&a, &t)).collect())
}

/// A write of `count` blocks from `block`: admitted (then written, marked and released) or
/// refused.
#[derive(Debug)]
struct Write {
    block: u64,
    count: u64,
    admitted: bool,
}

fn write(a: &ActivityModel, t: &Tracker, slot: u32, block: u64) -> Write {
    write_blocks(a, t, slot, block, 1)
}

fn write_blocks(a: &ActivityModel, t: &Tracker, slot: u32, block: u64, count: u64) -> Write {
    let (offset, len) = (block * SECTOR, count * SECTOR);
    let admitted = match a.begin(slot, offset, offset + len - 1).unwrap() {
        Admission::Go(token) => {
            // (the driver writes the blocks here)
            t.mark_write(offset, len).unwrap();
            a.end_local(token);
            true
        }
        // The write must not be submitted: nothing to mark, nothing to release.
        Admission::Wait(_) => false,
    };
    Write {
        block,
        count,
        admitted,
    }
}

fn has_block(words: &[(u64, u64)], block: u64) -> bool {
    words
        .iter()
        .any(|&(w, bits)| w == block / 64 && (bits >> (block % 64)) & 1 == 1)
}

/// Every admitted write to a region that was evicted is in that eviction's dirty bits (no
/// region is re-activated in these models, so each is evicted at most once), and the counts
/// balance: nothing is left in flight.
fn check(a: &ActivityModel, slot: u32, evictions: &[Eviction], writes: &[Write]) {
    for w in writes.iter().filter(|w| w.admitted) {
        for block in w.block..w.block + w.count {
            let region = block / REGION_BLOCKS;
            for e in evictions.iter().filter(|e| e.victims.contains(&region)) {
                assert!(
                    has_block(&e.words, block),
                    "block {block} was admitted to region {region} but is not in its \
                     eviction's bits {:?} (writes {writes:?})",
                    e.words
                );
            }
        }
    }
    for e in evictions {
        for &v in &e.victims {
            assert!(!a.is_active(v), "evicted region {v} is still in the table");
        }
    }
    assert_eq!(a.slot_in_flight(slot), 0, "in-flight counts do not balance");
}

/// Scenario 1: one write to a hot region against the eviction of that region.
#[test]
fn a_write_racing_an_eviction_is_in_the_snapshot_or_refused() {
    loom::model(|| {
        let t = tracker(1);
        let (a, slot) = activity(&[0]);
        let evictor = spawn_evictor(&a, &t, 1);
        let w = write(&a, &t, slot, 5);
        let evictions = evictor.join().unwrap();
        assert_eq!(evictions[0].victims, [0]);
        check(&a, slot, &evictions, &[w]);
    });
}

/// Scenario 1b: a write spanning two hot regions, one of which is evicted (the clock takes
/// either, depending on the use bits the write's lookups set): admitted only if both were
/// seen hot, and then its blocks in the victim are in the victim's bits.
#[test]
fn a_write_spanning_two_regions_racing_the_eviction_of_one() {
    loom::model(|| {
        let t = tracker(2);
        let (a, slot) = activity(&[0, 1]);
        let evictor = spawn_evictor(&a, &t, 1);
        let w = write_blocks(&a, &t, slot, REGION_BLOCKS - 1, 2);
        let evictions = evictor.join().unwrap();
        check(&a, slot, &evictions, &[w]);
    });
}

/// Scenario 2: a writer writes twice to region 0 while the group commit evicts twice (regions
/// 0 and 2, in an order that depends on the use bits the writes set: once the first write set
/// region 0's, the clock takes region 2 first). The second write may load the epoch before the first eviction flips it and count itself
/// under that old parity after the first eviction's waits: only the second eviction's second
/// flip waits for it. With one flip per grace period this scenario fails (see the module doc).
#[test]
fn a_write_begun_before_an_earlier_eviction_is_covered_by_the_next() {
    loom::model(|| {
        let t = tracker(3);
        let (a, slot) = activity(&[0, 2]);
        let evictor = spawn_evictor(&a, &t, 2);
        let writes = [write(&a, &t, slot, 3), write(&a, &t, slot, 9)];
        let evictions = evictor.join().unwrap();
        let mut evicted: Vec<u64> = evictions.iter().flat_map(|e| e.victims.clone()).collect();
        evicted.sort_unstable();
        assert_eq!(evicted, [0, 2]);
        check(&a, slot, &evictions, &writes);
    });
}

/// Scenario 3: writes to a region that is not evicted are always admitted, and the grace
/// period (which also waits for them while they are in its old parity) still returns: a
/// grace period that never ended would exceed loom's branch limit and fail the model.
#[test]
fn writes_to_another_region_are_unaffected_and_never_block_the_grace_period() {
    loom::model(|| {
        let t = tracker(3);
        let (a, slot) = activity(&[0, 2]);
        let evictor = spawn_evictor(&a, &t, 1);
        let writes = [
            write(&a, &t, slot, 2 * REGION_BLOCKS + 1),
            write(&a, &t, slot, 2 * REGION_BLOCKS + 2),
        ];
        let evictions = evictor.join().unwrap();
        // Region 0 is at table index 0 with its use bit clear: the clock takes it first.
        assert_eq!(evictions[0].victims, [0]);
        assert!(writes.iter().all(|w| w.admitted), "{writes:?}");
        assert!(a.is_hot(2));
        check(&a, slot, &evictions, &writes);
    });
}

/// Regions 0, 22 and 27 share table index 0 (16 entries), region 12 starts at index 1: after
/// inserting them in this order they sit at indexes 0, 1, 2, 3, and removing region 0 shifts
/// every one of them back by one.
const COLLIDING: [u64; 4] = [0, 22, 27, 12];
/// Not in the table, starting at index 0: a lookup walks the whole cluster.
const ABSENT: u64 = 54;

fn check_collisions(a: &ActivityModel) {
    for r in [22, 27, ABSENT] {
        assert_eq!(
            a.home(r),
            a.home(0),
            "region {r} no longer collides with region 0"
        );
    }
    assert_eq!(a.home(12), a.home(0) + 1);
}

/// Scenario 4: backward-shift deletion against concurrent lookups of colliding keys: the
/// evicting region and an absent key are never seen hot (the moved entries may be missed).
#[test]
fn a_lookup_racing_a_backward_shift_never_sees_a_false_hot() {
    loom::model(|| {
        let (a, _) = activity(&COLLIDING);
        check_collisions(&a);
        assert_eq!(a.choose_victims(1), [0]);
        let reader = {
            let a = Arc::clone(&a);
            thread::spawn(move || {
                assert!(!a.is_hot(0), "the evicting region was seen hot");
                assert!(!a.is_hot(ABSENT), "an absent region was seen hot");
                // May be missed while it moves (a false cold); never a wrong state.
                let _ = a.is_hot(12);
                assert!(!a.is_hot(ABSENT), "an absent region was seen hot");
            })
        };
        a.remove(0);
        reader.join().unwrap();
        assert!(!a.is_active(0));
        for r in [22, 27, 12] {
            assert!(a.is_hot(r), "region {r} was lost by the shift");
        }
    });
}

/// Scenario 4b: the writer writes to regions that the first eviction's deletion moves; the
/// second eviction then evicts one of them (the clock's choice depends on the writer's use
/// bits). A write that saw the moved entry's stale copy hot must still be covered.
#[test]
fn a_write_to_a_moved_entry_racing_its_eviction_is_covered() {
    loom::model(|| {
        let t = tracker(28);
        let (a, slot) = activity(&COLLIDING[..3]);
        check_collisions(&a);
        let evictor = spawn_evictor(&a, &t, 2);
        let writes = [
            write(&a, &t, slot, 27 * REGION_BLOCKS),
            write(&a, &t, slot, 22 * REGION_BLOCKS),
        ];
        let evictions = evictor.join().unwrap();
        // Nothing writes region 0: the clock takes it first.
        assert_eq!(evictions[0].victims, [0]);
        check(&a, slot, &evictions, &writes);
    });
}

/// Scenario 5: the write is completed (marked and released) on another thread through the
/// remote counter, racing the eviction of its region.
#[test]
fn a_write_completed_on_another_thread_is_in_the_snapshot() {
    loom::model(|| {
        let t = tracker(1);
        let (a, slot) = activity(&[0]);
        let evictor = spawn_evictor(&a, &t, 1);
        let block = 5;
        let offset = block * SECTOR;
        let admission = a.begin(slot, offset, offset + SECTOR - 1).unwrap();
        let completer = match admission {
            Admission::Go(token) => {
                let (a, t) = (Arc::clone(&a), Arc::clone(&t));
                Some(thread::spawn(move || {
                    t.mark_write(offset, SECTOR).unwrap();
                    a.end_remote(token);
                }))
            }
            Admission::Wait(_) => None,
        };
        let evictions = evictor.join().unwrap();
        let admitted = completer.is_some();
        if let Some(c) = completer {
            c.join().unwrap();
        }
        assert_eq!(evictions[0].victims, [0]);
        let w = Write {
            block,
            count: 1,
            admitted,
        };
        check(&a, slot, &evictions, &[w]);
    });
}
