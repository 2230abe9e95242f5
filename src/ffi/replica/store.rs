//! `blockdelta_store`: create/open/free, retention, lineage, reads, export, rollback, compaction
//! and scrub. Ingest is in `ingest.rs`, the snapshot lists in `points.rs`.
//!
//! Every function taking a store may be called from any number of threads at once. Functions
//! that read (`const blockdelta_store *`) run alongside an ingest; functions that change the
//! store wait for each other. Calls that touch the disk block on file I/O (and fsync).

// C-style signatures with many plain arguments are the ABI.
#![allow(clippy::too_many_arguments)]

use std::ffi::c_char;
use std::sync::Arc;

use super::points::{blockdelta_extent_list, blockdelta_point_list};
use super::{blockdelta_point_id, path_arg, point_arg};
use crate::ffi::callbacks::id16;
use crate::ffi::error::{copy_handle_message, fail_thread, LastError};
use crate::ffi::handle::{arg_ref, free_handle, into_handle, out_slice, Out};
use crate::ffi::panic::{boundary, boundary_value};
use crate::ffi::result::blockdelta_result;
use crate::replica::{ReplicaError, Retention, Store, StoreConfig};
use crate::tracker::GenerationId;

/// A replica store for one disk (opaque). Create with `blockdelta_store_create` or open with
/// `blockdelta_store_open`; free with `blockdelta_store_free`. Any thread, many at once.
pub struct blockdelta_store {
    /// Shared with the ingests started on it, which keep it alive.
    pub(crate) inner: Arc<Store>,
    pub(crate) last_error: LastError,
}

/// Runs `f` on a live store inside the panic boundary, recording its error on the handle.
fn with_store<F>(store: *const blockdelta_store, f: F) -> blockdelta_result
where
    F: FnOnce(&Store) -> Result<(), ReplicaError>,
{
    boundary(|| {
        let s = store_ref(store)?;
        f(&s.inner).map_err(|e| s.last_error.fail(e))
    })
}

/// Borrows the store behind a handle argument (NULL is `BLOCKDELTA_RESULT_NULL_PARAMETER`).
fn store_ref<'a>(
    store: *const blockdelta_store,
) -> Result<&'a blockdelta_store, blockdelta_result> {
    super::test_panic_hook();
    // SAFETY: NULL or a live handle from `blockdelta_store_create`/`_open`.
    unsafe { arg_ref(store) }
}

fn new_handle(
    r: Result<Store, ReplicaError>,
    out: Out<*mut blockdelta_store>,
) -> Result<(), blockdelta_result> {
    let inner = r.map_err(fail_thread)?;
    let h = into_handle(blockdelta_store {
        inner: Arc::new(inner),
        last_error: LastError::new(),
    });
    // SAFETY: checked non-NULL; writable per the contract.
    unsafe { out.write(h) };
    Ok(())
}

/// Creates a new, empty store in directory `dir` (a NUL-terminated path, created if missing;
/// it must not hold a store: `BLOCKDELTA_RESULT_REPLICA_ALREADY_EXISTS`) for the disk
/// `disk_id` (16 bytes, copied): streams for any other disk are refused. The store keeps every
/// point until a retention policy is set. The store is locked for writing by this handle
/// (`BLOCKDELTA_RESULT_REPLICA_LOCKED` for any other handle or process) until it is freed.
/// On success `*store_out` receives a handle the caller frees with `blockdelta_store_free`.
/// Blocks on file I/O and fsync; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_create(
    dir: *const c_char,
    disk_id: *const u8,
    store_out: *mut *mut blockdelta_store,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(store_out)?;
        // SAFETY: `dir` is NULL or NUL-terminated; `disk_id` NULL or 16 readable bytes.
        let (dir, disk_id) = unsafe {
            (
                path_arg(dir)?,
                id16(disk_id)?.ok_or(blockdelta_result::NullParameter)?,
            )
        };
        new_handle(Store::create(dir, StoreConfig::new(disk_id)), out)
    })
}

