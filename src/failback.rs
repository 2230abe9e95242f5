//! Failback without a full copy (issue 10 §4; design and guarantees in `docs/FAILBACK.md`).
//!
//! After a failover to a recovery point F of a replica store, a copy of F (the failed-over
//! disk, the **new primary**) runs and is tracked from F. To fail back, the **original**
//! disk receives only the blocks where it may differ from the new primary:
//! 1. the blocks the new primary changed since F (a checkpoint of its tracker),
//! 2. the blocks that differ between F and the point the original last committed (usually the
//!    store's newest point; empty when that is F, as when F is the newest),
//! 3. the blocks the original changed that never reached the replica (a checkpoint of its
//!    [`PersistentTracker`](crate::PersistentTracker), loaded `Resumed`).
//!
//! [`plan`] checks the lineage of both sides against the store and decides: a delta of that
//! union, a checksum resync when either side cannot prove its lineage (never a full copy), or a
//! full copy only when the original disk is gone. [`FailbackPlan::encode`] ships a delta (or a
//! full copy) as one ordinary delta stream read from the new primary;
//! [`FailbackPlan::resync`] compares hash lists for the checksum path. The original applies
//! either with the ordinary [`Applier`](crate::Applier).
//!
//! This module owns no state and writes nothing but what [`failover`] asks of the store; it
//! sits beside `replica`, `tracker`, `resync` and `stream` because it composes all four and
//! belongs to none of them (the store never learns about trackers' state files).
//!
//! ```
//! use blockdelta::failback::{self, Method, Original, TrackedChanges};
//! use blockdelta::replica::{Store, StoreConfig};
//! use blockdelta::stream::encode_to_vec;
//! use blockdelta::{Applier, DecoderConfig, EncoderConfig, Extent, GenerationId, Tracker, TrackerConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let (disk_id, size) = (*b"disk-0000000001a", 1u64 << 20);
//! let store = Store::create(dir.path().join("store"), StoreConfig::new(disk_id))?;
//! // The original replicated one point F (generation g, checkpoint 1) and then wrote
//! // block 3, which never reached the replica.
//! let g = GenerationId::random();
//! let mut original = vec![1u8; size as usize];
//! let full = encode_to_vec(EncoderConfig::new(disk_id, g, 0, 1, size),
//!                          &[Extent::new(0, size)], &mut original.clone())?;
//! let mut ingest = store.ingest(None)?;
//! ingest.push(&full)?;
//! let f = ingest.finish()?.point.id;
//! original[3 * 4096..4 * 4096].fill(3);
//! let unshipped = TrackedChanges::new(g, 1, 2, size, vec![Extent::new(3 * 4096, 4096)]);
//!
//! // Failover at F: the new primary is F's image, tracked from the lineage the store names.
//! let lineage = failback::failover(&store, f)?;
//! let mut new_primary = vec![0u8; size as usize];
//! store.read_at(f, 0, &mut new_primary)?;
//! let tracker = Tracker::new(TrackerConfig::new(size).start_clean(true))?;
//! tracker.adopt_lineage(lineage.generation, lineage.sequence, &[])?;
//! new_primary[0..4096].fill(9);
//! tracker.mark_write(0, 4096)?;
//!
//! // Failback: two blocks cross the wire, not the disk.
//! let cp = tracker.take()?;
//! let changed = TrackedChanges::from_checkpoint(&tracker, &cp)?;
//! let plan = failback::plan(&store, f, &changed, &Original::Resumed(unshipped))?;
//! assert_eq!((plan.method.clone(), plan.total_bytes), (Method::Delta, 8192));
//! let mut stream = Vec::new();
//! plan.encode(plan.encoder_config(), &mut new_primary.clone(), &mut |f| {
//!     stream.extend_from_slice(f);
//!     Ok(())
//! })?;
//! let mut applier = Applier::new(DecoderConfig::new(), original);
//! applier.push(&stream)?;
//! applier.finish()?;
//! assert_eq!(applier.target(), &new_primary);
//! tracker.commit(cp.generation, cp.sequence)?; // the original is at this checkpoint now
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io;

