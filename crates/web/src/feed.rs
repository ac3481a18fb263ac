//! `GET /feeds/shifts.atom`: the significant share shifts of the last closed days and ISO weeks
//! as an Atom 1.0 feed (RFC 4287), so a reader is told when a model gains or loses share
//! instead of having to ask on the right day. Each entry is one movement of `/v1/shifts`: task,
//! segment, model, direction, size, the apps that moved each way and the price changes
//! attached. The feed covers all prompt lengths, or one context segment with `context=` (one
//! feed per segment, so a reader subscribes to the lengths it cares about).
//!
//! An entry's `updated` is the end of its period, when the movement became known; its id is
//! derived from (period kind, period start, task, segment, model, direction), so it is stable
//! across requests and servers.

use crate::analytics::{ShiftKind, ShiftsAnswer, compute_shifts, rollups};
use crate::openapi::query_params;
use crate::params::Params;
use crate::{ApiError, AppState};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{Days, NaiveDate, Utc};
use modelshare_analytics::shifts::Movement;
use modelshare_event::Context;
use modelshare_query::{Period, PeriodKind};
use modelshare_site::html::esc;
use sha2::{Digest, Sha256};
use std::fmt::Write;

type QueryParams = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Closed days whose shifts the feed lists.
pub const FEED_DAYS: u64 = 7;
/// Closed ISO weeks whose shifts the feed lists.
pub const FEED_WEEKS: u64 = 4;

query_params!(
    /// Query parameters of `/feeds/shifts.atom`.
    FeedParams = ["date", "context"]
);

/// The site's HTML escaping (valid in XML too), after dropping the characters XML 1.0 forbids.
fn xml_escape(s: &str) -> String {
    let allowed = |c: &char| {
        matches!(c, '\t' | '\n' | '\r') || (*c >= ' ' && *c != '\u{FFFE}' && *c != '\u{FFFF}')
    };
    esc(&s.chars().filter(allowed).collect::<String>())
}

