//! The manifest log: most commits write one small create-only record `log-<counter>` naming
//! what changed since the previous commit, instead of rewriting the whole manifest (88 bytes
//! per point and 32 per pack: 2 MB at 17,280 points). The manifest itself is a checkpoint,
//! rewritten when the records since it add up to its own size or number
//! [`LOG_MAX_RECORDS`]; opening a store reads the checkpoint and replays the records after it.
//! Layout and protocol: `docs/REPLICA.md`.

use std::collections::HashSet;
use std::hash::Hash;

use super::error::{corrupt, io_err, Result};
use super::format::{open_sealed, put_head, MANIFEST_MAGIC, R, W};
use super::manifest::{
    get_bundle, get_level, get_pack, get_point, get_scalars, object_name, put_bundle, put_level,
    put_pack, put_point, put_scalars, Manifest, BUNDLE_BYTES, LEVEL_BYTES, PACK_BYTES, POINT_MIN,
};
use super::storage::Storage;

pub(crate) const LOG_MAGIC: &[u8; 8] = b"BDMLOG01";

/// Records after a checkpoint before the next commit rewrites the manifest: bounds the reads
/// of an open (one small object each) and the records kept.
pub(crate) const LOG_MAX_RECORDS: u64 = 512;

/// Whatever the manifest's size, records may add up to this much before a checkpoint.
pub(crate) const LOG_MIN_BYTES: u64 = 64 << 10;

pub(crate) fn log_name(counter: u64) -> String {
    object_name("log", counter)
}

/// The commit counter a `log-<16 hex>` name carries, if it is one.
pub(crate) fn log_counter(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("log-")?;
    // Exactly as `log_name` writes it: 16 lower-case hex digits (no sign, no upper case).
    if hex.len() != 16 || !hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// How a list changed: drop the old entries at `removed` (ascending), replace the entries at
/// the `replaced` positions of what remains, then append `appended`.
struct ListDiff<'a, T> {
    removed: Vec<u32>,
    replaced: Vec<(u32, &'a T)>,
    appended: &'a [T],
}

/// Describes `new` as a change of `old`. Correct for any choice of removals; `key` only picks
/// them well (an entry whose key is gone from `new` is removed, the rest are kept in place).
fn diff<'a, T: PartialEq, K: Hash + Eq>(
    old: &[T],
    new: &'a [T],
    key: impl Fn(&T) -> K,
) -> Option<ListDiff<'a, T>> {
    let removed: Vec<u32> = if old.len() <= new.len() && old.iter().zip(new).all(|(a, b)| a == b) {
        Vec::new() // the common case, appends only: no hashing
    } else {
        let keys: HashSet<K> = new.iter().map(&key).collect();
        (0..old.len() as u32)
            .filter(|&i| !keys.contains(&key(&old[i as usize])))
            .collect()
    };
    let kept = old.len() - removed.len();
    if kept > new.len() {
        return None;
    }
    let mut replaced = Vec::new();
    let mut gone = removed.iter().peekable();
    let mut j = 0usize;
    for (i, t) in old.iter().enumerate() {
        if gone.peek() == Some(&&(i as u32)) {
            gone.next();
            continue;
        }
        if *t != new[j] {
            replaced.push((j as u32, &new[j]));
        }
        j += 1;
    }
    Some(ListDiff {
        removed,
        replaced,
        appended: &new[kept..],
    })
}

fn put_diff<T>(w: &mut W, old_len: usize, d: &ListDiff<'_, T>, put: impl Fn(&mut W, &T)) {
    w.u32(old_len as u32)
        .u32(d.removed.len() as u32)
        .u32(d.replaced.len() as u32)
        .u32(d.appended.len() as u32);
    for &i in &d.removed {
        w.u32(i);
    }
    for &(i, t) in &d.replaced {
        w.u32(i).u32(0);
        put(w, t);
    }
    for t in d.appended {
        put(w, t);
    }
}

