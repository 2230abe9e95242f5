//! The two hierarchical bitmaps behind a tracker.
//!
//! [`LiveMap`] is the atomic, lock-free set that `mark_write` sets bits in. [`FrozenMap`] is the
//! plain set a checkpoint is drained into and read from. Both have the same shape: level 0 holds
//! one bit per tracked block; every higher level holds one bit per word of the level below,
//! meaning "that word may be non-zero" (for the live map) or "that word is non-zero" (exact, for
//! the frozen map). The top level is a single word. (Live leaf words hold 32 blocks with their
//! kinds, frozen leaf words 64: see below.) Walking from the top visits only words that
//! hold dirty bits, so draining, iterating and clearing cost time in proportion to the dirty
//! blocks, not to the disk size (the idea of QEMU's `hbitmap`).
//!
//! ## The concurrency protocol (model-checked in `tests/loom_tracker.rs`)
//! Every clearing of a live word is a whole-word `swap(0)`, done top-down by the drain. A writer
//! that sets a bit makes sure that word's bit in the level above is set, and so on up to the
//! top. Because the drain swaps a parent before its children and the writer sets a child before
//! its parent, with acquire/release read-modify-writes on both sides, a bit set by `set_range` is
//! either obtained by a drain that runs concurrently or left in the live map with its whole
//! ancestor chain set, where the next drain finds it. It is never in neither, and a mark that
//! returned before a take started is in that take.
//!
//! ## Discard state (model-checked in `tests/loom_tracker.rs`, `*discard*`, `*abort*`)
//! The live map keeps each block's kind in the same leaf word as its dirty bit: a live leaf
//! word covers 32 blocks, the low half their dirty bits (D), the high half their "written" bits
//! (W). A dirty block is a write with W set and a discard without. The frozen map keeps
//! separate discard words (single owner, under the control lock). Under races the rules below
//! may let a discard be reported as a write (conservative: the block's data is read and
//! shipped), never a write as a discard (which would lose the write on the replica).
//! - A write is one `fetch_or(D | W)` (after a load that skips it when both are set): from
//!   every state the block is "written" right after it in the word's modification order, so
//!   every drain from then on reports a write, until a later discard.
//! - A discard ORs its D bits (with the W bits of the partial blocks at its ends, which are
//!   writes), then clears the W bits of the whole blocks it covers. A drain between the two
//!   sees a write.
//! - A take swaps each leaf word once: it gets the dirty bits and their kinds together, so no
//!   mark can fall between a dirty bit and its kind (the hole of the separate discard map that
//!   0.2 had: `an_abort_then_a_take_racing_a_write_is_never_a_discard`).
//! - An abort, per leaf word: one load, then one `fetch_or` of every frozen block's D bit and
//!   of the W bit of the frozen writes whose live D bit was clear. It never clears a W bit, so
//!   a write that raced it, before or after the OR, stays a write; a block marked since the
//!   take keeps its newer kind (up to a discard raced by the merge becoming a write).
//!
//! Every writer, whether it changed its leaf word or found its bits already set (one load), then
//! checks the summary bits above that word and sets any that are clear, so when a mark returns
//! its whole ancestor chain is set (or a concurrent drain has taken the bits). It cannot rely on
//! the writer that made the word non-zero: that one may still be on its way up, and a take that
//! starts after this mark returned would miss a write completed before it. Summary words are
//! read-mostly, so the check is a few loads of cached lines.

use crate::sync::{AtomicU64, Ordering};

/// Most levels a map can have: 64^8 blocks is far above the block-count limit.
pub(crate) const MAX_LEVELS: usize = 8;

/// Word counts and offsets of each level inside one flat array.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    levels: usize,
    len: [usize; MAX_LEVELS],
    start: [usize; MAX_LEVELS],
    total: usize,
}

impl Shape {
    /// The shape for `blocks` tracked blocks (at least 1), 64 per leaf word.
    pub(crate) fn new(blocks: u64) -> Shape {
        Shape::with_leaves(blocks.max(1).div_ceil(64))
    }

    /// The shape over `leaves` leaf words (at least 1).
    pub(crate) fn with_leaves(leaves: u64) -> Shape {
        let mut len = [0usize; MAX_LEVELS];
        let mut start = [0usize; MAX_LEVELS];
        let mut n = leaves.max(1) as usize;
        let mut levels = 0;
        let mut total = 0;
        loop {
            len[levels] = n;
            start[levels] = total;
            total += n;
            levels += 1;
            if n == 1 {
                break;
            }
            n = n.div_ceil(64);
        }
        Shape {
            levels,
            len,
            start,
            total,
        }
    }

