//! The encoder: turns a list of changed extents plus a block source into frames.
//!
//! Every buffer it needs (lz4 output, lz4 hash table, associated-data buffer) is allocated in
//! [`Encoder::new`]; producing a frame allocates nothing (`tests/stream_alloc.rs` proves it).
//! Frames are written into caller buffers of at least [`Encoder::max_frame_len`] bytes.
//! The encoder never produces a stream its own decoder would refuse: extents must ascend
//! without overlap and stay within the disk, checked again for every record.

use lz4_flex::block::{compress_into_with_table, get_maximum_output_size, CompressTable};
use ring::aead::LessSafeKey;

use super::crypto::{self, Secret};
use super::error::{Result, StreamError};
use super::format::*;
use super::header::{CipherSuite, StreamHeader};
use super::record::{Bookmark, Codec, EndSummary};
use super::source::{BlockSource, Region};
use crate::tracker::{Extent, ExtentKind, GenerationId};

/// Default largest raw payload per DATA record.
pub const DEFAULT_RECORD_SIZE: u32 = 1 << 20;

/// What to encode and how. Build with [`EncoderConfig::new`], then adjust the public fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EncoderConfig {
    /// Identifies the replicated disk.
    pub disk_id: [u8; 16],
    /// The tracker generation of the checkpoints.
    pub generation: GenerationId,
    /// The checkpoint the replica must be at.
    pub from_seq: u64,
    /// The checkpoint this delta brings it to (must be greater than `from_seq`).
    pub to_seq: u64,
    /// Disk size in bytes at `from_seq`.
    pub disk_size: u64,
    /// Block size (power of two, 512 to 1 MiB; default 4096).
    pub block_size: u32,
    /// Largest raw payload per DATA record (1 byte to 1 MiB; default 1 MiB). Extents are split
    /// into records of this size.
    pub record_size: u32,
    /// Codec to try for DATA records (default [`Codec::Lz4`]); raw is kept when lz4 does not
    /// make the record smaller.
    pub compression: Codec,
    /// Send zeros as ranges, never as data (default true): every run of whole all-zero blocks
    /// inside a record becomes a ZERO record, and a hole the source reports
    /// ([`BlockSource::region`]) becomes one ZERO record without being read. So a replica
    /// written by a target that punches holes for ZERO is as thin as its source, to the block.
    pub zero_detection: bool,
    /// Send the source's holes as DISCARD records instead of ZERO (default false): for a
    /// replica meant to be thin on a target whose ZERO allocates. Only holes the source reports;
    /// zeros found by reading are always ZERO. Needs `zero_detection`. **A DISCARD's contents
    /// are unspecified** (`docs/FORMAT.md`): a target whose discard reads back zeros (a punched
    /// hole, as `FileTarget` does) matches the source, but one whose discard keeps the old bytes
    /// keeps them where the source reads zeros. Leave it off unless every target zeroes on
    /// discard, or the hole's contents do not matter to the replica's users.
    pub holes_as_discard: bool,
    /// Encrypt with AES-256-GCM under a key derived from this secret (default none).
    pub secret: Option<Secret>,
    fixed_crypto: Option<([u8; 32], [u8; 4])>,
}

impl EncoderConfig {
    /// A configuration with the defaults: 4 KiB blocks, 1 MiB records, lz4, zero detection,
    /// no encryption.
    pub fn new(
        disk_id: [u8; 16],
        generation: GenerationId,
        from_seq: u64,
        to_seq: u64,
        disk_size: u64,
    ) -> Self {
        EncoderConfig {
            disk_id,
            generation,
            from_seq,
            to_seq,
            disk_size,
            block_size: 4096,
            record_size: DEFAULT_RECORD_SIZE,
            compression: Codec::Lz4,
            zero_detection: true,
            holes_as_discard: false,
            secret: None,
            fixed_crypto: None,
        }
    }

    /// Uses this salt and nonce prefix instead of random ones. **Only for reproducible test
    /// vectors, never in production**: encrypting two different streams with the same secret,
    /// salt, disk and generation reuses AES-GCM nonces, which destroys confidentiality and
    /// integrity. Exists only with the cargo feature `insecure-test-vectors` (off by default).
    #[cfg(feature = "insecure-test-vectors")]
    pub fn with_fixed_crypto_params_for_test_vectors(
        mut self,
        salt: [u8; 32],
        nonce_prefix: [u8; 4],
    ) -> Self {
        self.fixed_crypto = Some((salt, nonce_prefix));
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Header,
    Body,
    Ended,
}

/// Where the encoder is in a list of extents; start with `EncodeCursor::default()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncodeCursor {
    index: usize,
    done: u64,
}

impl EncodeCursor {
    /// Index of the extent the next record comes from.
    pub fn index(&self) -> usize {
        self.index
    }
}

/// Start of the payload of a DATA frame.
pub(super) const DATA_PAYLOAD_AT: usize = FRAME_HEADER_LEN + RECORD_HEADER_LEN + DATA_FIELDS_LEN;

