//! The tracker state file's bytes (layout in `docs/TRACKER.md`): encoding, and a decoder that
//! treats its input as hostile (every length checked against the room the bytes have and the
//! geometry the file states, no allocation from a count it claims, a distinct error for each
//! way it can be wrong).

use std::fmt;

use crate::codec::{self, Fault, FaultKind, W};
use crate::tracker::{
    GenerationId, Geometry, MAX_BLOCKS, MAX_DISK_SIZE, MAX_GRANULARITY, MIN_GRANULARITY,
};

/// Magic bytes of a tracker state file.
pub(crate) const MAGIC: &[u8; 8] = b"BDTRACK1";
/// Major version of the tracker state file this build writes and reads.
pub const TRACKER_STATE_MAJOR: u16 = 1;
/// Minor version written (readers accept any minor of a known major). Minor 1 added the
/// `active` state (an in-use record with the activity log's section); a minor-0 reader refuses
/// it as an unknown state, which resets: safe.
pub const TRACKER_STATE_MINOR: u16 = 1;
/// Bytes before the first record: head (16), state (4), reserved (4), disk id (16),
/// generation (16), committed (8), issued (8), disk size (8), capacity (8), sector size (4),
/// block size (4), record count (8).
pub(crate) const FIXED_LEN: usize = 104;
/// Bytes per record: first word (8), word count (8), dirty bits (8), discard bits (8).
pub(crate) const RECORD_LEN: usize = 32;

/// What a state file says about the run that wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateKind {
    /// Written by a clean close: no mark can have followed it, the dirty set is complete.
    Clean,
    /// Written while the tracker was open (at open, take and commit): marks may have followed
    /// it that no file records. Never trusted on load; holds no dirty set.
    InUse,
    /// Written while a tracker with an activity log was open: a dirty set that, united with
    /// the log's records and every region the log says was active, covers every write that
    /// may have reached the disk. Trusted on load (a crash recovery, `LoadOutcome::Recovered`).
    Active,
}

impl StateKind {
    fn code(self) -> u32 {
        match self {
            StateKind::Clean => 1,
            StateKind::InUse => 2,
            StateKind::Active => 3,
        }
    }
}

/// A state file's header, as read (checksum, version and consistency checked).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateFileInfo {
    /// Clean (trusted on load) or in use (a run that did not close cleanly).
    pub kind: StateKind,
    /// The disk id the file was written for.
    pub disk_id: [u8; 16],
    /// The tracker generation.
    pub generation: GenerationId,
    /// The last committed sequence number of that generation (0 if none).
    pub committed: u64,
    /// A clean file: the last number issued. An in-use file: a reservation, at least every
    /// number the run may have issued in `generation` (see `docs/TRACKER.md`).
    pub issued: u64,
    /// The geometry when the file was written.
    pub geometry: Geometry,
    /// Dirty-set records in the file.
    pub records: u64,
    /// Dirty blocks the records hold.
    pub dirty_blocks: u64,
    /// An active file's activity-log section.
    pub log: Option<LogSection>,
}

/// The activity-log section of an active state file.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSection {
    /// The id the log's records carry (a new one at every state write).
    pub log_id: [u8; 16],
    /// log2 of the region size in bytes.
    pub region_shift: u32,
    /// Most regions active at once.
    pub slots: u32,
    /// The regions active when the file was written, ascending.
    pub active: Vec<u64>,
}

impl LogSection {
    /// Regions of `size` bytes at this section's region size.
    pub(crate) fn regions_for(&self, size: u64) -> u64 {
        size.div_ceil(1u64 << self.region_shift)
    }
}

/// Smallest activity-log region: 64 KiB.
pub const MIN_REGION_SHIFT: u32 = 16;
/// Largest activity-log region: 1 GiB.
pub const MAX_REGION_SHIFT: u32 = 30;
/// Most activity-log regions active at once.
pub const MAX_ACTIVE_REGIONS: u32 = 65_536;

