//! The replica store's targets, measured side by side (`cargo bench --bench replica`; the
//! README's "Replica store performance" section). Not criterion: every target is a ratio of two
//! things that are measured alternately, round after round, in one run, so that load from other
//! processes hits both sides alike. Each figure is the median of the rounds with the lowest and
//! highest round.
//!
//! 1. `incremental`: a 1 GiB image of real data (the files under /usr/bin, /usr/lib and
//!    /usr/share, built at bench time and cached under the target directory, never committed);
//!    each round rewrites 1 % of its 4 KiB blocks at random with other real data (the next
//!    64 MiB of the same walk). A tracker with the default settings (64 KiB) and one at 4 KiB
//!    mark them; timed from `take` until the new point is durable and listed (encode lz4 +
//!    AES-256-GCM by `ParallelEncoder` on every core, straight into `Store::ingest`,
//!    `finish`), against `rsync -I --inplace --no-whole-file` bringing a copy of the previous
//!    image up to date.
//! 2. `ingest`: a full encrypted lz4 stream of 256 MiB of the image into a new store, against a
//!    sequential write + fsync of a file of the stream's size (and of the pack's size).
//! 3. `read`: 1 MiB sequential and 4 KiB random `read_at` of a point against `pread` of a
//!    plain file with the same content, page cache warm for both.
//! 4. `points`: a store of 17,280 small points (a day at one per 5 s) against one of 10,
//!    each measured in a fresh process: open, list, random 4 KiB reads of the newest and the
//!    oldest point, VmRSS after open. Both stores are built once and cached.
//! 5. `expiry`: bytes written by retention (layer folds, manifest, compaction) per point
//!    expired and per 4 KiB block ingested, counted by a storage wrapper.
//!
//! Arguments: any of the section names to run only those (all by default).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[path = "common/real_data.rs"]
mod real_data;
use real_data::{mmm, ratio, show, Rng, IMAGE, POOL};

use blockdelta::replica::{
    now_ns, DirStorage, ManifestVersion, PointId, Retention, Storage, Store, StoreConfig, Upload,
};
use blockdelta::stream::{encode_to_vec, FileSource};
use blockdelta::{
    EncoderConfig, Extent, GenerationId, ParallelEncoder, Secret, Tracker, TrackerConfig,
};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const TIB: u64 = 1 << 40;
const BLOCK: u64 = 4096;
const SECRET: &[u8] = b"replica bench secret, 16+ bytes";
const DISK_ID: [u8; 16] = *b"replica-bench-01";

fn cache_dir() -> PathBuf {
    real_data::cache_dir("replica-bench")
}

fn image_and_pool() -> (PathBuf, Vec<u8>) {
    real_data::image_and_pool(&cache_dir())
}

fn secret() -> Option<Secret> {
    Some(Secret::new(SECRET).unwrap())
}

// ---- real data ---------------------------------------------------------------------------------

fn copy_file(from: &Path, to: &Path) {
    let _ = fs::remove_file(to);
    fs::copy(from, to).unwrap();
}

// ---- shipping a checkpoint -----------------------------------------------------------------------

/// Takes a checkpoint of `tracker`, encodes it (lz4 + AES-256-GCM) from `disk` frame by frame
/// straight into an ingest of `store`, finishes (durable and listed), commits the tracker.
/// Returns the stream's bytes.
fn ship(tracker: &Tracker, store: &Store, disk: &File, disk_size: u64) -> u64 {
    let cp = tracker.take().unwrap();
    let mut cfg = EncoderConfig::new(
        DISK_ID,
        cp.generation,
        cp.from_sequence,
        cp.sequence,
        disk_size,
    );
    cfg.block_size = cp.block_size;
    cfg.secret = secret();
    // Every core encodes (ParallelEncoder: the same bytes as Encoder).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut enc = ParallelEncoder::new(cfg, threads).unwrap();
    let mut frame = vec![0u8; enc.max_frame_len()];
    let mut source = FileSource::new(disk.try_clone().unwrap());
    let mut ing = store.ingest(secret()).unwrap();
    let mut bytes = 0u64;
    let n = enc.write_header(&mut frame).unwrap();
    ing.push(&frame[..n]).unwrap();
    bytes += n as u64;
    let mut cursor = cp.cursor();
    let mut ext = vec![Extent::new(0, 0); 64 * 1024];
    loop {
        let k = tracker.extents(&mut cursor, &mut ext).unwrap();
        if k == 0 {
            break;
        }
        enc.set_extents(&ext[..k]).unwrap();
        while let Some(frames) = enc.next_frames(&mut source).unwrap() {
            ing.push(frames).unwrap();
            bytes += frames.len() as u64;
        }
    }
    let n = enc.finish(&mut frame).unwrap();
    ing.push(&frame[..n]).unwrap();
    bytes += n as u64;
    let done = ing.finish().unwrap();
    tracker
        .commit(cp.generation, done.point.id.sequence)
        .unwrap();
    bytes
}

