//! Adversarial review of checksum resync (`src/resync/`, `src/ffi/resync.rs`,
//! `docs/RESYNC.md`): sizes and block sizes at every boundary (last partial block, growth and
//! shrink, 8 MiB chunk edges, zero-flagged blocks against all-zero data), hostile hash lists
//! from the replica side (forged counts, varint overflow, runs past the disk, a stripped tag,
//! lists from another resync), parallel hashing (same list, lowest failed offset) and the C
//! ABI's conventions (NULL, lengths, outputs untouched on error).

use std::io;
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicUsize, Ordering};

use blockdelta::ffi::result::blockdelta_result;
use blockdelta::ffi::resync::*;
use blockdelta::resync::{diff, HashConfig, HashList, ReadAt, ResyncError, FORMAT_MAJOR, MAGIC};
use blockdelta::{Applier, DecoderConfig, EncoderConfig, Extent, GenerationId, Secret};

const SECRET: &[u8] = b"review resync secret, 16+ bytes";
const MIB: usize = 1 << 20;
const CHUNK: usize = 8 * MIB;

#[path = "common/source.rs"]
mod source;
use source::Rng;

fn cfg(block_size: u32, threads: usize, salt: u8) -> HashConfig {
    HashConfig {
        block_size,
        threads,
        salt: [salt; 16],
    }
}

/// Hashes both sides (the replica's list through its authenticated wire form), compares,
/// encodes with `ResyncPlan::encode`, applies to `replica`; returns the result.
fn resync(source: &[u8], replica: Vec<u8>, hashed_replica_size: usize, c: &HashConfig) -> Vec<u8> {
    let secret = Secret::new(SECRET).unwrap();
    let theirs = HashList::compute(&replica[..], hashed_replica_size as u64, c).unwrap();
    let wire = theirs.to_bytes_authenticated(&secret);
    let theirs = HashList::decode_authenticated(&wire, &secret).unwrap();
    let ours = HashList::compute(source, source.len() as u64, c).unwrap();
    let plan = diff(&theirs, &ours).unwrap();
    // Every extent within the source, ascending, non-overlapping.
    let mut end = 0;
    for e in &plan.extents {
        assert!(e.offset >= end && e.len > 0 && e.offset + e.len <= source.len() as u64);
        end = e.offset + e.len;
    }
    let mut stream = Vec::new();
    let config = EncoderConfig::new(*b"review-resync-d0", GenerationId([5; 16]), 1, 2, 0);
    plan.encode(config, &mut source.to_vec(), &mut |f| {
        stream.extend_from_slice(f);
        Ok(())
    })
    .unwrap();
    let mut applier = Applier::new(DecoderConfig::new(), replica);
    applier.push(&stream).unwrap();
    applier.finish().unwrap();
    applier.into_target()
}

/// A source: random data with zero stretches.
fn disk(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut d = vec![0u8; size];
    let mut at = 0;
    while at < size {
        let len = (rng.below(3 * 65536) as usize + 1).min(size - at);
        if rng.below(3) != 0 {
            rng.fill(&mut d[at..at + len]);
        }
        at += len;
    }
    d
}

/// A user relies on the replica coming out byte-identical to the source whatever the two
/// sizes (grown, shrunk, equal; 1 byte; a partial last block; either side of an 8 MiB chunk
/// edge), the block size (4 KiB to 1 MiB) and the thread count, with differences placed where
/// off-by-one errors live: the first and last byte, both sides of every chunk edge, the last
/// partial block, the block right past the shorter disk's end, and zero blocks against
/// all-zero data on the other side (a zero-flagged block must never hide a data block).
#[test]
fn the_replica_is_identical_after_resync_for_every_size_block_size_and_thread_count() {
    let mut rng = Rng(0x5eed_1234);
    let sizes = [
        1usize,
        4095,
        4097,
        MIB + 3,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        2 * CHUNK + 4096 + 7,
    ];
    let mut cases = 0;
    for &bs in &[4096u32, 65536, 1 << 20] {
        for _ in 0..9 {
            let s = sizes[rng.below(sizes.len() as u64) as usize];
            let r = sizes[rng.below(sizes.len() as u64) as usize];
            let threads = 1 + rng.below(3) as usize;
            let source = disk(&mut rng, s);
            let mut replica = source.clone();
            replica.resize(r, 0);
            // Differences at the boundaries.
            let spots = [
                0,
                r - 1,
                r / 2,
                CHUNK - 1,
                CHUNK,
                s.saturating_sub(1),
                s,
                s + 1,
            ];
            for &at in &spots {
                if at < r {
                    replica[at] ^= 0x40;
                }
            }
            // A replica block zeroed where the source has data, and data where it has zeros.
            let b = bs as usize;
            let k = rng.below(r.div_ceil(b) as u64) as usize * b;
            replica[k..(k + b).min(r)].fill(0);
            if r > s {
                // Garbage past the source's end: cut by the RESIZE.
                rng.fill(&mut replica[s..]);
            }
            let out = resync(&source, replica, r, &cfg(bs, threads, 3));
            assert!(
                out == source,
                "bs {bs} source {s} replica {r} threads {threads}: replica differs"
            );
            cases += 1;
        }
    }
    assert_eq!(cases, 27);
}