/// Opens the store in directory `dir` (a NUL-terminated path) for writing, recovering from any
/// crash (unfinished ingests are dropped). `BLOCKDELTA_RESULT_REPLICA_NOT_FOUND` when there is
/// no store, `BLOCKDELTA_RESULT_REPLICA_LOCKED` while another handle or process has it open.
/// On success `*store_out` receives a handle the caller frees with `blockdelta_store_free`.
/// Blocks on file I/O; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_open(
    dir: *const c_char,
    store_out: *mut *mut blockdelta_store,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(store_out)?;
        // SAFETY: `dir` is NULL or NUL-terminated.
        let dir = unsafe { path_arg(dir)? };
        new_handle(Store::open(dir), out)
    })
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or NUL-terminated, and lives for `'a`.
unsafe fn utf8_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, blockdelta_result> {
    if p.is_null() {
        return Err(blockdelta_result::NullParameter);
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| {
            let code = blockdelta_result::InvalidArgument;
            crate::ffi::error::record_thread_error(code, &format!("{what} is not valid UTF-8"));
            code
        })
}

/// The `(key, value)` options of a URL open: two arrays of `n` NUL-terminated UTF-8 strings
/// (both may be NULL when `n` is 0).
///
/// # Safety
/// `keys` and `values` are NULL or valid for `n` reads of NULL or NUL-terminated strings.
unsafe fn options_arg<'a>(
    keys: *const *const c_char,
    values: *const *const c_char,
    n: usize,
) -> Result<Vec<(&'a str, &'a str)>, blockdelta_result> {
    // SAFETY: per the caller's contract.
    let (keys, values) = unsafe {
        (
            crate::ffi::handle::arg_slice(keys, n)?,
            crate::ffi::handle::arg_slice(values, n)?,
        )
    };
    keys.iter()
        .zip(values)
        // SAFETY: each element is NULL or NUL-terminated per the contract.
        .map(|(&k, &v)| unsafe {
            Ok((
                utf8_arg(k, "an option key")?,
                utf8_arg(v, "an option value")?,
            ))
        })
        .collect()
}

/// Why a URL entry point failed before or in the store call.
enum UrlArg {
    Code(blockdelta_result),
    Store(ReplicaError),
}

impl From<ReplicaError> for UrlArg {
    fn from(e: ReplicaError) -> Self {
        UrlArg::Store(e)
    }
}

/// The shared body of the URL entry points: reads the URL and options, runs `open` inside the
/// panic boundary and hands out a new handle.
///
/// # Safety
/// As each entry point documents: `url` NUL-terminated, `keys`/`values` valid for `n` reads.
unsafe fn with_url(
    url: *const c_char,
    keys: *const *const c_char,
    values: *const *const c_char,
    n: usize,
    store_out: *mut *mut blockdelta_store,
    open: impl FnOnce(&str, &[(&str, &str)]) -> Result<Store, UrlArg>,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(store_out)?;
        // SAFETY: per the caller's contract.
        let (url, options) = unsafe { (utf8_arg(url, "the URL")?, options_arg(keys, values, n)?) };
        match open(url, &options) {
            Ok(s) => new_handle(Ok(s), out),
            Err(UrlArg::Store(e)) => new_handle(Err(e), out),
            Err(UrlArg::Code(c)) => Err(c),
        }
    })
}

/// Creates a new, empty store at `url` (NUL-terminated UTF-8): `file:///path` or a plain path
/// for a local directory (as `blockdelta_store_create`), `s3://bucket/prefix` or
/// `az://container/prefix` for object storage. `n_options` key/value pairs (`keys[i]`,
/// `values[i]`: NUL-terminated UTF-8; both arrays may be NULL when `n_options` is 0) configure
/// an object store: `endpoint`, `region`, `access_key_id`, `secret_access_key`,
/// `allow_http`, ... for S3; `account_name`, `access_key`, `sas_token`, `use_emulator`, ...
/// for Azure (the `object_store` crate's keys), and `part_size`, `parallel`,
/// `lease_seconds`, `retry_max`, `retry_timeout_seconds`, `request_timeout_seconds`; what
/// they leave unset comes from the `AWS_*` / `AZURE_*` environment. A local directory takes
/// no options. The symbols are the same in every build: a scheme whose backend this library
/// was built without (the cargo feature `object-store`) is
/// `BLOCKDELTA_RESULT_REPLICA_UNSUPPORTED_SCHEME`; an unknown option key or a malformed URL is
/// `BLOCKDELTA_RESULT_REPLICA_INVALID_ARGUMENT`. Error messages name the store by scheme,
/// bucket and prefix, never a credential. Otherwise as `blockdelta_store_create`. Blocks on
/// I/O (HTTP requests to object storage, which run on the store's own threads while the
/// calling thread waits); any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_create_url(
    url: *const c_char,
    keys: *const *const c_char,
    values: *const *const c_char,
    n_options: usize,
    disk_id: *const u8,
    store_out: *mut *mut blockdelta_store,
) -> blockdelta_result {
    // SAFETY: per the documented contract of each argument.
    unsafe {
        with_url(url, keys, values, n_options, store_out, |url, o| {
            // SAFETY: `disk_id` is NULL or 16 readable bytes.
            let id = id16(disk_id).map_err(UrlArg::Code)?;
            let id = id.ok_or(UrlArg::Code(blockdelta_result::NullParameter))?;
            Store::create_url(url, o, StoreConfig::new(id)).map_err(UrlArg::Store)
        })
    }
}

