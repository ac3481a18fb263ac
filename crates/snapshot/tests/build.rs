//! Snapshots of hand-made events in a real lake (written by the same code path as
//! `modelshare ingest`): exact figures in every column, byte-identical rebuilds, revisions.
#![allow(clippy::unwrap_used)]

use arrow::array::{Array, Decimal128Array, Int64Array, StringArray};
use modelshare_event::schema::events_to_batch;
use modelshare_event::{Event, MicroUsd, ModelSlug, Status, Task, Timestamp};
use modelshare_ingest::Lake;
use modelshare_ingest::lake::{IdRun, write_batches};
use modelshare_snapshot::build::keys;
use modelshare_snapshot::{BuildOutcome, IsoWeek, Refresher, build_week, list, verify};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

#[allow(clippy::too_many_arguments)]
fn ev(
    id: &str,
    ts: &str,
    app: &str,
    task: Task,
    model: &str,
    provider: &str,
    tokens: [u32; 4],
    cost: i64,
    latency: u32,
    status: Status,
    attempt: u8,
) -> Event {
    Event {
        event_id: id.into(),
        ts: Timestamp::from_datetime(ts.parse().unwrap()),
        app_id: app.into(),
        task,
        model_requested: model.into(),
        model: ModelSlug::parse(model).unwrap(),
        provider: provider.into(),
        input_tokens: tokens[0],
        output_tokens: tokens[1],
        reasoning_tokens: tokens[2],
        cached_tokens: tokens[3],
        cost: MicroUsd(cost),
        latency_ms: latency,
        ttft_ms: latency / 2,
        status,
        finish_reason: None,
        attempt,
        trace_id: None,
        step: None,
    }
}

use Status::{Error, Ok as Okay, Timeout};
use Task::{Legal, Programming};

/// Week 2026-W45 is 2026-11-02 .. 2026-11-09. Every base cell (day, task, model, provider) of
/// it has one app, so these events are published with min_apps 1 only; the tests of files and
/// revisions use that, `the_rule_holds_per_base_cell` the threshold.
fn fixture() -> Vec<Event> {
    vec![
        ev(
            "e1",
            "2026-11-02T10:00:00Z",
            "A1",
            Programming,
            "a/x",
            "p1",
            [100, 10, 5, 50],
            1000,
            100,
            Okay,
            0,
        ),
        ev(
            "e2",
            "2026-11-03T10:00:00Z",
            "A2",
            Programming,
            "a/x",
            "p1",
            [200, 20, 0, 0],
            2000,
            300,
            Okay,
            1,
        ),
        ev(
            "e3",
            "2026-11-08T23:59:59Z",
            "A1",
            Programming,
            "a/x",
            "p1",
            [300, 30, 1, 2],
            3000,
            200,
            Okay,
            0,
        ),
        ev(
            "f1",
            "2026-11-04T10:00:00Z",
            "A3",
            Programming,
            "a/x",
            "p1",
            [10, 0, 0, 0],
            0,
            50,
            Error,
            0,
        ),
        ev(
            "e4",
            "2026-11-05T10:00:00Z",
            "A1",
            Programming,
            "b/y",
            "p2",
            [1000, 100, 0, 0],
            10000,
            1000,
            Okay,
            0,
        ),
        ev(
            "e5",
            "2026-11-05T11:00:00Z",
            "A3",
            Programming,
            "a/x",
            "p3",
            [5, 5, 0, 0],
            5,
            10,
            Okay,
            0,
        ),
        ev(
            "f2",
            "2026-11-05T12:00:00Z",
            "A3",
            Programming,
            "a/x",
            "p3",
            [5, 0, 0, 0],
            0,
            9000,
            Timeout,
            1,
        ),
        ev(
            "e6",
            "2026-11-06T10:00:00Z",
            "A1",
            Legal,
            "c/z",
            "p1",
            [7, 3, 0, 0],
            7,
            70,
            Okay,
            0,
        ),
        ev(
            "e7",
            "2026-11-07T10:00:00Z",
            "A2",
            Legal,
            "c/z",
            "p1",
            [1, 1, 0, 0],
            0,
            30,
            Okay,
            2,
        ),
        ev(
            "g1",
            "2026-11-06T11:00:00Z",
            "A1",
            Programming,
            "c/z",
            "p7",
            [11, 1, 0, 0],
            11,
            40,
            Okay,
            0,
        ),
        ev(
            "g2",
            "2026-11-06T12:00:00Z",
            "A2",
            Programming,
            "c/z",
            "p8",
            [22, 2, 0, 0],
            22,
            60,
            Okay,
            0,
        ),
        // Other weeks: not in 2026-W45.
        ev(
            "x1",
            "2026-11-01T23:59:59Z",
            "A1",
            Legal,
            "c/z",
            "p1",
            [9, 9, 0, 0],
            9,
            9,
            Okay,
            0,
        ),
        ev(
            "x2",
            "2026-11-09T00:00:00Z",
            "A1",
            Legal,
            "c/z",
            "p1",
            [9, 9, 0, 0],
            9,
            9,
            Okay,
            0,
        ),
    ]
}

