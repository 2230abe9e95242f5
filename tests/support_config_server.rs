//! The configuration server validator: each requirement at its limit and one step past it.

use blockdelta::support::{
    validate_config_server, AgentVersion, ConfigServerRule as R, ConfigServerSpec, Unit,
};

const GB: u64 = 1 << 30;

fn rules(s: &ConfigServerSpec) -> Vec<R> {
    validate_config_server(s)
        .failures
        .iter()
        .map(|f| f.rule)
        .collect()
}

#[test]
fn the_default_spec_meets_every_requirement() {
    let s = ConfigServerSpec::default();
    assert_eq!((s.cores, s.memory_bytes, s.disks), (8, 16 * GB, 3));
    assert_eq!(
        (s.cache_free_bytes, s.retention_free_bytes),
        (600 * GB, 600 * GB)
    );
    assert!(validate_config_server(&s).is_ok());
}

#[test]
fn hardware_limits() {
    let d = ConfigServerSpec::default;
    assert_eq!(rules(&ConfigServerSpec { cores: 7, ..d() }), [R::Cores]);
    assert_eq!(
        rules(&ConfigServerSpec {
            memory_bytes: 16 * GB - 1,
            ..d()
        }),
        [R::Memory]
    );
    assert_eq!(rules(&ConfigServerSpec { disks: 2, ..d() }), [R::DiskCount]);
    assert_eq!(
        rules(&ConfigServerSpec {
            cache_free_bytes: 600 * GB - 1,
            ..d()
        }),
        [R::CacheFreeSpace]
    );
    assert_eq!(
        rules(&ConfigServerSpec {
            retention_free_bytes: 599 * GB,
            ..d()
        }),
        [R::RetentionFreeSpace]
    );
    let r = validate_config_server(&ConfigServerSpec { cores: 4, ..d() });
    let f = &r.failures[0];
    assert_eq!((f.found, f.limit, f.unit), (4, 8, Unit::Count));
    let r = validate_config_server(&ConfigServerSpec {
        memory_bytes: 8 * GB,
        ..d()
    });
    assert_eq!(
        r.failures[0].message,
        "the server has 8 GB of memory; it needs 16 GB"
    );
}

#[test]
fn operating_system_locale_and_network() {
    let d = ConfigServerSpec::default;
    assert!(validate_config_server(&ConfigServerSpec {
        os: "Windows Server 2012 R2".into(),
        desktop_experience: false,
        ..d()
    })
    .is_ok());
    assert_eq!(
        rules(&ConfigServerSpec {
            desktop_experience: false,
            ..d()
        }),
        [R::DesktopExperience]
    );
    assert_eq!(
        rules(&ConfigServerSpec {
            os: "Windows Server 2019".into(),
            ..d()
        }),
        [R::OperatingSystem]
    );
    assert_eq!(
        rules(&ConfigServerSpec {
            os: "Windows Server 2012".into(),
            ..d()
        }),
        [R::OperatingSystem]
    );
    assert_eq!(
        rules(&ConfigServerSpec {
            locale: "de-de".into(),
            ..d()
        }),
        [R::Locale]
    );
    assert!(validate_config_server(&ConfigServerSpec {
        locale: "EN-US".into(),
        ..d()
    })
    .is_ok());
    assert_eq!(
        rules(&ConfigServerSpec {
            nic: "E1000".into(),
            ..d()
        }),
        [R::NicType]
    );
    assert!(validate_config_server(&ConfigServerSpec {
        nic: "E1000".into(),
        vmware_vm: false,
        ..d()
    })
    .is_ok());
    assert_eq!(
        rules(&ConfigServerSpec {
            static_ip: false,
            ..d()
        }),
        [R::StaticIp]
    );
    let r = validate_config_server(&ConfigServerSpec {
        ports_in_use: vec![80, 443, 9443],
        ..d()
    });
    assert_eq!(
        r.failures.iter().map(|f| f.found).collect::<Vec<_>>(),
        [443, 9443]
    );
    assert!(r
        .failures
        .iter()
        .all(|f| f.rule == R::PortInUse && f.unit == Unit::Port));
}

#[test]
fn roles_policies_and_powercli() {
    let d = ConfigServerSpec::default;
    let roles = |r: &[&str]| {
        rules(&ConfigServerSpec {
            roles: r.iter().map(|s| s.to_string()).collect(),
            ..d()
        })
    };
    assert_eq!(
        roles(&["AD DS", "iis", "Hyper-V", "DNS Server"]),
        [R::ForbiddenRole; 3]
    );
    assert_eq!(
        roles(&["Active Directory Domain Services"]),
        [R::ForbiddenRole]
    );
    assert!(roles(&["File Server"]).is_empty());
    let s = ConfigServerSpec {
        group_policies: vec![
            "Turn on Script Execution".into(),
            "prevent access to the command prompt".into(),
            "Other".into(),
        ],
        ..d()
    };
    assert_eq!(rules(&s), [R::ForbiddenGroupPolicy; 2]);
    assert_eq!(
        rules(&ConfigServerSpec {
            version: AgentVersion::new(9, 13),
            ..d()
        }),
        [R::PowerCli]
    );
    assert!(rules(&ConfigServerSpec {
        version: AgentVersion::new(9, 13),
        powercli: true,
        ..d()
    })
    .is_empty());
    assert!(rules(&ConfigServerSpec {
        version: AgentVersion::new(9, 14),
        ..d()
    })
    .is_empty());
}

#[test]
fn every_failure_at_once() {
    let s = ConfigServerSpec {
        cores: 2,
        memory_bytes: GB,
        disks: 1,
        cache_free_bytes: 0,
        retention_free_bytes: 0,
        os: "Windows Server 2008 R2".into(),
        desktop_experience: false,
        locale: "fr-fr".into(),
        vmware_vm: true,
        nic: "e1000".into(),
        static_ip: false,
        ports_in_use: vec![443],
        roles: vec!["IIS".into()],
        group_policies: vec!["Trust logic for file attachments".into()],
        version: AgentVersion::new(9, 10),
        powercli: false,
    };
    // Every rule but Desktop Experience, which applies only to a Windows Server 2016.
    let mut got = rules(&s);
    got.sort_by_key(|r| *r as u32);
    let want: Vec<R> = R::ALL
        .iter()
        .copied()
        .filter(|r| *r != R::DesktopExperience)
        .collect();
    assert_eq!(got, want);
    let mut seen = std::collections::HashSet::new();
    for r in R::ALL {
        assert!(seen.insert(*r as u32) && (101..200).contains(&(*r as u32)));
    }
}
