//! Where a lake is read from: a local directory, or a prefix in a bucket of any S3 API
//! (`s3://BUCKET/PREFIX`), reached through `object_store` with its standard variables
//! (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ALLOW_HTTP`). The lake's layout is the same in both: `events/date=YYYY-MM-DD/*.parquet`
//! and the rollups beside it.

use crate::QueryError;
use datafusion::execution::object_store::ObjectStoreUrl;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// A lake's root.
#[derive(Debug, Clone)]
pub enum LakeLocation {
    Local(PathBuf),
    Bucket(Bucket),
}

/// A lake under a prefix of an S3 API bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// `s3://BUCKET`: the object store's key in the query runtime.
    pub store_url: ObjectStoreUrl,
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
        let mut url = self.store_url.as_str().trim_end_matches('/').to_owned();
        for part in [self.prefix.as_str(), relative] {
            if !part.is_empty() {
                url.push('/');
                url.push_str(part.trim_matches('/'));
            }
        }
        url.push('/');
        url
    }
}

/// Schemes `--data-dir` could be mistaken to take.
const OTHER_SCHEMES: [&str; 6] = ["gs://", "gcs://", "az://", "abfs://", "http://", "https://"];

impl LakeLocation {
    /// `s3://BUCKET[/PREFIX]` for a bucket (credentials and endpoint from the environment),
    /// anything else for a local directory. Other URL schemes are refused by name.
    pub fn parse(location: &str) -> Result<LakeLocation, QueryError> {
        let bad = |why: String| QueryError::Location(format!("{location:?}: {why}"));
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket: use s3://BUCKET/PREFIX".into()));
            }
            let store_url = ObjectStoreUrl::parse(format!("s3://{bucket}"))
                .map_err(|e| bad(format!("not a bucket name ({e})")))?;
            let store = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            return Ok(LakeLocation::Bucket(Bucket {
                store_url,
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
        for (bad, needle) in [
            ("s3://", "no bucket"),
            ("s3:///lake", "no bucket"),
            ("gs://b/lake", "not supported"),
            ("https://example.com/lake", "not supported"),
        ] {
            let e = LakeLocation::parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
