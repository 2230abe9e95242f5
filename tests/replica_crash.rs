//! Crash safety of the replica store, proven by crashing: a storage model that crashes at
//! every mutating call of a scenario (ingest, retention, compaction and bundling, rollback, discard), drops
//! or tears what was not synced, and then the store is reopened and checked:
//! - G1: every listed point reads back byte-identical to the source at that checkpoint;
//! - G2: every point an ingest reported durable is still listed (unless retention removed it);
//! - the store accepts the next stream after recovery.
//!
//! And G5: a failed write or sync (EIO, no crash) poisons the store; it makes no further
//! durable call until reopened.

#![allow(clippy::result_large_err)] // the scenario hands back the store with its error

#[path = "common/crash_storage.rs"]
mod crash_storage;
#[path = "common/recovered.rs"]
mod recovered;
#[path = "common/source.rs"]
mod source;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

static RESUMED: AtomicU64 = AtomicU64::new(0);

fn resumed_any(_: bool) {
    RESUMED.fetch_add(1, Ordering::Relaxed);
}

use blockdelta::replica::{PointId, ReplicaError, Retention, Store, StoreConfig};
use crash_storage::CrashStorage;
use source::{Rng, Source};

const DISK_ID: [u8; 16] = *b"crash-test-disk!";
const BLOCK: u64 = 4096;

#[derive(Default)]
struct Outcome {
    /// Every stream the scenario sent, by (generation, to_seq).
    streams: HashMap<PointId, Vec<u8>>,
    acked: Vec<PointId>,
    maybe_removed: HashSet<PointId>,
    oracle: HashMap<PointId, Vec<u8>>,
}

fn ingest(store: &Store, stream: &[u8]) -> Result<PointId, ReplicaError> {
    let mut ing = store.ingest(None)?;
    // Resume points every 64 KiB, so that crashes land between them.
    ing.set_resume_interval(64 << 10);
    for c in stream.chunks(50_000) {
        ing.push(c)?;
    }
    Ok(ing.finish()?.point.id)
}

/// Runs the scenario until the first error. The source evolves the same way in every run
/// (same seed), so `oracle` is complete for every point any run can list.
fn scenario(
    storage: &CrashStorage,
    seed: u64,
    out: &mut Outcome,
) -> Result<Store, (Option<Store>, ReplicaError)> {
    let mut rng = Rng(seed);
    let mut src = Source::new(DISK_ID, 384 << 10, BLOCK);
    src.churn(&mut rng, 40);
    let store = Store::create_in(
        Box::new(storage.clone()),
        "mem".into(),
        StoreConfig::new(DISK_ID),
    )
    .map_err(|e| (None, e))?;
    macro_rules! step {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return Err((Some(store), e)),
            }
        };
    }
    let cycle = |store: &Store,
                 src: &mut Source,
                 rng: &mut Rng,
                 out: &mut Outcome|
     -> Result<(), ReplicaError> {
        if rng.chance(20) {
            let new = ((src.size() / BLOCK) + rng.below(16))
                .saturating_sub(rng.below(16))
                .max(8)
                * BLOCK;
            src.resize(new);
        }
        let ops = 1 + rng.below(30) as usize;
        src.churn(rng, ops);
        let to = src.seq + 1;
        let stream = src.stream(to, 65536);
        let pid = PointId {
            generation: src.generation,
            sequence: to,
        };
        out.oracle.insert(pid, src.disk.clone());
        out.streams.insert(pid, stream.clone());
        let id = if rng.chance(30) {
            // Cut at a third, suspended, then resumed.
            let mut ing = store.ingest(None)?;
            ing.set_resume_interval(64 << 10);
            ing.push(&stream[..stream.len() / 3])?;
            let offset = ing.suspend()?;
            let hlen = 24 + u32::from_le_bytes(stream[16..20].try_into().unwrap()) as usize;
            let (mut ing, from) = store.resume_ingest(None, &stream[..hlen])?;
            assert_eq!(from, offset);
            ing.push(&stream[from as usize..])?;
            ing.finish()?.point.id
        } else {
            ingest(store, &stream)?
        };
        out.acked.push(id);
        src.commit(to);
        Ok(())
    };
    for _ in 0..6 {
        step!(cycle(&store, &mut src, &mut rng, out));
    }
    step!(store.set_retention(Retention {
        max_points: Some(3),
        ..Retention::default()
    }));
    out.maybe_removed
        .extend(store.points().iter().map(|p| p.id));
    step!(store.retain(0));
    for _ in 0..3 {
        step!(cycle(&store, &mut src, &mut rng, out));
    }
    step!(store.compact());
    // Compaction bundled the small packs: bundling is crashed at every call too.
    assert!(store.stats().bundles >= 1, "{:?}", store.stats());
    let pts = store.points();
    let p = pts[1].clone();
    let rb = step!(store.rollback(p.id));
    src.adopt(rb.generation, rb.sequence, &rb.extents, p.disk_size);
    for _ in 0..2 {
        step!(cycle(&store, &mut src, &mut rng, out));
    }
    out.maybe_removed
        .extend(store.points().iter().filter(|p| p.detached).map(|p| p.id));
    step!(store.discard_detached());
    step!(cycle(&store, &mut src, &mut rng, out));
    Ok(store)
}

