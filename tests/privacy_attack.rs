//! Attacks on the publication rule, against the real binary: hand-made lakes put one small app
//! in every position (alone on a model, on a provider of a shared model, on an author, in a
//! task, on one day of a week, among the rest beyond a limit, and the two reproductions of the
//! original report), collect every public figure (every `/v1` read endpoint for the day, week
//! and month of the app and each task, the tables of `/`, `/tasks/{task}` and
//! `/models/{author}/{model}`, the week's snapshot file), and let a small solver try every
//! figure, every sum and difference of two and every signed sum of three, plus shares and prices
//! multiplied back into amounts, to recover the small app's input tokens, output tokens, tokens,
//! requests, failures, spend or latency.
//!
//! With `--min-apps 5` nothing may be recovered; with `--min-apps 1` (every cell publishable)
//! the same solver must recover every one of them, which shows it would see a leak.
//!
//! The crowd's figures are multiples of 50 tokens, 2 requests and 1000 micro-USD; the small
//! app's are not (12,345 / 678 tokens, 1 request, $0.4321, 4,321 ms), so a hit cannot be a
//! coincidence of round numbers.
#![allow(clippy::unwrap_used)]

mod common;

use arrow::array::{Array, Decimal128Array, Int64Array, StringArray};
use chrono::{Datelike, Days, NaiveDate};
use common::{BIN, Server, event, html_tables, ingest, with};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

/// The small app's figures, what the attacker wants to learn.
const INPUT: i128 = 12_345;
const OUTPUT: i128 = 678;
const REQUESTS: i128 = 1;
const COST_MICRO: i128 = 432_100;
const LATENCY: i128 = 4_321;
/// Failed requests of the small app in the scenario that has some.
const FAILURES: i128 = 3;

