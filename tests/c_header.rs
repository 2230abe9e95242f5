//! The header as C and C++ compilers read it: every name it declares carries the `blockdelta_` /
//! `BLOCKDELTA_` prefix, and every integer constant evaluates, in C and in C++, with gcc and with
//! clang, to the value of the Rust constant of the same name.
//!
//! clang is required when `CI` is set (.ci/run installs it); on a machine without it the clang
//! half is skipped with a loud message on stderr.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use blockdelta::ffi::decoder::*;
use blockdelta::ffi::encoder::*;
use blockdelta::ffi::failback::*;
use blockdelta::ffi::limits::*;
use blockdelta::ffi::support::*;
use blockdelta::ffi::tracker::*;
use blockdelta::ffi::version::*;

/// The Rust value of every constant the header defines. A constant added to `src/ffi/` fails
/// `every_header_constant_has_the_rust_value_in_c_and_cpp` until it is listed here.
macro_rules! rust_values {
    ($($name:ident),* $(,)?) => {
        BTreeMap::from([$((stringify!($name), i128::from($name))),*])
    };
}

fn rust_constants() -> BTreeMap<&'static str, i128> {
    rust_values![
        BLOCKDELTA_ENCODE_LZ4,
        BLOCKDELTA_ENCODE_ZERO_DETECTION,
        BLOCKDELTA_ENCODE_HOLES_AS_DISCARD,
        BLOCKDELTA_FAILBACK_ORIGINAL_RESUMED,
        BLOCKDELTA_FAILBACK_ORIGINAL_UNPROVEN,
        BLOCKDELTA_FAILBACK_ORIGINAL_GONE,
        BLOCKDELTA_FAILBACK_DELTA,
        BLOCKDELTA_FAILBACK_CHECKSUM_RESYNC,
        BLOCKDELTA_FAILBACK_FULL_COPY,
        BLOCKDELTA_FAILBACK_REASON_NONE,
        BLOCKDELTA_FAILBACK_REASON_NEW_PRIMARY_NOT_FROM_FAILOVER,
        BLOCKDELTA_FAILBACK_REASON_ORIGINAL_UNTRUSTED,
        BLOCKDELTA_FAILBACK_REASON_ORIGINAL_NOT_IN_STORE,
        BLOCKDELTA_RECORD_NEED_MORE,
        BLOCKDELTA_RECORD_HEADER,
        BLOCKDELTA_RECORD_DATA,
        BLOCKDELTA_RECORD_ZERO,
        BLOCKDELTA_RECORD_DISCARD,
        BLOCKDELTA_RECORD_RESIZE,
        BLOCKDELTA_RECORD_BOOKMARK,
        BLOCKDELTA_RECORD_END,
        BLOCKDELTA_RECORD_SKIPPED,
        BLOCKDELTA_VM_DISK_OS,
        BLOCKDELTA_VM_DISK_SHARED_VHD,
        BLOCKDELTA_VM_DISK_FC,
        BLOCKDELTA_VM_DISK_DYNAMIC,
        BLOCKDELTA_LINUX_PARAVIRTUALIZED,
        BLOCKDELTA_LINUX_MULTI_QUEUE,
        BLOCKDELTA_LINUX_HP_CCISS,
        BLOCKDELTA_FS_XFS_V5,
        BLOCKDELTA_FS_BTRFS_SUBVOLUME_CHANGED,
        BLOCKDELTA_FS_BTRFS_MULTI_DISK,
        BLOCKDELTA_FS_BTRFS_RAID,
        BLOCKDELTA_OS_SUPPORTED,
        BLOCKDELTA_OS_MIGRATION_ONLY,
        BLOCKDELTA_OS_NOT_SUPPORTED,
        BLOCKDELTA_REJECT_NONE,
        BLOCKDELTA_REJECT_NOT_LISTED,
        BLOCKDELTA_REJECT_UNSUPPORTED,
        BLOCKDELTA_REJECT_ARCHITECTURE,
        BLOCKDELTA_REJECT_NEEDS_AGENT,
        BLOCKDELTA_REJECT_TRAITS,
        BLOCKDELTA_UPGRADE_IN_PLACE,
        BLOCKDELTA_UPGRADE_REPROTECT,
        BLOCKDELTA_UPGRADE_TARGET_MIGRATION_ONLY,
        BLOCKDELTA_UPGRADE_TARGET_NOT_SUPPORTED,
        BLOCKDELTA_UPGRADE_NOT_STATED,
        BLOCKDELTA_MACHINE_VMWARE_VM,
        BLOCKDELTA_MACHINE_PHYSICAL,
        BLOCKDELTA_FEATURE_NO,
        BLOCKDELTA_FEATURE_YES,
        BLOCKDELTA_FEATURE_CONDITIONAL,
        BLOCKDELTA_FEATURE_NOT_APPLICABLE,
        BLOCKDELTA_TRACKER_START_CLEAN,
        BLOCKDELTA_TRACKER_RESIDENT,
        BLOCKDELTA_TRACKER_LAZY,
        BLOCKDELTA_TRACKER_RESIDENT_LIMIT,
        BLOCKDELTA_TRACKER_LOAD_RESUMED,
        BLOCKDELTA_TRACKER_LOAD_MISSING,
        BLOCKDELTA_TRACKER_LOAD_UNREADABLE,
        BLOCKDELTA_TRACKER_LOAD_INVALID,
        BLOCKDELTA_TRACKER_LOAD_FOREIGN_DISK,
        BLOCKDELTA_TRACKER_LOAD_GEOMETRY_CHANGED,
        BLOCKDELTA_TRACKER_LOAD_UNCLEAN,
        BLOCKDELTA_TRACKER_LOAD_REPLICA_GENERATION,
        BLOCKDELTA_TRACKER_LOAD_REPLICA_AHEAD,
        BLOCKDELTA_TRACKER_LOAD_REPLICA_BEHIND,
        BLOCKDELTA_TRACKER_LOAD_RECOVERED,
        BLOCKDELTA_TRACKER_LOAD_ACTIVITY_LOG,
        BLOCKDELTA_VERSION_MAJOR,
        BLOCKDELTA_VERSION_MINOR,
        BLOCKDELTA_VERSION_PATCH,
        BLOCKDELTA_MIN_GRANULARITY,
        BLOCKDELTA_MAX_GRANULARITY,
        BLOCKDELTA_DEFAULT_GRANULARITY,
        BLOCKDELTA_DEFAULT_MEMORY_BUDGET,
        BLOCKDELTA_MAX_DISK_SIZE,
        BLOCKDELTA_MAX_BLOCKS,
        BLOCKDELTA_STREAM_FORMAT_VERSION,
        BLOCKDELTA_DEFAULT_RECORD_SIZE,
        BLOCKDELTA_MAX_RECORD_PAYLOAD,
        BLOCKDELTA_MAX_LABEL_LEN,
    ]
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn header() -> String {
    std::fs::read_to_string(root().join("include/blockdelta.h")).unwrap()
}