/// Opens the store at `url` for writing, recovering from any crash; URL and options as
/// `blockdelta_store_create_url`, results as `blockdelta_store_open`. On object storage the
/// writer lock is a lease renewed in the background while the handle lives; a second writer
/// gets `BLOCKDELTA_RESULT_REPLICA_LOCKED` until it is freed or expires (`lease_seconds`,
/// default 60). Should two writers still run at once (a lease expired while its holder was
/// stalled), exactly one commits each change: the other gets
/// `BLOCKDELTA_RESULT_REPLICA_CONFLICT` and changes nothing.
#[no_mangle]
pub extern "C" fn blockdelta_store_open_url(
    url: *const c_char,
    keys: *const *const c_char,
    values: *const *const c_char,
    n_options: usize,
    store_out: *mut *mut blockdelta_store,
) -> blockdelta_result {
    // SAFETY: per the documented contract of each argument.
    unsafe {
        with_url(url, keys, values, n_options, store_out, |url, o| {
            Ok(Store::open_url(url, o)?)
        })
    }
}

/// Opens the store at `url` for reading only (URL and options as
/// `blockdelta_store_create_url`), from any process or node while a writer may run elsewhere:
/// no lock or lease is taken and nothing is written. Every change is refused with
/// `BLOCKDELTA_RESULT_REPLICA_READ_ONLY`. The handle sees the points committed when it was
/// opened; open again to see newer ones. A point the writer has since expired may fail to read
/// (`BLOCKDELTA_RESULT_REPLICA_IO`).
#[no_mangle]
pub extern "C" fn blockdelta_store_open_read_only_url(
    url: *const c_char,
    keys: *const *const c_char,
    values: *const *const c_char,
    n_options: usize,
    store_out: *mut *mut blockdelta_store,
) -> blockdelta_result {
    // SAFETY: per the documented contract of each argument.
    unsafe {
        with_url(url, keys, values, n_options, store_out, |url, o| {
            Ok(Store::open_url_read_only(url, o)?)
        })
    }
}

/// Frees a store handle; NULL is a no-op. No other call on this handle may be running or
/// follow. The store's files are closed and its lock released now, or, when ingests started
/// on it are still alive, when the last of them is freed. Lists taken from it stay valid.
#[no_mangle]
pub extern "C" fn blockdelta_store_free(store: *mut blockdelta_store) {
    // SAFETY: NULL or a handle from `blockdelta_store_create`/`_open`, freed once.
    boundary_value((), || unsafe { free_handle(store) })
}

/// Copies the 16-byte id of the disk the store replicates into `disk_id_out[0..16]`.
/// No I/O; waits for a change in progress; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_disk_id(
    store: *const blockdelta_store,
    disk_id_out: *mut u8,
) -> blockdelta_result {
    boundary(|| {
        let s = store_ref(store)?;
        // SAFETY: `disk_id_out` is NULL or valid for 16 writes.
        let out = unsafe { out_slice(disk_id_out, 16)? };
        out.copy_from_slice(&s.inner.disk_id());
        Ok(())
    })
}

