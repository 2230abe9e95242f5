//! The parallel applier: an [`Applier`] whose pure per-frame work (CRC32, AES-256-GCM open,
//! record fields, lz4 decompression) runs on worker threads, while everything that depends on
//! the stream's order, and every call to the target, stays on the caller's thread.
//!
//! Pipeline. `push` splits its input into frames (magic, length limit; [`frame_len`]) and copies
//! each whole frame into a free job of a pool allocated when the stream header is accepted; the
//! workers take jobs from a queue and run [`verify_record`] on them, in any order. The caller's
//! thread takes the finished jobs back strictly in stream order and runs the ordered half
//! ([`Decoder::accept_verified`]: sequence of extents, disk bounds, RESIZE, END totals), then
//! applies the record exactly as [`Applier::push`] does (BOOKMARK syncs, RESIZE, END syncs).
//! When it has to wait for a job it decodes queued ones itself, so `threads` threads decode:
//! the caller's and `threads - 1` workers.
//!
//! Invariants:
//! - every target call (`write_at`, `write_zeroes`, `discard`, `resize`, `sync`, `size`,
//!   `max_size`) is made on the thread calling `push`, `flush` or `finish`, in stream order: the
//!   target is never shared with a worker (so it need not be `Send`, and a C callback is never
//!   called from a library thread);
//! - a frame is applied only after it and every frame before it passed every check; after a
//!   failing frame nothing more is applied, even frames the workers already decoded;
//! - the same input gives the same error variant as [`Applier`], and the target receives the
//!   same calls in the same order (`tests/stream_parallel_apply.rs` checks both on every
//!   single-byte corruption and truncation of streams);
//! - memory is bounded, allocated once at the header: a pool of jobs, each a buffer of one frame
//!   of the stream's declared record size, plus an lz4 buffer of the record size for an lz4
//!   stream and a copy of the header frame for an encrypted one. Two jobs per thread, up to
//!   eight for records below 256 KiB (at most about 1 MiB of frames per two jobs): with 1 MiB lz4
//!   records, 4 jobs of 2 MiB at `threads = 2` (8 MiB); with 64 KiB lz4 records, 16 jobs of
//!   128 KiB (2 MiB). Applying a frame allocates nothing (as for the decoder, a frame above the
//!   declared record size, which only a later writer's optional record type can be, grows its
//!   job's buffer once). The sequential decoder inside keeps its own scratch (about one record
//!   of each kind the stream needs) from the header on, unused after it.
//!
//! `threads = 1` is [`Applier`] itself: no thread, no pool, no copy.
//!
//! The queue uses std's `Mutex` and `Condvar` rather than parking_lot's: on Linux they are a
//! futex each and never allocate, while parking_lot's global wait table grows (allocates) as new
//! threads first park, which would break the no-allocation-per-frame rule at a worker's first
//! wait.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use ring::aead::LessSafeKey;

use super::apply::{pump, Applied, Applier, ApplyTarget, MAX_FRAME_BUFFER};
use super::decoder::{
    frame_len, grow_zeroed, verify_record, DecoderConfig, Expected, FrameLen, Input, Verified,
};
use super::encoder::frame_bound;
use super::error::{Result, StreamError};
use super::format::{
    FEATURE_REQUIRED_LZ4, FRAME_HEADER_LEN, FRAME_HEADER_SIGNED_LEN, MAX_RECORD_PAYLOAD,
};
use super::header::StreamHeader;
use super::record::EndSummary;

/// The most threads a [`ParallelApplier`] takes (each adds two jobs to the pool).
pub const MAX_APPLY_THREADS: usize = 64;

