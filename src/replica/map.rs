//! Extent maps: a layer's runs, newest-wins overlays, and the combined index that finds the
//! layer holding any byte of any point.

use std::collections::BTreeMap;

/// What a run of a layer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunKind {
    /// Bytes stored in a pack.
    Data = 1,
    /// Reads as zeros.
    Zero = 2,
    /// Unmapped at the source; reads as zeros.
    Discard = 3,
}

impl RunKind {
    pub(crate) fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(RunKind::Data),
            2 => Some(RunKind::Zero),
            3 => Some(RunKind::Discard),
            _ => None,
        }
    }
}

/// `len` bytes of the disk from `start`. For DATA, the bytes are at `pack_off` in pack `pack`
/// (where `pack_off % 4096 == start % 4096`); for ZERO and DISCARD, `pack` and `pack_off` are 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub start: u64,
    pub len: u64,
    pub kind: RunKind,
    pub pack: u64,
    pub pack_off: u64,
}

impl Run {
    pub fn end(&self) -> u64 {
        self.start + self.len
    }

    /// The part of this run within `[from, to)` (which must overlap it).
    pub fn slice(&self, from: u64, to: u64) -> Run {
        let s = from.max(self.start);
        let e = to.min(self.end());
        Run {
            start: s,
            len: e - s,
            kind: self.kind,
            pack: self.pack,
            pack_off: if self.kind == RunKind::Data {
                self.pack_off + (s - self.start)
            } else {
                0
            },
        }
    }

    /// True when `next` continues this run seamlessly (same kind, adjacent, same pack and
    /// adjacent in it for DATA).
    pub fn continues_with(&self, next: &Run) -> bool {
        self.end() == next.start
            && self.kind == next.kind
            && (self.kind != RunKind::Data
                || (self.pack == next.pack && self.pack_off + self.len == next.pack_off))
    }
}

/// Appends `r` to sorted runs, merging it into the last one when it continues it.
pub(crate) fn push_run(runs: &mut Vec<Run>, r: Run) {
    if r.len == 0 {
        return;
    }
    if let Some(last) = runs.last_mut() {
        debug_assert!(last.end() <= r.start);
        if last.continues_with(&r) {
            last.len += r.len;
            return;
        }
    }
    runs.push(r);
}

/// Keeps only the parts of `runs` below `size`.
pub(crate) fn truncate_runs(runs: &mut Vec<Run>, size: u64) {
    while let Some(last) = runs.last_mut() {
        if last.start >= size {
            runs.pop();
        } else {
            if last.end() > size {
                *last = last.slice(last.start, size);
            }
            break;
        }
    }
}

/// Newest wins: `newer` over `older`, both sorted and non-overlapping. Linear.
pub(crate) fn overlay(older: &[Run], newer: &[Run]) -> Vec<Run> {
    let mut out = Vec::with_capacity(older.len() + newer.len());
    let mut i = 0;
    let mut pos_old: Option<Run> = older.first().copied();
    for n in newer {
        // Older runs (or their parts) before n.
        while let Some(o) = pos_old {
            if o.start >= n.start {
                break;
            }
            let cut = o.end().min(n.start);
            push_run(&mut out, o.slice(o.start, cut));
            if o.end() > n.end() {
                // o spans past n: keep its tail for later.
                pos_old = Some(o.slice(n.end(), o.end()));
                break;
            }
            i += 1;
            pos_old = older.get(i).copied();
        }
        push_run(&mut out, *n);
        // Skip older parts covered by n.
        while let Some(o) = pos_old {
            if o.start >= n.end() {
                break;
            }
            if o.end() > n.end() {
                pos_old = Some(o.slice(n.end(), o.end()));
                break;
            }
            i += 1;
            pos_old = older.get(i).copied();
        }
    }
    while let Some(o) = pos_old {
        push_run(&mut out, o);
        i += 1;
        pos_old = older.get(i).copied();
    }
    out
}

