//! Hostile input: each way a stream can be wrong gives its own error, and the target receives
//! no write from the frame that failed (nor from anything after it).
//!
//! Frames are built here by hand from `docs/FORMAT.md` where the encoder would refuse to produce
//! them, which also checks that the documented layout is the implemented one.

use blockdelta::stream::DEFAULT_RECORD_SIZE;
use blockdelta::{
    Applier, Codec, DecoderConfig, EncodeCursor, Encoder, EncoderConfig, Expected, Extent,
    GenerationId, Secret, StreamError,
};

const DISK: [u8; 16] = *b"tamper-disk-0001";
const GEN: GenerationId = GenerationId([3; 16]);
const SIZE: u64 = 1 << 20;
const SECRET: &[u8] = b"the right secret";

#[path = "common/hand.rs"]
mod hand;
#[path = "common/recorder.rs"]
mod recorder;
use hand::{data_value, fix_crc, range_value, raw_frame, record};
use recorder::Recorder;

/// The replica every tamper case starts from.
fn recorder() -> Recorder {
    Recorder {
        disk: vec![0x55; SIZE as usize],
        log: Vec::new(),
    }
}

fn source() -> Vec<u8> {
    (0..SIZE as usize)
        .map(|i| ((i / 7) as u8).wrapping_mul(13))
        .collect()
}

/// A valid stream as a list of frames: header, 4 DATA (64 KiB each), END.
fn frames(secret: Option<&[u8]>) -> Vec<Vec<u8>> {
    let mut cfg = EncoderConfig::new(DISK, GEN, 10, 11, SIZE);
    cfg.record_size = 65536;
    cfg.compression = Codec::Lz4;
    cfg.secret = secret.map(|s| Secret::new(s).unwrap());
    let cfg = cfg.with_fixed_crypto_params_for_test_vectors([9; 32], [1, 2, 3, 4]);
    let mut enc = Encoder::new(cfg).unwrap();
    let mut buf = vec![0u8; enc.max_frame_len()];
    let mut out = Vec::new();
    let n = enc.write_header(&mut buf).unwrap();
    out.push(buf[..n].to_vec());
    let extents = [Extent::new(0, 131072), Extent::new(262144, 131072)];
    let mut cur = EncodeCursor::default();
    let mut src = source();
    while let Some(n) = enc
        .next_frame(&extents, &mut cur, &mut src, &mut buf)
        .unwrap()
    {
        out.push(buf[..n].to_vec());
    }
    let n = enc.finish(&mut buf).unwrap();
    out.push(buf[..n].to_vec());
    assert_eq!(out.len(), 6);
    out
}

fn config(secret: Option<&[u8]>) -> DecoderConfig {
    let mut c = DecoderConfig::new();
    c.secret = secret.map(|s| Secret::new(s).unwrap());
    c
}

/// Applies `stream` in one push, then finish; returns the first error and the target log.
fn apply(stream: &[u8], cfg: DecoderConfig) -> (Result<(), StreamError>, Vec<String>) {
    let mut app = Applier::new(cfg, recorder());
    // Unconsumed bytes (a frame whose length points past the input) end as `Truncated`.
    let r = app.push(stream).and_then(|_| app.finish().map(|_| ()));
    (r, app.into_target().log)
}

/// The target log produced by the first `n` frames (all valid).
fn log_of_prefix(frames: &[Vec<u8>], n: usize, secret: Option<&[u8]>) -> Vec<String> {
    let mut app = Applier::new(config(secret), recorder());
    app.push(&frames[..n].concat()).unwrap();
    app.into_target().log
}

/// A plain stream made of the valid header and hand-built record bodies, with a correct END.
fn hand_stream(bodies: &[Vec<u8>]) -> Vec<u8> {
    hand::hand_stream(frames(None).swap_remove(0), bodies)
}

/// Rewrites a field of the (plain) header frame and fixes its CRC.
fn header_with(patch: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut f = frames(None);
    patch(&mut f[0][24..]);
    fix_crc(&mut f[0]);
    f.concat()
}

