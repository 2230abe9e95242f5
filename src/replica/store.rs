//! The store: open/create, the in-memory view of points and layers, reads, exports, retention,
//! rollback. Ingest is in `ingest.rs`.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::error::{corrupt, hex, io_err, ReplicaError, Result};
use super::format::{decode_layer, encode_layer, layer_object_len, pack_object_len, CHUNK};
use super::log::{
    encode_record, log_counter, log_name, replay_log, LogState, LOG_MAX_RECORDS, LOG_MIN_BYTES,
};
use super::manifest::{
    bundle_name, layer_name, pack_name, resume_name, BaseLevel, Manifest, PackRec, PointRec,
    Retention, BASE_LEVELS,
};
use super::map::{find_run, overlay, subtract, union_ranges, Index, Run, RunKind};
use super::storage::{DirStorage, ManifestConflict, ManifestVersion, Storage};
use crate::stream::{ApplyTarget, BookmarkKind};
use crate::tracker::{Extent, GenerationId};

/// Names a recovery point: the tracker generation and the checkpoint (a stream's `to_seq`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PointId {
    /// The generation.
    pub generation: GenerationId,
    /// The checkpoint.
    pub sequence: u64,
}

/// A recovery point as listed by [`Store::points`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PointInfo {
    /// Which point.
    pub id: PointId,
    /// The checkpoint the point's changes start from (earlier points merged into this one
    /// move it back).
    pub from_sequence: u64,
    /// The disk's size at this point.
    pub disk_size: u64,
    /// The point's time: its BOOKMARK's timestamp, or when it was ingested.
    pub time_ns: u64,
    /// When the store made it durable.
    pub ingested_ns: u64,
    /// Crash- or application-consistent (from the stream's BOOKMARK; crash without one).
    pub consistency: BookmarkKind,
    /// The BOOKMARK's id, if the stream had one.
    pub bookmark_id: Option<u64>,
    /// The BOOKMARK's label ("" without one).
    pub label: String,
    /// True for points after a rollback point, kept until [`Store::discard_detached`].
    pub detached: bool,
    /// Bytes of data its stream stored.
    pub stored_bytes: u64,
    /// Bytes of data that no other point needs if this one alone is deleted (0 for the newest
    /// point, which is never deleted). They are returned to the file system when the pack that
    /// holds them is compacted or dies.
    pub exclusive_bytes: u64,
}

/// Why retention removed a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpiryReason {
    /// Older than the policy's age for its kind.
    Age,
    /// An application-consistent point thinned to one per interval.
    AppInterval,
    /// More points than the policy's count.
    Count,
    /// Removed early to stay under the byte cap.
    ByteCap,
}

/// A point retention removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expired {
    /// The point as it was listed.
    pub point: PointInfo,
    /// Why.
    pub reason: ExpiryReason,
}

/// What [`Store::rollback`] did: the store's new lineage and the blocks the source must
/// re-send. Hand all three to the source's tracker (`Tracker::adopt_lineage`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollback {
    /// The new generation: the next stream must carry it.
    pub generation: GenerationId,
    /// The checkpoint the next stream starts from.
    pub sequence: u64,
    /// Every range that differs between the rollback point and the newest point before the
    /// rollback (as written extents).
    pub extents: Vec<Extent>,
}

/// Sizes and counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Bytes of every object and the manifest: what the byte cap limits.
    pub bytes: u64,
    /// Listed points (detached included).
    pub points: u64,
    /// Packs: one per ingested stream or compaction, each its own object or inside a bundle.
    pub packs: u64,
    /// Bundle objects, each holding many small packs.
    pub bundles: u64,
    /// Bytes of pack data still referenced by some point or the base.
    pub live_data_bytes: u64,
    /// Bytes of pack data referenced by nothing (reclaimed by compaction).
    pub dead_data_bytes: u64,
    /// Pieces in the read index (its memory is about 64 bytes per piece).
    pub index_pieces: u64,
}

/// How a new store is set up.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// The disk this store replicates; streams for any other disk are refused.
    pub disk_id: [u8; 16],
    /// The retention policy (changeable later with [`Store::set_retention`]).
    pub retention: Retention,
}

impl StoreConfig {
    /// A store for `disk_id` that keeps every point.
    pub fn new(disk_id: [u8; 16]) -> Self {
        StoreConfig {
            disk_id,
            retention: Retention::default(),
        }
    }
}

pub(crate) struct Writer {
    pub m: Manifest,
    /// The version of the manifest object (the checkpoint the log records follow).
    pub version: Option<u64>,
    pub log: LogState,
    /// The suspended ingest's bytes (its resume object, its pack upload): the byte cap counts
    /// them. Kept by `commit_as` and `open_in` from `m.pending`.
    pub pending_bytes: (u64, u64),
    pub poisoned: bool,
    pub ingesting: bool,
    /// Opened with [`Store::open_read_only_in`]: every change is refused.
    pub read_only: bool,
}

#[derive(Debug)]
pub(crate) struct PView {
    pub id: PointId,
    pub layer_no: u32,
    pub disk_size: u64,
    pub detached: bool,
}

#[derive(Debug, Default)]
struct Slot {
    /// This slot's own number when live; another slot's when merged into it.
    alias: u32,
    runs: Arc<Vec<Run>>,
    /// Layer object id (0: none, for an empty base).
    object: u64,
}

#[derive(Debug, Default)]
pub(crate) struct View {
    points: Vec<PView>,
    /// Point id -> index in `points` of the last point with that id (what a search from the
    /// newest finds), so that finding a point does not scan them all.
    by_id: HashMap<PointId, usize>,
    slots: Vec<Slot>,
    index: Index,
    /// Layer numbers of the detached branch (inclusive).
    detached: Option<(u32, u32)>,
    /// Layer numbers no point can see any more (discarded branches).
    dead: Vec<(u32, u32)>,
    /// Pack id -> where it is and its data length.
    pub(crate) packs: HashMap<u64, PackRec>,
    /// Packs the base's level objects reference (runs later levels or the oldest point may
    /// hide): they stay until the base is written as one level again.
    base_refs: HashSet<u64>,
}

impl View {
    fn point(&self, id: PointId) -> Result<&PView> {
        debug_assert_eq!(
            self.by_id.get(&id).copied(),
            self.points.iter().rposition(|p| p.id == id)
        );
        self.by_id
            .get(&id)
            .map(|&i| &self.points[i])
            .ok_or(ReplicaError::NoSuchPoint {
                generation: id.generation.0,
                sequence: id.sequence,
            })
    }

    /// Records where pack `p` now lies (after bundling).
    pub(crate) fn set_pack(&mut self, p: PackRec) {
        self.packs.insert(p.id, p);
    }

    fn push_point(&mut self, p: PView) {
        self.by_id.insert(p.id, self.points.len());
        self.points.push(p);
    }

    /// Rebuilds `by_id` after points were removed.
    fn reindex_points(&mut self) {
        self.by_id.clear();
        for (i, p) in self.points.iter().enumerate() {
            self.by_id.insert(p.id, i);
        }
    }

    fn root(&self, mut l: u32) -> u32 {
        while self.slots[l as usize].alias != l {
            l = self.slots[l as usize].alias;
        }
        l
    }

    fn visible(&self, p: &PView, l: u32) -> bool {
        l <= p.layer_no
            && !self.dead.iter().any(|&(a, b)| (a..=b).contains(&l))
            && (p.detached || !self.detached.is_some_and(|(a, b)| (a..=b).contains(&l)))
    }

    /// Calls `f(start, end, run)` for every part of `[from, to)` of point `p`, in order: the
    /// run that holds it (already sliced to it), or `None` where the point reads zeros
    /// because nothing was ever written.
    pub(crate) fn resolve(
        &self,
        p: &PView,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, u64, Option<Run>),
    ) {
        self.index.walk(from, to, |s, e, layers| {
            let vis: Vec<u32> = layers
                .iter()
                .rev()
                .copied()
                .filter(|&l| self.visible(p, l))
                .collect();
            self.resolve_in(&vis, s, e, f);
        });
    }

    fn resolve_in(&self, layers: &[u32], s: u64, e: u64, f: &mut dyn FnMut(u64, u64, Option<Run>)) {
        let Some((&top, older)) = layers.split_first() else {
            // The base covers what no layer does; a piece with no layers has only the base.
            let base = &self.slots[0].runs;
            self.cover(base, s, e, &mut |a, b, r| f(a, b, r));
            return;
        };
        let runs = &self.slots[self.root(top) as usize].runs;
        let mut pos = s;
        while pos < e {
            if let Some(r) = find_run(runs, pos) {
                let ce = r.end().min(e);
                f(pos, ce, Some(r.slice(pos, ce)));
                pos = ce;
            } else {
                let i = runs.partition_point(|r| r.end() <= pos);
                let ne = runs.get(i).map_or(e, |r| r.start.min(e));
                self.resolve_in(older, pos, ne, f);
                pos = ne;
            }
        }
    }

    fn cover(&self, runs: &[Run], s: u64, e: u64, f: &mut dyn FnMut(u64, u64, Option<Run>)) {
        let mut pos = s;
        while pos < e {
            if let Some(r) = find_run(runs, pos) {
                let ce = r.end().min(e);
                f(pos, ce, Some(r.slice(pos, ce)));
                pos = ce;
            } else {
                let i = runs.partition_point(|r| r.end() <= pos);
                let ne = runs.get(i).map_or(e, |r| r.start.min(e));
                f(pos, ne, None);
                pos = ne;
            }
        }
    }

    /// The newest visible layer of `p` over `[s, e)`'s piece (for comparisons).
    fn top(&self, p: &PView, layers: &[u32]) -> Option<u32> {
        layers.iter().rev().copied().find(|&l| self.visible(p, l))
    }

    fn add_layer(&mut self, runs: Vec<Run>, object: u64) -> u32 {
        let no = self.slots.len() as u32;
        for r in &runs {
            self.index.add(no, r.start, r.end());
        }
        self.slots.push(Slot {
            alias: no,
            runs: Arc::new(runs),
            object,
        });
        no
    }

    /// The packs `runs` hold data in.
    fn data_packs(runs: &[Run]) -> impl Iterator<Item = u64> + '_ {
        runs.iter()
            .filter(|r| r.kind == RunKind::Data)
            .map(|r| r.pack)
    }

    /// Live data bytes per pack, from every live slot.
    fn live_bytes(&self) -> HashMap<u64, u64> {
        let mut live: HashMap<u64, u64> = self.packs.keys().map(|&k| (k, 0)).collect();
        for (i, s) in self.slots.iter().enumerate() {
            if s.alias as usize != i {
                continue;
            }
            for r in s.runs.iter().filter(|r| r.kind == RunKind::Data) {
                // Saturating: a forged manifest may claim sizes whose sum overflows.
                let l = live.entry(r.pack).or_default();
                *l = l.saturating_add(r.len);
            }
        }
        live
    }
}

