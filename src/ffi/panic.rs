//! The one panic boundary every C entry point goes through.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::error::{record_thread_error, NULL_PARAMETER_MESSAGE};
use super::result::blockdelta_result;

/// Runs `f` and turns its outcome into a C result code.
///
/// A panic is caught here and becomes `BLOCKDELTA_RESULT_PANIC` (with the panic message as the
/// thread's last error), so it never unwinds into C and never aborts the host process.
/// `AssertUnwindSafe` is sound because after a panic the C caller only ever sees the code: every
/// handle stays memory-safe (its state is guarded by atomics and locks that do not poison).
pub(crate) fn boundary<F>(f: F) -> blockdelta_result
where
    F: FnOnce() -> Result<(), blockdelta_result>,
{
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => blockdelta_result::Ok,
        Ok(Err(code)) => {
            if code == blockdelta_result::NullParameter {
                record_thread_error(code, &NULL_PARAMETER_MESSAGE);
            }
            code
        }
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("unknown panic payload");
            record_thread_error(blockdelta_result::Panic, &format_args!("panic: {msg}"));
            blockdelta_result::Panic
        }
    }
}

/// Like [`boundary`] for functions that return a value instead of a code (`_free`, `_bound`,
/// getters): a panic yields `fallback`.
pub(crate) fn boundary_value<T, F>(fallback: T, f: F) -> T
where
    F: FnOnce() -> T,
{
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}
