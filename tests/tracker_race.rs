//! The race that matters: a write whose mark overlaps `take()` must appear in the taken set or in
//! the next one, never in neither. Writer threads hammer the tracker while a replication thread
//! takes, reads and commits (or aborts) checkpoints as fast as it can; afterwards every single
//! write is checked against the sets that were taken while it could have been in flight.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use blockdelta::{Extent, ExtentKind, Tracker, TrackerConfig};

const BLOCK: u64 = 4096;
const BLOCKS: u64 = 1 << 15; // 128 MiB disk: several summary levels
const DISK: u64 = BLOCKS * BLOCK;
/// Checkpoints the consumer must have taken before the writers may stop.
const MIN_TAKES: usize = 8;

/// Tiny deterministic PRNG (splitmix64) so a failure can be replayed from the seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

struct Write {
    offset: u64,
    len: u64,
    /// Checkpoints whose take had finished before the mark started.
    taken_before: usize,
    /// Checkpoints whose take had started when the mark returned.
    started_after: usize,
}

/// One taken set as a per-block bitmap, and whether it was committed or aborted.
struct TakenSet {
    blocks: Vec<bool>,
    aborted: bool,
}

fn run(writers: usize, writes_per_thread: usize, abort_every: usize, seed: u64) {
    let tracker = Arc::new(
        Tracker::new(
            TrackerConfig::new(DISK)
                .granularity(BLOCK as u32)
                .start_clean(true),
        )
        .unwrap(),
    );
    let takes_started = Arc::new(AtomicUsize::new(0));
    let takes_done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Set when the consumer thread ends, even by a panic: writers must not wait for its
    // checkpoints forever (the panic then fails the test at `join`).
    let consumer_gone = Arc::new(AtomicBool::new(false));

    let consumer = {
        let (tracker, started, done, stop, gone) = (
            tracker.clone(),
            takes_started.clone(),
            takes_done.clone(),
            stop.clone(),
            consumer_gone.clone(),
        );
        std::thread::spawn(move || {
            struct Gone(Arc<AtomicBool>);
            impl Drop for Gone {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
            let _gone = Gone(gone);
            let mut sets = Vec::new();
            let mut buf = vec![Extent::default(); 256];
            let mut last_round = false;
            loop {
                // One more take after the writers stopped catches everything still live.
                if stop.load(Ordering::SeqCst) {
                    last_round = true;
                }
                started.fetch_add(1, Ordering::SeqCst);
                let info = tracker.take().unwrap();
                done.fetch_add(1, Ordering::SeqCst);
                let mut blocks = vec![false; BLOCKS as usize];
                let mut cursor = info.cursor();
                loop {
                    let n = tracker.extents(&mut cursor, &mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    for e in &buf[..n] {
                        for b in e.offset / BLOCK..(e.offset + e.len).div_ceil(BLOCK) {
                            blocks[b as usize] = true;
                        }
                    }
                }
                let aborted = abort_every != 0 && sets.len() % abort_every == abort_every - 1;
                if aborted {
                    tracker.abort(info.sequence).unwrap();
                } else {
                    tracker.commit(info.generation, info.sequence).unwrap();
                }
                sets.push(TakenSet { blocks, aborted });
                if last_round && !aborted {
                    return sets;
                }
            }
        })
    };

    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (tracker, started, done, gone) = (
                tracker.clone(),
                takes_started.clone(),
                takes_done.clone(),
                consumer_gone.clone(),
            );
            std::thread::spawn(move || {
                let mut rng = Rng(seed ^ (w as u64 + 1).wrapping_mul(0x1234_5678_9ABC_DEF1));
                let mut log = Vec::with_capacity(writes_per_thread);
                // At least `writes_per_thread` writes, and on until the consumer has taken
                // MIN_TAKES checkpoints: on a loaded 2-core machine the writers can otherwise
                // finish before the consumer thread is first scheduled, and nothing races.
                while log.len() < writes_per_thread
                    || (done.load(Ordering::SeqCst) < MIN_TAKES && !gone.load(Ordering::SeqCst))
                {
                    // Unaligned offsets, lengths from 1 byte to 64 KiB + change: some span blocks.
                    let len = 1 + rng.next() % (64 * 1024 + 300);
                    let offset = rng.next() % (DISK - len);
                    let taken_before = done.load(Ordering::SeqCst);
                    tracker.mark_write(offset, len).unwrap();
                    let started_after = started.load(Ordering::SeqCst);
                    log.push(Write {
                        offset,
                        len,
                        taken_before,
                        started_after,
                    });
                }
                log
            })
        })
        .collect();
    let logs: Vec<Vec<Write>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    stop.store(true, Ordering::SeqCst);
    let sets = consumer.join().unwrap();
    // At least MIN_TAKES + 1 by construction (the writers wait for MIN_TAKES, the consumer takes
    // one more after they stop).
    eprintln!("{} checkpoints taken", sets.len());

    // A write may show up in any set from the first one taken after its mark began up to the
    // first one started after its mark returned; an aborted set carries over into the next.
    let mut checked = 0u64;
    for (w, log) in logs.iter().enumerate() {
        for (i, wr) in log.iter().enumerate() {
            let mut hi = wr.started_after.min(sets.len() - 1);
            while sets[hi].aborted && hi + 1 < sets.len() {
                hi += 1;
            }
            for b in wr.offset / BLOCK..(wr.offset + wr.len).div_ceil(BLOCK) {
                let found = (wr.taken_before..=hi).any(|k| sets[k].blocks[b as usize]);
                assert!(
                    found,
                    "writer {w} write #{i} ({}+{}) block {b} is in none of the sets {}..={} (seed {seed:#x})",
                    wr.offset, wr.len, wr.taken_before, hi
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= (writers * writes_per_thread) as u64);
}

#[test]
fn every_write_is_in_the_taken_set_or_the_next() {
    run(3, 60_000, 0, 0x5eed_0001);
}

#[test]
fn every_write_survives_aborted_checkpoints() {
    run(3, 40_000, 3, 0x5eed_0002);
}

/// One single-block mark of the discard race test.
struct Op {
    discard: bool,
    taken_before: usize,
    started_after: usize,
}

/// Writers that also discard (whole, aligned blocks; each thread owns the blocks `b % writers ==
/// w`, so the marks on a block are ordered by its thread). Checked for every set, committed or
/// aborted: a block the set reports as a discard must have a discard that could be its last
/// change, that is: the last mark that returned before the take started was a discard, or a
/// discard after it began before the take finished. A write is never reported as a discard.
/// And every mark is in a set from the first taken after it began to the first started after
/// it returned (carried over aborted sets), as in `run`.
fn run_discards(writers: usize, ops_per_thread: usize, abort_every: usize, seed: u64) {
    let tracker = Arc::new(
        Tracker::new(
            TrackerConfig::new(DISK)
                .granularity(BLOCK as u32)
                .start_clean(true),
        )
        .unwrap(),
    );
    let started = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let gone = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (tracker, started, done, stop, gone) = (
            tracker.clone(),
            started.clone(),
            done.clone(),
            stop.clone(),
            gone.clone(),
        );
        std::thread::spawn(move || {
            struct Gone(Arc<AtomicBool>);
            impl Drop for Gone {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
            let _gone = Gone(gone);
            // Per set: 0 absent, 1 written, 2 discarded; and whether it was aborted.
            let mut sets: Vec<(Vec<u8>, bool)> = Vec::new();
            let mut buf = vec![Extent::default(); 256];
            let mut last_round = false;
            loop {
                if stop.load(Ordering::SeqCst) {
                    last_round = true;
                }
                started.fetch_add(1, Ordering::SeqCst);
                let info = tracker.take().unwrap();
                done.fetch_add(1, Ordering::SeqCst);
                let mut kinds = vec![0u8; BLOCKS as usize];
                let mut cursor = info.cursor();
                loop {
                    let n = tracker.extents(&mut cursor, &mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    for e in &buf[..n] {
                        let k = if e.kind == ExtentKind::Discard { 2 } else { 1 };
                        for b in e.offset / BLOCK..(e.offset + e.len).div_ceil(BLOCK) {
                            kinds[b as usize] = k;
                        }
                    }
                }
                let aborted = abort_every != 0 && sets.len() % abort_every == abort_every - 1;
                if aborted {
                    tracker.abort(info.sequence).unwrap();
                } else {
                    tracker.commit(info.generation, info.sequence).unwrap();
                }
                sets.push((kinds, aborted));
                if last_round && !aborted {
                    return sets;
                }
            }
        })
    };
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (tracker, started, done, gone) =
                (tracker.clone(), started.clone(), done.clone(), gone.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(seed ^ (w as u64 + 1).wrapping_mul(0x1234_5678_9ABC_DEF1));
                let owned = (BLOCKS as usize - w).div_ceil(writers);
                // A small hot set per thread, so that marks on one block race takes often.
                let hot = owned.min(512);
                let mut ops: Vec<Vec<Op>> = (0..hot).map(|_| Vec::new()).collect();
                let mut n = 0;
                while n < ops_per_thread
                    || (done.load(Ordering::SeqCst) < MIN_TAKES && !gone.load(Ordering::SeqCst))
                {
                    let i = (rng.next() % hot as u64) as usize;
                    let b = (i * writers + w) as u64;
                    let discard = rng.next() % 3 == 0;
                    let taken_before = done.load(Ordering::SeqCst);
                    if discard {
                        tracker.mark_discard(b * BLOCK, BLOCK).unwrap();
                    } else {
                        tracker.mark_write(b * BLOCK, BLOCK).unwrap();
                    }
                    let started_after = started.load(Ordering::SeqCst);
                    ops[i].push(Op {
                        discard,
                        taken_before,
                        started_after,
                    });
                    n += 1;
                }
                ops
            })
        })
        .collect();
    let logs: Vec<Vec<Vec<Op>>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    stop.store(true, Ordering::SeqCst);
    let sets = consumer.join().unwrap();
    eprintln!("{} checkpoints taken", sets.len());
    let (mut checked_discards, mut checked_marks) = (0u64, 0u64);
    for (w, log) in logs.iter().enumerate() {
        for (i, ops) in log.iter().enumerate() {
            let b = i * writers + w;
            for (k, (kinds, _)) in sets.iter().enumerate() {
                if kinds[b] != 2 {
                    continue;
                }
                // The last mark that returned before take k started...
                let j = ops.iter().rposition(|o| o.started_after <= k);
                let ok = j.is_some_and(|j| ops[j].discard)
                    || ops[j.map_or(0, |j| j + 1)..]
                        .iter()
                        .any(|o| o.discard && o.taken_before <= k);
                assert!(
                    ok,
                    "block {b} is a discard in set {k}, but its last change before that take was a write (seed {seed:#x})"
                );
                checked_discards += 1;
            }
            for o in ops {
                let mut hi = o.started_after.min(sets.len() - 1);
                while sets[hi].1 && hi + 1 < sets.len() {
                    hi += 1;
                }
                assert!(
                    (o.taken_before..=hi).any(|k| sets[k].0[b] != 0),
                    "block {b} mark lost (seed {seed:#x})"
                );
                checked_marks += 1;
            }
            // The replica's final state: the last committed set carrying the block.
            if let Some(last) = ops.last() {
                let fin = sets.iter().rev().filter(|s| !s.1).find(|s| s.0[b] != 0);
                assert!(fin.is_some(), "block {b} never shipped");
                if !last.discard {
                    assert_eq!(
                        fin.unwrap().0[b],
                        1,
                        "block {b}: last change a write, shipped as a discard"
                    );
                }
            }
        }
    }
    eprintln!("{checked_marks} marks, {checked_discards} reported discards checked");
    assert!(checked_discards > 0, "the test must see discards");
}

#[test]
fn a_write_is_never_reported_as_a_discard() {
    run_discards(3, 60_000, 0, 0x5eed_0003);
}

#[test]
fn a_write_is_never_reported_as_a_discard_across_aborts() {
    run_discards(3, 60_000, 3, 0x5eed_0004);
}

/// Threads beyond the 64 per-process writer slots share one slot, which counts marks per epoch
/// parity instead of announcing them (`src/tracker/epoch.rs`): the same races, walked by
/// threads that all take that path. Slot numbers are never handed out twice in a process, so
/// once 64 threads have marked, every later thread is one of these (the other tests of this
/// binary, running alongside, may then take it too).
#[test]
fn writes_from_threads_beyond_the_own_slots_are_never_lost_or_discards() {
    let t = Tracker::new(TrackerConfig::new(DISK).granularity(BLOCK as u32)).unwrap();
    std::thread::scope(|s| {
        for i in 0..64 {
            let t = &t;
            s.spawn(move || t.mark_write(i * BLOCK, 1).unwrap());
        }
    });
    run(3, 30_000, 2, 0x5eed_0005);
    run_discards(3, 20_000, 2, 0x5eed_0006);
}
