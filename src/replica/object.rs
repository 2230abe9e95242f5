//! [`ObjectStorage`]: the replica store on object storage (S3 and Azure Blob), through the
//! `object_store` crate. Only with the cargo feature `object-store`.
//!
//! Layout under the URL's prefix:
//!
//! ```text
//! <prefix>/MANIFEST                   the checkpoint; replaced with If-Match: <its ETag>
//! <prefix>/LOCK                       the writer's lease (owner, expiry), see `lock_writer`
//! <prefix>/objects/<name>             immutable objects, created with If-None-Match: *
//! <prefix>/uploads/<name>             an unfinished upload's state: multipart id, parts
//! <prefix>/tails/<name>/<len>         the bytes after its last whole part, at each sync
//! ```
//!
//! How each promise of [`Storage`] is kept:
//! - **Create-only.** `put` sends `If-None-Match: *`. A retry of a put whose first attempt
//!   landed (the answer was lost) finds the object: it is success when the object holds the
//!   same bytes, `AlreadyExists` otherwise. An upload completes under a name no other writer
//!   uses (the store's fence moves object ids on at every writer's open), after a HEAD that
//!   finds no object of that name.
//! - **The manifest swap** sends `If-Match` with the ETag of the manifest this handle last
//!   read or wrote; the manifest's version (its commit counter, inside its bytes) names which
//!   one that was. A lost answer is told from a lost race by reading the manifest back.
//! - **Uploads** are multipart: parts of `part_size` bytes (default 16 MiB, all the same size
//!   but the last, as S3 and R2 want) go out as soon as they fill, up to `parallel` at once,
//!   so pack data stays under `(parallel + 1) * part_size` (a whole ingest: under
//!   `(parallel + 2) * part_size + 8 MiB`, `tests/replica_object_memory.rs`). `sync` waits
//!   for them and writes the bytes after the last whole part as a small tail object, then the
//!   state object (the multipart id and every part's id); `resume_upload` rebuilds the upload
//!   from those, at the length of any earlier sync too (tails are kept until the upload ends).
//! - **Retries** with exponential backoff and jitter on throttling (429, 503 SlowDown), 5xx,
//!   timeouts of idempotent requests and connection errors are `object_store`'s; they give up
//!   after `retry_max` attempts or `retry_timeout`, and the call fails: never a silent gap.
//! - **Reads** ([`Storage::get_pieces`]) are ranged GETs of about `part_size`, `parallel` at
//!   once; each piece goes to the reader as it arrives (it verifies and copies it while the
//!   others are in flight), at most `parallel` more answers waiting for it.
//! - **The writer's lease** (`LOCK`, see `lock_writer`) is renewed every third of
//!   `lease_seconds`; a writer whose renewals failed for five sixths of it sends no write
//!   any more and cuts off the writes in flight, retries included, so it does not write
//!   beside a writer that took the store over (a request already sent has the last sixth of
//!   the lease to reach the service).
//! - **Credentials** never appear in errors: messages name the store by scheme, bucket and
//!   prefix, and the query string of any URL quoted from the server is cut off.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientConfigKey, Error as OsError, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload, RetryConfig, UpdateVersion,
};
use parking_lot::Mutex;

use super::storage::{
    check_name, manifest_conflict, manifest_version, ManifestVersion, Piece, PieceSink, RangeRead,
    Storage, Upload,
};

/// Settings of an [`ObjectStorage`], besides the service's own (endpoint, credentials), which
/// `object_store` reads from the options and the environment.
#[derive(Clone, Debug)]
pub struct ObjectConfig {
    /// Bytes per multipart part (at least 5 MiB, S3's minimum; at most 4000 MiB). Default
    /// 16 MiB: with S3's 10,000 parts an object may reach 156 GiB.
    pub part_size: usize,
    /// Requests in flight at once for one upload's parts and one read's ranges. Default 8.
    pub parallel: usize,
    /// How long the writer's lease lasts without renewal (renewed every third of it).
    /// Default 60 s.
    pub lease: Duration,
    /// Attempts per request before a call fails (throttling, 5xx, timeouts). Default 10.
    pub retry_max: usize,
    /// Time per request, retries included, before a call fails. Default 180 s.
    pub retry_timeout: Duration,
    /// Time per attempt. Default 60 s.
    pub request_timeout: Duration,
}

