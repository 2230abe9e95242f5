//! Shared by the whole-process benches (`replica.rs`, `resync.rs`): the real-data image built
//! at bench time and cached, statistics of paired rounds (median, lowest, highest), a small
//! deterministic RNG.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

/// The real-data image's size.
pub const IMAGE: u64 = 1 << 30;
/// The pool of replacement blocks after it.
pub const POOL: u64 = 64 << 20;

/// `<target dir>/<name>`, created: where a bench caches what it builds.
pub fn cache_dir(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target")));
    let d = target.join(name);
    fs::create_dir_all(&d).unwrap();
    d
}

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Median, lowest, highest.
pub fn mmm(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (s[s.len() / 2], s[0], s[s.len() - 1])
}

pub fn show(v: &[f64], unit: &str, scale: f64) -> String {
    let (m, lo, hi) = mmm(v);
    let sep = if unit.is_empty() { "" } else { " " };
    format!(
        "{:.3}{sep}{unit} ({:.3}..{:.3})",
        m * scale,
        lo * scale,
        hi * scale
    )
}

pub fn ratio(v: &[f64]) -> String {
    let (m, lo, hi) = mmm(v);
    format!("{m:.2}x ({lo:.2}..{hi:.2})")
}

/// The files under /usr/bin, /usr/lib and /usr/share (sorted walk), concatenated: the image is the
/// first [`IMAGE`] bytes, the pool of replacement blocks the next [`POOL`]. Cached in `dir`.
pub fn image_and_pool(dir: &Path) -> (PathBuf, Vec<u8>) {
    let img = dir.join("image-1g.bin");
    let pool = dir.join("pool-64m.bin");
    let ok = |p: &Path, n: u64| fs::metadata(p).map(|m| m.len() == n).unwrap_or(false);
    if !ok(&img, IMAGE) || !ok(&pool, POOL) {
        eprintln!(
            "building the 1 GiB real-data image (cached in {})",
            dir.display()
        );
        let want = (IMAGE + POOL) as usize;
        let mut out = Vec::with_capacity(want);
        fn walk(dir: &Path, out: &mut Vec<u8>, want: usize) {
            let Ok(rd) = fs::read_dir(dir) else { return };
            let mut entries: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
            entries.sort();
            for p in entries {
                if out.len() >= want {
                    return;
                }
                let Ok(meta) = fs::symlink_metadata(&p) else {
                    continue;
                };
                if meta.is_dir() {
                    walk(&p, out, want);
                } else if meta.is_file() {
                    if let Ok(bytes) = fs::read(&p) {
                        let take = bytes.len().min(want - out.len());
                        out.extend_from_slice(&bytes[..take]);
                    }
                }
            }
        }
        for d in ["/usr/bin", "/usr/lib", "/usr/share"] {
            walk(Path::new(d), &mut out, want);
        }
        assert!(!out.is_empty(), "no files under /usr");
        // A small /usr: repeat what there is.
        while out.len() < want {
            let n = (want - out.len()).min(out.len());
            out.extend_from_within(..n);
        }
        fs::write(&img, &out[..IMAGE as usize]).unwrap();
        fs::write(&pool, &out[IMAGE as usize..]).unwrap();
    }
    (img, fs::read(&pool).unwrap())
}

/// "machine: N cores, CPU model", as the benches print it first.
pub fn machine() -> String {
    format!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_string())
            )
            .unwrap_or_default()
    )
}
