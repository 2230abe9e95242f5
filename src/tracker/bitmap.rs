//! The hierarchical bitmaps behind a tracker.
//!
//! A tracker has two [`LiveMap`]s: writers mark in one (atomic, lock-free), and a take makes
//! the other one live and reads the old one in place as the checkpoint ([`FrozenMap`], a view
//! of a map no one marks in any more; `epoch.rs` has the switch and the wait for marks in
//! progress). Level 0 holds 32 blocks per word, their dirty bits in the low half and their
//! kinds (written bits) in the high half; every higher level holds one bit per word of the
//! level below, meaning "that word is non-zero" (once every mark in progress has returned; a
//! shrink may leave a bit over a zero word, which the take clears). The top level is a single
//! word. Walking from the top visits only words that hold dirty bits, so taking, iterating and
//! clearing cost time in proportion to the dirty blocks, not to the disk size (the idea of
//! QEMU's `hbitmap`).
//!
//! ## Speed on large disks
//! On a large, sparsely dirty disk every dirty word is a cache miss and, with 4 KiB pages, a
//! TLB miss. So the take's walk ([`LiveMap::settle`]) and the reader ([`Scout`]) start loading
//! the words below a summary word before they read them, except where one summary word has
//! many leaves under it, which share a few lines that the hardware prefetcher brings in.
//! Extents come out of masks of the first and last block of every run
//! ([`FrozenMap::runs_from`]), a leaf word at a time, or two at a time as one 64-block mask
//! where at least half the map's leaf words hold dirty blocks. Maps made resident are backed
//! by huge pages where the kernel has them. A mark of one leaf word takes a path without loop
//! or discard mask ([`LiveMap::mark_range`]).
//!
//! ## The concurrency protocol (model-checked in `tests/loom_tracker.rs`)
//! A take reads a map only after every mark in progress in it has returned (`epoch.rs`), and
//! the map is never cleared while writers mark in it. So a writer needs to make sure of only
//! one thing: that a word it made non-zero has its bit set in the level above, and so on up.
//! A writer whose `fetch_or` finds the word already non-zero is done (the writer that made it
//! non-zero sets the chain, and the take waits for that writer if it is still on its way up);
//! a rewrite of a dirty block is one load. A writer climbing the summaries stops at the first
//! summary word that was already non-zero ([`LiveMap::raise`]). A mark that returned before a
//! take started is in that take; a mark that races it is in that take or the next.
//!
//! ## Discard state (model-checked in `tests/loom_tracker.rs`, `*discard*`, `*abort*`)
//! Each leaf word keeps each block's kind beside its dirty bit: a live leaf word covers 32
//! blocks, the low half their dirty bits (D), the high half their "written" bits (W). A dirty
//! block is a write with W set and a discard without. The rules below may let a discard be
//! reported as a write (conservative: the block's data is read and shipped), never a write as a
//! discard (which would lose the write on the replica).
//! - A write is one `fetch_or(D | W)` (after a load that skips it when both are set): from
//!   every state the block is "written" right after it in the word's modification order, so
//!   every take from then on reports a write, until a later discard.
//! - A discard ORs its D bits (with the W bits of the partial blocks at its ends, which are
//!   writes), then clears the W bits of the whole blocks it covers. Both happen before its
//!   mark returns, so a take (which waits for it) sees both or, for a mark in the next map,
//!   neither.
//! - An abort merges the taken map into the live one while writers mark it, per leaf word:
//!   one load, then one `fetch_or` of every taken block's D bit and of the W bit of the taken
//!   writes whose live D bit was clear. It never clears a W bit, so a write that raced it,
//!   before or after the OR, stays a write; a block marked since the take keeps its newer kind
//!   (up to a discard raced by the merge becoming a write).

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
    #[cfg(test)]
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
/// "written" from every state, and a take reads dirty and kind together in one word.
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

    /// Words (all levels) of a live map for `blocks` blocks, saturating at `u64::MAX`: total
    /// for every input, unlike [`LiveMap::new`], which is only for block counts a tracker
    /// accepts.
    pub(crate) fn words_for(blocks: u64) -> u64 {
        Shape::words_for_leaves(Self::leaves(blocks))
    }

    /// Marks blocks `first..=last` dirty; of those, `disc_first..=disc_last` (if any, a
    /// sub-range) as discarded, every other one as written. Returns how many were clean.
    ///
    /// Lock-free: per touched leaf word, a load and, only where a bit must change, one
    /// `fetch_or` (a discard also a `fetch_and` of the written bits it covers), then the
    /// summary bits above a word this mark made non-zero ([`LiveMap::raise`]).
    #[inline(always)]
    pub(crate) fn mark_range(&self, first: u64, last: u64, disc: Option<(u64, u64)>) -> u64 {
        let (df, dl) = disc.unwrap_or(NO_DISCARD);
        self.mark_span(first, last, df, dl)
    }

    /// [`LiveMap::mark_range`] with the discarded blocks as `df..=dl`, none if `df > dl`
    /// ([`NO_DISCARD`]): two values in registers, not an `Option` in memory (which the write
    /// path would store and load again around the writer's fence).
    #[inline(always)]
    pub(crate) fn mark_span(&self, first: u64, last: u64, df: u64, dl: u64) -> u64 {
        if df > dl && first == last {
            // The most common case, a write of one block.
            return self.mark_word((first >> 5) as usize, 1 << (first & 31), 0);
        }
        if df > dl && first >> 5 == last >> 5 {
            // A write within one leaf word: no loop, no discard mask.
            return self.mark_word(
                (first >> 5) as usize,
                bit_range(first as u32 & 31, last as u32 & 31),
                0,
            );
        }
        self.mark_words(first, last, df, dl)
    }

    /// [`LiveMap::mark_range`] in general: any number of leaf words, discards.
    #[inline(never)]
    fn mark_words(&self, first: u64, last: u64, df: u64, dl: u64) -> u64 {
        let disc = (df <= dl).then_some((df, dl));
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
    /// the word's modification order, so any take of it from then on reports a write, and
    /// nothing but a later discard can turn it back (an abort's merge only ORs). A discard
    /// ORs its D bits (and the written bits of the partial blocks), then clears its W bits:
    /// both happen before the mark returns, and a take waits for it.
    #[inline(always)]
    fn mark_word(&self, w: usize, mask: u64, dmask: u64) -> u64 {
        let set = mask | ((mask & !dmask) << 32);
        let clear = dmask << 32;
        let word = &self.words[w];
        let mut cur = word.load(Ordering::Relaxed);
        let mut newly = 0;
        if cur & set != set {
            let old = word.fetch_or(set, Ordering::Relaxed);
            newly = u64::from((mask & !old).count_ones());
            if old == 0 {
                self.raise(w);
            }
            cur = old | set;
        }
        if cur & clear != 0 {
            word.fetch_and(!clear, Ordering::Relaxed);
        }
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
            let shift = 32 * half;
            self.merge_leaf(2 * w + half, (bits >> shift) & LOW, (disc >> shift) & LOW);
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

    /// [`LiveMap::merge_word`] for the 32 blocks of live leaf word `leaf`: dirty bits `d`, of
    /// which `disc` were discards (both in the low half).
    pub(crate) fn merge_leaf(&self, leaf: usize, d: u64, disc: u64) {
        if d == 0 {
            return;
        }
        let written = d & !disc;
        let word = &self.words[leaf];
        let live_dirty = word.load(Ordering::Relaxed) & LOW;
        if word.fetch_or(d | ((written & !live_dirty) << 32), Ordering::Relaxed) == 0 {
            self.raise(leaf);
        }
    }

    /// Sets blocks `first..=last` as written; returns how many of them were clean before. See
    /// [`LiveMap::mark_range`].
    #[inline]
    pub(crate) fn set_range(&self, first: u64, last: u64) -> u64 {
        self.mark_range(first, last, None)
    }

    /// Sets the summary bits above leaf word `index`, which this writer made non-zero: at each
    /// level one `fetch_or`, going on up only while it was the one that made the summary word
    /// non-zero.
    ///
    /// Where a word was already non-zero, the writer that made it so sets (or has set) the
    /// bits above it. That writer may still be on its way up when this mark returns, but no
    /// take reads the map before it is done: a take waits for every writer still marking in
    /// the map it takes (see [`super::epoch`]), so that every non-zero word it finds has its
    /// whole chain of summary bits set. A stale summary bit (over a word a shrink cleared)
    /// also stops the climb: the word above it is non-zero, so its own chain was set.
    #[inline(never)]
    fn raise(&self, mut index: usize) {
        for &start in &self.shape.start[1..self.shape.levels] {
            let bit = 1u64 << (index & 63);
            index >>= 6;
            if self.words[start + index].fetch_or(bit, Ordering::Relaxed) != 0 {
                return;
            }
        }
    }

    /// Clears blocks from `first` to the end of the map (a shrink). Summary bits are left as
    /// they are: a stale summary bit only costs the next take one look at a zero word, which it
    /// clears ([`LiveMap::settle`]).
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

    /// The take's walk of a map no one marks in any more (its writers were waited for, see
    /// [`super::epoch`]; the caller is its only user): drops the blocks at or past `end_block`
    /// (left by writes that raced a shrink), clears every summary bit over a word left zero
    /// (a shrink's, or one past the map), so that the summaries are exact as the reader needs
    /// them, and counts what is left ([`Held`]). Loads, and stores only where something
    /// changes; time in proportion to the words the summaries point at, not the disk.
    ///
    /// A sparse take's non-zero leaves also go into `list` as (index, word) pairs, in
    /// ascending order, while they fit ([`list_words`]): the reader then reads them front to
    /// back instead of finding each through the summaries again (on a disk of tens of TiB,
    /// another cache and TLB miss per leaf).
    pub(crate) fn settle(&self, end_block: u64, list: &mut [u64]) -> Held {
        #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
        if std::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU has the one feature the callee is compiled for (checked above).
            return unsafe { self.settle_popcnt(end_block, list) };
        }
        self.settle_any(end_block, list)
    }

    /// [`LiveMap::settle`] compiled with the `popcnt` instruction (it counts the blocks and
    /// runs of every word: without it, each count is a dozen instructions).
    ///
    /// # Safety
    /// The CPU must have `popcnt`.
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    #[target_feature(enable = "popcnt")]
    unsafe fn settle_popcnt(&self, end_block: u64, list: &mut [u64]) -> Held {
        self.settle_any(end_block, list)
    }

    #[inline(always)]
    fn load(&self, i: usize) -> u64 {
        self.words[i].load(Ordering::Relaxed)
    }

    #[inline(always)]
    fn settle_any(&self, end_block: u64, list: &mut [u64]) -> Held {
        let mut count = RunCount {
            out: Held::default(),
            prev: (0, 0, 0),
            list,
            over: false,
        };
        let top = self.shape.top();
        match top {
            0 => {
                self.settle_leaf(0, end_block, &mut count);
            }
            1 => {
                self.settle_group(0, self.load(self.shape.at(1, 0)), end_block, &mut count);
            }
            2 => {
                self.settle_super(0, end_block, &mut count);
            }
            _ => self.settle_above(top, end_block, &mut count),
        }
        count.out.listed = !count.over;
        count.out
    }

    /// [`LiveMap::settle`] from the top, level 3 or above: depth first, without recursion (so
    /// that all of it is compiled into `settle_popcnt`), down to level 3, whose children are
    /// level-2 words ([`LiveMap::settle_super`]). At each level the word's index, its bits not
    /// yet visited, and the bits of its children found non-zero (the word's exact value,
    /// stored when it is done).
    #[inline(always)]
    fn settle_above(&self, top: usize, end_block: u64, count: &mut RunCount<'_>) {
        let mut index = [0usize; MAX_LEVELS];
        let mut rest = [0u64; MAX_LEVELS];
        let mut kept = [0u64; MAX_LEVELS];
        let mut level = top;
        rest[top] = self.load(self.shape.at(top, 0));
        loop {
            if rest[level] == 0 {
                let at = self.shape.at(level, index[level]);
                if self.load(at) != kept[level] {
                    self.words[at].store(kept[level], Ordering::Relaxed);
                }
                if level == top {
                    break;
                }
                let (nonzero, me) = (kept[level] != 0, index[level]);
                level += 1;
                kept[level] |= u64::from(nonzero) << (me & 63);
                continue;
            }
            let child = (index[level] << 6) | rest[level].trailing_zeros() as usize;
            rest[level] &= rest[level] - 1;
            if child >= self.shape.len[level - 1] {
                continue;
            }
            if level == 3 {
                if self.settle_super(child, end_block, count) {
                    kept[3] |= 1 << (child & 63);
                }
                continue;
            }
            level -= 1;
            index[level] = child;
            kept[level] = 0;
            rest[level] = self.load(self.shape.at(level, child));
        }
    }

    /// [`LiveMap::settle`] for level-2 word `s` and everything under it; whether it is
    /// non-zero after. Its level-1 words are loaded together, and the leaves of each sparse
    /// one prefetched [`GROUP_QUEUE`] groups before they are read: on a large, sparse map each
    /// of those is a cache miss, and these overlap instead of coming one at a time (a dense
    /// group's leaves share a few lines, which the hardware prefetcher brings in).
    #[inline(always)]
    fn settle_super(&self, s: usize, end_block: u64, count: &mut RunCount<'_>) -> bool {
        let at = self.shape.at(2, s);
        let bits = self.load(at);
        let mut b = bits;
        while b != 0 {
            let g = (s << 6) | b.trailing_zeros() as usize;
            b &= b - 1;
            if g < self.shape.len[1] {
                prefetch(&self.words[self.shape.at(1, g)]);
            }
        }
        let mut queue = [(0usize, 0u64); GROUP_QUEUE];
        let (mut head, mut queued) = (0, 0);
        let mut kept = 0;
        let mut b = bits;
        loop {
            if b != 0 {
                let g = (s << 6) | b.trailing_zeros() as usize;
                b &= b - 1;
                if g >= self.shape.len[1] {
                    continue;
                }
                let leaves = self.load(self.shape.at(1, g));
                prefetch_sparse_group(&self.shape, &self.words, g, leaves);
                queue[(head + queued) % GROUP_QUEUE] = (g, leaves);
                queued += 1;
                if queued < GROUP_QUEUE {
                    continue;
                }
            }
            if queued == 0 {
                break;
            }
            let (g, leaves) = queue[head];
            head = (head + 1) % GROUP_QUEUE;
            queued -= 1;
            if self.settle_group(g, leaves, end_block, count) {
                kept |= 1 << (g & 63);
            }
        }
        if kept != bits {
            self.words[at].store(kept, Ordering::Relaxed);
        }
        kept != 0
    }

    /// [`LiveMap::settle`] for level-1 word `g`, whose bits are `bits`, and its leaves;
    /// whether it is non-zero after.
    #[inline(always)]
    fn settle_group(&self, g: usize, bits: u64, end_block: u64, count: &mut RunCount<'_>) -> bool {
        let at = self.shape.at(1, g);
        // Leaves below this one hold no block at or past the end: no clipping there.
        let unclipped = (end_block / LIVE_LEAF_BLOCKS) as usize;
        let mut kept = 0;
        let mut b = bits;
        while b != 0 {
            let leaf = (g << 6) | b.trailing_zeros() as usize;
            b &= b - 1;
            if leaf >= unclipped {
                if leaf < self.shape.len[0] && self.settle_leaf(leaf, end_block, count) {
                    kept |= 1 << (leaf & 63);
                }
                continue;
            }
            // A live word is zero or has a dirty bit beside every written bit (a discard clears
            // only written bits, a shrink both halves): nothing to correct here.
            let word = self.load(leaf);
            if word != 0 {
                let dirty = word & LOW;
                debug_assert!(
                    dirty != 0 && (word >> 32) & !dirty == 0,
                    "leaf {leaf}: {word:#x}"
                );
                count.add(leaf, dirty, dirty & !(word >> 32));
                kept |= 1 << (leaf & 63);
            }
        }
        if kept != bits {
            self.words[at].store(kept, Ordering::Relaxed);
        }
        kept != 0
    }

    /// [`LiveMap::settle`] for leaf `leaf`: clipped at `end_block`, counted; whether it is
    /// non-zero after.
    #[inline(always)]
    fn settle_leaf(&self, leaf: usize, end_block: u64, count: &mut RunCount<'_>) -> bool {
        let word = self.load(leaf);
        if word == 0 {
            return false;
        }
        let first = (leaf as u64) * LIVE_LEAF_BLOCKS;
        let mut dirty = word & LOW;
        if first >= end_block {
            dirty = 0;
        } else if end_block - first < LIVE_LEAF_BLOCKS {
            dirty &= (1u64 << (end_block - first)) - 1;
        }
        let written = (word >> 32) & dirty;
        let exact = dirty | (written << 32);
        if exact != word {
            self.words[leaf].store(exact, Ordering::Relaxed);
        }
        if dirty == 0 {
            return false;
        }
        count.add(leaf, dirty, dirty & !written);
        true
    }

    /// Sets every block of the map as written and every summary bit over an existing word,
    /// with stores (a take that cannot vouch for its set: the whole disk, including the blocks
    /// past its end). A mark that may still land in the map then finds its bits set and changes
    /// nothing, and its summaries are exact without a walk. Returns what it holds up to
    /// `end_block` (the readers clip there): every block, in one run.
    pub(crate) fn fill(&self, end_block: u64) -> Held {
        for level in 0..self.shape.levels {
            let (start, len) = (self.shape.start[level], self.shape.len[level]);
            let children = if level == 0 {
                0
            } else {
                self.shape.len[level - 1]
            };
            for i in 0..len {
                let word = match children.saturating_sub(64 * i) {
                    _ if level == 0 => u64::MAX,
                    c if c >= 64 => u64::MAX,
                    c => (1u64 << c) - 1,
                };
                self.words[start + i].store(word, Ordering::Relaxed);
            }
        }
        Held {
            blocks: end_block,
            runs: 1,
            leaves: self.shape.len[0],
            listed: false,
            filled: true,
        }
    }

    /// Clears a settled map (exact summaries), top-down, in time proportional to its set words.
    pub(crate) fn clear_settled(&self) {
        self.walk(self.shape.top(), 0, &mut |level, index, bits| {
            if bits != 0 {
                self.words[self.shape.at(level, index)].store(0, Ordering::Relaxed);
            }
        });
    }

    /// Calls `f(level, index, bits)` for word `index` of `level` and then, top-down, for every
    /// word its set bits lead to (acquire loads, each word loaded before `f` sees it).
    fn walk(&self, level: usize, index: usize, f: &mut impl FnMut(usize, usize, u64)) {
        let mut bits = self.words[self.shape.at(level, index)].load(Ordering::Acquire);
        f(level, index, bits);
        if level == 0 {
            return;
        }
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let child = (index << 6) | b;
            if child < self.shape.len[level - 1] {
                self.walk(level - 1, child, f);
            }
        }
    }

    /// The settled map (see [`LiveMap::settle`]) as a checkpoint to read, `leaves` of its leaf
    /// words non-zero.
    pub(crate) fn frozen<'a>(&'a self, held: &Held, list: &'a [u64]) -> FrozenMap<'a> {
        FrozenMap {
            shape: &self.shape,
            words: &self.words,
            leaves: held.leaves,
            list: if held.listed {
                &list[..2 * held.leaves]
            } else {
                &[]
            },
            listed: held.listed,
        }
    }
}