fn lake_with(dir: &Path, batches: &[Vec<Event>]) -> Lake {
    let lake = Lake::open(dir).unwrap();
    for (i, events) in batches.iter().enumerate() {
        write_batches(
            &lake,
            &[events_to_batch(events)],
            &format!("b{i}"),
            IdRun::RowsAnd(&[]),
        )
        .unwrap();
    }
    lake
}

fn week() -> IsoWeek {
    "2026-W45".parse().unwrap()
}

fn published(outcome: BuildOutcome) -> modelshare_snapshot::SnapshotInfo {
    match outcome {
        BuildOutcome::Published(info) => info,
        other => panic!("expected a new revision, got {other:?}"),
    }
}

fn strings(b: &arrow::array::RecordBatch, name: &str) -> Vec<String> {
    let a = b
        .column_by_name(name)
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    (0..a.len()).map(|i| a.value(i).to_owned()).collect()
}

fn ints(b: &arrow::array::RecordBatch, name: &str) -> Vec<Option<i64>> {
    let a = b
        .column_by_name(name)
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    (0..a.len())
        .map(|i| (!a.is_null(i)).then(|| a.value(i)))
        .collect()
}

#[test]
fn exact_figures_in_every_column() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_with(dir.path(), &[fixture()]);
    let info = published(build_week(lake.root(), week(), 1).unwrap());
    assert_eq!(info.name, "2026-W45.r1");
    assert_eq!(info.file, "2026-W45.r1.parquet");
    assert_eq!(info.rows, 8);
    verify(&info).unwrap();

    let file = std::fs::File::open(&info.path).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let kv: BTreeMap<String, String> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .map(|k| (k.key.clone(), k.value.clone().unwrap()))
        .collect();
    assert_eq!(kv[keys::SCHEMA_VERSION], "3");
    assert_eq!(kv[keys::WEEK], "2026-W45");
    assert_eq!(kv[keys::WEEK_START], "2026-11-02");
    assert_eq!(kv[keys::WEEK_END], "2026-11-09");
    assert_eq!(kv[keys::REVISION], "1");
    assert_eq!(kv[keys::ROWS], "8");
    assert_eq!(kv[keys::MIN_APPS], "1");
    assert_eq!(
        kv[keys::GENERATOR],
        format!("modelshare-snapshot {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(kv[keys::CONTENT_SHA256], info.content_sha256);
    assert_eq!(info.content_sha256.len(), 64);

    let batches: Vec<_> = builder.build().unwrap().map(|b| b.unwrap()).collect();
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!(b.num_columns(), 17);
    assert_eq!(b.schema().field(5).name(), "context");
    assert_eq!(strings(b, "week"), ["2026-W45"; 8]);
    assert_eq!(
        strings(b, "task"),
        [
            "legal",
            "programming",
            "programming",
            "programming",
            "programming",
            "programming",
            "programming",
            "programming"
        ]
    );
    assert_eq!(
        strings(b, "model"),
        ["c/z", "a/x", "a/x", "a/x", "a/x", "b/y", "c/z", "c/z"]
    );
    assert_eq!(
        strings(b, "author"),
        ["c", "a", "a", "a", "a", "b", "c", "c"]
    );
    assert_eq!(
        strings(b, "provider"),
        ["p1", "p1", "p1", "p3", "p3", "p2", "p7", "p8"]
    );
    // Every prompt is short, and with min_apps 1 every group has enough apps: ok requests are
    // in the short rows. Failures are never split by segment: a/x's failed requests at p1 and
    // p3 are in rows without a segment, with no ok request.
    let context = b
        .column_by_name("context")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let contexts: Vec<Option<&str>> = (0..context.len())
        .map(|i| (!context.is_null(i)).then(|| context.value(i)))
        .collect();
    let short = Some("short");
    assert_eq!(
        contexts,
        [short, None, short, None, short, short, short, short]
    );
    let s = |v: [i64; 8]| v.map(Some).to_vec();
    assert_eq!(ints(b, "requests"), s([2, 0, 3, 0, 1, 1, 1, 1]));
    assert_eq!(ints(b, "input_tokens"), s([8, 0, 600, 0, 5, 1000, 11, 22]));
    assert_eq!(ints(b, "output_tokens"), s([4, 0, 60, 0, 5, 100, 1, 2]));
    assert_eq!(ints(b, "reasoning_tokens"), s([0, 0, 6, 0, 0, 0, 0, 0]));
    assert_eq!(ints(b, "cached_tokens"), s([0, 0, 52, 0, 0, 0, 0, 0]));
    let cost = b
        .column_by_name("cost_usd")
        .unwrap()
        .as_any()
        .downcast_ref::<Decimal128Array>()
        .unwrap();
    assert_eq!((cost.precision(), cost.scale()), (18, 6));
    assert_eq!(cost.values().to_vec(), [7, 0, 6000, 0, 5, 10000, 11, 22]);
    // Distinct apps with an ok request: the failing A3 does not count for a/x@p1.
    assert_eq!(ints(b, "apps"), s([2, 0, 2, 0, 1, 1, 1, 1]));
    assert_eq!(ints(b, "failures"), s([0, 1, 0, 1, 0, 0, 0, 0]));
    assert_eq!(ints(b, "fallbacks"), s([1, 0, 1, 0, 0, 0, 0, 0]));
    // Nearest rank over ok latencies: legal [30, 70]; a/x@p1 [100, 200, 300]; the others one
    // each; none in the rows of failures only.
    let with_gaps = |v: [i64; 6]| {
        let mut out: Vec<Option<i64>> = v.map(Some).to_vec();
        out.insert(1, None);
        out.insert(3, None);
        out
    };
    assert_eq!(
        ints(b, "latency_p50_ms"),
        with_gaps([30, 200, 10, 1000, 40, 60])
    );
    assert_eq!(
        ints(b, "latency_p95_ms"),
        with_gaps([70, 300, 10, 1000, 40, 60])
    );

    // With min_apps 2 no group or failure cell qualifies: nothing is written.
    assert_eq!(
        build_week(lake.root(), week(), 2).unwrap(),
        BuildOutcome::NothingPublishable
    );
    assert_eq!(list(lake.root()).unwrap().len(), 1);
}

/// The publication rule with min_apps 2: a row is the sum of its segment's groups (day, first
/// choice or fallback, position) with two apps; failures only from cells where two apps failed,
/// never split by segment, in the row without a segment. Every prompt is short.
#[test]
fn the_rule_holds_per_group() {
    let ok = |id: &str, ts: &str, app: &str, t: [u32; 2], lat: u32, attempt: u8| {
        let tokens = [t[0], t[1], 0, 0];
        let cost = i64::from(t[0]);
        ev(
            id,
            ts,
            app,
            Programming,
            "a/x",
            "p1",
            tokens,
            cost,
            lat,
            Okay,
            attempt,
        )
    };
    let failed = |id: &str, ts: &str, app: &str, task: Task, model: &str| {
        ev(id, ts, app, task, model, "p1", [1, 0, 0, 0], 0, 5, Error, 0)
    };
    let events = vec![
        // 11-02: two apps, first choice only.
        ok("a", "2026-11-02T10:00:00Z", "A1", [100, 10], 100, 0),
        ok("b", "2026-11-02T11:00:00Z", "A2", [200, 20], 200, 0),
        // 11-03: A1's first choice is a group of one app (withheld); the fallbacks of A2 and A3
        // are a group of two (published).
        ok("c", "2026-11-03T10:00:00Z", "A1", [10, 1], 50, 0),
        ok("d", "2026-11-03T11:00:00Z", "A2", [20, 2], 60, 1),
        ok("e", "2026-11-03T12:00:00Z", "A3", [30, 3], 70, 1),
        // 11-04: A9 alone, published nowhere.
        ok("f", "2026-11-04T10:00:00Z", "A9", [1000, 0], 9000, 0),
        // Failures: two apps on 11-03 (published), one on 11-05 (not).
        failed("g", "2026-11-03T13:00:00Z", "A4", Programming, "a/x"),
        failed("h", "2026-11-03T14:00:00Z", "A5", Programming, "a/x"),
        failed("i", "2026-11-05T10:00:00Z", "A6", Programming, "a/x"),
        // A row of failures only.
        failed("j", "2026-11-06T10:00:00Z", "A1", Legal, "c/z"),
        failed("k", "2026-11-06T11:00:00Z", "A2", Legal, "c/z"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_with(dir.path(), &[events]);
    let info = published(build_week(lake.root(), week(), 2).unwrap());
    let (rows, _) = modelshare_snapshot::build::read_file(&info.path).unwrap();
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                format!("{}:{}@{}/{:?}", r.task, r.model, r.provider, r.context),
                [r.requests, r.input_tokens, r.output_tokens, r.apps],
                r.cost.0,
                (r.failures, r.fallbacks),
                (r.latency_p50_ms, r.latency_p95_ms),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "legal:c/z@p1/None".to_owned(),
                [0, 0, 0, 0],
                0,
                (2, 0),
                (None, None)
            ),
            (
                "programming:a/x@p1/None".to_owned(),
                [0, 0, 0, 0],
                0,
                (2, 0),
                (None, None)
            ),
            // 11-02's first choices (100 + 200 input, latencies 100 and 200) and 11-03's
            // fallbacks (20 + 30 input, latencies 60 and 70): p50 the 2nd of 4, p95 the 4th.
            (
                "programming:a/x@p1/Some(Short)".to_owned(),
                [4, 350, 35, 3],
                350,
                (0, 2),
                (Some(70), Some(200))
            ),
        ]
    );
}

