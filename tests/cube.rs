//! The app-day cube answers every public read exactly as raw events do: the same JSON from every
//! usage and analytics endpoint and the same HTML pages, for every period kind, on a generated
//! lake; and still after late events, live rows, a lost cube file, a damaged one, events copied
//! into the lake by hand (the server finds the days that no longer match and rebuilds them), and
//! damaged presence and week presence files, before start-up or under a running server (the read
//! that meets one is answered from raw events; the file is written again). The raw answers come
//! from the same binary with `--raw-reads`.
#![allow(clippy::unwrap_used)]

mod common;

use chrono::{Days, NaiveDate};
use common::{Server, event};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn generate(dir: &Path) -> NaiveDate {
    let mut args: Vec<std::ffi::OsString> = [
        "generate",
        "--events",
        "150000",
        "--apps",
        "400",
        "--seed",
        "11",
        "--start",
        "2026-09-28",
        "--days",
        "35",
        "--data-dir",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.push(dir.into());
    common::run_ok(args);
    "2026-11-01".parse().unwrap()
}

/// Every public read, for each period kind, on a few dates.
fn paths(last: NaiveDate) -> Vec<String> {
    let first = last - Days::new(34);
    let mut out = Vec::new();
    for date in [last, last - Days::new(9)] {
        for period in ["day", "week", "month"] {
            for by in ["tokens", "requests", "spend", "apps"] {
                out.push(format!(
                    "/v1/leaderboard?period={period}&date={date}&by={by}&limit=7"
                ));
            }
            out.push(format!(
                "/v1/leaderboard?period={period}&date={date}&task=programming"
            ));
            out.push(format!("/v1/authors?period={period}&date={date}&limit=5"));
            out.push(format!("/v1/tasks?period={period}&date={date}&top=3"));
            out.push(format!(
                "/v1/price-share?period={period}&date={date}&task=programming"
            ));
        }
        out.push(format!("/v1/retention?task=programming&date={date}"));
        out.push(format!(
            "/v1/switches?task=programming&from={}&to={date}",
            date - Days::new(21)
        ));
        out.push(format!("/v1/index?task=programming&date={date}"));
        out.push(format!("/v1/shifts?date={date}"));
        out.push(format!(
            "/v1/shifts?date={date}&period=day&task=programming"
        ));
    }
    for granularity in ["day", "week"] {
        out.push(format!(
            "/v1/share?granularity={granularity}&from={first}&to={last}"
        ));
        out.push(format!(
            "/v1/share?granularity={granularity}&from={first}&to={last}&task=programming&by=requests&top=4"
        ));
    }
    for page in ["/", "/tasks/programming"] {
        out.push(format!("{page}?date={last}"));
        out.push(format!("{page}?date={last}&period=month"));
    }
    out.push(format!("/index?date={last}"));
    out
}

/// The answers of the server, one per path (JSON parsed, pages as text).
async fn answers(server: &Server, paths: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for path in paths {
        let (status, text) = server.get_text(path).await;
        assert_eq!(status, 200, "{path}: {text}");
        out.push(serde_json::from_str(&text).unwrap_or(Value::String(text)));
    }
    out
}

fn assert_same(paths: &[String], cube: &[Value], raw: &[Value]) {
    for ((path, c), r) in paths.iter().zip(cube).zip(raw) {
        assert_eq!(c, r, "{path}: the cube's answer differs from the raw one");
    }
}

/// The top model's page, so the model pages are compared too.
async fn with_model_pages(server: &Server, mut paths: Vec<String>, last: NaiveDate) -> Vec<String> {
    let lb = server
        .get_ok(&format!("/v1/leaderboard?period=month&date={last}&limit=2"))
        .await;
    for row in lb["models"].as_array().unwrap() {
        let slug = row["model"].as_str().unwrap();
        if slug.contains('/') {
            paths.push(format!("/models/{slug}?date={last}"));
        }
    }
    paths
}

fn cube_files(dir: &Path, day: &str) -> Vec<PathBuf> {
    rollup_files(dir, &format!("app_days/date={day}"))
}

/// The Parquet files of one partition of a rollup, e.g. `presence/date=2026-10-13`.
fn rollup_files(dir: &Path, partition: &str) -> Vec<PathBuf> {
    common::files_in(&dir.join("rollups").join(partition), ".parquet")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cube_answers_exactly_as_raw_events_do() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    let last = generate(lake);

    // 1. A generated lake: the generator writes the cube with the events.
    let cube_server = Server::start(lake, &[]);
    let health = cube_server.wait_for_cube().await;
    assert_eq!(health["cube"]["checked"], true);
    assert_eq!(health["cube"]["days"], 35);
    assert_eq!(
        health["cube"]["summarized_weeks"], 5,
        "five closed weeks, each read from its week presence file"
    );
    let paths = with_model_pages(&cube_server, paths(last), last).await;
    let from_cube = answers(&cube_server, &paths).await;
    cube_server.wait_for_hourly_days(35).await;
    let hourly = [
        "SELECT date, status, sum(requests) AS n, sum(fallbacks) AS f,            sum(reasoning_tokens + cached_tokens) AS t, sum(latency_ms_sum) AS l,            sum(ttft_ms_sum) AS tt, sum(latency_le_1000ms) AS h,            CAST(sum(cost_usd) AS VARCHAR) AS c, count(*) AS rows          FROM hourly GROUP BY date, status ORDER BY date, status",
        "SELECT CAST(hour AS VARCHAR) AS hour, model, provider, status, requests,            latency_le_300ms AS a, latency_le_3000ms AS b, latency_le_30000ms AS c          FROM hourly WHERE date = '2026-10-20' AND task = 'programming'          ORDER BY hour, model, provider, status",
    ];
    let mut hourly_from_files = Vec::new();
    for q in hourly {
        hourly_from_files.push(cube_server.sql_rows(&[], q).await);
    }
    cube_server.stop();
    let raw_server = Server::start(lake, &["--raw-reads"]);
    let from_raw = answers(&raw_server, &paths).await;
    for (q, from_files) in hourly.iter().zip(&hourly_from_files) {
        assert!(from_files.len() > 24, "{q}: {}", from_files.len());
        assert_eq!(
            from_files,
            &raw_server.sql_rows(&[], q).await,
            "{q}: hourly files = raw events"
        );
    }
    raw_server.stop();
    assert_same(&paths, &from_cube, &from_raw);
    println!("cube = raw on {} public reads", paths.len());

    // 2. Live rows (late ones among them) read beside the cube, then flushed into it.
    let cube_server = Server::start(lake, &[]);
    cube_server.wait_for_cube().await;
    let late: Vec<Value> = (0..60)
        .map(|i| {
            let day = last - Days::new(i % 3);
            event(
                &format!("late-{i}"),
                &format!("{day}T12:{:02}:00Z", i % 60),
                &format!("late-app-{}", i % 7),
                "openai/gpt-4o",
                1000 + i,
                10,
                0.001,
            )
        })
        .collect();
    let (status, body) = cube_server.ndjson(&late).await;
    assert_eq!(status, 200, "{body}");
    let with_live = answers(&cube_server, &paths).await;
    cube_server.stop();
    let raw_server = Server::start(lake, &["--raw-reads"]);
    let raw_after_late = answers(&raw_server, &paths).await;
    raw_server.stop();
    assert_same(&paths, &with_live, &raw_after_late);
    assert_ne!(
        from_raw, raw_after_late,
        "the late events changed some answers"
    );

    // 3. Damage: a day's cube file lost, another day's overwritten with garbage, a third day
    //    given an events file copied in by hand (no cube file of its own).
    let days = ["2026-10-20", "2026-10-21", "2026-10-22"];
    for f in cube_files(lake, days[0]) {
        std::fs::remove_file(f).unwrap();
    }
    std::fs::write(&cube_files(lake, days[1])[0], b"PAR1 garbage").unwrap();
    let events_dir = lake.join(format!("events/date={}", days[2]));
    let original = std::fs::read_dir(&events_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .unwrap();
    std::fs::copy(&original, events_dir.join("copied-by-hand.parquet")).unwrap();
    //    And summaries damaged: a day's presence file, a week's presence file.
    let garbage = b"PAR1 garbage".as_slice();
    std::fs::write(
        &rollup_files(lake, "group_presence/date=2026-10-13")[0],
        garbage,
    )
    .unwrap();
    std::fs::write(
        &rollup_files(lake, "week_presence/week=2026-10-05")[0],
        garbage,
    )
    .unwrap();

    let cube_server = Server::start(lake, &["--cube-interval-secs", "0.2"]);
    // Until the check has run, every day is read raw: answers are right even before it.
    let early = answers(&cube_server, &paths[..3]).await;
    cube_server.wait_for_cube().await;
    let rebuilt = answers(&cube_server, &paths).await;
    for partition in [
        "group_presence/date=2026-10-13",
        "week_presence/week=2026-10-05",
    ] {
        let files = rollup_files(lake, partition);
        assert_eq!(files.len(), 1, "{partition}");
        assert_ne!(
            std::fs::read(&files[0]).unwrap(),
            garbage,
            "{partition} rewritten"
        );
    }

    // 4. A week file damaged under a running server: the read that meets it is answered from
    //    raw events, and the file is written again.
    let week_file =
        rollup_files(lake, &format!("week_presence/week={}", last - Days::new(6)))[0].clone();
    std::fs::write(&week_file, garbage).unwrap();
    let unseen = format!("/v1/leaderboard?period=week&date={last}&by=apps&limit=3");
    let under_damage = answers(&cube_server, std::slice::from_ref(&unseen)).await;
    let mut rewritten = false;
    for _ in 0..300 {
        let files = rollup_files(lake, &format!("week_presence/week={}", last - Days::new(6)));
        if files.len() == 1 && std::fs::read(&files[0]).unwrap() != garbage {
            rewritten = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(rewritten, "the damaged week file is written again");
    cube_server.wait_for_cube().await;
    cube_server.stop();
    for day in days {
        assert_eq!(
            cube_files(lake, day).len(),
            1,
            "{day} rebuilt into one file"
        );
    }
    let raw_server = Server::start(lake, &["--raw-reads"]);
    let raw_after_damage = answers(&raw_server, &paths).await;
    let raw_unseen = answers(&raw_server, std::slice::from_ref(&unseen)).await;
    raw_server.stop();
    assert_same(std::slice::from_ref(&unseen), &under_damage, &raw_unseen);
    assert_same(&paths[..3], &early, &raw_after_damage[..3]);
    assert_same(&paths, &rebuilt, &raw_after_damage);
    assert_ne!(
        raw_after_late, raw_after_damage,
        "the copied events changed some answers"
    );
}

/// The `hourly` view on hand-made events of a closed day: exact counts, sums and histogram,
/// the same from the day's hourly file, from raw events, with a late event still live, and
/// after that event is flushed (the stale file is replaced).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_rows_are_exact_from_the_summary_and_from_raw_events() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    let day = "2026-11-02";
    let e = |id: &str, time: &str, status: &str, latency: u64, attempt: u64| {
        let e = event(
            id,
            &format!("{day}T{time}Z"),
            "app-1",
            "openai/gpt-4o",
            100,
            10,
            0.25,
        );
        let e = common::with(e, "status", serde_json::json!(status));
        let e = common::with(e, "latency_ms", serde_json::json!(latency));
        common::with(e, "attempt", serde_json::json!(attempt))
    };
    common::ingest(
        lake,
        &[
            e("h1", "10:05:00", "ok", 90, 0),
            e("h2", "10:40:00", "ok", 250, 0),
            e("h3", "10:59:59", "error", 5000, 0),
            e("h4", "11:00:00", "ok", 70000, 1),
        ],
    );
    let query = "SELECT CAST(date_part('hour', hour) AS INT) AS h, status, requests, fallbacks, \
                 input_tokens, CAST(cost_usd AS DOUBLE) AS cost, latency_ms_sum, ttft_ms_sum, \
                 latency_le_100ms AS le100, latency_le_300ms AS le300, \
                 latency_le_5000ms AS le5000, latency_le_60000ms AS le60000 \
                 FROM hourly ORDER BY h, status";
    let row = |h: u32, status: &str, n: u64, fallbacks: u64, latency: u64, le: [u64; 4]| {
        serde_json::json!({
            "h": h, "status": status, "requests": n, "fallbacks": fallbacks,
            "input_tokens": 100 * n, "cost": 0.25 * n as f64, "latency_ms_sum": latency,
            "ttft_ms_sum": 200 * n, "le100": le[0], "le300": le[1], "le5000": le[2],
            "le60000": le[3],
        })
    };
    let expected = vec![
        row(10, "error", 1, 0, 5000, [0, 0, 1, 1]),
        row(10, "ok", 2, 0, 340, [1, 2, 2, 2]),
        row(11, "ok", 1, 1, 70000, [0, 0, 0, 0]),
    ];
    let flags = ["--cube-interval-secs", "0.2"];
    let hour_files =
        || common::files_in(&lake.join(format!("rollups/hourly/date={day}")), ".parquet");

    let server = Server::start(lake, &flags);
    server.wait_for_hourly_days(1).await;
    assert_eq!(hour_files().len(), 1);
    assert_eq!(
        server.sql_rows(&[], query).await,
        expected,
        "from the hourly file"
    );
    // The rows come from the file: with the day's events moved away, raw events have none.
    // (Another text than before, so no cached answer stands in.)
    let events_dir = lake.join(format!("events/date={day}"));
    let aside = lake.join("aside");
    std::fs::rename(&events_dir, &aside).unwrap();
    let again = format!("{query} LIMIT 10");
    assert_eq!(
        server.sql_rows(&[], &again).await,
        expected,
        "the hourly file alone"
    );
    std::fs::rename(&aside, &events_dir).unwrap();
    // A late event, still live: read beside the file.
    let (status, body) = server.ndjson(&[e("h5", "10:10:00", "ok", 150, 0)]).await;
    assert_eq!(status, 200, "{body}");
    let mut late = expected.clone();
    late[1] = row(10, "ok", 3, 0, 490, [1, 3, 3, 3]);
    assert_eq!(
        server.sql_rows(&[], query).await,
        late,
        "file and live rows"
    );
    server.stop();
    assert_eq!(common::sql(lake, query), late, "raw events");
    let first = hour_files();

    // Flushed, the late event makes the day's file stale: read raw until it is written again.
    let server = Server::start(lake, &flags);
    server.wait_for_hourly_days(1).await;
    let second = hour_files();
    assert_eq!(second.len(), 1);
    assert_ne!(first, second, "a new file for the day's new events files");
    assert_eq!(
        server.sql_rows(&[], query).await,
        late,
        "from the new hourly file"
    );
    server.stop();
    let raw = Server::start(lake, &["--raw-reads"]);
    assert_eq!(raw.sql_rows(&[], query).await, late, "--raw-reads");
    raw.stop();
}
