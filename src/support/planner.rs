//! The deployment planner: which disks and machines exceed a churn limit, and how many
//! process servers the deployment needs.
//!
//! It takes plain numbers per disk (average and peak churn, average write size), as a
//! change-block tracker measures them; the daily total defaults to the average rate times a day.

use super::churn::{churn_limits, disk_churn_limit, ChurnLimit, TargetStorage, SECONDS_PER_DAY};
use super::SupportError;

/// The measured load of one replicated disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskLoad {
    /// The machine the disk belongs to.
    pub vm: String,
    /// The disk's name (unique within its machine).
    pub disk: String,
    /// Where it replicates to.
    pub target: TargetStorage,
    /// Average churn, bytes per second.
    pub average_bytes_per_second: u64,
    /// Peak churn, bytes per second (not below the average).
    pub peak_bytes_per_second: u64,
    /// Average write size, bytes.
    pub average_io_bytes: u64,
    /// Measured churn per day, bytes; `None` to derive it from the average rate.
    pub bytes_per_day: Option<u64>,
}

impl DiskLoad {
    /// A disk load with the daily total derived from the average.
    pub fn new(
        vm: &str,
        disk: &str,
        target: TargetStorage,
        average: u64,
        peak: u64,
        average_io_bytes: u64,
    ) -> Self {
        DiskLoad {
            vm: vm.to_owned(),
            disk: disk.to_owned(),
            target,
            average_bytes_per_second: average,
            peak_bytes_per_second: peak,
            average_io_bytes,
            bytes_per_day: None,
        }
    }

    /// A disk load measured by a change-block tracker: the average churn is the rate of bytes
    /// written and discarded over the tracker's last interval (between its two latest takes),
    /// the average write size is over the tracker's life. One interval gives one rate, so the
    /// peak is set to the average: callers that sample several intervals set
    /// `peak_bytes_per_second` to the highest they saw.
    pub fn from_tracker_stats(
        vm: &str,
        disk: &str,
        target: TargetStorage,
        stats: &crate::tracker::TrackerStats,
    ) -> Self {
        let rate = stats.last_interval.marked_bytes_per_sec() as u64;
        let ops = stats.writes + stats.discards;
        let bytes = stats.bytes_written + stats.bytes_discarded;
        let average_io = bytes.checked_div(ops).unwrap_or(0);
        DiskLoad::new(vm, disk, target, rate, rate, average_io)
    }

    /// The daily churn: as measured, or the average rate times a day.
    pub fn daily(&self) -> u64 {
        self.bytes_per_day.unwrap_or(
            self.average_bytes_per_second
                .saturating_mul(SECONDS_PER_DAY),
        )
    }
}

/// The verdict on one disk.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct DiskAssessment {
    /// The machine.
    pub vm: String,
    /// The disk.
    pub disk: String,
    /// The limit that applies.
    pub limit: &'static ChurnLimit,
    /// The daily churn used.
    pub bytes_per_day: u64,
    /// The average churn is above the limit's rate.
    pub exceeds_rate: bool,
    /// The daily churn is above the limit's daily total.
    pub exceeds_daily: bool,
}

impl DiskAssessment {
    /// Whether any limit is exceeded.
    pub fn exceeds(&self) -> bool {
        self.exceeds_rate || self.exceeds_daily
    }
}

/// The verdict on one machine.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct VmAssessment {
    /// The machine.
    pub vm: String,
    /// Sum of its disks' average churn, bytes per second.
    pub average_bytes_per_second: u64,
    /// Sum of its disks' peak churn, bytes per second: an upper bound of the machine's peak,
    /// since per-disk peaks need not coincide.
    pub peak_bytes_per_second: u64,
    /// Sum of its disks' daily churn.
    pub bytes_per_day: u64,
    /// The average is above the per-VM limit.
    pub exceeds_average: bool,
    /// The peak is above the per-VM peak limit.
    pub exceeds_peak: bool,
    /// The machine alone is above one process server's daily limit.
    pub exceeds_process_server: bool,
    /// The process server (0-based) the plan puts the machine on.
    pub process_server: u32,
}

impl VmAssessment {
    /// Whether any limit is exceeded.
    pub fn exceeds(&self) -> bool {
        self.exceeds_average || self.exceeds_peak || self.exceeds_process_server
    }
}

/// The answer of [`plan`].
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct Plan {
    /// Every disk, in input order.
    pub disks: Vec<DiskAssessment>,
    /// Every machine, in order of first appearance.
    pub vms: Vec<VmAssessment>,
    /// Total daily churn.
    pub bytes_per_day: u64,
    /// Process servers needed (at least 1: the configuration server runs one).
    pub process_servers: u32,
}

