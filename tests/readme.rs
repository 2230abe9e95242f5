//! The README's promises that can go stale: the memory table is what the tracker reports.

use blockdelta::Tracker;

const TIB: u64 = 1 << 40;

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// The table as the README must show it, computed from `Tracker::memory_for`.
fn memory_table() -> String {
    let mut t = String::from("| granularity | 1 TiB | 4 TiB | 64 TiB |\n|---|---|---|---|\n");
    for (name, g) in [
        ("512 B", 512u32),
        ("4 KiB", 4096),
        ("64 KiB", 65536),
        ("1 MiB", 1 << 20),
    ] {
        t += &format!(
            "| {name} | {} | {} | {} |\n",
            mib(Tracker::memory_for(TIB, g)),
            mib(Tracker::memory_for(4 * TIB, g)),
            mib(Tracker::memory_for(64 * TIB, g))
        );
    }
    t
}

#[test]
fn readme_memory_table_matches_the_tracker() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let want = memory_table();
    assert!(
        readme.contains(&want),
        "README.md's memory table is stale; it should read:\n{want}"
    );
}

#[test]
fn reported_memory_is_what_memory_for_predicts() {
    let t = Tracker::new(blockdelta::TrackerConfig::new(4 * TIB)).unwrap();
    let g = Tracker::default_granularity(4 * TIB, 512);
    assert_eq!(t.memory_usage(), Tracker::memory_for(4 * TIB, g));
    assert!(t.memory_usage() <= blockdelta::tracker::DEFAULT_MEMORY_BUDGET);
}

/// The README's table of default granularities is what `Tracker::default_granularity` gives.
#[test]
fn readme_default_granularity_table_matches_the_tracker() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut want = String::from("| disk | default granularity | tracker memory |\n|---|---|---|\n");
    for (name, size) in [
        ("100 GiB", 100u64 << 30),
        ("500 GiB", 500 << 30),
        ("1 TiB", TIB),
        ("4 TiB", 4 * TIB),
        ("16 TiB", 16 * TIB),
        ("64 TiB", 64 * TIB),
    ] {
        let g = Tracker::default_granularity(size, 512);
        let gran = if g >= 1 << 20 {
            format!("{} MiB", g >> 20)
        } else {
            format!("{} KiB", g >> 10)
        };
        want += &format!(
            "| {name} | {gran} | {} |\n",
            mib(Tracker::memory_for(size, g))
        );
    }
    assert!(
        readme.contains(&want),
        "README.md's default granularity table is stale; it should read:\n{want}"
    );
}
