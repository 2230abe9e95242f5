//! C ABI of checksum resync (`docs/RESYNC.md`): hash a disk or image file into a
//! `blockdelta_hash_list`, put it through its wire form, compare two lists into a
//! `blockdelta_resync_plan` whose extents a C sender ships with `blockdelta_encoder_*` (a
//! RESIZE first when the plan's sizes differ) or marks with
//! `blockdelta_tracker_adopt_lineage`.

use std::ffi::c_char;
use std::fs::File;

use super::callbacks::secret_arg;
use super::error::{fail_thread, record_thread_error};
use super::handle::{
    arg_ref, arg_slice, copy_extents_at, free_handle, into_handle, out_slice, Out,
};
use super::panic::{boundary, boundary_value};
use super::replica::path_arg;
use super::result::{blockdelta_result, ToResult};
use crate::resync::{diff, HashConfig, HashList, ResyncError, ResyncPlan};
use crate::tracker::Extent;

#[cfg(test)]
#[path = "tests/resync.rs"]
mod tests;

/// A disk's block-hash list (opaque). Free with `blockdelta_hash_list_free`.
pub struct blockdelta_hash_list(pub(crate) HashList);

/// What a resync must ship (opaque). Free with `blockdelta_resync_plan_free`.
pub struct blockdelta_resync_plan(pub(crate) ResyncPlan);

impl ToResult for ResyncError {
    fn to_result(&self) -> blockdelta_result {
        match self {
            ResyncError::InvalidBlockSize(_) | ResyncError::InvalidDiskSize(_) => {
                blockdelta_result::InvalidArgument
            }
            ResyncError::Io { .. } => blockdelta_result::Io,
            ResyncError::UnsupportedVersion(_) => blockdelta_result::ResyncUnsupportedVersion,
            ResyncError::UnexpectedTag
            | ResyncError::Unauthenticated
            | ResyncError::AuthenticationFailed => blockdelta_result::ResyncAuthenticationFailed,
            ResyncError::BlockSizeMismatch { .. }
            | ResyncError::SaltMismatch
            | ResyncError::SizeMismatch { .. } => blockdelta_result::ResyncListMismatch,
            ResyncError::Tracker(e) => e.to_result(),
            ResyncError::Stream(e) => e.to_result(),
            ResyncError::Sink(_) => blockdelta_result::CallbackFailed,
            // Every other way a list can be damaged or forged.
            _ => blockdelta_result::ResyncInvalidList,
        }
    }
}

/// Fills `salt_out[0..16]` with random bytes from the operating system: the sender's salt for
/// one resync, given to the replica with the request.
#[no_mangle]
pub extern "C" fn blockdelta_resync_random_salt(salt_out: *mut u8) -> blockdelta_result {
    boundary(|| {
        // SAFETY: `salt_out` is NULL or writable for 16 bytes per the contract.
        let out = unsafe { out_slice(salt_out, if salt_out.is_null() { 1 } else { 16 })? };
        out.copy_from_slice(&HashConfig::with_random_salt().salt);
        Ok(())
    })
}

/// Hashes the first `disk_size` bytes (0: the size of a regular file; give it for a block
/// device) of the file or block device at `path` (NUL-terminated) into a new list at
/// `*list_out`: blocks of `block_size` bytes (0: 4096; a power of two, 4 KiB to 1 MiB), on
/// `threads` threads (0: all cores), each data block as the first 16 bytes of
/// SHA-256(salt || block), all-zero blocks flagged. `salt` points to 16 bytes (the sender's).
/// Reads the file once; blocks on I/O; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_hash_list_compute_file(
    path: *const c_char,
    disk_size: u64,
    block_size: u32,
    threads: u32,
    salt: *const u8,
    list_out: *mut *mut blockdelta_hash_list,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(list_out)?;
        // SAFETY: `path` NULL or NUL-terminated; `salt` NULL or readable for 16 bytes.
        let (path, salt) = unsafe {
            (
                path_arg(path)?,
                arg_slice(salt, if salt.is_null() { 1 } else { 16 })?,
            )
        };
        let file = File::open(path).map_err(|e| {
            let code = blockdelta_result::Io;
            record_thread_error(code, &format_args!("cannot open {}: {e}", path.display()));
            code
        })?;
        let size = match disk_size {
            0 => file.metadata().map(|m| m.len()).unwrap_or(0),
            n => n,
        };
        let config = HashConfig {
            block_size: if block_size == 0 { 4096 } else { block_size },
            threads: threads as usize,
            salt: salt.try_into().expect("16 bytes"),
        };
        let list = HashList::compute(&file, size, &config).map_err(fail_thread)?;
        // SAFETY: `list_out` is writable per the contract.
        unsafe { out.write(into_handle(blockdelta_hash_list(list))) };
        Ok(())
    })
}

