//! Resuming a cut stream on the receiving side (`Decoder::checkpoint`, `DecoderCheckpoint`,
//! `Decoder::resume`; `docs/FORMAT.md`, "Resuming a cut stream (receiver side)").
//!
//! For plain and encrypted, raw and lz4 streams of many frames, a decode cut at every frame
//! boundary (and inside every frame) and resumed from a stored checkpoint yields exactly the
//! records and END of an uncut decode. Stored checkpoints are hostile input: every flipped byte,
//! every truncation and every inconsistent field is refused with its own error, never a panic.
//! A resumed decoder refuses the wrong secret, the wrong replica position, frames from the
//! wrong offset and frames of another stream.

use blockdelta::{
    Bookmark, BookmarkKind, Codec, Decoded, Decoder, DecoderCheckpoint, DecoderConfig,
    EncodeCursor, Encoder, EncoderConfig, EndSummary, Expected, Extent, GenerationId, Record,
    Secret, StreamError,
};

const DISK: [u8; 16] = *b"disk-resume-0001";
const GEN: GenerationId = GenerationId([9; 16]);
const SIZE: u64 = 256 * 1024;
const SECRET: &[u8] = b"resume test secret, 32 bytes ok!";
const FROM: u64 = 10;
const TO: u64 = 11;

/// A source disk mixing compressible text, random bytes and zeros; `salt` varies the content.
fn disk(salt: u32) -> Vec<u8> {
    let mut d = vec![0u8; SIZE as usize];
    let text = b"blockdelta resume test: the same sentence again and again. ";
    let mut x = 0x9e37_79b9u32 ^ salt;
    for (i, b) in d.iter_mut().enumerate() {
        *b = match (i / 8192) % 4 {
            0 => text[i % text.len()] ^ (salt as u8),
            1 | 2 => {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            }
            _ => 0,
        };
    }
    d
}

#[derive(Clone, Copy, Debug)]
struct Kind {
    encrypted: bool,
    codec: Codec,
}

const KINDS: [Kind; 4] = [
    Kind {
        encrypted: false,
        codec: Codec::Raw,
    },
    Kind {
        encrypted: false,
        codec: Codec::Lz4,
    },
    Kind {
        encrypted: true,
        codec: Codec::Raw,
    },
    Kind {
        encrypted: true,
        codec: Codec::Lz4,
    },
];

/// A stream of many frames: DATA (raw, lz4, zero-detected), DISCARD, a BOOKMARK, a shrinking
/// RESIZE below the end of the last extent, a growing RESIZE, DATA after it, END.
/// Returns the whole stream and the end offset of every frame.
fn stream(kind: Kind, salt: u32) -> (Vec<u8>, Vec<usize>) {
    let mut cfg = EncoderConfig::new(DISK, GEN, FROM, TO, SIZE);
    cfg.compression = kind.codec;
    cfg.record_size = 2048;
    cfg.secret = kind.encrypted.then(|| Secret::new(SECRET).unwrap());
    let mut enc = Encoder::new(cfg).unwrap();
    let mut src = disk(salt);
    let mut frame = vec![0u8; enc.max_frame_len()];
    let mut out = Vec::new();
    let mut ends = Vec::new();
    let mut push = |out: &mut Vec<u8>, n: usize, frame: &[u8]| {
        out.extend_from_slice(&frame[..n]);
        ends.push(out.len());
    };
    let n = enc.write_header(&mut frame).unwrap();
    push(&mut out, n, &frame);
    let first = [
        Extent::new(0, 20_000),
        Extent::new(24_576, 16_384), // random, then zeros
        Extent::discard(65_536, 8192),
        Extent::new(90_000, 12_345),
    ];
    let mut cur = EncodeCursor::default();
    while let Some(n) = enc
        .next_frame(&first, &mut cur, &mut src, &mut frame)
        .unwrap()
    {
        push(&mut out, n, &frame);
    }
    let bm = Bookmark {
        id: 3,
        timestamp_ns: 1_700_000_000_000_000_000,
        kind: BookmarkKind::CrashConsistent,
        label: "halfway",
    };
    let n = enc.write_bookmark(&bm, &mut frame).unwrap();
    push(&mut out, n, &frame);
    // A shrink below the last extent's end: a checkpoint here has last_end > disk size.
    let n = enc.write_resize(50_000, &mut frame).unwrap();
    push(&mut out, n, &frame);
    let n = enc.write_resize(SIZE, &mut frame).unwrap();
    push(&mut out, n, &frame);
    let second = [Extent::new(131_072, 40_000), Extent::new(200_000, 5000)];
    let mut cur = EncodeCursor::default();
    while let Some(n) = enc
        .next_frame(&second, &mut cur, &mut src, &mut frame)
        .unwrap()
    {
        push(&mut out, n, &frame);
    }
    let n = enc.finish(&mut frame).unwrap();
    push(&mut out, n, &frame);
    (out, ends)
}

