//! Failback without a full copy (issue 10 §4) through `blockdelta::failback`: the original
//! primary A replicates into a replica store through a persistent tracker; A then makes writes
//! and discards the replica never sees and shuts down (its state file keeps them); failover at a
//! recovery point F (`failback::failover`) makes a copy of F the new primary B, tracked from F;
//! B takes writes and discards; `failback::plan` decides what A must receive and
//! `FailbackPlan::encode` ships it as one ordinary delta stream that A applies with the
//! ordinary applier. A ends byte-identical to B, and the stream touches exactly the union of
//! - the blocks B changed since F (B's tracker),
//! - the blocks that differ between F and the store's newest point (empty when F is the newest),
//! - the blocks A changed that never reached the replica (A's state file, loaded `Resumed`),
//!
//! computed here independently, block by block, and far less than the disk. Run with F the
//! newest point and with F older than it (a rollback). When A crashed (its state file says
//! "in use": the load resets), or B's tracker does not build on F, the plan is a checksum
//! resync, never a full copy; only a lost original gets a full copy. Every error case too.

#[path = "common/source.rs"]
mod source;

use std::io;

use blockdelta::failback::{
    self, FailbackError, FailbackPlan, Method, Original, Side, TrackedChanges, Unproven,
};
use blockdelta::replica::{PointId, Store, StoreConfig};
use blockdelta::resync::{HashConfig, HashList};
use blockdelta::stream::encode_to_vec;
use blockdelta::{
    Applier, ApplyTarget, DecoderConfig, EncoderConfig, Expected, Extent, GenerationId,
    LoadOutcome, PersistOptions, PersistentTracker, StreamError, Tracker, TrackerConfig,
};
use source::Rng;

const DISK_ID: [u8; 16] = *b"failback-test-d1";
const BLOCK: u64 = 4096;
const BLOCKS: u64 = 1024;
const DISK: u64 = BLOCKS * BLOCK; // 4 MiB

fn config() -> TrackerConfig {
    TrackerConfig::new(DISK).granularity(BLOCK as u32)
}

/// Random writes of 1..4 blocks, and every fourth time a discard of 1..3 whole blocks (the
/// in-memory disk reads zeros there, as the applier's in-memory target does), each marked on
/// `t` after the data changed (the write path's order).
fn write(disk: &mut [u8], t: &Tracker, rng: &mut Rng, n: usize) {
    for i in 0..n {
        let b = rng.below(BLOCKS - 4);
        let at = (b * BLOCK) as usize;
        if i % 4 == 3 {
            let len = (1 + rng.below(3)) * BLOCK;
            disk[at..at + len as usize].fill(0);
            t.mark_discard(b * BLOCK, len).unwrap();
        } else {
            let len = (1 + rng.below(4)) * BLOCK;
            rng.fill(&mut disk[at..at + len as usize]);
            t.mark_write(b * BLOCK, len).unwrap();
        }
    }
}

/// [`write`] through an activity log's writer: each write admitted before it is made (waiting
/// for a cold region), completed after.
fn write_logged(disk: &mut [u8], w: &blockdelta::ActivityWriter, rng: &mut Rng, n: usize) {
    for i in 0..n {
        let b = rng.below(BLOCKS - 4);
        let at = (b * BLOCK) as usize;
        let discard = i % 4 == 3;
        let len = if discard {
            1 + rng.below(3)
        } else {
            1 + rng.below(4)
        } * BLOCK;
        let token = loop {
            match w.begin(b * BLOCK, len).unwrap() {
                blockdelta::Admission::Go(t) => break t,
                blockdelta::Admission::Wait(ticket) => w.wait(ticket).unwrap(),
            }
        };
        if discard {
            disk[at..at + len as usize].fill(0);
            w.complete_discard(token, b * BLOCK, len).unwrap();
        } else {
            rng.fill(&mut disk[at..at + len as usize]);
            w.complete(token, b * BLOCK, len).unwrap();
        }
    }
}

/// How the original primary A stops before failover.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Stop {
    /// A clean close: its state file loads as `Resumed`.
    Clean,
    /// A crash without an activity log: its state file says "in use", the load resets.
    Crash,
    /// A crash with an activity log: the load is `Recovered`, same lineage, a bounded excess.
    CrashWithLog,
}

