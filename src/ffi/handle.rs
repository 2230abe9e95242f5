//! Pointer and handle helpers shared by every C entry point.
//!
//! They turn raw C arguments into references and slices, enforcing the conventions once:
//! NULL is `BLOCKDELTA_RESULT_NULL_PARAMETER`, `(NULL, 0)` is an empty slice, and `*_out`
//! pointers are checked before any work so that outputs are written only on success.

use std::ffi::c_char;
use std::ptr::NonNull;

use super::error::record_thread_error;
use super::result::blockdelta_result;
use crate::tracker::{Extent, ExtentKind};

/// Borrows a handle or input struct.
///
/// # Safety
/// `p` is NULL or points to a live `T` that outlives `'a` and is not mutated meanwhile except
/// through interior mutability.
pub(crate) unsafe fn arg_ref<'a, T>(p: *const T) -> Result<&'a T, blockdelta_result> {
    // SAFETY: per the caller's contract, a non-NULL `p` is a valid `T` for `'a`.
    unsafe { p.as_ref() }.ok_or(blockdelta_result::NullParameter)
}

/// Borrows a read-only byte or element slice; `(NULL, 0)` is the empty slice.
#[allow(dead_code)] // the stream and support layers use it
///
/// # Safety
/// A non-NULL `p` must be valid for reads of `len` elements for `'a`.
pub(crate) unsafe fn arg_slice<'a, T>(
    p: *const T,
    len: usize,
) -> Result<&'a [T], blockdelta_result> {
    if p.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(blockdelta_result::NullParameter)
        };
    }
    // SAFETY: non-NULL and valid for `len` reads per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Borrows a caller's read-only array of `blockdelta_extent`; `(NULL, 0)` is the empty slice.
///
/// An `Extent` whose `kind` is not a variant would be undefined behaviour in Rust, so the raw
/// `uint32_t` of every element's `kind` is checked before the array is viewed as extents: the
/// first unknown one is `bad_kind(index, kind)` (which records the error and returns its code).
///
/// # Safety
/// A non-NULL `p` must be valid for reads of `count` extents for `'a`.
pub(crate) unsafe fn arg_extents<'a>(
    p: *const Extent,
    count: usize,
    bad_kind: impl FnOnce(usize, u32) -> blockdelta_result,
) -> Result<&'a [Extent], blockdelta_result> {
    for i in 0..if p.is_null() { 0 } else { count } {
        // SAFETY: `(p, count)` is readable; `kind` is read as the `u32` it is in C, through a
        // raw pointer (no reference to a possibly invalid `Extent` is made).
        let kind = unsafe { std::ptr::addr_of!((*p.add(i)).kind).cast::<u32>().read() };
        if ExtentKind::from_u32(kind).is_none() {
            return Err(bad_kind(i, kind));
        }
    }
    // SAFETY: `(p, count)` is readable or `(NULL, 0)`; every kind was checked above.
    unsafe { arg_slice(p, count) }
}

/// Borrows a caller-owned output buffer; `(NULL, 0)` is the empty slice.
///
/// # Safety
/// A non-NULL `p` must be valid for writes of `len` elements for `'a` and not aliased.
pub(crate) unsafe fn out_slice<'a, T>(
    p: *mut T,
    len: usize,
) -> Result<&'a mut [T], blockdelta_result> {
    if p.is_null() {
        return if len == 0 {
            Ok(&mut [])
        } else {
            Err(blockdelta_result::NullParameter)
        };
    }
    // SAFETY: non-NULL, valid and unaliased for `len` writes per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

/// Copies `s` into a caller buffer as a NUL-terminated string, snprintf-style: at most `cap - 1`
/// bytes (cut at a character boundary, so the copy stays valid UTF-8) plus the NUL, and
/// `*len_out`, when `len_out` is not NULL, receives the full length of `s` without the NUL, so a
/// caller can see truncation. `(NULL, 0)` just reports the length; NULL with `cap > 0` gives
/// `BLOCKDELTA_RESULT_NULL_PARAMETER` and writes nothing.
///
/// # Safety
/// `buf` is NULL with `cap == 0` or valid for writes of `cap` bytes; `len_out` is NULL or writable.
pub(crate) unsafe fn copy_str(
    s: &str,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> Result<(), blockdelta_result> {
    // SAFETY: (buf, cap) is (NULL, 0) or writable for `cap` bytes per the caller's contract.
    let dst = unsafe { out_slice(buf.cast::<u8>(), cap)? };
    if let Some(room) = dst.len().checked_sub(1) {
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        dst[..n].copy_from_slice(&s.as_bytes()[..n]);
        dst[n] = 0;
    }
    if !len_out.is_null() {
        // SAFETY: a non-NULL `len_out` is writable per the caller's contract.
        unsafe { len_out.write(s.len()) };
    }
    Ok(())
}

/// A checked `*_out` pointer: validated up front, written only once the call has succeeded.
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// Checks that `p` is not NULL.
    pub(crate) fn new(p: *mut T) -> Result<Self, blockdelta_result> {
        NonNull::new(p)
            .map(Out)
            .ok_or(blockdelta_result::NullParameter)
    }

    /// Writes the result.
    ///
    /// # Safety
    /// The pointer given to [`Out::new`] must be valid for a write of `T`.
    pub(crate) unsafe fn write(self, v: T) {
        // SAFETY: non-NULL (checked in `new`) and writable per the caller's contract.
        unsafe { self.0.as_ptr().write(v) }
    }
}

/// Moves a value to the heap and hands its ownership to C.
pub(crate) fn into_handle<T>(v: T) -> *mut T {
    Box::into_raw(Box::new(v))
}

/// Takes ownership back from C and drops it; NULL is a no-op.
///
/// # Safety
/// `p` is NULL or came from [`into_handle`] for the same `T` and has not been freed.
pub(crate) unsafe fn free_handle<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: `p` came from `Box::into_raw` and ownership returns exactly once.
        drop(unsafe { Box::from_raw(p) });
    }
}

/// Copies up to `cap` extents of `src`, from index `start` on, into `extents_out`; `*n_out`
/// receives how many. 0 is returned only at or past the end, whatever `cap` is: `cap` 0
/// before the end is `BLOCKDELTA_RESULT_BUFFER_TOO_SMALL`, so a caller looping until 0 never
/// stops early (as for `blockdelta_tracker_extents`). Shared by the plan types' `_extents`.
///
/// # Safety
/// `(extents_out, cap)` is writable or `(NULL, 0)`; `n_out` is NULL or writable.
pub(crate) unsafe fn copy_extents_at(
    src: &[Extent],
    start: usize,
    extents_out: *mut Extent,
    cap: usize,
    n_out: *mut usize,
) -> Result<(), blockdelta_result> {
    let n_out = Out::new(n_out)?;
    // SAFETY: forwarded contract.
    let dst = unsafe { out_slice(extents_out, cap)? };
    let src = src.get(start..).unwrap_or(&[]);
    if dst.is_empty() && !src.is_empty() {
        let code = blockdelta_result::BufferTooSmall;
        record_thread_error(
            code,
            &format_args!("cap is 0 with {} extents left", src.len()),
        );
        return Err(code);
    }
    let n = src.len().min(dst.len());
    dst[..n].copy_from_slice(&src[..n]);
    // SAFETY: writable per the contract.
    unsafe { n_out.write(n) };
    Ok(())
}
