//! The two hierarchical bitmaps behind a tracker.
//!
//! [`LiveMap`] is the atomic, lock-free set that `mark_write` sets bits in. [`FrozenMap`] is the
//! plain set a checkpoint is drained into and read from. Both have the same shape: level 0 holds
//! one bit per tracked block; every higher level holds one bit per word of the level below,
//! meaning "that word may be non-zero" (for the live map) or "that word is non-zero" (exact, for
//! the frozen map). The top level is a single word. Walking from the top visits only words that
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
    /// The shape for `blocks` tracked blocks (at least 1).
    pub(crate) fn new(blocks: u64) -> Shape {
        let mut len = [0usize; MAX_LEVELS];
        let mut start = [0usize; MAX_LEVELS];
        let mut n = blocks.max(1).div_ceil(64) as usize;
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
        let mut n = blocks.max(1).div_ceil(64);
        let mut total = 0u64;
        loop {
            total = total.saturating_add(n);
            if n == 1 {
                return total;
            }
            n = n.div_ceil(64);
        }
    }

    /// Bytes taken by one map of this shape.
    pub(crate) fn bytes(&self) -> usize {
        self.total * 8
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

/// The live, lock-free dirty set.
pub(crate) struct LiveMap {
    shape: Shape,
    words: Box<[AtomicU64]>,
}

impl LiveMap {
    pub(crate) fn new(shape: Shape) -> Option<LiveMap> {
        Some(LiveMap {
            shape,
            words: zeroed_words(shape.words())?,
        })
    }

    /// Sets blocks `first..=last`; returns how many of them were clean before.
    ///
    /// Lock-free: per touched word, one load and at most one read-modify-write, then one load per
    /// summary level (a read-modify-write only where a summary bit is clear). Never allocates,
    /// never blocks.
    #[inline]
    pub(crate) fn set_range(&self, first: u64, last: u64) -> u64 {
        let (fw, lw) = ((first >> 6) as usize, (last >> 6) as usize);
        if fw == lw {
            return self.set_word(fw, bit_range(first as u32 & 63, last as u32 & 63));
        }
        let mut newly = self.set_word(fw, u64::MAX << (first & 63));
        for w in fw + 1..lw {
            newly += self.set_word(w, u64::MAX);
        }
        newly + self.set_word(lw, u64::MAX >> (63 - (last & 63)))
    }

    /// ORs `mask` into leaf word `w`; returns the number of bits that were newly set.
    #[inline(always)]
    pub(crate) fn set_word(&self, w: usize, mask: u64) -> u64 {
        let word = &self.words[w];
        let newly = if word.load(Ordering::Acquire) & mask == mask {
            0
        } else {
            let old = word.fetch_or(mask, Ordering::AcqRel);
            u64::from((mask & !old).count_ones())
        };
        self.ensure_ancestors(w);
        newly
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

    /// Clears leaf bits from block `first` to the end of the map (a shrink). Summary bits are
    /// left as they are: a stale summary bit only costs the next drain one look at a zero word.
    pub(crate) fn clear_from(&self, first: u64) {
        let fw = (first >> 6) as usize;
        let n = self.shape.len[0];
        if fw >= n {
            return;
        }
        let keep = (1u64 << (first & 63)) - 1;
        self.words[fw].fetch_and(keep, Ordering::AcqRel);
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
        d
    }

    fn drain_word(&self, level: usize, index: usize, into: &mut FrozenMap, d: &mut Drained) {
        let word = &self.words[self.shape.at(level, index)];
        if word.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut bits = word.swap(0, Ordering::AcqRel);
        if level == 0 {
            d.add(index, bits, into);
            return;
        }
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            self.drain_word(level - 1, (index << 6) | b, into, d);
        }
    }
}

/// What a drain moved into a frozen map: blocks, and maximal runs of consecutive blocks.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Drained {
    end_block: u64,
    pub(crate) blocks: u64,
    pub(crate) runs: u64,
    /// The last non-empty leaf word added, to join runs across word boundaries.
    prev: Option<(usize, u64)>,
}

impl Drained {
    fn add(&mut self, index: usize, mut bits: u64, into: &mut FrozenMap) {
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
        into.or_word(index, bits);
        self.blocks += u64::from(bits.count_ones());
        // A run starts at every set bit whose lower neighbour is clear...
        self.runs += u64::from((bits & !(bits << 1)).count_ones());
        // ...except bit 0 continuing a run from the previous word.
        if bits & 1 != 0 && matches!(self.prev, Some((pw, pb)) if pw + 1 == index && pb >> 63 != 0)
        {
            self.runs -= 1;
        }
        self.prev = Some((index, bits));
    }
}

/// A plain (single-owner) dirty set with exact summaries: the taken checkpoint.
pub(crate) struct FrozenMap {
    shape: Shape,
    words: Box<[u64]>,
}

impl FrozenMap {
    pub(crate) fn new(shape: Shape) -> Option<FrozenMap> {
        Some(FrozenMap {
            shape,
            words: zeroed_words(shape.words())?,
        })
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
        let live = LiveMap::new(shape).unwrap();
        let mut frozen = FrozenMap::new(shape).unwrap();
        assert_eq!(live.set_range(5, 5), 1);
        assert_eq!(live.set_range(5, 5), 0);
        assert_eq!(live.set_range(60, 200), 141);
        assert_eq!(live.set_range(299_999, 299_999), 1);
        let d = live.drain_into(&mut frozen, 300_000);
        assert_eq!((d.blocks, d.runs), (143, 3));
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
