//! C ABI of tracker persistence (`docs/TRACKER.md`): `blockdelta_tracker_load`, which makes a
//! `blockdelta_tracker` whose state survives a clean restart, and `blockdelta_tracker_close`,
//! which writes its clean state and frees it. `take` and `commit` of such a tracker also record
//! to its state file (in `ffi/tracker.rs`).

use std::ffi::c_char;

use super::blockdelta_tracker;
use super::config_from;
use crate::ffi::callbacks::id16;
use crate::ffi::error::{fail_thread, record_thread_error, LastError};
use crate::ffi::handle::{arg_ref, into_handle, Out};
use crate::ffi::panic::boundary;
use crate::ffi::replica::path_arg;
use crate::ffi::result::{blockdelta_result, ToResult};
use crate::tracker::{
    ActivityLogConfig, GenerationId, LoadOutcome, PersistError, PersistOptions, ResetReason,
    StateFile,
};

/// The C code of each state-file error (`blockdelta_tracker_load`, and `take`, `commit` and
/// `close` of a loaded tracker).
impl ToResult for PersistError {
    fn to_result(&self) -> blockdelta_result {
        match self {
            PersistError::Tracker(e) => e.to_result(),
            PersistError::Io { .. } => blockdelta_result::TrackerStateIo,
            PersistError::Poisoned => blockdelta_result::TrackerStatePoisoned,
            PersistError::Locked { .. } => blockdelta_result::TrackerStateLocked,
            // The C handle owns its tracker by value: what can share it are writer handles.
            PersistError::StillShared { .. } => blockdelta_result::TrackerWritersRemain,
            PersistError::WritesInFlight { .. } => blockdelta_result::InvalidArgument,
            PersistError::NoActivityLog => blockdelta_result::TrackerNoActivityLog,
            PersistError::TooManyWriters { .. } => blockdelta_result::TrackerTooManyWriters,
            PersistError::BadActivityLog { .. } => blockdelta_result::TrackerBadActivityLog,
            // `PersistError` is non-exhaustive only for other crates; a new variant must get
            // its code here.
        }
    }
}

/// `*reason_out` of `blockdelta_tracker_load`: the state file was trusted; the generation and
/// the sequence numbers continue.
pub const BLOCKDELTA_TRACKER_LOAD_RESUMED: u32 = 0;
/// `*reason_out` of `blockdelta_tracker_load`: new generation, every block dirty; there was no
/// state file.
pub const BLOCKDELTA_TRACKER_LOAD_MISSING: u32 = 1;
/// ... the state file could not be read.
pub const BLOCKDELTA_TRACKER_LOAD_UNREADABLE: u32 = 2;
/// ... the state file is invalid: torn, damaged, another format or an unknown major version.
pub const BLOCKDELTA_TRACKER_LOAD_INVALID: u32 = 3;
/// ... the state file belongs to another disk id.
pub const BLOCKDELTA_TRACKER_LOAD_FOREIGN_DISK: u32 = 4;
/// ... the geometry (disk size, capacity, sector or block size) changed.
pub const BLOCKDELTA_TRACKER_LOAD_GEOMETRY_CHANGED: u32 = 5;
/// ... the last run did not close cleanly (crash, kill): marks may be missing from the file.
pub const BLOCKDELTA_TRACKER_LOAD_UNCLEAN: u32 = 6;
/// ... the replica is in another generation than the state file.
pub const BLOCKDELTA_TRACKER_LOAD_REPLICA_GENERATION: u32 = 7;
/// ... the replica is at a number the state never issued (the file is older than the replica).
pub const BLOCKDELTA_TRACKER_LOAD_REPLICA_AHEAD: u32 = 8;
/// ... the replica is behind the state's last commit.
pub const BLOCKDELTA_TRACKER_LOAD_REPLICA_BEHIND: u32 = 9;
/// `*reason_out` of `blockdelta_tracker_load`: the last run crashed and kept an activity log:
/// the generation and the numbers continue (after the crashed run's reservation), and the
/// dirty set is every block written since the last commit plus at most the log's bound.
pub const BLOCKDELTA_TRACKER_LOAD_RECOVERED: u32 = 10;
/// ... new generation, every block dirty: the last run crashed and its activity log cannot
/// be trusted (unreadable or damaged).
pub const BLOCKDELTA_TRACKER_LOAD_ACTIVITY_LOG: u32 = 11;

