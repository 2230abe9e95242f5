//! The base in levels (`docs/REPLICA.md`, "Design"): expiring the oldest point folds its layer
//! into the base by listing it as a new level (its layer object kept as it is), not by
//! rewriting the base, whose run list grows with everything the window ever folded. The base
//! is written whole as one level only once the levels above the first hold more runs than it,
//! or number 64, or when compaction frees more data than the base holds metadata: per fold,
//! the layer bytes written stay a fraction of the base.

#[path = "common/source.rs"]
mod source;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use blockdelta::replica::{PointId, Retention, Store, StoreConfig};
use source::{Rng, Source};

const DISK_ID: [u8; 16] = *b"replica-lvl-disk";
const KEEP: u64 = 20;

fn layers(dir: &Path) -> HashMap<String, u64> {
    std::fs::read_dir(dir.join("objects"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("layer-"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect()
}

#[test]
fn a_fold_writes_a_fraction_of_the_base_and_every_point_reads_back() {
    let tmp = match Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    };
    let path = tmp.path().join("s");
    let store = Store::create(
        &path,
        StoreConfig {
            retention: Retention {
                max_points: Some(KEEP),
                ..Retention::default()
            },
            ..StoreConfig::new(DISK_ID)
        },
    )
    .unwrap();
    let blocks = 2048u64; // an 8 MiB disk
    let mut src = Source::new(DISK_ID, blocks * 4096, 4096);
    let mut rng = Rng(21);
    let mut oracle: HashMap<PointId, Vec<u8>> = HashMap::new();
    let mut written: Vec<u64> = Vec::new(); // the block each point wrote
    let (mut fold_bytes, mut folds) = (0u64, 0u64);
    let mut base_runs_at_least = 0u64;
    for i in 0..700u64 {
        // Every other block, so that no two folded blocks make one run.
        let b = rng.below(blocks / 2) * 2;
        src.write(&mut rng, b * 4096, 4096);
        written.push(b);
        let to = src.seq + 1;
        let mut ing = store.ingest(None).unwrap();
        ing.push(&src.stream(to, 4096)).unwrap();
        let p = ing.finish().unwrap().point;
        oracle.insert(p.id, src.disk.clone());
        src.commit(to);
        let before = layers(&path);
        let expired = store.retain(blockdelta::replica::now_ns()).unwrap();
        if i >= 400 {
            assert_eq!(expired.len(), 1);
            for (n, len) in layers(&path) {
                if !before.contains_key(&n) {
                    fold_bytes += len;
                }
            }
            folds += 1;
        }
        if i == 699 {
            // Blocks the base alone holds: written by a folded point, not by a kept one. Each
            // is its own run (its own pack, no neighbour).
            let n = written.len() as u64;
            let kept: HashSet<u64> = written[(n - KEEP) as usize..].iter().copied().collect();
            let folded: HashSet<u64> = written[..(n - KEEP) as usize].iter().copied().collect();
            base_runs_at_least = folded.difference(&kept).count() as u64;
        }
    }
    let base_bytes = 28 + 40 * base_runs_at_least;
    eprintln!(
        "{folds} folds wrote {fold_bytes} bytes of layers ({} per fold); the base is at least \
         {base_bytes} bytes ({base_runs_at_least} runs), what each fold wrote before levels",
        fold_bytes / folds
    );
    assert!(base_runs_at_least > 400, "{base_runs_at_least}");
    assert!(
        fold_bytes / folds * 4 < base_bytes,
        "{} bytes per fold against a {base_bytes}-byte base",
        fold_bytes / folds
    );
    // Every point, before and after a reopen (the levels replayed and merged again).
    let check = |store: &Store| {
        let points = store.points();
        assert_eq!(points.len() as u64, KEEP);
        for p in points {
            let mut b = vec![0u8; p.disk_size as usize];
            store.read_at(p.id, 0, &mut b).unwrap();
            assert!(b == oracle[&p.id], "point {}", p.id.sequence);
        }
        store.scrub().unwrap();
    };
    check(&store);
    let stats = store.stats();
    drop(store);
    let store = Store::open(&path).unwrap();
    check(&store);
    // Reopening for writing commits one small fence record (which may move the checkpoint).
    let reopened = store.stats().bytes;
    assert!(
        reopened.abs_diff(stats.bytes) <= 64 << 10,
        "{reopened} bytes after the reopen, {} before",
        stats.bytes
    );
    assert_eq!(store.stats().live_data_bytes, stats.live_data_bytes);
    // Compaction gives back the space of data only hidden levels still referenced.
    store.compact().unwrap();
    check(&store);
    assert_eq!(store.stats().dead_data_bytes, 0, "{:?}", store.stats());
}

/// `PointInfo::exclusive_bytes` is "the bytes freed if it alone were deleted": for the oldest
/// point, what retention expiring it (alone) takes off the store's live data, over many rounds
/// of random writes, zeros and discards. (Found: the oldest point always reported 0.)
#[test]
fn the_oldest_points_exclusive_bytes_are_what_expiring_it_frees() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::create(tmp.path().join("s"), StoreConfig::new(DISK_ID)).unwrap();
    let mut src = Source::new(DISK_ID, 256 * 4096, 4096);
    let mut rng = Rng(33);
    let mut nonzero = 0;
    for round in 0..80u64 {
        let ops = 1 + rng.below(12) as usize;
        src.churn(&mut rng, ops);
        let to = src.seq + 1;
        let mut ing = store.ingest(None).unwrap();
        ing.push(&src.stream(to, 4096)).unwrap();
        ing.finish().unwrap();
        src.commit(to);
        let points = store.points();
        if round < 6 || points.len() < 2 {
            continue;
        }
        let want = points[0].exclusive_bytes;
        let before = store.stats().live_data_bytes;
        store
            .set_retention(Retention {
                max_points: Some(points.len() as u64 - 1),
                ..Retention::default()
            })
            .unwrap();
        let expired = store.retain(blockdelta::replica::now_ns()).unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].point.id, points[0].id);
        let freed = before - store.stats().live_data_bytes;
        assert_eq!(want, freed, "round {round}");
        nonzero += (want > 0) as u32;
    }
    assert!(nonzero > 10, "{nonzero} rounds freed something");
}
