//! `kill -9` of a real process that replicates into a store on disk, at random moments, then
//! recovery checked from the outside.
//!
//! The writer is **this test binary itself**, re-executed: `kill_child_entry` is an ordinary
//! test that returns at once unless `BLOCKDELTA_KILL_CHILD_DIR` is set; the parent test spawns
//! `std::env::current_exe()` with `kill_child_entry --exact` and that variable, so the child is
//! the same code, built by the same `cargo test`, with no second build step. That is more robust
//! than the alternatives: an example would need the test to run `cargo build --example` (a second
//! cargo under the first, a second target directory or lock contention, different flags), and
//! `CARGO_BIN_EXE_*` exists only for `[[bin]]` targets, which would ship a test program with the
//! library. The child is a plain debug build under `cargo test`; it is fast enough because its
//! source disk is small and the per-checkpoint changes cheap to regenerate.
//!
//! The child opens (or creates) the store, and runs checkpoints forever: deterministic source
//! changes from a seed (checkpoint `k`'s changes depend only on the seed and `k`), the stream
//! from checkpoint `k-1` to `k` ingested in random chunks, and after `finish()` returns `Ok` a
//! line `generation sequence sha256-of-the-image` appended to an ack log and synced. Every 3rd
//! checkpoint it applies retention (at most `MAX_POINTS` points, so points expire all the
//! time) and every 7th it compacts. On start it reads `store.lineage()` and regenerates the
//! source image at that checkpoint from the seed, then continues from there: it never needs
//! anything but the store to resume.
//!
//! The parent, `KILLS` times (default 150, `BLOCKDELTA_KILLS` overrides): spawns the child on
//! the same store, sleeps 5..300 ms, SIGKILLs it, and opens the store itself to check:
//! - every listed point reads back (whole disk) with the SHA-256 and size the deterministic
//!   source had at that checkpoint: the parent recomputes the source at every checkpoint, so
//!   points that were durable but whose ack was not logged yet are checked too;
//! - every ack in the log has the hash the parent computes (the child and parent agree);
//! - every acknowledged point is still listed unless retention could have removed it: the
//!   listed sequences are contiguous, the newest is at least the newest ack, and every ack
//!   among the newest `MAX_POINTS` checkpoints is listed;
//! - the lineage is the newest point's, no unfinished upload survives the open, scrub passes;
//! - the store accepts the next stream (the parent ingests checkpoint `newest + 1` itself,
//!   exactly as the child would have, and reads it back).

#[path = "common/kill_oracle.rs"]
mod kill_oracle;
#[path = "common/source.rs"]
mod source;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use blockdelta::replica::{ReplicaError, Retention, Store, StoreConfig};
use blockdelta::GenerationId;
use kill_oracle::{check_points, env_u64, hex, read_acks, sha256, Oracle};
use source::{Rng, Source};

const DISK_ID: [u8; 16] = *b"kill-9-test-disk";
const GEN: GenerationId = GenerationId(*b"kill-9-generatn1");
const SIZE: u64 = 256 << 10;
const BLOCK: u64 = 4096;
const MAX_POINTS: u64 = 4;
const CHILD_DIR: &str = "BLOCKDELTA_KILL_CHILD_DIR";
const CHILD_LOG: &str = "BLOCKDELTA_KILL_CHILD_LOG";
const CHILD_SEED: &str = "BLOCKDELTA_KILL_CHILD_SEED";

/// `len` bytes for checkpoint `k` at disk offset `off`: a random 64-byte pattern, each 64-byte
/// piece stamped with `k` and its offset (cheap to generate, and misplaced data shows).
fn contents(rng: &mut Rng, k: u64, off: u64, len: u64) -> Vec<u8> {
    let mut pat = [0u8; 64];
    for c in pat.chunks_mut(8) {
        c.copy_from_slice(&rng.next().to_le_bytes());
    }
    let mut v = vec![0u8; len as usize];
    for (i, c) in v.chunks_mut(64).enumerate() {
        c.copy_from_slice(&pat[..c.len()]);
        if c.len() >= 16 {
            c[..8].copy_from_slice(&k.to_le_bytes());
            c[8..16].copy_from_slice(&(off + i as u64 * 64).to_le_bytes());
        }
    }
    v
}

