use blockdelta::{
    Applier, BlockSource, Codec, DecoderConfig, EncodeCursor, Encoder, EncoderConfig, Extent,
    GenerationId, ParallelEncoder, Region,
};
use std::io;

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

struct Src {
    data: Vec<u8>,
    unit: u64,
    cap: u64,
    fail: u64,
}
impl BlockSource for Src {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if self.fail != 0 {
            self.fail = self
                .fail
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407)
                | 1;
            if (self.fail >> 33) % 5 == 0 {
                return Err(io::Error::other("flaky read"));
            }
        }
        let o = offset as usize;
        if o + buf.len() > self.data.len() {
            return Err(io::Error::other("eof"));
        }
        buf.copy_from_slice(&self.data[o..o + buf.len()]);
        Ok(())
    }
    fn region(&mut self, offset: u64, end: u64) -> io::Result<Region> {
        if self.fail != 0 {
            self.fail = self
                .fail
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.fail |= 1;
            if (self.fail >> 33) % 7 == 0 {
                return Err(io::Error::other("flaky region"));
            }
        }
        let end = end.min(self.data.len() as u64);
        if offset >= end {
            return Ok(Region::Data(1));
        }
        let zero = |o: u64| {
            let s = (o / self.unit * self.unit) as usize;
            let e = (s + self.unit as usize).min(self.data.len());
            self.data[s..e].iter().all(|&b| b == 0)
        };
        let k = zero(offset);
        let mut o = offset;
        while o < end && zero(o) == k {
            o = (o / self.unit + 1) * self.unit;
        }
        let len = (o.min(end) - offset).min(self.cap);
        Ok(if k {
            Region::Hole(len)
        } else {
            Region::Data(len)
        })
    }
}

const DISK: u64 = 3 << 20;

