//! Published snapshots under `<lake>/snapshots/`: names (`2026-W47.r2`), the JSON manifest next
//! to each file (what it was built from), listing, verification, and publishing new revisions
//! atomically without ever touching a published file.
//!
//! ```text
//! <lake>/snapshots/
//!   LOCK                  held while a process builds snapshots
//!   2026-W47.r1.json      manifest of revision 1 (written before the Parquet file)
//!   2026-W47.r1.parquet   revision 1, never modified
//!   2026-W47.r2.json
//!   2026-W47.r2.parquet   published when a rebuild gave different rows
//! ```
//!
//! Revisions of an older schema version (files without the `context` column) stay listed,
//! served and verifiable as they are. A week whose latest revision has an older layout is
//! rebuilt once by the [`Refresher`], as when its events change: the rows of the current layout
//! hash differently (the schema version heads the canonical text), so the rebuild always
//! publishes them as the next revision, and from then on the week's latest revision has the
//! current columns. A week whose events are no longer in the lake keeps its older revision.

use crate::build::{
    GENERATOR, SNAPSHOT_SCHEMA_VERSION, aggregate, content_hash_as, keys, read_file, write_file,
};
use crate::source::{SourceFile, week_sources, weeks_with_data};
use crate::{IsoWeek, SnapshotError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The name of one revision of a week's snapshot: `2026-W47.r1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotName {
    pub week: IsoWeek,
    /// 1 for the first build; one more for every rebuild that changed the rows.
    pub revision: u32,
}

/// Largest revision number a name may carry.
pub const MAX_REVISION: u32 = 999_999;

impl SnapshotName {
    /// The Parquet file name, `2026-W47.r1.parquet`.
    pub fn file_name(&self) -> String {
        format!("{self}.parquet")
    }

    /// The manifest file name, `2026-W47.r1.json`.
    pub fn manifest_name(&self) -> String {
        format!("{self}.json")
    }
}

impl fmt::Display for SnapshotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.r{}", self.week, self.revision)
    }
}

impl FromStr for SnapshotName {
    type Err = SnapshotError;

    /// Exactly `YYYY-Www.rN` with N in 1..=999999 and no leading zero; anything else (paths,
    /// extensions, encoded characters) is refused.
    fn from_str(s: &str) -> Result<SnapshotName, SnapshotError> {
        let bad = || {
            SnapshotError::BadName(format!(
                "{s:?} is not a snapshot name; expected YYYY-Www.rN, e.g. 2026-W47.r1"
            ))
        };
        let (week, rev) = s.split_once(".r").ok_or_else(bad)?;
        let week: IsoWeek = week.parse().map_err(|_| bad())?;
        if rev.is_empty()
            || rev.len() > 6
            || rev.starts_with('0')
            || !rev.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let revision: u32 = rev.parse().map_err(|_| bad())?;
        Ok(SnapshotName { week, revision })
    }
}

/// What a revision was built from and what it holds; stored as `<name>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub week: String,
    pub revision: u32,
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    /// sha256 of the Parquet file's bytes (hex).
    pub sha256: String,
    /// sha256 of the canonical row content (hex), also in the file's metadata.
    pub content_sha256: String,
    pub schema_version: String,
    pub generator: String,
    pub min_apps: u64,
    /// The events files the revision was built from, relative to `<lake>/events/`.
    pub sources: Vec<SourceFile>,
}

/// One published snapshot file, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    /// `2026-W47.r1`
    pub name: String,
    pub week: String,
    pub revision: u32,
    /// `2026-W47.r1.parquet`
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
    pub content_sha256: String,
    /// The file's layout (`modelshare.snapshot.schema_version`).
    #[serde(skip)]
    pub schema_version: String,
    #[serde(skip)]
    pub path: PathBuf,
    #[serde(skip)]
    pub sources: Option<Vec<SourceFile>>,
}

impl SnapshotInfo {
    /// The typed name (listing only returns files whose names parse).
    pub fn snapshot_name(&self) -> Option<SnapshotName> {
        self.name.parse().ok()
    }
}

/// `<lake>/snapshots`
pub fn snapshots_dir(lake_root: &Path) -> PathBuf {
    lake_root.join("snapshots")
}

