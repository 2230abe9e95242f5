//! The store's files: manifest, layer index and pack. Layouts are in `docs/REPLICA.md`.
//! Every reader treats its input as hostile: lengths are checked before use, a CRC32 covers
//! every byte, unknown major versions and non-zero reserved fields are refused.

use super::error::{corrupt, ReplicaError, Result};
use super::map::{Run, RunKind};

/// Major version of every store file this build writes and reads.
pub const STORE_FORMAT_MAJOR: u16 = 2;
/// Minor version written (readers accept any minor of a known major).
pub const STORE_FORMAT_MINOR: u16 = 0;
/// The unit of verification: pack bytes are checksummed per 4 KiB chunk.
pub const CHUNK: u64 = 4096;

pub(crate) const MANIFEST_MAGIC: &[u8; 8] = b"BDMANIFS";
pub(crate) const LAYER_MAGIC: &[u8; 8] = b"BDLAYER1";
pub(crate) const PACK_MAGIC: &[u8; 8] = b"BDPACK01";
pub(crate) const PACK_END_MAGIC: &[u8; 8] = b"BDPKEND1";
pub(crate) const RESUME_MAGIC: &[u8; 8] = b"BDRESUM1";
pub(crate) const BUNDLE_MAGIC: &[u8; 8] = b"BDBUNDL1";

/// Little-endian writer.
#[derive(Default)]
pub(crate) struct W(pub Vec<u8>);

impl W {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    /// Appends the CRC32 of everything so far and returns the bytes.
    pub fn seal(mut self) -> Vec<u8> {
        let crc = crc32fast::hash(&self.0);
        self.0.extend_from_slice(&crc.to_le_bytes());
        self.0
    }
}

/// Bounds-checked little-endian reader over hostile bytes.
pub(crate) struct R<'a> {
    b: &'a [u8],
    pos: usize,
    object: &'a str,
}

impl<'a> R<'a> {
    pub fn new(b: &'a [u8], object: &'a str) -> Self {
        R { b, pos: 0, object }
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| {
                corrupt(
                    self.object,
                    format!("ends at byte {} (needs {n} more)", self.pos),
                )
            })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2")))
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    pub fn arr16(&mut self) -> Result<[u8; 16]> {
        Ok(self.take(16)?.try_into().expect("16"))
    }
    pub fn zero(&mut self, n: usize, what: &str) -> Result<()> {
        if self.take(n)?.iter().any(|&b| b != 0) {
            return Err(corrupt(self.object, format!("reserved {what} is not zero")));
        }
        Ok(())
    }
    pub fn done(&self) -> Result<()> {
        if self.pos != self.b.len() {
            return Err(corrupt(
                self.object,
                format!("{} unexpected bytes at the end", self.b.len() - self.pos),
            ));
        }
        Ok(())
    }
    pub fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }
}

/// Checks the trailing CRC32 and returns the bytes before it.
pub(crate) fn unseal<'a>(b: &'a [u8], object: &str) -> Result<&'a [u8]> {
    if b.len() < 4 {
        return Err(corrupt(object, "too short for a checksum"));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    let want = u32::from_le_bytes(crc.try_into().expect("4"));
    if crc32fast::hash(body) != want {
        return Err(corrupt(object, "checksum mismatch"));
    }
    Ok(body)
}

/// Magic and version header shared by the manifest, layer and resume files:
/// magic (8), major (2), minor (2), reserved (4).
pub(crate) fn put_head(w: &mut W, magic: &[u8; 8]) {
    w.bytes(magic)
        .u16(STORE_FORMAT_MAJOR)
        .u16(STORE_FORMAT_MINOR)
        .u32(0);
}

pub(crate) fn check_head(r: &mut R<'_>, magic: &[u8; 8], object: &str) -> Result<()> {
    if r.take(8)? != magic {
        return Err(corrupt(object, "bad magic"));
    }
    let major = r.u16()?;
    let _minor = r.u16()?;
    if major != STORE_FORMAT_MAJOR {
        return Err(ReplicaError::UnsupportedVersion {
            object: object.to_string(),
            version: major,
        });
    }
    r.zero(4, "header field")
}