fn config(kind: Kind) -> DecoderConfig {
    let mut c = DecoderConfig::new();
    if kind.encrypted {
        c = c.with_secret(Secret::new(SECRET).unwrap());
    }
    c
}

fn expected() -> Expected {
    Expected {
        disk_id: Some(DISK),
        generation: Some(GEN),
        replica_seq: Some(FROM),
    }
}

/// What a decode produced: every record (as its Debug text, data included) and the END totals.
#[derive(Debug, Default, PartialEq)]
struct Out {
    records: Vec<String>,
    end: Option<EndSummary>,
}

/// Feeds `input` frame by frame until it needs more or fails; returns the bytes consumed.
fn feed(d: &mut Decoder, input: &[u8], out: &mut Out) -> Result<usize, StreamError> {
    let mut at = 0;
    loop {
        match d.next(&input[at..])? {
            Decoded::NeedMore { .. } => return Ok(at),
            Decoded::Header { consumed, .. } => at += consumed,
            Decoded::Record { record, consumed } => {
                at += consumed;
                if let Record::End(e) = record {
                    out.end = Some(e);
                    return Ok(at);
                }
                out.records.push(format!("{record:?}"));
            }
            other => panic!("unknown outcome {other:?}"),
        }
    }
}

fn uncut(kind: Kind, s: &[u8]) -> Out {
    let mut d = Decoder::new(config(kind).with_expected(expected()));
    let mut out = Out::default();
    assert_eq!(feed(&mut d, s, &mut out).unwrap(), s.len());
    assert_eq!(Some(d.finish().unwrap()), out.end);
    out
}

/// Decodes `s[..cut]`, checkpoints, stores and reloads the checkpoint, resumes, feeds the rest
/// from the checkpoint's offset; returns the whole decode and the checkpoint.
fn cut_and_resume(kind: Kind, s: &[u8], cut: usize) -> (Out, DecoderCheckpoint) {
    let mut d = Decoder::new(config(kind).with_expected(expected()));
    let mut out = Out::default();
    feed(&mut d, &s[..cut], &mut out).unwrap();
    let cp = d.checkpoint().expect("between header and END");
    drop(d);
    let stored = cp.to_bytes();
    let loaded = DecoderCheckpoint::from_bytes(&stored).unwrap();
    assert_eq!(loaded, cp);
    assert_eq!(loaded.to_bytes(), stored);
    let mut d = Decoder::resume(config(kind).with_expected(expected()), &loaded).unwrap();
    let off = loaded.stream_offset() as usize;
    assert_eq!(feed(&mut d, &s[off..], &mut out).unwrap(), s.len() - off);
    assert_eq!(
        Some(d.finish().expect("END verifies after resume")),
        out.end
    );
    (out, cp)
}