    /// Words (all levels) of a map for `blocks` blocks, saturating at `u64::MAX`: total for
    /// every input, unlike [`Shape::new`], which is only for block counts a tracker accepts.
    pub(crate) fn words_for(blocks: u64) -> u64 {
        Shape::words_for_leaves(blocks.max(1).div_ceil(64))
    }

    /// Words (all levels) of a map over `leaves` leaf words, saturating at `u64::MAX`.
    pub(crate) fn words_for_leaves(leaves: u64) -> u64 {
        let mut n = leaves.max(1);
        let mut total = 0u64;
        loop {
            total = total.saturating_add(n);
            if n == 1 {
                return total;
            }
            n = n.div_ceil(64);
        }
    }

    /// Number of words in all levels.
    pub(crate) fn words(&self) -> usize {
        self.total
    }

    #[inline(always)]
    fn at(&self, level: usize, index: usize) -> usize {
        self.start[level] + index
    }

    fn top(&self) -> usize {
        self.levels - 1
    }
}

/// Bits `lo..=hi` (both < 64) of a word.
#[inline(always)]
fn bit_range(lo: u32, hi: u32) -> u64 {
    (u64::MAX >> (63 - hi)) & (u64::MAX << lo)
}

/// Allocates `n` zeroed `u64`-sized words without aborting on failure.
///
/// Untouched zero pages are not resident on Linux, so a large, mostly clean map costs little
/// real memory; `Tracker::memory_usage` still reports the full allocation.
fn zeroed_words<T: ZeroableWord>(n: usize) -> Option<Box<[T]>> {
    T::zeroed_box(n)
}

/// Word types that are valid when all bits are zero.
pub(crate) trait ZeroableWord: Sized {
    fn zeroed_box(n: usize) -> Option<Box<[Self]>>;
}

fn alloc_zeroed_u64_box<T>(n: usize) -> Option<Box<[T]>> {
    use std::alloc::{alloc_zeroed, Layout};
    assert_eq!(std::mem::size_of::<T>(), 8);
    assert_eq!(std::mem::align_of::<T>(), 8);
    if n == 0 {
        return Some(Vec::new().into_boxed_slice());
    }
    let layout = Layout::array::<T>(n).ok()?;
    // SAFETY: `layout` has non-zero size (n > 0 and T is 8 bytes).
    let ptr = unsafe { alloc_zeroed(layout) }.cast::<T>();
    if ptr.is_null() {
        return None;
    }
    // SAFETY: `ptr` is a fresh allocation of `n` elements with `T`'s layout from the global
    // allocator, which is what `Box<[T]>` frees with; every `T` used here (u64, AtomicU64) is
    // valid as all-zero bytes.
    Some(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, n)) })
}

impl ZeroableWord for u64 {
    fn zeroed_box(n: usize) -> Option<Box<[u64]>> {
        alloc_zeroed_u64_box(n)
    }
}

#[cfg(not(loom))]
impl ZeroableWord for AtomicU64 {
    fn zeroed_box(n: usize) -> Option<Box<[AtomicU64]>> {
        // `AtomicU64` has the same in-memory representation as `u64` (documented by std).
        alloc_zeroed_u64_box(n)
    }
}

#[cfg(loom)]
impl ZeroableWord for AtomicU64 {
    fn zeroed_box(n: usize) -> Option<Box<[AtomicU64]>> {
        Some((0..n).map(|_| AtomicU64::new(0)).collect())
    }
}

/// Blocks per live leaf word: the low half holds their dirty bits, the high half their
/// "written" bits (see [`LiveMap`]).
const LIVE_LEAF_BLOCKS: u64 = 32;
/// The dirty half of a live leaf word.
const LOW: u64 = 0xffff_ffff;

/// The live, lock-free dirty set, with its discard state in the same words.
///
/// Each leaf word covers 32 blocks: bit `i` is block `i`'s dirty bit (D), bit `32 + i` its
/// written bit (W). A dirty block is a write when both are set and a discard when only D is.
/// Because one word holds both, a write is a single `fetch_or(D | W)` that takes the block to
/// "written" from every state, and a drain's single `swap(0)` reads dirty and kind together.
pub(crate) struct LiveMap {
    shape: Shape,
    words: Box<[AtomicU64]>,
}

