//! Checksum resync (`blockdelta::resync`, `docs/RESYNC.md`): random disks with random
//! differences (data, zeros, last partial block, size changes both ways) come out
//! byte-identical after hashing both sides, comparing and applying the stream; the hash list
//! round-trips; hostile lists give distinct errors and never panic; parallel hashing gives the
//! single-threaded list.

use std::io::Write;

use blockdelta::resync::{
    diff, BlockHash, HashConfig, HashList, ResyncError, ResyncPlan, FORMAT_MAJOR, MAGIC,
};
use blockdelta::stream::encode_to_vec;
use blockdelta::{
    Applier, DecoderConfig, EncoderConfig, Expected, Extent, FileTarget, GenerationId, Secret,
    Tracker, TrackerConfig,
};

const DISK_ID: [u8; 16] = *b"resync-test-disk";
const SECRET: &[u8] = b"resync test secret, 16+ bytes";

#[path = "common/source.rs"]
mod source;
use source::Rng;

/// A disk of `size` bytes: random data with zero areas, some compressible runs.
fn random_disk(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut d = vec![0u8; size];
    let mut at = 0;
    while at < size {
        let len = (rng.below(64 * 1024) as usize + 1).min(size - at);
        match rng.below(4) {
            0 => {}                                          // zeros
            1 => d[at..at + len].fill(rng.next() as u8 | 1), // compressible
            _ => rng.fill(&mut d[at..at + len]),             // random
        }
        at += len;
    }
    d
}

/// The replica: `source` with random blocks changed (data, zeroed, single bytes), resized to
/// `size`.
fn diverge(rng: &mut Rng, source: &[u8], size: usize, changes: usize) -> Vec<u8> {
    let mut r = source.to_vec();
    r.resize(size, 0);
    for _ in 0..changes {
        let at = rng.below(size as u64) as usize;
        let len = (rng.below(20_000) as usize + 1).min(size - at);
        match rng.below(3) {
            0 => r[at..at + len].fill(0),
            1 => r[at] ^= 1 << rng.below(8),
            _ => rng.fill(&mut r[at..at + len]),
        }
    }
    if rng.below(2) == 0 && size > 0 {
        // Grown tail with data, or the original's tail with garbage.
        let n = size.min(5000);
        rng.fill(&mut r[size - n..]);
    }
    r
}

fn config(salt: u8, block_size: u32, threads: usize) -> HashConfig {
    HashConfig {
        block_size,
        threads,
        salt: [salt; 16],
    }
}

fn encoder_config(secret: bool) -> EncoderConfig {
    let mut cfg = EncoderConfig::new(DISK_ID, GenerationId([3; 16]), 7, 8, 0);
    if secret {
        cfg.secret = Some(Secret::new(SECRET).unwrap());
    }
    cfg
}

fn decoder_config(secret: bool) -> DecoderConfig {
    let d = DecoderConfig::new().with_expected(Expected {
        disk_id: Some(DISK_ID),
        generation: Some(GenerationId([3; 16])),
        replica_seq: Some(7),
    });
    if secret {
        d.with_secret(Secret::new(SECRET).unwrap())
    } else {
        d
    }
}

/// Hashes both sides, compares, encodes, applies; returns the plan and the resynced replica.
fn resync(
    source: &[u8],
    replica: Vec<u8>,
    cfg: &HashConfig,
    secret: bool,
) -> (ResyncPlan, Vec<u8>) {
    let theirs = HashList::compute(&replica[..], replica.len() as u64, cfg).unwrap();
    let wire = theirs.to_bytes();
    let theirs = HashList::decode(&wire).unwrap();
    let ours = HashList::compute(source, source.len() as u64, cfg).unwrap();
    let plan = diff(&theirs, &ours).unwrap();
    let mut stream = Vec::new();
    let n = plan
        .encode(encoder_config(secret), &mut source.to_vec(), &mut |f| {
            stream.extend_from_slice(f);
            Ok(())
        })
        .unwrap();
    assert_eq!(n, stream.len() as u64);
    let mut applier = Applier::new(decoder_config(secret), replica);
    assert_eq!(applier.push(&stream).unwrap(), stream.len());
    applier.finish().unwrap();
    (plan, applier.into_target())
}

