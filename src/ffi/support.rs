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

// ---------------------------------------------------------------------------------------------
// Queries.

/// The answer to `blockdelta_support_kernel_check`. A fixed value type.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct blockdelta_support_kernel {
    /// The asked agent version supports the kernel.
    pub supported: bool,
    /// The tables have a row for the release at the asked agent version.
    pub release_listed: bool,
    /// The matched range (or, when not supported, the nearest version's range): its service
    /// pack (SUSE, else 0) and whether it is an LTSS range.
    pub service_pack: u8,
    /// See `service_pack`.
    pub ltss: bool,
    /// First and last kernel of that range: static strings, NULL when there is no range.
    pub range_first: *const c_char,
    /// See `range_first`.
    pub range_last: *const c_char,
    /// When not supported: the nearest agent version that supports the kernel (newer first),
    /// or 0.0 when none does.
    pub nearest_major: u16,
    /// See `nearest_major`.
    pub nearest_minor: u16,
}

/// Does agent `agent_version` support `kernel` on `distro` `release`?
///
/// `distro`: "ubuntu", "debian", "sles" (also full names); `release`: "16.04", "8", "12",
/// "12 SP4"; `kernel`: `uname -r`, e.g. "4.4.0-143-generic"; `agent_version`: "9.20" to "9.24".
/// A string that is not a kernel version gives BLOCKDELTA_RESULT_SUPPORT_INVALID_KERNEL_VERSION
/// (the thread's last error names it). All strings are borrowed for the call only; the range
/// strings written to `*support_out` are static. Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_support_kernel_check(
    distro: *const c_char,
    release: *const c_char,
    kernel: *const c_char,
    agent_version: *const c_char,
    support_out: *mut blockdelta_support_kernel,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(support_out)?;
        // SAFETY: the caller passes NUL-terminated strings, per the documentation.
        let (d, rel, k, a) = unsafe {
            (
                arg_str(distro)?,
                arg_str(release)?,
                arg_str(kernel)?,
                arg_agent(agent_version)?,
            )
        };
        let d: Distro = d.parse().map_err(fail)?;
        let r = check_kernel(d, rel, k, a).map_err(fail)?;
        let shown = r.matched.or(r.nearest);
        let (nearest_major, nearest_minor) = agent_parts(r.nearest.map(|m| m.agent));
        let v = blockdelta_support_kernel {
            supported: r.is_supported(),
            release_listed: r.release_listed,
            service_pack: shown.map_or(0, |m| m.range.service_pack),
            ltss: shown.is_some_and(|m| m.range.ltss),
            range_first: shown.map_or(std::ptr::null(), |m| m.range.first.as_ptr()),
            range_last: shown.map_or(std::ptr::null(), |m| m.range.last.as_ptr()),
            nearest_major,
            nearest_minor,
        };
        // SAFETY: `support_out` was checked non-NULL and is writable per the documentation.
        unsafe { out.write(v) };
        Ok(())
    })
}

/// `blockdelta_support_os.verdict`: supported for replication.
pub const BLOCKDELTA_OS_SUPPORTED: u32 = 0;
/// `blockdelta_support_os.verdict`: supported for migration only.
pub const BLOCKDELTA_OS_MIGRATION_ONLY: u32 = 1;
/// `blockdelta_support_os.verdict`: not supported (see `rejection`).
pub const BLOCKDELTA_OS_NOT_SUPPORTED: u32 = 2;
/// Rejection: none.
pub const BLOCKDELTA_REJECT_NONE: u32 = 0;
/// Rejection: the version is not listed.
pub const BLOCKDELTA_REJECT_NOT_LISTED: u32 = 1;
/// Rejection: listed as not supported.
pub const BLOCKDELTA_REJECT_UNSUPPORTED: u32 = 2;
/// Rejection: wrong architecture.
pub const BLOCKDELTA_REJECT_ARCHITECTURE: u32 = 3;
/// Rejection: needs a newer agent (`required_major`.`required_minor`).
pub const BLOCKDELTA_REJECT_NEEDS_AGENT: u32 = 4;
/// Rejection: a file system trait is not supported (`traits`).
pub const BLOCKDELTA_REJECT_TRAITS: u32 = 5;

/// The answer to `blockdelta_support_os_check`. A fixed value type.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct blockdelta_support_os {
    /// BLOCKDELTA_OS_SUPPORTED, _MIGRATION_ONLY or _NOT_SUPPORTED.
    pub verdict: u32,
    /// BLOCKDELTA_REJECT_*: why not supported.
    pub rejection: u32,
    /// For BLOCKDELTA_REJECT_NEEDS_AGENT: the agent version needed.
    pub required_major: u16,
    /// See `required_major`.
    pub required_minor: u16,
    /// Notes that qualify the answer: a mask of note bits (`blockdelta_support_os_note_text`).
    pub notes: u32,
}

/// Is operating system `product` `version` on a `arch_bits`-bit (32 or 64) machine supported
/// by agent `agent_version`?
///
/// `product`: "Windows Server 2016", "Windows 7", "RHEL", "CentOS", "Ubuntu", "SLES", "Oracle
/// Linux" ...; `version`: "7.6", "16.04", "12 SP3", "SP1" or "" (Windows). Strings are borrowed
/// for the call only. Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_support_os_check(
    product: *const c_char,
    version: *const c_char,
    arch_bits: u32,
    agent_version: *const c_char,
    support_out: *mut blockdelta_support_os,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(support_out)?;
        // SAFETY: the caller passes NUL-terminated strings, per the documentation.
        let (p, v, a) = unsafe {
            (
                arg_str(product)?,
                arg_str(version)?,
                arg_agent(agent_version)?,
            )
        };
        let arch =
            Arch::from_bits(arch_bits).ok_or_else(|| invalid("arch_bits must be 32 or 64"))?;
        let r = check_os(p, v, arch, a).map_err(fail)?;
        let (verdict, rejection, need) = match r.verdict {
            OsVerdict::Supported => (BLOCKDELTA_OS_SUPPORTED, BLOCKDELTA_REJECT_NONE, None),
            OsVerdict::MigrationOnly => {
                (BLOCKDELTA_OS_MIGRATION_ONLY, BLOCKDELTA_REJECT_NONE, None)
            }
            OsVerdict::NotSupported(why) => {
                let (rejection, need) = os_rejection(why);
                (BLOCKDELTA_OS_NOT_SUPPORTED, rejection, need)
            }
        };
        let (required_major, required_minor) = agent_parts(need);
        let v = blockdelta_support_os {
            verdict,
            rejection,
            required_major,
            required_minor,
            notes: r.notes_mask(),
        };
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(v) };
        Ok(())
    })
}