fn a_options(stop: Stop) -> PersistOptions {
    let o = PersistOptions::new(DISK_ID);
    if stop == Stop::CrashWithLog {
        o.activity_log(
            blockdelta::ActivityLogConfig::default()
                .region_size(64 << 10)
                .active_regions(4),
        )
    } else {
        o
    }
}

/// Ships A's next checkpoint into the store and commits it after the store's durable ack.
fn ship(store: &Store, pt: &PersistentTracker, disk: &[u8]) -> PointId {
    let cp = pt.take().unwrap();
    let ch = TrackedChanges::from_checkpoint(pt.tracker(), &cp).unwrap();
    let cfg = EncoderConfig::new(DISK_ID, cp.generation, cp.from_sequence, cp.sequence, DISK);
    let stream = encode_to_vec(cfg, &ch.extents, &mut disk.to_vec()).unwrap();
    let mut ing = store.ingest(None).unwrap();
    ing.push(&stream).unwrap();
    let p = ing.finish().unwrap().point;
    pt.commit(cp.generation, cp.sequence).unwrap();
    p.id
}

fn read_point(store: &Store, p: PointId) -> Vec<u8> {
    let mut b = vec![0u8; DISK as usize];
    store.read_at(p, 0, &mut b).unwrap();
    b
}

/// An in-memory disk that records every byte range a stream touched (data, zeros, discards).
struct Recording {
    disk: Vec<u8>,
    touched: Vec<bool>,
}

impl Recording {
    fn new(disk: Vec<u8>) -> Self {
        Recording {
            disk,
            touched: vec![false; BLOCKS as usize],
        }
    }
    fn touch(&mut self, offset: u64, len: u64) {
        assert!(offset % BLOCK == 0 && len % BLOCK == 0, "{offset}+{len}");
        for b in offset / BLOCK..(offset + len) / BLOCK {
            self.touched[b as usize] = true;
        }
    }
}

impl ApplyTarget for Recording {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.touch(offset, data.len() as u64);
        self.disk.write_at(offset, data)
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.touch(offset, len);
        self.disk.write_zeroes(offset, len)
    }
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.touch(offset, len);
        self.disk.discard(offset, len)
    }
    fn resize(&mut self, new_size: u64) -> io::Result<()> {
        ApplyTarget::resize(&mut self.disk, new_size)
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn size(&mut self) -> io::Result<Option<u64>> {
        self.disk.size()
    }
}

/// Applies `stream` to `target` with the ordinary applier, expecting `expected`.
fn apply(stream: &[u8], target: Recording, expected: Expected) -> Result<Recording, StreamError> {
    let mut app = Applier::new(DecoderConfig::new().with_expected(expected), target);
    let mut at = 0;
    while at < stream.len() {
        at += app.push(&stream[at..])?;
    }
    app.finish()?;
    Ok(app.into_target())
}

/// A receiver that knows only which disk it is (it is not in the new primary's lineage yet).
fn this_disk() -> Expected {
    Expected {
        disk_id: Some(DISK_ID),
        generation: None,
        replica_seq: None,
    }
}

fn encode(plan: &FailbackPlan, b: &[u8]) -> Vec<u8> {
    let mut stream = Vec::new();
    let n = plan
        .encode(plan.encoder_config(), &mut b.to_vec(), &mut |f| {
            stream.extend_from_slice(f);
            Ok(())
        })
        .unwrap();
    assert_eq!(n, stream.len() as u64);
    stream
}

/// Blocks the extent lists cover, one flag per block.
fn blocks_of(lists: &[&[Extent]]) -> Vec<bool> {
    let mut v = vec![false; BLOCKS as usize];
    for e in lists.iter().flat_map(|l| l.iter()) {
        for b in e.offset / BLOCK..(e.offset + e.len).div_ceil(BLOCK) {
            v[b as usize] = true;
        }
    }
    v
}

fn count(v: &[bool]) -> u64 {
    v.iter().filter(|&&x| x).count() as u64 * BLOCK
}

/// The world at failback: the store, both disks, B's tracker and its taken checkpoint, A's
/// state after its reload.
struct Scene {
    _tmp: tempfile::TempDir,
    store: Store,
    newest: PointId,
    f: PointId,
    a: Vec<u8>,
    b: Vec<u8>,
    tb: Tracker,
    b_changes: TrackedChanges,
    original: Original,
    _pa: PersistentTracker,
}

