//! Bundles: many small packs copied, whole and unchanged, into one object.
//!
//! Every ingested stream writes its own pack, so a store that takes a small stream every few
//! seconds holds tens of thousands of small pack objects: one file each on a local file system
//! (one `open` per read once they outnumber the descriptor cache, and an inode each), one object
//! and one request each on object storage. Retention copies them into bundles of up to
//! [`BUNDLE_MAX`] bytes: each pack keeps its own bytes (header chunk, data, checksum table,
//! footer) at a 4 KiB-aligned offset of the bundle, so its checksums and every layer run that
//! points into it stay valid: only the manifest's pack records change (bundle id and offset),
//! in one commit. No layer is rewritten.
//!
//! A store with a byte cap makes no new bundle: a pack that dies inside a bundle frees no space
//! until the bundle is made again, which needs room itself.
//!
//! Cost: the bytes of a small pack are written a second time, once. A bundle whose live packs
//! fall below half of it is bundled again with the next small packs (its live packs are copied
//! once more), so its dead space returns to the file system.

use std::collections::{HashMap, HashSet};

use super::error::Result;
use super::format::{encode_bundle_head, pack_object_len, CHUNK};
use super::manifest::{bundle_name, pack_name, BundleRec, PackRec};
use super::store::{failed, pack_object, remove_dead_bundles, store_bytes, Store, Writer};
use super::ReplicaError;

/// A pack whose object is at most this large is small: retention bundles it.
pub(crate) const SMALL_PACK: u64 = 4 << 20;
/// Retention bundles once this many small standalone packs exist ([`Store::compact`] bundles
/// any two or more).
pub(crate) const BUNDLE_AT: usize = 64;
/// A bundle holds at most this many bytes of packs (or one pack more than fits, if it is the
/// first).
pub(crate) const BUNDLE_MAX: u64 = 64 << 20;

fn align_up(n: u64) -> u64 {
    n.div_ceil(CHUNK) * CHUNK
}

impl Store {
    /// Bundles the small standalone packs when there are at least `at_least` of them, and the
    /// packs of bundles less than half live. Returns how many packs were bundled. Running out
    /// of space is not an error here: nothing changed, and the small packs stay as they are.
    pub(crate) fn bundle_packs(&self, w: &mut Writer, at_least: usize) -> Result<usize> {
        match self.bundle_packs_inner(w, at_least) {
            Err(ReplicaError::StorageFull { .. }) => Ok(0),
            r => r,
        }
    }

    fn bundle_packs_inner(&self, w: &mut Writer, at_least: usize) -> Result<usize> {
        let mut held: HashMap<u64, u64> = HashMap::new();
        for p in w.m.packs.iter().filter(|p| p.bundle != 0) {
            *held.entry(p.bundle).or_default() += pack_object_len(p.data_len);
        }
        let sparse: HashSet<u64> =
            w.m.bundles
                .iter()
                .filter(|b| held.get(&b.id).copied().unwrap_or(0) * 2 < b.len - CHUNK)
                .map(|b| b.id)
                .collect();
        // Under a byte cap, no new bundle: a pack that dies inside a bundle frees no space
        // until the bundle is made again, which itself needs room, so expiring points early to
        // make room (`fit_under`) would free nothing. Sparse bundles (made before a cap was
        // set) are still made again when there is room.
        let capped = w.m.retention.max_bytes.is_some();
        let small = if capped {
            0
        } else {
            w.m.packs
                .iter()
                .filter(|p| p.bundle == 0 && pack_object_len(p.data_len) <= SMALL_PACK)
                .count()
        };
        if small < at_least.max(2) && sparse.is_empty() {
            return Ok(0);
        }
        let mut cands: Vec<PackRec> =
            w.m.packs
                .iter()
                .filter(|p| {
                    if p.bundle == 0 {
                        !capped && pack_object_len(p.data_len) <= SMALL_PACK
                    } else {
                        sparse.contains(&p.bundle)
                    }
                })
                .copied()
                .collect();
        // Oldest first: packs of the same age are read and expire together.
        cands.sort_unstable_by_key(|p| p.id);
        let mut chosen: Vec<(PackRec, u64)> = Vec::new();
        let mut len = CHUNK;
        for p in cands {
            let l = pack_object_len(p.data_len);
            if !chosen.is_empty() && len + l > BUNDLE_MAX {
                break;
            }
            chosen.push((p, len));
            len = align_up(len + l);
        }
        let last = chosen.last().expect("at least one");
        let len = last.1 + pack_object_len(last.0.data_len);
        if chosen.len() < 2 && !chosen.iter().any(|(p, _)| p.bundle != 0) {
            return Ok(0);
        }
        if let Some(cap) = w.m.retention.max_bytes {
            // The bundle exists beside the packs it copies until the commit.
            let now = store_bytes(w, &self.v.read());
            if now.saturating_add(len) > cap {
                return Ok(0);
            }
        }
        let id = Self::alloc_id(w);
        let name = bundle_name(id);
        let written = (|| -> std::io::Result<()> {
            let mut up = self.storage.upload(&name)?;
            up.append(&encode_bundle_head(&w.m.store_id, id))?;
            let mut buf = vec![0u8; 1 << 20];
            const Z: [u8; CHUNK as usize] = [0; CHUNK as usize];
            for (p, at) in &chosen {
                let pad = at - up.len();
                up.append(&Z[..pad as usize])?;
                let (obj, base) = pack_object(p);
                let total = pack_object_len(p.data_len);
                let mut off = 0;
                while off < total {
                    let n = (total - off).min(buf.len() as u64) as usize;
                    self.storage.get_range(&obj, base + off, &mut buf[..n])?;
                    up.append(&buf[..n])?;
                    off += n as u64;
                }
            }
            debug_assert_eq!(up.len(), len);
            up.complete()
        })();
        if let Err(e) = written {
            let _ = self.storage.abort_upload(&name);
            return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                super::error::corrupt(&name, "a pack is shorter than the manifest says")
            } else {
                failed(w, "writing a bundle", e)
            });
        }
        let mut m = w.m.clone();
        let mut old = Vec::new();
        let moved: HashMap<u64, u64> = chosen.iter().map(|(p, at)| (p.id, *at)).collect();
        let mut new_recs: Vec<PackRec> = Vec::with_capacity(chosen.len());
        for p in m.packs.iter_mut() {
            if let Some(&at) = moved.get(&p.id) {
                if p.bundle == 0 {
                    old.push(pack_name(p.id));
                }
                p.bundle = id;
                p.offset = at;
                new_recs.push(*p);
            }
        }
        m.bundles.push(BundleRec { id, len });
        remove_dead_bundles(&mut m, &mut old);
        if let Err(e) = self.commit(w, m) {
            if !w.poisoned {
                let _ = self.storage.delete(&name);
            }
            return Err(e);
        }
        {
            let mut v = self.v.write();
            for p in new_recs {
                v.set_pack(p);
            }
        }
        self.delete_objects(w, &old)?;
        Ok(chosen.len())
    }
}
