//! Operating systems, file systems, features and VMware hosts: every table row, and literal
//! checks from the source document.

use blockdelta::support::{
    check_filesystem, check_os, check_os_upgrade, check_vmware_host, errata, feature, features,
    filesystem_table, os_table, AgentVersion, Arch, FsRejection, FsTraits, Machine, OsNote,
    OsRejection, OsScope, OsUpgrade, OsVerdict, OsVersion, Support, SupportError,
};

fn v(s: &str) -> AgentVersion {
    s.parse().unwrap()
}

const NEWEST: &str = "9.24";

fn verdict(product: &str, version: &str, arch: Arch, agent: &str) -> OsVerdict {
    check_os(product, version, arch, v(agent)).unwrap().verdict
}

fn version_text(x: OsVersion) -> String {
    x.to_string()
}

#[test]
fn every_os_row_answers_at_both_ends_and_not_one_step_outside() {
    for row in os_table() {
        let arch = row.arches[0];
        let expected = match row.scope {
            OsScope::Replication => OsVerdict::Supported,
            OsScope::MigrationOnly => OsVerdict::MigrationOnly,
            OsScope::NotSupported => OsVerdict::NotSupported(OsRejection::Unsupported),
        };
        let last = OsVersion {
            minor: row.last.minor.min(60),
            service_pack: row.last.service_pack.min(9),
            ..row.last
        };
        for end in [row.first, last] {
            let r = check_os(row.product, &version_text(end), arch, v(NEWEST)).unwrap();
            assert_eq!(r.verdict, expected, "{} {end}", row.product);
            assert_eq!(r.row, Some(row), "{} {end}", row.product);
        }
        // One step outside: not answered by this row.
        let before = if row.first.service_pack > 0 {
            Some(OsVersion {
                service_pack: row.first.service_pack - 1,
                ..row.first
            })
        } else if row.first.minor > 0 {
            Some(OsVersion {
                minor: row.first.minor - 1,
                ..row.first
            })
        } else {
            None
        };
        let after = if row.last.service_pack != u16::MAX && row.last.service_pack > 0 {
            Some(OsVersion {
                service_pack: row.last.service_pack + 1,
                ..row.last
            })
        } else if row.last.minor != u16::MAX && row.last.major > 0 {
            Some(OsVersion {
                minor: row.last.minor + 1,
                ..row.last
            })
        } else {
            None
        };
        for out in [before, after].into_iter().flatten() {
            let r = check_os(row.product, &version_text(out), arch, v(NEWEST)).unwrap();
            assert!(
                r.row != Some(row),
                "{} {out} answered by its row",
                row.product
            );
        }
        // Agent thresholds: the version before `since` is refused with the version needed.
        if let Some(since) = row.since.filter(|_| row.scope != OsScope::NotSupported) {
            let older = AgentVersion::new(since.major(), since.minor() - 1);
            let r = check_os(row.product, &version_text(row.first), arch, older).unwrap();
            assert_eq!(
                r.verdict,
                OsVerdict::NotSupported(OsRejection::NeedsAgent(since))
            );
        }
        // Linux is 64-bit only.
        if row.distro.is_some() {
            let r = check_os(row.product, &version_text(row.first), Arch::X86, v(NEWEST)).unwrap();
            assert_eq!(
                r.verdict,
                OsVerdict::NotSupported(OsRejection::Architecture)
            );
            assert!(
                r.notes.contains(&OsNote::StockKernelsOnly)
                    && r.notes.contains(&OsNote::NoMajorUpgrade)
            );
        }
    }
}

