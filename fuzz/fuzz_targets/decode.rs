//! Fuzz the decoder and applier with hostile bytes.
//!
//! The first input byte picks a mode (bit 2: decrypt in place; bits 3-6: feeding chunk size):
//! - even: the rest is a raw stream, fed to an applier in chunks (with or without a secret);
//! - odd: a valid stream (plain or encrypted) is mutated by (position, xor) pairs, truncation
//!   and frame duplication taken from the input, then applied. With bit 7 set, every frame's
//!   CRC is recomputed after the mutation, as an attacker would: so mutated record fields and
//!   lz4 payloads get past the checksum and reach the record checks and the lz4 decoder.
//!
//! Invariants checked beyond "never panics": no write reaches outside the disk size in force,
//! a mutated *encrypted* stream that is accepted whole produced exactly the original replica,
//! and (when not decrypting in place) a `ParallelApplier` with 2 threads fed the same chunks
//! fails with the same error variant, or succeeds, leaving exactly the same replica.
#![no_main]

use std::io;
use std::sync::OnceLock;

use blockdelta::{
    Applier, ApplyTarget, Codec, DecoderConfig, EncoderConfig, Extent, GenerationId,
    ParallelApplier, Secret, StreamError,
};
use libfuzzer_sys::fuzz_target;

const SIZE: u64 = 256 * 1024;
const SECRET: &[u8] = b"fuzz secret, 16+ bytes";

/// A target that checks every operation against the disk size in force, without allocating
/// for RESIZE (a hostile stream may ask for any size).
struct Checked {
    buf: Vec<u8>,
    size: u64,
}

impl Checked {
    fn check(&self, offset: u64, len: u64) {
        let end = offset
            .checked_add(len)
            .expect("decoder let an overflowing range through");
        assert!(
            end <= self.size,
            "decoder let {offset}+{len} through past the disk end {}",
            self.size
        );
    }
}

impl ApplyTarget for Checked {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check(offset, data.len() as u64);
        let start = (offset as usize).min(self.buf.len());
        let end = (offset as usize + data.len()).min(self.buf.len());
        self.buf[start..end].copy_from_slice(&data[..end - start]);
        Ok(())
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.check(offset, len);
        let start = (offset.min(self.buf.len() as u64)) as usize;
        let end = (offset.saturating_add(len).min(self.buf.len() as u64)) as usize;
        self.buf[start..end].fill(0);
        Ok(())
    }
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.write_zeroes(offset, len)
    }
    fn resize(&mut self, new_size: u64) -> io::Result<()> {
        self.size = new_size;
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn size(&mut self) -> io::Result<Option<u64>> {
        Ok(Some(self.size))
    }
}

fn source() -> Vec<u8> {
    let mut x: u32 = 99;
    (0..SIZE as usize)
        .map(|i| match i / 16384 % 4 {
            0 => 0,
            1 => (i / 33) as u8,
            _ => {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            }
        })
        .collect()
}

/// (stream, expected replica) for a plain and an encrypted stream.
fn valid() -> &'static [(Vec<u8>, Vec<u8>); 2] {
    static V: OnceLock<[(Vec<u8>, Vec<u8>); 2]> = OnceLock::new();
    V.get_or_init(|| {
        let extents = [
            Extent::new(0, 40_000),
            Extent::new(65536, 70_000),
            Extent::new(200_000, 5000),
        ];
        let build = |secret: Option<&[u8]>| {
            let mut cfg = EncoderConfig::new([5; 16], GenerationId([6; 16]), 1, 2, SIZE);
            cfg.record_size = 16384;
            cfg.compression = Codec::Lz4;
            cfg.secret = secret.map(|s| Secret::new(s).unwrap());
            let mut src = source();
            let stream = blockdelta::stream::encode_to_vec(cfg, &extents, &mut src).unwrap();
            let mut replica = vec![0xEEu8; SIZE as usize];
            for e in &extents {
                let r = e.offset as usize..(e.offset + e.len) as usize;
                replica[r.clone()].copy_from_slice(&src[r]);
            }
            (stream, replica)
        };
        [build(None), build(Some(SECRET))]
    })
}

fn config(secret: bool) -> DecoderConfig {
    let mut cfg = DecoderConfig::new();
    if secret {
        cfg.secret = Some(Secret::new(SECRET).unwrap());
    }
    cfg
}

fn fresh() -> Checked {
    Checked {
        buf: vec![0xEE; SIZE as usize],
        size: SIZE,
    }
}

/// The variant name of an error.
fn variant(e: &StreamError) -> String {
    format!("{e:?}")
        .split([' ', '{'])
        .next()
        .unwrap()
        .to_string()
}

