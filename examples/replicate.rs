//! The main job: replicate a disk through the whole pipeline (track, encode, ship, verify,
//! apply) and check the replica after every cycle.
//!
//! ```text
//! cargo run --release --example replicate [-- --cycles N --secret TEXT]
//! cargo run --release --example replicate -- --source PATH --replica PATH [--secret TEXT]
//! ```
//!
//! With no arguments it creates a sparse 1 GiB source image and a replica store in a temporary
//! directory, runs a workload through a tracker (skewed random writes of 4 KiB to 256 KiB from
//! three threads, about 30 % rewrites of recent blocks, zero fills, discards, one resize), ships
//! every cycle lz4-compressed and AES-256-GCM-encrypted into the store, places bookmarks, reads
//! every new recovery point back whole and checks it byte for byte against the source, and keeps
//! the SHA-256 of every MiB of the source at each checkpoint. A short retention policy (6
//! points) expires points as it goes. A checkpoint is also shipped while the writers are
//! running, so the tracker's take races real writes. At the end it reads every old point still
//! listed back whole against its checkpoint's hashes, exports the newest point to a sparse file
//! (a failover) and compares it, rolls the store back to its oldest point and re-syncs only the
//! extents that differ (the tracker adopts the store's new lineage), verifies that point, and
//! prints the points, the space used and the time per stage.
//!
//! With `--source` and `--replica` it replicates an existing file or block device that it never
//! writes to: a full sync through the same pipeline (every block marked), then the replica is
//! verified against the source.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use blockdelta::replica::{Ingest, PointId, Retention, Store, StoreConfig};
use blockdelta::{
    ActivityLogConfig, ActivityWriter, Admission, Bookmark, BookmarkKind, CheckpointInfo, Codec,
    DecoderConfig, EncoderConfig, Extent, FileSource, FileTarget, GenerationId, LoadOutcome,
    ParallelApplier, ParallelEncoder, PersistOptions, PersistentTracker, Secret, Tracker,
    TrackerConfig,
};

