//! C ABI for the change-block tracker (`blockdelta_tracker_*`).

use std::ffi::c_char;

use super::error::{copy_handle_message, fail_thread, record_thread_error, LastError};
use super::handle::{arg_extents, arg_ref, free_handle, into_handle, out_slice, Out};
use super::panic::{boundary, boundary_value};
use super::result::{blockdelta_result, ToResult};
use crate::tracker::{
    CheckpointInfo, Extent, ExtentCursor, GenerationId, Granularity, StateFile, Tracker,
    TrackerConfig, TrackerError, TrackerStats,
};

mod activity;
mod state;
pub use activity::*;
pub use state::*;

/// The C code of each tracker error. It lives here, on the C side, so that the tracker core
/// never depends on the C layer.
impl ToResult for TrackerError {
    fn to_result(&self) -> blockdelta_result {
        match self {
            TrackerError::InvalidGeometry { .. } => blockdelta_result::TrackerInvalidGeometry,
            TrackerError::OutOfRange { .. } => blockdelta_result::TrackerOutOfRange,
            TrackerError::TakeInProgress { .. } => blockdelta_result::TrackerTakeInProgress,
            TrackerError::NoCheckpoint => blockdelta_result::TrackerNoCheckpoint,
            TrackerError::WrongCheckpoint { .. } => blockdelta_result::TrackerWrongCheckpoint,
            TrackerError::EmptyExtentBuffer { .. } => blockdelta_result::BufferTooSmall,
            TrackerError::BudgetTooSmall { .. } => blockdelta_result::TrackerBudgetTooSmall,
            TrackerError::CapacityExceeded { .. } => blockdelta_result::TrackerCapacityExceeded,
            TrackerError::OutOfMemory { .. } => blockdelta_result::OutOfMemory,
            TrackerError::LineageRejected { .. } => blockdelta_result::TrackerLineageRejected,
            // `TrackerError` is non-exhaustive only for other crates; a new variant must get
            // its code here.
        }
    }
}

/// A change-block tracker. Opaque; create with `blockdelta_tracker_new`, destroy with
/// `blockdelta_tracker_free`. Every function taking a `const blockdelta_tracker *` may be called
/// from any number of threads at once.
pub struct blockdelta_tracker {
    inner: Tracker,
    /// The state file of a tracker from `blockdelta_tracker_load` (the write path never looks
    /// at it: marks go to `inner` directly).
    state: Option<StateFile>,
    last_error: LastError,
}

/// `flags` bit for `blockdelta_tracker_new`: start with no dirty block (only when the replica is
/// known to equal the disk right now). Without it every block starts dirty.
pub const BLOCKDELTA_TRACKER_START_CLEAN: u32 = 1;
/// `flags` bit for `blockdelta_tracker_new`: make the bitmaps resident at creation whatever
/// their size, so that no mark ever takes a page fault. The default does so for trackers of at
/// most 64 MiB (`BLOCKDELTA_TRACKER_RESIDENT_LIMIT`).
pub const BLOCKDELTA_TRACKER_RESIDENT: u32 = 2;
/// `flags` bit for `blockdelta_tracker_new`: leave the bitmaps to be committed page by page on
/// first write, whatever their size (a first mark into a page may then fault). Not with
/// `BLOCKDELTA_TRACKER_RESIDENT`.
pub const BLOCKDELTA_TRACKER_LAZY: u32 = 4;
/// The tracker memory up to which bitmaps are made resident by default (64 MiB).
pub const BLOCKDELTA_TRACKER_RESIDENT_LIMIT: u64 = 67_108_864;

/// What `blockdelta_tracker_take` froze. A plain value, owned by the caller.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct blockdelta_checkpoint {
    /// The tracker generation (random 128-bit id). A new generation means a full resync.
    pub generation: [u8; 16],
    /// This checkpoint's number: 1 for the first take of a generation, then the last number
    /// issued plus one. Unique within a generation: an aborted number is never issued again.
    pub sequence: u64,
    /// Disk size when the checkpoint was taken.
    pub disk_size: u64,
    /// Dirty blocks in the set.
    pub dirty_blocks: u64,
    /// Distinct dirty bytes (clipped at the disk end).
    pub dirty_bytes: u64,
    /// Number of coalesced extents the cursor will return.
    pub extent_count: u64,
    /// Tracking granularity in bytes.
    pub block_size: u32,
    /// The last committed sequence number of this generation (0 if none). A stream for this
    /// checkpoint goes from `from_sequence` to `sequence`; it is correct on a replica at any
    /// point `s` of this generation with `from_sequence <= s < sequence`.
    pub from_sequence: u64,
}

