//! Numbers: file systems, Linux guest rules, Azure VM requirements, churn limits and the
//! configuration server's requirements. Sizes are binary (E5): 1 MB = 2^20 bytes.

use super::agents::{A9_10, A9_13, A9_14, A9_20, A9_22};
use crate::support::churn::{ChurnLimit, TargetStorage as T};
use crate::support::storage::{FsRule, FsTraits};
use crate::support::AgentVersion;

pub(crate) const KIB: u64 = 1 << 10;
pub(crate) const MIB: u64 = 1 << 20;
pub(crate) const GIB: u64 = 1 << 30;
pub(crate) const TIB: u64 = 1 << 40;

pub(crate) const FILE_SYSTEMS: &[FsRule] = &[
    FsRule {
        name: "ext3",
        since: None,
        trait_since: &[],
        unsupported: FsTraits::NONE,
    },
    FsRule {
        name: "ext4",
        since: None,
        trait_since: &[],
        unsupported: FsTraits::NONE,
    },
    FsRule {
        name: "xfs",
        since: None,
        trait_since: &[(FsTraits::XFS_V5, A9_10)],
        unsupported: FsTraits::NONE,
    },
    FsRule {
        name: "btrfs",
        since: Some(A9_22),
        trait_since: &[],
        unsupported: FsTraits(
            FsTraits::BTRFS_SUBVOLUME_CHANGED.0
                | FsTraits::BTRFS_MULTI_DISK.0
                | FsTraits::BTRFS_RAID.0,
        ),
    },
];

// Linux guest storage.
/// From this version /boot may be on LVM, and the directories below may be on any disk.
pub(crate) const LINUX_LAYOUT_RELAXED_SINCE: AgentVersion = A9_20;
/// Before [`LINUX_LAYOUT_RELAXED_SINCE`], these (when separate file systems) must be on the OS disk.
pub(crate) const SAME_DISK_DIRECTORIES: &[&str] =
    &["/", "/boot", "/usr", "/usr/local", "/var", "/etc"];
pub(crate) const ROOT_FREE_MIN: u64 = 2 * GIB;
pub(crate) const INSTALL_FREE_MIN: u64 = 250 * MIB;

// Azure VM requirements.
pub(crate) const OS_DISK_COUNT: u64 = 1;
pub(crate) const OS_DISK_MAX: u64 = 2048 * GIB;
pub(crate) const DATA_DISK_MAX_COUNT: u64 = 64;
pub(crate) const DATA_DISK_MAX: u64 = 4095 * GIB;
/// Every disk must be strictly larger than this.
pub(crate) const DISK_MIN_EXCLUSIVE: u64 = 1024 * MIB;
pub(crate) const VM_NAME_MAX: u64 = 63;
pub(crate) const UEFI_SINCE: AgentVersion = A9_13;
pub(crate) const UEFI_MAX_OS_PARTITIONS: u64 = 4;
/// "Windows Server 2012 or later".
pub(crate) const UEFI_PRODUCTS: &[&str] = &[
    "Windows Server 2012",
    "Windows Server 2012 R2",
    "Windows Server 2016",
    "Windows Server 2019",
];

// Churn. Ascending I/O size within a target (E6 picks the row).
const STANDARD: &[T] = &[T::Standard];
const P10_P15: &[T] = &[T::PremiumP10, T::PremiumP15];
const P20_P50: &[T] = &[T::PremiumP20, T::PremiumP30, T::PremiumP40, T::PremiumP50];

pub(crate) const CHURN_ROWS: &[ChurnLimit] = &[
    ChurnLimit {
        targets: STANDARD,
        io_kib: 8,
        mb_per_s: 2,
        gb_per_day: 168,
    },
    ChurnLimit {
        targets: P10_P15,
        io_kib: 8,
        mb_per_s: 2,
        gb_per_day: 168,
    },
    ChurnLimit {
        targets: P10_P15,
        io_kib: 16,
        mb_per_s: 4,
        gb_per_day: 336,
    },
    ChurnLimit {
        targets: P10_P15,
        io_kib: 32,
        mb_per_s: 8,
        gb_per_day: 672,
    },
    ChurnLimit {
        targets: P20_P50,
        io_kib: 8,
        mb_per_s: 5,
        gb_per_day: 421,
    },
    ChurnLimit {
        targets: P20_P50,
        io_kib: 16,
        mb_per_s: 20,
        gb_per_day: 1684,
    },
];
pub(crate) const VM_AVERAGE_CHURN_MAX: u64 = 25 * MIB;
pub(crate) const VM_PEAK_CHURN_MAX: u64 = 54 * MIB;
pub(crate) const PROCESS_SERVER_DAILY_MAX: u64 = 2 * TIB;

// Configuration server.
pub(crate) const CS_CORES: u64 = 8;
pub(crate) const CS_MEMORY: u64 = 16 * GIB;
pub(crate) const CS_DISKS: u64 = 3;
pub(crate) const CS_CACHE_FREE: u64 = 600 * GIB;
pub(crate) const CS_RETENTION_FREE: u64 = 600 * GIB;
/// Operating systems, and whether Desktop Experience is required (E11).
pub(crate) const CS_OS: &[(&str, bool)] = &[
    ("Windows Server 2012 R2", false),
    ("Windows Server 2016", true),
];
pub(crate) const CS_LOCALE: &str = "en-us";
/// Required when the server is a VMware VM.
pub(crate) const CS_NIC: &str = "VMXNET3";
/// Control channel, data transport.
pub(crate) const CS_PORTS: &[u16] = &[443, 9443];
/// Roles that must not be enabled: canonical name, accepted names.
pub(crate) const CS_FORBIDDEN_ROLES: &[(&str, &[&str])] = &[
    (
        "Active Directory Domain Services",
        &["AD DS", "ADDS", "AD-Domain-Services"],
    ),
    (
        "Internet Information Services",
        &["IIS", "Web-Server", "Web Server (IIS)"],
    ),
    ("Hyper-V", &["HyperV"]),
];
/// Group policies that must not be enabled.
pub(crate) const CS_FORBIDDEN_POLICIES: &[&str] = &[
    "Prevent access to the command prompt",
    "Prevent access to registry editing tools",
    "Trust logic for file attachments",
    "Turn on Script Execution",
];
/// PowerCLI 6.0 is required before this configuration server version.
pub(crate) const CS_POWERCLI_NOT_NEEDED_SINCE: AgentVersion = A9_14;
