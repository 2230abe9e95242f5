//! The replica store on real object storage servers (moto for S3, Azurite for Azure Blob)
//! reached through a fault-injecting HTTP proxy (`common/fault_proxy.rs`): the retries with
//! backoff of `object_store` under `ObjectStorage` (throttling, 5xx, dropped connections,
//! timeouts) work end to end over real sockets, and when they give up the caller gets a clear
//! error and nothing silently goes missing.
//!
//! For each server:
//! 1. **Transient faults.** About one request in seven answered 503 SlowDown, 500, 429, cut
//!    before it reached the server, or carried out with its answer lost, during a store's whole
//!    life (a multipart stream of 16 MiB, 5 MiB parts, 4 at once; incremental streams; every
//!    point read back byte for byte; retention, a checkpoint, reopens, a scrub): everything
//!    succeeds, and the proxy proves that it injected every kind on reads and on writes, over
//!    kept-alive connections. (No answer of the lease is lost here: see 5; nor of an Azure
//!    completion: see 2.)
//! 2. **Lost answers on conditional writes.** The first answer to every create-only PUT
//!    (`If-None-Match: *`: records, layers, packs, the manifest's creation) and every manifest
//!    swap (`If-Match`) is lost after the server carried it out; the retry finds 412/409 and the
//!    store recognises its own bytes, as `object.rs` promises: no error, no point missing. A
//!    lost answer to a multipart completion is retried by `object_store`: S3 (moto) answers the
//!    repeated completion with success; Azure's repeated block list fails (its blocks are
//!    committed), and then the ingest fails clearly, the point is absent, and the stream sent
//!    again after a reopen goes in.
//! 3. **A persistent outage** (503 for every request from the `k`th request of an ingest on,
//!    for every `k` of the ingest, with `retry_max` 2): the ingest fails with an error that
//!    names the store and the status and no credential, reads and opens fail likewise, the
//!    store refuses every later change (poisoned); once the outage ends, a reopened store
//!    lists exactly the points committed before (the failed one only if it is whole), each
//!    byte for byte, and takes the next stream.
//! 4. **Timeouts.** Answers held back beyond `request_timeout_seconds` on reads, part uploads
//!    and state writes are timed out and retried (the proxy sees each request again), and
//!    everything succeeds; a create-only write whose answer comes too late is not retried
//!    (`object_store` retries timeouts of idempotent requests only): the ingest fails, and
//!    after a reopen its point is there (the write took effect) and whole.
//! 5. **Lost answers to the writer's lease.** A lost answer to the lease's create-only PUT
//!    (the retry refused) is the writer's own lease, not another writer's; a lost answer to a
//!    renewal does not end the renewals, and a second writer stays out. Both failed before the
//!    fix (the lease read back: its bytes, owner id and expiry, are this writer's).
//!
//! Servers as for `tests/replica_object.rs` (`.ci/object-servers start`, then source its env
//! file):
//!
//! ```text
//! cargo test --release --features object-store --test replica_object_faults_http
//! ```
#![cfg(feature = "object-store")]

#[path = "common/fault_proxy.rs"]
mod fault_proxy;
#[path = "common/source.rs"]
mod source;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use blockdelta::replica::{PointId, ReplicaError, Retention, Store, StoreConfig};
use fault_proxy::{Fault, FaultProxy, Request, Rule, When};
use source::{Rng, Source};

const DISK_ID: [u8; 16] = *b"object-fault-dsk";
const MIB: u64 = 1 << 20;

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| {
        panic!(
            "{key} is not set: start the test servers with `.ci/object-servers start` and \
             source the env file it prints"
        )
    })
}

/// A store location (under a prefix no other test uses) reached through a proxy.
struct Target {
    url: String,
    options: Vec<(String, String)>,
    /// Credentials that must never appear in an error.
    secrets: Vec<String>,
}

