//! The activity log's in-memory half: which regions are durably active (a lock-free table the
//! write path reads), the writers' in-flight counts, and the queue of cold regions waiting for
//! a group commit. The file half (records, replay) is `al_log.rs`; the protocol that ties them
//! to the state file is in `mod.rs` and `docs/TRACKER.md`.
//!
//! ## The protocol (model-checked in `tests/loom_activity.rs`)
//! A write may reach the disk only while its regions are durably active, or once its blocks
//! are durably in the state file or a log record. So:
//! - **Admission** ([`ActivityWriter::begin`], before the driver submits the write): the writer
//!   counts the write as in flight in its own slot, under the current epoch's parity, then
//!   (after a barrier) looks its regions up in the table. Every region active and not being
//!   evicted: go (no lock, no syscall, no allocation, no shared store). Otherwise the count is
//!   taken back, the cold regions are queued and the caller gets a ticket to wait for.
//! - **Completion** ([`ActivityWriter::complete`], when the write completed): the tracker's
//!   mark, then the in-flight count is released (a release store: whoever sees the count drop
//!   sees the mark).
//! - **Eviction** (group commit, when the log is full): the victims are flagged as evicting,
//!   then a barrier, then two epoch flips each followed by a wait until every writer's count of
//!   the old parity is back to zero. A write that saw a victim active was counted before the
//!   barrier, so one of the two waits covers it: when they return, every write the victims
//!   admitted has completed and marked. Only then are the victims' dirty bits read and written
//!   to the log, in the same durable record that drops them from the active set.
//!
//! The barrier is Dekker's: the writer stores its count then loads the table; the evictor
//! stores the evicting flag then loads the counts; a full fence on both sides makes at least
//! one see the other. Where the kernel has `membarrier(2)` (Linux 4.14+), the evictor issues
//! it for the whole process and the writer's fence is only a compiler fence: the write path
//! then has no fence at all, and no atomic read-modify-write but the use bit a region gets once
//! between two evictions.

use std::sync::Arc;

use crate::sync::{backoff, fence, membarrier, AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

#[cfg(loom)]
#[doc(hidden)]
pub mod loom_model;

/// Entry flag: the region is durably active.
const HOT: u64 = 1;
/// Entry flag: the region is being evicted (writes to it wait for a re-activation).
const EVICTING: u64 = 2;
/// Entry flag: used since the clock hand last passed (set by writers, once).
const REF: u64 = 4;
/// Flag bits below the key.
const KEY_SHIFT: u32 = 3;

/// A writer slot: counts of admitted writes per epoch parity, and of completions. Only the
/// owning writer stores `begun`; completions from other threads use `ended_remote`.
#[repr(align(128))]
struct Slot {
    begun: [AtomicU64; 2],
    ended: [AtomicU64; 2],
    ended_remote: [AtomicU64; 2],
    taken: AtomicBool,
    /// Its writer was dropped with writes in flight: the slot stays taken until they are
    /// released, then a new writer may claim it.
    orphaned: AtomicBool,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            begun: [AtomicU64::new(0), AtomicU64::new(0)],
            ended: [AtomicU64::new(0), AtomicU64::new(0)],
            ended_remote: [AtomicU64::new(0), AtomicU64::new(0)],
            taken: AtomicBool::new(false),
            orphaned: AtomicBool::new(false),
        }
    }

    fn in_flight(&self, parity: usize) -> u64 {
        self.in_flight_with(parity, || {})
    }

    /// [`Slot::in_flight`], running `between` after the first load (for tests that interleave
    /// the owner's steps with the evictor's loads; a no-op in production).
    ///
    /// The ends are read before the begins: every end read was preceded by its begin (an
    /// acquire of the end sees it), so `begun - ended` never undercounts the writes in flight
    /// when the ends were read. Read the other way round, a write begun under this parity
    /// after `begun` was read (an owner that loaded the epoch before a flip) and completed
    /// before `ended` was read (out of order) would cancel a write still in flight.
    #[inline(always)]
    fn in_flight_with(&self, parity: usize, between: impl FnOnce()) -> u64 {
        let ended = self.ended_remote[parity]
            .load(Ordering::Acquire)
            .wrapping_add(self.ended[parity].load(Ordering::Acquire));
        between();
        let begun = self.begun[parity].load(Ordering::Acquire);
        begun.wrapping_sub(ended)
    }
}

