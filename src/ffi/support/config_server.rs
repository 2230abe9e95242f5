//! C ABI of the configuration server validator: the `blockdelta_config_server` builder.

use super::*;

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

#[cfg(test)]
#[path = "config_server_tests.rs"]
mod tests;