/// A stable `urn:uuid:` for `key` (the first 16 bytes of its SHA-256, version 5 layout).
fn urn(key: &str) -> String {
    let d = Sha256::digest(key.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// What titles add for one segment's feed (` at long context`); nothing over all lengths.
fn at_length(context: Option<Context>) -> String {
    context.map_or_else(String::new, |c| format!(" at {c} context"))
}

/// The instant a period closed, RFC 3339.
fn closed_at(period: &Period) -> String {
    format!("{}T00:00:00Z", period.end)
}

/// One entry: its `updated` (for ordering) and its XML.
fn entry(
    (answer, context): (&ShiftsAnswer, Option<Context>),
    task: &str,
    m: &Movement,
    gained: bool,
) -> (String, String) {
    let kind = answer.period.kind;
    let start = answer.period.start;
    let direction = if gained { "gained" } else { "lost" };
    let updated = closed_at(&answer.period);
    let at_length = at_length(context);
    let title = format!(
        "{} {direction} {:.1} pp of {task} tokens{at_length} ({kind} of {start})",
        m.model,
        m.change.abs() * 100.0
    );
    let mut summary = format!(
        "Share of {task} tokens {:.2}% → {:.2}% ({:+.2} pp) against the {kind} before. {} apps \
         active in both raised their share of it, {} lowered it (q = {:.4}).",
        m.previous_share * 100.0,
        m.share * 100.0,
        m.change * 100.0,
        m.apps_up,
        m.apps_down,
        m.q_value,
    );
    for c in &m.price_changes {
        let _ = write!(
            summary,
            " Price change on {}: blended {:+.1}% ({:.2} → {:.2} $/Mtok).",
            c.date,
            c.relative_change() * 100.0,
            c.old.blended_usd_per_mtok(),
            c.new.blended_usd_per_mtok(),
        );
    }
    // Ids of all lengths' entries are those from before segments existed.
    let segment = context.map_or_else(String::new, |c| format!("{c}/"));
    let id = urn(&format!(
        "modelshare/shift/{kind}/{start}/{task}/{segment}{}/{direction}",
        m.model
    ));
    let mut link = format!("/v1/shifts?period={kind}&date={start}&task={task}");
    if let Some(c) = context {
        let _ = write!(link, "&context={c}");
    }
    let segment_term = context.map_or("all", |c| c.as_str());
    let xml = format!(
        "<entry><id>{id}</id><title>{title}</title><updated>{updated}</updated>\
         <link rel=\"alternate\" type=\"application/json\" href=\"{link}\"/>\
         <link rel=\"related\" type=\"text/html\" href=\"/models/{model}\"/>\
         <category term=\"{task}\" label=\"task\"/><category term=\"{direction}\" label=\"direction\"/>\
         <category term=\"{kind}\" label=\"period\"/>\
         <category term=\"{segment_term}\" label=\"context\"/>\
         <summary type=\"text\">{summary}</summary></entry>",
        title = xml_escape(&title),
        link = xml_escape(&link),
        model = xml_escape(&m.model),
        task = xml_escape(task),
        summary = xml_escape(&summary),
    );
    (updated, xml)
}

/// The feed for the periods closed before `date`, in one segment or all: entries newest first.
fn feed_xml(answers: &[ShiftsAnswer], context: Option<Context>, date: NaiveDate) -> String {
    let mut entries: Vec<(String, String)> = Vec::new();
    for answer in answers {
        for t in &answer.tasks {
            let task = t.task.as_str();
            let at = (answer, context);
            entries.extend(t.gainers.iter().map(|m| entry(at, task, m, true)));
            entries.extend(t.losers.iter().map(|m| entry(at, task, m, false)));
        }
    }
    entries.sort_by(|a, b| b.0.cmp(&a.0));
    let updated = entries
        .first()
        .map_or_else(|| format!("{date}T00:00:00Z"), |e| e.0.clone());
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    let at_length = at_length(context);
    let (id, query) = match context {
        None => (urn("modelshare/feeds/shifts"), String::new()),
        Some(c) => (
            urn(&format!("modelshare/feeds/shifts/{c}")),
            format!("?context={c}"),
        ),
    };
    let _ = write!(
        out,
        "<feed xmlns=\"http://www.w3.org/2005/Atom\"><id>{id}</id>\
         <title>modelshare: significant share shifts{at_length}</title>\
         <subtitle>Models gaining or losing share of a task's tokens, per closed day and ISO \
         week, tested over the apps that moved (docs/METRICS.md)</subtitle>\
         <updated>{updated}</updated><link rel=\"self\" href=\"/feeds/shifts.atom{query}\"/>\
         <author><name>modelshare</name></author><generator>modelshare</generator>",
    );
    for (_, xml) in entries {
        out.push_str(&xml);
    }
    out.push_str("</feed>\n");
    out
}

/// Significant share shifts, as an Atom feed
///
/// The last 7 closed days and 4 closed ISO weeks before `date` (default: today, UTC), each
/// significant gainer and loser of `/v1/shifts` one entry, newest first; over all prompt
/// lengths, or in the `context` segment.
#[utoipa::path(get, path = "/feeds/shifts.atom", params(FeedParams),
    responses((status = 200, description = "an Atom 1.0 feed", content((String = "application/atom+xml")))))]
pub async fn shifts_feed(State(s): State<AppState>, q: QueryParams) -> Result<Response, ApiError> {
    let p = Params::new(q, FeedParams::NAMES)?;
    let date = p.date("date")?.unwrap_or_else(|| Utc::now().date_naive());
    let context = p.get::<Context>("context")?;
    let rollups = rollups(&s)?;
    let mut answers = Vec::new();
    for back in 1..=FEED_DAYS {
        let day = date - Days::new(back);
        answers
            .push(compute_shifts(&s.query, rollups, (None, context), ShiftKind::Day, day).await?);
    }
    let this_week = Period::containing(PeriodKind::Week, date);
    for back in 1..=FEED_WEEKS {
        let day = this_week.start - Days::new(7 * back);
        answers
            .push(compute_shifts(&s.query, rollups, (None, context), ShiftKind::Week, day).await?);
    }
    Ok((
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        feed_xml(&answers, context, date),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_ids_are_stable_uuids() {
        assert_eq!(
            xml_escape("a<b>&\"c\"'d'\u{1}\n"),
            "a&lt;b&gt;&amp;&quot;c&quot;&#39;d&#39;\n"
        );
        let id = urn("modelshare/shift/day/2026-11-09/programming/x/y/gained");
        assert_eq!(
            id,
            urn("modelshare/shift/day/2026-11-09/programming/x/y/gained")
        );
        assert_ne!(
            id,
            urn("modelshare/shift/day/2026-11-09/programming/x/y/lost")
        );
        let uuid = id.strip_prefix("urn:uuid:").unwrap_or_default();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "5");
    }
}