impl Default for ObjectConfig {
    fn default() -> Self {
        ObjectConfig {
            part_size: 16 << 20,
            parallel: 8,
            lease: Duration::from_secs(60),
            retry_max: 10,
            retry_timeout: Duration::from_secs(180),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Requests an [`ObjectStorage`] sent, by kind (retries not counted: each is one call of the
/// service's API as `object_store` issued it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// PUTs of whole objects (create-only puts, manifest swaps, state, tails, the lease).
    pub puts: u64,
    /// Multipart requests: create, part, complete, abort.
    pub multipart: u64,
    /// GETs (whole or ranged) and HEADs.
    pub gets: u64,
    /// LIST pages (one per call: `object_store` pages internally).
    pub lists: u64,
    /// DELETEs.
    pub deletes: u64,
}

impl RequestCounts {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.puts + self.multipart + self.gets + self.lists + self.deletes
    }
}

#[derive(Debug, Default)]
struct Counters {
    puts: AtomicU64,
    multipart: AtomicU64,
    gets: AtomicU64,
    lists: AtomicU64,
    deletes: AtomicU64,
}

impl Counters {
    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> RequestCounts {
        RequestCounts {
            puts: self.puts.load(Ordering::Relaxed),
            multipart: self.multipart.load(Ordering::Relaxed),
            gets: self.gets.load(Ordering::Relaxed),
            lists: self.lists.load(Ordering::Relaxed),
            deletes: self.deletes.load(Ordering::Relaxed),
        }
    }
}

/// What every request needs: the service, its runtime, the prefix and the counters.
struct Shared {
    /// `None` only while dropping.
    rt: Option<tokio::runtime::Runtime>,
    store: Arc<dyn ObjectStore>,
    multipart: Arc<dyn MultipartStore>,
    /// The prefix, without a trailing `/` (empty: the bucket's root).
    prefix: String,
    /// How errors name the store: `scheme://bucket/prefix`, never credentials.
    location: String,
    config: ObjectConfig,
    counters: Counters,
    /// The writer's lease while this handle holds one (see [`Shared::writable`]).
    held: Arc<Mutex<Option<Held>>>,
}

/// The lease a writer holds: until when its writes are allowed, and the lease object's
/// version and owner id (for renewals and the release).
struct Held {
    until: std::time::Instant,
    etag: Option<String>,
    owner: [u8; 16],
}

impl Held {
    /// Whether the lease still allows writes now (a lapse is final: see the renewal task).
    fn live(&self) -> bool {
        std::time::Instant::now() < self.until
    }
}

/// The replica store's [`Storage`] on S3 or Azure Blob. See the module documentation.
pub struct ObjectStorage {
    s: Arc<Shared>,
    /// The manifest this handle last read or wrote: its commit counter and ETag.
    manifest: Mutex<Option<(u64, Option<String>)>>,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("location", &self.s.location)
            .finish_non_exhaustive()
    }
}

/// The options [`ObjectStorage::from_url`] takes besides `object_store`'s own.
const OWN_OPTIONS: &[&str] = &[
    "part_size",
    "parallel",
    "lease_seconds",
    "retry_max",
    "retry_timeout_seconds",
    "request_timeout_seconds",
];

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn parse_num(key: &str, value: &str) -> io::Result<u64> {
    value
        .trim()
        .parse::<u64>()
        .map_err(|_| invalid(format!("option {key} takes a whole number")))
}

impl ObjectStorage {
    /// Storage at `url` (`s3://bucket/prefix` or `az://container/prefix`; the prefix may be
    /// empty). `options` are `object_store`'s configuration keys for the service (for example
    /// `endpoint`, `region`, `access_key_id`, `secret_access_key`, `allow_http` for S3;
    /// `account_name`, `access_key`, `use_emulator`, `endpoint` for Azure) and this crate's
    /// `part_size`, `parallel`, `lease_seconds`, `retry_max`, `retry_timeout_seconds` and
    /// `request_timeout_seconds`; what they leave unset comes from the environment
    /// (`AWS_*`, `AZURE_*`). An unknown key is an error naming the key, never its value.
    pub fn from_url(url: &str, options: &[(&str, &str)]) -> io::Result<ObjectStorage> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("a store URL is scheme://bucket/prefix".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_end_matches('/');
        if bucket.is_empty() {
            return Err(invalid(format!("{scheme}:// URL without a bucket")));
        }
        // The prefix must name its objects as written: `object_store` percent-encodes what
        // it does not allow in a path (`%`, `~`, `#`, ...) and drops empty segments, so
        // another tool, or a URL written the other way, would look elsewhere.
        if !prefix.is_empty()
            && (Path::parse(prefix).is_err() || Path::from(prefix).as_ref() != prefix)
        {
            return Err(invalid(format!(
                "invalid prefix {prefix:?}: no character object_store would percent-encode \
                 (% ~ # \\ ...), no empty, . or .. segment"
            )));
        }
        let mut config = ObjectConfig::default();
        let mut service: Vec<(&str, &str)> = Vec::new();
        for &(k, v) in options {
            match k {
                "part_size" => {
                    let n = parse_num(k, v)?;
                    if !(5 << 20..=4000 << 20).contains(&n) {
                        return Err(invalid("part_size is 5 MiB to 4000 MiB".into()));
                    }
                    config.part_size = n as usize;
                }
                "parallel" => config.parallel = parse_num(k, v)?.clamp(1, 256) as usize,
                "lease_seconds" => {
                    config.lease = Duration::from_secs(parse_num(k, v)?.clamp(3, 86_400))
                }
                "retry_max" => config.retry_max = parse_num(k, v)? as usize,
                "retry_timeout_seconds" => {
                    config.retry_timeout = Duration::from_secs(parse_num(k, v)?.max(1))
                }
                "request_timeout_seconds" => {
                    config.request_timeout = Duration::from_secs(parse_num(k, v)?.max(1))
                }
                _ => service.push((k, v)),
            }
        }
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(15),
                base: 2.0,
            },
            max_retries: config.retry_max,
            retry_timeout: config.retry_timeout,
        };
        // Timeouts as configuration keys: `with_client_options` would replace the client
        // settings read from the environment (AWS_ALLOW_HTTP, proxies, ...). The caller's
        // options come after, so `timeout` and `connect_timeout` there win.
        let timeouts = [
            (
                ClientConfigKey::Timeout,
                format!("{}s", config.request_timeout.as_secs()),
            ),
            (ClientConfigKey::ConnectTimeout, "10s".to_string()),
        ];
        let location = if prefix.is_empty() {
            format!("{scheme}://{bucket}")
        } else {
            format!("{scheme}://{bucket}/{prefix}")
        };
        let unknown = |k: &str| {
            invalid(format!(
                "unknown option {k:?} for {scheme}:// (this crate's own: {})",
                OWN_OPTIONS.join(", ")
            ))
        };
        let built = |e: OsError| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("configuring {location}: {}", redact(&e.to_string())),
            )
        };
        install_crypto_provider();
        let (store, multipart): (Arc<dyn ObjectStore>, Arc<dyn MultipartStore>) = match scheme {
            "s3" => {
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry);
                for (k, v) in timeouts {
                    b = b.with_config(object_store::aws::AmazonS3ConfigKey::Client(k), v);
                }
                for (k, v) in service {
                    let key = k.parse().map_err(|_| unknown(k))?;
                    b = b.with_config(key, v);
                }
                let s = Arc::new(b.build().map_err(built)?);
                (s.clone(), s)
            }
            "az" | "azure" => {
                let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(bucket)
                    .with_retry(retry);
                for (k, v) in timeouts {
                    b = b.with_config(object_store::azure::AzureConfigKey::Client(k), v);
                }
                for (k, v) in service {
                    let key = k.parse().map_err(|_| unknown(k))?;
                    b = b.with_config(key, v);
                }
                let s = Arc::new(b.build().map_err(built)?);
                (s.clone(), s)
            }
            _ => return Err(invalid(format!("no object storage for scheme {scheme:?}"))),
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("blockdelta-object-store")
            .enable_all()
            .build()?;
        Ok(ObjectStorage {
            s: Arc::new(Shared {
                rt: Some(rt),
                store,
                multipart,
                prefix: prefix.to_string(),
                location,
                config,
                counters: Counters::default(),
                held: Arc::new(Mutex::new(None)),
            }),
            manifest: Mutex::new(None),
        })
    }

    /// The store's location as errors name it: `scheme://bucket/prefix`.
    pub fn location(&self) -> &str {
        &self.s.location
    }

    /// Requests sent so far, by kind.
    pub fn request_counts(&self) -> RequestCounts {
        self.s.counters.snapshot()
    }
}

/// rustls needs one crypto provider per process: `ring`, which the crate links anyway. A
/// provider the application installed first stays.
fn install_crypto_provider() {
    // Deprecated only because ring has no post-quantum key exchange; aws-lc-rs has one but is
    // a large C build, which the core crate avoids.
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An error's message and its sources' (a timeout or a refused connection is often only in a
/// source), each once.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !text.contains(&m) {
            text.push_str(": ");
            text.push_str(&m);
        }
        cur = c.source();
    }
    text
}