fn rsync(src: &Path, dst: &Path) -> u64 {
    let out = Command::new("rsync")
        .args(["-I", "--inplace", "--no-whole-file", "--stats"])
        .arg(src)
        .arg(dst)
        .output()
        .expect("rsync (apt-get install rsync)");
    assert!(out.status.success(), "rsync failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("Total bytes sent:"))
        .expect("rsync --stats output");
    line["Total bytes sent:".len()..]
        .trim()
        .replace(',', "")
        .parse()
        .unwrap()
}

// ---- 1. incremental ------------------------------------------------------------------------------

struct Incremental {
    disk: PathBuf,
    store64: Store,
}

fn incremental(rounds: usize) -> Incremental {
    println!("\n## 1. incremental: 1 GiB real-data image, 1 % of its 4 KiB blocks rewritten");
    let (img, pool) = image_and_pool();
    let dir = cache_dir().join("incremental");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let disk = dir.join("disk.img");
    let copy = dir.join("rsync-replica.img");
    copy_file(&img, &disk);
    copy_file(&img, &copy);
    let df = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&disk)
        .unwrap();
    // The library's default settings (4 KiB for this disk) against 64 KiB, the default of 0.2.
    let t64 = Tracker::new(TrackerConfig::new(IMAGE).granularity(64 << 10)).unwrap();
    let t4 = Tracker::new(TrackerConfig::new(IMAGE)).unwrap();
    assert_eq!(
        t4.block_size(),
        4096,
        "the default granularity of a 1 GiB disk"
    );
    println!(
        "tracker granularity: default {} B, other {} B; memory per TiB: 64 KiB {:.2} MiB, 4 KiB {:.2} MiB",
        t4.block_size(),
        t64.block_size(),
        Tracker::memory_for(TIB, t64.block_size()) as f64 / MIB as f64,
        Tracker::memory_for(TIB, 4096) as f64 / MIB as f64
    );
    let s64 = Store::create(dir.join("store-64k"), StoreConfig::new(DISK_ID)).unwrap();
    let s4 = Store::create(dir.join("store-4k"), StoreConfig::new(DISK_ID)).unwrap();
    // The first checkpoint of a new tracker is the whole disk: the stores' base points.
    for (t, s) in [(&t64, &s64), (&t4, &s4)] {
        let t0 = Instant::now();
        let b = ship(t, s, &df, IMAGE);
        println!(
            "base point ({} B granularity): {:.2} s, stream {} MiB",
            t.block_size(),
            t0.elapsed().as_secs_f64(),
            b / MIB
        );
    }
    let blocks = IMAGE / BLOCK;
    let changed = blocks / 100;
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let (mut tm64, mut tm4, mut trs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut b64, mut b4, mut brs) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        // 1 % of the blocks, distinct, each rewritten with a block of the pool.
        let mut picked = std::collections::HashSet::new();
        while (picked.len() as u64) < changed {
            picked.insert(rng.below(blocks));
        }
        for &b in &picked {
            let p = rng.below(POOL / BLOCK) * BLOCK;
            df.write_all_at(&pool[p as usize..(p + BLOCK) as usize], b * BLOCK)
                .unwrap();
            t64.mark_write(b * BLOCK, BLOCK).unwrap();
            t4.mark_write(b * BLOCK, BLOCK).unwrap();
        }
        for k in 0..3 {
            match (round + k) % 3 {
                0 => {
                    let t = Instant::now();
                    b64.push(ship(&t64, &s64, &df, IMAGE) as f64);
                    tm64.push(t.elapsed().as_secs_f64());
                }
                1 => {
                    let t = Instant::now();
                    b4.push(ship(&t4, &s4, &df, IMAGE) as f64);
                    tm4.push(t.elapsed().as_secs_f64());
                }
                _ => {
                    let t = Instant::now();
                    brs.push(rsync(&disk, &copy) as f64);
                    trs.push(t.elapsed().as_secs_f64());
                }
            }
        }
        eprintln!(
            "  round {round}: 64 KiB {:.3} s {} B, 4 KiB {:.3} s {} B, rsync {:.3} s {} B",
            tm64[round], b64[round], tm4[round], b4[round], trs[round], brs[round]
        );
    }
    let rt = |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x / y).collect() };
    println!("{changed} blocks of 4 KiB changed per round, {rounds} rounds");
    println!("| subject | time s | bytes sent MB | rsync time / ours | our bytes / rsync's |");
    println!(
        "| rsync -I --inplace --no-whole-file | {} | {} | | |",
        show(&trs, "", 1.0),
        show(&brs, "", 1e-6)
    );
    for (name, t, b) in [
        (
            "blockdelta, tracker at 64 KiB (the 0.2 default)",
            &tm64,
            &b64,
        ),
        ("blockdelta, default tracker (4 KiB)", &tm4, &b4),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} |",
            show(t, "", 1.0),
            show(b, "", 1e-6),
            ratio(&rt(&trs, t)),
            ratio(&rt(b, &brs))
        );
    }
    drop(s4);
    Incremental { disk, store64: s64 }
}

