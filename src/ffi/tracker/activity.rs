//! C ABI of the tracker's activity log (`docs/TRACKER.md`, "Activity log"):
//! `blockdelta_tracker_load_with_log`, which makes a loaded tracker whose crash costs a bounded
//! resync, the writer handles the I/O threads admit and complete writes through
//! (`blockdelta_tracker_writer_*`), and the group-commit calls (`wait`, `flush`, ticket polling,
//! statistics).
//!
//! The write path (`blockdelta_tracker_writer_begin` of a hot region, `_complete`) stays as the
//! Rust one: no lock, no system call, no allocation, and no message formatted unless it fails.

use std::ffi::c_char;
use std::ptr::NonNull;

use super::state::{load, LoadArgs};
use super::{blockdelta_tracker, with_tracker};
use crate::ffi::error::record_thread_error;
use crate::ffi::handle::{arg_ref, free_handle, into_handle, Out};
use crate::ffi::panic::{boundary, boundary_value};
use crate::ffi::result::blockdelta_result;
use crate::tracker::{
    ActivityLogConfig, Admission, PersistError, StateFile, StateFileWriter, Ticket, WriteToken,
    DEFAULT_ACTIVE_REGIONS, DEFAULT_LOG_LIMIT, DEFAULT_REGION_SIZE, DEFAULT_WRITERS,
};

/// The activity log's settings for `blockdelta_tracker_load_with_log`. A plain value: zero it
/// (`= {0}`) and set what differs from the defaults; every field left 0 takes its default.
///
/// After a crash the next checkpoint holds every block written since the last commit plus at
/// most `active_regions * region_size` bytes more (the bound).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct blockdelta_activity_log_config {
    /// Region size in bytes: a power of two from 64 KiB to 1 GiB, at least the tracking block
    /// size. 0: 4 MiB (DRBD's extent).
    pub region_size: u64,
    /// Most regions active at once, 1 to 65,536. 0: 1,237 (DRBD's default `al-extents`).
    pub active_regions: u32,
    /// Most writer handles at once, 1 to 4,096. 0: 64.
    pub writers: u32,
    /// Log bytes after which the state file is rewritten and the log starts over. 0: 4 MiB.
    pub log_limit: u64,
    /// Must be 0 (`BLOCKDELTA_RESULT_INVALID_ARGUMENT` otherwise): room for later settings,
    /// whose 0 will mean their default.
    pub reserved: [u64; 4],
}

/// The activity log's counters since load (`blockdelta_tracker_activity_stats`). A plain value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct blockdelta_activity_stats {
    /// Group commits that wrote a record (each one write and one fsync of the log).
    pub group_commits: u64,
    /// Regions made active.
    pub activations: u64,
    /// Regions evicted (their dirty bits written to the log first).
    pub evictions: u64,
    /// State-file rewrites (commit, sequence reservation, log full).
    pub state_writes: u64,
    /// Regions active now.
    pub active: u64,
    /// 1 when the write path's barrier is `membarrier(2)` (then `begin` has no fence and no
    /// atomic read-modify-write), 0 when it is a fence in every `begin`.
    pub membarrier: u32,
    /// Written as 0.
    pub reserved0: u32,
    /// Written as 0: room for later counters.
    pub reserved: [u64; 4],
}

/// A write-path handle of a tracker with an activity log, for one I/O thread. Opaque; create
/// with `blockdelta_tracker_writer_new`, free with `blockdelta_tracker_writer_free`.
///
/// One thread at a time (it may move between threads); completions on other threads go through
/// `blockdelta_tracker_complete`. It borrows its tracker: every writer must be freed before
/// `blockdelta_tracker_close` (which refuses otherwise) or `blockdelta_tracker_free`.
pub struct blockdelta_tracker_writer {
    /// The tracker this writer's slot belongs to (borrowed; outlives the writer by contract).
    tracker: NonNull<blockdelta_tracker>,
    inner: StateFileWriter,
}