/// `text` with the query string of every URL in it cut off (a SAS token, a presigned URL's
/// signature).
fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_query = false;
    let mut prev = ' ';
    for c in text.chars() {
        let before = std::mem::replace(&mut prev, c);
        if in_query {
            if c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '>' | ',') {
                in_query = false;
                out.push(c);
            }
            continue;
        }
        // A query string follows a URL's path; `<?xml ... "1.0"?>` in a quoted answer is not
        // one.
        if c == '?' && !matches!(before, '<' | '"') {
            out.push_str("?<redacted>");
            in_query = true;
            continue;
        }
        out.push(c);
    }
    out
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Dropping a runtime waits for its tasks and panics inside another runtime's task;
        // a background shutdown does neither.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Shared {
    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt
            .as_ref()
            .expect("the runtime lives as long as the storage")
    }

    fn path(&self, rel: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(rel)
        } else {
            Path::from(format!("{}/{rel}", self.prefix))
        }
    }

    fn object(&self, name: &str) -> io::Result<Path> {
        check_name(name)?;
        Ok(self.path(&format!("objects/{name}")))
    }

    /// Runs `f` to completion on the storage's runtime, this thread waiting for it (any
    /// thread: one of `spawn_blocking` included; a task of another async runtime would block
    /// its worker, so async callers use `spawn_blocking`).
    fn run<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> io::Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rt().spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv()
            .map_err(|_| io::Error::other("the object store's runtime stopped"))
    }

    /// [`Shared::run`] for a write: refused if the writer's lease is no longer safe
    /// ([`Shared::writable`]), and cut off, retries included, when it stops being safe (the
    /// request is dropped; one already sent has the last sixth of the lease to reach the
    /// service before another writer may take over).
    fn run_write<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> io::Result<T> {
        self.writable()?;
        match self.deadline() {
            None => self.run(f),
            Some(until) => self
                .run(async move {
                    tokio::time::timeout_at(tokio::time::Instant::from_std(until), f).await
                })?
                .map_err(|_| self.lapsed()),
        }
    }

    /// Until when this handle's writes are safe: `None` without a lease.
    fn deadline(&self) -> Option<std::time::Instant> {
        self.held.lock().as_ref().map(|h| h.until)
    }

    fn lapsed(&self) -> io::Error {
        io::Error::other(format!(
            "the writer's lease of {} was not renewed in time (another writer may take the \
             store over): this handle writes nothing more; reopen the store",
            self.location
        ))
    }

    /// An `object_store` error as an `io::Error` whose kind a caller acts on, naming the
    /// store and the object but no credentials.
    fn err(&self, op: &str, what: &str, e: OsError) -> io::Error {
        let kind = match &e {
            OsError::NotFound { .. } => io::ErrorKind::NotFound,
            OsError::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
            OsError::PermissionDenied { .. } | OsError::Unauthenticated { .. } => {
                io::ErrorKind::PermissionDenied
            }
            OsError::InvalidPath { .. } => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(
            kind,
            format!("{op} {}/{what}: {}", self.location, redact(&chain(&e))),
        )
    }

    fn get_bytes(&self, path: &Path, what: &str) -> io::Result<Option<(Bytes, Option<String>)>> {
        Counters::add(&self.counters.gets);
        let store = self.store.clone();
        let p = path.clone();
        let r = self.run(async move {
            let got = store.get(&p).await?;
            let etag = got.meta.e_tag.clone();
            Ok::<_, OsError>((got.bytes().await?, etag))
        })?;
        match r {
            Ok(v) => Ok(Some(v)),
            Err(OsError::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("reading", what, e)),
        }
    }

    /// Refuses every write of a writer whose lease was not renewed in time: the lease lasts
    /// `lease` from when its last renewal was sent, by the other writers' clocks, so the
    /// writer stops a sixth of it earlier (clock drift, a slow answer). Another writer may
    /// then take the store over; this handle must not write beside it. A handle that holds
    /// no lease (read-only, or a storage used without the store) is not limited.
    fn writable(&self) -> io::Result<()> {
        match self.held.lock().as_ref() {
            Some(h) if !h.live() => Err(self.lapsed()),
            _ => Ok(()),
        }
    }

    fn put_mode(&self, path: &Path, data: Bytes, mode: PutMode) -> Result<Option<String>, OsError> {
        Counters::add(&self.counters.puts);
        let store = self.store.clone();
        let p = path.clone();
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        self.run_write(async move { store.put_opts(&p, PutPayload::from(data), opts).await })
            .map_err(|e| OsError::Generic {
                store: "blockdelta",
                source: Box::new(e),
            })?
            .map(|r| r.e_tag)
    }

    /// Creates object `name` (create-only).
    fn put_create(&self, name: &str, data: Bytes) -> io::Result<()> {
        self.writable()?;
        let path = self.object(name)?;
        match self.put_mode(&path, data.clone(), PutMode::Create) {
            Ok(_) => Ok(()),
            Err(OsError::AlreadyExists { .. }) | Err(OsError::Precondition { .. }) => {
                // Either another writer's object, or ours from an attempt whose answer was
                // lost and retried: the bytes tell.
                match self.get_bytes(&path, name)? {
                    Some((b, _)) if b == data => Ok(()),
                    _ => Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("object {}/{name} exists", self.location),
                    )),
                }
            }
            Err(e) => Err(self.err("writing", name, e)),
        }
    }

    fn delete_path(&self, path: &Path, what: &str) -> io::Result<()> {
        self.writable()?;
        Counters::add(&self.counters.deletes);
        let store = self.store.clone();
        let p = path.clone();
        match self.run_write(async move { store.delete(&p).await })? {
            Ok(()) | Err(OsError::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("deleting", what, e)),
        }
    }

    /// The names directly under `dir` (objects, or for `tails/<name>` the tails).
    fn list_dir(&self, dir: &str) -> io::Result<(Vec<String>, Vec<String>)> {
        Counters::add(&self.counters.lists);
        let store = self.store.clone();
        let p = self.path(dir);
        let r = self
            .run(async move { store.list_with_delimiter(Some(&p)).await })?
            .map_err(|e| self.err("listing", dir, e))?;
        let objects = r
            .objects
            .iter()
            .filter_map(|o| o.location.filename().map(str::to_string))
            .collect();
        let dirs = r
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        Ok((objects, dirs))
    }
}

impl Storage for ObjectStorage {
    fn put(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.s.put_create(name, Bytes::copy_from_slice(data))
    }

    fn get_range(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut one = [RangeRead { name, offset, buf }];
        self.get_ranges(&mut one).map_err(|(_, e)| e)
    }

