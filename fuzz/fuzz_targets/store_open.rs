//! Fuzz opening a replica store whose files were damaged or forged.
//!
//! The seed is the committed replica test vector (`tests/vectors/replica/`: MANIFEST, a base
//! layer, point layers, a pack, a bundle of packs and a manifest log record). Each input
//! mutates one of its files: byte 0 picks the file, byte 1 the mutation (bits 0-1):
//! - 0: the rest of the input replaces the file;
//! - 1: the rest is (offset u32 LE, bytes) XORed into the file at offset (mod its length);
//! - 2: the file is truncated at (u32 LE mod its length);
//! - 3: the rest is (offset u16 LE, xor u8) triples applied in turn;
//!
//! and with bit 7 set, the checksums are recomputed after the mutation as a forger would (the
//! trailing CRC32 of the manifest, layers and log record, a pack's header CRC, chunk CRCs and
//! table CRC, a bundle's header CRC), so
//! that mutated fields get past the checksums and reach the structural checks. With bit 6 set,
//! a store that opened then ingests the next stream (a 4 KiB write over the vector's newest
//! point), which allocates objects and commits a manifest from the damaged state.
//!
//! The store is written to a directory (in /dev/shm when there is one), then `Store::open`,
//! `points`, `read_at` of every point over its whole size (in bounded pieces, at most 8 MiB
//! per point), `stats`, `changed_between` and `scrub` run. Any error is fine; a panic, a hang
//! or an unbounded allocation is a bug. Beyond that: when the checksums were not recomputed
//! (a forger could not have made the damage pass them), every successful read returns exactly
//! the original point's bytes.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use blockdelta::replica::{PointId, Store};
use blockdelta::stream::encode_to_vec;
use blockdelta::{EncoderConfig, Extent};
use libfuzzer_sys::fuzz_target;

struct Valid {
    /// (path relative to the store directory, bytes), MANIFEST first.
    files: Vec<(String, Vec<u8>)>,
    /// Every point with its contents, as the intact store reads them.
    points: Vec<(PointId, Vec<u8>)>,
}

/// The committed replica test vector (`tests/vectors/replica/`, checked by
/// `tests/replica_vectors.rs` against the source it was built from) is the seed store.
fn valid() -> &'static Valid {
    static V: OnceLock<Valid> = OnceLock::new();
    V.get_or_init(|| {
        let vector = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/replica");
        let mut files = vec![(
            "MANIFEST".to_string(),
            std::fs::read(vector.join("MANIFEST")).unwrap(),
        )];
        let mut names: Vec<String> = std::fs::read_dir(vector.join("objects"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        for n in names {
            let b = std::fs::read(vector.join("objects").join(&n)).unwrap();
            files.push((format!("objects/{n}"), b));
        }
        let dir = work_dir().with_extension("seed");
        write_store(&dir, &files, usize::MAX, &[]);
        let store = Store::open(&dir).unwrap();
        let points = store
            .points()
            .iter()
            .map(|p| {
                let mut b = vec![0u8; p.disk_size as usize];
                store.read_at(p.id, 0, &mut b).unwrap();
                (p.id, b)
            })
            .collect();
        store.scrub().unwrap();
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        Valid { files, points }
    })
}

/// Writes the store's files into `dir`, file `which` replaced by `with`.
fn write_store(dir: &Path, files: &[(String, Vec<u8>)], which: usize, with: &[u8]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("objects")).unwrap();
    std::fs::create_dir_all(dir.join("uploads")).unwrap();
    for (i, (n, b)) in files.iter().enumerate() {
        std::fs::write(dir.join(n), if i == which { with } else { b }).unwrap();
    }
}

/// Ingests the stream that continues the vector (checkpoint 4 -> 5: 4 KiB rewritten at 8 KiB).
/// When the damage was not forged and the new point reads back, it must be exact.
fn next_stream(store: &Store, v: &Valid, exact: bool) {
    let Some((g, seq)) = store.lineage() else {
        return;
    };
    let Some((_, newest)) = v.points.last() else {
        return;
    };
    let mut disk = newest.clone();
    disk[8192..12288].fill(0xa5);
    let size = disk.len() as u64;
    let cfg = EncoderConfig::new(store.disk_id(), g, seq, seq + 1, size);
    let Ok(stream) = encode_to_vec(cfg, &[Extent::new(8192, 4096)], &mut disk.clone()) else {
        return;
    };
    let Ok(mut ing) = store.ingest(None) else {
        return;
    };
    if ing.push(&stream).is_err() {
        return;
    }
    let Ok(got) = ing.finish() else {
        return;
    };
    let p = got.point;
    let mut buf = vec![0u8; (p.disk_size as usize).min(1 << 20)];
    if store.read_at(p.id, 0, &mut buf).is_ok() && exact {
        assert!(
            p.disk_size == size && buf == disk,
            "the point after a damaged store's next stream reads back wrong"
        );
    }
}

