//! Apps shown by name: consent recorded by `modelshare apps publish` and the admin API,
//! `GET /v1/apps` with exact figures on hand-made events, the rule that keeps a shown app's
//! figures from exposing the apps that did not opt in, the pages (names HTML-escaped), and bad
//! input refused.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, event};
use serde_json::{Value, json};
use std::path::Path;

const GPT: &str = "openai/gpt-4o";
const SONNET: &str = "anthropic/claude-sonnet-4.5";
const SOLO: &str = "acme/solo";
/// A name that is markup: it must show as text everywhere.
const HOSTILE: &str = "<script>alert(\"x\")</script> & \"Co\"";
const HOSTILE_SLUG: &str = "script-alert-x-script-co";

fn at(id: &str, day: &str, app: &str, model: &str, tokens: u64) -> Value {
    event(id, &format!("{day}T10:00:00Z"), app, model, tokens, 0, 0.01)
}

/// Two shown apps (`shown-1`, `shown-2`) and three that did not opt in (`quiet-*`).
/// Monday: gpt-4o with shown-1 and two quiet apps (shown-1's part counts); sonnet with shown-1
/// and one quiet app (its part would leave that app alone: not counted); solo with shown-1 only
/// (no quiet app: counted). Tuesday: gpt-4o with shown-2 and two quiet apps (counted); sonnet
/// with both shown apps only (counted). quiet-3 is busy and alone on its cell.
fn events() -> Vec<Value> {
    let (mon, tue) = ("2026-11-02", "2026-11-03");
    vec![
        at("e1", mon, "shown-1", GPT, 1000),
        at("e2", mon, "quiet-1", GPT, 50),
        at("e3", mon, "quiet-2", GPT, 60),
        at("e4", mon, "shown-1", SONNET, 500),
        at("e5", mon, "quiet-1", SONNET, 70),
        at("e6", mon, "shown-1", SOLO, 300),
        at("e7", tue, "shown-2", GPT, 700),
        at("e8", tue, "quiet-1", GPT, 80),
        at("e9", tue, "quiet-2", GPT, 90),
        at("e10", tue, "shown-1", SONNET, 200),
        at("e11", tue, "shown-2", SONNET, 400),
        at("e12", tue, "quiet-3", "openai/gpt-4o-mini", 9000),
    ]
}

fn apps_cli(dir: &Path, args: &[&str]) -> String {
    let mut all: Vec<&std::ffi::OsStr> =
        vec!["apps".as_ref(), "--data-dir".as_ref(), dir.as_os_str()];
    all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
    common::run_ok(all).trim().to_owned()
}

/// The events in `lake`, and shown-1 published by the CLI under the hostile name.
fn lake_with_shown_1(lake: &Path) {
    common::ingest(lake, &events());
    let out = apps_cli(
        lake,
        &[
            "publish",
            "--app",
            "shown-1",
            "--name",
            HOSTILE,
            "--url",
            "https://one.example/app?a=1&b=2",
        ],
    );
    assert!(out.contains(&format!("/apps/{HOSTILE_SLUG}")), "{out}");
}