#[test]
fn same_events_give_byte_identical_files_whatever_the_file_layout() {
    let events = fixture();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let lake_a = lake_with(a.path(), std::slice::from_ref(&events));
    let mut rev = events.clone();
    rev.reverse();
    let (first, second) = rev.split_at(4);
    let lake_b = lake_with(b.path(), &[second.to_vec(), first.to_vec()]);
    let fa = published(build_week(lake_a.root(), week(), 1).unwrap());
    let fb = published(build_week(lake_b.root(), week(), 1).unwrap());
    assert_ne!(fa.sources, fb.sources, "different files in the two lakes");
    assert_eq!(fa.sha256, fb.sha256);
    assert_eq!(
        std::fs::read(&fa.path).unwrap(),
        std::fs::read(&fb.path).unwrap()
    );
    // Rebuilding the same lake publishes nothing.
    assert_eq!(
        build_week(lake_a.root(), week(), 1).unwrap(),
        BuildOutcome::Unchanged(list(lake_a.root()).unwrap().remove(0))
    );
    assert_eq!(list(lake_a.root()).unwrap().len(), 1);
    // An empty week builds nothing.
    assert_eq!(
        build_week(lake_a.root(), "2026-W30".parse().unwrap(), 1).unwrap(),
        BuildOutcome::Empty
    );
}

