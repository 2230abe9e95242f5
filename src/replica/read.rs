//! Batched, streamed reads of pack data. The byte ranges a read needs (its runs' 4 KiB chunks
//! and their checksums) are merged per object where they touch, or lie closer than the
//! storage's [`Storage::merge_gap`] (checksums only within one pack's table: between two
//! packs' tables in a bundle lies data). The data is cut into pieces of about
//! [`Storage::piece_size`], each ending on a chunk boundary, and streamed with
//! [`Storage::get_pieces`] (object storage: parallel ranged GETs). Each piece is verified chunk
//! by chunk as it arrives and handed straight to the caller, so the only copy is the one into
//! the caller's buffer or file, and verification overlaps the fetches still in flight. The
//! checksums come first: in the same stream for a read of a few pieces (one round trip), in a
//! small batch of their own before a larger read (so that no data piece waits in memory).

use std::io;

use super::error::{corrupt, ReplicaError, Result};
use super::format::CHUNK;
use super::map::Run;
use super::storage::{Piece, RangeRead};
use super::store::{pack_object, short_object, verify_chunks, Store, View};

/// Data a read hands to one [`Store::read_runs`] call at most, so that its checksums and its
/// piece list stay small (about 1 MiB of checksums per GiB).
pub(crate) const BATCH_BYTES: u64 = 1 << 30;

/// What one run needs.
struct Need {
    name: String,
    /// The chunk-aligned object range holding the run (the pack's last chunk may be short).
    data: (u64, u64),
    /// Where the checksums of those chunks lie in the object, and where the pack's table of
    /// checksums starts.
    crcs: (u64, u64),
    table: u64,
    /// Object offset of the run's first byte, and its length.
    run: (u64, u64),
    /// Where the run's first byte goes (the caller's position: a disk offset).
    pos: u64,
}

/// The needs of one piece: the piece, and the index range (into the sorted needs) of the
/// needs that may overlap it.
struct PieceNeeds {
    name_of: usize,
    offset: u64,
    len: u64,
    needs: (usize, usize),
}

