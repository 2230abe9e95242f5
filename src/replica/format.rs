//! The store's files: manifest, layer index and pack. Layouts are in `docs/REPLICA.md`.
//! Every reader treats its input as hostile: lengths are checked before use, a CRC32 covers
//! every byte, unknown major versions and non-zero reserved fields are refused.

use super::error::{corrupt, ReplicaError, Result};
use super::map::{Run, RunKind};
use crate::codec::{self, Fault, FaultKind};

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

pub(crate) use crate::codec::{R, W};

/// A fault of the shared reader (`crate::codec`) as a replica error: a later major version is
/// `UnsupportedVersion`, anything else `Corrupt`, with the reader's message.
impl From<Fault> for ReplicaError {
    fn from(f: Fault) -> Self {
        match f.kind {
            FaultKind::Version(version) => ReplicaError::UnsupportedVersion {
                object: f.object,
                version,
            },
            kind => corrupt(&f.object, kind.to_string()),
        }
    }
}

/// Checks the trailing CRC32 and returns the bytes before it.
pub(crate) fn unseal<'a>(b: &'a [u8], object: &str) -> Result<&'a [u8]> {
    Ok(codec::unseal(b, object)?)
}

/// Magic and version header shared by the manifest, layer and resume files:
/// magic (8), major (2), minor (2), reserved (4).
pub(crate) fn put_head(w: &mut W, magic: &[u8; 8]) {
    w.head(magic, STORE_FORMAT_MAJOR, STORE_FORMAT_MINOR);
}

/// Opens a sealed store file (see `codec::open_sealed`): CRC, magic, this build's major version.
pub(crate) fn open_sealed<'a>(b: &'a [u8], magic: &[u8; 8], object: &'a str) -> Result<R<'a>> {
    Ok(codec::open_sealed(b, magic, STORE_FORMAT_MAJOR, object)?)
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