/// Replicates five points from A, makes 25 changes on A the replica never sees, shuts A down
/// (`a_crashes`: without `close`), fails over at F (the newest point or the third), makes 40
/// changes on B, reloads A and takes both checkpoints.
fn scene(seed: u64, f_is_newest: bool, stop: Stop) -> Scene {
    let a_crashes = stop != Stop::Clean;
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::create(tmp.path().join("store"), StoreConfig::new(DISK_ID)).unwrap();
    let state = tmp.path().join("a.tracker");
    let mut rng = Rng(seed);

    let mut a = vec![0u8; DISK as usize];
    let (pt, _) = PersistentTracker::open(&state, config(), a_options(stop)).unwrap();
    let logged = pt.writer().ok();
    let write_a = |a: &mut Vec<u8>, rng: &mut Rng, n| match &logged {
        Some(w) => write_logged(a, w, rng, n),
        None => write(a, pt.tracker(), rng, n),
    };
    write_a(&mut a, &mut rng, 200);
    let mut points = vec![ship(&store, &pt, &a)];
    for _ in 0..4 {
        write_a(&mut a, &mut rng, 30);
        points.push(ship(&store, &pt, &a));
    }
    write_a(&mut a, &mut rng, 25);
    drop(logged);
    if a_crashes {
        drop(pt); // no clean close: the state file still says "in use" (or "active")
    } else {
        pt.close().unwrap();
    }

    let newest = *points.last().unwrap();
    let f = if f_is_newest { newest } else { points[2] };
    let lineage = failback::failover(&store, f).unwrap();
    assert_eq!(lineage.sequence, f.sequence);
    let mut b = read_point(&store, f);
    let tb = Tracker::new(config().start_clean(true)).unwrap();
    tb.adopt_lineage(lineage.generation, lineage.sequence, &[])
        .unwrap();
    write(&mut b, &tb, &mut rng, 40);
    let cpb = tb.take().unwrap();
    let b_changes = TrackedChanges::from_checkpoint(&tb, &cpb).unwrap();
    assert_eq!(
        (b_changes.generation, b_changes.from_sequence),
        (lineage.generation, f.sequence)
    );

    // A comes back; the planner, not the load, checks its lineage against the store.
    let (pa, outcome) = PersistentTracker::open(&state, config(), a_options(stop)).unwrap();
    let original = match outcome {
        LoadOutcome::Resumed { generation, .. } | LoadOutcome::Recovered { generation, .. } => {
            assert_eq!(
                matches!(outcome, LoadOutcome::Recovered { .. }),
                stop == Stop::CrashWithLog,
                "only a crash with an activity log recovers, a clean close resumes"
            );
            assert_eq!(generation, f.generation);
            let cpa = pa.take().unwrap();
            Original::Resumed(TrackedChanges::from_checkpoint(pa.tracker(), &cpa).unwrap())
        }
        LoadOutcome::Reset { .. } => {
            assert_eq!(stop, Stop::Crash, "a clean close must resume");
            Original::Unproven
        }
    };
    Scene {
        _tmp: tmp,
        store,
        newest,
        f,
        a,
        b,
        tb,
        b_changes,
        original,
        _pa: pa,
    }
}

