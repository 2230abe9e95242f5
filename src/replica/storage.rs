//! The store's only way to persist anything: a small interface with object-storage semantics.
//!
//! - objects are immutable: created whole by [`Storage::put`] (create-only) or by an
//!   [`Upload`] that is appended to sequentially and then completed (create-only);
//! - objects are read by range, listed by prefix and deleted;
//! - one small **manifest** is replaced atomically by [`Storage::swap_manifest`], conditional
//!   on the version the caller last read, so two writers can never both commit.
//!
//! Every call that returns `Ok` is durable: a crash afterwards never loses what it wrote. An
//! upload's appended bytes are durable only up to its last successful [`Upload::sync`].
//!
//! [`DirStorage`] implements it on a local file system (create-only via `link(2)`, the
//! manifest swap as write, fsync, rename, fsync the directory). Object storage (S3, Azure Blob)
//! maps onto the same calls: create-only puts (`If-None-Match: *`), multipart uploads, ranged
//! gets, and a conditional put of the manifest (`If-Match: <etag>`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The version of the manifest a caller read; [`Storage::swap_manifest`] succeeds only if it is
/// still the current one. `None` means "no manifest exists".
pub type ManifestVersion = Option<u64>;

/// One range of a batch read ([`Storage::get_ranges`]): `buf.len()` bytes of object `name` at
/// `offset`.
#[derive(Debug)]
pub struct RangeRead<'a> {
    /// The object.
    pub name: &'a str,
    /// Where in it.
    pub offset: u64,
    /// Filled with exactly its length of bytes.
    pub buf: &'a mut [u8],
}

/// One piece of a streamed read ([`Storage::get_pieces`]): `len` bytes of object `name` at
/// `offset`.
#[derive(Debug, Clone, Copy)]
pub struct Piece<'a> {
    /// The object.
    pub name: &'a str,
    /// Where in it.
    pub offset: u64,
    /// How many bytes.
    pub len: u64,
}

/// Receives the bytes of piece `index` of a streamed read; an error stops the read.
pub type PieceSink<'s> = dyn FnMut(usize, &[u8]) -> io::Result<()> + 's;

/// A sequential, resumable upload of one large object.
pub trait Upload: Send {
    /// Appends `data`. Not durable until [`Upload::sync`].
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable. A failure means some appended bytes may be
    /// lost: the caller must not assume any of them survived.
    fn sync(&mut self) -> io::Result<()>;
    /// Bytes appended so far.
    fn len(&self) -> u64;
    /// True when nothing was appended.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Makes the upload a visible object under its name (create-only), durably.
    fn complete(self: Box<Self>) -> io::Result<()>;
}

