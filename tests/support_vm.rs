//! The VM validator: every rule fails on its own with the value found and the limit, at the
//! limit it passes, one step past it fails, and all failures come back together.

use blockdelta::support::{
    validate_vm, AgentVersion, Arch, DiskKind, Firmware, FsTraits, LinuxGuest, LinuxVolume,
    Purpose, SupportError, Unit, VmDescription, VmDisk, VmReport, VmRule, WindowsVolume,
};

const MB: u64 = 1 << 20;
const GB: u64 = 1 << 30;

fn v(s: &str) -> AgentVersion {
    s.parse().unwrap()
}

fn good() -> VmDescription {
    let mut vm = VmDescription::new("web-01");
    vm.os = Some(("Windows Server 2016".into(), String::new()));
    vm.disks.push(VmDisk::os("disk0", 127 * GB));
    vm.disks.push(VmDisk::data("disk1", 1024 * GB));
    vm
}

fn run(vm: &VmDescription) -> VmReport {
    validate_vm(vm).unwrap()
}

/// The report has exactly these rules, in any order.
fn only(r: &VmReport, rules: &[VmRule]) {
    let mut got: Vec<u32> = r.failures.iter().map(|f| f.rule as u32).collect();
    let mut want: Vec<u32> = rules.iter().map(|x| *x as u32).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "{:#?}", r.failures);
}

#[test]
fn a_good_vm_passes() {
    assert!(run(&good()).is_ok());
}

#[test]
fn os_disk_size_limit_is_2048_gb() {
    let mut vm = good();
    vm.disks[0].size_bytes = 2048 * GB;
    assert!(run(&vm).is_ok());
    vm.disks[0].size_bytes = 2048 * GB + 1;
    let r = run(&vm);
    only(&r, &[VmRule::OsDiskSize]);
    let f = &r.failures[0];
    assert_eq!(
        (f.found, f.limit, f.unit, f.subject.as_str()),
        (2048 * GB + 1, 2048 * GB, Unit::Bytes, "disk0")
    );
}

#[test]
fn data_disk_size_limit_is_4095_gb() {
    let mut vm = good();
    vm.disks[1].size_bytes = 4095 * GB;
    assert!(run(&vm).is_ok());
    vm.disks[1].size_bytes = 4095 * GB + 1;
    let r = run(&vm);
    only(&r, &[VmRule::DataDiskSize]);
    assert_eq!(r.failures[0].limit, 4095 * GB);
    assert!(
        r.failures[0].message.contains("4095 GB"),
        "{}",
        r.failures[0].message
    );
}

#[test]
fn every_disk_must_be_larger_than_1024_mb() {
    let mut vm = good();
    vm.disks[1].size_bytes = 1024 * MB + 1;
    assert!(run(&vm).is_ok());
    vm.disks[1].size_bytes = 1024 * MB;
    let r = run(&vm);
    only(&r, &[VmRule::DiskTooSmall]);
    assert_eq!(
        (r.failures[0].found, r.failures[0].limit),
        (1024 * MB, 1024 * MB)
    );
    vm.disks[0].size_bytes = 512 * MB;
    only(&run(&vm), &[VmRule::DiskTooSmall, VmRule::DiskTooSmall]);
}

#[test]
fn data_disk_count_limit_is_64() {
    let mut vm = good();
    while vm.disks.len() < 65 {
        let n = vm.disks.len();
        vm.disks.push(VmDisk::data(&format!("disk{n}"), 10 * GB));
    }
    assert!(run(&vm).is_ok());
    vm.disks.push(VmDisk::data("disk65", 10 * GB));
    let r = run(&vm);
    only(&r, &[VmRule::DataDiskCount]);
    assert_eq!(
        (r.failures[0].found, r.failures[0].limit, r.failures[0].unit),
        (65, 64, Unit::Count)
    );
}

#[test]
fn exactly_one_os_disk() {
    let mut vm = good();
    vm.disks[1].os_disk = true;
    let r = run(&vm);
    only(&r, &[VmRule::OsDiskCount]);
    assert_eq!((r.failures[0].found, r.failures[0].limit), (2, 1));
    vm.disks.iter_mut().for_each(|d| d.os_disk = false);
    let r = run(&vm);
    only(&r, &[VmRule::OsDiskCount]);
    assert_eq!(r.failures[0].found, 0);
}

