//! Tracker speed as a block driver and a replication thread feel it.
//!
//! - `mark_write/*`: one call for a 4 KiB or 64 KiB write at a random 4 KiB-aligned offset of a
//!   1 TiB disk at 64 KiB granularity, on one thread and on two threads at once. `rewrite` hits
//!   blocks that are already dirty (the common steady state); `first_write` hits clean blocks.
//! - `mutex_vec_*`: `mark_write` on a plain `Mutex<Vec<u64>>` bitmap, for the ratio.
//! - `take_iterate_64KiB/<disk>/{tracker,flat}/<fraction>`: take a checkpoint and read every
//!   extent (through the cursor, 1,024 at a time), on 1, 4, 16 and 64 TiB disks at 64 KiB
//!   granularity with 0.01 %, 1 % and 50 % of the blocks dirty, each block independently
//!   (uniformly spread, see `random_dirty`); `flat` is the same take on a flat
//!   `Mutex<Vec<u64>>` bitmap with the same dirty blocks (see `flat_take_iterate`);
//!   `tracker_resident` (16 and 64 TiB at 0.01 %) the tracker made resident, where by default
//!   it is committed lazily.
//! - `iterate_bound_64KiB/<disk>/{two_bit_pairs,flat}/<fraction>`: the bound any take protocol
//!   meets with the tracker's leaf layout. `two_bit_pairs` reads the extents out of a plain
//!   array in that layout (32 blocks per word, dirty bits low, written bits high, the layout
//!   that keeps a block's kind in the word its dirty bit is swapped with) with nothing taken
//!   at all: no drain, no atomics, two leaf words at a time as one 64-block mask, an all-write
//!   pair by the flat scan's own masks. `flat` is `flat_take_iterate` again. (Session 9 took
//!   this for the bound of any take with that layout; it was the bound of this reader: the
//!   tracker's own reader has since read the 1 % take faster than `flat`, see `--take-apart`.)
//!
//! `cargo bench --bench tracker -- --take-apart [1TiB|4TiB|16TiB|64TiB]` times `take()` and the
//! reading of its extents apart instead, beside `flat_take_iterate` on the same blocks, in
//! turn in each round (paired), over the take matrix (or one disk of it): medians of the
//! rounds, and the per-round ratio's median with min..max.
//!
//! `cargo bench --bench tracker -- --instructions` counts the instructions of one 4 KiB
//! `mark_write` instead (callgrind, when valgrind is installed), as a second opinion.

use std::hint::black_box;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

#[path = "common/callgrind.rs"]
mod callgrind;

