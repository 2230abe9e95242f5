//! The state file's I/O: a bounded read, the atomic and durable replacement, and the lock that
//! keeps one tracker per state file.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::outcome::PersistError;

/// Why a bounded read failed.
#[doc(hidden)]
#[derive(Debug)]
pub enum ReadFailure {
    /// The read failed (`NotFound` when the file does not exist).
    Io(io::Error),
    /// The file is longer than the bound.
    TooLarge {
        /// Its length.
        len: u64,
    },
}

/// Where a persistent tracker keeps its state file and activity log. The default is a
/// directory ([`PersistentTracker::open`](super::PersistentTracker::open)); tests substitute a
/// model that loses or tears what was not synced.
#[doc(hidden)]
pub trait TrackerStorage: Send + Sync {
    /// The state file's name, for messages.
    fn name(&self) -> &Path;
    /// Takes the exclusive lock on the state file for the returned guard's life.
    fn lock(&self) -> Result<Box<dyn std::any::Any + Send + Sync>, PersistError>;
    /// The whole state file, if at most `max` bytes.
    fn read_state(&self, max: u64) -> Result<Vec<u8>, ReadFailure>;
    /// Replaces the state file atomically and durably.
    fn replace_state(&self, bytes: &[u8]) -> Result<(), PersistError>;
    /// The whole activity log, if at most `max` bytes (`NotFound` when there is none).
    fn read_log(&self, max: u64) -> Result<Vec<u8>, ReadFailure>;
    /// Writes `bytes` at `offset` of the activity log (created if missing).
    fn write_log(&self, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// Makes every write of the activity log durable.
    fn sync_log(&self) -> io::Result<()>;
    /// Creates the activity log if it does not exist, durably (its directory entry too),
    /// before a state file that names a log is written: a state file whose log is missing
    /// then means damage, never "no records yet".
    fn create_log(&self) -> io::Result<()>;
}

/// The state file and its siblings `<path>.lock` and `<path>.al` in a directory.
pub(super) struct DirStorage {
    path: PathBuf,
    log: std::sync::Mutex<Option<fs::File>>,
}

impl DirStorage {
    pub(super) fn new(path: PathBuf) -> DirStorage {
        DirStorage {
            path,
            log: std::sync::Mutex::new(None),
        }
    }

    fn log_path(&self) -> PathBuf {
        sibling(&self.path, ".al")
    }

    fn with_log<T>(&self, f: impl FnOnce(&fs::File) -> io::Result<T>) -> io::Result<T> {
        let mut g = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(self.log_path())?;
            // The log's directory entry must be durable before a record in it is relied on.
            let dir = match self.path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            file.sync_all()?;
            fs::File::open(dir)?.sync_all()?;
            *g = Some(file);
        }
        f(g.as_ref().expect("opened above"))
    }
}

impl TrackerStorage for DirStorage {
    fn name(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> Result<Box<dyn std::any::Any + Send + Sync>, PersistError> {
        Ok(Box::new(lock(&self.path)?))
    }

    fn read_state(&self, max: u64) -> Result<Vec<u8>, ReadFailure> {
        read_bounded(&self.path, max)
    }

    fn replace_state(&self, bytes: &[u8]) -> Result<(), PersistError> {
        write_durably(&self.path, bytes)
    }

    fn read_log(&self, max: u64) -> Result<Vec<u8>, ReadFailure> {
        read_bounded(&self.log_path(), max)
    }

    fn write_log(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.with_log(|f| f.write_all_at(bytes, offset))
    }

    fn sync_log(&self) -> io::Result<()> {
        // fdatasync: the record's bytes and the file size that reaches them.
        self.with_log(|f| f.sync_data())
    }

    fn create_log(&self) -> io::Result<()> {
        // Opening creates it and syncs the file and its directory.
        self.with_log(|_| Ok(()))
    }
}

/// Reads a whole file of at most `max` bytes (checked before anything is allocated, and again
/// while reading, in case it grows).
pub(super) fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, ReadFailure> {
    let f = fs::File::open(path).map_err(ReadFailure::Io)?;
    let len = f.metadata().map_err(ReadFailure::Io)?.len();
    if len > max {
        return Err(ReadFailure::TooLarge { len });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadFailure::Io)?;
    if bytes.len() as u64 > max {
        return Err(ReadFailure::TooLarge {
            len: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// Replaces the file at `path` by `bytes` atomically and durably: a temporary file beside it
/// (`<name>.tmp`), written and fsynced, renamed over `path`, then the directory fsynced. A
/// crash leaves the old file or the new one (a stale temporary file is overwritten next time
/// and never read).
pub(super) fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let io = |op, p: &Path| {
        let p = p.to_path_buf();
        move |source| PersistError::Io {
            op,
            path: p,
            source,
        }
    };
    let tmp = temp_path(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io("create the temporary state file", &tmp))?;
    f.write_all(bytes)
        .map_err(io("write the temporary state file", &tmp))?;
    f.sync_all()
        .map_err(io("fsync the temporary state file", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io("rename the temporary state file to", path))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync the directory", dir))
}

/// Takes the lock of the state file at `path`: an exclusive flock(2) on `<path>.lock` (created
/// if missing, never removed: removing a lock file races with its next user), held while the
/// returned file is open.
pub(super) fn lock(path: &Path) -> Result<fs::File, PersistError> {
    use std::os::unix::io::AsRawFd;
    let lock_path = sibling(path, ".lock");
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|source| PersistError::Io {
            op: "open the lock file",
            path: lock_path.clone(),
            source,
        })?;
    // A lock released a moment ago may still be held by a copy of its descriptor in a child
    // that this process forked and that has not yet exec'd (descriptors are close-on-exec):
    // retry for up to about 100 ms before reporting the file as taken.
    for attempt in 0.. {
        // SAFETY: flock on a file descriptor we own and keep open; no memory is involved.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            break;
        }
        let source = io::Error::last_os_error();
        if source.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(PersistError::Io {
                op: "lock",
                path: lock_path,
                source,
            });
        }
        if attempt == 50 {
            return Err(PersistError::Locked { path: lock_path });
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    Ok(f)
}

/// `<path>.tmp`, in the same directory (so that the rename is atomic).
fn temp_path(path: &Path) -> PathBuf {
    sibling(path, ".tmp")
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}
