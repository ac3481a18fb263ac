//! The app-day cube as ingest writes it and queries read it: its layout, its schema, and which
//! days it may answer for.
//!
//! A cube row is one (UTC day, task, model, provider, app, attempt, position, context) with the
//! sums of that group's successful (`ok`) events: requests, input and output tokens, spend.
//! `position` is a call's place in its agent trace: 0 without a step, 1 for the first call of a
//! trace (`step = 0`), 2 for the calls after it (`step > 0`); usage counts them all, the analyses
//! of what apps choose leave out the last. `context` is the code of the requests' context segment
//! ([`crate::Context::code`]), so every figure can be split by segment. It is the publication rule's
//! own grain (a base cell, split by app), so every public usage figure — and the rule itself,
//! which counts an exact number of distinct apps per cell — is computed from it exactly, at a
//! cost that grows with the number of apps and models in use, not with traffic.
//!
//! ```text
//! <lake>/rollups/app_days/date=YYYY-MM-DD/<name>.parquet
//! <lake>/rollups/groups/date=YYYY-MM-DD/<name>.parquet          the day's groups, when its cube is one file
//! <lake>/rollups/group_presence/date=YYYY-MM-DD/<name>.parquet  and its (group, app) presence
//! <lake>/rollups/week_presence/week=YYYY-MM-DD/w2-<hash>.parquet  a closed ISO week's presence
//! ```
//!
//! Each cube row also carries [`app_key`], a 64-bit hash of its app: distinct apps are counted on
//! it (a count of integers, not strings). Two apps whose keys collide count as one; at a million
//! apps the odds that any two do are about 3 in 100 million, and a collision can only lower a
//! count, never publish a cell that has too few apps.
//!
//! A day whose cube is a single file also gets a *groups* file of the same name: one row per
//! group of the publication rule (task, model, provider, context segment, first choice or
//! fallback, position; see [`GROUP_KEY`]) with its distinct apps and sums, so the rule and every
//! additive figure read a few thousand rows per day instead of the cube's app rows; and a *group
//! presence* file: one row per (group, app key) with the group's distinct apps.
//!
//! A closed ISO week (named by its Monday) whose days are all summarized also gets a *week
//! presence* file: one row per (task, model, app key) with the most distinct apps of any group of
//! that task and model, in that week, that the app was in. An app has an `ok` event in a
//! publishable group of the task and model that week exactly when that number reaches the
//! threshold, so distinct apps of whole weeks (grouped by task, model or coarser) are counted on
//! a week's rows (about a sixth of its days' presence rows). Its name is a hash of the names of
//! the presence files it was built from: a week file is current when its name is the one its
//! days' files give now.
//!
//! Each events file a flush writes gets a cube file of the same name beside it in the cube's
//! partition, published in the same step; the cube's key-value metadata records how many events
//! (of any status) a cube file summarizes, so a day's cube can be checked against the day's
//! events from the files' footers. [`Coverage`] says which days passed that check.

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::NaiveDate;
use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock, RwLock};

/// The cube's directory, relative to the lake's root.
pub const APP_DAYS_DIR: &str = "rollups/app_days";

/// The per-day groups summaries' directory, relative to the lake's root.
pub const GROUPS_DIR: &str = "rollups/groups";

/// The per-day group presence files' directory, relative to the lake's root.
pub const GROUP_PRESENCE_DIR: &str = "rollups/group_presence";

/// Summary directories of older layouts (per base cell, and per cell and segment), which no read
/// uses any more: the upkeep removes them.
pub const RETIRED_DIRS: [&str; 4] = [
    "rollups/cells",
    "rollups/presence",
    "rollups/segments",
    "rollups/segment_presence",
];

/// The per-week presence files' directory, relative to the lake's root.
pub const WEEK_PRESENCE_DIR: &str = "rollups/week_presence";

/// The name prefix of a week presence file, which is also its layout's version: files of an
/// older prefix (counted over base cells) are no longer current and are written again.
pub const WEEK_PRESENCE_PREFIX: &str = "w2";

/// The key columns of a group of the publication rule, after its base cell's (task, model,
/// provider) and the `date` partition: the context segment's code, 1 for a request served after
/// another attempt failed (0 for a first choice), and the call's position in its agent trace.
pub const GROUP_KEY: [&str; 3] = ["context", "fallback", "position"];

/// Where the hourly summaries of closed days live (`date=YYYY-MM-DD/h3-<hash>.parquet`, named
/// after the day's events files they summarize; the columns are the query crate's `hourly`).
pub const HOURLY_DIR: &str = "rollups/hourly";

