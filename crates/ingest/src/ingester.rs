//! The ingest engine: one commit thread (group commit into the WAL, then the live buffer) and one
//! flush thread (live buffer → Parquet, then WAL truncation).
//!
//! Why threads and not tasks: fsync and Parquet encoding block for milliseconds; keeping them on
//! dedicated threads keeps the async runtime responsive (queries, health checks) under load.
//!
//! Order of a commit: filter duplicates → append to WAL → fsync → make rows visible → answer.
//! Order of a flush: seal the WAL segment → stage Parquet (fsynced temp files) → publish (rename +
//! drop rows from memory, atomically for queries) → delete WAL segments the files cover.
//! Order of a start: replay the WAL into the live buffer (no disk write, so a full disk cannot
//! stop a start) → the first flush writes those rows out like any others.
//!
//! Faults: a failed WAL write refuses its group (503 while it is transient) and the log stays
//! replayable (see [`crate::wal`]); a failed flush leaves the rows in memory and in the WAL and is
//! retried every flush interval; nothing acknowledged is dropped before it is in Parquet.

use crate::IngestError;
use crate::dedup::{DedupFilter, id_hash};
use crate::id_index::IdIndex;
use crate::lake::{self, Lake, LakeLock};
use crate::metrics::IngestMetrics;
use crate::wal::{self, WalRecord, WalWriter};
use modelshare_event::Event;
use modelshare_event::cube::Coverage;
use modelshare_event::live::LiveBuffer;
use modelshare_event::schema::events_to_batch;
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;

/// Tuning knobs; the defaults suit a small server.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Flush to Parquet once this many rows are buffered.
    pub flush_rows: usize,
    /// Flush buffered rows at least this often.
    pub flush_interval: Duration,
    /// Refuse new events (503) while this many rows wait in memory (flushes falling behind).
    pub max_buffered_rows: usize,
    /// Requests waiting for the commit thread before new ones are refused.
    pub queue_depth: usize,
    /// How long event ids and idempotency keys are remembered.
    pub dedup_window: Duration,
    /// Most idempotency keys remembered at once (oldest forgotten first).
    pub max_idempotency_keys: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            flush_rows: 1_000_000,
            flush_interval: Duration::from_secs(60),
            max_buffered_rows: 4_000_000,
            queue_depth: 4096,
            dedup_window: DEDUP_WINDOW,
            max_idempotency_keys: 1_000_000,
        }
    }
}

/// What happened to a submitted batch once it is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Receipt {
    /// Events newly stored.
    pub stored: usize,
    /// Events whose `event_id` was already stored (acknowledged, not stored twice).
    pub duplicates: usize,
}

/// A request for the commit thread.
#[derive(Debug)]
pub struct Submission {
    pub events: Vec<Event>,
    pub idempotency_key: Option<String>,
    /// Stored with the key and handed back on a retry (the HTTP layer keeps its answer here).
    pub annotation: Option<Vec<u8>>,
}

/// An earlier answer found under an idempotency key.
#[derive(Debug, Clone)]
pub struct Remembered {
    pub receipt: Receipt,
    pub annotation: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
struct IdempotencyCache {
    entries: HashMap<String, (Instant, Remembered)>,
    order: VecDeque<(Instant, String)>,
}

impl IdempotencyCache {
    fn insert(&mut self, key: String, value: Remembered, now: Instant, max: usize) {
        self.order.push_back((now, key.clone()));
        self.entries.insert(key, (now, value));
        while self.entries.len() > max {
            match self.order.pop_front() {
                Some((_, k)) => {
                    self.entries.remove(&k);
                }
                None => break,
            }
        }
    }

