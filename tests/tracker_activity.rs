//! The activity log (issue 10 §2, `docs/TRACKER.md`, "Activity log"): a crash costs a bounded
//! resync, never a full one.
//!
//! - Admission: a write to a cold region waits for one durable group commit; hot regions go.
//! - A crashed run (a handle dropped without close, the state file "active") is recovered:
//!   same generation, numbers after the crashed run's reservation, and the next take holds
//!   every block written since the last commit plus at most the log's bound.
//! - Evictions write the evicted regions' dirty bits first, and wait for their writes.
//! - A storage model that crashes at every write and sync of the state file and the log,
//!   dropping or tearing what was not synced: after each crash, recovery holds every block
//!   admitted since the last durable commit, and over-reports at most the bound.
//! - Four threads write while a fifth takes and commits; a crash at the end loses nothing.

#[path = "common/activity.rs"]
mod common;
#[path = "common/source.rs"]
mod source;

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use blockdelta::tracker::{ReadFailure, TrackerStorage};
use blockdelta::{
    ActivityLogConfig, Admission, LoadOutcome, PersistError, PersistOptions, PersistentTracker,
    TrackerConfig,
};
use common::{blocks_of, config, write, BLOCK, DISK, REGION};
use source::Rng;

const ID: [u8; 16] = *b"activity-log-d01";

fn al(slots: u32) -> ActivityLogConfig {
    ActivityLogConfig::default()
        .region_size(REGION)
        .active_regions(slots)
}

fn options(slots: u32) -> PersistOptions {
    PersistOptions::new(ID).activity_log(al(slots))
}

fn range_blocks(off: u64, len: u64) -> impl Iterator<Item = u64> {
    off / BLOCK..(off + len).div_ceil(BLOCK)
}

#[test]
fn a_crash_continues_the_generation_with_a_bounded_excess() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.tracker");
    let (pt, outcome) = PersistentTracker::open(&path, config(), options(4)).unwrap();
    assert!(outcome.is_reset());
    // The first take is the full sync; commit it.
    let (first, _) = blocks_of(&pt);
    pt.commit(first.generation, first.sequence).unwrap();

    let w = pt.writer().unwrap();
    // Cold: the first write to a region waits for a group commit.
    assert!(matches!(w.begin(0, BLOCK).unwrap(), Admission::Wait(_)));
    let mut written = BTreeSet::new();
    for (off, len) in [(0, BLOCK), (5 * BLOCK, 3 * BLOCK), (10 * REGION, BLOCK)] {
        write(&w, off, len);
        written.extend(range_blocks(off, len));
    }
    // Hot now: no wait.
    assert!(matches!(w.begin(BLOCK, BLOCK).unwrap(), Admission::Go(_)));
    let stats = pt.activity_stats().unwrap();
    assert_eq!(stats.active, 2);
    assert_eq!(stats.activations, 2);
    // A crash: the handle is dropped without close (the admitted write above never
    // completed: its region is active, so it is covered).
    drop(w);
    drop(pt);

    let (pt, outcome) = PersistentTracker::open(&path, config(), options(4)).unwrap();
    let LoadOutcome::Recovered {
        generation,
        committed,
        issued,
        log_blocks,
        ..
    } = outcome
    else {
        panic!("a crash with an activity log must recover, got {outcome:?}");
    };
    assert_eq!((generation, committed), (first.generation, first.sequence));
    assert!(issued >= first.sequence);
    assert_eq!(log_blocks, 2 * REGION / BLOCK);
    let (cp, got) = blocks_of(&pt);
    assert_eq!(cp.generation, first.generation);
    assert_eq!(cp.from_sequence, first.sequence);
    assert!(
        cp.sequence > issued,
        "a number of the crashed run was reused"
    );
    assert!(written.is_subset(&got), "a write was lost");
    assert!(got.len() as u64 <= written.len() as u64 + 4 * REGION / BLOCK);
    pt.tracker().abort(cp.sequence).unwrap();
    pt.close().unwrap();
}

#[test]
fn evictions_keep_the_dirty_bits_of_the_regions_they_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.tracker");
    let (pt, _) = PersistentTracker::open(&path, config(), options(2)).unwrap();
    let (first, _) = blocks_of(&pt);
    pt.commit(first.generation, first.sequence).unwrap();
    let w = pt.writer().unwrap();
    let mut written = BTreeSet::new();
    for r in 0..20u64 {
        let off = r * 3 % 64 * REGION + (r % 16) * BLOCK;
        write(&w, off, BLOCK);
        written.extend(range_blocks(off, BLOCK));
    }
    let stats = pt.activity_stats().unwrap();
    assert_eq!(stats.active, 2);
    assert!(stats.evictions >= 15, "{stats:?}");
    drop(w);
    drop(pt);
    let (pt, outcome) = PersistentTracker::open(&path, config(), options(2)).unwrap();
    assert!(
        matches!(outcome, LoadOutcome::Recovered { .. }),
        "{outcome:?}"
    );
    let (cp, got) = blocks_of(&pt);
    assert!(
        written.is_subset(&got),
        "an evicted region's write was lost"
    );
    assert!(got.len() as u64 <= written.len() as u64 + 2 * REGION / BLOCK);
    pt.tracker().abort(cp.sequence).unwrap();
    pt.close().unwrap();
}

