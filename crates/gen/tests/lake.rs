//! `generate_to_lake` writes exactly the events the in-memory generator produces (whatever
//! thread wrote which day), partitioned by day, with the manifest in the lake root.
#![allow(clippy::unwrap_used)]

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use chrono::NaiveDate;
use modelshare_event::schema::{event_schema, events_to_batch};
use modelshare_gen::{GenConfig, Generator, MANIFEST_FILE, Manifest, generate_to_lake};
use modelshare_ingest::lake::Lake;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};

fn sorted_by_id(batch: &RecordBatch) -> RecordBatch {
    let idx = sort_to_indices(batch.column_by_name("event_id").unwrap(), None, None).unwrap();
    take_record_batch(batch, &idx).unwrap()
}

#[test]
fn lake_holds_the_same_events_and_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    let cfg = GenConfig {
        seed: 5,
        start: NaiveDate::from_ymd_opt(2026, 9, 7).unwrap(),
        days: 9,
        apps: 80,
        events: 30_000,
    };
    let seen = AtomicU64::new(0);
    let manifest = generate_to_lake(&lake, &cfg, &|n| {
        seen.fetch_add(n, Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(seen.load(Ordering::Relaxed), 30_000);
    assert_eq!(manifest.events, 30_000);
    assert_eq!(Manifest::read(dir.path()).unwrap(), manifest);
    assert!(dir.path().join(MANIFEST_FILE).is_file());

    let files = lake.event_files().unwrap();
    assert_eq!(files.len(), 9, "one file per day");
    let mut batches = Vec::new();
    for f in &files {
        let day = f
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        for b in ParquetRecordBatchReaderBuilder::try_new(File::open(f).unwrap())
            .unwrap()
            .build()
            .unwrap()
        {
            let b = b.unwrap();
            // Every row sits in its own day's partition.
            let ids = b
                .column_by_name("event_id")
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            assert_eq!(ids.len(), b.num_rows());
            let ts = b
                .column_by_name("ts")
                .unwrap()
                .as_any()
                .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
                .unwrap();
            for t in ts.values() {
                assert_eq!(
                    format!("date={}", modelshare_event::Timestamp(*t).date()),
                    day
                );
            }
            batches.push(RecordBatch::try_new(event_schema(), b.columns().to_vec()).unwrap());
        }
    }
    let from_lake = sorted_by_id(&concat_batches(&event_schema(), &batches).unwrap());
    let generator = Generator::new(&cfg).unwrap();
    let events: Vec<_> = generator.events().collect();
    let in_memory = sorted_by_id(&events_to_batch(&events));
    assert_eq!(from_lake.num_rows(), in_memory.num_rows());
    for (i, (a, b)) in from_lake
        .columns()
        .iter()
        .zip(in_memory.columns())
        .enumerate()
    {
        assert_eq!(
            a.as_ref(),
            b.as_ref(),
            "column {}",
            event_schema().field(i).name()
        );
    }
    // The lock was released: a second writer can take it.
    assert!(lake.lock().is_ok());
}
