//! The activity log's targets (issue 10 §2), measured side by side in one run:
//!
//! * **write path**: a 4 KiB write to an active region with the log (`begin` + `complete`:
//!   the admission and the completion's mark) against the same build without persistence
//!   (`mark_write` alone), paired round by round (the order flips every round), median of the
//!   rounds' ratios with min..max; and the instructions each executes, counted by callgrind
//!   (when valgrind is installed) as a second opinion.
//! * **skewed workload**: 4 KiB random writes, zipfian with theta 1.2 over a 64 GiB disk's
//!   blocks, 32 in flight from 4 threads, the default log (1,237 regions of 4 MiB): the share
//!   of writes that wait for a metadata update, activations per fsync (group commit), and
//!   after a crash the recovered excess against the log's bound. Two placements of the hot
//!   blocks: in rank order (hot data together, as a file system's metadata and journal) and
//!   scattered by a hash (fio's `random_distribution=zipf:1.2`, which hashes ranks). For each,
//!   the least any log of that size could make wait (a cache holding the regions with the
//!   most writes of the whole run, known in advance) is printed beside the measured share.
//!
//! `cargo bench --bench activity` runs all; `-- --time`, `-- --instructions`, `-- --skewed`
//! one of them; `-- --rounds N` (default 21), `-- --writes N` (skewed writes per placement,
//! default 400,000).

#[path = "common/callgrind.rs"]
mod callgrind;

use std::collections::{HashMap, VecDeque};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use blockdelta::{
    ActivityLogConfig, Admission, LoadOutcome, PersistOptions, PersistentTracker, Tracker,
    TrackerConfig,
};
use callgrind::{dump_total, measured_region, run_counted, valgrind_available};

const KIB: u64 = 1024;
const BLOCK: u64 = 4 * KIB;
/// Marks per side per round.
const OPS: usize = 1 << 20;
const HOT_REGIONS: u64 = 8;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--count") {
        count_child();
        return;
    }
    let value = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1)?.parse().ok())
            .unwrap_or(default)
    };
    let only = |name: &str| {
        let any = args
            .iter()
            .any(|a| ["--time", "--instructions", "--skewed"].contains(&a.as_str()));
        !any || args.iter().any(|a| a == name)
    };
    println!(
        "machine: {} CPUs, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    if only("--time") {
        paired_time(value("--rounds", 21));
    }
    if only("--instructions") {
        instructions();
    }
    if only("--skewed") {
        let writes = value("--writes", 400_000) as u64;
        skewed(Placement::Ranked, writes);
        skewed(Placement::Hashed, writes);
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The offsets the write-path sides mark, all in the hot regions, in a scrambled order.
fn offsets() -> Vec<u64> {
    let blocks = HOT_REGIONS * (4 << 20) / BLOCK;
    (0..OPS as u64)
        .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20) % blocks * BLOCK)
        .collect()
}

struct Sides {
    plain: Tracker,
    _dir: tempfile::TempDir,
    pt: PersistentTracker,
    writer: blockdelta::ActivityWriter,
}

fn sides() -> Sides {
    let disk = 64u64 << 30;
    let config = TrackerConfig::new(disk).start_clean(true);
    let plain = Tracker::new(config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options =
        PersistOptions::new(*b"activity-bench-1").activity_log(ActivityLogConfig::default());
    let (pt, _) = PersistentTracker::open(dir.path().join("t"), config, options).unwrap();
    let writer = pt.writer().unwrap();
    // Activate the hot regions.
    for r in 0..HOT_REGIONS {
        let off = r * (4 << 20);
        loop {
            match writer.begin(off, BLOCK).unwrap() {
                Admission::Go(t) => {
                    writer.complete(t, off, BLOCK).unwrap();
                    break;
                }
                Admission::Wait(ticket) => writer.wait(ticket).unwrap(),
            }
        }
    }
    Sides {
        plain,
        _dir: dir,
        pt,
        writer,
    }
}

fn run_plain(s: &Sides, offs: &[u64]) -> usize {
    for &o in offs {
        s.plain.mark_write(black_box(o), BLOCK).unwrap();
    }
    offs.len()
}

/// The completion's mark alone on the tracker that keeps the log (what the mark costs with
/// persistence on, without the admission).
fn run_mark_logged(s: &Sides, offs: &[u64]) -> usize {
    let t = s.pt.tracker();
    for &o in offs {
        t.mark_write(black_box(o), BLOCK).unwrap();
    }
    offs.len()
}

fn run_logged(s: &Sides, offs: &[u64]) -> usize {
    for &o in offs {
        match s.writer.begin(black_box(o), BLOCK) {
            Ok(Admission::Go(t)) => s.writer.complete(t, o, BLOCK).unwrap(),
            other => panic!("a hot region was not admitted: {other:?}"),
        }
    }
    offs.len()
}

fn paired_time(rounds: usize) {
    let s = sides();
    let offs = offsets();
    // Warm both (first marks set the bits; later rounds mark set bits, as a busy disk does).
    run_plain(&s, &offs);
    run_logged(&s, &offs);
    run_mark_logged(&s, &offs);
    let (mut ratios, mut mark_ratios) = (Vec::new(), Vec::new());
    let (mut plain_ns, mut logged_ns, mut mark_ns) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut t = [0f64; 3];
        for k in 0..3 {
            // Each side first, second and third in turn.
            let side = (k + round) % 3;
            let start = Instant::now();
            match side {
                0 => run_plain(&s, &offs),
                1 => run_logged(&s, &offs),
                _ => run_mark_logged(&s, &offs),
            };
            t[side] = start.elapsed().as_secs_f64() * 1e9 / OPS as f64;
        }
        plain_ns.push(t[0]);
        logged_ns.push(t[1]);
        mark_ns.push(t[2]);
        ratios.push(t[1] / t[0]);
        mark_ratios.push(t[2] / t[0]);
    }
    let stats = s.pt.activity_stats().unwrap();
    println!(
        "write path, 4 KiB writes to active regions, {rounds} paired rounds of {OPS} (write-path barrier: {})",
        if stats.membarrier { "membarrier(2)" } else { "a fence per begin" }
    );
    let row = |name: &str, v: &mut [f64], unit: &str| println!("  {name:<38}{}", fmt(v, unit));
    row("mark_write, no persistence", &mut plain_ns, " ns");
    row("mark_write, activity log on", &mut mark_ns, " ns");
    row("ratio (the mark with the log on)", &mut mark_ratios, "x");
    row("begin + complete (activity log)", &mut logged_ns, " ns");
    row("ratio (admission and mark)", &mut ratios, "x");
}