/// Every published snapshot of the lake, ordered by week then revision. A file whose manifest is
/// missing or does not match it (a crash between the two renames cannot cause this, since the
/// manifest is written first, but an operator may delete one) is described from its own bytes.
pub fn list(lake_root: &Path) -> Result<Vec<SnapshotInfo>, SnapshotError> {
    let dir = snapshots_dir(lake_root);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SnapshotError::io(&dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| SnapshotError::io(&dir, e))?;
        let file = entry.file_name().to_string_lossy().into_owned();
        if let Some(name) = file
            .strip_suffix(".parquet")
            .and_then(|n| n.parse::<SnapshotName>().ok())
            .filter(|n| n.file_name() == file)
        {
            names.push(name);
        }
    }
    names.sort();
    names.iter().map(|n| describe(&dir, *n)).collect()
}

/// The published snapshot called `name`, if any.
pub fn find(lake_root: &Path, name: SnapshotName) -> Result<Option<SnapshotInfo>, SnapshotError> {
    let dir = snapshots_dir(lake_root);
    if !dir.join(name.file_name()).is_file() {
        return Ok(None);
    }
    describe(&dir, name).map(Some)
}

/// The latest revision of `week`, if any.
pub fn latest(lake_root: &Path, week: IsoWeek) -> Result<Option<SnapshotInfo>, SnapshotError> {
    Ok(list(lake_root)?
        .into_iter()
        .filter(|s| s.week == week.to_string())
        .max_by_key(|s| s.revision))
}

fn describe(dir: &Path, name: SnapshotName) -> Result<SnapshotInfo, SnapshotError> {
    let path = dir.join(name.file_name());
    let bytes = fs::metadata(&path)
        .map_err(|e| SnapshotError::io(&path, e))?
        .len();
    let manifest = read_manifest(&dir.join(name.manifest_name()))
        .filter(|m| m.name == name.to_string() && m.bytes == bytes);
    match manifest {
        Some(m) => Ok(SnapshotInfo {
            name: m.name,
            week: m.week,
            revision: m.revision,
            file: m.file,
            rows: m.rows,
            bytes,
            sha256: m.sha256,
            content_sha256: m.content_sha256,
            schema_version: m.schema_version,
            path,
            sources: Some(m.sources),
        }),
        None => {
            let (rows, kv) = read_file(&path)?;
            Ok(SnapshotInfo {
                name: name.to_string(),
                week: name.week.to_string(),
                revision: name.revision,
                file: name.file_name(),
                rows: rows.len() as u64,
                bytes,
                sha256: file_sha256(&path)?,
                content_sha256: kv.get(keys::CONTENT_SHA256).cloned().unwrap_or_default(),
                schema_version: kv.get(keys::SCHEMA_VERSION).cloned().unwrap_or_default(),
                path,
                sources: None,
            })
        }
    }
}