/// No discarded blocks, for [`LiveMap::mark_span`].
pub(crate) const NO_DISCARD: (u64, u64) = (1, 0);

/// A level-1 summary word with fewer set bits than this has its leaves prefetched by the
/// take's walk; more share a few cache lines, which the hardware prefetcher brings in.
const SPARSE_GROUP: u32 = 8;

/// Starts loading the leaves of level-1 group `g` (leaf bits `bits`) if it is sparse: on a
/// large, sparse map each is a cache miss, and these overlap instead of coming one at a time.
/// A dense group's leaves share a few lines, which the hardware prefetcher brings in.
#[inline(always)]
fn prefetch_sparse_group(shape: &Shape, words: &[AtomicU64], g: usize, bits: u64) {
    if bits.count_ones() < SPARSE_GROUP {
        let mut b = bits;
        while b != 0 {
            let leaf = (g << 6) | b.trailing_zeros() as usize;
            b &= b - 1;
            if leaf < shape.len[0] {
                prefetch(&words[leaf]);
            }
        }
    }
}

/// Level-1 groups whose leaves the take's walk prefetches before it reads the first of them.
const GROUP_QUEUE: usize = 8;

/// Words of the list a sparse take is also written to, for a map of `leaves` leaf words: a
/// pair per 128 leaves (0.8 % of a map's memory; room for a take of about 0.025 % of the
/// blocks spread at random, one dirty block per leaf).
pub(crate) fn list_words(leaves: u64) -> u64 {
    2 * leaves.div_ceil(128)
}