/// A user relies on "blocks past the replica's end count as zero": when the replica's disk
/// holds more bytes than the size it hashed (a file left longer, a device larger than the
/// disk), stale bytes between the hashed size and the source's size must not survive growth.
#[test]
fn stale_bytes_past_the_hashed_replica_size_do_not_survive_growth() {
    let mut rng = Rng(77);
    let source = disk(&mut rng, 3 * MIB + 123);
    let mut replica = source.clone();
    // The replica's disk is 3 MiB + 123 bytes, but it hashed (and its stream header says)
    // only the first 1 MiB + 5; everything beyond is stale garbage on the target.
    rng.fill(&mut replica[MIB + 5..]);
    let out = resync(&source, replica, MIB + 5, &cfg(4096, 2, 1));
    assert!(out == source);
}

/// A user relies on parallel hashing giving exactly the single-threaded list for sizes that
/// straddle chunk edges, with data and zero runs crossing the edges (the per-chunk pieces are
/// joined in order; a run split by a chunk edge must come out as one run).
#[test]
fn parallel_hashing_joins_runs_across_chunk_edges() {
    let mut rng = Rng(9);
    for &size in &[CHUNK + 1, 2 * CHUNK - 4096, 3 * CHUNK + 5] {
        let mut d = vec![0u8; size];
        // Data across the first edge, zeros across the second.
        rng.fill(&mut d[CHUNK - 8192..(CHUNK + 8192).min(size)]);
        if size > 2 * CHUNK {
            rng.fill(&mut d[2 * CHUNK - 4 * 4096..2 * CHUNK - 3 * 4096]);
        }
        d[size - 1] = 1;
        let one = HashList::compute(&d[..], size as u64, &cfg(4096, 1, 0)).unwrap();
        for threads in 2..=4 {
            let many = HashList::compute(&d[..], size as u64, &cfg(4096, threads, 0)).unwrap();
            assert_eq!(one, many, "size {size} threads {threads}");
        }
        // Runs are canonical: none empty but the first.
        assert!(one.runs().iter().skip(1).all(|&n| n > 0));
        assert_eq!(one.runs().iter().sum::<u64>(), one.block_count());
    }
}

/// A disk that fails to read some chunks, the lower failing one slowly.
struct Failing {
    size: u64,
    fail: [u64; 2],
    reads: AtomicUsize,
}

impl ReadAt for Failing {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        assert!(offset + buf.len() as u64 <= self.size);
        if offset == self.fail[0] {
            std::thread::sleep(std::time::Duration::from_millis(200));
            return Err(io::Error::other("slow failure"));
        }
        if offset == self.fail[1] {
            return Err(io::Error::other("fast failure"));
        }
        buf.fill(0);
        Ok(())
    }
}

/// A user relies on "a read error stops every thread and reports the lowest failed offset":
/// the lower failure is reported even when a higher one happens first, and the threads stop
/// claiming chunks.
#[test]
fn a_read_error_reports_the_lowest_failed_offset_and_stops_the_threads() {
    let disk = Failing {
        size: 40 * CHUNK as u64,
        fail: [CHUNK as u64, 2 * CHUNK as u64],
        reads: AtomicUsize::new(0),
    };
    let err = HashList::compute(&disk, disk.size, &cfg(4096, 3, 0)).unwrap_err();
    match err {
        ResyncError::Io { offset, .. } => assert_eq!(offset, CHUNK as u64),
        e => panic!("{e:?}"),
    }
    assert!(disk.reads.load(Ordering::Relaxed) < 40);
}

fn sealed(body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

#[allow(clippy::too_many_arguments)]
fn forge(
    disk: u64,
    bs: u32,
    flags: u32,
    salt: u8,
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
    b.extend_from_slice(&[salt; 16]);
    b.extend_from_slice(&data.to_le_bytes());
    b.extend_from_slice(&runs.to_le_bytes());
    b.extend_from_slice(map);
    b.extend(std::iter::repeat(0xab).take(hashes * 16));
    sealed(&b)
}

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// A sender relies on a hostile replica list never crashing it nor making it allocate what
/// the counts claim: forged counts, 65-bit and 11-byte varints, runs summing past the disk
/// (also by wrapping around 2^64), data runs not matching D, empty runs, a disk of 2^60 + 1.
#[test]
fn hostile_lists_from_the_replica_are_refused_without_panics_or_huge_allocations() {
    let bc = 1u64 << 48; // 2^60 bytes of 4 KiB blocks
    let big = 1u64 << 60;
    let m = |v: &[u64]| v.iter().flat_map(|&x| varint(x)).collect::<Vec<u8>>();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (forge(big, 4096, 0, 0, u64::MAX, u64::MAX, &[], 0), "D huge"),
        (forge(big, 4096, 0, 0, 0, u64::MAX, &[0; 20], 0), "R huge"),
        (
            forge(big, 4096, 0, 0, bc, 2, &m(&[0, bc]), 1),
            "D = all blocks, 1 hash",
        ),
        (
            forge(big + 1, 4096, 0, 0, 0, 1, &m(&[bc]), 0),
            "disk 2^60+1",
        ),
        (forge(4096, 2048, 0, 0, 0, 1, &[1], 0), "block 2 KiB"),
        (forge(4096, 3 << 12, 0, 0, 0, 1, &[1], 0), "block 12 KiB"),
        (forge(4096, 2 << 20, 0, 0, 0, 1, &[1], 0), "block 2 MiB"),
        (
            forge(big, 4096, 0, 0, 0, 1, &[0xff; 10], 0),
            "65-bit varint",
        ),
        (
            forge(big, 4096, 0, 0, 0, 1, &[0x80; 11], 0),
            "11-byte varint",
        ),
        (
            forge(big, 4096, 0, 0, 0, 1, &[0x81, 0x00], 0),
            "non-minimal varint",
        ),
        (
            forge(big, 4096, 0, 0, 0, 2, &m(&[u64::MAX, 2]), 0),
            "wrapping sum",
        ),
        (
            forge(big, 4096, 0, 0, 1, 3, &m(&[bc - 1, 2, 0]), 1),
            "runs past the disk",
        ),
        (
            forge(8192, 4096, 0, 0, 1, 3, &m(&[1, 1, 0]), 1),
            "empty last run",
        ),
        (
            forge(8192, 4096, 0, 0, 1, 2, &m(&[0, 2]), 1),
            "D below data runs",
        ),
        (
            forge(8192, 4096, 0, 0, 2, 2, &m(&[0, 1]), 2),
            "runs short of the disk",
        ),
        (
            forge(8192, 4096, 0, 0, 1, 2, &m(&[1, 1]), 2),
            "trailing hash",
        ),
        (forge(8192, 4096, 2, 0, 0, 1, &m(&[2]), 0), "unknown flag"),
    ];
    for (bytes, what) in &cases {
        let r = std::panic::catch_unwind(|| HashList::decode(bytes));
        match r {
            Ok(Err(_)) => {}
            Ok(Ok(l)) => panic!("{what}: accepted {l:?}"),
            Err(_) => panic!("{what}: panicked"),
        }
    }
}

