//! The delta stream: format, encoder, decoder and applier. The byte layout is in
//! `docs/FORMAT.md`.
//!
//! This module owns turning a list of changed extents into a self-describing, checksummed,
//! optionally compressed and encrypted stream, and turning such a stream back into writes on a
//! replica. It takes plain [`Extent`](crate::Extent) lists and never depends on the tracker.
//!
//! Invariants:
//! - extents within one stream ascend and never overlap; the encoder guarantees it, the
//!   decoder checks it;
//! - the decoder treats every byte as hostile and returns a record only after its whole frame
//!   is verified, so the applier never writes unverified data, nor outside the disk;
//! - encoding and decoding allocate nothing per record: all scratch is allocated up front.
//!
//! ```
//! use blockdelta::{Applier, DecoderConfig, Encoder, EncoderConfig, Expected, Extent, EncodeCursor, GenerationId, Secret};
//!
//! # fn main() -> Result<(), blockdelta::StreamError> {
//! let disk = vec![7u8; 1 << 20]; // the protected disk (any `BlockSource`: a `FileSource`, ...)
//! let changed = [Extent::new(0, 8192), Extent::new(65536, 4096)]; // e.g. a tracker's taken set
//! let secret = b"at least 16 bytes; 32 random ones are best"; // shorter: SecretTooShort
//! let (disk_id, generation) = (*b"disk-0000000001a", GenerationId([1; 16]));
//!
//! // Sender: header, one frame per record, END. Frames go into a reusable caller buffer.
//! let mut cfg = EncoderConfig::new(disk_id, generation, 41, 42, 1 << 20);
//! cfg.secret = Some(Secret::new(secret)?);
//! let mut enc = Encoder::new(cfg)?;
//! let mut frame = vec![0u8; enc.max_frame_len()];
//! let mut wire = Vec::new(); // stands for a socket
//! let n = enc.write_header(&mut frame)?;
//! wire.extend_from_slice(&frame[..n]);
//! let mut cursor = EncodeCursor::default();
//! let mut source = disk.clone();
//! while let Some(n) = enc.next_frame(&changed, &mut cursor, &mut source, &mut frame)? {
//!     wire.extend_from_slice(&frame[..n]);
//! }
//! let n = enc.finish(&mut frame)?;
//! wire.extend_from_slice(&frame[..n]);
//!
//! // Receiver: the replica is at checkpoint 41 of this disk and generation. A stream is accepted
//! // iff from_seq <= 41 < to_seq: one already applied (to_seq <= 41) is refused (AlreadyApplied).
//! let expected = Expected { disk_id: Some(disk_id), generation: Some(generation), replica_seq: Some(41) };
//! let mut replica = Applier::new(
//!     DecoderConfig::new().with_secret(Secret::new(secret)?).with_expected(expected),
//!     vec![0u8; 1 << 20], // any `ApplyTarget`: a `FileTarget`, ...
//! );
//! let used = replica.push(&wire)?; // feed bytes as they arrive; keep the unconsumed tail
//! assert_eq!(used, wire.len());
//! replica.finish()?; // END verified and synced
//! let applied = replica.applied().expect("finished");
//! assert_eq!(applied.to_seq, 42); // the replica is at 42: the sender commits exactly checkpoint 42
//! assert_eq!(&replica.target()[..8192], &disk[..8192]);
//! # Ok(())
//! # }
//! ```

mod apply;
mod crypto;
mod decoder;
mod encoder;
mod error;
mod format;
mod header;
mod merge;
mod parallel;
mod parallel_apply;
mod record;
mod source;
mod target;

pub use apply::Applied;
pub use apply::{Applier, ApplyTarget};
pub use crypto::{Secret, MIN_SECRET_LEN};
pub use decoder::{Decoded, Decoder, DecoderCheckpoint, DecoderConfig, Expected};
pub use encoder::{
    encode_to_vec, frame_bound, normalize_extents, EncodeCursor, Encoder, EncoderConfig,
    DEFAULT_RECORD_SIZE,
};
pub use error::StreamError;
pub use format::{
    is_all_zero, FEATURE_OPTIONAL_ZERO_DETECTION, FEATURE_REQUIRED_LZ4, FORMAT_VERSION,
    MAX_DISK_SIZE, MAX_LABEL_LEN, MAX_RECORD_PAYLOAD, MUST_UNDERSTAND,
};
pub use header::{CipherSuite, StreamHeader};
pub use merge::{merge, MergeError, MergeInput, MergeSummary};
pub use parallel::ParallelEncoder;
pub use parallel_apply::{ParallelApplier, MAX_APPLY_THREADS};
pub use record::{Bookmark, BookmarkKind, Codec, EndSummary, Record};
pub use source::{BlockSource, FileSource, Region};
pub use target::FileTarget;
