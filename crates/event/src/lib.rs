//! Event schema v1: the one definition of a routed request that every modelshare crate uses.
//!
//! A router sends one event per request. This crate parses it once at the edge (JSON object →
//! [`Event`]), validates every field with a message a user can act on, and owns the Arrow schema
//! the lake is written in, the binary record format of the write-ahead log, and the hand-off of
//! acknowledged-but-unflushed rows from ingest to query.
//!
//! Layout:
//! - [`task`], [`status`], [`context`]: the closed vocabularies (typed, never free strings inside).
//! - [`event`]: the typed [`Event`], its parts ([`ModelSlug`], [`MicroUsd`], [`Timestamp`]).
//! - [`parse`]: JSON → [`Event`] with per-field validation errors.
//! - [`schema`]: the Arrow schema and the events → `RecordBatch` builder.
//! - [`codec`]: the compact binary encoding used by the write-ahead log.
//! - [`live`]: the buffer of acknowledged rows that queries see before they reach Parquet.
//! - [`cube`]: the app-day cube's layout and schema, and which days it answers for.

pub mod codec;
pub mod context;
pub mod cube;
pub mod event;
pub mod live;
pub mod parse;
pub mod schema;
pub mod status;
pub mod task;

pub use context::Context;
pub use event::{Event, MicroUsd, ModelSlug, Timestamp};
pub use parse::{EventError, Validator};
pub use status::Status;
pub use task::Task;

/// Written into every Parquet file's key-value metadata under [`SCHEMA_VERSION_KEY`].
pub const SCHEMA_VERSION: &str = "1";
/// The Parquet key-value metadata key that carries [`SCHEMA_VERSION`].
pub const SCHEMA_VERSION_KEY: &str = "modelshare.schema_version";