/// A resumable position in a taken checkpoint's extents. A plain value: initialise it with
/// `blockdelta_extent_cursor_init`, pass it to `blockdelta_tracker_extents`, copy it freely.
///
/// To resume at a given block, set `next_block` (keeping `generation` and `sequence` of the
/// pending checkpoint): any value is valid. A block inside an extent resumes with the rest of
/// that extent; a block at or past the checkpoint's last block reads as the end (count 0). A
/// `generation` or `sequence` other than the pending checkpoint's is
/// `BLOCKDELTA_RESULT_TRACKER_WRONG_CHECKPOINT`; no pending checkpoint is
/// `BLOCKDELTA_RESULT_TRACKER_NO_CHECKPOINT`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct blockdelta_extent_cursor {
    /// The checkpoint's generation.
    pub generation: [u8; 16],
    /// The checkpoint's sequence number.
    pub sequence: u64,
    /// First block not yet returned.
    pub next_block: u64,
}

/// A tracker's geometry. A plain value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct blockdelta_geometry {
    /// Current disk size in bytes.
    pub disk_size: u64,
    /// Largest size a resize may reach.
    pub capacity: u64,
    /// Logical sector size in bytes.
    pub sector_size: u32,
    /// Tracking granularity in bytes.
    pub block_size: u32,
}

/// Statistics readable with `blockdelta_tracker_stat`. Numbers are stable; new ones are appended.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum blockdelta_tracker_stat_id {
    /// Non-empty `mark_write` calls.
    Writes = 0,
    /// Bytes passed to `mark_write`.
    BytesWritten = 1,
    /// Non-empty `mark_discard` calls.
    Discards = 2,
    /// Bytes passed to `mark_discard`.
    BytesDiscarded = 3,
    /// Blocks that went from clean to dirty through the mark functions.
    BlocksDirtied = 4,
    /// Checkpoints taken.
    CheckpointsTaken = 5,
    /// Checkpoints committed.
    CheckpointsCommitted = 6,
    /// Checkpoints aborted.
    CheckpointsAborted = 7,
    /// Length of the last interval between two takes, in microseconds.
    IntervalMicros = 8,
    /// Bytes written and discarded during the last interval.
    IntervalBytesMarked = 9,
    /// Distinct dirty bytes in the checkpoint that ended the last interval.
    IntervalDistinctBytes = 10,
    /// Bytes marked per second over the last interval.
    IntervalMarkedBytesPerSec = 11,
    /// Distinct dirty bytes per second over the last interval (the churn to ship).
    IntervalDistinctBytesPerSec = 12,
}

fn stat_value(s: &TrackerStats, id: u32) -> Option<u64> {
    use blockdelta_tracker_stat_id as S;
    let i = &s.last_interval;
    Some(match id {
        x if x == S::Writes as u32 => s.writes,
        x if x == S::BytesWritten as u32 => s.bytes_written,
        x if x == S::Discards as u32 => s.discards,
        x if x == S::BytesDiscarded as u32 => s.bytes_discarded,
        x if x == S::BlocksDirtied as u32 => s.blocks_dirtied,
        x if x == S::CheckpointsTaken as u32 => s.checkpoints_taken,
        x if x == S::CheckpointsCommitted as u32 => s.checkpoints_committed,
        x if x == S::CheckpointsAborted as u32 => s.checkpoints_aborted,
        x if x == S::IntervalMicros as u32 => i.duration.as_micros().try_into().unwrap_or(u64::MAX),
        x if x == S::IntervalBytesMarked as u32 => i.bytes_marked,
        x if x == S::IntervalDistinctBytes as u32 => i.distinct_bytes,
        x if x == S::IntervalMarkedBytesPerSec as u32 => i.marked_bytes_per_sec() as u64,
        x if x == S::IntervalDistinctBytesPerSec as u32 => i.distinct_bytes_per_sec() as u64,
        _ => return None,
    })
}