impl Store {
    /// Reads the DATA runs `runs` (each with the position its first byte goes to), verifying
    /// every 4 KiB chunk they lie in, and hands their bytes to `out(position, bytes)`: in
    /// pieces, each byte exactly once, in any order. Fails on the first error of a fetch, of
    /// a checksum, or of `out`.
    pub(crate) fn read_runs(
        &self,
        v: &View,
        runs: &[(u64, Run)],
        out: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        if runs.is_empty() {
            return Ok(());
        }
        let mut needs = Vec::with_capacity(runs.len());
        for &(pos, r) in runs {
            let loc = *v.packs.get(&r.pack).ok_or_else(|| {
                corrupt(
                    &super::manifest::pack_name(r.pack),
                    "pack not in the manifest",
                )
            })?;
            let (name, base) = pack_object(&loc);
            let c0 = r.pack_off / CHUNK;
            let c1 = (r.pack_off + r.len).div_ceil(CHUNK);
            let crc_at = base + loc.data_len;
            needs.push(Need {
                name,
                data: (base + c0 * CHUNK, base + (c1 * CHUNK).min(loc.data_len)),
                crcs: (crc_at + c0 * 4, crc_at + c1 * 4),
                table: crc_at,
                run: (base + r.pack_off, r.len),
                pos,
            });
        }
        // Sorted by object, then by where their data starts.
        needs.sort_unstable_by(|a, b| (&a.name, a.data.0).cmp(&(&b.name, b.data.0)));
        let gap = self.storage.merge_gap();
        let piece = self.storage.piece_size().max(2 * CHUNK);

        // The checksums: merged per object, fetched in one batch.
        let mut crc_ranges: Vec<(usize, u64, u64)> = Vec::new(); // first need of the object, start, end
        let mut crc_of = Vec::with_capacity(needs.len()); // need -> index in crc_ranges
        {
            let mut by_table: Vec<(usize, u64, u64, u64, usize)> = needs
                .iter()
                .enumerate()
                .map(|(i, n)| (self::first_of(&needs, i), n.table, n.crcs.0, n.crcs.1, i))
                .collect();
            by_table.sort_unstable();
            crc_of.resize(needs.len(), 0usize);
            let mut last_table = None;
            for (obj, table, s, e, i) in by_table {
                match crc_ranges.last_mut() {
                    // Merged within one pack's table only (what lies between is checksums
                    // too, a 1024th of the data skipped): between two packs' tables in a
                    // bundle lies the next pack's data, which would be fetched twice and held
                    // as checksums.
                    Some(last)
                        if last_table == Some((obj, table)) && e.max(last.2) - last.1 <= piece =>
                    {
                        last.2 = last.2.max(e)
                    }
                    _ => crc_ranges.push((obj, s, e)),
                }
                last_table = Some((obj, table));
                crc_of[i] = crc_ranges.len() - 1;
            }
        }
        // The data: merged ranges cut into pieces that end on chunk boundaries.
        // For each need, the largest end among it and the needs before it in its object:
        // the needs overlapping a position are found by binary search.
        let mut max_end = Vec::with_capacity(needs.len());
        for (i, n) in needs.iter().enumerate() {
            let prev = if i > 0 && needs[i - 1].name == n.name {
                max_end[i - 1]
            } else {
                (0, i)
            };
            max_end.push(if n.data.1 > prev.0 {
                (n.data.1, i)
            } else {
                prev
            });
        }
        let mut pieces: Vec<PieceNeeds> = Vec::new();
        let mut i = 0;
        while i < needs.len() {
            // One merged range: needs[i..j].
            let (cs, mut ce) = needs[i].data;
            let mut j = i + 1;
            while j < needs.len()
                && needs[j].name == needs[i].name
                && needs[j].data.0 <= ce.saturating_add(gap)
            {
                ce = ce.max(needs[j].data.1);
                j += 1;
            }
            let mut at = cs;
            while at < ce {
                let mut cut = at.saturating_add(piece);
                if cut >= ce {
                    cut = ce;
                } else {
                    // The need covering `cut` with the largest end (all needs covering a
                    // position are of one pack, so they agree on where chunks start).
                    let k = i + needs[i..j].partition_point(|n| n.data.0 < cut);
                    if k > i {
                        let (end, c) = max_end[k - 1];
                        if end > cut {
                            cut -= (cut - needs[c].data.0) % CHUNK;
                        }
                    }
                }
                let lo = i + max_end[i..j].partition_point(|m| m.0 <= at);
                let hi = i + needs[i..j].partition_point(|n| n.data.0 < cut);
                pieces.push(PieceNeeds {
                    name_of: i,
                    offset: at,
                    len: cut - at,
                    needs: (lo, hi),
                });
                at = cut;
            }
            i = j;
        }
        // A read of a few pieces asks for its checksums and its data at once (one round trip:
        // a piece that arrives before the checksums waits in memory, a few pieces at most); a
        // larger one fetches the checksums first, so that nothing waits.
        let data_bytes: u64 = pieces.iter().map(|p| p.len).sum();
        let together = data_bytes <= 4 * piece;
        let mut crc_bufs: Vec<Vec<u8>> = crc_ranges
            .iter()
            .map(|&(_, s, e)| vec![0u8; (e - s) as usize])
            .collect();
        if !together {
            let mut batch: Vec<RangeRead<'_>> = crc_ranges
                .iter()
                .zip(crc_bufs.iter_mut())
                .map(|(&(obj, s, _), buf)| RangeRead {
                    name: &needs[obj].name,
                    offset: s,
                    buf: buf.as_mut_slice(),
                })
                .collect();
            if let Err((i, e)) = self.storage.get_ranges(&mut batch) {
                let name = batch[i].name.to_string();
                return Err(short_object(&name, "reading a pack's checksums")(e));
            }
        }
        let nc = if together { crc_ranges.len() } else { 0 };
        let list: Vec<Piece<'_>> = crc_ranges[..nc]
            .iter()
            .map(|&(obj, s, e)| Piece {
                name: &needs[obj].name,
                offset: s,
                len: e - s,
            })
            .chain(pieces.iter().map(|p| Piece {
                name: &needs[p.name_of].name,
                offset: p.offset,
                len: p.len,
            }))
            .collect();

        // Each data piece, once the checksums are in: every chunk of every need in it
        // verified, the needs' bytes handed out.
        let mut handed = vec![0u64; needs.len()];
        let mut process = |crc_bufs: &[Vec<u8>], k: usize, bytes: &[u8]| -> Result<()> {
            let p = &pieces[k];
            let (ps, pe) = (p.offset, p.offset + p.len);
            for (ni, n) in needs[p.needs.0..p.needs.1].iter().enumerate() {
                let ni = p.needs.0 + ni;
                let (a, b) = (ps.max(n.data.0), pe.min(n.data.1));
                if a >= b {
                    continue;
                }
                let (_, cs, _) = crc_ranges[crc_of[ni]];
                let c = (n.crcs.0 - cs) as usize + ((a - n.data.0) / CHUNK) as usize * 4;
                verify_chunks(
                    &bytes[(a - ps) as usize..(b - ps) as usize],
                    &crc_bufs[crc_of[ni]][c..],
                    &n.name,
                    a,
                )?;
                let (x0, x1) = (a.max(n.run.0), b.min(n.run.0 + n.run.1));
                if x0 < x1 {
                    out(
                        n.pos + (x0 - n.run.0),
                        &bytes[(x0 - ps) as usize..(x1 - ps) as usize],
                    )?;
                    handed[ni] += x1 - x0;
                }
            }
            Ok(())
        };
        let mut crcs_missing = nc;
        let mut waiting: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut failure: Option<ReplicaError> = None;
        let mut sink = |k: usize, bytes: &[u8]| -> io::Result<()> {
            let r = if k < nc {
                crc_bufs[k].copy_from_slice(bytes);
                crcs_missing -= 1;
                if crcs_missing == 0 {
                    waiting
                        .drain(..)
                        .try_for_each(|(d, b)| process(&crc_bufs, d, &b))
                } else {
                    Ok(())
                }
            } else if crcs_missing == 0 {
                process(&crc_bufs, k - nc, bytes)
            } else {
                waiting.push((k - nc, bytes.to_vec()));
                Ok(())
            };
            r.map_err(|e| {
                failure = Some(e);
                io::Error::other("stopped")
            })
        };
        let fetched = self.storage.get_pieces(&list, &mut sink);
        if let Some(e) = failure {
            return Err(e);
        }
        if let Err((k, e)) = fetched {
            let name = list.get(k).map_or("?", |p| p.name).to_string();
            let what = if k < nc {
                "reading a pack's checksums"
            } else {
                "reading a pack"
            };
            return Err(short_object(&name, what)(e));
        }
        // Every byte of every run was handed out (a storage that skipped a piece would
        // otherwise leave a hole).
        if let Some(i) = (0..needs.len()).find(|&i| handed[i] != needs[i].run.1) {
            return Err(corrupt(&needs[i].name, "a read did not return every piece"));
        }
        Ok(())
    }
}

/// The index of the first need of need `i`'s object (needs are sorted by object).
fn first_of(needs: &[Need], i: usize) -> usize {
    needs[..i].partition_point(|n| n.name < needs[i].name)
}
