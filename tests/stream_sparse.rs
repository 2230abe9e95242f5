//! Sparse sources and thin replicas, on real files: holes are never read and arrive as ZERO
//! (or DISCARD) ranges, all-zero blocks inside data arrive as ZERO, a thin `FileTarget`
//! punches holes for them, so the replica is as thin as the source; a thick one allocates.
//! And the encoder asks the source to read every range ahead before it reads it.

#![cfg(target_os = "linux")]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use blockdelta::{
    Applier, BlockSource, Codec, DecoderConfig, EncodeCursor, Encoder, EncoderConfig, Extent,
    FileSource, FileTarget, GenerationId, ParallelEncoder, Record, Region,
};

const MIB: u64 = 1 << 20;
const SIZE: u64 = 64 * MIB;

fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// A 64 MiB sparse file: holes, a 3 MiB run of data whose every third 4 KiB block is zero
/// (written, so allocated), text, random data, and a last data block at the end.
fn sparse_source(path: &Path) -> Vec<u8> {
    let f = File::create(path).unwrap();
    f.set_len(SIZE).unwrap();
    let mut image = vec![0u8; SIZE as usize];
    let mut x = 0x1234_5678_9abc_def1u64;
    let mut put = |at: u64, data: &[u8]| {
        f.write_all_at(data, at).unwrap();
        image[at as usize..at as usize + data.len()].copy_from_slice(data);
    };
    let mut run = vec![0u8; 3 * MIB as usize];
    for (i, b) in run.chunks_mut(4096).enumerate() {
        if i % 3 != 0 {
            b.iter_mut().for_each(|v| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = (x % 7) as u8 + b'a';
            });
        }
    }
    put(5 * MIB, &run);
    put(20 * MIB + 4096, &[7u8; 4096]);
    put(40 * MIB, &vec![b'q'; MIB as usize]);
    put(SIZE - 4096, &[1u8; 4096]);
    f.sync_all().unwrap();
    image
}

/// Counts the bytes read and records the read-ahead hints.
struct Counting {
    inner: FileSource,
    read: u64,
    /// Reads (`false`) and hints (`true`) in the order they came.
    events: Vec<(bool, u64, u64)>,
}

impl BlockSource for Counting {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.read += buf.len() as u64;
        self.events.push((false, offset, buf.len() as u64));
        self.inner.read_at(offset, buf)
    }
    fn region(&mut self, offset: u64, end: u64) -> io::Result<Region> {
        self.inner.region(offset, end)
    }
    fn will_read(&mut self, offset: u64, len: u64) {
        self.events.push((true, offset, len));
        self.inner.will_read(offset, len)
    }
}

fn config(holes_as_discard: bool) -> EncoderConfig {
    let mut c = EncoderConfig::new(*b"sparse-disk-0001", GenerationId([1; 16]), 1, 2, SIZE);
    c.compression = Codec::Lz4;
    c.holes_as_discard = holes_as_discard;
    c
}