/// The C token of an admitted write: the Rust token plus one, so that 0 is never a token (a
/// driver that completes the token of a write it was told to wait for is refused instead of
/// unbalancing the in-flight counts).
fn token_to_c(t: WriteToken) -> u64 {
    t.to_raw() + 1
}

fn token_from_c(
    token: u64,
    record: impl FnOnce(&dyn std::fmt::Display),
) -> Result<WriteToken, blockdelta_result> {
    match token.checked_sub(1) {
        Some(raw) => Ok(WriteToken::from_raw(raw)),
        None => {
            record(&"token 0 is not a write token: the write was not admitted (wait for its ticket, then begin again)");
            Err(blockdelta_result::InvalidArgument)
        }
    }
}

/// `value`, or `default` when it is 0.
fn or_default<T: PartialEq + Default>(value: T, default: T) -> T {
    if value == T::default() {
        default
    } else {
        value
    }
}

/// The Rust configuration of a C one: zero fields take their defaults.
fn log_config(c: &blockdelta_activity_log_config) -> Result<ActivityLogConfig, blockdelta_result> {
    if c.reserved != [0; 4] {
        let code = blockdelta_result::InvalidArgument;
        record_thread_error(
            code,
            &"blockdelta_activity_log_config.reserved must be zero",
        );
        return Err(code);
    }
    Ok(ActivityLogConfig::default()
        .region_size(or_default(c.region_size, DEFAULT_REGION_SIZE))
        .active_regions(or_default(c.active_regions, DEFAULT_ACTIVE_REGIONS))
        .writers(or_default(c.writers, DEFAULT_WRITERS))
        .log_limit(or_default(c.log_limit, DEFAULT_LOG_LIMIT)))
}

/// `blockdelta_tracker_load` with an activity log (`*log`, read during the call only; zero
/// fields take their defaults): writes go through writer handles
/// (`blockdelta_tracker_writer_new`), and after a crash (a kill, a power loss, a
/// `blockdelta_tracker_free` without close) the next load continues the same generation:
/// `*reason_out` receives `BLOCKDELTA_TRACKER_LOAD_RECOVERED`, and the next take holds every
/// block written since the last commit plus at most `active_regions * region_size` bytes.
///
/// Every other argument, output and outcome is as for `blockdelta_tracker_load` (a clean
/// close then load is `BLOCKDELTA_TRACKER_LOAD_RESUMED`; an untrusted file or log resets, e.g.
/// `BLOCKDELTA_TRACKER_LOAD_ACTIVITY_LOG`). A setting out of range is
/// `BLOCKDELTA_RESULT_TRACKER_BAD_ACTIVITY_LOG` (the message names it), nonzero reserved fields
/// `BLOCKDELTA_RESULT_INVALID_ARGUMENT`, a NULL `log` `BLOCKDELTA_RESULT_NULL_PARAMETER`;
/// nothing is written to the outputs then. Allocates (the log's tables, sized by the settings);
/// blocks on file I/O and fsync; any thread.
///
/// Marks through `blockdelta_tracker_mark_write` and `_mark_discard` bypass the log: a crash
/// may lose them. Use writer handles for every write of such a tracker.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn blockdelta_tracker_load_with_log(
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
    log: *const blockdelta_activity_log_config,
    tracker_out: *mut *mut blockdelta_tracker,
    reason_out: *mut u32,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: the caller passes NULL or a readable settings struct.
        let config = log_config(unsafe { arg_ref(log) }?)?;
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
        load(&args, Some(config), tracker_out, reason_out)
    })
}