/// BLOCKDELTA_REJECT_* for an operating system rejection, and the agent version it needs.
fn os_rejection(why: OsRejection) -> (u32, Option<AgentVersion>) {
    match why {
        OsRejection::VersionNotListed => (BLOCKDELTA_REJECT_NOT_LISTED, None),
        OsRejection::Architecture => (BLOCKDELTA_REJECT_ARCHITECTURE, None),
        OsRejection::NeedsAgent(v) => (BLOCKDELTA_REJECT_NEEDS_AGENT, Some(v)),
        _ => (BLOCKDELTA_REJECT_UNSUPPORTED, None),
    }
}

/// `blockdelta_support_os_upgrade.verdict`: upgrade while replication goes on.
pub const BLOCKDELTA_UPGRADE_IN_PLACE: u32 = 0;
/// `blockdelta_support_os_upgrade.verdict`: disable replication, upgrade, enable it again
/// (`note` is the rule).
pub const BLOCKDELTA_UPGRADE_REPROTECT: u32 = 1;
/// `blockdelta_support_os_upgrade.verdict`: the new version is supported for migration only.
pub const BLOCKDELTA_UPGRADE_TARGET_MIGRATION_ONLY: u32 = 2;
/// `blockdelta_support_os_upgrade.verdict`: the agent does not support the new version
/// (`rejection` says why).
pub const BLOCKDELTA_UPGRADE_TARGET_NOT_SUPPORTED: u32 = 3;
/// `blockdelta_support_os_upgrade.verdict`: the matrix states no upgrade rule for this product
/// (only for Linux distributions); the new version itself is supported.
pub const BLOCKDELTA_UPGRADE_NOT_STATED: u32 = 4;

/// The answer to `blockdelta_support_os_upgrade_check`. A fixed value type.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct blockdelta_support_os_upgrade {
    /// BLOCKDELTA_UPGRADE_*.
    pub verdict: u32,
    /// For BLOCKDELTA_UPGRADE_REPROTECT: the note bit of the rule
    /// (`blockdelta_support_os_note_text`); 0 otherwise.
    pub note: u32,
    /// For BLOCKDELTA_UPGRADE_TARGET_NOT_SUPPORTED: BLOCKDELTA_REJECT_*; _NONE otherwise.
    pub rejection: u32,
    /// For BLOCKDELTA_REJECT_NEEDS_AGENT: the agent version needed.
    pub required_major: u16,
    /// See `required_major`.
    pub required_minor: u16,
}

/// Can a protected machine running `product` `from_version` be upgraded to `to_version` on a
/// `arch_bits`-bit machine with agent `agent_version`, without disabling replication? Arguments
/// as for `blockdelta_support_os_check`. BLOCKDELTA_RESULT_SUPPORT_INVALID_DESCRIPTION when
/// `to_version` is earlier than `from_version` (a point release such as "16.04.5" to "16.04.6"
/// is an upgrade within the same version), or when the agent does not support `from_version` at
/// all. Strings are borrowed for the call only. Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_support_os_upgrade_check(
    product: *const c_char,
    from_version: *const c_char,
    to_version: *const c_char,
    arch_bits: u32,
    agent_version: *const c_char,
    upgrade_out: *mut blockdelta_support_os_upgrade,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(upgrade_out)?;
        // SAFETY: the caller passes NUL-terminated strings, per the documentation.
        let (p, f, t, a) = unsafe {
            (
                arg_str(product)?,
                arg_str(from_version)?,
                arg_str(to_version)?,
                arg_agent(agent_version)?,
            )
        };
        let arch =
            Arch::from_bits(arch_bits).ok_or_else(|| invalid("arch_bits must be 32 or 64"))?;
        let mut v = blockdelta_support_os_upgrade {
            verdict: BLOCKDELTA_UPGRADE_IN_PLACE,
            note: 0,
            rejection: BLOCKDELTA_REJECT_NONE,
            required_major: 0,
            required_minor: 0,
        };
        match check_os_upgrade(p, f, t, arch, a).map_err(fail)? {
            OsUpgrade::InPlace => {}
            OsUpgrade::Reprotect(note) => {
                v.verdict = BLOCKDELTA_UPGRADE_REPROTECT;
                v.note = note as u32;
            }
            OsUpgrade::TargetMigrationOnly => v.verdict = BLOCKDELTA_UPGRADE_TARGET_MIGRATION_ONLY,
            OsUpgrade::TargetNotSupported(why) => {
                let (rejection, need) = os_rejection(why);
                v.verdict = BLOCKDELTA_UPGRADE_TARGET_NOT_SUPPORTED;
                v.rejection = rejection;
                (v.required_major, v.required_minor) = agent_parts(need);
            }
            OsUpgrade::NotStated => v.verdict = BLOCKDELTA_UPGRADE_NOT_STATED,
        }
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(v) };
        Ok(())
    })
}

/// The sentence for one note bit of `blockdelta_support_os.notes`, as a static NUL-terminated
/// string owned by the library; NULL for a value that is not a single known bit.
/// Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_support_os_note_text(note: u32) -> *const c_char {
    boundary_value(std::ptr::null(), || {
        OsNote::from_bit(note).map_or(std::ptr::null(), |n| n.text().as_ptr())
    })
}

/// The answer to `blockdelta_support_filesystem_check`. A fixed value type.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct blockdelta_support_filesystem {
    /// Supported.
    pub supported: bool,
    /// BLOCKDELTA_REJECT_NOT_LISTED, _NEEDS_AGENT or _TRAITS; _NONE when supported.
    pub rejection: u32,
    /// For BLOCKDELTA_REJECT_NEEDS_AGENT: the agent version needed.
    pub required_major: u16,
    /// See `required_major`.
    pub required_minor: u16,
    /// For BLOCKDELTA_REJECT_TRAITS: the BLOCKDELTA_FS_* traits that are not supported.
    pub traits: u32,
}

/// Is Linux file system `name` ("ext3", "ext4", "xfs", "btrfs") with `traits` (BLOCKDELTA_FS_*
/// bits) supported by agent `agent_version`? Strings are borrowed for the call only.
/// Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_support_filesystem_check(
    name: *const c_char,
    traits: u32,
    agent_version: *const c_char,
    support_out: *mut blockdelta_support_filesystem,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(support_out)?;
        // SAFETY: the caller passes NUL-terminated strings, per the documentation.
        let (n, a) = unsafe { (arg_str(name)?, arg_agent(agent_version)?) };
        if traits & !FsTraits::ALL.0 != 0 {
            return Err(invalid(
                "traits has bits that are not BLOCKDELTA_FS_* values",
            ));
        }
        let mut v = blockdelta_support_filesystem {
            supported: false,
            rejection: BLOCKDELTA_REJECT_NONE,
            required_major: 0,
            required_minor: 0,
            traits: 0,
        };
        match check_filesystem(n, FsTraits(traits), a) {
            Ok(()) => v.supported = true,
            Err(FsRejection::NeedsAgent(need)) => {
                v.rejection = BLOCKDELTA_REJECT_NEEDS_AGENT;
                (v.required_major, v.required_minor) = (need.major(), need.minor());
            }
            Err(FsRejection::Traits(t)) => {
                v.rejection = BLOCKDELTA_REJECT_TRAITS;
                v.traits = t.0;
            }
            Err(_) => v.rejection = BLOCKDELTA_REJECT_NOT_LISTED,
        }
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(v) };
        Ok(())
    })
}

