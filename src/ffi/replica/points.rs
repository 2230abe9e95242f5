//! Snapshot lists: `blockdelta_point_list` (recovery points, from `blockdelta_store_points` and
//! `blockdelta_store_retain`) and `blockdelta_extent_list` (ranges, from
//! `blockdelta_store_rollback` and `blockdelta_store_changed_between`).
//!
//! Both are immutable values owned by the caller: they do not change when the store does, may
//! outlive the store, and may be read from any number of threads at once. Free each with its
//! `_free` (NULL is a no-op). `PointInfo` may grow, so a point is read through accessors
//! (`blockdelta_point_list_value` with a `blockdelta_point_field`), not as a C struct.

use std::ffi::c_char;

use super::blockdelta_point_id;
use crate::ffi::error::record_thread_error;
use crate::ffi::handle::{arg_ref, copy_str, free_handle, out_slice, Out};
use crate::ffi::panic::{boundary, boundary_value};
use crate::ffi::result::blockdelta_result;
use crate::replica::{Expired, ExpiryReason, PointInfo};
use crate::stream::BookmarkKind;
use crate::tracker::Extent;

/// A snapshot of recovery points (opaque). Free with `blockdelta_point_list_free`.
pub struct blockdelta_point_list {
    items: Vec<(PointInfo, Option<ExpiryReason>)>,
}

impl blockdelta_point_list {
    pub(crate) fn from_points(points: Vec<PointInfo>) -> Self {
        blockdelta_point_list {
            items: points.into_iter().map(|p| (p, None)).collect(),
        }
    }

    pub(crate) fn from_expired(expired: Vec<Expired>) -> Self {
        blockdelta_point_list {
            items: expired
                .into_iter()
                .map(|e| (e.point, Some(e.reason)))
                .collect(),
        }
    }
}

/// A snapshot of byte ranges (opaque), ascending. Free with `blockdelta_extent_list_free`.
pub struct blockdelta_extent_list {
    items: Vec<Extent>,
}

impl blockdelta_extent_list {
    pub(crate) fn new(items: Vec<Extent>) -> Self {
        blockdelta_extent_list { items }
    }
}

/// The numbers `blockdelta_point_list_value` reads. Numbers are stable; new ones are appended.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum blockdelta_point_field {
    /// The checkpoint the point's changes start from (earlier points folded into it move it
    /// back).
    FromSequence = 0,
    /// The disk's size at this point, in bytes.
    DiskSize = 1,
    /// The point's time (its BOOKMARK's timestamp, or when it was ingested), in nanoseconds
    /// since the Unix epoch.
    TimeNs = 2,
    /// When the store made the point durable, in nanoseconds since the Unix epoch.
    IngestedNs = 3,
    /// 1 crash-consistent, 2 application-consistent (the kinds of `blockdelta_encoder_bookmark`).
    Consistency = 4,
    /// 1 if the point's stream had a BOOKMARK, else 0.
    HasBookmark = 5,
    /// The BOOKMARK's id (0 without one).
    BookmarkId = 6,
    /// 1 for a point detached by a rollback (kept until `blockdelta_store_discard_detached`).
    Detached = 7,
    /// Bytes of data the point's stream stored.
    StoredBytes = 8,
    /// Bytes that no other point needs if this one alone is deleted (0 for the newest point).
    ExclusiveBytes = 9,
    /// Why retention removed the point (a `blockdelta_expiry_reason`); `_NONE` in lists from
    /// `blockdelta_store_points`.
    ExpiryReason = 10,
}

/// Why retention removed a point (`BLOCKDELTA_POINT_FIELD_EXPIRY_REASON`). Numbers are stable.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum blockdelta_expiry_reason {
    /// Not an expired point.
    None = 0,
    /// Older than the policy's age for its kind.
    Age = 1,
    /// An application-consistent point thinned to one per interval.
    AppInterval = 2,
    /// More points than the policy's count.
    Count = 3,
    /// Removed early to stay under the byte cap.
    ByteCap = 4,
}

fn expiry_code(r: Option<ExpiryReason>) -> blockdelta_expiry_reason {
    use blockdelta_expiry_reason as E;
    match r {
        None => E::None,
        Some(ExpiryReason::Age) => E::Age,
        Some(ExpiryReason::AppInterval) => E::AppInterval,
        Some(ExpiryReason::Count) => E::Count,
        Some(ExpiryReason::ByteCap) => E::ByteCap,
    }
}

fn field_value(p: &PointInfo, reason: Option<ExpiryReason>, field: u32) -> Option<u64> {
    use blockdelta_point_field as F;
    Some(match field {
        x if x == F::FromSequence as u32 => p.from_sequence,
        x if x == F::DiskSize as u32 => p.disk_size,
        x if x == F::TimeNs as u32 => p.time_ns,
        x if x == F::IngestedNs as u32 => p.ingested_ns,
        x if x == F::Consistency as u32 => match p.consistency {
            BookmarkKind::CrashConsistent => 1,
            BookmarkKind::ApplicationConsistent => 2,
        },
        x if x == F::HasBookmark as u32 => u64::from(p.bookmark_id.is_some()),
        x if x == F::BookmarkId as u32 => p.bookmark_id.unwrap_or(0),
        x if x == F::Detached as u32 => u64::from(p.detached),
        x if x == F::StoredBytes as u32 => p.stored_bytes,
        x if x == F::ExclusiveBytes as u32 => p.exclusive_bytes,
        x if x == F::ExpiryReason as u32 => expiry_code(reason) as u64,
        _ => return None,
    })
}

