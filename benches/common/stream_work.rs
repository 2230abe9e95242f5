//! The stream benchmarks' datasets and workloads, shared by `benches/stream.rs` (criterion, one
//! estimate per workload) and `benches/stream_overhead.rs` (paired pipeline/primitive ratios, by
//! time and by instruction count), so both measure exactly the same code on the same buffers.
//!
//! Every workload covers a whole dataset in 64 KiB records. Primitives that a pipeline applies
//! only to some records run only on those records: crc/lz4/AES on the records that are not all
//! zero, and the "stored" variants on each record's stored form (lz4 when it pays, raw otherwise),
//! exactly as the encoder produces them.

#![allow(dead_code)] // each bench uses a different part

use std::hint::black_box;
use std::os::raw::{c_char, c_int};
use std::path::Path;

use blockdelta::stream::{encode_to_vec, is_all_zero};
use blockdelta::{
    Codec, Decoded, Decoder, DecoderConfig, EncodeCursor, Encoder, EncoderConfig, Extent,
    GenerationId, Record, Secret,
};
use lz4_flex::block::{
    compress_into_with_table, decompress_into, get_maximum_output_size, CompressTable,
};
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM};

pub const REC: usize = 64 * 1024;
pub const SYNTH: usize = 32 << 20;
pub const REAL: usize = 64 << 20;
const SECRET: &[u8] = b"bench secret, 16+ bytes";
/// The associated data of the AES primitives: as long as the stream's (header frame + frame
/// header), so GHASH does the same work.
const AAD: [u8; 172] = [0u8; 172];

/// The first [`REAL`] bytes of the files under /usr/lib and /usr/share (sorted walk), in whole
/// records: real binaries, libraries, text and data, built at bench time and never committed.
pub fn corpus() -> Vec<u8> {
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
    out.truncate(out.len() / REC * REC);
    out
}