impl LiveMap {
    /// The live map for `blocks` blocks (at least 1).
    pub(crate) fn new(blocks: u64) -> Option<LiveMap> {
        let shape = Shape::with_leaves(Self::leaves(blocks));
        Some(LiveMap {
            shape,
            words: zeroed_words(shape.words())?,
        })
    }

    /// Live leaf words for `blocks` blocks.
    pub(crate) fn leaves(blocks: u64) -> u64 {
        blocks.max(1).div_ceil(LIVE_LEAF_BLOCKS)
    }

    /// Words (all levels) of a live map for `blocks` blocks, saturating (see
    /// [`Shape::words_for`]).
    pub(crate) fn words_for(blocks: u64) -> u64 {
        Shape::words_for_leaves(Self::leaves(blocks))
    }

    /// Marks blocks `first..=last` dirty; of those, `disc_first..=disc_last` (if any, a
    /// sub-range) as discarded, every other one as written. Returns how many were clean.
    ///
    /// Lock-free: per touched leaf word, a load and, only where a bit must change, one
    /// `fetch_or` (a discard also a `fetch_and` of the written bits it covers), then the
    /// summary bits as in [`LiveMap::ensure_ancestors`].
    #[inline]
    pub(crate) fn mark_range(&self, first: u64, last: u64, disc: Option<(u64, u64)>) -> u64 {
        let (fw, lw) = ((first >> 5) as usize, (last >> 5) as usize);
        let mut newly = 0;
        for w in fw..=lw {
            let lo = if w == fw { first as u32 & 31 } else { 0 };
            let hi = if w == lw { last as u32 & 31 } else { 31 };
            let mask = bit_range(lo, hi);
            let dmask = match disc {
                Some((df, dl)) if (df >> 5) as usize <= w && w <= (dl >> 5) as usize => {
                    let dlo = if w == (df >> 5) as usize {
                        df as u32 & 31
                    } else {
                        0
                    };
                    let dhi = if w == (dl >> 5) as usize {
                        dl as u32 & 31
                    } else {
                        31
                    };
                    bit_range(dlo, dhi)
                }
                _ => 0,
            };
            newly += self.mark_word(w, mask, dmask);
        }
        newly
    }

    /// One leaf word of [`LiveMap::mark_range`]: the blocks of `mask` (low half) become dirty,
    /// those of `dmask` (within it) discarded, the rest of `mask` written.
    ///
    /// A write is one `fetch_or(D | W)`: whatever state the block had (clean, written,
    /// discarded by an earlier mark or by an abort's merge), it is "written" right after, in
    /// the word's modification order, so any drain of it from then on reports a write, and
    /// nothing but a later discard can turn it back (an abort's merge only ORs). A discard
    /// ORs its D bits (and the written bits of the partial blocks), then clears its W bits:
    /// a drain between the two sees a write, which is safe.
    #[inline(always)]
    fn mark_word(&self, w: usize, mask: u64, dmask: u64) -> u64 {
        let set = mask | ((mask & !dmask) << 32);
        let clear = dmask << 32;
        let word = &self.words[w];
        let mut cur = word.load(Ordering::Acquire);
        let mut newly = 0;
        if cur & set != set {
            let old = word.fetch_or(set, Ordering::AcqRel);
            newly = u64::from((mask & !old).count_ones());
            cur = old | set;
        }
        if cur & clear != 0 {
            word.fetch_and(!clear, Ordering::AcqRel);
        }
        self.ensure_ancestors(w);
        newly
    }

    /// Merges an aborted checkpoint's 64 blocks from `64 * w` back: dirty bits `bits`, of
    /// which `disc` were discards.
    ///
    /// Per live leaf word, one load and one `fetch_or`: every block's D bit, and the W bit of
    /// its written blocks whose live D bit was clear at the load. A block dirty in the live
    /// map was marked after the take, so its live state (write or discard) is newer and is kept;
    /// a mark racing this merge is either ordered after the OR (and wins, a write by its own
    /// `fetch_or(D | W)`) or before it (then the merge adds at most a W bit: a discard becomes
    /// a write, safe). The merge never clears a W bit, so it never turns a write into a discard.
    pub(crate) fn merge_word(&self, w: usize, bits: u64, disc: u64) {
        for half in 0..2 {
            let d = (bits >> (32 * half)) & LOW;
            if d == 0 {
                continue;
            }
            let written = d & !(disc >> (32 * half));
            let leaf = 2 * w + half;
            let word = &self.words[leaf];
            let live_dirty = word.load(Ordering::Acquire) & LOW;
            word.fetch_or(d | ((written & !live_dirty) << 32), Ordering::AcqRel);
            self.ensure_ancestors(leaf);
        }
    }