#[test]
fn a_late_event_publishes_r2_and_leaves_r1_alone() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_with(dir.path(), &[fixture()]);
    let mut refresher = Refresher::new(lake.root(), 1, Duration::from_secs(300));
    // Monday 2026-11-09 00:04:59: W45 is still within its grace period; W44 is closed.
    let early = refresher
        .refresh("2026-11-09T00:04:59Z".parse().unwrap())
        .unwrap();
    assert_eq!(
        early.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
        ["2026-W44.r1"]
    );
    let now = "2026-11-09T00:05:00Z".parse().unwrap();
    let mut built = refresher.refresh(now).unwrap();
    assert_eq!(
        built.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
        ["2026-W45.r1"]
    );
    built.insert(0, early[0].clone());
    let r1 = built[1].clone();
    let r1_bytes = std::fs::read(&r1.path).unwrap();
    assert!(
        refresher.refresh(now).unwrap().is_empty(),
        "nothing changed"
    );

    // A late event for W45, from a third app on c/z.
    let late = ev(
        "late",
        "2026-11-04T09:00:00Z",
        "A9",
        Legal,
        "c/z",
        "p1",
        [1000, 0, 0, 0],
        1,
        5,
        Okay,
        0,
    );
    write_batches(
        &lake,
        &[events_to_batch(&[late])],
        "late",
        IdRun::RowsAnd(&[]),
    )
    .unwrap();
    let built = refresher.refresh(now).unwrap();
    assert_eq!(built.len(), 1);
    let r2 = &built[0];
    assert_eq!(r2.name, "2026-W45.r2");
    assert_ne!(r2.content_sha256, r1.content_sha256);
    assert_eq!(std::fs::read(&r1.path).unwrap(), r1_bytes, "r1 untouched");
    let listed = list(lake.root()).unwrap();
    assert_eq!(
        listed.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
        ["2026-W44.r1", "2026-W45.r1", "2026-W45.r2"]
    );
    for info in &listed {
        verify(info).unwrap();
    }
    assert_eq!(
        listed[2].sources.as_ref().unwrap().len(),
        r1.sources.as_ref().unwrap().len() + 1
    );
    let (rows, _) = modelshare_snapshot::build::read_file(&r2.path).unwrap();
    assert_eq!(
        (rows[0].requests, rows[0].input_tokens, rows[0].apps),
        (3, 1008, 3)
    );

    // A new refresher (a restarted server) sees the manifests and builds nothing.
    let mut again = Refresher::new(lake.root(), 1, Duration::from_secs(300));
    assert!(again.refresh(now).unwrap().is_empty());
}

