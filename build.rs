//! With the `capi` feature (cargo-c turns it on; `cargo test` does through the self
//! dev-dependency), regenerates `include/blockdelta.h` from the `extern "C"` items in `src/ffi/`.
//! Without it (a Rust crate depending on blockdelta) it does nothing: no cbindgen is built or run.
//!
//! The header is committed. `tests/c_abi.rs` regenerates it in memory and fails when the
//! committed copy is stale, so a change to the C ABI always shows up in review.
//! The header is not rewritten when `CI` is set (so CI checks the committed copy) or when
//! `BLOCKDELTA_NO_HEADER` is set (for read-only source trees).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "capi")]
    header::generate();
}

#[cfg(feature = "capi")]
mod header {
    use std::env;
    use std::path::PathBuf;

    pub fn generate() {
        println!("cargo:rerun-if-changed=src/ffi");
        println!("cargo:rerun-if-changed=src/tracker/extent.rs");
        println!("cargo:rerun-if-changed=cbindgen.toml");
        println!("cargo:rerun-if-env-changed=BLOCKDELTA_NO_HEADER");
        println!("cargo:rerun-if-env-changed=CI");
        if env::var_os("BLOCKDELTA_NO_HEADER").is_some() || env::var_os("CI").is_some() {
            return;
        }
        let crate_dir =
            PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
        let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
            .expect("cbindgen.toml is valid");
        // Only the C layer is read (plus the one value type it exposes, `blockdelta_extent`),
        // not the whole crate: a constant or type of the Rust API never leaks into the header
        // under an unprefixed name. tests/c_abi.rs builds the header the same way.
        match cbindgen::Builder::new()
            .with_config(config)
            .with_src(crate_dir.join("src/ffi/mod.rs"))
            .with_src(crate_dir.join("src/tracker/extent.rs"))
            .generate()
        {
            Ok(bindings) => {
                bindings.write_to_file(crate_dir.join("include/blockdelta.h"));
            }
            // A syntax error in the crate is reported by rustc with better context.
            Err(e) => println!("cargo:warning=cbindgen could not generate the header: {e}"),
        }
    }
}