use crate::replica::{PointId, PointInfo, ReplicaError, Store};
use crate::resync::{diff, HashList, ResyncError, ResyncPlan};
use crate::stream::{normalize_extents, BlockSource, EncoderConfig};
use crate::tracker::{CheckpointInfo, Extent, ExtentKind, GenerationId, Tracker, TrackerError};

/// A taken checkpoint of a tracker: its lineage and every extent it holds. What the original
/// sends of its unshipped changes, and what the new primary's tracker says it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackedChanges {
    /// The tracker's generation.
    pub generation: GenerationId,
    /// The last committed checkpoint the set builds on: the set holds every change since the
    /// disk was at point (`generation`, `from_sequence`).
    pub from_sequence: u64,
    /// The checkpoint's number (greater than `from_sequence`).
    pub sequence: u64,
    /// The disk's size when the checkpoint was taken.
    pub disk_size: u64,
    /// The changed ranges, written or discarded (any order; overlaps are merged).
    pub extents: Vec<Extent>,
}

impl TrackedChanges {
    /// Changes from their parts (for values that crossed a wire or came from C).
    pub fn new(
        generation: GenerationId,
        from_sequence: u64,
        sequence: u64,
        disk_size: u64,
        extents: Vec<Extent>,
    ) -> Self {
        TrackedChanges {
            generation,
            from_sequence,
            sequence,
            disk_size,
            extents,
        }
    }

    /// Every extent of `checkpoint`, the pending checkpoint of `tracker` (a
    /// [`PersistentTracker`](crate::PersistentTracker)'s tracker too), with its lineage.
    /// Reads the extents from the start; the checkpoint stays pending.
    pub fn from_checkpoint(
        tracker: &Tracker,
        checkpoint: &CheckpointInfo,
    ) -> Result<Self, TrackerError> {
        let mut cursor = checkpoint.cursor();
        let mut extents = Vec::with_capacity(checkpoint.extent_count as usize);
        let mut buf = [Extent::default(); 256];
        loop {
            let n = tracker.extents(&mut cursor, &mut buf)?;
            if n == 0 {
                break;
            }
            extents.extend_from_slice(&buf[..n]);
        }
        Ok(TrackedChanges::new(
            checkpoint.generation,
            checkpoint.from_sequence,
            checkpoint.sequence,
            checkpoint.disk_size,
            extents,
        ))
    }

    fn bytes(&self) -> u64 {
        self.extents.iter().map(|e| e.len).sum()
    }
}

/// What is known of the original disk at failback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Original {
    /// Its persistent tracker loaded `Resumed` (a clean shutdown) or `Recovered` (a crash of
    /// a run with an activity log): a checkpoint taken from it, the changes that never reached
    /// the replica (a superset by at most the log's bound after a crash), in the lineage it
    /// replicated.
    Resumed(TrackedChanges),
    /// The disk is there but its changes cannot be proven (its state file reset: a crash
    /// without an activity log, a torn, lost or foreign file): it is compared, not copied.
    Unproven,
    /// The disk is gone (destroyed, or replaced by a blank one): only a full copy rebuilds it.
    Gone,
}

/// Why a side's lineage could not be proven (the plan falls back to a checksum resync).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unproven {
    /// The new primary's checkpoint does not build on F: its (generation, from_sequence) is
    /// neither F itself nor the lineage the store started at F ([`failover`]).
    NewPrimaryNotFromFailover {
        /// The checkpoint's generation.
        generation: GenerationId,
        /// The checkpoint it builds on.
        from_sequence: u64,
    },
    /// The original's state could not be trusted ([`Original::Unproven`]).
    OriginalUntrusted,
    /// The original's last committed point is not a point of the store (another
    /// generation, a number the store never had, or a point retention merged away).
    OriginalNotInStore {
        /// The original's generation.
        generation: GenerationId,
        /// Its last committed checkpoint.
        sequence: u64,
    },
}