#[test]
fn name_rules() {
    let name_len = |n: usize| {
        let mut vm = good();
        vm.name = "a".repeat(n);
        run(&vm)
    };
    assert!(name_len(1).is_ok());
    assert!(name_len(63).is_ok());
    only(&name_len(64), &[VmRule::NameLength]);
    assert_eq!(
        (
            name_len(64).failures[0].found,
            name_len(64).failures[0].limit
        ),
        (64, 63)
    );
    only(&name_len(0), &[VmRule::NameLength]);
    let named = |n: &str| {
        let mut vm = good();
        vm.name = n.into();
        run(&vm)
    };
    assert!(named("A-1-b").is_ok());
    only(&named("web_01"), &[VmRule::NameCharacters]);
    assert_eq!(named("web_01").failures[0].found, '_' as u64);
    only(&named("-web01"), &[VmRule::NameStartEnd]);
    only(&named("web01-"), &[VmRule::NameStartEnd]);
    only(&named("-"), &[VmRule::NameStartEnd]);
    only(
        &named("_web"),
        &[VmRule::NameCharacters, VmRule::NameStartEnd],
    );
}

#[test]
fn architecture_shared_vhd_fc_bitlocker_dynamic() {
    let mut vm = good();
    vm.arch = Arch::X86;
    let r = run(&vm);
    only(&r, &[VmRule::Architecture]);
    assert_eq!(
        (r.failures[0].found, r.failures[0].limit, r.failures[0].unit),
        (32, 64, Unit::Bits)
    );
    let mut vm = good();
    vm.disks[1].kind = DiskKind::SharedVhd;
    only(&run(&vm), &[VmRule::SharedVhd]);
    vm.disks[1].kind = DiskKind::FibreChannel;
    only(&run(&vm), &[VmRule::FcDisk]);
    let mut vm = good();
    vm.bitlocker = true;
    only(&run(&vm), &[VmRule::BitLocker]);
    let mut vm = good();
    vm.disks[1].dynamic = true; // data disks may be dynamic
    assert!(run(&vm).is_ok());
    vm.disks[0].dynamic = true;
    only(&run(&vm), &[VmRule::OsDiskDynamic]);
}

#[test]
fn guest_os_and_32_bit_migration() {
    let mut vm = good();
    vm.os = Some(("Windows 10".into(), String::new()));
    vm.agent = v("9.23");
    let r = run(&vm);
    only(&r, &[VmRule::GuestOs]);
    assert_eq!(r.failures[0].unit, Unit::AgentVersion);
    assert_eq!(r.failures[0].limit, 9 << 16 | 24);
    vm.agent = v("9.24");
    assert!(run(&vm).is_ok());
    // E7: 32-bit Windows Server 2008 SP2 passes for migration only.
    vm.os = Some(("Windows Server 2008".into(), "SP2".into()));
    vm.arch = Arch::X86;
    only(&run(&vm), &[VmRule::GuestOs, VmRule::Architecture]);
    vm.purpose = Purpose::Migration;
    assert!(run(&vm).is_ok());
    vm.os = Some(("CentOS".into(), "7.6".into()));
    only(&run(&vm), &[VmRule::Architecture]);
    vm.os = Some(("BeOS".into(), "5".into()));
    vm.arch = Arch::X86_64;
    only(&run(&vm), &[VmRule::GuestOs]);
}

#[test]
fn uefi_rules() {
    let mut vm = good();
    vm.firmware = Firmware::Uefi;
    vm.disks[0].partitions = 4;
    only(&run(&vm), &[VmRule::UefiMigrationOnly]);
    vm.purpose = Purpose::Migration;
    assert!(run(&vm).is_ok());
    vm.disks[0].partitions = 5;
    let r = run(&vm);
    only(&r, &[VmRule::UefiPartitions]);
    assert_eq!((r.failures[0].found, r.failures[0].limit), (5, 4));
    vm.disks[0].partitions = 4;
    vm.agent = v("9.12");
    only(&run(&vm), &[VmRule::UefiAgent]);
    vm.agent = v("9.13");
    assert!(run(&vm).is_ok());
    vm.os = Some(("Windows Server 2008 R2".into(), "SP1".into()));
    only(&run(&vm), &[VmRule::UefiOperatingSystem]);
}

