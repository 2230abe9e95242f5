//! `blockdelta_result`: the one error code type of the C ABI.
//!
//! Numbers are stable and never reused: a retired code stays here as a comment.
//! Ranges: 0-99 general, 100-199 tracker, 200-299 stream, 300-399 support.

use std::ffi::{c_char, CStr};

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
#[no_mangle]
pub extern "C" fn blockdelta_result_name(result: u32) -> *const c_char {
    match blockdelta_result::from_u32(result) {
        Some(r) => r.name().as_ptr(),
        None => c"BLOCKDELTA_RESULT_UNKNOWN".as_ptr(),
    }
}
