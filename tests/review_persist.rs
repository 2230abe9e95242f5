//! Adversarial review of tracker persistence (`src/tracker/persist/`, `docs/TRACKER.md`).
//!
//! Each test is named after a promise a user relies on. The first ones fail on the reviewed
//! code (findings); the rest are regression tests for bugs looked for and not found.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use blockdelta::ffi::blockdelta_result;
use blockdelta::ffi::tracker::{
    blockdelta_tracker, blockdelta_tracker_close, blockdelta_tracker_load,
};
use blockdelta::tracker::StateKind;
use blockdelta::{
    CheckpointInfo, Extent, ExtentKind, GenerationId, LoadOutcome, PersistError, PersistOptions,
    PersistentTracker, ResetReason, TrackerConfig,
};

const KIB: u64 = 1024;
const DISK: u64 = 1024 * KIB;
const BLOCK: u64 = 4 * KIB;
const BLOCKS: u64 = DISK / BLOCK;
const ID: [u8; 16] = *b"disk-review-0003";

fn config() -> TrackerConfig {
    TrackerConfig::new(DISK).granularity(BLOCK as u32)
}

fn open(path: &Path) -> (PersistentTracker, LoadOutcome) {
    PersistentTracker::open(path, config(), PersistOptions::new(ID)).unwrap()
}

/// Takes a checkpoint and reads all its extents.
fn take_all(pt: &PersistentTracker) -> (CheckpointInfo, Vec<Extent>) {
    let info = pt.take().unwrap();
    let mut cursor = info.cursor();
    let mut out = Vec::new();
    let mut buf = [Extent::default(); 4];
    loop {
        let n = pt.tracker().extents(&mut cursor, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    (info, out)
}

/// CRC-32 (IEEE), bitwise, independent of the library.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn reseal(b: &mut [u8]) {
    let n = b.len() - 4;
    let crc = crc32(&b[..n]);
    b[n..].copy_from_slice(&crc.to_le_bytes());
}

/// A clean state file at `path` with nothing dirty: generation g, committed 1, issued 1.
fn committed_clean_file(path: &Path) -> GenerationId {
    let (pt, _) = open(path);
    let (info, _) = take_all(&pt);
    pt.commit(info.generation, info.sequence).unwrap();
    pt.close().unwrap();
    info.generation
}

// ------------------------------------------------------------------------------------------
// Findings
// ------------------------------------------------------------------------------------------

/// Finding: a hostile (well-sealed) state file must never make the tracker panic, and a
/// (generation, sequence) must never name two sets.
///
/// The decoder refuses `issued == u64::MAX` but accepts `issued == u64::MAX - 1`. Such a
/// clean file for this disk and geometry is Resumed; the first take is numbered `u64::MAX`,
/// and the next take computes `issued + 1` unchecked (`Tracker::take`): a panic ("attempt to
/// add with overflow") in a debug build, and in a release build a wrap to sequence 0 and then
/// 1, 2, ... again in the same generation (numbers reused for other sets). Either the load
/// must not trust a state that leaves no room to number checkpoints, or take must refuse.
#[test]
fn a_well_sealed_state_at_the_end_of_the_sequence_space_never_panics_or_reuses_a_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    committed_clean_file(&path);
    let mut b = fs::read(&path).unwrap();
    let near_end = u64::MAX - 1;
    b[56..64].copy_from_slice(&near_end.to_le_bytes()); // committed
    b[64..72].copy_from_slice(&near_end.to_le_bytes()); // issued
    reseal(&mut b);
    fs::write(&path, &b).unwrap();

    let (pt, outcome) = open(&path);
    if outcome.is_reset() {
        return; // refusing the file is a correct answer
    }
    let result = catch_unwind(AssertUnwindSafe(|| {
        let first = pt.take()?;
        pt.commit(first.generation, first.sequence)?;
        let second = pt.take();
        Ok::<_, PersistError>((first, second))
    }));
    let (first, second) = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("the first take or commit failed: {e}"),
        Err(_) => panic!("a take after a Resumed load of a well-sealed file panicked"),
    };
    if let Ok(second) = second {
        assert!(
            second.generation != first.generation || second.sequence > first.sequence,
            "a sequence number was issued twice: {first:?} then {second:?}"
        );
    }
}

