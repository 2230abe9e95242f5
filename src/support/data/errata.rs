//! Where the source document contradicts itself or is ambiguous, the one decision the project
//! makes, with its reason. The tables refer here instead of deciding on their own; the list
//! [`ERRATA`] is public (`support::errata()`) and copied in `docs/SUPPORT.md`.

use super::agents::A9_24;
use crate::support::AgentVersion;

/// One resolved contradiction or ambiguity of the source.
#[non_exhaustive]
#[derive(Debug, PartialEq, Eq)]
pub struct Erratum {
    /// A stable identifier (`E1`, `E2` ...).
    pub id: &'static str,
    /// What the source says.
    pub source: &'static str,
    /// What the project uses instead, and why.
    pub resolution: &'static str,
}

/// E1. The first Ubuntu 16.04 row is labelled 9.23, but it links to the 9.24 update rollup
/// and its ranges extend the real 9.23 row (4.4.0 up to -143, 4.15.0 generic up to -46,
/// 4.15.0 azure up to -1040): it is the 9.24 row.
pub(crate) const UBUNTU_1604_FIRST_ROW_AGENT: &[AgentVersion] = &[A9_24];

/// E2. SLES 12 SP3 ends at 4.4.162-94.69 for 9.23 but at 4.4.162-94.72 for 9.22: the newer
/// agent would drop a kernel the older one supports. Kept as printed: the matrix never claims
/// support the source does not state. A 9.23 query for 4.4.162-94.72-default answers "not
/// supported, nearest 9.24".
pub(crate) const SLES12_SP3_LAST_9_23: &str = "4.4.162-94.69-default";

/// E2 (the other side): the 9.22 end of SLES 12 SP3, as printed.
pub(crate) const SLES12_SP3_LAST_9_22: &str = "4.4.162-94.72-default";

/// The agent versions for which a newer agent supports less than an older one (E2). Tests
/// that check that support only grows with the agent version skip exactly these.
#[cfg(test)]
pub(crate) const NON_MONOTONIC: &[(AgentVersion, AgentVersion)] =
    &[(super::agents::A9_22, super::agents::A9_23)];

/// Every resolution, in one list.
pub(crate) const ERRATA: &[Erratum] = &[
    Erratum {
        id: "E1",
        source: "One Ubuntu 16.04 kernel row is labelled 9.23, but its link is the 9.24 update rollup and its ranges extend those of the other 9.23 row.",
        resolution: "The row is the 9.24 row.",
    },
    Erratum {
        id: "E2",
        source: "SLES 12 SP3 ends at 4.4.162-94.69-default for 9.23 but at 4.4.162-94.72-default for 9.22 (a newer agent supporting less).",
        resolution: "Kept as printed: the matrix never claims support the source does not state; a 9.23 query for 4.4.162-94.72-default answers not supported, nearest 9.24.",
    },
    Erratum {
        id: "E3",
        source: "SLES 12 SP3 ends at 4.4.156-94.72-default for 9.21, a release number that 9.22 pairs with base 4.4.162.",
        resolution: "Kept as printed: kernels order by base version first, so the bound is consistent (4.4.162 kernels are outside it).",
    },
    Erratum {
        id: "E4",
        source: "The update-rollup links for 9.22 and 9.23 point to the same rollup, and 9.24's link has no target.",
        resolution: "Rows are keyed by agent version only; links are not data.",
    },
    Erratum {
        id: "E5",
        source: "The churn table's daily limits are not its rates times one day (2 MB/s is 168.75 GB/day, the table says 168; 4 MB/s gives 337.5, the table says 336; 8 MB/s: 675 vs 672; 5 MB/s: 421.875 vs 421; 20 MB/s: 1687.5 vs 1684).",
        resolution: "Both figures are kept as stated and checked separately. Units are binary: 1 MB = 2^20 bytes, 1 GB = 2^30, 1 TB = 2^40 (168 = floor(2 x 86400 / 1024)).",
    },
    Erratum {
        id: "E6",
        source: "The churn table lists I/O sizes 8 KB, 16 KB and 32 KB or greater, standard storage only 8 KB; smaller and in-between sizes are not listed.",
        resolution: "A disk gets the row with the largest I/O size not above its average I/O size; below the smallest listed size, the smallest (the lowest limit). Standard storage has one row for every size.",
    },
    Erratum {
        id: "E7",
        source: "Windows Server 2008 SP2 is listed as 32-bit and 64-bit (migration only), while the Azure VM requirements fail any guest that is not 64-bit.",
        resolution: "The VM architecture check accepts 32-bit only for a migration of an operating system whose row lists 32-bit; replication always needs 64-bit.",
    },
    Erratum {
        id: "E8",
        source: "The configuration server must not have the IIS role enabled, yet its IIS row asks for anonymous authentication and FastCGI.",
        resolution: "For a proposed server the role rule wins (setup installs and configures IIS itself); of the IIS row only 'nothing listening on port 443' is checked, through the port rule.",
    },
    Erratum {
        id: "E9",
        source: "RHEL/CentOS 5.x and 6.x and SLES 11 SP3/SP4 carry footnote markers (** and *) that no footnote defines.",
        resolution: "The markers are ignored; only the stated notes (LIS components for 5.x, no SP3 to SP4 upgrade for SLES 11) are attached.",
    },
    Erratum {
        id: "E10",
        source: "Every guest disk may be up to 4,095 GB (storage table), but the OS disk only up to 2,048 GB (VM requirements).",
        resolution: "Both hold: the OS disk is checked against 2,048 GB, data disks against 4,095 GB, every disk must be larger than 1,024 MB.",
    },
    Erratum {
        id: "E11",
        source: "The configuration server OS is 'Windows Server 2012 R2 or Windows Server 2016 with Desktop experience'.",
        resolution: "Desktop Experience is required for Windows Server 2016 only (Windows Server 2012 R2 has no installation option of that name).",
    },
    Erratum {
        id: "E12",
        source: "SLES 12 service pack ranges overlap as versions (4.4.73-5-default, SP3's first kernel, lies inside SP2's range 4.4.21-69 to 4.4.120-92.70).",
        resolution: "A query that names the service pack (\"12 SP3\") searches only that service pack. Without one, of the ranges that contain the kernel, one whose ends share the kernel's first release number (5 and 94 for SP3) answers first, then the others in table order. Name the service pack for an exact answer.",
    },
    Erratum {
        id: "E13",
        source: "The process-server daily limit is given as 2 TB without saying how machines share process servers.",
        resolution: "A machine's disks all go to one process server (machines, not disks, are moved between process servers); the planner packs machines first-fit by decreasing daily churn.",
    },
];
