//! Ingest: a delta stream, pushed in chunks, becomes a recovery point.
//!
//! Every frame is verified by the [`Decoder`] before its record is used. DATA is written once,
//! sequentially, into a new pack (raw, 4 KiB-aligned as on the disk, a CRC32 per 4 KiB chunk;
//! all-zero 4 KiB pieces become ZERO runs and take no space); the layer (the stream's extent
//! map) is kept in memory. After END is verified: the pack is completed (synced), the layer
//! object written, and the manifest committed with the new point: the point is visible only
//! then. Until then nothing visible changed, whatever happens.

use super::error::{corrupt, io_err, ReplicaError, Result};
use super::format::{encode_layer, CHUNK};
use super::manifest::{layer_name, pack_name, resume_name, PackRec, Pending, PointRec};
use super::map::{push_run, truncate_runs, Run, RunKind};
use super::pack::PackWriter;
use super::store::{failed, PointId, PointInfo, Store, Writer};
use crate::stream::{
    is_all_zero, BookmarkKind, Decoded, Decoder, DecoderCheckpoint, DecoderConfig, Expected,
    Record, Secret, StreamError, StreamHeader,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    Suspended,
    Failed,
    Done,
}

/// What a successful [`Ingest::finish`] made durable.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Ingested {
    /// The new recovery point. The sender may now commit its tracker checkpoint
    /// (`point.id.sequence`).
    pub point: PointInfo,
    /// Points expired early during the ingest to stay under the byte cap.
    pub expired: Vec<super::store::Expired>,
    /// Requests the store's storage sent from the start of the ingest to its commit (object
    /// storage; 0 on a local directory): at most `10 + pack bytes / part size` for a stream
    /// that needs no resume point (4 when its pack is smaller than a part).
    pub requests: u64,
}

/// One stream being ingested. See the [module documentation](self).
pub struct Ingest<'s> {
    dec: Decoder,
    /// Input bytes not yet forming a whole frame.
    carry: Vec<u8>,
    state: State,
    s: Sink<'s>,
}

/// Where verified records go (apart from the decoder, so both can be borrowed at once).
struct Sink<'s> {
    store: &'s Store,
    pack_id: u64,
    pack: Option<PackWriter>,
    runs: Vec<Run>,
    size: u64,
    min_size: u64,
    bookmark: Option<(u64, u64, bool, String)>,
    cap: Option<u64>,
    /// Store bytes when the ingest started (or after the last expiry for room).
    base_bytes: u64,
    expired: Vec<super::store::Expired>,
    /// The committed resume object, if a resume point was saved.
    resume_obj: Option<u64>,
    /// Pack length at the last saved resume point.
    saved_at: u64,
    /// Save a resume point each time the pack grew by this much.
    save_every: u64,
    /// The storage's request count when the ingest started.
    requests_at_start: u64,
}

/// A resume point is saved (pack synced, state written, manifest committed) each time this
/// many more pack bytes have been written, so that a crash mid-stream loses at most this much.
pub const RESUME_EVERY: u64 = 256 << 20;

