//! A lake kept in a bucket of any S3 API (`--data-dir s3://BUCKET/PREFIX`).
//!
//! The node works on a local copy of the lake (`--local-dir`): its write-ahead log and the files
//! of its flushes, compactions and rollups, exactly as a local lake. The bucket is the lake of
//! record, plain hive-partitioned Parquet that any engine reads:
//! - a flush puts its files to the bucket *before* it publishes them locally, and the WAL
//!   segments they came from are deleted only after both: an acknowledged event stays in the
//!   local WAL until the bucket holds it. While the bucket refuses writes, rows wait in memory
//!   and the WAL; once the buffer is full, ingest answers 503 with Retry-After;
//! - [`BucketLake::sync`] (every `--bucket-sync-secs`, and at a clean stop) makes the bucket
//!   equal to the local copy: files it lacks or holds older are put, then files the node removed
//!   (compacted, merged, expired, withdrawn) are deleted, so a reader of the bucket sees a day
//!   twice for at most one pass, never not at all. A directory with a swap in flight (its
//!   journal present) waits for the next pass;
//! - a pass that deletes objects first records what it will put and delete (the object
//!   `sync.journal`), and removes the record once done. A node that takes over after a writer
//!   died in the middle of a pass finishes it (every object it was putting is there: the
//!   deletions are made) or undoes it (some are not: the ones there are deleted), so a day
//!   compacted in that pass is never copied down twice, old files and new;
//! - a node that starts with an empty local directory first copies the lake down, and a node
//!   that takes the lease over from another one first brings its copy to the bucket's state
//!   ([`BucketLake::prepare_local_copy`]): a lost disk costs only the events acknowledged and
//!   not yet flushed (the WAL is local, and replayed when that node runs again);
//! - one node at a time holds a lease, the object `writer.lease` taken with a conditional put
//!   (`If-None-Match: *`) and renewed with `If-Match` on its ETag; a node that cannot renew
//!   stops writing to the bucket before the lease can expire (a fence), and another node may
//!   take an expired lease. Without shared writes the holder is the lake's one writer;
//! - with shared writes ([`BucketLake::share_writes`], `serve --join`) every node flushes its
//!   own files whatever the lease, and copies the others' down ([`BucketLake::refresh`]); the
//!   holder alone does what must happen once (compaction, the cube's upkeep, deletions). A
//!   sync deletes only objects this node knew (put, copied down, or found when it took the
//!   lease; kept in the hidden file `.bucket-known.json` across restarts), so another node's new
//!   file is never deleted before the holder has copied it down.

use crate::IngestError;
use crate::lake::{StagedFile, sync_dir, write_atomically};
use crate::location::Bucket;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use modelshare_event::cube::Coverage;
use modelshare_event::live::LiveBuffer;
use object_store::buffered::BufWriter;
use object_store::{ObjectMeta, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The lease object, at the lake's root in the bucket.
pub const LEASE_OBJECT: &str = "writer.lease";

/// The record of a sync pass that deletes objects, at the lake's root in the bucket.
pub const SYNC_JOURNAL: &str = "sync.journal";

/// What a sync pass is about to do: the objects it puts that the bucket did not hold, and the
/// objects it deletes after them. The record stays once the pass is over, marked `done`: its
/// number tells a node that lists the bucket whether a pass began or ended while it listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct SyncJournal {
    /// One more than the pass before (0 for a record of an older layout).
    #[serde(default)]
    seq: u64,
    put: Vec<String>,
    delete: Vec<String>,
    /// The pass put and deleted everything it names (or was settled by the next writer).
    #[serde(default)]
    done: bool,
}

impl SyncJournal {
    /// What tells one state of the record from another.
    fn mark(journal: Option<&SyncJournal>) -> Option<(u64, bool)> {
        journal.map(|j| (j.seq, j.done))
    }
}

/// The bucket's state as a node that does not hold the lease reads it: its objects, with a
/// sync pass under way seen either before or after (see [`BucketLake::consistent_listing`]).
type Objects = BTreeMap<String, ObjectMeta>;

/// How often [`BucketLake::consistent_listing`] lists again when a sync pass began or ended
/// while it listed.
const LISTING_TRIES: usize = 5;

/// The objects this node knows the bucket holds, as it last put, copied or listed them, kept in
/// the local copy (hidden, never synced): after a restart, a lake file the node removed is
/// told from another node's new object, which the node must copy down and never delete.
const KNOWN_OBJECTS: &str = ".bucket-known.json";

/// How a pass a writer left unfinished was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// No pass was left unfinished (no record, or one marked done).
    Nothing,
    /// Every object the pass put is there: its deletions were made.
    Finished { deleted: usize },
    /// Some object it put is not: the ones that are were deleted.
    Undone { deleted: usize },
}

/// How long a lease lasts without renewal, by default.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(60);

/// Lock files (of the local directory, of the snapshot store) are the node's own, like the
/// WAL: never part of the lake in the bucket.
const LOCK: &str = crate::lake::LOCK_FILE;

/// A journal of a file swap in flight (see `compact`): its directory waits for the next pass.
const JOURNAL: &str = crate::compact::JOURNAL;

#[derive(Debug, Serialize, Deserialize)]
struct LeaseRecord {
    node: String,
    /// The holder's local copy (see [`CopyMarker::copy`]): the same node name on another copy
    /// is another process, not a restart.
    #[serde(default)]
    copy: String,
    /// Milliseconds since the Unix epoch.
    expires_ms: u64,
}

/// The lease as this node holds it.
#[derive(Debug, Clone)]
struct Held {
    version: UpdateVersion,
    expires: SystemTime,
}

/// What one [`BucketLake::sync`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    pub put: usize,
    pub put_bytes: u64,
    pub deleted: usize,
    /// Directories left for the next pass (a swap in flight).
    pub deferred: usize,
}

/// Counters of the calls to the bucket, read by `/metrics`.
#[derive(Debug, Default)]
pub struct BucketMetrics {
    /// Objects put (flushes and syncs) and their bytes.
    pub puts: AtomicU64,
    pub put_bytes: AtomicU64,
    /// Objects deleted by syncs (files the node compacted, merged or withdrew).
    pub deletes: AtomicU64,
    /// Objects copied down into the local copy at start (an empty directory, or the copy of
    /// a node another node took over from).
    pub restored: AtomicU64,
    /// Calls that failed after the client's retries.
    pub failures: AtomicU64,
}

impl BucketMetrics {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The bucket side of a node's lake; see the module docs.
pub struct BucketLake {
    bucket: Bucket,
    node: String,
    ttl: Duration,
    held: Mutex<Option<Held>>,
    /// The id of the local copy this process works on ([`Self::adopt_copy`]).
    copy: Mutex<String>,
    metrics: BucketMetrics,
    /// Size and modification time of each local file as this process last put or got it: a
    /// file unchanged since is not put again, whatever the clocks of node and store say.
    known: Mutex<HashMap<String, FileStamp>>,
    /// Held by a flush from its puts to its local publication, and by [`Self::sync`] while it
    /// lists both sides: a flush's file is never seen in the bucket and not yet locally (which
    /// would make it look removed).
    gate: Mutex<()>,
    /// Whether the bucket may hold a [`SYNC_JOURNAL`] not marked done (true until this process
    /// knows better): a pass ends by marking it done.
    journal_may_exist: AtomicBool,
    /// Set from the moment a joined node takes the lease until it has settled the last
    /// holder's pass and brought its copy to the bucket's state: no upkeep and no sync before.
    takeover_pending: AtomicBool,
    /// The number of the last record of a sync pass, once this process has read or written it.
    journal_seq: Mutex<Option<u64>>,
    /// Several nodes write the lake at once (`serve --join`): a flush puts its own files
    /// whether or not this node holds the lease (their names carry the node, no other node
    /// writes or deletes them before it has copied them down), and the work that must happen
    /// once (compaction, the cube's merges and summaries, deletions) waits for the lease.
    shared_writes: AtomicBool,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for BucketLake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketLake")
            .field("bucket", &self.bucket.url_of(""))
            .field("node", &self.node)
            .finish()
    }
}

