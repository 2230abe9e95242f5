//! The activity log's lock-free half, opened up for the loom model (`tests/loom_activity.rs`).
//! Compiled only under `--cfg loom`: normal builds have none of this.
//!
//! Each method is the crate-private one of [`Activity`] unchanged (the model checks the real
//! code, with loom's atomics from `crate::sync`), plus [`region_words`], the group commit's
//! snapshot of the victims' dirty bits.

use super::{Activity, Admission, WriteToken};
use crate::tracker::Tracker;

/// An [`Activity`] (the table of active regions and the writers' in-flight counts).
pub struct ActivityModel(Activity);

impl ActivityModel {
    /// `slots` active regions at most, `writers` writer slots, regions of `1 << region_shift`
    /// bytes. Under loom the write path's barrier is a real `fence(SeqCst)` (no membarrier).
    pub fn new(region_shift: u32, slots: usize, writers: usize) -> ActivityModel {
        let a = Activity::new(region_shift, slots, writers);
        assert!(!a.uses_membarrier());
        ActivityModel(a)
    }

    /// A free writer slot (what `PersistentTracker::writer` takes).
    pub fn claim_slot(&self) -> Option<u32> {
        self.0.claim_slot()
    }

    /// Adds `region` as durably active (the end of a group commit).
    pub fn insert(&self, region: u64) {
        self.0.insert(region)
    }

    /// Removes an evicted region's entry, by backward shift (the end of a group commit).
    pub fn remove(&self, region: u64) {
        self.0.remove(region)
    }

    /// `ActivityWriter::begin` for the writer owning `slot`, bytes `first..=last`.
    /// `None` after a failed log write (never in the model).
    pub fn begin(&self, slot: u32, first: u64, last: u64) -> Option<Admission> {
        self.0.begin(slot, first, last).ok()
    }

    /// Releases an admitted write from its owner's thread (`ActivityWriter::complete`).
    pub fn end_local(&self, token: WriteToken) {
        self.0.end_local(token)
    }

    /// Releases an admitted write from any thread (`Completer::complete`).
    pub fn end_remote(&self, token: WriteToken) {
        self.0.end_remote(token)
    }

    /// Chooses up to `n` victims by the clock and flags them as evicting.
    pub fn choose_victims(&self, n: usize) -> Vec<u64> {
        let mut out = Vec::new();
        self.0.choose_victims(n, &mut out);
        out
    }

    /// Waits until every write admitted to a flagged victim has been released.
    pub fn grace_period(&self) {
        self.0
            .grace_period()
            .expect("the barrier cannot fail without membarrier");
    }

    /// The write path's table lookup: durably active and not being evicted (sets the use
    /// bit like a writer does).
    pub fn is_hot(&self, region: u64) -> bool {
        self.0.is_hot(region)
    }

    /// Whether `region` has an active entry, evicting or not.
    pub fn is_active(&self, region: u64) -> bool {
        self.0.is_active(region)
    }

    /// The table index a region's probe starts at (to build colliding keys).
    pub fn home(&self, region: u64) -> usize {
        self.0.home(region)
    }

    /// Writes admitted through `slot` and not yet released.
    pub fn slot_in_flight(&self, slot: u32) -> u64 {
        self.0.slot_in_flight(slot)
    }
}

/// The group commit's snapshot: the dirty bits of `regions` (ascending) as
/// `(64-block word, bits)`.
pub fn region_words(tracker: &Tracker, regions: &[u64], region_shift: u32) -> Vec<(u64, u64)> {
    tracker.region_words(regions, region_shift)
}
