//! Encode -> decode -> apply round trips: for random disks, extents and every combination of
//! codec, encryption, zero detection and record size, the replica equals the source on the
//! changed extents and keeps its old bytes elsewhere.

use blockdelta::stream::{
    encode_to_vec, normalize_extents, FileSource, FileTarget, DEFAULT_RECORD_SIZE,
};
use blockdelta::{
    Applier, Bookmark, BookmarkKind, Codec, Decoded, Decoder, DecoderConfig, EncodeCursor, Encoder,
    EncoderConfig, Expected, Extent, GenerationId, Record, Secret,
};
use proptest::prelude::*;

const DISK: [u8; 16] = *b"disk-0123456789a";
const GEN: GenerationId = GenerationId([7; 16]);

fn config(
    size: u64,
    codec: Codec,
    secret: Option<&[u8]>,
    zero: bool,
    record: u32,
) -> EncoderConfig {
    let mut c = EncoderConfig::new(DISK, GEN, 4, 5, size);
    c.compression = codec;
    c.secret = secret.map(|s| Secret::new(s).unwrap());
    c.zero_detection = zero;
    c.record_size = record;
    c
}

fn decoder_config(secret: Option<&[u8]>) -> DecoderConfig {
    let mut d = DecoderConfig::new();
    d.secret = secret.map(|s| Secret::new(s).unwrap());
    d
}

/// Applies `stream` to `replica`, feeding it in `chunk`-byte pieces as a network would.
/// With `in_place`, frames are decrypted in the pending buffer itself.
fn apply_chunked(stream: &[u8], replica: Vec<u8>, secret: Option<&[u8]>, chunk: usize) -> Vec<u8> {
    apply_chunked_mode(stream, replica, secret, chunk, false)
}

fn apply_chunked_mode(
    stream: &[u8],
    replica: Vec<u8>,
    secret: Option<&[u8]>,
    chunk: usize,
    in_place: bool,
) -> Vec<u8> {
    let mut app = Applier::new(decoder_config(secret), replica);
    let mut pending: Vec<u8> = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        pending.extend_from_slice(piece);
        let used = if in_place {
            app.push_in_place(&mut pending)
        } else {
            app.push(&pending)
        }
        .expect("valid stream applies");
        pending.drain(..used);
    }
    assert!(pending.is_empty(), "all input consumed");
    app.finish().expect("stream complete");
    app.into_target()
}

fn expected_replica(old: &[u8], new: &[u8], extents: &[Extent]) -> Vec<u8> {
    let mut r = old.to_vec();
    for e in extents {
        let (a, b) = (e.offset as usize, (e.offset + e.len) as usize);
        r[a..b].copy_from_slice(&new[a..b]);
    }
    r
}