#[test]
fn random_disks_with_random_differences_come_out_identical() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for round in 0..40 {
        let block_size = [4096u32, 8192, 65536][rng.below(3) as usize];
        let size = rng.below(3 << 20) as usize + 1;
        let source = random_disk(&mut rng, size);
        let replica_size = match rng.below(4) {
            0 => size,
            1 => (size + rng.below(1 << 20) as usize).max(1),
            2 => (rng.below(size as u64) as usize).max(1),
            _ => size,
        };
        let changes = rng.below(30) as usize;
        let replica = diverge(&mut rng, &source, replica_size, changes);
        let cfg = config(round as u8, block_size, 1 + rng.below(4) as usize);
        let (plan, out) = resync(&source, replica.clone(), &cfg, round % 2 == 0);
        assert_eq!(out.len(), source.len(), "round {round}: size");
        assert!(out == source, "round {round}: content differs");
        // Exactly the differing blocks (the rule of `diff`): a block is the same iff both are
        // all zero (past the replica's end counts as zero) or their bytes, lengths included,
        // are equal.
        let bs = block_size as usize;
        let zero = |x: &[u8]| x.iter().all(|&v| v == 0);
        let mut want = 0u64;
        for b in 0..size.div_ceil(bs) {
            let s = &source[b * bs..((b + 1) * bs).min(size)];
            let r = replica
                .get(b * bs..((b + 1) * bs).min(replica.len()))
                .unwrap_or(&[]);
            if !((zero(r) && zero(s)) || r == s) {
                want += 1;
            }
        }
        assert_eq!(plan.differing_blocks, want, "round {round}");
        assert_eq!(plan.resize(), (replica_size != size).then_some(size as u64));
    }
}

#[test]
fn identical_disks_ship_nothing_and_a_file_replica_is_resynced() {
    let mut rng = Rng(77);
    let source = random_disk(&mut rng, (5 << 20) + 1234);
    let cfg = config(1, 4096, 0);
    let (plan, out) = resync(&source, source.clone(), &cfg, true);
    assert_eq!(plan.extents, vec![]);
    assert_eq!(plan.differing_blocks, 0);
    assert_eq!(out, source);

    // A real file as the replica (FileTarget), hashed with pread.
    let replica = diverge(&mut rng, &source, source.len() - 100_000, 20);
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&replica).unwrap();
    let theirs = HashList::compute(&file, replica.len() as u64, &cfg).unwrap();
    let ours = HashList::compute(&source[..], source.len() as u64, &cfg).unwrap();
    let plan = diff(&HashList::decode(&theirs.to_bytes()).unwrap(), &ours).unwrap();
    assert!(plan.differing_blocks > 0);
    let mut stream = Vec::new();
    plan.encode(encoder_config(true), &mut source.clone(), &mut |f| {
        stream.extend_from_slice(f);
        Ok(())
    })
    .unwrap();
    let mut applier = Applier::new(
        decoder_config(true),
        FileTarget::new(file.try_clone().unwrap()).unwrap(),
    );
    applier.push(&stream).unwrap();
    applier.finish().unwrap();
    let mut back = vec![0u8; source.len()];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut back, 0).unwrap();
    assert_eq!(file.metadata().unwrap().len(), source.len() as u64);
    assert!(back == source);
}

