//! SVG charts drawn with `plotters` from a panel's [`Table`]: stacked area, line, bar, scatter
//! and interval (whiskers).
//!
//! Text is measured with plotters' built-in estimate (no `ttf` feature, so no system fonts are
//! needed) and rendered by the browser; plotters escapes every string it writes into the SVG.
//! Labels never overlap by construction: a bounded number of axis ticks, names truncated,
//! legends in their own area right of the plot, scatter labels placed greedily without
//! collisions.

use crate::SiteError;
use crate::dashboard::ChartKind;
use crate::table::{Cell, Format, Table};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::collections::BTreeMap;

/// Chart width in SVG pixels (the page scales it down on small screens).
pub const WIDTH: u32 = 800;
const SERIES_HEIGHT: u32 = 380;
const LEGEND_WIDTH: u32 = 210;
const LABEL_CHARS: usize = 26;
/// Height of one bar or interval row, and of the axes and margins around them.
const CATEGORY_ROW: u32 = 28;
const CATEGORY_CHROME: u32 = 70;
/// Bound on the rows a category chart makes room for (an SVG stays a sensible size).
const MAX_CATEGORY_ROWS: usize = 400;

/// Colour-blind-friendly categorical palette (Tableau 10 order); `other` is grey.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0x2f, 0x4b, 0x7c),
];
const OTHER: RGBColor = RGBColor(0xc0, 0xc0, 0xc0);
const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);

/// The colour of the `i`-th series called `name`.
pub fn colour(i: usize, name: &str) -> RGBColor {
    if name == "other" {
        OTHER
    } else {
        PALETTE[i % PALETTE.len()]
    }
}

/// `#rrggbb` of a series colour, for the HTML legend swatches.
pub fn colour_hex(i: usize, name: &str) -> String {
    let RGBColor(r, g, b) = colour(i, name);
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// Shortens `s` to `max` characters with an ellipsis.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn chart_err<E: std::fmt::Display>(e: E) -> SiteError {
    SiteError::Chart(e.to_string())
}

/// Short axis label of a category: dates as `Nov 16`.
fn short_label(s: &str) -> String {
    match s.parse::<chrono::NaiveDate>() {
        Ok(d) => d.format("%b %d").to_string(),
        Err(_) => truncate(s, LABEL_CHARS),
    }
}

/// Axis tick text for a value in `format`.
fn tick(v: f64, format: Format) -> String {
    match format {
        Format::Share | Format::ShareChange => {
            let pct = v * 100.0;
            if (pct - pct.round()).abs() < 1e-9 {
                format!("{pct:.0}%")
            } else {
                format!("{pct:.1}%")
            }
        }
        Format::Usd => format!("${}", compact(v)),
        Format::Count | Format::Plain => compact(v),
    }
}

fn compact(v: f64) -> String {
    let a = v.abs();
    let (x, suffix) = if a >= 1e9 {
        (v / 1e9, "B")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{suffix}")
}

/// Where each role's column is.
struct Cols<'a> {
    table: &'a Table,
    roles: &'a BTreeMap<String, String>,
}

impl Cols<'_> {
    fn get(&self, role: &str) -> Result<usize, SiteError> {
        let name = self.roles.get(role).map_or(role, String::as_str);
        self.table.index(name).ok_or_else(|| {
            SiteError::Chart(format!(
                "no column {name:?} for role {role:?}; columns: {}",
                self.table.column_names().join(", ")
            ))
        })
    }
}