/// How far ahead of the record being encoded the encoder asks the source to read
/// ([`BlockSource::will_read`]).
pub(super) const READ_AHEAD: u64 = 32 << 20;
/// Ranges closer than this are asked for as one (farther apart, the bytes between would be
/// read for nothing: with 256 KiB, a warm 1 % incremental read 4x its time in gaps).
const READ_AHEAD_GAP: u64 = 32 << 10;
/// Most extents looked at per read-ahead round.
const READ_AHEAD_EXTENTS: usize = 256;

/// The lz4 scratch of one compressing thread.
pub(super) struct Lz4Scratch {
    out: Vec<u8>,
    table: CompressTable,
}

impl Lz4Scratch {
    pub(super) fn new(compression: Codec, record_size: usize) -> Self {
        if compression == Codec::Lz4 {
            let table = if record_size >= usize::from(u16::MAX) {
                CompressTable::large()
            } else {
                CompressTable::small()
            };
            Lz4Scratch {
                out: vec![0u8; get_maximum_output_size(record_size)],
                table,
            }
        } else {
            Lz4Scratch {
                out: Vec::new(),
                table: CompressTable::small(),
            }
        }
    }
}

/// Seals and checksums frames: the stream key, its nonce prefix and the associated-data buffer
/// (the header frame followed by the frame's signed header).
#[derive(Clone)]
pub(super) struct Sealer {
    key: Option<LessSafeKey>,
    nonce_prefix: [u8; 4],
    aad: [u8; HEADER_FRAME_LEN + FRAME_HEADER_SIGNED_LEN],
}

impl Sealer {
    pub(super) fn tag_len(&self) -> usize {
        if self.key.is_some() {
            TAG_LEN
        } else {
            0
        }
    }

    /// Fills in the frame header, seals and checksums a frame whose plaintext body
    /// (`plain_len` bytes) is already at `dst[24..]`; `dst` has room for the tag. Returns the
    /// frame length.
    pub(super) fn seal(&mut self, dst: &mut [u8], seq: u64, plain_len: usize) -> Result<usize> {
        let body_len = plain_len + self.tag_len();
        let total = FRAME_HEADER_LEN + body_len;
        put_frame_header(dst, FRAME_TYPE_RECORD, seq, body_len as u32);
        if let Some(key) = &self.key {
            self.aad[HEADER_FRAME_LEN..].copy_from_slice(&dst[..FRAME_HEADER_SIGNED_LEN]);
            crypto::seal(
                key,
                self.nonce_prefix,
                seq,
                &self.aad,
                &mut dst[FRAME_HEADER_LEN..total],
            )?;
        }
        let crc = frame_crc(
            &dst[..FRAME_HEADER_SIGNED_LEN],
            &dst[FRAME_HEADER_LEN..total],
        );
        put_u32(dst, FRAME_HEADER_SIGNED_LEN, crc);
        Ok(total)
    }
}

/// What comes next in an extent list, before reading anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unit {
    /// A range record (ZERO or DISCARD) of this many bytes, nothing to read.
    Range(u16, u64),
    /// Read this many bytes (at most one record) and encode them.
    Read(u64),
}

/// A run of data or of a hole in the source, as far as learned.
#[derive(Clone, Copy, Debug)]
struct Run {
    start: u64,
    end: u64,
    hole: bool,
    /// `end` is the run's true end: the source said the other kind starts there.
    whole: bool,
}

/// Where the data and holes of the source are (as far as learned), and how far ahead it has
/// been asked to read. Disk offsets only grow within a stream, so both only move forward.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Planner {
    known: Option<Run>,
    advised_end: u64,
}

impl Planner {
    /// The next unit at `offset` with `rem` bytes left in a write extent; `cfg` is
    /// (record size, zero detection, holes as discard).
    ///
    /// The source's answers are merged while the kind stays the same, until the run is known
    /// to the extent's end (a hole: one range record for all of it), to the record's end
    /// (data), or to its true end. So the records depend only on where the source's data and
    /// holes are, never on how it cuts its answers nor on where earlier questions were asked:
    /// every encoder, whatever its thread count, cuts the same records.
    pub(super) fn unit<S: BlockSource + ?Sized>(
        &mut self,
        offset: u64,
        rem: u64,
        disk_size: u64,
        cfg: (usize, bool, bool),
        source: &mut S,
    ) -> Result<Unit> {
        let (record_size, zero_detection, holes_as_discard) = cfg;
        let n = rem.min(record_size as u64);
        if !zero_detection {
            return Ok(Unit::Read(n));
        }
        let disk_end = disk_size.max(offset.saturating_add(1));
        let mut probe = |at: u64| -> Result<(u64, bool)> {
            let r = source
                .region(at, disk_end)
                .map_err(|source| StreamError::SourceIo {
                    offset: at,
                    len: rem,
                    source,
                })?;
            let (len, hole) = match r {
                Region::Data(l) => (l, false),
                Region::Hole(l) => (l, true),
            };
            Ok((len.clamp(1, disk_end - at), hole))
        };
        let mut run = match self.known {
            Some(r) if r.start <= offset && offset < r.end => r,
            _ => {
                let (len, hole) = probe(offset)?;
                Run {
                    start: offset,
                    end: offset + len,
                    hole,
                    whole: false,
                }
            }
        };
        loop {
            let limit = offset.saturating_add(if run.hole { rem } else { n });
            if run.whole || run.end >= limit || run.end >= disk_end {
                break;
            }
            match probe(run.end)? {
                (len, hole) if hole == run.hole => run.end += len,
                _ => run.whole = true,
            }
        }
        self.known = Some(run);
        let left = run.end - offset;
        if run.hole {
            let rtype = if holes_as_discard {
                REC_DISCARD
            } else {
                REC_ZERO
            };
            return Ok(Unit::Range(rtype, rem.min(left)));
        }
        Ok(Unit::Read(n.min(left)))
    }