#[test]
fn the_extents_are_coalesced_and_cover_only_differing_blocks() {
    let bs = 4096usize;
    let source: Vec<u8> = (0..64 * bs + 100).map(|i| (i % 251) as u8 | 1).collect();
    let mut replica = source.clone();
    for b in [3usize, 4, 5, 9, 63] {
        replica[b * bs + 17] ^= 0xff;
    }
    replica[64 * bs + 99] ^= 1; // the last, partial block
    let cfg = config(0, 4096, 2);
    let theirs = HashList::compute(&replica[..], replica.len() as u64, &cfg).unwrap();
    let ours = HashList::compute(&source[..], source.len() as u64, &cfg).unwrap();
    let plan = diff(&theirs, &ours).unwrap();
    let b = bs as u64;
    assert_eq!(
        plan.extents,
        vec![
            Extent::new(3 * b, 3 * b),
            Extent::new(9 * b, b),
            Extent::new(63 * b, b + 100)
        ]
    );
    assert_eq!(plan.differing_blocks, 6);
    assert_eq!(plan.differing_bytes(), 5 * b + 100);
}

#[test]
fn parallel_hashing_gives_the_single_threaded_list() {
    let mut rng = Rng(99);
    for size in [
        1usize,
        4095,
        4096,
        4097,
        (8 << 20) - 1,
        8 << 20,
        (8 << 20) + 1,
        37 << 20,
    ] {
        let disk = random_disk(&mut rng, size);
        for bs in [4096u32, 1 << 20] {
            let one = HashList::compute(&disk[..], size as u64, &config(5, bs, 1)).unwrap();
            for threads in [0usize, 2, 3, 8] {
                let many =
                    HashList::compute(&disk[..], size as u64, &config(5, bs, threads)).unwrap();
                assert_eq!(one, many, "size {size} bs {bs} threads {threads}");
            }
            assert_eq!(one.block_count(), (size as u64).div_ceil(u64::from(bs)));
            assert_eq!(one.blocks().count() as u64, one.block_count());
            // Zero blocks are flagged, data blocks hashed with SHA-256(salt || block)[..16].
            for (i, b) in one.blocks().enumerate() {
                let block = &disk[i * bs as usize..((i + 1) * bs as usize).min(size)];
                match b {
                    BlockHash::Zero => assert!(block.iter().all(|&v| v == 0)),
                    BlockHash::Data(h) => {
                        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
                        ctx.update(&[5; 16]);
                        ctx.update(block);
                        assert_eq!(h[..], ctx.finish().as_ref()[..16]);
                    }
                }
            }
        }
    }
}

#[test]
fn a_list_round_trips_and_a_sparse_disks_list_is_small() {
    let mut rng = Rng(4);
    let disk = random_disk(&mut rng, (3 << 20) + 7);
    let list = HashList::compute(&disk[..], disk.len() as u64, &config(8, 4096, 2)).unwrap();
    let bytes = list.to_bytes();
    assert_eq!(HashList::decode(&bytes).unwrap(), list);
    assert_eq!(&bytes[..8], &MAGIC);

    // 64 MiB of zeros with three data blocks: a few dozen bytes plus 16 per data block.
    let mut sparse = vec![0u8; 64 << 20];
    for at in [0usize, 1 << 20, (64 << 20) - 1] {
        sparse[at] = 1;
    }
    let list = HashList::compute(&sparse[..], sparse.len() as u64, &config(8, 4096, 0)).unwrap();
    assert_eq!(list.data_blocks(), 3);
    assert_eq!(list.zero_blocks(), 16384 - 3);
    let bytes = list.to_bytes();
    assert!(bytes.len() < 64 + 20 + 3 * 16 + 4, "{} bytes", bytes.len());
    assert_eq!(HashList::decode(&bytes).unwrap(), list);
    // All zeros: one run, no hash.
    let zeros = vec![0u8; 1 << 20];
    let list = HashList::compute(&zeros[..], zeros.len() as u64, &config(8, 4096, 0)).unwrap();
    assert_eq!(list.runs(), &[256]);
    assert_eq!(HashList::decode(&list.to_bytes()).unwrap(), list);
    // An empty 1 TiB disk: one run of 2^28 blocks (a 5-byte varint), 73 bytes in all.
    let empty = forge(1 << 40, 4096, 0, 0, 1, &[0x80, 0x80, 0x80, 0x80, 0x01], 0);
    assert_eq!(empty.len(), 73);
    let list = HashList::decode(&empty).unwrap();
    assert_eq!(
        (list.zero_blocks(), list.runs()),
        (1 << 28, &[1u64 << 28][..])
    );
    assert_eq!(list.to_bytes(), empty);
    // Comparing costs per run, not per block: two empty 1 TiB disks, and one grown to 2 TiB.
    let plan = diff(&list, &list).unwrap();
    assert_eq!((plan.extents.len(), plan.resize()), (0, None));
    let grown = HashList::decode(&forge(
        2 << 40,
        4096,
        0,
        0,
        1,
        &[0x80, 0x80, 0x80, 0x80, 0x02],
        0,
    ))
    .unwrap();
    let plan = diff(&list, &grown).unwrap();
    assert_eq!((plan.differing_blocks, plan.resize()), (0, Some(2 << 40)));
}