/// The whole loop with a resumable A: the plan is a delta, its stream touches exactly the
/// union (computed here block by block), A ends identical to B, and B's next checkpoint
/// continues on A in B's lineage.
fn delta_loop(seed: u64, f_is_newest: bool, stop: Stop) -> u64 {
    let s = scene(seed, f_is_newest, stop);
    let Original::Resumed(a_changes) = &s.original else {
        unreachable!()
    };
    let plan = failback::plan(&s.store, s.f, &s.b_changes, &s.original).unwrap();
    assert_eq!(plan.method, Method::Delta);

    let between = s.store.changed_between(s.f, s.newest).unwrap();
    assert_eq!(between.is_empty(), f_is_newest);
    let union = blocks_of(&[&s.b_changes.extents, &between, &a_changes.extents]);
    assert_eq!(plan.total_bytes, count(&union), "the plan is the union");
    assert_eq!(
        plan.new_primary_bytes,
        count(&blocks_of(&[&s.b_changes.extents]))
    );
    assert_eq!(
        plan.original_bytes,
        count(&blocks_of(&[&a_changes.extents]))
    );
    assert_eq!(plan.between_bytes, count(&blocks_of(&[&between])));
    assert!(plan.new_primary_bytes > 0 && plan.original_bytes > 0);
    assert!(plan.total_bytes <= plan.new_primary_bytes + plan.between_bytes + plan.original_bytes);
    assert!(plan
        .extents
        .windows(2)
        .all(|w| w[0].offset + w[0].len <= w[1].offset));
    assert_eq!(
        (plan.generation, plan.from_sequence, plan.to_sequence),
        (
            s.b_changes.generation,
            s.b_changes.from_sequence,
            s.b_changes.sequence
        )
    );

    let stream = encode(&plan, &s.b);
    let got = apply(&stream, Recording::new(s.a.clone()), this_disk()).unwrap();
    assert!(got.disk == s.b, "after failback A is byte-identical to B");
    assert_eq!(got.touched, union, "the stream touched exactly the union");

    // B commits: A is at B's checkpoint. B's next change reaches A as an ordinary incremental
    // in B's lineage, which A now expects.
    s.tb.commit(plan.generation, plan.to_sequence).unwrap();
    let mut b = s.b;
    write(&mut b, &s.tb, &mut Rng(seed ^ 0xb), 5);
    let cp = s.tb.take().unwrap();
    let next = TrackedChanges::from_checkpoint(&s.tb, &cp).unwrap();
    let cfg = EncoderConfig::new(DISK_ID, cp.generation, cp.from_sequence, cp.sequence, DISK);
    let inc = encode_to_vec(cfg, &next.extents, &mut b.clone()).unwrap();
    let expected = Expected {
        disk_id: Some(DISK_ID),
        generation: Some(plan.generation),
        replica_seq: Some(plan.to_sequence),
    };
    let got = apply(&inc, Recording::new(got.disk), expected).unwrap();
    assert!(got.disk == b);
    plan.total_bytes
}

#[test]
fn failback_ships_only_the_union_with_f_the_newest_point() {
    for seed in 1..=3 {
        let shipped = delta_loop(seed, true, Stop::Clean);
        assert!(shipped > 0 && shipped * 4 < DISK, "{shipped} of {DISK}");
    }
}

#[test]
fn failback_ships_only_the_union_with_f_older_than_the_newest_point() {
    for seed in 11..=13 {
        let shipped = delta_loop(seed, false, Stop::Clean);
        assert!(shipped > 0 && shipped * 3 < DISK, "{shipped} of {DISK}");
    }
}

/// Brings A level through the checksum path of `plan`; returns the bytes shipped.
fn resync_loop(s: &Scene, plan: &FailbackPlan) -> u64 {
    let cfg = HashConfig::with_random_salt();
    let theirs = HashList::compute(&s.a[..], DISK, &cfg).unwrap();
    let ours = HashList::compute(&s.b[..], DISK, &cfg).unwrap();
    let r = plan.resync(&theirs, &ours).unwrap();
    let mut stream = Vec::new();
    r.encode(plan.encoder_config(), &mut s.b.clone(), &mut |f| {
        stream.extend_from_slice(f);
        Ok(())
    })
    .unwrap();
    let got = apply(&stream, Recording::new(s.a.clone()), this_disk()).unwrap();
    assert!(got.disk == s.b, "after the resync A is byte-identical to B");
    assert_eq!(count(&got.touched), r.differing_bytes());
    r.differing_bytes()
}

/// A crashed original with an activity log proves its lineage (its load is `Recovered`):
/// failback is a delta of the union, with the original's unshipped blocks over-reported by
/// at most the log's bound, never a checksum resync or a full copy.
#[test]
fn failback_after_a_crash_of_an_original_with_an_activity_log_ships_the_union() {
    for (seed, newest) in [(61, true), (62, false)] {
        let shipped = delta_loop(seed, newest, Stop::CrashWithLog);
        assert!(shipped > 0 && shipped * 3 < DISK, "{shipped} of {DISK}");
    }
}