/// Asks the CPU to start loading the cache line of `p`: a hint, never a fault, no effect on
/// what the program computes. A no-op where there is no stable prefetch instruction, under loom
/// and under miri.
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    // SAFETY: `prefetcht0` is part of SSE, which every x86-64 CPU has; a prefetch never faults
    // (whatever the address) and changes no memory or register the program can see.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(all(target_arch = "x86_64", not(loom), not(miri))))]
    let _ = p;
}

/// Counts a take's blocks and runs from its non-zero leaves, given in ascending order, and
/// lists them while they fit.
struct RunCount<'a> {
    out: Held,
    /// The last leaf added (index + 1, 0 for none), its dirty and discard bits, to join runs
    /// across leaf boundaries.
    prev: (usize, u64, u64),
    list: &'a mut [u64],
    /// More leaves than the list holds.
    over: bool,
}

impl RunCount<'_> {
    #[inline(always)]
    fn add(&mut self, leaf: usize, dirty: u64, disc: u64) {
        let n = self.out.leaves;
        if !self.over {
            if 2 * n + 1 < self.list.len() {
                self.list[2 * n] = leaf as u64;
                self.list[2 * n + 1] = dirty | ((dirty & !disc) << 32);
            } else {
                self.over = true;
            }
        }
        self.out.blocks += u64::from(dirty.count_ones());
        self.out.leaves += 1;
        if disc | self.prev.2 == 0 {
            // Writes only, here and in the previous leaf: a run starts at every dirty block
            // whose lower neighbour is clean.
            let carry = (self.prev.1 >> 31) & u64::from(self.prev.0 == leaf);
            let below = ((dirty << 1) | carry) & LOW;
            self.out.runs += u64::from((dirty & !below).count_ones());
            self.prev = (leaf + 1, dirty, 0);
            return;
        }
        // The lower neighbour of each block (block 0's is block 31 of the previous leaf, if
        // adjacent). Without a branch: whether the previous leaf is adjacent is close to a coin
        // toss in a take of a few percent, and a mispredicted branch per leaf cost more than
        // the rest of this function.
        let (p, pd, pdisc) = self.prev;
        let adjacent = u64::from(p == leaf);
        let (carry, carry_disc) = ((pd >> 31) & adjacent, (pdisc >> 31) & adjacent);
        let below = ((dirty << 1) | carry) & LOW;
        let below_disc = ((disc << 1) | carry_disc) & LOW;
        // A run starts at every dirty block whose lower neighbour is clean or of the other kind.
        let continues = below & !(disc ^ below_disc);
        self.out.runs += u64::from((dirty & !continues).count_ones());
        self.prev = (leaf + 1, dirty, disc);
    }
}

