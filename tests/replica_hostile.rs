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
    let mut files = checkpoint_files();
    let m = &mut files[0].1;
    patch(m);
    let n = m.len() - 4;
    let crc = crc32fast::hash(&m[..n]);
    m[n..].copy_from_slice(&crc.to_le_bytes());
    files
}

/// The vector's files without its manifest log record, which only changes the retention
/// policy: the MANIFEST alone then describes the store, and a forged one need not match the
/// record's view of the lists it changes.
fn checkpoint_files() -> Vec<(String, Vec<u8>)> {
    let mut files = files();
    let n = files.len();
    files.retain(|f| !f.0.starts_with("objects/log-"));
    assert_eq!(files.len(), n - 1, "the vector holds one log record");
    files
}

/// Manifest layout at its end: K packs of 32 bytes (id, data length, bundle, offset), the
/// bundle count (u32) and 4 reserved bytes, the bundles (id, length), the base level count
/// (u32) and 4 reserved bytes, the levels (layer id, runs), the CRC.
fn pack_record_at(m: &[u8], k: usize) -> usize {
    let npacks = u32::from_le_bytes(m[180..184].try_into().unwrap()) as usize;
    let nb_at = m.len() - levels_tail(m) - 8 - 16 * count_bundles(m);
    nb_at - 32 * (npacks - k)
}

/// A list of 16-byte entries after its count (u32) and 4 reserved bytes, ending at `end`: the
/// count that makes the layout add up (the vector's lists are short).
fn count_list_ending_at(m: &[u8], end: usize) -> usize {
    (0..16)
        .find(|&n| {
            let at = end - 16 * n - 8;
            u32::from_le_bytes(m[at..at + 4].try_into().unwrap()) as usize == n
        })
        .unwrap()
}

/// The bytes of the base level list and the CRC at the manifest's end.
fn levels_tail(m: &[u8]) -> usize {
    4 + 8 + 16 * count_list_ending_at(m, m.len() - 4)
}

fn count_bundles(m: &[u8]) -> usize {
    count_list_ending_at(m, m.len() - levels_tail(m))
}

/// The vector's files with every pack its own object again: each bundled pack's bytes copied
/// out of its bundle, its record made standalone, the bundles dropped (CRC fixed).
fn unbundled_files() -> Vec<(String, Vec<u8>)> {
    let mut files = checkpoint_files();
    let m = files[0].1.clone();
    let npacks = u32::from_le_bytes(m[180..184].try_into().unwrap()) as usize;
    let nb = count_bundles(&m);
    let mut out = m[..pack_record_at(&m, 0)].to_vec();
    let mut extracted = Vec::new();
    for k in 0..npacks {
        let at = pack_record_at(&m, k);
        let u = |o: usize| u64::from_le_bytes(m[at + o..at + o + 8].try_into().unwrap());
        let (id, data_len, bundle, offset) = (u(0), u(8), u(16), u(24));
        if bundle != 0 {
            let b = &files
                .iter()
                .find(|f| f.0 == format!("objects/bundle-{bundle:016x}"))
                .unwrap()
                .1;
            let len = data_len + data_len.div_ceil(4096) * 4 + 28;
            extracted.push((
                format!("objects/pack-{id:016x}"),
                b[offset as usize..(offset + len) as usize].to_vec(),
            ));
        }
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&data_len.to_le_bytes());
        out.extend_from_slice(&[0; 16]);
    }
    assert!(
        nb >= 1 && !extracted.is_empty(),
        "the vector holds a bundle"
    );
    out.extend_from_slice(&[0; 8]);
    let tail = levels_tail(&m);
    out.extend_from_slice(&m[m.len() - tail..m.len() - 4]);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    files[0].1 = out;
    files.retain(|f| !f.0.contains("/bundle-"));
    files.extend(extracted);
    files
}

