//! Who may write and who may run SQL. Ingest needs a key (`Authorization: Bearer msk_...`) bound
//! to an app; on a lake that has never had keys, only loopback clients may ingest. `POST /v1/sql`
//! needs an admin key (or, on such a lake, a loopback client). Read endpoints are open.

use crate::keys::{Caller, KeyStatus, Lookup};
use crate::{ApiError, AppState};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use std::convert::Infallible;
use std::net::SocketAddr;

/// The TCP peer of the request, when the server was started with connection info.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

impl Peer {
    fn is_loopback(&self) -> bool {
        self.0.is_some_and(|a| a.ip().to_canonical().is_loopback())
    }
}

/// What a writer is allowed to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    /// A keyed client: its events are written as `app_id`.
    Keyed(Caller),
    /// A loopback client on a server with no keys: events name their own app.
    Local,
}

impl Writer {
    /// The app every event of this request must carry, if bound.
    pub fn bound_app(&self) -> Option<&str> {
        match self {
            Writer::Keyed(c) => Some(&c.app_id),
            Writer::Local => None,
        }
    }
}

const CREATE_HINT: &str = "create one with `modelshare keys create --app APP`";

fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| ApiError::Unauthorized("Authorization must be `Bearer <key>`".into()))?;
    match v.split_once(' ') {
        Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty() => {
            Ok(Some(key.trim()))
        }
        _ => Err(ApiError::Unauthorized(
            "Authorization must be `Bearer <key>`".into(),
        )),
    }
}

fn check_key(state: &AppState, key: &str) -> Result<Caller, ApiError> {
    match state.keys.lookup(key) {
        Lookup::Valid(c) => Ok(c),
        Lookup::Revoked => Err(ApiError::Unauthorized("this key has been revoked".into())),
        Lookup::Unknown => Err(ApiError::Unauthorized("unknown key".into())),
    }
}

/// A loopback peer that is not a reverse proxy on the same host forwarding someone else: behind
/// nginx or Caddy every request arrives from 127.0.0.1, so forwarding headers disqualify it.
fn is_direct_local(headers: &HeaderMap, peer: Peer) -> bool {
    peer.is_loopback()
        && !["forwarded", "x-forwarded-for", "x-real-ip"]
            .iter()
            .any(|h| headers.contains_key(*h))
}

/// Authorises an ingest request.
pub fn writer(state: &AppState, headers: &HeaderMap, peer: Peer) -> Result<Writer, ApiError> {
    if let Some(key) = bearer(headers)? {
        return check_key(state, key).map(Writer::Keyed);
    }
    match state.keys.status() {
        KeyStatus::Active => {
            return Err(ApiError::Unauthorized(
                "ingest needs a key: send `Authorization: Bearer <key>`".into(),
            ));
        }
        KeyStatus::NoneActive => {
            return Err(ApiError::Unauthorized(format!(
                "ingest needs a key, and every key of this server is revoked; {CREATE_HINT}"
            )));
        }
        KeyStatus::NeverConfigured => {}
    }
    if is_direct_local(headers, peer) {
        return Ok(Writer::Local);
    }
    Err(ApiError::Forbidden(format!(
        "no ingest key is configured, so only loopback clients may send events; {CREATE_HINT}"
    )))
}

/// Authorises an admin request (`POST /v1/sql`).
pub fn admin(state: &AppState, headers: &HeaderMap, peer: Peer) -> Result<(), ApiError> {
    if let Some(key) = bearer(headers)? {
        let caller = check_key(state, key)?;
        if !caller.admin {
            return Err(ApiError::Forbidden(
                "this key is not an admin key; create one with `modelshare keys create --app APP --admin`".into(),
            ));
        }
        return Ok(());
    }
    match state.keys.status() {
        KeyStatus::Active => {
            return Err(ApiError::Unauthorized(
                "this endpoint needs an admin key: send `Authorization: Bearer <key>`".into(),
            ));
        }
        KeyStatus::NoneActive => {
            return Err(ApiError::Unauthorized(format!(
                "this endpoint needs an admin key, and every key of this server is revoked; {CREATE_HINT} --admin"
            )));
        }
        KeyStatus::NeverConfigured => {}
    }
    if is_direct_local(headers, peer) {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "no key is configured, so only loopback clients may run SQL; {CREATE_HINT} --admin"
    )))
}
