//! Churn limits (every row of the table, the I/O size boundaries around it) and the planner.

use blockdelta::support::{
    churn_limits, churn_table, disk_churn_limit, plan, DiskLoad, SupportError, TargetStorage,
    SECONDS_PER_DAY,
};

const KB: u64 = 1 << 10;
const MB: u64 = 1 << 20;
const GB: u64 = 1 << 30;
const TB: u64 = 1 << 40;

#[test]
fn every_churn_row_applies_from_its_io_size_to_the_next() {
    for row in churn_table() {
        for t in row.targets {
            let at = disk_churn_limit(*t, row.io_size_bytes());
            assert_eq!(at, row, "{t} at {} KB", row.io_kib);
            // One byte below: the next smaller row of the target, or this one if it is the smallest.
            let below = disk_churn_limit(*t, row.io_size_bytes() - 1);
            let smaller = churn_table()
                .iter()
                .filter(|r| r.targets.contains(t) && r.io_kib < row.io_kib)
                .max_by_key(|r| r.io_kib);
            assert_eq!(below, smaller.unwrap_or(row), "{t} below {} KB", row.io_kib);
            // The daily figure is close to, and not above, the rate times a day (E5).
            let derived = row.bytes_per_second() * SECONDS_PER_DAY;
            assert!(
                row.bytes_per_day() <= derived && derived - row.bytes_per_day() < derived / 100
            );
        }
    }
    for t in TargetStorage::ALL {
        assert!(
            churn_table().iter().any(|r| r.targets.contains(t)),
            "{t} has no row"
        );
    }
}

#[test]
fn churn_literal_checks() {
    let l = |t, io| {
        let r = disk_churn_limit(t, io);
        (r.mb_per_s, r.gb_per_day)
    };
    use TargetStorage::*;
    assert_eq!(l(Standard, 8 * KB), (2, 168));
    assert_eq!(l(Standard, 1024 * KB), (2, 168));
    assert_eq!(l(Standard, 4 * KB), (2, 168));
    for p in [PremiumP10, PremiumP15] {
        assert_eq!(l(p, 8 * KB), (2, 168));
        assert_eq!(l(p, 16 * KB - 1), (2, 168));
        assert_eq!(l(p, 16 * KB), (4, 336));
        assert_eq!(l(p, 32 * KB - 1), (4, 336));
        assert_eq!(l(p, 32 * KB), (8, 672));
        assert_eq!(l(p, 256 * KB), (8, 672));
        assert_eq!(l(p, 512), (2, 168));
    }
    for p in [PremiumP20, PremiumP30, PremiumP40, PremiumP50] {
        assert_eq!(l(p, 8 * KB), (5, 421));
        assert_eq!(l(p, 16 * KB - 1), (5, 421));
        assert_eq!(l(p, 16 * KB), (20, 1684));
        assert_eq!(l(p, 64 * KB), (20, 1684));
    }
    let r = disk_churn_limit(PremiumP30, 16 * KB);
    assert_eq!(
        (r.bytes_per_second(), r.bytes_per_day()),
        (20 * MB, 1684 * GB)
    );
    let v = churn_limits();
    assert_eq!(v.vm_average_bytes_per_second, 25 * MB);
    assert_eq!(v.vm_peak_bytes_per_second, 54 * MB);
    assert_eq!(v.process_server_bytes_per_day, 2 * TB);
}

#[test]
fn target_names() {
    assert_eq!(
        "standard".parse::<TargetStorage>().unwrap(),
        TargetStorage::Standard
    );
    assert_eq!(
        "P30".parse::<TargetStorage>().unwrap(),
        TargetStorage::PremiumP30
    );
    assert_eq!(
        "premium p10".parse::<TargetStorage>().unwrap(),
        TargetStorage::PremiumP10
    );
    assert_eq!(
        "Premium_P50".parse::<TargetStorage>().unwrap(),
        TargetStorage::PremiumP50
    );
    assert!(matches!(
        "p60".parse::<TargetStorage>(),
        Err(SupportError::UnknownStorageTarget { .. })
    ));
    for t in TargetStorage::ALL {
        assert_eq!(TargetStorage::from_u32(*t as u32), Some(*t));
        assert_eq!(t.name().parse::<TargetStorage>().unwrap(), *t);
    }
    assert_eq!(TargetStorage::from_u32(1), None);
}