/// Cold regions waiting for the next group commit.
pub(crate) struct Pending {
    /// Regions requested (duplicates possible), capacity fixed at creation.
    pub regions: Vec<u64>,
    /// The batch these requests will be written in.
    pub batch: u64,
}

/// What [`ActivityWriter::begin`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Admission {
    /// Every region of the write is durably active: submit it now, and call
    /// [`ActivityWriter::complete`] with this token when it completes.
    Go(WriteToken),
    /// A region is cold: wait for this ticket ([`ActivityWriter::wait`], or poll
    /// [`ActivityWriter::is_durable`] after a `flush` elsewhere), then call `begin` again.
    /// Nothing is counted in flight.
    Wait(Ticket),
}

/// An admitted write, to hand back at completion. Plain data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteToken {
    pub(crate) slot: u32,
    pub(crate) parity: u8,
}

impl WriteToken {
    /// The token as one integer (for the C ABI).
    pub fn to_raw(self) -> u64 {
        (u64::from(self.slot) << 1) | u64::from(self.parity)
    }

    /// A token from [`WriteToken::to_raw`].
    pub fn from_raw(raw: u64) -> WriteToken {
        WriteToken {
            slot: (raw >> 1) as u32,
            parity: (raw & 1) as u8,
        }
    }
}

/// A group commit to wait for: durable once the log's durable batch reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// The lock-free part shared by the writers and the group commit.
pub(crate) struct Activity {
    /// log2 of the region size in bytes.
    pub region_shift: u32,
    /// Most regions active at once.
    pub slots: usize,
    table: Box<[AtomicU64]>,
    mask: usize,
    epoch: AtomicU64,
    writers: Box<[Slot]>,
    /// The last batch whose record is durable.
    durable: AtomicU64,
    /// A record write failed: nothing is admitted through the log any more.
    failed: AtomicBool,
    pub pending: Mutex<Pending>,
    membarrier: bool,
    /// The clock hand (group commit only).
    hand: AtomicU64,
}

impl Activity {
    pub(crate) fn new(region_shift: u32, slots: usize, writers: usize) -> Activity {
        let size = (2 * slots).next_power_of_two().max(16);
        Activity {
            region_shift,
            slots,
            table: (0..size).map(|_| AtomicU64::new(0)).collect(),
            mask: size - 1,
            epoch: AtomicU64::new(0),
            writers: (0..writers.max(1)).map(|_| Slot::new()).collect(),
            durable: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            pending: Mutex::new(Pending {
                regions: Vec::with_capacity(slots.max(64)),
                batch: 1,
            }),
            membarrier: membarrier::register(),
            hand: AtomicU64::new(0),
        }
    }

    /// Whether the write path's barrier is a compiler fence (membarrier available).
    pub(crate) fn uses_membarrier(&self) -> bool {
        self.membarrier
    }

