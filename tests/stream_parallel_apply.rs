//! `ParallelApplier` against `Applier`: for every input, the same outcome.
//!
//! A recording target logs every call (writes by offset, length and CRC of the bytes) and the
//! thread it came on. For random streams (raw, lz4, encrypted; DATA, ZERO, DISCARD, RESIZE both
//! ways, BOOKMARK; records of 512 B to 1 MiB) pushed whole and in random chunks at 1, 2 and 4
//! threads, the parallel applier must make exactly the sequential applier's calls and report
//! the same `Applied`. For every single-byte corruption (plain, and re-signed so that it passes
//! the CRC), every truncation, and reordered, dropped and duplicated frames of small streams, and
//! a random sample over a larger one, it must fail with the same error variant after exactly
//! the same calls (so nothing of a bad frame, nor anything after it, is ever applied, and
//! everything before it is). A failing target call stops both at the same call. Dropping a
//! parallel applier mid-stream joins its threads.

use std::io;
use std::sync::mpsc;
use std::thread::{self, ThreadId};
use std::time::Duration;

use blockdelta::{
    Applied, Applier, ApplyTarget, Bookmark, BookmarkKind, Codec, DecoderConfig, EncodeCursor,
    Encoder, EncoderConfig, EndSummary, Extent, GenerationId, ParallelApplier, Secret, StreamError,
};

const SECRET: &[u8] = b"parallel apply test secret";

/// One call made to the target.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    Write { offset: u64, len: usize, crc: u32 },
    Zeroes { offset: u64, len: u64 },
    Discard { offset: u64, len: u64 },
    Resize(u64),
    Sync,
    Size,
    MaxSize,
}

/// An in-memory disk that logs every call, can fail its `fail_at`-th call, and counts calls made
/// on another thread than the one that built it.
struct Recorder {
    disk: Vec<u8>,
    max: Option<u64>,
    log: Vec<Call>,
    fail_at: Option<usize>,
    owner: ThreadId,
    off_thread: usize,
}

impl Recorder {
    fn new(size: usize, max: Option<u64>) -> Self {
        Recorder {
            disk: vec![0xa5; size],
            max,
            log: Vec::new(),
            fail_at: None,
            owner: thread::current().id(),
            off_thread: 0,
        }
    }

    fn call(&mut self, c: Call) -> io::Result<()> {
        if thread::current().id() != self.owner {
            self.off_thread += 1;
        }
        self.log.push(c);
        if self.fail_at == Some(self.log.len() - 1) {
            return Err(io::Error::other("injected target failure"));
        }
        Ok(())
    }
}

impl ApplyTarget for Recorder {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let crc = crc32fast::hash(data);
        self.call(Call::Write {
            offset,
            len: data.len(),
            crc,
        })?;
        self.disk.write_at(offset, data)
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.call(Call::Zeroes { offset, len })?;
        self.disk.write_zeroes(offset, len)
    }
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.call(Call::Discard { offset, len })?;
        self.disk.discard(offset, len)
    }
    fn resize(&mut self, new_size: u64) -> io::Result<()> {
        self.call(Call::Resize(new_size))?;
        ApplyTarget::resize(&mut self.disk, new_size)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.call(Call::Sync)
    }
    fn size(&mut self) -> io::Result<Option<u64>> {
        self.call(Call::Size)?;
        Ok(Some(self.disk.len() as u64))
    }
    fn max_size(&mut self) -> io::Result<Option<u64>> {
        self.call(Call::MaxSize)?;
        Ok(self.max)
    }
}

/// xorshift64*, seeded.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy, Debug)]
struct Kind {
    codec: Codec,
    encrypted: bool,
    record_size: u32,
    disk_size: u64,
}

impl Kind {
    fn lz4(encrypted: bool, record_size: u32, disk_size: u64) -> Kind {
        Kind {
            codec: Codec::Lz4,
            encrypted,
            record_size,
            disk_size,
        }
    }
}

