//! Snapshot downloads: `GET /v1/snapshots` lists the published weekly Parquet files and
//! `GET|HEAD /v1/snapshots/{name}.parquet` serves one with a strong ETag (its sha256),
//! `If-None-Match` (304), and single byte ranges (206 / 416). A `Range` with several ranges is
//! answered with the whole file (200), which RFC 9110 allows. Names are validated strictly
//! (`YYYY-Www.rN.parquet`), so no request can reach a path outside the snapshots directory.

use crate::openapi::Binary;
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use modelshare_snapshot::{SnapshotError, SnapshotInfo, SnapshotName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

type QueryParams = Result<Query<Vec<(String, String)>>, QueryRejection>;

impl From<SnapshotError> for ApiError {
    fn from(e: SnapshotError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

/// Runs blocking snapshot work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SnapshotError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("snapshot task failed: {e}")))?
        .map_err(ApiError::from)
}

fn lake_root(s: &AppState) -> Result<std::path::PathBuf, ApiError> {
    s.snapshots
        .clone()
        .ok_or_else(|| ApiError::NotFound("this server publishes no snapshots".into()))
}

/// The download path of a snapshot.
pub fn snapshot_url(info: &SnapshotInfo) -> String {
    format!("/v1/snapshots/{}", info.file)
}

/// Weekly Parquet snapshots: week, revision, rows, bytes, sha256, url
///
/// Every published revision, oldest week first.
#[utoipa::path(get, path = "/v1/snapshots",
    responses((status = 200, description = "the published snapshots", body = Object)))]
pub async fn list(State(s): State<AppState>, q: QueryParams) -> Result<Json<Value>, ApiError> {
    let Query(pairs) =
        q.map_err(|e| ApiError::InvalidParameter(format!("malformed query string: {e}")))?;
    if let Some((k, _)) = pairs.first() {
        return Err(ApiError::InvalidParameter(format!(
            "unknown parameter {k:?}; /v1/snapshots takes no parameters"
        )));
    }
    let root = lake_root(&s)?;
    let infos = blocking(move || modelshare_snapshot::list(&root)).await?;
    let rows: Vec<Value> = infos
        .iter()
        .map(|i| {
            json!({
                "week": i.week,
                "revision": i.revision,
                "name": i.name,
                "rows": i.rows,
                "bytes": i.bytes,
                "sha256": i.sha256,
                "content_sha256": i.content_sha256,
                "url": snapshot_url(i),
            })
        })
        .collect();
    Ok(Json(json!({ "snapshots": rows })))
}

/// What a `Range` header asks for, against a file of a known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable single range: send the whole file.
    Full,
    /// Bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// A well-formed range that lies outside the file.
    Unsatisfiable,
}

/// Parses `bytes=a-b`, `bytes=a-` and `bytes=-n`. Other units, several ranges and malformed
/// values are ignored (whole file), as RFC 9110 allows.
pub fn parse_range(header: Option<&str>, len: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => RangeRequest::Full,
        (true, false) => match num(b) {
            None => RangeRequest::Full,
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if len == 0 => RangeRequest::Unsatisfiable,
            Some(n) => RangeRequest::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            },
        },
        (false, _) => {
            let Some(start) = num(a) else {
                return RangeRequest::Full;
            };
            let end = if b.is_empty() {
                u64::MAX
            } else {
                match num(b) {
                    Some(e) if e >= start => e,
                    _ => return RangeRequest::Full,
                }
            };
            if start >= len {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial {
                    start,
                    end: end.min(len - 1),
                }
            }
        }
    }
}

/// True when an `If-None-Match` value matches `etag` (weak comparison, `*` matches).
fn none_match(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// Download one snapshot (`2026-W47.r1.parquet`): ETag, Range, If-None-Match
///
/// Also answers `HEAD`.
#[utoipa::path(get, path = "/v1/snapshots/{file}",
    params(("file" = String, Path, description = "a snapshot file name, as `/v1/snapshots` lists it")),
    responses(
        (status = 200, description = "the Parquet file", content((
            Binary = "application/vnd.apache.parquet"))),
        (status = 206, description = "the requested byte range", content((
            Binary = "application/vnd.apache.parquet"))),
        (status = 304, description = "unchanged since the ETag in If-None-Match"),
        (status = 416, description = "the Range lies outside the file")))]