    /// Asks `source` to read ahead: the write extents from `index` (at disk offset `offset`)
    /// on, up to [`READ_AHEAD`] bytes of them. Does nothing while at least half that window is
    /// still ahead.
    pub(super) fn read_ahead<S: BlockSource + ?Sized>(
        &mut self,
        extents: &[Extent],
        index: usize,
        offset: u64,
        source: &mut S,
    ) {
        if self.advised_end >= offset.saturating_add(READ_AHEAD / 2) {
            return;
        }
        let mut pending: Option<(u64, u64)> = None;
        let mut budget = READ_AHEAD;
        for e in extents[index..].iter().take(READ_AHEAD_EXTENTS) {
            if e.kind == ExtentKind::Discard || e.len == 0 {
                continue;
            }
            let start = e.offset.max(self.advised_end).max(offset);
            let end = e.offset.saturating_add(e.len);
            if start >= end {
                continue;
            }
            let end = end.min(start.saturating_add(budget));
            pending = match pending {
                Some((s, pe)) if start <= pe.saturating_add(READ_AHEAD_GAP) => Some((s, end)),
                Some((s, pe)) => {
                    source.will_read(s, pe - s);
                    Some((start, end))
                }
                None => Some((start, end)),
            };
            budget -= end - start;
            self.advised_end = end;
            if budget == 0 {
                break;
            }
        }
        if let Some((s, e)) = pending {
            source.will_read(s, e - s);
        }
    }
}

/// The first piece of `buf`, the disk's bytes at `offset`: whether it is all zeros, and its
/// length. A piece is a run of whole blocks of the disk's `block_size` grid (the first and last
/// may be partial where `buf` starts or ends off the grid) that are all zero, or all not zero.
pub(super) fn first_piece(buf: &[u8], offset: u64, block_size: u64) -> (bool, usize) {
    let bs = block_size as usize;
    let head = ((block_size - offset % block_size) as usize).min(buf.len());
    let zero = is_all_zero(&buf[..head]);
    let mut pos = head;
    while pos < buf.len() {
        let end = (pos + bs).min(buf.len());
        if is_all_zero(&buf[pos..end]) != zero {
            break;
        }
        pos = end;
    }
    (zero, pos)
}

/// Writes a DATA record for `data` (at disk `offset`) at `dst[24..]`, compressed when that
/// pays; `dst` has room for the raw payload. Returns the plaintext body length.
pub(super) fn data_record(
    dst: &mut [u8],
    offset: u64,
    data: &[u8],
    compression: Codec,
    lz4: &mut Lz4Scratch,
) -> usize {
    let n = data.len();
    let (codec, stored) = match compression {
        Codec::Lz4 => match compress_into_with_table(data, &mut lz4.out, &mut lz4.table) {
            Ok(c) if c < n => {
                dst[DATA_PAYLOAD_AT..DATA_PAYLOAD_AT + c].copy_from_slice(&lz4.out[..c]);
                (CODEC_LZ4, c)
            }
            _ => {
                dst[DATA_PAYLOAD_AT..DATA_PAYLOAD_AT + n].copy_from_slice(data);
                (CODEC_RAW, n)
            }
        },
        Codec::Raw => {
            dst[DATA_PAYLOAD_AT..DATA_PAYLOAD_AT + n].copy_from_slice(data);
            (CODEC_RAW, n)
        }
    };
    data_fields(dst, offset, n, codec, stored)
}

/// As [`data_record`] for the `n` raw bytes already at `dst[DATA_PAYLOAD_AT..]`.
fn data_record_in_place(
    dst: &mut [u8],
    offset: u64,
    n: usize,
    compression: Codec,
    lz4: &mut Lz4Scratch,
) -> usize {
    let payload = &mut dst[DATA_PAYLOAD_AT..DATA_PAYLOAD_AT + n];
    let (codec, stored) = match compression {
        Codec::Lz4 => match compress_into_with_table(payload, &mut lz4.out, &mut lz4.table) {
            Ok(c) if c < n => {
                payload[..c].copy_from_slice(&lz4.out[..c]);
                (CODEC_LZ4, c)
            }
            _ => (CODEC_RAW, n),
        },
        Codec::Raw => (CODEC_RAW, n),
    };
    data_fields(dst, offset, n, codec, stored)
}

