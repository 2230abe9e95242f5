//! Restart without resync: a tracker whose state survives a clean restart in a small,
//! versioned, checksummed state file (layout and protocol in `docs/TRACKER.md`).
//!
//! [`PersistentTracker`] owns a [`Tracker`] (shared with the I/O threads as an `Arc`) and the
//! path of its state file. What it promises:
//! - After a **clean close** ([`PersistentTracker::close`]), the next
//!   [`PersistentTracker::open`] continues the same generation and sequence numbers, and the
//!   next take holds exactly what changed: the dirty set as it was at close, a taken but
//!   uncommitted checkpoint's blocks merged back (the consumer never confirmed them), and
//!   nothing else.
//! - Anything else, a missing, unreadable, torn, foreign (another disk id), stale (behind or
//!   ahead of the replica's point), reshaped (other geometry), unknown-version or inconsistent
//!   file, **or a run that did not close cleanly**, is never trusted: the tracker starts a new
//!   generation with every block dirty (the continuity-lost signal a consumer already handles
//!   as a full resync), and [`LoadOutcome::Reset`] says why.
//! - A run that did not close cleanly is recognised because `open` replaces the state file,
//!   durably and before it returns, by an **in-use** record: a crash (kill -9, power loss)
//!   leaves that record, not the clean state, so writes marked only in memory are never lost
//!   to a stale dirty set. This is why a state saved while writes go on is never trusted: no
//!   file can know what was marked after it was written (that needs the activity log of a
//!   later step, `docs/TRACKER.md`).
//! - Checkpoint numbers are never issued twice within a generation, across crashes too: a
//!   crashed run's generation is never continued, and in addition the in-use record holds a
//!   durable reservation at least as high as every number a take of the run returned (written
//!   before that take returns, one fsync per `reserve` takes), which is what a run that
//!   continued a crashed generation would skip past.
//!
//! What this module must never do: touch the write path. `mark_write` and `mark_discard` stay
//! lock-free, allocation-free and syscall-free; all file work is on the control path (open,
//! take, commit, close), under a lock the write path never takes.

mod file;

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{CheckpointInfo, GenerationId, Geometry, Tracker, TrackerConfig, TrackerError};
use file::State;

pub use file::{
    StateFileError, StateFileInfo, StateKind, TRACKER_STATE_MAJOR, TRACKER_STATE_MINOR,
};

/// How many sequence numbers an in-use record reserves at a time by default (one fsync per 16
/// takes).
pub const DEFAULT_SEQUENCE_RESERVATION: u64 = 16;

/// How to open a persistent tracker. Build it with [`PersistOptions::new`] (fields may be
/// added).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PersistOptions {
    /// The disk's identity, chosen by the caller (a UUID, a hash of the device's serial): a
    /// state file written for another id is never trusted.
    pub disk_id: [u8; 16],
    /// The point the replica reports it is at, (generation, sequence), if known: a state that
    /// cannot build a stream the replica accepts from there is stale and never trusted.
    pub replica: Option<(GenerationId, u64)>,
    /// Sequence numbers reserved per durable in-use write (at least 1).
    pub reserve: u64,
}

impl PersistOptions {
    /// Options for the disk `disk_id`, no replica point, the default reservation.
    pub fn new(disk_id: [u8; 16]) -> Self {
        PersistOptions {
            disk_id,
            replica: None,
            reserve: DEFAULT_SEQUENCE_RESERVATION,
        }
    }

    /// The point the replica reports it is at.
    pub fn replica_point(mut self, generation: GenerationId, sequence: u64) -> Self {
        self.replica = Some((generation, sequence));
        self
    }

    /// Sequence numbers reserved per durable in-use write (0 is taken as 1).
    pub fn reserve(mut self, numbers: u64) -> Self {
        self.reserve = numbers;
        self
    }
}

