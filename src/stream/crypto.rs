//! Per-stream keys and frame sealing (AES-256-GCM, key from HKDF-SHA256).
//!
//! Key = HKDF-SHA256(salt = header salt, IKM = caller secret,
//! info = "blockdelta stream v1" || disk id || generation id). The salt is random per stream,
//! so two streams never share a key even when the caller's secret and everything else repeat.
//! Nonce = 4-byte header prefix || frame sequence number (u64 LE); sequence numbers strictly
//! increase within a stream, so a nonce is never reused under one key.

use std::fmt;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

use super::error::{Result, StreamError};
use super::format::TAG_LEN;
use super::header::StreamHeader;

/// HKDF info prefix; followed by the disk id and the generation id.
pub(crate) const HKDF_INFO: &[u8] = b"blockdelta stream v1";

/// The caller's secret input keying material. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

/// The shortest secret accepted, in bytes: an empty or short secret would make encryption a
/// formality.
pub const MIN_SECRET_LEN: usize = 16;

impl Secret {
    /// Wraps secret bytes (copied): at least [`MIN_SECRET_LEN`] bytes, else
    /// [`StreamError::SecretTooShort`]. 32 random bytes are recommended.
    ///
    /// ```
    /// use blockdelta::{Secret, StreamError};
    /// assert!(Secret::new(&[7u8; 32]).is_ok());
    /// assert!(matches!(Secret::new(b""), Err(StreamError::SecretTooShort { len: 0, min: 16 })));
    /// ```
    pub fn new(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < MIN_SECRET_LEN {
            return Err(StreamError::SecretTooShort {
                len: bytes.len(),
                min: MIN_SECRET_LEN,
            });
        }
        Ok(Secret(bytes.to_vec()))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes, redacted>)", self.0.len())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Best effort: the bytes do not linger in freed memory.
        for b in self.0.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference; a volatile write keeps the
            // compiler from eliding the wipe of memory that is about to be freed.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn random_fill(buf: &mut [u8]) -> Result<()> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| StreamError::Random)
}

/// Derives the stream key from the caller's secret and the header.
pub(crate) fn derive_key(secret: &Secret, h: &StreamHeader) -> Result<LessSafeKey> {
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, &h.kdf_salt);
    let prk = salt.extract(secret.bytes());
    let info: [&[u8]; 3] = [HKDF_INFO, &h.disk_id, &h.generation.0];
    let okm = prk
        .expand(&info, &AES_256_GCM)
        .map_err(|_| StreamError::InvalidArgument {
            reason: "HKDF could not produce a 32-byte key",
        })?;
    let key = UnboundKey::from(okm);
    Ok(LessSafeKey::new(key))
}

fn nonce(prefix: [u8; 4], seq: u64) -> Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    n[..4].copy_from_slice(&prefix);
    n[4..].copy_from_slice(&seq.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Encrypts `body[..body.len() - TAG_LEN]` in place and writes the tag into the last 16 bytes.
pub(crate) fn seal(
    key: &LessSafeKey,
    prefix: [u8; 4],
    seq: u64,
    aad: &[u8],
    body: &mut [u8],
) -> Result<()> {
    let split = body.len() - TAG_LEN;
    let (plain, tag_out) = body.split_at_mut(split);
    let tag = key
        .seal_in_place_separate_tag(nonce(prefix, seq), Aad::from(aad), plain)
        .map_err(|_| StreamError::InvalidArgument {
            reason: "frame too large to seal",
        })?;
    tag_out.copy_from_slice(tag.as_ref());
    Ok(())
}

/// Verifies and decrypts `body` (ciphertext || tag) in place; returns the plaintext length.
pub(crate) fn open(
    key: &LessSafeKey,
    prefix: [u8; 4],
    seq: u64,
    aad: &[u8],
    body: &mut [u8],
) -> Result<usize> {
    if body.len() < TAG_LEN {
        return Err(StreamError::MalformedFrame {
            reason: "sealed body shorter than its tag",
        });
    }
    key.open_in_place(nonce(prefix, seq), Aad::from(aad), body)
        .map(|p| p.len())
        .map_err(|_| StreamError::AuthenticationFailed { seq })
}
