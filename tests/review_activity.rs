//! Adversarial review of the activity log (issue 10 §2). Each test demonstrates one finding;
//! see the report on branch `review-al`.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

#[path = "common/activity.rs"]
mod common;

use blockdelta::tracker::{ReadFailure, TrackerStorage};
use blockdelta::{
    ActivityLogConfig, Admission, LoadOutcome, PersistError, PersistOptions, PersistentTracker,
    TrackerConfig,
};
use common::{blocks_of, config, write, BLOCK, DISK, REGION};

const ID: [u8; 16] = *b"review-activity!";

fn options(slots: u32) -> PersistOptions {
    PersistOptions::new(ID).activity_log(
        ActivityLogConfig::default()
            .region_size(REGION)
            .active_regions(slots)
            .writers(8),
    )
}

/// A storage whose log writes reach the "disk" at once (the page cache wrote them back), and
/// whose `sync_log` can be made to fail: a failed fsync says nothing about whether the bytes
/// are durable.
#[derive(Clone)]
struct Store {
    name: PathBuf,
    state: Arc<Mutex<Option<Vec<u8>>>>,
    log: Arc<Mutex<Vec<u8>>>,
    fail_sync: Arc<AtomicBool>,
}

impl Store {
    fn new() -> Store {
        Store {
            name: PathBuf::from("review.tracker"),
            state: Arc::default(),
            log: Arc::default(),
            fail_sync: Arc::default(),
        }
    }
}