/// What [`PersistentTracker::open`] made of the state file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadOutcome {
    /// The clean state was loaded: same generation, numbers continue after `issued`.
    Resumed {
        /// The continued generation.
        generation: GenerationId,
        /// The last committed number (the next take's `from_sequence`).
        committed: u64,
        /// The last number issued (the next take is `issued + 1`).
        issued: u64,
        /// Dirty blocks loaded (what the next take holds, before new marks).
        dirty_blocks: u64,
    },
    /// Continuity is lost: a new generation, every block dirty (a full resync), because of
    /// `reason`.
    Reset {
        /// The new generation.
        generation: GenerationId,
        /// Why the state was not trusted.
        reason: ResetReason,
    },
}

impl LoadOutcome {
    /// Whether the load started a new generation (a full resync).
    pub fn is_reset(&self) -> bool {
        matches!(self, LoadOutcome::Reset { .. })
    }

    /// The reason for a reset, if there was one.
    pub fn reset_reason(&self) -> Option<&ResetReason> {
        match self {
            LoadOutcome::Reset { reason, .. } => Some(reason),
            LoadOutcome::Resumed { .. } => None,
        }
    }
}

/// Why a state file was not trusted.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResetReason {
    /// There is no state file (a first start, or it was removed).
    Missing,
    /// The file could not be read.
    Unreadable {
        /// The error's kind.
        kind: io::ErrorKind,
        /// The error's message.
        message: String,
    },
    /// The bytes are not a valid state file: torn, damaged, another format or version.
    Invalid(StateFileError),
    /// The file was written for another disk.
    ForeignDisk {
        /// The id given to `open`.
        expected: [u8; 16],
        /// The id in the file.
        found: [u8; 16],
    },
    /// The geometry changed since the file was written (a resize while the tracker was not
    /// running, another granularity or sector size).
    GeometryChanged {
        /// The file's geometry.
        saved: Geometry,
        /// The geometry now.
        current: Geometry,
    },
    /// The last run did not close cleanly (crash, kill, power loss): marks made after the last
    /// write of the file may be missing from it.
    Unclean {
        /// The generation of that run.
        generation: GenerationId,
        /// Its last committed number, as last recorded.
        committed: u64,
        /// Its sequence reservation: no take of that run returned a higher number.
        issued: u64,
    },
    /// The replica is in another generation than the state.
    ReplicaGeneration {
        /// The state's generation.
        saved: GenerationId,
        /// The replica's.
        replica: GenerationId,
    },
    /// The replica is at a number the state never issued: the state is older than the
    /// replica (a restored or copied file).
    ReplicaAhead {
        /// The last number the state issued.
        issued: u64,
        /// The replica's number.
        replica_sequence: u64,
    },
    /// The replica is behind the state's last commit: the state has forgotten blocks the
    /// replica still needs.
    ReplicaBehind {
        /// The state's last committed number.
        committed: u64,
        /// The replica's number.
        replica_sequence: u64,
    },
}

impl fmt::Display for ResetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ResetReason as R;
        match self {
            R::Missing => write!(f, "no state file"),
            R::Unreadable { message, .. } => write!(f, "the state file is unreadable: {message}"),
            R::Invalid(e) => write!(f, "the state file is invalid: {e}"),
            R::ForeignDisk { expected, found } => write!(
                f,
                "the state file belongs to disk {} (expected {})",
                GenerationId(*found),
                GenerationId(*expected)
            ),
            R::GeometryChanged { saved, current } => write!(
                f,
                "the geometry changed: saved {saved:?}, now {current:?}"
            ),
            R::Unclean {
                generation,
                committed,
                issued,
            } => write!(
                f,
                "the last run of generation {generation} did not close cleanly (committed {committed}, numbers reserved up to {issued})"
            ),
            R::ReplicaGeneration { saved, replica } => write!(
                f,
                "the replica is in generation {replica}, the state in {saved}"
            ),
            R::ReplicaAhead {
                issued,
                replica_sequence,
            } => write!(
                f,
                "the replica is at {replica_sequence}, past the last number issued {issued} (the state is stale)"
            ),
            R::ReplicaBehind {
                committed,
                replica_sequence,
            } => write!(
                f,
                "the replica is at {replica_sequence}, behind the last commit {committed}"
            ),
        }
    }
}