impl fmt::Display for Unproven {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unproven::NewPrimaryNotFromFailover {
                generation,
                from_sequence,
            } => write!(
                f,
                "the new primary's checkpoint builds on {from_sequence} of generation \
                 {generation}, which is neither the failover point nor the lineage the store \
                 started there"
            ),
            Unproven::OriginalUntrusted => f.write_str("the original's tracker state was reset"),
            Unproven::OriginalNotInStore {
                generation,
                sequence,
            } => write!(
                f,
                "the original last committed {sequence} of generation {generation}, which is \
                 not a point of the store"
            ),
        }
    }
}

/// How the original is brought level.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// Ship [`FailbackPlan::extents`], the union of the three sources.
    Delta,
    /// Compare hash lists of both disks and ship the differing blocks
    /// ([`FailbackPlan::resync`]).
    ChecksumResync(Unproven),
    /// Ship the whole disk: the original is gone.
    FullCopy,
}

/// Which disk an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The failed-over disk.
    NewPrimary,
    /// The original disk.
    Original,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::NewPrimary => "the new primary",
            Side::Original => "the original",
        })
    }
}

/// What went wrong planning or shipping a failback.
#[derive(Debug)]
#[non_exhaustive]
pub enum FailbackError {
    /// The failover point is not a point of the store.
    NoSuchPoint(PointId),
    /// A disk's size is not the failover point's (failback does not resize).
    DiskSizeMismatch {
        /// Which disk.
        side: Side,
        /// The failover point's size.
        expected: u64,
        /// The disk's.
        found: u64,
    },
    /// An extent reaches past the disk's end.
    ExtentOutOfRange {
        /// Whose extent.
        side: Side,
        /// Its offset.
        offset: u64,
        /// Its length.
        len: u64,
        /// The disk size.
        disk_size: u64,
    },
    /// A checkpoint's number is not above the number it builds on.
    InvalidCheckpoint {
        /// Whose checkpoint.
        side: Side,
        /// The number it builds on.
        from_sequence: u64,
        /// Its number.
        sequence: u64,
    },
    /// The plan's method is a checksum resync: it has no extents to encode.
    NeedsChecksumResync,
    /// The encoder configuration names another disk, lineage or size than the plan: the
    /// stream would not say where it leaves the original.
    HeaderMismatch {
        /// Which field.
        field: &'static str,
    },
    /// The replica store failed.
    Replica(ReplicaError),
    /// Comparing or encoding failed.
    Resync(ResyncError),
}

impl fmt::Display for FailbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailbackError::NoSuchPoint(p) => write!(
                f,
                "the failover point {} of generation {} is not in the store",
                p.sequence, p.generation
            ),
            FailbackError::DiskSizeMismatch {
                side,
                expected,
                found,
            } => write!(
                f,
                "{side} is {found} bytes, the failover point {expected} (failback does not resize)"
            ),
            FailbackError::ExtentOutOfRange {
                side,
                offset,
                len,
                disk_size,
            } => write!(
                f,
                "{side}'s extent {offset}+{len} is past the disk end {disk_size}"
            ),
            FailbackError::InvalidCheckpoint {
                side,
                from_sequence,
                sequence,
            } => write!(
                f,
                "{side}'s checkpoint {sequence} is not above the checkpoint {from_sequence} it builds on"
            ),
            FailbackError::NeedsChecksumResync => {
                f.write_str("the plan is a checksum resync: compare hash lists with resync()")
            }
            FailbackError::HeaderMismatch { field } => {
                write!(f, "the encoder configuration's {field} is not the plan's")
            }
            FailbackError::Replica(e) => write!(f, "replica store: {e}"),
            FailbackError::Resync(e) => write!(f, "resync: {e}"),
        }
    }
}

impl std::error::Error for FailbackError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FailbackError::Replica(e) => Some(e),
            FailbackError::Resync(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ReplicaError> for FailbackError {
    fn from(e: ReplicaError) -> Self {
        FailbackError::Replica(e)
    }
}

impl From<ResyncError> for FailbackError {
    fn from(e: ResyncError) -> Self {
        FailbackError::Resync(e)
    }
}

/// The lineage the new primary's tracker adopts at failover
/// (`Tracker::adopt_lineage(generation, sequence, &[])`: its disk is the point's image).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failover {
    /// The new generation the store expects next.
    pub generation: GenerationId,
    /// The checkpoint it continues from (the failover point's).
    pub sequence: u64,
}