impl From<CheckpointInfo> for blockdelta_checkpoint {
    fn from(c: CheckpointInfo) -> Self {
        blockdelta_checkpoint {
            generation: c.generation.0,
            sequence: c.sequence,
            disk_size: c.disk_size,
            dirty_blocks: c.dirty_blocks,
            dirty_bytes: c.dirty_bytes,
            extent_count: c.extent_count,
            block_size: c.block_size,
            from_sequence: c.from_sequence,
        }
    }
}

/// Creates a tracker for a disk of `disk_size` bytes.
///
/// - `sector_size`: 512 or 4096.
/// - `granularity`: tracking block size, a power of two from 512 to 1048576 (at least the sector
///   size); 0 chooses the finest granularity whose memory fits `memory_budget` bytes (and 0 for
///   both means the default: `BLOCKDELTA_DEFAULT_GRANULARITY` (4 KiB), coarser by powers of two
///   for disks whose tracker would need more than `BLOCKDELTA_DEFAULT_MEMORY_BUDGET` at it).
/// - `capacity`: the largest size `blockdelta_tracker_resize` may reach (0 means `disk_size`);
///   memory is allocated for it now, so a resize never allocates.
/// - `flags`: 0 or any of `BLOCKDELTA_TRACKER_START_CLEAN`, and `BLOCKDELTA_TRACKER_RESIDENT` or
///   `BLOCKDELTA_TRACKER_LAZY` (not both); other bits are `BLOCKDELTA_RESULT_INVALID_ARGUMENT`.
///
/// On success `*tracker_out` receives a new tracker owned by the caller (free it with
/// `blockdelta_tracker_free`). On failure nothing is written and `blockdelta_last_error` says
/// why. Allocates; may take a while for very large disks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_new(
    disk_size: u64,
    sector_size: u32,
    granularity: u32,
    memory_budget: u64,
    capacity: u64,
    flags: u32,
    tracker_out: *mut *mut blockdelta_tracker,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(tracker_out)?;
        let known =
            BLOCKDELTA_TRACKER_START_CLEAN | BLOCKDELTA_TRACKER_RESIDENT | BLOCKDELTA_TRACKER_LAZY;
        let both = BLOCKDELTA_TRACKER_RESIDENT | BLOCKDELTA_TRACKER_LAZY;
        if flags & !known != 0 || flags & both == both {
            let code = blockdelta_result::InvalidArgument;
            record_thread_error(
                code,
                &format_args!("unknown or conflicting tracker flags {flags:#x}"),
            );
            return Err(code);
        }
        let mut config = config_from(disk_size, sector_size, granularity, memory_budget, capacity)
            .start_clean(flags & BLOCKDELTA_TRACKER_START_CLEAN != 0);
        if flags & BLOCKDELTA_TRACKER_RESIDENT != 0 {
            config = config.resident(true);
        } else if flags & BLOCKDELTA_TRACKER_LAZY != 0 {
            config = config.resident(false);
        }
        let inner = Tracker::new(config).map_err(fail_thread)?;
        let handle = into_handle(blockdelta_tracker {
            inner,
            state: None,
            last_error: LastError::new(),
        });
        // SAFETY: `tracker_out` was checked non-NULL; the caller guarantees it is writable.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Destroys a tracker. NULL is a no-op. No other call on it may be running or follow, except
/// `blockdelta_tracker_writer_free` of its writer handles (which then only give their slots
/// back; the state file's lock is released with the last of them). For a tracker from
/// `blockdelta_tracker_load` or `_load_with_log` this is a crash as far as the state file is
/// concerned: the next load resets, or recovers from the activity log.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_free(tracker: *mut blockdelta_tracker) {
    // SAFETY: the caller passes NULL or a pointer from `blockdelta_tracker_new`, exactly once.
    boundary_value((), || unsafe { free_handle(tracker) })
}