#[test]
fn windows_literal_checks() {
    let x64 = Arch::X86_64;
    assert_eq!(
        verdict("Windows Server 2019", "", x64, "9.22"),
        OsVerdict::Supported
    );
    assert_eq!(
        verdict("Windows Server 2019", "", x64, "9.21"),
        OsVerdict::NotSupported(OsRejection::NeedsAgent(v("9.22")))
    );
    assert_eq!(
        verdict("windows server 2016", "", x64, "9.20"),
        OsVerdict::Supported
    );
    assert_eq!(
        verdict("Windows Server 2016", "", Arch::X86, "9.20"),
        OsVerdict::NotSupported(OsRejection::Architecture)
    );
    assert_eq!(
        verdict("Windows Server 2016 Nano Server", "", x64, "9.24"),
        OsVerdict::NotSupported(OsRejection::Unsupported)
    );
    assert_eq!(
        verdict("Windows Server 2012 R2", "", x64, "9.20"),
        OsVerdict::Supported
    );
    assert_eq!(
        verdict("Windows Server 2012", "", x64, "9.20"),
        OsVerdict::Supported
    );
    assert_eq!(
        verdict("Windows Server 2008 R2", "SP1", x64, "9.20"),
        OsVerdict::Supported
    );
    assert_eq!(
        verdict("Windows Server 2008 R2", "", x64, "9.20"),
        OsVerdict::NotSupported(OsRejection::Unsupported)
    );
    assert_eq!(
        verdict("Windows Server 2008", "SP2", Arch::X86, "9.20"),
        OsVerdict::MigrationOnly
    );
    assert_eq!(
        verdict("Windows Server 2008", "SP2", x64, "9.20"),
        OsVerdict::MigrationOnly
    );
    assert_eq!(
        verdict("Windows Server 2008", "SP1", x64, "9.24"),
        OsVerdict::NotSupported(OsRejection::VersionNotListed)
    );
    for desktop in ["Windows 10", "Windows 8.1", "Windows 8"] {
        assert_eq!(
            verdict(desktop, "", x64, "9.24"),
            OsVerdict::Supported,
            "{desktop}"
        );
        assert_eq!(
            verdict(desktop, "", x64, "9.23"),
            OsVerdict::NotSupported(OsRejection::NeedsAgent(v("9.24")))
        );
        assert_eq!(
            verdict(desktop, "", Arch::X86, "9.24"),
            OsVerdict::NotSupported(OsRejection::Architecture)
        );
    }
    assert_eq!(
        verdict("Windows 7", "SP1", x64, "9.24"),
        OsVerdict::Supported
    );
    assert_eq!(
        verdict("Windows 7", "", x64, "9.24"),
        OsVerdict::NotSupported(OsRejection::Unsupported)
    );
    assert!(matches!(
        check_os("Windows 2000", "", x64, v("9.24")),
        Err(SupportError::UnknownOperatingSystem { .. })
    ));
}