/// Draws `table` as an SVG chart of `kind`.
pub fn render(
    kind: ChartKind,
    table: &Table,
    roles: &BTreeMap<String, String>,
) -> Result<String, SiteError> {
    let cols = Cols { table, roles };
    let height = match kind {
        // One readable row per category, however many: a fixed height squeezed 75 models of the
        // preference index into an unreadable block.
        ChartKind::Bar | ChartKind::Interval => {
            let rows = table.rows.len().min(MAX_CATEGORY_ROWS) as u32;
            (CATEGORY_CHROME + CATEGORY_ROW * rows).max(150)
        }
        _ => SERIES_HEIGHT,
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        if table.rows.is_empty() || kind == ChartKind::Table {
            root.draw(&Text::new(
                "No data for this selection",
                (WIDTH as i32 / 2 - 90, height as i32 / 2),
                ("sans-serif", 16).into_font().color(&INK),
            ))
            .map_err(chart_err)?;
        } else {
            match kind {
                ChartKind::StackedArea => series_chart(&root, &cols, true)?,
                ChartKind::Line => series_chart(&root, &cols, false)?,
                ChartKind::Bar => bar_chart(&root, &cols)?,
                ChartKind::Scatter => scatter_chart(&root, &cols)?,
                ChartKind::Interval => interval_chart(&root, &cols)?,
                ChartKind::Table => {}
            }
        }
        root.present().map_err(chart_err)?;
    }
    Ok(svg)
}

/// A long table regrouped: category labels on x, and each series' values (None = no value).
#[derive(Debug)]
pub struct SeriesData {
    pub xs: Vec<String>,
    pub series: Vec<(String, Vec<Option<f64>>)>,
}

/// Drops the leading buckets in which no series has a value above zero, so a series starts
/// where its data starts instead of rising from zero out of weeks before the lake began.
pub fn trim_leading_empty(mut data: SeriesData) -> SeriesData {
    let first = (0..data.xs.len())
        .find(|&k| {
            data.series
                .iter()
                .any(|(_, v)| v.get(k).copied().flatten().is_some_and(|x| x > 0.0))
        })
        .unwrap_or(0);
    if first > 0 {
        data.xs.drain(..first);
        for (_, v) in &mut data.series {
            v.drain(..first.min(v.len()));
        }
    }
    data
}

/// Groups (x, series, value) rows by series in order of first appearance.
pub fn series_data(table: &Table, x: usize, series: usize, value: usize) -> SeriesData {
    let mut xs: Vec<String> = Vec::new();
    for r in &table.rows {
        let l = r[x].label();
        if !xs.contains(&l) {
            xs.push(l);
        }
    }
    let mut out: Vec<(String, Vec<Option<f64>>)> = Vec::new();
    for r in &table.rows {
        let name = r[series].label();
        let xi = xs.iter().position(|l| *l == r[x].label()).unwrap_or(0);
        let idx = match out.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                out.push((name, vec![None; xs.len()]));
                out.len() - 1
            }
        };
        out[idx].1[xi] = r[value].number();
    }
    SeriesData { xs, series: out }
}

fn legend(area: &DrawingArea<SVGBackend<'_>, Shift>, names: &[String]) -> Result<(), SiteError> {
    let rows = names.len().min(18);
    for (i, name) in names.iter().take(rows).enumerate() {
        let y = 16 + i as i32 * 20;
        let c = colour(i, name);
        area.draw(&Rectangle::new([(8, y), (20, y + 12)], c.filled()))
            .map_err(chart_err)?;
        area.draw(&Text::new(
            truncate(name, LABEL_CHARS),
            (26, y),
            ("sans-serif", 16).into_font().color(&INK),
        ))
        .map_err(chart_err)?;
    }
    Ok(())
}

