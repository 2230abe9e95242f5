//! A simulated protected disk for replica-store tests: random writes, zeroes, discards and
//! resizes between checkpoints, each checkpoint's stream built with the library's encoder, and
//! a copy of the disk at every checkpoint as the oracle.

#![allow(dead_code)]

use blockdelta::stream::Bookmark;
use blockdelta::{
    BookmarkKind, EncodeCursor, Encoder, EncoderConfig, Extent, ExtentKind, GenerationId, Secret,
};

/// Tiny deterministic RNG (xorshift64*), so failures reproduce from the seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Change {
    Clean,
    Data,
    Zero,
    Discard,
}

/// The protected disk.
#[derive(Clone)]
pub struct Source {
    pub disk_id: [u8; 16],
    pub generation: GenerationId,
    pub disk: Vec<u8>,
    /// Last committed checkpoint.
    pub seq: u64,
    /// Size at `seq`.
    pub size_at_seq: u64,
    pub block: u64,
    changes: Vec<Change>,
    resized: bool,
    pub secret: Option<Vec<u8>>,
    pub bookmark: Option<(u64, BookmarkKind, String)>,
}

impl Source {
    pub fn new(disk_id: [u8; 16], size: u64, block: u64) -> Self {
        let blocks = (size / block) as usize;
        Source {
            disk_id,
            generation: GenerationId::random(),
            disk: vec![0; size as usize],
            seq: 0,
            size_at_seq: size,
            block,
            // The first stream of a generation carries everything.
            changes: vec![Change::Data; blocks],
            resized: false,
            secret: None,
            bookmark: None,
        }
    }

    /// A source whose disk is `image`, at checkpoint `seq` of `generation`, nothing changed.
    pub fn from_image(
        disk_id: [u8; 16],
        image: Vec<u8>,
        generation: GenerationId,
        seq: u64,
        block: u64,
    ) -> Self {
        let blocks = image.len() / block as usize;
        let size = image.len() as u64;
        Source {
            disk_id,
            generation,
            disk: image,
            seq,
            size_at_seq: size,
            block,
            changes: vec![Change::Clean; blocks],
            resized: false,
            secret: None,
            bookmark: None,
        }
    }

    pub fn size(&self) -> u64 {
        self.disk.len() as u64
    }

    /// Fills `[off, off+len)` with pseudo-random bytes (with runs of zeros now and then).
    pub fn write(&mut self, rng: &mut Rng, off: u64, len: u64) {
        let zeros = rng.chance(10);
        for b in &mut self.disk[off as usize..(off + len) as usize] {
            *b = if zeros { 0 } else { rng.next() as u8 };
        }
        self.mark(off, len, Change::Data);
    }

    /// Writes `data` at `off` (for tests that generate their own contents).
    pub fn write_data(&mut self, off: u64, data: &[u8]) {
        self.disk[off as usize..off as usize + data.len()].copy_from_slice(data);
        self.mark(off, data.len() as u64, Change::Data);
    }

    fn mark(&mut self, off: u64, len: u64, c: Change) {
        let b0 = off / self.block;
        let b1 = (off + len).div_ceil(self.block);
        for b in b0..b1 {
            // A partial-block zero/discard is shipped as data (the block's current contents).
            let whole = b * self.block >= off && (b + 1) * self.block <= off + len;
            self.changes[b as usize] = if whole { c } else { Change::Data };
        }
    }

    pub fn zero(&mut self, off: u64, len: u64) {
        self.disk[off as usize..(off + len) as usize].fill(0);
        self.mark(off, len, Change::Zero);
    }

    pub fn discard(&mut self, off: u64, len: u64) {
        self.disk[off as usize..(off + len) as usize].fill(0);
        self.mark(off, len, Change::Discard);
    }

    pub fn resize(&mut self, new: u64) {
        self.disk.resize(new as usize, 0);
        self.changes
            .resize((new / self.block) as usize, Change::Clean);
        self.resized = true;
    }