/// A sender relies on decode being canonical ("one disk, one list") and total: random edits
/// of valid lists, re-sealed with a correct CRC, either fail or decode to a list that encodes
/// back to the very same bytes, and diffing any accepted list against the sender's own never
/// panics and yields extents inside the source.
#[test]
fn edited_lists_either_fail_or_round_trip_and_never_break_diff() {
    let mut rng = Rng(4242);
    let mut src = disk(&mut rng, 300_000);
    src[100_000..140_000].fill(0);
    let c = cfg(4096, 1, 6);
    let ours = HashList::compute(&src[..], src.len() as u64, &c).unwrap();
    let base = ours.to_bytes();
    let mut accepted = 0;
    for i in 0..20_000 {
        let mut b = base[..base.len() - 4].to_vec();
        let edits = 1 + rng.below(3);
        for _ in 0..edits {
            let at = rng.below(b.len() as u64) as usize;
            match rng.below(3) {
                0 => b[at] ^= 1 << rng.below(8),
                1 => b[at] = rng.next() as u8,
                _ => {
                    if rng.below(2) == 0 {
                        b.remove(at);
                    } else {
                        b.insert(at, rng.next() as u8);
                    }
                }
            }
        }
        let bytes = sealed(&b);
        let Ok(list) = HashList::decode(&bytes) else {
            continue;
        };
        accepted += 1;
        // Any minor version is read; only then may the bytes differ.
        if bytes[10..12] == [0, 0] {
            assert_eq!(list.to_bytes(), bytes, "edit {i}: not canonical");
        }
        if let Ok(plan) = diff(&list, &ours) {
            for e in &plan.extents {
                assert!(e.offset + e.len <= src.len() as u64);
            }
        }
    }
    assert!(accepted > 0);
}

/// A sender with a secret relies on an attacker being unable to downgrade or replay the
/// replica's list: the tag stripped (flag cleared, CRC fixed) is refused by
/// `decode_authenticated`; a tagged list is refused by plain `decode` (no silent ignoring of
/// a tag); a list re-tagged under another salt is refused by `diff` (SaltMismatch); the
/// salt or the disk size changed in a tagged list fails the tag.
#[test]
fn an_authenticated_list_cannot_be_downgraded_or_replayed() {
    let mut rng = Rng(5);
    let d = disk(&mut rng, 100_000);
    let secret = Secret::new(SECRET).unwrap();
    let c = cfg(4096, 1, 0x11);
    let list = HashList::compute(&d[..], d.len() as u64, &c).unwrap();
    let auth = list.to_bytes_authenticated(&secret);
    // Stripped.
    let mut b = auth[..auth.len() - 36].to_vec();
    b[28..32].fill(0);
    assert!(matches!(
        HashList::decode_authenticated(&sealed(&b), &secret),
        Err(ResyncError::Unauthenticated)
    ));
    assert!(matches!(
        HashList::decode(&auth),
        Err(ResyncError::UnexpectedTag)
    ));
    // Salt or size changed under a kept tag.
    for (at, v) in [(32usize, 0x12u8), (16, 0x01)] {
        let mut b = auth[..auth.len() - 4].to_vec();
        b[at] ^= v;
        assert!(matches!(
            HashList::decode_authenticated(&sealed(&b), &secret),
            Err(ResyncError::AuthenticationFailed)
        ));
    }
    // A list from an earlier resync (another salt), validly tagged: refused by diff.
    let old = HashList::compute(&d[..], d.len() as u64, &cfg(4096, 1, 0x22)).unwrap();
    let replayed =
        HashList::decode_authenticated(&old.to_bytes_authenticated(&secret), &secret).unwrap();
    assert!(matches!(
        diff(&replayed, &list),
        Err(ResyncError::SaltMismatch)
    ));
}

// ---------------------------------------------------------------------------------------
// C ABI

