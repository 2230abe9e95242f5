//! The replica store as a user drives it: cycles of random changes at the source, each
//! checkpoint's stream ingested, and every listed point read back (read_at at random offsets,
//! export to a file, export to a target) byte for byte against the source as it was then.

#[path = "common/source.rs"]
mod source;

use std::collections::HashMap;

use blockdelta::replica::{PointId, ReplicaError, Retention, Store, StoreConfig};
use blockdelta::{BookmarkKind, StreamError};
use source::{Rng, Source};

const DISK_ID: [u8; 16] = *b"replica-test-dsk";

/// Ingests `stream` in random chunks.
fn ingest(
    store: &Store,
    stream: &[u8],
    rng: &mut Rng,
    secret: Option<&[u8]>,
) -> Result<blockdelta::replica::Ingested, ReplicaError> {
    let mut ing = store.ingest(secret.map(|s| blockdelta::Secret::new(s).unwrap()))?;
    let mut pos = 0;
    while pos < stream.len() {
        let n = (1 + rng.below(70_000) as usize).min(stream.len() - pos);
        ing.push(&stream[pos..pos + n])?;
        pos += n;
    }
    ing.finish()
}

/// Checks every listed point against the oracle: whole-disk read, random small reads.
fn check_points(store: &Store, oracle: &HashMap<PointId, Vec<u8>>, rng: &mut Rng) {
    for p in store.points() {
        let want = oracle
            .get(&p.id)
            .unwrap_or_else(|| panic!("no oracle for {:?}", p.id));
        assert_eq!(p.disk_size, want.len() as u64, "size of {:?}", p.id);
        let mut got = vec![0xAAu8; want.len()];
        store.read_at(p.id, 0, &mut got).unwrap();
        assert!(got == *want, "point {} differs", p.id.sequence);
        for _ in 0..20 {
            let off = rng.below(want.len() as u64);
            let len = 1 + rng.below((want.len() as u64 - off).min(20_000));
            let mut b = vec![0u8; len as usize];
            store.read_at(p.id, off, &mut b).unwrap();
            assert_eq!(b, want[off as usize..(off + len) as usize]);
        }
    }
}

fn run_cycles(
    store: &Store,
    src: &mut Source,
    rng: &mut Rng,
    oracle: &mut HashMap<PointId, Vec<u8>>,
    cycles: usize,
) {
    for _ in 0..cycles {
        if rng.chance(15) {
            let new = (src.size() / src.block)
                .saturating_add(rng.below(64))
                .saturating_sub(rng.below(64))
                .max(8)
                * src.block;
            src.resize(new);
        }
        let ops = 1 + rng.below(40) as usize;
        src.churn(rng, ops);
        if rng.chance(30) {
            let kind = if rng.chance(50) {
                BookmarkKind::ApplicationConsistent
            } else {
                BookmarkKind::CrashConsistent
            };
            src.bookmark = Some((rng.below(1 << 40), kind, format!("label {}", src.seq)));
        }
        let to = src.seq + 1 + rng.below(3);
        let stream = src.stream(to, [4096u32, 65536, 1 << 20][rng.below(3) as usize]);
        let got = ingest(store, &stream, rng, src.secret.as_deref()).unwrap();
        assert_eq!(got.point.id.sequence, to);
        assert_eq!(got.point.id.generation, src.generation);
        if let Some((id, kind, label)) = &src.bookmark {
            assert_eq!(got.point.bookmark_id, Some(*id));
            assert_eq!(got.point.consistency, *kind);
            assert_eq!(&got.point.label, label);
        }
        oracle.insert(got.point.id, src.disk.clone());
        src.commit(to);
    }
}

