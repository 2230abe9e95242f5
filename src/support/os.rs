//! Operating systems supported for replication, and the supported VMware host versions.

use std::fmt;
use std::str::FromStr;

use super::data::os::{OS_ALIASES, OS_ROWS, VMWARE_HOSTS};
use super::{AgentVersion, Distro, SupportError};

/// Windows or Linux.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OsFamily {
    /// Windows and Windows Server.
    Windows,
    /// Linux distributions.
    Linux,
}

/// A machine's architecture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Arch {
    /// 32-bit x86.
    X86,
    /// 64-bit x86.
    #[default]
    X86_64,
}

impl Arch {
    /// 32 or 64.
    pub fn bits(self) -> u32 {
        match self {
            Arch::X86 => 32,
            Arch::X86_64 => 64,
        }
    }

    /// The architecture with this many bits (32 or 64).
    pub fn from_bits(bits: u32) -> Option<Arch> {
        match bits {
            32 => Some(Arch::X86),
            64 => Some(Arch::X86_64),
            _ => None,
        }
    }
}

/// What a table row allows an operating system to be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OsScope {
    /// Replication (and therefore migration).
    Replication,
    /// Migration only: replicate once, fail over, no failback.
    MigrationOnly,
    /// Listed as not supported.
    NotSupported,
}

/// An operating system version as the tables state it: `7.6`, `16.04`, `12 SP3`, `SP1`.
///
/// Ordered by major, minor, then service pack. Windows products carry their year in the
/// product name and use only the service pack (`""` is no service pack, `"SP1"`).
/// A third number (`16.04.6`) is accepted and ignored. A trailing `LTS` is ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OsVersion {
    /// Major number (`7` in `7.6`, 0 for Windows).
    pub major: u16,
    /// Minor number (`6` in `7.6`, `4` in `16.04`).
    pub minor: u16,
    /// Service pack (`3` in `12 SP3`), 0 for none.
    pub service_pack: u16,
}

/// Stands for "any minor number" in a table row's last version.
pub(crate) const ANY: u16 = u16::MAX;

impl OsVersion {
    pub(crate) const fn new(major: u16, minor: u16, service_pack: u16) -> Self {
        OsVersion {
            major,
            minor,
            service_pack,
        }
    }
}

impl FromStr for OsVersion {
    type Err = SupportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SupportError::InvalidOsVersion {
            input: s.to_owned(),
        };
        let mut t = s.trim().to_ascii_uppercase();
        if let Some(x) = t.strip_suffix("LTS") {
            t = x.trim_end().to_owned();
        }
        let (nums, sp) = match t.find("SP") {
            Some(i) => {
                let digits = t[i + 2..].trim();
                if digits.is_empty()
                    || digits.len() > 3
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(bad());
                }
                (
                    t[..i].trim().trim_end_matches(['-', ' ']).to_owned(),
                    digits.parse().map_err(|_| bad())?,
                )
            }
            None => (t, 0),
        };
        let mut v = OsVersion {
            major: 0,
            minor: 0,
            service_pack: sp,
        };
        if !nums.is_empty() {
            let parts: Vec<&str> = nums.split('.').collect();
            if parts.len() > 3 {
                return Err(bad());
            }
            for (i, p) in parts.iter().enumerate() {
                if p.is_empty() || p.len() > 4 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                let n: u16 = p.parse().map_err(|_| bad())?;
                match i {
                    0 => v.major = n,
                    1 => v.minor = n,
                    _ => {}
                }
            }
        }
        Ok(v)
    }
}

impl fmt::Display for OsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if self.major != 0 || self.minor != 0 {
            write!(f, "{}.{}", self.major, self.minor)?;
            sep = " ";
        }
        if self.service_pack != 0 {
            write!(f, "{sep}SP{}", self.service_pack)?;
        }
        Ok(())
    }
}