/// Decodes a stream on `threads` threads and applies it to a target on the caller's thread. See
/// the module documentation.
///
/// Compared with [`Applier`], [`ParallelApplier::push`] may return before the frames it
/// accepted are applied: it accepts bytes into the pipeline, and the error of a frame surfaces on
/// a later `push`, on [`ParallelApplier::flush`] or on [`ParallelApplier::finish`], always before
/// anything after that frame is applied. `flush` waits until everything pushed is applied;
/// `finish` flushes, and returns as [`Applier::finish`] does.
///
/// It pays where cores are free: the pipeline costs about 15 to 20 % more CPU than [`Applier`]
/// (a copy of each frame, the queue), and on a machine whose cores are all busy the caller's
/// thread ends up waiting for a preempted worker (`docs/results-parallel-apply.md`).
///
/// ```
/// use blockdelta::stream::encode_to_vec;
/// use blockdelta::{DecoderConfig, EncoderConfig, Extent, GenerationId, ParallelApplier};
///
/// # fn main() -> Result<(), blockdelta::StreamError> {
/// let disk = vec![5u8; 1 << 20];
/// let cfg = EncoderConfig::new(*b"disk-0000000001a", GenerationId([1; 16]), 0, 1, 1 << 20);
/// let wire = encode_to_vec(cfg, &[Extent::new(0, 1 << 20)], &mut disk.clone())?;
/// let mut replica = ParallelApplier::new(DecoderConfig::new(), vec![0u8; 1 << 20], 2);
/// let mut pending = Vec::new(); // bytes received and not yet accepted
/// for chunk in wire.chunks(100_000) {
///     pending.extend_from_slice(chunk);
///     let used = replica.push(&pending)?; // accepted, maybe not yet applied
///     pending.drain(..used); // keep the unconsumed tail, as with `Applier`
/// }
/// assert!(pending.is_empty());
/// replica.finish()?; // everything applied, END verified and synced
/// assert_eq!(replica.applied().expect("finished").to_seq, 1);
/// assert!(replica.into_target() == disk);
/// # Ok(())
/// # }
/// ```
pub struct ParallelApplier<T> {
    inner: Applier<T>,
    threads: usize,
    /// A push was made: the thread count is fixed.
    started: bool,
    /// Created when the header is accepted, when `threads > 1`.
    pipe: Option<Pipeline>,
    consumed: usize,
    /// Bytes of the stream accepted so far: the stream offset of the next push's first byte.
    accepted: u64,
    /// Bytes the last successful push left to the caller (a partial frame).
    tail: usize,
}

impl<T: ApplyTarget> std::fmt::Debug for ParallelApplier<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParallelApplier")
            .field("threads", &self.threads)
            .field("accepted", &self.accepted)
            .field("header", &self.inner.header())
            .finish_non_exhaustive()
    }
}

/// An error and the stream offset where it lies (the failing frame's start, or END's end for
/// trailing data): `consumed` is what of the push's input lies before it.
struct Failure {
    error: StreamError,
    at: u64,
}

impl<T: ApplyTarget> ParallelApplier<T> {
    /// An applier writing to `target` with `threads` decoding threads (the caller's and
    /// `threads - 1` workers, started when the stream header is accepted); 0 is taken as 1 and
    /// more than [`MAX_APPLY_THREADS`] as that.
    pub fn new(config: DecoderConfig, target: T, threads: usize) -> Self {
        ParallelApplier {
            inner: Applier::new(config, target),
            threads: threads.clamp(1, MAX_APPLY_THREADS),
            started: false,
            pipe: None,
            consumed: 0,
            accepted: 0,
            tail: 0,
        }
    }

    /// Changes the thread count; only before the first push ([`StreamError::InvalidState`]
    /// after), 1 to [`MAX_APPLY_THREADS`] ([`StreamError::InvalidArgument`] otherwise).
    pub fn set_threads(&mut self, threads: usize) -> Result<()> {
        if self.started {
            return Err(StreamError::InvalidState {
                reason: "the thread count is set before the first push",
            });
        }
        if !(1..=MAX_APPLY_THREADS).contains(&threads) {
            return Err(StreamError::InvalidArgument {
                reason: "the thread count must be 1 to 64",
            });
        }
        self.threads = threads;
        Ok(())
    }