/// The directory a `file://` URL or a plain path names.
fn local_dir(url: &str) -> Option<&str> {
    match url.split_once("://") {
        None => Some(url),
        Some(("file", path)) => Some(path),
        Some(_) => None,
    }
}

/// The storage a store URL names, and how errors name it (never with credentials).
pub fn storage_for_url(url: &str, options: &[(&str, &str)]) -> Result<(Box<dyn Storage>, String)> {
    // `s3:bucket/prefix` (a slip for `s3://`) would otherwise be a local directory of that
    // name, and the replica would land on the local disk.
    if let Some((scheme, _)) = url.split_once(':') {
        if !url.contains("://")
            && ["s3", "az", "azure", "gs", "file", "http", "https"].contains(&scheme)
        {
            return Err(ReplicaError::InvalidArgument {
                reason: format!("{url:?} is not a store URL: write {scheme}://…"),
            });
        }
    }
    if let Some(dir) = local_dir(url) {
        if dir.is_empty() {
            return Err(ReplicaError::InvalidArgument {
                reason: "an empty store path".into(),
            });
        }
        if let Some((k, _)) = options.first() {
            return Err(ReplicaError::InvalidArgument {
                reason: format!("a local store takes no options (got {k:?})"),
            });
        }
        let s = DirStorage::new(dir).map_err(io_err("opening the store directory"))?;
        return Ok((Box::new(s), dir.to_string()));
    }
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    match scheme {
        #[cfg(feature = "object-store")]
        "s3" | "az" | "azure" => {
            let s = super::object::ObjectStorage::from_url(url, options).map_err(|e| {
                if e.kind() == io::ErrorKind::InvalidInput {
                    ReplicaError::InvalidArgument {
                        reason: e.to_string(),
                    }
                } else {
                    ReplicaError::Io {
                        op: "connecting to the object store",
                        source: e,
                    }
                }
            })?;
            let location = s.location().to_string();
            Ok((Box::new(s), location))
        }
        _ => Err(ReplicaError::UnsupportedScheme {
            scheme: scheme.to_string(),
        }),
    }
}

/// [`storage_for_url`] for a store that must exist: a local directory without a manifest is
/// [`ReplicaError::NotFound`] before anything is created or locked there.
fn existing_store(url: &str, options: &[(&str, &str)]) -> Result<(Box<dyn Storage>, String)> {
    let (storage, location) = storage_for_url(url, options)?;
    if let Some(dir) = local_dir(url) {
        if !Path::new(dir).join("MANIFEST").exists() {
            return Err(ReplicaError::NotFound { path: location });
        }
    }
    Ok((storage, location))
}

/// How far each writer's first commit moves the next object id ([`Store::fence`]): more ids
/// than one operation of an earlier writer allocates before its next commit fails.
const FENCE_GAP: u64 = 1 << 24;

/// A replica store for one disk. See the [module documentation](super).
pub struct Store {
    pub(crate) storage: Box<dyn Storage>,
    _lock: Box<dyn Send + Sync>,
    pub(crate) location: String,
    pub(crate) w: Mutex<Writer>,
    pub(crate) v: RwLock<View>,
    /// A fixed clock, only for reproducible test vectors (`None`: the system clock).
    clock: Option<u64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// Nanoseconds since the Unix epoch, now (what [`Store::retain`] takes).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Store {
    /// Now, in nanoseconds since the Unix epoch (fixed for test-vector stores).
    pub(crate) fn now(&self) -> u64 {
        self.clock.unwrap_or_else(now_ns)
    }
}

fn random16() -> [u8; 16] {
    GenerationId::random().0
}

impl Store {
    /// Creates a new store in directory `dir` (created if missing; it must not hold a store).
    pub fn create(dir: impl AsRef<Path>, config: StoreConfig) -> Result<Store> {
        let s = DirStorage::new(dir.as_ref()).map_err(io_err("creating the store directory"))?;
        Self::create_in(Box::new(s), dir.as_ref().display().to_string(), config)
    }

