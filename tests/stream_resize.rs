//! Disk sizes and RESIZE (issue 8): sizes are bounded by the format, the in-memory and file
//! targets fail cleanly instead of panicking or aborting, and a stream cut after a shrinking
//! RESIZE never blocks a retry of the same stream.

use std::io;

use blockdelta::stream::MAX_DISK_SIZE;
use blockdelta::{
    Applier, ApplyTarget, Codec, DecoderConfig, EncodeCursor, Encoder, EncoderConfig, Extent,
    FileTarget, GenerationId, StreamError,
};

const DISK: [u8; 16] = *b"resize-disk-0001";
const GEN: GenerationId = GenerationId([5; 16]);
const SIZE: u64 = 1 << 20;

fn source(len: u64) -> Vec<u8> {
    (0..len as usize)
        .map(|i| ((i / 5) as u8).wrapping_mul(29) | 1)
        .collect()
}

fn resize_record(new_size: u64) -> Vec<u8> {
    record(0x8004, &new_size.to_le_bytes())
}

/// A valid plain header frame for a disk of `disk_size` bytes (any value: re-signed).
fn header_frame(disk_size: u64) -> Vec<u8> {
    let cfg = EncoderConfig::new(DISK, GEN, 1, 2, SIZE);
    let mut enc = Encoder::new(cfg).unwrap();
    let mut buf = vec![0u8; enc.max_frame_len()];
    let n = enc.write_header(&mut buf).unwrap();
    let mut h = buf[..n].to_vec();
    h[24 + 68..24 + 76].copy_from_slice(&disk_size.to_le_bytes());
    fix_crc(&mut h);
    h
}

#[path = "common/hand.rs"]
mod hand;
#[path = "common/recorder.rs"]
mod recorder;
use hand::{fix_crc, hand_stream, record};
use recorder::Recorder as Logged;

fn apply(stream: &[u8], disk: Vec<u8>) -> (Result<(), StreamError>, Logged) {
    let mut app = Applier::new(
        DecoderConfig::new(),
        Logged {
            disk,
            log: Vec::new(),
        },
    );
    let r = app.push(stream).and_then(|_| app.finish().map(|_| ()));
    (r, app.into_target())
}

#[test]
fn resize_records_outside_1_to_2_pow_60_are_refused_before_the_target_sees_them() {
    for bad in [0, MAX_DISK_SIZE + 1, 1 << 62, u64::MAX] {
        let s = hand_stream(header_frame(SIZE), &[resize_record(bad)]);
        let (r, t) = apply(&s, vec![0; SIZE as usize]);
        assert!(
            matches!(r, Err(StreamError::InvalidDiskSize { what: "RESIZE record", size, max })
                if size == bad && max == MAX_DISK_SIZE),
            "{bad}: {r:?}"
        );
        assert!(t.log.is_empty(), "{bad}: {:?}", t.log);
    }
    // The encoder refuses to write them too.
    let mut enc = Encoder::new(EncoderConfig::new(DISK, GEN, 1, 2, SIZE)).unwrap();
    let mut buf = vec![0u8; enc.max_frame_len()];
    enc.write_header(&mut buf).unwrap();
    for bad in [0, MAX_DISK_SIZE + 1, u64::MAX] {
        let r = enc.write_resize(bad, &mut buf);
        assert!(
            matches!(r, Err(StreamError::InvalidDiskSize { .. })),
            "{r:?}"
        );
    }
    assert!(enc.write_resize(MAX_DISK_SIZE, &mut buf).is_ok());
}

#[test]
fn header_disk_sizes_outside_1_to_2_pow_60_are_refused() {
    for bad in [0, MAX_DISK_SIZE + 1, 1 << 62, u64::MAX] {
        let s = hand_stream(header_frame(bad), &[]);
        let (r, t) = apply(&s, vec![0; SIZE as usize]);
        assert!(
            matches!(r, Err(StreamError::InvalidDiskSize { what: "stream header", size, .. }) if size == bad),
            "{bad}: {r:?}"
        );
        assert!(t.log.is_empty());
        let r = Encoder::new(EncoderConfig::new(DISK, GEN, 1, 2, bad));
        assert!(
            matches!(r, Err(StreamError::InvalidDiskSize { .. })),
            "{r:?}"
        );
    }
}

/// `Vec<u8>` panicked ("capacity overflow") on a resize to 2^64-1 and aborted the process on
/// 2^40; now each is an error of kind `OutOfMemory`.
#[test]
fn the_in_memory_target_fails_cleanly_on_impossible_sizes() {
    let overcommit = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap_or_default();
    let mut sizes = vec![u64::MAX, 1 << 62, MAX_DISK_SIZE];
    // 1 TiB is refused by the allocator unless the kernel overcommits blindly (mode 1).
    if overcommit.trim() != "1" {
        sizes.push(1 << 40);
    }
    for size in sizes {
        let mut v = vec![7u8; 4096];
        let e = ApplyTarget::resize(&mut v, size).expect_err("cannot be allocated");
        assert_eq!(e.kind(), io::ErrorKind::OutOfMemory, "{size}: {e}");
        assert_eq!(v.len(), 4096, "unchanged after a failed resize");
    }
    // Through the applier: a valid RESIZE to 2^60 grows the target, which fails cleanly.
    let s = hand_stream(header_frame(SIZE), &[resize_record(MAX_DISK_SIZE)]);
    let (r, t) = apply(&s, vec![0; SIZE as usize]);
    assert!(
        matches!(r, Err(StreamError::TargetIo { op: "resize", .. })),
        "{r:?}"
    );
    assert_eq!(t.disk.len() as u64, SIZE);
}

