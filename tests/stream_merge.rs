//! `merge`: N consecutive streams of one disk merged into one. For random sequences of 1 to 6
//! streams (DATA, ZERO, DISCARD, RESIZE grow and shrink, bookmarks, encrypted or not, lz4 on or
//! off, odd record sizes), applying the merged stream gives the same replica, contents, size
//! and what the target was told last per byte (written / zeroed, discarded, untouched), as
//! applying the inputs in order. Lineage errors and damaged inputs are refused.

use std::io::{self, Cursor};

use blockdelta::stream::{merge, MergeError, MergeInput};
use blockdelta::{
    Applier, ApplyTarget, Bookmark, BookmarkKind, Codec, Decoded, Decoder, DecoderConfig,
    EncodeCursor, Encoder, EncoderConfig, Expected, Extent, GenerationId, Record, Secret,
    StreamError,
};
use proptest::prelude::*;

const DISK: [u8; 16] = *b"merge-disk-00001";
const GEN: GenerationId = GenerationId([9; 16]);
const UNIT: u64 = 512;
const START: u64 = 256 * 1024;
const MAX: u64 = 384 * 1024;

/// Last thing the target was told about a byte.
const UNTOUCHED: u8 = 0;
const WRITTEN: u8 = 1;
const ZEROED: u8 = 2;
const DISCARDED: u8 = 3;

/// An in-memory replica that remembers, per byte, the last operation that touched it. Growth
/// counts as zeroing (new bytes read as zeros).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Tagged {
    disk: Vec<u8>,
    tags: Vec<u8>,
}

impl Tagged {
    fn new(size: usize, seed: u64) -> Self {
        let mut r = Rng(seed | 1);
        Tagged {
            disk: (0..size).map(|_| r.next() as u8 | 0x80).collect(),
            tags: vec![UNTOUCHED; size],
        }
    }

    fn set(&mut self, offset: u64, len: u64, tag: u8) {
        self.tags[offset as usize..(offset + len) as usize].fill(tag);
    }

    /// Tags with DATA and ZERO folded together: zero detection may turn all-zero DATA into ZERO.
    fn classes(&self) -> Vec<u8> {
        self.tags
            .iter()
            .map(|&t| if t == ZEROED { WRITTEN } else { t })
            .collect()
    }
}

impl ApplyTarget for Tagged {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.disk.write_at(offset, data)?;
        self.set(offset, data.len() as u64, WRITTEN);
        Ok(())
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.disk.write_zeroes(offset, len)?;
        self.set(offset, len, ZEROED);
        Ok(())
    }
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.disk.discard(offset, len)?;
        self.set(offset, len, DISCARDED);
        Ok(())
    }
    fn resize(&mut self, new_size: u64) -> io::Result<()> {
        ApplyTarget::resize(&mut self.disk, new_size)?;
        self.tags.resize(new_size as usize, ZEROED);
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn size(&mut self) -> io::Result<Option<u64>> {
        Ok(Some(self.disk.len() as u64))
    }
}

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

#[derive(Clone, Debug)]
enum Op {
    Data(u64, u64),
    Zero(u64, u64),
    Discard(u64, u64),
    Resize(u64),
    Bookmark(u64),
}

/// One input stream to build.
#[derive(Clone, Debug)]
struct Spec {
    from: u64,
    to: u64,
    disk_size: u64,
    ops: Vec<Op>,
    codec: Codec,
    zero_detection: bool,
    record_size: u32,
    secret: Option<Vec<u8>>,
}

fn secret(i: usize) -> Vec<u8> {
    format!("merge test secret number {i:04}").into_bytes()
}

fn pick_record_size(r: &mut Rng) -> u32 {
    [3000, 4096, 16384, 65536, 1 << 20][r.below(5) as usize]
}