#[test]
fn planner_flags_disks_at_and_past_their_limits() {
    use TargetStorage::*;
    let disks = [
        DiskLoad::new("a", "at-rate", Standard, 2 * MB, 2 * MB, 8 * KB),
        DiskLoad::new("a", "over-rate", Standard, 2 * MB + 1, 3 * MB, 8 * KB),
        DiskLoad {
            bytes_per_day: Some(168 * GB + 1),
            ..DiskLoad::new("b", "over-daily", PremiumP10, MB, MB, 8 * KB)
        },
        DiskLoad {
            bytes_per_day: Some(168 * GB),
            ..DiskLoad::new("b", "at-daily", PremiumP10, MB, MB, 8 * KB)
        },
        DiskLoad::new("c", "big-writes", PremiumP20, 20 * MB, 20 * MB, 16 * KB),
    ];
    let p = plan(&disks).unwrap();
    let d = |name: &str| p.disks.iter().find(|d| d.disk == name).unwrap();
    assert!(!d("at-rate").exceeds_rate);
    // 2 MB/s for a whole day is 168.75 GB: past the stated 168 GB/day (E5).
    assert!(d("at-rate").exceeds_daily);
    assert!(d("over-rate").exceeds_rate);
    assert!(d("over-daily").exceeds_daily && !d("over-daily").exceeds_rate);
    assert!(!d("at-daily").exceeds());
    assert!(!d("big-writes").exceeds_rate);
    assert_eq!(d("big-writes").limit.mb_per_s, 20);
    assert_eq!(
        p.vms.iter().map(|v| v.vm.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
}

#[test]
fn planner_vm_limits() {
    use TargetStorage::PremiumP30 as P30;
    let vm = |avg: [u64; 2], peak: [u64; 2]| {
        plan(&[
            DiskLoad::new("vm", "d0", P30, avg[0], peak[0], 64 * KB),
            DiskLoad::new("vm", "d1", P30, avg[1], peak[1], 64 * KB),
        ])
        .unwrap()
        .vms[0]
            .clone()
    };
    let at = vm([12 * MB, 13 * MB], [27 * MB, 27 * MB]);
    assert_eq!(
        (at.average_bytes_per_second, at.peak_bytes_per_second),
        (25 * MB, 54 * MB)
    );
    assert!(!at.exceeds_average && !at.exceeds_peak);
    // 25 MB/s for a day is 2,109 GB: more than one process server's 2 TB.
    assert!(at.exceeds_process_server);
    let over = vm([12 * MB, 13 * MB + 1], [27 * MB, 27 * MB + 1]);
    assert!(over.exceeds_average && over.exceeds_peak);
}

#[test]
fn planner_counts_process_servers() {
    use TargetStorage::PremiumP30 as P30;
    // A machine with 1 TB of churn a day (given directly), n of them.
    let tb_vm = |name: String| DiskLoad {
        bytes_per_day: Some(TB),
        ..DiskLoad::new(&name, "d", P30, 0, 0, 64 * KB)
    };
    let servers = |n: usize| {
        plan(&(0..n).map(|i| tb_vm(format!("vm{i}"))).collect::<Vec<_>>())
            .unwrap()
            .process_servers
    };
    assert_eq!(servers(0), 1);
    assert_eq!(servers(1), 1);
    assert_eq!(servers(2), 1); // exactly 2 TB
    assert_eq!(servers(3), 2);
    assert_eq!(servers(5), 3);
    // Machines are not split across servers: three 1.5 TB machines need three.
    let big = |i: u64| DiskLoad {
        bytes_per_day: Some(3 * TB / 2),
        ..DiskLoad::new(&format!("b{i}"), "d", P30, 0, 0, 64 * KB)
    };
    let p = plan(&[big(0), big(1), big(2)]).unwrap();
    assert_eq!(p.process_servers, 3);
    assert_eq!(p.bytes_per_day, 9 * TB / 2);
    let mut used: Vec<u32> = p.vms.iter().map(|v| v.process_server).collect();
    used.sort_unstable();
    assert_eq!(used, [0, 1, 2]);
    // One machine above one server's daily limit is flagged and still placed.
    let huge = DiskLoad {
        bytes_per_day: Some(2 * TB + 1),
        ..DiskLoad::new("huge", "d", P30, 0, 0, 64 * KB)
    };
    let p = plan(&[huge, tb_vm("small".into())]).unwrap();
    assert!(p.vms[0].exceeds_process_server && !p.vms[1].exceeds_process_server);
    assert_eq!(p.process_servers, 2);
    // The daily total defaults to the average rate times a day.
    let p = plan(&[DiskLoad::new("r", "d", P30, 10 * MB, 10 * MB, 64 * KB)]).unwrap();
    assert_eq!(p.bytes_per_day, 10 * MB * 86_400);
}

#[test]
fn planner_rejects_inconsistent_input() {
    use TargetStorage::Standard;
    let e = plan(&[DiskLoad::new("v", "d", Standard, 5, 4, 8 * KB)]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid description: disk d of v: peak 4 B/s is below the average 5 B/s"
    );
    let d = DiskLoad::new("v", "d", Standard, 1, 1, 8 * KB);
    assert!(matches!(
        plan(&[d.clone(), d]),
        Err(SupportError::InvalidDescription { .. })
    ));
}
