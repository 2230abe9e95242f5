//! The tracker's contract as a user relies on it: geometry checks, marking, checkpoints as a
//! transaction, generations, resize and statistics.

use blockdelta::tracker::{MAX_GRANULARITY, MIN_GRANULARITY};
use blockdelta::{Extent, Tracker, TrackerConfig, TrackerError};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const TIB: u64 = 1024 * GIB;

fn clean(disk: u64, gran: u32) -> Tracker {
    Tracker::new(TrackerConfig::new(disk).granularity(gran).start_clean(true)).unwrap()
}

/// Takes a checkpoint and returns all its extents (in small batches, to exercise the cursor).
fn take_all(t: &Tracker) -> (u64, Vec<Extent>) {
    let info = t.take().unwrap();
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
    assert_eq!(
        out.len() as u64,
        info.extent_count,
        "extent_count matches what the cursor returns"
    );
    assert_eq!(out.iter().map(|e| e.len).sum::<u64>(), info.dirty_bytes);
    (info.sequence, out)
}

#[test]
fn geometry_is_validated_with_the_bad_value_named() {
    let cases: [(TrackerConfig, &str); 8] = [
        (TrackerConfig::new(0), "must not be zero"),
        (TrackerConfig::new(GIB).sector_size(1024), "512 or 4096"),
        (TrackerConfig::new(GIB + 100), "multiple of the sector size"),
        (TrackerConfig::new(GIB).granularity(3000), "power of two"),
        (TrackerConfig::new(GIB).granularity(256), "power of two"),
        (TrackerConfig::new(GIB).granularity(2 << 20), "power of two"),
        (
            TrackerConfig::new(GIB).sector_size(4096).granularity(512),
            "smaller than the sector",
        ),
        (
            TrackerConfig::new(GIB).capacity(MIB),
            "capacity must be at least",
        ),
    ];
    for (config, needle) in cases {
        let err = Tracker::new(config)
            .err()
            .expect("invalid geometry must be rejected");
        assert!(
            matches!(err, TrackerError::InvalidGeometry { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(needle),
            "{err} should mention {needle:?}"
        );
    }
    // Both ends of the supported granularity range work.
    for g in [MIN_GRANULARITY, MAX_GRANULARITY] {
        assert_eq!(clean(GIB, g).block_size(), g);
    }
}

#[test]
fn sixty_four_tib_disks_are_supported() {
    let t = clean(64 * TIB, MAX_GRANULARITY);
    t.mark_write(64 * TIB - 4096, 4096).unwrap();
    t.mark_write(0, 1).unwrap();
    let (_, ext) = take_all(&t);
    assert_eq!(
        ext,
        vec![Extent::new(0, MIB), Extent::new(64 * TIB - MIB, MIB)]
    );
    // Memory at 1 MiB granularity: 2 bitmaps of 2^26 bits plus summaries and 2 discard maps of
    // 2^26 bits, about 32 MiB.
    assert!(t.memory_usage() < 33 * MIB, "{}", t.memory_usage());
}

#[test]
fn memory_budget_picks_the_finest_granularity_that_fits() {
    let t = Tracker::new(TrackerConfig::new(TIB).memory_budget(9 * MIB)).unwrap();
    // 64 KiB needs ~8.06 MiB per TiB (dirty and discard maps), 32 KiB ~16.1 MiB: 64 KiB is the
    // finest that fits 9 MiB.
    assert_eq!(t.block_size(), 64 << 10);
    assert!(t.memory_usage() <= 9 * MIB);
    assert_eq!(t.memory_usage(), Tracker::memory_for(TIB, 64 << 10));
    let err = Tracker::new(TrackerConfig::new(64 * TIB).memory_budget(MIB))
        .err()
        .unwrap();
    assert!(
        matches!(err, TrackerError::BudgetTooSmall { budget, .. } if budget == MIB),
        "{err:?}"
    );
    // The sector size is a floor for the automatic choice too.
    let t = Tracker::new(TrackerConfig::new(GIB).sector_size(4096).memory_budget(GIB)).unwrap();
    assert_eq!(t.block_size(), 4096);
}

#[test]
fn a_new_tracker_starts_dirty_unless_told_clean() {
    let t = Tracker::new(TrackerConfig::new(10 * MIB).granularity(4096)).unwrap();
    let (seq, ext) = take_all(&t);
    assert_eq!(seq, 1);
    assert_eq!(ext, vec![Extent::new(0, 10 * MIB)]);
    let t = clean(10 * MIB, 4096);
    assert_eq!(take_all(&t).1, vec![]);
}

#[test]
fn unaligned_and_spanning_writes_mark_every_block_they_touch() {
    let t = clean(MIB, 4096);
    t.mark_write(4095, 2).unwrap(); // blocks 0 and 1
    t.mark_write(3 * 4096 + 10, 1).unwrap(); // block 3
    t.mark_write(64 * 4096 - 1, 4096 * 70).unwrap(); // blocks 63..=133: crosses leaf words
    t.mark_discard(255 * 4096, 4096).unwrap(); // the last block
    t.mark_write(100, 0).unwrap(); // no-op
    let (_, ext) = take_all(&t);
    assert_eq!(
        ext,
        vec![
            Extent::new(0, 2 * 4096),
            Extent::new(3 * 4096, 4096),
            Extent::new(63 * 4096, 71 * 4096),
            Extent::discard(255 * 4096, 4096),
        ]
    );
}

#[test]
fn out_of_range_is_an_error_that_names_the_values_and_marks_nothing() {
    let t = clean(MIB, 4096);
    let e = t.mark_write(MIB - 4096, 4097).unwrap_err();
    assert_eq!(
        e,
        TrackerError::OutOfRange {
            offset: MIB - 4096,
            len: 4097,
            disk_size: MIB
        }
    );
    assert_eq!(
        e.to_string(),
        "range 1044480+4097 is past the disk end 1048576"
    );
    assert!(
        matches!(
            t.mark_write(u64::MAX, 2),
            Err(TrackerError::OutOfRange { .. })
        ),
        "overflow"
    );
    assert!(matches!(
        t.mark_discard(MIB, 1),
        Err(TrackerError::OutOfRange { .. })
    ));
    assert_eq!(take_all(&t).1, vec![], "a rejected range marks nothing");
    assert_eq!(t.stats().writes, 0);
}

#[test]
fn the_last_partial_block_is_clipped_to_the_disk_end() {
    let disk = MIB + 512; // not a multiple of the 64 KiB granularity
    let t = clean(disk, 64 << 10);
    t.mark_write(disk - 512, 512).unwrap();
    let info = t.take().unwrap();
    assert_eq!(info.dirty_bytes, 512);
    let mut c = info.cursor();
    let mut out = [Extent::default(); 4];
    assert_eq!(t.extents(&mut c, &mut out).unwrap(), 1);
    assert_eq!(out[0], Extent::new(MIB, 512));
}

#[test]
fn writes_during_a_taken_checkpoint_go_to_the_next_one() {
    let t = clean(MIB, 4096);
    t.mark_write(0, 4096).unwrap();
    let info = t.take().unwrap();
    t.mark_write(8192, 4096).unwrap();
    let mut c = info.cursor();
    let mut out = [Extent::default(); 4];
    assert_eq!(t.extents(&mut c, &mut out).unwrap(), 1);
    assert_eq!(out[0], Extent::new(0, 4096));
    t.commit(info.generation, info.sequence).unwrap();
    let (seq, ext) = take_all(&t);
    assert_eq!(seq, 2);
    assert_eq!(ext, vec![Extent::new(8192, 4096)]);
}

#[test]
fn abort_merges_the_taken_set_back() {
    let t = clean(MIB, 4096);
    t.mark_write(0, 4096).unwrap();
    let first = t.take().unwrap();
    t.mark_write(40960, 4096).unwrap();
    t.abort(first.sequence).unwrap();
    let (seq, ext) = take_all(&t);
    assert_eq!(ext, vec![Extent::new(0, 4096), Extent::new(40960, 4096)]);
    assert_eq!(
        seq,
        first.sequence + 1,
        "an aborted sequence number is never reused"
    );
}

/// Issue 8 (data loss): the old tracker gave the checkpoint after an abort the aborted one's
/// number, so a replica that had in fact applied the aborted stream (the sender lost the ack)
/// looked as if it held the new, larger set, and the receiver's "applied N" committed a set it
/// never received. Numbers are now unique per generation and a stream starts at the last commit.
#[test]
fn sequence_numbers_are_never_reused_and_streams_start_at_the_last_commit() {
    let t = clean(MIB, 4096);
    t.mark_write(0, 4096).unwrap();
    let a = t.take().unwrap();
    assert_eq!((a.from_sequence, a.sequence), (0, 1));
    t.commit(a.generation, a.sequence).unwrap();
    t.mark_write(4096, 4096).unwrap();
    let b = t.take().unwrap();
    assert_eq!((b.from_sequence, b.sequence), (1, 2));
    t.abort(b.sequence).unwrap();
    t.mark_write(8192, 4096).unwrap();
    let c = t.take().unwrap();
    assert_eq!(
        (c.from_sequence, c.sequence),
        (1, 3),
        "after an abort: a new number, from the last commit"
    );
    // The replica reports what it applied: the aborted checkpoint 2 cannot commit checkpoint 3.
    assert_eq!(
        t.commit(b.generation, b.sequence),
        Err(TrackerError::WrongCheckpoint {
            pending_generation: c.generation,
            pending: 3,
            given_generation: b.generation,
            given: 2
        })
    );
    // Nor can a report from another generation, even with the right number.
    let other = blockdelta::GenerationId([7; 16]);
    let err = t.commit(other, c.sequence).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&other.to_string()) && msg.contains(&c.generation.to_string()),
        "{msg}"
    );
    assert_eq!(t.pending(), Some(c), "a refused commit changes nothing");
    t.commit(c.generation, c.sequence).unwrap();
    // Several aborts in a row never hand a number out twice.
    let mut seen = vec![a.sequence, b.sequence, c.sequence];
    for _ in 0..5 {
        t.mark_write(0, 1).unwrap();
        let d = t.take().unwrap();
        assert_eq!(d.from_sequence, c.sequence);
        assert!(!seen.contains(&d.sequence), "{} issued twice", d.sequence);
        seen.push(d.sequence);
        t.abort(d.sequence).unwrap();
    }
    // A new generation starts at 1 from 0.
    t.lose_continuity();
    let e = t.take().unwrap();
    assert_eq!((e.from_sequence, e.sequence), (0, 1));
    assert_ne!(e.generation, c.generation);
}

