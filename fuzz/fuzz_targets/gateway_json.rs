//! OTLP/JSON, LiteLLM and OpenRouter JSON mapping never panic on hostile bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelshare_event::{Timestamp, Validator};
use modelshare_formats::Context;

fuzz_target!(|data: &[u8]| {
    let ctx = Context {
        bound_app: Some("fuzz-app".into()),
        validator: Validator::at(Timestamp(1_795_600_000_000_000)),
    };
    let _ = modelshare_formats::otlp::from_json(data, &ctx);
    let _ = modelshare_formats::litellm::from_json(data, &ctx);
    let _ = modelshare_formats::openrouter::from_json(data, &ctx);
});