/// As `apply` (not in place) with a `ParallelApplier` of 2 threads: the first error's variant
/// (of push, flush or finish), and the replica.
fn apply_parallel(stream: &[u8], secret: bool, chunk: usize) -> (Result<(), String>, Vec<u8>) {
    let mut app = ParallelApplier::new(config(secret), fresh(), 2);
    let (mut start, mut end) = (0, 0);
    loop {
        end = (end + chunk).min(stream.len());
        match app.push(&stream[start..end]) {
            Ok(used) => start += used,
            Err(e) => return (Err(variant(&e)), app.into_target().buf),
        }
        if end == stream.len() {
            break;
        }
    }
    let r = app.flush().and_then(|()| app.finish()).map(drop);
    (r.map_err(|e| variant(&e)), app.into_target().buf)
}

/// Applies `stream` in chunks; returns whether it was accepted whole, and the replica.
fn apply(stream: &[u8], secret: bool, chunk: usize, in_place: bool) -> (bool, Vec<u8>) {
    let mut owned = stream.to_vec();
    let mut app = Applier::new(config(secret), fresh());
    // Feed a window that grows by `chunk` bytes per call, as from a socket.
    let (mut start, mut end) = (0, 0);
    loop {
        end = (end + chunk).min(stream.len());
        let r = if in_place {
            app.push_in_place(&mut owned[start..end])
        } else {
            app.push(&stream[start..end])
        };
        match r {
            Ok(used) => start += used,
            Err(e) => {
                assert!(
                    !matches!(e, StreamError::TargetIo { .. }),
                    "target refused an operation: {e}"
                );
                let replica = app.into_target().buf;
                if !in_place {
                    let (r, par) = apply_parallel(stream, secret, chunk);
                    assert_eq!(r, Err(variant(&e)), "the parallel applier disagrees");
                    assert!(par == replica, "the parallel applier wrote otherwise");
                }
                return (false, replica);
            }
        }
        if end == stream.len() {
            break;
        }
    }
    let finish = app.finish();
    let ok = start == stream.len() && finish.is_ok();
    let replica = app.into_target().buf;
    if !in_place {
        let (r, par) = apply_parallel(stream, secret, chunk);
        assert_eq!(
            r,
            finish.map(drop).map_err(|e| variant(&e)),
            "the parallel applier disagrees"
        );
        assert!(par == replica, "the parallel applier wrote otherwise");
    }
    (ok, replica)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let chunk = 1 + usize::from((mode >> 3) & 0xF) * 97;
    let in_place = mode & 4 != 0;
    if mode & 1 == 0 {
        apply(rest, mode & 2 != 0, chunk, in_place);
        return;
    }
    let encrypted = mode & 2 != 0;
    let (stream, expected) = &valid()[usize::from(encrypted)];
    let mut s = stream.clone();
    let mut ops = rest.chunks_exact(4);
    for op in &mut ops {
        let pos = usize::from(u16::from_le_bytes([op[0], op[1]])) * 7 + usize::from(op[2]);
        match op[3] {
            0 => s.truncate(pos % (s.len() + 1)),
            1 => {
                // Duplicate a span (replays a frame when it lands on frame boundaries).
                let a = pos % (s.len() + 1);
                let b = (a + usize::from(op[2]) * 16).min(s.len());
                let span = s[a..b].to_vec();
                s.splice(a..a, span);
            }
            x => {
                if !s.is_empty() {
                    let i = pos % s.len();
                    s[i] ^= x;
                }
            }
        }
    }
    if mode & 0x80 != 0 {
        fix_crcs(&mut s);
    }
    let (ok, replica) = apply(&s, encrypted, chunk, in_place);
    if ok && encrypted {
        assert!(
            replica == *expected,
            "an accepted encrypted stream must be the original"
        );
    }
});

/// Recomputes the CRC of every whole frame (docs/FORMAT.md: CRC-32 of the first 20 header bytes
/// and the body, stored at 20..24; the body length at 16..20), stopping at the first frame whose
/// length runs past the end.
fn fix_crcs(s: &mut [u8]) {
    let mut at = 0;
    while at + 24 <= s.len() {
        let body = u32::from_le_bytes(s[at + 16..at + 20].try_into().unwrap()) as usize;
        let Some(end) = (at + 24).checked_add(body).filter(|&e| e <= s.len()) else {
            return;
        };
        let mut h = crc32fast::Hasher::new();
        h.update(&s[at..at + 20]);
        h.update(&s[at + 24..end]);
        s[at + 20..at + 24].copy_from_slice(&h.finalize().to_le_bytes());
        at = end;
    }
}
