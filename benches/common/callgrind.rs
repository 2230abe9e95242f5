//! Instruction counts as a second opinion beside paired times: a bench re-runs itself under
//! `valgrind --tool=callgrind`, each workload once inside [`measured_region`], one dump per
//! call, and reads each dump's total.

#![allow(dead_code)]

use std::hint::black_box;
use std::path::Path;
use std::process::Command;

/// The function callgrind's `--toggle-collect` and `--dump-after` name (this module is
/// included as `callgrind` in each bench).
fn region() -> String {
    format!("{}::callgrind::measured_region", env!("CARGO_CRATE_NAME"))
}

/// The one function whose instructions callgrind counts, dumping the count when it returns:
/// one dump per call, in the order run.
#[inline(never)]
pub fn measured_region(f: &mut dyn FnMut() -> usize) -> usize {
    black_box(f())
}

/// Whether valgrind can be run.
pub fn valgrind_available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs this bench binary with `args` under callgrind, writing dumps to `out.1`, `out.2`, ...
pub fn run_counted(out: &Path, args: &[&str]) {
    let exe = std::env::current_exe().expect("own path");
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--toggle-collect={}", region()))
        .arg(format!("--dump-after={}", region()))
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&exe)
        .args(args)
        .status()
        .expect("run valgrind");
    assert!(status.success(), "callgrind run {args:?} failed");
}

/// The instruction total of one callgrind dump ("summary:" or, in newer formats, "totals:").
pub fn dump_total(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("callgrind dump {}: {e}", path.display()));
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no total in {}", path.display()))
}