/// `machine` for `blockdelta_support_feature`: a VMware VM.
pub const BLOCKDELTA_MACHINE_VMWARE_VM: u32 = 0;
/// `machine` for `blockdelta_support_feature`: a physical server.
pub const BLOCKDELTA_MACHINE_PHYSICAL: u32 = 1;
/// Feature support: no.
pub const BLOCKDELTA_FEATURE_NO: u32 = 0;
/// Feature support: yes.
pub const BLOCKDELTA_FEATURE_YES: u32 = 1;
/// Feature support: under the conditions in the note.
pub const BLOCKDELTA_FEATURE_CONDITIONAL: u32 = 2;
/// Feature support: does not apply to this kind of machine.
pub const BLOCKDELTA_FEATURE_NOT_APPLICABLE: u32 = 3;

/// Is the storage, network or Azure feature `key` (e.g. "host_nic_teaming", "guest_uefi_boot",
/// "azure_accelerated_networking"; see docs/SUPPORT.md) supported for `machine`
/// (BLOCKDELTA_MACHINE_*)? `*support_out` receives a BLOCKDELTA_FEATURE_* value; `note_out`, if
/// not NULL, a static NUL-terminated note (empty when there is none). An unknown key gives
/// BLOCKDELTA_RESULT_SUPPORT_UNKNOWN_FEATURE. Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_support_feature(
    key: *const c_char,
    machine: u32,
    support_out: *mut u32,
    note_out: *mut *const c_char,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(support_out)?;
        // SAFETY: the caller passes a NUL-terminated string, per the documentation.
        let k = unsafe { arg_str(key)? };
        let m =
            match machine {
                BLOCKDELTA_MACHINE_VMWARE_VM => Machine::VmwareVm,
                BLOCKDELTA_MACHINE_PHYSICAL => Machine::PhysicalServer,
                _ => return Err(invalid(
                    "machine must be BLOCKDELTA_MACHINE_VMWARE_VM or BLOCKDELTA_MACHINE_PHYSICAL",
                )),
            };
        let f = feature(k).map_err(fail)?;
        let v = match f.support(m) {
            Support::No => BLOCKDELTA_FEATURE_NO,
            Support::Yes => BLOCKDELTA_FEATURE_YES,
            Support::Conditional => BLOCKDELTA_FEATURE_CONDITIONAL,
            Support::NotApplicable => BLOCKDELTA_FEATURE_NOT_APPLICABLE,
        };
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(v) };
        if !note_out.is_null() {
            // SAFETY: a non-NULL `note_out` is writable per the documentation.
            unsafe { note_out.write(f.note.as_ptr()) };
        }
        Ok(())
    })
}

/// Is vCenter Server / vSphere `version` ("6.7", "6.5.0") a supported VMware host?
/// The string is borrowed for the call only. Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_support_vmware_host_check(
    version: *const c_char,
    supported_out: *mut bool,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(supported_out)?;
        // SAFETY: the caller passes a NUL-terminated string, per the documentation.
        let v = unsafe { arg_str(version)? };
        let ok = check_vmware_host(v).map_err(fail)?;
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(ok) };
        Ok(())
    })
}

/// A per-disk churn limit. A fixed value type.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct blockdelta_churn_limit {
    /// Average churn limit, bytes per second.
    pub bytes_per_second: u64,
    /// Daily churn limit, bytes.
    pub bytes_per_day: u64,
    /// The I/O size of the table row that applies, KB.
    pub io_kib: u32,
}

/// The churn limit of a disk replicating to `target` (0 standard, 10/15/20/30/40/50 premium
/// P10 ... P50) with average write size `average_io_bytes`. Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_support_disk_churn_limit(
    target: u32,
    average_io_bytes: u64,
    limit_out: *mut blockdelta_churn_limit,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(limit_out)?;
        let t = TargetStorage::from_u32(target).ok_or_else(|| {
            fail(SupportError::UnknownStorageTarget {
                input: target.to_string(),
            })
        })?;
        let l = disk_churn_limit(t, average_io_bytes);
        let v = blockdelta_churn_limit {
            bytes_per_second: l.bytes_per_second(),
            bytes_per_day: l.bytes_per_day(),
            io_kib: l.io_kib,
        };
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(v) };
        Ok(())
    })
}

/// The per-VM and per-process-server churn limits. A fixed value type.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct blockdelta_churn_limits {
    /// Average churn of one VM (all disks), bytes per second.
    pub vm_average_bytes_per_second: u64,
    /// Peak churn across all disks of one VM, bytes per second.
    pub vm_peak_bytes_per_second: u64,
    /// Churn one process server handles per day, bytes.
    pub process_server_bytes_per_day: u64,
}

/// The per-VM and per-process-server churn limits. Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_support_churn_limits(
    limits_out: *mut blockdelta_churn_limits,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(limits_out)?;
        let l = churn_limits();
        let v = blockdelta_churn_limits {
            vm_average_bytes_per_second: l.vm_average_bytes_per_second,
            vm_peak_bytes_per_second: l.vm_peak_bytes_per_second,
            process_server_bytes_per_day: l.process_server_bytes_per_day,
        };
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(v) };
        Ok(())
    })
}

/// The number of resolved contradictions of the source (see `blockdelta_support_erratum`).
/// Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_support_errata_count() -> usize {
    boundary_value(0, || errata().len())
}