/// Creates a writer handle for one I/O thread of `tracker` (a tracker from
/// `blockdelta_tracker_load_with_log`; any other is `BLOCKDELTA_RESULT_TRACKER_NO_ACTIVITY_LOG`).
/// When every handle the log's `writers` setting allows is taken:
/// `BLOCKDELTA_RESULT_TRACKER_TOO_MANY_WRITERS` (free one first).
///
/// On success `*writer_out` receives a handle owned by the caller, which borrows `tracker`:
/// free it with `blockdelta_tracker_writer_free` before `blockdelta_tracker_close` or
/// `blockdelta_tracker_free`. Allocates; control path; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_writer_new(
    tracker: *const blockdelta_tracker,
    writer_out: *mut *mut blockdelta_tracker_writer,
) -> blockdelta_result {
    with_tracker(tracker, |t| {
        let out = Out::new(writer_out)?;
        let inner = match &t.state {
            Some(state) => state.writer(),
            None => Err(PersistError::NoActivityLog),
        }
        .map_err(|e| t.last_error.fail(e))?;
        let handle = into_handle(blockdelta_tracker_writer {
            tracker: NonNull::from(t),
            inner,
        });
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Frees a writer handle. NULL is a no-op. No other call on it may be running or follow.
///
/// A write it admitted and that has not completed keeps its slot taken (evictions go on
/// waiting for it) until `blockdelta_tracker_complete` releases it. Freeing a writer after
/// its tracker was freed is allowed (it only gives its slot back); any other call is not.
/// Control path; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_writer_free(writer: *mut blockdelta_tracker_writer) {
    // SAFETY: the caller passes NULL or a pointer from `blockdelta_tracker_writer_new`, exactly
    // once. Dropping it touches the log's shared state (reference-counted), never the tracker.
    boundary_value((), || unsafe { free_handle(writer) })
}

/// Runs `f` on a writer and its tracker.
#[inline(always)]
fn with_writer<F>(writer: *mut blockdelta_tracker_writer, f: F) -> blockdelta_result
where
    F: FnOnce(&blockdelta_tracker_writer, &blockdelta_tracker) -> Result<(), blockdelta_result>,
{
    boundary(|| {
        // SAFETY: the caller passes NULL or a live writer, used by one thread at a time.
        let w = unsafe { arg_ref(writer.cast_const()) }?;
        // SAFETY: a writer borrows its tracker, which the caller keeps alive until the writer
        // is freed (`blockdelta_tracker_close` refuses while writers remain).
        let t = unsafe { w.tracker.as_ref() };
        f(w, t)
    })
}

/// Asks to write `len` bytes at `offset`, **before** the driver submits the write.
///
/// Returns `BLOCKDELTA_RESULT_OK` with either:
/// - `*admitted_out` true: every region the write touches is durably active. Submit the
///   write now; when it completed, call `blockdelta_tracker_writer_complete` (or
///   `_complete_discard`, or `blockdelta_tracker_complete` from another thread) with
///   `*token_out` (never 0). `*ticket_out` is 0. Lock-free: no lock, no system call, no
///   allocation (with `membarrier(2)`, not even an atomic read-modify-write).
/// - `*admitted_out` false: a region is cold and was queued for activation. Do **not**
///   submit the write: wait for `*ticket_out` (never 0) with `blockdelta_tracker_wait`, or poll
///   it with `blockdelta_tracker_ticket_durable` after a `blockdelta_tracker_flush`
///   elsewhere, then call begin again. `*token_out` is 0 (completing it is refused). Takes a
///   short lock (the queue of cold regions), no system call, no allocation.
///
/// Any other code is a failure, with nothing admitted and nothing written to the outputs: a
/// range past the disk end is `BLOCKDELTA_RESULT_TRACKER_OUT_OF_RANGE`; after a failed log
/// write a cold region is `BLOCKDELTA_RESULT_TRACKER_STATE_POISONED` (hot regions still go).
/// `len == 0` is admitted. The three outputs are caller-owned. One thread at a time per writer.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_writer_begin(
    writer: *mut blockdelta_tracker_writer,
    offset: u64,
    len: u64,
    admitted_out: *mut bool,
    token_out: *mut u64,
    ticket_out: *mut u64,
) -> blockdelta_result {
    with_writer(writer, |w, t| {
        let admitted = Out::new(admitted_out)?;
        let token = Out::new(token_out)?;
        let ticket = Out::new(ticket_out)?;
        let (go, tok, tick) = match w.inner.begin(&t.inner, offset, len) {
            Ok(Admission::Go(tok)) => (true, token_to_c(tok), 0),
            Ok(Admission::Wait(tick)) => (false, 0, tick.0),
            Err(e) => return Err(t.last_error.fail(e)),
        };
        // SAFETY: checked non-NULL; the caller guarantees they are writable.
        unsafe {
            admitted.write(go);
            token.write(tok);
            ticket.write(tick);
        }
        Ok(())
    })
}

/// The write admitted by `blockdelta_tracker_writer_begin` with `token` completed: marks
/// `len` bytes at `offset` as written (the range the write really covered, within the one
/// admitted), then releases the write (its regions may be evicted only once every write they
/// admitted was released). Call it on the thread using `writer`; another thread uses
/// `blockdelta_tracker_complete`.
///
/// Lock-free: no lock, no system call, no allocation. A range past the disk end marks nothing
/// and is `BLOCKDELTA_RESULT_TRACKER_OUT_OF_RANGE`; the write is released all the same. Token 0
/// (a write told to wait) is `BLOCKDELTA_RESULT_INVALID_ARGUMENT`, with nothing released.
/// Complete each admitted token exactly once.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_writer_complete(
    writer: *mut blockdelta_tracker_writer,
    token: u64,
    offset: u64,
    len: u64,
) -> blockdelta_result {
    complete_local(writer, token, offset, len, false)
}

