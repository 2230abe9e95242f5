//! A replica store's files are hostile input. Starting from the committed test vector
//! (`tests/vectors/replica/`), every file of it is damaged in turn, one byte flipped at each
//! position and truncated at each length (in packs: 128 positions and 64 lengths spread over
//! the file, header, data, checksum table and footer alike); then
//! `Store::open`, a whole read of every listed point, and `scrub` must either succeed with
//! exactly the vector's bytes or fail with a clear error (`Corrupt`, `ChecksumMismatch`,
//! `UnsupportedVersion`): never panic, never return wrong bytes, never list a point the vector
//! does not have.
//!
//! Also the regression tests of what fuzzing `Store::open` (fuzz/fuzz_targets/store_open.rs)
//! found.

#[path = "common/replica_vector.rs"]
mod replica_vector;
#[path = "common/source.rs"]
mod source;

use std::path::Path;

use blockdelta::replica::{ReplicaError, Store};
use replica_vector::*;

fn clear(e: &ReplicaError) -> bool {
    matches!(
        e,
        ReplicaError::Corrupt { .. }
            | ReplicaError::ChecksumMismatch { .. }
            | ReplicaError::UnsupportedVersion { .. }
    )
}

/// Opens the store in `dir` and reads everything. Returns whether it all succeeded; panics on
/// wrong bytes, an unknown point or an unclear error.
fn try_store(dir: &Path, expected: &[(u64, u64, String)], what: &str) -> bool {
    let store = match Store::open(dir) {
        Ok(s) => s,
        Err(e) => {
            assert!(clear(&e), "{what}: open: unclear error {e:?}");
            return false;
        }
    };
    let mut ok = true;
    let points = store.points();
    assert_eq!(
        points.len(),
        expected.len(),
        "{what}: a store that opens lists another number of points"
    );
    for p in &points {
        let (_, size, sha) = expected
            .iter()
            .find(|e| e.0 == p.id.sequence)
            .unwrap_or_else(|| panic!("{what}: lists unknown point {}", p.id.sequence));
        assert_eq!(
            p.disk_size, *size,
            "{what}: size of point {}",
            p.id.sequence
        );
        let mut b = vec![0u8; p.disk_size as usize];
        match store.read_at(p.id, 0, &mut b) {
            Ok(()) => assert_eq!(
                &sha256_hex(&b),
                sha,
                "{what}: point {} read back wrong bytes",
                p.id.sequence
            ),
            Err(e) => {
                assert!(clear(&e), "{what}: read: unclear error {e:?}");
                ok = false;
            }
        }
    }
    if let Err(e) = store.scrub() {
        assert!(clear(&e), "{what}: scrub: unclear error {e:?}");
        ok = false;
    }
    ok
}

#[test]
fn every_flipped_byte_and_every_truncation_is_refused_clearly() {
    let files = files();
    let expected = expected_points();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    write_store(&dir, &files);
    assert!(try_store(&dir, &expected, "intact"));
    let mut trials = 0;
    for (name, orig) in &files {
        let path = dir.join(name);
        let step = (orig.len() / 128).max(1);
        // Puts the file back; the whole store if open deleted anything (it deletes objects the
        // manifest does not reference, which a damaged manifest may not).
        let restore = || {
            std::fs::write(&path, orig).unwrap();
            if std::fs::read_dir(dir.join("objects")).unwrap().count() != files.len() - 1 {
                write_store(&dir, &files);
            }
        };
        for pos in (0..orig.len()).step_by(step) {
            let mut f = orig.clone();
            f[pos] ^= [0x01, 0x80, 0xff, 0x10][pos % 4];
            std::fs::write(&path, &f).unwrap();
            // Every byte of every file is covered by a checksum that open, a read or scrub
            // checks (a pack's unreferenced bytes by scrub): no flip goes unnoticed.
            assert!(
                !try_store(&dir, &expected, &format!("{name} flipped at {pos}")),
                "{name} flipped at {pos}: accepted"
            );
            restore();
            trials += 1;
        }
        let step = (orig.len() / 64).max(1);
        for len in (0..orig.len()).step_by(step) {
            std::fs::write(&path, &orig[..len]).unwrap();
            assert!(
                !try_store(&dir, &expected, &format!("{name} truncated to {len}")),
                "{name} truncated to {len}: accepted"
            );
            restore();
            trials += 1;
        }
    }
    assert!(try_store(&dir, &expected, "restored"));
    eprintln!("{trials} damaged stores, all refused, none with wrong bytes or an unclear error");
}