/// Erratum `index`: its id ("E1"), what the source says, and the resolution, as static
/// NUL-terminated strings owned by the library. Any of the out pointers may be NULL.
/// Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_support_erratum(
    index: usize,
    id_out: *mut *const c_char,
    source_out: *mut *const c_char,
    resolution_out: *mut *const c_char,
) -> blockdelta_result {
    boundary(|| {
        let e = errata()
            .get(index)
            .ok_or_else(|| invalid("erratum index out of range"))?;
        for (p, s) in [
            (id_out, e.id),
            (source_out, e.source),
            (resolution_out, e.resolution),
        ] {
            if !p.is_null() {
                // SAFETY: a non-NULL out pointer is writable per the documentation.
                unsafe { p.write(s.as_ptr()) };
            }
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Validator reports.

struct Entry {
    rule: u32,
    unit: u32,
    found: u64,
    limit: u64,
    subject: String,
    message: String,
}

/// Every failed check of one validation (VM rules 1-99, configuration server rules 101-199;
/// see docs/SUPPORT.md). Opaque; read-only once made; any thread may read it.
pub struct blockdelta_report {
    entries: Vec<Entry>,
}

impl blockdelta_report {
    fn from<R: Copy + PartialEq + Into<u32>>(r: Report<R>) -> Self {
        let entries = r
            .failures
            .into_iter()
            .map(|f: Failure<R>| Entry {
                rule: f.rule.into(),
                unit: f.unit as u32,
                found: f.found,
                limit: f.limit,
                subject: f.subject,
                message: f.message,
            })
            .collect();
        blockdelta_report { entries }
    }

    fn entry(&self, index: usize) -> Result<&Entry, blockdelta_result> {
        self.entries
            .get(index)
            .ok_or_else(|| invalid("failure index out of range"))
    }
}

impl From<crate::support::VmRule> for u32 {
    fn from(r: crate::support::VmRule) -> u32 {
        r as u32
    }
}

impl From<crate::support::ConfigServerRule> for u32 {
    fn from(r: crate::support::ConfigServerRule) -> u32 {
        r as u32
    }
}

/// One failed check. A fixed value type.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct blockdelta_failure {
    /// The rule (VM rules 1-99, configuration server rules 101-199).
    pub rule: u32,
    /// The unit of `found` and `limit` (0 none, 1 bytes, 2 count, 3 characters, 4 bits, 5 flag,
    /// 6 agent version as major << 16 | minor, 7 code point, 8 disk index, 9 port).
    pub unit: u32,
    /// The value found.
    pub found: u64,
    /// The limit.
    pub limit: u64,
}

/// The number of failures in `report` (0 when everything passed, or when `report` is NULL).
/// Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_report_count(report: *const blockdelta_report) -> usize {
    boundary_value(0, || {
        // SAFETY: NULL or a live report, per the documentation.
        unsafe { report.as_ref() }.map_or(0, |r| r.entries.len())
    })
}

/// Failure `index` of `report`. Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_report_failure(
    report: *const blockdelta_report,
    index: usize,
    failure_out: *mut blockdelta_failure,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(failure_out)?;
        // SAFETY: a live report, per the documentation.
        let e = unsafe { arg_ref(report)? }.entry(index)?;
        let v = blockdelta_failure {
            rule: e.rule,
            unit: e.unit,
            found: e.found,
            limit: e.limit,
        };
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(v) };
        Ok(())
    })
}

/// Copies failure `index`'s message (a sentence naming the values) into `buf`, snprintf-style.
/// Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_report_message(
    report: *const blockdelta_report,
    index: usize,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live report and a writable (buf, cap), per the documentation.
        unsafe { copy_str(&arg_ref(report)?.entry(index)?.message, buf, cap, len_out) }
    })
}

/// Copies failure `index`'s subject (the disk, volume, role or port; empty for the whole
/// machine) into `buf`, snprintf-style. Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_report_subject(
    report: *const blockdelta_report,
    index: usize,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live report and a writable (buf, cap), per the documentation.
        unsafe { copy_str(&arg_ref(report)?.entry(index)?.subject, buf, cap, len_out) }
    })
}

/// Frees a report; NULL is a no-op.
#[no_mangle]
pub extern "C" fn blockdelta_report_free(report: *mut blockdelta_report) {
    // SAFETY: NULL or a report from this library, freed once, per the documentation.
    boundary_value((), || unsafe { free_handle(report) })
}

// ---------------------------------------------------------------------------------------------
// VM description.

/// A machine description for the VM validator. Opaque; one thread at a time.
pub struct blockdelta_vm {
    inner: VmDescription,
    last_error: LastError,
}

/// Makes a description of a 64-bit machine named `name` (copied), for replication by the newest
/// agent version, with no disks. Free with `blockdelta_vm_free`. Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_vm_new(
    name: *const c_char,
    vm_out: *mut *mut blockdelta_vm,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(vm_out)?;
        // SAFETY: the caller passes a NUL-terminated string, per the documentation.
        let n = unsafe { arg_str(name)? };
        let h = into_handle(blockdelta_vm {
            inner: VmDescription::new(n),
            last_error: LastError::new(),
        });
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(h) };
        Ok(())
    })
}

/// Frees a description; NULL is a no-op.
#[no_mangle]
pub extern "C" fn blockdelta_vm_free(vm: *mut blockdelta_vm) {
    // SAFETY: NULL or a handle from `blockdelta_vm_new`, freed once, per the documentation.
    boundary_value((), || unsafe { free_handle(vm) })
}

/// Runs `f` on a live VM handle, recording a failure's message on it.
///
/// # Safety
/// `vm` is NULL or a live handle not used by another thread.
unsafe fn with_vm(
    vm: *mut blockdelta_vm,
    f: impl FnOnce(&mut VmDescription) -> Result<(), blockdelta_result>,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: per the caller's contract.
        let h = unsafe { arg_mut(vm)? };
        f(&mut h.inner).map_err(|code| mirror(&h.last_error, code))
    })
}

/// Sets the architecture: 32 or 64 bits. Never blocks.
#[no_mangle]
pub extern "C" fn blockdelta_vm_set_arch(vm: *mut blockdelta_vm, bits: u32) -> blockdelta_result {
    // SAFETY: `vm` is NULL or a live handle used by one thread, per the documentation.
    unsafe {
        with_vm(vm, |v| {
            v.arch = Arch::from_bits(bits).ok_or_else(|| invalid("bits must be 32 or 64"))?;
            Ok(())
        })
    }
}

/// Sets the agent version that will protect the machine ("9.24"; borrowed for the call).
#[no_mangle]
pub extern "C" fn blockdelta_vm_set_agent(
    vm: *mut blockdelta_vm,
    agent_version: *const c_char,
) -> blockdelta_result {
    // SAFETY: `vm` is NULL or a live handle used by one thread and `agent_version` is
    // NUL-terminated, per the documentation.
    unsafe {
        with_vm(vm, |v| {
            v.agent = arg_agent(agent_version)?;
            Ok(())
        })
    }
}

/// Sets the purpose: 0 replication, 1 migration.
#[no_mangle]
pub extern "C" fn blockdelta_vm_set_purpose(
    vm: *mut blockdelta_vm,
    purpose: u32,
) -> blockdelta_result {
    // SAFETY: `vm` is NULL or a live handle used by one thread, per the documentation.
    unsafe {
        with_vm(vm, |v| {
            v.purpose = match purpose {
                0 => Purpose::Replication,
                1 => Purpose::Migration,
                _ => return Err(invalid("purpose must be 0 (replication) or 1 (migration)")),
            };
            Ok(())
        })
    }
}

/// Sets the operating system (as for `blockdelta_support_os_check`; strings copied).
#[no_mangle]
pub extern "C" fn blockdelta_vm_set_os(
    vm: *mut blockdelta_vm,
    product: *const c_char,
    version: *const c_char,
) -> blockdelta_result {
    // SAFETY: `vm` is NULL or a live handle used by one thread and the strings are NUL-terminated,
    // per the documentation.
    unsafe {
        with_vm(vm, |v| {
            v.os = Some((arg_str(product)?.to_owned(), arg_str(version)?.to_owned()));
            Ok(())
        })
    }
}

