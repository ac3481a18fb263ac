//! Who may write and who may run SQL, decided by [`gate`] from the request head before any body
//! is read: an anonymous `Content-Length: 1000000` is answered 401 at once instead of holding a
//! connection and a buffer while the body trickles in.
//!
//! Every request that is not a read (any method but `GET`, `HEAD`, `OPTIONS`) needs a grant:
//! `POST /v1/sql` and `/v1/admin/…` an admin key, everything else an ingest key bound to an app
//! (admin keys are bound to an app too). Without a key a caller is let in only while the server has never had
//! keys, trusts loopback (`--trust-loopback`) and [`Client::is_local`] holds. Handlers take the
//! grant as an extractor ([`Writer`], [`Admin`]); a request that reaches one without a grant is
//! refused, so a route added without thinking about auth fails closed. Read endpoints are open.

use crate::client::Client;
use crate::keys::{Caller, KeyStatus, Lookup};
use crate::{ApiError, AppState};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What a writer is allowed to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    /// A keyed client: its events are written as `app_id`.
    Keyed(Caller),
    /// A local client on a server that has never had keys: events name their own app.
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

/// May run `POST /v1/sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admin;

/// What a request is asking to do, which decides the grant it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Writer,
    Admin,
}

impl Role {
    fn of(req: &Request) -> Option<Role> {
        if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
            None
        } else if req.uri().path() == "/v1/sql" || req.uri().path().starts_with("/v1/admin/") {
            Some(Role::Admin)
        } else {
            Some(Role::Writer)
        }
    }

    fn doing(self) -> &'static str {
        match self {
            Role::Writer => "send events",
            Role::Admin => "run SQL or change which apps are shown",
        }
    }

    fn create_hint(self) -> &'static str {
        match self {
            Role::Writer => "create one with `modelshare keys create --app APP`",
            Role::Admin => "create one with `modelshare keys create --app APP --admin`",
        }
    }
}

/// Middleware: checks the grant of every non-read request from its headers alone and stores it
/// in the request's extensions for the handler.
pub async fn gate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(role) = Role::of(&req) else {
        return next.run(req).await;
    };
    let client = req
        .extensions()
        .get::<Client>()
        .copied()
        .unwrap_or(Client::UNKNOWN);
    let granted = match role {
        Role::Writer => writer(&state, req.headers(), &client).map(|w| {
            req.extensions_mut().insert(w);
        }),
        Role::Admin => admin(&state, req.headers(), &client).map(|a| {
            req.extensions_mut().insert(a);
        }),
    };
    match granted {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Writer>().cloned().ok_or_else(|| {
            ApiError::Unauthorized(
                "this endpoint needs an ingest key: send `Authorization: Bearer <key>`".into(),
            )
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Admin>().copied().ok_or_else(|| {
            ApiError::Unauthorized(
                "this endpoint needs an admin key: send `Authorization: Bearer <key>`".into(),
            )
        })
    }
}

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

/// A caller without a key: let in only by a server that has never had keys and trusts loopback,
/// and only when the client is local.
fn keyless(state: &AppState, client: &Client, role: Role) -> Result<(), ApiError> {
    let (doing, hint) = (role.doing(), role.create_hint());
    match state.keys.status() {
        KeyStatus::Active => Err(ApiError::Unauthorized(format!(
            "a key is needed to {doing}: send `Authorization: Bearer <key>`"
        ))),
        KeyStatus::NoneActive => Err(ApiError::Unauthorized(format!(
            "a key is needed to {doing}, and this server has no active key (every key is revoked); {hint}"
        ))),
        KeyStatus::NeverConfigured if !state.trust_loopback => Err(ApiError::Forbidden(format!(
            "no key is configured and this server does not trust keyless clients (--trust-loopback is off); {hint}"
        ))),
        KeyStatus::NeverConfigured if client.is_local() => Ok(()),
        KeyStatus::NeverConfigured => Err(ApiError::Forbidden(format!(
            "no key is configured, so only loopback clients connecting directly may {doing}; {hint}"
        ))),
    }
}

/// Authorises an ingest request.
pub fn writer(state: &AppState, headers: &HeaderMap, client: &Client) -> Result<Writer, ApiError> {
    match bearer(headers)? {
        Some(key) => check_key(state, key).map(Writer::Keyed),
        None => keyless(state, client, Role::Writer).map(|()| Writer::Local),
    }
}

/// Authorises an admin request (`POST /v1/sql`).
pub fn admin(state: &AppState, headers: &HeaderMap, client: &Client) -> Result<Admin, ApiError> {
    let Some(key) = bearer(headers)? else {
        return keyless(state, client, Role::Admin).map(|()| Admin);
    };
    if !check_key(state, key)?.admin {
        return Err(ApiError::Forbidden(format!(
            "this key is not an admin key; {}",
            Role::Admin.create_hint()
        )));
    }
    Ok(Admin)
}
