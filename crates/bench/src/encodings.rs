//! `encodings`: the bytes per event of one events file rewritten in other row orders and writer
//! settings, so the lake's layout is chosen by measurement. Every variant holds the same rows.

use crate::args::BenchEncodingsArgs;
use anyhow::Context;
use arrow::array::RecordBatch;
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::process::ExitCode;

/// `batch` sorted by `columns`, in that order.
fn sorted_by(batch: &RecordBatch, columns: &[&str]) -> anyhow::Result<RecordBatch> {
    let keys = columns
        .iter()
        .map(|c| {
            Ok(SortColumn {
                values: std::sync::Arc::clone(
                    batch
                        .column_by_name(c)
                        .with_context(|| format!("no column {c}"))?,
                ),
                options: None,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let order = lexsort_to_indices(&keys, None)?;
    Ok(take_record_batch(batch, &order)?)
}

/// Writes `batch` with `props` in memory: total bytes and the compressed bytes per column.
fn written(
    batch: &RecordBatch,
    props: WriterProperties,
) -> anyhow::Result<(usize, Vec<(String, i64)>)> {
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))?;
    writer.write(batch)?;
    let meta = writer.close()?;
    let mut columns: Vec<(String, i64)> = Vec::new();
    for rg in meta.row_groups() {
        for c in rg.columns() {
            let name = c.column_path().string();
            match columns.iter_mut().find(|(n, _)| *n == name) {
                Some((_, bytes)) => *bytes += c.compressed_size(),
                None => columns.push((name, c.compressed_size())),
            }
        }
    }
    Ok((out.len(), columns))
}

pub(crate) fn run(args: BenchEncodingsArgs) -> anyhow::Result<ExitCode> {
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    let schema = batches.first().context("the file has no rows")?.schema();
    let rows = concat_batches(&schema, &batches)?;
    let n = rows.num_rows() as f64;
    let lake = modelshare_ingest::lake::writer_properties;
    let zstd = |level: i32| -> anyhow::Result<WriterProperties> {
        Ok(lake()
            .into_builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(level)?))
            .build())
    };
    let lake_order = ["task", "model", "ts"];
    let by_app = ["task", "model", "app_id", "ts"];
    let variants: Vec<(&str, RecordBatch, WriterProperties)> = vec![
        (
            "lake settings, sorted by task, model, ts",
            sorted_by(&rows, &lake_order)?,
            lake(),
        ),
        (
            "lake settings, sorted by task, model, app_id, ts",
            sorted_by(&rows, &by_app)?,
            lake(),
        ),
        (
            "zstd 9, sorted by task, model, ts",
            sorted_by(&rows, &lake_order)?,
            zstd(9)?,
        ),
        (
            "zstd 9, sorted by task, model, app_id, ts",
            sorted_by(&rows, &by_app)?,
            zstd(9)?,
        ),
    ];
    println!("{} events from {}", rows.num_rows(), args.file.display());
    println!("| variant | bytes/event | event_id | ts | app_id | the other columns |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, batch, props) in variants {
        let (total, columns) = written(&batch, props)?;
        let of = |c: &str| {
            columns
                .iter()
                .find(|(n, _)| n == c)
                .map_or(0.0, |(_, b)| *b as f64 / n)
        };
        let named = of("event_id") + of("ts") + of("app_id");
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            total as f64 / n,
            of("event_id"),
            of("ts"),
            of("app_id"),
            columns.iter().map(|(_, b)| *b as f64).sum::<f64>() / n - named,
        );
    }
    Ok(ExitCode::SUCCESS)
}