use blockdelta::{CheckpointInfo, Extent, Tracker, TrackerConfig};
use callgrind::{dump_total, measured_region, run_counted, valgrind_available};
use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};

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
    /// The baseline holding the dirty blocks `bits` (at 64 KiB granularity).
    fn with_bits(bits: &[u64]) -> Self {
        MutexBitmap {
            shift: GRAN.trailing_zeros(),
            spare: Mutex::new(vec![0; bits.len()]),
            bits: Mutex::new(bits.to_vec()),
        }
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

/// The take + iterate matrix: every disk size at 64 KiB granularity, each dirty fraction.
const TAKE_DISKS: [(&str, u64); 4] = [
    ("1TiB", TIB),
    ("4TiB", 4 * TIB),
    ("16TiB", 16 * TIB),
    ("64TiB", 64 * TIB),
];
/// Dirty fractions in parts per million: 0.01 %, 1 %, 50 %.
const TAKE_FRACTIONS: [(&str, u64); 3] = [("0.01pct", 100), ("1pct", 10_000), ("50pct", 500_000)];

/// A flat bitmap with each of `blocks` blocks dirty independently with probability
/// `per_million` / 10^6 (uniformly spread, no clustering): at 50 % a random word per 64
/// blocks, below it geometric gaps between dirty blocks (the same distribution, drawn in time
/// proportional to the dirty blocks).
fn random_dirty(blocks: u64, per_million: u64, seed: u64) -> Vec<u64> {
    let mut bits = vec![0u64; blocks.div_ceil(64) as usize];
    let mut r = Rng(seed);
    if per_million == 500_000 {
        for w in bits.iter_mut() {
            *w = r.next();
        }
        if blocks % 64 != 0 {
            *bits.last_mut().unwrap() &= (1 << (blocks % 64)) - 1;
        }
        return bits;
    }
    let ln_q = (1.0 - per_million as f64 / 1e6).ln();
    let mut b = 0u64;
    loop {
        // Uniform in (0, 1]: the gap before the next dirty block is geometric.
        let u = ((r.next() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        b += (u.ln() / ln_q) as u64;
        if b >= blocks {
            return bits;
        }
        bits[(b >> 6) as usize] |= 1 << (b & 63);
        b += 1;
    }
}

/// The dirty blocks of one cell of the take matrix (`random_dirty`, seeded by the cell) and
/// the bytes they cover at 64 KiB.
fn dirty_set(blocks: u64, per_million: u64) -> (Vec<u64>, u64) {
    let bits = random_dirty(blocks, per_million, per_million ^ blocks);
    let mut dirty_bytes = 0;
    for_each_run(&bits, |s, e| dirty_bytes += (e - s) * GRAN);
    (bits, dirty_bytes)
}

/// Calls `f(first, end)` for every run of set bits of `bits` (blocks `first..end`).
fn for_each_run(bits: &[u64], mut f: impl FnMut(u64, u64)) {
    let mut open: Option<u64> = None;
    for (w, &word) in bits.iter().enumerate() {
        let base = (w as u64) << 6;
        let mut rest = word;
        if let Some(s) = open {
            let ones = rest.trailing_ones();
            if ones == 64 {
                continue;
            }
            f(s, base + u64::from(ones));
            open = None;
            rest &= u64::MAX.checked_shl(ones).unwrap_or(0);
        }
        while rest != 0 {
            let s = rest.trailing_zeros();
            let after = !rest & (u64::MAX << s);
            if after == 0 {
                open = Some(base + u64::from(s));
                break;
            }
            let e = after.trailing_zeros();
            f(base + u64::from(s), base + u64::from(e));
            rest &= u64::MAX << e;
        }
    }
    if let Some(s) = open {
        f(s, (bits.len() as u64) << 6);
    }
}

/// The flat baseline's take + iterate: swap the live `Vec<u64>` for the (clean) spare under
/// the mutex, then scan every word of the taken one, turning runs into extents a word at a
/// time (trailing zeros and ones, a cache line of zero words skipped with one test), into the
/// same 1,024-extent batch the tracker fills. What it leaves out favours it: no discard
/// kinds, and clearing the taken map (a `memset` of the whole map before it can be the spare
/// again) is not timed.
fn flat_take_iterate(m: &MutexBitmap, out: &mut [Extent]) -> u64 {
    let mut taken = m.spare.lock().unwrap();
    std::mem::swap(&mut *taken, &mut *m.bits.lock().unwrap());
    let shift = m.shift;
    let mut bytes = 0u64;
    let mut n = 0;
    let mut emit = |s: u64, e: u64| {
        out[n] = Extent::new(s << shift, (e - s) << shift);
        n += 1;
        if n == out.len() {
            bytes += out.iter().map(|e| e.len).sum::<u64>();
            n = 0;
        }
    };
    let mut open: Option<u64> = None;
    let lines = taken.chunks(8);
    for (l, line) in lines.enumerate() {
        if open.is_none() && line.iter().fold(0, |a, &w| a | w) == 0 {
            continue;
        }
        for (i, &word) in line.iter().enumerate() {
            let base = ((l * 8 + i) as u64) << 6;
            let mut rest = word;
            if let Some(s) = open {
                let ones = rest.trailing_ones();
                if ones == 64 {
                    continue;
                }
                emit(s, base + u64::from(ones));
                open = None;
                rest &= u64::MAX.checked_shl(ones).unwrap_or(0);
            }
            while rest != 0 {
                let s = rest.trailing_zeros();
                let after = !rest & (u64::MAX << s);
                if after == 0 {
                    open = Some(base + u64::from(s));
                    break;
                }
                let e = after.trailing_zeros();
                emit(base + u64::from(s), base + u64::from(e));
                rest &= u64::MAX << e;
            }
        }
    }
    if let Some(s) = open {
        emit(s, (taken.len() as u64) << 6);
    }
    bytes + out[..n].iter().map(|e| e.len).sum::<u64>()
}

/// The `flat` side of a group: `flat_take_iterate` timed, the restore between iterations not.
fn bench_flat(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    m: &MutexBitmap,
    out: &mut [Extent],
    dirty_bytes: u64,
) {
    g.bench_function(BenchmarkId::new("flat", name), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let bytes = flat_take_iterate(m, out);
                total += start.elapsed();
                assert_eq!(bytes, dirty_bytes);
                m.restore(); // untimed: the dirty set back, the spare clean
            }
            total
        })
    });
}