/// Everything a persistent tracker call can fail with.
#[non_exhaustive]
#[derive(Debug)]
pub enum PersistError {
    /// The tracker refused the call (the configuration, a wrong checkpoint, ...).
    Tracker(TrackerError),
    /// A file operation failed. From a take, commit or close this poisons the handle.
    Io {
        /// What was being done, e.g. "fsync the state file".
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// An earlier write of the state file failed: the file may not say what the tracker did,
    /// so the handle records nothing more. Drop it; the next open starts a new generation.
    Poisoned,
    /// Another tracker (in this process or another) has the state file open: two trackers
    /// on one state file would each take the other's clean state for its own.
    Locked {
        /// The lock file (`<path>.lock`).
        path: PathBuf,
    },
    /// `close` while other references to the tracker exist (writers may still mark): the
    /// state was not saved as clean; the next open starts a new generation.
    StillShared {
        /// References besides the persistent tracker's own.
        others: usize,
    },
}

impl fmt::Display for PersistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PersistError::Tracker(e) => write!(f, "{e}"),
            PersistError::Io { op, path, source } => {
                write!(f, "could not {op} {}: {source}", path.display())
            }
            PersistError::Poisoned => write!(
                f,
                "an earlier write of the state file failed: the handle is poisoned (drop it and open again)"
            ),
            PersistError::Locked { path } => write!(
                f,
                "the tracker state file is open in another tracker ({} is locked)",
                path.display()
            ),
            PersistError::StillShared { others } => write!(
                f,
                "cannot close cleanly: {others} other references to the tracker remain (stop every writer first)"
            ),
        }
    }
}

impl std::error::Error for PersistError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PersistError::Tracker(e) => Some(e),
            PersistError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<TrackerError> for PersistError {
    fn from(e: TrackerError) -> Self {
        PersistError::Tracker(e)
    }
}

/// A tracker whose state survives a clean restart (`docs/TRACKER.md`).
///
/// Give the I/O threads clones of [`PersistentTracker::tracker`] to mark writes; call
/// [`PersistentTracker::take`] and [`PersistentTracker::commit`] on this handle (they record
/// the sequence reservation and the commit), the other checkpoint calls (`extents`, `abort`)
/// on the tracker. At shutdown, stop the writers, drop their clones, and
/// [`PersistentTracker::close`].
///
/// ```
/// use blockdelta::{LoadOutcome, PersistOptions, PersistentTracker, TrackerConfig};
///
/// let dir = std::env::temp_dir().join(format!("blockdelta-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("disk0.tracker");
/// let disk_id = *b"0123456789abcdef";
/// let config = TrackerConfig::new(1 << 30);
///
/// let (pt, outcome) = PersistentTracker::open(&path, config, PersistOptions::new(disk_id))?;
/// assert!(outcome.is_reset()); // no file yet: a new generation, every block dirty
/// let writer = pt.tracker().clone(); // for the I/O threads
/// let first = pt.take()?;
/// pt.commit(first.generation, first.sequence)?; // after the replica's durable ack
/// writer.mark_write(4096, 8192)?;
/// drop(writer); // every writer stopped
/// pt.close()?;
///
/// // The next run continues the generation; the next take holds exactly block 1 and 2.
/// let (pt, outcome) = PersistentTracker::open(&path, config, PersistOptions::new(disk_id))?;
/// assert!(matches!(outcome, LoadOutcome::Resumed { dirty_blocks: 2, .. }));
/// let cp = pt.take()?;
/// assert_eq!((cp.generation, cp.sequence, cp.dirty_bytes), (first.generation, 2, 8192));
/// pt.close()?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PersistentTracker {
    tracker: Arc<Tracker>,
    state: StateFile,
}