/// Object-storage semantics for the replica store. See the module documentation.
pub trait Storage: Send + Sync {
    /// Creates object `name` holding `data`, durably. Fails with
    /// [`io::ErrorKind::AlreadyExists`] if it exists.
    fn put(&self, name: &str, data: &[u8]) -> io::Result<()>;
    /// Reads exactly `buf.len()` bytes of object `name` at `offset`.
    fn get_range(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Reads every range of `reads` as [`Storage::get_range`] would, in any order or at once
    /// (object storage sends them in parallel). On failure, the index of a failed range and
    /// its error; the buffers' contents are then unspecified.
    fn get_ranges(&self, reads: &mut [RangeRead<'_>]) -> Result<(), (usize, io::Error)> {
        for (i, r) in reads.iter_mut().enumerate() {
            self.get_range(r.name, r.offset, r.buf)
                .map_err(|e| (i, e))?;
        }
        Ok(())
    }
    /// Fetches every piece of `pieces` and hands its bytes to `sink` with its index, each
    /// exactly once, in any order, as it arrives (object storage fetches several at once and
    /// keeps a bounded number of answers waiting for the sink). Stops at the first failure: a
    /// fetch's, or the sink's (returned as is), with the index of its piece.
    fn get_pieces(
        &self,
        pieces: &[Piece<'_>],
        sink: &mut PieceSink<'_>,
    ) -> Result<(), (usize, io::Error)> {
        let mut buf = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            let len =
                usize::try_from(p.len).map_err(|_| (i, io::Error::other("piece too large")))?;
            buf.resize(len, 0);
            self.get_range(p.name, p.offset, &mut buf)
                .map_err(|e| (i, e))?;
            sink(i, &buf).map_err(|e| (i, e))?;
        }
        Ok(())
    }
    /// The size of the pieces a streamed read asks for (a reader may cut a little shorter to
    /// end on a chunk boundary).
    fn piece_size(&self) -> u64 {
        4 << 20
    }
    /// Bytes between two needed ranges of one object below which a reader fetches the gap
    /// too rather than send a second request. 0 (the default) merges only ranges that touch.
    fn merge_gap(&self) -> u64 {
        0
    }
    /// The size of object `name`.
    fn size(&self, name: &str) -> io::Result<u64>;
    /// The names of all objects starting with `prefix`, in no particular order.
    fn list(&self, prefix: &str) -> io::Result<Vec<String>>;
    /// Deletes object `name`, durably; deleting a missing object is not an error.
    fn delete(&self, name: &str) -> io::Result<()>;
    /// Deletes every object in `names`, durably once it returns (a local directory syncs once
    /// for all of them); missing objects are not an error. On failure some may be deleted.
    fn delete_many(&self, names: &[String]) -> io::Result<()> {
        names.iter().try_for_each(|n| self.delete(n))
    }
    /// Starts an upload of a new object `name` (replacing any unfinished upload of that name).
    fn upload(&self, name: &str) -> io::Result<Box<dyn Upload>>;
    /// Continues the unfinished upload of `name` after its first `len` bytes (which a previous
    /// [`Upload::sync`] made durable); anything after them is dropped.
    fn resume_upload(&self, name: &str, len: u64) -> io::Result<Box<dyn Upload>>;
    /// Drops the unfinished upload of `name`, if any.
    fn abort_upload(&self, name: &str) -> io::Result<()>;
    /// The names of unfinished uploads.
    fn uploads(&self) -> io::Result<Vec<String>>;
    /// The current manifest and its version, or `None` if there is none.
    fn read_manifest(&self) -> io::Result<Option<(Vec<u8>, u64)>>;
    /// The current manifest's version only (its commit counter), or `None` if there is none:
    /// a small read where [`Storage::read_manifest`] reads the whole manifest.
    fn manifest_version(&self) -> io::Result<Option<u64>> {
        Ok(self.read_manifest()?.map(|(_, v)| v))
    }
    /// Replaces the manifest with `data` if its version is still `expected`, durably, and
    /// returns the new version. When another writer committed first, nothing changes and the
    /// error (kind [`io::ErrorKind::Other`]) holds a [`ManifestConflict`].
    fn swap_manifest(&self, expected: ManifestVersion, data: &[u8]) -> io::Result<u64>;
    /// Takes the exclusive writer lock for the life of the returned guard, or fails with
    /// [`io::ErrorKind::WouldBlock`] when another process holds it.
    fn lock_writer(&self) -> io::Result<Box<dyn Send + Sync>>;
    /// Requests sent to the storage service so far, retries not counted (object storage);
    /// 0 where nothing is counted (a local directory).
    fn requests(&self) -> u64 {
        0
    }
}

/// The error inside [`Storage::swap_manifest`]'s `io::Error` when another writer committed
/// first.
#[derive(Debug)]
pub struct ManifestConflict;

impl std::fmt::Display for ManifestConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the manifest was changed by another writer")
    }
}

impl std::error::Error for ManifestConflict {}

/// A manifest swap that lost the race.
pub fn manifest_conflict() -> io::Error {
    io::Error::other(ManifestConflict)
}

/// [`Storage`] on a local directory:
///
/// ```text
/// <dir>/MANIFEST          the manifest (replaced by rename)
/// <dir>/LOCK              flock(2)ed by the one writer
/// <dir>/objects/<name>    immutable objects
/// <dir>/uploads/<name>    unfinished uploads
/// ```
#[derive(Debug)]
pub struct DirStorage {
    root: PathBuf,
    objects: PathBuf,
    uploads: PathBuf,
    /// Open objects for reading (objects never change, so a descriptor stays valid until the
    /// object is deleted through this storage, which drops it from here).
    open: parking_lot::Mutex<FileCache>,
}

/// Descriptors kept open for reads, at most: a quarter of the process's limit (the soft
/// `RLIMIT_NOFILE`), so that the store never starves its host of descriptors.
const OPEN_FILES: usize = 1024;

