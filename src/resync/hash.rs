//! Block-hash lists and the parallel hasher.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ring::digest;

use super::{check_block_size, check_disk_size, ResyncError, DEFAULT_BLOCK_SIZE, HASH_LEN};
use crate::stream::is_all_zero;

/// Bytes one thread reads at a time: 8 MiB, a multiple of every block size.
const CHUNK: usize = 8 << 20;

/// Chunks per thread in one window of the list being built (see `HashList::compute`).
const WINDOW_PER_THREAD: usize = 16;

/// At most this many hashing threads, whatever the caller asks (each holds an 8 MiB buffer).
pub const MAX_THREADS: usize = 64;

/// A disk that several threads can read at once by offset (positional reads: `pread` on a
/// file or block device; slices for tests and in-memory images).
///
/// Not [`BlockSource`](crate::BlockSource), whose `read_at` takes `&mut self` (the encoder owns
/// its source): hashing on all cores needs one source shared by reference, and a `File` read
/// with `pread` is exactly that (no shared file offset, no clones, no locks).
pub trait ReadAt: Sync {
    /// Fills all of `buf` with the disk's bytes starting at `offset`; a short read is an error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

#[cfg(unix)]
impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let src = usize::try_from(offset)
            .ok()
            .and_then(|o| self.get(o..o.checked_add(buf.len())?))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read past the end of the image",
                )
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
}

impl<T: ReadAt + ?Sized + Send> ReadAt for Arc<T> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
}

/// How to hash a disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashConfig {
    /// Block size: a power of two from 4 KiB to 1 MiB (default 4 KiB). Both sides of a resync
    /// must use the same one.
    pub block_size: u32,
    /// Threads to hash with; 0 (the default) means `std::thread::available_parallelism`; at
    /// most [`MAX_THREADS`] are used.
    pub threads: usize,
    /// Prepended to every block before hashing. The **sender** picks it at random for each
    /// resync and gives it to the replica, so that nobody can prepare two different blocks
    /// with the same (truncated) hash in advance; see `docs/RESYNC.md`. Both sides must use
    /// the same salt.
    pub salt: [u8; 16],
}

impl Default for HashConfig {
    fn default() -> Self {
        HashConfig {
            block_size: DEFAULT_BLOCK_SIZE,
            threads: 0,
            salt: [0; 16],
        }
    }
}

impl HashConfig {
    /// The default configuration with a fresh random salt (the sender's choice).
    pub fn with_random_salt() -> Self {
        use ring::rand::SecureRandom;
        let mut salt = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut salt)
            .expect("the operating system's random number generator failed");
        HashConfig {
            salt,
            ..HashConfig::default()
        }
    }
}

/// A list being built: runs alternating zero, data, ... (the first may be empty), hashes.
#[derive(Default)]
struct Builder {
    runs: Vec<u64>,
    hashes: Vec<[u8; HASH_LEN]>,
}

impl Builder {
    /// Appends `n` blocks of one kind (their hashes are pushed by the caller).
    fn push_run(&mut self, data: bool, n: u64) {
        if self.runs.is_empty() {
            self.runs.push(0);
        }
        // An odd number of runs: the last is a zero run.
        let last_is_data = self.runs.len() % 2 == 0;
        if data != last_is_data {
            self.runs.push(0);
        }
        *self.runs.last_mut().expect("non-empty") += n;
    }

    /// Appends a later piece.
    fn append(&mut self, other: Builder) {
        for (k, &n) in other.runs.iter().enumerate() {
            if n > 0 {
                self.push_run(k % 2 == 1, n);
            }
        }
        self.hashes.extend_from_slice(&other.hashes);
    }
}

/// One block of a hash list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockHash {
    /// Every byte of the block is zero (no hash is computed nor sent).
    Zero,
    /// The first 16 bytes of SHA-256(salt || block).
    Data([u8; HASH_LEN]),
}

/// The per-block hashes of a disk: `ceil(disk_size / block_size)` blocks, the last one short
/// when the size is not a multiple of the block size (its hash covers only its bytes).
///
/// Held as on the wire: alternating runs of zero and data blocks, and the hashes of the data
/// blocks in disk order, so a sparse disk's list is small in memory too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashList {
    pub(super) disk_size: u64,
    pub(super) block_size: u32,
    pub(super) salt: [u8; 16],
    /// Run lengths in blocks, alternating zero, data, zero, data, ...; the first (zero) run
    /// may be empty, no other is; the sum is the block count.
    pub(super) runs: Vec<u64>,
    /// The data blocks' hashes, in disk order.
    pub(super) hashes: Vec<[u8; HASH_LEN]>,
}

