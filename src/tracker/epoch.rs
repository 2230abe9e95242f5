//! Which of a tracker's two maps the writers mark in, and the take's wait for the writers of
//! the other one.
//!
//! A tracker has two maps of the same shape. Writers mark in the live one, chosen by the
//! parity of an epoch counter; a take adds one to the epoch, so that new marks go to the
//! other (empty) map, waits until no writer still marks in the old one, and then reads the
//! old one in place: no copy, no atomic read-modify-write on its words, and the write path
//! never waits for a take.
//!
//! ## The protocol (model-checked in `tests/loom_tracker.rs`)
//! - **A mark** announces itself in its thread's own slot ([`SLOTS`] of them, handed out per
//!   process by `stats.rs`): it loads the epoch `e`, stores `2e + 1` into its slot, and loads
//!   the epoch again after a barrier; if it changed, it announces again. Then it marks in map
//!   `e & 1` and stores 0 into its slot (a release store: whoever sees the 0 sees the mark).
//!   Two plain stores and two loads of lines the thread already holds, no read-modify-write.
//! - **A take** (under the control lock) adds one to the epoch, issues its half of the
//!   barrier, then waits at each slot while it holds `2e + 1` for the old epoch `e`.
//! - **The barrier** is Dekker's: the writer stores its slot then loads the epoch; the take
//!   stores the epoch then loads the slots. A full fence on both sides makes at least one see
//!   the other: either the take sees the writer's announcement and waits for its mark, or the
//!   writer's second load sees the new epoch and it marks in the new map. Where the kernel has
//!   `membarrier(2)` (Linux 4.14+), the take issues it for the whole process and the writer's
//!   fence is only a compiler fence: the write path then has no fence at all. Without it
//!   (older kernels, seccomp, miri, loom) both sides use `fence(SeqCst)`.
//! - **Threads beyond the slots** share one more slot that counts marks in progress per epoch
//!   parity with atomic adds, and always fence (their barrier needs no membarrier); the take
//!   waits until the old parity's count is zero. Marks of the new epoch count under
//!   the other parity, so a stream of them never holds a take up.
//!
//! A take waits only for marks already in progress in the old map, each a bounded number of
//! instructions (unless its thread is descheduled mid-mark; the take then waits for the
//! scheduler, never the other way round).
//!
//! Because a take reads a map only after every mark in it has returned, a writer that finds
//! its bits already set is done: the writer that set them also sets (or is still setting,
//! and will have set before the take reads) the summary bits above them. So a rewrite of a
//! dirty block is one load of its leaf word, and only a writer that makes a word non-zero
//! climbs the summaries ([`super::bitmap::LiveMap::mark_range`]).

use crate::sync::{backoff, fence, membarrier, AtomicU64, Ordering};

use super::stats::SLOTS;

/// The slot shared by threads beyond [`SLOTS`].
const SHARED: usize = SLOTS;

/// A writer slot, alone in its cache lines.
#[repr(align(128))]
struct Slot {
    /// Owned slot: `2e + 1` while its thread marks in epoch `e`'s map, else 0.
    active: AtomicU64,
    /// The shared slot: marks in progress per epoch parity.
    count: [AtomicU64; 2],
}

pub(crate) struct Epochs {
    epoch: AtomicU64,
    slots: Box<[Slot; SLOTS + 1]>,
    membarrier: bool,
}

impl Epochs {
    pub(crate) fn new() -> Epochs {
        Epochs {
            epoch: AtomicU64::new(0),
            slots: Box::new(std::array::from_fn(|_| Slot {
                active: AtomicU64::new(0),
                count: [AtomicU64::new(0), AtomicU64::new(0)],
            })),
            membarrier: membarrier::register(),
        }
    }

    /// Heap bytes a new set of slots takes.
    pub(crate) fn bytes_for_new() -> usize {
        (SLOTS + 1) * std::mem::size_of::<Slot>()
    }

    /// The live map's index, for the control path (under the control lock, which every epoch
    /// change holds).
    pub(crate) fn live(&self) -> usize {
        (self.epoch.load(Ordering::Relaxed) & 1) as usize
    }

    /// Starts a mark of the writer owning `slot` (from [`writer_slot`], below [`SLOTS`]):
    /// announces it, so that a take waits for it when the map it marks in is the one taken,
    /// and returns that map's index. The writer marks in it and then calls
    /// [`Epochs::exit_own`]. A thread without a slot of its own uses [`Epochs::enter_shared`].
    #[inline(always)]
    pub(crate) fn enter_own(&self, slot: usize) -> usize {
        let a = &self.slots[slot].active;
        loop {
            // Acquire (a plain load on x86): the map the epoch names was cleared by the commit
            // before the take that published it, and this mark must see that.
            let e = self.epoch.load(Ordering::Acquire);
            // This thread is the slot's only writer. Release, so that a take that reads this
            // announcement rather than the last mark's 0 still sees that mark.
            a.store((e << 1) | 1, Ordering::Release);
            self.writer_fence();
            if self.epoch.load(Ordering::Acquire) == e {
                return (e & 1) as usize;
            }
        }
    }

