//! Merging N consecutive streams of one disk into one stream, offline: an N-way
//! `rbd merge-diff` where the newest change of every byte wins.
//!
//! # Semantics
//!
//! The inputs `s1 .. sN` (N >= 1) are complete streams of the same disk, tracker generation and
//! block size, and consecutive exactly as a replica would accept them one after the other:
//! `s(i+1).from_seq <= s(i).to_seq < s(i+1).to_seq`, and each input's `disk_size` is at most
//! the size of the replica after the inputs before it (a larger one would be `TargetTooSmall`
//! when applied in order). Anything else is refused with [`MergeError::Inconsistent`] naming the
//! input and the reason. Every input is fully verified (CRC, AES-GCM with its own
//! [`DecoderConfig`] secret, END totals, nothing after END); a damaged input fails the merge
//! and the output then has no END, so no replica accepts it.
//!
//! The output's header has `from_seq = s1.from_seq`, `to_seq = sN.to_seq`,
//! `disk_size = s1.disk_size`, the disk id, generation and block size of the inputs, and the
//! caller's output settings (cipher and secret, record size, compression, zero detection).
//! Applying it to a replica at any position accepted for `s1` leaves the replica byte for byte
//! as applying `s1 .. sN` in order would, contents and size:
//!
//! - per byte, the newest change wins: DATA bytes are copied, a ZERO stays ZERO and a DISCARD
//!   stays DISCARD (they are different promises, see `docs/FORMAT.md`);
//! - RESIZE: if any input has a RESIZE record, the output has exactly one, `RESIZE final_size`,
//!   as its first record, and nothing beyond `final_size` is written (the replica ends at the
//!   final size, growth reads as zeros). Bytes below `s1.disk_size` that some shrink cut off
//!   and that no later record rewrote get a ZERO record (the applier would have zeroed them
//!   when the disk grew back over them). Without any RESIZE in the inputs the output has none
//!   either (a replica larger than the stream's disk keeps its size, as in order);
//! - BOOKMARK: every bookmark of the inputs, in input order, just before END (they label the
//!   point the replica reaches at the output's END);
//! - optional record types this reader does not know are verified and dropped.
//!
//! # Cost
//!
//! Two passes over each input (the inputs are re-read with `Seek`, from where they were at the
//! call). Pass 1 verifies each input and keeps only its header, RESIZE records and bookmarks.
//! Pass 2 is a k-way sweep by offset with **one decoded record per input in hand**: extents
//! ascend within a stream, so the bytes of an overlapped older record are simply skipped. Time
//! is linear in the total input size (times N for picking the newest of N records at each
//! boundary). Memory is bounded and independent of the stream and disk sizes: per input a read
//! buffer of one maximum frame plus the read granularity, the decoder's scratch and one
//! decoded DATA payload (about 4 MiB per input at the 1 MiB maximum record size), the output
//! encoder's scratch and one output frame, plus O(number of RESIZE and BOOKMARK records).
//!
//! ```
//! use std::io::Cursor;
//! use blockdelta::stream::{encode_to_vec, merge, MergeInput};
//! use blockdelta::{Applier, DecoderConfig, EncoderConfig, Extent, GenerationId};
//!
//! let (disk_id, generation) = (*b"disk-0000000001a", GenerationId([1; 16]));
//! let mut disk = vec![0u8; 65536];
//! disk[..8192].fill(1);
//! let s1 = encode_to_vec(EncoderConfig::new(disk_id, generation, 1, 2, 65536),
//!     &[Extent::new(0, 8192)], &mut disk.clone()).unwrap();
//! disk[4096..12288].fill(2);
//! let s2 = encode_to_vec(EncoderConfig::new(disk_id, generation, 2, 3, 65536),
//!     &[Extent::new(4096, 8192)], &mut disk.clone()).unwrap();
//!
//! let mut inputs = [
//!     MergeInput::new(Cursor::new(s1), DecoderConfig::new()),
//!     MergeInput::new(Cursor::new(s2), DecoderConfig::new()),
//! ];
//! // Identity fields (disk, generation, seqs, size, block size) come from the inputs.
//! let settings = EncoderConfig::new([0; 16], GenerationId([0; 16]), 0, 1, 1);
//! let mut merged = Vec::new();
//! let summary = merge(&mut inputs, settings, &mut merged).unwrap();
//! assert_eq!((summary.from_seq, summary.to_seq), (1, 3));
//!
//! let mut replica = Applier::new(DecoderConfig::new(), vec![0u8; 65536]);
//! replica.push(&merged).unwrap();
//! replica.finish().unwrap();
//! assert_eq!(replica.target(), &disk);
//! ```

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};

