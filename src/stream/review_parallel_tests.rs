//! Review (2026-12-07): white-box tests of `ParallelEncoder`'s error paths that no input can
//! reach directly (a worker that panicked while building a job).

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::*;
use crate::tracker::GenerationId;

/// `run` turns a worker's panic into `job.error` (with `ends` holding the frames built before
/// it). The promise: "a panic becomes the job's error (and the encoder's), never a lost job".
/// When that job is collected while another job is the head (wait_head drains every built job
/// into its slot), `advance` later finds it at the head with `taken == ends.len()` and retires
/// it as if all its frames were out: the error is dropped and its frames skipped. The next
/// job's first frame then fails the numbering assert in `hand_out`: a panic, not the
/// encoder's error.
#[test]
#[cfg_attr(
    miri,
    ignore = "8 MiB through miri takes many minutes; this path has no unsafe code"
)]
fn a_job_that_failed_behind_the_head_is_an_error_not_a_skipped_job() {
    const DISK: u64 = 8 << 20;
    let mut cfg = EncoderConfig::new(*b"review-parallel1", GenerationId([5; 16]), 1, 2, DISK);
    cfg.record_size = 65536;
    cfg.zero_detection = false;
    cfg.compression = Codec::Raw;
    let mut src: Vec<u8> = (0..DISK as usize).map(|i| (i % 253) as u8).collect();
    let mut enc = ParallelEncoder::new(cfg, 2).unwrap();
    let mut buf = vec![0u8; enc.max_frame_len()];
    enc.write_header(&mut buf).unwrap();
    enc.set_extents(&[Extent::new(0, DISK)]).unwrap();
    // Job 0 (one record, one frame) goes out; jobs 1.. are queued for the worker.
    enc.next_frame(&mut src, &mut buf).unwrap().unwrap();
    // Collect job 1 into its slot as wait_head does while it waits for a head job.
    let s1 = enc.slot(1);
    while !matches!(&enc.slots[s1], Some(j) if j.number == 1) {
        let mut done = enc.shared.done.lock();
        while let Some(job) = done.pop_front() {
            let s = enc.slot(job.number);
            enc.slots[s] = Some(job);
            enc.queued -= 1;
        }
        drop(done);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // What `run` leaves when the worker panicked before sealing job 1's first frame.
    {
        let j = enc.slots[s1].as_mut().unwrap();
        j.ends.clear();
        j.error = Some(StreamError::InvalidState {
            reason: "an encoder thread panicked",
        });
    }
    let mut saw_error = false;
    for _ in 0..4 {
        let r = catch_unwind(AssertUnwindSafe(|| enc.next_frame(&mut src, &mut buf)));
        match r {
            Err(_) => panic!(
                "next_frame panicked (frame numbering): the failed job was retired as done and \
                 its frames skipped instead of its error being returned"
            ),
            Ok(Err(_)) => {
                saw_error = true;
                break;
            }
            Ok(Ok(_)) => {}
        }
    }
    assert!(saw_error, "the failed job's error was never returned");
}
