//! An in-memory replica that logs every operation the applier sends it, shared by the stream
//! tests that check what a target saw (or did not see) from a stream.

use std::io;

use blockdelta::ApplyTarget;

/// An in-memory disk that logs every operation it receives.
#[derive(Default)]
pub struct Recorder {
    /// The disk image.
    pub disk: Vec<u8>,
    /// One line per operation: `write OFFSET LEN`, `zero ...`, `discard ...`, `resize N`, `sync`.
    pub log: Vec<String>,
}

impl ApplyTarget for Recorder {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.log.push(format!("write {offset} {}", data.len()));
        self.disk.write_at(offset, data)
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.log.push(format!("zero {offset} {len}"));
        self.disk.write_zeroes(offset, len)
    }
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.log.push(format!("discard {offset} {len}"));
        self.disk.discard(offset, len)
    }
    fn resize(&mut self, new_size: u64) -> io::Result<()> {
        self.log.push(format!("resize {new_size}"));
        ApplyTarget::resize(&mut self.disk, new_size)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.log.push("sync".into());
        Ok(())
    }
    fn size(&mut self) -> io::Result<Option<u64>> {
        Ok(Some(self.disk.len() as u64))
    }
}
