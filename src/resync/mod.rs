//! Checksum resync: bring a replica up to date when no trustworthy map of changed blocks exists
//! (a new agent, lost tracker state, a replica restored from elsewhere). Both sides hash their
//! disk block by block ([`HashList::compute`], on all cores, reading the disk once), the
//! replica's list crosses the wire in a compact form ([`HashList::to_bytes`],
//! [`HashList::decode`], `docs/RESYNC.md`), the sender compares it with its own
//! ([`diff`]) and ships only the differing blocks as a normal delta stream
//! ([`ResyncPlan::encode`], or by marking [`ResyncPlan::extents`] in a tracker with
//! [`Tracker::adopt_lineage`](crate::Tracker::adopt_lineage)). The replica applies that stream
//! with the ordinary [`Applier`](crate::Applier).
//!
//! ```
//! use blockdelta::resync::{diff, HashConfig, HashList};
//! use blockdelta::{Applier, DecoderConfig, EncoderConfig, GenerationId};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let source = vec![7u8; 1 << 20];
//! let mut replica = source.clone();
//! replica[70_000] ^= 1; // one block differs
//!
//! let cfg = HashConfig { salt: [9; 16], ..HashConfig::default() }; // the sender picks the salt
//! // Replica side: hash and send the list.
//! let wire = HashList::compute(&replica[..], replica.len() as u64, &cfg)?.to_bytes();
//! // Sender side: hash its own disk with the same salt, compare, encode.
//! let theirs = HashList::decode(&wire)?;
//! let ours = HashList::compute(&source[..], source.len() as u64, &cfg)?;
//! let plan = diff(&theirs, &ours)?;
//! assert_eq!(plan.differing_blocks, 1);
//! let config = EncoderConfig::new(*b"disk-0000000001a", GenerationId([1; 16]), 0, 1, 0);
//! let mut stream = Vec::new();
//! plan.encode(config, &mut source.clone(), &mut |frame| {
//!     stream.extend_from_slice(frame);
//!     Ok(())
//! })?;
//! // Replica side: apply.
//! let mut applier = Applier::new(DecoderConfig::new(), replica);
//! applier.push(&stream)?;
//! applier.finish()?;
//! assert_eq!(applier.target(), &source);
//! # Ok(())
//! # }
//! ```

mod diff;
mod error;
mod hash;
mod wire;

pub use diff::{diff, ResyncPlan};
pub use error::ResyncError;
pub use hash::{BlockHash, HashConfig, HashList, ReadAt};
pub use wire::{FORMAT_MAJOR, FORMAT_MINOR, MAGIC};

/// Default block size of a hash list: 4 KiB.
pub const DEFAULT_BLOCK_SIZE: u32 = 4096;
/// Smallest block size: 4 KiB.
pub const MIN_BLOCK_SIZE: u32 = 4096;
/// Largest block size: 1 MiB.
pub const MAX_BLOCK_SIZE: u32 = 1 << 20;
/// Bytes of a block hash on the wire and in memory: SHA-256 truncated to 128 bits.
pub const HASH_LEN: usize = 16;

pub(crate) fn check_block_size(block_size: u32) -> Result<(), ResyncError> {
    if block_size.is_power_of_two() && (MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
        Ok(())
    } else {
        Err(ResyncError::InvalidBlockSize(block_size))
    }
}

pub(crate) fn check_disk_size(disk_size: u64) -> Result<(), ResyncError> {
    if (1..=crate::stream::MAX_DISK_SIZE).contains(&disk_size) {
        Ok(())
    } else {
        Err(ResyncError::InvalidDiskSize(disk_size))
    }
}