#[test]
fn cut_at_every_frame_boundary_and_inside_every_frame_resumes_to_the_same_decode() {
    for kind in KINDS {
        let (s, ends) = stream(kind, 1);
        assert!(ends.len() > 40, "{kind:?}: many frames ({})", ends.len());
        let whole = uncut(kind, &s);
        let header = {
            let mut d = Decoder::new(config(kind));
            feed(&mut d, &s[..ends[0]], &mut Out::default()).unwrap();
            *d.header().unwrap()
        };
        // Boundaries after the header frame and after every record frame before END.
        for (i, &b) in ends[..ends.len() - 1].iter().enumerate() {
            let (got, cp) = cut_and_resume(kind, &s, b);
            assert_eq!(got, whole, "{kind:?} cut at frame boundary {b}");
            assert_eq!(cp.stream_offset(), b as u64);
            assert_eq!(cp.next_frame_seq(), i as u64 + 1);
            assert_eq!(cp.records(), i as u64);
            assert_eq!(cp.header(), header);
            assert!(cp.matches_header_frame(&s[..ends[0]]));
            // Inside the next frame (its first byte, its middle, all but its last byte): the
            // checkpoint is still this boundary.
            let next = ends[i + 1];
            for cut in [b + 1, (b + next) / 2, next - 1] {
                let (got, cp2) = cut_and_resume(kind, &s, cut);
                assert_eq!(got, whole, "{kind:?} cut at {cut} inside a frame");
                assert_eq!(cp2, cp, "{kind:?}: inside a frame, the last boundary");
            }
        }
    }
}

#[test]
fn a_checkpoint_after_a_shrink_below_the_last_extent_is_valid() {
    let kind = KINDS[0];
    let (s, ends) = stream(kind, 1);
    let mut seen = false;
    for &b in &ends[1..ends.len() - 1] {
        let mut d = Decoder::new(config(kind));
        feed(&mut d, &s[..b], &mut Out::default()).unwrap();
        if d.disk_size() == 50_000 {
            seen = true;
            let cp = d.checkpoint().unwrap();
            assert_eq!(DecoderCheckpoint::from_bytes(&cp.to_bytes()).unwrap(), cp);
        }
    }
    assert!(seen, "the stream has a checkpoint after its shrink");
}

#[test]
fn checkpoint_is_none_before_the_header_after_end_and_after_an_error() {
    let kind = KINDS[1];
    let (s, ends) = stream(kind, 1);
    let mut d = Decoder::new(config(kind));
    assert!(d.checkpoint().is_none(), "before anything");
    feed(&mut d, &s[..ends[0] - 1], &mut Out::default()).unwrap();
    assert!(d.checkpoint().is_none(), "inside the header frame");
    feed(&mut d, &s, &mut Out::default()).unwrap();
    assert!(d.is_finished());
    assert!(d.checkpoint().is_none(), "after END");

    let mut d = Decoder::new(config(kind));
    let mut bad = s.clone();
    bad[ends[2] + 30] ^= 1;
    assert!(matches!(
        feed(&mut d, &bad, &mut Out::default()),
        Err(StreamError::ChecksumMismatch { .. })
    ));
    assert!(d.checkpoint().is_none(), "poisoned");
}

/// The checkpoint after the header and 5 record frames of `kind`'s stream.
fn checkpoint_at(kind: Kind, s: &[u8], ends: &[usize], frame: usize) -> DecoderCheckpoint {
    let mut d = Decoder::new(config(kind));
    feed(&mut d, &s[..ends[frame]], &mut Out::default()).unwrap();
    d.checkpoint().unwrap()
}