impl Drop for BucketLake {
    fn drop(&mut self) {
        // Dropping a runtime blocks; this may run on an async thread at shutdown.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn now_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl BucketLake {
    /// The bucket side for node `node`, whose lease lasts `ttl` between renewals; from here
    /// on the files this process names carry the node's name. Calls block the calling thread
    /// (never call them from an async task: use `spawn_blocking`).
    pub fn new(bucket: Bucket, node: String, ttl: Duration) -> Result<BucketLake, IngestError> {
        crate::lake::name_files_after_node(&node);
        let copy = new_copy_id(&node);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bucket")
            .enable_all()
            .build()
            .map_err(|e| IngestError::io(Path::new("bucket runtime"), e))?;
        Ok(BucketLake {
            bucket,
            node,
            ttl,
            held: Mutex::new(None),
            copy: Mutex::new(copy),
            metrics: BucketMetrics::default(),
            known: Mutex::new(HashMap::new()),
            gate: Mutex::new(()),
            journal_may_exist: AtomicBool::new(true),
            journal_seq: Mutex::new(None),
            takeover_pending: AtomicBool::new(false),
            shared_writes: AtomicBool::new(false),
            runtime: Some(runtime),
        })
    }

    /// `s3://BUCKET/PREFIX/`.
    pub fn url(&self) -> String {
        self.bucket.url_of("")
    }

    fn copy_id(&self) -> String {
        self.copy.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes the id of the local copy at `root` when it is a copy of this lake (a restart on
    /// the same disk); a directory without one keeps the fresh id this process made. Call
    /// before taking the lease: the lease names the copy, so that the same node name on
    /// another copy is told from a restart.
    pub fn adopt_copy(&self, root: &Path) {
        let marker = fs::read(root.join(COPY_MARKER))
            .ok()
            .and_then(|text| serde_json::from_slice::<CopyMarker>(&text).ok())
            .filter(|m| m.lake == self.url() && !m.copy.is_empty());
        if let Some(m) = marker {
            *self.copy.lock().unwrap_or_else(|p| p.into_inner()) = m.copy;
        }
    }

    /// Lets this node's flushes put their files while another node holds the lease (see
    /// [`Self::shared_writes`]).
    pub fn share_writes(&self) {
        self.shared_writes.store(true, Ordering::Release);
    }

    /// Whether several nodes write the lake at once ([`Self::share_writes`]).
    pub fn writes_are_shared(&self) -> bool {
        self.shared_writes.load(Ordering::Acquire)
    }

    /// How long the lease lasts without renewal.
    pub fn lease_ttl(&self) -> Duration {
        self.ttl
    }

    fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        match &self.runtime {
            Some(rt) => rt.block_on(f),
            None => unreachable!("the runtime lives until drop"),
        }
    }

    fn held(&self) -> MutexGuard<'_, Option<Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True while the lease is held with at least a quarter of its time left: the margin in
    /// which a renewal that fails stops this node's writes before another node may take over.
    pub fn holds_lease(&self) -> bool {
        let margin = self.ttl / 4;
        self.held()
            .as_ref()
            .is_some_and(|h| h.expires > SystemTime::now() + margin)
    }

    /// A flush may put its files: with the lease, or always when writes are shared (its files
    /// are its own; nobody deletes them before copying them down).
    fn ensure_may_flush(&self) -> Result<(), IngestError> {
        if self.writes_are_shared() {
            Ok(())
        } else {
            self.ensure_lease()
        }
    }

    /// Marks the start (`true`) or the end of a takeover of the lease by a joined node.
    pub fn set_takeover_pending(&self, pending: bool) {
        self.takeover_pending.store(pending, Ordering::Release);
    }

    /// True between a joined node's taking of the lease and its copy's catching up.
    pub fn takeover_pending(&self) -> bool {
        self.takeover_pending.load(Ordering::Acquire)
    }

    /// Whether this process syncs the lake as its writer: always when writes are not shared;
    /// when they are, once it has taken the lease and finished taking it over.
    pub fn syncs_as_holder(&self) -> bool {
        !self.writes_are_shared() || (self.lease_taken() && !self.takeover_pending())
    }

    /// Whether this process took the lease and has not lost it (it may be running short).
    pub fn lease_taken(&self) -> bool {
        self.held().is_some()
    }

    fn ensure_lease(&self) -> Result<(), IngestError> {
        if self.holds_lease() {
            Ok(())
        } else {
            Err(IngestError::NotLeaseholder(format!(
                "node {} does not hold the lease of {} (not renewed in time); it writes again once it does",
                self.node,
                self.url()
            )))
        }
    }

    fn lease_payload(&self, expires: SystemTime) -> PutPayload {
        let record = LeaseRecord {
            node: self.node.clone(),
            copy: self.copy_id(),
            expires_ms: now_ms(expires),
        };
        PutPayload::from(serde_json::to_vec(&record).unwrap_or_default())
    }

    /// Takes the lease: creates it, or takes it over when it is this node's or has expired.
    /// Another node's live lease is [`IngestError::LeaseHeld`]. Says whether this node held it
    /// last (then nobody wrote the lake since this node's local copy last did).
    pub fn acquire_lease(&self) -> Result<LastHolder, IngestError> {
        let key = self.bucket.key_of(LEASE_OBJECT);
        let store = &self.bucket.store;
        self.block_on(async {
            let expires = SystemTime::now() + self.ttl;
            let create = PutOptions::from(PutMode::Create);
            match store
                .put_opts(&key, self.lease_payload(expires), create)
                .await
            {
                Ok(r) => {
                    self.set_held(r.e_tag, r.version, expires);
                    return Ok(LastHolder::Unknown);
                }
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(self.failed("take the writer lease", e)),
            }
            let (holder, current) = self.read_lease().await?;
            let ours = |h: &LeaseRecord| self.is_ours(h);
            if let Some(h) = &holder
                && !ours(h)
                && h.expires_ms > now_ms(SystemTime::now())
            {
                let node = if h.node == self.node {
                    format!("{} (another process, on another local copy, with this --node-id)", h.node)
                } else {
                    h.node.clone()
                };
                return Err(IngestError::LeaseHeld {
                    lake: self.url(),
                    node,
                    seconds: (h.expires_ms - now_ms(SystemTime::now())).div_ceil(1000),
                });
            }
            if holder.is_none() {
                tracing::warn!(lake = %self.url(), "the writer lease is unreadable; taking it over");
            }
            let expires = SystemTime::now() + self.ttl;
            let update = PutOptions::from(PutMode::Update(current));
            let last = match &holder {
                Some(h) if ours(h) => LastHolder::ThisNode,
                Some(h) => LastHolder::Other(h.node.clone()),
                None => LastHolder::Unknown,
            };
            match store
                .put_opts(&key, self.lease_payload(expires), update)
                .await
            {
                Ok(r) => {
                    self.set_held(r.e_tag, r.version, expires);
                    Ok(last)
                }
                Err(object_store::Error::Precondition { .. }) => Err(IngestError::LeaseHeld {
                    lake: self.url(),
                    node: "another node (it took the lease just now)".into(),
                    seconds: self.ttl.as_secs(),
                }),
                Err(e) => Err(self.failed("take over the writer lease", e)),
            }
        })
    }

    /// The lease as the bucket holds it (`None`: unreadable), and its version.
    async fn read_lease(&self) -> Result<(Option<LeaseRecord>, UpdateVersion), IngestError> {
        let current = self
            .bucket
            .store
            .get(&self.bucket.key_of(LEASE_OBJECT))
            .await
            .map_err(|e| self.failed("read the writer lease", e))?;
        let version = UpdateVersion {
            e_tag: current.meta.e_tag.clone(),
            version: current.meta.version.clone(),
        };
        let bytes = current
            .bytes()
            .await
            .map_err(|e| self.failed("read the writer lease", e))?;
        Ok((serde_json::from_slice(&bytes).ok(), version))
    }

    /// True for a lease this process's node took on this local copy.
    fn is_ours(&self, lease: &LeaseRecord) -> bool {
        lease.node == self.node && lease.copy == self.copy_id()
    }

    fn set_held(&self, e_tag: Option<String>, version: Option<String>, expires: SystemTime) {
        *self.held() = Some(Held {
            version: UpdateVersion { e_tag, version },
            expires,
        });
    }

    /// Extends the lease by its time to live. A lease taken over by another node is lost for
    /// good ([`IngestError::NotLeaseholder`]); a store that does not answer leaves the lease to
    /// expire (and this node's writes stop before it does).
    pub fn renew_lease(&self) -> Result<(), IngestError> {
        let Some(held) = self.held().clone() else {
            return Err(IngestError::NotLeaseholder(format!(
                "node {} does not hold the lease of {}; restart it to take the lease again",
                self.node,
                self.url()
            )));
        };
        let key = self.bucket.key_of(LEASE_OBJECT);
        let expires = SystemTime::now() + self.ttl;
        let update = PutOptions::from(PutMode::Update(held.version));
        let put = self.block_on(self.bucket.store.put_opts(
            &key,
            self.lease_payload(expires),
            update,
        ));
        match put {
            Ok(r) => {
                self.set_held(r.e_tag, r.version, expires);
                Ok(())
            }
            Err(object_store::Error::Precondition { .. }) => {
                // A renewal whose request the client retried (or an earlier renewal that failed
                // after its write had landed) finds an ETag this node does not know. Only this
                // process writes this node's record on this copy: if the lease still holds it,
                // nobody took it, and the renewal is made again on the current ETag.
                let (lease, version) = self.block_on(self.read_lease())?;
                if lease.as_ref().is_some_and(|l| self.is_ours(l)) {
                    let update = PutOptions::from(PutMode::Update(version));
                    let again = self.block_on(self.bucket.store.put_opts(
                        &key,
                        self.lease_payload(expires),
                        update,
                    ));
                    match again {
                        Ok(r) => {
                            self.set_held(r.e_tag, r.version, expires);
                            return Ok(());
                        }
                        Err(object_store::Error::Precondition { .. }) => {}
                        Err(e) => return Err(self.failed("renew the writer lease", e)),
                    }
                }
                *self.held() = None;
                Err(IngestError::NotLeaseholder(format!(
                    "another node took the lease of {}; node {} stops writing to it",
                    self.url(),
                    self.node
                )))
            }
            Err(e) => Err(self.failed("renew the writer lease", e)),
        }
    }

    /// Lets the lease go at a clean stop (it is marked expired), so another node need not wait.
    pub fn release_lease(&self) -> Result<(), IngestError> {
        let Some(held) = self.held().take() else {
            return Ok(());
        };
        let key = self.bucket.key_of(LEASE_OBJECT);
        let store = &self.bucket.store;
        self.block_on(async {
            let mut version = held.version;
            // Twice at most: a renewal still in flight at a stop may have moved the ETag on.
            for _ in 0..2 {
                let update = PutOptions::from(PutMode::Update(version));
                match store
                    .put_opts(&key, self.lease_payload(UNIX_EPOCH), update)
                    .await
                {
                    Ok(_) => return Ok(()),
                    Err(object_store::Error::Precondition { .. }) => {
                        let (holder, current) = self.read_lease().await?;
                        if !holder.is_some_and(|h| self.is_ours(&h)) {
                            return Ok(()); // another node holds it now: nothing to let go
                        }
                        version = current;
                    }
                    Err(e) => return Err(self.failed("release the writer lease", e)),
                }
            }
            Ok(())
        })
    }

    /// Puts a flush's staged files to the bucket under their final names. Call with the gate
    /// held ([`Self::gate`]) until the files are published locally.
    pub(crate) fn put_staged(&self, root: &Path, staged: &[StagedFile]) -> Result<(), IngestError> {
        self.ensure_may_flush()?;
        let mut put = Vec::with_capacity(staged.len());
        // The cube files first, the events next, the id run last: another node lists `events/`
        // before `rollups/`, so one that sees an events file sees its cube file too.
        let mut ordered: Vec<(String, &StagedFile)> = staged
            .iter()
            .map(|f| Ok((relative_of(root, &f.path)?, f)))
            .collect::<Result<_, IngestError>>()?;
        ordered.sort_by_key(|(relative, _)| {
            (
                !relative.starts_with("rollups/"),
                relative.starts_with("ids/"),
            )
        });
        let result = self.block_on(async {
            for (relative, file) in ordered {
                put.push(relative.clone());
                let source =
                    fs::File::open(file.temp()).map_err(|e| IngestError::io(file.temp(), e))?;
                let meta = source
                    .metadata()
                    .map_err(|e| IngestError::io(file.temp(), e))?;
                // A rename keeps it: the stamp is the published file's too.
                let stamp = FileStamp {
                    size: meta.len(),
                    modified: meta.modified().ok(),
                };
                self.put_from(&relative, file.temp(), source).await?;
                self.known().insert(relative, stamp);
            }
            Ok(())
        });
        // Puts can take long: the lease is checked again before the caller publishes and lets
        // the WAL go. A node whose lease ran short meanwhile may have been replaced by one
        // that listed the bucket without these files and would delete them as removed.
        let result = result
            .and_then(|()| self.ensure_may_flush())
            .and_then(|()| self.save_known(root));
        // When nodes write at once, another node may have copied these objects down already:
        // they stay (the rows, flushed again under new names, are a repeat that compaction
        // drops), since deleting them could make another node's record of a pass wrong.
        if result.is_err() && !self.writes_are_shared() {
            // Best effort: the rows stay in the WAL and are flushed again under new names, so
            // objects of this attempt left in the bucket would count twice for its readers.
            self.block_on(async {
                for relative in &put {
                    let _ = self
                        .bucket
                        .store
                        .delete(&self.bucket.key_of(relative))
                        .await;
                    self.known().remove(relative);
                }
            });
        }
        result
    }

    /// Serializes a flush's bucket puts and local publication with [`Self::sync`]'s listing.
    pub(crate) fn gate(&self) -> MutexGuard<'_, ()> {
        self.gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counters for `/metrics`.
    pub fn metrics(&self) -> &BucketMetrics {
        &self.metrics
    }

    /// A failed call to the store, counted.
    fn failed(&self, what: &str, e: object_store::Error) -> IngestError {
        BucketMetrics::add(&self.metrics.failures, 1);
        IngestError::store(what, e)
    }

    fn known(&self) -> MutexGuard<'_, HashMap<String, FileStamp>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a file of the local copy; its size, or `None` when it was removed since the
    /// listing (a compaction or merge: the next pass sees that).
    async fn put_file(&self, relative: &str, file: &LocalFile) -> Result<Option<u64>, IngestError> {
        let source = match fs::File::open(&file.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(IngestError::io(&file.path, e)),
        };
        let size = self.put_from(relative, &file.path, source).await?;
        self.known().insert(relative.to_owned(), file.stamp);
        Ok(Some(size))
    }

    /// Streams `source` (the file at `path`) to the object at `relative`, in parts of
    /// [`PART_BYTES`] (one put when smaller), so a large compacted file is never held whole.
    async fn put_from(
        &self,
        relative: &str,
        path: &Path,
        mut source: fs::File,
    ) -> Result<u64, IngestError> {
        use std::io::Read;
        use tokio::io::AsyncWriteExt;
        let key = self.bucket.key_of(relative);
        let mut writer = BufWriter::with_capacity(Arc::clone(&self.bucket.store), key, PART_BYTES)
            .with_max_concurrency(2);
        let mut size = 0u64;
        let mut chunk = vec![0u8; PART_BYTES];
        // Set once the writer is shutting down: from then on it takes no abort (it would panic).
        let mut finishing = false;
        let written: Result<(), IngestError> = async {
            loop {
                let n = source
                    .read(&mut chunk)
                    .map_err(|e| IngestError::io(path, e))?;
                if n == 0 {
                    break;
                }
                size += n as u64;
                writer
                    .put(Bytes::copy_from_slice(&chunk[..n]))
                    .await
                    .map_err(|e| self.failed(&format!("put {relative}"), e))?;
            }
            finishing = true;
            writer.shutdown().await.map_err(|e| {
                let e = object_store::Error::Generic {
                    store: "S3",
                    source: Box::new(e),
                };
                self.failed(&format!("put {relative}"), e)
            })
        }
        .await;
        if let Err(e) = written {
            // A multipart upload begun and not finished is taken back; a failed single put
            // (or a failed completion) leaves nothing to take back.
            if !finishing {
                let _ = writer.abort().await;
            }
            return Err(e);
        }
        BucketMetrics::add(&self.metrics.puts, 1);
        BucketMetrics::add(&self.metrics.put_bytes, size);
        Ok(size)
    }

    async fn list(&self) -> Result<BTreeMap<String, ObjectMeta>, IngestError> {
        let prefix = (!self.bucket.prefix.is_empty()).then(|| self.bucket.key_of(""));
        let objects: Vec<ObjectMeta> = self
            .bucket
            .store
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(|e| self.failed("list the lake", e))?;
        Ok(objects
            .into_iter()
            .filter_map(|meta| {
                let relative = self.bucket.relative_of(&meta.location)?.to_owned();
                (relative != LEASE_OBJECT && relative != SYNC_JOURNAL).then_some((relative, meta))
            })
            .collect())
    }

    /// Makes the bucket equal to the local copy at `root` (see the module docs).
    pub fn sync(&self, root: &Path) -> Result<Synced, IngestError> {
        self.ensure_lease()?;
        let (remote, local, deferred) = {
            let _gate = self.gate();
            let remote = self.block_on(self.list())?;
            let Listing {
                files, deferred, ..
            } = local_files(root)?;
            (remote, files, deferred)
        };
        self.block_on(async {
            let mut synced = Synced {
                deferred: deferred.len(),
                ..Synced::default()
            };
            let changed: Vec<(&String, &LocalFile)> = local
                .iter()
                .filter(|(relative, file)| match self.known().get(*relative) {
                    // This process put or copied the file: it changed if its stamp did, whatever
                    // the clocks of node and store say.
                    Some(stamp) => *stamp != file.stamp || !remote.contains_key(*relative),
                    None => file.newer_than(remote.get(*relative)),
                })
                .collect();
            // A file the bucket holds as it is here is known from now on (a copy made before a
            // crash that kept it from the record): removed later, it is deleted.
            {
                let mut known = self.known();
                for (relative, file) in &local {
                    if !known.contains_key(relative) && !file.newer_than(remote.get(relative)) {
                        known.insert(relative.clone(), file.stamp);
                    }
                }
            }
            // Only objects this node knew (it put them, copied them down, or found them when it
            // took the lease) and removed since: an object it does not know is another node's
            // new file, which it copies down ([`Self::refresh`]) and never deletes.
            let deletes: Vec<&String> = {
                let known = self.known();
                remote
                    .keys()
                    .filter(|relative| {
                        let dir = relative.rsplit_once('/').map_or("", |(d, _)| d);
                        known.contains_key(*relative)
                            && !local.contains_key(*relative)
                            && !deferred.contains(dir)
                    })
                    .collect()
            };
            // A pass that deletes is recorded first: a writer that dies between its puts and its
            // deletions leaves a lake the next writer can settle (finish or undo). A record left
            // unfinished by an earlier pass is marked done before this pass puts anything:
            // settled against this pass's objects it would finish or undo the wrong pass.
            if deletes.is_empty() && self.journal_may_exist.load(Ordering::Acquire) {
                self.ensure_lease()?;
                if let Some(mut stale) = self.read_journal().await?
                    && !stale.done
                {
                    stale.done = true;
                    self.write_journal(&stale).await?;
                }
                self.journal_may_exist.store(false, Ordering::Release);
            }
            let mut journal = None;
            if !deletes.is_empty() {
                self.ensure_lease()?;
                let mut put: BTreeSet<String> = changed
                    .iter()
                    .filter(|(relative, _)| !remote.contains_key(*relative))
                    .map(|(relative, _)| (*relative).clone())
                    .collect();
                // An earlier pass of this node that did not finish may have put some of the new
                // objects these deletions go with: they are this pass's too (an undo takes them).
                if self.journal_may_exist.load(Ordering::Acquire)
                    && let Some(earlier) = self.read_journal().await?
                    && !earlier.done
                {
                    put.extend(earlier.put.into_iter().filter(|p| local.contains_key(p)));
                }
                let record = SyncJournal {
                    seq: self.last_journal_seq().await? + 1,
                    put: put.into_iter().collect(),
                    delete: deletes.iter().map(|r| (*r).clone()).collect(),
                    done: false,
                };
                self.journal_may_exist.store(true, Ordering::Release);
                self.write_journal(&record).await?;
                journal = Some(record);
            }
            let remote = &remote;
            let put: Vec<Option<u64>> = futures::stream::iter(changed)
                .map(|(relative, file)| async move {
                    // A writer whose lease ran out puts nothing more (another may have settled).
                    self.ensure_lease()?;
                    let size = self.put_file(relative, file).await?;
                    // A long put may outlast the lease: a new object that lands after another
                    // node may have settled this pass is taken back.
                    if let Err(e) = self.ensure_lease() {
                        if !remote.contains_key(relative) {
                            self.delete_object(relative).await?;
                            self.known().remove(relative);
                        }
                        return Err(e);
                    }
                    Ok(size)
                })
                .buffer_unordered(TRANSFERS_IN_FLIGHT)
                .try_collect()
                .await?;
            // A file that vanished locally since the listing (compacted again) was not put: the
            // record names it, so this pass must not delete anything (a settle would undo the
            // pass and take the puts that landed, with their old files already gone). The next
            // pass lists again.
            let vanished = put.iter().any(Option::is_none);
            for size in put.into_iter().flatten() {
                synced.put += 1;
                synced.put_bytes += size;
            }
            if vanished {
                return Ok(synced);
            }
            for relative in &deletes {
                self.ensure_lease()?;
                self.delete_object(relative).await?;
                self.known().remove(*relative);
                BucketMetrics::add(&self.metrics.deletes, 1);
                synced.deleted += 1;
            }
            // The pass is whole: nothing to finish or undo after it.
            if let Some(mut record) = journal {
                self.ensure_lease()?;
                record.done = true;
                self.write_journal(&record).await?;
                self.journal_may_exist.store(false, Ordering::Release);
            }
            Ok(synced)
        })
        .and_then(|synced| {
            self.save_known(root)?;
            Ok(synced)
        })
    }

    /// The record of the last sync pass (`None`: there is none).
    async fn read_journal(&self) -> Result<Option<SyncJournal>, IngestError> {
        let key = self.bucket.key_of(SYNC_JOURNAL);
        let text = match self.bucket.store.get(&key).await {
            Ok(got) => got
                .bytes()
                .await
                .map_err(|e| self.failed("read the sync journal", e))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.failed("read the sync journal", e)),
        };
        let journal: SyncJournal = serde_json::from_slice(&text).map_err(|e| {
            IngestError::UnreadableSyncJournal(format!(
                "{}/{SYNC_JOURNAL} is unreadable ({e}); it records a sync that did not finish: an operator must look at it before a node writes this lake",
                self.url()
            ))
        })?;
        *self.journal_seq.lock().unwrap_or_else(|p| p.into_inner()) = Some(journal.seq);
        Ok(Some(journal))
    }

    async fn write_journal(&self, journal: &SyncJournal) -> Result<(), IngestError> {
        let body = serde_json::to_vec(journal).unwrap_or_default();
        self.bucket
            .store
            .put(&self.bucket.key_of(SYNC_JOURNAL), PutPayload::from(body))
            .await
            .map_err(|e| self.failed("record the sync pass", e))?;
        *self.journal_seq.lock().unwrap_or_else(|p| p.into_inner()) = Some(journal.seq);
        Ok(())
    }

    /// The number of the last pass's record (read once, then kept).
    async fn last_journal_seq(&self) -> Result<u64, IngestError> {
        let known = *self.journal_seq.lock().unwrap_or_else(|p| p.into_inner());
        match known {
            Some(seq) => Ok(seq),
            None => Ok(self.read_journal().await?.map_or(0, |j| j.seq)),
        }
    }

    /// Writes the objects this node knows the bucket holds into the local copy at `root`
    /// ([`KNOWN_OBJECTS`]).
    fn save_known(&self, root: &Path) -> Result<(), IngestError> {
        let known: BTreeMap<String, FileStamp> =
            self.known().iter().map(|(k, v)| (k.clone(), *v)).collect();
        let body = serde_json::to_vec(&known).unwrap_or_default();
        write_atomically(&root.join(KNOWN_OBJECTS), &body)
    }

    /// Reads what [`Self::save_known`] wrote; false when there is nothing readable.
    fn load_known(&self, root: &Path) -> bool {
        let known = fs::read(root.join(KNOWN_OBJECTS))
            .ok()
            .and_then(|text| serde_json::from_slice::<HashMap<String, FileStamp>>(&text).ok());
        match known {
            Some(known) => {
                *self.known() = known;
                true
            }
            None => false,
        }
    }

    /// Deletes the object at `relative` (gone already is fine).
    async fn delete_object(&self, relative: &str) -> Result<(), IngestError> {
        match self
            .bucket
            .store
            .delete(&self.bucket.key_of(relative))
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed(&format!("delete {relative}"), e)),
        }
    }

    /// Finishes or undoes the sync pass a writer left unfinished (see the module docs). Called
    /// by the node that holds the lease, before it copies the lake down.
    pub fn settle_unfinished_sync(&self) -> Result<Settled, IngestError> {
        self.block_on(async {
            let journal = match self.read_journal().await? {
                Some(journal) if !journal.done => journal,
                _ => {
                    self.journal_may_exist.store(false, Ordering::Release);
                    return Ok(Settled::Nothing);
                }
            };
            let mut present = Vec::new();
            for relative in &journal.put {
                match self.bucket.store.head(&self.bucket.key_of(relative)).await {
                    Ok(_) => present.push(relative),
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.failed(&format!("look at {relative}"), e)),
                }
            }
            // Deletions had begun (one of them is gone): the puts were all made then, so the
            // pass is finished whatever is missing now.
            let mut deleting = false;
            for relative in &journal.delete {
                match self.bucket.store.head(&self.bucket.key_of(relative)).await {
                    Ok(_) => {}
                    Err(object_store::Error::NotFound { .. }) => deleting = true,
                    Err(e) => return Err(self.failed(&format!("look at {relative}"), e)),
                }
            }
            let settled = if deleting || present.len() == journal.put.len() {
                for relative in &journal.delete {
                    self.delete_object(relative).await?;
                }
                Settled::Finished {
                    deleted: journal.delete.len(),
                }
            } else {
                for relative in &present {
                    self.delete_object(relative).await?;
                }
                Settled::Undone {
                    deleted: present.len(),
                }
            };
            self.write_journal(&SyncJournal {
                done: true,
                ..journal
            })
            .await?;
            self.journal_may_exist.store(false, Ordering::Release);
            tracing::warn!(?settled, lake = %self.url(), "a sync pass the last writer left unfinished was settled");
            Ok(settled)
        })
    }

    /// Brings the local copy at `root` to the bucket's state, after settling a sync pass the
    /// last writer left unfinished: objects it lacks, or holds in another size or older, are
    /// copied down; lake files the bucket no longer holds are removed, with any swap journal (a
    /// swap begun before another node took over is moot).
    fn pull(&self, root: &Path) -> Result<LocalCopy, IngestError> {
        self.settle_unfinished_sync()?;
        self.pull_settled(root, false)
    }

    /// [`Self::pull`] of a bucket with no unfinished pass, or (`member`: a node that does not
    /// hold the lease, which never settles another node's pass) as a consistent listing shows
    /// it.
    fn pull_settled(&self, root: &Path, member: bool) -> Result<LocalCopy, IngestError> {
        let remote = if member {
            self.block_on(self.consistent_listing())?
        } else {
            self.block_on(self.list())?
        };
        let Listing {
            files: local,
            deferred,
            temps,
        } = local_files(root)?;
        // Nothing writes the copy while it is pulled: what a cut-short copy or write left goes.
        for temp in temps {
            let _ = fs::remove_file(temp);
        }
        let mut removed = 0;
        for (relative, file) in &local {
            if !remote.contains_key(relative) {
                fs::remove_file(&file.path).map_err(|e| IngestError::io(&file.path, e))?;
                removed += 1;
            }
        }
        if !deferred.is_empty() {
            for dir in &deferred {
                let journal = if dir.is_empty() {
                    root.join(JOURNAL)
                } else {
                    local_path(root, dir)?.join(JOURNAL)
                };
                match fs::remove_file(&journal) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(IngestError::io(&journal, e)),
                }
            }
            // Those directories' files were left out of the listing: list again.
            return self.pull_settled(root, member);
        }
        self.block_on(async {
            let mut files = 0;
            let mut bytes = 0u64;
            let wanted: Vec<(&String, &ObjectMeta)> = remote
                .iter()
                .filter(|(relative, meta)| match local.get(*relative) {
                    // Files rewritten in place (keys, consents, manifests) are always fetched:
                    // the same size and clocks apart say nothing of their contents.
                    Some(file) if file.stamp.size == meta.size && !rewritten_in_place(relative) => {
                        self.known().insert((*relative).clone(), file.stamp);
                        false
                    }
                    _ => true,
                })
                .collect();
            // Several gets in flight: a store's latency per object, not its bandwidth, is what
            // a copy of many files waits for.
            let fetched: Vec<u64> = futures::stream::iter(wanted)
                .map(|(relative, meta)| self.fetch(root, relative, meta))
                .buffer_unordered(TRANSFERS_IN_FLIGHT)
                .try_collect()
                .await?;
            files += fetched.len();
            bytes += fetched.iter().sum::<u64>();
            Ok(LocalCopy::Pulled {
                files,
                bytes,
                removed,
            })
        })
    }
}