/// The bytes `blockdelta_hash_list_encode` writes for `list`, with (`authenticated` true) or
/// without an authentication tag; 0 if `list` is NULL.
#[no_mangle]
pub extern "C" fn blockdelta_hash_list_wire_len(
    list: *const blockdelta_hash_list,
    authenticated: bool,
) -> usize {
    boundary_value(0, || {
        // SAFETY: `list` is NULL or a live handle.
        match unsafe { arg_ref(list) } {
            Ok(l) => l.0.to_bytes().len() + if authenticated { 32 } else { 0 },
            Err(_) => 0,
        }
    })
}

/// Writes the wire form of `list` (`docs/RESYNC.md`) into `(buf, cap)`, `*len_out` receiving
/// its length. `(secret, secret_len)`: the replication secret to authenticate the list with
/// (HMAC-SHA256), or `(NULL, 0)` for none. `BLOCKDELTA_RESULT_BUFFER_TOO_SMALL` if `cap` is
/// below `blockdelta_hash_list_wire_len` (nothing written). Any thread.
#[no_mangle]
pub extern "C" fn blockdelta_hash_list_encode(
    list: *const blockdelta_hash_list,
    secret: *const u8,
    secret_len: usize,
    buf: *mut u8,
    cap: usize,
    len_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        let len_out = Out::new(len_out)?;
        // SAFETY: per the contract: a live handle, a readable secret or (NULL, 0), a writable
        // buffer or (NULL, 0).
        let (list, secret, dst) = unsafe {
            (
                arg_ref(list)?,
                secret_arg(secret, secret_len)?,
                out_slice(buf, cap)?,
            )
        };
        let bytes = match &secret {
            Some(s) => list.0.to_bytes_authenticated(s),
            None => list.0.to_bytes(),
        };
        if dst.len() < bytes.len() {
            let code = blockdelta_result::BufferTooSmall;
            record_thread_error(
                code,
                &format_args!(
                    "the hash list needs {} bytes, the buffer has {cap}",
                    bytes.len()
                ),
            );
            return Err(code);
        }
        dst[..bytes.len()].copy_from_slice(&bytes);
        // SAFETY: writable per the contract.
        unsafe { len_out.write(bytes.len()) };
        Ok(())
    })
}

/// Reads a hash list from `(bytes, len)` (hostile input: every damage or forgery is an error,
/// memory stays in proportion to `len`) into a new list at `*list_out`. With
/// `(secret, secret_len)` the list must carry a valid authentication tag under that secret;
/// with `(NULL, 0)` it must carry none (`BLOCKDELTA_RESULT_RESYNC_AUTHENTICATION_FAILED`).
#[no_mangle]
pub extern "C" fn blockdelta_hash_list_decode(
    bytes: *const u8,
    len: usize,
    secret: *const u8,
    secret_len: usize,
    list_out: *mut *mut blockdelta_hash_list,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(list_out)?;
        // SAFETY: `(bytes, len)` and `(secret, secret_len)` readable or `(NULL, 0)`.
        let (bytes, secret) = unsafe { (arg_slice(bytes, len)?, secret_arg(secret, secret_len)?) };
        let list = match &secret {
            Some(s) => HashList::decode_authenticated(bytes, s),
            None => HashList::decode(bytes),
        }
        .map_err(fail_thread)?;
        // SAFETY: writable per the contract.
        unsafe { out.write(into_handle(blockdelta_hash_list(list))) };
        Ok(())
    })
}