fn sealed(body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// A hand-built list: head, fields, runs (already varint bytes), hashes; sealed.
fn forge(
    disk: u64,
    bs: u32,
    flags: u32,
    data: u64,
    runs: u64,
    map: &[u8],
    hashes: usize,
) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&MAGIC);
    b.extend_from_slice(&FORMAT_MAJOR.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&disk.to_le_bytes());
    b.extend_from_slice(&bs.to_le_bytes());
    b.extend_from_slice(&flags.to_le_bytes());
    b.extend_from_slice(&[0; 16]);
    b.extend_from_slice(&data.to_le_bytes());
    b.extend_from_slice(&runs.to_le_bytes());
    b.extend_from_slice(map);
    b.extend(std::iter::repeat(0xab).take(hashes * 16));
    sealed(&b)
}

#[test]
fn hostile_lists_give_distinct_errors_and_never_panic() {
    let mut rng = Rng(11);
    let mut disk = random_disk(&mut rng, 300_000);
    disk[..4096].fill(0);
    let list = HashList::compute(&disk[..], disk.len() as u64, &config(2, 4096, 2)).unwrap();
    let good = list.to_bytes();

    // Every truncation.
    for n in 0..good.len() {
        match HashList::decode(&good[..n]) {
            Err(ResyncError::NoChecksum) => assert!(n < 4),
            Err(ResyncError::Checksum) => assert!(n >= 4),
            other => panic!("truncated to {n}: {other:?}"),
        }
    }
    // Every flipped bit is caught (CRC, or the version check that precedes it).
    for i in 0..good.len() {
        for bit in 0..8 {
            let mut b = good.clone();
            b[i] ^= 1 << bit;
            assert!(HashList::decode(&b).is_err(), "flip at {i} bit {bit}");
        }
    }
    // Flipped and re-sealed (not the minor version, which any reader accepts): an error or (a flipped hash byte) a different list, never a panic.
    for i in (0..good.len() - 4).filter(|i| !(10..12).contains(i)) {
        let mut b = good[..good.len() - 4].to_vec();
        b[i] ^= 0x41;
        if let Ok(l) = HashList::decode(&sealed(&b)) {
            assert_ne!(l, list, "flip at {i}");
        }
    }
    // Random garbage, sealed.
    for _ in 0..2000 {
        let n = rng.below(200) as usize;
        let mut b = vec![0u8; n];
        rng.fill(&mut b);
        if n > 12 && rng.below(2) == 0 {
            b[..8].copy_from_slice(&MAGIC);
            b[8..10].copy_from_slice(&FORMAT_MAJOR.to_le_bytes());
            b[10..12].fill(0);
        }
        let _ = HashList::decode(&sealed(&b));
    }

    // Forged fields, each with its own error. A valid one first: 3 blocks, zero + 2 data.
    let ok = forge(3 * 4096, 4096, 0, 2, 2, &[1, 2], 2);
    assert_eq!(HashList::decode(&ok).unwrap().runs(), &[1, 2]);
    let e = |b: Vec<u8>| HashList::decode(&b).unwrap_err();
    assert!(matches!(
        e(forge(0, 4096, 0, 0, 0, &[], 0)),
        ResyncError::BadField {
            what: "disk size",
            value: 0
        }
    ));
    assert!(matches!(
        e(forge(u64::MAX, 4096, 0, 0, 0, &[], 0)),
        ResyncError::BadField {
            what: "disk size",
            value: u64::MAX
        }
    ));
    assert!(matches!(
        e(forge(3 * 4096, 512, 0, 2, 2, &[1, 2], 2)),
        ResyncError::BadField {
            what: "block size",
            value: 512
        }
    ));
    assert!(matches!(
        e(forge(3 * 4096, 4097, 0, 2, 2, &[1, 2], 2)),
        ResyncError::BadField {
            what: "block size",
            value: 4097
        }
    ));
    assert!(matches!(
        e(forge(3 * 4096, 4096, 2, 2, 2, &[1, 2], 2)),
        ResyncError::ReservedNotZero("flags")
    ));
    assert!(matches!(
        e(forge(3 * 4096, 4096, 1, 2, 2, &[1, 2], 2)),
        ResyncError::UnexpectedTag
    ));
    // A forged data count beyond the block count, and beyond the bytes present.
    assert!(matches!(
        e(forge(3 * 4096, 4096, 0, 4, 2, &[1, 2], 2)),
        ResyncError::BadCount {
            what: "data block count",
            value: 4,
            max: 3
        }
    ));
    assert!(matches!(
        e(forge(1 << 40, 4096, 0, 1 << 28, 2, &[1, 2], 2)),
        ResyncError::BadCount {
            what: "data block count",
            value: 268435456,
            ..
        }
    ));
    // A forged run count: huge (no allocation happens), or beyond the bytes present.
    assert!(matches!(
        e(forge(1 << 50, 4096, 0, 0, u64::MAX, &[1], 0)),
        ResyncError::BadCount {
            what: "run count",
            value: u64::MAX,
            ..
        }
    ));
    assert!(matches!(
        e(forge(3 * 4096, 4096, 0, 0, 3, &[3], 0)),
        ResyncError::BadCount {
            what: "run count",
            ..
        }
    ));
    // Run maps that do not add up.
    assert!(matches!(
        e(forge(3 * 4096, 4096, 0, 2, 2, &[2, 2], 2)),
        ResyncError::BadRunMap("the runs hold more blocks than the disk")
    ));
    assert!(matches!(
        e(forge(3 * 4096, 4096, 0, 1, 2, &[1, 1], 1)),
        ResyncError::BadRunMap("the runs hold fewer blocks than the disk")
    ));
    // zero, data, zero: valid.
    assert_eq!(
        HashList::decode(&forge(3 * 4096, 4096, 0, 1, 3, &[1, 1, 1], 1))
            .unwrap()
            .runs(),
        &[1, 1, 1]
    );
    assert!(matches!(
        e(forge(3 * 4096, 4096, 0, 1, 2, &[1, 2], 1)),
        ResyncError::BadRunMap("the data runs do not hold the data block count")
    ));
    assert!(matches!(
        e(forge(3 * 4096, 4096, 0, 2, 3, &[1, 2, 0], 2)),
        ResyncError::BadRunMap("a run other than the first is empty")
    ));
    assert!(matches!(
        e(forge(3 * 4096, 4096, 0, 2, 2, &[0x81, 0x00, 2], 2)),
        ResyncError::BadRunMap("a run length is not minimally encoded")
    ));
    assert!(matches!(
        e(forge(3 * 4096, 4096, 0, 0, 1, &[0xff; 11], 0)),
        ResyncError::BadRunMap("a run length overflows 64 bits")
    ));
    // Hashes missing or extra.
    assert!(matches!(
        e(forge(3 * 4096, 4096, 0, 2, 2, &[1, 2, 0xab], 1)),
        ResyncError::BadCount {
            what: "data block count",
            ..
        } | ResyncError::Truncated { .. }
    ));
    assert!(matches!(
        e(forge(3 * 4096, 4096, 0, 2, 2, &[1, 2], 3)),
        ResyncError::Trailing { extra: 16 }
    ));
    // Head: magic, version, reserved.
    let mut b = ok[..ok.len() - 4].to_vec();
    b[0] = b'X';
    assert!(matches!(e(sealed(&b)), ResyncError::Magic));
    let mut b = ok[..ok.len() - 4].to_vec();
    b[8] = 9;
    assert!(matches!(e(sealed(&b)), ResyncError::UnsupportedVersion(9)));
    let mut b = ok[..ok.len() - 4].to_vec();
    b[13] = 1;
    assert!(matches!(e(sealed(&b)), ResyncError::ReservedNotZero(_)));
    let mut b = ok.clone();
    let last = b.len() - 1;
    b[last] ^= 1;
    assert!(matches!(e(b), ResyncError::Checksum));
}