impl HashList {
    /// Hashes the first `disk_size` bytes of `disk` on `config.threads` threads (all cores by
    /// default). The disk is read once: each thread claims the next 8 MiB piece, reads it with
    /// one positional read and hashes its blocks, so the threads together sweep the disk
    /// sequentially. All-zero blocks are detected before hashing and cost no hash.
    pub fn compute<D: ReadAt + ?Sized>(
        disk: &D,
        disk_size: u64,
        config: &HashConfig,
    ) -> Result<HashList, ResyncError> {
        check_block_size(config.block_size)?;
        check_disk_size(disk_size)?;
        let bs = u64::from(config.block_size);
        let blocks = usize::try_from(disk_size.div_ceil(bs))
            .map_err(|_| ResyncError::InvalidDiskSize(disk_size))?;
        let per_chunk = CHUNK / config.block_size as usize;
        let chunks = blocks.div_ceil(per_chunk);
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
        .clamp(1, chunks.clamp(1, MAX_THREADS));

        // The list is built a window of chunks at a time: one piece per 8 MiB chunk of the
        // window, built by whichever thread hashes the chunk, then joined in order. Memory
        // stays in proportion to the data blocks and runs, and to the window, never to the
        // disk's size (a 2^60-byte disk costs no more up front than a small one).
        let window = threads * WINDOW_PER_THREAD;
        let mut salted = digest::Context::new(&digest::SHA256);
        salted.update(&config.salt);

        let work = |index: usize, piece: &mut Builder, buf: &mut Vec<u8>| {
            let offset = index as u64 * CHUNK as u64;
            let len = (disk_size - offset).min(CHUNK as u64) as usize;
            let buf = &mut buf[..len];
            disk.read_exact_at(buf, offset)
                .map_err(|source| ResyncError::Io { offset, source })?;
            for block in buf.chunks(bs as usize) {
                if is_all_zero(block) {
                    piece.push_run(false, 1);
                } else {
                    let mut ctx = salted.clone();
                    ctx.update(block);
                    let d = ctx.finish();
                    let mut h = [0u8; HASH_LEN];
                    h.copy_from_slice(&d.as_ref()[..HASH_LEN]);
                    piece.push_run(true, 1);
                    piece.hashes.push(h);
                }
            }
            Ok::<(), ResyncError>(())
        };

        let mut all = Builder::default();
        let mut bufs: Vec<Vec<u8>> = Vec::new();
        let mut first = 0usize;
        while first < chunks {
            let last = (first + window).min(chunks);
            let mut pieces: Vec<Builder> = (first..last).map(|_| Builder::default()).collect();
            if threads == 1 {
                if bufs.is_empty() {
                    bufs.push(vec![
                        0u8;
                        CHUNK.min(usize::try_from(disk_size).unwrap_or(CHUNK))
                    ]);
                }
                for (i, piece) in pieces.iter_mut().enumerate() {
                    work(first + i, piece, &mut bufs[0])?;
                }
            } else {
                if bufs.is_empty() {
                    bufs = (0..threads).map(|_| vec![0u8; CHUNK]).collect();
                }
                let queue = Mutex::new(pieces.iter_mut().enumerate());
                let failed = AtomicBool::new(false);
                let first_error: Mutex<Option<(usize, ResyncError)>> = Mutex::new(None);
                std::thread::scope(|s| {
                    for buf in bufs.iter_mut() {
                        let (queue, failed, first_error, work) =
                            (&queue, &failed, &first_error, &work);
                        s.spawn(move || {
                            while !failed.load(Ordering::Relaxed) {
                                // A poisoned lock means another hashing thread panicked; the
                                // scope re-raises that panic, so just stop.
                                let Some((i, piece)) = queue.lock().ok().and_then(|mut q| q.next())
                                else {
                                    break;
                                };
                                if let Err(e) = work(first + i, piece, buf) {
                                    failed.store(true, Ordering::Relaxed);
                                    let mut fe =
                                        first_error.lock().unwrap_or_else(|p| p.into_inner());
                                    // Report the lowest offset that failed, whatever the timing.
                                    if fe.as_ref().map_or(true, |(j, _)| i < *j) {
                                        *fe = Some((i, e));
                                    }
                                    break;
                                }
                            }
                        });
                    }
                });
                if let Some((_, e)) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
                    return Err(e);
                }
            }
            for piece in pieces {
                all.append(piece);
            }
            first = last;
        }
        Ok(HashList {
            disk_size,
            block_size: config.block_size,
            salt: config.salt,
            runs: all.runs,
            hashes: all.hashes,
        })
    }

    /// The disk size in bytes.
    pub fn disk_size(&self) -> u64 {
        self.disk_size
    }

    /// The block size in bytes.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// The salt the blocks were hashed with.
    pub fn salt(&self) -> [u8; 16] {
        self.salt
    }

    /// The number of blocks: `ceil(disk_size / block_size)`.
    pub fn block_count(&self) -> u64 {
        self.disk_size.div_ceil(u64::from(self.block_size))
    }

    /// The number of blocks that are not all zero (each has a hash).
    pub fn data_blocks(&self) -> u64 {
        self.hashes.len() as u64
    }

    /// The number of all-zero blocks.
    pub fn zero_blocks(&self) -> u64 {
        self.block_count() - self.data_blocks()
    }

    /// Every block in disk order.
    pub fn blocks(&self) -> impl Iterator<Item = BlockHash> + '_ {
        self.runs
            .iter()
            .enumerate()
            .scan(0usize, |next_hash, (i, &n)| {
                let start = *next_hash;
                let data = i % 2 == 1;
                if data {
                    *next_hash += n as usize;
                }
                Some((data, start, n))
            })
            .flat_map(move |(data, start, n)| {
                (0..n).map(move |k| match data {
                    true => BlockHash::Data(self.hashes[start + k as usize]),
                    false => BlockHash::Zero,
                })
            })
    }

    /// The run lengths in blocks, alternating zero, data, zero, ...: the first (zero) run may
    /// be empty, no other is.
    pub fn runs(&self) -> &[u64] {
        &self.runs
    }

    /// The data blocks' hashes in disk order.
    pub fn hashes(&self) -> &[[u8; HASH_LEN]] {
        &self.hashes
    }
}