#[test]
fn a_commit_drops_what_the_replica_has_from_the_crash_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.tracker");
    let (pt, _) = PersistentTracker::open(&path, config(), options(8)).unwrap();
    let (first, _) = blocks_of(&pt);
    pt.commit(first.generation, first.sequence).unwrap();
    let w = pt.writer().unwrap();
    for r in 0..30u64 {
        write(&w, r * 2 * REGION, BLOCK); // 30 regions through 8 slots
    }
    let (cp, _) = blocks_of(&pt);
    pt.commit(cp.generation, cp.sequence).unwrap();
    write(&w, 63 * REGION, BLOCK);
    drop(w);
    drop(pt);
    let (pt, outcome) = PersistentTracker::open(&path, config(), options(8)).unwrap();
    let LoadOutcome::Recovered {
        committed,
        dirty_blocks,
        ..
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    assert_eq!(committed, cp.sequence);
    // Only the regions still active (at most 8) come back, not the 30 regions committed.
    assert!(dirty_blocks <= 8 * REGION / BLOCK, "{dirty_blocks}");
    let (next, got) = blocks_of(&pt);
    assert!(got.contains(&(63 * REGION / BLOCK)));
    pt.tracker().abort(next.sequence).unwrap();
    pt.close().unwrap();
}

#[test]
fn a_removed_or_damaged_log_is_never_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.tracker");
    let log = dir.path().join("disk.tracker.al");
    let crash = || {
        let (pt, _) = PersistentTracker::open(&path, config(), options(2)).unwrap();
        let (first, _) = blocks_of(&pt);
        pt.commit(first.generation, first.sequence).unwrap();
        let w = pt.writer().unwrap();
        for r in 0..5 {
            write(&w, r * REGION, BLOCK);
        }
    };
    crash();
    std::fs::remove_file(&log).unwrap();
    let (pt, outcome) = PersistentTracker::open(&path, config(), options(2)).unwrap();
    assert!(
        matches!(
            outcome.reset_reason(),
            Some(blockdelta::ResetReason::ActivityLog { .. })
        ),
        "{outcome:?}"
    );
    drop(pt);
    crash();
    // Damage in the middle (the second record of four), not a torn tail.
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[4096 + 50] ^= 1; // its activated region
    std::fs::write(&log, bytes).unwrap();
    let (_pt, outcome) = PersistentTracker::open(&path, config(), options(2)).unwrap();
    assert!(
        matches!(
            outcome.reset_reason(),
            Some(blockdelta::ResetReason::ActivityLog { .. })
        ),
        "{outcome:?}"
    );
}

#[test]
fn a_clean_close_after_an_activity_log_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.tracker");
    let (pt, _) = PersistentTracker::open(&path, config(), options(4)).unwrap();
    let (first, _) = blocks_of(&pt);
    pt.commit(first.generation, first.sequence).unwrap();
    let w = pt.writer().unwrap();
    write(&w, 3 * REGION, 2 * BLOCK);
    drop(w);
    pt.close().unwrap();
    let (pt, outcome) = PersistentTracker::open(&path, config(), options(4)).unwrap();
    assert!(
        matches!(
            outcome,
            LoadOutcome::Resumed {
                dirty_blocks: 2,
                ..
            }
        ),
        "{outcome:?}"
    );
    pt.close().unwrap();
}

#[test]
fn writers_need_an_activity_log_and_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let (pt, _) =
        PersistentTracker::open(dir.path().join("a"), config(), PersistOptions::new(ID)).unwrap();
    assert!(matches!(pt.writer(), Err(PersistError::NoActivityLog)));
    pt.close().unwrap();
    let (pt, _) = PersistentTracker::open(
        dir.path().join("b"),
        config(),
        PersistOptions::new(ID).activity_log(al(4).writers(2)),
    )
    .unwrap();
    let a = pt.writer().unwrap();
    let b = pt.writer().unwrap();
    assert!(matches!(
        pt.writer(),
        Err(PersistError::TooManyWriters { max: 2 })
    ));
    drop(a);
    let c = pt.writer().unwrap();
    assert!(matches!(
        c.begin(DISK - BLOCK, 2 * BLOCK),
        Err(PersistError::Tracker(_))
    ));
    drop((b, c));
    for bad in [
        al(4).region_size(3 * REGION),
        al(4).region_size(1 << 12),
        al(0),
        al(70_000),
        al(4).writers(0),
    ] {
        assert!(matches!(
            PersistentTracker::open(
                dir.path().join("c"),
                config(),
                PersistOptions::new(ID).activity_log(bad)
            ),
            Err(PersistError::BadActivityLog { .. })
        ));
    }
    pt.close().unwrap();
}

// ---------------------------------------------------------------------------------------
// A storage model that crashes.

/// What survives a crash of the model.
#[derive(Clone, Default)]
struct Durable {
    state: Option<Vec<u8>>,
    log: Vec<u8>,
}

#[derive(Default)]
struct Model {
    durable: Durable,
    /// Log writes since the last sync: (offset, bytes).
    unsynced: Vec<(u64, Vec<u8>)>,
    /// Storage operations so far, and the one that crashes (fails, and every later one).
    ops: u64,
    crash_at: Option<u64>,
    crashed: bool,
}

