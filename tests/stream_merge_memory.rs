//! `merge` holds a few frames per input, never a whole stream or disk: three inputs of 64 MiB
//! of DATA each (one encrypted) are merged from files while the process's peak resident size
//! grows by far less than one input. Its own test binary, so that no other test's memory
//! counts. Linux only (it reads and resets the peak in `/proc/self`).
//!
//! Expected bound: per input a read buffer of one maximum frame plus 64 KiB (about 1.1 MiB),
//! the decoder's scratch (up to about 2 MiB for an encrypted lz4 stream) and one decoded DATA
//! payload (1 MiB); the output encoder's scratch and frame (about 2 MiB). About 14 MiB here;
//! the test allows 32 MiB, half of a single input.

#![cfg(target_os = "linux")]

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};

use blockdelta::stream::{merge, MergeInput};
use blockdelta::{
    BlockSource, Codec, DecoderConfig, EncodeCursor, Encoder, EncoderConfig, Extent, GenerationId,
    Secret,
};

const MIB: u64 = 1 << 20;
const SIZE: u64 = 64 * MIB;
const SECRET: &[u8] = b"memory test secret, 32 bytes...!";

/// A disk whose bytes are computed, so that building the inputs needs no memory either.
struct Pattern(u8);

impl BlockSource for Pattern {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        for (i, b) in buf.iter_mut().enumerate() {
            let x = offset + i as u64;
            *b = (x.wrapping_mul(2_654_435_761) >> 13) as u8 ^ self.0 | 1;
        }
        Ok(())
    }
}

fn input(i: u8, secret: Option<&[u8]>) -> File {
    let mut cfg = EncoderConfig::new(
        *b"memory-test-disk",
        GenerationId([3; 16]),
        1 + i as u64,
        2 + i as u64,
        SIZE,
    );
    cfg.compression = Codec::Raw;
    cfg.zero_detection = false;
    cfg.secret = secret.map(|s| Secret::new(s).unwrap());
    let mut enc = Encoder::new(cfg).unwrap();
    let mut buf = vec![0u8; enc.max_frame_len()];
    let mut file = tempfile::tempfile().unwrap();
    {
        let mut w = BufWriter::new(&mut file);
        let n = enc.write_header(&mut buf).unwrap();
        w.write_all(&buf[..n]).unwrap();
        // Offset by i/3 MiB so that the inputs' records do not line up.
        let ext = [Extent::new(i as u64 * MIB / 3, SIZE - i as u64 * MIB / 3)];
        let mut c = EncodeCursor::default();
        let mut src = Pattern(i);
        while let Some(n) = enc.next_frame(&ext, &mut c, &mut src, &mut buf).unwrap() {
            w.write_all(&buf[..n]).unwrap();
        }
        let n = enc.finish(&mut buf).unwrap();
        w.write_all(&buf[..n]).unwrap();
    }
    file.seek(SeekFrom::Start(0)).unwrap();
    file
}

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

struct Counting(u64);

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn merging_three_64_mib_streams_holds_a_few_frames_not_the_streams() {
    let files = [input(0, None), input(1, Some(SECRET)), input(2, None)];
    let mut inputs: Vec<_> = files
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let mut c = DecoderConfig::new();
            if i == 1 {
                c.secret = Some(Secret::new(SECRET).unwrap());
            }
            MergeInput::new(f, c)
        })
        .collect();
    // Reset the peak resident size to the current one (Linux >= 4.0); where that is not
    // allowed, the peak so far (building the inputs needed little) is the baseline.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = if reset {
        status_kib("VmRSS:")
    } else {
        status_kib("VmHWM:")
    };
    let mut out = Counting(0);
    let mut cfg = EncoderConfig::new([0; 16], GenerationId([0; 16]), 0, 1, 1);
    cfg.compression = Codec::Raw;
    let summary = merge(&mut inputs, cfg, &mut out).unwrap();
    let peak = status_kib("VmHWM:");
    assert_eq!(summary.bytes_written, out.0);
    assert!(
        out.0 >= SIZE,
        "the merged stream carries the whole disk: {}",
        out.0
    );
    let grew = peak.saturating_sub(before) * 1024;
    eprintln!("peak grew by {} KiB (reset: {reset})", grew / 1024);
    assert!(
        grew < 32 * MIB,
        "merging grew the peak resident size by {} MiB (reset: {reset})",
        grew / MIB
    );
}
