//! Change-block tracking: which blocks of a disk changed since the replica last caught up.
//!
//! A [`Tracker`] is shared by every I/O thread of a block driver (ublk, NBD, SPDK, tcmu, a qemu
//! filter, an agent). Each completed write calls [`Tracker::mark_write`]; a replication thread
//! periodically calls [`Tracker::take`] to freeze what changed, reads it as coalesced extents
//! with [`Tracker::extents`], ships it, and then [`Tracker::commit`]s (the replica has it) or
//! [`Tracker::abort`]s (merge it back; nothing is lost).
//!
//! ## What this module guarantees
//! - The write path (`mark_write`, `mark_discard`) is lock-free, never blocks, never allocates
//!   and never makes a system call. It is safe from any number of threads at once.
//! - A write whose mark overlaps a `take` lands in the taken set or in the next one, never in
//!   neither; a write whose mark returned before a `take` started is in that take (protocol in
//!   `bitmap.rs`; loom model in `tests/loom_tracker.rs`, stress test in `tests/tracker_race.rs`).
//! - Nothing allocates after construction: take, extent reads, commit and abort reuse the
//!   bitmaps allocated by [`Tracker::new`] (`tests/tracker_alloc.rs`).
//! - A block whose last change was a discard of the whole block is reported as an
//!   [`ExtentKind::Discard`] extent, through take, abort and commit, so the stream sends a
//!   DISCARD record instead of data. Under races a discard may be reported as a write (always
//!   safe: the data is read and shipped), never a write as a discard (protocol in `bitmap.rs`,
//!   loom scenarios `*discard*` and `*abort*`, stress test
//!   `a_write_is_never_reported_as_a_discard*`). The kind lives in the same live word as the
//!   dirty bit (a "written" bit beside it), so a write is one `fetch_or` and a take reads dirty
//!   bits and kinds with one swap; the cost is one more bit per block (about twice the memory of
//!   the dirty maps alone, see [`Tracker::memory_for`]) and none on the write path.
//! - Checkpoint numbers are unique within a generation; an aborted number is never issued again.
//!   Each checkpoint names the last committed number it builds on
//!   ([`CheckpointInfo::from_sequence`]), and [`Tracker::commit`] takes the generation and
//!   number the replica reports as applied.
//! - Taking, iterating and committing cost time in proportion to the dirty blocks, not the disk.
//! - Every checkpoint names its [`GenerationId`] and sequence number. The generation changes
//!   whenever tracking continuity is lost, so a consumer never mistakes a reset for "nothing
//!   changed": a new generation from the tracker means a full resync. The one other way a
//!   generation changes is [`Tracker::adopt_lineage`]: a replica store that rolled back names
//!   its new lineage and the extents it needs, explicitly.
//!
//! ## When to call `mark_write`
//! Call it when a write completes (its data is readable from the source); for crash safety,
//! admit the write through an activity log before it is submitted (below). A mark made after completion is what makes
//! the checkpoint protocol exact: if the mark lands in checkpoint N, the data was already on the
//! source when N was taken, so reading the source after `take` ships it.
//!
//! ## Restart without resync
//! [`PersistentTracker`] keeps the state in a small checksummed file (`docs/TRACKER.md`): a
//! clean close and open continue the generation and sequence numbers with exactly the changed
//! blocks; a crashed run without an activity log (below), or any state file that cannot be
//! trusted, is a new generation with every block dirty, and the open says why
//! ([`ResetReason`]).
//!
//! ## A crash costs a bounded resync
//! With an activity log ([`PersistOptions::activity_log`]), a driver admits each write before
//! submitting it ([`ActivityWriter::begin`]: lock-free on an active region; a cold region waits
//! for one group commit) and completes it after ([`ActivityWriter::complete`], the ordinary mark
//! and a release). After a crash the load is [`LoadOutcome::Recovered`]: the same generation, and
//! the next take holds every block written since the last commit plus at most the log's bound
//! (`docs/TRACKER.md`, "Activity log"; protocol in `persist/activity.rs`).

mod bitmap;
mod epoch;
mod error;
mod extent;
mod persist;
mod stats;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use bitmap::{FrozenMap, Held, LiveMap, NO_DISCARD};
use epoch::{writer_slot, Epochs};
use stats::{Counters, Totals, SLOTS};

pub use error::TrackerError;
pub use extent::{Extent, ExtentKind, GenerationId};
pub use persist::{
    ActivityLogConfig, ActivityLogSection, ActivityStats, ActivityWriter, Admission, Completer,
    InspectError, LoadOutcome, PersistError, PersistOptions, PersistentTracker, ReadFailure,
    ResetReason, StateFile, StateFileError, StateFileInfo, StateFileWriter, StateKind, Ticket,
    TrackerStorage, WriteToken, DEFAULT_ACTIVE_REGIONS, DEFAULT_LOG_LIMIT, DEFAULT_REGION_SIZE,
    DEFAULT_SEQUENCE_RESERVATION, DEFAULT_WRITERS, MAX_ACTIVE_REGIONS, TRACKER_STATE_MAJOR,
    TRACKER_STATE_MINOR,
};

/// The activity log's lock-free half for the loom model (`tests/loom_activity.rs`) only.
#[cfg(loom)]
#[doc(hidden)]
pub use persist::loom_model as loom_activity;