fn series_chart(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    cols: &Cols<'_>,
    stacked: bool,
) -> Result<(), SiteError> {
    let (xi, si, vi) = (cols.get("x")?, cols.get("series")?, cols.get("value")?);
    let data = trim_leading_empty(series_data(cols.table, xi, si, vi));
    let format = cols.table.columns[vi].format;
    let n = data.xs.len();
    let (plot, legend_area) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
    let names: Vec<String> = data.series.iter().map(|(n, _)| n.clone()).collect();
    legend(&legend_area, &names)?;

    // Positions of the categories; a single bucket is drawn as a narrow band.
    let xs: Vec<f64> = if n == 1 {
        vec![-0.4, 0.4]
    } else {
        (0..n).map(|i| i as f64).collect()
    };
    let value_at = |vals: &Vec<Option<f64>>, k: usize| -> Option<f64> {
        if n == 1 { vals[0] } else { vals[k] }
    };
    let mut top = 0f64;
    if stacked {
        for k in 0..xs.len() {
            let sum: f64 = data
                .series
                .iter()
                .map(|(_, v)| value_at(v, k).unwrap_or(0.0).max(0.0))
                .sum();
            top = top.max(sum);
        }
        if format == Format::Share && top <= 1.0 + 1e-9 {
            top = 1.0;
        }
    } else {
        for (_, v) in &data.series {
            for x in v.iter().flatten() {
                top = top.max(*x);
            }
        }
        top *= 1.1;
    }
    if top <= 0.0 {
        top = 1.0;
    }
    let x_range = if n == 1 {
        -0.5..0.5
    } else {
        0.0..(n - 1) as f64
    };
    let x_desc = cols.table.columns[xi].label.clone();
    let y_desc = cols.table.columns[vi].label.clone();
    let mut chart = ChartBuilder::on(&plot)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range, 0f64..top)
        .map_err(chart_err)?;
    let label_of = |x: &f64| -> String {
        let r = x.round();
        if (x - r).abs() > 1e-6 || r < 0.0 {
            return String::new();
        }
        data.xs
            .get(r as usize)
            .map(|s| short_label(s))
            .unwrap_or_default()
    };
    chart
        .configure_mesh()
        .x_labels(n.clamp(2, 7))
        .x_label_formatter(&label_of)
        .y_labels(6)
        .y_label_formatter(&|v| tick(*v, format))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .axis_desc_style(("sans-serif", 17).into_font().color(&INK))
        .label_style(("sans-serif", 15).into_font().color(&INK))
        .draw()
        .map_err(chart_err)?;

    if stacked {
        let mut base = vec![0f64; xs.len()];
        for (i, (name, vals)) in data.series.iter().enumerate() {
            let upper: Vec<f64> = (0..xs.len())
                .map(|k| base[k] + value_at(vals, k).unwrap_or(0.0).max(0.0))
                .collect();
            let mut points: Vec<(f64, f64)> =
                xs.iter().copied().zip(upper.iter().copied()).collect();
            points.extend(xs.iter().copied().zip(base.iter().copied()).rev());
            chart
                .draw_series(std::iter::once(Polygon::new(
                    points,
                    colour(i, name).filled(),
                )))
                .map_err(chart_err)?;
            base = upper;
        }
    } else {
        for (i, (name, vals)) in data.series.iter().enumerate() {
            let style = colour(i, name).stroke_width(2);
            // Missing values break the line instead of pretending to be zero.
            let mut run: Vec<(f64, f64)> = Vec::new();
            let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
            for (k, x) in xs.iter().enumerate() {
                match value_at(vals, k) {
                    Some(v) => run.push((*x, v)),
                    None => runs.push(std::mem::take(&mut run)),
                }
            }
            runs.push(run);
            for r in runs.into_iter().filter(|r| !r.is_empty()) {
                chart
                    .draw_series(LineSeries::new(r.clone(), style))
                    .map_err(chart_err)?;
                chart
                    .draw_series(
                        r.into_iter()
                            .map(|p| Circle::new(p, 3, colour(i, name).filled())),
                    )
                    .map_err(chart_err)?;
            }
        }
    }
    Ok(())
}

/// Rows as (label, value) pairs, top to bottom.
fn labelled(
    cols: &Cols<'_>,
    value_role: &str,
) -> Result<(Vec<String>, Vec<f64>, Format), SiteError> {
    let (li, vi) = (cols.get("label")?, cols.get(value_role)?);
    let mut labels = Vec::new();
    let mut values = Vec::new();
    for r in &cols.table.rows {
        labels.push(r[li].label());
        values.push(r[vi].number().unwrap_or(0.0));
    }
    Ok((labels, values, cols.table.columns[vi].format))
}

