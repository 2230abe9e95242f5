//! Review of the streamed read path (`Store::read_runs`): what it fetches and keeps in memory
//! for a store whose data lies in bundles of small packs, read through a storage with object
//! storage's merge gap (1 MiB). Both tests failed before the fix (checksum ranges were merged
//! across the gap, so reads of bundled small packs fetched the bundle twice and held about a
//! byte of "checksums" per byte read): checksums now merge only within one pack's table.

#[path = "common/source.rs"]
mod source;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use blockdelta::replica::{
    DirStorage, ManifestVersion, Piece, PieceSink, PointId, RangeRead, Storage, Store, StoreConfig,
    Upload,
};
use source::{Rng, Source};

const DISK_ID: [u8; 16] = *b"review-pieces-dk";

#[derive(Default)]
struct Counts {
    /// Bytes asked with `get_ranges` (the checksum batch of a large read).
    ranges_bytes: AtomicU64,
    /// The largest single `get_ranges` call, in bytes (all its buffers are alive at once).
    ranges_peak: AtomicU64,
    /// Bytes asked with `get_pieces`.
    pieces_bytes: AtomicU64,
}

/// A directory storage with object storage's read tuning: `piece`, `gap`; counts bytes.
struct Counting {
    inner: DirStorage,
    piece: u64,
    gap: u64,
    counts: Arc<Counts>,
}