    /// The thread count.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Replaces the decoder's expectations; only before the header.
    pub fn set_expected(&mut self, expected: Expected) -> Result<()> {
        self.inner.set_expected(expected)
    }

    /// The stream header, once decoded.
    pub fn header(&self) -> Option<&StreamHeader> {
        self.inner.header()
    }

    /// The target. Frames accepted but not yet applied are not in it: [`ParallelApplier::flush`]
    /// first.
    pub fn target(&self) -> &T {
        self.inner.target()
    }

    /// Gives the target back; frames not yet applied are dropped unapplied (the worker threads
    /// are stopped and joined).
    pub fn into_target(self) -> T {
        let ParallelApplier { inner, pipe, .. } = self;
        drop(pipe);
        inner.into_target()
    }

    /// True once END has been verified and the target synced.
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// What was applied, once END has been verified and the target synced; see
    /// [`Applier::applied`].
    pub fn applied(&self) -> Option<Applied> {
        self.inner.applied()
    }

    /// Bytes of the last push's input that were accepted. When that push failed: the bytes
    /// before the failing frame, which were verified and applied (0 when the failing frame came
    /// with an earlier push), as [`Applier::consumed`].
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// Accepts every whole frame at the start of `input` into the pipeline and returns how many
    /// bytes that is (frames accepted may not be applied yet); the caller keeps the rest and
    /// calls again with it plus more bytes, as with [`Applier::push`]. Blocks while the pool is
    /// full, applying frames (and decoding queued ones) meanwhile. An error is the first failing
    /// frame's, which may have come with an earlier push; it poisons the applier, except trailing
    /// data after END ([`StreamError::TrailingData`]: the applier stays finished). With
    /// `threads = 1`, exactly [`Applier::push`].
    pub fn push(&mut self, input: &[u8]) -> Result<usize> {
        self.started = true;
        if self.threads == 1 {
            let r = self.inner.push(input);
            self.consumed = self.inner.consumed();
            return r;
        }
        self.consumed = 0;
        if self.inner.is_failed() {
            return Err(StreamError::Poisoned);
        }
        if self.inner.is_finished() {
            // As the decoder after END: bytes are trailing data, nothing is no-op.
            self.tail = 0;
            return match input.len() {
                0 => Ok(0),
                len => Err(self.inner.refuse(StreamError::TrailingData { len })),
            };
        }
        let start = self.accepted;
        match self.push_frames(input) {
            Ok(used) => {
                self.consumed = used;
                self.tail = input.len() - used;
                Ok(used)
            }
            Err(Failure { error, at }) => {
                self.tail = 0;
                self.consumed = at.saturating_sub(start).min(input.len() as u64) as usize;
                Err(self.inner.refuse(error))
            }
        }
    }

    /// Waits until every frame pushed is applied. Returns the first failing frame's error if
    /// there is one (see [`ParallelApplier::push`]), and [`StreamError::TrailingData`] when END
    /// was applied and bytes had been pushed after it (the applier stays finished).
    pub fn flush(&mut self) -> Result<()> {
        if self.inner.is_failed() {
            return Err(StreamError::Poisoned);
        }
        let Some(pipe) = self.pipe.as_mut() else {
            return Ok(());
        };
        // Trailing data is reported once: by the push that applied END, else here.
        let was_finished = self.inner.is_finished();
        let r = pipe
            .apply_in_order(&mut self.inner, true)
            .and_then(|()| match pipe.end_at {
                Some(end) if !was_finished && (self.accepted > end || self.tail > 0) => {
                    Err(pipe.trailing(self.accepted, end, self.tail))
                }
                _ => Ok(()),
            });
        self.tail = 0;
        r.map_err(|f| self.inner.refuse(f.error))
    }