fn bench_take(c: &mut Criterion) {
    let mut out = vec![Extent::default(); 1024];
    for (disk_name, disk) in TAKE_DISKS {
        let blocks = disk / GRAN;
        let mut g = c.benchmark_group(format!("take_iterate_64KiB/{disk_name}"));
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .measurement_time(Duration::from_secs(4))
            .warm_up_time(Duration::from_secs(1));
        for (name, per_million) in TAKE_FRACTIONS {
            // The same dirty blocks in both.
            let (bits, dirty_bytes) = dirty_set(blocks, per_million);
            let m = MutexBitmap::with_bits(&bits);
            // The default configuration; where that is lazily committed (16 and 64 TiB), also
            // resident (`TrackerConfig::resident`: prefaulted, on huge pages where the kernel
            // has them), at 0.01 %.
            let config = TrackerConfig::new(disk)
                .granularity(GRAN as u32)
                .start_clean(true);
            let lazy = Tracker::memory_for(disk, GRAN as u32) > blockdelta::RESIDENT_LIMIT;
            let mut variants = vec![("tracker", config)];
            if lazy && per_million == 100 {
                variants.push(("tracker_resident", config.resident(true)));
            }
            for (label, config) in variants {
                let t = Tracker::new(config).unwrap();
                for_each_run(&bits, |s, e| {
                    t.mark_write(s * GRAN, (e - s) * GRAN).unwrap()
                });
                g.bench_function(BenchmarkId::new(label, name), |b| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let start = Instant::now();
                            let info = t.take().unwrap();
                            let bytes = read_extents(&t, &info, &mut out);
                            total += start.elapsed();
                            assert_eq!(bytes, dirty_bytes);
                            t.abort(info.sequence).unwrap(); // untimed: restores the dirty set
                        }
                        total
                    })
                });
            }
            bench_flat(&mut g, name, &m, &mut out, dirty_bytes);
        }
        g.finish();
    }
}

/// Dirty bits of a live leaf word; the written bits are the high half.
const LOW: u64 = 0xffff_ffff;

/// `bits` (one bit per block) in the tracker's leaf layout, every dirty block a write.
fn two_bit_leaves(bits: &[u64]) -> Vec<u64> {
    let mut leaves = Vec::with_capacity(2 * bits.len());
    for &w in bits {
        for half in [w & LOW, w >> 32] {
            leaves.push(half | (half << 32));
        }
    }
    leaves
}

