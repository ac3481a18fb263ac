//! Server-rendered HTML: the page frame (navigation, period and task selectors as plain links
//! and a GET form, so no JavaScript is needed), one section per panel with its chart and data
//! table, and the 400/404/500 pages. Every string that reaches the HTML goes through [`esc`].

use crate::Site;
use crate::chart;
use crate::dashboard::{ChartKind, Dashboard, Panel, Segment};
use crate::queries::{Args, Param, encode_segment};
use crate::table::{Cell, Format, Table};
use chrono::NaiveDate;
use modelshare_event::{Context, Task};
use modelshare_query::{Period, PeriodKind};
use std::fmt::Write;

/// Escapes text for HTML element content and double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query-string value.
fn qv(s: &str) -> String {
    encode_segment(s)
}

const CSS: &str = "\
*{box-sizing:border-box}\
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#222;background:#f6f7f9}\
header{background:#1f2d3d;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;align-items:center}\
header a{color:#fff;text-decoration:none}header .brand{font-weight:700;font-size:1.1rem}\
header nav a{opacity:.85;margin-right:.9rem}header nav a.on{opacity:1;text-decoration:underline}\
main{max-width:1180px;margin:0 auto;padding:1rem}\
h1{font-size:1.5rem;margin:.3rem 0}h2{font-size:1.15rem;margin:0 0 .3rem}\
.sub{color:#555;margin:.1rem 0 .8rem}\
.controls{background:#fff;border:1px solid #dde;border-radius:6px;padding:.6rem .8rem;margin-bottom:1rem}\
.controls form{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}\
.controls select,.controls input,.controls button{font:inherit;padding:.2rem .4rem}\
.chips{margin-top:.5rem;display:flex;flex-wrap:wrap;gap:.3rem}\
.chips a{padding:.1rem .55rem;border:1px solid #ccd;border-radius:999px;text-decoration:none;color:#234;background:#fff;font-size:.9rem}\
.chips a.on{background:#1f2d3d;color:#fff;border-color:#1f2d3d}\
.panel{background:#fff;border:1px solid #dde;border-radius:6px;padding:.8rem;margin-bottom:1rem}\
.panel p{margin:.1rem 0 .6rem;color:#555}\
figure{margin:0}figure img{width:100%;height:auto;max-width:800px;display:block}\
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}\
table.data{border-collapse:collapse;font-size:.9rem;min-width:100%}\
table.data th,table.data td{padding:.25rem .5rem;border-bottom:1px solid #eee;white-space:nowrap;text-align:right}\
table.data th.text,table.data td.text{text-align:left}\
table.data th{background:#f0f2f5;position:sticky;top:0}\
details{margin-top:.5rem}summary{cursor:pointer;color:#345}\
.err{border-left:4px solid #c33;padding:.4rem .8rem;background:#fff4f4}\
footer{color:#666;font-size:.85rem;text-align:center;padding:1rem}\
@media (max-width:600px){main{padding:.5rem}table.data{font-size:.8rem}header nav a{margin-right:.5rem}}";

fn frame(site: Option<&Site>, current: Option<&str>, title: &str, body: &str) -> String {
    let mut nav = String::new();
    if let Some(site) = site {
        // The home page first, then the others in file order.
        let pages = &site.dashboards.pages;
        let home = pages.iter().filter(|d| d.route == "/");
        for d in home.chain(pages.iter().filter(|d| d.route != "/")) {
            if let (Some(label), true) = (&d.nav, d.path_params().is_empty()) {
                let on = if current == Some(d.id.as_str()) {
                    " class=\"on\""
                } else {
                    ""
                };
                let _ = write!(nav, "<a href=\"{}\"{on}>{}</a>", esc(&d.route), esc(label));
            }
        }
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · modelshare</title>\
<link rel=\"icon\" href=\"data:,\">\
<style>{CSS}</style></head><body>\
<header><a class=\"brand\" href=\"/\">modelshare</a><nav>{nav}</nav></header>\
<main>{body}</main>\
<footer>Open usage analytics for LLM routing traffic · figures only for groups of at least the minimum number of apps · \
<a href=\"/v1/leaderboard\">JSON API</a></footer></body></html>\n",
        title = esc(title),
    )
}

/// A full error page (400, 404, 500...).
pub fn error_page(site: Option<&Site>, status: u16, title: &str, message: &str) -> String {
    let body = format!(
        "<h1>{status} · {}</h1><p class=\"err\">{}</p><p><a href=\"/\">Back to the leaderboard</a></p>",
        esc(title),
        esc(message)
    );
    frame(site, None, title, &body)
}

