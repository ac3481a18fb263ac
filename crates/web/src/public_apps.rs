//! Apps that chose to be shown by name: the consent records in `<lake>/public-apps.json`.
//!
//! An app is never shown unless it is listed here. `modelshare apps publish` and the admin API
//! (`PUT /v1/admin/apps/{app_id}`) record the consent with the name and link to show;
//! `apps withdraw` (`DELETE …`) removes it, and the app is back to aggregates only. A running
//! server re-reads the file when it changes. What a listed app's figures may include is the
//! query crate's rule (`modelshare_query::public_apps`).

use crate::stored_file::{self, Stamp, StoredFileError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file name under the lake root.
pub const PUBLIC_APPS_FILE: &str = "public-apps.json";
/// The longest name shown, in characters.
pub const MAX_NAME_CHARS: usize = 80;
/// The longest link, in bytes.
pub const MAX_URL_LEN: usize = 512;

/// Why a consent could not be recorded or read.
#[derive(Debug, thiserror::Error)]
pub enum PublicAppError {
    #[error("the published apps file: {0}")]
    File(#[from] StoredFileError),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("the name {name:?} gives the page /apps/{slug}, which app {owner:?} already has")]
    SlugTaken {
        name: String,
        slug: String,
        owner: String,
    },
    #[error("app {0:?} is not published")]
    NotPublished(String),
}

/// One app that agreed to be shown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublicApp {
    /// The `app_id` its events carry (never shown).
    pub app_id: String,
    /// The name shown.
    pub name: String,
    /// Its page: `/apps/{slug}`, derived from the name.
    pub slug: String,
    /// An `http(s)` link to the app.
    #[serde(default)]
    pub url: Option<String>,
    /// RFC 3339 time of the consent (of its last change).
    pub published: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AppsFile {
    apps: Vec<PublicApp>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> PublicAppError {
    PublicAppError::Invalid {
        field,
        message: message.into(),
    }
}

/// The page slug of a name: lowercase ASCII letters and digits, other runs become one `-`.
pub fn slug_of(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_owned()
}

fn check_name(name: &str) -> Result<String, PublicAppError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(invalid(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters, not {chars}"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("name", "must not contain control characters"));
    }
    if slug_of(name).is_empty() {
        return Err(invalid(
            "name",
            "needs at least one ASCII letter or digit (it names the app's page)",
        ));
    }
    Ok(name.to_owned())
}

fn check_url(url: &str) -> Result<String, PublicAppError> {
    if url.len() > MAX_URL_LEN {
        return Err(invalid(
            "url",
            format!(
                "is {} bytes long; at most {MAX_URL_LEN} accepted",
                url.len()
            ),
        ));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid("url", "must start with https:// or http://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(invalid("url", "names no host"));
    }
    if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '<' | '>' | '\\'))
    {
        return Err(invalid(
            "url",
            "must not contain spaces, control characters, quotes, angle brackets or backslashes",
        ));
    }
    Ok(url.to_owned())
}

/// Records that `app_id` agrees to be shown as `name` (with `url`); publishing again updates
/// the name and link.
pub fn publish(
    lake_root: &Path,
    app_id: &str,
    name: &str,
    url: Option<&str>,
) -> Result<PublicApp, PublicAppError> {
    modelshare_event::parse::check_identifier(app_id).map_err(|m| invalid("app", m))?;
    let name = check_name(name)?;
    let url = url.map(check_url).transpose()?;
    let slug = slug_of(&name);
    let path = lake_root.join(PUBLIC_APPS_FILE);
    let mut file: AppsFile = stored_file::read(&path)?;
    if let Some(other) = file
        .apps
        .iter()
        .find(|a| a.slug == slug && a.app_id != app_id)
    {
        return Err(PublicAppError::SlugTaken {
            name,
            slug,
            owner: other.app_id.clone(),
        });
    }
    let record = PublicApp {
        app_id: app_id.to_owned(),
        name,
        slug,
        url,
        published: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    file.apps.retain(|a| a.app_id != app_id);
    file.apps.push(record.clone());
    file.apps.sort_by(|a, b| a.slug.cmp(&b.slug));
    stored_file::write(&path, &file)?;
    Ok(record)
}

/// Withdraws `app_id`'s consent: it is no longer shown anywhere.
pub fn withdraw(lake_root: &Path, app_id: &str) -> Result<PublicApp, PublicAppError> {
    let path = lake_root.join(PUBLIC_APPS_FILE);
    let mut file: AppsFile = stored_file::read(&path)?;
    let at = file
        .apps
        .iter()
        .position(|a| a.app_id == app_id)
        .ok_or_else(|| PublicAppError::NotPublished(app_id.to_owned()))?;
    let record = file.apps.remove(at);
    stored_file::write(&path, &file)?;
    Ok(record)
}

/// Every published app, by slug.
pub fn list(lake_root: &Path) -> Result<Vec<PublicApp>, PublicAppError> {
    Ok(stored_file::read::<AppsFile>(&lake_root.join(PUBLIC_APPS_FILE))?.apps)
}

/// The server's view of the published apps, re-read when the file changes.
#[derive(Debug, Default)]
pub struct PublicAppStore {
    /// `None`: a server without a lake (no app is ever published).
    root: Option<PathBuf>,
    loaded: Mutex<(Stamp, Vec<PublicApp>)>,
    /// Serialises this server's own writes (the admin API), which read, change and replace
    /// the file.
    writing: Mutex<()>,
}

impl PublicAppStore {
    pub fn open(lake_root: &Path) -> PublicAppStore {
        PublicAppStore {
            root: Some(lake_root.to_owned()),
            ..PublicAppStore::default()
        }
    }

    /// The published apps now. A file that cannot be read keeps the apps read before
    /// (writers replace it atomically), with the cause logged.
    pub fn current(&self) -> Vec<PublicApp> {
        let Some(root) = &self.root else {
            return Vec::new();
        };
        let path = root.join(PUBLIC_APPS_FILE);
        let stamp = stored_file::stamp(&path);
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.0 != stamp || stamp.is_none() {
            match stored_file::read::<AppsFile>(&path) {
                Ok(file) => *loaded = (stamp, file.apps),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the published apps; keeping the ones read before");
                }
            }
        }
        loaded.1.clone()
    }

    /// Changes whenever the consent file does (a hash of its [`Stamp`]; 0 without one):
    /// answers cached under another version must not be served.
    pub fn version(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let Some(root) = &self.root else {
            return 0;
        };
        let Some(stamp) = stored_file::stamp(&root.join(PUBLIC_APPS_FILE)) else {
            return 0;
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        stamp.hash(&mut h);
        h.finish()
    }

    /// The published app with page `slug`.
    pub fn by_slug(&self, slug: &str) -> Option<PublicApp> {
        self.current().into_iter().find(|a| a.slug == slug)
    }

    /// [`publish`] into this store's lake.
    pub fn publish(
        &self,
        app_id: &str,
        name: &str,
        url: Option<&str>,
    ) -> Result<PublicApp, PublicAppError> {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        publish(self.lake_root()?, app_id, name, url)
    }

    /// [`withdraw`] from this store's lake.
    pub fn withdraw(&self, app_id: &str) -> Result<PublicApp, PublicAppError> {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        withdraw(self.lake_root()?, app_id)
    }

    fn lake_root(&self) -> Result<&Path, PublicAppError> {
        self.root
            .as_deref()
            .ok_or_else(|| invalid("app", "this server has no lake to record consents in"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn slugs_keep_letters_and_digits() {
        assert_eq!(slug_of("Cline"), "cline");
        assert_eq!(slug_of("  <b>Roo</b> Code & Co. 2 "), "b-roo-b-code-co-2");
        assert_eq!(slug_of("日本語"), "");
    }

    #[test]
    fn publish_update_withdraw_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let store = PublicAppStore::open(dir.path());
        assert!(store.current().is_empty());
        let a = publish(
            dir.path(),
            "app-1",
            "Acme Chat",
            Some("https://acme.example"),
        )
        .unwrap();
        assert_eq!(a.slug, "acme-chat");
        assert_eq!(store.by_slug("acme-chat").unwrap().app_id, "app-1");
        // Publishing again changes the name; another app cannot take the same page.
        publish(dir.path(), "app-1", "Acme", None).unwrap();
        assert_eq!(store.current().len(), 1);
        assert!(store.by_slug("acme-chat").is_none());
        assert!(matches!(
            publish(dir.path(), "app-2", "ACME!", None),
            Err(PublicAppError::SlugTaken { .. })
        ));
        withdraw(dir.path(), "app-1").unwrap();
        assert!(store.current().is_empty());
        assert!(matches!(
            withdraw(dir.path(), "app-1"),
            Err(PublicAppError::NotPublished(_))
        ));
    }

    #[test]
    fn bad_names_and_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let refused =
            |app: &str, name: &str, url: Option<&str>| match publish(dir.path(), app, name, url) {
                Err(PublicAppError::Invalid { field, .. }) => field,
                other => panic!("{name:?} {url:?}: {other:?}"),
            };
        assert_eq!(refused("a", "", None), "name");
        assert_eq!(refused("a", &"x".repeat(81), None), "name");
        assert_eq!(refused("a", "tab\there", None), "name");
        assert_eq!(refused("a", "???", None), "name");
        assert_eq!(refused("a", "ok", Some("javascript:alert(1)")), "url");
        assert_eq!(refused("a", "ok", Some("https://")), "url");
        assert_eq!(refused("a", "ok", Some("https://x\" onclick=\"y")), "url");
        assert_eq!(refused("", "ok", None), "app");
        assert!(list(dir.path()).unwrap().is_empty());
    }
}
