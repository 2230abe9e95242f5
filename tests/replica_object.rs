//! The replica store on real object storage servers: S3 (moto) and Azure Blob (Azurite),
//! started on localhost by `.ci/object-servers start` (CI does it; locally run it and source
//! the env file it prints). Only with the cargo feature `object-store`:
//!
//! ```text
//! .ci/object-servers start && . "$(.ci/object-servers dir)/env"
//! cargo test --features object-store --test replica_object
//! ```
#![cfg(feature = "object-store")]

#[path = "common/recovered.rs"]
mod recovered;
#[path = "common/source.rs"]
mod source;

use std::collections::HashMap;
use std::io;

use blockdelta::replica::{
    ManifestVersion, ObjectStorage, Piece, PieceSink, PointId, RangeRead, ReplicaError, Retention,
    Storage, Store, StoreConfig, Upload,
};
use source::{Rng, Source};

const DISK_ID: [u8; 16] = *b"object-store-dsk";

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| {
        panic!(
            "{key} is not set: start the test servers with `.ci/object-servers start` and \
             source the env file it prints"
        )
    })
}

/// A URL (under a prefix no other test uses) and its options, for each server.
fn backends(test: &str) -> Vec<(String, Vec<(String, String)>)> {
    let unique = format!(
        "{test}-{}-{}",
        std::process::id(),
        blockdelta::GenerationId::random().0[0]
    );
    vec![
        (
            format!("s3://{}/{unique}", env("BLOCKDELTA_TEST_S3_BUCKET")),
            vec![
                ("endpoint".into(), env("BLOCKDELTA_TEST_S3_ENDPOINT")),
                ("allow_http".into(), "true".into()),
                ("part_size".into(), (5u64 << 20).to_string()),
                ("parallel".into(), "4".into()),
            ],
        ),
        (
            format!("az://{}/{unique}", env("BLOCKDELTA_TEST_AZURE_CONTAINER")),
            vec![
                ("use_emulator".into(), "true".into()),
                ("part_size".into(), (5u64 << 20).to_string()),
                ("parallel".into(), "4".into()),
            ],
        ),
    ]
}

