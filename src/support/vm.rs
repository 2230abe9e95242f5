//! The Azure VM requirements and Linux guest storage rules a machine must pass before it can
//! be replicated: a validator that reports every failed check.

use super::data::agents::AGENT_VERSIONS;
use super::data::limits::{
    DATA_DISK_MAX, DATA_DISK_MAX_COUNT, DISK_MIN_EXCLUSIVE, INSTALL_FREE_MIN,
    LINUX_LAYOUT_RELAXED_SINCE, OS_DISK_COUNT, OS_DISK_MAX, ROOT_FREE_MIN, SAME_DISK_DIRECTORIES,
    UEFI_MAX_OS_PARTITIONS, UEFI_PRODUCTS, UEFI_SINCE, VM_NAME_MAX,
};
use super::os::{canonical_product, check_os, OsRejection, OsVerdict};
use super::report::{agent_value, size, Report, Unit};
use super::storage::{check_filesystem, FsRejection, FsTraits};
use super::{AgentVersion, Arch, SupportError};

/// What the machine is protected for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Replication with failover and failback.
    #[default]
    Replication,
    /// Migration: fail over once, no failback.
    Migration,
}

/// The machine's boot firmware.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Firmware {
    /// BIOS.
    #[default]
    Bios,
    /// EFI/UEFI.
    Uefi,
}

/// What backs a disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DiskKind {
    /// An ordinary virtual or physical disk.
    #[default]
    Standard,
    /// A shared VHD.
    SharedVhd,
    /// A Fibre Channel disk.
    FibreChannel,
}

/// One disk of a VM.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmDisk {
    /// The device name (`"sda"`, `"Disk 0"`).
    pub name: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// True for the OS (boot) disk.
    pub os_disk: bool,
    /// What backs it.
    pub kind: DiskKind,
    /// True for a dynamic disk (Windows).
    pub dynamic: bool,
    /// Number of partitions.
    pub partitions: u32,
}

impl VmDisk {
    /// An OS disk.
    pub fn os(name: &str, size_bytes: u64) -> Self {
        VmDisk {
            name: name.to_owned(),
            size_bytes,
            os_disk: true,
            ..Default::default()
        }
    }

    /// A data disk.
    pub fn data(name: &str, size_bytes: u64) -> Self {
        VmDisk {
            name: name.to_owned(),
            size_bytes,
            ..Default::default()
        }
    }
}

/// A mounted Linux file system.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinuxVolume {
    /// The mount point (`"/boot"`).
    pub mount: String,
    /// The device (`"/dev/sda1"`, `"/dev/mapper/vg-root"`).
    pub device: String,
    /// The file system (`"ext4"`).
    pub filesystem: String,
    /// File system properties that change the answer.
    pub traits: FsTraits,
    /// True when the volume is an LVM logical volume.
    pub lvm: bool,
    /// Indices into [`VmDescription::disks`] of the disks the volume lies on.
    pub disks: Vec<usize>,
}

/// A mounted Windows volume, for the UEFI rule that only NTFS is supported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowsVolume {
    /// The drive letter or mount path (`"C:"`).
    pub name: String,
    /// The file system (`"NTFS"`, `"ReFS"`, `"FAT32"`).
    pub filesystem: String,
    /// Index into [`VmDescription::disks`] of the disk it lies on.
    pub disk: usize,
}

/// The Linux guest's storage, for the Linux rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinuxGuest {
    /// The mounted file systems.
    pub volumes: Vec<LinuxVolume>,
    /// Free space on the root partition, bytes.
    pub root_free_bytes: u64,
    /// Free space for the agent's installation folder, bytes.
    pub install_free_bytes: u64,
    /// Devices exported by paravirtualized drivers are present.
    pub paravirtualized_devices: bool,
    /// Multi-queue block I/O devices are present.
    pub multi_queue_devices: bool,
    /// A physical server with an HP CCISS storage controller.
    pub hp_cciss: bool,
}

