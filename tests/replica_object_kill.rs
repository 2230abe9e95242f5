//! `kill -9` of a real process that replicates into a store on **object storage** (S3 on moto,
//! Azure Blob on Azurite), at random moments of its multipart uploads, then recovery checked
//! from the outside. The object-storage counterpart of `tests/replica_kill.rs`; only with the
//! cargo feature `object-store` and the test servers running:
//!
//! ```text
//! .ci/object-servers start && . "$(.ci/object-servers dir)/env"
//! cargo test --release --features object-store --test replica_object_kill
//! ```
//!
//! The writer is **this test binary itself**, re-executed (`kill_child_entry --exact` with
//! `BLOCKDELTA_OBJKILL_CHILD_URL` set), as in `replica_kill.rs` and for the same reasons. It
//! opens (or creates) the store by URL with `part_size` 5 MiB (the minimum), `parallel` 4 and
//! `lease_seconds` 3 (the minimum `ObjectStorage::from_url` accepts), then runs checkpoints
//! forever: deterministic source changes from a seed (checkpoint `k`'s depend only on the seed
//! and `k`), a mix of sizes so that packs go out as one create-only put (under a part) or as
//! 2 to 7 multipart parts (6 to 30 MiB, incompressible, so stream offsets track pack bytes),
//! the stream pushed in random chunks, with resume points every 7 or 12 MiB for a third of the
//! streams each; after `finish()` returns `Ok` a line `generation sequence sha256-of-the-image`
//! is appended to an ack log and synced. Every 3rd checkpoint it applies retention (at most
//! `MAX_POINTS` points) and every 5th it compacts (which bundles the small packs). On start it
//! regenerates the source at `store.lineage()` from the seed and, if the store holds a cut
//! stream (`pending_ingest`), **resumes it** from the offset the store names, pushing the same
//! stream regenerated, as a sender that kept its stream would. It notes each stage (opening,
//! encoding, each push with its stream offset, finishing, acked, retention, compaction) in a
//! stage file, so the parent can tell where each kill landed.
//!
//! The parent, per backend, `KILLS` times (default 8, `BLOCKDELTA_OBJECT_KILLS` overrides):
//! spawns the child, and kills it (SIGKILL) either during its start (1 in 5, at a random time
//! up to how long starts took) or once it encodes its first checkpoint, after a random time up
//! to twice a checkpoint's measured duration, so that kills spread over part uploads, the
//! waits between parts, completion and commit, and the moments after the ack. Then:
//! - it lists the storage as the kill left it (objects, unfinished uploads), and opens the
//!   store read-write, retrying while the dead child's lease holds it (`ReplicaError::Locked`;
//!   bounded: a lease that never expires is a stuck store and fails the test);
//! - no upload survives the open but the cut stream's own, and the objects left equal the
//!   store's accounting exactly: their sizes plus the manifest's are `stats().bytes` (plus
//!   the cut stream's durable pack bytes, if there is one), so garbage collection left no
//!   object the manifest does not reference (a completed pack of an uncommitted point, a
//!   layer, a resume object, a record); what the open removed is counted by kind;
//! - every listed point reads back (whole disk) with the SHA-256 and size the deterministic
//!   source had at that checkpoint; every ack has the hash the parent computes; the listed
//!   sequences are contiguous, the newest is at least the newest ack, every ack among the
//!   newest `MAX_POINTS` checkpoints is listed; the lineage is the newest point's; a cut
//!   stream continues the lineage; scrub passes;
//! - the store accepts the next stream: a cut stream is resumed by the parent itself every
//!   other time (and left to the next child otherwise, which must resume it), else the parent
//!   ingests checkpoint `newest + 1` itself; the new point reads back. After the last kill the
//!   parent always completes it, and removes the test's objects.
//!
//! It prints, per backend, the time taken and where the kills landed (the child's stage, and
//! what the storage showed: an unfinished multipart upload, a completed pack not committed, a
//! point committed but not acknowledged, a cut stream resumed).
//!
//! Not checked (not reachable through the crate's API): a multipart upload the service started
//! but whose id the child was killed before recording (`uploads/<name>`) stays on the server,
//! invisible; a bucket's lifecycle rule for incomplete multipart uploads reclaims it.
#![cfg(feature = "object-store")]

