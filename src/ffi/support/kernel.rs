//! C ABI of the kernel check: `blockdelta_support_kernel_check`.

use super::*;

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
            range_first: shown.map_or(std::ptr::null(), |m| c_static(m.range.first)),
            range_last: shown.map_or(std::ptr::null(), |m| c_static(m.range.last)),
            nearest_major,
            nearest_minor,
        };
        // SAFETY: `support_out` was checked non-NULL and is writable per the documentation.
        unsafe { out.write(v) };
        Ok(())
    })
}

#[cfg(test)]
#[path = "kernel_tests.rs"]
mod tests;