// ---- 2. ingest throughput ------------------------------------------------------------------------

fn write_fsync(path: &Path, data: &[u8], len: u64) {
    let mut f = File::create(path).unwrap();
    let mut left = len;
    while left > 0 {
        let n = left.min(data.len() as u64) as usize;
        f.write_all(&data[..n]).unwrap();
        left -= n as u64;
    }
    f.sync_all().unwrap();
}

fn ingest_throughput(rounds: usize) {
    println!("\n## 2. ingest: a full lz4 + AES-256-GCM stream of 256 MiB of the image");
    let (img, _) = image_and_pool();
    let size = 256 * MIB;
    let mut disk = vec![0u8; size as usize];
    File::open(&img)
        .unwrap()
        .read_exact_at(&mut disk, 0)
        .unwrap();
    let mut cfg = EncoderConfig::new(DISK_ID, GenerationId::random(), 0, 1, size);
    cfg.secret = secret();
    let stream = encode_to_vec(cfg, &[Extent::new(0, size)], &mut disk.clone()).unwrap();
    drop(disk);
    let dir = cache_dir().join("ingest");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let (mut ti, mut tw, mut tp, mut tc) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut pack = 0u64;
    for round in 0..rounds {
        for k in 0..3 {
            match (round + k) % 3 {
                0 => {
                    let sd = dir.join("store");
                    // Creating the store is a one-time cost, not ingest: timed apart.
                    let t = Instant::now();
                    let s = Store::create(&sd, StoreConfig::new(DISK_ID)).unwrap();
                    tc.push(t.elapsed().as_secs_f64());
                    let t = Instant::now();
                    let mut ing = s.ingest(secret()).unwrap();
                    for c in stream.chunks(MIB as usize) {
                        ing.push(c).unwrap();
                    }
                    let done = ing.finish().unwrap();
                    ti.push(t.elapsed().as_secs_f64());
                    pack = done.point.stored_bytes;
                    drop(s);
                    fs::remove_dir_all(&sd).unwrap();
                }
                1 => {
                    let p = dir.join("plain");
                    let t = Instant::now();
                    write_fsync(&p, &stream, stream.len() as u64);
                    tw.push(t.elapsed().as_secs_f64());
                    fs::remove_file(&p).unwrap();
                }
                _ => {
                    let p = dir.join("plain-pack-size");
                    let t = Instant::now();
                    write_fsync(&p, &stream, pack.max(stream.len() as u64));
                    tp.push(t.elapsed().as_secs_f64());
                    fs::remove_file(&p).unwrap();
                }
            }
        }
    }
    let sb = stream.len() as f64;
    let mbs = |t: &[f64], b: f64| -> Vec<f64> { t.iter().map(|t| b / t / 1e6).collect() };
    println!(
        "stream {:.1} MB, pack (the store writes raw 4 KiB-aligned data) {:.1} MB, {rounds} rounds",
        sb / 1e6,
        pack as f64 / 1e6
    );
    println!(
        "| ingest (push, finish: durable and listed) | {} s | {} MB/s of stream |",
        show(&ti, "", 1.0),
        show(&mbs(&ti, sb), "", 1.0)
    );
    println!(
        "| (creating the store, before) | {} s | |",
        show(&tc, "", 1.0)
    );
    println!(
        "| write + fsync, stream's size | {} s | {} MB/s |",
        show(&tw, "", 1.0),
        show(&mbs(&tw, sb), "", 1.0)
    );
    println!(
        "| write + fsync, pack's size | {} s | {} MB/s |",
        show(&tp, "", 1.0),
        show(&mbs(&tp, pack as f64), "", 1.0)
    );
    let r: Vec<f64> = ti.iter().zip(&tw).map(|(i, w)| w / i).collect();
    let r2: Vec<f64> = ti.iter().zip(&tp).map(|(i, w)| w / i).collect();
    println!(
        "ingest throughput / write throughput (same bytes): {}",
        ratio(&r)
    );
    println!(
        "ingest throughput / write of the pack's bytes: {}",
        ratio(&r2)
    );
}

