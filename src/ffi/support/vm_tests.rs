//! Unit tests of [`super`]: they call its C entry points the way a C program does (raw
//! pointers, NUL-terminated strings, caller-owned buffers), so that `cargo miri test --lib
//! ffi::support` executes every `unsafe` block. tests/c/support.c covers the same ground from C.

use crate::support::VmRule;
use std::ptr::{null, null_mut};

use crate::ffi::support::test_util::*;
use crate::ffi::support::*;

#[test]
fn vm_validator_reports_through_caller_buffers() {
    let mut vm = null_mut();
    assert_eq!(
        blockdelta_vm_new(c"web-01".as_ptr(), null_mut()),
        NULL_PARAMETER
    );
    assert_eq!(blockdelta_vm_new(null(), &mut vm), NULL_PARAMETER);
    assert!(vm.is_null(), "not written on failure");
    ok(blockdelta_vm_new(c"web-01".as_ptr(), &mut vm));
    ok(blockdelta_vm_set_os(
        vm,
        c"Windows Server 2016".as_ptr(),
        c"".as_ptr(),
    ));
    let mut index = 99;
    ok(blockdelta_vm_add_disk(
        vm,
        c"disk0".as_ptr(),
        127 * GB,
        BLOCKDELTA_VM_DISK_OS,
        2,
        &mut index,
    ));
    assert_eq!(index, 0);
    ok(blockdelta_vm_add_disk(
        vm,
        c"disk1".as_ptr(),
        512 * GB,
        0,
        1,
        null_mut(),
    ));
    let mut r = null_mut();
    ok(blockdelta_vm_validate(vm, &mut r));
    assert_eq!(blockdelta_report_count(r), 0);
    blockdelta_report_free(r);
    assert_eq!(blockdelta_vm_validate(vm, null_mut()), NULL_PARAMETER);

    // A failing add writes no index and adds no disk.
    assert_eq!(
        blockdelta_vm_add_disk(
            vm,
            c"bad".as_ptr(),
            GB,
            BLOCKDELTA_VM_DISK_FC | BLOCKDELTA_VM_DISK_SHARED_VHD,
            1,
            &mut index
        ),
        INVALID_ARGUMENT
    );
    assert_eq!(index, 0);
    ok(blockdelta_vm_add_disk(
        vm,
        c"disk2".as_ptr(),
        5000 * GB,
        BLOCKDELTA_VM_DISK_FC,
        1,
        &mut index,
    ));
    assert_eq!(index, 2);
    ok(blockdelta_vm_set_boot(vm, 0, true));
    ok(blockdelta_vm_set_arch(vm, 32));
    ok(blockdelta_vm_validate(vm, &mut r));
    let mut got = rules(r);
    got.sort_unstable();
    assert_eq!(got, [2, 6, 9, 10]);
    let i = (0..4).find(|&i| rules(r)[i] == 6).unwrap();
    let mut f = no_failure();
    ok(blockdelta_report_failure(r, i, &mut f));
    assert_eq!((f.found, f.limit, f.unit), (5000 * GB, 4095 * GB, 1));

    // The subject: exact fit, and too small by one (truncated, NUL-terminated).
    let mut subject = [0xAAu8; 6];
    let mut len = 0;
    ok(blockdelta_report_subject(
        r,
        i,
        subject.as_mut_ptr().cast(),
        6,
        &mut len,
    ));
    assert_eq!((copied(&subject), len), ("disk2", 5));
    ok(blockdelta_report_subject(
        r,
        i,
        subject.as_mut_ptr().cast(),
        5,
        null_mut(),
    ));
    assert_eq!(copied(&subject), "disk");
    // The message: (NULL, 0) gives the length, a small buffer a truncated copy.
    let mut full = 0;
    ok(blockdelta_report_message(r, i, null_mut(), 0, &mut full));
    let mut msg = vec![0xAAu8; full + 1];
    ok(blockdelta_report_message(
        r,
        i,
        msg.as_mut_ptr().cast(),
        msg.len(),
        &mut len,
    ));
    assert_eq!(len, full);
    let whole = copied(&msg).to_owned();
    assert_eq!(whole.len(), full);
    assert!(
        whole.contains("5000 GB") && whole.contains("4095 GB"),
        "{whole}"
    );
    let mut small = [0xAAu8; 8];
    ok(blockdelta_report_message(
        r,
        i,
        small.as_mut_ptr().cast(),
        8,
        &mut len,
    ));
    assert_eq!((copied(&small), len), (&whole[..7], full));
    assert_eq!(
        blockdelta_report_message(r, i, null_mut(), 8, &mut len),
        NULL_PARAMETER
    );
    assert_eq!(
        blockdelta_report_message(r, 4, small.as_mut_ptr().cast(), 8, &mut len),
        INVALID_ARGUMENT
    );
    f.rule = 0;
    assert_eq!(blockdelta_report_failure(r, 4, &mut f), INVALID_ARGUMENT);
    assert_eq!(f.rule, 0, "not written on failure");
    assert_eq!(blockdelta_report_failure(null(), 0, &mut f), NULL_PARAMETER);
    assert_eq!(blockdelta_report_failure(r, 0, null_mut()), NULL_PARAMETER);
    blockdelta_report_free(r);

    // The handle's last error, copied like the messages.
    assert_eq!(blockdelta_vm_set_arch(vm, 16), INVALID_ARGUMENT);
    let mut len = 0;
    ok(blockdelta_vm_last_error(vm, null_mut(), 0, &mut len));
    let mut buf = [0xAAu8; 128];
    ok(blockdelta_vm_last_error(
        vm,
        buf.as_mut_ptr().cast(),
        buf.len(),
        null_mut(),
    ));
    assert!(copied(&buf).contains("32 or 64"));
    assert_eq!(copied(&buf).len(), len);
    let mut tiny = [0xAAu8; 1];
    ok(blockdelta_vm_last_error(
        vm,
        tiny.as_mut_ptr().cast(),
        1,
        null_mut(),
    ));
    assert_eq!(tiny[0], 0);
    assert_eq!(
        blockdelta_vm_last_error(null(), buf.as_mut_ptr().cast(), 1, null_mut()),
        NULL_PARAMETER
    );
    assert_eq!(blockdelta_vm_set_purpose(vm, 2), INVALID_ARGUMENT);
    assert_eq!(blockdelta_vm_set_boot(vm, 2, false), INVALID_ARGUMENT);
    assert_eq!(blockdelta_vm_set_arch(null_mut(), 64), NULL_PARAMETER);
    blockdelta_vm_free(vm);
    blockdelta_vm_free(null_mut());
    blockdelta_report_free(null_mut());
    assert_eq!(blockdelta_report_count(null()), 0);
}