/// Applies a list change read from `r` to `list`, refusing anything that does not fit it.
fn apply_diff<T>(
    r: &mut R<'_>,
    o: &str,
    what: &str,
    list: &mut Vec<T>,
    min_bytes: usize,
    mut get: impl FnMut(&mut R<'_>, usize) -> Result<T>,
) -> Result<()> {
    let old_len = r.u32()? as usize;
    let (nremoved, nreplaced, nappended) =
        (r.u32()? as usize, r.u32()? as usize, r.u32()? as usize);
    if old_len != list.len() {
        return Err(corrupt(
            o,
            format!("changes {old_len} {what}, the manifest has {}", list.len()),
        ));
    }
    let need = nremoved
        .saturating_mul(4)
        .saturating_add(nreplaced.saturating_mul(8 + min_bytes))
        .saturating_add(nappended.saturating_mul(min_bytes));
    if need > r.remaining() || nremoved > old_len {
        return Err(corrupt(
            o,
            format!("claims more {what} changes than it holds"),
        ));
    }
    let mut removed = Vec::with_capacity(nremoved);
    for _ in 0..nremoved {
        let i = r.u32()? as usize;
        if i >= old_len || removed.last().is_some_and(|&p| p >= i) {
            return Err(corrupt(
                o,
                format!("removes {what} {i}: out of order or range"),
            ));
        }
        removed.push(i);
    }
    if !removed.is_empty() {
        let mut gone = removed.iter().peekable();
        let mut i = 0usize;
        list.retain(|_| {
            let drop = gone.peek() == Some(&&i);
            if drop {
                gone.next();
            }
            i += 1;
            !drop
        });
    }
    for _ in 0..nreplaced {
        let i = r.u32()? as usize;
        r.zero(4, "log field")?;
        let t = get(r, i)?;
        let slot = list
            .get_mut(i)
            .ok_or_else(|| corrupt(o, format!("replaces {what} {i}, which does not exist")))?;
        *slot = t;
    }
    list.reserve(nappended);
    for _ in 0..nappended {
        let t = get(r, list.len())?;
        list.push(t);
    }
    Ok(())
}

/// The record taking `old` to `new` (whose counter is `old.counter + 1`), or `None` when the
/// change is not worth a record (the caller writes a checkpoint).
pub(crate) fn encode_record(old: &Manifest, new: &Manifest) -> Option<Vec<u8>> {
    debug_assert_eq!(new.counter, old.counter + 1);
    let points = diff(&old.points, &new.points, |p| (p.generation, p.to_seq))?;
    let packs = diff(&old.packs, &new.packs, |p| p.id)?;
    let bundles = diff(&old.bundles, &new.bundles, |b| b.id)?;
    let base = diff(&old.base, &new.base, |l| l.layer)?;
    let mut w = W::default();
    put_head(&mut w, LOG_MAGIC);
    w.u64(new.counter).bytes(&new.store_id);
    put_scalars(&mut w, &new.scalars());
    put_diff(&mut w, old.points.len(), &points, put_point);
    put_diff(&mut w, old.packs.len(), &packs, put_pack);
    put_diff(&mut w, old.bundles.len(), &bundles, put_bundle);
    put_diff(&mut w, old.base.len(), &base, put_level);
    Some(w.seal())
}

/// Applies record `name` (commit `counter`) to `m`, the state after the commit before it. The
/// result is checked by the caller ([`Manifest::check`]) once every record is applied.
pub(crate) fn apply_record(m: &mut Manifest, b: &[u8], name: &str, counter: u64) -> Result<()> {
    let o = name;
    let mut r = open_sealed(b, LOG_MAGIC, o)?;
    let c = r.u64()?;
    if c != counter || m.counter.checked_add(1) != Some(c) {
        return Err(corrupt(
            o,
            format!("holds commit {c}, expected {}", m.counter.saturating_add(1)),
        ));
    }
    if r.arr16()? != m.store_id {
        return Err(corrupt(o, "belongs to another store"));
    }
    let s = get_scalars(&mut r, o)?;
    apply_diff(&mut r, o, "points", &mut m.points, POINT_MIN, |r, i| {
        get_point(r, o, i)
    })?;
    apply_diff(&mut r, o, "packs", &mut m.packs, PACK_BYTES, |r, _| {
        get_pack(r)
    })?;
    apply_diff(
        &mut r,
        o,
        "bundles",
        &mut m.bundles,
        BUNDLE_BYTES,
        |r, _| get_bundle(r),
    )?;
    apply_diff(
        &mut r,
        o,
        "base levels",
        &mut m.base,
        LEVEL_BYTES,
        |r, _| get_level(r),
    )?;
    r.done()?;
    m.set_scalars(s);
    m.counter = c;
    Ok(())
}

/// True when record `name` starts with the manifest's magic: a checkpoint record.
fn is_checkpoint_record(storage: &dyn Storage, name: &str) -> Result<bool> {
    let mut head = [0u8; 8];
    storage
        .get_range(name, 0, &mut head)
        .map_err(io_err("reading a log record"))?;
    Ok(&head == MANIFEST_MAGIC)
}

/// Applies checkpoint record `name` (commit `counter`: the whole manifest after it) to `m`,
/// the state after the commit before it.
fn apply_checkpoint_record(m: &mut Manifest, b: &[u8], name: &str, counter: u64) -> Result<()> {
    let next = Manifest::decode(b).map_err(|e| match e {
        super::error::ReplicaError::Corrupt { reason, .. } => corrupt(name, reason),
        super::error::ReplicaError::UnsupportedVersion { version, .. } => {
            super::error::ReplicaError::UnsupportedVersion {
                object: name.to_string(),
                version,
            }
        }
        e => e,
    })?;
    if next.counter != counter || m.counter.checked_add(1) != Some(counter) {
        return Err(corrupt(
            name,
            format!(
                "holds commit {}, expected {}",
                next.counter,
                m.counter.saturating_add(1)
            ),
        ));
    }
    if next.store_id != m.store_id || next.disk_id != m.disk_id {
        return Err(corrupt(name, "belongs to another store"));
    }
    *m = next;
    Ok(())
}

/// The manifest log after the checkpoint: records `log-<checkpoint + 1>` to `log-<m.counter>`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LogState {
    /// The commit counter of the checkpoint (the manifest object).
    pub checkpoint: u64,
    /// The checkpoint's bytes.
    pub checkpoint_len: u64,
    /// Records since the checkpoint, and their bytes.
    pub records: u64,
    pub bytes: u64,
}

