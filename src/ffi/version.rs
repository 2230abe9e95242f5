//! Library version for C callers.

use std::ffi::c_char;

/// Major version of the headers; compare with `blockdelta_version()` at run time.
pub const BLOCKDELTA_VERSION_MAJOR: u32 = 0;
/// Minor version of the headers.
pub const BLOCKDELTA_VERSION_MINOR: u32 = 3;
/// Patch version of the headers.
pub const BLOCKDELTA_VERSION_PATCH: u32 = 0;

/// The library's version as a static NUL-terminated string, e.g. `"0.3.0"`, owned by the library.
/// Never NULL; never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_version() -> *const c_char {
    static V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    V.as_ptr().cast()
}
