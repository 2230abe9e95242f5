//! `ParallelEncoder` writes the very bytes `Encoder` writes, for any thread count; its errors
//! leave nothing consumed; it never hangs on drop.

use std::io;

use blockdelta::{
    Applier, BlockSource, Bookmark, BookmarkKind, Codec, DecoderConfig, EncodeCursor, Encoder,
    EncoderConfig, Extent, GenerationId, ParallelEncoder, Region, Secret, StreamError,
};

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

const DISK: usize = 6 << 20;

/// Blocks of 4 KiB: zeros, text-like, random, and blocks zero but for one byte.
fn disk(seed: u64) -> Vec<u8> {
    let mut r = Rng(seed | 1);
    let mut d = vec![0u8; DISK];
    for (i, b) in d.chunks_mut(4096).enumerate() {
        match r.below(5) {
            0 => {}
            1 => b
                .iter_mut()
                .enumerate()
                .for_each(|(k, x)| *x = b"lorem ipsum dolor "[(k + i) % 18]),
            2 => b.iter_mut().for_each(|x| *x = r.next() as u8),
            3 => b[r.below(4096) as usize] = 1,
            _ => {
                // Half zero, half text: zero runs that are not whole blocks at 512 bytes.
                for (k, x) in b[2048..].iter_mut().enumerate() {
                    *x = b"0123456789abcdef"[k % 16];
                }
            }
        }
    }
    d
}

/// Ascending extents, some unaligned, some discards, some huge.
fn extents(seed: u64) -> Vec<Extent> {
    let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut v = Vec::new();
    let mut at = r.below(8192);
    while at < DISK as u64 {
        let len = match r.below(6) {
            0 => 1 + r.below(700),
            1 => 4096 * (1 + r.below(4)),
            2 => 1 + r.below(3 << 20),
            _ => 4096 * (1 + r.below(64)),
        }
        .min(DISK as u64 - at);
        if r.below(9) == 0 {
            v.push(Extent::discard(at, len));
        } else {
            v.push(Extent::new(at, len));
        }
        at += len + r.below(3) * 4096 * r.below(40) + r.below(2) * r.below(1000);
    }
    v
}

fn config(seed: u64) -> EncoderConfig {
    let mut r = Rng(seed ^ 0x5555 | 1);
    let mut c = EncoderConfig::new(
        *b"disk-parallel-01",
        GenerationId([3; 16]),
        5,
        6,
        DISK as u64,
    );
    c.block_size = [512, 4096, 65536][r.below(3) as usize];
    c.record_size = [4096, 65536, 100_000, 1 << 20][r.below(4) as usize];
    c.compression = if r.below(3) == 0 {
        Codec::Raw
    } else {
        Codec::Lz4
    };
    c.zero_detection = r.below(4) != 0;
    if r.below(2) == 0 {
        c.secret = Some(Secret::new(b"a secret of at least sixteen bytes").unwrap());
        c = c.with_fixed_crypto_params_for_test_vectors([9; 32], [1, 2, 3, 4]);
    }
    c
}

fn bookmark() -> Bookmark<'static> {
    Bookmark {
        id: 7,
        timestamp_ns: 1,
        kind: BookmarkKind::CrashConsistent,
        label: "p",
    }
}

