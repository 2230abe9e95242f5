//! Pointer and handle helpers shared by every C entry point.
//!
//! They turn raw C arguments into references and slices, enforcing the conventions once:
//! NULL is `BLOCKDELTA_RESULT_NULL_PARAMETER`, `(NULL, 0)` is an empty slice, and `*_out`
//! pointers are checked before any work so that outputs are written only on success.

use std::ptr::NonNull;

use super::result::blockdelta_result;

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