#[derive(Clone)]
struct MemStorage {
    name: PathBuf,
    model: Arc<Mutex<Model>>,
}

impl MemStorage {
    fn new(image: Durable, crash_at: Option<u64>) -> MemStorage {
        MemStorage {
            name: PathBuf::from("model.tracker"),
            model: Arc::new(Mutex::new(Model {
                durable: image,
                crash_at,
                ..Model::default()
            })),
        }
    }

    /// Counts an operation; `Err` at and after the crash point.
    fn op(&self) -> io::Result<std::sync::MutexGuard<'_, Model>> {
        let mut m = self.model.lock().unwrap();
        m.ops += 1;
        if m.crashed || m.crash_at == Some(m.ops) {
            m.crashed = true;
            return Err(io::Error::other("the storage model crashed"));
        }
        Ok(m)
    }

    /// The image a crash leaves: the durable bytes, plus what `tear` keeps of the unsynced
    /// log writes (0: none; 1: all; 2: a prefix of them, the last one cut; 3: the last one's
    /// bytes garbled).
    fn crash_image(&self, tear: u64, rng: &mut Rng) -> Durable {
        let m = self.model.lock().unwrap();
        let mut d = m.durable.clone();
        let n = m.unsynced.len();
        for (i, (off, bytes)) in m.unsynced.iter().enumerate() {
            let keep = match tear {
                0 => 0,
                1 => bytes.len(),
                2 if i + 1 == n => rng.below(bytes.len() as u64 + 1) as usize,
                3 if i + 1 == n => bytes.len(),
                _ => bytes.len(),
            };
            let end = *off as usize + keep;
            if d.log.len() < end {
                d.log.resize(end, 0);
            }
            d.log[*off as usize..end].copy_from_slice(&bytes[..keep]);
            if tear == 3 && i + 1 == n && keep > 0 {
                let at = *off as usize + rng.below(keep as u64) as usize;
                d.log[at] ^= 0x5a;
            }
        }
        d
    }
}

impl TrackerStorage for MemStorage {
    fn name(&self) -> &Path {
        &self.name
    }

    fn lock(&self) -> Result<Box<dyn std::any::Any + Send + Sync>, PersistError> {
        Ok(Box::new(()))
    }

    fn read_state(&self, max: u64) -> Result<Vec<u8>, ReadFailure> {
        let m = self.model.lock().unwrap();
        match &m.durable.state {
            None => Err(ReadFailure::Io(io::ErrorKind::NotFound.into())),
            Some(b) if b.len() as u64 > max => Err(ReadFailure::TooLarge {
                len: b.len() as u64,
            }),
            Some(b) => Ok(b.clone()),
        }
    }

    fn replace_state(&self, bytes: &[u8]) -> Result<(), PersistError> {
        // Atomic (temporary file, fsync, rename, fsync of the directory): a crash leaves the
        // old file.
        let mut m = self.op().map_err(|source| PersistError::Io {
            op: "replace the state file",
            path: self.name.clone(),
            source,
        })?;
        m.durable.state = Some(bytes.to_vec());
        Ok(())
    }

    fn read_log(&self, max: u64) -> Result<Vec<u8>, ReadFailure> {
        let m = self.model.lock().unwrap();
        if m.durable.log.len() as u64 > max {
            return Err(ReadFailure::TooLarge {
                len: m.durable.log.len() as u64,
            });
        }
        Ok(m.durable.log.clone())
    }

    fn write_log(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut m = self.op()?;
        m.unsynced.push((offset, bytes.to_vec()));
        Ok(())
    }

    fn create_log(&self) -> io::Result<()> {
        // A durable call (the file and its directory entry): a crash point like the others.
        self.op().map(drop)
    }

    fn sync_log(&self) -> io::Result<()> {
        let mut m = self.op()?;
        let unsynced = std::mem::take(&mut m.unsynced);
        for (off, bytes) in unsynced {
            let end = off as usize + bytes.len();
            if m.durable.log.len() < end {
                m.durable.log.resize(end, 0);
            }
            m.durable.log[off as usize..end].copy_from_slice(&bytes);
        }
        Ok(())
    }
}

/// One run of a random workload on the model, crashing at storage operation `crash_at`
/// (`None`: never). Returns the crash image, what must be dirty after recovery for each
/// possible durable commit, and how many operations the run made.
struct Run {
    image: Durable,
    /// For each committed sequence the recovered file may say: the blocks that must be dirty
    /// then, and those of them whose last change was a write (they must come back as writes,
    /// never discards: a replica would drop their data).
    must: Must,
    ops: u64,
}

type Must = Vec<(u64, BTreeSet<u64>, BTreeSet<u64>)>;