impl Target {
    /// The store at `test`'s prefix on S3 (`s3`) or Azure, through `proxy`, with the
    /// options of `tests/replica_object.rs` (5 MiB parts, 4 at once) and `extra`.
    fn new(s3: bool, test: &str, proxy: &FaultProxy, extra: &[(&str, &str)]) -> Target {
        let unique = format!(
            "{test}-{}-{}",
            std::process::id(),
            blockdelta::GenerationId::random().0[0]
        );
        let (url, mut options, secrets) = if s3 {
            // moto takes any credentials; these are distinctive, to look for in errors.
            let (id, secret) = (
                "AKIAFAULTPROXYTEST01",
                "FaultProxySecretKey/0123456789abcdefXYZ",
            );
            (
                format!("s3://{}/{unique}", env("BLOCKDELTA_TEST_S3_BUCKET")),
                vec![
                    ("endpoint".to_string(), proxy.url()),
                    ("allow_http".into(), "true".into()),
                    ("access_key_id".into(), id.into()),
                    ("secret_access_key".into(), secret.into()),
                ],
                vec![secret.to_string()],
            )
        } else {
            // The emulator setting would send requests to AZURITE_BLOB_STORAGE_URL: name the
            // account, its key and the proxy's endpoint instead (the same URLs and signatures).
            let account = env("AZURE_STORAGE_ACCOUNT_NAME");
            let key = env("AZURE_STORAGE_ACCOUNT_KEY");
            (
                format!("az://{}/{unique}", env("BLOCKDELTA_TEST_AZURE_CONTAINER")),
                vec![
                    ("use_emulator".to_string(), "false".to_string()),
                    ("account_name".into(), account.clone()),
                    ("access_key".into(), key.clone()),
                    ("endpoint".into(), format!("{}/{account}", proxy.url())),
                    ("allow_http".into(), "true".into()),
                ],
                vec![key],
            )
        };
        options.push(("part_size".into(), (5 * MIB).to_string()));
        options.push(("parallel".into(), "4".into()));
        for (k, v) in extra {
            options.push((k.to_string(), v.to_string()));
        }
        Target {
            url,
            options,
            secrets,
        }
    }

    fn opts(&self) -> Vec<(&str, &str)> {
        self.options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn create(&self) -> Store {
        Store::create_url(&self.url, &self.opts(), StoreConfig::new(DISK_ID))
            .unwrap_or_else(|e| panic!("{}: create: {e}", self.url))
    }

    fn open(&self) -> Store {
        Store::open_url(&self.url, &self.opts())
            .unwrap_or_else(|e| panic!("{}: open: {e}", self.url))
    }

    /// `e` names the store and holds each of `expect`, and no credential, signature or
    /// SAS token.
    fn assert_clear(&self, e: &ReplicaError, what: &str, expect: &[&str]) {
        let text = format!("{e} | {e:?}");
        for s in &self.secrets {
            assert!(!text.contains(s.as_str()), "{what}: a credential in {text}");
        }
        for s in [
            "Signature=",
            "SharedKey",
            "sig=",
            "Authorization",
            "Credential=",
        ] {
            assert!(!text.contains(s), "{what}: {s} in {text}");
        }
        assert!(
            text.contains(&self.url),
            "{what}: the store is not named: {text}"
        );
        for x in expect {
            assert!(text.contains(x), "{what}: no {x:?} in {text}");
        }
    }
}

fn upstream(s3: bool) -> String {
    if s3 {
        env("BLOCKDELTA_TEST_S3_ENDPOINT")
    } else {
        env("AZURITE_BLOB_STORAGE_URL")
    }
}

fn backend(s3: bool) -> &'static str {
    if s3 {
        "s3"
    } else {
        "azure"
    }
}

// ---- which request is which ----------------------------------------------------------------

/// The writer's lease object.
fn is_lease(r: &Request) -> bool {
    r.target.contains("/LOCK")
}

/// A create-only PUT (`If-None-Match: *`).
fn is_create_only(r: &Request) -> bool {
    r.method == "PUT" && r.header("if-none-match") == Some("*")
}

/// A PUT replacing a given version (`If-Match`).
fn is_if_match(r: &Request) -> bool {
    r.method == "PUT" && r.header("if-match").is_some()
}

/// A multipart completion: S3's CompleteMultipartUpload, Azure's Put Block List.
fn is_completion(r: &Request) -> bool {
    (r.method == "POST" || r.method == "PUT") && is_completion_target(&r.target)
}

fn is_completion_target(target: &str) -> bool {
    target.contains("?uploadId=") || target.contains("comp=blocklist")
}

