//! Failback without a full copy (issue 10 §4), as a user runs it with the pieces the library
//! has: the original primary A replicates into a replica store through a persistent tracker;
//! A then makes writes the replica never sees and shuts down (its state file keeps them);
//! failover at a recovery point F makes a copy of F the new primary B, tracked from F; B
//! takes writes; failback ships to A only the union of
//! - the blocks B changed since F (B's tracker),
//! - the blocks that differ between F and the store's newest point (`changed_between`, empty
//!   when F is the newest),
//! - the blocks A changed that never reached the replica (A's state file, loaded: `Resumed`),
//!
//! as one ordinary delta stream applied to A. A ends byte-identical to B, and what was shipped
//! is that union, far less than the disk. When A cannot prove its lineage (it crashed: its
//! state file says "in use", so the load resets), failback falls back to checksum resync,
//! never to a full copy. Run with F the newest point, and with F older than it.

#[path = "common/source.rs"]
mod source;

use blockdelta::replica::{PointId, Store, StoreConfig};
use blockdelta::resync::{diff, HashConfig, HashList};
use blockdelta::stream::{encode_to_vec, Applier, DecoderConfig};
use blockdelta::{
    EncoderConfig, Extent, GenerationId, LoadOutcome, PersistOptions, PersistentTracker, Tracker,
    TrackerConfig,
};
use source::Rng;

const DISK_ID: [u8; 16] = *b"failback-test-d1";
const BLOCK: u64 = 4096;
const DISK: u64 = 1024 * BLOCK; // 4 MiB

fn config() -> TrackerConfig {
    TrackerConfig::new(DISK).granularity(BLOCK as u32)
}

/// Random writes of 1..4 blocks, each marked on `t` (the write path's order: data, then mark).
fn write(disk: &mut [u8], t: &Tracker, rng: &mut Rng, n: usize) {
    for _ in 0..n {
        let b = rng.below(DISK / BLOCK - 4);
        let len = (1 + rng.below(4)) * BLOCK;
        let at = (b * BLOCK) as usize;
        for x in &mut disk[at..at + len as usize] {
            *x = rng.next() as u8;
        }
        t.mark_write(b * BLOCK, len).unwrap();
    }
}

