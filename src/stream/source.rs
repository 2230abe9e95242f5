//! Block sources: where the encoder reads the changed blocks from.

use std::fs::File;
use std::io;

/// Something the encoder can read disk bytes from, by offset.
pub trait BlockSource {
    /// Fills all of `buf` with the disk's bytes starting at `offset`. A short read is an error.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl<S: BlockSource + ?Sized> BlockSource for &mut S {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_at(offset, buf)
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

/// A file or block device read with positional reads (`pread`); the file offset is not used,
/// so the same `File` may be shared with other readers.
#[derive(Debug)]
pub struct FileSource {
    file: File,
}

impl FileSource {
    /// Reads from `file`.
    pub fn new(file: File) -> Self {
        FileSource { file }
    }

    /// The file.
    pub fn into_inner(self) -> File {
        self.file
    }
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
}