// ---- 3. reads ------------------------------------------------------------------------------------

fn reads(inc: &Incremental, rounds: usize) {
    println!("\n## 3. reads of the newest point (1 GiB) against pread of the same image");
    let s = &inc.store64;
    let p = s.newest().unwrap().id;
    let f = File::open(&inc.disk).unwrap();
    let mut a = vec![0u8; MIB as usize];
    let mut b = vec![0u8; MIB as usize];
    // Warm both, and check that they hold the same bytes.
    for off in (0..IMAGE).step_by(MIB as usize) {
        s.read_at(p, off, &mut a).unwrap();
        f.read_exact_at(&mut b, off).unwrap();
        assert!(a == b, "point differs from the image at {off}");
    }
    let (mut ts, mut tf) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for k in 0..2 {
            let t = Instant::now();
            for off in (0..IMAGE).step_by(MIB as usize) {
                if (round + k) % 2 == 0 {
                    s.read_at(p, off, &mut a).unwrap();
                } else {
                    f.read_exact_at(&mut b, off).unwrap();
                }
            }
            let e = t.elapsed().as_secs_f64();
            if (round + k) % 2 == 0 {
                &mut ts
            } else {
                &mut tf
            }
            .push(e);
        }
    }
    let r: Vec<f64> = ts.iter().zip(&tf).map(|(s, f)| s / f).collect();
    let gbs = |t: &[f64]| -> Vec<f64> { t.iter().map(|t| IMAGE as f64 / t / 1e9).collect() };
    println!(
        "sequential 1 MiB: read_at {} GB/s, pread {} GB/s, time ratio read_at/pread {}",
        show(&gbs(&ts), "", 1.0),
        show(&gbs(&tf), "", 1.0),
        ratio(&r)
    );
    const N: usize = 20_000;
    let mut rng = Rng(0xABCD_EF01_2345_6789);
    let (mut rs, mut rf) = (Vec::new(), Vec::new());
    let mut a4 = [0u8; 4096];
    for round in 0..rounds * 2 + 1 {
        let offs: Vec<u64> = (0..N).map(|_| rng.below(IMAGE / BLOCK) * BLOCK).collect();
        for k in 0..2 {
            let t = Instant::now();
            for &o in &offs {
                if (round + k) % 2 == 0 {
                    s.read_at(p, o, &mut a4).unwrap();
                } else {
                    f.read_exact_at(&mut a4, o).unwrap();
                }
            }
            let e = t.elapsed().as_secs_f64() / N as f64;
            if (round + k) % 2 == 0 {
                &mut rs
            } else {
                &mut rf
            }
            .push(e);
        }
    }
    let r: Vec<f64> = rs.iter().zip(&rf).map(|(s, f)| s / f).collect();
    println!(
        "random 4 KiB: read_at {} µs, pread {} µs, time ratio {}",
        show(&rs, "", 1e6),
        show(&rf, "", 1e6),
        ratio(&r)
    );
}