/// A machine to validate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmDescription {
    /// The machine name.
    pub name: String,
    /// Its architecture.
    pub arch: Arch,
    /// The agent version that will protect it.
    pub agent: AgentVersion,
    /// Replication or migration.
    pub purpose: Purpose,
    /// Operating system product and version (as for [`check_os`]), if known.
    pub os: Option<(String, String)>,
    /// Boot firmware.
    pub firmware: Firmware,
    /// BitLocker is enabled.
    pub bitlocker: bool,
    /// The disks.
    pub disks: Vec<VmDisk>,
    /// Linux guest storage, for Linux machines.
    pub linux: Option<LinuxGuest>,
    /// The Windows volumes that have a drive letter or mount path. The EFI system partition
    /// (FAT32 by definition, with neither) is not one of them.
    pub windows_volumes: Vec<WindowsVolume>,
}

impl VmDescription {
    /// A 64-bit machine named `name`, for replication by the newest agent version, with no disks.
    pub fn new(name: &str) -> Self {
        VmDescription {
            name: name.to_owned(),
            arch: Arch::X86_64,
            agent: AGENT_VERSIONS[AGENT_VERSIONS.len() - 1],
            purpose: Purpose::Replication,
            os: None,
            firmware: Firmware::Bios,
            bitlocker: false,
            disks: Vec::new(),
            linux: None,
            windows_volumes: Vec::new(),
        }
    }
}

/// A VM check. The values are stable (C API).
#[non_exhaustive]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VmRule {
    /// The operating system is not supported (for this purpose and agent).
    GuestOs = 1,
    /// Not 64-bit.
    Architecture = 2,
    /// Not exactly one OS disk.
    OsDiskCount = 3,
    /// OS disk larger than 2,048 GB.
    OsDiskSize = 4,
    /// More than 64 data disks.
    DataDiskCount = 5,
    /// Data disk larger than 4,095 GB.
    DataDiskSize = 6,
    /// Disk not larger than 1,024 MB.
    DiskTooSmall = 7,
    /// Shared VHD.
    SharedVhd = 8,
    /// Fibre Channel disk.
    FcDisk = 9,
    /// BitLocker enabled.
    BitLocker = 10,
    /// Name not 1 to 63 characters.
    NameLength = 11,
    /// Name has a character other than a letter, digit or hyphen.
    NameCharacters = 12,
    /// Name does not start and end with a letter or digit.
    NameStartEnd = 13,
    /// The OS disk is a dynamic disk.
    OsDiskDynamic = 14,
    /// UEFI boot outside migration.
    UefiMigrationOnly = 15,
    /// UEFI boot of an OS other than Windows Server 2012 or later.
    UefiOperatingSystem = 16,
    /// UEFI boot with more than four partitions on the OS disk.
    UefiPartitions = 17,
    /// UEFI boot with an agent older than 9.13.
    UefiAgent = 18,
    /// UEFI boot with a volume on the OS disk that is not NTFS.
    UefiFileSystem = 19,
    /// A Linux file system is not supported.
    FileSystem = 20,
    /// /boot on LVM before agent 9.20.
    BootOnLvm = 21,
    /// /boot on an LVM volume spanning more than one disk.
    BootOnLvmMultiDisk = 22,
    /// A system directory off the OS disk before agent 9.20.
    SystemDirectoryOffOsDisk = 23,
    /// Two device or mount point names differ only in case.
    DuplicateName = 24,
    /// Less than 2 GB free on the root partition.
    RootFreeSpace = 25,
    /// Less than 250 MB free for the installation folder.
    InstallFreeSpace = 26,
    /// Paravirtualized storage devices.
    ParavirtualizedDevice = 27,
    /// Multi-queue block I/O devices.
    MultiQueueDevice = 28,
    /// HP CCISS storage controller.
    HpCciss = 29,
}

impl VmRule {
    /// Every rule.
    pub const ALL: &'static [VmRule] = &[
        VmRule::GuestOs,
        VmRule::Architecture,
        VmRule::OsDiskCount,
        VmRule::OsDiskSize,
        VmRule::DataDiskCount,
        VmRule::DataDiskSize,
        VmRule::DiskTooSmall,
        VmRule::SharedVhd,
        VmRule::FcDisk,
        VmRule::BitLocker,
        VmRule::NameLength,
        VmRule::NameCharacters,
        VmRule::NameStartEnd,
        VmRule::OsDiskDynamic,
        VmRule::UefiMigrationOnly,
        VmRule::UefiOperatingSystem,
        VmRule::UefiPartitions,
        VmRule::UefiAgent,
        VmRule::UefiFileSystem,
        VmRule::FileSystem,
        VmRule::BootOnLvm,
        VmRule::BootOnLvmMultiDisk,
        VmRule::SystemDirectoryOffOsDisk,
        VmRule::DuplicateName,
        VmRule::RootFreeSpace,
        VmRule::InstallFreeSpace,
        VmRule::ParavirtualizedDevice,
        VmRule::MultiQueueDevice,
        VmRule::HpCciss,
    ];
}

