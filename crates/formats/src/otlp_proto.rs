//! The OTLP trace messages (`opentelemetry/proto/collector/trace/v1` and the `trace`, `common`
//! and `resource` messages it uses), from the `opentelemetry-proto` crate: prost messages only,
//! no gRPC transport. About 17 s of release build on 2 cores (the crate, `opentelemetry`,
//! `opentelemetry_sdk`, `tonic`'s message half), for messages that stay in sync with upstream.

pub use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
pub use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value,
};
pub use opentelemetry_proto::tonic::resource::v1::Resource;
pub use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