    fn get_ranges(&self, reads: &mut [RangeRead<'_>]) -> Result<(), (usize, io::Error)> {
        let s = &self.s;
        // Every read cut into pieces of at most a part's size, fetched `parallel` at once.
        let piece = s.config.part_size as u64;
        let mut jobs: Vec<(usize, Path, std::ops::Range<u64>)> = Vec::new();
        for (i, r) in reads.iter().enumerate() {
            let path = s.object(r.name).map_err(|e| (i, e))?;
            let end = r
                .offset
                .checked_add(r.buf.len() as u64)
                .ok_or_else(|| (i, invalid("range past 2^64".into())))?;
            let mut a = r.offset;
            while a < end {
                let b = (a + piece).min(end);
                jobs.push((i, path.clone(), a..b));
                a = b;
            }
        }
        for _ in &jobs {
            Counters::add(&s.counters.gets);
        }
        let store = s.store.clone();
        let parallel = s.config.parallel;
        let ranges: Vec<(usize, std::ops::Range<u64>)> =
            jobs.iter().map(|(i, _, r)| (*i, r.clone())).collect();
        let specs = jobs;
        let got = s
            .run(async move {
                let mut done: Vec<Option<Result<Bytes, OsError>>> = Vec::new();
                done.resize_with(specs.len(), || None);
                let mut set = tokio::task::JoinSet::new();
                let mut next = 0usize;
                while next < specs.len() || !set.is_empty() {
                    while next < specs.len() && set.len() < parallel {
                        let (st, (_, p, r)) = (store.clone(), specs[next].clone());
                        let k = next;
                        set.spawn(async move { (k, st.get_range(&p, r).await) });
                        next += 1;
                    }
                    if let Some(j) = set.join_next().await {
                        match j {
                            Ok((k, r)) => {
                                let failed = r.is_err();
                                done[k] = Some(r);
                                if failed {
                                    set.abort_all();
                                    break;
                                }
                            }
                            Err(e) => {
                                set.abort_all();
                                return Err(e);
                            }
                        }
                    }
                }
                Ok(done)
            })
            .map_err(|e| (0, e))?
            .map_err(|e| (0, io::Error::other(format!("a read task failed: {e}"))))?;
        let mut filled = vec![0usize; reads.len()];
        for ((i, range), r) in ranges.into_iter().zip(got) {
            let name = reads[i].name;
            let bytes = match r {
                Some(Ok(b)) => b,
                Some(Err(OsError::NotFound { .. })) => {
                    return Err((
                        i,
                        io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("object {}/{name} does not exist", s.location),
                        ),
                    ))
                }
                Some(Err(e)) => return Err((i, s.err("reading", name, e))),
                None => continue, // not fetched: an earlier piece failed
            };
            let at = (range.start - reads[i].offset) as usize;
            let want = (range.end - range.start) as usize;
            if bytes.len() != want {
                return Err((
                    i,
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("object {}/{name} ends before {}", s.location, range.end),
                    ),
                ));
            }
            reads[i].buf[at..at + want].copy_from_slice(&bytes);
            filled[i] += want;
        }
        match filled
            .iter()
            .zip(reads.iter())
            .position(|(f, r)| *f != r.buf.len())
        {
            Some(i) => Err((i, io::Error::other("a ranged read was not completed"))),
            None => Ok(()),
        }
    }

    fn get_pieces(
        &self,
        pieces: &[Piece<'_>],
        sink: &mut PieceSink<'_>,
    ) -> Result<(), (usize, io::Error)> {
        let s = &self.s;
        if pieces.is_empty() {
            return Ok(());
        }
        let mut specs = Vec::with_capacity(pieces.len());
        for (i, p) in pieces.iter().enumerate() {
            let path = s.object(p.name).map_err(|e| (i, e))?;
            let end = p
                .offset
                .checked_add(p.len)
                .ok_or_else(|| (i, invalid("range past 2^64".into())))?;
            specs.push((path, p.offset..end));
            Counters::add(&s.counters.gets);
        }
        // `parallel` requests in flight; answers wait in the channel until the sink took them,
        // at most `parallel` more of them (a permit per answer not yet consumed).
        let parallel = s.config.parallel;
        let permits = Arc::new(tokio::sync::Semaphore::new(2 * parallel));
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<Bytes, OsError>)>();
        let store = s.store.clone();
        let gate = permits.clone();
        s.rt().spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            let mut next = 0usize;
            loop {
                while next < specs.len() && set.len() < parallel {
                    match gate.acquire().await {
                        Ok(p) => p.forget(),
                        Err(_) => return, // the reader stopped
                    }
                    let (st, (p, r)) = (store.clone(), specs[next].clone());
                    let k = next;
                    set.spawn(async move { (k, st.get_range(&p, r).await) });
                    next += 1;
                }
                let Some(j) = set.join_next().await else {
                    return;
                };
                let (k, r) = match j {
                    Ok(v) => v,
                    Err(e) => (usize::MAX, Err(OsError::JoinError { source: e })),
                };
                let failed = r.is_err();
                if tx.send((k, r)).is_err() || failed {
                    set.abort_all();
                    return;
                }
            }
        });
        let result = (|| {
            for _ in 0..pieces.len() {
                let (k, r) = rx
                    .recv()
                    .map_err(|_| (0, io::Error::other("the object store's runtime stopped")))?;
                let name = pieces.get(k).map_or("?", |p| p.name);
                let bytes = match r {
                    Ok(b) => b,
                    Err(OsError::NotFound { .. }) => {
                        return Err((
                            k,
                            io::Error::new(
                                io::ErrorKind::NotFound,
                                format!("object {}/{name} does not exist", s.location),
                            ),
                        ))
                    }
                    Err(e) => return Err((k.min(pieces.len() - 1), s.err("reading", name, e))),
                };
                if bytes.len() as u64 != pieces[k].len {
                    return Err((
                        k,
                        io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "object {}/{name} ends before {}",
                                s.location,
                                pieces[k].offset + pieces[k].len
                            ),
                        ),
                    ));
                }
                sink(k, &bytes).map_err(|e| (k, e))?;
                drop(bytes);
                permits.add_permits(1);
            }
            Ok(())
        })();
        // A reader that stops early stops the fetching task too.
        permits.close();
        result
    }

    fn piece_size(&self) -> u64 {
        self.s.config.part_size as u64
    }

    fn merge_gap(&self) -> u64 {
        // A request costs about what a megabyte of transfer does on a typical link.
        1 << 20
    }

    fn size(&self, name: &str) -> io::Result<u64> {
        let s = &self.s;
        let path = s.object(name)?;
        Counters::add(&s.counters.gets);
        let store = s.store.clone();
        s.run(async move { store.head(&path).await })?
            .map(|m| m.size)
            .map_err(|e| s.err("reading the size of", name, e))
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let (objects, _) = self.s.list_dir("objects")?;
        Ok(objects
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .collect())
    }

    fn delete(&self, name: &str) -> io::Result<()> {
        let path = self.s.object(name)?;
        self.s.delete_path(&path, name)
    }

    fn delete_many(&self, names: &[String]) -> io::Result<()> {
        let s = &self.s;
        let paths = names
            .iter()
            .map(|n| s.object(n))
            .collect::<io::Result<Vec<Path>>>()?;
        s.writable()?;
        for _ in &paths {
            Counters::add(&s.counters.deletes);
        }
        let store = s.store.clone();
        let parallel = s.config.parallel;
        let r = s.run_write(async move {
            let mut set = tokio::task::JoinSet::new();
            let mut it = paths.into_iter();
            let mut first_err = None;
            loop {
                while set.len() < parallel {
                    match it.next() {
                        Some(p) => {
                            let st = store.clone();
                            set.spawn(async move { st.delete(&p).await });
                        }
                        None => break,
                    }
                }
                match set.join_next().await {
                    None => break,
                    Some(Ok(Ok(()) | Err(OsError::NotFound { .. }))) => {}
                    Some(Ok(Err(e))) => {
                        first_err.get_or_insert(e);
                    }
                    Some(Err(e)) => {
                        first_err.get_or_insert(OsError::JoinError { source: e });
                    }
                }
            }
            first_err.map_or(Ok(()), Err)
        })?;
        r.map_err(|e| s.err("deleting", "objects", e))
    }

    fn upload(&self, name: &str) -> io::Result<Box<dyn Upload>> {
        check_name(name)?;
        // A new upload replaces any unfinished one of that name: its first sync overwrites
        // the state, and aborting drops every tail of the name. (The store never reuses a
        // name, and an upload that never syncs sends nothing but its parts and completion;
        // an older upload's leftovers stay listed in `uploads`, where the store drops them.)
        Ok(Box::new(ObjectUpload::new(self.s.clone(), name, None)))
    }

    fn resume_upload(&self, name: &str, len: u64) -> io::Result<Box<dyn Upload>> {
        check_name(name)?;
        let s = &self.s;
        let state = UploadState::read(s, name)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no unfinished upload {}/{name}", s.location),
            )
        })?;
        if state.len < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("upload {name} holds {} bytes, {len} were synced", state.len),
            ));
        }
        // The parts wholly before `len`, and the tail written when `len` was synced.
        let parts: Vec<(u64, String)> = state
            .parts
            .iter()
            .take_while(|(end, _)| *end <= len)
            .cloned()
            .collect();
        let start = parts.last().map_or(0, |p| p.0);
        let mut buf = Vec::with_capacity(s.config.part_size);
        if len > start {
            let tail = s.path(&format!("tails/{name}/{len:016x}"));
            match s.get_bytes(&tail, name)? {
                Some((b, _)) if b.len() as u64 == len - start => buf.extend_from_slice(&b),
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("upload {name} cannot be resumed at {len}: its tail is missing"),
                    ))
                }
            }
        }
        // (Azure's multipart ids are empty; an upload that never sent a part has none.)
        let id = (!state.id.is_empty() || !state.parts.is_empty()).then_some(state.id);
        let mut up = ObjectUpload::new(s.clone(), name, id);
        up.parts = parts.into_iter().map(|(end, id)| (end, Some(id))).collect();
        up.buf = buf;
        up.len = len;
        up.stored = true;
        up.synced = len;
        Ok(Box::new(up))
    }

    fn abort_upload(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        let s = &self.s;
        s.writable()?;
        if let Some(state) = UploadState::read(s, name)? {
            if !state.id.is_empty() {
                Counters::add(&s.counters.multipart);
                let mp = s.multipart.clone();
                let path = s.object(name)?;
                let id = state.id.clone();
                match s.run_write(async move { mp.abort_multipart(&path, &id).await })? {
                    Ok(()) | Err(OsError::NotFound { .. }) => {}
                    Err(e) => return Err(s.err("aborting the upload of", name, e)),
                }
            }
        }
        drop_tails(s, name, None)?;
        s.delete_path(&s.path(&format!("uploads/{name}")), name)
    }

    fn uploads(&self) -> io::Result<Vec<String>> {
        let (states, _) = self.s.list_dir("uploads")?;
        let (_, tails) = self.s.list_dir("tails")?;
        // Tails without a state (a crash between writing the first tail and the first state)
        // are uploads too, so that the store drops them.
        let mut all = states;
        for t in tails {
            if !all.contains(&t) {
                all.push(t);
            }
        }
        Ok(all)
    }

    fn manifest_version(&self) -> io::Result<Option<u64>> {
        let s = &self.s;
        Counters::add(&s.counters.gets);
        let store = s.store.clone();
        let path = s.path("MANIFEST");
        match s.run(async move { store.get_range(&path, 0..24).await })? {
            Ok(b) => Ok(Some(manifest_version(&b))),
            Err(OsError::NotFound { .. }) => Ok(None),
            Err(e) => Err(s.err("reading", "MANIFEST", e)),
        }
    }

    fn read_manifest(&self) -> io::Result<Option<(Vec<u8>, u64)>> {
        let s = &self.s;
        match s.get_bytes(&s.path("MANIFEST"), "MANIFEST")? {
            Some((b, etag)) => {
                let v = manifest_version(&b);
                *self.manifest.lock() = Some((v, etag));
                Ok(Some((b.to_vec(), v)))
            }
            None => {
                *self.manifest.lock() = None;
                Ok(None)
            }
        }
    }

    fn swap_manifest(&self, expected: ManifestVersion, data: &[u8]) -> io::Result<u64> {
        let s = &self.s;
        s.writable()?;
        let path = s.path("MANIFEST");
        let mode = match expected {
            None => PutMode::Create,
            Some(v) => {
                let known = self.manifest.lock().clone();
                let etag = match known {
                    Some((kv, etag)) if kv == v => etag,
                    // Not the one this handle last saw: read the current one.
                    _ => match s.get_bytes(&path, "MANIFEST")? {
                        Some((b, etag)) if manifest_version(&b) == v => etag,
                        // This very swap, already made (a second delivery of the call).
                        Some((b, etag)) if b.as_ref() == data => {
                            *self.manifest.lock() = Some((manifest_version(data), etag));
                            return Ok(manifest_version(data));
                        }
                        _ => return Err(manifest_conflict()),
                    },
                };
                PutMode::Update(UpdateVersion {
                    e_tag: Some(etag.ok_or_else(|| {
                        io::Error::other("the object store gave the manifest no ETag")
                    })?),
                    version: None,
                })
            }
        };
        let new_version = manifest_version(data);
        match s.put_mode(&path, Bytes::copy_from_slice(data), mode) {
            Ok(etag) => {
                *self.manifest.lock() = Some((new_version, etag));
                Ok(new_version)
            }
            Err(
                OsError::Precondition { .. }
                | OsError::AlreadyExists { .. }
                | OsError::NotFound { .. },
            ) => {
                // A lost race, or our own write whose answer was lost and retried: the
                // manifest's bytes tell.
                match s.get_bytes(&path, "MANIFEST")? {
                    Some((b, etag)) if b.as_ref() == data => {
                        *self.manifest.lock() = Some((new_version, etag));
                        Ok(new_version)
                    }
                    _ => Err(manifest_conflict()),
                }
            }
            Err(e) => Err(s.err("writing", "MANIFEST", e)),
        }
    }

    fn lock_writer(&self) -> io::Result<Box<dyn Send + Sync>> {
        Lease::take(self.s.clone()).map(|l| Box::new(l) as Box<dyn Send + Sync>)
    }

    fn requests(&self) -> u64 {
        self.s.counters.snapshot().total()
    }
}