#[test]
fn every_point_reads_back_as_the_source_was() {
    for seed in 1..=6u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let dir = tempfile::tempdir().unwrap();
        let block = [512u64, 4096, 65536][seed as usize % 3];
        let mut src = Source::new(DISK_ID, 2 << 20, block);
        if seed % 2 == 0 {
            src.secret = Some(b"a secret of at least 16 bytes".to_vec());
        }
        src.churn(&mut rng, 50);
        let store = Store::create(dir.path().join("s"), StoreConfig::new(DISK_ID)).unwrap();
        let mut oracle = HashMap::new();
        run_cycles(&store, &mut src, &mut rng, &mut oracle, 12);
        assert_eq!(store.points().len(), 12);
        check_points(&store, &oracle, &mut rng);
        // Reopen: the same points, the same bytes.
        drop(store);
        let store = Store::open(dir.path().join("s")).unwrap();
        assert_eq!(store.points().len(), 12);
        check_points(&store, &oracle, &mut rng);
        assert!(store.scrub().unwrap() > 0);
        // Exports.
        for p in store.points().iter().step_by(5) {
            let path = dir.path().join(format!("export-{}", p.id.sequence));
            store.export_file(p.id, &path).unwrap();
            assert!(std::fs::read(&path).unwrap() == oracle[&p.id]);
            let mut target = Vec::new();
            store.export(p.id, &mut target).unwrap();
            assert!(target == oracle[&p.id]);
        }
    }
}

#[test]
fn retention_folds_points_and_keeps_the_rest_exact() {
    let mut rng = Rng(77);
    let dir = tempfile::tempdir().unwrap();
    let mut src = Source::new(DISK_ID, 1 << 20, 4096);
    let store = Store::create(dir.path().join("s"), StoreConfig::new(DISK_ID)).unwrap();
    let mut oracle = HashMap::new();
    run_cycles(&store, &mut src, &mut rng, &mut oracle, 20);
    // Keep at most 7 points: the 13 oldest fold into the base.
    store
        .set_retention(Retention {
            max_points: Some(7),
            ..Retention::default()
        })
        .unwrap();
    let expired = store.retain(0).unwrap();
    assert_eq!(expired.len(), 13);
    assert_eq!(store.points().len(), 7);
    check_points(&store, &oracle, &mut rng);
    // Thin the middle: delete every other point by count of 4.
    store
        .set_retention(Retention {
            max_points: Some(4),
            ..Retention::default()
        })
        .unwrap();
    store.retain(0).unwrap();
    check_points(&store, &oracle, &mut rng);
    run_cycles(&store, &mut src, &mut rng, &mut oracle, 5);
    check_points(&store, &oracle, &mut rng);
    drop(store);
    let store = Store::open(dir.path().join("s")).unwrap();
    check_points(&store, &oracle, &mut rng);
    store.scrub().unwrap();
    // Retention compacts packs that are less than half live: dead data stays below live data.
    let st = store.stats();
    assert!(st.dead_data_bytes <= st.live_data_bytes, "{st:?}");
    assert!(st.bytes < 3 * st.live_data_bytes, "{st:?}");
}

#[test]
fn age_policy_expires_crash_points_and_thins_app_points() {
    let mut rng = Rng(5);
    let dir = tempfile::tempdir().unwrap();
    let mut src = Source::new(DISK_ID, 256 << 10, 4096);
    let store = Store::create(dir.path().join("s"), StoreConfig::new(DISK_ID)).unwrap();
    let mut oracle = HashMap::new();
    // 12 points, bookmark times 1..12 hours (ids are the timestamps' offsets), odd ones app.
    const H: u64 = 3_600_000_000_000;
    let base = 1_700_000_000_000_000_000u64;
    for i in 1..=12u64 {
        src.churn(&mut rng, 5);
        let kind = if i % 2 == 1 {
            BookmarkKind::ApplicationConsistent
        } else {
            BookmarkKind::CrashConsistent
        };
        src.bookmark = Some((i * H, kind, format!("p{i}")));
        let to = src.seq + 1;
        let got = ingest(&store, &src.stream(to, 1 << 20), &mut rng, None).unwrap();
        assert_eq!(got.point.time_ns, base + i * H);
        oracle.insert(got.point.id, src.disk.clone());
        src.commit(to);
    }
    // Crash points for 3 hours, app points for 9 hours, thinned to one per 4 hours beyond 3.
    store
        .set_retention(Retention {
            max_age_ns: Some(3 * H),
            app_max_age_ns: Some(9 * H),
            app_interval_ns: Some(4 * H),
            ..Retention::default()
        })
        .unwrap();
    let now = base + 12 * H;
    let expired = store.retain(now).unwrap();
    let left: Vec<String> = store.points().iter().map(|p| p.label.clone()).collect();
    // Ages: p12=0 p11=1 p10=2 p9=3 (all within 3h: kept). Older crash points (p8, p6, p4, p2)
    // expire; app points older than 9h (p1 at 11h, p3 at 9h? no: 9h is not > 9h) ...
    assert!(left.contains(&"p12".to_string()) && left.contains(&"p9".to_string()));
    for l in ["p8", "p6", "p4", "p2", "p1"] {
        assert!(
            !left.contains(&l.to_string()),
            "{l} should have expired: {left:?}"
        );
    }
    assert_eq!(expired.len() + left.len(), 12);
    check_points(&store, &oracle, &mut rng);
}

