//! Kernel versions, and the question "does this agent support this kernel".
//!
//! A kernel version string (`uname -r`) is parsed into a base version, a release made of
//! numbers and markers, and a flavour:
//!
//! | string                    | base      | release        | flavour   |
//! |---------------------------|-----------|----------------|-----------|
//! | `4.4.0-143-generic`       | 4.4.0     | 143            | generic   |
//! | `4.15.0-1040-azure`       | 4.15.0    | 1040           | azure     |
//! | `4.9.0-0.bpo.8-amd64`     | 4.9.0     | 0 . bpo . 8    | amd64     |
//! | `4.12.14-95.6-default`    | 4.12.14   | 95 . 6         | default   |
//!
//! Two versions are comparable only when they have the same flavour and the same markers at
//! the same places (a Debian backport `0.bpo.N` never compares with a plain ABI number, and a
//! `-generic` kernel never falls into an `-azure` range). Comparable versions order by base,
//! then release, number by number (a shorter release that is a prefix of a longer one is lower).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use super::data::{agents::AGENT_VERSIONS, kernels::KERNEL_ROWS};
use super::{AgentVersion, SupportError};

/// One part of a kernel release: a number or a marker such as `bpo`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Part {
    Num(u64),
    Tag(String),
}

/// A parsed kernel version (see the module documentation for the grammar).
///
/// ```
/// use blockdelta::support::KernelVersion;
/// let a: KernelVersion = "4.4.0-142-generic".parse()?;
/// let b: KernelVersion = "4.4.0-143-generic".parse()?;
/// let azure: KernelVersion = "4.15.0-1040-azure".parse()?;
/// assert!(a < b);
/// assert_eq!(a.partial_cmp(&azure), None); // different flavours never compare
/// assert!("hello".parse::<KernelVersion>().is_err());
/// # Ok::<(), blockdelta::support::SupportError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KernelVersion {
    base: Vec<u32>,
    release: Vec<Part>,
    flavour: String,
}

impl KernelVersion {
    /// The base (upstream) version numbers: `[4, 4, 0]` for `4.4.0-143-generic`.
    pub fn base(&self) -> &[u32] {
        &self.base
    }

    /// The flavour: `generic`, `azure`, `amd64`, `default` ...
    pub fn flavour(&self) -> &str {
        &self.flavour
    }

    /// The numbers of the release, markers left out: `[143]`, `[0, 8]` for `0.bpo.8`,
    /// `[95, 6]` for `95.6`.
    pub fn release_numbers(&self) -> Vec<u64> {
        self.release
            .iter()
            .filter_map(|p| match p {
                Part::Num(n) => Some(*n),
                Part::Tag(_) => None,
            })
            .collect()
    }

    /// True for a Debian backport kernel (`...-0.bpo.N-...`).
    pub fn is_backport(&self) -> bool {
        self.release
            .iter()
            .any(|p| matches!(p, Part::Tag(t) if t == "bpo"))
    }

    /// Whether `self` and `other` can be ordered: same flavour, same markers in the same places.
    pub fn is_comparable(&self, other: &KernelVersion) -> bool {
        if self.flavour != other.flavour {
            return false;
        }
        let tags = |v: &KernelVersion| -> Vec<(usize, String)> {
            v.release
                .iter()
                .enumerate()
                .filter_map(|(i, p)| match p {
                    Part::Tag(t) => Some((i, t.clone())),
                    Part::Num(_) => None,
                })
                .collect()
        };
        tags(self) == tags(other)
    }

    fn parse(s: &str) -> Result<Self, &'static str> {
        if s.is_empty() {
            return Err("the string is empty");
        }
        if s.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err("it contains white space");
        }
        let (base, rest) = s.split_once('-').ok_or(
            "expected <base>-<release>-<flavour>, e.g. 4.4.0-143-generic; there is no '-'",
        )?;
        let (release, flavour) = rest.split_once('-').ok_or(
            "there is no flavour after the release (e.g. -generic, -azure, -amd64, -default)",
        )?;
        let base_parts: Vec<&str> = base.split('.').collect();
        if !(2..=4).contains(&base_parts.len()) {
            return Err("the base version must be 2 to 4 dot-separated numbers");
        }
        let mut base_nums = Vec::with_capacity(base_parts.len());
        for p in base_parts {
            base_nums
                .push(number(p).ok_or("the base version must be 2 to 4 dot-separated numbers")?);
        }
        let mut parts = Vec::new();
        for p in release.split('.') {
            if let Some(n) = number(p) {
                parts.push(Part::Num(n));
            } else if !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()) {
                parts.push(Part::Tag(p.to_owned()));
            } else {
                return Err("the release must be dot-separated numbers or lower-case markers (e.g. 143, 0.bpo.8, 95.6)");
            }
        }
        if !matches!(parts.first(), Some(Part::Num(_))) {
            return Err("the release must start with a number");
        }
        let fb = flavour.as_bytes();
        let flavour_ok = fb.first().is_some_and(u8::is_ascii_alphabetic)
            && fb.last().is_some_and(u8::is_ascii_alphanumeric)
            && fb
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
        if !flavour_ok {
            return Err("the flavour must be letters, digits, '-' or '_', starting with a letter");
        }
        Ok(KernelVersion {
            base: base_nums.into_iter().map(|n| n as u32).collect(),
            release: parts,
            flavour: flavour.to_owned(),
        })
    }
}

