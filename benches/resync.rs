//! Checksum resync against rsync, measured side by side (`cargo bench --bench resync`). Not
//! criterion: the target is a ratio of two things measured alternately, round after round, in
//! one run, so that load from other processes hits both sides alike. Each figure is the median
//! of the rounds with the lowest and highest round.
//!
//! A 1 GiB image of real data (the files under /usr/bin, /usr/lib and /usr/share, built at
//! bench time and cached under the target directory, never committed) is the source; the
//! replica is a copy with 1 % of its 4 KiB blocks (chosen at random) replaced by other real
//! data (the next 64 MiB of the same walk). No map: each round
//!
//! - **resync**: hashes the replica and the source at the same time (two sides, each on all
//!   cores), puts the replica's list through its wire form, compares, encodes the differing
//!   blocks (lz4 + AES-256-GCM, frame by frame) straight into an `Applier` writing the replica
//!   file (`FileTarget`, synced at END);
//! - **rsync**: `rsync -I --inplace --no-whole-file --stats` from the source to a second copy of
//!   the replica (rsync does not fsync).
//!
//! Both replicas are then checked equal to the source (outside the timing) and re-diverged by
//! writing the same replaced blocks back. Reported: wall time, bytes (hash list + stream
//! against rsync's "Total bytes sent", and against sent + received), and their ratios.
//!
//! Arguments: the number of rounds (default 5).

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[path = "common/real_data.rs"]
mod real_data;
use real_data::{ratio, show, Rng, IMAGE, POOL};

use blockdelta::resync::{diff, HashConfig, HashList};
use blockdelta::{
    Applier, DecoderConfig, EncoderConfig, FileSource, FileTarget, GenerationId, Secret,
};

const BLOCK: u64 = 4096;
const SECRET: &[u8] = b"resync bench secret, 16+ bytes";
const DISK_ID: [u8; 16] = *b"resync-bench-001";

fn cache_dir() -> PathBuf {
    real_data::cache_dir("resync-bench")
}

/// The same real data as benches/replica.rs, so the two benches measure the same data.
fn image_and_pool() -> (PathBuf, Vec<u8>) {
    real_data::image_and_pool(&cache_dir())
}

/// Writes the replaced blocks into `path` (a copy of the image): the replica diverges again.
fn diverge(path: &Path, changes: &[(u64, u64)], pool: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    for &(block, from) in changes {
        let data = &pool[from as usize..(from + BLOCK) as usize];
        f.write_all_at(data, block * BLOCK).unwrap();
    }
}

/// Compares two files in 8 MiB pieces.
fn same(a: &Path, b: &Path) -> bool {
    let (fa, fb) = (File::open(a).unwrap(), File::open(b).unwrap());
    if fa.metadata().unwrap().len() != fb.metadata().unwrap().len() {
        return false;
    }
    let len = fa.metadata().unwrap().len();
    let (mut x, mut y) = (vec![0u8; 8 << 20], vec![0u8; 8 << 20]);
    let mut at = 0;
    while at < len {
        let n = (len - at).min(8 << 20) as usize;
        fa.read_exact_at(&mut x[..n], at).unwrap();
        fb.read_exact_at(&mut y[..n], at).unwrap();
        if x[..n] != y[..n] {
            return false;
        }
        at += n as u64;
    }
    true
}

/// rsync's "Total bytes sent" and "Total bytes received".
fn rsync(src: &Path, dst: &Path) -> (u64, u64) {
    let out = Command::new("rsync")
        .args(["-I", "--inplace", "--no-whole-file", "--stats"])
        .arg(src)
        .arg(dst)
        .output()
        .expect("rsync (apt-get install rsync)");
    assert!(out.status.success(), "rsync failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .expect("rsync --stats output");
        line[name.len()..].trim().replace(',', "").parse().unwrap()
    };
    (field("Total bytes sent:"), field("Total bytes received:"))
}

struct Ours {
    list_bytes: u64,
    stream_bytes: u64,
    differing: u64,
    hash_s: f64,
    rest_s: f64,
}