#[path = "common/kill_oracle.rs"]
mod kill_oracle;
#[path = "common/source.rs"]
mod source;

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use blockdelta::replica::{
    Ingested, ObjectStorage, ReplicaError, Retention, Storage, Store, StoreConfig,
};
use blockdelta::GenerationId;
use kill_oracle::{check_points, env_u64, hex, read_acks, sha256, Oracle};
use source::{Rng, Source};

const DISK_ID: [u8; 16] = *b"kill-9-objstore1";
const GEN: GenerationId = GenerationId(*b"kill-9-obj-gen-1");
const SIZE: u64 = 32 << 20;
const BLOCK: u64 = 4096;
const PART: u64 = 5 << 20;
const MAX_POINTS: u64 = 3;
/// The shortest lease `ObjectStorage::from_url` accepts (it raises anything lower to 3).
const LEASE_SECONDS: u64 = 3;
const CHILD_URL: &str = "BLOCKDELTA_OBJKILL_CHILD_URL";
const CHILD_KIND: &str = "BLOCKDELTA_OBJKILL_CHILD_KIND";
const CHILD_LOG: &str = "BLOCKDELTA_OBJKILL_CHILD_LOG";
const CHILD_STAGES: &str = "BLOCKDELTA_OBJKILL_CHILD_STAGES";
const CHILD_SEED: &str = "BLOCKDELTA_OBJKILL_CHILD_SEED";

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| {
        panic!(
            "{key} is not set: start the test servers with `.ci/object-servers start` and \
             source the env file it prints"
        )
    })
}

/// The options of a store on server `kind` ("s3" or "az").
fn options(kind: &str) -> Vec<(String, String)> {
    let mut o: Vec<(String, String)> = match kind {
        "s3" => vec![
            ("endpoint".into(), env("BLOCKDELTA_TEST_S3_ENDPOINT")),
            ("allow_http".into(), "true".into()),
        ],
        _ => vec![("use_emulator".into(), "true".into())],
    };
    o.push(("part_size".into(), PART.to_string()));
    o.push(("parallel".into(), "4".into()));
    o.push(("lease_seconds".into(), LEASE_SECONDS.to_string()));
    o
}

/// A URL under a prefix no other test (or run) uses.
fn url(kind: &str) -> String {
    let unique = format!(
        "kill-{}-{:02x}{:02x}",
        std::process::id(),
        GenerationId::random().0[0],
        GenerationId::random().0[1]
    );
    match kind {
        "s3" => format!("s3://{}/{unique}", env("BLOCKDELTA_TEST_S3_BUCKET")),
        _ => format!("az://{}/{unique}", env("BLOCKDELTA_TEST_AZURE_CONTAINER")),
    }
}