#[test]
fn memory_for_is_total_and_saturates() {
    // Issue 8: capacities above ~2^48 blocks panicked (index out of bounds in the map shape).
    let mut caps: Vec<u64> = (0..64)
        .flat_map(|sh| [(1u64 << sh) - 1, 1u64 << sh, (1u64 << sh) + 1])
        .chain([u64::MAX - 1, u64::MAX])
        .collect();
    caps.sort_unstable();
    for bs in [0u32, 1, 3, 512, 4096, 1 << 20, 1 << 31, u32::MAX] {
        let mut prev = 0;
        for &cap in &caps {
            let m = Tracker::memory_for(cap, bs);
            assert!(m >= prev && m > 0, "memory_for({cap}, {bs}) = {m} < {prev}");
            prev = m;
        }
    }
    // Huge inputs give the real (huge) figure: two maps of at least one bit per block.
    assert!(Tracker::memory_for(u64::MAX, 512) >= 2 * (u64::MAX / 512 / 8));
    assert!(Tracker::memory_for(u64::MAX, 0) >= 2 * (u64::MAX / 8));
    // The figures a tracker can have are exact: memory_usage agrees.
    let t = clean(GIB, 4096);
    assert_eq!(t.memory_usage(), Tracker::memory_for(GIB, 4096));
}

