//! Discards end to end: a whole-block discard marked in the tracker comes out of `extents` as a
//! Discard extent and goes on the wire as a DISCARD record (nothing read from the source), and
//! `normalize_extents` keeps kinds apart, letting a write win where it overlaps a discard.

use blockdelta::stream::{encode_to_vec, normalize_extents, BlockSource};
use blockdelta::{
    Decoded, Decoder, DecoderConfig, EncoderConfig, Extent, GenerationId, Record, Tracker,
    TrackerConfig,
};

const DISK: u64 = 64 * 4096;

/// A source that records every read.
struct Reads {
    data: Vec<u8>,
    reads: Vec<(u64, usize)>,
}

impl BlockSource for Reads {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.reads.push((offset, buf.len()));
        buf.copy_from_slice(&self.data[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }
}

fn records(stream: &[u8]) -> Vec<(char, u64, u64)> {
    let mut dec = Decoder::new(DecoderConfig::new());
    let (mut at, mut out) = (0, Vec::new());
    while at < stream.len() {
        match dec.next(&stream[at..]).unwrap() {
            Decoded::Header { consumed, .. } => at += consumed,
            Decoded::Record { record, consumed } => {
                at += consumed;
                match record {
                    Record::Data { offset, data, .. } => out.push(('W', offset, data.len() as u64)),
                    Record::Discard { offset, len } => out.push(('D', offset, len)),
                    Record::Zero { offset, len } => out.push(('Z', offset, len)),
                    _ => {}
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

#[test]
fn a_tracked_discard_is_shipped_as_a_discard_record() {
    let t = Tracker::new(TrackerConfig::new(DISK).granularity(4096).start_clean(true)).unwrap();
    t.mark_write(0, 4096).unwrap();
    t.mark_discard(4096, 8 * 4096).unwrap();
    t.mark_write(20 * 4096, 100).unwrap();
    let info = t.take().unwrap();
    let mut cursor = info.cursor();
    let mut ext = [Extent::default(); 8];
    let n = t.extents(&mut cursor, &mut ext).unwrap();
    assert_eq!(
        &ext[..n],
        &[
            Extent::new(0, 4096),
            Extent::discard(4096, 8 * 4096),
            Extent::new(20 * 4096, 4096)
        ]
    );
    let mut src = Reads {
        data: vec![0xA5; DISK as usize],
        reads: Vec::new(),
    };
    let mut cfg = EncoderConfig::new(
        [1; 16],
        GenerationId(info.generation.0),
        info.from_sequence,
        info.sequence,
        DISK,
    );
    cfg.record_size = 4096;
    let stream = encode_to_vec(cfg, &ext[..n], &mut src).unwrap();
    assert_eq!(
        records(&stream),
        vec![
            ('W', 0, 4096),
            ('D', 4096, 8 * 4096),
            ('W', 20 * 4096, 4096)
        ]
    );
    assert_eq!(
        src.reads,
        vec![(0, 4096), (20 * 4096, 4096)],
        "the discarded range is never read"
    );
}

#[test]
fn normalize_keeps_kinds_apart_and_the_write_wins() {
    let mut v = vec![
        Extent::discard(0, 100),
        Extent::discard(100, 50), // adjacent, same kind: merged
        Extent::new(150, 10),     // adjacent, other kind: kept apart
        Extent::discard(200, 100),
        Extent::new(220, 10), // inside a discard: cuts it in two
        Extent::new(290, 30), // overlaps its end
        Extent::discard(400, 10),
        Extent::new(395, 20), // covers a discard entirely
        Extent::new(0, 0),
    ];
    normalize_extents(&mut v);
    assert_eq!(
        v,
        vec![
            Extent::discard(0, 150),
            Extent::new(150, 10),
            Extent::discard(200, 20),
            Extent::new(220, 10),
            Extent::discard(230, 60),
            Extent::new(290, 30),
            Extent::new(395, 20),
        ]
    );
}
