//! The website over HTTP on hand-made events: exact leaderboard rows in the HTML, escaping of a
//! hostile model name in pages and charts, chart ETags and 304s, HTML 400/404 pages, and
//! dashboard files (an invalid one stops start-up naming file and field; a custom one with
//! parameterised SQL is served).
#![allow(clippy::unwrap_used)]

mod common;
use common::{BIN, Server, event};
use serde_json::Value;
use std::process::Command;

/// A valid slug whose `:` and `+` must be percent-encoded in links.
const ODD: &str = "x/evil:free+1";
/// Providers are free text: markup must come out as text.
const EVIL: &str = "<script>alert(1)</script>";

/// Week of 2026-11-16: a/alpha used by app1..app4 (1000 + 500 tokens each), x/evil:free+1 by
/// app1..app3 (100 + 100 each, served by a provider named like a script tag). With
/// `--min-apps 3` both are published: 6000 and 600 tokens.
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
    for i in 1..=3 {
        v.push(event(
            &format!("x{i}"),
            "2026-11-18T10:00:00Z",
            &format!("app{i}"),
            ODD,
            100,
            100,
            0.001,
        ));
        v.last_mut().unwrap()["provider"] = Value::from(EVIL);
    }
    v
}

async fn get(s: &Server, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let resp = s
        .client
        .get(format!("{}{path}", s.url))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.text().await.unwrap(), headers)
}

#[tokio::test]
async fn pages_show_exact_rows_and_escape_hostile_names() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--min-apps", "3"]);
    let (status, body) = s.ndjson(&fixture()).await;
    assert_eq!(status, 200, "{body}");

    let (status, html, headers) = get(&s, "/?period=week&date=2026-11-18").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(html.contains("<meta name=\"viewport\""));
    // Row 1: a/alpha, linked, 6,000 tokens, 90.91 % of 6,600, 4 apps.
    assert!(
        html.contains(
            "<td class=\"text\" data-value=\"a/alpha\"><a href=\"/models/a/alpha\">a/alpha</a></td>"
        ),
        "{html}"
    );
    assert!(html.contains("data-value=\"6000\">6,000</td>"), "{html}");
    assert!(html.contains(">90.91%</td>"), "{html}");
    assert!(html.contains(">9.09%</td>"), "{html}");
    // Slug characters that are special in URLs are percent-encoded in links.
    let odd_href = "/models/x/evil%3Afree%2B1";
    assert!(
        html.contains(&format!("href=\"{odd_href}\">x/evil:free+1</a>")),
        "{html}"
    );
    // The chart image points at the stable chart URL with resolved parameters.
    let chart = "/charts/home/top_share.svg?period=week&date=2026-11-16";
    assert!(
        html.contains(&format!("src=\"{}\"", chart.replace('&', "&amp;"))),
        "{html}"
    );
    // Selectors: previous period link and the task pages.
    assert!(
        html.contains("href=\"/?period=week&amp;date=2026-11-09\""),
        "{html}"
    );
    assert!(
        html.contains("href=\"/tasks/roleplay?period=week&amp;date=2026-11-18\""),
        "{html}"
    );

    // The chart: escaped names, a strong ETag, 304 on revalidation.
    let (status, svg, headers) = get(&s, chart).await;
    assert_eq!(status, 200, "{svg}");
    assert_eq!(headers["content-type"], "image/svg+xml; charset=utf-8");
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.contains("x/evil:free+1"), "{svg}");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "{etag}");
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let resp = s
        .client
        .get(format!("{}{chart}", s.url))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 304);
    assert_eq!(resp.headers()["etag"].to_str().unwrap(), etag);
    let resp = s
        .client
        .get(format!("{}{chart}", s.url))
        .header("if-none-match", "\"0000000000000000\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    // The model's page: found (it is in the data, not the catalog), the provider escaped.
    let (status, html, _) = get(&s, &format!("{odd_href}?date=2026-11-18")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<h1>x/evil:free+1</h1>"), "{html}");
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("panel-error"), "{html}");
    let esc = "&lt;script&gt;alert(1)&lt;/script&gt;";
    assert!(
        html.contains(&format!(
            "<td class=\"text\" data-value=\"{esc}\">{esc}</td><td data-value=\"600\">600</td>"
        )),
        "{html}"
    );
    // Requests by attempt: 3 served as the first choice.
    assert!(
        html.contains(
            "<td class=\"text\" data-value=\"first choice\">first choice</td><td data-value=\"3\">3</td>"
        ),
        "{html}"
    );
    let (status, svg, _) = get(
        &s,
        &format!(
            "/charts/models/providers.svg?period=week&date=2026-11-16&model={}",
            "x%2Fevil%3Afree%2B1"
        ),
    )
    .await;
    assert_eq!(status, 200, "{svg}");
    assert!(svg.contains("100.00%"), "{svg}");
    assert!(svg.contains(esc) && !svg.contains(EVIL), "{svg}");

    // Task pages and the matrix.
    let (status, html, _) = get(&s, "/tasks/programming?date=2026-11-18").await;
    assert_eq!(status, 200);
    assert!(html.contains("Leaderboard: programming"), "{html}");
    assert!(html.contains("data-panel=\"matrix\""), "{html}");
}

