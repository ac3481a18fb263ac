//! Ingest and admin keys: created once (the secret is shown a single time), stored only as
//! SHA-256 hashes in `<lake>/keys.json` (mode 0600), each bound to one app id. The server reads
//! the file again whenever its modification time or size changes, so `modelshare keys create` and
//! `keys revoke` take effect without a restart.
//!
//! Once the file has existed, the server counts keys as configured for the rest of its life, even
//! when every key is revoked, the file lists none or the file is deleted: revoking the last key
//! must close writes, not quietly reopen them to keyless clients (see [`KeyStatus`]).

use crate::stored_file::{self, Stamp, StoredFileError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file name under the lake root.
pub const KEYS_FILE: &str = "keys.json";
/// Every key starts with this, so a leaked one is recognisable in logs and scanners.
pub const KEY_PREFIX: &str = "msk_";

/// Why the key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the key file: {0}")]
    File(#[from] StoredFileError),
    #[error("cannot draw random bytes for a key: {0}")]
    Random(String),
    #[error("no key with id {0:?}")]
    NoSuchKey(String),
    #[error("app id {0:?} is not usable: {1}")]
    BadApp(String, String),
}

/// One stored key (never the secret itself).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyRecord {
    /// Public handle used by `keys list` and `keys revoke`.
    pub id: String,
    /// Events written with this key carry this app id.
    pub app_id: String,
    /// May run `POST /v1/sql` (and future raw exports).
    pub admin: bool,
    /// Hex SHA-256 of the whole key string.
    pub sha256: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// RFC 3339 revocation time; a revoked key is refused.
    #[serde(default)]
    pub revoked: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<KeyRecord>,
}

/// What a request's key says about its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub key_id: String,
    pub app_id: String,
    pub admin: bool,
}

/// The outcome of checking a presented key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Valid(Caller),
    Revoked,
    Unknown,
}

fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Compares without stopping at the first difference, so timing says nothing about the hash.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_hex(bytes: usize) -> Result<String, KeyError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn read_file(path: &Path) -> Result<KeyFile, KeyError> {
    Ok(stored_file::read(path)?)
}

fn write_file(path: &Path, file: &KeyFile) -> Result<(), KeyError> {
    Ok(stored_file::write(path, file)?)
}

/// Creates a key for `app_id`; returns its record and the secret (shown once, never stored).
pub fn create(
    lake_root: &Path,
    app_id: &str,
    admin: bool,
) -> Result<(KeyRecord, String), KeyError> {
    if app_id.is_empty()
        || app_id.len() > modelshare_event::parse::MAX_ID_LEN
        || app_id.chars().any(char::is_control)
    {
        return Err(KeyError::BadApp(
            app_id.to_owned(),
            format!(
                "must be 1 to {} characters without control characters",
                modelshare_event::parse::MAX_ID_LEN
            ),
        ));
    }
    let path = lake_root.join(KEYS_FILE);
    let mut file = read_file(&path)?;
    let secret = format!("{KEY_PREFIX}{}", random_hex(32)?);
    let record = KeyRecord {
        id: random_hex(6)?,
        app_id: app_id.to_owned(),
        admin,
        sha256: sha256_hex(secret.as_bytes()),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        revoked: None,
    };
    file.keys.push(record.clone());
    write_file(&path, &file)?;
    Ok((record, secret))
}

/// Every key ever created (revoked ones included).
pub fn list(lake_root: &Path) -> Result<Vec<KeyRecord>, KeyError> {
    Ok(read_file(&lake_root.join(KEYS_FILE))?.keys)
}

/// Marks key `id` revoked (kept in the file so `keys list` shows it).
pub fn revoke(lake_root: &Path, id: &str) -> Result<KeyRecord, KeyError> {
    let path = lake_root.join(KEYS_FILE);
    let mut file = read_file(&path)?;
    let record = file
        .keys
        .iter_mut()
        .find(|k| k.id == id)
        .ok_or_else(|| KeyError::NoSuchKey(id.to_owned()))?;
    if record.revoked.is_none() {
        record.revoked =
            Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    let out = record.clone();
    write_file(&path, &file)?;
    Ok(out)
}

#[derive(Debug, Default)]
struct Loaded {
    stamp: Stamp,
    keys: Vec<KeyRecord>,
    /// The key file has existed since this store was opened.
    configured: bool,
}

/// Whether keys are in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// No key file has ever been seen: the server may trust loopback clients.
    NeverConfigured,
    /// Keys were configured but none is usable now (all revoked, or the file lists none).
    NoneActive,
    /// At least one key is usable.
    Active,
}

