//! C ABI of the support matrix: queries (kernel, OS, file system, feature, VMware host, churn),
//! builders for the VM, configuration server and deployment-plan validators, and one report
//! type for validator failures.
//!
//! Strings in are NUL-terminated UTF-8 (`const char *`), borrowed only for the call. Strings out
//! are either static (owned by the library, valid for the life of the process) or copied into a
//! caller buffer snprintf-style: `(buf, cap, len_out)`, at most `cap - 1` bytes plus a NUL, the
//! full length in `*len_out`. Agent versions are strings such as `"9.24"`.
//! Every query function is pure: it never blocks and any thread may call it. A handle may be
//! used by one thread at a time; distinct handles are independent.
//!
//! One file per C type family: `kernel` (kernel check), `os` (operating system checks and
//! upgrades), `matrix` (file systems, features, VMware hosts, churn limits, errata), `report`
//! (validator reports), `vm`, `config_server` and `plan` (the builders). `error` maps
//! [`SupportError`] to its C codes and `strings` holds the NUL-terminated copies of the table
//! strings that the queries return. Each file's C-program-style unit tests sit beside it
//! (`*_tests.rs`, helpers in `test_util.rs`).

#![allow(non_camel_case_types)]

use std::ffi::{c_char, CStr};

use super::error::{copy_handle_message, fail_thread as fail, record_thread_error, LastError};
use super::handle::{arg_ref, arg_slice, copy_str, free_handle, into_handle, Out};
use super::panic::{boundary, boundary_value};
use super::result::blockdelta_result;
use crate::support::{
    check_filesystem, check_kernel, check_os, check_os_upgrade, check_vmware_host, churn_limits,
    disk_churn_limit, errata, feature, validate_config_server, validate_vm, AgentVersion, Arch,
    ConfigServerSpec, DiskKind, DiskLoad, Distro, Failure, Firmware, FsRejection, FsTraits,
    LinuxGuest, LinuxVolume, Machine, OsNote, OsRejection, OsUpgrade, OsVerdict, Plan, Purpose,
    Report, Support, SupportError, TargetStorage, VmDescription, VmDisk, WindowsVolume,
};
use strings::c_static;

/// `blockdelta_vm_add_disk` flag: the OS (boot) disk.
pub const BLOCKDELTA_VM_DISK_OS: u32 = 1;
/// `blockdelta_vm_add_disk` flag: a shared VHD.
pub const BLOCKDELTA_VM_DISK_SHARED_VHD: u32 = 2;
/// `blockdelta_vm_add_disk` flag: a Fibre Channel disk.
pub const BLOCKDELTA_VM_DISK_FC: u32 = 4;
/// `blockdelta_vm_add_disk` flag: a dynamic disk.
pub const BLOCKDELTA_VM_DISK_DYNAMIC: u32 = 8;
/// `blockdelta_vm_set_linux` flag: devices exported by paravirtualized drivers are present.
pub const BLOCKDELTA_LINUX_PARAVIRTUALIZED: u32 = 1;
/// `blockdelta_vm_set_linux` flag: multi-queue block I/O devices are present.
pub const BLOCKDELTA_LINUX_MULTI_QUEUE: u32 = 2;
/// `blockdelta_vm_set_linux` flag: an HP CCISS storage controller.
pub const BLOCKDELTA_LINUX_HP_CCISS: u32 = 4;
/// File system trait: XFS v5 features in use (`ftype=1`).
pub const BLOCKDELTA_FS_XFS_V5: u32 = 1;
/// File system trait: a BTRFS sub-volume changed after protection was enabled.
pub const BLOCKDELTA_FS_BTRFS_SUBVOLUME_CHANGED: u32 = 2;
/// File system trait: BTRFS spans more than one disk.
pub const BLOCKDELTA_FS_BTRFS_MULTI_DISK: u32 = 4;
/// File system trait: BTRFS uses RAID.
pub const BLOCKDELTA_FS_BTRFS_RAID: u32 = 8;

// The C values are the Rust ones.
const _: () = {
    assert!(BLOCKDELTA_FS_XFS_V5 == FsTraits::XFS_V5.0);
    assert!(BLOCKDELTA_FS_BTRFS_SUBVOLUME_CHANGED == FsTraits::BTRFS_SUBVOLUME_CHANGED.0);
    assert!(BLOCKDELTA_FS_BTRFS_MULTI_DISK == FsTraits::BTRFS_MULTI_DISK.0);
    assert!(BLOCKDELTA_FS_BTRFS_RAID == FsTraits::BTRFS_RAID.0);
};

fn invalid(msg: &str) -> blockdelta_result {
    record_thread_error(blockdelta_result::InvalidArgument, &msg);
    blockdelta_result::InvalidArgument
}

/// # Safety
/// `p` is NULL or a NUL-terminated string that lives for `'a`.
unsafe fn arg_str<'a>(p: *const c_char) -> Result<&'a str, blockdelta_result> {
    if p.is_null() {
        record_thread_error(
            blockdelta_result::NullParameter,
            &"a required string argument is NULL",
        );
        return Err(blockdelta_result::NullParameter);
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str()
        .map_err(|_| invalid("a string argument is not valid UTF-8"))
}

/// # Safety
/// As [`arg_str`].
unsafe fn arg_agent(p: *const c_char) -> Result<AgentVersion, blockdelta_result> {
    // SAFETY: forwarded contract.
    unsafe { arg_str(p) }?.parse().map_err(fail)
}

/// # Safety
/// `p` is NULL or a live, unaliased `T` for `'a`.
unsafe fn arg_mut<'a, T>(p: *mut T) -> Result<&'a mut T, blockdelta_result> {
    // SAFETY: per the caller's contract.
    unsafe { p.as_mut() }.ok_or(blockdelta_result::NullParameter)
}

/// Copies the calling thread's last message (just recorded by a failing helper) onto a handle.
fn mirror(last: &LastError, code: blockdelta_result) -> blockdelta_result {
    last.adopt_thread_error(code)
}

fn agent_parts(v: Option<AgentVersion>) -> (u16, u16) {
    v.map_or((0, 0), |v| (v.major(), v.minor()))
}

mod error;
mod strings;

// In the order of the header (cbindgen follows the declarations); one group per line so that
// rustfmt keeps the order.
mod kernel;

mod os;

mod matrix;

mod report;

mod vm;

mod config_server;

mod plan;

#[cfg(test)]
mod test_util;

pub use config_server::*;
pub use kernel::*;
pub use matrix::*;
pub use os::*;
pub use plan::*;
pub use report::*;
pub use vm::*;