/// The tracker configuration of the C constructors: granularity 0 with a budget chooses by
/// memory, 0 with 0 the default; capacity 0 means the disk size.
fn config_from(
    disk_size: u64,
    sector_size: u32,
    granularity: u32,
    memory_budget: u64,
    capacity: u64,
) -> TrackerConfig {
    let granularity = match (granularity, memory_budget) {
        (0, 0) => Granularity::Default,
        (0, budget) => Granularity::Auto {
            memory_budget: budget,
        },
        (g, _) => Granularity::Bytes(g),
    };
    TrackerConfig {
        disk_size,
        sector_size,
        granularity,
        capacity: (capacity != 0).then_some(capacity),
        start_clean: false,
        resident: None,
    }
}

/// Runs `f` on the tracker behind `tracker`, recording its error on the handle.
fn with_tracker<F>(tracker: *const blockdelta_tracker, f: F) -> blockdelta_result
where
    F: FnOnce(&blockdelta_tracker) -> Result<(), blockdelta_result>,
{
    boundary(|| {
        // SAFETY: the caller passes NULL or a live tracker from `blockdelta_tracker_new`.
        let t = unsafe { arg_ref(tracker) }?;
        f(t)
    })
}

/// Records that `len` bytes at `offset` were written. Call it when the write completes.
///
/// Lock-free: never blocks, never allocates, no system call; any number of threads at once.
/// `len == 0` is a no-op. A range past the disk end marks nothing and returns
/// `BLOCKDELTA_RESULT_TRACKER_OUT_OF_RANGE` (the message names the values).
#[no_mangle]
pub extern "C" fn blockdelta_tracker_mark_write(
    tracker: *const blockdelta_tracker,
    offset: u64,
    len: u64,
) -> blockdelta_result {
    with_tracker(tracker, |t| {
        t.inner
            .mark_write(offset, len)
            .map_err(|e| t.last_error.fail(e))
    })
}

/// Records that `len` bytes at `offset` were discarded (trim/unmap). Same rules as
/// `blockdelta_tracker_mark_write`.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_mark_discard(
    tracker: *const blockdelta_tracker,
    offset: u64,
    len: u64,
) -> blockdelta_result {
    with_tracker(tracker, |t| {
        t.inner
            .mark_discard(offset, len)
            .map_err(|e| t.last_error.fail(e))
    })
}

/// Marks the whole disk dirty (full resync, same generation). Control path: takes the tracker's
/// control lock briefly; writers are never blocked.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_mark_all(
    tracker: *const blockdelta_tracker,
) -> blockdelta_result {
    with_tracker(tracker, |t| {
        t.inner.mark_all();
        Ok(())
    })
}

/// Declares tracking continuity lost: a new generation starts at sequence 1 and every block is
/// dirty. Control path; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_lose_continuity(
    tracker: *const blockdelta_tracker,
) -> blockdelta_result {
    with_tracker(tracker, |t| {
        t.inner.lose_continuity();
        Ok(())
    })
}

/// Freezes the blocks changed since the last commit into a taken checkpoint, described in
/// `*checkpoint_out`. Writes continue into a new set. Only one checkpoint may be taken at a time
/// (`BLOCKDELTA_RESULT_TRACKER_TAKE_IN_PROGRESS`). Control path: no allocation; any thread.
///
/// A tracker from `blockdelta_tracker_load` also records, before returning, a durable sequence
/// reservation in its state file when the number passes the last one (one fsync per 16 takes);
/// if that write fails the checkpoint is aborted and `BLOCKDELTA_RESULT_TRACKER_STATE_IO`
/// returned (the state file is poisoned), so may block on file I/O.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_take(
    tracker: *const blockdelta_tracker,
    checkpoint_out: *mut blockdelta_checkpoint,
) -> blockdelta_result {
    with_tracker(tracker, |t| {
        let out = Out::new(checkpoint_out)?;
        let info = match &t.state {
            Some(state) => state.take(&t.inner).map_err(|e| t.last_error.fail(e))?,
            None => t.inner.take().map_err(|e| t.last_error.fail(e))?,
        };
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { out.write(info.into()) };
        Ok(())
    })
}