/// Open objects for reads, the least recently used closed first when full.
#[derive(Debug)]
struct FileCache {
    files: std::collections::HashMap<String, (std::sync::Arc<File>, u64)>,
    tick: u64,
    cap: usize,
    /// Deletions so far: a descriptor opened while one happened is not cached (it may be of
    /// the deleted object, whose space it would hold).
    deletes: u64,
}

impl FileCache {
    fn new() -> FileCache {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct we pass and nothing else.
        let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            lim.rlim_cur as usize
        } else {
            1024
        };
        FileCache {
            files: Default::default(),
            tick: 0,
            cap: (soft / 4).clamp(16, OPEN_FILES),
            deletes: 0,
        }
    }

    fn get(&mut self, name: &str) -> Option<std::sync::Arc<File>> {
        self.tick += 1;
        let t = self.tick;
        self.files.get_mut(name).map(|(f, used)| {
            *used = t;
            f.clone()
        })
    }

    fn insert(&mut self, name: &str, f: std::sync::Arc<File>) {
        if self.files.len() >= self.cap {
            // A miss costs an open(2) anyway: a scan for the oldest is cheap beside it.
            if let Some(k) = self
                .files
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            {
                self.files.remove(&k);
            }
        }
        self.tick += 1;
        self.files.insert(name.to_string(), (f, self.tick));
    }

    fn remove(&mut self, name: &str) {
        self.deletes += 1;
        self.files.remove(name);
    }
}

const MANIFEST: &str = "MANIFEST";
const MANIFEST_TMP: &str = "MANIFEST.tmp";

impl DirStorage {
    /// Storage in `dir`, creating it and its subdirectories if needed.
    pub fn new(dir: impl AsRef<Path>) -> io::Result<Self> {
        let root = dir.as_ref().to_path_buf();
        fs::create_dir_all(&root)?;
        let objects = root.join("objects");
        let uploads = root.join("uploads");
        for d in [&objects, &uploads] {
            if !d.exists() {
                fs::create_dir(d)?;
                sync_dir(&root)?;
            }
        }
        Ok(DirStorage {
            root,
            objects,
            uploads,
            open: parking_lot::Mutex::new(FileCache::new()),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    fn object(&self, name: &str) -> io::Result<PathBuf> {
        check_name(name)?;
        Ok(self.objects.join(name))
    }

    fn upload_path(&self, name: &str) -> io::Result<PathBuf> {
        check_name(name)?;
        Ok(self.uploads.join(name))
    }
}

/// Object names are flat: ASCII letters, digits, `-`, `_` and `.`, not starting with `.`.
pub(crate) fn check_name(name: &str) -> io::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid object name {name:?}"),
        ))
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    sync_failed(File::open(dir)?.sync_all())
}

/// A failed fsync is reported as [`io::ErrorKind::Other`] whatever its errno (ENOSPC included):
/// unlike a failed write, it means data the caller handed over may be lost.
fn sync_failed(r: io::Result<()>) -> io::Result<()> {
    r.map_err(|e| io::Error::other(format!("fsync failed: {e}")))
}

/// Publishes the synced file `tmp` as `dst`, create-only (`link(2)` fails if `dst` exists),
/// and makes the new name durable.
fn publish(tmp: &Path, dst: &Path, dst_dir: &Path) -> io::Result<()> {
    fs::hard_link(tmp, dst)?;
    sync_dir(dst_dir)?;
    fs::remove_file(tmp)?;
    Ok(())
}