fn read_manifest(path: &Path) -> Option<Manifest> {
    let text = fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Hex sha256 of a file's bytes.
pub fn file_sha256(path: &Path) -> Result<String, SnapshotError> {
    let mut file = File::open(path).map_err(|e| SnapshotError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| SnapshotError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Checks a published file against its listing: the file's sha256, its metadata, and the
/// content hash recomputed from the rows read back in the layout of the file's schema version.
pub fn verify(info: &SnapshotInfo) -> Result<(), SnapshotError> {
    let fail = |message: String| SnapshotError::Corrupt {
        path: info.path.clone(),
        message,
    };
    let actual = file_sha256(&info.path)?;
    if actual != info.sha256 {
        return Err(fail(format!(
            "sha256 is {actual}, listed as {}",
            info.sha256
        )));
    }
    let (rows, kv) = read_file(&info.path)?;
    let name: SnapshotName = info.name.parse()?;
    let version = kv
        .get(keys::SCHEMA_VERSION)
        .map(String::as_str)
        .unwrap_or("");
    let recomputed = content_hash_as(version, name.week, &rows).map_err(|e| fail(e.to_string()))?;
    let expect = [
        (keys::WEEK, name.week.to_string()),
        (keys::REVISION, name.revision.to_string()),
        (keys::ROWS, rows.len().to_string()),
        (keys::CONTENT_SHA256, recomputed),
    ];
    for (key, want) in expect {
        let got = kv.get(key).map(String::as_str).unwrap_or("");
        if got != want {
            return Err(fail(format!(
                "metadata {key} is {got:?}, the rows say {want:?}"
            )));
        }
    }
    if info.content_sha256 != kv.get(keys::CONTENT_SHA256).cloned().unwrap_or_default() {
        return Err(fail(
            "manifest content_sha256 differs from the file's".into(),
        ));
    }
    Ok(())
}

/// What a build did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOutcome {
    /// A new revision was published.
    Published(SnapshotInfo),
    /// The rows equal the latest revision's; nothing was written.
    Unchanged(SnapshotInfo),
    /// The week has no events in the lake; nothing was written.
    Empty,
    /// The week has events but no base cell with `min_apps` apps: nothing to publish, nothing
    /// was written.
    NothingPublishable,
}

/// Held while a process builds snapshots of a lake (the server's background task and
/// `modelshare export` may run side by side).
#[derive(Debug)]
pub struct SnapshotLock {
    _file: File,
}

/// Takes the snapshot builder lock, waiting for another builder to finish.
pub fn lock(lake_root: &Path) -> Result<SnapshotLock, SnapshotError> {
    let dir = snapshots_dir(lake_root);
    fs::create_dir_all(&dir).map_err(|e| SnapshotError::io(&dir, e))?;
    let path = dir.join(modelshare_ingest::lake::LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| SnapshotError::io(&path, e))?;
    file.lock().map_err(|e| SnapshotError::io(&path, e))?;
    Ok(SnapshotLock { _file: file })
}

/// Builds the snapshot of `week` from the lake's files and publishes it as a new revision when
/// its rows differ from the latest revision's (or there is none). Does not check that the week
/// is closed: callers decide (see [`IsoWeek::is_closed`]).
pub fn build_week(
    lake_root: &Path,
    week: IsoWeek,
    min_apps: u64,
) -> Result<BuildOutcome, SnapshotError> {
    let _lock = lock(lake_root)?;
    let dir = snapshots_dir(lake_root);
    remove_stale_temps(&dir);
    let sources = week_sources(lake_root, week)?;
    if sources.is_empty() {
        return Ok(BuildOutcome::Empty);
    }
    let rows = aggregate(lake_root, week, &sources, min_apps)?;
    if rows.rows.is_empty() {
        return Ok(BuildOutcome::NothingPublishable);
    }
    let previous = latest(lake_root, week)?;
    if let Some(prev) = &previous
        && prev.content_sha256 == rows.content_sha256
    {
        return Ok(BuildOutcome::Unchanged(prev.clone()));
    }
    let revision = previous.map_or(1, |p| p.revision + 1);
    if revision > MAX_REVISION {
        return Err(SnapshotError::BadName(format!(
            "{week} already has {MAX_REVISION} revisions"
        )));
    }
    let name = SnapshotName { week, revision };
    let bytes = write_file(&rows, revision, min_apps)?;
    let manifest = Manifest {
        name: name.to_string(),
        week: week.to_string(),
        revision,
        file: name.file_name(),
        rows: rows.rows.len() as u64,
        bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
        content_sha256: rows.content_sha256.clone(),
        schema_version: SNAPSHOT_SCHEMA_VERSION.to_owned(),
        generator: GENERATOR.to_owned(),
        min_apps,
        sources: sources.clone(),
    };
    let mut json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| SnapshotError::Schema(format!("manifest: {e}")))?;
    json.push(b'\n');
    // The manifest first: a listed Parquet file always has its manifest next to it.
    write_atomically(&dir.join(name.manifest_name()), &json, false)?;
    write_atomically(&dir.join(name.file_name()), &bytes, true)?;
    tracing::info!(snapshot = %name, rows = manifest.rows, bytes = manifest.bytes, "published snapshot");
    withdraw_older_rule(&dir, lake_root, week)?;
    Ok(BuildOutcome::Published(SnapshotInfo {
        name: manifest.name,
        week: manifest.week,
        revision,
        file: manifest.file,
        rows: manifest.rows,
        bytes: manifest.bytes,
        sha256: manifest.sha256,
        content_sha256: manifest.content_sha256,
        schema_version: manifest.schema_version,
        path: dir.join(name.file_name()),
        sources: Some(sources),
    }))
}

/// Removes the revisions of `week` written under an older publication rule (schema versions
/// before [`SNAPSHOT_SCHEMA_VERSION`]: whole base cells, where the current rule sums
/// publishable groups). Kept beside a current revision, their totals minus its totals would be
/// the small groups the current rule withholds. Called once a current revision is published.
fn withdraw_older_rule(dir: &Path, lake_root: &Path, week: IsoWeek) -> Result<(), SnapshotError> {
    let week_s = week.to_string();
    for old in list(lake_root)?
        .into_iter()
        .filter(|s| s.week == week_s && s.schema_version != SNAPSHOT_SCHEMA_VERSION)
    {
        let Some(name) = old.snapshot_name() else {
            continue;
        };
        // The file first: a listed Parquet file always has its manifest next to it.
        for path in [dir.join(name.file_name()), dir.join(name.manifest_name())] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(SnapshotError::io(&path, e)),
            }
        }
        tracing::info!(snapshot = %name, schema_version = %old.schema_version, "withdrew a revision written under an older publication rule");
    }
    Ok(())
}

