//! The configuration server's requirements: a validator for a proposed server.
//!
//! The configuration server also runs the first process server and the master target server
//! (see the roles in `docs/SUPPORT.md`), which is why it needs a cache and a retention disk.

use super::data::agents::AGENT_VERSIONS;
use super::data::limits::{
    CS_CACHE_FREE, CS_CORES, CS_DISKS, CS_FORBIDDEN_POLICIES, CS_FORBIDDEN_ROLES, CS_LOCALE,
    CS_MEMORY, CS_NIC, CS_OS, CS_PORTS, CS_POWERCLI_NOT_NEEDED_SINCE, CS_RETENTION_FREE,
};
use super::os::canonical_product;
use super::report::{agent_value, size, Report, Unit};
use super::AgentVersion;

/// A proposed configuration server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigServerSpec {
    /// CPU cores.
    pub cores: u32,
    /// Memory, bytes.
    pub memory_bytes: u64,
    /// Number of disks (OS, process server cache, retention).
    pub disks: u32,
    /// Free space on the process server cache disk, bytes.
    pub cache_free_bytes: u64,
    /// Free space on the retention disk, bytes.
    pub retention_free_bytes: u64,
    /// Operating system product (`"Windows Server 2016"`).
    pub os: String,
    /// Installed with Desktop Experience.
    pub desktop_experience: bool,
    /// Operating system locale (`"en-us"`).
    pub locale: String,
    /// Deployed as a VMware VM (the NIC rule applies only then).
    pub vmware_vm: bool,
    /// The NIC type (`"VMXNET3"`).
    pub nic: String,
    /// The IP address is static.
    pub static_ip: bool,
    /// TCP ports something already listens on.
    pub ports_in_use: Vec<u16>,
    /// Enabled Windows Server roles.
    pub roles: Vec<String>,
    /// Enabled group policies.
    pub group_policies: Vec<String>,
    /// The configuration server version to install.
    pub version: AgentVersion,
    /// PowerCLI 6.0 is installed.
    pub powercli: bool,
}

impl Default for ConfigServerSpec {
    /// A server that meets every requirement; change fields to describe a real one.
    fn default() -> Self {
        ConfigServerSpec {
            cores: CS_CORES as u32,
            memory_bytes: CS_MEMORY,
            disks: CS_DISKS as u32,
            cache_free_bytes: CS_CACHE_FREE,
            retention_free_bytes: CS_RETENTION_FREE,
            os: "Windows Server 2016".into(),
            desktop_experience: true,
            locale: CS_LOCALE.into(),
            vmware_vm: true,
            nic: CS_NIC.into(),
            static_ip: true,
            ports_in_use: Vec::new(),
            roles: Vec::new(),
            group_policies: Vec::new(),
            version: AGENT_VERSIONS[AGENT_VERSIONS.len() - 1],
            powercli: false,
        }
    }
}

/// A configuration server check. The values are stable (C API), distinct from [`super::VmRule`].
#[non_exhaustive]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfigServerRule {
    /// Fewer than 8 cores.
    Cores = 101,
    /// Less than 16 GB of memory.
    Memory = 102,
    /// Fewer than 3 disks.
    DiskCount = 103,
    /// Less than 600 GB free for the process server cache.
    CacheFreeSpace = 104,
    /// Less than 600 GB free for the retention drive.
    RetentionFreeSpace = 105,
    /// Not Windows Server 2012 R2 or 2016.
    OperatingSystem = 106,
    /// Windows Server 2016 without Desktop Experience.
    DesktopExperience = 107,
    /// Locale other than en-us.
    Locale = 108,
    /// A VMware VM whose NIC is not VMXNET3.
    NicType = 109,
    /// The IP address is not static.
    StaticIp = 110,
    /// A required port is in use.
    PortInUse = 111,
    /// A role that must not be enabled is.
    ForbiddenRole = 112,
    /// A group policy that must not be enabled is.
    ForbiddenGroupPolicy = 113,
    /// PowerCLI 6.0 is missing for a version that needs it.
    PowerCli = 114,
}

impl ConfigServerRule {
    /// Every rule.
    pub const ALL: &'static [ConfigServerRule] = &[
        ConfigServerRule::Cores,
        ConfigServerRule::Memory,
        ConfigServerRule::DiskCount,
        ConfigServerRule::CacheFreeSpace,
        ConfigServerRule::RetentionFreeSpace,
        ConfigServerRule::OperatingSystem,
        ConfigServerRule::DesktopExperience,
        ConfigServerRule::Locale,
        ConfigServerRule::NicType,
        ConfigServerRule::StaticIp,
        ConfigServerRule::PortInUse,
        ConfigServerRule::ForbiddenRole,
        ConfigServerRule::ForbiddenGroupPolicy,
        ConfigServerRule::PowerCli,
    ];
}

/// The report of [`validate_config_server`].
pub type ConfigServerReport = Report<ConfigServerRule>;

