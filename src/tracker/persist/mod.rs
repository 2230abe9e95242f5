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

mod activity;
mod al_log;
mod durable;
mod file;
mod outcome;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{CheckpointInfo, GenerationId, Tracker, TrackerConfig, MAX_SEQUENCE};
use activity::Activity;
use al_log::LogRecord;
use durable::{read_bounded, DirStorage};
use file::{LogSection, State};

#[cfg(loom)]
#[doc(hidden)]
pub use activity::loom_model;
pub use activity::{ActivityWriter, Admission, Completer, StateFileWriter, Ticket, WriteToken};
pub use durable::{ReadFailure, TrackerStorage};

pub use file::{
    LogSection as ActivityLogSection, StateFileError, StateFileInfo, StateKind, MAX_ACTIVE_REGIONS,
    TRACKER_STATE_MAJOR, TRACKER_STATE_MINOR,
};
pub use outcome::{
    ActivityLogConfig, InspectError, LoadOutcome, PersistError, PersistOptions, ResetReason,
    DEFAULT_ACTIVE_REGIONS, DEFAULT_LOG_LIMIT, DEFAULT_REGION_SIZE, DEFAULT_SEQUENCE_RESERVATION,
    DEFAULT_WRITERS,
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
        self.state.path()
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
        if state.shared.file.lock().poisoned {
            return Err(PersistError::Poisoned);
        }
        let tracker = Arc::try_unwrap(tracker).map_err(|t| PersistError::StillShared {
            others: Arc::strong_count(&t) - 1,
        })?;
        state.close(tracker)
    }

    /// A write-path handle for one I/O thread, with an activity log (else
    /// [`PersistError::NoActivityLog`]; [`PersistError::TooManyWriters`] when every handle of
    /// [`ActivityLogConfig::writers`] is taken). See [`ActivityWriter`].
    pub fn writer(&self) -> Result<ActivityWriter, PersistError> {
        ActivityWriter::new(&self.state, Arc::clone(&self.tracker))
    }

    /// [`Tracker::resize`], then a durable record of the new geometry (one state write), so
    /// that a crash from here on recovers with it: a crash before the next state write would
    /// otherwise find the old geometry and reset. Call this rather than the tracker's own
    /// `resize` when the tracker keeps an activity log. Blocks on file I/O.
    pub fn resize(&self, new_size: u64) -> Result<(), PersistError> {
        self.state.resize(&self.tracker, new_size)
    }

    /// Writes one group commit now: every cold region queued by a writer becomes durably
    /// active (one log write, one fsync). For drivers that poll tickets
    /// ([`ActivityWriter::is_durable`]) instead of blocking in [`ActivityWriter::wait`]: call it
    /// from a thread that may block. Blocks on file I/O.
    pub fn flush(&self) -> Result<(), PersistError> {
        self.state.flush(&self.tracker)
    }

    /// Waits until `ticket`'s group commit is durable, writing it when no one else is: for a
    /// thread that admits no writes itself (a driver whose writer threads must not block, or
    /// whose completions run elsewhere). A thread must not wait here while writes it alone
    /// can complete are in flight: the group commit may evict, which waits for them.
    /// ([`ActivityWriter::wait`] refuses that case for its own writes.) Blocks on file I/O.
    pub fn wait(&self, ticket: Ticket) -> Result<(), PersistError> {
        self.state.wait(&self.tracker, ticket)
    }

    /// The activity log's counters since open (`None` without one).
    pub fn activity_stats(&self) -> Option<ActivityStats> {
        self.state.activity_stats()
    }

    /// Opens on a storage other than a directory: for tests that crash it (the storage model
    /// of `tests/tracker_activity.rs`). See [`PersistentTracker::open`].
    #[doc(hidden)]
    pub fn open_on(
        storage: Box<dyn TrackerStorage>,
        config: TrackerConfig,
        options: PersistOptions,
    ) -> Result<(PersistentTracker, LoadOutcome), PersistError> {
        let (tracker, state, outcome) = StateFile::open_on(storage, config, options)?;
        let pt = PersistentTracker {
            tracker: Arc::new(tracker),
            state,
        };
        Ok((pt, outcome))
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
    pub(crate) shared: Arc<Shared>,
}

