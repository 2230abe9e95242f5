//! The committed replica-store test vector (`tests/vectors/replica/`: `MANIFEST`, `objects/`,
//! and `points.txt`, which lists every point with its metadata and the SHA-256 of its whole
//! contents). A copy of it opens and every point reads back as listed; building it again gives
//! byte-identical files; and damaged copies are refused with the documented errors: a manifest
//! or layer of a later major version with `UnsupportedVersion`, a flipped byte with `Corrupt` (or
//! `ChecksumMismatch` from a read or scrub for pack data), a truncated file with `Corrupt`.
//!
//! Regenerate (only after a deliberate format change) with
//! `cargo test --test replica_vectors -- --ignored regenerate_replica_vector`.

#[path = "common/replica_vector.rs"]
mod replica_vector;
#[path = "common/source.rs"]
mod source;

use blockdelta::replica::{ReplicaError, Store};
use replica_vector::*;

/// Opens a copy of `files`; then reads every point whole and scrubs. The first error, or the
/// store's `points.txt` lines.
fn open_read_scrub(files: &[(String, Vec<u8>)]) -> Result<Vec<String>, ReplicaError> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    write_store(&dir, files);
    let store = Store::open(&dir)?;
    let mut lines = Vec::new();
    for p in store.points() {
        let mut b = vec![0u8; p.disk_size as usize];
        store.read_at(p.id, 0, &mut b)?;
        lines.push(describe(&p, &b));
    }
    store.scrub()?;
    Ok(lines)
}

fn reseal(b: &mut [u8]) {
    let n = b.len() - 4;
    let crc = crc32fast::hash(&b[..n]);
    b[n..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn the_vector_opens_and_every_point_reads_back() {
    let files = files();
    assert!(files.len() >= 6, "{} files", files.len());
    let lines = open_read_scrub(&files).unwrap();
    assert_eq!(lines, expected_lines());
    assert_eq!(lines.len(), 4);
    // The store's lineage continues from the newest point.
    let tmp = tempfile::tempdir().unwrap();
    write_store(&tmp.path().join("s"), &files);
    let store = Store::open(tmp.path().join("s")).unwrap();
    assert_eq!(store.lineage(), Some((GENERATION, 5)));
    assert_eq!(store.disk_id(), DISK_ID);
}

#[test]
fn building_it_again_gives_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let images = build(&dir);
    // points.txt agrees with the source the vector was built from.
    for (seq, size, sha) in expected_points() {
        let img = &images[seq as usize - 1];
        assert_eq!(img.len() as u64, size);
        assert_eq!(
            sha256_hex(img),
            sha,
            "point {seq} of points.txt is not the source's image"
        );
    }
    let fresh = files_in(&dir);
    let committed = files();
    let names = |f: &[(String, Vec<u8>)]| f.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&fresh), names(&committed));
    for ((n, a), (_, b)) in fresh.iter().zip(&committed) {
        assert!(a == b, "{n} differs from the committed vector");
    }
}

const LATER: u16 = blockdelta::replica::STORE_FORMAT_MAJOR + 1;

#[test]
fn a_later_major_version_is_refused_as_such() {
    let files = files();
    for (i, (name, b)) in files.iter().enumerate() {
        if name.contains("/pack-") {
            continue; // a pack's version is covered by its chunk checksum (see below)
        }
        let mut f = files.clone();
        let mut m = b.clone();
        m[8..10].copy_from_slice(&LATER.to_le_bytes());
        if name.contains("/bundle-") {
            // A bundle's header is sealed in its first 44 bytes.
            reseal(&mut m[..44]);
        } else {
            reseal(&mut m);
        }
        f[i].1 = m;
        match open_read_scrub(&f) {
            Err(ReplicaError::UnsupportedVersion { object, version }) if version == LATER => {
                assert_eq!(object, name.trim_start_matches("objects/"));
            }
            other => panic!("{name} with major {LATER}: {other:?}"),
        }
    }
}

#[test]
fn a_flipped_byte_in_each_file_is_refused() {
    let files = files();
    for (i, (name, b)) in files.iter().enumerate() {
        // In the middle of the file: for a pack, inside its data.
        let mut f = files.clone();
        f[i].1[b.len() / 2] ^= 0x10;
        match open_read_scrub(&f) {
            Err(ReplicaError::Corrupt { .. }) if !name.contains("/pack-") => {}
            Err(ReplicaError::ChecksumMismatch { .. })
                if name.contains("/pack-") || name.contains("/bundle-") => {}
            other => panic!("{name} flipped at {}: {other:?}", b.len() / 2),
        }
    }
}

#[test]
fn a_truncated_file_is_refused() {
    let files = files();
    for (i, (name, b)) in files.iter().enumerate() {
        for len in [0, 1, b.len() / 2, b.len() - 1] {
            let mut f = files.clone();
            f[i].1.truncate(len);
            match open_read_scrub(&f) {
                Err(ReplicaError::Corrupt { .. }) => {}
                other => panic!("{name} truncated to {len}: {other:?}"),
            }
        }
    }
}

#[test]
#[ignore = "rewrites tests/vectors/replica; run only after a deliberate format change"]
fn regenerate_replica_vector() {
    let dir = dir();
    let _ = std::fs::remove_dir_all(&dir);
    build(&dir);
    let store = Store::open(&dir).unwrap();
    let mut text = String::from(
        "# The points of the replica-store test vector in this directory (see tests/common/replica_vector.rs).\n\
         # One line per point, oldest first: its generation and sequence (checkpoint), the checkpoint its\n\
         # changes start from, disk size, time and ingest time (ns since the Unix epoch), consistency,\n\
         # BOOKMARK id and label (- for none), and the SHA-256 of the point's whole contents.\n",
    );
    for l in describe_store(&store) {
        text.push_str(&l);
        text.push('\n');
    }
    drop(store);
    std::fs::remove_file(dir.join("LOCK")).unwrap();
    std::fs::remove_dir(dir.join("uploads")).unwrap();
    std::fs::write(dir.join("points.txt"), text).unwrap();
}