/// `blockdelta_tracker_writer_complete` for a discard (trim/unmap) admitted by
/// `blockdelta_tracker_writer_begin`. Same rules.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_writer_complete_discard(
    writer: *mut blockdelta_tracker_writer,
    token: u64,
    offset: u64,
    len: u64,
) -> blockdelta_result {
    complete_local(writer, token, offset, len, true)
}

#[inline(always)]
fn complete_local(
    writer: *mut blockdelta_tracker_writer,
    token: u64,
    offset: u64,
    len: u64,
    discard: bool,
) -> blockdelta_result {
    with_writer(writer, |w, t| {
        let tok = token_from_c(token, |m| {
            t.last_error.record(blockdelta_result::InvalidArgument, m);
        })?;
        let r = if discard {
            w.inner.complete_discard(&t.inner, tok, offset, len)
        } else {
            w.inner.complete(&t.inner, tok, offset, len)
        };
        r.map_err(|e| t.last_error.fail(e))
    })
}

/// Completes a write admitted by any writer of `tracker`, from any thread (an I/O completion
/// thread): marks `len` bytes at `offset` as written, then releases the write through one
/// atomic add. Otherwise as `blockdelta_tracker_writer_complete`; a tracker without an activity
/// log is `BLOCKDELTA_RESULT_TRACKER_NO_ACTIVITY_LOG` with nothing marked. Lock-free; no system
/// call; no allocation; any number of threads at once.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_complete(
    tracker: *const blockdelta_tracker,
    token: u64,
    offset: u64,
    len: u64,
) -> blockdelta_result {
    complete_remote(tracker, token, offset, len, false)
}

/// `blockdelta_tracker_complete` for a discard (trim/unmap). Same rules.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_complete_discard(
    tracker: *const blockdelta_tracker,
    token: u64,
    offset: u64,
    len: u64,
) -> blockdelta_result {
    complete_remote(tracker, token, offset, len, true)
}

#[inline(always)]
fn complete_remote(
    tracker: *const blockdelta_tracker,
    token: u64,
    offset: u64,
    len: u64,
    discard: bool,
) -> blockdelta_result {
    with_tracker(tracker, |t| {
        let tok = token_from_c(token, |m| {
            t.last_error.record(blockdelta_result::InvalidArgument, m);
        })?;
        with_state(t, |s| {
            s.complete_remote(&t.inner, tok, offset, len, discard)
        })
    })
}

