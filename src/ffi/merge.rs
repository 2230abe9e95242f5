//! C ABI of the offline stream merge: `blockdelta_stream_merge_files`, N consecutive stream
//! files of one disk merged into one (newest change of every byte wins; see the Rust `merge`).
//!
//! Files rather than callbacks: the merge reads every input twice (seeking back), so a C
//! caller hands paths and the library does the I/O; `MergeError` maps to C codes here.

// C-style signatures with many plain arguments are the ABI.
#![allow(clippy::too_many_arguments)]

use std::ffi::c_char;
use std::fs::{File, OpenOptions};
use std::io::BufWriter;

use super::callbacks::secret_arg;
use super::encoder::{BLOCKDELTA_ENCODE_LZ4, BLOCKDELTA_ENCODE_ZERO_DETECTION};
use super::error::{fail_thread, record_thread_error};
use super::handle::arg_slice;
use super::panic::boundary;
use super::replica::path_arg;
use super::result::{blockdelta_result, ToResult};
use crate::stream::{
    merge, Codec, DecoderConfig, EncoderConfig, MergeError, MergeInput, MergeSummary,
};
use crate::tracker::GenerationId;

#[cfg(test)]
#[path = "tests/merge.rs"]
mod tests;

/// The C code of each merge error: an input's or the output's stream error keeps its stream
/// code; I/O is `BLOCKDELTA_RESULT_IO`.
impl ToResult for MergeError {
    fn to_result(&self) -> blockdelta_result {
        match self {
            MergeError::NoInputs => blockdelta_result::InvalidArgument,
            MergeError::Input { source, .. } => source.to_result(),
            MergeError::InputIo { .. } | MergeError::Io(_) => blockdelta_result::Io,
            MergeError::Inconsistent { .. } => blockdelta_result::StreamMergeInconsistent,
            MergeError::Encode(e) => e.to_result(),
            // `MergeError` is non-exhaustive only for other crates.
        }
    }
}

fn io_fail(what: &str, path: &std::path::Path, e: std::io::Error) -> blockdelta_result {
    let code = blockdelta_result::Io;
    record_thread_error(code, &format_args!("{what} {}: {e}", path.display()));
    code
}

/// Merges the `n_inputs` stream files named by `inputs` (an array of NUL-terminated paths, in
/// checkpoint order) into a new stream file at `output` (a NUL-terminated path that must not
/// exist). The inputs must be complete, consecutive streams of one disk, generation and block
/// size, as a replica would accept them one after the other
/// (`BLOCKDELTA_RESULT_STREAM_MERGE_INCONSISTENT` otherwise; any damage fails the merge with
/// the input's stream code, and the last error names the input). Applying or ingesting the
/// output leaves a replica exactly as the inputs in order would.
///
/// `(in_secret, in_secret_len)` verifies every input (`(NULL, 0)`: unencrypted inputs).
/// `(out_secret, out_secret_len)`, `flags` (`BLOCKDELTA_ENCODE_*`) and `record_size` (0 = 1 MiB)
/// are the output's settings, as for `blockdelta_encoder_new`. The secrets are copied.
///
/// On success the output is complete and synced, and `*from_seq_out`, `*to_seq_out` and
/// `*bytes_out` (each NULL to skip) receive its checkpoints and size. On failure the output file
/// is removed. Blocks on file I/O (reads each input twice); memory is bounded (about 4 MiB per
/// input); any thread.
#[no_mangle]
pub extern "C" fn blockdelta_stream_merge_files(
    inputs: *const *const c_char,
    n_inputs: usize,
    in_secret: *const u8,
    in_secret_len: usize,
    output: *const c_char,
    out_secret: *const u8,
    out_secret_len: usize,
    flags: u32,
    record_size: u32,
    from_seq_out: *mut u64,
    to_seq_out: *mut u64,
    bytes_out: *mut u64,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: `(inputs, n_inputs)` readable or `(NULL, 0)`; each entry NULL or
        // NUL-terminated; `output` NULL or NUL-terminated; secrets readable or `(NULL, 0)`.
        let (paths, output, in_secret, out_secret) = unsafe {
            let ptrs = arg_slice(inputs, n_inputs)?;
            let mut paths = Vec::with_capacity(ptrs.len());
            for &p in ptrs {
                paths.push(path_arg(p)?);
            }
            (
                paths,
                path_arg(output)?,
                secret_arg(in_secret, in_secret_len)?,
                secret_arg(out_secret, out_secret_len)?,
            )
        };
        if flags & !(BLOCKDELTA_ENCODE_LZ4 | BLOCKDELTA_ENCODE_ZERO_DETECTION) != 0 {
            let code = blockdelta_result::InvalidArgument;
            record_thread_error(code, &format_args!("unknown encoder flags {flags:#x}"));
            return Err(code);
        }
        let mut ins = Vec::with_capacity(paths.len());
        for p in &paths {
            let f = File::open(p).map_err(|e| io_fail("cannot open input", p, e))?;
            let mut cfg = DecoderConfig::new();
            cfg.secret = in_secret.clone();
            ins.push(MergeInput::new(f, cfg));
        }
        // Identity fields (disk, generation, checkpoints, sizes) come from the inputs.
        let mut settings = EncoderConfig::new([0; 16], GenerationId([0; 16]), 0, 1, 1);
        if record_size != 0 {
            settings.record_size = record_size;
        }
        settings.compression = if flags & BLOCKDELTA_ENCODE_LZ4 != 0 {
            Codec::Lz4
        } else {
            Codec::Raw
        };
        settings.zero_detection = flags & BLOCKDELTA_ENCODE_ZERO_DETECTION != 0;
        settings.secret = out_secret;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(output)
            .map_err(|e| io_fail("cannot create output", output, e))?;
        let r = write_merged(&mut ins, settings, file, output);
        let summary = match r {
            Ok(s) => s,
            Err(code) => {
                // No partial stream is left behind (it would have no END anyway).
                let _ = std::fs::remove_file(output);
                return Err(code);
            }
        };
        // SAFETY: each output is NULL or writable per the contract.
        unsafe {
            if !from_seq_out.is_null() {
                from_seq_out.write(summary.from_seq);
            }
            if !to_seq_out.is_null() {
                to_seq_out.write(summary.to_seq);
            }
            if !bytes_out.is_null() {
                bytes_out.write(summary.bytes_written);
            }
        }
        Ok(())
    })
}

fn write_merged(
    ins: &mut [MergeInput<File>],
    settings: EncoderConfig,
    file: File,
    path: &std::path::Path,
) -> Result<MergeSummary, blockdelta_result> {
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let summary = merge(ins, settings, &mut w).map_err(fail_thread)?;
    let file = w
        .into_inner()
        .map_err(|e| io_fail("cannot write output", path, e.into_error()))?;
    file.sync_all()
        .map_err(|e| io_fail("cannot sync output", path, e))?;
    Ok(summary)
}
