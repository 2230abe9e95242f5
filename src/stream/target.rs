//! `FileTarget`: a replica in a regular file or on a block device.
//!
//! Positional writes (`pwrite`), so the file offset is untouched. On Linux:
//! - **Thin (the default).** ZERO and DISCARD both punch a hole
//!   (`fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`): the range reads as zeros and
//!   holds no space, so a replica is as thin as the stream (an encoder with zero detection sends
//!   every all-zero block and every hole of its source as ZERO). On a block device the same
//!   call writes zeros and unmaps where the device can.
//! - **Thick** ([`FileTarget::thick`]). ZERO allocates zeros (`FALLOC_FL_ZERO_RANGE`), so the
//!   replica keeps its space reserved (no out-of-space failure on a later write into the range);
//!   DISCARD still punches a hole.
//!
//! Where the file system or device does not support the call (or on other systems) both fall
//! back to writing zeros, which satisfies both records' meaning.
//! RESIZE truncates or extends a regular file; a block device cannot change size, so a RESIZE
//! to any other size fails with [`std::io::ErrorKind::Unsupported`]. `sync` is `fdatasync`.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};

use super::apply::ApplyTarget;

const ZERO_CHUNK: usize = 1 << 20;

/// A replica disk in a file or block device. See the module documentation.
#[derive(Debug)]
pub struct FileTarget {
    file: File,
    block_device: bool,
    thin: bool,
    zeros: Box<[u8]>,
}

impl FileTarget {
    /// Writes to `file`, which must be open for writing; thin (ZERO punches holes).
    pub fn new(file: File) -> io::Result<Self> {
        let block_device = is_block_device(&file)?;
        Ok(FileTarget {
            file,
            block_device,
            thin: true,
            zeros: vec![0u8; ZERO_CHUNK].into_boxed_slice(),
        })
    }

    /// Writes to `file`, thick: ZERO allocates zeroed space instead of punching a hole.
    pub fn thick(file: File) -> io::Result<Self> {
        let mut t = FileTarget::new(file)?;
        t.thin = false;
        Ok(t)
    }

    /// True when ZERO punches holes (the default), false when it allocates zeros.
    pub fn is_thin(&self) -> bool {
        self.thin
    }

    /// The file.
    pub fn get_ref(&self) -> &File {
        &self.file
    }

    /// Gives the file back.
    pub fn into_inner(self) -> File {
        self.file
    }

    fn write_zero_bytes(&mut self, mut offset: u64, len: u64) -> io::Result<()> {
        let end = offset.checked_add(len).ok_or(io::ErrorKind::InvalidInput)?;
        while offset < end {
            let n = (end - offset).min(ZERO_CHUNK as u64) as usize;
            write_all_at(&self.file, &self.zeros[..n], offset)?;
            offset += n as u64;
        }
        Ok(())
    }
}

#[cfg(unix)]
fn is_block_device(file: &File) -> io::Result<bool> {
    use std::os::unix::fs::FileTypeExt;
    Ok(file.metadata()?.file_type().is_block_device())
}

#[cfg(not(unix))]
fn is_block_device(_file: &File) -> io::Result<bool> {
    Ok(false)
}

#[cfg(unix)]
fn write_all_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, data, offset)
}

#[cfg(not(unix))]
fn write_all_at(mut file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    use std::io::Write;
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(data)
}

/// `fallocate` with `mode`; `Ok(false)` when the file system or device does not support it.
#[cfg(target_os = "linux")]
fn fallocate(file: &File, mode: libc::c_int, offset: u64, len: u64) -> io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    let (Ok(off), Ok(l)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Ok(false);
    };
    // SAFETY: `fallocate` only reads its integer arguments; the descriptor is owned by `file`,
    // which outlives the call.
    let r = unsafe { libc::fallocate(file.as_raw_fd(), mode, off, l) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::ENODEV) => {
            Ok(false)
        }
        _ => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
fn fallocate(_file: &File, _mode: i32, _offset: u64, _len: u64) -> io::Result<bool> {
    Ok(false)
}

#[cfg(target_os = "linux")]
const ZERO_RANGE: i32 = libc::FALLOC_FL_ZERO_RANGE;
#[cfg(target_os = "linux")]
const PUNCH_HOLE: i32 = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
#[cfg(not(target_os = "linux"))]
const ZERO_RANGE: i32 = 0;
#[cfg(not(target_os = "linux"))]
const PUNCH_HOLE: i32 = 0;

impl ApplyTarget for FileTarget {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        write_all_at(&self.file, data, offset)
    }

    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let mode = if self.thin { PUNCH_HOLE } else { ZERO_RANGE };
        if fallocate(&self.file, mode, offset, len)? {
            return Ok(());
        }
        self.write_zero_bytes(offset, len)
    }

    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        if fallocate(&self.file, PUNCH_HOLE, offset, len)? {
            return Ok(());
        }
        self.write_zero_bytes(offset, len)
    }

    fn resize(&mut self, new_size: u64) -> io::Result<()> {
        if self.block_device {
            if self.size()? == Some(new_size) {
                return Ok(());
            }
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a block device cannot be resized",
            ));
        }
        self.file.set_len(new_size)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn size(&mut self) -> io::Result<Option<u64>> {
        if self.block_device {
            // A block device's metadata length is 0; its end is its size.
            return (&self.file).seek(SeekFrom::End(0)).map(Some);
        }
        Ok(Some(self.file.metadata()?.len()))
    }
}