/// The extents of a plain array of leaf words in the tracker's layout (see the module doc),
/// into the same 1,024-extent batch as `flat_take_iterate`; the bytes they cover. Runs split
/// where the kind changes, as the tracker's do.
fn two_bit_pairs_iterate(leaves: &[u64], shift: u32, out: &mut [Extent]) -> u64 {
    let mut bytes = 0u64;
    let mut n = 0;
    let mut emit = |s: u64, e: u64, discard: bool| {
        let (offset, len) = (s << shift, (e - s) << shift);
        out[n] = if discard {
            Extent::discard(offset, len)
        } else {
            Extent::new(offset, len)
        };
        n += 1;
        if n == out.len() {
            bytes += out.iter().map(|e| e.len).sum::<u64>();
            n = 0;
        }
    };
    let mut open: Option<(u64, bool)> = None;
    for (l, line) in leaves.chunks(8).enumerate() {
        if open.is_none() && line.iter().fold(0, |a, &w| a | w) == 0 {
            continue;
        }
        for (i, pair) in line.chunks_exact(2).enumerate() {
            let (a, b) = (pair[0], pair[1]);
            if a | b == 0 && open.is_none() {
                continue;
            }
            let base = ((l * 4 + i) as u64) << 6;
            let dirty = (a & LOW) | (b << 32);
            let written = (a >> 32) | (b & !LOW);
            let disc = dirty & !written;
            let (mut firsts, mut lasts) = if disc == 0 {
                (dirty & !(dirty << 1), dirty & !(dirty >> 1))
            } else {
                let same_below = (dirty << 1) & !(disc ^ (disc << 1));
                let same_above = (dirty >> 1) & !(disc ^ (disc >> 1));
                (dirty & !same_below, dirty & !same_above)
            };
            if let Some((s, k)) = open {
                if dirty & 1 != 0 && (disc & 1 != 0) == k {
                    firsts &= !1;
                    let e = lasts.trailing_zeros();
                    lasts &= lasts.wrapping_sub(1);
                    if e == 63 {
                        continue;
                    }
                    emit(s, base + u64::from(e) + 1, k);
                } else {
                    emit(s, base, k);
                }
                open = None;
            }
            while firsts != 0 {
                let f = firsts.trailing_zeros();
                let e = lasts.trailing_zeros();
                firsts &= firsts - 1;
                lasts &= lasts - 1;
                let k = (disc >> f) & 1 != 0;
                if e == 63 {
                    open = Some((base + u64::from(f), k));
                    break;
                }
                emit(base + u64::from(f), base + u64::from(e) + 1, k);
            }
        }
    }
    if let Some((s, k)) = open {
        emit(s, (leaves.len() as u64) << 5, k);
    }
    bytes + out[..n].iter().map(|e| e.len).sum::<u64>()
}

/// Disks of the bound: the smallest and a large one (the ratios hold across sizes).
const BOUND_DISKS: [(&str, u64); 2] = [("1TiB", TIB), ("16TiB", 16 * TIB)];

fn bench_iterate_bound(c: &mut Criterion) {
    let mut out = vec![Extent::default(); 1024];
    for (disk_name, disk) in BOUND_DISKS {
        let blocks = disk / GRAN;
        let mut g = c.benchmark_group(format!("iterate_bound_64KiB/{disk_name}"));
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1));
        for (name, per_million) in TAKE_FRACTIONS {
            // The same dirty blocks as the take matrix.
            let (bits, dirty_bytes) = dirty_set(blocks, per_million);
            let leaves = two_bit_leaves(&bits);
            let shift = GRAN.trailing_zeros();
            g.bench_function(BenchmarkId::new("two_bit_pairs", name), |b| {
                b.iter(|| {
                    let bytes = two_bit_pairs_iterate(black_box(&leaves), shift, &mut out);
                    assert_eq!(bytes, dirty_bytes);
                })
            });
            let m = MutexBitmap::with_bits(&bits);
            bench_flat(&mut g, name, &m, &mut out, dirty_bytes);
        }
        g.finish();
    }
}

criterion_group!(benches, bench_mark, bench_take, bench_iterate_bound);

/// Marks per callgrind-counted region.
const COUNTED_MARKS: usize = 1 << 20;

/// `-- --instructions`: the instructions of one 4 KiB `mark_write` (callgrind; the bench
/// re-runs itself under valgrind with `--count-mark`), on a dirty block and on a clean one.
/// Anything else: the criterion benches.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--count-mark") {
        count_mark();
    } else if args.iter().any(|a| a == "--instructions") {
        instructions();
    } else if let Some(i) = args.iter().position(|a| a == "--take-apart") {
        take_apart(
            args.get(i + 1)
                .map(String::as_str)
                .filter(|a| !a.starts_with('-')),
        );
    } else {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
}

/// Reads every extent of the checkpoint `info` through its cursor, `out.len()` at a time;
/// the bytes they cover.
fn read_extents(t: &Tracker, info: &CheckpointInfo, out: &mut [Extent]) -> u64 {
    let mut cursor = info.cursor();
    let mut bytes = 0;
    loop {
        let n = t.extents(&mut cursor, out).unwrap();
        if n == 0 {
            return bytes;
        }
        bytes += out[..n].iter().map(|e| e.len).sum::<u64>();
    }
}