/// Opens a sealed file: CRC first (a torn or flipped file fails here), then magic and version.
/// The version is checked before the CRC when the magic matches, so that a file from a later
/// major version is reported as such even if its layout differs.
pub(crate) fn open_sealed<'a>(b: &'a [u8], magic: &[u8; 8], object: &'a str) -> Result<R<'a>> {
    if b.len() >= 12 && &b[..8] == magic {
        let major = u16::from_le_bytes([b[8], b[9]]);
        if major != STORE_FORMAT_MAJOR {
            return Err(ReplicaError::UnsupportedVersion {
                object: object.to_string(),
                version: major,
            });
        }
    }
    let body = unseal(b, object)?;
    let mut r = R::new(body, object);
    check_head(&mut r, magic, object)?;
    Ok(r)
}

// ---- layer index --------------------------------------------------------------------------

/// Bytes per run in a layer file.
const RUN_BYTES: usize = 40;

pub(crate) fn encode_layer(runs: &[Run]) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(28 + runs.len() * RUN_BYTES));
    put_head(&mut w, LAYER_MAGIC);
    w.u64(runs.len() as u64);
    for r in runs {
        w.u64(r.start)
            .u64(r.len)
            .u8(r.kind as u8)
            .bytes(&[0; 7])
            .u64(r.pack)
            .u64(r.pack_off);
    }
    w.seal()
}

/// Decodes a layer file. `packs` says which packs exist and their data length, so that every
/// DATA run is checked to lie inside a pack of this store.
pub(crate) fn decode_layer(
    b: &[u8],
    object: &str,
    pack_data_len: impl Fn(u64) -> Option<u64>,
    max_disk: u64,
) -> Result<Vec<Run>> {
    let mut r = open_sealed(b, LAYER_MAGIC, object)?;
    let n = r.u64()?;
    if n > (r.remaining() / RUN_BYTES) as u64 {
        return Err(corrupt(object, format!("claims {n} runs, holds fewer")));
    }
    let mut runs = Vec::with_capacity(n as usize);
    let mut prev_end = 0u64;
    for i in 0..n {
        let start = r.u64()?;
        let len = r.u64()?;
        let kind = r.u8()?;
        r.zero(7, "run field")?;
        let pack = r.u64()?;
        let pack_off = r.u64()?;
        let bad = |why: String| corrupt(object, format!("run {i}: {why}"));
        let kind = RunKind::from_code(kind).ok_or_else(|| bad(format!("unknown kind {kind}")))?;
        let end = start
            .checked_add(len)
            .filter(|&e| len > 0 && e <= max_disk)
            .ok_or_else(|| bad(format!("range {start}+{len} is empty or past {max_disk}")))?;
        if start < prev_end {
            return Err(bad(format!(
                "starts at {start}, before the previous run's end {prev_end}"
            )));
        }
        prev_end = end;
        match kind {
            RunKind::Data => {
                let data_len = pack_data_len(pack)
                    .ok_or_else(|| bad(format!("refers to unknown pack {pack}")))?;
                let ok = pack_off % CHUNK == start % CHUNK
                    && pack_off >= CHUNK
                    && pack_off.checked_add(len).is_some_and(|e| e <= data_len);
                if !ok {
                    return Err(bad(format!(
                        "pack range {pack_off}+{len} is misaligned or outside pack {pack} ({data_len} bytes)"
                    )));
                }
            }
            _ => {
                if pack != 0 || pack_off != 0 {
                    return Err(bad("a ZERO or DISCARD run names a pack".into()));
                }
            }
        }
        runs.push(Run {
            start,
            len,
            kind,
            pack,
            pack_off,
        });
    }
    r.done()?;
    Ok(runs)
}

// ---- pack ---------------------------------------------------------------------------------