fn opts(o: &[(String, String)]) -> Vec<(&str, &str)> {
    o.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `len` incompressible bytes for checkpoint `k` at disk offset `off`, each 4 KiB block
/// stamped with `k` and its offset (misplaced data shows).
fn contents(rng: &mut Rng, k: u64, off: u64, len: u64) -> Vec<u8> {
    let mut v = vec![0u8; len as usize];
    rng.fill(&mut v);
    for (i, c) in v.chunks_mut(BLOCK as usize).enumerate() {
        if c.len() >= 16 {
            c[..8].copy_from_slice(&k.to_le_bytes());
            c[8..16].copy_from_slice(&(off + i as u64 * BLOCK).to_le_bytes());
        }
    }
    v
}

fn rng_for(seed: u64, k: u64) -> Rng {
    Rng((seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1)
}

/// The source's changes from checkpoint `k - 1` to `k`: a function of the seed and `k` only.
/// A fifth of them are under a part (one create-only put), the rest 6 to 30 MiB (2 to 7
/// multipart parts), in 1 to 3 disjoint extents, with zeroed, discarded and unaligned ranges
/// now and then, and a resize 1 time in 12.
fn step(src: &mut Source, seed: u64, k: u64) {
    let mut rng = rng_for(seed, k);
    if k > 1 && rng.chance(8) {
        src.resize((24 + rng.below(17)) << 20);
    }
    let size = src.size();
    let total = match rng.below(10) {
        0 | 1 => (64 << 10) + rng.below(1 << 20),
        2..=4 => (6 << 20) + rng.below(8 << 20),
        _ => (15 << 20) + rng.below(15 << 20),
    };
    let n = 1 + rng.below(3);
    let region = size / n;
    for i in 0..n {
        let len = ((total / n).min(region) / BLOCK * BLOCK).max(BLOCK);
        let off = i * region + rng.below((region - len) / BLOCK + 1) * BLOCK;
        let d = contents(&mut rng, k, off, len);
        src.write_data(off, &d);
    }
    for _ in 0..rng.below(3) {
        let blocks = size / BLOCK;
        let b = rng.below(blocks);
        let nb = (1 + rng.below(64)).min(blocks - b);
        let (off, len) = (b * BLOCK, nb * BLOCK);
        match rng.below(3) {
            0 => src.zero(off, len),
            1 => src.discard(off, len),
            _ => {
                let o = off + rng.below(BLOCK);
                let l = 1 + rng.below(len - (o - off));
                let d = contents(&mut rng, k, o, l);
                src.write_data(o, &d);
            }
        }
    }
}

/// The record size of checkpoint `k`'s stream: fixed by the seed, so that a regenerated
/// stream is byte-identical (a resume needs exactly the cut stream).
fn record_size(seed: u64, k: u64) -> u32 {
    [65536u32, 1 << 20][(rng_for(seed, !k).next() % 2) as usize]
}

/// The source at checkpoint `s`, nothing changed since.
fn source_at(seed: u64, s: u64) -> Source {
    let mut src = Source::new(DISK_ID, SIZE, BLOCK);
    src.generation = GEN;
    for k in 1..=s {
        step(&mut src, seed, k);
        src.commit(k);
    }
    src
}

/// The stream's first frame (frame header and body), which a resume must present.
fn header_frame(stream: &[u8]) -> &[u8] {
    &stream[..24 + u32::from_le_bytes(stream[16..20].try_into().unwrap()) as usize]
}

/// Where the child notes its stage: one unbuffered write per line, `<ms since epoch> <stage>`
/// (no sync: a killed process's writes stay in the page cache).
struct Stages(Option<File>);

impl Stages {
    fn note(&mut self, what: std::fmt::Arguments<'_>) {
        if let Some(f) = &mut self.0 {
            f.write_all(format!("{} {what}\n", now_ms()).as_bytes())
                .unwrap();
        }
    }
}

/// Sends checkpoint `k`'s `stream` (from the start, or resumed at `resume_at`) in random
/// chunks, with a random resume interval, and finishes it.
fn send(
    store: &Store,
    stream: &[u8],
    k: u64,
    resume_at: Option<u64>,
    rng: &mut Rng,
    st: &mut Stages,
) -> Ingested {
    let (mut ing, mut pos) = match resume_at {
        None => (store.ingest(None).unwrap(), 0),
        Some(at) => {
            st.note(format_args!("resume {k} {at}"));
            let (ing, from) = store.resume_ingest(None, header_frame(stream)).unwrap();
            assert_eq!(
                from, at,
                "resumed at another offset than pending_ingest named"
            );
            (ing, from as usize)
        }
    };
    match rng.below(3) {
        0 => {}
        1 => ing.set_resume_interval(7 << 20),
        _ => ing.set_resume_interval(12 << 20),
    }
    while pos < stream.len() {
        let n = ((64 << 10) + rng.below(3 << 20) as usize).min(stream.len() - pos);
        st.note(format_args!("push {k} {pos} {}", stream.len()));
        ing.push(&stream[pos..pos + n]).unwrap();
        pos += n;
    }
    st.note(format_args!("finish {k}"));
    let got = ing.finish().unwrap();
    assert_eq!(got.point.id.sequence, k);
    got
}

fn config() -> StoreConfig {
    let mut c = StoreConfig::new(DISK_ID);
    c.retention = Retention {
        max_points: Some(MAX_POINTS),
        ..Retention::default()
    };
    c
}

/// Opens the store for writing, waiting (bounded) while another writer's lease holds it;
/// `Ok(None)` if there is no store. Returns the time spent waiting too.
fn open_writer(
    url: &str,
    o: &[(&str, &str)],
    what: &str,
) -> Result<(Option<Store>, Duration), ReplicaError> {
    let t = Instant::now();
    // The dead writer's lease runs out within LEASE_SECONDS; well past that it is stuck.
    let bound = Duration::from_secs(10 * LEASE_SECONDS + 10);
    loop {
        match Store::open_url(url, o) {
            Ok(s) => return Ok((Some(s), t.elapsed())),
            Err(ReplicaError::NotFound { .. }) => return Ok((None, t.elapsed())),
            Err(ReplicaError::Locked { .. }) if t.elapsed() < bound => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(ReplicaError::Locked { .. }) => {
                panic!("{what}: the store is still locked after {:?}", t.elapsed())
            }
            Err(e) => return Err(e),
        }
    }
}

/// The child's life: replicate forever (until killed).
fn child(url: &str, kind: &str, log: &Path, stages: &Path, seed: u64) -> ! {
    let o = options(kind);
    let o = opts(&o);
    let mut st = Stages(Some(
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(stages)
            .unwrap(),
    ));
    st.note(format_args!("open"));
    let store = match open_writer(url, &o, "child").unwrap() {
        (Some(s), _) => s,
        (None, _) => Store::create_url(url, &o, config()).unwrap(),
    };
    st.note(format_args!("regen"));
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
    let mut rng = Rng(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1);
    // A stream cut by the previous run's death is resumed where the store says.
    let mut resume = store.pending_ingest().unwrap().map(|p| {
        assert_eq!(p.header.generation, GEN);
        assert_eq!(
            p.header.from_seq, src.seq,
            "child: a cut stream off the lineage"
        );
        assert_eq!(p.header.to_seq, src.seq + 1);
        p.stream_offset
    });
    loop {
        let k = src.seq + 1;
        st.note(format_args!("step {k}"));
        step(&mut src, seed, k);
        let stream = src.stream(k, record_size(seed, k));
        send(&store, &stream, k, resume.take(), &mut rng, &mut st);
        // One write per line, then synced: a line is in the log only after finish() was Ok.
        let line = format!("{} {} {}\n", hex(&GEN.0), k, hex(&sha256(&src.disk)));
        log.write_all(line.as_bytes()).unwrap();
        log.sync_data().unwrap();
        st.note(format_args!("ack {k}"));
        src.commit(k);
        if k % 3 == 0 {
            st.note(format_args!("retain {k}"));
            store.retain(0).unwrap();
        }
        if k % 5 == 0 {
            st.note(format_args!("compact {k}"));
            store.compact().unwrap();
        }
    }
}

/// Not a test on its own: the child process's entry point (see the module documentation).
#[test]
fn kill_child_entry() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let kind = std::env::var(CHILD_KIND).unwrap();
    let log = std::env::var(CHILD_LOG).unwrap();
    let stages = std::env::var(CHILD_STAGES).unwrap();
    let seed = std::env::var(CHILD_SEED).unwrap().parse().unwrap();
    child(&url, &kind, Path::new(&log), Path::new(&stages), seed);
}

/// The source with checkpoint `s + 1`'s changes applied, and that checkpoint's stream.
fn next_stream(oracle: &mut Oracle, s: u64) -> Vec<u8> {
    oracle.advance_to(s);
    let mut next = oracle.frontier.clone();
    step(&mut next, oracle.seed, s + 1);
    next.stream(s + 1, record_size(oracle.seed, s + 1))
}

/// The child's stage lines: (ms since epoch, stage words).
fn read_stages(path: &Path) -> Vec<(u64, Vec<String>)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut w = l.split(' ');
            let t = w.next()?.parse().ok()?;
            let rest: Vec<String> = w.map(str::to_string).collect();
            (!rest.is_empty()).then_some((t, rest))
        })
        .collect()
}