fn run(seed: u64, slots: u32, crash_at: Option<u64>, tear: u64) -> Run {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let storage = MemStorage::new(Durable::default(), crash_at);
    let opts = options(slots).reserve(2);
    let opened = PersistentTracker::open_on(Box::new(storage.clone()), config(), opts);
    // For each commit the recovered file may name: what must be dirty then. Before any
    // commit, the whole disk (the first take is the full sync).
    let all: BTreeSet<u64> = (0..DISK / BLOCK).collect();
    let mut must: Must = vec![(0u64, all.clone(), all)];
    let finish = |rng: &mut Rng, must: Must| Run {
        image: storage.crash_image(tear, rng),
        must,
        ops: storage.model.lock().unwrap().ops,
    };
    let Ok((pt, _)) = opened else {
        return finish(&mut rng, must);
    };
    let Ok(w) = pt.writer() else {
        return finish(&mut rng, must);
    };
    // Blocks admitted since the pending take (or since the last commit when none), and those
    // of them written last.
    let mut after_take: BTreeSet<u64> = BTreeSet::new();
    let mut after_take_written: BTreeSet<u64> = BTreeSet::new();
    let mut pending: Option<blockdelta::CheckpointInfo> = None;
    // The last admitted write or discard, not yet completed (a crash may come before its mark).
    let mut in_flight: Option<(blockdelta::WriteToken, u64, u64, bool)> = None;
    'work: for _ in 0..300 {
        if let Some((token, off, len, discard)) = in_flight.take() {
            if discard {
                w.complete_discard(token, off, len).unwrap();
                // Completed: the block may now read as anything; its last change is a discard.
                for b in range_blocks(off, len) {
                    after_take_written.remove(&b);
                    for (_, _, written) in must.iter_mut() {
                        written.remove(&b);
                    }
                }
            } else {
                w.complete(token, off, len).unwrap();
            }
        }
        match rng.below(10) {
            0..=6 => {
                // Half the changes in a hot eighth of the disk, so that blocks are discarded,
                // written again and their regions evicted between two commits.
                let span = if rng.below(2) == 0 { DISK / 8 } else { DISK };
                let off = rng.below(span / BLOCK) * BLOCK;
                let len = ((1 + rng.below(3)) * BLOCK).min(DISK - off);
                // A quarter are discards: their blocks must come back dirty, of either kind.
                let discard = rng.below(4) == 0;
                let token = loop {
                    match w.begin(off, len) {
                        Ok(Admission::Go(t)) => break t,
                        Ok(Admission::Wait(ticket)) => {
                            if w.wait(ticket).is_err() {
                                break 'work;
                            }
                        }
                        Err(_) => break 'work,
                    }
                };
                // Admitted: the data may be on the disk from now on, whatever happens next.
                after_take.extend(range_blocks(off, len));
                for (_, set, written) in must.iter_mut() {
                    set.extend(range_blocks(off, len));
                    if !discard {
                        written.extend(range_blocks(off, len));
                    }
                }
                if !discard {
                    after_take_written.extend(range_blocks(off, len));
                }
                in_flight = Some((token, off, len, discard));
            }
            7 | 8 if pending.is_none() => match pt.take() {
                Ok(cp) => {
                    after_take.clear();
                    after_take_written.clear();
                    pending = Some(cp);
                }
                Err(_) => break 'work,
            },
            _ => {
                if let Some(cp) = pending.take() {
                    // The replica has the take (its durable ack came): once the commit is
                    // durable, only what was admitted after the take must come back. It may
                    // be durable even if the call fails.
                    must.push((cp.sequence, after_take.clone(), after_take_written.clone()));
                    if pt.commit(cp.generation, cp.sequence).is_err() {
                        break 'work;
                    }
                    must.retain(|(c, _, _)| *c == cp.sequence);
                }
            }
        }
    }
    if let Some((token, off, len, discard)) = in_flight {
        if rng.below(2) == 0 {
            if discard {
                w.complete_discard(token, off, len).unwrap();
                for (_, _, written) in must.iter_mut() {
                    for b in range_blocks(off, len) {
                        written.remove(&b);
                    }
                }
            } else {
                w.complete(token, off, len).unwrap();
            }
        }
    }
    drop(w); // a crash: in-flight writes stay counted (the slot is kept)
    drop(pt);
    finish(&mut rng, must)
}

/// Recovers from `image` and checks: never a reset, every block that must be dirty for the
/// recovered commit is, and the excess is at most the bound.
fn check_recovery(image: Durable, must: &Must, slots: u32, what: &str) {
    if image.state.is_none() {
        return; // crashed before the first state write: a first start, nothing promised
    }
    let storage = MemStorage::new(image, None);
    let (pt, outcome) =
        PersistentTracker::open_on(Box::new(storage), config(), options(slots)).unwrap();
    let committed = match outcome {
        LoadOutcome::Recovered { committed, .. } => committed,
        other => panic!("{what}: recovery reset: {other:?}"),
    };
    let (cp, got, discards) = blocks_and_discards(&pt);
    let Some((_, need, written)) = must.iter().rev().find(|(c, _, _)| *c == committed) else {
        panic!("{what}: recovered commit {committed} was never made durable");
    };
    let lost: Vec<_> = need.difference(&got).take(5).collect();
    assert!(lost.is_empty(), "{what}: lost writes to blocks {lost:?}");
    let as_discards: Vec<_> = written.intersection(&discards).take(5).collect();
    assert!(
        as_discards.is_empty(),
        "{what}: blocks written last came back as discards (their data lost): {as_discards:?}"
    );
    let excess = got.len() as u64 - need.len() as u64;
    let bound = u64::from(slots) * REGION / BLOCK;
    if committed > 0 {
        assert!(
            excess <= bound,
            "{what}: {excess} blocks over-reported, the bound is {bound}"
        );
    }
    pt.tracker().abort(cp.sequence).unwrap();
}