    /// Opens the store in directory `dir` for writing, recovering from any crash.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        let path = dir.as_ref().display().to_string();
        if !dir.as_ref().join("MANIFEST").exists() {
            return Err(ReplicaError::NotFound { path });
        }
        let s = DirStorage::new(dir.as_ref()).map_err(io_err("opening the store directory"))?;
        Self::open_in(Box::new(s), path)
    }

    /// Creates a store in directory `dir` whose store id and clock are fixed, so that the same
    /// calls produce byte-identical files. **Only for reproducible test vectors, never in
    /// production**: stores share ids, and every point's ingest time (and its time, without a
    /// BOOKMARK) is `time_ns`, which makes age-based retention meaningless. Exists only with
    /// the cargo feature `insecure-test-vectors` (off by default). Opening the store again
    /// later uses the system clock.
    #[cfg(feature = "insecure-test-vectors")]
    pub fn create_for_test_vectors(
        dir: impl AsRef<Path>,
        config: StoreConfig,
        store_id: [u8; 16],
        time_ns: u64,
    ) -> Result<Store> {
        let s = DirStorage::new(dir.as_ref()).map_err(io_err("creating the store directory"))?;
        Self::create_with(
            Box::new(s),
            dir.as_ref().display().to_string(),
            config,
            store_id,
            Some(time_ns),
        )
    }

    /// Creates a new store at `url`: `file:///path` (or a plain path) for a local directory,
    /// `s3://bucket/prefix` or `az://container/prefix` for object storage (cargo feature
    /// `object-store`; without it they are [`ReplicaError::UnsupportedScheme`]). `options`
    /// configure an object store (see `ObjectStorage::from_url`); a local directory takes
    /// none.
    pub fn create_url(url: &str, options: &[(&str, &str)], config: StoreConfig) -> Result<Store> {
        let (storage, location) = storage_for_url(url, options)?;
        Self::create_in(storage, location, config)
    }

    /// Opens the store at `url` for writing, recovering from any crash (see
    /// [`Store::create_url`] for the URLs).
    pub fn open_url(url: &str, options: &[(&str, &str)]) -> Result<Store> {
        let (storage, location) = existing_store(url, options)?;
        Self::open_in(storage, location)
    }

    /// Creates a store on any [`Storage`]; `location` names it in errors.
    pub fn create_in(
        storage: Box<dyn Storage>,
        location: String,
        config: StoreConfig,
    ) -> Result<Store> {
        Self::create_with(storage, location, config, random16(), None)
    }

    fn create_with(
        storage: Box<dyn Storage>,
        location: String,
        config: StoreConfig,
        store_id: [u8; 16],
        clock: Option<u64>,
    ) -> Result<Store> {
        let lock = lock(&*storage, &location)?;
        if storage
            .read_manifest()
            .map_err(io_err("reading the manifest"))?
            .is_some()
        {
            return Err(ReplicaError::AlreadyExists { path: location });
        }
        let m = Manifest {
            counter: 1,
            store_id,
            disk_id: config.disk_id,
            created_ns: clock.unwrap_or_else(now_ns),
            next_object: 1,
            lineage: None,
            base: Vec::new(),
            base_size: 0,
            retention: config.retention,
            points: Vec::new(),
            packs: Vec::new(),
            bundles: Vec::new(),
            pending: None,
        };
        let first = m.encode();
        let version = storage
            .swap_manifest(None, &first)
            .map_err(io_err("writing the first manifest"))?;
        let log = LogState {
            checkpoint: m.counter,
            checkpoint_len: first.len() as u64,
            records: 0,
            bytes: 0,
        };
        let mut view = View::default();
        view.add_layer(Vec::new(), 0);
        Ok(Store {
            storage,
            _lock: lock,
            location,
            w: Mutex::new(Writer {
                m,
                version: Some(version),
                log,
                pending_bytes: (0, 0),
                poisoned: false,
                read_only: false,
                ingesting: false,
            }),
            v: RwLock::new(view),
            clock,
        })
    }

    /// Opens a store on any [`Storage`] for writing, recovering from any crash: objects the
    /// manifest does not list (left by a crash between writing them and committing) are
    /// deleted, and so are unfinished uploads other than a resumable ingest's.
    pub fn open_in(storage: Box<dyn Storage>, location: String) -> Result<Store> {
        let lock = lock(&*storage, &location)?;
        let store = Self::load(storage, location, lock, false)?;
        store.fence()?;
        store.collect_garbage()?;
        Ok(store)
    }

    /// Opens the store on `storage` for reading only, from any process or node, while a
    /// writer may be running elsewhere: no lock or lease is taken, nothing is written or
    /// collected, and every change is refused with [`ReplicaError::ReadOnly`]. The handle
    /// sees the points committed when it was opened (open again to see newer ones); a point
    /// the writer has since expired may fail to read (its objects deleted) with an I/O error.
    pub fn open_read_only_in(storage: Box<dyn Storage>, location: String) -> Result<Store> {
        Self::load(storage, location, Box::new(()), true)
    }

    /// The store as its manifest and log say (the log replayed, the view built).
    fn load(
        storage: Box<dyn Storage>,
        location: String,
        lock: Box<dyn Send + Sync>,
        read_only: bool,
    ) -> Result<Store> {
        let (bytes, version) = storage
            .read_manifest()
            .map_err(io_err("reading the manifest"))?
            .ok_or_else(|| ReplicaError::NotFound {
                path: location.clone(),
            })?;
        let mut m = Manifest::decode(&bytes)?;
        let log = replay_log(&*storage, &mut m, bytes.len() as u64)?;
        let view = load_view(&*storage, &m)?;
        let pending_bytes = pending_bytes(&*storage, &m);
        Ok(Store {
            storage,
            _lock: lock,
            location,
            w: Mutex::new(Writer {
                m,
                version: Some(version),
                log,
                pending_bytes,
                poisoned: false,
                ingesting: false,
                read_only,
            }),
            v: RwLock::new(view),
            clock: None,
        })
    }

    /// [`Store::open_read_only_in`] on the store at `url` (see [`Store::create_url`]).
    pub fn open_url_read_only(url: &str, options: &[(&str, &str)]) -> Result<Store> {
        let (storage, location) = existing_store(url, options)?;
        Self::open_read_only_in(storage, location)
    }

    /// The first commit of every writer: moves `next_object` up by [`FENCE_GAP`], so that the
    /// objects this writer creates never share a name with those of an earlier writer that
    /// is still running unaware that it lost the store (a lease taken over on object
    /// storage), and claims the next counter, so that such a writer's next commit fails with
    /// [`ReplicaError::Conflict`]. Only after it may garbage collection drop objects and
    /// uploads the manifest does not reference: none of them can be committed any more.
    fn fence(&self) -> Result<()> {
        let mut w = self.writer()?;
        let mut m = w.m.clone();
        // A random part makes every writer's fence record its own: two writers fencing the
        // same state never write the same bytes (which a retried put would take as its own).
        let r = random16();
        let jitter = u64::from(u16::from_le_bytes([r[0], r[1]]));
        m.next_object = m
            .next_object
            .checked_add(FENCE_GAP + jitter)
            .filter(|&n| n <= super::manifest::MAX_COUNTER)
            .ok_or_else(|| ReplicaError::InvalidArgument {
                reason: "the store ran out of object ids".into(),
            })?;
        self.commit(&mut w, m)
    }

    /// Deletes every object and upload the manifest does not reference.
    fn collect_garbage(&self) -> Result<()> {
        let mut w = self.w.lock();
        let mut objects = self.storage.list("").map_err(io_err("listing objects"))?;
        // A resume point whose upload was completed (a crash after the pack was completed,
        // before the point was committed) cannot be resumed: drop it; the sender re-sends the
        // stream. On object storage the upload's state may outlive the completion (a crash
        // before it was deleted), so a pack object that exists counts as completed too.
        if let Some(p) = w.m.pending {
            let uploads = self.storage.uploads().map_err(io_err("listing uploads"))?;
            let name = pack_name(p.pack);
            if !uploads.contains(&name) || objects.contains(&name) {
                let mut m = w.m.clone();
                m.pending = None;
                self.commit(&mut w, m)?;
                // Listed again: the checks below look past this commit.
                objects = self.storage.list("").map_err(io_err("listing objects"))?;
            }
        }
        let mut keep: HashSet<String> = HashSet::new();
        for c in w.log.checkpoint + 1..=w.m.counter {
            keep.insert(log_name(c));
        }
        for p in &w.m.packs {
            keep.insert(pack_object(p).0);
        }
        for p in &w.m.points {
            keep.insert(layer_name(p.layer));
        }
        for l in &w.m.base {
            keep.insert(layer_name(l.layer));
        }
        let mut keep_upload = None;
        if let Some(p) = w.m.pending {
            keep.insert(resume_name(p.resume));
            keep_upload = Some(pack_name(p.pack));
        }
        // Only what this writer's state accounts for may go: records up to its counter,
        // objects and uploads below its next id. A writer that took the store over after this
        // one's fence (this one stalled) commits later counters and, past its own fence,
        // higher ids: nothing of it is touched, and its next record tells this writer to stop.
        let (counter, next) = (w.m.counter, w.m.next_object);
        let ours = |name: &str| match log_counter(name) {
            Some(c) => c <= counter,
            None => super::manifest::object_id(name).map_or(true, |id| id < next),
        };
        if objects.contains(&log_name(counter + 1)) {
            w.poisoned = true;
            return Err(ReplicaError::Conflict {
                path: self.location.clone(),
            });
        }
        for o in objects.iter().filter(|o| !keep.contains(*o) && ours(o)) {
            self.storage
                .delete(o)
                .map_err(io_err("deleting an unreferenced object"))?;
        }
        let uploads = self.storage.uploads().map_err(io_err("listing uploads"))?;
        for u in uploads
            .iter()
            .filter(|u| Some(*u) != keep_upload.as_ref() && ours(u))
        {
            self.storage
                .abort_upload(u)
                .map_err(io_err("dropping an unfinished upload"))?;
        }
        Ok(())
    }

    /// The disk this store replicates.
    pub fn disk_id(&self) -> [u8; 16] {
        self.w.lock().m.disk_id
    }

    /// The generation and checkpoint the next stream must continue (`None` for an empty store,
    /// which accepts a first stream with `from_seq` 0 of any generation).
    pub fn lineage(&self) -> Option<(GenerationId, u64)> {
        self.w.lock().m.lineage
    }

    /// The retention policy.
    pub fn retention(&self) -> Retention {
        self.w.lock().m.retention
    }

    /// Every recovery point, oldest first (detached points after their branch point).
    pub fn points(&self) -> Vec<PointInfo> {
        let w = self.w.lock();
        let v = self.v.read();
        self.point_infos(&w.m, &v)
    }

    /// The newest point of the current lineage, if any.
    pub fn newest(&self) -> Option<PointInfo> {
        self.points().into_iter().rev().find(|p| !p.detached)
    }

    /// How many points are listed (detached included).
    pub fn point_count(&self) -> usize {
        self.w.lock().m.points.len()
    }

    /// The points at positions `range` of [`Store::points`] (oldest first), in time
    /// proportional to the range, not to the store: a page of a long history, or the newest few
    /// (`n - 10..n` with `n` = [`Store::point_count`]). A range past the end is cut short.
    pub fn points_in(&self, range: std::ops::Range<usize>) -> Vec<PointInfo> {
        let w = self.w.lock();
        let v = self.v.read();
        let end = range.end.min(w.m.points.len());
        self.point_infos_in(&w.m, &v, range.start.min(end)..end)
    }

    fn point_infos(&self, m: &Manifest, v: &View) -> Vec<PointInfo> {
        self.point_infos_in(m, v, 0..m.points.len())
    }

    fn point_infos_in(
        &self,
        m: &Manifest,
        v: &View,
        range: std::ops::Range<usize>,
    ) -> Vec<PointInfo> {
        let mut out = Vec::with_capacity(range.len());
        // The next main point after each one is found by a running scan, so listing stays
        // linear in the points listed (detached points form one branch: the scan skips it
        // once).
        let mut next_main = range.start;
        // Whether a main point precedes the range's first (if not, the first main point in
        // it is the oldest, whose exclusive bytes are what it overwrites in the base).
        // (The first point is always a main point: the manifest's check.)
        let mut seen_main = range.start > 0;
        for i in range.clone() {
            let rec = &m.points[i];
            let exclusive = if rec.detached {
                // Deleting a detached point is not offered; report what it alone holds over
                // its neighbour.
                0
            } else {
                next_main = next_main.max(i + 1);
                while next_main < m.points.len() && m.points[next_main].detached {
                    next_main += 1;
                }
                let first = !seen_main;
                seen_main = true;
                match (next_main < m.points.len()).then_some(next_main) {
                    None => 0,
                    Some(next) => {
                        let own = &v.slots[v.points[i].layer_no as usize].runs;
                        let next = &v.slots[v.points[next].layer_no as usize].runs;
                        // Deleting a point merges it under the next one: its data the next
                        // covers dies. Deleting the oldest folds it into the base, which then
                        // drops what the next point covers: the base's data there dies too
                        // (none lies under the oldest point's own runs: the base never holds
                        // any, see `fold_levels`).
                        let base = if first {
                            overlap_data(&v.slots[0].runs, next)
                        } else {
                            0
                        };
                        base + overlap_data(own, next)
                    }
                }
            };
            out.push(info(rec, exclusive));
        }
        out
    }

    /// Store-wide sizes.
    pub fn stats(&self) -> StoreStats {
        let w = self.w.lock();
        self.stats_locked(&w)
    }

    pub(crate) fn stats_locked(&self, w: &Writer) -> StoreStats {
        let v = self.v.read();
        let live = v.live_bytes();
        let mut st = StoreStats {
            bytes: store_bytes(w, &v),
            points: w.m.points.len() as u64,
            packs: w.m.packs.len() as u64,
            bundles: w.m.bundles.len() as u64,
            index_pieces: v.index.len() as u64,
            ..StoreStats::default()
        };
        for p in &w.m.packs {
            let l = live.get(&p.id).copied().unwrap_or(0);
            st.live_data_bytes = st.live_data_bytes.saturating_add(l);
            st.dead_data_bytes = st
                .dead_data_bytes
                .saturating_add((p.data_len - CHUNK).saturating_sub(l));
        }
        st
    }

    /// Reads `buf.len()` bytes of point `point` at `offset`, verifying every checksum on the
    /// way. Safe to call from many threads, while an ingest goes on. On an error, `buf` may
    /// have been partly written: its contents are then unspecified.
    pub fn read_at(&self, point: PointId, offset: u64, buf: &mut [u8]) -> Result<()> {
        let v = self.v.read();
        let p = v.point(point)?;
        let len = buf.len() as u64;
        if offset.checked_add(len).map_or(true, |e| e > p.disk_size) {
            return Err(ReplicaError::OutOfRange {
                offset,
                len,
                disk_size: p.disk_size,
            });
        }
        // Zeros filled at once; the data runs streamed in batches of about `BATCH_BYTES`.
        let mut data: Vec<(u64, Run)> = Vec::new();
        v.resolve(p, offset, offset + len, &mut |s, e, run| match run {
            Some(r) if r.kind == RunKind::Data => data.push((s, r.slice(s, e))),
            _ => buf[(s - offset) as usize..(e - offset) as usize].fill(0),
        });
        self.read_batched(&v, &data, &mut |pos, bytes| {
            let at = (pos - offset) as usize;
            buf[at..at + bytes.len()].copy_from_slice(bytes);
            Ok(())
        })
    }

    /// [`Store::read_runs`] over `data` (runs with their disk positions), in batches of about
    /// `BATCH_BYTES`, large runs cut.
    fn read_batched(
        &self,
        v: &View,
        data: &[(u64, Run)],
        out: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut batch: Vec<(u64, Run)> = Vec::new();
        let mut batch_bytes = 0u64;
        for &(s, r) in data {
            let mut pos = s;
            while pos < s + r.len {
                let n = (s + r.len - pos).min(super::read::BATCH_BYTES - batch_bytes);
                batch.push((pos, r.slice(pos, pos + n)));
                batch_bytes += n;
                pos += n;
                if batch_bytes >= super::read::BATCH_BYTES {
                    self.read_runs(v, &batch, out)?;
                    batch.clear();
                    batch_bytes = 0;
                }
            }
        }
        self.read_runs(v, &batch, out)
    }

    /// Reads the bytes of DATA run `r` into `dst` (same length), verifying the 4 KiB chunks
    /// they lie in.
    fn read_pack(&self, v: &View, r: &Run, dst: &mut [u8]) -> Result<()> {
        self.read_runs(v, &[(0, *r)], &mut |pos, bytes| {
            dst[pos as usize..pos as usize + bytes.len()].copy_from_slice(bytes);
            Ok(())
        })
    }

    /// The runs of `point` over the whole disk, in order: `(start, end, kind)` where kind is
    /// `None` for never-written ranges.
    fn layout(&self, v: &View, p: &PView) -> Vec<(u64, u64, Option<Run>)> {
        let mut out: Vec<(u64, u64, Option<Run>)> = Vec::new();
        v.resolve(p, 0, p.disk_size, &mut |s, e, r| out.push((s, e, r)));
        out
    }

    /// Writes point `point` to `target` (a file or block device for a failover): data where
    /// the point has data, `write_zeroes` where it reads zeros, `discard` where the source
    /// discarded; then syncs. The target must be at least the point's size (a resizable
    /// target is resized to it).
    pub fn export(&self, point: PointId, target: &mut dyn ApplyTarget) -> Result<u64> {
        let v = self.v.read();
        let p = v.point(point)?;
        let size = p.disk_size;
        let tio = |e: io::Error| ReplicaError::Io {
            op: "writing the export target",
            source: e,
        };
        match target.size().map_err(tio)? {
            Some(s) if s == size => {}
            _ => target.resize(size).map_err(tio)?,
        }
        let mut data: Vec<(u64, Run)> = Vec::new();
        for (s, e, r) in self.layout(&v, p) {
            match r {
                Some(r) if r.kind == RunKind::Data => data.push((s, r.slice(s, e))),
                Some(r) if r.kind == RunKind::Discard => target.discard(s, e - s).map_err(tio)?,
                _ => target.write_zeroes(s, e - s).map_err(tio)?,
            }
        }
        self.read_batched(&v, &data, &mut |pos, bytes| {
            target.write_at(pos, bytes).map_err(tio)
        })?;
        target.sync().map_err(tio)?;
        Ok(size)
    }

    /// Writes point `point` into a new sparse file at `path` (it must not exist): only data
    /// is written, everything that reads as zeros stays a hole. Synced before returning.
    pub fn export_file(&self, point: PointId, path: impl AsRef<Path>) -> Result<u64> {
        use std::os::unix::fs::FileExt;
        let v = self.v.read();
        let p = v.point(point)?;
        let tio = |e: io::Error| ReplicaError::Io {
            op: "writing the export file",
            source: e,
        };
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path.as_ref())
            .map_err(tio)?;
        f.set_len(p.disk_size).map_err(tio)?;
        let data: Vec<(u64, Run)> = self
            .layout(&v, p)
            .into_iter()
            .filter_map(|(s, e, r)| {
                r.filter(|r| r.kind == RunKind::Data)
                    .map(|r| (s, r.slice(s, e)))
            })
            .collect();
        self.read_batched(&v, &data, &mut |pos, bytes| {
            f.write_all_at(bytes, pos).map_err(tio)
        })?;
        f.sync_all().map_err(tio)?;
        Ok(p.disk_size)
    }

    /// The ranges that may differ between points `a` and `b` (in either order, on any
    /// branch), from the store's indexes: every range written by a layer that one point sees
    /// and the other does not, coalesced. Includes ranges beyond the smaller point's size up
    /// to the larger's.
    pub fn changed_between(&self, a: PointId, b: PointId) -> Result<Vec<Extent>> {
        let v = self.v.read();
        changed(&v, v.point(a)?, v.point(b)?)
    }

    /// Checks every byte of every pack the store references against its checksum, every
    /// pack's footer, and every bundle's header and padding. Returns the number of bytes
    /// verified. A pack or bundle that retention or compaction on another thread moved or
    /// deleted meanwhile is skipped.
    pub fn scrub(&self) -> Result<u64> {
        let (packs, bundles, store_id) = {
            let w = self.w.lock();
            (w.m.packs.clone(), w.m.bundles.clone(), w.m.store_id)
        };
        // Retention or compaction on another thread may move or delete an object after the
        // lists were taken: a missing object that the store no longer lists is skipped.
        let gone = |e: &ReplicaError, listed: &dyn Fn(&Manifest) -> bool| {
            matches!(e, ReplicaError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
                && !listed(&self.w.lock().m)
        };
        for b in &bundles {
            match self.scrub_bundle(b.id, b.len, &packs, &store_id) {
                Err(e) if gone(&e, &|m| m.bundles.contains(b)) => continue,
                r => r?,
            }
        }
        let mut total = 0;
        let mut buf = vec![0u8; 1 << 20];
        for p in packs {
            match self.scrub_pack(&p, &mut buf) {
                Err(e) if gone(&e, &|m| m.packs.contains(&p)) => continue,
                r => r?,
            }
            total += p.data_len;
        }
        Ok(total)
    }

    /// Checks one pack: its size (when it is its own object), footer and every chunk.
    fn scrub_pack(&self, p: &PackRec, buf: &mut [u8]) -> Result<()> {
        let (name, base) = pack_object(p);
        if p.bundle == 0 {
            let size = self
                .storage
                .size(&name)
                .map_err(io_err("reading a pack's size"))?;
            if size != pack_object_len(p.data_len) {
                return Err(corrupt(
                    &name,
                    format!("{size} bytes, expected {}", pack_object_len(p.data_len)),
                ));
            }
        }
        let mut tail = vec![0u8; (pack_object_len(p.data_len) - p.data_len) as usize];
        self.storage
            .get_range(&name, base + p.data_len, &mut tail)
            .map_err(short_object(&name, "reading a pack's checksums"))?;
        super::format::check_pack_tail(&tail, p.data_len, &name)?;
        let mut off = 0u64;
        while off < p.data_len {
            let n = (p.data_len - off).min(buf.len() as u64) as usize;
            self.storage
                .get_range(&name, base + off, &mut buf[..n])
                .map_err(short_object(&name, "reading a pack"))?;
            let c = (off / CHUNK) as usize;
            verify_chunks(&buf[..n], &tail[c * 4..], &name, base + off)?;
            off += n as u64;
        }
        Ok(())
    }

    /// Checks a bundle's size, header chunk, and that the gaps between its packs are zeros
    /// (the packs themselves are checked one by one).
    fn scrub_bundle(
        &self,
        id: u64,
        len: u64,
        packs: &[PackRec],
        store_id: &[u8; 16],
    ) -> Result<()> {
        let name = bundle_name(id);
        let size = self
            .storage
            .size(&name)
            .map_err(io_err("reading a bundle's size"))?;
        if size != len {
            return Err(corrupt(&name, format!("{size} bytes, expected {len}")));
        }
        let mut head = vec![0u8; CHUNK as usize];
        self.storage
            .get_range(&name, 0, &mut head)
            .map_err(short_object(&name, "reading a bundle"))?;
        super::format::check_bundle_head(&head, store_id, id, &name)?;
        let mut spans: Vec<(u64, u64)> = packs
            .iter()
            .filter(|p| p.bundle == id)
            .map(|p| (p.offset, p.offset + pack_object_len(p.data_len)))
            .collect();
        spans.sort_unstable();
        let mut pos = CHUNK;
        for (s, e) in spans.into_iter().chain([(len, len)]) {
            // Gaps are alignment padding (under 4 KiB) or packs that died since: read them
            // only when short, and require zeros of padding.
            if s > pos && s - pos < CHUNK && s.div_ceil(CHUNK) == pos.div_ceil(CHUNK) {
                let mut gap = vec![0u8; (s - pos) as usize];
                self.storage
                    .get_range(&name, pos, &mut gap)
                    .map_err(short_object(&name, "reading a bundle"))?;
                if gap.iter().any(|&x| x != 0) {
                    return Err(ReplicaError::ChecksumMismatch {
                        object: name,
                        offset: pos,
                    });
                }
            }
            pos = pos.max(e);
        }
        Ok(())
    }

    // ---- changes ---------------------------------------------------------------------------

    pub(crate) fn writer(&self) -> Result<parking_lot::MutexGuard<'_, Writer>> {
        let w = self.w.lock();
        if w.read_only {
            return Err(ReplicaError::ReadOnly);
        }
        if w.poisoned {
            return Err(ReplicaError::Poisoned);
        }
        Ok(w)
    }

    /// Commits `m` as the next manifest. Every commit claims its counter with a create-only
    /// log record `log-<counter>`, so that of two writers racing on one store (a lease on
    /// object storage taken over, a writer that skipped the lock) exactly one commits each
    /// counter and the other gets [`ReplicaError::Conflict`] with nothing changed. The record
    /// names what changed (most commits), or holds the whole manifest once the records since
    /// the last checkpoint add up to its size or number [`LOG_MAX_RECORDS`]; such a commit
    /// then moves the checkpoint (the manifest object, replaced only if it is still the one
    /// this writer last wrote) and deletes the records it covers. On failure the store is
    /// poisoned (the commit may or may not be durable, which only reopening can tell), except
    /// for a clean [`ReplicaError::StorageFull`] and a conflict (nothing committed).
    pub(crate) fn commit(&self, w: &mut Writer, m: Manifest) -> Result<()> {
        self.commit_as(w, m, true)
    }

    /// [`Store::commit`], writing a checkpoint unless `log` allows a record.
    fn commit_as(&self, w: &mut Writer, m: Manifest, log: bool) -> Result<()> {
        let pending = w.m.pending;
        let r = self.commit_inner(w, m, log);
        if r.is_ok() && w.m.pending != pending {
            w.pending_bytes = pending_bytes(&*self.storage, &w.m);
        }
        r
    }

    fn commit_inner(&self, w: &mut Writer, mut m: Manifest, log: bool) -> Result<()> {
        if w.read_only {
            return Err(ReplicaError::ReadOnly);
        }
        m.counter = w.m.counter + 1;
        let budget = w.log.checkpoint_len.max(LOG_MIN_BYTES);
        if log && w.log.records < LOG_MAX_RECORDS {
            if let Some(rec) = encode_record(&w.m, &m) {
                let len = rec.len() as u64;
                if w.log.bytes + len <= budget {
                    self.claim(w, &m, &rec, "committing a manifest log record")?;
                    w.log.records += 1;
                    w.log.bytes += len;
                    w.m = m;
                    return Ok(());
                }
            }
        }
        let bytes = m.encode();
        self.claim(w, &m, &bytes, "committing a manifest checkpoint record")?;
        let counter = m.counter;
        w.m = m;
        w.log.records += 1;
        w.log.bytes += bytes.len() as u64;
        // Committed, whatever happens next: the caller goes on as after any commit (its view
        // of the change made). Moving the checkpoint and deleting the records it covers only
        // make later opens cheaper; a failure there poisons, so that the caller's next durable
        // call is refused (a conflict here means another writer took the store over after
        // this commit: it replays this record).
        match self.swap_checkpoint(w.version, counter, &bytes) {
            Ok(v) => {
                let replaced: Vec<String> =
                    (w.log.checkpoint + 1..=counter).map(log_name).collect();
                w.version = Some(v);
                w.log = LogState {
                    checkpoint: counter,
                    checkpoint_len: bytes.len() as u64,
                    records: 0,
                    bytes: 0,
                };
                if self.storage.delete_many(&replaced).is_err() {
                    w.poisoned = true;
                }
            }
            Err(_) => w.poisoned = true,
        }
        Ok(())
    }

    /// Replaces the manifest (last seen at `expected`) by the checkpoint of `counter`, whose
    /// record this writer claimed. A manifest changed meanwhile to an older state than the
    /// checkpoint is replaced all the same: only a writer that lost the store to this one
    /// writes such a swap (its checkpoint record was claimed before this writer's fence, so
    /// this writer replayed it), and a checkpoint is only a shortcut past records this
    /// writer's state already holds. A manifest at or past `counter` is another writer's
    /// progress: the conflict stands.
    fn swap_checkpoint(
        &self,
        mut expected: ManifestVersion,
        counter: u64,
        bytes: &[u8],
    ) -> io::Result<u64> {
        let mut tries = 0;
        loop {
            match self.storage.swap_manifest(expected, bytes) {
                Err(e) if tries < 3 && e.get_ref().is_some_and(|i| i.is::<ManifestConflict>()) => {
                    tries += 1;
                    match self.storage.manifest_version()? {
                        Some(v) if v < counter && Some(v) != expected => expected = Some(v),
                        _ => return Err(e),
                    }
                }
                r => return r,
            }
        }
    }

    /// Writes record `log-<m.counter>` (create-only): the commit point of `m`. Fails with
    /// [`ReplicaError::Conflict`] (and poisons) when another writer committed that counter,
    /// or when the checkpoint has already moved past it: records are deleted once a
    /// checkpoint covers them, so a stale writer's create-only put of a counter that was
    /// committed and then collected succeeds, and only the checkpoint tells it.
    fn claim(&self, w: &mut Writer, m: &Manifest, rec: &[u8], op: &'static str) -> Result<()> {
        match self.storage.put(&log_name(m.counter), rec) {
            Ok(()) => match self.storage.manifest_version() {
                Ok(Some(v)) if v >= m.counter => {
                    w.m.next_object = w.m.next_object.max(m.next_object);
                    w.poisoned = true;
                    // The record is below the checkpoint: replay ignores it, the next open
                    // collects it.
                    Err(ReplicaError::Conflict {
                        path: self.location.clone(),
                    })
                }
                Ok(_) => Ok(()),
                Err(e) => {
                    w.m.next_object = w.m.next_object.max(m.next_object);
                    w.poisoned = true;
                    Err(ReplicaError::Io {
                        op: "checking the manifest after a commit",
                        source: e,
                    })
                }
            },
            Err(e) => {
                // Ids the change allocated may name objects already written.
                w.m.next_object = w.m.next_object.max(m.next_object);
                if e.kind() == io::ErrorKind::AlreadyExists {
                    w.poisoned = true;
                    return Err(ReplicaError::Conflict {
                        path: self.location.clone(),
                    });
                }
                Err(failed(w, op, e))
            }
        }
    }

    /// A storage write outside a commit: poisons the store on failure.
    pub(crate) fn put(
        &self,
        w: &mut Writer,
        name: &str,
        data: &[u8],
        op: &'static str,
    ) -> Result<()> {
        self.storage.put(name, data).map_err(|e| failed(w, op, e))
    }

    /// Deletes objects no longer referenced after a commit. A failure loses nothing (the next
    /// open collects them) but poisons the store, as every failed write does, whatever the
    /// error: it is never a clean `StorageFull`, which would tell the caller that its change
    /// was not made (and invite it to undo what the committed change references).
    pub(crate) fn delete_objects(&self, w: &mut Writer, names: &[String]) -> Result<()> {
        if w.poisoned {
            return Err(ReplicaError::Poisoned);
        }
        self.storage.delete_many(names).map_err(|source| {
            w.poisoned = true;
            ReplicaError::Io {
                op: "deleting objects after a commit",
                source,
            }
        })
    }

    pub(crate) fn alloc_id(w: &mut Writer) -> u64 {
        let id = w.m.next_object;
        w.m.next_object += 1;
        id
    }

    /// Adds a new point (from a verified, durable ingest) to the view.
    pub(crate) fn view_add_point(&self, rec: &PointRec, runs: Vec<Run>, pack: Option<(u64, u64)>) {
        let mut v = self.v.write();
        if let Some((id, len)) = pack {
            v.packs.insert(id, PackRec::own(id, len));
        }
        let no = v.add_layer(runs, rec.layer);
        v.push_point(PView {
            id: PointId {
                generation: rec.generation,
                sequence: rec.to_seq,
            },
            layer_no: no,
            disk_size: rec.disk_size,
            detached: false,
        });
    }

    /// Changes the retention policy (takes effect at the next [`Store::retain`] or ingest).
    pub fn set_retention(&self, policy: Retention) -> Result<()> {
        let mut w = self.writer()?;
        let mut m = w.m.clone();
        m.retention = policy;
        self.commit(&mut w, m)
    }

    /// Starts a new lineage at the head (an explicit resync or failover): the next stream must
    /// carry `generation` and start from checkpoint `sequence`. Points stay; the next stream
    /// lies over the newest one.
    pub fn set_lineage(&self, generation: GenerationId, sequence: u64) -> Result<()> {
        let mut w = self.writer()?;
        if w.ingesting {
            return Err(ReplicaError::IngestInProgress);
        }
        let mut m = w.m.clone();
        m.lineage = Some((generation, sequence));
        self.commit(&mut w, m)
    }

    /// Applies the retention policy as of `now_ns` (nanoseconds since the Unix epoch):
    /// expires by age, thins application-consistent points to one per interval, enforces the
    /// count and the byte cap. Never removes the newest point or detached points. Each removal
    /// folds the point's changes into the next point (or the base): no data is copied. Then it
    /// compacts packs less than half live and, once 64 small packs (streams of at most 4 MiB)
    /// exist, copies them into one bundle object (see `docs/REPLICA.md`).
    pub fn retain(&self, now_ns: u64) -> Result<Vec<Expired>> {
        let mut w = self.writer()?;
        let pol = w.m.retention;
        let infos = {
            let v = self.v.read();
            self.point_infos(&w.m, &v)
        };
        let main: Vec<usize> = (0..infos.len()).filter(|&i| !infos[i].detached).collect();
        let Some((&newest, older)) = main.split_last() else {
            return Ok(Vec::new());
        };
        let _ = newest;
        let mut del: Vec<(usize, ExpiryReason)> = Vec::new();
        let age = |i: usize| now_ns.saturating_sub(infos[i].time_ns);
        let mut kept_buckets = HashSet::new();
        // Newest first, so that "the newest in each interval" is the one kept.
        for &i in older.iter().rev() {
            let p = &infos[i];
            let app = p.consistency == BookmarkKind::ApplicationConsistent;
            let reason = if !app {
                pol.max_age_ns
                    .filter(|&a| age(i) > a)
                    .map(|_| ExpiryReason::Age)
            } else if pol.app_max_age_ns.is_some_and(|a| age(i) > a) {
                Some(ExpiryReason::Age)
            } else if let (Some(iv), Some(a)) = (pol.app_interval_ns, pol.max_age_ns) {
                (age(i) > a && !kept_buckets.insert(p.time_ns / iv))
                    .then_some(ExpiryReason::AppInterval)
            } else {
                None
            };
            if let Some(r) = reason {
                del.push((i, r));
            }
        }
        if let Some(max) = pol.max_points {
            let mut remaining = infos.len() as u64 - del.len() as u64;
            for &i in older {
                if remaining <= max {
                    break;
                }
                if !del.iter().any(|&(d, _)| d == i) {
                    del.push((i, ExpiryReason::Count));
                    remaining -= 1;
                }
            }
        }
        let mut expired = self.delete_points(&mut w, &infos, del)?;
        // Compaction and bundling write new objects before they free old ones: not while an
        // ingest is in flight, whose byte-cap accounting counts the store as it was (it
        // compacts for room itself when it needs to).
        if !w.ingesting {
            self.compact_opportunistically(&mut w, 50, 0)?;
            self.bundle_packs(&mut w, super::bundle::BUNDLE_AT)?;
        }
        if let Some(cap) = pol.max_bytes {
            expired.extend(self.fit_under(&mut w, cap, 0)?);
        }
        Ok(expired)
    }

    /// Expires the oldest points (never the newest) until the store plus `extra` bytes fits
    /// under `cap`; returns what it expired. Does not fail when it cannot: the caller checks.
    pub(crate) fn fit_under(&self, w: &mut Writer, cap: u64, extra: u64) -> Result<Vec<Expired>> {
        let mut out = Vec::new();
        loop {
            let bytes = {
                let v = self.v.read();
                store_bytes(w, &v)
            };
            if bytes + extra <= cap {
                break;
            }
            let infos = {
                let v = self.v.read();
                self.point_infos(&w.m, &v)
            };
            // The oldest main point but the newest, and not the one a detached branch starts
            // from (see `delete_points`).
            let branch = infos.iter().position(|p| p.detached).map(|f| f - 1);
            let main: Vec<usize> = (0..infos.len()).filter(|&i| !infos[i].detached).collect();
            let Some(&oldest) = main[..main.len().saturating_sub(1)]
                .iter()
                .find(|&&i| Some(i) != branch)
            else {
                break;
            };
            let expired = self.delete_points(w, &infos, vec![(oldest, ExpiryReason::ByteCap)])?;
            if expired.is_empty() {
                break;
            }
            out.extend(expired);
            self.compact_opportunistically(w, 100, extra)?;
            if !w.ingesting {
                // A bundle made before the cap was set gives back its dead packs' space only
                // when made again.
                self.bundle_packs(w, usize::MAX)?;
            }
        }
        Ok(out)
    }

    /// Removes the main points `del` (indexes into the manifest's points) in one commit.
    fn delete_points(
        &self,
        w: &mut Writer,
        infos: &[PointInfo],
        mut del: Vec<(usize, ExpiryReason)>,
    ) -> Result<Vec<Expired>> {
        if del.is_empty() {
            return Ok(Vec::new());
        }
        del.sort_unstable_by_key(|&(i, _)| i);
        let del_set: HashSet<usize> = del.iter().map(|&(i, _)| i).collect();
        let mut m = w.m.clone();
        let n = m.points.len();
        let branch = m.points.iter().position(|p| p.detached).map(|f| f - 1);
        let mut v = self.v.write();
        let mut new_objects: Vec<(String, Vec<u8>)> = Vec::new();
        let mut old_objects: Vec<String> = Vec::new();
        let mut slot_updates: Vec<(u32, Vec<Run>, u64, Vec<u32>)> = Vec::new(); // (target slot, runs, object, aliased)
        let mut acc: Option<(Vec<Run>, u64, Vec<u32>)> = None; // runs, from_seq, layer numbers
        let mut acc_objects: Vec<u64> = Vec::new(); // their layer objects
        let mut all_before_deleted = true;
        let mut keep = vec![true; n];
        let mut refused: HashSet<usize> = HashSet::new();
        #[allow(clippy::needless_range_loop)] // i indexes three parallel lists
        for i in 0..n {
            if m.points[i].detached {
                continue;
            }
            let no = v.points[i].layer_no;
            // The point a detached branch starts from stays while the branch does: the detached
            // points read through it (and through the base under it).
            let deletable = del_set.contains(&i) && Some(i) != branch;
            if del_set.contains(&i) && !deletable {
                refused.insert(i);
            }
            if deletable {
                let runs = v.slots[no as usize].runs.clone();
                acc = Some(match acc.take() {
                    None => (runs.to_vec(), m.points[i].from_seq, vec![no]),
                    Some((a, f, mut nos)) => {
                        nos.push(no);
                        (overlay(&a, &runs), f, nos)
                    }
                });
                keep[i] = false;
                acc_objects.push(m.points[i].layer);
                continue;
            }
            if let Some((a, from, nos)) = acc.take() {
                let objects = std::mem::take(&mut acc_objects);
                if all_before_deleted {
                    // Fold into the base. What the new oldest point's own layer covers, no
                    // point reads from the base any more: drop it, so its data can die.
                    let base = subtract(&overlay(&v.slots[0].runs, &a), &v.slots[no as usize].runs);
                    let folded: Vec<u64> = View::data_packs(&a).collect();
                    let (levels, rewritten) =
                        fold_levels(&mut m, &base, a, objects, &mut new_objects);
                    old_objects.extend(levels);
                    if rewritten {
                        v.base_refs = View::data_packs(&base).collect();
                    } else {
                        v.base_refs.extend(folded);
                    }
                    let last = *nos.last().expect("one");
                    m.base_size = v.points[last_index(&v, last)].disk_size;
                    slot_updates.push((0, base, 0, nos));
                } else {
                    old_objects.extend(objects.into_iter().map(layer_name));
                    let merged = overlay(&a, &v.slots[no as usize].runs);
                    let id = Self::alloc_id_m(&mut m);
                    new_objects.push((layer_name(id), encode_layer(&merged)));
                    old_objects.push(layer_name(m.points[i].layer));
                    m.points[i].layer = id;
                    m.points[i].from_seq = from;
                    slot_updates.push((no, merged, id, nos));
                }
            }
            all_before_deleted = false;
        }
        debug_assert!(acc.is_none(), "the newest point is never deleted");
        let expired: Vec<Expired> = del
            .iter()
            .filter(|(i, _)| !refused.contains(i))
            .map(|&(i, reason)| Expired {
                point: infos[i].clone(),
                reason,
            })
            .collect();
        if expired.is_empty() {
            return Ok(expired);
        }
        let mut i = 0;
        m.points.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        // Dead packs after the change.
        for (target, runs, object, nos) in &slot_updates {
            let _ = object;
            for &no in nos {
                v.slots[no as usize].alias = *target;
                v.slots[no as usize].runs = Arc::new(Vec::new());
            }
            v.slots[*target as usize].runs = Arc::new(runs.clone());
            v.slots[*target as usize].object = *object;
        }
        let mut j = 0;
        v.points.retain(|_| {
            j += 1;
            keep[j - 1]
        });
        v.reindex_points();
        drop_dead_packs(&mut m, &mut v, &mut old_objects);
        drop(v);
        // The new objects' ids are used even if the change is refused (they may exist).
        w.m.next_object = w.m.next_object.max(m.next_object);
        for (name, data) in &new_objects {
            if let Err(e) = self.put(w, name, data, "writing a merged layer") {
                self.reload_view_after_failure(w);
                return Err(e);
            }
        }
        if let Err(e) = self.commit(w, m) {
            self.reload_view_after_failure(w);
            return Err(e);
        }
        self.delete_objects(w, &old_objects)?;
        Ok(expired)
    }

    pub(crate) fn alloc_id_m(m: &mut Manifest) -> u64 {
        let id = m.next_object;
        m.next_object += 1;
        id
    }

    /// After a failed change the in-memory view may be ahead of the committed manifest; the
    /// store is poisoned (or the change was refused for lack of space): rebuild the view from
    /// the committed manifest so that reads see exactly what is durable.
    fn reload_view_after_failure(&self, w: &mut Writer) {
        if let Ok(v) = load_view(&*self.storage, &w.m) {
            *self.v.write() = v;
        }
    }

    /// Rewrites the packs of which less than half is still referenced into one new pack, so
    /// that their space returns to the file system, then copies every small pack (at most
    /// 4 MiB) into bundles, and folds the manifest log into a new checkpoint (the manifest
    /// rewritten whole, the log records deleted). Returns the bytes freed. Refused while an
    /// ingest is in flight ([`ReplicaError::IngestInProgress`]).
    pub fn compact(&self) -> Result<u64> {
        let mut w = self.writer()?;
        if w.ingesting {
            return Err(ReplicaError::IngestInProgress);
        }
        let freed = self.compact_packs(&mut w, 50, 0, true)?;
        self.bundle_packs(&mut w, 2)?;
        self.checkpoint_locked(&mut w)?;
        Ok(freed)
    }

    /// Rewrites the manifest whole, folding the manifest log records since the last
    /// checkpoint into it and deleting them, so that the `MANIFEST` object alone describes
    /// the store (an open reads one object). Commits do this by themselves once the records
    /// add up to the manifest's size or number 512; nothing to do when there are none.
    pub fn checkpoint(&self) -> Result<()> {
        let mut w = self.writer()?;
        self.checkpoint_locked(&mut w)
    }

    fn checkpoint_locked(&self, w: &mut Writer) -> Result<()> {
        if w.log.records == 0 {
            return Ok(());
        }
        let m = w.m.clone();
        self.commit_as(w, m, false)
    }

    /// Compaction as part of retention: running out of space while compacting is not an error
    /// (nothing changed; the space it would free stays for a later run).
    fn compact_opportunistically(&self, w: &mut Writer, threshold: u64, extra: u64) -> Result<u64> {
        // Under the byte cap (threshold 100), space matters more than the base's metadata.
        match self.compact_packs(w, threshold, extra, threshold >= 100) {
            Err(ReplicaError::StorageFull { .. }) => Ok(0),
            r => r,
        }
    }

    /// Compaction with the live-data threshold in percent: packs whose live data is below
    /// `threshold` percent of their data are rewritten.
    ///
    /// A pack whose data only hidden runs of base levels still reference goes only when the
    /// base is written whole again; retention's compaction does that only once such packs
    /// hold more bytes than the base's level objects (`all`: always).
    pub(crate) fn compact_packs(
        &self,
        w: &mut Writer,
        threshold: u64,
        extra: u64,
        all: bool,
    ) -> Result<u64> {
        let v = self.v.read();
        let live = v.live_bytes();
        // Candidates, most dead first. Under a byte cap the rewrite must fit in the room left
        // (the old packs are deleted only after the new one is committed).
        let mut cands: Vec<(u64, u64)> =
            w.m.packs
                .iter()
                .filter_map(|p| {
                    let data = p.data_len - CHUNK;
                    let l = live.get(&p.id).copied().unwrap_or(0);
                    // In u128: a forged manifest may claim up to 2^62 bytes of data.
                    (l < data && u128::from(l) * 100 < u128::from(data) * u128::from(threshold))
                        .then_some((l, p.id))
                })
                .collect();
        if !all {
            let hidden = cands
                .iter()
                .filter(|(_, id)| v.base_refs.contains(id))
                .filter_map(|(_, id)| v.packs.get(id))
                .fold(0u64, |a, p| a.saturating_add(p.data_len));
            let base: u64 = w.m.base.iter().map(|l| layer_object_len(l.runs)).sum();
            if hidden < base {
                cands.retain(|(_, id)| !v.base_refs.contains(id));
            }
        }
        cands.sort_unstable();
        let room =
            w.m.retention
                .max_bytes
                .map(|cap| cap.saturating_sub(store_bytes(w, &v) + extra));
        let mut victims: HashSet<u64> = HashSet::new();
        let mut planned = CHUNK + 64 + 2 * 4096;
        for (l, id) in cands {
            // Live bytes, their alignment padding (< 4 KiB per run, bounded here by a chunk per
            // 4 KiB of data plus one), checksums.
            let cost = l + l / 8 + CHUNK + l / CHUNK * 4;
            if room.is_some_and(|r| planned + cost > r) {
                continue;
            }
            planned += cost;
            victims.insert(id);
        }
        if victims.is_empty() {
            return Ok(0);
        }
        // A victim a base level references (under runs it hides) goes only with those levels:
        // the base is then written again as one level.
        let rewrite_base = victims.iter().any(|id| v.base_refs.contains(id));
        // Every live slot's runs in a victim, in pack order so that reads are sequential.
        let mut refs: Vec<(u64, u64, usize, usize)> = Vec::new(); // pack, pack_off, slot, run
        for (si, s) in v.slots.iter().enumerate() {
            if s.alias as usize != si {
                continue;
            }
            for (ri, r) in s.runs.iter().enumerate() {
                if r.kind == RunKind::Data && victims.contains(&r.pack) {
                    refs.push((r.pack, r.pack_off, si, ri));
                }
            }
        }
        refs.sort_unstable();
        let new_id = Self::alloc_id(w);
        let name = pack_name(new_id);
        let mut pw = {
            let up = self
                .storage
                .upload(&name)
                .map_err(|e| failed(w, "starting a compaction pack", e))?;
            super::pack::PackWriter::new(up, &w.m.store_id, new_id)
                .map_err(|e| failed(w, "writing a compaction pack", e))?
        };
        let mut new_runs: HashMap<usize, Vec<Run>> = HashMap::new();
        if rewrite_base {
            new_runs.insert(0, v.slots[0].runs.to_vec());
        }
        let mut buf = Vec::new();
        for &(_, _, si, ri) in &refs {
            let r = v.slots[si].runs[ri];
            let mut pos = r.start;
            let mut first_at = None;
            while pos < r.end() {
                let n = (r.end() - pos).min(1 << 20);
                buf.resize(n as usize, 0);
                self.read_pack(&v, &r.slice(pos, pos + n), &mut buf)?;
                let res = (|| {
                    if first_at.is_none() {
                        pw.align(r.start % CHUNK)?;
                        first_at = Some(pw.len);
                    }
                    pw.append(&buf)
                })();
                if let Err(e) = res {
                    drop(pw);
                    let _ = self.storage.abort_upload(&name);
                    return Err(failed(w, "writing a compaction pack", e));
                }
                if room.is_some_and(|r| pack_object_len(pw.len) + 2 * 4096 > r) {
                    // Would not fit under the cap after all: give up, nothing changed.
                    drop(pw);
                    let _ = self.storage.abort_upload(&name);
                    return Ok(0);
                }
                pos += n;
            }
            let runs = new_runs
                .entry(si)
                .or_insert_with(|| v.slots[si].runs.to_vec());
            runs[ri].pack = new_id;
            runs[ri].pack_off = first_at.expect("a run is never empty");
        }
        let done = pw
            .finish()
            .and_then(|(up, len)| up.complete().map(|()| len));
        let data_len = match done {
            Ok(len) => len,
            Err(e) => {
                let _ = self.storage.abort_upload(&name);
                return Err(failed(w, "writing a compaction pack", e));
            }
        };
        // New layer objects for every slot that changed, then one commit.
        let mut m = w.m.clone();
        let mut old: Vec<String> = Vec::new();
        let mut puts: Vec<(String, Vec<u8>)> = Vec::new();
        let mut slot_objects: Vec<(usize, u64)> = Vec::new();
        for (&si, runs) in &new_runs {
            let mut merged = Vec::with_capacity(runs.len());
            for r in runs {
                super::map::push_run(&mut merged, *r);
            }
            let id = Self::alloc_id_m(&mut m);
            puts.push((layer_name(id), encode_layer(&merged)));
            slot_objects.push((si, id));
            if si == 0 {
                // The base becomes one level again.
                old.extend(m.base.iter().map(|l| layer_name(l.layer)));
                m.base = vec![BaseLevel {
                    layer: id,
                    runs: merged.len() as u64,
                }];
            } else {
                let pi = v
                    .points
                    .iter()
                    .position(|p| p.layer_no as usize == si)
                    .expect("a live slot is a point's");
                old.push(layer_name(m.points[pi].layer));
                m.points[pi].layer = id;
            }
        }
        w.m.next_object = m.next_object;
        // Freed: the victims that are objects of their own, and the bundles left empty (a
        // bundled victim frees nothing until its bundle goes).
        let bundles_before = m.bundles.clone();
        let freed: u64 = m
            .packs
            .iter()
            .filter(|p| victims.contains(&p.id) && p.bundle == 0)
            .fold(0u64, |a, p| a.saturating_add(pack_object_len(p.data_len)));
        remove_packs(&mut m, &victims, &mut old);
        let freed = bundles_before
            .iter()
            .filter(|b| !m.bundles.contains(b))
            .fold(freed, |a, b| a.saturating_add(b.len));
        m.packs.push(PackRec::own(new_id, data_len));
        drop(v);
        let transient: u64 =
            pack_object_len(data_len) + puts.iter().map(|(_, d)| d.len() as u64).sum::<u64>();
        if room.is_some_and(|r| transient > r) {
            self.delete_objects(w, &[name])?;
            return Ok(0);
        }
        // Out of space from here on: remove what this compaction wrote (nothing references it).
        let undo = |w: &mut Writer, done: usize| {
            if !w.poisoned {
                let _ = self.storage.delete(&name);
                for (n, _) in &puts[..done] {
                    let _ = self.storage.delete(n);
                }
            }
        };
        for (i, (n, data)) in puts.iter().enumerate() {
            if let Err(e) = self.put(w, n, data, "writing a compacted layer") {
                undo(w, i);
                return Err(e);
            }
        }
        if let Err(e) = self.commit(w, m) {
            undo(w, puts.len());
            return Err(e);
        }
        {
            let mut v = self.v.write();
            for (si, id) in slot_objects {
                let mut merged = Vec::new();
                for r in &new_runs[&si] {
                    super::map::push_run(&mut merged, *r);
                }
                if si == 0 {
                    v.base_refs = View::data_packs(&merged).collect();
                }
                v.slots[si].runs = Arc::new(merged);
                v.slots[si].object = id;
            }
            for id in &victims {
                v.packs.remove(id);
            }
            v.packs.insert(new_id, PackRec::own(new_id, data_len));
        }
        self.delete_objects(w, &old)?;
        Ok(freed.saturating_sub(pack_object_len(data_len)))
    }

    /// Rolls the head back to `point`: the next stream continues from it under a new
    /// generation, and every point after it is kept, detached, until
    /// [`Store::discard_detached`]. Returns the new lineage and the ranges the source must
    /// re-send (those that differ between `point` and the newest point).
    pub fn rollback(&self, point: PointId) -> Result<Rollback> {
        let mut w = self.writer()?;
        if w.ingesting {
            return Err(ReplicaError::IngestInProgress);
        }
        let mut m = w.m.clone();
        let n = m.points.iter().filter(|p| p.detached).count();
        if n > 0 {
            return Err(ReplicaError::DetachedPointsExist { count: n });
        }
        let (extents, lo, hi, idx) = {
            let v = self.v.read();
            let p = v.point(point)?;
            let idx = v.points.iter().position(|x| x.id == point).expect("found");
            if idx + 1 == v.points.len() {
                return Err(ReplicaError::InvalidArgument {
                    reason: "the point is already the newest".into(),
                });
            }
            let newest = v.points.last().expect("non-empty");
            let ext = changed(&v, p, newest)?;
            (ext, v.points[idx + 1].layer_no, newest.layer_no, idx)
        };
        let generation = GenerationId::random();
        let sequence = m.points[idx].to_seq;
        for p in &mut m.points[idx + 1..] {
            p.detached = true;
        }
        m.lineage = Some((generation, sequence));
        self.commit(&mut w, m)?;
        let mut v = self.v.write();
        for p in &mut v.points[idx + 1..] {
            p.detached = true;
        }
        v.detached = Some((lo, hi));
        Ok(Rollback {
            generation,
            sequence,
            extents,
        })
    }

    /// Deletes the points a rollback detached. Returns how many.
    pub fn discard_detached(&self) -> Result<usize> {
        let mut w = self.writer()?;
        let mut m = w.m.clone();
        let gone: Vec<PointRec> = m.points.iter().filter(|p| p.detached).cloned().collect();
        if gone.is_empty() {
            return Ok(0);
        }
        m.points.retain(|p| !p.detached);
        let mut old: Vec<String> = gone.iter().map(|p| layer_name(p.layer)).collect();
        let mut v = self.v.write();
        let range = v.detached.take().expect("detached points have a range");
        for no in range.0..=range.1 {
            v.slots[no as usize].runs = Arc::new(Vec::new());
            v.slots[no as usize].object = 0;
        }
        v.dead.push(range);
        v.points.retain(|p| !p.detached);
        v.reindex_points();
        drop_dead_packs(&mut m, &mut v, &mut old);
        drop(v);
        if let Err(e) = self.commit(&mut w, m) {
            self.reload_view_after_failure(&mut w);
            return Err(e);
        }
        self.delete_objects(&mut w, &old)?;
        Ok(gone.len())
    }
}

