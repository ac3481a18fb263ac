//! `GET /v1/providers`, the model page's provider table and `GET /v1/incidents` on hand-made
//! events: exact attempts, failures, uptime, percentiles read from the hourly histograms,
//! throughput and fallbacks served, incidents to the minute; the same from the hourly files as
//! from raw events; units, splits and incidents with too few apps left out; bad parameters
//! refused.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, event};
use serde_json::{Value, json};

const MODEL: &str = "openai/gpt-4o";

/// An attempt of `app` at `provider` on `day`, with 10 output tokens and a 100 ms first token.
fn attempt(
    id: &str,
    day: &str,
    app: &str,
    provider: &str,
    status: &str,
    attempt: u64,
    latency_ms: u64,
) -> Value {
    let e = event(id, &format!("{day}T10:00:00Z"), app, MODEL, 100, 10, 0.01);
    let e = common::with(e, "provider", json!(provider));
    let e = common::with(e, "status", json!(status));
    let e = common::with(e, "attempt", json!(attempt));
    let e = common::with(e, "ttft_ms", json!(100));
    common::with(e, "latency_ms", json!(latency_ms))
}

fn events() -> Vec<Value> {
    let (mon, tue) = ("2026-11-02", "2026-11-03");
    vec![
        // azure, Monday: two apps' first attempts and fallbacks served, two apps' errors; one
        // app's timeout is a unit of one app and is left out.
        attempt("z1", mon, "a1", "azure", "ok", 0, 150),
        attempt("z2", mon, "a2", "azure", "ok", 0, 250),
        attempt("z3", mon, "a1", "azure", "ok", 1, 400),
        attempt("z4", mon, "a2", "azure", "ok", 1, 900),
        attempt("z5", mon, "a1", "azure", "error", 0, 300),
        attempt("z6", mon, "a2", "azure", "error", 0, 300),
        attempt("z7", mon, "a3", "azure", "timeout", 0, 60_000),
        // openai, Monday: served for three apps; one app's fallback is a group of one app.
        attempt("o1", mon, "a1", "openai", "ok", 0, 500),
        attempt("o2", mon, "a2", "openai", "ok", 0, 500),
        attempt("o3", mon, "a3", "openai", "ok", 0, 500),
        attempt("o4", mon, "a3", "openai", "ok", 1, 500),
        // openai, Tuesday: two apps' first attempts and two apps' fallbacks.
        attempt("o5", tue, "a1", "openai", "ok", 0, 500),
        attempt("o6", tue, "a2", "openai", "ok", 0, 500),
        attempt("o7", tue, "a1", "openai", "ok", 1, 500),
        attempt("o8", tue, "a2", "openai", "ok", 1, 500),
        // Another model's error at azure, of one app: a unit of one app, left out of azure's
        // figures over all models too.
        common::with(
            attempt("m1", mon, "a1", "azure", "error", 0, 300),
            "model",
            json!("openai/gpt-4o-mini"),
        ),
        // A model only one app uses: nothing of it is published.
        common::with(
            event("s1", "2026-11-02T10:00:00Z", "a1", "acme/solo", 1, 1, 0.0),
            "provider",
            json!("acme"),
        ),
    ]
}

/// Checks `got` against `want` field by field, numbers to 1e-9.
fn assert_close(got: &Value, want: &Value, what: &str) {
    match (got, want) {
        (Value::Number(g), Value::Number(w)) => {
            let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
            assert!(
                (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                "{what}: {g} != {w}"
            );
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{what}: {got} vs {want}");
            for (i, (g, w)) in g.iter().zip(w).enumerate() {
                assert_close(g, w, &format!("{what}[{i}]"));
            }
        }
        (Value::Object(g), Value::Object(w)) => {
            let keys = |m: &serde_json::Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(g), keys(w), "{what}");
            for (k, w) in w {
                assert_close(&g[k], w, &format!("{what}.{k}"));
            }
        }
        _ => assert_eq!(got, want, "{what}"),
    }
}