/// Every block of a take, and those reported as discards.
fn blocks_and_discards(
    pt: &PersistentTracker,
) -> (blockdelta::CheckpointInfo, BTreeSet<u64>, BTreeSet<u64>) {
    let cp = pt.take().unwrap();
    let mut cursor = cp.cursor();
    let mut buf = [blockdelta::Extent::default(); 64];
    let (mut all, mut discards) = (BTreeSet::new(), BTreeSet::new());
    loop {
        let n = pt.tracker().extents(&mut cursor, &mut buf).unwrap();
        if n == 0 {
            return (cp, all, discards);
        }
        for e in &buf[..n] {
            let blocks = e.offset / BLOCK..(e.offset + e.len).div_ceil(BLOCK);
            if e.kind == blockdelta::ExtentKind::Discard {
                discards.extend(blocks.clone());
            }
            all.extend(blocks);
        }
    }
}

#[test]
fn a_crash_at_every_write_and_sync_loses_no_admitted_write() {
    // Seeds 1 to 3, and 11: its workload walks a block through a discard, a state snapshot, a
    // write and its region's eviction before a crash (the path that brought a written block
    // back as a discard). BLOCKDELTA_AL_SEEDS=N runs seeds 1 to N instead.
    let seeds: Vec<u64> = match std::env::var("BLOCKDELTA_AL_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) => (1..=n).collect(),
        None => vec![1, 2, 3, 11],
    };
    let mut crashes = 0;
    for &seed in &seeds {
        for slots in [2u32, 8] {
            let total = run(seed, slots, None, 0).ops;
            for at in 1..=total {
                for tear in 0..4 {
                    let r = run(seed, slots, Some(at), tear);
                    let what = format!("seed {seed}, {slots} slots, crash at op {at}, tear {tear}");
                    check_recovery(r.image, &r.must, slots, &what);
                    crashes += 1;
                }
            }
        }
    }
    eprintln!(
        "{crashes} crashes (every write and sync of {} seeds x 2 log sizes x 4 tearings) recovered without losing an admitted write",
        seeds.len()
    );
    assert!(crashes > 100, "only {crashes} crash points");
}

// ---------------------------------------------------------------------------------------
// Threads: writers with writes in flight, evictions, takes and commits at once.

#[test]
fn concurrent_writers_evictions_and_commits_lose_nothing_at_a_crash() {
    // Skewed (most writes in three regions, 4 slots), and flat over 6 regions through 2
    // slots (an eviction at almost every cold write). The race of a write in flight against
    // its region's eviction is rare here (the least recently used region seldom has one); the
    // loom model (`tests/loom_activity.rs`) is what shows the grace period is needed.
    for _ in 0..2 {
        concurrent_round(4, None);
        concurrent_round(2, Some(6));
    }
}

