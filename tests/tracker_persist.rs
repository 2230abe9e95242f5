//! Restart without resync (`PersistentTracker`): a clean close and open continue the
//! generation and the sequence numbers with exactly the changed blocks; everything else (a
//! missing, torn, foreign, stale, reshaped, unknown-version or unclean state) is a loud reset;
//! a crash never lets one checkpoint number name two sets; the state file is replaced
//! atomically.
//!
//! The crash test re-executes this test binary as a child (`kill_child_entry` returns at once
//! unless `BLOCKDELTA_TRACKER_KILL_DIR` is set, as in `tests/replica_kill.rs`) and SIGKILLs it
//! at random moments.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use blockdelta::tracker::{StateFileError, StateKind};
use blockdelta::{
    CheckpointInfo, Extent, ExtentKind, GenerationId, LoadOutcome, PersistError, PersistOptions,
    PersistentTracker, ResetReason, TrackerConfig,
};

const KIB: u64 = 1024;
const DISK: u64 = 1024 * KIB;
const BLOCK: u64 = 4 * KIB;
const BLOCKS: u64 = DISK / BLOCK;
const ID: [u8; 16] = *b"disk-0001-abcdef";

fn config() -> TrackerConfig {
    TrackerConfig::new(DISK).granularity(BLOCK as u32)
}

fn open(path: &Path) -> (PersistentTracker, LoadOutcome) {
    PersistentTracker::open(path, config(), PersistOptions::new(ID)).unwrap()
}

fn reason(o: &LoadOutcome) -> &ResetReason {
    o.reset_reason()
        .unwrap_or_else(|| panic!("expected a reset, got {o:?}"))
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

/// A tracker file at `path` whose state is clean, generation `g`, with a few dirty extents of
/// both kinds, committed 1 and issued 2 (checkpoint 2 was pending at close).
fn clean_file(path: &Path) -> GenerationId {
    let (pt, _) = open(path);
    let (info, _) = take_all(&pt);
    pt.commit(info.generation, info.sequence).unwrap();
    pt.tracker().mark_write(0, 4096).unwrap();
    pt.tracker().mark_write(100 * BLOCK, 3 * BLOCK).unwrap();
    pt.take().unwrap();
    pt.tracker().mark_discard(64 * BLOCK, 70 * BLOCK).unwrap();
    pt.tracker().mark_write(DISK - 1, 1).unwrap();
    pt.close().unwrap();
    info.generation
}

#[test]
fn a_clean_close_and_open_continue_the_generation_with_exactly_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    let (pt, outcome) = open(&path);
    assert_eq!(reason(&outcome), &ResetReason::Missing);
    // The first take of a new generation is the whole disk.
    let (first, extents) = take_all(&pt);
    assert_eq!((first.sequence, first.from_sequence), (1, 0));
    assert_eq!(extents, vec![Extent::new(0, DISK)]);
    pt.commit(first.generation, 1).unwrap();
    pt.tracker().mark_write(5 * BLOCK + 17, 10).unwrap();
    pt.tracker().mark_discard(10 * BLOCK, 4 * BLOCK).unwrap();
    pt.close().unwrap();

    let (pt, outcome) = open(&path);
    assert_eq!(
        outcome,
        LoadOutcome::Resumed {
            generation: first.generation,
            committed: 1,
            issued: 1,
            dirty_blocks: 5,
        }
    );
    pt.tracker().mark_write(200 * BLOCK, BLOCK).unwrap();
    let (info, extents) = take_all(&pt);
    assert_eq!(info.generation, first.generation, "same generation");
    assert_eq!((info.sequence, info.from_sequence), (2, 1));
    assert_eq!(
        extents,
        vec![
            Extent::new(5 * BLOCK, BLOCK),
            Extent::discard(10 * BLOCK, 4 * BLOCK),
            Extent::new(200 * BLOCK, BLOCK),
        ],
        "exactly the blocks changed since the commit, discards kept as discards"
    );
    pt.commit(info.generation, 2).unwrap();
    pt.close().unwrap();

    // Nothing changed: the next take is empty, numbers go on.
    let (pt, outcome) = open(&path);
    assert!(!outcome.is_reset(), "{outcome:?}");
    let (info, extents) = take_all(&pt);
    assert_eq!(
        (info.generation, info.sequence, info.from_sequence),
        (first.generation, 3, 2)
    );
    assert!(extents.is_empty());
    pt.close().unwrap();
}

