//! Review of the writer's lease gate (`Shared::writable`, src/replica/object.rs) on real
//! servers through the fault proxy; both tests failed before the fixes (a write checked just
//! before the lease's safe end was retried past a takeover: writes are now cut off, retries
//! included, at that end; `lease_seconds` of u64::MAX overflowed an `Instant`: now clamped to
//! 3..86400). Servers as for `tests/replica_object_faults_http.rs`:
//!
//! ```text
//! .ci/object-servers start && . "$(.ci/object-servers dir)/env"
//! cargo test --release --features object-store --test review_lease
//! ```
#![cfg(feature = "object-store")]

#[path = "common/fault_proxy.rs"]
mod fault_proxy;
#[path = "common/source.rs"]
mod source;

use std::time::{Duration, Instant};

use blockdelta::replica::{ReplicaError, Store, StoreConfig};
use fault_proxy::{Fault, FaultProxy, Request, Rule, When};
use source::{Rng, Source};

const DISK_ID: [u8; 16] = *b"review-lease-dsk";

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} is not set: source the servers' env"))
}

/// (url, options through `endpoint`) for a fresh prefix named after `test`.
fn target(s3: bool, test: &str) -> (String, Vec<(String, String)>) {
    let unique = format!(
        "{test}-{}-{}",
        std::process::id(),
        blockdelta::GenerationId::random().0[0]
    );
    if s3 {
        (
            format!("s3://{}/{unique}", env("BLOCKDELTA_TEST_S3_BUCKET")),
            vec![
                ("allow_http".into(), "true".into()),
                ("access_key_id".into(), "AKIAREVIEWLEASE00001".into()),
                ("secret_access_key".into(), "ReviewLeaseSecret".into()),
            ],
        )
    } else {
        let account = env("AZURE_STORAGE_ACCOUNT_NAME");
        (
            format!("az://{}/{unique}", env("BLOCKDELTA_TEST_AZURE_CONTAINER")),
            vec![
                ("use_emulator".into(), "false".into()),
                ("account_name".into(), account),
                ("access_key".into(), env("AZURE_STORAGE_ACCOUNT_KEY")),
                ("allow_http".into(), "true".into()),
            ],
        )
    }
}

fn upstream(s3: bool) -> String {
    if s3 {
        env("BLOCKDELTA_TEST_S3_ENDPOINT")
    } else {
        env("AZURITE_BLOB_STORAGE_URL")
    }
}

fn endpoint(s3: bool, proxy: &FaultProxy) -> String {
    if s3 {
        proxy.url()
    } else {
        format!("{}/{}", proxy.url(), env("AZURE_STORAGE_ACCOUNT_NAME"))
    }
}

fn with(base: &[(String, String)], extra: &[(&str, String)]) -> Vec<(String, String)> {
    let mut v = base.to_vec();
    for (k, x) in extra {
        v.push((k.to_string(), x.clone()));
    }
    v
}

fn refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, x)| (k.as_str(), x.as_str())).collect()
}

fn is_lease(r: &Request) -> bool {
    r.target.contains("/LOCK")
}

fn is_write(r: &Request) -> bool {
    !matches!(r.method.as_str(), "GET" | "HEAD")
}

fn ingest(store: &Store, src: &Source, to: u64) -> Result<(), ReplicaError> {
    let mut ing = store.ingest(None)?;
    for c in src.stream(to, 1 << 16).chunks(70_000) {
        ing.push(c)?;
    }
    ing.finish().map(|_| ())
}