fn same(a: &str, b: &str) -> bool {
    let n = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase()
    };
    n(a) == n(b)
}

/// Runs every check on a proposed configuration server and returns every failure.
///
/// ```
/// use blockdelta::support::{validate_config_server, ConfigServerRule, ConfigServerSpec};
/// let spec = ConfigServerSpec { cores: 4, roles: vec!["IIS".into()], ..Default::default() };
/// let report = validate_config_server(&spec);
/// assert!(report.has(ConfigServerRule::Cores));
/// assert!(report.has(ConfigServerRule::ForbiddenRole));
/// assert_eq!(report.failures.len(), 2);
/// ```
pub fn validate_config_server(s: &ConfigServerSpec) -> ConfigServerReport {
    use ConfigServerRule as R;
    let mut r = ConfigServerReport::default();
    let counts = [
        (R::Cores, s.cores as u64, CS_CORES, "CPU cores"),
        (
            R::DiskCount,
            s.disks as u64,
            CS_DISKS,
            "disks (OS, process server cache, retention)",
        ),
    ];
    for (rule, found, min, what) in counts {
        if found < min {
            r.push(
                rule,
                "",
                found,
                min,
                Unit::Count,
                format!("the server has {found} {what}; it needs {min}"),
            );
        }
    }
    let sizes = [
        (R::Memory, s.memory_bytes, CS_MEMORY, "memory"),
        (
            R::CacheFreeSpace,
            s.cache_free_bytes,
            CS_CACHE_FREE,
            "free space for the process server cache",
        ),
        (
            R::RetentionFreeSpace,
            s.retention_free_bytes,
            CS_RETENTION_FREE,
            "free space for the retention drive",
        ),
    ];
    for (rule, found, min, what) in sizes {
        if found < min {
            r.push(
                rule,
                "",
                found,
                min,
                Unit::Bytes,
                format!(
                    "the server has {} of {what}; it needs {}",
                    size(found),
                    size(min)
                ),
            );
        }
    }
    let product = canonical_product(&s.os);
    match CS_OS.iter().find(|(p, _)| Some(*p) == product) {
        None => r.push(
            R::OperatingSystem,
            &s.os,
            0,
            1,
            Unit::None,
            format!(
                "{:?} is not a configuration server OS (Windows Server 2012 R2 or 2016)",
                s.os
            ),
        ),
        Some((p, true)) if !s.desktop_experience => r.push(
            R::DesktopExperience,
            &s.os,
            0,
            1,
            Unit::Flag,
            format!("{p} must be installed with Desktop Experience"),
        ),
        Some(_) => {}
    }
    if !same(&s.locale, CS_LOCALE) {
        r.push(
            R::Locale,
            &s.locale,
            0,
            0,
            Unit::None,
            format!("the locale is {:?}; it must be {CS_LOCALE}", s.locale),
        );
    }
    if s.vmware_vm && !same(&s.nic, CS_NIC) {
        r.push(
            R::NicType,
            &s.nic,
            0,
            0,
            Unit::None,
            format!("the NIC is {:?}; a VMware VM needs {CS_NIC}", s.nic),
        );
    }
    if !s.static_ip {
        r.push(
            R::StaticIp,
            "",
            0,
            1,
            Unit::Flag,
            "the IP address must be static".into(),
        );
    }
    for port in CS_PORTS.iter().filter(|p| s.ports_in_use.contains(p)) {
        r.push(
            R::PortInUse,
            &port.to_string(),
            *port as u64,
            *port as u64,
            Unit::Port,
            format!("port {port} is in use; the configuration server needs it"),
        );
    }
    for role in &s.roles {
        if let Some((name, _)) = CS_FORBIDDEN_ROLES
            .iter()
            .find(|(name, aliases)| same(name, role) || aliases.iter().any(|a| same(a, role)))
        {
            r.push(
                R::ForbiddenRole,
                name,
                1,
                0,
                Unit::Flag,
                format!("the {name} role must not be enabled"),
            );
        }
    }
    for policy in &s.group_policies {
        if let Some(name) = CS_FORBIDDEN_POLICIES
            .iter()
            .copied()
            .find(|p| same(p, policy))
        {
            r.push(
                R::ForbiddenGroupPolicy,
                name,
                1,
                0,
                Unit::Flag,
                format!("the group policy {name:?} must not be enabled"),
            );
        }
    }
    if s.version < CS_POWERCLI_NOT_NEEDED_SINCE && !s.powercli {
        r.push(
            R::PowerCli,
            "",
            agent_value(s.version),
            agent_value(CS_POWERCLI_NOT_NEEDED_SINCE),
            Unit::AgentVersion,
            format!(
                "version {} needs PowerCLI 6.0 (not needed from {CS_POWERCLI_NOT_NEEDED_SINCE})",
                s.version
            ),
        );
    }
    r
}
