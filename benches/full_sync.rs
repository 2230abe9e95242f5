//! Throughput targets of issue 11, measured side by side (`cargo bench --bench full_sync`; the
//! README's "Full sync, sparse sources, thin replicas" section). Not criterion: each target is
//! a ratio of runs made alternately, round after round, in one process, so that load from other
//! processes hits both sides alike; each figure is the median of the rounds with the lowest and
//! highest round.
//!
//! A sync here is what `replicate --source --replica` does without its verification pass:
//! `ParallelEncoder` reading a `FileSource` (lz4 + AES-256-GCM, or AES-256-GCM alone) straight
//! into `ParallelApplier` writing a new thin `FileTarget`, ending with its `fdatasync`; both
//! with the same thread count (one thread: the sequential encoder and applier's work).
//!
//! 1. `full`: the 1 GiB real-data image (the files under /usr, cached under the target
//!    directory), page cache warm, into a new file: every thread against one thread, and
//!    against `cp --sparse=always` (alone, and followed by `sync --data` on the copy, so that
//!    both sides end with their data durable), `dd bs=1M conv=fdatasync`.
//! 2. `sparse`: a 64 GiB sparse file holding the same 1 GiB of data (64 runs of 16 MiB, one
//!    per GiB) against the dense 1 GiB image; and how thin each replica is against its source.
//!    Also a 64 MiB export whose 4 KiB blocks are 49 % holes.
//! 3. `cold`: an incremental encode (1 % of the image's 4 KiB blocks rewritten at random with
//!    other real data) with the source's pages dropped (`posix_fadvise(DONTNEED)`) against the
//!    same encode with them cached; and cold without read-ahead (a source that ignores the
//!    hints), for what read-ahead buys. Beside them, the device's floor: the same blocks read
//!    with `O_DIRECT` by 64 threads at once (no page cache, as many reads in flight as the
//!    device takes), the least time any cold encode of them can take.
//!
//! Arguments: any of the section names to run only those (all by default).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use blockdelta::{
    BlockSource, Codec, DecoderConfig, EncoderConfig, Extent, FileSource, FileTarget, GenerationId,
    ParallelApplier, ParallelEncoder, Region, Secret,
};

#[path = "common/real_data.rs"]
mod real_data;
use real_data::{mmm, ratio, show, Rng, IMAGE};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const SECRET: &[u8] = b"full sync bench secret, 32 bytes";