/// The lineage the next stream must continue: `*present_out` is false for an empty store
/// (which accepts a first stream, `from_seq` 0, of any generation; then `generation_out` gets
/// 16 zero bytes and `*sequence_out` 0), else true with the generation (16 bytes) and the
/// checkpoint the next stream must start at or before. No I/O; waits for a change in
/// progress; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_lineage(
    store: *const blockdelta_store,
    generation_out: *mut u8,
    sequence_out: *mut u64,
    present_out: *mut bool,
) -> blockdelta_result {
    boundary(|| {
        let s = store_ref(store)?;
        let (seq, present) = (Out::new(sequence_out)?, Out::new(present_out)?);
        // SAFETY: `generation_out` is NULL or valid for 16 writes.
        let generation = unsafe { out_slice(generation_out, 16)? };
        let lineage = s.inner.lineage();
        let (g, q) = lineage.map_or(([0; 16], 0), |(g, q)| (g.0, q));
        generation.copy_from_slice(&g);
        // SAFETY: both checked non-NULL and writable per the contract.
        unsafe {
            seq.write(q);
            present.write(lineage.is_some());
        }
        Ok(())
    })
}

/// Starts a new lineage at the head (an explicit resync or failover): the next stream must
/// carry `generation` (16 bytes) and start from checkpoint `sequence`. Points stay.
/// `BLOCKDELTA_RESULT_REPLICA_INGEST_IN_PROGRESS` while an ingest is alive. Blocks on file
/// I/O and fsync; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_set_lineage(
    store: *mut blockdelta_store,
    generation: *const u8,
    sequence: u64,
) -> blockdelta_result {
    boundary(|| {
        let s = store_ref(store)?;
        // SAFETY: NULL or 16 readable bytes.
        let g = unsafe { id16(generation)? }.ok_or(blockdelta_result::NullParameter)?;
        s.inner
            .set_lineage(GenerationId(g), sequence)
            .map_err(|e| s.last_error.fail(e))
    })
}

/// Sets the retention policy (0 in any field means no limit of that kind); it is applied by
/// `blockdelta_store_retain` and, for `max_bytes`, by every ingest.
///
/// - `max_age_ns`: crash-consistent points older than this expire;
/// - `app_max_age_ns`: application-consistent points older than this expire;
/// - `app_interval_ns`: among application-consistent points older than `max_age_ns`, only the
///   newest in each interval of this length is kept;
/// - `max_points`: at most this many points (the newest is always kept);
/// - `max_bytes`: hard cap on the store's bytes; the oldest points expire early to stay under
///   it, and a stream that still does not fit is refused
///   (`BLOCKDELTA_RESULT_REPLICA_CAPACITY_EXCEEDED`).
///
/// Blocks on file I/O and fsync; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_set_retention(
    store: *mut blockdelta_store,
    max_age_ns: u64,
    app_max_age_ns: u64,
    app_interval_ns: u64,
    max_points: u64,
    max_bytes: u64,
) -> blockdelta_result {
    let limit = |v: u64| (v != 0).then_some(v);
    let policy = Retention {
        max_age_ns: limit(max_age_ns),
        app_max_age_ns: limit(app_max_age_ns),
        app_interval_ns: limit(app_interval_ns),
        max_points: limit(max_points),
        max_bytes: limit(max_bytes),
    };
    with_store(store, |s| s.set_retention(policy))
}

/// Reads the retention policy into the five outputs (each NULL to skip; 0 means no limit), as
/// `blockdelta_store_set_retention` takes it. No I/O; waits for a change in progress; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_retention(
    store: *const blockdelta_store,
    max_age_ns_out: *mut u64,
    app_max_age_ns_out: *mut u64,
    app_interval_ns_out: *mut u64,
    max_points_out: *mut u64,
    max_bytes_out: *mut u64,
) -> blockdelta_result {
    boundary(|| {
        let p = store_ref(store)?.inner.retention();
        for (out, v) in [
            (max_age_ns_out, p.max_age_ns),
            (app_max_age_ns_out, p.app_max_age_ns),
            (app_interval_ns_out, p.app_interval_ns),
            (max_points_out, p.max_points),
            (max_bytes_out, p.max_bytes),
        ] {
            if !out.is_null() {
                // SAFETY: non-NULL and writable per the contract.
                unsafe { out.write(v.unwrap_or(0)) };
            }
        }
        Ok(())
    })
}