/// Sets the boot firmware (0 BIOS, 1 UEFI) and BitLocker (enabled or not).
#[no_mangle]
pub extern "C" fn blockdelta_vm_set_boot(
    vm: *mut blockdelta_vm,
    firmware: u32,
    bitlocker: bool,
) -> blockdelta_result {
    // SAFETY: `vm` is NULL or a live handle used by one thread, per the documentation.
    unsafe {
        with_vm(vm, |v| {
            v.firmware = match firmware {
                0 => Firmware::Bios,
                1 => Firmware::Uefi,
                _ => return Err(invalid("firmware must be 0 (BIOS) or 1 (UEFI)")),
            };
            v.bitlocker = bitlocker;
            Ok(())
        })
    }
}

/// Adds a disk: `name` (copied), size in bytes, BLOCKDELTA_VM_DISK_* `flags`, number of
/// partitions. `*index_out` (may be NULL) receives its index, for `blockdelta_vm_add_volume`.
#[no_mangle]
pub extern "C" fn blockdelta_vm_add_disk(
    vm: *mut blockdelta_vm,
    name: *const c_char,
    size_bytes: u64,
    flags: u32,
    partitions: u32,
    index_out: *mut usize,
) -> blockdelta_result {
    let mut index = 0;
    // SAFETY: `vm` is NULL or a live handle used by one thread and `name` is NUL-terminated,
    // per the documentation.
    let r = unsafe {
        with_vm(vm, |v| {
            let name = arg_str(name)?;
            if flags & !15 != 0 {
                return Err(invalid(
                    "flags has bits that are not BLOCKDELTA_VM_DISK_* values",
                ));
            }
            let kind = match (
                flags & BLOCKDELTA_VM_DISK_SHARED_VHD != 0,
                flags & BLOCKDELTA_VM_DISK_FC != 0,
            ) {
                (true, true) => {
                    return Err(invalid(
                        "a disk cannot be both a shared VHD and a Fibre Channel disk",
                    ))
                }
                (true, false) => DiskKind::SharedVhd,
                (false, true) => DiskKind::FibreChannel,
                (false, false) => DiskKind::Standard,
            };
            v.disks.push(VmDisk {
                name: name.to_owned(),
                size_bytes,
                os_disk: flags & BLOCKDELTA_VM_DISK_OS != 0,
                kind,
                dynamic: flags & BLOCKDELTA_VM_DISK_DYNAMIC != 0,
                partitions,
            });
            index = v.disks.len() - 1;
            Ok(())
        })
    };
    if r == blockdelta_result::Ok && !index_out.is_null() {
        // SAFETY: a non-NULL `index_out` is writable per the documentation.
        unsafe { index_out.write(index) };
    }
    r
}

/// Marks the machine as Linux and sets its guest facts: free bytes on the root partition and
/// for the installation folder, and BLOCKDELTA_LINUX_* `flags`. Keeps volumes already added.
#[no_mangle]
pub extern "C" fn blockdelta_vm_set_linux(
    vm: *mut blockdelta_vm,
    root_free_bytes: u64,
    install_free_bytes: u64,
    flags: u32,
) -> blockdelta_result {
    // SAFETY: `vm` is NULL or a live handle used by one thread, per the documentation.
    unsafe {
        with_vm(vm, |v| {
            if flags & !7 != 0 {
                return Err(invalid(
                    "flags has bits that are not BLOCKDELTA_LINUX_* values",
                ));
            }
            let g = v.linux.get_or_insert_with(LinuxGuest::default);
            g.root_free_bytes = root_free_bytes;
            g.install_free_bytes = install_free_bytes;
            g.paravirtualized_devices = flags & BLOCKDELTA_LINUX_PARAVIRTUALIZED != 0;
            g.multi_queue_devices = flags & BLOCKDELTA_LINUX_MULTI_QUEUE != 0;
            g.hp_cciss = flags & BLOCKDELTA_LINUX_HP_CCISS != 0;
            Ok(())
        })
    }
}

/// Adds a Linux volume: mount point, device, file system (strings copied), BLOCKDELTA_FS_*
/// `traits`, whether it is an LVM logical volume, and the indices of the disks it lies on
/// (`(disks, disks_len)`, borrowed for the call).
#[no_mangle]
pub extern "C" fn blockdelta_vm_add_volume(
    vm: *mut blockdelta_vm,
    mount: *const c_char,
    device: *const c_char,
    filesystem: *const c_char,
    traits: u32,
    lvm: bool,
    disks: *const usize,
    disks_len: usize,
) -> blockdelta_result {
    // SAFETY: `vm` is NULL or a live handle used by one thread, the strings are NUL-terminated and
    // `(disks, disks_len)` is (NULL, 0) or readable, per the documentation.
    unsafe {
        with_vm(vm, |v| {
            if traits & !FsTraits::ALL.0 != 0 {
                return Err(invalid(
                    "traits has bits that are not BLOCKDELTA_FS_* values",
                ));
            }
            let volume = LinuxVolume {
                mount: arg_str(mount)?.to_owned(),
                device: arg_str(device)?.to_owned(),
                filesystem: arg_str(filesystem)?.to_owned(),
                traits: FsTraits(traits),
                lvm,
                disks: arg_slice(disks, disks_len)?.to_vec(),
            };
            v.linux
                .get_or_insert_with(LinuxGuest::default)
                .volumes
                .push(volume);
            Ok(())
        })
    }
}

/// Adds a Windows volume that has a drive letter or mount path: `name` (`"C:"`) and `filesystem`
/// (`"NTFS"`, `"ReFS"`; both copied), and the index of the disk it lies on. With UEFI boot, every
/// volume on the OS disk must be NTFS (rule 19); do not add the EFI system partition.
#[no_mangle]
pub extern "C" fn blockdelta_vm_add_windows_volume(
    vm: *mut blockdelta_vm,
    name: *const c_char,
    filesystem: *const c_char,
    disk: usize,
) -> blockdelta_result {
    // SAFETY: `vm` is NULL or a live handle used by one thread and the strings are
    // NUL-terminated, per the documentation.
    unsafe {
        with_vm(vm, |v| {
            let volume = WindowsVolume {
                name: arg_str(name)?.to_owned(),
                filesystem: arg_str(filesystem)?.to_owned(),
                disk,
            };
            v.windows_volumes.push(volume);
            Ok(())
        })
    }
}

