//! Write-ahead log: numbered segment files of checksummed records.
//!
//! ```text
//! segment  := MAGIC record*
//! record   := len:u32 crc32:u32 payload[len]
//! payload  := key:opt_str annotation:opt_bytes duplicates:u32 count:u32 event*
//! ```
//!
//! A record is acknowledged only after the segment is fsynced. A crash can leave a torn record at
//! the tail of the newest segment; replay stops there and truncates it, since nothing after it
//! was ever acknowledged.

use crate::IngestError;
use crate::lake::sync_dir;
use modelshare_event::Event;
use modelshare_event::codec::{self, Reader};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"MSWAL001";
/// Upper bound on one record, far above any request body the server accepts.
const MAX_RECORD: u32 = 1 << 30;

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
                out.push(1);
                codec::put_str(out, k);
            }
            None => out.push(0),
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
        let idempotency_key = match r.u8()? {
            0 => None,
            _ => Some(r.str()?.to_owned()),
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
            events.push(r.event()?);
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

/// The segment being appended to.
#[derive(Debug)]
pub struct WalWriter {
    dir: PathBuf,
    seq: u64,
    file: File,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016}.wal"))
}

/// Segments on disk, oldest first.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, IngestError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| IngestError::io(dir, e))? {
        let path = entry.map_err(|e| IngestError::io(dir, e))?.path();
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(seq) = seq {
            out.push((seq, path));
        }
    }
    out.sort();
    Ok(out)
}