/// `len` bytes of xorshift64 output: incompressible, never a zero record.
pub fn random(len: usize) -> Vec<u8> {
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

/// The three datasets, by name: `zeros`, `random`, `real`.
pub fn dataset(name: &str) -> Data {
    match name {
        "zeros" => Data::new("zeros", vec![0u8; SYNTH]),
        "random" => Data::new("random", random(SYNTH)),
        "real" => Data::new("real", corpus()),
        other => panic!("unknown dataset {other:?}: zeros, random or real"),
    }
}

/// A dataset and the forms of its records the pipelines work on.
pub struct Data {
    pub name: &'static str,
    pub raw: Vec<u8>,
    /// Start of every record that is not all zero.
    pub nonzero: Vec<usize>,
    /// Each non-zero record's stored form, concatenated, with (start, len, lz4 raw len or 0).
    pub stored: Vec<u8>,
    pub stored_chunks: Vec<(usize, usize, usize)>,
}

impl Data {
    pub fn new(name: &'static str, raw: Vec<u8>) -> Self {
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

    pub fn describe(&self) -> String {
        format!(
            "{}: {} MiB, {} of {} records non-zero, stored {} MiB",
            self.name,
            self.raw.len() >> 20,
            self.nonzero.len(),
            self.raw.len().div_ceil(REC),
            self.stored.len() >> 20
        )
    }

    fn extents(&self) -> [Extent; 1] {
        [Extent::new(0, self.raw.len() as u64)]
    }

    fn record(&self, o: usize) -> &[u8] {
        &self.raw[o..(o + REC).min(self.raw.len())]
    }
}

/// Declares `Work` with its criterion bench ids, and `Work::ALL` in declaration order.
macro_rules! works {
    ($($(#[$doc:meta])* $w:ident => $name:literal,)*) => {
        /// Every workload, pipelines first.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Work {
            $($(#[$doc])* $w,)*
        }

        impl Work {
            pub const ALL: &'static [Work] = &[$(Work::$w,)*];

            pub fn name(self) -> &'static str {
                match self {
                    $(Work::$w => $name,)*
                }
            }
        }
    };
}

works! {
    EncodeRaw => "encode_raw",
    EncodeLz4 => "encode_lz4",
    EncodeLz4Aes => "encode_lz4_aes",
    DecodeRaw => "decode_raw",
    DecodeLz4 => "decode_lz4",
    DecodeLz4Aes => "decode_lz4_aes",
    /// The receiver owns its network buffer: decrypt in place over a fresh copy of the stream.
    DecodeLz4AesInPlace => "decode_lz4_aes_in_place",
    Memcpy => "memcpy",
    MemcpyStored => "memcpy_stored",
    ZeroDetect => "zero_detect",
    Crc32Raw => "crc32_raw",
    Crc32Stored => "crc32_stored",
    /// The CRC alone, frame by frame over a fresh copy of the encrypted stream: the memory
    /// conditions of `DecodeLz4AesInPlace`.
    Crc32FramesLz4AesFresh => "crc32_frames_lz4_aes_fresh",
    Lz4FlexCompress => "lz4_flex_compress",
    CLz4Compress => "c_lz4_compress",
    Lz4FlexDecompress => "lz4_flex_decompress",
    CLz4Decompress => "c_lz4_decompress",
    AesGcmSealStored => "aes_gcm_seal_stored",
    /// Each sealed record copied into a work buffer, then opened there: what a decoder of an
    /// input it does not own must do.
    AesGcmOpenStoredWithCopy => "aes_gcm_open_stored_with_copy",
    /// The same opens in place over a fresh copy of all sealed records laid out back to back, as
    /// in a received stream: the conditions of `DecodeLz4AesInPlace`.
    AesGcmOpenStoredInPlace => "aes_gcm_open_stored_in_place",
}

use Work::*;

impl Work {
    /// For a pipeline, the primitives it must run on the same data; `None` for a primitive.
    /// The pipeline's target is at most 1.15x the sum of their times: what is left over is the
    /// cost of framing, checks and copies.
    pub fn primitives(self) -> Option<&'static [Work]> {
        Some(match self {
            EncodeRaw => &[Memcpy, ZeroDetect, Crc32Raw],
            EncodeLz4 => &[Memcpy, ZeroDetect, Lz4FlexCompress, Crc32Stored],
            EncodeLz4Aes => &[
                Memcpy,
                ZeroDetect,
                Lz4FlexCompress,
                AesGcmSealStored,
                Crc32Stored,
            ],
            DecodeRaw => &[Crc32Raw],
            DecodeLz4 => &[Crc32Stored, Lz4FlexDecompress],
            DecodeLz4Aes => &[Crc32Stored, AesGcmOpenStoredWithCopy, Lz4FlexDecompress],
            DecodeLz4AesInPlace => &[
                Crc32FramesLz4AesFresh,
                AesGcmOpenStoredInPlace,
                Lz4FlexDecompress,
            ],
            _ => return None,
        })
    }

    /// Whether the workload consumes a fresh copy of its input, made before the measurement.
    pub fn needs_fresh_input(self) -> bool {
        matches!(
            self,
            DecodeLz4AesInPlace | Crc32FramesLz4AesFresh | AesGcmOpenStoredInPlace
        )
    }
}

fn config(d: &Data, codec: Codec, encrypted: bool) -> EncoderConfig {
    let mut c = EncoderConfig::new([1; 16], GenerationId([2; 16]), 1, 2, d.raw.len() as u64);
    c.record_size = REC as u32;
    c.compression = codec;
    c.secret = encrypted.then(|| Secret::new(SECRET).unwrap());
    c
}

fn nonce(i: usize) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&(i as u64).to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

/// A dataset with every buffer the workloads need, allocated and filled up front: the encoded
/// streams, sealed records, destinations and scratch.
pub struct Bench<'d> {
    pub data: &'d Data,
    source: Vec<u8>,
    out: Vec<u8>,
    streams: [Vec<u8>; 3],
    dst: Vec<u8>,
    stored_dst: Vec<u8>,
    table: CompressTable,
    cbuf: Vec<u8>,
    dbuf: Vec<u8>,
    key: LessSafeKey,
    seal_work: Vec<u8>,
    sealed_with_tags: Vec<Vec<u8>>,
    open_buf: Vec<u8>,
    /// All sealed records with their tags, back to back, and each one's (start, len).
    sealed_contiguous: Vec<u8>,
    sealed_spans: Vec<(usize, usize)>,
}

const MODES: [(Codec, bool); 3] = [(Codec::Raw, false), (Codec::Lz4, false), (Codec::Lz4, true)];

impl<'d> Bench<'d> {
    pub fn new(data: &'d Data) -> Self {
        let streams = MODES.map(|(codec, enc)| {
            encode_to_vec(
                config(data, codec, enc),
                &data.extents(),
                &mut data.raw.clone(),
            )
            .unwrap()
        });
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());
        let mut sealed = data.stored.clone();
        let tags: Vec<Tag> = data
            .stored_chunks
            .iter()
            .enumerate()
            .map(|(i, &(s, l, _))| {
                key.seal_in_place_separate_tag(nonce(i), Aad::from(&AAD), &mut sealed[s..s + l])
                    .unwrap()
            })
            .collect();
        let sealed_with_tags: Vec<Vec<u8>> = data
            .stored_chunks
            .iter()
            .zip(&tags)
            .map(|(&(s, l, _), tag)| [&sealed[s..s + l], tag.as_ref()].concat())
            .collect();
        let mut sealed_contiguous = Vec::new();
        let mut sealed_spans = Vec::new();
        for ct in &sealed_with_tags {
            sealed_spans.push((sealed_contiguous.len(), ct.len()));
            sealed_contiguous.extend_from_slice(ct);
        }
        Bench {
            data,
            source: data.raw.clone(),
            out: vec![0u8; data.raw.len() + data.raw.len() / 8 + (1 << 20)],
            streams,
            dst: vec![0u8; data.raw.len()],
            stored_dst: vec![0u8; data.stored.len()],
            table: CompressTable::large(),
            cbuf: vec![0u8; get_maximum_output_size(REC)],
            dbuf: vec![0u8; REC],
            key,
            seal_work: data.stored.clone(),
            sealed_with_tags,
            open_buf: vec![0u8; REC + 16],
            sealed_contiguous,
            sealed_spans,
        }
    }

    /// The fresh input a workload consumes (see [`Work::needs_fresh_input`]): a new copy, made
    /// outside the measurement. Empty for the others.
    pub fn fresh_input(&self, w: Work) -> Vec<u8> {
        match w {
            DecodeLz4AesInPlace | Crc32FramesLz4AesFresh => self.streams[2].clone(),
            AesGcmOpenStoredInPlace => self.sealed_contiguous.clone(),
            _ => Vec::new(),
        }
    }

    /// Runs `w` once over the whole dataset. `fresh` is [`Bench::fresh_input`]'s copy, used up.
    pub fn run(&mut self, w: Work, fresh: &mut [u8]) -> usize {
        let d = self.data;
        match w {
            EncodeRaw => self.encode(0),
            EncodeLz4 => self.encode(1),
            EncodeLz4Aes => self.encode(2),
            DecodeRaw => decode(&self.streams[0], false),
            DecodeLz4 => decode(&self.streams[1], false),
            DecodeLz4Aes => decode(&self.streams[2], true),
            DecodeLz4AesInPlace => decode_in_place(fresh),
            Memcpy => {
                for (s, t) in d.raw.chunks(REC).zip(self.dst.chunks_mut(REC)) {
                    t.copy_from_slice(s);
                }
                black_box(&self.dst).len()
            }
            MemcpyStored => {
                for &(s, l, _) in &d.stored_chunks {
                    self.stored_dst[s..s + l].copy_from_slice(&d.stored[s..s + l]);
                }
                black_box(&self.stored_dst).len()
            }
            ZeroDetect => d.raw.chunks(REC).filter(|r| is_all_zero(r)).count(),
            Crc32Raw => d
                .nonzero
                .iter()
                .fold(0, |x, &o| x ^ crc32fast::hash(d.record(o))) as usize,
            Crc32Stored => d
                .stored_chunks
                .iter()
                .fold(0, |x, &(s, l, _)| x ^ crc32fast::hash(&d.stored[s..s + l]))
                as usize,
            Crc32FramesLz4AesFresh => {
                // The frame layout of docs/FORMAT.md: CRC over the first 20 header bytes and the
                // body; the body length at 16..20.
                let (mut at, mut acc) = (0usize, 0u32);
                while at + 24 <= fresh.len() {
                    let body =
                        u32::from_le_bytes(fresh[at + 16..at + 20].try_into().unwrap()) as usize;
                    let mut h = crc32fast::Hasher::new();
                    h.update(&fresh[at..at + 20]);
                    h.update(&fresh[at + 24..at + 24 + body]);
                    acc ^= h.finalize();
                    at += 24 + body;
                }
                acc as usize
            }
            Lz4FlexCompress => d.nonzero.iter().fold(0, |n, &o| {
                n + compress_into_with_table(d.record(o), &mut self.cbuf, &mut self.table).unwrap()
            }),
            CLz4Compress => d.nonzero.iter().fold(0, |n, &o| {
                let src = d.record(o);
                // SAFETY: both buffers are live and their lengths are passed;
                // LZ4_compress_default writes at most `cbuf.len()` bytes.
                let c = unsafe {
                    lz4_sys::LZ4_compress_default(
                        src.as_ptr() as *const c_char,
                        self.cbuf.as_mut_ptr() as *mut c_char,
                        src.len() as c_int,
                        self.cbuf.len() as c_int,
                    )
                };
                n + c as usize
            }),
            Lz4FlexDecompress => compressed(d).fold(0, |n, (s, l, raw)| {
                n + decompress_into(&d.stored[s..s + l], &mut self.dbuf[..raw]).unwrap()
            }),
            CLz4Decompress => compressed(d).fold(0, |n, (s, l, raw)| {
                // SAFETY: input and output are live buffers of the lengths passed; the safe
                // decoder never writes past `raw` bytes.
                let c = unsafe {
                    lz4_sys::LZ4_decompress_safe(
                        d.stored[s..].as_ptr() as *const c_char,
                        self.dbuf.as_mut_ptr() as *mut c_char,
                        l as c_int,
                        raw as c_int,
                    )
                };
                n + c as usize
            }),
            AesGcmSealStored => {
                for (i, &(s, l, _)) in d.stored_chunks.iter().enumerate() {
                    let tag = self
                        .key
                        .seal_in_place_separate_tag(
                            nonce(i),
                            Aad::from(&AAD),
                            &mut self.seal_work[s..s + l],
                        )
                        .unwrap();
                    let _ = black_box(tag);
                }
                d.stored_chunks.len()
            }
            AesGcmOpenStoredWithCopy => {
                self.sealed_with_tags
                    .iter()
                    .enumerate()
                    .fold(0, |n, (i, ct)| {
                        let buf = &mut self.open_buf[..ct.len()];
                        buf.copy_from_slice(ct);
                        n + self
                            .key
                            .open_in_place(nonce(i), Aad::from(&AAD), buf)
                            .unwrap()
                            .len()
                    })
            }
            AesGcmOpenStoredInPlace => {
                self.sealed_spans
                    .iter()
                    .enumerate()
                    .fold(0, |n, (i, &(s, l))| {
                        n + self
                            .key
                            .open_in_place(nonce(i), Aad::from(&AAD), &mut fresh[s..s + l])
                            .unwrap()
                            .len()
                    })
            }
        }
    }

    /// The whole encoder as a sender runs it: a new encoder (key derivation, scratch), the
    /// header, every record of the dataset into the output buffer, END.
    fn encode(&mut self, mode: usize) -> usize {
        let (codec, enc) = MODES[mode];
        let mut e = Encoder::new(config(self.data, codec, enc)).unwrap();
        let out = &mut self.out;
        let mut at = e.write_header(out).unwrap();
        let mut cur = EncodeCursor::default();
        let ext = self.data.extents();
        while let Some(n) = e
            .next_frame(&ext, &mut cur, &mut self.source, &mut out[at..])
            .unwrap()
        {
            at += n;
        }
        at + e.finish(&mut out[at..]).unwrap()
    }
}

fn compressed(d: &Data) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    d.stored_chunks.iter().copied().filter(|c| c.2 > 0)
}

