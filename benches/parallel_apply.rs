//! `Applier` against `ParallelApplier` with 2 threads, side by side: one 256 MiB disk image
//! shipped as one lz4 + AES-256-GCM stream in 64 KiB records (what a tracker at 64 KiB
//! granularity produces), pushed whole and applied into a preallocated in-memory replica.
//!
//! The data: 64 KiB blocks in a fixed pseudo-random order, 70 % text-like (log lines: a
//! timestamp moving on by a few milliseconds, a level, one of 32 six-word messages with a skewed
//! distribution, a random id) and 30 % random bytes. lz4 shrinks it to 46 % (the stream is 118
//! MiB: ratio 2.16, printed by the bench); no block is all zeros, so every record is a DATA
//! record that is decrypted and, for the text blocks, decompressed.
//!
//! Results (medians, ratio, spread) are in `docs/results-parallel-apply.md`; they are read from
//! `target/criterion/parallel_apply/<bench>/new/sample.json`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

use blockdelta::{
    Applier, Codec, DecoderConfig, EncodeCursor, Encoder, EncoderConfig, Extent, GenerationId,
    ParallelApplier, Secret,
};

const SIZE: usize = 256 << 20;
const BLOCK: usize = 64 << 10;
/// Share of text-like blocks; the rest are random.
const TEXT_PERCENT: u64 = 70;
const SECRET: &[u8] = b"parallel apply bench secret, 32b";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

const WORDS: [&str; 64] = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "replica",
    "block",
    "stream",
    "checkpoint",
    "sector",
    "volume",
    "snapshot",
    "journal",
    "extent",
    "offset",
    "generation",
    "sequence",
    "recovery",
    "point",
    "bookmark",
    "failover",
    "failback",
    "resync",
    "tracker",
    "bitmap",
    "compressed",
    "encrypted",
    "verified",
    "durable",
    "consistent",
    "application",
    "database",
    "transaction",
    "commit",
    "rollback",
    "archive",
    "retention",
];

/// One log-like line: a timestamp that moves on by a few milliseconds, a level, one of 32
/// messages made of vocabulary words (the first ones far more often) and a numeric id.
fn line(rng: &mut Rng, clock_ms: &mut u64, out: &mut Vec<u8>) {
    let r = rng.next();
    *clock_ms += r % 40;
    let t = *clock_ms;
    let level = [&b"INFO "[..], b"INFO ", b"WARN ", b"DEBUG"][((r >> 8) % 4) as usize];
    out.extend_from_slice(
        format!(
            "2026-12-07T{:02}:{:02}:{:02}.{:03} ",
            t / 3_600_000 % 24,
            t / 60_000 % 60,
            t / 1000 % 60,
            t % 1000
        )
        .as_bytes(),
    );
    out.extend_from_slice(level);
    let m = ((r >> 16) % 32) * ((r >> 24) % 32) / 32;
    for k in 0..6 {
        out.push(b' ');
        out.extend_from_slice(WORDS[((m * 7 + k * 13) % 64) as usize].as_bytes());
    }
    out.extend_from_slice(format!(" id={}\n", (r >> 40) % 10_000).as_bytes());
}

fn disk() -> Vec<u8> {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut d = vec![0u8; SIZE];
    let mut text = Vec::with_capacity(BLOCK + 256);
    let mut clock_ms = 0;
    for block in d.chunks_mut(BLOCK) {
        if rng.next() % 100 < TEXT_PERCENT {
            text.clear();
            while text.len() < block.len() {
                line(&mut rng, &mut clock_ms, &mut text);
            }
            block.copy_from_slice(&text[..block.len()]);
        } else {
            for chunk in block.chunks_mut(8) {
                let r = rng.next().to_le_bytes();
                chunk.copy_from_slice(&r[..chunk.len()]);
            }
        }
    }
    d
}

fn encode(disk: &[u8]) -> Vec<u8> {
    let mut cfg = EncoderConfig::new(
        *b"bench-parallel-1",
        GenerationId([3; 16]),
        1,
        2,
        SIZE as u64,
    );
    cfg.record_size = BLOCK as u32;
    cfg.compression = Codec::Lz4;
    cfg.secret = Some(Secret::new(SECRET).unwrap());
    let mut enc = Encoder::new(cfg).unwrap();
    let mut frame = vec![0u8; enc.max_frame_len()];
    let mut out = Vec::with_capacity(SIZE);
    let n = enc.write_header(&mut frame).unwrap();
    out.extend_from_slice(&frame[..n]);
    let extents = [Extent::new(0, SIZE as u64)];
    let mut cursor = EncodeCursor::default();
    let mut src = disk.to_vec();
    while let Some(n) = enc
        .next_frame(&extents, &mut cursor, &mut src, &mut frame)
        .unwrap()
    {
        out.extend_from_slice(&frame[..n]);
    }
    let n = enc.finish(&mut frame).unwrap();
    out.extend_from_slice(&frame[..n]);
    out
}

fn config() -> DecoderConfig {
    DecoderConfig::new().with_secret(Secret::new(SECRET).unwrap())
}

fn benches(c: &mut Criterion) {
    let disk = disk();
    let stream = encode(&disk);
    eprintln!(
        "parallel_apply: {} MiB raw, {} MiB on the wire (lz4 + AES-256-GCM, 64 KiB records): ratio {:.2}",
        SIZE >> 20,
        stream.len() >> 20,
        SIZE as f64 / stream.len() as f64
    );
    let mut replica = vec![0u8; SIZE];

    // Each applier is checked once before it is timed.
    let mut a = Applier::new(config(), &mut replica);
    a.push(&stream).unwrap();
    a.finish().unwrap();
    assert!(replica == disk, "Applier");
    replica.fill(0);
    let mut p = ParallelApplier::new(config(), &mut replica, 2);
    p.push(&stream).unwrap();
    p.finish().unwrap();
    drop(p);
    assert!(replica == disk, "ParallelApplier");

    let mut g = c.benchmark_group("parallel_apply");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Bytes(SIZE as u64));
    g.bench_function("applier", |b| {
        b.iter(|| {
            let mut a = Applier::new(config(), &mut replica);
            a.push(black_box(&stream)).unwrap();
            black_box(a.finish().unwrap())
        })
    });
    g.bench_function("parallel_applier_2", |b| {
        b.iter(|| {
            let mut a = ParallelApplier::new(config(), &mut replica, 2);
            a.push(black_box(&stream)).unwrap();
            black_box(a.finish().unwrap())
        })
    });
    g.finish();
}

criterion_group!(parallel_apply, benches);
criterion_main!(parallel_apply);