fn data_fields(dst: &mut [u8], offset: u64, n: usize, codec: u8, stored: usize) -> usize {
    let r = &mut dst[FRAME_HEADER_LEN..];
    put_record_header(r, REC_DATA, DATA_FIELDS_LEN + stored);
    let v = &mut r[RECORD_HEADER_LEN..];
    put_u64(v, 0, offset);
    put_u32(v, 8, n as u32);
    put_u32(v, 12, stored as u32);
    v[16] = codec;
    v[17..24].fill(0);
    RECORD_HEADER_LEN + DATA_FIELDS_LEN + stored
}

/// A record read into the encoder's stage, handed out piece by piece.
#[derive(Clone, Copy, Debug)]
struct Staged {
    offset: u64,
    len: usize,
    pos: usize,
}

/// Encodes one stream. See the module documentation.
pub struct Encoder {
    pub(super) header: StreamHeader,
    header_frame: [u8; HEADER_FRAME_LEN],
    pub(super) sealer: Sealer,
    pub(super) lz4: Lz4Scratch,
    /// One record read from the source, split into pieces (with zero detection).
    stage: Vec<u8>,
    staged: Option<Staged>,
    pub(super) planner: Planner,
    pub(super) record_size: usize,
    pub(super) compression: Codec,
    pub(super) zero_detection: bool,
    pub(super) holes_as_discard: bool,
    state: State,
    pub(super) seq: u64,
    pub(super) size: u64,
    pub(super) last_end: u64,
    records: u64,
    bytes: u64,
    chain: crc32fast::Hasher,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("header", &self.header)
            .field("seq", &self.seq)
            .field("last_end", &self.last_end)
            .finish_non_exhaustive()
    }
}

/// The largest frame an encoder with this record size writes.
pub fn frame_bound(record_size: u32, encrypted: bool) -> usize {
    let tag = if encrypted { TAG_LEN } else { 0 };
    let value = (DATA_FIELDS_LEN + record_size as usize).max(BOOKMARK_FIELDS_LEN + MAX_LABEL_LEN);
    (FRAME_HEADER_LEN + RECORD_HEADER_LEN + value + tag).max(HEADER_FRAME_LEN)
}

/// Sorts extents by offset, merges overlapping and adjacent ones of the same kind and drops
/// empty ones, turning any list into one the encoder accepts (disk bounds are still checked by
/// the encoder). Where a write and a discard overlap, the write wins: the discard is cut
/// around it (shipping data is always safe; a discard over written data would lose it).
pub fn normalize_extents(extents: &mut Vec<Extent>) {
    fn merge_same_kind(list: &mut Vec<Extent>) {
        list.sort_unstable_by_key(|e| e.offset);
        let mut out = 0usize;
        for i in 0..list.len() {
            let e = list[i];
            if out > 0 {
                let last = &mut list[out - 1];
                let last_end = last.offset.saturating_add(last.len);
                if e.offset <= last_end {
                    let end = e.offset.saturating_add(e.len).max(last_end);
                    last.len = end - last.offset;
                    continue;
                }
            }
            list[out] = e;
            out += 1;
        }
        list.truncate(out);
    }
    extents.retain(|e| e.len > 0);
    let mut writes: Vec<Extent> = Vec::with_capacity(extents.len());
    let mut discards: Vec<Extent> = Vec::new();
    for e in extents.iter() {
        match e.kind {
            ExtentKind::Write => writes.push(Extent::new(e.offset, e.len)),
            ExtentKind::Discard => discards.push(Extent::discard(e.offset, e.len)),
        }
    }
    merge_same_kind(&mut writes);
    merge_same_kind(&mut discards);
    // Both lists ascend without overlap: cut each discard around the writes it overlaps.
    let mut out = Vec::with_capacity(writes.len() + discards.len());
    let mut wi = 0;
    for d in discards {
        let (mut start, end) = (d.offset, d.offset.saturating_add(d.len));
        while wi < writes.len() && writes[wi].offset.saturating_add(writes[wi].len) <= start {
            wi += 1;
        }
        let mut k = wi;
        while start < end && k < writes.len() && writes[k].offset < end {
            let w = writes[k];
            if w.offset > start {
                out.push(Extent::discard(start, w.offset - start));
            }
            start = start.max(w.offset.saturating_add(w.len));
            k += 1;
        }
        if start < end {
            out.push(Extent::discard(start, end - start));
        }
    }
    out.extend_from_slice(&writes);
    out.sort_unstable_by_key(|e| e.offset);
    *extents = out;
}