/// An object copied down beside its place in the local copy, not published yet.
struct Fetched {
    relative: String,
    temp: PathBuf,
    path: PathBuf,
    meta: ObjectMeta,
}

impl BucketLake {
    /// Copies the object at `relative` to its place under `root`, stamped as the object;
    /// returns its size.
    async fn fetch(
        &self,
        root: &Path,
        relative: &str,
        meta: &ObjectMeta,
    ) -> Result<u64, IngestError> {
        let fetched = self.fetch_beside(root, relative, meta).await?;
        let size = fetched.meta.size;
        self.publish_fetched(std::slice::from_ref(&fetched))?;
        self.stamp_fetched(&[fetched])?;
        Ok(size)
    }

    /// Streams the object at `relative` into a hidden temporary file beside its place under
    /// `root`, fsynced (the next start removes it if a crash leaves it): a file of the copy is
    /// whole or absent.
    async fn fetch_beside(
        &self,
        root: &Path,
        relative: &str,
        meta: &ObjectMeta,
    ) -> Result<Fetched, IngestError> {
        use std::io::Write;
        let path = local_path(root, relative)?;
        let dir = path.parent().unwrap_or(root);
        fs::create_dir_all(dir).map_err(|e| IngestError::io(dir, e))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = crate::lake::temp_path(dir, &name);
        let fetched: Result<u64, IngestError> = async {
            let mut out = fs::File::create(&temp).map_err(|e| IngestError::io(&temp, e))?;
            let mut stream = self
                .bucket
                .store
                .get(&self.bucket.key_of(relative))
                .await
                .map_err(|e| self.failed(&format!("get {relative}"), e))?
                .into_stream();
            let mut size = 0u64;
            while let Some(chunk) = stream
                .try_next()
                .await
                .map_err(|e| self.failed(&format!("get {relative}"), e))?
            {
                out.write_all(&chunk)
                    .map_err(|e| IngestError::io(&temp, e))?;
                size += chunk.len() as u64;
            }
            out.sync_all().map_err(|e| IngestError::io(&temp, e))?;
            Ok(size)
        }
        .await;
        match fetched {
            Ok(size) => Ok(Fetched {
                relative: relative.to_owned(),
                temp,
                path,
                // The size copied, which is the object's unless it was rewritten meanwhile.
                meta: ObjectMeta {
                    size,
                    ..meta.clone()
                },
            }),
            Err(e) => {
                let _ = fs::remove_file(&temp);
                Err(e)
            }
        }
    }