/// Found (same root cause, reached without a hostile file): `adopt_lineage(g, u64::MAX - 1)`
/// was accepted (only `u64::MAX` was refused); a take returned `u64::MAX`, was committed, and
/// the next take overflowed (panic in debug, wrap to 0 in release: numbers reissued in
/// generation g).
#[test]
fn a_take_after_the_last_number_of_an_adopted_lineage_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    let (pt, _) = open(&path);
    let g = GenerationId([0x5a; 16]);
    // Fixed: lineages at or past MAX_SEQUENCE are refused; the last one accepted leaves 2^62
    // numbers, so takes never wrap.
    assert!(pt.adopt_lineage(g, u64::MAX - 1, &[]).is_err());
    assert!(pt.adopt_lineage(g, blockdelta::MAX_SEQUENCE, &[]).is_err());
    pt.adopt_lineage(g, blockdelta::MAX_SEQUENCE - 1, &[])
        .unwrap();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let first = pt.take()?;
        pt.commit(first.generation, first.sequence)?;
        let second = pt.take();
        Ok::<_, PersistError>((first, second))
    }));
    match result {
        Err(_) => panic!("take panicked after the last sequence number of a generation"),
        Ok(Err(e)) => panic!("the first take or commit failed: {e}"),
        Ok(Ok((first, Ok(second)))) => assert!(
            second.generation != first.generation || second.sequence > first.sequence,
            "a sequence number was issued twice: {first:?} then {second:?}"
        ),
        Ok(Ok((_, Err(_)))) => {}
    }
}

/// Finding: "one tracker per state file" (`docs/TRACKER.md`) holds only per path spelling.
/// The lock is `<path>.lock` beside the *name given*, so a second open through a symlink to
/// the same state file takes another lock file and succeeds. The scenario the lock exists for
/// (a driver restarted while its old instance still runs, configured through a symlink) then
/// has two trackers on one state file; the second one's in-use write even replaces the
/// symlink by a regular file, so the old instance's later clean close is what an open of the
/// real path trusts, over the new instance's marks.
#[test]
fn one_state_file_is_open_in_one_tracker_even_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    let link = dir.path().join("disk0.state");
    let (old_instance, _) = open(&path);
    std::os::unix::fs::symlink(&path, &link).unwrap();
    match PersistentTracker::open(&link, config(), PersistOptions::new(ID)) {
        Err(PersistError::Locked { .. }) => {}
        Err(e) => panic!("{e}"),
        Ok((new_instance, _)) => {
            // Show what it costs: the new instance's write, then it crashes; the old instance
            // closes cleanly; the real path is trusted without the new instance's write.
            new_instance.tracker().mark_write(9 * BLOCK, 1).unwrap();
            drop(new_instance);
            let (info, _) = take_all(&old_instance);
            old_instance.commit(info.generation, info.sequence).unwrap();
            old_instance.close().unwrap();
            let (pt, outcome) = open(&path);
            let lost = !outcome.is_reset() && {
                let (_, ext) = take_all(&pt);
                !ext.iter()
                    .any(|e| e.offset <= 9 * BLOCK && 9 * BLOCK < e.offset + e.len)
            };
            panic!(
                "a second tracker opened the same state file through a symlink \
                 (then the next open of the real path: {outcome:?}; write lost: {lost})"
            );
        }
    }
}

/// Finding (low): the in-use record is meant to let a consumer "tell the replica's last good
/// point" after a crash (`ResetReason::Unclean { generation, committed, .. }`,
/// `docs/TRACKER.md`). After `adopt_lineage` (the store rolled back to (g', s)) the record is
/// not rewritten until the next take, so a crash before it reports the abandoned lineage
/// (the old generation and its last commit), not the point the replica is at.
#[test]
fn an_unclean_reset_after_adopt_lineage_reports_the_adopted_point() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    let (pt, _) = open(&path);
    let (info, _) = take_all(&pt);
    pt.commit(info.generation, info.sequence).unwrap();
    let adopted = GenerationId([0x11; 16]);
    // Through the handle (found: the tracker's own `adopt_lineage` recorded nothing, and a
    // crash before the next take reported the abandoned lineage).
    pt.adopt_lineage(adopted, 7, &[]).unwrap();
    drop(pt); // crash
    let (_, outcome) = open(&path);
    match outcome.reset_reason() {
        Some(ResetReason::Unclean {
            generation,
            committed,
            ..
        }) => assert_eq!(
            (*generation, *committed),
            (adopted, 7),
            "the crashed run's recorded lineage is the abandoned one (old generation {:?})",
            info.generation
        ),
        other => panic!("{other:?}"),
    }
}