/// The parts of `runs` that no run of `cover` overlaps (both sorted, non-overlapping). Linear.
pub(crate) fn subtract(runs: &[Run], cover: &[Run]) -> Vec<Run> {
    let mut out = Vec::with_capacity(runs.len());
    let mut j = 0;
    for r in runs {
        let mut pos = r.start;
        while j < cover.len() && cover[j].end() <= pos {
            j += 1;
        }
        let mut k = j;
        while pos < r.end() {
            match cover.get(k) {
                Some(c) if c.start < r.end() => {
                    if c.start > pos {
                        push_run(&mut out, r.slice(pos, c.start));
                    }
                    pos = pos.max(c.end());
                    k += 1;
                }
                _ => {
                    push_run(&mut out, r.slice(pos, r.end()));
                    pos = r.end();
                }
            }
        }
    }
    out
}

/// The run of sorted `runs` containing `off`, if any.
pub(crate) fn find_run(runs: &[Run], off: u64) -> Option<&Run> {
    let i = runs.partition_point(|r| r.end() <= off);
    runs.get(i).filter(|r| r.start <= off)
}

/// Merges sorted ranges `(start, end)` that touch or overlap into a minimal sorted list.
pub(crate) fn union_ranges(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        if let Some(last) = out.last_mut() {
            if s <= last.1 {
                last.1 = last.1.max(e);
                continue;
            }
        }
        out.push((s, e));
    }
    out
}

/// Which layers cover each byte range: for every piece of the disk, the numbers of the layers
/// that hold it, ascending. Layer numbers grow with ingest order.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pieces: BTreeMap<u64, Piece>,
}

#[derive(Debug, Clone)]
struct Piece {
    end: u64,
    layers: Vec<u32>,
}

impl Index {
    /// Splits the piece containing `at` (if any) so that a piece starts at `at`.
    fn split(&mut self, at: u64) {
        let Some((&s, p)) = self.pieces.range_mut(..at).next_back() else {
            return;
        };
        if p.end > at {
            let tail = Piece {
                end: p.end,
                layers: p.layers.clone(),
            };
            p.end = at;
            debug_assert!(s < at);
            self.pieces.insert(at, tail);
        }
    }

    /// Adds layer `layer` (greater than every layer added before) over `[start, end)`.
    pub fn add(&mut self, layer: u32, start: u64, end: u64) {
        if start >= end {
            return;
        }
        self.split(start);
        self.split(end);
        let mut pos = start;
        let mut gaps = Vec::new();
        for (&s, p) in self.pieces.range_mut(start..end) {
            if s > pos {
                gaps.push((pos, s));
            }
            debug_assert!(p.layers.last().map_or(true, |&l| l < layer));
            p.layers.push(layer);
            pos = p.end;
        }
        if pos < end {
            gaps.push((pos, end));
        }
        for (s, e) in gaps {
            self.pieces.insert(
                s,
                Piece {
                    end: e,
                    layers: vec![layer],
                },
            );
        }
    }

    /// Calls `f(start, end, layers)` for every piece overlapping `[from, to)`, clipped to it,
    /// in order; gaps (no layer) are reported with an empty slice.
    pub fn walk(&self, from: u64, to: u64, mut f: impl FnMut(u64, u64, &[u32])) {
        let mut pos = from;
        let first = self
            .pieces
            .range(..=from)
            .next_back()
            .filter(|(_, p)| p.end > from)
            .map(|(&s, _)| s)
            .unwrap_or(from);
        for (&s, p) in self.pieces.range(first..to) {
            let s = s.max(from);
            if s > pos {
                f(pos, s, &[]);
            }
            let e = p.end.min(to);
            f(s, e, &p.layers);
            pos = e;
        }
        if pos < to {
            f(pos, to, &[]);
        }
    }

