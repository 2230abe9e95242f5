//! Review probe (passes): FileSource holes (SEEK_DATA/SEEK_HOLE) and a thin FileTarget give the
//! source's bytes for random sparse files (holes at the start, the end, unaligned sizes), any
//! thread count, holes as ZERO or DISCARD.
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::FileExt;

use blockdelta::{
    Applier, DecoderConfig, EncoderConfig, Extent, FileSource, FileTarget, GenerationId,
    ParallelEncoder,
};

#[test]
fn sparse_files_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut x = 88172645463325252u64;
    let mut rnd = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for case in 0..24 {
        let size = (1 << 20) + rnd(3 << 20);
        let size = if case % 3 == 0 {
            size / 4096 * 4096
        } else {
            size
        };
        let path = dir.path().join(format!("s{case}"));
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        f.set_len(size).unwrap();
        let mut image = vec![0u8; size as usize];
        for _ in 0..rnd(12) {
            let at = rnd(size);
            let len = (1 + rnd(300_000)).min(size - at);
            let v: Vec<u8> = (0..len)
                .map(|i| if rnd(4) == 0 { 0 } else { (i as u8) | 1 })
                .collect();
            f.write_all_at(&v, at).unwrap();
            image[at as usize..(at + len) as usize].copy_from_slice(&v);
        }
        if case % 4 == 1 {
            f.write_all_at(&[9], size - 1).unwrap();
            image[size as usize - 1] = 9;
        }
        f.sync_all().unwrap();
        for threads in [1usize, 3] {
            for discard in [false, true] {
                let mut c =
                    EncoderConfig::new(*b"review-files-001", GenerationId([2; 16]), 1, 2, size);
                c.block_size = [512, 4096][case % 2];
                c.record_size = [65536, 100_000, 1 << 20][case % 3];
                c.holes_as_discard = discard;
                let mut src = FileSource::new(std::fs::File::open(&path).unwrap());
                let mut enc = ParallelEncoder::new(c, threads).unwrap();
                let mut buf = vec![0u8; enc.max_frame_len()];
                let mut s = Vec::new();
                let n = enc.write_header(&mut buf).unwrap();
                s.extend_from_slice(&buf[..n]);
                let a = rnd(size);
                enc.set_extents(&[Extent::new(0, a), Extent::new(a, size - a)])
                    .unwrap();
                while let Some(fr) = enc.next_frames(&mut src).unwrap() {
                    s.extend_from_slice(fr);
                }
                let n = enc.finish(&mut buf).unwrap();
                s.extend_from_slice(&buf[..n]);
                let rp = dir.path().join(format!("r{case}"));
                let r = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&rp)
                    .unwrap();
                r.set_len(size).unwrap();
                r.write_all_at(&vec![0xEE; size as usize], 0).unwrap();
                let mut ap = Applier::new(DecoderConfig::new(), FileTarget::new(r).unwrap());
                ap.push(&s).unwrap();
                ap.finish().unwrap();
                let mut got = Vec::new();
                std::fs::File::open(&rp)
                    .unwrap()
                    .read_to_end(&mut got)
                    .unwrap();
                assert!(
                    got == image,
                    "case {case} threads {threads} discard {discard}"
                );
            }
        }
    }
}