#[test]
fn a_pending_take_is_merged_back_and_its_number_stays_spent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    let (pt, _) = open(&path);
    let (first, _) = take_all(&pt);
    pt.commit(first.generation, first.sequence).unwrap();
    pt.tracker().mark_write(0, BLOCK).unwrap();
    pt.tracker().mark_discard(8 * BLOCK, 8 * BLOCK).unwrap();
    let (pending, _) = take_all(&pt);
    assert_eq!(pending.sequence, 2);
    // Marked after the take: a write over one of the pending discards wins.
    pt.tracker().mark_write(9 * BLOCK, 1).unwrap();
    pt.tracker().mark_write(30 * BLOCK, BLOCK).unwrap();
    pt.close().unwrap();

    let (pt, outcome) = open(&path);
    assert_eq!(
        outcome,
        LoadOutcome::Resumed {
            generation: first.generation,
            committed: 1,
            issued: 2,
            dirty_blocks: 10,
        }
    );
    let (info, extents) = take_all(&pt);
    assert_eq!(
        (info.sequence, info.from_sequence),
        (3, 1),
        "2 is never reissued"
    );
    assert_eq!(
        extents,
        vec![
            Extent::new(0, BLOCK),
            Extent::discard(8 * BLOCK, BLOCK),
            Extent::new(9 * BLOCK, BLOCK),
            Extent::discard(10 * BLOCK, 6 * BLOCK),
            Extent::new(30 * BLOCK, BLOCK),
        ]
    );
    pt.close().unwrap();
}

/// Asserts that `outcome` is a reset and that the tracker's next take is the whole disk in a
/// generation other than `old`.
fn assert_full_resync(pt: &PersistentTracker, outcome: &LoadOutcome, old: GenerationId) {
    let LoadOutcome::Reset { generation, .. } = outcome else {
        panic!("expected a reset, got {outcome:?}");
    };
    assert_ne!(*generation, old, "a reset starts a new generation");
    let (info, extents) = take_all(pt);
    assert_eq!(info.generation, *generation);
    assert_eq!((info.sequence, info.from_sequence), (1, 0));
    assert_eq!(info.dirty_blocks, BLOCKS, "every block dirty");
    assert_eq!(extents, vec![Extent::new(0, DISK)]);
}

#[test]
fn every_truncation_and_every_byte_flip_is_a_loud_reset_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    let old = clean_file(&path);
    let good = fs::read(&path).unwrap();
    assert!(good.len() > 108, "the file has records ({} B)", good.len());
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for len in 0..good.len() {
        cases.push((format!("cut at {len}"), good[..len].to_vec()));
    }
    for i in 0..good.len() {
        for bit in [0, 7] {
            let mut b = good.clone();
            b[i] ^= 1 << bit;
            cases.push((format!("bit {bit} of byte {i} flipped"), b));
        }
    }
    let mut extra = good.clone();
    extra.push(0);
    cases.push(("a byte appended".into(), extra));
    for (what, bytes) in cases {
        fs::write(&path, &bytes).unwrap();
        let (pt, outcome) = open(&path);
        match reason(&outcome) {
            ResetReason::Invalid(e) => assert!(!e.to_string().is_empty()),
            other => panic!("{what}: {other:?}"),
        }
        assert_full_resync(&pt, &outcome, old);
    }
    // The untouched file still loads.
    fs::write(&path, &good).unwrap();
    let (_, outcome) = open(&path);
    assert!(!outcome.is_reset(), "{outcome:?}");
}

/// Rewrites the CRC of a state file after an edit.
fn reseal(b: &mut [u8]) {
    let n = b.len() - 4;
    let crc = crc32(&b[..n]);
    b[n..].copy_from_slice(&crc.to_le_bytes());
}

/// CRC-32 (IEEE), bitwise: the tests do not depend on the library's checksum code.
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