/// Positions `*cursor_out` at the first extent of `checkpoint`. Never fails except on NULL.
#[no_mangle]
pub extern "C" fn blockdelta_extent_cursor_init(
    checkpoint: *const blockdelta_checkpoint,
    cursor_out: *mut blockdelta_extent_cursor,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: the caller passes NULL or a readable checkpoint.
        let cp = unsafe { arg_ref(checkpoint) }?;
        let out = Out::new(cursor_out)?;
        let cursor = blockdelta_extent_cursor {
            generation: cp.generation,
            sequence: cp.sequence,
            next_block: 0,
        };
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { out.write(cursor) };
        Ok(())
    })
}

/// Reads up to `cap` coalesced extents of the taken checkpoint into `extents`, ascending and
/// non-overlapping, from the position in `*cursor`, and advances `*cursor`. `*count_out`
/// receives how many were written; 0 means the end. A `cap` of 0 while extents remain is
/// `BLOCKDELTA_RESULT_BUFFER_TOO_SMALL` (0 is returned only at the end, whatever `cap` is).
/// `cursor` is read and, on success, updated;
/// `extents` is caller-owned and only borrowed for the call. A cursor of another checkpoint is
/// `BLOCKDELTA_RESULT_TRACKER_WRONG_CHECKPOINT`. Control path: no allocation; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_extents(
    tracker: *const blockdelta_tracker,
    cursor: *mut blockdelta_extent_cursor,
    extents: *mut Extent,
    cap: usize,
    count_out: *mut usize,
) -> blockdelta_result {
    with_tracker(tracker, |t| {
        let out = Out::new(count_out)?;
        // SAFETY: the caller passes NULL or a valid, exclusively borrowed cursor.
        let c = unsafe { cursor.as_mut() }.ok_or(blockdelta_result::NullParameter)?;
        // SAFETY: the caller passes (NULL, 0) or a writable array of `cap` extents.
        let dst = unsafe { out_slice(extents, cap) }?;
        let mut rc = ExtentCursor {
            generation: GenerationId(c.generation),
            sequence: c.sequence,
            next_block: c.next_block,
        };
        let n = t
            .inner
            .extents(&mut rc, dst)
            .map_err(|e| t.last_error.fail(e))?;
        c.next_block = rc.next_block;
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { out.write(n) };
        Ok(())
    })
}

/// The replica has applied checkpoint (`generation`, `sequence`): forget its blocks. Pass what
/// the replica *reported* as applied, so that a checkpoint it did not apply is never committed.
/// `generation` points to 16 bytes (read during the call only). A generation or sequence other
/// than the taken checkpoint's is `BLOCKDELTA_RESULT_TRACKER_WRONG_CHECKPOINT` (nothing changes);
/// none taken is `BLOCKDELTA_RESULT_TRACKER_NO_CHECKPOINT`. Control path; any thread.
///
/// A tracker from `blockdelta_tracker_load` then records the commit in its state file (one
/// fsync; blocks on file I/O). If that write fails the commit still took effect in memory and
/// `BLOCKDELTA_RESULT_TRACKER_STATE_IO` is returned (the state file is poisoned).
#[no_mangle]
pub extern "C" fn blockdelta_tracker_commit(
    tracker: *const blockdelta_tracker,
    generation: *const u8,
    sequence: u64,
) -> blockdelta_result {
    with_tracker(tracker, |t| {
        // SAFETY: the caller passes NULL or 16 readable bytes.
        let g = GenerationId(*unsafe { arg_ref(generation.cast::<[u8; 16]>()) }?);
        match &t.state {
            Some(state) => state
                .commit(&t.inner, g, sequence)
                .map_err(|e| t.last_error.fail(e)),
            None => t
                .inner
                .commit(g, sequence)
                .map_err(|e| t.last_error.fail(e)),
        }
    })
}