#[test]
fn resume_checks_the_secret_and_the_replica_position_again() {
    let (enc, enc_ends) = stream(KINDS[3], 1);
    let (plain, plain_ends) = stream(KINDS[1], 1);
    let enc_cp = checkpoint_at(KINDS[3], &enc, &enc_ends, 5);
    let plain_cp = checkpoint_at(KINDS[1], &plain, &plain_ends, 5);

    // No secret for an encrypted stream; a secret for a plain one (a possible downgrade).
    assert!(matches!(
        Decoder::resume(DecoderConfig::new(), &enc_cp),
        Err(StreamError::KeyRequired)
    ));
    assert!(matches!(
        Decoder::resume(config(KINDS[3]), &plain_cp),
        Err(StreamError::EncryptionRequired)
    ));
    // A wrong secret derives another key: the first sealed frame fails, as in a fresh stream.
    let wrong =
        DecoderConfig::new().with_secret(Secret::new(b"another secret, 32 bytes long!!!").unwrap());
    let mut d = Decoder::resume(wrong, &enc_cp).unwrap();
    let off = enc_cp.stream_offset() as usize;
    assert!(matches!(
        d.next(&enc[off..]),
        Err(StreamError::AuthenticationFailed { seq: 6 })
    ));
    assert!(d.checkpoint().is_none());

    // The replica position, checked again.
    for (kind, cp) in [(KINDS[3], &enc_cp), (KINDS[1], &plain_cp)] {
        let with = |e: Expected| Decoder::resume(config(kind).with_expected(e), cp);
        assert!(with(expected()).is_ok());
        let e = Expected {
            disk_id: Some(*b"disk-resume-0002"),
            ..expected()
        };
        assert!(matches!(with(e), Err(StreamError::WrongDisk { .. })));
        let e = Expected {
            generation: Some(GenerationId([8; 16])),
            ..expected()
        };
        assert!(matches!(with(e), Err(StreamError::WrongGeneration { .. })));
        for replica_seq in [TO, TO + 1, u64::MAX] {
            let e = Expected {
                replica_seq: Some(replica_seq),
                ..expected()
            };
            assert!(matches!(
                with(e),
                Err(StreamError::AlreadyApplied { to_seq: TO, .. })
            ));
        }
        let e = Expected {
            replica_seq: Some(FROM - 1),
            ..expected()
        };
        assert!(matches!(
            with(e),
            Err(StreamError::WrongSequence {
                expected: 9,
                found: FROM
            })
        ));
    }
}

#[test]
fn frames_from_the_wrong_offset_after_resume_are_refused() {
    for kind in KINDS {
        let (s, ends) = stream(kind, 1);
        for i in [1, 5, ends.len() - 3] {
            let cp = checkpoint_at(kind, &s, &ends, i);
            let next = cp.next_frame_seq();
            let resume = || Decoder::resume(config(kind), &cp).unwrap();
            // The frame before (a replay), the frame after (a gap), the header frame again.
            for (from, found) in [(ends[i - 1], next - 1), (ends[i + 1], next + 1), (0, 0)] {
                let mut d = resume();
                let r = feed(&mut d, &s[from..], &mut Out::default());
                assert!(
                    matches!(r, Err(StreamError::FrameOutOfOrder { expected, found: f })
                        if expected == next && f == found),
                    "{kind:?} at {i}, fed from {from}: {r:?}"
                );
                assert!(d.checkpoint().is_none());
            }
            // From inside a frame: refused before any record, never accepted.
            for delta in [1, 7, 24, 100] {
                let from = cp.stream_offset() as usize + delta;
                let mut d = resume();
                let mut out = Out::default();
                match feed(&mut d, &s[from..], &mut out) {
                    Err(_) => {}
                    Ok(_) => assert!(d.finish().is_err(), "{kind:?} fed from {from}"),
                }
                assert!(
                    out.records.is_empty() && out.end.is_none(),
                    "{kind:?} {from}"
                );
            }
        }
    }
}

