//! C ABI of the other table lookups: file systems, features, VMware hosts, churn limits and the
//! errata.

use super::*;

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
            unsafe { note_out.write(c_static(f.note)) };
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
                unsafe { p.write(c_static(s)) };
            }
        }
        Ok(())
    })
}

#[cfg(test)]
#[path = "matrix_tests.rs"]
mod tests;
