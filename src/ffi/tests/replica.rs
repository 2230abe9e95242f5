//! Replica store entry points driven as from C: NULL and bad arguments, outputs untouched on
//! failure, handle lifetimes (finish, free, an ingest outliving its store), error codes, and the
//! panic boundary.

use std::ffi::{c_char, CString};
use std::ptr::{null, null_mut};

use super::ingest::*;
use super::points::*;
use super::store::*;
use super::{blockdelta_point_id, PANIC_NEXT};
use crate::ffi::error::blockdelta_last_error;
use crate::ffi::result::blockdelta_result;
use crate::stream::{encode_to_vec, EncoderConfig};
use crate::tracker::{Extent, GenerationId};

const OK: blockdelta_result = blockdelta_result::Ok;
const NULL: blockdelta_result = blockdelta_result::NullParameter;
const DISK_ID: [u8; 16] = *b"ffi-replica-0001";
const GEN: [u8; 16] = [7; 16];
const SIZE: usize = 64 * 1024;

fn cpath(p: &std::path::Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

fn thread_error() -> String {
    let mut buf = [0 as c_char; 512];
    blockdelta_last_error(buf.as_mut_ptr(), buf.len(), null_mut());
    // SAFETY: NUL-terminated by blockdelta_last_error.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// The disk after checkpoint `seq`: checkpoint k fills 4 KiB block k with the byte k.
fn disk_at(seq: u64) -> Vec<u8> {
    let mut d = vec![0u8; SIZE];
    for k in 1..=seq {
        let o = (k as usize % 16) * 4096;
        d[o..o + 4096].fill(k as u8);
    }
    d
}

/// The stream from checkpoint `from` to `to` (the full disk from 0).
fn stream(from: u64, to: u64) -> Vec<u8> {
    let ext: Vec<Extent> = if from == 0 {
        vec![Extent::new(0, SIZE as u64)]
    } else {
        (from + 1..=to)
            .map(|k| Extent::new((k % 16) * 4096, 4096))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let cfg = EncoderConfig::new(DISK_ID, GenerationId(GEN), from, to, SIZE as u64);
    encode_to_vec(cfg, &ext, &mut disk_at(to)).unwrap()
}

fn create(dir: &std::path::Path) -> *mut blockdelta_store {
    let mut s = null_mut();
    assert_eq!(
        blockdelta_store_create(cpath(dir).as_ptr(), DISK_ID.as_ptr(), &mut s),
        OK
    );
    s
}

/// Ingests `data` in chunks of 1000 bytes; returns the point.
fn ingest(
    store: *mut blockdelta_store,
    data: &[u8],
) -> Result<blockdelta_point_id, blockdelta_result> {
    let mut ing = null_mut();
    let r = blockdelta_store_ingest_begin(store, null(), 0, &mut ing);
    if r != OK {
        return Err(r);
    }
    let mut result = OK;
    for c in data.chunks(1000) {
        result = blockdelta_ingest_push(ing, c.as_ptr(), c.len());
        if result != OK {
            break;
        }
    }
    let mut id = blockdelta_point_id::default();
    if result == OK {
        result = blockdelta_ingest_finish(ing, &mut id);
    }
    blockdelta_ingest_free(ing);
    if result == OK {
        Ok(id)
    } else {
        Err(result)
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "the store and the merge do file I/O, which miri isolates"
)]
fn create_and_open_check_their_arguments_and_lock_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = cpath(&tmp.path().join("s"));
    let sentinel = 0x10 as *mut blockdelta_store;
    let mut s = sentinel;
    assert_eq!(
        blockdelta_store_create(null(), DISK_ID.as_ptr(), &mut s),
        NULL
    );
    assert_eq!(blockdelta_store_create(dir.as_ptr(), null(), &mut s), NULL);
    assert_eq!(
        blockdelta_store_create(dir.as_ptr(), DISK_ID.as_ptr(), null_mut()),
        NULL
    );
    assert_eq!(
        blockdelta_store_create(c"".as_ptr(), DISK_ID.as_ptr(), &mut s),
        blockdelta_result::InvalidArgument
    );
    assert_eq!(blockdelta_store_open(null(), &mut s), NULL);
    assert_eq!(
        blockdelta_store_open(dir.as_ptr(), &mut s),
        blockdelta_result::ReplicaNotFound
    );
    assert!(thread_error().contains("no store at"), "{}", thread_error());
    assert_eq!(s, sentinel, "outputs untouched on failure");

    assert_eq!(
        blockdelta_store_create(dir.as_ptr(), DISK_ID.as_ptr(), &mut s),
        OK
    );
    let mut again = sentinel;
    assert_eq!(
        blockdelta_store_open(dir.as_ptr(), &mut again),
        blockdelta_result::ReplicaLocked
    );
    assert_eq!(
        blockdelta_store_create(dir.as_ptr(), DISK_ID.as_ptr(), &mut again),
        blockdelta_result::ReplicaLocked
    );
    assert_eq!(again, sentinel);
    let mut id = [0u8; 16];
    assert_eq!(blockdelta_store_disk_id(s, id.as_mut_ptr()), OK);
    assert_eq!(id, DISK_ID);
    assert_eq!(blockdelta_store_disk_id(s, null_mut()), NULL);
    assert_eq!(blockdelta_store_disk_id(null(), id.as_mut_ptr()), NULL);
    let (mut g, mut q, mut present) = ([9u8; 16], 9u64, true);
    assert_eq!(
        blockdelta_store_lineage(s, g.as_mut_ptr(), &mut q, &mut present),
        OK
    );
    assert_eq!((g, q, present), ([0; 16], 0, false));
    blockdelta_store_free(s);
    blockdelta_store_free(null_mut());

    assert_eq!(
        blockdelta_store_create(dir.as_ptr(), DISK_ID.as_ptr(), &mut again),
        blockdelta_result::ReplicaAlreadyExists
    );
    assert_eq!(blockdelta_store_open(dir.as_ptr(), &mut s), OK);
    blockdelta_store_free(s);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "the store and the merge do file I/O, which miri isolates"
)]
fn ingest_lifecycle_finish_truncated_stale_and_busy() {
    let tmp = tempfile::tempdir().unwrap();
    let s = create(&tmp.path().join("s"));
    let full = stream(0, 1);

    let mut ing = null_mut();
    assert_eq!(
        blockdelta_store_ingest_begin(null_mut(), null(), 0, &mut ing),
        NULL
    );
    assert_eq!(
        blockdelta_store_ingest_begin(s, null(), 0, null_mut()),
        NULL
    );
    assert_eq!(blockdelta_store_ingest_begin(s, null(), 16, &mut ing), NULL);
    assert_eq!(
        blockdelta_store_ingest_begin(s, b"short".as_ptr(), 5, &mut ing),
        blockdelta_result::StreamSecretTooShort
    );
    assert!(ing.is_null());
    assert_eq!(blockdelta_store_ingest_begin(s, null(), 0, &mut ing), OK);
    // One ingest at a time.
    let mut other = null_mut();
    assert_eq!(
        blockdelta_store_ingest_begin(s, null(), 0, &mut other),
        blockdelta_result::ReplicaIngestInProgress
    );
    assert!(other.is_null());
    // No lineage change while ingesting.
    assert_eq!(
        blockdelta_store_set_lineage(s, GEN.as_ptr(), 1),
        blockdelta_result::ReplicaIngestInProgress
    );

    let half = full.len() / 2;
    assert_eq!(blockdelta_ingest_push(ing, full.as_ptr(), half), OK);
    assert_eq!(blockdelta_ingest_push(null_mut(), full.as_ptr(), 1), NULL);
    assert_eq!(blockdelta_ingest_push(ing, null(), 1), NULL);
    assert_eq!(blockdelta_ingest_push(ing, null(), 0), OK);
    let mut id = blockdelta_point_id {
        generation: [0xEE; 16],
        sequence: 99,
    };
    let before = id;
    assert_eq!(blockdelta_ingest_finish(ing, null_mut()), NULL);
    // Before END: truncated, and the ingest stays open for the rest.
    assert_eq!(
        blockdelta_ingest_finish(ing, &mut id),
        blockdelta_result::StreamTruncated
    );
    assert_eq!(id, before);
    let rest = &full[half..];
    assert_eq!(blockdelta_ingest_push(ing, rest.as_ptr(), rest.len()), OK);
    assert_eq!(blockdelta_ingest_finish(ing, &mut id), OK);
    assert_eq!((id.generation, id.sequence), (GEN, 1));
    // Finished: the ingest is over, but the handle lives until freed.
    assert_eq!(
        blockdelta_ingest_finish(ing, &mut id),
        blockdelta_result::StreamPoisoned
    );
    assert_eq!(
        blockdelta_ingest_push(ing, full.as_ptr(), 1),
        blockdelta_result::StreamPoisoned
    );
    // The store is released at finish: a new ingest may begin before the old one is freed.
    assert_eq!(blockdelta_store_ingest_begin(s, null(), 0, &mut other), OK);
    blockdelta_ingest_free(other);
    blockdelta_ingest_free(ing);
    blockdelta_ingest_free(null_mut());

    // The same stream again: already applied, and the refused ingest ends at once.
    let mut ing = null_mut();
    assert_eq!(blockdelta_store_ingest_begin(s, null(), 0, &mut ing), OK);
    assert_eq!(
        blockdelta_ingest_push(ing, full.as_ptr(), full.len()),
        blockdelta_result::StreamAlreadyApplied
    );
    let mut buf = [0 as c_char; 512];
    assert_eq!(
        blockdelta_ingest_last_error(ing, buf.as_mut_ptr(), buf.len(), null_mut()),
        OK
    );
    // SAFETY: NUL-terminated.
    let msg = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    assert!(msg.contains("stream refused"), "{msg}");
    assert_eq!(
        blockdelta_ingest_push(ing, full.as_ptr(), 1),
        blockdelta_result::StreamPoisoned
    );
    assert_eq!(blockdelta_store_ingest_begin(s, null(), 0, &mut other), OK);
    blockdelta_ingest_free(other);
    blockdelta_ingest_free(ing);

    // A wrong disk: the stream's own code.
    let cfg = EncoderConfig::new(*b"another-disk-000", GenerationId(GEN), 1, 2, SIZE as u64);
    let wrong = encode_to_vec(cfg, &[Extent::new(0, 4096)], &mut disk_at(2)).unwrap();
    assert_eq!(ingest(s, &wrong), Err(blockdelta_result::StreamWrongDisk));

    // An ingest outlives its store handle, and keeps the store locked until it is freed.
    let dir = cpath(&tmp.path().join("s"));
    assert_eq!(blockdelta_store_ingest_begin(s, null(), 0, &mut ing), OK);
    blockdelta_store_free(s);
    let mut s2 = null_mut();
    assert_eq!(
        blockdelta_store_open(dir.as_ptr(), &mut s2),
        blockdelta_result::ReplicaLocked
    );
    let inc = stream(1, 2);
    assert_eq!(blockdelta_ingest_push(ing, inc.as_ptr(), inc.len()), OK);
    assert_eq!(blockdelta_ingest_finish(ing, &mut id), OK);
    assert_eq!(id.sequence, 2);
    blockdelta_ingest_free(ing);
    assert_eq!(blockdelta_store_open(dir.as_ptr(), &mut s2), OK);
    let mut list = null_mut();
    assert_eq!(blockdelta_store_points(s2, &mut list), OK);
    assert_eq!(blockdelta_point_list_len(list), 2);
    blockdelta_point_list_free(list);
    blockdelta_store_free(s2);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "the store and the merge do file I/O, which miri isolates"
)]
fn points_reads_lists_and_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let s = create(&tmp.path().join("s"));
    let mut ids = vec![ingest(s, &stream(0, 1)).unwrap()];
    for k in 2..=4 {
        ids.push(ingest(s, &stream(k - 1, k)).unwrap());
    }

    let mut list = null_mut();
    assert_eq!(blockdelta_store_points(null(), &mut list), NULL);
    assert_eq!(blockdelta_store_points(s, null_mut()), NULL);
    assert_eq!(blockdelta_store_points(s, &mut list), OK);
    assert_eq!(blockdelta_point_list_len(list), 4);
    assert_eq!(blockdelta_point_list_len(null()), 0);
    for (i, want) in ids.iter().enumerate() {
        let mut id = blockdelta_point_id::default();
        assert_eq!(blockdelta_point_list_get(list, i, &mut id), OK);
        assert_eq!(id, *want);
        let mut v = 0;
        let field = |f: blockdelta_point_field, v: &mut u64| {
            assert_eq!(blockdelta_point_list_value(list, i, f as u32, v), OK);
            *v
        };
        assert_eq!(field(blockdelta_point_field::DiskSize, &mut v), SIZE as u64);
        assert_eq!(
            field(blockdelta_point_field::FromSequence, &mut v),
            i as u64
        );
        assert_eq!(field(blockdelta_point_field::Consistency, &mut v), 1);
        assert_eq!(field(blockdelta_point_field::Detached, &mut v), 0);
        assert_eq!(field(blockdelta_point_field::HasBookmark, &mut v), 0);
        assert_eq!(field(blockdelta_point_field::ExpiryReason, &mut v), 0);
        assert!(field(blockdelta_point_field::StoredBytes, &mut v) > 0);
        let mut len = 7;
        assert_eq!(
            blockdelta_point_list_label(list, i, null_mut(), 0, &mut len),
            OK
        );
        assert_eq!(len, 0);
    }
    let mut id = blockdelta_point_id {
        generation: [1; 16],
        sequence: 5,
    };
    let mut v = 77;
    assert_eq!(
        blockdelta_point_list_get(list, 4, &mut id),
        blockdelta_result::InvalidArgument
    );
    assert!(thread_error().contains("index 4"), "{}", thread_error());
    assert_eq!(
        blockdelta_point_list_value(list, 0, 1000, &mut v),
        blockdelta_result::InvalidArgument
    );
    assert_eq!(blockdelta_point_list_get(list, 0, null_mut()), NULL);
    assert_eq!(blockdelta_point_list_value(null(), 0, 0, &mut v), NULL);
    assert_eq!((id.sequence, v), (5, 77));
    blockdelta_point_list_free(list);
    blockdelta_point_list_free(null_mut());

    // Every point reads back as the disk was.
    let mut buf = vec![0u8; SIZE];
    for (k, id) in ids.iter().enumerate() {
        assert_eq!(
            blockdelta_store_read_at(s, id, 0, buf.as_mut_ptr(), SIZE),
            OK
        );
        assert!(buf == disk_at(k as u64 + 1), "point {}", k + 1);
    }
    assert_eq!(
        blockdelta_store_read_at(s, &ids[0], 1, buf.as_mut_ptr(), SIZE),
        blockdelta_result::ReplicaOutOfRange
    );
    let unknown = blockdelta_point_id {
        generation: GEN,
        sequence: 42,
    };
    assert_eq!(
        blockdelta_store_read_at(s, &unknown, 0, buf.as_mut_ptr(), 1),
        blockdelta_result::ReplicaNoSuchPoint
    );
    assert_eq!(
        blockdelta_store_read_at(s, null(), 0, buf.as_mut_ptr(), 1),
        NULL
    );
    assert_eq!(blockdelta_store_read_at(s, &ids[0], 0, null_mut(), 1), NULL);
    assert_eq!(blockdelta_store_read_at(s, &ids[0], 0, null_mut(), 0), OK);

    // changed_between, as an extent list.
    let mut ext = null_mut();
    assert_eq!(
        blockdelta_store_changed_between(s, &ids[1], &ids[3], null_mut()),
        NULL
    );
    assert_eq!(
        blockdelta_store_changed_between(s, null(), &ids[3], &mut ext),
        NULL
    );
    assert_eq!(
        blockdelta_store_changed_between(s, &ids[1], &ids[3], &mut ext),
        OK
    );
    let n = blockdelta_extent_list_len(ext);
    assert!(n >= 1);
    let mut all = vec![Extent::default(); n + 2];
    let mut copied = 0;
    assert_eq!(
        blockdelta_extent_list_copy(ext, 0, all.as_mut_ptr(), all.len(), &mut copied),
        OK
    );
    assert_eq!(copied, n);
    let covered: u64 = all[..n].iter().map(|e| e.len).sum();
    assert_eq!(covered, 2 * 4096, "blocks 3 and 4 changed: {:?}", &all[..n]);
    let mut one = Extent::new(1, 1);
    assert_eq!(blockdelta_extent_list_get(ext, 0, &mut one), OK);
    assert_eq!(one, all[0]);
    assert_eq!(
        blockdelta_extent_list_get(ext, n, &mut one),
        blockdelta_result::InvalidArgument
    );
    assert_eq!(
        blockdelta_extent_list_copy(ext, n + 5, all.as_mut_ptr(), all.len(), &mut copied),
        OK
    );
    assert_eq!(copied, 0);
    assert_eq!(
        blockdelta_extent_list_copy(ext, 0, null_mut(), 1, &mut copied),
        NULL
    );
    blockdelta_extent_list_free(ext);
    blockdelta_extent_list_free(null_mut());
    assert_eq!(blockdelta_extent_list_len(null()), 0);

    // Retention: two points left, the expired ones reported with their reason.
    assert_eq!(blockdelta_store_set_retention(s, 0, 0, 0, 2, 0), OK);
    assert_eq!(
        blockdelta_store_set_retention(null_mut(), 0, 0, 0, 2, 0),
        NULL
    );
    let mut count = 99;
    let mut expired = null_mut();
    assert_eq!(
        blockdelta_store_retain(s, 0, null_mut(), &mut expired),
        NULL
    );
    assert_eq!(blockdelta_store_retain(s, 0, &mut count, &mut expired), OK);
    assert_eq!(count, 2);
    assert_eq!(blockdelta_point_list_len(expired), 2);
    assert_eq!(
        blockdelta_point_list_value(
            expired,
            0,
            blockdelta_point_field::ExpiryReason as u32,
            &mut v
        ),
        OK
    );
    assert_eq!(v, blockdelta_expiry_reason::Count as u64);
    blockdelta_point_list_free(expired);
    assert_eq!(blockdelta_store_retain(s, 0, &mut count, null_mut()), OK);
    assert_eq!(count, 0);
    assert_eq!(
        blockdelta_store_read_at(s, &ids[0], 0, buf.as_mut_ptr(), 1),
        blockdelta_result::ReplicaNoSuchPoint
    );
    assert_eq!(
        blockdelta_store_read_at(s, &ids[2], 0, buf.as_mut_ptr(), SIZE),
        OK
    );
    assert!(buf == disk_at(3));

    let mut bytes = 0;
    assert_eq!(blockdelta_store_scrub(s, &mut bytes), OK);
    assert!(bytes > 0);
    assert_eq!(blockdelta_store_scrub(s, null_mut()), NULL);
    assert_eq!(blockdelta_store_compact(s, &mut bytes), OK);
    assert_eq!(blockdelta_store_compact(s, null_mut()), NULL);
    // A checkpoint leaves the manifest alone describing the store: no log records.
    let logs = || {
        std::fs::read_dir(tmp.path().join("s/objects"))
            .unwrap()
            .filter(|e| {
                let n = e.as_ref().unwrap().file_name();
                n.to_string_lossy().starts_with("log-")
            })
            .count()
    };
    assert_eq!(blockdelta_store_checkpoint(null_mut()), NULL);
    assert_eq!(blockdelta_store_checkpoint(s), OK);
    assert_eq!(logs(), 0);

    // Export, compared with the point.
    let out = tmp.path().join("export.img");
    let cout = cpath(&out);
    assert_eq!(blockdelta_store_export_file(s, &ids[2], null()), NULL);
    assert_eq!(blockdelta_store_export_file(s, &ids[2], cout.as_ptr()), OK);
    assert_eq!(std::fs::read(&out).unwrap(), disk_at(3));
    assert_eq!(
        blockdelta_store_export_file(s, &ids[2], cout.as_ptr()),
        blockdelta_result::ReplicaIo
    );
    blockdelta_store_free(s);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "the store and the merge do file I/O, which miri isolates"
)]
fn rollback_discard_and_lineage() {
    let tmp = tempfile::tempdir().unwrap();
    let s = create(&tmp.path().join("s"));
    let p1 = ingest(s, &stream(0, 1)).unwrap();
    ingest(s, &stream(1, 2)).unwrap();
    let p3 = ingest(s, &stream(2, 3)).unwrap();

    let (mut g, mut q) = ([0u8; 16], 0u64);
    let mut ext = null_mut();
    assert_eq!(
        blockdelta_store_rollback(s, &p1, null_mut(), &mut q, &mut ext),
        NULL
    );
    assert_eq!(
        blockdelta_store_rollback(s, &p1, g.as_mut_ptr(), null_mut(), &mut ext),
        NULL
    );
    assert_eq!(
        blockdelta_store_rollback(s, &p1, g.as_mut_ptr(), &mut q, null_mut()),
        NULL
    );
    assert_eq!(
        blockdelta_store_rollback(s, &p3, g.as_mut_ptr(), &mut q, &mut ext),
        blockdelta_result::ReplicaInvalidArgument
    );
    assert_eq!((g, q), ([0; 16], 0));
    assert!(ext.is_null());
    assert_eq!(
        blockdelta_store_rollback(s, &p1, g.as_mut_ptr(), &mut q, &mut ext),
        OK
    );
    assert_ne!(g, GEN);
    assert_eq!(q, 1);
    assert!(blockdelta_extent_list_len(ext) > 0);
    blockdelta_extent_list_free(ext);
    let (mut lg, mut lq, mut present) = ([0u8; 16], 0, false);
    assert_eq!(
        blockdelta_store_lineage(s, lg.as_mut_ptr(), &mut lq, &mut present),
        OK
    );
    assert_eq!((lg, lq, present), (g, 1, true));
    assert_eq!(
        blockdelta_store_rollback(s, &p1, g.as_mut_ptr(), &mut q, &mut ext),
        blockdelta_result::ReplicaDetachedPointsExist
    );
    let mut list = null_mut();
    assert_eq!(blockdelta_store_points(s, &mut list), OK);
    let mut v = 0;
    assert_eq!(
        blockdelta_point_list_value(list, 2, blockdelta_point_field::Detached as u32, &mut v),
        OK
    );
    assert_eq!(v, 1);
    blockdelta_point_list_free(list);
    let mut n = 0;
    assert_eq!(blockdelta_store_discard_detached(s, null_mut()), NULL);
    assert_eq!(blockdelta_store_discard_detached(s, &mut n), OK);
    assert_eq!(n, 2);
    assert_eq!(blockdelta_store_discard_detached(s, &mut n), OK);
    assert_eq!(n, 0);

    assert_eq!(blockdelta_store_set_lineage(s, null(), 5), NULL);
    assert_eq!(blockdelta_store_set_lineage(s, GEN.as_ptr(), 5), OK);
    assert_eq!(
        blockdelta_store_lineage(s, lg.as_mut_ptr(), &mut lq, &mut present),
        OK
    );
    assert_eq!((lg, lq), (GEN, 5));
    blockdelta_store_free(s);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "the store and the merge do file I/O, which miri isolates"
)]
fn a_panic_in_a_store_call_becomes_a_code_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let s = create(&tmp.path().join("s"));
    let mut bytes = 12345;
    PANIC_NEXT.with(|p| p.set(true));
    assert_eq!(
        blockdelta_store_scrub(s, &mut bytes),
        blockdelta_result::Panic
    );
    assert_eq!(bytes, 12345);
    assert!(thread_error().contains("test panic"), "{}", thread_error());
    let mut list = null_mut();
    PANIC_NEXT.with(|p| p.set(true));
    assert_eq!(
        blockdelta_store_points(s, &mut list),
        blockdelta_result::Panic
    );
    assert!(list.is_null());
    PANIC_NEXT.with(|p| p.set(true));
    assert_eq!(
        blockdelta_store_set_retention(s, 0, 0, 0, 1, 0),
        blockdelta_result::Panic
    );
    // The store works on afterwards.
    assert_eq!(blockdelta_store_scrub(s, &mut bytes), OK);
    assert_eq!(bytes, 0);
    blockdelta_store_free(s);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "the store and the merge do file I/O, which miri isolates"
)]
fn every_replica_error_has_its_own_code() {
    use crate::ffi::result::ToResult;
    use crate::replica::ReplicaError as E;
    let io = || std::io::Error::other("x");
    let s = |x: &str| x.to_string();
    let all = [
        E::Io {
            op: "x",
            source: io(),
        },
        E::Corrupt {
            object: s("o"),
            reason: s("r"),
        },
        E::UnsupportedVersion {
            object: s("o"),
            version: 9,
        },
        E::Locked { path: s("p") },
        E::NotFound { path: s("p") },
        E::AlreadyExists { path: s("p") },
        E::Poisoned,
        E::IngestInProgress,
        E::NoSuchPoint {
            generation: [0; 16],
            sequence: 1,
        },
        E::OutOfRange {
            offset: 0,
            len: 1,
            disk_size: 0,
        },
        E::CapacityExceeded { needed: 2, cap: 1 },
        E::DetachedPointsExist { count: 1 },
        E::InvalidArgument { reason: s("r") },
        E::ResumeMismatch { reason: s("r") },
        E::ChecksumMismatch {
            object: s("o"),
            offset: 0,
        },
    ];
    let codes: std::collections::HashSet<u32> = all.iter().map(|e| e.to_result() as u32).collect();
    assert_eq!(codes.len(), all.len());
    assert!(codes.iter().all(|c| (400..500).contains(c)), "{codes:?}");
    assert_eq!(
        E::Stream(crate::stream::StreamError::KeyRequired).to_result(),
        blockdelta_result::StreamKeyRequired
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "the store and the merge do file I/O, which miri isolates"
)]
fn retention_getter_stats_and_expiry_during_ingest() {
    let tmp = tempfile::tempdir().unwrap();
    let s = create(&tmp.path().join("s"));
    for k in 1..=3 {
        ingest(s, &stream(k - 1, k)).unwrap();
    }
    let mut v = [9u64; 5];
    let [a, b, c, d, e] = &mut v;
    assert_eq!(blockdelta_store_retention(s, a, b, c, d, e), OK);
    assert_eq!(v, [0; 5]);
    assert_eq!(blockdelta_store_set_retention(s, 1, 2, 3, 4, 0), OK);
    let mut max_points = 0;
    assert_eq!(
        blockdelta_store_retention(
            s,
            null_mut(),
            null_mut(),
            null_mut(),
            &mut max_points,
            null_mut()
        ),
        OK
    );
    assert_eq!(max_points, 4);
    assert_eq!(
        blockdelta_store_retention(
            null(),
            null_mut(),
            null_mut(),
            null_mut(),
            null_mut(),
            null_mut()
        ),
        NULL
    );

    let stat = |id: blockdelta_store_stat_id| {
        let mut x = u64::MAX;
        assert_eq!(blockdelta_store_stat(s, id as u32, &mut x), OK);
        x
    };
    assert_eq!(stat(blockdelta_store_stat_id::Points), 3);
    assert_eq!(stat(blockdelta_store_stat_id::Packs), 3);
    let bytes = stat(blockdelta_store_stat_id::Bytes);
    assert!(bytes > 3 * 4096, "{bytes}");
    let mut x = 5;
    assert_eq!(
        blockdelta_store_stat(s, 99, &mut x),
        blockdelta_result::InvalidArgument
    );
    assert_eq!(blockdelta_store_stat(s, 0, null_mut()), NULL);
    assert_eq!(x, 5);

    // A byte cap just above what the store holds: every point's data is still needed (each
    // checkpoint wrote its own block), so expiring older points cannot make room and the
    // stream is refused with the cap's own code; the store stays under the cap.
    assert_eq!(
        blockdelta_store_set_retention(s, 0, 0, 0, 0, bytes + 4 * 1024),
        OK
    );
    let mut ing = null_mut();
    assert_eq!(blockdelta_store_ingest_begin(s, null(), 0, &mut ing), OK);
    let (mut n, mut list) = (7usize, null_mut());
    assert_eq!(blockdelta_ingest_expired(ing, &mut n, &mut list), OK);
    assert_eq!((n, blockdelta_point_list_len(list)), (0, 0));
    blockdelta_point_list_free(list);
    assert_eq!(blockdelta_ingest_expired(ing, null_mut(), null_mut()), NULL);
    let data = stream(3, 4);
    let pushed = blockdelta_ingest_push(ing, data.as_ptr(), data.len());
    let mut id = blockdelta_point_id::default();
    let r = if pushed == OK {
        blockdelta_ingest_finish(ing, &mut id)
    } else {
        pushed
    };
    assert_eq!(r, blockdelta_result::ReplicaCapacityExceeded);
    assert_eq!(id.sequence, 0, "no output on failure");
    assert!(stat(blockdelta_store_stat_id::Bytes) <= bytes + 4 * 1024);
    // With room, the same stream goes in.
    blockdelta_ingest_free(ing);
    assert_eq!(
        blockdelta_store_set_retention(s, 0, 0, 0, 0, bytes + 64 * 1024),
        OK
    );
    let mut ing = null_mut();
    assert_eq!(blockdelta_store_ingest_begin(s, null(), 0, &mut ing), OK);
    assert_eq!(blockdelta_ingest_push(ing, data.as_ptr(), data.len()), OK);
    assert_eq!(blockdelta_ingest_finish(ing, &mut id), OK);
    assert_eq!(id.sequence, 4);
    blockdelta_ingest_free(ing);
    blockdelta_store_free(s);
}
