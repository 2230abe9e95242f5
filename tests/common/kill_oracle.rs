//! What the kill -9 tests of the replica store share (`tests/replica_kill.rs` on a local
//! directory, `tests/replica_object_kill.rs` on object storage): the oracle that regenerates
//! the deterministic source at any checkpoint and remembers each checkpoint's hash, the ack
//! log the child writes, and small helpers. The test file declares `mod source;` (from
//! `common/source.rs`) beside this module.

use std::path::Path;

use blockdelta::GenerationId;

use crate::source::Source;

pub fn sha256(b: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, b);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Complete lines of the ack log of generation `gen`: (sequence, hash).
pub fn read_acks(log: &Path, gen: GenerationId) -> Vec<(u64, String)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut out = Vec::new();
    // A line without its newline was being written when the child died: not acknowledged.
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    for line in complete.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 3, "bad ack line {line:?}");
        assert_eq!(f[0], hex(&gen.0), "ack of a foreign generation");
        out.push((f[1].parse().unwrap(), f[2].to_string()));
    }
    out
}

/// The source at every checkpoint, regenerated from the seed: `start` is checkpoint 0 and
/// `step(src, seed, k)` applies checkpoint `k`'s changes (a function of the seed and `k`).
pub struct Oracle {
    pub seed: u64,
    /// The source at checkpoint `frontier.seq`.
    pub frontier: Source,
    /// Per checkpoint (index = sequence): SHA-256 and size of the image.
    hashes: Vec<([u8; 32], u64)>,
    step: fn(&mut Source, u64, u64),
}

impl Oracle {
    pub fn new(seed: u64, start: Source, step: fn(&mut Source, u64, u64)) -> Self {
        let h = (sha256(&start.disk), start.size());
        Oracle {
            seed,
            frontier: start,
            hashes: vec![h],
            step,
        }
    }

    pub fn advance_to(&mut self, s: u64) {
        while self.frontier.seq < s {
            let k = self.frontier.seq + 1;
            (self.step)(&mut self.frontier, self.seed, k);
            self.hashes
                .push((sha256(&self.frontier.disk), self.frontier.size()));
            self.frontier.commit(k);
        }
    }

    /// SHA-256 and size of the image at checkpoint `s`.
    pub fn at(&mut self, s: u64) -> ([u8; 32], u64) {
        self.advance_to(s);
        self.hashes[s as usize]
    }
}
