//! The manifest: the one small file whose atomic replacement commits every change of a store.

use super::error::{corrupt, Result};
use super::format::{open_sealed, put_head, MANIFEST_MAGIC, R, W};
use crate::tracker::GenerationId;

pub(crate) const MANIFEST_OBJECT: &str = "MANIFEST";

/// Bound on the manifest's counters and a pack's data length: a hostile manifest's values
/// beyond it would overflow the arithmetic done with them.
pub(crate) const MAX_COUNTER: u64 = 1 << 62;

/// Base levels a manifest may list (the store keeps at most [`BASE_LEVELS`]).
const MAX_LEVELS: usize = 1024;

/// Base levels before a fold rewrites the base as one.
pub(crate) const BASE_LEVELS: usize = 64;

/// Retention policy. `None` means no limit of that kind. See [`crate::replica::Store::retain`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Crash-consistent points older than this expire (for example 24 hours).
    pub max_age_ns: Option<u64>,
    /// Application-consistent points older than this expire (for example 15 days).
    pub app_max_age_ns: Option<u64>,
    /// Among application-consistent points older than `max_age_ns`, keep only the newest in
    /// each interval of this length (for example hourly).
    pub app_interval_ns: Option<u64>,
    /// At most this many points (the newest is always kept).
    pub max_points: Option<u64>,
    /// Hard cap on the store's bytes, base included. The oldest points are expired early to
    /// stay under it (each one reported); a stream that still does not fit is refused.
    pub max_bytes: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PointRec {
    pub layer: u64,
    pub generation: GenerationId,
    pub from_seq: u64,
    pub to_seq: u64,
    pub disk_size: u64,
    pub time_ns: u64,
    pub ingested_ns: u64,
    pub bookmark_id: u64,
    pub app: bool,
    pub bookmarked: bool,
    pub detached: bool,
    pub label: String,
    /// Bytes of data this point's stream stored (its pack), for reporting.
    pub stored_bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PackRec {
    pub id: u64,
    /// Bytes of the pack's data region (header chunk included); the object is longer by its
    /// checksum table and footer.
    pub data_len: u64,
    /// The bundle holding the pack (0: the pack is its own object `pack-<id>`).
    pub bundle: u64,
    /// Where the pack's bytes start in its bundle (a multiple of 4096, after the bundle's
    /// header chunk); 0 for a pack that is its own object.
    pub offset: u64,
}

impl PackRec {
    /// A pack that is its own object.
    pub fn own(id: u64, data_len: u64) -> Self {
        PackRec {
            id,
            data_len,
            bundle: 0,
            offset: 0,
        }
    }
}

/// A layer object of the base. The base is its levels overlaid, oldest first, minus what the
/// oldest point's own layer covers (no point reads the base there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BaseLevel {
    pub layer: u64,
    /// Its runs (its object is `28 + 40 * runs` bytes).
    pub runs: u64,
}

/// An object holding whole packs, each at a 4 KiB-aligned offset, after a header chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BundleRec {
    pub id: u64,
    /// The object's size.
    pub len: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pending {
    /// The pack being uploaded.
    pub pack: u64,
    /// The object holding the resume state.
    pub resume: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub counter: u64,
    pub store_id: [u8; 16],
    pub disk_id: [u8; 16],
    pub created_ns: u64,
    pub next_object: u64,
    /// The generation and checkpoint the next stream continues; `None` for an empty store.
    pub lineage: Option<(GenerationId, u64)>,
    /// The base's layer objects, oldest first, newest wins (none: the base is all zeros), and
    /// the disk size it has.
    pub base: Vec<BaseLevel>,
    pub base_size: u64,
    pub retention: Retention,
    /// In layer order: each point's layer lies over the previous point's (or the base).
    pub points: Vec<PointRec>,
    pub packs: Vec<PackRec>,
    pub bundles: Vec<BundleRec>,
    pub pending: Option<Pending>,
}