fn dir() -> PathBuf {
    real_data::cache_dir("full-sync-bench")
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn allocated(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks() * 512
}

fn drop_pages(path: &Path) {
    let f = File::open(path).unwrap();
    // SAFETY: `posix_fadvise` reads only its integer arguments; `f` outlives the call.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

fn warm(path: &Path) {
    let f = File::open(path).unwrap();
    let mut buf = vec![0u8; 8 << 20];
    let mut off = 0;
    while let Ok(n) = f.read_at(&mut buf, off) {
        if n == 0 {
            break;
        }
        off += n as u64;
    }
}

fn new_replica(path: &Path, size: u64) -> File {
    let _ = fs::remove_file(path);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.set_len(size).unwrap();
    f
}

/// One full sync of `source` into a new `replica`; the time from opening to the target's
/// final sync.
fn sync(source: &Path, replica: &Path, threads: (usize, usize), codec: Codec) -> Duration {
    sync_apart(source, replica, threads, codec).1
}

/// [`sync`], with also the time until every data frame was applied (written to the page
/// cache, as `cp` leaves its copy), before the END frame and the target's `fdatasync`.
fn sync_apart(
    source: &Path,
    replica: &Path,
    threads: (usize, usize),
    codec: Codec,
) -> (Duration, Duration) {
    let (enc_threads, apply_threads) = threads;
    let size = fs::metadata(source).unwrap().len();
    let target = new_replica(replica, size);
    let t = Instant::now();
    let mut src = FileSource::new(File::open(source).unwrap());
    let mut cfg = EncoderConfig::new(*b"full-sync-bench!", GenerationId([1; 16]), 0, 1, size);
    cfg.compression = codec;
    cfg.secret = Some(Secret::new(SECRET).unwrap());
    let mut enc = ParallelEncoder::new(cfg, enc_threads).unwrap();
    let mut frame = vec![0u8; enc.max_frame_len()];
    let mut applier = ParallelApplier::new(
        DecoderConfig::new().with_secret(Secret::new(SECRET).unwrap()),
        FileTarget::new(target).unwrap(),
        apply_threads,
    );
    let n = enc.write_header(&mut frame).unwrap();
    applier.push(&frame[..n]).unwrap();
    enc.set_extents(&[Extent::new(0, size)]).unwrap();
    while let Some(frames) = enc.next_frames(&mut src).unwrap() {
        assert_eq!(applier.push(frames).unwrap(), frames.len());
    }
    let n = enc.finish(&mut frame).unwrap();
    applier.flush().unwrap();
    let written = t.elapsed();
    applier.push(&frame[..n]).unwrap();
    applier.finish().unwrap();
    (written, t.elapsed())
}

fn same(a: &Path, b: &Path) {
    let (fa, fb) = (File::open(a).unwrap(), File::open(b).unwrap());
    let len = fa.metadata().unwrap().len();
    assert_eq!(len, fb.metadata().unwrap().len());
    let (mut x, mut y) = (vec![0u8; 8 << 20], vec![0u8; 8 << 20]);
    let mut off = 0;
    while off < len {
        let n = (len - off).min(8 << 20) as usize;
        fa.read_exact_at(&mut x[..n], off).unwrap();
        fb.read_exact_at(&mut y[..n], off).unwrap();
        assert!(
            x[..n] == y[..n],
            "{} differs from {}",
            b.display(),
            a.display()
        );
        off += n as u64;
    }
}

fn command(args: &[&str]) -> Duration {
    let t = Instant::now();
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    t.elapsed()
}

fn full(rounds: usize) {
    let (img, _) = real_data::image_and_pool(&dir());
    let rep = dir().join("replica.img");
    let copy = dir().join("copy.img");
    warm(&img);
    let n = cores();
    let sides = [
        "lz4+gcm 1 thread",
        "lz4+gcm all threads",
        "gcm 1 thread",
        "gcm all threads",
        "cp --sparse=always",
        "cp + sync --data",
        "dd bs=1M conv=fdatasync",
        "lz4+gcm all threads, sequential applier",
        "gcm all threads, sequential applier",
        "lz4+gcm all threads, until written",
        "gcm all threads, until written",
    ];
    let mut t: Vec<Vec<f64>> = vec![Vec::new(); sides.len()];
    println!("full sync of the 1 GiB real-data image, {n} cores, {rounds} rounds");
    for round in 0..rounds {
        let mut r = vec![0f64; sides.len()];
        // Alternate the order of the sides from round to round.
        // The last two sides are times within the runs of sides 1 and 3.
        let mut order: Vec<usize> = (0..sides.len() - 2).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let copy_s = copy.to_str().unwrap();
            let img_s = img.to_str().unwrap();
            r[i] = match i {
                0 => sync(&img, &rep, (1, 1), Codec::Lz4),
                1 | 3 => {
                    let codec = if i == 1 { Codec::Lz4 } else { Codec::Raw };
                    let (written, durable) = sync_apart(&img, &rep, (n, n), codec);
                    r[if i == 1 { 9 } else { 10 }] = written.as_secs_f64();
                    durable
                }
                2 => sync(&img, &rep, (1, 1), Codec::Raw),
                7 => sync(&img, &rep, (n, 1), Codec::Lz4),
                8 => sync(&img, &rep, (n, 1), Codec::Raw),
                4 => {
                    let _ = fs::remove_file(&copy);
                    command(&["cp", "--sparse=always", img_s, copy_s])
                }
                5 => {
                    let _ = fs::remove_file(&copy);
                    command(&["cp", "--sparse=always", img_s, copy_s])
                        + command(&["sync", "--data", copy_s])
                }
                6 => {
                    let _ = fs::remove_file(&copy);
                    command(&[
                        "dd",
                        &format!("if={img_s}"),
                        &format!("of={copy_s}"),
                        "bs=1M",
                        "conv=fdatasync",
                        "status=none",
                    ])
                }
                _ => unreachable!(),
            }
            .as_secs_f64();
            if !(4..=6).contains(&i) {
                same(&img, &rep);
            }
        }
        println!(
            "  round {round}: {}",
            sides
                .iter()
                .zip(&r)
                .map(|(s, v)| format!("{s} {v:.2} s"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (k, v) in r.into_iter().enumerate() {
            t[k].push(v);
        }
    }
    let per =
        |a: usize, b: usize| -> Vec<f64> { t[b].iter().zip(&t[a]).map(|(x, y)| x / y).collect() };
    println!("| run | time s | MiB/s (median) |");
    println!("|---|---|---|");
    for (k, s) in sides.iter().enumerate() {
        let (m, _, _) = mmm(&t[k]);
        println!(
            "| {s} | {} | {:.0} |",
            show(&t[k], "", 1.0),
            IMAGE as f64 / MIB as f64 / m
        );
    }
    println!("| target | ratio (median, min..max of rounds) |");
    println!("|---|---|");
    // (label, subject, reference): the reference's time over the subject's.
    let targets = [
        ("lz4+gcm: all threads / one thread (throughput)", 1, 0),
        ("lz4+gcm all threads / cp --sparse=always", 1, 4),
        ("lz4+gcm all threads / cp + sync --data", 1, 5),
        ("lz4+gcm all threads / dd conv=fdatasync", 1, 6),
        ("gcm all threads / one thread", 3, 2),
        ("gcm all threads / cp --sparse=always", 3, 4),
        ("gcm all threads / cp + sync --data", 3, 5),
        (
            "lz4+gcm all threads until written / cp --sparse=always",
            9,
            4,
        ),
        ("gcm all threads until written / cp --sparse=always", 10, 4),
        ("lz4+gcm all threads, sequential applier / one thread", 7, 0),
        (
            "lz4+gcm all threads, sequential applier / cp --sparse=always",
            7,
            4,
        ),
        (
            "gcm all threads, sequential applier / cp --sparse=always",
            8,
            4,
        ),
    ];
    for (label, a, b) in targets {
        println!("| {label} | {} |", ratio(&per(a, b)));
    }
    let _ = fs::remove_file(&copy);
    let _ = fs::remove_file(&rep);
}

/// The 64 GiB sparse image: the 1 GiB image's data in 64 runs of 16 MiB, one per GiB.
fn sparse_image(img: &Path) -> PathBuf {
    let path = dir().join("sparse-64g.img");
    let size = 64 * GIB;
    if fs::metadata(&path)
        .map(|m| m.len() == size)
        .unwrap_or(false)
    {
        return path;
    }
    let src = File::open(img).unwrap();
    let f = new_replica(&path, size);
    let mut buf = vec![0u8; 16 * MIB as usize];
    for k in 0..64u64 {
        src.read_exact_at(&mut buf, k * 16 * MIB).unwrap();
        f.write_all_at(&buf, k * GIB).unwrap();
    }
    f.sync_all().unwrap();
    path
}

/// A 64 MiB export whose 4 KiB blocks are 49 % holes, the rest real data.
fn holey_export(img: &Path) -> PathBuf {
    let path = dir().join("holey-64m.img");
    let src = File::open(img).unwrap();
    let f = new_replica(&path, 64 * MIB);
    let mut r = Rng(0x49);
    let mut block = vec![0u8; 4096];
    for b in 0..(64 * MIB / 4096) {
        if r.below(100) >= 49 {
            src.read_exact_at(&mut block, b * 4096).unwrap();
            if block.iter().all(|&x| x == 0) {
                block[0] = 1;
            }
            f.write_all_at(&block, b * 4096).unwrap();
        }
    }
    f.sync_all().unwrap();
    path
}

fn sparse(rounds: usize) {
    let (img, _) = real_data::image_and_pool(&dir());
    let big = sparse_image(&img);
    let holey = holey_export(&img);
    let rep = dir().join("replica.img");
    let n = cores();
    warm(&img);
    warm_data(&big);
    println!(
        "64 GiB sparse image holding 1 GiB ({} allocated) against the dense 1 GiB image, {n} threads",
        human(allocated(&big))
    );
    let (mut dense, mut thin, mut rat) = (Vec::new(), Vec::new(), Vec::new());
    let mut allocs = Vec::new();
    for round in 0..rounds {
        let a = sync(&img, &rep, (n, n), Codec::Lz4).as_secs_f64();
        let dense_alloc = allocated(&rep);
        let b = sync(&big, &rep, (n, n), Codec::Lz4).as_secs_f64();
        let big_alloc = allocated(&rep);
        if round == 0 {
            same(&big, &rep);
        }
        println!(
            "  round {round}: dense {a:.2} s (replica {}), sparse {b:.2} s (replica {})",
            human(dense_alloc),
            human(big_alloc)
        );
        dense.push(a);
        thin.push(b);
        rat.push(b / a);
        allocs.push((dense_alloc, big_alloc));
    }
    println!("| run | time s |");
    println!("|---|---|");
    println!("| dense 1 GiB | {} |", show(&dense, "", 1.0));
    println!("| sparse 64 GiB holding 1 GiB | {} |", show(&thin, "", 1.0));
    println!("| sparse / dense time | {} |", ratio(&rat));
    let _ = fs::remove_file(&rep);
    let (da, ba) = allocs[0];
    println!("| image | replica allocated / source allocated |");
    println!("|---|---|");
    println!(
        "| dense 1 GiB image | {} / {} = {:.4}x |",
        human(da),
        human(allocated(&img)),
        da as f64 / allocated(&img) as f64
    );
    println!(
        "| sparse 64 GiB image | {} / {} = {:.4}x |",
        human(ba),
        human(allocated(&big)),
        ba as f64 / allocated(&big) as f64
    );
    sync(&holey, &rep, (n, n), Codec::Lz4);
    same(&holey, &rep);
    println!(
        "| 64 MiB export, 49 % of its 4 KiB blocks holes | {} / {} = {:.4}x |",
        human(allocated(&rep)),
        human(allocated(&holey)),
        allocated(&rep) as f64 / allocated(&holey) as f64
    );
    let _ = fs::remove_file(&rep);
}

fn warm_data(path: &Path) {
    let f = File::open(path).unwrap();
    let mut buf = vec![0u8; 16 * MIB as usize];
    for k in 0..64u64 {
        let _ = f.read_exact_at(&mut buf, k * GIB);
    }
}

fn human(b: u64) -> String {
    if b >= GIB {
        format!("{:.2} GiB", b as f64 / GIB as f64)
    } else {
        format!("{:.1} MiB", b as f64 / MIB as f64)
    }
}

/// A source that ignores read-ahead hints.
struct NoHints(FileSource);

impl BlockSource for NoHints {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.read_at(offset, buf)
    }
    fn region(&mut self, offset: u64, end: u64) -> io::Result<Region> {
        self.0.region(offset, end)
    }
}

/// Threads of the device-floor read: enough to keep a virtio or NVMe queue full.
const FLOOR_THREADS: usize = 64;

/// The device's floor for reading `extents` of `path` cold: every extent read with `O_DIRECT`
/// (bypassing the page cache) by [`FLOOR_THREADS`] threads taking extents in turn, so that as
/// many reads are in flight as the device takes. The time.
fn device_floor(path: &Path, extents: &[Extent]) -> Duration {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .unwrap();
    let longest = extents.iter().map(|e| e.len).max().unwrap_or(0) as usize;
    let next = AtomicUsize::new(0);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..FLOOR_THREADS {
            s.spawn(|| {
                // O_DIRECT needs a buffer aligned to the logical block size: 4 KiB covers it.
                let mut raw = vec![0u8; longest + 4096];
                let skip = raw.as_ptr().align_offset(4096);
                let buf = &mut raw[skip..skip + longest];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(e) = extents.get(i) else { break };
                    f.read_exact_at(&mut buf[..e.len as usize], e.offset)
                        .unwrap();
                }
            });
        }
    });
    t.elapsed()
}