#[test]
fn the_unbundled_vector_reads_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    write_store(&tmp.path().join("s"), &unbundled_files());
    let store = Store::open(tmp.path().join("s")).unwrap();
    assert_eq!(store.stats().bundles, 0);
    for (p, line) in store.points().iter().zip(expected_lines()) {
        let mut b = vec![0u8; p.disk_size as usize];
        store.read_at(p.id, 0, &mut b).unwrap();
        assert_eq!(describe(p, &b), line);
    }
    store.scrub().unwrap();
}

/// Regression (found reviewing the fuzzer's finding below): a forged manifest (CRC fixed) whose
/// pack claims a data length near 2^64 passed open, and every use of that length overflowed:
/// the pack's object size, its checksum table's offset in a read (a panic in debug builds, a
/// wrapped offset in release). Lengths above 2^62 are now refused at open.
#[test]
fn a_forged_pack_length_is_refused_at_open() {
    for data_len in [u64::MAX, u64::MAX - 4096, 1 << 63, (1 << 62) + 1] {
        let files = forged_manifest(|m| {
            // The last pack's data length (a pack of its own).
            let npacks = u32::from_le_bytes(m[180..184].try_into().unwrap()) as usize;
            let at = pack_record_at(m, npacks - 1) + 8;
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
    let mut files = unbundled_files();
    let n = files.iter().filter(|f| f.0.contains("/pack-")).count();
    assert!(n >= 4);
    let m = &mut files[0].1;
    for k in 0..n {
        let at = pack_record_at(m, k) + 8;
        m[at..at + 8].copy_from_slice(&(1u64 << 62).to_le_bytes());
    }
    let c = m.len() - 4;
    let crc = crc32fast::hash(&m[..c]);
    m[c..].copy_from_slice(&crc.to_le_bytes());
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

/// A forged manifest (CRC fixed) that misplaces a bundled pack is refused at open, before any
/// read could land outside the pack: an unaligned offset, one inside the bundle's header chunk
/// or past its end, two packs overlapping, an unlisted bundle, a standalone pack with an offset.
#[test]
fn forged_bundle_placements_are_refused_at_open() {
    let m0 = files()[0].1.clone();
    let npacks = u32::from_le_bytes(m0[180..184].try_into().unwrap()) as usize;
    let rec = |k: usize, o: usize| {
        let at = pack_record_at(&m0, k) + o;
        u64::from_le_bytes(m0[at..at + 8].try_into().unwrap())
    };
    let bundled: Vec<usize> = (0..npacks).filter(|&k| rec(k, 16) != 0).collect();
    let standalone = (0..npacks).find(|&k| rec(k, 16) == 0).unwrap();
    assert!(bundled.len() >= 2);
    let (a, b) = (bundled[0], bundled[1]);
    let put = |m: &mut Vec<u8>, k: usize, o: usize, v: u64| {
        let at = pack_record_at(m, k) + o;
        m[at..at + 8].copy_from_slice(&v.to_le_bytes());
    };
    type Patch<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;
    let cases: Vec<(&str, Patch)> = vec![
        (
            "unaligned",
            Box::new(move |m| put(m, a, 24, rec(a, 24) + 1)),
        ),
        ("in the header chunk", Box::new(move |m| put(m, a, 24, 0))),
        ("past the end", Box::new(move |m| put(m, a, 24, 1 << 40))),
        ("overlapping", Box::new(move |m| put(m, b, 24, rec(a, 24)))),
        (
            "unlisted bundle",
            Box::new(move |m| put(m, a, 16, rec(a, 16) + 1000)),
        ),
        (
            "standalone with an offset",
            Box::new(move |m| put(m, standalone, 24, 4096)),
        ),
    ];
    for (what, patch) in cases {
        let files = forged_manifest(|m| patch(m));
        let tmp = tempfile::tempdir().unwrap();
        write_store(&tmp.path().join("s"), &files);
        match Store::open(tmp.path().join("s")) {
            Err(ReplicaError::Corrupt { object, .. }) => assert_eq!(object, "MANIFEST", "{what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
}