fn opt(v: Option<u64>) -> u64 {
    v.unwrap_or(0)
}

fn unopt(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

const FLAG_APP: u8 = 1;
const FLAG_BOOKMARK: u8 = 2;
const FLAG_DETACHED: u8 = 4;

/// The manifest's fields a commit can change, apart from its lists: next object id, lineage,
/// base size, retention and the resumable ingest (112 bytes; shared by the manifest and its
/// log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Scalars {
    pub next_object: u64,
    pub lineage: Option<(GenerationId, u64)>,
    pub base_size: u64,
    pub retention: Retention,
    pub pending: Option<Pending>,
}

/// Bytes a point record takes at least (without its label), a pack record and a bundle record.
pub(crate) const POINT_MIN: usize = 88;
pub(crate) const PACK_BYTES: usize = 32;
pub(crate) const BUNDLE_BYTES: usize = 16;
pub(crate) const LEVEL_BYTES: usize = 16;

pub(crate) fn put_scalars(w: &mut W, s: &Scalars) {
    w.u64(s.next_object);
    match s.lineage {
        Some((g, q)) => w.u8(1).bytes(&[0; 7]).bytes(&g.0).u64(q),
        None => w.u8(0).bytes(&[0; 7]).bytes(&[0; 16]).u64(0),
    };
    w.u64(s.base_size);
    let r = &s.retention;
    w.u64(opt(r.max_age_ns))
        .u64(opt(r.app_max_age_ns))
        .u64(opt(r.app_interval_ns))
        .u64(opt(r.max_points))
        .u64(opt(r.max_bytes));
    match s.pending {
        Some(p) => w.u8(1).bytes(&[0; 7]).u64(p.pack).u64(p.resume),
        None => w.u8(0).bytes(&[0; 7]).u64(0).u64(0),
    };
}

pub(crate) fn get_scalars(r: &mut R<'_>, o: &str) -> Result<Scalars> {
    let next_object = r.u64()?;
    let has_lineage = r.u8()?;
    r.zero(7, "lineage flags")?;
    let gen = GenerationId(r.arr16()?);
    let head = r.u64()?;
    let lineage = match has_lineage {
        0 => None,
        1 => Some((gen, head)),
        v => return Err(corrupt(o, format!("lineage flag {v}"))),
    };
    let base_size = r.u64()?;
    let retention = Retention {
        max_age_ns: unopt(r.u64()?),
        app_max_age_ns: unopt(r.u64()?),
        app_interval_ns: unopt(r.u64()?),
        max_points: unopt(r.u64()?),
        max_bytes: unopt(r.u64()?),
    };
    let has_pending = r.u8()?;
    r.zero(7, "pending flags")?;
    let (pack, resume) = (r.u64()?, r.u64()?);
    let pending = match has_pending {
        0 => None,
        1 => Some(Pending { pack, resume }),
        v => return Err(corrupt(o, format!("pending flag {v}"))),
    };
    Ok(Scalars {
        next_object,
        lineage,
        base_size,
        retention,
        pending,
    })
}

pub(crate) fn put_point(w: &mut W, p: &PointRec) {
    let flags = (p.app as u8 * FLAG_APP)
        | (p.bookmarked as u8 * FLAG_BOOKMARK)
        | (p.detached as u8 * FLAG_DETACHED);
    w.u64(p.layer)
        .bytes(&p.generation.0)
        .u64(p.from_seq)
        .u64(p.to_seq)
        .u64(p.disk_size)
        .u64(p.time_ns)
        .u64(p.ingested_ns)
        .u64(p.bookmark_id)
        .u64(p.stored_bytes)
        .u8(flags)
        .u8(0)
        .u16(p.label.len() as u16)
        .u32(0)
        .bytes(p.label.as_bytes());
}