/// What a take holds: blocks, maximal runs of consecutive blocks of the same kind (write or
/// discard), and non-zero leaf words.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Held {
    pub(crate) blocks: u64,
    pub(crate) runs: u64,
    pub(crate) leaves: usize,
    /// Every non-zero leaf is in the list.
    pub(crate) listed: bool,
    /// The take filled the map ([`LiveMap::fill`]) instead of walking it.
    pub(crate) filled: bool,
}

impl LiveMap {
    /// Calls `f(w, dirty, discard)` for every 64-block word `w` holding a dirty block, in
    /// ascending order: the dirty bits of blocks `64 * w ..` and the discards among them. Reads
    /// with loads only (nothing is cleared): exact when no mark runs concurrently
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
        self.walk(level, index, &mut |level, index, bits| {
            if level == 0 {
                f(index, bits);
            }
        });
    }
}

/// The taken checkpoint: a map no one marks in any more, settled ([`LiveMap::settle`]: exact
/// summaries, nothing past the end), read in place. It is the map writers marked in until the
/// take, not a copy: the take swaps which of the tracker's two maps is live.
///
/// Its leaf words have the live layout (32 blocks: dirty bits low, written bits high, a
/// written bit only beside a dirty one), so a block's kind sits beside its dirty bit. Its
/// atomics are read with relaxed loads (plain loads on the CPUs here): its only user holds the
/// control lock, and the take waited for every writer that marked in it.
pub(crate) struct FrozenMap<'a> {
    shape: &'a Shape,
    words: &'a [AtomicU64],
    /// Non-zero leaf words.
    leaves: usize,
    /// (leaf index, leaf word) pairs of every non-zero leaf, ascending, when `listed`.
    list: &'a [u64],
    listed: bool,
}

