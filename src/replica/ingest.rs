//! Ingest: a delta stream, pushed in chunks, becomes a recovery point.
//!
//! Every frame is verified by the [`Decoder`] before its record is used. DATA is written once,
//! sequentially, into a new pack (raw, 4 KiB-aligned as on the disk, a CRC32 per 4 KiB chunk;
//! all-zero 4 KiB pieces become ZERO runs and take no space); the layer (the stream's extent
//! map) is kept in memory. After END is verified: the pack is completed (synced), the layer
//! object written, and the manifest committed with the new point: the point is visible only
//! then. Until then nothing visible changed, whatever happens.

use super::error::{ReplicaError, Result};
use super::format::{encode_layer, CHUNK};
use super::manifest::{layer_name, pack_name, PackRec, PointRec};
use super::map::{push_run, truncate_runs, Run, RunKind};
use super::pack::PackWriter;
use super::store::{PointId, PointInfo, Store};
use crate::stream::{
    is_all_zero, BookmarkKind, Decoded, Decoder, DecoderConfig, Expected, Record, Secret,
    StreamError, StreamHeader,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
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
}

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
        if w.ingesting {
            return Err(ReplicaError::IngestInProgress);
        }
        let expected = match w.m.lineage {
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
        };
        let mut cfg = DecoderConfig::new().with_expected(expected);
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
            },
        })
    }
}

impl Ingest<'_> {
    /// The stream's header, once its first frame was verified.
    pub fn header(&self) -> Option<&StreamHeader> {
        self.dec.header()
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
            let need = self.step(&carry)?;
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
            match self.step(input)? {
                Step::Consumed(n) => input = &input[n..],
                Step::Need(_) => {
                    self.carry.extend_from_slice(input);
                    input = &[];
                }
            }
        }
        // Whole frames left in the carry.
        while !self.carry.is_empty() {
            let carry = std::mem::take(&mut self.carry);
            match self.step(&carry)? {
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
    fn step(&mut self, input: &[u8]) -> Result<Step> {
        if self.dec.is_finished() {
            return Err(StreamError::TrailingData { len: input.len() }.into());
        }
        match self.dec.next(input)? {
            Decoded::NeedMore { needed } => Ok(Step::Need(needed)),
            Decoded::Header { header, consumed } => {
                self.s.size = header.disk_size;
                self.s.min_size = header.disk_size;
                Ok(Step::Consumed(consumed))
            }
            Decoded::Record { record, consumed } => {
                self.s.record(copy_record(record))?;
                Ok(Step::Consumed(consumed))
            }
        }
    }

    fn fail(&mut self) {
        self.state = State::Failed;
        if self.s.pack.take().is_some() {
            // Best effort: a leftover upload is dropped at the next open anyway.
            let _ = self
                .s
                .store
                .storage
                .abort_upload(&pack_name(self.s.pack_id));
        }
    }

    /// Completes the ingest after END was verified: syncs the pack, writes the layer, commits
    /// the manifest. Only when this returns `Ok` is the point durable and listed; the sender
    /// then commits its tracker checkpoint. A stream that stopped before END gives
    /// [`StreamError::Truncated`] and the ingest stays open for more input.
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
                let (upload, len) = pw.finish().map_err(|e| s.poison("writing a pack", e))?;
                upload
                    .complete()
                    .map_err(|e| s.poison("completing a pack", e))?;
                Some(len)
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
            m.packs.push(PackRec {
                id: s.pack_id,
                data_len: len,
            });
        }
        m.lineage = Some((header.generation, header.to_seq));
        m.pending = None;
        store.commit(&mut w, m)?;
        store.view_add_point(&rec, runs, pack.map(|l| (s.pack_id, l)));
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
        })
    }
}

impl Drop for Ingest<'_> {
    fn drop(&mut self) {
        if self.state != State::Done {
            self.fail();
        }
        self.s.store.w.lock().ingesting = false;
    }
}

impl Sink<'_> {
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
            let upload = self
                .store
                .storage
                .upload(&pack_name(self.pack_id))
                .map_err(|e| self.poison("starting a pack upload", e))?;
            let store_id = self.store.w.lock().m.store_id;
            let pw = PackWriter::new(upload, &store_id, self.pack_id)
                .map_err(|e| self.poison("writing a pack", e))?;
            self.pack = Some(pw);
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
            .map_or(0, |p| p.len + p.crcs.len() as u64 * 4 + 64);
        // The new layer and manifest entry: a generous bound.
        let extra = pack_len + 40 * self.runs.len() as u64 + 4096;
        if self.base_bytes + extra <= cap {
            return Ok(());
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
        self.store.w.lock().poisoned = true;
        ReplicaError::Io { op, source: e }
    }
}

enum Step {
    Consumed(usize),
    Need(usize),
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
