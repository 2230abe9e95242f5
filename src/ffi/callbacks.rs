//! What the stream handles share: the C callback types, the adapters that turn them into a
//! [`BlockSource`] and an [`ApplyTarget`], and argument helpers (ids, secrets).
//!
//! The target adapter knows the replica's size and maximum size, so no C callback ever receives
//! a range outside what the replica is allowed to be.

use std::ffi::{c_int, c_void};
use std::io;

use super::error::fail_thread;
use super::handle::arg_slice;
use super::result::blockdelta_result;
use crate::stream::{ApplyTarget, BlockSource, Region, Secret};

/// Reads `len` bytes of the source disk at `offset` into `buf`. Returns 0 on success; non-zero
/// on failure (a positive value is reported as that errno). Called only from within
/// `blockdelta_encoder_next`, on the calling thread; `buf` is valid only during the call.
pub type blockdelta_read_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, offset: u64, buf: *mut u8, len: usize) -> c_int>;
/// Says what the source holds from `offset` (below `end`): sets `*hole` (true: the bytes read as
/// zeros and need not be read; when unsure, false) and `*len`, how many bytes of that kind follow
/// (1 to `end - offset`; fewer than known is fine, the encoder asks again). Returns 0 on success,
/// non-zero on failure (a positive value is reported as that errno). Called only from within
/// `blockdelta_encoder_next`, on the calling thread.
pub type blockdelta_region_fn = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        offset: u64,
        end: u64,
        hole: *mut bool,
        len: *mut u64,
    ) -> c_int,
>;
/// A hint that `offset..offset + len` of the source is read soon (start reading it in the
/// background if that helps). Called only from within `blockdelta_encoder_next`, on the calling
/// thread.
pub type blockdelta_will_read_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, offset: u64, len: u64)>;
/// Writes `len` bytes from `buf` at `offset` of the replica. Returns 0 on success.
pub type blockdelta_write_fn = Option<
    unsafe extern "C" fn(ctx: *mut c_void, offset: u64, buf: *const u8, len: usize) -> c_int,
>;
/// Makes `offset`..`offset + len` read as zeros (write_zeroes) or unmaps it (discard). Returns 0 on success.
pub type blockdelta_range_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, offset: u64, len: u64) -> c_int>;
/// Resizes the replica to `new_size` bytes. Returns 0 on success.
pub type blockdelta_resize_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, new_size: u64) -> c_int>;
/// Makes everything written so far durable. Returns 0 on success.
pub type blockdelta_sync_fn = Option<unsafe extern "C" fn(ctx: *mut c_void) -> c_int>;

fn callback_error(rc: c_int) -> io::Error {
    if rc > 0 {
        io::Error::from_raw_os_error(rc)
    } else {
        io::ErrorKind::Other.into()
    }
}

pub(crate) struct CSource {
    pub(crate) read: unsafe extern "C" fn(*mut c_void, u64, *mut u8, usize) -> c_int,
    pub(crate) region: blockdelta_region_fn,
    pub(crate) will_read: blockdelta_will_read_fn,
    pub(crate) ctx: *mut c_void,
}

impl BlockSource for CSource {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        // SAFETY: the caller of `blockdelta_encoder_new` promised a valid callback and context;
        // `buf` is a live, writable slice for the duration of the call.
        rc(unsafe { (self.read)(self.ctx, offset, buf.as_mut_ptr(), buf.len()) })
    }

    fn region(&mut self, offset: u64, end: u64) -> io::Result<Region> {
        let Some(region) = self.region else {
            return Ok(Region::Data(end.saturating_sub(offset).max(1)));
        };
        let (mut hole, mut len) = (false, 0u64);
        // SAFETY: the caller of `blockdelta_encoder_set_source_hints` promised a valid callback
        // for the context given at `blockdelta_encoder_new`; both out-pointers are live locals.
        rc(unsafe { region(self.ctx, offset, end, &mut hole, &mut len) })?;
        if len == 0 || len > end.saturating_sub(offset) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the region callback answered {len} bytes at {offset} (1 to {} allowed)",
                    end.saturating_sub(offset)
                ),
            ));
        }
        Ok(if hole {
            Region::Hole(len)
        } else {
            Region::Data(len)
        })
    }

    fn will_read(&mut self, offset: u64, len: u64) {
        if let Some(f) = self.will_read {
            // SAFETY: as for `region`.
            unsafe { f(self.ctx, offset, len) }
        }
    }
}