fn number(p: &str) -> Option<u64> {
    if p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

impl FromStr for KernelVersion {
    type Err = SupportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KernelVersion::parse(s).map_err(|reason| SupportError::InvalidKernelVersion {
            input: s.to_owned(),
            reason,
        })
    }
}

impl PartialOrd for KernelVersion {
    /// `None` when the versions are not comparable (see [`KernelVersion::is_comparable`]).
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        if !self.is_comparable(other) {
            return None;
        }
        let release_cmp = || {
            for (a, b) in self.release.iter().zip(&other.release) {
                let o = match (a, b) {
                    (Part::Num(a), Part::Num(b)) => a.cmp(b),
                    _ => Ordering::Equal, // equal markers, checked above
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            self.release.len().cmp(&other.release.len())
        };
        Some(self.base.cmp(&other.base).then_with(release_cmp))
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base: Vec<String> = self.base.iter().map(u32::to_string).collect();
        let release: Vec<String> = self
            .release
            .iter()
            .map(|p| match p {
                Part::Num(n) => n.to_string(),
                Part::Tag(t) => t.clone(),
            })
            .collect();
        write!(
            f,
            "{}-{}-{}",
            base.join("."),
            release.join("."),
            self.flavour
        )
    }
}

/// A Linux distribution of the support matrix.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Distro {
    /// Ubuntu (kernel table).
    Ubuntu,
    /// Debian (kernel table).
    Debian,
    /// SUSE Linux Enterprise Server (kernel table for release 12).
    Sles,
    /// Red Hat Enterprise Linux (stock kernels, no table).
    Rhel,
    /// CentOS (stock kernels, no table).
    CentOs,
    /// Oracle Linux (Red Hat compatible kernel or UEK3/4/5, no table).
    OracleLinux,
}

impl Distro {
    /// Every distribution, in a stable order.
    pub const ALL: &'static [Distro] = &[
        Distro::Ubuntu,
        Distro::Debian,
        Distro::Sles,
        Distro::Rhel,
        Distro::CentOs,
        Distro::OracleLinux,
    ];

    /// The distribution's name as the operating system table spells it.
    pub fn name(self) -> &'static str {
        match self {
            Distro::Ubuntu => "Ubuntu",
            Distro::Debian => "Debian",
            Distro::Sles => "SUSE Linux Enterprise Server",
            Distro::Rhel => "Red Hat Enterprise Linux",
            Distro::CentOs => "CentOS",
            Distro::OracleLinux => "Oracle Linux",
        }
    }
}

impl fmt::Display for Distro {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Distro {
    type Err = SupportError;

    /// Accepts the full name or a common short name, in any case: `ubuntu`, `debian`,
    /// `sles`/`suse`, `rhel`/`redhat`, `centos`, `oracle`/`ol`/`oraclelinux`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key: String = s
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-' && *c != '_')
            .collect();
        let d = match key.to_ascii_lowercase().as_str() {
            "ubuntu" => Distro::Ubuntu,
            "debian" => Distro::Debian,
            "sles" | "suse" | "suselinuxenterpriseserver" => Distro::Sles,
            "rhel" | "redhat" | "redhatenterpriselinux" => Distro::Rhel,
            "centos" => Distro::CentOs,
            "oracle" | "ol" | "oraclelinux" => Distro::OracleLinux,
            _ => {
                return Err(SupportError::UnknownDistribution {
                    input: s.to_owned(),
                })
            }
        };
        Ok(d)
    }
}