fn encode(cfg: EncoderConfig, src: &mut Counting, threads: usize) -> Vec<u8> {
    let list = [Extent::new(0, SIZE)];
    let mut out = Vec::new();
    if threads == 0 {
        let mut enc = Encoder::new(cfg).unwrap();
        let mut buf = vec![0u8; enc.max_frame_len()];
        let n = enc.write_header(&mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
        let mut cur = EncodeCursor::default();
        while let Some(n) = enc.next_frame(&list, &mut cur, src, &mut buf).unwrap() {
            out.extend_from_slice(&buf[..n]);
        }
        let n = enc.finish(&mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
    } else {
        let mut enc = ParallelEncoder::new(cfg, threads).unwrap();
        let mut buf = vec![0u8; enc.max_frame_len()];
        let n = enc.write_header(&mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
        enc.set_extents(&list).unwrap();
        while let Some(f) = enc.next_frames(src).unwrap() {
            out.extend_from_slice(f);
        }
        let n = enc.finish(&mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Record kinds and bytes: (data bytes, zero bytes, discard bytes, data records).
fn census(stream: &[u8]) -> (u64, u64, u64, u64) {
    let mut dec = blockdelta::Decoder::new(DecoderConfig::new());
    let mut at = 0;
    let mut c = (0, 0, 0, 0);
    loop {
        match dec.next(&stream[at..]).unwrap() {
            blockdelta::Decoded::Record { record, consumed } => {
                match record {
                    Record::Data { data, .. } => {
                        c.0 += data.len() as u64;
                        c.3 += 1;
                    }
                    Record::Zero { len, .. } => c.1 += len,
                    Record::Discard { len, .. } => c.2 += len,
                    Record::End(_) => break,
                    _ => {}
                }
                at += consumed;
            }
            blockdelta::Decoded::Header { consumed, .. } => at += consumed,
            other => panic!("{other:?}"),
        }
    }
    c
}

fn replicate(stream: &[u8], path: &Path, thin: bool) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.set_len(SIZE).unwrap();
    let target = if thin {
        FileTarget::new(f).unwrap()
    } else {
        FileTarget::thick(f).unwrap()
    };
    assert_eq!(target.is_thin(), thin);
    let mut a = Applier::new(DecoderConfig::new(), target);
    assert_eq!(a.push(stream).unwrap(), stream.len());
    a.finish().unwrap();
}

fn same_bytes(path: &Path, image: &[u8]) {
    let got = std::fs::read(path).unwrap();
    assert_eq!(got.len(), image.len());
    if let Some(i) = got.iter().zip(image).position(|(a, b)| a != b) {
        panic!("{} differs at byte {i}", path.display());
    }
}

#[test]
fn holes_are_never_read_and_the_thin_replica_is_as_thin_as_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let (src_path, rep_path) = (dir.path().join("source"), dir.path().join("replica"));
    let image = sparse_source(&src_path);
    let source_alloc = allocated(&src_path);
    if source_alloc >= SIZE / 2 {
        eprintln!("this file system does not keep holes; nothing to check");
        return;
    }
    let nonzero_blocks = image
        .chunks(4096)
        .filter(|b| b.iter().any(|&x| x != 0))
        .count() as u64;
    for threads in [0, 1, 2, 3] {
        let mut src = Counting {
            inner: FileSource::new(File::open(&src_path).unwrap()),
            read: 0,
            events: Vec::new(),
        };
        let stream = encode(config(false), &mut src, threads);
        // Only data is read: at most what the file system has allocated.
        assert!(
            src.read <= source_alloc,
            "threads {threads}: read {} of {source_alloc} allocated",
            src.read
        );
        let (data, zero, discard, _) = census(&stream);
        // Every all-zero block went as a range; only the non-zero blocks as data.
        assert_eq!(data, nonzero_blocks * 4096, "threads {threads}");
        assert_eq!(data + zero, SIZE);
        assert_eq!(discard, 0);
        replicate(&stream, &rep_path, true);
        same_bytes(&rep_path, &image);
        let replica_alloc = allocated(&rep_path);
        assert!(
            replica_alloc <= nonzero_blocks * 4096 + 64 * 1024,
            "threads {threads}: replica {replica_alloc}, source {source_alloc}, data {}",
            nonzero_blocks * 4096
        );
        assert!(replica_alloc * 100 <= source_alloc * 102);
    }
}

#[test]
fn holes_as_discard_and_a_thick_replica() {
    let dir = tempfile::tempdir().unwrap();
    let (src_path, rep_path) = (dir.path().join("source"), dir.path().join("replica"));
    let image = sparse_source(&src_path);
    if allocated(&src_path) >= SIZE / 2 {
        return;
    }
    let mut src = Counting {
        inner: FileSource::new(File::open(&src_path).unwrap()),
        read: 0,
        events: Vec::new(),
    };
    let stream = encode(config(true), &mut src, 2);
    let (_, zero, discard, _) = census(&stream);
    // Holes went as DISCARD; zeros found by reading (inside the written run) as ZERO.
    assert!(discard > 50 * MIB, "{discard}");
    assert_eq!(zero, 256 * 4096, "the 256 written zero blocks");
    replicate(&stream, &rep_path, true);
    same_bytes(&rep_path, &image);
    // Thick: ZERO allocates zeros (DISCARD still punches).
    let stream = encode(config(false), &mut src, 2);
    replicate(&stream, &rep_path, false);
    same_bytes(&rep_path, &image);
    assert!(
        allocated(&rep_path) > SIZE * 9 / 10,
        "{}",
        allocated(&rep_path)
    );
}

#[test]
fn every_read_is_asked_for_ahead_of_time() {
    let dir = tempfile::tempdir().unwrap();
    let src_path = dir.path().join("source");
    // Dense, so that everything is read; extents scattered like an incremental.
    let mut image = vec![0u8; SIZE as usize];
    for (i, b) in image.iter_mut().enumerate() {
        *b = (i / 4096 % 251) as u8 + 1;
    }
    std::fs::write(&src_path, &image).unwrap();
    let mut list = Vec::new();
    let mut at = 0u64;
    let mut x = 99u64;
    while at < SIZE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (4096 * (1 + x % 16)).min(SIZE - at);
        list.push(Extent::new(at, len));
        at += len + 4096 * (x >> 20) % (400 * 1024);
    }
    for threads in [0usize, 2] {
        let mut src = Counting {
            inner: FileSource::new(File::open(&src_path).unwrap()),
            read: 0,
            events: Vec::new(),
        };
        let mut cfg = config(false);
        cfg.record_size = 64 * 1024;
        let mut n = 0;
        if threads == 0 {
            let mut enc = Encoder::new(cfg).unwrap();
            let mut buf = vec![0u8; enc.max_frame_len()];
            enc.write_header(&mut buf).unwrap();
            let mut cur = EncodeCursor::default();
            while enc
                .next_frame(&list, &mut cur, &mut src, &mut buf)
                .unwrap()
                .is_some()
            {
                n += 1;
            }
        } else {
            let mut enc = ParallelEncoder::new(cfg, threads).unwrap();
            let mut buf = vec![0u8; enc.max_frame_len()];
            enc.write_header(&mut buf).unwrap();
            enc.set_extents(&list).unwrap();
            while enc.next_frame(&mut src, &mut buf).unwrap().is_some() {
                n += 1;
            }
        }
        assert!(n > 200, "{n} frames");
        // Every read was covered by a hint given before it, no hint was longer than the
        // read-ahead window (32 MiB), and no more hints than reads.
        let mut hinted: Vec<(u64, u64)> = Vec::new();
        let (mut reads, mut hints) = (0, 0);
        for &(hint, off, len) in &src.events {
            if hint {
                assert!(len <= 32 * MIB, "a hint of {len} bytes at {off}");
                hinted.push((off, len));
                hints += 1;
                continue;
            }
            reads += 1;
            let covered = hinted.iter().any(|&(o, l)| o <= off && off + len <= o + l);
            assert!(
                covered,
                "threads {threads}: read {off}+{len} was not asked ahead"
            );
        }
        assert!(
            reads > 200 && hints <= reads,
            "{hints} hints, {reads} reads"
        );
    }
}