impl Storage for Counting {
    fn put(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.inner.put(name, data)
    }
    fn get_range(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.get_range(name, offset, buf)
    }
    fn get_ranges(&self, reads: &mut [RangeRead<'_>]) -> Result<(), (usize, io::Error)> {
        let n: u64 = reads.iter().map(|r| r.buf.len() as u64).sum();
        self.counts.ranges_bytes.fetch_add(n, Ordering::Relaxed);
        self.counts.ranges_peak.fetch_max(n, Ordering::Relaxed);
        self.inner.get_ranges(reads)
    }
    fn get_pieces(
        &self,
        pieces: &[Piece<'_>],
        sink: &mut PieceSink<'_>,
    ) -> Result<(), (usize, io::Error)> {
        let n: u64 = pieces.iter().map(|p| p.len).sum();
        self.counts.pieces_bytes.fetch_add(n, Ordering::Relaxed);
        self.inner.get_pieces(pieces, sink)
    }
    fn piece_size(&self) -> u64 {
        self.piece
    }
    fn merge_gap(&self) -> u64 {
        self.gap
    }
    fn size(&self, name: &str) -> io::Result<u64> {
        self.inner.size(name)
    }
    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, name: &str) -> io::Result<()> {
        self.inner.delete(name)
    }
    fn delete_many(&self, names: &[String]) -> io::Result<()> {
        self.inner.delete_many(names)
    }
    fn upload(&self, name: &str) -> io::Result<Box<dyn Upload>> {
        self.inner.upload(name)
    }
    fn resume_upload(&self, name: &str, len: u64) -> io::Result<Box<dyn Upload>> {
        self.inner.resume_upload(name, len)
    }
    fn abort_upload(&self, name: &str) -> io::Result<()> {
        self.inner.abort_upload(name)
    }
    fn uploads(&self) -> io::Result<Vec<String>> {
        self.inner.uploads()
    }
    fn read_manifest(&self) -> io::Result<Option<(Vec<u8>, u64)>> {
        self.inner.read_manifest()
    }
    fn swap_manifest(&self, expected: ManifestVersion, data: &[u8]) -> io::Result<u64> {
        self.inner.swap_manifest(expected, data)
    }
    fn lock_writer(&self) -> io::Result<Box<dyn Send + Sync>> {
        self.inner.lock_writer()
    }
}

fn ingest(store: &Store, src: &Source, to: u64) -> PointId {
    let mut ing = store.ingest(None).unwrap();
    for c in src.stream(to, 1 << 16).chunks(70_000) {
        ing.push(c).unwrap();
    }
    ing.finish().unwrap().point.id
}

/// A disk written as many small points (each a small pack of 64 KiB at its own offset),
/// bundled: the typical store of a disk replicated every few minutes.
fn build(dir: &std::path::Path, points: u64) -> (PointId, Vec<u8>) {
    let store = Store::create_in(
        Box::new(DirStorage::new(dir).unwrap()),
        "review".into(),
        StoreConfig::new(DISK_ID),
    )
    .unwrap();
    let size = points * (64 << 10);
    let mut rng = Rng(3);
    let mut src = Source::new(DISK_ID, size, 4096);
    // The first stream carries the whole disk; make it zeros (no data pack).
    let mut last = ingest(&store, &src, 1);
    src.commit(1);
    for i in 0..points {
        src.write(&mut rng, i * (64 << 10), 64 << 10);
        let to = src.seq + 1;
        last = ingest(&store, &src, to);
        src.commit(to);
    }
    store.compact().unwrap();
    let st = store.stats();
    assert!(st.bundles >= 1, "{st:?}");
    (last, src.disk.clone())
}

/// An export through object storage's tuning (1 MiB merge gap) of a disk held in a bundle of
/// small packs fetches the bundle about once, and keeps about 1 KiB of checksums per MiB
/// of data in memory (read.rs: "about 1 MiB of checksums per GiB").
///
/// Fails: the checksum ranges of consecutive packs of a bundle are merged across the gap
/// (each pack's data lies between two checksum tables, less than the 1 MiB merge gap apart),
/// so the "checksum" batch holds nearly every byte of the bundle, all in memory at once, and
/// the data is then fetched a second time as data pieces.
#[test]
fn checksums_of_bundled_packs_do_not_fetch_the_data_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let (last, want) = build(&dir, 160); // 10 MiB of data, 160 packs of 64 KiB
    let counts = Arc::new(Counts::default());
    let st = Box::new(Counting {
        inner: DirStorage::new(&dir).unwrap(),
        piece: 16 << 20, // ObjectStorage's default part_size
        gap: 1 << 20,    // ObjectStorage::merge_gap
        counts: counts.clone(),
    });
    let store = Store::open_in(st, "review".into()).unwrap();
    let f = tmp.path().join("export");
    store.export_file(last, &f).unwrap();
    assert!(std::fs::read(&f).unwrap() == want);
    let data = want.len() as u64;
    let (ranges, peak, pieces) = (
        counts.ranges_bytes.load(Ordering::Relaxed),
        counts.ranges_peak.load(Ordering::Relaxed),
        counts.pieces_bytes.load(Ordering::Relaxed),
    );
    eprintln!("data {data} get_ranges {ranges} (peak {peak}) get_pieces {pieces}");
    // Checksums: 4 bytes per 4 KiB chunk, plus slack for the packs' header chunks.
    assert!(
        peak <= data / 256,
        "an export of {data} bytes held {peak} bytes of 'checksums' in memory at once \
         (get_ranges {ranges} bytes, get_pieces {pieces} bytes)"
    );
    assert!(
        ranges + pieces <= data + data / 4,
        "an export of {data} bytes fetched {} bytes",
        ranges + pieces
    );
}

/// The same through `read_at` of the whole disk (25 MiB, more than 4 pieces of 5 MiB, so
/// the checksums are fetched first, in one `get_ranges` batch, all in memory at once): that
/// batch is about the size of the data read instead of 1/1024 of it.
#[test]
fn checksums_of_a_read_at_stay_small() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let (last, want) = build(&dir, 400);
    let counts = Arc::new(Counts::default());
    let st = Box::new(Counting {
        inner: DirStorage::new(&dir).unwrap(),
        piece: 5 << 20, // the smallest part_size ObjectStorage takes
        gap: 1 << 20,
        counts: counts.clone(),
    });
    let store = Store::open_in(st, "review".into()).unwrap();
    let mut got = vec![0u8; want.len()];
    store.read_at(last, 0, &mut got).unwrap();
    assert!(got == want);
    let data = want.len() as u64;
    let peak = counts.ranges_peak.load(Ordering::Relaxed);
    let pieces = counts.pieces_bytes.load(Ordering::Relaxed);
    eprintln!("data {data} get_ranges peak {peak} get_pieces {pieces}");
    assert!(
        peak <= data / 256,
        "a read of {data} bytes held {peak} bytes of 'checksums' in memory at once"
    );
}