    fn expire(&mut self, now: Instant, ttl: Duration) {
        while let Some((t, _)) = self.order.front() {
            if now.duration_since(*t) <= ttl {
                break;
            }
            if let Some((t, k)) = self.order.pop_front() {
                // Only remove if the entry is the one this order slot refers to.
                if self.entries.get(&k).is_some_and(|(at, _)| *at == t) {
                    self.entries.remove(&k);
                }
            }
        }
    }
}

enum Command {
    Commit(Submission, oneshot::Sender<Result<Receipt, IngestError>>),
    /// Flush everything now and answer when it is in Parquet.
    Flush(oneshot::Sender<Result<(), IngestError>>),
    Shutdown,
}

struct FlushJob {
    batches: Vec<arrow::array::RecordBatch>,
    /// When the rows were taken: every id committed before is in this flush or an earlier one.
    taken_at: Instant,
    upto_segment: u64,
    done: Option<oneshot::Sender<Result<(), IngestError>>>,
    /// Signalled when the job is over (success or not), so the commit thread may start another.
    finished: mpsc::Sender<()>,
}

/// State shared by the handle, the commit thread and the flush thread.
#[derive(Debug)]
struct Shared {
    lake: Lake,
    config: IngestConfig,
    live: Arc<LiveBuffer>,
    coverage: Arc<Coverage>,
    /// The ids of published flushes, for the duplicate window.
    ids: IdIndex,
    /// `taken_at` of the newest flush that published: ids committed before it are in `ids`.
    flushed_before: Mutex<Option<Instant>>,
    /// Ids of events files that a crash published without their id run: memory holds them,
    /// and the next flush's run holds them too.
    unindexed: Mutex<Vec<u64>>,
    metrics: Arc<IngestMetrics>,
    idempotency: Mutex<IdempotencyCache>,
}

/// Handle to a running ingest engine. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Ingester {
    shared: Arc<Shared>,
    commands: SyncSender<Command>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    _lock: LakeLock,
}

impl Ingester {
    /// Opens the lake for writing: takes its lock, replays the WAL into Parquet, and starts the
    /// commit and flush threads.
    pub fn open(lake: Lake, config: IngestConfig) -> Result<Ingester, IngestError> {
        let lock = lake.lock()?;
        Self::open_locked(lake, lock, config)
    }

    /// [`Self::open`] for a caller that took the lake's lock already (to prepare the lake
    /// first, as a node of a lake in a bucket does).
    pub fn open_locked(
        lake: Lake,
        lock: LakeLock,
        config: IngestConfig,
    ) -> Result<Ingester, IngestError> {
        let live = Arc::new(LiveBuffer::new());
        let ids = open_id_index(&lake, config.dedup_window)?;
        let metrics = Arc::new(IngestMetrics::default());
        let shared = Arc::new(Shared {
            lake,
            config,
            live,
            coverage: Arc::new(Coverage::unchecked()),
            ids,
            flushed_before: Mutex::new(None),
            unindexed: Mutex::new(Vec::new()),
            metrics,
            idempotency: Mutex::new(IdempotencyCache::default()),
        });
        let mut dedup = DedupFilter::new();
        let last_segment = recover(&shared, &mut dedup)?;
        let wal = WalWriter::new(&shared.lake.wal_dir(), last_segment);

        let (commands, command_rx) = mpsc::sync_channel(shared.config.queue_depth);
        let (flush_tx, flush_rx) = mpsc::sync_channel::<FlushJob>(1);
        let flush_shared = Arc::clone(&shared);
        let flusher = std::thread::Builder::new()
            .name("modelshare-flush".into())
            .spawn(move || flush_loop(&flush_shared, flush_rx))
            .map_err(|e| IngestError::io(shared.lake.root(), e))?;
        let commit_shared = Arc::clone(&shared);
        let committer = std::thread::Builder::new()
            .name("modelshare-commit".into())
            .spawn(move || {
                CommitLoop {
                    shared: commit_shared,
                    wal,
                    dedup,
                    flush_tx,
                    flush_done: None,
                }
                .run(command_rx);
            })
            .map_err(|e| IngestError::io(shared.lake.root(), e))?;
        Ok(Ingester {
            shared,
            commands,
            threads: Mutex::new(vec![committer, flusher]),
            _lock: lock,
        })
    }

    /// The rows queries must see in addition to the lake's files.
    pub fn live(&self) -> Arc<LiveBuffer> {
        Arc::clone(&self.shared.live)
    }

    /// Which days queries may answer from the app-day cube (none until the first
    /// [`maintain_cube`](Self::maintain_cube) has checked the lake).
    pub fn coverage(&self) -> Arc<Coverage> {
        Arc::clone(&self.shared.coverage)
    }

    /// Drops id runs older than the duplicate window and merges small ones (blocking).
    pub fn maintain_ids(&self) -> Result<(usize, u64), IngestError> {
        self.shared.ids.maintain(self.shared.config.dedup_window)?;
        Ok(self.shared.ids.stats())
    }

    /// Whether this process may do the lake's work that must happen once (compaction, the
    /// cube's merges and summaries, id index merges, rollups, snapshots): always on a local
    /// lake; on a lake in a bucket, while it holds the writer lease.
    pub fn may_maintain(&self) -> bool {
        self.shared
            .lake
            .bucket()
            .is_none_or(|bucket| bucket.holds_lease() && !bucket.takeover_pending())
    }