/// A source disk: runs of text-like bytes, random bytes and zeros.
fn source(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut d = vec![0u8; size];
    let mut at = 0;
    while at < size {
        let run = (1 + rng.below(20_000) as usize).min(size - at);
        match rng.below(3) {
            0 => d[at..at + run]
                .iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = b"the quick brown fox "[(at + i) % 20]),
            1 => d[at..at + run]
                .iter_mut()
                .for_each(|b| *b = rng.next() as u8),
            _ => {}
        }
        at += run;
    }
    d
}

/// A random stream of `kind`: ascending DATA, ZERO and DISCARD extents, bookmarks, and a growing
/// or shrinking RESIZE now and then.
fn stream(seed: u64, kind: Kind) -> Vec<u8> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let max_size = kind.disk_size * 2;
    let mut src = source(&mut rng, max_size as usize);
    let mut cfg = EncoderConfig::new(
        *b"parallel-apply-1",
        GenerationId([9; 16]),
        3,
        4,
        kind.disk_size,
    );
    cfg.compression = kind.codec;
    cfg.record_size = kind.record_size;
    // 1 MiB records stay whole (zero detection would cut them at every zero block of the
    // source): the applier sees the largest frames.
    cfg.zero_detection = kind.record_size < 1 << 20;
    cfg.secret = kind.encrypted.then(|| Secret::new(SECRET).unwrap());
    let mut enc = Encoder::new(cfg).unwrap();
    let mut frame = vec![0u8; enc.max_frame_len()];
    let mut out = Vec::new();
    let n = enc.write_header(&mut frame).unwrap();
    out.extend_from_slice(&frame[..n]);
    let (mut at, mut size) = (0u64, kind.disk_size);
    let mut bookmarks = 0u64;
    while at < size {
        let gap = rng.below(u64::from(kind.record_size));
        let start = at + gap;
        if start >= size {
            break;
        }
        let len = (1 + rng.below(3 * u64::from(kind.record_size))).min(size - start);
        let n = match rng.below(10) {
            0 => enc.write_zero(start, len, &mut frame).unwrap(),
            1 => enc.write_discard(start, len, &mut frame).unwrap(),
            2 => {
                bookmarks += 1;
                let b = Bookmark {
                    id: bookmarks,
                    timestamp_ns: 1_700_000_000_000_000_000 + bookmarks,
                    kind: BookmarkKind::CrashConsistent,
                    label: "point",
                };
                let n = enc.write_bookmark(&b, &mut frame).unwrap();
                out.extend_from_slice(&frame[..n]);
                continue;
            }
            3 => {
                // Grow, or shrink no lower than where the extents are.
                let new_size = if rng.below(2) == 0 {
                    (size + 1 + rng.below(kind.disk_size / 2)).min(max_size)
                } else {
                    at + rng.below(size - at) + 1
                };
                size = new_size;
                let n = enc.write_resize(new_size, &mut frame).unwrap();
                out.extend_from_slice(&frame[..n]);
                continue;
            }
            _ => {
                let extent = [Extent::new(start, len)];
                let mut cursor = EncodeCursor::default();
                while let Some(n) = enc
                    .next_frame(&extent, &mut cursor, &mut src, &mut frame)
                    .unwrap()
                {
                    out.extend_from_slice(&frame[..n]);
                }
                at = start + len;
                continue;
            }
        };
        out.extend_from_slice(&frame[..n]);
        at = start + len;
    }
    let n = enc.finish(&mut frame).unwrap();
    out.extend_from_slice(&frame[..n]);
    out
}

fn config(encrypted: bool) -> DecoderConfig {
    let c = DecoderConfig::new();
    if encrypted {
        c.with_secret(Secret::new(SECRET).unwrap())
    } else {
        c
    }
}

/// The applier under test: the sequential one, or the parallel one with a thread count.
enum Engine {
    Sequential(Applier<Recorder>),
    Parallel(ParallelApplier<Recorder>),
}