/// Where a kill landed, by the child's last stage.
fn stage_name(last: Option<&Vec<String>>) -> &'static str {
    let Some(w) = last else {
        return "starting (before opening)";
    };
    match w[0].as_str() {
        "open" => "opening the store (lease, log, fence, gc)",
        "regen" => "regenerating the source",
        "step" => "encoding a checkpoint",
        "resume" => "resuming a cut stream",
        "push" if w[2].parse::<u64>().unwrap() < PART => "pushing the first part's bytes",
        "push" => "pushing, parts uploading",
        "finish" => "finishing (last parts, complete, layer, commit)",
        "ack" => "acknowledged",
        "retain" => "retention",
        "compact" => "compaction",
        _ => "unknown",
    }
}

/// What the parent tallies over the kills of one backend.
#[derive(Default)]
struct Tally {
    stages: BTreeMap<&'static str, u32>,
    events: BTreeMap<&'static str, u32>,
    lease_wait: Duration,
    checking: Duration,
    child_time: Duration,
}

impl Tally {
    fn event(&mut self, e: &'static str) {
        *self.events.entry(e).or_default() += 1;
    }
}

/// The storage's objects and unfinished uploads, as a separate handle (another process)
/// lists them.
fn listing(s: &ObjectStorage) -> (HashSet<String>, Vec<String>) {
    (
        s.list("").unwrap().into_iter().collect(),
        s.uploads().unwrap(),
    )
}