#[test]
fn valid_streams_apply_and_hand_built_frames_match_the_spec() {
    for secret in [None, Some(SECRET)] {
        let (r, log) = apply(&frames(secret).concat(), config(secret));
        r.unwrap();
        assert_eq!(log.len(), 5, "{log:?}");
    }
    let s = hand_stream(&[
        record(0x8001, &data_value(0, 3, 0, b"abc")),
        record(0x8002, &range_value(4096, 4096)),
    ]);
    let (r, log) = apply(&s, config(None));
    r.unwrap();
    assert_eq!(log, ["write 0 3", "zero 4096 4096", "sync"]);
}

#[test]
fn bad_frame_magic() {
    let mut s = frames(None).concat();
    s[0] = b'X';
    let (r, log) = apply(&s, config(None));
    assert!(
        matches!(r, Err(StreamError::BadMagic { what: "frame" })),
        "{r:?}"
    );
    assert!(log.is_empty());
}

#[test]
fn bad_header_magic() {
    let s = header_with(|h| h[0] = b'x');
    let (r, log) = apply(&s, config(None));
    assert!(
        matches!(
            r,
            Err(StreamError::BadMagic {
                what: "stream header"
            })
        ),
        "{r:?}"
    );
    assert!(log.is_empty());
}

#[test]
fn unsupported_version() {
    let s = header_with(|h| h[8] = 2);
    let (r, log) = apply(&s, config(None));
    assert!(
        matches!(
            r,
            Err(StreamError::UnsupportedVersion {
                found: 2,
                supported: 1
            })
        ),
        "{r:?}"
    );
    assert!(log.is_empty());
}

#[test]
fn unknown_required_feature_is_refused_and_unknown_optional_feature_is_ignored() {
    let s = header_with(|h| h[12] |= 0x20);
    let (r, _) = apply(&s, config(None));
    assert!(
        matches!(r, Err(StreamError::UnknownRequiredFeature { bits: 0x20 })),
        "{r:?}"
    );
    // The END checksum covers the header frame, so rebuild the stream around the new header.
    let mut h = frames(None).swap_remove(0);
    h[24 + 16] |= 0x80;
    fix_crc(&mut h);
    let s = hand::hand_stream(h, &[record(0x8002, &range_value(0, 512))]);
    apply(&s, config(None)).0.unwrap();
}

#[test]
fn unsupported_cipher() {
    let s = header_with(|h| h[80] = 9);
    let (r, _) = apply(&s, config(None));
    assert!(
        matches!(r, Err(StreamError::UnsupportedCipher { suite: 9 })),
        "{r:?}"
    );
}

#[test]
fn invalid_header_sequence() {
    let s = header_with(|h| h[60..68].copy_from_slice(&10u64.to_le_bytes()));
    let (r, _) = apply(&s, config(None));
    assert!(matches!(r, Err(StreamError::InvalidHeader { .. })), "{r:?}");
}

#[test]
fn truncation_mid_frame_and_at_a_frame_boundary() {
    let f = frames(Some(SECRET));
    let whole = f.concat();
    for cut in [
        10,
        f[0].len(),
        f[0].len() + 30,
        whole.len() - f[5].len(),
        whole.len() - 1,
    ] {
        let s = &whole[..cut];
        let mut app = Applier::new(config(Some(SECRET)), recorder());
        let used = app
            .push(s)
            .expect("a truncated stream is not an error until finish");
        assert!(used <= cut);
        let r = app.finish();
        assert!(
            matches!(r, Err(StreamError::Truncated { .. })),
            "cut {cut}: {r:?}"
        );
        let complete_frames = f.iter().scan(0, |acc, fr| {
            *acc += fr.len();
            Some(*acc)
        });
        let n = complete_frames.take_while(|&end| end <= cut).count();
        assert_eq!(
            app.into_target().log,
            log_of_prefix(&f, n, Some(SECRET)),
            "cut {cut}"
        );
    }
}