impl TrackerStorage for Store {
    fn name(&self) -> &Path {
        &self.name
    }
    fn lock(&self) -> Result<Box<dyn std::any::Any + Send + Sync>, PersistError> {
        Ok(Box::new(()))
    }
    fn read_state(&self, _max: u64) -> Result<Vec<u8>, ReadFailure> {
        self.state
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| ReadFailure::Io(io::ErrorKind::NotFound.into()))
    }
    fn replace_state(&self, bytes: &[u8]) -> Result<(), PersistError> {
        *self.state.lock().unwrap() = Some(bytes.to_vec());
        Ok(())
    }
    fn read_log(&self, _max: u64) -> Result<Vec<u8>, ReadFailure> {
        Ok(self.log.lock().unwrap().clone())
    }
    fn write_log(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut l = self.log.lock().unwrap();
        let end = offset as usize + bytes.len();
        if l.len() < end {
            l.resize(end, 0);
        }
        l[offset as usize..end].copy_from_slice(bytes);
        Ok(())
    }
    fn sync_log(&self) -> io::Result<()> {
        if self.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::other("EIO on fsync"));
        }
        Ok(())
    }
    fn create_log(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Opens on `store`, takes and commits the first (full) checkpoint: every block clean.
fn open_clean(store: &Store, slots: u32) -> PersistentTracker {
    let (pt, _) =
        PersistentTracker::open_on(Box::new(store.clone()), config(), options(slots)).unwrap();
    let (cp, _) = blocks_of(&pt);
    pt.commit(cp.generation, cp.sequence).unwrap();
    pt
}

/// Finding 1. A group commit whose log fsync fails un-flags its victims, so writers admit
/// writes to them again. But the record's bytes may be durable all the same (fsync failing
/// says nothing about the write), and that record says the victims were evicted with the dirty
/// bits they had before those writes: after a crash the writes are lost.
#[test]
fn a_failed_log_fsync_never_reopens_the_victims_to_writes() {
    let store = Store::new();
    let pt = open_clean(&store, 1);
    let w = pt.writer().unwrap();
    write(&w, 0, BLOCK); // region 0 active, block 0 dirty
    store.fail_sync.store(true, Ordering::SeqCst);
    // Region 1 is cold: its group commit evicts region 0 and fails at the fsync.
    let Admission::Wait(t) = w.begin(REGION, BLOCK).unwrap() else {
        panic!("region 1 is cold");
    };
    assert!(w.wait(t).is_err());
    // A write to the victim after the failure: it must not be admitted (or, if it is, it
    // must survive a crash).
    let mut admitted = false;
    if let Ok(Admission::Go(token)) = w.begin(5 * BLOCK, BLOCK) {
        w.complete(token, 5 * BLOCK, BLOCK).unwrap();
        admitted = true;
    }
    // Crash.
    drop(w);
    drop(pt);
    let (pt, outcome) =
        PersistentTracker::open_on(Box::new(store.clone()), config(), options(1)).unwrap();
    assert!(
        matches!(outcome, LoadOutcome::Recovered { .. }),
        "{outcome:?}"
    );
    let (_, got) = blocks_of(&pt);
    assert!(got.contains(&0));
    assert!(
        !admitted || got.contains(&5),
        "a write admitted after the failed fsync to an evicted region was lost: {got:?}"
    );
}

/// Finding 2. `begin(disk_size, 0)` (an empty write at the disk end, documented as admitted)
/// activates the region past the last one. The log record and the next active state then
/// name a region past the capacity, which recovery refuses: the next crash is a full reset.
#[test]
fn an_empty_write_at_the_disk_end_does_not_turn_a_crash_into_a_reset() {
    let store = Store::new();
    let pt = open_clean(&store, 4);
    let w = pt.writer().unwrap();
    write(&w, 0, 0);
    write(&w, DISK, 0);
    write(&w, 3 * BLOCK, BLOCK);
    drop(w);
    drop(pt); // crash
    let (pt, outcome) =
        PersistentTracker::open_on(Box::new(store.clone()), config(), options(4)).unwrap();
    assert!(
        matches!(outcome, LoadOutcome::Recovered { .. }),
        "an empty write made the crash a full resync: {outcome:?}"
    );
    let (_, got) = blocks_of(&pt);
    assert!(got.contains(&3));
    // And empty writes activate nothing: the excess is at most region 0's blocks.
    assert!(got.len() as u64 <= REGION / BLOCK, "{}", got.len());
}

/// Finding 3. The clock gives up after three sweeps; writers that keep touching the active
/// regions keep setting their use bits, so it can return fewer victims than the batch needs.
/// The batch is activated all the same: more regions active than `active_regions` (the excess
/// bound broken, an active state the decoder refuses as "count does not match"), and the next
/// group commit computes `slots - active.len()` with active > slots (an overflow panic in a
/// debug build, an unbounded active set in release).
#[test]
fn hot_writers_never_push_the_active_set_past_its_size() {
    const SLOTS: u32 = 1;
    let store = Store::new();
    let pt = Arc::new(open_clean(&store, SLOTS));
    let stop = Arc::new(AtomicBool::new(false));
    let hammered = Arc::new(AtomicU64::new(0));
    let hammer = {
        let w = pt.writer().unwrap();
        let (stop, hammered) = (Arc::clone(&stop), Arc::clone(&hammered));
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Regions 0 and 1, whichever is active: its use bit is set again and again.
                let off = (i % 2) * REGION;
                i += 1;
                if let Ok(Admission::Go(t)) = w.begin(off, BLOCK) {
                    w.complete(t, off, BLOCK).unwrap();
                    hammered.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let w = pt.writer().unwrap();
    let mut worst = 0;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for round in 0..60_000u64 {
            // Activate the other region: the active one must be evicted.
            let off = (round % 2) * REGION;
            match w.begin(off, BLOCK).unwrap() {
                Admission::Go(t) => w.complete(t, off, BLOCK).unwrap(),
                Admission::Wait(_) => pt.flush().unwrap(),
            }
            worst = worst.max(pt.activity_stats().unwrap().active);
            if worst > u64::from(SLOTS) {
                break;
            }
        }
    }));
    stop.store(true, Ordering::Relaxed);
    hammer.join().unwrap();
    assert!(hammered.load(Ordering::Relaxed) > 0);
    assert!(result.is_ok(), "a group commit panicked");
    assert!(
        worst <= u64::from(SLOTS),
        "{worst} regions active with active_regions = {SLOTS}"
    );
}

