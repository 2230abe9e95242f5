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

mod durable;
mod file;
mod outcome;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{CheckpointInfo, GenerationId, Tracker, TrackerConfig, MAX_SEQUENCE};
use durable::{lock, read_bounded, write_durably, ReadFailure};
use file::State;

pub use file::{
    StateFileError, StateFileInfo, StateKind, TRACKER_STATE_MAJOR, TRACKER_STATE_MINOR,
};
pub use outcome::{
    InspectError, LoadOutcome, PersistError, PersistOptions, ResetReason,
    DEFAULT_SEQUENCE_RESERVATION,
};

/// A tracker whose state survives a clean restart (`docs/TRACKER.md`).
///
/// Give the I/O threads clones of [`PersistentTracker::tracker`] to mark writes; call
/// [`PersistentTracker::take`] and [`PersistentTracker::commit`] on this handle (they record
/// the sequence reservation and the commit), the other checkpoint calls (`extents`, `abort`)
/// on the tracker. At shutdown, stop the writers, drop their clones, and
/// [`PersistentTracker::close`]; close on error paths too: dropping the handle without
/// `close` counts as a crash (the next open resets), and `Drop` deliberately saves nothing (a
/// drop during a panic may follow a write that completed without its mark).
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

    /// [`Tracker::adopt_lineage`] (after a rollback or failover of the replica), then a durable
    /// in-use record of the new lineage (one fsync), so that a crash from here on reports the
    /// lineage the replica now expects. If the record cannot be written, the lineage has still
    /// been adopted in memory; the handle is poisoned and the error returned. Call this rather
    /// than the tracker's own `adopt_lineage`. Blocks on file I/O.
    pub fn adopt_lineage(
        &self,
        generation: GenerationId,
        sequence: u64,
        extents: &[crate::tracker::Extent],
    ) -> Result<(), PersistError> {
        self.state
            .adopt_lineage(&self.tracker, generation, sequence, extents)
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
        // One state file, one lock, whatever name reaches it: a symlink (or `..`) to the same
        // file must take the same lock, and the file is replaced where it really is.
        let path = canonical(path.as_ref())?;
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
                reserved: issued.saturating_add(reserve).min(MAX_SEQUENCE).max(issued),
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
            f.reserved = info
                .sequence
                .saturating_add(self.reserve - 1)
                .min(MAX_SEQUENCE)
                .max(info.sequence);
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

    /// [`PersistentTracker::adopt_lineage`] on `tracker`.
    pub fn adopt_lineage(
        &self,
        tracker: &Tracker,
        generation: GenerationId,
        sequence: u64,
        extents: &[crate::tracker::Extent],
    ) -> Result<(), PersistError> {
        let mut f = self.file.lock();
        if f.poisoned {
            return Err(PersistError::Poisoned);
        }
        tracker.adopt_lineage(generation, sequence, extents)?;
        let c = tracker.control.lock();
        (f.generation, f.committed) = (c.generation, c.committed);
        f.reserved = c.issued;
        drop(c);
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

/// The real path of a state file: the file itself resolved when it exists (through any
/// symlink), else its directory resolved and the name kept.
fn canonical(path: &Path) -> Result<PathBuf, PersistError> {
    let io = |source: io::Error| PersistError::Io {
        op: "resolve the state file's path",
        path: path.to_path_buf(),
        source,
    };
    match fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let name = path.file_name().ok_or_else(|| {
                io(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the path names no file",
                ))
            })?;
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            Ok(fs::canonicalize(dir).map_err(io)?.join(name))
        }
        Err(e) => Err(io(e)),
    }
}
