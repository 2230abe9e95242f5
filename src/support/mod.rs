//! The replication support matrix as data, with queries and validators.
//!
//! Before a machine is protected, an agent or a vendor tool asks: is this OS and kernel
//! supported by this agent version ([`check_os`], [`check_kernel`]), are its file systems
//! ([`check_filesystem`]), is a storage or network feature ([`feature`]), does the machine pass
//! the checks that fail a replication ([`validate_vm`]), will a disk's churn fit its target
//! ([`disk_churn_limit`], [`churn_limits`]), does a proposed configuration server qualify
//! ([`validate_config_server`]), and how many process servers a deployment needs ([`plan`]).
//!
//! This module owns the facts (the static tables in `data/`, with every contradiction of the
//! source resolved in `data/errata.rs`) and the queries over them. It never reads files,
//! never touches the network, and never decides support in code: adding an agent version is a
//! change to the tables only. The tables' sizes are binary (1 MB = 2^20 bytes).
//!
//! It speaks Rust (`&str`, slices, `Result`) and never imports `ffi`: the C strings, result codes
//! and error mapping of its C API live in `src/ffi/support/`.

mod churn;
mod config_server;
mod data;
mod error;
mod features;
mod kernel;
mod os;
mod planner;
mod report;
mod storage;
mod version;
mod vm;

pub use churn::{
    churn_limits, churn_table, disk_churn_limit, ChurnLimit, ChurnLimits, TargetStorage,
    SECONDS_PER_DAY,
};
pub use config_server::{
    validate_config_server, ConfigServerReport, ConfigServerRule, ConfigServerSpec,
};
pub use data::errata::Erratum;
pub use error::SupportError;
pub use features::{feature, features, Area, Feature, Machine, Support};
pub use kernel::{
    agent_versions, check_kernel, kernel_table, Distro, KernelMatch, KernelRange, KernelRow,
    KernelSupport, KernelVersion,
};
pub use os::{
    check_os, check_os_upgrade, check_vmware_host, os_table, Arch, OsFamily, OsNote, OsRejection,
    OsRow, OsScope, OsSupport, OsUpgrade, OsVerdict, OsVersion,
};
pub use planner::{plan, DiskAssessment, DiskLoad, Plan, VmAssessment};
pub use report::{Failure, Report, Unit};
pub use storage::{check_filesystem, filesystem_table, FsRejection, FsRule, FsTraits};
pub use version::AgentVersion;
pub use vm::{
    validate_vm, DiskKind, Firmware, LinuxGuest, LinuxVolume, Purpose, VmDescription, VmDisk,
    VmReport, VmRule, WindowsVolume,
};

/// Every contradiction or ambiguity of the source, with the resolution the tables use.
pub fn errata() -> &'static [Erratum] {
    data::errata::ERRATA
}

/// The Rust examples of `docs/SUPPORT.md` (the README section) are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/SUPPORT.md")]
struct SupportDocExamples;