#[test]
fn rollback_detaches_then_resyncs_only_what_differs() {
    let mut rng = Rng(99);
    let dir = tempfile::tempdir().unwrap();
    let mut src = Source::new(DISK_ID, 1 << 20, 4096);
    let store = Store::create(dir.path().join("s"), StoreConfig::new(DISK_ID)).unwrap();
    let mut oracle = HashMap::new();
    run_cycles(&store, &mut src, &mut rng, &mut oracle, 8);
    let pts = store.points();
    let p = pts[3].clone();
    let rb = store.rollback(p.id).unwrap();
    assert_eq!(rb.sequence, p.id.sequence);
    assert_ne!(rb.generation, src.generation);
    // Detached points stay readable.
    assert_eq!(store.points().iter().filter(|x| x.detached).count(), 4);
    check_points(&store, &oracle, &mut rng);
    // A second rollback is refused until the branch is discarded.
    assert!(matches!(
        store.rollback(pts[1].id),
        Err(ReplicaError::DetachedPointsExist { count: 4 })
    ));
    // A stream of the old generation is now refused.
    src.churn(&mut rng, 3);
    let stale = src.stream(src.seq + 1, 1 << 20);
    assert!(matches!(
        ingest(&store, &stale, &mut rng, None),
        Err(ReplicaError::Stream(StreamError::WrongGeneration { .. }))
    ));
    // The source adopts the new lineage: only the differing extents are re-sent.
    let resent: u64 = rb.extents.iter().map(|e| e.len).sum();
    assert!(resent < src.size(), "re-sends {resent} of {}", src.size());
    src.adopt(rb.generation, rb.sequence, &rb.extents, p.disk_size);
    run_cycles(&store, &mut src, &mut rng, &mut oracle, 3);
    check_points(&store, &oracle, &mut rng);
    // Pages of the listing are the listing's slices, across the detached branch too.
    let all = store.points();
    assert_eq!(store.point_count(), all.len());
    for a in 0..=all.len() {
        for b in a..=all.len() + 2 {
            assert_eq!(store.points_in(a..b), all[a..b.min(all.len())], "{a}..{b}");
        }
    }
    assert_eq!(store.discard_detached().unwrap(), 4);
    assert_eq!(store.points().len(), 4 + 3);
    check_points(&store, &oracle, &mut rng);
    drop(store);
    let store = Store::open(dir.path().join("s")).unwrap();
    check_points(&store, &oracle, &mut rng);
}

