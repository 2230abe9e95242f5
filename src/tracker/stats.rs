//! Write-path counters that do not bounce a cache line between I/O threads.
//!
//! Each thread that marks claims one of [`SLOTS`] per-process slot numbers the first time it
//! calls (one atomic add, no allocation, no thread-exit hook). A thread with a slot is
//! its counters' only writer, so it updates them with a plain load and store: exact, and no
//! locked instruction on the hot path. Threads beyond [`SLOTS`] share an overflow shard updated
//! with atomic adds: still exact, just slower. Readers sum all shards. These are statistics, not
//! the tracking protocol, so they always use std atomics (also under loom).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Per-process exclusive slots.
pub(crate) const SLOTS: usize = 64;
const OVERFLOW: usize = SLOTS;
#[cfg_attr(loom, allow(dead_code))]
const UNASSIGNED: usize = usize::MAX;

/// Slot numbers handed out so far in this process.
#[cfg_attr(loom, allow(dead_code))]
static NEXT_SLOT: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static SLOT: Cell<usize> = const { Cell::new(UNASSIGNED) };
}

#[cfg_attr(loom, allow(dead_code))]
#[inline(always)]
pub(crate) fn my_slot() -> usize {
    SLOT.try_with(|s| {
        let v = s.get();
        if v != UNASSIGNED {
            return v;
        }
        let n = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) as usize;
        let v = if n < SLOTS { n } else { OVERFLOW };
        s.set(v);
        v
    })
    // During thread teardown the slot is gone: count through the shared shard.
    .unwrap_or(OVERFLOW)
}

/// One cache-line-aligned set of counters.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Shard {
    writes: AtomicU64,
    write_bytes: AtomicU64,
    discards: AtomicU64,
    discard_bytes: AtomicU64,
    newly_dirty: AtomicU64,
}

/// Counter totals at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) writes: u64,
    pub(crate) write_bytes: u64,
    pub(crate) discards: u64,
    pub(crate) discard_bytes: u64,
    pub(crate) newly_dirty: u64,
}

pub(crate) struct Counters {
    shards: Box<[Shard; SLOTS + 1]>,
}

impl Counters {
    pub(crate) fn new() -> Counters {
        Counters {
            shards: Box::new(std::array::from_fn(|_| Shard::default())),
        }
    }

    #[inline(always)]
    fn bump(&self, slot: usize, c: impl Fn(&Shard) -> &AtomicU64, by: u64) {
        let shard = &self.shards[slot];
        if slot == OVERFLOW {
            c(shard).fetch_add(by, Ordering::Relaxed);
        } else {
            // This thread is the slot's only writer (see the module doc).
            let a = c(shard);
            a.store(
                a.load(Ordering::Relaxed).wrapping_add(by),
                Ordering::Relaxed,
            );
        }
    }

    /// Counts a mark of the thread owning `slot` (its [`my_slot`]; [`SLOTS`] or above: the
    /// shared shard).
    #[inline(always)]
    pub(crate) fn record(&self, slot: usize, discard: bool, bytes: u64, newly_dirty: u64) {
        let slot = slot.min(OVERFLOW);
        if discard {
            self.bump(slot, |s| &s.discards, 1);
            self.bump(slot, |s| &s.discard_bytes, bytes);
        } else {
            self.bump(slot, |s| &s.writes, 1);
            self.bump(slot, |s| &s.write_bytes, bytes);
        }
        if newly_dirty != 0 {
            self.bump(slot, |s| &s.newly_dirty, newly_dirty);
        }
    }

    pub(crate) fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in self.shards.iter() {
            t.writes += s.writes.load(Ordering::Relaxed);
            t.write_bytes += s.write_bytes.load(Ordering::Relaxed);
            t.discards += s.discards.load(Ordering::Relaxed);
            t.discard_bytes += s.discard_bytes.load(Ordering::Relaxed);
            t.newly_dirty += s.newly_dirty.load(Ordering::Relaxed);
        }
        t
    }

    /// Heap bytes a new set of counters takes.
    pub(crate) fn bytes_for_new() -> usize {
        (SLOTS + 1) * std::mem::size_of::<Shard>()
    }
}