impl WalWriter {
    /// Creates segment `seq` (which must not exist yet) and makes its creation durable.
    pub fn create(dir: &Path, seq: u64) -> Result<WalWriter, IngestError> {
        let path = segment_path(dir, seq);
        let mut file = File::options()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| IngestError::io(&path, e))?;
        file.write_all(MAGIC)
            .and_then(|()| file.sync_all())
            .map_err(|e| IngestError::io(&path, e))?;
        sync_dir(dir)?;
        Ok(WalWriter {
            dir: dir.to_owned(),
            seq,
            file,
        })
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Writes encoded records and fsyncs: when this returns `Ok`, they survive a crash.
    pub fn append_durable(&mut self, encoded: &[u8]) -> Result<(), IngestError> {
        let path = segment_path(&self.dir, self.seq);
        self.file
            .write_all(encoded)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| IngestError::io(&path, e))
    }

    /// Closes this segment and starts the next one; returns the closed segment's number.
    pub fn rotate(&mut self) -> Result<u64, IngestError> {
        let closed = self.seq;
        *self = WalWriter::create(&self.dir, closed + 1)?;
        Ok(closed)
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

/// Reads one segment. A torn tail (short or checksum-failing last record) ends the segment: it
/// is truncated away when `truncate_torn_tail` is set (the newest segment), and an error
/// otherwise, since older segments were complete when they were closed.
pub fn read_segment(path: &Path, truncate_torn_tail: bool) -> Result<Vec<WalRecord>, IngestError> {
    let mut buf = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .map_err(|e| IngestError::io(path, e))?;
    let corrupt = |message: String| IngestError::CorruptWal {
        path: path.to_owned(),
        message,
    };
    if buf.len() < MAGIC.len() {
        // Created but the magic never reached the disk: nothing was acknowledged in it.
        if truncate_torn_tail {
            return Ok(Vec::new());
        }
        return Err(corrupt("segment shorter than its header".into()));
    }
    if &buf[..MAGIC.len()] != MAGIC {
        return Err(corrupt("not a modelshare WAL segment (bad magic)".into()));
    }
    let mut records = Vec::new();
    let mut pos = MAGIC.len();
    while pos < buf.len() {
        let torn = |why: &str| -> Result<(), IngestError> {
            if truncate_torn_tail {
                tracing::warn!(path = %path.display(), offset = pos, why, "truncating torn wal tail");
                File::options()
                    .write(true)
                    .open(path)
                    .and_then(|f| f.set_len(pos as u64).and_then(|()| f.sync_all()))
                    .map_err(|e| IngestError::io(path, e))
            } else {
                Err(corrupt(format!("{why} at offset {pos}")))
            }
        };
        if buf.len() - pos < 8 {
            torn("short record header")?;
            break;
        }
        let len = u32::from_le_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]);
        let crc = u32::from_le_bytes([buf[pos + 4], buf[pos + 5], buf[pos + 6], buf[pos + 7]]);
        let end = pos + 8 + len as usize;
        if len > MAX_RECORD || end > buf.len() {
            torn("short record")?;
            break;
        }
        let payload = &buf[pos + 8..end];
        if crc32fast::hash(payload) != crc {
            torn("checksum mismatch")?;
            break;
        }
        records
            .push(WalRecord::decode(payload).map_err(|e| corrupt(format!("{e} at offset {pos}")))?);
        pos = end;
    }
    Ok(records)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use modelshare_event::{MicroUsd, ModelSlug, Status, Task, Timestamp};

    fn event(id: &str) -> Event {
        Event {
            event_id: id.into(),
            ts: Timestamp(1_795_168_800_000_000),
            app_id: "a".into(),
            task: Task::Programming,
            model_requested: "x/y".into(),
            model: ModelSlug::parse("x/y").unwrap(),
            provider: "p".into(),
            input_tokens: 10,
            output_tokens: 20,
            reasoning_tokens: 0,
            cached_tokens: 0,
            cost: MicroUsd(1),
            latency_ms: 5,
            ttft_ms: 1,
            status: Status::Ok,
            finish_reason: None,
            attempt: 0,
        }
    }

    fn record(ids: &[&str], key: Option<&str>) -> WalRecord {
        WalRecord {
            idempotency_key: key.map(str::to_owned),
            annotation: key.map(|_| b"{\"rejected\":1}".to_vec()),
            duplicates: 2,
            events: ids.iter().map(|i| event(i)).collect(),
        }
    }

    #[test]
    fn replays_what_was_appended() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::create(dir.path(), 1).unwrap();
        let mut buf = Vec::new();
        record(&["a", "b"], Some("k1")).encode_into(&mut buf);
        record(&["c"], None).encode_into(&mut buf);
        w.append_durable(&buf).unwrap();
        let got = read_segment(&segment_path(dir.path(), 1), false).unwrap();
        assert_eq!(
            got,
            vec![record(&["a", "b"], Some("k1")), record(&["c"], None)]
        );
    }

    #[test]
    fn torn_tail_is_truncated_at_every_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut full = Vec::new();
        record(&["a"], None).encode_into(&mut full);
        let first_len = full.len();
        record(&["b", "c"], Some("k")).encode_into(&mut full);
        for cut in first_len..full.len() {
            let path = segment_path(dir.path(), cut as u64);
            let mut w = WalWriter::create(dir.path(), cut as u64).unwrap();
            w.append_durable(&full[..cut]).unwrap();
            assert!(read_segment(&path, false).is_err() || cut == first_len);
            let got = read_segment(&path, true).unwrap();
            assert_eq!(got, vec![record(&["a"], None)], "cut {cut}");
            assert_eq!(
                fs::metadata(&path).unwrap().len() as usize,
                MAGIC.len() + first_len
            );
        }
    }

    #[test]
    fn flipped_bit_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let mut buf = Vec::new();
        record(&["a"], None).encode_into(&mut buf);
        let last = buf.len() - 1;
        buf[last] ^= 0x40;
        let mut w = WalWriter::create(dir.path(), 7).unwrap();
        w.append_durable(&buf).unwrap();
        let path = segment_path(dir.path(), 7);
        assert!(matches!(
            read_segment(&path, false),
            Err(IngestError::CorruptWal { .. })
        ));
        assert_eq!(read_segment(&path, true).unwrap(), vec![]);
    }

    #[test]
    fn rotation_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::create(dir.path(), 1).unwrap();
        assert_eq!(w.rotate().unwrap(), 1);
        assert_eq!(w.rotate().unwrap(), 2);
        assert_eq!(w.seq(), 3);
        remove_segments_upto(dir.path(), 2).unwrap();
        let left: Vec<u64> = list_segments(dir.path())
            .unwrap()
            .into_iter()
            .map(|s| s.0)
            .collect();
        assert_eq!(left, vec![3]);
    }
}
