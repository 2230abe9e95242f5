//! Review of the replica store's bundles: each test here failed on the code under review.

#[path = "common/source.rs"]
mod source;

use std::collections::HashMap;

use blockdelta::replica::{PointId, ReplicaError, Retention, Store, StoreConfig};
use source::{Rng, Source};

const DISK_ID: [u8; 16] = *b"review-bundle-dk";

fn ingest(store: &Store, stream: &[u8]) -> Result<blockdelta::replica::Ingested, ReplicaError> {
    let mut ing = store.ingest(None)?;
    for c in stream.chunks(50_000) {
        ing.push(c)?;
    }
    ing.finish()
}

fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| (rng.next() as u8) | 1).collect()
}

/// One point per call: `len` bytes of fresh (never zero) data at `off`.
fn one_point(
    store: &Store,
    src: &mut Source,
    rng: &mut Rng,
    oracle: &mut HashMap<PointId, Vec<u8>>,
    off: u64,
    len: usize,
) -> Result<blockdelta::replica::Ingested, ReplicaError> {
    let data = random_bytes(rng, len);
    src.write_data(off, &data);
    let to = src.seq + 1;
    let got = ingest(store, &src.stream(to, 65536))?;
    oracle.insert(got.point.id, src.disk.clone());
    src.commit(to);
    Ok(got)
}

fn check_points(store: &Store, oracle: &HashMap<PointId, Vec<u8>>) {
    for p in store.points() {
        let want = &oracle[&p.id];
        let mut got = vec![0xAAu8; want.len()];
        store.read_at(p.id, 0, &mut got).unwrap();
        assert!(got == *want, "point {} differs", p.id.sequence);
    }
}

/// Under a byte cap, an ingest that needs a little room expires the oldest points early
/// (`fit_under`). Each expired point here makes its whole pack dead (the next point overwrites
/// the same blocks). Standalone, the first expiry frees a whole pack and the stream fits. Once
/// the packs are bundled, a dead pack inside a bundle frees nothing (the bundle keeps its
/// length until it is re-bundled, which `fit_under` never does), so the cap check keeps
/// expiring: every point but the newest is lost, for a stream that needed one pack's room.
#[test]
fn byte_cap_expiry_does_not_expire_every_bundled_point() {
    cap_expiry(true);
}

/// The same without bundles (the control): one or two expiries, and the stream fits.
#[test]
fn byte_cap_expiry_of_standalone_packs_control() {
    cap_expiry(false);
}

fn cap_expiry(bundle: bool) {
    let mut rng = Rng(11);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s"), StoreConfig::new(DISK_ID)).unwrap();
    let mut src = Source::new(DISK_ID, 1 << 20, 4096);
    let mut oracle = HashMap::new();
    // The first stream carries the whole (all-zero) disk: no pack.
    let to = src.seq + 1;
    let got = ingest(&store, &src.stream(to, 65536)).unwrap();
    oracle.insert(got.point.id, src.disk.clone());
    src.commit(to);
    for _ in 0..66 {
        one_point(&store, &mut src, &mut rng, &mut oracle, 0, 64 << 10).unwrap();
    }
    if bundle {
        store.retain(blockdelta::replica::now_ns()).unwrap();
    }
    let st = store.stats();
    assert_eq!(st.bundles, bundle as u64, "{st:?}");
    let points_before = store.point_count();
    // Room for the store as it is plus about half of one more 64 KiB stream: one expiry
    // (which kills a ~64 KiB pack) is enough.
    store
        .set_retention(Retention {
            max_bytes: Some(st.bytes + (32 << 10)),
            ..Retention::default()
        })
        .unwrap();
    let got = one_point(&store, &mut src, &mut rng, &mut oracle, 0, 64 << 10);
    let expired = match &got {
        Ok(g) => g.expired.len(),
        Err(e) => panic!("the stream was refused: {e:?}; points left {}", store.point_count()),
    };
    assert!(
        expired <= 3,
        "{expired} of {points_before} points expired early for one 64 KiB stream \
         (dead packs inside a bundle free nothing); {:?}",
        store.stats()
    );
    check_points(&store, &oracle);
}