/// Reopens and checks G1, G2 and that the store takes the next stream.
fn check_recovered(storage: CrashStorage, out: &Outcome, what: &str) {
    let store = match Store::open_in(Box::new(storage), "mem".into()) {
        Ok(s) => s,
        Err(ReplicaError::NotFound { .. }) => {
            assert!(out.acked.is_empty(), "{what}: store lost after acks");
            return;
        }
        Err(e) => panic!("{what}: reopen failed: {e}"),
    };
    recovered::check_points_survived(&store, &out.acked, &out.maybe_removed, &out.oracle, what);
    store
        .scrub()
        .unwrap_or_else(|e| panic!("{what}: scrub: {e}"));
    // A cut stream resumes where its last resume point left it.
    if let Some(p) = store
        .pending_ingest()
        .unwrap_or_else(|e| panic!("{what}: pending: {e}"))
    {
        let id = PointId {
            generation: p.header.generation,
            sequence: p.header.to_seq,
        };
        let stream = out.streams.get(&id).unwrap_or_else(|| {
            panic!(
                "{what}: pending {} not sent; sent {:?}",
                id.sequence,
                out.streams.keys().map(|k| k.sequence).collect::<Vec<_>>()
            )
        });
        let hlen = 24 + u32::from_le_bytes(stream[16..20].try_into().unwrap()) as usize;
        let (mut ing, from) = store
            .resume_ingest(None, &stream[..hlen])
            .unwrap_or_else(|e| panic!("{what}: resume: {e}"));
        ing.push(&stream[from as usize..])
            .unwrap_or_else(|e| panic!("{what}: resumed push: {e}"));
        let got = ing
            .finish()
            .unwrap_or_else(|e| panic!("{what}: resumed finish: {e}"))
            .point
            .id;
        assert_eq!(got, id);
        let mut b = vec![0u8; out.oracle[&id].len()];
        store.read_at(id, 0, &mut b).unwrap();
        assert!(b == out.oracle[&id], "{what}: resumed point differs");
        resumed_any(true);
    }
    // The next stream goes in and reads back.
    let (mut src, from) = match (store.lineage(), store.newest()) {
        (Some((g, s)), Some(head)) => (
            Source::from_image(DISK_ID, out.oracle[&head.id].clone(), g, s, BLOCK),
            s,
        ),
        _ => (Source::new(DISK_ID, 128 << 10, BLOCK), 0),
    };
    let mut rng = Rng(1234);
    src.churn(&mut rng, 10);
    let to = from + 1;
    let id = ingest(&store, &src.stream(to, 65536))
        .unwrap_or_else(|e| panic!("{what}: next stream refused: {e}"));
    let mut got = vec![0u8; src.disk.len()];
    store.read_at(id, 0, &mut got).unwrap();
    assert!(got == src.disk, "{what}: the next point differs");
}

#[test]
fn a_crash_at_every_storage_call_loses_nothing_acknowledged() {
    for seed in [11u64, 12] {
        let clean = CrashStorage::new(seed);
        let mut out = Outcome::default();
        scenario(&clean, seed, &mut out).unwrap_or_else(|(_, e)| panic!("clean run failed: {e}"));
        let total = clean.ops();
        assert!(total > 50, "scenario too small: {total} calls");
        for n in 1..=total {
            let s = CrashStorage::new(seed ^ n);
            s.crash_at(n);
            let mut out = Outcome::default();
            let r = scenario(&s, seed, &mut out);
            assert!(
                r.is_err() || s.ok_after_crash(),
                "crash at {n} did not stop the scenario"
            );
            assert!(s.crashed());
            drop(r);
            let what = format!(
                "seed {seed}, crash at call {n} ({})",
                s.trace().last().unwrap()
            );
            check_recovered(s.reboot(), &out, &what);
        }
    }
    // Crashes landed between resume points: some recoveries resumed a cut stream.
    assert!(
        RESUMED.load(Ordering::Relaxed) > 5,
        "resumed {} times",
        RESUMED.load(Ordering::Relaxed)
    );
}

