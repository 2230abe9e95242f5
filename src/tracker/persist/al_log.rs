//! The activity log's records (`<state file>.al`, layout in `docs/TRACKER.md`): what one group
//! commit made active and what it evicted, with the evicted regions' dirty bits.
//!
//! Records are written back to back from offset 0, each padded to a multiple of
//! [`RECORD_ALIGN`] bytes, one write and one fsync per group commit, and never overwritten
//! while the state file names their log id. Replay reads them in order while each one is
//! whole, names the log id of the state file and carries the next number; the first that does
//! not is the torn tail of a crash. A valid record of the same log further on means the log
//! was damaged in the middle, not torn at its end: then nothing is trusted.

use crate::codec::{self, Fault, R, W};

/// Magic bytes of an activity-log record.
pub(crate) const MAGIC: &[u8; 8] = b"BDTRKAL1";
/// Records start at multiples of this (one page: a torn record never reaches its neighbour's
/// page).
pub(crate) const RECORD_ALIGN: usize = 4096;
/// The largest log limit a configuration may set (recovery reads at most this plus one record).
pub(crate) const MAX_LOG_LIMIT: u64 = 1 << 30;
/// Bytes before the lists: magic (8), log id (16), number (8), three counts (12), reserved (4).
const HEAD_LEN: usize = 48;

/// One group commit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LogRecord {
    /// The log it belongs to (named by the state file).
    pub log_id: [u8; 16],
    /// 1 for the first record of a log, then +1.
    pub number: u64,
    /// Regions that became active.
    pub activated: Vec<u64>,
    /// Regions that stopped being active.
    pub evicted: Vec<u64>,
    /// The evicted regions' dirty bits: (64-block word, bits), ascending.
    pub words: Vec<(u64, u64)>,
}

/// Bytes of a record with these counts, padded.
pub(crate) fn padded_len(activated: usize, evicted: usize, words: usize) -> usize {
    (HEAD_LEN + 8 * activated + 8 * evicted + 16 * words + 4).next_multiple_of(RECORD_ALIGN)
}

impl LogRecord {
    /// The record's bytes, padded with zeros to a multiple of [`RECORD_ALIGN`].
    pub(crate) fn encode(&self) -> Vec<u8> {
        let len = padded_len(self.activated.len(), self.evicted.len(), self.words.len());
        let mut w = W(Vec::with_capacity(len));
        w.bytes(MAGIC)
            .bytes(&self.log_id)
            .u64(self.number)
            .u32(self.activated.len() as u32)
            .u32(self.evicted.len() as u32)
            .u32(self.words.len() as u32)
            .u32(0);
        for &r in self.activated.iter().chain(&self.evicted) {
            w.u64(r);
        }
        for &(word, bits) in &self.words {
            w.u64(word).u64(bits);
        }
        let mut bytes = w.seal();
        bytes.resize(len, 0);
        bytes
    }
}

/// What a record may hold, from the state file's geometry: regions below `regions`, at most
/// `slots` activated or evicted, words below `words`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub regions: u64,
    pub slots: u64,
    pub words: u64,
    /// Blocks of the capacity (no dirty bit at or past it: the live map has no leaf there).
    pub blocks: u64,
    /// 64-block words a region overlaps, at most.
    pub words_per_region: u64,
}