#[test]
fn lists_that_cannot_be_compared_and_short_disks_are_refused() {
    let disk = vec![1u8; 1 << 20];
    let a = HashList::compute(&disk[..], 1 << 20, &config(1, 4096, 0)).unwrap();
    let b = HashList::compute(&disk[..], 1 << 20, &config(1, 8192, 0)).unwrap();
    let c = HashList::compute(&disk[..], 1 << 20, &config(2, 4096, 0)).unwrap();
    assert!(matches!(
        diff(&a, &b),
        Err(ResyncError::BlockSizeMismatch {
            replica: 4096,
            source: 8192
        })
    ));
    assert!(matches!(diff(&a, &c), Err(ResyncError::SaltMismatch)));
    for bs in [0u32, 2048, 3 << 12, 2 << 20] {
        assert!(matches!(
            HashList::compute(&disk[..], 1 << 20, &config(1, bs, 0)),
            Err(ResyncError::InvalidBlockSize(x)) if x == bs
        ));
    }
    assert!(matches!(
        HashList::compute(&disk[..], 0, &config(1, 4096, 0)),
        Err(ResyncError::InvalidDiskSize(0))
    ));
    // The disk is shorter than the size given: the read error names the first piece that
    // failed, whatever the thread timing.
    for threads in [1, 4] {
        match HashList::compute(&disk[..], (20 << 20) + 5, &config(1, 4096, threads)) {
            Err(ResyncError::Io { offset, source }) => {
                assert_eq!(offset, 0, "threads {threads}");
                assert_eq!(source.kind(), std::io::ErrorKind::UnexpectedEof);
            }
            other => panic!("{other:?}"),
        }
    }
}

