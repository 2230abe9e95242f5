//! The stream header: what a delta is about (disk, generation, checkpoints, geometry) and how
//! it is protected (cipher suite, key-derivation salt, nonce prefix).

use super::error::{Result, StreamError};
use super::format::*;
use crate::tracker::GenerationId;

/// How record frames are protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CipherSuite {
    /// No encryption: frames carry a CRC32 against accidents, nothing against an attacker.
    None,
    /// AES-256-GCM with a per-stream key from HKDF-SHA256 (see `docs/FORMAT.md`).
    Aes256GcmHkdfSha256,
}

impl CipherSuite {
    pub(crate) fn code(self) -> u16 {
        match self {
            CipherSuite::None => CIPHER_NONE,
            CipherSuite::Aes256GcmHkdfSha256 => CIPHER_AES256GCM_HKDF_SHA256,
        }
    }
}

/// The parsed stream header. Every field is covered by each record frame's CRC chain and, when
/// encrypted, by each frame's associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamHeader {
    /// Format version (1).
    pub version: u16,
    /// Required feature bits (`FEATURE_REQUIRED_*`); a reader refuses bits it does not know.
    pub required_features: u32,
    /// Optional feature bits (`FEATURE_OPTIONAL_*`); a reader ignores bits it does not know.
    pub optional_features: u32,
    /// Identifies the replicated disk.
    pub disk_id: [u8; 16],
    /// The tracker generation the checkpoints belong to.
    pub generation: GenerationId,
    /// The checkpoint the replica must be at before this delta.
    pub from_seq: u64,
    /// The checkpoint the replica is at after this delta (strictly greater than `from_seq`).
    pub to_seq: u64,
    /// Disk size in bytes at `from_seq` (RESIZE records change it).
    pub disk_size: u64,
    /// Block size in bytes (a power of two, 512 to 1 MiB).
    pub block_size: u32,
    /// The cipher suite of the record frames.
    pub cipher: CipherSuite,
    /// HKDF salt (all zero when not encrypted).
    pub kdf_salt: [u8; 32],
    /// First four bytes of every AES-GCM nonce (all zero when not encrypted).
    pub nonce_prefix: [u8; 4],
    /// Largest raw payload of the writer's DATA records (at most 1 MiB).
    pub max_record_payload: u32,
}

impl StreamHeader {
    /// Serializes the v1 header body (128 bytes).
    pub(crate) fn write(&self, b: &mut [u8; HEADER_LEN_V1]) {
        b.fill(0);
        b[0..8].copy_from_slice(&HEADER_MAGIC);
        put_u16(b, 8, self.version);
        put_u16(b, 10, HEADER_LEN_V1 as u16);
        put_u32(b, 12, self.required_features);
        put_u32(b, 16, self.optional_features);
        b[20..36].copy_from_slice(&self.disk_id);
        b[36..52].copy_from_slice(&self.generation.0);
        put_u64(b, 52, self.from_seq);
        put_u64(b, 60, self.to_seq);
        put_u64(b, 68, self.disk_size);
        put_u32(b, 76, self.block_size);
        put_u16(b, 80, self.cipher.code());
        b[84..116].copy_from_slice(&self.kdf_salt);
        b[116..120].copy_from_slice(&self.nonce_prefix);
        put_u32(b, 120, self.max_record_payload);
    }

    /// Parses and validates a header body of any length the frame layer accepted.
    pub(crate) fn parse(b: &[u8]) -> Result<StreamHeader> {
        if b.len() < 10 || b[0..8] != HEADER_MAGIC {
            return Err(StreamError::BadMagic {
                what: "stream header",
            });
        }
        let version = get_u16(b, 8);
        if version != FORMAT_VERSION {
            return Err(StreamError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if b.len() < HEADER_LEN_V1 {
            return Err(StreamError::InvalidHeader {
                reason: "header shorter than the 128 bytes of version 1",
            });
        }
        if usize::from(get_u16(b, 10)) != b.len() {
            return Err(StreamError::InvalidHeader {
                reason: "header length field disagrees with the frame length",
            });
        }
        let required_features = get_u32(b, 12);
        let unknown = required_features & !KNOWN_REQUIRED_FEATURES;
        if unknown != 0 {
            return Err(StreamError::UnknownRequiredFeature { bits: unknown });
        }
        let cipher = match get_u16(b, 80) {
            CIPHER_NONE => CipherSuite::None,
            CIPHER_AES256GCM_HKDF_SHA256 => CipherSuite::Aes256GcmHkdfSha256,
            suite => return Err(StreamError::UnsupportedCipher { suite }),
        };
        if get_u16(b, 82) != 0 || get_u32(b, 124) != 0 {
            return Err(StreamError::InvalidHeader {
                reason: "reserved header fields are not zero",
            });
        }
        let mut disk_id = [0u8; 16];
        disk_id.copy_from_slice(&b[20..36]);
        let mut generation = [0u8; 16];
        generation.copy_from_slice(&b[36..52]);
        let mut kdf_salt = [0u8; 32];
        kdf_salt.copy_from_slice(&b[84..116]);
        let mut nonce_prefix = [0u8; 4];
        nonce_prefix.copy_from_slice(&b[116..120]);
        let h = StreamHeader {
            version,
            required_features,
            optional_features: get_u32(b, 16),
            disk_id,
            generation: GenerationId(generation),
            from_seq: get_u64(b, 52),
            to_seq: get_u64(b, 60),
            disk_size: get_u64(b, 68),
            block_size: get_u32(b, 76),
            cipher,
            kdf_salt,
            nonce_prefix,
            max_record_payload: get_u32(b, 120),
        };
        h.validate()?;
        Ok(h)
    }

    /// Checks the invariants shared by the encoder's configuration and the decoder.
    pub(crate) fn validate(&self) -> Result<()> {
        check_disk_size("stream header", self.disk_size)?;
        if self.to_seq <= self.from_seq {
            return Err(StreamError::InvalidHeader {
                reason: "to_seq must be greater than from_seq",
            });
        }
        if !self.block_size.is_power_of_two()
            || !(512..=MAX_RECORD_PAYLOAD as u32).contains(&self.block_size)
        {
            return Err(StreamError::InvalidHeader {
                reason: "block size must be a power of two from 512 to 1 MiB",
            });
        }
        if self.max_record_payload == 0 || self.max_record_payload as usize > MAX_RECORD_PAYLOAD {
            return Err(StreamError::InvalidHeader {
                reason: "max record payload must be 1 byte to 1 MiB",
            });
        }
        if self.cipher == CipherSuite::None
            && (self.kdf_salt != [0; 32] || self.nonce_prefix != [0; 4])
        {
            return Err(StreamError::InvalidHeader {
                reason: "salt and nonce prefix must be zero without a cipher",
            });
        }
        Ok(())
    }
}

/// A disk size the format allows (header or RESIZE): 1 byte to [`MAX_DISK_SIZE`].
pub(crate) fn check_disk_size(what: &'static str, size: u64) -> Result<()> {
    if size == 0 || size > MAX_DISK_SIZE {
        return Err(StreamError::InvalidDiskSize {
            what,
            size,
            max: MAX_DISK_SIZE,
        });
    }
    Ok(())
}
