//! Operating systems for replication, and VMware host versions.

use super::agents::{A9_22, A9_24};
use crate::support::os::{Arch, OsFamily, OsNote as N, OsRow, OsScope, OsVersion, ANY};
use crate::support::Distro;

const X64: &[Arch] = &[Arch::X86_64];
const BOTH: &[Arch] = &[Arch::X86, Arch::X86_64];

const fn v(major: u16, minor: u16) -> OsVersion {
    OsVersion::new(major, minor, 0)
}
const fn sp(service_pack: u16) -> OsVersion {
    OsVersion::new(0, 0, service_pack)
}
const fn rel_sp(major: u16, service_pack: u16) -> OsVersion {
    OsVersion::new(major, 0, service_pack)
}
/// Any service pack, for Windows rows.
const ANY_SP: OsVersion = sp(ANY);

const fn windows(
    product: &'static str,
    first: OsVersion,
    since: Option<crate::support::AgentVersion>,
) -> OsRow {
    OsRow {
        family: OsFamily::Windows,
        product,
        first,
        last: ANY_SP,
        arches: X64,
        since,
        scope: OsScope::Replication,
        distro: None,
        notes: &[],
    }
}

const LINUX_NOTES: &[N] = &[N::StockKernelsOnly, N::NoMajorUpgrade, N::VendorEndOfLife];
const EL5_NOTES: &[N] = &[
    N::StockKernelsOnly,
    N::NoMajorUpgrade,
    N::VendorEndOfLife,
    N::LisRequired,
];
const TABLE_NOTES: &[N] = &[
    N::StockKernelsOnly,
    N::NoMajorUpgrade,
    N::VendorEndOfLife,
    N::KernelTable,
];
const UBUNTU_NOTES: &[N] = &[
    N::StockKernelsOnly,
    N::NoMajorUpgrade,
    N::VendorEndOfLife,
    N::KernelTable,
    N::ServerEditionOnly,
];
const SLES11_NOTES: &[N] = &[
    N::StockKernelsOnly,
    N::NoMajorUpgrade,
    N::VendorEndOfLife,
    N::NoSles11Sp3ToSp4Upgrade,
];
const OL_NOTES: &[N] = &[
    N::StockKernelsOnly,
    N::NoMajorUpgrade,
    N::VendorEndOfLife,
    N::OracleKernels,
];

const fn linux(
    distro: Distro,
    product: &'static str,
    first: OsVersion,
    last: OsVersion,
    notes: &'static [N],
) -> OsRow {
    OsRow {
        family: OsFamily::Linux,
        product,
        first,
        last,
        arches: X64,
        since: None,
        scope: OsScope::Replication,
        distro: Some(distro),
        notes,
    }
}

pub(crate) const OS_ROWS: &[OsRow] = &[
    windows("Windows Server 2019", sp(0), Some(A9_22)),
    OsRow {
        notes: &[N::Server2016Editions],
        ..windows("Windows Server 2016", sp(0), None)
    },
    OsRow {
        scope: OsScope::NotSupported,
        ..windows("Windows Server 2016 Nano Server", sp(0), None)
    },
    windows("Windows Server 2012 R2", sp(0), None),
    windows("Windows Server 2012", sp(0), None),
    windows("Windows Server 2008 R2", sp(1), None),
    OsRow {
        last: sp(0),
        scope: OsScope::NotSupported,
        ..windows("Windows Server 2008 R2", sp(0), None)
    },
    // 32-bit allowed here only; E7 decides how the VM check treats it.
    OsRow {
        arches: BOTH,
        scope: OsScope::MigrationOnly,
        ..windows("Windows Server 2008", sp(2), None)
    },
    windows("Windows 10", sp(0), Some(A9_24)),
    windows("Windows 8.1", sp(0), Some(A9_24)),
    windows("Windows 8", sp(0), Some(A9_24)),
    windows("Windows 7", sp(1), Some(A9_24)),
    // Windows 7 RTM is named as not supported.
    OsRow {
        last: sp(0),
        scope: OsScope::NotSupported,
        ..windows("Windows 7", sp(0), Some(A9_24))
    },
    linux(
        Distro::Rhel,
        "Red Hat Enterprise Linux",
        v(5, 2),
        v(5, 11),
        EL5_NOTES,
    ),
    linux(
        Distro::Rhel,
        "Red Hat Enterprise Linux",
        v(6, 1),
        v(6, 10),
        LINUX_NOTES,
    ),
    linux(
        Distro::Rhel,
        "Red Hat Enterprise Linux",
        v(7, 0),
        v(7, 6),
        LINUX_NOTES,
    ),
    linux(Distro::CentOs, "CentOS", v(5, 2), v(5, 11), EL5_NOTES),
    linux(Distro::CentOs, "CentOS", v(6, 1), v(6, 10), LINUX_NOTES),
    linux(Distro::CentOs, "CentOS", v(7, 0), v(7, 6), LINUX_NOTES),
    linux(Distro::Ubuntu, "Ubuntu", v(14, 4), v(14, 4), UBUNTU_NOTES),
    linux(Distro::Ubuntu, "Ubuntu", v(16, 4), v(16, 4), UBUNTU_NOTES),
    linux(Distro::Debian, "Debian", v(7, 0), v(7, ANY), TABLE_NOTES),
    linux(Distro::Debian, "Debian", v(8, 0), v(8, ANY), TABLE_NOTES),
    linux(
        Distro::Sles,
        "SUSE Linux Enterprise Server",
        rel_sp(12, 1),
        rel_sp(12, 4),
        TABLE_NOTES,
    ),
    linux(
        Distro::Sles,
        "SUSE Linux Enterprise Server",
        rel_sp(11, 3),
        rel_sp(11, 4),
        SLES11_NOTES,
    ),
    linux(
        Distro::OracleLinux,
        "Oracle Linux",
        v(6, 4),
        v(6, 10),
        OL_NOTES,
    ),
    linux(
        Distro::OracleLinux,
        "Oracle Linux",
        v(7, 0),
        v(7, 6),
        OL_NOTES,
    ),
];

/// Short names accepted for products (compared ignoring case and spacing).
pub(crate) const OS_ALIASES: &[(&str, &str)] = &[
    ("RHEL", "Red Hat Enterprise Linux"),
    ("Red Hat", "Red Hat Enterprise Linux"),
    ("SLES", "SUSE Linux Enterprise Server"),
    ("SUSE", "SUSE Linux Enterprise Server"),
    ("OL", "Oracle Linux"),
    ("Oracle", "Oracle Linux"),
];

/// vCenter Server / vSphere versions (major, minor).
pub(crate) const VMWARE_HOSTS: &[(u16, u16)] = &[(6, 7), (6, 5), (6, 0), (5, 5)];