#[test]
fn verify_catches_a_changed_file_and_names_are_strict() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_with(dir.path(), &[fixture()]);
    let info = published(build_week(lake.root(), week(), 1).unwrap());
    let mut bytes = std::fs::read(&info.path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&info.path, &bytes).unwrap();
    let e = verify(&info).unwrap_err().to_string();
    assert!(e.contains("sha256 is"), "{e}");

    use modelshare_snapshot::SnapshotName;
    let n: SnapshotName = "2026-W45.r12".parse().unwrap();
    assert_eq!((n.week, n.revision), (week(), 12));
    for bad in [
        "2026-W45",
        "2026-W45.r0",
        "2026-W45.r01",
        "2026-W45.r1.parquet",
        "../2026-W45.r1",
        "2026-W45.r1/x",
        "2026-W60.r1",
        "2026-W45.r1234567",
        "2026-W45.r-1",
        "2026-W45.r+1",
    ] {
        assert!(bad.parse::<SnapshotName>().is_err(), "{bad}");
    }
}

/// Context segments with min_apps 2, all on programming a/x@p1 (prompts: short < 8,192 input
/// tokens, medium < 32,768, long < 131,072, very long above). Each row sums its segment's
/// groups (day, first choice or fallback) of two apps:
/// - 11-02: short first choice from A1 A2, short fallbacks from A1 A2, long from A3 A4: all
///   published.
/// - 11-03: short first choice from A1 A2 and fallbacks from A2 A3: published; very long from
///   A1 alone: withheld.
/// - 11-04: short first choice from A1 A2: published; its short fallback from A1 alone:
///   withheld; medium first choice and fallbacks from A3 A4: published.
/// - Failures are never split: 11-02's (F1..F4) and 11-03's (F1 F2) in the row of no segment.
#[test]
fn rows_sum_the_groups_of_their_segment_with_enough_apps() {
    let ok = |id: &str, day: &str, app: &str, input: u32, latency: u32, attempt: u8| {
        let ts = format!("{day}T10:00:00Z");
        let tokens = [input, 10, 0, 0];
        let cost = i64::from(input);
        ev(
            id,
            &ts,
            app,
            Programming,
            "a/x",
            "p1",
            tokens,
            cost,
            latency,
            Okay,
            attempt,
        )
    };
    let failed = |id: &str, day: &str, app: &str, input: u32| {
        let ts = format!("{day}T11:00:00Z");
        ev(
            id,
            &ts,
            app,
            Programming,
            "a/x",
            "p1",
            [input, 0, 0, 0],
            0,
            5,
            Error,
            0,
        )
    };
    let events = vec![
        ok("c1", "2026-11-02", "A1", 1_000, 10, 0),
        ok("c2", "2026-11-02", "A2", 2_000, 20, 0),
        ok("c3", "2026-11-02", "A1", 3_000, 30, 1),
        ok("c4", "2026-11-02", "A2", 4_000, 40, 1),
        ok("c5", "2026-11-02", "A3", 40_000, 400, 0),
        ok("c6", "2026-11-02", "A4", 50_000, 500, 0),
        ok("d1", "2026-11-03", "A1", 100, 1, 0),
        ok("d2", "2026-11-03", "A2", 200, 2, 0),
        ok("d3", "2026-11-03", "A2", 300, 3, 1),
        ok("d4", "2026-11-03", "A3", 400, 4, 1),
        ok("d5", "2026-11-03", "A1", 200_000, 2_000, 0),
        ok("g1", "2026-11-04", "A1", 10, 5, 0),
        ok("g2", "2026-11-04", "A2", 20, 6, 0),
        ok("g3", "2026-11-04", "A1", 30, 7, 1),
        ok("g4", "2026-11-04", "A3", 10_000, 100, 0),
        ok("g5", "2026-11-04", "A4", 20_000, 200, 0),
        ok("g6", "2026-11-04", "A3", 30_000, 300, 1),
        ok("g7", "2026-11-04", "A4", 31_000, 310, 1),
        failed("f1", "2026-11-02", "F1", 10),
        failed("f2", "2026-11-02", "F2", 10),
        failed("f3", "2026-11-02", "F3", 40_000),
        failed("f4", "2026-11-02", "F4", 40_000),
        failed("f5", "2026-11-03", "F1", 10),
        failed("f6", "2026-11-03", "F2", 10_000),
    ];
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_with(dir.path(), &[events]);
    let info = published(build_week(lake.root(), week(), 2).unwrap());
    verify(&info).unwrap();
    let (rows, _) = modelshare_snapshot::build::read_file(&info.path).unwrap();
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.context.map(|c| c.as_str()),
                [
                    r.requests,
                    r.input_tokens,
                    r.output_tokens,
                    r.apps,
                    r.fallbacks,
                    r.failures,
                ],
                r.cost.0,
                (r.latency_p50_ms, r.latency_p95_ms),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (None, [0, 0, 0, 0, 0, 6], 0, (None, None)),
            // c1..c4, d1..d4, g1 g2; latencies [1, 2, 3, 4, 5, 6, 10, 20, 30, 40].
            (
                Some("short"),
                [10, 11_030, 100, 3, 4, 0],
                11_030,
                (Some(5), Some(40))
            ),
            // g4..g7; latencies [100, 200, 300, 310].
            (
                Some("medium"),
                [4, 91_000, 40, 2, 2, 0],
                91_000,
                (Some(200), Some(310))
            ),
            (
                Some("long"),
                [2, 90_000, 20, 2, 0, 0],
                90_000,
                (Some(400), Some(500))
            ),
        ]
    );
    // The rows add up to the sums over the publishable groups: every ok request but d5 (very
    // long, one app) and g3 (a fallback of one app), and every failure (each failure cell has
    // two apps).
    let sum = |f: fn(&modelshare_snapshot::SnapshotRow) -> u64| rows.iter().map(f).sum::<u64>();
    assert_eq!(sum(|r| r.requests), 16);
    assert_eq!(sum(|r| r.input_tokens), 392_060 - 200_000 - 30);
    assert_eq!(sum(|r| r.failures), 6);
    assert_eq!(sum(|r| r.fallbacks), 6);
    // In the file, the row of no segment has a null `context`.
    let file = std::fs::File::open(&info.path).unwrap();
    let b = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let context = b.column_by_name("context").unwrap();
    assert_eq!(
        (0..context.len())
            .map(|i| context.is_null(i))
            .collect::<Vec<_>>(),
        [true, false, false, false]
    );
}

