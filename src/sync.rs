//! Atomics used by the lock-free parts, swapped for loom's under `--cfg loom` so the
//! concurrency protocol can be model-checked (`tests/loom_tracker.rs`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