#[test]
fn vm_with_an_oversized_os_disk() {
    let mut vm = null_mut();
    ok(blockdelta_vm_new(c"db-02".as_ptr(), &mut vm));
    ok(blockdelta_vm_set_purpose(vm, 0));
    ok(blockdelta_vm_add_disk(
        vm,
        c"os".as_ptr(),
        3000 * GB,
        BLOCKDELTA_VM_DISK_OS,
        1,
        null_mut(),
    ));
    let mut r = null_mut();
    ok(blockdelta_vm_validate(vm, &mut r));
    assert_eq!(rules(r), [VmRule::OsDiskSize as u32]);
    let mut f = no_failure();
    ok(blockdelta_report_failure(r, 0, &mut f));
    assert_eq!((f.found, f.limit), (3000 * GB, 2048 * GB));
    let mut msg = [0u8; 128];
    ok(blockdelta_report_message(
        r,
        0,
        msg.as_mut_ptr().cast(),
        128,
        null_mut(),
    ));
    assert!(copied(&msg).contains("3000 GB"), "{}", copied(&msg));
    blockdelta_report_free(r);
    blockdelta_vm_free(vm);
}

#[test]
fn linux_vm_volumes() {
    let mut vm = null_mut();
    ok(blockdelta_vm_new(c"db01".as_ptr(), &mut vm));
    ok(blockdelta_vm_set_agent(vm, c"9.19".as_ptr()));
    assert_eq!(
        blockdelta_vm_set_agent(vm, c"nine".as_ptr()),
        blockdelta_result::SupportInvalidAgentVersion
    );
    ok(blockdelta_vm_set_os(
        vm,
        c"CentOS".as_ptr(),
        c"7.6".as_ptr(),
    ));
    let mut sda = 99;
    ok(blockdelta_vm_add_disk(
        vm,
        c"sda".as_ptr(),
        64 * GB,
        BLOCKDELTA_VM_DISK_OS,
        2,
        &mut sda,
    ));
    ok(blockdelta_vm_set_linux(vm, 4 * GB, GB, 0));
    assert_eq!(blockdelta_vm_set_linux(vm, 4 * GB, GB, 8), INVALID_ARGUMENT);
    ok(blockdelta_vm_add_volume(
        vm,
        c"/".as_ptr(),
        c"/dev/sda2".as_ptr(),
        c"xfs".as_ptr(),
        0,
        false,
        &sda,
        1,
    ));
    ok(blockdelta_vm_add_volume(
        vm,
        c"/boot".as_ptr(),
        c"/dev/mapper/vg-boot".as_ptr(),
        c"ext4".as_ptr(),
        0,
        true,
        &sda,
        1,
    ));
    // (NULL, 0) is no disks; NULL with a length is refused.
    ok(blockdelta_vm_add_volume(
        vm,
        c"/tmp".as_ptr(),
        c"tmpfs".as_ptr(),
        c"ext4".as_ptr(),
        0,
        false,
        null(),
        0,
    ));
    assert_eq!(
        blockdelta_vm_add_volume(
            vm,
            c"/x".as_ptr(),
            c"/dev/x".as_ptr(),
            c"ext4".as_ptr(),
            0,
            false,
            null(),
            1
        ),
        NULL_PARAMETER
    );
    let mut r = null_mut();
    ok(blockdelta_vm_validate(vm, &mut r));
    assert_eq!(rules(r), [VmRule::BootOnLvm as u32]);
    blockdelta_report_free(r);

    let nowhere = 7usize;
    ok(blockdelta_vm_add_volume(
        vm,
        c"/data".as_ptr(),
        c"/dev/sdb1".as_ptr(),
        c"ext4".as_ptr(),
        0,
        false,
        &nowhere,
        1,
    ));
    r = null_mut();
    assert_eq!(
        blockdelta_vm_validate(vm, &mut r),
        blockdelta_result::SupportInvalidDescription
    );
    assert!(r.is_null(), "not written on failure");
    blockdelta_vm_free(vm);
}

