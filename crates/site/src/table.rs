//! [`Table`]: what every panel query returns and every chart and data table is drawn from —
//! named, formatted columns and typed cells, plus the conversion from Arrow query results.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use std::fmt::Write;

/// How a column's values are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// As is (text, or a number with up to 4 decimals).
    Plain,
    /// An integer count with thousands separators.
    Count,
    /// A fraction shown as a percentage.
    Share,
    /// A difference of fractions shown as signed percentage points.
    ShareChange,
    /// US dollars.
    Usd,
}

/// One column: the name charts and dashboard files refer to, and a human label.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub label: String,
    pub format: Format,
}

impl Column {
    pub fn new(name: &str, label: &str, format: Format) -> Column {
        Column {
            name: name.to_owned(),
            label: label.to_owned(),
            format,
        }
    }
}

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Not published (privacy) or not applicable.
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    /// Text that links to a page of the site (`href` is a path built by the site, not input).
    Link {
        text: String,
        href: String,
    },
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    /// The number in the cell, if it holds one.
    pub fn number(&self) -> Option<f64> {
        match self {
            Cell::Int(i) => Some(*i as f64),
            Cell::Float(f) if f.is_finite() => Some(*f),
            _ => None,
        }
    }

    /// The text of a text or link cell; numbers formatted plainly.
    pub fn label(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Text(s) | Cell::Link { text: s, .. } => s.clone(),
            other => format_number(other, Format::Plain),
        }
    }

    /// The cell as shown in a data table.
    pub fn display(&self, format: Format) -> String {
        match self {
            Cell::Null => "–".to_owned(),
            Cell::Text(s) | Cell::Link { text: s, .. } => s.clone(),
            other => format_number(other, format),
        }
    }

    /// A machine-readable value for `data-value` attributes (exact, unformatted).
    pub fn raw(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => f.to_string(),
            Cell::Text(s) | Cell::Link { text: s, .. } => s.clone(),
        }
    }
}

fn format_number(cell: &Cell, format: Format) -> String {
    let Some(v) = cell.number() else {
        return "–".to_owned();
    };
    match format {
        Format::Plain => match cell {
            Cell::Int(i) => i.to_string(),
            _ => {
                let s = format!("{v:.4}");
                s.trim_end_matches('0').trim_end_matches('.').to_owned()
            }
        },
        Format::Count => thousands(v.round() as i64),
        Format::Share => format!("{:.2}%", v * 100.0),
        Format::ShareChange => format!("{:+.2} pp", v * 100.0),
        Format::Usd => {
            if v.abs() >= 100.0 {
                format!("${v:.0}")
            } else if v.abs() >= 1.0 {
                format!("${v:.2}")
            } else {
                format!("${v:.3}")
            }
        }
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A query result: columns and rows of cells (every row has one cell per column).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(columns: Vec<Column>) -> Table {
        Table {
            columns,
            rows: vec![],
        }
    }

    /// Appends a row; it must have one cell per column.
    pub fn push(&mut self, row: Vec<Cell>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// The index of the column called `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// Turns a long table (x, series, value) into a wide one: one row per x, one column per
    /// series, in order of first appearance. Used for the data table beside a series chart.
    pub fn pivot(&self, x: usize, series: usize, value: usize) -> Table {
        let mut xs: Vec<String> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for row in &self.rows {
            let (xv, sv) = (row[x].label(), row[series].label());
            if !xs.contains(&xv) {
                xs.push(xv);
            }
            if !names.contains(&sv) {
                names.push(sv);
            }
        }
        let format = self.columns[value].format;
        let mut columns = vec![self.columns[x].clone()];
        columns.extend(names.iter().map(|n| Column::new(n, n, format)));
        let mut out = Table::new(columns);
        for xv in &xs {
            let mut cells = vec![Cell::Text(xv.clone())];
            for n in &names {
                let cell = self
                    .rows
                    .iter()
                    .find(|r| r[x].label() == *xv && r[series].label() == *n)
                    .map_or(Cell::Null, |r| r[value].clone());
                cells.push(cell);
            }
            out.push(cells);
        }
        out
    }

    /// Converts DataFusion results (parameterised SQL panels) into a table.
    pub fn from_batches(batches: &[RecordBatch]) -> Table {
        let Some(first) = batches.first() else {
            return Table::default();
        };
        let schema = first.schema();
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                let format = match f.data_type() {
                    DataType::Int8
                    | DataType::Int16
                    | DataType::Int32
                    | DataType::Int64
                    | DataType::UInt8
                    | DataType::UInt16
                    | DataType::UInt32
                    | DataType::UInt64 => Format::Count,
                    _ => Format::Plain,
                };
                Column::new(f.name(), f.name(), format)
            })
            .collect();
        let mut table = Table::new(columns);
        for batch in batches {
            for row in 0..batch.num_rows() {
                let cells = batch
                    .columns()
                    .iter()
                    .map(|c| arrow_cell(c.as_ref(), row))
                    .collect();
                table.push(cells);
            }
        }
        table
    }
}