/// A lake whose snapshot of W45 was written by a build of schema version 1 (no `context`
/// column, the per-cell rule), with its manifest: it is listed and verified as it is, also
/// without its manifest, then rebuilt once as r2 under the current rule, and withdrawn.
#[test]
fn an_older_rule_revision_stays_verifiable_until_rebuilt_then_is_withdrawn() {
    use modelshare_snapshot::Manifest;
    use modelshare_snapshot::build::{GENERATOR, content_hash_as, read_file};
    use modelshare_snapshot::source::week_sources;
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;
    use sha2::{Digest, Sha256};

    // A file of version 1: the rows of a current snapshot of the same events with the column
    // dropped (its layout, whatever its rows).
    let scratch = tempfile::tempdir().unwrap();
    let current =
        published(build_week(lake_with(scratch.path(), &[fixture()]).root(), week(), 1).unwrap());
    let (rows, _) = read_file(&current.path).unwrap();
    let mut batch =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&current.path).unwrap())
            .unwrap()
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
    batch.remove_column(batch.schema().index_of("context").unwrap());
    let v1_rows: Vec<_> = rows
        .into_iter()
        .map(|r| modelshare_snapshot::SnapshotRow { context: None, ..r })
        .collect();
    let content_sha256 = content_hash_as("1", week(), &v1_rows).unwrap();
    let kv = [
        (keys::SCHEMA_VERSION, "1"),
        (keys::WEEK, "2026-W45"),
        (keys::WEEK_START, "2026-11-02"),
        (keys::WEEK_END, "2026-11-09"),
        (keys::REVISION, "1"),
        (keys::ROWS, "8"),
        (keys::MIN_APPS, "1"),
        (keys::GENERATOR, GENERATOR),
        (keys::CONTENT_SHA256, &content_sha256),
    ]
    .into_iter()
    .map(|(k, v)| KeyValue::new(k.to_owned(), v.to_owned()))
    .collect();
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(kv))
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props)).unwrap();
    writer.write(&batch).unwrap();
    let v1_bytes = writer.into_inner().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let lake = lake_with(dir.path(), &[fixture()]);
    let snapshots = lake.root().join("snapshots");
    std::fs::create_dir_all(&snapshots).unwrap();
    let manifest = Manifest {
        name: "2026-W45.r1".into(),
        week: "2026-W45".into(),
        revision: 1,
        file: "2026-W45.r1.parquet".into(),
        rows: 8,
        bytes: v1_bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&v1_bytes)),
        content_sha256: content_sha256.clone(),
        schema_version: "1".into(),
        generator: GENERATOR.into(),
        min_apps: 1,
        sources: week_sources(lake.root(), week()).unwrap(),
    };
    let manifest_path = snapshots.join("2026-W45.r1.json");
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let r1_path = snapshots.join("2026-W45.r1.parquet");
    std::fs::write(&r1_path, &v1_bytes).unwrap();

    let listed = list(lake.root()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].schema_version, "1");
    verify(&listed[0]).unwrap();
    let (read_back, _) = read_file(&r1_path).unwrap();
    assert_eq!(read_back, v1_rows);
    // Without its manifest, r1 is described from its own bytes and still verifies.
    let kept = std::fs::read(&manifest_path).unwrap();
    std::fs::remove_file(&manifest_path).unwrap();
    let listed = list(lake.root()).unwrap();
    assert_eq!(listed[0].schema_version, "1");
    verify(&listed[0]).unwrap();
    std::fs::write(&manifest_path, kept).unwrap();

    // Its sources are unchanged, but its layout is older: the refresher publishes r2.
    let now = "2026-11-09T00:05:00Z".parse().unwrap();
    let mut refresher = Refresher::new(lake.root(), 1, Duration::from_secs(300));
    let built = refresher.refresh(now).unwrap();
    assert_eq!(
        built.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
        ["2026-W44.r1", "2026-W45.r2"]
    );
    let r2 = &built[1];
    assert_eq!(r2.schema_version, "3");
    assert_eq!(r2.content_sha256, current.content_sha256);
    // r1 is withdrawn with its manifest: beside r2, its totals minus r2's would be the small
    // groups the current rule withholds.
    assert!(!r1_path.exists() && !manifest_path.exists(), "r1 withdrawn");
    assert_eq!(
        list(lake.root())
            .unwrap()
            .iter()
            .map(|i| (i.name.as_str(), i.schema_version.as_str()))
            .collect::<Vec<_>>(),
        [("2026-W44.r1", "3"), ("2026-W45.r2", "3")]
    );
    assert!(refresher.refresh(now).unwrap().is_empty());
    assert!(
        Refresher::new(lake.root(), 1, Duration::from_secs(300))
            .refresh(now)
            .unwrap()
            .is_empty(),
        "once rebuilt, a restarted server builds nothing"
    );
    // A stop between publishing r2 and withdrawing r1 leaves r1 beside it: the next refresh
    // withdraws it without building anything.
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    std::fs::write(&r1_path, &v1_bytes).unwrap();
    assert_eq!(list(lake.root()).unwrap().len(), 3);
    assert!(
        Refresher::new(lake.root(), 1, Duration::from_secs(300))
            .refresh(now)
            .unwrap()
            .is_empty()
    );
    assert!(!r1_path.exists() && !manifest_path.exists(), "r1 withdrawn");
}
