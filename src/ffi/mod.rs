//! The C ABI. Every function here follows the conventions in README.md ("C API conventions"):
//! `blockdelta_<type>_<verb>` names, opaque handles, `_new`/`_free`, handle first then inputs
//! then `*_out` outputs (written only on success), one panic boundary per entry point, and a
//! `blockdelta_result` code from every fallible call.
//!
//! This layer only calls the public Rust API; it never reaches into module internals.
//! The header `include/blockdelta.h` is generated from these files (and only these: see
//! build.rs) by `build.rs` when the `capi` feature is on.
// C names are snake_case types by convention.
#![allow(non_camel_case_types)]
// These functions are the C ABI (as in rustls-ffi): each documents its pointer contract for C
// callers, and validates what it can (NULL). Rust code should call the safe Rust API instead.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

// The whole module is compiled only with the `capi` feature (see lib.rs): the Rust modules never
// import it, so a Rust dependent compiles none of it.
pub mod applier;
mod callbacks;
pub mod decoder;
pub mod encoder;
mod error;
pub mod failback;
mod handle;
pub mod limits;
pub mod merge;
mod panic;
pub mod replica;
pub mod result;
pub mod resync;
mod stream_error;
pub mod support;
#[cfg(test)]
#[path = "tests/common.rs"]
mod test_support;
pub mod tracker;
pub mod version;

pub use result::{blockdelta_result, ToResult};