/// One placement of the small app, in a week of its own.
struct Scenario {
    name: &'static str,
    monday: NaiveDate,
    events: Vec<Value>,
    /// Days to read with `period=day`.
    days: Vec<NaiveDate>,
    tasks: Vec<&'static str>,
    /// Models whose pages to read.
    models: Vec<&'static str>,
    /// Names only the small app used: no public answer may contain them.
    private: Vec<&'static str>,
    failures: bool,
    /// Whether the small app has a snapshot row of its own (task, model, provider, context
    /// segment), where its latency is the row's percentile when every cell is published.
    own_row: bool,
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn ts(day: NaiveDate, hour: u32) -> String {
    format!("{day}T{hour:02}:00:00Z")
}

/// `apps` apps (`{tag}-c1`…) each sending `per_app` requests of `input`/`output` tokens at
/// `micro` micro-USD to `model` through `provider` for `task` on `day`.
#[allow(clippy::too_many_arguments)]
fn crowd(
    tag: &str,
    day: NaiveDate,
    model: &str,
    provider: &str,
    task: &str,
    per_app: u32,
    tokens: (u64, u64),
    micro: u64,
) -> Vec<Value> {
    let mut out = Vec::new();
    for app in 1..=6 {
        for i in 0..per_app {
            let e = event(
                &format!("{tag}-{model}-{app}-{i}"),
                &ts(day, 9),
                &format!("{tag}-c{app}"),
                model,
                tokens.0,
                tokens.1,
                micro as f64 / 1e6,
            );
            let e = with(e, "provider", json!(provider));
            out.push(with(e, "task", json!(task)));
        }
    }
    out
}

/// The small app's one request.
fn lone(tag: &str, day: NaiveDate, model: &str, provider: &str, task: &str) -> Value {
    let e = event(
        &format!("{tag}-lone"),
        &ts(day, 15),
        &format!("{tag}-small"),
        model,
        INPUT as u64,
        OUTPUT as u64,
        COST_MICRO as f64 / 1e6,
    );
    let e = with(e, "provider", json!(provider));
    let e = with(e, "latency_ms", json!(LATENCY));
    with(e, "task", json!(task))
}

fn scenarios() -> Vec<Scenario> {
    let std_crowd = |tag: &str, day: NaiveDate, task: &str| {
        crowd(tag, day, "acme/crowd", "acme", task, 10, (1000, 100), 1000)
    };
    let mut out = Vec::new();

    let m = d("2026-07-06");
    let day = m + Days::new(1);
    let mut events = std_crowd("model", day, "programming");
    events.push(lone("model", day, "acme/solo", "acme", "programming"));
    for i in 0..FAILURES {
        let e = event(
            &format!("model-fail-{i}"),
            &ts(day, 16),
            "model-small",
            "acme/solo",
            5,
            0,
            0.0,
        );
        events.push(with(e, "status", json!("error")));
    }
    out.push(Scenario {
        name: "alone on a model (with failures)",
        monday: m,
        events,
        days: vec![day],
        tasks: vec!["programming"],
        models: vec!["acme/crowd", "acme/solo"],
        private: vec!["acme/solo"],
        failures: true,
        own_row: true,
    });

    let m = d("2026-07-20");
    let day = m + Days::new(1);
    let mut events = std_crowd("provider", day, "programming");
    events.push(lone(
        "provider",
        day,
        "acme/crowd",
        "othercloud",
        "programming",
    ));
    out.push(Scenario {
        name: "alone on a provider of a shared model",
        monday: m,
        events,
        days: vec![day],
        tasks: vec!["programming"],
        models: vec!["acme/crowd"],
        private: vec!["othercloud"],
        failures: false,
        own_row: true,
    });

    let m = d("2026-08-03");
    let day = m + Days::new(1);
    let mut events = std_crowd("author", day, "programming");
    events.push(lone("author", day, "lonely/solo", "lonely", "programming"));
    out.push(Scenario {
        name: "alone on an author",
        monday: m,
        events,
        days: vec![day],
        tasks: vec!["programming"],
        models: vec!["acme/crowd", "lonely/solo"],
        private: vec!["lonely/solo", "\"lonely\""],
        failures: false,
        own_row: true,
    });

    let m = d("2026-08-17");
    let day = m + Days::new(1);
    let mut events = std_crowd("task", day, "programming");
    events.push(lone("task", day, "acme/crowd", "acme", "legal"));
    out.push(Scenario {
        name: "alone in a task",
        monday: m,
        events,
        days: vec![day],
        tasks: vec!["programming", "legal"],
        models: vec!["acme/crowd"],
        private: vec![],
        failures: false,
        own_row: true,
    });

    let m = d("2026-08-31");
    let (crowd_day, lone_day) = (m + Days::new(1), m + Days::new(3));
    let mut events = std_crowd("day", crowd_day, "programming");
    events.push(lone("day", lone_day, "acme/crowd", "acme", "programming"));
    out.push(Scenario {
        name: "alone on one day of a week",
        monday: m,
        events,
        days: vec![crowd_day, lone_day],
        tasks: vec!["programming"],
        models: vec!["acme/crowd"],
        private: vec![],
        failures: false,
        // Its prompts are medium, the crowd's short: its segment row is its own.
        own_row: true,
    });

    let m = d("2026-09-14");
    let day = m + Days::new(1);
    let mut events = crowd(
        "rest",
        day,
        "acme/a",
        "acme",
        "programming",
        10,
        (1000, 100),
        1000,
    );
    events.extend(crowd(
        "rest",
        day,
        "acme/b",
        "acme",
        "programming",
        20,
        (2000, 200),
        2000,
    ));
    events.push(lone("rest", day, "acme/rare", "acme", "programming"));
    out.push(Scenario {
        name: "alone among the rest beyond the limit",
        monday: m,
        events,
        days: vec![day],
        tasks: vec!["programming"],
        models: vec!["acme/a", "acme/b", "acme/rare"],
        private: vec!["acme/rare"],
        failures: false,
        own_row: true,
    });

    let (r1, r2) = reproductions();
    out.push(r1);
    out.push(r2);
    out
}

/// The two reproductions of the report, verbatim: six apps on openai/gpt-4o, one alone on
/// anthropic/claude-sonnet-4.5 (roleplay, 12,345 / 678 tokens, $0.4321); then the same with six
/// apps on anthropic/claude-haiku-4.5 that day (3,000 / 300 tokens, $0.012 between them).
fn reproductions() -> (Scenario, Scenario) {
    let sonnet = "anthropic/claude-sonnet-4.5";
    let gpt = |tag: &str, day: NaiveDate| {
        crowd(
            tag,
            day,
            "openai/gpt-4o",
            "openai",
            "programming",
            10,
            (1000, 100),
            1000,
        )
    };
    let m = d("2026-09-28");
    let day = m + Days::new(1);
    let mut events = gpt("r1", day);
    events.push(lone("r1", day, sonnet, "anthropic", "roleplay"));
    let r1 = Scenario {
        name: "reproduction 1: the lone app is `other`",
        monday: m,
        events,
        days: vec![day],
        tasks: vec!["programming", "roleplay"],
        models: vec!["openai/gpt-4o", sonnet],
        private: vec![sonnet],
        failures: false,
        own_row: true,
    };
    let m = d("2026-10-12");
    let day = m + Days::new(1);
    let mut events = gpt("r2", day);
    events.extend(crowd(
        "r2",
        day,
        "anthropic/claude-haiku-4.5",
        "anthropic",
        "roleplay",
        1,
        (500, 50),
        2000,
    ));
    events.push(lone("r2", day, sonnet, "anthropic", "roleplay"));
    let r2 = Scenario {
        name: "reproduction 2: author minus its listed model",
        monday: m,
        events,
        days: vec![day],
        tasks: vec!["programming", "roleplay"],
        models: vec!["openai/gpt-4o", "anthropic/claude-haiku-4.5", sonnet],
        private: vec![sonnet],
        failures: false,
        own_row: true,
    };
    (r1, r2)
}

/// Every public read of a scenario's periods.
fn paths(s: &Scenario) -> Vec<String> {
    let week = s.monday;
    let sunday = week + Days::new(6);
    let mut periods: Vec<(&str, NaiveDate)> = s.days.iter().map(|d| ("day", *d)).collect();
    periods.push(("week", week));
    periods.push(("month", week));
    let tasks: Vec<Option<&str>> = std::iter::once(None)
        .chain(s.tasks.iter().map(|t| Some(*t)))
        .collect();
    let q = |t: Option<&str>| t.map_or(String::new(), |t| format!("&task={t}"));
    let mut out = Vec::new();
    for (p, date) in &periods {
        for t in &tasks {
            let t = q(*t);
            out.push(format!("/v1/leaderboard?period={p}&date={date}{t}"));
            out.push(format!("/v1/authors?period={p}&date={date}{t}"));
            out.push(format!("/v1/price-share?period={p}&date={date}{t}"));
        }
        out.push(format!("/v1/tasks?period={p}&date={date}&top=100"));
        // Pages show what the endpoints answer; their month is left to the endpoints.
        if *p == "month" {
            continue;
        }
        out.push(format!("/?period={p}&date={date}"));
        for t in &s.tasks {
            out.push(format!("/tasks/{t}?period={p}&date={date}"));
        }
        for m in &s.models {
            out.push(format!("/models/{m}?period={p}&date={date}"));
        }
    }
    for t in &tasks {
        let t = q(*t);
        for extra in ["limit=1", "by=requests"] {
            out.push(format!(
                "/v1/leaderboard?period=week&date={week}&{extra}{t}"
            ));
        }
        out.push(format!("/v1/authors?period=week&date={week}&limit=1{t}"));
        out.push(format!(
            "/v1/share?granularity=day&from={week}&to={sunday}&top=1{t}"
        ));
        out.push(format!(
            "/v1/share?granularity=day&from={week}&to={sunday}&by=requests{t}"
        ));
        out.push(format!(
            "/v1/share?granularity=week&from={}&to={sunday}{t}",
            week - Days::new(14)
        ));
        out.push(format!("/v1/shifts?period=week&date={week}{t}"));
        for day in &s.days {
            out.push(format!("/v1/shifts?period=day&date={day}{t}"));
        }
        out.push(format!(
            "/v1/switches?from={}&to={sunday}{t}",
            week - Days::new(7)
        ));
        out.push(format!("/v1/retention?date={week}&weeks=2{t}"));
        out.push(format!(
            "/v1/index?date={week}&weeks=2&resamples=0&min_observations=1{t}"
        ));
    }
    out
}

/// Amount-like figures fall into families that add up with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Family {
    Tokens,
    Requests,
    Cost,
    Latency,
}