/// A storage call failed. Running out of space while writing is a clean refusal: nothing that
/// was not yet durable is claimed to be, and the store stays usable
/// ([`ReplicaError::StorageFull`]). Any other failure (a failed sync above all) poisons the
/// store: the data may be lost and only reopening can tell what is durable.
pub(crate) fn failed(w: &mut Writer, op: &'static str, e: io::Error) -> ReplicaError {
    if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
        ReplicaError::StorageFull { op }
    } else {
        w.poisoned = true;
        ReplicaError::Io { op, source: e }
    }
}

/// Removes from the manifest and the view every pack no live layer references any more, and
/// names it in `old` (deleted after the commit).
fn drop_dead_packs(m: &mut Manifest, v: &mut View, old: &mut Vec<String>) {
    let live = v.live_bytes();
    let dead: Vec<u64> = m
        .packs
        .iter()
        .filter(|p| live.get(&p.id) == Some(&0) && !v.base_refs.contains(&p.id))
        .map(|p| p.id)
        .collect();
    for d in &dead {
        v.packs.remove(d);
    }
    remove_packs(m, &dead.into_iter().collect(), old);
}

/// Removes packs `ids` from the manifest and names in `old` what to delete after the commit:
/// each standalone pack, and each bundle left holding none.
fn remove_packs(m: &mut Manifest, ids: &HashSet<u64>, old: &mut Vec<String>) {
    for p in m.packs.iter().filter(|p| ids.contains(&p.id)) {
        if p.bundle == 0 {
            old.push(pack_name(p.id));
        }
    }
    m.packs.retain(|p| !ids.contains(&p.id));
    remove_dead_bundles(m, old);
}