    /// Marks the blocks of `bits` in the 64 blocks from `64 * w` as written, whatever their
    /// state (a write's `fetch_or(D | W)` per leaf word): for dirty bits newer than the map's
    /// (an activity log record replayed over the state file's dirty set), never `merge_word`,
    /// which keeps the live kind.
    pub(crate) fn set_word_written(&self, w: usize, bits: u64) {
        for half in 0..2 {
            let mask = (bits >> (32 * half)) & LOW;
            if mask != 0 {
                self.mark_word(2 * w + half, mask, 0);
            }
        }
    }

    /// Sets blocks `first..=last` as written; returns how many of them were clean before. See
    /// [`LiveMap::mark_range`].
    #[inline]
    pub(crate) fn set_range(&self, first: u64, last: u64) -> u64 {
        self.mark_range(first, last, None)
    }

    /// Makes sure every summary bit above leaf word `index` is set before the mark returns: a
    /// load per level, and a read-modify-write only where the bit is clear.
    ///
    /// A writer must not leave this to the writer that made a word non-zero: that one may still
    /// be on its way up, and a take that starts after this mark returned would then miss the
    /// word, although the mark completed before it (`tests/loom_tracker.rs`,
    /// `a_mark_completed_before_a_take_is_in_it_*`). A bit set here over a word a concurrent
    /// drain has just emptied is only a stale summary bit: the next drain looks at a zero word.
    #[inline(always)]
    fn ensure_ancestors(&self, index: usize) {
        // The common case, all set: independent loads the CPU overlaps, one branch.
        let (mut i, mut missing) = (index, false);
        for &start in &self.shape.start[1..self.shape.levels] {
            let bit = 1u64 << (i & 63);
            i >>= 6;
            missing |= self.words[start + i].load(Ordering::Acquire) & bit == 0;
        }
        if missing {
            self.set_ancestors(index);
        }
    }

    /// The summary bits above leaf word `index`, each set where a load finds it clear.
    #[cold]
    fn set_ancestors(&self, mut index: usize) {
        for &start in &self.shape.start[1..self.shape.levels] {
            let parent = &self.words[start + (index >> 6)];
            let bit = 1u64 << (index & 63);
            if parent.load(Ordering::Acquire) & bit == 0 {
                parent.fetch_or(bit, Ordering::AcqRel);
            }
            index >>= 6;
        }
    }

    /// Clears blocks from `first` to the end of the map (a shrink). Summary bits are left as
    /// they are: a stale summary bit only costs the next drain one look at a zero word.
    pub(crate) fn clear_from(&self, first: u64) {
        let fw = (first >> 5) as usize;
        let n = self.shape.len[0];
        if fw >= n {
            return;
        }
        let keep = (1u64 << (first & 31)) - 1;
        self.words[fw].fetch_and(keep | (keep << 32), Ordering::AcqRel);
        for w in &self.words[fw + 1..n] {
            w.swap(0, Ordering::AcqRel);
        }
    }

    /// Moves every set bit into `into` (top-down swaps), dropping blocks at or past
    /// `end_block` (left by writes that raced a shrink). Leaf words are visited in ascending
    /// order, so the drain also counts what it moved: see [`Drained`].
    pub(crate) fn drain_into(&self, into: &mut FrozenMap, end_block: u64) -> Drained {
        let mut d = Drained {
            end_block,
            ..Drained::default()
        };
        self.drain_word(self.shape.top(), 0, into, &mut d);
        d.flush(into);
        d
    }

    fn drain_word(&self, level: usize, index: usize, into: &mut FrozenMap, d: &mut Drained) {
        let word = &self.words[self.shape.at(level, index)];
        if word.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut bits = word.swap(0, Ordering::AcqRel);
        if level == 0 {
            // One swap: the dirty bits and their kinds together.
            let dirty = bits & LOW;
            let disc = dirty & !(bits >> 32);
            d.add_half(index, dirty, disc, into);
            return;
        }
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            self.drain_word(level - 1, (index << 6) | b, into, d);
        }
    }
}

