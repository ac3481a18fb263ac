//! Raw exports for operators: every event of a week with `app_id` replaced by a keyed hash, so
//! an export can be shared without the app ids (and without letting a reader confirm a guessed
//! id, which a plain hash would).
//!
//! The key is 32 random bytes stored hex-encoded in `<lake>/app-id-hmac.key` (mode 0600),
//! created on first use. `app_id` becomes the first 32 hex digits (128 bits) of
//! HMAC-SHA256(key, app_id): stable across exports of the same lake, so apps can be followed
//! from week to week.

use crate::source::{column, read_sources, week_sources};
use crate::store::write_atomically;
use crate::{IsoWeek, SnapshotError};
use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, StringBuilder};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use hmac::{Hmac, Mac};
use modelshare_event::schema::event_schema;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use sha2::Sha256;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Hex digits of the keyed hash kept in `app_id`.
pub const APP_HASH_HEX_DIGITS: usize = 32;
/// File name of the per-lake key, under the lake root.
pub const KEY_FILE: &str = "app-id-hmac.key";

/// The per-lake HMAC key.
#[derive(Clone)]
pub struct AppIdKey([u8; 32]);

impl std::fmt::Debug for AppIdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppIdKey(..)")
    }
}

impl AppIdKey {
    /// Reads the lake's key, creating it (random, mode 0600) on first use.
    pub fn load_or_create(lake_root: &Path) -> Result<AppIdKey, SnapshotError> {
        let path = lake_root.join(KEY_FILE);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut f) => {
                let mut key = [0u8; 32];
                File::open("/dev/urandom")
                    .and_then(|mut r| r.read_exact(&mut key))
                    .map_err(|e| SnapshotError::io(Path::new("/dev/urandom"), e))?;
                let written = f
                    .write_all(hex::encode(key).as_bytes())
                    .and_then(|()| f.write_all(b"\n"))
                    .and_then(|()| f.sync_all());
                if let Err(e) = written {
                    let _ = fs::remove_file(&path);
                    return Err(SnapshotError::io(&path, e));
                }
                File::open(lake_root)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| SnapshotError::io(lake_root, e))?;
                Ok(AppIdKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = fs::read_to_string(&path).map_err(|e| SnapshotError::io(&path, e))?;
                let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32);
                let key: [u8; 32] = bytes.and_then(|b| b.try_into().ok()).ok_or_else(|| {
                    SnapshotError::Corrupt {
                        path: path.clone(),
                        message: "expected 64 hex digits (a 32-byte key)".into(),
                    }
                })?;
                Ok(AppIdKey(key))
            }
            Err(e) => Err(SnapshotError::io(&path, e)),
        }
    }

    /// The published stand-in for `app_id`.
    pub fn hash(&self, app_id: &str) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("hmac takes any key length"));
        mac.update(app_id.as_bytes());
        let mut h = hex::encode(mac.finalize().into_bytes());
        h.truncate(APP_HASH_HEX_DIGITS);
        h
    }
}

/// What a raw export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawExport {
    pub path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
}

/// Writes every event of `week` in the lake's Parquet files (events schema v1, `app_id` and
/// `trace_id` hashed) to `out`, sorted by `ts` then `event_id`. Fails with
/// [`SnapshotError::EmptyWeek`] when the week has no events.
pub fn export_raw(lake_root: &Path, week: IsoWeek, out: &Path) -> Result<RawExport, SnapshotError> {
    let sources = week_sources(lake_root, week)?;
    let batches = read_sources(lake_root, &sources, None)?;
    let all = concat_batches(&event_schema(), &batches)?;
    if all.num_rows() == 0 {
        return Err(SnapshotError::EmptyWeek(week));
    }
    let key = AppIdKey::load_or_create(lake_root)?;
    let apps = column::<StringArray>(&all, "app_id")?;
    let mut hashed = StringBuilder::with_capacity(apps.len(), apps.len() * APP_HASH_HEX_DIGITS);
    for i in 0..apps.len() {
        hashed.append_value(key.hash(apps.value(i)));
    }
    let idx = all
        .schema()
        .index_of("app_id")
        .map_err(|_| SnapshotError::Schema("events without app_id".into()))?;
    let mut columns: Vec<ArrayRef> = all.columns().to_vec();
    columns[idx] = Arc::new(hashed.finish());
    // Trace ids are the apps' own identifiers: hashed with the same key, so the calls of one
    // trace still group together.
    let traces = column::<StringArray>(&all, "trace_id")?;
    let mut hashed_traces = StringBuilder::new();
    for i in 0..traces.len() {
        hashed_traces.append_option(traces.is_valid(i).then(|| key.hash(traces.value(i))));
    }
    let trace_idx = all
        .schema()
        .index_of("trace_id")
        .map_err(|_| SnapshotError::Schema("events without trace_id".into()))?;
    columns[trace_idx] = Arc::new(hashed_traces.finish());
    let batch = RecordBatch::try_new(event_schema(), columns)?;
    let order = lexsort_to_indices(
        &[
            SortColumn {
                values: Arc::clone(batch.column(1)),
                options: None,
            },
            SortColumn {
                values: Arc::clone(batch.column(0)),
                options: None,
            },
        ],
        None,
    )?;
    let batch = take_record_batch(&batch, &order)?;
    let kv = vec![
        KeyValue::new(
            modelshare_event::SCHEMA_VERSION_KEY.to_owned(),
            modelshare_event::SCHEMA_VERSION.to_owned(),
        ),
        KeyValue::new("modelshare.export.kind".to_owned(), "raw".to_owned()),
        KeyValue::new("modelshare.export.week".to_owned(), week.to_string()),
        KeyValue::new(
            "modelshare.export.app_id".to_owned(),
            format!("hmac-sha256 with the lake key, first {APP_HASH_HEX_DIGITS} hex digits"),
        ),
    ];
    let props = WriterProperties::builder()
        .set_created_by(crate::build::GENERATOR.to_owned())
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_key_value_metadata(Some(kv))
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), event_schema(), Some(props))?;
    writer.write(&batch)?;
    let bytes = writer.into_inner()?;
    write_atomically(out, &bytes, false)?;
    Ok(RawExport {
        path: out.to_owned(),
        rows: batch.num_rows() as u64,
        bytes: bytes.len() as u64,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_is_created_once_with_0600_and_hashes_are_stable() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = AppIdKey::load_or_create(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let k2 = AppIdKey::load_or_create(dir.path()).unwrap();
        assert_eq!(k1.hash("app-1"), k2.hash("app-1"));
        assert_ne!(k1.hash("app-1"), k1.hash("app-2"));
        assert_eq!(k1.hash("app-1").len(), APP_HASH_HEX_DIGITS);
        let other = tempfile::tempdir().unwrap();
        let k3 = AppIdKey::load_or_create(other.path()).unwrap();
        assert_ne!(k1.hash("app-1"), k3.hash("app-1"), "keys are per lake");
        // Known answer, from Python: hmac.new(bytes([0x0b] * 32), b"app-1", sha256).hexdigest()[:32]
        assert_eq!(
            AppIdKey([0x0b; 32]).hash("app-1"),
            "305a3833c32b54928fd25bfd71ab79ad"
        );
        fs::write(dir.path().join(KEY_FILE), "nothex").unwrap();
        assert!(AppIdKey::load_or_create(dir.path()).is_err());
    }
}