/// Everything that can be wrong with the bytes of a state file. Any of them makes a load start
/// a new generation (`ResetReason::Invalid`).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateFileError {
    /// The file is longer than any state file for this geometry can be (it is not read).
    TooLarge {
        /// Its length.
        len: u64,
        /// The largest state file of this geometry.
        max: u64,
    },
    /// Too short to hold a checksum.
    TooShort {
        /// Its length.
        len: u64,
    },
    /// The CRC-32 does not match: torn, truncated or flipped.
    ChecksumMismatch,
    /// Not a tracker state file (bad magic).
    NotAStateFile,
    /// A major version this build does not read.
    UnsupportedVersion {
        /// The file's major version.
        major: u16,
    },
    /// A reserved field is not zero.
    ReservedNotZero {
        /// Which field.
        field: String,
    },
    /// A field ends past the end of the file.
    Truncated {
        /// Where the field starts.
        at: u64,
        /// Bytes it needs.
        need: u64,
    },
    /// Bytes after the last record.
    TrailingBytes {
        /// How many.
        extra: u64,
    },
    /// The activity-log section is malformed: a bad region size or count, or an active region
    /// out of order or past the capacity.
    BadLog {
        /// What is wrong.
        what: &'static str,
    },
    /// The state field is neither clean (1), in use (2) nor active (3).
    UnknownState {
        /// The value found.
        value: u32,
    },
    /// The geometry fields describe no tracker this build can make.
    BadGeometry {
        /// What is wrong.
        what: &'static str,
        /// The offending value.
        value: u64,
    },
    /// The committed number is above the issued one, or the issued one leaves no next number.
    BadSequence {
        /// Committed number found.
        committed: u64,
        /// Issued number found.
        issued: u64,
    },
    /// The record count does not match the bytes that follow it, or an in-use file has
    /// records.
    RecordCount {
        /// Records the count field claims.
        claimed: u64,
        /// Bytes after the count field (before the checksum).
        room: u64,
    },
    /// A record is malformed: empty, out of order or overlapping, past the disk end, no dirty
    /// bit, or a discard bit on a clean block.
    BadRecord {
        /// The record's index.
        index: u64,
        /// What is wrong.
        what: &'static str,
    },
}

impl fmt::Display for StateFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use StateFileError as E;
        match self {
            E::TooLarge { len, max } => write!(
                f,
                "the file is {len} B, more than the {max} B a state file of this geometry can hold (another geometry, or not a state file)"
            ),
            E::TooShort { len } => write!(f, "the file is {len} B, too short for a checksum"),
            E::ChecksumMismatch => write!(f, "checksum mismatch (torn or damaged file)"),
            E::NotAStateFile => write!(f, "not a tracker state file (bad magic)"),
            E::UnsupportedVersion { major } => write!(
                f,
                "format major version {major} is not supported (this build reads {TRACKER_STATE_MAJOR})"
            ),
            E::ReservedNotZero { field } => write!(f, "reserved {field} is not zero"),
            E::Truncated { at, need } => {
                write!(f, "a field at byte {at} needs {need} more bytes")
            }
            E::TrailingBytes { extra } => write!(f, "{extra} unexpected bytes at the end"),
            E::UnknownState { value } => write!(f, "unknown state {value}"),
            E::BadGeometry { what, value } => write!(f, "bad geometry: {what} (got {value})"),
            E::BadSequence { committed, issued } => write!(
                f,
                "committed sequence {committed} and issued sequence {issued} are inconsistent"
            ),
            E::RecordCount { claimed, room } => write!(
                f,
                "{claimed} records claimed with {room} bytes of room for them"
            ),
            E::BadRecord { index, what } => write!(f, "record {index}: {what}"),
            E::BadLog { what } => write!(f, "activity-log section: {what}"),
        }
    }
}

impl std::error::Error for StateFileError {}

impl From<Fault> for StateFileError {
    fn from(f: Fault) -> Self {
        match f.kind {
            FaultKind::Short { at, need } => StateFileError::Truncated {
                at: at as u64,
                need: need as u64,
            },
            FaultKind::NotZero { what } => StateFileError::ReservedNotZero { field: what },
            FaultKind::Trailing { extra } => StateFileError::TrailingBytes {
                extra: extra as u64,
            },
            FaultKind::NoChecksum => StateFileError::TooShort { len: 0 },
            FaultKind::Checksum => StateFileError::ChecksumMismatch,
            FaultKind::Magic => StateFileError::NotAStateFile,
            FaultKind::Version(major) => StateFileError::UnsupportedVersion { major },
        }
    }
}

/// A state to write.
pub(crate) struct State {
    pub kind: StateKind,
    pub disk_id: [u8; 16],
    pub generation: GenerationId,
    pub committed: u64,
    pub issued: u64,
    pub geometry: Geometry,
}

/// One record: `count` consecutive 64-block words from `first`, each with these dirty and
/// discard bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub first: u64,
    pub count: u64,
    pub dirty: u64,
    pub discard: u64,
}

