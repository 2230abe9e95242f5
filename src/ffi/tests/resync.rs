//! The resync C ABI driven as from C: hash two files, list through its (authenticated) wire
//! form, compare, read the plan's extents; error codes for NULL, damage, mismatch.

use std::ffi::CString;
use std::io::Write;
use std::ptr::{null, null_mut};

use super::*;
use crate::tracker::Extent;

const SECRET: &[u8] = b"resync ffi test secret, 16+";

fn file(content: &[u8]) -> (tempfile::TempDir, CString) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("disk.img");
    std::fs::File::create(&p)
        .unwrap()
        .write_all(content)
        .unwrap();
    (dir, CString::new(p.to_str().unwrap()).unwrap())
}

fn compute(path: &CString, salt: &[u8; 16]) -> *mut blockdelta_hash_list {
    let mut list = null_mut();
    assert_eq!(
        blockdelta_hash_list_compute_file(path.as_ptr(), 0, 0, 2, salt.as_ptr(), &mut list),
        blockdelta_result::Ok
    );
    list
}

#[test]
#[cfg_attr(miri, ignore = "file I/O and threads")]
fn hash_encode_decode_diff_and_extents() {
    let source: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8 | 1).collect();
    let mut replica = source.clone();
    replica[5000] ^= 1; // block 1
    replica[200_000] ^= 1; // block 48
    replica[299_999] ^= 1; // the last, partial block (73)
    let (_d1, sp) = file(&source);
    let (_d2, rp) = file(&replica);
    let mut salt = [0u8; 16];
    assert_eq!(
        blockdelta_resync_random_salt(salt.as_mut_ptr()),
        blockdelta_result::Ok
    );
    assert_eq!(
        blockdelta_resync_random_salt(null_mut()),
        blockdelta_result::NullParameter
    );
    let ours = compute(&sp, &salt);
    let theirs = compute(&rp, &salt);

    let (mut size, mut bs, mut data, mut zero) = (0u64, 0u32, 0u64, 0u64);
    assert_eq!(
        blockdelta_hash_list_info(theirs, &mut size, &mut bs, &mut data, &mut zero),
        blockdelta_result::Ok
    );
    assert_eq!((size, bs, data, zero), (300_000, 4096, 74, 0));

    // Through the authenticated wire form.
    let need = blockdelta_hash_list_wire_len(theirs, true);
    let mut buf = vec![0u8; need];
    let mut len = 0usize;
    assert_eq!(
        blockdelta_hash_list_encode(
            theirs,
            SECRET.as_ptr(),
            SECRET.len(),
            buf.as_mut_ptr(),
            need - 1,
            &mut len
        ),
        blockdelta_result::BufferTooSmall
    );
    assert_eq!(
        blockdelta_hash_list_encode(
            theirs,
            SECRET.as_ptr(),
            SECRET.len(),
            buf.as_mut_ptr(),
            need,
            &mut len
        ),
        blockdelta_result::Ok
    );
    assert_eq!(len, need);
    blockdelta_hash_list_free(theirs);
    let mut decoded = null_mut();
    assert_eq!(
        blockdelta_hash_list_decode(buf.as_ptr(), len, null(), 0, &mut decoded),
        blockdelta_result::ResyncAuthenticationFailed
    );
    buf[70] ^= 1;
    assert_eq!(
        blockdelta_hash_list_decode(
            buf.as_ptr(),
            len,
            SECRET.as_ptr(),
            SECRET.len(),
            &mut decoded
        ),
        blockdelta_result::ResyncInvalidList // the CRC first
    );
    buf[70] ^= 1;
    assert_eq!(
        blockdelta_hash_list_decode(
            buf.as_ptr(),
            len,
            SECRET.as_ptr(),
            SECRET.len(),
            &mut decoded
        ),
        blockdelta_result::Ok
    );

    let mut plan = null_mut();
    assert_eq!(
        blockdelta_resync_diff(decoded, ours, &mut plan),
        blockdelta_result::Ok
    );
    let (mut count, mut blocks, mut bytes, mut rs, mut ss) = (0usize, 0u64, 0u64, 0u64, 0u64);
    assert_eq!(
        blockdelta_resync_plan_info(plan, &mut count, &mut blocks, &mut bytes, &mut rs, &mut ss),
        blockdelta_result::Ok
    );
    assert_eq!((count, blocks, rs, ss), (3, 3, 300_000, 300_000));
    assert_eq!(bytes, 2 * 4096 + (300_000 - 73 * 4096));
    let mut ext = [Extent::default(); 2];
    let mut n = 0usize;
    assert_eq!(
        blockdelta_resync_plan_extents(plan, 0, ext.as_mut_ptr(), 2, &mut n),
        blockdelta_result::Ok
    );
    assert_eq!(n, 2);
    assert_eq!(ext[0], Extent::new(4096, 4096));
    assert_eq!(ext[1], Extent::new(48 * 4096, 4096));
    assert_eq!(
        blockdelta_resync_plan_extents(plan, 2, ext.as_mut_ptr(), 2, &mut n),
        blockdelta_result::Ok
    );
    assert_eq!(
        (n, ext[0]),
        (1, Extent::new(73 * 4096, 300_000 - 73 * 4096))
    );
    assert_eq!(
        blockdelta_resync_plan_extents(plan, 9, ext.as_mut_ptr(), 2, &mut n),
        blockdelta_result::Ok
    );
    assert_eq!(n, 0);
    blockdelta_resync_plan_free(plan);

    // Another salt: the lists cannot be compared.
    let other = compute(&rp, &[7; 16]);
    assert_eq!(
        blockdelta_resync_diff(other, ours, &mut plan),
        blockdelta_result::ResyncListMismatch
    );
    blockdelta_hash_list_free(other);
    blockdelta_hash_list_free(decoded);
    blockdelta_hash_list_free(ours);
    blockdelta_hash_list_free(null_mut());
    blockdelta_resync_plan_free(null_mut());
}

