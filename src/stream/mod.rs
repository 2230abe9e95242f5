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

mod apply;
mod crypto;
mod decoder;
mod encoder;
mod error;
mod format;
mod header;
mod record;
mod source;
mod target;

pub use apply::{Applier, ApplyTarget};
pub use crypto::Secret;
pub use decoder::{Decoded, Decoder, DecoderConfig, Expected};
pub use encoder::{
    encode_to_vec, frame_bound, normalize_extents, Encoder, EncoderConfig, ExtentCursor,
    DEFAULT_RECORD_SIZE,
};
pub use error::StreamError;
pub use format::{
    is_all_zero, FEATURE_OPTIONAL_ZERO_DETECTION, FEATURE_REQUIRED_LZ4, FORMAT_VERSION,
    MAX_LABEL_LEN, MAX_RECORD_PAYLOAD, MUST_UNDERSTAND,
};
pub use header::{CipherSuite, StreamHeader};
pub use record::{Bookmark, BookmarkKind, Codec, EndSummary, Record};
pub use source::{BlockSource, FileSource};
pub use target::FileTarget;
