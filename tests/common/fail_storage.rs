//! A storage whose pack uploads fail on a plan (an errno at the n-th append, a failed n-th
//! sync, slow appends), counting calls after the failure: the pack writer thread's tests.

use std::io;
use std::sync::{Arc, Mutex};

use blockdelta::replica::{DirStorage, ManifestVersion, Storage, Upload};

#[derive(Default)]
pub struct Plan {
    /// Fail the pack upload's append number n (1-based) with this errno.
    pub append: Option<(u64, i32)>,
    /// Fail the pack upload's sync number n (1-based).
    pub sync: Option<u64>,
    pub appends: u64,
    pub syncs: u64,
    pub failed: bool,
    pub calls_after_failure: u64,
    /// Each append of the pack upload takes this long (the writer thread's queue fills).
    pub delay_ms: u64,
}

#[derive(Clone)]
pub struct FailStorage {
    pub inner: Arc<DirStorage>,
    pub plan: Arc<Mutex<Plan>>,
}

pub struct FailUpload {
    pub inner: Box<dyn Upload>,
    pub plan: Arc<Mutex<Plan>>,
}

impl FailUpload {
    fn call(&self) -> std::sync::MutexGuard<'_, Plan> {
        let mut p = self.plan.lock().unwrap();
        if p.failed {
            p.calls_after_failure += 1;
        }
        p
    }
}

impl Upload for FailUpload {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let delay = self.plan.lock().unwrap().delay_ms;
        std::thread::sleep(std::time::Duration::from_millis(delay));
        {
            let mut p = self.call();
            p.appends += 1;
            if let Some((n, errno)) = p.append {
                if p.appends == n {
                    p.failed = true;
                    return Err(io::Error::from_raw_os_error(errno));
                }
            }
        }
        self.inner.append(data)
    }

    fn sync(&mut self) -> io::Result<()> {
        {
            let mut p = self.call();
            p.syncs += 1;
            if p.sync == Some(p.syncs) {
                p.failed = true;
                return Err(io::Error::other("fsync failed: injected"));
            }
        }
        self.inner.sync()
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn complete(self: Box<Self>) -> io::Result<()> {
        drop(self.call());
        self.inner.complete()
    }
}

impl Storage for FailStorage {
    fn put(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.inner.put(name, data)
    }
    fn get_range(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.get_range(name, offset, buf)
    }
    fn size(&self, name: &str) -> io::Result<u64> {
        self.inner.size(name)
    }
    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, name: &str) -> io::Result<()> {
        self.inner.delete(name)
    }
    fn upload(&self, name: &str) -> io::Result<Box<dyn Upload>> {
        Ok(Box::new(FailUpload {
            inner: self.inner.upload(name)?,
            plan: self.plan.clone(),
        }))
    }
    fn resume_upload(&self, name: &str, len: u64) -> io::Result<Box<dyn Upload>> {
        Ok(Box::new(FailUpload {
            inner: self.inner.resume_upload(name, len)?,
            plan: self.plan.clone(),
        }))
    }
    fn abort_upload(&self, name: &str) -> io::Result<()> {
        self.inner.abort_upload(name)
    }
    fn uploads(&self) -> io::Result<Vec<String>> {
        self.inner.uploads()
    }
    fn read_manifest(&self) -> io::Result<Option<(Vec<u8>, u64)>> {
        self.inner.read_manifest()
    }
    fn swap_manifest(&self, expected: ManifestVersion, data: &[u8]) -> io::Result<u64> {
        self.inner.swap_manifest(expected, data)
    }
    fn lock_writer(&self) -> io::Result<Box<dyn Send + Sync>> {
        self.inner.lock_writer()
    }
}