impl PersistentTracker {
    /// Builds a tracker for `config` and loads the state file at `path` into it if it is
    /// trusted (clean, this disk, this geometry, consistent with the replica's point); else
    /// starts a new generation with every block dirty (`config.start_clean` is ignored). Then
    /// durably replaces the file by an in-use record (temporary file, fsync, rename, fsync of
    /// the directory) before returning, so that a crash from here on is recognised.
    ///
    /// Fails only if the tracker cannot be built or the in-use record cannot be written (then
    /// nothing was marked; the file is the old one or the new in-use record). Reads at most
    /// the size a state file of this geometry can have. Blocks on file I/O.
    pub fn open(
        path: impl AsRef<Path>,
        config: TrackerConfig,
        options: PersistOptions,
    ) -> Result<(PersistentTracker, LoadOutcome), PersistError> {
        let (tracker, state, outcome) = StateFile::open(path, config, options)?;
        let pt = PersistentTracker {
            tracker: Arc::new(tracker),
            state,
        };
        Ok((pt, outcome))
    }

    /// The tracker, for the I/O threads (`mark_write`, `mark_discard`) and the checkpoint calls
    /// this handle does not wrap (`extents`, `abort`, `pending`, `stats`, ...).
    pub fn tracker(&self) -> &Arc<Tracker> {
        &self.tracker
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.state.path
    }

    /// [`Tracker::take`], and before it returns, a durable in-use record whose reservation
    /// covers the number it issued, when the last one does not (one fsync per `reserve` takes,
    /// and on a generation change). If that write fails the checkpoint is aborted (its number
    /// is never used), the handle is poisoned and the error returned. Blocks on file I/O.
    pub fn take(&self) -> Result<CheckpointInfo, PersistError> {
        self.state.take(&self.tracker)
    }

    /// [`Tracker::commit`], then a durable in-use record of it (one fsync). If the record
    /// cannot be written, the commit has still taken effect in memory; the handle is poisoned
    /// and the error returned. Blocks on file I/O.
    pub fn commit(&self, generation: GenerationId, sequence: u64) -> Result<(), PersistError> {
        self.state.commit(&self.tracker, generation, sequence)
    }

    /// Saves the state as **clean** and ends the tracker: the dirty set, with a taken but
    /// uncommitted checkpoint merged back (its number stays spent), the generation, the last
    /// committed and last issued numbers. The next `open` continues from there.
    ///
    /// Every writer must have stopped: this handle must hold the only reference to the tracker,
    /// else [`PersistError::StillShared`] and nothing is saved (the file stays in use: the next
    /// open resets). The write is atomic (temporary file, fsync, rename, fsync of the
    /// directory): a crash or error leaves the old file or the new one, never a mix. Blocks on
    /// file I/O.
    pub fn close(self) -> Result<(), PersistError> {
        let PersistentTracker { tracker, state } = self;
        if state.file.lock().poisoned {
            return Err(PersistError::Poisoned);
        }
        let tracker = Arc::try_unwrap(tracker).map_err(|t| PersistError::StillShared {
            others: Arc::strong_count(&t) - 1,
        })?;
        state.close(tracker)
    }

    /// Reads the header of the state file at `path` (checksum, version and every record
    /// checked), refusing files longer than `max_len` bytes: for tools and tests that look at
    /// a file without opening a tracker.
    pub fn inspect(path: impl AsRef<Path>, max_len: u64) -> Result<StateFileInfo, InspectError> {
        let bytes = read_bounded(path.as_ref(), max_len).map_err(|e| match e {
            ReadFailure::Io(e) => InspectError::Io(e),
            ReadFailure::TooLarge { len } => {
                InspectError::Invalid(StateFileError::TooLarge { len, max: max_len })
            }
        })?;
        file::decode(&bytes, |_| {}).map_err(InspectError::Invalid)
    }
}

/// The file half of a [`PersistentTracker`], for a caller that owns its [`Tracker`] by value
/// (the C ABI, whose handle keeps the tracker inline so that a mark costs no extra pointer
/// load). Every call must be given the tracker [`StateFile::open`] returned with it; Rust
/// callers use [`PersistentTracker`], which keeps the two together.
#[doc(hidden)]
pub struct StateFile {
    path: PathBuf,
    disk_id: [u8; 16],
    reserve: u64,
    file: Mutex<FileState>,
    /// `<path>.lock`, flock(2)ed for this handle's life.
    _lock: fs::File,
}

