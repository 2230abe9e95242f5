//! The state file's I/O: a bounded read, the atomic and durable replacement, and the lock that
//! keeps one tracker per state file.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::outcome::PersistError;

pub(super) enum ReadFailure {
    Io(io::Error),
    TooLarge { len: u64 },
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
