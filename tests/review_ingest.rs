//! Review of the pack writer thread, `DirUpload` and resume points: packs, checksums and
//! resumed points must be exactly what was appended.

use std::sync::Arc;

use blockdelta::replica::{DirStorage, PointId, ReplicaError, Store, StoreConfig};

#[path = "common/source.rs"]
mod source;
use source::{Rng, Source};

const DISK_ID: [u8; 16] = *b"review-ingest-dk";

fn read_all(store: &Store, id: PointId, size: usize) -> Vec<u8> {
    let mut b = vec![0u8; size];
    store.read_at(id, 0, &mut b).unwrap();
    b
}

/// Unaligned writes (so the pack has padding and partial chunks), frequent resume points at
/// unaligned pack lengths, cuts and resumes in the same process and after a reopen.
#[test]
fn resumed_streams_with_frequent_resume_points_scrub_and_read_back() {
    resumed_streams(7, false, 1 << 20);
}

#[test]
fn resumed_encrypted_streams_with_small_pushes_resizes_and_bookmarks() {
    resumed_streams(8, true, 40_000);
}

fn resumed_streams(seed: u64, encrypted: bool, push: u64) {
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut store = Store::create(&path, StoreConfig::new(DISK_ID)).unwrap();
    let mut src = Source::new(DISK_ID, 12 << 20, 512);
    let secret =
        || encrypted.then(|| blockdelta::Secret::new(b"review secret, 16+ bytes").unwrap());
    if encrypted {
        src.secret = Some(b"review secret, 16+ bytes".to_vec());
    }
    for round in 0..6u64 {
        if encrypted && round > 0 {
            let new = ((10 << 20) + rng.below(4 << 20)) / 512 * 512;
            src.resize(new);
            src.bookmark = Some((
                round,
                blockdelta::BookmarkKind::ApplicationConsistent,
                format!("bm {round}"),
            ));
        }
        // Lots of data, at 512-byte granularity.
        let n = 4 + rng.below(6);
        for _ in 0..n {
            let size = src.size();
            let off = rng.below(size / 512) * 512;
            let len = ((1 + rng.below(3 << 20)) / 512 * 512 + 512).min(size - off);
            src.write(&mut rng, off, len);
        }
        src.churn(&mut rng, 200);
        let to = src.seq + 1;
        let stream = src.stream(to, (1 << 20) - (rng.below(1 << 16) as u32 & !511));
        let hlen = 24 + u32::from_le_bytes(stream[16..20].try_into().unwrap()) as usize;
        let mut ing = store.ingest(secret()).unwrap();
        ing.set_resume_interval(100_000 + rng.below(900_000));
        let mut pos = 0;
        let id;
        let mut cuts = 0;
        loop {
            let end = (pos + 1 + rng.below(push) as usize).min(stream.len());
            ing.push(&stream[pos..end]).unwrap();
            pos = end;
            if pos == stream.len() {
                id = Some(ing.finish().unwrap().point.id);
                break;
            }
            if cuts < 3 && rng.chance(30) {
                cuts += 1;
                let off = ing.suspend().unwrap();
                if (round + cuts) % 3 == 0 {
                    drop(store);
                    store = Store::open(&path).unwrap();
                }
                let (i, from) = store.resume_ingest(secret(), &stream[..hlen]).unwrap();
                assert_eq!(from, off);
                ing = i;
                ing.set_resume_interval(100_000 + rng.below(900_000));
                pos = from as usize;
            }
        }
        let id = id.unwrap();
        store.scrub().unwrap();
        assert!(
            read_all(&store, id, src.disk.len()) == src.disk,
            "round {round}: the point differs from the source"
        );
        src.commit(to);
    }
}

#[path = "common/fail_storage.rs"]
mod fail_storage;
use fail_storage::{FailStorage, Plan};