impl Engine {
    fn new(threads: Option<usize>, encrypted: bool, target: Recorder) -> Self {
        match threads {
            None => Engine::Sequential(Applier::new(config(encrypted), target)),
            Some(t) => Engine::Parallel(ParallelApplier::new(config(encrypted), target, t)),
        }
    }
    fn push(&mut self, input: &[u8]) -> Result<usize, StreamError> {
        match self {
            Engine::Sequential(a) => a.push(input),
            Engine::Parallel(a) => a.push(input),
        }
    }
    fn consumed(&self) -> usize {
        match self {
            Engine::Sequential(a) => a.consumed(),
            Engine::Parallel(a) => a.consumed(),
        }
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        match self {
            Engine::Sequential(_) => Ok(()),
            Engine::Parallel(a) => a.flush(),
        }
    }
    fn finish(&mut self) -> Result<EndSummary, StreamError> {
        match self {
            Engine::Sequential(a) => a.finish(),
            Engine::Parallel(a) => a.finish(),
        }
    }
    fn applied(&self) -> Option<Applied> {
        match self {
            Engine::Sequential(a) => a.applied(),
            Engine::Parallel(a) => a.applied(),
        }
    }
    fn into_target(self) -> Recorder {
        match self {
            Engine::Sequential(a) => a.into_target(),
            Engine::Parallel(a) => a.into_target(),
        }
    }
}

/// The variant name of an error (`ChecksumMismatch`, `TargetIo`, ...).
fn variant(e: &StreamError) -> String {
    let s = format!("{e:?}");
    s.split([' ', '{', '(']).next().unwrap().to_string()
}

/// What a run of an applier over one input gave.
#[derive(Clone, PartialEq, Eq)]
struct Outcome {
    /// The first error of push / flush, and the bytes of that push before the failing frame
    /// when the input was pushed whole.
    error: Option<(String, Option<usize>)>,
    /// `finish` afterwards.
    finish: Result<EndSummary, String>,
    applied: Option<Applied>,
    log: Vec<Call>,
    disk: Vec<u8>,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("error", &self.error)
            .field("finish", &self.finish)
            .field("applied", &self.applied)
            .field("log", &self.log)
            .field(
                "disk (len, crc)",
                &(self.disk.len(), crc32fast::hash(&self.disk)),
            )
            .finish()
    }
}

/// Pushes `input` in chunks of the sizes `chunks` gives (the unconsumed tail is kept and pushed
/// again with the next chunk), then flushes and finishes.
fn run(
    mut engine: Engine,
    input: &[u8],
    mut chunks: impl FnMut() -> usize,
    whole: bool,
) -> Outcome {
    let mut pending: Vec<u8> = Vec::new();
    let mut at = 0;
    let mut error = None;
    while at < input.len() {
        let n = if whole { input.len() } else { chunks().max(1) };
        let n = n.min(input.len() - at);
        pending.extend_from_slice(&input[at..at + n]);
        at += n;
        match engine.push(&pending) {
            Ok(used) => {
                pending.drain(..used);
            }
            Err(e) => {
                error = Some((variant(&e), whole.then(|| engine.consumed())));
                break;
            }
        }
    }
    if error.is_none() {
        if let Err(e) = engine.flush() {
            error = Some((variant(&e), None));
        }
    }
    let finish = engine.finish().map_err(|e| variant(&e));
    let applied = engine.applied();
    let target = engine.into_target();
    assert_eq!(target.off_thread, 0, "a target call came on another thread");
    Outcome {
        error,
        finish,
        applied,
        log: target.log,
        disk: target.disk,
    }
}

fn target_for(kind: Kind) -> Recorder {
    Recorder::new(kind.disk_size as usize, Some(kind.disk_size * 2))
}

