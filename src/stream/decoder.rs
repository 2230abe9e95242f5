//! The decoder: verifies frames and hands out records. Every input byte is hostile.
//!
//! A frame is returned only after all of it has been checked: length limit, CRC32, sequence
//! number, AES-GCM tag (when encrypted), record fields, extent order and disk bounds, lz4
//! decompression to the exact declared length. Nothing of a frame that fails is returned, so an
//! applier never writes unverified data. After any error the decoder is poisoned.
//!
//! A record frame's checks come in two halves, in `docs/FORMAT.md`'s order: [`verify_record`]
//! needs nothing but the frame, the header and the key (framing aside: [`frame_len`]), and
//! `Position::accept` needs what came before (extent order and bounds, RESIZE, END totals).
//! The decoder runs both per frame; the parallel applier runs the first on its decode threads
//! and the second in stream order ([`Decoder::accept_verified`]).
//!
//! `Decoder::new` allocates nothing. Scratch is allocated once per stream, when its header is
//! accepted, and only what the stream needs: a copy of the header frame (the associated data of
//! every sealed frame, at most about 4 KiB) and, sized by the record size its header declares,
//! a decompression buffer for an lz4 stream
//! and a plaintext buffer for an encrypted one (about 1x and 1x the record size; at most 2 MiB in
//! all). Decoding a record allocates nothing. (The one exception is a frame larger than the
//! declared record size allows, which only a later writer's optional record type could be: the
//! plaintext buffer grows for it.) Unencrypted raw DATA is returned zero-copy from the input.
//!
//! A cut stream can be continued: [`Decoder::checkpoint`] captures the position at the last frame
//! boundary as a [`DecoderCheckpoint`] (storable with [`DecoderCheckpoint::to_bytes`]), and
//! [`Decoder::resume`] builds a decoder that expects the frame at
//! [`DecoderCheckpoint::stream_offset`], allocating the same scratch as accepting the header.

use ring::aead::LessSafeKey;

use super::crypto::{self, Secret};
use super::encoder::{check_range, frame_bound};
use super::error::{Result, StreamError};
use super::format::*;
use super::header::{CipherSuite, StreamHeader};
use super::record::{Bookmark, BookmarkKind, Codec, EndSummary, Record};
use crate::tracker::GenerationId;

/// What the replica expects of a stream; `None` fields are not checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// The replica's disk.
    pub disk_id: Option<[u8; 16]>,
    /// The tracker generation the replica follows.
    pub generation: Option<GenerationId>,
    /// The checkpoint the replica is at. A stream is accepted iff
    /// `from_seq <= replica_seq < to_seq`: a stream with `to_seq <= replica_seq` was already
    /// applied ([`StreamError::AlreadyApplied`]; a stream that was applied can never be applied
    /// again), one with `from_seq > replica_seq` would leave a gap
    /// ([`StreamError::WrongSequence`]). `None`: not checked.
    pub replica_seq: Option<u64>,
}

/// Decoder settings.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct DecoderConfig {
    /// The secret for encrypted streams. When set, unencrypted streams are refused.
    pub secret: Option<Secret>,
    /// What the stream must match.
    pub expected: Expected,
}

impl DecoderConfig {
    /// No secret, no expectations.
    pub fn new() -> Self {
        Self::default()
    }

    /// With a secret (encrypted streams only).
    pub fn with_secret(mut self, secret: Secret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// With expectations.
    pub fn with_expected(mut self, expected: Expected) -> Self {
        self.expected = expected;
        self
    }
}

/// The outcome of one [`Decoder::next`] call.
#[derive(Debug)]
#[non_exhaustive]
pub enum Decoded<'a> {
    /// `input` does not hold a whole frame yet: call again with at least `needed` bytes
    /// (counted from the start of `input`). Nothing was consumed.
    NeedMore {
        /// Bytes needed.
        needed: usize,
    },
    /// The stream header was verified; `consumed` bytes of input were used.
    Header {
        /// The header.
        header: StreamHeader,
        /// Bytes consumed.
        consumed: usize,
    },
    /// A record was verified; `consumed` bytes of input were used.
    Record {
        /// The record (borrowing the input or the decoder until the next call).
        record: Record<'a>,
        /// Bytes consumed.
        consumed: usize,
    },
}

