//! Unit tests of [`super`]: they call its C entry points the way a C program does (raw
//! pointers, NUL-terminated strings, caller-owned buffers), so that `cargo miri test --lib
//! ffi::support` executes every `unsafe` block. tests/c/support.c covers the same ground from C.

use std::ffi::CStr;
use std::ptr::{null, null_mut};

use crate::ffi::support::test_util::*;
use crate::ffi::support::*;

#[test]
fn os_upgrade_checks() {
    let mut up = blockdelta_support_os_upgrade {
        verdict: 99,
        note: 99,
        rejection: 99,
        required_major: 7,
        required_minor: 7,
    };
    let mut check = |p: &CStr, f: &CStr, t: &CStr, bits: u32| {
        let r = blockdelta_support_os_upgrade_check(
            p.as_ptr(),
            f.as_ptr(),
            t.as_ptr(),
            bits,
            c"9.24".as_ptr(),
            &mut up,
        );
        (r, up)
    };
    let (r, u) = check(c"CentOS", c"7.4", c"7.6", 64);
    ok(r);
    assert_eq!(
        (u.verdict, u.note, u.rejection),
        (BLOCKDELTA_UPGRADE_IN_PLACE, 0, 0)
    );
    let (r, u) = check(c"SLES", c"11 SP3", c"11 SP4", 64);
    ok(r);
    assert_eq!(
        (u.verdict, u.note),
        (
            BLOCKDELTA_UPGRADE_REPROTECT,
            OsNote::NoSles11Sp3ToSp4Upgrade as u32
        )
    );
    assert!(!blockdelta_support_os_note_text(u.note).is_null());
    let (r, u) = check(c"CentOS", c"7.6", c"7.9", 64);
    ok(r);
    assert_eq!(
        (u.verdict, u.rejection),
        (
            BLOCKDELTA_UPGRADE_TARGET_NOT_SUPPORTED,
            BLOCKDELTA_REJECT_NOT_LISTED
        )
    );
    let (r, u) = check(c"Windows Server 2008 R2", c"SP1", c"SP2", 64);
    ok(r);
    assert_eq!(u.verdict, BLOCKDELTA_UPGRADE_NOT_STATED);
    // Errors leave the output alone.
    let (r, u) = check(c"CentOS", c"7.6", c"7.4", 64);
    assert_eq!(r, blockdelta_result::SupportInvalidDescription);
    assert_eq!(u.verdict, BLOCKDELTA_UPGRADE_NOT_STATED, "unchanged");
    assert!(
        thread_error().contains("not an upgrade"),
        "{}",
        thread_error()
    );
    let (r, _) = check(c"CentOS", c"7.4", c"7.6", 16);
    assert_eq!(r, INVALID_ARGUMENT);
    // A machine that cannot be protected now has no replication to keep.
    let (r, _) = check(c"CentOS", c"7.4", c"7.6", 32);
    assert_eq!(r, blockdelta_result::SupportInvalidDescription);
    assert_eq!(
        blockdelta_support_os_upgrade_check(
            c"CentOS".as_ptr(),
            null(),
            c"7.6".as_ptr(),
            64,
            c"9.24".as_ptr(),
            &mut up
        ),
        NULL_PARAMETER
    );
    assert_eq!(
        blockdelta_support_os_upgrade_check(
            c"CentOS".as_ptr(),
            c"7.4".as_ptr(),
            c"7.6".as_ptr(),
            64,
            c"9.24".as_ptr(),
            null_mut()
        ),
        NULL_PARAMETER
    );
}

#[test]
fn os_checks_and_notes() {
    let mut os = blockdelta_support_os {
        verdict: 99,
        rejection: 99,
        required_major: 0,
        required_minor: 0,
        notes: 0,
    };
    let mut check = |p: &CStr, v: &CStr, bits: u32, a: &CStr| {
        let r = blockdelta_support_os_check(p.as_ptr(), v.as_ptr(), bits, a.as_ptr(), &mut os);
        (r, os)
    };
    let (r, os) = check(c"Windows Server 2019", c"", 64, c"9.22");
    ok(r);
    assert_eq!(os.verdict, BLOCKDELTA_OS_SUPPORTED);
    let (r, os) = check(c"Windows 10", c"", 64, c"9.23");
    ok(r);
    assert_eq!(
        (os.verdict, os.rejection),
        (BLOCKDELTA_OS_NOT_SUPPORTED, BLOCKDELTA_REJECT_NEEDS_AGENT)
    );
    assert_eq!((os.required_major, os.required_minor), (9, 24));
    let (r, os) = check(c"Windows Server 2008", c"SP2", 32, c"9.24");
    ok(r);
    assert_eq!(os.verdict, BLOCKDELTA_OS_MIGRATION_ONLY);
    let (r, os) = check(c"CentOS", c"7.6", 32, c"9.24");
    ok(r);
    assert_eq!(os.rejection, BLOCKDELTA_REJECT_ARCHITECTURE);
    let (r, os) = check(c"RHEL", c"5.11", 64, c"9.24");
    ok(r);
    assert_eq!(os.verdict, BLOCKDELTA_OS_SUPPORTED);
    assert_ne!(os.notes, 0);
    let texts: Vec<&str> = (0..32)
        .map(|b| 1u32 << b)
        .filter(|bit| os.notes & bit != 0)
        .map(|bit| text(blockdelta_support_os_note_text(bit)))
        .collect();
    assert!(texts
        .iter()
        .any(|t| t.contains("Linux Integration Services")));
    assert!(blockdelta_support_os_note_text(3).is_null());

    let (r, _) = check(c"OS/2", c"", 64, c"9.24");
    assert_eq!(r, blockdelta_result::SupportUnknownOperatingSystem);
    let (r, before) = check(c"CentOS", c"7.6", 16, c"9.24");
    assert_eq!(r, INVALID_ARGUMENT);
    assert_eq!(before.verdict, os.verdict, "not written on failure");
    let mut out = os;
    assert_eq!(
        blockdelta_support_os_check(c"RHEL".as_ptr(), null(), 64, c"9.24".as_ptr(), &mut out),
        NULL_PARAMETER
    );
    assert_eq!(
        blockdelta_support_os_check(
            c"RHEL".as_ptr(),
            c"5.11".as_ptr(),
            64,
            c"9.24".as_ptr(),
            null_mut()
        ),
        NULL_PARAMETER
    );
}