/// Blocks of a disk of `size` bytes at `block_size` granularity.
fn blocks(size: u64, block_size: u32) -> u64 {
    size.div_ceil(u64::from(block_size))
}

/// The largest state file for a tracker of this capacity and granularity (one record per
/// 64-block word at most).
pub(crate) fn max_len(capacity: u64, block_size: u32) -> u64 {
    let words = blocks(capacity, block_size).div_ceil(64);
    (FIXED_LEN as u64 + 4 + LOG_FIXED + 8 * u64::from(MAX_ACTIVE_REGIONS))
        .saturating_add(words.saturating_mul(RECORD_LEN as u64))
}

/// Encodes a state whose dirty set is `words`: ascending, non-overlapping `(word, dirty,
/// discard)` (zero words skipped), coalesced here into records of identical words.
pub(crate) fn encode(s: &State, words: impl IntoIterator<Item = (u64, u64, u64)>) -> Vec<u8> {
    encode_with(s, words, None)
}

/// [`encode`], with the activity-log section of an active file.
pub(crate) fn encode_with(
    s: &State,
    words: impl IntoIterator<Item = (u64, u64, u64)>,
    log: Option<&LogSection>,
) -> Vec<u8> {
    let mut records: Vec<Record> = Vec::new();
    for (w, dirty, discard) in words {
        if dirty == 0 {
            continue;
        }
        match records.last_mut() {
            Some(r) if r.first + r.count == w && r.dirty == dirty && r.discard == discard => {
                r.count += 1
            }
            _ => records.push(Record {
                first: w,
                count: 1,
                dirty,
                discard,
            }),
        }
    }
    let mut w = W(Vec::with_capacity(
        FIXED_LEN + records.len() * RECORD_LEN + 4,
    ));
    let g = &s.geometry;
    w.head(MAGIC, TRACKER_STATE_MAJOR, TRACKER_STATE_MINOR)
        .u32(s.kind.code())
        .u32(0)
        .bytes(&s.disk_id)
        .bytes(&s.generation.0)
        .u64(s.committed)
        .u64(s.issued)
        .u64(g.disk_size)
        .u64(g.capacity)
        .u32(g.sector_size)
        .u32(g.block_size)
        .u64(records.len() as u64);
    for r in &records {
        w.u64(r.first).u64(r.count).u64(r.dirty).u64(r.discard);
    }
    if let Some(l) = log {
        w.bytes(&l.log_id)
            .u32(l.region_shift)
            .u32(l.slots)
            .u64(l.active.len() as u64);
        for &r in &l.active {
            w.u64(r);
        }
    }
    w.seal()
}

/// Decodes and checks a whole state file. `f` is called for every record, in order, after
/// the header and the record itself were checked (and before later records are): a caller
/// that applies them must discard its work if this returns an error.
pub(crate) fn decode(b: &[u8], mut f: impl FnMut(Record)) -> Result<StateFileInfo, StateFileError> {
    if b.len() < 4 {
        return Err(StateFileError::TooShort {
            len: b.len() as u64,
        });
    }
    let mut r = codec::open_sealed(b, MAGIC, TRACKER_STATE_MAJOR, "tracker state file")?;
    let kind = match r.u32()? {
        1 => StateKind::Clean,
        2 => StateKind::InUse,
        3 => StateKind::Active,
        value => return Err(StateFileError::UnknownState { value }),
    };
    r.zero(4, "field after the state")?;
    let disk_id = r.arr16()?;
    let generation = GenerationId(r.arr16()?);
    let committed = r.u64()?;
    let issued = r.u64()?;
    let geometry = Geometry {
        disk_size: r.u64()?,
        capacity: r.u64()?,
        sector_size: r.u32()?,
        block_size: r.u32()?,
    };
    check_geometry(&geometry)?;
    // Numbers past MAX_SEQUENCE are never issued: a file claiming them is forged, and
    // continuing it could wrap a number and issue it twice.
    if committed > issued || issued > crate::tracker::MAX_SEQUENCE {
        return Err(StateFileError::BadSequence { committed, issued });
    }
    let claimed = r.u64()?;
    let room = r.remaining() as u64;
    // An active file's records are followed by its log section (at least LOG_FIXED bytes).
    let records_room = match kind {
        StateKind::Active => room.checked_sub(LOG_FIXED),
        _ => Some(room),
    };
    let fits = match (kind, claimed.checked_mul(RECORD_LEN as u64), records_room) {
        (StateKind::Active, Some(need), Some(have)) => need <= have,
        (StateKind::InUse, _, _) => claimed == 0 && room == 0,
        (_, Some(need), Some(have)) => need == have,
        _ => false,
    };
    if !fits {
        return Err(StateFileError::RecordCount { claimed, room });
    }
    let end_block = blocks(geometry.disk_size, geometry.block_size);
    let end_word = end_block.div_ceil(64);
    let mut prev_end = 0u64;
    let mut dirty_blocks = 0u64;
    for index in 0..claimed {
        let rec = Record {
            first: r.u64()?,
            count: r.u64()?,
            dirty: r.u64()?,
            discard: r.u64()?,
        };
        let bad = |what| Err(StateFileError::BadRecord { index, what });
        if rec.count == 0 {
            return bad("covers no word");
        }
        if rec.first < prev_end {
            return bad("starts before the end of the previous record");
        }
        let Some(end) = rec.first.checked_add(rec.count).filter(|&e| e <= end_word) else {
            return bad("reaches past the disk end");
        };
        if rec.dirty == 0 {
            return bad("has no dirty block");
        }
        if rec.discard & !rec.dirty != 0 {
            return bad("has a discard bit on a clean block");
        }
        if end == end_word && end_block % 64 != 0 && rec.dirty >> (end_block % 64) != 0 {
            return bad("has dirty blocks past the disk end");
        }
        prev_end = end;
        dirty_blocks += u64::from(rec.dirty.count_ones()) * rec.count;
        f(rec);
    }
    let log = if kind == StateKind::Active {
        Some(decode_log(&mut r, &geometry)?)
    } else {
        None
    };
    r.done()?;
    Ok(StateFileInfo {
        kind,
        disk_id,
        generation,
        committed,
        issued,
        geometry,
        records: claimed,
        dirty_blocks,
        log,
    })
}