/// `-- --take-apart`: `take()` and the reading of its extents timed apart (where the time
/// of a take + iterate goes), beside the flat scan on the same blocks, in turn in every round
/// (paired), over the whole matrix of disks and dirty fractions (`-- --take-apart 1TiB` for
/// one disk): medians of 30 rounds (15 at 16 and 64 TiB), and the ratio flat / tracker of each
/// round as its median with min..max. Every round checks that all the dirty bytes were read.
fn take_apart(only: Option<&str>) {
    let mut out = vec![Extent::default(); 1024];
    println!("take and read apart, 64 KiB granularity, paired rounds: medians (ratio min..max)");
    for (disk_name, disk) in TAKE_DISKS {
        if only.is_some_and(|o| o != disk_name) {
            continue;
        }
        let blocks = disk / GRAN;
        let rounds = if disk >= 16 * TIB { 15 } else { 30 };
        for (name, per_million) in TAKE_FRACTIONS {
            let (bits, dirty_bytes) = dirty_set(blocks, per_million);
            let m = MutexBitmap::with_bits(&bits);
            let t = Tracker::new(
                TrackerConfig::new(disk)
                    .granularity(GRAN as u32)
                    .start_clean(true),
            )
            .unwrap();
            for_each_run(&bits, |s, e| {
                t.mark_write(s * GRAN, (e - s) * GRAN).unwrap()
            });
            let (mut take, mut read, mut flat, mut ratio) = (vec![], vec![], vec![], vec![]);
            for _ in 0..rounds {
                let start = Instant::now();
                let info = t.take().unwrap();
                let took = start.elapsed();
                let start = Instant::now();
                let bytes = read_extents(&t, &info, &mut out);
                let read_in = start.elapsed();
                assert_eq!(bytes, dirty_bytes);
                t.abort(info.sequence).unwrap();
                let start = Instant::now();
                let bytes = flat_take_iterate(&m, &mut out);
                let f = start.elapsed().as_secs_f64();
                assert_eq!(bytes, dirty_bytes);
                m.restore();
                let (tk, rd) = (took.as_secs_f64(), read_in.as_secs_f64());
                take.push(tk);
                read.push(rd);
                flat.push(f);
                ratio.push(f / (tk + rd));
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let (lo, hi) = ratio
                .iter()
                .fold((f64::MAX, 0f64), |(l, h), &r| (l.min(r), h.max(r)));
            println!(
                "  {disk_name} {name}: take {:.3} ms, read {:.3} ms; flat {:.3} ms; \
                 flat / tracker {:.2}x ({lo:.2}..{hi:.2})",
                median(&mut take) * 1e3,
                median(&mut read) * 1e3,
                median(&mut flat) * 1e3,
                median(&mut ratio),
            );
        }
    }
}

/// Under callgrind: 2^20 marks of 4 KiB on dirty blocks, then as many on clean blocks.
fn count_mark() {
    let disk = TIB;
    let offs = offsets(COUNTED_MARKS, disk, 4 * KIB, 4 * KIB);
    let run = |t: &Tracker| {
        for &o in &offs {
            t.mark_write(black_box(o), 4 * KIB).unwrap();
        }
        offs.len()
    };
    let dirty = Tracker::new(TrackerConfig::new(disk).granularity(GRAN as u32)).unwrap();
    run(&dirty);
    measured_region(&mut || run(&dirty));
    let clean = Tracker::new(
        TrackerConfig::new(disk)
            .granularity(GRAN as u32)
            .start_clean(true),
    )
    .unwrap();
    measured_region(&mut || run(&clean));
}

fn instructions() {
    if !valgrind_available() {
        println!("instructions: skipped, valgrind is not installed (apt-get install valgrind)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("blockdelta-tracker-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("mark.out");
    run_counted(&out, &["--count-mark"]);
    let per =
        |i: usize| dump_total(&dir.join(format!("mark.out.{i}"))) as f64 / COUNTED_MARKS as f64;
    println!("instructions per 4 KiB mark_write, 1 TiB disk at 64 KiB (callgrind)");
    println!("  rewrite (block already dirty): {:.1}", per(1));
    println!("  first write (clean block):     {:.1}", per(2));
    std::fs::remove_dir_all(&dir).ok();
}
