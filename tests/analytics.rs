//! Revealed-preference endpoints over the real server, on a hand-made scenario whose answers are
//! worked out in `docs/METRICS.md`: the same answers from raw events and from the app-week
//! rollup, a late event that makes the server rebuild a closed week, privacy folding, and bad
//! parameters.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, event};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const W0: &str = "2026-10-26";
const W1: &str = "2026-11-02";
const W2: &str = "2026-11-09";

/// One event per (app, week, model) with `tokens` input tokens at `usd_per_mtok`.
fn use_of(app: &str, week: &str, model: &str, tokens: u64, usd_per_mtok: f64, task: &str) -> Value {
    let id = format!("{app}-{week}-{model}-{task}");
    let mut e = event(
        &id,
        &format!("{week}T12:00:00Z"),
        app,
        model,
        tokens,
        0,
        tokens as f64 * usd_per_mtok / 1e6,
    );
    e["task"] = json!(task);
    e
}

/// Programming: five apps over three weeks (two switches A → B, one trial of C kept on A, one
/// touch of C below the trial threshold, one loyal app), plus p1 trying D once. Translation:
/// twelve apps all moving from m/x to deepseek-v4-flash in the week of its real price cut.
fn scenario() -> Vec<Value> {
    let (a, b, c, d) = ("m/a", "m/b", "m/c", "m/d");
    let p = "programming";
    let mut ev = vec![
        use_of("s1", W0, a, 100, 2.0, p),
        use_of("s1", W1, b, 300, 2.0, p),
        use_of("s1", W2, b, 300, 2.0, p),
        use_of("s2", W0, a, 50, 2.0, p),
        use_of("s2", W1, a, 50, 2.0, p),
        use_of("s2", W2, b, 80, 2.0, p),
        use_of("s2", W2, a, 20, 2.0, p),
        use_of("k1", W0, a, 70, 2.0, p),
        use_of("k1", W0, c, 30, 1.0, p),
        use_of("k1", W1, a, 100, 2.0, p),
        use_of("k1", W2, a, 100, 2.0, p),
        use_of("n1", W0, a, 96, 2.0, p),
        use_of("n1", W0, c, 4, 1.0, p),
        use_of("n1", W1, a, 100, 2.0, p),
        use_of("n1", W2, a, 100, 2.0, p),
        use_of("q1", W0, a, 100, 2.0, p),
        use_of("q1", W1, a, 100, 2.0, p),
        use_of("q1", W2, a, 100, 2.0, p),
        use_of("p1", W0, d, 10, 3.0, p),
    ];
    for i in 1..=12 {
        let app = format!("t{i:02}");
        ev.push(use_of(&app, W1, "m/x", 100, 1.0, "translation"));
        ev.push(use_of(
            &app,
            W2,
            "deepseek/deepseek-v4-flash",
            100,
            0.1,
            "translation",
        ));
    }
    ev
}

const QUERIES: &[&str] = &[
    "/v1/switches?task=programming&from=2026-10-26&to=2026-11-15",
    "/v1/index?task=programming&date=2026-11-09&weeks=3&min_observations=1&resamples=50",
    "/v1/retention?task=programming&model=m/b&date=2026-11-09&weeks=3",
    "/v1/retention?task=programming&date=2026-11-09&weeks=3",
    "/v1/price-share?task=programming&date=2026-10-26",
    "/v1/shifts?task=translation&date=2026-11-09",
];

async fn answers(server: &Server) -> Vec<Value> {
    let mut out = Vec::new();
    for q in QUERIES {
        out.push(server.get_ok(q).await);
    }
    out
}

