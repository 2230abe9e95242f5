//! G3 with the stream tamper set (the classes of `tests/stream_tamper.rs`): every hostile
//! stream offered to a store is refused, no visible point changes (same list, same bytes), and
//! nothing is left behind (no upload, no unreferenced object after reopening).

#[path = "common/hand.rs"]
mod hand;
#[path = "common/source.rs"]
mod source;

use std::collections::HashMap;

use blockdelta::replica::{PointId, ReplicaError, Store, StoreConfig};
use blockdelta::Secret;
use hand::{data_value, fix_crc, hand_stream, range_value, record};
use source::{Rng, Source};

const DISK_ID: [u8; 16] = *b"tamper-test-disk";
const SIZE: u64 = 256 << 10;

fn ingest(store: &Store, stream: &[u8], secret: Option<&[u8]>) -> Result<PointId, ReplicaError> {
    let mut ing = store.ingest(secret.map(|s| Secret::new(s).unwrap()))?;
    for c in stream.chunks(7001) {
        ing.push(c)?;
    }
    Ok(ing.finish()?.point.id)
}

/// Splits a stream into its frames.
fn frames(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < stream.len() {
        let len = 24 + u32::from_le_bytes(stream[pos + 16..pos + 20].try_into().unwrap()) as usize;
        out.push(stream[pos..pos + len].to_vec());
        pos += len;
    }
    out
}

struct Fixture {
    store: Store,
    oracle: HashMap<PointId, Vec<u8>>,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn check_unchanged(&self, before: &[blockdelta::replica::PointInfo], what: &str) {
        assert_eq!(
            self.store.points(),
            before,
            "{what}: the point list changed"
        );
        for p in before {
            let mut b = vec![0u8; p.disk_size as usize];
            self.store.read_at(p.id, 0, &mut b).unwrap();
            assert!(
                b == self.oracle[&p.id],
                "{what}: point {} changed",
                p.id.sequence
            );
        }
        let uploads = std::fs::read_dir(self.dir.path().join("s/uploads"))
            .unwrap()
            .count();
        assert_eq!(uploads, 0, "{what}: an upload was left behind");
    }
}