#[test]
fn frames_of_another_stream_with_an_identical_header_never_end_successfully() {
    for kind in [KINDS[0], KINDS[1]] {
        // Plain streams of the same disk and checkpoints: identical header frames, other data.
        let (a, a_ends) = stream(kind, 1);
        let (b, b_ends) = stream(kind, 2);
        assert_eq!(a[..a_ends[0]], b[..b_ends[0]], "identical header frames");
        assert_ne!(a, b);
        // Cut after at least one record of A (cut right after the header, the rest of B is
        // simply stream B, a valid stream: nothing of A is mixed in).
        for i in [1, 2, 4, a_ends.len() / 2, a_ends.len() - 2] {
            let cp = checkpoint_at(kind, &a, &a_ends, i);
            assert!(cp.matches_header_frame(&b[..b_ends[0]]));
            let mut d = Decoder::resume(config(kind), &cp).unwrap();
            let mut out = Out::default();
            let r = feed(&mut d, &b[cp.stream_offset() as usize..], &mut out);
            assert!(
                out.end.is_none(),
                "{kind:?} cut at {i}: END must not verify"
            );
            assert!(d.finish().is_err());
            match (kind.codec, r) {
                // Raw frames have the same lengths: only the chained frame CRCs differ.
                (Codec::Raw, Err(StreamError::EndMismatch { what, .. })) => {
                    assert_eq!(what, "stream checksum")
                }
                (
                    Codec::Lz4,
                    Err(
                        StreamError::EndMismatch { .. }
                        | StreamError::FrameOutOfOrder { .. }
                        | StreamError::ChecksumMismatch { .. }
                        | StreamError::BadMagic { .. },
                    ),
                ) => {}
                (_, r) => panic!("{kind:?} cut at {i}: {r:?}"),
            }
        }
    }
    // Encrypted streams have a random salt each: the header frames differ, and the other
    // stream's frames fail authentication under the checkpoint's key.
    let kind = KINDS[3];
    let (a, a_ends) = stream(kind, 1);
    let (b, b_ends) = stream(kind, 1);
    let cp = checkpoint_at(kind, &a, &a_ends, 3);
    assert!(!cp.matches_header_frame(&b[..b_ends[0]]));
    assert!(cp.matches_header_frame(&a[..a_ends[0]]));
    let mut d = Decoder::resume(config(kind), &cp).unwrap();
    assert!(matches!(
        d.next(&b[cp.stream_offset() as usize..]),
        Err(StreamError::AuthenticationFailed { seq: 4 })
    ));
}

fn is_checkpoint_error(e: &StreamError) -> bool {
    matches!(
        e,
        StreamError::InvalidCheckpoint { .. } | StreamError::CheckpointChecksumMismatch { .. }
    )
}

#[test]
fn every_flipped_byte_and_every_truncation_of_a_stored_checkpoint_is_refused() {
    for kind in [KINDS[1], KINDS[3]] {
        let (s, ends) = stream(kind, 1);
        let stored = checkpoint_at(kind, &s, &ends, 7).to_bytes();
        for at in 0..stored.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut b = stored.clone();
                b[at] ^= x;
                match DecoderCheckpoint::from_bytes(&b) {
                    Ok(cp) => assert_eq!(cp.to_bytes(), b, "byte {at} ^ {x:#x}"),
                    Err(e) => assert!(is_checkpoint_error(&e), "byte {at} ^ {x:#x}: {e:?}"),
                }
            }
        }
        for len in 0..stored.len() {
            let e = DecoderCheckpoint::from_bytes(&stored[..len]).unwrap_err();
            assert!(is_checkpoint_error(&e), "truncated to {len}: {e:?}");
        }
        let mut longer = stored.clone();
        longer.push(0);
        assert!(is_checkpoint_error(
            &DecoderCheckpoint::from_bytes(&longer).unwrap_err()
        ));
    }
}

/// Re-signs a stored checkpoint's CRC (as a hostile writer of the file would).
fn resign(b: &mut [u8]) {
    let n = b.len() - 4;
    let crc = crc32fast::hash(&b[..n]);
    b[n..].copy_from_slice(&crc.to_le_bytes());
}

