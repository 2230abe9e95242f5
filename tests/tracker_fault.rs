//! The write path never takes a page fault (issue 11, "the write path can fault"): a tracker
//! whose bitmaps are resident (the default up to 64 MiB of tracker memory) marks writes all
//! over a 64 GiB disk without a single minor fault on the marking thread, where the same
//! tracker built without `resident` faults on nearly every first mark into a page.

use blockdelta::{Tracker, TrackerConfig, RESIDENT_LIMIT};

/// Minor page faults of the calling thread so far.
fn minor_faults() -> i64 {
    let mut u: libc::rusage = unsafe_zeroed();
    // SAFETY: getrusage writes one rusage into the struct we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    assert_eq!(rc, 0);
    u.ru_minflt
}

fn unsafe_zeroed() -> libc::rusage {
    // SAFETY: rusage is plain integers and timevals: all zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// Faults taken by 2,000 marks spread over the whole disk (each about 32 MiB apart, so in a
/// different page of every bitmap level below the top).
fn faults_of_marks(t: &Tracker) -> i64 {
    let disk = t.geometry().disk_size;
    let step = disk / 2000 / 4096 * 4096;
    t.mark_write(0, 4096).unwrap(); // this thread's first mark (its statistics shard)
    let before = minor_faults();
    for i in 1..2000u64 {
        t.mark_write(i * step, 4096).unwrap();
    }
    minor_faults() - before
}

#[test]
fn marks_take_no_page_fault_when_the_bitmaps_are_resident() {
    let config = TrackerConfig::new(64 << 30).start_clean(true);
    assert!(Tracker::memory_for(64 << 30, 4096) <= RESIDENT_LIMIT);
    let resident = Tracker::new(config).unwrap(); // the default: resident
    let faults = faults_of_marks(&resident);
    assert_eq!(faults, 0, "{faults} page faults on the write path");

    // The test can see faults: without residency the first marks into pages fault.
    let lazy = Tracker::new(config.resident(false)).unwrap();
    let faults = faults_of_marks(&lazy);
    assert!(faults > 500, "only {faults} faults without residency");
}
