//! `Applier` against `ParallelApplier` with 2 threads, side by side: one 256 MiB disk image
//! shipped as one lz4 + AES-256-GCM stream in 64 KiB records (what a tracker at 64 KiB
//! granularity produces), pushed whole and applied into a preallocated in-memory replica.
//!
//! The data: 64 KiB blocks in a fixed pseudo-random order, 70 % text-like (log lines: a
//! timestamp moving on by a few milliseconds, a level, one of 32 six-word messages with a skewed
//! distribution, a random id) and 30 % random bytes. lz4 shrinks it to 45 % (the stream is 116
//! MiB: ratio 2.20, printed by the bench); no block is all zeros, so every record is a DATA
//! record that is decrypted and, for the text blocks, decompressed.
//!
//! On a shared machine the second core may be busy with someone else's work, so the same run
//! measures what two threads get: `spin/1_thread` spins one thread for a fixed amount of work,
//! `spin/2_threads` two threads for that amount each; their ratio is the parallelism the
//! machine gave (2.0: two free cores, 1.0: one).
//!
//! Results (medians, ratio, spread) are in `docs/results-parallel-apply.md`; they are read from
//! `target/criterion/<group>/<bench>/new/sample.json`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

#[path = "common/real_data.rs"]
mod real_data;
use real_data::Rng;

use blockdelta::{
    Applier, Codec, DecoderConfig, EncodeCursor, Encoder, EncoderConfig, Extent, GenerationId,
    ParallelApplier, Secret,
};

const SIZE: usize = 256 << 20;
const BLOCK: usize = 64 << 10;
/// Share of text-like blocks; the rest are random.
const TEXT_PERCENT: u64 = 70;
const SECRET: &[u8] = b"parallel apply bench secret, 32b";

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

    // CPU time against wall time (all threads of the process), which the load of a shared
    // machine changes less than wall time: the cost of the pipeline itself.
    for threads in [1, 2] {
        let (mut wall, mut cpu) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let (w, c) = (Instant::now(), cpu_seconds());
            if threads == 1 {
                let mut a = Applier::new(config(), &mut replica);
                a.push(&stream).unwrap();
                a.finish().unwrap();
            } else {
                let mut a = ParallelApplier::new(config(), &mut replica, threads);
                a.push(&stream).unwrap();
                a.finish().unwrap();
            }
            wall.push(w.elapsed().as_secs_f64() * 1e3);
            cpu.push((cpu_seconds() - c) * 1e3);
        }
        let (w, c) = (real_data::mmm(&wall), real_data::mmm(&cpu));
        eprintln!(
            "parallel_apply: {} wall {:.1} ms ({:.1}..{:.1}), cpu {:.1} ms ({:.1}..{:.1})",
            if threads == 1 {
                "Applier"
            } else {
                "ParallelApplier(2)"
            },
            w.0,
            w.1,
            w.2,
            c.0,
            c.1,
            c.2
        );
    }

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

    let mut g = c.benchmark_group("spin");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1));
    g.bench_function("1_thread", |b| b.iter(|| spin(SPIN)));
    g.bench_function("2_threads", |b| {
        b.iter(|| {
            let other = std::thread::spawn(|| spin(SPIN));
            spin(SPIN) ^ other.join().unwrap()
        })
    });
    g.finish();
}

/// User and system CPU time of the process (every thread), in seconds.
fn cpu_seconds() -> f64 {
    let mut r = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` fills the `rusage` it is given; zeroed memory is a valid `rusage`.
    let r = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, r.as_mut_ptr());
        r.assume_init()
    };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(r.ru_utime) + t(r.ru_stime)
}

/// Multiply-adds in a dependent chain: one core's worth of work for each call.
const SPIN: u64 = 20_000_000;

fn spin(n: u64) -> u64 {
    let mut x = 1u64;
    for i in 0..black_box(n) {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i);
    }
    x
}

criterion_group!(parallel_apply, benches);
criterion_main!(parallel_apply);
