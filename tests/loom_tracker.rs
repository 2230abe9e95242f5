//! Model check of the tracker's write/take protocol with loom: every interleaving (up to the
//! preemption bound) of concurrent marks with a take must leave each mark in the taken set or in
//! the next one.
//!
//! Run with: `RUSTFLAGS="--cfg loom" cargo test --release --test loom_tracker`
//! (`.ci/run` does this with `LOOM_MAX_PREEMPTIONS=3`).
#![cfg(loom)]

use std::sync::Arc;

use blockdelta::{Extent, ExtentKind, Tracker, TrackerConfig};
use loom::thread;

const SECTOR: u64 = 512;

fn tracker(blocks: u64) -> Arc<Tracker> {
    Arc::new(
        Tracker::new(
            TrackerConfig::new(blocks * SECTOR)
                .granularity(SECTOR as u32)
                .start_clean(true),
        )
        .unwrap(),
    )
}

/// take + read every extent + commit; returns the dirty blocks.
fn take_blocks(t: &Tracker) -> Vec<u64> {
    let info = t.take().unwrap();
    let mut cursor = info.cursor();
    let mut buf = [Extent::default(); 8];
    let mut blocks = Vec::new();
    loop {
        let n = t.extents(&mut cursor, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        for e in &buf[..n] {
            blocks.extend(e.offset / SECTOR..(e.offset + e.len) / SECTOR);
        }
    }
    t.commit(info.generation, info.sequence).unwrap();
    blocks
}

/// Runs `writes` (one thread each) against one concurrent take, then a final take, and checks
/// every written block is in one of the two.
fn check(blocks: u64, writes: &'static [(u64, u64)], prewrite: Option<u64>) {
    loom::model(move || {
        let t = tracker(blocks);
        if let Some(b) = prewrite {
            t.mark_write(b * SECTOR, SECTOR).unwrap();
        }
        let handles: Vec<_> = writes
            .iter()
            .map(|&(first, count)| {
                let t = t.clone();
                thread::spawn(move || t.mark_write(first * SECTOR, count * SECTOR).unwrap())
            })
            .collect();
        let first = take_blocks(&t);
        for h in handles {
            h.join().unwrap();
        }
        let second = take_blocks(&t);
        for &(start, count) in writes {
            for b in start..start + count {
                assert!(
                    first.contains(&b) || second.contains(&b),
                    "block {b} lost: first take {first:?}, second take {second:?}"
                );
            }
        }
    });
}

#[test]
fn a_mark_racing_a_take_is_never_lost_two_levels() {
    // 130 blocks: 3 leaf words under one summary word.
    check(130, &[(70, 1)], None);
}

#[test]
fn two_marks_in_one_word_racing_a_take() {
    // The second writer sees a non-zero word and relies on the first one's propagation.
    check(130, &[(70, 1), (71, 1)], None);
}

#[test]
fn a_rewrite_of_a_dirty_block_racing_a_take() {
    // The fast path: the block is already dirty, the mark returns after one load.
    check(130, &[(70, 1)], Some(70));
}

#[test]
fn a_mark_spanning_words_racing_a_take() {
    check(130, &[(63, 2)], None);
}

#[test]
fn a_mark_racing_a_take_three_levels() {
    // 64 * 64 + 1 blocks: the summary has two levels above the leaves.
    check(64 * 64 + 1, &[(64 * 64, 1)], None);
}

/// A mark that returned before a take started must be in that take (not only in the next one):
/// a checkpoint is a recovery point for every write completed before it. Here the second mark
/// finds its word already non-zero while the first writer may not yet have set the summary
/// bits above it; the take runs after the second mark, on the same thread.
fn check_completed_before_take(blocks: u64, racing: u64, completed: u64) {
    loom::model(move || {
        let t = tracker(blocks);
        let other = {
            let t = t.clone();
            thread::spawn(move || t.mark_write(racing * SECTOR, SECTOR).unwrap())
        };
        t.mark_write(completed * SECTOR, SECTOR).unwrap();
        let first = take_blocks(&t);
        assert!(
            first.contains(&completed),
            "block {completed} was marked before the take started but is not in it: {first:?}"
        );
        other.join().unwrap();
        let second = take_blocks(&t);
        assert!(first.contains(&racing) || second.contains(&racing));
    });
}

#[test]
fn a_mark_completed_before_a_take_is_in_it_two_levels() {
    check_completed_before_take(130, 70, 71);
}

#[test]
fn a_mark_completed_before_a_take_is_in_it_three_levels() {
    check_completed_before_take(64 * 64 + 1, 64 * 64 - 1, 64 * 64 - 2);
}

#[test]
fn a_rewrite_completed_before_a_take_is_in_it() {
    // The same block: the second mark takes the one-load fast path.
    check_completed_before_take(130, 70, 70);
}

/// take + read every extent (block, was it a discard) + commit or abort.
fn take_kinds(t: &Tracker, commit: bool) -> Vec<(u64, bool)> {
    let info = t.take().unwrap();
    let mut cursor = info.cursor();
    let mut buf = [Extent::default(); 8];
    let mut blocks = Vec::new();
    loop {
        let n = t.extents(&mut cursor, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        for e in &buf[..n] {
            let discard = e.kind == ExtentKind::Discard;
            blocks.extend((e.offset / SECTOR..(e.offset + e.len) / SECTOR).map(|b| (b, discard)));
        }
    }
    if commit {
        t.commit(info.generation, info.sequence).unwrap();
    } else {
        t.abort(info.sequence).unwrap();
    }
    blocks
}

/// What a replica that applied `sets` in order holds for block `b`: `Some(true)` discarded,
/// `Some(false)` written (data shipped), `None` never shipped.
fn last_kind(sets: &[&[(u64, bool)]], b: u64) -> Option<bool> {
    sets.iter()
        .rev()
        .find_map(|s| s.iter().find(|&&(x, _)| x == b).map(|&(_, d)| d))
}

/// A block discarded earlier is written while a take runs: whichever set carries the write, the
/// replica must end with the block's data (a write), never a discard.
fn check_write_after_discard_racing_take(blocks: u64, block: u64, same_thread_discard: bool) {
    loom::model(move || {
        let t = tracker(blocks);
        if !same_thread_discard {
            t.mark_discard(block * SECTOR, SECTOR).unwrap();
        }
        let w = {
            let t = t.clone();
            thread::spawn(move || {
                if same_thread_discard {
                    t.mark_discard(block * SECTOR, SECTOR).unwrap();
                }
                t.mark_write(block * SECTOR, SECTOR).unwrap();
            })
        };
        let first = take_kinds(&t, true);
        w.join().unwrap();
        let second = take_kinds(&t, true);
        assert_eq!(
            last_kind(&[&first, &second], block),
            Some(false),
            "the write to block {block} was reported as a discard: {first:?} then {second:?}"
        );
    });
}

#[test]
fn a_write_after_a_discard_racing_a_take_is_never_a_discard() {
    check_write_after_discard_racing_take(130, 70, false);
}

#[test]
fn a_discard_then_write_in_one_thread_racing_a_take_is_never_a_discard() {
    check_write_after_discard_racing_take(130, 70, true);
}

/// A discarded block is taken; a write to it races the abort that merges the discard back. The
/// next take must report a write. (The abort rule alone, without the writer's second
/// look at the discard word, fails here: the writer checks the discard word before the abort
/// sets it, then finds its dirty bit set by the abort and returns.)
#[test]
fn a_write_racing_an_abort_of_a_discard_is_never_a_discard() {
    loom::model(|| {
        let t = tracker(130);
        t.mark_discard(70 * SECTOR, SECTOR).unwrap();
        let info = t.take().unwrap();
        let w = {
            let t = t.clone();
            thread::spawn(move || t.mark_write(70 * SECTOR, SECTOR).unwrap())
        };
        t.abort(info.sequence).unwrap();
        w.join().unwrap();
        let next = take_kinds(&t, true);
        assert_eq!(last_kind(&[&next], 70), Some(false), "{next:?}");
    });
}

/// A write and a discard of one block race each other and a take: either may be last, but the
/// block is never lost, and a discard of the block next door (its own word bit) stays a discard
/// or becomes a write, never disappears.
#[test]
fn a_write_and_a_discard_racing_a_take_lose_nothing() {
    loom::model(|| {
        let t = tracker(130);
        let w = {
            let t = t.clone();
            thread::spawn(move || t.mark_write(70 * SECTOR, SECTOR).unwrap())
        };
        let d = {
            let t = t.clone();
            thread::spawn(move || t.mark_discard(70 * SECTOR, 2 * SECTOR).unwrap())
        };
        let first = take_kinds(&t, true);
        w.join().unwrap();
        d.join().unwrap();
        let second = take_kinds(&t, true);
        for b in [70, 71] {
            assert!(last_kind(&[&first, &second], b).is_some(), "block {b} lost");
        }
    });
}

/// `adopt_lineage` folds a pending checkpoint back (the abort's merge, discards as writes) and
/// marks the store's extents as writes (the write path's marks), both while a writer runs and
/// with the next take racing that writer too. A write to a block of the pending checkpoint that
/// was a discard, and one to a clean block, must each be in the first take after the adopt or
/// the next one, as a write; the store's block and the pending blocks are in the first take.
#[test]
fn a_write_racing_an_adopt_is_never_lost() {
    loom::model(|| {
        let t = tracker(130);
        t.mark_discard(70 * SECTOR, SECTOR).unwrap();
        t.mark_write(5 * SECTOR, SECTOR).unwrap();
        let pending = t.take().unwrap();
        let w = {
            let t = t.clone();
            thread::spawn(move || {
                t.mark_write(70 * SECTOR, SECTOR).unwrap();
                t.mark_write(128 * SECTOR, SECTOR).unwrap();
            })
        };
        let generation = blockdelta::GenerationId([7; 16]);
        t.adopt_lineage(generation, 40, &[Extent::new(64 * SECTOR, SECTOR)])
            .unwrap();
        let first = take_kinds(&t, true);
        w.join().unwrap();
        let second = take_kinds(&t, true);
        assert_ne!(pending.generation, generation);
        for b in [5, 64] {
            assert_eq!(last_kind(&[&first], b), Some(false), "block {b}: {first:?}");
        }
        // The pending discard comes back as a write (adopt does not merge discard bits).
        assert_eq!(last_kind(&[&first], 70), Some(false), "block 70: {first:?}");
        for b in [70, 128] {
            assert_eq!(
                last_kind(&[&first, &second], b),
                Some(false),
                "the write to block {b} was lost or became a discard: {first:?} then {second:?}"
            );
        }
    });
}

/// An abort merges a discarded block back while a write to it runs, and a take follows before
/// the write returns. With a separate discard map (0.2.0) the writer could check the discard
/// word before the abort set it, find its dirty bit already set by the abort, and look again
/// only after the take had drained both: the first take reported the write as a DISCARD and the
/// second did not have it. Now the write is one `fetch_or` of dirty and written bits in the
/// same word the take swaps.
#[test]
fn an_abort_then_a_take_racing_a_write_is_never_a_discard() {
    loom::model(|| {
        let t = tracker(130);
        t.mark_discard(70 * SECTOR, SECTOR).unwrap();
        let info = t.take().unwrap();
        let w = {
            let t = t.clone();
            thread::spawn(move || t.mark_write(70 * SECTOR, SECTOR).unwrap())
        };
        t.abort(info.sequence).unwrap();
        let first = take_kinds(&t, true);
        w.join().unwrap();
        let second = take_kinds(&t, true);
        assert_eq!(
            last_kind(&[&first, &second], 70),
            Some(false),
            "the write to block 70 was reported as a discard: {first:?} then {second:?}"
        );
    });
}

/// Aborted discards of several blocks, across live and frozen word boundaries (blocks 31..=96:
/// live words of 32 blocks, frozen words of 64), merged back while a write spanning two of them
/// races the abort and the take after it; the take after that is aborted too, and a third take
/// follows. Every written block ends a write; every other discarded block stays dirty.
#[test]
fn a_spanning_write_racing_abort_take_abort_take_is_never_a_discard() {
    loom::model(|| {
        let t = tracker(130);
        t.mark_discard(31 * SECTOR, 66 * SECTOR).unwrap();
        let info = t.take().unwrap();
        let w = {
            let t = t.clone();
            thread::spawn(move || t.mark_write(63 * SECTOR, 2 * SECTOR).unwrap())
        };
        t.abort(info.sequence).unwrap();
        let first = take_kinds(&t, false);
        let second = take_kinds(&t, true);
        w.join().unwrap();
        let third = take_kinds(&t, true);
        for b in [63, 64] {
            assert_eq!(
                last_kind(&[&second, &third], b),
                Some(false),
                "the write to block {b} was lost or reported as a discard: \
                 {first:?}, {second:?}, {third:?}"
            );
        }
        for b in [31, 62, 65, 96] {
            assert!(
                last_kind(&[&second, &third], b).is_some(),
                "block {b} lost: {second:?}, {third:?}"
            );
        }
    });
}

/// A discarded block is taken and committed while a write to it runs, and the next take races
/// the write too: the write is never a discard and never lost.
#[test]
fn a_commit_then_a_take_racing_a_write_is_never_a_discard() {
    loom::model(|| {
        let t = tracker(130);
        t.mark_discard(70 * SECTOR, SECTOR).unwrap();
        let info = t.take().unwrap();
        let w = {
            let t = t.clone();
            thread::spawn(move || t.mark_write(70 * SECTOR, SECTOR).unwrap())
        };
        t.commit(info.generation, info.sequence).unwrap();
        let first = take_kinds(&t, true);
        w.join().unwrap();
        let second = take_kinds(&t, true);
        assert_eq!(
            last_kind(&[&first, &second], 70),
            Some(false),
            "the write to block 70 was lost or reported as a discard: {first:?} then {second:?}"
        );
    });
}

/// A written block is taken; a thread discards it and then writes it while the checkpoint is
/// aborted and the next take runs. The thread's last change is a write: it must end a write.
#[test]
fn a_discard_then_write_racing_an_abort_and_a_take_is_never_a_discard() {
    loom::model(|| {
        let t = tracker(130);
        t.mark_write(70 * SECTOR, SECTOR).unwrap();
        let info = t.take().unwrap();
        let w = {
            let t = t.clone();
            thread::spawn(move || {
                t.mark_discard(70 * SECTOR, SECTOR).unwrap();
                t.mark_write(70 * SECTOR, SECTOR).unwrap();
            })
        };
        t.abort(info.sequence).unwrap();
        let first = take_kinds(&t, true);
        w.join().unwrap();
        let second = take_kinds(&t, true);
        assert_eq!(
            last_kind(&[&first, &second], 70),
            Some(false),
            "the write to block 70 was reported as a discard: {first:?} then {second:?}"
        );
    });
}

/// A discarded block is taken, the checkpoint aborted and the next take committed while a
/// thread writes the block and then discards it. The thread's last change is a discard: the
/// block is never lost (a discard or, conservatively, a write).
#[test]
fn a_write_then_discard_racing_an_abort_and_a_take_is_never_lost() {
    loom::model(|| {
        let t = tracker(130);
        t.mark_discard(70 * SECTOR, SECTOR).unwrap();
        let info = t.take().unwrap();
        let w = {
            let t = t.clone();
            thread::spawn(move || {
                t.mark_write(70 * SECTOR, SECTOR).unwrap();
                t.mark_discard(70 * SECTOR, SECTOR).unwrap();
            })
        };
        t.abort(info.sequence).unwrap();
        let first = take_kinds(&t, true);
        w.join().unwrap();
        let second = take_kinds(&t, true);
        assert!(
            last_kind(&[&first, &second], 70).is_some(),
            "block 70 lost: {first:?} then {second:?}"
        );
    });
}

/// Abort of a checkpoint holding a write and a discard in one live word, while one thread
/// writes the discarded block and another discards the written one, then a take: whatever the
/// order, the written block (70) ends a write and the discarded-then-written one never a
/// discard; the block discarded by the racing thread (71) is never lost.
#[test]
fn crossing_marks_racing_an_abort_and_a_take_are_never_lost() {
    loom::model(|| {
        let t = tracker(130);
        t.mark_discard(70 * SECTOR, SECTOR).unwrap();
        t.mark_write(71 * SECTOR, SECTOR).unwrap();
        let info = t.take().unwrap();
        let w = {
            let t = t.clone();
            thread::spawn(move || t.mark_write(70 * SECTOR, SECTOR).unwrap())
        };
        let d = {
            let t = t.clone();
            thread::spawn(move || t.mark_discard(71 * SECTOR, SECTOR).unwrap())
        };
        t.abort(info.sequence).unwrap();
        let first = take_kinds(&t, true);
        w.join().unwrap();
        d.join().unwrap();
        let second = take_kinds(&t, true);
        assert_eq!(
            last_kind(&[&first, &second], 70),
            Some(false),
            "the write to block 70 was reported as a discard: {first:?} then {second:?}"
        );
        assert!(last_kind(&[&first, &second], 71).is_some(), "block 71 lost");
    });
}