    /// A random mix of changes.
    pub fn churn(&mut self, rng: &mut Rng, ops: usize) {
        for _ in 0..ops {
            let size = self.size();
            let blocks = size / self.block;
            let b = rng.below(blocks);
            let n = (1 + rng.below(8)).min(blocks - b);
            let (off, len) = (b * self.block, n * self.block);
            match rng.below(20) {
                0 => self.zero(off, len),
                1 => self.discard(off, len),
                2 => {
                    // Unaligned write inside the range.
                    let o = off + rng.below(self.block);
                    let l = 1 + rng.below(len - (o - off));
                    self.write(rng, o, l);
                }
                _ => self.write(rng, off, len),
            }
        }
    }

    /// The stream from the last checkpoint to `seq + 1` (or `to`), with everything changed since.
    pub fn stream(&self, to: u64, record_size: u32) -> Vec<u8> {
        let mut cfg = EncoderConfig::new(
            self.disk_id,
            self.generation,
            self.seq,
            to,
            self.size_at_seq,
        );
        cfg.block_size = self.block as u32;
        cfg.record_size = record_size;
        if let Some(s) = &self.secret {
            cfg.secret = Some(Secret::new(s).unwrap());
        }
        let mut enc = Encoder::new(cfg).unwrap();
        let mut buf = vec![0u8; enc.max_frame_len()];
        let mut out = Vec::new();
        let n = enc.write_header(&mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
        if self.resized || self.size() != self.size_at_seq {
            let n = enc.write_resize(self.size(), &mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
        }
        // Runs of equal change kinds, in order.
        let mut b = 0usize;
        let mut src = self.disk.clone();
        while b < self.changes.len() {
            let c = self.changes[b];
            let mut e = b;
            while e < self.changes.len() && self.changes[e] == c {
                e += 1;
            }
            let (off, len) = (b as u64 * self.block, (e - b) as u64 * self.block);
            match c {
                Change::Clean => {}
                Change::Data => {
                    let ext = [Extent::new(off, len)];
                    let mut cur = EncodeCursor::default();
                    while let Some(n) = enc.next_frame(&ext, &mut cur, &mut src, &mut buf).unwrap()
                    {
                        out.extend_from_slice(&buf[..n]);
                    }
                }
                Change::Zero => {
                    let n = enc.write_zero(off, len, &mut buf).unwrap();
                    out.extend_from_slice(&buf[..n]);
                }
                Change::Discard => {
                    let ext = [Extent {
                        offset: off,
                        len,
                        kind: ExtentKind::Discard,
                        reserved: 0,
                    }];
                    let mut cur = EncodeCursor::default();
                    while let Some(n) = enc.next_frame(&ext, &mut cur, &mut src, &mut buf).unwrap()
                    {
                        out.extend_from_slice(&buf[..n]);
                    }
                }
            }
            b = e;
        }
        if let Some((id, kind, label)) = &self.bookmark {
            let bm = Bookmark {
                id: *id,
                timestamp_ns: 1_700_000_000_000_000_000 + *id,
                kind: *kind,
                label,
            };
            let n = enc.write_bookmark(&bm, &mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
        }
        let n = enc.finish(&mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
        out
    }

    /// The sender committed checkpoint `to`: changes since are empty.
    pub fn commit(&mut self, to: u64) {
        self.seq = to;
        self.size_at_seq = self.size();
        self.changes.iter_mut().for_each(|c| *c = Change::Clean);
        self.resized = false;
        self.bookmark = None;
    }

    /// Starts a new generation (after a store rollback): marks `extents` changed.
    pub fn adopt(
        &mut self,
        generation: GenerationId,
        seq: u64,
        extents: &[Extent],
        size_at_seq: u64,
    ) {
        self.generation = generation;
        self.seq = seq;
        self.size_at_seq = size_at_seq;
        self.resized = self.size() != size_at_seq;
        for e in extents {
            let end = (e.offset + e.len).min(self.size());
            if e.offset < end {
                self.mark(e.offset, end - e.offset, Change::Data);
            }
        }
    }
}