#[test]
fn an_empty_extent_buffer_is_an_error_unless_at_the_end() {
    let t = clean(MIB, 4096);
    t.mark_write(4096, 4096).unwrap();
    let info = t.take().unwrap();
    let mut c = info.cursor();
    assert_eq!(
        t.extents(&mut c, &mut []),
        Err(TrackerError::EmptyExtentBuffer { next_block: 0 })
    );
    assert_eq!(c, info.cursor(), "the cursor does not move");
    let mut out = [Extent::default(); 4];
    assert_eq!(t.extents(&mut c, &mut out).unwrap(), 1);
    assert_eq!(
        t.extents(&mut c, &mut []),
        Ok(0),
        "at the end, 0 is the end"
    );
    // A cursor resumed at any block: inside an extent, past the end.
    let mut r = info.cursor();
    r.next_block = 1;
    assert_eq!(t.extents(&mut r, &mut out).unwrap(), 1);
    assert_eq!(out[0], Extent::new(4096, 4096));
    r.next_block = u64::MAX;
    assert_eq!(t.extents(&mut r, &mut out), Ok(0));
    assert_eq!(t.extents(&mut r, &mut []), Ok(0));
}

#[test]
fn checkpoint_misuse_gets_clear_errors() {
    let t = clean(MIB, 4096);
    let g = t.generation();
    assert_eq!(t.commit(g, 1), Err(TrackerError::NoCheckpoint));
    assert_eq!(t.abort(1), Err(TrackerError::NoCheckpoint));
    let info = t.take().unwrap();
    assert_eq!(t.take(), Err(TrackerError::TakeInProgress { sequence: 1 }));
    assert_eq!(
        t.commit(g, 7),
        Err(TrackerError::WrongCheckpoint {
            pending_generation: g,
            pending: 1,
            given_generation: g,
            given: 7
        })
    );
    t.commit(g, 1).unwrap();
    // A cursor of a committed checkpoint cannot read the next one.
    let next = t.take().unwrap();
    let mut stale = info.cursor();
    let mut out = [Extent::default(); 1];
    assert_eq!(
        t.extents(&mut stale, &mut out),
        Err(TrackerError::WrongCheckpoint {
            pending_generation: g,
            pending: next.sequence,
            given_generation: g,
            given: info.sequence
        })
    );
    t.commit(g, next.sequence).unwrap();
    let mut c = next.cursor();
    assert_eq!(t.extents(&mut c, &mut out), Err(TrackerError::NoCheckpoint));
}