/// Every extent of a taken checkpoint.
fn extents_of(t: &Tracker, cp: &blockdelta::CheckpointInfo) -> Vec<Extent> {
    let mut cursor = cp.cursor();
    let mut out = Vec::new();
    let mut buf = [Extent::default(); 64];
    loop {
        let n = t.extents(&mut cursor, &mut buf).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Ships A's next checkpoint into the store and commits it after the store's durable ack.
fn ship(store: &Store, pt: &PersistentTracker, disk: &[u8]) -> PointId {
    let cp = pt.take().unwrap();
    let ext = extents_of(pt.tracker(), &cp);
    let cfg = EncoderConfig::new(DISK_ID, cp.generation, cp.from_sequence, cp.sequence, DISK);
    let stream = encode_to_vec(cfg, &ext, &mut disk.to_vec()).unwrap();
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

/// Sorted, coalesced union of byte ranges.
fn union(lists: &[&[Extent]]) -> Vec<Extent> {
    let mut all: Vec<(u64, u64)> = lists
        .iter()
        .flat_map(|l| l.iter().map(|e| (e.offset, e.offset + e.len)))
        .collect();
    all.sort_unstable();
    let mut out: Vec<Extent> = Vec::new();
    for (s, e) in all {
        match out.last_mut() {
            Some(l) if s <= l.offset + l.len => l.len = l.len.max(e - l.offset),
            _ => out.push(Extent::new(s, e - s)),
        }
    }
    out
}

/// Applies `stream` to `target` with the ordinary applier.
fn apply(stream: &[u8], target: Vec<u8>) -> Vec<u8> {
    let mut app = Applier::new(DecoderConfig::new(), target);
    let mut at = 0;
    while at < stream.len() {
        at += app.push(&stream[at..]).unwrap();
    }
    app.finish().unwrap();
    app.into_target()
}

struct Outcome {
    shipped: u64,
    resynced: bool,
}

fn failback_loop(seed: u64, f_is_newest: bool, a_crashes: bool) -> Outcome {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::create(tmp.path().join("store"), StoreConfig::new(DISK_ID)).unwrap();
    let state = tmp.path().join("a.tracker");
    let mut rng = Rng(seed);

    // A replicates: a full first point, then incrementals.
    let mut a = vec![0u8; DISK as usize];
    let (pt, _) = PersistentTracker::open(&state, config(), PersistOptions::new(DISK_ID)).unwrap();
    write(&mut a, pt.tracker(), &mut rng, 200);
    let mut points = vec![ship(&store, &pt, &a)];
    for _ in 0..4 {
        write(&mut a, pt.tracker(), &mut rng, 30);
        points.push(ship(&store, &pt, &a));
    }
    // Writes the replica never sees, then A goes down.
    write(&mut a, pt.tracker(), &mut rng, 25);
    if a_crashes {
        drop(pt); // no clean close: the state file still says "in use"
    } else {
        pt.close().unwrap();
    }

    // Failover at F: the new primary B starts as F's image and is tracked from F.
    let newest = *points.last().unwrap();
    let f = if f_is_newest { newest } else { points[2] };
    let mut b = read_point(&store, f);
    let tb = Tracker::new(config().start_clean(true)).unwrap();
    write(&mut b, &tb, &mut rng, 40);

    // Failback: what A must receive.
    let (f_gen, f_seq) = (f.generation, f.sequence);
    let (pa, outcome) = PersistentTracker::open(
        &state,
        config(),
        PersistOptions::new(DISK_ID).replica_point(newest.generation, newest.sequence),
    )
    .unwrap();
    let shipped;
    let mut resynced = false;
    match outcome {
        LoadOutcome::Resumed { generation, .. } | LoadOutcome::Recovered { generation, .. } => {
            assert!(!a_crashes);
            assert_eq!(generation, f_gen, "A continues the replicated lineage");
            let cpa = pa.take().unwrap();
            let a_unshipped = extents_of(pa.tracker(), &cpa);
            let cpb = tb.take().unwrap();
            let b_changed = extents_of(&tb, &cpb);
            let between = store.changed_between(f, newest).unwrap();
            if f_is_newest {
                assert!(between.is_empty());
            } else {
                assert!(!between.is_empty());
            }
            let u = union(&[&a_unshipped, &b_changed, &between]);
            shipped = u.iter().map(|e| e.len).sum::<u64>();
            // One ordinary stream from B, applied to A (a new lineage from A's point of view).
            let cfg = EncoderConfig::new(DISK_ID, GenerationId([7; 16]), 0, 1, DISK);
            let stream = encode_to_vec(cfg, &u, &mut b.clone()).unwrap();
            a = apply(&stream, a);
            let _ = f_seq;
        }
        LoadOutcome::Reset { .. } => {
            // A cannot prove what it holds: compare instead of copy.
            assert!(a_crashes, "a clean close must resume");
            let cfg = HashConfig::with_random_salt();
            let theirs = HashList::compute(&a, DISK, &cfg).unwrap();
            let ours = HashList::compute(&b, DISK, &cfg).unwrap();
            let plan = diff(&theirs, &ours).unwrap();
            shipped = plan.extents.iter().map(|e| e.len).sum::<u64>();
            let enc = EncoderConfig::new(DISK_ID, GenerationId([8; 16]), 0, 1, DISK);
            let stream = encode_to_vec(enc, &plan.extents, &mut b.clone()).unwrap();
            a = apply(&stream, a);
            resynced = true;
        }
    }
    drop(pa);
    assert!(
        a == b,
        "after failback A is byte-identical to the failed-over disk"
    );
    Outcome { shipped, resynced }
}

#[test]
fn failback_ships_only_the_union_with_f_the_newest_point() {
    for seed in 1..=4 {
        let o = failback_loop(seed, true, false);
        assert!(!o.resynced);
        assert!(
            o.shipped > 0 && o.shipped * 4 < DISK,
            "{} of {DISK}",
            o.shipped
        );
    }
}

#[test]
fn failback_ships_only_the_union_with_f_older_than_the_newest_point() {
    for seed in 11..=14 {
        let o = failback_loop(seed, false, false);
        assert!(!o.resynced);
        assert!(
            o.shipped > 0 && o.shipped * 3 < DISK,
            "{} of {DISK}",
            o.shipped
        );
    }
}

/// A crashed original primary cannot prove its lineage (no activity log yet): failback
/// compares instead of copying, and still ships only the differing blocks.
#[test]
fn failback_after_a_crash_of_the_original_falls_back_to_checksum_resync() {
    for (seed, newest) in [(21, true), (22, false)] {
        let o = failback_loop(seed, newest, true);
        assert!(o.resynced);
        assert!(
            o.shipped > 0 && o.shipped * 3 < DISK,
            "{} of {DISK}",
            o.shipped
        );
    }
}
