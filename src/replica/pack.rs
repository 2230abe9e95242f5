//! Writing packs: raw data at its disk offset modulo 4 KiB, a CRC32 per 4 KiB chunk, the
//! checksum table and footer at the end (layout in `docs/REPLICA.md`).
//!
//! Full 1 MiB buffers are checksummed and appended by a writer thread, so that the caller
//! (decrypting and decompressing a stream) and the copy into the storage overlap. The thread
//! owns the [`Upload`] and the checksums while it runs; it is started at the first full buffer
//! and joined by [`PackWriter::sync`], [`PackWriter::finish`], on its first error, and on drop,
//! so it never outlives the writer. The upload gets exactly the calls, in the same order and
//! with the same bytes, as if every buffer were appended by the caller when it filled; a
//! failed call is reported by the writer's next call, and the upload gets no call after it.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::format::{encode_pack_head, encode_pack_tail, CHUNK};
use super::storage::{Upload, DIRECT_ALIGN};

pub(crate) const FLUSH: usize = 1 << 20;

/// Full buffers waiting for the writer thread, besides the one it is writing.
const QUEUE: usize = 2;

/// A buffer of pack bytes whose first byte is 4 KiB-aligned in memory, so that a storage can
/// hand whole blocks to the disk straight from it (`O_DIRECT` in [`super::DirStorage`]).
struct Buf {
    mem: Vec<u8>,
    at: usize,
    len: usize,
}

impl Buf {
    fn new() -> Buf {
        // A full buffer ends at the first chunk boundary at or after `FLUSH` bytes.
        let mem = vec![0u8; FLUSH + CHUNK as usize + DIRECT_ALIGN];
        let at = (DIRECT_ALIGN - mem.as_ptr() as usize % DIRECT_ALIGN) % DIRECT_ALIGN;
        Buf { mem, at, len: 0 }
    }

    fn bytes(&self) -> &[u8] {
        &self.mem[self.at..self.at + self.len]
    }

    fn extend(&mut self, data: &[u8]) {
        let end = self.at + self.len;
        self.mem[end..end + data.len()].copy_from_slice(data);
        self.len += data.len();
    }
}

/// Where the pack's bytes go: the upload, and the checksums of what was appended to it.
struct Out {
    upload: Box<dyn Upload>,
    /// The CRC32 of each full chunk.
    crcs: Vec<u32>,
    /// The running CRC of the partial last chunk, and its length.
    chunk: crc32fast::Hasher,
    fill: u64,
}

impl Out {
    fn append(&mut self, mut data: &[u8]) -> io::Result<()> {
        let all = data;
        while !data.is_empty() {
            let n = ((CHUNK - self.fill) as usize).min(data.len());
            self.chunk.update(&data[..n]);
            self.fill += n as u64;
            if self.fill == CHUNK {
                let h = std::mem::replace(&mut self.chunk, crc32fast::Hasher::new());
                self.crcs.push(h.finalize());
                self.fill = 0;
            }
            data = &data[n..];
        }
        self.upload.append(all)
    }
}

/// Appends pack bytes through a buffer, checksumming each 4 KiB chunk.
pub(crate) struct PackWriter {
    pub store_id: [u8; 16],
    /// Bytes appended (buffered ones included).
    pub len: u64,
    /// The upload and checksums, unless the writer thread holds them (or they were lost with a
    /// panicking thread).
    out: Option<Out>,
    worker: Option<Worker>,
    /// An error was reported: every later call fails.
    broken: bool,
    buf: Buf,
}

/// The writer thread: takes full buffers, checksums and appends them in order, hands them back
/// for reuse. After its first error it appends nothing more and ends, returning the error.
struct Worker {
    tx: SyncSender<Buf>,
    back: Receiver<Buf>,
    failed: Arc<AtomicBool>,
    handle: JoinHandle<(Out, io::Result<()>)>,
}

impl Worker {
    /// Starts the thread with `out`, or gives `out` back if no thread can be started.
    fn start(out: Out) -> std::result::Result<Worker, Out> {
        let (tx, rx) = sync_channel::<Buf>(QUEUE);
        let (back_tx, back) = channel::<Buf>();
        let (out_tx, out_rx) = sync_channel::<Out>(1);
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let spawned = std::thread::Builder::new()
            .name("blockdelta-pack".into())
            .spawn(move || {
                let mut out = out_rx.recv().expect("sent right after the spawn");
                for mut b in rx {
                    if let Err(e) = out.append(b.bytes()) {
                        flag.store(true, Ordering::Release);
                        return (out, Err(e));
                    }
                    b.len = 0;
                    // The writer may be gone already (it joins after closing `tx`).
                    let _ = back_tx.send(b);
                }
                (out, Ok(()))
            });
        match spawned {
            Ok(handle) => {
                out_tx.send(out).expect("the thread waits for it");
                Ok(Worker {
                    tx,
                    back,
                    failed,
                    handle,
                })
            }
            Err(_) => Err(out),
        }
    }
}

fn broken() -> io::Error {
    io::Error::other("an earlier write of this pack failed")
}

impl PackWriter {
    fn with(
        upload: Box<dyn Upload>,
        store_id: &[u8; 16],
        len: u64,
        crcs: Vec<u32>,
        chunk: crc32fast::Hasher,
    ) -> Self {
        PackWriter {
            store_id: *store_id,
            len,
            out: Some(Out {
                upload,
                crcs,
                chunk,
                fill: len % CHUNK,
            }),
            worker: None,
            broken: false,
            buf: Buf::new(),
        }
    }

