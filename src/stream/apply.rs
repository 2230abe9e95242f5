//! The applier: a decoder feeding an [`ApplyTarget`].
//!
//! It writes only records the decoder has fully verified, syncs the target at every BOOKMARK
//! and at END, and refuses a target smaller than the stream's disk. A stream cut short leaves
//! the target between the two checkpoints: only a successful [`Applier::finish`] means the
//! replica is at `to_seq`, and [`Applier::applied`] then says which stream that was, so the
//! sender commits exactly that checkpoint.
//!
//! A RESIZE that shrinks the target is deferred until END has been verified (records after it
//! are bounded by the new size, so nothing is written past it) and applied then, before the
//! final sync: a stream cut anywhere leaves the target at least as large as it was, so a retry
//! of the same stream always finds a target large enough. Growth is applied at once; a region
//! that a deferred shrink cut off and a later RESIZE brings back is zeroed.

use std::io::{self, Read};

use super::decoder::{Decoded, Decoder, DecoderConfig, Expected, Verified};
use super::error::{Result, StreamError};
use super::header::StreamHeader;
use super::record::{EndSummary, Record};
use crate::tracker::GenerationId;

/// Where verified records land: a replica disk image, block device or anything else.
pub trait ApplyTarget {
    /// Writes all of `data` at `offset`.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Makes `offset..offset+len` read as zeros.
    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()>;
    /// Unmaps `offset..offset+len`; its contents become unspecified (zeros are fine).
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()>;
    /// Changes the size to `new_size`. Targets that cannot (block devices) return an error of
    /// kind [`io::ErrorKind::Unsupported`].
    fn resize(&mut self, new_size: u64) -> io::Result<()>;
    /// Makes everything written so far durable.
    fn sync(&mut self) -> io::Result<()>;
    /// The current size, if the target knows it; used to refuse a target that is too small.
    fn size(&mut self) -> io::Result<Option<u64>> {
        Ok(None)
    }
    /// The largest size the target may be resized to, if it has one: a RESIZE that would grow
    /// the target past it fails with [`StreamError::TargetTooSmall`] before `resize` is called.
    fn max_size(&mut self) -> io::Result<Option<u64>> {
        Ok(None)
    }
}

impl<T: ApplyTarget + ?Sized> ApplyTarget for &mut T {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        (**self).write_at(offset, data)
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        (**self).write_zeroes(offset, len)
    }
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        (**self).discard(offset, len)
    }
    fn resize(&mut self, new_size: u64) -> io::Result<()> {
        (**self).resize(new_size)
    }
    fn sync(&mut self) -> io::Result<()> {
        (**self).sync()
    }
    fn size(&mut self) -> io::Result<Option<u64>> {
        (**self).size()
    }
    fn max_size(&mut self) -> io::Result<Option<u64>> {
        (**self).max_size()
    }
}

fn mem_range(v: &[u8], offset: u64, len: u64) -> io::Result<std::ops::Range<usize>> {
    let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| start.checked_add(l))
        .filter(|&e| e <= v.len())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "write past the end of the in-memory disk",
            )
        })?;
    Ok(start..end)
}

/// An in-memory disk image: writes must stay within its length; DISCARD writes zeros;
/// RESIZE truncates or zero-extends.
impl ApplyTarget for Vec<u8> {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let r = mem_range(self, offset, data.len() as u64)?;
        self[r].copy_from_slice(data);
        Ok(())
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let r = mem_range(self, offset, len)?;
        self[r].fill(0);
        Ok(())
    }
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.write_zeroes(offset, len)
    }
    /// Never panics nor aborts: growth reserves with `try_reserve` first and an impossible size
    /// is an [`io::ErrorKind::OutOfMemory`] error.
    fn resize(&mut self, new_size: u64) -> io::Result<()> {
        let n = usize::try_from(new_size).map_err(|_| io::ErrorKind::OutOfMemory)?;
        if let Some(more) = n.checked_sub(self.len()) {
            self.try_reserve_exact(more).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    format!("cannot grow the in-memory disk to {new_size} bytes: {e}"),
                )
            })?;
        }
        Vec::resize(self, n, 0);
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn size(&mut self) -> io::Result<Option<u64>> {
        Ok(Some(self.len() as u64))
    }
}