    /// Renames fetched files into place (the ones not renamed yet go back on failure).
    fn publish_fetched(&self, fetched: &[Fetched]) -> Result<(), IngestError> {
        for (i, f) in fetched.iter().enumerate() {
            if let Err(e) = fs::rename(&f.temp, &f.path) {
                for rest in &fetched[i..] {
                    let _ = fs::remove_file(&rest.temp);
                }
                return Err(IngestError::io(&f.path, e));
            }
        }
        Ok(())
    }

    /// Makes fetched files durable in their directories and stamps them as their objects.
    fn stamp_fetched(&self, fetched: &[Fetched]) -> Result<(), IngestError> {
        let dirs: BTreeSet<&Path> = fetched.iter().filter_map(|f| f.path.parent()).collect();
        for dir in dirs {
            sync_dir(dir)?;
        }
        for f in fetched {
            let stamp = stamp_restored(&f.path, &f.meta)?;
            self.known().insert(f.relative.clone(), stamp);
            BucketMetrics::add(&self.metrics.restored, 1);
        }
        Ok(())
    }

    /// The bucket's objects as a node without the lease must see them: a sync pass of the
    /// holder that is under way is seen before it (its new objects left out) or after it (its
    /// deletions made), never half-way, where a compacted day would count twice or not at
    /// all. The pass's record is read before and after the listing; when a pass began or
    /// ended in between, the bucket is listed again.
    async fn consistent_listing(&self) -> Result<Objects, IngestError> {
        for _ in 0..LISTING_TRIES {
            let before = self.read_journal().await?;
            let mut objects = self.list().await?;
            let after = self.read_journal().await?;
            if SyncJournal::mark(before.as_ref()) != SyncJournal::mark(after.as_ref()) {
                continue;
            }
            let Some(pass) = after.filter(|j| !j.done) else {
                return Ok(objects);
            };
            // A pass deletes only once all its puts are made: one deletion made, or every put
            // there, and it is seen after; otherwise before.
            let deleting = pass.delete.iter().any(|d| !objects.contains_key(d));
            if deleting || pass.put.iter().all(|p| objects.contains_key(p)) {
                for relative in &pass.put {
                    if !objects.contains_key(relative) {
                        let meta = self
                            .bucket
                            .store
                            .head(&self.bucket.key_of(relative))
                            .await
                            .map_err(|e| self.failed(&format!("look at {relative}"), e))?;
                        objects.insert(relative.clone(), meta);
                    }
                }
                for relative in &pass.delete {
                    objects.remove(relative);
                }
            } else {
                for relative in &pass.put {
                    objects.remove(relative);
                }
            }
            return Ok(objects);
        }
        Err(self.failed(
            "list the lake",
            object_store::Error::Generic {
                store: "S3",
                source: format!(
                    "a sync pass began or ended during each of {LISTING_TRIES} listings; the next refresh lists again"
                )
                .into(),
            },
        ))
    }