/// Everything a page render needs besides the panel tables.
#[derive(Debug)]
pub struct PageContext<'a> {
    pub site: &'a Site,
    pub dashboard: &'a Dashboard,
    /// The request path (as sent, percent-encoded).
    pub path: &'a str,
    pub args: &'a Args,
    /// The date the period was chosen by (given, or the latest day with data).
    pub date: NaiveDate,
    /// The latest day with data, to stop "next" links there.
    pub latest: Option<NaiveDate>,
}

/// Replaces `{task}`, `{model}`, `{provider}` and `{app}` (the name shown) in a title with the
/// page's values, in one pass: a value that contains a placeholder's text stays as it is.
fn fill(template: &str, args: &Args) -> String {
    let values = [
        ("{task}", args.task.map_or("all tasks", |t| t.as_str())),
        ("{model}", args.model.as_deref().unwrap_or("")),
        ("{provider}", args.provider.as_deref().unwrap_or("")),
        ("{app}", args.app.as_ref().map_or("", |a| a.name.as_str())),
    ];
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    'scan: while !rest.is_empty() {
        for (placeholder, value) in values {
            if let Some(after) = rest.strip_prefix(placeholder) {
                out.push_str(value);
                rest = after;
                continue 'scan;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

fn period_label(p: &Period) -> String {
    match p.kind {
        PeriodKind::Day => p.start.format("%a %d %b %Y").to_string(),
        PeriodKind::Week => format!(
            "week of {} (to {})",
            p.start.format("%d %b %Y"),
            (p.end - chrono::Days::new(1)).format("%d %b")
        ),
        PeriodKind::Month => p.start.format("%B %Y").to_string(),
    }
}

/// The query string a chart URL carries for `panel`: only the parameters it takes, resolved.
pub fn chart_query(panel: &Panel, args: &Args) -> String {
    let mut parts = Vec::new();
    for p in &panel.params {
        match p {
            Param::Period => parts.push(format!("period={}", args.period.kind)),
            Param::Date => parts.push(format!("date={}", args.period.start)),
            Param::Task => {
                if let Some(t) = args.task {
                    parts.push(format!("task={}", t.as_str()));
                }
            }
            Param::Model => {
                if let Some(m) = &args.model {
                    parts.push(format!("model={}", qv(m)));
                }
            }
            Param::Provider => {
                if let Some(p) = &args.provider {
                    parts.push(format!("provider={}", qv(p)));
                }
            }
            Param::App => {
                if let Some(a) = &args.app {
                    parts.push(format!("app={}", qv(&a.slug)));
                }
            }
            Param::Context => {
                if let Some(c) = args.context {
                    parts.push(format!("context={c}"));
                }
            }
        }
    }
    parts.join("&")
}

/// The stable URL of a panel's chart.
pub fn chart_url(dashboard: &Dashboard, panel: &Panel, args: &Args) -> String {
    let q = chart_query(panel, args);
    let mut url = format!("/charts/{}/{}.svg", dashboard.id, panel.id);
    if !q.is_empty() {
        url.push('?');
        url.push_str(&q);
    }
    url
}

/// The path of `dashboard` for these path values (`{provider}` and `{app}` are left empty: no
/// page links to another provider's or app's page through it).
pub fn page_path(dashboard: &Dashboard, task: Option<Task>, model: Option<&str>) -> String {
    let mut path = String::new();
    let (author, name) = model
        .and_then(|m| m.split_once('/'))
        .unwrap_or((model.unwrap_or(""), ""));
    for s in &dashboard.segments {
        path.push('/');
        match s {
            Segment::Literal(l) => path.push_str(l),
            Segment::Task => path.push_str(task.map_or("", |t| t.as_str())),
            Segment::Author => path.push_str(&encode_segment(author)),
            Segment::Model => path.push_str(&encode_segment(name)),
            Segment::Provider | Segment::App => {}
        }
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

fn selectors(ctx: &PageContext<'_>) -> String {
    let d = ctx.dashboard;
    let args = ctx.args;
    let mut out = String::from("<div class=\"controls\">");
    let has_period = d.params.contains(&Param::Period);
    let has_date = d.params.contains(&Param::Date);
    let has_task_param = d.params.contains(&Param::Task);
    let has_context = d.params.contains(&Param::Context);
    if has_period || has_date || has_task_param || has_context {
        let _ = write!(
            out,
            "<form method=\"get\" action=\"{}\" aria-label=\"Choose the period\">",
            esc(ctx.path)
        );
        if has_period {
            out.push_str("<label>Period <select name=\"period\">");
            for k in [PeriodKind::Day, PeriodKind::Week, PeriodKind::Month] {
                let sel = if k == args.period.kind {
                    " selected"
                } else {
                    ""
                };
                let _ = write!(out, "<option value=\"{k}\"{sel}>{k}</option>");
            }
            out.push_str("</select></label>");
        }
        if has_date {
            let _ = write!(
                out,
                "<label>containing <input type=\"date\" name=\"date\" value=\"{}\"></label>",
                ctx.date
            );
        }
        if has_task_param {
            out.push_str("<label>Task <select name=\"task\"><option value=\"\">all</option>");
            for t in Task::ALL {
                let sel = if Some(*t) == args.task {
                    " selected"
                } else {
                    ""
                };
                let _ = write!(out, "<option value=\"{t}\"{sel}>{t}</option>");
            }
            out.push_str("</select></label>");
        }
        if has_context {
            out.push_str(
                "<label>Context <select name=\"context\"><option value=\"\">all lengths</option>",
            );
            for c in Context::ALL {
                let sel = if Some(*c) == args.context {
                    " selected"
                } else {
                    ""
                };
                let _ = write!(
                    out,
                    "<option value=\"{c}\"{sel}>{c} ({})</option>",
                    c.label()
                );
            }
            out.push_str("</select></label>");
        }
        out.push_str("<button type=\"submit\">Show</button></form>");
    }
    // Previous / next period, keeping the other selections.
    if has_date {
        let keep = |date: NaiveDate| -> String {
            let mut q = vec![];
            if has_period {
                q.push(format!("period={}", args.period.kind));
            }
            q.push(format!("date={date}"));
            if has_task_param && let Some(t) = args.task {
                q.push(format!("task={t}"));
            }
            if has_context && let Some(c) = args.context {
                q.push(format!("context={c}"));
            }
            format!("{}?{}", ctx.path, q.join("&"))
        };
        let prev = args.period.previous();
        let _ = write!(
            out,
            "<div class=\"chips\"><a id=\"prev-period\" href=\"{}\">← {}</a>",
            esc(&keep(prev.start)),
            esc(&period_label(&prev))
        );
        let _ = write!(
            out,
            "<a class=\"on\" aria-current=\"page\">{}</a>",
            esc(&period_label(&args.period))
        );
        if ctx.latest.is_some_and(|l| args.period.end <= l) {
            let next = Period::containing(args.period.kind, args.period.end);
            let _ = write!(
                out,
                "<a id=\"next-period\" href=\"{}\">{} →</a>",
                esc(&keep(next.start)),
                esc(&period_label(&next))
            );
        }
        out.push_str("</div>");
    }
    // Task chips link to the task pages, keeping the period.
    if let Some(tp) = ctx.site.task_page() {
        let mut q = Vec::new();
        if has_period {
            q.push(format!("period={}", args.period.kind));
        }
        if has_date {
            q.push(format!("date={}", ctx.date));
        }
        let suffix = if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        };
        out.push_str("<div class=\"chips\" id=\"task-links\" aria-label=\"Tasks\">");
        if let Some(home) = ctx.site.dashboards.pages.iter().find(|p| p.route == "/") {
            let on = if ctx.dashboard.id == home.id && args.task.is_none() {
                " class=\"on\""
            } else {
                ""
            };
            let _ = write!(out, "<a href=\"/{}\"{on}>all tasks</a>", esc(&suffix));
        }
        for t in Task::ALL {
            let on = if ctx.dashboard.id == tp.id && args.task == Some(*t) {
                " class=\"on\""
            } else {
                ""
            };
            let _ = write!(
                out,
                "<a href=\"{}{}\"{on}>{t}</a>",
                esc(&page_path(tp, Some(*t), None)),
                esc(&suffix)
            );
        }
        out.push_str("</div>");
    }
    out.push_str("</div>");
    out
}

/// A data table; share cells get a light bar so the matrix reads as a heat map.
pub fn data_table(panel_id: &str, t: &Table, series_columns: bool) -> String {
    if t.rows.is_empty() {
        return "<p class=\"empty\">No data for this selection.</p>".to_owned();
    }
    let mut out = format!(
        "<div class=\"scroll\"><table class=\"data\" data-panel=\"{}\"><thead><tr>",
        esc(panel_id)
    );
    for (i, c) in t.columns.iter().enumerate() {
        let swatch = if series_columns && i > 0 {
            format!(
                "<span style=\"color:{}\">■</span> ",
                chart::colour_hex(i - 1, &c.name)
            )
        } else {
            String::new()
        };
        let text_col = t
            .rows
            .first()
            .is_some_and(|r| matches!(r[i], Cell::Text(_) | Cell::Link { .. }));
        let class = if text_col { " class=\"text\"" } else { "" };
        let _ = write!(
            out,
            "<th scope=\"col\"{class} data-column=\"{}\">{swatch}{}</th>",
            esc(&c.name),
            esc(&c.label)
        );
    }
    out.push_str("</tr></thead><tbody>");
    for row in &t.rows {
        out.push_str("<tr>");
        for (cell, col) in row.iter().zip(&t.columns) {
            let text_cell = matches!(cell, Cell::Text(_) | Cell::Link { .. });
            let class = if text_cell { " class=\"text\"" } else { "" };
            let style = match (col.format, cell.number()) {
                (Format::Share, Some(v)) if v > 0.0 => format!(
                    " style=\"background:rgba(78,121,167,{:.2})\"",
                    (v.min(1.0) * 0.55).max(0.04)
                ),
                _ => String::new(),
            };
            let content = match cell {
                Cell::Link { text, href } => {
                    format!("<a href=\"{}\">{}</a>", esc(href), esc(text))
                }
                other => esc(&other.display(col.format)),
            };
            let _ = write!(
                out,
                "<td{class}{style} data-value=\"{}\">{content}</td>",
                esc(&cell.raw())
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// The height the chart of `panel` will have for `rows` rows (for `<img>` sizes).
pub fn chart_height(kind: ChartKind, rows: usize) -> u32 {
    match kind {
        ChartKind::Bar | ChartKind::Interval => (70 + 28 * rows as u32).clamp(150, 640),
        _ => 380,
    }
}

fn panel_section(
    ctx: &PageContext<'_>,
    panel: &Panel,
    table: &Result<Table, crate::SiteError>,
) -> String {
    let title = fill(&panel.title, ctx.args);
    let mut out = format!(
        "<section class=\"panel\" id=\"panel-{}\" data-chart=\"{}\"><h2>{}</h2>",
        esc(&panel.id),
        panel.chart,
        esc(&title)
    );
    if let Some(d) = &panel.description {
        let _ = write!(out, "<p>{}</p>", esc(&fill(d, ctx.args)));
    }
    let table = match table {
        Ok(t) => t,
        Err(e) => {
            let _ = write!(
                out,
                "<p class=\"err panel-error\">This panel could not be computed: {}</p></section>",
                esc(&e.to_string())
            );
            return out;
        }
    };
    if panel.chart == ChartKind::Table {
        out.push_str(&data_table(&panel.id, table, false));
    } else {
        let url = chart_url(ctx.dashboard, panel, ctx.args);
        let _ = write!(
            out,
            "<figure><img src=\"{}\" alt=\"Chart: {}\" width=\"{}\" height=\"{}\"></figure>",
            esc(&url),
            esc(&title),
            chart::WIDTH,
            chart_height(panel.chart, table.rows.len())
        );
        let shown = match panel.chart {
            ChartKind::StackedArea | ChartKind::Line => {
                match (
                    table.index(panel.role("x")),
                    table.index(panel.role("series")),
                    table.index(panel.role("value")),
                ) {
                    (Some(x), Some(s), Some(v)) => (table.pivot(x, s, v), true),
                    _ => (table.clone(), false),
                }
            }
            _ => (table.clone(), false),
        };
        let _ = write!(
            out,
            "<details><summary>Data table</summary>{}</details>",
            data_table(&panel.id, &shown.0, shown.1)
        );
    }
    out.push_str("</section>");
    out
}

/// The whole page.
pub fn render_page(ctx: &PageContext<'_>, tables: &[Result<Table, crate::SiteError>]) -> String {
    let d = ctx.dashboard;
    let title = fill(&d.title, ctx.args);
    let mut body = format!("<h1>{}</h1>", esc(&title));
    let _ = write!(
        body,
        "<p class=\"sub\">{}{}</p>",
        d.description
            .as_deref()
            .map(|s| format!("{} · ", esc(&fill(s, ctx.args))))
            .unwrap_or_default(),
        esc(&period_label(&ctx.args.period))
    );
    body.push_str(&selectors(ctx));
    for (panel, table) in d.panels.iter().zip(tables) {
        body.push_str(&panel_section(ctx, panel, table));
    }
    frame(Some(ctx.site), Some(&d.id), &title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn data_tables_escape_cells_and_links() {
        let mut t = Table::new(vec![
            Column::new("model", "Model", Format::Plain),
            Column::new("share", "Share", Format::Share),
        ]);
        t.push(vec![
            Cell::Link {
                text: "x/<img src=x onerror=alert(1)>".into(),
                href: "/models/x/%3Cimg\"".into(),
            },
            Cell::Float(0.5),
        ]);
        let html = data_table("p\"", &t, false);
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("x/&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(html.contains("href=\"/models/x/%3Cimg&quot;\""), "{html}");
        assert!(html.contains("data-panel=\"p&quot;\""), "{html}");
        assert!(html.contains(">50.00%</td>"), "{html}");
        assert!(html.contains("data-value=\"0.5\""), "{html}");
    }

    #[test]
    fn error_pages_are_html_and_escaped() {
        let html = error_page(None, 404, "Not found", "no model <x>");
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("name=\"viewport\""));
        assert!(html.contains("no model &lt;x&gt;"));
    }
}