fn opts(o: &[(String, String)]) -> Vec<(&str, &str)> {
    o.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn ingest(store: &Store, src: &Source, to: u64) -> PointId {
    let mut ing = store.ingest(None).unwrap();
    let stream = src.stream(to, 1 << 20);
    for chunk in stream.chunks(3 << 20) {
        ing.push(chunk).unwrap();
    }
    let done = ing.finish().unwrap();
    // The requests a point costs are bounded: a few small objects, the commit and its
    // check, and one per 5 MiB part of its pack.
    let parts = (stream.len() as u64).div_ceil(5 << 20);
    assert!(
        done.requests >= 3 && done.requests <= 10 + parts,
        "{} requests for a {}-byte stream",
        done.requests,
        stream.len()
    );
    done.point.id
}

fn check(store: &Store, oracle: &HashMap<PointId, Vec<u8>>) {
    let points = store.points();
    assert_eq!(points.len(), oracle.len());
    for p in points {
        let want = &oracle[&p.id];
        let mut b = vec![0u8; want.len()];
        store.read_at(p.id, 0, &mut b).unwrap();
        assert!(&b == want, "point {}", p.id.sequence);
    }
}

/// The whole life of a store on each server: a full stream large enough to go out as
/// multipart parts, incremental points, every point read back byte for byte, a reopen (the
/// log replayed), retention, a checkpoint, and a reopen again.
#[test]
fn a_store_on_object_storage_keeps_every_point_across_reopens() {
    for (url, o) in backends("life") {
        let o = opts(&o);
        let t = std::time::Instant::now();
        let mut rng = Rng(3);
        let mut src = Source::new(DISK_ID, 12 << 20, 4096);
        let mut oracle = HashMap::new();
        src.write(&mut rng, 0, 12 << 20);
        let store = Store::create_url(&url, &o, StoreConfig::new(DISK_ID)).unwrap();
        let p = ingest(&store, &src, 1);
        src.commit(1);
        oracle.insert(p, src.disk.clone());
        for to in 2..6 {
            src.churn(&mut rng, 8);
            let p = ingest(&store, &src, to);
            src.commit(to);
            oracle.insert(p, src.disk.clone());
        }
        check(&store, &oracle);
        drop(store);

        let store = Store::open_url(&url, &o).unwrap();
        check(&store, &oracle);
        store
            .set_retention(Retention {
                max_points: Some(3),
                ..Retention::default()
            })
            .unwrap();
        let expired = store.retain(blockdelta::replica::now_ns()).unwrap();
        assert_eq!(expired.len(), 2, "{url}");
        for e in &expired {
            oracle.remove(&e.point.id);
        }
        store.checkpoint().unwrap();
        check(&store, &oracle);
        drop(store);
        let store = Store::open_url(&url, &o).unwrap();
        check(&store, &oracle);
        store.scrub().unwrap();
        // Another node reads every point beside the writer, and changes nothing.
        let reader = Store::open_url_read_only(&url, &o).unwrap();
        check(&reader, &oracle);
        assert!(matches!(reader.checkpoint(), Err(ReplicaError::ReadOnly)));
        eprintln!("{url}: {:?}", t.elapsed());
    }
}

/// A second writer is refused while the first holds the lease, and gets the store once the
/// first closed it.
#[test]
fn the_lease_keeps_a_second_writer_out() {
    for (url, o) in backends("lease") {
        let o = opts(&o);
        let first = Store::create_url(&url, &o, StoreConfig::new(DISK_ID)).unwrap();
        match Store::open_url(&url, &o) {
            Err(ReplicaError::Locked { path }) => assert_eq!(path, url),
            other => panic!("{url}: second writer: {other:?}"),
        }
        drop(first);
        Store::open_url(&url, &o).unwrap();
    }
}

/// Two handles race to replace the manifest from the same version: exactly one wins, the
/// other gets a conflict and the manifest holds the winner's bytes.
#[test]
fn of_two_racing_manifest_swaps_exactly_one_wins() {
    for (url, o) in backends("race") {
        let o = opts(&o);
        for round in 0..5u64 {
            let a = ObjectStorage::from_url(&url, &o).unwrap();
            let b = ObjectStorage::from_url(&url, &o).unwrap();
            let manifest = |counter: u64, tag: u8| {
                let mut m = vec![tag; 64];
                m[16..24].copy_from_slice(&counter.to_le_bytes());
                m
            };
            if round == 0 {
                a.swap_manifest(None, &manifest(1, 0)).unwrap();
            }
            let (_, v) = a.read_manifest().unwrap().unwrap();
            let (_, vb) = b.read_manifest().unwrap().unwrap();
            assert_eq!(v, vb);
            let (ma, mb) = (manifest(v + 1, 1), manifest(v + 1, 2));
            let (ra, rb) = std::thread::scope(|s| {
                let ta = s.spawn(|| a.swap_manifest(Some(v), &ma));
                let tb = s.spawn(|| b.swap_manifest(Some(v), &mb));
                (ta.join().unwrap(), tb.join().unwrap())
            });
            assert!(ra.is_ok() != rb.is_ok(), "{url}: {ra:?} {rb:?}");
            let (now, _) = a.read_manifest().unwrap().unwrap();
            assert_eq!(now, if ra.is_ok() { ma } else { mb });
            let lost = if ra.is_ok() { rb } else { ra }.unwrap_err();
            assert!(lost
                .get_ref()
                .is_some_and(|e| e.is::<blockdelta::replica::ManifestConflict>()));
        }
    }
}

/// Objects are create-only; a put delivered twice (the first answer lost) is not an error,
/// a different object under the same name is; reads past the end and of missing objects are
/// distinct errors.
#[test]
fn puts_are_create_only_and_reads_are_checked() {
    for (url, o) in backends("objects") {
        let s = ObjectStorage::from_url(&url, &opts(&o)).unwrap();
        s.put("a", b"hello").unwrap();
        s.put("a", b"hello").unwrap();
        assert_eq!(
            s.put("a", b"other").unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        let mut b = [0u8; 5];
        s.get_range("a", 0, &mut b).unwrap();
        assert_eq!(&b, b"hello");
        let mut b = [0u8; 4];
        s.get_range("a", 2, &mut b[..3]).unwrap();
        assert_eq!(&b[..3], b"llo");
        assert_eq!(
            s.get_range("a", 2, &mut b).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(
            s.get_range("missing", 0, &mut b).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(s.size("a").unwrap(), 5);
        assert_eq!(s.list("").unwrap(), vec!["a".to_string()]);
        s.delete("a").unwrap();
        s.delete("a").unwrap();
        assert!(s.list("").unwrap().is_empty());
        assert_eq!(
            s.put("../x", b"").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}

/// An upload dropped without completing (a crash) resumes at the length of any earlier
/// sync, whether that fell inside a part or on a part boundary, and completes into exactly
/// the bytes appended.
#[test]
fn an_upload_resumes_at_any_synced_length() {
    for (url, o) in backends("upload") {
        let s = ObjectStorage::from_url(&url, &opts(&o)).unwrap();
        let mut rng = Rng(7);
        let mut data = vec![0u8; 23 << 20];
        rng.fill(&mut data);
        // Syncs at 3 MiB (inside the first part), 10 MiB (exactly two parts) and 17.5 MiB.
        let syncs = [3u64 << 20, 10 << 20, (35 << 20) / 2];
        for (i, &resume_at) in syncs.iter().enumerate() {
            let name = format!("pack-{i}");
            let mut up = s.upload(&name).unwrap();
            let mut at = 0u64;
            for &sy in &syncs {
                up.append(&data[at as usize..sy as usize]).unwrap();
                up.sync().unwrap();
                at = sy;
            }
            up.append(&data[at as usize..(20 << 20)]).unwrap();
            drop(up); // a crash: not completed
            assert!(s.uploads().unwrap().contains(&name));
            let mut up = s.resume_upload(&name, resume_at).unwrap();
            assert_eq!(up.len(), resume_at);
            up.append(&data[resume_at as usize..]).unwrap();
            up.complete().unwrap();
            let mut back = vec![0u8; data.len()];
            s.get_range(&name, 0, &mut back).unwrap();
            assert!(back == data, "{url}: resumed at {resume_at}");
            assert!(!s.uploads().unwrap().contains(&name));
        }
        // Past the last sync cannot be resumed.
        let mut up = s.upload("pack-x").unwrap();
        up.append(&data[..1 << 20]).unwrap();
        up.sync().unwrap();
        drop(up);
        assert!(s.resume_upload("pack-x", 2 << 20).is_err());
        s.abort_upload("pack-x").unwrap();
        assert!(s.uploads().unwrap().is_empty());
    }
}

/// Errors name the store by scheme, bucket and prefix, never by a credential passed as an
/// option.
#[test]
fn credentials_never_appear_in_errors() {
    let secret = "SECRETKEYxyz123456789";
    let (url, _) = &backends("creds")[1];
    let o = [
        ("account_name", "devstoreaccount1"),
        ("access_key", "U0VDUkVUS0VZeHl6MTIzNDU2Nzg5"), // base64 of the secret
        ("use_emulator", "true"),
        ("retry_max", "0"),
    ];
    let e = Store::create_url(url, &o, StoreConfig::new(DISK_ID)).unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(!text.contains("U0VDUkVUS0VZeHl6MTIzNDU2Nzg5") && !text.contains(secret));
    let sas = [
        ("sas_token", "sv=2020&sig=SECRETSIG"),
        ("use_emulator", "true"),
    ];
    if let Err(e) = Store::create_url(url, &sas, StoreConfig::new(DISK_ID)) {
        let text = format!("{e} {e:?}");
        assert!(!text.contains("SECRETSIG"), "{text}");
    }
    let bad = [("secret_access_key_typo", "SECRETVALUE")];
    let e =
        Store::create_url(&backends("creds")[0].0, &bad, StoreConfig::new(DISK_ID)).unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(
        text.contains("secret_access_key_typo") && !text.contains("SECRETVALUE"),
        "{text}"
    );
}

// ---- faults: 5xx answers, lost answers, duplicate deliveries, crashes ---------------------

/// What happens at the chosen call.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// Not carried out; an error as after a 5xx the retries did not get past.
    Refused,
    /// Carried out, but its answer lost (a timeout): an error.
    Lost,
    /// Carried out twice (a retry after a lost answer): the second answer is returned. Only
    /// for calls that are requests a service may see twice (not an append, which is the
    /// caller's data, not a request).
    Duplicate,
    /// The process dies there: the call is carried out or not (by the call number's parity),
    /// then every call fails.
    Crash,
}

#[derive(Default)]
struct Plan {
    calls: u64,
    at: Option<(u64, Fault)>,
    dead: bool,
    trace: Vec<String>,
}

/// An `ObjectStorage` with a fault at one numbered call (every call that sends requests).
#[derive(Clone)]
struct Faulty {
    inner: std::sync::Arc<ObjectStorage>,
    plan: std::sync::Arc<std::sync::Mutex<Plan>>,
}

fn fault_err(what: &str) -> io::Error {
    io::Error::other(format!("injected: {what}"))
}

impl Faulty {
    /// Runs call `what`: `f` (with `again` telling a duplicate delivery) under the plan.
    fn call<T>(&self, what: &str, mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        let fault = {
            let mut p = self.plan.lock().unwrap();
            if p.dead {
                return Err(fault_err("crashed"));
            }
            p.calls += 1;
            p.trace.push(what.to_string());
            match p.at {
                Some((n, f)) if n == p.calls => {
                    if f == Fault::Crash {
                        p.dead = true;
                    }
                    Some((n, f))
                }
                _ => None,
            }
        };
        match fault {
            None => f(),
            Some((_, Fault::Refused)) => Err(fault_err("503 Slow Down")),
            Some((_, Fault::Lost)) => {
                let _ = f();
                Err(fault_err("timeout"))
            }
            Some((_, Fault::Duplicate)) if what == "append" => f(),
            Some((_, Fault::Duplicate)) => {
                let _ = f();
                f()
            }
            Some((n, Fault::Crash)) => {
                if n % 2 == 0 {
                    let _ = f();
                }
                Err(fault_err("crashed"))
            }
        }
    }
}

struct FaultyUpload {
    inner: Box<dyn Upload>,
    s: Faulty,
}

impl Upload for FaultyUpload {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let inner = &mut self.inner;
        self.s.call("append", || inner.append(data))
    }
    fn sync(&mut self) -> io::Result<()> {
        let inner = &mut self.inner;
        self.s.call("sync", || inner.sync())
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn complete(self: Box<Self>) -> io::Result<()> {
        let FaultyUpload { inner, s } = *self;
        let mut inner = Some(inner);
        s.call("complete", || match inner.take() {
            Some(u) => u.complete(),
            // A second delivery of a completion: the object exists.
            None => Ok(()),
        })
    }
}

impl Storage for Faulty {
    fn put(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.call(&format!("put {name}"), || self.inner.put(name, data))
    }
    fn get_range(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if self.plan.lock().unwrap().dead {
            return Err(fault_err("crashed"));
        }
        self.inner.get_range(name, offset, buf)
    }
    fn get_ranges(&self, reads: &mut [RangeRead<'_>]) -> Result<(), (usize, io::Error)> {
        if self.plan.lock().unwrap().dead {
            return Err((0, fault_err("crashed")));
        }
        self.inner.get_ranges(reads)
    }
    fn get_pieces(
        &self,
        pieces: &[Piece<'_>],
        sink: &mut PieceSink<'_>,
    ) -> Result<(), (usize, io::Error)> {
        if self.plan.lock().unwrap().dead {
            return Err((0, fault_err("crashed")));
        }
        self.inner.get_pieces(pieces, sink)
    }
    fn piece_size(&self) -> u64 {
        self.inner.piece_size()
    }
    fn merge_gap(&self) -> u64 {
        self.inner.merge_gap()
    }
    fn size(&self, name: &str) -> io::Result<u64> {
        self.inner.size(name)
    }
    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, name: &str) -> io::Result<()> {
        self.call(&format!("delete {name}"), || self.inner.delete(name))
    }
    fn delete_many(&self, names: &[String]) -> io::Result<()> {
        self.call("delete_many", || self.inner.delete_many(names))
    }
    fn upload(&self, name: &str) -> io::Result<Box<dyn Upload>> {
        let inner = self.inner.upload(name)?;
        Ok(Box::new(FaultyUpload {
            inner,
            s: self.clone(),
        }))
    }
    fn resume_upload(&self, name: &str, len: u64) -> io::Result<Box<dyn Upload>> {
        let inner = self.inner.resume_upload(name, len)?;
        Ok(Box::new(FaultyUpload {
            inner,
            s: self.clone(),
        }))
    }
    fn abort_upload(&self, name: &str) -> io::Result<()> {
        self.call(&format!("abort {name}"), || self.inner.abort_upload(name))
    }
    fn uploads(&self) -> io::Result<Vec<String>> {
        self.inner.uploads()
    }
    fn read_manifest(&self) -> io::Result<Option<(Vec<u8>, u64)>> {
        self.inner.read_manifest()
    }
    fn swap_manifest(&self, expected: ManifestVersion, data: &[u8]) -> io::Result<u64> {
        self.call("swap_manifest", || self.inner.swap_manifest(expected, data))
    }
    fn lock_writer(&self) -> io::Result<Box<dyn Send + Sync>> {
        self.inner.lock_writer()
    }
    fn requests(&self) -> u64 {
        Storage::requests(&*self.inner)
    }
}

#[derive(Default)]
struct Outcome {
    acked: Vec<PointId>,
    maybe_removed: std::collections::HashSet<PointId>,
    oracle: HashMap<PointId, Vec<u8>>,
}

/// Ingests (some cut and resumed, resume points every 96 KiB), retention and a compaction,
/// until the first error.
fn fault_scenario(storage: Faulty, url: &str, out: &mut Outcome) -> Result<(), ReplicaError> {
    let mut rng = Rng(77);
    let mut src = Source::new(DISK_ID, 640 << 10, 4096);
    src.churn(&mut rng, 30);
    let store = Store::create_in(Box::new(storage), url.into(), StoreConfig::new(DISK_ID))?;
    for round in 0..6u64 {
        let ops = 1 + rng.below(20) as usize;
        src.churn(&mut rng, ops);
        let to = src.seq + 1;
        let stream = src.stream(to, 65536);
        out.oracle.insert(
            PointId {
                generation: src.generation,
                sequence: to,
            },
            src.disk.clone(),
        );
        let mut ing = store.ingest(None)?;
        ing.set_resume_interval(96 << 10);
        let id = if round % 3 == 1 {
            ing.push(&stream[..stream.len() / 2])?;
            let offset = ing.suspend()?;
            let hlen = 24 + u32::from_le_bytes(stream[16..20].try_into().unwrap()) as usize;
            let (mut ing, from) = store.resume_ingest(None, &stream[..hlen])?;
            assert_eq!(from, offset);
            ing.push(&stream[from as usize..])?;
            ing.finish()?.point.id
        } else {
            for c in stream.chunks(40_000) {
                ing.push(c)?;
            }
            ing.finish()?.point.id
        };
        out.acked.push(id);
        src.commit(to);
        if round == 3 {
            store.set_retention(Retention {
                max_points: Some(2),
                ..Retention::default()
            })?;
            out.maybe_removed
                .extend(store.points().iter().map(|p| p.id));
            store.retain(0)?;
            store.compact()?;
        }
    }
    store.checkpoint()?;
    Ok(())
}

/// A fault at calls spread over the whole scenario, of each kind: after it, a reopen (a new
/// process: a new storage handle) lists every acknowledged point, every listed point reads
/// back byte for byte, a cut stream resumes or is dropped cleanly, and the store takes the
/// next stream. A duplicate delivery is no error at all.
#[test]
fn faults_at_any_request_lose_nothing_acknowledged() {
    for (url, o) in backends("faults") {
        let o = opts(&o);
        let storage = |prefix: &str| ObjectStorage::from_url(&format!("{url}/{prefix}"), &o);
        let clean = Faulty {
            inner: std::sync::Arc::new(storage("clean").unwrap()),
            plan: Default::default(),
        };
        let mut out = Outcome::default();
        fault_scenario(clean.clone(), &url, &mut out).unwrap();
        let total = clean.plan.lock().unwrap().calls;
        assert!(total > 40, "{url}: {total} calls");
        // Calls spread evenly over the scenario, the first and the last included, each kind
        // of fault at different ones (a server in Python is slow: CI's time is bounded).
        // `BLOCKDELTA_OBJECT_FAULT_PICKS=all` injects each kind at every call instead.
        let picks: u64 = match std::env::var("BLOCKDELTA_OBJECT_FAULT_PICKS").as_deref() {
            Ok("all") => total,
            Ok(n) => n.parse::<u64>().expect("a number or all").clamp(2, total),
            Err(_) => 6,
        };
        for (k, fault) in [Fault::Refused, Fault::Lost, Fault::Duplicate, Fault::Crash]
            .into_iter()
            .enumerate()
        {
            for i in 0..picks {
                let n = if picks == total {
                    i + 1
                } else {
                    (1 + i * (total - 1) / (picks - 1) + k as u64).min(total)
                };
                let prefix = format!("{fault:?}-{n}");
                let s = Faulty {
                    inner: std::sync::Arc::new(storage(&prefix).unwrap()),
                    plan: std::sync::Arc::new(std::sync::Mutex::new(Plan {
                        at: Some((n, fault)),
                        ..Plan::default()
                    })),
                };
                let mut out = Outcome::default();
                let r = fault_scenario(s.clone(), &url, &mut out);
                let what = format!(
                    "{url}: {fault:?} at call {n} ({})",
                    s.plan
                        .lock()
                        .unwrap()
                        .trace
                        .get(n as usize - 1)
                        .map_or("", |t| t)
                );
                if fault == Fault::Duplicate {
                    r.unwrap_or_else(|e| panic!("{what}: a duplicate delivery failed: {e}"));
                }
                // A new process opens the store.
                let store = match Store::open_in(Box::new(storage(&prefix).unwrap()), url.clone()) {
                    Ok(s) => s,
                    Err(ReplicaError::NotFound { .. }) => {
                        assert!(out.acked.is_empty(), "{what}: store lost after acks");
                        continue;
                    }
                    Err(e) => panic!("{what}: reopen failed: {e}"),
                };
                recovered::check_points_survived(
                    &store,
                    &out.acked,
                    &out.maybe_removed,
                    &out.oracle,
                    &what,
                );
                store
                    .scrub()
                    .unwrap_or_else(|e| panic!("{what}: scrub: {e}"));
                // The next stream goes in (a cut one is dropped first) and reads back.
                if store.pending_ingest().unwrap().is_some() {
                    store.discard_pending().unwrap();
                }
                let (mut src, from) = match (store.lineage(), store.newest()) {
                    (Some((g, s)), Some(head)) => (
                        Source::from_image(DISK_ID, out.oracle[&head.id].clone(), g, s, 4096),
                        s,
                    ),
                    _ => (Source::new(DISK_ID, 128 << 10, 4096), 0),
                };
                let mut rng = Rng(5);
                src.churn(&mut rng, 5);
                let mut ing = store.ingest(None).unwrap();
                ing.push(&src.stream(from + 1, 65536)).unwrap();
                let id = ing
                    .finish()
                    .unwrap_or_else(|e| panic!("{what}: next stream refused: {e}"))
                    .point
                    .id;
                let mut got = vec![0u8; src.disk.len()];
                store.read_at(id, 0, &mut got).unwrap();
                assert!(got == src.disk, "{what}: the next point differs");
            }
        }
    }
}

/// From async code: a store used inside `spawn_blocking` of the caller's own tokio runtime
/// works, and one dropped there (a failed open included) neither hangs nor panics.
#[test]
fn a_store_works_from_spawn_blocking_of_another_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (url, o) in backends("async") {
        let done = rt.block_on(async move {
            tokio::task::spawn_blocking(move || {
                let o = opts(&o);
                let store = Store::create_url(&url, &o, StoreConfig::new(DISK_ID)).unwrap();
                let mut rng = Rng(1);
                let mut src = Source::new(DISK_ID, 1 << 20, 4096);
                src.write(&mut rng, 0, 1 << 20);
                let p = ingest(&store, &src, 1);
                let mut b = vec![0u8; 1 << 20];
                store.read_at(p, 0, &mut b).unwrap();
                assert!(b == src.disk);
                // A failed open (the lease is held) drops its storage here.
                assert!(matches!(
                    Store::open_url(&url, &o),
                    Err(ReplicaError::Locked { .. })
                ));
            })
            .await
        });
        done.unwrap();
    }
}

/// A node's store: its URL, its source, and its points with the disk each holds.
type Node = (String, Source, Vec<(PointId, Vec<u8>)>);

/// Many ingest nodes, one bucket: writers of different disks, each under its own prefix of
/// the same bucket or container, ingest at the same time (threads with their own handles, as
/// separate process servers would); then any node reads any point of any disk, read-only,
/// beside writers that keep going.
#[test]
fn writers_of_different_disks_share_a_bucket_and_any_node_reads_any_point() {
    for (url, o) in backends("nodes") {
        let disks: Vec<Node> = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..3u64)
                .map(|d| {
                    let (url, o) = (format!("{url}/disk{d}"), o.clone());
                    sc.spawn(move || {
                        let o = opts(&o);
                        let mut rng = Rng(100 + d);
                        let mut src = Source::new(DISK_ID, 2 << 20, 4096);
                        src.write(&mut rng, 0, 2 << 20);
                        let store = Store::create_url(&url, &o, StoreConfig::new(DISK_ID)).unwrap();
                        let mut points = Vec::new();
                        for to in 1..4 {
                            let p = ingest(&store, &src, to);
                            src.commit(to);
                            points.push((p, src.disk.clone()));
                            src.churn(&mut rng, 6);
                        }
                        (url, src, points)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let o = opts(&o);
        // A writer goes on beside the readers.
        let (first_url, first_src, _) = &disks[0];
        let writer = Store::open_url(first_url, &o).unwrap();
        ingest(&writer, first_src, 4);
        for (url, _, points) in &disks {
            let reader = Store::open_url_read_only(url, &o).unwrap();
            for (id, disk) in points {
                let mut b = vec![0u8; disk.len()];
                reader.read_at(*id, 0, &mut b).unwrap();
                assert!(&b == disk, "{url}: point {}", id.sequence);
            }
        }
    }
}