/// The parallel run `p` made the same calls, left the same bytes and failed with the same
/// error variant as the sequential run `r`. An error may surface on a later push or on flush;
/// when it surfaces on a push of the whole input, `consumed` is the sequential applier's too.
fn same(p: &Outcome, r: &Outcome, what: &str) {
    let strip = |o: &Outcome| Outcome {
        error: o.error.clone().map(|(v, _)| (v, None)),
        ..o.clone()
    };
    assert_eq!(strip(p), strip(r), "{what}");
    if let (Some((_, Some(c))), Some((_, Some(rc)))) = (&p.error, &r.error) {
        assert_eq!(c, rc, "{what}: consumed");
    }
}

/// `Applier` and `ParallelApplier` at `threads` agree on `input`, pushed whole and in chunks.
fn agree(kind: Kind, input: &[u8], threads: &[usize], rng: &mut Rng, max_chunk: u64) -> Outcome {
    let reference = run(
        Engine::new(None, kind.encrypted, target_for(kind)),
        input,
        || 0,
        true,
    );
    for &t in threads {
        let whole = run(
            Engine::new(Some(t), kind.encrypted, target_for(kind)),
            input,
            || 0,
            true,
        );
        same(&whole, &reference, &format!("threads {t}, pushed whole"));
        let chunked = run(
            Engine::new(Some(t), kind.encrypted, target_for(kind)),
            input,
            || 1 + rng.below(max_chunk) as usize,
            false,
        );
        same(
            &chunked,
            &reference,
            &format!("threads {t}, pushed in chunks"),
        );
    }
    reference
}

const TINY: u32 = 512;

fn kinds(record_size: u32, disk_size: u64) -> Vec<Kind> {
    let mut v = Vec::new();
    for (codec, encrypted) in [
        (Codec::Raw, false),
        (Codec::Lz4, false),
        (Codec::Raw, true),
        (Codec::Lz4, true),
    ] {
        v.push(Kind {
            codec,
            encrypted,
            record_size,
            disk_size,
        });
    }
    v
}

#[test]
fn random_streams_apply_exactly_as_the_sequential_applier() {
    let mut rng = Rng(0x5eed);
    let mut streams = 0;
    for kind in kinds(TINY, 64 << 10)
        .into_iter()
        .chain(kinds(64 << 10, 4 << 20))
    {
        for seed in 0..3 {
            let s = stream(seed * 31 + u64::from(kind.record_size), kind);
            let max_chunk = 3 * u64::from(kind.record_size);
            let out = agree(kind, &s, &[1, 2, 4], &mut rng, max_chunk);
            assert_eq!(out.error, None, "{kind:?} seed {seed}");
            assert!(out.applied.is_some(), "{kind:?} seed {seed}");
            assert!(out.log.len() > 3, "{kind:?}: {:?}", out.log);
            streams += 1;
        }
    }
    assert_eq!(streams, 24);
}

#[test]
fn one_mib_records_apply_exactly_as_the_sequential_applier() {
    let mut rng = Rng(0x1111);
    for kind in [Codec::Lz4, Codec::Raw].map(|codec| Kind {
        codec,
        encrypted: codec == Codec::Lz4,
        record_size: 1 << 20,
        disk_size: 16 << 20,
    }) {
        let s = stream(7, kind);
        let out = agree(kind, &s, &[1, 2, 4], &mut rng, 3 << 20);
        assert_eq!(out.error, None);
        let writes = out
            .log
            .iter()
            .filter(|c| matches!(c, Call::Write { len, .. } if *len == 1 << 20))
            .count();
        assert!(
            writes >= 2,
            "whole 1 MiB records: {writes} in {:?}",
            out.log
        );
    }
}

/// Frames of a stream: (start, end) of each.
fn frames(s: &[u8]) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let mut at = 0;
    while at + 24 <= s.len() {
        let len = 24 + u32::from_le_bytes(s[at + 16..at + 20].try_into().unwrap()) as usize;
        v.push((at, at + len));
        at += len;
    }
    v
}