/// (label, estimate, lower, upper) of one interval row.
type IntervalRow = (String, Option<f64>, Option<f64>, Option<f64>);

/// The y position of row `i` of `n` (first row on top).
fn row_y(i: usize, n: usize) -> f64 {
    (n - 1 - i) as f64
}

/// Category labels left of the plot, placed in pixels on the (unclipped) root area so one
/// label per row is drawn whatever the number of rows.
fn category_labels(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    chart: &ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    labels: &[String],
    x0: f64,
) -> Result<(), SiteError> {
    let style = ("sans-serif", 15)
        .into_font()
        .color(&INK)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (i, label) in labels.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(x0, row_y(i, labels.len())));
        root.draw(&Text::new(
            truncate(label, LABEL_CHARS),
            (px - 8, py),
            style.clone(),
        ))
        .map_err(chart_err)?;
    }
    Ok(())
}

/// One row per label (names at the left), values along x: the frame bars and whiskers share.
fn category_chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    x: std::ops::Range<f64>,
    labels: &[String],
    x_desc: String,
    format: Format,
) -> Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>, SiteError>
{
    let x0 = x.start;
    let mut chart = ChartBuilder::on(root)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(190)
        .build_cartesian_2d(x, y_band(labels.len()))
        .map_err(chart_err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_labels(6)
        .x_label_formatter(&|v| tick(*v, format))
        .y_labels(0)
        .x_desc(x_desc)
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .axis_desc_style(("sans-serif", 17).into_font().color(&INK))
        .label_style(("sans-serif", 15).into_font().color(&INK))
        .draw()
        .map_err(chart_err)?;
    category_labels(root, &chart, labels, x0)?;
    Ok(chart)
}

fn y_band(n: usize) -> std::ops::Range<f64> {
    -0.6..(n as f64 - 0.4)
}

fn bar_chart(root: &DrawingArea<SVGBackend<'_>, Shift>, cols: &Cols<'_>) -> Result<(), SiteError> {
    let (labels, values, format) = labelled(cols, "value")?;
    let max = values.iter().copied().fold(0f64, f64::max);
    let top = if max > 0.0 { max * 1.18 } else { 1.0 };
    let x_desc = cols.table.columns[cols.get("value")?].label.clone();
    let mut chart = category_chart(root, 0f64..top, &labels, x_desc, format)?;
    for (i, (label, v)) in labels.iter().zip(&values).enumerate() {
        let y = row_y(i, labels.len());
        let c = colour(i, label);
        let bar = Rectangle::new([(0.0, y - 0.36), (v.max(0.0), y + 0.36)], c.filled());
        chart.draw_series(std::iter::once(bar)).map_err(chart_err)?;
        let text = Cell::Float(*v).display(format);
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((v.max(0.0), y))
                    + Text::new(text, (4, -7), ("sans-serif", 14).into_font().color(&INK)),
            ))
            .map_err(chart_err)?;
    }
    Ok(())
}