/// A multipart part: S3's UploadPart, Azure's Put Block.
fn is_part(r: &Request) -> bool {
    r.method == "PUT" && is_part_target(&r.target)
}

fn is_part_target(target: &str) -> bool {
    target.contains("partNumber=") || target.contains("comp=block&")
}

/// The first attempt of each request `pick` accepts (a retry has the same method, target
/// and `If-Match`; successive manifest swaps differ in the last).
fn first_attempts(
    pick: impl Fn(&Request) -> bool + Send + 'static,
) -> impl Fn(&Request) -> bool + Send + 'static {
    let seen = Mutex::new(HashSet::new());
    move |r| {
        pick(r)
            && seen.lock().unwrap().insert((
                r.method.clone(),
                r.target.clone(),
                r.header("if-match").map(str::to_string),
            ))
    }
}

// ---- the source disk and what the store must hold ---------------------------------------------

/// The protected disk, the image of each point sent, and the points the store holds.
struct Replica {
    src: Source,
    rng: Rng,
    oracle: HashMap<PointId, Vec<u8>>,
    held: Vec<PointId>,
}

impl Replica {
    /// A disk of `size` bytes of random data (written 1 MiB at a time, some of it zeros).
    fn new(size: u64, seed: u64) -> Replica {
        let mut rng = Rng(seed);
        let mut src = Source::new(DISK_ID, size, 4096);
        for off in (0..size).step_by(MIB as usize) {
            src.write(&mut rng, off, MIB.min(size - off));
        }
        Replica {
            src,
            rng,
            oracle: HashMap::new(),
            held: Vec::new(),
        }
    }

    /// Small scattered changes.
    fn churn(&mut self) {
        self.src.churn(&mut self.rng, 12);
    }

    /// `len` bytes rewritten at a random place: a pack of more than one part when over 5 MiB.
    fn rewrite(&mut self, len: u64) {
        assert!(len <= self.src.size());
        let at = self.rng.below((self.src.size() - len) / 4096 + 1) * 4096;
        let mut data = vec![0u8; len as usize];
        self.rng.fill(&mut data);
        self.src.write_data(at, &data);
    }

    fn next_id(&self) -> PointId {
        PointId {
            generation: self.src.generation,
            sequence: self.src.seq + 1,
        }
    }

    /// Sends the changes since the last point as the next point.
    fn ingest(&mut self, store: &Store) -> Result<PointId, ReplicaError> {
        let id = self.next_id();
        self.oracle.insert(id, self.src.disk.clone());
        let stream = self.src.stream(id.sequence, 1 << 20);
        let mut ing = store.ingest(None)?;
        for chunk in stream.chunks(3 << 20) {
            ing.push(chunk)?;
        }
        let done = ing.finish()?;
        assert_eq!(done.point.id, id);
        self.src.commit(id.sequence);
        self.held.push(id);
        Ok(id)
    }

    /// After an ingest of point `id` failed and the store was opened again: the point is
    /// absent (the sender sends its changes again) or whole (the sender moves on).
    fn settle(&mut self, store: &Store, id: PointId, what: &str) {
        if store.points().iter().any(|p| p.id == id) {
            self.src.commit(id.sequence);
            self.held.push(id);
        }
        // A stream cut mid-way may have left a resume point; the tests send whole streams.
        if store.pending_ingest().unwrap().is_some() {
            store
                .discard_pending()
                .unwrap_or_else(|e| panic!("{what}: discard_pending: {e}"));
        }
    }

    /// The store lists exactly the points held, each byte for byte as sent.
    fn check(&self, store: &Store, what: &str) {
        let listed: Vec<PointId> = store.points().iter().map(|p| p.id).collect();
        let want: HashSet<PointId> = self.held.iter().copied().collect();
        assert_eq!(
            listed.iter().copied().collect::<HashSet<_>>(),
            want,
            "{what}: listed points"
        );
        assert_eq!(listed.len(), want.len(), "{what}: a point listed twice");
        for id in listed {
            let want = &self.oracle[&id];
            let mut got = vec![0u8; want.len()];
            store
                .read_at(id, 0, &mut got)
                .unwrap_or_else(|e| panic!("{what}: reading point {}: {e}", id.sequence));
            assert!(&got == want, "{what}: point {} differs", id.sequence);
        }
    }
}

// ---- 1. transient faults -----------------------------------------------------------------