/// Runs every VM check; `*report_out` receives a new report (free with
/// `blockdelta_report_free`), possibly with no failures. A volume (Linux or Windows) on a disk
/// index that does not exist gives BLOCKDELTA_RESULT_SUPPORT_INVALID_DESCRIPTION. Never blocks.
#[no_mangle]
pub extern "C" fn blockdelta_vm_validate(
    vm: *const blockdelta_vm,
    report_out: *mut *mut blockdelta_report,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(report_out)?;
        // SAFETY: a live handle, per the documentation.
        let h = unsafe { arg_ref(vm)? };
        let r = validate_vm(&h.inner).map_err(|e| h.last_error.fail(e))?;
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(into_handle(blockdelta_report::from(r))) };
        Ok(())
    })
}

/// Copies the last error recorded on `vm` (see `blockdelta_last_error` for the buffer rules).
#[no_mangle]
pub extern "C" fn blockdelta_vm_last_error(
    vm: *const blockdelta_vm,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> blockdelta_result {
    // SAFETY: a live handle and a writable (buf, cap), per the documentation.
    boundary(|| unsafe { copy_handle_message(&arg_ref(vm)?.last_error, buf, cap, len_out) })
}

// ---------------------------------------------------------------------------------------------
// Configuration server.

/// A proposed configuration server. Opaque; one thread at a time.
pub struct blockdelta_config_server {
    inner: ConfigServerSpec,
    last_error: LastError,
}

/// Makes a proposed configuration server that meets every requirement (8 cores, 16 GB, 3
/// disks, 600 GB cache and retention space, Windows Server 2016 with Desktop Experience, en-us,
/// a VMware VM with a VMXNET3 NIC and a static IP, nothing on its ports, no roles or policies,
/// the newest version); change what differs. Free with `blockdelta_config_server_free`.
#[no_mangle]
pub extern "C" fn blockdelta_config_server_new(
    server_out: *mut *mut blockdelta_config_server,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(server_out)?;
        let h = into_handle(blockdelta_config_server {
            inner: ConfigServerSpec::default(),
            last_error: LastError::new(),
        });
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(h) };
        Ok(())
    })
}

/// Frees a proposed server; NULL is a no-op.
#[no_mangle]
pub extern "C" fn blockdelta_config_server_free(server: *mut blockdelta_config_server) {
    // SAFETY: NULL or a handle from `blockdelta_config_server_new`, freed once.
    boundary_value((), || unsafe { free_handle(server) })
}

/// # Safety
/// `s` is NULL or a live handle not used by another thread.
unsafe fn with_server(
    s: *mut blockdelta_config_server,
    f: impl FnOnce(&mut ConfigServerSpec) -> Result<(), blockdelta_result>,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: per the caller's contract.
        let h = unsafe { arg_mut(s)? };
        f(&mut h.inner).map_err(|code| mirror(&h.last_error, code))
    })
}

/// Sets cores, memory bytes, number of disks, and free bytes for the cache and the retention drive.
#[no_mangle]
pub extern "C" fn blockdelta_config_server_set_hardware(
    server: *mut blockdelta_config_server,
    cores: u32,
    memory_bytes: u64,
    disks: u32,
    cache_free_bytes: u64,
    retention_free_bytes: u64,
) -> blockdelta_result {
    // SAFETY: `server` is NULL or a live handle used by one thread, per the documentation.
    unsafe {
        with_server(server, |s| {
            (s.cores, s.memory_bytes, s.disks) = (cores, memory_bytes, disks);
            (s.cache_free_bytes, s.retention_free_bytes) = (cache_free_bytes, retention_free_bytes);
            Ok(())
        })
    }
}

/// Sets the operating system product, whether it has Desktop Experience, and the locale
/// (strings copied).
#[no_mangle]
pub extern "C" fn blockdelta_config_server_set_os(
    server: *mut blockdelta_config_server,
    product: *const c_char,
    desktop_experience: bool,
    locale: *const c_char,
) -> blockdelta_result {
    // SAFETY: `server` is NULL or a live handle used by one thread and the strings are
    // NUL-terminated, per the documentation.
    unsafe {
        with_server(server, |s| {
            // Both strings are checked before anything changes.
            let (product, locale) = (arg_str(product)?, arg_str(locale)?);
            (s.os, s.locale) = (product.to_owned(), locale.to_owned());
            s.desktop_experience = desktop_experience;
            Ok(())
        })
    }
}

/// Sets whether it is a VMware VM, its NIC type (copied), and whether its IP is static.
#[no_mangle]
pub extern "C" fn blockdelta_config_server_set_network(
    server: *mut blockdelta_config_server,
    vmware_vm: bool,
    nic: *const c_char,
    static_ip: bool,
) -> blockdelta_result {
    // SAFETY: `server` is NULL or a live handle used by one thread and the strings are
    // NUL-terminated, per the documentation.
    unsafe {
        with_server(server, |s| {
            s.nic = arg_str(nic)?.to_owned();
            (s.vmware_vm, s.static_ip) = (vmware_vm, static_ip);
            Ok(())
        })
    }
}

/// Records that something already listens on TCP `port`.
#[no_mangle]
pub extern "C" fn blockdelta_config_server_add_port_in_use(
    server: *mut blockdelta_config_server,
    port: u16,
) -> blockdelta_result {
    // SAFETY: `server` is NULL or a live handle used by one thread, per the documentation.
    unsafe {
        with_server(server, |s| {
            s.ports_in_use.push(port);
            Ok(())
        })
    }
}

/// Records an enabled Windows Server role ("IIS", "AD DS", "Hyper-V", ...; copied).
#[no_mangle]
pub extern "C" fn blockdelta_config_server_add_role(
    server: *mut blockdelta_config_server,
    role: *const c_char,
) -> blockdelta_result {
    // SAFETY: `server` is NULL or a live handle used by one thread and the strings are
    // NUL-terminated, per the documentation.
    unsafe {
        with_server(server, |s| {
            s.roles.push(arg_str(role)?.to_owned());
            Ok(())
        })
    }
}

/// Records an enabled group policy (by its name, copied).
#[no_mangle]
pub extern "C" fn blockdelta_config_server_add_group_policy(
    server: *mut blockdelta_config_server,
    policy: *const c_char,
) -> blockdelta_result {
    // SAFETY: `server` is NULL or a live handle used by one thread and the strings are
    // NUL-terminated, per the documentation.
    unsafe {
        with_server(server, |s| {
            s.group_policies.push(arg_str(policy)?.to_owned());
            Ok(())
        })
    }
}

/// Sets the configuration server version to install ("9.24"; borrowed) and whether PowerCLI 6.0
/// is installed.
#[no_mangle]
pub extern "C" fn blockdelta_config_server_set_version(
    server: *mut blockdelta_config_server,
    version: *const c_char,
    powercli: bool,
) -> blockdelta_result {
    // SAFETY: `server` is NULL or a live handle used by one thread and the strings are
    // NUL-terminated, per the documentation.
    unsafe {
        with_server(server, |s| {
            s.version = arg_agent(version)?;
            s.powercli = powercli;
            Ok(())
        })
    }
}

