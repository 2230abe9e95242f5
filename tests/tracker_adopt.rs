//! `Tracker::adopt_lineage`: after a replica store rolled back to an older point and started a
//! new lineage, the tracker's next checkpoint is the stream that store accepts (new generation,
//! `from_sequence` = the store's point, every extent it listed plus everything not committed),
//! without losing a concurrent write, and without ever issuing a number twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::thread;

use blockdelta::{
    CheckpointInfo, Extent, ExtentKind, GenerationId, Tracker, TrackerConfig, TrackerError,
};

const BLOCK: u64 = 4096;
const DISK: u64 = 1 << 20; // 256 blocks

fn clean(disk: u64) -> Tracker {
    Tracker::new(
        TrackerConfig::new(disk)
            .granularity(BLOCK as u32)
            .start_clean(true),
    )
    .unwrap()
}

fn gen(b: u8) -> GenerationId {
    GenerationId([b; 16])
}

/// Every extent of the pending checkpoint, read in small batches.
fn read(t: &Tracker, info: &CheckpointInfo) -> Vec<Extent> {
    let mut cursor = info.cursor();
    let mut out = Vec::new();
    let mut buf = [Extent::default(); 3];
    loop {
        let n = t.extents(&mut cursor, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(out.len() as u64, info.extent_count);
    out
}

/// Block -> reported as a discard.
fn blocks(extents: &[Extent]) -> BTreeMap<u64, bool> {
    let mut m = BTreeMap::new();
    for e in extents {
        for b in e.offset / BLOCK..(e.offset + e.len).div_ceil(BLOCK) {
            assert!(m.insert(b, e.kind == ExtentKind::Discard).is_none());
        }
    }
    m
}

fn take(t: &Tracker) -> (CheckpointInfo, BTreeMap<u64, bool>) {
    let info = t.take().unwrap();
    let b = blocks(&read(t, &info));
    (info, b)
}

fn ext(first: u64, count: u64) -> Extent {
    Extent::new(first * BLOCK, count * BLOCK)
}

#[test]
fn the_next_take_is_the_new_lineage_with_store_extents_and_everything_not_committed() {
    let t = clean(DISK);
    let old = t.generation();
    let (c1, _) = {
        t.mark_write(0, BLOCK).unwrap();
        take(&t)
    };
    t.commit(c1.generation, c1.sequence).unwrap();
    // Pending: a write (block 1) and a whole-block discard (10, 11).
    t.mark_write(BLOCK, 1).unwrap();
    t.mark_discard(10 * BLOCK, 2 * BLOCK).unwrap();
    let (pending, _) = take(&t);
    assert_eq!(pending.sequence, 2);
    // Live, not taken: a write (20) and a discard (30).
    t.mark_write(20 * BLOCK + 100, 10).unwrap();
    t.mark_discard(30 * BLOCK, BLOCK).unwrap();
    let writes_before = t.stats().writes;
    let aborted_before = t.stats().checkpoints_aborted;

    // The store's list: unsorted, overlapping, unaligned, a discard kind, an empty extent, and
    // block 10 (a pending discard), which becomes a write.
    let store = [
        ext(41, 2),
        Extent::new(40 * BLOCK + 7, BLOCK),
        ext(10, 1),
        Extent::discard(50 * BLOCK, BLOCK),
        Extent::new(DISK, 0),
        ext(255, 1),
    ];
    let g = gen(7);
    t.adopt_lineage(g, 100, &store).unwrap();
    assert_eq!(t.generation(), g);
    assert_eq!(t.pending(), None, "the pending checkpoint was folded back");
    assert_eq!(t.stats().checkpoints_aborted, aborted_before + 1);
    assert_eq!(
        t.stats().writes,
        writes_before,
        "the store's extents are not workload writes"
    );

    // The old checkpoint can never be committed, in either generation.
    assert_eq!(
        t.commit(pending.generation, pending.sequence),
        Err(TrackerError::NoCheckpoint)
    );
    let (next, got) = take(&t);
    assert_eq!(next.generation, g);
    assert_eq!(next.from_sequence, 100);
    assert!(next.sequence > 100);
    let mut want = BTreeMap::new();
    // The pending checkpoint's discard (11) comes back as a write (adopt merges no discard
    // bit, see its documentation); the live discard (30) stays a discard.
    for b in [1, 20, 10, 11, 40, 41, 42, 50, 255] {
        want.insert(b, false);
    }
    want.insert(30, true);
    assert_eq!(got, want);
    assert!(matches!(
        t.commit(old, next.sequence),
        Err(TrackerError::WrongCheckpoint { .. })
    ));
    assert!(matches!(
        t.commit(pending.generation, pending.sequence),
        Err(TrackerError::WrongCheckpoint { .. })
    ));
    t.commit(g, next.sequence).unwrap();
    let (after, rest) = take(&t);
    assert!(rest.is_empty());
    assert_eq!(
        (after.generation, after.from_sequence, after.sequence),
        (g, next.sequence, next.sequence + 1)
    );
}

#[test]
fn adopting_without_a_pending_checkpoint_and_with_no_extents() {
    let t = clean(DISK);
    t.mark_write(5 * BLOCK, BLOCK).unwrap();
    t.adopt_lineage(gen(1), 0, &[]).unwrap();
    let (c, got) = take(&t);
    assert_eq!((c.generation, c.from_sequence, c.sequence), (gen(1), 0, 1));
    assert_eq!(got, BTreeMap::from([(5, false)]));
    assert_eq!(t.stats().checkpoints_aborted, 0);
}

#[test]
fn invalid_extents_change_nothing() {
    // Two trackers with the same history; one gets refused adopts, the other nothing.
    let history = |t: &Tracker| {
        t.mark_write(0, 3 * BLOCK).unwrap();
        t.mark_discard(8 * BLOCK, 4 * BLOCK).unwrap();
        let (c, _) = take(t);
        t.commit(c.generation, c.sequence).unwrap();
        t.mark_write(100 * BLOCK, BLOCK).unwrap();
        t.mark_discard(120 * BLOCK, BLOCK).unwrap();
        let (c, _) = take(t);
        t.mark_write(200 * BLOCK, BLOCK).unwrap();
        c
    };
    let (a, b) = (clean(DISK), clean(DISK));
    let (pa, pb) = (history(&a), history(&b));
    let gen_a = a.generation();
    let bad = [
        [ext(1, 1), Extent::new(DISK - BLOCK, BLOCK + 1)],
        [Extent::new(u64::MAX, 2), ext(1, 1)],
        [ext(1, 1), Extent::new(DISK + BLOCK, 0)],
    ];
    for list in bad {
        let err = a.adopt_lineage(gen(9), 3, &list).unwrap_err();
        assert!(matches!(err, TrackerError::OutOfRange { .. }), "{err:?}");
        assert!(err.to_string().contains("past the disk end"), "{err}");
    }
    // A refused lineage changes nothing either.
    let err = a.adopt_lineage(gen_a, 1, &[ext(1, 1)]).unwrap_err();
    assert!(
        matches!(err, TrackerError::LineageRejected { .. }),
        "{err:?}"
    );
    let err = a.adopt_lineage(gen(9), u64::MAX, &[ext(1, 1)]).unwrap_err();
    assert!(
        matches!(err, TrackerError::LineageRejected { .. }),
        "{err:?}"
    );
    assert_eq!(a.generation(), gen_a);
    assert_eq!(a.pending(), Some(pa));
    assert_eq!(a.stats().checkpoints_aborted, 0);
    let (ra, rb) = (read(&a, &pa), read(&b, &pb));
    assert_eq!(ra, rb);
    for t in [&a, &b] {
        let p = t.pending().unwrap();
        t.abort(p.sequence).unwrap();
    }
    let ((ca, xa), (cb, xb)) = (take(&a), take(&b));
    assert_eq!(xa, xb);
    assert_eq!(
        (ca.sequence, ca.from_sequence, ca.dirty_blocks),
        (cb.sequence, cb.from_sequence, cb.dirty_blocks)
    );
    assert_eq!(ca.generation, gen_a);
}

#[test]
fn numbers_already_issued_in_the_current_generation_are_never_reissued() {
    let t = clean(DISK);
    t.adopt_lineage(gen(1), 10, &[]).unwrap();
    // The same lineage again before a take: idempotent apart from the marks.
    t.adopt_lineage(gen(1), 10, &[ext(3, 1)]).unwrap();
    t.adopt_lineage(gen(1), 10, &[ext(4, 1)]).unwrap();
    let (c, got) = take(&t);
    assert_eq!((c.from_sequence, c.sequence), (10, 11));
    assert_eq!(got, BTreeMap::from([(3, false), (4, false)]));
    // 11 is issued: adopting 10 again in this generation would issue 11 twice.
    let err = t.adopt_lineage(gen(1), 10, &[ext(5, 1)]).unwrap_err();
    match &err {
        TrackerError::LineageRejected {
            generation,
            sequence,
            current_generation,
            issued,
            ..
        } => assert_eq!(
            (*generation, *sequence, *current_generation, *issued),
            (gen(1), 10, gen(1), 11)
        ),
        e => panic!("{e:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("issued twice") && msg.contains("/10"), "{msg}");
    assert_eq!(
        t.pending(),
        Some(c),
        "a refused adopt leaves the pending checkpoint"
    );
    // The store reports it applied 11: adopting (gen 1, 11) is allowed; the next number is 12.
    t.adopt_lineage(gen(1), 11, &[]).unwrap();
    let (c, got) = take(&t);
    assert_eq!((c.from_sequence, c.sequence), (11, 12));
    assert_eq!(got, BTreeMap::from([(3, false), (4, false)]));
    t.commit(c.generation, c.sequence).unwrap();
    // A new generation may start anywhere, also below what the old one issued.
    t.adopt_lineage(gen(2), 0, &[]).unwrap();
    let mut seen = BTreeSet::new();
    let mut committed = 0;
    for i in 0..50u64 {
        t.mark_write((i % 200) * BLOCK, BLOCK).unwrap();
        let c = t.take().unwrap();
        assert_eq!(c.generation, gen(2));
        assert_eq!(c.from_sequence, committed);
        assert!(c.sequence > committed && seen.insert(c.sequence), "{c:?}");
        if i % 3 == 0 {
            t.abort(c.sequence).unwrap();
        } else {
            t.commit(c.generation, c.sequence).unwrap();
            committed = c.sequence;
        }
        if i == 25 {
            // Same generation, at the last issued number (the store applied it, or is there).
            let issued = *seen.iter().max().unwrap();
            t.adopt_lineage(gen(2), issued, &[]).unwrap();
            committed = issued;
        }
    }
}

#[test]
fn a_write_racing_adopts_is_never_lost() {
    // Each writer marks its own blocks once each, recording them after the mark returns; the
    // main thread takes, then either commits (delivered) or adopts a new lineage (which folds
    // the taken set back), over and over while they write.
    const WRITERS: u64 = 3;
    const PER_WRITER: u64 = 20_000;
    let disk = WRITERS * PER_WRITER * BLOCK;
    let t = Arc::new(clean(disk));
    let written: Arc<Mutex<Vec<u64>>> = Arc::default();
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (t, written) = (t.clone(), written.clone());
            thread::spawn(move || {
                let mut mine = Vec::with_capacity(PER_WRITER as usize);
                for i in 0..PER_WRITER {
                    let b = w * PER_WRITER + i;
                    if i % 7 == 0 {
                        t.mark_discard(b * BLOCK, BLOCK).unwrap();
                    } else {
                        t.mark_write(b * BLOCK + 1, 1).unwrap();
                    }
                    mine.push(b);
                }
                written.lock().unwrap().extend(mine);
            })
        })
        .collect();
    let mut delivered = BTreeSet::new();
    let mut generation_byte = 0u8;
    let mut committed = 0;
    let mut rounds = 0;
    let mut adopts = 0;
    let finish = |t: &Tracker, delivered: &mut BTreeSet<u64>, committed: &mut u64| {
        let (c, got) = take(t);
        assert_eq!(c.from_sequence, *committed);
        delivered.extend(got.keys());
        t.commit(c.generation, c.sequence).unwrap();
        *committed = c.sequence;
    };
    while !handles.iter().all(|h| h.is_finished()) || rounds < 10 {
        rounds += 1;
        if rounds % 2 == 0 {
            finish(&t, &mut delivered, &mut committed);
        } else {
            let c = t.take().unwrap();
            let _ = read(&t, &c);
            generation_byte = generation_byte.wrapping_add(1);
            let s = u64::from(generation_byte) * 1000;
            let store = [Extent::new((rounds % 50) * 1000 * BLOCK, 3 * BLOCK)];
            t.adopt_lineage(gen(generation_byte), s, &store).unwrap();
            committed = s;
            adopts += 1;
        }
    }
    for h in handles {
        h.join().unwrap();
    }
    finish(&t, &mut delivered, &mut committed);
    let written = written.lock().unwrap();
    assert_eq!(written.len() as u64, WRITERS * PER_WRITER);
    let lost: Vec<_> = written
        .iter()
        .filter(|b| !delivered.contains(b))
        .take(10)
        .collect();
    assert!(
        lost.is_empty(),
        "blocks lost across {adopts} adopts: {lost:?}"
    );
    assert!(adopts > 0);
}

#[test]
fn a_mark_that_returned_before_an_adopt_is_in_the_next_take() {
    let t = Arc::new(clean(DISK));
    for round in 0..200u64 {
        let b = round % 256;
        let w = {
            let t = t.clone();
            thread::spawn(move || t.mark_write(b * BLOCK, BLOCK).unwrap())
        };
        w.join().unwrap();
        if round % 2 == 0 {
            let _ = t.take().unwrap();
        }
        t.adopt_lineage(gen((round % 250) as u8 + 1), round, &[])
            .unwrap();
        let (c, got) = take(&t);
        assert_eq!((c.from_sequence, c.sequence), (round, round + 1));
        assert!(
            got.contains_key(&b),
            "round {round}: block {b} missing: {got:?}"
        );
        t.commit(c.generation, c.sequence).unwrap();
    }
}
