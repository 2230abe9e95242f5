//! The tracker main job: a realistic multi-threaded write workload through one tracker, with a
//! replication thread taking, reading and committing checkpoints, then a report of what it
//! measured.
//!
//! ```text
//! cargo run --release --example track [-- --seconds N --threads N --disk-gib N --granularity BYTES --iops N]
//! ```
//!
//! By default the writers run flat out, so the report shows the tracker's ceiling; `--iops N`
//! paces them to N writes per second in total, like a real device. Writers issue skewed random writes (80 % of them into a hot 10 % of the disk, 30 % rewrites of
//! a recent write), sized 4 KiB to 256 KiB, plus occasional discards. The replication thread takes
//! a checkpoint every 200 ms, reads every extent through the cursor, and commits it (one in ten
//! is aborted, as if shipping failed, and must reappear in the next checkpoint). At the end the
//! example checks that every block written was seen in some checkpoint.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use blockdelta::{Extent, Tracker, TrackerConfig};

#[derive(Clone, Copy)]
struct Args {
    seconds: f64,
    threads: usize,
    disk: u64,
    granularity: u32,
    iops: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        seconds: 5.0,
        threads: 4,
        disk: 256 << 30,
        granularity: 64 << 10,
        iops: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "--seconds" => {
                a.seconds = val("--seconds")?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?
            }
            "--threads" => {
                a.threads = val("--threads")?
                    .parse()
                    .map_err(|e| format!("--threads: {e}"))?
            }
            "--disk-gib" => {
                a.disk = val("--disk-gib")?
                    .parse::<u64>()
                    .map_err(|e| format!("--disk-gib: {e}"))?
                    << 30
            }
            "--granularity" => {
                a.granularity = val("--granularity")?
                    .parse()
                    .map_err(|e| format!("--granularity: {e}"))?
            }
            "--iops" => a.iops = val("--iops")?.parse().map_err(|e| format!("--iops: {e}"))?,
            "-h" | "--help" => {
                println!(
                    "usage: track [--seconds N] [--threads N] [--disk-gib N] [--granularity BYTES]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if a.threads == 0 || a.seconds <= 0.0 || a.disk == 0 {
        return Err("--threads, --seconds and --disk-gib must be positive".into());
    }
    Ok(a)
}

/// splitmix64: small, fast, deterministic per thread.
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

fn human(bytes: f64) -> String {
    const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", U[i])
}

/// A shadow map of written blocks, to check at the end that none was missed.
struct Shadow {
    shift: u32,
    written: Vec<AtomicU64>,
    seen: Vec<AtomicU64>,
}

impl Shadow {
    fn new(disk: u64, granularity: u32) -> Self {
        let words = (disk / u64::from(granularity)).div_ceil(64) as usize;
        Shadow {
            shift: granularity.trailing_zeros(),
            written: (0..words).map(|_| AtomicU64::new(0)).collect(),
            seen: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }
    fn set(map: &[AtomicU64], shift: u32, e: Extent) {
        for b in e.offset >> shift..=(e.offset + e.len - 1) >> shift {
            map[(b >> 6) as usize].fetch_or(1 << (b & 63), Ordering::Relaxed);
        }
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("track: {e}");
            std::process::exit(2);
        }
    };
    let config = TrackerConfig::new(args.disk)
        .granularity(args.granularity)
        .start_clean(true);
    let tracker = match Tracker::new(config) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            eprintln!("track: {e}");
            std::process::exit(2);
        }
    };
    let g = tracker.geometry();
    println!(
        "blockdelta {}: tracking a {} disk at {} granularity with {} writer threads for {:.1} s",
        blockdelta::VERSION,
        human(g.disk_size as f64),
        human(f64::from(g.block_size)),
        args.threads,
        args.seconds
    );
    println!("tracker memory: {}", human(tracker.memory_usage() as f64));

    let shadow = Arc::new(Shadow::new(args.disk, args.granularity));
    let stop = Arc::new(AtomicBool::new(false));
    let hot = args.disk / 10;
    let started = Instant::now();

    let writers: Vec<_> = (0..args.threads)
        .map(|i| {
            let (t, shadow, stop) = (tracker.clone(), shadow.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0xB10C_0000 + i as u64);
                let mut recent = [0u64; 64];
                let mut n = 0u64;
                let per_thread = args.iops as f64 / args.threads as f64;
                let t0 = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if per_thread > 0.0 {
                        let due = Duration::from_secs_f64(n as f64 / per_thread);
                        if let Some(ahead) = due.checked_sub(t0.elapsed()) {
                            std::thread::sleep(ahead);
                        }
                    }
                    // Check the clock rarely; the loop itself is the workload.
                    for _ in 0..256 {
                        let r = rng.next();
                        let len = 4096 << (r % 7); // 4 KiB .. 256 KiB
                        let offset = if r % 10 < 3 && n > 64 {
                            recent[(r >> 8) as usize % 64]
                        } else if r % 10 < 8 {
                            (rng.next() % ((hot - len) / 4096)) * 4096
                        } else {
                            (rng.next() % ((args.disk - len) / 4096)) * 4096
                        };
                        let offset = offset.min(args.disk - len);
                        recent[n as usize % 64] = offset;
                        let e = Extent::new(offset, len);
                        if r % 97 == 0 {
                            t.mark_discard(offset, len).expect("in range");
                        } else {
                            t.mark_write(offset, len).expect("in range");
                        }
                        // Sampled shadow bookkeeping (1 in 16) keeps the check cheap.
                        if n % 16 == 0 {
                            Shadow::set(&shadow.written, shadow.shift, e);
                        }
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();

    let mut out = vec![Extent::default(); 4096];
    let mut checkpoints = 0u64;
    let mut aborted = 0u64;
    let mut extents_total = 0u64;
    let mut distinct_total = 0u64;
    let mut take_time = Duration::ZERO;
    let deadline = started + Duration::from_secs_f64(args.seconds);
    let mut last_report = Instant::now();
    let consume =
        |out: &mut Vec<Extent>, record: bool| -> (blockdelta::CheckpointInfo, u64, Duration) {
            let t0 = Instant::now();
            let info = tracker.take().expect("no checkpoint pending");
            let mut cursor = info.cursor();
            let mut n = 0;
            loop {
                let k = tracker
                    .extents(&mut cursor, out)
                    .expect("cursor of the taken checkpoint");
                if k == 0 {
                    break;
                }
                n += k as u64;
                if record {
                    for &e in &out[..k] {
                        Shadow::set(&shadow.seen, shadow.shift, e);
                    }
                }
            }
            (info, n, t0.elapsed())
        };
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let abort = checkpoints % 10 == 9;
        let (info, n, dt) = consume(&mut out, !abort);
        take_time += dt;
        assert_eq!(n, info.extent_count);
        if abort {
            tracker
                .abort(info.sequence)
                .expect("abort the taken checkpoint");
            aborted += 1;
        } else {
            tracker
                .commit(info.generation, info.sequence)
                .expect("commit the taken checkpoint");
            extents_total += n;
            distinct_total += info.dirty_bytes;
        }
        checkpoints += 1;
        if last_report.elapsed() >= Duration::from_secs(1) {
            let s = tracker.stats();
            println!(
                "  t={:5.1}s  checkpoint {:4}  {:7} extents  {:>10} distinct  {:>8.0} k writes/s marked",
                started.elapsed().as_secs_f64(),
                info.sequence,
                n,
                human(info.dirty_bytes as f64),
                s.writes as f64 / started.elapsed().as_secs_f64() / 1e3
            );
            last_report = Instant::now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let churn = tracker.stats().last_interval;
    let writes: u64 = writers.into_iter().map(|h| h.join().unwrap()).sum();
    let elapsed = started.elapsed().as_secs_f64();
    // Final checkpoint: whatever was marked after the last one.
    let (info, n, _) = consume(&mut out, true);
    tracker.commit(info.generation, info.sequence).unwrap();
    extents_total += n;
    distinct_total += info.dirty_bytes;
    checkpoints += 1;

    let missed: u64 = shadow
        .written
        .iter()
        .zip(shadow.seen.iter())
        .map(|(w, s)| {
            u64::from((w.load(Ordering::Relaxed) & !s.load(Ordering::Relaxed)).count_ones())
        })
        .sum();

    let s = tracker.stats();
    println!();
    println!("summary");
    println!(
        "  writes marked         {writes} ({:.1} M writes/s over {elapsed:.1} s, {} threads)",
        writes as f64 / elapsed / 1e6,
        args.threads
    );
    println!(
        "  bytes marked          {} ({}/s)",
        human((s.bytes_written + s.bytes_discarded) as f64),
        human((s.bytes_written + s.bytes_discarded) as f64 / elapsed)
    );
    println!("  discards              {}", s.discards);
    println!("  blocks dirtied        {}", s.blocks_dirtied);
    println!("  checkpoints           {checkpoints} ({aborted} aborted and re-shipped)");
    println!(
        "  dirty extents         {extents_total} shipped, {:.0} per checkpoint",
        extents_total as f64 / (checkpoints - aborted) as f64
    );
    println!(
        "  distinct bytes        {} shipped, {} per checkpoint",
        human(distinct_total as f64),
        human(distinct_total as f64 / (checkpoints - aborted) as f64)
    );
    println!(
        "  churn (last interval) {}/s marked, {}/s distinct over {:.0} ms",
        human(churn.marked_bytes_per_sec()),
        human(churn.distinct_bytes_per_sec()),
        churn.duration.as_secs_f64() * 1e3
    );
    println!(
        "  take + read           {:.2} ms per checkpoint",
        take_time.as_secs_f64() * 1e3 / (checkpoints - 1) as f64
    );
    println!(
        "  tracker memory        {}",
        human(tracker.memory_usage() as f64)
    );
    println!("  sampled writes missed {missed} (must be 0)");
    println!();
    println!("tracker memory per TiB of capacity:");
    for shift in [9u32, 12, 16, 20] {
        println!(
            "  {:>9} granularity  {:>10}",
            human(f64::from(1u32 << shift)),
            human(Tracker::memory_for(1 << 40, 1 << shift) as f64)
        );
    }
    if missed != 0 {
        eprintln!("track: {missed} written blocks never appeared in a checkpoint");
        std::process::exit(1);
    }
}