/// Everything published about a scenario, as the solver sees it.
#[derive(Debug, Default)]
struct Figures {
    /// Per family: value → where it was seen (the first place).
    values: BTreeMap<Family, BTreeMap<i128, String>>,
    /// Per answer: its shares, blended prices (USD per Mtok) and amounts, to multiply the
    /// first two back into amounts with the third (a share and its denominator are published
    /// in the same answer).
    answers: BTreeMap<String, Answer>,
    /// Every answer's text, to look for names only the small app used.
    texts: Vec<(String, String)>,
}

#[derive(Debug, Default, Clone)]
struct Answer {
    /// What the answer's shares are shares of (`None`: distinct apps).
    share_of: Option<Family>,
    shares: Vec<f64>,
    prices: Vec<f64>,
    amounts: Vec<(Family, f64)>,
}

impl Figures {
    fn add(&mut self, family: Family, value: f64, source: impl FnOnce() -> String) {
        let v = value.round();
        if v == 0.0 || (value - v).abs() > 1e-6 {
            return;
        }
        self.values
            .entry(family)
            .or_default()
            .entry(v as i128)
            .or_insert_with(source);
    }

    fn number(&mut self, key: &str, x: f64, source: &str) {
        let src = || format!("{source} {key}={x}");
        let (family, x) = match key {
            "tokens" | "input_tokens" | "output_tokens" | "total_tokens" | "other_tokens"
            | "reasoning_tokens" | "cached_tokens" => (Family::Tokens, x),
            "requests" | "failures" | "fallbacks" => (Family::Requests, x),
            "cost_usd" => (Family::Cost, x * 1e6),
            "latency_p50_ms" | "latency_p95_ms" => (Family::Latency, x),
            "usd_per_mtok" => {
                self.answers
                    .entry(source.to_owned())
                    .or_default()
                    .prices
                    .push(x);
                return;
            }
            "share" | "previous_share" => {
                self.answers
                    .entry(source.to_owned())
                    .or_default()
                    .shares
                    .push(x);
                return;
            }
            _ => return,
        };
        self.add(family, x, src);
        self.answers
            .entry(source.to_owned())
            .or_default()
            .amounts
            .push((family, x));
    }

