//! C ABI of the VM validator: the `blockdelta_vm` builder and `blockdelta_vm_validate`.

use super::*;

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

#[cfg(test)]
#[path = "vm_tests.rs"]
mod tests;
