//! Context segments: `context=` on the leaderboard, share, retention, index and shifts, and the
//! segment selector of the task pages. Exact figures on hand-made events at two apps, including
//! a model whose long requests come from a single app: that group is in no figure.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, event};
use serde_json::{Value, json};

const MON: &str = "2026-11-02";
const O3: &str = "openai/o3";
const MINI: &str = "openai/gpt-4o-mini";
const HAIKU: &str = "anthropic/claude-haiku-4.5";
const SHORT_INPUT: u64 = 1_000;
const LONG_INPUT: u64 = 40_000;

fn call(id: &str, day: &str, app: &str, model: &str, input: u64) -> Value {
    event(id, &format!("{day}T10:00:00Z"), app, model, input, 10, 0.01)
}

/// Monday: o3 has a1 and a2 at short and at long context (both groups have two apps); mini has
/// a1, a2, a3 at short and only a3 at long (a group of a single app: withheld); haiku has one app
/// (not published at all).
fn monday() -> Vec<Value> {
    let mut out = Vec::new();
    for app in ["a1", "a2"] {
        out.push(call(&format!("{app}-o3-s"), MON, app, O3, SHORT_INPUT));
        out.push(call(&format!("{app}-o3-l"), MON, app, O3, LONG_INPUT));
    }
    for app in ["a1", "a2", "a3"] {
        out.push(call(&format!("{app}-mini-s"), MON, app, MINI, SHORT_INPUT));
    }
    out.push(call("a3-mini-l", MON, "a3", MINI, 50_000));
    out.push(call("a1-haiku", MON, "a1", HAIKU, SHORT_INPUT));
    out
}

/// Three weeks of a1 and a2 in programming: at short context mini, then o3, then o3 (o3
/// becomes their primary in the second week and stays); at long context o3, o3, then mini. Long
/// requests carry most tokens, so over all lengths o3 is their primary in the first two weeks
/// and never *becomes* it.
fn weeks() -> Vec<Value> {
    let mut out = Vec::new();
    let plan = [
        ("2026-11-03", MINI, O3),
        ("2026-11-10", O3, O3),
        ("2026-11-17", O3, MINI),
    ];
    for (day, short, long) in plan {
        for app in ["a1", "a2"] {
            out.push(call(
                &format!("{day}-{app}-s"),
                day,
                app,
                short,
                SHORT_INPUT,
            ));
            out.push(call(&format!("{day}-{app}-l"), day, app, long, LONG_INPUT));
        }
    }
    out
}