impl LiveMap {
    /// Calls `f(w, dirty, discard)` for every 64-block word `w` holding a dirty block, in
    /// ascending order: the dirty bits of blocks `64 * w ..` and the discards among them. Reads
    /// with loads only (nothing is drained or cleared): exact when no mark runs concurrently
    /// (a state save at shutdown), otherwise a mark that races it may or may not be seen.
    /// Costs time in proportion to the words the summaries point at, not the disk.
    pub(crate) fn for_each_dirty_word(&self, mut f: impl FnMut(usize, u64, u64)) {
        let mut pending: Option<(usize, u64, u64)> = None;
        self.visit_leaves(self.shape.top(), 0, &mut |leaf, bits| {
            let dirty = bits & LOW;
            if dirty == 0 {
                return;
            }
            let disc = dirty & !(bits >> 32);
            let (w, shift) = (leaf >> 1, 32 * (leaf & 1));
            match &mut pending {
                Some((pw, d, dc)) if *pw == w => {
                    *d |= dirty << shift;
                    *dc |= disc << shift;
                }
                _ => {
                    if let Some((pw, d, dc)) = pending.take() {
                        f(pw, d, dc);
                    }
                    pending = Some((w, dirty << shift, disc << shift));
                }
            }
        });
        if let Some((pw, d, dc)) = pending {
            f(pw, d, dc);
        }
    }

    fn visit_leaves(&self, level: usize, index: usize, f: &mut impl FnMut(usize, u64)) {
        let mut bits = self.words[self.shape.at(level, index)].load(Ordering::Acquire);
        if level == 0 {
            f(index, bits);
            return;
        }
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let child = (index << 6) | b;
            if child < self.shape.len[level - 1] {
                self.visit_leaves(level - 1, child, f);
            }
        }
    }
}

/// What a drain moved into a frozen map: blocks, and maximal runs of consecutive blocks of the
/// same kind (write or discard).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Drained {
    end_block: u64,
    pub(crate) blocks: u64,
    pub(crate) runs: u64,
    /// The last non-empty leaf word added (dirty and discard bits), to join runs across word
    /// boundaries.
    prev: Option<(usize, u64, u64)>,
    /// The frozen leaf word being assembled from live leaf words (32 blocks each).
    pending: Option<(usize, u64, u64)>,
}

impl Drained {
    /// Adds live leaf word `live_index` (dirty bits and discard bits in the low 32 bits).
    /// Live leaves arrive in ascending order; two make one frozen leaf word.
    fn add_half(&mut self, live_index: usize, dirty: u64, disc: u64, into: &mut FrozenMap) {
        let index = live_index >> 1;
        let shift = 32 * (live_index & 1);
        match &mut self.pending {
            Some((i, b, dc)) if *i == index => {
                *b |= dirty << shift;
                *dc |= disc << shift;
            }
            _ => {
                self.flush(into);
                self.pending = Some((index, dirty << shift, disc << shift));
            }
        }
    }

    /// Adds the frozen leaf word being assembled, if any.
    fn flush(&mut self, into: &mut FrozenMap) {
        if let Some((index, bits, disc)) = self.pending.take() {
            self.add(index, bits, disc, into);
        }
    }

    fn add(&mut self, index: usize, mut bits: u64, disc: u64, into: &mut FrozenMap) {
        let first = (index as u64) << 6;
        if first >= self.end_block {
            return;
        }
        if self.end_block - first < 64 {
            bits &= (1u64 << (self.end_block - first)) - 1;
        }
        if bits == 0 {
            return;
        }
        let disc = disc & bits;
        into.or_word(index, bits);
        into.discard[index] |= disc;
        self.blocks += u64::from(bits.count_ones());
        // The lower neighbour of each bit (bit 0's is bit 63 of the previous word, if adjacent).
        let (carry_bits, carry_disc) = match self.prev {
            Some((pw, pb, pd)) if pw + 1 == index => (pb >> 63, pd >> 63),
            _ => (0, 0),
        };
        let below = (bits << 1) | carry_bits;
        let below_disc = (disc << 1) | carry_disc;
        // A run starts at every set bit whose lower neighbour is clear or of the other kind.
        let continues = below & !(disc ^ below_disc);
        self.runs += u64::from((bits & !continues).count_ones());
        self.prev = Some((index, bits, disc));
    }
}