#[test]
fn well_sealed_but_wrong_fields_each_get_their_own_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    let old = clean_file(&path);
    let good = fs::read(&path).unwrap();
    let edit = |at: usize, bytes: &[u8]| {
        let mut b = good.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        reseal(&mut b);
        b
    };
    let first_record = 104;
    let cases: Vec<(&str, Vec<u8>, StateFileError)> = vec![
        (
            "major 2",
            edit(8, &2u16.to_le_bytes()),
            StateFileError::UnsupportedVersion { major: 2 },
        ),
        (
            "another magic",
            edit(0, b"BDTRACKX"),
            StateFileError::NotAStateFile,
        ),
        (
            "reserved head field",
            edit(12, &[1]),
            StateFileError::ReservedNotZero {
                field: "header field".into(),
            },
        ),
        (
            "state 4",
            edit(16, &4u32.to_le_bytes()),
            StateFileError::UnknownState { value: 4 },
        ),
        (
            "committed above issued",
            edit(56, &9u64.to_le_bytes()),
            StateFileError::BadSequence {
                committed: 9,
                issued: 2,
            },
        ),
        (
            "record count",
            edit(96, &1000u64.to_le_bytes()),
            StateFileError::RecordCount {
                claimed: 1000,
                room: (good.len() - 108) as u64,
            },
        ),
        (
            "record past the disk end",
            edit(first_record, &(BLOCKS / 64).to_le_bytes()),
            StateFileError::BadRecord {
                index: 0,
                what: "reaches past the disk end",
            },
        ),
        (
            "empty record",
            edit(first_record + 8, &0u64.to_le_bytes()),
            StateFileError::BadRecord {
                index: 0,
                what: "covers no word",
            },
        ),
        (
            "discard on a clean block",
            edit(first_record + 24, &u64::MAX.to_le_bytes()),
            StateFileError::BadRecord {
                index: 0,
                what: "has a discard bit on a clean block",
            },
        ),
    ];
    for (what, bytes, want) in cases {
        fs::write(&path, &bytes).unwrap();
        let (pt, outcome) = open(&path);
        assert_eq!(reason(&outcome), &ResetReason::Invalid(want), "{what}");
        assert_full_resync(&pt, &outcome, old);
    }
    // A file longer than any state file of this geometry is refused unread.
    let mut huge = good.clone();
    huge.resize(1 << 20, 0);
    fs::write(&path, &huge).unwrap();
    let (_, outcome) = open(&path);
    assert!(matches!(
        reason(&outcome),
        ResetReason::Invalid(StateFileError::TooLarge { len, .. }) if *len == 1 << 20
    ));
}

#[test]
fn a_foreign_disk_id_resets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    let old = clean_file(&path);
    let other = *b"another-disk-id!";
    let (pt, outcome) =
        PersistentTracker::open(&path, config(), PersistOptions::new(other)).unwrap();
    assert_eq!(
        reason(&outcome),
        &ResetReason::ForeignDisk {
            expected: other,
            found: ID
        }
    );
    assert_full_resync(&pt, &outcome, old);
}

#[test]
fn a_state_the_replica_cannot_continue_from_resets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    // committed 1, issued 2 (2 was pending at close).
    let g = clean_file(&path);
    let good = fs::read(&path).unwrap();
    let other = GenerationId([7; 16]);
    let cases = [
        (
            other,
            1,
            Some(ResetReason::ReplicaGeneration {
                saved: g,
                replica: other,
            }),
        ),
        (
            g,
            3,
            Some(ResetReason::ReplicaAhead {
                issued: 2,
                replica_sequence: 3,
            }),
        ),
        (
            g,
            0,
            Some(ResetReason::ReplicaBehind {
                committed: 1,
                replica_sequence: 0,
            }),
        ),
        // At the last commit, or at the pending checkpoint (applied, commit not recorded):
        // the next take (3 from 1) is correct on both.
        (g, 1, None),
        (g, 2, None),
    ];
    for (generation, sequence, want) in cases {
        fs::write(&path, &good).unwrap();
        let options = PersistOptions::new(ID).replica_point(generation, sequence);
        let (pt, outcome) = PersistentTracker::open(&path, config(), options).unwrap();
        match want {
            Some(want) => {
                assert_eq!(reason(&outcome), &want);
                assert_full_resync(&pt, &outcome, g);
            }
            None => {
                assert!(!outcome.is_reset(), "replica at {sequence}: {outcome:?}");
                let (info, _) = take_all(&pt);
                assert_eq!(
                    (info.generation, info.sequence, info.from_sequence),
                    (g, 3, 1)
                );
                assert!(info.from_sequence <= sequence && sequence < info.sequence);
            }
        }
    }
}