/// Runs every configuration server check; `*report_out` receives a new report (free with
/// `blockdelta_report_free`). Never blocks.
#[no_mangle]
pub extern "C" fn blockdelta_config_server_validate(
    server: *const blockdelta_config_server,
    report_out: *mut *mut blockdelta_report,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(report_out)?;
        // SAFETY: a live handle, per the documentation.
        let h = unsafe { arg_ref(server)? };
        let r = validate_config_server(&h.inner);
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(into_handle(blockdelta_report::from(r))) };
        Ok(())
    })
}

/// Copies the last error recorded on `server` (see `blockdelta_last_error` for the buffer rules).
#[no_mangle]
pub extern "C" fn blockdelta_config_server_last_error(
    server: *const blockdelta_config_server,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> blockdelta_result {
    // SAFETY: a live handle and a writable (buf, cap), per the documentation.
    boundary(|| unsafe { copy_handle_message(&arg_ref(server)?.last_error, buf, cap, len_out) })
}

// ---------------------------------------------------------------------------------------------
// Deployment planner.

/// A deployment plan: disks are added, then `blockdelta_plan_evaluate` computes the verdicts.
/// Opaque; one thread at a time (read-only accessors may run concurrently with each other).
pub struct blockdelta_plan {
    disks: Vec<DiskLoad>,
    result: Option<Plan>,
    last_error: LastError,
}

/// Makes an empty plan. Free with `blockdelta_plan_free`.
#[no_mangle]
pub extern "C" fn blockdelta_plan_new(plan_out: *mut *mut blockdelta_plan) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(plan_out)?;
        let h = into_handle(blockdelta_plan {
            disks: Vec::new(),
            result: None,
            last_error: LastError::new(),
        });
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(h) };
        Ok(())
    })
}

/// Frees a plan; NULL is a no-op.
#[no_mangle]
pub extern "C" fn blockdelta_plan_free(plan: *mut blockdelta_plan) {
    // SAFETY: NULL or a handle from `blockdelta_plan_new`, freed once.
    boundary_value((), || unsafe { free_handle(plan) })
}

/// Adds a disk of machine `vm` (names copied) replicating to `target` (as for
/// `blockdelta_support_disk_churn_limit`), with its measured average and peak churn (bytes per
/// second), average write size (bytes) and daily churn (bytes; 0 derives it from the average).
/// Clears any earlier evaluation.
#[no_mangle]
pub extern "C" fn blockdelta_plan_add_disk(
    plan: *mut blockdelta_plan,
    vm: *const c_char,
    disk: *const c_char,
    target: u32,
    average_bytes_per_second: u64,
    peak_bytes_per_second: u64,
    average_io_bytes: u64,
    bytes_per_day: u64,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle, not used by another thread, per the documentation.
        let h = unsafe { arg_mut(plan)? };
        // SAFETY: NUL-terminated strings, per the documentation.
        let (vm, disk) = unsafe { (arg_str(vm)?, arg_str(disk)?) };
        let target = TargetStorage::from_u32(target).ok_or_else(|| {
            h.last_error.fail(SupportError::UnknownStorageTarget {
                input: target.to_string(),
            })
        })?;
        let mut d = DiskLoad::new(
            vm,
            disk,
            target,
            average_bytes_per_second,
            peak_bytes_per_second,
            average_io_bytes,
        );
        d.bytes_per_day = (bytes_per_day != 0).then_some(bytes_per_day);
        h.disks.push(d);
        h.result = None;
        Ok(())
    })
}

/// Evaluates the plan. Inconsistent input (a peak below its average, a disk listed twice)
/// gives BLOCKDELTA_RESULT_SUPPORT_INVALID_DESCRIPTION. Never blocks.
#[no_mangle]
pub extern "C" fn blockdelta_plan_evaluate(plan: *mut blockdelta_plan) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle, not used by another thread, per the documentation.
        let h = unsafe { arg_mut(plan)? };
        h.result = Some(crate::support::plan(&h.disks).map_err(|e| h.last_error.fail(e))?);
        Ok(())
    })
}

/// # Safety
/// `p` is NULL or a live plan.
unsafe fn evaluated<'a>(p: *const blockdelta_plan) -> Result<&'a Plan, blockdelta_result> {
    // SAFETY: per the caller's contract.
    let h = unsafe { arg_ref(p)? };
    h.result.as_ref().ok_or_else(|| {
        h.last_error.record(
            blockdelta_result::InvalidArgument,
            &"the plan is not evaluated",
        )
    })
}

/// The plan's totals. A fixed value type.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct blockdelta_plan_totals {
    /// Process servers needed (at least 1).
    pub process_servers: u32,
    /// Number of machines.
    pub vms: usize,
    /// Total daily churn, bytes.
    pub bytes_per_day: u64,
}

/// The totals of an evaluated plan.
#[no_mangle]
pub extern "C" fn blockdelta_plan_get_totals(
    plan: *const blockdelta_plan,
    totals_out: *mut blockdelta_plan_totals,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(totals_out)?;
        // SAFETY: a live handle, per the documentation.
        let p = unsafe { evaluated(plan)? };
        let v = blockdelta_plan_totals {
            process_servers: p.process_servers,
            vms: p.vms.len(),
            bytes_per_day: p.bytes_per_day,
        };
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(v) };
        Ok(())
    })
}

/// The verdict on one disk. A fixed value type.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct blockdelta_plan_disk {
    /// The average churn is above the limit's rate.
    pub exceeds_rate: bool,
    /// The daily churn is above the limit's daily total.
    pub exceeds_daily: bool,
    /// The limit that applies: rate, bytes per second.
    pub limit_bytes_per_second: u64,
    /// The limit that applies: daily total, bytes.
    pub limit_bytes_per_day: u64,
    /// The daily churn used, bytes.
    pub bytes_per_day: u64,
}

/// The verdict on disk `index` (in the order added) of an evaluated plan.
#[no_mangle]
pub extern "C" fn blockdelta_plan_get_disk(
    plan: *const blockdelta_plan,
    index: usize,
    disk_out: *mut blockdelta_plan_disk,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(disk_out)?;
        // SAFETY: a live handle, per the documentation.
        let p = unsafe { evaluated(plan)? };
        let d = p
            .disks
            .get(index)
            .ok_or_else(|| invalid("disk index out of range"))?;
        let v = blockdelta_plan_disk {
            exceeds_rate: d.exceeds_rate,
            exceeds_daily: d.exceeds_daily,
            limit_bytes_per_second: d.limit.bytes_per_second(),
            limit_bytes_per_day: d.limit.bytes_per_day(),
            bytes_per_day: d.bytes_per_day,
        };
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(v) };
        Ok(())
    })
}

