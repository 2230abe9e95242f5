//! Streams built by hand, byte by byte (`docs/FORMAT.md`), with CRCs re-signed as an attacker
//! would, shared by the stream tests that feed hostile or unusual streams to a decoder.

#![allow(dead_code)] // each test file uses a part

/// Recomputes the CRC32 of a frame (signed header bytes 0..20, then the body).
pub fn fix_crc(frame: &mut [u8]) {
    let mut h = crc32fast::Hasher::new();
    h.update(&frame[..20]);
    h.update(&frame[24..]);
    let crc = h.finalize();
    frame[20..24].copy_from_slice(&crc.to_le_bytes());
}

/// A frame built by hand (`docs/FORMAT.md`, "Frames"), CRC re-signed.
pub fn raw_frame(frame_type: u8, seq: u64, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(b"BDfr");
    f.extend_from_slice(&[frame_type, 0, 0, 0]);
    f.extend_from_slice(&seq.to_le_bytes());
    f.extend_from_slice(&(body.len() as u32).to_le_bytes());
    f.extend_from_slice(&[0; 4]);
    f.extend_from_slice(body);
    fix_crc(&mut f);
    f
}

/// A record body: type, reserved, value length, value.
pub fn record(rtype: u16, value: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&rtype.to_le_bytes());
    r.extend_from_slice(&[0, 0]);
    r.extend_from_slice(&(value.len() as u32).to_le_bytes());
    r.extend_from_slice(value);
    r
}

/// A plain stream: `header` (a whole header frame), the record bodies as frames 1.., and a
/// correct END.
pub fn hand_stream(header: Vec<u8>, bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut chain = crc32fast::Hasher::new();
    chain.update(&header[..24]);
    let mut bytes = header.len() as u64;
    let mut out = header;
    for (i, b) in bodies.iter().enumerate() {
        let f = raw_frame(2, i as u64 + 1, b);
        chain.update(&f[..24]);
        bytes += f.len() as u64;
        out.extend_from_slice(&f);
    }
    let mut end = Vec::new();
    end.extend_from_slice(&(bodies.len() as u64).to_le_bytes());
    end.extend_from_slice(&bytes.to_le_bytes());
    end.extend_from_slice(&chain.finalize().to_le_bytes());
    end.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&raw_frame(
        2,
        bodies.len() as u64 + 1,
        &record(0x80FF, &end),
    ));
    out
}

/// A DATA record's value: offset, raw length, stored length, codec, reserved, payload.
pub fn data_value(offset: u64, raw_len: u32, codec: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&offset.to_le_bytes());
    v.extend_from_slice(&raw_len.to_le_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.push(codec);
    v.extend_from_slice(&[0; 7]);
    v.extend_from_slice(payload);
    v
}

/// A ZERO or DISCARD record's value: offset, length.
pub fn range_value(offset: u64, len: u64) -> Vec<u8> {
    let mut v = offset.to_le_bytes().to_vec();
    v.extend_from_slice(&len.to_le_bytes());
    v
}