/// Deletes the tails of upload `name`, but the one at `keep`.
fn drop_tails(s: &Shared, name: &str, keep: Option<u64>) -> io::Result<()> {
    let (tails, _) = s.list_dir(&format!("tails/{name}"))?;
    for t in tails {
        if keep.is_some_and(|k| t == format!("{k:016x}")) {
            continue;
        }
        s.delete_path(&s.path(&format!("tails/{name}/{t}")), name)?;
    }
    Ok(())
}

const STATE_MAGIC: &[u8; 8] = b"BDUPST01";

/// An unfinished upload's state object: its multipart id and, for each part uploaded, the
/// offset where it ends and its id; `len` is the length of the last sync.
struct UploadState {
    id: String,
    len: u64,
    parts: Vec<(u64, String)>,
}

impl UploadState {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(STATE_MAGIC);
        b.extend_from_slice(&self.len.to_le_bytes());
        let put_str = |b: &mut Vec<u8>, s: &str| {
            b.extend_from_slice(&(s.len() as u32).to_le_bytes());
            b.extend_from_slice(s.as_bytes());
        };
        put_str(&mut b, &self.id);
        b.extend_from_slice(&(self.parts.len() as u32).to_le_bytes());
        for (end, id) in &self.parts {
            b.extend_from_slice(&end.to_le_bytes());
            put_str(&mut b, id);
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<UploadState> {
        let (body, crc) = b.split_at_checked(b.len().checked_sub(4)?)?;
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut r = body.strip_prefix(STATE_MAGIC)?;
        let mut take = |n: usize| -> Option<&[u8]> {
            let (a, rest) = r.split_at_checked(n)?;
            r = rest;
            Some(a)
        };
        let len = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let id = String::from_utf8(take(n)?.to_vec()).ok()?;
        let count = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let mut parts = Vec::new();
        let mut last = 0;
        for _ in 0..count {
            let end = u64::from_le_bytes(take(8)?.try_into().ok()?);
            let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
            let pid = String::from_utf8(take(n)?.to_vec()).ok()?;
            if end <= last || end > len {
                return None;
            }
            last = end;
            parts.push((end, pid));
        }
        Some(UploadState { id, len, parts })
    }

    fn read(s: &Shared, name: &str) -> io::Result<Option<UploadState>> {
        match s.get_bytes(&s.path(&format!("uploads/{name}")), name)? {
            None => Ok(None),
            Some((b, _)) => UploadState::decode(&b).map(Some).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the state of upload {}/{name} is damaged", s.location),
                )
            }),
        }
    }
}

