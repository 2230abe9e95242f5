//! The applier: a decoder feeding an [`ApplyTarget`].
//!
//! It writes only records the decoder has fully verified, syncs the target at every BOOKMARK
//! and at END, and refuses a target smaller than the stream's disk. A stream cut short leaves
//! the target between the two checkpoints: only a successful [`Applier::finish`] means the
//! replica is at `to_seq`.

use std::io::{self, Read};

use super::decoder::{Decoded, Decoder, DecoderConfig, Expected};
use super::error::{Result, StreamError};
use super::header::StreamHeader;
use super::record::{EndSummary, Record};

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
    fn resize(&mut self, new_size: u64) -> io::Result<()> {
        let n = usize::try_from(new_size).map_err(|_| io::ErrorKind::OutOfMemory)?;
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

/// Decodes a stream and applies it to a target.
#[derive(Debug)]
pub struct Applier<T> {
    decoder: Decoder,
    target: T,
    failed: bool,
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
        self.decoder.is_finished()
    }

    /// Verifies and applies every whole frame at the start of `input`; returns how many bytes
    /// were consumed. The caller keeps the rest and calls again with it plus more bytes.
    /// Bytes after END are an error.
    pub fn push(&mut self, input: &[u8]) -> Result<usize> {
        if self.failed {
            return Err(StreamError::Poisoned);
        }
        let r = self.push_inner(input);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// As [`Applier::push`], but decrypts frames in place in `input` (see
    /// [`Decoder::next_in_place`]), saving a copy per encrypted frame. The consumed bytes are
    /// overwritten; the unconsumed tail is left as it was.
    pub fn push_in_place(&mut self, input: &mut [u8]) -> Result<usize> {
        if self.failed {
            return Err(StreamError::Poisoned);
        }
        let r = self.push_inner_mut(input);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn push_inner(&mut self, input: &[u8]) -> Result<usize> {
        let mut at = 0;
        while at < input.len() {
            let d = self.decoder.next(&input[at..])?;
            match apply_decoded(&mut self.target, d)? {
                0 => break,
                n => at += n,
            }
        }
        Ok(at)
    }

    fn push_inner_mut(&mut self, input: &mut [u8]) -> Result<usize> {
        let mut at = 0;
        while at < input.len() {
            let d = self.decoder.next_in_place(&mut input[at..])?;
            match apply_decoded(&mut self.target, d)? {
                0 => break,
                n => at += n,
            }
        }
        Ok(at)
    }

    /// Reads the whole stream from `reader` and applies it; returns the END totals.
    /// Allocates one buffer of a frame's maximum size.
    pub fn apply_from<R: Read>(&mut self, mut reader: R) -> Result<EndSummary> {
        let mut buf = vec![0u8; 2 * (1 << 20) + 4096];
        let mut filled = 0;
        loop {
            let n = reader
                .read(&mut buf[filled..])
                .map_err(|source| StreamError::SourceIo {
                    offset: 0,
                    len: 0,
                    source,
                })?;
            filled += n;
            let used = self.push_in_place(&mut buf[..filled])?;
            buf.copy_within(used..filled, 0);
            filled -= used;
            if n == 0 {
                return self.finish();
            }
        }
    }

    /// Call at the end of input: the END totals, or `Truncated` if END never came.
    pub fn finish(&self) -> Result<EndSummary> {
        if self.failed {
            return Err(StreamError::Poisoned);
        }
        self.decoder.finish()
    }
}

/// Applies what the decoder returned; returns the bytes consumed (0: more input needed).
fn apply_decoded<T: ApplyTarget + ?Sized>(target: &mut T, d: Decoded<'_>) -> Result<usize> {
    match d {
        Decoded::NeedMore { .. } => Ok(0),
        Decoded::Header { header, consumed } => {
            if let Some(size) = target.size().map_err(target_err("size", 0))? {
                if size < header.disk_size {
                    return Err(StreamError::TargetTooSmall {
                        target: size,
                        disk_size: header.disk_size,
                    });
                }
            }
            Ok(consumed)
        }
        Decoded::Record { record, consumed } => {
            apply_record(target, &record)?;
            Ok(consumed)
        }
    }
}

/// Applies one verified record.
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
        Record::Resize { new_size } => target.resize(new_size).map_err(|source| {
            if source.kind() == io::ErrorKind::Unsupported {
                StreamError::ResizeUnsupported { new_size }
            } else {
                StreamError::TargetIo {
                    op: "resize",
                    offset: new_size,
                    source,
                }
            }
        }),
        Record::Bookmark(_) | Record::End(_) => target.sync().map_err(target_err("sync", 0)),
        Record::Skipped { .. } => Ok(()),
    }
}