/// The report of [`validate_vm`].
pub type VmReport = Report<VmRule>;

/// Runs every check on `vm` and returns every failure (not just the first).
///
/// Errors only when the description is inconsistent (a volume on a disk index that does not
/// exist); a machine that fails checks is an `Ok` report with failures.
///
/// ```
/// use blockdelta::support::{validate_vm, VmDescription, VmDisk, VmRule};
/// const GB: u64 = 1 << 30;
/// let mut vm = VmDescription::new("-web01");
/// vm.disks.push(VmDisk::os("sda", 3000 * GB));
/// vm.disks.push(VmDisk::data("sdb", 512 << 20));
/// let report = validate_vm(&vm)?;
/// assert!(report.has(VmRule::NameStartEnd));
/// assert!(report.has(VmRule::OsDiskSize));
/// assert!(report.has(VmRule::DiskTooSmall));
/// let f = report.of(VmRule::OsDiskSize).next().unwrap();
/// assert_eq!((f.found, f.limit), (3000 * GB, 2048 * GB));
/// # Ok::<(), blockdelta::support::SupportError>(())
/// ```
pub fn validate_vm(vm: &VmDescription) -> Result<VmReport, SupportError> {
    let mut r = VmReport::default();
    // Every volume, Windows or Linux, must lie on disks the machine has.
    let windows = vm.windows_volumes.iter().map(|v| (&v.name, v.disk));
    let linux = vm.linux.iter().flat_map(|l| &l.volumes);
    let placed = windows.chain(linux.flat_map(|v| v.disks.iter().map(move |&d| (&v.mount, d))));
    for (name, disk) in placed {
        if disk >= vm.disks.len() {
            return Err(SupportError::InvalidDescription {
                reason: format!(
                    "volume {name} lies on disk {disk}, but the machine has {} disks",
                    vm.disks.len()
                ),
            });
        }
    }
    check_os_and_arch(vm, &mut r);
    check_disks(vm, &mut r);
    check_name(&vm.name, &mut r);
    if vm.bitlocker {
        r.push(
            VmRule::BitLocker,
            "",
            1,
            0,
            Unit::Flag,
            "BitLocker is enabled: disable it before enabling replication".into(),
        );
    }
    check_uefi(vm, &mut r);
    if let Some(linux) = &vm.linux {
        check_linux(vm, linux, &mut r);
    }
    Ok(r)
}

fn check_os_and_arch(vm: &VmDescription, r: &mut VmReport) {
    let mut os_allows_32 = false;
    if let Some((product, version)) = &vm.os {
        match check_os(product, version, vm.arch, vm.agent) {
            Err(e) => r.push(VmRule::GuestOs, product, 0, 1, Unit::None, e.to_string()),
            Ok(s) => {
                os_allows_32 = s.row.is_some_and(|row| row.arches.contains(&Arch::X86));
                let what = format!("{product} {version}").trim_end().to_owned();
                match s.verdict {
                    OsVerdict::Supported => {}
                    OsVerdict::MigrationOnly if vm.purpose == Purpose::Migration => {}
                    OsVerdict::MigrationOnly => r.push(
                        VmRule::GuestOs,
                        product,
                        0,
                        1,
                        Unit::None,
                        format!("{what} is supported for migration only, not replication"),
                    ),
                    // Left to the architecture rule.
                    OsVerdict::NotSupported(OsRejection::Architecture) => {}
                    OsVerdict::NotSupported(OsRejection::NeedsAgent(need)) => r.push(
                        VmRule::GuestOs,
                        product,
                        agent_value(vm.agent),
                        agent_value(need),
                        Unit::AgentVersion,
                        format!(
                            "{what} needs agent {need} or later; the agent is {}",
                            vm.agent
                        ),
                    ),
                    OsVerdict::NotSupported(_) => r.push(
                        VmRule::GuestOs,
                        product,
                        0,
                        1,
                        Unit::None,
                        format!("{what} is not supported"),
                    ),
                }
            }
        }
    }
    // E7: 32-bit passes only for migration of an OS whose row lists 32-bit.
    if vm.arch != Arch::X86_64 && !(vm.purpose == Purpose::Migration && os_allows_32) {
        r.push(
            VmRule::Architecture,
            "",
            vm.arch.bits() as u64,
            64,
            Unit::Bits,
            format!(
                "the machine is {}-bit; replication needs 64-bit",
                vm.arch.bits()
            ),
        );
    }
}