/// Random consecutive inputs: sequence numbers as a replica accepts them in order, each disk
/// size at most the replica's size after the inputs before it.
fn random_specs(r: &mut Rng, n: usize) -> Vec<Spec> {
    let mut specs = Vec::new();
    let (mut from, mut to) = (10, 11 + r.below(3));
    let mut size = START;
    for i in 0..n {
        if i > 0 {
            from = to - r.below(2);
            to += 1 + r.below(3);
        }
        let disk_size = if i > 0 && r.below(4) == 0 {
            UNIT * (1 + r.below(size / UNIT))
        } else {
            size
        };
        let mut ops = Vec::new();
        let (mut pos, mut cur) = (0u64, disk_size);
        for _ in 0..r.below(14) {
            match r.below(12) {
                0 | 1 => {
                    cur = UNIT * (1 + r.below(MAX / UNIT));
                    ops.push(Op::Resize(cur));
                }
                2 => ops.push(Op::Bookmark(r.next())),
                k => {
                    let start = pos + UNIT * r.below(40);
                    let len = UNIT
                        * if r.below(5) == 0 {
                            1 + r.below(400)
                        } else {
                            1 + r.below(40)
                        };
                    let len = len.min(cur.saturating_sub(start));
                    if len == 0 {
                        continue;
                    }
                    ops.push(match k % 3 {
                        0 => Op::Data(start, len),
                        1 => Op::Zero(start, len),
                        _ => Op::Discard(start, len),
                    });
                    pos = start + len;
                }
            }
        }
        if let Some(n) = ops.iter().rev().find_map(|o| match o {
            Op::Resize(n) => Some(*n),
            _ => None,
        }) {
            size = n;
        }
        specs.push(Spec {
            from,
            to,
            disk_size,
            ops,
            codec: if r.below(2) == 0 {
                Codec::Lz4
            } else {
                Codec::Raw
            },
            zero_detection: r.below(2) == 0,
            record_size: pick_record_size(r),
            secret: (r.below(2) == 0).then(|| secret(i)),
        });
    }
    specs
}

/// Source bytes for input `i`: random, with runs of zeros (for zero detection) and of
/// repeated bytes (for lz4).
fn source(i: usize) -> Vec<u8> {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1));
    (0..MAX as usize)
        .map(|k| match (k / 4096 + i) % 4 {
            0 => 0,
            1 => (k / 64) as u8,
            _ => r.next() as u8,
        })
        .collect()
}