/// Runs `f` on the state file of a loaded tracker (`NoActivityLog` for one that has none),
/// recording its error on the tracker.
fn with_state<F>(t: &blockdelta_tracker, f: F) -> Result<(), blockdelta_result>
where
    F: FnOnce(&StateFile) -> Result<(), PersistError>,
{
    match &t.state {
        Some(s) => f(s),
        None => Err(PersistError::NoActivityLog),
    }
    .map_err(|e| t.last_error.fail(e))
}

/// Waits until the group commit of `ticket` (from `blockdelta_tracker_writer_begin`) is
/// durable: then its regions are active and begin admits the write. When no other thread is
/// writing a group commit, this one writes it (one log write and one fsync for every cold
/// region queued meanwhile, evicting the least recently used regions when the log is full,
/// after their admitted writes completed).
///
/// Blocks on file I/O and fsync, and, when it must evict, on the completion of every write
/// admitted before (of any writer): never call it while this thread holds an admitted write
/// that only it will complete.
/// After a failed log write: `BLOCKDELTA_RESULT_TRACKER_STATE_POISONED` (the write must not
/// be submitted). No activity log: `BLOCKDELTA_RESULT_TRACKER_NO_ACTIVITY_LOG`. Any thread.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_wait(
    tracker: *const blockdelta_tracker,
    ticket: u64,
) -> blockdelta_result {
    with_tracker(tracker, |t| {
        with_state(t, |s| s.wait(&t.inner, Ticket(ticket)))
    })
}

/// Whether the group commit of `ticket` is durable (`*durable_out`, caller-owned): for drivers
/// that poll instead of blocking in `blockdelta_tracker_wait`, while another thread calls
/// `blockdelta_tracker_flush`. One atomic load; never blocks; any thread. No activity log:
/// `BLOCKDELTA_RESULT_TRACKER_NO_ACTIVITY_LOG`.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_ticket_durable(
    tracker: *const blockdelta_tracker,
    ticket: u64,
    durable_out: *mut bool,
) -> blockdelta_result {
    with_tracker(tracker, |t| {
        let out = Out::new(durable_out)?;
        let durable = match t.state.as_ref().and_then(|s| s.is_durable(Ticket(ticket))) {
            Some(d) => d,
            None => return Err(t.last_error.fail(PersistError::NoActivityLog)),
        };
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { out.write(durable) };
        Ok(())
    })
}

/// Writes one group commit now: every cold region queued by a writer becomes durably active
/// (one log write, one fsync; nothing when none is queued). For drivers that poll tickets
/// (`blockdelta_tracker_ticket_durable`): call it from a thread that may block. Same blocking
/// and errors as `blockdelta_tracker_wait`. Any thread.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_flush(
    tracker: *const blockdelta_tracker,
) -> blockdelta_result {
    with_tracker(tracker, |t| with_state(t, |s| s.flush(&t.inner)))
}

/// Copies the activity log's counters since load into `*stats_out` (caller-owned). No activity
/// log: `BLOCKDELTA_RESULT_TRACKER_NO_ACTIVITY_LOG`, nothing written. Takes the state file's
/// lock briefly (waits for a group commit in progress); any thread.
#[no_mangle]
pub extern "C" fn blockdelta_tracker_activity_stats(
    tracker: *const blockdelta_tracker,
    stats_out: *mut blockdelta_activity_stats,
) -> blockdelta_result {
    with_tracker(tracker, |t| {
        let out = Out::new(stats_out)?;
        let s = match t.state.as_ref().and_then(StateFile::activity_stats) {
            Some(s) => s,
            None => return Err(t.last_error.fail(PersistError::NoActivityLog)),
        };
        let v = blockdelta_activity_stats {
            group_commits: s.group_commits,
            activations: s.activations,
            evictions: s.evictions,
            state_writes: s.state_writes,
            active: s.active,
            membarrier: s.membarrier.into(),
            ..Default::default()
        };
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { out.write(v) };
        Ok(())
    })
}

#[cfg(test)]
#[path = "../tests/tracker_activity.rs"]
mod tests;