/// Smallest tracking granularity (bytes).
pub const MIN_GRANULARITY: u32 = 512;
/// Largest tracking granularity (bytes).
pub const MAX_GRANULARITY: u32 = 1 << 20;
/// Largest disk (and capacity) a tracker accepts: 1 EiB.
pub const MAX_DISK_SIZE: u64 = 1 << 60;
/// The highest checkpoint number a tracker adopts (`adopt_lineage`) or loads from a state
/// file (2^62): lineages and state files beyond it are refused, so that 2^62 numbers always
/// remain and `take` never wraps a number and issues it twice (at a million checkpoints a
/// second they last 146,000 years).
pub const MAX_SEQUENCE: u64 = 1 << 62;
/// Largest number of tracked blocks (2^40: 512 PiB at 512 B, 64 TiB needs 2^37 at 512 B).
pub const MAX_BLOCKS: u64 = 1 << 40;
/// The default granularity: 4 KiB (a random 4 KiB write ships 4 KiB), for disks whose tracker
/// fits [`DEFAULT_MEMORY_BUDGET`] at it (about 500 GiB); larger disks get the finest power of
/// two that fits (see [`Granularity::Default`] and [`Tracker::default_granularity`]).
pub const DEFAULT_GRANULARITY: u32 = 4 << 10;
/// The memory the default granularity stays within: 64 MiB.
pub const DEFAULT_MEMORY_BUDGET: u64 = 64 << 20;

/// How finely a tracker records changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    /// The library's default: [`DEFAULT_GRANULARITY`] (4 KiB), or for disks whose tracker would
    /// need more than [`DEFAULT_MEMORY_BUDGET`] at it, the finest power of two that fits
    /// (8 KiB for 1 TiB, 32 KiB for 4 TiB, 512 KiB for 64 TiB).
    Default,
    /// A fixed block size: a power of two from 512 B to 1 MiB, at least the sector size.
    Bytes(u32),
    /// The finest granularity whose bitmaps fit this many bytes (for the capacity).
    Auto {
        /// Memory budget in bytes for [`Tracker::memory_usage`].
        memory_budget: u64,
    },
}

/// How to build a tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Disk size in bytes (a multiple of `sector_size`, not zero).
    pub disk_size: u64,
    /// Logical sector size: 512 or 4096.
    pub sector_size: u32,
    /// Tracking granularity.
    pub granularity: Granularity,
    /// Largest size the disk may be resized to (defaults to `disk_size`). The bitmaps are sized
    /// for it up front so that a resize never allocates.
    pub capacity: Option<u64>,
    /// Start with no block dirty. The default (`false`) starts with every block dirty, because a
    /// new tracker knows nothing about what the replica has: its first checkpoint is a full sync.
    /// Set it only when the replica is known to equal the disk right now.
    pub start_clean: bool,
    /// Make the bitmaps resident at creation (every page written once), so that no mark ever
    /// takes a page fault on a page it is the first to touch. `None` (the default): resident
    /// when the tracker needs at most [`RESIDENT_LIMIT`] (64 MiB, every default granularity);
    /// above that the untouched pages stay uncommitted, as zero pages cost nothing until
    /// written, and a first mark in one may fault.
    pub resident: Option<bool>,
}

/// The tracker memory up to which bitmaps are made resident by default: 64 MiB
/// ([`TrackerConfig::resident`]).
pub const RESIDENT_LIMIT: u64 = 64 << 20;

impl TrackerConfig {
    /// A disk of `disk_size` bytes with 512 B sectors and the default granularity
    /// ([`Granularity::Default`]: 4 KiB up to about 500 GiB), starting dirty.
    pub fn new(disk_size: u64) -> Self {
        TrackerConfig {
            disk_size,
            sector_size: 512,
            granularity: Granularity::Default,
            capacity: None,
            start_clean: false,
            resident: None,
        }
    }

    /// Makes the bitmaps resident at creation, or leaves them to be committed on first touch
    /// (see the field's documentation).
    pub fn resident(mut self, resident: bool) -> Self {
        self.resident = Some(resident);
        self
    }

    /// Sets the logical sector size.
    pub fn sector_size(mut self, sector_size: u32) -> Self {
        self.sector_size = sector_size;
        self
    }

    /// Sets a fixed granularity in bytes.
    pub fn granularity(mut self, bytes: u32) -> Self {
        self.granularity = Granularity::Bytes(bytes);
        self
    }

    /// Chooses the finest granularity that fits `bytes` of tracker memory.
    pub fn memory_budget(mut self, bytes: u64) -> Self {
        self.granularity = Granularity::Auto {
            memory_budget: bytes,
        };
        self
    }

    /// Sets the capacity (largest size a resize may reach).
    pub fn capacity(mut self, bytes: u64) -> Self {
        self.capacity = Some(bytes);
        self
    }

    /// Starts with no dirty block (see the field's documentation).
    pub fn start_clean(mut self, clean: bool) -> Self {
        self.start_clean = clean;
        self
    }
}

/// A tracker's resolved geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Current disk size in bytes.
    pub disk_size: u64,
    /// Logical sector size in bytes.
    pub sector_size: u32,
    /// Tracking granularity (block size) in bytes.
    pub block_size: u32,
    /// Largest size a resize may reach.
    pub capacity: u64,
}

/// What a [`Tracker::take`] froze.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The tracker generation this checkpoint belongs to.
    pub generation: GenerationId,
    /// This checkpoint's number: 1 for the first take of a generation, then the last number
    /// issued plus one. Numbers are unique within a generation: an aborted checkpoint's number
    /// is never issued again (the next take's set is a superset of the aborted one, under a new
    /// number), so a replica can never confuse the two.
    pub sequence: u64,
    /// The last committed sequence number of this generation (0 if none; the adopted sequence
    /// after [`Tracker::adopt_lineage`] until the next commit). This checkpoint's set
    /// is the union of every change since that commit, so a stream for it (from `from_sequence`
    /// to `sequence`) is correct on a replica at any point `s` of this generation with
    /// `from_sequence <= s < sequence`.
    pub from_sequence: u64,
    /// Disk size when the checkpoint was taken; extents never reach past it.
    pub disk_size: u64,
    /// Tracking granularity in bytes.
    pub block_size: u32,
    /// Dirty blocks in the set.
    pub dirty_blocks: u64,
    /// Distinct dirty bytes: dirty blocks times the block size, clipped at the disk end.
    pub dirty_bytes: u64,
    /// Number of coalesced extents [`Tracker::extents`] will return.
    pub extent_count: u64,
}