/// Fixed bytes of the log section: log id (16), region shift (4), slots (4), count (8).
const LOG_FIXED: u64 = 32;

fn decode_log(r: &mut codec::R<'_>, g: &Geometry) -> Result<LogSection, StateFileError> {
    let bad = |what| Err(StateFileError::BadLog { what });
    let log_id = r.arr16()?;
    let region_shift = r.u32()?;
    let slots = r.u32()?;
    let count = r.u64()?;
    if !(MIN_REGION_SHIFT..=MAX_REGION_SHIFT).contains(&region_shift)
        || (1u64 << region_shift) < u64::from(g.block_size)
    {
        return bad("the region size is out of range or below the block size");
    }
    if slots == 0 || slots > MAX_ACTIVE_REGIONS {
        return bad("the number of active regions is out of range");
    }
    if count > u64::from(slots) || count.checked_mul(8) != Some(r.remaining() as u64) {
        return bad("the active region count does not match");
    }
    let regions = g.capacity.div_ceil(1u64 << region_shift);
    let mut active = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let region = r.u64()?;
        if region >= regions {
            return bad("an active region past the capacity");
        }
        if active.last().is_some_and(|&p| p >= region) {
            return bad("active regions out of order");
        }
        active.push(region);
    }
    Ok(LogSection {
        log_id,
        region_shift,
        slots,
        active,
    })
}

/// The geometry checks of `Tracker::new`, on values read from a file.
fn check_geometry(g: &Geometry) -> Result<(), StateFileError> {
    let bad = |what, value| Err(StateFileError::BadGeometry { what, value });
    if g.sector_size != 512 && g.sector_size != 4096 {
        return bad("the sector size must be 512 or 4096", g.sector_size.into());
    }
    let bs = g.block_size;
    if !bs.is_power_of_two() || !(MIN_GRANULARITY..=MAX_GRANULARITY).contains(&bs) {
        return bad(
            "the block size must be a power of two from 512 B to 1 MiB",
            bs.into(),
        );
    }
    if bs < g.sector_size {
        return bad("the block size is below the sector size", bs.into());
    }
    let sector = u64::from(g.sector_size);
    if g.disk_size == 0 || g.disk_size % sector != 0 {
        return bad(
            "the disk size must be a non-zero multiple of the sector size",
            g.disk_size,
        );
    }
    if g.capacity < g.disk_size || g.capacity > MAX_DISK_SIZE || g.capacity % sector != 0 {
        return bad(
            "the capacity must be a multiple of the sector size from the disk size to 1 EiB",
            g.capacity,
        );
    }
    if blocks(g.capacity, bs) > MAX_BLOCKS {
        return bad("the capacity holds more than 2^40 blocks", g.capacity);
    }
    Ok(())
}