    /// Brings what other nodes wrote into this node's copy of a lake in a bucket (blocking; see
    /// [`crate::bucket::BucketLake::refresh`]); nothing for a local lake. A node without the
    /// lease then learns from the files which days the cube answers for
    /// ([`Self::observe_cube`]), since it writes no cube file but its flushes'.
    /// `takeover`: the node has just taken the lease, and its copy becomes the bucket's state
    /// as a node without it would see it.
    pub fn refresh_from_bucket(
        &self,
        takeover: bool,
    ) -> Result<crate::bucket::Refreshed, IngestError> {
        let Some(bucket) = self.shared.lake.bucket() else {
            return Ok(crate::bucket::Refreshed::default());
        };
        let mirror = takeover || !bucket.holds_lease();
        let refreshed = bucket.refresh(
            self.shared.lake.root(),
            mirror,
            &self.shared.live,
            &self.shared.coverage,
        )?;
        if refreshed.touches_ids() {
            self.shared.ids.reload()?;
        }
        // The holder checks the days too: a flush of another node copied down without its cube
        // file (listed between its puts), or a day the holder rebuilt before one arrived, is
        // read raw until the next pass rebuilds it.
        if !refreshed.is_empty() {
            crate::app_days::observe(
                &self.shared.lake,
                &self.shared.live,
                &self.shared.coverage,
                Some(&refreshed.days()),
            )?;
        }
        Ok(refreshed)
    }

    /// The cube pass of a node that does not hold the lease (blocking; see
    /// [`crate::app_days::observe`]): which days the cube and its summaries answer for, read
    /// from the files, writing none.
    pub fn observe_cube(&self) -> Result<crate::app_days::Maintained, IngestError> {
        crate::app_days::observe(
            &self.shared.lake,
            &self.shared.live,
            &self.shared.coverage,
            None,
        )
    }

    /// The days of the lake (with events or cube files).
    pub fn cube_days(&self) -> Result<Vec<chrono::NaiveDate>, IngestError> {
        crate::app_days::days(&self.shared.lake)
    }

    /// One maintenance pass of the app-day cube (blocking; see [`crate::app_days::maintain`]).
    pub fn maintain_cube(&self) -> Result<crate::app_days::Maintained, IngestError> {
        crate::app_days::maintain(
            &self.shared.lake,
            &self.shared.live,
            &self.shared.coverage,
            crate::app_days::MERGE_ABOVE,
        )
    }

    /// The closed days whose hourly summary is missing or stale (blocking; see
    /// [`crate::hourly`]).
    pub fn hourly_jobs(&self) -> Result<Vec<crate::hourly::HourlyJob>, IngestError> {
        crate::hourly::pending(
            &self.shared.lake,
            &self.shared.live,
            &self.shared.coverage,
            chrono::Utc::now().date_naive(),
        )
    }

    /// Swaps in the hourly summary `rows` of `job` (blocking); false when the day's events
    /// files changed meanwhile.
    pub fn publish_hourly(
        &self,
        job: &crate::hourly::HourlyJob,
        rows: &[arrow::array::RecordBatch],
    ) -> Result<bool, IngestError> {
        crate::hourly::publish(
            &self.shared.lake,
            &self.shared.live,
            &self.shared.coverage,
            job,
            rows,
        )
    }

    pub fn metrics(&self) -> Arc<IngestMetrics> {
        Arc::clone(&self.shared.metrics)
    }

    pub fn lake(&self) -> &Lake {
        &self.shared.lake
    }

