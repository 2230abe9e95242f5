//! The wire form of a hash list (`docs/RESYNC.md`).

use ring::{hkdf, hmac};

use super::{check_block_size, check_disk_size, HashList, ResyncError, HASH_LEN};
use crate::codec::{open_sealed, W};
use crate::stream::Secret;

/// The first 8 bytes of a hash list.
pub const MAGIC: [u8; 8] = *b"BDRESYNC";
/// The major version written and read.
pub const FORMAT_MAJOR: u16 = 1;
/// The minor version written (any minor of the major version is read).
pub const FORMAT_MINOR: u16 = 0;

/// Flag: the list ends in an HMAC-SHA256 tag (before the CRC).
const FLAG_AUTHENTICATED: u32 = 1;
/// Bytes of the tag.
const TAG_LEN: usize = 32;
/// HKDF info of the tag's key.
const HKDF_INFO: &[u8] = b"blockdelta resync v1";

/// The tag's key: HKDF-SHA256(salt = the list's salt, IKM = the secret, info).
fn tag_key(secret: &Secret, salt: &[u8; 16]) -> hmac::Key {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(secret.bytes());
    let info = [HKDF_INFO];
    let okm = prk
        .expand(&info, hmac::HMAC_SHA256)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    hmac::Key::from(okm)
}

/// Bytes before the run map: head 16, disk size 8, block size 4, flags 4, salt 16,
/// data count 8, run count 8.
const FIXED_LEN: usize = 64;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a minimal LEB128 varint of at most 10 bytes from `b` at `*pos`.
fn get_varint(b: &[u8], pos: &mut usize) -> Result<u64, ResyncError> {
    let mut v = 0u64;
    for i in 0..10 {
        let byte = *b
            .get(*pos)
            .ok_or(ResyncError::Truncated { at: *pos, need: 1 })?;
        *pos += 1;
        let bits = u64::from(byte & 0x7f);
        if i == 9 && bits > 1 {
            return Err(ResyncError::BadRunMap("a run length overflows 64 bits"));
        }
        v |= bits << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return Err(ResyncError::BadRunMap(
                    "a run length is not minimally encoded",
                ));
            }
            return Ok(v);
        }
    }
    Err(ResyncError::BadRunMap(
        "a run length is longer than 10 bytes",
    ))
}

