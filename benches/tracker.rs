//! Tracker speed as a block driver and a replication thread feel it.
//!
//! - `mark_write/*`: one call for a 4 KiB or 64 KiB write at a random 4 KiB-aligned offset of a
//!   1 TiB disk at 64 KiB granularity, on one thread and on two threads at once. `rewrite` hits
//!   blocks that are already dirty (the common steady state); `first_write` hits clean blocks.
//! - `take_iterate/*`: take a checkpoint of a 4 TiB disk at 64 KiB granularity with 0.01 %, 1 %
//!   and 50 % of its blocks dirty, and read every extent through the cursor.
//! - `mutex_vec/*`: the same operations on a plain `Mutex<Vec<u64>>` bitmap, for the ratio.

use std::hint::black_box;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use blockdelta::{Extent, Tracker, TrackerConfig};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const KIB: u64 = 1024;
const TIB: u64 = 1 << 40;
const GRAN: u64 = 64 * KIB;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn offsets(n: usize, disk: u64, len: u64, seed: u64) -> Vec<u64> {
    let mut r = Rng(seed);
    (0..n)
        .map(|_| (r.next() % ((disk - len) / 4096)) * 4096)
        .collect()
}

/// The naive baseline: one mutex around a flat bitmap.
struct MutexBitmap {
    shift: u32,
    bits: Mutex<Vec<u64>>,
    spare: Mutex<Vec<u64>>,
}

impl MutexBitmap {
    fn new(disk: u64, gran: u64) -> Self {
        let words = (disk / gran).div_ceil(64) as usize;
        MutexBitmap {
            shift: gran.trailing_zeros(),
            bits: Mutex::new(vec![0; words]),
            spare: Mutex::new(vec![0; words]),
        }
    }
    fn mark(&self, offset: u64, len: u64) {
        let (first, last) = (offset >> self.shift, (offset + len - 1) >> self.shift);
        let mut bits = self.bits.lock().unwrap();
        for b in first..=last {
            bits[(b >> 6) as usize] |= 1 << (b & 63);
        }
    }
    /// Swaps in the spare bitmap and scans the taken one into extents.
    fn take_iterate(&self, out: &mut [Extent]) -> u64 {
        let mut taken = self.spare.lock().unwrap();
        std::mem::swap(&mut *taken, &mut *self.bits.lock().unwrap());
        let mut total = 0u64;
        let mut n = 0;
        let mut run: Option<(u64, u64)> = None;
        for (w, &word) in taken.iter().enumerate() {
            if word == 0 && run.is_none() {
                continue;
            }
            for bit in 0..64u64 {
                let b = (w as u64) * 64 + bit;
                match (word >> bit & 1 != 0, run) {
                    (true, None) => run = Some((b, b + 1)),
                    (true, Some((s, _))) => run = Some((s, b + 1)),
                    (false, Some((s, e))) => {
                        out[n % out.len()] = Extent::new(s << self.shift, (e - s) << self.shift);
                        n += 1;
                        total += (e - s) << self.shift;
                        run = None;
                    }
                    (false, None) => {}
                }
            }
        }
        if let Some((s, e)) = run {
            total += (e - s) << self.shift;
        }
        total
    }
    /// Puts the taken set back (untimed, to restore the dirty state between iterations).
    fn restore(&self) {
        let mut taken = self.spare.lock().unwrap();
        std::mem::swap(&mut *taken, &mut *self.bits.lock().unwrap());
    }
}