/// `flat`: every write in one of that many regions, uniformly; else skewed.
fn concurrent_round(slots: u32, flat: Option<u64>) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.tracker");
    let (pt, _) = PersistentTracker::open(&path, config(), options(slots)).unwrap();
    let (first, _) = blocks_of(&pt);
    pt.commit(first.generation, first.sequence).unwrap();
    let pt = Arc::new(pt);
    // A global clock: a write's completion time, and the time a take returned.
    let clock = Arc::new(AtomicU64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(std::sync::Barrier::new(4));
    let mut handles = Vec::new();
    for t in 0..4u64 {
        let (pt, clock, stop, done) = (pt.clone(), clock.clone(), stop.clone(), done.clone());
        handles.push(std::thread::spawn(move || {
            let w = pt.writer().unwrap();
            let mut rng = Rng(0x5eed + t);
            let mut in_flight = std::collections::VecDeque::new();
            // (block, start, end): the clock read before the completion's mark starts and
            // after it returned. A start after a take returned is a mark that cannot be in
            // that take (the block must come back after a crash); an end before a take started
            // is a mark that is in it. In between, the mark may be on either side.
            let mut completed: Vec<(u64, u64, u64)> = Vec::new();
            let complete = |completed: &mut Vec<(u64, u64, u64)>, tk, o: u64| {
                let start = clock.fetch_add(1, Ordering::SeqCst);
                w.complete(tk, o, BLOCK).unwrap();
                let end = clock.fetch_add(1, Ordering::SeqCst);
                completed.push((o / BLOCK, start, end));
            };
            // At least 300 writes each, however slow the machine (a loaded one made too few
            // for the check below to mean anything).
            while !stop.load(Ordering::Relaxed) || completed.len() < 300 {
                // Hot-skewed: most writes in a few regions, some anywhere.
                let region = match flat {
                    Some(n) => rng.below(n),
                    None if rng.below(4) == 0 => rng.below(DISK / REGION),
                    None => rng.below(3),
                };
                let off = region * REGION + rng.below(REGION / BLOCK) * BLOCK;
                let token = loop {
                    match w.begin(off, BLOCK).unwrap() {
                        Admission::Go(token) => break token,
                        Admission::Wait(ticket) => {
                            // Waiting with writes in flight would block the eviction this
                            // wait may lead: complete them first (a driver's queue drains).
                            while let Some((tk, o)) = in_flight.pop_front() {
                                complete(&mut completed, tk, o);
                            }
                            w.wait(ticket).unwrap();
                        }
                    }
                };
                in_flight.push_back((token, off));
                if in_flight.len() > 8 || rng.below(3) == 0 {
                    let (tk, o) = in_flight.pop_front().unwrap();
                    complete(&mut completed, tk, o);
                }
            }
            while let Some((tk, o)) = in_flight.pop_front() {
                complete(&mut completed, tk, o);
            }
            done.wait();
            // The crash: each writer leaves writes admitted to hot regions in flight (their
            // data may be on the disk, their mark never made).
            let mut hanging = Vec::new();
            for _ in 0..3 {
                let off = rng.below(3) * REGION + rng.below(REGION / BLOCK) * BLOCK;
                if let Admission::Go(_) = w.begin(off, BLOCK).unwrap() {
                    hanging.push(off / BLOCK);
                }
            }
            drop(w); // its in-flight writes keep the slot
            (completed, hanging)
        }));
    }
    // The replication thread: take, "ship", commit, and remember when each take returned.
    let (mut take_started, mut take_returned) = (0, 0);
    for _ in 0..40 {
        std::thread::sleep(std::time::Duration::from_millis(5));
        let started = clock.fetch_add(1, Ordering::SeqCst);
        let cp = pt.take().unwrap();
        let returned = clock.fetch_add(1, Ordering::SeqCst);
        pt.commit(cp.generation, cp.sequence).unwrap();
        (take_started, take_returned) = (started, returned);
    }
    // The writers go on for a while after the last commit, with evictions, so that what the
    // crash finds came through the log, not through a state write.
    std::thread::sleep(std::time::Duration::from_millis(30));
    stop.store(true, Ordering::Relaxed);
    // `must`: blocks that must be dirty after the crash; `may`: blocks that may be (changed
    // since the last committed take, or whose mark may have missed it).
    let (mut must, mut may) = (BTreeSet::new(), BTreeSet::new());
    let mut writes = 0;
    for h in handles {
        let (completed, hanging) = h.join().unwrap();
        writes += completed.len();
        for &(b, start, end) in &completed {
            if start > take_returned {
                must.insert(b);
            }
            if end > take_started {
                may.insert(b);
            }
        }
        must.extend(hanging.iter().copied());
        may.extend(hanging);
    }
    let stats = pt.activity_stats().unwrap();
    assert!(stats.evictions > 10, "{stats:?}");
    assert!(writes > 1000, "{writes}");
    drop(Arc::try_unwrap(pt).ok().expect("every writer stopped")); // crash: no close
    let (pt, outcome) = PersistentTracker::open(&path, config(), options(slots)).unwrap();
    assert!(
        matches!(outcome, LoadOutcome::Recovered { .. }),
        "{outcome:?}"
    );
    let (cp, got) = blocks_of(&pt);
    let lost: Vec<_> = must.difference(&got).take(5).collect();
    assert!(lost.is_empty(), "lost writes to blocks {lost:?}");
    let excess = got.difference(&may).count() as u64;
    assert!(
        excess <= u64::from(slots) * REGION / BLOCK,
        "{} recovered, {} needed, {excess} beyond what may have changed",
        got.len(),
        must.len()
    );
    pt.tracker().abort(cp.sequence).unwrap();
    pt.close().unwrap();
}

// ---------------------------------------------------------------------------------------
// kill -9 of a real process that writes to a file-backed disk (issue 10 §5).

const KILL_DIR: &str = "BLOCKDELTA_AL_KILL_DIR";
const KILL_DISK: u64 = 16 << 20;
const KILL_SLOTS: u32 = 8;

fn kill_config() -> TrackerConfig {
    TrackerConfig::new(KILL_DISK).granularity(BLOCK as u32)
}

fn kill_options() -> PersistOptions {
    options(KILL_SLOTS)
}

/// Copies every extent of a take from `disk` to `replica` (what shipping does); returns the
/// take and its blocks.
fn ship(
    pt: &PersistentTracker,
    disk: &std::fs::File,
    replica: &std::fs::File,
) -> (blockdelta::CheckpointInfo, BTreeSet<u64>) {
    let (cp, blocks) = blocks_of(pt);
    copy_blocks(&blocks, disk, replica);
    (cp, blocks)
}

fn copy_blocks(blocks: &BTreeSet<u64>, disk: &std::fs::File, replica: &std::fs::File) {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; BLOCK as usize];
    for &b in blocks {
        disk.read_exact_at(&mut buf, b * BLOCK).unwrap();
        replica.write_all_at(&buf, b * BLOCK).unwrap();
    }
}

