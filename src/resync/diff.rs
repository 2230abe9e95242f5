//! Comparing two hash lists, and the delta stream that ships the difference.

use std::io;

use super::{HashList, ResyncError, HASH_LEN};
use crate::stream::{BlockSource, EncodeCursor, Encoder, EncoderConfig};
use crate::Extent;

/// What a resync must ship: the source ranges whose blocks differ from the replica's, and the
/// source's size if the replica's differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResyncPlan {
    /// The replica's disk size (the stream's `disk_size`).
    pub replica_size: u64,
    /// The source's disk size (the replica's size after the resync).
    pub source_size: u64,
    /// The block size both lists were hashed with.
    pub block_size: u32,
    /// Ranges of the source to ship, ascending, not overlapping, adjacent blocks coalesced;
    /// all [`ExtentKind::Write`](crate::ExtentKind::Write), within `source_size`.
    pub extents: Vec<Extent>,
    /// The number of blocks that differ.
    pub differing_blocks: u64,
}

impl ResyncPlan {
    /// The bytes the extents cover.
    pub fn differing_bytes(&self) -> u64 {
        self.extents.iter().map(|e| e.len).sum()
    }

    /// `Some(source_size)` when the replica must be resized first.
    pub fn resize(&self) -> Option<u64> {
        (self.replica_size != self.source_size).then_some(self.source_size)
    }

    /// The live path: marks the plan's extents in the source's running `tracker` as the
    /// replica's lineage (`Tracker::adopt_lineage(generation, sequence, extents)`: the
    /// replica's generation and point), so that the next take ships the differing blocks and
    /// everything written since hashing began. Refused ([`ResyncError::SizeMismatch`], the
    /// tracker untouched) unless the replica, the source and the tracker have one size: the
    /// tracker's stream carries no RESIZE, and an applier accepts a replica larger than the
    /// stream's disk, which would keep its old size and stale bytes past the source's end.
    pub fn adopt(
        &self,
        tracker: &crate::Tracker,
        generation: crate::GenerationId,
        sequence: u64,
    ) -> Result<(), ResyncError> {
        let disk = tracker.geometry().disk_size;
        if self.replica_size != self.source_size || self.source_size != disk {
            return Err(ResyncError::SizeMismatch {
                replica: self.replica_size,
                source: self.source_size,
                tracker: disk,
            });
        }
        tracker
            .adopt_lineage(generation, sequence, &self.extents)
            .map_err(ResyncError::Tracker)
    }

    /// Encodes the resync as one delta stream, frame by frame into `sink`: the header (with
    /// `config.disk_size` set to the replica's size), a RESIZE to the source's size if the
    /// sizes differ, the differing extents read from `source`, END. Returns the stream's
    /// bytes. Every other setting (disk id, generation, sequences, codec, secret, record
    /// size) is the caller's, as for any stream.
    ///
    /// For a source that nobody writes to while it is hashed and read (a snapshot, a stopped
    /// disk). For a live disk, mark the extents in the tracker instead (`docs/RESYNC.md`).
    pub fn encode<S: BlockSource + ?Sized>(
        &self,
        mut config: EncoderConfig,
        source: &mut S,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<u64, ResyncError> {
        config.disk_size = self.replica_size;
        let mut enc = Encoder::new(config)?;
        let mut frame = vec![0u8; enc.max_frame_len()];
        let mut total = 0u64;
        let mut emit = |frame: &[u8]| -> Result<(), ResyncError> {
            total += frame.len() as u64;
            sink(frame).map_err(ResyncError::Sink)
        };
        let n = enc.write_header(&mut frame)?;
        emit(&frame[..n])?;
        if let Some(size) = self.resize() {
            let n = enc.write_resize(size, &mut frame)?;
            emit(&frame[..n])?;
        }
        enc.check_extents(&self.extents)?;
        let mut cursor = EncodeCursor::default();
        while let Some(n) = enc.next_frame(&self.extents, &mut cursor, source, &mut frame)? {
            emit(&frame[..n])?;
        }
        let n = enc.finish(&mut frame)?;
        emit(&frame[..n])?;
        Ok(total)
    }
}

/// Walks a hash list run by run; past its end it reads as zero blocks (a replica grown by
/// RESIZE reads as zeros there).
struct Runs<'a> {
    list: &'a HashList,
    run: usize,
    left: u64,
    hash: usize,
}

impl<'a> Runs<'a> {
    fn new(list: &'a HashList) -> Self {
        let mut r = Runs {
            list,
            run: 0,
            left: list.runs.first().copied().unwrap_or(u64::MAX),
            hash: 0,
        };
        r.settle();
        r
    }
    /// Skips empty runs.
    fn settle(&mut self) {
        while self.left == 0 {
            self.run += 1;
            self.left = self.list.runs.get(self.run).copied().unwrap_or(u64::MAX);
        }
    }
    fn is_data(&self) -> bool {
        self.run % 2 == 1 && self.run < self.list.runs.len()
    }
    fn hashes(&self, n: u64) -> &'a [[u8; HASH_LEN]] {
        &self.list.hashes[self.hash..self.hash + n as usize]
    }
    fn advance(&mut self, n: u64) {
        if self.is_data() {
            self.hash += n as usize;
        }
        self.left -= n;
        self.settle();
    }
}

/// Compares the replica's hash list with the source's: a block differs unless both are zero or
/// both hashes are equal. Blocks past the replica's end count as zero (a grown replica reads
/// as zeros there); blocks past the source's end are cut by the RESIZE. The last blocks of
/// two disks of different sizes hash different lengths, so they differ unless both are zero.
/// Costs O(runs) for zero areas, O(blocks) for data areas; allocates only the extents.
pub fn diff(replica: &HashList, source: &HashList) -> Result<ResyncPlan, ResyncError> {
    if replica.block_size != source.block_size {
        return Err(ResyncError::BlockSizeMismatch {
            replica: replica.block_size,
            source: source.block_size,
        });
    }
    if replica.salt != source.salt {
        return Err(ResyncError::SaltMismatch);
    }
    let bs = u64::from(source.block_size);
    let total = source.block_count();
    let mut extents: Vec<Extent> = Vec::new();
    let mut differing = 0u64;
    let mut push = |first: u64, count: u64| {
        differing += count;
        let offset = first * bs;
        let end = ((first + count) * bs).min(source.disk_size);
        match extents.last_mut() {
            Some(last) if last.offset + last.len == offset => last.len = end - last.offset,
            _ => extents.push(Extent::new(offset, end - offset)),
        }
    };
    let (mut a, mut b) = (Runs::new(replica), Runs::new(source));
    let mut at = 0u64;
    while at < total {
        let step = a.left.min(b.left).min(total - at);
        match (a.is_data(), b.is_data()) {
            (false, false) => {}
            (true, true) => {
                for (k, (x, y)) in a.hashes(step).iter().zip(b.hashes(step)).enumerate() {
                    if x != y {
                        push(at + k as u64, 1);
                    }
                }
            }
            _ => push(at, step),
        }
        a.advance(step);
        b.advance(step);
        at += step;
    }
    Ok(ResyncPlan {
        replica_size: replica.disk_size,
        source_size: source.disk_size,
        block_size: source.block_size,
        extents,
        differing_blocks: differing,
    })
}
