//! [`ApiError`]: every failure the API reports, as `{"error": {"code", "message"}}` with the
//! right status. Internal failures are logged and answered without their details.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use modelshare_ingest::IngestError;
use modelshare_query::QueryError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    NotFound(String),
    #[error("request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("query took too long; narrow the period or the task")]
    QueryTimeout,
    #[error("internal error")]
    Internal(String),
    /// Events were not stored and retrying will not help until an operator acts.
    #[error("events were not stored: {0}")]
    StorageFault(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("too many requests from this client; retry in {0} s")]
    TooManyRequests(u64),
    #[error("the request took longer than {0} s")]
    RequestTimeout(u64),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::InvalidParameter(_) => (StatusCode::BAD_REQUEST, "invalid_parameter"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::QueryTimeout => (StatusCode::SERVICE_UNAVAILABLE, "query_timeout"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::StorageFault(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage_fault"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(detail, "internal error");
        }
        let body = crate::openapi::ErrorBody {
            error: crate::openapi::ErrorDetail {
                code,
                message: self.to_string(),
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let ApiError::TooManyRequests(secs) = self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"modelshare\""),
            );
        }
        resp
    }
}

impl From<IngestError> for ApiError {
    /// Transient faults are 503 (the caller retries); permanent ones are 500 with a message
    /// that says what an operator must look at, and the full cause in the log.
    fn from(e: IngestError) -> Self {
        if e.is_retryable() {
            tracing::warn!(error = %e, "ingest refused a batch");
            return ApiError::Unavailable(format!("cannot store events right now: {e}"));
        }
        tracing::error!(error = %e, "ingest failed permanently");
        match &e {
            IngestError::Locked(_) => {
                ApiError::StorageFault("the lake is locked by another modelshare process".into())
            }
            IngestError::CorruptWal { .. } => ApiError::StorageFault(
                "the write-ahead log is damaged; an operator must run `modelshare wal check`"
                    .into(),
            ),
            IngestError::Io { source, .. } => ApiError::StorageFault(format!(
                "the lake's disk refuses writes ({}); an operator must fix it",
                source.kind()
            )),
            _ => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Timeout(_) => ApiError::QueryTimeout,
            QueryError::Busy => {
                ApiError::Unavailable("the server is busy with other queries; retry shortly".into())
            }
            QueryError::Unreachable(why) => {
                tracing::warn!(error = %why, "the query cluster cannot be reached");
                ApiError::Unavailable("the query cluster cannot be reached; retry shortly".into())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn io(kind: std::io::ErrorKind, errno: Option<i32>) -> IngestError {
        let source = match errno {
            Some(n) => std::io::Error::from_raw_os_error(n),
            None => std::io::Error::from(kind),
        };
        IngestError::Io {
            path: PathBuf::from("/lake/wal/0000000000000001.wal"),
            source: Arc::new(source),
        }
    }

    fn answer(e: IngestError) -> (u16, Option<String>) {
        let resp = ApiError::from(e).into_response();
        let status = resp.status().as_u16();
        let retry = resp
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        (status, retry)
    }

    #[test]
    fn each_class_of_ingest_fault_keeps_its_kind() {
        // Transient: 503 with Retry-After.
        for e in [
            io(std::io::ErrorKind::StorageFull, Some(28)),
            io(std::io::ErrorKind::Other, Some(5)),
            io(std::io::ErrorKind::QuotaExceeded, Some(122)),
            IngestError::Backpressure("commit queue is full".into()),
            IngestError::ShuttingDown,
        ] {
            let (status, retry) = answer(e.clone());
            assert_eq!((status, retry.as_deref()), (503, Some("1")), "{e}");
        }
        // Permanent: 500, no Retry-After, and the clone of one fault answers like the original.
        for (e, code) in [
            (
                io(std::io::ErrorKind::ReadOnlyFilesystem, Some(30)),
                "storage_fault",
            ),
            (
                io(std::io::ErrorKind::PermissionDenied, Some(13)),
                "storage_fault",
            ),
            (IngestError::Locked(PathBuf::from("/lake")), "storage_fault"),
            (
                IngestError::CorruptWal {
                    path: PathBuf::from("/lake/wal/1.wal"),
                    message: "bad magic".into(),
                },
                "storage_fault",
            ),
            (IngestError::Schema("ts column missing"), "internal"),
        ] {
            for one in [e.clone(), e] {
                let api = ApiError::from(one);
                assert_eq!(
                    api.status_and_code(),
                    (StatusCode::INTERNAL_SERVER_ERROR, code)
                );
                let resp = api.into_response();
                assert!(resp.headers().get(header::RETRY_AFTER).is_none());
            }
        }
        // The message says what to look at, not where the files are.
        let msg = ApiError::from(io(std::io::ErrorKind::ReadOnlyFilesystem, Some(30))).to_string();
        assert_eq!(
            msg,
            "events were not stored: the lake's disk refuses writes (read-only filesystem or storage medium); an operator must fix it"
        );
    }
}
