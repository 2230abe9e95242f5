//! `ParallelEncoder`: the encoder with every core at work, producing the very bytes
//! [`Encoder`] produces.
//!
//! The caller's thread plans and reads: it walks the extent list, asks the source where its
//! holes are and to read ahead, reads each record into a job buffer, splits it into pieces
//! (runs of all-zero blocks and of other blocks) and numbers every frame. Worker threads
//! compress, seal and checksum whole jobs. Frames come out strictly in stream order. What a
//! frame holds depends only on the source's bytes and holes, the configuration and its
//! sequence number, never on which thread built it; so the stream is the same, byte for byte,
//! for any thread count, and the same as [`Encoder::next_frame`] would write for that list
//! (with the same salt and nonce prefix; a real stream draws them at random).
//!
//! Every buffer is allocated in [`ParallelEncoder::new`]: `2 * threads + 1` jobs (1 with one
//! thread) of `2 * record_size + (record_size / block_size + 514) * 88` bytes each (about
//! 2.2 MiB for 1 MiB records of 4 KiB blocks, but 11x the record size for 4 KiB records of
//! 512-byte blocks), a record-size carry buffer, and one lz4 scratch per thread. Producing frames allocates
//! nothing. Source calls ([`BlockSource`]) happen only on the thread calling
//! [`ParallelEncoder::next_frame`] / [`ParallelEncoder::next_frames`].

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::encoder::{
    check_range, check_room, data_record, first_piece, range_record, read_source, Encoder,
    EncoderConfig, Lz4Scratch, Sealer, Unit, DATA_PAYLOAD_AT,
};
use super::error::{Result, StreamError};
use super::format::*;
use super::header::StreamHeader;
use super::record::{Bookmark, Codec, EndSummary};
use super::source::BlockSource;
use crate::tracker::{Extent, ExtentKind};

/// Most records (extents or pieces of extents, each read or range) in one job.
const JOB_RECORDS: usize = 256;

#[derive(Clone, Copy, Debug)]
struct Piece {
    rtype: u16,
    offset: u64,
    len: u64,
    /// End of the record the piece belongs to (a record's pieces are contiguous in `data`).
    rec_end: u64,
    /// Where a DATA piece's bytes start in the job's data buffer.
    at: usize,
}

/// A run of consecutive frames: planned and read by the caller, built by any thread.
struct Job {
    /// Order of the job in the stream (jobs are handed out in this order).
    number: u64,
    first_seq: u64,
    data: Box<[u8]>,
    used: usize,
    records: usize,
    pieces: Vec<Piece>,
    out: Box<[u8]>,
    /// End of each frame in `out`.
    ends: Vec<usize>,
    /// Frames already handed out.
    taken: usize,
    error: Option<StreamError>,
}

impl Job {
    fn new(record_size: usize, max_pieces: usize, out_len: usize) -> Box<Job> {
        Box::new(Job {
            number: 0,
            first_seq: 0,
            data: vec![0u8; record_size].into_boxed_slice(),
            used: 0,
            records: 0,
            pieces: Vec::with_capacity(max_pieces),
            out: vec![0u8; out_len].into_boxed_slice(),
            ends: Vec::with_capacity(max_pieces),
            taken: 0,
            error: None,
        })
    }

    fn reset(&mut self, number: u64) {
        self.number = number;
        self.used = 0;
        self.records = 0;
        self.pieces.clear();
        self.ends.clear();
        self.taken = 0;
        self.error = None;
    }

    /// Builds every frame of the job into `out`.
    fn build(&mut self, sealer: &mut Sealer, compression: Codec, lz4: &mut Lz4Scratch) {
        let mut pos = 0usize;
        for (i, p) in self.pieces.iter().enumerate() {
            let dst = &mut self.out[pos..];
            let plain = if p.rtype == REC_DATA {
                let data = &self.data[p.at..p.at + p.len as usize];
                data_record(dst, p.offset, data, compression, lz4)
            } else {
                range_record(dst, p.rtype, p.offset, p.len)
            };
            match sealer.seal(dst, self.first_seq + i as u64, plain) {
                Ok(n) => pos += n,
                Err(e) => {
                    self.error = Some(e);
                    return;
                }
            }
            self.ends.push(pos);
        }
    }
}

