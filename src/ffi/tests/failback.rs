//! The failback C ABI driven as from C: failover, plan (delta, checksum resync, full copy),
//! info, header, extents; error codes for NULL, a point not in the store, a wrong disk size, a
//! bad state or extent kind, and a panic caught at the boundary.

use std::ffi::CString;
use std::ptr::{null, null_mut};

use super::*;
use crate::ffi::replica::store::{blockdelta_store_create, blockdelta_store_free};
use crate::ffi::replica::PANIC_NEXT;
use crate::ffi::test_support::RawExtent;
use crate::stream::encode_to_vec;
use crate::{EncoderConfig, Tracker, TrackerConfig};

const DISK_ID: [u8; 16] = *b"ffi-failback-d01";
const DISK: u64 = 64 * 4096;

/// A store with three points of one generation: a full one, then blocks 1 and 2.
fn store() -> (
    tempfile::TempDir,
    *mut blockdelta_store,
    [blockdelta_point_id; 3],
) {
    let dir = tempfile::tempdir().unwrap();
    let path = CString::new(dir.path().join("s").to_str().unwrap()).unwrap();
    let mut s = null_mut();
    assert_eq!(
        blockdelta_store_create(path.as_ptr(), DISK_ID.as_ptr(), &mut s),
        blockdelta_result::Ok
    );
    let g = GenerationId([3; 16]);
    let mut disk = vec![1u8; DISK as usize];
    let mut ids = [blockdelta_point_id::default(); 3];
    for (i, ext) in [
        Extent::new(0, DISK),
        Extent::new(4096, 4096),
        Extent::new(8192, 4096),
    ]
    .into_iter()
    .enumerate()
    {
        disk[ext.offset as usize] = i as u8 + 7;
        let cfg = EncoderConfig::new(DISK_ID, g, i as u64, i as u64 + 1, DISK);
        let stream = encode_to_vec(cfg, &[ext], &mut disk.clone()).unwrap();
        // SAFETY: a live handle.
        let inner = unsafe { &(*s).inner };
        let mut ing = inner.ingest(None).unwrap();
        ing.push(&stream).unwrap();
        ids[i] = ing.finish().unwrap().point.id.into();
    }
    (dir, s, ids)
}

fn plan(
    s: *const blockdelta_store,
    f: &blockdelta_point_id,
    b: &blockdelta_checkpoint,
    b_ext: &[Extent],
    state: u32,
    a: Option<(&blockdelta_checkpoint, &[Extent])>,
) -> Result<*mut blockdelta_failback_plan, blockdelta_result> {
    let mut p = null_mut();
    let (a_cp, a_ext) = a.map_or((null(), &[][..]), |(c, e)| (c as *const _, e));
    match blockdelta_failback_plan_new(
        s,
        f,
        b,
        b_ext.as_ptr(),
        b_ext.len(),
        state,
        a_cp,
        a_ext.as_ptr(),
        a_ext.len(),
        &mut p,
    ) {
        blockdelta_result::Ok => Ok(p),
        e => Err(e),
    }
}

fn info(p: *const blockdelta_failback_plan) -> (u32, u32, u64, u64, u64, u64, usize) {
    let mut v = (0, 0, 0, 0, 0, 0, 0);
    assert_eq!(
        blockdelta_failback_plan_info(
            p, &mut v.0, &mut v.1, &mut v.2, &mut v.3, &mut v.4, &mut v.5, &mut v.6
        ),
        blockdelta_result::Ok
    );
    v
}