// ------------------------------------------------------------------------------------------
// Regression tests (looked for, not found)
// ------------------------------------------------------------------------------------------

/// Discards are kept as discards across a clean restart, also when they were in a pending
/// checkpoint merged back at close; a write after the take over a pending discard wins.
#[test]
fn discards_in_a_pending_take_survive_a_clean_restart_as_discards() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    committed_clean_file(&path);
    let (pt, _) = open(&path);
    pt.tracker().mark_discard(10 * BLOCK, 2 * BLOCK).unwrap(); // blocks 10, 11
    pt.tracker().mark_discard(20 * BLOCK, BLOCK).unwrap(); // block 20
    let (pending, _) = take_all(&pt);
    pt.tracker().mark_write(11 * BLOCK, 1).unwrap(); // block 11 written after the take
    pt.tracker().mark_discard(30 * BLOCK, BLOCK).unwrap(); // live discard
    pt.close().unwrap();
    let (pt, outcome) = open(&path);
    assert!(!outcome.is_reset(), "{outcome:?}");
    let (info, ext) = take_all(&pt);
    assert_eq!(info.sequence, pending.sequence + 1);
    let kind_of = |block: u64| {
        ext.iter()
            .find(|e| e.offset <= block * BLOCK && block * BLOCK < e.offset + e.len)
            .map(|e| e.kind)
    };
    assert_eq!(kind_of(10), Some(ExtentKind::Discard));
    assert_eq!(kind_of(11), Some(ExtentKind::Write));
    assert_eq!(kind_of(20), Some(ExtentKind::Discard));
    assert_eq!(kind_of(30), Some(ExtentKind::Discard));
    assert_eq!(info.dirty_blocks, 4);
    pt.close().unwrap();
}

/// A failed state write (here the commit record: `<path>.tmp` cannot be created) poisons the
/// handle; close refuses; the next open never trusts the file and every write is in its
/// full resync.
#[test]
fn a_failed_commit_record_is_never_followed_by_a_trusted_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    committed_clean_file(&path);
    let (pt, outcome) = open(&path);
    assert!(!outcome.is_reset());
    pt.tracker().mark_write(5 * BLOCK, 1).unwrap();
    let (info, _) = take_all(&pt);
    let tmp = dir.path().join("tracker.state.tmp");
    fs::create_dir(&tmp).unwrap();
    assert!(pt.commit(info.generation, info.sequence).is_err());
    pt.tracker().mark_write(6 * BLOCK, 1).unwrap();
    assert!(matches!(pt.take(), Err(PersistError::Poisoned)));
    assert!(matches!(pt.close(), Err(PersistError::Poisoned)));
    fs::remove_dir(&tmp).unwrap();
    let (pt, outcome) = open(&path);
    assert!(
        matches!(outcome.reset_reason(), Some(ResetReason::Unclean { .. })),
        "{outcome:?}"
    );
    let (info, _) = take_all(&pt);
    assert_eq!(info.dirty_blocks, BLOCKS);
}

/// Close while a take is pending, then the replica acks the old pending number: that commit
/// is refused (the checkpoint is gone), the replica's point is accepted at open, and the next
/// take is correct on it (`from_sequence <= s < sequence`) and holds the pending blocks.
#[test]
fn a_late_ack_of_a_checkpoint_pending_at_close_is_refused_and_its_blocks_are_reshipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    let g = committed_clean_file(&path);
    let (pt, _) = open(&path);
    pt.tracker().mark_write(40 * BLOCK, BLOCK).unwrap();
    let (pending, _) = take_all(&pt);
    pt.close().unwrap();
    let options = PersistOptions::new(ID).replica_point(g, pending.sequence);
    let (pt, outcome) = PersistentTracker::open(&path, config(), options).unwrap();
    assert!(!outcome.is_reset(), "{outcome:?}");
    assert!(pt.commit(g, pending.sequence).is_err());
    let (info, ext) = take_all(&pt);
    assert!(info.from_sequence <= pending.sequence && pending.sequence < info.sequence);
    assert!(ext.iter().any(|e| e.offset == 40 * BLOCK));
    assert!(pt.commit(g, pending.sequence).is_err());
    pt.commit(g, info.sequence).unwrap();
    pt.close().unwrap();
}

