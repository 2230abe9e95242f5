//! blockdelta: the data engine of disaster-recovery replication.
//!
//! - [`tracker`]: change-block tracking. Called on every write by block drivers and agents;
//!   lock-free, allocation-free, and loud about lost continuity. [`PersistentTracker`] keeps
//!   its state across clean restarts (`docs/TRACKER.md`).
//! - [`stream`]: the delta stream: encoder, decoder and applier for checksummed, compressed,
//!   encrypted deltas.
//! - [`resync`]: checksum resync when continuity is lost: per-block hashes of both disks,
//!   compared, and only the differing blocks shipped as a delta stream (`docs/RESYNC.md`).
//! - [`failback`]: failback without a full copy after a failover (`docs/FAILBACK.md`).
//! - [`support`]: the replication support matrix as data, with queries and validators.
//!
//! The public Rust API is re-exported here; module internals stay private.
//!
//! The C ABI over all of the above (`src/ffi/`, header `include/blockdelta.h`) is built only
//! with the `capi` feature, which `cargo cinstall` turns on (see the README, "Using blockdelta
//! from C"). A Rust dependent leaves it off: it builds no C library and runs no cbindgen.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

// The C ABI is for C callers: hidden from the Rust docs, and compiled only with `capi` (the
// Rust modules never import it: C layer -> Rust API -> internals).
pub mod failback;
#[cfg(feature = "capi")]
#[doc(hidden)]
pub mod ffi;
pub mod replica;
pub mod resync;
pub mod stream;
pub mod support;
pub mod tracker;

mod codec;
#[allow(unused_imports)]
mod sync;

pub use stream::{
    merge, Applied, Applier, ApplyTarget, BlockSource, Bookmark, BookmarkKind, CipherSuite, Codec,
    Decoded, Decoder, DecoderCheckpoint, DecoderConfig, EncodeCursor, Encoder, EncoderConfig,
    EndSummary, Expected, FileSource, FileTarget, MergeError, MergeInput, MergeSummary,
    ParallelApplier, Record, Secret, StreamError, StreamHeader,
};
pub use stream::{ParallelEncoder, Region};

pub use tracker::{
    ActivityLogConfig, ActivityStats, ActivityWriter, Admission, Completer, Ticket, WriteToken,
};
pub use tracker::{
    CheckpointInfo, Extent, ExtentCursor, ExtentKind, GenerationId, Geometry, Granularity,
    IntervalStats, LoadOutcome, PersistError, PersistOptions, PersistentTracker, ResetReason,
    Tracker, TrackerConfig, TrackerError, TrackerStats, MAX_SEQUENCE, RESIDENT_LIMIT,
};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The crate version, as in `Cargo.toml` (also `blockdelta_version()` in C).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
