//! Kernel support: every row of the kernel tables (both ends of every range, one step outside
//! each end), then literal checks taken from the source document, written independently of the
//! tables so that a wrong table cannot pass its own test.

use blockdelta::support::{
    agent_versions, check_kernel, kernel_table, AgentVersion, Distro, KernelRange, KernelRow,
    KernelVersion, SupportError,
};

fn v(s: &str) -> AgentVersion {
    s.parse().unwrap()
}

/// The release string that selects exactly `range`'s service pack.
fn release_for(row: &KernelRow, range: &KernelRange) -> String {
    match range.service_pack {
        0 => row.release.to_owned(),
        sp => format!("{} SP{sp}", row.release),
    }
}

/// `kernel` with the last number of its release moved by `delta` (None below zero).
fn step(kernel: &str, delta: i64) -> Option<String> {
    let (base, rest) = kernel.split_once('-').unwrap();
    let (release, flavour) = rest.split_once('-').unwrap();
    let mut parts: Vec<String> = release.split('.').map(str::to_owned).collect();
    let last = parts
        .iter()
        .rposition(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .unwrap();
    let n = parts[last].parse::<i64>().unwrap() + delta;
    if n < 0 {
        return None;
    }
    parts[last] = n.to_string();
    Some(format!("{base}-{}-{flavour}", parts.join(".")))
}

#[test]
fn every_range_end_is_supported_by_its_own_range() {
    let mut checked = 0;
    for row in kernel_table() {
        for agent in row.agents {
            for range in row.ranges {
                for end in [range.first, range.last] {
                    let r =
                        check_kernel(row.distro, &release_for(row, range), end, *agent).unwrap();
                    let m = r.matched.unwrap_or_else(|| {
                        panic!(
                            "{} {} {end} not supported by {agent}",
                            row.distro, row.release
                        )
                    });
                    assert_eq!(m.range, range, "{end}");
                    assert_eq!(m.row, row, "{end}");
                    assert_eq!(m.agent, *agent);
                    assert!(r.nearest.is_none());
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 214, "only {checked} range ends checked");
}

#[test]
fn one_step_outside_every_range_end_is_not_in_that_range() {
    let mut checked = 0;
    for row in kernel_table() {
        for agent in row.agents {
            for range in row.ranges {
                let outside = [step(range.first, -1), step(range.last, 1)];
                for k in outside.into_iter().flatten() {
                    let parsed: KernelVersion = k.parse().unwrap();
                    assert!(!range.contains(&parsed), "{k} is inside {:?}", range);
                    let r = check_kernel(row.distro, &release_for(row, range), &k, *agent).unwrap();
                    if let Some(m) = r.matched {
                        // Covered by another range of the same row: it must really contain it.
                        assert_ne!(m.range, range, "{k}");
                        assert_eq!(m.row, row, "{k}");
                        assert!(m.range.contains(&parsed), "{k} matched {:?}", m.range);
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 214, "only {checked} steps checked");
}

#[test]
fn every_table_string_parses_and_every_range_is_ordered() {
    for row in kernel_table() {
        assert!(!row.agents.is_empty());
        for a in row.agents {
            assert!(
                agent_versions().contains(a),
                "row agent {a} is not a known agent version"
            );
        }
        for range in row.ranges {
            let first: KernelVersion = range.first.parse().unwrap();
            let last: KernelVersion = range.last.parse().unwrap();
            assert!(first <= last, "{first} > {last}");
            assert_eq!(first.to_string(), range.first);
            assert_eq!(last.to_string(), range.last);
        }
    }
}

// Literal checks from the source document. Each names distro, release, kernel and agent.

fn supported(d: Distro, release: &str, kernel: &str, agent: &str) -> bool {
    check_kernel(d, release, kernel, v(agent))
        .unwrap()
        .is_supported()
}

fn nearest(d: Distro, release: &str, kernel: &str, agent: &str) -> Option<AgentVersion> {
    let r = check_kernel(d, release, kernel, v(agent)).unwrap();
    assert!(!r.is_supported());
    r.nearest.map(|m| m.agent)
}

#[test]
fn ubuntu_16_04_row_labelled_9_23_is_9_24() {
    // E1: 4.4.0-143 and 4.15.0-46 generic, 4.15.0-1040 azure appear only in the mislabelled row.
    assert!(supported(
        Distro::Ubuntu,
        "16.04",
        "4.4.0-143-generic",
        "9.24"
    ));
    assert!(!supported(
        Distro::Ubuntu,
        "16.04",
        "4.4.0-143-generic",
        "9.23"
    ));
    assert_eq!(
        nearest(Distro::Ubuntu, "16.04", "4.4.0-143-generic", "9.23"),
        Some(v("9.24"))
    );
    assert!(supported(
        Distro::Ubuntu,
        "16.04",
        "4.15.0-46-generic",
        "9.24"
    ));
    assert!(!supported(
        Distro::Ubuntu,
        "16.04",
        "4.15.0-46-generic",
        "9.23"
    ));
    assert!(supported(
        Distro::Ubuntu,
        "16.04",
        "4.15.0-1040-azure",
        "9.24"
    ));
    assert!(!supported(
        Distro::Ubuntu,
        "16.04",
        "4.15.0-1040-azure",
        "9.23"
    ));
    assert!(supported(
        Distro::Ubuntu,
        "16.04",
        "4.11.0-1018-azure",
        "9.24"
    ));
    assert!(!supported(
        Distro::Ubuntu,
        "16.04",
        "4.11.0-1017-azure",
        "9.23"
    ));
    // And the real 9.23 row.
    assert!(supported(
        Distro::Ubuntu,
        "16.04",
        "4.4.0-142-generic",
        "9.23"
    ));
    assert!(supported(
        Distro::Ubuntu,
        "16.04",
        "4.15.0-1037-azure",
        "9.23"
    ));
    assert!(!supported(
        Distro::Ubuntu,
        "16.04",
        "4.15.0-1038-azure",
        "9.23"
    ));
}

#[test]
fn ubuntu_16_04_literal_ranges() {
    let u = Distro::Ubuntu;
    assert!(supported(u, "16.04", "4.4.0-21-generic", "9.20"));
    assert!(!supported(u, "16.04", "4.4.0-20-generic", "9.24"));
    assert_eq!(nearest(u, "16.04", "4.4.0-20-generic", "9.24"), None);
    assert!(supported(u, "16.04", "4.4.0-138-generic", "9.20"));
    assert_eq!(
        nearest(u, "16.04", "4.4.0-139-generic", "9.20"),
        Some(v("9.21"))
    );
    assert_eq!(
        nearest(u, "16.04", "4.4.0-141-generic", "9.20"),
        Some(v("9.23"))
    );
    assert!(supported(u, "16.04", "4.15.0-38-generic", "9.20"));
    assert!(supported(u, "16.04", "4.15.0-42-generic", "9.21"));
    assert!(supported(u, "16.04", "4.15.0-43-generic", "9.22"));
    assert!(!supported(u, "16.04", "4.15.0-44-generic", "9.22"));
    assert!(supported(u, "16.04", "4.11.0-13-generic", "9.22"));
    assert!(supported(u, "16.04", "4.11.0-14-generic", "9.22"));
    assert!(!supported(u, "16.04", "4.11.0-15-generic", "9.24"));
    assert!(!supported(u, "16.04", "4.11.0-12-generic", "9.24"));
    assert!(supported(u, "16.04", "4.15.0-1025-azure", "9.20"));
    assert!(!supported(u, "16.04", "4.15.0-1026-azure", "9.20"));
    assert!(!supported(u, "16.04", "4.15.0-1011-azure", "9.24"));
    // An older agent only when no newer one supports it.
    assert!(!supported(u, "16.04", "4.9.0-1-generic", "9.24"));
}

#[test]
fn flavours_never_mix() {
    let u = Distro::Ubuntu;
    // -46 is inside the generic 4.15.0 range, -1040 inside the azure one; swapped, neither is.
    assert!(!supported(u, "16.04", "4.15.0-46-azure", "9.24"));
    assert!(!supported(u, "16.04", "4.15.0-1040-generic", "9.24"));
    assert!(!supported(u, "16.04", "4.4.0-143-lowlatency", "9.24"));
    assert!(!supported(Distro::Debian, "8", "4.9.0-8-amd64", "9.24")); // not the backport
}

#[test]
fn ubuntu_14_04_literal_ranges() {
    let u = Distro::Ubuntu;
    assert!(supported(u, "14.04", "3.13.0-167-generic", "9.24"));
    assert!(!supported(u, "14.04", "3.13.0-168-generic", "9.24"));
    assert!(supported(u, "14.04", "3.13.0-165-generic", "9.23"));
    assert_eq!(
        nearest(u, "14.04", "3.13.0-166-generic", "9.23"),
        Some(v("9.24"))
    );
    assert!(supported(u, "14.04", "3.13.0-164-generic", "9.22"));
    assert!(supported(u, "14.04", "3.13.0-163-generic", "9.21"));
    assert!(supported(u, "14.04", "3.16.0-25-generic", "9.21"));
    assert!(!supported(u, "14.04", "3.16.0-24-generic", "9.21"));
    assert!(supported(u, "14.04", "3.19.0-80-generic", "9.24"));
    assert!(!supported(u, "14.04", "3.19.0-81-generic", "9.24"));
    assert!(supported(u, "14.04", "4.2.0-42-generic", "9.24"));
    assert!(supported(u, "14.04", "4.15.0-1023-azure", "9.21"));
    assert!(supported(u, "14.04", "4.15.0-1036-azure", "9.22"));
    assert!(!supported(u, "14.04", "4.15.0-1036-azure", "9.21"));
    // No 14.04 row for 9.20: the release is not listed for it.
    let r = check_kernel(u, "14.04", "3.13.0-24-generic", v("9.20")).unwrap();
    assert!(!r.release_listed && !r.is_supported());
    assert_eq!(r.nearest.unwrap().agent, v("9.21"));
    assert!(
        check_kernel(u, "16.04", "4.4.0-21-generic", v("9.20"))
            .unwrap()
            .release_listed
    );
}

#[test]
fn debian_literal_ranges() {
    let d = Distro::Debian;
    for a in ["9.21", "9.22", "9.23", "9.24"] {
        assert!(supported(d, "7", "3.2.0-4-amd64", a));
        assert!(supported(d, "7", "3.2.0-6-amd64", a));
        assert!(supported(d, "7", "3.16.0-0.bpo.4-amd64", a));
        assert!(supported(d, "8", "3.16.0-4-amd64", a));
        assert!(supported(d, "8", "3.16.0-7-amd64", a));
        assert!(supported(d, "8", "4.9.0-0.bpo.4-amd64", a));
        assert!(supported(d, "8", "4.9.0-0.bpo.8-amd64", a));
    }
    assert!(!supported(d, "7", "3.2.0-3-amd64", "9.24"));
    assert!(!supported(d, "7", "3.2.0-7-amd64", "9.24"));
    assert!(!supported(d, "7", "3.16.0-0.bpo.5-amd64", "9.24"));
    assert!(!supported(d, "7", "3.16.0-0.bpo.3-amd64", "9.24"));
    assert!(!supported(d, "7", "3.16.0-4-amd64", "9.24")); // Debian 8's kernel
    assert!(!supported(d, "8", "4.9.0-0.bpo.9-amd64", "9.24"));
    assert!(!supported(d, "8", "4.9.0-0.bpo.3-amd64", "9.24"));
    assert!(!supported(d, "8", "3.16.0-8-amd64", "9.24"));
    assert!(supported(d, "8.11", "3.16.0-7-amd64", "9.24")); // point release
    assert_eq!(
        nearest(d, "8", "4.9.0-0.bpo.8-amd64", "9.20"),
        Some(v("9.21"))
    );
}

#[test]
fn sles_12_literal_ranges() {
    let s = Distro::Sles;
    // The brief's example: SP4's last kernel, its service pack found from the ranges.
    let r = check_kernel(s, "12", "4.12.14-95.6-default", v("9.24")).unwrap();
    let m = r.matched.unwrap();
    assert_eq!((m.range.service_pack, m.range.ltss), (4, false));
    assert_eq!(m.range.variant(), "SP4");
    assert_eq!(
        nearest(s, "12", "4.12.14-95.6-default", "9.22"),
        Some(v("9.23"))
    );
    assert!(!supported(s, "12 SP4", "4.12.14-95.7-default", "9.24"));
    assert!(supported(s, "12 SP4", "4.12.14-94.41-default", "9.23"));
    assert!(!supported(s, "12 SP4", "4.12.14-94.40-default", "9.23"));
    // E2: SP3 9.23 ends below 9.22's end.
    assert!(supported(s, "12 SP3", "4.4.162-94.72-default", "9.22"));
    assert!(!supported(s, "12 SP3", "4.4.162-94.72-default", "9.23"));
    assert_eq!(
        nearest(s, "12 SP3", "4.4.162-94.72-default", "9.23"),
        Some(v("9.24"))
    );
    assert!(supported(s, "12 SP3", "4.4.162-94.69-default", "9.23"));
    assert!(!supported(s, "12 SP3", "4.4.162-94.70-default", "9.23"));
    assert!(supported(s, "12 SP3", "4.4.175-94.79-default", "9.24"));
    assert!(supported(s, "12 SP3", "4.4.156-94.72-default", "9.21"));
    assert!(!supported(s, "12 SP3", "4.4.162-94.69-default", "9.21"));
    // LTSS ranges and the gap before them.
    assert!(supported(s, "12 SP1", "3.12.74-60.64.40-default", "9.21"));
    assert!(!supported(s, "12 SP1", "3.12.74-60.64.42-default", "9.24"));
    assert!(supported(s, "12 SP1", "3.12.74-60.64.45-default", "9.24"));
    assert!(supported(s, "12 SP1", "3.12.74-60.64.107-default", "9.24"));
    assert!(supported(s, "12 SP2", "4.4.121-92.98-default", "9.21"));
    assert_eq!(
        nearest(s, "12 SP2", "4.4.121-92.101-default", "9.22"),
        Some(v("9.23"))
    );
    let m = check_kernel(s, "12", "4.4.121-92.101-default", v("9.24"))
        .unwrap()
        .matched
        .unwrap();
    assert_eq!(m.range.variant(), "SP2 (LTSS)");
    // E12: SP3's first kernel also lies in SP2's range; without a service pack, SP3 answers.
    let m = check_kernel(s, "12", "4.4.73-5-default", v("9.24"))
        .unwrap()
        .matched
        .unwrap();
    assert_eq!(m.range.service_pack, 3);
    assert!(supported(s, "12 SP2", "4.4.73-5-default", "9.24"));
    // Release spellings.
    for rel in ["12 SP4", "12-SP4", "12SP4", "12 sp4"] {
        assert!(supported(s, rel, "4.12.14-95.6-default", "9.24"), "{rel}");
    }
    assert!(!supported(s, "12 SP3", "4.12.14-95.6-default", "9.24"));
}

#[test]
fn release_spellings() {
    for rel in ["16.04", "16.04 LTS", "16.04.6", "16.04.6 LTS"] {
        assert!(
            supported(Distro::Ubuntu, rel, "4.4.0-143-generic", "9.24"),
            "{rel}"
        );
    }
}

#[test]
fn strings_that_are_not_kernel_versions_are_errors_that_say_so() {
    for bad in [
        "",
        "hello",
        "4.4.0",
        "4.4.0-143",
        "4-143-generic",
        "4.4.0.1.2-143-generic",
        "4.4.x-143-generic",
        "v4.4.0-143-generic",
        "4.4.0-143-generic ",
        "4.4.0--generic",
        "4.4.0-bpo.1-amd64",
        "4.4.0-143-",
        "4.4.0-143-9generic",
        "4.4.0-1a-generic",
    ] {
        let e = check_kernel(Distro::Ubuntu, "16.04", bad, v("9.24")).unwrap_err();
        assert!(
            matches!(&e, SupportError::InvalidKernelVersion { input, .. } if input == bad),
            "{bad:?}: {e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("is not a kernel version") && msg.contains(&format!("{bad:?}")),
            "{msg}"
        );
    }
}

#[test]
fn questions_the_tables_cannot_answer_are_errors() {
    let k = "4.4.0-143-generic";
    assert!(matches!(
        "fedora".parse::<Distro>(),
        Err(SupportError::UnknownDistribution { .. })
    ));
    assert!(matches!(
        check_kernel(Distro::Rhel, "7.6", k, v("9.24")),
        Err(SupportError::NoKernelTable { .. })
    ));
    assert!(matches!(
        check_kernel(Distro::Ubuntu, "18.04", k, v("9.24")),
        Err(SupportError::UnknownRelease { .. })
    ));
    assert!(matches!(
        check_kernel(Distro::Ubuntu, "xenial", k, v("9.24")),
        Err(SupportError::UnknownRelease { .. })
    ));
    let e = check_kernel(Distro::Ubuntu, "16.04", k, v("9.19")).unwrap_err();
    assert!(matches!(e, SupportError::UnknownAgentVersion { .. }));
    assert_eq!(
        e.to_string(),
        "agent version 9.19 is not in the kernel tables (they cover 9.20 to 9.24)"
    );
    assert!(matches!(
        "9.x".parse::<AgentVersion>(),
        Err(SupportError::InvalidAgentVersion { .. })
    ));
    assert!(matches!(
        "9".parse::<AgentVersion>(),
        Err(SupportError::InvalidAgentVersion { .. })
    ));
    assert_eq!("9.24.5190.1".parse::<AgentVersion>().unwrap(), v("9.24"));
    assert_eq!("Ubuntu".parse::<Distro>().unwrap(), Distro::Ubuntu);
    assert_eq!("SLES".parse::<Distro>().unwrap(), Distro::Sles);
    assert_eq!(
        "Red Hat Enterprise Linux".parse::<Distro>().unwrap(),
        Distro::Rhel
    );
}

#[test]
fn kernel_versions_parse_and_order() {
    let k = |s: &str| s.parse::<KernelVersion>().unwrap();
    let a = k("4.4.0-143-generic");
    assert_eq!(a.base(), [4, 4, 0]);
    assert_eq!(a.release_numbers(), [143]);
    assert_eq!(a.flavour(), "generic");
    assert!(!a.is_backport());
    let b = k("4.9.0-0.bpo.8-amd64");
    assert!(b.is_backport());
    assert_eq!(b.release_numbers(), [0, 8]);
    assert_eq!(b.to_string(), "4.9.0-0.bpo.8-amd64");
    let s = k("4.12.14-95.6-default");
    assert_eq!(s.release_numbers(), [95, 6]);
    assert!(k("4.4.0-99-generic") < k("4.4.0-143-generic")); // numbers, not text
    assert!(k("4.10.0-14-generic") > k("4.9.0-200-generic"));
    assert!(k("4.12.14-94.41-default") < k("4.12.14-95.6-default"));
    assert!(k("4.4.120-92.70-default") < k("4.4.121-92.73-default"));
    assert!(k("3.12.74-60.64.40-default") < k("3.12.74-60.64.45-default"));
    assert!(k("4.9.0-0.bpo.4-amd64") < k("4.9.0-0.bpo.8-amd64"));
    assert_eq!(
        k("4.9.0-0.bpo.4-amd64").partial_cmp(&k("4.9.0-4-amd64")),
        None
    );
    assert_eq!(
        k("4.15.0-1040-azure").partial_cmp(&k("4.15.0-1040-generic")),
        None
    );
    assert_eq!(k("4.4.0-143-generic-lpae").flavour(), "generic-lpae");
}