fn win(name: &str, fs: &str, disk: usize) -> WindowsVolume {
    WindowsVolume {
        name: name.into(),
        filesystem: fs.into(),
        disk,
    }
}

#[test]
fn uefi_needs_ntfs_on_the_os_disk() {
    let mut vm = good();
    vm.firmware = Firmware::Uefi;
    vm.purpose = Purpose::Migration;
    vm.windows_volumes = vec![win("C:", "NTFS", 0), win("E:", "ReFS", 1)];
    // ReFS on a data disk is outside the UEFI rule; NTFS in any case passes.
    assert!(run(&vm).is_ok());
    vm.windows_volumes.push(win("D:", "ntfs", 0));
    assert!(run(&vm).is_ok());
    vm.windows_volumes.push(win("R:", "ReFS", 0));
    vm.windows_volumes.push(win("S:", "FAT32", 0));
    let r = run(&vm);
    only(&r, &[VmRule::UefiFileSystem, VmRule::UefiFileSystem]);
    assert_eq!(r.failures[0].subject, "R:");
    assert_eq!(
        r.failures[1].message,
        "volume S: on OS disk disk0 is FAT32; UEFI boot supports only NTFS"
    );
    // With BIOS boot the same volumes are fine.
    vm.firmware = Firmware::Bios;
    vm.purpose = Purpose::Replication;
    assert!(run(&vm).is_ok());
    // A volume on a disk that does not exist is a bad description, not a failed check.
    vm.windows_volumes.push(win("Z:", "NTFS", 2));
    assert!(matches!(
        validate_vm(&vm),
        Err(SupportError::InvalidDescription { .. })
    ));
}

fn vol(mount: &str, device: &str, fs: &str, lvm: bool, disks: &[usize]) -> LinuxVolume {
    LinuxVolume {
        mount: mount.into(),
        device: device.into(),
        filesystem: fs.into(),
        traits: FsTraits::NONE,
        lvm,
        disks: disks.to_vec(),
    }
}

fn linux_vm(agent: &str) -> VmDescription {
    let mut vm = VmDescription::new("db01");
    vm.agent = v(agent);
    vm.os = Some(("CentOS".into(), "7.6".into()));
    vm.disks.push(VmDisk::os("sda", 64 * GB));
    vm.disks.push(VmDisk::data("sdb", 256 * GB));
    vm.linux = Some(LinuxGuest {
        volumes: vec![
            vol("/", "/dev/sda2", "xfs", false, &[0]),
            vol("/boot", "/dev/sda1", "ext4", false, &[0]),
            vol("/data", "/dev/sdb1", "ext4", false, &[1]),
        ],
        root_free_bytes: 2 * GB,
        install_free_bytes: 250 * MB,
        ..Default::default()
    });
    vm
}

fn guest(vm: &mut VmDescription) -> &mut LinuxGuest {
    vm.linux.as_mut().unwrap()
}

#[test]
fn linux_guest_passes_at_the_free_space_limits() {
    assert!(run(&linux_vm("9.20")).is_ok());
    assert!(run(&linux_vm("9.24")).is_ok());
    let mut vm = linux_vm("9.24");
    guest(&mut vm).root_free_bytes = 2 * GB - 1;
    guest(&mut vm).install_free_bytes = 250 * MB - 1;
    let r = run(&vm);
    only(&r, &[VmRule::RootFreeSpace, VmRule::InstallFreeSpace]);
    assert_eq!(
        (r.failures[0].found, r.failures[0].limit),
        (2 * GB - 1, 2 * GB)
    );
}

#[test]
fn boot_on_lvm_before_and_after_9_20() {
    let mut vm = linux_vm("9.20");
    guest(&mut vm).volumes[1] = vol("/boot", "/dev/mapper/vg-boot", "ext4", true, &[0]);
    assert!(run(&vm).is_ok());
    vm.agent = v("9.19");
    only(&run(&vm), &[VmRule::BootOnLvm]);
    vm.agent = v("9.20");
    guest(&mut vm).volumes[1].disks = vec![0, 1];
    only(&run(&vm), &[VmRule::BootOnLvmMultiDisk]);
    // Without a separate /boot, /boot lives on the root volume.
    let mut vm = linux_vm("9.19");
    guest(&mut vm).volumes.remove(1);
    guest(&mut vm).volumes[0].lvm = true;
    only(&run(&vm), &[VmRule::BootOnLvm]);
}