async fn send(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<String>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", server.url));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `v` with every `share` rounded to 9 decimals (JSON parsing is not exact in the last bit).
fn rounded(mut v: Value) -> Value {
    match &mut v {
        Value::Array(items) => {
            for item in items.iter_mut() {
                *item = rounded(item.take());
            }
        }
        Value::Object(fields) => {
            for (k, item) in fields.iter_mut() {
                *item = match (k.as_str(), item.as_f64()) {
                    ("share", Some(x)) => json!((x * 1e9).round() / 1e9),
                    _ => rounded(item.take()),
                };
            }
        }
        _ => {}
    }
    v
}

fn week_answer() -> Value {
    json!([
        {
            "rank": 1, "name": HOSTILE, "slug": HOSTILE_SLUG, "url": "https://one.example/app?a=1&b=2",
            "tokens": 1500, "requests": 3,
            "top_models": [
                { "model": GPT, "tokens": 1000, "share": 1000.0 / 1500.0 },
                { "model": SOLO, "tokens": 300, "share": 300.0 / 1500.0 },
                { "model": SONNET, "tokens": 200, "share": 200.0 / 1500.0 },
            ],
        },
        {
            "rank": 2, "name": "Two", "slug": "two", "url": null,
            "tokens": 1100, "requests": 2,
            "top_models": [
                { "model": GPT, "tokens": 700, "share": 700.0 / 1100.0 },
                { "model": SONNET, "tokens": 400, "share": 400.0 / 1100.0 },
            ],
        },
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shown_apps_are_exact_and_never_expose_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    let admin = common::keys(lake, &["create", "--app", "ops", "--admin"]);
    let writer = common::keys(lake, &["create", "--app", "shown-2"]);
    lake_with_shown_1(lake);
    let server = Server::start(lake, &["--min-apps", "2"]);
    let week = "/v1/apps?period=week&date=2026-11-02";

    // Only the app published so far.
    let answer = server.get_ok(week).await;
    assert_eq!(answer["apps"].as_array().unwrap().len(), 1, "{answer}");

    // The admin API records the second; an ingest key may not.
    let put = |key| {
        send(
            &server,
            reqwest::Method::PUT,
            "/v1/admin/apps/shown-2",
            key,
            Some(json!({ "name": "Two" }).to_string()),
        )
    };
    assert_eq!(put(None).await.0, 401);
    assert_eq!(put(Some(writer.as_str())).await.0, 403);
    let (status, recorded) = put(Some(admin.as_str())).await;
    assert_eq!(status, 200, "{recorded}");
    assert_eq!(recorded["slug"], "two");

    let answer = server.get_ok(week).await;
    assert_eq!(answer["period"]["start"], "2026-11-02");
    assert_eq!(rounded(answer["apps"].clone()), rounded(week_answer()));
    let text = answer.to_string();
    for quiet in ["quiet-1", "quiet-2", "quiet-3", "shown-1", "shown-2"] {
        assert!(!text.contains(quiet), "app ids are never shown: {quiet}");
    }
    // Tuesday alone, and `top`.
    let tuesday = server
        .get_ok("/v1/apps?period=day&date=2026-11-03&top=1")
        .await;
    let names: Vec<(&str, u64, usize)> = tuesday["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap(),
                a["tokens"].as_u64().unwrap(),
                a["top_models"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(names, [("Two", 1100, 1), (HOSTILE, 200, 1)]);

    // Why Monday's sonnet part of shown-1 is left out: the leaderboard publishes sonnet's
    // Monday cell (two apps), so showing shown-1's 500 tokens there would give quiet-1's 70.
    let monday = server
        .get_ok("/v1/leaderboard?period=day&date=2026-11-02")
        .await;
    let sonnet = monday["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == SONNET)
        .unwrap()
        .clone();
    assert_eq!(sonnet["tokens"], 570);
    let shown_monday = server
        .get_ok("/v1/apps?period=day&date=2026-11-02&top=10")
        .await;
    let shown_sonnet: u64 = shown_monday["apps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["top_models"].as_array().unwrap().clone())
        .filter(|m| m["model"] == SONNET)
        .map(|m| m["tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(shown_sonnet, 0);

    // At a threshold of three apps, Monday's gpt-4o cell has two quiet apps: not counted.
    server.stop();
    let strict = Server::start(lake, &["--min-apps", "3"]);
    let answer = strict.get_ok(week).await;
    let tokens: Vec<u64> = answer["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["tokens"].as_u64().unwrap())
        .collect();
    // shown-1: solo 300 + Tuesday's sonnet 200; shown-2: Tuesday's sonnet 400.
    assert_eq!(tokens, [500, 400]);
    strict.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_pages_escape_the_name_and_withdrawal_hides_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    lake_with_shown_1(lake);
    let server = Server::start(lake, &["--min-apps", "2"]);

    let (status, html) = server.get_text("/apps?period=week&date=2026-11-02").await;
    assert_eq!(status, 200);
    assert!(!html.contains("<script>alert"), "the name is escaped");
    assert!(
        html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;Co&quot;")
    );
    assert!(html.contains(&format!("href=\"/apps/{HOSTILE_SLUG}\"")));
    assert!(html.contains("href=\"https://one.example/app?a=1&amp;b=2\""));
    let tables = common::html_tables(&html);
    let (_, _, rows) = tables.iter().find(|(id, _, _)| id == "apps").unwrap();
    assert_eq!(rows.len(), 1);
    // Only shown-1 is shown here: Tuesday's sonnet cell has shown-2, not shown in this lake, so
    // shown-1's part there is left out (1000 + 300).
    assert_eq!(rows[0][..4], ["1", HOSTILE, "1300", "2"]);

    let page = format!("/apps/{HOSTILE_SLUG}?period=week&date=2026-11-02");
    let (status, html) = server.get_text(&page).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        !html.contains("<script>alert"),
        "the name is escaped on its page"
    );
    assert!(
        html.contains(
            "<h1>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;Co&quot;</h1>"
        ),
        "{html}"
    );
    let tables = common::html_tables(&html);
    let (_, _, models) = tables.iter().find(|(id, _, _)| id == "models").unwrap();
    let models: Vec<(&str, &str)> = models
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    assert_eq!(models, [(GPT, "1000"), (SOLO, "300")]);
    let (_, _, tasks) = tables.iter().find(|(id, _, _)| id == "tasks").unwrap();
    assert_eq!(tasks[0][..2], ["programming", "1300"]);

    // Apps that did not opt in have no page, whatever is tried.
    for missing in ["quiet-1", "shown-1", "two", "%3Cscript%3E"] {
        let (status, html) = server.get_text(&format!("/apps/{missing}")).await;
        assert_eq!(status, 404, "{missing}");
        assert!(!html.contains("<script>"), "{missing}");
    }

    // Withdrawn: gone from the API and the pages at the next read.
    let out = apps_cli(lake, &["withdraw", "--app", "shown-1"]);
    assert!(out.contains("no longer shown"), "{out}");
    let answer = server.get_ok("/v1/apps?period=week&date=2026-11-02").await;
    assert_eq!(answer["apps"], json!([]));
    let (status, _) = server.get_text(&page).await;
    assert_eq!(status, 404);
    server.stop();
}

#[tokio::test]
async fn bad_consents_and_parameters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    let admin = common::keys(lake, &["create", "--app", "ops", "--admin"]);
    let server = Server::start(lake, &[]);
    let put = |app: &'static str, body: String| {
        send(
            &server,
            reqwest::Method::PUT,
            app,
            Some(admin.as_str()),
            Some(body),
        )
    };
    for (path, body, needle) in [
        ("/v1/admin/apps/a1", "{".to_owned(), "body must be"),
        ("/v1/admin/apps/a1", json!({}).to_string(), "name"),
        ("/v1/admin/apps/a1", json!({"name": ""}).to_string(), "name"),
        (
            "/v1/admin/apps/a1",
            json!({"name": "x".repeat(81)}).to_string(),
            "name",
        ),
        (
            "/v1/admin/apps/a1",
            json!({"name": "ok", "url": "javascript:alert(1)"}).to_string(),
            "url",
        ),
        (
            "/v1/admin/apps/a1",
            json!({"name": "ok", "url": "https://x\" onmouseover=\"y"}).to_string(),
            "url",
        ),
        (
            "/v1/admin/apps/a1",
            json!({"name": "ok", "extra": 1}).to_string(),
            "unknown field",
        ),
        (
            "/v1/admin/apps/a1",
            json!({"name": "???"}).to_string(),
            "name",
        ),
        (
            "/v1/admin/apps/a%07b",
            json!({"name": "ok"}).to_string(),
            "control characters",
        ),
    ] {
        let (status, answer) = put(path, body.clone()).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
    }
    // Two apps cannot share a page.
    assert_eq!(
        put("/v1/admin/apps/a1", json!({"name": "Acme"}).to_string())
            .await
            .0,
        200
    );
    let (status, answer) = put("/v1/admin/apps/a2", json!({"name": "ACME!"}).to_string()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already has")
    );
    // Withdrawing an app that is not shown.
    let (status, _) = send(
        &server,
        reqwest::Method::DELETE,
        "/v1/admin/apps/nobody",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, answer) = send(
        &server,
        reqwest::Method::DELETE,
        "/v1/admin/apps/a1",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["slug"], "acme");
    // Read parameters.
    for (query, needle) in [
        ("period=year", "period"),
        ("date=2026-02-30", "date"),
        ("task=poetry", "task"),
        ("top=0", "top"),
        ("app=acme", "unknown parameter"),
    ] {
        let (status, body) = server.get(&format!("/v1/apps?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{query}: {body}"
        );
    }
    server.stop();
    // The CLI says what is wrong.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_modelshare"))
        .args(["apps", "--data-dir"])
        .arg(lake)
        .args(["publish", "--app", "a3", "--name", "ok", "--url", "ftp://x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("url: must start with https:// or http://")
    );
}