impl HashList {
    /// The wire form: `docs/RESYNC.md`. About 16 bytes per data block, a few bytes per run of
    /// zero blocks. Protected against accidents (CRC-32) only: send it over an authenticated
    /// channel, or use [`HashList::to_bytes_authenticated`].
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode(None)
    }

    /// The wire form with an HMAC-SHA256 tag under a key derived from `secret` (the
    /// replication secret, as for the delta stream) and the list's salt: the sender reads it
    /// with [`HashList::decode_authenticated`], which refuses any change in transit.
    pub fn to_bytes_authenticated(&self, secret: &Secret) -> Vec<u8> {
        self.encode(Some(secret))
    }

    fn encode(&self, secret: Option<&Secret>) -> Vec<u8> {
        let mut w = W(Vec::with_capacity(
            FIXED_LEN + self.runs.len() * 3 + self.hashes.len() * HASH_LEN + TAG_LEN + 4,
        ));
        let flags = if secret.is_some() {
            FLAG_AUTHENTICATED
        } else {
            0
        };
        w.head(&MAGIC, FORMAT_MAJOR, FORMAT_MINOR)
            .u64(self.disk_size)
            .u32(self.block_size)
            .u32(flags)
            .bytes(&self.salt)
            .u64(self.hashes.len() as u64)
            .u64(self.runs.len() as u64);
        for &r in &self.runs {
            put_varint(&mut w.0, r);
        }
        for h in &self.hashes {
            w.bytes(h);
        }
        if let Some(secret) = secret {
            let tag = hmac::sign(&tag_key(secret, &self.salt), &w.0);
            w.bytes(tag.as_ref());
        }
        w.seal()
    }

    /// Reads a hash list from hostile bytes: the CRC-32 first, then magic and version, then
    /// every field; every count is checked against the disk size, the block size and the
    /// bytes actually present before anything is allocated (memory stays in proportion to the
    /// input). Never panics. A list with an authentication tag is refused
    /// ([`ResyncError::UnexpectedTag`]): read it with [`HashList::decode_authenticated`].
    pub fn decode(bytes: &[u8]) -> Result<HashList, ResyncError> {
        Self::decode_with(bytes, None)
    }

    /// Reads a list made by [`HashList::to_bytes_authenticated`] with the same secret: as
    /// [`HashList::decode`], and the tag is verified before any count is trusted. A list
    /// without a tag is [`ResyncError::Unauthenticated`], a wrong tag (changed bytes, another
    /// secret) [`ResyncError::AuthenticationFailed`].
    pub fn decode_authenticated(bytes: &[u8], secret: &Secret) -> Result<HashList, ResyncError> {
        Self::decode_with(bytes, Some(secret))
    }

    fn decode_with(bytes: &[u8], secret: Option<&Secret>) -> Result<HashList, ResyncError> {
        let mut r = open_sealed(bytes, &MAGIC, FORMAT_MAJOR, "hash list")?;
        let disk_size = r.u64()?;
        let block_size = r.u32()?;
        let flags = r.u32()?;
        let salt = r.arr16()?;
        let data_count = r.u64()?;
        let run_count = r.u64()?;
        // Out of range here means the list is damaged or forged (not a caller's argument).
        check_disk_size(disk_size).map_err(|_| ResyncError::BadField {
            what: "disk size",
            value: disk_size,
        })?;
        check_block_size(block_size).map_err(|_| ResyncError::BadField {
            what: "block size",
            value: u64::from(block_size),
        })?;
        if flags & !FLAG_AUTHENTICATED != 0 {
            return Err(ResyncError::ReservedNotZero("flags"));
        }
        match (flags & FLAG_AUTHENTICATED != 0, secret) {
            (false, None) => {}
            (true, None) => return Err(ResyncError::UnexpectedTag),
            (false, Some(_)) => return Err(ResyncError::Unauthenticated),
            (true, Some(secret)) => {
                // The signed bytes: everything before the tag (the CRC is already checked).
                let body = &bytes[..bytes.len() - 4];
                let signed_len = body
                    .len()
                    .checked_sub(TAG_LEN)
                    .filter(|&n| n >= FIXED_LEN)
                    .ok_or(ResyncError::Truncated {
                        at: FIXED_LEN,
                        need: TAG_LEN,
                    })?;
                hmac::verify(
                    &tag_key(secret, &salt),
                    &body[..signed_len],
                    &body[signed_len..],
                )
                .map_err(|_| ResyncError::AuthenticationFailed)?;
                r = crate::codec::R::new(&body[FIXED_LEN..signed_len], "hash list");
            }
        }
        let block_count = disk_size.div_ceil(u64::from(block_size));
        if data_count > block_count {
            return Err(ResyncError::BadCount {
                what: "data block count",
                value: data_count,
                max: block_count,
            });
        }
        // Every run but the first holds a block; a run takes at least one byte.
        let max_runs = block_count.saturating_add(1).min(r.remaining() as u64);
        if run_count > max_runs {
            return Err(ResyncError::BadCount {
                what: "run count",
                value: run_count,
                max: max_runs,
            });
        }
        let hash_bytes = (r.remaining() as u64).saturating_sub(run_count);
        if data_count > hash_bytes / HASH_LEN as u64 {
            return Err(ResyncError::BadCount {
                what: "data block count",
                value: data_count,
                max: hash_bytes / HASH_LEN as u64,
            });
        }
        let map_and_hashes = r.take(r.remaining())?;
        let mut pos = 0usize;
        let mut runs = Vec::with_capacity(run_count as usize);
        let (mut total, mut data) = (0u64, 0u64);
        for i in 0..run_count as usize {
            let n = get_varint(map_and_hashes, &mut pos)?;
            if n == 0 && i > 0 {
                return Err(ResyncError::BadRunMap(
                    "a run other than the first is empty",
                ));
            }
            total = total.checked_add(n).filter(|&t| t <= block_count).ok_or(
                ResyncError::BadRunMap("the runs hold more blocks than the disk"),
            )?;
            if i % 2 == 1 {
                data += n;
            }
            runs.push(n);
        }
        if total != block_count {
            return Err(ResyncError::BadRunMap(
                "the runs hold fewer blocks than the disk",
            ));
        }
        if data != data_count {
            return Err(ResyncError::BadRunMap(
                "the data runs do not hold the data block count",
            ));
        }
        let rest = &map_and_hashes[pos..];
        let want = data_count as usize * HASH_LEN;
        if rest.len() < want {
            return Err(ResyncError::Truncated {
                at: FIXED_LEN + pos,
                need: want,
            });
        }
        if rest.len() > want {
            return Err(ResyncError::Trailing {
                extra: rest.len() - want,
            });
        }
        let hashes = rest
            .chunks_exact(HASH_LEN)
            .map(|c| c.try_into().expect("16"))
            .collect();
        Ok(HashList {
            disk_size,
            block_size,
            salt,
            runs,
            hashes,
        })
    }
}