#[allow(clippy::too_many_arguments)]
fn provider(
    name: &str,
    attempts: u64,
    failed: u64,
    served: u64,
    fallbacks_served: u64,
    latency: [f64; 2],
    ttft_p50: f64,
    throughput_p50: f64,
) -> Value {
    json!({
        "provider": name, "attempts": attempts, "failed": failed,
        "uptime": 1.0 - failed as f64 / attempts as f64, "served": served,
        "fallbacks_served": fallbacks_served, "latency_p50_ms": latency[0],
        "latency_p95_ms": latency[1], "ttft_p50_ms": ttft_p50,
        "throughput_p50_tps": throughput_p50,
    })
}

/// The week of 2026-11-02, by hand from the histograms' bounds:
/// - openai: 7 served: Monday's fallback is a group of one app (a3) and in no figure. The
///   percentiles read every `ok` attempt of cells with two apps, all 8 at 500 ms (bucket 300–500
///   ms): p50 400, p95 490; first token 100 ms (bucket 50–100): p50 75; 10 tokens in 400 ms = 25
///   tokens/s (bucket 20–30): p50 25. Fallbacks served: Tuesday's 2.
/// - azure: served 150, 250, 400, 900 ms: p50 the 2nd of 4 at the top of 200–300 = 300, p95
///   at 0.8 of 750–1000 = 950; throughputs 200, 66.7, 33.3, 12.5 tokens/s: p50 at the top of
///   30–50 = 50. Errors of two apps count; the timeout of one app does not.
fn week_answer() -> Value {
    json!([
        provider("openai", 7, 0, 7, 2, [400.0, 490.0], 75.0, 25.0),
        provider("azure", 6, 2, 4, 2, [300.0, 950.0], 75.0, 50.0),
    ])
}