/// A plain (single-owner) dirty set with exact summaries: the taken checkpoint, with its
/// discard bits (leaf words only, always a subset of the dirty bits).
pub(crate) struct FrozenMap {
    shape: Shape,
    words: Box<[u64]>,
    discard: Box<[u64]>,
}

impl FrozenMap {
    /// Writes every page of the map once (see [`LiveMap::prefault`]). The slices pass through
    /// `black_box` first, so that the compiler cannot prove the zeros already there and drop
    /// the writes.
    pub(crate) fn prefault(&mut self) {
        for words in [&mut self.words, &mut self.discard] {
            let words = std::hint::black_box(&mut words[..]);
            for i in (0..words.len()).step_by(WORDS_PER_PAGE) {
                words[i] = 0;
            }
        }
    }

    pub(crate) fn new(shape: Shape) -> Option<FrozenMap> {
        Some(FrozenMap {
            shape,
            words: zeroed_words(shape.words())?,
            discard: zeroed_words(shape.len[0])?,
        })
    }

    /// Whether block `b` (a set block) was discarded rather than written.
    pub(crate) fn is_discard(&self, b: u64) -> bool {
        self.discard.get((b >> 6) as usize).copied().unwrap_or(0) & (1 << (b & 63)) != 0
    }

    /// The first block in `pos..limit` whose discard bit differs from `discard`, or `limit`.
    /// Within a dirty run (`limit` = the run's end) this is where the run's kind changes. Costs
    /// time in proportion to the words of `pos..limit`, never the rest of the map.
    pub(crate) fn next_kind_change(&self, pos: u64, limit: u64, discard: bool) -> u64 {
        if pos >= limit {
            return limit;
        }
        let flip = if discard { u64::MAX } else { 0 };
        let last = ((limit - 1) >> 6) as usize;
        let mut w = (pos >> 6) as usize;
        if w >= self.discard.len() {
            return pos;
        }
        let mut bits = (self.discard[w] ^ flip) & (u64::MAX << (pos & 63));
        while bits == 0 {
            w += 1;
            if w > last || w >= self.discard.len() {
                return limit.min((w as u64) << 6);
            }
            bits = self.discard[w] ^ flip;
        }
        limit.min(((w as u64) << 6) | u64::from(bits.trailing_zeros()))
    }

    /// Discard bits of leaf word `index`.
    pub(crate) fn discard_leaf(&self, index: usize) -> u64 {
        self.discard.get(index).copied().unwrap_or(0)
    }

    /// ORs `bits` into leaf word `index`; returns how many bits were newly set.
    pub(crate) fn or_word(&mut self, index: usize, bits: u64) -> u64 {
        let slot = &mut self.words[index];
        let old = *slot;
        *slot |= bits;
        if old == 0 && bits != 0 {
            let mut i = index;
            for level in 1..self.shape.levels {
                let p = &mut self.words[self.shape.at(level, i >> 6)];
                let was = *p;
                *p |= 1 << (i & 63);
                if was != 0 {
                    break;
                }
                i >>= 6;
            }
        }
        u64::from((bits & !old).count_ones())
    }

    /// Leaf word `index`.
    pub(crate) fn leaf(&self, index: usize) -> u64 {
        self.words.get(index).copied().unwrap_or(0)
    }

    /// The first set block at or after `pos`, if any.
    pub(crate) fn next_set(&self, pos: u64) -> Option<u64> {
        let mut level = 0;
        let mut idx = pos;
        // Climb until a word at some level has a set bit at or after `idx`.
        let found = loop {
            if level == self.shape.levels {
                return None;
            }
            let w = (idx >> 6) as usize;
            if w >= self.shape.len[level] {
                return None;
            }
            let bits = self.words[self.shape.at(level, w)] & (u64::MAX << (idx & 63));
            if bits != 0 {
                break ((w as u64) << 6) | u64::from(bits.trailing_zeros());
            }
            idx = w as u64 + 1;
            level += 1;
        };
        // Descend: summaries are exact, so every word reached here is non-zero.
        let mut idx = found;
        while level > 0 {
            level -= 1;
            let bits = self.words[self.shape.at(level, idx as usize)];
            debug_assert_ne!(bits, 0, "frozen summary bit without a set child");
            idx = (idx << 6) | u64::from(bits.trailing_zeros());
        }
        Some(idx)
    }

