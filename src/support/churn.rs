//! Churn limits: per disk by target storage and I/O size, per VM, per process server.

use std::fmt;
use std::str::FromStr;

use super::data::limits::{
    CHURN_ROWS, GIB, KIB, MIB, PROCESS_SERVER_DAILY_MAX, VM_AVERAGE_CHURN_MAX, VM_PEAK_CHURN_MAX,
};
use super::SupportError;

/// Seconds in a day, for converting rates to daily totals.
pub const SECONDS_PER_DAY: u64 = 86_400;

/// The storage a replicated disk lands on in Azure. The values are stable (C API).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetStorage {
    /// Standard storage.
    Standard = 0,
    /// Premium P10 disk.
    PremiumP10 = 10,
    /// Premium P15 disk.
    PremiumP15 = 15,
    /// Premium P20 disk.
    PremiumP20 = 20,
    /// Premium P30 disk.
    PremiumP30 = 30,
    /// Premium P40 disk.
    PremiumP40 = 40,
    /// Premium P50 disk.
    PremiumP50 = 50,
}

impl TargetStorage {
    /// Every target.
    pub const ALL: &'static [TargetStorage] = &[
        TargetStorage::Standard,
        TargetStorage::PremiumP10,
        TargetStorage::PremiumP15,
        TargetStorage::PremiumP20,
        TargetStorage::PremiumP30,
        TargetStorage::PremiumP40,
        TargetStorage::PremiumP50,
    ];

    /// The target with this C value.
    pub fn from_u32(v: u32) -> Option<TargetStorage> {
        TargetStorage::ALL.iter().copied().find(|t| *t as u32 == v)
    }

    /// The short name: `standard`, `p10` ...
    pub fn name(self) -> &'static str {
        match self {
            TargetStorage::Standard => "standard",
            TargetStorage::PremiumP10 => "p10",
            TargetStorage::PremiumP15 => "p15",
            TargetStorage::PremiumP20 => "p20",
            TargetStorage::PremiumP30 => "p30",
            TargetStorage::PremiumP40 => "p40",
            TargetStorage::PremiumP50 => "p50",
        }
    }
}

impl fmt::Display for TargetStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TargetStorage {
    type Err = SupportError;

    /// `standard`, `p10` ... `p50`, also `premium p10` / `premium_p10`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let k = s.trim().to_ascii_lowercase().replace(['_', '-', ' '], "");
        let k = k.strip_prefix("premium").unwrap_or(&k);
        TargetStorage::ALL
            .iter()
            .copied()
            .find(|t| t.name() == k)
            .ok_or_else(|| SupportError::UnknownStorageTarget {
                input: s.to_owned(),
            })
    }
}

/// One row of the per-disk churn table.
#[non_exhaustive]
#[derive(Debug, PartialEq, Eq)]
pub struct ChurnLimit {
    /// The targets the row applies to.
    pub targets: &'static [TargetStorage],
    /// The row's average I/O size in KB (the row applies from this size up to the next row's).
    pub io_kib: u32,
    /// The average churn limit in MB/s.
    pub mb_per_s: u32,
    /// The daily churn limit in GB (stated separately, E5).
    pub gb_per_day: u32,
}

impl ChurnLimit {
    /// The row's I/O size in bytes.
    pub fn io_size_bytes(&self) -> u64 {
        self.io_kib as u64 * KIB
    }

    /// The average churn limit in bytes per second.
    pub fn bytes_per_second(&self) -> u64 {
        self.mb_per_s as u64 * MIB
    }

    /// The daily churn limit in bytes.
    pub fn bytes_per_day(&self) -> u64 {
        self.gb_per_day as u64 * GIB
    }
}

/// Every row of the per-disk churn table.
pub fn churn_table() -> &'static [ChurnLimit] {
    CHURN_ROWS
}

/// The churn limit of a disk replicating to `target` with this average I/O size (E6: the row
/// with the largest I/O size not above it; below every row, the smallest).
///
/// ```
/// use blockdelta::support::{disk_churn_limit, TargetStorage};
/// let l = disk_churn_limit(TargetStorage::PremiumP30, 64 * 1024);
/// assert_eq!((l.mb_per_s, l.gb_per_day), (20, 1684));
/// let l = disk_churn_limit(TargetStorage::Standard, 64 * 1024);
/// assert_eq!((l.mb_per_s, l.gb_per_day), (2, 168));
/// ```
pub fn disk_churn_limit(target: TargetStorage, average_io_bytes: u64) -> &'static ChurnLimit {
    let rows = CHURN_ROWS.iter().filter(|r| r.targets.contains(&target));
    let smallest = rows.clone().min_by_key(|r| r.io_kib);
    rows.filter(|r| r.io_size_bytes() <= average_io_bytes)
        .max_by_key(|r| r.io_kib)
        .or(smallest)
        // Every target has a row (tested); fall back to the table's first row.
        .unwrap_or(&CHURN_ROWS[0])
}

/// The per-VM and per-process-server churn limits.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChurnLimits {
    /// Average churn of a VM (all disks), bytes per second.
    pub vm_average_bytes_per_second: u64,
    /// Peak churn across all disks of a VM, bytes per second.
    pub vm_peak_bytes_per_second: u64,
    /// Churn one process server handles per day, bytes.
    pub process_server_bytes_per_day: u64,
}

/// The per-VM and per-process-server churn limits.
///
/// ```
/// let l = blockdelta::support::churn_limits();
/// assert_eq!(l.vm_peak_bytes_per_second, 54 << 20);
/// assert_eq!(l.process_server_bytes_per_day, 2 << 40);
/// ```
pub fn churn_limits() -> ChurnLimits {
    ChurnLimits {
        vm_average_bytes_per_second: VM_AVERAGE_CHURN_MAX,
        vm_peak_bytes_per_second: VM_PEAK_CHURN_MAX,
        process_server_bytes_per_day: PROCESS_SERVER_DAILY_MAX,
    }
}