/// Store-wide sizes and counts readable with `blockdelta_store_stat`. Numbers are stable; new
/// ones are appended.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum blockdelta_store_stat_id {
    /// Bytes of every object and the manifest: what `max_bytes` limits.
    Bytes = 0,
    /// Listed points (detached included).
    Points = 1,
    /// Packs: one per ingested stream or compaction, each its own object or in a bundle.
    Packs = 2,
    /// Bytes of pack data still referenced by some point or the base.
    LiveDataBytes = 3,
    /// Bytes of pack data referenced by nothing (reclaimed by `blockdelta_store_compact`).
    DeadDataBytes = 4,
    /// Pieces in the read index (about 64 bytes of memory each).
    IndexPieces = 5,
    /// Bundle objects, each holding many small packs.
    Bundles = 6,
}

/// Writes statistic `id` (a `blockdelta_store_stat_id`) to `*value_out`;
/// `BLOCKDELTA_RESULT_INVALID_ARGUMENT` for an unknown id. No I/O; waits for a change in
/// progress; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_stat(
    store: *const blockdelta_store,
    id: u32,
    value_out: *mut u64,
) -> blockdelta_result {
    boundary(|| {
        use blockdelta_store_stat_id as S;
        let s = store_ref(store)?;
        let out = Out::new(value_out)?;
        let st = s.inner.stats();
        let v = match id {
            x if x == S::Bytes as u32 => st.bytes,
            x if x == S::Points as u32 => st.points,
            x if x == S::Packs as u32 => st.packs,
            x if x == S::LiveDataBytes as u32 => st.live_data_bytes,
            x if x == S::DeadDataBytes as u32 => st.dead_data_bytes,
            x if x == S::IndexPieces as u32 => st.index_pieces,
            x if x == S::Bundles as u32 => st.bundles,
            _ => {
                return Err(s.last_error.record(
                    blockdelta_result::InvalidArgument,
                    &format_args!("unknown store statistic {id}"),
                ))
            }
        };
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out.write(v) };
        Ok(())
    })
}

/// Applies the retention policy as of `now_ns` (nanoseconds since the Unix epoch; 0 means the
/// current time). Never removes the newest point nor detached points; each removal folds the
/// point into the next one (no data is copied). `*expired_count_out` receives how many points
/// expired; when `expired_out` is not NULL, `*expired_out` receives a list of them (each with
/// `BLOCKDELTA_POINT_FIELD_EXPIRY_REASON` set) that the caller frees with
/// `blockdelta_point_list_free`. Blocks on file I/O and fsync; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_retain(
    store: *mut blockdelta_store,
    now_ns: u64,
    expired_count_out: *mut usize,
    expired_out: *mut *mut blockdelta_point_list,
) -> blockdelta_result {
    boundary(|| {
        let s = store_ref(store)?;
        let count = Out::new(expired_count_out)?;
        let now = if now_ns == 0 {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        } else {
            now_ns
        };
        let expired = s.inner.retain(now).map_err(|e| s.last_error.fail(e))?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { count.write(expired.len()) };
        if !expired_out.is_null() {
            let list = blockdelta_point_list::from_expired(expired);
            // SAFETY: non-NULL and writable per the contract.
            unsafe { expired_out.write(into_handle(list)) };
        }
        Ok(())
    })
}

/// Takes a snapshot of every recovery point, oldest first (detached points after their branch
/// point). `*list_out` receives a list the caller frees with `blockdelta_point_list_free`; it
/// does not change when the store does. No I/O; waits for a change in progress; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_points(
    store: *const blockdelta_store,
    list_out: *mut *mut blockdelta_point_list,
) -> blockdelta_result {
    boundary(|| {
        let s = store_ref(store)?;
        let out = Out::new(list_out)?;
        let list = blockdelta_point_list::from_points(s.inner.points());
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out.write(into_handle(list)) };
        Ok(())
    })
}

/// Writes the number of listed points (detached included) to `*count_out`. No I/O; waits for
/// a change in progress; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_point_count(
    store: *const blockdelta_store,
    count_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        let s = store_ref(store)?;
        let out = Out::new(count_out)?;
        let n = s.inner.point_count();
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out.write(n) };
        Ok(())
    })
}

