//! The replica store: the master target's data engine. It receives delta streams for one disk
//! and keeps the disk's recovery points, with retention, rollback and failover reads. Layout
//! and design are in `docs/REPLICA.md`.
//!
//! It owns its files (through a [`Storage`] with object-storage semantics) and must never make
//! anything visible before it is verified and durable: a point appears only when its stream's
//! END was verified and everything it needs was synced, in one atomic manifest commit.
//!
//! Design in one paragraph: every verified stream is written once, sequentially, into an
//! immutable **pack** (raw 4 KiB-aligned data with a CRC32 per 4 KiB chunk); its extent map is
//! a **layer**. A point is the base plus the layers up to it, newest wins. Deleting a point
//! merges its layer into the next one (or into the base): metadata only, no data copied. A
//! combined in-memory index finds, for any byte of any point, the layer that holds it.
//!
//! ```
//! use blockdelta::replica::{Store, StoreConfig};
//! use blockdelta::stream::encode_to_vec;
//! use blockdelta::{EncoderConfig, Extent, GenerationId};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let disk_id = *b"disk-0000000001a";
//! let store = Store::create(dir.path().join("store"), StoreConfig::new(disk_id))?;
//!
//! // The first stream of a generation (from checkpoint 0) carries the whole disk.
//! let generation = GenerationId::random();
//! let mut disk = vec![0u8; 1 << 20];
//! disk[4096..8192].fill(7);
//! let full = encode_to_vec(EncoderConfig::new(disk_id, generation, 0, 1, 1 << 20),
//!                          &[Extent::new(0, 1 << 20)], &mut disk.clone())?;
//! let mut ingest = store.ingest(None)?;
//! ingest.push(&full)?;                       // in any chunks, as they arrive
//! let first = ingest.finish()?.point;        // durable and listed: commit checkpoint 1
//!
//! // An incremental stream: checkpoint 1 -> 2.
//! disk[0..4096].fill(9);
//! let delta = encode_to_vec(EncoderConfig::new(disk_id, generation, 1, 2, 1 << 20),
//!                           &[Extent::new(0, 4096)], &mut disk.clone())?;
//! let mut ingest = store.ingest(None)?;
//! ingest.push(&delta)?;
//! let second = ingest.finish()?.point;
//!
//! // Both points stay readable.
//! let mut buf = vec![0u8; 8192];
//! store.read_at(first.id, 0, &mut buf)?;
//! assert!(buf[..4096].iter().all(|&b| b == 0) && buf[4096..].iter().all(|&b| b == 7));
//! store.read_at(second.id, 0, &mut buf)?;
//! assert!(buf[..4096].iter().all(|&b| b == 9));
//! assert_eq!(store.points().len(), 2);
//! # Ok(())
//! # }
//! ```

mod bundle;
mod error;
mod format;
mod ingest;
mod log;
mod manifest;
mod map;
#[cfg(feature = "object-store")]
mod object;
mod pack;
mod read;
mod storage;
mod store;

pub use error::{ReplicaError, Result};
pub use format::{STORE_FORMAT_MAJOR, STORE_FORMAT_MINOR};
pub use ingest::{Ingest, Ingested, PendingIngest, RESUME_EVERY};
pub use manifest::Retention;
#[cfg(feature = "object-store")]
pub use object::{ObjectConfig, ObjectStorage, RequestCounts};
pub use storage::{
    manifest_conflict, DirStorage, ManifestConflict, ManifestVersion, Piece, PieceSink, RangeRead,
    Storage, Upload,
};
pub use store::{
    now_ns, storage_for_url, Expired, ExpiryReason, PointId, PointInfo, Rollback, Store,
    StoreConfig, StoreStats,
};