impl FrozenMap<'_> {
    #[inline(always)]
    fn w(&self, i: usize) -> u64 {
        self.words[i].load(Ordering::Relaxed)
    }

    /// Leaf word `leaf` (zero past the map).
    #[inline(always)]
    fn leaf_word(&self, leaf: usize) -> u64 {
        if leaf < self.shape.len[0] {
            self.w(leaf)
        } else {
            0
        }
    }

    /// Dirty and discard bits (32 each) of leaf `leaf`; zeros past the map.
    #[inline(always)]
    fn leaf_bits(&self, leaf: usize) -> (u64, u64) {
        let word = self.leaf_word(leaf);
        let dirty = word & LOW;
        (dirty, dirty & !(word >> 32))
    }

    /// Whether block `b` (a set block) was discarded rather than written.
    #[cfg(test)]
    pub(crate) fn is_discard(&self, b: u64) -> bool {
        let (_, disc) = self.leaf_bits((b / LIVE_LEAF_BLOCKS) as usize);
        disc & (1 << (b % LIVE_LEAF_BLOCKS)) != 0
    }

    /// Dirty bits of the 64 blocks from `64 * index`.
    pub(crate) fn leaf(&self, index: usize) -> u64 {
        let (lo, _) = self.leaf_bits(2 * index);
        let (hi, _) = self.leaf_bits(2 * index + 1);
        lo | (hi << 32)
    }

    /// Discard bits of the 64 blocks from `64 * index`.
    pub(crate) fn discard_leaf(&self, index: usize) -> u64 {
        let (_, lo) = self.leaf_bits(2 * index);
        let (_, hi) = self.leaf_bits(2 * index + 1);
        lo | (hi << 32)
    }

    /// The first non-zero word of `level` at or after `from`, if any: the word itself when it
    /// is non-zero, else a climb up the summaries and a descent.
    fn next_word(&self, level: usize, from: usize) -> Option<usize> {
        if level >= self.shape.levels || from >= self.shape.len[level] {
            return None;
        }
        if self.w(self.shape.at(level, from)) != 0 {
            return Some(from);
        }
        // `idx` is a child index at `up - 1`.
        let (mut up, mut idx) = (level + 1, from + 1);
        let found = loop {
            if up >= self.shape.levels {
                return None;
            }
            let w = idx >> 6;
            if w >= self.shape.len[up] {
                return None;
            }
            let bits = self.w(self.shape.at(up, w)) & (u64::MAX << (idx & 63));
            if bits != 0 {
                break (w << 6) | bits.trailing_zeros() as usize;
            }
            idx = w + 1;
            up += 1;
        };
        // Descend: summaries are exact, so every word reached here is non-zero.
        let (mut at, mut idx) = (up - 1, found);
        while at > level {
            let bits = self.w(self.shape.at(at, idx));
            debug_assert_ne!(bits, 0, "frozen summary bit without a set child");
            idx = (idx << 6) | bits.trailing_zeros() as usize;
            at -= 1;
        }
        Some(idx)
    }

    /// The first set block at or after `pos`, if any.
    pub(crate) fn next_set(&self, pos: u64) -> Option<u64> {
        let leaf = (pos / LIVE_LEAF_BLOCKS) as usize;
        let (dirty, _) = self.leaf_bits(leaf);
        let here = dirty & (LOW << (pos % LIVE_LEAF_BLOCKS));
        if here != 0 {
            return Some((leaf as u64) * LIVE_LEAF_BLOCKS + u64::from(here.trailing_zeros()));
        }
        let next = self.next_word(0, leaf + 1)?;
        let (dirty, _) = self.leaf_bits(next);
        Some((next as u64) * LIVE_LEAF_BLOCKS + u64::from(dirty.trailing_zeros()))
    }

    /// The first clear block at or after `pos` (may be past the end of the map).
    #[cfg(test)]
    pub(crate) fn next_clear(&self, pos: u64) -> u64 {
        let mut leaf = (pos / LIVE_LEAF_BLOCKS) as usize;
        let mut clear = !self.leaf_bits(leaf).0 & LOW & (LOW << (pos % LIVE_LEAF_BLOCKS));
        while clear == 0 {
            leaf += 1;
            clear = !self.leaf_bits(leaf).0 & LOW;
        }
        (leaf as u64) * LIVE_LEAF_BLOCKS + u64::from(clear.trailing_zeros())
    }

    /// Calls `emit(start, end, discard)` for each maximal run of dirty blocks of one kind
    /// (blocks `start..end`) from block `pos` on (a run that `pos` falls into is reported from
    /// `pos`), in ascending order, ends clipped at `end_block`. Stops at the first run `emit`
    /// refuses (returns false) and returns that run's start, the position to resume from;
    /// returns `end_block` when every run was taken.
    ///
    /// A unit of blocks at a time: a leaf word (32 blocks) found through the summaries a few
    /// ahead with its line prefetched ([`Scout`]), or, in a dense map, two leaf words read
    /// word after word and merged into one 64-block unit ([`DensePairs`]: half the per-unit
    /// work where nearly every word holds dirty blocks, and more than it saves where few do).
    /// In a unit, the first and the last block of every run are two masks computed at once
    /// (for a unit of writes only, from the dirty mask alone); the k-th run is the k-th set bit
    /// of each, so runs come out of two independent trailing-zero counts, without a chain of
    /// dependent shifts. A run that reaches the unit's last block stays open into the next
    /// unit. Costs time in proportion to the runs and the non-zero words, never the rest of
    /// the map (a dense take also reads its clean words up to `end_block`: fewer than its
    /// non-zero ones).
    #[inline]
    pub(crate) fn runs_from(
        &self,
        pos: u64,
        end_block: u64,
        emit: impl FnMut(u64, u64, bool) -> bool,
    ) -> u64 {
        if self.dense() {
            let source = DensePairs {
                next: (pos / 64) as usize,
                end: end_block.div_ceil(64) as usize,
            };
            self.runs_of(source, pos, end_block, emit)
        } else if self.listed {
            let source = Listed(self.list_position((pos / LIVE_LEAF_BLOCKS) as usize));
            self.runs_of(source, pos, end_block, emit)
        } else {
            let source = Scout::new(self, (pos / LIVE_LEAF_BLOCKS) as usize);
            self.runs_of(source, pos, end_block, emit)
        }
    }

    /// Whether the take is read as [`DensePairs`].
    fn dense(&self) -> bool {
        self.leaves.saturating_mul(DENSE_ONE_IN) >= self.shape.len[0]
    }

    /// The position in the list of the first pair with a leaf index at or after `from`.
    fn list_position(&self, from: usize) -> usize {
        let (mut lo, mut hi) = (0, self.list.len() / 2);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if (self.list[2 * mid] as usize) < from {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// [`FrozenMap::runs_from`] over the units of `source` (`U::BITS` blocks each).
    #[inline(always)]
    fn runs_of<U: Units>(
        &self,
        mut source: U,
        pos: u64,
        end_block: u64,
        mut emit: impl FnMut(u64, u64, bool) -> bool,
    ) -> u64 {
        let bits = u64::from(U::BITS);
        let top = U::BITS - 1;
        let mut open: Option<(u64, bool)> = None;
        // The unit after the last one read: where an open run must continue.
        let mut expected = (pos / bits) as usize;
        // The blocks of `pos`'s own unit before `pos` are not read; any later unit is read
        // whole (the unit of `pos` may be clean, and the first unit found a later one).
        let (first, mask) = (expected, u64::MAX << (pos % bits));
        loop {
            let found = source.next(self);
            if let Some((s, k)) = open {
                if found.map(|(u, _, _)| u) != Some(expected) {
                    // The unit after the run's last one is clean: the run ends there.
                    if !emit(s, ((expected as u64) * bits).min(end_block), k) {
                        return s;
                    }
                    open = None;
                }
            }
            let Some((u, dirty, disc)) = found else {
                return end_block;
            };
            let base = (u as u64) * bits;
            if base >= end_block {
                return match open {
                    Some((s, k)) if !emit(s, end_block, k) => s,
                    _ => end_block,
                };
            }
            expected = u + 1;
            let (dirty, disc) = if u == first {
                (dirty & mask, disc & mask)
            } else {
                (dirty, disc)
            };
            let (mut firsts, mut lasts) = if disc == 0 {
                (dirty & !(dirty << 1), dirty & !(dirty >> 1))
            } else {
                // Same kind as the block below / above (within the unit).
                let same_below = (dirty << 1) & !(disc ^ (disc << 1));
                let same_above = (dirty >> 1) & !(disc ^ (disc >> 1));
                (dirty & !same_below, dirty & !same_above)
            };
            if let Some((s, k)) = open {
                if dirty & 1 != 0 && (disc & 1 != 0) == k {
                    // The open run goes on into this unit, up to its first last block.
                    firsts &= !1;
                    let e = lasts.trailing_zeros();
                    lasts &= lasts - 1;
                    if e == top {
                        continue;
                    }
                    if !emit(s, (base + u64::from(e) + 1).min(end_block), k) {
                        return s;
                    }
                } else if !emit(s, base.min(end_block), k) {
                    return s;
                }
                open = None;
            }
            if disc == 0 && base + bits <= end_block {
                // The common unit: writes only, all before the end.
                while firsts != 0 {
                    let f = firsts.trailing_zeros();
                    let e = lasts.trailing_zeros();
                    firsts &= firsts - 1;
                    lasts &= lasts - 1;
                    let start = base + u64::from(f);
                    if e == top {
                        open = Some((start, false));
                        break;
                    }
                    if !emit(start, base + u64::from(e) + 1, false) {
                        return start;
                    }
                }
                continue;
            }
            while firsts != 0 {
                let f = firsts.trailing_zeros();
                let e = lasts.trailing_zeros();
                firsts &= firsts - 1;
                lasts &= lasts - 1;
                let start = base + u64::from(f);
                if start >= end_block {
                    return end_block;
                }
                let k = (disc >> f) & 1 != 0;
                if e == top {
                    open = Some((start, k));
                    break;
                }
                if !emit(start, (base + u64::from(e) + 1).min(end_block), k) {
                    return start;
                }
            }
        }
    }

    /// Calls `f(leaf, dirty, discard)` for every non-zero leaf (32 blocks from `32 * leaf`),
    /// in ascending order.
    pub(crate) fn for_each_leaf(&self, mut f: impl FnMut(usize, u64, u64)) {
        if self.listed {
            let mut leaves = Listed(0);
            while let Some((l, dirty, disc)) = leaves.next(self) {
                f(l, dirty, disc);
            }
        } else {
            let mut leaves = Scout::new(self, 0);
            while let Some((l, dirty, disc)) = leaves.next(self) {
                f(l, dirty, disc);
            }
        }
    }

    /// Calls `f(index, bits)` for every non-zero 64-block word (blocks from `64 * index`), in
    /// ascending order.
    pub(crate) fn for_each_word(&self, mut f: impl FnMut(usize, u64)) {
        let mut pending: Option<(usize, u64)> = None;
        self.for_each_leaf(|leaf, dirty, _| {
            let (w, shift) = (leaf >> 1, 32 * (leaf & 1));
            match &mut pending {
                Some((pw, bits)) if *pw == w => *bits |= dirty << shift,
                _ => {
                    if let Some((pw, bits)) = pending.take() {
                        f(pw, bits);
                    }
                    pending = Some((w, dirty << shift));
                }
            }
        });
        if let Some((pw, bits)) = pending {
            f(pw, bits);
        }
    }
}

/// Where [`FrozenMap::runs_from`] finds the units of blocks it reads runs from: each
/// non-zero unit, in ascending order, as (index, dirty bits, discard bits), bit `i` for block
/// `BITS * index + i`.
trait Units {
    const BITS: u32;
    fn next(&mut self, map: &FrozenMap<'_>) -> Option<(usize, u64, u64)>;
}

impl Units for Scout {
    const BITS: u32 = LIVE_LEAF_BLOCKS as u32;

    #[inline(always)]
    fn next(&mut self, map: &FrozenMap<'_>) -> Option<(usize, u64, u64)> {
        let l = self.next_leaf(map)?;
        let word = map.w(l);
        let dirty = word & LOW;
        Some((l, dirty, dirty & !(word >> 32)))
    }
}

/// A listed take's non-zero leaves, read front to back from the list from pair `.0` on.
struct Listed(usize);

impl Units for Listed {
    const BITS: u32 = LIVE_LEAF_BLOCKS as u32;

    #[inline(always)]
    fn next(&mut self, map: &FrozenMap<'_>) -> Option<(usize, u64, u64)> {
        let pair = map.list.get(2 * self.0..2 * self.0 + 2)?;
        self.0 += 1;
        let (l, word) = (pair[0] as usize, pair[1]);
        let dirty = word & LOW;
        Some((l, dirty, dirty & !(word >> 32)))
    }
}

/// A take with at least one non-zero leaf in this many is read as [`DensePairs`]: one in 2 is
/// a block dirty in about 2 % of the disk, where the summaries skip almost nothing.
const DENSE_ONE_IN: usize = 2;

/// A dense take's non-zero pairs of leaf words (64 blocks from `64 * p`), read word after word
/// from pair `next` up to (not including) pair `end`, the two leaves merged into one mask.
struct DensePairs {
    next: usize,
    end: usize,
}

impl Units for DensePairs {
    const BITS: u32 = 64;

    #[inline(always)]
    fn next(&mut self, map: &FrozenMap<'_>) -> Option<(usize, u64, u64)> {
        let leaves = &map.words[..map.shape.len[0]];
        while self.next < self.end {
            let lo = leaves.get(2 * self.next)?.load(Ordering::Relaxed);
            let hi = leaves
                .get(2 * self.next + 1)
                .map_or(0, |w| w.load(Ordering::Relaxed));
            self.next += 1;
            if lo | hi != 0 {
                // Dirty bits: lo's low half, then hi's (its written half shifted out).
                let dirty = (lo & LOW) | (hi << 32);
                return Some((self.next - 1, dirty, dirty & !((lo >> 32) | (hi & !LOW))));
            }
        }
        None
    }
}

/// Level-1 groups a reader looks ahead for ([`Scout`]).
const SCOUT_AHEAD: usize = 16;

/// Finds a take's non-zero leaves in order. It queues the level-1 summary words that hold
/// them (exact in a settled map) [`SCOUT_AHEAD`] groups ahead of the reader, prefetching the
/// leaves of each sparse group as it is queued: on a large, sparse map each leaf is a cache
/// miss, and these overlap instead of coming one at a time. A dense group's leaves share a few
/// cache lines, which the hardware prefetcher brings in. Within a group the next leaf is a
/// trailing-zero count, not a test of every leaf word and a climb of the summaries (a
/// mispredicted branch per leaf where a few percent of the blocks are dirty).
struct Scout {
    /// Queued groups: (level-1 index, leaf bits).
    ring: [(usize, u64); SCOUT_AHEAD],
    head: usize,
    queued: usize,
    /// The group being read and its leaves not read yet.
    group: usize,
    rest: u64,
    /// The last group queued, and whether there is none after it.
    tail: usize,
    last: bool,
}

impl Scout {
    fn new(map: &FrozenMap<'_>, from: usize) -> Scout {
        let mut s = Scout {
            ring: [(0, 0); SCOUT_AHEAD],
            head: 0,
            queued: 0,
            group: from >> 6,
            rest: 0,
            tail: from >> 6,
            last: true,
        };
        if map.shape.levels == 1 {
            // One leaf, no summary.
            if from == 0 && map.w(0) != 0 {
                s.rest = 1;
            }
        } else if s.group < map.shape.len[1] {
            s.rest = map.w(map.shape.at(1, s.group)) & (u64::MAX << (from & 63));
            s.last = false;
            s.fill(map);
        }
        s
    }

    /// Queues groups up to [`SCOUT_AHEAD`].
    #[inline(always)]
    fn fill(&mut self, map: &FrozenMap<'_>) {
        while self.queued < SCOUT_AHEAD && !self.last {
            let Some(g) = map.next_word(1, self.tail + 1) else {
                self.last = true;
                return;
            };
            let bits = map.w(map.shape.at(1, g));
            prefetch_sparse_group(map.shape, map.words, g, bits);
            self.ring[(self.head + self.queued) % SCOUT_AHEAD] = (g, bits);
            self.queued += 1;
            self.tail = g;
        }
    }

    /// The next non-zero leaf, if any.
    #[inline(always)]
    fn next_leaf(&mut self, map: &FrozenMap<'_>) -> Option<usize> {
        loop {
            if self.rest != 0 {
                let l = (self.group << 6) | self.rest.trailing_zeros() as usize;
                self.rest &= self.rest - 1;
                if l < map.shape.len[0] {
                    return Some(l);
                }
                continue;
            }
            if self.queued == 0 {
                return None;
            }
            (self.group, self.rest) = self.ring[self.head];
            self.head = (self.head + 1) % SCOUT_AHEAD;
            self.queued -= 1;
            self.fill(map);
        }
    }
}

#[cfg(test)]
impl LiveMap {
    /// [`LiveMap::settle`] with a list of the size a tracker gives this map.
    fn settle_t(&self, end_block: u64) -> (Held, Box<[u64]>) {
        let mut list = zeroed_words(list_words(self.shape.len[0] as u64) as usize).unwrap();
        (self.settle(end_block, &mut list), list)
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
    fn settle_iterate_clear() {
        let live = LiveMap::new(300_000).unwrap();
        assert_eq!(live.set_range(5, 5), 1);
        assert_eq!(live.set_range(5, 5), 0);
        assert_eq!(live.set_range(60, 200), 141);
        assert_eq!(live.set_range(299_999, 299_999), 1);
        let (d, list) = live.settle_t(300_000);
        assert_eq!((d.blocks, d.runs, d.leaves), (143, 3, 8));
        let frozen = live.frozen(&d, &list);
        assert!(!frozen.is_discard(5));
        assert_eq!(frozen.next_set(0), Some(5));
        assert_eq!(frozen.next_clear(5), 6);
        assert_eq!(frozen.next_set(6), Some(60));
        assert_eq!(frozen.next_clear(60), 201);
        assert_eq!(frozen.next_set(201), Some(299_999));
        assert_eq!(frozen.next_set(300_000), None);
        // Settling again changes nothing.
        let (again, _) = live.settle_t(300_000);
        assert_eq!((again.blocks, again.runs), (143, 3));
        // Blocks at or past the end are dropped by the settle.
        live.clear_settled();
        assert!(live.words.iter().all(|w| w.load(Ordering::Relaxed) == 0));
        live.set_range(250_000, 299_999);
        let (d, list) = live.settle_t(260_000);
        assert_eq!((d.blocks, d.runs), (10_000, 1));
        let frozen = live.frozen(&d, &list);
        assert_eq!(frozen.next_clear(250_000), 260_000);
        assert_eq!(frozen.next_set(260_000), None);
        live.clear_settled();
        assert_eq!(live.frozen(&Held::default(), &[]).next_set(0), None);
        assert!(
            live.words.iter().all(|w| w.load(Ordering::Relaxed) == 0),
            "clear leaves no stale summary bit"
        );
    }

    /// A shrink clears leaf words and leaves their summary bits: a settle clears those too, so
    /// the reader (which trusts the summaries) never descends to a zero word, and a mark into
    /// such a word after the shrink still sets its chain.
    #[test]
    fn settle_clears_summary_bits_over_zero_words() {
        let live = LiveMap::new(300_000).unwrap();
        live.set_range(100, 100);
        live.set_range(200_000, 200_010);
        live.clear_from(150_000);
        let (d, list) = live.settle_t(300_000);
        assert_eq!((d.blocks, d.runs, d.leaves), (1, 1, 1));
        let frozen = live.frozen(&d, &list);
        assert_eq!(frozen.next_set(101), None);
        let mut leaves = Vec::new();
        frozen.for_each_leaf(|l, dirty, _| leaves.push((l, dirty)));
        assert_eq!(leaves, vec![(3, 1 << 4)]);
        live.clear_settled();
        assert!(live.words.iter().all(|w| w.load(Ordering::Relaxed) == 0));
        // A stale chain stops a later climb, which must still leave the chain set.
        live.set_range(200_000, 200_000);
        live.clear_from(150_000);
        live.set_range(200_001, 200_001);
        let (d, list) = live.settle_t(300_000);
        assert_eq!((d.blocks, d.leaves), (1, 1));
        assert_eq!(live.frozen(&d, &list).next_set(0), Some(200_001));
    }
}

#[cfg(all(test, not(loom)))]
mod snapshot_tests {
    use super::*;

    #[test]
    fn a_snapshot_pairs_live_halves_keeps_kinds_and_changes_nothing() {
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
        assert_eq!(live.settle_t(300_000).0.blocks, 63);
        live.clear_settled();
        let mut after = Vec::new();
        live.for_each_dirty_word(|w, d, disc| after.push((w, d, disc)));
        assert!(after.is_empty(), "cleared: {after:?}");
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
    fn discard_bits_survive_a_take_and_split_runs_by_kind() {
        let live = LiveMap::new(1000).unwrap();
        live.mark_range(10, 20, None);
        live.mark_range(21, 70, Some((21, 70)));
        live.mark_range(71, 71, None);
        // A later write turns a discarded block back into a write.
        live.mark_range(30, 30, None);
        let (d, list) = live.settle_t(1000);
        let frozen = live.frozen(&d, &list);
        // 10..=20 W, 21..=29 D, 30 W, 31..=70 D, 71 W.
        assert_eq!((d.blocks, d.runs), (62, 5));
        assert!(!frozen.is_discard(20) && frozen.is_discard(21) && frozen.is_discard(29));
        assert!(!frozen.is_discard(30) && frozen.is_discard(63) && frozen.is_discard(64));
        let runs = |pos, end| {
            let mut v = Vec::new();
            let next = frozen.runs_from(pos, end, |s, e, k| {
                v.push((s, e, k));
                true
            });
            (v, next)
        };
        let (w, d) = (false, true);
        let all = vec![
            (10, 21, w),
            (21, 30, d),
            (30, 31, w),
            (31, 71, d),
            (71, 72, w),
        ];
        assert_eq!(runs(0, 1000), (all.clone(), 1000));
        // From inside a run (across a leaf boundary), and clipped at an end.
        assert_eq!(runs(40, 1000), (vec![(40, 71, d), (71, 72, w)], 1000));
        assert_eq!(
            runs(12, 50).0,
            vec![(12, 21, w), (21, 30, d), (30, 31, w), (31, 50, d)]
        );
        // A refused run is where the next call resumes.
        let mut taken = Vec::new();
        let next = frozen.runs_from(0, 1000, |s, e, k| {
            taken.len() < 3 && {
                taken.push((s, e, k));
                true
            }
        });
        assert_eq!((taken.as_slice(), next), (&all[..3], 31));
        // Abort: merged into the other map (live since the take) where no later mark touched
        // the block.
        let other = LiveMap::new(1000).unwrap();
        other.mark_range(40, 40, None);
        frozen.for_each_word(|w, bits| other.merge_word(w, bits, frozen.discard_leaf(w)));
        live.clear_settled();
        assert!(live.words.iter().all(|w| w.load(Ordering::Relaxed) == 0));
        let (d, list) = other.settle_t(1000);
        assert_eq!(d.blocks, 62);
        let frozen = other.frozen(&d, &list);
        assert!(frozen.is_discard(39) && !frozen.is_discard(40) && frozen.is_discard(41));
    }
}

#[cfg(all(test, not(loom)))]
mod list_tests {
    use super::*;

    /// The blocks' (dirty, discarded) state after marks applied in order, as runs.
    fn reference_runs(state: &[Option<bool>]) -> Vec<(u64, u64, bool)> {
        let mut runs = Vec::new();
        let mut b = 0;
        while b < state.len() {
            let Some(k) = state[b] else {
                b += 1;
                continue;
            };
            let s = b;
            while b < state.len() && state[b] == Some(k) {
                b += 1;
            }
            runs.push((s as u64, b as u64, k));
        }
        runs
    }

    /// The runs of `want` (whole-map runs) seen from block `pos`, clipped at `end`.
    fn clipped(want: &[(u64, u64, bool)], pos: u64, end: u64) -> Vec<(u64, u64, bool)> {
        want.iter()
            .map(|&(s, e, k)| (s.max(pos), e.min(end), k))
            .filter(|&(s, e, _)| s < e)
            .collect()
    }

    /// Every way of reading a take (listed, found through the summaries, read word after word), from random positions to random ends, taking a random number
    /// of runs per call and resuming where the call stopped, gives the reference runs: runs
    /// split where the kind changes and nowhere else, across leaf words and pairs of them.
    #[test]
    #[cfg_attr(miri, ignore)] // thousands of reads of 200,000-block maps; no unsafe code on the path
    fn runs_from_reads_the_reference_runs_from_any_position_in_any_steps() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n.max(1)
        };
        // (blocks, marks, longest mark)
        let cases = [
            (20_000u64, 1u64, 60u64),
            (20_000, 3, 30),
            (20_000, 40, 90),
            (200_000, 300, 90),
            (20_000, 2_000, 40),
            (5_000, 3_000, 8),
            (4_099, 600, 200),
            (64, 20, 5),
            (65, 30, 3),
        ];
        let mut forms = std::collections::BTreeSet::new();
        for (blocks, marks, longest) in cases {
            let live = LiveMap::new(blocks).unwrap();
            let mut state = vec![None; blocks as usize];
            for _ in 0..marks {
                let first = rand(blocks);
                let last = (first + rand(longest)).min(blocks - 1);
                let disc = rand(3) == 0;
                live.mark_range(first, last, disc.then_some((first, last)));
                for b in first..=last {
                    state[b as usize] = Some(disc);
                }
            }
            let want = reference_runs(&state);
            let (d, list) = live.settle_t(blocks);
            assert_eq!(d.runs, want.len() as u64);
            assert_eq!(d.blocks, state.iter().flatten().count() as u64);
            let frozen = live.frozen(&d, &list);
            let form = if frozen.dense() {
                "dense"
            } else if frozen.listed {
                "listed"
            } else {
                "found through the summaries"
            };
            forms.insert(form);
            for trial in 0..300 {
                let (pos, end) = match trial {
                    0 => (0, blocks),
                    // An end anywhere, also before the start.
                    t if t % 5 == 0 => (rand(blocks + 70), rand(blocks + 1)),
                    _ => {
                        let pos = rand(blocks + 70);
                        (pos, (pos + rand(blocks + 70)).min(blocks))
                    }
                };
                let expect = clipped(&want, pos, end);
                let mut got = Vec::new();
                let mut at = pos;
                let mut calls = 0;
                loop {
                    let budget = if trial % 2 == 0 {
                        usize::MAX
                    } else {
                        rand(4) as usize
                    };
                    let mut taken = 0;
                    let next = frozen.runs_from(at, end, |s, e, k| {
                        if taken == budget {
                            return false;
                        }
                        taken += 1;
                        got.push((s, e, k));
                        true
                    });
                    calls += 1;
                    assert!(calls < 100_000, "no progress");
                    if next == end {
                        // Every run was taken: the reader says so by returning the end.
                        break;
                    }
                    // Else a run was refused: the reader returns its start, where the next
                    // call resumes (and reports it again).
                    assert_eq!(taken, budget, "{form}: stopped at {next} with runs left");
                    assert!(
                        next >= at && next < end,
                        "{form}: resume at {next}, {at}..{end}"
                    );
                    at = next;
                }
                assert_eq!(got, expect, "{form}: {blocks} blocks from {pos} to {end}");
            }
            live.clear_settled();
        }
        assert_eq!(forms.len(), 3, "every form of a take read: {forms:?}");
    }

    #[test]
    fn a_take_counts_and_reads_the_reference_runs() {
        const BLOCKS: u64 = 20_000;
        for marks in [1, 40] {
            let live = LiveMap::new(BLOCKS).unwrap();
            let mut state = vec![None; BLOCKS as usize];
            let mut x = 12_345u64 + marks;
            for _ in 0..marks {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let first = (x >> 33) % (BLOCKS - 100);
                let last = first + (x >> 20) % 90;
                let disc = (x >> 10) & 1 == 1;
                live.mark_range(first, last, disc.then_some((first, last)));
                for b in first..=last {
                    state[b as usize] = Some(disc);
                }
            }
            let want = reference_runs(&state);
            let (d, list) = live.settle_t(BLOCKS);
            let frozen = live.frozen(&d, &list);
            assert_eq!(d.runs, want.len() as u64);
            assert_eq!(d.blocks, state.iter().flatten().count() as u64);
            let mut got = Vec::new();
            let next = frozen.runs_from(0, BLOCKS, |s, e, k| {
                got.push((s, e, k));
                true
            });
            assert_eq!((got, next), (want.clone(), BLOCKS));
            // From the middle of every run: the rest of that run first.
            for &(s, e, k) in &want {
                let mid = (s + e) / 2;
                let mut first = None;
                let next = frozen.runs_from(mid, BLOCKS, |a, b, kind| {
                    first = Some((a, b, kind));
                    false
                });
                assert_eq!((first, next), (Some((mid, e, k)), mid));
            }
            let mut leaves = Vec::new();
            frozen.for_each_leaf(|l, dirty, disc| leaves.push((l, dirty, disc)));
            assert_eq!(
                leaves
                    .iter()
                    .map(|&(_, d, _)| u64::from(d.count_ones()))
                    .sum::<u64>(),
                d.blocks
            );
            assert_eq!(leaves.len(), d.leaves);
            live.clear_settled();
            assert!(live.words.iter().all(|w| w.load(Ordering::Relaxed) == 0));
            assert_eq!(live.frozen(&Held::default(), &[]).next_set(0), None);
        }
    }
}

/// Words per 4 KiB page: writing one word per page makes the page resident.
const WORDS_PER_PAGE: usize = 4096 / 8;

/// Asks the kernel to back the 2 MiB-aligned part of `words` with transparent huge pages,
/// before a prefault makes it resident: a map of hundreds of MiB read at random by a take
/// then costs a few hundred TLB entries instead of one per 4 KiB, and a page walk at nearly
/// every dirty word. Only for maps made resident anyway (the memory is the same); a lazily
/// committed map keeps 4 KiB pages, so that a sparse one stays resident only where written.
/// A hint: where the kernel has no huge pages to give (or THP is off), nothing changes.
fn advise_huge_pages<T>(words: &[T]) {
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    {
        const HUGE: usize = 2 << 20;
        let start = words.as_ptr() as usize;
        let end = start + std::mem::size_of_val(words);
        let (lo, hi) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if lo < hi {
            // SAFETY: the range lies inside `words`, memory this process owns; MADV_HUGEPAGE
            // changes how the kernel backs it, never its contents.
            unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(all(target_os = "linux", not(loom), not(miri))))]
    let _ = words;
}

impl LiveMap {
    /// Writes every page of the map once (before anyone else can see it), so that no mark
    /// takes a page fault on a page it is the first to touch.
    pub(crate) fn prefault(&self) {
        advise_huge_pages(&self.words);
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

/// The list of a sparse take for a map of `blocks` blocks ([`list_words`]), zeroed.
pub(crate) fn zeroed_list(blocks: u64) -> Option<Box<[u64]>> {
    zeroed_words(list_words(LiveMap::leaves(blocks)) as usize)
}

/// Writes every page of `list` once (see [`LiveMap::prefault`]). The slice passes through
/// `black_box` first, so that the compiler cannot prove the zeros already there and drop the
/// writes.
pub(crate) fn prefault_list(list: &mut [u64]) {
    advise_huge_pages(list);
    let words = std::hint::black_box(list);
    for i in (0..words.len()).step_by(WORDS_PER_PAGE) {
        words[i] = 0;
    }
}