fn check_hand_answers(a: &[Value]) {
    // Switches: 10 consecutive active week pairs; A → B twice.
    let sw = &a[0];
    assert_eq!(
        sw["weeks"],
        json!({"start": W0, "end": "2026-11-16", "count": 3})
    );
    assert_eq!(
        (sw["transitions"].as_u64(), sw["switches"].as_u64()),
        (Some(10), Some(2))
    );
    assert_eq!(
        sw["flows"],
        json!([{"from": "m/a", "to": "m/b", "switches": 2, "apps": 2}])
    );
    assert_eq!(sw["other"], Value::Null);

    // Index: B>A twice (switches), A>C once (k1's kept trial); n1's 4 % is no trial.
    let idx = &a[1];
    assert_eq!(idx["outcomes"], json!({"switches": 2, "trials_kept": 1}));
    assert_eq!(idx["apps"], 3);
    let models: Vec<(&str, u64, u64, u64)> = idx["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["model"].as_str().unwrap(),
                m["observations"].as_u64().unwrap(),
                m["wins"].as_u64().unwrap(),
                m["apps"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        models,
        vec![("m/b", 2, 2, 2), ("m/a", 3, 1, 3), ("m/c", 1, 0, 1)]
    );
    for m in idx["models"].as_array().unwrap() {
        let (lo, r, hi) = (
            m["lower"].as_f64().unwrap(),
            m["rating"].as_f64().unwrap(),
            m["upper"].as_f64().unwrap(),
        );
        assert!(lo <= hi && (lo - 1e-9..=hi + 1e-9).contains(&r), "{m}");
    }

    // Retention of B: week-1 cohort {s1} kept B in week 2; week-2 cohort {s2} not observable.
    let rb = &a[2];
    assert_eq!(
        rb["cohorts"],
        json!([
            {"week": W1, "units": 1, "retained": [1.0]},
            {"week": W2, "units": 1, "retained": []}
        ])
    );
    assert_eq!(
        rb["pooled"],
        json!([{"after_weeks": 1, "units": 1, "retained": 1, "rate": 1.0}])
    );
    // All models: only B has a cohort (A was everyone's baseline).
    let all = &a[3];
    assert_eq!(all["models"].as_array().unwrap().len(), 1);
    assert_eq!(all["models"][0]["model"], "m/b");

    // Price vs share in W0: A 416 tokens at $2, C 34 at $1, D 10 at $3 (of 460).
    let ps = &a[4];
    assert_eq!(ps["total_tokens"], 460);
    assert_eq!(ps["other_tokens"], 0);
    let points: Vec<(&str, f64, bool)> = ps["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["model"].as_str().unwrap(),
                m["usd_per_mtok"].as_f64().unwrap(),
                m["frontier"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        points,
        vec![("m/c", 1.0, true), ("m/a", 2.0, true), ("m/d", 3.0, false)]
    );
    // serde_json parses floats to within one ulp, not always exactly.
    assert!((ps["models"][1]["share"].as_f64().unwrap() - 416.0 / 460.0).abs() < 1e-15);
    assert_eq!(ps["models"][1]["apps"], 5);

    // Shifts: all twelve translation apps moved; the price cut of 2026-11-09 is attached.
    let sh = &a[5];
    assert_eq!(sh["previous"]["start"], W1);
    let t = &sh["tasks"][0];
    assert_eq!(t["task"], "translation");
    assert_eq!(t["tested"], 2);
    let g = &t["gainers"][0];
    assert_eq!(g["model"], "deepseek/deepseek-v4-flash");
    assert_eq!(
        (g["share"].as_f64(), g["previous_share"].as_f64()),
        (Some(1.0), Some(0.0))
    );
    assert_eq!(
        (g["apps_up"].as_u64(), g["apps_down"].as_u64()),
        (Some(12), Some(0))
    );
    assert!((g["z"].as_f64().unwrap() - 11.0 / 12f64.sqrt()).abs() < 1e-12);
    assert_eq!(g["price_changes"][0]["date"], "2026-11-09");
    assert_eq!(g["price_changes"][0]["blended_change_percent"], -25.0);
    assert_eq!(t["losers"][0]["model"], "m/x");
    assert_eq!(t["losers"][0]["apps_down"], 12);
}

fn rollup_cli(dir: &std::path::Path) -> String {
    common::run_ok([
        std::ffi::OsStr::new("rollup"),
        "--data-dir".as_ref(),
        dir.as_os_str(),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_scenario_from_raw_events_and_from_the_rollup() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--min-apps", "1"];
    let server = Server::start(dir.path(), &flags);
    let (status, r) = server.ndjson(&scenario()).await;
    assert_eq!((status, r["accepted"].as_u64()), (200, Some(43)), "{r}");
    // Not flushed yet, no rollup: everything comes from live rows.
    let from_raw = answers(&server).await;
    check_hand_answers(&from_raw);
    server.stop();

    let printed = rollup_cli(dir.path());
    assert!(printed.starts_with("rolled up 3 week(s)"), "{printed}");
    assert!(
        dir.path()
            .join("rollups/app_week/2026-11-02.g1.parquet")
            .exists()
    );
    let printed = rollup_cli(dir.path());
    assert!(printed.starts_with("rolled up 0 week(s)") && printed.contains("3 already current"));

    let server = Server::start(dir.path(), &flags);
    let from_rollup = answers(&server).await;
    assert_eq!(from_raw, from_rollup, "raw and rollup disagree");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_event_rebuilds_its_closed_week() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--min-apps",
        "1",
        "--flush-interval-secs",
        "0.2",
        "--rollup-interval-secs",
        "0.2",
        "--rollup-grace-secs",
        "0",
    ];
    let server = Server::start(dir.path(), &flags);
    server.ndjson(&scenario()).await;
    let manifest = dir.path().join("rollups/app_week/2026-11-02.json");
    let wait_for = |what: &str, ok: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ok() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("the first rollup", &|| manifest.exists());
    let index =
        "/v1/index?task=programming&date=2026-11-09&weeks=3&min_observations=1&resamples=10";
    assert_eq!(server.get_ok(index).await["outcomes"]["trials_kept"], 1);

    // q1 tries C with a third of its W1 tokens and stays on A: a second kept trial, in a week
    // that is already rolled up.
    let (status, _) = server
        .ndjson(&[use_of("q1", W1, "m/c", 50, 1.0, "programming")])
        .await;
    assert_eq!(status, 200);
    let generation = || -> u64 {
        let text = std::fs::read_to_string(&manifest).unwrap_or_default();
        serde_json::from_str::<Value>(&text).map_or(0, |v| v["generation"].as_u64().unwrap_or(0))
    };
    wait_for("generation 2", &|| generation() == 2);
    // Public answers may be up to a second old (the response cache).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(server.get_ok(index).await["outcomes"]["trials_kept"], 2);
    assert!(
        dir.path()
            .join("rollups/app_week/2026-11-02.g1.parquet")
            .exists()
    );
    assert!(
        dir.path()
            .join("rollups/app_week/2026-11-02.g2.parquet")
            .exists()
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_groups_are_folded_and_bad_parameters_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--min-apps", "3"]);
    server.ndjson(&scenario()).await;

    let sw = server.get_ok(QUERIES[0]).await;
    assert_eq!(sw["flows"], json!([]));
    // Each (task, week, from, to) cell of a switch has one app: nothing is published, not even
    // in a total.
    assert_eq!(sw["other"], Value::Null);
    assert_eq!(sw["switches"], 0);
    // B (2 apps) and C (1 app) are below 3 apps; every outcome of A (3 apps) is against one
    // of them, so no outcome is publishable and all three models are hidden.
    let idx = server.get_ok(QUERIES[1]).await;
    assert_eq!(idx["hidden_models"], 3);
    assert_eq!(idx["models"], json!([]));
    assert_eq!(idx["outcomes"], json!({"switches": 0, "trials_kept": 0}));
    let rb = server.get_ok(QUERIES[2]).await;
    assert_eq!(rb["cohorts"][0]["units"], Value::Null);
    // No app id anywhere.
    for q in QUERIES {
        let text = server.get_ok(q).await.to_string();
        for app in ["\"s1\"", "\"k1\"", "\"q1\"", "\"t01\""] {
            assert!(!text.contains(app), "{q} leaks {app}");
        }
    }

    for (path, needle) in [
        ("/v1/index?weeks=1", "weeks"),
        ("/v1/index?weeks=105", "weeks"),
        ("/v1/index?resamples=5000", "resamples"),
        ("/v1/index?task=cooking", "task"),
        ("/v1/index?task=programming&task=legal", "task"),
        ("/v1/retention?model=not-a-slug", "model"),
        ("/v1/retention?app_id=s1", "app_id"),
        ("/v1/switches?from=2026-11-10&to=2026-11-01", "after"),
        ("/v1/switches?from=2020-01-01&to=2026-11-01", "104 weeks"),
        ("/v1/shifts?period=month", "period"),
        ("/v1/shifts?date=2026-13-01", "date"),
        ("/v1/shifts?date=-262143-01-01", "outside"),
        ("/v1/index?date=1969-12-31", "outside"),
        ("/v1/price-share?period=year", "period"),
    ] {
        let (status, body) = server.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_parameter", "{path}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{path}: {message}");
    }
    server.stop();
}