/// A disk image mixing zero runs, compressible runs and random runs.
fn disk_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((0u8..3, 1usize..20_000, any::<u8>()), 1..12).prop_map(|runs| {
        let mut v = Vec::new();
        let mut x: u32 = 0x1234_5678;
        for (kind, len, byte) in runs {
            for i in 0..len {
                v.push(match kind {
                    0 => 0,
                    1 => byte.wrapping_add((i / 64) as u8),
                    _ => {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    }
                });
            }
        }
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn replica_equals_source(
        new in disk_strategy(),
        raw_extents in prop::collection::vec((any::<u32>(), 1u32..30_000), 0..10),
        lz4 in any::<bool>(),
        encrypted in any::<bool>(),
        zero in any::<bool>(),
        record in prop::sample::select(vec![1u32, 511, 4096, 65_536, DEFAULT_RECORD_SIZE]),
        chunk in 1usize..5000,
        in_place in any::<bool>(),
    ) {
        let size = new.len() as u64;
        let old: Vec<u8> = (0..new.len()).map(|i| (i * 31 % 251) as u8).collect();
        let mut extents: Vec<Extent> = raw_extents
            .iter()
            .map(|&(o, l)| {
                let o = u64::from(o) % size;
                Extent::new(o, u64::from(l).min(size - o))
            })
            .collect();
        normalize_extents(&mut extents);
        let secret: Option<&[u8]> = if encrypted { Some(b"correct horse battery staple") } else { None };
        let codec = if lz4 { Codec::Lz4 } else { Codec::Raw };
        let mut src = new.clone();
        let stream = encode_to_vec(config(size, codec, secret, zero, record), &extents, &mut src).unwrap();
        let replica = apply_chunked_mode(&stream, old.clone(), secret, chunk, in_place);
        prop_assert_eq!(replica, expected_replica(&old, &new, &extents));
    }
}

#[test]
fn every_record_type_round_trips_through_the_decoder() {
    let size = 1 << 20;
    let mut new = vec![0u8; size];
    new[8192..12288].fill(0xAB);
    for (i, b) in new[20000..20100].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0x5a;
    }
    let secret = b"a secret of 16+ bytes".as_slice();
    let mut enc = Encoder::new(config(size as u64, Codec::Lz4, Some(secret), true, 4096)).unwrap();
    let mut buf = vec![0u8; enc.max_frame_len()];
    let mut stream = Vec::new();
    let mut put = |n: usize, buf: &[u8]| stream.extend_from_slice(&buf[..n]);
    let n = enc.write_header(&mut buf).unwrap();
    put(n, &buf);
    let n = enc.write_resize(2 * size as u64, &mut buf).unwrap();
    put(n, &buf);
    let extents = [Extent::new(4096, 8192), Extent::new(20000, 100)];
    enc.check_extents(&extents).unwrap();
    let mut cur = EncodeCursor::default();
    while let Some(n) = enc
        .next_frame(&extents, &mut cur, &mut new, &mut buf)
        .unwrap()
    {
        put(n, &buf);
    }
    let n = enc.write_discard(65536, 4096, &mut buf).unwrap();
    put(n, &buf);
    let n = enc.write_zero(size as u64, 4096, &mut buf).unwrap();
    put(n, &buf);
    let bm = Bookmark {
        id: 42,
        timestamp_ns: 1_700_000_000_000_000_000,
        kind: BookmarkKind::ApplicationConsistent,
        label: "nightly ✓",
    };
    let n = enc.write_bookmark(&bm, &mut buf).unwrap();
    put(n, &buf);
    let n = enc.finish(&mut buf).unwrap();
    put(n, &buf);

    let mut dec = Decoder::new(decoder_config(Some(secret)));
    let mut at = 0;
    let mut seen = Vec::new();
    loop {
        match dec.next(&stream[at..]).unwrap() {
            Decoded::Header { header, consumed } => {
                assert_eq!(
                    (header.from_seq, header.to_seq, header.disk_size),
                    (4, 5, size as u64)
                );
                at += consumed;
            }
            Decoded::Record { record, consumed } => {
                at += consumed;
                let s = match record {
                    Record::Data {
                        offset,
                        data,
                        codec,
                    } => {
                        assert_eq!(data, &new[offset as usize..offset as usize + data.len()]);
                        format!("data {offset} {} {codec:?}", data.len())
                    }
                    Record::Zero { offset, len } => format!("zero {offset} {len}"),
                    Record::Discard { offset, len } => format!("discard {offset} {len}"),
                    Record::Resize { new_size } => format!("resize {new_size}"),
                    Record::Bookmark(b) => {
                        assert_eq!(b, bm);
                        "bookmark".to_string()
                    }
                    Record::End(e) => {
                        assert_eq!(e.records, 7);
                        seen.push("end".to_string());
                        break;
                    }
                    other => panic!("unexpected {other:?}"),
                };
                seen.push(s);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(at, stream.len());
    assert_eq!(
        seen,
        [
            "resize 2097152",
            "zero 4096 4096",
            "data 8192 4096 Lz4",
            "data 20000 100 Raw",
            "discard 65536 4096",
            "zero 1048576 4096",
            "bookmark",
            "end"
        ]
    );
    assert!(dec.finish().is_ok());
}

#[test]
fn file_source_and_file_target_replicate_a_disk_image() {
    use std::io::{Seek, SeekFrom, Write};
    let size = 3 << 20;
    let mut src_file = tempfile::tempfile().unwrap();
    let image: Vec<u8> = (0..size)
        .map(|i| {
            if (i / 100_000) % 3 == 0 {
                0
            } else {
                (i % 253) as u8
            }
        })
        .collect();
    src_file.write_all(&image).unwrap();
    let mut src = FileSource::new(src_file);
    let mut cfg = config(
        size as u64,
        Codec::Lz4,
        Some(b"a secret of 16+ bytes"),
        true,
        65536,
    );
    cfg.block_size = 512;
    let mut enc = Encoder::new(cfg).unwrap();
    let mut buf = vec![0u8; enc.max_frame_len()];
    let mut stream = Vec::new();
    let n = enc.write_header(&mut buf).unwrap();
    stream.extend_from_slice(&buf[..n]);
    let first = [Extent::new(0, 1_500_000)];
    let mut cur = EncodeCursor::default();
    while let Some(n) = enc
        .next_frame(&first, &mut cur, &mut src, &mut buf)
        .unwrap()
    {
        stream.extend_from_slice(&buf[..n]);
    }
    let n = enc.write_discard(1_500_000, 500_000, &mut buf).unwrap();
    stream.extend_from_slice(&buf[..n]);
    let second = [Extent::new(2_000_000, 1_000_000)];
    let mut cur = EncodeCursor::default();
    while let Some(n) = enc
        .next_frame(&second, &mut cur, &mut src, &mut buf)
        .unwrap()
    {
        stream.extend_from_slice(&buf[..n]);
    }
    let n = enc.write_resize(size as u64 + 4096, &mut buf).unwrap();
    stream.extend_from_slice(&buf[..n]);
    let n = enc.finish(&mut buf).unwrap();
    stream.extend_from_slice(&buf[..n]);

    let mut replica = tempfile::tempfile().unwrap();
    replica.write_all(&vec![0xEE; size]).unwrap();
    let mut app = Applier::new(
        decoder_config(Some(b"a secret of 16+ bytes")).with_expected(Expected {
            disk_id: Some(DISK),
            generation: Some(GEN),
            replica_seq: Some(4),
        }),
        FileTarget::new(replica).unwrap(),
    );
    let end = app.apply_from(&stream[..]).unwrap();
    assert_eq!(end.records, cur_records(&stream));
    let mut f = app.into_target().into_inner();
    assert_eq!(f.metadata().unwrap().len(), size as u64 + 4096);
    let mut got = Vec::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    std::io::Read::read_to_end(&mut f, &mut got).unwrap();
    assert!(got[..1_500_000] == image[..1_500_000]);
    // DISCARD: contents unspecified, but the file target punches a hole or writes zeros.
    assert!(got[1_500_000..2_000_000].iter().all(|&b| b == 0));
    assert!(got[2_000_000..3_000_000] == image[2_000_000..3_000_000]);
    assert!(
        got[3_000_000..size].iter().all(|&b| b == 0xEE),
        "untouched bytes keep their old contents"
    );
    assert!(
        got[size..].iter().all(|&b| b == 0),
        "the grown tail reads as zeros"
    );
}

/// Counts record frames by decoding (independent of the encoder's own count).
fn cur_records(stream: &[u8]) -> u64 {
    let mut dec = Decoder::new(decoder_config(Some(b"a secret of 16+ bytes")));
    let mut at = 0;
    let mut n = 0;
    loop {
        match dec.next(&stream[at..]).unwrap() {
            Decoded::Header { consumed, .. } => at += consumed,
            Decoded::Record {
                record: Record::End(_),
                ..
            } => return n,
            Decoded::Record { consumed, .. } => {
                at += consumed;
                n += 1;
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_stream_of_only_zeros_is_tiny() {
    let size = 8 << 20;
    let mut src = vec![0u8; size];
    let stream = encode_to_vec(
        config(size as u64, Codec::Lz4, None, true, DEFAULT_RECORD_SIZE),
        &[Extent::new(0, size as u64)],
        &mut src,
    )
    .unwrap();
    assert!(stream.len() < 1024, "{} bytes", stream.len());
    let replica = apply_chunked(&stream, vec![1u8; size], None, 1 << 20);
    assert!(replica.iter().all(|&b| b == 0));
}

#[test]
fn incompressible_data_is_kept_raw_and_compressible_data_shrinks() {
    let size = 1 << 20;
    let mut x: u64 = 1;
    let mut random: Vec<u8> = (0..size)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect();
    let all = [Extent::new(0, size as u64)];
    let s = encode_to_vec(
        config(size as u64, Codec::Lz4, None, true, 65536),
        &all,
        &mut random,
    )
    .unwrap();
    assert!(
        s.len() > size && s.len() < size + 16 * 100,
        "raw kept: {}",
        s.len()
    );
    let mut text: Vec<u8> = b"the quick brown fox "
        .iter()
        .copied()
        .cycle()
        .take(size)
        .collect();
    let s = encode_to_vec(
        config(size as u64, Codec::Lz4, None, true, 65536),
        &all,
        &mut text,
    )
    .unwrap();
    assert!(s.len() < size / 10, "compressed: {}", s.len());
}
