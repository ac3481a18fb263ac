//! Write-ahead log: numbered segment files of checksummed records.
//!
//! ```text
//! segment  := MAGIC record*
//! record   := len:u32 crc32:u32 payload[len]
//! payload  := flags:u8 key:str? annotation:opt_bytes duplicates:u32 count:u32 event*
//! ```
//!
//! `flags` bit 0: the idempotency key follows; bit 1: events carry the agent fields (records
//! written before those existed have bit 1 clear and still replay).
//!
//! A record is acknowledged only after the segment is fsynced. What this module promises, and
//! why each rule is there:
//!
//! - **Nothing is ever appended after a torn record.** A write or fsync that fails may leave part
//!   of a record on disk. The writer then cuts the segment back to its last good record (best
//!   effort), never writes to it again, and rewrites the group once into a fresh segment. So a
//!   torn record can only ever be the *tail* of a segment, whichever segment it is.
//! - **An fsync error is never retried on the same file and taken as success** (after a failed
//!   fsync the kernel may drop the dirty pages and report success next time): the group goes
//!   to a new segment or is refused, and is acknowledged only after an fsync that succeeded.
//! - **Sealing costs no disk write and creation is idempotent.** Rotation just closes the
//!   current segment; the next append creates the following one, reusing a leftover file that
//!   holds no record (a creation that failed half-way on a full disk). Neither can fail with
//!   "file exists", and opening a log writes nothing, so a full disk cannot stop a start-up.
//! - **Replay tells a torn tail from damage in the middle.** After the first bad record, a
//!   segment whose remaining bytes hold no whole record (by checksum) has a torn tail: nothing
//!   after it was ever acknowledged, so it is cut. When whole records follow, the segment is
//!   damaged: its good prefix is replayed and the whole segment is kept in `quarantine/` for
//!   an operator (`modelshare wal check|salvage`).

use crate::IngestError;
use crate::lake::sync_dir;
use modelshare_event::Event;
use modelshare_event::codec::{self, Reader};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"MSWAL001";
/// Upper bound on one record, far above any request body the server accepts.
const MAX_RECORD: u32 = 1 << 30;
/// First byte of a record: an idempotency key follows.
const HAS_IDEMPOTENCY_KEY: u8 = 1;
/// First byte of a record: its events carry the agent fields (records written before those
/// existed have only bit 0, so they still replay).
const HAS_AGENT_FIELDS: u8 = 2;

/// One acknowledged request as the log holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct WalRecord {
    pub idempotency_key: Option<String>,
    /// Opaque to the log: what the HTTP layer needs to answer a retry with the first answer.
    pub annotation: Option<Vec<u8>>,
    pub duplicates: u32,
    pub events: Vec<Event>,
}

impl WalRecord {
    /// Appends `len crc payload` to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0u8; 8]);
        match &self.idempotency_key {
            Some(k) => {
                out.push(HAS_IDEMPOTENCY_KEY | HAS_AGENT_FIELDS);
                codec::put_str(out, k);
            }
            None => out.push(HAS_AGENT_FIELDS),
        }
        match &self.annotation {
            Some(a) => {
                out.push(1);
                out.extend_from_slice(&(a.len() as u32).to_le_bytes());
                out.extend_from_slice(a);
            }
            None => out.push(0),
        }
        out.extend_from_slice(&self.duplicates.to_le_bytes());
        out.extend_from_slice(&(self.events.len() as u32).to_le_bytes());
        for e in &self.events {
            codec::encode(e, out);
        }
        let payload = &out[start + 8..];
        let len = payload.len() as u32;
        let crc = crc32fast::hash(payload);
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }

    fn decode(payload: &[u8]) -> Result<WalRecord, codec::CodecError> {
        let mut r = Reader::new(payload);
        let flags = r.u8()?;
        if flags & !(HAS_IDEMPOTENCY_KEY | HAS_AGENT_FIELDS) != 0 {
            return Err(codec::CodecError("unknown record flags"));
        }
        let idempotency_key = if flags & HAS_IDEMPOTENCY_KEY != 0 {
            Some(r.str()?.to_owned())
        } else {
            None
        };
        let annotation = match r.u8()? {
            0 => None,
            _ => {
                let len = r.u32()? as usize;
                let mut a = Vec::with_capacity(len.min(payload.len()));
                for _ in 0..len {
                    a.push(r.u8()?);
                }
                Some(a)
            }
        };
        let duplicates = r.u32()?;
        let n = r.u32()? as usize;
        let mut events = Vec::with_capacity(n.min(payload.len() / 32));
        for _ in 0..n {
            events.push(r.event(flags & HAS_AGENT_FIELDS != 0)?);
        }
        if !r.is_empty() {
            return Err(codec::CodecError("trailing bytes"));
        }
        Ok(WalRecord {
            idempotency_key,
            annotation,
            duplicates,
            events,
        })
    }
}

