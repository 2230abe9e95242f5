//! Last-error messages: one per handle, and one per thread for calls that have no handle yet
//! (constructors) or whose handle was NULL.
//!
//! Recording an error never allocates and never blocks: messages are formatted into a fixed
//! buffer (truncated at a character boundary), and a handle's slot is only `try_lock`ed, so an
//! error on the write path cannot stall a block driver's I/O thread.

use std::cell::RefCell;
use std::ffi::c_char;
use std::fmt::{self, Display, Write};

use parking_lot::Mutex;

use super::handle::copy_str;
use super::result::blockdelta_result;

const CAP: usize = 480;

/// A fixed-capacity message buffer.
#[derive(Clone)]
pub(crate) struct ErrorSlot {
    buf: [u8; CAP],
    len: usize,
    code: blockdelta_result,
}

impl ErrorSlot {
    pub(crate) const EMPTY: ErrorSlot = ErrorSlot {
        buf: [0; CAP],
        len: 0,
        code: blockdelta_result::Ok,
    };

    fn set(&mut self, code: blockdelta_result, msg: &dyn Display) {
        self.len = 0;
        self.code = code;
        let _ = write!(self, "{msg}");
    }

    fn as_str(&self) -> &str {
        // Only whole UTF-8 characters are ever appended (see `write_str`).
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl Write for ErrorSlot {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = CAP - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

thread_local! {
    static THREAD_LAST: RefCell<ErrorSlot> = const { RefCell::new(ErrorSlot::EMPTY) };
}

/// The message for `BLOCKDELTA_RESULT_NULL_PARAMETER`, which pointer checks return bare.
pub(crate) const NULL_PARAMETER_MESSAGE: &str = "a required pointer argument was NULL";

/// Records `msg` as the calling thread's last error.
pub(crate) fn record_thread_error(code: blockdelta_result, msg: &dyn Display) {
    let _ = THREAD_LAST.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            slot.set(code, msg);
        }
    });
}

/// Records a module error as the calling thread's last error (for calls with no handle to hold
/// it) and returns its C code.
pub(crate) fn fail_thread<E: super::result::ToResult + Display>(e: E) -> blockdelta_result {
    let code = e.to_result();
    record_thread_error(code, &e);
    code
}

/// A handle's last error. Embedded in every handle type.
pub(crate) struct LastError(Mutex<ErrorSlot>);

impl LastError {
    pub(crate) fn new() -> Self {
        LastError(Mutex::new(ErrorSlot::EMPTY))
    }

    /// Records an error on this handle and on the calling thread; returns `code`.
    pub(crate) fn record(&self, code: blockdelta_result, msg: &dyn Display) -> blockdelta_result {
        if let Some(mut slot) = self.0.try_lock() {
            slot.set(code, msg);
        }
        record_thread_error(code, msg);
        code
    }

    /// Records a module error (its `Display` text) and returns its C code.
    pub(crate) fn fail<E: super::result::ToResult + Display>(&self, e: E) -> blockdelta_result {
        self.record(e.to_result(), &e)
    }

    /// Copies the calling thread's last error onto this handle (for failures recorded by helpers
    /// that had no handle at hand). Never allocates; never blocks.
    pub(crate) fn adopt_thread_error(&self, code: blockdelta_result) -> blockdelta_result {
        if code == blockdelta_result::NullParameter {
            // Pointer checks return this code without a message of their own.
            return self.record(code, &NULL_PARAMETER_MESSAGE);
        }
        let _ = THREAD_LAST.try_with(|t| {
            if let (Ok(t), Some(mut slot)) = (t.try_borrow(), self.0.try_lock()) {
                *slot = t.clone();
                slot.code = code;
            }
        });
        code
    }

    fn snapshot(&self) -> ErrorSlot {
        self.0.lock().clone()
    }
}

impl Default for LastError {
    fn default() -> Self {
        Self::new()
    }
}

/// Copies `slot`'s message as a NUL-terminated string (see [`copy_str`] for the buffer rules).
///
/// # Safety
/// As [`copy_str`].
pub(crate) unsafe fn copy_message(
    slot: &ErrorSlot,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> Result<(), blockdelta_result> {
    // SAFETY: forwarded contract.
    unsafe { copy_str(slot.as_str(), buf, cap, len_out) }
}

/// Copies a handle's last error message (see [`copy_message`] for the buffer rules).
///
/// # Safety
/// As [`copy_message`].
pub(crate) unsafe fn copy_handle_message(
    last: &LastError,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> Result<(), blockdelta_result> {
    let slot = last.snapshot();
    // SAFETY: forwarded contract.
    unsafe { copy_message(&slot, buf, cap, len_out) }
}

/// Copies the calling thread's last error message into `buf` as a NUL-terminated string.
///
/// Every failing call records its message here as well as on its handle, so this also explains
/// failures of constructors and of calls made with a NULL handle. At most `cap - 1` bytes are
/// copied (the message is truncated, never overflowed); `*len_out`, when `len_out` is not NULL,
/// receives the full message length without the NUL. `(NULL, 0)` just reports the length.
/// An empty message means no error has been recorded on this thread.
/// Never blocks; any thread (each sees its own message).
#[no_mangle]
pub extern "C" fn blockdelta_last_error(
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> blockdelta_result {
    super::panic::boundary(|| {
        let slot = THREAD_LAST.with(|s| s.borrow().clone());
        // SAFETY: the caller passes a writable (buf, cap) or (NULL, 0), per the documentation.
        unsafe { copy_message(&slot, buf, cap, len_out) }
    })
}