#[test]
fn uefi_windows_volumes() {
    let mut vm = null_mut();
    ok(blockdelta_vm_new(c"app-01".as_ptr(), &mut vm));
    ok(blockdelta_vm_set_os(
        vm,
        c"Windows Server 2019".as_ptr(),
        c"".as_ptr(),
    ));
    ok(blockdelta_vm_set_purpose(vm, 1));
    ok(blockdelta_vm_set_boot(vm, 1, false));
    let (mut os, mut data) = (99, 99);
    ok(blockdelta_vm_add_disk(
        vm,
        c"disk0".as_ptr(),
        127 * GB,
        BLOCKDELTA_VM_DISK_OS,
        3,
        &mut os,
    ));
    ok(blockdelta_vm_add_disk(
        vm,
        c"disk1".as_ptr(),
        GB * 512,
        0,
        1,
        &mut data,
    ));
    ok(blockdelta_vm_add_windows_volume(
        vm,
        c"C:".as_ptr(),
        c"NTFS".as_ptr(),
        os,
    ));
    // ReFS on a data disk is not the UEFI rule's business.
    ok(blockdelta_vm_add_windows_volume(
        vm,
        c"E:".as_ptr(),
        c"ReFS".as_ptr(),
        data,
    ));
    let mut r = null_mut();
    ok(blockdelta_vm_validate(vm, &mut r));
    assert!(rules(r).is_empty());
    blockdelta_report_free(r);

    ok(blockdelta_vm_add_windows_volume(
        vm,
        c"D:".as_ptr(),
        c"ReFS".as_ptr(),
        os,
    ));
    assert_eq!(
        blockdelta_vm_add_windows_volume(vm, null(), c"NTFS".as_ptr(), os),
        NULL_PARAMETER
    );
    r = null_mut();
    ok(blockdelta_vm_validate(vm, &mut r));
    assert_eq!(rules(r), [VmRule::UefiFileSystem as u32]);
    let mut msg = [0u8; 128];
    ok(blockdelta_report_message(
        r,
        0,
        msg.as_mut_ptr().cast(),
        128,
        null_mut(),
    ));
    assert!(
        copied(&msg).contains("D: on OS disk disk0 is ReFS"),
        "{}",
        copied(&msg)
    );
    blockdelta_report_free(r);

    ok(blockdelta_vm_add_windows_volume(
        vm,
        c"F:".as_ptr(),
        c"NTFS".as_ptr(),
        5,
    ));
    r = null_mut();
    assert_eq!(
        blockdelta_vm_validate(vm, &mut r),
        blockdelta_result::SupportInvalidDescription
    );
    assert!(r.is_null(), "not written on failure");
    blockdelta_vm_free(vm);
    assert_eq!(
        blockdelta_vm_add_windows_volume(null_mut(), c"C:".as_ptr(), c"NTFS".as_ptr(), 0),
        NULL_PARAMETER
    );
}
