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

/// The points of `store`, reopened after a kill, against the oracle; returns the newest
/// checkpoint listed. Every ack (the child's `acks`, with their hashes, and `more_acks`) is
/// listed unless retention (keeping `keep` points) could have removed it, and the child's
/// hashes are the oracle's; the newest point is at least the newest ack and is the lineage;
/// the points are contiguous, of generation `gen`, attached, and each reads back whole with
/// the size and SHA-256 of the source at its checkpoint; scrub passes.
#[allow(clippy::too_many_arguments)]
pub fn check_points(
    store: &blockdelta::replica::Store,
    oracle: &mut Oracle,
    acks: &[(u64, String)],
    more_acks: &[u64],
    gen: GenerationId,
    keep: u64,
    what: &str,
) -> u64 {
    let points = store.points();
    let newest = points.last().map_or(0, |p| p.id.sequence);
    let max_ack = acks
        .iter()
        .map(|a| a.0)
        .chain(more_acks.iter().copied())
        .max()
        .unwrap_or(0);
    assert!(
        newest >= max_ack,
        "{what}: newest point {newest} is older than ack {max_ack}"
    );
    assert_eq!(
        store.lineage(),
        (newest > 0).then_some((gen, newest)),
        "{what}: lineage"
    );
    for (seq, h) in acks {
        assert_eq!(
            *h,
            hex(&oracle.at(*seq).0),
            "{what}: the child acked {seq} with another image than the oracle's"
        );
    }
    for seq in acks.iter().map(|a| a.0).chain(more_acks.iter().copied()) {
        if seq + keep > newest {
            assert!(
                points.iter().any(|p| p.id.sequence == seq),
                "{what}: acknowledged point {seq} lost (newest {newest})"
            );
        }
    }
    for (i, p) in points.iter().enumerate() {
        assert_eq!(p.id.generation, gen);
        assert!(!p.detached);
        if i > 0 {
            assert_eq!(
                p.id.sequence,
                points[i - 1].id.sequence + 1,
                "{what}: listed points are not contiguous"
            );
        }
        let (h, size) = oracle.at(p.id.sequence);
        assert_eq!(p.disk_size, size, "{what}: size of point {}", p.id.sequence);
        let mut got = vec![0u8; size as usize];
        store
            .read_at(p.id, 0, &mut got)
            .unwrap_or_else(|e| panic!("{what}: read {}: {e}", p.id.sequence));
        assert!(
            sha256(&got) == h,
            "{what}: point {} differs from the source at that checkpoint",
            p.id.sequence
        );
    }
    store
        .scrub()
        .unwrap_or_else(|e| panic!("{what}: scrub: {e}"));
    newest
}