fn load_reason_code(outcome: &LoadOutcome) -> u32 {
    if let LoadOutcome::Recovered { .. } = outcome {
        return BLOCKDELTA_TRACKER_LOAD_RECOVERED;
    }
    match outcome.reset_reason() {
        None => BLOCKDELTA_TRACKER_LOAD_RESUMED,
        Some(ResetReason::ActivityLog { .. }) => BLOCKDELTA_TRACKER_LOAD_ACTIVITY_LOG,
        Some(ResetReason::Missing) => BLOCKDELTA_TRACKER_LOAD_MISSING,
        Some(ResetReason::Unreadable { .. }) => BLOCKDELTA_TRACKER_LOAD_UNREADABLE,
        Some(ResetReason::Invalid(_)) => BLOCKDELTA_TRACKER_LOAD_INVALID,
        Some(ResetReason::ForeignDisk { .. }) => BLOCKDELTA_TRACKER_LOAD_FOREIGN_DISK,
        Some(ResetReason::GeometryChanged { .. }) => BLOCKDELTA_TRACKER_LOAD_GEOMETRY_CHANGED,
        Some(ResetReason::Unclean { .. }) => BLOCKDELTA_TRACKER_LOAD_UNCLEAN,
        Some(ResetReason::ReplicaGeneration { .. }) => BLOCKDELTA_TRACKER_LOAD_REPLICA_GENERATION,
        Some(ResetReason::ReplicaAhead { .. }) => BLOCKDELTA_TRACKER_LOAD_REPLICA_AHEAD,
        Some(ResetReason::ReplicaBehind { .. }) => BLOCKDELTA_TRACKER_LOAD_REPLICA_BEHIND,
        // `ResetReason` is non-exhaustive only for other crates; a new variant must get its
        // code here.
    }
}

/// The name of a `blockdelta_tracker_load` reason (`"BLOCKDELTA_TRACKER_LOAD_UNCLEAN"`), as a
/// static NUL-terminated string owned by the library; `"BLOCKDELTA_TRACKER_LOAD_UNKNOWN"` for
/// other numbers. Never NULL; never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_load_reason_name(reason: u32) -> *const c_char {
    let name = match reason {
        BLOCKDELTA_TRACKER_LOAD_RESUMED => c"BLOCKDELTA_TRACKER_LOAD_RESUMED",
        BLOCKDELTA_TRACKER_LOAD_MISSING => c"BLOCKDELTA_TRACKER_LOAD_MISSING",
        BLOCKDELTA_TRACKER_LOAD_UNREADABLE => c"BLOCKDELTA_TRACKER_LOAD_UNREADABLE",
        BLOCKDELTA_TRACKER_LOAD_INVALID => c"BLOCKDELTA_TRACKER_LOAD_INVALID",
        BLOCKDELTA_TRACKER_LOAD_FOREIGN_DISK => c"BLOCKDELTA_TRACKER_LOAD_FOREIGN_DISK",
        BLOCKDELTA_TRACKER_LOAD_GEOMETRY_CHANGED => c"BLOCKDELTA_TRACKER_LOAD_GEOMETRY_CHANGED",
        BLOCKDELTA_TRACKER_LOAD_UNCLEAN => c"BLOCKDELTA_TRACKER_LOAD_UNCLEAN",
        BLOCKDELTA_TRACKER_LOAD_REPLICA_GENERATION => c"BLOCKDELTA_TRACKER_LOAD_REPLICA_GENERATION",
        BLOCKDELTA_TRACKER_LOAD_REPLICA_AHEAD => c"BLOCKDELTA_TRACKER_LOAD_REPLICA_AHEAD",
        BLOCKDELTA_TRACKER_LOAD_REPLICA_BEHIND => c"BLOCKDELTA_TRACKER_LOAD_REPLICA_BEHIND",
        BLOCKDELTA_TRACKER_LOAD_RECOVERED => c"BLOCKDELTA_TRACKER_LOAD_RECOVERED",
        BLOCKDELTA_TRACKER_LOAD_ACTIVITY_LOG => c"BLOCKDELTA_TRACKER_LOAD_ACTIVITY_LOG",
        _ => c"BLOCKDELTA_TRACKER_LOAD_UNKNOWN",
    };
    name.as_ptr()
}

