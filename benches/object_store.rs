//! The replica store on object storage against the same server used raw, side by side
//! (`cargo bench --features object-store --bench object_store`, with the servers of
//! `.ci/object-servers start` and its env file sourced). Not criterion: each target is a ratio
//! of two sides measured alternately, round after round, in one run, so that the server's and
//! the machine's load hit both alike. Each figure is the median of the rounds with the lowest
//! and highest round.
//!
//! 1. `ingest`: a full stream of 64 MiB of real data (raw codec, so that the pack holds as many
//!    bytes as the stream carries) into a new store (`push` + `finish`: the pack uploaded in
//!    8 MiB parts, 4 at once, then the layer and the commit), against `object_store`'s own
//!    `WriteMultipart` upload of 64 MiB in 8 MiB parts, 4 at once.
//! 2. `read`: `read_at` of the whole 64 MiB point (into a buffer reused from round to round)
//!    against ranged GETs of the same object in 8 MiB pieces, 4 at once.
//! 3. `point cost`: an incremental point rewriting 1 % of the 4 KiB blocks at random: the
//!    bytes the store grew by against the bytes changed.
//!
//! Arguments: `s3`, `az` to run one server only (both by default); `--rounds N` (default 5).

use std::sync::Arc;
use std::time::Instant;

#[path = "common/real_data.rs"]
mod real_data;
use real_data::{ratio, show, Rng};

use blockdelta::replica::{PointId, Store, StoreConfig};
use blockdelta::stream::encode_to_vec;
use blockdelta::{Codec, EncoderConfig, Extent, GenerationId};
use object_store::path::Path as OsPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

const MIB: u64 = 1 << 20;
const DISK: u64 = 64 * MIB;
const PART: u64 = 8 * MIB;
const PARALLEL: usize = 4;
const DISK_ID: [u8; 16] = *b"object-bench-001";

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| {
        panic!("{k} is not set: run `.ci/object-servers start` and source its env file")
    })
}

struct Backend {
    name: &'static str,
    url: String,
    raw: Arc<dyn ObjectStore>,
    options: Vec<(String, String)>,
}

fn backends(only: &[String]) -> Vec<Backend> {
    let mut out = Vec::new();
    let tag = format!("bench-{}", std::process::id());
    let common = vec![
        ("part_size".to_string(), PART.to_string()),
        ("parallel".to_string(), PARALLEL.to_string()),
    ];
    if only.is_empty() || only.iter().any(|o| o == "s3") {
        let bucket = env("BLOCKDELTA_TEST_S3_BUCKET");
        let endpoint = env("BLOCKDELTA_TEST_S3_ENDPOINT");
        let raw = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_endpoint(&endpoint)
            .with_allow_http(true)
            .build()
            .unwrap();
        let mut options = common.clone();
        options.push(("endpoint".into(), endpoint));
        options.push(("allow_http".into(), "true".into()));
        out.push(Backend {
            name: "s3 (moto)",
            url: format!("s3://{bucket}/{tag}"),
            raw: Arc::new(raw),
            options,
        });
    }
    if only.is_empty() || only.iter().any(|o| o == "az") {
        let container = env("BLOCKDELTA_TEST_AZURE_CONTAINER");
        let raw = object_store::azure::MicrosoftAzureBuilder::from_env()
            .with_container_name(&container)
            .build()
            .unwrap();
        out.push(Backend {
            name: "azure (Azurite)",
            url: format!("az://{container}/{tag}"),
            raw: Arc::new(raw),
            options: common,
        });
    }
    out
}

fn full_stream(disk: &[u8]) -> Vec<u8> {
    let mut cfg = EncoderConfig::new(DISK_ID, GenerationId([7; 16]), 0, 1, DISK);
    cfg.compression = Codec::Raw;
    cfg.zero_detection = false;
    encode_to_vec(cfg, &[Extent::new(0, DISK)], &mut disk.to_vec()).unwrap()
}

fn ingest(store: &Store, stream: &[u8]) -> (PointId, u64) {
    let mut ing = store.ingest(None).unwrap();
    for c in stream.chunks(4 << 20) {
        ing.push(c).unwrap();
    }
    let done = ing.finish().unwrap();
    (done.point.id, done.requests)
}

