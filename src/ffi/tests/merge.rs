//! `blockdelta_stream_merge_files` driven as from C: arguments, error codes, no output left on
//! failure, and a merged stream that applies like the inputs in order.

use std::ffi::{c_char, CString};
use std::ptr::{null, null_mut};

use super::*;
use crate::stream::{encode_to_vec, Applier};

const DISK_ID: [u8; 16] = *b"ffi-merge-disk01";
const SIZE: u64 = 64 * 1024;
const SECRET: &[u8] = b"merge ffi test secret, 16+";

fn stream(from: u64, to: u64, disk: &mut [u8], secret: Option<&[u8]>) -> Vec<u8> {
    let o = (to as usize % 8) * 8192;
    disk[o..o + 8192].fill(to as u8);
    let ext = if from == 0 {
        crate::tracker::Extent::new(0, SIZE)
    } else {
        crate::tracker::Extent::new(o as u64, 8192)
    };
    let mut cfg = EncoderConfig::new(DISK_ID, GenerationId([3; 16]), from, to, SIZE);
    cfg.secret = secret.map(|s| crate::stream::Secret::new(s).unwrap());
    encode_to_vec(cfg, &[ext], &mut disk.to_vec()).unwrap()
}

fn c(p: &std::path::Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

#[test]
#[cfg_attr(
    miri,
    ignore = "the store and the merge do file I/O, which miri isolates"
)]
fn merge_files_arguments_errors_and_result() {
    let tmp = tempfile::tempdir().unwrap();
    let mut disk = vec![0u8; SIZE as usize];
    let mut names = Vec::new();
    let mut streams = Vec::new();
    for (i, (f, t)) in [(0, 1), (1, 2), (2, 3)].into_iter().enumerate() {
        let s = stream(f, t, &mut disk, Some(SECRET));
        let p = tmp.path().join(format!("s{i}"));
        std::fs::write(&p, &s).unwrap();
        names.push(c(&p));
        streams.push(s);
    }
    let ptrs: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
    let out = tmp.path().join("merged");
    let cout = c(&out);
    let (mut from, mut to, mut bytes) = (7u64, 7u64, 7u64);
    let merge_with =
        |ptrs: &[*const c_char], n: usize, sec: &[u8], out: *const c_char, flags: u32| {
            blockdelta_stream_merge_files(
                if ptrs.is_empty() {
                    null()
                } else {
                    ptrs.as_ptr()
                },
                n,
                sec.as_ptr(),
                sec.len(),
                out,
                null(),
                0,
                flags,
                0,
                null_mut(),
                null_mut(),
                null_mut(),
            )
        };

    assert_eq!(
        merge_with(&[], 2, SECRET, cout.as_ptr(), 0),
        blockdelta_result::NullParameter
    );
    assert_eq!(
        merge_with(&ptrs, 3, SECRET, null(), 0),
        blockdelta_result::NullParameter
    );
    assert_eq!(
        merge_with(&[ptrs[0], null()], 2, SECRET, cout.as_ptr(), 0),
        blockdelta_result::NullParameter
    );
    assert_eq!(
        merge_with(&[], 0, SECRET, cout.as_ptr(), 0),
        blockdelta_result::InvalidArgument
    );
    assert_eq!(
        merge_with(&ptrs, 3, SECRET, cout.as_ptr(), 0x80),
        blockdelta_result::InvalidArgument
    );
    // Not consecutive: 0->1 then 2->3.
    assert_eq!(
        merge_with(&[ptrs[0], ptrs[2]], 2, SECRET, cout.as_ptr(), 0),
        blockdelta_result::StreamMergeInconsistent
    );
    assert!(!out.exists(), "no output is left after a failure");
    // Wrong secret: the input's stream code.
    assert_eq!(
        merge_with(&ptrs, 3, b"a different secret, 16+", cout.as_ptr(), 0),
        blockdelta_result::StreamAuthenticationFailed
    );
    assert!(!out.exists());
    let missing = c(&tmp.path().join("missing"));
    assert_eq!(
        merge_with(&[missing.as_ptr()], 1, SECRET, cout.as_ptr(), 0),
        blockdelta_result::Io
    );

    // Inputs encrypted, output plain.
    assert_eq!(
        blockdelta_stream_merge_files(
            ptrs.as_ptr(),
            3,
            SECRET.as_ptr(),
            SECRET.len(),
            cout.as_ptr(),
            null(),
            0,
            BLOCKDELTA_ENCODE_LZ4,
            0,
            &mut from,
            &mut to,
            &mut bytes,
        ),
        blockdelta_result::Ok
    );
    let merged = std::fs::read(&out).unwrap();
    assert_eq!((from, to, bytes), (0, 3, merged.len() as u64));
    let mut replica = Applier::new(DecoderConfig::new(), vec![0xAAu8; SIZE as usize]);
    replica.push(&merged).unwrap();
    replica.finish().unwrap();
    assert!(replica.target() == &disk);
    // The output must not exist.
    assert_eq!(
        merge_with(&ptrs, 3, SECRET, cout.as_ptr(), 0),
        blockdelta_result::Io
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        merged,
        "an existing file is kept"
    );
}