    /// Compacts every day that ended at least `grace` ago and has more files than it needs
    /// (blocking; see [`crate::compact`]). Stops at the first failure, which leaves that day as it
    /// was.
    pub fn compact_closed_days(
        &self,
        grace: Duration,
    ) -> Result<Vec<crate::compact::Compacted>, IngestError> {
        let now = chrono::Utc::now();
        let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        let mut done = Vec::new();
        for day in crate::compact::days(&self.shared.lake)? {
            let closes = day
                .succ_opt()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc());
            if closes.is_none_or(|end| end + grace > now) {
                continue;
            }
            let repeats = crate::compact::Repeats::of(&self.shared.lake);
            if let Some(c) =
                crate::compact::compact_day(&self.shared.lake, &self.shared.live, day, repeats)?
            {
                if c.duplicates > 0 {
                    // The day's cube counted the dropped rows: the day is read raw until the cube
                    // is folded again from the events (by the next pass, if this one fails).
                    tracing::info!(%day, rows = c.duplicates, "compaction dropped events two nodes both took; rebuilding the day's cube");
                    self.shared.coverage.set_raw(day, true);
                    self.shared.coverage.cube_changed([day]);
                    crate::app_days::rebuild_day(&self.shared.lake, &self.shared.live, day)?;
                    self.shared.coverage.rebuilt(day);
                }
                done.push(c);
            }
        }
        Ok(done)
    }

    /// Damaged WAL segments waiting in `wal/quarantine/` for an operator (file names).
    pub fn quarantined(&self) -> Vec<String> {
        wal::quarantined(&self.shared.lake.wal_dir())
            .into_iter()
            .filter_map(|(_, p)| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect()
    }

    /// The first answer given under `key`, if it was seen within the window.
    pub fn remembered(&self, key: &str) -> Option<Remembered> {
        let cache = self
            .shared
            .idempotency
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        cache.entries.get(key).map(|(_, r)| r.clone())
    }

    /// Makes `submission` durable. Resolves once its events are fsynced in the WAL and visible
    /// to queries; fails fast with [`IngestError::Backpressure`] when the engine is saturated.
    pub async fn submit(&self, submission: Submission) -> Result<Receipt, IngestError> {
        let buffered = self.shared.live.total_rows();
        if buffered + submission.events.len() > self.shared.config.max_buffered_rows {
            IngestMetrics::add(&self.shared.metrics.backpressure, 1);
            return Err(IngestError::Backpressure(format!(
                "{buffered} rows are waiting to be written to Parquet"
            )));
        }
        let (tx, rx) = oneshot::channel();
        match self.commands.try_send(Command::Commit(submission, tx)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                IngestMetrics::add(&self.shared.metrics.backpressure, 1);
                return Err(IngestError::Backpressure("commit queue is full".into()));
            }
            Err(TrySendError::Disconnected(_)) => return Err(IngestError::ShuttingDown),
        }
        rx.await.unwrap_or(Err(IngestError::ShuttingDown))
    }

    /// Blocking variant of [`submit`](Self::submit) for command-line use (waits for room
    /// instead of failing on a full queue).
    pub fn submit_blocking(&self, submission: Submission) -> Result<Receipt, IngestError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Commit(submission, tx))
            .map_err(|_| IngestError::ShuttingDown)?;
        rx.blocking_recv().unwrap_or(Err(IngestError::ShuttingDown))
    }

    /// Writes every buffered row to Parquet and waits for it (blocking).
    pub fn flush_blocking(&self) -> Result<(), IngestError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Flush(tx))
            .map_err(|_| IngestError::ShuttingDown)?;
        rx.blocking_recv().unwrap_or(Err(IngestError::ShuttingDown))
    }

    /// Commits what is queued, flushes everything to Parquet, and stops the threads
    /// (blocking). Idempotent.
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Ingester {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Rebuilds the duplicate filter and idempotency cache and replays the WAL into the live
/// buffer. Segments stay on disk until the first flush has written their rows; a torn tail is
/// cut, a damaged segment is quarantined after its good prefix is replayed. Returns the number
/// of the newest segment, or of the newest flush tag in the lake when that is higher.
fn recover(shared: &Shared, dedup: &mut DedupFilter) -> Result<u64, IngestError> {
    let wal_dir = shared.lake.wal_dir();
    // Before anything reads the lake's files: an interrupted compaction could otherwise show a
    // day's events twice (or not at all) to the duplicate filter and to queries.
    let journals = crate::compact::recover_journals(&shared.lake)?;
    if journals > 0 {
        tracing::warn!(days = journals, "finished interrupted compactions");
    }
    let stale = lake::remove_stale_temps(&shared.lake);
    if stale > 0 {
        tracing::info!(
            files = stale,
            "removed temporary files of interrupted flushes"
        );
    }
    let segments = wal::list_segments(&wal_dir)?;
    let now = Instant::now();
    // Flush files are tagged with WAL segment numbers; numbering goes on after the newest tag,
    // so a tag names one segment for the lake's whole life, not one per run of the server.
    let flushed: Vec<(std::path::PathBuf, u64)> = shared
        .lake
        .event_files()?
        .into_iter()
        .filter_map(|f| lake::flush_tag(&f).map(|tag| (f, tag)))
        .collect();
    let newest_tag = flushed.iter().map(|(_, tag)| *tag).max().unwrap_or(0);
    if let Some((oldest, _)) = segments.first() {
        remember_unindexed_flushes(shared, dedup, &flushed, *oldest, now)?;
    }

    // Ids already in Parquet (retries within the window, and the rows of a flush that was
    // published before the crash could delete its segments) are in the id index.
    let mut replayed = Vec::new();
    let mut skipped = 0usize;
    let mut idempotency = shared.idempotency.lock().unwrap_or_else(|p| p.into_inner());
    for (_, path) in &segments {
        let scan = wal::scan_segment(path)?;
        match &scan.damage {
            None => {}
            Some(wal::Damage::TornTail { offset, why }) => {
                tracing::warn!(path = %path.display(), offset, why, "cutting a torn wal tail (never acknowledged)");
                IngestMetrics::add(&shared.metrics.wal_torn_tails, 1);
                if let Err(e) = wal::truncate_segment(path, scan.good_len) {
                    // The writer never appends to an old segment, so the tail can stay.
                    tracing::warn!(error = %e, "could not cut the torn tail; it is skipped again next start");
                }
            }
            Some(wal::Damage::Middle {
                offset,
                why,
                salvageable,
            }) => {
                let kept = wal::quarantine(&wal_dir, path)?;
                IngestMetrics::add(&shared.metrics.wal_quarantined, 1);
                tracing::error!(
                    path = %path.display(),
                    offset,
                    why,
                    salvageable,
                    quarantine = %kept.display(),
                    "damaged wal segment: replaying its good prefix and keeping it in quarantine; \
                     run `modelshare wal check` and `modelshare wal salvage` with the server stopped"
                );
            }
        }
        for record in scan.records {
            let stored = record.events.len();
            for e in record.events {
                if is_new(dedup, &shared.ids, id_hash(&e.app_id, &e.event_id), now)? {
                    replayed.push(e);
                } else {
                    skipped += 1;
                }
            }
            if let Some(key) = record.idempotency_key {
                let receipt = Receipt {
                    stored,
                    duplicates: record.duplicates as usize,
                };
                let remembered = Remembered {
                    receipt,
                    annotation: record.annotation,
                };
                idempotency.insert(key, remembered, now, shared.config.max_idempotency_keys);
            }
        }
    }
    drop(idempotency);
    if !replayed.is_empty() {
        tracing::info!(
            events = replayed.len(),
            already_in_parquet = skipped,
            "replayed wal into memory; the first flush writes it out"
        );
        for chunk in replayed.chunks(REPLAY_BATCH_ROWS) {
            shared.live.append(events_to_batch(chunk));
        }
    }
    Ok(segments.last().map_or(0, |s| s.0).max(newest_tag))
}

/// A flush publishes its events files before its id run and deletes its WAL segments last, so
/// a crash in between leaves files, tagged with a segment still in the WAL, whose ids no run
/// holds. Their ids go to memory (the replay then skips those rows) and to the next flush's run.
fn remember_unindexed_flushes(
    shared: &Shared,
    dedup: &mut DedupFilter,
    flushed: &[(std::path::PathBuf, u64)],
    oldest_segment: u64,
    now: Instant,
) -> Result<(), IngestError> {
    let mut unindexed = Vec::new();
    for (file, tag) in flushed {
        if *tag >= oldest_segment {
            unindexed.extend(lake::read_id_hashes(file)?);
        }
    }
    if unindexed.is_empty() {
        return Ok(());
    }
    tracing::warn!(
        ids = unindexed.len(),
        "events files of a flush interrupted before its id run; their ids are indexed again"
    );
    for h in &unindexed {
        dedup.insert(*h, now);
    }
    *shared.unindexed.lock().unwrap_or_else(|p| p.into_inner()) = unindexed;
    Ok(())
}

/// Publishes the run of the ids [`remember_unindexed_flushes`] found, for a flush that has no
/// rows to carry them. Called only while no flush is in flight.
fn publish_unindexed(shared: &Shared) -> Result<(), IngestError> {
    let mut unindexed = shared.unindexed.lock().unwrap_or_else(|p| p.into_inner());
    if unindexed.is_empty() {
        return Ok(());
    }
    let name = lake::new_file_name("recovered");
    let staged = crate::id_index::stage_run(&shared.lake, &name, unindexed.clone())?;
    let path = staged.path.clone();
    lake::publish_all(vec![staged])?;
    shared.ids.add(&[path])?;
    unindexed.clear();
    Ok(())
}

/// Whether the id `hash` is new: neither in memory (committed, not yet in a published flush)
/// nor in the id index (published within the window). A new id is remembered in memory.
fn is_new(
    memory: &mut DedupFilter,
    index: &IdIndex,
    hash: u64,
    now: Instant,
) -> Result<bool, IngestError> {
    if memory.contains(hash) || index.contains(hash)? {
        return Ok(false);
    }
    memory.insert(hash, now);
    Ok(true)
}

/// Opens the lake's id index. A lake written before the index existed gets one first, from the
/// ids of its files written within `window` (what the duplicate filter used to read at every
/// start).
fn open_id_index(lake: &Lake, window: Duration) -> Result<IdIndex, IngestError> {
    if !lake.ids_dir().exists() {
        let since = SystemTime::now()
            .checked_sub(window)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut hashes = Vec::new();
        for file in lake.event_files()? {
            let recent = std::fs::metadata(&file)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= since);
            if recent {
                hashes.extend(
                    lake::read_event_keys(&file)?
                        .iter()
                        .map(|(app, id)| id_hash(app, id)),
                );
            }
        }
        let dir = lake.ids_dir();
        std::fs::create_dir_all(&dir).map_err(|e| IngestError::io(&dir, e))?;
        if !hashes.is_empty() {
            tracing::info!(
                ids = hashes.len(),
                "indexing the ids of recently written files"
            );
            crate::id_index::stage_run(lake, "recent.parquet", hashes)?.publish()?;
        }
    }
    IdIndex::open(lake)
}

