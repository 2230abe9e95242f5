//! C ABI of failback without a full copy (`docs/FAILBACK.md`): `blockdelta_failback_failover`
//! starts the new primary's lineage at the failover point; `blockdelta_failback_plan_new`
//! decides, from the store, the new primary's taken checkpoint and what is known of the
//! original, into a `blockdelta_failback_plan`: a delta whose extents a C sender ships with
//! `blockdelta_encoder_*` (header values from `blockdelta_failback_plan_header`), a checksum
//! resync (`blockdelta_failback_plan_resync` gives a `blockdelta_resync_plan`), or a full copy.
//!
//! A plan is an immutable snapshot owned by the caller, independent of the store (it outlives
//! it); any thread, many at once.

// C-style signatures with many plain arguments are the ABI.
#![allow(clippy::too_many_arguments)]

use super::error::{fail_thread, record_thread_error};
use super::handle::{
    arg_extents, arg_ref, copy_extents_at, free_handle, into_handle, out_slice, Out,
};
use super::panic::{boundary, boundary_value};
use super::replica::store::blockdelta_store;
use super::replica::{blockdelta_point_id, point_arg};
use super::result::{blockdelta_result, ToResult};
use super::resync::{blockdelta_hash_list, blockdelta_resync_plan};
use super::tracker::blockdelta_checkpoint;
use crate::failback::{
    self, FailbackError, FailbackPlan, Method, Original, TrackedChanges, Unproven,
};
use crate::tracker::{Extent, GenerationId};

#[cfg(test)]
#[path = "tests/failback.rs"]
mod tests;

/// `original_state` of `blockdelta_failback_plan_new`: the original's persistent tracker loaded
/// resumed (`blockdelta_tracker_load` reported no reset); its taken checkpoint and extents are
/// given.
pub const BLOCKDELTA_FAILBACK_ORIGINAL_RESUMED: u32 = 0;
/// `original_state`: the original disk is there but its tracker state was reset (a crash, a
/// lost or foreign state file): it is compared, not copied. No checkpoint is given.
pub const BLOCKDELTA_FAILBACK_ORIGINAL_UNPROVEN: u32 = 1;
/// `original_state`: the original disk is gone: only a full copy rebuilds it.
pub const BLOCKDELTA_FAILBACK_ORIGINAL_GONE: u32 = 2;

/// Plan method: ship the plan's extents (the union of the three sources).
pub const BLOCKDELTA_FAILBACK_DELTA: u32 = 0;
/// Plan method: compare hash lists of both disks (`blockdelta_failback_plan_resync`).
pub const BLOCKDELTA_FAILBACK_CHECKSUM_RESYNC: u32 = 1;
/// Plan method: ship the whole disk (the plan's one extent).
pub const BLOCKDELTA_FAILBACK_FULL_COPY: u32 = 2;

/// Why a plan is a checksum resync: it is not (a delta or a full copy).
pub const BLOCKDELTA_FAILBACK_REASON_NONE: u32 = 0;
/// Why: the new primary's checkpoint builds neither on the failover point nor on the lineage
/// the store started there.
pub const BLOCKDELTA_FAILBACK_REASON_NEW_PRIMARY_NOT_FROM_FAILOVER: u32 = 1;
/// Why: the original's tracker state was reset (`BLOCKDELTA_FAILBACK_ORIGINAL_UNPROVEN`).
pub const BLOCKDELTA_FAILBACK_REASON_ORIGINAL_UNTRUSTED: u32 = 2;
/// Why: the original's last committed point (its checkpoint's generation and
/// `from_sequence`) is not a point of the store.
pub const BLOCKDELTA_FAILBACK_REASON_ORIGINAL_NOT_IN_STORE: u32 = 3;

/// A failback decision and what to ship (opaque). Free with `blockdelta_failback_plan_free`.
pub struct blockdelta_failback_plan(FailbackPlan);