/// A C caller relies on the ABI's conventions: NULL arguments are `NULL_PARAMETER` and never
/// crash; on every error the outputs are untouched; `wire_len` is exactly what `encode`
/// writes (with and without a tag); a too-small buffer is `BUFFER_TOO_SMALL` with nothing
/// written; a non-NULL secret of length 0 is an error, never a silent unauthenticated decode;
/// a plan's extents past the end are 0; freeing NULL is a no-op.
#[test]
fn the_c_abi_checks_its_arguments_and_leaves_outputs_alone_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.img");
    let mut rng = Rng(3);
    let content = disk(&mut rng, 70_001);
    std::fs::write(&path, &content).unwrap();
    let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let salt = [7u8; 16];
    let sentinel = 0xdead_beef_usize as *mut blockdelta_hash_list;

    // NULL arguments.
    let mut list = sentinel;
    assert_eq!(
        blockdelta_hash_list_compute_file(null(), 0, 0, 1, salt.as_ptr(), &mut list),
        blockdelta_result::NullParameter
    );
    assert_eq!(
        blockdelta_hash_list_compute_file(cpath.as_ptr(), 0, 0, 1, null(), &mut list),
        blockdelta_result::NullParameter
    );
    assert_eq!(
        blockdelta_hash_list_compute_file(cpath.as_ptr(), 0, 0, 1, salt.as_ptr(), null_mut()),
        blockdelta_result::NullParameter
    );
    // Past the end of the file: IO; bad block size: INVALID_ARGUMENT.
    assert_eq!(
        blockdelta_hash_list_compute_file(cpath.as_ptr(), 70_002, 0, 2, salt.as_ptr(), &mut list),
        blockdelta_result::Io
    );
    assert_eq!(
        blockdelta_hash_list_compute_file(cpath.as_ptr(), 0, 1000, 2, salt.as_ptr(), &mut list),
        blockdelta_result::InvalidArgument
    );
    assert_eq!(list, sentinel, "list_out written on error");

    assert_eq!(
        blockdelta_hash_list_compute_file(cpath.as_ptr(), 0, 0, 2, salt.as_ptr(), &mut list),
        blockdelta_result::Ok
    );
    assert!(!list.is_null() && list != sentinel);
    let (mut size, mut data, mut zero) = (0u64, 0u64, 0u64);
    assert_eq!(
        blockdelta_hash_list_info(list, &mut size, null_mut(), &mut data, &mut zero),
        blockdelta_result::Ok
    );
    assert_eq!((size, data + zero), (70_001, 18));

    // Encode: lengths.
    let plain = blockdelta_hash_list_wire_len(list, false);
    let tagged = blockdelta_hash_list_wire_len(list, true);
    assert_eq!(blockdelta_hash_list_wire_len(null(), true), 0);
    let mut buf = vec![0x5au8; tagged];
    let mut len = 12345usize;
    assert_eq!(
        blockdelta_hash_list_encode(
            list,
            SECRET.as_ptr(),
            SECRET.len(),
            buf.as_mut_ptr(),
            tagged - 1,
            &mut len
        ),
        blockdelta_result::BufferTooSmall
    );
    assert_eq!(len, 12345);
    assert!(buf.iter().all(|&b| b == 0x5a));
    assert_ne!(
        blockdelta_hash_list_encode(list, SECRET.as_ptr(), 0, buf.as_mut_ptr(), tagged, &mut len),
        blockdelta_result::Ok
    );
    assert_eq!(len, 12345);
    assert_eq!(
        blockdelta_hash_list_encode(list, null(), 0, null_mut(), 10, &mut len),
        blockdelta_result::NullParameter
    );
    assert_eq!(
        blockdelta_hash_list_encode(
            list,
            SECRET.as_ptr(),
            SECRET.len(),
            buf.as_mut_ptr(),
            tagged,
            &mut len
        ),
        blockdelta_result::Ok
    );
    assert_eq!(len, tagged);
    let mut pbuf = vec![0u8; plain];
    let mut plen = 0;
    assert_eq!(
        blockdelta_hash_list_encode(list, null(), 0, pbuf.as_mut_ptr(), plain, &mut plen),
        blockdelta_result::Ok
    );
    assert_eq!(plen, plain);

    // Decode: no downgrade through a zero-length secret; outputs untouched on error.
    let mut back = sentinel;
    assert_ne!(
        blockdelta_hash_list_decode(pbuf.as_ptr(), plen, SECRET.as_ptr(), 0, &mut back),
        blockdelta_result::Ok
    );
    assert_eq!(
        blockdelta_hash_list_decode(
            pbuf.as_ptr(),
            plen,
            SECRET.as_ptr(),
            SECRET.len(),
            &mut back
        ),
        blockdelta_result::ResyncAuthenticationFailed
    );
    assert_eq!(
        blockdelta_hash_list_decode(buf.as_ptr(), len, null(), 0, &mut back),
        blockdelta_result::ResyncAuthenticationFailed
    );
    assert_eq!(
        blockdelta_hash_list_decode(null(), 5, null(), 0, &mut back),
        blockdelta_result::NullParameter
    );
    assert_eq!(
        blockdelta_hash_list_decode(null(), 0, null(), 0, &mut back),
        blockdelta_result::ResyncInvalidList
    );
    assert_eq!(back, sentinel, "list_out written on error");
    assert_eq!(
        blockdelta_hash_list_decode(buf.as_ptr(), len, SECRET.as_ptr(), SECRET.len(), &mut back),
        blockdelta_result::Ok
    );

    // Diff and plan.
    let sentinel_plan = 0xdead_beef_usize as *mut blockdelta_resync_plan;
    let mut plan = sentinel_plan;
    assert_eq!(
        blockdelta_resync_diff(null(), list, &mut plan),
        blockdelta_result::NullParameter
    );
    assert_eq!(
        blockdelta_resync_diff(back, list, null_mut()),
        blockdelta_result::NullParameter
    );
    assert_eq!(plan, sentinel_plan);
    assert_eq!(
        blockdelta_resync_diff(back, list, &mut plan),
        blockdelta_result::Ok
    );
    let mut n = 99usize;
    let mut ext = [Extent::default(); 4];
    assert_eq!(
        blockdelta_resync_plan_extents(plan, 0, ext.as_mut_ptr(), 4, &mut n),
        blockdelta_result::Ok
    );
    assert_eq!(n, 0);
    n = 99;
    assert_eq!(
        blockdelta_resync_plan_extents(plan, usize::MAX, null_mut(), 0, &mut n),
        blockdelta_result::Ok
    );
    assert_eq!(n, 0);
    n = 99;
    assert_eq!(
        blockdelta_resync_plan_extents(plan, 0, null_mut(), 3, &mut n),
        blockdelta_result::NullParameter
    );
    assert_eq!(n, 99);
    assert_eq!(
        blockdelta_resync_random_salt(null_mut()),
        blockdelta_result::NullParameter
    );

    blockdelta_resync_plan_free(plan);
    blockdelta_resync_plan_free(null_mut());
    blockdelta_hash_list_free(back);
    blockdelta_hash_list_free(list);
    blockdelta_hash_list_free(null_mut());
}