fn remove_stale_temps(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with('.') && n.ends_with(".tmp") {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// Writes `bytes` to `path` so that it appears whole or not at all: a temporary file in the same
/// directory, fsync, rename, fsync of the directory. With `no_clobber`, refuses to replace an
/// existing file (published snapshots are immutable).
pub fn write_atomically(path: &Path, bytes: &[u8], no_clobber: bool) -> Result<(), SnapshotError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| SnapshotError::io(path, std::io::Error::other("not a file path")))?
        .to_string_lossy()
        .into_owned();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = File::create(&temp).map_err(|e| SnapshotError::io(path, e))?;
        f.write_all(bytes).map_err(|e| SnapshotError::io(path, e))?;
        f.sync_all().map_err(|e| SnapshotError::io(path, e))?;
        if no_clobber {
            // hard_link fails when the target exists, unlike rename.
            fs::hard_link(&temp, path).map_err(|e| SnapshotError::io(path, e))?;
            fs::remove_file(&temp).map_err(|e| SnapshotError::io(&temp, e))?;
        } else {
            fs::rename(&temp, path).map_err(|e| SnapshotError::io(path, e))?;
        }
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| SnapshotError::io(&dir, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Keeps the snapshots of closed weeks up to date; remembers which source files each week was
/// last checked against, so an unchanged lake costs one directory listing per week.
#[derive(Debug)]
pub struct Refresher {
    lake_root: PathBuf,
    min_apps: u64,
    grace: Duration,
    checked: HashMap<IsoWeek, Vec<SourceFile>>,
}

impl Refresher {
    pub fn new(lake_root: impl Into<PathBuf>, min_apps: u64, grace: Duration) -> Refresher {
        Refresher {
            lake_root: lake_root.into(),
            min_apps,
            grace,
            checked: HashMap::new(),
        }
    }

    /// Builds every closed week (as of `now`) that has no snapshot yet, whose source files
    /// changed since its latest revision (or since the last check), or whose latest revision
    /// has an older schema version; returns what was published.
    pub fn refresh(&mut self, now: DateTime<Utc>) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        let mut published = Vec::new();
        let existing = list(&self.lake_root)?;
        for week in weeks_with_data(&self.lake_root)? {
            if !week.is_closed(now, self.grace) {
                continue;
            }
            let sources = week_sources(&self.lake_root, week)?;
            if self.checked.get(&week) == Some(&sources) {
                continue;
            }
            let week_s = week.to_string();
            let up_to_date = existing
                .iter()
                .filter(|s| s.week == week_s)
                .max_by_key(|s| s.revision)
                .is_some_and(|s| {
                    s.sources.as_ref() == Some(&sources)
                        && s.schema_version == SNAPSHOT_SCHEMA_VERSION
                });
            if !up_to_date
                && let BuildOutcome::Published(info) =
                    build_week(&self.lake_root, week, self.min_apps)?
            {
                published.push(info);
            }
            self.checked.insert(week, sources);
        }
        // A revision of an older rule listed beside a current one (a stop between publishing
        // the current revision and withdrawing the older ones) is withdrawn now. Weeks built in
        // this pass were withdrawn by their build; weeks with no current revision keep theirs.
        let weeks_of = |current: bool| -> BTreeSet<&str> {
            existing
                .iter()
                .filter(|s| (s.schema_version == SNAPSHOT_SCHEMA_VERSION) == current)
                .map(|s| s.week.as_str())
                .collect()
        };
        let superseded: Vec<IsoWeek> = weeks_of(false)
            .intersection(&weeks_of(true))
            .filter_map(|w| w.parse().ok())
            .collect();
        for week in superseded {
            withdraw_superseded(&self.lake_root, week)?;
        }
        Ok(published)
    }
}

/// Withdraws `week`'s revisions of an older rule when its latest revision is of the current
/// one (see [`withdraw_older_rule`]), under the snapshot lock.
fn withdraw_superseded(lake_root: &Path, week: IsoWeek) -> Result<(), SnapshotError> {
    let _lock = lock(lake_root)?;
    if latest(lake_root, week)?.is_some_and(|l| l.schema_version == SNAPSHOT_SCHEMA_VERSION) {
        withdraw_older_rule(&snapshots_dir(lake_root), lake_root, week)?;
    }
    Ok(())
}