// ---- 4. many points ------------------------------------------------------------------------------

const SMALL_DISK: u64 = 64 * MIB;
const BLOCKS_PER_POINT: u64 = 4;

/// A store of `n` points on a 64 MiB disk: a full first stream, then `n - 1` streams of
/// [`BLOCKS_PER_POINT`] random 4 KiB blocks of real data, each followed by `retain()` (no
/// policy: it expires nothing, and bundles the small packs as a master target's retention run
/// after each point does). Cached (the directory name carries the store's layout version).
fn many_store(n: u64) -> PathBuf {
    let dir = cache_dir().join(format!(
        "points-f{}-{n}",
        blockdelta::replica::STORE_FORMAT_MAJOR
    ));
    let done = dir.join("complete");
    if done.exists() {
        return dir.join("store");
    }
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let (img, pool) = image_and_pool();
    let mut disk = vec![0u8; SMALL_DISK as usize];
    File::open(&img)
        .unwrap()
        .read_exact_at(&mut disk, 0)
        .unwrap();
    let store = Store::create(dir.join("store"), StoreConfig::new(DISK_ID)).unwrap();
    let generation = GenerationId::random();
    let mut rng = Rng(0x1234_5678_9ABC_DEF1 ^ n);
    let t0 = Instant::now();
    for seq in 0..n {
        let extents: Vec<Extent> = if seq == 0 {
            vec![Extent::new(0, SMALL_DISK)]
        } else {
            let mut b: Vec<u64> = (0..BLOCKS_PER_POINT)
                .map(|_| rng.below(SMALL_DISK / BLOCK))
                .collect();
            b.sort_unstable();
            b.dedup();
            for &x in &b {
                let p = (rng.below(POOL / BLOCK) * BLOCK) as usize;
                disk[(x * BLOCK) as usize..((x + 1) * BLOCK) as usize]
                    .copy_from_slice(&pool[p..p + BLOCK as usize]);
            }
            b.iter().map(|&x| Extent::new(x * BLOCK, BLOCK)).collect()
        };
        let mut cfg = EncoderConfig::new(DISK_ID, generation, seq, seq + 1, SMALL_DISK);
        cfg.secret = secret();
        let stream = encode_to_vec(cfg, &extents, &mut disk).unwrap();
        let mut ing = store.ingest(secret()).unwrap();
        ing.push(&stream).unwrap();
        ing.finish().unwrap();
        store.retain(now_ns()).unwrap();
        if (seq + 1) % 1000 == 0 {
            eprintln!(
                "  building the {n}-point store: {} points, {:.0} s",
                seq + 1,
                t0.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "built the {n}-point store in {:.1} s ({:.2} ms per point)",
        t0.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64() * 1e3 / n as f64
    );
    File::create(&done).unwrap();
    dir.join("store")
}

fn vm_rss_kib() -> u64 {
    let s = fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

/// In a fresh process: open, list, reads; prints one `key=value` line.
fn child(store: &Path) {
    let rss0 = vm_rss_kib();
    let t = Instant::now();
    let s = Store::open(store).unwrap();
    let open = t.elapsed().as_secs_f64();
    let rss1 = vm_rss_kib();
    let mut list = Vec::new();
    let mut page = Vec::new();
    let mut n = 0;
    for _ in 0..11 {
        let t = Instant::now();
        n = std::hint::black_box(s.points()).len();
        list.push(t.elapsed().as_secs_f64());
        // A page takes about a microsecond: time 1,000 of them.
        let t = Instant::now();
        for _ in 0..1000 {
            let c = s.point_count();
            assert_eq!(std::hint::black_box(s.points_in(c - 10..c)).len(), 10);
        }
        page.push(t.elapsed().as_secs_f64() / 1000.0);
    }
    let pts = s.points();
    let newest = pts.last().unwrap().id;
    let oldest = pts[0].id;
    let mut rng = Rng(0x7777_1111_2222_3333);
    let mut buf = [0u8; 4096];
    let mut time_reads = |p: PointId| -> f64 {
        const N: usize = 20_000;
        let offs: Vec<u64> = (0..N)
            .map(|_| rng.below(SMALL_DISK / BLOCK) * BLOCK)
            .collect();
        for &o in &offs[..2000] {
            s.read_at(p, o, &mut buf).unwrap();
        }
        let t = Instant::now();
        for &o in &offs {
            s.read_at(p, o, &mut buf).unwrap();
        }
        t.elapsed().as_secs_f64() / N as f64
    };
    let rn = time_reads(newest);
    let ro = time_reads(oldest);
    let st = s.stats();
    println!(
        "points={n} open_s={open} rss_before_kib={rss0} rss_after_open_kib={rss1} list_s={} page_s={} read_newest_s={rn} read_oldest_s={ro} index_pieces={} bytes={} bundles={} packs={}",
        mmm(&list).0,
        mmm(&page).0,
        st.index_pieces,
        st.bytes,
        st.bundles,
        st.packs
    );
}

fn run_child(store: &Path) -> std::collections::HashMap<String, f64> {
    let out = Command::new(std::env::current_exe().unwrap())
        .arg("--replica-child")
        .arg(store)
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("points=")).unwrap();
    line.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn many_points(rounds: usize) {
    println!("\n## 4. a store of 17,280 points against one of 10 (64 MiB disk, 4 blocks a point)");
    let small = many_store(10);
    let big = many_store(17_280);
    let manifest = fs::metadata(big.join("MANIFEST"))
        .map(|m| m.len())
        .unwrap_or(0);
    let mut res: [Vec<std::collections::HashMap<String, f64>>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        for k in 0..2 {
            let which = (round + k) % 2;
            res[which].push(run_child(if which == 0 { &small } else { &big }));
        }
    }
    let col = |w: usize, key: &str| -> Vec<f64> { res[w].iter().map(|m| m[key]).collect() };
    let rt = |key: &str| -> Vec<f64> {
        col(1, key)
            .iter()
            .zip(col(0, key))
            .map(|(b, s)| b / s)
            .collect()
    };
    println!(
        "{rounds} rounds, each store opened in a fresh process; manifest of the big store: {:.2} MB; index pieces {} vs {}",
        manifest as f64 / 1e6,
        col(1, "index_pieces")[0],
        col(0, "index_pieces")[0]
    );
    println!(
        "packs {} in {} bundles vs packs {} in {} bundles",
        col(1, "packs")[0],
        col(1, "bundles")[0],
        col(0, "packs")[0],
        col(0, "bundles")[0]
    );
    println!("| measure | 10 points | 17,280 points | ratio |");
    for (name, key, scale, unit) in [
        ("open", "open_s", 1e3, "ms"),
        ("list every point", "list_s", 1e3, "ms"),
        ("list the newest 10 points", "page_s", 1e6, "µs"),
        ("read_at 4 KiB, newest point", "read_newest_s", 1e6, "µs"),
        ("read_at 4 KiB, oldest point", "read_oldest_s", 1e6, "µs"),
        (
            "VmRSS after open",
            "rss_after_open_kib",
            1.0 / 1024.0,
            "MiB",
        ),
    ] {
        println!(
            "| {name} | {} {unit} | {} {unit} | {} |",
            show(&col(0, key), "", scale),
            show(&col(1, key), "", scale),
            ratio(&rt(key))
        );
    }
    println!(
        "VmRSS before open: {} MiB",
        show(&col(1, "rss_before_kib"), "", 1.0 / 1024.0)
    );
}

// ---- 5. expiry cost ------------------------------------------------------------------------------

/// A [`DirStorage`] that counts every byte written (objects, uploads, manifests).
struct Counting {
    inner: DirStorage,
    written: Arc<AtomicU64>,
    /// Of `written`: manifests (checkpoints and log records), and layers.
    manifests: Arc<AtomicU64>,
    layers: Arc<AtomicU64>,
}

struct CountingUpload {
    inner: Box<dyn Upload>,
    written: Arc<AtomicU64>,
}

impl Upload for CountingUpload {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.written.fetch_add(data.len() as u64, Ordering::Relaxed);
        self.inner.append(data)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn complete(self: Box<Self>) -> io::Result<()> {
        self.inner.complete()
    }
}

impl Storage for Counting {
    fn put(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.written.fetch_add(data.len() as u64, Ordering::Relaxed);
        // Manifest log records count as manifests; every other object put whole is a layer.
        let kind = match name.starts_with("log-") {
            true => &self.manifests,
            false => &self.layers,
        };
        kind.fetch_add(data.len() as u64, Ordering::Relaxed);
        self.inner.put(name, data)
    }
    fn get_range(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.get_range(name, offset, buf)
    }
    fn size(&self, name: &str) -> io::Result<u64> {
        self.inner.size(name)
    }
    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, name: &str) -> io::Result<()> {
        self.inner.delete(name)
    }
    fn delete_many(&self, names: &[String]) -> io::Result<()> {
        self.inner.delete_many(names)
    }
    fn upload(&self, name: &str) -> io::Result<Box<dyn Upload>> {
        Ok(Box::new(CountingUpload {
            inner: self.inner.upload(name)?,
            written: self.written.clone(),
        }))
    }
    fn resume_upload(&self, name: &str, len: u64) -> io::Result<Box<dyn Upload>> {
        Ok(Box::new(CountingUpload {
            inner: self.inner.resume_upload(name, len)?,
            written: self.written.clone(),
        }))
    }
    fn abort_upload(&self, name: &str) -> io::Result<()> {
        self.inner.abort_upload(name)
    }
    fn uploads(&self) -> io::Result<Vec<String>> {
        self.inner.uploads()
    }
    fn read_manifest(&self) -> io::Result<Option<(Vec<u8>, u64)>> {
        self.inner.read_manifest()
    }
    fn swap_manifest(&self, expected: ManifestVersion, data: &[u8]) -> io::Result<u64> {
        self.written.fetch_add(data.len() as u64, Ordering::Relaxed);
        self.manifests
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.inner.swap_manifest(expected, data)
    }
    fn lock_writer(&self) -> io::Result<Box<dyn Send + Sync>> {
        self.inner.lock_writer()
    }
}

fn expiry(window: u64) {
    println!(
        "\n## 5. expiry: keep the newest {window} points; {} more ingested, each followed by retain()",
        window
    );
    let (img, pool) = image_and_pool();
    let dir = cache_dir().join("expiry");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let manifests = Arc::new(AtomicU64::new(0));
    let layers = Arc::new(AtomicU64::new(0));
    let storage = Counting {
        inner: DirStorage::new(&dir).unwrap(),
        written: written.clone(),
        manifests: manifests.clone(),
        layers: layers.clone(),
    };
    let mut config = StoreConfig::new(DISK_ID);
    config.retention = Retention {
        max_points: Some(window),
        ..Retention::default()
    };
    let store = Store::create_in(Box::new(storage), "expiry".into(), config).unwrap();
    let mut disk = vec![0u8; SMALL_DISK as usize];
    File::open(&img)
        .unwrap()
        .read_exact_at(&mut disk, 0)
        .unwrap();
    let generation = GenerationId::random();
    let mut rng = Rng(0x0BAD_CAFE_1234_5678);
    // [all, manifests, layers]; packs are the rest.
    let (mut ingest, mut retain) = ([0u64; 3], [0u64; 3]);
    let (mut expired, mut blocks) = (0u64, 0u64);
    let mut retain_time = Vec::new();
    let total = 2 * window + 1;
    for seq in 0..total {
        let extents: Vec<Extent> = if seq == 0 {
            vec![Extent::new(0, SMALL_DISK)]
        } else {
            let mut b: Vec<u64> = (0..BLOCKS_PER_POINT)
                .map(|_| rng.below(SMALL_DISK / BLOCK))
                .collect();
            b.sort_unstable();
            b.dedup();
            for &x in &b {
                let p = (rng.below(POOL / BLOCK) * BLOCK) as usize;
                disk[(x * BLOCK) as usize..((x + 1) * BLOCK) as usize]
                    .copy_from_slice(&pool[p..p + BLOCK as usize]);
            }
            b.iter().map(|&x| Extent::new(x * BLOCK, BLOCK)).collect()
        };
        let mut cfg = EncoderConfig::new(DISK_ID, generation, seq, seq + 1, SMALL_DISK);
        cfg.secret = secret();
        let stream = encode_to_vec(cfg, &extents, &mut disk).unwrap();
        let snap = || [&written, &manifests, &layers].map(|c| c.load(Ordering::Relaxed));
        let w0 = snap();
        let mut ing = store.ingest(secret()).unwrap();
        ing.push(&stream).unwrap();
        ing.finish().unwrap();
        let w1 = snap();
        let t = Instant::now();
        let e = store.retain(u64::MAX / 2).unwrap();
        let dt = t.elapsed().as_secs_f64();
        let w2 = snap();
        // Steady state: the second window (the store is full, every ingest expires one point).
        if seq > window {
            for k in 0..3 {
                ingest[k] += w1[k] - w0[k];
                retain[k] += w2[k] - w1[k];
            }
            expired += e.len() as u64;
            blocks += extents.iter().map(|x| x.len / BLOCK).sum::<u64>();
            retain_time.push(dt);
        }
    }
    let st = store.stats();
    let (ingest_bytes, retain_bytes) = (ingest[0], retain[0]);
    for (name, c) in [("ingest", ingest), ("retain", retain)] {
        println!(
            "{name}: manifests {:.1} MB, layers {:.1} MB, packs {:.1} MB",
            c[1] as f64 / 1e6,
            c[2] as f64 / 1e6,
            (c[0] - c[1] - c[2]) as f64 / 1e6
        );
    }
    println!(
        "over the last {window} ingests: {blocks} blocks of 4 KiB ingested, {expired} points expired"
    );
    println!(
        "bytes written by ingest: {:.1} MB ({:.0} B per 4 KiB block); by retain (layer folds, manifest, compaction): {:.1} MB ({:.0} B per 4 KiB block ingested, {:.0} B per expired point, {:.2}x the ingest's bytes)",
        ingest_bytes as f64 / 1e6,
        ingest_bytes as f64 / blocks as f64,
        retain_bytes as f64 / 1e6,
        retain_bytes as f64 / blocks as f64,
        retain_bytes as f64 / expired.max(1) as f64,
        retain_bytes as f64 / ingest_bytes as f64
    );
    println!(
        "retain() time: {} ms; store at the end: {} points, {} packs, {:.1} MB ({:.1} MB dead data)",
        show(&retain_time, "", 1e3),
        st.points,
        st.packs,
        st.bytes as f64 / 1e6,
        st.dead_data_bytes as f64 / 1e6
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--replica-child") {
        child(Path::new(&args[i + 1]));
        return;
    }
    let names = ["incremental", "ingest", "read", "points", "expiry"];
    let chosen: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| args.iter().any(|a| a == n))
        .collect();
    let run = |n: &str| chosen.is_empty() || chosen.contains(&n);
    println!("{}", real_data::machine());
    let _ = KIB;
    if run("points") {
        many_points(7);
    }
    if run("expiry") {
        expiry(720);
    }
    if run("ingest") {
        ingest_throughput(9);
    }
    if run("incremental") || run("read") {
        let inc = incremental(if run("incremental") { 7 } else { 1 });
        if run("read") {
            reads(&inc, 5);
        }
    }
}
