//! Compact binary encoding of events for the write-ahead log.
//!
//! Little-endian integers, strings as `u16` length + UTF-8 bytes. Decoding never trusts its
//! input: a torn or corrupt record yields [`CodecError`], not a panic.
//!
//! Events are encoded with their agent fields (`trace_id`, `step`) after `attempt`; events
//! written before those fields existed end at `attempt`. The container says which form it holds
//! ([`Reader::event`] takes it), so old write-ahead logs still replay.

use crate::event::{MicroUsd, ModelSlug, Timestamp};
use crate::{Event, Status, Task};

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt event record: {0}")]
pub struct CodecError(pub &'static str);

/// Appends the encoding of `e` to `out`.
pub fn encode(e: &Event, out: &mut Vec<u8>) {
    put_str(out, &e.event_id);
    out.extend_from_slice(&e.ts.0.to_le_bytes());
    put_str(out, &e.app_id);
    out.push(e.task as u8);
    put_str(out, &e.model_requested);
    put_str(out, e.model.as_str());
    put_str(out, &e.provider);
    for n in [
        e.input_tokens,
        e.output_tokens,
        e.reasoning_tokens,
        e.cached_tokens,
    ] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(&e.cost.0.to_le_bytes());
    out.extend_from_slice(&e.latency_ms.to_le_bytes());
    out.extend_from_slice(&e.ttft_ms.to_le_bytes());
    out.push(e.status as u8);
    match &e.finish_reason {
        Some(r) => {
            out.push(1);
            put_str(out, r);
        }
        None => out.push(0),
    }
    out.push(e.attempt);
    let tag = u8::from(e.trace_id.is_some()) | (u8::from(e.step.is_some()) << 1);
    out.push(tag);
    if let Some(t) = &e.trace_id {
        put_str(out, t);
    }
    if let Some(s) = e.step {
        out.extend_from_slice(&s.to_le_bytes());
    }
}

/// Writes a length-prefixed string (strings are validated to far below `u16::MAX`).
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

/// A cursor over an encoded buffer.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.buf.len() < n {
            return Err(CodecError("truncated"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, CodecError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn i64(&mut self) -> Result<i64, CodecError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }

    pub fn str(&mut self) -> Result<&'a str, CodecError> {
        let b = self.take(2)?;
        let len = usize::from(u16::from_le_bytes([b[0], b[1]]));
        std::str::from_utf8(self.take(len)?).map_err(|_| CodecError("invalid utf-8"))
    }

    /// Decodes one event written by [`encode`]; `with_agent_fields` is false for events written
    /// before the agent fields existed (they end at `attempt`).
    pub fn event(&mut self, with_agent_fields: bool) -> Result<Event, CodecError> {
        let event_id = self.str()?.to_owned();
        let ts = Timestamp(self.i64()?);
        let app_id = self.str()?.to_owned();
        let task = *Task::ALL
            .get(usize::from(self.u8()?))
            .ok_or(CodecError("unknown task"))?;
        let model_requested = self.str()?.to_owned();
        let model = ModelSlug::parse(self.str()?).map_err(|_| CodecError("invalid model"))?;
        let provider = self.str()?.to_owned();
        let input_tokens = self.u32()?;
        let output_tokens = self.u32()?;
        let reasoning_tokens = self.u32()?;
        let cached_tokens = self.u32()?;
        let cost = MicroUsd(self.i64()?);
        let latency_ms = self.u32()?;
        let ttft_ms = self.u32()?;
        let status = *Status::ALL
            .get(usize::from(self.u8()?))
            .ok_or(CodecError("unknown status"))?;
        let finish_reason = match self.u8()? {
            0 => None,
            1 => Some(self.str()?.to_owned()),
            _ => return Err(CodecError("bad finish_reason tag")),
        };
        let attempt = self.u8()?;
        let (mut trace_id, mut step) = (None, None);
        if with_agent_fields {
            let tag = self.u8()?;
            if tag > 3 {
                return Err(CodecError("bad agent fields tag"));
            }
            if tag & 1 != 0 {
                trace_id = Some(self.str()?.to_owned());
            }
            if tag & 2 != 0 {
                step = Some(self.u32()?);
            }
        }
        Ok(Event {
            event_id,
            ts,
            app_id,
            task,
            model_requested,
            model,
            provider,
            input_tokens,
            output_tokens,
            reasoning_tokens,
            cached_tokens,
            cost,
            latency_ms,
            ttft_ms,
            status,
            finish_reason,
            attempt,
            trace_id,
            step,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        Event {
            event_id: "gen-1".into(),
            ts: Timestamp(1_795_168_800_000_000),
            app_id: "app".into(),
            task: Task::Legal,
            model_requested: "openrouter/auto".into(),
            model: ModelSlug::parse("openai/gpt-4o").unwrap(),
            provider: "azure".into(),
            input_tokens: 1,
            output_tokens: 2,
            reasoning_tokens: 3,
            cached_tokens: 4,
            cost: MicroUsd(5),
            latency_ms: 6,
            ttft_ms: 7,
            status: Status::RateLimited,
            finish_reason: Some("stop".into()),
            attempt: 2,
            trace_id: Some("trace-1".into()),
            step: Some(3),
        }
    }

    #[test]
    fn round_trip() {
        for e in [
            sample(),
            Event {
                trace_id: None,
                step: None,
                ..sample()
            },
            Event {
                step: None,
                ..sample()
            },
        ] {
            let mut buf = Vec::new();
            encode(&e, &mut buf);
            let mut r = Reader::new(&buf);
            assert_eq!(r.event(true).unwrap(), e);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn events_written_before_the_agent_fields_still_decode() {
        let old = Event {
            trace_id: None,
            step: None,
            ..sample()
        };
        let mut buf = Vec::new();
        encode(&old, &mut buf);
        // The old form: everything up to `attempt`, without the agent tag.
        buf.pop();
        let mut r = Reader::new(&buf);
        assert_eq!(r.event(false).unwrap(), old);
        assert!(r.is_empty());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let mut buf = Vec::new();
        encode(&sample(), &mut buf);
        for cut in 0..buf.len() {
            assert!(
                Reader::new(&buf[..cut]).event(true).is_err(),
                "cut at {cut}"
            );
        }
    }
}