/// The segment being appended to, if one is open.
#[derive(Debug)]
struct OpenSegment {
    file: File,
    /// Bytes through the last record that was written and fsynced.
    good_len: u64,
}

/// Appends groups of records to the newest segment.
#[derive(Debug)]
pub struct WalWriter {
    dir: PathBuf,
    /// The newest segment that may hold records (0 before the first one).
    seq: u64,
    open: Option<OpenSegment>,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016}.wal"))
}

fn segment_seq(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".wal")?
        .parse::<u64>()
        .ok()
}

/// Segments in `dir`, oldest first.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, IngestError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| IngestError::io(dir, e))? {
        let path = entry.map_err(|e| IngestError::io(dir, e))?.path();
        if let Some(seq) = segment_seq(&path).filter(|_| path.is_file()) {
            out.push((seq, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Creates segment `seq` and makes its creation durable. A file already there is reused when
/// it holds no whole record (left by a creation or first append that failed); one that holds
/// records is never overwritten.
fn create_segment(dir: &Path, seq: u64) -> Result<File, IngestError> {
    let path = segment_path(dir, seq);
    if path.exists() {
        let scan = scan_segment(&path)?;
        if !scan.records.is_empty() {
            return Err(IngestError::CorruptWal {
                path,
                message: "a segment to be created already holds records".into(),
            });
        }
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| IngestError::io(&path, e))?;
    file.set_len(0)
        .and_then(|()| file.write_all_at(MAGIC, 0))
        .and_then(|()| file.sync_all())
        .map_err(|e| IngestError::io(&path, e))?;
    sync_dir(dir)?;
    Ok(file)
}

impl WalWriter {
    /// A writer whose first append creates the segment after `last` (the newest one on disk,
    /// or 0). Writes nothing until then.
    pub fn new(dir: &Path, last: u64) -> WalWriter {
        WalWriter {
            dir: dir.to_owned(),
            seq: last,
            open: None,
        }
    }

    /// The newest segment that may hold records.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Writes encoded records and fsyncs: when this returns `Ok`, they survive a crash. On a
    /// failed write or fsync the segment is sealed at its last good record and the group is
    /// written once more into a fresh segment; the error is returned when that fails too.
    pub fn append_durable(&mut self, encoded: &[u8]) -> Result<(), IngestError> {
        let first = match self.try_append(encoded) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        tracing::warn!(error = %first, segment = self.seq, "wal write failed; sealing the segment");
        self.seal_after_failure();
        match self.try_append(encoded) {
            Ok(()) => {
                tracing::warn!(segment = self.seq, "wal group rewritten to a fresh segment");
                Ok(())
            }
            Err(second) => {
                self.seal_after_failure();
                Err(second)
            }
        }
    }

    fn try_append(&mut self, encoded: &[u8]) -> Result<(), IngestError> {
        if self.open.is_none() {
            let file = create_segment(&self.dir, self.seq + 1)?;
            self.seq += 1;
            self.open = Some(OpenSegment {
                file,
                good_len: MAGIC.len() as u64,
            });
        }
        let path = segment_path(&self.dir, self.seq);
        let Some(open) = self.open.as_mut() else {
            return Err(IngestError::CorruptWal {
                path,
                message: "no open segment after creating one".into(),
            });
        };
        // Positional: each group goes right after the last good record, whatever a failed
        // write left behind (and lake files alone use `pwrite`, which the fault tests target).
        open.file
            .write_all_at(encoded, open.good_len)
            .and_then(|()| open.file.sync_data())
            .map_err(|e| IngestError::io(&path, e))?;
        open.good_len += encoded.len() as u64;
        Ok(())
    }

    /// Cuts the open segment back to its last good record and stops writing to it. If the cut
    /// fails, the torn bytes stay at the segment's tail, where replay recognises and drops them.
    fn seal_after_failure(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        let path = segment_path(&self.dir, self.seq);
        let cut = open
            .file
            .set_len(open.good_len)
            .and_then(|()| open.file.sync_all());
        match cut {
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "could not cut a torn wal tail; replay will");
            }
            Ok(()) if open.good_len == MAGIC.len() as u64 => {
                // Nothing acknowledged lives in it: let the next append reuse its number rather
                // than leave one empty segment behind per refused group while the disk is full.
                self.seq -= 1;
            }
            Ok(()) => {}
        }
    }

    /// Closes the current segment (no disk write) and returns the newest segment that may
    /// hold records: everything appended so far is in segments up to it, and later appends go
    /// to later segments.
    pub fn seal(&mut self) -> u64 {
        self.open = None;
        self.seq
    }
}

/// Deletes every segment numbered `upto` or below (their rows are in Parquet now).
pub fn remove_segments_upto(dir: &Path, upto: u64) -> Result<(), IngestError> {
    for (seq, path) in list_segments(dir)? {
        if seq <= upto {
            fs::remove_file(&path).map_err(|e| IngestError::io(&path, e))?;
        }
    }
    sync_dir(dir)
}

/// What is wrong with a segment past its good prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// The bytes after `offset` hold no whole record: a write that never completed, so never
    /// acknowledged. Safe to cut.
    TornTail { offset: u64, why: String },
    /// Whole records follow the bad bytes at `offset`: something damaged acknowledged data.
    /// `salvageable` whole records (by checksum) were found after it.
    Middle {
        offset: u64,
        why: String,
        salvageable: usize,
    },
}