/// What the in-use record on disk says, and whether writing it ever failed.
struct FileState {
    generation: GenerationId,
    committed: u64,
    reserved: u64,
    poisoned: bool,
}

impl StateFile {
    /// [`PersistentTracker::open`], returning the tracker by value.
    pub fn open(
        path: impl AsRef<Path>,
        config: TrackerConfig,
        options: PersistOptions,
    ) -> Result<(Tracker, StateFile, LoadOutcome), PersistError> {
        let path = path.as_ref().to_path_buf();
        let tracker = Tracker::new(config.start_clean(true))?;
        let lock = lock(&path)?;
        let outcome = match load_into(&tracker, &path, &options) {
            Ok(outcome) => outcome,
            Err(reason) => {
                tracker.reset_for_load();
                LoadOutcome::Reset {
                    generation: tracker.generation(),
                    reason,
                }
            }
        };
        let reserve = options.reserve.max(1);
        let (generation, committed, issued) = {
            let c = tracker.control.lock();
            (c.generation, c.committed, c.issued)
        };
        let state = StateFile {
            path,
            disk_id: options.disk_id,
            reserve,
            file: Mutex::new(FileState {
                generation,
                committed,
                reserved: issued.saturating_add(reserve),
                poisoned: false,
            }),
            _lock: lock,
        };
        {
            let f = state.file.lock();
            state.write_in_use(&f, &tracker)?;
        }
        Ok((tracker, state, outcome))
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// [`PersistentTracker::take`] on `tracker`.
    pub fn take(&self, tracker: &Tracker) -> Result<CheckpointInfo, PersistError> {
        let mut f = self.file.lock();
        if f.poisoned {
            return Err(PersistError::Poisoned);
        }
        let info = tracker.take()?;
        if info.generation != f.generation || info.sequence > f.reserved {
            let old = (f.generation, f.committed, f.reserved);
            f.generation = info.generation;
            f.committed = info.from_sequence;
            f.reserved = info.sequence.saturating_add(self.reserve - 1);
            if let Err(e) = self.write_in_use(&f, tracker) {
                (f.generation, f.committed, f.reserved) = old;
                f.poisoned = true;
                // The number is spent in memory and was never handed out: nothing to undo
                // but the take itself.
                let _ = tracker.abort(info.sequence);
                return Err(e);
            }
        }
        Ok(info)
    }

    /// [`PersistentTracker::commit`] on `tracker`.
    pub fn commit(
        &self,
        tracker: &Tracker,
        generation: GenerationId,
        sequence: u64,
    ) -> Result<(), PersistError> {
        let mut f = self.file.lock();
        if f.poisoned {
            return Err(PersistError::Poisoned);
        }
        tracker.commit(generation, sequence)?;
        f.generation = generation;
        f.committed = sequence;
        f.reserved = f.reserved.max(sequence);
        if let Err(e) = self.write_in_use(&f, tracker) {
            f.poisoned = true;
            return Err(e);
        }
        Ok(())
    }

    /// [`PersistentTracker::close`]: `tracker` by value, so no other reference can mark.
    pub fn close(self, tracker: Tracker) -> Result<(), PersistError> {
        if self.file.lock().poisoned {
            return Err(PersistError::Poisoned);
        }
        let bytes = tracker.encode_clean(self.disk_id);
        write_durably(&self.path, &bytes)
    }

    fn write_in_use(&self, f: &FileState, tracker: &Tracker) -> Result<(), PersistError> {
        let s = State {
            kind: StateKind::InUse,
            disk_id: self.disk_id,
            generation: f.generation,
            committed: f.committed,
            issued: f.reserved,
            geometry: tracker.geometry(),
        };
        write_durably(&self.path, &file::encode(&s, []))
    }
}

/// Why [`PersistentTracker::inspect`] failed.
#[non_exhaustive]
#[derive(Debug)]
pub enum InspectError {
    /// The file could not be read.
    Io(io::Error),
    /// Its bytes are not a valid state file.
    Invalid(StateFileError),
}

impl fmt::Display for InspectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InspectError::Io(e) => write!(f, "could not read the state file: {e}"),
            InspectError::Invalid(e) => write!(f, "invalid state file: {e}"),
        }
    }
}