#[test]
fn every_hostile_stream_is_refused_and_changes_nothing() {
    for secret in [None, Some(&b"tamper secret, 16 bytes+"[..])] {
        let mut rng = Rng(31);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path().join("s"), StoreConfig::new(DISK_ID)).unwrap();
        let mut src = Source::new(DISK_ID, SIZE, 4096);
        src.secret = secret.map(|s| s.to_vec());
        let mut oracle = HashMap::new();
        for _ in 0..3 {
            src.churn(&mut rng, 20);
            let to = src.seq + 1;
            let id = ingest(&store, &src.stream(to, 16384), secret).unwrap();
            oracle.insert(id, src.disk.clone());
            src.commit(to);
        }
        let fx = Fixture { store, oracle, dir };
        let before = fx.store.points();
        src.churn(&mut rng, 20);
        let good = src.stream(src.seq + 1, 16384);
        let f = frames(&good);
        assert!(f.len() >= 5, "a stream of several frames");
        let mut hostile: Vec<(String, Vec<u8>)> = Vec::new();
        // Single bits flipped (CRC, AEAD or a field catches it)
        // (every byte of the header frame and the first record frame, then every 61st byte)
        let dense = f[0].len() + f[1].len();
        for pos in (0..good.len()).filter(|&p| p < dense || p % 61 == 0) {
            let mut b = good.clone();
            b[pos] ^= 1 << (pos % 8);
            hostile.push((format!("bit flip at byte {pos}"), b));
        }
        // Flipped in the body with the frame CRC re-signed (only AEAD or field checks remain).
        if secret.is_some() {
            for i in 1..f.len() {
                let mut g = f.clone();
                g[i][30] ^= 0x10;
                fix_crc(&mut g[i]);
                hostile.push((
                    format!("re-signed ciphertext flip in frame {i}"),
                    g.concat(),
                ));
            }
        }
        // Truncated at every frame boundary and mid-frame.
        let mut cut = 0;
        for frame in &f[..f.len() - 1] {
            cut += frame.len();
            hostile.push((format!("cut at {cut}"), good[..cut].to_vec()));
            hostile.push((format!("cut at {}", cut + 10), good[..cut + 10].to_vec()));
        }
        // Reordered, replayed, duplicated and dropped frames.
        for i in 1..f.len() - 1 {
            let mut g = f.clone();
            g.swap(i, i + 1);
            hostile.push((format!("frames {i} and {} swapped", i + 1), g.concat()));
            let mut g = f.clone();
            g.insert(i + 1, f[i].clone());
            hostile.push((format!("frame {i} duplicated"), g.concat()));
            let mut g = f.clone();
            g.remove(i);
            hostile.push((format!("frame {i} dropped"), g.concat()));
        }
        // Trailing bytes after END.
        let mut t = good.clone();
        t.extend_from_slice(&f[1]);
        hostile.push(("trailing frame after END".into(), t));
        // Wrong key.
        if secret.is_some() {
            let mut other =
                Source::from_image(DISK_ID, src.disk.clone(), src.generation, src.seq, 4096);
            other.secret = Some(b"another secret, 16 bytes".to_vec());
            let wrong = other.stream(src.seq + 1, 16384);
            hostile.push(("the same checkpoint under another key".into(), wrong));
        }
        for (what, bytes) in &hostile {
            let r = ingest(&fx.store, bytes, secret);
            assert!(r.is_err(), "{what}: accepted");
        }
        fx.check_unchanged(&before, "byte-level tampering");
        // Hand-built plain streams signed correctly (CRCs and END right), hostile in their
        // records: overlapping, descending, out of range, oversized, unknown must-understand.
        if secret.is_none() {
            let header = f[0].clone();
            let bodies: Vec<(&str, Vec<Vec<u8>>)> = vec![
                (
                    "overlapping DATA",
                    vec![
                        record(0x8001, &data_value(4096, 4, 0, b"abcd")),
                        record(0x8001, &data_value(4098, 4, 0, b"efgh")),
                    ],
                ),
                (
                    "descending ZERO/DISCARD",
                    vec![
                        record(0x8002, &range_value(8192, 10)),
                        record(0x8003, &range_value(0, 10)),
                    ],
                ),
                (
                    "DATA past the disk end",
                    vec![record(0x8001, &data_value(SIZE - 2, 4, 0, b"abcd"))],
                ),
                (
                    "ZERO overflowing u64",
                    vec![record(0x8002, &range_value(u64::MAX - 1, 4))],
                ),
                (
                    "extent past a RESIZE",
                    vec![
                        record(0x8004, &(SIZE / 2).to_le_bytes()),
                        record(0x8002, &range_value(SIZE / 2, 1)),
                    ],
                ),
                ("RESIZE to zero", vec![record(0x8004, &0u64.to_le_bytes())]),
                (
                    "DATA raw length above 1 MiB",
                    vec![record(0x8001, &data_value(0, (1 << 20) + 1, 1, b"xx"))],
                ),
                (
                    "lz4 payload that does not decompress",
                    vec![record(0x8001, &data_value(0, 4096, 1, &[0xff; 64]))],
                ),
                (
                    "unknown codec",
                    vec![record(0x8001, &data_value(0, 4, 9, b"abcd"))],
                ),
                (
                    "unknown must-understand record",
                    vec![record(0x8042, b"future")],
                ),
                (
                    "DATA then a hostile record",
                    vec![
                        record(0x8001, &data_value(0, 4096, 0, &[7; 4096])),
                        record(0x8042, b"x"),
                    ],
                ),
            ];
            for (what, b) in &bodies {
                let s = hand_stream(header.clone(), b);
                let r = ingest(&fx.store, &s, None);
                assert!(r.is_err(), "{what}: accepted");
            }
            // A frame claiming a huge body is refused at its header.
            let mut s = good.clone();
            let at = f[0].len();
            s[at + 16..at + 20].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
            assert!(
                ingest(&fx.store, &s, None).is_err(),
                "oversized frame accepted"
            );
            fx.check_unchanged(&before, "hand-built records");
        }
        // The intact stream still goes in afterwards.
        let id = ingest(&fx.store, &good, secret).unwrap();
        let mut b = vec![0u8; src.disk.len()];
        fx.store.read_at(id, 0, &mut b).unwrap();
        assert!(b == src.disk);
        // Reopened: nothing unreferenced survives.
        let Fixture { store, dir, .. } = fx;
        drop(store);
        let store = Store::open(dir.path().join("s")).unwrap();
        assert_eq!(store.points().len(), before.len() + 1);
        store.scrub().unwrap();
    }
}