/// The C target callbacks, with the replica's size and the largest size it may be resized to:
/// no callback ever receives a range outside the current size, nor a size above the maximum.
pub(crate) struct CTarget {
    pub(crate) size: u64,
    pub(crate) max_size: u64,
    pub(crate) ctx: *mut c_void,
    pub(crate) write: unsafe extern "C" fn(*mut c_void, u64, *const u8, usize) -> c_int,
    pub(crate) write_zeroes: unsafe extern "C" fn(*mut c_void, u64, u64) -> c_int,
    pub(crate) discard: blockdelta_range_fn,
    pub(crate) resize: blockdelta_resize_fn,
    pub(crate) sync: blockdelta_sync_fn,
}

impl CTarget {
    /// The applier only writes within the disk size in force, which never exceeds the target's
    /// size; this is the last line of defence for the C callbacks.
    fn check(&self, offset: u64, len: u64) -> io::Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "range {offset}+{len} is past the replica's size {}",
                    self.size
                ),
            )),
        }
    }
}

fn rc(r: c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(callback_error(r))
    }
}

// SAFETY (for every call below): the caller of `blockdelta_applier_new` promised valid
// callbacks and context for the applier's lifetime; slices passed are live during the call.
impl ApplyTarget for CTarget {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check(offset, data.len() as u64)?;
        // SAFETY: see the impl comment.
        rc(unsafe { (self.write)(self.ctx, offset, data.as_ptr(), data.len()) })
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.check(offset, len)?;
        // SAFETY: see the impl comment.
        rc(unsafe { (self.write_zeroes)(self.ctx, offset, len) })
    }
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.check(offset, len)?;
        match self.discard {
            // SAFETY: see the impl comment.
            Some(f) => rc(unsafe { f(self.ctx, offset, len) }),
            None => self.write_zeroes(offset, len),
        }
    }
    fn resize(&mut self, new_size: u64) -> io::Result<()> {
        if new_size > self.max_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "resize to {new_size} is above the replica's maximum {}",
                    self.max_size
                ),
            ));
        }
        match self.resize {
            // SAFETY: see the impl comment.
            Some(f) => rc(unsafe { f(self.ctx, new_size) })?,
            None => return Err(io::ErrorKind::Unsupported.into()),
        }
        self.size = new_size;
        Ok(())
    }
    fn size(&mut self) -> io::Result<Option<u64>> {
        Ok(Some(self.size))
    }
    fn max_size(&mut self) -> io::Result<Option<u64>> {
        Ok(Some(self.max_size))
    }
    fn sync(&mut self) -> io::Result<()> {
        match self.sync {
            // SAFETY: see the impl comment.
            Some(f) => rc(unsafe { f(self.ctx) }),
            None => Ok(()),
        }
    }
}

/// The message of `BLOCKDELTA_RESULT_REENTERED`.
pub(crate) const REENTERED: &str = "a callback called back into the handle that is calling it";

/// Reads a 16-byte id; NULL is `None` when `optional`.
///
/// # Safety
/// `p` is NULL or valid for 16 reads.
pub(crate) unsafe fn id16(p: *const u8) -> Result<Option<[u8; 16]>, blockdelta_result> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and valid for 16 bytes per the caller's contract.
    let s = unsafe { arg_slice(p, 16)? };
    let mut a = [0u8; 16];
    a.copy_from_slice(s);
    Ok(Some(a))
}

/// # Safety
/// `secret` is NULL with `len == 0`, or valid for `len` reads.
pub(crate) unsafe fn secret_arg(
    secret: *const u8,
    len: usize,
) -> Result<Option<Secret>, blockdelta_result> {
    // SAFETY: forwarded contract.
    let s = unsafe { arg_slice(secret, len)? };
    Ok(if secret.is_null() {
        None
    } else {
        Some(Secret::new(s).map_err(fail_thread)?)
    })
}