/// The entry `index` of a list, or `INVALID_ARGUMENT` (recorded as the thread's last error).
fn entry<T>(items: &[T], index: usize) -> Result<&T, blockdelta_result> {
    items.get(index).ok_or_else(|| {
        let code = blockdelta_result::InvalidArgument;
        record_thread_error(
            code,
            &format_args!("index {index} is past the list's {} entries", items.len()),
        );
        code
    })
}

/// The number of points in the list (0 for NULL). Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_point_list_len(list: *const blockdelta_point_list) -> usize {
    // SAFETY: NULL or a live list.
    boundary_value(0, || unsafe { arg_ref(list) }.map_or(0, |l| l.items.len()))
}

/// Writes the id of point `index` (0 is the oldest) to `*id_out`.
/// `BLOCKDELTA_RESULT_INVALID_ARGUMENT` for an index at or past the length. Never blocks; any
/// thread.
#[no_mangle]
pub extern "C" fn blockdelta_point_list_get(
    list: *const blockdelta_point_list,
    index: usize,
    id_out: *mut blockdelta_point_id,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: NULL or a live list.
        let l = unsafe { arg_ref(list)? };
        let out = Out::new(id_out)?;
        let (p, _) = entry(&l.items, index)?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out.write(p.id.into()) };
        Ok(())
    })
}

/// Writes field `field` (a `blockdelta_point_field`) of point `index` to `*value_out`.
/// `BLOCKDELTA_RESULT_INVALID_ARGUMENT` for an unknown field or an index past the length.
/// Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_point_list_value(
    list: *const blockdelta_point_list,
    index: usize,
    field: u32,
    value_out: *mut u64,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: NULL or a live list.
        let l = unsafe { arg_ref(list)? };
        let out = Out::new(value_out)?;
        let (p, reason) = entry(&l.items, index)?;
        let Some(v) = field_value(p, *reason, field) else {
            let code = blockdelta_result::InvalidArgument;
            record_thread_error(code, &format_args!("unknown point field {field}"));
            return Err(code);
        };
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out.write(v) };
        Ok(())
    })
}

/// Copies the BOOKMARK label of point `index` ("" without one; UTF-8, at most
/// `BLOCKDELTA_MAX_LABEL_LEN` bytes) into `buf` as a NUL-terminated string: at most `cap - 1`
/// bytes, and `*len_out` (when not NULL) receives the full length without the NUL, so a buffer of
/// `BLOCKDELTA_MAX_LABEL_LEN + 1` bytes always suffices. `(NULL, 0)` just reports the length.
/// Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_point_list_label(
    list: *const blockdelta_point_list,
    index: usize,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: NULL or a live list.
        let l = unsafe { arg_ref(list)? };
        let (p, _) = entry(&l.items, index)?;
        // SAFETY: `(buf, cap)` writable or `(NULL, 0)`; `len_out` NULL or writable.
        unsafe { copy_str(&p.label, buf, cap, len_out) }
    })
}

/// Frees a point list; NULL is a no-op.
#[no_mangle]
pub extern "C" fn blockdelta_point_list_free(list: *mut blockdelta_point_list) {
    // SAFETY: NULL or a list from this library, freed once.
    boundary_value((), || unsafe { free_handle(list) })
}

/// The number of extents in the list (0 for NULL). Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_extent_list_len(list: *const blockdelta_extent_list) -> usize {
    // SAFETY: NULL or a live list.
    boundary_value(0, || unsafe { arg_ref(list) }.map_or(0, |l| l.items.len()))
}

/// Writes extent `index` to `*extent_out`. `BLOCKDELTA_RESULT_INVALID_ARGUMENT` for an index at
/// or past the length. Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_extent_list_get(
    list: *const blockdelta_extent_list,
    index: usize,
    extent_out: *mut Extent,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: NULL or a live list.
        let l = unsafe { arg_ref(list)? };
        let out = Out::new(extent_out)?;
        let e = *entry(&l.items, index)?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out.write(e) };
        Ok(())
    })
}

/// Copies extents `first`, `first + 1`, ... into the caller's array `(dst, dst_cap)`, as many as
/// fit; `*copied_out` receives how many (0 when `first` is at or past the length). Never blocks;
/// any thread.
#[no_mangle]
pub extern "C" fn blockdelta_extent_list_copy(
    list: *const blockdelta_extent_list,
    first: usize,
    dst: *mut Extent,
    dst_cap: usize,
    copied_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: NULL or a live list.
        let l = unsafe { arg_ref(list)? };
        let out = Out::new(copied_out)?;
        // SAFETY: `(dst, dst_cap)` writable or `(NULL, 0)`.
        let dst = unsafe { out_slice(dst, dst_cap)? };
        let src = l.items.get(first..).unwrap_or(&[]);
        let n = src.len().min(dst.len());
        dst[..n].copy_from_slice(&src[..n]);
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out.write(n) };
        Ok(())
    })
}

/// Frees an extent list; NULL is a no-op.
#[no_mangle]
pub extern "C" fn blockdelta_extent_list_free(list: *mut blockdelta_extent_list) {
    // SAFETY: NULL or a list from this library, freed once.
    boundary_value((), || unsafe { free_handle(list) })
}