/// One resync of `replica` from `source`: both sides hash at once, the replica's list crosses
/// its wire form, the sender compares and encodes straight into the replica's applier.
fn resync(source: &Path, replica: &Path) -> Ours {
    let t0 = Instant::now();
    let cfg = HashConfig::with_random_salt();
    let src = File::open(source).unwrap();
    let dst = OpenOptions::new()
        .read(true)
        .write(true)
        .open(replica)
        .unwrap();
    let size = src.metadata().unwrap().len();
    let rsize = dst.metadata().unwrap().len();
    let (wire, ours) = std::thread::scope(|s| {
        let theirs = s.spawn(|| HashList::compute(&dst, rsize, &cfg).unwrap().to_bytes());
        let ours = HashList::compute(&src, size, &cfg).unwrap();
        (theirs.join().unwrap(), ours)
    });
    let hash_s = t0.elapsed().as_secs_f64();
    let theirs = HashList::decode(&wire).unwrap();
    let plan = diff(&theirs, &ours).unwrap();
    let mut config = EncoderConfig::new(DISK_ID, GenerationId([5; 16]), 1, 2, 0);
    config.secret = Some(Secret::new(SECRET).unwrap());
    let mut applier = Applier::new(
        DecoderConfig::new().with_secret(Secret::new(SECRET).unwrap()),
        FileTarget::new(dst).unwrap(),
    );
    let stream_bytes = plan
        .encode(config, &mut FileSource::new(src), &mut |frame| {
            let used = applier
                .push(frame)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            assert_eq!(used, frame.len());
            Ok(())
        })
        .unwrap();
    applier.finish().unwrap();
    Ours {
        list_bytes: wire.len() as u64,
        stream_bytes,
        differing: plan.differing_blocks,
        hash_s,
        rest_s: t0.elapsed().as_secs_f64() - hash_s,
    }
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.parse().expect("rounds"))
        .unwrap_or(5);
    println!("## resync: 1 GiB real-data image, 1 % of its 4 KiB blocks different, no map");
    let (img, pool) = image_and_pool();
    let dir = cache_dir().join("run");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let ours_replica = dir.join("replica-resync.img");
    let rsync_replica = dir.join("replica-rsync.img");
    fs::copy(&img, &ours_replica).unwrap();
    fs::copy(&img, &rsync_replica).unwrap();

    // 1 % of the blocks, distinct, each replaced by a random pool block.
    let blocks = IMAGE / BLOCK;
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut chosen = std::collections::BTreeSet::new();
    while (chosen.len() as u64) < blocks / 100 {
        chosen.insert(rng.below(blocks));
    }
    let changes: Vec<(u64, u64)> = chosen
        .into_iter()
        .map(|b| (b, rng.below(POOL / BLOCK) * BLOCK))
        .collect();
    println!(
        "{} of {} blocks differ; {} rounds, order alternating",
        changes.len(),
        blocks,
        rounds
    );

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (mut t_ours, mut t_rsync, mut t_ratio) = (vec![], vec![], vec![]);
    let (mut b_ours, mut b_rsync, mut b_rsync_all, mut b_ratio, mut b_ratio_all) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut t_hash, mut t_rest) = (vec![], vec![]);
    let mut last = None;
    for round in 0..rounds {
        diverge(&ours_replica, &changes, &pool);
        diverge(&rsync_replica, &changes, &pool);
        let run_ours = || {
            let t = Instant::now();
            let o = resync(&img, &ours_replica);
            (t.elapsed().as_secs_f64(), o)
        };
        let run_rsync = || {
            let t = Instant::now();
            let b = rsync(&img, &rsync_replica);
            (t.elapsed().as_secs_f64(), b)
        };
        let ((to, o), (tr, (sent, received))) = if round % 2 == 0 {
            let a = run_ours();
            (a, run_rsync())
        } else {
            let b = run_rsync();
            (run_ours(), b)
        };
        assert!(same(&img, &ours_replica), "resync replica differs");
        assert!(same(&img, &rsync_replica), "rsync replica differs");
        assert_eq!(o.differing, changes.len() as u64);
        let ob = (o.list_bytes + o.stream_bytes) as f64;
        println!(
            "round {round}: resync {to:.3} s (hash {:.3} s, compare+encode+apply {:.3} s), {} + {} bytes; rsync {tr:.3} s, sent {sent}, received {received}",
            o.hash_s, o.rest_s, o.list_bytes, o.stream_bytes
        );
        t_ours.push(to);
        t_rsync.push(tr);
        t_ratio.push(tr / to);
        t_hash.push(o.hash_s);
        t_rest.push(o.rest_s);
        b_ours.push(ob);
        b_rsync.push(sent as f64);
        b_rsync_all.push((sent + received) as f64);
        b_ratio.push(sent as f64 / ob);
        b_ratio_all.push((sent + received) as f64 / ob);
        last = Some(o);
    }
    let o = last.expect("at least one round");
    println!("\n{threads} cores; median (min..max) of {rounds} rounds");
    println!("resync time            {}", show(&t_ours, "s", 1.0));
    println!("  hash both sides      {}", show(&t_hash, "s", 1.0));
    println!("  compare+encode+apply {}", show(&t_rest, "s", 1.0));
    println!("rsync time             {}", show(&t_rsync, "s", 1.0));
    println!("rsync / resync time    {}", ratio(&t_ratio));
    println!(
        "resync bytes           {} (hash list {} + stream {})",
        show(&b_ours, "MB", 1e-6),
        o.list_bytes,
        o.stream_bytes
    );
    println!("rsync bytes sent       {}", show(&b_rsync, "MB", 1e-6));
    println!("rsync sent+received    {}", show(&b_rsync_all, "MB", 1e-6));
    println!("rsync sent / resync    {}", ratio(&b_ratio));
    println!("rsync all / resync     {}", ratio(&b_ratio_all));
    let _ = fs::remove_dir_all(&dir);
}