async fn providers(server: &Server, query: &str) -> Value {
    server.get_ok(&format!("/v1/providers?{query}")).await["providers"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_figures_are_exact_from_hourly_files_and_raw_events() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    common::ingest(lake, &events());
    let week = format!("model={MODEL}&period=week&date=2026-11-02");
    let tuesday = format!("model={MODEL}&period=day&date=2026-11-03");
    let tuesday_answer = json!([provider("openai", 4, 0, 4, 2, [400.0, 490.0], 75.0, 25.0)]);

    let raw = Server::start(lake, &["--min-apps", "2", "--raw-reads"]);
    assert_close(&providers(&raw, &week).await, &week_answer(), "raw, week");
    assert_close(
        &providers(&raw, &tuesday).await,
        &tuesday_answer,
        "raw, Tuesday",
    );
    raw.stop();

    let server = Server::start(lake, &["--min-apps", "2", "--cube-interval-secs", "0.2"]);
    server.wait_for_hourly_days(2).await;
    let answer = server.get_ok(&format!("/v1/providers?{week}")).await;
    assert_eq!(answer["model"], MODEL);
    assert_eq!(answer["period"]["start"], "2026-11-02");
    assert_close(&answer["providers"], &week_answer(), "hourly files, week");
    assert_close(
        &providers(&server, &tuesday).await,
        &tuesday_answer,
        "hourly files, Tuesday",
    );
    // A task with no traffic, and a model only one app uses: nothing.
    assert_eq!(
        providers(&server, &format!("{week}&task=translation")).await,
        json!([])
    );
    assert_eq!(
        providers(&server, "model=acme/solo&period=week&date=2026-11-02").await,
        json!([])
    );
    // The model page shows the same figures.
    let (status, html) = server
        .get_text("/models/openai/gpt-4o?period=week&date=2026-11-02")
        .await;
    assert_eq!(status, 200);
    let tables = common::html_tables(&html);
    let (_, columns, rows) = tables
        .iter()
        .find(|(id, _, _)| id == "provider_performance")
        .expect("the provider table");
    assert_eq!(
        columns,
        &[
            "provider",
            "attempts",
            "uptime",
            "latency_p50_ms",
            "latency_p95_ms",
            "ttft_p50_ms",
            "throughput_p50_tps",
            "fallbacks_served"
        ]
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][..2], ["openai", "7"]);
    assert_eq!(rows[1][..2], ["azure", "6"]);
    assert_eq!(rows[1][7], "2");

    // One provider, per model it served: azure's only publishable model is gpt-4o.
    let azure = server
        .get_ok("/v1/providers?provider=azure&period=week&date=2026-11-02")
        .await;
    assert_eq!(azure["provider"], "azure");
    assert_eq!(azure["model"], Value::Null);
    let mut azure_gpt4o = week_answer()[1].clone();
    azure_gpt4o["model"] = json!(MODEL);
    assert_close(&azure["providers"], &json!([azure_gpt4o]), "azure's models");
    assert_close(
        &providers(&server, &format!("{week}&provider=azure")).await,
        &json!([azure_gpt4o]),
        "the one pair",
    );
    // The same on the providers page (all models: the lone app's error on gpt-4o-mini is its
    // own unit and stays out) and on azure's page.
    let table = |html: &str, panel: &str| {
        common::html_tables(html)
            .into_iter()
            .find(|(id, _, _)| id == panel)
            .unwrap_or_else(|| panic!("no table {panel}"))
    };
    let (status, html) = server
        .get_text("/providers?period=week&date=2026-11-02")
        .await;
    assert_eq!(status, 200);
    let azure_uptime = (1.0f64 - 2.0 / 6.0).to_string();
    let (_, _, rows) = table(&html, "provider_performance");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][..3], ["openai", "7", "1"]);
    assert_eq!(rows[1][..3], ["azure", "6", azure_uptime.as_str()]);
    assert!(
        html.contains("href=\"/providers/azure\""),
        "providers link to their pages"
    );
    let (status, html) = server
        .get_text("/providers/azure?period=week&date=2026-11-02")
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<h1>azure</h1>"), "{html}");
    let (_, columns, rows) = table(&html, "models");
    assert_eq!(columns[0], "model");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][..3], [MODEL, "6", azure_uptime.as_str()]);
    assert_eq!(rows[0][7], "2");
    let incidents = html
        .split("id=\"panel-incidents\"")
        .nth(1)
        .expect("the incidents panel");
    let incidents = &incidents[..incidents.find("</section>").unwrap()];
    assert!(incidents.contains("No data"), "no incident: {incidents}");
    // A provider with only one app's traffic, or none: no page.
    for missing in ["acme", "nobody", "%3Cscript%3E"] {
        let (status, html) = server.get_text(&format!("/providers/{missing}")).await;
        assert_eq!(status, 404, "{missing}");
        assert!(!html.contains("<script>"), "{missing}: the name is escaped");
    }
    server.stop();

    // A threshold of 3 apps leaves only openai's Monday first choices (three apps); the
    // percentiles still read the cell's four `ok` attempts.
    let strict = Server::start(lake, &["--min-apps", "3", "--raw-reads"]);
    assert_close(
        &providers(&strict, &week).await,
        &json!([provider("openai", 3, 0, 3, 0, [400.0, 490.0], 75.0, 25.0)]),
        "three apps",
    );
    strict.stop();
}

#[tokio::test]
async fn bad_provider_parameters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    for (query, needle) in [
        ("", "model or provider is required"),
        ("model=", "model or provider is required"),
        ("provider=", "model or provider is required"),
        (&format!("provider={}", "p".repeat(257)) as &str, "provider"),
        ("provider=a%07b", "control characters"),
        ("model=not%20a%20slug", "model"),
        (&format!("model={MODEL}&period=year"), "period"),
        (&format!("model={MODEL}&date=2026-13-01"), "date"),
        (&format!("model={MODEL}&context=long"), "unknown parameter"),
        (&format!("model={MODEL}&model={MODEL}"), "given twice"),
        (&format!("model={MODEL}&task=poetry"), "task"),
    ] {
        let (status, body) = server.get(&format!("/v1/providers?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_parameter", "{query}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{query}: {message}");
    }
    server.stop();
}