/// What the state file's handle and its writers share.
pub(crate) struct Shared {
    path: PathBuf,
    disk_id: [u8; 16],
    reserve: u64,
    storage: Box<dyn TrackerStorage>,
    file: Mutex<FileState>,
    /// The activity log's lock-free half, when the run keeps one.
    pub(crate) activity: Option<Activity>,
    /// Held (the flock) for the handle's life.
    _lock: Box<dyn std::any::Any + Send + Sync>,
}

/// What the record on disk says, and whether writing it ever failed.
struct FileState {
    generation: GenerationId,
    committed: u64,
    reserved: u64,
    poisoned: bool,
    log: Option<LogState>,
}

/// The activity log's file half (under the file lock).
struct LogState {
    config: ActivityLogConfig,
    log_id: [u8; 16],
    /// The next record's number and offset.
    number: u64,
    offset: u64,
    /// The durably active regions, ascending.
    active: Vec<u64>,
    /// Scratch vectors reused by every group commit.
    batch: Vec<u64>,
    victims: Vec<u64>,
    /// Group commits written and state rewrites since open (for reports and tests).
    stats: ActivityStats,
}

/// Counters of an activity log since open.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActivityStats {
    /// Group commits that wrote a record (each one write and one fsync of the log).
    pub group_commits: u64,
    /// Regions made active.
    pub activations: u64,
    /// Regions evicted (their dirty bits written to the log first).
    pub evictions: u64,
    /// State-file rewrites (commit, reservation, log full).
    pub state_writes: u64,
    /// Regions active now.
    pub active: u64,
    /// Whether the write path's barrier is `membarrier(2)` (then `begin` has no fence and no
    /// atomic read-modify-write) rather than a fence in every `begin`.
    pub membarrier: bool,
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
        let storage = Box::new(DirStorage::new(path.clone()));
        Self::open_on(storage, config, options)
    }

    /// [`StateFile::open`] on any [`TrackerStorage`] (tests run it on a storage model that
    /// crashes).
    pub fn open_on(
        storage: Box<dyn TrackerStorage>,
        config: TrackerConfig,
        options: PersistOptions,
    ) -> Result<(Tracker, StateFile, LoadOutcome), PersistError> {
        let path = storage.name().to_path_buf();
        let tracker = Tracker::new(config.start_clean(true))?;
        let activity = match options.activity_log {
            Some(al) => Some(check_log_config(&al, &tracker)?),
            None => None,
        };
        let lock = storage.lock()?;
        let outcome = match load_into(&tracker, storage.as_ref(), &options) {
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
        let (log_config, activity) = match activity {
            Some((c, a)) => (Some(c), Some(a)),
            None => (None, None),
        };
        let log = log_config.map(|config| LogState {
            config,
            log_id: [0; 16],
            number: 1,
            offset: 0,
            active: Vec::with_capacity(config.active_regions as usize),
            batch: Vec::with_capacity(config.active_regions.max(64) as usize),
            victims: Vec::with_capacity(config.active_regions as usize),
            stats: ActivityStats::default(),
        });
        let shared = Shared {
            path,
            disk_id: options.disk_id,
            reserve,
            storage,
            file: Mutex::new(FileState {
                generation,
                committed,
                reserved: issued.saturating_add(reserve).min(MAX_SEQUENCE).max(issued),
                poisoned: false,
                log,
            }),
            activity,
            _lock: lock,
        };
        if shared.activity.is_some() {
            shared
                .storage
                .create_log()
                .map_err(|source| PersistError::Io {
                    op: "create the activity log beside",
                    path: shared.path.clone(),
                    source,
                })?;
        }
        {
            let mut f = shared.file.lock();
            shared.write_record(&mut f, &tracker)?;
        }
        Ok((
            tracker,
            StateFile {
                shared: Arc::new(shared),
            },
            outcome,
        ))
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// [`PersistentTracker::take`] on `tracker`.
    pub fn take(&self, tracker: &Tracker) -> Result<CheckpointInfo, PersistError> {
        let s = &self.shared;
        let mut f = s.file.lock();
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
                .saturating_add(s.reserve - 1)
                .min(MAX_SEQUENCE)
                .max(info.sequence);
            if let Err(e) = s.write_record(&mut f, tracker) {
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
        let s = &self.shared;
        let mut f = s.file.lock();
        if f.poisoned {
            return Err(PersistError::Poisoned);
        }
        tracker.commit(generation, sequence)?;
        f.generation = generation;
        f.committed = sequence;
        f.reserved = f.reserved.max(sequence);
        if let Err(e) = s.write_record(&mut f, tracker) {
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
        let s = &self.shared;
        let mut f = s.file.lock();
        if f.poisoned {
            return Err(PersistError::Poisoned);
        }
        tracker.adopt_lineage(generation, sequence, extents)?;
        let c = tracker.control.lock();
        (f.generation, f.committed) = (c.generation, c.committed);
        f.reserved = c.issued;
        drop(c);
        if let Err(e) = s.write_record(&mut f, tracker) {
            f.poisoned = true;
            return Err(e);
        }
        Ok(())
    }

    /// [`PersistentTracker::resize`] on `tracker`.
    pub fn resize(&self, tracker: &Tracker, new_size: u64) -> Result<(), PersistError> {
        let s = &self.shared;
        let mut f = s.file.lock();
        if f.poisoned {
            return Err(PersistError::Poisoned);
        }
        tracker.resize(new_size)?;
        if let Err(e) = s.write_record(&mut f, tracker) {
            f.poisoned = true;
            return Err(e);
        }
        Ok(())
    }

    /// [`PersistentTracker::flush`] on `tracker`.
    pub fn flush(&self, tracker: &Tracker) -> Result<(), PersistError> {
        let s = &self.shared;
        let mut f = s.file.lock();
        s.group_commit(&mut f, tracker)
    }

    /// [`ActivityWriter::wait`] on `tracker`.
    pub fn wait(&self, tracker: &Tracker, ticket: Ticket) -> Result<(), PersistError> {
        self.shared.wait(tracker, ticket)
    }

    /// [`PersistentTracker::activity_stats`].
    pub fn activity_stats(&self) -> Option<ActivityStats> {
        let f = self.shared.file.lock();
        let membarrier = self
            .shared
            .activity
            .as_ref()
            .is_some_and(|a| a.uses_membarrier());
        f.log.as_ref().map(|l| ActivityStats {
            active: l.active.len() as u64,
            membarrier,
            ..l.stats
        })
    }

    /// [`PersistentTracker::close`]: `tracker` by value, so no other reference can mark.
    pub fn close(self, tracker: Tracker) -> Result<(), PersistError> {
        let s = &self.shared;
        if s.file.lock().poisoned {
            return Err(PersistError::Poisoned);
        }
        let bytes = tracker.encode_clean(s.disk_id);
        s.storage.replace_state(&bytes)
    }
}

impl Shared {
    /// Writes the record that says the tracker is open: with an activity log, an active state
    /// (the dirty set now, the active regions, a new log id: the log starts over); without,
    /// an in-use record.
    fn write_record(&self, f: &mut FileState, tracker: &Tracker) -> Result<(), PersistError> {
        let s = State {
            kind: StateKind::InUse,
            disk_id: self.disk_id,
            generation: f.generation,
            committed: f.committed,
            issued: f.reserved,
            geometry: tracker.geometry(),
        };
        let Some(log) = f.log.as_mut() else {
            return self.storage.replace_state(&file::encode(&s, []));
        };
        let section = LogSection {
            log_id: GenerationId::random().0,
            region_shift: log.config.region_size.trailing_zeros(),
            slots: log.config.active_regions,
            active: log.active.clone(),
        };
        // The dirty set as the tracker holds it now: a mark racing this read is in an active
        // region (admitted) and so in the section's active set; a region that is not active
        // has no write in flight (evictions wait for them, and run under this lock).
        let words = tracker.dirty_words();
        let bytes = file::encode_with(
            &State {
                kind: StateKind::Active,
                ..s
            },
            words,
            Some(&section),
        );
        self.storage.replace_state(&bytes)?;
        log.log_id = section.log_id;
        log.number = 1;
        log.offset = 0;
        log.stats.state_writes += 1;
        Ok(())
    }

    /// Waits until `ticket`'s group commit is durable, leading one when no one else is.
    fn wait(&self, tracker: &Tracker, ticket: Ticket) -> Result<(), PersistError> {
        let Some(a) = &self.activity else {
            return Err(PersistError::NoActivityLog);
        };
        loop {
            if a.is_durable(ticket) {
                return Ok(());
            }
            if a.failed() {
                return Err(PersistError::Poisoned);
            }
            // Whoever holds the lock is writing a group commit; the next waiter to get it
            // writes the next one, with every request queued meanwhile.
            let mut f = self.file.lock();
            if a.is_durable(ticket) {
                return Ok(());
            }
            self.group_commit(&mut f, tracker)?;
        }
    }

    /// One group commit: every queued cold region becomes durably active in one log record
    /// (one write, one fsync), evicting the least recently used regions when the log is full
    /// (after their writes completed; their dirty bits go in the same record).
    fn group_commit(&self, f: &mut FileState, tracker: &Tracker) -> Result<(), PersistError> {
        let Some(a) = &self.activity else {
            return Err(PersistError::NoActivityLog);
        };
        if f.poisoned || a.failed() {
            return Err(PersistError::Poisoned);
        }
        let log = f.log.as_mut().expect("an activity log has its file half");
        let batch = a.take_batch(&mut log.batch);
        if log.batch.is_empty() {
            a.publish(batch);
            return Ok(());
        }
        log.batch.truncate(a.slots);
        let free = a.slots.saturating_sub(log.active.len());
        let need = log.batch.len().saturating_sub(free);
        let mut words = Vec::new();
        if need > 0 {
            a.choose_victims(need, &mut log.victims);
            // Never more active regions than the slots (the excess bound, the state file's
            // limit, the table's room): what finds no victim waits for the next batch.
            log.batch.truncate(free + log.victims.len());
            if a.grace_period().is_err() {
                a.fail();
                f.poisoned = true;
                return Err(PersistError::Io {
                    op: "issue membarrier(2) for the activity log of",
                    path: self.path.clone(),
                    source: io::Error::last_os_error(),
                });
            }
            words = tracker.region_words(&log.victims, a.region_shift);
        }
        let record = LogRecord {
            log_id: log.log_id,
            number: log.number,
            activated: log.batch.clone(),
            evicted: log.victims.clone(),
            words,
        };
        let bytes = record.encode();
        if let Err(e) = self
            .storage
            .write_log(log.offset, &bytes)
            .and_then(|()| self.storage.sync_log())
        {
            // Never retried as if it were safe: nothing more is admitted through the log.
            // The victims stay flagged as evicting (their writes are refused as poisoned):
            // a failed write or fsync does not say the record is not durable, and if it is,
            // recovery takes the victims as evicted with the bits logged above, so a write
            // admitted to them from here on would be lost at a crash.
            a.fail();
            f.poisoned = true;
            return Err(PersistError::Io {
                op: "write and fsync the activity log of",
                path: self.path.clone(),
                source: e,
            });
        }
        log.offset += bytes.len() as u64;
        log.number += 1;
        for &v in &log.victims {
            a.remove(v);
        }
        for &r in &log.batch {
            a.insert(r);
        }
        log.active.retain(|r| log.victims.binary_search(r).is_err());
        log.active.extend_from_slice(&log.batch);
        log.active.sort_unstable();
        log.stats.group_commits += 1;
        log.stats.activations += log.batch.len() as u64;
        log.stats.evictions += log.victims.len() as u64;
        log.victims.clear();
        a.publish(batch);
        if log.offset >= log.config.log_limit {
            if let Err(e) = self.write_record(f, tracker) {
                a.fail();
                f.poisoned = true;
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Checks an activity-log configuration against the tracker and builds its in-memory half.
fn check_log_config(
    al: &ActivityLogConfig,
    tracker: &Tracker,
) -> Result<(ActivityLogConfig, Activity), PersistError> {
    let bad = |what, value| Err(PersistError::BadActivityLog { what, value });
    let g = tracker.geometry();
    let shift = al.region_size.trailing_zeros();
    if !al.region_size.is_power_of_two()
        || !(file::MIN_REGION_SHIFT..=file::MAX_REGION_SHIFT).contains(&shift)
    {
        return bad(
            "the region size must be a power of two from 64 KiB to 1 GiB",
            al.region_size,
        );
    }
    if al.region_size < u64::from(g.block_size) {
        return bad(
            "the region size must be at least the tracker's block size",
            al.region_size,
        );
    }
    if al.active_regions == 0 || al.active_regions > file::MAX_ACTIVE_REGIONS {
        return bad(
            "the active regions must number from 1 to 65,536",
            al.active_regions.into(),
        );
    }
    if al.writers == 0 || al.writers > 4096 {
        return bad("the writers must number from 1 to 4,096", al.writers.into());
    }
    if al.log_limit > al_log::MAX_LOG_LIMIT {
        // Recovery reads at most this much of a log (plus one record): a longer one would
        // make the next crash a full reset.
        return bad("the log limit must be at most 1 GiB", al.log_limit);
    }
    let config = ActivityLogConfig {
        log_limit: al.log_limit.max(al_log::RECORD_ALIGN as u64),
        ..*al
    };
    Ok((
        config,
        Activity::new(shift, al.active_regions as usize, al.writers as usize),
    ))
}

/// Loads a trusted state into `tracker` (built clean, in a fresh generation), or says why not
/// (then nothing was applied; the caller resets the tracker all the same).
fn load_into(
    tracker: &Tracker,
    storage: &dyn TrackerStorage,
    options: &PersistOptions,
) -> Result<LoadOutcome, ResetReason> {
    let current = tracker.geometry();
    let max = file::max_len(current.capacity, current.block_size);
    let bytes = match storage.read_state(max) {
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
    // An active file: the log is read and checked whole before anything is applied.
    let recovered = match &info.log {
        Some(section) => Some(read_log(storage, section, &current)?),
        None => None,
    };
    // Second pass, applying: the same bytes passed every check above, so it cannot fail
    // halfway.
    file::decode(&bytes, |r| {
        for w in r.first..r.first + r.count {
            tracker.live().merge_word(w as usize, r.dirty, r.discard);
        }
    })
    .map_err(ResetReason::Invalid)?;
    let mut log_blocks = 0;
    let mut log_records = 0;
    if let (Some(section), Some((records, active))) = (&info.log, &recovered) {
        log_records = records.len() as u64;
        // A log record's bits are newer than the state file's dirty set: a block discarded
        // before the snapshot and written since must come back a write (a merge would keep the
        // snapshot's discard, and the replica would keep zeros). A logged block that was
        // discarded last is reported as a write too: shipping what the source holds is safe.
        for rec in records {
            for &(w, bits) in &rec.words {
                tracker.live().set_word_written(w as usize, bits);
            }
        }
        let per = (1u64 << section.region_shift) / u64::from(current.block_size);
        let end_block = current.disk_size.div_ceil(current.block_size.into());
        for &r in active {
            let first = r * per;
            let last = (first + per).min(end_block);
            if first < last {
                tracker.live().set_range(first, last - 1);
                log_blocks += last - first;
            }
        }
    }
    let mut c = tracker.control.lock();
    c.generation = info.generation;
    c.committed = info.committed;
    c.issued = info.issued;
    drop(c);
    if recovered.is_none() {
        return Ok(LoadOutcome::Resumed {
            generation: info.generation,
            committed: info.committed,
            issued: info.issued,
            dirty_blocks: info.dirty_blocks,
        });
    }
    let mut dirty_blocks = 0;
    tracker
        .live()
        .for_each_dirty_word(|_, d, _| dirty_blocks += u64::from(d.count_ones()));
    Ok(LoadOutcome::Recovered {
        generation: info.generation,
        committed: info.committed,
        issued: info.issued,
        dirty_blocks,
        log_blocks,
        log_records,
    })
}

/// Reads and replays the activity log an active state file names: its records up to the torn
/// tail, and the regions active at the end.
fn read_log(
    storage: &dyn TrackerStorage,
    section: &LogSection,
    g: &crate::tracker::Geometry,
) -> Result<(Vec<LogRecord>, Vec<u64>), ResetReason> {
    let regions = section.regions_for(g.capacity);
    let blocks_per_region = (1u64 << section.region_shift) / u64::from(g.block_size);
    let limits = al_log::Limits {
        regions,
        slots: section.slots.into(),
        words: g.capacity.div_ceil(g.block_size.into()).div_ceil(64),
        blocks: g.capacity.div_ceil(g.block_size.into()),
        words_per_region: blocks_per_region.div_ceil(64) + 1,
    };
    // A log is at most its limit plus one record; the limit is not in the file, so bound it
    // by the largest the configuration allows (65,536 regions of 16,384 words, 1 GiB logs).
    let max_record = al_log::padded_len(
        section.slots as usize,
        section.slots as usize,
        (section.slots as u64 * limits.words_per_region) as usize,
    ) as u64;
    let max = al_log::MAX_LOG_LIMIT + max_record;
    let log = match storage.read_log(max) {
        Ok(b) => b,
        Err(ReadFailure::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
            // It is created before any state file names it: missing means removed.
            return Err(ResetReason::ActivityLog {
                what: "the activity log is missing".to_string(),
            });
        }
        Err(ReadFailure::Io(e)) => {
            return Err(ResetReason::ActivityLog {
                what: format!("it cannot be read: {e}"),
            })
        }
        Err(ReadFailure::TooLarge { len }) => {
            return Err(ResetReason::ActivityLog {
                what: format!("it is {len} B, larger than any log"),
            })
        }
    };
    let records = al_log::replay(&log, &section.log_id, &limits).map_err(|what| {
        ResetReason::ActivityLog {
            what: what.to_string(),
        }
    })?;
    let mut active = section.active.clone();
    for rec in &records {
        active.retain(|r| !rec.evicted.contains(r));
        active.extend_from_slice(&rec.activated);
        active.sort_unstable();
        active.dedup();
    }
    Ok((records, active))
}

impl Tracker {
    /// After a load that was not trusted: the continuity-lost signal (a new generation, every
    /// block dirty), whatever part of the file was applied.
    fn reset_for_load(&self) {
        self.lose_continuity();
    }

    /// The dirty set as `(64-block word, dirty, discard)`, ascending: the live map with the
    /// pending checkpoint (if any) merged back as [`Tracker::abort`] would (a block marked
    /// since the take keeps its newer kind), blocks past the disk end dropped. Exact only when
    /// no mark runs concurrently.
    fn dirty_words(&self) -> Vec<(u64, u64, u64)> {
        let c = self.control.lock();
        let geometry = self.geometry();
        let end_block = geometry.disk_size.div_ceil(geometry.block_size.into());
        let mut live = Vec::new();
        self.live()
            .for_each_dirty_word(|w, d, disc| live.push((w as u64, d, disc)));
        let mut frozen = Vec::new();
        if c.pending.is_some() {
            let f = self.frozen(&c);
            f.for_each_word(|w, bits| frozen.push((w as u64, bits, f.discard_leaf(w))));
        }
        merge_words(&live, &frozen)
            .filter_map(|(w, d, disc)| {
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
            })
            .collect()
    }

    /// The dirty bits (live and pending) of the blocks of `regions` (ascending) of
    /// `1 << shift` bytes, as `(64-block word, bits)`, ascending, zero words left out.
    fn region_words(&self, regions: &[u64], shift: u32) -> Vec<(u64, u64)> {
        let c = self.control.lock();
        let per = 1u64 << (shift - self.shift);
        let mut out: Vec<(u64, u64)> = Vec::new();
        let (live, frozen) = (self.live(), self.frozen(&c));
        for &r in regions {
            let (first, end) = (r * per, (r + 1) * per);
            for w in first >> 6..end.div_ceil(64) {
                let lo = first.max(w << 6) - (w << 6);
                let hi = end.min((w + 1) << 6) - (w << 6);
                let mask = if hi - lo == 64 {
                    u64::MAX
                } else {
                    ((1u64 << (hi - lo)) - 1) << lo
                };
                let mut bits = live.dirty_word(w as usize);
                if c.pending.is_some() {
                    bits |= frozen.leaf(w as usize);
                }
                bits &= mask;
                if bits == 0 {
                    continue;
                }
                match out.last_mut() {
                    Some((lw, lb)) if *lw == w => *lb |= bits,
                    _ => out.push((w, bits)),
                }
            }
        }
        out
    }

    /// The clean state file of this tracker (see [`Tracker::dirty_words`]).
    fn encode_clean(&self, disk_id: [u8; 16]) -> Vec<u8> {
        let words = self.dirty_words();
        let c = self.control.lock();
        let s = State {
            kind: StateKind::Clean,
            disk_id,
            generation: c.generation,
            committed: c.committed,
            issued: c.issued,
            geometry: self.geometry(),
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