pub async fn download(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(file) = path.map_err(|e| ApiError::BadRequest(format!("bad snapshot path: {e}")))?;
    let not_found = || {
        ApiError::NotFound(format!(
            "no snapshot {file:?}; names look like 2026-W47.r1.parquet (see /v1/snapshots)"
        ))
    };
    let name: SnapshotName = file
        .strip_suffix(".parquet")
        .and_then(|n| n.parse().ok())
        .ok_or_else(not_found)?;
    let root = lake_root(&s)?;
    let info = blocking(move || modelshare_snapshot::find(&root, name))
        .await?
        .ok_or_else(not_found)?;
    let etag = format!("\"{}\"", info.sha256);
    let header_str = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());

    let mut resp = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable");
    if header_str(header::IF_NONE_MATCH).is_some_and(|h| none_match(h, &etag)) {
        return resp
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(|e| ApiError::Internal(e.to_string()));
    }
    let len = info.bytes;
    // A Range is honoured only while the client's copy (If-Range) is still current.
    let range_header = match header_str(header::IF_RANGE) {
        Some(v) if v.trim() != etag => None,
        _ => header_str(header::RANGE),
    };
    let (status, start, count) = match parse_range(range_header, len) {
        RangeRequest::Full => (StatusCode::OK, 0, len),
        RangeRequest::Partial { start, end } => {
            resp = resp.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeRequest::Unsatisfiable => {
            let body = json!({ "error": { "code": "range_not_satisfiable",
                "message": format!("the file has {len} bytes") } });
            let mut r = (StatusCode::RANGE_NOT_SATISFIABLE, Json(body)).into_response();
            let h = r.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                h.insert(header::CONTENT_RANGE, v);
            }
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            return Ok(r);
        }
    };
    resp = resp
        .status(status)
        .header(header::CONTENT_TYPE, "application/vnd.apache.parquet")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", info.file),
        )
        .header(header::CONTENT_LENGTH, count);
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        let io = |e: std::io::Error| ApiError::Internal(format!("{}: {e}", info.path.display()));
        let mut f = tokio::fs::File::open(&info.path).await.map_err(io)?;
        f.seek(std::io::SeekFrom::Start(start)).await.map_err(io)?;
        let mut buf = vec![
            0u8;
            usize::try_from(count)
                .map_err(|_| ApiError::Internal("range too large".into()))?
        ];
        f.read_exact(&mut buf).await.map_err(io)?;
        Body::from(buf)
    };
    resp.body(body)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeRequest::*;
        let p = |h: &str| parse_range(Some(h), 100);
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(p("bytes=0-9"), Partial { start: 0, end: 9 });
        assert_eq!(p("bytes=90-200"), Partial { start: 90, end: 99 });
        assert_eq!(p("bytes=95-"), Partial { start: 95, end: 99 });
        assert_eq!(p("bytes=-10"), Partial { start: 90, end: 99 });
        assert_eq!(p("bytes=-1000"), Partial { start: 0, end: 99 });
        assert_eq!(p("bytes=100-"), Unsatisfiable);
        assert_eq!(p("bytes=100-200"), Unsatisfiable);
        assert_eq!(p("bytes=-0"), Unsatisfiable);
        assert_eq!(p("bytes=0-1,5-6"), Full);
        assert_eq!(p("bytes=9-1"), Full);
        assert_eq!(p("bytes=x-1"), Full);
        assert_eq!(p("bytes=+1-2"), Full);
        assert_eq!(p("items=0-1"), Full);
        assert_eq!(p("bytes=-"), Full);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
    }

    #[test]
    fn if_none_match() {
        assert!(none_match("\"abc\"", "\"abc\""));
        assert!(none_match("W/\"abc\"", "\"abc\""));
        assert!(none_match("\"x\", \"abc\"", "\"abc\""));
        assert!(none_match("*", "\"abc\""));
        assert!(!none_match("\"abd\"", "\"abc\""));
    }
}
