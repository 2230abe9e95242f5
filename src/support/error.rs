//! The support module's one error type.

use std::fmt;

use super::{AgentVersion, Distro};

/// Why a support-matrix query could not be answered.
///
/// These are errors in the question (a string that is not a kernel version, a distribution the
/// matrix does not know), never the answer "not supported": that is a verdict, not an error.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SupportError {
    /// The string is not a kernel version (`reason` says which part is wrong).
    InvalidKernelVersion {
        /// The string as given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The string is not an agent version such as `9.24`.
    InvalidAgentVersion {
        /// The string as given.
        input: String,
    },
    /// The agent version is well formed but the kernel tables have no data for it.
    UnknownAgentVersion {
        /// The version asked for.
        agent: AgentVersion,
        /// The oldest version the tables know.
        oldest: AgentVersion,
        /// The newest version the tables know.
        newest: AgentVersion,
    },
    /// The distribution name is not one the matrix knows.
    UnknownDistribution {
        /// The name as given.
        input: String,
    },
    /// The distribution has no release of that name in the kernel tables.
    UnknownRelease {
        /// The distribution.
        distro: Distro,
        /// The release as given.
        release: String,
    },
    /// The distribution has no kernel table: any stock kernel of a supported release is supported.
    NoKernelTable {
        /// The distribution.
        distro: Distro,
    },
    /// The operating system name is not one the matrix knows.
    UnknownOperatingSystem {
        /// The name as given.
        input: String,
    },
    /// The operating system version string is malformed.
    InvalidOsVersion {
        /// The string as given.
        input: String,
    },
    /// No feature has this key.
    UnknownFeature {
        /// The key as given.
        input: String,
    },
    /// The replication target storage is not one of the churn table's targets.
    UnknownStorageTarget {
        /// The name as given.
        input: String,
    },
    /// A VM, server or deployment description is inconsistent (the message says how).
    InvalidDescription {
        /// What is inconsistent, naming the values.
        reason: String,
    },
}

impl fmt::Display for SupportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SupportError::InvalidKernelVersion { input, reason } => {
                write!(f, "{input:?} is not a kernel version: {reason}")
            }
            SupportError::InvalidAgentVersion { input } => {
                write!(f, "{input:?} is not an agent version (expected <major>.<minor>, e.g. \"9.24\")")
            }
            SupportError::UnknownAgentVersion { agent, oldest, newest } => write!(
                f,
                "agent version {agent} is not in the kernel tables (they cover {oldest} to {newest})"
            ),
            SupportError::UnknownDistribution { input } => {
                write!(f, "{input:?} is not a distribution the support matrix knows")
            }
            SupportError::UnknownRelease { distro, release } => {
                write!(f, "{} has no release {release:?} in the kernel tables", distro.name())
            }
            SupportError::NoKernelTable { distro } => write!(
                f,
                "{} has no kernel table: only the stock kernels of its supported releases are supported",
                distro.name()
            ),
            SupportError::UnknownOperatingSystem { input } => {
                write!(f, "{input:?} is not an operating system the support matrix knows")
            }
            SupportError::InvalidOsVersion { input } => write!(
                f,
                "{input:?} is not an operating system version (expected e.g. \"7.6\", \"16.04\", \"12 SP3\", \"SP1\")"
            ),
            SupportError::UnknownFeature { input } => write!(f, "{input:?} is not a feature key"),
            SupportError::UnknownStorageTarget { input } => write!(
                f,
                "{input:?} is not a replication target storage (expected standard, p10, p15, p20, p30, p40 or p50)"
            ),
            SupportError::InvalidDescription { reason } => write!(f, "invalid description: {reason}"),
        }
    }
}

impl std::error::Error for SupportError {}