impl std::fmt::Debug for Ingest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("state", &self.state)
            .field("header", &self.dec.header())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Starts ingesting a stream; `secret` is required for encrypted streams (and then
    /// unencrypted ones are refused). The stream must continue the store's lineage
    /// ([`Store::lineage`]): same disk, same generation, `from_seq <= head < to_seq`.
    pub fn ingest(&self, secret: Option<Secret>) -> Result<Ingest<'_>> {
        let mut w = self.writer()?;
        self.begin(&mut w)?;
        let mut cfg = DecoderConfig::new().with_expected(expected(&w));
        cfg.secret = secret;
        let pack_id = Store::alloc_id(&mut w);
        w.ingesting = true;
        let cap = w.m.retention.max_bytes;
        let base_bytes = if cap.is_some() {
            self.stats_locked(&w).bytes
        } else {
            0
        };
        Ok(Ingest {
            dec: Decoder::new(cfg),
            carry: Vec::new(),
            state: State::Open,
            s: Sink {
                requests_at_start: self.storage.requests(),
                store: self,
                pack_id,
                pack: None,
                runs: Vec::new(),
                size: 0,
                min_size: 0,
                bookmark: None,
                cap,
                base_bytes,
                expired: Vec::new(),
                resume_obj: None,
                saved_at: 0,
                save_every: RESUME_EVERY,
            },
        })
    }

    /// Starts an ingest: drops any resumable one first (the sender chose to send a new stream).
    fn begin(&self, w: &mut Writer) -> Result<()> {
        if w.ingesting {
            return Err(ReplicaError::IngestInProgress);
        }
        if let Some(p) = w.m.pending {
            let mut m = w.m.clone();
            m.pending = None;
            self.commit(w, m)?;
            self.delete_objects(w, &[resume_name(p.resume)])?;
            if let Err(e) = self.storage.abort_upload(&pack_name(p.pack)) {
                return Err(failed(w, "dropping an unfinished upload", e));
            }
        }
        Ok(())
    }

    /// The cut stream this store can resume, if any: its header and the stream offset the
    /// sender must continue from.
    pub fn pending_ingest(&self) -> Result<Option<PendingIngest>> {
        let w = self.w.lock();
        let Some(p) = w.m.pending else {
            return Ok(None);
        };
        let st = self.load_resume(&w, p.resume, p.pack)?;
        Ok(Some(PendingIngest {
            header: st.cp.header(),
            stream_offset: st.cp.stream_offset(),
        }))
    }

    /// Drops the resumable ingest, if any.
    pub fn discard_pending(&self) -> Result<()> {
        let mut w = self.writer()?;
        if w.ingesting {
            return Err(ReplicaError::IngestInProgress);
        }
        self.begin(&mut w)
    }

    /// Continues a cut stream where its last resume point left it. `header_frame` is the
    /// stream's first frame (24-byte frame header and body) as the sender has it: only the
    /// exact same stream can continue ([`ReplicaError::ResumeMismatch`] otherwise, and the
    /// resume point stays). Returns the ingest and the stream offset from which the sender
    /// must push the rest.
    pub fn resume_ingest(
        &self,
        secret: Option<Secret>,
        header_frame: &[u8],
    ) -> Result<(Ingest<'_>, u64)> {
        let mut w = self.writer()?;
        if w.ingesting {
            return Err(ReplicaError::IngestInProgress);
        }
        let p = w.m.pending.ok_or_else(|| ReplicaError::ResumeMismatch {
            reason: "there is no cut stream to resume".into(),
        })?;
        let st = self.load_resume(&w, p.resume, p.pack)?;
        if !st.cp.matches_header_frame(header_frame) {
            return Err(ReplicaError::ResumeMismatch {
                reason: "the header frame is not the cut stream's".into(),
            });
        }
        let mut cfg = DecoderConfig::new().with_expected(expected(&w));
        cfg.secret = secret;
        let dec = Decoder::resume(cfg, &st.cp)?;
        let upload = match self.storage.resume_upload(&pack_name(p.pack), st.pack_len) {
            Ok(u) => u,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.begin(&mut w)?;
                return Err(ReplicaError::ResumeMismatch {
                    reason: "the cut stream's data is gone; send the stream again".into(),
                });
            }
            Err(e) => return Err(failed(&mut w, "resuming a pack upload", e)),
        };
        let pack = PackWriter::restore(upload, &w.m.store_id, st.pack_len, st.crcs, st.partial_crc);
        w.ingesting = true;
        let cap = w.m.retention.max_bytes;
        let base_bytes = if cap.is_some() {
            self.stats_locked(&w).bytes
        } else {
            0
        };
        let offset = st.cp.stream_offset();
        Ok((
            Ingest {
                dec,
                carry: Vec::new(),
                state: State::Open,
                s: Sink {
                    requests_at_start: self.storage.requests(),
                    store: self,
                    pack_id: p.pack,
                    pack: Some(pack),
                    runs: st.runs,
                    size: st.size,
                    min_size: st.min_size,
                    bookmark: st.bookmark,
                    cap,
                    base_bytes,
                    expired: Vec::new(),
                    resume_obj: Some(p.resume),
                    saved_at: st.pack_len,
                    save_every: RESUME_EVERY,
                },
            },
            offset,
        ))
    }

    fn load_resume(&self, w: &Writer, resume: u64, pack: u64) -> Result<ResumeState> {
        let name = resume_name(resume);
        let size = self
            .storage
            .size(&name)
            .map_err(io_err("reading a resume point"))?;
        if size > 1 << 32 {
            return Err(corrupt(&name, "too large for a resume point"));
        }
        let mut b = vec![0u8; size as usize];
        self.storage
            .get_range(&name, 0, &mut b)
            .map_err(io_err("reading a resume point"))?;
        decode_resume(&b, &name, pack, &w.m.store_id)
    }
}