/// Replays onto `m` (the checkpoint, `checkpoint_len` bytes) the log records after it, in
/// order. Records at or before the checkpoint are left for garbage collection; a gap in the
/// records after it is corruption (records are written one at a time, each after the last
/// was durable, and only a checkpoint deletes them).
pub(crate) fn replay_log(
    storage: &dyn Storage,
    m: &mut Manifest,
    checkpoint_len: u64,
) -> Result<LogState> {
    let mut state = LogState {
        checkpoint: m.counter,
        checkpoint_len,
        records: 0,
        bytes: 0,
    };
    let mut counters: Vec<u64> = storage
        .list("log-")
        .map_err(io_err("listing manifest log records"))?
        .iter()
        .filter_map(|n| log_counter(n))
        .filter(|&c| c > m.counter)
        .collect();
    counters.sort_unstable();
    for c in counters {
        let name = log_name(c);
        if c != m.counter + 1 {
            return Err(corrupt(
                &name,
                format!("follows commit {}, whose record is missing", c - 1),
            ));
        }
        let size = storage
            .size(&name)
            .map_err(io_err("reading a log record's size"))?;
        // A commit writes a change record only while the records since the checkpoint stay
        // within this budget (`Store::commit`), so no change record is larger; a checkpoint
        // record (the whole manifest) is as large as the manifest is.
        if size > checkpoint_len.max(LOG_MIN_BYTES) && !is_checkpoint_record(storage, &name)? {
            return Err(corrupt(&name, format!("{size} bytes is not a log record")));
        }
        let mut b = vec![0u8; size as usize];
        storage
            .get_range(&name, 0, &mut b)
            .map_err(io_err("reading a log record"))?;
        if b.starts_with(MANIFEST_MAGIC) {
            apply_checkpoint_record(m, &b, &name, c)?;
        } else {
            apply_record(m, &b, &name, c)?;
        }
        state.records += 1;
        state.bytes += size;
    }
    if state.records > 0 {
        m.check()?;
    }
    Ok(state)
}

#[cfg(test)]
#[path = "tests/log.rs"]
mod tests;
