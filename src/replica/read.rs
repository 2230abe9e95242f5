//! Batched reads of pack data: the byte ranges a read needs (its runs' 4 KiB chunks and their
//! checksums) are merged per object where they touch, or lie closer than the storage's
//! [`Storage::merge_gap`], and fetched in one [`Storage::get_ranges`] call, which object
//! storage sends as parallel ranged GETs. A local directory merges only touching ranges, so
//! its reads stay exactly what they were (fewer of them).

use std::collections::BTreeMap;

use super::error::{corrupt, Result};
use super::format::CHUNK;
use super::map::Run;
use super::storage::RangeRead;
use super::store::{pack_object, short_object, verify_chunks, Store, View};

/// Data (chunk-aligned) a batch fetches at most, besides merged gaps and checksums.
pub(crate) const BATCH_BYTES: u64 = 32 << 20;

/// What one run needs: object, and where its chunks and checksums lie in it.
struct Need {
    name: String,
    data: (u64, u64),
    crcs: (u64, u64),
    /// Offset of the run's first byte within its first chunk.
    skip: usize,
    /// Object offset of the first chunk (for error messages).
    at: u64,
}

impl Store {
    /// Reads the bytes of every DATA run of `reads` into its buffer (same length), verifying
    /// the 4 KiB chunks they lie in; all in one batch of storage reads.
    pub(crate) fn read_runs(&self, v: &View, reads: &mut [(Run, &mut [u8])]) -> Result<()> {
        let mut needs = Vec::with_capacity(reads.len());
        for (r, dst) in reads.iter() {
            debug_assert_eq!(r.len, dst.len() as u64);
            let loc = *v.packs.get(&r.pack).ok_or_else(|| {
                corrupt(
                    &super::manifest::pack_name(r.pack),
                    "pack not in the manifest",
                )
            })?;
            let (name, base) = pack_object(&loc);
            let c0 = r.pack_off / CHUNK;
            let c1 = (r.pack_off + r.len).div_ceil(CHUNK);
            let from = c0 * CHUNK;
            let to = (c1 * CHUNK).min(loc.data_len);
            let crc_at = base + loc.data_len;
            needs.push(Need {
                name,
                data: (base + from, base + to),
                crcs: (crc_at + c0 * 4, crc_at + c1 * 4),
                skip: (r.pack_off - from) as usize,
                at: base + from,
            });
        }
        // Merge the ranges of each object.
        let gap = self.storage.merge_gap();
        let mut by_object: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
        for n in &needs {
            let e = by_object.entry(n.name.as_str()).or_default();
            e.push(n.data);
            e.push(n.crcs);
        }
        let mut merged: Vec<(&str, u64, Vec<u8>)> = Vec::new();
        let mut index: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (name, mut ranges) in by_object {
            ranges.sort_unstable();
            let first = merged.len();
            let mut cur: Option<(u64, u64)> = None;
            for (s, e) in ranges {
                cur = match cur {
                    // Merged while the gap is small and the merged range stays bounded.
                    Some((cs, ce))
                        if s <= ce.saturating_add(gap) && e.max(ce) - cs <= BATCH_BYTES + gap =>
                    {
                        Some((cs, ce.max(e)))
                    }
                    Some((cs, ce)) => {
                        merged.push((name, cs, vec![0u8; (ce - cs) as usize]));
                        Some((s, e))
                    }
                    None => Some((s, e)),
                };
            }
            if let Some((cs, ce)) = cur {
                merged.push((name, cs, vec![0u8; (ce - cs) as usize]));
            }
            index.insert(name, (first, merged.len()));
        }
        {
            let mut batch: Vec<RangeRead<'_>> = merged
                .iter_mut()
                .map(|(name, offset, buf)| RangeRead {
                    name,
                    offset: *offset,
                    buf: buf.as_mut_slice(),
                })
                .collect();
            if let Err((i, e)) = self.storage.get_ranges(&mut batch) {
                let name = batch[i].name.to_string();
                return Err(short_object(&name, "reading a pack")(e));
            }
        }
        // Each run's chunks and checksums, out of the merged buffers.
        let find = |name: &str, (s, e): (u64, u64)| -> &[u8] {
            let (a, b) = index[name];
            let i = a + merged[a..b].partition_point(|m| m.1 + m.2.len() as u64 <= s);
            let m = &merged[i];
            &m.2[(s - m.1) as usize..(e - m.1) as usize]
        };
        for (n, (_, dst)) in needs.iter().zip(reads.iter_mut()) {
            let data = find(&n.name, n.data);
            let crcs = find(&n.name, n.crcs);
            verify_chunks(data, crcs, &n.name, n.at)?;
            dst.copy_from_slice(&data[n.skip..n.skip + dst.len()]);
        }
        Ok(())
    }
}
