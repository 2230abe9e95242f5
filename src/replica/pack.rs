//! Writing packs: raw data at its disk offset modulo 4 KiB, a CRC32 per 4 KiB chunk, the
//! checksum table and footer at the end (layout in `docs/REPLICA.md`).

use super::format::{encode_pack_head, encode_pack_tail, CHUNK};
use super::storage::Upload;

/// Appends pack bytes through a buffer, checksumming each 4 KiB chunk.
pub(crate) struct PackWriter {
    pub store_id: [u8; 16],
    pub len: u64,
    pub crcs: Vec<u32>,
    upload: Box<dyn Upload>,
    buf: Vec<u8>,
    chunk: crc32fast::Hasher,
    fill: u64,
}

pub(crate) const FLUSH: usize = 1 << 20;

impl PackWriter {
    /// Starts a pack: writes its header chunk.
    pub fn new(upload: Box<dyn Upload>, store_id: &[u8; 16], id: u64) -> std::io::Result<Self> {
        let mut pw = PackWriter {
            store_id: *store_id,
            upload,
            buf: Vec::with_capacity(FLUSH + CHUNK as usize),
            len: 0,
            crcs: Vec::new(),
            chunk: crc32fast::Hasher::new(),
            fill: 0,
        };
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
        PackWriter {
            store_id: *store_id,
            upload,
            buf: Vec::with_capacity(FLUSH + CHUNK as usize),
            len,
            crcs,
            chunk: crc32fast::Hasher::new_with_initial_len(partial_crc, len % CHUNK),
            fill: len % CHUNK,
        }
    }

    /// The running CRC of the partial last chunk (what [`PackWriter::restore`] needs).
    pub fn partial_crc(&self) -> u32 {
        self.chunk.clone().finalize()
    }

    /// Appends what is buffered and makes everything so far durable.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.upload.append(&self.buf)?;
        self.buf.clear();
        self.upload.sync()
    }

    pub fn append(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let n = ((CHUNK - self.fill) as usize).min(data.len());
            self.chunk.update(&data[..n]);
            self.buf.extend_from_slice(&data[..n]);
            self.fill += n as u64;
            self.len += n as u64;
            if self.fill == CHUNK {
                let h = std::mem::replace(&mut self.chunk, crc32fast::Hasher::new());
                self.crcs.push(h.finalize());
                self.fill = 0;
            }
            data = &data[n..];
            if self.buf.len() >= FLUSH {
                self.upload.append(&self.buf)?;
                self.buf.clear();
            }
        }
        Ok(())
    }

    /// Pads with zeros until `len % 4096 == residue`.
    pub fn align(&mut self, residue: u64) -> std::io::Result<()> {
        let pad = (residue + CHUNK - self.len % CHUNK) % CHUNK;
        const Z: [u8; CHUNK as usize] = [0; CHUNK as usize];
        self.append(&Z[..pad as usize])
    }

    /// Writes the checksum table and footer; returns the upload (to complete) and the data
    /// length.
    pub fn finish(mut self) -> std::io::Result<(Box<dyn Upload>, u64)> {
        if self.fill > 0 {
            let h = std::mem::replace(&mut self.chunk, crc32fast::Hasher::new());
            self.crcs.push(h.finalize());
        }
        self.upload.append(&self.buf)?;
        let tail = encode_pack_tail(&self.crcs, self.len);
        self.upload.append(&tail)?;
        Ok((self.upload, self.len))
    }
}