#[test]
fn system_directories_on_the_os_disk_before_9_20() {
    let mut vm = linux_vm("9.19");
    guest(&mut vm)
        .volumes
        .push(vol("/var", "/dev/sdb2", "ext4", false, &[1]));
    let r = run(&vm);
    only(&r, &[VmRule::SystemDirectoryOffOsDisk]);
    assert_eq!(
        (r.failures[0].found, r.failures[0].limit, r.failures[0].unit),
        (1, 0, Unit::DiskIndex)
    );
    assert_eq!(r.failures[0].subject, "/var");
    vm.agent = v("9.20");
    assert!(run(&vm).is_ok());
}

#[test]
fn linux_file_systems_and_devices() {
    let mut vm = linux_vm("9.21");
    guest(&mut vm).volumes[2].filesystem = "btrfs".into();
    only(&run(&vm), &[VmRule::FileSystem]);
    vm.agent = v("9.22");
    assert!(run(&vm).is_ok());
    guest(&mut vm).volumes[2].disks = vec![0, 1]; // BTRFS across disks
    only(&run(&vm), &[VmRule::FileSystem]);
    guest(&mut vm).volumes[2].disks = vec![1];
    guest(&mut vm).volumes[2].traits = FsTraits::BTRFS_RAID;
    only(&run(&vm), &[VmRule::FileSystem]);
    guest(&mut vm).volumes[2].traits = FsTraits::NONE;
    guest(&mut vm).volumes[2].filesystem = "zfs".into();
    only(&run(&vm), &[VmRule::FileSystem]);
    let mut vm = linux_vm("9.24");
    guest(&mut vm).volumes[2].mount = "/Boot".into();
    only(&run(&vm), &[VmRule::DuplicateName]);
    let mut vm = linux_vm("9.24");
    vm.disks[1].name = "SDA".into();
    only(&run(&vm), &[VmRule::DuplicateName]);
    let mut vm = linux_vm("9.24");
    let g = guest(&mut vm);
    g.paravirtualized_devices = true;
    g.multi_queue_devices = true;
    g.hp_cciss = true;
    only(
        &run(&vm),
        &[
            VmRule::ParavirtualizedDevice,
            VmRule::MultiQueueDevice,
            VmRule::HpCciss,
        ],
    );
}

#[test]
fn every_failure_is_reported_not_just_the_first() {
    let mut vm = linux_vm("9.19");
    vm.name = "-bad_name".into();
    vm.arch = Arch::X86;
    vm.bitlocker = true;
    vm.disks[0].size_bytes = 3000 * GB;
    vm.disks[1].size_bytes = 100 * MB;
    vm.disks[1].kind = DiskKind::SharedVhd;
    vm.disks.push(VmDisk {
        kind: DiskKind::FibreChannel,
        ..VmDisk::data("sdc", 5000 * GB)
    });
    guest(&mut vm).volumes[1].lvm = true;
    guest(&mut vm).root_free_bytes = 0;
    let r = run(&vm);
    only(
        &r,
        &[
            VmRule::Architecture,
            VmRule::OsDiskSize,
            VmRule::DiskTooSmall,
            VmRule::SharedVhd,
            VmRule::DataDiskSize,
            VmRule::FcDisk,
            VmRule::NameCharacters,
            VmRule::NameStartEnd,
            VmRule::BitLocker,
            VmRule::BootOnLvm,
            VmRule::RootFreeSpace,
        ],
    );
    for f in &r.failures {
        assert!(!f.message.is_empty());
    }
}

#[test]
fn an_inconsistent_description_is_an_error() {
    let mut vm = linux_vm("9.24");
    guest(&mut vm).volumes[2].disks = vec![7];
    let e = validate_vm(&vm).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid description: volume /data lies on disk 7, but the machine has 2 disks"
    );
}

#[test]
fn rule_codes_are_distinct() {
    let mut seen = std::collections::HashSet::new();
    for r in VmRule::ALL {
        assert!(seen.insert(*r as u32));
    }
}