/// The first chunk of a pack: magic (8), major (2), minor (2), reserved (4), store id (16),
/// pack id (8), CRC32 of the 40 bytes before it (4), zeros to 4096.
pub(crate) fn encode_pack_head(store_id: &[u8; 16], pack: u64) -> Vec<u8> {
    let mut w = W::default();
    put_head(&mut w, PACK_MAGIC);
    w.bytes(store_id).u64(pack);
    let mut v = w.seal();
    v.resize(CHUNK as usize, 0);
    v
}

/// The first chunk of a bundle (whole packs copied into one object): magic (8), major (2),
/// minor (2), reserved (4), store id (16), bundle id (8), CRC32 of the 40 bytes before it (4),
/// zeros to 4096.
pub(crate) fn encode_bundle_head(store_id: &[u8; 16], bundle: u64) -> Vec<u8> {
    let mut w = W::default();
    put_head(&mut w, BUNDLE_MAGIC);
    w.bytes(store_id).u64(bundle);
    let mut v = w.seal();
    v.resize(CHUNK as usize, 0);
    v
}

/// Checks a bundle's header chunk: its magic and version, that it belongs to this store and
/// is bundle `id`, its CRC, and zeros after it.
pub(crate) fn check_bundle_head(
    b: &[u8],
    store_id: &[u8; 16],
    id: u64,
    object: &str,
) -> Result<()> {
    if b.len() != CHUNK as usize {
        return Err(corrupt(object, "header chunk cut short"));
    }
    let mut r = open_sealed(&b[..44], BUNDLE_MAGIC, object)?;
    if r.arr16()? != *store_id || r.u64()? != id {
        return Err(corrupt(object, "belongs to another store or bundle"));
    }
    r.done()?;
    if b[44..].iter().any(|&x| x != 0) {
        return Err(corrupt(object, "bytes after the header are not zeros"));
    }
    Ok(())
}

/// The pack's footer after its chunk checksums: magic (8), chunk count (8), data length (8),
/// CRC32 of the checksum table and the 24 bytes before it (4).
pub(crate) const PACK_FOOTER: u64 = 28;

pub(crate) fn encode_pack_tail(crcs: &[u32], data_len: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(crcs.len() * 4 + PACK_FOOTER as usize);
    for c in crcs {
        v.extend_from_slice(&c.to_le_bytes());
    }
    v.extend_from_slice(PACK_END_MAGIC);
    v.extend_from_slice(&(crcs.len() as u64).to_le_bytes());
    v.extend_from_slice(&data_len.to_le_bytes());
    let crc = crc32fast::hash(&v);
    v.extend_from_slice(&crc.to_le_bytes());
    v
}

/// Chunks that hold `data_len` bytes.
pub(crate) fn chunks_for(data_len: u64) -> u64 {
    data_len.div_ceil(CHUNK)
}

/// Object size of a layer of `runs` runs: head, run count, runs, CRC.
pub(crate) fn layer_object_len(runs: u64) -> u64 {
    runs.saturating_mul(RUN_BYTES as u64).saturating_add(28)
}

/// Total object size of a pack with `data_len` bytes of data (header chunk included).
pub(crate) fn pack_object_len(data_len: u64) -> u64 {
    data_len + chunks_for(data_len) * 4 + PACK_FOOTER
}

/// Checks a pack's checksum table and footer (`tail` = the object's bytes after its data).
pub(crate) fn check_pack_tail(tail: &[u8], data_len: u64, object: &str) -> Result<()> {
    let n = chunks_for(data_len);
    if tail.len() as u64 != n * 4 + PACK_FOOTER {
        return Err(corrupt(object, "checksum table has the wrong length"));
    }
    let body = unseal(tail, object)?;
    let f = &body[body.len() - 24..];
    if &f[..8] != PACK_END_MAGIC {
        return Err(corrupt(object, "bad footer magic"));
    }
    let count = u64::from_le_bytes(f[8..16].try_into().expect("8"));
    let len = u64::from_le_bytes(f[16..24].try_into().expect("8"));
    if count != n || len != data_len {
        return Err(corrupt(
            object,
            format!("footer says {count} chunks of {len} bytes"),
        ));
    }
    Ok(())
}