fn check_disks(vm: &VmDescription, r: &mut VmReport) {
    let os_disks = vm.disks.iter().filter(|d| d.os_disk).count() as u64;
    if os_disks != OS_DISK_COUNT {
        r.push(
            VmRule::OsDiskCount,
            "",
            os_disks,
            OS_DISK_COUNT,
            Unit::Count,
            format!("the machine has {os_disks} OS disks; it must have exactly {OS_DISK_COUNT}"),
        );
    }
    let data_disks = vm.disks.len() as u64 - os_disks;
    if data_disks > DATA_DISK_MAX_COUNT {
        r.push(
            VmRule::DataDiskCount,
            "",
            data_disks,
            DATA_DISK_MAX_COUNT,
            Unit::Count,
            format!("the machine has {data_disks} data disks; at most {DATA_DISK_MAX_COUNT} are supported"),
        );
    }
    for d in &vm.disks {
        let (rule, max, kind) = if d.os_disk {
            (VmRule::OsDiskSize, OS_DISK_MAX, "OS")
        } else {
            (VmRule::DataDiskSize, DATA_DISK_MAX, "data")
        };
        if d.size_bytes > max {
            r.push(
                rule,
                &d.name,
                d.size_bytes,
                max,
                Unit::Bytes,
                format!(
                    "{kind} disk {} is {}; at most {} is supported",
                    d.name,
                    size(d.size_bytes),
                    size(max)
                ),
            );
        }
        if d.size_bytes <= DISK_MIN_EXCLUSIVE {
            r.push(
                VmRule::DiskTooSmall,
                &d.name,
                d.size_bytes,
                DISK_MIN_EXCLUSIVE,
                Unit::Bytes,
                format!(
                    "disk {} is {}; it must be larger than {}",
                    d.name,
                    size(d.size_bytes),
                    size(DISK_MIN_EXCLUSIVE)
                ),
            );
        }
        match d.kind {
            DiskKind::Standard => {}
            DiskKind::SharedVhd => r.push(
                VmRule::SharedVhd,
                &d.name,
                1,
                0,
                Unit::Flag,
                format!("disk {} is a shared VHD, which is not supported", d.name),
            ),
            DiskKind::FibreChannel => r.push(
                VmRule::FcDisk,
                &d.name,
                1,
                0,
                Unit::Flag,
                format!(
                    "disk {} is a Fibre Channel disk, which is not supported",
                    d.name
                ),
            ),
        }
        if d.os_disk && d.dynamic {
            r.push(
                VmRule::OsDiskDynamic,
                &d.name,
                1,
                0,
                Unit::Flag,
                format!(
                    "OS disk {} is a dynamic disk; it must be a basic disk",
                    d.name
                ),
            );
        }
    }
}

fn check_name(name: &str, r: &mut VmReport) {
    let len = name.chars().count() as u64;
    if len == 0 || len > VM_NAME_MAX {
        let limit = if len == 0 { 1 } else { VM_NAME_MAX };
        r.push(
            VmRule::NameLength,
            name,
            len,
            limit,
            Unit::Characters,
            format!("the name {name:?} has {len} characters; it must have 1 to {VM_NAME_MAX}"),
        );
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        r.push(
            VmRule::NameCharacters,
            name,
            c as u64,
            0,
            Unit::CodePoint,
            format!(
                "the name {name:?} contains {c:?}; only letters, digits and hyphens are allowed"
            ),
        );
    }
    for c in [name.chars().next(), name.chars().last()]
        .into_iter()
        .flatten()
    {
        if !c.is_ascii_alphanumeric() {
            r.push(
                VmRule::NameStartEnd,
                name,
                c as u64,
                0,
                Unit::CodePoint,
                format!("the name {name:?} must start and end with a letter or digit, not {c:?}"),
            );
            break;
        }
    }
}