/// A crashed original without an activity log cannot prove its lineage: failback compares
/// instead of copying, and still ships only the differing blocks.
#[test]
fn failback_after_a_crash_of_the_original_falls_back_to_checksum_resync() {
    for (seed, newest) in [(21, true), (22, false)] {
        let s = scene(seed, newest, Stop::Crash);
        let plan = failback::plan(&s.store, s.f, &s.b_changes, &s.original).unwrap();
        assert_eq!(
            plan.method,
            Method::ChecksumResync(Unproven::OriginalUntrusted)
        );
        assert!(plan.extents.is_empty() && plan.total_bytes == 0);
        let err = plan
            .encode(plan.encoder_config(), &mut s.b.clone(), &mut |_| Ok(()))
            .unwrap_err();
        assert!(matches!(err, FailbackError::NeedsChecksumResync), "{err}");
        let shipped = resync_loop(&s, &plan);
        assert!(shipped > 0 && shipped * 3 < DISK, "{shipped} of {DISK}");
    }
}

/// A new primary whose tracker does not build on F (a fresh tracker in its own generation),
/// and an original whose lineage the store never held: both are compared, not copied.
#[test]
fn failback_without_proven_lineage_on_either_side_falls_back_to_checksum_resync() {
    let s = scene(31, false, Stop::Clean);
    let Original::Resumed(a) = &s.original else {
        unreachable!()
    };
    let fresh = Tracker::new(config().start_clean(true)).unwrap();
    fresh.mark_write(0, BLOCK).unwrap();
    let cp = fresh.take().unwrap();
    let stray = TrackedChanges::from_checkpoint(&fresh, &cp).unwrap();
    let plan = failback::plan(&s.store, s.f, &stray, &s.original).unwrap();
    assert_eq!(
        plan.method,
        Method::ChecksumResync(Unproven::NewPrimaryNotFromFailover {
            generation: cp.generation,
            from_sequence: 0
        })
    );

    // A's set claims another generation, then a number the store never had.
    for (generation, from) in [(GenerationId([5; 16]), a.from_sequence), (a.generation, 99)] {
        let other = TrackedChanges::new(generation, from, from + 1, DISK, a.extents.clone());
        let plan = failback::plan(&s.store, s.f, &s.b_changes, &Original::Resumed(other)).unwrap();
        assert_eq!(
            plan.method,
            Method::ChecksumResync(Unproven::OriginalNotInStore {
                generation,
                sequence: from
            })
        );
        let shipped = resync_loop(&s, &plan);
        assert!(shipped > 0 && shipped * 3 < DISK, "{shipped} of {DISK}");
    }
}

/// Only a lost original gets a full copy, onto a blank disk, whatever B's lineage.
#[test]
fn failback_to_a_lost_original_is_a_full_copy() {
    let s = scene(41, true, Stop::Crash);
    let plan = failback::plan(&s.store, s.f, &s.b_changes, &Original::Gone).unwrap();
    assert_eq!(plan.method, Method::FullCopy);
    assert_eq!(
        (plan.extents.clone(), plan.total_bytes),
        (vec![Extent::new(0, DISK)], DISK)
    );
    let stream = encode(&plan, &s.b);
    let got = apply(&stream, Recording::new(vec![0; DISK as usize]), this_disk()).unwrap();
    assert!(got.disk == s.b);
    assert!(got.touched.iter().all(|&t| t));
}