/// A cut stream the store can resume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PendingIngest {
    /// The stream's header.
    pub header: StreamHeader,
    /// Where the sender must continue the stream.
    pub stream_offset: u64,
}

fn expected(w: &Writer) -> Expected {
    match w.m.lineage {
        None => Expected {
            disk_id: Some(w.m.disk_id),
            generation: None,
            replica_seq: Some(0),
        },
        Some((g, s)) => Expected {
            disk_id: Some(w.m.disk_id),
            generation: Some(g),
            replica_seq: Some(s),
        },
    }
}

impl Ingest<'_> {
    /// The stream's header, once its first frame was verified.
    pub fn header(&self) -> Option<&StreamHeader> {
        self.dec.header()
    }

    /// Saves a resume point each time `bytes` more stream data were stored (default
    /// [`RESUME_EVERY`]); each costs one pack sync and one manifest commit. Smaller means less
    /// to re-send after a crash mid-stream.
    pub fn set_resume_interval(&mut self, bytes: u64) {
        self.s.save_every = bytes.max(1);
    }

    /// True once END was verified (call [`Ingest::finish`]).
    pub fn is_complete(&self) -> bool {
        self.dec.is_finished()
    }

    /// Feeds stream bytes as they arrive, in any chunking. Every frame is verified before it
    /// is used. An error refuses the stream: nothing visible changed, and this ingest accepts
    /// nothing more (drop it).
    pub fn push(&mut self, input: &[u8]) -> Result<()> {
        if self.state != State::Open {
            return Err(StreamError::Poisoned.into());
        }
        let r = self.push_inner(input);
        if r.is_err() {
            self.fail();
        }
        r
    }

    fn push_inner(&mut self, mut input: &[u8]) -> Result<()> {
        // Complete a carried partial frame first.
        while !self.carry.is_empty() && !input.is_empty() {
            let mut carry = std::mem::take(&mut self.carry);
            // Our own copy: an encrypted frame is opened in place (and then dropped).
            let need = self.step(Src::Owned(&mut carry))?;
            match need {
                Step::Consumed(n) => {
                    carry.drain(..n);
                    self.carry = carry;
                }
                Step::Need(needed) => {
                    let take = (needed - carry.len()).min(input.len());
                    carry.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    self.carry = carry;
                }
            }
        }
        while !input.is_empty() {
            if !self.carry.is_empty() {
                return self.push_inner(input);
            }
            match self.step(Src::Shared(input))? {
                Step::Consumed(n) => input = &input[n..],
                Step::Need(_) => {
                    self.carry.extend_from_slice(input);
                    input = &[];
                }
            }
        }
        // Whole frames left in the carry.
        while !self.carry.is_empty() {
            let mut carry = std::mem::take(&mut self.carry);
            match self.step(Src::Owned(&mut carry))? {
                Step::Consumed(n) => self.carry = carry[n..].to_vec(),
                Step::Need(_) => {
                    self.carry = carry;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Decodes and handles at most one frame at the start of `input`.
    fn step(&mut self, input: Src<'_>) -> Result<Step> {
        if self.dec.is_finished() {
            let len = match &input {
                Src::Shared(b) => b.len(),
                Src::Owned(b) => b.len(),
            };
            return Err(StreamError::TrailingData { len }.into());
        }
        let decoded = match input {
            Src::Shared(b) => self.dec.next(b)?,
            Src::Owned(b) => self.dec.next_in_place(b)?,
        };
        match decoded {
            Decoded::NeedMore { needed } => Ok(Step::Need(needed)),
            Decoded::Header { header, consumed } => {
                self.s.size = header.disk_size;
                self.s.min_size = header.disk_size;
                Ok(Step::Consumed(consumed))
            }
            Decoded::Record { record, consumed } => {
                self.s.record(copy_record(record))?;
                let written = self.s.pack.as_ref().map_or(0, |p| p.len);
                if written >= self.s.saved_at + self.s.save_every && !self.dec.is_finished() {
                    self.save_resume_point()?;
                }
                Ok(Step::Consumed(consumed))
            }
        }
    }

    /// Makes the stream so far durable and resumable: syncs the pack, writes the resume state
    /// and commits it in the manifest. Returns the stream offset to continue from.
    fn save_resume_point(&mut self) -> Result<u64> {
        let cp = self
            .dec
            .checkpoint()
            .ok_or_else(|| ReplicaError::InvalidArgument {
                reason: "a stream can be suspended only after its header and before its END".into(),
            })?;
        let s = &mut self.s;
        let store = s.store;
        if s.pack.is_none() {
            s.open_pack()?;
        }
        let pw = s.pack.as_mut().expect("opened");
        // A failed append of the writer thread is a failed write, as it would have been when
        // the buffer was handed over.
        if let Err(e) = pw.settle() {
            return Err(failed(&mut store.w.lock(), "writing a pack", e));
        }
        if let Err(e) = pw.sync() {
            return Err(failed(&mut store.w.lock(), "syncing a pack", e));
        }
        let bytes = encode_resume(&cp, s.pack_id, pw, &s.runs, s.size, s.min_size, &s.bookmark);
        let len = pw.len;
        let mut w = store.writer()?;
        let id = Store::alloc_id(&mut w);
        store.put(&mut w, &resume_name(id), &bytes, "writing a resume point")?;
        let mut m = w.m.clone();
        m.pending = Some(Pending {
            pack: s.pack_id,
            resume: id,
        });
        store.commit(&mut w, m)?;
        if let Some(old) = s.resume_obj.replace(id) {
            store.delete_objects(&mut w, &[resume_name(old)])?;
        }
        s.saved_at = len;
        Ok(cp.stream_offset())
    }

    /// Stops here, keeping the stream resumable ([`Store::resume_ingest`]), even across a
    /// restart. Returns the stream offset the sender must continue from. The store accepts no
    /// other stream's point in between without dropping this one.
    pub fn suspend(mut self) -> Result<u64> {
        if self.state != State::Open {
            return Err(StreamError::Poisoned.into());
        }
        let r = self.save_resume_point();
        if r.is_ok() {
            self.state = State::Suspended;
        }
        r
    }

    /// Drops the stream and its resume point, if it had one.
    pub fn abandon(mut self) -> Result<()> {
        self.state = State::Failed;
        self.close_pack();
        let store = self.s.store;
        let mut w = store.writer()?;
        w.ingesting = false;
        let r = store.begin(&mut w);
        if w.m.pending.is_none() {
            let _ = store.storage.abort_upload(&pack_name(self.s.pack_id));
        }
        self.s.resume_obj = None;
        r
    }

    fn fail(&mut self) {
        self.state = State::Failed;
        if self.close_pack() && self.s.resume_obj.is_none() {
            // Best effort: a leftover upload is dropped at the next open anyway.
            let _ = self
                .s
                .store
                .storage
                .abort_upload(&pack_name(self.s.pack_id));
        }
    }

    /// Drops the pack writer (if any; returns whether there was one). A failed append of its
    /// writer thread that no call reported yet is reported now, as the failed write it is.
    fn close_pack(&mut self) -> bool {
        let Some(pw) = self.s.pack.take() else {
            return false;
        };
        if let Err(e) = pw.close() {
            let _ = self.s.poison("writing a pack", e);
        }
        true
    }

    /// Completes the ingest after END was verified: syncs the pack, writes the layer, commits
    /// the manifest. Only when this returns `Ok` is the point durable and listed; the sender
    /// then commits its tracker checkpoint. Call it once [`Ingest::is_complete`] is true: before
    /// END it gives [`StreamError::Truncated`] and, having consumed the ingest, drops what was
    /// received (keep a cut stream with [`Ingest::suspend`] instead).
    pub fn finish(mut self) -> Result<Ingested> {
        if self.state != State::Open {
            return Err(StreamError::Poisoned.into());
        }
        if let Err(e) = self.dec.finish() {
            return Err(e.into());
        }
        let r = self.commit();
        match r {
            Ok(x) => {
                self.state = State::Done;
                Ok(x)
            }
            Err(e) => {
                if matches!(e, ReplicaError::StorageFull { .. }) {
                    // Out of space after the pack was completed: free it now (a poisoned store
                    // leaves it to the next open).
                    let _ = self.s.store.storage.delete(&pack_name(self.s.pack_id));
                }
                self.fail();
                Err(e)
            }
        }
    }

    fn commit(&mut self) -> Result<Ingested> {
        let header = *self.dec.header().expect("finished");
        let s = &mut self.s;
        let final_size = s.size;
        truncate_runs(&mut s.runs, final_size);
        // Bytes cut off by a shrink (or beyond the size at from_seq) and not written since
        // read as zeros: older layers may hold data there.
        let runs = fill_zeros(std::mem::take(&mut s.runs), s.min_size, final_size);
        let pack = match s.pack.take() {
            Some(pw) => {
                let r = pw
                    .finish()
                    .and_then(|(upload, len)| upload.complete().map(|()| len));
                match r {
                    Ok(len) => Some(len),
                    Err(e) => {
                        if s.resume_obj.is_none() {
                            // Free the unfinished upload now (it can never complete).
                            let _ = s.store.storage.abort_upload(&pack_name(s.pack_id));
                        }
                        return Err(s.poison("writing a pack", e));
                    }
                }
            }
            None => None,
        };
        let store = s.store;
        let mut w = store.writer()?;
        let layer = Store::alloc_id(&mut w);
        store.put(
            &mut w,
            &layer_name(layer),
            &encode_layer(&runs),
            "writing a layer",
        )?;
        let now = store.now();
        let (bookmark_id, time_ns, app, label, bookmarked) = match s.bookmark.take() {
            Some((id, ts, app, label)) => (id, ts, app, label, true),
            None => (0, now, false, String::new(), false),
        };
        let rec = PointRec {
            layer,
            generation: header.generation,
            from_seq: header.from_seq,
            to_seq: header.to_seq,
            disk_size: final_size,
            time_ns,
            ingested_ns: now,
            bookmark_id,
            app,
            bookmarked,
            detached: false,
            label,
            stored_bytes: pack.unwrap_or(0),
        };
        let mut m = w.m.clone();
        m.points.push(rec.clone());
        if let Some(len) = pack {
            m.packs.push(PackRec::own(s.pack_id, len));
        }
        m.lineage = Some((header.generation, header.to_seq));
        m.pending = None;
        if let Err(e) = store.commit(&mut w, m) {
            if !w.poisoned {
                // Refused for lack of space: the layer is not referenced, free it now.
                let _ = store.storage.delete(&layer_name(layer));
            }
            return Err(e);
        }
        store.view_add_point(&rec, runs, pack.map(|l| (s.pack_id, l)));
        if let Some(old) = s.resume_obj.take() {
            store.delete_objects(&mut w, &[resume_name(old)])?;
        }
        w.ingesting = false;
        drop(w);
        let id = PointId {
            generation: header.generation,
            sequence: header.to_seq,
        };
        let point = store
            .points()
            .into_iter()
            .rev()
            .find(|p| p.id == id)
            .expect("just committed");
        Ok(Ingested {
            point,
            expired: std::mem::take(&mut s.expired),
            requests: s
                .store
                .storage
                .requests()
                .saturating_sub(s.requests_at_start),
        })
    }
}

impl Drop for Ingest<'_> {
    fn drop(&mut self) {
        if self.state != State::Done && self.state != State::Suspended {
            self.fail();
        }
        self.s.store.w.lock().ingesting = false;
    }
}

impl Sink<'_> {
    fn open_pack(&mut self) -> Result<()> {
        let upload = self
            .store
            .storage
            .upload(&pack_name(self.pack_id))
            .map_err(|e| self.poison("starting a pack upload", e))?;
        let store_id = self.store.w.lock().m.store_id;
        let pw = PackWriter::new(upload, &store_id, self.pack_id)
            .map_err(|e| self.poison("writing a pack", e))?;
        self.pack = Some(pw);
        Ok(())
    }

    fn record(&mut self, rec: Owned<'_>) -> Result<()> {
        match rec {
            Owned::Data { offset, data } => self.data(offset, data),
            Owned::Run { offset, len, kind } => {
                push_run(
                    &mut self.runs,
                    Run {
                        start: offset,
                        len,
                        kind,
                        pack: 0,
                        pack_off: 0,
                    },
                );
                Ok(())
            }
            Owned::Resize(new) => {
                if new < self.size {
                    truncate_runs(&mut self.runs, new);
                    self.min_size = self.min_size.min(new);
                }
                self.size = new;
                Ok(())
            }
            Owned::Bookmark(b) => {
                self.bookmark = Some(b);
                Ok(())
            }
            Owned::None => Ok(()),
        }
    }

    fn data(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let mut pos = 0usize;
        while pos < data.len() {
            let d = offset + pos as u64;
            let n = ((CHUNK - d % CHUNK) as usize).min(data.len() - pos);
            let piece = &data[pos..pos + n];
            if is_all_zero(piece) {
                push_run(
                    &mut self.runs,
                    Run {
                        start: d,
                        len: n as u64,
                        kind: RunKind::Zero,
                        pack: 0,
                        pack_off: 0,
                    },
                );
            } else {
                self.store_piece(d, piece)?;
            }
            pos += n;
        }
        Ok(())
    }

    fn store_piece(&mut self, d: u64, piece: &[u8]) -> Result<()> {
        if self.pack.is_none() {
            self.open_pack()?;
        }
        let pack_id = self.pack_id;
        let pw = self.pack.as_mut().expect("created");
        let contiguous = self.runs.last().is_some_and(|r| {
            r.kind == RunKind::Data && r.end() == d && r.pack_off + r.len == pw.len
        });
        let res = (|| {
            if !contiguous {
                pw.align(d % CHUNK)?;
            }
            let at = pw.len;
            pw.append(piece)?;
            Ok::<u64, std::io::Error>(at)
        })();
        let at = res.map_err(|e| self.poison("writing a pack", e))?;
        push_run(
            &mut self.runs,
            Run {
                start: d,
                len: piece.len() as u64,
                kind: RunKind::Data,
                pack: pack_id,
                pack_off: at,
            },
        );
        self.check_cap()
    }

    /// Keeps the store under its byte cap: expires the oldest points early if the pack would
    /// pass it, and refuses the stream when even that is not enough.
    fn check_cap(&mut self) -> Result<()> {
        let Some(cap) = self.cap else { return Ok(()) };
        let pack_len = self
            .pack
            .as_ref()
            .map_or(0, |p| p.len + p.len / CHUNK * 4 + 64);
        // The new layer (zero filling may double its runs, plus its 32-byte frame) and the
        // manifest's growth (a point is 88 bytes plus a label of at most 1024): a bound.
        let extra = pack_len + 80 * (self.runs.len() as u64 + 1) + 32 + 88 + 1024;
        if self.base_bytes + extra <= cap {
            return Ok(());
        }
        // Expiring for room commits a manifest: a failed append of the writer thread must be
        // reported (and poison the store) before any commit follows it.
        if let Some(pw) = self.pack.as_mut() {
            if let Err(e) = pw.settle() {
                return Err(failed(&mut self.store.w.lock(), "writing a pack", e));
            }
        }
        let mut w = self.store.writer()?;
        let expired = self.store.fit_under(&mut w, cap, extra)?;
        self.base_bytes = self.store.stats_locked(&w).bytes;
        self.expired.extend(expired);
        if self.base_bytes + extra > cap {
            return Err(ReplicaError::CapacityExceeded {
                needed: self.base_bytes + extra,
                cap,
            });
        }
        Ok(())
    }

    fn poison(&self, op: &'static str, e: std::io::Error) -> ReplicaError {
        failed(&mut self.store.w.lock(), op, e)
    }
}

enum Step {
    Consumed(usize),
    Need(usize),
}

/// Stream bytes to decode: the caller's, or the ingest's own (the carry), which an encrypted
/// frame is opened in, saving a copy.
enum Src<'a> {
    Shared(&'a [u8]),
    Owned(&'a mut [u8]),
}

/// A record with its DATA still borrowed from the decoder (which lives as long as `self`).
enum Owned<'a> {
    Data {
        offset: u64,
        data: &'a [u8],
    },
    Run {
        offset: u64,
        len: u64,
        kind: RunKind,
    },
    Resize(u64),
    Bookmark((u64, u64, bool, String)),
    None,
}

fn copy_record(r: Record<'_>) -> Owned<'_> {
    match r {
        Record::Data { offset, data, .. } => Owned::Data { offset, data },
        Record::Zero { offset, len } => Owned::Run {
            offset,
            len,
            kind: RunKind::Zero,
        },
        Record::Discard { offset, len } => Owned::Run {
            offset,
            len,
            kind: RunKind::Discard,
        },
        Record::Resize { new_size } => Owned::Resize(new_size),
        Record::Bookmark(b) => Owned::Bookmark((
            b.id,
            b.timestamp_ns,
            b.kind == BookmarkKind::ApplicationConsistent,
            b.label.to_string(),
        )),
        _ => Owned::None,
    }
}

/// Fills the gaps of sorted `runs` within `[from, to)` with ZERO runs.
fn fill_zeros(runs: Vec<Run>, from: u64, to: u64) -> Vec<Run> {
    if from >= to {
        return runs;
    }
    let mut out = Vec::with_capacity(runs.len() + 1);
    let mut pos = from;
    let zero = |s: u64, e: u64| Run {
        start: s,
        len: e - s,
        kind: RunKind::Zero,
        pack: 0,
        pack_off: 0,
    };
    for r in runs {
        if r.start > pos && r.start <= to && pos < to {
            push_run(&mut out, zero(pos, r.start));
        }
        pos = pos.max(r.end());
        push_run(&mut out, r);
    }
    if pos < to {
        push_run(&mut out, zero(pos, to));
    }
    out
}

/// What a resume point holds besides the decoder's checkpoint.
struct ResumeState {
    cp: DecoderCheckpoint,
    pack_len: u64,
    crcs: Vec<u32>,
    partial_crc: u32,
    runs: Vec<Run>,
    size: u64,
    min_size: u64,
    bookmark: Option<(u64, u64, bool, String)>,
}

/// The resume object (layout in `docs/REPLICA.md`): magic "BDRESUM1", major, minor, reserved;
/// store id; pack id, pack length, partial-chunk CRC, reserved; chunk CRC count and CRCs;
/// disk size in force and the smallest size seen; bookmark; runs (as in a layer); the
/// decoder checkpoint (length-prefixed); CRC32.
#[allow(clippy::too_many_arguments)]
fn encode_resume(
    cp: &DecoderCheckpoint,
    pack: u64,
    pw: &PackWriter,
    runs: &[Run],
    size: u64,
    min_size: u64,
    bookmark: &Option<(u64, u64, bool, String)>,
) -> Vec<u8> {
    use super::format::{put_head, RESUME_MAGIC, W};
    let mut w = W::default();
    put_head(&mut w, RESUME_MAGIC);
    let (crcs, partial_crc) = pw.checksums();
    w.bytes(&pw_store_id(pw))
        .u64(pack)
        .u64(pw.len)
        .u32(partial_crc)
        .u32(0);
    w.u64(crcs.len() as u64);
    for c in crcs {
        w.u32(*c);
    }
    w.u64(size).u64(min_size);
    match bookmark {
        Some((id, ts, app, label)) => w
            .u8(1)
            .u8(*app as u8)
            .u16(label.len() as u16)
            .u32(0)
            .u64(*id)
            .u64(*ts)
            .bytes(label.as_bytes()),
        None => w.u8(0).u8(0).u16(0).u32(0).u64(0).u64(0),
    };
    let layer = encode_layer(runs);
    w.u64(layer.len() as u64).bytes(&layer);
    let cpb = cp.to_bytes();
    w.u64(cpb.len() as u64).bytes(&cpb);
    w.seal()
}

fn pw_store_id(pw: &PackWriter) -> [u8; 16] {
    pw.store_id
}

fn decode_resume(b: &[u8], object: &str, pack: u64, store_id: &[u8; 16]) -> Result<ResumeState> {
    use super::format::{decode_layer, open_sealed, RESUME_MAGIC};
    let mut r = open_sealed(b, RESUME_MAGIC, object)?;
    if &r.arr16()? != store_id {
        return Err(corrupt(object, "belongs to another store"));
    }
    if r.u64()? != pack {
        return Err(corrupt(object, "names another pack than the manifest"));
    }
    let pack_len = r.u64()?;
    let partial_crc = r.u32()?;
    r.zero(4, "resume field")?;
    let n = r.u64()?;
    if pack_len < CHUNK || n != pack_len / CHUNK || n > (r.remaining() / 4) as u64 {
        return Err(corrupt(
            object,
            format!("{n} chunk checksums for {pack_len} pack bytes"),
        ));
    }
    let mut crcs = Vec::with_capacity(n as usize);
    for _ in 0..n {
        crcs.push(r.u32()?);
    }
    let size = r.u64()?;
    let min_size = r.u64()?;
    let has_bm = r.u8()?;
    let app = r.u8()?;
    let label_len = r.u16()? as usize;
    r.zero(4, "bookmark field")?;
    let (id, ts) = (r.u64()?, r.u64()?);
    let bookmark = match (has_bm, app) {
        (0, 0) if label_len == 0 && id == 0 && ts == 0 => None,
        (1, a @ (0 | 1)) => {
            let label = std::str::from_utf8(r.take(label_len)?)
                .map_err(|_| corrupt(object, "bookmark label is not UTF-8"))?
                .to_string();
            Some((id, ts, a == 1, label))
        }
        _ => return Err(corrupt(object, "bad bookmark fields")),
    };
    let max = crate::stream::MAX_DISK_SIZE;
    if size == 0 || size > max || min_size == 0 || min_size > size {
        return Err(corrupt(
            object,
            format!("sizes {size} / {min_size} out of range"),
        ));
    }
    let layer_len = r.u64()?;
    let layer =
        r.take(usize::try_from(layer_len).map_err(|_| corrupt(object, "layer too long"))?)?;
    let runs = decode_layer(layer, object, |p| (p == pack).then_some(pack_len), max)?;
    let cp_len = r.u64()?;
    let cpb =
        r.take(usize::try_from(cp_len).map_err(|_| corrupt(object, "checkpoint too long"))?)?;
    let cp = DecoderCheckpoint::from_bytes(cpb)?;
    r.done()?;
    if cp.header().disk_size == 0 {
        return Err(corrupt(object, "checkpoint without a header"));
    }
    Ok(ResumeState {
        cp,
        pack_len,
        crcs,
        partial_crc,
        runs,
        size,
        min_size,
        bookmark,
    })
}