#[test]
#[cfg_attr(miri, ignore = "file I/O")]
fn failover_plan_and_errors() {
    let (_dir, s, ids) = store();
    // Failover at the second point: a rollback; the new primary adopts the lineage.
    let (mut gen, mut seq) = ([0u8; 16], 0u64);
    assert_eq!(
        blockdelta_failback_failover(s, &ids[1], gen.as_mut_ptr(), &mut seq),
        blockdelta_result::Ok
    );
    assert_eq!(seq, ids[1].sequence);
    let t = Tracker::new(TrackerConfig::new(DISK).start_clean(true)).unwrap();
    t.adopt_lineage(GenerationId(gen), seq, &[]).unwrap();
    t.mark_write(40 * 4096, 4096).unwrap();
    let cp: blockdelta_checkpoint = t.take().unwrap().into();
    let b_ext = [Extent::new(40 * 4096, 4096)];
    // The original committed the newest point and wrote block 50 since.
    let mut a_cp = blockdelta_checkpoint {
        generation: ids[2].generation,
        from_sequence: ids[2].sequence,
        sequence: ids[2].sequence + 1,
        disk_size: DISK,
        ..Default::default()
    };
    let a_ext = [Extent::new(50 * 4096, 4096)];

    let p = plan(
        s,
        &ids[1],
        &cp,
        &b_ext,
        BLOCKDELTA_FAILBACK_ORIGINAL_RESUMED,
        Some((&a_cp, &a_ext)),
    )
    .unwrap();
    assert_eq!(
        info(p),
        (
            BLOCKDELTA_FAILBACK_DELTA,
            BLOCKDELTA_FAILBACK_REASON_NONE,
            4096,
            4096,
            4096,
            3 * 4096,
            3
        )
    );
    let mut ext = [Extent::default(); 2];
    let mut n = 0usize;
    assert_eq!(
        blockdelta_failback_plan_extents(p, 1, ext.as_mut_ptr(), 2, &mut n),
        blockdelta_result::Ok
    );
    assert_eq!(
        &ext[..n],
        &[Extent::new(40 * 4096, 4096), Extent::new(50 * 4096, 4096)]
    );
    assert_eq!(
        blockdelta_failback_plan_extents(p, 0, null_mut(), 0, &mut n),
        blockdelta_result::BufferTooSmall
    );
    let (mut id, mut g2, mut from, mut to, mut size) = ([0u8; 16], [0u8; 16], 0, 0, 0);
    assert_eq!(
        blockdelta_failback_plan_header(
            p,
            id.as_mut_ptr(),
            g2.as_mut_ptr(),
            &mut from,
            &mut to,
            &mut size
        ),
        blockdelta_result::Ok
    );
    assert_eq!(
        (id, g2, from, to, size),
        (DISK_ID, gen, seq, cp.sequence, DISK)
    );
    assert_eq!(
        blockdelta_failback_plan_header(
            p,
            null_mut(),
            g2.as_mut_ptr(),
            &mut from,
            &mut to,
            &mut size
        ),
        blockdelta_result::NullParameter
    );
    blockdelta_failback_plan_free(p);

    // The original unproven: a checksum resync; gone: a full copy.
    let p = plan(
        s,
        &ids[1],
        &cp,
        &b_ext,
        BLOCKDELTA_FAILBACK_ORIGINAL_UNPROVEN,
        None,
    )
    .unwrap();
    let i = info(p);
    assert_eq!(
        (i.0, i.1, i.5, i.6),
        (
            BLOCKDELTA_FAILBACK_CHECKSUM_RESYNC,
            BLOCKDELTA_FAILBACK_REASON_ORIGINAL_UNTRUSTED,
            0,
            0
        )
    );
    blockdelta_failback_plan_free(p);
    let p = plan(
        s,
        &ids[1],
        &cp,
        &b_ext,
        BLOCKDELTA_FAILBACK_ORIGINAL_GONE,
        None,
    )
    .unwrap();
    assert_eq!(
        (info(p).0, info(p).5),
        (BLOCKDELTA_FAILBACK_FULL_COPY, DISK)
    );
    blockdelta_failback_plan_free(p);
    // An original in a lineage the store never had.
    a_cp.generation = [8; 16];
    let p = plan(
        s,
        &ids[1],
        &cp,
        &b_ext,
        BLOCKDELTA_FAILBACK_ORIGINAL_RESUMED,
        Some((&a_cp, &a_ext)),
    )
    .unwrap();
    assert_eq!(info(p).1, BLOCKDELTA_FAILBACK_REASON_ORIGINAL_NOT_IN_STORE);
    blockdelta_failback_plan_free(p);

    // Errors, each its own code.
    let nowhere = blockdelta_point_id {
        generation: [9; 16],
        sequence: 1,
    };
    let gone = BLOCKDELTA_FAILBACK_ORIGINAL_GONE;
    assert_eq!(
        plan(s, &nowhere, &cp, &b_ext, gone, None).err(),
        Some(blockdelta_result::FailbackNoSuchPoint)
    );
    assert_eq!(
        blockdelta_failback_failover(s, &nowhere, gen.as_mut_ptr(), &mut seq),
        blockdelta_result::FailbackNoSuchPoint
    );
    let mut big = cp;
    big.disk_size = 2 * DISK;
    assert_eq!(
        plan(s, &ids[1], &big, &b_ext, gone, None).err(),
        Some(blockdelta_result::FailbackDiskSizeMismatch)
    );
    let past = [Extent::new(DISK, 4096)];
    assert_eq!(
        plan(s, &ids[1], &cp, &past, gone, None).err(),
        Some(blockdelta_result::FailbackExtentOutOfRange)
    );
    let mut flat = cp;
    flat.sequence = flat.from_sequence;
    assert_eq!(
        plan(s, &ids[1], &flat, &b_ext, gone, None).err(),
        Some(blockdelta_result::FailbackInvalidCheckpoint)
    );
    assert_eq!(
        plan(s, &ids[1], &cp, &b_ext, 7, None).err(),
        Some(blockdelta_result::InvalidArgument)
    );
    assert_eq!(
        plan(
            s,
            &ids[1],
            &cp,
            &b_ext,
            BLOCKDELTA_FAILBACK_ORIGINAL_RESUMED,
            None
        )
        .err(),
        Some(blockdelta_result::NullParameter)
    );
    // An extent kind C wrote that is no variant: refused before Rust views it as an `Extent`.
    let bad_kind = [RawExtent {
        offset: 0,
        len: 4096,
        kind: 9,
        reserved: 0,
    }];
    let mut out = null_mut();
    assert_eq!(
        blockdelta_failback_plan_new(
            s,
            &ids[1],
            &cp,
            bad_kind.as_ptr().cast::<Extent>(),
            1,
            gone,
            null(),
            null(),
            0,
            &mut out
        ),
        blockdelta_result::InvalidArgument
    );
    assert_eq!(
        plan(null(), &ids[1], &cp, &b_ext, gone, None).err(),
        Some(blockdelta_result::NullParameter)
    );
    assert_eq!(
        blockdelta_failback_plan_resync(null(), null(), null(), &mut null_mut()),
        blockdelta_result::NullParameter
    );
    assert_eq!(
        blockdelta_failback_plan_info(
            null(),
            null_mut(),
            null_mut(),
            null_mut(),
            null_mut(),
            null_mut(),
            null_mut(),
            null_mut()
        ),
        blockdelta_result::NullParameter
    );

    // A panic inside the store is caught at the boundary.
    PANIC_NEXT.with(|p| p.set(true));
    assert_eq!(
        blockdelta_failback_failover(s, &ids[2], gen.as_mut_ptr(), &mut seq),
        blockdelta_result::Panic
    );
    blockdelta_failback_plan_free(null_mut());
    blockdelta_store_free(s);
}