/// Adopts a lineage chosen by the replica store after it rolled back to an older point: the
/// store is at `sequence` of the new generation `generation` (16 bytes, read during the call
/// only), and `extents[0..count]` (caller-owned, borrowed for the call; `(NULL, 0)` is none)
/// are the ranges that differ between that point and the newest one it had.
///
/// Afterwards the next `blockdelta_tracker_take` has that generation, `from_sequence ==
/// sequence`, a `sequence` above it, and carries every block of `extents` (as writes: the
/// source's current data is read and shipped; an extent's `kind` must be a known kind but is
/// otherwise ignored) plus everything that was dirty and not committed. A taken checkpoint is
/// folded back as by `blockdelta_tracker_abort`; committing it afterwards is refused.
///
/// Errors, with nothing changed: an extent past the disk end is
/// `BLOCKDELTA_RESULT_TRACKER_OUT_OF_RANGE`; an unknown extent kind is
/// `BLOCKDELTA_RESULT_INVALID_ARGUMENT`; the current generation with a sequence below a number
/// already issued in it (numbers would repeat), or a sequence at or past 2^62 (the highest
/// number a tracker adopts), is `BLOCKDELTA_RESULT_TRACKER_LINEAGE_REJECTED`. Adopting the
/// current (generation, sequence) again before a take is idempotent apart from marking the
/// extents again. A tracker from `blockdelta_tracker_load` then records the new lineage in its
/// state file (one fsync; on failure `BLOCKDELTA_RESULT_TRACKER_STATE_IO`, the lineage adopted
/// in memory, the state file poisoned).
///
/// Writers are never blocked and never lost: a concurrent mark lands in the next take or a
/// later one. Control path: takes the control lock; no allocation (a loaded tracker also
/// writes its state file); any thread.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_adopt_lineage(
    tracker: *const blockdelta_tracker,
    generation: *const u8,
    sequence: u64,
    extents: *const Extent,
    count: usize,
) -> blockdelta_result {
    with_tracker(tracker, |t| {
        // SAFETY: the caller passes NULL or 16 readable bytes.
        let g = unsafe { arg_ref(generation.cast::<[u8; 16]>()) }?;
        // SAFETY: the caller passes `(extents, count)` readable or `(NULL, 0)`.
        let list = unsafe {
            arg_extents(extents, count, |i, kind| {
                t.last_error.record(
                    blockdelta_result::InvalidArgument,
                    &format_args!("extent {i} has kind {kind}: not BLOCKDELTA_EXTENT_KIND_WRITE (0) or _DISCARD (1)"),
                )
            })?
        };
        match &t.state {
            Some(state) => state
                .adopt_lineage(&t.inner, GenerationId(*g), sequence, list)
                .map_err(|e| t.last_error.fail(e)),
            None => t
                .inner
                .adopt_lineage(GenerationId(*g), sequence, list)
                .map_err(|e| t.last_error.fail(e)),
        }
    })
}

/// Reports the pending (taken, not yet committed or aborted) checkpoint: if there is one,
/// `*checkpoint_out` receives it and `*has_out` is true; otherwise `*checkpoint_out` is left
/// as it is and `*has_out` is false. Both pointers are caller-owned. Control path: takes the
/// control lock briefly, never blocks writers; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_pending(
    tracker: *const blockdelta_tracker,
    checkpoint_out: *mut blockdelta_checkpoint,
    has_out: *mut bool,
) -> blockdelta_result {
    with_tracker(tracker, |t| {
        let out = Out::new(checkpoint_out)?;
        let has = Out::new(has_out)?;
        let pending = t.inner.pending();
        if let Some(p) = pending {
            // SAFETY: checked non-NULL; the caller guarantees it is writable.
            unsafe { out.write(p.into()) };
        }
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { has.write(pending.is_some()) };
        Ok(())
    })
}

/// Checkpoint `sequence` was not delivered: merge its blocks back so the next take has them.
/// Same errors as `blockdelta_tracker_commit`. Control path; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_abort(
    tracker: *const blockdelta_tracker,
    sequence: u64,
) -> blockdelta_result {
    with_tracker(tracker, |t| {
        t.inner.abort(sequence).map_err(|e| t.last_error.fail(e))
    })
}

/// Changes the disk size, up to the capacity given at creation
/// (`BLOCKDELTA_RESULT_TRACKER_CAPACITY_EXCEEDED` beyond it). Growing marks the new region dirty;
/// shrinking drops tracked blocks past the new end. Control path; any thread; no allocation for
/// a tracker from `blockdelta_tracker_new`. A tracker from `blockdelta_tracker_load` then
/// records the new geometry in its state file (one state write, which allocates and blocks on
/// file I/O), so that a crash recovers with it (`BLOCKDELTA_RESULT_TRACKER_STATE_IO` if that
/// write fails: the size changed in memory, the state file is poisoned).
#[no_mangle]
pub extern "C" fn blockdelta_tracker_resize(
    tracker: *const blockdelta_tracker,
    new_size: u64,
) -> blockdelta_result {
    with_tracker(tracker, |t| match &t.state {
        Some(state) => state
            .resize(&t.inner, new_size)
            .map_err(|e| t.last_error.fail(e)),
        None => t.inner.resize(new_size).map_err(|e| t.last_error.fail(e)),
    })
}