fn bench_mark(c: &mut Criterion) {
    let disk = TIB;
    let mut g = c.benchmark_group("mark_write");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for len in [4 * KIB, 64 * KIB] {
        let offs = offsets(1 << 16, disk, len, len);
        let label = format!("{}KiB", len / KIB);
        g.throughput(Throughput::Elements(1));

        // Steady state: every block already dirty (a new tracker starts dirty).
        let t = Tracker::new(TrackerConfig::new(disk).granularity(GRAN as u32)).unwrap();
        let mut i = 0;
        g.bench_function(BenchmarkId::new("rewrite_1_thread", &label), |b| {
            b.iter(|| {
                i = (i + 1) & (offs.len() - 1);
                t.mark_write(black_box(offs[i]), len).unwrap()
            })
        });

        // Clean blocks: commit everything before each batch (untimed).
        let t = Tracker::new(
            TrackerConfig::new(disk)
                .granularity(GRAN as u32)
                .start_clean(true),
        )
        .unwrap();
        g.bench_function(BenchmarkId::new("first_write_1_thread", &label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let batch = (iters - done).min(4096);
                    let info = t.take().unwrap();
                    t.commit(info.generation, info.sequence).unwrap();
                    let start = Instant::now();
                    for k in 0..batch as usize {
                        t.mark_write(black_box(offs[(done as usize + k) & (offs.len() - 1)]), len)
                            .unwrap();
                    }
                    total += start.elapsed();
                    done += batch;
                }
                total
            })
        });

        let m = MutexBitmap::new(disk, GRAN);
        let mut i = 0;
        g.bench_function(BenchmarkId::new("mutex_vec_1_thread", &label), |b| {
            b.iter(|| {
                i = (i + 1) & (offs.len() - 1);
                m.mark(black_box(offs[i]), len)
            })
        });

        // Two threads marking at once; time per call = wall time / calls per thread.
        let t = Tracker::new(TrackerConfig::new(disk).granularity(GRAN as u32)).unwrap();
        g.bench_function(BenchmarkId::new("rewrite_2_threads", &label), |b| {
            b.iter_custom(|iters| two_threads(iters, &offs, |o| t.mark_write(o, len).unwrap()))
        });
        let m = MutexBitmap::new(disk, GRAN);
        g.bench_function(BenchmarkId::new("mutex_vec_2_threads", &label), |b| {
            b.iter_custom(|iters| two_threads(iters, &offs, |o| m.mark(o, len)))
        });
    }
    g.finish();
}

/// Runs `iters` calls on each of two threads started together; returns the wall time.
fn two_threads(iters: u64, offs: &[u64], f: impl Fn(u64) + Sync) -> Duration {
    let barrier = Barrier::new(2);
    let mask = offs.len() - 1;
    let worker = |skew: usize| {
        barrier.wait();
        let start = Instant::now();
        for k in 0..iters as usize {
            f(black_box(offs[(k + skew) & mask]));
        }
        start.elapsed()
    };
    std::thread::scope(|s| {
        let other = s.spawn(|| worker(offs.len() / 2));
        let mine = worker(0);
        mine.max(other.join().unwrap())
    })
}

fn bench_take(c: &mut Criterion) {
    let disk = 4 * TIB;
    let blocks = disk / GRAN;
    let mut g = c.benchmark_group("take_iterate_4TiB_64KiB");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    let mut out = vec![Extent::default(); 1024];
    for (name, per_million) in [("0.01pct", 100u64), ("1pct", 10_000), ("50pct", 500_000)] {
        let t = Tracker::new(
            TrackerConfig::new(disk)
                .granularity(GRAN as u32)
                .start_clean(true),
        )
        .unwrap();
        let m = MutexBitmap::new(disk, GRAN);
        // Each block dirty with probability `per_million` / 10^6.
        let mut r = Rng(per_million);
        for b in 0..blocks {
            if r.next() % 1_000_000 < per_million {
                t.mark_write(b * GRAN, GRAN).unwrap();
                m.mark(b * GRAN, GRAN);
            }
        }

        g.bench_function(BenchmarkId::new("tracker", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let info = t.take().unwrap();
                    let mut cursor = info.cursor();
                    let mut bytes = 0;
                    loop {
                        let n = t.extents(&mut cursor, &mut out).unwrap();
                        if n == 0 {
                            break;
                        }
                        bytes += out[..n].iter().map(|e| e.len).sum::<u64>();
                    }
                    total += start.elapsed();
                    assert_eq!(bytes, info.dirty_bytes);
                    t.abort(info.sequence).unwrap(); // untimed: restores the dirty set
                }
                total
            })
        });
        g.bench_function(BenchmarkId::new("mutex_vec", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    black_box(m.take_iterate(&mut out));
                    total += start.elapsed();
                    m.restore();
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_mark, bench_take);
criterion_main!(benches);
