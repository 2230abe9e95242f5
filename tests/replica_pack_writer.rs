//! The pack writer thread: a failed append or sync of a pack, which happens on that thread, is
//! reported by the ingest's next `push`, `suspend` or `finish` as the same error a write on the
//! caller's thread gives (ENOSPC: `StorageFull`, the store stays usable; anything else, and a
//! failed sync above all: `Io`, the store is poisoned), nothing visible changes, the upload gets
//! no call after its failure, and no writer thread is left running.

use std::sync::{Arc, Mutex, MutexGuard};

use blockdelta::replica::{DirStorage, PointId, ReplicaError, Storage, Store, StoreConfig};

#[path = "common/source.rs"]
mod source;
use source::{Rng, Source};

const DISK_ID: [u8; 16] = *b"pack-writer-disk";

/// The tests count the process's writer threads: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[path = "common/fail_storage.rs"]
mod fail_storage;
use fail_storage::{FailStorage, Plan};

/// The process's pack writer threads (named `blockdelta-pack`).
fn writer_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim_end() == "blockdelta-pack")
        .count()
}

/// Waits for a started writer thread to show (it names itself once it runs).
fn one_writer_thread() -> bool {
    for _ in 0..500 {
        if writer_threads() == 1 {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    false
}

struct Setup {
    _dir: tempfile::TempDir,
    storage: FailStorage,
    store: Store,
    /// The disk at the one committed point, and a stream of 6 MiB of new data after it.
    base: (PointId, Vec<u8>),
    stream: Vec<u8>,
    next: Vec<u8>,
}

impl Setup {
    /// Replaces the failure plan, with the counts from zero.
    fn plan(&self, p: Plan) {
        *self.storage.plan.lock().unwrap() = p;
    }
}

fn setup(seed: u64) -> Setup {
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
    let mut rng = Rng(seed);
    let mut src = Source::new(DISK_ID, 8 << 20, 4096);
    let mut random = |len: usize| (0..len).map(|_| rng.next() as u8).collect::<Vec<u8>>();
    src.write_data(0, &random(1 << 20));
    let first = src.stream(src.seq + 1, 1 << 20);
    let mut ing = store.ingest(None).unwrap();
    ing.push(&first).unwrap();
    let base = (ing.finish().unwrap().point.id, src.disk.clone());
    src.commit(base.0.sequence);
    src.write_data(1 << 20, &random(6 << 20));
    let stream = src.stream(src.seq + 1, 1 << 20);
    Setup {
        _dir: dir,
        storage,
        store,
        base,
        stream,
        next: src.disk.clone(),
    }
}

/// Pushes `stream` in 256 KiB pieces and finishes; the first error, if any.
fn ingest(
    store: &Store,
    stream: &[u8],
    resume_every: Option<u64>,
) -> Result<PointId, ReplicaError> {
    let mut ing = store.ingest(None)?;
    if let Some(b) = resume_every {
        ing.set_resume_interval(b);
    }
    for c in stream.chunks(256 << 10) {
        ing.push(c)?;
    }
    Ok(ing.finish()?.point.id)
}

fn read_all(store: &Store, id: PointId, size: usize) -> Vec<u8> {
    let mut b = vec![0u8; size];
    store.read_at(id, 0, &mut b).unwrap();
    b
}

/// Nothing visible changed: the one point is still the only one, reads back the same.
fn unchanged(t: &Setup) {
    let points = t.store.points();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].id, t.base.0);
    assert!(read_all(&t.store, t.base.0, t.base.1.len()) == t.base.1);
}