/// Creates a tracker whose state survives a clean restart, from the state file at `path` (a
/// NUL-terminated path; layout and protocol in `docs/TRACKER.md`).
///
/// The geometry arguments are those of `blockdelta_tracker_new` (there is no start-clean flag:
/// the state comes from the file or every block is dirty). `disk_id` points to the disk's
/// 16-byte identity (copied): a file written for another id is not trusted.
/// `replica_generation` is NULL, or points to the 16-byte generation the replica reports
/// (copied) with `replica_sequence` its sequence: a state the replica cannot continue from is
/// not trusted. `flags` must be 0 (`BLOCKDELTA_RESULT_INVALID_ARGUMENT` otherwise).
///
/// If the file is clean and trusted, the tracker continues its generation and sequence
/// numbers and its dirty set (a taken but uncommitted checkpoint's blocks included):
/// `*reason_out` receives `BLOCKDELTA_TRACKER_LOAD_RESUMED`. Otherwise the tracker starts a new
/// generation with every block dirty (a full resync) and `*reason_out` receives why
/// (`BLOCKDELTA_TRACKER_LOAD_MISSING`, `_UNCLEAN`, ...; `blockdelta_tracker_load_reason_name`).
/// Before returning, the file is durably replaced by an in-use record, so that a crash from
/// now on makes the next load reset: only `blockdelta_tracker_close` writes a clean state.
/// (`blockdelta_tracker_load_with_log` keeps an activity log instead, so that a crash costs a
/// bounded resync.)
///
/// On success `*tracker_out` receives a tracker owned by the caller, used like one from
/// `blockdelta_tracker_new` (`take` and `commit` also record to the file); end it with
/// `blockdelta_tracker_close` (`blockdelta_tracker_free` leaves the file in use: the next load
/// resets). On failure (bad geometry; another tracker has this state file open:
/// `BLOCKDELTA_RESULT_TRACKER_STATE_LOCKED`; the in-use record cannot be written:
/// `BLOCKDELTA_RESULT_TRACKER_STATE_IO`) nothing is written to the outputs and
/// `blockdelta_last_error` says why. Allocates; blocks on file I/O and fsync; any thread.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn blockdelta_tracker_load(
    path: *const c_char,
    disk_size: u64,
    sector_size: u32,
    granularity: u32,
    memory_budget: u64,
    capacity: u64,
    disk_id: *const u8,
    replica_generation: *const u8,
    replica_sequence: u64,
    flags: u32,
    tracker_out: *mut *mut blockdelta_tracker,
    reason_out: *mut u32,
) -> blockdelta_result {
    boundary(|| {
        let args = LoadArgs {
            path,
            disk_size,
            sector_size,
            granularity,
            memory_budget,
            capacity,
            disk_id,
            replica_generation,
            replica_sequence,
            flags,
        };
        load(&args, None, tracker_out, reason_out)
    })
}

/// The arguments `blockdelta_tracker_load` and `_load_with_log` share.
pub(super) struct LoadArgs {
    pub(super) path: *const c_char,
    pub(super) disk_size: u64,
    pub(super) sector_size: u32,
    pub(super) granularity: u32,
    pub(super) memory_budget: u64,
    pub(super) capacity: u64,
    pub(super) disk_id: *const u8,
    pub(super) replica_generation: *const u8,
    pub(super) replica_sequence: u64,
    pub(super) flags: u32,
}