/// Review probe (passes): Encoder == ParallelEncoder (1 to 4 threads) over random configurations
/// (block 512..1 MiB, record 1..1 MiB, holes capped or not, DISCARD, RESIZE between lists), with
/// flaky reads and region probes and too-small buffers retried. Slow in debug: run with
/// `cargo test --release --test review_encoder_probe -- --ignored`.
#[test]
#[ignore]
fn probe() {
    for seed in 1..120u64 {
        let mut r = Rng((seed * 7919) | 1);
        let mut data = vec![0u8; DISK as usize + (3 << 20)];
        let mut at = 0usize;
        while at < data.len() {
            let len = 1 + r.below(70000) as usize;
            let end = (at + len).min(data.len());
            match r.below(3) {
                0 => {}
                1 => data[at..end]
                    .iter_mut()
                    .for_each(|x| *x = (r.next() as u8) | 1),
                _ => {
                    let p = at + r.below((end - at) as u64) as usize;
                    data[p] = 7;
                }
            }
            at = end;
        }
        let mut c = EncoderConfig::new(*b"review-probe-001", GenerationId([1; 16]), 1, 2, DISK);
        c.block_size = [512, 4096, 1 << 20][r.below(3) as usize];
        c.record_size = [1, 511, 4097, 65536, 100_000, 1 << 20][r.below(6) as usize];
        c.compression = if r.below(2) == 0 {
            Codec::Raw
        } else {
            Codec::Lz4
        };
        c.zero_detection = r.below(5) != 0;
        c.holes_as_discard = c.zero_detection && r.below(3) == 0;
        let unit = [512u64, 4096, 65536][r.below(3) as usize];
        let cap = [u64::MAX, 100_000, 3000][r.below(3) as usize];
        // lists with a RESIZE between them
        let mut lists: Vec<(Vec<Extent>, Option<u64>)> = Vec::new();
        let mut at = r.below(5000);
        let mut size = DISK;
        for li in 0..3 {
            let mut v = Vec::new();
            let stop = size * (li + 1) / 3;
            while at < stop {
                let len =
                    (1 + r.below(if c.record_size == 1 { 3000 } else { 400_000 })).min(stop - at);
                if r.below(7) == 0 {
                    v.push(Extent::discard(at, len));
                } else {
                    v.push(Extent::new(at, len));
                }
                at += len + r.below(3) * r.below(20000);
            }
            let resize = if li < 2 && r.below(2) == 0 {
                Some(size + (1 << 20) * (li + 1) / 2)
            } else {
                None
            };
            if let Some(s) = resize {
                size = s;
            }
            lists.push((v, resize));
        }
        let mk = |threads: usize, flaky: u64| -> Vec<u8> {
            let mut src = Src {
                data: data.clone(),
                unit,
                cap,
                fail: flaky,
            };
            let mut out = Vec::new();
            if threads == 0 {
                let mut e = Encoder::new(c.clone()).unwrap();
                let mut b = vec![0u8; e.max_frame_len()];
                let n = e.write_header(&mut b).unwrap();
                out.extend_from_slice(&b[..n]);
                for (l, rs) in &lists {
                    let mut cur = EncodeCursor::default();
                    while let Some(n) = e.next_frame(l, &mut cur, &mut src, &mut b).unwrap() {
                        out.extend_from_slice(&b[..n]);
                    }
                    if let Some(s) = rs {
                        let n = e.write_resize(*s, &mut b).unwrap();
                        out.extend_from_slice(&b[..n]);
                    }
                }
                let n = e.finish(&mut b).unwrap();
                out.extend_from_slice(&b[..n]);
            } else {
                let mut e = ParallelEncoder::new(c.clone(), threads).unwrap();
                let mut b = vec![0u8; e.max_frame_len()];
                let n = e.write_header(&mut b).unwrap();
                out.extend_from_slice(&b[..n]);
                for (l, rs) in &lists {
                    e.set_extents(l).unwrap();
                    let mut small = vec![0u8; 60];
                    let mut k = 0u64;
                    loop {
                        k += 1;
                        if flaky != 0 && k % 3 == 0 {
                            match e.next_frame(&mut src, &mut small) {
                                Err(blockdelta::StreamError::BufferTooSmall { .. }) => {}
                                Err(blockdelta::StreamError::SourceIo { .. }) => {
                                    continue;
                                }
                                Ok(Some(n)) => {
                                    out.extend_from_slice(&small[..n]);
                                    continue;
                                }
                                Ok(None) => break,
                                Err(x) => panic!("{x}"),
                            }
                        }
                        match e.next_frame(&mut src, &mut b) {
                            Ok(Some(n)) => out.extend_from_slice(&b[..n]),
                            Ok(None) => break,
                            Err(blockdelta::StreamError::SourceIo { .. }) => {}
                            Err(x) => panic!("{x}"),
                        }
                    }
                    if let Some(s) = rs {
                        let n = e.write_resize(*s, &mut b).unwrap();
                        out.extend_from_slice(&b[..n]);
                    }
                }
                let n = e.finish(&mut b).unwrap();
                out.extend_from_slice(&b[..n]);
            }
            out
        };
        let want = mk(0, 0);
        for (t, fl) in [(1, 0), (3, 0), (1, seed), (2, seed), (4, seed)] {
            assert!(
                mk(t, fl) == want,
                "seed {seed} threads {t} cfg {:?} {} {}",
                (
                    c.block_size,
                    c.record_size,
                    c.zero_detection,
                    c.holes_as_discard
                ),
                unit,
                cap
            );
        }
        // replica check
        let mut a = Applier::new(DecoderConfig::new(), vec![0xEEu8; DISK as usize]);
        a.push(&want).unwrap();
        a.finish().unwrap();
        let rep = a.into_target();
        let mut expect = vec![0xEEu8; DISK as usize];
        let mut sz = DISK as usize;
        for (l, rs) in &lists {
            for e in l {
                let (o, n) = (e.offset as usize, e.len as usize);
                if e.kind == blockdelta::ExtentKind::Discard {
                    expect[o..o + n].fill(0)
                } else {
                    expect[o..o + n].copy_from_slice(&data[o..o + n])
                }
            }
            if let Some(s) = rs {
                let s = *s as usize;
                if s > sz {
                    expect.resize(s, 0);
                } else {
                    expect.truncate(s);
                }
                sz = s;
            }
        }
        assert!(rep == expect, "seed {seed}: replica differs");
    }
}