#[test]
fn linux_literal_checks() {
    let x64 = Arch::X86_64;
    for p in ["Red Hat Enterprise Linux", "RHEL", "CentOS"] {
        for ver in ["5.2", "5.11", "6.1", "6.10", "7.0", "7.6"] {
            assert_eq!(
                verdict(p, ver, x64, "9.20"),
                OsVerdict::Supported,
                "{p} {ver}"
            );
        }
        for ver in ["5.1", "5.12", "6.0", "6.11", "7.7", "8.0", "4.9"] {
            assert_eq!(
                verdict(p, ver, x64, "9.24"),
                OsVerdict::NotSupported(OsRejection::VersionNotListed),
                "{p} {ver}"
            );
        }
    }
    assert!(check_os("RHEL", "5.4", x64, v("9.24"))
        .unwrap()
        .notes
        .contains(&OsNote::LisRequired));
    assert!(!check_os("RHEL", "6.4", x64, v("9.24"))
        .unwrap()
        .notes
        .contains(&OsNote::LisRequired));
    for ver in ["6.4", "6.10", "7.0", "7.6"] {
        let r = check_os("Oracle Linux", ver, x64, v("9.24")).unwrap();
        assert_eq!(r.verdict, OsVerdict::Supported);
        assert!(r.notes.contains(&OsNote::OracleKernels));
    }
    assert_eq!(
        verdict("OL", "6.3", x64, "9.24"),
        OsVerdict::NotSupported(OsRejection::VersionNotListed)
    );
    for ver in ["14.04", "16.04", "16.04 LTS", "16.04.6"] {
        let r = check_os("Ubuntu", ver, x64, v("9.24")).unwrap();
        assert_eq!(r.verdict, OsVerdict::Supported);
        assert!(r.notes.contains(&OsNote::KernelTable));
    }
    assert_eq!(
        verdict("Ubuntu", "18.04", x64, "9.24"),
        OsVerdict::NotSupported(OsRejection::VersionNotListed)
    );
    assert_eq!(verdict("Debian", "7", x64, "9.24"), OsVerdict::Supported);
    assert_eq!(verdict("Debian", "8.11", x64, "9.24"), OsVerdict::Supported);
    assert_eq!(
        verdict("Debian", "9", x64, "9.24"),
        OsVerdict::NotSupported(OsRejection::VersionNotListed)
    );
    for sp in ["12 SP1", "12 SP4", "11 SP3", "11 SP4"] {
        assert_eq!(
            verdict("SLES", sp, x64, "9.24"),
            OsVerdict::Supported,
            "{sp}"
        );
    }
    for sp in ["12", "12 SP5", "11 SP2", "15"] {
        assert_eq!(
            verdict("SLES", sp, x64, "9.24"),
            OsVerdict::NotSupported(OsRejection::VersionNotListed),
            "{sp}"
        );
    }
    let r = check_os("SUSE Linux Enterprise Server", "11 SP3", x64, v("9.24")).unwrap();
    assert!(r.notes.contains(&OsNote::NoSles11Sp3ToSp4Upgrade));
    assert_eq!(r.notes_mask() & OsNote::NoSles11Sp3ToSp4Upgrade as u32, 8);
    assert_eq!(
        verdict("CentOS", "7.6", Arch::X86, "9.24"),
        OsVerdict::NotSupported(OsRejection::Architecture)
    );
    assert!(matches!(
        check_os("CentOS", "seven", x64, v("9.24")),
        Err(SupportError::InvalidOsVersion { .. })
    ));
}

#[test]
fn every_os_note_has_text_and_a_distinct_bit() {
    let mut mask = 0;
    for n in OsNote::ALL {
        assert!(!n.text().is_empty());
        assert_eq!((*n as u32).count_ones(), 1);
        assert_eq!(mask & *n as u32, 0);
        mask |= *n as u32;
        assert_eq!(OsNote::from_bit(*n as u32), Some(*n));
    }
}

#[test]
fn vmware_hosts() {
    for ok in ["6.7", "6.5", "6.0", "5.5", "6.7.0"] {
        assert!(check_vmware_host(ok).unwrap(), "{ok}");
    }
    for no in ["5.1", "6.6", "7.0", "6.8"] {
        assert!(!check_vmware_host(no).unwrap(), "{no}");
    }
    assert!(check_vmware_host("six").is_err());
    assert!(check_vmware_host("").is_err());
}

#[test]
fn every_filesystem_row() {
    for fs in filesystem_table() {
        let name = fs.name;
        let newest = v(NEWEST);
        assert_eq!(
            check_filesystem(name, FsTraits::NONE, newest),
            Ok(()),
            "{name}"
        );
        if let Some(since) = fs.since {
            assert_eq!(check_filesystem(name, FsTraits::NONE, since), Ok(()));
            let before = AgentVersion::new(since.major(), since.minor() - 1);
            assert_eq!(
                check_filesystem(name, FsTraits::NONE, before),
                Err(FsRejection::NeedsAgent(since))
            );
        }
        for (t, since) in fs.trait_since {
            assert_eq!(check_filesystem(name, *t, *since), Ok(()));
            let before = AgentVersion::new(since.major(), since.minor() - 1);
            assert_eq!(
                check_filesystem(name, *t, before),
                Err(FsRejection::NeedsAgent(*since))
            );
        }
        for bit in [1, 2, 4, 8].map(FsTraits) {
            if fs.unsupported.contains(bit) {
                assert_eq!(
                    check_filesystem(name, bit, newest),
                    Err(FsRejection::Traits(bit))
                );
            }
        }
    }
}