/// The header without comments (block and line), so that names in prose do not count.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            let end = after
                .find("*/")
                .expect("unterminated comment in the header");
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |n| &after[n..]);
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The names of the header's `#define`s, without the include guard.
fn header_macros() -> Vec<String> {
    strip_comments(&header())
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("#define "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .filter(|n| n != "BLOCKDELTA_H")
        .collect()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every name the header declares at file scope: macros, typedefs, struct/enum tags,
/// enumerators and functions (fields and parameters are not names a C program can clash with).
fn declared_names() -> Vec<String> {
    let text = strip_comments(&header());
    let mut names = Vec::new();
    let (mut in_enum, mut enum_pending, mut in_extern_c) = (false, false, false);
    let mut depth = 0usize;
    for line in text.lines() {
        let t = line.trim();
        if let Some(d) = t.strip_prefix("#define ") {
            names.push(d.split_whitespace().next().unwrap().to_string());
            continue;
        }
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        // The C++ `extern "C" { ... }` wrapper is not a scope of its own.
        if t.starts_with("extern \"C\"") {
            in_extern_c = true;
            continue;
        }
        if in_extern_c && depth == 0 && t == "}" {
            in_extern_c = false;
            continue;
        }
        let words: Vec<&str> = t
            .split(|c: char| !is_ident(c))
            .filter(|w| !w.is_empty())
            .collect();
        if depth == 0 {
            // `typedef struct X X;`, `typedef struct X {`, `enum X {`, `typedef T (*X)(...)`.
            for tag in ["struct", "enum"] {
                if let Some(i) = words.iter().position(|w| *w == tag) {
                    if let Some(n) = words.get(i + 1) {
                        names.push(n.to_string());
                    }
                }
            }
            if let Some(p) = t.find("(*").filter(|_| t.starts_with("typedef")) {
                let n: String = t[p + 2..].chars().take_while(|&c| is_ident(c)).collect();
                names.push(n);
            } else if !t.starts_with("typedef")
                && !t.starts_with('}')
                && !line.starts_with(char::is_whitespace)
            {
                // A function declaration (continuation lines are indented): the identifier
                // before the first `(`.
                if let Some(p) = t.find('(') {
                    let before = t[..p].trim_end();
                    let n: String = before
                        .chars()
                        .rev()
                        .take_while(|&c| is_ident(c))
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    names.push(n);
                }
            }
            if t.starts_with("typedef") && t.ends_with(';') && !t.contains('(') {
                names.push(words.last().unwrap().to_string());
            }
            // `enum blockdelta_x` opens its body on this line or a later one.
            if words.first() == Some(&"enum") {
                enum_pending = true;
            }
            if enum_pending && t.contains('{') {
                in_enum = true;
                enum_pending = false;
            }
        } else if in_enum && depth == 1 {
            if let Some(w) = words.first() {
                names.push(w.to_string());
            }
        }
        if let Some(n) = t.strip_prefix('}') {
            // `} blockdelta_x;` closes a typedef'd struct.
            let n: String = n.trim().chars().take_while(|&c| is_ident(c)).collect();
            if depth == 1 && !n.is_empty() {
                names.push(n);
            }
        }
        depth += t.matches('{').count();
        depth -= t.matches('}').count();
        if depth == 0 {
            in_enum = false;
        }
    }
    names
}

#[test]
fn every_name_in_the_header_is_prefixed() {
    let names = declared_names();
    assert!(
        names.iter().any(|n| n == "blockdelta_tracker_new")
            && names.iter().any(|n| n == "BLOCKDELTA_RESULT_OK")
            && names.iter().any(|n| n == "blockdelta_extent")
            && names.iter().any(|n| n == "BLOCKDELTA_MAX_DISK_SIZE"),
        "the header parser found too little: {names:?}"
    );
    let bad: Vec<&String> = names
        .iter()
        .filter(|n| !n.starts_with("blockdelta_") && !n.starts_with("BLOCKDELTA_"))
        .collect();
    assert!(bad.is_empty(), "unprefixed names in the header: {bad:?}");
}

/// `(compiler, language)` pairs to build the constant check with. clang is optional off CI.
fn compilers() -> Vec<(&'static str, &'static str)> {
    let mut out = vec![("gcc", "c"), ("g++", "c++")];
    let have_clang = Command::new("clang")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if have_clang {
        out.extend([("clang", "c"), ("clang++", "c++")]);
    } else if std::env::var_os("CI").is_some() {
        panic!(
            "clang is not installed: CI must check the header with clang too (.ci/run installs it)"
        );
    } else {
        eprintln!(
            "\n*** SKIPPED: clang is not installed, so the header constants were checked with gcc \
             only (apt-get install clang; CI requires it) ***\n"
        );
    }
    out
}

fn compile_and_run(cc: &str, lang: &str, src: &Path, dir: &Path) -> String {
    let exe = dir.join(format!("constants-{cc}"));
    let std = if lang == "c" {
        "-std=c11"
    } else {
        "-std=c++11"
    };
    let out = Command::new(cc)
        .args(["-x", lang, std, "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg("-I")
        .arg(root().join("include"))
        .arg(src)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(
        out.status.success(),
        "{cc} ({lang}) rejects the constant check:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    assert!(run.status.success(), "{cc} program failed");
    String::from_utf8(run.stdout).unwrap()
}

#[test]
fn every_header_constant_has_the_rust_value_in_c_and_cpp() {
    let macros = header_macros();
    let rust = rust_constants();
    let in_header: std::collections::BTreeSet<&str> = macros.iter().map(|s| s.as_str()).collect();
    let missing: Vec<&&str> = rust.keys().filter(|n| !in_header.contains(**n)).collect();
    assert!(
        missing.is_empty(),
        "Rust constants missing from the header: {missing:?}"
    );
    let unlisted: Vec<&&str> = in_header
        .iter()
        .filter(|n| !rust.contains_key(**n))
        .collect();
    assert!(
        unlisted.is_empty(),
        "header constants with no Rust value listed in tests/c_header.rs: {unlisted:?}"
    );

    // Both conversions are printed: a constant whose C type is signed and negative shows in
    // the first, every other one in the second (each value is below 2^63).
    let mut src = String::from("#include <stdio.h>\n#include \"blockdelta.h\"\nint main(void) {\n");
    for m in &macros {
        src += &format!(
            "  printf(\"%s %lld %llu\\n\", \"{m}\", (long long)({m}), (unsigned long long)({m}));\n"
        );
    }
    src += "  return 0;\n}\n";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("constants.c");
    std::fs::write(&file, src).unwrap();

    for (cc, lang) in compilers() {
        let out = compile_and_run(cc, lang, &file, dir.path());
        let mut seen = 0;
        for line in out.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let (name, signed, unsigned) = (f[0], f[1], f[2]);
            let want = rust[name];
            let got = if want < 0 {
                signed.parse::<i128>().unwrap()
            } else {
                unsigned.parse::<i128>().unwrap()
            };
            assert_eq!(
                got, want,
                "{name} is {got} in {lang} ({cc}), {want} in Rust"
            );
            seen += 1;
        }
        assert_eq!(
            seen,
            macros.len(),
            "{cc} printed {seen} of {} constants",
            macros.len()
        );
    }
}
