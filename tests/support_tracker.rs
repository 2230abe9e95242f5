//! The deployment planner fed with a tracker's own statistics: measured churn, not guesses.

use std::time::Duration;

use blockdelta::support::{plan, DiskLoad, TargetStorage};
use blockdelta::{Tracker, TrackerConfig};

#[test]
fn a_tracked_disk_is_planned_from_its_measured_churn() {
    let tracker = Tracker::new(TrackerConfig::new(64 << 30).start_clean(true)).unwrap();
    let start = std::time::Instant::now();
    // 40 MiB of 64 KiB writes and 1 MiB of 4 KiB discards.
    for i in 0..640u64 {
        tracker.mark_write(i * (1 << 20), 64 << 10).unwrap();
    }
    for i in 0..256u64 {
        tracker.mark_discard((1 << 30) + i * 4096, 4096).unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    tracker.take().unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    let stats = tracker.stats();

    let load = DiskLoad::from_tracker_stats("db01", "sda", TargetStorage::Standard, &stats);
    let marked = 640 * (64 << 10) + 256 * 4096u64;
    assert_eq!(load.average_io_bytes, marked / (640 + 256));
    // The rate is the interval's bytes over its duration: at most marked / 50 ms, and at
    // least marked / the whole test's time.
    let rate = load.average_bytes_per_second as f64;
    assert!(
        rate <= marked as f64 / 0.050 && rate >= marked as f64 / elapsed * 0.99,
        "{rate}"
    );
    assert_eq!(load.peak_bytes_per_second, load.average_bytes_per_second);

    // Hundreds of MB/s on standard storage exceeds its per-disk limit; the planner says so.
    let p = plan(&[load]).unwrap();
    assert!(p.disks[0].exceeds_rate);
    assert!(p.process_servers >= 1);
}