/// Encodes `extents` of `source` (frames dropped); the time.
fn encode(source: &mut dyn BlockSource, extents: &[Extent], threads: usize) -> Duration {
    let t = Instant::now();
    let mut cfg = EncoderConfig::new(*b"full-sync-bench!", GenerationId([1; 16]), 1, 2, IMAGE);
    cfg.secret = Some(Secret::new(SECRET).unwrap());
    let mut enc = ParallelEncoder::new(cfg, threads).unwrap();
    let mut frame = vec![0u8; enc.max_frame_len()];
    enc.write_header(&mut frame).unwrap();
    enc.set_extents(extents).unwrap();
    let mut bytes = 0usize;
    while let Some(f) = enc.next_frames(source).unwrap() {
        bytes += f.len();
    }
    enc.finish(&mut frame).unwrap();
    assert!(bytes > 0);
    t.elapsed()
}

fn cold(rounds: usize) {
    let (img, pool) = real_data::image_and_pool(&dir());
    let disk = dir().join("cold.img");
    if fs::metadata(&disk)
        .map(|m| m.len() != IMAGE)
        .unwrap_or(true)
    {
        fs::copy(&img, &disk).unwrap();
    }
    let n = cores();
    let blocks = IMAGE / 4096;
    let (mut warm_t, mut cold_t, mut nohint_t, mut rat, mut rat_nohint) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut floor_t, mut rat_floor, mut floor_warm) = (Vec::new(), Vec::new(), Vec::new());
    let f = OpenOptions::new().write(true).open(&disk).unwrap();
    let mut r = Rng(0xC01D);
    println!(
        "incremental encode, 1 % of the 1 GiB image's 4 KiB blocks rewritten, lz4 + AES-256-GCM, {n} threads"
    );
    for round in 0..rounds {
        let mut picked: Vec<u64> = (0..blocks / 100).map(|_| r.below(blocks)).collect();
        picked.sort_unstable();
        picked.dedup();
        for &b in &picked {
            let p = (r.below(pool.len() as u64 / 4096) * 4096) as usize;
            f.write_all_at(&pool[p..p + 4096], b * 4096).unwrap();
        }
        f.sync_all().unwrap();
        let mut extents: Vec<Extent> = Vec::new();
        for &b in &picked {
            match extents.last_mut() {
                Some(e) if e.offset + e.len == b * 4096 => e.len += 4096,
                _ => extents.push(Extent::new(b * 4096, 4096)),
            }
        }
        let open = || FileSource::new(File::open(&disk).unwrap());
        drop_pages(&disk);
        let c = encode(&mut open(), &extents, n).as_secs_f64();
        drop_pages(&disk);
        let nh = encode(&mut NoHints(open()), &extents, n).as_secs_f64();
        let fl = device_floor(&disk, &extents).as_secs_f64();
        let w = encode(&mut open(), &extents, n).as_secs_f64();
        println!(
            "  round {round}: {} extents, warm {:.1} ms, cold {:.1} ms, cold without read-ahead {:.1} ms, device floor {:.1} ms",
            extents.len(),
            w * 1e3,
            c * 1e3,
            nh * 1e3,
            fl * 1e3
        );
        floor_t.push(fl);
        rat_floor.push(c / fl);
        floor_warm.push(fl / w);
        warm_t.push(w);
        cold_t.push(c);
        nohint_t.push(nh);
        rat.push(c / w);
        rat_nohint.push(nh / w);
    }
    println!("| run | ms |");
    println!("|---|---|");
    println!("| warm | {} |", show(&warm_t, "", 1e3));
    println!("| cold, read-ahead | {} |", show(&cold_t, "", 1e3));
    println!("| cold, no read-ahead | {} |", show(&nohint_t, "", 1e3));
    println!(
        "| device floor ({FLOOR_THREADS} threads of O_DIRECT reads) | {} |",
        show(&floor_t, "", 1e3)
    );
    println!("| cold / warm | {} |", ratio(&rat));
    println!("| cold / device floor | {} |", ratio(&rat_floor));
    println!("| device floor / warm | {} |", ratio(&floor_warm));
    println!(
        "| cold without read-ahead / warm | {} |",
        ratio(&rat_nohint)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let names = ["full", "sparse", "cold"];
    let chosen: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| args.iter().any(|a| a == n))
        .collect();
    let run = |n: &str| chosen.is_empty() || chosen.contains(&n);
    let rounds = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    println!("{}", real_data::machine());
    if run("full") {
        full(rounds);
    }
    if run("sparse") {
        sparse(rounds);
    }
    if run("cold") {
        cold(rounds.max(5));
    }
}