/// What a finished [`Applier`] applied: the stream (disk, generation, checkpoints) whose END
/// was verified and synced. The sender commits exactly `to_seq` of this generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Applied {
    /// The stream's disk.
    pub disk_id: [u8; 16],
    /// The stream's tracker generation.
    pub generation: GenerationId,
    /// The checkpoint the stream started from.
    pub from_seq: u64,
    /// The checkpoint the replica is now at.
    pub to_seq: u64,
    /// The END record's totals.
    pub end: EndSummary,
}

/// The accepted header and the target's size as the applier tracks it through RESIZE records
/// (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
struct Sizes {
    header: Option<StreamHeader>,
    /// The target's actual size (its own answer at the header, else the stream's disk size).
    physical: u64,
    /// The disk size in force in the stream; below `physical` while a shrink is deferred.
    logical: u64,
    /// A RESIZE left `physical` to be set to `logical` at END.
    pending: bool,
}

/// Decodes a stream and applies it to a target.
#[derive(Debug)]
pub struct Applier<T> {
    decoder: Decoder,
    target: T,
    failed: bool,
    consumed: usize,
    sizes: Sizes,
    applied: Option<Applied>,
}

fn target_err(op: &'static str, offset: u64) -> impl FnOnce(io::Error) -> StreamError {
    move |source| StreamError::TargetIo { op, offset, source }
}

impl<T: ApplyTarget> Applier<T> {
    /// An applier writing to `target`. The decoder allocates its scratch at the stream header.
    pub fn new(config: DecoderConfig, target: T) -> Self {
        Applier {
            decoder: Decoder::new(config),
            target,
            failed: false,
            consumed: 0,
            sizes: Sizes::default(),
            applied: None,
        }
    }

    /// Replaces the decoder's expectations; only before the header.
    pub fn set_expected(&mut self, expected: Expected) -> Result<()> {
        self.decoder.set_expected(expected)
    }

    /// The stream header, once decoded.
    pub fn header(&self) -> Option<&StreamHeader> {
        self.decoder.header()
    }

    /// The target.
    pub fn target(&self) -> &T {
        &self.target
    }

    /// The target, mutably (e.g. to inspect it in tests).
    pub fn target_mut(&mut self) -> &mut T {
        &mut self.target
    }

    /// Gives the target back.
    pub fn into_target(self) -> T {
        self.target
    }

    /// True once END has been verified and the target synced.
    pub fn is_finished(&self) -> bool {
        self.applied.is_some()
    }

    /// What was applied, once END has been verified and the target synced (`None` before, and
    /// after a failure before END). The sender commits exactly `to_seq` of `generation`.
    pub fn applied(&self) -> Option<Applied> {
        self.applied
    }

    /// Bytes consumed by the last [`Applier::push`] or [`Applier::push_in_place`], also when it
    /// failed: the frames in them were verified and applied; the failure is in the frame after.
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// Verifies and applies every whole frame at the start of `input`; returns how many bytes
    /// were consumed. The caller keeps the rest and calls again with it plus more bytes.
    /// Bytes after END are [`StreamError::TrailingData`]; they do not undo the verified END:
    /// the applier stays finished and [`Applier::finish`] still returns the totals. Any other
    /// error poisons the applier.
    pub fn push(&mut self, input: &[u8]) -> Result<usize> {
        self.consumed = 0;
        if self.failed {
            return Err(StreamError::Poisoned);
        }
        let r = self.push_inner(input);
        self.settle(r)
    }

    /// As [`Applier::push`], but decrypts frames in place in `input` (see
    /// [`Decoder::next_in_place`]), saving a copy per encrypted frame. The consumed bytes are
    /// overwritten; the unconsumed tail is left as it was.
    pub fn push_in_place(&mut self, input: &mut [u8]) -> Result<usize> {
        self.consumed = 0;
        if self.failed {
            return Err(StreamError::Poisoned);
        }
        let r = self.push_inner_mut(input);
        self.settle(r)
    }