impl CheckpointInfo {
    /// A cursor positioned at the first extent of this checkpoint.
    pub fn cursor(&self) -> ExtentCursor {
        ExtentCursor {
            generation: self.generation,
            sequence: self.sequence,
            next_block: 0,
        }
    }
}

/// A resumable position in a taken checkpoint's extents. Plain data: copy it, store it, resume.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtentCursor {
    /// The checkpoint's generation.
    pub generation: GenerationId,
    /// The checkpoint's sequence number.
    pub sequence: u64,
    /// First block not yet returned.
    pub next_block: u64,
}

/// Counters for churn checks. Byte counts are what callers passed to the mark functions.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TrackerStats {
    /// `mark_write` calls (non-empty ones).
    pub writes: u64,
    /// Bytes passed to `mark_write`.
    pub bytes_written: u64,
    /// `mark_discard` calls (non-empty ones).
    pub discards: u64,
    /// Bytes passed to `mark_discard`.
    pub bytes_discarded: u64,
    /// Blocks that went from clean to dirty through the mark functions.
    pub blocks_dirtied: u64,
    /// Checkpoints taken, committed and aborted.
    pub checkpoints_taken: u64,
    /// Checkpoints committed.
    pub checkpoints_committed: u64,
    /// Checkpoints aborted.
    pub checkpoints_aborted: u64,
    /// The last interval: between the two most recent takes (or creation and the first take).
    pub last_interval: IntervalStats,
}

/// Churn over one interval between two takes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct IntervalStats {
    /// Length of the interval.
    pub duration: Duration,
    /// Bytes written and discarded during it (what the workload did).
    pub bytes_marked: u64,
    /// Distinct dirty bytes in the checkpoint taken at its end (what must be shipped).
    pub distinct_bytes: u64,
}

impl IntervalStats {
    /// Bytes marked per second over the interval (0 for an empty interval).
    pub fn marked_bytes_per_sec(&self) -> f64 {
        per_sec(self.bytes_marked, self.duration)
    }

    /// Distinct dirty bytes per second over the interval: the churn a replica must absorb.
    pub fn distinct_bytes_per_sec(&self) -> f64 {
        per_sec(self.distinct_bytes, self.duration)
    }
}

fn per_sec(bytes: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        bytes as f64 / s
    } else {
        0.0
    }
}

/// The change-block tracker. `Send + Sync`: share it by reference or `Arc` with every I/O thread.
pub struct Tracker {
    shift: u32,
    sector_size: u32,
    capacity: u64,
    disk_size: AtomicU64,
    /// The two maps: writers mark in `maps[epochs.live()]`; the other holds the taken
    /// checkpoint, read in place, and is empty when none is pending (see `epoch.rs`).
    maps: [LiveMap; 2],
    epochs: Epochs,
    counters: Counters,
    control: Mutex<Control>,
}

/// Control-path state, behind one lock that the write path never touches.
struct Control {
    /// What the pending checkpoint's map holds (zeros when none is pending).
    held: Held,
    /// A sparse pending checkpoint's leaves (see `LiveMap::settle`).
    list: Box<[u64]>,
    pending: Option<CheckpointInfo>,
    generation: GenerationId,
    /// Last sequence committed in `generation` (0 if none).
    committed: u64,
    /// Last sequence issued by `take` in `generation` (0 if none); never decreases within it.
    issued: u64,
    taken: u64,
    commits: u64,
    aborts: u64,
    interval_start: Instant,
    interval_totals: Totals,
    last_interval: IntervalStats,
}