impl ToResult for FailbackError {
    fn to_result(&self) -> blockdelta_result {
        use blockdelta_result as R;
        match self {
            FailbackError::NoSuchPoint(_) => R::FailbackNoSuchPoint,
            FailbackError::DiskSizeMismatch { .. } => R::FailbackDiskSizeMismatch,
            FailbackError::ExtentOutOfRange { .. } => R::FailbackExtentOutOfRange,
            FailbackError::InvalidCheckpoint { .. } => R::FailbackInvalidCheckpoint,
            FailbackError::NeedsChecksumResync => R::FailbackNeedsChecksumResync,
            FailbackError::HeaderMismatch { .. } => R::FailbackHeaderMismatch,
            FailbackError::Replica(e) => e.to_result(),
            FailbackError::Resync(e) => e.to_result(),
            // `FailbackError` is non-exhaustive only for other crates; a new variant must get
            // its code here.
        }
    }
}

/// Fails over to point `*point` of the store: the store starts a new lineage there (a rollback
/// when the point is older than the newest, whose later points stay readable, detached), so
/// the original can never continue its own lineage into it. `generation_out` (16 bytes) and
/// `*sequence_out` receive the lineage the new primary's tracker adopts with
/// `blockdelta_tracker_adopt_lineage(tracker, generation, sequence, NULL, 0)` (its disk is the
/// point's image). `BLOCKDELTA_RESULT_FAILBACK_NO_SUCH_POINT` for a point the store does not
/// list (or a detached one). Blocks on file I/O and fsync; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_failback_failover(
    store: *mut blockdelta_store,
    point: *const blockdelta_point_id,
    generation_out: *mut u8,
    sequence_out: *mut u64,
) -> blockdelta_result {
    boundary(|| {
        super::replica::test_panic_hook();
        let seq = Out::new(sequence_out)?;
        // SAFETY: `store` NULL or a live handle; `point` NULL or readable; `generation_out`
        // NULL or writable for 16 bytes.
        let (s, point, gen) = unsafe {
            (
                arg_ref(store)?,
                point_arg(point)?,
                out_slice(generation_out, 16)?,
            )
        };
        let f = failback::failover(&s.inner, point).map_err(|e| s.last_error.fail(e))?;
        gen.copy_from_slice(&f.generation.0);
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { seq.write(f.sequence) };
        Ok(())
    })
}

/// Reads a checkpoint and its extents into changes.
///
/// # Safety
/// `cp` NULL or readable; `(extents, count)` readable or `(NULL, 0)`.
unsafe fn changes_arg(
    cp: *const blockdelta_checkpoint,
    extents: *const Extent,
    count: usize,
) -> Result<TrackedChanges, blockdelta_result> {
    // SAFETY: forwarded contract.
    let (cp, list) = unsafe {
        (
            arg_ref(cp)?,
            arg_extents(extents, count, |i, kind| {
                let code = blockdelta_result::InvalidArgument;
                record_thread_error(
                    code,
                    &format_args!("extent {i} has kind {kind}: not WRITE (0) or DISCARD (1)"),
                );
                code
            })?,
        )
    };
    Ok(TrackedChanges::new(
        GenerationId(cp.generation),
        cp.from_sequence,
        cp.sequence,
        cp.disk_size,
        list.to_vec(),
    ))
}