const KINDS: [Fault; 5] = [
    Fault::SlowDown,
    Fault::InternalError,
    Fault::TooManyRequests,
    Fault::DropBefore,
    Fault::LoseAnswer,
];

/// Faults of every kind on reads and writes: each kind on a few chosen requests of each
/// direction (so that every one surely happens), and on 2.5% of all requests each.
fn transient_rules(s3: bool) -> Vec<Rule> {
    // Requests whose lost answer is not a transient fault, by design: the lease's creation
    // and renewal (known bugs: see `a_lost_answer_to_the_lease_*` below), and on Azure a multipart completion (its repetition
    // fails; tested in `lost_answers_to_conditional_writes_are_recognised`).
    let may = move |f: Fault, r: &Request| {
        f != Fault::LoseAnswer || !(is_lease(r) || (!s3 && is_completion(r)))
    };
    let mut rules = Vec::new();
    for (i, f) in KINDS.into_iter().enumerate() {
        let i = i as u64;
        for n in [2 + 3 * i, 20 + 7 * i] {
            rules.push(Rule::new(f, When::Nth(n), move |r| {
                r.is_read() && may(f, r)
            }));
            rules.push(Rule::new(f, When::Nth(n + 1), move |r| {
                !r.is_read() && may(f, r)
            }));
        }
    }
    for f in KINDS {
        rules.push(Rule::new(f, When::PerMille(25), move |r| may(f, r)));
    }
    rules
}

fn transient_faults(s3: bool) {
    let t0 = Instant::now();
    let proxy = FaultProxy::start(&upstream(s3), 0x5eed_0001);
    let t = Target::new(s3, "transient", &proxy, &[]);
    proxy.set_rules(transient_rules(s3));
    let what = t.url.clone();

    // A full stream of about 16 MiB: a pack of 4 parts, sent 4 at once.
    let mut r = Replica::new(18 * MIB, 11);
    let store = t.create();
    r.ingest(&store)
        .unwrap_or_else(|e| panic!("{what}: full: {e}"));
    let parts =
        proxy.distinct_received(|m, t| m == "PUT" && t.contains("/pack-") && is_part_target(t));
    assert!(parts >= 4, "{what}: {parts} parts");
    for i in 0..4 {
        r.churn();
        if i == 1 {
            r.rewrite(6 * MIB); // multipart again
        }
        r.ingest(&store)
            .unwrap_or_else(|e| panic!("{what}: incremental {i}: {e}"));
    }
    r.check(&store, &what);
    drop(store);

    let store = t.open();
    r.check(&store, &format!("{what} reopened"));
    store
        .set_retention(Retention {
            max_points: Some(3),
            ..Retention::default()
        })
        .unwrap();
    let expired = store.retain(blockdelta::replica::now_ns()).unwrap();
    assert_eq!(expired.len(), 2, "{what}");
    for e in &expired {
        r.held.retain(|id| *id != e.point.id);
    }
    store.checkpoint().unwrap();
    r.churn();
    r.ingest(&store).unwrap();
    r.check(&store, &format!("{what} after retention"));
    drop(store);

    let store = t.open();
    r.check(&store, &format!("{what} reopened after retention"));
    store.scrub().unwrap();
    drop(store);

    // Every kind of fault happened on reads and on writes.
    proxy.clear_rules();
    let inj = proxy.injected();
    for f in KINDS {
        let (reads, writes) = inj.of(f);
        assert!(
            reads >= 2 && writes >= 2,
            "{what}: {f:?} injected on {reads} reads and {writes} writes"
        );
    }
    // Connections were kept alive and reused, faults or not.
    let (received, forwarded) = proxy.requests();
    let connections = proxy.connections();
    assert!(
        connections * 2 < received,
        "{what}: {connections} connections"
    );
    eprintln!(
        "{}: transient: {} faults in {received} requests ({forwarded} forwarded, {connections} \
         connections), (reads, writes) by kind {:?}: {:?}, {:.1?}",
        backend(s3),
        inj.total(),
        KINDS,
        KINDS.map(|f| inj.of(f)),
        t0.elapsed()
    );
}

#[test]
fn transient_faults_lose_nothing_s3() {
    transient_faults(true);
}

