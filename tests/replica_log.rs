//! The manifest log (`docs/REPLICA.md`, "Commit protocols"): a commit writes one small record
//! instead of the whole manifest, so the metadata a point costs does not grow with the number
//! of points; the manifest is rewritten (a checkpoint) only when the records add up to its
//! size, and their number stays bounded. A reopen at any moment replays the records exactly;
//! a gap in them, or a record of another store, is refused; records a checkpoint replaced are
//! deleted.

#[path = "common/source.rs"]
mod source;

use std::collections::HashMap;
use std::path::Path;

use blockdelta::replica::{PointId, ReplicaError, Retention, Store, StoreConfig};
use source::{Rng, Source};

const DISK_ID: [u8; 16] = *b"replica-log-disk";

fn tmp() -> tempfile::TempDir {
    // fsync is what a commit costs; tmpfs keeps hundreds of commits fast.
    match Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    }
}

fn logs(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir.join("objects"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("log-"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    v.sort();
    v
}

/// One small point: a 4 KiB write.
fn point(store: &Store, src: &mut Source, rng: &mut Rng) -> PointId {
    let off = rng.below(src.size() / 4096) * 4096;
    src.write(rng, off, 4096);
    let to = src.seq + 1;
    let mut ing = store.ingest(None).unwrap();
    ing.push(&src.stream(to, 4096)).unwrap();
    let p = ing.finish().unwrap().point.id;
    src.commit(to);
    p
}

fn check(store: &Store, oracle: &HashMap<PointId, Vec<u8>>) {
    let points = store.points();
    assert!(!points.is_empty());
    for p in points {
        let mut b = vec![0u8; p.disk_size as usize];
        store.read_at(p.id, 0, &mut b).unwrap();
        assert!(b == oracle[&p.id], "point {}", p.id.sequence);
    }
}

/// Metadata written per point: before the log, every commit rewrote the manifest (88 bytes
/// per point, 32 per pack). Now the last 400 of 1,000 small points wrote, all commits
/// together (records and checkpoints), a small constant per point, far below one manifest
/// each; the records never number more than 512 and the directory holds only the live ones.
#[test]
fn metadata_per_point_does_not_grow_with_the_points() {
    let dir = tmp();
    let path = dir.path().join("s");
    let store = Store::create(&path, StoreConfig::new(DISK_ID)).unwrap();
    let mut src = Source::new(DISK_ID, 4 << 20, 4096);
    let mut rng = Rng(3);
    let (mut meta, mut checkpoints, mut manifest_len) = (0u64, 0u64, 0u64);
    let mut seen: std::collections::HashSet<String> = Default::default();
    for i in 0..1000 {
        point(&store, &mut src, &mut rng);
        let m = std::fs::metadata(path.join("MANIFEST")).unwrap().len();
        let now = logs(&path);
        assert!(now.len() <= 512, "{} records", now.len());
        if i >= 600 {
            for (n, len) in &now {
                if !seen.contains(n) {
                    meta += len;
                }
            }
            if m != manifest_len {
                meta += m;
                checkpoints += 1;
            }
        }
        seen.extend(now.into_iter().map(|x| x.0));
        manifest_len = m;
    }
    let whole = manifest_len; // what one commit wrote before the log (at the end: the most)
    eprintln!(
        "400 points: {meta} bytes of metadata ({} per point), {checkpoints} checkpoints; \
         a whole manifest is {whole} bytes",
        meta / 400
    );
    assert!(
        checkpoints >= 1,
        "the records were folded into a checkpoint"
    );
    assert!(
        meta / 400 < 2048 && meta * 20 < whole * 400,
        "{} bytes per point against {whole} for a whole manifest",
        meta / 400
    );
}

/// Reopening after every commit, at every point of the log's life (records accumulating, a
/// checkpoint, records after it), gives the same points with the same bytes; retention
/// (records that remove and change points) replays too.
#[test]
fn every_reopen_replays_the_log_exactly() {
    let dir = tmp();
    let path = dir.path().join("s");
    let mut store = Store::create(&path, StoreConfig::new(DISK_ID)).unwrap();
    let mut src = Source::new(DISK_ID, 1 << 20, 4096);
    let mut rng = Rng(11);
    let mut oracle = HashMap::new();
    let mut checkpoints = 0;
    let mut last_manifest = Vec::new();
    for i in 0..300u64 {
        let id = point(&store, &mut src, &mut rng);
        oracle.insert(id, src.disk.clone());
        if i % 7 == 3 {
            store
                .set_retention(Retention {
                    max_points: Some(5 + rng.below(20)),
                    ..Retention::default()
                })
                .unwrap();
            store.retain(blockdelta::replica::now_ns()).unwrap();
        }
        if i % 37 == 36 {
            store.checkpoint().unwrap();
            assert!(logs(&path).is_empty(), "a checkpoint deletes the records");
        }
        let m = std::fs::read(path.join("MANIFEST")).unwrap();
        if m != last_manifest {
            checkpoints += 1;
            last_manifest = m;
        }
        let before: Vec<_> = store.points();
        // (The read index may be cut into pieces differently when built in one go.)
        // (Reopening for writing commits a small fence record, which may move the checkpoint:
        // the bytes are compared apart.)
        let stats = |s: &Store| {
            let mut st = s.stats();
            st.index_pieces = 0;
            let bytes = std::mem::take(&mut st.bytes);
            (st, bytes)
        };
        let (st, bytes) = stats(&store);
        drop(store);
        store = Store::open(&path).unwrap();
        assert_eq!(store.points(), before, "after commit {i}");
        let (reopened, reopened_bytes) = stats(&store);
        assert_eq!(reopened, st, "after commit {i}");
        assert!(
            reopened_bytes.abs_diff(bytes) <= 64 << 10,
            "after commit {i}: {reopened_bytes} bytes, {bytes} before the reopen"
        );
        if i % 25 == 0 {
            check(&store, &oracle);
        }
    }
    check(&store, &oracle);
    assert!(checkpoints >= 8, "{checkpoints} checkpoints");
}

/// A record missing from the middle of the log (the records after a checkpoint are written
/// one at a time, each after the last is durable) is corruption: the store refuses to open
/// rather than guess, and deletes nothing. Records left from before the checkpoint (a crash
/// between writing it and deleting them) are deleted at open.
#[test]
fn a_gap_in_the_log_is_refused_and_stale_records_are_collected() {
    let dir = tmp();
    let path = dir.path().join("s");
    let store = Store::create(&path, StoreConfig::new(DISK_ID)).unwrap();
    let mut src = Source::new(DISK_ID, 1 << 20, 4096);
    let mut rng = Rng(5);
    for _ in 0..4 {
        point(&store, &mut src, &mut rng);
    }
    let points = store.points();
    drop(store);
    let recs = logs(&path);
    assert!(recs.len() >= 4, "{recs:?}");
    // Stale records: a copy of one placed before the checkpoint's counter is collected.
    let stale = path.join("objects").join("log-0000000000000001");
    std::fs::copy(path.join("objects").join(&recs[0].0), &stale).unwrap();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.points(), points);
    assert!(
        !stale.exists(),
        "a record the checkpoint covers is deleted at open"
    );
    drop(store);
    // A gap: the second record removed.
    let gone = path.join("objects").join(&recs[1].0);
    let saved = std::fs::read(&gone).unwrap();
    std::fs::remove_file(&gone).unwrap();
    let files_before = std::fs::read_dir(path.join("objects")).unwrap().count();
    match Store::open(&path) {
        Err(ReplicaError::Corrupt { object, reason }) => {
            assert_eq!(object, recs[2].0, "{reason}");
        }
        other => panic!("a gap must be refused: {:?}", other.map(|_| ())),
    }
    assert_eq!(
        std::fs::read_dir(path.join("objects")).unwrap().count(),
        files_before,
        "a refused open deletes nothing"
    );
    std::fs::write(&gone, saved).unwrap();
    assert_eq!(Store::open(&path).unwrap().points(), points);
}

/// A record copied from another store (same name, another store id) is refused.
#[test]
fn a_record_of_another_store_is_refused() {
    let dir = tmp();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for p in [&a, &b] {
        let store = Store::create(p, StoreConfig::new(DISK_ID)).unwrap();
        let mut src = Source::new(DISK_ID, 1 << 20, 4096);
        let mut rng = Rng(1);
        point(&store, &mut src, &mut rng);
    }
    let rec = &logs(&a)[0].0;
    std::fs::copy(a.join("objects").join(rec), b.join("objects").join(rec)).unwrap();
    match Store::open(&b) {
        Err(ReplicaError::Corrupt { object, reason }) => {
            assert_eq!(&object, rec);
            assert!(reason.contains("another store"), "{reason}");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}