#[test]
fn filesystem_literal_checks() {
    assert_eq!(check_filesystem("ext3", FsTraits::NONE, v("9.20")), Ok(()));
    assert_eq!(check_filesystem("EXT4", FsTraits::NONE, v("9.20")), Ok(()));
    assert_eq!(check_filesystem("xfs", FsTraits::XFS_V5, v("9.10")), Ok(()));
    assert_eq!(
        check_filesystem("xfs", FsTraits::XFS_V5, v("9.9")),
        Err(FsRejection::NeedsAgent(v("9.10")))
    );
    assert_eq!(check_filesystem("xfs", FsTraits::NONE, v("9.9")), Ok(()));
    assert_eq!(check_filesystem("btrfs", FsTraits::NONE, v("9.22")), Ok(()));
    assert_eq!(
        check_filesystem("btrfs", FsTraits::NONE, v("9.21")),
        Err(FsRejection::NeedsAgent(v("9.22")))
    );
    let all = FsTraits::BTRFS_SUBVOLUME_CHANGED | FsTraits::BTRFS_MULTI_DISK | FsTraits::BTRFS_RAID;
    assert_eq!(
        check_filesystem("btrfs", all, v("9.24")),
        Err(FsRejection::Traits(all))
    );
    assert_eq!(
        check_filesystem("btrfs", FsTraits::BTRFS_RAID, v("9.24")),
        Err(FsRejection::Traits(FsTraits::BTRFS_RAID))
    );
    assert_eq!(
        check_filesystem("ext4", FsTraits::BTRFS_RAID, v("9.24")),
        Ok(())
    );
    for no in ["zfs", "ntfs", "reiserfs", ""] {
        assert_eq!(
            check_filesystem(no, FsTraits::NONE, v("9.24")),
            Err(FsRejection::NotListed)
        );
    }
}

#[test]
fn every_feature_row_is_found_by_its_key() {
    let all = features();
    for (i, f) in all.iter().enumerate() {
        // Found by its key, in any spelling (the row's value, not its address: a `const` table
        // need not have one address in an optimized build).
        assert_eq!(feature(f.key).unwrap(), f);
        assert_eq!(feature(&f.key.to_uppercase().replace('_', "-")).unwrap(), f);
        assert!(
            all[..i].iter().all(|g| g.key != f.key),
            "duplicate key {}",
            f.key
        );
        if f.vmware == Support::Conditional || f.physical == Support::Conditional {
            assert!(
                !f.note.is_empty(),
                "{} is conditional without a note",
                f.key
            );
        }
    }
}

#[test]
fn feature_literal_checks() {
    let s = |k: &str, m| feature(k).unwrap().support(m);
    use Machine::{PhysicalServer as P, VmwareVm as V};
    assert_eq!(
        (s("host_nic_teaming", V), s("host_nic_teaming", P)),
        (Support::Yes, Support::No)
    );
    assert_eq!(s("host_ipv6", V), Support::No);
    assert_eq!(s("guest_ipv6", P), Support::No);
    assert_eq!(s("guest_multiple_nics", P), Support::Yes);
    assert_eq!(
        (s("host_nfs", V), s("host_nfs", P)),
        (Support::Yes, Support::No)
    );
    assert_eq!(
        (s("host_vsan", V), s("host_vsan", P)),
        (Support::Yes, Support::NotApplicable)
    );
    assert_eq!(
        (s("guest_rdm", V), s("guest_rdm", P)),
        (Support::Yes, Support::NotApplicable)
    );
    assert_eq!(s("guest_shared_cluster_disk", V), Support::No);
    assert_eq!(s("guest_uefi_boot", V), Support::Conditional);
    assert_eq!(s("dynamic_disk", V), Support::Conditional);
    assert_eq!(s("azure_accelerated_networking", V), Support::No);
    assert_eq!(s("azure_expressroute", V), Support::Yes);
    assert_eq!(s("availability_zones", V), Support::No);
    assert_eq!(s("managed_disks", V), Support::Yes);
    assert_eq!(s("general_purpose_v2_storage", V), Support::No);
    assert_eq!(s("premium_storage", V), Support::Yes);
    assert_eq!(s("offline_seeding", V), Support::No);
    assert_eq!(s("resize_disk", V), Support::Yes);
    assert_eq!(s("add_disk", V), Support::No);
    assert_eq!(s("multi_queue_block_io", V), Support::No);
    assert!(matches!(
        feature("warp_drive"),
        Err(SupportError::UnknownFeature { .. })
    ));
}