fn decoder(encrypted: bool) -> Decoder {
    let mut cfg = DecoderConfig::new();
    cfg.secret = encrypted.then(|| Secret::new(SECRET).unwrap());
    Decoder::new(cfg)
}

fn data_len(r: Decoded<'_>, at: &mut usize) -> usize {
    match r {
        Decoded::Header { consumed, .. } => {
            *at += consumed;
            0
        }
        Decoded::Record { record, consumed } => {
            *at += consumed;
            match record {
                Record::Data { data, .. } => data.len(),
                _ => 0,
            }
        }
        other => unreachable!("{other:?}"),
    }
}

/// The whole decoder over a borrowed stream: every frame verified and its data produced.
fn decode(stream: &[u8], encrypted: bool) -> usize {
    let mut dec = decoder(encrypted);
    let (mut at, mut sum) = (0, 0);
    while at < stream.len() {
        sum += data_len(dec.next(&stream[at..]).unwrap(), &mut at);
    }
    sum
}

/// The whole decoder over an owned (encrypted) stream, opened in place.
fn decode_in_place(stream: &mut [u8]) -> usize {
    let mut dec = decoder(true);
    let (mut at, mut sum) = (0, 0);
    while at < stream.len() {
        sum += data_len(dec.next_in_place(&mut stream[at..]).unwrap(), &mut at);
    }
    sum
}
