//! Adversarial review of the manifest log and the base kept in levels (`docs/REPLICA.md`,
//! "Design", "Commit protocols", "Manifest log record"): each test is a scenario a user relies
//! on, and fails while the finding it documents stands.

#[path = "common/source.rs"]
mod source;

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use blockdelta::replica::{
    DirStorage, ManifestVersion, PointId, Retention, Storage, Store, StoreConfig, Upload,
};
use source::{Rng, Source};

const DISK_ID: [u8; 16] = *b"review-log-level";
const BLOCK: u64 = 4096;

fn ingest(store: &Store, src: &mut Source, oracle: &mut HashMap<PointId, Vec<u8>>) -> PointId {
    let to = src.seq + 1;
    let mut ing = store.ingest(None).unwrap();
    ing.push(&src.stream(to, 4096)).unwrap();
    let p = ing.finish().unwrap().point;
    oracle.insert(p.id, src.disk.clone());
    src.commit(to);
    p.id
}

fn check(store: &Store, oracle: &HashMap<PointId, Vec<u8>>, when: &str) {
    for p in store.points() {
        let want = &oracle[&p.id];
        let mut got = vec![0xAAu8; p.disk_size as usize];
        store.read_at(p.id, 0, &mut got).unwrap();
        if got != *want {
            let blk = (0..got.len() / BLOCK as usize)
                .find(|&b| {
                    let r = b * BLOCK as usize..(b + 1) * BLOCK as usize;
                    got[r.clone()] != want[r]
                })
                .unwrap();
            panic!(
                "{when}: point {} (detached: {}) differs from the source at block {blk}",
                p.id.sequence, p.detached
            );
        }
    }
}

/// Builds: point B writes blocks 0..4; point D (later detached) rewrites block 0; a rollback
/// to B detaches D; the source, adopting the new lineage, writes block 2, so the new main
/// point N covers blocks 0 and 2. Then retention (`max_points: 2`) expires B, the oldest
/// point and the branch point of the detached branch: it is folded into the base.
fn fold_the_branch_point(dir: &std::path::Path) -> (Store, HashMap<PointId, Vec<u8>>) {
    let store = Store::create(dir, StoreConfig::new(DISK_ID)).unwrap();
    let mut rng = Rng(7);
    let mut src = Source::new(DISK_ID, 8 * BLOCK, BLOCK);
    let mut oracle = HashMap::new();
    src.write(&mut rng, 0, 4 * BLOCK);
    let b = ingest(&store, &mut src, &mut oracle);
    src.write(&mut rng, 0, BLOCK);
    ingest(&store, &mut src, &mut oracle);
    let rb = store.rollback(b).unwrap();
    src.adopt(rb.generation, rb.sequence, &rb.extents, 8 * BLOCK);
    src.write(&mut rng, 2 * BLOCK, BLOCK);
    ingest(&store, &mut src, &mut oracle);
    store
        .set_retention(Retention {
            max_points: Some(2),
            ..Retention::default()
        })
        .unwrap();
    let expired = store.retain(blockdelta::replica::now_ns()).unwrap();
    assert_eq!(expired.len(), 1, "B expires by count");
    assert_eq!(expired[0].point.id, b);
    (store, oracle)
}

/// A user who rolled back keeps the detached branch readable until `discard_detached`
/// ("Rollback": "still listed and readable"). When retention expires the rollback point
/// itself (it may: the branch point can go by folding into the base), the fold drops from
/// the in-memory base what the next *main* point covers (`subtract(.., slots[no])`, where
/// `no` skips the detached points), although the detached points read the base there too:
/// the detached point reads zeros at block 2 where it should read B's data.
#[test]
fn detached_points_read_back_after_retention_folds_the_rollback_point() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, oracle) = fold_the_branch_point(&tmp.path().join("s"));
    check(&store, &oracle, "after the fold");
}

/// The same fold commits a manifest whose first point is detached: the state's own check
/// ("detached points form one contiguous branch after a main point") refuses it when the
/// store is opened again (replaying the log record, or decoding a checkpoint), so every point,
/// acknowledged as durable, becomes unreachable: `Store::open` fails with `Corrupt`. (Were it
/// accepted, `load_view` would subtract the detached point's layer from the base instead of
/// the one the writer subtracted, and the newest main point would read zeros at block 1..)
#[test]
fn store_reopens_after_retention_folds_the_rollback_point() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s");
    let (store, oracle) = fold_the_branch_point(&path);
    drop(store);
    let store = match Store::open(&path) {
        Ok(s) => s,
        Err(e) => panic!("the store no longer opens after the fold: {e}"),
    };
    check(&store, &oracle, "after reopening");
}
