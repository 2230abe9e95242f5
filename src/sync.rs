//! Atomics used by the lock-free parts, swapped for loom's under `--cfg loom` so the
//! concurrency protocols can be model-checked (`tests/loom_tracker.rs`,
//! `tests/loom_activity.rs`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};

/// A compiler-only fence (loom has none: there it is a full fence, which only strengthens the
/// model).
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::compiler_fence;
#[cfg(loom)]
pub(crate) fn compiler_fence(order: Ordering) {
    fence(order)
}

/// A pause inside a wait loop (under loom, a yield the model checker schedules).
pub(crate) fn backoff(spins: u32) {
    #[cfg(loom)]
    {
        let _ = spins;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        if spins < 64 {
            std::hint::spin_loop();
        } else if spins < 128 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }
}
