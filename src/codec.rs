//! The little-endian encoder and hostile-input decoder shared by the crate's versioned,
//! checksummed metadata files (the replica store's manifest, layer and resume files in
//! `replica/format.rs`, the tracker's state file in `tracker/persist/`).
//!
//! Every such file starts with the same 16-byte head, magic (8), major (2), minor (2),
//! reserved (4, zero), and ends in a CRC-32 (IEEE, `crc32fast`) of every byte before it. This
//! module owns only those bytes; what a fault means (a corrupt replica object, a state file the
//! tracker will not trust) is decided by the caller, through [`Fault`].

use std::fmt;

/// What is wrong with a file, as seen by the shared reader. Each owner maps it into its own
/// error type (`ReplicaError::Corrupt` / `UnsupportedVersion`, the tracker's `StateFileError`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fault {
    /// The object or file being read, as the caller named it.
    pub object: String,
    pub kind: FaultKind,
}

/// The ways the shared layer can find a file wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// A field reaches past the end: it starts at byte `at` and needs `need` more bytes.
    Short { at: usize, need: usize },
    /// A reserved field holds a non-zero byte.
    NotZero { what: String },
    /// Bytes remain after the last field.
    Trailing { extra: usize },
    /// Fewer than 4 bytes: not even room for the checksum.
    NoChecksum,
    /// The CRC-32 does not match.
    Checksum,
    /// The magic bytes are not the expected ones.
    Magic,
    /// A major version this build does not read.
    Version(u16),
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::Short { at, need } => write!(f, "ends at byte {at} (needs {need} more)"),
            FaultKind::NotZero { what } => write!(f, "reserved {what} is not zero"),
            FaultKind::Trailing { extra } => write!(f, "{extra} unexpected bytes at the end"),
            FaultKind::NoChecksum => write!(f, "too short for a checksum"),
            FaultKind::Checksum => write!(f, "checksum mismatch"),
            FaultKind::Magic => write!(f, "bad magic"),
            FaultKind::Version(v) => write!(f, "unsupported major version {v}"),
        }
    }
}

fn fault(object: &str, kind: FaultKind) -> Fault {
    Fault {
        object: object.to_string(),
        kind,
    }
}

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
    /// The 16-byte head: magic (8), major (2), minor (2), reserved (4).
    pub fn head(&mut self, magic: &[u8; 8], major: u16, minor: u16) -> &mut Self {
        self.bytes(magic).u16(major).u16(minor).u32(0)
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
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Fault> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| {
                fault(
                    self.object,
                    FaultKind::Short {
                        at: self.pos,
                        need: n,
                    },
                )
            })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8, Fault> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, Fault> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2")))
    }
    pub fn u32(&mut self) -> Result<u32, Fault> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    pub fn u64(&mut self) -> Result<u64, Fault> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    pub fn arr16(&mut self) -> Result<[u8; 16], Fault> {
        Ok(self.take(16)?.try_into().expect("16"))
    }
    pub fn zero(&mut self, n: usize, what: &str) -> Result<(), Fault> {
        if self.take(n)?.iter().any(|&b| b != 0) {
            return Err(fault(
                self.object,
                FaultKind::NotZero {
                    what: what.to_string(),
                },
            ));
        }
        Ok(())
    }
    pub fn done(&self) -> Result<(), Fault> {
        if self.pos != self.b.len() {
            return Err(fault(
                self.object,
                FaultKind::Trailing {
                    extra: self.b.len() - self.pos,
                },
            ));
        }
        Ok(())
    }
    pub fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }
}

/// Checks the trailing CRC32 and returns the bytes before it.
pub(crate) fn unseal<'a>(b: &'a [u8], object: &str) -> Result<&'a [u8], Fault> {
    if b.len() < 4 {
        return Err(fault(object, FaultKind::NoChecksum));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    let want = u32::from_le_bytes(crc.try_into().expect("4"));
    if crc32fast::hash(body) != want {
        return Err(fault(object, FaultKind::Checksum));
    }
    Ok(body)
}

/// Reads the 16-byte head: the magic must be `magic`, the major version `major` (any minor is
/// accepted), the reserved bytes zero.
pub(crate) fn check_head(r: &mut R<'_>, magic: &[u8; 8], major: u16) -> Result<(), Fault> {
    if r.take(8)? != magic {
        return Err(fault(r.object, FaultKind::Magic));
    }
    let got = r.u16()?;
    let _minor = r.u16()?;
    if got != major {
        return Err(fault(r.object, FaultKind::Version(got)));
    }
    r.zero(4, "header field")
}

/// Opens a sealed file: CRC first (a torn or flipped file fails here), then magic and version.
/// The version is checked before the CRC when the magic matches, so that a file from a later
/// major version is reported as such even if its layout differs.
pub(crate) fn open_sealed<'a>(
    b: &'a [u8],
    magic: &[u8; 8],
    major: u16,
    object: &'a str,
) -> Result<R<'a>, Fault> {
    if b.len() >= 12 && &b[..8] == magic {
        let got = u16::from_le_bytes([b[8], b[9]]);
        if got != major {
            return Err(fault(object, FaultKind::Version(got)));
        }
    }
    let body = unseal(b, object)?;
    let mut r = R::new(body, object);
    check_head(&mut r, magic, major)?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_head_reads_back_and_every_flip_is_caught() {
        let mut w = W::default();
        w.head(b"TESTMAGI", 3, 9).u64(42);
        let b = w.seal();
        let mut r = open_sealed(&b, b"TESTMAGI", 3, "t").unwrap();
        assert_eq!(r.u64(), Ok(42));
        assert_eq!(r.done(), Ok(()));
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert!(open_sealed(&c, b"TESTMAGI", 3, "t").is_err(), "flip at {i}");
        }
        let err = open_sealed(&b, b"TESTMAGI", 4, "t").err().unwrap();
        assert_eq!(err.kind, FaultKind::Version(3));
    }
}
