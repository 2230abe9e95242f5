//! The support matrix as static tables.
//!
//! Everything the queries know is here, as `const` slices of plain structs: no code decides
//! what is supported. Adding an agent version is a data change: add it to
//! [`agents::AGENT_VERSIONS`], add its kernel rows to [`kernels`], and move any `since`
//! thresholds that change. Every place where the source document contradicts itself is
//! resolved in [`errata`], and only there.

pub(crate) mod agents;
pub(crate) mod errata;
pub(crate) mod features;
pub(crate) mod kernels;
pub(crate) mod limits;
pub(crate) mod os;

#[cfg(test)]
mod tests {
    use super::agents::AGENT_VERSIONS;
    use super::errata::NON_MONOTONIC;
    use super::kernels::KERNEL_ROWS;
    use crate::support::KernelVersion;

    /// Support only grows with the agent version, except where errata say otherwise: every
    /// range end supported by one version is supported by the next one that lists the release.
    #[test]
    fn newer_agents_support_what_older_ones_do() {
        for w in AGENT_VERSIONS.windows(2) {
            let (old, new) = (w[0], w[1]);
            for row in KERNEL_ROWS.iter().filter(|r| r.agents.contains(&old)) {
                let newer: Vec<_> = KERNEL_ROWS
                    .iter()
                    .filter(|r| {
                        r.distro == row.distro
                            && r.release == row.release
                            && r.agents.contains(&new)
                    })
                    .collect();
                for range in row.ranges {
                    for end in [range.first, range.last] {
                        let k: KernelVersion = end.parse().unwrap();
                        let kept = newer.iter().any(|n| {
                            n.ranges
                                .iter()
                                .any(|r| r.service_pack == range.service_pack && r.contains(&k))
                        });
                        let excused = NON_MONOTONIC.contains(&(old, new));
                        assert!(
                            kept || excused,
                            "{} {} {end}: supported by {old}, not by {new}",
                            row.distro,
                            row.release
                        );
                    }
                }
            }
        }
    }

    /// The excuse is needed: without it the check above would fail for exactly that pair.
    #[test]
    fn the_non_monotonic_pair_is_real() {
        let k: KernelVersion = "4.4.162-94.72-default".parse().unwrap();
        let supports = |a| {
            KERNEL_ROWS
                .iter()
                .filter(|r| r.agents.contains(&a))
                .any(|r| r.ranges.iter().any(|x| x.contains(&k)))
        };
        for (old, new) in NON_MONOTONIC {
            assert!(supports(*old) && !supports(*new));
        }
    }
}