fn interval_chart(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    cols: &Cols<'_>,
) -> Result<(), SiteError> {
    let (li, ei, lo, hi) = (
        cols.get("label")?,
        cols.get("estimate")?,
        cols.get("lower")?,
        cols.get("upper")?,
    );
    let format = cols.table.columns[ei].format;
    let rows: Vec<IntervalRow> = cols
        .table
        .rows
        .iter()
        .map(|r| {
            (
                r[li].label(),
                r[ei].number(),
                r[lo].number(),
                r[hi].number(),
            )
        })
        .collect();
    let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let all: Vec<f64> = rows
        .iter()
        .flat_map(|r| [r.1, r.2, r.3])
        .flatten()
        .collect();
    let (mut min, mut max) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    if !min.is_finite() || !max.is_finite() {
        (min, max) = (0.0, 1.0);
    }
    if (max - min).abs() < 1e-12 {
        (min, max) = (min - 1.0, max + 1.0);
    }
    let pad = (max - min) * 0.06;

    let x_desc = cols.table.columns[ei].label.clone();
    let mut chart = category_chart(root, (min - pad)..(max + pad), &labels, x_desc, format)?;
    let whisker = PALETTE[0].stroke_width(2);
    for (i, (_, est, lower, upper)) in rows.iter().enumerate() {
        let yv = row_y(i, rows.len());
        let y = || yv;
        if let (Some(l), Some(u)) = (lower, upper) {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(*l, y()), (*u, y())],
                    whisker,
                )))
                .map_err(chart_err)?;
            for end in [*l, *u] {
                chart
                    .draw_series(std::iter::once(
                        EmptyElement::at((end, y()))
                            + PathElement::new(vec![(0, -7), (0, 7)], whisker),
                    ))
                    .map_err(chart_err)?;
            }
        }
        if let Some(e) = est {
            chart
                .draw_series(std::iter::once(Circle::new(
                    (*e, y()),
                    5,
                    PALETTE[2].filled(),
                )))
                .map_err(chart_err)?;
        }
    }
    Ok(())
}