/// The source's changes from checkpoint `k - 1` to `k`: a function of the seed and `k` only.
fn step(src: &mut Source, seed: u64, k: u64) {
    let mut rng = Rng((seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
    if k > 1 && rng.chance(10) {
        let blocks = ((src.size() / BLOCK) + rng.below(16))
            .saturating_sub(rng.below(16))
            .clamp(16, 128);
        src.resize(blocks * BLOCK);
    }
    let ops = 1 + rng.below(6);
    for _ in 0..ops {
        let blocks = src.size() / BLOCK;
        let b = rng.below(blocks);
        let most = if rng.chance(10) { 32 } else { 4 };
        let n = (1 + rng.below(most)).min(blocks - b);
        let (off, len) = (b * BLOCK, n * BLOCK);
        match rng.below(12) {
            0 => src.zero(off, len),
            1 => src.discard(off, len),
            2 => {
                let o = off + rng.below(BLOCK);
                let l = 1 + rng.below(len - (o - off));
                let d = contents(&mut rng, k, o, l);
                src.write_data(o, &d);
            }
            _ => {
                let d = contents(&mut rng, k, off, len);
                src.write_data(off, &d);
            }
        }
    }
}

/// The source at checkpoint `s`, nothing changed since (at 0: a fresh disk whose first stream
/// carries everything).
fn source_at(seed: u64, s: u64) -> Source {
    let mut src = Source::new(DISK_ID, SIZE, BLOCK);
    src.generation = GEN;
    for k in 1..=s {
        step(&mut src, seed, k);
        src.commit(k);
    }
    src
}

/// Ingests the stream from `src`'s checkpoint to `k` (the changes of `k` already applied).
fn ingest_next(
    store: &Store,
    src: &Source,
    k: u64,
    rng: &mut Rng,
) -> blockdelta::replica::Ingested {
    let stream = src.stream(k, [4096u32, 65536][rng.below(2) as usize]);
    let mut ing = store.ingest(None).unwrap();
    let mut pos = 0;
    while pos < stream.len() {
        let n = (1 + rng.below(20_000) as usize).min(stream.len() - pos);
        ing.push(&stream[pos..pos + n]).unwrap();
        pos += n;
    }
    ing.finish().unwrap()
}

fn config() -> StoreConfig {
    let mut c = StoreConfig::new(DISK_ID);
    c.retention = Retention {
        max_points: Some(MAX_POINTS),
        ..Retention::default()
    };
    c
}

/// The child's life: replicate forever (until killed).
fn child(dir: &Path, log: &Path, seed: u64) -> ! {
    let store = match Store::open(dir) {
        Ok(s) => s,
        Err(ReplicaError::NotFound { .. }) => Store::create(dir, config()).unwrap(),
        Err(e) => panic!("child: open: {e}"),
    };
    let mut src = match store.lineage() {
        None => source_at(seed, 0),
        Some((g, s)) => {
            assert_eq!(g, GEN, "child: a foreign lineage");
            source_at(seed, s)
        }
    };
    let mut log = OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .unwrap();
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Rng(t | 1);
    loop {
        let k = src.seq + 1;
        step(&mut src, seed, k);
        let got = ingest_next(&store, &src, k, &mut rng);
        assert_eq!(got.point.id.sequence, k);
        // One write per line, then synced: a line is in the log only after finish() was Ok.
        let line = format!("{} {} {}\n", hex(&GEN.0), k, hex(&sha256(&src.disk)));
        log.write_all(line.as_bytes()).unwrap();
        log.sync_data().unwrap();
        src.commit(k);
        if k % 3 == 0 {
            store.retain(0).unwrap();
        }
        if k % 7 == 0 {
            store.compact().unwrap();
        }
    }
}

/// Not a test on its own: the child process's entry point (see the module documentation).
#[test]
fn kill_child_entry() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let log = std::env::var(CHILD_LOG).unwrap();
    let seed = std::env::var(CHILD_SEED).unwrap().parse().unwrap();
    child(Path::new(&dir), Path::new(&log), seed);
}

/// Opens the store after a kill and checks everything; returns the newest checkpoint.
fn check(dir: &Path, log: &Path, oracle: &mut Oracle, rng: &mut Rng, what: &str) -> u64 {
    let acks = read_acks(log, GEN);
    let store = match Store::open(dir) {
        Ok(s) => s,
        Err(ReplicaError::NotFound { .. }) => {
            assert!(acks.is_empty(), "{what}: store lost after acks");
            return 0;
        }
        Err(e) => panic!("{what}: open after kill: {e}"),
    };
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("uploads"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        leftovers.is_empty(),
        "{what}: uploads left after open: {leftovers:?}"
    );
    let newest = check_points(&store, oracle, &acks, &[], GEN, MAX_POINTS, what);
    // The next stream goes in, exactly as the child would have sent it.
    oracle.advance_to(newest);
    let mut next = oracle.frontier.clone();
    let k = newest + 1;
    step(&mut next, oracle.seed, k);
    let got = ingest_next(&store, &next, k, rng);
    let (h, size) = oracle.at(k);
    let mut buf = vec![0u8; size as usize];
    store.read_at(got.point.id, 0, &mut buf).unwrap();
    assert!(sha256(&buf) == h, "{what}: the next point differs");
    k
}

#[test]
fn kill_9_at_random_moments_loses_nothing_acknowledged() {
    let kills = env_u64("BLOCKDELTA_KILLS", 150);
    let seed = env_u64("BLOCKDELTA_KILL_SEED", 0x6b69_6c6c);
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().join("store");
    let log = tmp.path().join("acks");
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
    let mut oracle = Oracle::new(seed, source_at(seed, 0), step);
    let start = Instant::now();
    let mut newest = 0;
    let mut progressed = 0;
    for i in 0..kills {
        let err_path = tmp.path().join("child.stderr");
        let mut child = Command::new(&exe)
            .args([
                "kill_child_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, &dir)
            .env(CHILD_LOG, &log)
            .env(CHILD_SEED, seed.to_string())
            .stdout(Stdio::null())
            .stderr(File::create(&err_path).unwrap())
            .spawn()
            .unwrap();
        let ms = 5 + rng.below(296);
        std::thread::sleep(Duration::from_millis(ms));
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "kill {i}: the child exited by itself ({status}):\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let what = format!("seed {seed:#x}, kill {i} after {ms} ms");
        let before = newest;
        newest = check(&dir, &log, &mut oracle, &mut rng, &what);
        // The parent ingested one checkpoint itself; more means the child got work done.
        if newest > before + 1 {
            progressed += 1;
        }
    }
    let acks = read_acks(&log, GEN).len();
    eprintln!(
        "{kills} kills in {:.1} s: the child advanced in {progressed} runs, {acks} acks, \
         newest checkpoint {newest}",
        start.elapsed().as_secs_f64()
    );
    assert!(
        progressed * 3 >= kills,
        "the child made progress in only {progressed} of {kills} runs"
    );
}

/// Regression: a writer killed inside `DirStorage::put` (between writing `uploads/put.<name>`
/// and removing it) or inside a manifest swap left its temporary file forever: `uploads()`
/// hides `put.*` names, so garbage collection never saw them. The next writer removes them.
#[test]
fn temporaries_of_a_killed_writer_are_removed_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    drop(Store::create(&dir, config()).unwrap());
    std::fs::write(dir.join("uploads/put.layer-0000000000000007"), b"torn").unwrap();
    std::fs::write(dir.join("MANIFEST.tmp"), b"torn").unwrap();
    let store = Store::open(&dir).unwrap();
    assert_eq!(std::fs::read_dir(dir.join("uploads")).unwrap().count(), 0);
    assert!(!dir.join("MANIFEST.tmp").exists());
    assert!(store.points().is_empty());
}
