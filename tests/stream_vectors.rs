//! The committed test vectors (`tests/vectors/`, described in `docs/FORMAT.md`): each decodes and
//! applies onto an all-zero disk to exactly `expected.img`, and the encoder reproduces each byte
//! for byte from the published parameters.
//!
//! Regenerate (only after a deliberate format change) with
//! `cargo test --test stream_vectors -- --ignored regenerate_vectors`.

use std::path::PathBuf;

use blockdelta::{
    Applier, Bookmark, BookmarkKind, Codec, DecoderConfig, EncodeCursor, Encoder, EncoderConfig,
    Extent, GenerationId, Secret,
};

/// The published test secret (32 ASCII bytes).
const SECRET: &[u8; 32] = b"blockdelta test vector secret 01";
/// The fixed salt of the encrypted vector: bytes 0x00..=0x1f.
const SALT: [u8; 32] = {
    let mut s = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        s[i] = i as u8;
        i += 1;
    }
    s
};
const NONCE_PREFIX: [u8; 4] = [0xa0, 0xa1, 0xa2, 0xa3];
const DISK_ID: [u8; 16] = *b"blockdelta-vec-1";
const GENERATION: GenerationId = GenerationId([
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
]);
const SIZE: u64 = 65536;
const GROWN: u64 = SIZE + 4096;

/// The documented HKDF output for the encrypted vector, so an implementation can check its key
/// derivation on its own.
const EXPECTED_KEY_HEX: &str = include_str!("vectors/encrypted.key.hex");

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// The source disk: text, a zero block, pseudo-random bytes (xorshift32, seed 1), zeros elsewhere.
fn source() -> Vec<u8> {
    let mut d = vec![0u8; SIZE as usize];
    let text = b"blockdelta test vector: the quick brown fox jumps over the lazy dog. ";
    for (i, b) in d[..8192].iter_mut().enumerate() {
        *b = text[i % text.len()];
    }
    let mut x: u32 = 1;
    for b in d[20000..25000].iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    d
}

fn build(codec: Codec, encrypted: bool) -> Vec<u8> {
    let mut cfg = EncoderConfig::new(DISK_ID, GENERATION, 1, 2, SIZE);
    cfg.block_size = 512;
    cfg.record_size = 4096;
    cfg.compression = codec;
    cfg.secret = encrypted.then(|| Secret::new(SECRET).unwrap());
    let cfg = cfg.with_fixed_crypto_params_for_test_vectors(SALT, NONCE_PREFIX);
    let mut enc = Encoder::new(cfg).unwrap();
    let mut buf = vec![0u8; enc.max_frame_len()];
    let mut out = Vec::new();
    let n = enc.write_header(&mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    let extents = [
        Extent::new(0, 8192),
        Extent::new(12288, 4096),
        Extent::new(20000, 5000),
    ];
    let mut src = source();
    let mut cur = EncodeCursor::default();
    while let Some(n) = enc
        .next_frame(&extents, &mut cur, &mut src, &mut buf)
        .unwrap()
    {
        out.extend_from_slice(&buf[..n]);
    }
    let n = enc.write_discard(40960, 4096, &mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    let n = enc.write_resize(GROWN, &mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    let n = enc.write_zero(SIZE, 4096, &mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    let bm = Bookmark {
        id: 7,
        timestamp_ns: 1_700_000_000_000_000_000,
        kind: BookmarkKind::ApplicationConsistent,
        label: "vector",
    };
    let n = enc.write_bookmark(&bm, &mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    let n = enc.finish(&mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    out
}

const VECTORS: [(&str, Codec, bool); 3] = [
    ("plain.bds", Codec::Raw, false),
    ("lz4.bds", Codec::Lz4, false),
    ("encrypted.bds", Codec::Lz4, true),
];

fn expected_image() -> Vec<u8> {
    let mut img = source();
    img[8192..12288].fill(0);
    img[25000..].fill(0);
    img.resize(GROWN as usize, 0);
    img
}

fn derived_key_hex() -> String {
    struct Len32;
    impl ring::hkdf::KeyType for Len32 {
        fn len(&self) -> usize {
            32
        }
    }
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &SALT).extract(SECRET);
    let info: [&[u8]; 3] = [b"blockdelta stream v1", &DISK_ID, &GENERATION.0];
    let mut key = [0u8; 32];
    prk.expand(&info, Len32).unwrap().fill(&mut key).unwrap();
    key.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn committed_vectors_decode_to_the_expected_image() {
    let expected = std::fs::read(dir().join("expected.img")).unwrap();
    assert!(
        expected == expected_image(),
        "expected.img matches its documented construction"
    );
    for (name, _, encrypted) in VECTORS {
        let stream = std::fs::read(dir().join(name)).unwrap();
        let mut cfg = DecoderConfig::new();
        if encrypted {
            cfg.secret = Some(Secret::new(SECRET).unwrap());
        }
        let mut app = Applier::new(cfg, vec![0u8; SIZE as usize]);
        let used = app.push(&stream).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(used, stream.len(), "{name}");
        let end = app.finish().unwrap();
        assert_eq!(end.records, 9, "{name}");
        let h = *app.header().unwrap();
        assert_eq!(
            (h.from_seq, h.to_seq, h.disk_id, h.generation),
            (1, 2, DISK_ID, GENERATION),
            "{name}"
        );
        assert!(
            app.into_target() == expected,
            "{name} reproduces expected.img"
        );
    }
}

#[test]
fn the_encoder_reproduces_the_committed_vectors() {
    for (name, codec, encrypted) in VECTORS {
        let committed = std::fs::read(dir().join(name)).unwrap();
        assert!(
            build(codec, encrypted) == committed,
            "{name} is reproducible"
        );
    }
}

#[test]
fn the_published_key_derivation_matches() {
    assert_eq!(derived_key_hex(), EXPECTED_KEY_HEX.trim());
}

#[test]
#[ignore = "writes tests/vectors; run only after a deliberate format change"]
fn regenerate_vectors() {
    std::fs::create_dir_all(dir()).unwrap();
    for (name, codec, encrypted) in VECTORS {
        std::fs::write(dir().join(name), build(codec, encrypted)).unwrap();
    }
    std::fs::write(dir().join("expected.img"), expected_image()).unwrap();
    std::fs::write(dir().join("encrypted.key.hex"), derived_key_hex() + "\n").unwrap();
}
