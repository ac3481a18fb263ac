//! `generate`, `ingest`, `rollup` and `export` on a lake in a bucket. A command works on a local
//! lake; given `s3://BUCKET/PREFIX` it works as a node does (`modelshare_ingest::bucket`): it
//! takes the writer lease (refused, naming the holder, while a server writes the lake), brings a
//! local copy to the bucket's state, runs on the copy, puts what changed into the bucket and lets
//! the lease go. The lease is renewed while the command runs; a command that loses it puts
//! nothing and fails.

use crate::config::CommandLakeArgs;
use anyhow::Context;
use modelshare_ingest::bucket::{BucketLake, DEFAULT_LEASE_TTL};
use modelshare_ingest::location::LakeLocation;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Runs `work` on the lake of `args` (its directory, or a local copy of its bucket) and, for a
/// bucket, puts what it changed. Blocks: call it from a blocking thread.
pub fn with_lake<T>(
    args: &CommandLakeArgs,
    work: impl FnOnce(&Path) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let bucket = match LakeLocation::parse(&args.data_dir)? {
        LakeLocation::Local(dir) => return work(&dir),
        LakeLocation::Bucket(bucket) => bucket,
    };
    let node = crate::serve::node_id(args.node_id.as_deref())?;
    let lake = Arc::new(BucketLake::new(bucket, node, DEFAULT_LEASE_TTL)?);
    // Kept until the end, then removed with the copy.
    let (root, _temporary) = crate::dir_or_temporary(args.local_dir.clone(), "modelshare-copy-")?;
    // A directory a server (or another command) works on is refused. The command does not adopt
    // the copy's id: a lease held on this copy by another process is that process's, never
    // this command's to take over; so a command's copy is brought to the bucket's state each
    // run (only what changed is fetched).
    let local = modelshare_ingest::Lake::open(&root)
        .with_context(|| format!("cannot open {}", root.display()))?;
    let lock = local
        .lock()
        .with_context(|| format!("{} is in use by another modelshare process", root.display()))?;
    let last = lake.acquire_lease()?;
    let renewals = Renewals::start(Arc::clone(&lake));
    let result = (|| {
        lake.prepare_local_copy(&root, &last)
            .with_context(|| format!("cannot prepare the local copy of {}", lake.url()))?;
        // The command takes the directory's lock itself.
        drop(lock);
        let out = work(&root)?;
        let synced = lake
            .sync(&root)
            .with_context(|| format!("cannot put the changes into {}", lake.url()))?;
        println!(
            "put {} files ({} bytes) into {} and deleted {}",
            synced.put,
            synced.put_bytes,
            lake.url(),
            synced.deleted
        );
        Ok(out)
    })();
    renewals.stop();
    if let Err(e) = lake.release_lease() {
        tracing::warn!(error = %e, "could not release the writer lease; it expires by itself");
    }
    result
}

/// Renews a lease every quarter of its time on a thread of its own until stopped.
struct Renewals {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Renewals {
    fn start(lake: Arc<BucketLake>) -> Renewals {
        let stop = Arc::new(AtomicBool::new(false));
        let every = lake.lease_ttl() / 4;
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut last = Instant::now();
                while !stop.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(100).min(every));
                    if last.elapsed() < every {
                        continue;
                    }
                    last = Instant::now();
                    if let Err(e) = lake.renew_lease() {
                        tracing::warn!(error = %e, "cannot renew the writer lease");
                    }
                }
            })
        };
        Renewals {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