#[test]
fn another_geometry_resets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    let old = clean_file(&path);
    let good = fs::read(&path).unwrap();
    let configs = [
        TrackerConfig::new(2 * DISK).granularity(BLOCK as u32),
        TrackerConfig::new(DISK).granularity(2 * BLOCK as u32),
        TrackerConfig::new(DISK)
            .granularity(BLOCK as u32)
            .sector_size(4096),
        TrackerConfig::new(DISK)
            .granularity(BLOCK as u32)
            .capacity(2 * DISK),
    ];
    for c in configs {
        fs::write(&path, &good).unwrap();
        let (pt, outcome) = PersistentTracker::open(&path, c, PersistOptions::new(ID)).unwrap();
        match reason(&outcome) {
            ResetReason::GeometryChanged { saved, current } => {
                assert_eq!(saved.disk_size, DISK);
                assert_eq!(*current, pt.tracker().geometry());
            }
            // A finer file than the new geometry can hold is refused before it is read.
            ResetReason::Invalid(StateFileError::TooLarge { .. }) => {
                assert!(c.granularity != config().granularity, "{c:?}")
            }
            other => panic!("{c:?}: {other:?}"),
        }
        let LoadOutcome::Reset { generation, .. } = outcome else {
            unreachable!()
        };
        assert_ne!(generation, old);
        let info = pt.take().unwrap();
        assert_eq!(info.dirty_bytes, c.disk_size, "{c:?}: every block dirty");
    }
}

#[test]
fn a_run_that_did_not_close_is_never_trusted_and_says_how_far_it_got() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    let g = clean_file(&path);
    let (pt, outcome) = open(&path);
    assert!(!outcome.is_reset());
    // A write after open, a take, then a crash (dropped without close): the write must not be
    // lost, and number 3 must not name another set later.
    pt.tracker().mark_write(77 * BLOCK, 1).unwrap();
    let (info, _) = take_all(&pt);
    assert_eq!((info.generation, info.sequence), (g, 3));
    let on_disk = PersistentTracker::inspect(&path, 1 << 20).unwrap();
    assert_eq!(on_disk.kind, StateKind::InUse);
    assert!(
        on_disk.issued >= 3,
        "the reservation covers the issued number"
    );
    drop(pt);
    let (pt, outcome) = open(&path);
    match reason(&outcome) {
        ResetReason::Unclean {
            generation,
            committed,
            issued,
        } => {
            assert_eq!((*generation, *committed), (g, 1));
            assert!(*issued >= 3);
        }
        other => panic!("{other:?}"),
    }
    assert_full_resync(&pt, &outcome, g);
}

#[test]
fn one_state_file_is_open_in_one_tracker_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    let (pt, _) = open(&path);
    match PersistentTracker::open(&path, config(), PersistOptions::new(ID)) {
        Err(PersistError::Locked { path: lock }) => {
            assert_eq!(lock, dir.path().join("tracker.state.lock"))
        }
        Err(e) => panic!("{e}"),
        Ok((_, o)) => panic!("a second tracker opened the state file: {o:?}"),
    }
    // The first one was not disturbed: its clean close is what the next open resumes.
    let (info, _) = take_all(&pt);
    pt.close().unwrap();
    let (pt, outcome) = open(&path);
    assert!(
        matches!(outcome, LoadOutcome::Resumed { generation, issued: 1, .. } if generation == info.generation)
    );
    // Dropped without close (a crash): the lock goes with it.
    drop(pt);
    let (_, outcome) = open(&path);
    assert!(matches!(reason(&outcome), ResetReason::Unclean { .. }));
}

#[test]
fn close_refuses_while_writers_hold_the_tracker() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    let (pt, _) = open(&path);
    let writer = pt.tracker().clone();
    match pt.close() {
        Err(PersistError::StillShared { others: 1 }) => {}
        other => panic!("{other:?}"),
    }
    writer.mark_write(0, 1).unwrap();
    drop(writer);
    let (_, outcome) = open(&path);
    assert!(matches!(reason(&outcome), ResetReason::Unclean { .. }));
}