/// Finding 4 (fixed by refusing: `ActivityWriter::wait` returns `WritesInFlight`). A thread that has an admitted write in flight and blocks in `wait`
/// for a cold region deadlocks when the group commit must evict: the grace period waits for
/// every writer's in-flight count of both parities to drain, including the waiting thread's
/// own write, whose completion that thread would process. Every single-threaded driver with
/// more than one write in flight (an io_uring loop, the "32 in flight from 4 threads")
/// hits it once the log is full. Fix: evict only regions with no admitted write (per-region
/// counts, DRBD's refcount) or document and enforce that `wait` is only called with no write
/// of any writer in flight that the caller must complete, e.g. `wait` returning an error when
/// its own slot has writes in flight, and drivers using `is_durable` + `flush` elsewhere.
#[test]
fn waiting_with_an_own_write_in_flight_does_not_deadlock() {
    let store = Store::new();
    let pt = Arc::new(open_clean(&store, 1));
    let w = pt.writer().unwrap();
    write(&w, 0, BLOCK);
    let Admission::Go(in_flight) = w.begin(BLOCK, BLOCK).unwrap() else {
        panic!("region 0 is hot");
    };
    let completer = w.completer();
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        // The same driver thread: a second write, to a cold region.
        let Admission::Wait(ticket) = w.begin(REGION, BLOCK).unwrap() else {
            panic!("region 1 is cold");
        };
        let r = w.wait(ticket);
        // Fixed by refusing: the writer's own write is in flight.
        assert!(
            matches!(r, Err(PersistError::WritesInFlight { writes: 1 })),
            "{r:?}"
        );
        tx.send(()).unwrap();
        drop(w);
    });
    let done = rx.recv_timeout(Duration::from_secs(5));
    // Unblock it either way, so that the test ends.
    completer.complete(in_flight, BLOCK, BLOCK).unwrap();
    t.join().unwrap();
    assert!(
        done.is_ok(),
        "wait() with the caller's own write in flight deadlocked"
    );
}

