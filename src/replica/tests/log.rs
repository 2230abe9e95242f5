//! The manifest log record: any change of the lists round-trips exactly, and a damaged or
//! misapplied record is refused without a panic.

use super::*;
use crate::replica::manifest::{BaseLevel, BundleRec, PackRec, Pending, PointRec, Retention};
use crate::tracker::GenerationId;

/// `n` rounds, a few under miri (these tests exercise safe code; miri is there for `unsafe`).
fn rounds(n: usize) -> usize {
    if cfg!(miri) {
        n.min(3)
    } else {
        n
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn point(rng: &mut Rng, seq: u64) -> PointRec {
    PointRec {
        layer: 1 + rng.below(1 << 20),
        generation: GenerationId([rng.below(3) as u8; 16]),
        from_seq: seq,
        to_seq: seq + 1,
        disk_size: 1 + rng.below(1 << 40),
        time_ns: rng.next(),
        ingested_ns: rng.next(),
        bookmark_id: rng.below(4),
        app: rng.below(2) == 0,
        bookmarked: rng.below(2) == 0,
        detached: false,
        label: "x".repeat(rng.below(20) as usize),
        stored_bytes: rng.next() >> 8,
    }
}

fn pack(rng: &mut Rng, id: u64) -> PackRec {
    PackRec {
        id,
        data_len: 4096 + rng.below(1 << 30),
        bundle: rng.below(3),
        offset: rng.below(4) * 4096,
    }
}

fn manifest(rng: &mut Rng) -> Manifest {
    let mut seq = 0;
    let points = (0..rng.below(40))
        .map(|_| {
            seq += 1 + rng.below(3);
            point(rng, seq)
        })
        .collect();
    let mut id = 0;
    let packs = (0..rng.below(40))
        .map(|_| {
            id += 1 + rng.below(3);
            pack(rng, id)
        })
        .collect();
    let bundles = (0..rng.below(5))
        .map(|i| BundleRec {
            id: 1000 + i,
            len: rng.next() >> 20,
        })
        .collect();
    Manifest {
        counter: 1 + rng.below(1000),
        store_id: [7; 16],
        disk_id: [8; 16],
        created_ns: 5,
        next_object: rng.below(1 << 30),
        lineage: Some((GenerationId([1; 16]), rng.below(100))),
        base: (0..rng.below(6))
            .map(|i| BaseLevel {
                layer: 2000 + i,
                runs: rng.below(1000),
            })
            .collect(),
        base_size: rng.below(1 << 40),
        retention: Retention {
            max_points: Some(rng.below(5) + 1),
            ..Retention::default()
        },
        points,
        packs,
        bundles,
        pending: (rng.below(2) == 0).then_some(Pending { pack: 3, resume: 4 }),
    }
}

/// A random change of `old` as the store makes them: some entries dropped, some changed in
/// place, some appended, and the scalars changed.
fn change(rng: &mut Rng, old: &Manifest) -> Manifest {
    let mut m = old.clone();
    m.counter += 1;
    let mut seq = m.points.last().map_or(0, |p| p.to_seq);
    m.points.retain(|_| rng.below(4) != 0);
    for p in &mut m.points {
        if rng.below(5) == 0 {
            p.layer += 1;
            p.detached = rng.below(2) == 0;
        }
    }
    for _ in 0..rng.below(4) {
        seq += 1;
        m.points.push(point(rng, seq));
    }
    let mut id = m.packs.iter().map(|p| p.id).max().unwrap_or(0);
    m.packs.retain(|_| rng.below(3) != 0);
    for p in &mut m.packs {
        if rng.below(3) == 0 {
            p.bundle = 77;
            p.offset = 8192;
        }
    }
    for _ in 0..rng.below(4) {
        id += 1;
        m.packs.push(pack(rng, id));
    }
    m.bundles.retain(|_| rng.below(2) != 0);
    m.next_object += rng.below(10);
    m.lineage = Some((GenerationId([2; 16]), rng.below(100)));
    m.pending = None;
    if rng.below(2) == 0 {
        m.base.push(BaseLevel {
            layer: 3000 + m.counter,
            runs: 5,
        });
    }
    if rng.below(4) == 0 {
        m.base.clear();
    }
    m
}

#[test]
fn every_change_round_trips_exactly() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..rounds(2000) {
        let old = manifest(&mut rng);
        let new = change(&mut rng, &old);
        let rec = encode_record(&old, &new).expect("a store's change has a record");
        let mut m = old.clone();
        apply_record(&mut m, &rec, "log", new.counter).unwrap();
        assert_eq!(m, new);
        // Not the point of a log: an unchanged list costs 16 bytes, an appended point its own.
        let same = {
            let mut n = old.clone();
            n.counter += 1;
            encode_record(&old, &n).unwrap()
        };
        assert_eq!(same.len(), 16 + 8 + 16 + 112 + 4 * 16 + 4);
    }
}

/// Lists the key cannot describe in place (the same keys reordered) still round-trip, or
/// yield no record (the commit then writes a checkpoint).
#[test]
fn reordered_lists_round_trip_or_ask_for_a_checkpoint() {
    let mut rng = Rng(42);
    for _ in 0..rounds(500) {
        let old = manifest(&mut rng);
        let mut new = old.clone();
        new.counter += 1;
        new.packs.reverse();
        let n = new.points.len();
        let k = rng.below(n as u64 + 1) as usize % n.max(1);
        new.points.rotate_left(k);
        if let Some(rec) = encode_record(&old, &new) {
            let mut m = old.clone();
            apply_record(&mut m, &rec, "log", new.counter).unwrap();
            assert_eq!(m, new);
        }
    }
}

/// A record applied to the wrong state, of the wrong commit or store, damaged, or truncated is
/// refused, and never panics.
#[test]
fn a_misapplied_or_damaged_record_is_refused() {
    let mut rng = Rng(7);
    let old = loop {
        let m = manifest(&mut rng);
        if m.points.len() > 3 && m.packs.len() > 3 {
            break m;
        }
    };
    let new = change(&mut rng, &old);
    let rec = encode_record(&old, &new).unwrap();
    let refused = |m: &mut Manifest, b: &[u8], c: u64| apply_record(m, b, "log", c).is_err();
    // Wrong commit number, wrong predecessor, another store.
    assert!(refused(&mut old.clone(), &rec, new.counter + 1));
    let mut later = old.clone();
    later.counter += 1;
    assert!(refused(&mut later, &rec, new.counter));
    let mut other = old.clone();
    other.store_id = [9; 16];
    assert!(refused(&mut other, &rec, new.counter));
    // A state with another number of points or packs.
    let mut fewer = old.clone();
    fewer.points.pop();
    assert!(refused(&mut fewer, &rec, new.counter));
    let mut fewer = old.clone();
    fewer.packs.pop();
    assert!(refused(&mut fewer, &rec, new.counter));
    // Every truncation and every flipped byte (the CRC catches them).
    let step = if cfg!(miri) { 97 } else { 1 };
    for n in (0..rec.len()).step_by(step) {
        assert!(refused(&mut old.clone(), &rec[..n], new.counter));
    }
    for i in (0..rec.len()).step_by(step) {
        let mut b = rec.clone();
        b[i] ^= 0x40;
        assert!(refused(&mut old.clone(), &b, new.counter), "byte {i}");
    }
}

/// A forger's record (CRC fixed) with any field changed is refused or applies to a state the
/// manifest check then judges; counts that claim more than the record holds are refused
/// before anything is allocated for them.
#[test]
fn forged_records_never_panic_or_allocate_for_claims() {
    let mut rng = Rng(99);
    for _ in 0..rounds(200) {
        let old = manifest(&mut rng);
        let new = change(&mut rng, &old);
        let rec = encode_record(&old, &new).unwrap();
        for _ in 0..rounds(50) {
            let mut b = rec.clone();
            let body = b.len() - 4;
            let at = 16 + rng.below(body as u64 - 16) as usize;
            b[at] = rng.next() as u8;
            if rng.below(2) == 0 && at + 4 <= body {
                b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            }
            let crc = crc32fast::hash(&b[..body]);
            b[body..].copy_from_slice(&crc.to_le_bytes());
            let mut m = old.clone();
            if apply_record(&mut m, &b, "log", new.counter).is_ok() {
                let _ = m.check();
            }
        }
    }
}

#[test]
fn log_names_parse_back() {
    assert_eq!(log_counter(&log_name(0x1234)), Some(0x1234));
    assert_eq!(log_counter("log-12"), None);
    assert_eq!(log_counter("log-zzzzzzzzzzzzzzzz"), None);
    assert_eq!(log_counter("layer-0000000000000001"), None);
    assert_eq!(log_counter("log-+000000000000002"), None);
    assert_eq!(log_counter("log-000000000000000A"), None);
}

#[test]
fn the_manifest_knows_its_encoded_length() {
    let mut rng = Rng(5);
    for _ in 0..rounds(200) {
        let m = manifest(&mut rng);
        assert_eq!(m.encoded_len(), m.encode().len() as u64);
    }
}