impl Tracker {
    /// Builds a tracker, allocating its bitmaps now (two maps of the blocks' dirty and written
    /// bits: one live, one for the taken checkpoint). Fails with
    /// a message naming the bad value.
    pub fn new(config: TrackerConfig) -> Result<Tracker, TrackerError> {
        let bad = |what, value| Err(TrackerError::InvalidGeometry { what, value });
        let TrackerConfig {
            disk_size,
            sector_size,
            granularity,
            capacity,
            start_clean,
            resident,
        } = config;
        if sector_size != 512 && sector_size != 4096 {
            return bad("the sector size must be 512 or 4096", sector_size.into());
        }
        if disk_size == 0 {
            return bad("the disk size must not be zero", 0);
        }
        if disk_size % u64::from(sector_size) != 0 {
            return bad(
                "the disk size must be a multiple of the sector size",
                disk_size,
            );
        }
        let capacity = capacity.unwrap_or(disk_size);
        if capacity < disk_size {
            return bad("the capacity must be at least the disk size", capacity);
        }
        if capacity > MAX_DISK_SIZE {
            return bad("the capacity must be at most 1 EiB", capacity);
        }
        if capacity % u64::from(sector_size) != 0 {
            return bad(
                "the capacity must be a multiple of the sector size",
                capacity,
            );
        }
        let block_size = match granularity {
            Granularity::Bytes(g) => {
                if !g.is_power_of_two() || !(MIN_GRANULARITY..=MAX_GRANULARITY).contains(&g) {
                    return bad(
                        "the granularity must be a power of two from 512 B to 1 MiB",
                        g.into(),
                    );
                }
                g
            }
            Granularity::Auto { memory_budget } => {
                Self::granularity_for_budget(capacity, sector_size, memory_budget)?
            }
            Granularity::Default => Self::default_granularity(capacity, sector_size),
        };
        if block_size < sector_size {
            return bad(
                "the granularity must not be smaller than the sector size",
                block_size.into(),
            );
        }
        let blocks = capacity.div_ceil(block_size.into());
        if blocks > MAX_BLOCKS {
            return bad("capacity / granularity must be at most 2^40 blocks", blocks);
        }
        let oom = || TrackerError::OutOfMemory {
            bytes: Self::memory_for(capacity, block_size) - Self::fixed_bytes(),
        };
        let maps = [
            LiveMap::new(blocks).ok_or_else(oom)?,
            LiveMap::new(blocks).ok_or_else(oom)?,
        ];
        let mut list = bitmap::zeroed_list(blocks).ok_or_else(oom)?;
        if resident.unwrap_or(Self::memory_for(capacity, block_size) <= RESIDENT_LIMIT) {
            for map in &maps {
                map.prefault();
            }
            bitmap::prefault_list(&mut list);
        }
        let tracker = Tracker {
            shift: block_size.trailing_zeros(),
            sector_size,
            capacity,
            disk_size: AtomicU64::new(disk_size),
            maps,
            epochs: Epochs::new(),
            counters: Counters::new(),
            control: Mutex::new(Control {
                held: Held::default(),
                list,
                pending: None,
                generation: GenerationId::random(),
                committed: 0,
                issued: 0,
                taken: 0,
                commits: 0,
                aborts: 0,
                interval_start: Instant::now(),
                interval_totals: Totals::default(),
                last_interval: IntervalStats::default(),
            }),
        };
        if !start_clean {
            tracker.set_all(disk_size);
        }
        Ok(tracker)
    }

    /// Bytes of tracker memory for a disk of `capacity` bytes at `block_size` granularity:
    /// two maps of two bits per block (dirty and written, in the same word), one live and one
    /// holding the taken checkpoint, with their summary levels, a list of one 16-byte entry per
    /// 4,096 blocks for sparse takes, plus the fixed part (the writers' slots and counters).
    ///
    /// Total for every input: a `block_size` of 0 is taken as 1, and a figure that does not fit
    /// 64 bits saturates at `u64::MAX` (no such tracker can be built anyway).
    pub fn memory_for(capacity: u64, block_size: u32) -> u64 {
        let blocks = capacity.div_ceil(u64::from(block_size.max(1)));
        LiveMap::words_for(blocks)
            .saturating_mul(2)
            .saturating_add(bitmap::list_words(LiveMap::leaves(blocks)))
            .saturating_mul(8)
            .saturating_add(Self::fixed_bytes())
    }

    fn fixed_bytes() -> u64 {
        (std::mem::size_of::<Tracker>() + Counters::bytes_for_new() + Epochs::bytes_for_new())
            as u64
    }

    /// The granularity [`Granularity::Default`] gives a disk of `capacity` bytes with sectors
    /// of `sector_size`: 4 KiB (at least the sector size), doubled while the tracker would need
    /// more than [`DEFAULT_MEMORY_BUDGET`] (or more than 2^40 blocks), up to 1 MiB.
    pub fn default_granularity(capacity: u64, sector_size: u32) -> u32 {
        let mut g = DEFAULT_GRANULARITY.max(sector_size).min(MAX_GRANULARITY);
        while g < MAX_GRANULARITY
            && (capacity.div_ceil(g.into()) > MAX_BLOCKS
                || Self::memory_for(capacity, g) > DEFAULT_MEMORY_BUDGET)
        {
            g <<= 1;
        }
        g
    }

    fn granularity_for_budget(
        capacity: u64,
        sector: u32,
        budget: u64,
    ) -> Result<u32, TrackerError> {
        let mut g = MIN_GRANULARITY.max(sector);
        while g <= MAX_GRANULARITY {
            let blocks = capacity.div_ceil(g.into());
            if blocks <= MAX_BLOCKS && Self::memory_for(capacity, g) <= budget {
                return Ok(g);
            }
            g <<= 1;
        }
        Err(TrackerError::BudgetTooSmall {
            budget,
            needed: Self::memory_for(capacity, MAX_GRANULARITY),
        })
    }

    /// Records that `len` bytes at `offset` were written.
    ///
    /// Lock-free, never blocks, never allocates; any thread. The mark announces itself in its
    /// thread's own slot (two plain stores, and no fence where the kernel has `membarrier(2)`;
    /// see `epoch.rs`), then per leaf word touched (32 blocks, their dirty and written bits in
    /// one word): a load, and a `fetch_or` only if a bit is clear; a writer that makes a word
    /// non-zero also sets the summary bits above it. Unaligned ranges mark every block they
    /// touch. `len == 0` is a no-op. A range past the disk end marks nothing and returns
    /// [`TrackerError::OutOfRange`] naming the values.
    #[inline]
    pub fn mark_write(&self, offset: u64, len: u64) -> Result<(), TrackerError> {
        self.mark(offset, len, false)
    }

    /// Records that `len` bytes at `offset` were discarded (trimmed/unmapped). The blocks become
    /// dirty like a write (the replica must learn of it); statistics count it apart.
    ///
    /// Blocks the range covers whole are remembered as discarded until a later write to them,
    /// through take, abort and commit: [`Tracker::extents`] reports them as
    /// [`ExtentKind::Discard`], so the stream sends a DISCARD record instead of reading the
    /// source. The partial blocks at either end are writes. Under races a discard may be
    /// reported as a write (always safe), never a write as a discard.
    #[inline]
    pub fn mark_discard(&self, offset: u64, len: u64) -> Result<(), TrackerError> {
        self.mark(offset, len, true)
    }