#[tokio::test]
async fn bad_requests_and_unknown_pages_get_html_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--min-apps", "3"]);
    for (path, status, needle) in [
        ("/?period=year", 400, "period: unknown period"),
        ("/?date=2026-13-01", 400, "is not a date"),
        ("/?date=2026-11-01&date=2026-11-02", 400, "given twice"),
        ("/?task=programming", 400, "unknown parameter"),
        ("/tasks/coding", 404, "unknown task"),
        ("/models/no/such-model", 404, "no model"),
        ("/nowhere", 404, "there is no page at /nowhere"),
        ("/charts/home/nope.svg", 404, "no chart"),
        ("/charts/home/leaderboard.svg", 404, "no chart"),
        ("/charts/nope/x.svg", 404, "no dashboard"),
        (
            "/charts/home/top_share.svg?model=a%2Fb",
            400,
            "unknown parameter",
        ),
        ("/charts/models/providers.svg", 400, "model: required"),
    ] {
        let (got, html, headers) = get(&s, path).await;
        assert_eq!(got, status, "{path}: {html}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert!(html.starts_with("<!doctype html>"), "{path}: {html}");
        assert!(html.contains(needle), "{path}: {html}");
    }
    // The API keeps its JSON errors.
    let (status, body) = s.get("/v1/nope").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &Value::from("not_found"))
    );
}

#[test]
fn an_invalid_dashboard_file_stops_start_up_naming_file_and_field() {
    let lake = tempfile::tempdir().unwrap();
    let dash = tempfile::tempdir().unwrap();
    std::fs::write(
        dash.path().join("bad.toml"),
        "route = \"/\"\ntitle = \"x\"\n[[panel]]\nid = \"a\"\ntitle = \"A\"\nquery = \"leaderboard\"\nchart = \"pie\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(lake.path())
        .arg("--dashboards")
        .arg(dash.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml: panel[0].chart: unknown chart \"pie\"; accepted: table"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_custom_dashboard_with_parameterised_sql_is_served() {
    let lake = tempfile::tempdir().unwrap();
    let dash = tempfile::tempdir().unwrap();
    std::fs::write(
        dash.path().join("custom.toml"),
        r#"
route = "/custom"
title = "Requests per model"
nav = "Custom"
params = ["period", "date"]
[[panel]]
id = "requests"
title = "Requests"
sql = "SELECT model AS label, count(*) AS value FROM events WHERE status = 'ok' AND date >= $start AND date < $end GROUP BY model HAVING count(DISTINCT app_id) >= $min_apps ORDER BY value DESC"
chart = "bar"
"#,
    )
    .unwrap();
    let dash_arg = dash.path().to_str().unwrap().to_owned();
    let s = Server::start(lake.path(), &["--min-apps", "4", "--dashboards", &dash_arg]);
    s.ndjson(&fixture()).await;
    let (status, html, _) = get(&s, "/custom?date=2026-11-18").await;
    assert_eq!(status, 200, "{html}");
    // Only a/alpha has 4 apps; the hostile model (3 apps) stays unpublished.
    assert!(
        html.contains(
            "<td class=\"text\" data-value=\"a/alpha\">a/alpha</td><td data-value=\"4\">4</td>"
        ),
        "{html}"
    );
    assert!(!html.contains("x/evil"), "{html}");
    let (status, svg, _) = get(
        &s,
        "/charts/custom/requests.svg?period=week&date=2026-11-16",
    )
    .await;
    assert_eq!(status, 200, "{svg}");
    assert!(svg.contains("a/alpha"), "{svg}");
    // The built-in pages are not served from a custom directory.
    let (status, _, _) = get(&s, "/tasks/programming").await;
    assert_eq!(status, 404);
}
