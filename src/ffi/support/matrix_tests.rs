//! Unit tests of [`super`]: they call its C entry points the way a C program does (raw
//! pointers, NUL-terminated strings, caller-owned buffers), so that `cargo miri test --lib
//! ffi::support` executes every `unsafe` block. tests/c/support.c covers the same ground from C.

use std::ffi::CStr;
use std::ptr::{null, null_mut};

use crate::ffi::support::test_util::*;
use crate::ffi::support::*;

#[test]
fn filesystems_features_hosts_and_errata() {
    let mut fs = blockdelta_support_filesystem {
        supported: true,
        rejection: 99,
        required_major: 0,
        required_minor: 0,
        traits: 0,
    };
    let mut check = |n: &CStr, t: u32, a: &CStr| {
        let r = blockdelta_support_filesystem_check(n.as_ptr(), t, a.as_ptr(), &mut fs);
        (r, fs)
    };
    let (r, fs) = check(c"btrfs", 0, c"9.21");
    ok(r);
    assert!(!fs.supported && fs.rejection == BLOCKDELTA_REJECT_NEEDS_AGENT);
    assert_eq!((fs.required_major, fs.required_minor), (9, 22));
    let (r, fs) = check(c"btrfs", BLOCKDELTA_FS_BTRFS_RAID, c"9.24");
    ok(r);
    assert_eq!(
        (fs.supported, fs.rejection, fs.traits),
        (false, BLOCKDELTA_REJECT_TRAITS, BLOCKDELTA_FS_BTRFS_RAID)
    );
    let (r, fs) = check(c"xfs", BLOCKDELTA_FS_XFS_V5, c"9.20");
    ok(r);
    assert!(fs.supported && fs.rejection == BLOCKDELTA_REJECT_NONE);
    let (r, fs) = check(c"zfs", 0, c"9.24");
    ok(r);
    assert_eq!(fs.rejection, BLOCKDELTA_REJECT_NOT_LISTED);
    assert_eq!(check(c"ext4", 16, c"9.24").0, INVALID_ARGUMENT);

    let mut s = 99;
    let mut note = null();
    ok(blockdelta_support_feature(
        c"guest_uefi_boot".as_ptr(),
        BLOCKDELTA_MACHINE_VMWARE_VM,
        &mut s,
        &mut note,
    ));
    assert_eq!(s, BLOCKDELTA_FEATURE_CONDITIONAL);
    assert!(text(note).contains("9.13"));
    ok(blockdelta_support_feature(
        c"host_vsan".as_ptr(),
        BLOCKDELTA_MACHINE_PHYSICAL,
        &mut s,
        null_mut(),
    ));
    assert_eq!(s, BLOCKDELTA_FEATURE_NOT_APPLICABLE);
    assert_eq!(
        blockdelta_support_feature(c"teleport".as_ptr(), 0, &mut s, null_mut()),
        blockdelta_result::SupportUnknownFeature
    );
    assert_eq!(
        blockdelta_support_feature(c"host_vsan".as_ptr(), 2, &mut s, null_mut()),
        INVALID_ARGUMENT
    );
    assert_eq!(
        blockdelta_support_feature(c"host_vsan".as_ptr(), 0, null_mut(), null_mut()),
        NULL_PARAMETER
    );
    assert_eq!(s, BLOCKDELTA_FEATURE_NOT_APPLICABLE);

    let mut yes = false;
    ok(blockdelta_support_vmware_host_check(
        c"6.7".as_ptr(),
        &mut yes,
    ));
    assert!(yes);
    ok(blockdelta_support_vmware_host_check(
        c"7.0".as_ptr(),
        &mut yes,
    ));
    assert!(!yes);
    assert_eq!(
        blockdelta_support_vmware_host_check(null(), &mut yes),
        NULL_PARAMETER
    );

    let n = blockdelta_support_errata_count();
    assert!(n >= 10);
    let (mut id, mut source, mut resolution) = (null(), null(), null());
    ok(blockdelta_support_erratum(
        0,
        &mut id,
        &mut source,
        &mut resolution,
    ));
    assert_eq!(text(id), "E1");
    assert!(text(source).contains("Ubuntu 16.04"));
    assert!(!text(resolution).is_empty());
    ok(blockdelta_support_erratum(
        1,
        null_mut(),
        null_mut(),
        null_mut(),
    ));
    id = null();
    assert_eq!(
        blockdelta_support_erratum(n, &mut id, null_mut(), null_mut()),
        INVALID_ARGUMENT
    );
    assert!(id.is_null(), "not written on failure");
}

#[test]
fn churn_limits() {
    let mut l = blockdelta_churn_limit {
        bytes_per_second: 0,
        bytes_per_day: 0,
        io_kib: 0,
    };
    ok(blockdelta_support_disk_churn_limit(30, 64 * 1024, &mut l));
    assert_eq!(
        (l.bytes_per_second, l.bytes_per_day, l.io_kib),
        (20 * MB, 1684 * GB, 16)
    );
    ok(blockdelta_support_disk_churn_limit(0, 8 * 1024, &mut l));
    assert_eq!((l.bytes_per_second, l.bytes_per_day), (2 * MB, 168 * GB));
    assert_eq!(
        blockdelta_support_disk_churn_limit(60, 8192, &mut l),
        blockdelta_result::SupportUnknownStorageTarget
    );
    assert_eq!(l.bytes_per_second, 2 * MB, "not written on failure");
    assert_eq!(
        blockdelta_support_disk_churn_limit(0, 8192, null_mut()),
        NULL_PARAMETER
    );
    let mut v = blockdelta_churn_limits {
        vm_average_bytes_per_second: 0,
        vm_peak_bytes_per_second: 0,
        process_server_bytes_per_day: 0,
    };
    ok(blockdelta_support_churn_limits(&mut v));
    assert_eq!(
        (
            v.vm_average_bytes_per_second,
            v.vm_peak_bytes_per_second,
            v.process_server_bytes_per_day
        ),
        (25 * MB, 54 * MB, 2 * TB)
    );
    assert_eq!(blockdelta_support_churn_limits(null_mut()), NULL_PARAMETER);
}