/// The child: two writer threads write random data to the disk file through the activity
/// log (begin, pwrite, complete) while the main thread takes, ships to the replica file and
/// commits, until it is killed.
#[test]
fn kill_child_entry() {
    use std::os::unix::fs::FileExt;
    let Some(dir) = std::env::var_os(KILL_DIR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let open_rw = |name: &str| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join(name))
            .unwrap()
    };
    let (disk, replica) = (Arc::new(open_rw("disk")), open_rw("replica"));
    let (pt, _) =
        PersistentTracker::open(dir.join("disk.tracker"), kill_config(), kill_options()).unwrap();
    let pt = Arc::new(pt);
    for t in 0..2u64 {
        let (pt, disk) = (pt.clone(), disk.clone());
        std::thread::spawn(move || {
            let w = pt.writer().unwrap();
            let mut rng = Rng(((u64::from(std::process::id()) << 8 | t) * 0x9e37_79b9) | 1);
            let mut data = vec![0u8; 4 * BLOCK as usize];
            loop {
                // Skewed: most writes in 4 hot regions, the rest anywhere (evictions).
                let region = if rng.below(5) == 0 {
                    rng.below(KILL_DISK / REGION)
                } else {
                    rng.below(4)
                };
                let off = region * REGION + rng.below(REGION / BLOCK) * BLOCK;
                let len = ((1 + rng.below(4)) * BLOCK).min(KILL_DISK - off);
                rng.fill(&mut data[..len as usize]);
                let token = loop {
                    match w.begin(off, len).unwrap() {
                        Admission::Go(token) => break token,
                        Admission::Wait(ticket) => w.wait(ticket).unwrap(),
                    }
                };
                disk.write_all_at(&data[..len as usize], off).unwrap();
                w.complete(token, off, len).unwrap();
            }
        });
    }
    loop {
        std::thread::sleep(std::time::Duration::from_millis(3));
        let (cp, blocks) = blocks_of(&pt);
        // What the replica may hold beyond the last recorded commit if a kill comes before
        // the commit below (written before shipping): the parent does not count these as
        // excess.
        let line: Vec<String> = std::iter::once(cp.sequence)
            .chain(blocks.iter().copied())
            .map(|v| v.to_string())
            .collect();
        std::fs::write(dir.join("last-take"), line.join(" ")).unwrap();
        copy_blocks(&blocks, &disk, &replica);
        pt.commit(cp.generation, cp.sequence).unwrap();
    }
}