pub(crate) fn get_point(r: &mut R<'_>, o: &str, i: usize) -> Result<PointRec> {
    let layer = r.u64()?;
    let generation = GenerationId(r.arr16()?);
    let from_seq = r.u64()?;
    let to_seq = r.u64()?;
    let disk_size = r.u64()?;
    let time_ns = r.u64()?;
    let ingested_ns = r.u64()?;
    let bookmark_id = r.u64()?;
    let stored_bytes = r.u64()?;
    let flags = r.u8()?;
    r.zero(1, "point field")?;
    let label_len = r.u16()? as usize;
    r.zero(4, "point field")?;
    let label = std::str::from_utf8(r.take(label_len)?)
        .map_err(|_| corrupt(o, format!("point {i}: label is not UTF-8")))?
        .to_string();
    if flags & !(FLAG_APP | FLAG_BOOKMARK | FLAG_DETACHED) != 0 {
        return Err(corrupt(o, format!("point {i}: unknown flags {flags:#x}")));
    }
    if from_seq >= to_seq || disk_size == 0 || disk_size > crate::stream::MAX_DISK_SIZE {
        return Err(corrupt(
            o,
            format!("point {i}: sequences {from_seq}..{to_seq} or size {disk_size} invalid"),
        ));
    }
    Ok(PointRec {
        layer,
        generation,
        from_seq,
        to_seq,
        disk_size,
        time_ns,
        ingested_ns,
        bookmark_id,
        app: flags & FLAG_APP != 0,
        bookmarked: flags & FLAG_BOOKMARK != 0,
        detached: flags & FLAG_DETACHED != 0,
        label,
        stored_bytes,
    })
}

pub(crate) fn put_pack(w: &mut W, p: &PackRec) {
    w.u64(p.id).u64(p.data_len).u64(p.bundle).u64(p.offset);
}

pub(crate) fn get_pack(r: &mut R<'_>) -> Result<PackRec> {
    Ok(PackRec {
        id: r.u64()?,
        data_len: r.u64()?,
        bundle: r.u64()?,
        offset: r.u64()?,
    })
}

pub(crate) fn put_bundle(w: &mut W, b: &BundleRec) {
    w.u64(b.id).u64(b.len);
}

pub(crate) fn get_bundle(r: &mut R<'_>) -> Result<BundleRec> {
    Ok(BundleRec {
        id: r.u64()?,
        len: r.u64()?,
    })
}

pub(crate) fn put_level(w: &mut W, l: &BaseLevel) {
    w.u64(l.layer).u64(l.runs);
}

pub(crate) fn get_level(r: &mut R<'_>) -> Result<BaseLevel> {
    Ok(BaseLevel {
        layer: r.u64()?,
        runs: r.u64()?,
    })
}

