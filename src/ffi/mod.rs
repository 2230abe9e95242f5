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

// Without the `capi` feature only the result codes are compiled (the modules' errors map to
// them); every C entry point, and so every exported symbol, needs `capi`.
#[cfg(feature = "capi")]
mod error;
#[cfg(feature = "capi")]
mod handle;
#[cfg(feature = "capi")]
pub mod limits;
#[cfg(feature = "capi")]
mod panic;
pub mod result;
#[cfg(feature = "capi")]
pub mod stream;
#[cfg(feature = "capi")]
pub mod support;
#[cfg(feature = "capi")]
pub mod tracker;
#[cfg(feature = "capi")]
pub mod version;

pub use result::{blockdelta_result, ToResult};
