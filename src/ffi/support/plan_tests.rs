//! Unit tests of [`super`]: they call its C entry points the way a C program does (raw
//! pointers, NUL-terminated strings, caller-owned buffers), so that `cargo miri test --lib
//! ffi::support` executes every `unsafe` block. tests/c/support.c covers the same ground from C.

use std::ffi::CStr;
use std::ptr::{null, null_mut};

use crate::ffi::support::test_util::*;
use crate::ffi::support::*;

#[test]
fn planner() {
    let mut p = null_mut();
    assert_eq!(blockdelta_plan_new(null_mut()), NULL_PARAMETER);
    ok(blockdelta_plan_new(&mut p));
    let add = |vm: &CStr, disk: &CStr, target, avg, peak, io, day| {
        blockdelta_plan_add_disk(p, vm.as_ptr(), disk.as_ptr(), target, avg, peak, io, day)
    };
    ok(add(c"db01", c"sda", 30, 12 * MB, 30 * MB, 64 * 1024, 0));
    ok(add(c"db01", c"sdb", 0, 3 * MB, 4 * MB, 8 * 1024, 0));
    ok(add(c"big", c"sda", 50, 0, 0, 64 * 1024, 3 * TB));
    ok(add(c"\xc3\xa9t\xc3\xa9", c"sda", 0, 0, 0, 8 * 1024, 0)); // "été"

    let mut t = blockdelta_plan_totals {
        process_servers: 0,
        vms: 0,
        bytes_per_day: 0,
    };
    assert_eq!(blockdelta_plan_get_totals(p, &mut t), INVALID_ARGUMENT);
    let mut msg = [0u8; 64];
    ok(blockdelta_plan_last_error(
        p,
        msg.as_mut_ptr().cast(),
        64,
        null_mut(),
    ));
    assert_eq!(copied(&msg), "the plan is not evaluated");
    ok(blockdelta_plan_evaluate(p));
    ok(blockdelta_plan_get_totals(p, &mut t));
    assert_eq!((t.vms, t.process_servers), (3, 2));
    assert_eq!(blockdelta_plan_get_totals(p, null_mut()), NULL_PARAMETER);

    let mut d = blockdelta_plan_disk {
        exceeds_rate: false,
        exceeds_daily: false,
        limit_bytes_per_second: 0,
        limit_bytes_per_day: 0,
        bytes_per_day: 0,
    };
    ok(blockdelta_plan_get_disk(p, 1, &mut d));
    assert!(d.exceeds_rate && d.limit_bytes_per_second == 2 * MB);
    ok(blockdelta_plan_get_disk(p, 0, &mut d));
    assert!(!d.exceeds_rate && d.limit_bytes_per_second == 20 * MB);
    assert_eq!(blockdelta_plan_get_disk(p, 4, &mut d), INVALID_ARGUMENT);

    let mut v = blockdelta_plan_vm {
        average_bytes_per_second: 0,
        peak_bytes_per_second: 0,
        bytes_per_day: 0,
        exceeds_average: true,
        exceeds_peak: true,
        exceeds_process_server: false,
        process_server: 0,
    };
    let mut name = [0xAAu8; 16];
    let mut len = 0;
    ok(blockdelta_plan_get_vm(
        p,
        1,
        &mut v,
        name.as_mut_ptr().cast(),
        16,
        &mut len,
    ));
    assert_eq!((copied(&name), len), ("big", 3));
    assert!(v.exceeds_process_server && !v.exceeds_average);
    ok(blockdelta_plan_get_vm(
        p,
        0,
        &mut v,
        null_mut(),
        0,
        null_mut(),
    ));
    assert_eq!(v.average_bytes_per_second, 15 * MB);
    assert!(!v.exceeds_average);
    // A name cut inside a character stops before it: the copy stays UTF-8.
    ok(blockdelta_plan_get_vm(
        p,
        2,
        &mut v,
        name.as_mut_ptr().cast(),
        3,
        &mut len,
    ));
    assert_eq!((copied(&name), len), ("é", 5));
    ok(blockdelta_plan_get_vm(
        p,
        2,
        &mut v,
        name.as_mut_ptr().cast(),
        2,
        &mut len,
    ));
    assert_eq!(copied(&name), "");
    v.process_server = 77;
    assert_eq!(
        blockdelta_plan_get_vm(p, 3, &mut v, null_mut(), 0, null_mut()),
        INVALID_ARGUMENT
    );
    assert_eq!(
        blockdelta_plan_get_vm(p, 0, &mut v, null_mut(), 4, null_mut()),
        NULL_PARAMETER
    );
    assert_eq!(v.process_server, 77, "not written on failure");

    ok(add(c"bad", c"sda", 0, 5, 4, 8192, 0)); // peak below average
    assert_eq!(
        blockdelta_plan_evaluate(p),
        blockdelta_result::SupportInvalidDescription
    );
    let mut msg = [0u8; 128];
    ok(blockdelta_plan_last_error(
        p,
        msg.as_mut_ptr().cast(),
        128,
        null_mut(),
    ));
    assert!(
        copied(&msg).contains("below the average"),
        "{}",
        copied(&msg)
    );
    assert_eq!(blockdelta_plan_get_totals(p, &mut t), INVALID_ARGUMENT);
    assert_eq!(
        add(c"x", c"y", 7, 1, 1, 1, 0),
        blockdelta_result::SupportUnknownStorageTarget
    );
    assert_eq!(
        blockdelta_plan_add_disk(null_mut(), c"x".as_ptr(), c"y".as_ptr(), 0, 1, 1, 1, 0),
        NULL_PARAMETER
    );
    assert_eq!(
        blockdelta_plan_add_disk(p, null(), c"y".as_ptr(), 0, 1, 1, 1, 0),
        NULL_PARAMETER
    );
    assert_eq!(blockdelta_plan_evaluate(null_mut()), NULL_PARAMETER);
    blockdelta_plan_free(p);
    blockdelta_plan_free(null_mut());
}