/// A note that changes or qualifies an operating system answer. The values are stable bits
/// (the C API returns a mask of them).
#[non_exhaustive]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OsNote {
    /// Only the stock kernels of the distribution's minor release or update are supported.
    StockKernelsOnly = 1,
    /// Upgrading a protected machine across major versions is not supported.
    NoMajorUpgrade = 2,
    /// Linux Integration Services components must be installed to boot in Azure.
    LisRequired = 4,
    /// Upgrading a replicated machine from SLES 11 SP3 to SP4 is not supported.
    NoSles11Sp3ToSp4Upgrade = 8,
    /// Supported kernels are listed per agent version: ask [`super::check_kernel`].
    KernelTable = 16,
    /// Only the Red Hat compatible kernel or UEK3, UEK4 and UEK5.
    OracleKernels = 32,
    /// Vendors may limit support to releases that have not reached end of life.
    VendorEndOfLife = 64,
    /// Server Core and Server with Desktop Experience (not Nano Server).
    Server2016Editions = 128,
    /// The server edition only.
    ServerEditionOnly = 256,
}

impl OsNote {
    /// Every note, in bit order.
    pub const ALL: &'static [OsNote] = &[
        OsNote::StockKernelsOnly,
        OsNote::NoMajorUpgrade,
        OsNote::LisRequired,
        OsNote::NoSles11Sp3ToSp4Upgrade,
        OsNote::KernelTable,
        OsNote::OracleKernels,
        OsNote::VendorEndOfLife,
        OsNote::Server2016Editions,
        OsNote::ServerEditionOnly,
    ];

    /// The note as a sentence.
    pub fn text(self) -> &'static str {
        match self {
            OsNote::StockKernelsOnly => "Only the stock kernels of the distribution's minor release or update are supported.",
            OsNote::NoMajorUpgrade => "Upgrading across major versions is not supported: disable replication, upgrade, then enable replication again.",
            OsNote::LisRequired => "Linux Integration Services (LIS) components must be installed for the machine to boot in Azure.",
            OsNote::NoSles11Sp3ToSp4Upgrade => "Upgrading from SP3 to SP4 is not supported: disable replication, upgrade, then enable replication again.",
            OsNote::KernelTable => "Supported kernels are listed per agent version: check the kernel.",
            OsNote::OracleKernels => "Only the Red Hat compatible kernel or the Unbreakable Enterprise Kernel releases 3, 4 and 5.",
            OsNote::VendorEndOfLife => "Vendors may limit support to releases that have not reached end of life.",
            OsNote::Server2016Editions => "Server Core and Server with Desktop Experience are supported; Nano Server is not.",
            OsNote::ServerEditionOnly => "The server edition only.",
        }
    }

    /// The note with this bit value.
    pub fn from_bit(bit: u32) -> Option<OsNote> {
        OsNote::ALL.iter().copied().find(|n| *n as u32 == bit)
    }
}

/// One row of the operating system table.
#[non_exhaustive]
#[derive(Debug, PartialEq, Eq)]
pub struct OsRow {
    /// Windows or Linux.
    pub family: OsFamily,
    /// The product name (`"Windows Server 2016"`, `"Red Hat Enterprise Linux"`).
    pub product: &'static str,
    /// The first version of the row.
    pub first: OsVersion,
    /// The last version of the row (a minor of `u16::MAX` means any).
    pub last: OsVersion,
    /// The architectures the row allows.
    pub arches: &'static [Arch],
    /// The first agent version that supports the row, if not every one.
    pub since: Option<AgentVersion>,
    /// Replication, migration only, or not supported.
    pub scope: OsScope,
    /// The distribution, for Linux rows.
    pub distro: Option<Distro>,
    /// Notes that qualify the answer.
    pub notes: &'static [OsNote],
}

impl OsRow {
    /// Whether `v` lies in the row's versions.
    pub fn contains(&self, v: OsVersion) -> bool {
        self.first <= v && v <= self.last
    }
}

/// Every row of the operating system table.
pub fn os_table() -> &'static [OsRow] {
    OS_ROWS
}

/// Why an operating system is not supported.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OsRejection {
    /// The product is known but this version is not listed.
    VersionNotListed,
    /// The table lists this version as not supported.
    Unsupported,
    /// The architecture is not allowed (Linux and most Windows versions need 64-bit).
    Architecture,
    /// Supported from this agent version on.
    NeedsAgent(AgentVersion),
}

/// The verdict of [`check_os`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OsVerdict {
    /// Supported for replication.
    Supported,
    /// Supported for migration only.
    MigrationOnly,
    /// Not supported, and why.
    NotSupported(OsRejection),
}