use super::decoder::{Decoded, Decoder, DecoderConfig};
use super::encoder::{EncodeCursor, Encoder, EncoderConfig};
use super::error::StreamError;
use super::format::{FRAME_HEADER_LEN, MAX_RECORD_BODY};
use super::header::StreamHeader;
use super::record::{Bookmark, BookmarkKind, EndSummary, Record};
use super::source::BlockSource;
use crate::tracker::Extent;

/// One input stream of [`merge`]: a reader positioned at the stream's first byte, and the
/// decoder settings (secret, expectations) to verify it with.
#[derive(Debug)]
pub struct MergeInput<R> {
    /// The stream. It is read twice: [`merge`] seeks back to where it was at the call.
    pub reader: R,
    /// How to verify it (its secret when encrypted).
    pub config: DecoderConfig,
}

impl<R> MergeInput<R> {
    /// An input read from `reader` and verified with `config`.
    pub fn new(reader: R, config: DecoderConfig) -> Self {
        MergeInput { reader, config }
    }
}

/// What [`merge`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MergeSummary {
    /// The output's `from_seq` (the first input's).
    pub from_seq: u64,
    /// The output's `to_seq` (the last input's).
    pub to_seq: u64,
    /// The output header's disk size (the first input's).
    pub disk_size: u64,
    /// The disk size after applying the output (`disk_size` when no input resized; then a
    /// replica larger than `disk_size` keeps its size, as it would applying the inputs).
    pub final_size: u64,
    /// Record frames written between the header and END.
    pub records: u64,
    /// Bytes written, every frame including the header and END.
    pub bytes_written: u64,
    /// The output's END totals.
    pub end: EndSummary,
}

/// Why a merge failed. After any error the output is incomplete (it has no END).
#[derive(Debug)]
#[non_exhaustive]
pub enum MergeError {
    /// No inputs were given.
    NoInputs,
    /// Input `index` (0-based) failed verification.
    Input {
        /// Which input.
        index: usize,
        /// What the decoder found.
        source: StreamError,
    },
    /// Reading or seeking input `index` failed.
    InputIo {
        /// Which input.
        index: usize,
        /// The I/O error.
        source: io::Error,
    },
    /// Input `index` does not continue the inputs before it (disk, generation, block size,
    /// sequence numbers, disk size), or it changed between the two passes.
    Inconsistent {
        /// Which input.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// The output encoder refused its settings or a record (e.g. an invalid record size).
    Encode(StreamError),
    /// Writing the output failed.
    Io(io::Error),
}

impl fmt::Display for MergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MergeError::NoInputs => write!(f, "merge needs at least one input stream"),
            MergeError::Input { index, source } => write!(f, "input {index}: {source}"),
            MergeError::InputIo { index, source } => {
                write!(f, "input {index}: read failed: {source}")
            }
            MergeError::Inconsistent { index, reason } => {
                write!(f, "input {index} cannot be merged: {reason}")
            }
            MergeError::Encode(e) => write!(f, "output: {e}"),
            MergeError::Io(e) => write!(f, "output: write failed: {e}"),
        }
    }
}