/// ENOSPC on the writer thread after resume points: `StorageFull`, the store stays usable, and
/// the cut stream resumes from its last resume point into a pack that scrubs and reads back.
#[test]
fn enospc_on_the_writer_thread_then_resume_the_pending_stream() {
    for (seed, n) in [(1u64, 3u64), (2, 4), (3, 6), (4, 9)] {
        let mut rng = Rng(100 + seed);
        let dir = tempfile::tempdir().unwrap();
        let storage = FailStorage {
            inner: Arc::new(DirStorage::new(dir.path().join("s")).unwrap()),
            plan: Default::default(),
        };
        let store = Store::create_in(
            Box::new(storage.clone()),
            "fail".into(),
            StoreConfig::new(DISK_ID),
        )
        .unwrap();
        let mut src = Source::new(DISK_ID, 12 << 20, 512);
        for _ in 0..8 {
            let off = rng.below(20_000) * 512;
            let len = (1 + rng.below(4000)) * 512;
            src.write(&mut rng, off, len.min(src.size() - off));
        }
        let to = src.seq + 1;
        let stream = src.stream(to, 65536);
        let hlen = 24 + u32::from_le_bytes(stream[16..20].try_into().unwrap()) as usize;
        *storage.plan.lock().unwrap() = Plan {
            append: Some((n, libc::ENOSPC)),
            ..Plan::default()
        };
        let mut ing = store.ingest(None).unwrap();
        ing.set_resume_interval(700_001);
        let mut r = Ok(());
        for c in stream.chunks(100_000) {
            r = ing.push(c);
            if r.is_err() {
                break;
            }
        }
        let r = match r {
            Ok(()) => ing.finish().map(|_| ()),
            Err(e) => {
                drop(ing);
                Err(e)
            }
        };
        assert!(
            matches!(r, Err(ReplicaError::StorageFull { .. })),
            "append {n}: {r:?}"
        );
        *storage.plan.lock().unwrap() = Plan::default();
        let pending = store
            .pending_ingest()
            .unwrap()
            .expect("a resume point was saved");
        let (mut ing, from) = store.resume_ingest(None, &stream[..hlen]).unwrap();
        assert_eq!(from, pending.stream_offset);
        for c in stream[from as usize..].chunks(77_777) {
            ing.push(c).unwrap();
        }
        let id = ing.finish().unwrap().point.id;
        store.scrub().unwrap();
        assert!(
            read_all(&store, id, src.disk.len()) == src.disk,
            "append {n}"
        );
    }
}

/// The frame boundaries of a stream (each frame: 24-byte header, body length at 16..20).
fn frame_ends(stream: &[u8]) -> Vec<usize> {
    let mut v = Vec::new();
    let mut p = 0;
    while p < stream.len() {
        p += 24 + u32::from_le_bytes(stream[p + 16..p + 20].try_into().unwrap()) as usize;
        v.push(p);
    }
    v
}

/// A stream cut at every frame boundary (right after the header, right before END included),
/// suspended and resumed, with a resize and a bookmark: every point reads back as the source.
#[test]
fn a_stream_cut_at_every_frame_boundary_resumes_to_the_source() {
    let mut rng = Rng(99);
    for (k, new_size) in [(0usize, 3u64 << 20), (1, 5 << 20), (2, (2 << 20) + 512)] {
        let mut src = Source::new(DISK_ID, 4 << 20, 512);
        src.write(&mut rng, 0, 4 << 20);
        let first = src.stream(src.seq + 1, 65536);
        src.commit(src.seq + 1);
        src.resize(new_size);
        src.churn(&mut rng, 30);
        src.bookmark = Some((5, blockdelta::BookmarkKind::CrashConsistent, "b".into()));
        let to = src.seq + 1;
        let stream = src.stream(to, 8192);
        let ends = frame_ends(&stream);
        let hlen = ends[0];
        for (i, &cut) in ends[..ends.len() - 1].iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s");
            let mut store = Store::create(&path, StoreConfig::new(DISK_ID)).unwrap();
            let mut ing = store.ingest(None).unwrap();
            ing.push(&first).unwrap();
            ing.finish().unwrap();
            let mut ing = store.ingest(None).unwrap();
            ing.push(&stream[..cut]).unwrap();
            let off = ing.suspend().unwrap();
            assert_eq!(off as usize, cut);
            if i % 3 == k {
                drop(store);
                store = Store::open(&path).unwrap();
            }
            let (mut ing, from) = store.resume_ingest(None, &stream[..hlen]).unwrap();
            assert_eq!(from as usize, cut);
            ing.push(&stream[cut..]).unwrap();
            let got = ing.finish().unwrap();
            assert!(
                read_all(&store, got.point.id, src.disk.len()) == src.disk,
                "size {new_size}, cut after frame {i}"
            );
            assert_eq!(got.point.disk_size, src.disk.len() as u64);
            assert_eq!(
                got.point.bookmark_id,
                Some(5),
                "size {new_size}, cut after frame {i}"
            );
            store.scrub().unwrap();
        }
    }
}

#[path = "common/crash_storage.rs"]
mod crash_storage;
use crash_storage::CrashStorage;

