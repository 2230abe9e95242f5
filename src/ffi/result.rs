//! `blockdelta_result`: the one error code type of the C ABI.
//!
//! Numbers are stable and never reused: a retired code stays here as a comment.
//! Ranges: 0-99 general, 100-199 tracker, 200-299 stream, 300-399 support, 400-499 replica store,
//! 500-599 resync, 600-699 failback.

#[cfg(feature = "capi")]
use std::ffi::c_char;
use std::ffi::CStr;

/// The outcome of every fallible C function. `BLOCKDELTA_RESULT_OK` (0) is success.
///
/// The numeric values are part of the ABI: they never change and are never reused.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum blockdelta_result {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullParameter = 1,
    /// A Rust panic was caught at the C boundary; the handle may be in an unspecified but
    /// memory-safe state.
    Panic = 2,
    /// An argument was out of its documented domain (see the last error message).
    InvalidArgument = 3,
    /// The caller's output buffer is too small; the matching `_bound` function gives the size.
    BufferTooSmall = 4,
    /// Memory for a new object could not be allocated.
    OutOfMemory = 5,
    /// An operating-system I/O call failed (see the last error message).
    Io = 6,
    /// A callback supplied by the caller reported failure.
    CallbackFailed = 7,

    /// Tracker: a disk or tracking geometry is invalid (size, sector, granularity).
    TrackerInvalidGeometry = 100,
    /// Tracker: a range reaches past the end of the disk.
    TrackerOutOfRange = 101,
    /// Tracker: `take` was called while a taken checkpoint is still pending.
    TrackerTakeInProgress = 102,
    /// Tracker: commit, abort or extents read without a pending taken checkpoint.
    TrackerNoCheckpoint = 103,
    /// Tracker: the sequence number or cursor does not belong to the pending checkpoint.
    TrackerWrongCheckpoint = 104,
    /// Tracker: the memory budget is too small for any supported granularity.
    TrackerBudgetTooSmall = 105,
    /// Tracker: a resize asked for more than the capacity set at creation.
    TrackerCapacityExceeded = 106,
    /// Tracker: `blockdelta_tracker_adopt_lineage` refused the lineage: the generation is the
    /// current one and the sequence is below a number already issued in it (numbers would be
    /// issued twice), or the sequence is `UINT64_MAX`. Nothing changed.
    TrackerLineageRejected = 107,
    /// Tracker: writing the tracker's state file failed (`blockdelta_tracker_load`, or `take`,
    /// `commit` or `close` of a loaded tracker). From `take`, `commit` or `close` it poisons the
    /// state file: the next load starts a new generation.
    TrackerStateIo = 108,
    /// Tracker: an earlier write of the tracker's state file failed; nothing more is recorded
    /// (take and commit through this handle are refused). Close it; the next load resets.
    TrackerStatePoisoned = 109,
    /// Tracker: another tracker, in this process or another, has the state file open (its
    /// lock file `<path>.lock` is locked).
    TrackerStateLocked = 110,
    /// Tracker: the call needs an activity log and the tracker has none (it was made by
    /// `blockdelta_tracker_new` or `blockdelta_tracker_load`, not
    /// `blockdelta_tracker_load_with_log`).
    TrackerNoActivityLog = 111,
    /// Tracker: every writer handle of the activity log is taken (its `writers` setting);
    /// free one first.
    TrackerTooManyWriters = 112,
    /// Tracker: an activity-log setting is out of range (the message names it and the value).
    TrackerBadActivityLog = 113,
    /// Tracker: `blockdelta_tracker_close` while writer handles of the tracker remain: nothing
    /// was written or freed; free every writer, then close again.
    TrackerWritersRemain = 114,

    /// Stream: a frame or the stream header does not start with the blockdelta magic.
    StreamBadMagic = 200,
    /// Stream: the stream's format version is not supported.
    StreamUnsupportedVersion = 201,
    /// Stream: the stream requires a feature this library does not know.
    StreamUnknownRequiredFeature = 202,
    /// Stream: the stream's cipher suite is not supported.
    StreamUnsupportedCipher = 203,
    /// Stream: the stream ended before its END record.
    StreamTruncated = 204,
    /// Stream: a frame was reordered, replayed, duplicated or dropped (wrong sequence number).
    StreamFrameOutOfOrder = 205,
    /// Stream: a frame's CRC32 does not match (corruption).
    StreamChecksumMismatch = 206,
    /// Stream: AES-GCM authentication failed (wrong key or tampered frame).
    StreamAuthenticationFailed = 207,
    /// Stream: a length field exceeds the format's limit.
    StreamOversizedLength = 208,
    /// Stream: extents do not ascend or overlap.
    StreamExtentOverlap = 209,
    /// Stream: an extent reaches past the end of the disk.
    StreamExtentOutOfRange = 210,
    /// Stream: a must-understand record type this library does not know.
    StreamUnknownRequiredRecord = 211,
    /// Stream: a frame header is inconsistent (unknown frame type, reserved bits set).
    StreamMalformedFrame = 212,
    /// Stream: a record's fields are inconsistent.
    StreamMalformedRecord = 213,
    /// Stream: a DATA record names an unknown codec.
    StreamUnknownCodec = 214,
    /// Stream: an lz4 payload does not decompress to its declared length.
    StreamDecompressFailed = 215,
    /// Stream: the stream header's values are invalid.
    StreamInvalidHeader = 216,
    /// Stream: a frame of a type that cannot appear at this point.
    StreamUnexpectedFrame = 217,
    /// Stream: the END record's totals disagree with the stream received.
    StreamEndMismatch = 218,
    /// Stream: bytes follow the END record.
    StreamTrailingData = 219,
    /// Stream: the stream is encrypted and no secret was given.
    StreamKeyRequired = 220,
    /// Stream: a secret was given but the stream is not encrypted (possible downgrade).
    StreamEncryptionRequired = 221,
    /// Stream: the stream is for another disk.
    StreamWrongDisk = 222,
    /// Stream: the stream is from another tracker generation.
    StreamWrongGeneration = 223,
    /// Stream: the stream does not start at the expected checkpoint (stale or replayed stream).
    StreamWrongSequence = 224,
    /// Stream: the apply target is smaller than the stream's disk.
    StreamTargetTooSmall = 225,
    /// Stream: an earlier error stopped this encoder, decoder or applier.
    StreamPoisoned = 226,
    /// Stream: the block source (file or read callback) failed.
    StreamSourceIo = 227,
    /// Stream: the apply target (file or callback) failed.
    StreamTargetIo = 228,
    /// Stream: the target cannot be resized (e.g. a block device).
    StreamResizeUnsupported = 229,
    /// Stream: a call made in the wrong order (e.g. a record before the header, anything after END).
    StreamInvalidState = 230,
    /// Stream: the operating system's random number generator failed.
    StreamRandom = 231,
    /// Stream: the stream ends at or before the replica's checkpoint: it was already applied,
    /// and a stream that was applied can never be applied again.
    StreamAlreadyApplied = 232,
    /// Stream: a disk size (stream header or RESIZE) is zero or above 2^60 bytes.
    StreamInvalidDiskSize = 233,
    /// Stream: a secret is shorter than 16 bytes.
    StreamSecretTooShort = 234,
    /// A callback re-entered the handle that called it (e.g. pushed into the applier that is
    /// calling it); the inner call did nothing.
    Reentered = 235,
    /// Stream: a stored decoder checkpoint is not one (wrong magic, unknown version, wrong
    /// length, reserved fields set, invalid header frame or impossible counters).
    StreamInvalidCheckpoint = 236,
    /// Stream: a stored decoder checkpoint's CRC32 does not match (corrupted at rest).
    StreamCheckpointChecksumMismatch = 237,
    /// Stream merge: an input does not continue the inputs before it (disk, generation, block
    /// size, sequence numbers, disk size).
    StreamMergeInconsistent = 238,
    /// Support: the string is not a kernel version (the message says which part is wrong).
    SupportInvalidKernelVersion = 300,
    /// Support: the string is not an agent version such as "9.24".
    SupportInvalidAgentVersion = 301,
    /// Support: the kernel tables have no data for this agent version.
    SupportUnknownAgentVersion = 302,
    /// Support: the distribution name is not in the support matrix.
    SupportUnknownDistribution = 303,
    /// Support: the distribution has no such release in the kernel tables.
    SupportUnknownRelease = 304,
    /// Support: the distribution has no kernel table (stock kernels of supported releases only).
    SupportNoKernelTable = 305,
    /// Support: the operating system name is not in the support matrix.
    SupportUnknownOperatingSystem = 306,
    /// Support: the operating system version string is malformed.
    SupportInvalidOsVersion = 307,
    /// Support: no feature has this key.
    SupportUnknownFeature = 308,
    /// Support: the replication target storage is not in the churn table.
    SupportUnknownStorageTarget = 309,
    /// Support: a VM, server or deployment description is inconsistent.
    SupportInvalidDescription = 310,
    /// Replica store: a storage call failed (see the last error message). When it was a write or
    /// sync the store is now poisoned (`BLOCKDELTA_RESULT_REPLICA_POISONED` for later changes).
    ReplicaIo = 400,
    /// Replica store: a file of the store failed verification (magic, checksum, bounds or
    /// consistency).
    ReplicaCorrupt = 401,
    /// Replica store: a file of the store has a major version this library does not know.
    ReplicaUnsupportedVersion = 402,
    /// Replica store: another handle or process has the store open for writing.
    ReplicaLocked = 403,
    /// Replica store: no store exists at that path.
    ReplicaNotFound = 404,
    /// Replica store: a store already exists at that path.
    ReplicaAlreadyExists = 405,
    /// Replica store: an earlier write or sync failed; the store accepts no changes until it is
    /// freed and opened again (which recovers it).
    ReplicaPoisoned = 406,
    /// Replica store: an ingest is in progress on this store (another ingest, a rollback, a lineage change or a compaction must wait for it).
    ReplicaIngestInProgress = 407,
    /// Replica store: there is no such recovery point.
    ReplicaNoSuchPoint = 408,
    /// Replica store: a read reaches past the point's disk size.
    ReplicaOutOfRange = 409,
    /// Replica store: the stream does not fit under the store's byte cap even after expiring
    /// every point but the newest; nothing visible changed.
    ReplicaCapacityExceeded = 410,
    /// Replica store: points detached by a rollback still exist; discard them first.
    ReplicaDetachedPointsExist = 411,
    /// Replica store: the call does not make sense in the store's state or with these arguments
    /// (e.g. a rollback to the newest point).
    ReplicaInvalidArgument = 412,
    /// Replica store: a cut stream's resume point does not match the stream offered to continue it.
    ReplicaResumeMismatch = 413,
    /// Replica store: data read back from the store failed its checksum.
    ReplicaChecksumMismatch = 414,
    /// Replica store: the file system (or object store) ran out of space while writing; the
    /// stream or change was refused, nothing visible changed and the store stays usable.
    ReplicaStorageFull = 415,
    /// Replica store: another writer committed to the store first (two writers at once, or a
    /// lease on object storage taken over); nothing of this change was committed and the handle
    /// is poisoned: free it and open the store again.
    ReplicaConflict = 416,
    /// Replica store: the URL's scheme names a backend this build does not have (`s3://` and
    /// `az://` need the cargo feature `object-store`), or none at all.
    ReplicaUnsupportedScheme = 417,
    /// Replica store: the store was opened read-only (`blockdelta_store_open_read_only_url`)
    /// and refuses every change.
    ReplicaReadOnly = 418,

    /// Resync: a hash list is damaged or forged (checksum, magic, reserved bytes, counts,
    /// run map, length; see the last error message).
    ResyncInvalidList = 500,
    /// Resync: a hash list of a major version this library does not read.
    ResyncUnsupportedVersion = 501,
    /// Resync: a hash list's authentication failed: a wrong tag (changed in transit, another
    /// secret), no tag where a secret was given, or a tag where none was.
    ResyncAuthenticationFailed = 502,
    /// Resync: two lists cannot be compared (different block sizes or salts).
    ResyncListMismatch = 503,

    /// Failback: the failover point is not a point of the store.
    FailbackNoSuchPoint = 600,
    /// Failback: a disk's size (a checkpoint's, or a hash list's) is not the failover point's;
    /// failback does not resize.
    FailbackDiskSizeMismatch = 601,
    /// Failback: an extent of a checkpoint reaches past the disk's end.
    FailbackExtentOutOfRange = 602,
    /// Failback: a checkpoint's `sequence` is not above its `from_sequence`.
    FailbackInvalidCheckpoint = 603,
    /// Failback: the plan is a checksum resync; it has no extents to encode (use
    /// `blockdelta_failback_plan_resync`).
    FailbackNeedsChecksumResync = 604,
    /// Failback: an encoder configuration names another disk, lineage or size than the plan.
    FailbackHeaderMismatch = 605,
}

