//! Delta stream throughput per core, 64 KiB records: encode and decode for raw, lz4 and
//! lz4 + AES-256-GCM on zeros, random data and a real-data corpus, and in the same run the
//! primitives alone on the same buffers (memcpy, zero detection, crc32fast, lz4_flex, ring
//! AES-256-GCM, C lz4 level 1), so pipeline/primitive ratios come from one run.
//!
//! The real-data corpus is built at bench time from files under /usr/lib and /usr/share (sorted
//! walk, first 64 MiB); it is never committed. `docs/STREAM.md` explains how the table is derived
//! from `target/criterion/*/*/new/estimates.json`.
//!
//! Every benchmark reports throughput in bytes of the *raw* dataset, so times compare directly.
//! Primitives that the pipeline applies only to some records run only on those records:
//! crc/lz4/AES on the records that are not all zero, and "stored" variants on each record's
//! stored form (lz4 when it pays, raw otherwise), exactly as the encoder produces them.

use std::hint::black_box;
use std::os::raw::{c_char, c_int};
use std::path::Path;
use std::time::Duration;

use blockdelta::stream::{encode_to_vec, is_all_zero};
use blockdelta::{
    Codec, Decoded, Decoder, DecoderConfig, EncodeCursor, Encoder, EncoderConfig, Extent,
    GenerationId, Secret,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use lz4_flex::block::{
    compress_into_with_table, decompress_into, get_maximum_output_size, CompressTable,
};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

const REC: usize = 64 * 1024;
const SYNTH: usize = 32 << 20;
const REAL: usize = 64 << 20;
const SECRET: &[u8] = b"bench secret";

fn corpus() -> Vec<u8> {
    fn walk(dir: &Path, out: &mut Vec<u8>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if out.len() >= REAL {
                return;
            }
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                walk(&p, out);
            } else if meta.is_file() {
                if let Ok(bytes) = std::fs::read(&p) {
                    let take = bytes.len().min(REAL - out.len());
                    out.extend_from_slice(&bytes[..take]);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(REAL);
    walk(Path::new("/usr/lib"), &mut out);
    walk(Path::new("/usr/share"), &mut out);
    // Round down to whole records.
    out.truncate(out.len() / REC * REC);
    out
}

fn random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

/// A dataset and the forms of its records the pipelines work on.
struct Data {
    name: &'static str,
    raw: Vec<u8>,
    /// Start of every record that is not all zero.
    nonzero: Vec<usize>,
    /// Each non-zero record's stored form, concatenated, with (start, len, lz4 raw len or 0).
    stored: Vec<u8>,
    stored_chunks: Vec<(usize, usize, usize)>,
}

impl Data {
    fn new(name: &'static str, raw: Vec<u8>) -> Self {
        let mut table = CompressTable::large();
        let mut tmp = vec![0u8; get_maximum_output_size(REC)];
        let mut nonzero = Vec::new();
        let mut stored = Vec::new();
        let mut stored_chunks = Vec::new();
        for (i, rec) in raw.chunks(REC).enumerate() {
            if is_all_zero(rec) {
                continue;
            }
            nonzero.push(i * REC);
            let c = compress_into_with_table(rec, &mut tmp, &mut table).unwrap();
            let start = stored.len();
            if c < rec.len() {
                stored.extend_from_slice(&tmp[..c]);
                stored_chunks.push((start, c, rec.len()));
            } else {
                stored.extend_from_slice(rec);
                stored_chunks.push((start, rec.len(), 0));
            }
        }
        Data {
            name,
            raw,
            nonzero,
            stored,
            stored_chunks,
        }
    }

    fn extents(&self) -> [Extent; 1] {
        [Extent::new(0, self.raw.len() as u64)]
    }
}

fn config(d: &Data, codec: Codec, encrypted: bool) -> EncoderConfig {
    let mut c = EncoderConfig::new([1; 16], GenerationId([2; 16]), 1, 2, d.raw.len() as u64);
    c.record_size = REC as u32;
    c.compression = codec;
    c.secret = encrypted.then(|| Secret::new(SECRET));
    c
}

fn key() -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap())
}

fn nonce(i: usize) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&(i as u64).to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

const MODES: [(&str, Codec, bool); 3] = [
    ("raw", Codec::Raw, false),
    ("lz4", Codec::Lz4, false),
    ("lz4_aes", Codec::Lz4, true),
];

fn bench_dataset(c: &mut Criterion, d: &Data) {
    let mut g = c.benchmark_group(d.name);
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Bytes(d.raw.len() as u64));

    // Pipelines.
    for (mode, codec, enc) in MODES {
        let mut src = d.raw.clone();
        let mut out = vec![0u8; d.raw.len() + d.raw.len() / 8 + (1 << 20)];
        g.bench_function(format!("encode_{mode}"), |b| {
            b.iter(|| {
                let mut e = Encoder::new(config(d, codec, enc)).unwrap();
                let mut at = e.write_header(&mut out).unwrap();
                let mut cur = EncodeCursor::default();
                let ext = d.extents();
                while let Some(n) = e
                    .next_frame(&ext, &mut cur, &mut src, &mut out[at..])
                    .unwrap()
                {
                    at += n;
                }
                at += e.finish(&mut out[at..]).unwrap();
                black_box(at)
            })
        });
        let stream =
            encode_to_vec(config(d, codec, enc), &d.extents(), &mut d.raw.clone()).unwrap();
        g.bench_function(format!("decode_{mode}"), |b| {
            b.iter(|| {
                let mut cfg = DecoderConfig::new();
                cfg.secret = enc.then(|| Secret::new(SECRET));
                let mut dec = Decoder::new(cfg);
                let mut at = 0;
                let mut sum = 0usize;
                while at < stream.len() {
                    match dec.next(&stream[at..]).unwrap() {
                        Decoded::Header { consumed, .. } => at += consumed,
                        Decoded::Record { record, consumed } => {
                            at += consumed;
                            if let blockdelta::Record::Data { data, .. } = record {
                                sum += data.len();
                            }
                        }
                        _ => unreachable!(),
                    }
                }
                black_box(sum)
            })
        });
        if enc {
            // The CRC alone, frame by frame over a fresh copy of the same stream: the memory
            // conditions of `decode_*_in_place`, for a like-for-like split of its time.
            g.bench_function(format!("crc32_frames_{mode}_fresh"), |b| {
                b.iter_batched_ref(
                    || stream.clone(),
                    |s| {
                        let (mut at, mut acc) = (0usize, 0u32);
                        while at + 24 <= s.len() {
                            let body = u32::from_le_bytes(s[at + 16..at + 20].try_into().unwrap())
                                as usize;
                            let mut h = crc32fast::Hasher::new();
                            h.update(&s[at..at + 20]);
                            h.update(&s[at + 24..at + 24 + body]);
                            acc ^= h.finalize();
                            at += 24 + body;
                        }
                        black_box(acc)
                    },
                    BatchSize::LargeInput,
                )
            });
            // The receiver owns its network buffer: decrypt in place, no copy. The copy of the
            // stream made per iteration is setup, outside the measurement.
            g.bench_function(format!("decode_{mode}_in_place"), |b| {
                b.iter_batched_ref(
                    || stream.clone(),
                    |s| {
                        let mut cfg = DecoderConfig::new();
                        cfg.secret = Some(Secret::new(SECRET));
                        let mut dec = Decoder::new(cfg);
                        let mut at = 0;
                        let mut sum = 0usize;
                        while at < s.len() {
                            match dec.next_in_place(&mut s[at..]).unwrap() {
                                Decoded::Header { consumed, .. } => at += consumed,
                                Decoded::Record { record, consumed } => {
                                    at += consumed;
                                    if let blockdelta::Record::Data { data, .. } = record {
                                        sum += data.len();
                                    }
                                }
                                _ => unreachable!(),
                            }
                        }
                        black_box(sum)
                    },
                    BatchSize::LargeInput,
                )
            });
        }
    }

    // Primitives on the same buffers.
    let mut dst = vec![0u8; d.raw.len()];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            for (s, t) in d.raw.chunks(REC).zip(dst.chunks_mut(REC)) {
                t.copy_from_slice(s);
            }
            black_box(&dst);
        })
    });
    let mut stored_dst = vec![0u8; d.stored.len()];
    g.bench_function("memcpy_stored", |b| {
        b.iter(|| {
            for &(s, l, _) in &d.stored_chunks {
                stored_dst[s..s + l].copy_from_slice(&d.stored[s..s + l]);
            }
            black_box(&stored_dst);
        })
    });
    g.bench_function("zero_detect", |b| {
        b.iter(|| black_box(d.raw.chunks(REC).filter(|r| is_all_zero(r)).count()))
    });
    g.bench_function("crc32_raw", |b| {
        b.iter(|| {
            let mut x = 0u32;
            for &o in &d.nonzero {
                x ^= crc32fast::hash(&d.raw[o..(o + REC).min(d.raw.len())]);
            }
            black_box(x)
        })
    });
    g.bench_function("crc32_stored", |b| {
        b.iter(|| {
            let mut x = 0u32;
            for &(s, l, _) in &d.stored_chunks {
                x ^= crc32fast::hash(&d.stored[s..s + l]);
            }
            black_box(x)
        })
    });
    let mut table = CompressTable::large();
    let mut cbuf = vec![0u8; get_maximum_output_size(REC)];
    g.bench_function("lz4_flex_compress", |b| {
        b.iter(|| {
            let mut n = 0;
            for &o in &d.nonzero {
                n += compress_into_with_table(
                    &d.raw[o..(o + REC).min(d.raw.len())],
                    &mut cbuf,
                    &mut table,
                )
                .unwrap();
            }
            black_box(n)
        })
    });
    g.bench_function("c_lz4_compress", |b| {
        b.iter(|| {
            let mut n = 0;
            for &o in &d.nonzero {
                let src = &d.raw[o..(o + REC).min(d.raw.len())];
                // SAFETY: both buffers are live and their lengths are passed; LZ4_compress_default
                // writes at most `cbuf.len()` bytes.
                n += unsafe {
                    lz4_sys::LZ4_compress_default(
                        src.as_ptr() as *const c_char,
                        cbuf.as_mut_ptr() as *mut c_char,
                        src.len() as c_int,
                        cbuf.len() as c_int,
                    )
                };
            }
            black_box(n)
        })
    });
    let mut dbuf = vec![0u8; REC];
    g.bench_function("lz4_flex_decompress", |b| {
        b.iter(|| {
            let mut n = 0;
            for &(s, l, raw) in d.stored_chunks.iter().filter(|c| c.2 > 0) {
                n += decompress_into(&d.stored[s..s + l], &mut dbuf[..raw]).unwrap();
            }
            black_box(n)
        })
    });
    g.bench_function("c_lz4_decompress", |b| {
        b.iter(|| {
            let mut n = 0;
            for &(s, l, raw) in d.stored_chunks.iter().filter(|c| c.2 > 0) {
                // SAFETY: input and output are live buffers of the lengths passed; the safe
                // decoder never writes past `raw` bytes.
                n += unsafe {
                    lz4_sys::LZ4_decompress_safe(
                        d.stored[s..].as_ptr() as *const c_char,
                        dbuf.as_mut_ptr() as *mut c_char,
                        l as c_int,
                        raw as c_int,
                    )
                };
            }
            black_box(n)
        })
    });
    let key = key();
    let mut work = d.stored.clone();
    g.bench_function("aes_gcm_seal_stored", |b| {
        b.iter(|| {
            for (i, &(s, l, _)) in d.stored_chunks.iter().enumerate() {
                let tag = key
                    .seal_in_place_separate_tag(
                        nonce(i),
                        Aad::from(&[0u8; 172]),
                        &mut work[s..s + l],
                    )
                    .unwrap();
                let _ = black_box(tag);
            }
        })
    });
    // Sealed copies with their tags, opened after a copy into a work buffer (what a decoder of
    // an input it does not own has to do); memcpy_stored is subtracted in the table.
    let mut sealed = d.stored.clone();
    let tags: Vec<_> = d
        .stored_chunks
        .iter()
        .enumerate()
        .map(|(i, &(s, l, _))| {
            key.seal_in_place_separate_tag(nonce(i), Aad::from(&[0u8; 172]), &mut sealed[s..s + l])
                .unwrap()
        })
        .collect();
    let mut with_tags = Vec::with_capacity(d.stored_chunks.len());
    for (i, &(s, l, _)) in d.stored_chunks.iter().enumerate() {
        let mut v = sealed[s..s + l].to_vec();
        v.extend_from_slice(tags[i].as_ref());
        with_tags.push(v);
    }
    let mut open_buf = vec![0u8; REC + 16];
    g.bench_function("aes_gcm_open_stored_with_copy", |b| {
        b.iter(|| {
            for (i, ct) in with_tags.iter().enumerate() {
                let buf = &mut open_buf[..ct.len()];
                buf.copy_from_slice(ct);
                black_box(
                    key.open_in_place(nonce(i), Aad::from(&[0u8; 172]), buf)
                        .unwrap()
                        .len(),
                );
            }
        })
    });
    // The same opens in place over a fresh copy of all sealed records, laid out back to back as
    // in a received stream: the same setup, buffer sizes and memory traffic as
    // `decode_*_in_place`, so the two compare like for like.
    let mut contiguous = Vec::with_capacity(with_tags.iter().map(Vec::len).sum());
    let mut spans = Vec::with_capacity(with_tags.len());
    for ct in &with_tags {
        spans.push((contiguous.len(), ct.len()));
        contiguous.extend_from_slice(ct);
    }
    g.bench_function("aes_gcm_open_stored_in_place", |b| {
        b.iter_batched_ref(
            || contiguous.clone(),
            |buf| {
                for (i, &(s, l)) in spans.iter().enumerate() {
                    black_box(
                        key.open_in_place(nonce(i), Aad::from(&[0u8; 172]), &mut buf[s..s + l])
                            .unwrap()
                            .len(),
                    );
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let real = corpus();
    eprintln!(
        "real-data corpus: {} MiB from /usr/lib and /usr/share",
        real.len() >> 20
    );
    let sets = [
        Data::new("zeros", vec![0u8; SYNTH]),
        Data::new("random", random(SYNTH)),
        Data::new("real", real),
    ];
    for d in &sets {
        eprintln!(
            "{}: {} MiB, {} of {} records non-zero, stored {} MiB",
            d.name,
            d.raw.len() >> 20,
            d.nonzero.len(),
            d.raw.len().div_ceil(REC),
            d.stored.len() >> 20
        );
        bench_dataset(c, d);
    }
}

criterion_group!(stream, benches);
criterion_main!(stream);