/// `blockdelta_tracker_load`, with an activity log when `log` is given.
pub(super) fn load(
    a: &LoadArgs,
    log: Option<ActivityLogConfig>,
    tracker_out: *mut *mut blockdelta_tracker,
    reason_out: *mut u32,
) -> Result<(), blockdelta_result> {
    let out = Out::new(tracker_out)?;
    let reason_out = Out::new(reason_out)?;
    // SAFETY: `path` is NULL or NUL-terminated; `disk_id` and `replica_generation` NULL or
    // 16 readable bytes (the callers' contracts).
    let (path, disk_id, replica) = unsafe {
        (
            path_arg(a.path)?,
            id16(a.disk_id)?.ok_or(blockdelta_result::NullParameter)?,
            id16(a.replica_generation)?,
        )
    };
    if a.flags != 0 {
        let code = blockdelta_result::InvalidArgument;
        record_thread_error(
            code,
            &format_args!("unknown tracker load flags {:#x}", a.flags),
        );
        return Err(code);
    }
    let config = config_from(
        a.disk_size,
        a.sector_size,
        a.granularity,
        a.memory_budget,
        a.capacity,
    )
    .start_clean(false);
    let mut options = PersistOptions::new(disk_id);
    if let Some(g) = replica {
        options = options.replica_point(GenerationId(g), a.replica_sequence);
    }
    if let Some(log) = log {
        options = options.activity_log(log);
    }
    let (inner, state, outcome) = StateFile::open(path, config, options).map_err(fail_thread)?;
    let handle = into_handle(blockdelta_tracker {
        inner,
        state: Some(state),
        last_error: LastError::new(),
    });
    // SAFETY: both outputs were checked non-NULL; the caller guarantees they are writable.
    unsafe {
        out.write(handle);
        reason_out.write(load_reason_code(&outcome));
    }
    Ok(())
}

/// Ends a tracker: for one from `blockdelta_tracker_load`, first writes its **clean** state
/// (the dirty set with a taken but uncommitted checkpoint merged back, the generation, the last
/// committed and last issued numbers) atomically to its state file (temporary file, fsync,
/// rename, fsync of the directory), so that the next load continues from there. Then frees the
/// tracker, whatever the outcome (NULL is a no-op returning `BLOCKDELTA_RESULT_OK`; for a
/// tracker from `blockdelta_tracker_new` this is `blockdelta_tracker_free`).
///
/// Every writer must have stopped: no other call on this tracker may be running or follow (a
/// mark after the clean state is written would be lost at the next restart). Every writer
/// handle (`blockdelta_tracker_writer_new`) must have been freed: while one remains, close
/// returns `BLOCKDELTA_RESULT_TRACKER_WRITERS_REMAIN` and neither writes nor frees anything. A failed write
/// is `BLOCKDELTA_RESULT_TRACKER_STATE_IO` (or `_STATE_POISONED` after an earlier failure): the
/// file then says "in use" or is the previous one, and the next load resets. Blocks on file
/// I/O and fsync; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_close(tracker: *mut blockdelta_tracker) -> blockdelta_result {
    boundary(|| {
        if tracker.is_null() {
            return Ok(());
        }
        // SAFETY: a non-NULL pointer from `blockdelta_tracker_new` or `_load`, not yet ended.
        let live = unsafe { arg_ref(tracker.cast_const()) }?;
        let others = live.state.as_ref().map_or(0, StateFile::open_writers);
        if others > 0 {
            // Refused before anything is written or freed, so that no writer is left with a
            // dangling tracker: the caller frees them and closes again.
            let code = PersistError::StillShared { others }.to_result();
            record_thread_error(
                code,
                &format_args!(
                    "{others} writer handles of this tracker remain: free them \
                     (blockdelta_tracker_writer_free), then close again; nothing was written or freed"
                ),
            );
            return Err(code);
        }
        // SAFETY: a non-NULL pointer from `blockdelta_tracker_new` or `_load`, ended exactly
        // once; ownership returns here and the handle is dropped at the end of this call.
        let t = unsafe { Box::from_raw(tracker) };
        let blockdelta_tracker { inner, state, .. } = *t;
        match state {
            Some(state) => state.close(inner).map_err(fail_thread),
            None => Ok(()),
        }
    })
}