/// One range of supported kernels in a [`KernelRow`], both ends included.
#[non_exhaustive]
#[derive(Debug, PartialEq, Eq)]
pub struct KernelRange {
    /// The service pack the range belongs to (SUSE), 0 where the distribution has none.
    pub service_pack: u8,
    /// True for a SUSE long-term service pack support (LTSS) range.
    pub ltss: bool,
    /// The first supported kernel.
    pub first: &'static str,
    /// The last supported kernel.
    pub last: &'static str,
}

impl KernelRange {
    pub(crate) const fn new(first: &'static str, last: &'static str) -> Self {
        KernelRange {
            service_pack: 0,
            ltss: false,
            first,
            last,
        }
    }

    pub(crate) const fn sp(
        service_pack: u8,
        ltss: bool,
        first: &'static str,
        last: &'static str,
    ) -> Self {
        KernelRange {
            service_pack,
            ltss,
            first,
            last,
        }
    }

    /// Whether `kernel` lies in this range (ends included, same flavour and markers).
    pub fn contains(&self, kernel: &KernelVersion) -> bool {
        let (Ok(first), Ok(last)) = (
            self.first.parse::<KernelVersion>(),
            self.last.parse::<KernelVersion>(),
        ) else {
            return false;
        };
        matches!(
            first.partial_cmp(kernel),
            Some(Ordering::Less | Ordering::Equal)
        ) && matches!(
            kernel.partial_cmp(&last),
            Some(Ordering::Less | Ordering::Equal)
        )
    }

    /// A label for the range's service pack: `""`, `"SP3"`, `"SP2 (LTSS)"`.
    pub fn variant(&self) -> String {
        match (self.service_pack, self.ltss) {
            (0, _) => String::new(),
            (sp, false) => format!("SP{sp}"),
            (sp, true) => format!("SP{sp} (LTSS)"),
        }
    }
}

/// One row of the kernel tables: the kernels an agent version supports on one release.
#[non_exhaustive]
#[derive(Debug, PartialEq, Eq)]
pub struct KernelRow {
    /// The distribution.
    pub distro: Distro,
    /// The release (`"16.04"`, `"8"`, `"12"`).
    pub release: &'static str,
    /// The agent versions this row applies to.
    pub agents: &'static [AgentVersion],
    /// The supported kernel ranges.
    pub ranges: &'static [KernelRange],
}

/// Every row of the kernel tables (after the corrections in `docs/SUPPORT.md`, "Errata").
pub fn kernel_table() -> &'static [KernelRow] {
    KERNEL_ROWS
}

/// The agent versions the kernel tables cover, oldest first.
pub fn agent_versions() -> &'static [AgentVersion] {
    AGENT_VERSIONS
}

/// Where a kernel was found: the agent version, the table row and the range.
#[derive(Clone, Copy, Debug)]
pub struct KernelMatch {
    /// The agent version of the match.
    pub agent: AgentVersion,
    /// The table row.
    pub row: &'static KernelRow,
    /// The range that contains the kernel.
    pub range: &'static KernelRange,
}

/// The answer to [`check_kernel`].
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct KernelSupport {
    /// The parsed kernel.
    pub kernel: KernelVersion,
    /// The agent version asked about.
    pub agent: AgentVersion,
    /// Whether the tables have a row for this release at this agent version at all.
    pub release_listed: bool,
    /// The range that supports the kernel at the asked agent version, if any.
    pub matched: Option<KernelMatch>,
    /// When `matched` is `None`: the nearest agent version that supports the kernel, newer
    /// versions first (the closest newer one), then older ones (the closest older one).
    pub nearest: Option<KernelMatch>,
}

impl KernelSupport {
    /// Whether the asked agent version supports the kernel.
    pub fn is_supported(&self) -> bool {
        self.matched.is_some()
    }
}

/// A release as asked: its numbers and, for SUSE, a service pack.
struct ReleaseQuery {
    numbers: Vec<u32>,
    service_pack: Option<u8>,
}

fn parse_release(s: &str) -> Option<ReleaseQuery> {
    let mut t = s.trim().to_ascii_uppercase();
    if let Some(x) = t.strip_suffix("LTS") {
        t = x.trim_end().to_owned();
    }
    let (nums, sp) = match t.find("SP") {
        Some(i) => {
            let sp: u8 = t[i + 2..].trim().parse().ok()?;
            (
                t[..i].trim().trim_end_matches(['-', ' ']).to_owned(),
                Some(sp),
            )
        }
        None => (t, None),
    };
    let mut numbers = Vec::new();
    for p in nums.split('.') {
        if p.is_empty() || p.len() > 4 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        numbers.push(p.parse().ok()?);
    }
    Some(ReleaseQuery {
        numbers,
        service_pack: sp,
    })
}

