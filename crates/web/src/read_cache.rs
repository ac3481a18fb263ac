//! The public reads' response cache: the JSON of `/v1/leaderboard`, `/v1/share`, …, the
//! website's pages and charts, kept per request (path and query), served while younger than [`FRESH_FOR`] whatever arrives, and up to
//! [`MAX_AGE`] while no event arrives (the lake generation is unchanged); computed once for any
//! number of identical requests arriving together (the others wait for the first). So the cost
//! of a public read does not grow with the number of readers, a thousand visitors asking for
//! this week's leaderboard under a busy ingest cost one query a second, and an acknowledged
//! event shows in every answer within [`FRESH_FOR`].

use crate::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use modelshare_site::cache::CAPACITY;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Served whatever arrived since it was computed while younger than this.
pub const FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(1);
/// Served at an unchanged lake generation while younger than this (a rollup rebuilt from files
/// already counted in the generation shows within it).
pub const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(10);

/// Largest answer read into the cache (bytes); public answers are far smaller.
const MAX_CACHED_BYTES: usize = 64 << 20;

#[derive(Debug, Clone)]
struct Answer {
    generation: u64,
    /// The consent records' version it was computed at: an app's withdrawal must not wait for
    /// [`FRESH_FOR`].
    consents: u64,
    at: Instant,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn valid_at(&self, generation: u64, consents: u64) -> bool {
        let age = self.at.elapsed();
        age < MAX_AGE
            && self.consents == consents
            && (self.generation == generation || age < FRESH_FOR)
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Answer>>>;

/// Answers by request, one slot each; a slot's lock makes identical requests wait for one
/// computation.
#[derive(Debug, Default)]
pub struct ReadCache {
    slots: Mutex<HashMap<String, (Instant, Slot)>>,
}

impl ReadCache {
    fn slot(&self, key: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((used, slot)) = slots.get_mut(key) {
            *used = Instant::now();
            return Arc::clone(slot);
        }
        if slots.len() >= CAPACITY
            && let Some(oldest) = slots
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(k, _)| k.clone())
        {
            slots.remove(&oldest);
        }
        let slot = Slot::default();
        slots.insert(key.to_owned(), (Instant::now(), Arc::clone(&slot)));
        slot
    }

    /// Requests with a slot.
    pub fn len(&self) -> usize {
        self.slots.lock().map_or(0, |s| s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Middleware for the public GET reads: answers from the cache when it can, otherwise runs the
/// handler (once for all identical requests waiting) and keeps a successful answer.
pub async fn cached(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // A conditional request is answered by the handler itself (a 304 when it can be).
    if request.headers().contains_key(header::IF_NONE_MATCH) {
        return next.run(request).await;
    }
    let key = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let slot = state.read_cache.slot(&key);
    let mut held = slot.lock().await;
    let generation = state.lake_generation();
    let consents = state.public_apps.version();
    if let Some(answer) = held.as_ref().filter(|a| a.valid_at(generation, consents)) {
        return respond(answer);
    }
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, MAX_CACHED_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, key, "cannot read a public answer");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let answer = Answer {
        generation,
        consents,
        at: Instant::now(),
        headers: parts.headers.clone(),
        body,
    };
    let out = Response::from_parts(parts, Body::from(answer.body.clone()));
    *held = Some(answer);
    out
}

fn respond(answer: &Answer) -> Response {
    let mut response = Response::new(Body::from(answer.body.clone()));
    *response.headers_mut() = answer.headers.clone();
    response
}