/// The answer to [`check_os`].
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct OsSupport {
    /// The verdict.
    pub verdict: OsVerdict,
    /// The table row that answered, if the version is listed.
    pub row: Option<&'static OsRow>,
    /// The notes that qualify the answer.
    pub notes: &'static [OsNote],
}

impl OsSupport {
    /// The notes as a bit mask (the values of [`OsNote`]).
    pub fn notes_mask(&self) -> u32 {
        self.notes.iter().fold(0, |m, n| m | *n as u32)
    }
}

fn normalize(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

/// The canonical product name for `name` (case and spacing ignored, short names accepted).
pub(crate) fn canonical_product(name: &str) -> Option<&'static str> {
    let n = normalize(name);
    if let Some((_, p)) = OS_ALIASES.iter().find(|(a, _)| normalize(a) == n) {
        return Some(p);
    }
    OS_ROWS
        .iter()
        .map(|r| r.product)
        .find(|p| normalize(p) == n)
}

/// Is `product` `version` on `arch` supported by agent `agent`?
///
/// `product` is a name from the table (`"Windows Server 2016"`, `"Windows 7"`, `"CentOS"`,
/// `"SUSE Linux Enterprise Server"`) or a short name (`"RHEL"`, `"SLES"`, `"OL"`), in any
/// case. `version` is parsed by [`OsVersion`]: `"7.6"`, `"16.04"`, `"12 SP3"`, `"SP1"`, `""`.
///
/// ```
/// use blockdelta::support::{check_os, AgentVersion, Arch, OsRejection, OsVerdict};
/// let v = AgentVersion::new(9, 23);
/// let r = check_os("Windows 10", "", Arch::X86_64, v)?;
/// assert_eq!(r.verdict, OsVerdict::NotSupported(OsRejection::NeedsAgent(AgentVersion::new(9, 24))));
/// let r = check_os("Windows Server 2008", "SP2", Arch::X86, v)?;
/// assert_eq!(r.verdict, OsVerdict::MigrationOnly);
/// # Ok::<(), blockdelta::support::SupportError>(())
/// ```
pub fn check_os(
    product: &str,
    version: &str,
    arch: Arch,
    agent: AgentVersion,
) -> Result<OsSupport, SupportError> {
    let canonical =
        canonical_product(product).ok_or_else(|| SupportError::UnknownOperatingSystem {
            input: product.to_owned(),
        })?;
    let v: OsVersion = version.parse()?;
    let Some(row) = OS_ROWS
        .iter()
        .find(|r| r.product == canonical && r.contains(v))
    else {
        return Ok(OsSupport {
            verdict: OsVerdict::NotSupported(OsRejection::VersionNotListed),
            row: None,
            notes: &[],
        });
    };
    let verdict = if row.scope == OsScope::NotSupported {
        OsVerdict::NotSupported(OsRejection::Unsupported)
    } else if let Some(since) = row.since.filter(|s| agent < *s) {
        OsVerdict::NotSupported(OsRejection::NeedsAgent(since))
    } else if !row.arches.contains(&arch) {
        OsVerdict::NotSupported(OsRejection::Architecture)
    } else if row.scope == OsScope::MigrationOnly {
        OsVerdict::MigrationOnly
    } else {
        OsVerdict::Supported
    };
    Ok(OsSupport {
        verdict,
        row: Some(row),
        notes: row.notes,
    })
}

/// How the operating system of a protected machine may be upgraded: the answer of
/// [`check_os_upgrade`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OsUpgrade {
    /// Upgrade while replication goes on: the matrix allows this upgrade and the agent supports
    /// the new version.
    InPlace,
    /// Disable replication, upgrade, then enable replication again. The note is the rule that
    /// forbids the upgrade in place ([`OsNote::NoMajorUpgrade`] or
    /// [`OsNote::NoSles11Sp3ToSp4Upgrade`]).
    Reprotect(OsNote),
    /// The new version is supported for migration only: replication cannot go on after it.
    TargetMigrationOnly,
    /// The agent does not support the new version at all.
    TargetNotSupported(OsRejection),
    /// The matrix states upgrade rules for Linux distributions only; for this product it says
    /// nothing, and the new version itself is supported.
    NotStated,
}