impl Storage for DirStorage {
    fn put(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let dst = self.object(name)?;
        if dst.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("object {name} exists"),
            ));
        }
        // (Unique: two writers on one store, one of them past the lock, never share it.)
        let tmp = self.uploads.join(format!(
            "put.{name}.{:016x}",
            u64::from_le_bytes(crate::GenerationId::random().0[..8].try_into().expect("8"))
        ));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let written = f.write_all(data).and_then(|_| sync_failed(f.sync_all()));
        drop(f);
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        publish(&tmp, &dst, &self.objects)
    }

    fn get_range(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let (cached, deletes) = {
            let mut c = self.open.lock();
            (c.get(name), c.deletes)
        };
        let f = match cached {
            Some(f) => f,
            None => {
                let f = std::sync::Arc::new(File::open(self.object(name)?)?);
                let mut c = self.open.lock();
                if c.deletes == deletes {
                    c.insert(name, f.clone());
                }
                f
            }
        };
        f.read_exact_at(buf, offset)
    }

    fn size(&self, name: &str) -> io::Result<u64> {
        Ok(fs::metadata(self.object(name)?)?.len())
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.objects)? {
            let name = e?.file_name();
            if let Some(n) = name.to_str() {
                if n.starts_with(prefix) {
                    out.push(n.to_string());
                }
            }
        }
        Ok(out)
    }

    fn delete(&self, name: &str) -> io::Result<()> {
        self.open.lock().remove(name);
        match fs::remove_file(self.object(name)?) {
            Ok(()) => sync_dir(&self.objects),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn delete_many(&self, names: &[String]) -> io::Result<()> {
        let mut removed = false;
        for name in names {
            self.open.lock().remove(name.as_str());
            match fs::remove_file(self.object(name)?) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if removed {
            sync_dir(&self.objects)?;
        }
        Ok(())
    }

    fn upload(&self, name: &str) -> io::Result<Box<dyn Upload>> {
        let path = self.upload_path(name)?;
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        sync_dir(&self.uploads)?;
        Ok(Box::new(DirUpload {
            direct: open_direct(&path),
            file,
            len: 0,
            started: 0,
            path,
            dst: self.objects.join(name),
            dst_dir: self.objects.clone(),
        }))
    }

    fn resume_upload(&self, name: &str, len: u64) -> io::Result<Box<dyn Upload>> {
        let path = self.upload_path(name)?;
        let file = OpenOptions::new().write(true).open(&path)?;
        let have = file.metadata()?.len();
        if have < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("upload {name} holds {have} bytes, {len} were synced"),
            ));
        }
        file.set_len(len)?;
        sync_failed(file.sync_all())?;
        Ok(Box::new(DirUpload {
            direct: open_direct(&path),
            file,
            len,
            started: len,
            path,
            dst: self.objects.join(name),
            dst_dir: self.objects.clone(),
        }))
    }

    fn abort_upload(&self, name: &str) -> io::Result<()> {
        match fs::remove_file(self.upload_path(name)?) {
            Ok(()) => sync_dir(&self.uploads),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn uploads(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.uploads)? {
            if let Some(n) = e?.file_name().to_str() {
                if !n.starts_with("put.") {
                    out.push(n.to_string());
                }
            }
        }
        Ok(out)
    }

    fn read_manifest(&self) -> io::Result<Option<(Vec<u8>, u64)>> {
        match fs::read(self.root.join(MANIFEST)) {
            Ok(data) => {
                let version = manifest_version(&data);
                Ok(Some((data, version)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn manifest_version(&self) -> io::Result<Option<u64>> {
        let f = match File::open(self.root.join(MANIFEST)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut head = [0u8; 24];
        let n = f.read_at(&mut head, 0)?;
        Ok(Some(manifest_version(&head[..n])))
    }

    fn swap_manifest(&self, expected: ManifestVersion, data: &[u8]) -> io::Result<u64> {
        // The writer lock makes read-compare-rename atomic among well-behaved writers; the
        // comparison catches a writer that skipped the lock or a stale in-memory state.
        let current = self.read_manifest()?.map(|(_, v)| v);
        if current != expected {
            return Err(manifest_conflict());
        }
        let tmp = self.root.join(MANIFEST_TMP);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let written = f.write_all(data).and_then(|_| sync_failed(f.sync_all()));
        drop(f);
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, self.root.join(MANIFEST))?;
        sync_dir(&self.root)?;
        Ok(manifest_version(data))
    }

    fn lock_writer(&self) -> io::Result<Box<dyn Send + Sync>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(self.root.join("LOCK"))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe {
            libc::flock(
                std::os::unix::io::AsRawFd::as_raw_fd(&f),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "{} is open for writing by another process",
                        self.root.display()
                    ),
                ));
            }
            return Err(e);
        }
        // Only a writer creates temporaries, and we are now the only writer: any left are
        // from one that died (kill -9, power cut) inside `put` or `swap_manifest`. `uploads()`
        // does not list them (they are not uploads), so nothing else would ever remove them.
        remove_stale_temporaries(&self.root, &self.uploads)?;
        // The lock lives as long as the file stays open.
        Ok(Box::new(f))
    }
}

/// Deletes `put.*` in `uploads` and `MANIFEST.tmp` in `root`: temporaries of a dead writer
/// (the caller holds the writer lock).
fn remove_stale_temporaries(root: &Path, uploads: &Path) -> io::Result<()> {
    let mut removed = false;
    for e in fs::read_dir(uploads)? {
        let e = e?;
        if e.file_name()
            .to_str()
            .is_some_and(|n| n.starts_with("put."))
        {
            fs::remove_file(e.path())?;
            removed = true;
        }
    }
    if removed {
        sync_dir(uploads)?;
    }
    match fs::remove_file(root.join(MANIFEST_TMP)) {
        Ok(()) => sync_dir(root),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The manifest's own commit counter (bytes 16..24 of every manifest version, see
/// `docs/REPLICA.md`), or 0 for bytes too short to hold one (the reader refuses those anyway).
pub(crate) fn manifest_version(data: &[u8]) -> u64 {
    data.get(16..24)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .unwrap_or(0)
}

/// An upload writes whole, aligned 4 KiB blocks (offset, length and memory) through a second
/// descriptor opened with `O_DIRECT` where the file system allows it: straight from the
/// caller's buffer to the disk, without a copy into the page cache nor write-back work left for
/// `sync`. Everything else goes through the page cache.
struct DirUpload {
    file: File,
    direct: Option<File>,
    len: u64,
    /// Write-back was started for the bytes before this offset.
    started: u64,
    path: PathBuf,
    dst: PathBuf,
    dst_dir: PathBuf,
}

/// An upload starts the write-back of each this many appended bytes (no waiting, no promise),
/// so that the data reaches the disk while more is appended and `sync` has little left to do.
const WRITE_BEHIND: u64 = 4 << 20;

impl Upload for DirUpload {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(direct) = self.direct.as_ref().filter(|_| aligned(self.len, data)) {
            match direct.write_all_at(data, self.len) {
                Ok(()) => {
                    self.len += data.len() as u64;
                    self.started = self.len;
                    return Ok(());
                }
                // Not for this file system after all: through the page cache from now on
                // (rewriting whatever part was written).
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.direct = None,
                Err(e) => return Err(e),
            }
        }
        self.file.write_all_at(data, self.len)?;
        self.len += data.len() as u64;
        if self.len - self.started >= WRITE_BEHIND {
            start_write_back(&self.file, self.started, self.len - self.started);
            self.started = self.len;
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        sync_failed(self.file.sync_data())
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn complete(self: Box<Self>) -> io::Result<()> {
        sync_failed(self.file.sync_all())?;
        if self.dst.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("object {} exists", self.dst.display()),
            ));
        }
        publish(&self.path, &self.dst, &self.dst_dir)
    }
}

/// Asks the kernel to start writing `[offset, offset + len)` of `file` back to the disk, without
/// waiting for it: a hint (errors are ignored; `fsync` reports them and is what makes the bytes
/// durable).
#[cfg(target_os = "linux")]
fn start_write_back(file: &File, offset: u64, len: u64) {
    use std::os::unix::io::AsRawFd;
    // SAFETY: sync_file_range on a descriptor we own; no memory is passed.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_write_back(_: &File, _: u64, _: u64) {}

/// The alignment of what goes through `O_DIRECT`: file offset, length and memory address.
pub(crate) const DIRECT_ALIGN: usize = 4096;

fn aligned(offset: u64, data: &[u8]) -> bool {
    let a = DIRECT_ALIGN as u64;
    !data.is_empty()
        && offset % a == 0
        && data.len() as u64 % a == 0
        && (data.as_ptr() as usize) % DIRECT_ALIGN == 0
}

/// `path` opened again for writing with `O_DIRECT`, if the file system supports it.
#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_: &Path) -> Option<File> {
    None
}

#[cfg(test)]
mod file_cache_tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "opens a file")]
    fn the_least_recently_used_descriptor_is_closed_first() {
        let mut c = FileCache {
            files: Default::default(),
            tick: 0,
            cap: 2,
            deletes: 0,
        };
        let f = || std::sync::Arc::new(File::open("/dev/null").unwrap());
        c.insert("a", f());
        c.insert("b", f());
        assert!(c.get("a").is_some()); // "b" is now the least recently used
        c.insert("c", f());
        assert!(c.get("b").is_none());
        assert!(c.get("a").is_some() && c.get("c").is_some());
        c.remove("a");
        assert_eq!(c.files.len(), 1);
    }
}