type PartTask = tokio::task::JoinHandle<Result<PartId, OsError>>;

/// A multipart upload being written. See the module documentation.
struct ObjectUpload {
    s: Arc<Shared>,
    name: String,
    /// The multipart id, once the first part went out.
    id: Option<String>,
    /// Each part: where it ends, and its id once uploaded.
    parts: Vec<(u64, Option<String>)>,
    /// Parts in flight: their index in `parts` and the request.
    flying: VecDeque<(usize, PartTask)>,
    /// Bytes after the last part.
    buf: Vec<u8>,
    len: u64,
    /// A part upload failed: every later call fails.
    broken: bool,
    /// A state object or tails may exist (a multipart upload was started, a sync happened,
    /// or the upload was resumed): they are deleted once the upload completes.
    stored: bool,
    /// The length at the last sync.
    synced: u64,
}

impl ObjectUpload {
    fn new(s: Arc<Shared>, name: &str, id: Option<String>) -> ObjectUpload {
        ObjectUpload {
            buf: Vec::new(),
            s,
            name: name.to_string(),
            id,
            parts: Vec::new(),
            flying: VecDeque::new(),
            len: 0,
            broken: false,
            stored: false,
            synced: 0,
        }
    }

    fn check(&self) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other(format!(
                "upload {}/{} failed earlier",
                self.s.location, self.name
            )));
        }
        Ok(())
    }

    fn multipart_id(&mut self) -> io::Result<String> {
        if let Some(id) = &self.id {
            return Ok(id.clone());
        }
        let s = &self.s;
        s.writable()?;
        Counters::add(&s.counters.multipart);
        let mp = s.multipart.clone();
        let path = s.object(&self.name)?;
        let id = s
            .run_write(async move { mp.create_multipart(&path).await })?
            .map_err(|e| s.err("starting the upload of", &self.name, e))?;
        self.id = Some(id.clone());
        // Recorded at once, so that `uploads` lists it and an abort (or the store's garbage
        // collection after a crash) finds its parts even if it never syncs.
        self.write_state()?;
        Ok(id)
    }

    /// Sends the buffer as the next part (waiting while `parallel` are in flight).
    fn send_part(&mut self) -> io::Result<()> {
        let id = self.multipart_id()?;
        while self.flying.len() >= self.s.config.parallel {
            self.wait_one()?;
        }
        let data = Bytes::from(std::mem::take(&mut self.buf));
        let idx = self.parts.len();
        let end = self.len;
        self.parts.push((end, None));
        let s = &self.s;
        s.writable()?;
        Counters::add(&s.counters.multipart);
        let mp = s.multipart.clone();
        let path = s.object(&self.name)?;
        // Cut off, retries included, once the lease is no longer safe (see `run_write`).
        let until = s.deadline();
        let task = s.rt().spawn(async move {
            let put = mp.put_part(&path, &id, idx, PutPayload::from(data));
            match until {
                None => put.await,
                Some(u) => tokio::time::timeout_at(tokio::time::Instant::from_std(u), put)
                    .await
                    .unwrap_or_else(|_| {
                        Err(OsError::Generic {
                            store: "blockdelta",
                            source: "the writer's lease was not renewed in time".into(),
                        })
                    }),
            }
        });
        self.flying.push_back((idx, task));
        self.buf = Vec::with_capacity(self.s.config.part_size);
        Ok(())
    }

    fn wait_one(&mut self) -> io::Result<()> {
        let Some((idx, task)) = self.flying.pop_front() else {
            return Ok(());
        };
        let r = self.s.run(task)?;
        match r {
            Ok(Ok(pid)) => {
                self.parts[idx].1 = Some(pid.content_id);
                Ok(())
            }
            Ok(Err(e)) => {
                self.broken = true;
                Err(self.s.err("uploading a part of", &self.name, e))
            }
            Err(e) => {
                self.broken = true;
                Err(io::Error::other(format!("a part upload panicked: {e}")))
            }
        }
    }

    fn wait_all(&mut self) -> io::Result<()> {
        while !self.flying.is_empty() {
            self.wait_one()?;
        }
        Ok(())
    }

    fn part_ids(&self) -> Vec<(u64, String)> {
        self.parts
            .iter()
            .map(|(end, id)| (*end, id.clone().unwrap_or_default()))
            .collect()
    }
}