    /// Starts an answer whose shares measure `share_of` (pages and most endpoints: tokens).
    fn answer(&mut self, source: &str, share_of: Option<Family>) {
        self.answers.entry(source.to_owned()).or_default().share_of = share_of;
    }

    fn json(&mut self, v: &Value, key: &str, source: &str) {
        match v {
            Value::Number(n) => self.number(key, n.as_f64().unwrap(), source),
            Value::Array(items) => items.iter().for_each(|i| self.json(i, key, source)),
            Value::Object(map) => map.iter().for_each(|(k, v)| self.json(v, k, source)),
            _ => {}
        }
    }

    fn html(&mut self, html: &str, source: &str) {
        for (panel, columns, rows) in html_tables(html) {
            for row in rows {
                for (column, raw) in columns.iter().zip(&row) {
                    let Ok(x) = raw.parse::<f64>() else { continue };
                    let src = source;
                    match column.as_str() {
                        "value" if panel == "fallbacks" => self.number("requests", x, src),
                        "tokens" | "requests" | "usd_per_mtok" => self.number(column, x, src),
                        "apps" | "rank" | "units" | "observations" | "rating" | "lower"
                        | "upper" | "rows" | "bytes" | "revision" | "attempt" | "label" => {}
                        // Shares, changes, the matrix's task columns, retention rates.
                        _ if (0.0..=1.0).contains(&x) => self.number("share", x, src),
                        _ => {}
                    }
                }
            }
        }
    }

