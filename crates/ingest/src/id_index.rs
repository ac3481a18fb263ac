//! The on-disk index of flushed event ids: what lets the duplicate filter stay exact over its
//! whole window while memory holds only the ids that are not in Parquet yet.
//!
//! Every flush (and every bulk write) publishes, together with its events files, a *run*: the
//! sorted, distinct 64-bit id hashes ([`crate::dedup::id_hash`]) of the rows it wrote.
//!
//! ```text
//! <lake>/ids/<name>.ids    [hash u64 LE; n] [fence u64 LE; ceil(n / BLOCK)] [n u64] [written u64] "MSIDS001"
//! ```
//!
//! `written` is the Unix time (seconds) the newest of its ids was written. A run is dropped once
//! that is older than the duplicate window. Memory holds, per run, only its fences (the first
//! hash of every block of [`BLOCK`] hashes: 1/512 of the run), so start-up reads footers, not
//! ids, and a lookup is a binary search of the fences plus one 4 KiB positional read per run.
//! Runs of similar size are merged (streaming, by a k-way merge) so their number stays small.

use crate::IngestError;
use crate::lake::{self, Lake, StagedFile};
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Hashes per block: a lookup reads one block (4 KiB) per run.
pub const BLOCK: usize = 512;
const MAGIC: &[u8; 8] = b"MSIDS001";
const TRAILER: u64 = 8 + 8 + 8;
/// Runs merged at once when a size class has this many.
const MERGE_FAN_IN: usize = 8;

/// One run: an open file and its fences.
#[derive(Debug)]
struct Run {
    path: PathBuf,
    file: File,
    len: u64,
    fences: Vec<u64>,
    written: u64,
}

impl Run {
    fn open(path: &Path) -> Result<Run, IngestError> {
        let file = File::open(path).map_err(|e| IngestError::io(path, e))?;
        let size = file.metadata().map_err(|e| IngestError::io(path, e))?.len();
        let damaged = |why: &str| IngestError::CorruptIdIndex {
            path: path.to_owned(),
            message: why.to_owned(),
        };
        if size < TRAILER {
            return Err(damaged("shorter than its trailer"));
        }
        let mut trailer = [0u8; TRAILER as usize];
        file.read_exact_at(&mut trailer, size - TRAILER)
            .map_err(|e| IngestError::io(path, e))?;
        if &trailer[16..] != MAGIC {
            return Err(damaged("no trailer"));
        }
        let len = u64::from_le_bytes(trailer[..8].try_into().unwrap_or_default());
        let written = u64::from_le_bytes(trailer[8..16].try_into().unwrap_or_default());
        let blocks = len.div_ceil(BLOCK as u64);
        if size != (len + blocks) * 8 + TRAILER {
            return Err(damaged("size does not match its count"));
        }
        let mut raw = vec![0u8; blocks as usize * 8];
        file.read_exact_at(&mut raw, len * 8)
            .map_err(|e| IngestError::io(path, e))?;
        let fences = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        Ok(Run {
            path: path.to_owned(),
            file,
            len,
            fences,
            written,
        })
    }

    fn contains(&self, hash: u64) -> Result<bool, IngestError> {
        let after = self.fences.partition_point(|f| *f <= hash);
        let Some(block) = after.checked_sub(1) else {
            return Ok(false);
        };
        let start = block as u64 * BLOCK as u64;
        let count = (self.len - start).min(BLOCK as u64) as usize;
        let mut raw = vec![0u8; count * 8];
        self.file
            .read_exact_at(&mut raw, start * 8)
            .map_err(|e| IngestError::io(&self.path, e))?;
        let found = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect::<Vec<_>>()
            .binary_search(&hash)
            .is_ok();
        Ok(found)
    }

    /// The size class of the run: runs merge with others of the same class.
    fn class(&self) -> u32 {
        (self.len.max(1)).ilog(MERGE_FAN_IN as u64)
    }
}

/// The runs of a lake, shared by the commit thread (lookups), the flush thread (new runs) and
/// maintenance (merges, expiry).
#[derive(Debug)]
pub struct IdIndex {
    dir: PathBuf,
    runs: RwLock<Vec<Arc<Run>>>,
}

/// Opens every run in `dir` (footers only), moving aside the ones that cannot be read;
/// `remove_temps`: temporary files of runs never published go (at start, when none is staged).
fn open_runs(dir: &Path, remove_temps: bool) -> Result<Vec<Arc<Run>>, IngestError> {
    fs::create_dir_all(dir).map_err(|e| IngestError::io(dir, e))?;
    let mut runs = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| IngestError::io(dir, e))? {
        let path = entry.map_err(|e| IngestError::io(dir, e))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some(name) = name else { continue };
        if lake::is_temp_name(&name) {
            if remove_temps {
                let _ = fs::remove_file(&path);
            }
            continue;
        }
        if !name.ends_with(".ids") {
            continue;
        }
        match Run::open(&path) {
            Ok(run) => runs.push(Arc::new(run)),
            Err(e) => {
                tracing::warn!(error = %e, "an id index run cannot be read; moving it aside");
                let _ = fs::rename(&path, path.with_extension("damaged"));
            }
        }
    }
    Ok(runs)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes the sorted distinct `hashes` as a run file at `out`, fsynced.