/// Finding 5. A write spanning more regions than `active_regions` can never be
/// admitted: the batch is truncated to the slots, and each retry evicts what the last one
/// activated. With `active_regions = 1`, any write crossing a region boundary livelocks
/// in `write`/`wait` forever. Fix: refuse such a write at `begin` with a distinct error (or
/// refuse configurations with fewer slots than the largest write can span), instead of
/// looping.
#[test]
fn a_write_spanning_more_regions_than_slots_is_refused_not_livelocked() {
    let store = Store::new();
    let pt = open_clean(&store, 1);
    let w = pt.writer().unwrap();
    let mut admitted = false;
    for _ in 0..100 {
        match w.begin(REGION - BLOCK, 2 * BLOCK) {
            Ok(Admission::Go(t)) => {
                w.complete(t, REGION - BLOCK, 2 * BLOCK).unwrap();
                admitted = true;
                break;
            }
            Ok(Admission::Wait(t)) => w.wait(t).unwrap(),
            Err(PersistError::BadActivityLog { .. }) => {
                admitted = true; // a refusal is an answer too
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        admitted,
        "100 group commits and the write is still not admitted"
    );
}

/// Finding 6. `Tracker::resize` marks a grown range dirty only in memory, and never rewrites
/// the state file. Shrink then grow back to the recorded size, crash: the state file's
/// geometry matches, so the recovery is trusted, but the grown range (whose contents the
/// replica does not have) was clean. Fixed by `PersistentTracker::resize`, which records the
/// new geometry and dirty set at once (a driver with a log resizes through it).
#[test]
fn a_shrink_and_grow_before_a_crash_keeps_the_grown_blocks_dirty() {
    let store = Store::new();
    let pt = open_clean(&store, 4);
    pt.resize(DISK / 2).unwrap();
    pt.resize(DISK).unwrap();
    drop(pt); // crash
    let (pt, outcome) =
        PersistentTracker::open_on(Box::new(store.clone()), config(), options(4)).unwrap();
    if outcome.is_reset() {
        return; // a reset is safe
    }
    let (_, got) = blocks_of(&pt);
    let grown: BTreeSet<u64> = (DISK / 2 / BLOCK..DISK / BLOCK).collect();
    assert!(
        grown.is_subset(&got),
        "the grown range is clean after the crash: {} of {} blocks dirty",
        got.len(),
        grown.len()
    );
}

/// Finding 7. A writer dropped with a write in flight keeps its slot (right: the grace period
/// must go on counting the write), but nothing ever frees it once a completer has released
/// the write: the slot is lost for the tracker's life, and after `writers` such drops no
/// writer can be made (`TooManyWriters`).
#[test]
fn a_slot_kept_for_a_write_in_flight_is_freed_once_it_completed() {
    let store = Store::new();
    let (pt, _) = PersistentTracker::open_on(
        Box::new(store.clone()),
        config(),
        PersistOptions::new(ID).activity_log(
            ActivityLogConfig::default()
                .region_size(REGION)
                .active_regions(4)
                .writers(1),
        ),
    )
    .unwrap();
    let w = pt.writer().unwrap();
    write(&w, 0, BLOCK);
    let Admission::Go(t) = w.begin(0, BLOCK).unwrap() else {
        panic!("region 0 is hot");
    };
    let completer = w.completer();
    drop(w); // the driver's thread ends; the write completes elsewhere
    completer.complete(t, 0, BLOCK).unwrap();
    drop(completer);
    assert!(
        pt.writer().is_ok(),
        "the slot of a writer whose writes all completed is never freed"
    );
}

/// Finding 8. `log_limit` has no upper bound, but recovery reads at most 1 GiB plus one
/// record of the log: with a limit above 1 GiB, a log that grew past 1 GiB (the file is never
/// truncated either) makes the next crash a full reset ("larger than any log").
#[test]
fn a_log_limit_above_what_recovery_reads_is_refused_or_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.tracker");
    let opts = PersistOptions::new(ID).activity_log(
        ActivityLogConfig::default()
            .region_size(REGION)
            .active_regions(4)
            .log_limit(2 << 30),
    );
    let (pt, _) = match PersistentTracker::open(&path, config(), opts) {
        Ok(x) => x,
        Err(PersistError::BadActivityLog { .. }) => return, // refused: fixed
        Err(e) => panic!("{e}"),
    };
    let (cp, _) = blocks_of(&pt);
    pt.commit(cp.generation, cp.sequence).unwrap();
    let w = pt.writer().unwrap();
    write(&w, 0, BLOCK);
    drop(w);
    drop(pt); // crash
              // The log as a run with this limit leaves it after 1 GiB of group commits (sparse here:
              // the tail past the current log's records is never read as records of this log).
    let log = dir.path().join("disk.tracker.al");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len((1 << 30) + (1 << 20))
        .unwrap();
    let (_pt, outcome) = PersistentTracker::open(&path, config(), opts).unwrap();
    assert!(
        matches!(outcome, LoadOutcome::Recovered { .. }),
        "a log within its configured limit made the crash a full resync: {outcome:?}"
    );
}

/// Finding 9. A log record's dirty words are checked against the capacity's word count but
/// not its last word's bits: on a capacity of 1 to 32 blocks past a multiple of 64, bits in
/// the upper half of the last word reach `LiveMap::merge_word` for a leaf word that does not
/// exist (the live map has 32 blocks per leaf): an index out of bounds (a panic) on a
/// one-level map, a write into the summary level on a larger one. A hostile (well-formed,
/// checksummed) log must give a reset, never a panic.
#[test]
fn a_log_record_with_bits_past_the_capacity_is_refused_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.tracker");
    // 16 blocks: one 64 KiB region, one live leaf word.
    let small = TrackerConfig::new(REGION).granularity(BLOCK as u32);
    let opts = PersistOptions::new(ID).activity_log(
        ActivityLogConfig::default()
            .region_size(REGION)
            .active_regions(1),
    );
    let (pt, _) = PersistentTracker::open(&path, small, opts).unwrap();
    drop(pt); // crash: the active state names a log with no record yet
    let info = PersistentTracker::inspect(&path, 1 << 20).unwrap();
    let log_id = info.log.expect("an active state").log_id;
    // Record 1: evicts region 0 with word 0's upper 32 bits dirty (blocks 32..63: past the
    // 16 blocks of the capacity).
    let mut r = Vec::new();
    r.extend_from_slice(b"BDTRKAL1");
    r.extend_from_slice(&log_id);
    r.extend_from_slice(&1u64.to_le_bytes());
    for count in [0u32, 1, 1, 0] {
        r.extend_from_slice(&count.to_le_bytes());
    }
    r.extend_from_slice(&0u64.to_le_bytes()); // evicted region 0
    r.extend_from_slice(&0u64.to_le_bytes()); // word 0
    r.extend_from_slice(&0xffff_ffff_0000_0000u64.to_le_bytes());
    let crc = crc32fast::hash(&r);
    r.extend_from_slice(&crc.to_le_bytes());
    r.resize(4096, 0);
    std::fs::write(dir.path().join("disk.tracker.al"), &r).unwrap();
    let result =
        std::panic::catch_unwind(|| PersistentTracker::open(&path, small, opts).map(|x| x.1));
    let outcome = result
        .expect("a hostile log record panicked the open")
        .unwrap();
    assert!(outcome.is_reset(), "{outcome:?}");
}