/// Fails over to `point`: the store starts a new lineage at it (a [`Store::rollback`] when
/// `point` is older than the newest point, whose later points stay readable, detached; else
/// [`Store::set_lineage`] under a fresh generation), so that the original can never again
/// continue its lineage into the store, and the new primary's tracker, adopting the returned
/// lineage, is provably tracked from `point`. Blocks on the store's I/O.
pub fn failover(store: &Store, point: PointId) -> Result<Failover, FailbackError> {
    let newest = store.newest().map(|p| p.id);
    if !store.points().iter().any(|p| p.id == point && !p.detached) {
        return Err(FailbackError::NoSuchPoint(point));
    }
    if newest == Some(point) {
        let generation = GenerationId::random();
        store.set_lineage(generation, point.sequence)?;
        Ok(Failover {
            generation,
            sequence: point.sequence,
        })
    } else {
        let r = store.rollback(point)?;
        Ok(Failover {
            generation: r.generation,
            sequence: r.sequence,
        })
    }
}

/// The failback decision and, for a delta or a full copy, what to ship. Made by [`plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailbackPlan {
    /// How the original is brought level.
    pub method: Method,
    /// The store's disk id (the stream's).
    pub disk_id: [u8; 16],
    /// The stream's generation: the new primary's checkpoint's.
    pub generation: GenerationId,
    /// The stream's `from_seq`: the checkpoint the new primary's set builds on.
    pub from_sequence: u64,
    /// The stream's `to_seq`: the new primary's checkpoint. Once applied, the original is at
    /// this point of the new primary's lineage; commit the checkpoint on the new primary.
    pub to_sequence: u64,
    /// The disk size (all three disks have it).
    pub disk_size: u64,
    /// What to ship, ascending, coalesced, not overlapping: the union for
    /// [`Method::Delta`], the whole disk for [`Method::FullCopy`], empty for a checksum resync.
    /// A range is a DISCARD only where the new primary's last change was a discard and no
    /// other source lists it as written (see `docs/FAILBACK.md`).
    pub extents: Vec<Extent>,
    /// Bytes the new primary changed since F (this and the next two: 0 unless
    /// [`Method::Delta`]).
    pub new_primary_bytes: u64,
    /// Bytes that differ between F and the original's last committed point.
    pub between_bytes: u64,
    /// Bytes the original changed that never reached the replica.
    pub original_bytes: u64,
    /// Bytes `extents` cover: for a delta the union (sources overlap, so at most their sum),
    /// for a full copy the disk, for a checksum resync 0 (see [`FailbackPlan::resync`]).
    pub total_bytes: u64,
}

fn check_changes(c: &TrackedChanges, side: Side, disk_size: u64) -> Result<(), FailbackError> {
    if c.disk_size != disk_size {
        return Err(FailbackError::DiskSizeMismatch {
            side,
            expected: disk_size,
            found: c.disk_size,
        });
    }
    if c.sequence <= c.from_sequence {
        return Err(FailbackError::InvalidCheckpoint {
            side,
            from_sequence: c.from_sequence,
            sequence: c.sequence,
        });
    }
    match c
        .extents
        .iter()
        .find(|e| !e.checked_end().is_some_and(|end| end <= disk_size))
    {
        Some(e) => Err(FailbackError::ExtentOutOfRange {
            side,
            offset: e.offset,
            len: e.len,
            disk_size,
        }),
        None => Ok(()),
    }
}

/// Whether the new primary's set provably holds every change since `f`: it builds on `f`
/// itself, or on the lineage the store started at its head `f` ([`failover`]).
fn from_failover(store: &Store, f: &PointInfo, b: &TrackedChanges) -> bool {
    let base = (b.generation, b.from_sequence);
    base == (f.id.generation, f.id.sequence)
        || (store.lineage() == Some(base) && store.newest().map(|p| p.id) == Some(f.id))
}