/// Input bytes, read-only or owned by the caller for in-place decryption.
pub(crate) enum Input<'a> {
    Shared(&'a [u8]),
    Mut(&'a mut [u8]),
}

impl<'a> Input<'a> {
    fn view(&self) -> &[u8] {
        match self {
            Input::Shared(s) => s,
            Input::Mut(m) => m,
        }
    }

    fn len(&self) -> usize {
        self.view().len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn into_range(self, r: std::ops::Range<usize>) -> Input<'a> {
        match self {
            Input::Shared(s) => Input::Shared(&s[r]),
            Input::Mut(m) => Input::Mut(&mut m[r]),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Header,
    Body,
    Ended,
    Failed,
}

/// Decodes one stream. See the module documentation.
pub struct Decoder {
    secret: Option<Secret>,
    expected: Expected,
    state: State,
    header: Option<StreamHeader>,
    key: Option<LessSafeKey>,
    /// Header frame bytes followed by room for one signed frame header: the AEAD associated data.
    aad: Vec<u8>,
    aad_header_len: usize,
    /// An encrypted frame's body, copied out of a borrowed input to be opened; sized at the header.
    plain: Vec<u8>,
    /// Decompressed lz4 DATA; sized at the header.
    decomp: Vec<u8>,
    pos: Position,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("state", &self.state)
            .field("header", &self.header)
            .field("next_seq", &self.pos.next_seq)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// A decoder. Its scratch is allocated when the stream header is accepted (see the module
    /// documentation).
    pub fn new(config: DecoderConfig) -> Self {
        Decoder {
            secret: config.secret,
            expected: config.expected,
            state: State::Header,
            header: None,
            key: None,
            aad: Vec::new(),
            aad_header_len: 0,
            plain: Vec::new(),
            decomp: Vec::new(),
            pos: Position::new(),
        }
    }

    /// Replaces the expectations; only before the header has been decoded.
    pub fn set_expected(&mut self, expected: Expected) -> Result<()> {
        if self.state != State::Header {
            return Err(StreamError::InvalidState {
                reason: "expectations must be set before the header",
            });
        }
        self.expected = expected;
        Ok(())
    }

    /// The stream header, once decoded.
    pub fn header(&self) -> Option<&StreamHeader> {
        self.header.as_ref()
    }

    /// The disk size in force (header size, changed by RESIZE records).
    pub fn disk_size(&self) -> u64 {
        self.pos.size
    }

    /// True once a verified END record has been returned.
    pub fn is_finished(&self) -> bool {
        self.state == State::Ended
    }

    /// Call at the end of input: the END totals if the stream was complete, `Truncated` if it
    /// stopped before END, or `Poisoned` after an earlier error.
    pub fn finish(&self) -> Result<EndSummary> {
        match (self.state, self.pos.end) {
            (State::Ended, Some(end)) => Ok(end),
            (State::Failed, _) => Err(StreamError::Poisoned),
            _ => Err(StreamError::Truncated {
                frames: self.pos.next_seq,
                bytes: self.pos.bytes,
            }),
        }
    }

    /// The decoder's position at the last frame boundary, to continue the stream later with
    /// [`Decoder::resume`] (see [`DecoderCheckpoint`]). `Some` only between the header and END
    /// of a stream that has had no error; after `NeedMore` it is the boundary before the partial
    /// frame. Allocates the checkpoint (a copy of the header frame).
    pub fn checkpoint(&self) -> Option<DecoderCheckpoint> {
        if self.state != State::Body {
            return None;
        }
        let header = self.header?;
        Some(DecoderCheckpoint {
            header_frame: self.aad[..self.aad_header_len].to_vec(),
            header,
            next_seq: self.pos.next_seq,
            size: self.pos.size,
            last_end: self.pos.last_end,
            records: self.pos.records,
            bytes: self.pos.bytes,
            chain: self.pos.chain.clone().finalize(),
        })
    }

    /// A decoder that continues a stream at `checkpoint`: it expects the frame that starts at
    /// [`DecoderCheckpoint::stream_offset`].
    ///
    /// The checkpoint's header frame is verified exactly as a fresh decode of it would be, with
    /// `config`'s secret and expectations (so `KeyRequired`, `EncryptionRequired`, `WrongDisk`,
    /// `WrongGeneration`, `AlreadyApplied`, `WrongSequence` are checked again, with the same
    /// errors); then the key is derived, the scratch allocated and the counters restored
    /// (sequence, disk size, extent order, END totals and the running END checksum). A wrong
    /// secret, as for a fresh stream, shows at the first sealed frame (`AuthenticationFailed`).
    pub fn resume(config: DecoderConfig, checkpoint: &DecoderCheckpoint) -> Result<Decoder> {
        let mut d = Decoder::new(config);
        let frame = &checkpoint.header_frame;
        match d.next(frame)? {
            Decoded::Header { consumed, .. } if consumed == frame.len() => {}
            // `from_bytes` and `checkpoint` only hold whole, valid header frames.
            _ => {
                return Err(StreamError::InvalidCheckpoint {
                    reason: "its header frame is not one whole frame",
                })
            }
        }
        d.pos.next_seq = checkpoint.next_seq;
        d.pos.size = checkpoint.size;
        d.pos.last_end = checkpoint.last_end;
        d.pos.records = checkpoint.records;
        d.pos.bytes = checkpoint.bytes;
        // The running CRC's state is its `finalize` value; the length only matters to `combine`.
        let hashed = checkpoint.next_seq.saturating_mul(FRAME_HEADER_LEN as u64);
        d.pos.chain = crc32fast::Hasher::new_with_initial_len(checkpoint.chain, hashed);
        Ok(d)
    }

    /// Verifies the frame at the start of `input` and returns what it holds, or asks for more
    /// bytes. See [`Decoded`]. An encrypted frame is copied into the decoder's scratch to be
    /// opened; [`Decoder::next_in_place`] avoids that copy.
    pub fn next<'a>(&'a mut self, input: &'a [u8]) -> Result<Decoded<'a>> {
        self.step(Input::Shared(input))
    }

    /// As [`Decoder::next`], but opens an encrypted frame in place in `input`, saving a copy:
    /// after the call the bytes of a returned frame hold its plaintext (or, after an
    /// authentication failure, zeros) and must not be fed again.
    pub fn next_in_place<'a>(&'a mut self, input: &'a mut [u8]) -> Result<Decoded<'a>> {
        self.step(Input::Mut(input))
    }

    fn step<'a>(&'a mut self, input: Input<'a>) -> Result<Decoded<'a>> {
        match self.state {
            State::Failed => return Err(StreamError::Poisoned),
            State::Ended if input.is_empty() => {
                return Err(StreamError::InvalidState {
                    reason: "the stream already ended",
                })
            }
            State::Ended => return Err(StreamError::TrailingData { len: input.len() }),
            _ => {}
        }
        // Poisoned unless the frame is accepted: every success path below sets the new state.
        let state = std::mem::replace(&mut self.state, State::Failed);
        self.next_inner(state, input)
    }

    fn next_inner<'a>(&'a mut self, state: State, input: Input<'a>) -> Result<Decoded<'a>> {
        let total = match frame_len(input.view(), state == State::Header)? {
            FrameLen::Whole(total) => total,
            FrameLen::NeedMore(needed) => {
                self.state = state;
                return Ok(Decoded::NeedMore { needed });
            }
        };
        if state == State::Header {
            let frame = &input.view()[..total];
            check_frame(frame, self.pos.next_seq)?;
            return match frame[4] {
                FRAME_TYPE_HEADER => {
                    let header = self.accept_header(frame)?;
                    Ok(Decoded::Header {
                        header,
                        consumed: total,
                    })
                }
                FRAME_TYPE_RECORD => Err(StreamError::UnexpectedFrame {
                    reason: "a record frame came before the stream header",
                }),
                _ => Err(StreamError::MalformedFrame {
                    reason: "unknown frame type",
                }),
            };
        }
        let mut fh = [0u8; FRAME_HEADER_LEN];
        fh.copy_from_slice(&input.view()[..FRAME_HEADER_LEN]);
        // Split the borrows: the record may point into `plain` or `decomp` while the position
        // is updated.
        let Decoder {
            header,
            key,
            aad,
            plain,
            decomp,
            pos,
            state: new_state,
            ..
        } = self;
        let header = header.as_ref().ok_or(StreamError::InvalidState {
            reason: "no header",
        })?;
        let seq = pos.next_seq;
        let frame = input.into_range(0..total);
        let (verified, rec) = verify_record(header, key.as_ref(), aad, seq, frame, plain, decomp)?;
        let record = pos.accept(&fh, total, verified, rec, decomp)?;
        *new_state = if matches!(record, Record::End(_)) {
            State::Ended
        } else {
            State::Body
        };
        Ok(Decoded::Record {
            record,
            consumed: total,
        })
    }

    /// A copy of the stream's key (none for an unencrypted stream or before the header), for the
    /// parallel applier's decode threads.
    pub(crate) fn stream_key(&self) -> Option<LessSafeKey> {
        self.key.clone()
    }

    /// The accepted header frame (empty before the header): the start of every sealed frame's
    /// associated data.
    pub(crate) fn header_frame(&self) -> &[u8] {
        &self.aad[..self.aad_header_len]
    }

    /// The ordered half of decoding a record frame whose other half, [`verify_record`], ran
    /// elsewhere (a decode thread of the parallel applier): `frame` is the whole frame as
    /// received (its 24-byte frame header is what counts), `verified` what `verify_record`
    /// returned for it (an error is taken as this frame's error), `rec` and `decomp` the
    /// plaintext record and decompression buffer it returned them in. Any error poisons the
    /// decoder, as in [`Decoder::next`].
    pub(crate) fn accept_verified<'a>(
        &mut self,
        frame: &[u8],
        verified: Result<Verified>,
        rec: &'a [u8],
        decomp: &'a [u8],
    ) -> Result<Record<'a>> {
        match self.state {
            State::Body => {}
            State::Failed => return Err(StreamError::Poisoned),
            State::Ended => return Err(StreamError::TrailingData { len: frame.len() }),
            State::Header => {
                return Err(StreamError::InvalidState {
                    reason: "a record before the stream header",
                })
            }
        }
        self.state = State::Failed;
        let record = self
            .pos
            .accept(frame, frame.len(), verified?, rec, decomp)?;
        self.state = if matches!(record, Record::End(_)) {
            State::Ended
        } else {
            State::Body
        };
        Ok(record)
    }

    fn accept_header(&mut self, frame: &[u8]) -> Result<StreamHeader> {
        let h = StreamHeader::parse(&frame[FRAME_HEADER_LEN..])?;
        let e = self.expected;
        if let Some(expected) = e.disk_id.filter(|d| *d != h.disk_id) {
            return Err(StreamError::WrongDisk {
                expected,
                found: h.disk_id,
            });
        }
        if let Some(expected) = e.generation.filter(|g| *g != h.generation) {
            return Err(StreamError::WrongGeneration {
                expected,
                found: h.generation,
            });
        }
        if let Some(replica_seq) = e.replica_seq {
            if h.to_seq <= replica_seq {
                return Err(StreamError::AlreadyApplied {
                    to_seq: h.to_seq,
                    replica_seq,
                });
            }
            if h.from_seq > replica_seq {
                return Err(StreamError::WrongSequence {
                    expected: replica_seq,
                    found: h.from_seq,
                });
            }
        }
        self.key = match (h.cipher, &self.secret) {
            (CipherSuite::None, None) => None,
            (CipherSuite::None, Some(_)) => return Err(StreamError::EncryptionRequired),
            (CipherSuite::Aes256GcmHkdfSha256, None) => return Err(StreamError::KeyRequired),
            (CipherSuite::Aes256GcmHkdfSha256, Some(s)) => Some(crypto::derive_key(s, &h)?),
        };
        // The stream's scratch, sized by the record size it declares (validated by `parse`).
        let payload = h.max_record_payload as usize;
        if self.key.is_some() {
            let body = frame_bound(h.max_record_payload, true) - FRAME_HEADER_LEN;
            grow_zeroed(&mut self.plain, body);
        }
        if h.required_features & FEATURE_REQUIRED_LZ4 != 0 {
            grow_zeroed(&mut self.decomp, payload);
        }
        // The associated data of every record frame: this header frame, then a frame header.
        self.aad.clear();
        self.aad
            .reserve_exact(frame.len() + FRAME_HEADER_SIGNED_LEN);
        self.aad.extend_from_slice(frame);
        self.aad.resize(frame.len() + FRAME_HEADER_SIGNED_LEN, 0);
        self.aad_header_len = frame.len();
        self.pos.chain.update(&frame[..FRAME_HEADER_LEN]);
        self.pos.bytes = frame.len() as u64;
        self.pos.next_seq = 1;
        self.pos.size = h.disk_size;
        self.header = Some(h);
        self.state = State::Body;
        Ok(h)
    }
}

/// How much of a frame's input is there: see [`frame_len`].
pub(crate) enum FrameLen {
    /// The whole frame, this many bytes long, is at the start of the input.
    Whole(usize),
    /// The input must be at least this long for the frame to be whole.
    NeedMore(usize),
}

/// The framing checks that need only the 24-byte frame header (magic, a record frame where the
/// header is due, the body length limit) and the frame's length. `header` says whether the stream
/// header frame is due (else a record frame). The first checks of every frame, in
/// `docs/FORMAT.md`'s order; the decoder and the parallel applier's splitter both use it.
pub(crate) fn frame_len(view: &[u8], header: bool) -> Result<FrameLen> {
    if view.len() < FRAME_HEADER_LEN {
        if view.len() >= 4 && view[..4] != FRAME_MAGIC {
            return Err(StreamError::BadMagic { what: "frame" });
        }
        return Ok(FrameLen::NeedMore(FRAME_HEADER_LEN));
    }
    if view[..4] != FRAME_MAGIC {
        return Err(StreamError::BadMagic { what: "frame" });
    }
    let body_len = get_u32(view, 16) as usize;
    if header && view[4] == FRAME_TYPE_RECORD {
        // Checked before the length limit: a stream without its header says so, whatever
        // the first frame's length.
        return Err(StreamError::UnexpectedFrame {
            reason: "the stream does not start with a header frame",
        });
    }
    let max = if header {
        MAX_HEADER_LEN
    } else {
        MAX_RECORD_BODY
    };
    if body_len > max {
        return Err(StreamError::OversizedLength {
            what: "frame body length",
            len: body_len as u64,
            max: max as u64,
        });
    }
    let total = FRAME_HEADER_LEN + body_len;
    Ok(if view.len() < total {
        FrameLen::NeedMore(total)
    } else {
        FrameLen::Whole(total)
    })
}

/// The checks of a whole frame that follow the framing: CRC32, reserved bits, sequence number.
fn check_frame(frame: &[u8], expected_seq: u64) -> Result<()> {
    let seq = get_u64(frame, 8);
    let stored = get_u32(frame, FRAME_HEADER_SIGNED_LEN);
    let computed = frame_crc(
        &frame[..FRAME_HEADER_SIGNED_LEN],
        &frame[FRAME_HEADER_LEN..],
    );
    if stored != computed {
        return Err(StreamError::ChecksumMismatch {
            seq,
            stored,
            computed,
        });
    }
    if frame[5] != 0 || get_u16(frame, 6) != 0 {
        return Err(StreamError::MalformedFrame {
            reason: "reserved frame header bits are set",
        });
    }
    if seq != expected_seq {
        return Err(StreamError::FrameOutOfOrder {
            expected: expected_seq,
            found: seq,
        });
    }
    Ok(())
}

/// A record frame after every check that needs no position in the stream ([`verify_record`]).
/// Bytes stay where `verify_record` left them: a raw DATA payload and a bookmark label in the
/// plaintext record it returns, lz4 DATA decompressed at the start of its `decomp` buffer.
#[derive(Debug)]
pub(crate) enum Verified {
    /// DATA of `len` bytes at `offset`. `codec` is the outcome of the checks and decoding that
    /// follow the extent check in the format's order: reported only once the extent is checked.
    Data {
        offset: u64,
        len: u64,
        codec: Result<Codec>,
    },
    /// A BOOKMARK; its label (not yet checked for UTF-8) ends the record.
    Bookmark {
        id: u64,
        timestamp_ns: u64,
        kind: BookmarkKind,
    },
    /// END with the totals it states.
    End(EndSummary),
    /// A record without bytes: ZERO, DISCARD, RESIZE or a skipped one.
    Plain(Record<'static>),
}

/// The checks and decoding of a whole record frame that need no position in the stream: CRC32,
/// reserved bits, the sequence number `seq` it must carry, frame type, AES-GCM open (with `key`,
/// and `aad`: the header frame followed by room for a signed frame header), record fields and
/// lz4 decompression into `decomp`. Pure: it reads nothing of the decoder's position, so the
/// parallel applier's decode threads run it on frames out of order; [`Position::accept`] does
/// the rest in stream order. Returns what the record holds and the plaintext record, which
/// borrows `frame` (unencrypted, or opened in place) or `plain` (an encrypted shared frame is
/// copied there to be opened).
pub(crate) fn verify_record<'a>(
    header: &StreamHeader,
    key: Option<&LessSafeKey>,
    aad: &mut [u8],
    seq: u64,
    frame: Input<'a>,
    plain: &'a mut Vec<u8>,
    decomp: &mut [u8],
) -> Result<(Verified, &'a [u8])> {
    let view = frame.view();
    check_frame(view, seq)?;
    let total = view.len();
    match view[4] {
        FRAME_TYPE_RECORD => {}
        FRAME_TYPE_HEADER => {
            return Err(StreamError::UnexpectedFrame {
                reason: "a second stream header",
            })
        }
        _ => {
            return Err(StreamError::MalformedFrame {
                reason: "unknown frame type",
            })
        }
    }
    let mut fh = [0u8; FRAME_HEADER_SIGNED_LEN];
    fh.copy_from_slice(&view[..FRAME_HEADER_SIGNED_LEN]);
    let body = frame.into_range(FRAME_HEADER_LEN..total);
    let rec: &'a [u8] = match (key, body) {
        (Some(key), body) => {
            let header_len = aad.len() - FRAME_HEADER_SIGNED_LEN;
            aad[header_len..].copy_from_slice(&fh);
            let buf: &'a mut [u8] = match body {
                Input::Mut(b) => b,
                Input::Shared(b) => {
                    // Only a frame above the declared record size (an optional record type
                    // of a later writer) can need more than the header provided for.
                    grow_zeroed(plain, b.len());
                    let buf = &mut plain[..b.len()];
                    buf.copy_from_slice(b);
                    buf
                }
            };
            let n = crypto::open(key, header.nonce_prefix, seq, aad, buf)?;
            &buf[..n]
        }
        (None, Input::Shared(b)) => b,
        (None, Input::Mut(b)) => b,
    };
    Ok((parse_record(header, rec, decomp)?, rec))
}

