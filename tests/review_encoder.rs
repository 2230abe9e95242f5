//! Adversarial review of the encoder work of 2026-12-07 (ParallelEncoder, zeros and holes,
//! read-ahead, the C ABI's threads and source hints). Each test here failed when written.

use std::ffi::{c_int, c_void};
use std::io;

use blockdelta::ffi::encoder::*;
use blockdelta::ffi::result::blockdelta_result;
use blockdelta::{
    Applier, BlockSource, Codec, DecoderConfig, EncodeCursor, Encoder, EncoderConfig, Extent,
    GenerationId, ParallelEncoder, Region,
};

const DISK: usize = 4 << 20;

/// Every block non-zero except block 1 (4096..8192), which is all zeros.
fn disk() -> Vec<u8> {
    let mut d: Vec<u8> = (0..DISK).map(|i| (i % 251) as u8 | 1).collect();
    d[4096..8192].fill(0);
    d
}

fn cfg() -> EncoderConfig {
    let mut c = EncoderConfig::new(
        *b"review-encoder-1",
        GenerationId([4; 16]),
        1,
        2,
        DISK as u64,
    );
    c.block_size = 4096;
    c.record_size = 65536;
    c.compression = Codec::Raw;
    c.zero_detection = true;
    c
}

fn apply(stream: &[u8]) -> Vec<u8> {
    let mut a = Applier::new(DecoderConfig::new(), vec![0xEEu8; DISK]);
    assert_eq!(a.push(stream).unwrap(), stream.len());
    a.finish().unwrap();
    a.into_target()
}

// ---------------------------------------------------------------------------------------------
// Finding 1: the C ABI loses an extent list set before blockdelta_encoder_set_threads.
// ---------------------------------------------------------------------------------------------

unsafe extern "C" fn read_cb(ctx: *mut c_void, offset: u64, buf: *mut u8, len: usize) -> c_int {
    let d = unsafe { &*(ctx as *const Vec<u8>) };
    unsafe { std::ptr::copy_nonoverlapping(d.as_ptr().add(offset as usize), buf, len) };
    0
}

/// new -> set_extents -> set_threads(threads) -> header -> next.. -> finish, through the C ABI.
fn c_stream(src: &Vec<u8>, list: &[Extent], threads: &[u32]) -> (Vec<u8>, usize) {
    let id = *b"review-encoder-1";
    let generation = [4u8; 16];
    let mut enc: *mut blockdelta_encoder = std::ptr::null_mut();
    let r = blockdelta_encoder_new(
        id.as_ptr(),
        generation.as_ptr(),
        1,
        2,
        DISK as u64,
        4096,
        65536,
        BLOCKDELTA_ENCODE_LZ4 | BLOCKDELTA_ENCODE_ZERO_DETECTION,
        std::ptr::null(),
        0,
        Some(read_cb),
        src as *const Vec<u8> as *mut c_void,
        &mut enc,
    );
    assert_eq!(r, blockdelta_result::Ok);
    let mut order = threads.iter();
    // The list first (allowed: nothing says it must follow the header), then the threads.
    let r = blockdelta_encoder_set_extents(enc, list.as_ptr(), list.len());
    assert_eq!(r, blockdelta_result::Ok);
    for &t in order.by_ref() {
        assert_eq!(
            blockdelta_encoder_set_threads(enc, t),
            blockdelta_result::Ok
        );
    }
    let mut buf = vec![0u8; blockdelta_encoder_bound(enc)];
    let mut out = Vec::new();
    let mut n = 0usize;
    assert_eq!(
        blockdelta_encoder_header(enc, buf.as_mut_ptr(), buf.len(), &mut n),
        blockdelta_result::Ok
    );
    out.extend_from_slice(&buf[..n]);
    let mut frames = 0;
    loop {
        let r = blockdelta_encoder_next(enc, buf.as_mut_ptr(), buf.len(), &mut n);
        assert_eq!(r, blockdelta_result::Ok);
        if n == 0 {
            break;
        }
        frames += 1;
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        blockdelta_encoder_finish(enc, buf.as_mut_ptr(), buf.len(), &mut n),
        blockdelta_result::Ok
    );
    out.extend_from_slice(&buf[..n]);
    blockdelta_encoder_free(enc);
    (out, frames)
}