    /// The first clear block at or after `pos` (may be past the end of the map).
    pub(crate) fn next_clear(&self, pos: u64) -> u64 {
        let mut w = (pos >> 6) as usize;
        let mut bits = !self.leaf(w) & (u64::MAX << (pos & 63));
        while bits == 0 {
            w += 1;
            if w >= self.shape.len[0] {
                return (w as u64) << 6;
            }
            bits = !self.words[w];
        }
        ((w as u64) << 6) | u64::from(bits.trailing_zeros())
    }

    /// Clears everything, top-down, in time proportional to the set words.
    pub(crate) fn clear(&mut self) {
        let top = self.shape.top();
        self.clear_word(top, 0);
    }

    fn clear_word(&mut self, level: usize, index: usize) {
        let at = self.shape.at(level, index);
        let mut bits = std::mem::take(&mut self.words[at]);
        if level == 0 {
            self.discard[index] = 0;
            return;
        }
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            self.clear_word(level - 1, (index << 6) | b);
        }
    }

    /// Calls `f(index, bits)` for every non-zero leaf word, in ascending order.
    pub(crate) fn for_each_word(&self, mut f: impl FnMut(usize, u64)) {
        let mut pos = 0u64;
        while let Some(b) = self.next_set(pos) {
            let w = (b >> 6) as usize;
            f(w, self.words[w]);
            pos = ((w as u64) + 1) << 6;
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn shape_levels() {
        assert_eq!(Shape::new(1).levels, 1);
        assert_eq!(Shape::new(64).levels, 1);
        assert_eq!(Shape::new(65).levels, 2);
        assert_eq!(Shape::new(64 * 64).levels, 2);
        assert_eq!(Shape::new(64 * 64 + 1).levels, 3);
        let s = Shape::new(1 << 26);
        assert_eq!(s.levels, 5);
        assert_eq!(s.words(), (1 << 20) + (1 << 14) + (1 << 8) + 4 + 1);
    }

    #[test]
    fn drain_iterate_clear() {
        let shape = Shape::new(300_000);
        let live = LiveMap::new(300_000).unwrap();
        let mut frozen = FrozenMap::new(shape).unwrap();
        assert_eq!(live.set_range(5, 5), 1);
        assert_eq!(live.set_range(5, 5), 0);
        assert_eq!(live.set_range(60, 200), 141);
        assert_eq!(live.set_range(299_999, 299_999), 1);
        let d = live.drain_into(&mut frozen, 300_000);
        assert_eq!((d.blocks, d.runs), (143, 3));
        assert!(!frozen.is_discard(5));
        let again = live.drain_into(&mut frozen, 300_000);
        assert_eq!(again.blocks, 0, "live map is empty after a drain");
        assert_eq!(frozen.next_set(0), Some(5));
        assert_eq!(frozen.next_clear(5), 6);
        assert_eq!(frozen.next_set(6), Some(60));
        assert_eq!(frozen.next_clear(60), 201);
        assert_eq!(frozen.next_set(201), Some(299_999));
        assert_eq!(frozen.next_set(300_000), None);
        // Blocks at or past the end are dropped by the drain.
        frozen.clear();
        live.set_range(250_000, 299_999);
        let d = live.drain_into(&mut frozen, 260_000);
        assert_eq!((d.blocks, d.runs), (10_000, 1));
        assert_eq!(frozen.next_clear(250_000), 260_000);
        frozen.clear();
        assert_eq!(frozen.next_set(0), None);
        assert!(
            frozen.words.iter().all(|&w| w == 0),
            "clear leaves no stale summary bit"
        );
    }
}

#[cfg(all(test, not(loom)))]
mod snapshot_tests {
    use super::*;

    #[test]
    fn a_snapshot_pairs_live_halves_keeps_kinds_and_drains_nothing() {
        let live = LiveMap::new(300_000).unwrap();
        live.mark_range(3, 3, None);
        live.mark_range(40, 100, Some((40, 100)));
        live.mark_range(70, 70, None);
        live.mark_range(299_999, 299_999, None);
        let mut words = Vec::new();
        live.for_each_dirty_word(|w, d, disc| words.push((w, d, disc)));
        let bits = |lo: u32, hi: u32| bit_range(lo, hi);
        assert_eq!(
            words,
            vec![
                (0, (1 << 3) | bits(40, 63), bits(40, 63)),
                (1, bits(0, 36), bits(0, 36) & !(1 << 6)),
                (299_999 / 64, 1 << (299_999 % 64), 0),
            ]
        );
        // Loads only: a take still gets everything.
        let mut frozen = FrozenMap::new(Shape::new(300_000)).unwrap();
        assert_eq!(live.drain_into(&mut frozen, 300_000).blocks, 63);
        let mut after = Vec::new();
        live.for_each_dirty_word(|w, d, disc| after.push((w, d, disc)));
        assert!(
            after.is_empty(),
            "stale summary bits are skipped: {after:?}"
        );
        // Restoring the snapshot into an empty map gives the same snapshot back.
        let restored = LiveMap::new(300_000).unwrap();
        for &(w, d, disc) in &words {
            restored.merge_word(w, d, disc);
        }
        let mut again = Vec::new();
        restored.for_each_dirty_word(|w, d, disc| again.push((w, d, disc)));
        assert_eq!(again, words);
    }
}

#[cfg(all(test, not(loom)))]
mod discard_tests {
    use super::*;

    #[test]
    fn discard_bits_survive_a_drain_and_split_runs_by_kind() {
        let shape = Shape::new(1000);
        let live = LiveMap::new(1000).unwrap();
        let mut frozen = FrozenMap::new(shape).unwrap();
        live.mark_range(10, 20, None);
        live.mark_range(21, 70, Some((21, 70)));
        live.mark_range(71, 71, None);
        // A later write turns a discarded block back into a write.
        live.mark_range(30, 30, None);
        let d = live.drain_into(&mut frozen, 1000);
        // 10..=20 W, 21..=29 D, 30 W, 31..=70 D, 71 W.
        assert_eq!((d.blocks, d.runs), (62, 5));
        assert!(!frozen.is_discard(20) && frozen.is_discard(21) && frozen.is_discard(29));
        assert!(!frozen.is_discard(30) && frozen.is_discard(63) && frozen.is_discard(64));
        assert_eq!(frozen.next_kind_change(21, 72, true), 30);
        assert_eq!(frozen.next_kind_change(31, 72, true), 71);
        assert_eq!(frozen.next_kind_change(10, 21, false), 21);
        // A write run stops at its limit, without looking at the rest of the map.
        assert_eq!(frozen.next_kind_change(71, 72, false), 72);
        assert_eq!(frozen.next_kind_change(10, 15, false), 15);
        assert_eq!(frozen.next_kind_change(40, 40, true), 40);
        assert!(live.words.iter().all(|w| w.load(Ordering::Relaxed) == 0));
        // Abort: merged back where no later mark touched the block.
        live.mark_range(40, 40, None);
        frozen.for_each_word(|w, bits| live.merge_word(w, bits, frozen.discard_leaf(w)));
        frozen.clear();
        assert!(frozen.discard.iter().all(|&w| w == 0));
        let d = live.drain_into(&mut frozen, 1000);
        assert_eq!(d.blocks, 62);
        assert!(frozen.is_discard(39) && !frozen.is_discard(40) && frozen.is_discard(41));
    }
}

/// Words per 4 KiB page: writing one word per page makes the page resident.
const WORDS_PER_PAGE: usize = 4096 / 8;

impl LiveMap {
    /// Writes every page of the map once (before anyone else can see it), so that no mark
    /// takes a page fault on a page it is the first to touch.
    pub(crate) fn prefault(&self) {
        #[cfg(not(loom))]
        for w in self.words.iter().step_by(WORDS_PER_PAGE) {
            w.store(0, Ordering::Relaxed);
        }
    }

    /// The dirty bits of 64-block word `w` (both live leaf words' dirty halves), by loads: a
    /// mark racing it may or may not be seen. Blocks past the map read as clean.
    pub(crate) fn dirty_word(&self, w: usize) -> u64 {
        let leaf = |i: usize| {
            if i < self.shape.len[0] {
                self.words[i].load(Ordering::Acquire) & LOW
            } else {
                0
            }
        };
        leaf(2 * w) | (leaf(2 * w + 1) << 32)
    }
}