/// Recomputes the CRC of the frame that holds byte `i` (unless `i` is in the CRC itself), so
/// that a corruption gets past the CRC to the later checks.
fn resign(s: &mut [u8], i: usize) {
    for (a, b) in frames(s) {
        if (a..b).contains(&i) && !(a + 20..a + 24).contains(&i) && b <= s.len() {
            let mut h = crc32fast::Hasher::new();
            h.update(&s[a..a + 20]);
            h.update(&s[a + 24..b]);
            let crc = h.finalize();
            s[a + 20..a + 24].copy_from_slice(&crc.to_le_bytes());
        }
    }
}

/// Checks one hostile input against the sequential applier at 2 or 4 threads; returns the error.
fn hostile(kind: Kind, input: &[u8], threads: usize, rng: &mut Rng) -> Option<String> {
    let out = agree(kind, input, &[threads], rng, 100);
    out.error.map(|(v, _)| v).or(out.finish.err())
}

fn small_kinds() -> Vec<Kind> {
    kinds(TINY, 6 << 10)
}

#[test]
fn every_single_byte_corruption_fails_as_in_the_sequential_applier() {
    let mut rng = Rng(0xbad);
    let mut errors = std::collections::BTreeMap::<String, usize>::new();
    for kind in small_kinds() {
        let s = stream(3, kind);
        assert!(
            frames(&s).len() >= 6,
            "{kind:?}: {} frames",
            frames(&s).len()
        );
        for i in 0..s.len() {
            for (k, flip) in [0x01u8, 0x80, 0xff].into_iter().enumerate() {
                let mut bad = s.clone();
                bad[i] ^= flip;
                let threads = 2 + 2 * ((i + k) % 2);
                if let Some(v) = hostile(kind, &bad, threads, &mut rng) {
                    *errors.entry(v).or_default() += 1;
                }
                // The same change with the frame's CRC recomputed: record-level checks.
                resign(&mut bad, i);
                if let Some(v) = hostile(kind, &bad, threads, &mut rng) {
                    *errors.entry(v).or_default() += 1;
                }
            }
        }
    }
    // The corruptions reach the checks of every stage, not only the CRC.
    for v in [
        "ChecksumMismatch",
        "BadMagic",
        "FrameOutOfOrder",
        "AuthenticationFailed",
        "MalformedRecord",
        "ExtentOverlap",
        "ExtentOutOfRange",
        "EndMismatch",
        "DecompressFailed",
        "OversizedLength",
    ] {
        assert!(errors.contains_key(v), "no {v}: {errors:?}");
    }
}

#[test]
fn truncated_reordered_dropped_and_duplicated_frames_fail_as_in_the_sequential_applier() {
    let mut rng = Rng(0xcafe);
    for kind in small_kinds() {
        let s = stream(5, kind);
        for len in 0..s.len() {
            let e = hostile(kind, &s[..len], 2 + 2 * (len % 2), &mut rng);
            assert_eq!(e.as_deref(), Some("Truncated"), "{kind:?} cut at {len}");
        }
        // Trailing bytes after END: a whole frame, a partial one, garbage.
        for extra in [&s[..200], &s[..10], b"junk".as_slice()] {
            let mut t = s.clone();
            t.extend_from_slice(extra);
            let e = hostile(kind, &t, 2, &mut rng);
            assert_eq!(e.as_deref(), Some("TrailingData"), "{kind:?}");
        }
        let f = frames(&s);
        let piece = |k: usize| &s[f[k].0..f[k].1];
        for k in 1..f.len() {
            // Frame k dropped, duplicated, swapped with the next.
            let mut dropped = s[..f[k].0].to_vec();
            dropped.extend_from_slice(&s[f[k].1..]);
            let mut dup = s[..f[k].1].to_vec();
            dup.extend_from_slice(&s[f[k].0..]);
            for bad in [dropped, dup] {
                let e = hostile(kind, &bad, 2, &mut rng);
                assert!(e.is_some(), "{kind:?} frame {k}");
            }
            if k + 1 < f.len() {
                let mut swapped = s[..f[k].0].to_vec();
                swapped.extend_from_slice(piece(k + 1));
                swapped.extend_from_slice(piece(k));
                swapped.extend_from_slice(&s[f[k + 1].1..]);
                let e = hostile(kind, &swapped, 4, &mut rng);
                assert_eq!(e.as_deref(), Some("FrameOutOfOrder"), "{kind:?} frame {k}");
            }
        }
    }
}