/// Plans a deployment from measured disk loads (E13: machines, not disks, are placed on
/// process servers, first fit by decreasing daily churn).
///
/// ```
/// use blockdelta::support::{plan, DiskLoad, TargetStorage};
/// const MB: u64 = 1 << 20;
/// let disks = [
///     DiskLoad::new("db01", "sda", TargetStorage::PremiumP30, 12 * MB, 30 * MB, 64 << 10),
///     DiskLoad::new("db01", "sdb", TargetStorage::Standard, 3 * MB, 4 * MB, 8 << 10),
///     DiskLoad::new("web01", "sda", TargetStorage::Standard, MB, 2 * MB, 8 << 10),
/// ];
/// let p = plan(&disks)?;
/// assert!(p.disks[1].exceeds_rate);       // 3 MB/s on standard storage (limit 2 MB/s)
/// assert!(!p.vms[0].exceeds_average);     // 15 MB/s <= 25 MB/s
/// assert_eq!(p.process_servers, 1);
/// # Ok::<(), blockdelta::support::SupportError>(())
/// ```
pub fn plan(disks: &[DiskLoad]) -> Result<Plan, SupportError> {
    let limits = churn_limits();
    let mut out_disks = Vec::with_capacity(disks.len());
    let mut vms: Vec<VmAssessment> = Vec::new();
    for (i, d) in disks.iter().enumerate() {
        if d.peak_bytes_per_second < d.average_bytes_per_second {
            return Err(SupportError::InvalidDescription {
                reason: format!(
                    "disk {} of {}: peak {} B/s is below the average {} B/s",
                    d.disk, d.vm, d.peak_bytes_per_second, d.average_bytes_per_second
                ),
            });
        }
        if disks[..i].iter().any(|e| e.vm == d.vm && e.disk == d.disk) {
            return Err(SupportError::InvalidDescription {
                reason: format!("disk {} of {} is listed twice", d.disk, d.vm),
            });
        }
        let limit = disk_churn_limit(d.target, d.average_io_bytes);
        let daily = d.daily();
        out_disks.push(DiskAssessment {
            vm: d.vm.clone(),
            disk: d.disk.clone(),
            limit,
            bytes_per_day: daily,
            exceeds_rate: d.average_bytes_per_second > limit.bytes_per_second(),
            exceeds_daily: daily > limit.bytes_per_day(),
        });
        let vm = match vms.iter_mut().position(|v| v.vm == d.vm) {
            Some(p) => &mut vms[p],
            None => {
                vms.push(VmAssessment {
                    vm: d.vm.clone(),
                    average_bytes_per_second: 0,
                    peak_bytes_per_second: 0,
                    bytes_per_day: 0,
                    exceeds_average: false,
                    exceeds_peak: false,
                    exceeds_process_server: false,
                    process_server: 0,
                });
                vms.last_mut().expect("just pushed")
            }
        };
        vm.average_bytes_per_second = vm
            .average_bytes_per_second
            .saturating_add(d.average_bytes_per_second);
        vm.peak_bytes_per_second = vm
            .peak_bytes_per_second
            .saturating_add(d.peak_bytes_per_second);
        vm.bytes_per_day = vm.bytes_per_day.saturating_add(daily);
    }
    let capacity = limits.process_server_bytes_per_day;
    for vm in &mut vms {
        vm.exceeds_average = vm.average_bytes_per_second > limits.vm_average_bytes_per_second;
        vm.exceeds_peak = vm.peak_bytes_per_second > limits.vm_peak_bytes_per_second;
        vm.exceeds_process_server = vm.bytes_per_day > capacity;
    }
    let mut order: Vec<usize> = (0..vms.len()).collect();
    order.sort_by(|a, b| {
        vms[*b]
            .bytes_per_day
            .cmp(&vms[*a].bytes_per_day)
            .then(a.cmp(b))
    });
    let mut used: Vec<u64> = Vec::new();
    for i in order {
        let need = vms[i].bytes_per_day;
        let slot = match used
            .iter()
            .position(|u| capacity - (*u).min(capacity) >= need)
        {
            Some(s) => s,
            None => {
                used.push(0);
                used.len() - 1
            }
        };
        used[slot] = used[slot].saturating_add(need);
        vms[i].process_server = slot as u32;
    }
    let total = vms
        .iter()
        .fold(0u64, |t, v| t.saturating_add(v.bytes_per_day));
    Ok(Plan {
        disks: out_disks,
        vms,
        bytes_per_day: total,
        process_servers: (used.len() as u32).max(1),
    })
}