/// The record fields of a plaintext record (see [`verify_record`]).
fn parse_record(header: &StreamHeader, rec: &[u8], decomp: &mut [u8]) -> Result<Verified> {
    if rec.len() < RECORD_HEADER_LEN {
        return Err(StreamError::MalformedFrame {
            reason: "frame body shorter than a record header",
        });
    }
    let rtype = get_u16(rec, 0);
    let malformed = |reason| StreamError::MalformedRecord {
        record_type: rtype,
        reason,
    };
    if get_u16(rec, 2) != 0 {
        return Err(malformed("reserved record header bits are set"));
    }
    let value_len = get_u32(rec, 4) as usize;
    let v = &rec[RECORD_HEADER_LEN..];
    if value_len != v.len() {
        return Err(malformed("record length disagrees with the frame length"));
    }
    Ok(match rtype {
        REC_DATA => {
            if v.len() < DATA_FIELDS_LEN {
                return Err(malformed("DATA record shorter than its fields"));
            }
            let offset = get_u64(v, 0);
            let raw_len = get_u32(v, 8) as usize;
            let stored_len = get_u32(v, 12) as usize;
            let codec = v[16];
            if v[17..24] != [0u8; 7] {
                return Err(malformed("reserved DATA fields are not zero"));
            }
            if raw_len > header.max_record_payload as usize {
                return Err(StreamError::OversizedLength {
                    what: "DATA raw length",
                    len: raw_len as u64,
                    max: header.max_record_payload.into(),
                });
            }
            if raw_len == 0 {
                return Err(malformed("empty DATA record"));
            }
            let payload = &v[DATA_FIELDS_LEN..];
            if stored_len != payload.len() {
                return Err(malformed("stored length disagrees with the record length"));
            }
            // What follows comes after the extent check in the format's order: its outcome is
            // kept for `Position::accept` to report once the extent is checked.
            let codec = match codec {
                CODEC_RAW if stored_len != raw_len => Err(malformed(
                    "raw DATA stored length differs from its raw length",
                )),
                CODEC_RAW => Ok(Codec::Raw),
                CODEC_LZ4 if header.required_features & FEATURE_REQUIRED_LZ4 == 0 => Err(
                    malformed("lz4 DATA in a stream that did not declare the lz4 feature"),
                ),
                CODEC_LZ4 => {
                    let out = &mut decomp[..raw_len];
                    match lz4_flex::block::decompress_into(payload, out) {
                        Ok(n) if n == raw_len => Ok(Codec::Lz4),
                        _ => Err(StreamError::DecompressFailed { offset }),
                    }
                }
                codec => Err(StreamError::UnknownCodec { codec }),
            };
            Verified::Data {
                offset,
                len: raw_len as u64,
                codec,
            }
        }
        REC_ZERO | REC_DISCARD => {
            if v.len() != RANGE_FIELDS_LEN {
                return Err(malformed("ZERO/DISCARD record must be 16 bytes"));
            }
            let offset = get_u64(v, 0);
            let len = get_u64(v, 8);
            if len == 0 {
                return Err(malformed("empty range"));
            }
            Verified::Plain(if rtype == REC_ZERO {
                Record::Zero { offset, len }
            } else {
                Record::Discard { offset, len }
            })
        }
        REC_RESIZE => {
            if v.len() != RESIZE_FIELDS_LEN {
                return Err(malformed("RESIZE record must be 8 bytes"));
            }
            let new_size = get_u64(v, 0);
            super::header::check_disk_size("RESIZE record", new_size)?;
            Verified::Plain(Record::Resize { new_size })
        }
        REC_BOOKMARK => {
            if v.len() < BOOKMARK_FIELDS_LEN {
                return Err(malformed("BOOKMARK record shorter than its fields"));
            }
            let kind = BookmarkKind::from_code(v[16]).ok_or(malformed("unknown bookmark kind"))?;
            if v[17] != 0 || get_u32(v, 20) != 0 {
                return Err(malformed("reserved BOOKMARK fields are not zero"));
            }
            let label_len = usize::from(get_u16(v, 18));
            if label_len > MAX_LABEL_LEN {
                return Err(StreamError::OversizedLength {
                    what: "bookmark label",
                    len: label_len as u64,
                    max: MAX_LABEL_LEN as u64,
                });
            }
            if label_len != v.len() - BOOKMARK_FIELDS_LEN {
                return Err(malformed("label length disagrees with the record length"));
            }
            Verified::Bookmark {
                id: get_u64(v, 0),
                timestamp_ns: get_u64(v, 8),
                kind,
            }
        }
        REC_END => {
            if v.len() != END_FIELDS_LEN {
                return Err(malformed("END record must be 24 bytes"));
            }
            if get_u32(v, 20) != 0 {
                return Err(malformed("reserved END fields are not zero"));
            }
            Verified::End(EndSummary {
                records: get_u64(v, 0),
                bytes: get_u64(v, 8),
                checksum: get_u32(v, 16),
            })
        }
        t if t & MUST_UNDERSTAND != 0 => {
            return Err(StreamError::UnknownRequiredRecord { record_type: t })
        }
        t => Verified::Plain(Record::Skipped { record_type: t }),
    })
}