/// A crash at every storage call of a 6 MiB ingest with resume points every ~700 KB (the
/// writer thread running): after the reboot the cut stream resumes (or is sent again) and the
/// point reads back as the source; the pack scrubs.
#[test]
fn a_crash_at_every_call_of_a_threaded_ingest_resumes_to_the_source() {
    let mut rng = Rng(5);
    let mut src = Source::new(DISK_ID, 8 << 20, 512);
    src.write(&mut rng, 0, 1 << 20);
    let first = src.stream(src.seq + 1, 65536);
    src.commit(src.seq + 1);
    src.write(&mut rng, 1 << 20, 6 << 20);
    src.churn(&mut rng, 50);
    let to = src.seq + 1;
    let stream = src.stream(to, 65536);
    let hlen = 24 + u32::from_le_bytes(stream[16..20].try_into().unwrap()) as usize;
    let base = |seed: u64| {
        let s = CrashStorage::new(seed);
        let store =
            Store::create_in(Box::new(s.clone()), "mem".into(), StoreConfig::new(DISK_ID)).unwrap();
        let mut ing = store.ingest(None).unwrap();
        ing.push(&first).unwrap();
        ing.finish().unwrap();
        (s, store)
    };
    let (s, store) = base(1);
    let before = s.ops();
    let mut ing = store.ingest(None).unwrap();
    ing.set_resume_interval(700_001);
    for c in stream.chunks(100_000) {
        ing.push(c).unwrap();
    }
    ing.finish().unwrap();
    let total = s.ops() - before;
    drop(store);
    for n in 1..=total {
        let (s, store) = base(n);
        s.crash_at(s.ops() + n);
        let r = (|| {
            let mut ing = store.ingest(None)?;
            ing.set_resume_interval(700_001);
            for c in stream.chunks(100_000) {
                ing.push(c)?;
            }
            ing.finish()
        })();
        drop(store);
        let s2 = s.reboot();
        let store = Store::open_in(Box::new(s2), "mem".into()).unwrap();
        let id = if store.points().iter().any(|p| p.id.sequence == to) {
            assert!(r.is_ok() || r.is_err());
            store.points().last().unwrap().id
        } else {
            let (mut ing, from) = match store.pending_ingest().unwrap() {
                Some(_) => store.resume_ingest(None, &stream[..hlen]).unwrap(),
                None => (store.ingest(None).unwrap(), 0),
            };
            for c in stream[from as usize..].chunks(100_000) {
                ing.push(c).unwrap();
            }
            ing.finish().unwrap().point.id
        };
        store
            .scrub()
            .unwrap_or_else(|e| panic!("crash at {n}/{total}: {e:?}"));
        assert!(
            read_all(&store, id, src.disk.len()) == src.disk,
            "crash at {n}/{total}"
        );
    }
}

/// ENOSPC on a slow writer thread while the caller waits on its full queue, with and without
/// resume points: `StorageFull`, the upload gets no call after it, the store stays usable.
#[test]
fn enospc_while_the_queue_is_full() {
    for (n, every) in [
        (1u64, None),
        (2, None),
        (3, Some(2u64 << 20)),
        (2, Some(1 << 20)),
    ] {
        let mut rng = Rng(300 + n);
        let dir = tempfile::tempdir().unwrap();
        let storage = FailStorage {
            inner: Arc::new(DirStorage::new(dir.path().join("s")).unwrap()),
            plan: Default::default(),
        };
        let store = Store::create_in(
            Box::new(storage.clone()),
            "fail".into(),
            StoreConfig::new(DISK_ID),
        )
        .unwrap();
        let mut src = Source::new(DISK_ID, 12 << 20, 4096);
        src.write(&mut rng, 0, 10 << 20);
        let stream = src.stream(src.seq + 1, 1 << 20);
        *storage.plan.lock().unwrap() = Plan {
            append: Some((n, libc::ENOSPC)),
            delay_ms: 200,
            ..Plan::default()
        };
        let r = (|| {
            let mut ing = store.ingest(None)?;
            if let Some(b) = every {
                ing.set_resume_interval(b);
            }
            ing.push(&stream)?;
            ing.finish()
        })();
        assert!(
            matches!(r, Err(ReplicaError::StorageFull { .. })),
            "append {n}: {r:?}"
        );
        let p = std::mem::take(&mut *storage.plan.lock().unwrap());
        assert!(p.failed);
        assert_eq!(p.calls_after_failure, 0, "append {n}");
        let mut ing = store.ingest(None).unwrap();
        ing.push(&stream).unwrap();
        let id = ing.finish().unwrap().point.id;
        assert!(read_all(&store, id, src.disk.len()) == src.disk);
    }
}

