//! The C ABI. Every function here follows the conventions in README.md ("C API conventions"):
//! `blockdelta_<type>_<verb>` names, opaque handles, `_new`/`_free`, handle first then inputs
//! then `*_out` outputs (written only on success), one panic boundary per entry point, and a
//! `blockdelta_result` code from every fallible call.
//!
//! This layer only calls the public Rust API; it never reaches into module internals.
//! The header `include/blockdelta.h` is generated from these files by `build.rs`.

mod error;
mod handle;
mod panic;
pub mod result;
pub mod stream;
pub mod version;

pub use result::{blockdelta_result, ToResult};