#[test]
#[cfg_attr(miri, ignore = "file I/O")]
fn arguments_and_errors() {
    let (_d, p) = file(&[1u8; 10_000]);
    let salt = [0u8; 16];
    let mut list = null_mut();
    assert_eq!(
        blockdelta_hash_list_compute_file(null(), 0, 0, 0, salt.as_ptr(), &mut list),
        blockdelta_result::NullParameter
    );
    assert_eq!(
        blockdelta_hash_list_compute_file(p.as_ptr(), 0, 0, 0, null(), &mut list),
        blockdelta_result::NullParameter
    );
    assert_eq!(
        blockdelta_hash_list_compute_file(p.as_ptr(), 0, 0, 0, salt.as_ptr(), null_mut()),
        blockdelta_result::NullParameter
    );
    assert_eq!(
        blockdelta_hash_list_compute_file(p.as_ptr(), 0, 512, 0, salt.as_ptr(), &mut list),
        blockdelta_result::InvalidArgument
    );
    assert_eq!(
        blockdelta_hash_list_compute_file(p.as_ptr(), 1 << 20, 0, 0, salt.as_ptr(), &mut list),
        blockdelta_result::Io
    );
    let missing = CString::new("/nonexistent/blockdelta-resync").unwrap();
    assert_eq!(
        blockdelta_hash_list_compute_file(missing.as_ptr(), 0, 0, 0, salt.as_ptr(), &mut list),
        blockdelta_result::Io
    );
    assert!(list.is_null());
    let garbage = [0u8; 100];
    assert_eq!(
        blockdelta_hash_list_decode(garbage.as_ptr(), garbage.len(), null(), 0, &mut list),
        blockdelta_result::ResyncInvalidList
    );
    assert_eq!(
        blockdelta_hash_list_decode(null(), 0, null(), 0, &mut list),
        blockdelta_result::ResyncInvalidList
    );
    assert_eq!(blockdelta_hash_list_wire_len(null(), false), 0);
    assert!(list.is_null());
}