impl Damage {
    pub fn offset(&self) -> u64 {
        match self {
            Damage::TornTail { offset, .. } | Damage::Middle { offset, .. } => *offset,
        }
    }
}

/// A segment as read from disk.
#[derive(Debug)]
pub struct SegmentScan {
    /// The records of the good prefix, in order.
    pub records: Vec<WalRecord>,
    /// Length of the good prefix in bytes (header included).
    pub good_len: u64,
    /// Length of the file.
    pub len: u64,
    pub damage: Option<Damage>,
}

/// Reads a record whose header starts at `pos`, or says why there is none.
fn record_at(buf: &[u8], pos: usize) -> Result<(WalRecord, usize), &'static str> {
    let Some(header) = buf.get(pos..pos + 8) else {
        return Err("short record header");
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let end = pos + 8 + len as usize;
    if len > MAX_RECORD || end > buf.len() {
        return Err("short record");
    }
    let payload = &buf[pos + 8..end];
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch");
    }
    match WalRecord::decode(payload) {
        Ok(record) => Ok((record, end)),
        Err(_) => Err("record does not decode"),
    }
}

/// Whole records (valid checksum, decodable) found anywhere at or after `from`, with their
/// offsets: what a damaged segment still holds past its damage.
pub fn salvage_records(buf: &[u8], from: usize) -> Vec<(u64, WalRecord)> {
    let mut out = Vec::new();
    let mut pos = from;
    while pos + 8 <= buf.len() {
        match record_at(buf, pos) {
            Ok((record, end)) => {
                out.push((pos as u64, record));
                pos = end;
            }
            Err(_) => pos += 1,
        }
    }
    out
}

fn read_all(path: &Path) -> Result<Vec<u8>, IngestError> {
    let mut buf = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .map_err(|e| IngestError::io(path, e))?;
    Ok(buf)
}

/// Reads one segment: its good prefix, and what follows it if anything. Fails only when the
/// file cannot be read.
pub fn scan_segment(path: &Path) -> Result<SegmentScan, IngestError> {
    let buf = read_all(path)?;
    Ok(scan_bytes(&buf))
}

fn scan_bytes(buf: &[u8]) -> SegmentScan {
    let len = buf.len() as u64;
    let header_len = MAGIC.len().min(buf.len());
    if buf[..header_len] != MAGIC[..header_len] {
        // Not even the header is ours: every byte is suspect.
        let salvageable = salvage_records(buf, 0).len();
        let why = "not a modelshare WAL segment (bad magic)".to_owned();
        let damage = if salvageable == 0 && buf.iter().all(|b| *b == 0) {
            Damage::TornTail { offset: 0, why }
        } else {
            Damage::Middle {
                offset: 0,
                why,
                salvageable,
            }
        };
        return SegmentScan {
            records: Vec::new(),
            good_len: 0,
            len,
            damage: Some(damage),
        };
    }
    if buf.len() < MAGIC.len() {
        // Created, but the header never fully reached the disk: nothing was acknowledged in it.
        return SegmentScan {
            records: Vec::new(),
            good_len: 0,
            len,
            damage: (len > 0).then(|| Damage::TornTail {
                offset: 0,
                why: "short segment header".into(),
            }),
        };
    }
    let mut records = Vec::new();
    let mut pos = MAGIC.len();
    while pos < buf.len() {
        match record_at(buf, pos) {
            Ok((record, end)) => {
                records.push(record);
                pos = end;
            }
            Err(why) => {
                let salvageable = salvage_records(buf, pos + 1).len();
                let offset = pos as u64;
                let why = why.to_owned();
                let damage = if salvageable == 0 {
                    Damage::TornTail { offset, why }
                } else {
                    Damage::Middle {
                        offset,
                        why,
                        salvageable,
                    }
                };
                return SegmentScan {
                    records,
                    good_len: offset,
                    len,
                    damage: Some(damage),
                };
            }
        }
    }
    SegmentScan {
        records,
        good_len: pos as u64,
        len,
        damage: None,
    }
}