    /// Call at the end of input: flushes, then returns as [`Applier::finish`] does (the END
    /// totals once END was verified and the target synced, `Truncated` if END never came,
    /// `Poisoned` after an earlier error). An error found by the flush is returned instead
    /// (once: trailing data after END is reported, and the next call returns the totals).
    pub fn finish(&mut self) -> Result<EndSummary> {
        if self.threads > 1 {
            self.flush()?;
        }
        self.inner.finish()
    }

    /// Reads the whole stream from `reader` and applies it; returns the END totals, as
    /// [`Applier::apply_from`]. Allocates one buffer of twice a frame's maximum size (a read
    /// fills it while whole frames are handed to the pipeline). A read interrupted by a signal
    /// is retried; any other read error is returned as [`StreamError::SourceIo`] at once, with
    /// frames read before it possibly still in the pipeline: [`ParallelApplier::flush`] applies
    /// them (the sequential applier has applied them already).
    pub fn apply_from<R: std::io::Read>(&mut self, reader: R) -> Result<EndSummary> {
        pump(reader, 2 * MAX_FRAME_BUFFER, |input| self.push(input))?;
        self.finish()
    }

    fn push_frames(&mut self, input: &[u8]) -> std::result::Result<usize, Failure> {
        let mut used = 0;
        if self.pipe.is_none() {
            // The header frame (or what is there of it) goes to the sequential applier.
            let n = match frame_len(input, true) {
                Ok(FrameLen::Whole(total)) => total,
                _ => input.len(),
            };
            let r = self.inner.push(&input[..n]);
            used = self.inner.consumed();
            self.accepted += used as u64;
            if let Err(error) = r {
                return Err(Failure {
                    error,
                    at: self.accepted,
                });
            }
            if self.inner.header().is_none() {
                return Ok(used);
            }
            self.pipe = Some(Pipeline::new(&self.inner, self.threads));
        }
        let Some(pipe) = self.pipe.as_mut() else {
            return Ok(used);
        };
        loop {
            pipe.apply_in_order(&mut self.inner, false)?;
            let rest = &input[used..];
            match pipe.end_at {
                Some(end) if self.accepted > end || !rest.is_empty() => {
                    return Err(pipe.trailing(self.accepted, end, rest.len()));
                }
                _ => {}
            }
            if rest.is_empty() {
                pipe.wake();
                return Ok(used);
            }
            match frame_len(rest, false) {
                Ok(FrameLen::NeedMore(_)) => {
                    pipe.wake();
                    return Ok(used);
                }
                Ok(FrameLen::Whole(total)) => {
                    if !pipe.dispatch(&rest[..total], self.accepted) {
                        // The pool is in flight: apply the oldest job (decoding meanwhile).
                        pipe.apply_next(&mut self.inner, true)?;
                        continue;
                    }
                    used += total;
                    self.accepted += total as u64;
                }
                Err(error) => {
                    // The frames before this one come first: their errors, or END.
                    pipe.apply_in_order(&mut self.inner, true)?;
                    if let Some(end) = pipe.end_at {
                        return Err(pipe.trailing(self.accepted, end, rest.len()));
                    }
                    return Err(Failure {
                        error,
                        at: self.accepted,
                    });
                }
            }
        }
    }
}

/// The worker threads, the job pool and the stream order of the jobs in flight.
struct Pipeline {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Jobs not in flight; every job is here, in the queue or in a worker's hands.
    free: Vec<Job>,
    slots: usize,
    /// Queued frames for which an idle worker is woken.
    wake_at: usize,
    /// Sequence number of the next frame accepted.
    next_seq: u64,
    /// Sequence number of the oldest frame accepted and not yet applied.
    next_apply: u64,
    /// The stream offset where END ends, once END is applied.
    end_at: Option<u64>,
}

/// What the caller's thread and the workers share: the stream's key material and the queue.
struct Shared {
    header: StreamHeader,
    key: Option<LessSafeKey>,
    queue: Mutex<Queue>,
    /// Signalled when a job is queued or the workers must stop.
    work: Condvar,
    /// Signalled when a job is done or a worker started.
    done: Condvar,
}