fn write_run(
    out: &Path,
    hashes: impl Iterator<Item = std::io::Result<u64>>,
    written: u64,
) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 16, File::create(out)?);
    let mut fences = Vec::new();
    let mut len = 0u64;
    for h in hashes {
        let h = h?;
        if len.is_multiple_of(BLOCK as u64) {
            fences.push(h);
        }
        w.write_all(&h.to_le_bytes())?;
        len += 1;
    }
    for f in fences {
        w.write_all(&f.to_le_bytes())?;
    }
    w.write_all(&len.to_le_bytes())?;
    w.write_all(&written.to_le_bytes())?;
    w.write_all(MAGIC)?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// The run of the rows a flush is about to publish as `name` (their id hashes, any order).
pub(crate) fn stage_run(
    lake: &Lake,
    name: &str,
    mut hashes: Vec<u64>,
) -> Result<StagedFile, IngestError> {
    hashes.sort_unstable();
    hashes.dedup();
    let dir = lake.ids_dir();
    fs::create_dir_all(&dir).map_err(|e| IngestError::io(&dir, e))?;
    let name = format!("{}.ids", name.trim_end_matches(".parquet"));
    let path = dir.join(&name);
    let temp = lake::temp_path(&dir, &name);
    if let Err(e) = write_run(&temp, hashes.iter().map(|h| Ok(*h)), now_secs()) {
        let _ = fs::remove_file(&temp);
        return Err(IngestError::io(&temp, e));
    }
    let bytes = fs::metadata(&temp).map_or(0, |m| m.len());
    Ok(StagedFile::new(temp, path, hashes.len(), bytes))
}

impl IdIndex {
    /// Opens every run under the lake's `ids/` (footers only). A run that cannot be read is
    /// moved aside as `<name>.damaged` with a warning: its ids are no longer deduplicated,
    /// nothing else is lost.
    pub fn open(lake: &Lake) -> Result<IdIndex, IngestError> {
        let dir = lake.ids_dir();
        let runs = open_runs(&dir, true)?;
        Ok(IdIndex {
            dir,
            runs: RwLock::new(runs),
        })
    }

    /// Reads the runs under `ids/` again, after the local copy of a lake in a bucket took in
    /// other nodes' runs or lost runs the node holding the lease merged or dropped.
    pub(crate) fn reload(&self) -> Result<(), IngestError> {
        // A flush may be staging a run here: its temporary file stays.
        let runs = open_runs(&self.dir, false)?;
        *self.runs.write().unwrap_or_else(|p| p.into_inner()) = runs;
        Ok(())
    }