impl Encoder {
    /// Validates `config`, derives the stream key (drawing a random salt and nonce prefix) and
    /// allocates all scratch memory.
    pub fn new(config: EncoderConfig) -> Result<Self> {
        if config.record_size == 0 || config.record_size as usize > MAX_RECORD_PAYLOAD {
            return Err(StreamError::InvalidArgument {
                reason: "record size must be 1 byte to 1 MiB",
            });
        }
        let encrypted = config.secret.is_some();
        let (kdf_salt, nonce_prefix) = match (encrypted, config.fixed_crypto) {
            (false, _) => ([0u8; 32], [0u8; 4]),
            (true, Some(fixed)) => fixed,
            (true, None) => {
                let mut salt = [0u8; 32];
                let mut prefix = [0u8; 4];
                crypto::random_fill(&mut salt)?;
                crypto::random_fill(&mut prefix)?;
                (salt, prefix)
            }
        };
        let mut required_features = 0;
        if config.compression == Codec::Lz4 {
            required_features |= FEATURE_REQUIRED_LZ4;
        }
        let mut optional_features = 0;
        if config.zero_detection {
            optional_features |= FEATURE_OPTIONAL_ZERO_DETECTION;
        }
        let header = StreamHeader {
            version: FORMAT_VERSION,
            required_features,
            optional_features,
            disk_id: config.disk_id,
            generation: config.generation,
            from_seq: config.from_seq,
            to_seq: config.to_seq,
            disk_size: config.disk_size,
            block_size: config.block_size,
            cipher: if encrypted {
                CipherSuite::Aes256GcmHkdfSha256
            } else {
                CipherSuite::None
            },
            kdf_salt,
            nonce_prefix,
            max_record_payload: config.record_size,
        };
        header.validate().map_err(|e| match e {
            StreamError::InvalidHeader { reason } => StreamError::InvalidArgument { reason },
            e => e,
        })?;
        let mut header_frame = [0u8; HEADER_FRAME_LEN];
        let mut body = [0u8; HEADER_LEN_V1];
        header.write(&mut body);
        put_frame_header(
            &mut header_frame,
            FRAME_TYPE_HEADER,
            0,
            HEADER_LEN_V1 as u32,
        );
        header_frame[FRAME_HEADER_LEN..].copy_from_slice(&body);
        let crc = frame_crc(&header_frame[..FRAME_HEADER_SIGNED_LEN], &body);
        put_u32(&mut header_frame, FRAME_HEADER_SIGNED_LEN, crc);
        let mut aad = [0u8; HEADER_FRAME_LEN + FRAME_HEADER_SIGNED_LEN];
        aad[..HEADER_FRAME_LEN].copy_from_slice(&header_frame);
        let key = match &config.secret {
            Some(s) => Some(crypto::derive_key(s, &header)?),
            None => None,
        };
        let record_size = config.record_size as usize;
        if config.holes_as_discard && !config.zero_detection {
            return Err(StreamError::InvalidArgument {
                reason: "holes_as_discard needs zero_detection",
            });
        }
        Ok(Encoder {
            header,
            header_frame,
            sealer: Sealer {
                key,
                nonce_prefix,
                aad,
            },
            lz4: Lz4Scratch::new(config.compression, record_size),
            stage: if config.zero_detection {
                vec![0u8; record_size]
            } else {
                Vec::new()
            },
            staged: None,
            planner: Planner::default(),
            record_size,
            compression: config.compression,
            zero_detection: config.zero_detection,
            holes_as_discard: config.holes_as_discard,
            state: State::Header,
            seq: 0,
            size: config.disk_size,
            last_end: 0,
            records: 0,
            bytes: 0,
            chain: crc32fast::Hasher::new(),
        })
    }

    /// The stream header this encoder writes.
    pub fn header(&self) -> &StreamHeader {
        &self.header
    }

    /// The largest frame this encoder writes: every `dst` of at least this size is enough.
    pub fn max_frame_len(&self) -> usize {
        frame_bound(self.record_size as u32, self.sealer.key.is_some())
    }

    /// True once END has been written.
    pub fn is_finished(&self) -> bool {
        self.state == State::Ended
    }

    /// Writes the stream header frame; must come first. Returns the bytes written.
    pub fn write_header(&mut self, dst: &mut [u8]) -> Result<usize> {
        if self.state != State::Header {
            return Err(StreamError::InvalidState {
                reason: "the header was already written",
            });
        }
        check_room(dst, HEADER_FRAME_LEN)?;
        dst[..HEADER_FRAME_LEN].copy_from_slice(&self.header_frame);
        self.chain.update(&self.header_frame[..FRAME_HEADER_LEN]);
        self.bytes = HEADER_FRAME_LEN as u64;
        self.seq = 1;
        self.state = State::Body;
        Ok(HEADER_FRAME_LEN)
    }

    /// Checks a whole extent list up front: ascending, non-overlapping, after everything
    /// already encoded, within the disk. Empty extents are allowed and skipped.
    /// [`Encoder::next_frame`] checks each record again, so this is for early, clear errors.
    pub fn check_extents(&self, extents: &[Extent]) -> Result<()> {
        let mut prev_end = self.last_end;
        for e in extents.iter().filter(|e| e.len > 0) {
            check_range(e.offset, e.len, prev_end, self.size)?;
            prev_end = e.offset + e.len;
        }
        Ok(())
    }