/// Can a protected machine running `product` `from` be upgraded to `to` with agent `agent`
/// without disabling replication? Versions are as for [`check_os`]. `InvalidDescription` when
/// `to` is earlier than `from` (a point release such as 16.04.5 to 16.04.6 parses as the same
/// version and is an upgrade within it), or when the agent does not support `from` at all (the
/// machine cannot be protected now).
///
/// The rules are the matrix's: upgrades across major versions of a Linux distribution are not
/// supported in place, nor is SLES 11 SP3 to SP4 (nor any SLES 11 upgrade that crosses it); and
/// the new version must itself be supported.
///
/// ```
/// use blockdelta::support::{check_os_upgrade, AgentVersion, Arch, OsNote, OsUpgrade};
/// let v = AgentVersion::new(9, 24);
/// assert_eq!(check_os_upgrade("CentOS", "7.4", "7.6", Arch::X86_64, v)?, OsUpgrade::InPlace);
/// assert_eq!(
///     check_os_upgrade("CentOS", "6.10", "7.6", Arch::X86_64, v)?,
///     OsUpgrade::Reprotect(OsNote::NoMajorUpgrade)
/// );
/// # Ok::<(), blockdelta::support::SupportError>(())
/// ```
pub fn check_os_upgrade(
    product: &str,
    from: &str,
    to: &str,
    arch: Arch,
    agent: AgentVersion,
) -> Result<OsUpgrade, SupportError> {
    let named = |version: &str| format!("{product} {version}").trim_end().to_owned();
    let source = check_os(product, from, arch, agent)?;
    if let OsVerdict::NotSupported(why) = source.verdict {
        let why = match why {
            OsRejection::VersionNotListed => "the version is not listed".to_owned(),
            OsRejection::Architecture => format!("not on {}-bit", arch.bits()),
            OsRejection::NeedsAgent(v) => format!("it needs agent {v}"),
            _ => "listed as not supported".to_owned(),
        };
        return Err(SupportError::InvalidDescription {
            reason: format!(
                "{} is not supported by agent {agent} ({why}): a machine running it cannot be \
                 protected, so there is no replication to keep through an upgrade",
                named(from)
            ),
        });
    }
    let (f, t): (OsVersion, OsVersion) = (from.parse()?, to.parse()?);
    if t < f {
        return Err(SupportError::InvalidDescription {
            reason: format!(
                "{} is earlier than {}: not an upgrade",
                named(to),
                named(from)
            ),
        });
    }
    let target = check_os(product, to, arch, agent)?;
    let notes = match target.verdict {
        OsVerdict::NotSupported(why) => return Ok(OsUpgrade::TargetNotSupported(why)),
        OsVerdict::MigrationOnly => return Ok(OsUpgrade::TargetMigrationOnly),
        _ => target.notes,
    };
    let sp3_to_sp4 = f.major == 11 && t.major == 11 && f.service_pack <= 3 && t.service_pack >= 4;
    Ok(if !notes.contains(&OsNote::NoMajorUpgrade) {
        OsUpgrade::NotStated
    } else if f.major != t.major {
        OsUpgrade::Reprotect(OsNote::NoMajorUpgrade)
    } else if sp3_to_sp4 && notes.contains(&OsNote::NoSles11Sp3ToSp4Upgrade) {
        OsUpgrade::Reprotect(OsNote::NoSles11Sp3ToSp4Upgrade)
    } else {
        OsUpgrade::InPlace
    })
}

/// Is this vCenter Server / vSphere version (`"6.7"`, `"6.5.0"`) a supported VMware host?
///
/// ```
/// assert!(blockdelta::support::check_vmware_host("6.7")?);
/// assert!(!blockdelta::support::check_vmware_host("7.0")?);
/// # Ok::<(), blockdelta::support::SupportError>(())
/// ```
pub fn check_vmware_host(version: &str) -> Result<bool, SupportError> {
    let v: OsVersion = version.parse()?;
    if v.service_pack != 0 || (v.major == 0 && v.minor == 0) {
        return Err(SupportError::InvalidOsVersion {
            input: version.to_owned(),
        });
    }
    Ok(VMWARE_HOSTS.contains(&(v.major, v.minor)))
}
