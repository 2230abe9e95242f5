//! Issue 8, defect 1: a stale stream delivered after an abort must never make the sender commit
//! a checkpoint the replica did not apply, and the next successful cycle must leave the replica
//! identical to the source.
//!
//! The scenario of the issue: take (#1), encode stream A, abort, write more, take again, encode
//! B; deliver A instead of B. Before the fix the second take reused number 1, A and B carried the
//! same (disk, generation, from, to), A was accepted as B, the sender committed, and every write
//! after the first take was missing on the replica.

use blockdelta::stream::{encode_to_vec, EncoderConfig};
use blockdelta::{
    Applied, Applier, CheckpointInfo, DecoderConfig, Expected, Extent, GenerationId, Secret,
    StreamError, Tracker, TrackerConfig, TrackerError,
};

const DISK: u64 = 1 << 20;
const BLOCK: u32 = 4096;
const ID: [u8; 16] = *b"stale-stream-001";
const SECRET: &[u8] = b"a secret of more than sixteen bytes";

fn secret() -> Secret {
    Secret::new(SECRET).expect("long enough")
}

/// Every extent of the taken checkpoint.
fn extents(t: &Tracker, cp: &CheckpointInfo) -> Vec<Extent> {
    let mut cursor = cp.cursor();
    let mut out = Vec::new();
    let mut batch = [Extent::default(); 7];
    loop {
        let n = t.extents(&mut cursor, &mut batch).expect("extents");
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&batch[..n]);
    }
}

/// The stream for the taken checkpoint, read from `source` now.
fn encode(t: &Tracker, cp: &CheckpointInfo, source: &[u8]) -> Vec<u8> {
    let mut cfg = EncoderConfig::new(ID, cp.generation, cp.from_sequence, cp.sequence, DISK);
    cfg.block_size = BLOCK;
    cfg.secret = Some(secret());
    let mut src = source.to_vec();
    encode_to_vec(cfg, &extents(t, cp), &mut src).expect("encode")
}

/// The receiver: applies `stream` to `replica`, which is at `replica_seq` of `generation`.
/// Returns what it reports as applied.
fn deliver(
    stream: &[u8],
    replica: &mut Vec<u8>,
    generation: GenerationId,
    replica_seq: u64,
) -> Result<Applied, StreamError> {
    let expected = Expected {
        disk_id: Some(ID),
        generation: Some(generation),
        replica_seq: Some(replica_seq),
    };
    let cfg = DecoderConfig::new()
        .with_secret(secret())
        .with_expected(expected);
    let mut app = Applier::new(cfg, std::mem::take(replica));
    let r = app.push(stream).and_then(|n| {
        assert_eq!(n, stream.len());
        app.finish()
    });
    let applied = app.applied();
    *replica = app.into_target();
    r.map(|_| applied.expect("a finished applier reports what it applied"))
}

fn write(t: &Tracker, source: &mut [u8], offset: u64, len: u64, byte: u8) {
    source[offset as usize..(offset + len) as usize].fill(byte);
    t.mark_write(offset, len).expect("mark");
}