#[test]
fn random_corruptions_of_a_larger_stream_fail_as_in_the_sequential_applier() {
    let mut rng = Rng(0xf00d);
    for kind in [false, true].map(|encrypted| Kind::lz4(encrypted, 16 << 10, 1 << 20)) {
        let s = stream(11, kind);
        assert!(frames(&s).len() > 20);
        for round in 0..60 {
            let mut bad = s.clone();
            let i = rng.below(s.len() as u64) as usize;
            bad[i] ^= 1 << (rng.below(8) as u8);
            if round % 2 == 1 {
                resign(&mut bad, i);
            }
            let e = hostile(kind, &bad, 2 + 2 * (round % 2), &mut rng);
            assert!(e.is_some(), "{kind:?}: byte {i}");
        }
    }
}

#[test]
fn a_failing_target_call_stops_both_appliers_at_that_call() {
    let kind = Kind::lz4(true, 4096, 256 << 10);
    let s = stream(21, kind);
    let calls = run(Engine::new(None, true, target_for(kind)), &s, || 0, true)
        .log
        .len();
    assert!(calls > 20, "{calls} calls");
    let mut rng = Rng(3);
    for fail_at in 0..calls {
        let make = || {
            let mut t = target_for(kind);
            t.fail_at = Some(fail_at);
            t
        };
        let reference = run(Engine::new(None, true, make()), &s, || 0, true);
        assert_eq!(reference.log.len(), fail_at + 1);
        for threads in [2, 4] {
            let whole = run(Engine::new(Some(threads), true, make()), &s, || 0, true);
            same(
                &whole,
                &reference,
                &format!("call {fail_at}, threads {threads}"),
            );
            let chunked = run(
                Engine::new(Some(threads), true, make()),
                &s,
                || 1 + rng.below(20_000) as usize,
                false,
            );
            // Nothing after the failing call, whichever push it came on.
            assert_eq!(
                chunked.log, reference.log,
                "call {fail_at}, threads {threads}"
            );
            assert_eq!(chunked.disk, reference.disk);
            assert_eq!(
                chunked.error.map(|(v, _)| v),
                reference.error.clone().map(|(v, _)| v)
            );
        }
    }
}

