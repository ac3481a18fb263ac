//! Small JSON files the server keeps beside the lake (`keys.json`, `public-apps.json`): read
//! whole, written atomically (temp file, fsync, rename) with mode 0600, and re-read by a running
//! server when their [`Stamp`] changes, so the CLI's edits take effect without a restart.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Why a stored file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoredFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}")]
    Corrupt { path: PathBuf, message: String },
}

/// Reads `path`; a missing file is `T::default()`.
pub fn read<T: DeserializeOwned + Default>(path: &Path) -> Result<T, StoredFileError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoredFileError::Corrupt {
            path: path.to_owned(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(source) => Err(StoredFileError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes `value` to `path` atomically (temp file, fsync, rename) with mode 0600.
pub fn write<T: Serialize>(path: &Path, value: &T) -> Result<(), StoredFileError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| StoredFileError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| StoredFileError::Corrupt {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(&bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

/// Modification time, size and inode of a file, `None` when it does not exist. Writers rename
/// a new file into place, so the inode changes even when two writes land within the file
/// system's timestamp granularity.
pub type Stamp = Option<(SystemTime, u64, u64)>;

/// The [`Stamp`] of `path` now.
pub fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}
