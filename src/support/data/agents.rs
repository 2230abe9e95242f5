//! The agent (Mobility service) versions the kernel tables cover.

use crate::support::AgentVersion;

pub(crate) const A9_10: AgentVersion = AgentVersion::new(9, 10);
pub(crate) const A9_13: AgentVersion = AgentVersion::new(9, 13);
pub(crate) const A9_14: AgentVersion = AgentVersion::new(9, 14);
pub(crate) const A9_20: AgentVersion = AgentVersion::new(9, 20);
pub(crate) const A9_21: AgentVersion = AgentVersion::new(9, 21);
pub(crate) const A9_22: AgentVersion = AgentVersion::new(9, 22);
pub(crate) const A9_23: AgentVersion = AgentVersion::new(9, 23);
pub(crate) const A9_24: AgentVersion = AgentVersion::new(9, 24);

/// Oldest first. Kernel queries accept exactly these versions; a new version goes at the end.
pub(crate) const AGENT_VERSIONS: &[AgentVersion] = &[A9_20, A9_21, A9_22, A9_23, A9_24];