/// Reads a list of fixed-size records after its count (4) and 4 reserved bytes, refusing a
/// count the bytes left cannot hold before allocating for it.
fn get_list<T>(
    r: &mut R<'_>,
    o: &str,
    what: &str,
    size: usize,
    get: impl Fn(&mut R<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let n = r.u32()? as usize;
    r.zero(4, "list count field")?;
    if n.saturating_mul(size) > r.remaining() {
        return Err(corrupt(o, format!("claims {n} {what}, holds fewer")));
    }
    (0..n).map(|_| get(r)).collect()
}

impl Manifest {
    pub fn scalars(&self) -> Scalars {
        Scalars {
            next_object: self.next_object,
            lineage: self.lineage,
            base_size: self.base_size,
            retention: self.retention,
            pending: self.pending,
        }
    }

    pub fn set_scalars(&mut self, s: Scalars) {
        self.next_object = s.next_object;
        self.lineage = s.lineage;
        self.base_size = s.base_size;
        self.retention = s.retention;
        self.pending = s.pending;
    }

    /// The length of [`Manifest::encode`]'s output, without encoding.
    pub fn encoded_len(&self) -> u64 {
        let labels: usize = self.points.iter().map(|p| p.label.len()).sum();
        (184 + POINT_MIN * self.points.len()
            + labels
            + PACK_BYTES * self.packs.len()
            + 8
            + BUNDLE_BYTES * self.bundles.len()
            + 8
            + LEVEL_BYTES * self.base.len()
            + 4) as u64
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = W(Vec::with_capacity(self.encoded_len() as usize));
        put_head(&mut w, MANIFEST_MAGIC);
        w.u64(self.counter)
            .bytes(&self.store_id)
            .bytes(&self.disk_id)
            .u64(self.created_ns);
        put_scalars(&mut w, &self.scalars());
        w.u32(self.points.len() as u32).u32(self.packs.len() as u32);
        for p in &self.points {
            put_point(&mut w, p);
        }
        for p in &self.packs {
            put_pack(&mut w, p);
        }
        w.u32(self.bundles.len() as u32).u32(0);
        for b in &self.bundles {
            put_bundle(&mut w, b);
        }
        w.u32(self.base.len() as u32).u32(0);
        for l in &self.base {
            put_level(&mut w, l);
        }
        w.seal()
    }

    pub fn decode(b: &[u8]) -> Result<Manifest> {
        let o = MANIFEST_OBJECT;
        let mut r = open_sealed(b, MANIFEST_MAGIC, o)?;
        let counter = r.u64()?;
        let store_id = r.arr16()?;
        let disk_id = r.arr16()?;
        let created_ns = r.u64()?;
        let s = get_scalars(&mut r, o)?;
        let npoints = r.u32()? as usize;
        let npacks = r.u32()? as usize;
        // Refuse counts the file cannot hold before allocating for them.
        if npoints
            .saturating_mul(POINT_MIN)
            .saturating_add(npacks.saturating_mul(PACK_BYTES))
            > r.remaining()
        {
            return Err(corrupt(
                o,
                format!("claims {npoints} points and {npacks} packs, holds fewer"),
            ));
        }
        let mut points = Vec::with_capacity(npoints);
        for i in 0..npoints {
            points.push(get_point(&mut r, o, i)?);
        }
        let mut packs = Vec::with_capacity(npacks);
        for _ in 0..npacks {
            packs.push(get_pack(&mut r)?);
        }
        let bundles = get_list(&mut r, o, "bundles", BUNDLE_BYTES, get_bundle)?;
        let base = get_list(&mut r, o, "base levels", LEVEL_BYTES, get_level)?;
        r.done()?;
        let mut m = Manifest {
            counter,
            store_id,
            disk_id,
            created_ns,
            next_object: 0,
            lineage: None,
            base,
            base_size: 0,
            retention: Retention::default(),
            points,
            packs,
            bundles,
            pending: None,
        };
        m.set_scalars(s);
        m.check()?;
        Ok(m)
    }

    /// Cross-field consistency of a decoded manifest.
    pub(crate) fn check(&self) -> Result<()> {
        let o = MANIFEST_OBJECT;
        let mut ids: Vec<u64> = self.points.iter().map(|p| p.layer).collect();
        ids.extend(self.packs.iter().map(|p| p.id));
        ids.extend(self.bundles.iter().map(|b| b.id));
        ids.extend(self.base.iter().map(|l| l.layer));
        if let Some(p) = self.pending {
            ids.extend([p.pack, p.resume]);
        }
        if ids.iter().any(|&id| id == 0 || id >= self.next_object) {
            return Err(corrupt(o, "an object id is 0 or not below next_object"));
        }
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != n {
            return Err(corrupt(o, "an object id is used twice"));
        }
        if self.base_size > crate::stream::MAX_DISK_SIZE {
            return Err(corrupt(o, "base size out of range"));
        }
        if self.base.len() > MAX_LEVELS || self.base.iter().any(|l| l.runs > MAX_COUNTER) {
            return Err(corrupt(o, "too many base levels, or runs"));
        }
        if self.lineage.is_none() && !self.points.is_empty() {
            return Err(corrupt(o, "points without a lineage"));
        }
        // Detached points form one contiguous run after at least one main point.
        let first = self.points.iter().position(|p| p.detached);
        if let Some(f) = first {
            let end = f + self.points[f..].iter().take_while(|p| p.detached).count();
            if self.points[end..].iter().any(|p| p.detached) || f == 0 {
                return Err(corrupt(
                    o,
                    "detached points are not one branch after a main point",
                ));
            }
        }
        for p in &self.packs {
            if p.data_len < super::format::CHUNK {
                return Err(corrupt(
                    o,
                    format!("pack {} is shorter than its header", p.id),
                ));
            }
            // Pack offsets, sizes and checksum-table positions are computed from data_len.
            if p.data_len > MAX_COUNTER {
                return Err(corrupt(
                    o,
                    format!("pack {} claims {} bytes of data", p.id, p.data_len),
                ));
            }
        }
        self.check_bundles()?;
        // The commit counter and the next object id only ever grow by one: far below this.
        if self.counter > MAX_COUNTER || self.next_object > MAX_COUNTER {
            return Err(corrupt(o, "commit counter or next object id out of range"));
        }
        Ok(())
    }

    /// Every bundled pack lies inside its bundle, 4 KiB-aligned after the header chunk, and no
    /// two overlap; every bundle holds at least one pack; a standalone pack has offset 0.
    fn check_bundles(&self) -> Result<()> {
        let o = MANIFEST_OBJECT;
        let mut spans: std::collections::HashMap<u64, (u64, Vec<(u64, u64)>)> = self
            .bundles
            .iter()
            .map(|b| (b.id, (b.len, Vec::new())))
            .collect();
        for b in &self.bundles {
            if b.len > MAX_COUNTER {
                return Err(corrupt(
                    o,
                    format!("bundle {} claims {} bytes", b.id, b.len),
                ));
            }
        }
        for p in &self.packs {
            if p.bundle == 0 {
                if p.offset != 0 {
                    return Err(corrupt(
                        o,
                        format!("pack {} has an offset but no bundle", p.id),
                    ));
                }
                continue;
            }
            let Some((len, v)) = spans.get_mut(&p.bundle) else {
                return Err(corrupt(
                    o,
                    format!(
                        "pack {} is in bundle {}, which is not listed",
                        p.id, p.bundle
                    ),
                ));
            };
            let end = p
                .offset
                .saturating_add(super::format::pack_object_len(p.data_len));
            if p.offset % super::format::CHUNK != 0 || p.offset < super::format::CHUNK || end > *len
            {
                return Err(corrupt(
                    o,
                    format!(
                        "pack {} lies outside bundle {} or unaligned",
                        p.id, p.bundle
                    ),
                ));
            }
            v.push((p.offset, end));
        }
        for (id, (_, mut v)) in spans {
            if v.is_empty() {
                return Err(corrupt(o, format!("bundle {id} holds no pack")));
            }
            v.sort_unstable();
            if v.windows(2).any(|w| w[1].0 < w[0].1) {
                return Err(corrupt(o, format!("packs overlap in bundle {id}")));
            }
        }
        Ok(())
    }
}

pub(crate) fn bundle_name(id: u64) -> String {
    object_name("bundle", id)
}

/// The id an object name `<kind>-<16 hex>` carries (as [`object_name`] writes it), if it is
/// one.
pub(crate) fn object_id(name: &str) -> Option<u64> {
    let (_, hex) = name.rsplit_once('-')?;
    if hex.len() != 16 || !hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

pub(crate) fn object_name(kind: &str, id: u64) -> String {
    format!("{kind}-{id:016x}")
}

pub(crate) fn pack_name(id: u64) -> String {
    object_name("pack", id)
}

pub(crate) fn layer_name(id: u64) -> String {
    object_name("layer", id)
}

pub(crate) fn resume_name(id: u64) -> String {
    object_name("resume", id)
}