/// A write that passes the gate a moment before the lease's end is retried by `object_store`
/// (503s, up to `retry_timeout`) and lands long after the lease ended and another writer
/// took the store over, unless the write (retries included) is cut off when the lease stops
/// being safe. Failed before the fix (the gate was checked once, when the request was first
/// sent): the first writer's pack PUT, first sent while its lease was valid, reached the
/// server after the second writer opened the store.
#[test]
fn a_write_sent_before_the_lease_lapsed_does_not_land_after_a_takeover() {
    for s3 in [true, false] {
        let what = if s3 { "s3" } else { "azure" };
        let p1 = FaultProxy::start(&upstream(s3), 1);
        let p2 = FaultProxy::start(&upstream(s3), 2);
        let (url, base) = target(s3, "late-write");
        let o1 = with(
            &base,
            &[
                ("endpoint", endpoint(s3, &p1)),
                ("lease_seconds", "3".into()),
                ("retry_max", "30".into()),
                ("retry_timeout_seconds", "60".into()),
                ("part_size", (5u64 << 20).to_string()),
            ],
        );
        let o2 = with(
            &base,
            &[
                ("endpoint", endpoint(s3, &p2)),
                ("lease_seconds", "3".into()),
            ],
        );
        let first = Store::create_url(&url, &refs(&o1), StoreConfig::new(DISK_ID)).unwrap();
        let mut rng = Rng(9);
        let mut src = Source::new(DISK_ID, 1 << 20, 4096);
        src.write(&mut rng, 0, 1 << 20);
        ingest(&first, &src, 1).unwrap();
        src.commit(1);
        src.write(&mut rng, 4096, 64 << 10);

        // Every write of the first writer (its renewals too) is throttled from now on.
        p1.set_rules(vec![Rule::new(Fault::SlowDown, When::Always, is_write)]);
        let t0 = Instant::now();
        std::thread::scope(|sc| {
            let h = sc.spawn(|| ingest(&first, &src, 2));
            // The lease ends at most 3 s after its last renewal, sent before t0; a second
            // writer takes the store over.
            std::thread::sleep(Duration::from_millis(3300));
            let second = loop {
                match Store::open_url(&url, &refs(&o2)) {
                    Ok(s) => break s,
                    Err(ReplicaError::Locked { .. }) if t0.elapsed().as_secs() < 30 => {
                        std::thread::sleep(Duration::from_millis(200))
                    }
                    Err(e) => panic!("{what}: second open: {e}"),
                }
            };
            eprintln!("{what}: second writer in after {:?}", t0.elapsed());
            // The throttling ends; every write of the first writer that still reaches the
            // server is recorded (forwarded after 1 ms).
            p1.set_rules(vec![Rule::new(Fault::DelayMs(1), When::Always, |r| {
                is_write(r) && !is_lease(r)
            })]);
            let r = h.join().unwrap();
            eprintln!(
                "{what}: first writer's ingest: {r:?} after {:?}",
                t0.elapsed()
            );
            let late: Vec<String> = p1
                .injected()
                .log
                .iter()
                .filter(|i| i.fault == Fault::DelayMs(1))
                .map(|i| format!("{} {}", i.method, i.target))
                .collect();
            assert!(
                late.is_empty(),
                "{what}: writes of the first writer reached the server after the second \
                 writer took the store over: {late:?}"
            );
            drop(second);
        });
    }
}

/// `lease_seconds` takes any whole number; a huge one made `Lease::hold` panic (`Instant +
/// Duration` overflow) before it was clamped to 3..86400.
#[test]
fn a_huge_lease_is_refused_or_clamped_not_a_panic() {
    let s3 = true;
    let (url, base) = target(s3, "huge-lease");
    let o = with(
        &base,
        &[
            ("endpoint", upstream(s3)),
            ("lease_seconds", u64::MAX.to_string()),
        ],
    );
    let r = std::panic::catch_unwind(|| {
        Store::create_url(&url, &refs(&o), StoreConfig::new(DISK_ID)).map(|_| ())
    });
    match r {
        Ok(r) => eprintln!("create: {r:?}"),
        Err(p) => panic!(
            "create with lease_seconds={} panicked: {:?}",
            u64::MAX,
            p.downcast_ref::<String>()
                .map(String::as_str)
                .or(p.downcast_ref::<&str>().copied())
        ),
    }
}