/// A state saved after a grow (with a take pending over the old size) resumes when opened
/// with the new size and the same capacity; the grown region and the pending blocks are
/// dirty, nothing else.
#[test]
fn a_state_saved_after_a_resize_resumes_with_every_grown_and_pending_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    let cfg = |size| config_sized(size);
    let (pt, _) = PersistentTracker::open(&path, cfg(DISK), PersistOptions::new(ID)).unwrap();
    let (first, _) = take_all(&pt);
    pt.commit(first.generation, first.sequence).unwrap();
    pt.tracker().mark_write(3 * BLOCK, 1).unwrap();
    let _pending = pt.take().unwrap();
    pt.tracker().resize(DISK + 8 * BLOCK).unwrap();
    pt.close().unwrap();
    // The old size is another geometry.
    let (pt, outcome) = PersistentTracker::open(&path, cfg(DISK), PersistOptions::new(ID)).unwrap();
    assert!(matches!(
        outcome.reset_reason(),
        Some(ResetReason::GeometryChanged { .. })
    ));
    drop(pt);
    // Redo with the new size.
    let (pt, _) = PersistentTracker::open(&path, cfg(DISK), PersistOptions::new(ID)).unwrap();
    let (first, _) = take_all(&pt);
    pt.commit(first.generation, first.sequence).unwrap();
    pt.tracker().mark_write(3 * BLOCK, 1).unwrap();
    let _pending = pt.take().unwrap();
    pt.tracker().resize(DISK + 8 * BLOCK).unwrap();
    pt.close().unwrap();
    let (pt, outcome) =
        PersistentTracker::open(&path, cfg(DISK + 8 * BLOCK), PersistOptions::new(ID)).unwrap();
    assert!(!outcome.is_reset(), "{outcome:?}");
    let (info, ext) = take_all(&pt);
    assert_eq!(info.dirty_blocks, 1 + 8);
    assert!(ext.iter().any(|e| e.offset == 3 * BLOCK));
    assert!(ext.iter().any(|e| e.offset == DISK && e.len == 8 * BLOCK));
}

fn config_sized(size: u64) -> TrackerConfig {
    TrackerConfig::new(size)
        .granularity(BLOCK as u32)
        .capacity(2 * DISK)
}

/// An aborted take then a clean close: the aborted number stays spent, its blocks are dirty.
#[test]
fn an_aborted_take_then_a_clean_close_keeps_its_blocks_and_spends_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    let g = committed_clean_file(&path);
    let (pt, _) = open(&path);
    pt.tracker().mark_discard(50 * BLOCK, BLOCK).unwrap();
    let aborted = pt.take().unwrap();
    pt.tracker().abort(aborted.sequence).unwrap();
    pt.close().unwrap();
    let (pt, outcome) = open(&path);
    assert!(
        matches!(outcome, LoadOutcome::Resumed { generation, issued, .. }
        if generation == g && issued == aborted.sequence)
    );
    let (info, ext) = take_all(&pt);
    assert_eq!(info.sequence, aborted.sequence + 1);
    assert_eq!(ext, vec![Extent::discard(50 * BLOCK, BLOCK)]);
}

/// `adopt_lineage` then a clean close: the next open continues the adopted lineage, and a
/// replica at the adopted point is accepted.
#[test]
fn adopt_lineage_then_a_clean_restart_continues_the_adopted_lineage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    committed_clean_file(&path);
    let (pt, _) = open(&path);
    let adopted = GenerationId([0x22; 16]);
    let back = [Extent::new(12 * BLOCK, BLOCK)];
    pt.tracker().adopt_lineage(adopted, 9, &back).unwrap();
    pt.close().unwrap();
    let options = PersistOptions::new(ID).replica_point(adopted, 9);
    let (pt, outcome) = PersistentTracker::open(&path, config(), options).unwrap();
    assert!(!outcome.is_reset(), "{outcome:?}");
    let (info, ext) = take_all(&pt);
    assert_eq!(
        (info.generation, info.from_sequence, info.sequence),
        (adopted, 9, 10)
    );
    assert_eq!(ext, vec![Extent::new(12 * BLOCK, BLOCK)]);
}