    fn snapshot(&mut self, bytes: Vec<u8>, source: &str) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let b = batch.unwrap();
            let mut text = String::new();
            for name in ["task", "model", "author", "provider"] {
                let c = b.column_by_name(name).unwrap();
                let c = c.as_any().downcast_ref::<StringArray>().unwrap();
                (0..c.len()).for_each(|r| text.push_str(&format!("\"{}\" ", c.value(r))));
            }
            self.texts.push((source.to_owned(), text));
            let ints = |n: &str| {
                let c = b.column_by_name(n).unwrap();
                c.as_any().downcast_ref::<Int64Array>().unwrap().clone()
            };
            let cost = b.column_by_name("cost_usd").unwrap();
            let cost = cost.as_any().downcast_ref::<Decimal128Array>().unwrap();
            for r in 0..b.num_rows() {
                let src = format!("{source} row {r}");
                for n in [
                    "requests",
                    "input_tokens",
                    "output_tokens",
                    "reasoning_tokens",
                    "cached_tokens",
                    "failures",
                    "fallbacks",
                    "latency_p50_ms",
                    "latency_p95_ms",
                ] {
                    let c = ints(n);
                    if !c.is_null(r) {
                        self.number(n, c.value(r) as f64, &src);
                    }
                }
                let (i, o) = (ints("input_tokens"), ints("output_tokens"));
                self.number("tokens", (i.value(r) + o.value(r)) as f64, &src);
                self.add(Family::Cost, cost.value(r) as f64, || format!("{src} cost"));
            }
        }
    }

    /// Per answer, shares times its amounts and prices times its token counts: whatever a
    /// reader could multiply back. Only whole results can be an amount.
    fn derive(&mut self) {
        let answers = std::mem::take(&mut self.answers);
        for (source, a) in &answers {
            for &(family, v) in &a.amounts {
                for &s in a.shares.iter().filter(|s| **s > 0.0 && **s < 1.0) {
                    if a.share_of == Some(family) {
                        self.add(family, s * v, || format!("{source}: share {s} × {v}"));
                    }
                }
                if family == Family::Tokens {
                    for &p in &a.prices {
                        self.add(Family::Cost, p * v, || {
                            format!("{source}: {p} $/Mtok × {v}")
                        });
                    }
                }
            }
        }
        self.answers = answers;
    }
}

/// A figure, or a signed sum of two or three distinct figures of one family, equal to `target`.
fn solve(values: &BTreeMap<i128, String>, target: i128) -> Option<String> {
    if let Some(src) = values.get(&target) {
        return Some(src.clone());
    }
    let v: Vec<(i128, &String)> = values.iter().map(|(x, s)| (*x, s)).collect();
    // A positive target needs a positive term; write it first.
    for (i, (a, sa)) in v.iter().enumerate() {
        for (j, (b, sb)) in v.iter().enumerate() {
            if i == j {
                continue;
            }
            for sign in [1, -1] {
                let partial = a + sign * b;
                let op = if sign > 0 { '+' } else { '−' };
                if partial == target {
                    return Some(format!("[{sa}] {op} [{sb}]"));
                }
                let rest = target - partial;
                if let Some(sc) = values.get(&rest.abs())
                    && rest.abs() != *a
                    && rest.abs() != *b
                {
                    let op2 = if rest > 0 { '+' } else { '−' };
                    return Some(format!("[{sa}] {op} [{sb}] {op2} [{sc}]"));
                }
            }
        }
    }
    None
}

/// What the solver recovers: (what, how).
fn attack(figures: &Figures, failures: bool) -> Vec<(String, String)> {
    let mut targets = vec![
        (Family::Tokens, "input tokens", INPUT),
        (Family::Tokens, "output tokens", OUTPUT),
        (Family::Tokens, "tokens", INPUT + OUTPUT),
        (Family::Requests, "requests", REQUESTS),
        (Family::Cost, "spend", COST_MICRO),
        (Family::Latency, "latency", LATENCY),
    ];
    if failures {
        targets.push((Family::Requests, "failures", FAILURES));
    }
    let empty = BTreeMap::new();
    targets
        .into_iter()
        .filter_map(|(family, what, target)| {
            solve(figures.values.get(&family).unwrap_or(&empty), target)
                .map(|how| (what.to_owned(), how))
        })
        .collect()
}