    /// The decoder (the parallel applier reads the accepted header and key from it).
    pub(crate) fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// True after an error other than trailing data after END.
    pub(crate) fn is_failed(&self) -> bool {
        self.failed
    }

    /// Reports an error found outside [`Applier::push`] (by the parallel applier): it poisons
    /// the applier as a push error would (trailing data after END excepted).
    pub(crate) fn refuse(&mut self, e: StreamError) -> StreamError {
        self.settle(Err(e)).err().unwrap_or(StreamError::Poisoned)
    }

    /// The parallel applier's ordered stage: the ordered checks of a frame whose pure checks ran
    /// on a decode thread ([`Decoder::accept_verified`]), then the record is applied exactly as
    /// [`Applier::push`] applies it. Any error poisons the applier.
    pub(crate) fn apply_verified(
        &mut self,
        frame: &[u8],
        verified: Result<Verified>,
        rec: &[u8],
        decomp: &[u8],
    ) -> Result<()> {
        if self.failed {
            return Err(StreamError::Poisoned);
        }
        let r = self
            .decoder
            .accept_verified(frame, verified, rec, decomp)
            .and_then(|record| {
                let d = Decoded::Record {
                    record,
                    consumed: frame.len(),
                };
                apply_decoded(&mut self.target, &mut self.sizes, &mut self.applied, d)
            });
        self.settle(r).map(drop)
    }

    fn settle(&mut self, r: Result<usize>) -> Result<usize> {
        match r {
            Err(StreamError::TrailingData { len }) if self.applied.is_some() => {
                Err(StreamError::TrailingData { len })
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
            ok => ok,
        }
    }

    fn push_inner(&mut self, input: &[u8]) -> Result<usize> {
        while self.consumed < input.len() {
            let d = self.decoder.next(&input[self.consumed..])?;
            match apply_decoded(&mut self.target, &mut self.sizes, &mut self.applied, d)? {
                0 => break,
                n => self.consumed += n,
            }
        }
        Ok(self.consumed)
    }

    fn push_inner_mut(&mut self, input: &mut [u8]) -> Result<usize> {
        while self.consumed < input.len() {
            let d = self.decoder.next_in_place(&mut input[self.consumed..])?;
            match apply_decoded(&mut self.target, &mut self.sizes, &mut self.applied, d)? {
                0 => break,
                n => self.consumed += n,
            }
        }
        Ok(self.consumed)
    }

    /// Reads the whole stream from `reader` and applies it; returns the END totals.
    /// Allocates one buffer of a frame's maximum size.
    pub fn apply_from<R: Read>(&mut self, reader: R) -> Result<EndSummary> {
        pump(reader, MAX_FRAME_BUFFER, |input| self.push_in_place(input))?;
        self.finish()
    }

    /// Call at the end of input: the END totals once END was verified and the target synced
    /// (also after trailing bytes were refused), `Truncated` if END never came, `Poisoned`
    /// after an earlier error.
    pub fn finish(&self) -> Result<EndSummary> {
        if let Some(a) = self.applied {
            return Ok(a.end);
        }
        if self.failed {
            return Err(StreamError::Poisoned);
        }
        self.decoder.finish()
    }
}

/// Bytes that hold any one frame: a 1 MiB record's largest frame, with room to spare.
pub(super) const MAX_FRAME_BUFFER: usize = 2 * (1 << 20) + 4096;

/// Reads `reader` to its end into a buffer of `size` bytes, handing what it holds to `push`,
/// which returns how many bytes it took from the front (the rest is kept for the next read).
/// A read interrupted by a signal is retried; any other read error is
/// [`StreamError::SourceIo`]; an error of `push` is returned as it is.
pub(super) fn pump<R: Read>(
    mut reader: R,
    size: usize,
    mut push: impl FnMut(&mut [u8]) -> Result<usize>,
) -> Result<()> {
    let mut buf = vec![0u8; size];
    let mut filled = 0;
    loop {
        let n = match reader.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(StreamError::SourceIo {
                    offset: 0,
                    len: 0,
                    source,
                })
            }
        };
        filled += n;
        let used = push(&mut buf[..filled])?;
        buf.copy_within(used..filled, 0);
        filled -= used;
        if n == 0 {
            return Ok(());
        }
    }
}