/// A decoder's position in its stream: what the checks of a record frame need besides the frame
/// (next sequence number, disk size in force, end of the last extent) and the END totals so far.
#[derive(Clone, Debug)]
struct Position {
    next_seq: u64,
    size: u64,
    last_end: u64,
    records: u64,
    bytes: u64,
    chain: crc32fast::Hasher,
    end: Option<EndSummary>,
}

impl Position {
    fn new() -> Self {
        Position {
            next_seq: 0,
            size: 0,
            last_end: 0,
            records: 0,
            bytes: 0,
            chain: crc32fast::Hasher::new(),
            end: None,
        }
    }

    /// The checks of a [`verify_record`]ed frame that depend on the frames before it, in stream
    /// order: extent order and bounds, RESIZE, END totals; then the record with its bytes
    /// (`rec` and `decomp` as `verify_record` left them), and the position moves past the frame
    /// (`fh` its frame header, `total` its length).
    fn accept<'a>(
        &mut self,
        fh: &[u8],
        total: usize,
        verified: Verified,
        rec: &'a [u8],
        decomp: &'a [u8],
    ) -> Result<Record<'a>> {
        let record = match verified {
            Verified::Data { offset, len, codec } => {
                check_range(offset, len, self.last_end, self.size)?;
                let codec = codec?;
                let data = match codec {
                    Codec::Raw => rec.get(RECORD_HEADER_LEN + DATA_FIELDS_LEN..),
                    Codec::Lz4 => decomp.get(..len as usize),
                };
                let data = data.ok_or(StreamError::InvalidState {
                    reason: "verified DATA is not where verify_record left it",
                })?;
                self.last_end = offset + len;
                Record::Data {
                    offset,
                    data,
                    codec,
                }
            }
            Verified::Plain(
                record @ (Record::Zero { offset, len } | Record::Discard { offset, len }),
            ) => {
                check_range(offset, len, self.last_end, self.size)?;
                self.last_end = offset + len;
                record
            }
            Verified::Plain(record @ Record::Resize { new_size }) => {
                self.size = new_size;
                record
            }
            Verified::Bookmark {
                id,
                timestamp_ns,
                kind,
            } => {
                let label = rec
                    .get(RECORD_HEADER_LEN + BOOKMARK_FIELDS_LEN..)
                    .and_then(|l| std::str::from_utf8(l).ok())
                    .ok_or(StreamError::MalformedRecord {
                        record_type: REC_BOOKMARK,
                        reason: "bookmark label is not UTF-8",
                    })?;
                Record::Bookmark(Bookmark {
                    id,
                    timestamp_ns,
                    kind,
                    label,
                })
            }
            Verified::End(stored) => {
                let computed = EndSummary {
                    records: self.records,
                    bytes: self.bytes,
                    checksum: self.chain.clone().finalize(),
                };
                let totals = [
                    ("record count", stored.records, computed.records),
                    ("byte count", stored.bytes, computed.bytes),
                    (
                        "stream checksum",
                        stored.checksum.into(),
                        computed.checksum.into(),
                    ),
                ];
                for (what, stored, computed) in totals {
                    if stored != computed {
                        return Err(StreamError::EndMismatch {
                            what,
                            stored,
                            computed,
                        });
                    }
                }
                self.end = Some(computed);
                self.next_seq += 1;
                return Ok(Record::End(computed));
            }
            Verified::Plain(record) => record,
        };
        self.next_seq += 1;
        self.records += 1;
        self.bytes += total as u64;
        self.chain.update(&fh[..FRAME_HEADER_LEN]);
        Ok(record)
    }
}