/// The tracker a checkpoint is taken from: a plain one, or one whose state file records every
/// take and commit (`PersistentTracker`), so that a restart continues where it stopped.
#[derive(Clone, Copy)]
enum Track<'a> {
    Plain(&'a Tracker),
    Saved(&'a PersistentTracker),
}

impl Track<'_> {
    fn tracker(&self) -> &Tracker {
        match self {
            Track::Plain(t) => t,
            Track::Saved(p) => p.tracker(),
        }
    }
    fn take(&self) -> Result<CheckpointInfo, Error> {
        Ok(match self {
            Track::Plain(t) => t.take()?,
            Track::Saved(p) => p.take()?,
        })
    }
    fn commit(&self, generation: GenerationId, sequence: u64) -> Result<(), Error> {
        match self {
            Track::Plain(t) => t.commit(generation, sequence)?,
            Track::Saved(p) => p.commit(generation, sequence)?,
        }
        Ok(())
    }
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const DEMO_SIZE: u64 = GIB;
const DEMO_GROWN: u64 = GIB + 256 * MIB;
const WRITERS: usize = 3;
const OPS_PER_WRITER: u64 = 700;

type Error = Box<dyn std::error::Error>;
/// One encoder step: writes a frame into the buffer, or `None` when there is nothing more.
type Step<'a> = &'a mut dyn FnMut(&mut [u8]) -> Result<Option<usize>, Error>;

fn main() {
    if let Err(e) = run() {
        eprintln!("replicate: {e}");
        std::process::exit(1);
    }
}

struct Args {
    source: Option<PathBuf>,
    replica: Option<PathBuf>,
    secret: String,
    cycles: u32,
    threads: usize,
    compression: Codec,
    /// Where the demo's replica store lives (default: a temporary directory).
    store: Option<String>,
    /// `KEY=VALUE` options for an object store.
    store_options: Vec<(String, String)>,
}

const USAGE: &str = "usage: replicate [--cycles N] [--secret TEXT] [--threads N] [--compression C]
                 [--store URL [--store-option KEY=VALUE ...]]
       replicate --source PATH --replica PATH [--secret TEXT] [--threads N] [--compression C]

--threads N: threads encoding (and decoding) each stream, the caller's included; default: every
core. --compression lz4|none: default lz4 (every stream is encrypted either way).
--store URL: where the replica store is created (it must not exist yet): file:///path,
s3://bucket/prefix or az://container/prefix (those two need a build with the cargo feature
object-store); default: a temporary directory. --store-option KEY=VALUE configures an object
store (endpoint, region, part_size, ...); what is not given comes from the AWS_* and AZURE_*
environment variables.";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        source: None,
        replica: None,
        secret: "blockdelta demo secret".into(),
        cycles: 8,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        compression: Codec::Lz4,
        store: None,
        store_options: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--source" => a.source = Some(val()?.into()),
            "--replica" => a.replica = Some(val()?.into()),
            "--secret" => a.secret = val()?,
            "--compression" => {
                a.compression = match val()?.as_str() {
                    "lz4" => Codec::Lz4,
                    "none" => Codec::Raw,
                    other => return Err(format!("--compression: lz4 or none, not {other:?}")),
                }
            }
            "--threads" => {
                a.threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?;
                if !(1..=256).contains(&a.threads) {
                    return Err("--threads must be 1 to 256".into());
                }
            }
            "--store" => a.store = Some(val()?),
            "--store-option" => {
                let kv = val()?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or(format!("--store-option takes KEY=VALUE, not {kv:?}"))?;
                a.store_options.push((k.to_string(), v.to_string()));
            }
            "--cycles" => {
                a.cycles = val()?.parse().map_err(|e| format!("--cycles: {e}"))?;
                if a.cycles < 2 {
                    return Err("--cycles must be at least 2".into());
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if a.source.is_some() != a.replica.is_some() {
        return Err(format!("--source and --replica go together\n{USAGE}"));
    }
    if a.source.is_some() && a.store.is_some() {
        return Err(format!(
            "--store is for the demo, not with --source\n{USAGE}"
        ));
    }
    if a.store.is_none() && !a.store_options.is_empty() {
        return Err(format!("--store-option needs --store\n{USAGE}"));
    }
    Ok(a)
}

fn run() -> Result<(), Error> {
    let args = parse_args()?;
    match (&args.source, &args.replica) {
        (Some(s), Some(r)) => replicate_existing(s, r, &args),
        _ => demo(&args),
    }
}

fn human(bytes: f64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", U[i])
}

fn rate(bytes: u64, d: Duration) -> String {
    let s = d.as_secs_f64();
    if s > 0.0 {
        format!("{}/s", human(bytes as f64 / s))
    } else {
        "-".into()
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Size of a regular file or a block device.
fn size_of(f: &File) -> std::io::Result<u64> {
    let mut f = f;
    let end = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(0))?;
    Ok(end)
}

/// Everything measured across the run.
#[derive(Default)]
struct Totals {
    cycles: u64,
    recovery_points: u64,
    data_bytes: u64,
    shipped_bytes: u64,
    records: u64,
    encode: Duration,
    apply: Duration,
    verify: Duration,
    verified_bytes: u64,
    expired: u64,
    retention: Duration,
}

/// Where shipped frames go: a replica file through an `Applier`, or a replica store.
#[derive(Clone, Copy)]
enum Dest<'a> {
    File(&'a File),
    Store(&'a Store),
}

enum Sink<'a> {
    File(Box<ParallelApplier<FileTarget>>),
    Store(Box<Ingest<'a>>),
}

/// The shipping side: fixed per disk, reused per checkpoint.
struct Pipeline {
    disk_id: [u8; 16],
    secret: String,
    frame: Vec<u8>,
    extents: Vec<Extent>,
    progress: bool,
    threads: usize,
    compression: Codec,
}

/// One frame out of the encoder goes straight into the applier: memory stays bounded by one frame
/// however large the delta is. Time is split between the two sides.
struct Link<'a, 's> {
    sink: Sink<'s>,
    totals: &'a mut Totals,
}

impl Link<'_, '_> {
    fn send(&mut self, frame: &[u8]) -> Result<(), Error> {
        let t = Instant::now();
        match &mut self.sink {
            Sink::File(applier) => {
                let used = applier.push(frame)?;
                if used != frame.len() {
                    return Err(format!(
                        "the applier left {} bytes of a whole frame unconsumed",
                        frame.len() - used
                    )
                    .into());
                }
            }
            Sink::Store(ingest) => ingest.push(frame)?,
        }
        self.totals.apply += t.elapsed();
        self.totals.shipped_bytes += frame.len() as u64;
        Ok(())
    }
}

impl Pipeline {
    fn new(disk_id: [u8; 16], secret: &str, threads: usize) -> Self {
        Pipeline {
            disk_id,
            secret: secret.into(),
            frame: Vec::new(),
            // Extents are encoded a batch at a time; the encoder's threads drain at each batch's
            // end, so batches are large.
            extents: vec![Extent::default(); 64 * 1024],
            progress: std::io::stderr().is_terminal(),
            threads,
            compression: Codec::Lz4,
        }
    }

    /// Takes a checkpoint of `tracker`, encodes it from `source_path`, verifies and applies it to
    /// `replica`, and commits it; on any failure the checkpoint is aborted (merged back), so
    /// nothing is lost. `replica_size` is the replica's size before this delta: a RESIZE record is
    /// sent first if the disk changed size.
    fn ship(
        &mut self,
        tk: Track<'_>,
        source_path: &Path,
        dest: Dest<'_>,
        replica_size: u64,
        bookmark: Option<Bookmark<'_>>,
        totals: &mut Totals,
    ) -> Result<CheckpointInfo, Error> {
        let tracker = tk.tracker();
        let cp = tk.take()?;
        match self.ship_taken(
            tracker,
            &cp,
            source_path,
            dest,
            replica_size,
            bookmark,
            totals,
        ) {
            Ok((generation, applied)) => {
                // Commit what the replica reports as applied, never what was sent: a checkpoint
                // it did not apply cannot be committed (the tracker checks both values).
                tk.commit(generation, applied)?;
                totals.cycles += 1;
                Ok(cp)
            }
            Err(e) => {
                tracker.abort(cp.sequence)?;
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn ship_taken(
        &mut self,
        tracker: &Tracker,
        cp: &CheckpointInfo,
        source_path: &Path,
        dest: Dest<'_>,
        replica_size: u64,
        bookmark: Option<Bookmark<'_>>,
        totals: &mut Totals,
    ) -> Result<(GenerationId, u64), Error> {
        let mut source = FileSource::new(File::open(source_path)?);
        let mut cfg = EncoderConfig::new(
            self.disk_id,
            cp.generation,
            // The set is everything since the last commit: correct on a replica anywhere from
            // there up to (not including) this checkpoint.
            cp.from_sequence,
            cp.sequence,
            replica_size,
        );
        cfg.block_size = cp.block_size;
        cfg.secret = Some(Secret::new(self.secret.as_bytes())?);
        cfg.compression = self.compression;
        let mut enc = ParallelEncoder::new(cfg, self.threads)?;
        self.frame.resize(enc.max_frame_len(), 0);
        let secret = Secret::new(self.secret.as_bytes())?;
        let sink = match dest {
            Dest::File(replica) => Sink::File(Box::new(ParallelApplier::new(
                DecoderConfig::new().with_secret(secret),
                FileTarget::new(replica.try_clone()?)?,
                self.threads,
            ))),
            Dest::Store(store) => Sink::Store(Box::new(store.ingest(Some(secret))?)),
        };
        let mut link = Link { sink, totals };

        let mut timed = |link: &mut Link, f: Step| {
            let t = Instant::now();
            let n = f(&mut self.frame)?;
            link.totals.encode += t.elapsed();
            if let Some(n) = n {
                link.send(&self.frame[..n])?;
            }
            Ok::<_, Error>(n.is_some())
        };
        timed(&mut link, &mut |dst| Ok(Some(enc.write_header(dst)?)))?;
        if cp.disk_size != replica_size {
            timed(&mut link, &mut |dst| {
                Ok(Some(enc.write_resize(cp.disk_size, dst)?))
            })?;
        }
        let mut cursor = cp.cursor();
        let mut covered = 0u64;
        let mut last_progress = Instant::now();
        loop {
            let k = tracker.extents(&mut cursor, &mut self.extents)?;
            if k == 0 {
                break;
            }
            let batch = &self.extents[..k];
            enc.set_extents(batch)?;
            loop {
                let t = Instant::now();
                let frames = enc.next_frames(&mut source)?;
                link.totals.encode += t.elapsed();
                match frames {
                    Some(frames) => link.send(frames)?,
                    None => break,
                }
            }
            covered += batch.iter().map(|e| e.len).sum::<u64>();
            if self.progress && last_progress.elapsed() > Duration::from_millis(250) {
                eprint!(
                    "\r  shipping checkpoint {}: {} of {}   ",
                    cp.sequence,
                    human(covered as f64),
                    human(cp.dirty_bytes as f64)
                );
                last_progress = Instant::now();
            }
        }
        if let Some(b) = bookmark.as_ref() {
            timed(&mut link, &mut |dst| Ok(Some(enc.write_bookmark(b, dst)?)))?;
            link.totals.recovery_points += 1;
        }
        timed(&mut link, &mut |dst| Ok(Some(enc.finish(dst)?)))?;
        let records = enc.summary().records;
        let t = Instant::now();
        // What the replica applied, as it reports it: the stream it verified and made durable.
        let (generation, to_seq) = match link.sink {
            Sink::File(mut applier) => {
                applier.finish()?;
                let h = applier
                    .header()
                    .ok_or("the applier finished without a stream header")?;
                (h.generation, h.to_seq)
            }
            Sink::Store(ingest) => {
                let done = ingest.finish()?;
                (done.point.id.generation, done.point.id.sequence)
            }
        };
        link.totals.apply += t.elapsed();
        link.totals.records += records;
        link.totals.data_bytes += covered;
        if self.progress {
            eprint!("\r{:60}\r", "");
        }
        Ok((generation, to_seq))
    }
}

/// Compares the first `len` bytes of two files; returns the first differing offset.
fn first_difference(a: &File, b: &File, len: u64) -> std::io::Result<Option<u64>> {
    const CHUNK: usize = 4 << 20;
    let (mut x, mut y) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut off = 0;
    while off < len {
        let n = CHUNK.min((len - off) as usize);
        a.read_exact_at(&mut x[..n], off)?;
        b.read_exact_at(&mut y[..n], off)?;
        if x[..n] != y[..n] {
            let i = x[..n]
                .iter()
                .zip(&y[..n])
                .position(|(p, q)| p != q)
                .unwrap_or(0);
            return Ok(Some(off + i as u64));
        }
        off += n as u64;
    }
    Ok(None)
}

fn verify(
    source: &Path,
    replica: &File,
    len: u64,
    what: &str,
    totals: &mut Totals,
) -> Result<(), Error> {
    let t = Instant::now();
    if let Some(off) = first_difference(&File::open(source)?, replica, len)? {
        return Err(format!("replica differs from the source at byte {off} after {what}").into());
    }
    totals.verify += t.elapsed();
    totals.verified_bytes += len;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// --source / --replica: replicate an existing file or block device, read-only on the source.

fn replicate_existing(source_path: &Path, replica_path: &Path, args: &Args) -> Result<(), Error> {
    let threads = args.threads;
    let source = File::open(source_path)
        .map_err(|e| format!("cannot open source {}: {e}", source_path.display()))?;
    // The replica must exist: this mode never creates or grows files.
    let replica = OpenOptions::new()
        .read(true)
        .write(true)
        .open(replica_path)
        .map_err(|e| format!("cannot open replica {}: {e}", replica_path.display()))?;
    let (sm, rm) = (source.metadata()?, replica.metadata()?);
    if (sm.dev(), sm.ino()) == (rm.dev(), rm.ino()) || (sm.rdev() != 0 && sm.rdev() == rm.rdev()) {
        return Err(format!(
            "source {} and replica {} are the same file",
            source_path.display(),
            replica_path.display()
        )
        .into());
    }
    let source_size = size_of(&source)?;
    let replica_size = size_of(&replica)?;
    if source_size == 0 {
        return Err(format!("source {} is empty", source_path.display()).into());
    }
    if replica_size < source_size {
        return Err(format!(
            "replica {} has {replica_size} bytes, smaller than the source's {source_size}",
            replica_path.display()
        )
        .into());
    }
    if source_size % 512 != 0 {
        return Err(
            format!("source size {source_size} is not a multiple of 512-byte sectors").into(),
        );
    }
    drop(source);

    println!(
        "replicating {} ({}) to {}: full sync, {}AES-256-GCM, then verify",
        source_path.display(),
        human(source_size as f64),
        replica_path.display(),
        if args.compression == Codec::Lz4 {
            "lz4 + "
        } else {
            ""
        }
    );
    // A new tracker starts with every block dirty: its first checkpoint is the full sync.
    // The default granularity: 4 KiB, coarser for disks above about 500 GiB.
    let tracker = Tracker::new(TrackerConfig::new(source_size))?;
    let mut pipe = Pipeline::new(disk_id_from(source_path), &args.secret, threads);
    pipe.compression = args.compression;
    let mut totals = Totals::default();
    let started = Instant::now();
    let bookmark = Bookmark {
        id: 1,
        timestamp_ns: now_ns(),
        kind: BookmarkKind::CrashConsistent,
        label: "full sync",
    };
    let cp = pipe.ship(
        Track::Plain(&tracker),
        source_path,
        Dest::File(&replica),
        source_size,
        Some(bookmark),
        &mut totals,
    )?;
    let synced = started.elapsed();
    println!(
        "full sync: {} in {:.2} s ({}), {} threads, before the verification pass",
        human(source_size as f64),
        synced.as_secs_f64(),
        rate(source_size, synced),
        threads
    );
    verify(
        source_path,
        &replica,
        source_size,
        "the full sync",
        &mut totals,
    )?;
    println!(
        "checkpoint {} of generation {} applied and verified",
        cp.sequence, cp.generation
    );
    summary(&totals, None, started.elapsed());
    Ok(())
}

fn disk_id_from(path: &Path) -> [u8; 16] {
    let mut id = [0u8; 16];
    let name = path.to_string_lossy();
    for (i, b) in name.bytes().enumerate() {
        id[i % 16] ^= b.rotate_left((i / 16) as u32);
    }
    id
}

// ---------------------------------------------------------------------------------------------
// The self-contained demo.

/// splitmix64.
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

#[derive(Default)]
struct Workload {
    written: AtomicU64,
    zero_filled: AtomicU64,
    discarded: AtomicU64,
    ops: AtomicU64,
    /// Writes that waited for the activity log (a cold region: one group commit).
    waited: AtomicU64,
}

/// Admits a write through the activity log (waiting for a cold region's group commit), runs
/// `io` (the write itself), and completes it: the mark, as `discard` or a write.
fn admitted(
    w: &ActivityWriter,
    work: &Workload,
    offset: u64,
    len: u64,
    discard: bool,
    io: impl FnOnce() -> std::io::Result<()>,
) -> std::io::Result<()> {
    let fail = |e: blockdelta::PersistError| std::io::Error::other(e.to_string());
    let token = loop {
        match w.begin(offset, len).map_err(fail)? {
            Admission::Go(token) => break token,
            Admission::Wait(ticket) => {
                work.waited.fetch_add(1, Ordering::Relaxed);
                w.wait(ticket).map_err(fail)?;
            }
        }
    };
    io()?;
    let marked = if discard {
        w.complete_discard(token, offset, len)
    } else {
        w.complete(token, offset, len)
    };
    marked.map_err(|e| std::io::Error::other(e.to_string()))
}

/// Punches a hole in the source (a discard), keeping its size.
fn punch_hole(f: &File, offset: u64, len: u64) -> std::io::Result<()> {
    // SAFETY: fallocate only reads its integer arguments; the descriptor is open for writing.
    let rc = unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        // No hole punching on this file system: a discard may read back as anything; zeros do.
        f.write_all_at(&vec![0u8; len as usize], offset)
    }
}

/// One writer thread: `ops` writes against the current disk size, each admitted through the
/// activity log before it is made and marked when it completed.
fn writer(
    id: u64,
    cycle: u64,
    source: &File,
    w: &ActivityWriter,
    disk: u64,
    work: &Workload,
) -> std::io::Result<()> {
    let mut rng = Rng(0xD15C_0000 ^ (id << 32) ^ cycle);
    let mut recent = [0u64; 32];
    let mut buf = vec![0u8; 256 * KIB as usize];
    let text = b"blockdelta replicates this block: the quick brown fox jumps over the lazy dog. ";
    let hot = disk / 10;
    for n in 0..OPS_PER_WRITER {
        let r = rng.next();
        let len = (4 * KIB) << (r % 7); // 4 KiB .. 256 KiB
        let pick = (r >> 8) % 100;
        let offset = if pick < 30 && n >= 32 {
            recent[(r >> 16) as usize % 32] // a rewrite of a recent block
        } else if pick < 86 {
            (rng.next() % (hot / (4 * KIB))) * 4 * KIB // the hot tenth
        } else {
            (rng.next() % (disk / (4 * KIB))) * 4 * KIB
        }
        .min(disk - len);
        recent[n as usize % 32] = offset;
        let data = &mut buf[..len as usize];
        match r % 100 {
            0..=4 => {
                data.fill(0);
                admitted(w, work, offset, len, false, || {
                    source.write_all_at(data, offset)
                })?;
                work.zero_filled.fetch_add(len, Ordering::Relaxed);
            }
            5..=7 => {
                admitted(w, work, offset, len, true, || {
                    punch_hole(source, offset, len)
                })?;
                work.discarded.fetch_add(len, Ordering::Relaxed);
            }
            _ => {
                // Half the writes look like text or structured data, half like media.
                if r & (1 << 40) != 0 {
                    for (i, b) in data.iter_mut().enumerate() {
                        *b = text[(i + (n as usize)) % text.len()];
                    }
                    data[..8].copy_from_slice(&rng.next().to_le_bytes());
                } else {
                    for chunk in data.chunks_mut(8) {
                        chunk.copy_from_slice(&rng.next().to_le_bytes()[..chunk.len()]);
                    }
                }
                admitted(w, work, offset, len, false, || {
                    source.write_all_at(data, offset)
                })?;
                work.written.fetch_add(len, Ordering::Relaxed);
            }
        }
        work.ops.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Reads `buf.len()` bytes at an offset.
type ReadAt<'a> = &'a mut dyn FnMut(u64, &mut [u8]) -> Result<(), Error>;

/// SHA-256 of every MiB of the first `len` bytes of `f`: what the demo keeps per checkpoint to
/// check old recovery points byte for byte later (a 1 GiB disk costs 32 KiB per checkpoint).
fn mib_hashes(read: ReadAt<'_>, len: u64) -> Result<Vec<[u8; 32]>, Error> {
    let mut out = Vec::with_capacity(len.div_ceil(MIB) as usize);
    let mut buf = vec![0u8; MIB as usize];
    let mut off = 0;
    while off < len {
        let n = MIB.min(len - off) as usize;
        read(off, &mut buf[..n])?;
        let d = ring::digest::digest(&ring::digest::SHA256, &buf[..n]);
        out.push(d.as_ref().try_into().expect("32 bytes"));
        off += n as u64;
    }
    Ok(out)
}

/// Reads recovery point `id` from the store whole and compares it with the source file byte
/// for byte, hashing the source on the way (the hashes check this point again later).
fn verify_point(
    store: &Store,
    id: PointId,
    source: &Path,
    len: u64,
    totals: &mut Totals,
) -> Result<Vec<[u8; 32]>, Error> {
    let t = Instant::now();
    let src = File::open(source)?;
    let mut other = vec![0u8; MIB as usize];
    let hashes = mib_hashes(
        &mut |off, buf| {
            src.read_exact_at(buf, off)?;
            store.read_at(id, off, &mut other[..buf.len()])?;
            if other[..buf.len()] != *buf {
                let i = buf
                    .iter()
                    .zip(&other)
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                return Err(format!(
                    "point {} differs from the source at byte {}",
                    id.sequence,
                    off + i as u64
                )
                .into());
            }
            Ok(())
        },
        len,
    )?;
    totals.verify += t.elapsed();
    totals.verified_bytes += len;
    Ok(hashes)
}

fn demo(args: &Args) -> Result<(), Error> {
    let dir = tempfile::Builder::new()
        .prefix("blockdelta-replicate-")
        .tempdir()?;
    let source_path = dir.path().join("source.img");
    let source = Arc::new(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&source_path)?,
    );
    source.set_len(DEMO_SIZE)?;
    const DISK_ID: [u8; 16] = *b"demo-disk-000001";
    // A short retention so that points visibly expire: at most 6 points.
    let retention = Retention {
        max_points: Some(6),
        ..Retention::default()
    };
    let config = StoreConfig {
        disk_id: DISK_ID,
        retention,
    };
    let (store, location) = match &args.store {
        None => {
            let path = dir.path().join("store");
            (Store::create(&path, config)?, path.display().to_string())
        }
        Some(url) => {
            let options: Vec<(&str, &str)> = args
                .store_options
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            (Store::create_url(url, &options, config)?, url.clone())
        }
    };
    println!(
        "blockdelta {}: replicating a sparse {} image into a replica store at {} ({} cycles, {} writer threads, lz4 + AES-256-GCM, at most {} points kept)",
        blockdelta::VERSION,
        human(DEMO_SIZE as f64),
        location,
        args.cycles,
        WRITERS,
        retention.max_points.unwrap_or(0),
    );

    // The tracker keeps its state in a file beside the store (`PersistentTracker`): a restart
    // of the agent continues the generation with exactly the blocks not yet shipped.
    let state_path = dir.path().join("disk0.tracker");
    let config = TrackerConfig::new(DEMO_SIZE).capacity(DEMO_GROWN);
    let (mut pt, outcome) = PersistentTracker::open(&state_path, config, demo_options(DISK_ID))?;
    if let LoadOutcome::Reset { reason, .. } = &outcome {
        println!("  tracker state         {reason}: a new generation, every block dirty");
    }
    let mut pipe = Pipeline::new(DISK_ID, &args.secret, args.threads);
    pipe.compression = args.compression;
    let mut totals = Totals::default();
    let work = Arc::new(Workload::default());
    let started = Instant::now();
    let mut replica_size = DEMO_SIZE;
    let mut bookmark_id = 0u64;
    // Per quiescent checkpoint: the source's size and SHA-256 per MiB, to check old points.
    let mut oracle: std::collections::HashMap<PointId, (u64, Vec<[u8; 32]>)> = Default::default();
    let point = |cp: &CheckpointInfo| PointId {
        generation: cp.generation,
        sequence: cp.sequence,
    };
    let retain = |store: &Store, totals: &mut Totals| -> Result<(), Error> {
        let t = Instant::now();
        let expired = store.retain(now_ns())?;
        totals.retention += t.elapsed();
        for e in &expired {
            totals.expired += 1;
            println!(
                "             expired point {} ({:?}; {} no longer needed)",
                e.point.id.sequence,
                e.reason,
                human(e.point.exclusive_bytes as f64)
            );
        }
        Ok(())
    };

    // Cycle 0: the initial full sync (a new tracker starts all dirty; zero detection keeps it small).
    bookmark_id += 1;
    let b = Bookmark {
        id: bookmark_id,
        timestamp_ns: now_ns(),
        kind: BookmarkKind::CrashConsistent,
        label: "initial sync",
    };
    let cp = pipe.ship(
        Track::Saved(&pt),
        &source_path,
        Dest::Store(&store),
        replica_size,
        Some(b),
        &mut totals,
    )?;
    let hashes = verify_point(&store, point(&cp), &source_path, cp.disk_size, &mut totals)?;
    oracle.insert(point(&cp), (cp.disk_size, hashes));
    println!(
        "  cycle  0  checkpoint {:3}  initial sync of {} durable as a point and verified",
        cp.sequence,
        human(cp.dirty_bytes as f64)
    );

    let resize_cycle = u64::from(args.cycles).div_ceil(2);
    // A clean restart of the agent in the middle of a cycle, before the resize, and a crash
    // the cycle after.
    let restart_cycle = (resize_cycle > 2).then_some(2);
    let crash_cycle = (resize_cycle > 3).then_some(3);
    for cycle in 1..=u64::from(args.cycles) {
        let shipped_before = totals.shipped_bytes;
        let data_before = totals.data_bytes;
        let written_before =
            work.written.load(Ordering::Relaxed) + work.zero_filled.load(Ordering::Relaxed);
        // Writers run while a checkpoint is taken and shipped: the take races real writes.
        let disk = pt.tracker().geometry().disk_size;
        let handles: Vec<_> = (0..WRITERS as u64)
            .map(|id| {
                let (source, work) = (source.clone(), work.clone());
                let w = pt.writer()?;
                Ok(std::thread::spawn(move || {
                    writer(id, cycle, &source, &w, disk, &work)
                }))
            })
            .collect::<Result<_, Error>>()?;
        std::thread::sleep(Duration::from_millis(20));
        let mid = pipe.ship(
            Track::Saved(&pt),
            &source_path,
            Dest::Store(&store),
            replica_size,
            None,
            &mut totals,
        )?;
        replica_size = mid.disk_size;
        for h in handles {
            h.join().map_err(|_| "a writer thread panicked")??;
        }
        if Some(cycle) == restart_cycle {
            // The writers stopped with blocks not yet shipped: close (the state file saves them
            // as clean), open again (the generation continues, those blocks dirty), and the
            // checkpoint below ships exactly them, not the whole disk.
            let t = Instant::now();
            pt.close()?;
            let (lineage_gen, lineage_seq) = store.lineage().ok_or("no lineage")?;
            let geometry = TrackerConfig::new(replica_size).capacity(DEMO_GROWN);
            let opts = demo_options(DISK_ID).replica_point(lineage_gen, lineage_seq);
            let (reopened, outcome) = PersistentTracker::open(&state_path, geometry, opts)?;
            pt = reopened;
            match outcome {
                LoadOutcome::Resumed {
                    committed,
                    dirty_blocks,
                    ..
                } => println!(
                    "  restart   tracker closed and reopened in {:.1} ms: generation kept, from checkpoint {committed}, {} dirty carried over (not the {} disk)",
                    t.elapsed().as_secs_f64() * 1e3,
                    human((dirty_blocks * u64::from(pt.tracker().block_size())) as f64),
                    human(replica_size as f64),
                ),
                other => {
                    return Err(format!("a clean restart did not resume: {other:?}").into())
                }
            }
        }
        if Some(cycle) == crash_cycle {
            // A crash of the agent after the writers stopped: the tracker is dropped without
            // close (its state file says "active"), as kill -9 would leave it. The reopen
            // recovers from the activity log: the generation continues, and the next checkpoint
            // holds every block changed since the last commit plus at most the log's bound.
            let newest = store.newest().ok_or("no point")?;
            let changed = changed_blocks(&store, newest.id, &source, replica_size)?;
            let bound = demo_log().bound();
            drop(pt);
            let t = Instant::now();
            let (lineage_gen, lineage_seq) = store.lineage().ok_or("no lineage")?;
            let geometry = TrackerConfig::new(replica_size).capacity(DEMO_GROWN);
            let opts = demo_options(DISK_ID).replica_point(lineage_gen, lineage_seq);
            let (reopened, outcome) = PersistentTracker::open(&state_path, geometry, opts)?;
            pt = reopened;
            let LoadOutcome::Recovered {
                committed,
                dirty_blocks,
                log_records,
                ..
            } = outcome
            else {
                return Err(
                    format!("a crash with an activity log did not recover: {outcome:?}").into(),
                );
            };
            let block = u64::from(pt.tracker().block_size());
            let excess = (dirty_blocks * block).saturating_sub(changed);
            if excess > bound {
                return Err(
                    format!("the crash resync exceeds the bound: {excess} > {bound}").into(),
                );
            }
            println!(
                "  crash     tracker dropped without close, recovered in {:.1} ms from {log_records} log records: generation kept, from checkpoint {committed}, {} to resync = {} changed since the last commit + {} excess (bound {}, not the {} disk)",
                t.elapsed().as_secs_f64() * 1e3,
                human((dirty_blocks * block) as f64),
                human(changed as f64),
                human(excess as f64),
                human(bound as f64),
                human(replica_size as f64),
            );
        }
        if cycle == resize_cycle {
            source.set_len(DEMO_GROWN)?;
            pt.resize(DEMO_GROWN)?; // recorded at once: a crash from here on recovers with it
        }
        // Quiescent: ship the rest with a recovery point and check it byte for byte.
        bookmark_id += 1;
        let (kind, label) = if cycle % 3 == 0 {
            (
                BookmarkKind::ApplicationConsistent,
                "application-consistent",
            )
        } else {
            (BookmarkKind::CrashConsistent, "crash-consistent")
        };
        let b = Bookmark {
            id: bookmark_id,
            timestamp_ns: now_ns(),
            kind,
            label,
        };
        let cp = pipe.ship(
            Track::Saved(&pt),
            &source_path,
            Dest::Store(&store),
            replica_size,
            Some(b),
            &mut totals,
        )?;
        let resized = cp.disk_size != replica_size;
        replica_size = cp.disk_size;
        let hashes = verify_point(&store, point(&cp), &source_path, cp.disk_size, &mut totals)?;
        oracle.insert(point(&cp), (cp.disk_size, hashes));
        let written = work.written.load(Ordering::Relaxed)
            + work.zero_filled.load(Ordering::Relaxed)
            - written_before;
        println!(
            "  cycle {cycle:2}  points {:3},{:3}  written {:>9}  changed {:>9}  shipped {:>9}  {}{}verified",
            mid.sequence,
            cp.sequence,
            human(written as f64),
            human((totals.data_bytes - data_before) as f64),
            human((totals.shipped_bytes - shipped_before) as f64),
            if resized { format!("resized to {}  ", human(cp.disk_size as f64)) } else { String::new() },
            format_args!("bookmark {bookmark_id} ({label})  "),
        );
        retain(&store, &mut totals)?;
    }

    // Old points: every listed point that was quiescent is read whole and checked against the
    // SHA-256 of every MiB of the source at that checkpoint.
    println!();
    let t = Instant::now();
    let mut checked = 0;
    for p in store.points() {
        let Some((len, want)) = oracle.get(&p.id) else {
            continue;
        };
        let got = mib_hashes(&mut |off, buf| Ok(store.read_at(p.id, off, buf)?), *len)?;
        if got != *want {
            let i = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
            return Err(format!(
                "old point {} differs from the source in MiB {i}",
                p.id.sequence
            )
            .into());
        }
        checked += 1;
    }
    let old_points_time = t.elapsed();
    println!(
        "  old points            {checked} read back whole and identical to the source at their checkpoints ({:.1} s)",
        old_points_time.as_secs_f64()
    );

    // Failover: export the newest point to a sparse file.
    let newest = store.newest().ok_or("the store has no point")?;
    let export_path = dir.path().join("failover.img");
    let t = Instant::now();
    store.export_file(newest.id, &export_path)?;
    let export_time = t.elapsed();
    let exported = File::open(&export_path)?;
    if let Some(off) = first_difference(&File::open(&source_path)?, &exported, newest.disk_size)? {
        return Err(format!("the exported point differs from the source at byte {off}").into());
    }
    println!(
        "  export                point {} to {} ({} allocated of {}) in {:.2} s, identical to the source",
        newest.id.sequence,
        export_path.display(),
        human((exported.metadata()?.blocks() * 512) as f64),
        human(newest.disk_size as f64),
        export_time.as_secs_f64()
    );

    // Rollback to the oldest point, then re-sync only what differs.
    let points = store.points();
    let target = points.first().ok_or("no point")?.clone();
    let t = Instant::now();
    let rb = store.rollback(target.id)?;
    pt.adopt_lineage(rb.generation, rb.sequence, &rb.extents)?;
    let differing: u64 = rb.extents.iter().map(|e| e.len).sum();
    let shipped_before = totals.shipped_bytes;
    let cp = pipe.ship(
        Track::Saved(&pt),
        &source_path,
        Dest::Store(&store),
        target.disk_size,
        None,
        &mut totals,
    )?;
    let rollback_time = t.elapsed();
    verify_point(&store, point(&cp), &source_path, cp.disk_size, &mut totals)?;
    let detached = store.discard_detached()?;
    println!(
        "  rollback              to point {} then re-synced {} in {} extents ({} on the wire, not the {} disk) in {:.2} s; verified; {detached} detached points discarded",
        target.id.sequence,
        human(differing as f64),
        rb.extents.len(),
        human((totals.shipped_bytes - shipped_before) as f64),
        human(cp.disk_size as f64),
        rollback_time.as_secs_f64()
    );
    // The activity log since the last open (after the crash), and every write's wait.
    if let Some(al) = pt.activity_stats() {
        let ops = work.ops.load(Ordering::Relaxed);
        let waited = work.waited.load(Ordering::Relaxed);
        println!(
            "  activity log          {waited} of {ops} writes ({:.1} %) waited for a group commit; since the crash: {} group commits (fsyncs) activated {} regions ({:.2} per fsync), {} evictions",
            100.0 * waited as f64 / ops.max(1) as f64,
            al.group_commits,
            al.activations,
            al.activations as f64 / al.group_commits.max(1) as f64,
            al.evictions
        );
    }
    // Shutdown: the state file saves the tracker clean; the next run would continue it.
    pt.close()?;
    println!(
        "  tracker state         saved clean in {} ({} bytes): a restart continues the generation",
        state_path.display(),
        std::fs::metadata(&state_path)?.len()
    );

    println!();
    println!("recovery points");
    println!(
        "  {:>8}  {:>4}  {:<24}  {:>10}  {:>10}  {:>10}",
        "gen", "seq", "kind", "size", "stored", "exclusive"
    );
    for p in store.points() {
        let kind = match p.consistency {
            BookmarkKind::ApplicationConsistent => "application-consistent",
            _ => "crash-consistent",
        };
        println!(
            "  {:>8}  {:>4}  {:<24}  {:>10}  {:>10}  {:>10}",
            p.id.generation.0[..4]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            p.id.sequence,
            kind,
            human(p.disk_size as f64),
            human(p.stored_bytes as f64),
            human(p.exclusive_bytes as f64)
        );
    }
    let st = store.stats();
    println!(
        "  store                 {} on disk: {} packs, {} live data, {} reclaimable",
        human(st.bytes as f64),
        st.packs,
        human(st.live_data_bytes as f64),
        human(st.dead_data_bytes as f64)
    );
    println!(
        "  expired by retention  {} points in {:.2} s",
        totals.expired,
        totals.retention.as_secs_f64()
    );
    summary(&totals, Some(&work), started.elapsed());
    Ok(())
}

/// The demo's activity log: 64 regions of 2 MiB (a crash resyncs at most 128 MiB beyond what
/// changed), so that the run shows evictions and group commits on its small disk.
fn demo_log() -> ActivityLogConfig {
    ActivityLogConfig::default()
        .region_size(2 * MIB)
        .active_regions(64)
}

fn demo_options(disk_id: [u8; 16]) -> PersistOptions {
    PersistOptions::new(disk_id).activity_log(demo_log())
}

/// Bytes of the 4 KiB blocks of `source` (its first `len` bytes) that differ from `point`.
fn changed_blocks(store: &Store, point: PointId, source: &File, len: u64) -> Result<u64, Error> {
    let mut a = vec![0u8; MIB as usize];
    let mut b = vec![0u8; MIB as usize];
    let mut changed = 0;
    let mut off = 0;
    while off < len {
        let n = (len - off).min(MIB) as usize;
        store.read_at(point, off, &mut a[..n])?;
        source.read_exact_at(&mut b[..n], off)?;
        for (x, y) in a[..n]
            .chunks(4 * KIB as usize)
            .zip(b[..n].chunks(4 * KIB as usize))
        {
            if x != y {
                changed += x.len() as u64;
            }
        }
        off += n as u64;
    }
    Ok(changed)
}

fn summary(t: &Totals, work: Option<&Workload>, elapsed: Duration) {
    println!();
    println!("summary");
    if let Some(w) = work {
        println!(
            "  workload              {} writes: {} written, {} zero-filled, {} discarded",
            w.ops.load(Ordering::Relaxed),
            human(w.written.load(Ordering::Relaxed) as f64),
            human(w.zero_filled.load(Ordering::Relaxed) as f64),
            human(w.discarded.load(Ordering::Relaxed) as f64)
        );
    }
    println!(
        "  changed data shipped  {} in {} records",
        human(t.data_bytes as f64),
        t.records
    );
    println!(
        "  bytes on the wire     {} (compression ratio {:.2}x, zeros sent as ranges)",
        human(t.shipped_bytes as f64),
        t.data_bytes as f64 / t.shipped_bytes.max(1) as f64
    );
    println!(
        "  encode (read+lz4+gcm) {} of changed data",
        rate(t.data_bytes, t.encode)
    );
    println!(
        "  decode + apply/ingest {} of changed data",
        rate(t.data_bytes, t.apply)
    );
    println!(
        "  verify                {} compared",
        rate(t.verified_bytes, t.verify)
    );
    println!("  checkpoints shipped   {}", t.cycles);
    println!("  recovery points       {}", t.recovery_points);
    println!("  elapsed               {:.1} s", elapsed.as_secs_f64());
    println!("  replica               byte-identical to the source after every cycle");
    println!("  time per stage        encode {:.2} s, decode + ingest {:.2} s, verify {:.2} s, retention {:.2} s",
        t.encode.as_secs_f64(), t.apply.as_secs_f64(), t.verify.as_secs_f64(), t.retention.as_secs_f64());
    let _ = std::io::stdout().flush();
}
