//! Delta stream throughput per core, 64 KiB records: encode and decode for raw, lz4 and
//! lz4 + AES-256-GCM on zeros, random data and a real-data corpus, and in the same run the
//! primitives alone on the same buffers (memcpy, zero detection, crc32fast, lz4_flex, ring
//! AES-256-GCM, C lz4 level 1). The workloads are in `common/stream_work.rs`, shared with
//! `benches/stream_overhead.rs`, which measures each pipeline against its primitives in pairs.
//!
//! The real-data corpus is built at bench time from files under /usr/lib and /usr/share (sorted
//! walk, first 64 MiB); it is never committed. The README's throughput table is the `median` of
//! `target/criterion/<dataset>/<bench>/new/estimates.json`.
//!
//! Every benchmark reports throughput in bytes of the *raw* dataset, so times compare directly.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};

#[path = "common/stream_work.rs"]
mod stream_work;
use stream_work::{dataset, Bench, Data, Work};

fn bench_dataset(c: &mut Criterion, d: &Data) {
    let mut g = c.benchmark_group(d.name);
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Bytes(d.raw.len() as u64));
    let mut bench = Bench::new(d);
    for &w in Work::ALL {
        if w.needs_fresh_input() {
            // The copy of the input made per iteration is setup, outside the measurement.
            let input = bench.fresh_input(w);
            g.bench_function(w.name(), |b| {
                b.iter_batched_ref(
                    || input.clone(),
                    |fresh| black_box(bench.run(w, fresh)),
                    BatchSize::LargeInput,
                )
            });
        } else {
            g.bench_function(w.name(), |b| b.iter(|| black_box(bench.run(w, &mut []))));
        }
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    for name in ["zeros", "random", "real"] {
        let d = dataset(name);
        eprintln!("{}", d.describe());
        bench_dataset(c, &d);
    }
}

criterion_group!(stream, benches);
criterion_main!(stream);