    /// Encodes the next record of `extents` (resuming at `cursor`) into `dst`, reading the data
    /// from `source`. Returns the frame length, or `None` when the list is exhausted. On error
    /// nothing is consumed: the same call may be retried (e.g. with a larger `dst`).
    ///
    /// With zero detection (the default), a record read from the source is sent piece by
    /// piece: each run of whole all-zero blocks as a ZERO record, each run of other blocks as a
    /// DATA record; and a hole the source reports is sent as one ZERO record (DISCARD with
    /// `holes_as_discard`) without being read. The encoder asks the source to read ahead
    /// ([`BlockSource::will_read`]) up to 32 MiB of extents past the record being encoded.
    pub fn next_frame<S: BlockSource + ?Sized>(
        &mut self,
        extents: &[Extent],
        cursor: &mut EncodeCursor,
        source: &mut S,
        dst: &mut [u8],
    ) -> Result<Option<usize>> {
        self.require_body()?;
        let mut index = cursor.index;
        let mut done = cursor.done;
        while index < extents.len() && done >= extents[index].len {
            index += 1;
            done = 0;
        }
        let Some(e) = extents.get(index) else {
            cursor.index = index;
            cursor.done = 0;
            return Ok(None);
        };
        let offset = e
            .offset
            .checked_add(done)
            .ok_or(StreamError::ExtentOutOfRange {
                offset: e.offset,
                len: e.len,
                disk_size: self.size,
            })?;
        let rem = e.len - done;
        if e.kind == ExtentKind::Discard {
            // Nothing to read: one DISCARD record for the rest of the extent.
            let total = self.write_range(REC_DISCARD, offset, rem, dst)?;
            cursor.index = index;
            cursor.done = e.len;
            return Ok(Some(total));
        }
        // A record staged by an earlier call, at exactly this position, is used first.
        let st = match self.staged {
            Some(st) if st.offset + st.pos as u64 == offset && st.pos < st.len => st,
            _ => {
                self.staged = None;
                // The record this position starts, checked whole before the source is asked
                // anything (a hole or data run ends at the disk's end, and would cut it).
                check_range(
                    offset,
                    rem.min(self.record_size as u64),
                    self.last_end,
                    self.size,
                )?;
                self.planner.read_ahead(extents, index, offset, source);
                let cfg = (self.record_size, self.zero_detection, self.holes_as_discard);
                let n = match self.planner.unit(offset, rem, self.size, cfg, source)? {
                    Unit::Range(rtype, len) => {
                        let total = self.write_range(rtype, offset, len, dst)?;
                        cursor.index = index;
                        cursor.done = done + len;
                        return Ok(Some(total));
                    }
                    Unit::Read(n) => n as usize,
                };
                check_range(offset, n as u64, self.last_end, self.size)?;
                if !self.zero_detection {
                    let total = self.read_data_frame(offset, n, source, dst)?;
                    cursor.index = index;
                    cursor.done = done + n as u64;
                    return Ok(Some(total));
                }
                // Room for the whole record as data, checked before reading: a `dst` too
                // small is refused without touching the source. The record is read straight
                // into the frame; only a record of several pieces copies the pieces after the
                // first to the stage, for the next calls.
                check_room(dst, DATA_PAYLOAD_AT + n + self.tag_len())?;
                let payload = DATA_PAYLOAD_AT..DATA_PAYLOAD_AT + n;
                read_source(source, offset, &mut dst[payload.clone()])?;
                let block_size = u64::from(self.header.block_size);
                let (zero, len) = first_piece(&dst[payload], offset, block_size);
                if len < n {
                    let rest = &dst[DATA_PAYLOAD_AT + len..DATA_PAYLOAD_AT + n];
                    self.stage[..n - len].copy_from_slice(rest);
                    self.staged = Some(Staged {
                        offset: offset + len as u64,
                        len: n - len,
                        pos: 0,
                    });
                }
                let total = if zero {
                    self.write_range(REC_ZERO, offset, len as u64, dst)?
                } else {
                    let plain =
                        data_record_in_place(dst, offset, len, self.compression, &mut self.lz4);
                    let total = self.finish_frame(dst, plain, true)?;
                    self.last_end = offset + len as u64;
                    total
                };
                cursor.index = index;
                cursor.done = done + len as u64;
                return Ok(Some(total));
            }
        };
        // The next piece of the staged record, within this extent.
        let avail = (st.len - st.pos).min(usize::try_from(rem).unwrap_or(usize::MAX));
        let buf = &self.stage[st.pos..st.pos + avail];
        let (zero, len) = first_piece(buf, offset, u64::from(self.header.block_size));
        let total = if zero {
            self.write_range(REC_ZERO, offset, len as u64, dst)?
        } else {
            check_range(offset, len as u64, self.last_end, self.size)?;
            check_room(dst, DATA_PAYLOAD_AT + len + self.tag_len())?;
            let data = &self.stage[st.pos..st.pos + len];
            let plain = data_record(dst, offset, data, self.compression, &mut self.lz4);
            let total = self.finish_frame(dst, plain, true)?;
            self.last_end = offset + len as u64;
            total
        };
        self.staged = Some(Staged {
            pos: st.pos + len,
            ..st
        });
        cursor.index = index;
        cursor.done = done + len as u64;
        Ok(Some(total))
    }

