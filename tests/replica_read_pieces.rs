//! The streamed read path (`read_at`, `export`, `export_file`, compaction) against a storage
//! that delivers pieces the way object storage can: small pieces of odd sizes (so that cuts
//! must be moved to chunk boundaries inside packs, bundles and short last chunks), in any
//! order (so that data arrives before its checksums), with every merge gap. Each read is
//! compared with the source; a flipped byte is reported for exactly the reads that cover its
//! chunk; a storage that drops a piece gives an error, never a hole.

#[path = "common/source.rs"]
mod source;

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use blockdelta::replica::{
    DirStorage, ManifestVersion, Piece, PieceSink, PointId, RangeRead, ReplicaError, Storage,
    Store, StoreConfig, Upload,
};
use source::{Rng, Source};

const DISK_ID: [u8; 16] = *b"read-pieces-disk";

/// How [`Pieces`] delivers.
#[derive(Clone, Copy, Debug)]
enum Order {
    /// As asked.
    Forward,
    /// Last first: a read's checksums, asked first, arrive last.
    Reverse,
    /// Shuffled by a seed.
    Shuffled(u64),
}

/// A directory storage whose streamed reads use `piece` as their piece size, `gap` as their
/// merge gap, and deliver in `order`; `drop_piece` makes it skip one piece of every read
/// (and still return Ok). Counts pieces and deliveries out of order.
struct Pieces {
    inner: DirStorage,
    piece: u64,
    gap: u64,
    order: Order,
    drop_piece: bool,
    pieces: Arc<AtomicU64>,
}