/// Removes from the manifest every bundle that holds no pack, naming it in `old`.
pub(crate) fn remove_dead_bundles(m: &mut Manifest, old: &mut Vec<String>) {
    let held: HashSet<u64> = m.packs.iter().map(|p| p.bundle).collect();
    m.bundles.retain(|b| {
        let keep = held.contains(&b.id);
        if !keep {
            old.push(bundle_name(b.id));
        }
        keep
    });
}

/// Checks each 4 KiB chunk of `data` (the last may be short) against the little-endian CRC-32s
/// that start `crcs`; `at` is where `data` lies in `object`, for the error.
pub(crate) fn verify_chunks(data: &[u8], crcs: &[u8], object: &str, at: u64) -> Result<()> {
    for (k, chunk) in data.chunks(CHUNK as usize).enumerate() {
        let want = u32::from_le_bytes(crcs[k * 4..k * 4 + 4].try_into().expect("4"));
        if crc32fast::hash(chunk) != want {
            return Err(ReplicaError::ChecksumMismatch {
                object: object.to_string(),
                offset: at + k as u64 * CHUNK,
            });
        }
    }
    Ok(())
}

/// The object holding pack `p`, and where the pack starts in it.
pub(crate) fn pack_object(p: &PackRec) -> (String, u64) {
    if p.bundle == 0 {
        (pack_name(p.id), 0)
    } else {
        (bundle_name(p.bundle), p.offset)
    }
}