fn scatter_chart(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    cols: &Cols<'_>,
) -> Result<(), SiteError> {
    let (li, xi, yi) = (cols.get("label")?, cols.get("x")?, cols.get("y")?);
    let (x_format, y_format) = (cols.table.columns[xi].format, cols.table.columns[yi].format);
    let points: Vec<(String, f64, f64)> = cols
        .table
        .rows
        .iter()
        .filter_map(|r| Some((r[li].label(), r[xi].number()?, r[yi].number()?)))
        .collect();
    // Prices span orders of magnitude: a log x axis when every x is positive and they do.
    let (xmin, xmax) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.1), b.max(p.1))
        });
    let log_x = xmin > 0.0 && xmax / xmin > 20.0;
    let tx = |x: f64| if log_x { x.log10() } else { x };
    let (mut lo, mut hi) = (tx(xmin), tx(xmax));
    if !lo.is_finite() || !hi.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if (hi - lo).abs() < 1e-12 {
        (lo, hi) = (lo - 1.0, hi + 1.0);
    }
    let pad = (hi - lo) * 0.08;
    let ymax = points.iter().map(|p| p.2).fold(0f64, f64::max).max(1e-9) * 1.15;
    let x_desc = format!(
        "{}{}",
        cols.table.columns[xi].label,
        if log_x { " (log scale)" } else { "" }
    );
    let y_desc = cols.table.columns[yi].label.clone();
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d((lo - pad)..(hi + pad), 0f64..ymax)
        .map_err(chart_err)?;
    chart
        .configure_mesh()
        .x_labels(7)
        .x_label_formatter(&|v| tick(if log_x { 10f64.powf(*v) } else { *v }, x_format))
        .y_labels(6)
        .y_label_formatter(&|v| tick(*v, y_format))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .axis_desc_style(("sans-serif", 17).into_font().color(&INK))
        .label_style(("sans-serif", 15).into_font().color(&INK))
        .draw()
        .map_err(chart_err)?;
    chart
        .draw_series(
            points
                .iter()
                .map(|p| Circle::new((tx(p.1), p.2), 5, PALETTE[0].mix(0.85).filled())),
        )
        .map_err(chart_err)?;
    // Label the biggest points first; skip a label that would touch one already placed.
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|a, b| points[*b].2.total_cmp(&points[*a].2));
    let area = chart.plotting_area().get_pixel_range();
    let mut placed: Vec<(i32, i32, i32, i32)> = Vec::new();
    for i in order {
        let (label, x, y) = &points[i];
        let text = truncate(label, 22);
        let (px, py) = chart.backend_coord(&(tx(*x), *y));
        let w = (text.chars().count() as f64 * 6.6) as i32;
        let bx = (px + 7, py - 14, px + 7 + w, py);
        let inside = bx.2 <= area.0.end && bx.1 >= area.1.start;
        let clear = placed
            .iter()
            .all(|b| bx.2 < b.0 || bx.0 > b.2 || bx.3 < b.1 || bx.1 > b.3);
        if inside && clear {
            placed.push(bx);
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((tx(*x), *y))
                        + Text::new(text, (7, -14), ("sans-serif", 14).into_font().color(&INK)),
                ))
                .map_err(chart_err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::table::Column;

    fn roles(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    /// A hand-made preference-index-like table: label, estimate, lower, upper.
    fn intervals() -> Table {
        let mut t = Table::new(vec![
            Column::new("label", "Model", Format::Plain),
            Column::new("estimate", "Rating", Format::Plain),
            Column::new("lower", "Lower", Format::Plain),
            Column::new("upper", "Upper", Format::Plain),
        ]);
        t.push(vec![
            Cell::text("a/alpha"),
            Cell::Float(1200.0),
            Cell::Float(1150.0),
            Cell::Float(1260.0),
        ]);
        t.push(vec![
            Cell::text("b/<beta>"),
            Cell::Float(1000.0),
            Cell::Float(900.0),
            Cell::Float(1100.0),
        ]);
        t
    }

    /// Numbers inside `attr="..."` attributes of every `<tag ` element.
    fn attr_values(svg: &str, tag: &str, attr: &str) -> Vec<f64> {
        svg.split(&format!("<{tag} "))
            .skip(1)
            .filter_map(|el| {
                let el = format!(" {el}");
                let start = el.find(&format!(" {attr}=\""))? + attr.len() + 3;
                let rest = &el[start..];
                rest[..rest.find('"')?].parse().ok()
            })
            .collect()
    }

    #[test]
    fn interval_chart_draws_whiskers_and_estimates_in_order() {
        let svg = render(ChartKind::Interval, &intervals(), &BTreeMap::new()).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        // One estimate dot per row, alpha's (the larger) further right than beta's.
        let cx = attr_values(&svg, "circle", "cx");
        assert_eq!(cx.len(), 2, "{svg}");
        assert!(cx[0] > cx[1], "{cx:?}");
        // Whiskers: one horizontal span per row plus two caps each.
        assert!(svg.matches("<polyline").count() >= 6, "{svg}");
        // Hostile label text is escaped.
        assert!(svg.contains("b/&lt;beta&gt;"), "{svg}");
        assert!(!svg.contains("<beta>"));
        // The whisker of alpha spans 1150..1260 and the dot sits between its ends.
        let cy = attr_values(&svg, "circle", "cy");
        assert!(cy[0] < cy[1], "first row on top: {cy:?}");
    }

    #[test]
    fn interval_roles_can_be_renamed() {
        let mut t = intervals();
        for (c, name) in t.columns.iter_mut().zip(["model", "rating", "lo", "hi"]) {
            c.name = name.to_owned();
        }
        let r = roles(&[
            ("label", "model"),
            ("estimate", "rating"),
            ("lower", "lo"),
            ("upper", "hi"),
        ]);
        let svg = render(ChartKind::Interval, &t, &r).unwrap();
        assert_eq!(attr_values(&svg, "circle", "cx").len(), 2);
        let err = render(ChartKind::Interval, &t, &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("no column \"label\""), "{err}");
    }

    fn long_table() -> Table {
        let mut t = Table::new(vec![
            Column::new("week", "Week", Format::Plain),
            Column::new("model", "Model", Format::Plain),
            Column::new("share", "Share", Format::Share),
        ]);
        for (w, a, o) in [("2026-11-02", 0.6, 0.4), ("2026-11-09", 0.5, 0.5)] {
            t.push(vec![
                Cell::text(w),
                Cell::text("x/<script>alert(1)</script>"),
                Cell::Float(a),
            ]);
            t.push(vec![Cell::text(w), Cell::text("other"), Cell::Float(o)]);
        }
        t
    }

    #[test]
    fn stacked_area_has_a_legend_and_escapes_names() {
        let r = roles(&[("x", "week"), ("series", "model"), ("value", "share")]);
        let svg = render(ChartKind::StackedArea, &long_table(), &r).unwrap();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"), "{svg}");
        assert!(svg.contains("\nother\n"), "{svg}");
        assert!(svg.contains("Nov 02"), "{svg}");
        assert!(svg.contains("100%"), "{svg}");
        // One filled polygon per series.
        assert_eq!(svg.matches("<polygon").count(), 2, "{svg}");
        let line = render(ChartKind::Line, &long_table(), &r).unwrap();
        assert_eq!(attr_values(&line, "circle", "cx").len(), 4);
    }

    #[test]
    fn series_start_where_the_data_starts() {
        let data = SeriesData {
            xs: vec!["w1".into(), "w2".into(), "w3".into(), "w4".into()],
            series: vec![
                ("a".into(), vec![None, Some(0.0), Some(0.4), None]),
                ("b".into(), vec![None, None, Some(0.6), Some(1.0)]),
            ],
        };
        let trimmed = trim_leading_empty(data);
        assert_eq!(trimmed.xs, vec!["w3".to_owned(), "w4".to_owned()]);
        assert_eq!(
            trimmed.series,
            vec![
                ("a".to_owned(), vec![Some(0.4), None]),
                ("b".to_owned(), vec![Some(0.6), Some(1.0)]),
            ]
        );
    }

    #[test]
    fn category_charts_grow_with_their_rows() {
        let mut t = intervals();
        let template = t.rows[0].clone();
        t.rows = (0..75).map(|_| template.clone()).collect();
        let svg = render(ChartKind::Interval, &t, &BTreeMap::new()).unwrap();
        let height = CATEGORY_CHROME + CATEGORY_ROW * 75;
        assert!(
            svg.contains(&format!("height=\"{height}\"")),
            "{}",
            &svg[..200]
        );
    }

    #[test]
    fn bars_scatter_and_empty_tables_render() {
        let mut t = Table::new(vec![
            Column::new("label", "Author", Format::Plain),
            Column::new("value", "Share", Format::Share),
        ]);
        t.push(vec![Cell::text("anthropic"), Cell::Float(0.7)]);
        t.push(vec![Cell::text("a".repeat(80)), Cell::Float(0.3)]);
        let svg = render(ChartKind::Bar, &t, &BTreeMap::new()).unwrap();
        assert!(svg.contains("70.00%"), "{svg}");
        assert!(
            svg.contains(&format!("{}…", "a".repeat(LABEL_CHARS - 1))),
            "{svg}"
        );
        assert!(!svg.contains(&"a".repeat(LABEL_CHARS + 1)));

        let mut s = Table::new(vec![
            Column::new("label", "Model", Format::Plain),
            Column::new("x", "Price", Format::Usd),
            Column::new("y", "Share", Format::Share),
        ]);
        s.push(vec![
            Cell::text("cheap"),
            Cell::Float(0.1),
            Cell::Float(0.5),
        ]);
        s.push(vec![
            Cell::text("dear"),
            Cell::Float(60.0),
            Cell::Float(0.1),
        ]);
        let svg = render(ChartKind::Scatter, &s, &BTreeMap::new()).unwrap();
        assert!(svg.contains("log scale"), "{svg}");
        assert_eq!(attr_values(&svg, "circle", "cx").len(), 2);

        let empty = render(
            ChartKind::Bar,
            &Table::new(t.columns.clone()),
            &BTreeMap::new(),
        )
        .unwrap();
        assert!(empty.contains("No data"), "{empty}");
    }
}