#[test]
fn losing_continuity_changes_the_generation_and_marks_everything() {
    let t = clean(MIB, 4096);
    t.mark_write(0, 1).unwrap();
    let a = t.take().unwrap();
    t.commit(a.generation, a.sequence).unwrap();
    let g = t.generation();
    assert_eq!(a.generation, g);
    t.lose_continuity();
    assert_ne!(
        t.generation(),
        g,
        "a reset can never look like 'nothing changed'"
    );
    let info = t.take().unwrap();
    assert_eq!(info.sequence, 1, "sequence restarts with the generation");
    assert_eq!(info.generation, t.generation());
    assert_eq!(info.dirty_bytes, MIB);
    // Generations are random per tracker.
    assert_ne!(clean(MIB, 4096).generation(), clean(MIB, 4096).generation());
}

#[test]
fn mark_all_is_a_full_resync_in_the_same_generation() {
    let t = clean(MIB, 4096);
    let g = t.generation();
    t.mark_all();
    let (_, ext) = take_all(&t);
    assert_eq!(ext, vec![Extent::new(0, MIB)]);
    assert_eq!(t.generation(), g);
}

#[test]
fn resize_keeps_state_grows_dirty_and_drops_past_a_shrink() {
    let t = Tracker::new(
        TrackerConfig::new(MIB)
            .granularity(4096)
            .capacity(4 * MIB)
            .start_clean(true),
    )
    .unwrap();
    t.mark_write(0, 4096).unwrap();
    t.mark_write(MIB - 4096, 4096).unwrap();
    t.resize(2 * MIB).unwrap();
    let (s, ext) = take_all(&t);
    assert_eq!(
        ext,
        vec![Extent::new(0, 4096), Extent::new(MIB - 4096, MIB + 4096)]
    );
    t.commit(t.generation(), s).unwrap();
    t.mark_write(4096, 4096).unwrap();
    t.mark_write(2 * MIB - 4096, 4096).unwrap();
    t.resize(MIB).unwrap();
    assert!(matches!(
        t.mark_write(MIB, 1),
        Err(TrackerError::OutOfRange { .. })
    ));
    let (_, ext) = take_all(&t);
    assert_eq!(
        ext,
        vec![Extent::new(4096, 4096)],
        "blocks past the shrink are dropped"
    );
    assert_eq!(
        t.resize(8 * MIB),
        Err(TrackerError::CapacityExceeded {
            requested: 8 * MIB,
            capacity: 4 * MIB
        })
    );
    assert!(matches!(
        t.resize(MIB + 1),
        Err(TrackerError::InvalidGeometry { .. })
    ));
    assert_eq!(t.geometry().disk_size, MIB);
}