/// Magic at the start of an encoded [`DecoderCheckpoint`].
const CHECKPOINT_MAGIC: [u8; 8] = *b"BDRESUME";
/// The checkpoint encoding this implementation writes and reads.
const CHECKPOINT_VERSION: u16 = 1;
/// Fixed fields of an encoded checkpoint, before the header frame.
const CHECKPOINT_FIXED_LEN: usize = 64;
/// The trailing CRC32.
const CHECKPOINT_CRC_LEN: usize = 4;
/// Smallest record frame: a frame header and a record header.
const MIN_RECORD_FRAME: u64 = (FRAME_HEADER_LEN + RECORD_HEADER_LEN) as u64;
/// Largest record frame.
const MAX_RECORD_FRAME: u64 = (FRAME_HEADER_LEN + MAX_RECORD_BODY) as u64;

/// Where a [`Decoder`] stands in a stream, at a frame boundary after the header and before END:
/// enough to continue decoding the same stream later, in another decoder or another process
/// ([`Decoder::resume`]), when the sender re-sends the stream from
/// [`stream_offset`](DecoderCheckpoint::stream_offset).
///
/// It holds the exact header frame (so only the same stream can continue it: an encrypted
/// stream's salt is random per stream, and for a plain stream the END checksum chains every frame
/// header), the next frame's sequence number, the disk size in force, the end of the last
/// extent, the END totals so far and the running END checksum. It holds no key or secret.
///
/// [`to_bytes`](DecoderCheckpoint::to_bytes) / [`from_bytes`](DecoderCheckpoint::from_bytes)
/// store it (layout in `docs/FORMAT.md`, "Resuming a cut stream"); `from_bytes` treats its input
/// as hostile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecoderCheckpoint {
    header_frame: Vec<u8>,
    header: StreamHeader,
    next_seq: u64,
    size: u64,
    last_end: u64,
    records: u64,
    bytes: u64,
    chain: u32,
}