#[test]
fn a_stale_stream_after_an_abort_is_never_committed_and_the_next_cycle_levels_the_replica() {
    let t = Tracker::new(
        TrackerConfig::new(DISK)
            .granularity(BLOCK)
            .start_clean(true),
    )
    .unwrap();
    let mut source = vec![0u8; DISK as usize];
    let mut replica = vec![0u8; DISK as usize];
    let generation = t.generation();

    // Cycle 1 ships normally: the replica is at 1.
    write(&t, &mut source, 0, 8192, 1);
    let cp1 = t.take().unwrap();
    assert_eq!((cp1.from_sequence, cp1.sequence), (0, 1));
    let s1 = encode(&t, &cp1, &source);
    let applied = deliver(&s1, &mut replica, generation, 0).unwrap();
    assert_eq!((applied.generation, applied.to_seq), (generation, 1));
    t.commit(applied.generation, applied.to_seq).unwrap();
    let mut replica_seq = applied.to_seq;
    assert_eq!(replica, source);

    // Take, encode A, abort; write more; take again, encode B.
    write(&t, &mut source, 65536, 4096, 2);
    let cp_a = t.take().unwrap();
    let stream_a = encode(&t, &cp_a, &source);
    t.abort(cp_a.sequence).unwrap();
    write(&t, &mut source, 131072, 12288, 3);
    write(&t, &mut source, 0, 4096, 4);
    let cp_b = t.take().unwrap();
    assert_ne!(
        cp_b.sequence, cp_a.sequence,
        "an aborted checkpoint number is never issued again"
    );
    assert_eq!(cp_b.from_sequence, cp_a.from_sequence);
    let stream_b = encode(&t, &cp_b, &source);
    assert_ne!(stream_a, stream_b);

    // A arrives instead of B. It is a valid older delta, so the replica may apply it, but it
    // reports A's checkpoint, and the sender cannot commit B with that.
    let applied = deliver(&stream_a, &mut replica, generation, replica_seq).unwrap();
    assert_eq!(applied.to_seq, cp_a.sequence);
    replica_seq = applied.to_seq;
    let refused = t.commit(applied.generation, applied.to_seq);
    assert!(
        matches!(refused, Err(TrackerError::WrongCheckpoint { .. })),
        "{refused:?}"
    );
    assert_ne!(replica, source, "the replica really misses B's writes here");
    t.abort(cp_b.sequence).unwrap();

    // A stale stream can never be applied twice: A again, and any stream ending at or before
    // the replica's checkpoint, is refused without a write.
    let before = replica.clone();
    let again = deliver(&stream_a, &mut replica, generation, replica_seq);
    assert!(
        matches!(again, Err(StreamError::AlreadyApplied { .. })),
        "{again:?}"
    );
    let old = deliver(&s1, &mut replica, generation, replica_seq);
    assert!(
        matches!(old, Err(StreamError::AlreadyApplied { .. })),
        "{old:?}"
    );
    assert_eq!(replica, before, "a refused stream writes nothing");

    // The next successful cycle: from the last commit (1) to a new number, applied on a
    // replica at A's checkpoint, committed with what the replica reports.
    write(&t, &mut source, 262144, 4096, 5);
    let cp_c = t.take().unwrap();
    assert_eq!(cp_c.from_sequence, 1);
    assert!(cp_c.sequence > cp_b.sequence);
    let stream_c = encode(&t, &cp_c, &source);
    let applied = deliver(&stream_c, &mut replica, generation, replica_seq).unwrap();
    assert_eq!(applied.to_seq, cp_c.sequence);
    t.commit(applied.generation, applied.to_seq).unwrap();
    assert_eq!(
        replica, source,
        "after the next successful cycle the replica is the source"
    );

    // And B, delivered late, is stale now.
    let late = deliver(&stream_b, &mut replica, generation, applied.to_seq);
    assert!(
        matches!(late, Err(StreamError::AlreadyApplied { .. })),
        "{late:?}"
    );
    assert_eq!(replica, source);
    let stats = t.stats();
    assert_eq!(
        (stats.checkpoints_committed, stats.checkpoints_aborted),
        (2, 2)
    );
}

#[test]
fn a_stream_from_another_generation_or_with_a_gap_is_refused() {
    let t = Tracker::new(TrackerConfig::new(DISK).granularity(BLOCK)).unwrap();
    let source = vec![9u8; DISK as usize];
    let cp = t.take().unwrap();
    let stream = encode(&t, &cp, &source);
    let mut replica = vec![0u8; DISK as usize];
    let other = deliver(&stream, &mut replica, GenerationId([7; 16]), 0);
    assert!(
        matches!(other, Err(StreamError::WrongGeneration { .. })),
        "{other:?}"
    );
    // A replica behind the stream's start would miss the changes in between.
    t.abort(cp.sequence).unwrap();
    t.mark_write(0, 1).unwrap();
    let cp2 = t.take().unwrap();
    let s2 = encode(&t, &cp2, &source);
    // Pretend the stream starts after the replica: a hand-made from_seq above replica_seq.
    let mut cfg = EncoderConfig::new(ID, cp2.generation, 5, 6, DISK);
    cfg.block_size = BLOCK;
    cfg.secret = Some(secret());
    let mut src = source.clone();
    let gap = encode_to_vec(cfg, &extents(&t, &cp2), &mut src).unwrap();
    let r = deliver(&gap, &mut replica, cp2.generation, 0);
    assert!(matches!(r, Err(StreamError::WrongSequence { .. })), "{r:?}");
    assert!(replica.iter().all(|&b| b == 0), "nothing was written");
    let ok = deliver(&s2, &mut replica, cp2.generation, 0).unwrap();
    assert_eq!(ok.to_seq, cp2.sequence);
    assert_eq!(replica, source);
}