#[test]
fn transient_faults_lose_nothing_azure() {
    transient_faults(false);
}

// ---- 2. lost answers on conditional writes ------------------------------------------------

fn lost_answers(s3: bool) {
    let t0 = Instant::now();
    let proxy = FaultProxy::start(&upstream(s3), 2);
    let t = Target::new(s3, "lost", &proxy, &[]);
    let what = t.url.clone();
    proxy.set_rules(vec![
        Rule::new(
            Fault::LoseAnswer,
            When::Always,
            first_attempts(|r| is_create_only(r) && !is_lease(r)),
        ),
        Rule::new(
            Fault::LoseAnswer,
            When::Always,
            first_attempts(|r| is_if_match(r) && r.target.contains("/MANIFEST")),
        ),
    ]);
    let mut r = Replica::new(6 * MIB, 21);
    let store = t.create();
    // Each point: its layer and commit record (and a small pack) created once, their answers
    // lost; each checkpoint swaps the manifest, its answer lost.
    for i in 0..4 {
        r.churn();
        r.ingest(&store)
            .unwrap_or_else(|e| panic!("{what}: point {i}: {e}"));
        store
            .checkpoint()
            .unwrap_or_else(|e| panic!("{what}: checkpoint {i}: {e}"));
    }
    r.check(&store, &what);
    let inj = proxy.injected();
    let creates = inj
        .log
        .iter()
        .filter(|i| i.method == "PUT" && !i.target.contains("/MANIFEST"))
        .count();
    let swaps = inj
        .log
        .iter()
        .filter(|i| i.target.contains("/MANIFEST"))
        .count();
    // Per point at least a layer and a record; the manifest's creation and each checkpoint's
    // swap.
    assert!(creates >= 8, "{what}: {creates} create-only answers lost");
    assert!(swaps >= 5, "{what}: {swaps} manifest answers lost");
    assert_eq!(inj.of(Fault::LoseAnswer), (0, inj.total()));
    proxy.clear_rules();
    drop(store);
    let store = t.open();
    r.check(&store, &format!("{what} reopened"));

    // A multipart completion whose answer is lost, then retried by object_store.
    proxy.set_rules(vec![Rule::new(
        Fault::LoseAnswer,
        When::Nth(1),
        is_completion,
    )]);
    r.rewrite(5 * MIB + 300_000);
    let id = r.next_id();
    let res = r.ingest(&store);
    let inj = proxy.injected();
    assert_eq!(
        inj.of(Fault::LoseAnswer).1,
        creates as u64 + swaps as u64 + 1
    );
    let completion = inj.log.last().unwrap();
    assert!(is_completion_target(&completion.target), "{what}");
    assert!(proxy.received(completion) >= 2, "{what}: not retried");
    let store = if s3 {
        // S3 (and moto) answer a repeated completion of a completed upload with success.
        res.unwrap_or_else(|e| panic!("{what}: lost completion: {e}"));
        store
    } else {
        // Azure's repeated block list names blocks no longer uncommitted: refused. The ingest
        // fails (as object.rs says), the store is poisoned, and the point is not there.
        let e = res.expect_err("a repeated block list is refused");
        t.assert_clear(&e, &what, &["completing the upload", "InvalidBlockList"]);
        assert!(matches!(store.ingest(None), Err(ReplicaError::Poisoned)));
        proxy.clear_rules();
        drop(store);
        let store = t.open();
        r.settle(&store, id, &what);
        assert!(!r.held.contains(&id), "{what}: a failed point is listed");
        r.check(&store, &what);
        r.ingest(&store)
            .unwrap_or_else(|e| panic!("{what}: the stream sent again: {e}"));
        store
    };
    r.check(&store, &what);
    eprintln!(
        "{}: lost answers: {creates} create-only, {swaps} manifest, 1 completion, {:.1?}",
        backend(s3),
        t0.elapsed()
    );
}

#[test]
fn lost_answers_to_conditional_writes_are_recognised_s3() {
    lost_answers(true);
}

#[test]
fn lost_answers_to_conditional_writes_are_recognised_azure() {
    lost_answers(false);
}

// ---- 3. a persistent outage ---------------------------------------------------------------