    /// One DATA frame of the `n` bytes at `offset`, read straight into `dst` (no zero detection).
    fn read_data_frame<S: BlockSource + ?Sized>(
        &mut self,
        offset: u64,
        n: usize,
        source: &mut S,
        dst: &mut [u8],
    ) -> Result<usize> {
        check_room(dst, DATA_PAYLOAD_AT + n + self.tag_len())?;
        read_source(
            source,
            offset,
            &mut dst[DATA_PAYLOAD_AT..DATA_PAYLOAD_AT + n],
        )?;
        let plain = data_record_in_place(dst, offset, n, self.compression, &mut self.lz4);
        let total = self.finish_frame(dst, plain, true)?;
        self.last_end = offset + n as u64;
        Ok(total)
    }

    /// Writes a ZERO record: `offset..offset+len` reads as zeros on the replica.
    pub fn write_zero(&mut self, offset: u64, len: u64, dst: &mut [u8]) -> Result<usize> {
        self.write_range(REC_ZERO, offset, len, dst)
    }

    /// Writes a DISCARD record: `offset..offset+len` is unmapped, contents unspecified.
    pub fn write_discard(&mut self, offset: u64, len: u64, dst: &mut [u8]) -> Result<usize> {
        self.write_range(REC_DISCARD, offset, len, dst)
    }

    fn write_range(&mut self, rtype: u16, offset: u64, len: u64, dst: &mut [u8]) -> Result<usize> {
        self.require_body()?;
        if len == 0 {
            return Err(StreamError::InvalidArgument {
                reason: "a ZERO or DISCARD range must not be empty",
            });
        }
        check_range(offset, len, self.last_end, self.size)?;
        check_room(
            dst,
            FRAME_HEADER_LEN + RECORD_HEADER_LEN + RANGE_FIELDS_LEN + self.tag_len(),
        )?;
        let plain = range_record(dst, rtype, offset, len);
        let total = self.finish_frame(dst, plain, true)?;
        self.last_end = offset + len;
        Ok(total)
    }

    /// Writes a RESIZE record: the disk has `new_size` bytes from here on.
    /// `new_size` must be 1 byte to [`MAX_DISK_SIZE`](super::format::MAX_DISK_SIZE)
    /// ([`StreamError::InvalidDiskSize`]).
    pub fn write_resize(&mut self, new_size: u64, dst: &mut [u8]) -> Result<usize> {
        self.require_body()?;
        super::header::check_disk_size("RESIZE record", new_size)?;
        check_room(
            dst,
            FRAME_HEADER_LEN + RECORD_HEADER_LEN + RESIZE_FIELDS_LEN + self.tag_len(),
        )?;
        let r = &mut dst[FRAME_HEADER_LEN..];
        put_record_header(r, REC_RESIZE, RESIZE_FIELDS_LEN);
        put_u64(r, RECORD_HEADER_LEN, new_size);
        let total = self.finish_frame(dst, RECORD_HEADER_LEN + RESIZE_FIELDS_LEN, true)?;
        self.size = new_size;
        Ok(total)
    }

    /// Writes a BOOKMARK record (a recovery point; the applier syncs the target there).
    pub fn write_bookmark(&mut self, bookmark: &Bookmark<'_>, dst: &mut [u8]) -> Result<usize> {
        self.require_body()?;
        let label = bookmark.label.as_bytes();
        if label.len() > MAX_LABEL_LEN {
            return Err(StreamError::OversizedLength {
                what: "bookmark label",
                len: label.len() as u64,
                max: MAX_LABEL_LEN as u64,
            });
        }
        let plain = RECORD_HEADER_LEN + BOOKMARK_FIELDS_LEN + label.len();
        check_room(dst, FRAME_HEADER_LEN + plain + self.tag_len())?;
        let r = &mut dst[FRAME_HEADER_LEN..];
        put_record_header(r, REC_BOOKMARK, BOOKMARK_FIELDS_LEN + label.len());
        let v = &mut r[RECORD_HEADER_LEN..];
        put_u64(v, 0, bookmark.id);
        put_u64(v, 8, bookmark.timestamp_ns);
        v[16] = bookmark.kind.code();
        v[17] = 0;
        put_u16(v, 18, label.len() as u16);
        put_u32(v, 20, 0);
        v[BOOKMARK_FIELDS_LEN..BOOKMARK_FIELDS_LEN + label.len()].copy_from_slice(label);
        self.finish_frame(dst, plain, true)
    }

