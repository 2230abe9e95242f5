//! The check after a crash and a reopen, shared by the crash tests: G2 (every acknowledged
//! point is still listed, unless retention or a discard removed it) and G1 (every listed point
//! reads back byte-identical to the source at its checkpoint).

use std::collections::{HashMap, HashSet};

use blockdelta::replica::{PointId, Store};

pub fn check_points_survived(
    store: &Store,
    acked: &[PointId],
    maybe_removed: &HashSet<PointId>,
    oracle: &HashMap<PointId, Vec<u8>>,
    what: &str,
) {
    let listed: HashSet<PointId> = store.points().iter().map(|p| p.id).collect();
    for id in acked {
        assert!(
            listed.contains(id) || maybe_removed.contains(id),
            "{what}: acknowledged point {} lost",
            id.sequence
        );
    }
    for p in store.points() {
        let want = &oracle[&p.id];
        let mut got = vec![0u8; p.disk_size as usize];
        store
            .read_at(p.id, 0, &mut got)
            .unwrap_or_else(|e| panic!("{what}: read {}: {e}", p.id.sequence));
        assert!(
            &got == want,
            "{what}: point {} differs after recovery",
            p.id.sequence
        );
    }
}