#[test]
fn a_failed_write_or_sync_poisons_until_reopened() {
    let seed = 21;
    let clean = CrashStorage::new(seed);
    let mut out = Outcome::default();
    scenario(&clean, seed, &mut out).unwrap_or_else(|(_, e)| panic!("clean run failed: {e}"));
    let total = clean.ops();
    for n in 1..=total {
        let s = CrashStorage::new(seed ^ n);
        s.fail_at(n);
        let mut out = Outcome::default();
        let what = format!("EIO at call {n} ({})", clean.trace()[n as usize - 1]);
        match scenario(&s, seed, &mut out) {
            Ok(_) => panic!("{what}: the scenario went on as if nothing failed"),
            Err((Some(store), _)) => {
                // Poisoned: no change is accepted, and nothing more is made durable.
                assert!(
                    matches!(store.ingest(None), Err(ReplicaError::Poisoned)),
                    "{what}: not poisoned"
                );
                assert!(
                    matches!(store.compact(), Err(ReplicaError::Poisoned)),
                    "{what}: not poisoned"
                );
                // Reads of listed points still work.
                for p in store.points() {
                    let mut b = vec![0u8; 4096.min(p.disk_size as usize)];
                    store.read_at(p.id, 0, &mut b).unwrap();
                }
                assert_eq!(
                    s.syncs_after_failure(),
                    0,
                    "{what}: a durable call after the failure"
                );
            }
            Err((None, _)) => {}
        }
        check_recovered(s.restart(), &out, &what);
    }
}

/// Merge under a crash: `merge` writes its output front to back with END last, so a merge cut
/// by a crash (or a kill) at any byte leaves an output file no store accepts. Ingesting
/// prefixes of a merged stream, as such a crash leaves it, is refused every time and leaves
/// the store's points exactly as they were; the whole output ingests as one point that reads
/// back as the source at the last input's checkpoint.
#[test]
fn a_merge_cut_by_a_crash_at_any_byte_changes_nothing() {
    use blockdelta::stream::{merge, DecoderConfig, MergeInput};
    use blockdelta::EncoderConfig;
    let mut rng = Rng(91);
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::create(tmp.path().join("s"), StoreConfig::new(DISK_ID)).unwrap();
    let mut src = Source::new(DISK_ID, 256 << 10, BLOCK);
    src.churn(&mut rng, 20);
    let mut ing = store.ingest(None).unwrap();
    ing.push(&src.stream(1, 65536)).unwrap();
    ing.finish().unwrap();
    src.commit(1);
    let before = store.points();
    // Three consecutive streams, merged offline instead of ingested one by one.
    let mut streams = Vec::new();
    for _ in 0..3 {
        src.churn(&mut rng, 15);
        let to = src.seq + 1;
        streams.push(src.stream(to, 65536));
        src.commit(to);
    }
    let mut inputs: Vec<MergeInput<std::io::Cursor<Vec<u8>>>> = streams
        .iter()
        .map(|s| MergeInput::new(std::io::Cursor::new(s.clone()), DecoderConfig::new()))
        .collect();
    let mut cfg = EncoderConfig::new(DISK_ID, src.generation, 0, 1, src.size());
    cfg.record_size = 16 << 10;
    let mut merged = Vec::new();
    merge(&mut inputs, cfg, &mut merged).unwrap();
    let cuts: Vec<usize> = (0..merged.len())
        .step_by(331)
        .chain([merged.len() - 1])
        .collect();
    assert!(cuts.len() > 50, "{} cuts", cuts.len());
    for &cut in &cuts {
        let r = store.ingest(None).and_then(|mut ing| {
            ing.push(&merged[..cut])?;
            ing.finish()
        });
        assert!(r.is_err(), "a merge cut at byte {cut} was accepted");
        assert_eq!(store.points(), before, "cut at {cut}");
    }
    let mut ing = store.ingest(None).unwrap();
    ing.push(&merged).unwrap();
    let p = ing.finish().unwrap().point;
    assert_eq!(p.id.sequence, src.seq);
    let mut b = vec![0u8; p.disk_size as usize];
    store.read_at(p.id, 0, &mut b).unwrap();
    assert!(b == src.disk, "the merged point reads back as the source");
}