/// Takes a snapshot of the points at positions `[first, first + count)` of
/// `blockdelta_store_points`' list (cut short at its end), in time proportional to `count`, not
/// to the store: a page of a long history, or the newest few. `*list_out` receives a list the
/// caller frees with `blockdelta_point_list_free`. No I/O; waits for a change in progress;
/// any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_points_in(
    store: *const blockdelta_store,
    first: usize,
    count: usize,
    list_out: *mut *mut blockdelta_point_list,
) -> blockdelta_result {
    boundary(|| {
        let s = store_ref(store)?;
        let out = Out::new(list_out)?;
        let list = blockdelta_point_list::from_points(
            s.inner.points_in(first..first.saturating_add(count)),
        );
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out.write(into_handle(list)) };
        Ok(())
    })
}

/// Reads `len` bytes of point `*point` at byte `offset` into the caller's `buf`, verifying every
/// checksum on the way. `BLOCKDELTA_RESULT_REPLICA_OUT_OF_RANGE` past the point's disk size,
/// `BLOCKDELTA_RESULT_REPLICA_NO_SUCH_POINT` for an unknown point. On failure `buf` may have been
/// partly written (its contents are then unspecified). Blocks on file reads; any thread, many at
/// once, also while an ingest goes on.
#[no_mangle]
pub extern "C" fn blockdelta_store_read_at(
    store: *const blockdelta_store,
    point: *const blockdelta_point_id,
    offset: u64,
    buf: *mut u8,
    len: usize,
) -> blockdelta_result {
    boundary(|| {
        let s = store_ref(store)?;
        // SAFETY: `point` is NULL or readable; `(buf, len)` writable or `(NULL, 0)`.
        let (point, buf) = unsafe { (point_arg(point)?, out_slice(buf, len)?) };
        s.inner
            .read_at(point, offset, buf)
            .map_err(|e| s.last_error.fail(e))
    })
}

/// Writes point `*point` into a new sparse file at `path` (a NUL-terminated path that must not
/// exist): data where the point has data, holes where it reads as zeros; synced before
/// returning. On failure a partly written file may remain. Blocks on file I/O and fsync; any
/// thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_export_file(
    store: *const blockdelta_store,
    point: *const blockdelta_point_id,
    path: *const c_char,
) -> blockdelta_result {
    boundary(|| {
        let s = store_ref(store)?;
        // SAFETY: `point` NULL or readable; `path` NULL or NUL-terminated.
        let (point, path) = unsafe { (point_arg(point)?, path_arg(path)?) };
        s.inner
            .export_file(point, path)
            .map(|_| ())
            .map_err(|e| s.last_error.fail(e))
    })
}

/// Hands a new extent list to the caller through a checked output.
fn write_extents(extents: Vec<crate::tracker::Extent>, out: Out<*mut blockdelta_extent_list>) {
    // SAFETY: checked non-NULL; writable per the contract.
    unsafe { out.write(into_handle(blockdelta_extent_list::new(extents))) };
}

/// Rolls the head back to point `*point`: the next stream continues from it under a new
/// generation, and every later point is kept, detached, until
/// `blockdelta_store_discard_detached`. Outputs: the new generation (16 bytes at
/// `generation_out`) and checkpoint (`*sequence_out`) the next stream must carry and start from,
/// and `*extents_out`, the ranges the source must re-send (a list the caller frees with
/// `blockdelta_extent_list_free`). Hand all three to the source's tracker.
/// `BLOCKDELTA_RESULT_REPLICA_DETACHED_POINTS_EXIST` when an earlier rollback's points were not
/// discarded; `BLOCKDELTA_RESULT_REPLICA_INVALID_ARGUMENT` for the newest point. Blocks on file
/// I/O and fsync; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_rollback(
    store: *mut blockdelta_store,
    point: *const blockdelta_point_id,
    generation_out: *mut u8,
    sequence_out: *mut u64,
    extents_out: *mut *mut blockdelta_extent_list,
) -> blockdelta_result {
    boundary(|| {
        let s = store_ref(store)?;
        let (seq, ext) = (Out::new(sequence_out)?, Out::new(extents_out)?);
        if generation_out.is_null() {
            return Err(blockdelta_result::NullParameter);
        }
        // SAFETY: `point` NULL or readable.
        let point = unsafe { point_arg(point)? };
        let r = s.inner.rollback(point).map_err(|e| s.last_error.fail(e))?;
        // SAFETY: `generation_out` is non-NULL and valid for 16 writes per the contract.
        unsafe { out_slice(generation_out, 16)? }.copy_from_slice(&r.generation.0);
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { seq.write(r.sequence) };
        write_extents(r.extents, ext);
        Ok(())
    })
}