    /// Brings what other nodes wrote into the local copy at `root` of a running node, in one
    /// step under the live buffer's gate (a query sees the copy before or after):
    /// - `mirror` (a node without the lease): the copy becomes the bucket's state as
    ///   [`Self::consistent_listing`] shows it: objects it lacks or holds in another size are
    ///   copied down, files the bucket no longer holds (compacted, merged, expired by the node
    ///   holding the lease) are removed. Such a node writes nothing but its flushes, which are
    ///   in the bucket before they are in the copy;
    /// - otherwise (the holder): objects it never knew (other nodes' flushes) are copied down;
    ///   what it removed itself is the sync's to delete.
    ///
    /// `coverage` learns which days' cube changed, in the same step.
    pub fn refresh(
        &self,
        root: &Path,
        mirror: bool,
        live: &LiveBuffer,
        coverage: &Coverage,
    ) -> Result<Refreshed, IngestError> {
        let (remote, local) = {
            let _gate = self.gate();
            let remote = if mirror {
                self.block_on(self.consistent_listing())?
            } else {
                self.block_on(self.list())?
            };
            (remote, local_files(root)?)
        };
        let in_swap = |relative: &str| {
            local
                .deferred
                .contains(relative.rsplit_once('/').map_or("", |(d, _)| d))
        };
        let wanted: Vec<(&String, &ObjectMeta)> = {
            let known = self.known();
            remote
                .iter()
                .filter(|(relative, meta)| {
                    !in_swap(relative)
                        && match local.files.get(*relative) {
                            None => mirror || !known.contains_key(*relative),
                            Some(file) => {
                                mirror
                                    && (file.stamp.size != meta.size
                                        || (rewritten_in_place(relative)
                                            && file.stamp.modified
                                                != Some(SystemTime::from(meta.last_modified))))
                            }
                        }
                })
                .collect()
        };
        let removed: Vec<(&String, &LocalFile)> = if mirror {
            local
                .files
                .iter()
                .filter(|(relative, _)| !remote.contains_key(*relative) && !in_swap(relative))
                .collect()
        } else {
            Vec::new()
        };
        if wanted.is_empty() && removed.is_empty() {
            return Ok(Refreshed::default());
        }
        let fetched: Vec<Fetched> = self.block_on(
            futures::stream::iter(wanted)
                .map(|(relative, meta)| self.fetch_beside(root, relative, meta))
                .buffer_unordered(TRANSFERS_IN_FLIGHT)
                .try_collect(),
        )?;
        let refreshed = Refreshed {
            fetched: fetched.iter().map(|f| f.relative.clone()).collect(),
            removed: removed.iter().map(|(r, _)| (*r).clone()).collect(),
        };
        live.swap_files(|| {
            self.publish_fetched(&fetched)?;
            for (_, file) in &removed {
                match fs::remove_file(&file.path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(IngestError::io(&file.path, e)),
                }
            }
            coverage.cube_changed(refreshed.days());
            Ok(())
        })?;
        self.stamp_fetched(&fetched)?;
        {
            let mut known = self.known();
            for relative in &refreshed.removed {
                known.remove(relative);
            }
        }
        self.save_known(root)?;
        Ok(refreshed)
    }
}

/// What a [`BucketLake::refresh`] changed in the local copy (paths inside the lake).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refreshed {
    /// Objects copied down.
    pub fetched: Vec<String>,
    /// Local files the bucket no longer holds, removed.
    pub removed: Vec<String>,
}

impl Refreshed {
    pub fn is_empty(&self) -> bool {
        self.fetched.is_empty() && self.removed.is_empty()
    }

    /// The days whose events, cube or summary files changed.
    pub fn days(&self) -> BTreeSet<chrono::NaiveDate> {
        self.fetched
            .iter()
            .chain(&self.removed)
            .filter(|r| r.starts_with("events/") || r.starts_with("rollups/"))
            .filter_map(|r| r.split('/').find_map(crate::lake::partition_day))
            .collect()
    }

    /// Whether runs of the id index came or went.
    pub fn touches_ids(&self) -> bool {
        self.fetched
            .iter()
            .chain(&self.removed)
            .any(|r| r.starts_with("ids/"))
    }
}

/// Objects copied down, or files put, at once by a pull or a sync: a store's latency per
/// object, not its bandwidth, is what a copy of many files waits for.
const TRANSFERS_IN_FLIGHT: usize = 8;

/// A put's part (a file smaller than this is one put): with two parts in flight per transfer,
/// a sync holds at most 8 × 2 × 8 MiB of file contents at once, whatever the files' sizes.
const PART_BYTES: usize = 8 << 20;

/// The marker of a local copy, hidden (never synced): which lake it copies, and whether the
/// copy is whole.
const COPY_MARKER: &str = ".bucket-copy.json";

#[derive(Debug, Serialize, Deserialize)]
struct CopyMarker {
    lake: String,
    complete: bool,
    /// Made when the copy is made; named in the lease by the process working on it.
    #[serde(default)]
    copy: String,
}

/// A fresh copy id: the node, the time and the process, hashed with a random key.
fn new_copy_id(node: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(node.as_bytes());
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// Who held the writer lease before this node took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastHolder {
    ThisNode,
    Other(String),
    /// No lease yet (a new lake), or one that could not be read.
    Unknown,
}

/// How a node's local directory became a copy of the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalCopy {
    /// It already was one, and no other node wrote the lake since (a restart).
    Kept,
    /// It was brought to the bucket's state: files copied down and their bytes, local files
    /// no longer in the lake removed.
    Pulled {
        files: usize,
        bytes: u64,
        removed: usize,
    },
}