#[test]
fn dropping_a_parallel_applier_mid_stream_joins_its_threads() {
    let kind = Kind::lz4(true, 64 << 10, 4 << 20);
    let s = stream(1, kind);
    let (tx, rx) = mpsc::channel();
    let s2 = s.clone();
    thread::spawn(move || {
        for threads in [2, 4, 8] {
            for cut in [s2.len() / 3, s2.len() / 2, s2.len() - 30] {
                let mut a = ParallelApplier::new(config(true), target_for(kind), threads);
                let used = a.push(&s2[..cut]).unwrap();
                assert!(used > 0);
                drop(a);
                // And giving the target back mid-stream: only applied frames are in it.
                let mut a = ParallelApplier::new(config(true), target_for(kind), threads);
                a.push(&s2[..cut]).unwrap();
                let t = a.into_target();
                assert_eq!(t.off_thread, 0);
            }
        }
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("dropping a parallel applier hung");
}

#[test]
fn the_thread_count_is_fixed_at_the_first_push() {
    let kind = Kind::lz4(false, 4096, 64 << 10);
    let s = stream(2, kind);
    // It can move to another thread with its target (its workers go with it).
    fn send<T: Send>(_: &T) {}
    let mut a = ParallelApplier::new(config(false), target_for(kind), 0);
    send(&a);
    assert_eq!(a.threads(), 1);
    assert!(matches!(
        a.set_threads(0),
        Err(StreamError::InvalidArgument { .. })
    ));
    assert!(matches!(
        a.set_threads(65),
        Err(StreamError::InvalidArgument { .. })
    ));
    a.set_threads(3).unwrap();
    assert_eq!(a.push(&s).unwrap(), s.len());
    assert!(matches!(
        a.set_threads(2),
        Err(StreamError::InvalidState { .. })
    ));
    assert_eq!(a.threads(), 3);
    a.finish().unwrap();
    assert!(a.is_finished());
    assert_eq!(a.header().unwrap().to_seq, 4);
    // After END: nothing is a no-op, bytes are trailing data, and the totals stay.
    assert_eq!(a.push(&[]).unwrap(), 0);
    assert!(matches!(
        a.push(b"x"),
        Err(StreamError::TrailingData { len: 1 })
    ));
    assert!(a.finish().is_ok());
}

/// `apply_from` reads a stream from an `io::Read` (here one that returns odd-sized pieces) and
/// ends where `Applier::apply_from` ends: the same calls and bytes, the same END totals, and on a
/// damaged stream the same error with the same calls made before it.
#[test]
fn apply_from_a_reader_matches_the_sequential_applier() {
    /// A reader handing out at most `step` bytes per read.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }
    impl io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }
    let mut checked = 0;
    for kind in kinds(64 << 10, 4 << 20) {
        let good = stream(7 + u64::from(kind.encrypted), kind);
        let mut bad = good.clone();
        let at = bad.len() / 2;
        bad[at] ^= 0x40;
        for (input, damaged) in [(&good, false), (&bad, true)] {
            let mut seq = Applier::new(config(kind.encrypted), target_for(kind));
            let want = seq.apply_from(&input[..]).map_err(|e| variant(&e));
            assert_eq!(want.is_err(), damaged, "{kind:?}: {want:?}");
            let want_target = seq.into_target();
            for (threads, step) in [(2, 4096), (4, 100_003), (2, usize::MAX)] {
                let mut par =
                    ParallelApplier::new(config(kind.encrypted), target_for(kind), threads);
                let got = par
                    .apply_from(Trickle { data: input, step })
                    .map_err(|e| variant(&e));
                assert_eq!(got, want, "{kind:?} threads {threads} step {step}");
                let t = par.into_target();
                assert_eq!(t.off_thread, 0);
                assert_eq!(
                    t.log, want_target.log,
                    "{kind:?} threads {threads} step {step}"
                );
                assert!(
                    t.disk == want_target.disk,
                    "{kind:?} threads {threads}: disk differs"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 24);
}

/// A read interrupted by a signal (`EINTR`) is retried, by both appliers.
#[test]
fn apply_from_retries_an_interrupted_read() {
    struct Interrupting<'a> {
        data: &'a [u8],
        calls: usize,
    }
    impl io::Read for Interrupting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls % 2 == 1 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(self.data.len()).min(70_000);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }
    let kind = kinds(64 << 10, 4 << 20)[3];
    let s = stream(13, kind);
    let mut seq = Applier::new(config(true), target_for(kind));
    let want = seq.apply_from(Interrupting { data: &s, calls: 0 }).unwrap();
    let mut par = ParallelApplier::new(config(true), target_for(kind), 2);
    let got = par.apply_from(Interrupting { data: &s, calls: 0 }).unwrap();
    assert_eq!(got, want);
    assert_eq!(par.into_target().log, seq.into_target().log);
}

/// A read error comes back as `SourceIo`, and nothing after the frames already read is applied.
#[test]
fn apply_from_reports_a_read_error() {
    struct Broken<'a>(&'a [u8]);
    impl io::Read for Broken<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::other("the disk went away"));
            }
            let n = buf.len().min(self.0.len()).min(10_000);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let kind = kinds(64 << 10, 4 << 20)[3];
    let s = stream(11, kind);
    let mut par = ParallelApplier::new(config(true), target_for(kind), 2);
    let err = par.apply_from(Broken(&s[..s.len() / 2])).unwrap_err();
    assert!(matches!(err, StreamError::SourceIo { .. }), "{err:?}");
    assert!(par.applied().is_none());
}