/// Plans the failback of the original disk to the new primary that failed over at
/// `*failover` (a point of `store`):
/// - `new_primary`: the checkpoint taken (`blockdelta_tracker_take`) on the new primary's
///   tracker, and `(new_primary_extents, new_primary_count)` all its extents;
/// - `original_state`: `BLOCKDELTA_FAILBACK_ORIGINAL_*`; for `_RESUMED`, `original` is the
///   checkpoint taken on the original's loaded tracker and `(original_extents,
///   original_count)` its extents; for `_UNPROVEN` and `_GONE` they are ignored (NULL, 0).
///
/// Decides (see `blockdelta_failback_plan_info`): a full copy when the original is gone; a
/// checksum resync when either side cannot prove its lineage; else a delta of the union of the
/// new primary's extents, the store's difference between the failover point and the
/// original's last committed point, and the original's extents. Errors: the point is not in
/// the store (`BLOCKDELTA_RESULT_FAILBACK_NO_SUCH_POINT`), a checkpoint's disk size is not the
/// point's (`_DISK_SIZE_MISMATCH`), an extent past the end (`_EXTENT_OUT_OF_RANGE`), a
/// checkpoint not above its base (`_INVALID_CHECKPOINT`), an unknown `original_state` or
/// extent kind (`BLOCKDELTA_RESULT_INVALID_ARGUMENT`). Everything is copied; on success
/// `*plan_out` receives a plan the caller frees with `blockdelta_failback_plan_free`. Reads
/// the store's indexes only (no disk I/O); any thread.
#[no_mangle]
pub extern "C" fn blockdelta_failback_plan_new(
    store: *const blockdelta_store,
    failover: *const blockdelta_point_id,
    new_primary: *const blockdelta_checkpoint,
    new_primary_extents: *const Extent,
    new_primary_count: usize,
    original_state: u32,
    original: *const blockdelta_checkpoint,
    original_extents: *const Extent,
    original_count: usize,
    plan_out: *mut *mut blockdelta_failback_plan,
) -> blockdelta_result {
    boundary(|| {
        super::replica::test_panic_hook();
        let out = Out::new(plan_out)?;
        // SAFETY: per the contract: a live store, readable point and checkpoints, extent
        // arrays readable or (NULL, 0).
        let (s, f, b) = unsafe {
            (
                arg_ref(store)?,
                point_arg(failover)?,
                changes_arg(new_primary, new_primary_extents, new_primary_count)?,
            )
        };
        let o = match original_state {
            BLOCKDELTA_FAILBACK_ORIGINAL_RESUMED => Original::Resumed(
                // SAFETY: as above.
                unsafe { changes_arg(original, original_extents, original_count)? },
            ),
            BLOCKDELTA_FAILBACK_ORIGINAL_UNPROVEN => Original::Unproven,
            BLOCKDELTA_FAILBACK_ORIGINAL_GONE => Original::Gone,
            other => {
                let code = blockdelta_result::InvalidArgument;
                record_thread_error(
                    code,
                    &format_args!("original_state {other} is not a BLOCKDELTA_FAILBACK_ORIGINAL_*"),
                );
                return Err(code);
            }
        };
        let plan = failback::plan(&s.inner, f, &b, &o).map_err(|e| s.last_error.fail(e))?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out.write(into_handle(blockdelta_failback_plan(plan))) };
        Ok(())
    })
}

/// Writes `v` to an optional output.
///
/// # Safety
/// `p` is NULL or writable.
unsafe fn put<T>(p: *mut T, v: T) {
    if !p.is_null() {
        // SAFETY: non-NULL and writable per the caller's contract.
        unsafe { p.write(v) }
    }
}

/// The plan's method (`BLOCKDELTA_FAILBACK_DELTA`, `_CHECKSUM_RESYNC`, `_FULL_COPY`), why it is
/// a checksum resync (`BLOCKDELTA_FAILBACK_REASON_*`, `_NONE` otherwise), the bytes of each
/// source (the new primary's changes, the store's difference, the original's unshipped
/// changes), the bytes its extents cover (the union), and how many extents it has; each output
/// NULL to skip.
#[no_mangle]
pub extern "C" fn blockdelta_failback_plan_info(
    plan: *const blockdelta_failback_plan,
    method_out: *mut u32,
    reason_out: *mut u32,
    new_primary_bytes_out: *mut u64,
    between_bytes_out: *mut u64,
    original_bytes_out: *mut u64,
    total_bytes_out: *mut u64,
    extent_count_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle.
        let p = unsafe { &arg_ref(plan)?.0 };
        let (method, reason) = match &p.method {
            Method::Delta => (BLOCKDELTA_FAILBACK_DELTA, BLOCKDELTA_FAILBACK_REASON_NONE),
            Method::FullCopy => (
                BLOCKDELTA_FAILBACK_FULL_COPY,
                BLOCKDELTA_FAILBACK_REASON_NONE,
            ),
            Method::ChecksumResync(why) => (
                BLOCKDELTA_FAILBACK_CHECKSUM_RESYNC,
                match why {
                    Unproven::NewPrimaryNotFromFailover { .. } => {
                        BLOCKDELTA_FAILBACK_REASON_NEW_PRIMARY_NOT_FROM_FAILOVER
                    }
                    Unproven::OriginalUntrusted => BLOCKDELTA_FAILBACK_REASON_ORIGINAL_UNTRUSTED,
                    Unproven::OriginalNotInStore { .. } => {
                        BLOCKDELTA_FAILBACK_REASON_ORIGINAL_NOT_IN_STORE
                    }
                },
            ),
        };
        // SAFETY: each output is NULL or writable for its type per the contract.
        unsafe {
            put(method_out, method);
            put(reason_out, reason);
            put(new_primary_bytes_out, p.new_primary_bytes);
            put(between_bytes_out, p.between_bytes);
            put(original_bytes_out, p.original_bytes);
            put(total_bytes_out, p.total_bytes);
            put(extent_count_out, p.extents.len());
        }
        Ok(())
    })
}