/// The name prefix of an hourly file, which is also its layout's version: when the columns
/// change, so does the prefix, and a file of the older layout is no longer current (the
/// upkeep writes the day again and removes it).
pub const HOURLY_PREFIX: &str = "h3";

/// The key-value metadata key of a cube file: the number of events it summarizes.
pub const APP_DAYS_EVENTS_KEY: &str = "modelshare.app_days.events";

/// The key columns of a cube row (besides the `date` partition), in storage order.
pub const APP_DAYS_KEY: [&str; 7] = [
    "task", "model", "provider", "app_id", "attempt", "position", "context",
];

fn column(name: &str, data_type: DataType) -> Field {
    Field::new(name, data_type, false)
}

/// The columns of a base cell (the `date` is the partition).
fn cell_columns() -> Vec<Field> {
    ["task", "model", "provider"]
        .into_iter()
        .map(|name| column(name, DataType::Utf8))
        .collect()
}

/// The sums of `ok` events every cube and groups row carries.
fn sum_columns() -> Vec<Field> {
    let mut sums: Vec<Field> = ["requests", "input_tokens", "output_tokens"]
        .into_iter()
        .map(|name| column(name, DataType::Int64))
        .collect();
    sums.push(column(
        "cost_usd",
        DataType::Decimal128(crate::schema::COST_PRECISION, crate::schema::COST_SCALE),
    ));
    sums
}

/// The columns of a cell, then `middle`, then the sums when `sums`.
fn schema_of(middle: Vec<Field>, sums: bool) -> SchemaRef {
    let mut fields = cell_columns();
    fields.extend(middle);
    if sums {
        fields.extend(sum_columns());
    }
    Arc::new(Schema::new(fields))
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    schema_of(
        vec![
            column("app_id", DataType::Utf8),
            column("attempt", DataType::UInt8),
            column("position", DataType::UInt8),
            column("context", DataType::UInt8),
            column("app_key", DataType::UInt64),
        ],
        true,
    )
});

/// The group key columns ([`GROUP_KEY`]), then `rest`.
fn group_fields(rest: Vec<Field>) -> Vec<Field> {
    let mut fields: Vec<Field> = GROUP_KEY
        .into_iter()
        .map(|name| column(name, DataType::UInt8))
        .collect();
    fields.extend(rest);
    fields
}

static GROUPS_SCHEMA: LazyLock<SchemaRef> =
    LazyLock::new(|| schema_of(group_fields(vec![column("apps", DataType::Int64)]), true));

static GROUP_PRESENCE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    schema_of(
        group_fields(vec![
            column("app_key", DataType::UInt64),
            column("group_apps", DataType::Int64),
        ]),
        false,
    )
});

static WEEK_PRESENCE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        column("task", DataType::Utf8),
        column("model", DataType::Utf8),
        column("app_key", DataType::UInt64),
        column("group_apps", DataType::Int64),
    ]))
});

/// The schema of every week presence file (the `week` partition column lives in the path).
pub fn week_presence_schema() -> SchemaRef {
    Arc::clone(&WEEK_PRESENCE_SCHEMA)
}

/// The Monday of `day`'s ISO week.
pub fn monday_of(day: NaiveDate) -> NaiveDate {
    day.week(chrono::Weekday::Mon).first_day()
}

/// The ISO weeks (their Mondays) among `days` that ended by `today`.
pub fn closed_weeks(days: &[NaiveDate], today: NaiveDate) -> BTreeSet<NaiveDate> {
    days.iter()
        .map(|d| monday_of(*d))
        .filter(|w| *w + chrono::Days::new(7) <= today)
        .collect()
}

/// The schema of every group presence file (the `date` partition column lives in the path).
pub fn group_presence_schema() -> SchemaRef {
    Arc::clone(&GROUP_PRESENCE_SCHEMA)
}

/// The schema of every cube file (the `date` partition column lives in the path).
pub fn app_days_schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// The schema of every groups file (the `date` partition column lives in the path).
pub fn groups_schema() -> SchemaRef {
    Arc::clone(&GROUPS_SCHEMA)
}

/// The key distinct apps are counted on: xxh3 of the app id.
pub fn app_key(app_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(app_id.as_bytes())
}

/// Which days the cube answers for. A day whose cube files do not summarize exactly its events
/// files (a cube file lost or damaged, events written by a tool that writes no cube, a lake
/// older than the cube) is read from raw events until the cube is rebuilt.
///
/// Until the lake has been checked, every day is read raw.
#[derive(Debug, Default)]
pub struct Coverage {
    /// `None`: not checked yet. `Some(days)`: the days to read raw; every other day is in the cube.
    raw_days: RwLock<Option<BTreeSet<NaiveDate>>>,
    /// Days whose groups and group presence files summarize their (single-file) cube.
    summarized_days: RwLock<BTreeSet<NaiveDate>>,
    /// Weeks (Mondays) whose week presence file summarizes their days' presence files.
    weeks: RwLock<BTreeSet<NaiveDate>>,
    /// Days whose hourly file summarizes their events files.
    hour_days: RwLock<BTreeSet<NaiveDate>>,
}

