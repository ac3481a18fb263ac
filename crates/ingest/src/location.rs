//! Where a lake lives: a local directory, or a prefix in a bucket of any S3 API
//! (`s3://BUCKET/PREFIX`), reached through `object_store` with its standard variables
//! (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ALLOW_HTTP`). The lake's layout is the same in both: `events/date=YYYY-MM-DD/*.parquet`
//! and the rollups beside it.

use crate::IngestError;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{ClientConfigKey, ObjectStore, RetryConfig};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A lake's root.
#[derive(Debug, Clone)]
pub enum LakeLocation {
    Local(PathBuf),
    Bucket(Bucket),
}

/// A lake under a prefix of an S3 API bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// The bucket's name.
    pub name: String,
    /// The lake's root inside the bucket, without slashes at either end (empty: the bucket).
    pub prefix: String,
    pub store: Arc<dyn ObjectStore>,
}

impl fmt::Display for LakeLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LakeLocation::Local(dir) => write!(f, "{}", dir.display()),
            LakeLocation::Bucket(b) => write!(f, "{}", b.url_of("")),
        }
    }
}

impl Bucket {
    /// The URL of `relative` (a directory of the lake, `""` for its root) with a trailing
    /// slash, as listing tables take it.
    pub fn url_of(&self, relative: &str) -> String {
        let mut url = self.store_url();
        for part in [self.prefix.as_str(), relative] {
            if !part.is_empty() {
                url.push('/');
                url.push_str(part.trim_matches('/'));
            }
        }
        url.push('/');
        url
    }

    /// `s3://BUCKET`: the store's key in a query runtime.
    pub fn store_url(&self) -> String {
        format!("s3://{}", self.name)
    }

    /// The object key of `relative` (a path inside the lake, `/`-separated).
    pub fn key_of(&self, relative: &str) -> object_store::path::Path {
        let relative = relative.trim_matches('/');
        if self.prefix.is_empty() {
            object_store::path::Path::from(relative)
        } else {
            object_store::path::Path::from(format!("{}/{relative}", self.prefix))
        }
    }

    /// The path inside the lake of the object `key`, if it is under the lake's prefix.
    pub fn relative_of<'k>(&self, key: &'k object_store::path::Path) -> Option<&'k str> {
        let key = key.as_ref();
        if self.prefix.is_empty() {
            return Some(key);
        }
        key.strip_prefix(self.prefix.as_str())?.strip_prefix('/')
    }
}

/// Calls to the store give up after this long (retries included), so a store that is down
/// turns into an error the caller can report and retry later, not a thread stuck for minutes.
const STORE_RETRY_TIMEOUT: Duration = Duration::from_secs(20);
const STORE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One request's limit: a compacted day's file (a few hundred MB) fits in it on a slow link.
const STORE_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Schemes `--data-dir` could be mistaken to take.
const OTHER_SCHEMES: [&str; 6] = ["gs://", "gcs://", "az://", "abfs://", "http://", "https://"];

impl LakeLocation {
    /// `s3://BUCKET[/PREFIX]` for a bucket (credentials and endpoint from the environment),
    /// anything else for a local directory. Other URL schemes are refused by name.
    pub fn parse(location: &str) -> Result<LakeLocation, IngestError> {
        let bad = |why: String| IngestError::Location(format!("{location:?}: {why}"));
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket: use s3://BUCKET/PREFIX".into()));
            }
            if !bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
            {
                return Err(bad(format!("{bucket:?} is not a bucket name")));
            }
            let retry = RetryConfig {
                max_retries: 3,
                retry_timeout: STORE_RETRY_TIMEOUT,
                ..Default::default()
            };
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry);
            // Defaults for the timeouts the environment does not set (AWS_CONNECT_TIMEOUT,
            // AWS_TIMEOUT); everything else (AWS_ALLOW_HTTP, …) as the environment says.
            for (variable, key, value) in [
                (
                    "AWS_CONNECT_TIMEOUT",
                    ClientConfigKey::ConnectTimeout,
                    STORE_CONNECT_TIMEOUT,
                ),
                (
                    "AWS_TIMEOUT",
                    ClientConfigKey::Timeout,
                    STORE_REQUEST_TIMEOUT,
                ),
            ] {
                if std::env::var_os(variable).is_none() {
                    builder = builder.with_config(
                        AmazonS3ConfigKey::Client(key),
                        format!("{}s", value.as_secs()),
                    );
                }
            }
            let store = builder.build().map_err(|e| bad(e.to_string()))?;
            return Ok(LakeLocation::Bucket(Bucket {
                name: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
                store: Arc::new(store),
            }));
        }
        if let Some(scheme) = OTHER_SCHEMES.iter().find(|s| location.starts_with(*s)) {
            return Err(bad(format!(
                "{scheme} lakes are not supported: use a directory or s3://BUCKET/PREFIX"
            )));
        }
        Ok(LakeLocation::Local(PathBuf::from(location)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn directories_buckets_and_refusals() {
        let LakeLocation::Local(dir) = LakeLocation::parse("./lake").unwrap() else {
            panic!("a directory");
        };
        assert_eq!(dir, PathBuf::from("./lake"));
        let LakeLocation::Bucket(b) = LakeLocation::parse("s3://lakes/prod/lake/").unwrap() else {
            panic!("a bucket");
        };
        assert_eq!(b.prefix, "prod/lake");
        assert_eq!(b.url_of("events"), "s3://lakes/prod/lake/events/");
        assert_eq!(b.url_of(""), "s3://lakes/prod/lake/");
        let LakeLocation::Bucket(b) = LakeLocation::parse("s3://lakes").unwrap() else {
            panic!("a bucket");
        };
        assert_eq!(b.url_of("events"), "s3://lakes/events/");
        assert_eq!(b.key_of("events/a.parquet").as_ref(), "events/a.parquet");
        let LakeLocation::Bucket(b) = LakeLocation::parse("s3://lakes/prod").unwrap() else {
            panic!("a bucket");
        };
        let key = b.key_of("/events/date=2026-11-30/a.parquet");
        assert_eq!(key.as_ref(), "prod/events/date=2026-11-30/a.parquet");
        assert_eq!(
            b.relative_of(&key),
            Some("events/date=2026-11-30/a.parquet")
        );
        let other = object_store::path::Path::from("production/x");
        assert_eq!(b.relative_of(&other), None);
        for (bad, needle) in [
            ("s3://", "no bucket"),
            ("s3:///lake", "no bucket"),
            ("s3://a b/lake", "not a bucket name"),
            ("gs://b/lake", "not supported"),
            ("https://example.com/lake", "not supported"),
        ] {
            let e = LakeLocation::parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