#[test]
fn stale_duplicate_foreign_and_damaged_streams_change_nothing() {
    let mut rng = Rng(3);
    let dir = tempfile::tempdir().unwrap();
    let mut src = Source::new(DISK_ID, 512 << 10, 4096);
    let store = Store::create(dir.path().join("s"), StoreConfig::new(DISK_ID)).unwrap();
    let mut oracle = HashMap::new();
    run_cycles(&store, &mut src, &mut rng, &mut oracle, 2);
    src.churn(&mut rng, 10);
    let to = src.seq + 1;
    let stream = src.stream(to, 65536);
    ingest(&store, &stream, &mut rng, None).unwrap();
    oracle.insert(
        PointId {
            generation: src.generation,
            sequence: to,
        },
        src.disk.clone(),
    );
    let before = store.points();
    // The same stream again.
    assert!(matches!(
        ingest(&store, &stream, &mut rng, None),
        Err(ReplicaError::Stream(StreamError::AlreadyApplied { .. }))
    ));
    // Another disk.
    let mut other = Source::new(*b"another-disk-id!", 512 << 10, 4096);
    let s2 = other.stream(1, 65536);
    other.commit(1);
    assert!(matches!(
        ingest(&store, &s2, &mut rng, None),
        Err(ReplicaError::Stream(StreamError::WrongDisk { .. }))
    ));
    // Damaged: every 97th byte position flipped in turn, and cuts.
    src.commit(to);
    src.churn(&mut rng, 10);
    let next = src.stream(to + 1, 65536);
    for pos in (0..next.len()).step_by(97) {
        let mut bad = next.clone();
        bad[pos] ^= 0x40;
        assert!(
            ingest(&store, &bad, &mut rng, None).is_err(),
            "flip at {pos} accepted"
        );
    }
    for cut in (0..next.len()).step_by(next.len() / 13 + 1) {
        match ingest(&store, &next[..cut], &mut rng, None) {
            Err(ReplicaError::Stream(StreamError::Truncated { .. })) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    assert_eq!(store.points(), before);
    check_points(&store, &oracle, &mut rng);
    // The intact stream still goes in.
    ingest(&store, &next, &mut rng, None).unwrap();
    oracle.insert(
        PointId {
            generation: src.generation,
            sequence: to + 1,
        },
        src.disk.clone(),
    );
    check_points(&store, &oracle, &mut rng);
    // Nothing leaked: no uploads left behind, no unlisted objects after reopen.
    drop(store);
    let store = Store::open(dir.path().join("s")).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("s/uploads"))
            .unwrap()
            .count(),
        0
    );
    check_points(&store, &oracle, &mut rng);
}

#[test]
fn one_writer_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s"), StoreConfig::new(DISK_ID)).unwrap();
    assert!(matches!(
        Store::open(dir.path().join("s")),
        Err(ReplicaError::Locked { .. })
    ));
    assert!(matches!(
        Store::create(dir.path().join("s"), StoreConfig::new(DISK_ID)),
        Err(ReplicaError::Locked { .. })
    ));
    drop(store);
    assert!(matches!(
        Store::create(dir.path().join("s"), StoreConfig::new(DISK_ID)),
        Err(ReplicaError::AlreadyExists { .. })
    ));
    assert!(matches!(
        Store::open(dir.path().join("nothing")),
        Err(ReplicaError::NotFound { .. })
    ));
    let store = Store::open(dir.path().join("s")).unwrap();
    let ing = store.ingest(None).unwrap();
    assert!(matches!(
        store.ingest(None),
        Err(ReplicaError::IngestInProgress)
    ));
    drop(ing);
    store.ingest(None).unwrap();
}