fn work_dir() -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!("blockdelta-fuzz-store-{}", std::process::id()))
}

fn reseal(b: &mut [u8]) {
    if b.len() >= 4 {
        let n = b.len() - 4;
        let crc = crc32fast::hash(&b[..n]);
        b[n..].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Recomputes a pack's checksums: header CRC, chunk CRCs and the table's CRC, taking the data
/// length from the footer when it is plausible.
fn fix_pack(b: &mut [u8]) {
    if b.len() >= 44 {
        let crc = crc32fast::hash(&b[..40]);
        b[40..44].copy_from_slice(&crc.to_le_bytes());
    }
    if b.len() < 28 {
        return;
    }
    let f = b.len() - 28;
    let data_len = u64::from_le_bytes(b[f + 16..f + 24].try_into().unwrap());
    let chunks = data_len.div_ceil(4096);
    if data_len > b.len() as u64 || data_len + chunks * 4 + 28 != b.len() as u64 {
        return;
    }
    let data_len = data_len as usize;
    for c in 0..chunks as usize {
        let s = c * 4096;
        let e = (s + 4096).min(data_len);
        let crc = crc32fast::hash(&b[s..e]);
        let at = data_len + c * 4;
        b[at..at + 4].copy_from_slice(&crc.to_le_bytes());
    }
    reseal(&mut b[data_len..]);
}

fuzz_target!(|data: &[u8]| {
    let v = valid();
    if data.len() < 2 {
        return;
    }
    let which = data[0] as usize % v.files.len();
    let (mode, fix) = (data[1] & 3, data[1] & 0x80 != 0);
    let rest = &data[2..];
    let (name, orig) = &v.files[which];
    let mut f = orig.clone();
    match mode {
        0 => f = rest.to_vec(),
        1 if rest.len() >= 4 && !f.is_empty() => {
            let off = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize % f.len();
            for (i, x) in rest[4..].iter().enumerate() {
                if off + i < f.len() {
                    f[off + i] ^= x;
                }
            }
        }
        2 if rest.len() >= 4 => {
            let at = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            f.truncate(at % (f.len() + 1));
        }
        3 if !f.is_empty() => {
            for t in rest.chunks_exact(3) {
                let pos = u16::from_le_bytes([t[0], t[1]]) as usize % f.len();
                f[pos] ^= t[2];
            }
        }
        _ => return,
    }
    if fix {
        if name.starts_with("objects/pack-") {
            fix_pack(&mut f);
        } else if name.starts_with("objects/bundle-") {
            // The bundle's header CRC (its packs' checksums need the manifest's offsets).
            if f.len() >= 44 {
                reseal(&mut f[..44]);
            }
        } else {
            reseal(&mut f);
        }
    }
    // Only a mutation a forger could not make pass the checksums must not change any byte read.
    let exact = !fix && mode != 0;
    let dir = work_dir();
    write_store(&dir, &v.files, which, &f);
    if let Ok(store) = Store::open(&dir) {
        let points = store.points();
        let mut buf = vec![0u8; 1 << 16];
        for p in &points {
            let size = p.disk_size;
            let orig = v.points.iter().find(|(id, _)| *id == p.id).map(|(_, b)| b);
            let mut off = 0u64;
            // At most 8 MiB per point, then its last piece: a forged size may be huge.
            while off < size {
                let n = (size - off).min(buf.len() as u64);
                if store.read_at(p.id, off, &mut buf[..n as usize]).is_ok() && exact {
                    let orig = orig.expect("a point the store never had was listed");
                    assert!(
                        orig.len() as u64 == size
                            && buf[..n as usize] == orig[off as usize..(off + n) as usize],
                        "wrong bytes from point {} at {off}",
                        p.id.sequence
                    );
                }
                off += n;
                if off >= 8 << 20 && size - off > buf.len() as u64 {
                    off = size - buf.len() as u64;
                }
            }
        }
        let _ = store.stats();
        if let (Some(a), Some(b)) = (points.first(), points.last()) {
            let _ = store.changed_between(a.id, b.id);
        }
        let _ = store.scrub();
        if data[1] & 0x40 != 0 {
            next_stream(&store, v, exact);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
});