/// The verdict on one machine. A fixed value type.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct blockdelta_plan_vm {
    /// Sum of its disks' average churn, bytes per second.
    pub average_bytes_per_second: u64,
    /// Sum of its disks' peak churn, bytes per second.
    pub peak_bytes_per_second: u64,
    /// Its daily churn, bytes.
    pub bytes_per_day: u64,
    /// Above the per-VM average limit.
    pub exceeds_average: bool,
    /// Above the per-VM peak limit.
    pub exceeds_peak: bool,
    /// Alone above one process server's daily limit.
    pub exceeds_process_server: bool,
    /// The process server (0-based) the plan puts it on.
    pub process_server: u32,
}

/// The verdict on machine `index` (in order of first appearance) of an evaluated plan; its
/// name is copied into `(name_buf, name_cap)` snprintf-style (`name_len_out` may be NULL).
#[no_mangle]
pub extern "C" fn blockdelta_plan_get_vm(
    plan: *const blockdelta_plan,
    index: usize,
    vm_out: *mut blockdelta_plan_vm,
    name_buf: *mut c_char,
    name_cap: usize,
    name_len_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(vm_out)?;
        // SAFETY: a live handle, per the documentation.
        let p = unsafe { evaluated(plan)? };
        let m = p
            .vms
            .get(index)
            .ok_or_else(|| invalid("machine index out of range"))?;
        // SAFETY: a writable (name_buf, name_cap), per the documentation.
        unsafe { copy_str(&m.vm, name_buf, name_cap, name_len_out)? };
        let v = blockdelta_plan_vm {
            average_bytes_per_second: m.average_bytes_per_second,
            peak_bytes_per_second: m.peak_bytes_per_second,
            bytes_per_day: m.bytes_per_day,
            exceeds_average: m.exceeds_average,
            exceeds_peak: m.exceeds_peak,
            exceeds_process_server: m.exceeds_process_server,
            process_server: m.process_server,
        };
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(v) };
        Ok(())
    })
}

/// Copies the last error recorded on `plan` (see `blockdelta_last_error` for the buffer rules).
#[no_mangle]
pub extern "C" fn blockdelta_plan_last_error(
    plan: *const blockdelta_plan,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> blockdelta_result {
    // SAFETY: a live handle and a writable (buf, cap), per the documentation.
    boundary(|| unsafe { copy_handle_message(&arg_ref(plan)?.last_error, buf, cap, len_out) })
}

// These tests call the C entry points the way a C program does (raw pointers, NUL-terminated
// strings, caller-owned buffers) so that `cargo miri test --lib` executes every `unsafe` block
// above. tests/c/support.c covers the same ground from real C.
#[cfg(test)]
mod tests {
    use std::ptr::{null, null_mut};

    use super::super::error::blockdelta_last_error;
    use super::*;
    use crate::support::VmRule;

    const MB: u64 = 1 << 20;
    const GB: u64 = 1 << 30;
    const TB: u64 = 1 << 40;
    const NULL_PARAMETER: blockdelta_result = blockdelta_result::NullParameter;
    const INVALID_ARGUMENT: blockdelta_result = blockdelta_result::InvalidArgument;

    #[track_caller]
    fn ok(r: blockdelta_result) {
        assert_eq!(r, blockdelta_result::Ok);
    }

    /// A static string the library returned.
    #[track_caller]
    fn text(p: *const c_char) -> &'static str {
        assert!(!p.is_null());
        // SAFETY: the library returns static NUL-terminated strings.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap()
    }

    /// The string the library copied into `buf`; panics when it is not NUL-terminated.
    #[track_caller]
    fn copied(buf: &[u8]) -> &str {
        CStr::from_bytes_until_nul(buf).unwrap().to_str().unwrap()
    }

    fn thread_error() -> String {
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

    fn no_failure() -> blockdelta_failure {
        blockdelta_failure {
            rule: 0,
            unit: 0,
            found: 0,
            limit: 0,
        }
    }

    fn rules(r: *const blockdelta_report) -> Vec<u32> {
        (0..blockdelta_report_count(r))
            .map(|i| {
                let mut f = no_failure();
                ok(blockdelta_report_failure(r, i, &mut f));
                f.rule
            })
            .collect()
    }

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
        assert_eq!(rules(r), []);
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

    #[test]
    fn config_server_builder() {
        let mut cs = null_mut();
        assert_eq!(blockdelta_config_server_new(null_mut()), NULL_PARAMETER);
        ok(blockdelta_config_server_new(&mut cs));
        let mut r = null_mut();
        ok(blockdelta_config_server_validate(cs, &mut r));
        assert_eq!(blockdelta_report_count(r), 0);
        blockdelta_report_free(r);

        // A NULL locale refuses the whole call: the product is not changed either.
        assert_eq!(
            blockdelta_config_server_set_os(cs, c"Windows 10".as_ptr(), true, null()),
            NULL_PARAMETER
        );
        ok(blockdelta_config_server_validate(cs, &mut r));
        assert_eq!(blockdelta_report_count(r), 0);
        blockdelta_report_free(r);

        ok(blockdelta_config_server_set_hardware(
            cs,
            4,
            16 * GB,
            3,
            600 * GB,
            500 * GB,
        ));
        ok(blockdelta_config_server_set_os(
            cs,
            c"Windows Server 2016".as_ptr(),
            false,
            c"en-us".as_ptr(),
        ));
        ok(blockdelta_config_server_set_network(
            cs,
            true,
            c"E1000".as_ptr(),
            true,
        ));
        ok(blockdelta_config_server_add_port_in_use(cs, 9443));
        ok(blockdelta_config_server_add_role(cs, c"IIS".as_ptr()));
        ok(blockdelta_config_server_add_group_policy(
            cs,
            c"Turn on Script Execution".as_ptr(),
        ));
        ok(blockdelta_config_server_set_version(
            cs,
            c"9.13".as_ptr(),
            false,
        ));
        ok(blockdelta_config_server_validate(cs, &mut r));
        let mut got = rules(r);
        got.sort_unstable();
        assert_eq!(got, [101, 105, 107, 109, 111, 112, 113, 114]);
        blockdelta_report_free(r);

        assert_eq!(
            blockdelta_config_server_set_version(cs, c"nine".as_ptr(), false),
            blockdelta_result::SupportInvalidAgentVersion
        );
        let mut msg = [0u8; 128];
        let mut len = 0;
        ok(blockdelta_config_server_last_error(
            cs,
            msg.as_mut_ptr().cast(),
            msg.len(),
            &mut len,
        ));
        assert!(copied(&msg).contains("nine"), "{}", copied(&msg));
        assert_eq!(copied(&msg).len(), len);
        assert_eq!(
            blockdelta_config_server_add_role(null_mut(), c"IIS".as_ptr()),
            NULL_PARAMETER
        );
        assert_eq!(
            blockdelta_config_server_set_network(cs, true, null(), true),
            NULL_PARAMETER
        );
        assert_eq!(
            blockdelta_config_server_validate(null(), &mut r),
            NULL_PARAMETER
        );
        blockdelta_config_server_free(cs);
        blockdelta_config_server_free(null_mut());
    }

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
}
