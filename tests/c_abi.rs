//! The C ABI as a C program sees it: the committed header is what cbindgen generates now, the
//! version macros match Cargo.toml, every result code has its name, and every C program in
//! `tests/c/` and `examples/` compiles with `-std=c11 -Wall -Wextra -Werror -pedantic` and passes
//! against both the static and the shared library, and the shared library exports exactly the
//! functions the header declares (so the ABI grows only on purpose).
//!
//! Environment: `CC` picks the compiler (default `cc`); `BLOCKDELTA_C_SANITIZE=1` builds the C
//! programs with AddressSanitizer and UBSan; `BLOCKDELTA_C_VALGRIND=1` runs them under valgrind.

use std::ffi::CStr;
use std::path::PathBuf;
use std::process::Command;

use blockdelta::ffi::result::{blockdelta_result, blockdelta_result_name};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generated_header() -> String {
    let config = cbindgen::Config::from_file(root().join("cbindgen.toml")).unwrap();
    // As build.rs does: the C layer only, plus the value type it exposes.
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root().join("src/ffi/mod.rs"))
        .with_src(root().join("src/tracker/extent.rs"))
        .generate()
        .unwrap();
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn committed_header_is_what_cbindgen_generates() {
    let committed = std::fs::read_to_string(root().join("include/blockdelta.h")).unwrap();
    let fresh = generated_header();
    if committed != fresh {
        let line = committed
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b);
        panic!(
            "include/blockdelta.h is stale (first difference at line {:?}): run `cargo build` \
             outside CI and commit the regenerated header",
            line.map(|l| l + 1)
        );
    }
}

#[test]
fn version_matches_cargo_toml() {
    use blockdelta::ffi::version::*;
    // SAFETY: blockdelta_version returns a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(blockdelta_version()) }
        .to_str()
        .unwrap();
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
    assert_eq!(v, blockdelta::VERSION);
    let parse = |s: &str| s.parse::<u32>().unwrap();
    assert_eq!(
        BLOCKDELTA_VERSION_MAJOR,
        parse(env!("CARGO_PKG_VERSION_MAJOR"))
    );
    assert_eq!(
        BLOCKDELTA_VERSION_MINOR,
        parse(env!("CARGO_PKG_VERSION_MINOR"))
    );
    assert_eq!(
        BLOCKDELTA_VERSION_PATCH,
        parse(env!("CARGO_PKG_VERSION_PATCH"))
    );
}

#[test]
fn every_result_code_has_a_distinct_name_and_number_in_the_header() {
    let header = std::fs::read_to_string(root().join("include/blockdelta.h")).unwrap();
    let mut seen = std::collections::HashSet::new();
    for &code in blockdelta_result::ALL {
        let n = code as u32;
        assert!(seen.insert(n), "code number {n} used twice");
        assert_eq!(blockdelta_result::from_u32(n), Some(code));
        // SAFETY: the function returns a static NUL-terminated string.
        let name = unsafe { CStr::from_ptr(blockdelta_result_name(n)) }
            .to_str()
            .unwrap();
        assert_eq!(name, code.name().to_str().unwrap());
        assert!(name.starts_with("BLOCKDELTA_RESULT_"), "{name}");
        assert!(
            header.contains(&format!("{name} = {n},")),
            "{name} = {n} missing from the header"
        );
    }
    // SAFETY: as above.
    let unknown = unsafe { CStr::from_ptr(blockdelta_result_name(4_000_000)) };
    assert_eq!(unknown.to_str().unwrap(), "BLOCKDELTA_RESULT_UNKNOWN");
    // Every enumerator in the header is listed in ALL (no code forgotten in `name`/`ALL`).
    let in_header = header.matches("  BLOCKDELTA_RESULT_").count();
    assert_eq!(in_header, blockdelta_result::ALL.len());
}

/// The C libraries as `cargo cinstall` builds them: the lib target with the `capi` feature as a
/// staticlib and a cdylib, the shared one with cargo-c's SONAME. (`cargo test` itself builds only
/// the rlib: Cargo.toml declares no C crate types, so that Rust dependents never build them.)
/// Built once per test binary, into its own target directory so that this nested cargo does not
/// wait on the lock of the `cargo test` that runs us. A build failure fails the test.
struct CLibs {
    staticlib: PathBuf,
    shared: PathBuf,
    dir: PathBuf,
}

fn c_libs() -> &'static CLibs {
    static LIBS: std::sync::OnceLock<CLibs> = std::sync::OnceLock::new();
    LIBS.get_or_init(|| {
        let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c-abi-lib");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["rustc", "--lib", "--features", "capi", "--quiet"])
            .args(["--crate-type", "staticlib,cdylib", "--manifest-path"])
            .arg(root().join("Cargo.toml"))
            .arg("--")
            .arg(format!("-Clink-arg=-Wl,-soname,{}", soname()))
            .env("CARGO_TARGET_DIR", &target)
            // Other tests read the committed header while this build runs.
            .env("BLOCKDELTA_NO_HEADER", "1");
        run(&mut cmd, "building the static and shared libraries");
        let dir = target.join("debug");
        let libs = CLibs {
            staticlib: dir.join("libblockdelta.a"),
            shared: dir.join("libblockdelta.so"),
            dir,
        };
        assert!(
            libs.staticlib.exists(),
            "{} missing",
            libs.staticlib.display()
        );
        assert!(libs.shared.exists(), "{} missing", libs.shared.display());
        // The name the programs load at run time, as `cargo cinstall` lays it out.
        let link = libs.dir.join(soname());
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("libblockdelta.so", &link).unwrap();
        libs
    })
}