    /// Ends the mark [`Epochs::enter_own`] started (a release store: a take that sees it sees
    /// the mark).
    #[inline(always)]
    pub(crate) fn exit_own(&self, slot: usize) {
        self.slots[slot].active.store(0, Ordering::Release);
    }

    /// Ends the mark [`Epochs::enter_shared`] started in map `live`.
    pub(crate) fn exit_shared(&self, live: usize) {
        self.slots[SHARED].count[live & 1].fetch_sub(1, Ordering::Release);
    }

    /// [`Epochs::enter_own`] for a thread without a slot of its own (the mark ends with
    /// [`Epochs::exit_shared`]).
    #[inline(never)]
    pub(crate) fn enter_shared(&self) -> usize {
        let counts = &self.slots[SHARED].count;
        loop {
            let e = self.epoch.load(Ordering::Acquire);
            let c = &counts[(e & 1) as usize];
            c.fetch_add(1, Ordering::AcqRel);
            fence(Ordering::SeqCst);
            if self.epoch.load(Ordering::Acquire) == e {
                return (e & 1) as usize;
            }
            c.fetch_sub(1, Ordering::Release);
        }
    }

    #[inline(always)]
    fn writer_fence(&self) {
        crate::sync::writer_fence(self.membarrier);
    }

    /// Makes the other map live and waits until no mark is in progress in the old one (under
    /// the control lock). Returns the old map's index and whether the barrier held: `false`
    /// only if `membarrier(2)`, registered at creation, failed [`BARRIER_TRIES`] times in a
    /// row (it can fail with `ENOMEM` where the kernel allocates a CPU mask for it); the
    /// caller must then not trust that it saw every mark in progress.
    ///
    /// A mark in progress is a few dozen instructions, but a writer thread stopped in the
    /// middle of one (descheduled, or stopped by a signal or a debugger) holds the take, and so
    /// the control lock, until it runs again: the take waits for writers, never a writer for
    /// the take.
    pub(crate) fn flip(&self) -> (usize, bool) {
        let old = self.epoch.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let mut held = barrier(self.membarrier);
        let mut tries = 1;
        while !held && tries < BARRIER_TRIES {
            backoff(tries);
            held = barrier(self.membarrier);
            tries += 1;
        }
        let busy = (old << 1) | 1;
        let parity = (old & 1) as usize;
        for (i, s) in self.slots.iter().enumerate() {
            let mut spins = 0u32;
            while if i == SHARED {
                s.count[parity].load(Ordering::Acquire) != 0
            } else {
                s.active.load(Ordering::Acquire) == busy
            } {
                spins = spins.saturating_add(1);
                backoff(spins);
            }
        }
        (parity, held)
    }
}

/// Times a take issues a failing `membarrier(2)` before it gives up (with a growing pause in
/// between: spins, yields, then 50 µs sleeps, about 10 ms in all).
pub(crate) const BARRIER_TRIES: u32 = 320;

/// The take's half of the barrier: `membarrier(2)` where the writers rely on it; whether it
/// held. Tests can make the next [`BARRIER_TRIES`] fail ([`fail_next_barrier`]).
fn barrier(membarrier: bool) -> bool {
    #[cfg(test)]
    if FAIL_NEXT.with(|f| {
        let n = f.get();
        f.set(n.saturating_sub(1));
        n > 0
    }) {
        return false;
    }
    !membarrier || membarrier::barrier()
}

#[cfg(test)]
thread_local! {
    static FAIL_NEXT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Makes the next `n` barriers of takes on this thread fail (unit tests only).
#[cfg(test)]
pub(crate) fn fail_next_barrier(n: u32) {
    FAIL_NEXT.with(|f| f.set(n));
}

/// This thread's writer slot: its own below [`SLOTS`], else the shared one.
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn writer_slot() -> usize {
    super::stats::my_slot()
}

/// Under loom, whose threads share the process's thread-locals: a slot per model thread, and
/// the shared slot for odd-numbered ones, so that the models walk both paths.
#[cfg(loom)]
pub(crate) fn writer_slot() -> usize {
    let id = format!("{:?}", loom::thread::current().id());
    let n: usize = id
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(1);
    if n % 2 == 1 {
        SHARED
    } else {
        n % SLOTS
    }
}