    #[inline(always)]
    fn home(&self, region: u64) -> usize {
        (region.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & self.mask
    }

    /// The table index of `region`'s entry and the entry, if present.
    #[inline(always)]
    fn find(&self, region: u64) -> Option<(usize, u64)> {
        let key = region + 1;
        let mut i = self.home(region);
        for _ in 0..=self.mask {
            let e = self.table[i].load(Ordering::SeqCst);
            let k = e >> KEY_SHIFT;
            if k == key {
                return Some((i, e));
            }
            if k == 0 {
                return None;
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// Whether `region` is durably active and not being evicted; notes its use for the clock.
    #[inline(always)]
    fn is_hot(&self, region: u64) -> bool {
        match self.find(region) {
            Some((i, e)) if e & (HOT | EVICTING) == HOT => {
                if e & REF == 0 {
                    self.table[i].fetch_or(REF, Ordering::Relaxed);
                }
                true
            }
            _ => false,
        }
    }

    pub(crate) fn claim_slot(&self) -> Option<u32> {
        let free = self.writers.iter().position(|s| {
            s.taken
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        });
        // Else a slot whose writer was dropped with writes in flight, once they were all
        // released (its counts only move through completers then, and only down).
        free.or_else(|| {
            (0..self.writers.len()).find(|&i| {
                let s = &self.writers[i];
                s.orphaned.load(Ordering::Acquire)
                    && self.slot_in_flight(i as u32) == 0
                    && s.orphaned
                        .compare_exchange(true, false, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
            })
        })
        .map(|i| i as u32)
    }

    /// The writer of `slot` was dropped with writes in flight (see [`Activity::claim_slot`]).
    pub(crate) fn orphan_slot(&self, slot: u32) {
        self.writers[slot as usize]
            .orphaned
            .store(true, Ordering::Release);
    }

    pub(crate) fn writer_count(&self) -> usize {
        self.writers.len()
    }

    /// Writes admitted through `slot` and not yet released.
    pub(crate) fn slot_in_flight(&self, slot: u32) -> u64 {
        let s = &self.writers[slot as usize];
        s.in_flight(0).wrapping_add(s.in_flight(1))
    }

    pub(crate) fn release_slot(&self, slot: u32) {
        self.writers[slot as usize]
            .taken
            .store(false, Ordering::Release);
    }

    /// [`ActivityWriter::begin`] for the writer owning `slot`.
    #[inline]
    pub(crate) fn begin(&self, slot: u32, first: u64, last: u64) -> Result<Admission, ()> {
        let s = &self.writers[slot as usize];
        let parity = (self.epoch.load(Ordering::Acquire) & 1) as usize;
        let c = &s.begun[parity];
        c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        self.writer_fence();
        let (r0, r1) = (first >> self.region_shift, last >> self.region_shift);
        let mut hot = true;
        for r in r0..=r1 {
            if !self.is_hot(r) {
                hot = false;
                break;
            }
        }
        if hot {
            return Ok(Admission::Go(WriteToken {
                slot,
                parity: parity as u8,
            }));
        }
        // Not admitted: take the count back (the write is not in flight) and queue.
        c.store(c.load(Ordering::Relaxed).wrapping_sub(1), Ordering::Release);
        if self.failed.load(Ordering::Acquire) {
            return Err(());
        }
        let mut p = self.pending.lock();
        for r in r0..=r1 {
            if !self.is_hot(r) && p.regions.len() < p.regions.capacity() {
                p.regions.push(r);
            }
        }
        Ok(Admission::Wait(Ticket(p.batch)))
    }

    /// Admits an empty write (no region): counted like any other, so that its completion
    /// balances.
    #[inline]
    pub(crate) fn begin_empty(&self, slot: u32) -> WriteToken {
        let parity = (self.epoch.load(Ordering::Acquire) & 1) as usize;
        let c = &self.writers[slot as usize].begun[parity];
        c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        WriteToken {
            slot,
            parity: parity as u8,
        }
    }

    /// Releases a write admitted by `begin` (the caller marked it first), from its owner.
    #[inline]
    pub(crate) fn end_local(&self, t: WriteToken) {
        let c = &self.writers[t.slot as usize].ended[t.parity as usize];
        c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release);
    }

    /// Releases a write admitted by `begin`, from any thread.
    pub(crate) fn end_remote(&self, t: WriteToken) {
        if let Some(s) = self.writers.get(t.slot as usize) {
            s.ended_remote[t.parity as usize & 1].fetch_add(1, Ordering::Release);
        }
    }

    /// [`ActivityWriter::begin`] for the writer owning `slot`, on `tracker` (the range is
    /// checked against its disk size first).
    #[inline]
    pub(crate) fn admit(
        &self,
        tracker: &crate::tracker::Tracker,
        slot: u32,
        offset: u64,
        len: u64,
    ) -> Result<Admission, super::PersistError> {
        let disk_size = tracker.disk_size.load(std::sync::atomic::Ordering::Acquire);
        let end = match offset.checked_add(len) {
            Some(end) if end <= disk_size => end,
            _ => {
                return Err(crate::TrackerError::OutOfRange {
                    offset,
                    len,
                    disk_size,
                }
                .into())
            }
        };
        if len == 0 {
            // An empty write touches no block and so no region (at the disk end it would name
            // one past the last, which a log record must never hold): admitted at once.
            return Ok(Admission::Go(self.begin_empty(slot)));
        }
        let regions = ((end - 1) >> self.region_shift) - (offset >> self.region_shift) + 1;
        if regions > self.slots as u64 {
            // Its regions can never all be active at once: every group commit would evict
            // what the last one activated for it, forever.
            return Err(super::PersistError::BadActivityLog {
                what: "the write spans more regions than the log keeps active",
                value: regions,
            });
        }
        self.begin(slot, offset, end - 1)
            .map_err(|()| super::PersistError::Poisoned)
    }

    /// Releases `token` from the writer owning `slot`: through its own counter when the token
    /// is that writer's, else through the token's writer's remote counter.
    #[inline(always)]
    pub(crate) fn release(&self, slot: u32, token: WriteToken) {
        if token.slot == slot {
            self.end_local(token);
        } else {
            self.end_remote(token);
        }
    }

    /// The writer owning `slot` goes away. A writer dropped with writes still admitted keeps
    /// its slot: the grace period must go on counting them until a completer releases them.
    pub(crate) fn retire(&self, slot: u32) {
        if self.slot_in_flight(slot) == 0 {
            self.release_slot(slot);
        } else {
            self.orphan_slot(slot);
        }
    }

    #[inline(always)]
    fn writer_fence(&self) {
        crate::sync::writer_fence(self.membarrier);
    }

    /// The evictor's half of the barrier. With membarrier, the writers have only a compiler
    /// fence, so a failed membarrier cannot be replaced by a local fence: `Err`, and the caller
    /// stops admitting writes through the log.
    fn evictor_fence(&self) -> Result<(), ()> {
        if self.membarrier {
            fence(Ordering::SeqCst);
            if !membarrier::barrier() {
                return Err(());
            }
        } else {
            fence(Ordering::SeqCst);
        }
        Ok(())
    }

    pub(crate) fn is_durable(&self, t: Ticket) -> bool {
        self.durable.load(Ordering::Acquire) >= t.0
    }

    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    pub(crate) fn fail(&self) {
        self.failed.store(true, Ordering::Release);
    }

    /// Takes the queued requests for a group commit: the regions (sorted, unique, not already
    /// active) and the batch number they are written as. `spare` is the emptied vector of the
    /// last batch (so that nothing allocates).
    pub(crate) fn take_batch(&self, spare: &mut Vec<u64>) -> u64 {
        spare.clear();
        let mut p = self.pending.lock();
        std::mem::swap(&mut p.regions, spare);
        let batch = p.batch;
        p.batch += 1;
        drop(p);
        spare.sort_unstable();
        spare.dedup();
        spare.retain(|&r| !self.is_active(r));
        batch
    }

    /// Marks `batch` durable (its record was written and synced).
    pub(crate) fn publish(&self, batch: u64) {
        self.durable.store(batch, Ordering::Release);
    }

    /// Whether `region` has an entry that is active (evicting or not).
    pub(crate) fn is_active(&self, region: u64) -> bool {
        self.find(region).is_some_and(|(_, e)| e & HOT != 0)
    }

    /// Chooses up to `n` victims by the clock (skipping regions in `keep`) and flags them as
    /// evicting; returns them in `out`.
    pub(crate) fn choose_victims(&self, n: usize, out: &mut Vec<u64>) {
        out.clear();
        let size = self.mask + 1;
        let mut hand = self.hand.load(Ordering::Relaxed) as usize;
        // Two sweeps: the first clears use bits, the second finds an unused entry for sure.
        for _ in 0..3 * size {
            if out.len() == n {
                break;
            }
            let i = hand & self.mask;
            hand = hand.wrapping_add(1);
            let e = self.table[i].load(Ordering::SeqCst);
            if e >> KEY_SHIFT == 0 || e & HOT == 0 || e & EVICTING != 0 {
                continue;
            }
            if e & REF != 0 {
                self.table[i].fetch_and(!REF, Ordering::SeqCst);
                continue;
            }
            self.table[i].fetch_or(EVICTING, Ordering::SeqCst);
            out.push((e >> KEY_SHIFT) - 1);
        }
        // Writers set use bits again while the hand sweeps: regions in constant use can
        // escape every sweep. The group commit needs `n` victims (else more regions than the
        // slots become active: the bound broken and the table overfilled), so the rest are
        // taken whatever their use bits.
        for i in 0..size {
            if out.len() == n {
                break;
            }
            let e = self.table[i].load(Ordering::SeqCst);
            if e >> KEY_SHIFT == 0 || e & HOT == 0 || e & EVICTING != 0 {
                continue;
            }
            self.table[i].fetch_or(EVICTING, Ordering::SeqCst);
            out.push((e >> KEY_SHIFT) - 1);
        }
        self.hand.store(hand as u64, Ordering::Relaxed);
        out.sort_unstable();
    }

    /// Waits until every write admitted while a victim (flagged before this call) was seen
    /// active has completed: a barrier, then two epoch flips, each followed by a wait for the
    /// old parity's writes to end.
    pub(crate) fn grace_period(&self) -> Result<(), ()> {
        self.evictor_fence()?;
        for _ in 0..2 {
            let old = (self.epoch.fetch_add(1, Ordering::SeqCst) & 1) as usize;
            self.evictor_fence()?;
            let mut spins = 0u32;
            while self.writers.iter().any(|s| s.in_flight(old) != 0) {
                spins = spins.saturating_add(1);
                backoff(spins);
            }
        }
        Ok(())
    }

    /// Removes the evicted regions' entries (they were flagged evicting).
    pub(crate) fn remove(&self, region: u64) {
        let Some((mut i, _)) = self.find(region) else {
            return;
        };
        // Backward-shift deletion: an entry moved forward is written at its new place before
        // its old place is cleared or reused, so a reader may miss an entry (a false "cold",
        // which only sends it to the slow path) but never sees a wrong state for a key.
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let e = self.table[j].load(Ordering::SeqCst);
            if e >> KEY_SHIFT == 0 {
                self.set_entry(i, 0);
                return;
            }
            let k = self.home((e >> KEY_SHIFT) - 1);
            let stays = if i <= j {
                i < k && k <= j
            } else {
                i < k || k <= j
            };
            if !stays {
                self.set_entry(i, e);
                i = j;
            }
        }
    }

    /// Inserts `region` as durably active.
    pub(crate) fn insert(&self, region: u64) {
        let mut i = self.home(region);
        loop {
            let e = self.table[i].load(Ordering::SeqCst);
            if e >> KEY_SHIFT == 0 {
                self.set_entry(i, ((region + 1) << KEY_SHIFT) | HOT);
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Stores a table entry (group commit only). Under loom it is a swap: loom 0.7 does not
    /// order a plain store after a concurrent read-modify-write that read the value before it
    /// (tokio-rs/loom#254), so a writer's `fetch_or(REF)` could seem to undo a move of
    /// `remove`, which real atomics (and C11) rule out; an RMW-RMW pair loom orders right.
    #[inline(always)]
    fn set_entry(&self, i: usize, e: u64) {
        #[cfg(not(loom))]
        self.table[i].store(e, Ordering::SeqCst);
        #[cfg(loom)]
        self.table[i].swap(e, Ordering::SeqCst);
    }
}

/// A write path handle for one I/O thread, from
/// [`PersistentTracker::writer`](super::PersistentTracker::writer).
///
/// `begin` before the driver submits a write, `complete` when it completed. Not `Sync`: one
/// thread uses it at a time (move it between threads freely); a completion on another thread
/// goes through [`ActivityWriter::completer`].
pub struct ActivityWriter {
    /// The slot and the log (not `Sync`, which makes this not `Sync`).
    w: StateFileWriter,
    tracker: Arc<crate::tracker::Tracker>,
}

impl ActivityWriter {
    pub(crate) fn new(
        state: &super::StateFile,
        tracker: Arc<crate::tracker::Tracker>,
    ) -> Result<ActivityWriter, super::PersistError> {
        Ok(ActivityWriter {
            w: state.writer()?,
            tracker,
        })
    }

    /// Asks to write `len` bytes at `offset`, **before** the driver submits the write.
    ///
    /// [`Admission::Go`]: every region the write touches is durably active; submit it, and
    /// call [`ActivityWriter::complete`] with the token when it completed. Lock-free, no
    /// system call, no allocation, no atomic read-modify-write but a region's use bit once between
    /// evictions (with `membarrier(2)`; else one
    /// fence): a load of the epoch, a store to this writer's own counter, the table loads.
    ///
    /// [`Admission::Wait`]: a region is cold. It was queued for activation; wait for the
    /// ticket ([`ActivityWriter::wait`], which writes the group commit itself when no one else
    /// is), then call `begin` again. The write must not be submitted before.
    ///
    /// `len == 0` is admitted at once (no region). A write spanning more regions than
    /// [`ActivityLogConfig::active_regions`](super::ActivityLogConfig::active_regions) is
    /// [`PersistError::BadActivityLog`](super::PersistError::BadActivityLog) (it could never
    /// be admitted). A range past the disk end is
    /// [`TrackerError::OutOfRange`](crate::TrackerError::OutOfRange). After a failed log write
    /// every cold region is [`PersistError::Poisoned`](super::PersistError::Poisoned) (hot ones
    /// still go: their writes are covered).
    #[inline]
    pub fn begin(&self, offset: u64, len: u64) -> Result<Admission, super::PersistError> {
        self.w.begin(&self.tracker, offset, len)
    }

    /// The write admitted by `begin` completed: marks it in the tracker, then releases it
    /// (the region may be evicted only after every write it admitted was released).
    /// Lock-free, no system call, no allocation. Call it on this writer's thread (else use
    /// [`ActivityWriter::completer`]); a token from another writer is released through that
    /// writer's remote counter.
    #[inline]
    pub fn complete(
        &self,
        token: WriteToken,
        offset: u64,
        len: u64,
    ) -> Result<(), crate::TrackerError> {
        self.w.complete(&self.tracker, token, offset, len)
    }

    /// [`ActivityWriter::complete`] for a discard (trim) admitted by `begin`.
    #[inline]
    pub fn complete_discard(
        &self,
        token: WriteToken,
        offset: u64,
        len: u64,
    ) -> Result<(), crate::TrackerError> {
        self.w.complete_discard(&self.tracker, token, offset, len)
    }

    /// A handle that completes this log's writes from any thread (an I/O completion thread):
    /// `Send + Sync + Clone`; one atomic add per completion.
    pub fn completer(&self) -> Completer {
        Completer {
            shared: Arc::clone(&self.w.shared),
            tracker: Arc::clone(&self.tracker),
        }
    }

    /// Waits until `ticket`'s group commit is durable; when no one else is writing one, this
    /// thread writes it (one log write and one fsync for every region queued meanwhile).
    /// Blocks on file I/O. Refused with
    /// [`PersistError::WritesInFlight`](super::PersistError::WritesInFlight) while writes this
    /// writer admitted have not completed (an eviction waits for them: this thread would wait
    /// for itself). After a failed log write:
    /// [`PersistError::Poisoned`](super::PersistError::Poisoned).
    pub fn wait(&self, ticket: Ticket) -> Result<(), super::PersistError> {
        let a = self.w.activity();
        let writes = a.slot_in_flight(self.w.slot);
        if writes != 0 && !a.is_durable(ticket) {
            return Err(super::PersistError::WritesInFlight { writes });
        }
        self.w.shared.wait(&self.tracker, ticket)
    }

    /// Whether `ticket`'s group commit is durable (a load; for drivers that poll).
    pub fn is_durable(&self, ticket: Ticket) -> bool {
        self.w.activity().is_durable(ticket)
    }
}

/// Completes admitted writes from any thread (see [`ActivityWriter::completer`]).
#[derive(Clone)]
pub struct Completer {
    shared: Arc<super::Shared>,
    tracker: Arc<crate::tracker::Tracker>,
}

impl Completer {
    /// [`ActivityWriter::complete`], from any thread.
    pub fn complete(
        &self,
        token: WriteToken,
        offset: u64,
        len: u64,
    ) -> Result<(), crate::TrackerError> {
        let r = self.tracker.mark_write(offset, len);
        if let Some(a) = &self.shared.activity {
            a.end_remote(token);
        }
        r
    }

    /// [`ActivityWriter::complete_discard`], from any thread.
    pub fn complete_discard(
        &self,
        token: WriteToken,
        offset: u64,
        len: u64,
    ) -> Result<(), crate::TrackerError> {
        let r = self.tracker.mark_discard(offset, len);
        if let Some(a) = &self.shared.activity {
            a.end_remote(token);
        }
        r
    }
}

/// Claims a writer slot of `state`'s activity log.
fn claim(state: &super::StateFile) -> Result<(Arc<super::Shared>, u32), super::PersistError> {
    let shared = Arc::clone(&state.shared);
    let a = shared
        .activity
        .as_ref()
        .ok_or(super::PersistError::NoActivityLog)?;
    let slot = a.claim_slot().ok_or(super::PersistError::TooManyWriters {
        max: a.writer_count() as u32,
    })?;
    Ok((shared, slot))
}

/// [`ActivityWriter`] for a caller that owns its [`Tracker`](crate::tracker::Tracker) by value
/// (the C ABI): every call is given the tracker [`StateFile::open`](super::StateFile::open)
/// returned with the state file this writer came from ([`StateFile::writer`](super::StateFile::writer)).
/// Rust callers use [`ActivityWriter`], which keeps the two together. Not `Sync`, like it.
#[doc(hidden)]
pub struct StateFileWriter {
    shared: Arc<super::Shared>,
    slot: u32,
    _not_sync: std::marker::PhantomData<std::cell::Cell<()>>,
}

impl StateFileWriter {
    fn activity(&self) -> &Activity {
        self.shared
            .activity
            .as_ref()
            .expect("a writer exists only with an activity log")
    }

    /// [`ActivityWriter::begin`] on `tracker`.
    #[inline]
    pub fn begin(
        &self,
        tracker: &crate::tracker::Tracker,
        offset: u64,
        len: u64,
    ) -> Result<Admission, super::PersistError> {
        self.activity().admit(tracker, self.slot, offset, len)
    }

    /// [`ActivityWriter::complete`] on `tracker`.
    #[inline]
    pub fn complete(
        &self,
        tracker: &crate::tracker::Tracker,
        token: WriteToken,
        offset: u64,
        len: u64,
    ) -> Result<(), crate::TrackerError> {
        let r = tracker.mark_write(offset, len);
        self.activity().release(self.slot, token);
        r
    }

    /// [`ActivityWriter::complete_discard`] on `tracker`.
    #[inline]
    pub fn complete_discard(
        &self,
        tracker: &crate::tracker::Tracker,
        token: WriteToken,
        offset: u64,
        len: u64,
    ) -> Result<(), crate::TrackerError> {
        let r = tracker.mark_discard(offset, len);
        self.activity().release(self.slot, token);
        r
    }
}

impl Drop for StateFileWriter {
    fn drop(&mut self) {
        self.activity().retire(self.slot);
    }
}

impl super::StateFile {
    /// [`PersistentTracker::writer`](super::PersistentTracker::writer), for the tracker this
    /// state file was opened with.
    pub fn writer(&self) -> Result<StateFileWriter, super::PersistError> {
        let (shared, slot) = claim(self)?;
        Ok(StateFileWriter {
            shared,
            slot,
            _not_sync: std::marker::PhantomData,
        })
    }

    /// Writer handles of this state file that are still alive.
    pub fn open_writers(&self) -> usize {
        Arc::strong_count(&self.shared) - 1
    }

    /// [`ActivityWriter::is_durable`] (`None` without an activity log).
    pub fn is_durable(&self, ticket: Ticket) -> Option<bool> {
        self.shared.activity.as_ref().map(|a| a.is_durable(ticket))
    }

    /// [`Completer::complete`] (or `complete_discard`) on `tracker`, from any thread; without
    /// an activity log, [`PersistError::NoActivityLog`](super::PersistError::NoActivityLog)
    /// and nothing is marked.
    pub fn complete_remote(
        &self,
        tracker: &crate::tracker::Tracker,
        token: WriteToken,
        offset: u64,
        len: u64,
        discard: bool,
    ) -> Result<(), super::PersistError> {
        let a = self
            .shared
            .activity
            .as_ref()
            .ok_or(super::PersistError::NoActivityLog)?;
        let r = if discard {
            tracker.mark_discard(offset, len)
        } else {
            tracker.mark_write(offset, len)
        };
        a.end_remote(token);
        Ok(r?)
    }
}

#[cfg(all(test, not(loom), not(miri)))]
mod review_tests {
    use super::*;

    /// The evictor's read of a slot's count must never see a write in flight as drained.
    /// W is admitted (parity 0) and in flight. The owner loaded the epoch before a flip, so
    /// between the evictor's loads it admits X under the same parity (to a region that is not
    /// a victim) and X completes before W (completions are out of order). Reading `begun`
    /// first and `ended` second sees 1 - 1 = 0: drained, while W, a write to a victim, is
    /// still in flight; the victim's bits are then logged without W's mark (a lost write at
    /// the next crash). Reading the ends first, then `begun`, never undercounts.
    #[test]
    fn a_write_in_flight_is_never_read_as_drained() {
        let a = Activity::new(16, 4, 1);
        let s = &a.writers[0];
        s.begun[0].store(1, Ordering::Relaxed); // W begun
        let n = s.in_flight_with(0, || {
            s.begun[0].store(2, Ordering::Relaxed); // X begun (stale parity)
            s.ended[0].store(1, Ordering::Release); // X completed first
        });
        assert_ne!(n, 0, "W is in flight but the slot reads as drained");
    }
}