#[test]
fn a_cut_stream_resumes_where_it_stopped_even_after_a_restart() {
    let mut rng = Rng(41);
    let dir = tempfile::tempdir().unwrap();
    let mut src = Source::new(DISK_ID, 2 << 20, 4096);
    src.secret = Some(b"resume secret, 16+ bytes".to_vec());
    let secret = || Some(blockdelta::Secret::new(b"resume secret, 16+ bytes").unwrap());
    let mut oracle = HashMap::new();
    let mut store = Store::create(dir.path().join("s"), StoreConfig::new(DISK_ID)).unwrap();
    run_cycles(&store, &mut src, &mut rng, &mut oracle, 2);
    for round in 0..6 {
        src.churn(&mut rng, 60);
        let to = src.seq + 1;
        let stream = src.stream(to, 65536);
        let header_frame_len = 24 + u32::from_le_bytes(stream[16..20].try_into().unwrap()) as usize;
        let cut =
            header_frame_len + rng.below((stream.len() - header_frame_len - 1) as u64) as usize;
        let mut ing = store.ingest(secret()).unwrap();
        ing.push(&stream[..cut]).unwrap();
        let offset = ing.suspend().unwrap();
        assert!(offset as usize <= cut);
        assert!(
            store.points().iter().all(|p| p.id.sequence < to),
            "nothing visible yet"
        );
        if round % 2 == 0 {
            drop(store);
            store = Store::open(dir.path().join("s")).unwrap();
        }
        let pending = store.pending_ingest().unwrap().expect("resumable");
        assert_eq!(pending.stream_offset, offset);
        assert_eq!(pending.header.to_seq, to);
        // Another stream's header cannot continue it.
        let mut other = Source::new(DISK_ID, 2 << 20, 4096);
        other.secret = src.secret.clone();
        let foreign = other.stream(to, 65536);
        assert!(matches!(
            store.resume_ingest(secret(), &foreign[..header_frame_len]),
            Err(ReplicaError::ResumeMismatch { .. })
        ));
        let (mut ing, from) = store
            .resume_ingest(secret(), &stream[..header_frame_len])
            .unwrap();
        assert_eq!(from, offset);
        let rest = &stream[from as usize..];
        for c in rest.chunks(1 + rng.below(40_000) as usize) {
            ing.push(c).unwrap();
        }
        let got = ing.finish().unwrap();
        assert_eq!(got.point.id.sequence, to);
        oracle.insert(got.point.id, src.disk.clone());
        src.commit(to);
        assert!(store.pending_ingest().unwrap().is_none());
    }
    check_points(&store, &oracle, &mut rng);
    // A new stream drops a resumable one.
    src.churn(&mut rng, 10);
    let to = src.seq + 1;
    let stream = src.stream(to, 65536);
    let mut ing = store.ingest(secret()).unwrap();
    ing.push(&stream[..stream.len() / 2]).unwrap();
    ing.suspend().unwrap();
    let got = ingest(&store, &stream, &mut rng, src.secret.as_deref()).unwrap();
    oracle.insert(got.point.id, src.disk.clone());
    assert!(store.pending_ingest().unwrap().is_none());
    drop(store);
    let store = Store::open(dir.path().join("s")).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("s/uploads"))
            .unwrap()
            .count(),
        0
    );
    check_points(&store, &oracle, &mut rng);
}

#[test]
fn points_read_back_exactly_from_many_threads_while_ingest_goes_on() {
    let mut rng = Rng(1717);
    let dir = tempfile::tempdir().unwrap();
    let mut src = Source::new(DISK_ID, 1 << 20, 4096);
    let store = Store::create(dir.path().join("s"), StoreConfig::new(DISK_ID)).unwrap();
    let mut oracle = HashMap::new();
    run_cycles(&store, &mut src, &mut rng, &mut oracle, 4);
    let old: Vec<(PointId, Vec<u8>)> = oracle.iter().map(|(k, v)| (*k, v.clone())).collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let reads = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|sc| {
        for t in 0..3u64 {
            let (store, old, stop, reads) = (&store, &old, &stop, &reads);
            sc.spawn(move || {
                let mut r = Rng(t + 1);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (id, want) = &old[r.below(old.len() as u64) as usize];
                    let off = r.below(want.len() as u64);
                    let len = 1 + r.below((want.len() as u64 - off).min(300_000));
                    let mut b = vec![0u8; len as usize];
                    store.read_at(*id, off, &mut b).unwrap();
                    assert!(
                        b == want[off as usize..(off + len) as usize],
                        "point {} at {off}",
                        id.sequence
                    );
                    reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
        // Meanwhile: more ingests, and retention that folds nothing the readers use... it may
        // not delete their points, so only count-based retention above them is avoided here.
        run_cycles(&store, &mut src, &mut rng, &mut oracle, 8);
        store.compact().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(reads.load(std::sync::atomic::Ordering::Relaxed) > 20);
    check_points(&store, &oracle, &mut rng);
}

/// Objects other than manifest log records (whose number follows commits, not data).
fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("objects"))
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("log-")
        })
        .count()
}