/// The C ABI load: NULL outputs, a NULL disk id and unknown flags fail with the outputs
/// untouched and nothing written; `blockdelta_tracker_close(NULL)` is a no-op.
#[test]
fn the_c_load_leaves_outputs_and_files_untouched_on_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.state");
    let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let sentinel = 0xdead_beef_usize as *mut blockdelta_tracker;
    let load = |id: *const u8, flags: u32, out: *mut *mut blockdelta_tracker, r: *mut u32| {
        blockdelta_tracker_load(
            cpath.as_ptr(),
            DISK,
            512,
            BLOCK as u32,
            0,
            0,
            id,
            std::ptr::null(),
            0,
            flags,
            out,
            r,
        )
    };
    let mut t = sentinel;
    let mut reason = 77u32;
    assert_ne!(
        load(ID.as_ptr(), 0, std::ptr::null_mut(), &mut reason),
        blockdelta_result::Ok
    );
    assert_ne!(
        load(ID.as_ptr(), 0, &mut t, std::ptr::null_mut()),
        blockdelta_result::Ok
    );
    assert_ne!(
        load(std::ptr::null(), 0, &mut t, &mut reason),
        blockdelta_result::Ok
    );
    assert_ne!(
        load(ID.as_ptr(), 1, &mut t, &mut reason),
        blockdelta_result::Ok
    );
    assert_eq!((t, reason), (sentinel, 77));
    assert!(!path.exists());
    assert_eq!(
        blockdelta_tracker_close(std::ptr::null_mut()),
        blockdelta_result::Ok
    );
    // A good load, then close: the next load resumes.
    assert_eq!(
        load(ID.as_ptr(), 0, &mut t, &mut reason),
        blockdelta_result::Ok
    );
    assert_eq!(reason, 1); // MISSING
    assert_eq!(
        PersistentTracker::inspect(&path, 1 << 20).unwrap().kind,
        StateKind::InUse
    );
    assert_eq!(blockdelta_tracker_close(t), blockdelta_result::Ok);
    assert_eq!(
        PersistentTracker::inspect(&path, 1 << 20).unwrap().kind,
        StateKind::Clean
    );
    let mut t2 = sentinel;
    assert_eq!(
        load(ID.as_ptr(), 0, &mut t2, &mut reason),
        blockdelta_result::Ok
    );
    assert_eq!(reason, 0); // RESUMED
    assert_eq!(blockdelta_tracker_close(t2), blockdelta_result::Ok);
}

/// A close whose write fails (here `<path>.tmp` cannot be created) returns the error and the
/// next open never trusts the file (it is still the in-use record), so the writes made in
/// that run are in the full resync.
#[test]
fn a_failed_close_is_never_followed_by_a_trusted_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    committed_clean_file(&path);
    let (pt, outcome) = open(&path);
    assert!(!outcome.is_reset());
    pt.tracker().mark_write(70 * BLOCK, 1).unwrap();
    let tmp = dir.path().join("tracker.state.tmp");
    fs::create_dir(&tmp).unwrap();
    assert!(matches!(pt.close(), Err(PersistError::Io { .. })));
    fs::remove_dir(&tmp).unwrap();
    let (pt, outcome) = open(&path);
    assert!(
        matches!(outcome.reset_reason(), Some(ResetReason::Unclean { .. })),
        "{outcome:?}"
    );
    let (info, _) = take_all(&pt);
    assert_eq!(info.dirty_blocks, BLOCKS);
}

/// Finding (low): a crashed run is reported as `Unclean` with how far it got (the point of the
/// in-use record, `docs/TRACKER.md`) only while its reservation stays below `u64::MAX`. The
/// reservation is `issued.saturating_add(reserve)`, and the decoder refuses `issued ==
/// u64::MAX` (`BadSequence`), so with a large `PersistOptions::reserve` (accepted without a
/// bound) the tracker's own in-use record is reported as an invalid file: the crashed run's
/// generation and last commit are lost, and `inspect` calls the file invalid.
#[test]
fn a_crashed_run_is_reported_unclean_whatever_the_reservation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    let options = PersistOptions::new(ID).reserve(u64::MAX);
    let (pt, _) = PersistentTracker::open(&path, config(), options).unwrap();
    let (info, _) = take_all(&pt);
    pt.commit(info.generation, info.sequence).unwrap();
    drop(pt); // crash
    match PersistentTracker::inspect(&path, 1 << 20) {
        Ok(i) => assert_eq!(i.kind, StateKind::InUse),
        Err(e) => panic!("the tracker's own in-use record does not read back: {e}"),
    }
    let (_, outcome) = open(&path);
    assert!(
        matches!(outcome.reset_reason(), Some(ResetReason::Unclean { generation, committed: 1, .. })
            if *generation == info.generation),
        "{outcome:?}"
    );
}