/// The stream header the plan's stream must carry, for `blockdelta_encoder_new`: the disk id
/// (`disk_id_out`, 16 bytes), the new primary's checkpoint lineage (`generation_out`, 16 bytes;
/// `*from_seq_out`; `*to_seq_out`: once the stream is applied, the original is at this
/// checkpoint of the new primary's lineage, and the new primary commits it) and the disk size
/// (`*disk_size_out`). All outputs required. Any thread.
#[no_mangle]
pub extern "C" fn blockdelta_failback_plan_header(
    plan: *const blockdelta_failback_plan,
    disk_id_out: *mut u8,
    generation_out: *mut u8,
    from_seq_out: *mut u64,
    to_seq_out: *mut u64,
    disk_size_out: *mut u64,
) -> blockdelta_result {
    boundary(|| {
        let (from, to, size) = (
            Out::new(from_seq_out)?,
            Out::new(to_seq_out)?,
            Out::new(disk_size_out)?,
        );
        if disk_id_out.is_null() || generation_out.is_null() {
            return Err(blockdelta_result::NullParameter);
        }
        // SAFETY: a live handle; the id outputs are non-NULL and writable for 16 bytes.
        let (p, id, gen) = unsafe {
            (
                &arg_ref(plan)?.0,
                out_slice(disk_id_out, 16)?,
                out_slice(generation_out, 16)?,
            )
        };
        id.copy_from_slice(&p.disk_id);
        gen.copy_from_slice(&p.generation.0);
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe {
            from.write(p.from_sequence);
            to.write(p.to_sequence);
            size.write(p.disk_size);
        }
        Ok(())
    })
}

/// Copies up to `cap` of the plan's extents (ascending, coalesced; WRITE, or DISCARD only where
/// the new primary discarded and no other source wrote), from index `start` on, into
/// `extents_out`; `*n_out` receives how many. 0 is returned only at or past the end, whatever
/// `cap` is: `cap` 0 before the end is `BLOCKDELTA_RESULT_BUFFER_TOO_SMALL`. Give them to
/// `blockdelta_encoder_set_extents`. A checksum-resync plan has none. Any thread.
#[no_mangle]
pub extern "C" fn blockdelta_failback_plan_extents(
    plan: *const blockdelta_failback_plan,
    start: usize,
    extents_out: *mut Extent,
    cap: usize,
    n_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle; `(extents_out, cap)` writable or `(NULL, 0)`; `n_out` NULL or
        // writable.
        unsafe { copy_extents_at(&arg_ref(plan)?.0.extents, start, extents_out, cap, n_out) }
    })
}

/// The checksum path: compares the original's hash list with the new primary's (same salt and
/// block size, else `BLOCKDELTA_RESULT_RESYNC_LIST_MISMATCH`; both of the plan's disk size,
/// else `BLOCKDELTA_RESULT_FAILBACK_DISK_SIZE_MISMATCH`) into a new resync plan at
/// `*resync_out` (free it with `blockdelta_resync_plan_free`), whose extents are shipped under
/// the header of `blockdelta_failback_plan_header`. Any method may take it. Any thread.
#[no_mangle]
pub extern "C" fn blockdelta_failback_plan_resync(
    plan: *const blockdelta_failback_plan,
    original: *const blockdelta_hash_list,
    new_primary: *const blockdelta_hash_list,
    resync_out: *mut *mut blockdelta_resync_plan,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(resync_out)?;
        // SAFETY: live handles.
        let (p, o, n) = unsafe { (arg_ref(plan)?, arg_ref(original)?, arg_ref(new_primary)?) };
        let r = p.0.resync(&o.0, &n.0).map_err(fail_thread)?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out.write(into_handle(blockdelta_resync_plan(r))) };
        Ok(())
    })
}

/// Frees a plan; NULL is a no-op.
#[no_mangle]
pub extern "C" fn blockdelta_failback_plan_free(plan: *mut blockdelta_failback_plan) {
    boundary_value((), || {
        // SAFETY: NULL or a handle from this library, freed once.
        unsafe { free_handle(plan) }
    })
}
