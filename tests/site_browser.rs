//! The website in a real headless Chromium, driven over W3C WebDriver (chromedriver) with plain
//! HTTP: pages of a generated lake show the same rows and series as the JSON API, the period,
//! task and model links work without JavaScript, every chart image loads, the console stays
//! free of errors, and screenshots (desktop and phone) land under the target directory.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`;
//! `.ci/run` installs them). Missing browsers fail the test rather than skip it.
#![allow(clippy::unwrap_used)]

mod common;
use common::{BIN, Server};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A chromedriver process and one browser session.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let chromium = which("chromium").expect(
            "chromium is not installed: apt-get install -y chromium chromium-driver (.ci/run does)",
        );
        let chromedriver = which("chromedriver").expect(
            "chromedriver is not installed: apt-get install -y chromium-driver (.ci/run does)",
        );
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.status().is_success()
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not start on port {port}");
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--hide-scrollbars",
                         "--window-size=1280,3200",
                         format!("--user-data-dir={}", profile.path().display())],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {resp}"))
            .to_owned();
        Browser {
            driver,
            base,
            session,
            http,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(v["value"].get("error").is_none(), "webdriver {path}: {v}");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn js(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    async fn click(&self, css: &str) {
        let el = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        let id = el
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap()
            .to_owned();
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// The current URL once it satisfies `done`: a click that submits a form or follows a link
    /// returns before the new page has necessarily replaced the old one.
    async fn wait_url(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.url().await;
            if done(&url) {
                // Let the new document finish loading before it is inspected.
                while self.js("return document.readyState").await != "complete" {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                return url;
            }
            assert!(std::time::Instant::now() < deadline, "no {what}: at {url}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Console messages at level SEVERE since the last call.
    async fn errors(&self) -> Vec<Value> {
        let logs = self
            .call(
                reqwest::Method::POST,
                "/se/log",
                Some(json!({"type": "browser"})),
            )
            .await;
        logs.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .cloned()
            .collect()
    }

    async fn screenshot(&self, path: &Path) {
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64_decode(b64.as_str().unwrap());
        assert_eq!(&png[1..4], b"PNG");
        std::fs::write(path, png).unwrap();
    }

    async fn resize(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("curl")
            .args(["-s", "-X", "DELETE"])
            .arg(format!("{}/session/{}", self.base, self.session))
            .stdout(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 byte {c}"),
        }
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c) << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

/// `data-value`s of the rows of a panel's data table.
async fn table_rows(b: &Browser, panel: &str) -> Vec<Vec<String>> {
    let v = b
        .js(&format!(
            "return Array.from(document.querySelectorAll('table[data-panel=\"{panel}\"] tbody tr'))\
             .map(r => Array.from(r.cells).map(c => c.dataset.value));"
        ))
        .await;
    serde_json::from_value(v).unwrap()
}

/// Checks that `panel`'s table shows, row by row, the `fields` of the API's `rows` (a text and a
/// number) in its `columns`; returns those pairs. An empty list is a failure: the page would
/// then prove nothing.
async fn assert_table_shows(
    b: &Browser,
    panel: &str,
    rows: &Value,
    fields: [&str; 2],
    columns: [usize; 2],
) -> Vec<(String, String)> {
    let expected: Vec<(String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[fields[0]].as_str().unwrap().to_owned(),
                r[fields[1]].to_string(),
            )
        })
        .collect();
    assert!(!expected.is_empty(), "{panel}: {rows}");
    let shown: Vec<(String, String)> = table_rows(b, panel)
        .await
        .into_iter()
        .map(|r| (r[columns[0]].clone(), r[columns[1]].clone()))
        .collect();
    assert_eq!(shown, expected, "{panel}");
    expected
}

/// Checks the leaderboard table against `/v1/leaderboard` with the same selection.
async fn assert_leaderboard_matches(b: &Browser, s: &Server, query: &str) {
    let rows = table_rows(b, "leaderboard").await;
    let (status, api) = s.get(&format!("/v1/leaderboard?{query}&limit=20")).await;
    assert_eq!(status, 200, "{api}");
    let models = api["models"].as_array().unwrap();
    assert!(!models.is_empty(), "no rows for {query}");
    assert_eq!(rows.len(), models.len(), "{query}: {rows:?}");
    for (row, m) in rows.iter().zip(models) {
        assert_eq!(row[1], m["model"].as_str().unwrap(), "{query}");
        assert_eq!(row[2], m["author"].as_str().unwrap(), "{query}");
        assert_eq!(row[3], m["tokens"].to_string(), "{query}");
        let share: f64 = row[4].parse().unwrap();
        assert!(
            (share - m["share"].as_f64().unwrap()).abs() < 1e-12,
            "{query}"
        );
        assert_eq!(row[7], m["apps"].to_string(), "{query}");
    }
}

async fn assert_images_loaded_and_no_errors(b: &Browser, what: &str) {
    let images = b
        .js("return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]);")
        .await;
    for img in images.as_array().unwrap() {
        assert_eq!(img[1], true, "{what}: chart did not load: {img}");
    }
    let errors = b
        .js("return document.querySelectorAll('.panel-error').length;")
        .await;
    assert_eq!(errors, 0, "{what}: a panel failed");
    let console = b.errors().await;
    assert!(console.is_empty(), "{what}: console errors {console:?}");
}

#[tokio::test]
async fn pages_in_headless_chromium_match_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let out = Command::new(BIN)
        .args([
            "generate",
            "--events",
            "60000",
            "--apps",
            "400",
            "--days",
            "35",
            "--data-dir",
        ])
        .arg(&lake)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Three generated apps agree to be shown, one with a name that is markup.
    for (app, name) in [
        ("app-000000", "<b>Bold</b> & Co"),
        ("app-000001", "Second app"),
        ("app-000002", "Third app"),
    ] {
        let mut args: Vec<&std::ffi::OsStr> = vec!["apps".as_ref(), "--data-dir".as_ref()];
        args.push(lake.as_os_str());
        args.extend(["publish", "--app", app, "--name", name].map(std::ffi::OsStr::new));
        common::run_ok(args);
    }
    let s = Server::start(&lake, &[]);
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("site-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let b = Browser::start().await;

    // Home: the default period is the week of the latest data.
    b.goto(&format!("{}/", s.url)).await;
    let title = b.js("return document.title;").await;
    assert_eq!(title, "LLM leaderboard · modelshare");
    let date = b
        .js("return document.querySelector('input[name=date]').value;")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    assert_leaderboard_matches(&b, &s, &format!("period=week&date={date}")).await;
    assert_images_loaded_and_no_errors(&b, "home").await;
    b.screenshot(&shots.join("home.png")).await;

    // The stacked-area chart's data table has the same series and values as /v1/share.
    let week_start = b
        .js("return document.querySelector('#prev-period').getAttribute('href');")
        .await;
    assert!(
        week_start
            .as_str()
            .unwrap()
            .starts_with("/?period=week&date=")
    );
    let header: Vec<String> = serde_json::from_value(
        b.js("return Array.from(document.querySelectorAll('table[data-panel=\"top_share\"] thead th')).map(h => h.dataset.column);")
            .await,
    )
    .unwrap();
    let rows = table_rows(&b, "top_share").await;
    let first_week = rows[0][0].clone();
    let last_week = rows.last().unwrap()[0].clone();
    let period_end: chrono::NaiveDate = {
        let d: chrono::NaiveDate = date.parse().unwrap();
        let monday = d - chrono::Days::new(u64::from(
            chrono::Datelike::weekday(&d).num_days_from_monday(),
        ));
        monday + chrono::Days::new(6)
    };
    assert_eq!(last_week, (period_end - chrono::Days::new(6)).to_string());
    let (_, share) = s
        .get(&format!(
            "/v1/share?granularity=week&from={first_week}&to={period_end}&top=10"
        ))
        .await;
    let series: Vec<&str> = share["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["model"].as_str().unwrap())
        .collect();
    assert_eq!(&header[1..], &series[..], "{share}");
    assert_eq!(rows.len(), share["buckets"].as_array().unwrap().len());
    for (k, row) in rows.iter().enumerate() {
        for (j, cell) in row[1..].iter().enumerate() {
            let api = &share["series"][j]["share"][k];
            match api.as_f64() {
                Some(v) => assert!((cell.parse::<f64>().unwrap() - v).abs() < 1e-12),
                None => assert_eq!(cell, ""),
            }
        }
    }

    // Follow the selectors: previous week, then a month via the form, then a task link.
    let before = b.url().await;
    b.click("#prev-period").await;
    let url = b.wait_url("previous period", |u| u != before).await;
    let prev_date = url.split("date=").nth(1).unwrap().to_owned();
    assert_leaderboard_matches(&b, &s, &format!("period=week&date={prev_date}")).await;
    assert_images_loaded_and_no_errors(&b, "previous week").await;

    b.click("select[name=period] option[value=month]").await;
    b.click("form button[type=submit]").await;
    b.wait_url("month page", |u| u.contains("period=month"))
        .await;
    assert_leaderboard_matches(&b, &s, &format!("period=month&date={prev_date}")).await;
    assert_images_loaded_and_no_errors(&b, "month").await;

    b.click("#task-links a[href^='/tasks/programming']").await;
    b.wait_url("task page", |u| {
        u.contains("/tasks/programming?period=month")
    })
    .await;
    assert_leaderboard_matches(
        &b,
        &s,
        &format!("period=month&date={prev_date}&task=programming"),
    )
    .await;
    let matrix = table_rows(&b, "matrix").await;
    assert!(!matrix.is_empty());
    assert_images_loaded_and_no_errors(&b, "task page").await;
    b.screenshot(&shots.join("task-programming.png")).await;

    // The context selector: the page of short prompts equals /v1/leaderboard?context=short.
    b.click("select[name=context] option[value=short]").await;
    b.click("form button[type=submit]").await;
    b.wait_url("short-context page", |u| u.contains("context=short"))
        .await;
    assert_leaderboard_matches(
        &b,
        &s,
        &format!("period=month&date={prev_date}&task=programming&context=short"),
    )
    .await;
    assert_images_loaded_and_no_errors(&b, "short-context task page").await;

    // A model page from the first leaderboard link.
    let model = table_rows(&b, "leaderboard").await[0][1].clone();
    b.click("table[data-panel=leaderboard] tbody tr:first-child a")
        .await;
    b.wait_url("model page", |u| u.contains("/models/")).await;
    let h1 = b
        .js("return document.querySelector('h1').textContent;")
        .await;
    assert_eq!(h1, model.as_str());
    assert_images_loaded_and_no_errors(&b, "model page").await;
    b.screenshot(&shots.join("model.png")).await;
    // Its provider table is /v1/providers for the model and the page's week.
    let week = b
        .js("return document.querySelector('input[name=date]').value;")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    let api = s
        .get_ok(&format!(
            "/v1/providers?model={model}&period=week&date={week}"
        ))
        .await;
    let expected = assert_table_shows(
        &b,
        "provider_performance",
        &api["providers"],
        ["provider", "attempts"],
        [0, 1],
    )
    .await;

    // The providers page: every provider over all models, each at least what it did for the
    // model above.
    b.goto(&format!("{}/providers?period=week&date={week}", s.url))
        .await;
    let all = table_rows(&b, "provider_performance").await;
    for (provider, attempts) in &expected {
        let row = all
            .iter()
            .find(|r| &r[0] == provider)
            .unwrap_or_else(|| panic!("{provider} missing on /providers: {all:?}"));
        assert!(row[1].parse::<u64>().unwrap() >= attempts.parse::<u64>().unwrap());
    }
    assert_images_loaded_and_no_errors(&b, "providers page").await;
    b.screenshot(&shots.join("providers.png")).await;

    // The busiest provider's page, from its link (the table sits folded under the chart): its
    // models table is /v1/providers for it.
    let busiest = all[0][0].clone();
    let href = b
        .js("return document.querySelector(\
             'table[data-panel=provider_performance] tbody tr:first-child a').href;")
        .await;
    b.goto(href.as_str().unwrap()).await;
    b.wait_url("provider page", |u| u.contains("/providers/"))
        .await;
    let h1 = b
        .js("return document.querySelector('h1').textContent;")
        .await;
    assert_eq!(h1, busiest.as_str());
    let api = s
        .get_ok(&format!(
            "/v1/providers?provider={busiest}&period=week&date={week}"
        ))
        .await;
    assert_table_shows(
        &b,
        "models",
        &api["providers"],
        ["model", "attempts"],
        [0, 1],
    )
    .await;
    assert_images_loaded_and_no_errors(&b, "provider page").await;
    b.screenshot(&shots.join("provider.png")).await;

    // The shifts page lists what /v1/shifts answers for the same week, in the same order.
    b.goto(&format!("{}/shifts?period=week&date={week}", s.url))
        .await;
    let api = s
        .get_ok(&format!("/v1/shifts?period=week&date={week}"))
        .await;
    let mut expected = Vec::new();
    for t in api["tasks"].as_array().unwrap() {
        for (side, direction) in [("gainers", "gained"), ("losers", "lost")] {
            for m in t[side].as_array().unwrap() {
                expected.push(vec![
                    t["task"].as_str().unwrap().to_owned(),
                    direction.to_owned(),
                    m["model"].as_str().unwrap().to_owned(),
                ]);
            }
        }
    }
    let shown: Vec<Vec<String>> = table_rows(&b, "shifts")
        .await
        .into_iter()
        .map(|r| r[..3].to_vec())
        .collect();
    assert_eq!(shown, expected);
    assert_images_loaded_and_no_errors(&b, "shifts page").await;
    b.screenshot(&shots.join("shifts.png")).await;

    // The apps page lists what /v1/apps answers for the same week; the first app's page lists
    // its models, the top ones as /v1/apps has them.
    b.goto(&format!("{}/apps?period=week&date={week}", s.url))
        .await;
    let api = s.get_ok(&format!("/v1/apps?period=week&date={week}")).await;
    assert_table_shows(&b, "apps", &api["apps"], ["name", "tokens"], [1, 2]).await;
    assert_images_loaded_and_no_errors(&b, "apps page").await;
    b.screenshot(&shots.join("apps.png")).await;
    let first = &api["apps"][0];
    b.goto(&format!(
        "{}/apps/{}?period=week&date={week}",
        s.url,
        first["slug"].as_str().unwrap()
    ))
    .await;
    let h1 = b
        .js("return document.querySelector('h1').textContent;")
        .await;
    assert_eq!(h1, first["name"]);
    let models: Vec<String> = table_rows(&b, "models")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    let top: Vec<String> = first["top_models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(models[..top.len()], top[..]);
    assert_images_loaded_and_no_errors(&b, "app page").await;
    b.screenshot(&shots.join("app.png")).await;

    // The agents page lists the models /v1/agents gives for the same week, first calls then
    // later ones.
    b.goto(&format!("{}/agents?period=week&date={week}", s.url))
        .await;
    let api = s
        .get_ok(&format!("/v1/agents?period=week&date={week}"))
        .await;
    let mut expected = Vec::new();
    for (key, position) in [("first_calls", "first"), ("later_calls", "later")] {
        for m in api[key].as_array().unwrap() {
            expected.push(vec![
                position.to_owned(),
                m["model"].as_str().unwrap().to_owned(),
                m["calls"].to_string(),
            ]);
        }
    }
    let shown: Vec<Vec<String>> = table_rows(&b, "models")
        .await
        .into_iter()
        .map(|r| r[..3].to_vec())
        .collect();
    assert_eq!(shown, expected);
    assert_images_loaded_and_no_errors(&b, "agents page").await;
    b.screenshot(&shots.join("agents.png")).await;

    // Readable on a phone: nothing wider than the viewport except scrollable tables.
    b.resize(390, 1800).await;
    b.goto(&format!("{}/", s.url)).await;
    let overflow = b
        .js("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
        .await;
    assert_eq!(overflow, true, "the page scrolls sideways on a phone");
    assert_images_loaded_and_no_errors(&b, "phone").await;
    b.screenshot(&shots.join("home-phone.png")).await;
    b.goto(&format!("{}/providers", s.url)).await;
    let overflow = b
        .js("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
        .await;
    assert_eq!(overflow, true, "/providers scrolls sideways on a phone");
    b.screenshot(&shots.join("providers-phone.png")).await;
    b.goto(&format!("{}/providers/{busiest}", s.url)).await;
    let overflow = b
        .js("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
        .await;
    assert_eq!(
        overflow, true,
        "a provider page scrolls sideways on a phone"
    );
    assert_images_loaded_and_no_errors(&b, "provider page, phone").await;
    b.screenshot(&shots.join("provider-phone.png")).await;
    b.goto(&format!("{}/apps", s.url)).await;
    let overflow = b
        .js("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
        .await;
    assert_eq!(overflow, true, "/apps scrolls sideways on a phone");
    assert_images_loaded_and_no_errors(&b, "apps page, phone").await;
    b.screenshot(&shots.join("apps-phone.png")).await;
    b.goto(&format!("{}/tasks/programming?context=short", s.url))
        .await;
    let overflow = b
        .js("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
        .await;
    assert_eq!(
        overflow, true,
        "a task page's selectors scroll sideways on a phone"
    );
    assert_images_loaded_and_no_errors(&b, "short-context task page, phone").await;
    b.goto(&format!("{}/agents", s.url)).await;
    let overflow = b
        .js("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
        .await;
    assert_eq!(overflow, true, "/agents scrolls sideways on a phone");
    assert_images_loaded_and_no_errors(&b, "agents page, phone").await;
    b.screenshot(&shots.join("agents-phone.png")).await;

    // A 404 page renders as HTML (its status shows as a console error, so logs are drained).
    b.goto(&format!("{}/tasks/coding", s.url)).await;
    let h1 = b
        .js("return document.querySelector('h1').textContent;")
        .await;
    assert_eq!(h1, "404 · Not found");
    let _ = b.errors().await;
    eprintln!("screenshots in {}", shots.display());
}
