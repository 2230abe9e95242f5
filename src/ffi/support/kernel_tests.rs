//! Unit tests of [`super`]: they call its C entry points the way a C program does (raw
//! pointers, NUL-terminated strings, caller-owned buffers), so that `cargo miri test --lib
//! ffi::support` executes every `unsafe` block. tests/c/support.c covers the same ground from C.

use std::ffi::{c_char, CStr};
use std::ptr::{null, null_mut};

use crate::ffi::support::test_util::*;
use crate::ffi::support::*;

fn kernel(distro: &CStr, release: &CStr, k: &CStr, agent: &CStr) -> blockdelta_support_kernel {
    let mut v = blockdelta_support_kernel {
        supported: false,
        release_listed: false,
        service_pack: 0,
        ltss: false,
        range_first: null(),
        range_last: null(),
        nearest_major: 0,
        nearest_minor: 0,
    };
    ok(blockdelta_support_kernel_check(
        distro.as_ptr(),
        release.as_ptr(),
        k.as_ptr(),
        agent.as_ptr(),
        &mut v,
    ));
    v
}

#[test]
fn kernel_check_answers_from_the_tables() {
    let k = kernel(c"ubuntu", c"16.04", c"4.4.0-143-generic", c"9.24");
    assert!(k.supported && k.release_listed);
    assert_eq!(text(k.range_first), "4.4.0-21-generic");
    assert_eq!(text(k.range_last), "4.4.0-143-generic");

    let k = kernel(c"ubuntu", c"16.04", c"4.4.0-143-generic", c"9.23");
    assert!(!k.supported);
    assert_eq!((k.nearest_major, k.nearest_minor), (9, 24));

    let k = kernel(c"sles", c"12", c"4.12.14-95.6-default", c"9.24");
    assert!(k.supported && k.service_pack == 4 && !k.ltss);

    let k = kernel(c"debian", c"8", c"4.9.0-0.bpo.9-amd64", c"9.24");
    assert!(!k.supported && k.nearest_major == 0);
    assert!(k.range_first.is_null() && k.range_last.is_null());
}

#[test]
fn kernel_check_errors_leave_the_output_alone() {
    let mut k = blockdelta_support_kernel {
        supported: true,
        release_listed: true,
        service_pack: 7,
        ltss: true,
        range_first: null(),
        range_last: null(),
        nearest_major: 42,
        nearest_minor: 42,
    };
    let mut check = |d: *const c_char, k_: &CStr, a: &CStr, out: bool| {
        let out = if out { &mut k as *mut _ } else { null_mut() };
        blockdelta_support_kernel_check(d, c"16.04".as_ptr(), k_.as_ptr(), a.as_ptr(), out)
    };
    assert_eq!(
        check(c"ubuntu".as_ptr(), c"hello", c"9.24", true),
        blockdelta_result::SupportInvalidKernelVersion
    );
    assert!(thread_error().contains("\"hello\" is not a kernel version"));
    assert_eq!(
        check(c"ubuntu".as_ptr(), c"4.4.0-21-generic", c"9.19", true),
        blockdelta_result::SupportUnknownAgentVersion
    );
    assert_eq!(
        check(c"fedora".as_ptr(), c"4.4.0-21-generic", c"9.24", true),
        blockdelta_result::SupportUnknownDistribution
    );
    assert_eq!(
        check(null(), c"4.4.0-21-generic", c"9.24", true),
        NULL_PARAMETER
    );
    assert!(thread_error().contains("NULL"));
    // Not UTF-8.
    assert_eq!(
        check(c"ub\xffntu".as_ptr(), c"4.4.0-21-generic", c"9.24", true),
        INVALID_ARGUMENT
    );
    assert_eq!(
        check(c"ubuntu".as_ptr(), c"4.4.0-21-generic", c"9.24", false),
        NULL_PARAMETER
    );
    assert!(k.supported && k.service_pack == 7 && k.nearest_major == 42);
}