fn arrow_cell(col: &dyn Array, row: usize) -> Cell {
    if col.is_null(row) {
        return Cell::Null;
    }
    macro_rules! int {
        ($t:ty) => {
            Cell::Int(col.as_primitive::<$t>().value(row) as i64)
        };
    }
    match col.data_type() {
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::Float32 => Cell::Float(f64::from(col.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => Cell::Float(col.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal128(_, scale) => {
            let v = col.as_primitive::<Decimal128Type>().value(row);
            Cell::Float(v as f64 / 10f64.powi(i32::from(*scale)))
        }
        DataType::Utf8 => Cell::text(col.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Cell::text(col.as_string::<i64>().value(row)),
        DataType::Utf8View => Cell::text(col.as_string_view().value(row)),
        DataType::Boolean => Cell::text(col.as_boolean().value(row).to_string()),
        DataType::Date32 => match col.as_primitive::<Date32Type>().value_as_date(row) {
            Some(d) => Cell::Text(d.to_string()),
            None => Cell::Null,
        },
        _ => {
            let mut s = String::new();
            let options = arrow::util::display::FormatOptions::default();
            match arrow::util::display::ArrayFormatter::try_new(col, &options) {
                Ok(f) => {
                    let _ = write!(s, "{}", f.value(row));
                    Cell::Text(s)
                }
                Err(_) => Cell::Null,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_for_people() {
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(-1000), "-1,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(Cell::Float(0.12345).display(Format::Share), "12.35%");
        assert_eq!(Cell::Float(-0.005).display(Format::ShareChange), "-0.50 pp");
        assert_eq!(Cell::Float(3.456).display(Format::Usd), "$3.46");
        assert_eq!(Cell::Float(0.25).display(Format::Plain), "0.25");
        assert_eq!(Cell::Null.display(Format::Share), "–");
    }

    #[test]
    fn pivots_long_to_wide_in_order_of_appearance() {
        let mut t = Table::new(vec![
            Column::new("week", "Week", Format::Plain),
            Column::new("model", "Model", Format::Plain),
            Column::new("share", "Share", Format::Share),
        ]);
        t.push(vec![Cell::text("w1"), Cell::text("b"), Cell::Float(0.6)]);
        t.push(vec![Cell::text("w1"), Cell::text("a"), Cell::Float(0.4)]);
        t.push(vec![Cell::text("w2"), Cell::text("a"), Cell::Float(1.0)]);
        let w = t.pivot(0, 1, 2);
        assert_eq!(w.column_names(), vec!["week", "b", "a"]);
        assert_eq!(
            w.rows,
            vec![
                vec![Cell::text("w1"), Cell::Float(0.6), Cell::Float(0.4)],
                vec![Cell::text("w2"), Cell::Null, Cell::Float(1.0)],
            ]
        );
        assert_eq!(w.columns[1].format, Format::Share);
    }
}