    /// Writes the END record with the stream's totals. Nothing can follow.
    pub fn finish(&mut self, dst: &mut [u8]) -> Result<usize> {
        self.require_body()?;
        check_room(
            dst,
            FRAME_HEADER_LEN + RECORD_HEADER_LEN + END_FIELDS_LEN + self.tag_len(),
        )?;
        let summary = self.summary();
        let r = &mut dst[FRAME_HEADER_LEN..];
        put_record_header(r, REC_END, END_FIELDS_LEN);
        let v = &mut r[RECORD_HEADER_LEN..];
        put_u64(v, 0, summary.records);
        put_u64(v, 8, summary.bytes);
        put_u32(v, 16, summary.checksum);
        put_u32(v, 20, 0);
        let total = self.finish_frame(dst, RECORD_HEADER_LEN + END_FIELDS_LEN, false)?;
        self.state = State::Ended;
        Ok(total)
    }

    /// The totals the END record would carry now.
    pub fn summary(&self) -> EndSummary {
        EndSummary {
            records: self.records,
            bytes: self.bytes,
            checksum: self.chain.clone().finalize(),
        }
    }

    fn tag_len(&self) -> usize {
        self.sealer.tag_len()
    }

    pub(super) fn require_body(&self) -> Result<()> {
        match self.state {
            State::Body => Ok(()),
            State::Header => Err(StreamError::InvalidState {
                reason: "write the stream header first",
            }),
            State::Ended => Err(StreamError::InvalidState {
                reason: "the stream already ended",
            }),
        }
    }

    /// Seals and checksums a frame whose plaintext body (`plain_len` bytes) is already at
    /// `dst[24..]` and counts it. The caller checked that `dst` has room.
    fn finish_frame(&mut self, dst: &mut [u8], plain_len: usize, counted: bool) -> Result<usize> {
        let total = self.sealer.seal(dst, self.seq, plain_len)?;
        if counted {
            self.account(&dst[..total]);
        } else {
            self.seq += 1;
        }
        Ok(total)
    }

    /// Counts one record frame, sealed with the current sequence number, into the END totals.
    pub(super) fn account(&mut self, frame: &[u8]) {
        self.seq += 1;
        self.records += 1;
        self.bytes += frame.len() as u64;
        self.chain.update(&frame[..FRAME_HEADER_LEN]);
    }
}

/// Reads `buf` from `source` at `offset`.
pub(super) fn read_source<S: BlockSource + ?Sized>(
    source: &mut S,
    offset: u64,
    buf: &mut [u8],
) -> Result<()> {
    source
        .read_at(offset, buf)
        .map_err(|source| StreamError::SourceIo {
            offset,
            len: buf.len() as u64,
            source,
        })
}

pub(super) fn check_room(dst: &[u8], needed: usize) -> Result<()> {
    if dst.len() < needed {
        return Err(StreamError::BufferTooSmall {
            needed,
            got: dst.len(),
        });
    }
    Ok(())
}

/// Extents ascend without overlap (`offset >= prev_end`) and end within the disk.
pub(crate) fn check_range(offset: u64, len: u64, prev_end: u64, disk_size: u64) -> Result<()> {
    if offset < prev_end {
        return Err(StreamError::ExtentOverlap {
            offset,
            len,
            prev_end,
        });
    }
    match offset.checked_add(len) {
        Some(end) if end <= disk_size => Ok(()),
        _ => Err(StreamError::ExtentOutOfRange {
            offset,
            len,
            disk_size,
        }),
    }
}

fn put_record_header(r: &mut [u8], rtype: u16, value_len: usize) {
    put_u16(r, 0, rtype);
    put_u16(r, 2, 0);
    put_u32(r, 4, value_len as u32);
}

/// Writes a ZERO or DISCARD record at `dst[24..]`; returns its plaintext length.
pub(super) fn range_record(dst: &mut [u8], rtype: u16, offset: u64, len: u64) -> usize {
    let r = &mut dst[FRAME_HEADER_LEN..];
    put_record_header(r, rtype, RANGE_FIELDS_LEN);
    put_u64(r, RECORD_HEADER_LEN, offset);
    put_u64(r, RECORD_HEADER_LEN + 8, len);
    RECORD_HEADER_LEN + RANGE_FIELDS_LEN
}

/// Encodes a whole stream (header, every extent, END) into a new vector. A convenience for
/// tests and small deltas; the frame-by-frame API avoids holding the stream in memory.
pub fn encode_to_vec<S: BlockSource + ?Sized>(
    config: EncoderConfig,
    extents: &[Extent],
    source: &mut S,
) -> Result<Vec<u8>> {
    let mut enc = Encoder::new(config)?;
    enc.check_extents(extents)?;
    let mut buf = vec![0u8; enc.max_frame_len()];
    let mut out = Vec::new();
    let n = enc.write_header(&mut buf)?;
    out.extend_from_slice(&buf[..n]);
    let mut cursor = EncodeCursor::default();
    while let Some(n) = enc.next_frame(extents, &mut cursor, source, &mut buf)? {
        out.extend_from_slice(&buf[..n]);
    }
    let n = enc.finish(&mut buf)?;
    out.extend_from_slice(&buf[..n]);
    Ok(out)
}
