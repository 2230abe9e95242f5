//! The kernel tables: per distribution release and agent version, the supported kernel ranges
//! (both ends included). Newest agent first within a release, as in the source.

use super::agents::{A9_20, A9_21, A9_22, A9_23, A9_24};
use super::errata;
use crate::support::kernel::{KernelRange as R, KernelRow};
use crate::support::Distro;

/// The Debian rows cover these agents unchanged.
const DEBIAN_AGENTS: &[crate::support::AgentVersion] = &[A9_21, A9_22, A9_23, A9_24];

pub(crate) const KERNEL_ROWS: &[KernelRow] = &[
    // Ubuntu 14.04 LTS.
    KernelRow {
        distro: Distro::Ubuntu,
        release: "14.04",
        agents: &[A9_24],
        ranges: &[
            R::new("3.13.0-24-generic", "3.13.0-167-generic"),
            R::new("3.16.0-25-generic", "3.16.0-77-generic"),
            R::new("3.19.0-18-generic", "3.19.0-80-generic"),
            R::new("4.2.0-18-generic", "4.2.0-42-generic"),
            R::new("4.4.0-21-generic", "4.4.0-143-generic"),
            R::new("4.15.0-1023-azure", "4.15.0-1040-azure"),
        ],
    },
    KernelRow {
        distro: Distro::Ubuntu,
        release: "14.04",
        agents: &[A9_23],
        ranges: &[
            R::new("3.13.0-24-generic", "3.13.0-165-generic"),
            R::new("3.16.0-25-generic", "3.16.0-77-generic"),
            R::new("3.19.0-18-generic", "3.19.0-80-generic"),
            R::new("4.2.0-18-generic", "4.2.0-42-generic"),
            R::new("4.4.0-21-generic", "4.4.0-142-generic"),
            R::new("4.15.0-1023-azure", "4.15.0-1037-azure"),
        ],
    },
    KernelRow {
        distro: Distro::Ubuntu,
        release: "14.04",
        agents: &[A9_22],
        ranges: &[
            R::new("3.13.0-24-generic", "3.13.0-164-generic"),
            R::new("3.16.0-25-generic", "3.16.0-77-generic"),
            R::new("3.19.0-18-generic", "3.19.0-80-generic"),
            R::new("4.2.0-18-generic", "4.2.0-42-generic"),
            R::new("4.4.0-21-generic", "4.4.0-140-generic"),
            R::new("4.15.0-1023-azure", "4.15.0-1036-azure"),
        ],
    },
    KernelRow {
        distro: Distro::Ubuntu,
        release: "14.04",
        agents: &[A9_21],
        ranges: &[
            R::new("3.13.0-24-generic", "3.13.0-163-generic"),
            R::new("3.16.0-25-generic", "3.16.0-77-generic"),
            R::new("3.19.0-18-generic", "3.19.0-80-generic"),
            R::new("4.2.0-18-generic", "4.2.0-42-generic"),
            R::new("4.4.0-21-generic", "4.4.0-140-generic"),
            R::new("4.15.0-1023-azure", "4.15.0-1035-azure"),
        ],
    },
    // Ubuntu 16.04 LTS.
    KernelRow {
        distro: Distro::Ubuntu,
        release: "16.04",
        agents: errata::UBUNTU_1604_FIRST_ROW_AGENT,
        ranges: &[
            R::new("4.4.0-21-generic", "4.4.0-143-generic"),
            R::new("4.8.0-34-generic", "4.8.0-58-generic"),
            R::new("4.10.0-14-generic", "4.10.0-42-generic"),
            R::new("4.11.0-13-generic", "4.11.0-14-generic"),
            R::new("4.13.0-16-generic", "4.13.0-45-generic"),
            R::new("4.15.0-13-generic", "4.15.0-46-generic"),
            R::new("4.11.0-1009-azure", "4.11.0-1018-azure"),
            R::new("4.13.0-1005-azure", "4.13.0-1018-azure"),
            R::new("4.15.0-1012-azure", "4.15.0-1040-azure"),
        ],
    },
    KernelRow {
        distro: Distro::Ubuntu,
        release: "16.04",
        agents: &[A9_23],
        ranges: &[
            R::new("4.4.0-21-generic", "4.4.0-142-generic"),
            R::new("4.8.0-34-generic", "4.8.0-58-generic"),
            R::new("4.10.0-14-generic", "4.10.0-42-generic"),
            R::new("4.11.0-13-generic", "4.11.0-14-generic"),
            R::new("4.13.0-16-generic", "4.13.0-45-generic"),
            R::new("4.15.0-13-generic", "4.15.0-45-generic"),
            R::new("4.11.0-1009-azure", "4.11.0-1016-azure"),
            R::new("4.13.0-1005-azure", "4.13.0-1018-azure"),
            R::new("4.15.0-1012-azure", "4.15.0-1037-azure"),
        ],
    },
    KernelRow {
        distro: Distro::Ubuntu,
        release: "16.04",
        agents: &[A9_22],
        ranges: &[
            R::new("4.4.0-21-generic", "4.4.0-140-generic"),
            R::new("4.8.0-34-generic", "4.8.0-58-generic"),
            R::new("4.10.0-14-generic", "4.10.0-42-generic"),
            R::new("4.11.0-13-generic", "4.11.0-14-generic"),
            R::new("4.13.0-16-generic", "4.13.0-45-generic"),
            R::new("4.15.0-13-generic", "4.15.0-43-generic"),
            R::new("4.11.0-1009-azure", "4.11.0-1016-azure"),
            R::new("4.13.0-1005-azure", "4.13.0-1018-azure"),
            R::new("4.15.0-1012-azure", "4.15.0-1036-azure"),
        ],
    },
    KernelRow {
        distro: Distro::Ubuntu,
        release: "16.04",
        agents: &[A9_21],
        ranges: &[
            R::new("4.4.0-21-generic", "4.4.0-140-generic"),
            R::new("4.8.0-34-generic", "4.8.0-58-generic"),
            R::new("4.10.0-14-generic", "4.10.0-42-generic"),
            R::new("4.11.0-13-generic", "4.11.0-14-generic"),
            R::new("4.13.0-16-generic", "4.13.0-45-generic"),
            R::new("4.15.0-13-generic", "4.15.0-42-generic"),
            R::new("4.11.0-1009-azure", "4.11.0-1016-azure"),
            R::new("4.13.0-1005-azure", "4.13.0-1018-azure"),
            R::new("4.15.0-1012-azure", "4.15.0-1035-azure"),
        ],
    },
    KernelRow {
        distro: Distro::Ubuntu,
        release: "16.04",
        agents: &[A9_20],
        ranges: &[
            R::new("4.4.0-21-generic", "4.4.0-138-generic"),
            R::new("4.8.0-34-generic", "4.8.0-58-generic"),
            R::new("4.10.0-14-generic", "4.10.0-42-generic"),
            R::new("4.11.0-13-generic", "4.11.0-14-generic"),
            R::new("4.13.0-16-generic", "4.13.0-45-generic"),
            R::new("4.15.0-13-generic", "4.15.0-38-generic"),
            R::new("4.11.0-1009-azure", "4.11.0-1016-azure"),
            R::new("4.13.0-1005-azure", "4.13.0-1018-azure"),
            R::new("4.15.0-1012-azure", "4.15.0-1025-azure"),
        ],
    },
    // Debian: one row per release for every listed agent.
    KernelRow {
        distro: Distro::Debian,
        release: "7",
        agents: DEBIAN_AGENTS,
        ranges: &[
            R::new("3.2.0-4-amd64", "3.2.0-6-amd64"),
            // A single kernel, not a range.
            R::new("3.16.0-0.bpo.4-amd64", "3.16.0-0.bpo.4-amd64"),
        ],
    },
    KernelRow {
        distro: Distro::Debian,
        release: "8",
        agents: DEBIAN_AGENTS,
        ranges: &[
            R::new("3.16.0-4-amd64", "3.16.0-7-amd64"),
            R::new("4.9.0-0.bpo.4-amd64", "4.9.0-0.bpo.8-amd64"),
        ],
    },
    // SUSE Linux Enterprise Server 12, ranges per service pack (and LTSS).
    KernelRow {
        distro: Distro::Sles,
        release: "12",
        agents: &[A9_24],
        ranges: &[
            R::sp(1, false, "3.12.49-11-default", "3.12.74-60.64.40-default"),
            R::sp(
                1,
                true,
                "3.12.74-60.64.45-default",
                "3.12.74-60.64.107-default",
            ),
            R::sp(2, false, "4.4.21-69-default", "4.4.120-92.70-default"),
            R::sp(2, true, "4.4.121-92.73-default", "4.4.121-92.101-default"),
            R::sp(3, false, "4.4.73-5-default", "4.4.175-94.79-default"),
            R::sp(4, false, "4.12.14-94.41-default", "4.12.14-95.6-default"),
        ],
    },
    KernelRow {
        distro: Distro::Sles,
        release: "12",
        agents: &[A9_23],
        ranges: &[
            R::sp(1, false, "3.12.49-11-default", "3.12.74-60.64.40-default"),
            R::sp(
                1,
                true,
                "3.12.74-60.64.45-default",
                "3.12.74-60.64.107-default",
            ),
            R::sp(2, false, "4.4.21-69-default", "4.4.120-92.70-default"),
            R::sp(2, true, "4.4.121-92.73-default", "4.4.121-92.101-default"),
            R::sp(3, false, "4.4.73-5-default", errata::SLES12_SP3_LAST_9_23),
            R::sp(4, false, "4.12.14-94.41-default", "4.12.14-95.6-default"),
        ],
    },
    KernelRow {
        distro: Distro::Sles,
        release: "12",
        agents: &[A9_22],
        ranges: &[
            R::sp(1, false, "3.12.49-11-default", "3.12.74-60.64.40-default"),
            R::sp(
                1,
                true,
                "3.12.74-60.64.45-default",
                "3.12.74-60.64.107-default",
            ),
            R::sp(2, false, "4.4.21-69-default", "4.4.120-92.70-default"),
            R::sp(2, true, "4.4.121-92.73-default", "4.4.121-92.98-default"),
            R::sp(3, false, "4.4.73-5-default", errata::SLES12_SP3_LAST_9_22),
        ],
    },
    KernelRow {
        distro: Distro::Sles,
        release: "12",
        agents: &[A9_21],
        ranges: &[
            R::sp(1, false, "3.12.49-11-default", "3.12.74-60.64.40-default"),
            R::sp(
                1,
                true,
                "3.12.74-60.64.45-default",
                "3.12.74-60.64.107-default",
            ),
            R::sp(2, false, "4.4.21-69-default", "4.4.120-92.70-default"),
            R::sp(2, true, "4.4.121-92.73-default", "4.4.121-92.98-default"),
            // E3: printed as is.
            R::sp(3, false, "4.4.73-5-default", "4.4.156-94.72-default"),
        ],
    },
];