/// Monday 14:05–14:35 every attempt at azure fails (apps a1 and a2), except one served at 14:20,
/// and a third app's lone timeout at 14:10 (a failure unit of one app: it helps find the
/// incident but is in none of its figures). Tuesday the same without the timeout, plus an error
/// of the third app in the morning: its error unit has three apps, but Tuesday's failures
/// outside the incident are then a single app's, so that incident is not published at two apps.
fn outage_events() -> Vec<Value> {
    let mut out = Vec::new();
    for (day, lone_failure) in [("2026-11-02", false), ("2026-11-03", true)] {
        let at = |id: String, time: &str, app: &str, status: &str| {
            let e = event(&id, &format!("{day}T{time}Z"), app, MODEL, 100, 10, 0.01);
            let e = common::with(e, "provider", json!("azure"));
            common::with(e, "status", json!(status))
        };
        for hour in [10, 11, 12, 13, 15, 16] {
            for (i, app) in ["a1", "a2"].iter().enumerate() {
                let time = format!("{hour}:{:02}:00", 10 * i);
                out.push(at(format!("{day}-ok-{hour}-{app}"), &time, app, "ok"));
            }
        }
        for minute in 5..35 {
            let app = if minute % 2 == 0 { "a1" } else { "a2" };
            let time = format!("14:{minute:02}:30");
            let status = if minute == 20 { "ok" } else { "error" };
            out.push(at(format!("{day}-out-{minute}"), &time, app, status));
        }
        if lone_failure {
            out.push(at(format!("{day}-lone"), "09:00:00", "a3", "error"));
        } else {
            out.push(at(format!("{day}-lone"), "14:10:45", "a3", "timeout"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_are_found_to_the_minute_and_published_under_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    common::ingest(lake, &outage_events());
    // The one attempt served in the incident (14:20) is a1's alone: `attempts` would show it,
    // so it is not published at two apps.
    let monday = json!([{
        "provider": "azure", "start": "2026-11-02T14:05:00Z", "end": "2026-11-02T14:35:00Z",
        "failed_attempts": 29, "attempts": null, "affected_models": [MODEL],
    }]);
    let query = "/v1/incidents?from=2026-11-02&to=2026-11-03";

    let server = Server::start(lake, &["--min-apps", "2", "--cube-interval-secs", "0.2"]);
    server.wait_for_hourly_days(2).await;
    let answer = server.get_ok(query).await;
    assert_eq!(answer["from"], "2026-11-02");
    assert_eq!(answer["to"], "2026-11-03");
    assert_eq!(answer["incidents"], monday, "from the hourly files");
    // Azure's page lists the same incident.
    let (status, html) = server
        .get_text("/providers/azure?period=day&date=2026-11-02")
        .await;
    assert_eq!(status, 200);
    let (_, columns, rows) = common::html_tables(&html)
        .into_iter()
        .find(|(id, _, _)| id == "incidents")
        .expect("the incidents table");
    assert_eq!(
        columns,
        [
            "start",
            "end",
            "minutes",
            "failed_attempts",
            "attempts",
            "affected_models"
        ]
    );
    assert_eq!(
        rows,
        [[
            "2026-11-02 14:05",
            "2026-11-02 14:35",
            "30",
            "29",
            "",
            MODEL
        ]]
    );
    // Only incidents that start in the range.
    let tuesday = server
        .get_ok("/v1/incidents?from=2026-11-03&to=2026-11-03")
        .await;
    assert_eq!(tuesday["incidents"], json!([]));
    for (bad, needle) in [
        ("from=2026-11-04&to=2026-11-03", "after"),
        ("from=2020-01-01&to=2026-11-03", "spans more than"),
        ("from=yesterday", "from"),
        ("provider=azure", "unknown parameter"),
    ] {
        let (status, body) = server.get(&format!("/v1/incidents?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{bad}: {body}"
        );
    }
    server.stop();

    let raw = Server::start(lake, &["--min-apps", "2", "--raw-reads"]);
    assert_eq!(
        raw.get_ok(query).await["incidents"],
        monday,
        "from raw events"
    );
    raw.stop();
    // At one app, the timeout's unit counts and the incident's attempts are published.
    let loose = Server::start(lake, &["--min-apps", "1", "--raw-reads"]);
    let first = &loose.get_ok(query).await["incidents"][0];
    assert_eq!(
        (
            first["failed_attempts"].as_u64(),
            first["attempts"].as_u64()
        ),
        (Some(30), Some(31)),
        "at one app: {first}"
    );
    loose.stop();
    // With a threshold of three apps, two failing apps are not enough.
    let strict = Server::start(lake, &["--min-apps", "3", "--raw-reads"]);
    assert_eq!(strict.get_ok(query).await["incidents"], json!([]));
    strict.stop();
}
