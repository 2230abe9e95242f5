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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::error::blockdelta_last_error;

    #[test]
    fn a_panic_becomes_a_result_code_with_its_message() {
        let r = boundary(|| panic!("the tracker was asked something impossible"));
        assert_eq!(r, blockdelta_result::Panic);
        let mut buf = [0 as std::ffi::c_char; 128];
        let mut len = 0;
        assert_eq!(
            blockdelta_last_error(buf.as_mut_ptr(), buf.len(), &mut len),
            blockdelta_result::Ok
        );
        // SAFETY: blockdelta_last_error NUL-terminates within `buf`.
        let msg = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_str()
            .unwrap();
        assert_eq!(msg, "panic: the tracker was asked something impossible");
        assert_eq!(len, msg.len());

        // A formatted panic message (a String payload) is kept too.
        let n = 7;
        assert_eq!(boundary(|| panic!("value {n}")), blockdelta_result::Panic);
        blockdelta_last_error(buf.as_mut_ptr(), buf.len(), &mut len);
        // SAFETY: as above.
        let msg = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_str()
            .unwrap();
        assert_eq!(msg, "panic: value 7");

        // Value-returning entry points fall back instead of unwinding.
        assert_eq!(boundary_value(42usize, || panic!("no")), 42);
        assert_eq!(
            boundary(|| Err(blockdelta_result::NullParameter)),
            blockdelta_result::NullParameter
        );
        assert_eq!(boundary(|| Ok(())), blockdelta_result::Ok);
    }
}