fn outage(s3: bool) {
    let t0 = Instant::now();
    let proxy = FaultProxy::start(&upstream(s3), 3);
    let t = Target::new(
        s3,
        "outage",
        &proxy,
        &[("retry_max", "2"), ("retry_timeout_seconds", "1")],
    );
    let what = t.url.clone();
    let mut r = Replica::new(6 * MIB, 31);
    let mut store = t.create();
    r.ingest(&store).unwrap();
    // The requests of one ingest of the shape used below (a pack of two parts).
    let before = proxy.requests().0;
    r.rewrite(5 * MIB + 300_000);
    r.ingest(&store).unwrap();
    let total = proxy.requests().0 - before;
    assert!(total >= 8, "{what}: {total} requests per ingest");

    // An outage from every request of the ingest on.
    let (mut failures, mut landed) = (0, 0);
    for k in 1..=total {
        let i = k - 1;
        let what = format!("{what}: outage from request {k} of {total}");
        r.churn();
        r.rewrite(5 * MIB + 300_000);
        let mut id = r.next_id();
        proxy.set_rules(vec![Rule::any(Fault::SlowDown, When::From(k))]);
        let failed = match r.ingest(&store) {
            Err(e) => {
                t.assert_clear(&e, &what, &["503"]);
                if i == 0 {
                    eprintln!("{}: outage: the error: {e}", backend(s3));
                }
                true
            }
            // The outage began after the commit point (at a checkpoint or a delete after it):
            // the point is committed; the store is poisoned, or its next change fails.
            Ok(_) => {
                r.churn();
                id = r.next_id();
                match r.ingest(&store) {
                    Err(ReplicaError::Poisoned) => {}
                    Err(e) => t.assert_clear(&e, &what, &["503"]),
                    Ok(_) => panic!("{what}: two ingests in the outage succeeded"),
                }
                false
            }
        };
        // Every later change is refused; reads and opens fail as clearly.
        assert!(
            matches!(store.ingest(None), Err(ReplicaError::Poisoned)),
            "{what}"
        );
        assert!(
            matches!(store.checkpoint(), Err(ReplicaError::Poisoned)),
            "{what}"
        );
        // A read of data (not zeros, which need no request) of the first point.
        let first = r.held[0];
        let at = r.oracle[&first]
            .chunks(4096)
            .position(|c| c.iter().any(|&b| b != 0))
            .unwrap() as u64
            * 4096;
        let mut b = vec![0u8; 4096];
        let e = store
            .read_at(first, at, &mut b)
            .expect_err("a read in the outage");
        t.assert_clear(&e, &what, &["503"]);
        if i == 0 {
            let e = Store::open_url_read_only(&t.url, &t.opts()).expect_err("an open");
            t.assert_clear(&e, &what, &["503"]);
        }
        // The outage ends; the writer is restarted.
        proxy.clear_rules();
        drop(store);
        store = t.open();
        r.settle(&store, id, &what);
        if failed {
            failures += 1;
            landed += usize::from(r.held.contains(&id));
        }
        r.check(&store, &what);
        r.churn();
        r.ingest(&store)
            .unwrap_or_else(|e| panic!("{what}: the next stream: {e}"));
    }
    r.check(&store, &what);
    drop(store);
    // Only the requests after the commit point (the check after the claim, a checkpoint's
    // swap and deletes) leave the ingest itself successful.
    assert!(
        failures >= total / 2,
        "{what}: {failures} of {total} ingests failed"
    );
    let (reads, writes) = proxy.injected().of(Fault::SlowDown);
    assert!(reads > 0 && writes > 0, "{what}");
    eprintln!(
        "{}: outage: {failures} failed ingests (outage from request k of {total}; {landed} of \
         them committed before it), {} points kept, 503 on {reads} reads and {writes} writes, \
         {:.1?}",
        backend(s3),
        r.held.len(),
        t0.elapsed()
    );
}

#[test]
fn a_persistent_outage_fails_clearly_and_loses_nothing_s3() {
    outage(true);
}

#[test]
fn a_persistent_outage_fails_clearly_and_loses_nothing_azure() {
    outage(false);
}

// ---- 4. timeouts ---------------------------------------------------------------------------

/// Held back longer than the request timeout (1 s).
const LATE: Fault = Fault::DelayMs(1600);