/// The live-disk path: a tracker started before hashing; the differing extents are marked with
/// `adopt_lineage` (the replica's generation and point); writes made while hashing are marked
/// by the write path; the next take ships both and the replica ends identical.
#[test]
fn a_live_source_ships_the_difference_through_its_tracker() {
    let mut rng = Rng(12);
    let size = 4 << 20;
    let mut source = random_disk(&mut rng, size);
    let replica = diverge(&mut rng, &source, size, 25);
    let tracker = Tracker::new(
        TrackerConfig::new(size as u64)
            .granularity(4096)
            .start_clean(true),
    )
    .unwrap();
    let cfg = HashConfig::with_random_salt();
    let theirs = HashList::compute(&replica[..], size as u64, &cfg).unwrap();
    let ours = HashList::compute(&source[..], size as u64, &cfg).unwrap();
    // A write after the source's block was hashed.
    source[2_000_000..2_000_100].fill(0x5a);
    tracker.mark_write(2_000_000, 100).unwrap();
    let plan = diff(&HashList::decode(&theirs.to_bytes()).unwrap(), &ours).unwrap();
    let (replica_gen, replica_seq) = (GenerationId([3; 16]), 7);
    tracker
        .adopt_lineage(replica_gen, replica_seq, &plan.extents)
        .unwrap();
    let cp = tracker.take().unwrap();
    assert_eq!(
        (cp.generation, cp.from_sequence),
        (replica_gen, replica_seq)
    );
    let mut extents = Vec::new();
    let mut cursor = cp.cursor();
    let mut buf = [Extent::default(); 64];
    loop {
        let n = tracker.extents(&mut cursor, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        extents.extend_from_slice(&buf[..n]);
    }
    let mut ecfg = EncoderConfig::new(
        DISK_ID,
        cp.generation,
        cp.from_sequence,
        cp.sequence,
        size as u64,
    );
    ecfg.block_size = cp.block_size;
    let stream = encode_to_vec(ecfg, &extents, &mut source.clone()).unwrap();
    let mut applier = Applier::new(decoder_config(false), replica);
    applier.push(&stream).unwrap();
    applier.finish().unwrap();
    assert!(applier.target() == &source);
    tracker.commit(cp.generation, cp.sequence).unwrap();
}

/// An authenticated list (HMAC-SHA256 under the replication secret): round-trips with the
/// secret; any change in transit, even re-sealed with a valid CRC, is refused; a list without
/// a tag, with a tag but no secret, or under another secret is refused, each distinctly.
#[test]
fn an_authenticated_list_refuses_every_change() {
    let mut rng = Rng(21);
    let disk = random_disk(&mut rng, 200_000);
    let list = HashList::compute(&disk[..], disk.len() as u64, &config(6, 4096, 2)).unwrap();
    let secret = Secret::new(SECRET).unwrap();
    let other = Secret::new(b"another secret of 16+ bytes").unwrap();
    let auth = list.to_bytes_authenticated(&secret);
    assert_eq!(auth.len(), list.to_bytes().len() + 32);
    assert_eq!(
        HashList::decode_authenticated(&auth, &secret).unwrap(),
        list
    );
    assert!(matches!(
        HashList::decode(&auth),
        Err(ResyncError::UnexpectedTag)
    ));
    assert!(matches!(
        HashList::decode_authenticated(&list.to_bytes(), &secret),
        Err(ResyncError::Unauthenticated)
    ));
    assert!(matches!(
        HashList::decode_authenticated(&auth, &other),
        Err(ResyncError::AuthenticationFailed)
    ));
    for n in 0..auth.len() {
        assert!(HashList::decode_authenticated(&auth[..n], &secret).is_err());
    }
    // Every byte changed and the CRC recomputed (an attacker's edit), but the minor version.
    for i in (0..auth.len() - 4).filter(|i| !(10..12).contains(i)) {
        let mut b = auth[..auth.len() - 4].to_vec();
        b[i] ^= 0x01;
        assert!(
            HashList::decode_authenticated(&sealed(&b), &secret).is_err(),
            "change at {i} accepted"
        );
    }
    // The tag stripped and the flag cleared: a plain list, refused where a tag is required.
    let mut b = auth[..auth.len() - 36].to_vec();
    b[28] = 0;
    let stripped = sealed(&b);
    assert_eq!(HashList::decode(&stripped).unwrap(), list);
    assert!(matches!(
        HashList::decode_authenticated(&stripped, &secret),
        Err(ResyncError::Unauthenticated)
    ));
    // A flag set with no room for a tag.
    let tiny = forge(4096, 4096, 1, 0, 1, &[1], 0);
    assert!(matches!(
        HashList::decode_authenticated(&tiny, &secret),
        Err(ResyncError::Truncated { .. } | ResyncError::AuthenticationFailed)
    ));
}