    #[inline(always)]
    fn mark(&self, offset: u64, len: u64, discard: bool) -> Result<(), TrackerError> {
        if len == 0 {
            return Ok(());
        }
        let disk_size = self.disk_size.load(Ordering::Acquire);
        let end = match offset.checked_add(len) {
            Some(end) if end <= disk_size => end,
            _ => {
                return Err(TrackerError::OutOfRange {
                    offset,
                    len,
                    disk_size,
                })
            }
        };
        let (first, last) = (offset >> self.shift, (end - 1) >> self.shift);
        let disc = if discard {
            // Only whole blocks become discards (the disk's last block is whole up to the disk
            // end); the partial blocks at either end are writes.
            let full_end = if end == disk_size {
                end.div_ceil(self.block_size().into())
            } else {
                end >> self.shift
            };
            let full_first = offset.div_ceil(self.block_size().into());
            if full_first < full_end {
                (full_first, full_end - 1)
            } else {
                NO_DISCARD
            }
        } else {
            NO_DISCARD
        };
        let slot = writer_slot();
        if slot < SLOTS {
            // The common case, a thread with a slot of its own: one test of the slot number.
            let live = self.epochs.enter_own(slot);
            let newly = self.maps[live].mark_span(first, last, disc.0, disc.1);
            self.epochs.exit_own(slot);
            self.counters.record(slot, discard, len, newly);
        } else {
            self.mark_shared(first, last, disc, discard, len);
        }
        Ok(())
    }

    /// [`Tracker::mark`] from a thread beyond the [`SLOTS`] that have a slot of their own.
    #[cold]
    #[inline(never)]
    fn mark_shared(&self, first: u64, last: u64, disc: (u64, u64), discard: bool, len: u64) {
        let live = self.epochs.enter_shared();
        let newly = self.maps[live].mark_span(first, last, disc.0, disc.1);
        self.epochs.exit_shared(live);
        self.counters.record(SLOTS, discard, len, newly);
    }

    /// Marks the whole disk dirty: a full resync on the next checkpoint, same generation.
    pub fn mark_all(&self) {
        let _c = self.control.lock();
        self.set_all(self.disk_size.load(Ordering::Acquire));
    }

    fn set_all(&self, disk_size: u64) {
        self.live().set_range(0, (disk_size - 1) >> self.shift);
    }

    /// Declares tracking continuity lost (for example the driver restarted and writes may have
    /// gone unrecorded): starts a new generation at sequence 1 and marks the whole disk dirty.
    pub fn lose_continuity(&self) {
        let mut c = self.control.lock();
        c.generation = GenerationId::random();
        c.committed = 0;
        c.issued = 0;
        self.set_all(self.disk_size.load(Ordering::Acquire));
    }

    /// Adopts a lineage chosen by the replica store after it rolled its head back: the store
    /// is now at point `sequence` of generation `generation` (a new id it chose), and `extents`
    /// are the ranges whose contents differ between that point and the newest point it had.
    /// The next [`Tracker::take`] then builds the stream the store accepts: generation
    /// `generation`, `from_sequence == sequence`, a number above `sequence`, and every block of
    /// `extents` plus everything that was dirty and not committed.
    ///
    /// This is the only way a generation chosen outside the tracker enters it; a tracker never
    /// takes one from a stream or a commit. In order, under the control lock (which writers
    /// never take):
    /// 1. Checks, before changing anything: every extent must lie within the current disk size
    ///    ([`TrackerError::OutOfRange`] naming the first bad one); `sequence` must not be
    ///    `u64::MAX`; and if `generation` is the tracker's current generation, `sequence` must
    ///    be at least the last number issued in it, else numbers would be issued twice
    ///    ([`TrackerError::LineageRejected`]). On any error nothing changed.
    /// 2. A pending (taken, not committed) checkpoint is folded back as by [`Tracker::abort`]:
    ///    its blocks stay dirty, its number is never issued again (moot: the old generation is
    ///    left), it counts as an aborted checkpoint, and a later [`Tracker::commit`] of it, or of
    ///    anything in the old generation, is refused. Unlike `abort`, its whole-block discards
    ///    come back as **writes** (the source's current contents, zeros for a block still
    ///    discarded, are read and shipped): on this rare disaster-recovery path the tracker
    ///    gives up thinness for simplicity (`abort`'s merge of discards is race-free, loom
    ///    `an_abort_then_a_take_racing_a_write_is_never_a_discard`). Live discards (not taken)
    ///    stay discards.
    /// 3. Every block `extents` touch is marked dirty as a **write**, like
    ///    [`Tracker::mark_write`] (partial blocks included; unsorted, overlapping and empty
    ///    extents within the disk are fine; an extent's `kind` is ignored). A write, not a
    ///    discard: the replica is now at the old point and holds old data there, and only
    ///    reading the source's current contents is right whatever the source holds now (data,
    ///    or zeros of a block it discarded since); a discard would unmap data the source still
    ///    has. Such a block that was dirty as a discard becomes a write (costs reading it,
    ///    never correctness). The marks are not counted in [`TrackerStats`] (they are not
    ///    workload writes).
    /// 4. The generation becomes `generation` and the last committed number `sequence`; numbers
    ///    are issued from `sequence + 1` on, unique in the new generation as always.
    ///
    /// Adopting the current (`generation`, `sequence`) again before any take is idempotent
    /// apart from marking `extents` again. After a take in the adopted lineage the same call
    /// is refused (that number was issued); the lineage is already in place.
    ///
    /// Concurrent `mark_write` and `mark_discard` calls are never lost: the live set is not
    /// taken here, only merged into (the abort's protocol) and marked (the write path's), so
    /// a mark that races this call is in the next take or a later one, and a mark that returned
    /// before this call started is in the next take (loom model
    /// `a_write_racing_an_adopt_is_never_lost` in `tests/loom_tracker.rs`). Allocates nothing;
    /// costs time in proportion to the pending checkpoint's dirty words plus the extents.
    pub fn adopt_lineage(
        &self,
        generation: GenerationId,
        sequence: u64,
        extents: &[Extent],
    ) -> Result<(), TrackerError> {
        let mut guard = self.control.lock();
        let c = &mut *guard;
        // Resize takes the control lock too: the size checked here is the one marked against.
        let disk_size = self.disk_size.load(Ordering::Acquire);
        for e in extents {
            match e.checked_end() {
                Some(end) if end <= disk_size => {}
                _ => {
                    return Err(TrackerError::OutOfRange {
                        offset: e.offset,
                        len: e.len,
                        disk_size,
                    })
                }
            }
        }
        let reject = |reason| {
            Err(TrackerError::LineageRejected {
                reason,
                generation,
                sequence,
                current_generation: c.generation,
                issued: c.issued,
            })
        };
        if sequence >= MAX_SEQUENCE {
            return reject("the sequence is at or past the highest checkpoint number (2^62)");
        }
        if generation == c.generation && sequence < c.issued {
            return reject(
                "the generation is the current one and the sequence is below the last number issued in it (numbers would be issued twice)",
            );
        }
        // Discards demoted to writes: see the doc comment, step 2.
        self.fold_back(c, false);
        for e in extents.iter().filter(|e| e.len > 0) {
            let last = (e.offset + e.len - 1) >> self.shift;
            self.live().set_range(e.offset >> self.shift, last);
        }
        c.generation = generation;
        c.committed = sequence;
        c.issued = sequence;
        Ok(())
    }