/// Opens the store after a kill and checks everything (see the module documentation); then
/// the next stream goes in (or, with `leave_cut`, a cut stream is left for the next child).
/// Returns the newest checkpoint the store holds, and whether a cut stream was left.
#[allow(clippy::too_many_arguments)]
fn check(
    url: &str,
    o: &[(&str, &str)],
    storage: &ObjectStorage,
    log: &Path,
    parent_acks: &mut Vec<u64>,
    oracle: &mut Oracle,
    rng: &mut Rng,
    leave_cut: bool,
    tally: &mut Tally,
    what: &str,
) -> (u64, bool) {
    let acks = read_acks(log, GEN);
    let max_ack = acks
        .iter()
        .map(|a| a.0)
        .chain(parent_acks.iter().copied())
        .max()
        .unwrap_or(0);
    let (before, uploads_before) = listing(storage);
    if !uploads_before.is_empty() {
        tally.event("an unfinished upload was left");
    }
    let (store, waited) =
        open_writer(url, o, what).unwrap_or_else(|e| panic!("{what}: open after kill: {e}"));
    tally.lease_wait += waited;
    let t = Instant::now();
    let Some(store) = store else {
        assert!(max_ack == 0, "{what}: store lost after acks");
        tally.event("killed before the store existed");
        return (0, false);
    };
    let pending = store.pending_ingest().unwrap();

    // Garbage collection: no upload but the cut stream's, no object the store does not count.
    let (after, uploads_after) = listing(storage);
    assert_eq!(
        uploads_after.len(),
        usize::from(pending.is_some()),
        "{what}: unfinished uploads after the open: {uploads_after:?} (cut stream: {})",
        pending.is_some()
    );
    let removed: Vec<&String> = before.difference(&after).collect();
    if removed.iter().any(|n| n.starts_with("pack-")) {
        tally.event("a completed pack was not committed (gc removed it)");
    }
    if !removed.is_empty() {
        tally.event("the open removed objects");
    }
    let object_bytes: u64 = after.iter().map(|n| storage.size(n).unwrap()).sum();
    let manifest = storage.read_manifest().unwrap().unwrap().0.len() as u64;
    let counted = store.stats().bytes;
    let points = store.points();
    let newest = points.last().map_or(0, |p| p.id.sequence);
    // Checkpoint `newest + 1`'s stream: the cut one, or the next.
    let stream = next_stream(oracle, newest);
    match &pending {
        None => assert_eq!(
            counted,
            object_bytes + manifest,
            "{what}: the store counts {counted} bytes, its objects and manifest hold {} \
             (objects: {after:?})",
            object_bytes + manifest
        ),
        Some(p) => {
            // The cut stream's pack upload (not an object yet) is counted too.
            assert!(
                counted >= object_bytes + manifest
                    && counted - object_bytes - manifest <= stream.len() as u64 + PART,
                "{what}: the store counts {counted} bytes, its objects and manifest hold {}, \
                 a cut stream at {}",
                object_bytes + manifest,
                p.stream_offset
            );
        }
    }

    // Every acknowledged point that retention keeps is listed; every listed point reads back.
    let checked = check_points(&store, oracle, &acks, parent_acks, GEN, MAX_POINTS, what);
    assert_eq!(checked, newest);
    if newest > max_ack {
        tally.event("a point was committed but not acknowledged");
    }

    // The next stream goes in: a cut one resumed (by the next child, if `leave_cut`).
    let k = newest + 1;
    let resume_at = match pending {
        Some(p) => {
            tally.event("a cut stream was left (resume point)");
            assert_eq!(p.header.generation, GEN, "{what}: cut stream");
            assert_eq!(
                (p.header.from_seq, p.header.to_seq),
                (newest, k),
                "{what}: the cut stream does not continue the lineage"
            );
            assert!(p.stream_offset < stream.len() as u64, "{what}: cut stream");
            if leave_cut {
                tally.checking += t.elapsed();
                return (newest, true);
            }
            tally.event("a cut stream was resumed by the parent");
            Some(p.stream_offset)
        }
        None => None,
    };
    let got = send(&store, &stream, k, resume_at, rng, &mut Stages(None));
    parent_acks.push(k);
    let (h, size) = oracle.at(k);
    let mut buf = vec![0u8; size as usize];
    store.read_at(got.point.id, 0, &mut buf).unwrap();
    assert!(sha256(&buf) == h, "{what}: the next point differs");
    tally.checking += t.elapsed();
    (k, false)
}

