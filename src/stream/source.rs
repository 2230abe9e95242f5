//! Block sources: where the encoder reads the changed blocks from.

use std::fs::File;
use std::io;

/// What a source holds from an offset on: data to read, or a hole that reads as zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// This many bytes (at least 1) hold data, or may: they must be read.
    Data(u64),
    /// This many bytes (at least 1) are a hole: they read as zeros and need not be read.
    Hole(u64),
}

/// Something the encoder can read disk bytes from, by offset.
///
/// Only [`BlockSource::read_at`] is required. A source that knows where its holes are
/// (a sparse file: [`FileSource`]) also answers [`BlockSource::region`], and the encoder then
/// sends a hole as one ZERO (or DISCARD) record without reading it. A source that can read ahead
/// answers [`BlockSource::will_read`], which the encoder calls for ranges it reads soon.
pub trait BlockSource {
    /// Fills all of `buf` with the disk's bytes starting at `offset`. A short read is an error.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// Whether the bytes from `offset` (below `end`) are data or a hole, and how many bytes of
    /// that kind follow, at least 1 and at most `end - offset`; the encoder calls it with
    /// `offset < end`. A source may answer a shorter region than it knows (the encoder asks
    /// again at its end). `Hole` is a promise that the bytes read as zeros; when unsure,
    /// answer `Data`. The default answers that everything is data.
    fn region(&mut self, offset: u64, end: u64) -> io::Result<Region> {
        Ok(Region::Data(end.saturating_sub(offset).max(1)))
    }

    /// A hint that `offset..offset + len` is read soon: a source may start reading it in the
    /// background. Errors are ignored (a later `read_at` reports them). The default does nothing.
    fn will_read(&mut self, offset: u64, len: u64) {
        let _ = (offset, len);
    }
}

impl<S: BlockSource + ?Sized> BlockSource for &mut S {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_at(offset, buf)
    }

    fn region(&mut self, offset: u64, end: u64) -> io::Result<Region> {
        (**self).region(offset, end)
    }

    fn will_read(&mut self, offset: u64, len: u64) {
        (**self).will_read(offset, len)
    }
}

/// An in-memory disk image.
impl BlockSource for [u8] {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let src = usize::try_from(offset)
            .ok()
            .and_then(|o| Some(o..o.checked_add(buf.len())?))
            .and_then(|r| self.get(r))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read past the end of the image",
                )
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl BlockSource for Vec<u8> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.as_mut_slice().read_at(offset, buf)
    }
}

/// A file or block device read with positional reads (`pread`).
///
/// - **Holes.** On Linux, a regular file's holes are found with `lseek(SEEK_DATA / SEEK_HOLE)`
///   and never read: the encoder sends each as one ZERO record. These probes move the file
///   offset (nothing here uses it, but a reader sharing the `File` through `read` would see it
///   move). A block device reports no holes (Linux has no call that lists a device's unmapped
///   ranges); its zeros are found by reading, block by block.
/// - **Read-ahead.** [`BlockSource::will_read`] is `posix_fadvise(POSIX_FADV_WILLNEED)`: the
///   kernel starts reading the range into the page cache in the background, so a cold source
///   is read with many requests in flight rather than one synchronous read per extent.
#[derive(Debug)]
pub struct FileSource {
    file: File,
    block_device: bool,
    /// SEEK_DATA is not supported here (or this is a block device): everything is data.
    no_holes: bool,
}

impl FileSource {
    /// Reads from `file`.
    pub fn new(file: File) -> Self {
        let block_device = is_block_device(&file);
        FileSource {
            file,
            block_device,
            no_holes: block_device,
        }
    }

    /// The file.
    pub fn into_inner(self) -> File {
        self.file
    }

    /// True when the file is a block device.
    pub fn is_block_device(&self) -> bool {
        self.block_device
    }
}

#[cfg(unix)]
fn is_block_device(file: &File) -> bool {
    use std::os::unix::fs::FileTypeExt;
    file.metadata()
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_block_device(_file: &File) -> bool {
    false
}

/// `lseek(fd, offset, whence)`: `Ok(Some(position))`, `Ok(None)` for ENXIO (no data, or no
/// hole, at or after `offset`), or the error.
#[cfg(target_os = "linux")]
fn seek(file: &File, offset: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    use std::os::unix::io::AsRawFd;
    let off = libc::off_t::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: `lseek` only reads its integer arguments; the descriptor is owned by `file`, which
    // outlives the call.
    let r = unsafe { libc::lseek(file.as_raw_fd(), off, whence) };
    if r >= 0 {
        return Ok(Some(r as u64));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENXIO) {
        return Ok(None);
    }
    Err(e)
}

impl BlockSource for FileSource {
    #[cfg(unix)]
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
    }

    #[cfg(not(unix))]
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.read_exact(buf)
    }

    #[cfg(target_os = "linux")]
    fn region(&mut self, offset: u64, end: u64) -> io::Result<Region> {
        let all = Region::Data(end.saturating_sub(offset).max(1));
        if self.no_holes || offset >= end {
            return Ok(all);
        }
        let data = match seek(&self.file, offset, libc::SEEK_DATA) {
            Ok(Some(d)) => d,
            Ok(None) => {
                // No data at or after `offset`: a hole up to the end of the file. Past the end
                // there is nothing to promise; `read_at` reports the short read.
                let size = self.file.metadata()?.len();
                if offset >= size {
                    return Ok(all);
                }
                return Ok(Region::Hole(size.min(end) - offset));
            }
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)
                ) =>
            {
                self.no_holes = true;
                return Ok(all);
            }
            Err(e) => return Err(e),
        };
        if data > offset {
            return Ok(Region::Hole(data.min(end) - offset));
        }
        // Data at `offset`: it runs to the next hole (every file has one at its end).
        let hole = seek(&self.file, offset, libc::SEEK_HOLE)?.unwrap_or(end);
        Ok(Region::Data(
            hole.clamp(offset + 1, end.max(offset + 1)) - offset,
        ))
    }

    #[cfg(target_os = "linux")]
    fn will_read(&mut self, offset: u64, len: u64) {
        use std::os::unix::io::AsRawFd;
        let (Ok(off), Ok(l)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
            return;
        };
        // SAFETY: `posix_fadvise` only reads its integer arguments; the descriptor is owned by
        // `self.file`, which outlives the call. A failure only loses the hint.
        unsafe { libc::posix_fadvise(self.file.as_raw_fd(), off, l, libc::POSIX_FADV_WILLNEED) };
    }
}