fn release_matches(row: &KernelRow, q: &ReleaseQuery) -> bool {
    match parse_release(row.release) {
        Some(r) => {
            q.numbers.len() >= r.numbers.len() && q.numbers[..r.numbers.len()] == r.numbers[..]
        }
        None => false,
    }
}

fn find_in(
    distro: Distro,
    release: &ReleaseQuery,
    agent: AgentVersion,
    kernel: &KernelVersion,
) -> (bool, Option<KernelMatch>) {
    let mut listed = false;
    let mut found: Option<KernelMatch> = None;
    for row in KERNEL_ROWS {
        if row.distro != distro || !row.agents.contains(&agent) || !release_matches(row, release) {
            continue;
        }
        listed = true;
        for range in row.ranges {
            if release
                .service_pack
                .is_some_and(|sp| range.service_pack != 0 && range.service_pack != sp)
            {
                continue;
            }
            if !range.contains(kernel) {
                continue;
            }
            // E12: overlapping ranges (SUSE service packs asked without one) prefer the range
            // whose ends share the kernel's release stream (the first release number).
            if same_stream(range, kernel) {
                return (true, Some(KernelMatch { agent, row, range }));
            }
            found = found.or(Some(KernelMatch { agent, row, range }));
        }
    }
    (listed, found)
}

fn same_stream(range: &KernelRange, kernel: &KernelVersion) -> bool {
    let first = |s: &str| {
        s.parse::<KernelVersion>()
            .ok()
            .and_then(|k| k.release_numbers().first().copied())
    };
    let k = kernel.release_numbers().first().copied();
    first(range.first) == k || first(range.last) == k
}

/// Does `agent` support `kernel` on `distro` `release`?
///
/// `release` is the distribution's release (`"16.04"`, `"16.04 LTS"`, `"8"`, `"12"`,
/// `"12 SP4"`); point releases (`"16.04.6"`) are accepted. For SUSE, a service pack narrows
/// the search to that service pack's ranges; without one, the kernel's service pack is found
/// from the ranges. When the asked version does not support the kernel, the answer carries the
/// nearest agent version that does.
///
/// ```
/// use blockdelta::support::{check_kernel, AgentVersion, Distro};
/// let r = check_kernel(Distro::Ubuntu, "16.04", "4.4.0-143-generic", AgentVersion::new(9, 23))?;
/// assert!(!r.is_supported());
/// assert_eq!(r.nearest.unwrap().agent, AgentVersion::new(9, 24));
/// let r = check_kernel(Distro::Sles, "12", "4.12.14-95.6-default", AgentVersion::new(9, 24))?;
/// assert_eq!(r.matched.unwrap().range.service_pack, 4);
/// # Ok::<(), blockdelta::support::SupportError>(())
/// ```
pub fn check_kernel(
    distro: Distro,
    release: &str,
    kernel: &str,
    agent: AgentVersion,
) -> Result<KernelSupport, SupportError> {
    let kernel: KernelVersion = kernel.parse()?;
    if !KERNEL_ROWS.iter().any(|r| r.distro == distro) {
        return Err(SupportError::NoKernelTable { distro });
    }
    let unknown_release = || SupportError::UnknownRelease {
        distro,
        release: release.to_owned(),
    };
    let query = parse_release(release).ok_or_else(unknown_release)?;
    if !KERNEL_ROWS
        .iter()
        .any(|r| r.distro == distro && release_matches(r, &query))
    {
        return Err(unknown_release());
    }
    let Some(pos) = AGENT_VERSIONS.iter().position(|a| *a == agent) else {
        return Err(SupportError::UnknownAgentVersion {
            agent,
            oldest: AGENT_VERSIONS[0],
            newest: AGENT_VERSIONS[AGENT_VERSIONS.len() - 1],
        });
    };
    let (release_listed, matched) = find_in(distro, &query, agent, &kernel);
    let nearest = if matched.is_some() {
        None
    } else {
        let newer = AGENT_VERSIONS[pos + 1..].iter();
        let older = AGENT_VERSIONS[..pos].iter().rev();
        newer
            .chain(older)
            .find_map(|a| find_in(distro, &query, *a, &kernel).1)
    };
    Ok(KernelSupport {
        kernel,
        agent,
        release_listed,
        matched,
        nearest,
    })
}