struct Queue {
    /// Jobs to decode, in stream order (capacity: every job).
    todo: VecDeque<Job>,
    /// Decoded jobs, at `seq % slots` (at most `slots` consecutive frames are in flight).
    done: Vec<Option<Job>>,
    started: usize,
    stop: bool,
    /// Workers waiting for `work`, and whether the caller waits for `done`: a condition
    /// variable is signalled only when someone waits on it (a signal is a system call).
    idle_workers: usize,
    caller_waits: bool,
}

/// One frame and its scratch.
struct Job {
    seq: u64,
    /// Stream offset of the frame.
    offset: u64,
    /// Frame length; the frame is `frame[..len]`.
    len: usize,
    frame: Vec<u8>,
    /// The header frame and room for a signed frame header (encrypted streams only).
    aad: Vec<u8>,
    /// Decompressed lz4 DATA (lz4 streams only).
    decomp: Vec<u8>,
    outcome: Outcome,
}

enum Outcome {
    Pending,
    /// `verify_record`'s result, with the plaintext record's length at `frame[24..]`.
    Done(Result<(Verified, usize)>),
    Panicked(Box<dyn Any + Send>),
}

/// The queue's lock. A worker never panics while holding it (decoding runs unlocked, under
/// `catch_unwind`), so a poisoned lock still holds a consistent queue.
fn lock(m: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn wait<'a>(c: &Condvar, g: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
    c.wait(g).unwrap_or_else(PoisonError::into_inner)
}

impl Job {
    /// The pure half of decoding, on any thread.
    fn run(&mut self, shared: &Shared) {
        let Job {
            seq,
            len,
            frame,
            aad,
            decomp,
            ..
        } = self;
        let r = catch_unwind(AssertUnwindSafe(|| {
            // Frames are opened in place: the plaintext buffer of `verify_record` stays empty.
            let mut plain = Vec::new();
            let frame = Input::Mut(&mut frame[..*len]);
            verify_record(
                &shared.header,
                shared.key.as_ref(),
                aad,
                *seq,
                frame,
                &mut plain,
                decomp,
            )
            .map(|(v, rec)| (v, rec.len()))
        }));
        self.outcome = match r {
            Ok(r) => Outcome::Done(r),
            Err(payload) => Outcome::Panicked(payload),
        };
    }
}

fn worker(shared: Arc<Shared>) {
    let mut q = lock(&shared.queue);
    q.started += 1;
    shared.done.notify_one();
    loop {
        if q.stop {
            return;
        }
        match q.todo.pop_front() {
            Some(mut job) => {
                drop(q);
                job.run(&shared);
                q = lock(&shared.queue);
                let slot = (job.seq % q.done.len() as u64) as usize;
                q.done[slot] = Some(job);
                if q.caller_waits {
                    shared.done.notify_one();
                }
            }
            None => {
                q.idle_workers += 1;
                q = wait(&shared.work, q);
                q.idle_workers -= 1;
            }
        }
    }
}