impl std::error::Error for MergeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MergeError::Input { source, .. } => Some(source),
            MergeError::InputIo { source, .. } | MergeError::Io(source) => Some(source),
            MergeError::Encode(e) => Some(e),
            _ => None,
        }
    }
}

type MResult<T> = std::result::Result<T, MergeError>;

/// A point in the history of the inputs: (input index, record number within it; 0 is the
/// input's start). Later is greater.
type Time = (usize, u64);

/// A bookmark owned beyond the decoder's next call.
#[derive(Clone, Debug)]
struct OwnedBookmark {
    id: u64,
    timestamp_ns: u64,
    kind: BookmarkKind,
    label: String,
}

/// What pass 1 keeps of an input.
#[derive(Debug)]
struct Plan {
    header: StreamHeader,
    /// (record number, new size) of every RESIZE, in stream order.
    resizes: Vec<(u64, u64)>,
    bookmarks: Vec<OwnedBookmark>,
    end: EndSummary,
}

/// An owned, verified item of an input.
enum Item {
    Header(StreamHeader),
    /// DATA whose bytes were copied to the caller's buffer.
    Data {
        offset: u64,
        len: u64,
    },
    Zero {
        offset: u64,
        len: u64,
    },
    Discard {
        offset: u64,
        len: u64,
    },
    Resize(u64),
    Bookmark(OwnedBookmark),
    End(EndSummary),
    Skipped,
}

/// Read granularity on top of one maximum frame.
const READ_CHUNK: usize = 64 * 1024;

/// Frames of one input, verified by a decoder, read through a buffer of one maximum frame.
struct FrameReader<'r, R> {
    index: usize,
    reader: &'r mut R,
    decoder: Decoder,
    buf: Vec<u8>,
    start: usize,
    filled: usize,
}

impl<'r, R: Read> FrameReader<'r, R> {
    fn new(index: usize, reader: &'r mut R, config: DecoderConfig) -> Self {
        FrameReader {
            index,
            reader,
            decoder: Decoder::new(config),
            buf: vec![0u8; FRAME_HEADER_LEN + MAX_RECORD_BODY + READ_CHUNK],
            start: 0,
            filled: 0,
        }
    }

    fn input_err(&self, source: StreamError) -> MergeError {
        MergeError::Input {
            index: self.index,
            source,
        }
    }