fn fmt(v: &mut [f64], unit: &str) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "{:.2}{unit} ({:.2}..{:.2})",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1]
    )
}

/// Under callgrind: each side once.
fn count_child() {
    let s = sides();
    let offs = offsets();
    run_plain(&s, &offs);
    run_logged(&s, &offs);
    run_mark_logged(&s, &offs);
    measured_region(&mut || run_plain(&s, &offs));
    measured_region(&mut || run_logged(&s, &offs));
    measured_region(&mut || run_mark_logged(&s, &offs));
}

fn instructions() {
    if !valgrind_available() {
        println!("instructions: skipped, valgrind is not installed (apt-get install valgrind)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("activity.out");
    run_counted(&out, &["--count"]);
    let plain = dump_total(&dir.path().join("activity.out.1")) as f64 / OPS as f64;
    let logged = dump_total(&dir.path().join("activity.out.2")) as f64 / OPS as f64;
    let mark = dump_total(&dir.path().join("activity.out.3")) as f64 / OPS as f64;
    println!("instructions per 4 KiB write to an active region (callgrind)");
    println!(
        "  mark_write: no persistence {plain:.1}, activity log on {mark:.1} ({:.2}x); begin + complete {logged:.1} ({:.2}x)",
        mark / plain,
        logged / plain
    );
}

#[derive(Clone, Copy, PartialEq)]
enum Placement {
    /// Rank k is block k-1: the hot blocks are together.
    Ranked,
    /// Rank k is scattered by a multiplicative hash (fio's zipf).
    Hashed,
}

/// Zipf(s) over 1..=n by rejection-inversion (Hörmann and Derflinger, 1996), as Apache
/// Commons' `RejectionInversionZipfSampler`.
struct Zipf {
    s: f64,
    n: f64,
    h_x1: f64,
    h_n: f64,
    s_div: f64,
}

impl Zipf {
    fn new(n: u64, s: f64) -> Zipf {
        let mut z = Zipf {
            s,
            n: n as f64,
            h_x1: 0.0,
            h_n: 0.0,
            s_div: 0.0,
        };
        z.h_x1 = z.h_integral(1.5) - 1.0;
        z.h_n = z.h_integral(n as f64 + 0.5);
        z.s_div = 2.0 - z.h_integral_inverse(z.h_integral(2.5) - z.h(2.0));
        z
    }
    fn h(&self, x: f64) -> f64 {
        (-self.s * x.ln()).exp()
    }
    fn h_integral(&self, x: f64) -> f64 {
        let lx = x.ln();
        helper2((1.0 - self.s) * lx) * lx
    }
    fn h_integral_inverse(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.s)).max(-1.0);
        (helper1(t) * x).exp()
    }
    fn sample(&self, uniform: f64) -> u64 {
        let mut u01 = uniform;
        loop {
            let u = self.h_n + u01 * (self.h_x1 - self.h_n);
            let x = self.h_integral_inverse(u);
            let k = (x + 0.5).clamp(1.0, self.n).floor();
            if k - x <= self.s_div || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64;
            }
            // Rejected: a new uniform from the old one (deterministic, well mixed).
            u01 = ((u01 * 1e9).fract() + 0.618_033_988_749_895).fract();
        }
    }
}

fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x))
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn skewed(placement: Placement, writes: u64) {
    let disk = 64u64 << 30;
    let blocks = disk / BLOCK;
    let al = ActivityLogConfig::default();
    let region_blocks = al.region_size / BLOCK;
    let config = TrackerConfig::new(disk).granularity(BLOCK as u32);
    let dir = tempfile::tempdir_in(
        std::env::var_os("BLOCKDELTA_BENCH_DIR").unwrap_or_else(|| ".".into()),
    )
    .unwrap();
    let path = dir.path().join("disk.tracker");
    let options = PersistOptions::new(*b"activity-bench-2").activity_log(al);
    let (pt, _) = PersistentTracker::open(&path, config, options).unwrap();
    let first = pt.take().unwrap();
    pt.commit(first.generation, first.sequence).unwrap();
    let pt = Arc::new(pt);
    let zipf = Arc::new(Zipf::new(blocks, 1.2));
    let threads = 4u64;
    let in_flight = 8usize;
    let per_thread = writes / threads;
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..threads {
        let (pt, zipf) = (pt.clone(), zipf.clone());
        handles.push(std::thread::spawn(move || {
            let w = pt.writer().unwrap();
            let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ ((t + 1) * 0x9e37_79b9));
            let mut queue = VecDeque::new();
            let (mut waited, mut region_writes) = (0u64, HashMap::<u64, u64>::new());
            let mut written = Vec::with_capacity(per_thread as usize);
            for _ in 0..per_thread {
                let rank = zipf.sample(rng.unit());
                let block = match placement {
                    Placement::Ranked => rank - 1,
                    Placement::Hashed => (rank - 1).wrapping_mul(0x61c8_8646_80b5_83eb) % blocks,
                };
                let off = block * BLOCK;
                *region_writes.entry(block / region_blocks).or_default() += 1;
                written.push(block);
                let mut counted = false;
                let token = loop {
                    match w.begin(off, BLOCK).unwrap() {
                        Admission::Go(token) => break token,
                        Admission::Wait(ticket) => {
                            if !counted {
                                waited += 1;
                                counted = true;
                            }
                            // The device completes what is in flight meanwhile.
                            while let Some((tk, o)) = queue.pop_front() {
                                w.complete(tk, o, BLOCK).unwrap();
                            }
                            w.wait(ticket).unwrap();
                        }
                    }
                };
                queue.push_back((token, off));
                if queue.len() >= in_flight {
                    let (tk, o) = queue.pop_front().unwrap();
                    w.complete(tk, o, BLOCK).unwrap();
                }
            }
            while let Some((tk, o)) = queue.pop_front() {
                w.complete(tk, o, BLOCK).unwrap();
            }
            (waited, region_writes, written)
        }));
    }
    let mut waited = 0;
    let mut region_writes: HashMap<u64, u64> = HashMap::new();
    let mut written = Vec::new();
    for h in handles {
        let (w, r, b) = h.join().unwrap();
        waited += w;
        for (k, v) in r {
            *region_writes.entry(k).or_default() += v;
        }
        written.extend(b);
    }
    let elapsed = start.elapsed();
    let stats = pt.activity_stats().unwrap();
    let total = per_thread * threads;
    // The least any log of this many regions could make wait: one miss per region outside
    // the busiest `active_regions` ones, per write there, as if the cache knew the future.
    let mut counts: Vec<u64> = region_writes.values().copied().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let floor: u64 = counts.iter().skip(al.active_regions as usize).sum();
    written.sort_unstable();
    written.dedup();
    // A crash: recover and compare with the blocks written.
    drop(Arc::try_unwrap(pt).ok().expect("writers joined"));
    let (pt, outcome) = PersistentTracker::open(
        &path,
        config,
        PersistOptions::new(*b"activity-bench-2").activity_log(al),
    )
    .unwrap();
    let LoadOutcome::Recovered {
        dirty_blocks,
        log_blocks,
        ..
    } = outcome
    else {
        panic!("no recovery: {outcome:?}");
    };
    let excess = dirty_blocks.saturating_sub(written.len() as u64);
    println!(
        "skewed: zipf 1.2 over {} blocks of a 64 GiB disk, {} placement, {total} writes, 4 threads x {in_flight} in flight, log of {} x {} MiB ({:.2} GiB)",
        blocks,
        if placement == Placement::Ranked { "ranked (hot blocks together)" } else { "hashed (fio zipf:1.2)" },
        al.active_regions,
        al.region_size >> 20,
        al.bound() as f64 / (1u64 << 30) as f64,
    );
    println!(
        "  writes that waited        {waited} ({:.2} %); least possible for a log this size: {:.2} % ({} regions written)",
        100.0 * waited as f64 / total as f64,
        100.0 * floor as f64 / total as f64,
        counts.len()
    );
    println!(
        "  group commits (fsyncs)    {}: {} activations, {:.2} activations per fsync, {} evictions, {} state rewrites; {:.1} s",
        stats.group_commits,
        stats.activations,
        stats.activations as f64 / stats.group_commits.max(1) as f64,
        stats.evictions,
        stats.state_writes,
        elapsed.as_secs_f64()
    );
    println!(
        "  after a crash             {} dirty blocks = {} written + {excess} excess; bound {} blocks ({} from the active regions)",
        dirty_blocks,
        written.len(),
        al.bound() / BLOCK,
        log_blocks
    );
    assert!(excess <= al.bound() / BLOCK, "the excess passed the bound");
    drop(pt);
}