impl blockdelta_result {
    /// The C name of the code, e.g. `"BLOCKDELTA_RESULT_OK"`.
    pub fn name(self) -> &'static CStr {
        use blockdelta_result::*;
        match self {
            Ok => c"BLOCKDELTA_RESULT_OK",
            NullParameter => c"BLOCKDELTA_RESULT_NULL_PARAMETER",
            Panic => c"BLOCKDELTA_RESULT_PANIC",
            InvalidArgument => c"BLOCKDELTA_RESULT_INVALID_ARGUMENT",
            BufferTooSmall => c"BLOCKDELTA_RESULT_BUFFER_TOO_SMALL",
            OutOfMemory => c"BLOCKDELTA_RESULT_OUT_OF_MEMORY",
            Io => c"BLOCKDELTA_RESULT_IO",
            CallbackFailed => c"BLOCKDELTA_RESULT_CALLBACK_FAILED",
            TrackerInvalidGeometry => c"BLOCKDELTA_RESULT_TRACKER_INVALID_GEOMETRY",
            TrackerOutOfRange => c"BLOCKDELTA_RESULT_TRACKER_OUT_OF_RANGE",
            TrackerTakeInProgress => c"BLOCKDELTA_RESULT_TRACKER_TAKE_IN_PROGRESS",
            TrackerNoCheckpoint => c"BLOCKDELTA_RESULT_TRACKER_NO_CHECKPOINT",
            TrackerWrongCheckpoint => c"BLOCKDELTA_RESULT_TRACKER_WRONG_CHECKPOINT",
            TrackerBudgetTooSmall => c"BLOCKDELTA_RESULT_TRACKER_BUDGET_TOO_SMALL",
            TrackerCapacityExceeded => c"BLOCKDELTA_RESULT_TRACKER_CAPACITY_EXCEEDED",
            TrackerLineageRejected => c"BLOCKDELTA_RESULT_TRACKER_LINEAGE_REJECTED",
            TrackerStateIo => c"BLOCKDELTA_RESULT_TRACKER_STATE_IO",
            TrackerStatePoisoned => c"BLOCKDELTA_RESULT_TRACKER_STATE_POISONED",
            TrackerStateLocked => c"BLOCKDELTA_RESULT_TRACKER_STATE_LOCKED",
            TrackerNoActivityLog => c"BLOCKDELTA_RESULT_TRACKER_NO_ACTIVITY_LOG",
            TrackerTooManyWriters => c"BLOCKDELTA_RESULT_TRACKER_TOO_MANY_WRITERS",
            TrackerBadActivityLog => c"BLOCKDELTA_RESULT_TRACKER_BAD_ACTIVITY_LOG",
            TrackerWritersRemain => c"BLOCKDELTA_RESULT_TRACKER_WRITERS_REMAIN",
            StreamBadMagic => c"BLOCKDELTA_RESULT_STREAM_BAD_MAGIC",
            StreamUnsupportedVersion => c"BLOCKDELTA_RESULT_STREAM_UNSUPPORTED_VERSION",
            StreamUnknownRequiredFeature => c"BLOCKDELTA_RESULT_STREAM_UNKNOWN_REQUIRED_FEATURE",
            StreamUnsupportedCipher => c"BLOCKDELTA_RESULT_STREAM_UNSUPPORTED_CIPHER",
            StreamTruncated => c"BLOCKDELTA_RESULT_STREAM_TRUNCATED",
            StreamFrameOutOfOrder => c"BLOCKDELTA_RESULT_STREAM_FRAME_OUT_OF_ORDER",
            StreamChecksumMismatch => c"BLOCKDELTA_RESULT_STREAM_CHECKSUM_MISMATCH",
            StreamAuthenticationFailed => c"BLOCKDELTA_RESULT_STREAM_AUTHENTICATION_FAILED",
            StreamOversizedLength => c"BLOCKDELTA_RESULT_STREAM_OVERSIZED_LENGTH",
            StreamExtentOverlap => c"BLOCKDELTA_RESULT_STREAM_EXTENT_OVERLAP",
            StreamExtentOutOfRange => c"BLOCKDELTA_RESULT_STREAM_EXTENT_OUT_OF_RANGE",
            StreamUnknownRequiredRecord => c"BLOCKDELTA_RESULT_STREAM_UNKNOWN_REQUIRED_RECORD",
            StreamMalformedFrame => c"BLOCKDELTA_RESULT_STREAM_MALFORMED_FRAME",
            StreamMalformedRecord => c"BLOCKDELTA_RESULT_STREAM_MALFORMED_RECORD",
            StreamUnknownCodec => c"BLOCKDELTA_RESULT_STREAM_UNKNOWN_CODEC",
            StreamDecompressFailed => c"BLOCKDELTA_RESULT_STREAM_DECOMPRESS_FAILED",
            StreamInvalidHeader => c"BLOCKDELTA_RESULT_STREAM_INVALID_HEADER",
            StreamUnexpectedFrame => c"BLOCKDELTA_RESULT_STREAM_UNEXPECTED_FRAME",
            StreamEndMismatch => c"BLOCKDELTA_RESULT_STREAM_END_MISMATCH",
            StreamTrailingData => c"BLOCKDELTA_RESULT_STREAM_TRAILING_DATA",
            StreamKeyRequired => c"BLOCKDELTA_RESULT_STREAM_KEY_REQUIRED",
            StreamEncryptionRequired => c"BLOCKDELTA_RESULT_STREAM_ENCRYPTION_REQUIRED",
            StreamWrongDisk => c"BLOCKDELTA_RESULT_STREAM_WRONG_DISK",
            StreamWrongGeneration => c"BLOCKDELTA_RESULT_STREAM_WRONG_GENERATION",
            StreamWrongSequence => c"BLOCKDELTA_RESULT_STREAM_WRONG_SEQUENCE",
            StreamTargetTooSmall => c"BLOCKDELTA_RESULT_STREAM_TARGET_TOO_SMALL",
            StreamPoisoned => c"BLOCKDELTA_RESULT_STREAM_POISONED",
            StreamSourceIo => c"BLOCKDELTA_RESULT_STREAM_SOURCE_IO",
            StreamTargetIo => c"BLOCKDELTA_RESULT_STREAM_TARGET_IO",
            StreamResizeUnsupported => c"BLOCKDELTA_RESULT_STREAM_RESIZE_UNSUPPORTED",
            StreamInvalidState => c"BLOCKDELTA_RESULT_STREAM_INVALID_STATE",
            StreamRandom => c"BLOCKDELTA_RESULT_STREAM_RANDOM",
            StreamAlreadyApplied => c"BLOCKDELTA_RESULT_STREAM_ALREADY_APPLIED",
            StreamInvalidDiskSize => c"BLOCKDELTA_RESULT_STREAM_INVALID_DISK_SIZE",
            StreamSecretTooShort => c"BLOCKDELTA_RESULT_STREAM_SECRET_TOO_SHORT",
            Reentered => c"BLOCKDELTA_RESULT_REENTERED",
            StreamInvalidCheckpoint => c"BLOCKDELTA_RESULT_STREAM_INVALID_CHECKPOINT",
            StreamCheckpointChecksumMismatch => {
                c"BLOCKDELTA_RESULT_STREAM_CHECKPOINT_CHECKSUM_MISMATCH"
            }
            StreamMergeInconsistent => c"BLOCKDELTA_RESULT_STREAM_MERGE_INCONSISTENT",
            SupportInvalidKernelVersion => c"BLOCKDELTA_RESULT_SUPPORT_INVALID_KERNEL_VERSION",
            SupportInvalidAgentVersion => c"BLOCKDELTA_RESULT_SUPPORT_INVALID_AGENT_VERSION",
            SupportUnknownAgentVersion => c"BLOCKDELTA_RESULT_SUPPORT_UNKNOWN_AGENT_VERSION",
            SupportUnknownDistribution => c"BLOCKDELTA_RESULT_SUPPORT_UNKNOWN_DISTRIBUTION",
            SupportUnknownRelease => c"BLOCKDELTA_RESULT_SUPPORT_UNKNOWN_RELEASE",
            SupportNoKernelTable => c"BLOCKDELTA_RESULT_SUPPORT_NO_KERNEL_TABLE",
            SupportUnknownOperatingSystem => c"BLOCKDELTA_RESULT_SUPPORT_UNKNOWN_OPERATING_SYSTEM",
            SupportInvalidOsVersion => c"BLOCKDELTA_RESULT_SUPPORT_INVALID_OS_VERSION",
            SupportUnknownFeature => c"BLOCKDELTA_RESULT_SUPPORT_UNKNOWN_FEATURE",
            SupportUnknownStorageTarget => c"BLOCKDELTA_RESULT_SUPPORT_UNKNOWN_STORAGE_TARGET",
            SupportInvalidDescription => c"BLOCKDELTA_RESULT_SUPPORT_INVALID_DESCRIPTION",
            ReplicaIo => c"BLOCKDELTA_RESULT_REPLICA_IO",
            ReplicaCorrupt => c"BLOCKDELTA_RESULT_REPLICA_CORRUPT",
            ReplicaUnsupportedVersion => c"BLOCKDELTA_RESULT_REPLICA_UNSUPPORTED_VERSION",
            ReplicaLocked => c"BLOCKDELTA_RESULT_REPLICA_LOCKED",
            ReplicaNotFound => c"BLOCKDELTA_RESULT_REPLICA_NOT_FOUND",
            ReplicaAlreadyExists => c"BLOCKDELTA_RESULT_REPLICA_ALREADY_EXISTS",
            ReplicaPoisoned => c"BLOCKDELTA_RESULT_REPLICA_POISONED",
            ReplicaIngestInProgress => c"BLOCKDELTA_RESULT_REPLICA_INGEST_IN_PROGRESS",
            ReplicaNoSuchPoint => c"BLOCKDELTA_RESULT_REPLICA_NO_SUCH_POINT",
            ReplicaOutOfRange => c"BLOCKDELTA_RESULT_REPLICA_OUT_OF_RANGE",
            ReplicaCapacityExceeded => c"BLOCKDELTA_RESULT_REPLICA_CAPACITY_EXCEEDED",
            ReplicaDetachedPointsExist => c"BLOCKDELTA_RESULT_REPLICA_DETACHED_POINTS_EXIST",
            ReplicaInvalidArgument => c"BLOCKDELTA_RESULT_REPLICA_INVALID_ARGUMENT",
            ReplicaResumeMismatch => c"BLOCKDELTA_RESULT_REPLICA_RESUME_MISMATCH",
            ReplicaChecksumMismatch => c"BLOCKDELTA_RESULT_REPLICA_CHECKSUM_MISMATCH",
            ReplicaStorageFull => c"BLOCKDELTA_RESULT_REPLICA_STORAGE_FULL",
            ReplicaConflict => c"BLOCKDELTA_RESULT_REPLICA_CONFLICT",
            ReplicaUnsupportedScheme => c"BLOCKDELTA_RESULT_REPLICA_UNSUPPORTED_SCHEME",
            ReplicaReadOnly => c"BLOCKDELTA_RESULT_REPLICA_READ_ONLY",
            ResyncInvalidList => c"BLOCKDELTA_RESULT_RESYNC_INVALID_LIST",
            ResyncUnsupportedVersion => c"BLOCKDELTA_RESULT_RESYNC_UNSUPPORTED_VERSION",
            ResyncAuthenticationFailed => c"BLOCKDELTA_RESULT_RESYNC_AUTHENTICATION_FAILED",
            ResyncListMismatch => c"BLOCKDELTA_RESULT_RESYNC_LIST_MISMATCH",
            FailbackNoSuchPoint => c"BLOCKDELTA_RESULT_FAILBACK_NO_SUCH_POINT",
            FailbackDiskSizeMismatch => c"BLOCKDELTA_RESULT_FAILBACK_DISK_SIZE_MISMATCH",
            FailbackExtentOutOfRange => c"BLOCKDELTA_RESULT_FAILBACK_EXTENT_OUT_OF_RANGE",
            FailbackInvalidCheckpoint => c"BLOCKDELTA_RESULT_FAILBACK_INVALID_CHECKPOINT",
            FailbackNeedsChecksumResync => c"BLOCKDELTA_RESULT_FAILBACK_NEEDS_CHECKSUM_RESYNC",
            FailbackHeaderMismatch => c"BLOCKDELTA_RESULT_FAILBACK_HEADER_MISMATCH",
        }
    }

    /// Every code, in numeric order (used by tests and by `blockdelta_result_name`).
    pub const ALL: &'static [blockdelta_result] = {
        use blockdelta_result::*;
        &[
            Ok,
            NullParameter,
            Panic,
            InvalidArgument,
            BufferTooSmall,
            OutOfMemory,
            Io,
            CallbackFailed,
            TrackerInvalidGeometry,
            TrackerOutOfRange,
            TrackerTakeInProgress,
            TrackerNoCheckpoint,
            TrackerWrongCheckpoint,
            TrackerBudgetTooSmall,
            TrackerCapacityExceeded,
            TrackerLineageRejected,
            TrackerStateIo,
            TrackerStatePoisoned,
            TrackerStateLocked,
            TrackerNoActivityLog,
            TrackerTooManyWriters,
            TrackerBadActivityLog,
            TrackerWritersRemain,
            StreamBadMagic,
            StreamUnsupportedVersion,
            StreamUnknownRequiredFeature,
            StreamUnsupportedCipher,
            StreamTruncated,
            StreamFrameOutOfOrder,
            StreamChecksumMismatch,
            StreamAuthenticationFailed,
            StreamOversizedLength,
            StreamExtentOverlap,
            StreamExtentOutOfRange,
            StreamUnknownRequiredRecord,
            StreamMalformedFrame,
            StreamMalformedRecord,
            StreamUnknownCodec,
            StreamDecompressFailed,
            StreamInvalidHeader,
            StreamUnexpectedFrame,
            StreamEndMismatch,
            StreamTrailingData,
            StreamKeyRequired,
            StreamEncryptionRequired,
            StreamWrongDisk,
            StreamWrongGeneration,
            StreamWrongSequence,
            StreamTargetTooSmall,
            StreamPoisoned,
            StreamSourceIo,
            StreamTargetIo,
            StreamResizeUnsupported,
            StreamInvalidState,
            StreamRandom,
            StreamAlreadyApplied,
            StreamInvalidDiskSize,
            StreamSecretTooShort,
            Reentered,
            StreamInvalidCheckpoint,
            StreamCheckpointChecksumMismatch,
            StreamMergeInconsistent,
            SupportInvalidKernelVersion,
            SupportInvalidAgentVersion,
            SupportUnknownAgentVersion,
            SupportUnknownDistribution,
            SupportUnknownRelease,
            SupportNoKernelTable,
            SupportUnknownOperatingSystem,
            SupportInvalidOsVersion,
            SupportUnknownFeature,
            SupportUnknownStorageTarget,
            SupportInvalidDescription,
            ReplicaIo,
            ReplicaCorrupt,
            ReplicaUnsupportedVersion,
            ReplicaLocked,
            ReplicaNotFound,
            ReplicaAlreadyExists,
            ReplicaPoisoned,
            ReplicaIngestInProgress,
            ReplicaNoSuchPoint,
            ReplicaOutOfRange,
            ReplicaCapacityExceeded,
            ReplicaDetachedPointsExist,
            ReplicaInvalidArgument,
            ReplicaResumeMismatch,
            ReplicaChecksumMismatch,
            ReplicaStorageFull,
            ReplicaConflict,
            ReplicaUnsupportedScheme,
            ReplicaReadOnly,
            ResyncInvalidList,
            ResyncUnsupportedVersion,
            ResyncAuthenticationFailed,
            ResyncListMismatch,
            FailbackNoSuchPoint,
            FailbackDiskSizeMismatch,
            FailbackExtentOutOfRange,
            FailbackInvalidCheckpoint,
            FailbackNeedsChecksumResync,
            FailbackHeaderMismatch,
        ]
    };

    /// The code with this number, if there is one.
    pub fn from_u32(v: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| *r as u32 == v)
    }
}

/// Maps a module's Rust error to its C code. Every public error enum implements it, 1:1.
pub trait ToResult {
    /// The C code for this error.
    fn to_result(&self) -> blockdelta_result;
}

/// The C name of a result code (`"BLOCKDELTA_RESULT_TRACKER_OUT_OF_RANGE"`), as a static
/// NUL-terminated string owned by the library. Numbers that are not a code give
/// `"BLOCKDELTA_RESULT_UNKNOWN"`. Never NULL; never blocks; any thread.
#[cfg(feature = "capi")]
#[no_mangle]
pub extern "C" fn blockdelta_result_name(result: u32) -> *const c_char {
    match blockdelta_result::from_u32(result) {
        Some(r) => r.name().as_ptr(),
        None => c"BLOCKDELTA_RESULT_UNKNOWN".as_ptr(),
    }
}