/// Writes the tracker's current geometry to `*geometry_out`. Never blocks writers; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_geometry(
    tracker: *const blockdelta_tracker,
    geometry_out: *mut blockdelta_geometry,
) -> blockdelta_result {
    with_tracker(tracker, |t| {
        let out = Out::new(geometry_out)?;
        let g = t.inner.geometry();
        let v = blockdelta_geometry {
            disk_size: g.disk_size,
            capacity: g.capacity,
            sector_size: g.sector_size,
            block_size: g.block_size,
        };
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { out.write(v) };
        Ok(())
    })
}

/// Copies the tracker's current 16-byte generation id into `generation_out[0..16]`.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_generation(
    tracker: *const blockdelta_tracker,
    generation_out: *mut [u8; 16],
) -> blockdelta_result {
    with_tracker(tracker, |t| {
        let out = Out::new(generation_out)?;
        // SAFETY: checked non-NULL; the caller guarantees 16 writable bytes.
        unsafe { out.write(t.inner.generation().0) };
        Ok(())
    })
}

/// Writes the bytes of memory the tracker holds to `*bytes_out`.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_memory_usage(
    tracker: *const blockdelta_tracker,
    bytes_out: *mut u64,
) -> blockdelta_result {
    with_tracker(tracker, |t| {
        let out = Out::new(bytes_out)?;
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { out.write(t.inner.memory_usage()) };
        Ok(())
    })
}

/// Bytes of memory a tracker of `capacity` bytes at `block_size` granularity would hold, for
/// sizing before creation. Returns 0 for a `block_size` of 0. Total: a figure above 64 bits
/// (a capacity no tracker accepts) saturates at `UINT64_MAX`. Pure; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_memory_for(capacity: u64, block_size: u32) -> u64 {
    boundary_value(u64::MAX, || {
        if block_size == 0 {
            0
        } else {
            Tracker::memory_for(capacity, block_size)
        }
    })
}

/// Reads one statistic (a `blockdelta_tracker_stat_id` number) into `*value_out`. An unknown number
/// is `BLOCKDELTA_RESULT_INVALID_ARGUMENT`. Control path; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_stat(
    tracker: *const blockdelta_tracker,
    stat: u32,
    value_out: *mut u64,
) -> blockdelta_result {
    with_tracker(tracker, |t| {
        let out = Out::new(value_out)?;
        let v = stat_value(&t.inner.stats(), stat).ok_or_else(|| {
            t.last_error.record(
                blockdelta_result::InvalidArgument,
                &format_args!("unknown tracker statistic {stat}"),
            )
        })?;
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { out.write(v) };
        Ok(())
    })
}

/// Copies the message of the last error recorded on this tracker (by any thread) into `buf`
/// as a NUL-terminated string, truncated to `cap - 1` bytes; `*len_out` (if not NULL) receives
/// the full length. `(NULL, 0)` just reports the length. Never blocks the write path.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_last_error(
    tracker: *const blockdelta_tracker,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> blockdelta_result {
    with_tracker(tracker, |t| {
        // SAFETY: the caller passes a writable (buf, cap) or (NULL, 0).
        unsafe { copy_handle_message(&t.last_error, buf, cap, len_out) }
    })
}