impl DecoderCheckpoint {
    /// The byte offset in the stream of the next frame: the sender resumes sending here (the
    /// bytes of every frame verified so far, header frame included).
    pub fn stream_offset(&self) -> u64 {
        self.bytes
    }

    /// The stream's header.
    pub fn header(&self) -> StreamHeader {
        self.header
    }

    /// The sequence number of the next frame.
    pub fn next_frame_seq(&self) -> u64 {
        self.next_seq
    }

    /// Record frames verified so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// True iff `header_frame` (a whole header frame: 24-byte frame header and body) is byte for
    /// byte the header frame of the checkpoint's stream. A store can check a re-sent stream's
    /// first frame with it before asking for the rest.
    pub fn matches_header_frame(&self, header_frame: &[u8]) -> bool {
        self.header_frame == header_frame
    }

    /// The checkpoint's stored form (`docs/FORMAT.md`, "Resuming a cut stream"): versioned,
    /// little-endian, with a CRC32 over all of it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.header_frame.len();
        let mut b = vec![0u8; CHECKPOINT_FIXED_LEN + n + CHECKPOINT_CRC_LEN];
        b[0..8].copy_from_slice(&CHECKPOINT_MAGIC);
        put_u16(&mut b, 8, CHECKPOINT_VERSION);
        put_u32(&mut b, 12, n as u32);
        put_u64(&mut b, 16, self.next_seq);
        put_u64(&mut b, 24, self.size);
        put_u64(&mut b, 32, self.last_end);
        put_u64(&mut b, 40, self.records);
        put_u64(&mut b, 48, self.bytes);
        put_u32(&mut b, 56, self.chain);
        b[CHECKPOINT_FIXED_LEN..CHECKPOINT_FIXED_LEN + n].copy_from_slice(&self.header_frame);
        let crc = crc32fast::hash(&b[..CHECKPOINT_FIXED_LEN + n]);
        put_u32(&mut b, CHECKPOINT_FIXED_LEN + n, crc);
        b
    }

    /// Parses a stored checkpoint. The input is hostile (a file): a wrong magic, an unknown
    /// version, a wrong length, a CRC mismatch
    /// ([`CheckpointChecksumMismatch`](StreamError::CheckpointChecksumMismatch)), non-zero
    /// reserved fields, a header frame that is not a valid one, or counters that no decoder
    /// could have reached ([`InvalidCheckpoint`](StreamError::InvalidCheckpoint), each with its
    /// own reason) are refused. Secret and expectations are checked by [`Decoder::resume`].
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let bad = |reason| Err(StreamError::InvalidCheckpoint { reason });
        let magic_len = b.len().min(CHECKPOINT_MAGIC.len());
        if b[..magic_len] != CHECKPOINT_MAGIC[..magic_len] {
            return bad("bad magic: not a blockdelta decoder checkpoint");
        }
        if b.len() < 10 {
            return bad("truncated: shorter than its magic and version");
        }
        if get_u16(b, 8) != CHECKPOINT_VERSION {
            return bad("unknown checkpoint version (this reader knows version 1)");
        }
        if b.len() < CHECKPOINT_FIXED_LEN + CHECKPOINT_CRC_LEN {
            return bad("truncated: shorter than its fixed fields");
        }
        let n = get_u32(b, 12) as usize;
        if !(FRAME_HEADER_LEN + HEADER_LEN_V1..=FRAME_HEADER_LEN + MAX_HEADER_LEN).contains(&n) {
            return bad("header frame length out of range");
        }
        let end = CHECKPOINT_FIXED_LEN + n;
        if b.len() < end + CHECKPOINT_CRC_LEN {
            return bad("truncated: shorter than its header frame length says");
        }
        if b.len() > end + CHECKPOINT_CRC_LEN {
            return bad("bytes follow the checkpoint's CRC");
        }
        let stored = get_u32(b, end);
        let computed = crc32fast::hash(&b[..end]);
        if stored != computed {
            return Err(StreamError::CheckpointChecksumMismatch { stored, computed });
        }
        if get_u16(b, 10) != 0 || get_u32(b, 60) != 0 {
            return bad("reserved fields are not zero");
        }
        let frame = &b[CHECKPOINT_FIXED_LEN..end];
        let header = parse_header_frame(frame)?;
        let cp = DecoderCheckpoint {
            header_frame: frame.to_vec(),
            header,
            next_seq: get_u64(b, 16),
            size: get_u64(b, 24),
            last_end: get_u64(b, 32),
            records: get_u64(b, 40),
            bytes: get_u64(b, 48),
            chain: get_u32(b, 56),
        };
        cp.check()?;
        Ok(cp)
    }

    /// Refuses counters no decoder could have reached.
    fn check(&self) -> Result<()> {
        let bad = |reason| Err(StreamError::InvalidCheckpoint { reason });
        if self.next_seq == 0 {
            return bad("next frame sequence 0 is the header's: a checkpoint is after the header");
        }
        if self.records != self.next_seq - 1 {
            return bad("record count disagrees with the next frame sequence");
        }
        if self.size == 0 || self.size > MAX_DISK_SIZE {
            return bad("disk size out of 1 to 2^60 bytes");
        }
        // An extent ends within the size in force when it is decoded; a later shrinking RESIZE
        // may leave it past the current size, never past the largest size there is.
        if self.last_end > MAX_DISK_SIZE {
            return bad("end of the last extent is past 2^60 bytes");
        }
        if self.records == 0 && (self.size != self.header.disk_size || self.last_end != 0) {
            return bad("disk size or extent end changed without a record");
        }
        let header_len = self.header_frame.len() as u64;
        let min = u128::from(header_len) + u128::from(self.records) * u128::from(MIN_RECORD_FRAME);
        let max = u128::from(header_len) + u128::from(self.records) * u128::from(MAX_RECORD_FRAME);
        if !(min..=max).contains(&u128::from(self.bytes)) {
            return bad("byte count does not fit the header frame and the record count");
        }
        if self.records == 0
            && self.chain != crc32fast::hash(&self.header_frame[..FRAME_HEADER_LEN])
        {
            return bad("stream checksum disagrees with the header frame");
        }
        Ok(())
    }
}