/// Re-signs a frame's CRC (docs/FORMAT.md, "Frames").
fn resign_frame(f: &mut [u8]) {
    let mut h = crc32fast::Hasher::new();
    h.update(&f[..20]);
    h.update(&f[24..]);
    let crc = h.finalize();
    f[20..24].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn re_signed_hostile_checkpoints_are_refused_each_with_its_own_reason() {
    let kind = KINDS[1];
    let (s, ends) = stream(kind, 1);
    let good = checkpoint_at(kind, &s, &ends, 4).to_bytes();
    let at0 = checkpoint_at(kind, &s, &ends, 0).to_bytes();
    const H: usize = 64; // the header frame inside a stored checkpoint
    let put = |b: &mut Vec<u8>, at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
    // (case, the check it hits: cases of one check share its message, checks differ, change)
    type Case = (&'static str, &'static str, Box<dyn Fn(&mut Vec<u8>)>);
    let cases: Vec<Case> = vec![
        ("magic", "magic", Box::new(|b| b[0] = b'X')),
        (
            "version 2",
            "version",
            Box::new(move |b| put(b, 8, &2u16.to_le_bytes())),
        ),
        (
            "reserved after version",
            "reserved",
            Box::new(|b| b[10] = 1),
        ),
        (
            "reserved after checksum",
            "reserved",
            Box::new(|b| b[63] = 1),
        ),
        (
            "header frame length 151",
            "frame length",
            Box::new(move |b| put(b, 12, &151u32.to_le_bytes())),
        ),
        (
            "header frame length 4121",
            "frame length",
            Box::new(move |b| put(b, 12, &4121u32.to_le_bytes())),
        ),
        (
            "header frame length past the data",
            "length",
            Box::new(move |b| put(b, 12, &153u32.to_le_bytes())),
        ),
        (
            "next seq 0",
            "next seq",
            Box::new(move |b| put(b, 16, &0u64.to_le_bytes())),
        ),
        (
            "records disagree with next seq",
            "records",
            Box::new(move |b| put(b, 40, &3u64.to_le_bytes())),
        ),
        (
            "disk size 0",
            "size",
            Box::new(move |b| put(b, 24, &0u64.to_le_bytes())),
        ),
        (
            "disk size 2^60 + 1",
            "size",
            Box::new(move |b| put(b, 24, &((1u64 << 60) + 1).to_le_bytes())),
        ),
        (
            "last end 2^60 + 1",
            "last end",
            Box::new(move |b| put(b, 32, &((1u64 << 60) + 1).to_le_bytes())),
        ),
        (
            "bytes below the header frame",
            "bytes",
            Box::new(move |b| put(b, 48, &100u64.to_le_bytes())),
        ),
        (
            "bytes below the records' minimum",
            "bytes",
            Box::new(move |b| put(b, 48, &(152u64 + 4 * 31).to_le_bytes())),
        ),
        (
            "bytes above the records' maximum",
            "bytes",
            Box::new(move |b| put(b, 48, &u64::MAX.to_le_bytes())),
        ),
        ("frame magic", "frame magic", Box::new(|b| b[H] = b'X')),
        ("frame type", "frame type", Box::new(|b| b[H + 4] = 2)),
        (
            "frame reserved",
            "frame reserved",
            Box::new(|b| b[H + 6] = 1),
        ),
        ("frame seq", "frame seq", Box::new(|b| b[H + 8] = 1)),
        (
            "frame body length",
            "frame body length",
            Box::new(|b| b[H + 16] = 129),
        ),
        ("frame crc", "frame crc", Box::new(|b| b[H + 20] ^= 1)),
        (
            "stream header magic, frame re-signed",
            "stream header",
            Box::new(|b| {
                b[H + 24] = b'X';
                resign_frame(&mut b[H..H + 152]);
            }),
        ),
        (
            "stream header to_seq <= from_seq, frame re-signed",
            "stream header",
            Box::new(|b| {
                b[H + 24 + 60..H + 24 + 68].copy_from_slice(&1u64.to_le_bytes());
                resign_frame(&mut b[H..H + 152]);
            }),
        ),
    ];
    let mut seen: Vec<(&str, String)> = Vec::new();
    for (what, check, change) in &cases {
        let mut b = good.clone();
        change(&mut b);
        resign(&mut b);
        let e = DecoderCheckpoint::from_bytes(&b).unwrap_err();
        assert!(
            matches!(e, StreamError::InvalidCheckpoint { .. }),
            "{what}: {e:?}"
        );
        let msg = e.to_string();
        for (c, m) in &seen {
            assert_eq!(c == check, *m == msg, "{what} ({msg}) against {c} ({m})");
        }
        seen.push((check, msg));
    }
    // Right after the header: the totals are fixed by the header frame.
    for (what, at, v) in [
        ("chain", 56, 0x1234_5678u64),
        ("disk size changed without a record", 24, 4096),
        ("extent end without a record", 32, 4096),
    ] {
        let mut b = at0.clone();
        if at == 56 {
            put(&mut b, at, &(v as u32).to_le_bytes());
        } else {
            put(&mut b, at, &v.to_le_bytes());
        }
        resign(&mut b);
        let e = DecoderCheckpoint::from_bytes(&b).unwrap_err();
        assert!(
            matches!(e, StreamError::InvalidCheckpoint { .. }),
            "{what}: {e:?}"
        );
    }
    // A CRC mismatch is its own error, and the two codes differ in C.
    let mut b = good.clone();
    b[20] ^= 1;
    let crc = DecoderCheckpoint::from_bytes(&b).unwrap_err();
    assert!(matches!(
        crc,
        StreamError::CheckpointChecksumMismatch { .. }
    ));
    use blockdelta::ffi::result::ToResult;
    let invalid = StreamError::InvalidCheckpoint { reason: "x" };
    assert_ne!(crc.to_result(), invalid.to_result());
    assert_eq!(crc.to_result() as u32, 237);
    assert_eq!(invalid.to_result() as u32, 236);
}

#[test]
fn a_re_signed_checkpoint_with_a_forged_chain_or_count_fails_at_end() {
    // A checkpoint that passes every check but lies about the running totals: the END record
    // catches it, never reporting success.
    let kind = KINDS[0];
    let (s, ends) = stream(kind, 1);
    let good = checkpoint_at(kind, &s, &ends, 6).to_bytes();
    for (at, what) in [(56, "stream checksum"), (48, "byte count")] {
        let mut b = good.clone();
        b[at] ^= 1;
        resign(&mut b);
        let cp = DecoderCheckpoint::from_bytes(&b).unwrap();
        let mut d = Decoder::resume(config(kind), &cp).unwrap();
        let mut out = Out::default();
        let r = feed(&mut d, &s[ends[6]..], &mut out);
        assert!(
            matches!(r, Err(StreamError::EndMismatch { what: w, .. }) if w == what),
            "{r:?}"
        );
        assert!(out.end.is_none());
    }
}

#[test]
fn from_bytes_never_panics_on_arbitrary_input() {
    let kind = KINDS[3];
    let (s, ends) = stream(kind, 1);
    let good = checkpoint_at(kind, &s, &ends, 2).to_bytes();
    let mut x = 0x2545_f491u32;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    for _ in 0..20_000 {
        let mut b = good.clone();
        for _ in 0..1 + rnd() % 4 {
            let at = rnd() as usize % b.len();
            b[at] = rnd() as u8;
        }
        if rnd() % 2 == 0 {
            resign(&mut b);
        }
        if let Ok(cp) = DecoderCheckpoint::from_bytes(&b) {
            assert_eq!(cp.to_bytes(), b, "an accepted checkpoint is canonical");
            // Whatever was accepted resumes or fails cleanly.
            let _ = Decoder::resume(config(kind), &cp);
        }
    }
    for len in [0usize, 1, 8, 10, 63, 64, 67, 68, 200] {
        let zeros = vec![0u8; len];
        assert!(DecoderCheckpoint::from_bytes(&zeros).is_err());
        let mut m = zeros.clone();
        m[..len.min(8)].copy_from_slice(&b"BDRESUME"[..len.min(8)]);
        assert!(DecoderCheckpoint::from_bytes(&m).is_err());
    }
}