#[test]
fn statistics_count_what_churn_checks_need() {
    let t = clean(MIB, 4096);
    t.mark_write(0, 4096).unwrap();
    t.mark_write(0, 4096).unwrap(); // a rewrite: bytes count, no new dirty block
    t.mark_write(8192, 100).unwrap();
    t.mark_discard(16384, 8192).unwrap();
    let s = t.stats();
    assert_eq!((s.writes, s.bytes_written), (3, 8292));
    assert_eq!((s.discards, s.bytes_discarded), (1, 8192));
    assert_eq!(s.blocks_dirtied, 4);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let info = t.take().unwrap();
    let s = t.stats();
    assert_eq!(s.checkpoints_taken, 1);
    assert_eq!(s.last_interval.bytes_marked, 8292 + 8192);
    assert_eq!(s.last_interval.distinct_bytes, 4 * 4096);
    assert_eq!(info.dirty_bytes, 4 * 4096);
    assert!(s.last_interval.duration >= std::time::Duration::from_millis(5));
    let rate = s.last_interval.distinct_bytes_per_sec();
    assert!(rate > 0.0 && rate <= 16384.0 / 0.005, "{rate}");
    t.abort(info.sequence).unwrap();
    assert_eq!(t.stats().checkpoints_aborted, 1);
    // Marks from other threads are counted too.
    std::thread::scope(|sc| {
        for _ in 0..3 {
            sc.spawn(|| {
                for i in 0..100 {
                    t.mark_write(i * 4096, 4096).unwrap();
                }
            });
        }
    });
    assert_eq!(t.stats().writes, 3 + 300);
}

#[test]
fn iteration_coalesces_across_summary_words() {
    // 4096 * 64 blocks = two full summary words at level 1; a run across that boundary.
    let t = clean(4 * GIB, 512);
    let boundary = 64 * 64 * 512u64;
    t.mark_write(boundary - 512 * 3, 512 * 6).unwrap();
    t.mark_write(4 * GIB - 512, 512).unwrap();
    let (_, ext) = take_all(&t);
    assert_eq!(
        ext,
        vec![
            Extent::new(boundary - 1536, 3072),
            Extent::new(4 * GIB - 512, 512)
        ]
    );
}

/// Issue 8 (discards lost at take): once taken, a discarded block looked like a written one, so
/// a replica never got DISCARD records. Whole-block discards are now reported as such through
/// take, abort and commit; a partial discard stays a write; a later write wins.
#[test]
fn whole_block_discards_are_reported_as_discards() {
    let t = clean(MIB, 4096);
    t.mark_discard(4096, 3 * 4096).unwrap(); // blocks 1..=3, whole
    t.mark_discard(10 * 4096 + 100, 4096).unwrap(); // partial at both ends: writes 10, 11
    t.mark_discard(20 * 4096 + 512, 3 * 4096).unwrap(); // 20 partial, 21..=22 whole, 23 partial
    t.mark_discard(30 * 4096, 2 * 4096).unwrap();
    t.mark_write(31 * 4096 + 1, 1).unwrap(); // a later write to block 31 wins
    t.mark_write(40 * 4096, 4096).unwrap();
    t.mark_discard(40 * 4096, 4096).unwrap(); // a later discard wins
    let want = vec![
        Extent::discard(4096, 3 * 4096),
        Extent::new(10 * 4096, 2 * 4096),
        Extent::new(20 * 4096, 4096),
        Extent::discard(21 * 4096, 2 * 4096),
        Extent::new(23 * 4096, 4096),
        Extent::discard(30 * 4096, 4096),
        Extent::new(31 * 4096, 4096),
        Extent::discard(40 * 4096, 4096),
    ];
    // Through an abort: the discards come back as discards...
    let info = t.take().unwrap();
    assert_eq!(info.extent_count, want.len() as u64, "runs split by kind");
    t.abort(info.sequence).unwrap();
    let (seq, ext) = take_all(&t);
    assert_eq!(ext, want);
    t.commit(t.generation(), seq).unwrap();
    // ...and after a commit nothing is left over: a new write is a write.
    t.mark_write(4096, 4096).unwrap();
    let (_, ext) = take_all(&t);
    assert_eq!(ext, vec![Extent::new(4096, 4096)]);
}

#[test]
fn a_write_after_the_take_beats_an_aborted_discard() {
    let t = clean(MIB, 4096);
    t.mark_discard(0, 4 * 4096).unwrap();
    let info = t.take().unwrap();
    t.mark_write(4096, 1).unwrap(); // written while the discard is taken
    t.mark_discard(2 * 4096, 4096).unwrap(); // discarded again meanwhile
    t.abort(info.sequence).unwrap();
    let (_, ext) = take_all(&t);
    assert_eq!(
        ext,
        vec![
            Extent::discard(0, 4096),
            Extent::new(4096, 4096),
            Extent::discard(2 * 4096, 2 * 4096),
        ]
    );
}