fn kill_9_on(kind: &str) {
    let kills = env_u64("BLOCKDELTA_OBJECT_KILLS", 8);
    let seed = env_u64("BLOCKDELTA_KILL_SEED", 0x6f62_6a6b);
    let url = url(kind);
    let o = options(kind);
    let o = opts(&o);
    let storage = ObjectStorage::from_url(&url, &o).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("acks");
    let stages = tmp.path().join("stages");
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
    let mut oracle = Oracle::new(seed, source_at(seed, 0), step);
    let mut tally = Tally::default();
    let mut parent_acks = Vec::new();
    let start = Instant::now();
    // Measured as the kills go: how long a child takes to start, and a checkpoint.
    let (mut start_ms, mut ckpt_ms) = (1500u64, 3000u64);
    let (mut newest, mut progressed, mut left_cut) = (0, 0, false);
    for i in 0..kills {
        let err_path = tmp.path().join("child.stderr");
        let _ = std::fs::remove_file(&stages);
        let spawned = now_ms();
        let t = Instant::now();
        let mut child = Command::new(&exe)
            .args([
                "kill_child_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_URL, &url)
            .env(CHILD_KIND, kind)
            .env(CHILD_LOG, &log)
            .env(CHILD_STAGES, &stages)
            .env(CHILD_SEED, seed.to_string())
            .stdout(Stdio::null())
            .stderr(File::create(&err_path).unwrap())
            .spawn()
            .unwrap();
        let exited = |child: &mut std::process::Child| {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "{kind} kill {i}: the child exited by itself ({status}):\n{}",
                    std::fs::read_to_string(&err_path).unwrap_or_default()
                );
            }
        };
        let early = rng.below(5) == 0;
        let ms = if early {
            rng.below(start_ms + 1)
        } else {
            // Once it encodes its first checkpoint (bounded: a child stuck starting fails).
            while !read_stages(&stages).iter().any(|(_, w)| w[0] == "step") {
                exited(&mut child);
                assert!(
                    t.elapsed() < Duration::from_secs(120),
                    "{kind} kill {i}: the child did not start its first checkpoint in 120 s"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            rng.below(2 * ckpt_ms + 1)
        };
        std::thread::sleep(Duration::from_millis(ms));
        exited(&mut child);
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        tally.child_time += t.elapsed();

        // Where it landed, and what the child measured meanwhile.
        let lines = read_stages(&stages);
        let stage = stage_name(lines.last().map(|l| &l.1));
        *tally.stages.entry(stage).or_default() += 1;
        if lines.iter().any(|(_, w)| w[0] == "resume") {
            tally.event("a cut stream was resumed by a child");
        }
        if left_cut && !lines.iter().any(|(_, w)| w[0] == "resume") {
            tally.event("a cut stream left for a child was not reached");
        }
        if let Some((t0, _)) = lines.iter().find(|(_, w)| w[0] == "step") {
            start_ms = (start_ms + (t0 - spawned)) / 2;
        }
        for (t1, w) in &lines {
            if w[0] == "ack" {
                let began = lines
                    .iter()
                    .find(|(_, v)| v[0] == "step" && v[1] == w[1])
                    .or_else(|| lines.iter().find(|(_, v)| v[0] == "regen"));
                if let Some((t0, _)) = began {
                    ckpt_ms = (3 * ckpt_ms + (t1 - t0)) / 4;
                }
            }
        }

        let what = format!(
            "{kind} ({url}), seed {seed:#x}, kill {i} {} ms after {}, in stage {:?}",
            ms,
            if early {
                "spawning"
            } else {
                "its first checkpoint began"
            },
            lines.last().map(|l| l.1.join(" "))
        );
        let before = newest;
        let last = i + 1 == kills;
        let leave = !last && i % 2 == 0;
        (newest, left_cut) = check(
            &url,
            &o,
            &storage,
            &log,
            &mut parent_acks,
            &mut oracle,
            &mut rng,
            leave,
            &mut tally,
            &what,
        );
        // The parent ingested at most one checkpoint itself; more means the child got work done.
        if newest > before + u64::from(!left_cut) {
            progressed += 1;
        }
    }
    let acks = read_acks(&log, GEN).len();
    // Leave nothing behind on the shared servers (but the small manifest).
    let names: Vec<String> = storage.list("").unwrap();
    storage.delete_many(&names).unwrap();
    for u in storage.uploads().unwrap() {
        storage.abort_upload(&u).unwrap();
    }
    eprintln!(
        "{kind}: {kills} kills in {:.1} s (children ran {:.1} s, lease waits {:.1} s, checks \
         and next streams {:.1} s); the child advanced in {progressed} runs, {acks} acks, \
         newest checkpoint {newest}, checkpoint {ckpt_ms} ms, start {start_ms} ms\n  \
         kills by stage: {:?}\n  seen: {:?}",
        start.elapsed().as_secs_f64(),
        tally.child_time.as_secs_f64(),
        tally.lease_wait.as_secs_f64(),
        tally.checking.as_secs_f64(),
        tally.stages,
        tally.events,
    );
    assert!(
        progressed * 4 >= kills,
        "{kind}: the child made progress in only {progressed} of {kills} runs"
    );
}

#[test]
fn kill_9_mid_upload_to_s3_loses_nothing_acknowledged() {
    kill_9_on("s3");
}

#[test]
fn kill_9_mid_upload_to_azure_blob_loses_nothing_acknowledged() {
    kill_9_on("az");
}

/// The service as `object_store` sees it, for what the store's API cannot reach (the
/// `uploads/` and `tails/` objects of an unfinished upload), and the store's prefix.
fn raw_service(kind: &str, url: &str) -> (Box<dyn object_store::ObjectStore>, String) {
    let prefix = url.split_once("://").unwrap().1.split_once('/').unwrap().1;
    let s: Box<dyn object_store::ObjectStore> = match kind {
        "s3" => Box::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(env("BLOCKDELTA_TEST_S3_BUCKET"))
                .with_endpoint(env("BLOCKDELTA_TEST_S3_ENDPOINT"))
                .with_allow_http(true)
                .build()
                .unwrap(),
        ),
        _ => Box::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_container_name(env("BLOCKDELTA_TEST_AZURE_CONTAINER"))
                .with_use_emulator(true)
                .build()
                .unwrap(),
        ),
    };
    (s, prefix.to_string())
}