fn timeouts(s3: bool) {
    let t0 = Instant::now();
    let proxy = FaultProxy::start(&upstream(s3), 4);
    let t = Target::new(s3, "timeouts", &proxy, &[("request_timeout_seconds", "1")]);
    let what = t.url.clone();
    let mut r = Replica::new(7 * MIB, 41);
    let store = t.create();
    // Idempotent requests: parts, the upload's state (an overwrite), ranged reads.
    proxy.set_rules(vec![
        Rule::new(LATE, When::Next(2), is_part),
        Rule::new(LATE, When::Next(1), |r| {
            r.method == "PUT" && r.target.contains("/uploads/")
        }),
        Rule::new(LATE, When::Next(2), |r| {
            r.method == "GET" && r.target.contains("/objects/pack-")
        }),
    ]);
    r.ingest(&store)
        .unwrap_or_else(|e| panic!("{what}: with late answers: {e}"));
    r.check(&store, &what);
    let inj = proxy.injected();
    assert_eq!(inj.of(LATE), (2, 3), "{what}: {:?}", inj.log);
    for i in &inj.log {
        assert!(
            proxy.received(i) >= 2,
            "{what}: {} {} was not retried",
            i.method,
            i.target
        );
    }

    // A create-only write (the commit record) answered too late: not retried.
    proxy.set_rules(vec![Rule::new(LATE, When::Nth(1), |r| {
        is_create_only(r) && r.target.contains("/objects/log-")
    })]);
    r.churn();
    let id = r.next_id();
    let e = r.ingest(&store).expect_err("a late create-only write");
    t.assert_clear(&e, &what, &["committing"]);
    let late = proxy.injected().log.pop().unwrap();
    assert_eq!(
        proxy.received(&late),
        1,
        "{what}: a create-only write retried"
    );
    eprintln!("{}: timeouts: the late commit record: {e}", backend(s3));
    // The cause is named (it is only in the HTTP client's error's source).
    assert!(e.to_string().contains("timed out"), "{what}: {e}");
    assert!(matches!(store.ingest(None), Err(ReplicaError::Poisoned)));
    proxy.clear_rules();
    drop(store);
    let store = t.open();
    r.settle(&store, id, &what);
    // The record was written (only its answer was late): the point is there, and whole.
    assert!(
        r.held.contains(&id),
        "{what}: the committed point is missing"
    );
    r.check(&store, &what);
    r.churn();
    r.ingest(&store).unwrap();
    r.check(&store, &what);
    eprintln!(
        "{}: timeouts: {} late answers retried, 1 late commit record, {:.1?}",
        backend(s3),
        inj.total(),
        t0.elapsed()
    );
}

#[test]
fn late_answers_are_timed_out_and_retried_s3() {
    timeouts(true);
}

#[test]
fn late_answers_are_timed_out_and_retried_azure() {
    timeouts(false);
}

// ---- lost answers to the writer's lease (both failed before the fix) --------------------------

/// Was a bug in `Lease::take` (src/replica/object.rs): the lease is created with a create-only PUT;
/// when that answer is lost, `object_store` retries, gets 412 (S3) or 409 (Azure), and `take`
/// reads the lease back, finds it unexpired and reports another writer: itself. Creating or
/// opening the store then fails with `Locked` for the lease's length (60 s by default). A lease
/// that holds this writer's own owner id is its own.
#[test]
fn a_lost_answer_to_the_lease_creation_is_not_another_writer() {
    for s3 in [true, false] {
        let proxy = FaultProxy::start(&upstream(s3), 5);
        let t = Target::new(s3, "lease-create", &proxy, &[]);
        proxy.set_rules(vec![Rule::new(Fault::LoseAnswer, When::Nth(1), |r| {
            is_lease(r) && is_create_only(r)
        })]);
        let r = Store::create_url(&t.url, &t.opts(), StoreConfig::new(DISK_ID));
        assert_eq!(proxy.injected().total(), 1);
        r.unwrap_or_else(|e| panic!("{}: {e}", t.url));
    }
}