/// Checks a stored header frame as the decoder checks a received one (frame magic, type, zero
/// sequence, length, CRC, reserved bits, header fields), for [`DecoderCheckpoint::from_bytes`].
fn parse_header_frame(frame: &[u8]) -> Result<StreamHeader> {
    let bad = |reason| StreamError::InvalidCheckpoint { reason };
    if frame.len() < FRAME_HEADER_LEN || frame[..4] != FRAME_MAGIC {
        return Err(bad("its header frame has no frame magic"));
    }
    if frame[4] != FRAME_TYPE_HEADER {
        return Err(bad("its header frame is not of the header frame type"));
    }
    if frame[5] != 0 || get_u16(frame, 6) != 0 {
        return Err(bad("its header frame has reserved bits set"));
    }
    if get_u64(frame, 8) != 0 {
        return Err(bad("its header frame's sequence is not 0"));
    }
    if get_u32(frame, 16) as usize != frame.len() - FRAME_HEADER_LEN {
        return Err(bad(
            "its header frame's body length disagrees with its length",
        ));
    }
    let crc = frame_crc(
        &frame[..FRAME_HEADER_SIGNED_LEN],
        &frame[FRAME_HEADER_LEN..],
    );
    if get_u32(frame, FRAME_HEADER_SIGNED_LEN) != crc {
        return Err(bad("its header frame's CRC does not match"));
    }
    StreamHeader::parse(&frame[FRAME_HEADER_LEN..])
        .map_err(|_| bad("its header frame does not hold a valid stream header"))
}