/// Exercises the pointer handling of this file; run under miri by `.ci/run`.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cycle_through_the_c_abi() {
        let mut t = std::ptr::null_mut();
        assert_eq!(
            blockdelta_tracker_new(1 << 20, 512, 4096, 0, 0, 1, &mut t),
            blockdelta_result::Ok
        );
        assert_eq!(
            blockdelta_tracker_mark_write(t, 4096 * 3, 4096 * 2),
            blockdelta_result::Ok
        );
        assert_eq!(
            blockdelta_tracker_mark_write(t, 1 << 20, 1),
            blockdelta_result::TrackerOutOfRange
        );
        let mut msg = [0 as c_char; 16];
        let mut len = 0;
        assert_eq!(
            blockdelta_tracker_last_error(t, msg.as_mut_ptr(), msg.len(), &mut len),
            blockdelta_result::Ok
        );
        assert!(len > 15 && msg[15] == 0, "truncated and NUL-terminated");
        let mut cp = blockdelta_checkpoint::default();
        assert_eq!(blockdelta_tracker_take(t, &mut cp), blockdelta_result::Ok);
        let mut cursor = blockdelta_extent_cursor::default();
        assert_eq!(
            blockdelta_extent_cursor_init(&cp, &mut cursor),
            blockdelta_result::Ok
        );
        let mut out = [Extent::default(); 2];
        let mut n = 0;
        assert_eq!(
            blockdelta_tracker_extents(t, &mut cursor, out.as_mut_ptr(), 2, &mut n),
            blockdelta_result::Ok
        );
        assert_eq!((n, out[0]), (1, Extent::new(4096 * 3, 4096 * 2)));
        // (NULL, 0) is an empty output array (the end was reached above, so it reads 0);
        // NULL with a length is rejected.
        n = 7;
        assert_eq!(
            blockdelta_tracker_extents(t, &mut cursor, std::ptr::null_mut(), 0, &mut n),
            blockdelta_result::Ok
        );
        assert_eq!(n, 0);
        assert_eq!(
            blockdelta_tracker_extents(t, &mut cursor, std::ptr::null_mut(), 4, &mut n),
            blockdelta_result::NullParameter
        );
        assert_eq!(
            blockdelta_tracker_commit(t, cp.generation.as_ptr(), cp.sequence),
            blockdelta_result::Ok
        );
        let mut v = 0;
        assert_eq!(
            blockdelta_tracker_stat(t, blockdelta_tracker_stat_id::Writes as u32, &mut v),
            blockdelta_result::Ok
        );
        assert_eq!(v, 1);
        let mut gen = [0u8; 16];
        assert_eq!(
            blockdelta_tracker_generation(t, &mut gen),
            blockdelta_result::Ok
        );
        assert_eq!(gen, cp.generation);
        // Adopting a lineage: (NULL, 0) is no extents, NULL with a count is rejected, and an
        // unknown kind is refused before the array is read as extents.
        let lineage = [0x5au8; 16];
        assert_eq!(
            blockdelta_tracker_adopt_lineage(t, lineage.as_ptr(), 9, std::ptr::null(), 3),
            blockdelta_result::NullParameter
        );
        #[repr(C)]
        struct RawExtent {
            offset: u64,
            len: u64,
            kind: u32,
            reserved: u32,
        }
        assert_eq!(
            std::mem::size_of::<RawExtent>(),
            std::mem::size_of::<Extent>()
        );
        let bad = [RawExtent {
            offset: 0,
            len: 4096,
            kind: 9,
            reserved: 0,
        }];
        assert_eq!(
            blockdelta_tracker_adopt_lineage(t, lineage.as_ptr(), 9, bad.as_ptr().cast(), 1),
            blockdelta_result::InvalidArgument
        );
        let good = [Extent::new(4096, 1)];
        assert_eq!(
            blockdelta_tracker_adopt_lineage(t, lineage.as_ptr(), 9, good.as_ptr(), 1),
            blockdelta_result::Ok
        );
        assert_eq!(
            blockdelta_tracker_adopt_lineage(t, lineage.as_ptr(), 9, std::ptr::null(), 0),
            blockdelta_result::Ok
        );
        assert_eq!(blockdelta_tracker_take(t, &mut cp), blockdelta_result::Ok);
        assert_eq!(
            (cp.generation, cp.from_sequence, cp.sequence, cp.dirty_bytes),
            (lineage, 9, 10, 4096)
        );
        blockdelta_tracker_free(t);
        blockdelta_tracker_free(std::ptr::null_mut());
        let mut buf = [0 as c_char; 64];
        assert_eq!(
            super::super::error::blockdelta_last_error(buf.as_mut_ptr(), 64, &mut len),
            blockdelta_result::Ok
        );
    }
}