    /// Freezes the blocks changed since the last committed checkpoint. Writes go on into a new
    /// set meanwhile. Fails with [`TrackerError::TakeInProgress`] if a checkpoint is already
    /// taken. Takes the control lock (never contended by the write path); no allocation.
    ///
    /// The map writers marked in becomes the checkpoint, read in place: the take makes the
    /// other (empty) map live, waits for the marks still in progress in the old one (never the
    /// other way round: no mark waits for a take), then walks the old one once to drop blocks
    /// past the disk end and count the blocks and runs. No copy; time in proportion to the
    /// dirty words. Where `membarrier(2)` keeps failing (it can fail with `ENOMEM`; the take
    /// tries 320 times over about 10 ms), the take cannot vouch for the marks in progress and
    /// is a full resync in a new generation instead (every block, `from_sequence` 0), which
    /// covers any mark; its map stays full after its commit, so the take after the next one
    /// is a full one too (then taken after a barrier that held).
    pub fn take(&self) -> Result<CheckpointInfo, TrackerError> {
        let mut guard = self.control.lock();
        let c = &mut *guard;
        if let Some(p) = c.pending {
            return Err(TrackerError::TakeInProgress {
                sequence: p.sequence,
            });
        }
        let disk_size = self.disk_size.load(Ordering::Acquire);
        // The other map is empty here (commit and abort clear it): writers go on in it, and the
        // one they leave is the checkpoint once every mark in progress in it has returned.
        let (old, held) = self.epochs.flip();
        let end_block = disk_size.div_ceil(self.block_size().into());
        let taken = &self.maps[old];
        c.held = if held {
            // Blocks past the end can only be left by writes that raced a shrink: dropped here.
            taken.settle(end_block, &mut c.list)
        } else {
            // The barrier kept failing, so a mark in progress may not have been seen, and may
            // still be on its way: the take cannot vouch for its set. Continuity is lost: the
            // checkpoint is the whole disk in a new generation (a full resync), which covers any
            // mark, wherever it landed. The map is filled with stores and not walked, so that
            // such a mark finds nothing left to set and no store of the take's races it (a late
            // discard may still turn a block of this take into a discard: it is one).
            c.generation = GenerationId::random();
            c.committed = 0;
            c.issued = 0;
            taken.fill(end_block)
        };
        let (dirty_blocks, extent_count) = (c.held.blocks, c.held.runs);
        let mut dirty_bytes = dirty_blocks << self.shift;
        let tail_block = (disk_size - 1) >> self.shift;
        if self.frozen(c).leaf((tail_block >> 6) as usize) & (1 << (tail_block & 63)) != 0 {
            // The last block may reach past the disk end: count only the bytes that exist.
            dirty_bytes -= ((tail_block + 1) << self.shift) - disk_size;
        }
        let info = CheckpointInfo {
            generation: c.generation,
            sequence: c.issued + 1,
            from_sequence: c.committed,
            disk_size,
            block_size: self.block_size(),
            dirty_blocks,
            dirty_bytes,
            extent_count,
        };
        let now = Instant::now();
        let totals = self.counters.totals();
        c.last_interval = IntervalStats {
            duration: now.saturating_duration_since(c.interval_start),
            bytes_marked: (totals.write_bytes + totals.discard_bytes)
                - (c.interval_totals.write_bytes + c.interval_totals.discard_bytes),
            distinct_bytes: dirty_bytes,
        };
        c.interval_start = now;
        c.interval_totals = totals;
        c.taken += 1;
        c.issued = info.sequence;
        c.pending = Some(info);
        Ok(info)
    }

    /// The pending (taken, not yet committed or aborted) checkpoint, if any.
    pub fn pending(&self) -> Option<CheckpointInfo> {
        self.control.lock().pending
    }