/// A C sender relies on `docs/RESYNC.md`'s "`BLOCKDELTA_RESULT_RESYNC_INVALID_LIST` (every
/// damaged or forged list)" to tell the peer's garbage from its own programming errors
/// (`INVALID_ARGUMENT`: "bad block or disk sizes", i.e. the arguments of
/// `blockdelta_hash_list_compute_file`). A list *received from the replica* whose header claims
/// a block size of 2 KiB or 12 KiB, or a disk size of 0 or 2^60 + 1, is a forged list, but
/// `blockdelta_hash_list_decode` reports it as `INVALID_ARGUMENT` (the `ResyncError` variants
/// `InvalidBlockSize` / `InvalidDiskSize` are mapped wholesale, whatever their origin).
#[test]
fn a_forged_list_with_a_bad_block_or_disk_size_is_an_invalid_list_in_c() {
    let bc = 1u64 << 48;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (forge(4096, 2048, 0, 0, 0, 1, &[1], 0), "block size 2 KiB"),
        (
            forge(4096, 3 << 12, 0, 0, 0, 1, &[1], 0),
            "block size 12 KiB",
        ),
        (forge(0, 4096, 0, 0, 0, 1, &[0], 0), "disk size 0"),
        (
            forge((1 << 60) + 1, 4096, 0, 0, 0, 1, &varint(bc + 1), 0),
            "disk size 2^60 + 1",
        ),
    ];
    let mut wrong = Vec::new();
    for (bytes, what) in &cases {
        let mut list = null_mut();
        let r = blockdelta_hash_list_decode(bytes.as_ptr(), bytes.len(), null(), 0, &mut list);
        assert!(list.is_null(), "{what}: accepted");
        if r != blockdelta_result::ResyncInvalidList {
            wrong.push(format!("{what}: {r:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "forged lists not reported as RESYNC_INVALID_LIST: {wrong:?}"
    );
}

/// A live sender relies on the tracker path (`adopt_lineage` with the plan's extents, then
/// take / encode) bringing the replica to exactly the source, whatever the resync block size
/// against the tracker's granularity (1 MiB hash blocks over 4 KiB tracker blocks, 4 KiB hash
/// blocks under 64 KiB tracker blocks) and a disk size that is a multiple of neither (only of the 512-byte sector).
#[test]
fn the_tracker_path_ships_every_differing_block_at_any_granularity() {
    use blockdelta::stream::encode_to_vec;
    use blockdelta::{Tracker, TrackerConfig};
    let mut rng = Rng(31);
    for &(hash_bs, gran) in &[(1u32 << 20, 4096u32), (4096, 65536), (65536, 4096)] {
        let size = 5 * MIB + 1536; // a multiple of the sector size only
        let source = disk(&mut rng, size);
        let mut replica = source.clone();
        for at in [0, size - 1, MIB, 3 * MIB + 4095, 4 * MIB + 1] {
            replica[at] ^= 0x11;
        }
        replica[2 * MIB..2 * MIB + 4096].fill(0);
        let tracker = Tracker::new(
            TrackerConfig::new(size as u64)
                .granularity(gran)
                .start_clean(true),
        )
        .unwrap();
        let c = cfg(hash_bs, 2, 8);
        let theirs = HashList::compute(&replica[..], size as u64, &c).unwrap();
        let ours = HashList::compute(&source[..], size as u64, &c).unwrap();
        let plan = diff(&theirs, &ours).unwrap();
        let g = GenerationId([9; 16]);
        tracker.adopt_lineage(g, 4, &plan.extents).unwrap();
        let cp = tracker.take().unwrap();
        let mut extents = Vec::new();
        let mut cursor = cp.cursor();
        let mut buf = [Extent::default(); 16];
        loop {
            let n = tracker.extents(&mut cursor, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            extents.extend_from_slice(&buf[..n]);
        }
        let mut ecfg = EncoderConfig::new(
            *b"review-resync-d0",
            cp.generation,
            cp.from_sequence,
            cp.sequence,
            size as u64,
        );
        ecfg.block_size = cp.block_size;
        let stream = encode_to_vec(ecfg, &extents, &mut source.clone()).unwrap();
        let mut applier = Applier::new(DecoderConfig::new(), replica);
        applier.push(&stream).unwrap();
        applier.finish().unwrap();
        assert!(applier.target() == &source, "hash {hash_bs} tracker {gran}");
    }
}

/// A sender relies on `diff` finding exactly the differing blocks: checked against a naive
/// block-by-block comparison (`HashList::blocks`, blocks past the replica's end as zero) on
/// thousands of small disks made of a few repeated blocks (so equal data blocks, zero runs and
/// data runs meet at every alignment), with random sizes on both sides and partial last
/// blocks; the extents must be exactly the coalesced differing blocks, cut at the source's end.
#[test]
fn diff_finds_exactly_the_differing_blocks_of_any_pair_of_lists() {
    use blockdelta::resync::BlockHash;
    let mut rng = Rng(99);
    let bs = 4096usize;
    let kinds: [u8; 3] = [0, 1, 2];
    for round in 0..3000 {
        let mk = |rng: &mut Rng| {
            let n = 1 + rng.below(12) as usize;
            let tail = rng.below(bs as u64) as usize; // 0: full last block
            let size = (n - 1) * bs + if tail == 0 { bs } else { tail };
            let mut d = vec![0u8; size];
            for b in 0..n {
                let k = kinds[rng.below(3) as usize];
                let end = ((b + 1) * bs).min(size);
                if k != 0 {
                    d[b * bs..end].fill(k);
                }
            }
            d
        };
        let s = mk(&mut rng);
        let r = mk(&mut rng);
        let c = cfg(4096, 1, 1);
        let ls = HashList::compute(&s[..], s.len() as u64, &c).unwrap();
        let lr = HashList::compute(&r[..], r.len() as u64, &c).unwrap();
        let lr = HashList::decode(&lr.to_bytes()).unwrap();
        let plan = diff(&lr, &ls).unwrap();
        let rb: Vec<BlockHash> = lr.blocks().collect();
        let mut want: Vec<Extent> = Vec::new();
        let mut count = 0;
        for (i, x) in ls.blocks().enumerate() {
            let y = rb.get(i).copied().unwrap_or(BlockHash::Zero);
            if x != y {
                count += 1;
                let off = (i * bs) as u64;
                let end = (((i + 1) * bs).min(s.len())) as u64;
                match want.last_mut() {
                    Some(l) if l.offset + l.len == off => l.len = end - l.offset,
                    _ => want.push(Extent::new(off, end - off)),
                }
            }
        }
        assert_eq!(plan.extents, want, "round {round}");
        assert_eq!(plan.differing_blocks, count, "round {round}");
        assert_eq!(
            plan.resize(),
            (s.len() != r.len()).then_some(s.len() as u64)
        );
    }
}

/// `docs/RESYNC.md`, path 1: a live sender relies on a size mismatch being caught on that
/// path. Found: when the replica was *larger* than the source nothing refused it (the plan's
/// extents all lie inside the source, so `adopt_lineage` accepts them; the tracker's stream
/// carries no RESIZE; the applier accepts a target larger than the stream's disk), and the
/// resync "succeeded" with the replica at its old size and stale bytes past the source's end.
/// The documented live path is now `ResyncPlan::adopt`, which refuses any size mismatch and
/// leaves the tracker untouched; equal sizes adopt and ship the difference.
#[test]
fn a_live_resync_never_silently_leaves_a_replica_of_another_size() {
    use blockdelta::resync::ResyncError;
    use blockdelta::stream::encode_to_vec;
    use blockdelta::{Tracker, TrackerConfig};
    let mut rng = Rng(41);
    let size = 2 * MIB;
    let source = disk(&mut rng, size);
    let c = cfg(4096, 2, 2);
    let ours = HashList::compute(&source[..], size as u64, &c).unwrap();
    let g = GenerationId([9; 16]);
    for replica_len in [size + MIB, size - MIB] {
        let mut replica = source.clone();
        replica.resize(replica_len, 0);
        replica[4096] ^= 1;
        let tracker = Tracker::new(TrackerConfig::new(size as u64).start_clean(true)).unwrap();
        let theirs = HashList::compute(&replica[..], replica.len() as u64, &c).unwrap();
        let plan = diff(&theirs, &ours).unwrap();
        assert_eq!(plan.resize(), Some(size as u64));
        match plan.adopt(&tracker, g, 4) {
            Err(ResyncError::SizeMismatch { .. }) => {}
            other => panic!("a live resync to a replica of {replica_len} bytes: {other:?}"),
        }
        assert_eq!(tracker.generation(), tracker.generation()); // untouched below
        assert!(tracker.pending().is_none());
        assert_eq!(
            tracker.take().unwrap().dirty_bytes,
            0,
            "the tracker was left untouched"
        );
    }
    // Equal sizes: adopted, and the next take ships exactly the difference.
    let mut replica = source.clone();
    replica[4096] ^= 1;
    let tracker = Tracker::new(TrackerConfig::new(size as u64).start_clean(true)).unwrap();
    let theirs = HashList::compute(&replica[..], size as u64, &c).unwrap();
    let plan = diff(&theirs, &ours).unwrap();
    plan.adopt(&tracker, g, 4).unwrap();
    let cp = tracker.take().unwrap();
    assert_eq!((cp.generation, cp.from_sequence), (g, 4));
    let mut extents = Vec::new();
    let mut cursor = cp.cursor();
    let mut buf = [Extent::default(); 16];
    loop {
        let n = tracker.extents(&mut cursor, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        extents.extend_from_slice(&buf[..n]);
    }
    let mut ecfg = EncoderConfig::new(
        *b"review-resync-d0",
        cp.generation,
        cp.from_sequence,
        cp.sequence,
        size as u64,
    );
    ecfg.block_size = cp.block_size;
    let stream = encode_to_vec(ecfg, &extents, &mut source.clone()).unwrap();
    let mut applier = Applier::new(DecoderConfig::new(), replica);
    let mut at = 0;
    while at < stream.len() {
        at += applier.push(&stream[at..]).unwrap();
    }
    applier.finish().unwrap();
    assert!(applier.into_target() == source);
}

/// A sender relies on the documented order of `decode`'s checks (`docs/RESYNC.md`, "Reading
/// hostile lists", step 1): too short for a CRC, a later major version named as such even with
/// a bad CRC, a bad CRC, bad magic, reserved head bytes, fields past the end; any minor
/// version of major 1 is read; in C a later major version is `RESYNC_UNSUPPORTED_VERSION`.
#[test]
fn decode_checks_the_head_in_the_documented_order() {
    let d = vec![3u8; 10_000];
    let list = HashList::compute(&d[..], d.len() as u64, &cfg(4096, 1, 0)).unwrap();
    let good = list.to_bytes();
    let body = &good[..good.len() - 4];
    assert!(matches!(
        HashList::decode(&good[..3]),
        Err(ResyncError::NoChecksum)
    ));
    let mut v2 = good.clone();
    v2[8] = 2; // CRC now wrong too
    assert!(matches!(
        HashList::decode(&v2),
        Err(ResyncError::UnsupportedVersion(2))
    ));
    let mut out = null_mut();
    assert_eq!(
        blockdelta_hash_list_decode(v2.as_ptr(), v2.len(), null(), 0, &mut out),
        blockdelta_result::ResyncUnsupportedVersion
    );
    let mut bad = good.clone();
    bad[40] ^= 1;
    assert!(matches!(HashList::decode(&bad), Err(ResyncError::Checksum)));
    let mut b = body.to_vec();
    b[0] = b'X';
    assert!(matches!(
        HashList::decode(&sealed(&b)),
        Err(ResyncError::Magic)
    ));
    let mut b = body.to_vec();
    b[13] = 1;
    assert!(matches!(
        HashList::decode(&sealed(&b)),
        Err(ResyncError::ReservedNotZero(_))
    ));
    assert!(matches!(
        HashList::decode(&sealed(&body[..40])),
        Err(ResyncError::Truncated { .. })
    ));
    let mut b = body.to_vec();
    b[10] = 7; // minor 7
    assert_eq!(HashList::decode(&sealed(&b)).unwrap(), list);
}

/// A reader of `docs/RESYNC.md` ("Why 128 bits and a salt are enough") relies on the stated
/// false-match bounds: at most 2^-128 per block, so (number of 4 KiB blocks) x 2^-128 per
/// disk. The doc gives 2^-80 for 2^60 bytes (2^48 blocks: right) but 2^-110 for 1 TiB, which
/// is 2^28 blocks, i.e. 2^-100: the bound for 1 TiB is overstated by a factor of 1024.
#[test]
fn the_documented_false_match_bounds_follow_from_the_block_count() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/RESYNC.md"))
        .unwrap()
        .replace('\n', " ");
    let bound = |disk_log2: u32| 128 - (disk_log2 - 12); // -log2(blocks * 2^-128)
    assert!(doc.contains(&format!(
        "2^-{} for a whole disk of the largest size",
        bound(60)
    )));
    assert!(
        doc.contains(&format!("2^-{} for 1 TiB", bound(40))),
        "docs/RESYNC.md does not state 2^-{} for 1 TiB (2^28 blocks of 4 KiB)",
        bound(40)
    );
}

/// A disk whose chunks fail or succeed after random delays.
struct Flaky {
    fail: Vec<bool>,
    delay_ms: Vec<u64>,
}

impl ReadAt for Flaky {
    fn read_exact_at(&self, _buf: &mut [u8], offset: u64) -> io::Result<()> {
        let i = (offset / CHUNK as u64) as usize;
        std::thread::sleep(std::time::Duration::from_millis(self.delay_ms[i]));
        if self.fail[i] {
            Err(io::Error::other(format!("chunk {i}")))
        } else {
            Ok(()) // the buffer keeps its zeros
        }
    }
}

/// A user relies on the lowest failed offset being reported whatever the timing: random sets
/// of failing chunks, random delays, 2 to 6 threads.
#[test]
fn the_lowest_failed_offset_is_reported_under_any_timing() {
    let mut rng = Rng(1717);
    for round in 0..10 {
        let n = 12;
        let fail: Vec<bool> = (0..n).map(|_| rng.below(4) == 0).collect();
        let Some(first) = fail.iter().position(|&f| f) else {
            continue;
        };
        let delay_ms = (0..n).map(|_| rng.below(30)).collect();
        let threads = 2 + rng.below(5) as usize;
        let d = Flaky { fail, delay_ms };
        match HashList::compute(&d, (n * CHUNK) as u64 - 5, &cfg(4096, threads, 0)) {
            Err(ResyncError::Io { offset, .. }) => {
                assert_eq!(offset, (first * CHUNK) as u64, "round {round}")
            }
            other => panic!("round {round}: {other:?}"),
        }
    }
}

/// A caller relies on `HashList::compute` (and `blockdelta_hash_list_compute_file`) returning
/// an error for any disk size it accepts (1 to 2^60), never taking the process down: with a
/// disk size of 2^60 and an image that is much shorter the answer should be the read error
/// (`ResyncError::Io`). Instead `compute` first allocates one 48-byte piece per 8 MiB chunk,
/// 2^37 of them (6.6 TB), before the first read: the allocation fails and the process aborts
/// (an abort, not a panic: the C ABI's panic boundary cannot catch it). The check runs in a
/// child process under `ulimit -v` (4 GiB) so that it can neither exhaust the machine's memory
/// nor kill this test binary.
#[test]
fn hashing_a_disk_of_the_largest_size_fails_with_an_error_not_an_abort() {
    if std::env::var_os("REVIEW_RESYNC_CHILD").is_some() {
        let image = vec![1u8; 4096];
        let r = HashList::compute(&image[..], 1u64 << 60, &cfg(4096, 1, 0));
        assert!(matches!(r, Err(ResyncError::Io { offset: 0, .. })), "{r:?}");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 4194304 && exec \"$0\" --exact --test-threads=1 \"$1\"")
        .arg(&exe)
        .arg("hashing_a_disk_of_the_largest_size_fails_with_an_error_not_an_abort")
        .env("REVIEW_RESYNC_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the child died ({:?}): {}",
        out.status,
        stderr
            .lines()
            .filter(|l| l.contains("memory allocation") || l.contains("panicked at"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
}

/// An independent implementation relies on the tag being exactly what `docs/RESYNC.md` says:
/// HMAC-SHA256 of every byte before it, under HKDF-SHA256(salt = the list's salt, IKM = the
/// secret, info = "blockdelta resync v1"), flag bit 0 set, then the CRC-32.
#[test]
fn the_tag_is_the_documented_hmac() {
    use ring::{hkdf, hmac};
    let mut rng = Rng(8);
    let d = disk(&mut rng, 50_000);
    let c = cfg(4096, 1, 0x3c);
    let list = HashList::compute(&d[..], d.len() as u64, &c).unwrap();
    let secret = Secret::new(SECRET).unwrap();
    let auth = list.to_bytes_authenticated(&secret);
    let plain = list.to_bytes();
    assert_eq!(u32::from_le_bytes(auth[28..32].try_into().unwrap()), 1);
    let signed = &auth[..auth.len() - 36];
    let mut expect_signed = plain[..plain.len() - 4].to_vec();
    expect_signed[28] = 1;
    assert_eq!(signed, &expect_signed[..]);
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[0x3c; 16]).extract(SECRET);
    let info = [&b"blockdelta resync v1"[..]];
    let key = hmac::Key::from(prk.expand(&info, hmac::HMAC_SHA256).unwrap());
    let tag = hmac::sign(&key, signed);
    assert_eq!(&auth[auth.len() - 36..auth.len() - 4], tag.as_ref());
    assert_eq!(
        &auth[auth.len() - 4..],
        &crc32fast::hash(&auth[..auth.len() - 4]).to_le_bytes()
    );
}

/// A C sender walks a plan with `blockdelta_resync_plan_extents` until `*n_out` is 0, which
/// its doc calls the end ("0 at or past the end"), exactly as it walks a checkpoint with
/// `blockdelta_tracker_extents`, where "0 is returned only at the end, whatever `cap` is" and
/// a `cap` of 0 while extents remain is `BLOCKDELTA_RESULT_BUFFER_TOO_SMALL`. The resync
/// function breaks that convention: with `cap` 0 (an empty or not yet grown buffer) it
/// returns OK with 0 while every extent remains, so such a loop ends at once, ships nothing,
/// and the replica stays wrong without any error.
#[test]
fn a_plan_walk_sees_zero_extents_only_at_the_end_whatever_the_capacity() {
    let c = cfg(4096, 1, 4);
    let src = vec![1u8; 40_000];
    let mut rep = src.clone();
    rep[10_000] = 2;
    let mut lists = [null_mut(), null_mut()];
    for (k, d) in [&rep, &src].iter().enumerate() {
        let l = HashList::compute(&d[..], d.len() as u64, &c)
            .unwrap()
            .to_bytes();
        assert_eq!(
            blockdelta_hash_list_decode(l.as_ptr(), l.len(), null(), 0, &mut lists[k]),
            blockdelta_result::Ok
        );
    }
    let mut plan = null_mut();
    assert_eq!(
        blockdelta_resync_diff(lists[0], lists[1], &mut plan),
        blockdelta_result::Ok
    );
    let mut count = 0usize;
    blockdelta_resync_plan_info(
        plan,
        &mut count,
        null_mut(),
        null_mut(),
        null_mut(),
        null_mut(),
    );
    assert_eq!(count, 1);
    let mut n = 77usize;
    let r = blockdelta_resync_plan_extents(plan, 0, null_mut(), 0, &mut n);
    blockdelta_resync_plan_free(plan);
    blockdelta_hash_list_free(lists[0]);
    blockdelta_hash_list_free(lists[1]);
    assert!(
        !(r == blockdelta_result::Ok && n == 0),
        "cap 0 with 1 extent remaining: OK and 0 extents, which the caller reads as the end"
    );
}