impl Upload for ObjectUpload {
    fn append(&mut self, mut data: &[u8]) -> io::Result<()> {
        self.check()?;
        let part = self.s.config.part_size;
        while !data.is_empty() {
            let n = (part - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            self.len += n as u64;
            data = &data[n..];
            if self.buf.len() == part {
                self.send_part()?;
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.check()?;
        let r = self.sync_inner();
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn complete(mut self: Box<Self>) -> io::Result<()> {
        self.check()?;
        let s = self.s.clone();
        let path = s.object(&self.name)?;
        if self.parts.is_empty() {
            // Small: one create-only put of everything (no multipart was started).
            let data = std::mem::take(&mut self.buf);
            s.put_create(&self.name, Bytes::from(data))?;
        } else {
            if !self.buf.is_empty() {
                self.send_part()?;
            }
            self.wait_all()?;
            // Create-only: nothing of this name may exist (names are never reused; this
            // catches a store that broke that rule).
            Counters::add(&s.counters.gets);
            let st = s.store.clone();
            let p = path.clone();
            match s.run(async move { st.head(&p).await })? {
                Err(OsError::NotFound { .. }) => {}
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("object {}/{} exists", s.location, self.name),
                    ))
                }
                Err(e) => return Err(s.err("checking", &self.name, e)),
            }
            let id = self.multipart_id()?;
            let parts: Vec<PartId> = self
                .parts
                .iter()
                .map(|(_, pid)| PartId {
                    content_id: pid.clone().unwrap_or_default(),
                })
                .collect();
            s.writable()?;
            Counters::add(&s.counters.multipart);
            let mp = s.multipart.clone();
            let p = path.clone();
            // (A completion whose answer was lost fails here, even if it took effect: the
            // store then fails the ingest, and the sender sends the stream again. An object
            // of the right size is no proof that it holds these parts.)
            s.run_write(async move { mp.complete_multipart(&p, &id, parts).await })?
                .map_err(|e| s.err("completing the upload of", &self.name, e))?;
        }
        // The upload's state and tails are no longer needed.
        if self.stored {
            drop_tails(&s, &self.name, None)?;
            s.delete_path(&s.path(&format!("uploads/{}", self.name)), &self.name)?;
        }
        Ok(())
    }
}

impl ObjectUpload {
    fn sync_inner(&mut self) -> io::Result<()> {
        self.wait_all()?;
        let s = self.s.clone();
        let len = self.len;
        s.writable()?;
        if !self.buf.is_empty() {
            let tail = s.path(&format!("tails/{}/{len:016x}", self.name));
            s.put_mode(&tail, Bytes::copy_from_slice(&self.buf), PutMode::Overwrite)
                .map_err(|e| s.err("writing the tail of", &self.name, e))?;
        }
        self.write_state_at(len)?;
        self.synced = len;
        Ok(())
    }

    /// Writes the state object: the multipart id, the parts, and `len` (the last sync).
    fn write_state_at(&mut self, len: u64) -> io::Result<()> {
        let s = self.s.clone();
        let state = UploadState {
            id: self.id.clone().unwrap_or_default(),
            len,
            parts: self
                .part_ids()
                .into_iter()
                .filter(|(end, _)| *end <= len)
                .collect(),
        };
        s.writable()?;
        s.put_mode(
            &s.path(&format!("uploads/{}", self.name)),
            Bytes::from(state.encode()),
            PutMode::Overwrite,
        )
        .map_err(|e| s.err("writing the state of upload", &self.name, e))?;
        self.stored = true;
        Ok(())
    }