impl Pipeline {
    /// The pool and the workers for the stream whose header `inner` accepted.
    fn new<T: ApplyTarget>(inner: &Applier<T>, threads: usize) -> Pipeline {
        let decoder = inner.decoder();
        // The applier accepted the header before the pipeline is made.
        let header = decoder.header().copied().unwrap_or_else(|| unreachable!());
        let key = decoder.stream_key();
        let payload = header.max_record_payload as usize;
        let frame_cap = frame_bound(header.max_record_payload, key.is_some());
        let lz4 = header.required_features & FEATURE_REQUIRED_LZ4 != 0;
        let header_frame = decoder.header_frame();
        // Two jobs per thread, and up to four times more for records below 256 KiB, so that
        // short frames do not make the threads wait for each other (a larger pool measured no
        // better: the jobs' buffers then fall out of the caches between the threads).
        let per_thread = (MAX_RECORD_PAYLOAD / frame_cap).clamp(1, 4);
        let slots = 2 * threads * per_thread;
        let free: Vec<Job> = (0..slots)
            .map(|_| {
                let mut aad = Vec::new();
                if key.is_some() {
                    aad = vec![0u8; header_frame.len() + FRAME_HEADER_SIGNED_LEN];
                    aad[..header_frame.len()].copy_from_slice(header_frame);
                }
                Job {
                    seq: 0,
                    offset: 0,
                    len: 0,
                    frame: vec![0u8; frame_cap],
                    aad,
                    decomp: if lz4 { vec![0u8; payload] } else { Vec::new() },
                    outcome: Outcome::Pending,
                }
            })
            .collect();
        let shared = Arc::new(Shared {
            header,
            key,
            queue: Mutex::new(Queue {
                todo: VecDeque::with_capacity(slots),
                done: (0..slots).map(|_| None).collect(),
                started: 0,
                stop: false,
                idle_workers: 0,
                caller_waits: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
        });
        let mut workers = Vec::with_capacity(threads - 1);
        for _ in 1..threads {
            let s = Arc::clone(&shared);
            // A thread the system refuses is one decoder less: the caller's thread decodes
            // whatever the workers do not.
            match std::thread::Builder::new()
                .name("blockdelta-apply".into())
                .spawn(move || worker(s))
            {
                Ok(handle) => workers.push(handle),
                Err(_) => break,
            }
        }
        // Wait until every worker runs, so that none is still starting (and allocating) when the
        // first frames come.
        let mut q = lock(&shared.queue);
        while q.started < workers.len() {
            q = wait(&shared.done, q);
        }
        drop(q);
        Pipeline {
            shared,
            workers,
            free,
            slots,
            // About 256 KiB of frames (a thread's wake-up costs some microseconds).
            wake_at: ((256 << 10) / frame_cap).clamp(1, slots / threads),
            next_seq: 1,
            next_apply: 1,
            end_at: None,
        }
    }

    /// Copies `frame` (a whole frame at stream offset `offset`) into a free job and queues it;
    /// false when every job is in flight.
    fn dispatch(&mut self, frame: &[u8], offset: u64) -> bool {
        let Some(mut job) = self.free.pop() else {
            return false;
        };
        grow_zeroed(&mut job.frame, frame.len());
        job.frame[..frame.len()].copy_from_slice(frame);
        job.len = frame.len();
        job.seq = self.next_seq;
        job.offset = offset;
        job.outcome = Outcome::Pending;
        self.next_seq += 1;
        let mut q = lock(&self.shared.queue);
        q.todo.push_back(job);
        // Waking a thread costs about as much as decoding a small frame: an idle worker is woken
        // for a few queued frames at a time (and at the end of a push, by `wake`).
        if q.idle_workers > 0 && q.todo.len() >= self.wake_at {
            self.shared.work.notify_one();
        }
        true
    }

    /// Wakes an idle worker if frames are queued: before the caller's thread goes away.
    fn wake(&self) {
        let q = lock(&self.shared.queue);
        if q.idle_workers > 0 && !q.todo.is_empty() {
            self.shared.work.notify_all();
        }
    }

    /// The job of frame `seq` once decoded; with `wait`, waits for it, decoding queued jobs
    /// on this thread meanwhile.
    fn take(&self, seq: u64, wait_for_it: bool) -> Option<Job> {
        let slot = (seq % self.slots as u64) as usize;
        let mut q = lock(&self.shared.queue);
        loop {
            if let Some(job) = q.done[slot].take() {
                return Some(job);
            }
            if !wait_for_it {
                return None;
            }
            match q.todo.pop_front() {
                Some(mut job) => {
                    drop(q);
                    job.run(&self.shared);
                    q = lock(&self.shared.queue);
                    let s = (job.seq % self.slots as u64) as usize;
                    q.done[s] = Some(job);
                }
                None => q = self.wait_done(q),
            }
        }
    }

    /// Applies the oldest frame in flight if it is decoded (or, with `wait`, once it is);
    /// returns whether one was applied. Nothing is applied after END or after an error; an
    /// error discards every frame in flight.
    fn apply_next<T: ApplyTarget>(
        &mut self,
        inner: &mut Applier<T>,
        wait_for_it: bool,
    ) -> std::result::Result<bool, Failure> {
        if self.next_apply == self.next_seq || self.end_at.is_some() {
            return Ok(false);
        }
        let Some(mut job) = self.take(self.next_apply, wait_for_it) else {
            return Ok(false);
        };
        self.next_apply += 1;
        let verified = match std::mem::replace(&mut job.outcome, Outcome::Pending) {
            Outcome::Done(r) => r,
            Outcome::Panicked(payload) => {
                // A bug, not an input error: the panic goes on on the caller's thread, as it
                // would have in `Applier`, and the applier is poisoned.
                self.free.push(job);
                inner.refuse(StreamError::Poisoned);
                resume_unwind(payload)
            }
            Outcome::Pending => Err(StreamError::InvalidState {
                reason: "a frame was not decoded",
            }),
        };
        let rec_len = verified.as_ref().map_or(0, |(_, n)| *n);
        let rec = &job.frame[FRAME_HEADER_LEN..FRAME_HEADER_LEN + rec_len];
        let r = inner.apply_verified(
            &job.frame[..job.len],
            verified.map(|(v, _)| v),
            rec,
            &job.decomp,
        );
        let (offset, end) = (job.offset, job.offset + job.len as u64);
        self.free.push(job);
        if let Err(error) = r {
            self.discard();
            return Err(Failure { error, at: offset });
        }
        if inner.is_finished() {
            self.end_at = Some(end);
        }
        Ok(true)
    }

    /// Applies the frames in flight, in order, up to END or the first one not decoded yet
    /// (with `wait`: waiting for each, so up to END or the last one).
    fn apply_in_order<T: ApplyTarget>(
        &mut self,
        inner: &mut Applier<T>,
        wait_for_them: bool,
    ) -> std::result::Result<(), Failure> {
        while self.apply_next(inner, wait_for_them)? {}
        Ok(())
    }

    /// Frames after END: `accepted - end` bytes in flight and `rest` more in the caller's input.
    /// Discards the frames in flight.
    fn trailing(&mut self, accepted: u64, end: u64, rest: usize) -> Failure {
        self.discard();
        let len = (accepted - end) as usize + rest;
        Failure {
            error: StreamError::TrailingData { len },
            at: end,
        }
    }

    /// Waits until a worker has finished a job.
    fn wait_done<'a>(&self, mut q: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        q.caller_waits = true;
        let mut q = wait(&self.shared.done, q);
        q.caller_waits = false;
        q
    }

    /// Takes every job back without applying it: queued ones at once, the others when their
    /// worker is done with them.
    fn discard(&mut self) {
        let mut q = lock(&self.shared.queue);
        while let Some(job) = q.todo.pop_front() {
            self.free.push(job);
        }
        loop {
            for slot in q.done.iter_mut() {
                if let Some(job) = slot.take() {
                    self.free.push(job);
                }
            }
            if self.free.len() == self.slots {
                break;
            }
            q = self.wait_done(q);
        }
        self.next_apply = self.next_seq;
    }
}

impl Drop for Pipeline {
    /// Stops the workers (a job being decoded is finished first) and joins them.
    fn drop(&mut self) {
        lock(&self.shared.queue).stop = true;
        self.shared.work.notify_all();
        for w in self.workers.drain(..) {
            // A worker's panics are caught per job; a failed join has nothing left to clean.
            let _ = w.join();
        }
    }
}
