//! The read API on hand-made events whose answers are worked out by hand: leaderboard figures,
//! previous-period shares, ISO week boundaries, the publication rule, authors, tasks and share
//! series.
#![allow(clippy::unwrap_used)]

mod common;
use common::{Server, close, event, with};
use serde_json::{Value, json};

/// Week of 2026-11-16 (Mon) .. 2026-11-22 (Sun), with `--min-apps 3`. Published figures come
/// from base cells (day, task, model, provider) with at least 3 apps:
/// - a/alpha: app1..app4 on the 17th, 1000 in + 500 out, $0.01 each → 6000 tokens, 4 requests,
///   4 apps, $0.04; plus app1 alone at Sunday 23:59:59 with 10 input tokens: a cell of one app,
///   published nowhere
/// - b/beta (roleplay): app1..app3, 100 + 100, $0.001 each → 600 tokens, 3 requests, 3 apps
/// - c/gamma: app5, app6, 200 + 200, $0.001 each: a cell of 2 apps, published nowhere
/// - an `error` request of a/alpha (not counted)
///
/// Previous week: a/alpha and b/beta, 3 apps each, 100 tokens each → shares 0.5 / 0.5.
/// Next week: b/beta app9 at Monday 00:00:00 → not in the week of the 16th (and alone).
fn fixture() -> Vec<Value> {
    let mut v = Vec::new();
    for i in 1..=4 {
        v.push(event(
            &format!("a{i}"),
            "2026-11-17T10:00:00Z",
            &format!("app{i}"),
            "a/alpha",
            1000,
            500,
            0.01,
        ));
    }
    v.push(event(
        "a-sunday",
        "2026-11-22T23:59:59Z",
        "app1",
        "a/alpha",
        10,
        0,
        0.0,
    ));
    v.push(with(
        event(
            "a-err",
            "2026-11-18T10:00:00Z",
            "app1",
            "a/alpha",
            999,
            0,
            0.5,
        ),
        "status",
        json!("error"),
    ));
    for i in 1..=3 {
        let e = event(
            &format!("b{i}"),
            "2026-11-19T08:30:00Z",
            &format!("app{i}"),
            "b/beta",
            100,
            100,
            0.001,
        );
        v.push(with(e, "task", json!("roleplay")));
    }
    for i in 5..=6 {
        v.push(event(
            &format!("c{i}"),
            "2026-11-20T12:00:00Z",
            &format!("app{i}"),
            "c/gamma",
            200,
            200,
            0.001,
        ));
    }
    for i in 1..=3 {
        v.push(event(
            &format!("pa{i}"),
            "2026-11-10T00:00:00Z",
            &format!("app{i}"),
            "a/alpha",
            100,
            0,
            0.0,
        ));
        v.push(event(
            &format!("pb{i}"),
            "2026-11-15T23:00:00Z",
            &format!("app{i}"),
            "b/beta",
            100,
            0,
            0.0,
        ));
    }
    v.push(event(
        "b-monday",
        "2026-11-23T00:00:00Z",
        "app9",
        "b/beta",
        7,
        0,
        0.0,
    ));
    v
}

async fn server_with_fixture() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--min-apps", "3"]);
    let (status, body) = server.ndjson(&fixture()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 18);
    (dir, server)
}