#[test]
fn kill_9_at_random_moments_loses_no_write_and_resyncs_at_most_the_bound() {
    use std::process::{Command, Stdio};
    let kills: u64 = std::env::var("BLOCKDELTA_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut rng = Rng(0x6b69_6c6c);
    let mut image = vec![0u8; KILL_DISK as usize];
    rng.fill(&mut image);
    std::fs::write(dir.join("disk"), &image).unwrap();
    std::fs::write(dir.join("replica"), vec![0u8; KILL_DISK as usize]).unwrap();
    let exe = std::env::current_exe().unwrap();
    let bound = u64::from(KILL_SLOTS) * REGION / BLOCK;
    let (mut recovered, mut max_excess, mut shipped) = (0u64, 0u64, 0u64);
    for i in 0..kills {
        let err_path = dir.join("child.stderr");
        let mut child = Command::new(&exe)
            .args([
                "kill_child_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(KILL_DIR, dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30 + rng.below(120)));
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "kill {i}: the child exited by itself ({status}):\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let disk = std::fs::OpenOptions::new()
            .read(true)
            .open(dir.join("disk"))
            .unwrap();
        let replica = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join("replica"))
            .unwrap();
        let before_disk = std::fs::read(dir.join("disk")).unwrap();
        let before_replica = std::fs::read(dir.join("replica")).unwrap();
        let differing: BTreeSet<u64> = (0..KILL_DISK / BLOCK)
            .filter(|&b| {
                let r = (b * BLOCK) as usize..((b + 1) * BLOCK) as usize;
                before_disk[r.clone()] != before_replica[r]
            })
            .collect();
        let (pt, outcome) =
            PersistentTracker::open(dir.join("disk.tracker"), kill_config(), kill_options())
                .unwrap();
        let first_sync = match &outcome {
            LoadOutcome::Recovered { .. } => {
                recovered += 1;
                false
            }
            // Killed before its open replaced the state file: the clean state of the last
            // round (or none before the first), and nothing was written since.
            LoadOutcome::Reset {
                reason: blockdelta::ResetReason::Missing,
                ..
            } => true,
            LoadOutcome::Resumed { .. } => false,
            other => panic!("kill {i}: a crash with an activity log did not recover: {other:?}"),
        };
        let (cp, blocks) = ship(&pt, &disk, &replica);
        let lost: Vec<_> = differing.difference(&blocks).take(5).collect();
        assert!(lost.is_empty(), "kill {i}: lost writes to blocks {lost:?}");
        assert!(
            std::fs::read(dir.join("replica")).unwrap() == std::fs::read(dir.join("disk")).unwrap(),
            "kill {i}: the replica differs from the disk after the recovery's take"
        );
        // Blocks of the child's last take are not excess, committed or not: if the kill cut
        // its commit off, they changed since the recorded commit but no longer differ; if it
        // was committed, a block written again after the take's drain and before its copy is
        // dirty (rightly: written after the take) while the copy already carried its new data.
        // Either way the block would be shipped next without any crash.
        let mut need = differing.clone();
        if let Ok(line) = std::fs::read_to_string(dir.join("last-take")) {
            need.extend(
                line.split(' ')
                    .skip(1)
                    .filter_map(|x| x.parse::<u64>().ok()),
            );
        }
        let excess = blocks.difference(&need).count() as u64;
        if !first_sync && cp.from_sequence > 0 {
            assert!(
                excess <= bound,
                "kill {i}: {excess} blocks over the bound {bound}"
            );
            max_excess = max_excess.max(excess);
        }
        shipped += blocks.len() as u64;
        pt.commit(cp.generation, cp.sequence).unwrap();
        pt.close().unwrap();
        let _ = std::fs::remove_file(dir.join("last-take"));
    }
    eprintln!(
        "{kills} kills: {recovered} recovered without a full resync, 0 lost writes, excess at most {max_excess} blocks (bound {bound}), {shipped} blocks shipped in all"
    );
    assert!(
        recovered >= kills * 9 / 10,
        "only {recovered} of {kills} recovered"
    );
}

// ---------------------------------------------------------------------------------------
// The committed vector of a crashed run with an activity log (`docs/TRACKER.md`), which the
// fuzz target `tracker_activity` mutates.

const ACTIVE_VECTOR: &str = "tests/vectors/tracker/active.state";
const ACTIVE_VECTOR_LOG: &str = "tests/vectors/tracker/active.state.al";
const VECTOR_DISK: u64 = 1 << 20;
const VECTOR_ID: [u8; 16] = *b"blockdelta-vec-2";

fn vector_config() -> TrackerConfig {
    TrackerConfig::new(VECTOR_DISK).granularity(BLOCK as u32)
}

fn vector_options() -> PersistOptions {
    PersistOptions::new(VECTOR_ID).activity_log(al(2))
}

/// A run that commits its full sync, writes blocks 1, 50, 100 and 200 (regions 0, 3, 6 and 12
/// through 2 slots: two evictions), leaves a write to block 201 admitted but not completed, and
/// crashes.
fn build_active_vector(path: &Path) {
    let (pt, _) = PersistentTracker::open(path, vector_config(), vector_options()).unwrap();
    let (first, _) = blocks_of(&pt);
    pt.commit(first.generation, first.sequence).unwrap();
    let w = pt.writer().unwrap();
    for b in [1u64, 50, 100, 200] {
        write(&w, b * BLOCK, BLOCK);
    }
    assert!(matches!(
        w.begin(201 * BLOCK, BLOCK).unwrap(),
        Admission::Go(_)
    ));
    drop(w);
    drop(pt);
}

#[test]
fn the_committed_activity_vector_recovers_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("active.state");
    std::fs::copy(ACTIVE_VECTOR, &path).unwrap();
    std::fs::copy(ACTIVE_VECTOR_LOG, dir.path().join("active.state.al")).unwrap();
    let info = PersistentTracker::inspect(&path, 1 << 20).unwrap();
    assert_eq!(info.kind, blockdelta::tracker::StateKind::Active);
    let section = info.log.as_ref().unwrap();
    assert_eq!((section.region_shift, section.slots), (16, 2));
    let (pt, outcome) = PersistentTracker::open(&path, vector_config(), vector_options()).unwrap();
    let LoadOutcome::Recovered {
        committed,
        issued,
        log_blocks,
        log_records,
        ..
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    assert_eq!((committed, issued, log_records), (1, 16, 4));
    // Regions 6 and 12 active at the crash: 32 blocks; blocks 1 and 50 from the evictions.
    assert_eq!(log_blocks, 32);
    let (cp, got) = blocks_of(&pt);
    let want: BTreeSet<u64> = [1u64, 50]
        .into_iter()
        .chain(6 * 16..7 * 16)
        .chain(12 * 16..13 * 16)
        .collect();
    assert_eq!(got, want);
    assert_eq!((cp.sequence, cp.from_sequence), (17, 1));
    pt.tracker().abort(cp.sequence).unwrap();
    pt.close().unwrap();
}

/// Rewrites the committed vector (only after a deliberate format change).
#[test]
#[ignore]
fn regenerate_activity_vector() {
    let _ = std::fs::remove_file(ACTIVE_VECTOR);
    let _ = std::fs::remove_file(ACTIVE_VECTOR_LOG);
    build_active_vector(Path::new(ACTIVE_VECTOR));
    let _ = std::fs::remove_file(format!("{ACTIVE_VECTOR}.lock"));
}

#[test]
fn a_crash_after_a_resize_recovers_with_the_new_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.tracker");
    let grown = TrackerConfig::new(DISK)
        .granularity(BLOCK as u32)
        .capacity(2 * DISK);
    let (pt, _) = PersistentTracker::open(&path, grown, options(4)).unwrap();
    let (first, _) = blocks_of(&pt);
    pt.commit(first.generation, first.sequence).unwrap();
    pt.resize(2 * DISK).unwrap();
    let w = pt.writer().unwrap();
    write(&w, DISK + 5 * BLOCK, BLOCK);
    drop(w);
    drop(pt);
    let config = TrackerConfig::new(2 * DISK)
        .granularity(BLOCK as u32)
        .capacity(2 * DISK);
    let (pt, outcome) = PersistentTracker::open(&path, config, options(4)).unwrap();
    assert!(
        matches!(outcome, LoadOutcome::Recovered { .. }),
        "{outcome:?}"
    );
    let (cp, got) = blocks_of(&pt);
    // The grown half is new to the replica: all of it, and the write in it.
    assert!((DISK / BLOCK..2 * DISK / BLOCK).all(|b| got.contains(&b)));
    pt.tracker().abort(cp.sequence).unwrap();
    pt.close().unwrap();
}