impl Coverage {
    /// A coverage under which nothing is read from the cube yet.
    pub fn unchecked() -> Self {
        Self::default()
    }

    /// The days to read from raw events, or `None` when every day is.
    pub fn raw_days(&self) -> Option<BTreeSet<NaiveDate>> {
        self.raw_days
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records the result of a check of the whole lake.
    pub fn checked(&self, raw_days: BTreeSet<NaiveDate>) {
        *self.raw_days.write().unwrap_or_else(|p| p.into_inner()) = Some(raw_days);
    }

    /// Stops answering from the cube until the lake is checked again (a cube file failed to read).
    pub fn distrust(&self) {
        *self.raw_days.write().unwrap_or_else(|p| p.into_inner()) = None;
        self.summarized_days
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.weeks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.hour_days
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The days whose hourly file is current (none until the lake is checked).
    pub fn hour_days(&self) -> BTreeSet<NaiveDate> {
        if self.raw_days().is_none() {
            return BTreeSet::new();
        }
        self.hour_days
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records that `day`'s hourly file summarizes its events files.
    pub fn hours_written(&self, day: NaiveDate) {
        self.hour_days
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(day);
    }

    /// The weeks whose week presence file is current, none of whose days is read raw.
    pub fn weeks(&self) -> BTreeSet<NaiveDate> {
        let Some(raw) = self.raw_days() else {
            return BTreeSet::new();
        };
        let weeks = self.weeks.read().unwrap_or_else(|p| p.into_inner());
        weeks
            .iter()
            .filter(|w| !raw.iter().any(|d| monday_of(*d) == **w))
            .copied()
            .collect()
    }

    /// Records that the week of Monday `week` has a current week presence file.
    pub fn week_written(&self, week: NaiveDate) {
        self.weeks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(week);
    }

    /// The days whose groups files are current, among those the cube answers for.
    pub fn summarized_days(&self) -> BTreeSet<NaiveDate> {
        let Some(raw) = self.raw_days() else {
            return BTreeSet::new();
        };
        let cells = self
            .summarized_days
            .read()
            .unwrap_or_else(|p| p.into_inner());
        cells.difference(&raw).copied().collect()
    }

    /// Records that `day`'s groups files summarize its cube.
    pub fn summaries_written(&self, day: NaiveDate) {
        self.summarized_days
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(day);
    }

    /// Records that the cube of `days` changed (a flush added files): their cells and hourly
    /// files, and the week presence files of their weeks, no longer summarize it. Call in the
    /// same step that publishes the change.
    pub fn cube_changed(&self, days: impl IntoIterator<Item = NaiveDate>) {
        let mut cells = self
            .summarized_days
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let mut weeks = self.weeks.write().unwrap_or_else(|p| p.into_inner());
        let mut hours = self.hour_days.write().unwrap_or_else(|p| p.into_inner());
        for d in days {
            cells.remove(&d);
            hours.remove(&d);
            weeks.remove(&monday_of(d));
        }
    }

    /// Records whether `day` must be read raw, once the lake is checked (a node that writes no
    /// cube file found another node's files for the day).
    pub fn set_raw(&self, day: NaiveDate, raw: bool) {
        if let Some(days) = self
            .raw_days
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            if raw {
                days.insert(day);
            } else {
                days.remove(&day);
            }
        }
    }

    /// Records that `day`'s cube now summarizes its events exactly.
    pub fn rebuilt(&self, day: NaiveDate) {
        if let Some(raw) = self
            .raw_days
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            raw.remove(&day);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unchecked_reads_everything_raw_until_checked() {
        let c = Coverage::unchecked();
        assert_eq!(c.raw_days(), None);
        let day: NaiveDate = "2026-11-17".parse().unwrap();
        c.rebuilt(day);
        assert_eq!(
            c.raw_days(),
            None,
            "a rebuild does not check the other days"
        );
        c.checked(BTreeSet::from([day]));
        assert_eq!(c.raw_days(), Some(BTreeSet::from([day])));
        c.rebuilt(day);
        assert_eq!(c.raw_days(), Some(BTreeSet::new()));
        c.distrust();
        assert_eq!(c.raw_days(), None);
    }
}
