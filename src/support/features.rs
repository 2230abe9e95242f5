//! Storage, network and Azure-side features, looked up by key.

use super::data::features::FEATURES;
use super::SupportError;

/// The kind of machine a feature answer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Machine {
    /// A VMware virtual machine.
    VmwareVm,
    /// A physical server.
    PhysicalServer,
}

/// Whether a feature is supported.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Support {
    /// Not supported.
    No = 0,
    /// Supported.
    Yes = 1,
    /// Supported under the conditions in the feature's note.
    Conditional = 2,
    /// Does not apply to this kind of machine.
    NotApplicable = 3,
}

/// Where a feature lives.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Area {
    /// The host's or guest's network.
    Network = 1,
    /// The Azure VM's network after failover.
    AzureNetwork = 2,
    /// Host and guest storage.
    Storage = 3,
    /// Linux guest storage devices.
    LinuxStorage = 4,
    /// Disk management on a replicated VM.
    DiskManagement = 5,
    /// Replication channels.
    ReplicationChannel = 6,
    /// Azure storage accounts.
    AzureStorage = 7,
    /// Azure compute.
    AzureCompute = 8,
    /// Vault operations.
    Vault = 9,
}

/// One feature of the matrix.
#[non_exhaustive]
#[derive(Debug, PartialEq, Eq)]
pub struct Feature {
    /// The stable key (`"host_nic_teaming"`).
    pub key: &'static str,
    /// Where it lives.
    pub area: Area,
    /// The answer for VMware VMs.
    pub vmware: Support,
    /// The answer for physical servers.
    pub physical: Support,
    /// Conditions and details (may be empty).
    pub note: &'static str,
}

impl Feature {
    /// The answer for `machine`.
    pub fn support(&self, machine: Machine) -> Support {
        match machine {
            Machine::VmwareVm => self.vmware,
            Machine::PhysicalServer => self.physical,
        }
    }
}

/// Every feature.
pub fn features() -> &'static [Feature] {
    FEATURES
}

/// The feature with this key (case-insensitive; `-` and `_` are the same).
///
/// ```
/// use blockdelta::support::{feature, Machine, Support};
/// let f = feature("host_nic_teaming")?;
/// assert_eq!(f.support(Machine::VmwareVm), Support::Yes);
/// assert_eq!(f.support(Machine::PhysicalServer), Support::No);
/// assert!(feature("time_travel").is_err());
/// # Ok::<(), blockdelta::support::SupportError>(())
/// ```
pub fn feature(key: &str) -> Result<&'static Feature, SupportError> {
    let k = key.trim().to_ascii_lowercase().replace('-', "_");
    FEATURES
        .iter()
        .find(|f| f.key == k)
        .ok_or_else(|| SupportError::UnknownFeature {
            input: key.to_owned(),
        })
}