    /// Reads more bytes so that `needed` bytes from `start` are available; `Ok(false)` at end
    /// of input.
    fn fill(&mut self, needed: usize) -> MResult<bool> {
        if self.start + needed > self.buf.len() {
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
        loop {
            match self.reader.read(&mut self.buf[self.filled..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.filled += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(MergeError::InputIo {
                        index: self.index,
                        source,
                    })
                }
            }
        }
    }

    /// The next verified item. A DATA record's bytes are copied into `data`.
    fn next_item(&mut self, data: &mut Vec<u8>) -> MResult<Item> {
        loop {
            let needed = match self.decoder.next(&self.buf[self.start..self.filled]) {
                Err(e) => {
                    return Err(MergeError::Input {
                        index: self.index,
                        source: e,
                    })
                }
                Ok(Decoded::NeedMore { needed }) => needed,
                Ok(Decoded::Header { header, consumed }) => {
                    self.start += consumed;
                    return Ok(Item::Header(header));
                }
                Ok(Decoded::Record { record, consumed }) => {
                    let item = match record {
                        Record::Data {
                            offset, data: d, ..
                        } => {
                            data.clear();
                            data.extend_from_slice(d);
                            Item::Data {
                                offset,
                                len: d.len() as u64,
                            }
                        }
                        Record::Zero { offset, len } => Item::Zero { offset, len },
                        Record::Discard { offset, len } => Item::Discard { offset, len },
                        Record::Resize { new_size } => Item::Resize(new_size),
                        Record::Bookmark(b) => Item::Bookmark(OwnedBookmark {
                            id: b.id,
                            timestamp_ns: b.timestamp_ns,
                            kind: b.kind,
                            label: b.label.to_owned(),
                        }),
                        Record::End(end) => Item::End(end),
                        _ => Item::Skipped,
                    };
                    self.start += consumed;
                    return Ok(item);
                }
            };
            if !self.fill(needed)? {
                // The input ended inside a frame or before END.
                let e = match self.decoder.finish() {
                    Err(e) => e,
                    Ok(_) => StreamError::Truncated {
                        frames: 0,
                        bytes: 0,
                    },
                };
                return Err(self.input_err(e));
            }
        }
    }

    /// After END: the input must end there (`TrailingData` otherwise).
    fn expect_eof(&mut self) -> MResult<()> {
        if self.start == self.filled {
            self.start = 0;
            self.filled = 0;
            if !self.fill(1)? {
                return Ok(());
            }
        }
        let len = self.filled - self.start;
        Err(self.input_err(StreamError::TrailingData { len }))
    }
}

/// Pass 1: verifies input `index` to its end and keeps its header, RESIZEs and bookmarks.
fn plan_input<R: Read>(index: usize, input: &mut MergeInput<R>) -> MResult<Plan> {
    let mut fr = FrameReader::new(index, &mut input.reader, input.config.clone());
    let mut scratch = Vec::new();
    let header = match fr.next_item(&mut scratch)? {
        Item::Header(h) => h,
        _ => unreachable!("the decoder returns the header first"),
    };
    let mut resizes = Vec::new();
    let mut bookmarks = Vec::new();
    let mut record = 0u64;
    let end = loop {
        record += 1;
        match fr.next_item(&mut scratch)? {
            Item::Resize(n) => resizes.push((record, n)),
            Item::Bookmark(b) => bookmarks.push(b),
            Item::End(end) => break end,
            _ => {}
        }
    };
    fr.expect_eof()?;
    Ok(Plan {
        header,
        resizes,
        bookmarks,
        end,
    })
}

/// Checks that input `index` continues the inputs before it; `size` is the replica's size
/// after them (the first input's disk size before any).
fn check_lineage(
    index: usize,
    first: &StreamHeader,
    prev: &StreamHeader,
    p: &Plan,
    size: u64,
) -> MResult<()> {
    let h = &p.header;
    let bad = |reason: String| Err(MergeError::Inconsistent { index, reason });
    if h.disk_id != first.disk_id {
        return bad(format!(
            "disk id {:02x?} differs from input 0's {:02x?}",
            h.disk_id, first.disk_id
        ));
    }
    if h.generation != first.generation {
        return bad(format!(
            "generation {:02x?} differs from input 0's {:02x?}",
            h.generation.0, first.generation.0
        ));
    }
    if h.block_size != first.block_size {
        return bad(format!(
            "block size {} differs from input 0's {}",
            h.block_size, first.block_size
        ));
    }
    if index > 0 {
        if h.to_seq <= prev.to_seq {
            return bad(format!(
                "its to_seq {} is not after input {}'s to_seq {} (already applied)",
                h.to_seq,
                index - 1,
                prev.to_seq
            ));
        }
        if h.from_seq > prev.to_seq {
            return bad(format!(
                "its from_seq {} is after input {}'s to_seq {} (a gap)",
                h.from_seq,
                index - 1,
                prev.to_seq
            ));
        }
        if h.disk_size > size {
            return bad(format!(
                "its disk size {} is larger than the disk after inputs 0..{index} ({size} bytes)",
                h.disk_size
            ));
        }
    }
    Ok(())
}

/// Serves the bytes of one decoded DATA record to the output encoder.
struct SliceSource<'a> {
    base: u64,
    data: &'a [u8],
}