#[tokio::test]
async fn leaderboard_figures_boundaries_and_privacy() {
    let (_dir, s) = server_with_fixture().await;
    let (status, lb) = s.get("/v1/leaderboard?period=week&date=2026-11-18").await;
    assert_eq!(status, 200, "{lb}");
    assert_eq!(
        lb["period"],
        json!({"kind": "week", "start": "2026-11-16", "end": "2026-11-23"})
    );
    assert_eq!(lb["task"], Value::Null);
    assert_eq!(lb["by"], "tokens");
    assert_eq!(
        lb["totals"],
        json!({"tokens": 6600, "requests": 7, "cost_usd": 0.043, "apps": 4})
    );
    let models = lb["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);

    let a = &models[0];
    assert_eq!(a["rank"], 1);
    assert_eq!(a["model"], "a/alpha");
    assert_eq!(a["author"], "a");
    assert_eq!(a["tokens"], 6000);
    assert_eq!(a["input_tokens"], 4000);
    assert_eq!(a["output_tokens"], 2000);
    assert_eq!(a["requests"], 4);
    assert_eq!(a["apps"], 4);
    assert_eq!(a["cost_usd"], 0.04);
    assert!(close(a["share"].as_f64().unwrap(), 6000.0 / 6600.0));
    assert!(close(a["previous_share"].as_f64().unwrap(), 0.5));
    assert!(close(
        a["share_change"].as_f64().unwrap(),
        6000.0 / 6600.0 - 0.5
    ));
    assert!(close(
        a["usd_per_mtok"].as_f64().unwrap(),
        0.04 * 1e6 / 6000.0
    ));

    let b = &models[1];
    assert_eq!(
        (b["rank"].clone(), b["model"].clone(), b["tokens"].clone()),
        (json!(2), json!("b/beta"), json!(600))
    );
    assert_eq!(b["apps"], 3);
    assert!(close(b["previous_share"].as_f64().unwrap(), 0.5));

    // c/gamma's cell has 2 apps: below --min-apps 3, so its figures are in no row, not even
    // in `other` or the totals, and nothing is left to fold.
    assert!(!lb.to_string().contains("gamma"));
    assert!(!lb.to_string().contains("\"other\""));
    assert!(!lb.to_string().contains("app1"));

    // The Monday 00:00 event belongs to the next week only, where it is alone.
    let (_, next) = s
        .get("/v1/leaderboard?period=week&date=2026-11-23&limit=5")
        .await;
    assert_eq!(next["totals"]["tokens"], 0);
    assert_eq!(next["models"], json!([]));

    // Sunday 23:59:59 is in the day of the 22nd, where app1 is alone: nothing is published.
    let (_, day) = s.get("/v1/leaderboard?period=day&date=2026-11-22").await;
    assert_eq!(day["totals"]["tokens"], 0);
    let (_, day) = s.get("/v1/leaderboard?period=day&date=2026-11-17").await;
    assert_eq!(day["totals"]["tokens"], 6000);
}

#[tokio::test]
async fn measures_limits_tasks_and_authors() {
    let (_dir, s) = server_with_fixture().await;
    let (_, lb) = s
        .get("/v1/leaderboard?date=2026-11-18&by=requests&limit=1")
        .await;
    let models = lb["models"].as_array().unwrap();
    assert_eq!(models.len(), 2, "{lb}");
    assert_eq!(models[0]["model"], "a/alpha");
    assert!(close(models[0]["share"].as_f64().unwrap(), 4.0 / 7.0));
    // beta (beyond the limit) makes up `other`: 3 requests by app1..app3 (gamma's cell is not
    // publishable, so it is not in `other` either).
    assert_eq!(models[1]["model"], "other");
    assert_eq!(models[1]["requests"], 3);
    assert_eq!(models[1]["apps"], 3);
    assert!(close(models[1]["share"].as_f64().unwrap(), 3.0 / 7.0));

    let (_, rp) = s.get("/v1/leaderboard?date=2026-11-18&task=roleplay").await;
    assert_eq!(rp["task"], "roleplay");
    assert_eq!(rp["totals"]["tokens"], 600);
    assert_eq!(rp["models"][0]["model"], "b/beta");
    assert!(close(rp["models"][0]["share"].as_f64().unwrap(), 1.0));

    let (_, spend) = s.get("/v1/leaderboard?date=2026-11-18&by=spend").await;
    assert!(close(
        spend["models"][0]["share"].as_f64().unwrap(),
        0.04 / 0.043
    ));

    // app1..app4 are behind every published cell; alpha has all four.
    let (_, apps) = s.get("/v1/leaderboard?date=2026-11-18&by=apps").await;
    assert!(close(apps["models"][0]["share"].as_f64().unwrap(), 1.0));

    let (status, au) = s.get("/v1/authors?period=week&date=2026-11-18").await;
    assert_eq!(status, 200);
    let authors = au["authors"].as_array().unwrap();
    assert_eq!(authors[0]["author"], "a");
    assert_eq!(authors[0]["tokens"], 6000);
    assert_eq!(authors[1]["author"], "b");
    assert_eq!(authors.len(), 2);

    let (status, month) = s.get("/v1/leaderboard?period=month&date=2026-11-30").await;
    assert_eq!(status, 200);
    assert_eq!(
        month["period"],
        json!({"kind": "month", "start": "2026-11-01", "end": "2026-12-01"})
    );
    // The publishable cells of November: 300 + 300 in the week before, 6000 + 600 in this one.
    assert_eq!(month["totals"]["tokens"], 600 + 6600);
}

#[tokio::test]
async fn tasks_overview() {
    let (_dir, s) = server_with_fixture().await;
    let (status, t) = s.get("/v1/tasks?period=week&date=2026-11-18").await;
    assert_eq!(status, 200, "{t}");
    let tasks = t["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0]["task"], "programming");
    // Programming's only publishable cell is a/alpha's on the 17th.
    assert_eq!(tasks[0]["tokens"], 6000);
    assert_eq!(tasks[0]["apps"], 4);
    assert_eq!(tasks[0]["top_models"].as_array().unwrap().len(), 1);
    assert_eq!(tasks[0]["top_models"][0]["model"], "a/alpha");
    assert!(close(
        tasks[0]["top_models"][0]["share"].as_f64().unwrap(),
        1.0
    ));
    assert_eq!(tasks[1]["task"], "roleplay");
    assert_eq!(tasks[1]["tokens"], 600);
    assert_eq!(t.get("folded"), None);
}

#[tokio::test]
async fn share_series_by_week_and_day() {
    let (_dir, s) = server_with_fixture().await;
    let (status, sh) = s
        .get("/v1/share?granularity=week&from=2026-11-09&to=2026-11-22&top=5")
        .await;
    assert_eq!(status, 200, "{sh}");
    assert_eq!(sh["buckets"], json!(["2026-11-09", "2026-11-16"]));
    // Every publishable cell belongs to a listed model: no `other` series.
    let series = sh["series"].as_array().unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(series[0]["model"], "a/alpha");
    assert_eq!(series[0]["tokens"], json!([300, 6000]));
    assert!(close(series[0]["share"][0].as_f64().unwrap(), 0.5));
    assert!(close(
        series[0]["share"][1].as_f64().unwrap(),
        6000.0 / 6600.0
    ));
    assert_eq!(series[1]["model"], "b/beta");
    assert_eq!(series[1]["tokens"], json!([300, 600]));

    // Per day, no cell reaches 3 apps on the 22nd or 23rd: nothing is published.
    let (_, day) = s
        .get("/v1/share?granularity=day&from=2026-11-22&to=2026-11-23")
        .await;
    assert_eq!(day["buckets"], json!(["2026-11-22", "2026-11-23"]));
    assert_eq!(day["series"], json!([]));

    // On the 17th alpha has 4 apps; on the 22nd it is one app, a cell published nowhere. With
    // one model shown, beta's cell on the 19th is `other` (gamma's on the 20th is not public).
    let (_, d2) = s
        .get("/v1/share?granularity=day&from=2026-11-17&to=2026-11-22&top=1")
        .await;
    assert_eq!(d2["series"][0]["model"], "a/alpha");
    assert_eq!(d2["series"][0]["tokens"], json!([6000, 0, 0, 0, 0, 0]));
    assert_eq!(d2["series"][1]["model"], "other");
    assert_eq!(d2["series"][1]["tokens"], json!([0, 0, 600, 0, 0, 0]));
}

#[tokio::test]
async fn bad_parameters_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    for (path, needle) in [
        ("/v1/leaderboard?period=year", "unknown period \"year\""),
        ("/v1/leaderboard?date=2026-13-01", "is not a date"),
        ("/v1/leaderboard?task=coding", "unknown task \"coding\""),
        ("/v1/leaderboard?by=vibes", "unknown measure"),
        ("/v1/leaderboard?limit=0", "limit: 0 is outside 1..=1000"),
        ("/v1/leaderboard?limit=-3", "limit: invalid digit"),
        ("/v1/leaderboard?colour=red", "unknown parameter \"colour\""),
        ("/v1/leaderboard?task=legal&task=seo", "given twice"),
        ("/v1/share?from=2026-11-10&to=2026-11-01", "is after to"),
        ("/v1/share?from=2020-01-01&to=2026-11-01", "spans more than"),
        ("/v1/share?granularity=hour", "unknown granularity"),
        ("/v1/tasks?top=1000", "top: 1000 is outside"),
        (
            "/v1/leaderboard?date=%27;DROP%20TABLE%20events;--",
            "is not a date",
        ),
    ] {
        let (status, body) = s.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_parameter", "{path}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{path}: {msg}");
    }
    let (status, body) = s.get("/v1/nope").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");

    // An empty lake answers with zeros, not errors.
    let (status, lb) = s.get("/v1/leaderboard?date=2026-11-18").await;
    assert_eq!(status, 200);
    assert_eq!(
        lb["totals"],
        json!({"tokens": 0, "requests": 0, "cost_usd": 0.0, "apps": 0})
    );
    assert_eq!(lb["models"], json!([]));
    let (status, h) = s.get("/healthz").await;
    assert_eq!((status, h["status"].clone()), (200, json!("ok")));
}

/// Identical public reads arriving together cost one computation: fifty concurrent requests for
/// the same leaderboard run the queries of one, and all get the same answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_concurrent_reads_are_computed_once() {
    let (_dir, server) = server_with_fixture().await;
    let queries = || async {
        let text = server.get_text("/metrics").await.1;
        text.lines()
            .find_map(|l| l.strip_prefix("modelshare_queries_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap()
    };
    let path = "/v1/leaderboard?period=week&date=2026-11-18";
    let before = queries().await;
    let one = server.get_ok(path).await;
    let per_read = queries().await - before;
    assert!(per_read >= 1.0);
    // Fifty at once at an unchanged lake: all from the cache.
    let before = queries().await;
    let reads = (0..50).map(|_| server.get_ok(path));
    assert!(
        futures::future::join_all(reads)
            .await
            .iter()
            .all(|a| *a == one)
    );
    assert_eq!(queries().await - before, 0.0, "no computation at all");
    // An event (outside the week) and the first answer's freshness passes: computed again, once.
    let other_week = event("x", "2026-11-03T10:00:00Z", "app1", "a/alpha", 1, 1, 0.0);
    assert_eq!(server.ndjson(&[other_week]).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before = queries().await;
    let reads = (0..50).map(|_| server.get_ok(path));
    let answers = futures::future::join_all(reads).await;
    assert!(answers.iter().all(|a| *a == one));
    assert_eq!(
        queries().await - before,
        per_read,
        "one computation for fifty reads"
    );
}