#[test]
fn mark_all_resize_and_lost_continuity_turn_discards_into_writes() {
    let t = Tracker::new(
        TrackerConfig::new(MIB)
            .granularity(4096)
            .capacity(2 * MIB)
            .start_clean(true),
    )
    .unwrap();
    t.mark_discard(0, MIB).unwrap();
    t.mark_all();
    assert_eq!(take_all(&t).1, vec![Extent::new(0, MIB)]);
    t.abort(t.pending().unwrap().sequence).unwrap();
    let (s, _) = take_all(&t);
    t.commit(t.generation(), s).unwrap();
    // The last block up to the disk end counts as whole; a shrink drops discard bits past the
    // end, a grow makes the new region written.
    t.mark_discard(MIB - 4096, 4096).unwrap();
    t.resize(MIB - 4096).unwrap();
    t.resize(MIB).unwrap();
    assert_eq!(take_all(&t).1, vec![Extent::new(MIB - 4096, 4096)]);
    let s = t.pending().unwrap().sequence;
    t.commit(t.generation(), s).unwrap();
    t.mark_discard(0, 4096).unwrap();
    t.lose_continuity();
    assert_eq!(take_all(&t).1, vec![Extent::new(0, MIB)]);
}

/// A cursor may be set to any block ("set `next_block` to resume there"): reading from there
/// returns every dirty block at or after it, whether the block is dirty, clean, inside a clean
/// stretch of the map or past the end. Unreleased work after 0.3.0 broke this: a cursor set
/// inside a clean stretch skipped the first dirty blocks after it when they sat within the same
/// 32 blocks of the next dirty word as the cursor within its own (block 33 was lost from a
/// cursor at block 20).
#[test]
fn a_cursor_set_to_any_block_reads_every_dirty_block_after_it() {
    const GRAN: u64 = 4 * KIB;
    let t = clean(16 * MIB, GRAN as u32);
    t.mark_write(33 * GRAN, GRAN).unwrap();
    t.mark_write(70 * GRAN, 2 * GRAN).unwrap();
    let info = t.take().unwrap();
    let mut cursor = info.cursor();
    cursor.next_block = 20;
    let mut out = [Extent::default(); 4];
    let n = t.extents(&mut cursor, &mut out).unwrap();
    assert_eq!(
        &out[..n],
        &[
            Extent::new(33 * GRAN, GRAN),
            Extent::new(70 * GRAN, 2 * GRAN)
        ]
    );
    t.abort(info.sequence).unwrap();

    // Random dirty sets, writes and discards, from random positions, in random batch sizes.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for round in 0..40 {
        // Every fifth round a larger disk with few marks: a take small enough to be listed.
        let disk = if round % 5 == 4 { 256 * MIB } else { 16 * MIB };
        let blocks = disk / GRAN;
        let t = clean(disk, GRAN as u32);
        // None: clean; Some(true): discarded; Some(false): written.
        let mut state = vec![None; blocks as usize];
        let marks = [3, 30, 300, 3000, 5][round % 5];
        for _ in 0..marks {
            let first = rand(blocks);
            let len = (1 + rand(40)).min(blocks - first);
            let discard = rand(4) == 0;
            if discard {
                t.mark_discard(first * GRAN, len * GRAN).unwrap();
            } else {
                t.mark_write(first * GRAN, len * GRAN).unwrap();
            }
            for b in first..first + len {
                state[b as usize] = Some(discard);
            }
        }
        let info = t.take().unwrap();
        for _ in 0..20 {
            let from = rand(blocks + 100);
            let mut cursor = info.cursor();
            cursor.next_block = from;
            let mut got = vec![None; blocks as usize];
            let mut buf = vec![Extent::default(); 1 + rand(5) as usize];
            loop {
                let n = t.extents(&mut cursor, &mut buf).unwrap();
                if n == 0 {
                    break;
                }
                for e in &buf[..n] {
                    for b in e.offset / GRAN..(e.offset + e.len) / GRAN {
                        assert_eq!(got[b as usize], None, "block {b} returned twice");
                        got[b as usize] = Some(e.kind == blockdelta::ExtentKind::Discard);
                    }
                }
            }
            for b in 0..blocks {
                let want = if b >= from { state[b as usize] } else { None };
                assert_eq!(
                    got[b as usize], want,
                    "round {round}: block {b} from {from}"
                );
            }
        }
        t.abort(info.sequence).unwrap();
    }
}