impl Storage for Pieces {
    fn put(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.inner.put(name, data)
    }
    fn get_range(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.get_range(name, offset, buf)
    }
    fn get_ranges(&self, reads: &mut [RangeRead<'_>]) -> Result<(), (usize, io::Error)> {
        self.inner.get_ranges(reads)
    }
    fn get_pieces(
        &self,
        pieces: &[Piece<'_>],
        sink: &mut PieceSink<'_>,
    ) -> Result<(), (usize, io::Error)> {
        let mut order: Vec<usize> = (0..pieces.len()).collect();
        match self.order {
            Order::Forward => {}
            Order::Reverse => order.reverse(),
            Order::Shuffled(seed) => {
                let mut rng = Rng(seed ^ pieces.len() as u64);
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.below(i as u64 + 1) as usize);
                }
            }
        }
        if self.drop_piece {
            order.pop();
        }
        self.pieces
            .fetch_add(pieces.len() as u64, Ordering::Relaxed);
        for k in order {
            let p = pieces[k];
            assert!(p.len <= self.piece.max(8192), "{p:?} {}", self.piece);
            let mut buf = vec![0u8; p.len as usize];
            self.inner
                .get_range(p.name, p.offset, &mut buf)
                .map_err(|e| (k, e))?;
            sink(k, &buf).map_err(|e| (k, e))?;
        }
        Ok(())
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

fn storage(
    dir: &std::path::Path,
    piece: u64,
    gap: u64,
    order: Order,
) -> (Box<Pieces>, Arc<AtomicU64>) {
    let pieces = Arc::new(AtomicU64::new(0));
    (
        Box::new(Pieces {
            inner: DirStorage::new(dir).unwrap(),
            piece,
            gap,
            order,
            drop_piece: false,
            pieces: pieces.clone(),
        }),
        pieces,
    )
}

fn ingest(store: &Store, src: &Source, to: u64, record: u32) -> PointId {
    let mut ing = store.ingest(None).unwrap();
    for c in src.stream(to, record).chunks(70_000) {
        ing.push(c).unwrap();
    }
    ing.finish().unwrap().point.id
}

/// A store with a large first point (one pack), many small points with short last chunks
/// (512-byte blocks) bundled by compaction, and a few mid-sized points on top.
fn build(dir: &std::path::Path) -> HashMap<PointId, Vec<u8>> {
    let (st, _) = storage(dir, 4 << 20, 0, Order::Forward);
    let store = Store::create_in(st, "pieces".into(), StoreConfig::new(DISK_ID)).unwrap();
    let mut rng = Rng(77);
    let size = 3 << 20;
    let mut src = Source::new(DISK_ID, size, 512);
    src.write(&mut rng, 0, size);
    let mut oracle = HashMap::new();
    let id = ingest(&store, &src, 1, 1 << 20);
    oracle.insert(id, src.disk.clone());
    src.commit(1);
    for i in 0..40u64 {
        let n = 1 + rng.below(if i % 10 == 9 { 40 } else { 3 });
        for _ in 0..n {
            let off = rng.below(size / 512 - 64) * 512;
            let len = 512 * (1 + rng.below(if i % 10 == 9 { 60 } else { 12 }));
            src.write(&mut rng, off, len);
        }
        if rng.chance(20) {
            let off = rng.below(size / 512 - 16) * 512;
            src.zero(off, 512 * (1 + rng.below(16)));
        }
        let to = src.seq + 1;
        let id = ingest(&store, &src, to, 4096 * (1 + rng.below(16)) as u32);
        oracle.insert(id, src.disk.clone());
        src.commit(to);
    }
    store.compact().unwrap();
    assert!(store.stats().bundles >= 1, "{:?}", store.stats());
    oracle
}

fn check(store: &Store, oracle: &HashMap<PointId, Vec<u8>>, rng: &mut Rng, tmp: &std::path::Path) {
    for p in store.points() {
        let want = &oracle[&p.id];
        let mut got = vec![0xAAu8; want.len()];
        store.read_at(p.id, 0, &mut got).unwrap();
        assert!(got == *want, "point {} differs", p.id.sequence);
        for _ in 0..60 {
            let off = rng.below(want.len() as u64);
            let max = if rng.chance(20) { 1 << 20 } else { 20_000 };
            let len = 1 + rng.below((want.len() as u64 - off).min(max));
            let mut b = vec![0x55u8; len as usize];
            store.read_at(p.id, off, &mut b).unwrap();
            assert!(b == want[off as usize..(off + len) as usize], "{off}+{len}");
        }
    }
    let last = store.points().last().unwrap().id;
    let f = tmp.join("export");
    let _ = std::fs::remove_file(&f);
    store.export_file(last, &f).unwrap();
    assert!(std::fs::read(&f).unwrap() == oracle[&last]);
}

#[test]
fn reads_in_pieces_of_any_size_and_order_return_the_source() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let oracle = build(&dir);
    let mut rng = Rng(5);
    // Pieces from two chunks (the least) to more than the largest pack; sizes that are not
    // a multiple of a chunk; merge gaps from none to larger than the disk.
    let cases = [
        (8192, 0, Order::Forward),
        (9001, 0, Order::Reverse),
        (12_289, 4096, Order::Shuffled(1)),
        (65_537, 100_000, Order::Shuffled(2)),
        (300_001, 1 << 20, Order::Reverse),
        (1 << 20, 8 << 20, Order::Shuffled(3)),
        (64 << 20, 0, Order::Forward),
    ];
    for (piece, gap, order) in cases {
        let (st, pieces) = storage(&dir, piece, gap, order);
        let store = Store::open_in(st, "pieces".into()).unwrap();
        check(&store, &oracle, &mut rng, tmp.path());
        // Small pieces did cut the reads.
        if piece < 1 << 20 {
            assert!(pieces.load(Ordering::Relaxed) > 100, "{piece}");
        }
        // Compaction reads through the same path.
        store.compact().unwrap();
        check(&store, &oracle, &mut rng, tmp.path());
    }
}

#[test]
fn a_flipped_byte_fails_exactly_the_reads_that_cover_its_chunk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let oracle = build(&dir);
    let first = *oracle.keys().min_by_key(|p| p.sequence).unwrap();
    // The first point's pack (3 MiB, the whole disk) is the largest object, or the start of
    // the bundle compaction put it in; flip a byte of its data.
    let objects = dir.join("objects");
    let pack = std::fs::read_dir(&objects)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_str().unwrap().contains("/layer-"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    let at = 1_234_567;
    bytes[at] ^= 0x40;
    std::fs::write(&pack, &bytes).unwrap();
    for (piece, order) in [(9001, Order::Reverse), (1 << 20, Order::Shuffled(9))] {
        let (st, _) = storage(&dir, piece, 4096, order);
        let store = Store::open_in(st, "pieces".into()).unwrap();
        let mut whole = vec![0u8; oracle[&first].len()];
        match store.read_at(first, 0, &mut whole) {
            Err(ReplicaError::ChecksumMismatch { object, .. }) => {
                assert!(pack.ends_with(&object), "{object}")
            }
            other => panic!("whole read of a damaged pack: {other:?}"),
        }
        // Reads far from the damaged chunk still work, and return the source.
        let mut b = vec![0u8; 100_000];
        store.read_at(first, 2 << 20, &mut b).unwrap();
        assert!(b == oracle[&first][2 << 20..(2 << 20) + 100_000]);
        let f = tmp.path().join("damaged");
        let _ = std::fs::remove_file(&f);
        assert!(matches!(
            store.export_file(first, &f),
            Err(ReplicaError::ChecksumMismatch { .. })
        ));
    }
}

#[test]
fn a_storage_that_skips_a_piece_gives_an_error_not_a_hole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let oracle = build(&dir);
    let (mut st, _) = storage(&dir, 9001, 0, Order::Forward);
    st.drop_piece = true;
    let store = Store::open_in(st, "pieces".into()).unwrap();
    let p = store.points()[0].id;
    let mut b = vec![0u8; oracle[&p].len()];
    match store.read_at(p, 0, &mut b) {
        Err(ReplicaError::Corrupt { reason, .. }) => {
            assert!(reason.contains("every piece"), "{reason}")
        }
        other => panic!("a skipped piece: {other:?}"),
    }
}