/// Cuts a segment's torn tail away.
pub fn truncate_segment(path: &Path, len: u64) -> Result<(), IngestError> {
    File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(len).and_then(|()| f.sync_all()))
        .map_err(|e| IngestError::io(path, e))
}

/// `<wal>/quarantine`: damaged segments kept for an operator.
pub fn quarantine_dir(wal_dir: &Path) -> PathBuf {
    wal_dir.join("quarantine")
}

/// Keeps a damaged segment in `quarantine/` under its own name, as a hard link: it costs no
/// disk space (a full disk must not stop this), keeps every byte as found, and survives the
/// original's deletion once the good prefix has been flushed. Idempotent.
pub fn quarantine(wal_dir: &Path, path: &Path) -> Result<PathBuf, IngestError> {
    let dir = quarantine_dir(wal_dir);
    fs::create_dir_all(&dir).map_err(|e| IngestError::io(&dir, e))?;
    let name = path
        .file_name()
        .ok_or_else(|| IngestError::io(path, std::io::Error::other("not a file path")))?;
    let target = dir.join(name);
    match fs::hard_link(path, &target) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(target),
        Err(e) => return Err(IngestError::io(&target, e)),
    }
    sync_dir(&dir)?;
    Ok(target)
}

/// Quarantined segments not yet salvaged, oldest first.
pub fn quarantined(wal_dir: &Path) -> Vec<(u64, PathBuf)> {
    let dir = quarantine_dir(wal_dir);
    if !dir.is_dir() {
        return Vec::new();
    }
    list_segments(&dir).unwrap_or_default()
}

/// What `salvage` did with one quarantined segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salvaged {
    pub seq: u64,
    /// Whole records found after the damage and put back into the log.
    pub records: usize,
    pub events: usize,
    /// Where the quarantined file went (`quarantine/salvaged/`).
    pub kept_at: PathBuf,
}

