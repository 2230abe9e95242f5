//! Fuzz recovering a crashed tracker whose state file or activity log was damaged or forged
//! (`docs/TRACKER.md`, "Activity log").
//!
//! The seed is the committed vector of a crashed run (`tests/vectors/tracker/active.state` and
//! its log `active.state.al`). Byte 0 of the input picks the file (bit 2: the log, else the
//! state file) and the mutation (bits 0-1):
//! - 0: the rest of the input is the file;
//! - 1: the rest is (offset u16 LE, xor u8) triples applied to the file in turn;
//! - 2: the file truncated at (u16 LE mod its length);
//! - 3: the rest is appended to the file;
//!
//! and with bit 7 set, the CRC-32 is recomputed as a forger would (the state file's trailing
//! one; the log's first record's, from the counts in its header), so that mutated fields reach
//! the structural checks. The tracker is opened with the vector's configuration, then a
//! checkpoint is taken, read and committed, and the tracker closed. Any outcome is fine; a
//! panic, a hang or an unbounded allocation is a bug. Beyond that: an unsealed mutation of the
//! state file never recovers, and nothing but the vector's generation is ever continued.
#![no_main]

use blockdelta::tracker::{Extent, GenerationId, TrackerConfig};
use blockdelta::{ActivityLogConfig, LoadOutcome, PersistOptions, PersistentTracker};
use libfuzzer_sys::fuzz_target;

const STATE: &[u8] = include_bytes!("../../tests/vectors/tracker/active.state");
const LOG: &[u8] = include_bytes!("../../tests/vectors/tracker/active.state.al");
const DISK: u64 = 1 << 20;

fn dir() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let d = base.join(format!("blockdelta-fuzz-activity-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn mutate(seed: &[u8], how: u8, rest: &[u8]) -> Vec<u8> {
    let mut file = seed.to_vec();
    match how & 3 {
        0 => file = rest.to_vec(),
        1 => {
            for t in rest.chunks_exact(3) {
                let at = usize::from(u16::from_le_bytes([t[0], t[1]])) % file.len();
                file[at] ^= t[2];
            }
        }
        2 => {
            let cut = rest
                .get(..2)
                .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
            file.truncate(cut % seed.len());
        }
        _ => file.extend_from_slice(rest),
    }
    file
}

/// Recomputes the CRC of the log's first record from the counts in its header.
fn reseal_record(log: &mut [u8]) {
    if log.len() < 48 {
        return;
    }
    let count = |at: usize| u32::from_le_bytes(log[at..at + 4].try_into().unwrap()) as usize;
    let body = 48 + 8 * count(32) + 8 * count(36) + 16 * count(40);
    if body + 4 <= log.len() {
        let crc = crc32fast::hash(&log[..body]);
        log[body..body + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    let on_log = how & 4 != 0;
    let resealed = how & 0x80 != 0;
    let (mut state, mut log) = (STATE.to_vec(), LOG.to_vec());
    if on_log {
        log = mutate(LOG, how, rest);
        if resealed {
            reseal_record(&mut log);
        }
    } else {
        state = mutate(STATE, how, rest);
        if resealed && state.len() >= 4 {
            let n = state.len() - 4;
            let crc = crc32fast::hash(&state[..n]);
            state[n..].copy_from_slice(&crc.to_le_bytes());
        }
    }
    let d = dir();
    let path = d.join("active.state");
    std::fs::write(&path, &state).unwrap();
    std::fs::write(d.join("active.state.al"), &log).unwrap();
    let config = TrackerConfig::new(DISK).granularity(4096);
    let al = ActivityLogConfig::default()
        .region_size(64 << 10)
        .active_regions(2);
    let options = PersistOptions::new(*b"blockdelta-vec-2").activity_log(al);
    let (pt, outcome) = PersistentTracker::open(&path, config, options).unwrap();
    if let LoadOutcome::Recovered { .. } | LoadOutcome::Resumed { .. } = outcome {
        if !on_log && !resealed {
            assert_eq!(state, STATE, "an unsealed mutation of the state file loaded");
        }
    }
    let info = pt.take().unwrap();
    if !outcome.is_reset() && (on_log || !resealed) {
        // The state file's generation field (bytes 40..56): only the vector's is continued.
        let vector = GenerationId(STATE[40..56].try_into().unwrap());
        assert_eq!(info.generation, vector);
    }
    let mut cursor = info.cursor();
    let mut buf = [Extent::default(); 16];
    let mut bytes = 0;
    loop {
        let n = pt.tracker().extents(&mut cursor, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        bytes += buf[..n].iter().map(|e| e.len).sum::<u64>();
    }
    assert_eq!(bytes, info.dirty_bytes);
    pt.commit(info.generation, info.sequence).unwrap();
    pt.close().unwrap();
});