/// Found by the main job (issue 11 session): a block discarded before the state file's
/// snapshot, written afterwards and then evicted (its region's dirty bits logged), came back
/// from a crash as a discard, because recovery merged the log's bits like an abort's (keeping
/// the older state file's kind): the replica kept zeros where the source had data. A logged
/// block is now always a write (shipping a discarded block's contents is safe).
#[test]
fn a_block_written_after_a_discard_and_evicted_is_a_write_after_a_crash() {
    use blockdelta::{Extent, ExtentKind};
    let store = Store::new();
    let pt = open_clean(&store, 1);
    let w = pt.writer().unwrap();
    // Block 3 discarded, then a clean close and open: the state file holds it as a discard.
    loop {
        match w.begin(3 * BLOCK, BLOCK).unwrap() {
            Admission::Go(token) => {
                w.complete_discard(token, 3 * BLOCK, BLOCK).unwrap();
                break;
            }
            Admission::Wait(t) => w.wait(t).unwrap(),
        }
    }
    drop(w);
    pt.close().unwrap();
    let (pt, outcome) =
        PersistentTracker::open_on(Box::new(store.clone()), config(), options(1)).unwrap();
    assert!(
        matches!(outcome, LoadOutcome::Resumed { .. }),
        "{outcome:?}"
    );
    let w = pt.writer().unwrap();
    write(&w, 3 * BLOCK, BLOCK); // block 3 written: region 0 active
    write(&w, REGION, BLOCK); // region 1 evicts region 0: its bits go to the log
    drop(w);
    drop(pt); // crash
    let (pt, outcome) =
        PersistentTracker::open_on(Box::new(store.clone()), config(), options(1)).unwrap();
    assert!(
        matches!(outcome, LoadOutcome::Recovered { .. }),
        "{outcome:?}"
    );
    let cp = pt.take().unwrap();
    let mut cursor = cp.cursor();
    let mut buf = [Extent::default(); 64];
    let mut kind_of_3 = None;
    loop {
        let n = pt.tracker().extents(&mut cursor, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        for e in &buf[..n] {
            if e.offset <= 3 * BLOCK && 4 * BLOCK <= e.offset + e.len {
                kind_of_3 = Some(e.kind);
            }
        }
    }
    assert_eq!(
        kind_of_3,
        Some(ExtentKind::Write),
        "block 3 was written last, but came back as {kind_of_3:?}"
    );
}