#[test]
fn c_abi_set_threads_after_set_extents_keeps_the_list() {
    let src = disk();
    let list = [Extent::new(0, DISK as u64)];
    // One thread: the list is encoded and the replica is the source.
    let (stream, frames) = c_stream(&src, &list, &[1]);
    assert!(frames > 0);
    assert!(apply(&stream) == src, "1 thread: replica differs");
    // Four threads, set after the list: every call succeeds, END is written, and the replica
    // must still be the source. It is not: the new ParallelEncoder never saw the list.
    let (stream, frames) = c_stream(&src, &list, &[4]);
    assert!(
        frames > 0,
        "set_threads after set_extents: the list was silently dropped, the stream has no \
         record and the replica keeps its old bytes"
    );
    assert!(apply(&stream) == src, "4 threads: replica differs");
}

// ---------------------------------------------------------------------------------------------
// Finding 2: after a list is replaced in the middle of a record, ParallelEncoder does not write
// what Encoder writes "with a new cursor" (Encoder resumes its staged record; ParallelEncoder
// re-plans a fresh record at that offset).
// ---------------------------------------------------------------------------------------------

/// k frames of `a`, then all of `b` (a new cursor), with Encoder.
fn serial_replaced(
    cfg: EncoderConfig,
    src: &mut dyn BlockSource,
    a: &[Extent],
    k: usize,
    b: &[Extent],
) -> Vec<u8> {
    let mut enc = Encoder::new(cfg).unwrap();
    let mut buf = vec![0u8; enc.max_frame_len()];
    let mut out = Vec::new();
    let n = enc.write_header(&mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    let mut cursor = EncodeCursor::default();
    for _ in 0..k {
        let n = enc
            .next_frame(a, &mut cursor, src, &mut buf)
            .unwrap()
            .unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    let mut cursor = EncodeCursor::default();
    while let Some(n) = enc.next_frame(b, &mut cursor, src, &mut buf).unwrap() {
        out.extend_from_slice(&buf[..n]);
    }
    let n = enc.finish(&mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    out
}

/// The same with ParallelEncoder and set_extents.
fn parallel_replaced(
    cfg: EncoderConfig,
    threads: usize,
    src: &mut dyn BlockSource,
    a: &[Extent],
    k: usize,
    b: &[Extent],
) -> Vec<u8> {
    let mut enc = ParallelEncoder::new(cfg, threads).unwrap();
    let mut buf = vec![0u8; enc.max_frame_len()];
    let mut out = Vec::new();
    let n = enc.write_header(&mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    enc.set_extents(a).unwrap();
    for _ in 0..k {
        let n = enc.next_frame(src, &mut buf).unwrap().unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    enc.set_extents(b).unwrap();
    while let Some(n) = enc.next_frame(src, &mut buf).unwrap() {
        out.extend_from_slice(&buf[..n]);
    }
    let n = enc.finish(&mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    out
}

#[test]
fn a_list_replaced_mid_record_gives_the_encoders_bytes() {
    let data = disk();
    // Record 0..65536 is DATA 0..4096, ZERO 4096..8192, DATA 8192..65536: one frame out, then
    // the rest of the disk as a new list starting where the replaced one stopped.
    let a = [Extent::new(0, DISK as u64)];
    let b = [Extent::new(4096, DISK as u64 - 4096)];
    let want = serial_replaced(cfg(), &mut data.clone(), &a, 1, &b);
    assert!(apply(&want) == data);
    for threads in [1, 2, 4] {
        let got = parallel_replaced(cfg(), threads, &mut data.clone(), &a, 1, &b);
        assert!(apply(&got) == data, "{threads} threads: replica differs");
        assert!(
            got == want,
            "{threads} threads: not the bytes Encoder writes with a new cursor (Encoder \
             finishes its staged record at 65536, ParallelEncoder starts a new one at 4096)"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Finding 3: with a source that answers shorter regions than it knows (allowed by
// BlockSource::region), a list replaced mid-way gives different bytes for different thread
// counts: record boundaries follow the planner's cached region, which depends on how far the
// pipeline had planned ahead.
// ---------------------------------------------------------------------------------------------

struct Capped(Vec<u8>);

impl BlockSource for Capped {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.as_mut_slice().read_at(offset, buf)
    }
    /// Everything is data, answered at most 100 000 bytes at a time (as an NBD block-status
    /// client capping its request length would).
    fn region(&mut self, offset: u64, end: u64) -> io::Result<Region> {
        Ok(Region::Data((end - offset).min(100_000)))
    }
}

#[test]
fn a_replaced_list_gives_the_same_bytes_for_every_thread_count() {
    let data: Vec<u8> = (0..DISK).map(|i| (i % 251) as u8 | 1).collect();
    let a = [Extent::new(0, DISK as u64)];
    let b = [Extent::new(65536, DISK as u64 - 65536)];
    let want = serial_replaced(cfg(), &mut Capped(data.clone()), &a, 1, &b);
    for threads in [1, 2, 4] {
        let got = parallel_replaced(cfg(), threads, &mut Capped(data.clone()), &a, 1, &b);
        assert!(apply(&got) == data, "{threads} threads: replica differs");
        assert!(
            got == want,
            "{threads} threads: not the bytes of Encoder (nor of 1 thread)"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Finding 5: `holes_as_discard` turns a range the tracker says was WRITTEN (and that the source
// reads as zeros) into DISCARD, whose contents are unspecified (docs/FORMAT.md: "a replica may
// punch a hole, issue a discard, or write zeros"). A replica that issues a discard on a device
// that does not zero on unmap keeps the old bytes where the source reads zeros: the guest's
// written zeros (e.g. WRITE_ZEROES that the hypervisor turned into a punched hole) are lost.
// ---------------------------------------------------------------------------------------------

/// A sparse source: 64 KiB..192 KiB is a hole (zeros), reported by `region`.
struct Sparse(Vec<u8>);

impl BlockSource for Sparse {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        assert!(
            offset + buf.len() as u64 <= 65536 || offset >= 196_608,
            "hole read"
        );
        self.0.as_mut_slice().read_at(offset, buf)
    }
    fn region(&mut self, offset: u64, end: u64) -> io::Result<Region> {
        Ok(if (65536..196_608).contains(&offset) {
            Region::Hole(196_608.min(end) - offset)
        } else if offset < 65536 {
            Region::Data(65536.min(end) - offset)
        } else {
            Region::Data(end - offset)
        })
    }
}

/// A replica whose DISCARD unmaps without zeroing (allowed by the format).
struct UnmapKeeps(Vec<u8>);

impl blockdelta::ApplyTarget for UnmapKeeps {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write_at(offset, data)
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.0.write_zeroes(offset, len)
    }
    fn discard(&mut self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(()) // contents unspecified: the old bytes stay
    }
    fn resize(&mut self, new_size: u64) -> io::Result<()> {
        blockdelta::ApplyTarget::resize(&mut self.0, new_size)
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn size(&mut self) -> io::Result<Option<u64>> {
        Ok(Some(self.0.len() as u64))
    }
}

/// The contract, as now documented on `EncoderConfig::holes_as_discard` and the C flag: off
/// (the default), a hole goes as ZERO and every replica reads zeros there; on, it goes as
/// DISCARD, whose contents are unspecified: a target whose discard keeps the old bytes keeps
/// them, one whose discard reads back zeros (a punched hole, `FileTarget`) matches the source.
#[test]
fn holes_as_discard_sends_discards_whose_contents_are_unspecified() {
    let mut data: Vec<u8> = (0..DISK).map(|i| (i % 251) as u8 | 1).collect();
    data[65536..196_608].fill(0);
    // The tracker says 0..256 KiB was written (the zeros included).
    let list = [Extent::new(0, 262_144)];
    for holes_as_discard in [false, true] {
        let mut c = cfg();
        c.holes_as_discard = holes_as_discard;
        let stream =
            blockdelta::stream::encode_to_vec(c, &list, &mut Sparse(data.clone())).unwrap();
        // The replica holds the previous point's bytes; its discard keeps them.
        let mut a = Applier::new(DecoderConfig::new(), UnmapKeeps(vec![0xEEu8; DISK]));
        assert_eq!(a.push(&stream).unwrap(), stream.len());
        a.finish().unwrap();
        let replica = a.into_target().0;
        assert!(
            replica[..65536] == data[..65536]
                && replica[196_608..262_144] == data[196_608..262_144]
        );
        if holes_as_discard {
            assert!(
                replica[65536..196_608].iter().all(|&b| b == 0xEE),
                "sent as DISCARD"
            );
            // A target whose discard reads back zeros matches the source.
            let mut a = Applier::new(DecoderConfig::new(), vec![0xEEu8; DISK]);
            assert_eq!(a.push(&stream).unwrap(), stream.len());
            a.finish().unwrap();
            assert!(a.into_target()[..262_144] == data[..262_144]);
        } else {
            assert!(replica[..262_144] == data[..262_144], "sent as ZERO");
        }
    }
}
