//! The event parser must answer every byte string with an event or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelshare_event::{Timestamp, Validator};

fuzz_target!(|data: &[u8]| {
    let v = Validator::at(Timestamp(1_795_600_000_000_000));
    if let Ok(e) = v.parse(data) {
        // Whatever was accepted is within the schema's bounds.
        assert!(e.ts >= modelshare_event::parse::EARLIEST_TS);
        assert!(!e.event_id.is_empty() && !e.app_id.is_empty());
    }
});