/// Deletes the points a rollback detached; `*count_out` receives how many. Blocks on file I/O
/// and fsync; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_discard_detached(
    store: *mut blockdelta_store,
    count_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        let s = store_ref(store)?;
        let out = Out::new(count_out)?;
        let n = s
            .inner
            .discard_detached()
            .map_err(|e| s.last_error.fail(e))?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out.write(n) };
        Ok(())
    })
}

/// The ranges that may differ between points `*a` and `*b` (either order, any branch), from the
/// store's indexes, coalesced and ascending. `*extents_out` receives a list the caller frees with
/// `blockdelta_extent_list_free`. Never blocks on I/O; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_changed_between(
    store: *const blockdelta_store,
    a: *const blockdelta_point_id,
    b: *const blockdelta_point_id,
    extents_out: *mut *mut blockdelta_extent_list,
) -> blockdelta_result {
    boundary(|| {
        let s = store_ref(store)?;
        let out = Out::new(extents_out)?;
        // SAFETY: `a` and `b` are NULL or readable.
        let (a, b) = unsafe { (point_arg(a)?, point_arg(b)?) };
        let ext = s
            .inner
            .changed_between(a, b)
            .map_err(|e| s.last_error.fail(e))?;
        write_extents(ext, out);
        Ok(())
    })
}

/// Rewrites the packs of which less than half is still referenced, returning their space to
/// the file system, then copies small packs (at most 4 MiB) whole into bundles, and folds the
/// manifest log into a new manifest; `*bytes_freed_out` receives the bytes freed. `BLOCKDELTA_RESULT_REPLICA_INGEST_IN_PROGRESS`
/// while an ingest is in flight. Blocks on file I/O and fsync (it copies live data); any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_compact(
    store: *mut blockdelta_store,
    bytes_freed_out: *mut u64,
) -> blockdelta_result {
    boundary(|| {
        let s = store_ref(store)?;
        let out = Out::new(bytes_freed_out)?;
        let n = s.inner.compact().map_err(|e| s.last_error.fail(e))?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out.write(n) };
        Ok(())
    })
}

/// Rewrites the manifest whole, folding into it the manifest log records written since the
/// last time (each commit writes one small record; the store does this by itself once they add
/// up to the manifest's size), so that the manifest alone describes the store. Nothing to do
/// when there are none. Blocks on file I/O and fsync; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_checkpoint(store: *mut blockdelta_store) -> blockdelta_result {
    boundary(|| {
        let s = store_ref(store)?;
        s.inner.checkpoint().map_err(|e| s.last_error.fail(e))
    })
}

/// Checks every byte of every pack the store references against its checksum;
/// `*bytes_out` receives the bytes verified. `BLOCKDELTA_RESULT_REPLICA_CHECKSUM_MISMATCH` or
/// `BLOCKDELTA_RESULT_REPLICA_CORRUPT` name damage (see the last error). Blocks on file reads
/// (the whole store); any thread.
#[no_mangle]
pub extern "C" fn blockdelta_store_scrub(
    store: *const blockdelta_store,
    bytes_out: *mut u64,
) -> blockdelta_result {
    boundary(|| {
        let s = store_ref(store)?;
        let out = Out::new(bytes_out)?;
        let n = s.inner.scrub().map_err(|e| s.last_error.fail(e))?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out.write(n) };
        Ok(())
    })
}

/// Copies the store's last error message; rules as `blockdelta_last_error`. Any thread (with
/// several threads, the message is the latest of any of them).
#[no_mangle]
pub extern "C" fn blockdelta_store_last_error(
    store: *const blockdelta_store,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle or NULL; `(buf, cap)` writable or `(NULL, 0)`.
        unsafe { copy_handle_message(&store_ref(store)?.last_error, buf, cap, len_out) }
    })
}