fn iso_week(monday: NaiveDate) -> String {
    let w = monday.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

/// The week's snapshot as `modelshare export` writes it (the published file's bytes), or
/// `None` when no cell of the week is publishable.
fn snapshot(lake: &Path, monday: NaiveDate, min_apps: &str) -> Option<Vec<u8>> {
    let out = lake.with_extension(format!("{}.parquet", iso_week(monday)));
    let run = Command::new(BIN)
        .args(["export", "--data-dir"])
        .arg(lake)
        .args(["--week", &iso_week(monday), "--min-apps", min_apps, "-o"])
        .arg(&out)
        .env("MODELSHARE_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    if !run.status.success() {
        assert!(stderr.contains("nothing to publish"), "{stderr}");
        return None;
    }
    Some(std::fs::read(&out).unwrap())
}

/// Reads every public figure of a scenario from a running server.
async fn collect(server: &Server, lake: &Path, s: &Scenario, min_apps: &str) -> Figures {
    let mut set = tokio::task::JoinSet::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(4));
    for path in paths(s) {
        let (client, url, limit) = (
            server.client.clone(),
            server.url.clone(),
            Arc::clone(&limit),
        );
        set.spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            let resp = client.get(format!("{url}{path}")).send().await.unwrap();
            let status = resp.status().as_u16();
            (path, status, resp.text().await.unwrap())
        });
    }
    let mut figures = Figures::default();
    while let Some(done) = set.join_next().await {
        let (path, status, body) = done.unwrap();
        if path.starts_with("/v1/") {
            assert_eq!(status, 200, "{path}: {body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            let share_of = match v["by"].as_str() {
                Some("requests") => Some(Family::Requests),
                Some("spend") => Some(Family::Cost),
                Some("apps") => None,
                _ => Some(Family::Tokens),
            };
            figures.answer(&path, share_of);
            figures.json(&v, "", &path);
        } else {
            figures.answer(&path, Some(Family::Tokens));
            // A model page is a 404 when the model has nothing publishable and no catalog entry.
            assert!(status == 200 || status == 404, "{path}: {status}");
            figures.html(&body, &path);
        }
        figures.texts.push((path, body));
    }
    if let Some(bytes) = snapshot(lake, s.monday, min_apps) {
        figures.snapshot(bytes, &format!("snapshot {}", iso_week(s.monday)));
    }
    figures.derive();
    figures
}