#[test]
fn enospc_on_the_writer_thread_is_storage_full_and_the_store_stays_usable() {
    let _g = serial();
    // Every append before `finish` is of a full 1 MiB buffer, made by the writer thread.
    // With resume points every 2 MiB too: a failed append is still a failed write when a
    // sync finds it.
    for (n, every) in [1, 2, 4, 7, 2, 3, 5, 6].into_iter().zip([
        None,
        None,
        None,
        None,
        Some(2 << 20),
        Some(2 << 20),
        Some(2 << 20),
        Some(2 << 20),
    ]) {
        let t = setup(n);
        t.plan(Plan {
            append: Some((n, libc::ENOSPC)),
            ..Plan::default()
        });
        let r = ingest(&t.store, &t.stream, every);
        // A resume point's sync appends the partial buffer itself: a failure there is the
        // sync's, as it always was.
        let ok = match &r {
            Err(ReplicaError::StorageFull { op }) => {
                *op == "writing a pack" || (every.is_some() && *op == "syncing a pack")
            }
            _ => false,
        };
        assert!(ok, "append {n}: {r:?}");
        assert_eq!(writer_threads(), 0, "append {n}: a writer thread is left");
        let p = t.storage.plan.lock().unwrap();
        assert!(p.failed, "append {n}: never reached");
        assert_eq!(
            p.calls_after_failure, 0,
            "append {n}: upload used after failing"
        );
        drop(p);
        unchanged(&t);
        if t.store.pending_ingest().unwrap().is_none() {
            assert_eq!(t.storage.uploads().unwrap(), Vec::<String>::new());
        }
        // Not poisoned: the same stream is taken once there is room.
        t.plan(Plan::default());
        let id = ingest(&t.store, &t.stream, None).unwrap();
        assert!(read_all(&t.store, id, t.next.len()) == t.next);
        assert_eq!(writer_threads(), 0);
    }
}

#[test]
fn eio_on_the_writer_thread_is_io_and_poisons() {
    let _g = serial();
    for n in [2, 5] {
        let t = setup(10 + n);
        t.plan(Plan {
            append: Some((n, libc::EIO)),
            ..Plan::default()
        });
        let r = ingest(&t.store, &t.stream, None);
        match &r {
            Err(ReplicaError::Io { op, source }) => {
                assert_eq!(*op, "writing a pack");
                assert_eq!(source.raw_os_error(), Some(libc::EIO));
            }
            _ => panic!("append {n}: {r:?}"),
        }
        assert_eq!(writer_threads(), 0);
        assert_eq!(t.storage.plan.lock().unwrap().calls_after_failure, 0);
        unchanged(&t);
        assert!(matches!(t.store.ingest(None), Err(ReplicaError::Poisoned)));
    }
}

#[test]
fn a_failed_pack_sync_is_io_poisons_and_is_never_retried() {
    let _g = serial();
    // A resume point every 2 MiB: the pack is synced while the writer thread is running.
    let t = setup(20);
    t.plan(Plan {
        sync: Some(1),
        ..Plan::default()
    });
    let r = ingest(&t.store, &t.stream, Some(2 << 20));
    match &r {
        Err(ReplicaError::Io { op, source }) => {
            assert_eq!(*op, "syncing a pack");
            assert!(source.to_string().contains("injected"), "{source}");
        }
        _ => panic!("{r:?}"),
    }
    assert_eq!(writer_threads(), 0);
    let p = t.storage.plan.lock().unwrap();
    assert!(p.appends >= 2, "the sync came before any thread append");
    assert_eq!(p.calls_after_failure, 0);
    drop(p);
    unchanged(&t);
    assert!(matches!(t.store.ingest(None), Err(ReplicaError::Poisoned)));
}

#[test]
fn dropping_an_ingest_mid_stream_stops_its_writer_thread() {
    let _g = serial();
    let t = setup(30);
    t.plan(Plan::default());
    {
        let mut ing = t.store.ingest(None).unwrap();
        ing.push(&t.stream[..t.stream.len() / 2]).unwrap();
        assert!(one_writer_thread(), "3 MiB pushed: the writer thread runs");
    }
    assert_eq!(writer_threads(), 0);
    unchanged(&t);
    assert_eq!(t.storage.uploads().unwrap(), Vec::<String>::new());
    // Suspended and resumed with the thread running in both halves.
    let mut ing = t.store.ingest(None).unwrap();
    ing.push(&t.stream[..t.stream.len() / 2]).unwrap();
    assert!(one_writer_thread());
    let off = ing.suspend().unwrap();
    assert_eq!(writer_threads(), 0);
    let hlen = 24 + u32::from_le_bytes(t.stream[16..20].try_into().unwrap()) as usize;
    let (mut ing, from) = t.store.resume_ingest(None, &t.stream[..hlen]).unwrap();
    assert_eq!(from, off);
    for c in t.stream[from as usize..].chunks(1 << 20) {
        ing.push(c).unwrap();
    }
    let id = ing.finish().unwrap().point.id;
    assert_eq!(writer_threads(), 0);
    assert!(read_all(&t.store, id, t.next.len()) == t.next);
}