impl BucketLake {
    /// Makes `root` a whole copy of the lake before the node writes, with the lease held
    /// (`last` is who held it before). Kept when it is a whole copy and this node wrote the
    /// lake last; otherwise brought to the bucket's state ([`Self::pull`]): an empty directory
    /// (a first start, a lost disk), a copy cut short, or the copy of a node another node
    /// took over from (its files may have been compacted away since; putting them back would
    /// count them twice). A directory with other files in it (a local lake, another bucket's
    /// copy) is refused: its files would be put into this lake, or this lake's deleted.
    pub fn prepare_local_copy(
        &self,
        root: &Path,
        last: &LastHolder,
    ) -> Result<LocalCopy, IngestError> {
        self.prepare(root, Some(last))
    }

    /// Makes `root` a whole copy of the lake for a node that writes it while another node
    /// holds the lease (`serve --join`): always brought to the bucket's state as a consistent
    /// listing shows it, never settling the holder's sync pass.
    pub fn prepare_member_copy(&self, root: &Path) -> Result<LocalCopy, IngestError> {
        self.prepare(root, None)
    }

    /// `last`: who held the lease before this node took it; `None` for a node without it.
    fn prepare(&self, root: &Path, last: Option<&LastHolder>) -> Result<LocalCopy, IngestError> {
        let marker_path = root.join(COPY_MARKER);
        let refuse = |why: String| {
            IngestError::io(
                root,
                std::io::Error::other(format!(
                    "{why}; give --local-dir an empty directory for the lake at {}",
                    self.url()
                )),
            )
        };
        match fs::read(&marker_path) {
            Ok(text) => {
                let marker: CopyMarker = serde_json::from_slice(&text)
                    .map_err(|e| refuse(format!("{COPY_MARKER} is unreadable ({e})")))?;
                if marker.lake != self.url() {
                    return Err(refuse(format!("it is the copy of {}", marker.lake)));
                }
                // Kept only with the record of what the bucket held: without it, a file this
                // node removed could not be told from another node's new one.
                if marker.complete && last == Some(&LastHolder::ThisNode) && self.load_known(root) {
                    return Ok(LocalCopy::Kept);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if has_lake_files(root) {
                    return Err(refuse(
                        "it holds files that are not a copy of a lake in a bucket".into(),
                    ));
                }
            }
            Err(e) => return Err(IngestError::io(&marker_path, e)),
        }
        let write_marker = |complete| {
            let marker = CopyMarker {
                lake: self.url(),
                complete,
                copy: self.copy_id(),
            };
            write_atomically(
                &marker_path,
                &serde_json::to_vec(&marker).unwrap_or_default(),
            )
        };
        fs::create_dir_all(root).map_err(|e| IngestError::io(root, e))?;
        write_marker(false)?;
        let pulled = match last {
            Some(_) => self.pull(root)?,
            None => self.pull_settled(root, true)?,
        };
        self.save_known(root)?;
        write_marker(true)?;
        Ok(pulled)
    }
}

/// True when `root` holds a file other than the local lock.
fn has_lake_files(root: &Path) -> bool {
    fn has_file(dir: &Path, top: bool) -> bool {
        let Ok(entries) = fs::read_dir(dir) else {
            return false;
        };
        entries.flatten().any(|e| match e.file_type() {
            Ok(t) if t.is_dir() => has_file(&e.path(), false),
            _ => !(top && e.file_name() == LOCK),
        })
    }
    has_file(root, true)
}

/// A local file's size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct FileStamp {
    size: u64,
    modified: Option<SystemTime>,
}

/// A file of the local copy.
#[derive(Debug)]
struct LocalFile {
    path: PathBuf,
    stamp: FileStamp,
}

impl LocalFile {
    /// True when the bucket lacks the file or holds an older version of it.
    fn newer_than(&self, remote: Option<&ObjectMeta>) -> bool {
        let Some(remote) = remote else {
            return true;
        };
        remote.size != self.stamp.size
            || self
                .stamp
                .modified
                .is_some_and(|m| chrono::DateTime::<chrono::Utc>::from(m) > remote.last_modified)
    }
}

/// Files rewritten under the same name (keys, consents, manifests: JSON); every other file's
/// name is new for new contents (Parquet files and id runs), so its size tells enough. They are
/// small, and a pull always fetches them.
fn rewritten_in_place(relative: &str) -> bool {
    relative.ends_with(".json")
}

/// Gives a file copied down from the bucket the object's time as its modification time (so it
/// is not "newer" than the object) and owner-only permissions (the copy is the node's own; the
/// key file among it must not become readable by others); returns its stamp.
fn stamp_restored(path: &Path, meta: &ObjectMeta) -> Result<FileStamp, IngestError> {
    let modified = SystemTime::from(meta.last_modified);
    let file = fs::File::options()
        .write(true)
        .open(path)
        .map_err(|e| IngestError::io(path, e))?;
    file.set_modified(modified)
        .map_err(|e| IngestError::io(path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| IngestError::io(path, e))?;
    }
    Ok(FileStamp {
        size: meta.size,
        modified: Some(modified),
    })
}

/// What a walk of the local copy found.
#[derive(Debug, Default)]
struct Listing {
    /// The lake's files by path inside the lake (the node's own entries and hidden files left
    /// out).
    files: BTreeMap<String, LocalFile>,
    /// Directories with a swap in flight (their files are left out too).
    deferred: BTreeSet<String>,
    /// Temporary files of writes that never finished (see `lake::temp_path`).
    temps: Vec<PathBuf>,
}

/// Walks the local copy at `root`.
fn local_files(root: &Path) -> Result<Listing, IngestError> {
    let mut listing = Listing::default();
    let mut dirs = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, relative)) = dirs.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(IngestError::io(&dir, e)),
        };
        let mut here = Vec::new();
        let mut swapping = false;
        for entry in entries {
            let entry = entry.map_err(|e| IngestError::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == JOURNAL {
                swapping = true;
            }
            if crate::lake::is_temp_name(&name) {
                listing.temps.push(entry.path());
            }
            if name.starts_with('.')
                || name == LOCK
                || (relative.is_empty() && name == crate::lake::WAL_DIR)
            {
                continue;
            }
            let child = if relative.is_empty() {
                name.clone()
            } else {
                format!("{relative}/{name}")
            };
            // A file that cannot be looked at must not look removed (the sync would delete it
            // from the bucket); one removed since the directory was read is.
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(IngestError::io(&entry.path(), e)),
            };
            if meta.is_dir() {
                dirs.push((entry.path(), child));
            } else if meta.is_file() {
                here.push((
                    child,
                    LocalFile {
                        path: entry.path(),
                        stamp: FileStamp {
                            size: meta.len(),
                            modified: meta.modified().ok(),
                        },
                    },
                ));
            }
        }
        // The journal may appear after the entries were read: look again at the end.
        if swapping || dir.join(JOURNAL).exists() {
            listing.deferred.insert(relative);
        } else {
            listing.files.extend(here);
        }
    }
    Ok(listing)
}

/// The path inside the lake of `path` (a file under `root`), `/`-separated.
fn relative_of(root: &Path, path: &Path) -> Result<String, IngestError> {
    let inside = path.strip_prefix(root).map_err(|_| {
        IngestError::io(
            path,
            std::io::Error::other(format!("not inside the lake at {}", root.display())),
        )
    })?;
    let parts: Vec<String> = inside
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Ok(parts.join("/"))
}

