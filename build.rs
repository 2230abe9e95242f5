//! Generates `include/blockdelta.h` from the `extern "C"` items in `src/ffi/`.
//!
//! The header is committed. `tests/c_abi.rs` regenerates it in memory and fails when the
//! committed copy is stale, so a change to the C ABI always shows up in review.
//! Set `BLOCKDELTA_NO_HEADER=1` to skip writing it (for read-only source trees).

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=BLOCKDELTA_NO_HEADER");
    if env::var_os("BLOCKDELTA_NO_HEADER").is_some() {
        return;
    }
    let crate_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    match cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
    {
        Ok(bindings) => {
            bindings.write_to_file(crate_dir.join("include/blockdelta.h"));
        }
        // A syntax error in the crate is reported by rustc with better context; do not fail here.
        Err(e) => println!("cargo:warning=cbindgen could not generate the header: {e}"),
    }
}