#[test]
fn the_file_target_fails_cleanly_on_impossible_sizes() {
    let mut t = FileTarget::new(tempfile::tempfile().unwrap()).unwrap();
    let e = t.resize(u64::MAX).expect_err("no file can be 2^64-1 bytes");
    assert_ne!(e.kind(), io::ErrorKind::Other, "{e}");
    assert_eq!(t.size().unwrap(), Some(0));
}

/// A stream over a 1 MiB disk: DATA, a RESIZE that shrinks it to 512 KiB, DATA below the new
/// end, a bookmark-free END.
fn shrinking_stream() -> (Vec<Vec<u8>>, Vec<u8>) {
    let src = source(SIZE);
    let mut cfg = EncoderConfig::new(DISK, GEN, 1, 2, SIZE);
    cfg.record_size = 65536;
    cfg.compression = Codec::Raw;
    let mut enc = Encoder::new(cfg).unwrap();
    let mut buf = vec![0u8; enc.max_frame_len()];
    let mut frames = Vec::new();
    let n = enc.write_header(&mut buf).unwrap();
    frames.push(buf[..n].to_vec());
    let mut s = src.clone();
    let first = [Extent::new(0, 131072)];
    let mut cur = EncodeCursor::default();
    while let Some(n) = enc.next_frame(&first, &mut cur, &mut s, &mut buf).unwrap() {
        frames.push(buf[..n].to_vec());
    }
    let n = enc.write_resize(SIZE / 2, &mut buf).unwrap();
    frames.push(buf[..n].to_vec());
    let second = [Extent::new(262144, 131072)];
    let mut cur = EncodeCursor::default();
    while let Some(n) = enc.next_frame(&second, &mut cur, &mut s, &mut buf).unwrap() {
        frames.push(buf[..n].to_vec());
    }
    let n = enc.finish(&mut buf).unwrap();
    frames.push(buf[..n].to_vec());
    // The replica starts as 0x55 everywhere.
    let mut expected = vec![0x55u8; (SIZE / 2) as usize];
    expected[..131072].copy_from_slice(&src[..131072]);
    expected[262144..393216].copy_from_slice(&src[262144..393216]);
    (frames, expected)
}

/// A cut after a shrinking RESIZE used to leave the replica smaller than the stream's disk, so
/// every retry of the same stream failed with `TargetTooSmall`. Now the shrink waits for a
/// verified END: a cut at any frame boundary (or inside a frame) is followed by a retry that
/// succeeds with the expected replica.
#[test]
fn a_stream_cut_anywhere_after_a_shrink_can_be_retried() {
    let (frames, expected) = shrinking_stream();
    let whole = frames.concat();
    let mut cuts: Vec<usize> = (1..frames.len())
        .map(|k| frames[..k].iter().map(Vec::len).sum())
        .collect();
    cuts.extend(cuts.clone().iter().map(|c| c + 10)); // inside the next frame
    for cut in cuts {
        let mut app = Applier::new(DecoderConfig::new(), vec![0x55u8; SIZE as usize]);
        app.push(&whole[..cut]).unwrap();
        assert!(matches!(app.finish(), Err(StreamError::Truncated { .. })));
        let replica = app.into_target();
        assert_eq!(
            replica.len() as u64,
            SIZE,
            "cut at {cut}: no shrink before END"
        );
        let mut app = Applier::new(DecoderConfig::new(), replica);
        app.push(&whole)
            .unwrap_or_else(|e| panic!("retry after a cut at {cut}: {e}"));
        app.finish().unwrap();
        assert!(app.into_target() == expected, "cut at {cut}");
    }
    // And applied whole, the shrink happens before the final sync.
    let (r, t) = apply(&whole, vec![0x55u8; SIZE as usize]);
    r.unwrap();
    assert!(t.disk == expected);
    let n = t.log.len();
    assert_eq!(
        t.log[n - 2..],
        [format!("resize {}", SIZE / 2), "sync".into()]
    );
}

/// A shrink then a growth back: the bytes the shrink cut off read as zeros afterwards, as they
/// would had the shrink been applied at once; growth is applied at once.
#[test]
fn a_shrink_then_a_growth_zeroes_what_the_shrink_cut_off() {
    let s = hand_stream(
        header_frame(SIZE),
        &[resize_record(SIZE / 4), resize_record(SIZE * 2)],
    );
    let (r, t) = apply(&s, vec![0x55u8; SIZE as usize]);
    r.unwrap();
    assert_eq!(t.disk.len() as u64, SIZE * 2);
    assert!(t.disk[..(SIZE / 4) as usize].iter().all(|&b| b == 0x55));
    assert!(t.disk[(SIZE / 4) as usize..].iter().all(|&b| b == 0));
    assert_eq!(
        t.log,
        [
            format!("zero {} {}", SIZE / 4, SIZE - SIZE / 4),
            format!("resize {}", SIZE * 2),
            "sync".to_string()
        ]
    );
}
