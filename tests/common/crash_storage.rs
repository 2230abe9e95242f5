//! A `Storage` in memory that models durability, for crash tests (as redb's crash backend
//! does for its file backend): every mutating call is numbered; the store can be made to
//! crash at call N (that call may or may not take effect, then every call fails), after which
//! `reboot` gives the storage as a machine would find it after a power cut: objects, the
//! manifest and synced upload bytes survive; unsynced upload bytes are dropped or torn (a
//! random prefix kept, with garbage in it now and then). It can also fail call N with EIO
//! without crashing, to check that a failed write or sync poisons the store.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

use blockdelta::replica::{manifest_conflict, ManifestVersion, Storage, Upload};

#[derive(Clone, Default)]
struct Up {
    data: Vec<u8>,
    synced: usize,
}

#[derive(Default)]
struct Inner {
    objects: BTreeMap<String, Vec<u8>>,
    uploads: BTreeMap<String, Up>,
    manifest: Option<(Vec<u8>, u64)>,
    ops: u64,
    crash_at: Option<u64>,
    fail_at: Option<u64>,
    crashed: bool,
    locked: bool,
    seed: u64,
    /// Names of the calls made, for failure messages.
    trace: Vec<String>,
    syncs_after_failure: u64,
    failed: bool,
    /// Bytes the storage holds at most (objects, uploads, manifest); writes past it fail with
    /// ENOSPC (`StorageFull`) and take no effect.
    capacity: Option<u64>,
}

impl Inner {
    fn rnd(&mut self) -> u64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.seed
    }

    /// Counts a mutating call. `Ok(true)`: go ahead. `Ok(false)`: this call is the crash (or
    /// failure): the caller applies a random partial effect, then returns the error.
    fn op(&mut self, what: &str) -> io::Result<bool> {
        if self.crashed {
            return Err(io::Error::other("storage crashed"));
        }
        self.ops += 1;
        self.trace.push(what.to_string());
        if self.crash_at == Some(self.ops) {
            self.crashed = true;
            return Ok(false);
        }
        if self.fail_at == Some(self.ops) {
            self.failed = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn used(&self) -> u64 {
        self.objects.values().map(|o| o.len() as u64).sum::<u64>()
            + self
                .uploads
                .values()
                .map(|u| u.data.len() as u64)
                .sum::<u64>()
            + self.manifest.as_ref().map_or(0, |m| m.0.len() as u64)
    }

    /// ENOSPC if `more` bytes (replacing `freed`) do not fit.
    fn room(&self, more: usize, freed: usize) -> io::Result<()> {
        match self.capacity {
            Some(c) if self.used() + more as u64 > c + freed as u64 => {
                Err(io::Error::from_raw_os_error(28))
            }
            _ => Ok(()),
        }
    }

    fn err(&self) -> io::Error {
        if self.crashed {
            io::Error::other("storage crashed")
        } else {
            io::Error::from_raw_os_error(5) // EIO
        }
    }
}

/// See the module documentation. Clones share the same state.
#[derive(Clone, Default)]
pub struct CrashStorage(Arc<Mutex<Inner>>);

impl CrashStorage {
    pub fn new(seed: u64) -> Self {
        let s = CrashStorage::default();
        s.0.lock().unwrap().seed = seed | 1;
        s
    }

    /// Crash at mutating call `n` (1-based).
    pub fn crash_at(&self, n: u64) {
        self.0.lock().unwrap().crash_at = Some(n);
    }

    /// Holds at most `bytes`.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.0.lock().unwrap().capacity = bytes;
    }

    pub fn used(&self) -> u64 {
        self.0.lock().unwrap().used()
    }

    /// Fail mutating call `n` with EIO, without crashing.
    pub fn fail_at(&self, n: u64) {
        self.0.lock().unwrap().fail_at = Some(n);
    }

    pub fn ops(&self) -> u64 {
        self.0.lock().unwrap().ops
    }

    /// Whether a scenario that reached its end (`Ok`) despite the crash may: only when the
    /// crash hit what follows a commit (the deletions after it, or the manifest swap after a
    /// checkpoint record), which the store never reports as the change failing (it poisons
    /// itself; the next call, if any, is refused).
    pub fn ok_after_crash(&self) -> bool {
        self.trace()
            .last()
            .is_some_and(|t| t.starts_with("delete ") || t == "swap manifest")
    }

    pub fn crashed(&self) -> bool {
        self.0.lock().unwrap().crashed
    }

    /// Syncs attempted after an injected failure (a store must not retry a failed sync).
    pub fn syncs_after_failure(&self) -> u64 {
        self.0.lock().unwrap().syncs_after_failure
    }

    pub fn trace(&self) -> Vec<String> {
        self.0.lock().unwrap().trace.clone()
    }

    /// The storage after a power cut: unsynced upload bytes dropped or torn, lock released.
    pub fn reboot(&self) -> CrashStorage {
        let mut g = self.0.lock().unwrap();
        let mut uploads = BTreeMap::new();
        let names: Vec<String> = g.uploads.keys().cloned().collect();
        for n in names {
            let u = g.uploads[&n].clone();
            let unsynced = u.data.len() - u.synced;
            let keep = if unsynced == 0 {
                0
            } else {
                (g.rnd() % (unsynced as u64 + 1)) as usize
            };
            let mut data = u.data[..u.synced + keep].to_vec();
            if keep > 0 && g.rnd() % 3 == 0 {
                // A torn sector: garbage in the kept unsynced part.
                let at = u.synced + (g.rnd() as usize % keep);
                data[at] ^= 0x5a;
            }
            uploads.insert(
                n,
                Up {
                    synced: data.len(),
                    data,
                },
            );
        }
        let inner = Inner {
            objects: g.objects.clone(),
            uploads,
            manifest: g.manifest.clone(),
            seed: g.rnd() | 1,
            ..Inner::default()
        };
        CrashStorage(Arc::new(Mutex::new(inner)))
    }

    /// The same storage after a process restart without a crash (nothing lost).
    pub fn restart(&self) -> CrashStorage {
        let g = self.0.lock().unwrap();
        CrashStorage(Arc::new(Mutex::new(Inner {
            objects: g.objects.clone(),
            uploads: g.uploads.clone(),
            manifest: g.manifest.clone(),
            seed: g.seed,
            ..Inner::default()
        })))
    }

    /// Flips one byte of an object (for scrub/read tests).
    pub fn corrupt(&self, name: &str, at: usize) {
        let mut g = self.0.lock().unwrap();
        g.objects.get_mut(name).unwrap()[at] ^= 1;
    }

    pub fn object_names(&self) -> Vec<String> {
        self.0.lock().unwrap().objects.keys().cloned().collect()
    }
}