/// The vector's files with the MANIFEST patched by `patch` and resealed (a forger's manifest:
/// its checksum is right).
fn forged_manifest(patch: impl FnOnce(&mut Vec<u8>)) -> Vec<(String, Vec<u8>)> {
    let mut files = files();
    let m = &mut files[0].1;
    patch(m);
    let n = m.len() - 4;
    let crc = crc32fast::hash(&m[..n]);
    m[n..].copy_from_slice(&crc.to_le_bytes());
    files
}

/// Regression (found reviewing the fuzzer's finding below): a forged manifest (CRC fixed) whose
/// pack claims a data length near 2^64 passed open, and every use of that length overflowed:
/// the pack's object size, its checksum table's offset in a read (a panic in debug builds, a
/// wrapped offset in release). Lengths above 2^62 are now refused at open.
#[test]
fn a_forged_pack_length_is_refused_at_open() {
    for data_len in [u64::MAX, u64::MAX - 4096, 1 << 63, (1 << 62) + 1] {
        let files = forged_manifest(|m| {
            // The packs come last, (id, data_len) each, before the CRC.
            let at = m.len() - 4 - 8;
            m[at..at + 8].copy_from_slice(&data_len.to_le_bytes());
        });
        let tmp = tempfile::tempdir().unwrap();
        write_store(&tmp.path().join("s"), &files);
        match Store::open(tmp.path().join("s")) {
            Err(ReplicaError::Corrupt { object, .. }) => assert_eq!(object, "MANIFEST"),
            other => panic!("data_len {data_len}: {other:?}"),
        }
    }
}

/// Regression (found by review): a forged manifest with a commit counter or next object id at
/// 2^64 - 1 opened, and the next commit or object allocation would overflow. Both are now
/// bounded at open (2^62).
#[test]
fn forged_counters_are_refused_at_open() {
    // counter at 16..24, next_object at 64..72 (after store id, disk id, creation time).
    for at in [16usize, 64] {
        let files = forged_manifest(|m| m[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes()));
        let tmp = tempfile::tempdir().unwrap();
        write_store(&tmp.path().join("s"), &files);
        match Store::open(tmp.path().join("s")) {
            Err(ReplicaError::Corrupt { object, .. }) => assert_eq!(object, "MANIFEST"),
            other => panic!("u64::MAX at {at}: {other:?}"),
        }
    }
}

/// Regression (found by fuzz/fuzz_targets/store_open.rs, input `NpOuk/8t///Y+w4=`: two packs'
/// data lengths forged near 2^64 with the manifest's CRC fixed): `stats()` summed the packs'
/// sizes and overflowed (a panic in debug builds). Each length is now bounded at open (2^62),
/// and the sums saturate: every pack at the bound still opens, and stats, reads and scrub
/// give clear errors or results, never a panic.
#[test]
fn forged_pack_lengths_whose_sum_overflows_do_not_panic() {
    let n = files().iter().filter(|f| f.0.contains("/pack-")).count();
    let files = forged_manifest(|m| {
        for k in 0..n {
            let at = m.len() - 4 - 16 * (n - k) + 8;
            m[at..at + 8].copy_from_slice(&(1u64 << 62).to_le_bytes());
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    write_store(&tmp.path().join("s"), &files);
    let store = Store::open(tmp.path().join("s")).unwrap();
    let st = store.stats();
    assert_eq!(st.bytes, u64::MAX);
    for p in store.points() {
        let mut b = vec![0u8; p.disk_size as usize];
        match store.read_at(p.id, 0, &mut b) {
            Ok(()) => {}
            Err(e) => assert!(clear(&e), "read: {e:?}"),
        }
    }
    let e = store.scrub().unwrap_err();
    assert!(clear(&e), "scrub: {e:?}");
}
