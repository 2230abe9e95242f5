//! Wire constants and little-endian field helpers. The layout is documented in `docs/FORMAT.md`;
//! every number here appears there, and the test vectors pin them.

/// Magic at the start of every frame.
pub(crate) const FRAME_MAGIC: [u8; 4] = *b"BDfr";
/// Magic at the start of the stream header body.
pub(crate) const HEADER_MAGIC: [u8; 8] = *b"BDSTREAM";
/// The format version this implementation writes and reads.
pub const FORMAT_VERSION: u16 = 1;

/// Frame header: magic(4) type(1) flags(1) reserved(2) seq(8) body_len(4) crc32(4).
pub(crate) const FRAME_HEADER_LEN: usize = 24;
/// The part of the frame header covered by the CRC and the AEAD associated data.
pub(crate) const FRAME_HEADER_SIGNED_LEN: usize = 20;
pub(crate) const FRAME_TYPE_HEADER: u8 = 1;
pub(crate) const FRAME_TYPE_RECORD: u8 = 2;

/// Length of the v1 stream header body.
pub(crate) const HEADER_LEN_V1: usize = 128;
/// Largest stream header body a reader accepts (room for optional fields of later versions).
pub(crate) const MAX_HEADER_LEN: usize = 4096;
/// The stream header frame as written by this implementation.
pub(crate) const HEADER_FRAME_LEN: usize = FRAME_HEADER_LEN + HEADER_LEN_V1;

/// Record header inside a frame body: type(2) reserved(2) value_len(4).
pub(crate) const RECORD_HEADER_LEN: usize = 8;
/// The must-understand bit of a record type.
pub const MUST_UNDERSTAND: u16 = 0x8000;

/// Record type codes (see `docs/FORMAT.md`).
pub(crate) const REC_DATA: u16 = 0x8001;
pub(crate) const REC_ZERO: u16 = 0x8002;
pub(crate) const REC_DISCARD: u16 = 0x8003;
pub(crate) const REC_RESIZE: u16 = 0x8004;
pub(crate) const REC_BOOKMARK: u16 = 0x0005;
pub(crate) const REC_END: u16 = 0x80FF;

/// DATA value fields before the payload: offset(8) raw_len(4) stored_len(4) codec(1) reserved(7).
pub(crate) const DATA_FIELDS_LEN: usize = 24;
/// ZERO and DISCARD value: offset(8) len(8).
pub(crate) const RANGE_FIELDS_LEN: usize = 16;
/// RESIZE value: new_size(8).
pub(crate) const RESIZE_FIELDS_LEN: usize = 8;
/// BOOKMARK value fields before the label: id(8) timestamp_ns(8) kind(1) reserved(1) label_len(2) reserved(4).
pub(crate) const BOOKMARK_FIELDS_LEN: usize = 24;
/// END value: record_count(8) byte_count(8) checksum(4) reserved(4).
pub(crate) const END_FIELDS_LEN: usize = 24;

/// Largest raw (decoded) payload of one DATA record, and largest stored payload.
pub const MAX_RECORD_PAYLOAD: usize = 1 << 20;
/// Largest disk size a stream may declare (header) or RESIZE to: 2^60 bytes, the tracker's
/// [`MAX_DISK_SIZE`](crate::tracker::MAX_DISK_SIZE). A RESIZE to 0 is refused too.
pub const MAX_DISK_SIZE: u64 = crate::tracker::MAX_DISK_SIZE;
/// Largest bookmark label in bytes (UTF-8).
pub const MAX_LABEL_LEN: usize = 1024;
/// AES-256-GCM tag length.
pub(crate) const TAG_LEN: usize = 16;

/// Largest record frame body a reader accepts.
pub(crate) const MAX_RECORD_BODY: usize =
    RECORD_HEADER_LEN + DATA_FIELDS_LEN + MAX_RECORD_PAYLOAD + TAG_LEN;

/// Required feature: DATA records may use the lz4 codec.
pub const FEATURE_REQUIRED_LZ4: u32 = 1;
/// Every required feature this reader understands.
pub(crate) const KNOWN_REQUIRED_FEATURES: u32 = FEATURE_REQUIRED_LZ4;
/// Optional feature: the writer replaced all-zero records by ZERO records.
pub const FEATURE_OPTIONAL_ZERO_DETECTION: u32 = 1;

/// Cipher suite numbers.
pub(crate) const CIPHER_NONE: u16 = 0;
pub(crate) const CIPHER_AES256GCM_HKDF_SHA256: u16 = 1;

/// Codec numbers of DATA records.
pub(crate) const CODEC_RAW: u8 = 0;
pub(crate) const CODEC_LZ4: u8 = 1;

pub(crate) fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

// The getters take fixed-size slices the callers have already bounds-checked; they index
// with constant widths so a bad `at` is a programming error caught by the slice bounds.
pub(crate) fn get_u16(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[at..at + 2]);
    u16::from_le_bytes(a)
}
pub(crate) fn get_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}
pub(crate) fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// True when every byte of `buf` is zero.
///
/// Works on 64-byte blocks of 8 words OR-ed together, which the compiler turns into wide
/// vector loads; stops at the first block that is not zero.
pub fn is_all_zero(buf: &[u8]) -> bool {
    let mut chunks = buf.chunks_exact(64);
    for c in &mut chunks {
        let mut acc = 0u64;
        for w in c.chunks_exact(8) {
            acc |= u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        }
        if acc != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| b == 0)
}

/// Writes the signed part of a frame header (everything but the CRC) into `dst[..20]`.
pub(crate) fn put_frame_header(dst: &mut [u8], frame_type: u8, seq: u64, body_len: u32) {
    dst[0..4].copy_from_slice(&FRAME_MAGIC);
    dst[4] = frame_type;
    dst[5] = 0;
    put_u16(dst, 6, 0);
    put_u64(dst, 8, seq);
    put_u32(dst, 16, body_len);
}

/// CRC32 of a frame: the signed header part followed by the body as on the wire.
pub(crate) fn frame_crc(signed_header: &[u8], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(signed_header);
    h.update(body);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_detection_finds_a_single_set_bit_anywhere() {
        let mut b = vec![0u8; 4096 + 13];
        assert!(is_all_zero(&b));
        for i in [0, 63, 64, 100, 4095, 4096, 4108] {
            b[i] = 0x10;
            assert!(!is_all_zero(&b), "byte {i}");
            b[i] = 0;
        }
        assert!(is_all_zero(&[]));
    }
}