/// Why a record at some offset is not a valid next record.
#[derive(Debug)]
pub(crate) enum Bad {
    /// Not a record of this log (torn, never written, another log, or a wrong number).
    NotNext,
    /// Whole and of this log, but its contents break the geometry: damage or forgery.
    Invalid(&'static str),
}

impl From<Fault> for Bad {
    fn from(_: Fault) -> Self {
        Bad::NotNext
    }
}

/// Decodes the record at the start of `b` if it is whole (CRC) and belongs to `log_id`;
/// returns it with its padded length.
pub(crate) fn decode(
    b: &[u8],
    log_id: &[u8; 16],
    limits: &Limits,
) -> Result<(LogRecord, usize), Bad> {
    let mut r = R::new(b, "activity log record");
    if r.take(8)? != MAGIC || r.arr16()? != *log_id {
        return Err(Bad::NotNext);
    }
    let number = r.u64()?;
    let (a, e, n) = (
        u64::from(r.u32()?),
        u64::from(r.u32()?),
        u64::from(r.u32()?),
    );
    if a > limits.slots || e > limits.slots || n > e.saturating_mul(limits.words_per_region) {
        // Checked before the CRC, so that no length a hostile file claims is used; a torn
        // record with garbage counts is a record that is not next all the same.
        return Err(Bad::NotNext);
    }
    let (a, e, n) = (a as usize, e as usize, n as usize);
    let body = HEAD_LEN + 8 * a + 8 * e + 16 * n;
    let len = padded_len(a, e, n);
    if b.len() < body + 4 {
        return Err(Bad::NotNext);
    }
    codec::unseal(&b[..body + 4], "activity log record")?;
    r.zero(4, "record field")?;
    let region = |r: &mut R<'_>| -> Result<u64, Bad> {
        let v = r.u64()?;
        if v >= limits.regions {
            return Err(Bad::Invalid("a region past the disk's capacity"));
        }
        Ok(v)
    };
    let activated = (0..a)
        .map(|_| region(&mut r))
        .collect::<Result<Vec<_>, _>>()?;
    let evicted = (0..e)
        .map(|_| region(&mut r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut words = Vec::with_capacity(n);
    for _ in 0..n {
        let (word, bits) = (r.u64()?, r.u64()?);
        if word >= limits.words {
            return Err(Bad::Invalid("a dirty word past the disk's capacity"));
        }
        let first = word << 6;
        if limits.blocks - first < 64 && bits >> (limits.blocks - first) != 0 {
            return Err(Bad::Invalid("dirty bits past the disk's capacity"));
        }
        if words.last().is_some_and(|&(prev, _)| prev >= word) {
            return Err(Bad::Invalid("dirty words out of order"));
        }
        words.push((word, bits));
    }
    Ok((
        LogRecord {
            log_id: *log_id,
            number,
            activated,
            evicted,
            words,
        },
        len,
    ))
}

/// The records of log `log_id` in `log`, in order from number 1, up to the torn tail.
/// `Err` when the log is damaged: a record breaks the geometry, or a record of this log with
/// a higher number lies past the first one that is not next (records are written one after
/// another, each after the previous was durable, so only the last can be torn).
pub(crate) fn replay(
    log: &[u8],
    log_id: &[u8; 16],
    limits: &Limits,
) -> Result<Vec<LogRecord>, &'static str> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut next = 1u64;
    while at < log.len() {
        match decode(&log[at..], log_id, limits) {
            Ok((rec, len)) if rec.number == next => {
                out.push(rec);
                at += len;
                next += 1;
            }
            Ok(_) | Err(Bad::NotNext) => break,
            Err(Bad::Invalid(what)) => return Err(what),
        }
    }
    // From the tail on: a whole record of this log there (out of sequence, or past a torn
    // one) means the tail was not the end: records are written one after another, each after
    // the one before it was durable, so nothing of this log follows a torn record.
    let mut probe = at;
    while probe < log.len() {
        if decode(&log[probe..], log_id, limits).is_ok() {
            return Err("a record of this log lies past a damaged or missing one");
        }
        probe += RECORD_ALIGN;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            regions: 100,
            slots: 8,
            words: 1600,
            blocks: 1600 * 64,
            words_per_region: 16,
        }
    }

    fn rec(number: u64) -> LogRecord {
        LogRecord {
            log_id: [7; 16],
            number,
            activated: vec![number, 50],
            evicted: vec![3],
            words: vec![(48, 0xff), (50, 1)],
        }
    }

    #[test]
    fn records_round_trip_and_replay_stops_at_a_torn_tail() {
        let mut log = Vec::new();
        for n in 1..=3 {
            let b = rec(n).encode();
            assert_eq!(b.len() % RECORD_ALIGN, 0);
            log.extend_from_slice(&b);
        }
        let all = replay(&log, &[7; 16], &limits()).unwrap();
        assert_eq!(all, vec![rec(1), rec(2), rec(3)]);
        // Another log id: nothing.
        assert!(replay(&log, &[8; 16], &limits()).unwrap().is_empty());
        // A torn last record: the first two.
        let mut torn = log.clone();
        torn[2 * RECORD_ALIGN + 60] ^= 1;
        assert_eq!(replay(&torn, &[7; 16], &limits()).unwrap().len(), 2);
        torn.truncate(2 * RECORD_ALIGN + 30);
        assert_eq!(replay(&torn, &[7; 16], &limits()).unwrap().len(), 2);
        // A damaged middle record with a valid one after it: damage, not a tail.
        let mut mid = log.clone();
        mid[RECORD_ALIGN + 60] ^= 1;
        assert!(replay(&mid, &[7; 16], &limits()).is_err());
        // Stale records of the same log past a gap in numbering are not trusted either.
        let mut gap = rec(1).encode();
        gap.extend_from_slice(&rec(3).encode());
        assert!(replay(&gap, &[7; 16], &limits()).is_err());
    }

    #[test]
    fn hostile_records_are_refused() {
        let mut r = rec(1);
        r.activated.push(100); // past the capacity
        assert!(matches!(
            decode(&r.encode(), &[7; 16], &limits()),
            Err(Bad::Invalid(_))
        ));
        let mut r = rec(1);
        r.words = vec![(5, 1), (4, 1)];
        assert!(matches!(
            decode(&r.encode(), &[7; 16], &limits()),
            Err(Bad::Invalid(_))
        ));
        let mut r = rec(1);
        r.activated = vec![1; 9]; // more than the slots
        assert!(matches!(
            decode(&r.encode(), &[7; 16], &limits()),
            Err(Bad::NotNext)
        ));
        // Every truncation and every single-bit flip: an error or the record, never a panic.
        let b = rec(1).encode();
        for len in 0..200 {
            let _ = decode(&b[..len], &[7; 16], &limits());
        }
        for i in 0..200 {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert!(decode(&c, &[7; 16], &limits()).is_err() || i >= 108);
        }
    }
}
