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

/// The write path's half of Dekker's barrier: a compiler fence where the other side issues
/// `membarrier(2)` for the whole process, else a full fence.
#[inline(always)]
pub(crate) fn writer_fence(membarrier: bool) {
    if membarrier {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
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

pub(crate) mod membarrier {
    //! `membarrier(2)`, private expedited: a full barrier on every thread of the process.

    #[cfg(all(target_os = "linux", not(miri), not(loom)))]
    pub(crate) fn register() -> bool {
        const QUERY: libc::c_int = 0;
        const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
        const REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;
        if std::env::var_os("BLOCKDELTA_NO_MEMBARRIER").is_some() {
            return false;
        }
        // SAFETY: membarrier takes no pointers; an unsupported command fails with an errno.
        let supported = unsafe { libc::syscall(libc::SYS_membarrier, QUERY, 0, 0) };
        if supported < 0 || supported & PRIVATE_EXPEDITED == 0 {
            return false;
        }
        // SAFETY: as above.
        unsafe { libc::syscall(libc::SYS_membarrier, REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 }
    }

    #[cfg(all(target_os = "linux", not(miri), not(loom)))]
    pub(crate) fn barrier() -> bool {
        const PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
        // SAFETY: membarrier takes no pointers.
        unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0, 0) == 0 }
    }

    #[cfg(not(all(target_os = "linux", not(miri), not(loom))))]
    pub(crate) fn register() -> bool {
        false
    }

    #[cfg(not(all(target_os = "linux", not(miri), not(loom))))]
    pub(crate) fn barrier() -> bool {
        false
    }
}