fn last_index(v: &View, layer_no: u32) -> usize {
    v.points
        .iter()
        .position(|p| p.layer_no == layer_no)
        .expect("point of layer")
}

fn lock(storage: &dyn Storage, location: &str) -> Result<Box<dyn Send + Sync>> {
    storage.lock_writer().map_err(|e| {
        if e.kind() == io::ErrorKind::WouldBlock {
            ReplicaError::Locked {
                path: location.to_string(),
            }
        } else {
            ReplicaError::Io {
                op: "locking the store",
                source: e,
            }
        }
    })
}

fn info(rec: &PointRec, exclusive: u64) -> PointInfo {
    PointInfo {
        id: PointId {
            generation: rec.generation,
            sequence: rec.to_seq,
        },
        from_sequence: rec.from_seq,
        disk_size: rec.disk_size,
        time_ns: rec.time_ns,
        ingested_ns: rec.ingested_ns,
        consistency: if rec.app {
            BookmarkKind::ApplicationConsistent
        } else {
            BookmarkKind::CrashConsistent
        },
        bookmark_id: rec.bookmarked.then_some(rec.bookmark_id),
        label: rec.label.clone(),
        detached: rec.detached,
        stored_bytes: rec.stored_bytes,
        exclusive_bytes: exclusive,
    }
}

