//! `StreamError`: every way encoding, decoding or applying a delta stream can fail.
//!
//! Each hostile-input case has its own variant (and its own C code), so a caller and a test can
//! tell a flipped bit from a replayed frame from a wrong key.

use std::fmt;
use std::io;

use crate::tracker::GenerationId;

/// An error from the delta stream encoder, decoder or applier.
#[non_exhaustive]
#[derive(Debug)]
pub enum StreamError {
    /// A frame or the stream header does not start with the blockdelta magic.
    BadMagic {
        /// Which magic was wrong ("frame" or "stream header").
        what: &'static str,
    },
    /// The stream header's format version is not one this reader understands.
    UnsupportedVersion {
        /// Version in the stream.
        found: u16,
        /// Version this reader supports.
        supported: u16,
    },
    /// The stream header sets required feature bits this reader does not know.
    UnknownRequiredFeature {
        /// The unknown bits.
        bits: u32,
    },
    /// The stream header names a cipher suite this reader does not know.
    UnsupportedCipher {
        /// Cipher suite number in the stream.
        suite: u16,
    },
    /// The stream ended before its END record.
    Truncated {
        /// Frames verified before the input ended.
        frames: u64,
        /// Bytes verified before the input ended.
        bytes: u64,
    },
    /// A frame arrived with the wrong sequence number: reordered, replayed, duplicated or dropped.
    FrameOutOfOrder {
        /// The sequence number the decoder expected.
        expected: u64,
        /// The sequence number in the frame.
        found: u64,
    },
    /// A frame's CRC32 does not match its bytes (corruption in transit or at rest).
    ChecksumMismatch {
        /// Sequence number claimed by the frame.
        seq: u64,
        /// CRC stored in the frame.
        stored: u32,
        /// CRC computed over the frame.
        computed: u32,
    },
    /// AES-GCM authentication failed: the key is wrong or the frame was tampered with.
    AuthenticationFailed {
        /// Sequence number of the frame.
        seq: u64,
    },
    /// A length field is larger than the format allows.
    OversizedLength {
        /// Which length.
        what: &'static str,
        /// Its value.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// An extent starts before the end of the previous one (extents must ascend, never overlap).
    ExtentOverlap {
        /// Start of the offending extent.
        offset: u64,
        /// Its length.
        len: u64,
        /// End of the previous extent.
        prev_end: u64,
    },
    /// An extent reaches past the end of the disk.
    ExtentOutOfRange {
        /// Start of the extent.
        offset: u64,
        /// Its length.
        len: u64,
        /// The disk size in force.
        disk_size: u64,
    },
    /// A record type with the must-understand bit set that this reader does not know.
    UnknownRequiredRecord {
        /// The record type.
        record_type: u16,
    },
    /// A frame header is inconsistent (unknown frame type, reserved bits set).
    MalformedFrame {
        /// What is wrong.
        reason: &'static str,
    },
    /// A record's fields are inconsistent.
    MalformedRecord {
        /// The record type.
        record_type: u16,
        /// What is wrong.
        reason: &'static str,
    },
    /// A DATA record names a codec this reader does not know.
    UnknownCodec {
        /// The codec number.
        codec: u8,
    },
    /// An lz4 payload did not decompress to exactly its declared length.
    DecompressFailed {
        /// Disk offset of the record.
        offset: u64,
    },
    /// The stream header's values are invalid (e.g. to_seq not after from_seq).
    InvalidHeader {
        /// What is wrong.
        reason: &'static str,
    },
    /// A frame of a type that cannot appear here (a record before the header, a second header).
    UnexpectedFrame {
        /// What was expected.
        reason: &'static str,
    },
    /// The END record's totals disagree with what was received.
    EndMismatch {
        /// Which total.
        what: &'static str,
        /// Value in the END record.
        stored: u64,
        /// Value computed by the decoder.
        computed: u64,
    },
    /// Bytes follow the END record.
    TrailingData {
        /// How many.
        len: usize,
    },
    /// The stream is encrypted and no secret was given.
    KeyRequired,
    /// A secret was given but the stream is not encrypted (refused: it could be a downgrade).
    EncryptionRequired,
    /// The stream is for another disk.
    WrongDisk {
        /// Expected disk id.
        expected: [u8; 16],
        /// Disk id in the stream.
        found: [u8; 16],
    },
    /// The stream is from another tracker generation.
    WrongGeneration {
        /// Expected generation.
        expected: GenerationId,
        /// Generation in the stream.
        found: GenerationId,
    },
    /// The stream starts after the replica's checkpoint (`from_seq > replica_seq`): applying
    /// it would leave a gap.
    WrongSequence {
        /// The replica's sequence.
        expected: u64,
        /// From-sequence in the stream.
        found: u64,
    },
    /// The target is smaller than the disk described by the stream.
    TargetTooSmall {
        /// Target size.
        target: u64,
        /// Disk size in the stream.
        disk_size: u64,
    },
    /// An earlier call failed; the decoder or applier refuses further input.
    Poisoned,
    /// The block source failed to read.
    SourceIo {
        /// Offset of the read.
        offset: u64,
        /// Length of the read.
        len: u64,
        /// The underlying error.
        source: io::Error,
    },
    /// The apply target failed.
    TargetIo {
        /// The operation ("write", "write_zeroes", "discard", "resize", "sync", "size").
        op: &'static str,
        /// Offset (or new size) of the operation.
        offset: u64,
        /// The underlying error.
        source: io::Error,
    },
    /// The target cannot change size (e.g. a block device) but the stream resizes the disk.
    ResizeUnsupported {
        /// Requested size.
        new_size: u64,
    },
    /// The caller's output buffer is too small.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// An argument or configuration value is out of its domain.
    InvalidArgument {
        /// What is wrong.
        reason: &'static str,
    },
    /// A call made in the wrong order (e.g. a record before the header, anything after END).
    InvalidState {
        /// What is wrong.
        reason: &'static str,
    },
    /// The operating system's random number generator failed.
    Random,
    /// The stream ends at or before the checkpoint the replica is already at: it was already
    /// applied (or is older), and a stream that was applied can never be applied again.
    AlreadyApplied {
        /// The stream's to-sequence.
        to_seq: u64,
        /// The replica's sequence.
        replica_seq: u64,
    },
    /// A disk size (stream header or RESIZE record) is zero or above the format's limit.
    InvalidDiskSize {
        /// What carried the size ("stream header" or "RESIZE record").
        what: &'static str,
        /// The size.
        size: u64,
        /// The largest size allowed ([`MAX_DISK_SIZE`](crate::stream::MAX_DISK_SIZE)).
        max: u64,
    },
    /// A secret is shorter than [`MIN_SECRET_LEN`](crate::stream::MIN_SECRET_LEN) bytes.
    SecretTooShort {
        /// Its length.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// A stored [`DecoderCheckpoint`](crate::stream::DecoderCheckpoint) is not one: wrong
    /// magic, unknown version, wrong length, reserved fields set, an invalid header frame or
    /// counters no decoder could have reached.
    InvalidCheckpoint {
        /// What is wrong.
        reason: &'static str,
    },
    /// A stored [`DecoderCheckpoint`](crate::stream::DecoderCheckpoint)'s CRC32 does not match
    /// its bytes (corruption at rest).
    CheckpointChecksumMismatch {
        /// CRC stored in the checkpoint.
        stored: u32,
        /// CRC computed over it.
        computed: u32,
    },
}

fn hex(b: &[u8]) -> impl fmt::Display + '_ {
    struct H<'a>(&'a [u8]);
    impl fmt::Display for H<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
        }
    }
    H(b)
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use StreamError::*;
        match self {
            BadMagic { what } => write!(f, "bad {what} magic: not a blockdelta stream"),
            UnsupportedVersion { found, supported } => {
                write!(f, "stream format version {found} is not supported (this reader supports {supported})")
            }
            UnknownRequiredFeature { bits } => write!(f, "stream requires unknown features {bits:#x}"),
            UnsupportedCipher { suite } => write!(f, "cipher suite {suite} is not supported"),
            Truncated { frames, bytes } => {
                write!(f, "stream ended before its END record (after {frames} frames, {bytes} bytes)")
            }
            FrameOutOfOrder { expected, found } => write!(
                f,
                "frame {found} arrived where frame {expected} was expected (reordered, replayed, duplicated or dropped)"
            ),
            ChecksumMismatch { seq, stored, computed } => {
                write!(f, "frame {seq}: checksum {stored:#010x} does not match computed {computed:#010x}")
            }
            AuthenticationFailed { seq } => {
                write!(f, "frame {seq}: authentication failed (wrong key or tampered frame)")
            }
            OversizedLength { what, len, max } => write!(f, "{what} {len} exceeds the limit {max}"),
            ExtentOverlap { offset, len, prev_end } => write!(
                f,
                "extent {offset}+{len} starts before the end {prev_end} of the previous extent (extents must ascend without overlap)"
            ),
            ExtentOutOfRange { offset, len, disk_size } => {
                write!(f, "extent {offset}+{len} is past the disk end {disk_size}")
            }
            UnknownRequiredRecord { record_type } => {
                write!(f, "unknown must-understand record type {record_type:#06x}")
            }
            MalformedFrame { reason } => write!(f, "malformed frame: {reason}"),
            MalformedRecord { record_type, reason } => {
                write!(f, "malformed record of type {record_type:#06x}: {reason}")
            }
            UnknownCodec { codec } => write!(f, "unknown codec {codec} in a DATA record"),
            DecompressFailed { offset } => {
                write!(f, "DATA record at offset {offset}: lz4 payload does not decompress to its declared length")
            }
            InvalidHeader { reason } => write!(f, "invalid stream header: {reason}"),
            UnexpectedFrame { reason } => write!(f, "unexpected frame: {reason}"),
            EndMismatch { what, stored, computed } => {
                write!(f, "END record {what} {stored} does not match the received {computed}")
            }
            TrailingData { len } => write!(f, "{len} bytes follow the END record"),
            KeyRequired => write!(f, "the stream is encrypted and no secret was given"),
            EncryptionRequired => {
                write!(f, "a secret was given but the stream is not encrypted (refusing a possible downgrade)")
            }
            WrongDisk { expected, found } => {
                write!(f, "stream is for disk {} but disk {} was expected", hex(found), hex(expected))
            }
            WrongGeneration { expected, found } => {
                write!(f, "stream is from tracker generation {found} but generation {expected} was expected")
            }
            WrongSequence { expected, found } => write!(
                f,
                "stream starts at checkpoint {found} but the replica is at checkpoint {expected} (a gap: the changes in between are missing)"
            ),
            TargetTooSmall { target, disk_size } => {
                write!(f, "target size {target} is smaller than the stream's disk size {disk_size}")
            }
            Poisoned => write!(f, "an earlier error stopped this stream; no further input is accepted"),
            SourceIo { offset, len, source } => write!(f, "block source read {offset}+{len} failed: {source}"),
            TargetIo { op, offset, source } => write!(f, "target {op} at {offset} failed: {source}"),
            ResizeUnsupported { new_size } => {
                write!(f, "the target cannot be resized to {new_size} (e.g. a block device)")
            }
            BufferTooSmall { needed, got } => {
                write!(f, "output buffer of {got} bytes is too small: {needed} bytes needed")
            }
            InvalidArgument { reason } => write!(f, "invalid argument: {reason}"),
            InvalidState { reason } => write!(f, "invalid call order: {reason}"),
            Random => write!(f, "the operating system's random number generator failed"),
            AlreadyApplied { to_seq, replica_seq } => write!(
                f,
                "stream ends at checkpoint {to_seq} but the replica is already at checkpoint {replica_seq}: it was already applied, and a stream that was applied can never be applied again"
            ),
            InvalidDiskSize { what, size, max } => {
                write!(f, "{what} disk size {size} is invalid: it must be 1 to {max} bytes")
            }
            SecretTooShort { len, min } => {
                write!(f, "secret of {len} bytes is too short: at least {min} bytes are required")
            }
            InvalidCheckpoint { reason } => write!(f, "invalid decoder checkpoint: {reason}"),
            CheckpointChecksumMismatch { stored, computed } => write!(
                f,
                "decoder checkpoint checksum {stored:#010x} does not match computed {computed:#010x} (corrupted at rest)"
            ),
        }
    }
}

impl std::error::Error for StreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StreamError::SourceIo { source, .. } | StreamError::TargetIo { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }
}

/// Shorthand for results of this module.
pub type Result<T, E = StreamError> = std::result::Result<T, E>;