impl BlockSource for SliceSource<'_> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let at = offset
            .checked_sub(self.base)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|&o| o + buf.len() <= self.data.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "outside the record"))?;
        buf.copy_from_slice(&self.data[at..at + buf.len()]);
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Data,
    Zero,
    Discard,
}

/// The record of one input in hand during pass 2.
struct Current {
    kind: Kind,
    start: u64,
    end: u64,
    time: Time,
}

/// One input during pass 2.
struct Cursor2<'r, R> {
    fr: FrameReader<'r, R>,
    data: Vec<u8>,
    cur: Option<Current>,
    record: u64,
    resize_at: usize,
    done: bool,
}

impl<R: Read> Cursor2<'_, R> {
    /// Moves on until the record in hand ends after `pos` (or the input is exhausted).
    fn advance(&mut self, pos: u64, plan: &Plan) -> MResult<()> {
        while !self.done && self.cur.as_ref().map_or(true, |c| c.end <= pos) {
            self.cur = None;
            self.record += 1;
            let time = (self.fr.index, self.record);
            let index = self.fr.index;
            let changed = |what: &str| MergeError::Inconsistent {
                index,
                reason: format!("the input changed between the two passes ({what})"),
            };
            let (kind, start, len) = match self.fr.next_item(&mut self.data)? {
                Item::Data { offset, len } => (Kind::Data, offset, len),
                Item::Zero { offset, len } => (Kind::Zero, offset, len),
                Item::Discard { offset, len } => (Kind::Discard, offset, len),
                Item::Resize(n) => {
                    if plan.resizes.get(self.resize_at) != Some(&(self.record, n)) {
                        return Err(changed("RESIZE records"));
                    }
                    self.resize_at += 1;
                    continue;
                }
                Item::End(end) => {
                    if end != plan.end || self.resize_at != plan.resizes.len() {
                        return Err(changed("END totals"));
                    }
                    self.fr.expect_eof()?;
                    self.done = true;
                    continue;
                }
                Item::Header(_) => return Err(changed("a second header")),
                Item::Bookmark(_) | Item::Skipped => continue,
            };
            self.cur = Some(Current {
                kind,
                start,
                end: start + len,
                time,
            });
        }
        Ok(())
    }
}

/// The output: an encoder, its frame buffer, the writer and a pending ZERO/DISCARD range that
/// adjacent pieces of the same kind extend.
struct Out<W> {
    enc: Encoder,
    frame: Vec<u8>,
    w: W,
    written: u64,
    pending: Option<(Kind, u64, u64)>,
}

impl<W: Write> Out<W> {
    fn emit(&mut self, n: usize) -> MResult<()> {
        self.w.write_all(&self.frame[..n]).map_err(MergeError::Io)?;
        self.written += n as u64;
        Ok(())
    }

    fn flush_pending(&mut self) -> MResult<()> {
        if let Some((kind, start, end)) = self.pending.take() {
            let n = match kind {
                Kind::Zero => self.enc.write_zero(start, end - start, &mut self.frame),
                _ => self.enc.write_discard(start, end - start, &mut self.frame),
            }
            .map_err(MergeError::Encode)?;
            self.emit(n)?;
        }
        Ok(())
    }

    fn range(&mut self, kind: Kind, start: u64, end: u64) -> MResult<()> {
        match &mut self.pending {
            Some((k, _, e)) if *k == kind && *e == start => *e = end,
            _ => {
                self.flush_pending()?;
                self.pending = Some((kind, start, end));
            }
        }
        Ok(())
    }

    fn data(&mut self, start: u64, bytes: &[u8]) -> MResult<()> {
        self.flush_pending()?;
        let extents = [Extent::new(start, bytes.len() as u64)];
        let mut cursor = EncodeCursor::default();
        let mut source = SliceSource {
            base: start,
            data: bytes,
        };
        while let Some(n) = self
            .enc
            .next_frame(&extents, &mut cursor, &mut source, &mut self.frame)
            .map_err(MergeError::Encode)?
        {
            self.emit(n)?;
        }
        Ok(())
    }
}