struct MemUpload {
    s: CrashStorage,
    name: String,
}

impl Upload for MemUpload {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let mut g = self.s.0.lock().unwrap();
        if !g.op("append")? {
            // Torn: part of it may have landed (unsynced).
            let n = (g.rnd() % (data.len() as u64 + 1)) as usize;
            if let Some(u) = g.uploads.get_mut(&self.name) {
                u.data.extend_from_slice(&data[..n]);
            }
            return Err(g.err());
        }
        g.room(data.len(), 0)?;
        g.uploads
            .get_mut(&self.name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "upload gone"))?
            .data
            .extend_from_slice(data);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut g = self.s.0.lock().unwrap();
        if g.failed {
            g.syncs_after_failure += 1;
        }
        if !g.op("sync")? {
            return Err(g.err());
        }
        let u = g
            .uploads
            .get_mut(&self.name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "upload gone"))?;
        u.synced = u.data.len();
        Ok(())
    }

    fn len(&self) -> u64 {
        self.s
            .0
            .lock()
            .unwrap()
            .uploads
            .get(&self.name)
            .map_or(0, |u| u.data.len() as u64)
    }

    fn complete(self: Box<Self>) -> io::Result<()> {
        let mut g = self.s.0.lock().unwrap();
        if g.failed {
            g.syncs_after_failure += 1;
        }
        let go = g.op("complete")?;
        let happened = go || g.rnd() % 2 == 0 && g.crashed;
        if happened {
            if g.objects.contains_key(&self.name) {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "exists"));
            }
            let u = g
                .uploads
                .remove(&self.name)
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "upload gone"))?;
            g.objects.insert(self.name.clone(), u.data);
        }
        if go {
            Ok(())
        } else {
            Err(g.err())
        }
    }
}

