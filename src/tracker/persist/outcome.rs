//! The vocabulary of a persistent tracker: how to open one, what the open made of the state
//! file, why a state was not trusted, and what can fail.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::file::StateFileError;
use crate::tracker::{GenerationId, Geometry, TrackerError};

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
    /// The activity log, if the run keeps one (then a crash costs a bounded resync; see
    /// [`ActivityLogConfig`]). `None` (the default): a crash resets.
    pub activity_log: Option<ActivityLogConfig>,
}

/// The activity log's default region size: 4 MiB (DRBD's extent).
pub const DEFAULT_REGION_SIZE: u64 = 4 << 20;
/// The activity log's default number of active regions: 1,237 (DRBD's default `al-extents`):
/// with 4 MiB regions, a crash resyncs at most 4.83 GiB beyond what changed.
pub const DEFAULT_ACTIVE_REGIONS: u32 = 1237;
/// Default number of writer handles.
pub const DEFAULT_WRITERS: u32 = 64;
/// Default size of the log before the state file is rewritten and the log starts over: 4 MiB
/// (1,024 group commits of one page).
pub const DEFAULT_LOG_LIMIT: u64 = 4 << 20;

/// How a persistent tracker's activity log is sized (`docs/TRACKER.md`, "Activity log").
///
/// A write may reach the disk only while its region is durably active. After a crash, the
/// next take holds every block written since the last commit, plus at most `active_regions x
/// region_size` bytes more (the regions that were active: the bound on the excess).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActivityLogConfig {
    /// Region size in bytes: a power of two from 64 KiB to 1 GiB, at least the block size.
    pub region_size: u64,
    /// Most regions active at once (1 to 65,536).
    pub active_regions: u32,
    /// Most writer handles at once (1 to 4,096).
    pub writers: u32,
    /// Log bytes after which the state file is rewritten and the log starts over (at least
    /// one page, at most 1 GiB; a commit does the same).
    pub log_limit: u64,
}

impl Default for ActivityLogConfig {
    fn default() -> Self {
        ActivityLogConfig {
            region_size: DEFAULT_REGION_SIZE,
            active_regions: DEFAULT_ACTIVE_REGIONS,
            writers: DEFAULT_WRITERS,
            log_limit: DEFAULT_LOG_LIMIT,
        }
    }
}

impl ActivityLogConfig {
    /// Sets the region size.
    pub fn region_size(mut self, bytes: u64) -> Self {
        self.region_size = bytes;
        self
    }

    /// Sets the number of regions active at once.
    pub fn active_regions(mut self, n: u32) -> Self {
        self.active_regions = n;
        self
    }

    /// Sets the most writer handles.
    pub fn writers(mut self, n: u32) -> Self {
        self.writers = n;
        self
    }

    /// Sets the log size that triggers a state rewrite.
    pub fn log_limit(mut self, bytes: u64) -> Self {
        self.log_limit = bytes;
        self
    }

    /// The most bytes a crash adds to the next take beyond what changed.
    pub fn bound(&self) -> u64 {
        self.region_size.saturating_mul(self.active_regions.into())
    }
}

impl PersistOptions {
    /// Options for the disk `disk_id`, no replica point, the default reservation.
    pub fn new(disk_id: [u8; 16]) -> Self {
        PersistOptions {
            disk_id,
            replica: None,
            reserve: DEFAULT_SEQUENCE_RESERVATION,
            activity_log: None,
        }
    }

    /// Keeps an activity log: a crash then continues the generation with a bounded excess
    /// instead of a full resync.
    pub fn activity_log(mut self, config: ActivityLogConfig) -> Self {
        self.activity_log = Some(config);
        self
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
    /// The last run crashed, and it kept an activity log: the same generation continues, numbers
    /// continue after `issued` (the crashed run's reservation, so none it may have handed out
    /// is reused), and the dirty set is the saved one, the log's evicted regions' blocks and
    /// every block of the regions that were active: a superset of what changed since
    /// `committed`, by at most `log_blocks` blocks.
    Recovered {
        /// The continued generation.
        generation: GenerationId,
        /// The last committed number recorded (the next take's `from_sequence`).
        committed: u64,
        /// The crashed run's reservation (the next take is `issued + 1`).
        issued: u64,
        /// Dirty blocks after recovery (what the next take holds, before new marks).
        dirty_blocks: u64,
        /// Blocks of the regions the log says were active (part of `dirty_blocks`): the
        /// bound on the excess.
        log_blocks: u64,
        /// Group-commit records replayed from the log.
        log_records: u64,
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
            LoadOutcome::Resumed { .. } | LoadOutcome::Recovered { .. } => None,
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
    /// The last run kept an activity log, and the log cannot be trusted: unreadable, or
    /// damaged in the middle (a valid record lies past an invalid one), or its records break
    /// the geometry.
    ActivityLog {
        /// What is wrong.
        what: String,
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
            R::ActivityLog { what } => write!(
                f,
                "the last run crashed and its activity log cannot be trusted: {what}"
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
    /// A writer handle was asked for, but the tracker was opened without an activity log.
    NoActivityLog,
    /// Every writer handle of the activity log is taken ([`ActivityLogConfig::writers`]).
    TooManyWriters {
        /// The most writer handles.
        max: u32,
    },
    /// [`ActivityWriter::wait`](super::ActivityWriter::wait) while writes this writer admitted
    /// are still in flight: the group commit it may have to write can evict only after every
    /// admitted write completed, so a thread that completes its own writes would wait for
    /// itself. Complete them first, or wait from a thread that completes none
    /// ([`PersistentTracker::wait`](super::PersistentTracker::wait), or `is_durable` and
    /// `flush`).
    WritesInFlight {
        /// Writes this writer admitted that have not completed.
        writes: u64,
    },
    /// The activity log's configuration is out of range.
    BadActivityLog {
        /// What is wrong.
        what: &'static str,
        /// The offending value.
        value: u64,
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
            PersistError::NoActivityLog => write!(
                f,
                "the tracker was opened without an activity log (PersistOptions::activity_log)"
            ),
            PersistError::TooManyWriters { max } => {
                write!(f, "all {max} writer handles of the activity log are taken")
            }
            PersistError::WritesInFlight { writes } => write!(
                f,
                "{writes} writes this writer admitted are still in flight: waiting could wait for them (complete them first)"
            ),
            PersistError::BadActivityLog { what, value } => {
                write!(f, "bad activity log configuration: {what} (got {value})")
            }
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