/// The server's view of the key file, re-read when the file changes.
#[derive(Debug)]
pub struct KeyStore {
    /// `None`: a server without a lake key file (no keys, ever).
    path: Option<PathBuf>,
    loaded: Mutex<Loaded>,
}

impl KeyStore {
    /// A store over `<lake_root>/keys.json` (which may not exist yet: no keys).
    pub fn open(lake_root: &Path) -> Result<KeyStore, KeyError> {
        let store = KeyStore {
            path: Some(lake_root.join(KEYS_FILE)),
            loaded: Mutex::new(Loaded::default()),
        };
        store.refresh()?;
        Ok(store)
    }

    /// A store that never has keys (servers built without a lake, tests).
    pub fn empty() -> KeyStore {
        KeyStore {
            path: None,
            loaded: Mutex::new(Loaded::default()),
        }
    }

    fn stamp(&self) -> Stamp {
        stored_file::stamp(self.path.as_ref()?)
    }

    /// Re-reads the file if its modification time or size changed. A file that cannot be read
    /// keeps the previous keys (writers replace it atomically, so this is a transient state).
    fn refresh(&self) -> Result<(), KeyError> {
        let stamp = self.stamp();
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.stamp == stamp && (stamp.is_some() || loaded.keys.is_empty()) {
            return Ok(());
        }
        let Some(path) = &self.path else {
            return Ok(());
        };
        loaded.configured |= stamp.is_some();
        let file = read_file(path)?;
        loaded.keys = file.keys;
        loaded.stamp = stamp;
        Ok(())
    }

    fn current(&self) -> Vec<KeyRecord> {
        self.reload();
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys
            .clone()
    }

    fn reload(&self) {
        if let Err(e) = self.refresh() {
            tracing::error!(error = %e, "cannot reload the key file; keeping the keys loaded before");
        }
    }

    /// Whether keys are in use, from the file as it is now.
    pub fn status(&self) -> KeyStatus {
        self.reload();
        let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.keys.iter().any(|k| k.revoked.is_none()) {
            KeyStatus::Active
        } else if loaded.configured {
            KeyStatus::NoneActive
        } else {
            KeyStatus::NeverConfigured
        }
    }

    /// Checks a presented key against every stored hash.
    pub fn lookup(&self, presented: &str) -> Lookup {
        let hash = sha256_hex(presented.as_bytes());
        let mut found = Lookup::Unknown;
        for k in self.current() {
            if constant_time_eq(k.sha256.as_bytes(), hash.as_bytes()) {
                found = match k.revoked {
                    Some(_) => Lookup::Revoked,
                    None => Lookup::Valid(Caller {
                        key_id: k.id,
                        app_id: k.app_id,
                        admin: k.admin,
                    }),
                };
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn create_lookup_revoke_reload() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path()).unwrap();
        assert_eq!(store.status(), KeyStatus::NeverConfigured);
        let (rec, secret) = create(dir.path(), "app-1", false).unwrap();
        assert!(secret.starts_with(KEY_PREFIX) && secret.len() == KEY_PREFIX.len() + 64);
        assert_eq!(
            store.lookup(&secret),
            Lookup::Valid(Caller {
                key_id: rec.id.clone(),
                app_id: "app-1".into(),
                admin: false
            })
        );
        assert_eq!(store.lookup("msk_wrong"), Lookup::Unknown);
        let text = std::fs::read_to_string(dir.path().join(KEYS_FILE)).unwrap();
        assert!(!text.contains(&secret), "the secret must not be stored");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEYS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(store.status(), KeyStatus::Active);
        revoke(dir.path(), &rec.id).unwrap();
        assert_eq!(store.lookup(&secret), Lookup::Revoked);
        assert_eq!(store.status(), KeyStatus::NoneActive);
        assert!(matches!(
            revoke(dir.path(), "nope"),
            Err(KeyError::NoSuchKey(_))
        ));
    }

    #[test]
    fn keys_stay_configured_once_the_file_has_existed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEYS_FILE);
        std::fs::write(&path, r#"{"keys": []}"#).unwrap();
        let store = KeyStore::open(dir.path()).unwrap();
        assert_eq!(store.status(), KeyStatus::NoneActive);
        let (rec, _) = create(dir.path(), "app-1", false).unwrap();
        assert_eq!(store.status(), KeyStatus::Active);
        revoke(dir.path(), &rec.id).unwrap();
        assert_eq!(store.status(), KeyStatus::NoneActive);
        // Deleting the file does not reopen the server to keyless clients.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(store.status(), KeyStatus::NoneActive);
        assert_eq!(KeyStore::empty().status(), KeyStatus::NeverConfigured);
    }
}