/// Small streams each write a small pack; retention copies them into bundles once 64 exist
/// (only the manifest's pack records change), so the store does not keep a file per point.
/// Every point reads back the same before and after, after a reopen, and after expiry left
/// bundles sparse and they were bundled again (their dead space given back).
#[test]
fn retention_bundles_small_packs_and_every_point_reads_the_same() {
    let mut rng = Rng(77);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut src = Source::new(DISK_ID, 1 << 20, 4096);
    src.churn(&mut rng, 30);
    let store = Store::create(&path, StoreConfig::new(DISK_ID)).unwrap();
    let mut oracle = HashMap::new();
    // (A stream whose data is all zeros writes no pack.)
    while store.stats().packs < 64 {
        store.retain(now()).unwrap();
        assert_eq!(store.stats().bundles, 0, "fewer than 64 packs: not yet");
        run_cycles(&store, &mut src, &mut rng, &mut oracle, 1);
    }
    let before = count_files(&path);
    store.retain(now()).unwrap();
    let st = store.stats();
    assert_eq!((st.bundles, st.packs), (1, 64));
    assert_eq!(
        count_files(&path),
        before - 63,
        "64 packs became one bundle"
    );
    check_points(&store, &oracle, &mut rng);
    assert!(store.scrub().unwrap() > 0);
    drop(store);
    let store = Store::open(&path).unwrap();
    check_points(&store, &oracle, &mut rng);
    // Expire the oldest points: most of the bundle's packs die (folded into the base, their
    // blocks overwritten since), and retention bundles its live packs again.
    run_cycles(&store, &mut src, &mut rng, &mut oracle, 10);
    let bytes_before = store.stats().bytes;
    let bundled_before = bundle_bytes(&path);
    store
        .set_retention(Retention {
            max_points: Some(40),
            ..Retention::default()
        })
        .unwrap();
    store.retain(now()).unwrap();
    assert_eq!(store.points().len(), 40);
    let st = store.stats();
    assert!(st.bytes < bytes_before, "{} >= {bytes_before}", st.bytes);
    // The bundle fell under half live and was replaced by one holding only its live packs
    // (and the newer small packs: fewer than 64 of them alone would not have been bundled).
    assert_eq!(st.bundles, 1);
    assert!(
        bundle_bytes(&path) < bundled_before,
        "{} vs {bundled_before}",
        bundle_bytes(&path)
    );
    check_points(&store, &oracle, &mut rng);
    store.compact().unwrap();
    let st = store.stats();
    assert!(st.bundles <= 1, "{st:?}");
    check_points(&store, &oracle, &mut rng);
    store.scrub().unwrap();
    let files = count_files(&path);
    drop(store);
    let store = Store::open(&path).unwrap();
    check_points(&store, &oracle, &mut rng);
    store.scrub().unwrap();
    // Opening collected nothing: no bundling step left an unreferenced object behind.
    assert_eq!(count_files(&path), files);
}

fn bundle_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir.join("objects"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("bundle-"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

fn now() -> u64 {
    blockdelta::replica::now_ns()
}

/// A slip such as `s3:bucket/prefix` (for `s3://`) is refused, not taken for a local
/// directory of that name: the replica would land on the local disk.
#[test]
fn a_scheme_without_slashes_is_refused_not_taken_for_a_directory() {
    for url in [
        "s3:bucket/p",
        "az:container/p",
        "file:/tmp/x",
        "https:host/p",
    ] {
        match Store::create_url(url, &[], StoreConfig::new(*b"url-slip-disk-id")) {
            Err(ReplicaError::InvalidArgument { reason }) => {
                assert!(reason.contains("://"), "{url}: {reason}")
            }
            Err(e) => panic!("{url}: {e}"),
            Ok(_) => panic!("{url}: a store was created"),
        }
        assert!(!std::path::Path::new(url).exists(), "{url}");
    }
}