fn main() {
    let mut only = Vec::new();
    let mut rounds = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().unwrap().parse().unwrap(),
            "--bench" => {}
            other => only.push(other.to_string()),
        }
    }
    // rustls needs a crypto provider before the raw clients are built (the store's own
    // installs the same one).
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (image, _) = real_data::image_and_pool(&real_data::cache_dir("replica-bench"));
    let mut disk = vec![0u8; DISK as usize];
    {
        use std::os::unix::fs::FileExt;
        std::fs::File::open(&image)
            .unwrap()
            .read_exact_at(&mut disk, 0)
            .unwrap();
    }
    let stream = full_stream(&disk);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("{}", real_data::machine());
    println!(
        "object storage: {} MiB of real data, parts of {} MiB, {PARALLEL} requests at once, {rounds} rounds",
        DISK / MIB,
        PART / MIB
    );
    for b in backends(&only) {
        let opts: Vec<(&str, &str)> = b
            .options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (mut ours, mut raw, mut r_ours, mut r_raw) = (vec![], vec![], vec![], vec![]);
        let (mut ingest_ratio, mut read_ratio) = (vec![], vec![]);
        let mut requests = 0;
        let mut last: Option<(Store, PointId)> = None;
        let mut buf = vec![0u8; DISK as usize];
        for round in 0..rounds {
            // Ingest, then the raw upload of as many bytes.
            let url = format!("{}/r{round}", b.url);
            let store = Store::create_url(&url, &opts, StoreConfig::new(DISK_ID)).unwrap();
            let t = Instant::now();
            let (id, req) = ingest(&store, &stream);
            let a = t.elapsed().as_secs_f64();
            requests = req;
            let prefix = b
                .url
                .split_once("://")
                .unwrap()
                .1
                .split_once('/')
                .unwrap()
                .1;
            let path = OsPath::from(format!("{prefix}/raw-r{round}"));
            let t = Instant::now();
            rt.block_on(async {
                let up = b.raw.put_multipart(&path).await.unwrap();
                let mut w = WriteMultipart::new_with_chunk_size(up, PART as usize);
                for c in disk.chunks(PART as usize) {
                    w.wait_for_capacity(PARALLEL).await.unwrap();
                    w.write(c);
                }
                w.finish().await.unwrap();
            });
            let r = t.elapsed().as_secs_f64();
            ours.push(a);
            raw.push(r);
            ingest_ratio.push(r / a);
            // Read the point whole (into the buffer every round reuses, as a sequential
            // reader does: a fresh 64 MiB buffer's page faults alone cost about 35 ms here),
            // then the raw object in ranged pieces.
            buf.fill(1);
            let t = Instant::now();
            store.read_at(id, 0, &mut buf).unwrap();
            let a = t.elapsed().as_secs_f64();
            assert!(buf == disk);
            let t = Instant::now();
            let got = rt.block_on(async {
                let mut set = tokio::task::JoinSet::new();
                let mut out = vec![bytes::Bytes::new(); (DISK / PART) as usize];
                let mut next = 0u64;
                while next < DISK / PART || !set.is_empty() {
                    while next < DISK / PART && set.len() < PARALLEL {
                        let (s, p, i) = (b.raw.clone(), path.clone(), next);
                        set.spawn(async move {
                            (i, s.get_range(&p, i * PART..(i + 1) * PART).await.unwrap())
                        });
                        next += 1;
                    }
                    if let Some(j) = set.join_next().await {
                        let (i, bytes) = j.unwrap();
                        out[i as usize] = bytes;
                    }
                }
                out
            });
            let r = t.elapsed().as_secs_f64();
            assert!(got.iter().map(|b| b.len() as u64).sum::<u64>() == DISK);
            r_ours.push(a);
            r_raw.push(r);
            read_ratio.push(r / a);
            last = Some((store, id));
        }
        println!("{}:", b.name);
        println!(
            "  ingest 64 MiB       {} s against raw multipart {} s: {} of raw speed ({} requests)",
            show(&ours, "", 1.0),
            show(&raw, "", 1.0),
            ratio(&ingest_ratio),
            requests
        );
        println!(
            "  read 64 MiB         {} s against raw ranged GETs {} s: {} of raw speed",
            show(&r_ours, "", 1.0),
            show(&r_raw, "", 1.0),
            ratio(&read_ratio)
        );
        // Point cost: 1 % of the 4 KiB blocks rewritten at random.
        let (store, id) = last.unwrap();
        let before = store.stats().bytes;
        let mut next = disk.clone();
        let mut rng = Rng(9);
        let blocks = DISK / 4096;
        let mut changed = std::collections::BTreeSet::new();
        while (changed.len() as u64) < blocks / 100 {
            let blk = rng.below(blocks);
            if changed.insert(blk) {
                let o = (blk * 4096) as usize;
                for x in &mut next[o..o + 4096] {
                    *x = rng.next() as u8;
                }
            }
        }
        let extents: Vec<Extent> = changed
            .iter()
            .map(|&b| Extent::new(b * 4096, 4096))
            .collect();
        let mut cfg = EncoderConfig::new(DISK_ID, id.generation, 1, 2, DISK);
        cfg.compression = Codec::Raw;
        let delta = encode_to_vec(cfg, &extents, &mut next.clone()).unwrap();
        let (p2, req) = ingest(&store, &delta);
        let grew = store.stats().bytes - before;
        let bytes_changed = changed.len() as u64 * 4096;
        println!(
            "  point of 1 % change  stored {} bytes for {} bytes changed: {:.3}x ({} requests)",
            grew,
            bytes_changed,
            grew as f64 / bytes_changed as f64,
            req
        );
        let mut buf = vec![0u8; DISK as usize];
        store.read_at(p2, 0, &mut buf).unwrap();
        assert!(buf == next);
    }
}
