//! Helpers shared by the unit tests of the support C ABI.

use std::ffi::{c_char, CStr};

use crate::ffi::error::blockdelta_last_error;
use crate::ffi::support::*;

pub(crate) const MB: u64 = 1 << 20;
pub(crate) const GB: u64 = 1 << 30;
pub(crate) const TB: u64 = 1 << 40;
pub(crate) const NULL_PARAMETER: blockdelta_result = blockdelta_result::NullParameter;
pub(crate) const INVALID_ARGUMENT: blockdelta_result = blockdelta_result::InvalidArgument;

#[track_caller]
pub(crate) fn ok(r: blockdelta_result) {
    assert_eq!(r, blockdelta_result::Ok);
}

/// A static string the library returned.
#[track_caller]
pub(crate) fn text(p: *const c_char) -> &'static str {
    assert!(!p.is_null());
    // SAFETY: the library returns static NUL-terminated strings.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap()
}

/// The string the library copied into `buf`; panics when it is not NUL-terminated.
#[track_caller]
pub(crate) fn copied(buf: &[u8]) -> &str {
    CStr::from_bytes_until_nul(buf).unwrap().to_str().unwrap()
}

pub(crate) fn thread_error() -> String {
    let mut buf = [0u8; 512];
    let mut len = 0;
    ok(blockdelta_last_error(
        buf.as_mut_ptr().cast(),
        buf.len(),
        &mut len,
    ));
    assert_eq!(copied(&buf).len(), len);
    copied(&buf).to_owned()
}

pub(crate) fn no_failure() -> blockdelta_failure {
    blockdelta_failure {
        rule: 0,
        unit: 0,
        found: 0,
        limit: 0,
    }
}

pub(crate) fn rules(r: *const blockdelta_report) -> Vec<u32> {
    (0..blockdelta_report_count(r))
        .map(|i| {
            let mut f = no_failure();
            ok(blockdelta_report_failure(r, i, &mut f));
            f.rule
        })
        .collect()
}