#[test]
fn errata_are_listed_with_distinct_ids() {
    let e = errata();
    assert!(e.len() >= 10);
    for (i, x) in e.iter().enumerate() {
        assert_eq!(x.id, format!("E{}", i + 1));
        assert!(!x.source.is_empty() && !x.resolution.is_empty());
    }
}

#[test]
fn os_upgrades_follow_the_matrix_rules() {
    let up = |p: &str, f: &str, t: &str, arch: Arch| {
        check_os_upgrade(p, f, t, arch, AgentVersion::new(9, 24)).unwrap()
    };
    let x64 = Arch::X86_64;
    // Minor upgrades of a Linux distribution go on in place.
    assert_eq!(up("CentOS", "7.4", "7.6", x64), OsUpgrade::InPlace);
    assert_eq!(up("SLES", "12 SP1", "12 SP3", x64), OsUpgrade::InPlace);
    // Across major versions: disable replication, upgrade, enable again.
    assert_eq!(
        up("CentOS", "6.10", "7.6", x64),
        OsUpgrade::Reprotect(OsNote::NoMajorUpgrade)
    );
    assert_eq!(
        up("Ubuntu", "14.04", "16.04", x64),
        OsUpgrade::Reprotect(OsNote::NoMajorUpgrade)
    );
    assert_eq!(
        up("Debian", "7", "8", x64),
        OsUpgrade::Reprotect(OsNote::NoMajorUpgrade)
    );
    // The one minor upgrade the matrix names.
    assert_eq!(
        up("SLES", "11 SP3", "11 SP4", x64),
        OsUpgrade::Reprotect(OsNote::NoSles11Sp3ToSp4Upgrade)
    );
    // The new version must itself be supported.
    assert_eq!(
        up("CentOS", "7.6", "7.9", x64),
        OsUpgrade::TargetNotSupported(OsRejection::VersionNotListed)
    );
    assert_eq!(
        up("Windows Server 2008", "SP2", "SP3", Arch::X86),
        OsUpgrade::TargetMigrationOnly
    );
    // Windows: the matrix states no upgrade rule.
    assert_eq!(
        up("Windows Server 2008 R2", "SP1", "SP2", x64),
        OsUpgrade::NotStated
    );
    // A point release parses as the same version: an upgrade within it.
    assert_eq!(up("Ubuntu", "16.04.5", "16.04.6", x64), OsUpgrade::InPlace);
    // Not an upgrade; a machine that cannot be protected now; not an operating system.
    let err = |p: &str, f: &str, t: &str| {
        check_os_upgrade(p, f, t, x64, AgentVersion::new(9, 24)).unwrap_err()
    };
    let e = err("CentOS", "7.6", "7.4");
    assert!(matches!(e, SupportError::InvalidDescription { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("CentOS 7.4 is earlier than CentOS 7.6"),
        "{e}"
    );
    let e = err("CentOS", "5.1", "5.11");
    assert!(
        e.to_string()
            .contains("CentOS 5.1 is not supported by agent 9.24"),
        "{e}"
    );
    let e = err("Windows Server 2016", "SP1", "");
    assert!(
        e.to_string()
            .contains("Windows Server 2016 is earlier than"),
        "{e}"
    );
    // Windows Server 2008 R2 RTM is listed as not supported; CentOS is 64-bit only.
    let e = err("Windows Server 2008 R2", "", "SP1");
    assert!(e.to_string().contains("(listed as not supported)"), "{e}");
    let e = check_os_upgrade("CentOS", "7.4", "7.6", Arch::X86, AgentVersion::new(9, 24));
    assert!(format!("{e:?}").contains("not on 32-bit"), "{e:?}");
    assert!(matches!(
        err("BeOS", "5", "4"),
        SupportError::UnknownOperatingSystem { .. }
    ));
}
