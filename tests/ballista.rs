//! Queries on an Apache DataFusion Ballista cluster (feature `ballista`; `.ci/run` runs this file
//! in a step of its own with `--features modelshare/ballista`):
//! - a real scheduler and two executors, each a `modelshare cluster …` process on loopback, over
//!   a lake in a bucket of a real S3 API server (moto): `modelshare query --ballista` answers
//!   exactly as the single-node engine over the same bucket, the executors ran its tasks, an
//!   executor that stops cleanly leaves the cluster answering and no shuffle files behind, and a
//!   scheduler that is gone is reported as such;
//! - `serve --ballista` sends `POST /v1/sql` to the cluster (which reads the flushed events in
//!   the bucket) while the public reads stay on the node; without the scheduler, `/v1/sql`
//!   answers 503 with Retry-After and the leaderboard still answers;
//! - bad addresses are refused with the reason.
//!
//! In the default build, the same flags and commands say how to get a build with Ballista.
#![allow(clippy::unwrap_used)]

mod common;

#[cfg(not(feature = "ballista"))]
#[test]
fn a_build_without_ballista_says_how_to_get_one() {
    use std::process::Command;
    for args in [
        vec![
            "query",
            "--data-dir",
            "s3://lakes/prod",
            "--ballista",
            "df://127.0.0.1:50050",
            "SELECT 1",
        ],
        vec!["cluster", "scheduler", "--data-dir", "s3://lakes/prod"],
        vec!["cluster", "executor", "--data-dir", "s3://lakes/prod"],
    ] {
        let out = Command::new(common::BIN).args(&args).output().unwrap();
        let stderr = common::stderr_of_failure(&out, &format!("{args:?}"));
        assert!(
            stderr.contains("built without Ballista")
                && stderr.contains("cargo build --release --features ballista"),
            "{args:?}: {stderr}"
        );
    }
}