/// cargo-c's SONAME: `libblockdelta.so.0.<minor>` while 0.x, `libblockdelta.so.<major>` after.
fn soname() -> String {
    let (major, minor) = (
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
    );
    if major == "0" {
        format!("libblockdelta.so.0.{minor}")
    } else {
        format!("libblockdelta.so.{major}")
    }
}

/// The functions the header declares: `name(` at the start of a declaration, comments removed.
fn header_functions() -> std::collections::BTreeSet<String> {
    let header = std::fs::read_to_string(root().join("include/blockdelta.h")).unwrap();
    let mut code = String::new();
    let mut in_comment = false;
    for line in header.lines() {
        let mut l = line;
        if in_comment {
            match l.find("*/") {
                Some(e) => {
                    l = &l[e + 2..];
                    in_comment = false;
                }
                None => continue,
            }
        }
        if let Some(b) = l.find("/*") {
            in_comment = !l[b..].contains("*/");
            l = &l[..b];
        }
        if let Some(b) = l.find("//") {
            l = &l[..b];
        }
        code.push_str(l);
        code.push('\n');
    }
    let mut names = std::collections::BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(p) = rest.find("blockdelta_") {
        let tail = &rest[p..];
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..len];
        // A declaration, not a function pointer typedef `(*blockdelta_x_fn)(`.
        let pointer = rest[..p].ends_with("(*");
        if tail[len..].starts_with('(') && !pointer {
            names.insert(name.to_string());
        }
        rest = &tail[len..];
    }
    names
}

#[test]
fn shared_library_exports_exactly_the_header_functions() {
    let libs = c_libs();
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&libs.shared)
        .output()
        .expect("nm (binutils) is needed");
    assert!(out.status.success());
    let exported: std::collections::BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .map(str::to_string)
        .collect();
    let declared = header_functions();
    assert!(declared.len() > 50, "header parser found {declared:?}");
    let undeclared: Vec<_> = exported.difference(&declared).collect();
    let missing: Vec<_> = declared.difference(&exported).collect();
    assert!(
        undeclared.is_empty() && missing.is_empty(),
        "exported but not in the header: {undeclared:?}\nin the header but not exported: {missing:?}"
    );

    let out = Command::new("readelf")
        .arg("-d")
        .arg(&libs.shared)
        .output()
        .expect("readelf (binutils) is needed");
    let dynamic = String::from_utf8(out.stdout).unwrap();
    assert!(
        dynamic.contains(&format!("Library soname: [{}]", soname())),
        "SONAME is not {}:\n{dynamic}",
        soname()
    );
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn c_programs_pass_against_static_and_shared_library() {
    let libs = c_libs();
    let (staticlib, dir) = (&libs.staticlib, &libs.dir);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let sanitize = std::env::var_os("BLOCKDELTA_C_SANITIZE").is_some();
    let valgrind = std::env::var_os("BLOCKDELTA_C_VALGRIND").is_some();
    let out_dir = tempfile::tempdir().unwrap();

    // The C test programs, and the C examples the README points to.
    let mut programs: Vec<PathBuf> = ["tests/c", "examples"]
        .iter()
        .flat_map(|d| std::fs::read_dir(root().join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    programs.sort();
    assert!(!programs.is_empty());

    for src in &programs {
        let stem = src.file_stem().unwrap().to_str().unwrap();
        for link in ["static", "shared"] {
            let exe = out_dir.path().join(format!("{stem}-{link}"));
            let mut cmd = Command::new(&cc);
            cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
                .arg("-I")
                .arg(root().join("include"))
                .arg(src)
                .arg("-o")
                .arg(&exe);
            if sanitize {
                cmd.args([
                    "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all",
                    "-fno-omit-frame-pointer",
                ]);
            }
            if link == "static" {
                cmd.arg(staticlib);
            } else {
                cmd.arg(format!("-L{}", dir.display()))
                    .arg("-lblockdelta")
                    .arg(format!("-Wl,-rpath,{}", dir.display()));
            }
            cmd.args(["-lpthread", "-ldl", "-lm"]);
            run(&mut cmd, &format!("compiling {stem}.c ({link})"));

            let mut runner = if valgrind {
                let mut v = Command::new("valgrind");
                v.args([
                    "--error-exitcode=99",
                    "--leak-check=full",
                    "--errors-for-leak-kinds=definite",
                    "-q",
                ])
                .arg(&exe);
                v
            } else {
                Command::new(&exe)
            };
            runner.env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0");
            run(&mut runner, &format!("running {stem}.c ({link})"));
        }
    }
}
