//! C ABI of the operating system checks: `blockdelta_support_os_check`, `blockdelta_support_os_upgrade_check` and the note texts.

use super::*;

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
        OsNote::from_bit(note).map_or(std::ptr::null(), |n| c_static(n.text()))
    })
}

#[cfg(test)]
#[path = "os_tests.rs"]
mod tests;