/// The same events in a lake per threshold, and a server on each. The attacker reads a few
/// hundred answers quickly, so the per-client rate limit is off.
fn lake_and_server(dir: &Path, name: &str, min_apps: &str, events: &[Value]) -> Server {
    let lake = dir.join(name);
    ingest(&lake, events);
    Server::start(&lake, &["--min-apps", min_apps, "--rate-limit-rps", "0"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sum_or_difference_of_public_figures_recovers_a_small_app() {
    let scenarios = scenarios();
    let events: Vec<Value> = scenarios.iter().flat_map(|s| s.events.clone()).collect();
    let dir = tempfile::tempdir().unwrap();
    let public = lake_and_server(dir.path(), "public", "5", &events);
    let control = lake_and_server(dir.path(), "control", "1", &events);

    let mut leaks = Vec::new();
    for s in &scenarios {
        let figures = collect(&public, &dir.path().join("public"), s, "5").await;
        for (what, how) in attack(&figures, s.failures) {
            leaks.push(format!("{}: {what} = {how}", s.name));
        }
        for (path, text) in &figures.texts {
            for name in &s.private {
                // A model page names its own model (and says when it has no data).
                if !path.contains(name.trim_matches('"')) && text.contains(name) {
                    leaks.push(format!("{}: {path} names {name}", s.name));
                }
            }
        }

        // The control: every cell is publishable, and the solver must see the small app.
        let figures = collect(&control, &dir.path().join("control"), s, "1").await;
        let found: Vec<String> = attack(&figures, s.failures)
            .into_iter()
            .map(|(what, _)| what)
            .collect();
        let mut want = vec![
            "input tokens",
            "output tokens",
            "tokens",
            "requests",
            "spend",
        ];
        if s.own_row {
            want.push("latency");
        }
        if s.failures {
            want.push("failures");
        }
        assert_eq!(found, want, "{}: the control recovers everything", s.name);
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
    public.stop();
    control.stop();
}

/// The reproductions of the report, checked figure by figure on the answers that leaked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reported_leaks_are_closed() {
    let (r1, r2) = reproductions();
    let mut events = r1.events.clone();
    events.extend(r2.events.clone());
    let dir = tempfile::tempdir().unwrap();
    let s = lake_and_server(dir.path(), "lake", "5", &events);
    let gpt = json!({"tokens": 66000, "requests": 60, "cost_usd": 0.06, "apps": 6});

    // Reproduction 1: no `other` row anywhere; the totals are gpt-4o's figures exactly.
    let date = "2026-09-29";
    let lb = s
        .get_ok(&format!("/v1/leaderboard?period=week&date={date}"))
        .await;
    assert_eq!(lb["totals"], gpt);
    let models: Vec<&Value> = lb["models"].as_array().unwrap().iter().collect();
    assert_eq!(models.len(), 1, "{lb}");
    assert_eq!(models[0]["model"], "openai/gpt-4o");
    let au = s
        .get_ok(&format!("/v1/authors?period=week&date={date}"))
        .await;
    assert_eq!(au["authors"].as_array().unwrap().len(), 1, "{au}");
    let rp = s
        .get_ok(&format!(
            "/v1/leaderboard?period=week&date={date}&task=roleplay"
        ))
        .await;
    assert_eq!(
        rp["totals"],
        json!({"tokens": 0, "requests": 0, "cost_usd": 0.0, "apps": 0})
    );
    assert_eq!(rp["models"], json!([]));
    let sh = s
        .get_ok("/v1/share?granularity=day&from=2026-09-28&to=2026-10-04")
        .await;
    assert!(!sh.to_string().contains("other"), "{sh}");
    let tasks = s
        .get_ok(&format!("/v1/tasks?period=week&date={date}"))
        .await;
    let names: Vec<&str> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["programming"]);
    let ps = s
        .get_ok(&format!("/v1/price-share?period=week&date={date}"))
        .await;
    assert_eq!(
        (ps["total_tokens"].as_u64(), ps["other_tokens"].as_u64()),
        (Some(66000), Some(0))
    );
    let (status, home) = s.get_text(&format!("/?period=week&date={date}")).await;
    assert_eq!(status, 200);
    assert!(
        !home.contains("claude-sonnet") && !home.contains("data-value=\"other\""),
        "{home}"
    );
    let bytes = snapshot(&dir.path().join("lake"), d("2026-09-28"), "5").unwrap();
    let mut f = Figures::default();
    f.snapshot(bytes, "W40");
    assert!(!f.texts[0].1.contains("roleplay"), "{}", f.texts[0].1);

    // Reproduction 2: anthropic is exactly claude-haiku-4.5, so their difference is zero.
    let date = "2026-10-13";
    let lb = s
        .get_ok(&format!("/v1/leaderboard?period=week&date={date}"))
        .await;
    let au = s
        .get_ok(&format!("/v1/authors?period=week&date={date}"))
        .await;
    let haiku = lb["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "anthropic/claude-haiku-4.5")
        .unwrap();
    let anthropic = au["authors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["author"] == "anthropic")
        .unwrap();
    for key in [
        "apps",
        "input_tokens",
        "output_tokens",
        "requests",
        "cost_usd",
    ] {
        assert_eq!(haiku[key], anthropic[key], "{key}");
    }
    assert_eq!(
        (
            &haiku["apps"],
            &haiku["input_tokens"],
            &haiku["output_tokens"],
            &haiku["cost_usd"]
        ),
        (&json!(6), &json!(3000), &json!(300), &json!(0.012))
    );
    // A task is the sum of its listed models.
    let tasks = s
        .get_ok(&format!("/v1/tasks?period=week&date={date}&top=100"))
        .await;
    for t in tasks["tasks"].as_array().unwrap() {
        let listed: u64 = t["top_models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["tokens"].as_u64().unwrap())
            .sum();
        assert_eq!(t["tokens"].as_u64(), Some(listed), "{t}");
    }
    s.stop();
}

/// The solver finds the report's difference in the figures the old rule published: anthropic
/// (15,345 / 978 tokens, $0.4441) minus claude-haiku-4.5 (3,000 / 300, $0.012).
#[test]
fn the_solver_finds_a_difference() {
    let mut f = Figures::default();
    for (key, x) in [
        ("input_tokens", 15_345.0),
        ("output_tokens", 978.0),
        ("cost_usd", 0.4441),
        ("input_tokens", 3_000.0),
        ("output_tokens", 300.0),
        ("cost_usd", 0.012),
        ("tokens", 66_000.0),
        ("requests", 60.0),
    ] {
        f.number(key, x, "old rule");
    }
    let found: Vec<String> = attack(&f, false).into_iter().map(|(w, _)| w).collect();
    assert_eq!(found, ["input tokens", "output tokens", "spend"]);
    let mut values = BTreeMap::new();
    for v in [7, 100, 250] {
        values.insert(v, v.to_string());
    }
    assert!(solve(&values, 157).is_some(), "a three-term sum");
    assert!(solve(&values, 143).is_some(), "a three-term difference");
    assert!(solve(&values, 1).is_none());
}