/// Jobs waiting for a thread, jobs built, and the stop flag; preallocated queues.
struct Shared {
    todo: Mutex<(VecDeque<Box<Job>>, bool)>,
    todo_cv: Condvar,
    done: Mutex<VecDeque<Box<Job>>>,
    done_cv: Condvar,
    /// Workers that have started (`new` waits for all).
    started: Mutex<usize>,
    started_cv: Condvar,
}

fn worker(shared: Arc<Shared>, mut sealer: Sealer, compression: Codec, mut lz4: Lz4Scratch) {
    {
        // A wait that returns at once makes this thread's parking data now, so that no
        // thread allocates once the encoder is built.
        let mut todo = shared.todo.lock();
        let _ = shared.todo_cv.wait_for(&mut todo, Duration::ZERO);
    }
    *shared.started.lock() += 1;
    shared.started_cv.notify_all();
    loop {
        let mut job = {
            let mut todo = shared.todo.lock();
            loop {
                if let Some(j) = todo.0.pop_front() {
                    break j;
                }
                if todo.1 {
                    return;
                }
                shared.todo_cv.wait(&mut todo);
            }
        };
        run(&mut job, &mut sealer, compression, &mut lz4);
        shared.done.lock().push_back(job);
        shared.done_cv.notify_all();
    }
}

/// Builds a job; a panic becomes the job's error (and the encoder's), never a lost job.
fn run(job: &mut Job, sealer: &mut Sealer, compression: Codec, lz4: &mut Lz4Scratch) {
    if catch_unwind(AssertUnwindSafe(|| job.build(sealer, compression, lz4))).is_err() {
        job.error = Some(StreamError::InvalidState {
            reason: "an encoder thread panicked",
        });
    }
}

/// An [`Encoder`] that compresses, seals and checksums on several threads. See the module
/// documentation.
///
/// Use: [`ParallelEncoder::write_header`], then for each extent list
/// [`ParallelEncoder::set_extents`] and [`ParallelEncoder::next_frame`] (or
/// [`ParallelEncoder::next_frames`]) until `None`, then bookmarks and
/// [`ParallelEncoder::finish`] as with [`Encoder`].
pub struct ParallelEncoder {
    enc: Encoder,
    threads: usize,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Jobs ready to fill. Boxed: jobs move between threads and queues as one pointer.
    #[allow(clippy::vec_box)]
    free: Vec<Box<Job>>,
    /// Built jobs by `number % slots.len()`.
    slots: Vec<Option<Box<Job>>>,
    /// Jobs handed to threads and not yet back in `slots`.
    queued: usize,
    list: Vec<Extent>,
    /// Planning position in `list`: extent index and bytes of it planned.
    plan: (usize, u64),
    /// End of the last planned record (the order check for planning).
    plan_end: u64,
    next_number: u64,
    next_seq: u64,
    /// The job whose frames are handed out next.
    head: u64,
    /// A planning or read error, returned once every frame before it is out.
    pending_error: Option<StreamError>,
    /// The rest of a record cut by a replaced list: (disk offset, start in `carry_buf`, length).
    carry: Option<(u64, usize, usize)>,
    carry_buf: Box<[u8]>,
    failed: bool,
}