fn check_uefi(vm: &VmDescription, r: &mut VmReport) {
    if vm.firmware != Firmware::Uefi {
        return;
    }
    if vm.purpose != Purpose::Migration {
        r.push(
            VmRule::UefiMigrationOnly,
            "",
            1,
            0,
            Unit::Flag,
            "UEFI boot is supported for migration only (no failback)".into(),
        );
    }
    let product = vm.os.as_ref().and_then(|(p, _)| canonical_product(p));
    if !product.is_some_and(|p| UEFI_PRODUCTS.contains(&p)) {
        let what = vm
            .os
            .as_ref()
            .map_or("an unstated operating system".to_owned(), |(p, v)| {
                format!("{p} {v}")
            });
        r.push(
            VmRule::UefiOperatingSystem,
            "",
            0,
            1,
            Unit::None,
            format!(
                "UEFI boot needs Windows Server 2012 or later; the machine runs {}",
                what.trim_end()
            ),
        );
    }
    for d in vm.disks.iter().filter(|d| d.os_disk) {
        if d.partitions as u64 > UEFI_MAX_OS_PARTITIONS {
            r.push(
                VmRule::UefiPartitions,
                &d.name,
                d.partitions as u64,
                UEFI_MAX_OS_PARTITIONS,
                Unit::Count,
                format!(
                    "OS disk {} has {} partitions; UEFI boot allows at most {UEFI_MAX_OS_PARTITIONS}",
                    d.name, d.partitions
                ),
            );
        }
    }
    // "Only NTFS is supported": read as the volumes of the OS disk, the disk UEFI boots from
    // (docs/SUPPORT.md). Data disks keep the general file system rules.
    for v in &vm.windows_volumes {
        let disk = &vm.disks[v.disk];
        if disk.os_disk && !v.filesystem.eq_ignore_ascii_case("ntfs") {
            r.push(
                VmRule::UefiFileSystem,
                &v.name,
                0,
                0,
                Unit::None,
                format!(
                    "volume {} on OS disk {} is {}; UEFI boot supports only NTFS",
                    v.name, disk.name, v.filesystem
                ),
            );
        }
    }
    if vm.agent < UEFI_SINCE {
        r.push(
            VmRule::UefiAgent,
            "",
            agent_value(vm.agent),
            agent_value(UEFI_SINCE),
            Unit::AgentVersion,
            format!(
                "UEFI boot needs agent {UEFI_SINCE} or later; the agent is {}",
                vm.agent
            ),
        );
    }
}