/// The union of the three sources, sorted and coalesced. A range stays a DISCARD only where
/// the new primary discarded it and neither the original (unless it discarded it too) nor
/// the store's difference lists it; everywhere else the new primary's data is shipped.
fn union(b: &[Extent], between: &[Extent], a: &[Extent]) -> Vec<Extent> {
    let as_write = |e: &Extent| Extent::new(e.offset, e.len);
    let is_discard = |e: &&Extent| e.kind == ExtentKind::Discard;
    // The original's discards outside the new primary's: cut around them (as writes here,
    // since `normalize_extents` keeps writes whole), what is left becomes writes.
    let mut a_only: Vec<Extent> = b.iter().filter(is_discard).map(as_write).collect();
    a_only.extend(a.iter().filter(is_discard).copied());
    normalize_extents(&mut a_only);
    let mut all = b.to_vec();
    all.extend(between.iter().map(as_write));
    all.extend(a.iter().filter(|e| e.kind == ExtentKind::Write).copied());
    all.extend(a_only.iter().filter(is_discard).map(as_write));
    // Writes win where they overlap a discard.
    normalize_extents(&mut all);
    all
}

/// Plans the failback of the original disk to the new primary, which failed over at
/// `failover` and whose tracker's pending checkpoint is `new_primary` (take it after the new
/// primary's last write to ship; writes after the take go to its next checkpoint).
///
/// The decision:
/// - [`Original::Gone`] gives [`Method::FullCopy`].
/// - else, when the new primary's set does not build on `failover` (see [`Unproven`]), or the
///   original is [`Original::Unproven`], or its last committed point (its checkpoint's
///   generation and `from_sequence`) is not a point of the store: [`Method::ChecksumResync`].
/// - else [`Method::Delta`]: the union of the new primary's extents, the store's
///   `changed_between(failover, original's point)`, and the original's extents.
///
/// Errors, for input that cannot describe this failback: the failover point is not in the
/// store; a disk size other than the point's; an extent past the disk end; a checkpoint not
/// above its base. Reads the store's indexes only; no disk I/O.
pub fn plan(
    store: &Store,
    failover: PointId,
    new_primary: &TrackedChanges,
    original: &Original,
) -> Result<FailbackPlan, FailbackError> {
    let points = store.points();
    let f = points
        .iter()
        .find(|p| p.id == failover)
        .ok_or(FailbackError::NoSuchPoint(failover))?;
    let disk_size = f.disk_size;
    check_changes(new_primary, Side::NewPrimary, disk_size)?;
    if let Original::Resumed(a) = original {
        check_changes(a, Side::Original, disk_size)?;
    }
    let mut plan = FailbackPlan {
        method: Method::Delta,
        disk_id: store.disk_id(),
        generation: new_primary.generation,
        from_sequence: new_primary.from_sequence,
        to_sequence: new_primary.sequence,
        disk_size,
        extents: Vec::new(),
        new_primary_bytes: 0,
        between_bytes: 0,
        original_bytes: 0,
        total_bytes: 0,
    };
    let a = match original {
        Original::Gone => {
            plan.method = Method::FullCopy;
            plan.extents = vec![Extent::new(0, disk_size)];
            plan.total_bytes = disk_size;
            return Ok(plan);
        }
        _ if !from_failover(store, f, new_primary) => {
            plan.method = Method::ChecksumResync(Unproven::NewPrimaryNotFromFailover {
                generation: new_primary.generation,
                from_sequence: new_primary.from_sequence,
            });
            return Ok(plan);
        }
        Original::Unproven => {
            plan.method = Method::ChecksumResync(Unproven::OriginalUntrusted);
            return Ok(plan);
        }
        Original::Resumed(a) => a,
    };
    let a_point = PointId {
        generation: a.generation,
        sequence: a.from_sequence,
    };
    if !points.iter().any(|p| p.id == a_point) {
        plan.method = Method::ChecksumResync(Unproven::OriginalNotInStore {
            generation: a.generation,
            sequence: a.from_sequence,
        });
        return Ok(plan);
    }
    let between = store.changed_between(failover, a_point)?;
    plan.extents = union(&new_primary.extents, &between, &a.extents);
    plan.new_primary_bytes = new_primary.bytes();
    plan.between_bytes = between.iter().map(|e| e.len).sum();
    plan.original_bytes = a.bytes();
    plan.total_bytes = plan.extents.iter().map(|e| e.len).sum();
    Ok(plan)
}