/// The list's disk size, block size, and counts of data (hashed) and all-zero blocks; each
/// output NULL to skip.
#[no_mangle]
pub extern "C" fn blockdelta_hash_list_info(
    list: *const blockdelta_hash_list,
    disk_size_out: *mut u64,
    block_size_out: *mut u32,
    data_blocks_out: *mut u64,
    zero_blocks_out: *mut u64,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle; each output NULL or writable.
        unsafe {
            let l = &arg_ref(list)?.0;
            if !disk_size_out.is_null() {
                disk_size_out.write(l.disk_size());
            }
            if !block_size_out.is_null() {
                block_size_out.write(l.block_size());
            }
            if !data_blocks_out.is_null() {
                data_blocks_out.write(l.data_blocks());
            }
            if !zero_blocks_out.is_null() {
                zero_blocks_out.write(l.zero_blocks());
            }
        }
        Ok(())
    })
}

/// Frees a list; NULL is a no-op.
#[no_mangle]
pub extern "C" fn blockdelta_hash_list_free(list: *mut blockdelta_hash_list) {
    boundary_value((), || {
        // SAFETY: NULL or a handle from this library, freed once.
        unsafe { free_handle(list) }
    })
}

/// Compares the replica's list with the source's (same block size and salt, else
/// `BLOCKDELTA_RESULT_RESYNC_LIST_MISMATCH`) into a new plan at `*plan_out`: the source ranges
/// whose blocks differ, coalesced and ascending.
#[no_mangle]
pub extern "C" fn blockdelta_resync_diff(
    replica: *const blockdelta_hash_list,
    source: *const blockdelta_hash_list,
    plan_out: *mut *mut blockdelta_resync_plan,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(plan_out)?;
        // SAFETY: live handles.
        let (r, s) = unsafe { (arg_ref(replica)?, arg_ref(source)?) };
        let plan = diff(&r.0, &s.0).map_err(fail_thread)?;
        // SAFETY: writable per the contract.
        unsafe { out.write(into_handle(blockdelta_resync_plan(plan))) };
        Ok(())
    })
}

/// The plan's extent count, differing blocks and bytes, and the replica's and source's sizes
/// (they differ: the stream must RESIZE the replica to the source's size first); each output
/// NULL to skip.
#[no_mangle]
pub extern "C" fn blockdelta_resync_plan_info(
    plan: *const blockdelta_resync_plan,
    extent_count_out: *mut usize,
    differing_blocks_out: *mut u64,
    differing_bytes_out: *mut u64,
    replica_size_out: *mut u64,
    source_size_out: *mut u64,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle; each output NULL or writable.
        unsafe {
            let p = &arg_ref(plan)?.0;
            if !extent_count_out.is_null() {
                extent_count_out.write(p.extents.len());
            }
            if !differing_blocks_out.is_null() {
                differing_blocks_out.write(p.differing_blocks);
            }
            if !differing_bytes_out.is_null() {
                differing_bytes_out.write(p.differing_bytes());
            }
            if !replica_size_out.is_null() {
                replica_size_out.write(p.replica_size);
            }
            if !source_size_out.is_null() {
                source_size_out.write(p.source_size);
            }
        }
        Ok(())
    })
}

/// Copies up to `cap` of the plan's extents, from index `start` on, into `extents_out`;
/// `*n_out` receives how many. 0 is returned only at or past the end, whatever `cap` is:
/// `cap` 0 before the end is `BLOCKDELTA_RESULT_BUFFER_TOO_SMALL` (as for
/// `blockdelta_tracker_extents`), so a loop until 0 never stops early.
#[no_mangle]
pub extern "C" fn blockdelta_resync_plan_extents(
    plan: *const blockdelta_resync_plan,
    start: usize,
    extents_out: *mut Extent,
    cap: usize,
    n_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle; `(extents_out, cap)` writable or `(NULL, 0)`; `n_out` NULL or
        // writable.
        unsafe { copy_extents_at(&arg_ref(plan)?.0.extents, start, extents_out, cap, n_out) }
    })
}

/// Frees a plan; NULL is a no-op.
#[no_mangle]
pub extern "C" fn blockdelta_resync_plan_free(plan: *mut blockdelta_resync_plan) {
    boundary_value((), || {
        // SAFETY: NULL or a handle from this library, freed once.
        unsafe { free_handle(plan) }
    })
}