#[cfg(feature = "ballista")]
mod on_a_cluster {
    use super::common::s3::{PER_MODEL, S3Server, events, per_model_answer, rows, serve_node};
    use super::common::{self, BIN, stderr_of_failure};
    use serde_json::json;
    use std::io::{BufRead, BufReader};
    use std::net::{Ipv4Addr, TcpListener};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Output, Stdio};
    use std::time::{Duration, Instant};

    /// A `modelshare cluster …` process, its log in a file; killed when dropped.
    struct Member {
        child: Child,
        log: PathBuf,
    }

    impl Member {
        fn log(&self) -> String {
            std::fs::read_to_string(&self.log).unwrap_or_default()
        }

        /// SIGTERM, then wait for the process to end.
        fn stop(&mut self) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let started = Instant::now();
            while self.child.try_wait().unwrap().is_none() {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "{} did not stop: {}",
                    self.log.display(),
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    impl Drop for Member {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// A scheduler and its executors on loopback over the lake at `location`.
    struct Cluster {
        url: String,
        scheduler: Member,
        executors: Vec<Member>,
    }

    fn free_port() -> u16 {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// Starts `modelshare cluster ARGS` with the store's variables, its log in `log`; answers
    /// the process and the line it printed once listening.
    fn member(s3: &S3Server, args: &[&str], log: PathBuf) -> (Member, String) {
        let file = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(BIN)
            .arg("cluster")
            .args(args)
            .envs(S3Server::env_via(&s3.endpoint))
            .env("MODELSHARE_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()
            .unwrap();
        let mut banner = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut banner)
            .unwrap();
        let member = Member { child, log };
        assert!(
            banner.starts_with("modelshare cluster"),
            "{args:?}: {banner:?} {}",
            member.log()
        );
        (member, banner)
    }

    impl Cluster {
        fn start(s3: &S3Server, location: &str, executors: usize, logs: &Path) -> Cluster {
            let (scheduler, banner) = member(
                s3,
                &[
                    "scheduler",
                    "--listen",
                    "127.0.0.1:0",
                    "--data-dir",
                    location,
                ],
                logs.join("scheduler.log"),
            );
            let url = banner
                .split_whitespace()
                .find(|w| w.starts_with("df://"))
                .unwrap_or_else(|| panic!("no address in {banner:?}"))
                .to_owned();
            let executors = (0..executors)
                .map(|i| {
                    let listen = format!("127.0.0.1:{}", free_port());
                    let work = logs.join(format!("work{i}"));
                    let args = [
                        "executor",
                        "--scheduler",
                        &url,
                        "--listen",
                        &listen,
                        "--slots",
                        "1",
                        "--work-dir",
                        work.to_str().unwrap(),
                        "--data-dir",
                        location,
                    ];
                    member(s3, &args, logs.join(format!("executor{i}.log"))).0
                })
                .collect();
            Cluster {
                url,
                scheduler,
                executors,
            }
        }

        /// Tasks the executors have run, per executor.
        fn tasks(&self) -> Vec<usize> {
            self.executors
                .iter()
                .map(|e| e.log().matches("Received task").count())
                .collect()
        }
    }

    fn query(s3: &S3Server, location: &str, ballista: Option<&str>, sql: &str) -> Output {
        let mut command = Command::new(BIN);
        command.args(["query", "--format", "json", "--data-dir", location]);
        if let Some(url) = ballista {
            command.args(["--ballista", url, "--timeout-secs", "120"]);
        }
        command
            .arg(sql)
            .env("MODELSHARE_LOG", "warn")
            .envs(S3Server::env_via(&s3.endpoint))
            .output()
            .unwrap()
    }

    /// Statements whose answers the cluster must give exactly as one node: aggregates over
    /// partitions and files, distinct counts (a shuffle), the `app_key` function, a join of
    /// two tables, and the cube's files.
    const SAME_ANSWERS: [&str; 5] = [
        "SELECT date, count(*) AS n, sum(input_tokens) AS input FROM events \
         GROUP BY date ORDER BY date",
        "SELECT status, count(DISTINCT app_id) AS apps, count(DISTINCT app_key(app_id)) AS keys \
         FROM events GROUP BY status ORDER BY status",
        "SELECT e.model, count(*) AS n FROM events e \
         JOIN (SELECT app_id FROM events WHERE model = 'openai/o3' GROUP BY app_id) o3 \
         ON e.app_id = o3.app_id GROUP BY e.model ORDER BY e.model",
        "SELECT model, CAST(sum(requests) AS BIGINT) AS requests FROM app_days \
         GROUP BY model ORDER BY model",
        "SELECT event_id FROM events WHERE date = '2026-11-03' ORDER BY event_id",
    ];

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cluster_of_two_executors_answers_as_one_node() {
        let dir = tempfile::tempdir().unwrap();
        // Two ingests: two files per day, so a scan has several tasks.
        let lake = dir.path().join("lake");
        let all = events();
        common::ingest(&lake, &all[..3]);
        common::ingest(&lake, &all[3..]);
        let s3 = S3Server::start();
        s3.upload("lakes", "prod/lake", &lake).await;
        let location = "s3://lakes/prod/lake";
        let cluster = Cluster::start(&s3, location, 2, dir.path());

        let per_model = PER_MODEL;
        let on_cluster = rows(&query(&s3, location, Some(&cluster.url), per_model));
        assert_eq!(on_cluster, per_model_answer());
        assert_eq!(on_cluster, rows(&query(&s3, location, None, per_model)));
        for sql in SAME_ANSWERS {
            let one_node = rows(&query(&s3, location, None, sql));
            assert!(!one_node.is_empty(), "{sql}");
            assert_eq!(
                rows(&query(&s3, location, Some(&cluster.url), sql)),
                one_node,
                "{sql}"
            );
        }
        // The statements ran on both executors (their logs name every task they took).
        let tasks = cluster.tasks();
        println!("tasks per executor: {tasks:?}");
        assert!(tasks.iter().all(|&n| n > 0), "{tasks:?}");

        // An executor that stops cleanly tells the scheduler, which answers with the other one;
        // it leaves no shuffle files.
        let mut cluster = cluster;
        let mut gone = cluster.executors.remove(0);
        gone.stop();
        let work0 = dir.path().join("work0");
        let left: Vec<PathBuf> = common::files_in(&work0, "");
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(
            rows(&query(&s3, location, Some(&cluster.url), per_model)),
            on_cluster
        );

        // Writes are refused on the cluster as on one node.
        let refused = query(
            &s3,
            location,
            Some(&cluster.url),
            "INSERT INTO events SELECT * FROM events",
        );
        let stderr = stderr_of_failure(&refused, "the write");
        assert!(
            stderr.contains("not supported") || stderr.contains("DML"),
            "{stderr}"
        );

        // Without its scheduler the cluster is reported unreachable, not the statement wrong.
        cluster.scheduler.stop();
        let out = query(&s3, location, Some(&cluster.url), per_model);
        let stderr = stderr_of_failure(&out, "the run");
        assert!(
            stderr.contains("cannot be reached") && stderr.contains(&cluster.url),
            "{stderr}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serve_sends_admin_sql_to_the_cluster_and_keeps_public_reads_on_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let s3 = S3Server::start();
        s3.create_bucket("lakes").await;
        let location = "s3://lakes/prod";
        let mut cluster = Cluster::start(&s3, location, 1, dir.path());
        let node = serve_node(
            &s3.endpoint,
            location,
            &dir.path().join("node"),
            &[
                "--min-apps",
                "1",
                "--flush-interval-secs",
                "0.2",
                "--cube-interval-secs",
                "0.5",
                "--node-id",
                "n1",
                "--ballista",
                &cluster.url,
            ],
        );
        let (status, r) = node.ndjson(&events()).await;
        assert_eq!((status, &r["accepted"]), (200, &json!(6)), "{r}");
        s3.wait_for_count(location, 6).await;

        let per_model = "SELECT model, count(*) AS n, sum(output_tokens) AS output FROM events \
                         GROUP BY model ORDER BY model";
        let want = vec![
            json!({"model": "anthropic/claude-haiku-4.5", "n": 2, "output": 12}),
            json!({"model": "openai/o3", "n": 4, "output": 60}),
        ];
        assert_eq!(node.sql_rows(&[], per_model).await, want);
        let before = cluster.tasks()[0];
        assert!(before > 0, "the executor ran no task");
        // The cluster has the lake's files, not the node's views over its live rows.
        let (status, answer) = node.post_sql("SELECT count(*) FROM cell_apps").await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer.to_string().contains("cell_apps"), "{answer}");
        // The row cap holds on the cluster too.
        let (status, answer) = node
            .post_sql("SELECT event_id FROM events ORDER BY event_id")
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["row_count"], 6, "{answer}");

        // The public reads never went to the cluster, and go on without it.
        node.wait_for_cube().await;
        let board = node
            .get_ok("/v1/leaderboard?period=week&date=2026-11-03")
            .await;
        assert_eq!(board["totals"]["tokens"], 44_272, "{board}");
        cluster.scheduler.stop();
        let (status, answer) = node.post_sql(per_model).await;
        assert_eq!(status, 503, "{answer}");
        assert!(
            answer.to_string().contains("cluster cannot be reached"),
            "{answer}"
        );
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/sql", node.url))
            .header("content-type", "text/plain")
            .body(per_model)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 503);
        assert!(resp.headers().get("retry-after").is_some(), "{resp:?}");
        let board_after = node
            .get_ok("/v1/leaderboard?period=week&date=2026-11-03")
            .await;
        assert_eq!(board_after, board);
        node.stop();
    }

    #[test]
    fn bad_cluster_settings_are_refused_with_the_reason() {
        let s3 = S3Server::start();
        let bad_url = query(
            &s3,
            "s3://lakes/prod",
            Some("http://127.0.0.1:50050"),
            "SELECT 1",
        );
        let stderr = stderr_of_failure(&bad_url, "the query");
        assert!(
            stderr.contains("is not a scheduler address")
                && stderr.contains("expected df://HOST:PORT"),
            "{stderr}"
        );
        for (args, needle) in [
            (
                vec!["executor", "--listen", "127.0.0.1:0"],
                "--listen needs a port",
            ),
            (
                vec!["executor", "--scheduler", "df://:1"],
                "is not a scheduler address",
            ),
            (
                vec!["executor", "--listen", "0.0.0.0:50051"],
                "needs --advertise-host",
            ),
            (
                vec!["scheduler", "--data-dir", "gs://lakes/lake"],
                "not supported",
            ),
        ] {
            let out = Command::new(BIN)
                .arg("cluster")
                .args(&args)
                .envs(S3Server::env_via(&s3.endpoint))
                .output()
                .unwrap();
            let stderr = stderr_of_failure(&out, &format!("{args:?}"));
            assert!(stderr.contains(needle), "{args:?}: {stderr}");
        }
        // A scheduler whose port is taken says so.
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let out = Command::new(BIN)
            .args([
                "cluster",
                "scheduler",
                "--listen",
                &addr,
                "--data-dir",
                "s3://lakes/prod",
            ])
            .envs(S3Server::env_via(&s3.endpoint))
            .output()
            .unwrap();
        let stderr = stderr_of_failure(&out, "the run");
        assert!(
            stderr.contains(&format!("cannot listen on {addr}")),
            "{stderr}"
        );
    }
}