/// Applies what the decoder returned; returns the bytes consumed (0: more input needed).
fn apply_decoded<T: ApplyTarget + ?Sized>(
    target: &mut T,
    sizes: &mut Sizes,
    applied: &mut Option<Applied>,
    d: Decoded<'_>,
) -> Result<usize> {
    match d {
        Decoded::NeedMore { .. } => Ok(0),
        Decoded::Header { header, consumed } => {
            let size = target.size().map_err(target_err("size", 0))?;
            if let Some(size) = size {
                if size < header.disk_size {
                    return Err(StreamError::TargetTooSmall {
                        target: size,
                        disk_size: header.disk_size,
                    });
                }
            }
            *sizes = Sizes {
                header: Some(header),
                physical: size.unwrap_or(header.disk_size),
                logical: header.disk_size,
                pending: false,
            };
            Ok(consumed)
        }
        Decoded::Record { record, consumed } => {
            match record {
                Record::Resize { new_size } => resize(target, sizes, new_size)?,
                Record::End(end) => {
                    if sizes.pending {
                        set_size(target, sizes.logical)?;
                        sizes.physical = sizes.logical;
                        sizes.pending = false;
                    }
                    target.sync().map_err(target_err("sync", 0))?;
                    // The decoder returns END only after the header.
                    *applied = sizes.header.map(|h| Applied {
                        disk_id: h.disk_id,
                        generation: h.generation,
                        from_seq: h.from_seq,
                        to_seq: h.to_seq,
                        end,
                    });
                }
                ref r => apply_record(target, r)?,
            }
            Ok(consumed)
        }
    }
}

/// A RESIZE record: growth at once (within the target's maximum), a shrink deferred to END.
fn resize<T: ApplyTarget + ?Sized>(target: &mut T, sizes: &mut Sizes, new_size: u64) -> Result<()> {
    // Bytes a deferred shrink cut off read as zeros when the disk grows back over them.
    let back = new_size.min(sizes.physical);
    if back > sizes.logical {
        target
            .write_zeroes(sizes.logical, back - sizes.logical)
            .map_err(target_err("write_zeroes", sizes.logical))?;
    }
    if new_size > sizes.physical {
        if let Some(max) = target.max_size().map_err(target_err("size", 0))? {
            if new_size > max {
                return Err(StreamError::TargetTooSmall {
                    target: max,
                    disk_size: new_size,
                });
            }
        }
        set_size(target, new_size)?;
        sizes.physical = new_size;
    }
    sizes.logical = new_size;
    sizes.pending = sizes.logical < sizes.physical;
    Ok(())
}

fn set_size<T: ApplyTarget + ?Sized>(target: &mut T, new_size: u64) -> Result<()> {
    target.resize(new_size).map_err(|source| {
        if source.kind() == io::ErrorKind::Unsupported {
            StreamError::ResizeUnsupported { new_size }
        } else {
            StreamError::TargetIo {
                op: "resize",
                offset: new_size,
                source,
            }
        }
    })
}

/// Applies one verified DATA, ZERO, DISCARD or BOOKMARK record.
fn apply_record<T: ApplyTarget + ?Sized>(target: &mut T, record: &Record<'_>) -> Result<()> {
    match *record {
        Record::Data { offset, data, .. } => target
            .write_at(offset, data)
            .map_err(target_err("write", offset)),
        Record::Zero { offset, len } => target
            .write_zeroes(offset, len)
            .map_err(target_err("write_zeroes", offset)),
        Record::Discard { offset, len } => target
            .discard(offset, len)
            .map_err(target_err("discard", offset)),
        Record::Bookmark(_) => target.sync().map_err(target_err("sync", 0)),
        Record::Resize { .. } | Record::End(_) | Record::Skipped { .. } => Ok(()),
    }
}