impl std::fmt::Debug for ParallelEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParallelEncoder")
            .field("encoder", &self.enc)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl ParallelEncoder {
    /// An encoder for `config` using `threads` threads in all (at least 1): the caller's and
    /// `threads - 1` workers started now. With 1 it runs entirely on the caller's thread.
    pub fn new(config: EncoderConfig, threads: usize) -> Result<Self> {
        if threads == 0 || threads > 256 {
            return Err(StreamError::InvalidArgument {
                reason: "threads must be 1 to 256",
            });
        }
        let enc = Encoder::new(config)?;
        let record_size = enc.record_size;
        let block_size = enc.header.block_size as usize;
        let max_pieces = record_size.div_ceil(block_size) + 2 * JOB_RECORDS + 2;
        let frame_overhead = DATA_PAYLOAD_AT + enc.sealer.tag_len();
        let out_len = record_size + max_pieces * frame_overhead;
        let jobs = if threads == 1 { 1 } else { 2 * threads + 1 };
        let free: Vec<Box<Job>> = (0..jobs)
            .map(|_| Job::new(record_size, max_pieces, out_len))
            .collect();
        let shared = Arc::new(Shared {
            todo: Mutex::new((VecDeque::with_capacity(jobs), false)),
            todo_cv: Condvar::new(),
            done: Mutex::new(VecDeque::with_capacity(jobs)),
            done_cv: Condvar::new(),
            started: Mutex::new(0),
            started_cv: Condvar::new(),
        });
        let mut workers = Vec::with_capacity(threads - 1);
        for i in 1..threads {
            let (for_worker, sealer, compression) =
                (shared.clone(), enc.sealer.clone(), enc.compression);
            let lz4 = Lz4Scratch::new(enc.compression, record_size);
            let spawned = std::thread::Builder::new()
                .name(format!("blockdelta-enc-{i}"))
                .spawn(move || worker(for_worker, sealer, compression, lz4));
            match spawned {
                Ok(h) => workers.push(h),
                Err(_) => {
                    stop(&shared, &mut workers);
                    return Err(StreamError::InvalidState {
                        reason: "could not start an encoder thread",
                    });
                }
            }
        }
        // Every worker running, and this thread's parking data made, before returning.
        let mut started = shared.started.lock();
        let _ = shared.started_cv.wait_for(&mut started, Duration::ZERO);
        while *started < workers.len() {
            shared.started_cv.wait(&mut started);
        }
        drop(started);
        Ok(ParallelEncoder {
            enc,
            threads,
            shared,
            workers,
            free,
            slots: (0..jobs).map(|_| None).collect(),
            queued: 0,
            list: Vec::new(),
            plan: (0, 0),
            plan_end: 0,
            next_number: 0,
            next_seq: 0,
            head: 0,
            pending_error: None,
            carry: None,
            carry_buf: vec![0u8; record_size].into_boxed_slice(),
            failed: false,
        })
    }

    /// Threads in all, the caller's included.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The stream header this encoder writes.
    pub fn header(&self) -> &StreamHeader {
        self.enc.header()
    }

    /// The largest frame this encoder writes: every `dst` of at least this size is enough.
    pub fn max_frame_len(&self) -> usize {
        self.enc.max_frame_len()
    }

    /// True once END has been written.
    pub fn is_finished(&self) -> bool {
        self.enc.is_finished()
    }

    /// Writes the stream header frame; must come first.
    pub fn write_header(&mut self, dst: &mut [u8]) -> Result<usize> {
        self.enc.write_header(dst)
    }

    /// Takes the extents to encode next (copied; the capacity is kept for the next list),
    /// replacing any list whose frames are not all out (frames already out stay out; the rest
    /// of that list is dropped, as with a new cursor on [`Encoder::next_frame`]). The list must
    /// ascend without overlap, after everything already encoded, within the disk (checked now,
    /// as [`Encoder::check_extents`]).
    pub fn set_extents(&mut self, extents: &[Extent]) -> Result<()> {
        if self.failed {
            return Err(StreamError::Poisoned);
        }
        self.enc.check_extents(extents)?;
        self.keep_cut_record();
        self.drop_pipeline();
        self.list.clear();
        self.list.extend_from_slice(extents);
        self.plan = (0, 0);
        self.plan_end = self.enc.last_end;
        self.next_seq = self.enc.seq;
        Ok(())
    }

    /// When the head job's frames are partly out and the record in progress has pieces left,
    /// keeps that record's remaining bytes for the next list (see `fill`).
    fn keep_cut_record(&mut self) {
        let slot = self.slot(self.head);
        let Some(job) = self.slots[slot].as_ref().filter(|j| j.number == self.head) else {
            return;
        };
        if job.taken == 0 || job.taken >= job.pieces.len() || job.error.is_some() {
            return;
        }
        let (done, next) = (job.pieces[job.taken - 1], job.pieces[job.taken]);
        if next.offset >= done.rec_end {
            return; // the record in progress is all out
        }
        let len = (done.rec_end - next.offset) as usize;
        self.carry_buf[..len].copy_from_slice(&job.data[next.at..next.at + len]);
        self.carry = Some((next.offset, 0, len));
    }

    /// Drops every planned frame not yet out: waits for the jobs on other threads.
    fn drop_pipeline(&mut self) {
        while self.queued > 0 {
            let mut done = self.shared.done.lock();
            while let Some(job) = done.pop_front() {
                self.free.push(job);
                self.queued -= 1;
            }
            if self.queued > 0 && done.is_empty() {
                // A queued job nobody has picked up yet: take it back.
                if let Some(job) = self.shared.todo.lock().0.pop_front() {
                    self.free.push(job);
                    self.queued -= 1;
                    continue;
                }
                self.shared.done_cv.wait(&mut done);
            }
        }
        for slot in &mut self.slots {
            if let Some(job) = slot.take() {
                self.free.push(job);
            }
        }
        self.head = self.next_number;
        self.pending_error = None;
    }

    /// Copies the next frame of the list into `dst`; `None` once every frame is out. On error
    /// nothing is consumed (a `dst` too small, or a source read that failed: the same call
    /// may be retried); an error building a frame poisons the encoder.
    pub fn next_frame<S: BlockSource + ?Sized>(
        &mut self,
        source: &mut S,
        dst: &mut [u8],
    ) -> Result<Option<usize>> {
        if !self.advance(source)? {
            return Ok(None);
        }
        let job = self.head_job();
        let start = if job.taken == 0 {
            0
        } else {
            job.ends[job.taken - 1]
        };
        let frame = &job.out[start..job.ends[job.taken]];
        check_room(dst, frame.len())?;
        dst[..frame.len()].copy_from_slice(frame);
        let n = frame.len();
        self.hand_out(1);
        Ok(Some(n))
    }

    /// The next whole frames of the list (one or more, concatenated), borrowed until the next
    /// call: no copy. `None` once every frame is out. Errors as [`ParallelEncoder::next_frame`].
    pub fn next_frames<S: BlockSource + ?Sized>(
        &mut self,
        source: &mut S,
    ) -> Result<Option<&[u8]>> {
        if !self.advance(source)? {
            return Ok(None);
        }
        let job = self.head_job();
        let frames = job.ends.len() - job.taken;
        let start = if job.taken == 0 {
            0
        } else {
            job.ends[job.taken - 1]
        };
        let end = job.ends[job.ends.len() - 1];
        self.hand_out(frames);
        Ok(Some(&self.head_job().out[start..end]))
    }

    /// Writes a ZERO record; every frame of the list must be out.
    pub fn write_zero(&mut self, offset: u64, len: u64, dst: &mut [u8]) -> Result<usize> {
        self.idle("write_zero")?;
        self.enc.write_zero(offset, len, dst)
    }

    /// Writes a DISCARD record; every frame of the list must be out.
    pub fn write_discard(&mut self, offset: u64, len: u64, dst: &mut [u8]) -> Result<usize> {
        self.idle("write_discard")?;
        self.enc.write_discard(offset, len, dst)
    }

    /// Writes a RESIZE record; every frame of the list must be out.
    pub fn write_resize(&mut self, new_size: u64, dst: &mut [u8]) -> Result<usize> {
        self.idle("write_resize")?;
        self.enc.write_resize(new_size, dst)
    }

    /// Writes a BOOKMARK record; every frame of the list must be out.
    pub fn write_bookmark(&mut self, bookmark: &Bookmark<'_>, dst: &mut [u8]) -> Result<usize> {
        self.idle("write_bookmark")?;
        self.enc.write_bookmark(bookmark, dst)
    }

    /// Writes the END record; every frame of the list must be out.
    pub fn finish(&mut self, dst: &mut [u8]) -> Result<usize> {
        self.idle("finish")?;
        self.enc.finish(dst)
    }

    /// The totals the END record would carry now (frames handed out so far).
    pub fn summary(&self) -> EndSummary {
        self.enc.summary()
    }

    /// An error unless every frame of the list is out.
    fn idle(&self, _what: &'static str) -> Result<()> {
        if self.failed {
            return Err(StreamError::Poisoned);
        }
        if self.head != self.next_number || self.pending_error.is_some() || !self.planned_all() {
            return Err(StreamError::InvalidState {
                reason: "frames of the extent list are still to come",
            });
        }
        Ok(())
    }

    fn planned_all(&self) -> bool {
        let (mut index, done) = self.plan;
        if index < self.list.len() && done >= self.list[index].len {
            index += 1;
        }
        self.list[index.min(self.list.len())..]
            .iter()
            .all(|e| e.len == 0)
    }

    fn slot(&self, number: u64) -> usize {
        (number % self.slots.len() as u64) as usize
    }

    fn head_job(&self) -> &Job {
        self.slots[self.slot(self.head)]
            .as_deref()
            .expect("advance leaves the head job built")
    }

    /// Counts `frames` frames of the head job as out.
    fn hand_out(&mut self, frames: usize) {
        let slot = self.slot(self.head);
        let job = self.slots[slot].as_mut().expect("the head job is built");
        for _ in 0..frames {
            let start = if job.taken == 0 {
                0
            } else {
                job.ends[job.taken - 1]
            };
            let frame = &job.out[start..job.ends[job.taken]];
            let p = job.pieces[job.taken];
            // Numbering is planned ahead; a frame out of step would be refused by every
            // decoder, so it is a bug here: never hand it out.
            assert_eq!(get_u64(frame, 8), self.enc.seq, "frame numbering");
            self.enc.account(frame);
            self.enc.last_end = p.offset + p.len;
            job.taken += 1;
        }
    }

    /// Retires the head job once all its frames are out, keeps the pipeline full, and waits
    /// until the head job is built. False when every frame of the list is out.
    fn advance<S: BlockSource + ?Sized>(&mut self, source: &mut S) -> Result<bool> {
        if self.failed {
            return Err(StreamError::Poisoned);
        }
        self.enc.require_body()?;
        loop {
            let slot = self.slot(self.head);
            if let Some(job) = self.slots[slot].as_mut().filter(|j| j.number == self.head) {
                // A job that failed to build (or whose thread panicked) fails the encoder
                // before any of its frames, never retired as if done.
                if let Some(e) = job.error.take() {
                    self.failed = true;
                    return Err(e);
                }
                if job.taken < job.ends.len() {
                    return Ok(true);
                }
                let job = self.slots[slot].take().expect("checked");
                self.free.push(job);
                self.head += 1;
                continue;
            }
            self.top_up(source);
            if self.head == self.next_number {
                return match self.pending_error.take() {
                    Some(e) => Err(e),
                    None => Ok(false),
                };
            }
            self.wait_head();
        }
    }

    /// Fills and hands out jobs while there are free ones and the list has more.
    fn top_up<S: BlockSource + ?Sized>(&mut self, source: &mut S) {
        if self.head == self.next_number {
            // Nothing planned is pending: numbering continues after the last frame out (a
            // header, bookmark or range record may have been written since the list was set).
            self.next_seq = self.enc.seq;
        }
        while self.pending_error.is_none() && !self.planned_all() {
            let Some(mut job) = self.free.pop() else {
                break;
            };
            job.reset(self.next_number);
            let r = self.fill(&mut job, source);
            if job.pieces.is_empty() {
                self.free.push(job);
            } else {
                job.first_seq = self.next_seq;
                self.next_seq += job.pieces.len() as u64;
                self.next_number += 1;
                self.dispatch(job);
            }
            if let Err(e) = r {
                self.pending_error = Some(e);
            }
        }
    }

    fn dispatch(&mut self, job: Box<Job>) {
        if self.workers.is_empty() {
            self.build_here(job);
            return;
        }
        self.shared.todo.lock().0.push_back(job);
        self.shared.todo_cv.notify_one();
        self.queued += 1;
    }

    /// Builds `job` on this thread and puts it in its slot.
    fn build_here(&mut self, mut job: Box<Job>) {
        run(
            &mut job,
            &mut self.enc.sealer,
            self.enc.compression,
            &mut self.enc.lz4,
        );
        let slot = self.slot(job.number);
        self.slots[slot] = Some(job);
    }

    /// Waits until the head job is in its slot, building queued jobs on this thread meanwhile.
    fn wait_head(&mut self) {
        loop {
            let head_slot = self.slot(self.head);
            if matches!(&self.slots[head_slot], Some(j) if j.number == self.head) {
                return;
            }
            {
                let mut done = self.shared.done.lock();
                while let Some(job) = done.pop_front() {
                    let slot = (job.number % self.slots.len() as u64) as usize;
                    self.slots[slot] = Some(job);
                    self.queued -= 1;
                }
            }
            if matches!(&self.slots[head_slot], Some(j) if j.number == self.head) {
                return;
            }
            let own = self.shared.todo.lock().0.pop_front();
            if let Some(job) = own {
                self.build_here(job);
                self.queued -= 1;
                continue;
            }
            let mut done = self.shared.done.lock();
            if done.is_empty() {
                self.shared.done_cv.wait(&mut done);
            }
        }
    }

    /// Plans the next records of the list into `job` and reads their data.
    fn fill<S: BlockSource + ?Sized>(&mut self, job: &mut Job, source: &mut S) -> Result<()> {
        let enc = &mut self.enc;
        let size = enc.size;
        let block_size = u64::from(enc.header.block_size);
        let cfg = (enc.record_size, enc.zero_detection, enc.holes_as_discard);
        while job.records < JOB_RECORDS {
            let (mut index, mut done) = self.plan;
            while index < self.list.len() && done >= self.list[index].len {
                index += 1;
                done = 0;
            }
            self.plan = (index, done);
            let Some(e) = self.list.get(index).copied() else {
                break;
            };
            let offset = e
                .offset
                .checked_add(done)
                .ok_or(StreamError::ExtentOutOfRange {
                    offset: e.offset,
                    len: e.len,
                    disk_size: size,
                })?;
            let rem = e.len - done;
            // The rest of a record whose first pieces went out before the list was replaced
            // is used where the new list goes on at its next byte (as `Encoder` uses its stage).
            let carried = match self.carry {
                Some(c) if e.kind == ExtentKind::Write && c.0 == offset => Some(c),
                Some(_) if e.kind == ExtentKind::Write => {
                    self.carry = None;
                    None
                }
                _ => None,
            };
            let unit = if e.kind == ExtentKind::Discard {
                Unit::Range(REC_DISCARD, rem)
            } else if let Some((_, _, len)) = carried {
                Unit::Read(rem.min(len as u64))
            } else {
                // The record this position starts, checked whole first (as `Encoder` does).
                check_range(offset, rem.min(cfg.0 as u64), self.plan_end, size)?;
                enc.planner.read_ahead(&self.list, index, offset, source);
                enc.planner.unit(offset, rem, size, cfg, source)?
            };
            match unit {
                Unit::Range(rtype, len) => {
                    check_range(offset, len, self.plan_end, size)?;
                    job.pieces.push(Piece {
                        rtype,
                        offset,
                        len,
                        rec_end: offset + len,
                        at: 0,
                    });
                }
                Unit::Read(n) => {
                    let n = n as usize;
                    if job.used + n > job.data.len() {
                        break;
                    }
                    check_range(offset, n as u64, self.plan_end, size)?;
                    let at = job.used;
                    let rec_end = offset + n as u64;
                    if let Some((_, pos, len)) = carried {
                        job.data[at..at + n].copy_from_slice(&self.carry_buf[pos..pos + n]);
                        self.carry = (n < len).then_some((rec_end, pos + n, len - n));
                    } else {
                        read_source(source, offset, &mut job.data[at..at + n])?;
                    }
                    if !cfg.1 {
                        job.pieces.push(Piece {
                            rtype: REC_DATA,
                            offset,
                            len: n as u64,
                            rec_end,
                            at,
                        });
                    } else {
                        let mut pos = 0;
                        while pos < n {
                            let o = offset + pos as u64;
                            let (zero, len) =
                                first_piece(&job.data[at + pos..at + n], o, block_size);
                            job.pieces.push(Piece {
                                rtype: if zero { REC_ZERO } else { REC_DATA },
                                offset: o,
                                len: len as u64,
                                rec_end,
                                at: at + pos,
                            });
                            pos += len;
                        }
                    }
                    job.used += n;
                }
            }
            let len = match unit {
                Unit::Range(_, l) => l,
                Unit::Read(n) => n,
            };
            self.plan = (index, done + len);
            self.plan_end = offset + len;
            job.records += 1;
        }
        Ok(())
    }
}

impl Drop for ParallelEncoder {
    fn drop(&mut self) {
        stop(&self.shared, &mut self.workers);
    }
}

fn stop(shared: &Shared, workers: &mut Vec<JoinHandle<()>>) {
    shared.todo.lock().1 = true;
    shared.todo_cv.notify_all();
    for w in workers.drain(..) {
        let _ = w.join();
    }
}

#[cfg(test)]
#[path = "review_parallel_tests.rs"]
mod review_tests;
