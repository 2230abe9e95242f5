//! Agent (Mobility service) versions.

use std::fmt;
use std::str::FromStr;

use super::SupportError;

/// A Mobility service (agent) version: `9.24`. Ordered numerically (`9.2 < 9.10 < 9.24`).
///
/// Build and revision numbers (`9.24.5190.1`) are accepted by [`FromStr`] and ignored: the
/// support matrix is stated per `major.minor`.
///
/// ```
/// use blockdelta::support::AgentVersion;
/// let v: AgentVersion = "9.24.5190.1".parse()?;
/// assert_eq!(v, AgentVersion::new(9, 24));
/// assert!(AgentVersion::new(9, 9) < AgentVersion::new(9, 10));
/// # Ok::<(), blockdelta::support::SupportError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentVersion {
    major: u16,
    minor: u16,
}

impl AgentVersion {
    /// The version `major.minor`.
    pub const fn new(major: u16, minor: u16) -> Self {
        AgentVersion { major, minor }
    }

    /// The major number (`9` in `9.24`).
    pub const fn major(self) -> u16 {
        self.major
    }

    /// The minor number (`24` in `9.24`).
    pub const fn minor(self) -> u16 {
        self.minor
    }
}

impl fmt::Display for AgentVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for AgentVersion {
    type Err = SupportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SupportError::InvalidAgentVersion {
            input: s.to_owned(),
        };
        let parts: Vec<&str> = s.split('.').collect();
        if !(2..=4).contains(&parts.len()) {
            return Err(bad());
        }
        let mut nums = [0u16; 4];
        for (n, p) in nums.iter_mut().zip(&parts) {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            // Build numbers (the third part) exceed u16; only their form matters.
            *n = p.parse::<u32>().map_err(|_| bad())?.min(u16::MAX as u32) as u16;
        }
        if parts[0].len() > 4 || parts[1].len() > 4 {
            return Err(bad());
        }
        Ok(AgentVersion::new(nums[0], nums[1]))
    }
}
