//! The Rust API's limits under their C names.
//!
//! The header shows only what `src/ffi/` declares (cbindgen reads this module, not the whole
//! crate), so a limit a C caller needs is restated here with a `BLOCKDELTA_` name. Each value is
//! a literal with its Rust type as suffix, which cbindgen writes with the matching C suffix
//! (`u64` -> `ull`, `u32` -> `u`): C and C++ evaluate it to the Rust value, where `1 << 60` would
//! be an `int` shift. The assertions below keep each one equal to the Rust constant.

use crate::stream;
use crate::tracker;

/// Smallest tracking granularity in bytes (`blockdelta_tracker_new`).
pub const BLOCKDELTA_MIN_GRANULARITY: u32 = 512u32;
/// Largest tracking granularity in bytes (1 MiB).
pub const BLOCKDELTA_MAX_GRANULARITY: u32 = 1048576u32;
/// Default tracking granularity in bytes (4 KiB), used when the tracker fits
/// `BLOCKDELTA_DEFAULT_MEMORY_BUDGET` at it (disks up to about 500 GiB); larger disks get the
/// finest power of two that fits.
pub const BLOCKDELTA_DEFAULT_GRANULARITY: u32 = 4096u32;
/// The memory the default granularity stays within (64 MiB).
pub const BLOCKDELTA_DEFAULT_MEMORY_BUDGET: u64 = 67108864u64;
/// Largest disk size (and capacity) a tracker accepts, in bytes: 2^60 (1 EiB).
pub const BLOCKDELTA_MAX_DISK_SIZE: u64 = 1152921504606846976u64;
/// Largest number of blocks a tracker tracks: 2^40.
pub const BLOCKDELTA_MAX_BLOCKS: u64 = 1099511627776u64;
/// The delta stream format version this library writes and reads.
pub const BLOCKDELTA_STREAM_FORMAT_VERSION: u32 = 1u32;
/// Default largest raw payload of one DATA record, in bytes (1 MiB).
pub const BLOCKDELTA_DEFAULT_RECORD_SIZE: u32 = 1048576u32;
/// Largest raw (decoded) payload of one DATA record, and largest stored payload, in bytes.
pub const BLOCKDELTA_MAX_RECORD_PAYLOAD: u32 = 1048576u32;
/// Largest bookmark label in bytes (UTF-8, without a terminating NUL).
pub const BLOCKDELTA_MAX_LABEL_LEN: u32 = 1024u32;

// The C values are the Rust ones.
const _: () = {
    assert!(BLOCKDELTA_MIN_GRANULARITY == tracker::MIN_GRANULARITY);
    assert!(BLOCKDELTA_MAX_GRANULARITY == tracker::MAX_GRANULARITY);
    assert!(BLOCKDELTA_DEFAULT_GRANULARITY == tracker::DEFAULT_GRANULARITY);
    assert!(BLOCKDELTA_DEFAULT_MEMORY_BUDGET == tracker::DEFAULT_MEMORY_BUDGET);
    assert!(BLOCKDELTA_MAX_DISK_SIZE == tracker::MAX_DISK_SIZE);
    assert!(BLOCKDELTA_MAX_BLOCKS == tracker::MAX_BLOCKS);
    assert!(BLOCKDELTA_STREAM_FORMAT_VERSION == stream::FORMAT_VERSION as u32);
    assert!(BLOCKDELTA_DEFAULT_RECORD_SIZE == stream::DEFAULT_RECORD_SIZE);
    assert!(BLOCKDELTA_MAX_RECORD_PAYLOAD as usize == stream::MAX_RECORD_PAYLOAD);
    assert!(BLOCKDELTA_MAX_LABEL_LEN as usize == stream::MAX_LABEL_LEN);
};