/// DATA bytes of `older` covered by `newer` (any kind).
fn overlap_data(older: &[Run], newer: &[Run]) -> u64 {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < older.len() && j < newer.len() {
        let (a, b) = (&older[i], &newer[j]);
        let s = a.start.max(b.start);
        let e = a.end().min(b.end());
        if s < e && a.kind == RunKind::Data {
            n += e - s;
        }
        if a.end() <= b.end() {
            i += 1;
        } else {
            j += 1;
        }
    }
    n
}

fn changed(v: &View, a: &PView, b: &PView) -> Result<Vec<Extent>> {
    let size = a.disk_size.max(b.disk_size);
    let mut ranges = Vec::new();
    v.index.walk(0, size, |s, e, layers| {
        if v.top(a, layers) != v.top(b, layers) {
            ranges.push((s, e));
        }
    });
    let small = a.disk_size.min(b.disk_size);
    if small < size {
        ranges.push((small, size));
    }
    Ok(union_ranges(ranges)
        .into_iter()
        .map(|(s, e)| Extent::new(s, e - s))
        .collect())
}

/// Bytes the store occupies: every pack, layer object and the manifest.
pub(crate) fn store_bytes(w: &Writer, v: &View) -> u64 {
    let m = &w.m;
    // Saturating: a forged manifest may claim pack sizes whose sum overflows (each one is
    // bounded at open, their sum is not).
    let packs = m
        .packs
        .iter()
        .filter(|p| p.bundle == 0)
        .fold(0u64, |a, p| a.saturating_add(pack_object_len(p.data_len)));
    let packs = m.bundles.iter().fold(packs, |a, b| a.saturating_add(b.len));
    // The base: its level objects (the view holds them merged).
    let mut layers = m
        .base
        .iter()
        .fold(0u64, |a, l| a.saturating_add(layer_object_len(l.runs)));
    for (i, s) in v.slots.iter().enumerate().skip(1) {
        if s.alias as usize == i && (!s.runs.is_empty() || s.object != 0) {
            layers += layer_object_len(s.runs.len() as u64);
        }
    }
    packs
        .saturating_add(layers)
        .saturating_add(w.log.checkpoint_len)
        .saturating_add(w.log.bytes)
        .saturating_add(w.pending_bytes.0)
        // A resumed ingest counts its own pack as it grows.
        .saturating_add(if w.ingesting { 0 } else { w.pending_bytes.1 })
}

