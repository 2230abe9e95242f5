//! What the activity-log tests share: a small disk of 64 KiB regions, a write through a
//! writer (waiting when cold), and the blocks of a take.

#![allow(dead_code)]

use std::collections::BTreeSet;

use blockdelta::{Admission, Extent, PersistentTracker, TrackerConfig};

pub const KIB: u64 = 1024;
pub const BLOCK: u64 = 4 * KIB;
pub const REGION: u64 = 64 * KIB; // 16 blocks
pub const DISK: u64 = 64 * REGION; // 4 MiB, 1,024 blocks

pub fn config() -> TrackerConfig {
    TrackerConfig::new(DISK).granularity(BLOCK as u32)
}

/// Admits, "writes" and completes `len` bytes at `off` through `w`, waiting when cold.
pub fn write(w: &blockdelta::ActivityWriter, off: u64, len: u64) {
    loop {
        match w.begin(off, len).unwrap() {
            Admission::Go(token) => {
                w.complete(token, off, len).unwrap();
                return;
            }
            Admission::Wait(ticket) => w.wait(ticket).unwrap(),
        }
    }
}

/// Every block of a take (then aborted or committed by the caller).
pub fn blocks_of(pt: &PersistentTracker) -> (blockdelta::CheckpointInfo, BTreeSet<u64>) {
    let cp = pt.take().unwrap();
    let mut cursor = cp.cursor();
    let mut buf = [Extent::default(); 64];
    let mut out = BTreeSet::new();
    loop {
        let n = pt.tracker().extents(&mut cursor, &mut buf).unwrap();
        if n == 0 {
            return (cp, out);
        }
        for e in &buf[..n] {
            out.extend(e.offset / BLOCK..(e.offset + e.len).div_ceil(BLOCK));
        }
    }
}