/// Puts the whole records that follow the damage of quarantined segment `seq` back into the
/// log, as segment `seq` itself (its good prefix first, if the original is still in the log),
/// written atomically. The next start replays it with the duplicate filter, so records that
/// also reached Parquet count once. The caller holds the lake lock (no writer is running).
pub fn salvage(wal_dir: &Path, seq: u64) -> Result<Salvaged, IngestError> {
    let qdir = quarantine_dir(wal_dir);
    let qpath = segment_path(&qdir, seq);
    let quarantined = read_all(&qpath)?;
    let scan = scan_bytes(&quarantined);
    let from = scan.damage.as_ref().map_or(quarantined.len(), |d| {
        (d.offset() as usize + 1).min(quarantined.len())
    });
    let rescued = salvage_records(&quarantined, from);

    let live = segment_path(wal_dir, seq);
    let mut prefix = Vec::new();
    if live.exists() {
        prefix = scan_segment(&live)?.records;
    }
    let mut out = MAGIC.to_vec();
    for record in prefix.iter().chain(rescued.iter().map(|(_, r)| r)) {
        record.encode_into(&mut out);
    }
    crate::lake::write_atomically(&live, &out)?;

    let done_dir = qdir.join("salvaged");
    fs::create_dir_all(&done_dir).map_err(|e| IngestError::io(&done_dir, e))?;
    let kept_at = segment_path(&done_dir, seq);
    fs::rename(&qpath, &kept_at).map_err(|e| IngestError::io(&kept_at, e))?;
    sync_dir(&qdir)?;
    Ok(Salvaged {
        seq,
        records: rescued.len(),
        events: rescued.iter().map(|(_, r)| r.events.len()).sum(),
        kept_at,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use modelshare_event::Task;

    fn event(id: &str) -> Event {
        crate::fixtures::event(
            id,
            crate::fixtures::MONDAY_US,
            "a",
            Task::Programming,
            "x/y",
            10,
        )
    }

    fn record(ids: &[&str], key: Option<&str>) -> WalRecord {
        WalRecord {
            idempotency_key: key.map(str::to_owned),
            annotation: key.map(|_| b"{\"rejected\":1}".to_vec()),
            duplicates: 2,
            events: ids.iter().map(|i| event(i)).collect(),
        }
    }

    fn encoded(records: &[WalRecord]) -> Vec<u8> {
        let mut buf = Vec::new();
        for r in records {
            r.encode_into(&mut buf);
        }
        buf
    }

    #[test]
    fn replays_what_was_appended() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::new(dir.path(), 0);
        assert!(list_segments(dir.path()).unwrap().is_empty(), "lazy");
        w.append_durable(&encoded(&[
            record(&["a", "b"], Some("k1")),
            record(&["c"], None),
        ]))
        .unwrap();
        assert_eq!(w.seq(), 1);
        let scan = scan_segment(&segment_path(dir.path(), 1)).unwrap();
        assert_eq!(scan.damage, None);
        assert_eq!(scan.good_len, scan.len);
        assert_eq!(
            scan.records,
            vec![record(&["a", "b"], Some("k1")), record(&["c"], None)]
        );
    }

    #[test]
    fn records_written_before_the_agent_fields_still_replay() {
        // The payload an older writer made of `record(&["a", "b"], Some("k1"))`: flag 1 (a key),
        // and each event ending at `attempt`, without the agent fields' tag.
        let want = record(&["a", "b"], Some("k1"));
        let mut payload = vec![HAS_IDEMPOTENCY_KEY];
        codec::put_str(&mut payload, "k1");
        payload.push(1);
        let annotation = want.annotation.clone().unwrap();
        payload.extend_from_slice(&(annotation.len() as u32).to_le_bytes());
        payload.extend_from_slice(&annotation);
        payload.extend_from_slice(&want.duplicates.to_le_bytes());
        payload.extend_from_slice(&2u32.to_le_bytes());
        for e in &want.events {
            let mut buf = Vec::new();
            codec::encode(e, &mut buf);
            assert_eq!(buf.pop(), Some(0), "no agent fields: a zero tag");
            payload.extend_from_slice(&buf);
        }
        assert_eq!(WalRecord::decode(&payload).unwrap(), want);
        // Unknown flags are damage, not a guess.
        payload[0] = 4;
        assert!(WalRecord::decode(&payload).is_err());
    }

    #[test]
    fn torn_tail_is_recognised_at_every_cut() {
        let dir = tempfile::tempdir().unwrap();
        let first = encoded(&[record(&["a"], None)]);
        let mut full = first.clone();
        record(&["b", "c"], Some("k")).encode_into(&mut full);
        for cut in first.len() + 1..full.len() {
            let path = dir.path().join("s.wal");
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&full[..cut]);
            fs::write(&path, &bytes).unwrap();
            let scan = scan_segment(&path).unwrap();
            assert_eq!(scan.records, vec![record(&["a"], None)], "cut {cut}");
            let good = (MAGIC.len() + first.len()) as u64;
            assert_eq!(scan.good_len, good);
            assert!(
                matches!(scan.damage, Some(Damage::TornTail { offset, .. }) if offset == good),
                "cut {cut}: {:?}",
                scan.damage
            );
            truncate_segment(&path, scan.good_len).unwrap();
            assert_eq!(scan_segment(&path).unwrap().damage, None);
        }
    }

    #[test]
    fn damage_in_the_middle_is_told_from_a_torn_tail() {
        let a = encoded(&[record(&["a"], None)]);
        let b = encoded(&[record(&["b"], None)]);
        let c = encoded(&[record(&["c", "d"], Some("k"))]);
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&a);
        let damaged_at = bytes.len();
        bytes.extend_from_slice(&b);
        bytes.extend_from_slice(&c);
        bytes[damaged_at + 12] ^= 0x40; // inside record b's payload
        let scan = scan_bytes(&bytes);
        assert_eq!(scan.records, vec![record(&["a"], None)]);
        assert_eq!(
            scan.damage,
            Some(Damage::Middle {
                offset: damaged_at as u64,
                why: "checksum mismatch".into(),
                salvageable: 1
            })
        );
        let rescued = salvage_records(&bytes, damaged_at + 1);
        assert_eq!(rescued.len(), 1);
        assert_eq!(rescued[0].1, record(&["c", "d"], Some("k")));
        assert_eq!(rescued[0].0 as usize, damaged_at + b.len());

        // The same flip in the last record is a torn tail: nothing whole follows it.
        let mut tail = MAGIC.to_vec();
        tail.extend_from_slice(&a);
        tail.extend_from_slice(&b);
        let last = tail.len() - 1;
        tail[last] ^= 0x40;
        assert!(matches!(
            scan_bytes(&tail).damage,
            Some(Damage::TornTail { .. })
        ));
    }

    #[test]
    fn a_bad_header_is_damage_and_zeros_are_a_torn_creation() {
        assert!(matches!(
            scan_bytes(b"NOTAWAL!xxxxxxxxxxxxxxxx").damage,
            Some(Damage::Middle { offset: 0, .. })
        ));
        assert!(matches!(
            scan_bytes(&[0u8; 4096]).damage,
            Some(Damage::TornTail { offset: 0, .. })
        ));
        assert_eq!(scan_bytes(b"MSW").records, vec![]);
        assert_eq!(scan_bytes(b"").damage, None);
    }

    #[test]
    fn creation_reuses_a_leftover_without_records_and_never_overwrites_records() {
        let dir = tempfile::tempdir().unwrap();
        // A creation that failed half-way on a full disk left a partial header behind.
        fs::write(segment_path(dir.path(), 4), b"MSW").unwrap();
        let mut w = WalWriter::new(dir.path(), 3);
        w.append_durable(&encoded(&[record(&["a"], None)])).unwrap();
        assert_eq!(w.seq(), 4);
        assert_eq!(
            scan_segment(&segment_path(dir.path(), 4)).unwrap().records,
            vec![record(&["a"], None)]
        );
        // A writer that believes segment 3 is the newest must not clobber segment 4.
        let mut stale = WalWriter::new(dir.path(), 3);
        let err = stale.append_durable(&encoded(&[record(&["x"], None)]));
        assert!(
            matches!(err, Err(IngestError::CorruptWal { .. })),
            "{err:?}"
        );
        assert_eq!(
            scan_segment(&segment_path(dir.path(), 4)).unwrap().records,
            vec![record(&["a"], None)]
        );
    }

    #[test]
    fn sealing_writes_nothing_and_the_next_append_opens_the_next_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::new(dir.path(), 0);
        w.append_durable(&encoded(&[record(&["a"], None)])).unwrap();
        assert_eq!(w.seal(), 1);
        assert_eq!(w.seal(), 1, "sealing twice is harmless");
        w.append_durable(&encoded(&[record(&["b"], None)])).unwrap();
        assert_eq!(w.seal(), 2);
        remove_segments_upto(dir.path(), 1).unwrap();
        let left: Vec<u64> = list_segments(dir.path())
            .unwrap()
            .into_iter()
            .map(|s| s.0)
            .collect();
        assert_eq!(left, vec![2]);
    }

    #[test]
    fn quarantine_keeps_the_bytes_and_salvage_puts_whole_records_back() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&encoded(&[record(&["a"], None)]));
        let damaged_at = bytes.len();
        bytes.extend_from_slice(b"garbage that is no record at all");
        bytes.extend_from_slice(&encoded(&[record(&["c"], None), record(&["d", "e"], None)]));
        let path = segment_path(wal, 9);
        fs::write(&path, &bytes).unwrap();

        let kept = quarantine(wal, &path).unwrap();
        assert_eq!(quarantine(wal, &path).unwrap(), kept, "idempotent");
        assert_eq!(fs::read(&kept).unwrap(), bytes);
        assert_eq!(
            quarantined(wal)
                .into_iter()
                .map(|q| q.0)
                .collect::<Vec<_>>(),
            vec![9]
        );
        // The good prefix was flushed and the original removed, as a running server would.
        fs::remove_file(&path).unwrap();
        assert_eq!(fs::read(&kept).unwrap(), bytes, "the link keeps the bytes");

        let done = salvage(wal, 9).unwrap();
        assert_eq!((done.records, done.events), (2, 3));
        assert!(quarantined(wal).is_empty());
        assert!(done.kept_at.exists());
        let back = scan_segment(&path).unwrap();
        assert_eq!(back.damage, None);
        assert_eq!(
            back.records,
            vec![record(&["c"], None), record(&["d", "e"], None)]
        );
        assert!(damaged_at > 0);
    }
}