    /// Starts a pack: writes its header chunk.
    pub fn new(upload: Box<dyn Upload>, store_id: &[u8; 16], id: u64) -> io::Result<Self> {
        let mut pw = Self::with(upload, store_id, 0, Vec::new(), crc32fast::Hasher::new());
        pw.append(&encode_pack_head(store_id, id))?;
        Ok(pw)
    }

    /// Continues a pack whose first `len` bytes are durable in `upload`, with the CRCs of its
    /// full chunks and the running CRC of its last, partial chunk.
    pub fn restore(
        upload: Box<dyn Upload>,
        store_id: &[u8; 16],
        len: u64,
        crcs: Vec<u32>,
        partial_crc: u32,
    ) -> Self {
        let chunk = crc32fast::Hasher::new_with_initial_len(partial_crc, len % CHUNK);
        Self::with(upload, store_id, len, crcs, chunk)
    }

    /// The checksums of the full chunks and the running CRC of the partial last chunk (what
    /// [`PackWriter::restore`] needs), right after a successful [`PackWriter::sync`].
    pub fn checksums(&self) -> (&[u32], u32) {
        let out = self.out.as_ref().expect("called after a successful sync");
        debug_assert!(self.buf.len == 0 && self.worker.is_none());
        (&out.crcs, out.chunk.clone().finalize())
    }

    /// Waits for the writer thread to end (after closing its queue: it writes what was
    /// queued) and takes the upload and checksums back. Returns the thread's error, if any.
    fn join(&mut self) -> io::Result<()> {
        let Some(w) = self.worker.take() else {
            return Ok(());
        };
        drop(w.tx);
        match w.handle.join() {
            Ok((out, r)) => {
                self.out = Some(out);
                if r.is_err() {
                    self.broken = true;
                }
                r
            }
            Err(panic) => {
                self.broken = true;
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Joins the writer thread and appends what is buffered on this thread, then runs `then`
    /// on the upload; a failure breaks the writer.
    fn drain(&mut self, then: impl FnOnce(&mut Out) -> io::Result<()>) -> io::Result<&mut Out> {
        self.join()?;
        let r = match (&mut self.out, self.broken) {
            (Some(out), false) => out.append(self.buf.bytes()).and_then(|()| then(out)),
            _ => Err(broken()),
        };
        if r.is_err() {
            self.broken = true;
        }
        r?;
        self.buf.len = 0;
        Ok(self.out.as_mut().expect("checked"))
    }

    /// Hands the full buffer to the writer thread (starting it if needed).
    fn flush(&mut self) -> io::Result<()> {
        if self.worker.is_none() {
            let out = self.out.take().ok_or_else(broken)?;
            match Worker::start(out) {
                Ok(w) => self.worker = Some(w),
                Err(out) => {
                    // No thread to be had: append here.
                    self.out = Some(out);
                    self.drain(|_| Ok(()))?;
                    return Ok(());
                }
            }
        }
        let w = self.worker.as_mut().expect("started");
        let next = w.back.try_recv().unwrap_or_else(|_| Buf::new());
        let full = std::mem::replace(&mut self.buf, next);
        if w.tx.send(full).is_err() {
            // The thread ended on an error.
            self.join()?;
            return Err(broken());
        }
        Ok(())
    }

    /// Waits until every full buffer handed to the writer thread was appended; returns the
    /// first failed append's error.
    pub fn settle(&mut self) -> io::Result<()> {
        if self.broken {
            return Err(broken());
        }
        self.join()
    }

    /// Ends the writer thread of a writer being given up; returns its failed append's error if
    /// no call reported it yet (a failed write stays a failed write).
    pub fn close(mut self) -> io::Result<()> {
        if self.broken {
            return Ok(());
        }
        self.join()
    }

    /// Appends what is buffered and makes everything so far durable.
    pub fn sync(&mut self) -> io::Result<()> {
        self.drain(|out| out.upload.sync())?;
        Ok(())
    }

    pub fn append(&mut self, mut data: &[u8]) -> io::Result<()> {
        if self.broken {
            return Err(broken());
        }
        if self
            .worker
            .as_ref()
            .is_some_and(|w| w.failed.load(Ordering::Acquire))
        {
            self.join()?;
        }
        while !data.is_empty() {
            // Buffers end at a chunk boundary once they hold `FLUSH` bytes (or when the data
            // does), as they always did.
            let n = ((CHUNK - self.len % CHUNK) as usize).min(data.len());
            self.buf.extend(&data[..n]);
            self.len += n as u64;
            data = &data[n..];
            if self.buf.len >= FLUSH {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Pads with zeros until `len % 4096 == residue`.
    pub fn align(&mut self, residue: u64) -> io::Result<()> {
        let pad = (residue + CHUNK - self.len % CHUNK) % CHUNK;
        const Z: [u8; CHUNK as usize] = [0; CHUNK as usize];
        self.append(&Z[..pad as usize])
    }

    /// Writes the checksum table and footer; returns the upload (to complete) and the data
    /// length.
    pub fn finish(mut self) -> io::Result<(Box<dyn Upload>, u64)> {
        let len = self.len;
        self.drain(|out| {
            if out.fill > 0 {
                let h = std::mem::replace(&mut out.chunk, crc32fast::Hasher::new());
                out.crcs.push(h.finalize());
            }
            out.upload.append(&encode_pack_tail(&out.crcs, len))
        })?;
        let out = self.out.take().expect("drained");
        Ok((out.upload, len))
    }
}

impl Drop for PackWriter {
    fn drop(&mut self) {
        // Never leave the thread running: it writes what was queued (as a caller appending
        // each buffer when it filled would have) and ends.
        if let Some(w) = self.worker.take() {
            drop(w.tx);
            // A panic in the upload was reported by the panic hook; raising it again here, in
            // a drop (maybe during an unwind), could abort.
            let _ = w.handle.join();
        }
    }
}