impl std::error::Error for InspectError {}

enum ReadFailure {
    Io(io::Error),
    TooLarge { len: u64 },
}

/// Reads a whole file of at most `max` bytes (checked before anything is allocated, and again
/// while reading, in case it grows).
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, ReadFailure> {
    let f = fs::File::open(path).map_err(ReadFailure::Io)?;
    let len = f.metadata().map_err(ReadFailure::Io)?.len();
    if len > max {
        return Err(ReadFailure::TooLarge { len });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadFailure::Io)?;
    if bytes.len() as u64 > max {
        return Err(ReadFailure::TooLarge {
            len: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// Loads a trusted state into `tracker` (built clean, in a fresh generation), or says why not
/// (then nothing was applied; the caller resets the tracker all the same).
fn load_into(
    tracker: &Tracker,
    path: &Path,
    options: &PersistOptions,
) -> Result<LoadOutcome, ResetReason> {
    let current = tracker.geometry();
    let max = file::max_len(current.capacity, current.block_size);
    let bytes = match read_bounded(path, max) {
        Ok(b) => b,
        Err(ReadFailure::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ResetReason::Missing)
        }
        Err(ReadFailure::Io(e)) => {
            return Err(ResetReason::Unreadable {
                kind: e.kind(),
                message: e.to_string(),
            })
        }
        Err(ReadFailure::TooLarge { len }) => {
            return Err(ResetReason::Invalid(StateFileError::TooLarge { len, max }))
        }
    };
    // First pass: every byte checked (checksum, header, each record), nothing applied.
    let info = file::decode(&bytes, |_| {}).map_err(ResetReason::Invalid)?;
    if info.disk_id != options.disk_id {
        return Err(ResetReason::ForeignDisk {
            expected: options.disk_id,
            found: info.disk_id,
        });
    }
    if info.geometry != current {
        return Err(ResetReason::GeometryChanged {
            saved: info.geometry,
            current,
        });
    }
    if info.kind == StateKind::InUse {
        return Err(ResetReason::Unclean {
            generation: info.generation,
            committed: info.committed,
            issued: info.issued,
        });
    }
    if let Some((generation, sequence)) = options.replica {
        if generation != info.generation {
            return Err(ResetReason::ReplicaGeneration {
                saved: info.generation,
                replica: generation,
            });
        }
        if sequence > info.issued {
            return Err(ResetReason::ReplicaAhead {
                issued: info.issued,
                replica_sequence: sequence,
            });
        }
        if sequence < info.committed {
            return Err(ResetReason::ReplicaBehind {
                committed: info.committed,
                replica_sequence: sequence,
            });
        }
    }
    // Second pass, applying: the same bytes passed every check above, so it cannot fail
    // halfway.
    file::decode(&bytes, |r| {
        for w in r.first..r.first + r.count {
            tracker.live.merge_word(w as usize, r.dirty, r.discard);
        }
    })
    .map_err(ResetReason::Invalid)?;
    let mut c = tracker.control.lock();
    c.generation = info.generation;
    c.committed = info.committed;
    c.issued = info.issued;
    Ok(LoadOutcome::Resumed {
        generation: info.generation,
        committed: info.committed,
        issued: info.issued,
        dirty_blocks: info.dirty_blocks,
    })
}

impl Tracker {
    /// After a load that was not trusted: the continuity-lost signal (a new generation, every
    /// block dirty), whatever part of the file was applied.
    fn reset_for_load(&self) {
        self.lose_continuity();
    }

    /// The clean state file of this tracker: its dirty set with the pending checkpoint (if
    /// any) merged back as [`Tracker::abort`] would (a block marked since the take keeps its
    /// newer kind), and blocks past the disk end dropped. Exact only when no mark runs
    /// concurrently (the caller holds the only reference).
    fn encode_clean(&self, disk_id: [u8; 16]) -> Vec<u8> {
        let c = self.control.lock();
        let geometry = self.geometry();
        let end_block = geometry.disk_size.div_ceil(geometry.block_size.into());
        let mut live = Vec::new();
        self.live
            .for_each_dirty_word(|w, d, disc| live.push((w as u64, d, disc)));
        let mut frozen = Vec::new();
        if c.pending.is_some() {
            c.frozen
                .for_each_word(|w, bits| frozen.push((w as u64, bits, c.frozen.discard_leaf(w))));
        }
        let words = merge_words(&live, &frozen).filter_map(|(w, d, disc)| {
            let first = w << 6;
            if first >= end_block {
                return None;
            }
            let keep = if end_block - first < 64 {
                (1u64 << (end_block - first)) - 1
            } else {
                u64::MAX
            };
            Some((w, d & keep, disc & keep))
        });
        let s = State {
            kind: StateKind::Clean,
            disk_id,
            generation: c.generation,
            committed: c.committed,
            issued: c.issued,
            geometry,
        };
        file::encode(&s, words)
    }
}

/// The union of two ascending word lists, per block as an abort merges them: a block dirty in
/// `live` keeps its live kind, one dirty only in `frozen` its frozen kind.
fn merge_words<'a>(
    live: &'a [(u64, u64, u64)],
    frozen: &'a [(u64, u64, u64)],
) -> impl Iterator<Item = (u64, u64, u64)> + 'a {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || {
        let l = live.get(i).copied();
        let f = frozen.get(j).copied();
        match (l, f) {
            (None, None) => None,
            (Some(l), None) => {
                i += 1;
                Some(l)
            }
            (None, Some(f)) => {
                j += 1;
                Some(f)
            }
            (Some(l), Some(f)) if l.0 < f.0 => {
                i += 1;
                Some(l)
            }
            (Some(l), Some(f)) if f.0 < l.0 => {
                j += 1;
                Some(f)
            }
            (Some((w, ld, ldisc)), Some((_, fd, fdisc))) => {
                i += 1;
                j += 1;
                Some((w, ld | fd, ldisc | (fdisc & !ld)))
            }
        }
    })
}