    /// The state as of the last sync (0 before any).
    fn write_state(&mut self) -> io::Result<()> {
        let synced = if self.stored { self.synced } else { 0 };
        self.write_state_at(synced)
    }
}

impl Drop for ObjectUpload {
    fn drop(&mut self) {
        // Parts still in flight finish or fail on their own; nothing waits for them.
        for (_, t) in self.flying.drain(..) {
            t.abort();
        }
    }
}

const LEASE_MAGIC: &[u8; 8] = b"BDLEASE1";

/// The writer's lease: object `LOCK` holding an owner id and an expiry time, created
/// create-only, renewed with If-Match every third of its length by a task on the storage's
/// runtime, and taken over (If-Match on the expired one's ETag) once it expired by this
/// machine's clock. A writer whose renewals failed for five sixths of the lease writes
/// nothing more ([`Shared::writable`]); a lost answer to its own create, takeover or renewal
/// is recognised by the lease's bytes; it is released by an expired lease written If-Match
/// its last version, so a lease another writer took is never touched. It keeps writers apart;
/// what keeps the store safe even if two write at once (a writer paused past its lease) is
/// the store's fence and create-only commits, not the lease.
struct Lease {
    s: Arc<Shared>,
    renew: Option<tokio::task::JoinHandle<()>>,
}

fn lease_bytes(owner: &[u8; 16], expires_ns: u64) -> Bytes {
    let mut b = Vec::with_capacity(32);
    b.extend_from_slice(LEASE_MAGIC);
    b.extend_from_slice(owner);
    b.extend_from_slice(&expires_ns.to_le_bytes());
    Bytes::from(b)
}

fn lease_expiry(b: &[u8]) -> Option<u64> {
    if b.len() != 32 || !b.starts_with(LEASE_MAGIC) {
        return None;
    }
    Some(u64::from_le_bytes(b[24..32].try_into().ok()?))
}

impl Lease {
    fn take(s: Arc<Shared>) -> io::Result<Lease> {
        let owner = crate::GenerationId::random().0;
        let ttl = s.config.lease;
        let path = s.path("LOCK");
        let sent = std::time::Instant::now();
        let expires = super::store::now_ns().saturating_add(ttl.as_nanos() as u64);
        let mine = lease_bytes(&owner, expires);
        let etag = match s.put_mode(&path, mine.clone(), PutMode::Create) {
            Ok(etag) => etag,
            Err(OsError::AlreadyExists { .. } | OsError::Precondition { .. }) => {
                let (b, etag) = s.get_bytes(&path, "LOCK")?.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!("{} is being locked by another writer", s.location),
                    )
                })?;
                if b == mine {
                    // Our own create: it landed, its answer was lost, and the retry was
                    // refused.
                    return Ok(Lease::hold(s, owner, etag, sent));
                }
                // A lease this build cannot read counts as expired.
                let held_until = lease_expiry(&b).unwrap_or(0);
                let now = super::store::now_ns();
                if held_until > now {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!(
                            "{} is open for writing by another process (its lease ends in {} s)",
                            s.location,
                            (held_until - now) / 1_000_000_000 + 1
                        ),
                    ));
                }
                let mode = PutMode::Update(UpdateVersion {
                    e_tag: etag,
                    version: None,
                });
                match s.put_mode(&path, mine.clone(), mode) {
                    Ok(etag) => etag,
                    Err(
                        OsError::Precondition { .. }
                        | OsError::AlreadyExists { .. }
                        | OsError::NotFound { .. },
                    ) => match s.get_bytes(&path, "LOCK")? {
                        // Our own takeover, its answer lost.
                        Some((b, etag)) if b == mine => etag,
                        _ => {
                            return Err(io::Error::new(
                                io::ErrorKind::WouldBlock,
                                format!("{} was just locked by another writer", s.location),
                            ))
                        }
                    },
                    Err(e) => return Err(s.err("taking over the lease of", "LOCK", e)),
                }
            }
            Err(e) => return Err(s.err("taking the lease of", "LOCK", e)),
        };
        Ok(Lease::hold(s, owner, etag, sent))
    }

    /// The lease just taken (`etag`: its version; its create or takeover was sent at
    /// `sent`), renewed every third of its length.
    fn hold(
        s: Arc<Shared>,
        owner: [u8; 16],
        etag: Option<String>,
        sent: std::time::Instant,
    ) -> Lease {
        let ttl = s.config.lease;
        // Writes stop a sixth of the lease before it ends.
        let valid = ttl - ttl / 6;
        *s.held.lock() = Some(Held {
            until: sent + valid,
            etag,
            owner,
        });
        let renew = {
            let (store, path, held) = (s.store.clone(), s.path("LOCK"), s.held.clone());
            s.rt().spawn(async move {
                // Lost: writes are refused from now on.
                let lost = || {
                    if let Some(h) = held.lock().as_mut() {
                        h.until = std::time::Instant::now();
                    }
                };
                // Whether this handle's writes are still safe. A lapse is final: the handle
                // has told its caller it writes nothing more, so a renewal that lands later
                // (sent before the lapse, or the service back afterwards) must not make it
                // writable again: it would hold the lease against the writer it told to take
                // over, and write again after saying it would not.
                let live = || held.lock().as_ref().is_some_and(Held::live);
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    if !live() {
                        return;
                    }
                    let sent = std::time::Instant::now();
                    let expires = super::store::now_ns().saturating_add(ttl.as_nanos() as u64);
                    let mine = lease_bytes(&owner, expires);
                    let Some(etag) = held.lock().as_ref().map(|h| h.etag.clone()) else {
                        return;
                    };
                    let opts = PutOptions {
                        mode: PutMode::Update(UpdateVersion {
                            e_tag: etag,
                            version: None,
                        }),
                        ..PutOptions::default()
                    };
                    // The lease's new version is kept either way (the release writes over
                    // it); its new expiry only while the handle has not lapsed.
                    let renewed = |e: Option<String>, until: std::time::Instant| {
                        if let Some(h) = held.lock().as_mut() {
                            if h.live() {
                                h.until = until;
                            }
                            h.etag = e;
                        }
                    };
                    match store
                        .put_opts(&path, PutPayload::from(mine.clone()), opts)
                        .await
                    {
                        Ok(r) => renewed(r.e_tag, sent + valid),
                        // Taken over (the fence makes this writer's next commit fail), or our
                        // own renewal (this round's, or an earlier one's) whose answer was
                        // lost: the lease's owner tells, and its expiry how long it holds.
                        Err(OsError::Precondition { .. } | OsError::NotFound { .. }) => {
                            match store.get(&path).await {
                                Ok(got) => {
                                    let e = got.meta.e_tag.clone();
                                    match got.bytes().await {
                                        Ok(b) if b.len() == 32 && b[8..24] == owner => {
                                            let left = lease_expiry(&b)
                                                .unwrap_or(0)
                                                .saturating_sub(super::store::now_ns());
                                            let left =
                                                Duration::from_nanos(left).saturating_sub(ttl / 6);
                                            renewed(e, std::time::Instant::now() + left)
                                        }
                                        Ok(_) => return lost(),
                                        // Unknown: ask again at the next round.
                                        Err(_) => {}
                                    }
                                }
                                Err(OsError::NotFound { .. }) => return lost(),
                                Err(_) => {}
                            }
                        }
                        // Transient: try again at the next round.
                        Err(_) => {}
                    }
                }
            })
        };
        Lease {
            s,
            renew: Some(renew),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(t) = self.renew.take() {
            t.abort();
        }
        // Give the lease up if it is still ours: replaced by an expired lease, If-Match the
        // version this writer last wrote (or, if a renewal still in flight landed after that,
        // the version read back with this writer's owner id), so that a lease another writer
        // took meanwhile is never touched. A failure leaves it to expire.
        let Some(h) = self.s.held.lock().take() else {
            return;
        };
        let path = self.s.path("LOCK");
        let release = |etag: Option<String>| {
            let mode = PutMode::Update(UpdateVersion {
                e_tag: etag,
                version: None,
            });
            self.s.put_mode(&path, lease_bytes(&h.owner, 0), mode)
        };
        if let Err(OsError::Precondition { .. }) = release(h.etag.clone()) {
            if let Ok(Some((b, etag))) = self.s.get_bytes(&path, "LOCK") {
                if b.len() == 32 && b[8..24] == h.owner && lease_expiry(&b) != Some(0) {
                    let _ = release(etag);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_cuts_query_strings() {
        assert_eq!(
            redact("GET http://h/c/o?sv=1&sig=SECRET failed"),
            "GET http://h/c/o?<redacted> failed"
        );
        assert_eq!(redact("no url"), "no url");
        assert_eq!(
            redact("answer <?xml version=\"1.0\"?><Error>"),
            "answer <?xml version=\"1.0\"?><Error>"
        );
        assert_eq!(
            redact("url \"http://a?x=SECRET\" and http://b?y=SECRET2"),
            "url \"http://a?<redacted>\" and http://b?<redacted>"
        );
    }

    #[test]
    fn prefixes_name_their_objects_as_written() {
        for ok in ["p", "a/b/c", "disk-1_x.y", "tenant=1/disk"] {
            let r = ObjectStorage::from_url(&format!("s3://bucket/{ok}"), &[("region", "x")]);
            assert!(r.is_ok(), "{ok}: {:?}", r.err());
        }
        for bad in ["a%b", "a~b", "a//b", "a/./b", "a/../b", "a#b", "a\\b"] {
            let e = ObjectStorage::from_url(&format!("s3://bucket/{bad}"), &[]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
            assert!(e.to_string().contains("invalid prefix"), "{bad}: {e}");
        }
    }

    #[test]
    fn upload_state_round_trips_and_refuses_damage() {
        let st = UploadState {
            id: "upload-id".into(),
            len: 100,
            parts: vec![(40, "a".into()), (80, "b".into())],
        };
        let b = st.encode();
        let d = UploadState::decode(&b).unwrap();
        assert_eq!(
            (d.id.as_str(), d.len, d.parts.clone()),
            ("upload-id", 100, st.parts)
        );
        for i in 0..b.len() {
            let mut x = b.clone();
            x[i] ^= 1;
            assert!(UploadState::decode(&x).is_none(), "byte {i}");
        }
        assert!(UploadState::decode(&b[..b.len() - 1]).is_none());
    }
}