    fn runs(&self) -> Vec<Arc<Run>> {
        self.runs.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether `hash` is in a published run.
    pub fn contains(&self, hash: u64) -> Result<bool, IngestError> {
        for run in self.runs.read().unwrap_or_else(|p| p.into_inner()).iter() {
            if run.contains(hash)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Starts using the runs just published at `paths`.
    pub(crate) fn add(&self, paths: &[PathBuf]) -> Result<(), IngestError> {
        let mut opened = Vec::new();
        for p in paths {
            opened.push(Arc::new(Run::open(p)?));
        }
        self.runs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .extend(opened);
        Ok(())
    }

    /// Runs and ids held.
    pub fn stats(&self) -> (usize, u64) {
        let runs = self.runs();
        (runs.len(), runs.iter().map(|r| r.len).sum())
    }

    /// Drops runs whose newest id is older than `window`, then merges size classes that have
    /// [`MERGE_FAN_IN`] runs or more. Blocking; one class per call.
    pub fn maintain(&self, window: Duration) -> Result<(), IngestError> {
        let horizon = now_secs().saturating_sub(window.as_secs());
        let expired: Vec<Arc<Run>> = {
            let mut runs = self.runs.write().unwrap_or_else(|p| p.into_inner());
            let (old, keep): (Vec<_>, Vec<_>) = runs.drain(..).partition(|r| r.written < horizon);
            *runs = keep;
            old
        };
        for run in expired {
            fs::remove_file(&run.path).map_err(|e| IngestError::io(&run.path, e))?;
        }
        let runs = self.runs();
        let mut classes: std::collections::BTreeMap<u32, Vec<Arc<Run>>> = Default::default();
        for r in runs {
            classes.entry(r.class()).or_default().push(r);
        }
        let Some(group) = classes.into_values().find(|g| g.len() >= MERGE_FAN_IN) else {
            return Ok(());
        };
        self.merge(&group)
    }

    /// Replaces `group` by one run holding the union of their ids.
    fn merge(&self, group: &[Arc<Run>]) -> Result<(), IngestError> {
        let name = lake::new_file_name("merged");
        let name = format!("{}.ids", name.trim_end_matches(".parquet"));
        let path = self.dir.join(&name);
        let temp = lake::temp_path(&self.dir, &name);
        let written = group.iter().map(|r| r.written).max().unwrap_or(0);
        let merged = (|| -> std::io::Result<()> {
            let mut inputs = Vec::new();
            for r in group {
                inputs.push(RunReader::new(File::open(&r.path)?, r.len));
            }
            write_run(&temp, MergedHashes::new(inputs)?, written)
        })();
        if let Err(e) = merged {
            let _ = fs::remove_file(&temp);
            return Err(IngestError::io(&temp, e));
        }
        fs::rename(&temp, &path).map_err(|e| IngestError::io(&path, e))?;
        lake::sync_dir(&self.dir)?;
        let run = Arc::new(Run::open(&path)?);
        {
            let mut runs = self.runs.write().unwrap_or_else(|p| p.into_inner());
            runs.retain(|r| !group.iter().any(|g| Arc::ptr_eq(g, r)));
            runs.push(run);
        }
        // A crash before these deletions leaves ids in two runs: harmless.
        for r in group {
            fs::remove_file(&r.path).map_err(|e| IngestError::io(&r.path, e))?;
        }
        lake::sync_dir(&self.dir)
    }
}

/// The hashes of one run, front to back.
struct RunReader {
    input: BufReader<File>,
    left: u64,
}

impl RunReader {
    fn new(file: File, len: u64) -> RunReader {
        RunReader {
            input: BufReader::with_capacity(1 << 16, file),
            left: len,
        }
    }

    fn next(&mut self) -> std::io::Result<Option<u64>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let mut b = [0u8; 8];
        self.input.read_exact(&mut b)?;
        Ok(Some(u64::from_le_bytes(b)))
    }
}

/// The sorted union of several runs (a k-way merge; duplicates across runs appear once).
struct MergedHashes {
    inputs: Vec<RunReader>,
    heads: std::collections::BinaryHeap<std::cmp::Reverse<(u64, usize)>>,
    last: Option<u64>,
}

impl MergedHashes {
    fn new(mut inputs: Vec<RunReader>) -> std::io::Result<MergedHashes> {
        let mut heads = std::collections::BinaryHeap::new();
        for (i, input) in inputs.iter_mut().enumerate() {
            if let Some(h) = input.next()? {
                heads.push(std::cmp::Reverse((h, i)));
            }
        }
        Ok(MergedHashes {
            inputs,
            heads,
            last: None,
        })
    }
}

impl Iterator for MergedHashes {
    type Item = std::io::Result<u64>;

    fn next(&mut self) -> Option<std::io::Result<u64>> {
        while let Some(std::cmp::Reverse((h, i))) = self.heads.pop() {
            match self.inputs[i].next() {
                Ok(Some(next)) => self.heads.push(std::cmp::Reverse((next, i))),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            if self.last != Some(h) {
                self.last = Some(h);
                return Some(Ok(h));
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn publish(lake: &Lake, index: &IdIndex, name: &str, hashes: Vec<u64>) {
        let staged = stage_run(lake, name, hashes).unwrap();
        let path = staged.publish().unwrap();
        index.add(&[path]).unwrap();
    }

    #[test]
    fn finds_every_published_id_and_no_other_across_merges_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path()).unwrap();
        let index = IdIndex::open(&lake).unwrap();
        // Ten runs of 1,000 ids (odd numbers spread over the u64 range), some shared.
        let id = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for r in 0..10u64 {
            publish(
                &lake,
                &index,
                &format!("w{r}.parquet"),
                (r * 900..r * 900 + 1000).map(id).collect(),
            );
        }
        assert_eq!(index.stats(), (10, 10_000));
        let check = |index: &IdIndex| {
            for i in 0..9100 {
                assert!(index.contains(id(i)).unwrap(), "{i}");
                assert!(!index.contains(id(i) & !1).unwrap(), "{i} even");
            }
            assert!(!index.contains(id(9100)).unwrap());
        };
        check(&index);
        index.maintain(Duration::from_secs(3600)).unwrap();
        assert_eq!(index.stats(), (1, 9100), "one merged run, shared ids once");
        check(&index);
        let reopened = IdIndex::open(&lake).unwrap();
        check(&reopened);
        // Past the window, the run goes.
        reopened.maintain(Duration::ZERO).unwrap();
        assert_eq!(reopened.stats(), (0, 0));
    }

    #[test]
    fn a_damaged_run_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path()).unwrap();
        let index = IdIndex::open(&lake).unwrap();
        publish(&lake, &index, "a.parquet", vec![3, 1, 2]);
        let path = lake.ids_dir().join("a.ids");
        let mut bytes = fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 3);
        fs::write(&path, bytes).unwrap();
        let index = IdIndex::open(&lake).unwrap();
        assert_eq!(index.stats(), (0, 0));
        assert!(lake.ids_dir().join("a.damaged").exists());
    }
}