#[test]
fn a_failed_or_interrupted_state_write_leaves_the_old_state_loadable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    let g = clean_file(&path);
    let good = fs::read(&path).unwrap();
    let tmp = dir.path().join("tracker.state.tmp");

    // A crash in the middle of a write leaves a torn temporary file: never read.
    fs::write(&tmp, &good[..good.len() / 2]).unwrap();
    let (pt, outcome) = open(&path);
    assert!(!outcome.is_reset(), "{outcome:?}");
    pt.close().unwrap();
    assert_eq!(fs::read(&path).unwrap(), good, "close wrote the same state");

    // The write of the in-use record fails (the temporary file cannot be created): open
    // fails and the clean state is untouched, so a later open still resumes.
    fs::create_dir(&tmp).unwrap();
    match PersistentTracker::open(&path, config(), PersistOptions::new(ID)) {
        Err(PersistError::Io { .. }) => {}
        Err(e) => panic!("{e}"),
        Ok((_, o)) => panic!("open succeeded: {o:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), good);
    fs::remove_dir(&tmp).unwrap();
    let (pt, outcome) = open(&path);
    assert!(matches!(outcome, LoadOutcome::Resumed { generation, .. } if generation == g));

    // A take whose reservation cannot be recorded fails, poisons, and is aborted.
    let (first, _) = take_all(&pt);
    pt.commit(first.generation, first.sequence).unwrap();
    let reserve_end = PersistentTracker::inspect(&path, 1 << 20).unwrap().issued;
    let mut taken = first.sequence;
    fs::create_dir(&tmp).unwrap();
    let err = loop {
        match pt.take() {
            Ok(info) => {
                taken = info.sequence;
                pt.tracker().abort(info.sequence).unwrap();
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(err, PersistError::Io { .. }), "{err}");
    assert_eq!(
        taken, reserve_end,
        "every number up to the reservation, none past it"
    );
    assert!(
        pt.tracker().pending().is_none(),
        "the failed take was aborted"
    );
    assert!(matches!(pt.take(), Err(PersistError::Poisoned)));
    assert!(matches!(pt.close(), Err(PersistError::Poisoned)));
    fs::remove_dir(&tmp).unwrap();
    let (_, outcome) = open(&path);
    assert!(matches!(reason(&outcome), ResetReason::Unclean { .. }));
}

// ---- kill -9 -------------------------------------------------------------------------------

const CHILD_DIR: &str = "BLOCKDELTA_TRACKER_KILL_DIR";

/// FNV-1a over a checkpoint's extents: names the set.
fn set_hash(extents: &[Extent]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for e in extents {
        for v in [e.offset, e.len, e.kind as u64] {
            for b in v.to_le_bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    h
}

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

/// The child: open, then forever: random marks, a take logged as `gen seq hash` (the consumer
/// that saw that set), then commit, abort or leave it pending; every few takes a clean close
/// and open. Checks on every open that an in-use file was not trusted.
#[test]
fn kill_child_entry() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let path = dir.join("tracker.state");
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("log"))
        .unwrap();
    let mut rng = Rng((u64::from(std::process::id()) * 0x9e37_79b9) | 1);
    loop {
        let before = PersistentTracker::inspect(&path, 1 << 20).ok();
        let options = PersistOptions::new(ID).reserve(1 + rng.below(4));
        let (pt, outcome) = PersistentTracker::open(&path, config(), options).unwrap();
        if let Some(b) = before {
            if b.kind == StateKind::InUse {
                assert!(
                    matches!(outcome.reset_reason(), Some(ResetReason::Unclean { .. })),
                    "an in-use file was trusted: {outcome:?}"
                );
            }
        }
        for _ in 0..1 + rng.below(8) {
            for _ in 0..rng.below(5) {
                let off = rng.below(DISK);
                let len = 1 + rng.below((DISK - off).min(64 * KIB));
                if rng.below(4) == 0 {
                    pt.tracker().mark_discard(off, len).unwrap();
                } else {
                    pt.tracker().mark_write(off, len).unwrap();
                }
            }
            if let Some(p) = pt.tracker().pending() {
                pt.tracker().abort(p.sequence).unwrap();
            }
            let (info, extents) = take_all(&pt);
            // One write per line: a kill cuts at most the last line short.
            let line = format!(
                "{} {} {:016x}\n",
                info.generation,
                info.sequence,
                set_hash(&extents)
            );
            log.write_all(line.as_bytes()).unwrap();
            match rng.below(3) {
                0 => pt.commit(info.generation, info.sequence).unwrap(),
                1 => pt.tracker().abort(info.sequence).unwrap(),
                _ => {}
            }
        }
        pt.close().unwrap();
    }
}

#[test]
fn a_kill_between_take_and_commit_never_reissues_a_number_for_another_set() {
    let kills: u64 = std::env::var("BLOCKDELTA_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let tmp = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(0x7261_636b);
    let mut unclean = 0;
    for i in 0..kills {
        let err_path = tmp.path().join("child.stderr");
        let mut child = Command::new(&exe)
            .args([
                "kill_child_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, tmp.path())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20 + rng.below(200)));
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "kill {i}: the child exited by itself ({status}):\n{}",
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();

        // The state file is never torn: the old one or the new one.
        let path = tmp.path().join("tracker.state");
        let Ok(state) = PersistentTracker::inspect(&path, 1 << 20) else {
            // Killed before its first in-use record was renamed into place.
            assert!(
                !path.exists(),
                "kill {i}: an unreadable state file was left"
            );
            continue;
        };
        // No number was handed out past the durable reservation of its generation.
        let log = fs::read_to_string(tmp.path().join("log")).unwrap();
        let generation = state.generation.to_string();
        let highest = log
            .lines()
            .filter_map(|l| {
                let mut f = l.split(' ');
                let (g, s) = (f.next()?, f.next()?.parse::<u64>().ok()?);
                (g == generation).then_some(s)
            })
            .max()
            .unwrap_or(0);
        assert!(
            state.issued >= highest,
            "kill {i}: number {highest} was issued, the file records {}",
            state.issued
        );
        if state.kind == StateKind::InUse {
            unclean += 1;
        }
    }
    // No (generation, sequence) names two different sets, over every run.
    let log = fs::read_to_string(tmp.path().join("log")).unwrap();
    let mut seen: HashMap<(String, u64), String> = HashMap::new();
    let mut lines = 0;
    for l in log.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        if f.len() != 3 {
            continue; // the last line of a killed child may be cut short
        }
        let Ok(seq) = f[1].parse::<u64>() else {
            continue;
        };
        lines += 1;
        let prev = seen.insert((f[0].to_string(), seq), f[2].to_string());
        if let Some(prev) = prev {
            assert_eq!(
                prev, f[2],
                "checkpoint {} {seq} named two different sets",
                f[0]
            );
            panic!("checkpoint {} {seq} was issued twice", f[0]);
        }
    }
    eprintln!("{kills} kills, {unclean} left an in-use file, {lines} checkpoints logged");
    assert!(
        2 * lines as u64 >= kills,
        "the children made too little progress"
    );
    assert!(unclean > 0, "no kill hit a running tracker");
}

// ---- the committed test vector ---------------------------------------------------------------

const VECTOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/tracker/clean.state"
);
const VECTOR_ID: [u8; 16] = *b"blockdelta-vec-1";
const VECTOR_GENERATION: GenerationId =
    GenerationId([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);

/// The state of `docs/TRACKER.md`, "Test vector", built through the public API and closed.
fn build_vector(path: &Path) {
    let (pt, _) = PersistentTracker::open(path, config(), PersistOptions::new(VECTOR_ID)).unwrap();
    let (all, _) = take_all(&pt);
    pt.commit(all.generation, all.sequence).unwrap();
    pt.tracker()
        .adopt_lineage(VECTOR_GENERATION, 5, &[])
        .unwrap();
    pt.tracker().mark_write(0, BLOCK).unwrap();
    pt.tracker().mark_discard(64 * BLOCK, 64 * BLOCK).unwrap();
    let pending = pt.take().unwrap();
    assert_eq!((pending.sequence, pending.from_sequence), (6, 5));
    pt.tracker().mark_write(DISK - BLOCK, BLOCK).unwrap();
    pt.close().unwrap();
}

#[test]
fn the_committed_vector_is_what_close_writes_and_loads_as_documented() {
    let committed = fs::read(VECTOR).expect("tests/vectors/tracker/clean.state");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    build_vector(&path);
    assert_eq!(
        fs::read(&path).unwrap(),
        committed,
        "byte-identical to the vector"
    );
    assert_eq!(committed.len(), 204);

    fs::write(&path, &committed).unwrap();
    let options = PersistOptions::new(VECTOR_ID).replica_point(VECTOR_GENERATION, 5);
    let (pt, outcome) = PersistentTracker::open(&path, config(), options).unwrap();
    assert_eq!(
        outcome,
        LoadOutcome::Resumed {
            generation: VECTOR_GENERATION,
            committed: 5,
            issued: 6,
            dirty_blocks: 66,
        }
    );
    let (info, extents) = take_all(&pt);
    assert_eq!(
        (info.generation, info.sequence, info.from_sequence),
        (VECTOR_GENERATION, 7, 5)
    );
    assert_eq!(
        extents,
        vec![
            Extent::new(0, BLOCK),
            Extent::discard(64 * BLOCK, 64 * BLOCK),
            Extent::new(DISK - BLOCK, BLOCK),
        ]
    );
}

/// Rewrites the committed vector (only after a deliberate format change).
#[test]
#[ignore]
fn regenerate_tracker_vector() {
    build_vector(Path::new(VECTOR));
}

// ---- model check: any history of marks, checkpoints and clean restarts ------------------------

mod model {
    use super::*;
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    pub enum Op {
        Write(u64, u64),
        Discard(u64, u64),
        Take,
        Commit,
        Abort,
        Restart,
    }

    fn op() -> impl Strategy<Value = Op> {
        let range = (0..BLOCKS, 1..40u64).prop_map(|(b, n)| (b, n.min(BLOCKS - b)));
        prop_oneof![
            4 => range.clone().prop_map(|(b, n)| Op::Write(b, n)),
            2 => range.prop_map(|(b, n)| Op::Discard(b, n)),
            2 => Just(Op::Take),
            1 => Just(Op::Commit),
            1 => Just(Op::Abort),
            1 => Just(Op::Restart),
        ]
    }

    type Set = BTreeMap<u64, ExtentKind>;

    /// The blocks of `set` as coalesced extents, as the tracker reports them.
    fn extents_of(set: &Set) -> Vec<Extent> {
        let mut out: Vec<Extent> = Vec::new();
        for (&b, &k) in set {
            match out.last_mut() {
                Some(e) if e.offset + e.len == b * BLOCK && e.kind == k => e.len += BLOCK,
                _ => out.push(Extent {
                    kind: k,
                    ..Extent::new(b * BLOCK, BLOCK)
                }),
            }
        }
        out
    }

    /// Runs `ops` against a persistent tracker restarted cleanly at every `Restart`, and
    /// against a model: every take holds exactly the model's set, numbered on from the same
    /// generation.
    pub fn check(ops: &[Op]) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tracker.state");
        let (mut pt, _) = open(&path);
        // The first take of a new generation is everything; commit it to start from clean.
        let (first, _) = take_all(&pt);
        pt.commit(first.generation, first.sequence).unwrap();
        let (mut live, mut pending): (Set, Option<(u64, Set)>) = (Set::new(), None);
        let (mut issued, mut committed) = (1, 1);
        for op in ops {
            match *op {
                Op::Write(b, n) => {
                    pt.tracker().mark_write(b * BLOCK, n * BLOCK).unwrap();
                    live.extend((b..b + n).map(|x| (x, ExtentKind::Write)));
                }
                Op::Discard(b, n) => {
                    pt.tracker().mark_discard(b * BLOCK, n * BLOCK).unwrap();
                    live.extend((b..b + n).map(|x| (x, ExtentKind::Discard)));
                }
                Op::Take if pending.is_none() => {
                    let (info, extents) = take_all(&pt);
                    issued += 1;
                    assert_eq!(info.generation, first.generation);
                    assert_eq!((info.sequence, info.from_sequence), (issued, committed));
                    assert_eq!(extents, extents_of(&live), "take {issued}");
                    pending = Some((info.sequence, std::mem::take(&mut live)));
                }
                Op::Take => {}
                Op::Commit => {
                    if let Some((seq, _)) = pending.take() {
                        pt.commit(first.generation, seq).unwrap();
                        committed = seq;
                    }
                }
                Op::Abort => {
                    if let Some((seq, set)) = pending.take() {
                        pt.tracker().abort(seq).unwrap();
                        for (b, k) in set {
                            live.entry(b).or_insert(k);
                        }
                    }
                }
                Op::Restart => {
                    pt.close().unwrap();
                    if let Some((_, set)) = pending.take() {
                        for (b, k) in set {
                            live.entry(b).or_insert(k);
                        }
                    }
                    let (next, outcome) = open(&path);
                    assert_eq!(
                        outcome,
                        LoadOutcome::Resumed {
                            generation: first.generation,
                            committed,
                            issued,
                            dirty_blocks: live.len() as u64,
                        }
                    );
                    pt = next;
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn every_take_after_clean_restarts_is_exactly_what_changed(
            ops in proptest::collection::vec(op(), 1..40)
        ) {
            check(&ops);
        }
    }
}

// ---- concurrent writers across a restart -----------------------------------------------------

/// Four threads write random blocks while checkpoints are taken and committed (or aborted, or
/// left pending); then the writers stop, the tracker closes and opens again. A write that
/// started after take `k` returned cannot be in take `k` or earlier, so every block must be in
/// a committed take numbered after the last take that returned before its last write began,
/// or in the first take after the restart: nothing a writer marked is lost by the save.
#[test]
fn no_write_is_lost_across_a_clean_restart_under_concurrent_writers() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.state");
    let (pt, _) = open(&path);
    let (first, _) = take_all(&pt);
    pt.commit(first.generation, first.sequence).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // The sequence of the last take that returned.
    let taken = Arc::new(AtomicU64::new(first.sequence));
    let writers: Vec<_> = (0..4u64)
        .map(|t| {
            let tracker = pt.tracker().clone();
            let (stop, taken) = (stop.clone(), taken.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0x5eed ^ (t + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                // Per block: the last take that had returned before its latest write began.
                let mut after = vec![0u64; BLOCKS as usize];
                let mut writes = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let b = rng.below(BLOCKS);
                    let k = taken.load(Ordering::Acquire);
                    tracker.mark_write(b * BLOCK + rng.below(BLOCK), 1).unwrap();
                    after[b as usize] = after[b as usize].max(k);
                    writes += 1;
                }
                (after, writes)
            })
        })
        .collect();
    // Per block: the highest committed take that held it.
    let mut shipped = vec![0u64; BLOCKS as usize];
    let mut rng = Rng(0xc0ffee);
    for _ in 0..300 {
        if let Some(p) = pt.tracker().pending() {
            pt.tracker().abort(p.sequence).unwrap();
        }
        let (info, extents) = take_all(&pt);
        taken.store(info.sequence, Ordering::Release);
        match rng.below(3) {
            0 => {
                pt.commit(info.generation, info.sequence).unwrap();
                for e in &extents {
                    for b in e.offset / BLOCK..(e.offset + e.len) / BLOCK {
                        shipped[b as usize] = info.sequence;
                    }
                }
            }
            1 => pt.tracker().abort(info.sequence).unwrap(),
            _ => {}
        }
    }
    // Writes after the last take: only the saved state has them.
    std::thread::sleep(Duration::from_millis(5));
    stop.store(true, Ordering::Release);
    let mut after = vec![0u64; BLOCKS as usize];
    let mut writes = 0;
    for w in writers {
        let (a, n) = w.join().unwrap();
        writes += n;
        for (x, y) in after.iter_mut().zip(a) {
            *x = (*x).max(y);
        }
    }
    assert!(writes > 1000, "the writers ran ({writes} writes)");
    pt.close().unwrap();
    let (pt, outcome) = open(&path);
    assert!(!outcome.is_reset(), "{outcome:?}");
    let (info, extents) = take_all(&pt);
    assert_eq!(info.generation, first.generation);
    for e in &extents {
        for b in e.offset / BLOCK..(e.offset + e.len) / BLOCK {
            shipped[b as usize] = info.sequence;
        }
    }
    for (b, (&s, &a)) in shipped.iter().zip(&after).enumerate() {
        if a > 0 {
            assert!(
                s > a,
                "block {b}, written after take {a} returned, was last shipped in take {s}"
            );
        }
    }
}