/// The stream `Encoder` writes for `lists` (each list then a bookmark).
fn sequential(cfg: EncoderConfig, lists: &[Vec<Extent>], src: &mut dyn BlockSource) -> Vec<u8> {
    let mut enc = Encoder::new(cfg).unwrap();
    let mut buf = vec![0u8; enc.max_frame_len()];
    let mut out = Vec::new();
    let n = enc.write_header(&mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    for list in lists {
        let mut cursor = EncodeCursor::default();
        while let Some(n) = enc.next_frame(list, &mut cursor, src, &mut buf).unwrap() {
            out.extend_from_slice(&buf[..n]);
        }
        let n = enc.write_bookmark(&bookmark(), &mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    let n = enc.finish(&mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    out
}

/// The same with `ParallelEncoder`, alternating `next_frame` and `next_frames`.
fn parallel(
    cfg: EncoderConfig,
    threads: usize,
    lists: &[Vec<Extent>],
    src: &mut dyn BlockSource,
) -> Vec<u8> {
    let mut enc = ParallelEncoder::new(cfg, threads).unwrap();
    let mut buf = vec![0u8; enc.max_frame_len()];
    let mut out = Vec::new();
    let n = enc.write_header(&mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    for (i, list) in lists.iter().enumerate() {
        enc.set_extents(list).unwrap();
        if i % 2 == 0 {
            while let Some(n) = enc.next_frame(src, &mut buf).unwrap() {
                out.extend_from_slice(&buf[..n]);
            }
        } else {
            while let Some(frames) = enc.next_frames(src).unwrap() {
                out.extend_from_slice(frames);
            }
        }
        let n = enc.write_bookmark(&bookmark(), &mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    let n = enc.finish(&mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    out
}

fn apply(stream: &[u8], cfg: &EncoderConfig) -> Vec<u8> {
    let mut d = DecoderConfig::new();
    if cfg.secret.is_some() {
        d = d.with_secret(Secret::new(b"a secret of at least sixteen bytes").unwrap());
    }
    let mut a = Applier::new(d, vec![0xEEu8; DISK]);
    assert_eq!(a.push(stream).unwrap(), stream.len());
    a.finish().unwrap();
    a.into_target()
}

/// Splits a list in two at an extent boundary (two lists in one stream).
fn two_lists(list: Vec<Extent>) -> Vec<Vec<Extent>> {
    let mid = list.len() / 2;
    vec![list[..mid].to_vec(), list[mid..].to_vec()]
}

#[test]
fn the_stream_is_the_same_bytes_for_every_thread_count() {
    for seed in 1..=24u64 {
        let data = disk(seed);
        let lists = two_lists(extents(seed));
        let cfg = config(seed);
        let want = sequential(cfg.clone(), &lists, &mut data.clone());
        for threads in [1, 2, 3, 5] {
            let got = parallel(cfg.clone(), threads, &lists, &mut data.clone());
            assert!(
                got == want,
                "seed {seed}, {threads} threads: {} bytes against {}",
                got.len(),
                want.len()
            );
        }
        // And it says what the source holds: every written extent reads back.
        let replica = apply(&want, &cfg);
        for e in lists.iter().flatten() {
            let r = e.offset as usize..(e.offset + e.len) as usize;
            if e.kind == blockdelta::ExtentKind::Write {
                assert!(replica[r.clone()] == data[r], "seed {seed}: {e:?}");
            }
        }
    }
}

/// A source that fails once at a given offset, and knows holes where the disk is zero in
/// aligned 64 KiB runs.
struct Flaky {
    data: Vec<u8>,
    fail_at: Option<u64>,
    holes: bool,
    reads: u64,
}

impl BlockSource for Flaky {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset + buf.len() as u64;
        if let Some(f) = self.fail_at {
            if offset <= f && f < end {
                self.fail_at = None;
                return Err(io::Error::other("injected"));
            }
        }
        self.reads += buf.len() as u64;
        buf.copy_from_slice(&self.data[offset as usize..end as usize]);
        Ok(())
    }

    fn region(&mut self, offset: u64, end: u64) -> io::Result<Region> {
        if !self.holes {
            return Ok(Region::Data(end - offset));
        }
        let unit = 65536u64;
        let zero = |o: u64| {
            let s = (o / unit * unit) as usize;
            let e = (s + unit as usize).min(self.data.len());
            self.data[s..e].iter().all(|&b| b == 0)
        };
        let kind = zero(offset);
        let mut o = offset;
        while o < end && zero(o) == kind {
            o = (o / unit + 1) * unit;
        }
        let len = o.min(end) - offset;
        Ok(if kind {
            Region::Hole(len)
        } else {
            Region::Data(len)
        })
    }
}

#[test]
fn a_failed_read_consumes_nothing_and_a_retry_gives_the_same_stream() {
    let mut data = disk(77);
    data[(1 << 20)..(3 << 20)].fill(0); // a 2 MiB hole
    let list = vec![Extent::new(0, DISK as u64)];
    for threads in [1, 2, 4] {
        let mut cfg = config(77);
        cfg.zero_detection = true;
        let mut src = Flaky {
            data: data.clone(),
            fail_at: None,
            holes: true,
            reads: 0,
        };
        let want = sequential(cfg.clone(), std::slice::from_ref(&list), &mut src);
        assert!(src.reads < DISK as u64 - (2 << 20) + 1, "the hole was read");
        for fail_at in [0u64, 7 << 19, 4 << 20, DISK as u64 - 1] {
            let mut src = Flaky {
                data: data.clone(),
                fail_at: Some(fail_at),
                holes: true,
                reads: 0,
            };
            let mut enc = ParallelEncoder::new(cfg.clone(), threads).unwrap();
            let mut buf = vec![0u8; enc.max_frame_len()];
            let mut out = Vec::new();
            let n = enc.write_header(&mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
            enc.set_extents(&list).unwrap();
            let mut failures = 0;
            loop {
                match enc.next_frame(&mut src, &mut buf) {
                    Ok(Some(n)) => out.extend_from_slice(&buf[..n]),
                    Ok(None) => break,
                    Err(StreamError::SourceIo { offset, .. }) => {
                        failures += 1;
                        assert!(offset <= fail_at, "{offset} > {fail_at}");
                        // Everything before the failed read is out, nothing after.
                        assert!(matches!(
                            enc.write_bookmark(&bookmark(), &mut buf),
                            Err(StreamError::InvalidState { .. })
                        ));
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(failures, 1, "threads {threads}, fail at {fail_at}");
            let n = enc.write_bookmark(&bookmark(), &mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
            let n = enc.finish(&mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
            assert!(out == want, "threads {threads}, fail at {fail_at}");
        }
    }
}

#[test]
fn a_small_buffer_is_refused_and_the_frame_kept() {
    let data = disk(5);
    let mut cfg = config(5);
    cfg.zero_detection = false;
    cfg.compression = Codec::Raw;
    let list = vec![Extent::new(0, 3 << 20)];
    let want = sequential(cfg.clone(), std::slice::from_ref(&list), &mut data.clone());
    let mut enc = ParallelEncoder::new(cfg, 2).unwrap();
    let mut buf = vec![0u8; enc.max_frame_len()];
    let mut out = Vec::new();
    let n = enc.write_header(&mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    enc.set_extents(&list).unwrap();
    let mut small = [0u8; 100];
    let mut src = data.clone();
    assert!(matches!(
        enc.next_frame(&mut src, &mut small),
        Err(StreamError::BufferTooSmall { .. })
    ));
    // Setting the list again replaces the planned frames (none went out).
    enc.set_extents(&list).unwrap();
    while let Some(n) = enc.next_frame(&mut src, &mut buf).unwrap() {
        out.extend_from_slice(&buf[..n]);
    }
    let n = enc.write_bookmark(&bookmark(), &mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    let n = enc.finish(&mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    assert!(out == want);
}

#[test]
fn dropping_mid_stream_stops_every_thread() {
    let data = disk(9);
    for threads in [2, 4, 8] {
        let mut enc = ParallelEncoder::new(config(9), threads).unwrap();
        let mut buf = vec![0u8; enc.max_frame_len()];
        enc.write_header(&mut buf).unwrap();
        enc.set_extents(&[Extent::new(0, DISK as u64)]).unwrap();
        let mut src = data.clone();
        enc.next_frame(&mut src, &mut buf).unwrap();
        drop(enc); // joins its threads; a hang fails the test by timeout
    }
    assert!(ParallelEncoder::new(config(9), 0).is_err());
}

#[test]
fn a_new_list_replaces_the_frames_not_yet_out() {
    let data = disk(31);
    let mut cfg = config(31);
    cfg.secret = None;
    cfg.record_size = 65536;
    let a = [Extent::new(0, 4 << 20)];
    let b = [Extent::new(5 << 20, 1 << 20)];
    for k in [1usize, 3, 7, 40] {
        // The sequential encoder: k frames of `a`, then `b` with a new cursor.
        let mut enc = Encoder::new(cfg.clone()).unwrap();
        let mut buf = vec![0u8; enc.max_frame_len()];
        let mut want = Vec::new();
        let mut src = data.clone();
        let n = enc.write_header(&mut buf).unwrap();
        want.extend_from_slice(&buf[..n]);
        let mut cursor = EncodeCursor::default();
        for _ in 0..k {
            let n = enc
                .next_frame(&a, &mut cursor, &mut src, &mut buf)
                .unwrap()
                .unwrap();
            want.extend_from_slice(&buf[..n]);
        }
        let mut cursor = EncodeCursor::default();
        while let Some(n) = enc.next_frame(&b, &mut cursor, &mut src, &mut buf).unwrap() {
            want.extend_from_slice(&buf[..n]);
        }
        let n = enc.finish(&mut buf).unwrap();
        want.extend_from_slice(&buf[..n]);
        for threads in [1, 2, 4] {
            let mut enc = ParallelEncoder::new(cfg.clone(), threads).unwrap();
            let mut got = Vec::new();
            let n = enc.write_header(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            enc.set_extents(&a).unwrap();
            for _ in 0..k {
                let n = enc.next_frame(&mut src, &mut buf).unwrap().unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            // A list before what is already out is refused, and changes nothing.
            assert!(matches!(
                enc.set_extents(&[Extent::new(0, 4096)]),
                Err(StreamError::ExtentOverlap { .. })
            ));
            enc.set_extents(&b).unwrap();
            while let Some(n) = enc.next_frame(&mut src, &mut buf).unwrap() {
                got.extend_from_slice(&buf[..n]);
            }
            let n = enc.finish(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            assert!(got == want, "{k} frames, {threads} threads");
        }
    }
}