    /// Reads the next coalesced extents of the taken checkpoint into `out`, ascending and
    /// non-overlapping, and advances `cursor`. Returns how many were written; 0 means the end.
    /// Costs time in proportion to the dirty blocks read; no allocation.
    ///
    /// An empty `out` is [`TrackerError::EmptyExtentBuffer`] unless the cursor is at the end
    /// (then `Ok(0)`): 0 must never be mistaken for the end while extents remain.
    ///
    /// The cursor is plain data: a copy resumes where it was taken. `next_block` may be any
    /// block number (a value past the last block of the checkpoint simply reads as the end); a
    /// position inside an extent returns the rest of that extent first. A cursor of another
    /// checkpoint (generation or sequence) is [`TrackerError::WrongCheckpoint`].
    pub fn extents(
        &self,
        cursor: &mut ExtentCursor,
        out: &mut [Extent],
    ) -> Result<usize, TrackerError> {
        let c = self.control.lock();
        let p = Self::check_pending(&c, cursor.sequence, Some(cursor.generation))?;
        let end_block = p.disk_size.div_ceil(self.block_size().into());
        let pos = cursor.next_block;
        if out.is_empty() {
            return match self.frozen(&c).next_set(pos).filter(|&b| b < end_block) {
                Some(_) => Err(TrackerError::EmptyExtentBuffer { next_block: pos }),
                None => Ok(0),
            };
        }
        let (shift, disk_size) = (self.shift, p.disk_size);
        let mut n = 0;
        cursor.next_block = self
            .frozen(&c)
            .runs_from(pos, end_block, |start, stop, discard| {
                let Some(slot) = out.get_mut(n) else {
                    return false;
                };
                let offset = start << shift;
                let end = (stop << shift).min(disk_size);
                *slot = if discard {
                    Extent::discard(offset, end - offset)
                } else {
                    Extent::new(offset, end - offset)
                };
                n += 1;
                true
            });
        Ok(n)
    }

    fn check_pending(
        c: &Control,
        sequence: u64,
        generation: Option<GenerationId>,
    ) -> Result<CheckpointInfo, TrackerError> {
        let p = c.pending.ok_or(TrackerError::NoCheckpoint)?;
        let given_generation = generation.unwrap_or(p.generation);
        if p.sequence != sequence || given_generation != p.generation {
            return Err(TrackerError::WrongCheckpoint {
                pending_generation: p.generation,
                pending: p.sequence,
                given_generation,
                given: sequence,
            });
        }
        Ok(p)
    }

    /// The replica has applied checkpoint (`generation`, `sequence`): forget its blocks.
    ///
    /// Pass what the replica *reported* as applied, not what was sent: both must equal the
    /// pending checkpoint's, else [`TrackerError::WrongCheckpoint`] (and nothing changes), so a
    /// checkpoint the replica did not apply can never be committed.
    pub fn commit(&self, generation: GenerationId, sequence: u64) -> Result<(), TrackerError> {
        let mut guard = self.control.lock();
        let c = &mut *guard;
        let p = Self::check_pending(c, sequence, Some(generation))?;
        if c.held.filled {
            // A full resync whose marks in progress were not waited for: one may have landed
            // after the extents were read. The map stays full, the next take but one takes it
            // again (after a barrier that holds), and only its commit clears it.
            c.held = Held::default();
        } else {
            self.clear_taken(c);
        }
        if p.generation == c.generation {
            c.committed = p.sequence;
        }
        c.commits += 1;
        c.pending = None;
        Ok(())
    }

    /// Checkpoint `sequence` was not delivered: merge its blocks back into the live set, so the
    /// next take includes them again (under a new sequence number: numbers are never reused).
    /// Lock-free with respect to concurrent writers (they mark on in the live map, which the
    /// merge only ORs into).
    pub fn abort(&self, sequence: u64) -> Result<(), TrackerError> {
        let mut guard = self.control.lock();
        let c = &mut *guard;
        Self::check_pending(c, sequence, None)?;
        self.fold_back(c, true);
        Ok(())
    }

    /// Merges the pending checkpoint (if any) back into the live set and forgets it: the abort
    /// protocol of `bitmap.rs` (`LiveMap::merge_word`), lock-free with respect to writers. With
    /// `keep_discards` false every block comes back as a write (no discard bit is merged).
    fn fold_back(&self, c: &mut Control, keep_discards: bool) {
        if c.pending.is_none() {
            return;
        }
        let live = self.live();
        self.frozen(c).for_each_leaf(|leaf, dirty, disc| {
            live.merge_leaf(leaf, dirty, if keep_discards { disc } else { 0 })
        });
        self.clear_taken(c);
        c.aborts += 1;
        c.pending = None;
    }

    /// Changes the disk size (up to the capacity). Growing marks the new region dirty;
    /// shrinking drops tracked blocks past the new end. A taken checkpoint keeps the size it was
    /// taken at. Takes the control lock; no allocation.
    pub fn resize(&self, new_size: u64) -> Result<(), TrackerError> {
        let bad = |what, value| Err(TrackerError::InvalidGeometry { what, value });
        if new_size == 0 {
            return bad("the disk size must not be zero", 0);
        }
        if new_size % u64::from(self.sector_size) != 0 {
            return bad(
                "the disk size must be a multiple of the sector size",
                new_size,
            );
        }
        if new_size > self.capacity {
            return Err(TrackerError::CapacityExceeded {
                requested: new_size,
                capacity: self.capacity,
            });
        }
        let _c = self.control.lock();
        let old = self.disk_size.swap(new_size, Ordering::AcqRel);
        if new_size > old {
            self.live()
                .set_range(old >> self.shift, (new_size - 1) >> self.shift);
        } else if new_size < old {
            self.live()
                .clear_from(new_size.div_ceil(self.block_size().into()));
        }
        Ok(())
    }