fn check_linux(vm: &VmDescription, linux: &LinuxGuest, r: &mut VmReport) {
    for v in &linux.volumes {
        let mut traits = v.traits;
        if v.filesystem.eq_ignore_ascii_case("btrfs") && v.disks.len() > 1 {
            traits = traits | FsTraits::BTRFS_MULTI_DISK;
        }
        if let Err(why) = check_filesystem(&v.filesystem, traits, vm.agent) {
            let (found, limit, unit, reason) = match why {
                FsRejection::NotListed => (
                    0,
                    0,
                    Unit::None,
                    "it is not supported (ext3, ext4, XFS, BTRFS are)".to_owned(),
                ),
                FsRejection::NeedsAgent(need) => (
                    agent_value(vm.agent),
                    agent_value(need),
                    Unit::AgentVersion,
                    format!("it needs agent {need} or later; the agent is {}", vm.agent),
                ),
                FsRejection::Traits(t) => (t.0 as u64, 0, Unit::None, btrfs_reason(t)),
            };
            r.push(
                VmRule::FileSystem,
                &v.mount,
                found,
                limit,
                unit,
                format!("{} on {} is {}: {reason}", v.mount, v.device, v.filesystem),
            );
        }
    }
    let relaxed = vm.agent >= LINUX_LAYOUT_RELAXED_SINCE;
    let boot = linux
        .volumes
        .iter()
        .find(|v| v.mount == "/boot")
        .or_else(|| linux.volumes.iter().find(|v| v.mount == "/"));
    if let Some(boot) = boot.filter(|b| b.lvm) {
        if !relaxed {
            r.push(
                VmRule::BootOnLvm,
                &boot.mount,
                1,
                0,
                Unit::Flag,
                format!(
                    "/boot is on LVM volume {}: supported from agent {LINUX_LAYOUT_RELAXED_SINCE}; the agent is {}",
                    boot.device, vm.agent
                ),
            );
        } else if boot.disks.len() > 1 {
            r.push(
                VmRule::BootOnLvmMultiDisk,
                &boot.mount,
                boot.disks.len() as u64,
                1,
                Unit::Count,
                format!(
                    "/boot is on LVM volume {} across {} disks; it must be on one",
                    boot.device,
                    boot.disks.len()
                ),
            );
        }
    }
    let os_disk = vm.disks.iter().position(|d| d.os_disk);
    if let (false, Some(os)) = (relaxed, os_disk) {
        for v in linux
            .volumes
            .iter()
            .filter(|v| SAME_DISK_DIRECTORIES.contains(&v.mount.as_str()))
        {
            if let Some(d) = v.disks.iter().find(|d| **d != os) {
                r.push(
                    VmRule::SystemDirectoryOffOsDisk,
                    &v.mount,
                    *d as u64,
                    os as u64,
                    Unit::DiskIndex,
                    format!(
                        "{} is on disk {} ({}), not on the OS disk ({}): supported from agent {LINUX_LAYOUT_RELAXED_SINCE}; the agent is {}",
                        v.mount, d, vm.disks[*d].name, vm.disks[os].name, vm.agent
                    ),
                );
            }
        }
    }
    let groups: [(&str, Vec<&str>); 3] = [
        ("disk", vm.disks.iter().map(|d| d.name.as_str()).collect()),
        (
            "device",
            linux.volumes.iter().map(|v| v.device.as_str()).collect(),
        ),
        (
            "mount point",
            linux.volumes.iter().map(|v| v.mount.as_str()).collect(),
        ),
    ];
    for (what, names) in groups {
        for (i, a) in names.iter().enumerate() {
            if let Some(b) = names[i + 1..]
                .iter()
                .find(|b| *b != a && b.eq_ignore_ascii_case(a))
            {
                r.push(
                    VmRule::DuplicateName,
                    a,
                    0,
                    0,
                    Unit::None,
                    format!("{what} names {a:?} and {b:?} differ only in case"),
                );
            }
        }
    }
    for (rule, free, min, what) in [
        (
            VmRule::RootFreeSpace,
            linux.root_free_bytes,
            ROOT_FREE_MIN,
            "the root partition",
        ),
        (
            VmRule::InstallFreeSpace,
            linux.install_free_bytes,
            INSTALL_FREE_MIN,
            "the installation folder",
        ),
    ] {
        if free < min {
            r.push(
                rule,
                "",
                free,
                min,
                Unit::Bytes,
                format!("{what} has {} free; it needs {}", size(free), size(min)),
            );
        }
    }
    for (rule, present, what) in [
        (
            VmRule::ParavirtualizedDevice,
            linux.paravirtualized_devices,
            "devices exported by paravirtualized drivers",
        ),
        (
            VmRule::MultiQueueDevice,
            linux.multi_queue_devices,
            "multi-queue block I/O devices",
        ),
        (
            VmRule::HpCciss,
            linux.hp_cciss,
            "an HP CCISS storage controller",
        ),
    ] {
        if present {
            r.push(
                rule,
                "",
                1,
                0,
                Unit::Flag,
                format!("the machine has {what}: not supported"),
            );
        }
    }
}

fn btrfs_reason(t: FsTraits) -> String {
    let mut parts = Vec::new();
    if t.contains(FsTraits::BTRFS_SUBVOLUME_CHANGED) {
        parts.push("a sub-volume was changed after protection was enabled");
    }
    if t.contains(FsTraits::BTRFS_MULTI_DISK) {
        parts.push("it spans more than one disk");
    }
    if t.contains(FsTraits::BTRFS_RAID) {
        parts.push("it uses RAID");
    }
    format!("BTRFS is not supported when {}", parts.join(", and "))
}