#[test]
fn failback_refuses_input_that_cannot_describe_it() {
    let s = scene(51, false, Stop::Clean);
    let Original::Resumed(a) = &s.original else {
        unreachable!()
    };
    let plan_with = |b: &TrackedChanges, o: &Original| failback::plan(&s.store, s.f, b, o);

    // F is not a point of the store.
    let nowhere = PointId {
        generation: GenerationId([9; 16]),
        sequence: 3,
    };
    let e = failback::plan(&s.store, nowhere, &s.b_changes, &s.original).unwrap_err();
    assert!(
        matches!(e, FailbackError::NoSuchPoint(p) if p == nowhere),
        "{e}"
    );
    let e = failback::failover(&s.store, nowhere).unwrap_err();
    assert!(matches!(e, FailbackError::NoSuchPoint(_)), "{e}");

    // Wrong disk sizes, on either side.
    let mut big = s.b_changes.clone();
    big.disk_size = DISK * 2;
    let e = plan_with(&big, &s.original).unwrap_err();
    assert!(
        matches!(e, FailbackError::DiskSizeMismatch { side: Side::NewPrimary, expected: DISK, found } if found == DISK * 2),
        "{e}"
    );
    let mut small = a.clone();
    small.disk_size = DISK - BLOCK;
    let e = plan_with(&s.b_changes, &Original::Resumed(small)).unwrap_err();
    assert!(
        matches!(
            e,
            FailbackError::DiskSizeMismatch {
                side: Side::Original,
                ..
            }
        ),
        "{e}"
    );

    // Extents past the end, including one whose end overflows.
    for bad in [
        Extent::new(DISK - BLOCK, 2 * BLOCK),
        Extent::new(u64::MAX, 2),
    ] {
        let mut b = s.b_changes.clone();
        b.extents.push(bad);
        let e = plan_with(&b, &s.original).unwrap_err();
        assert!(
            matches!(e, FailbackError::ExtentOutOfRange { side: Side::NewPrimary, offset, .. } if offset == bad.offset),
            "{e}"
        );
        let mut o = a.clone();
        o.extents.insert(0, bad);
        let e = plan_with(&s.b_changes, &Original::Resumed(o)).unwrap_err();
        assert!(
            matches!(
                e,
                FailbackError::ExtentOutOfRange {
                    side: Side::Original,
                    ..
                }
            ),
            "{e}"
        );
    }

    // A checkpoint that is not above its base.
    let mut b = s.b_changes.clone();
    b.sequence = b.from_sequence;
    let e = plan_with(&b, &s.original).unwrap_err();
    assert!(
        matches!(
            e,
            FailbackError::InvalidCheckpoint {
                side: Side::NewPrimary,
                ..
            }
        ),
        "{e}"
    );

    // An encoder configuration that names another lineage, disk or size than the plan.
    let plan = plan_with(&s.b_changes, &s.original).unwrap();
    let mut sink = |_: &[u8]| Ok(());
    for (field, cfg) in [
        ("generation", {
            let mut c = plan.encoder_config();
            c.generation = GenerationId([1; 16]);
            c
        }),
        ("disk id", {
            let mut c = plan.encoder_config();
            c.disk_id = [0; 16];
            c
        }),
        ("checkpoint range", {
            let mut c = plan.encoder_config();
            c.to_seq += 1;
            c
        }),
        ("disk size", {
            let mut c = plan.encoder_config();
            c.disk_size = DISK * 2;
            c
        }),
    ] {
        let e = plan.encode(cfg, &mut s.b.clone(), &mut sink).unwrap_err();
        assert!(
            matches!(e, FailbackError::HeaderMismatch { field: f } if f == field),
            "{e}"
        );
    }

    // Hash lists of another size.
    let cfg = HashConfig::with_random_salt();
    let short = HashList::compute(&s.a[..DISK as usize / 2], DISK / 2, &cfg).unwrap();
    let ours = HashList::compute(&s.b[..], DISK, &cfg).unwrap();
    let e = plan.resync(&short, &ours).unwrap_err();
    assert!(
        matches!(
            e,
            FailbackError::DiskSizeMismatch {
                side: Side::Original,
                ..
            }
        ),
        "{e}"
    );
    let e = plan.resync(&ours, &short).unwrap_err();
    assert!(
        matches!(
            e,
            FailbackError::DiskSizeMismatch {
                side: Side::NewPrimary,
                ..
            }
        ),
        "{e}"
    );

    // The receiver sees a generation mismatch if it expects A's old lineage: the failback
    // stream names B's.
    let stream = encode(&plan, &s.b);
    let old = Expected {
        disk_id: Some(DISK_ID),
        generation: Some(a.generation),
        replica_seq: Some(a.from_sequence),
    };
    let e = apply(&stream, Recording::new(s.a.clone()), old)
        .err()
        .unwrap();
    assert!(matches!(e, StreamError::WrongGeneration { .. }), "{e}");
    // And a target smaller than the disk is refused before anything is written.
    let e = apply(
        &stream,
        Recording::new(vec![0; DISK as usize / 2]),
        this_disk(),
    )
    .err()
    .unwrap();
    assert!(matches!(e, StreamError::TargetTooSmall { .. }), "{e}");
}