    /// Number of pieces (memory accounting).
    pub fn len(&self) -> usize {
        self.pieces.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(start: u64, len: u64, pack: u64, off: u64) -> Run {
        Run {
            start,
            len,
            kind: RunKind::Data,
            pack,
            pack_off: off,
        }
    }

    fn z(start: u64, len: u64) -> Run {
        Run {
            start,
            len,
            kind: RunKind::Zero,
            pack: 0,
            pack_off: 0,
        }
    }

    /// A byte-level model: each byte's (kind, pack, pack byte) or None.
    fn model(runs: &[Run], size: u64) -> Vec<Option<(RunKind, u64, u64)>> {
        let mut m = vec![None; size as usize];
        for r in runs {
            for b in r.start..r.end() {
                let off = if r.kind == RunKind::Data {
                    r.pack_off + (b - r.start)
                } else {
                    0
                };
                m[b as usize] = Some((r.kind, r.pack, off));
            }
        }
        m
    }

    #[test]
    fn overlay_matches_a_byte_model() {
        let mut seed = 7u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        // Miri runs these (no unsafe here) a hundred times slower: a smaller sample there.
        for _ in 0..if cfg!(miri) { 20 } else { 2000 } {
            let mut layers = Vec::new();
            for p in 0..2 {
                let mut runs = Vec::new();
                let mut pos = rnd(8);
                while pos < 200 {
                    let len = 1 + rnd(30);
                    let r = if rnd(3) == 0 {
                        z(pos, len)
                    } else {
                        d(pos, len, p + 1, 1000 + pos)
                    };
                    push_run(&mut runs, r);
                    pos += len + rnd(20);
                }
                layers.push(runs);
            }
            let merged = overlay(&layers[0], &layers[1]);
            let mut expect = model(&layers[0], 300);
            for (i, b) in model(&layers[1], 300).into_iter().enumerate() {
                if b.is_some() {
                    expect[i] = b;
                }
            }
            assert_eq!(model(&merged, 300), expect);
            for w in merged.windows(2) {
                assert!(w[0].end() <= w[1].start);
                assert!(!w[0].continues_with(&w[1]), "not coalesced: {w:?}");
            }
        }
    }

    #[test]
    fn subtract_matches_a_byte_model() {
        let mut seed = 11u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        // Miri runs these (no unsafe here) a hundred times slower: a smaller sample there.
        for _ in 0..if cfg!(miri) { 20 } else { 2000 } {
            let mut layers = Vec::new();
            for p in 0..2 {
                let mut runs = Vec::new();
                let mut pos = rnd(8);
                while pos < 200 {
                    let len = 1 + rnd(30);
                    push_run(&mut runs, d(pos, len, p + 1, 1000 + pos));
                    pos += len + rnd(20);
                }
                layers.push(runs);
            }
            let got = subtract(&layers[0], &layers[1]);
            let mut expect = model(&layers[0], 300);
            for (i, b) in model(&layers[1], 300).into_iter().enumerate() {
                if b.is_some() {
                    expect[i] = None;
                }
            }
            assert_eq!(model(&got, 300), expect);
        }
    }

    #[test]
    fn index_reports_layers_per_piece() {
        let mut ix = Index::default();
        ix.add(0, 0, 100);
        ix.add(1, 50, 150);
        ix.add(2, 10, 20);
        let mut seen = Vec::new();
        ix.walk(0, 200, |s, e, l| seen.push((s, e, l.to_vec())));
        assert_eq!(
            seen,
            vec![
                (0, 10, vec![0]),
                (10, 20, vec![0, 2]),
                (20, 50, vec![0]),
                (50, 100, vec![0, 1]),
                (100, 150, vec![1]),
                (150, 200, vec![]),
            ]
        );
        let mut seen = Vec::new();
        ix.walk(15, 60, |s, e, l| seen.push((s, e, l.to_vec())));
        assert_eq!(
            seen,
            vec![
                (15, 20, vec![0, 2]),
                (20, 50, vec![0]),
                (50, 60, vec![0, 1])
            ]
        );
    }

    #[test]
    fn truncate_cuts_the_crossing_run() {
        let mut runs = vec![d(0, 10, 1, 0), z(20, 10), d(40, 10, 1, 40)];
        truncate_runs(&mut runs, 25);
        assert_eq!(runs, vec![d(0, 10, 1, 0), z(20, 5)]);
    }
}