/// Maps a read error of an immutable object: a read past its end means the object is shorter
/// than the manifest says (truncated), which is corruption, not an I/O failure.
pub(crate) fn short_object<'a>(
    name: &'a str,
    op: &'static str,
) -> impl FnOnce(io::Error) -> ReplicaError + 'a {
    move |e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            corrupt(name, "shorter than the manifest says (truncated?)")
        } else {
            ReplicaError::Io { op, source: e }
        }
    }
}

/// Builds the in-memory view from a manifest, reading every layer object.
pub(crate) fn load_view(storage: &dyn Storage, m: &Manifest) -> Result<View> {
    let mut v = View::default();
    let packs: HashMap<u64, PackRec> = m.packs.iter().map(|p| (p.id, *p)).collect();
    let max_disk = crate::stream::MAX_DISK_SIZE;
    let read_layer = |id: u64| -> Result<Vec<Run>> {
        let name = layer_name(id);
        let size = storage
            .size(&name)
            .map_err(io_err("reading a layer's size"))?;
        if size > 1 << 34 {
            return Err(corrupt(&name, format!("{size} bytes is not a layer")));
        }
        let mut b = vec![0u8; size as usize];
        storage
            .get_range(&name, 0, &mut b)
            .map_err(io_err("reading a layer"))?;
        decode_layer(&b, &name, |p| packs.get(&p).map(|r| r.data_len), max_disk)
    };
    // The base: its levels overlaid, oldest first, minus what the oldest point's own layer
    // covers (as every fold leaves it: see `fold_levels`).
    // The levels above the first are small: overlay them together, then onto the first once.
    let mut base: Vec<Run> = Vec::new();
    let mut upper: Vec<Run> = Vec::new();
    for (i, l) in m.base.iter().enumerate() {
        let runs = read_layer(l.layer)?;
        if runs.len() as u64 != l.runs {
            return Err(corrupt(
                &layer_name(l.layer),
                format!("holds {} runs, the manifest says {}", runs.len(), l.runs),
            ));
        }
        v.base_refs.extend(View::data_packs(&runs));
        match i {
            0 => base = runs,
            1 => upper = runs,
            _ => upper = overlay(&upper, &runs),
        }
    }
    if !upper.is_empty() {
        base = overlay(&base, &upper);
    }
    // The oldest point's layer is read once: for the base, then as its own slot below.
    let mut oldest = match m.points.first() {
        Some(first) => Some(read_layer(first.layer)?),
        None => None,
    };
    if let Some(runs) = &oldest {
        if !base.is_empty() {
            base = subtract(&base, runs);
        }
    }
    v.packs = packs.clone();
    v.add_layer(base, 0);
    let mut first_detached = None;
    for rec in &m.points {
        let runs = match oldest.take() {
            Some(runs) => runs,
            None => read_layer(rec.layer)?,
        };
        if let Some(r) = runs.last() {
            if r.end() > rec.disk_size {
                return Err(corrupt(
                    &layer_name(rec.layer),
                    "a run ends past its point's disk size",
                ));
            }
        }
        let no = v.add_layer(runs, rec.layer);
        if rec.detached {
            first_detached.get_or_insert(no);
            v.detached = Some((first_detached.expect("set"), no));
        }
        v.push_point(PView {
            id: PointId {
                generation: rec.generation,
                sequence: rec.to_seq,
            },
            layer_no: no,
            disk_size: rec.disk_size,
            detached: rec.detached,
        });
    }
    let _ = hex;
    Ok(v)
}

/// Records the fold of layers `a` (the expired oldest points' layers overlaid; their objects
/// `objects`, oldest first) into the base, whose new merged runs are `base`. The base is kept
/// in levels so that a fold writes what it folds, not the whole base: `a` becomes a new level
/// (the expired point's own layer object when it was one point, nothing written). Once the
/// levels above the first hold more runs than it, or number [`BASE_LEVELS`], the base is
/// written whole as one level: each run is rewritten a bounded number of times on average.
/// Returns the objects no longer referenced after the commit, and whether the base was
/// written as one level.
fn fold_levels(
    m: &mut Manifest,
    base: &[Run],
    a: Vec<Run>,
    mut objects: Vec<u64>,
    new_objects: &mut Vec<(String, Vec<u8>)>,
) -> (Vec<String>, bool) {
    let upper: u64 = m.base.iter().skip(1).map(|l| l.runs).sum::<u64>() + a.len() as u64;
    let first = m.base.first().map_or(0, |l| l.runs);
    if !m.base.is_empty() && (m.base.len() >= BASE_LEVELS || upper > first) {
        let id = Store::alloc_id_m(m);
        new_objects.push((layer_name(id), encode_layer(base)));
        let mut old: Vec<String> = m.base.iter().map(|l| layer_name(l.layer)).collect();
        old.extend(objects.into_iter().map(layer_name));
        m.base = vec![BaseLevel {
            layer: id,
            runs: base.len() as u64,
        }];
        return (old, true);
    }
    let layer = if objects.len() == 1 {
        objects.pop().expect("one")
    } else {
        let id = Store::alloc_id_m(m);
        new_objects.push((layer_name(id), encode_layer(&a)));
        id
    };
    m.base.push(BaseLevel {
        layer,
        runs: a.len() as u64,
    });
    (objects.into_iter().map(layer_name).collect(), false)
}

/// The bytes of the suspended ingest `m.pending` names: its resume object's size, and the
/// durable length of its pack upload (which the resume object records at offset 40). Only
/// for accounting: a store whose objects cannot be read here fails elsewhere.
fn pending_bytes(storage: &dyn Storage, m: &Manifest) -> (u64, u64) {
    let Some(p) = m.pending else { return (0, 0) };
    let name = resume_name(p.resume);
    let size = storage.size(&name).unwrap_or(0);
    let mut len = [0u8; 8];
    let pack = match storage.get_range(&name, 40, &mut len) {
        Ok(()) => u64::from_le_bytes(len).min(1 << 62),
        Err(_) => 0,
    };
    (size, pack)
}