/// Makes `v` at least `len` bytes long. Scratch is always fully written before it is read, so
/// its old contents never matter; zeroed memory keeps it safe code.
pub(crate) fn grow_zeroed(v: &mut Vec<u8>, len: usize) {
    if v.len() < len {
        *v = vec![0u8; len];
    }
}

#[cfg(test)]
mod tests {
    //! Hostile lz4 payloads straight into the decoder. lz4_flex's decoder is built without
    //! `safe-decode` (pointer code that bounds-checks every access), so these run under miri in
    //! CI: every malformed block must give `DecompressFailed` (or, when a mutation happens to
    //! leave a valid block of the declared length, its exact output), never UB.

    use super::*;
    use crate::stream::{Encoder, EncoderConfig};

    const RAW: usize = 1024;

    /// Literals, short and long matches, an overlapping run (offset 1) and a far match.
    fn raw() -> Vec<u8> {
        let mut v = Vec::with_capacity(RAW);
        v.extend_from_slice(b"blockdelta hostile lz4 test; ");
        while v.len() < 400 {
            v.extend_from_slice(b"abcabcabd");
        }
        v.resize(600, b'z');
        let mut x = 0x1234_5678u32;
        while v.len() < RAW {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            v.push(if x % 4 == 0 {
                v[v.len() - 300]
            } else {
                x as u8
            });
        }
        v
    }

    fn header_frame() -> Vec<u8> {
        let mut cfg = EncoderConfig::new([3; 16], GenerationId([4; 16]), 1, 2, RAW as u64);
        cfg.record_size = RAW as u32;
        cfg.compression = Codec::Lz4;
        let mut e = Encoder::new(cfg).unwrap();
        let mut buf = vec![0u8; e.max_frame_len()];
        let n = e.write_header(&mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    /// Frame 1 of the stream: an lz4 DATA record at offset 0 declaring `RAW` bytes.
    fn data_frame(payload: &[u8]) -> Vec<u8> {
        let value_len = DATA_FIELDS_LEN + payload.len();
        let body_len = RECORD_HEADER_LEN + value_len;
        let mut f = vec![0u8; FRAME_HEADER_LEN + body_len];
        put_frame_header(&mut f, FRAME_TYPE_RECORD, 1, body_len as u32);
        let r = &mut f[FRAME_HEADER_LEN..];
        put_u16(r, 0, REC_DATA);
        put_u32(r, 4, value_len as u32);
        let v = &mut r[RECORD_HEADER_LEN..];
        put_u64(v, 0, 0);
        put_u32(v, 8, RAW as u32);
        put_u32(v, 12, payload.len() as u32);
        v[16] = CODEC_LZ4;
        v[DATA_FIELDS_LEN..].copy_from_slice(payload);
        let crc = frame_crc(&f[..FRAME_HEADER_SIGNED_LEN], &f[FRAME_HEADER_LEN..]);
        put_u32(&mut f, FRAME_HEADER_SIGNED_LEN, crc);
        f
    }

    /// Decodes the header and one DATA frame carrying `payload`.
    fn decode(header: &[u8], payload: &[u8]) -> Result<Vec<u8>> {
        let mut d = Decoder::new(DecoderConfig::new());
        assert!(matches!(d.next(header)?, Decoded::Header { .. }));
        match d.next(&data_frame(payload))? {
            Decoded::Record {
                record: Record::Data { data, .. },
                ..
            } => Ok(data.to_vec()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hostile_lz4_payloads_fail_cleanly() {
        let raw = raw();
        let block = lz4_flex::block::compress(&raw);
        assert!(block.len() < RAW / 2, "the test block compresses");
        let header = header_frame();
        assert_eq!(decode(&header, &block).unwrap(), raw);

        let check = |payload: &[u8], what: &str| match decode(&header, payload) {
            Ok(out) => assert_eq!(out.len(), RAW, "{what}"),
            Err(StreamError::DecompressFailed { offset: 0 }) => {}
            Err(e) => panic!("{what}: {e:?}"),
        };
        // Miri takes one position in five (about a minute); natively, every position.
        let stride = if cfg!(miri) { 5 } else { 1 };
        // Every truncation of a valid block (too little output, or a cut inside a token).
        for len in (1..block.len()).step_by(stride) {
            check(&block[..len], &format!("truncated to {len}"));
        }
        // Every byte set to values that break tokens, lengths and match offsets.
        for at in (0..block.len()).step_by(stride) {
            for v in [0x00, 0x0f, 0xf0, 0xff] {
                let mut b = block.clone();
                b[at] = v;
                check(&b, &format!("byte {at} set to {v:#x}"));
            }
        }
        // A match reaching before the start of the output, and an endless length run.
        check(&[0x1f, b'a', 0xff, 0xff], "offset before the output");
        check(&[0xf0; 64], "length bytes until the input ends");
    }
}