/// Replaces the file at `path` by `bytes` atomically and durably: a temporary file beside it
/// (`<name>.tmp`), written and fsynced, renamed over `path`, then the directory fsynced. A
/// crash leaves the old file or the new one (a stale temporary file is overwritten next time
/// and never read).
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let io = |op, p: &Path| {
        let p = p.to_path_buf();
        move |source| PersistError::Io {
            op,
            path: p,
            source,
        }
    };
    let tmp = temp_path(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io("create the temporary state file", &tmp))?;
    f.write_all(bytes)
        .map_err(io("write the temporary state file", &tmp))?;
    f.sync_all()
        .map_err(io("fsync the temporary state file", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io("rename the temporary state file to", path))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync the directory", dir))
}

/// Takes the lock of the state file at `path`: an exclusive flock(2) on `<path>.lock` (created
/// if missing, never removed: removing a lock file races with its next user), held while the
/// returned file is open.
fn lock(path: &Path) -> Result<fs::File, PersistError> {
    use std::os::unix::io::AsRawFd;
    let lock_path = sibling(path, ".lock");
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|source| PersistError::Io {
            op: "open the lock file",
            path: lock_path.clone(),
            source,
        })?;
    // A lock released a moment ago may still be held by a copy of its descriptor in a child
    // that this process forked and that has not yet exec'd (descriptors are close-on-exec):
    // retry for up to about 100 ms before reporting the file as taken.
    for attempt in 0.. {
        // SAFETY: flock on a file descriptor we own and keep open; no memory is involved.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            break;
        }
        let source = io::Error::last_os_error();
        if source.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(PersistError::Io {
                op: "lock",
                path: lock_path,
                source,
            });
        }
        if attempt == 50 {
            return Err(PersistError::Locked { path: lock_path });
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    Ok(f)
}

/// `<path>.tmp`, in the same directory (so that the rename is atomic).
fn temp_path(path: &Path) -> PathBuf {
    sibling(path, ".tmp")
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}