    /// The map writers mark in. Stable only under the control lock (a take changes it).
    fn live(&self) -> &LiveMap {
        &self.maps[self.epochs.live()]
    }

    /// The pending checkpoint's map, read in place (empty when none is pending).
    fn frozen<'a>(&'a self, c: &'a Control) -> FrozenMap<'a> {
        self.maps[self.epochs.live() ^ 1].frozen(&c.held, &c.list)
    }

    /// Empties the pending checkpoint's map, for the next take to swap in.
    fn clear_taken(&self, c: &mut Control) {
        self.maps[self.epochs.live() ^ 1].clear_settled();
        c.held = Held::default();
    }

    /// Current geometry.
    pub fn geometry(&self) -> Geometry {
        Geometry {
            disk_size: self.disk_size.load(Ordering::Acquire),
            sector_size: self.sector_size,
            block_size: self.block_size(),
            capacity: self.capacity,
        }
    }

    /// Tracking granularity in bytes.
    pub fn block_size(&self) -> u32 {
        1 << self.shift
    }

    /// The current generation.
    pub fn generation(&self) -> GenerationId {
        self.control.lock().generation
    }

    /// Bytes of memory this tracker holds (both maps with their summaries, the list for sparse
    /// takes, the writers' slots and counters).
    pub fn memory_usage(&self) -> u64 {
        Self::memory_for(self.capacity, self.block_size())
    }

    /// Statistics for churn checks.
    pub fn stats(&self) -> TrackerStats {
        let c = self.control.lock();
        let t = self.counters.totals();
        TrackerStats {
            writes: t.writes,
            bytes_written: t.write_bytes,
            discards: t.discards,
            bytes_discarded: t.discard_bytes,
            blocks_dirtied: t.newly_dirty,
            checkpoints_taken: c.taken,
            checkpoints_committed: c.commits,
            checkpoints_aborted: c.aborts,
            last_interval: c.last_interval,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A take whose barrier fails cannot vouch for the marks in progress: it is a full resync
    /// in a new generation (every block, from sequence 0), and the next take is normal again.
    #[test]
    fn a_take_whose_barrier_fails_is_a_full_resync_in_a_new_generation() {
        // A capacity above the disk size: the full resync stops at the disk end.
        let t = Tracker::new(
            TrackerConfig::new(1 << 20)
                .capacity(3 << 20)
                .granularity(4096)
                .start_clean(true),
        )
        .unwrap();
        t.mark_write(8192, 4096).unwrap();
        let first = t.take().unwrap();
        assert_eq!((first.dirty_blocks, first.extent_count), (1, 1));
        t.commit(first.generation, first.sequence).unwrap();
        t.mark_write(0, 4096).unwrap();
        // A barrier that fails and then holds is an ordinary take.
        epoch::fail_next_barrier(3);
        let ordinary = t.take().unwrap();
        assert_eq!(
            (ordinary.generation, ordinary.sequence),
            (first.generation, 2)
        );
        assert_eq!((ordinary.dirty_blocks, ordinary.extent_count), (1, 1));
        t.commit(ordinary.generation, ordinary.sequence).unwrap();
        t.mark_write(0, 4096).unwrap();
        epoch::fail_next_barrier(epoch::BARRIER_TRIES);
        let full = t.take().unwrap();
        assert_ne!(full.generation, first.generation);
        assert_eq!((full.sequence, full.from_sequence), (1, 0));
        assert_eq!((full.dirty_blocks, full.extent_count), (256, 1));
        assert_eq!(full.dirty_bytes, 1 << 20);
        let mut out = [Extent::default(); 4];
        assert_eq!(t.extents(&mut full.cursor(), &mut out).unwrap(), 1);
        assert_eq!(out[0], Extent::new(0, 1 << 20));
        let empty = &mut [];
        assert_eq!(
            t.extents(&mut full.cursor(), empty),
            Err(TrackerError::EmptyExtentBuffer { next_block: 0 })
        );
        t.commit(full.generation, full.sequence).unwrap();
        t.mark_write(4096, 4096).unwrap();
        let next = t.take().unwrap();
        assert_eq!((next.generation, next.sequence), (full.generation, 2));
        assert_eq!((next.dirty_blocks, next.extent_count), (1, 1));
        // The committed full resync's map was kept full (a mark it did not wait for may have
        // landed after it was read): the take after next ships every block again.
        t.commit(next.generation, next.sequence).unwrap();
        let refill = t.take().unwrap();
        assert_eq!((refill.dirty_blocks, refill.extent_count), (256, 1));
        t.commit(refill.generation, refill.sequence).unwrap();
        t.mark_write(4096, 4096).unwrap();
        let next = t.take().unwrap();
        assert_eq!((next.dirty_blocks, next.extent_count), (1, 1));
        // An abort of a full resync puts every block back, and the map it used is clean after.
        t.abort(next.sequence).unwrap();
        epoch::fail_next_barrier(epoch::BARRIER_TRIES);
        let again = t.take().unwrap();
        assert_eq!((again.dirty_blocks, again.extent_count), (256, 1));
        t.abort(again.sequence).unwrap();
        t.resize(3 << 20).unwrap();
        let grown = t.take().unwrap();
        assert_eq!((grown.dirty_blocks, grown.extent_count), (768, 1));
        t.commit(grown.generation, grown.sequence).unwrap();
        t.mark_write(2 << 20, 4096).unwrap();
        let after = t.take().unwrap();
        assert_eq!((after.dirty_blocks, after.extent_count), (1, 1));
    }
}