/// Was a bug in the lease's renewal task (src/replica/object.rs, `Lease::take`): a renewal whose
/// answer is lost is retried, gets 412, and the task stops renewing as if the lease had been
/// taken over. The lease lapses while its writer runs, and a second writer gets in (the fence
/// then refuses the first writer's next commit: nothing is lost, but the lease no longer
/// keeps writers apart).
#[test]
fn a_lost_answer_to_a_lease_renewal_keeps_the_lease() {
    for s3 in [true, false] {
        let proxy = FaultProxy::start(&upstream(s3), 6);
        let t = Target::new(s3, "lease-renew", &proxy, &[("lease_seconds", "3")]);
        proxy.set_rules(vec![Rule::new(Fault::LoseAnswer, When::Nth(1), |r| {
            is_lease(r) && is_if_match(r)
        })]);
        let first = t.create();
        // Renewed every second; the first renewal's answer is lost.
        std::thread::sleep(std::time::Duration::from_secs(5));
        assert_eq!(proxy.injected().total(), 1);
        match Store::open_url(&t.url, &t.opts()) {
            Err(ReplicaError::Locked { .. }) => {}
            Ok(_) => panic!("{}: a second writer got in beside the first", t.url),
            Err(e) => panic!("{}: {e}", t.url),
        }
        drop(first);
    }
}

/// A writer whose lease renewals all fail stops writing before its lease can end (a sixth of
/// the lease early), so that it never writes beside a writer that took the store over: its
/// next ingest fails with an error that names the lease, and no write of it reaches the
/// server any more. Another writer then opens the store once the lease ended and finds
/// every point the first one committed; the first one's drop leaves the new lease alone.
#[test]
fn a_writer_whose_lease_lapses_writes_nothing_more() {
    for s3 in [true, false] {
        let proxy = FaultProxy::start(&upstream(s3), 8);
        let t = Target::new(
            s3,
            "lease-lapse",
            &proxy,
            &[
                ("lease_seconds", "3"),
                ("retry_max", "1"),
                ("retry_timeout_seconds", "1"),
            ],
        );
        let what = format!("{}: lease lapse", backend(s3));
        let mut r = Replica::new(2 * MIB, 41);
        let first = t.create();
        r.ingest(&first).unwrap();
        // From now on every renewal fails; the lease was last renewed at most a second ago.
        proxy.set_rules(vec![Rule::new(Fault::SlowDown, When::Always, |r| {
            is_lease(r) && is_if_match(r)
        })]);
        std::thread::sleep(std::time::Duration::from_millis(3200));
        // Any write but the lease's from here on is seen (and failed) by this rule.
        proxy.add_rule(Rule::new(Fault::InternalError, When::Always, |r| {
            !is_lease(r) && !matches!(r.method.as_str(), "GET" | "HEAD")
        }));
        r.churn();
        let id = r.next_id();
        let e = r
            .ingest(&first)
            .expect_err("an ingest after the lease lapsed");
        t.assert_clear(&e, &what, &["lease", "reopen"]);
        assert_eq!(
            proxy.injected().of(Fault::InternalError),
            (0, 0),
            "{what}: a write was sent after the lease lapsed"
        );
        assert!(proxy.injected().of(Fault::SlowDown).1 >= 1, "{what}");
        proxy.clear_rules();
        // The service is back, and the first writer's renewal task (every second) would now
        // succeed: a lapse is final, so it must not take the lease back. (It did: CI caught
        // the second writer `Locked` out for the whole wait when a renewal slipped in first.)
        std::thread::sleep(std::time::Duration::from_millis(1500));
        // A second writer gets in once the lease ended (by its clock), and finds every
        // committed point.
        let t0 = std::time::Instant::now();
        let second = loop {
            match Store::open_url(&t.url, &t.opts()) {
                Ok(s) => break s,
                Err(ReplicaError::Locked { .. }) if t0.elapsed().as_secs() < 20 => {
                    std::thread::sleep(std::time::Duration::from_millis(250))
                }
                Err(e) => panic!("{what}: open after the lapse: {e}"),
            }
        };
        r.settle(&second, id, &what);
        r.check(&second, &what);
        // The first writer's drop gives up nothing of the second's lease.
        drop(first);
        match Store::open_url(&t.url, &t.opts()) {
            Err(ReplicaError::Locked { .. }) => {}
            Ok(_) => panic!("{what}: a third writer got in beside the second"),
            Err(e) => panic!("{what}: {e}"),
        }
        r.churn();
        r.ingest(&second).unwrap();
        r.check(&second, &what);
    }
}