fn models(answer: &Value) -> Vec<(String, u64, u64)> {
    answer["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["model"].as_str().unwrap().to_owned(),
                m["tokens"].as_u64().unwrap(),
                m["apps"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_sum_the_groups_of_enough_apps() {
    let dir = tempfile::tempdir().unwrap();
    common::ingest(dir.path(), &monday());
    let server = Server::start(dir.path(), &["--min-apps", "2"]);
    server.wait_for_cube().await;
    let board = |context: &str| {
        let suffix = if context.is_empty() {
            String::new()
        } else {
            format!("&context={context}")
        };
        format!("/v1/leaderboard?period=day&date={MON}&task=programming{suffix}")
    };

    // All lengths: o3's groups (2 × 1,010 + 2 × 40,010) and mini's short group (3 × 1,010); a3's
    // long request (50,010 tokens) is a group of one app and in no figure.
    let all = server.get_ok(&board("")).await;
    assert_eq!(all["context"], Value::Null);
    assert_eq!(
        models(&all),
        [(O3.to_owned(), 82_040, 2), (MINI.to_owned(), 3_030, 3)]
    );
    assert_eq!(all["totals"]["tokens"], 85_070);

    // Short: o3's and mini's short groups.
    let short = server.get_ok(&board("short")).await;
    assert_eq!(short["context"], "short");
    assert_eq!(
        models(&short),
        [(MINI.to_owned(), 3_030, 3), (O3.to_owned(), 2_020, 2)]
    );
    assert_eq!(short["totals"]["tokens"], 5_050);
    assert_eq!(short["totals"]["requests"], 5);
    assert_eq!(short["models"][0]["share"], 3_030.0 / 5_050.0);
    // Long: o3's only; a plain filter would show a3's 50,010 alone under mini.
    let long = server.get_ok(&board("long")).await;
    assert_eq!(models(&long), [(O3.to_owned(), 80_020, 2)]);
    assert_eq!(long["totals"]["tokens"], 80_020);
    for empty in ["medium", "very_long"] {
        let answer = server.get_ok(&board(empty)).await;
        assert_eq!(answer["models"], json!([]), "{empty}");
        assert_eq!(answer["totals"]["tokens"], 0, "{empty}");
    }
    // The segments add up to all lengths exactly.
    assert_eq!(5_050 + 80_020, 85_070);

    // Authors and share over time take the same parts.
    let authors = server
        .get_ok(&format!(
            "/v1/authors?period=day&date={MON}&task=programming&context=long"
        ))
        .await;
    assert_eq!(authors["authors"][0]["author"], "openai");
    assert_eq!(authors["authors"][0]["tokens"], 80_020);
    let share = server
        .get_ok(&format!(
            "/v1/share?task=programming&granularity=day&from={MON}&to={MON}&context=long"
        ))
        .await;
    assert_eq!(share["context"], "long");
    assert_eq!(share["series"][0]["model"], O3);
    assert_eq!(share["series"][0]["tokens"], json!([80_020]));
    assert_eq!(share["series"][0]["share"], json!([1.0]));
    assert_eq!(share["series"].as_array().unwrap().len(), 1);

    // The task page's selector: the segment chosen, and the table its parts.
    let (status, html) = server
        .get_text(&format!(
            "/tasks/programming?period=day&date={MON}&context=long"
        ))
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("<option value=\"long\" selected>long (32k–128k)</option>"));
    let tables = common::html_tables(&html);
    let (_, columns, rows) = tables
        .iter()
        .find(|(id, _, _)| id == "leaderboard")
        .unwrap();
    let model_col = columns.iter().position(|c| c == "model").unwrap();
    let tokens_col = columns.iter().position(|c| c == "tokens").unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][model_col], O3);
    assert_eq!(rows[0][tokens_col], "80020");
    // Its chart URLs carry the segment.
    assert!(html.contains("context=long"));
    // The prompt-length panel: each segment's leaderboard side by side (the same on every
    // segment's page: it does not take the selection).
    let (_, columns, rows) = tables
        .iter()
        .find(|(id, _, _)| id == "context_mix")
        .unwrap();
    assert_eq!(
        columns,
        &[
            "context",
            "prompt",
            "tokens",
            "share",
            "apps",
            "top_model",
            "top_share"
        ]
    );
    let mix: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect();
    let short_share = (5_050.0 / 85_070.0_f64).to_string();
    let long_share = (80_020.0 / 85_070.0_f64).to_string();
    let mini_in_short = (3_030.0 / 5_050.0_f64).to_string();
    assert_eq!(
        mix,
        [
            vec![
                "short",
                "< 8k",
                "5050",
                short_share.as_str(),
                "3",
                MINI,
                mini_in_short.as_str()
            ],
            vec!["medium", "8k–32k", "0", "0", "0", "", ""],
            vec![
                "long",
                "32k–128k",
                "80020",
                long_share.as_str(),
                "2",
                O3,
                "1"
            ],
            vec!["very_long", "≥ 128k", "0", "0", "0", "", ""],
        ]
    );

    // Unknown segments are refused with the accepted ones named.
    for path in [
        "/v1/leaderboard?context=huge",
        "/v1/share?context=LONG",
        "/v1/index?context=tiny",
        "/v1/shifts?context=long,short",
        "/v1/retention?context=%3Cscript%3E",
    ] {
        let (status, body) = server.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("very_long"), "{path}: {message}");
    }
    let (status, html) = server.get_text("/tasks/programming?context=huge").await;
    assert_eq!(status, 400);
    assert!(!html.contains("<script>"));
    // Endpoints that do not split by segment do not take it.
    let (status, _) = server
        .get("/v1/providers?model=openai/o3&context=long")
        .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyses_see_the_choices_made_in_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    common::ingest(dir.path(), &weeks());
    let server = Server::start(dir.path(), &["--min-apps", "2"]);
    server.wait_for_cube().await;
    let retention = |context: &str| {
        format!("/v1/retention?task=programming&model={O3}&weeks=3&date=2026-11-16{context}")
    };
    // Short context: both apps' primary became o3 in the second week and stayed.
    let short = server.get_ok(&retention("&context=short")).await;
    assert_eq!(short["context"], "short");
    let cohorts = short["cohorts"].as_array().unwrap();
    let entered: Vec<&Value> = cohorts.iter().filter(|c| !c["units"].is_null()).collect();
    assert_eq!(entered.len(), 1, "{short}");
    assert_eq!(entered[0]["week"], "2026-11-09");
    assert_eq!(entered[0]["units"], 2);
    assert_eq!(entered[0]["retained"], json!([1.0]));
    // All lengths: o3 was their primary from the first week, so no cohort entered it; at long
    // context neither (it was primary from the first week and left in the third).
    for context in ["", "&context=long"] {
        let answer = server.get_ok(&retention(context)).await;
        let entered = answer["cohorts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| !c["units"].is_null())
            .count();
        assert_eq!(entered, 0, "{context}: {answer}");
    }

    // Shifts of the third week: at long context mini took both apps from o3; at short context
    // nothing moved between the second and third weeks.
    let shifts = |context: &str| {
        format!("/v1/shifts?period=week&date=2026-11-16&task=programming&context={context}")
    };
    let long = server.get_ok(&shifts("long")).await;
    assert_eq!(long["context"], "long");
    let short = server.get_ok(&shifts("short")).await;
    let moved = |answer: &Value, side: &str| -> Vec<String> {
        answer["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t[side].as_array().unwrap().clone())
            .map(|m| m["model"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(moved(&short, "gainers").is_empty(), "{short}");
    assert!(moved(&short, "losers").is_empty(), "{short}");
    // The index answers per segment: at short context the apps left mini for o3, over all
    // lengths (where long requests weigh most) they left o3 for mini.
    let leader = async |context: &str| {
        let index = server
            .get_ok(&format!(
                "/v1/index?task=programming&weeks=3&date=2026-11-16&min_observations=1{context}"
            ))
            .await;
        assert_eq!(index["outcomes"]["switches"], 2, "{index}");
        index["models"][0]["model"].as_str().unwrap().to_owned()
    };
    assert_eq!(leader("&context=short").await, O3);
    assert_eq!(leader("").await, MINI);
    assert_eq!(leader("&context=long").await, MINI);

    // The shifts feed of one segment is a feed of its own (two apps move nothing
    // significantly, so it has no entries here; the planted lake's test reads entries).
    let (status, xml) = server
        .get_text("/feeds/shifts.atom?date=2026-11-24&context=long")
        .await;
    assert_eq!(status, 200);
    let feed: atom_syndication::Feed = xml.parse().unwrap();
    assert_eq!(
        feed.title().as_str(),
        "modelshare: significant share shifts at long context"
    );
    assert!(feed.links()[0].href().ends_with("?context=long"));
    let (status, _) = server.get("/feeds/shifts.atom?context=longest").await;
    assert_eq!(status, 400);
}

/// Two splits of one cell must not cross: a segment's part minus a part of another split
/// (first-choice requests, a shown app's figures) could leave one app. With two apps:
/// - o3 on Monday: first choice from a1 a2 (short), fallbacks from x (short) and b1 b2 (long).
///   By segment, short has three apps and long two; by attempt, first choice two and fallbacks
///   three. Were the splits tested apart, both would pass, and short − first choice = x's
///   fallback. As groups, x's short fallback is a group of one app: it is in no figure, and
///   every other figure is a sum of the three other groups.
/// - mini on Monday: the shown app p1 and the unshown u at short, v1 v2 at long. The cell's
///   unshown apps are three, but its short group's unshown app is u alone: short − p1's figures
///   would be u's. So p1's part of that group does not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splits_of_one_cell_do_not_cross() {
    let dir = tempfile::tempdir().unwrap();
    let fallback = |e: Value| common::with(e, "attempt", json!(1));
    let events = vec![
        call("o-a1", MON, "a1", O3, SHORT_INPUT),
        call("o-a2", MON, "a2", O3, SHORT_INPUT),
        fallback(call("o-x", MON, "x", O3, SHORT_INPUT)),
        fallback(call("o-b1", MON, "b1", O3, LONG_INPUT)),
        fallback(call("o-b2", MON, "b2", O3, LONG_INPUT)),
        call("m-p1", MON, "p1", MINI, SHORT_INPUT),
        call("m-u", MON, "u", MINI, SHORT_INPUT),
        call("m-v1", MON, "v1", MINI, LONG_INPUT),
        call("m-v2", MON, "v2", MINI, LONG_INPUT),
    ];
    common::ingest(dir.path(), &events);
    common::run_ok([
        "apps".as_ref(),
        "--data-dir".as_ref(),
        dir.path().as_os_str(),
        "publish".as_ref(),
        "--app".as_ref(),
        "p1".as_ref(),
        "--name".as_ref(),
        "P One".as_ref(),
    ]);
    let server = Server::start(dir.path(), &["--min-apps", "2"]);
    server.wait_for_cube().await;

    // Over all lengths: o3 without x's fallback (1,010 tokens), mini whole.
    let all = server
        .get_ok(&format!("/v1/leaderboard?period=day&date={MON}"))
        .await;
    let mut both = models(&all);
    both.sort();
    assert_eq!(
        both,
        [(MINI.to_owned(), 82_040, 4), (O3.to_owned(), 82_040, 4)]
    );
    let segment = async |name: &str| {
        let board = server
            .get_ok(&format!(
                "/v1/leaderboard?period=day&date={MON}&context={name}"
            ))
            .await;
        let mut rows = models(&board);
        rows.sort();
        rows
    };
    assert_eq!(
        segment("short").await,
        [(MINI.to_owned(), 2_020, 2), (O3.to_owned(), 2_020, 2)]
    );
    assert_eq!(
        segment("long").await,
        [(MINI.to_owned(), 80_020, 2), (O3.to_owned(), 80_020, 2)]
    );
    // By attempt: o3 served 4 (a1 a2 first, b1 b2 fallbacks), so served − fallbacks is a1 a2's
    // group and short − first choice is nothing: x is in no figure.
    let providers = server
        .get_ok(&format!("/v1/providers?model={O3}&period=day&date={MON}"))
        .await;
    assert_eq!(providers["providers"][0]["served"], 4, "{providers}");
    assert_eq!(
        providers["providers"][0]["fallbacks_served"], 2,
        "{providers}"
    );
    assert_eq!(providers["providers"][0]["attempts"], 4, "{providers}");
    let apps = server
        .get_ok(&format!("/v1/apps?period=day&date={MON}"))
        .await;
    let shown_tokens: u64 = apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(shown_tokens, 0, "{apps}");
}