/// Regression: a writer killed inside the completion of a pack upload that had a resume point,
/// after the service completed the multipart upload and before the upload's state object was
/// deleted (`ObjectUpload::complete`), leaves the manifest's resume point, the upload's state
/// and tails, and a completed pack object. The next open must drop that resume point (the
/// upload is gone: `docs/REPLICA.md`, "Resuming a cut stream"), or the resume must work; the
/// store then takes the next stream. The window is reproduced exactly: the upload is
/// completed through a second handle and its state and tails are put back as they were.
#[test]
fn a_resume_point_whose_upload_was_completed_does_not_survive_the_open() {
    use object_store::path::Path as OsPath;
    use object_store::{ObjectStore, ObjectStoreExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for kind in ["s3", "az"] {
        let url = url(kind);
        let o = options(kind);
        let o = opts(&o);
        let store = Store::create_url(&url, &o, StoreConfig::new(DISK_ID)).unwrap();
        // (After the store: its first handle installs the TLS crypto provider.)
        let (raw, prefix) = raw_service(kind, &url);
        let mut src = Source::new(DISK_ID, 16 << 20, BLOCK);
        src.generation = GEN;
        let d = contents(&mut Rng(9), 1, 0, 16 << 20);
        src.write_data(0, &d);
        let stream = src.stream(1, 1 << 20);
        let mut ing = store.ingest(None).unwrap();
        ing.set_resume_interval(6 << 20);
        ing.push(&stream[..stream.len() / 2]).unwrap();
        let at = ing.suspend().unwrap();
        drop(store);

        // The upload's state and tails, as the writer left them at its last sync.
        let s = ObjectStorage::from_url(&url, &o).unwrap();
        let uploads = s.uploads().unwrap();
        assert_eq!(uploads.len(), 1, "{kind}: {uploads:?}");
        let name = &uploads[0];
        let state_path = OsPath::from(format!("{prefix}/uploads/{name}"));
        let tails_dir = OsPath::from(format!("{prefix}/tails/{name}"));
        let mut saved = vec![(
            state_path.clone(),
            rt.block_on(async { raw.get(&state_path).await.unwrap().bytes().await })
                .unwrap(),
        )];
        let tails = rt
            .block_on(raw.list_with_delimiter(Some(&tails_dir)))
            .unwrap()
            .objects;
        let mut synced = 0;
        for t in tails {
            let len = u64::from_str_radix(t.location.filename().unwrap(), 16).unwrap();
            synced = synced.max(len);
            let b = rt
                .block_on(async { raw.get(&t.location).await.unwrap().bytes().await })
                .unwrap();
            saved.push((t.location, b));
        }
        // The killed writer's finish(): the upload completed (which deletes state and
        // tails), then the kill, before they were deleted: put them back.
        s.resume_upload(name, synced).unwrap().complete().unwrap();
        for (p, b) in saved {
            rt.block_on(raw.put(&p, b.into())).unwrap();
        }
        assert_eq!(s.uploads().unwrap(), vec![name.clone()]);

        // Recovery.
        let store = Store::open_url(&url, &o).unwrap();
        if let Some(p) = store.pending_ingest().unwrap() {
            assert_eq!(p.stream_offset, at);
            let (mut ing, from) = store.resume_ingest(None, header_frame(&stream)).unwrap();
            let r = ing
                .push(&stream[from as usize..])
                .and_then(|()| ing.finish().map(|_| ()));
            if let Err(e) = r {
                panic!(
                    "{kind} ({url}): the open kept the resume point of an upload that was \
                     completed, and resuming it fails: {e}"
                );
            }
        } else {
            let mut ing = store.ingest(None).unwrap();
            ing.push(&stream).unwrap();
            ing.finish().unwrap();
        }
        let mut got = vec![0u8; src.disk.len()];
        store
            .read_at(store.newest().unwrap().id, 0, &mut got)
            .unwrap();
        assert!(got == src.disk, "{kind}: the point differs");
        assert!(s.uploads().unwrap().is_empty(), "{kind}: uploads left");
    }
}