/// Where the object at `relative` goes under `root`; names that would leave the directory are
/// refused (a bucket is not trusted to name local paths).
fn local_path(root: &Path, relative: &str) -> Result<PathBuf, IngestError> {
    let mut path = root.to_path_buf();
    for part in relative.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains('\\') {
            return Err(IngestError::io(
                root,
                std::io::Error::other(format!(
                    "the bucket holds an object with an unsafe name: {relative:?}"
                )),
            ));
        }
        path.push(part);
    }
    Ok(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use object_store::ObjectStore;

    #[test]
    fn local_listing_leaves_out_the_nodes_own_files_and_swaps_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, body) in [
            ("LOCK", "x"),
            ("wal/00000001.wal", "x"),
            ("snapshots/LOCK", ""),
            ("events/date=2026-11-30/a.parquet", "aa"),
            ("events/date=2026-11-30/.a.parquet.tmp", "x"),
            ("events/date=2026-11-29/b.parquet", "b"),
            ("events/date=2026-11-29/.compaction.json", "{}"),
            ("keys.json", "{}"),
        ] {
            let p = root.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, body).unwrap();
        }
        let Listing {
            files,
            deferred,
            temps,
        } = local_files(root).unwrap();
        assert_eq!(temps, [root.join("events/date=2026-11-30/.a.parquet.tmp")]);
        let names: Vec<&str> = files.keys().map(String::as_str).collect();
        assert_eq!(names, ["events/date=2026-11-30/a.parquet", "keys.json"]);
        assert_eq!(files["events/date=2026-11-30/a.parquet"].stamp.size, 2);
        assert_eq!(
            deferred.into_iter().collect::<Vec<_>>(),
            ["events/date=2026-11-29"]
        );
        assert!(has_lake_files(root));
        let empty = tempfile::tempdir().unwrap();
        fs::create_dir_all(empty.path().join("events/date=2026-11-30")).unwrap();
        fs::write(empty.path().join("LOCK"), "").unwrap();
        assert!(!has_lake_files(empty.path()));
        assert!(!has_lake_files(&empty.path().join("missing")));
    }

    #[test]
    fn a_file_copied_down_is_not_newer_than_its_object_and_a_rewrite_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        fs::write(&path, b"12345").unwrap();
        // The object was put an hour ago, by a node whose clock is not this one.
        let meta = ObjectMeta {
            location: object_store::path::Path::from("lake/f.parquet"),
            last_modified: chrono::Utc::now() - chrono::Duration::hours(1),
            size: 5,
            e_tag: None,
            version: None,
        };
        let local = |path: &Path| {
            let m = fs::metadata(path).unwrap();
            LocalFile {
                path: path.to_owned(),
                stamp: FileStamp {
                    size: m.len(),
                    modified: m.modified().ok(),
                },
            }
        };
        assert!(local(&path).newer_than(Some(&meta)), "written now: newer");
        let stamp = stamp_restored(&path, &meta).unwrap();
        assert_eq!(local(&path).stamp, stamp);
        assert!(
            !local(&path).newer_than(Some(&meta)),
            "copied down: not newer"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::thread::sleep(Duration::from_millis(10));
        fs::write(&path, b"54321").unwrap();
        assert!(local(&path).newer_than(Some(&meta)), "rewritten: newer");
        assert!(local(&path).newer_than(None), "not in the bucket");
    }

    /// An in-memory store that refuses puts and deletes of paths containing a given text: a
    /// writer whose store fails, or who dies, between two calls of a pass.
    #[derive(Debug)]
    struct Refusing {
        inner: object_store::memory::InMemory,
        refuse: Mutex<Option<&'static str>>,
        /// The next put of a path containing this text lands, then answers 412, as a retried
        /// request whose first try landed does.
        land_then_refuse: Mutex<Option<&'static str>>,
    }

    impl std::fmt::Display for Refusing {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Refusing({})", self.inner)
        }
    }

    impl Refusing {
        fn new() -> Arc<Refusing> {
            Arc::new(Refusing {
                inner: object_store::memory::InMemory::new(),
                refuse: Mutex::new(None),
                land_then_refuse: Mutex::new(None),
            })
        }

        fn check(&self, path: &object_store::path::Path) -> object_store::Result<()> {
            match *self.refuse.lock().unwrap() {
                Some(text) if path.as_ref().contains(text) => Err(object_store::Error::Generic {
                    store: "Refusing",
                    source: format!("{path} refused").into(),
                }),
                _ => Ok(()),
            }
        }
    }

    #[async_trait::async_trait]
    impl object_store::ObjectStore for Refusing {
        async fn put_opts(
            &self,
            location: &object_store::path::Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            self.check(location)?;
            let landed = self.inner.put_opts(location, payload, opts).await?;
            let mut once = self.land_then_refuse.lock().unwrap();
            match *once {
                Some(text) if location.as_ref().contains(text) => {
                    *once = None;
                    Err(object_store::Error::Precondition {
                        path: location.to_string(),
                        source: "the retry found the first try's ETag".into(),
                    })
                }
                _ => Ok(landed),
            }
        }

        async fn put_multipart_opts(
            &self,
            location: &object_store::path::Path,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.check(location)?;
            self.inner.put_multipart_opts(location, opts).await
        }

        async fn get_opts(
            &self,
            location: &object_store::path::Path,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.inner.get_opts(location, options).await
        }

        fn delete_stream(
            &self,
            locations: futures::stream::BoxStream<
                'static,
                object_store::Result<object_store::path::Path>,
            >,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>>
        {
            let refuse = *self.refuse.lock().unwrap();
            let inner = self.inner.clone();
            locations
                .then(move |path| {
                    let inner = inner.clone();
                    async move {
                        let path = path?;
                        if let Some(text) = refuse
                            && path.as_ref().contains(text)
                        {
                            return Err(object_store::Error::Generic {
                                store: "Refusing",
                                source: format!("{path} refused").into(),
                            });
                        }
                        inner.delete(&path).await.map(|()| path)
                    }
                })
                .boxed()
        }

        fn list(
            &self,
            prefix: Option<&object_store::path::Path>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }

        async fn list_with_delimiter(
            &self,
            prefix: Option<&object_store::path::Path>,
        ) -> object_store::Result<object_store::ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }

        async fn copy_opts(
            &self,
            from: &object_store::path::Path,
            to: &object_store::path::Path,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    const DAY: &str = "events/date=2026-11-30";

    /// Node `node` of the lake `prod` in `store`, holding the lease; who held it before.
    fn bucket_lake(store: &Arc<Refusing>, node: &str, lease: Duration) -> BucketLake {
        let bucket = Bucket {
            name: "lakes".into(),
            prefix: "prod".into(),
            store: Arc::clone(store) as Arc<dyn object_store::ObjectStore>,
        };
        BucketLake::new(bucket, node.into(), lease).unwrap()
    }

    fn writer(store: &Arc<Refusing>, node: &str) -> (BucketLake, LastHolder) {
        // A short lease: the next writer takes over once it has run out.
        let lake = bucket_lake(store, node, Duration::from_secs(2));
        let last = lake.acquire_lease().unwrap();
        (lake, last)
    }

    /// The lake's first writer, n1, on the copy `root`, with a day's file `a.parquet` written
    /// there (not synced yet).
    fn first_writer(store: &Arc<Refusing>, root: &Path) -> BucketLake {
        let (first, last) = writer(store, "n1");
        first.prepare_local_copy(root, &last).unwrap();
        fs::create_dir_all(root.join(DAY)).unwrap();
        fs::write(root.join(DAY).join("a.parquet"), "a").unwrap();
        first
    }

    fn objects(store: &Refusing) -> Vec<String> {
        let listed: Vec<ObjectMeta> =
            futures::executor::block_on(store.inner.list(None).try_collect()).unwrap();
        let mut names: Vec<String> = listed
            .into_iter()
            .map(|m| m.location.as_ref().trim_start_matches("prod/").to_owned())
            .collect();
        names.sort();
        names
    }

    fn lake_files(root: &Path) -> Vec<String> {
        local_files(root).unwrap().files.into_keys().collect()
    }

    /// The first writer puts a day's two files, then compacts them into one and syncs with its
    /// store failing `failing` (the pass stops there, as if the node died); then it is gone
    /// and another node takes over. Answers the bucket after the failed pass, and the second
    /// node's copy (the bucket's lake files once it has taken over: the same).
    fn compaction_cut_short(failing: &'static str) -> (Vec<String>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Refusing::new();
        let root = dir.path().join("n1");
        let first = first_writer(&store, &root);
        fs::write(root.join(DAY).join("b.parquet"), "b").unwrap();
        first.sync(&root).unwrap();
        // The compaction: two files become one (and a second output, so a pass has two puts).
        fs::remove_file(root.join(DAY).join("a.parquet")).unwrap();
        fs::remove_file(root.join(DAY).join("b.parquet")).unwrap();
        fs::write(root.join(DAY).join("ab.parquet"), "ab").unwrap();
        fs::write(root.join("rollup.json"), "{}").unwrap();
        *store.refuse.lock().unwrap() = Some(failing);
        assert!(first.sync(&root).is_err());
        *store.refuse.lock().unwrap() = None;
        let after_failure = objects(&store);
        drop(first);
        std::thread::sleep(Duration::from_millis(2_100));

        let (second, last) = writer(&store, "n2");
        assert_eq!(last, LastHolder::Other("n1".into()));
        // Taking over settles the pass before copying the lake down.
        let copy = second
            .prepare_local_copy(&dir.path().join("n2"), &last)
            .unwrap();
        assert!(matches!(copy, LocalCopy::Pulled { .. }), "{copy:?}");
        assert_eq!(second.settle_unfinished_sync().unwrap(), Settled::Nothing);
        let mut after = objects(&store);
        after.retain(|name| name != LEASE_OBJECT && name != SYNC_JOURNAL);
        assert_eq!(after, lake_files(&dir.path().join("n2")));
        (after_failure, after)
    }

    #[test]
    fn a_sync_cut_short_between_its_puts_and_deletes_is_finished_by_the_next_writer() {
        let (after_failure, copy) = compaction_cut_short("/b.parquet");
        // The pass put the new files and recorded itself, then its deletions failed midway.
        assert!(
            after_failure.contains(&SYNC_JOURNAL.to_owned()),
            "{after_failure:?}"
        );
        assert!(after_failure.contains(&format!("{DAY}/ab.parquet")));
        assert!(after_failure.contains(&format!("{DAY}/b.parquet")));
        // The next writer's copy holds the day once: the compacted file only.
        assert_eq!(
            copy,
            [format!("{DAY}/ab.parquet"), "rollup.json".to_owned()]
        );
    }

    #[test]
    fn a_sync_cut_short_among_its_puts_is_undone_by_the_next_writer() {
        let (after_failure, copy) = compaction_cut_short("rollup.json");
        assert!(
            after_failure.contains(&SYNC_JOURNAL.to_owned()),
            "{after_failure:?}"
        );
        assert!(!after_failure.contains(&"rollup.json".to_owned()));
        // The day as it was before the pass: both old files, not the half-put compaction.
        assert_eq!(
            copy,
            [format!("{DAY}/a.parquet"), format!("{DAY}/b.parquet")]
        );
    }

    /// The record of the last sync pass, as the bucket holds it.
    fn journal(store: &Refusing) -> SyncJournal {
        let key = object_store::path::Path::from(format!("prod/{SYNC_JOURNAL}"));
        let got = futures::executor::block_on(store.inner.get(&key)).unwrap();
        serde_json::from_slice(&futures::executor::block_on(got.bytes()).unwrap()).unwrap()
    }

    /// Puts the file `name` of the day as a flush of `node` does (staged, put, published).
    fn flush(node: &BucketLake, root: &Path, name: &str) {
        let dir = root.join(DAY);
        fs::create_dir_all(&dir).unwrap();
        let temp = crate::lake::temp_path(&dir, name);
        fs::write(&temp, name).unwrap();
        let staged = StagedFile::new(temp, dir.join(name), 1, name.len() as u64);
        let _gate = node.gate();
        node.put_staged(root, std::slice::from_ref(&staged))
            .unwrap();
        staged.publish().unwrap();
    }

    /// A node that writes beside the holder of the lease, on the copy `root`.
    fn member(store: &Arc<Refusing>, node: &str, root: &Path) -> BucketLake {
        let lake = bucket_lake(store, node, LONG_LEASE);
        lake.share_writes();
        let refused = lake.acquire_lease().unwrap_err().to_string();
        assert!(refused.contains("written by node n1"), "{refused}");
        lake.prepare_member_copy(root).unwrap();
        lake
    }

    /// A lease that does not run out during a test.
    const LONG_LEASE: Duration = Duration::from_secs(600);

    /// n1 holding a long lease, on the copy `root`, writes are shared.
    fn holder(store: &Arc<Refusing>, root: &Path) -> BucketLake {
        let lake = bucket_lake(store, "n1", LONG_LEASE);
        lake.share_writes();
        lake.adopt_copy(root);
        let last = lake.acquire_lease().unwrap();
        lake.prepare_local_copy(root, &last).unwrap();
        lake
    }

    #[test]
    fn nodes_writing_at_once_copy_each_others_files_and_delete_only_their_own_removals() {
        let dir = tempfile::tempdir().unwrap();
        let store = Refusing::new();
        let (one, two) = (dir.path().join("n1"), dir.path().join("n2"));
        let first = holder(&store, &one);
        fs::create_dir_all(one.join(DAY)).unwrap();
        fs::write(one.join(DAY).join("a.parquet"), "a").unwrap();
        first.sync(&one).unwrap();
        let second = member(&store, "n2", &two);
        assert_eq!(lake_files(&two), [format!("{DAY}/a.parquet")]);
        // n2 flushes without the lease; n1's sync never saw that object and must not delete it.
        flush(&second, &two, "b.parquet");
        let synced = first.sync(&one).unwrap();
        assert_eq!((synced.put, synced.deleted), (0, 0));
        assert!(objects(&store).contains(&format!("{DAY}/b.parquet")));
        // n1 copies it down (the holder takes only what it never knew).
        let (live, coverage) = (LiveBuffer::new(), Coverage::unchecked());
        let got = first.refresh(&one, false, &live, &coverage).unwrap();
        assert_eq!(got.fetched, [format!("{DAY}/b.parquet")]);
        assert!(got.removed.is_empty());
        assert_eq!(got.days(), BTreeSet::from(["2026-11-30".parse().unwrap()]));
        // n1 compacts both nodes' files into one; its sync deletes them, recording the pass.
        fs::remove_file(one.join(DAY).join("a.parquet")).unwrap();
        fs::remove_file(one.join(DAY).join("b.parquet")).unwrap();
        fs::write(one.join(DAY).join("ab.parquet"), "ab").unwrap();
        let synced = first.sync(&one).unwrap();
        assert_eq!((synced.put, synced.deleted), (1, 2));
        let record = journal(&store);
        assert!(record.done && record.seq == 1, "{record:?}");
        assert_eq!(record.put, [format!("{DAY}/ab.parquet")]);
        // n2's copy follows: the compacted file in, both old files out.
        let got = second.refresh(&two, true, &live, &coverage).unwrap();
        assert_eq!(got.fetched, [format!("{DAY}/ab.parquet")]);
        assert_eq!(
            got.removed,
            [format!("{DAY}/a.parquet"), format!("{DAY}/b.parquet")]
        );
        assert_eq!(lake_files(&two), [format!("{DAY}/ab.parquet")]);
        assert_eq!(
            second.refresh(&two, true, &live, &coverage).unwrap(),
            Refreshed::default()
        );
        // n1 removes ab (compacted again) and stops before its sync; n2 flushes c meanwhile.
        fs::remove_file(one.join(DAY).join("ab.parquet")).unwrap();
        fs::write(one.join(DAY).join("abd.parquet"), "abd").unwrap();
        drop(first);
        flush(&second, &two, "c.parquet");
        // Restarted on its copy, n1 keeps it and still tells its own removal (ab: deleted)
        // from n2's new object (c: kept, then copied down).
        let again = holder(&store, &one);
        let synced = again.sync(&one).unwrap();
        assert_eq!((synced.put, synced.deleted), (1, 1));
        let in_bucket = objects(&store);
        assert!(
            in_bucket.contains(&format!("{DAY}/c.parquet")),
            "{in_bucket:?}"
        );
        assert!(
            !in_bucket.contains(&format!("{DAY}/ab.parquet")),
            "{in_bucket:?}"
        );
        let got = again.refresh(&one, false, &live, &coverage).unwrap();
        assert_eq!(got.fetched, [format!("{DAY}/c.parquet")]);
        assert_eq!(
            lake_files(&one),
            [format!("{DAY}/abd.parquet"), format!("{DAY}/c.parquet")]
        );
    }

    #[test]
    fn a_node_without_the_lease_sees_a_pass_under_way_before_or_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Refusing::new();
        let one = dir.path().join("n1");
        let first = first_writer(&store, &one);
        fs::write(one.join(DAY).join("b.parquet"), "b").unwrap();
        first.sync(&one).unwrap();
        let second = member(&store, "n2", &dir.path().join("n2"));
        let view = |second: &BucketLake| -> Vec<String> {
            let mut names: Vec<String> = second
                .block_on(second.consistent_listing())
                .unwrap()
                .into_keys()
                .collect();
            names.sort();
            names
        };
        let put = |name: &str| {
            futures::executor::block_on(store.inner.put(
                &object_store::path::Path::from(format!("prod/{name}")),
                PutPayload::from(name.as_bytes().to_vec()),
            ))
            .unwrap();
        };
        let delete = |name: &str| {
            futures::executor::block_on(
                store
                    .inner
                    .delete(&object_store::path::Path::from(format!("prod/{name}"))),
            )
            .unwrap();
        };
        let (a, b, ab, rollup) = (
            format!("{DAY}/a.parquet"),
            format!("{DAY}/b.parquet"),
            format!("{DAY}/ab.parquet"),
            "rollup.json".to_owned(),
        );
        // A pass compacting a and b into ab, with a rollup, recorded and under way.
        let record = SyncJournal {
            seq: 7,
            put: vec![ab.clone(), rollup.clone()],
            delete: vec![a.clone(), b.clone()],
            done: false,
        };
        futures::executor::block_on(second.write_journal(&record)).unwrap();
        assert_eq!(view(&second), [a.clone(), b.clone()], "nothing put yet");
        put(&ab);
        assert_eq!(
            view(&second),
            [a.clone(), b.clone()],
            "one of two puts: before"
        );
        put(&rollup);
        assert_eq!(
            view(&second),
            [ab.clone(), rollup.clone()],
            "puts made: after"
        );
        delete(&a);
        assert_eq!(
            view(&second),
            [ab.clone(), rollup.clone()],
            "deleting: after"
        );
        delete(&b);
        futures::executor::block_on(second.write_journal(&SyncJournal {
            done: true,
            ..record
        }))
        .unwrap();
        assert_eq!(view(&second), [ab, rollup], "done: the listing as it is");
    }

    #[test]
    fn a_whole_pass_leaves_a_finished_record_and_an_unreadable_record_stops_the_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Refusing::new();
        let root = dir.path().join("n1");
        let first = first_writer(&store, &root);
        first.sync(&root).unwrap();
        fs::remove_file(root.join(DAY).join("a.parquet")).unwrap();
        fs::write(root.join(DAY).join("c.parquet"), "c").unwrap();
        let synced = first.sync(&root).unwrap();
        assert_eq!((synced.put, synced.deleted), (1, 1));
        assert_eq!(
            objects(&store),
            [
                format!("{DAY}/c.parquet"),
                SYNC_JOURNAL.to_owned(),
                LEASE_OBJECT.to_owned()
            ]
        );
        let record = journal(&store);
        assert_eq!(
            record,
            SyncJournal {
                seq: 1,
                put: vec![format!("{DAY}/c.parquet")],
                delete: vec![format!("{DAY}/a.parquet")],
                done: true,
            }
        );
        assert_eq!(first.settle_unfinished_sync().unwrap(), Settled::Nothing);
        futures::executor::block_on(store.inner.put(
            &object_store::path::Path::from(format!("prod/{SYNC_JOURNAL}")),
            PutPayload::from_static(b"{not json"),
        ))
        .unwrap();
        let err = first.settle_unfinished_sync().unwrap_err().to_string();
        assert!(
            err.contains("sync.journal is unreadable") && err.contains("operator"),
            "{err}"
        );
    }

    #[test]
    fn a_renewal_whose_retry_is_refused_after_its_first_try_landed_keeps_the_lease() {
        let store = Refusing::new();
        let (lake, _) = writer(&store, "n1");
        *store.land_then_refuse.lock().unwrap() = Some(LEASE_OBJECT);
        lake.renew_lease().unwrap();
        assert!(lake.holds_lease());
        // The ETag it keeps is the lease's current one: the next renewal goes through.
        lake.renew_lease().unwrap();
        // A lease another node took is lost for good.
        let (other, _) = {
            std::thread::sleep(Duration::from_millis(2_100));
            writer(&store, "n2")
        };
        assert!(other.holds_lease());
        let err = lake.renew_lease().unwrap_err().to_string();
        assert!(err.contains("another node took the lease"), "{err}");
        assert!(!lake.holds_lease());
    }

    #[test]
    fn object_names_cannot_leave_the_local_directory() {
        let root = Path::new("/lake");
        assert_eq!(
            local_path(root, "events/date=2026-11-30/a.parquet").unwrap(),
            PathBuf::from("/lake/events/date=2026-11-30/a.parquet")
        );
        for bad in [
            "../etc/passwd",
            "events/../../x",
            "a//b",
            "/abs",
            "a/./b",
            "a\\..\\b",
        ] {
            assert!(local_path(root, bad).is_err(), "{bad}");
        }
        assert_eq!(
            relative_of(root, Path::new("/lake/events/date=2026-11-30/a.parquet")).unwrap(),
            "events/date=2026-11-30/a.parquet"
        );
        assert!(relative_of(root, Path::new("/elsewhere/a")).is_err());
    }
}
