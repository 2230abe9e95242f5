//! Fuzz loading a tracker state file that was damaged or forged (`docs/TRACKER.md`).
//!
//! The seed is the committed test vector (`tests/vectors/tracker/clean.state`). Byte 0 of the
//! input picks the mutation (bits 0-1):
//! - 0: the rest of the input is the file;
//! - 1: the rest is (offset u16 LE, xor u8) triples applied to the vector in turn;
//! - 2: the vector truncated at (u16 LE mod its length);
//! - 3: the rest is appended to the vector;
//!
//! and with bit 7 set, the trailing CRC-32 is recomputed as a forger would, so that mutated
//! fields reach the structural checks. The file is opened with the vector's configuration,
//! then a checkpoint is taken, read and committed, and the tracker closed. Any reset is fine; a
//! panic, a hang or an unbounded allocation is a bug. Beyond that: when the CRC was not
//! recomputed, the only states that load (`Resumed`) are the vector's own.
#![no_main]

use blockdelta::tracker::{Extent, GenerationId, TrackerConfig};
use blockdelta::{LoadOutcome, PersistOptions, PersistentTracker};
use libfuzzer_sys::fuzz_target;

const VECTOR: &[u8] = include_bytes!("../../tests/vectors/tracker/clean.state");
const DISK: u64 = 1 << 20;

fn dir() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let d = base.join(format!("blockdelta-fuzz-tracker-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fuzz_target!(|data: &[u8]| {
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    let mut file = VECTOR.to_vec();
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
            file.truncate(cut % VECTOR.len());
        }
        _ => file.extend_from_slice(rest),
    }
    let resealed = how & 0x80 != 0;
    if resealed && file.len() >= 4 {
        let n = file.len() - 4;
        let crc = crc32fast::hash(&file[..n]);
        file[n..].copy_from_slice(&crc.to_le_bytes());
    }
    let path = dir().join("tracker.state");
    std::fs::write(&path, &file).unwrap();
    let config = TrackerConfig::new(DISK).granularity(4096);
    let options = PersistOptions::new(*b"blockdelta-vec-1");
    let (pt, outcome) = PersistentTracker::open(&path, config, options).unwrap();
    if let LoadOutcome::Resumed { generation, .. } = outcome {
        if !resealed {
            assert_eq!(file, VECTOR, "an unsealed mutation loaded");
            assert_eq!(generation, GenerationId(core::array::from_fn(|i| i as u8)));
        }
    }
    let info = pt.take().unwrap();
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