/// EIO at every storage call of a threaded 6 MiB ingest with resume points: `Io`, the store is
/// poisoned, and nothing durable follows the failure.
#[test]
fn eio_at_every_call_of_a_threaded_ingest_poisons_with_no_durable_call_after() {
    let mut rng = Rng(6);
    let mut src = Source::new(DISK_ID, 8 << 20, 512);
    src.write(&mut rng, 0, 1 << 20);
    let first = src.stream(src.seq + 1, 65536);
    src.commit(src.seq + 1);
    src.write(&mut rng, 1 << 20, 6 << 20);
    src.churn(&mut rng, 50);
    let stream = src.stream(src.seq + 1, 65536);
    let run = |s: &CrashStorage, fail: u64| -> (Store, u64, Result<(), ReplicaError>) {
        let store =
            Store::create_in(Box::new(s.clone()), "mem".into(), StoreConfig::new(DISK_ID)).unwrap();
        let mut ing = store.ingest(None).unwrap();
        ing.push(&first).unwrap();
        ing.finish().unwrap();
        let base = s.ops();
        s.fail_at(base + fail);
        let r = (|| {
            let mut ing = store.ingest(None)?;
            ing.set_resume_interval(700_001);
            for c in stream.chunks(100_000) {
                ing.push(c)?;
            }
            ing.finish().map(|_| ())
        })();
        (store, base, r)
    };
    let clean = CrashStorage::new(1);
    let (store, base, r) = run(&clean, 1 << 40);
    r.unwrap();
    drop(store);
    let total = clean.ops() - base;
    for n in 1..=total {
        let s = CrashStorage::new(n);
        let (store, base, r) = run(&s, n);
        let what = format!(
            "EIO at ingest call {n}/{total} ({})",
            s.trace()[(base + n) as usize - 1]
        );
        assert!(r.is_err(), "{what}: went on as if nothing failed");
        assert!(
            matches!(store.ingest(None), Err(ReplicaError::Poisoned)),
            "{what}: {r:?}"
        );
        assert_eq!(
            s.syncs_after_failure(),
            0,
            "{what}: a durable call after the failure"
        );
    }
}

/// EIO on the writer thread, then a damaged frame before the ingest's next pack call: the
/// failed write must still poison the store (G5), as it did when the buffer's append was made
/// on the caller's thread (the push then failed with `Io` before reaching the damaged frame).
/// The writer thread's error is dropped with the pack instead: the store goes on as if no write
/// had failed.
#[test]
fn eio_on_the_writer_thread_is_not_lost_when_the_stream_fails_next() {
    eio_then_the_ingest_ends(false);
}

/// The same when the ingest is dropped (the sender went away) before its next pack call.
#[test]
fn eio_on_the_writer_thread_is_not_lost_when_the_ingest_is_dropped() {
    eio_then_the_ingest_ends(true);
}

fn eio_then_the_ingest_ends(drop_instead: bool) {
    let mut rng = Rng(77);
    let dir = tempfile::tempdir().unwrap();
    let storage = FailStorage {
        inner: Arc::new(DirStorage::new(dir.path().join("s")).unwrap()),
        plan: Default::default(),
    };
    let store = Store::create_in(
        Box::new(storage.clone()),
        "fail".into(),
        StoreConfig::new(DISK_ID),
    )
    .unwrap();
    let mut src = Source::new(DISK_ID, 8 << 20, 4096);
    let data: Vec<u8> = (0..(2 << 20)).map(|_| rng.next() as u8 | 1).collect();
    src.write_data(0, &data);
    // One 4 KiB piece per frame: the pack (a 4 KiB header, then the data) fills its first
    // 1 MiB buffer with the 255th DATA frame, which hands it to the writer thread.
    let mut stream = src.stream(src.seq + 1, 4096);
    let ends = frame_ends(&stream);
    let damaged = ends[255]; // the 256th DATA frame starts here
    stream[damaged + 30] ^= 0x40;
    *storage.plan.lock().unwrap() = Plan {
        append: Some((1, libc::EIO)),
        ..Plan::default()
    };
    let mut ing = store.ingest(None).unwrap();
    let r = if drop_instead {
        // The sender went away right after the buffer was handed over.
        ing.push(&stream[..damaged])
    } else {
        ing.push(&stream).and(Ok(()))
    };
    drop(ing);
    assert_eq!(r.is_err(), !drop_instead, "{r:?}");
    assert!(
        storage.plan.lock().unwrap().failed,
        "the writer thread's append was made"
    );
    assert_eq!(storage.plan.lock().unwrap().calls_after_failure, 0);
    assert!(
        matches!(store.ingest(None), Err(ReplicaError::Poisoned)),
        "a pack write failed with EIO (push: {r:?}) and the store is not poisoned"
    );
}