impl Storage for CrashStorage {
    fn put(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let mut g = self.0.lock().unwrap();
        if g.failed {
            g.syncs_after_failure += 1;
        }
        let go = g.op(&format!("put {name}"))?;
        if g.objects.contains_key(name) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "exists"));
        }
        if go {
            g.room(data.len(), 0)?;
        }
        if go || (g.crashed && g.rnd() % 2 == 0) {
            g.objects.insert(name.to_string(), data.to_vec());
        }
        if go {
            Ok(())
        } else {
            Err(g.err())
        }
    }

    fn get_range(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let g = self.0.lock().unwrap();
        let o = g
            .objects
            .get(name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, name.to_string()))?;
        let s = offset as usize;
        let e = s
            .checked_add(buf.len())
            .filter(|&e| e <= o.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(&o[s..e]);
        Ok(())
    }

    fn size(&self, name: &str) -> io::Result<u64> {
        let g = self.0.lock().unwrap();
        g.objects
            .get(name)
            .map(|o| o.len() as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, name.to_string()))
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let g = self.0.lock().unwrap();
        Ok(g.objects
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn delete(&self, name: &str) -> io::Result<()> {
        let mut g = self.0.lock().unwrap();
        let go = g.op(&format!("delete {name}"))?;
        if go || (g.crashed && g.rnd() % 2 == 0) {
            g.objects.remove(name);
        }
        if go {
            Ok(())
        } else {
            Err(g.err())
        }
    }

    fn upload(&self, name: &str) -> io::Result<Box<dyn Upload>> {
        let mut g = self.0.lock().unwrap();
        if !g.op(&format!("upload {name}"))? {
            return Err(g.err());
        }
        g.uploads.insert(name.to_string(), Up::default());
        Ok(Box::new(MemUpload {
            s: self.clone(),
            name: name.to_string(),
        }))
    }

    fn resume_upload(&self, name: &str, len: u64) -> io::Result<Box<dyn Upload>> {
        let mut g = self.0.lock().unwrap();
        if !g.op(&format!("resume {name}"))? {
            return Err(g.err());
        }
        let u = g
            .uploads
            .get_mut(name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no upload"))?;
        if (u.data.len() as u64) < len {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        u.data.truncate(len as usize);
        u.synced = u.synced.min(len as usize);
        Ok(Box::new(MemUpload {
            s: self.clone(),
            name: name.to_string(),
        }))
    }

    fn abort_upload(&self, name: &str) -> io::Result<()> {
        let mut g = self.0.lock().unwrap();
        let go = g.op(&format!("abort {name}"))?;
        if go {
            g.uploads.remove(name);
            Ok(())
        } else {
            Err(g.err())
        }
    }

    fn uploads(&self) -> io::Result<Vec<String>> {
        Ok(self.0.lock().unwrap().uploads.keys().cloned().collect())
    }

    fn read_manifest(&self) -> io::Result<Option<(Vec<u8>, u64)>> {
        Ok(self.0.lock().unwrap().manifest.clone())
    }

    fn swap_manifest(&self, expected: ManifestVersion, data: &[u8]) -> io::Result<u64> {
        let mut g = self.0.lock().unwrap();
        if g.failed {
            g.syncs_after_failure += 1;
        }
        let go = g.op("swap manifest")?;
        if g.manifest.as_ref().map(|m| m.1) != expected {
            return Err(manifest_conflict());
        }
        let version = g.manifest.as_ref().map_or(1, |m| m.1 + 1);
        if go {
            let old = g.manifest.as_ref().map_or(0, |m| m.0.len());
            g.room(data.len(), old)?;
        }
        if go || (g.crashed && g.rnd() % 2 == 0) {
            g.manifest = Some((data.to_vec(), version));
        }
        if go {
            Ok(version)
        } else {
            Err(g.err())
        }
    }

    fn lock_writer(&self) -> io::Result<Box<dyn Send + Sync>> {
        let mut g = self.0.lock().unwrap();
        if g.locked {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "locked"));
        }
        g.locked = true;
        Ok(Box::new(Unlock(self.clone())))
    }
}

struct Unlock(CrashStorage);

impl Drop for Unlock {
    fn drop(&mut self) {
        if let Ok(mut g) = self.0 .0.lock() {
            g.locked = false;
        }
    }
}
