//! Tracker errors.

use std::fmt;

use super::extent::GenerationId;

/// Everything a tracker call can reject. Each variant maps to one C code.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackerError {
    /// The disk or tracking geometry is invalid.
    InvalidGeometry {
        /// What is wrong, e.g. "granularity must be a power of two from 512 B to 1 MiB".
        what: &'static str,
        /// The offending value.
        value: u64,
    },
    /// A range reaches past the disk end (or overflows 64 bits).
    OutOfRange {
        /// Start of the range.
        offset: u64,
        /// Length of the range.
        len: u64,
        /// Current disk size.
        disk_size: u64,
    },
    /// `take` while the checkpoint with this sequence number is still taken.
    TakeInProgress {
        /// The pending checkpoint.
        sequence: u64,
    },
    /// `commit`, `abort` or an extent read with no checkpoint taken.
    NoCheckpoint,
    /// The sequence number, generation or cursor is not the pending checkpoint's.
    WrongCheckpoint {
        /// The pending checkpoint's generation.
        pending_generation: GenerationId,
        /// The pending checkpoint's sequence number.
        pending: u64,
        /// The generation given (the pending one where the call names no generation).
        given_generation: GenerationId,
        /// The sequence number given.
        given: u64,
    },
    /// An extent read into an empty output slice while extents remain: nothing could be
    /// returned, and 0 would falsely mean "the end".
    EmptyExtentBuffer {
        /// The block the cursor is at.
        next_block: u64,
    },
    /// No supported granularity fits the memory budget.
    BudgetTooSmall {
        /// The budget given, in bytes.
        budget: u64,
        /// Bytes needed at the coarsest granularity (1 MiB).
        needed: u64,
    },
    /// A resize beyond the capacity the tracker was created with.
    CapacityExceeded {
        /// Size asked for.
        requested: u64,
        /// Capacity set at creation.
        capacity: u64,
    },
    /// The bitmaps could not be allocated.
    OutOfMemory {
        /// Bytes requested.
        bytes: u64,
    },
    /// [`Tracker::adopt_lineage`](super::Tracker::adopt_lineage) refused a lineage: adopting it
    /// would issue a checkpoint number twice in one generation (the generation is the current
    /// one and the sequence is below the last number issued in it), or the sequence is at or
    /// past [`MAX_SEQUENCE`](super::MAX_SEQUENCE). Nothing changed.
    LineageRejected {
        /// Why, e.g. "the sequence is below the last number issued in this generation".
        reason: &'static str,
        /// The generation given.
        generation: GenerationId,
        /// The sequence given.
        sequence: u64,
        /// The tracker's current generation.
        current_generation: GenerationId,
        /// The last number issued in the current generation (0 if none).
        issued: u64,
    },
}

impl fmt::Display for TrackerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TrackerError::InvalidGeometry { what, value } => {
                write!(f, "invalid tracker geometry: {what} (got {value})")
            }
            TrackerError::OutOfRange { offset, len, disk_size } => write!(
                f,
                "range {offset}+{len} is past the disk end {disk_size}"
            ),
            TrackerError::TakeInProgress { sequence } => write!(
                f,
                "checkpoint {sequence} is already taken: commit or abort it before taking another"
            ),
            TrackerError::NoCheckpoint => {
                write!(f, "no checkpoint is taken: call take first")
            }
            TrackerError::WrongCheckpoint {
                pending_generation,
                pending,
                given_generation,
                given,
            } => write!(
                f,
                "checkpoint {given_generation}/{given} is not the taken checkpoint {pending_generation}/{pending} (stale sequence, cursor or generation)"
            ),
            TrackerError::EmptyExtentBuffer { next_block } => write!(
                f,
                "the extent buffer has room for 0 extents but extents remain from block {next_block}: pass at least one slot"
            ),
            TrackerError::BudgetTooSmall { budget, needed } => write!(
                f,
                "memory budget {budget} B is too small: even 1 MiB granularity needs {needed} B"
            ),
            TrackerError::CapacityExceeded { requested, capacity } => write!(
                f,
                "resize to {requested} B exceeds the capacity {capacity} B set when the tracker was created"
            ),
            TrackerError::OutOfMemory { bytes } => {
                write!(f, "could not allocate {bytes} B for the tracking bitmaps")
            }
            TrackerError::LineageRejected {
                reason,
                generation,
                sequence,
                current_generation,
                issued,
            } => write!(
                f,
                "cannot adopt lineage {generation}/{sequence}: {reason} (current generation {current_generation}, last number issued {issued}); nothing changed"
            ),
        }
    }
}

impl std::error::Error for TrackerError {}
