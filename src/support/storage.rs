//! Linux file systems, by agent version.

use super::data::limits::FILE_SYSTEMS;
use super::AgentVersion;

/// Properties of a file system that change the answer. A bit set; combine with `|`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FsTraits(pub u32);

impl FsTraits {
    /// No special properties.
    pub const NONE: FsTraits = FsTraits(0);
    /// XFS with v5 features in use (`xfs_info` shows `ftype=1`).
    pub const XFS_V5: FsTraits = FsTraits(1);
    /// A BTRFS sub-volume was changed after protection was enabled.
    pub const BTRFS_SUBVOLUME_CHANGED: FsTraits = FsTraits(2);
    /// The BTRFS file system spans more than one disk.
    pub const BTRFS_MULTI_DISK: FsTraits = FsTraits(4);
    /// The BTRFS file system uses RAID.
    pub const BTRFS_RAID: FsTraits = FsTraits(8);
    /// Every defined bit.
    pub const ALL: FsTraits = FsTraits(15);

    /// Whether every bit of `other` is set in `self`.
    pub fn contains(self, other: FsTraits) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for FsTraits {
    type Output = FsTraits;
    fn bitor(self, rhs: FsTraits) -> FsTraits {
        FsTraits(self.0 | rhs.0)
    }
}

/// One file system row.
#[non_exhaustive]
#[derive(Debug, PartialEq, Eq)]
pub struct FsRule {
    /// The name (`"ext4"`).
    pub name: &'static str,
    /// The first agent version that supports it, if not every one.
    pub since: Option<AgentVersion>,
    /// Traits that need a newer agent than the file system itself, with that version.
    pub trait_since: &'static [(FsTraits, AgentVersion)],
    /// Traits that make it unsupported.
    pub unsupported: FsTraits,
}

/// Every file system row.
pub fn filesystem_table() -> &'static [FsRule] {
    FILE_SYSTEMS
}

/// Why a file system is not supported.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsRejection {
    /// Not in the table.
    NotListed,
    /// Supported (or this trait is) from this agent version on.
    NeedsAgent(AgentVersion),
    /// These traits are not supported.
    Traits(FsTraits),
}

/// Is `name` (with `traits`) supported by agent `agent`? `Ok(())` if it is.
///
/// ```
/// use blockdelta::support::{check_filesystem, AgentVersion, FsRejection, FsTraits};
/// let v = AgentVersion::new(9, 21);
/// assert_eq!(check_filesystem("ext4", FsTraits::NONE, v), Ok(()));
/// assert_eq!(check_filesystem("btrfs", FsTraits::NONE, v), Err(FsRejection::NeedsAgent(AgentVersion::new(9, 22))));
/// ```
pub fn check_filesystem(
    name: &str,
    traits: FsTraits,
    agent: AgentVersion,
) -> Result<(), FsRejection> {
    let rule = FILE_SYSTEMS
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(name.trim()))
        .ok_or(FsRejection::NotListed)?;
    if let Some(since) = rule.since.filter(|s| agent < *s) {
        return Err(FsRejection::NeedsAgent(since));
    }
    for (t, since) in rule.trait_since {
        if traits.contains(*t) && agent < *since {
            return Err(FsRejection::NeedsAgent(*since));
        }
    }
    let bad = FsTraits(traits.0 & rule.unsupported.0);
    if bad.0 != 0 {
        return Err(FsRejection::Traits(bad));
    }
    Ok(())
}