impl FailbackPlan {
    /// The stream header the plan needs (disk id, the new primary's checkpoint lineage, the
    /// disk size) with the encoder's defaults; set the secret, codec and record size on it.
    pub fn encoder_config(&self) -> EncoderConfig {
        EncoderConfig::new(
            self.disk_id,
            self.generation,
            self.from_sequence,
            self.to_sequence,
            self.disk_size,
        )
    }

    fn check_config(&self, config: &EncoderConfig) -> Result<(), FailbackError> {
        let field = if config.disk_id != self.disk_id {
            "disk id"
        } else if config.generation != self.generation {
            "generation"
        } else if (config.from_seq, config.to_seq) != (self.from_sequence, self.to_sequence) {
            "checkpoint range"
        } else if config.disk_size != self.disk_size {
            "disk size"
        } else {
            return Ok(());
        };
        Err(FailbackError::HeaderMismatch { field })
    }

    /// Encodes a [`Method::Delta`] or [`Method::FullCopy`] plan as one ordinary delta stream,
    /// frame by frame into `sink`: the header of `config` (which must name the plan's disk,
    /// lineage and size: start from [`FailbackPlan::encoder_config`]), the plan's extents
    /// read from `source` (the new primary's disk), END. Returns the stream's bytes. A
    /// checksum-resync plan is [`FailbackError::NeedsChecksumResync`].
    pub fn encode<S: BlockSource + ?Sized>(
        &self,
        config: EncoderConfig,
        source: &mut S,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<u64, FailbackError> {
        if matches!(self.method, Method::ChecksumResync(_)) {
            return Err(FailbackError::NeedsChecksumResync);
        }
        self.check_config(&config)?;
        // The same stream shape as a resync's: one size, the extents, END.
        let shape = ResyncPlan {
            replica_size: self.disk_size,
            source_size: self.disk_size,
            block_size: config.block_size,
            extents: self.extents.clone(),
            differing_blocks: 0,
        };
        Ok(shape.encode(config, source, sink)?)
    }

    /// The checksum path (any method may take it): compares the original's hash list with
    /// the new primary's (same salt and block size, both of the plan's disk size, else
    /// [`FailbackError::DiskSizeMismatch`]) into the blocks to ship. Encode the result with
    /// `ResyncPlan::encode(plan.encoder_config(), new_primary_disk, sink)`.
    pub fn resync(
        &self,
        original: &HashList,
        new_primary: &HashList,
    ) -> Result<ResyncPlan, FailbackError> {
        for (side, list) in [(Side::Original, original), (Side::NewPrimary, new_primary)] {
            if list.disk_size() != self.disk_size {
                return Err(FailbackError::DiskSizeMismatch {
                    side,
                    expected: self.disk_size,
                    found: list.disk_size(),
                });
            }
        }
        Ok(diff(original, new_primary)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(o: u64, l: u64) -> Extent {
        Extent::new(o, l)
    }
    fn d(o: u64, l: u64) -> Extent {
        Extent::discard(o, l)
    }

    #[test]
    fn a_discard_survives_only_where_every_source_listing_it_discards() {
        // New primary: discards 0..8 and 16..24, writes 8..16.
        let b = [d(0, 8), w(8, 8), d(16, 8)];
        // The store's difference touches 4..6; the original discarded 16..20, wrote 22..23,
        // and discarded 40..48 (the new primary never touched it: its data ships).
        let between = [w(4, 2)];
        let a = [d(16, 4), w(22, 1), d(40, 8)];
        let u = union(&b, &between, &a);
        assert_eq!(
            u,
            [
                d(0, 4),
                w(4, 2), // the store's difference cuts the discard
                d(6, 2),
                w(8, 8),
                d(16, 6), // both discarded
                w(22, 1), // the original wrote it
                d(23, 1),
                w(40, 8), // only the original discarded it
            ]
        );
    }
}