fn encode(spec: &Spec, index: usize) -> Vec<u8> {
    let mut cfg = EncoderConfig::new(DISK, GEN, spec.from, spec.to, spec.disk_size);
    cfg.compression = spec.codec;
    cfg.zero_detection = spec.zero_detection;
    cfg.record_size = spec.record_size;
    cfg.secret = spec.secret.as_deref().map(|s| Secret::new(s).unwrap());
    let mut enc = Encoder::new(cfg).unwrap();
    let mut buf = vec![0u8; enc.max_frame_len()];
    let mut out = Vec::new();
    let mut src = source(index);
    let n = enc.write_header(&mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    for op in &spec.ops {
        match *op {
            Op::Data(o, l) => {
                let ext = [Extent::new(o, l)];
                let mut c = EncodeCursor::default();
                while let Some(n) = enc.next_frame(&ext, &mut c, &mut src, &mut buf).unwrap() {
                    out.extend_from_slice(&buf[..n]);
                }
            }
            Op::Zero(o, l) => {
                let n = enc.write_zero(o, l, &mut buf).unwrap();
                out.extend_from_slice(&buf[..n]);
            }
            Op::Discard(o, l) => {
                let n = enc.write_discard(o, l, &mut buf).unwrap();
                out.extend_from_slice(&buf[..n]);
            }
            Op::Resize(s) => {
                let n = enc.write_resize(s, &mut buf).unwrap();
                out.extend_from_slice(&buf[..n]);
            }
            Op::Bookmark(id) => {
                let label = format!("input {index} bookmark {id:x}");
                let b = Bookmark {
                    id,
                    timestamp_ns: id / 3,
                    kind: if id % 2 == 0 {
                        BookmarkKind::CrashConsistent
                    } else {
                        BookmarkKind::ApplicationConsistent
                    },
                    label: &label,
                };
                let n = enc.write_bookmark(&b, &mut buf).unwrap();
                out.extend_from_slice(&buf[..n]);
            }
        }
    }
    let n = enc.finish(&mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    out
}

fn dcfg(secret: Option<&[u8]>, replica_seq: u64) -> DecoderConfig {
    let mut c = DecoderConfig::new().with_expected(Expected {
        disk_id: Some(DISK),
        generation: Some(GEN),
        replica_seq: Some(replica_seq),
    });
    c.secret = secret.map(|s| Secret::new(s).unwrap());
    c
}

fn apply(stream: &[u8], cfg: DecoderConfig, target: &mut Tagged) -> Result<(), StreamError> {
    let mut app = Applier::new(cfg, target);
    app.push(stream)?;
    app.finish().map(|_| ())
}

fn inputs(streams: &[Vec<u8>], specs: &[Spec]) -> Vec<MergeInput<Cursor<Vec<u8>>>> {
    streams
        .iter()
        .zip(specs)
        .map(|(s, spec)| {
            let mut c = DecoderConfig::new();
            c.secret = spec.secret.as_deref().map(|s| Secret::new(s).unwrap());
            MergeInput::new(Cursor::new(s.clone()), c)
        })
        .collect()
}

fn settings(r: &mut Rng) -> (EncoderConfig, Option<Vec<u8>>) {
    let mut c = EncoderConfig::new([0; 16], GenerationId([0; 16]), 0, 1, 1);
    c.compression = if r.below(2) == 0 {
        Codec::Lz4
    } else {
        Codec::Raw
    };
    c.zero_detection = r.below(2) == 0;
    c.record_size = pick_record_size(r);
    let s = (r.below(2) == 0).then(|| b"output secret of the merge test".to_vec());
    c.secret = s.as_deref().map(|s| Secret::new(s).unwrap());
    (c, s)
}

/// Bookmarks and RESIZE records of a stream, decoded.
fn bookmarks_and_resizes(stream: &[u8], secret: Option<&[u8]>) -> (Vec<(u64, String)>, Vec<u64>) {
    let mut c = DecoderConfig::new();
    c.secret = secret.map(|s| Secret::new(s).unwrap());
    let mut d = Decoder::new(c);
    let (mut at, mut bms, mut rs) = (0, Vec::new(), Vec::new());
    loop {
        match d.next(&stream[at..]).unwrap() {
            Decoded::Header { consumed, .. } => at += consumed,
            Decoded::Record { record, consumed } => {
                at += consumed;
                match record {
                    Record::Bookmark(b) => bms.push((b.id, b.label.to_owned())),
                    Record::Resize { new_size } => rs.push(new_size),
                    Record::End(_) => break,
                    _ => {}
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(at, stream.len());
    (bms, rs)
}

fn check_merge(seed: u64, n: usize) {
    let mut r = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
    let specs = random_specs(&mut r, n);
    let streams: Vec<Vec<u8>> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| encode(s, i))
        .collect();
    // The replica at any position accepted for s1, possibly larger than s1's disk.
    let extra = if r.below(4) == 0 {
        UNIT * r.below(64)
    } else {
        0
    };
    let start = Tagged::new((specs[0].disk_size + extra) as usize, r.next());
    let replica_seq = specs[0].from + r.below(specs[0].to - specs[0].from);

    let mut in_order = start.clone();
    let mut seq = replica_seq;
    for (s, spec) in streams.iter().zip(&specs) {
        apply(s, dcfg(spec.secret.as_deref(), seq), &mut in_order).unwrap();
        seq = spec.to;
    }

    let (cfg, out_secret) = settings(&mut r);
    let mut merged = Vec::new();
    let summary = merge(&mut inputs(&streams, &specs), cfg, &mut merged).unwrap();
    assert_eq!(summary.from_seq, specs[0].from);
    assert_eq!(summary.to_seq, specs[n - 1].to);
    assert_eq!(summary.disk_size, specs[0].disk_size);
    assert_eq!(summary.bytes_written, merged.len() as u64);

    let mut once = start.clone();
    apply(&merged, dcfg(out_secret.as_deref(), replica_seq), &mut once).unwrap();
    assert_eq!(once.disk.len(), in_order.disk.len(), "size");
    if let Some(i) = (0..once.disk.len()).find(|&i| once.disk[i] != in_order.disk[i]) {
        panic!(
            "byte {i} differs: merged {} in order {} ({specs:?})",
            once.disk[i], in_order.disk[i]
        );
    }
    let (a, b) = (once.classes(), in_order.classes());
    if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
        panic!(
            "byte {i}: merged told the target {} last, in order {} ({specs:?})",
            a[i], b[i]
        );
    }

    // Bookmarks in input order; one RESIZE to the final size iff an input resized.
    let (bms, rs) = bookmarks_and_resizes(&merged, out_secret.as_deref());
    let mut want_bms = Vec::new();
    let mut any_resize = false;
    for (s, spec) in streams.iter().zip(&specs) {
        let (b, r) = bookmarks_and_resizes(s, spec.secret.as_deref());
        want_bms.extend(b);
        any_resize |= !r.is_empty();
    }
    assert_eq!(bms, want_bms);
    if any_resize {
        assert_eq!(rs, vec![in_order.disk.len() as u64]);
        assert_eq!(summary.final_size, in_order.disk.len() as u64);
    } else {
        assert!(rs.is_empty());
        assert_eq!(summary.final_size, specs[0].disk_size);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn merged_equals_applied_in_order(seed in any::<u64>(), n in 1usize..=6) {
        check_merge(seed, n);
    }
}

/// Hand-picked RESIZE histories on top of the random ones.
#[test]
fn shrink_then_grow_reads_zeros_where_nothing_was_rewritten() {
    let base = |from, to, disk_size, ops| Spec {
        from,
        to,
        disk_size,
        ops,
        codec: Codec::Lz4,
        zero_detection: false,
        record_size: 4096,
        secret: None,
    };
    let specs = vec![
        base(1, 2, START, vec![Op::Data(0, START)]),
        // Shrink to 64 KiB, then grow back (within one stream: the applier zeroes).
        base(2, 3, START, vec![Op::Resize(65536), Op::Resize(START)]),
        // A shrink in one stream, growth in the next (the first truncates at END).
        base(3, 4, START, vec![Op::Data(4096, 4096), Op::Resize(8192)]),
        base(
            4,
            5,
            8192,
            vec![Op::Resize(MAX), Op::Discard(200_000, 4096)],
        ),
        base(5, 6, MAX, vec![Op::Data(0, 1024)]),
    ];
    let streams: Vec<Vec<u8>> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| encode(s, i))
        .collect();
    let start = Tagged::new(START as usize, 77);
    let mut in_order = start.clone();
    for (i, s) in streams.iter().enumerate() {
        apply(s, dcfg(None, i as u64 + 1), &mut in_order).unwrap();
    }
    let cfg = EncoderConfig::new([0; 16], GenerationId([0; 16]), 0, 1, 1);
    let mut merged = Vec::new();
    let summary = merge(&mut inputs(&streams, &specs), cfg, &mut merged).unwrap();
    assert_eq!(summary.final_size, MAX);
    let mut once = start.clone();
    apply(&merged, dcfg(None, 1), &mut once).unwrap();
    assert!(once.disk == in_order.disk, "contents differ");
    assert!(once.classes() == in_order.classes(), "operations differ");
    // 1024..4096 and 8192.. were cut and never rewritten: zeros. 4096..8192 survived the cut.
    let src1 = source(0);
    let src2 = source(2);
    let src4 = source(4);
    assert_eq!(&once.disk[..1024], &src4[..1024]);
    assert!(once.disk[1024..4096].iter().all(|&b| b == 0));
    assert_eq!(&once.disk[4096..8192], &src2[4096..8192]);
    assert!(once.disk[8192..].iter().all(|&b| b == 0));
    assert_ne!(&src1[8192..16384], &once.disk[8192..16384]);
    assert!(once.tags[200_000..204_096].iter().all(|&t| t == DISCARDED));
}

#[test]
fn discard_newest_stays_discard_and_zero_stays_zero() {
    let spec = |from, to, ops| Spec {
        from,
        to,
        disk_size: START,
        ops,
        codec: Codec::Raw,
        zero_detection: false,
        record_size: 65536,
        secret: None,
    };
    let specs = vec![
        spec(1, 2, vec![Op::Zero(0, 65536), Op::Data(65536, 65536)]),
        spec(2, 3, vec![Op::Discard(32768, 65536)]),
        spec(3, 4, vec![Op::Zero(49152, 4096)]),
    ];
    let streams: Vec<Vec<u8>> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| encode(s, i))
        .collect();
    let cfg = EncoderConfig::new([0; 16], GenerationId([0; 16]), 0, 1, 1);
    let mut merged = Vec::new();
    merge(&mut inputs(&streams, &specs), cfg, &mut merged).unwrap();
    let mut once = Tagged::new(START as usize, 5);
    apply(&merged, dcfg(None, 1), &mut once).unwrap();
    let t = &once.tags;
    assert!(t[..32768].iter().all(|&x| x == ZEROED));
    assert!(t[32768..49152].iter().all(|&x| x == DISCARDED));
    assert!(t[49152..53248].iter().all(|&x| x == ZEROED));
    assert!(t[53248..98304].iter().all(|&x| x == DISCARDED));
    // The merged stream detects zeros block by block: the source's all-zero blocks in the
    // written range arrive as ZERO, the others as data.
    let src = source(0);
    for b in (98304..131072).step_by(4096) {
        let want = if src[b..b + 4096].iter().all(|&x| x == 0) {
            ZEROED
        } else {
            WRITTEN
        };
        assert!(t[b..b + 4096].iter().all(|&x| x == want), "block at {b}");
    }
    assert!(t[98304..131072].contains(&ZEROED) && t[98304..131072].contains(&WRITTEN));
    assert!(t[131072..].iter().all(|&x| x == UNTOUCHED));
}

fn plain(from: u64, to: u64, disk: [u8; 16], generation: GenerationId, size: u64) -> Vec<u8> {
    let cfg = EncoderConfig::new(disk, generation, from, to, size);
    blockdelta::stream::encode_to_vec(cfg, &[Extent::new(0, 4096)], &mut vec![1u8; size as usize])
        .unwrap()
}

fn merge_plain(streams: Vec<Vec<u8>>) -> (Result<blockdelta::MergeSummary, MergeError>, Vec<u8>) {
    let mut ins: Vec<_> = streams
        .into_iter()
        .map(|s| MergeInput::new(Cursor::new(s), DecoderConfig::new()))
        .collect();
    let mut out = Vec::new();
    let cfg = EncoderConfig::new([0; 16], GenerationId([0; 16]), 0, 1, 1);
    let r = merge(&mut ins, cfg, &mut out);
    (r, out)
}

fn inconsistent(r: Result<blockdelta::MergeSummary, MergeError>) -> (usize, String) {
    match r {
        Err(e @ MergeError::Inconsistent { .. }) => {
            let msg = e.to_string();
            let MergeError::Inconsistent { index, .. } = e else {
                unreachable!()
            };
            (index, msg)
        }
        other => panic!("expected Inconsistent, got {other:?}"),
    }
}

#[test]
fn lineage_errors_are_refused_naming_the_input() {
    let p = |f, t| plain(f, t, DISK, GEN, START);
    // A gap: input 1 starts after input 0 ends.
    let (i, m) = inconsistent(merge_plain(vec![p(1, 2), p(3, 4)]).0);
    assert_eq!(i, 1);
    assert!(m.contains("gap"), "{m}");
    // Input 2 was already applied by the time input 1 ends.
    let (i, m) = inconsistent(merge_plain(vec![p(1, 2), p(2, 5), p(3, 5)]).0);
    assert_eq!(i, 2);
    assert!(m.contains("already applied"), "{m}");
    // Overlapping from_seq is fine (a replica accepts it).
    assert!(merge_plain(vec![p(1, 3), p(2, 4), p(4, 5)]).0.is_ok());
    // Another disk, another generation.
    let other = plain(2, 3, *b"another-disk-001", GEN, START);
    let (i, m) = inconsistent(merge_plain(vec![p(1, 2), other]).0);
    assert_eq!(i, 1);
    assert!(m.contains("disk id"), "{m}");
    let other = plain(2, 3, DISK, GenerationId([1; 16]), START);
    let (i, m) = inconsistent(merge_plain(vec![p(1, 2), other]).0);
    assert_eq!(i, 1);
    assert!(m.contains("generation"), "{m}");
    // A disk larger than the replica after the inputs before it.
    let big = plain(2, 3, DISK, GEN, START * 2);
    let (i, m) = inconsistent(merge_plain(vec![p(1, 2), big]).0);
    assert_eq!(i, 1);
    assert!(m.contains("disk size"), "{m}");
    // No inputs.
    assert!(matches!(merge_plain(vec![]).0, Err(MergeError::NoInputs)));
}

#[test]
fn damaged_inputs_fail_the_merge_and_the_output_has_no_end() {
    let specs: Vec<Spec> = (0..3)
        .map(|i| Spec {
            from: i + 1,
            to: i + 2,
            disk_size: START,
            ops: vec![Op::Data(4096 * i, 65536), Op::Bookmark(i)],
            codec: Codec::Lz4,
            zero_detection: true,
            record_size: 16384,
            secret: (i == 1).then(|| secret(1)),
        })
        .collect();
    let streams: Vec<Vec<u8>> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| encode(s, i))
        .collect();
    let len1 = streams[1].len();
    // Every kind of damage to input 1: a flipped byte anywhere, a cut, bytes after END.
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for at in [0, 30, 152 + 10, len1 / 2, len1 - 30, len1 - 1] {
        let mut s = streams[1].clone();
        s[at] ^= 0x40;
        cases.push((format!("byte {at} flipped"), s));
    }
    cases.push(("cut".into(), streams[1][..len1 - 10].to_vec()));
    let mut long = streams[1].clone();
    long.extend_from_slice(b"junk");
    cases.push(("trailing bytes".into(), long));
    for (what, bad) in cases {
        let mut ss = streams.clone();
        ss[1] = bad;
        let mut out = Vec::new();
        let cfg = EncoderConfig::new([0; 16], GenerationId([0; 16]), 0, 1, 1);
        match merge(&mut inputs(&ss, &specs), cfg, &mut out) {
            Err(MergeError::Input { index: 1, .. }) => {}
            other => panic!("{what}: {other:?}"),
        }
        // Whatever was written is not a complete stream.
        let mut t = Tagged::new(START as usize, 1);
        assert!(apply(&out, dcfg(None, 1), &mut t).is_err(), "{what}");
    }
    // The wrong secret for input 1.
    let mut ins = inputs(&streams, &specs);
    ins[1].config.secret = Some(Secret::new(&secret(7)).unwrap());
    let cfg = EncoderConfig::new([0; 16], GenerationId([0; 16]), 0, 1, 1);
    match merge(&mut ins, cfg, &mut Vec::new()) {
        Err(MergeError::Input {
            index: 1,
            source: StreamError::AuthenticationFailed { .. },
        }) => {}
        other => panic!("{other:?}"),
    }
    // An input damaged between the two passes fails pass 2, before END is written.
    struct Flaky {
        inner: Cursor<Vec<u8>>,
        reads: usize,
    }
    impl io::Read for Flaky {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            if self.inner.position() == 0 && self.reads > 1 {
                // Second pass: the stored stream was damaged in between.
                let pos = self.inner.get_ref().len() / 2;
                self.inner.get_mut()[pos] ^= 1;
            }
            self.inner.read(buf)
        }
    }
    impl io::Seek for Flaky {
        fn seek(&mut self, p: io::SeekFrom) -> io::Result<u64> {
            self.inner.seek(p)
        }
    }
    let mut ins: Vec<_> = streams
        .iter()
        .zip(&specs)
        .map(|(s, spec)| {
            let mut c = DecoderConfig::new();
            c.secret = spec.secret.as_deref().map(|s| Secret::new(s).unwrap());
            MergeInput::new(
                Flaky {
                    inner: Cursor::new(s.clone()),
                    reads: 0,
                },
                c,
            )
        })
        .collect();
    let mut out = Vec::new();
    let cfg = EncoderConfig::new([0; 16], GenerationId([0; 16]), 0, 1, 1);
    assert!(merge(&mut ins, cfg, &mut out).is_err());
    let mut t = Tagged::new(START as usize, 1);
    assert!(apply(&out, dcfg(None, 1), &mut t).is_err());
}

#[test]
fn one_input_is_re_encoded_with_the_output_settings() {
    let spec = Spec {
        from: 3,
        to: 9,
        disk_size: START,
        ops: vec![
            Op::Data(0, 100_000),
            Op::Discard(100_000, 4096),
            Op::Resize(MAX),
            Op::Zero(START, 4096),
        ],
        codec: Codec::Raw,
        zero_detection: false,
        record_size: 4096,
        secret: None,
    };
    let streams = vec![encode(&spec, 0)];
    let specs = vec![spec];
    let mut cfg = EncoderConfig::new([0; 16], GenerationId([0; 16]), 0, 1, 1);
    cfg.secret = Some(Secret::new(b"output secret of the merge test").unwrap());
    let mut out = Vec::new();
    let s = merge(&mut inputs(&streams, &specs), cfg, &mut out).unwrap();
    assert_eq!((s.from_seq, s.to_seq, s.final_size), (3, 9, MAX));
    let mut a = Tagged::new(START as usize, 3);
    let mut b = a.clone();
    apply(&streams[0], dcfg(None, 5), &mut a).unwrap();
    apply(
        &out,
        dcfg(Some(b"output secret of the merge test"), 5),
        &mut b,
    )
    .unwrap();
    // Zero detection (on in the output, off in the input) may turn all-zero DATA into ZERO.
    assert!(a.disk == b.disk, "contents differ");
    assert!(a.classes() == b.classes(), "operations differ");
    // Without the output secret the merged stream is refused.
    let mut c = Tagged::new(START as usize, 3);
    assert!(matches!(
        apply(&out, dcfg(None, 5), &mut c),
        Err(StreamError::KeyRequired)
    ));
}