/// Merges the consecutive streams `inputs` into one stream written to `out`; see the module
/// documentation for the rules. `settings` gives the output's cipher and secret, record size,
/// compression and zero detection; its disk id, generation, sequence numbers, disk size and
/// block size are replaced by those the inputs determine.
///
/// On error the output has been written partially, without END: no replica accepts it.
pub fn merge<R: Read + Seek, W: Write>(
    inputs: &mut [MergeInput<R>],
    settings: EncoderConfig,
    out: W,
) -> MResult<MergeSummary> {
    if inputs.is_empty() {
        return Err(MergeError::NoInputs);
    }
    // Pass 1: verify every input, check the lineage, collect RESIZEs and bookmarks.
    let mut plans: Vec<Plan> = Vec::with_capacity(inputs.len());
    let mut starts = Vec::with_capacity(inputs.len());
    // The replica's size after the inputs so far, as the applier leaves it for a replica of
    // the first input's disk size: the last RESIZE, if any, else unchanged.
    let mut size = 0u64;
    for (index, input) in inputs.iter_mut().enumerate() {
        let at = input
            .reader
            .stream_position()
            .map_err(|source| MergeError::InputIo { index, source })?;
        starts.push(at);
        let plan = plan_input(index, input)?;
        if index == 0 {
            size = plan.header.disk_size;
        }
        check_lineage(
            index,
            &plans.first().unwrap_or(&plan).header,
            &plans.last().unwrap_or(&plan).header,
            &plan,
            size,
        )?;
        if let Some(&(_, n)) = plan.resizes.last() {
            size = n;
        }
        plans.push(plan);
    }
    let first = plans[0].header;
    let last = plans[plans.len() - 1].header;
    let resized = plans.iter().any(|p| !p.resizes.is_empty());
    let final_size = if resized { size } else { first.disk_size };
    // Cuts: an input with a RESIZE starts by cutting everything at and above its disk size
    // (the applier treats bytes beyond the header's size as gone once the stream resizes), and
    // each RESIZE cuts everything at and above its new size. A byte whose newest event is a cut
    // reads as zeros if the disk grows back over it. `cuts` maps an offset to the newest cut
    // covering it: sorted by offset, the time a running maximum.
    let mut cuts: Vec<(u64, Time)> = Vec::new();
    for (i, p) in plans.iter().enumerate() {
        if !p.resizes.is_empty() {
            cuts.push((p.header.disk_size, (i, 0)));
            cuts.extend(p.resizes.iter().map(|&(r, n)| (n, (i, r))));
        }
    }
    cuts.sort_unstable();
    let mut newest: Option<Time> = None;
    for c in cuts.iter_mut() {
        newest = newest.max(Some(c.1));
        c.1 = newest.unwrap_or(c.1);
    }

    // The output.
    let mut cfg = settings;
    cfg.disk_id = first.disk_id;
    cfg.generation = first.generation;
    cfg.from_seq = first.from_seq;
    cfg.to_seq = last.to_seq;
    cfg.disk_size = first.disk_size;
    cfg.block_size = first.block_size;
    let enc = Encoder::new(cfg).map_err(MergeError::Encode)?;
    let frame = vec![0u8; enc.max_frame_len()];
    let mut o = Out {
        enc,
        frame,
        w: out,
        written: 0,
        pending: None,
    };
    let n = o
        .enc
        .write_header(&mut o.frame)
        .map_err(MergeError::Encode)?;
    o.emit(n)?;
    if resized {
        // Growth reads as zeros and bytes in first.disk_size..final_size were all cut by the
        // first input that resized, so this one RESIZE also stands for those cuts.
        let n = o
            .enc
            .write_resize(final_size, &mut o.frame)
            .map_err(MergeError::Encode)?;
        o.emit(n)?;
    }

    // Pass 2: the sweep by offset, one record per input in hand.
    let mut cursors = Vec::with_capacity(inputs.len());
    for (index, (input, &at)) in inputs.iter_mut().zip(&starts).enumerate() {
        input
            .reader
            .seek(SeekFrom::Start(at))
            .map_err(|source| MergeError::InputIo { index, source })?;
        let mut fr = FrameReader::new(index, &mut input.reader, input.config.clone());
        let mut data = Vec::new();
        match fr.next_item(&mut data)? {
            Item::Header(h) if h == plans[index].header => {}
            _ => {
                return Err(MergeError::Inconsistent {
                    index,
                    reason: "the input changed between the two passes (header)".into(),
                })
            }
        }
        cursors.push(Cursor2 {
            fr,
            data,
            cur: None,
            record: 0,
            resize_at: 0,
            done: false,
        });
    }
    // Everything the output writes lies below `limit`; nothing else survives in the replica.
    let limit = final_size;
    let mut pos = 0u64;
    let mut cut_at = 0usize; // cuts[..cut_at] start at or before `pos`
    while pos < limit {
        for (c, p) in cursors.iter_mut().zip(&plans) {
            c.advance(pos, p)?;
        }
        while cut_at < cuts.len() && cuts[cut_at].0 <= pos {
            cut_at += 1;
        }
        let cut = cut_at.checked_sub(1).map(|k| cuts[k].1);
        let mut next = limit;
        if let Some(&(n, _)) = cuts.get(cut_at) {
            next = next.min(n);
        }
        if pos < first.disk_size {
            next = next.min(first.disk_size);
        }
        // The newest record covering `pos`: the last input's, as records of one input never
        // overlap.
        let mut winner: Option<usize> = None;
        for (i, c) in cursors.iter().enumerate() {
            if let Some(cur) = &c.cur {
                if cur.start <= pos {
                    winner = Some(i);
                    next = next.min(cur.end);
                } else {
                    next = next.min(cur.start);
                }
            }
        }
        let winner = winner.filter(|&i| {
            let t = cursors[i].cur.as_ref().map(|c| c.time);
            t > cut
        });
        match winner {
            Some(i) => {
                let c = &cursors[i];
                let cur = c.cur.as_ref().expect("a winner has a record");
                match cur.kind {
                    Kind::Data => {
                        let from = (pos - cur.start) as usize;
                        let to = (next - cur.start) as usize;
                        o.data(pos, &c.data[from..to])?;
                    }
                    kind => o.range(kind, pos, next)?,
                }
            }
            // Cut and not rewritten since: zeros. At and above first.disk_size the output's
            // RESIZE already gives zeros.
            None if cut.is_some() && pos < first.disk_size => o.range(Kind::Zero, pos, next)?,
            None => {}
        }
        pos = next;
    }
    // Read every input to its verified END (records at and above `limit` are dropped).
    for (c, p) in cursors.iter_mut().zip(&plans) {
        while !c.done {
            c.advance(u64::MAX, p)?;
        }
    }
    o.flush_pending()?;
    for b in plans.iter().flat_map(|p| &p.bookmarks) {
        let bm = Bookmark {
            id: b.id,
            timestamp_ns: b.timestamp_ns,
            kind: b.kind,
            label: &b.label,
        };
        let n = o
            .enc
            .write_bookmark(&bm, &mut o.frame)
            .map_err(MergeError::Encode)?;
        o.emit(n)?;
    }
    let end = o.enc.summary();
    let n = o.enc.finish(&mut o.frame).map_err(MergeError::Encode)?;
    o.emit(n)?;
    o.w.flush().map_err(MergeError::Io)?;
    Ok(MergeSummary {
        from_seq: first.from_seq,
        to_seq: last.to_seq,
        disk_size: first.disk_size,
        final_size,
        records: end.records,
        bytes_written: o.written,
        end,
    })
}