#[test]
fn reordered_frames() {
    let mut f = frames(Some(SECRET));
    f.swap(2, 3);
    let (r, log) = apply(&f.concat(), config(Some(SECRET)));
    assert!(
        matches!(
            r,
            Err(StreamError::FrameOutOfOrder {
                expected: 2,
                found: 3
            })
        ),
        "{r:?}"
    );
    assert_eq!(log, log_of_prefix(&f, 2, Some(SECRET)));
}

#[test]
fn replayed_frame() {
    let f = frames(Some(SECRET));
    let s = [&f[..4], &f[2..3], &f[4..]].concat().concat();
    let (r, log) = apply(&s, config(Some(SECRET)));
    assert!(
        matches!(
            r,
            Err(StreamError::FrameOutOfOrder {
                expected: 4,
                found: 2
            })
        ),
        "{r:?}"
    );
    assert_eq!(log, log_of_prefix(&f, 4, Some(SECRET)));
}

#[test]
fn duplicated_and_dropped_frames() {
    let f = frames(None);
    let dup = [&f[..3], &f[2..]].concat().concat();
    let (r, log) = apply(&dup, config(None));
    assert!(
        matches!(
            r,
            Err(StreamError::FrameOutOfOrder {
                expected: 3,
                found: 2
            })
        ),
        "{r:?}"
    );
    assert_eq!(log, log_of_prefix(&f, 3, None));
    let dropped = [&f[..2], &f[3..]].concat().concat();
    let (r, _) = apply(&dropped, config(None));
    assert!(
        matches!(
            r,
            Err(StreamError::FrameOutOfOrder {
                expected: 2,
                found: 3
            })
        ),
        "{r:?}"
    );
}