/// How long an event id is remembered as seen, by default.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Rows per live-buffer batch when the WAL is replayed.
const REPLAY_BATCH_ROWS: usize = 65_536;

struct CommitLoop {
    shared: Arc<Shared>,
    wal: WalWriter,
    dedup: DedupFilter,
    flush_tx: SyncSender<FlushJob>,
    /// Set while a flush is in flight: its completion signal.
    flush_done: Option<Receiver<()>>,
}

impl CommitLoop {
    fn run(mut self, commands: Receiver<Command>) {
        let tick = Duration::from_millis(200);
        let mut oldest_pending: Option<Instant> = None;
        let mut last_expiry = Instant::now();
        loop {
            let first = match commands.recv_timeout(tick) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Command::Shutdown),
            };
            let mut group = Vec::new();
            let mut flush_waiters = Vec::new();
            let mut shutdown = false;
            let mut pending = first;
            // Group commit: everything already queued shares one write and one fsync.
            while let Some(cmd) = pending.take() {
                match cmd {
                    Command::Commit(s, reply) => group.push((s, reply)),
                    Command::Flush(reply) => flush_waiters.push(reply),
                    Command::Shutdown => shutdown = true,
                }
                if group.len() < 4096 {
                    pending = commands.try_recv().ok();
                }
            }
            if !group.is_empty() {
                self.commit(group);
            }
            // Rows waiting for a flush: just committed, replayed at start, or handed back by a
            // flush that failed (retried every interval until the fault clears).
            if self.shared.live.pending_rows() > 0 {
                oldest_pending.get_or_insert_with(Instant::now);
            }
            let now = Instant::now();
            if now.duration_since(last_expiry) > Duration::from_secs(10) {
                let flushed = *self
                    .shared
                    .flushed_before
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if let Some(before) = flushed {
                    self.dedup.forget_before(before);
                }
                let ttl = self.shared.config.dedup_window;
                self.shared
                    .idempotency
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .expire(now, ttl);
                last_expiry = now;
            }
            if shutdown || !flush_waiters.is_empty() {
                let result = self.flush_all();
                for w in flush_waiters {
                    let _ = w.send(result.clone());
                }
                oldest_pending = None;
                if shutdown {
                    if let Err(e) = result {
                        tracing::error!(error = %e, "final flush failed; rows stay in the wal");
                    }
                    return;
                }
                continue;
            }
            let pending_rows = self.shared.live.pending_rows();
            let due = pending_rows >= self.shared.config.flush_rows
                || oldest_pending.is_some_and(|t| {
                    pending_rows > 0 && t.elapsed() >= self.shared.config.flush_interval
                });
            if due && self.start_flush(None) {
                oldest_pending = None;
            }
        }
    }

    fn commit(&mut self, group: Vec<(Submission, oneshot::Sender<Result<Receipt, IngestError>>)>) {
        let now = Instant::now();
        let mut encoded = Vec::new();
        let mut inserted = Vec::new();
        let mut outcomes = Vec::with_capacity(group.len());
        let mut fresh_all = Vec::new();
        let mut keys = Vec::new();
        let mut index_fault = None;
        for (submission, reply) in group {
            let mut fresh = Vec::with_capacity(submission.events.len());
            let mut duplicates = 0usize;
            for e in submission.events {
                let h = id_hash(&e.app_id, &e.event_id);
                match is_new(&mut self.dedup, &self.shared.ids, h, now) {
                    Ok(true) => {
                        inserted.push(h);
                        fresh.push(e);
                    }
                    Ok(false) => duplicates += 1,
                    Err(e) => {
                        index_fault.get_or_insert(e);
                    }
                }
            }
            let record = WalRecord {
                idempotency_key: submission.idempotency_key,
                annotation: submission.annotation,
                duplicates: duplicates as u32,
                events: fresh,
            };
            record.encode_into(&mut encoded);
            let receipt = Receipt {
                stored: record.events.len(),
                duplicates,
            };
            if let Some(k) = record.idempotency_key {
                keys.push((
                    k,
                    Remembered {
                        receipt,
                        annotation: record.annotation,
                    },
                ));
            }
            fresh_all.extend(record.events);
            outcomes.push((reply, receipt));
        }
        let metrics = &self.shared.metrics;
        // An id the index could not be asked about might be a duplicate: refuse the group.
        let appended = match index_fault {
            Some(e) => Err(e),
            None => self.wal.append_durable(&encoded),
        };
        match appended {
            Ok(()) => {
                IngestMetrics::add(&metrics.wal_bytes, encoded.len() as u64);
                IngestMetrics::add(&metrics.wal_fsyncs, 1);
                IngestMetrics::add(&metrics.events_stored, fresh_all.len() as u64);
                if !fresh_all.is_empty() {
                    self.shared.live.append(events_to_batch(&fresh_all));
                }
                {
                    let max = self.shared.config.max_idempotency_keys;
                    let mut cache = self
                        .shared
                        .idempotency
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    for (k, r) in keys {
                        cache.insert(k, r, now, max);
                    }
                }
                for (reply, receipt) in outcomes {
                    IngestMetrics::add(&metrics.events_duplicate, receipt.duplicates as u64);
                    let _ = reply.send(Ok(receipt));
                }
            }
            Err(e) => {
                // The log stays replayable: the writer sealed the segment at its last good
                // record and tried the group once more in a fresh one before giving up.
                tracing::error!(error = %e, "wal append failed; refusing the group");
                IngestMetrics::add(&metrics.wal_write_errors, 1);
                self.dedup.rollback(&inserted);
                for (reply, _) in outcomes {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Hands the buffered rows to the flush thread; false when a flush is still in flight.
    fn start_flush(&mut self, done: Option<oneshot::Sender<Result<(), IngestError>>>) -> bool {
        if let Some(rx) = &self.flush_done {
            match rx.try_recv() {
                Ok(()) | Err(mpsc::TryRecvError::Disconnected) => self.flush_done = None,
                Err(mpsc::TryRecvError::Empty) => return false,
            }
        }
        let upto_segment = self.wal.seal();
        let Some(batches) = self.shared.live.begin_flush() else {
            // Nothing in memory: every record up to here is in Parquet already (or was a
            // duplicate), so the segments can go once a run holds every id they logged.
            let cleared = publish_unindexed(&self.shared).and_then(|()| {
                wal::remove_segments_upto(&self.shared.lake.wal_dir(), upto_segment)
            });
            if let Err(e) = cleared {
                tracing::warn!(error = %e, "could not remove flushed wal segments; next flush retries");
            }
            if let Some(d) = done {
                let _ = d.send(Ok(()));
            }
            return true;
        };
        let (finished_tx, finished_rx) = mpsc::channel();
        self.flush_done = Some(finished_rx);
        let job = FlushJob {
            batches,
            taken_at: Instant::now(),
            upto_segment,
            done,
            finished: finished_tx,
        };
        if self.flush_tx.send(job).is_err() {
            self.shared.live.abort_flush();
            self.flush_done = None;
            return false;
        }
        true
    }

    /// Waits for any flush in flight, then flushes everything buffered and waits for that too.
    fn flush_all(&mut self) -> Result<(), IngestError> {
        if let Some(rx) = self.flush_done.take() {
            let _ = rx.recv();
        }
        let (tx, rx) = oneshot::channel();
        if !self.start_flush(Some(tx)) {
            return Err(IngestError::Backpressure("flush could not start".into()));
        }
        let result = rx.blocking_recv().unwrap_or(Err(IngestError::ShuttingDown));
        if let Some(rx) = self.flush_done.take() {
            let _ = rx.recv();
        }
        result
    }
}

fn flush_loop(shared: &Shared, jobs: Receiver<FlushJob>) {
    for job in jobs {
        let started = Instant::now();
        let rows: usize = job.batches.iter().map(|b| b.num_rows()).sum();
        // A panic (a bug, or a library's) must not end this thread: no flush would run again.
        // It fails this flush like an I/O error; the rows stay in memory and the WAL.
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| flush_once(shared, &job)))
                .unwrap_or_else(|_| {
                    Err(IngestError::io(
                        shared.lake.root(),
                        std::io::Error::other(
                            "the flush panicked; its rows stay in memory and the wal",
                        ),
                    ))
                });
        let metrics = &shared.metrics;
        match &result {
            Ok(bytes) => {
                IngestMetrics::add(&metrics.flushes, 1);
                IngestMetrics::add(&metrics.flushed_rows, rows as u64);
                IngestMetrics::add(&metrics.flushed_bytes, *bytes);
                IngestMetrics::add(&metrics.flush_micros, started.elapsed().as_micros() as u64);
                tracing::debug!(
                    rows,
                    bytes,
                    ms = started.elapsed().as_millis() as u64,
                    "flushed"
                );
            }
            Err(e) => {
                IngestMetrics::add(&metrics.flush_errors, 1);
                tracing::error!(error = %e, rows, "flush failed; rows stay in memory and wal");
                shared.live.abort_flush();
            }
        }
        if let Some(done) = job.done {
            let _ = done.send(result.map(|_| ()));
        }
        let _ = job.finished.send(());
    }
}

fn flush_once(shared: &Shared, job: &FlushJob) -> Result<u64, IngestError> {
    // Only this thread changes the list after start-up; it is cleared once a run holds it.
    let unindexed = shared
        .unindexed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let staged = lake::stage_batches(
        &shared.lake,
        &job.batches,
        &lake::flush_file_tag(job.upto_segment),
        lake::IdRun::RowsAnd(&unindexed),
    )?;
    let bytes = staged.iter().map(|f| f.bytes).sum();
    let runs: Vec<std::path::PathBuf> = staged
        .iter()
        .filter(|f| f.path.starts_with(shared.lake.ids_dir()))
        .map(|f| f.path.clone())
        .collect();
    let days: Vec<chrono::NaiveDate> = staged.iter().filter_map(|f| f.day()).collect();
    // A lake in a bucket holds the files before this node does: the WAL segments go only after
    // both (below). The gate keeps the bucket's sync from listing between the two.
    let bucket = shared.lake.bucket();
    let _gate = bucket.map(|b| b.gate());
    if let Some(b) = bucket
        && let Err(e) = b.put_staged(shared.lake.root(), &staged)
    {
        staged.into_iter().for_each(lake::StagedFile::discard);
        return Err(e);
    }
    shared.live.publish_flush(|| {
        lake::publish_all(staged)?;
        // In the same step: a query that sees the new cube files must not use the old cells.
        shared.coverage.cube_changed(days);
        Ok::<(), IngestError>(())
    })?;
    drop(_gate);
    shared
        .unindexed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    // The ids are in a published run now; from the next expiry on, memory need not hold them.
    if let Err(e) = shared.ids.add(&runs) {
        // Not lost: the run is on disk and opened at the next start. Until then memory keeps
        // the ids (the flush does not count as published for the duplicate filter).
        tracing::error!(error = %e, "cannot open the id run of a published flush");
    } else {
        *shared
            .flushed_before
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(job.taken_at);
    }
    // The rows are in Parquet now. Segments that cannot be deleted are harmless: a restart skips
    // their events as duplicates of the files tagged with their numbers, and the next flush
    // deletes them.
    if let Err(e) = wal::remove_segments_upto(&shared.lake.wal_dir(), job.upto_segment) {
        tracing::warn!(error = %e, "could not remove flushed wal segments; next flush retries");
    }
    Ok(bytes)
}
