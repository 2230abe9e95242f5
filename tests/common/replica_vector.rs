//! The committed replica-store test vector (`tests/vectors/replica/`): how it is built, its
//! files, and the points it must hold (`points.txt`).
//!
//! The store is built by [`build`] from fixed streams (the simulated source of `source.rs` with
//! a fixed generation) with `Store::create_for_test_vectors` (feature `insecure-test-vectors`:
//! fixed store id and clock), so building it again gives byte-identical files.
//!
//! It has a base layer (the first point folded into it by retention), four points (one with an
//! application-consistent BOOKMARK, one after a grow, one with a DISCARD), ZERO runs, packs, a
//! bundle, and a manifest log record after the MANIFEST (a checkpoint of everything else).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use blockdelta::replica::{PointInfo, Retention, Store, StoreConfig};
use blockdelta::{BookmarkKind, GenerationId};

use crate::source::Source;

pub const DISK_ID: [u8; 16] = *b"blockdelta-rep-1";
pub const GENERATION: GenerationId = GenerationId([
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
]);
pub const STORE_ID: [u8; 16] = *b"replica-vector-1";
/// The fixed clock: 2023-11-14T22:13:20Z.
pub const TIME_NS: u64 = 1_700_000_000_000_000_000;
const BLOCK: u64 = 4096;

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/replica")
}

fn fill(src: &mut Source, off: u64, len: u64, seed: u32) {
    let mut x = seed | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    src.write_data(off, &data);
}

/// Builds the vector store in `dir` (which must not hold a store). Returns the source's image
/// at every checkpoint (index: sequence - 1), the oracle for the points.
pub fn build(dir: &Path) -> Vec<Vec<u8>> {
    let store =
        Store::create_for_test_vectors(dir, StoreConfig::new(DISK_ID), STORE_ID, TIME_NS).unwrap();
    let mut src = Source::new(DISK_ID, 64 << 10, BLOCK);
    src.generation = GENERATION;
    let mut images = Vec::new();
    let mut cycle = |src: &mut Source| {
        images.push(src.disk.clone());
        let to = src.seq + 1;
        let stream = src.stream(to, 8192);
        let mut ing = store.ingest(None).unwrap();
        ing.push(&stream).unwrap();
        ing.finish().unwrap();
        src.commit(to);
    };
    // 1: the whole disk: text, pseudo-random bytes, zeros.
    let text = b"blockdelta replica store test vector. ";
    let t: Vec<u8> = (0..8192).map(|i| text[i % text.len()]).collect();
    src.write_data(0, &t);
    fill(&mut src, 20000, 5000, 1);
    cycle(&mut src);
    // 2: a block rewritten, one zeroed, an unaligned write; an application-consistent BOOKMARK.
    fill(&mut src, 4096, 4096, 2);
    src.zero(20480, 4096);
    fill(&mut src, 40000, 300, 3);
    src.bookmark = Some((42, BookmarkKind::ApplicationConsistent, "app-point".into()));
    cycle(&mut src);
    // 3: grown by 8 KiB, the new end written.
    src.resize(72 << 10);
    fill(&mut src, 68 << 10, 4096, 4);
    cycle(&mut src);
    // 4: a discard and a write.
    src.discard(0, 4096);
    fill(&mut src, 32768, 8192, 5);
    cycle(&mut src);
    // Keep 3 points: the first folds into the base.
    store
        .set_retention(Retention {
            max_points: Some(3),
            ..Retention::default()
        })
        .unwrap();
    assert_eq!(store.retain(TIME_NS).unwrap().len(), 1);
    // Copy the small packs into a bundle (the vector holds one).
    store.compact().unwrap();
    assert_eq!(store.stats().bundles, 1);
    // 5: a write after that: its pack stands alone beside the bundle.
    fill(&mut src, 8192, 4096, 6);
    cycle(&mut src);
    assert_eq!((store.stats().bundles, store.stats().packs), (1, 5));
    // Fold the manifest log into a checkpoint (the MANIFEST lists everything), then one more
    // commit: a manifest log record (`log-*`) changing only the retention policy.
    store.compact().unwrap();
    assert_eq!((store.stats().bundles, store.stats().packs), (1, 5));
    store
        .set_retention(Retention {
            max_points: Some(4),
            ..Retention::default()
        })
        .unwrap();
    drop(store);
    // Only the store's own files: no lock file, no (empty) upload directory.
    std::fs::remove_file(dir.join("LOCK")).unwrap();
    std::fs::remove_dir(dir.join("uploads")).unwrap();
    images
}

/// The vector's files, relative to its directory, MANIFEST first then objects by name.
pub fn files_in(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![(
        "MANIFEST".to_string(),
        std::fs::read(dir.join("MANIFEST")).unwrap(),
    )];
    let mut names: Vec<String> = std::fs::read_dir(dir.join("objects"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    for n in names {
        let b = std::fs::read(dir.join("objects").join(&n)).unwrap();
        out.push((format!("objects/{n}"), b));
    }
    out
}

pub fn files() -> Vec<(String, Vec<u8>)> {
    files_in(&dir())
}

/// Writes `files` as a store in `dir` (replacing whatever is there).
pub fn write_store(dir: &Path, files: &[(String, Vec<u8>)]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("objects")).unwrap();
    std::fs::create_dir_all(dir.join("uploads")).unwrap();
    for (n, b) in files {
        std::fs::write(dir.join(n), b).unwrap();
    }
}

pub fn sha256_hex(b: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// One line of `points.txt` for a point and its contents.
pub fn describe(p: &PointInfo, contents: &[u8]) -> String {
    let kind = match p.consistency {
        BookmarkKind::ApplicationConsistent => "app",
        _ => "crash",
    };
    format!(
        "point generation {} sequence {} from {} size {} time {} ingested {} kind {} bookmark {} label {} sha256 {}",
        GENERATION.0.iter().map(|x| format!("{x:02x}")).collect::<String>(),
        p.id.sequence,
        p.from_sequence,
        p.disk_size,
        p.time_ns,
        p.ingested_ns,
        kind,
        p.bookmark_id.map_or("-".to_string(), |b| b.to_string()),
        if p.label.is_empty() { "-" } else { &p.label },
        sha256_hex(contents),
    )
}

/// Every point of `store` as `points.txt` lines (reads every point whole).
pub fn describe_store(store: &Store) -> Vec<String> {
    store
        .points()
        .iter()
        .map(|p| {
            let mut b = vec![0u8; p.disk_size as usize];
            store.read_at(p.id, 0, &mut b).unwrap();
            describe(p, &b)
        })
        .collect()
}

/// The committed `points.txt` lines (comments and blank lines dropped).
pub fn expected_lines() -> Vec<String> {
    std::fs::read_to_string(dir().join("points.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// (sequence, disk size, sha256 hex) of every expected point.
pub fn expected_points() -> Vec<(u64, u64, String)> {
    expected_lines()
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let get = |k: &str| f[f.iter().position(|x| *x == k).unwrap() + 1];
            (
                get("sequence").parse().unwrap(),
                get("size").parse().unwrap(),
                get("sha256").to_string(),
            )
        })
        .collect()
}