#[test]
fn every_single_bit_flip_is_caught_before_any_write_of_its_frame() {
    for secret in [None, Some(SECRET)] {
        let f = frames(secret);
        let prefix_logs: Vec<Vec<String>> =
            (0..f.len()).map(|k| log_of_prefix(&f, k, secret)).collect();
        // The END frame and the header are small: flip every bit of both; sample the DATA frames.
        for (k, frame) in f.iter().enumerate() {
            let step = if frame.len() > 1000 { 1009 } else { 1 };
            for byte in (0..frame.len()).step_by(step) {
                for bit in 0..8 {
                    let mut t = f.clone();
                    t[k][byte] ^= 1 << bit;
                    let (r, log) = apply(&t.concat(), config(secret));
                    let e = r.expect_err("a flipped bit never goes unnoticed");
                    assert_eq!(log, prefix_logs[k], "frame {k} byte {byte} bit {bit}: {e}");
                    // Past the magic and length fields the CRC is what catches it.
                    if (24..frame.len()).contains(&byte)
                        || (8..16).contains(&byte)
                        || (20..24).contains(&byte)
                    {
                        assert!(
                            matches!(e, StreamError::ChecksumMismatch { .. }),
                            "frame {k} byte {byte}: {e}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn in_place_decoding_refuses_the_same_tampering() {
    let mut f = frames(Some(SECRET));
    f[3][100] ^= 0x40;
    fix_crc(&mut f[3]);
    let mut s = f.concat();
    let mut app = Applier::new(config(Some(SECRET)), recorder());
    let r = app.push_in_place(&mut s);
    assert!(
        matches!(r, Err(StreamError::AuthenticationFailed { seq: 3 })),
        "{r:?}"
    );
    assert_eq!(app.into_target().log, log_of_prefix(&f, 3, Some(SECRET)));
}

#[test]
fn wrong_key() {
    let f = frames(Some(SECRET));
    let (r, log) = apply(&f.concat(), config(Some(b"a wrong secret, 16+")));
    assert!(
        matches!(r, Err(StreamError::AuthenticationFailed { seq: 1 })),
        "{r:?}"
    );
    assert!(log.is_empty());
}

#[test]
fn tampered_ciphertext_with_a_fixed_up_crc() {
    let mut f = frames(Some(SECRET));
    f[3][100] ^= 0x40;
    fix_crc(&mut f[3]);
    let (r, log) = apply(&f.concat(), config(Some(SECRET)));
    assert!(
        matches!(r, Err(StreamError::AuthenticationFailed { seq: 3 })),
        "{r:?}"
    );
    assert_eq!(log, log_of_prefix(&f, 3, Some(SECRET)));
}

#[test]
fn tampered_header_of_an_encrypted_stream_fails_authentication() {
    // The header is plaintext, but every sealed frame authenticates it as associated data.
    let mut f = frames(Some(SECRET));
    f[0][24 + 68..24 + 76].copy_from_slice(&(SIZE / 2).to_le_bytes());
    fix_crc(&mut f[0]);
    let (r, log) = apply(&f.concat(), config(Some(SECRET)));
    assert!(
        matches!(r, Err(StreamError::AuthenticationFailed { seq: 1 })),
        "{r:?}"
    );
    assert!(log.is_empty());
}

#[test]
fn oversized_length() {
    let mut f = frames(None);
    f[1][16..20].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let (r, log) = apply(&f.concat(), config(None));
    assert!(
        matches!(
            r,
            Err(StreamError::OversizedLength {
                len: 0x7fff_ffff,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(log.is_empty());
    // A DATA record claiming more than 1 MiB of raw payload.
    let s = hand_stream(&[record(0x8001, &data_value(0, (1 << 20) + 1, 1, b"xx"))]);
    let (r, _) = apply(&s, config(None));
    assert!(
        matches!(
            r,
            Err(StreamError::OversizedLength {
                what: "DATA raw length",
                ..
            })
        ),
        "{r:?}"
    );
    // Within the format's 1 MiB but above the 64 KiB the header declares: the decoder's scratch
    // is sized by the declaration, and the record is refused before any decompression.
    let s = hand_stream(&[record(0x8001, &data_value(0, 65537, 1, b"xx"))]);
    let (r, log) = apply(&s, config(None));
    assert!(
        matches!(
            r,
            Err(StreamError::OversizedLength {
                what: "DATA raw length",
                len: 65537,
                max: 65536,
            })
        ),
        "{r:?}"
    );
    assert!(log.is_empty());
}

#[test]
fn overlapping_and_descending_extents() {
    let s = hand_stream(&[
        record(0x8001, &data_value(4096, 4, 0, b"abcd")),
        record(0x8001, &data_value(4098, 4, 0, b"efgh")),
    ]);
    let (r, log) = apply(&s, config(None));
    assert!(
        matches!(
            r,
            Err(StreamError::ExtentOverlap {
                offset: 4098,
                len: 4,
                prev_end: 4100
            })
        ),
        "{r:?}"
    );
    assert_eq!(log, ["write 4096 4"]);
    let s = hand_stream(&[
        record(0x8002, &range_value(8192, 10)),
        record(0x8003, &range_value(0, 10)),
    ]);
    let (r, _) = apply(&s, config(None));
    assert!(
        matches!(r, Err(StreamError::ExtentOverlap { offset: 0, .. })),
        "{r:?}"
    );
}

#[test]
fn out_of_range_extents() {
    let s = hand_stream(&[record(0x8001, &data_value(SIZE - 2, 4, 0, b"abcd"))]);
    let (r, log) = apply(&s, config(None));
    assert!(
        matches!(
            r,
            Err(StreamError::ExtentOutOfRange {
                disk_size: SIZE,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(log.is_empty());
    let s = hand_stream(&[record(0x8002, &range_value(u64::MAX - 1, 4))]);
    let (r, _) = apply(&s, config(None));
    assert!(
        matches!(r, Err(StreamError::ExtentOutOfRange { .. })),
        "{r:?}"
    );
    // After a RESIZE the new size is what bounds the extents.
    let s = hand_stream(&[
        record(0x8004, &(SIZE / 2).to_le_bytes()),
        record(0x8002, &range_value(SIZE / 2, 1)),
    ]);
    let (r, log) = apply(&s, config(None));
    assert!(
        matches!(r, Err(StreamError::ExtentOutOfRange { disk_size, .. }) if disk_size == SIZE / 2),
        "{r:?}"
    );
    // A shrink is deferred until END is verified, so nothing reached the target.
    assert!(log.is_empty(), "{log:?}");
}

#[test]
fn unknown_must_understand_record_is_refused_and_unknown_optional_record_is_skipped() {
    let s = hand_stream(&[record(0x8042, b"future")]);
    let (r, log) = apply(&s, config(None));
    assert!(
        matches!(
            r,
            Err(StreamError::UnknownRequiredRecord {
                record_type: 0x8042
            })
        ),
        "{r:?}"
    );
    assert!(log.is_empty());
    let s = hand_stream(&[
        record(0x0042, b"future"),
        record(0x8002, &range_value(0, 512)),
    ]);
    let (r, log) = apply(&s, config(None));
    r.unwrap();
    assert_eq!(log, ["zero 0 512", "sync"]);
}

#[test]
fn malformed_records() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            record(0x8001, &data_value(0, 4, 7, b"abcd")),
            "unknown codec",
        ),
        (
            record(0x8001, &data_value(0, 400, 1, b"\xff\xff\xff")),
            "bad lz4",
        ),
        (
            record(0x8001, &data_value(0, 5, 0, b"abcd")),
            "raw length mismatch",
        ),
        (record(0x8002, &range_value(0, 0)), "empty zero"),
        (record(0x8002, &[0; 15]), "short zero"),
        (
            [
                &[0x02, 0x80, 1, 0][..],
                &16u32.to_le_bytes(),
                &range_value(0, 1),
            ]
            .concat(),
            "reserved bits",
        ),
        (
            [
                &[0x02, 0x80, 0, 0][..],
                &17u32.to_le_bytes(),
                &range_value(0, 1),
            ]
            .concat(),
            "length mismatch",
        ),
    ];
    for (body, what) in cases {
        let (r, log) = apply(&hand_stream(&[body]), config(None));
        let e = r.expect_err(what);
        let ok = match what {
            "unknown codec" => matches!(e, StreamError::UnknownCodec { codec: 7 }),
            "bad lz4" => matches!(e, StreamError::DecompressFailed { offset: 0 }),
            _ => matches!(e, StreamError::MalformedRecord { .. }),
        };
        assert!(ok, "{what}: {e}");
        assert!(log.is_empty(), "{what}");
    }
}

#[test]
fn end_totals_must_match() {
    let mut f = frames(None);
    let end = f.len() - 1;
    f[end][24 + 8] ^= 1; // record count
    fix_crc(&mut f[end]);
    let (r, log) = apply(&f.concat(), config(None));
    assert!(
        matches!(
            r,
            Err(StreamError::EndMismatch {
                what: "record count",
                ..
            })
        ),
        "{r:?}"
    );
    assert!(!log.contains(&"sync".to_string()), "no sync for a bad END");
}

#[test]
fn frames_in_the_wrong_place() {
    let f = frames(None);
    // A stream whose first frame is a record: the header is missing.
    let (r, _) = apply(&f[1], config(None));
    assert!(
        matches!(r, Err(StreamError::UnexpectedFrame { .. })),
        "{r:?}"
    );
    let mut rec_first = f[1].clone();
    rec_first[8..16].copy_from_slice(&0u64.to_le_bytes());
    fix_crc(&mut rec_first);
    let (r, _) = apply(&rec_first, config(None));
    assert!(
        matches!(r, Err(StreamError::UnexpectedFrame { .. })),
        "{r:?}"
    );
    let mut second_header = f[0].clone();
    second_header[8..16].copy_from_slice(&1u64.to_le_bytes());
    fix_crc(&mut second_header);
    let (r, _) = apply(&[f[0].clone(), second_header].concat(), config(None));
    assert!(
        matches!(r, Err(StreamError::UnexpectedFrame { .. })),
        "{r:?}"
    );
    let mut bad_type = f[1].clone();
    bad_type[4] = 9;
    fix_crc(&mut bad_type);
    let (r, _) = apply(&[f[0].clone(), bad_type].concat(), config(None));
    assert!(
        matches!(r, Err(StreamError::MalformedFrame { .. })),
        "{r:?}"
    );
}

#[test]
fn trailing_data_after_end() {
    let mut s = frames(None).concat();
    s.extend_from_slice(b"junk");
    let (r, log) = apply(&s, config(None));
    assert!(
        matches!(r, Err(StreamError::TrailingData { len: 4 })),
        "{r:?}"
    );
    assert_eq!(log.last().map(String::as_str), Some("sync"));
}

/// Issue 8, 7a: bytes after a verified END are refused without undoing the END: the replica is
/// synced at to_seq and the applier says so.
#[test]
fn trailing_data_after_end_leaves_the_applier_finished() {
    let s = frames(None).concat();
    let mut app = Applier::new(config(None), recorder());
    let mut input = s.clone();
    input.extend_from_slice(b"junk");
    let r = app.push(&input);
    assert!(
        matches!(r, Err(StreamError::TrailingData { len: 4 })),
        "{r:?}"
    );
    assert_eq!(app.consumed(), s.len());
    assert!(app.is_finished());
    let end = app.finish().expect("END was verified and synced");
    assert_eq!(end.records, 4);
    let applied = app.applied().expect("applied");
    assert_eq!((applied.from_seq, applied.to_seq), (10, 11));
    // More bytes later: refused the same way, still finished.
    let r = app.push(b"more");
    assert!(
        matches!(r, Err(StreamError::TrailingData { len: 4 })),
        "{r:?}"
    );
    assert!(app.finish().is_ok());
}

/// Issue 8, 7b: a raw stream without its header frame says so, whatever the first frame's
/// length (it reported OVERSIZED_LENGTH for a record frame above the header-size limit).
#[test]
fn a_stream_without_its_header_is_reported_as_such() {
    let big = raw_frame(2, 1, &record(0x8001, &data_value(0, 8192, 0, &[1; 8192])));
    assert!(big.len() > 4096 + 24, "larger than a header frame may be");
    let (r, log) = apply(&big, config(None));
    assert!(
        matches!(r, Err(StreamError::UnexpectedFrame { .. })),
        "{r:?}"
    );
    assert!(log.is_empty());
}

#[test]
fn key_required_and_downgrade_refused() {
    let (r, _) = apply(&frames(Some(SECRET)).concat(), config(None));
    assert!(matches!(r, Err(StreamError::KeyRequired)), "{r:?}");
    let (r, _) = apply(&frames(None).concat(), config(Some(SECRET)));
    assert!(matches!(r, Err(StreamError::EncryptionRequired)), "{r:?}");
}

#[test]
fn stale_or_foreign_streams_are_refused() {
    // The stream goes from 10 to 11.
    let s = frames(None).concat();
    let expect = |e: Expected| config(None).with_expected(e);
    let at = |replica_seq| Expected {
        replica_seq: Some(replica_seq),
        ..Expected::default()
    };
    // A replica at 9: the changes 9..10 are missing (a gap).
    let (r, log) = apply(&s, expect(at(9)));
    assert!(
        matches!(
            r,
            Err(StreamError::WrongSequence {
                expected: 9,
                found: 10
            })
        ),
        "{r:?}"
    );
    assert!(log.is_empty());
    // A replica already at 11 or beyond: this stream was applied and never applies again.
    for replica_seq in [11, 12, u64::MAX] {
        let (r, log) = apply(&s, expect(at(replica_seq)));
        assert!(
            matches!(r, Err(StreamError::AlreadyApplied { to_seq: 11, replica_seq: got }) if got == replica_seq),
            "{r:?}"
        );
        assert!(log.is_empty());
    }
    let (r, _) = apply(
        &s,
        expect(Expected {
            generation: Some(GenerationId([4; 16])),
            ..Expected::default()
        }),
    );
    assert!(
        matches!(r, Err(StreamError::WrongGeneration { .. })),
        "{r:?}"
    );
    let (r, _) = apply(
        &s,
        expect(Expected {
            disk_id: Some([0; 16]),
            ..Expected::default()
        }),
    );
    assert!(matches!(r, Err(StreamError::WrongDisk { .. })), "{r:?}");
    let ok = Expected {
        disk_id: Some(DISK),
        generation: Some(GEN),
        replica_seq: Some(10),
    };
    apply(&s, expect(ok)).0.unwrap();
}

#[test]
fn target_smaller_than_the_disk_is_refused() {
    let mut app = Applier::new(config(None), vec![0u8; SIZE as usize - 1]);
    let r = app.push(&frames(None).concat());
    assert!(
        matches!(r, Err(StreamError::TargetTooSmall { .. })),
        "{r:?}"
    );
}

#[test]
fn an_applier_is_poisoned_after_an_error() {
    let mut f = frames(None);
    f[2][30] ^= 1;
    let mut app = Applier::new(config(None), recorder());
    assert!(app.push(&f.concat()).is_err());
    assert!(matches!(app.push(&f[3]), Err(StreamError::Poisoned)));
    assert!(matches!(app.finish(), Err(StreamError::Poisoned)));
}

#[test]
fn encoder_refuses_bad_extents_and_small_buffers() {
    let cfg = EncoderConfig::new(DISK, GEN, 1, 2, SIZE);
    let mut enc = Encoder::new(cfg).unwrap();
    let mut buf = vec![0u8; enc.max_frame_len()];
    assert!(matches!(
        enc.write_zero(0, 1, &mut buf),
        Err(StreamError::InvalidState { .. })
    ));
    assert!(matches!(
        enc.write_header(&mut buf[..10]),
        Err(StreamError::BufferTooSmall {
            needed: 152,
            got: 10
        })
    ));
    enc.write_header(&mut buf).unwrap();
    let unsorted = [Extent::new(8192, 10), Extent::new(0, 10)];
    assert!(matches!(
        enc.check_extents(&unsorted),
        Err(StreamError::ExtentOverlap { offset: 0, .. })
    ));
    let past = [Extent::new(SIZE - 1, 2)];
    assert!(matches!(
        enc.check_extents(&past),
        Err(StreamError::ExtentOutOfRange { .. })
    ));
    let mut src = source();
    let mut cur = EncodeCursor::default();
    let r = enc.next_frame(&past, &mut cur, &mut src, &mut buf);
    assert!(
        matches!(r, Err(StreamError::ExtentOutOfRange { .. })),
        "checked per record too"
    );
    let ok = [Extent::new(0, 65536)];
    let r = enc.next_frame(&ok, &mut cur, &mut src, &mut buf[..1000]);
    assert!(
        matches!(r, Err(StreamError::BufferTooSmall { .. })),
        "{r:?}"
    );
    assert_eq!(cur, EncodeCursor::default(), "nothing consumed on error");
    let mut short_src = vec![0u8; 100];
    let r = enc.next_frame(&ok, &mut cur, &mut short_src, &mut buf);
    assert!(matches!(r, Err(StreamError::SourceIo { .. })), "{r:?}");
    assert!(enc
        .next_frame(&ok, &mut cur, &mut src, &mut buf)
        .unwrap()
        .is_some());
    let mut bad = EncoderConfig::new(DISK, GEN, 2, 2, SIZE);
    assert!(matches!(
        Encoder::new(bad.clone()),
        Err(StreamError::InvalidArgument { .. })
    ));
    bad.to_seq = 3;
    bad.record_size = DEFAULT_RECORD_SIZE + 1;
    assert!(matches!(
        Encoder::new(bad),
        Err(StreamError::InvalidArgument { .. })
    ));
}
