//! The figures of apps that chose to be shown by name, and the rule that keeps them from
//! exposing the apps that did not.
//!
//! # The rule
//!
//! A shown app's figures are sums of its parts of base cells (its `ok` events of one day, task,
//! model and provider). Its part of a cell counts only when the cell's *unpublished* apps (those
//! that did not opt in) number none or at least `min_apps`. The same test holds for every shown
//! app in the cell, so either all of their parts count or none does.
//!
//! Why: the public totals are sums of whole publishable cells. Subtracting the shown apps'
//! figures from them removes, from each cell, either nothing or every shown app's part, leaving
//! the cell's unpublished apps, who are none or at least `min_apps`. A cell that is not
//! publishable at all enters only through shown apps' parts, which they agreed to show. So no
//! combination of published figures isolates fewer than `min_apps` unpublished apps.
//!
//! A cell that may be split (by context segment, attempt or agent position; see
//! `crate::privacy::splittable_cells`) publishes parts of itself too, and a part minus the shown
//! apps' parts would leave the part's unpublished apps. So in such a cell the test is made on
//! each of its (segment, first choice or fallback, position) groups as well: every group's unpublished apps must
//! be none or at least `min_apps`, and any part is a union of groups.

use crate::QueryError;
use crate::engine::QueryEngine;
use crate::fragments::{FALLBACK, bound_list};
use crate::period::Period;
use crate::privacy::{Scope, none_or_publishable_sql, splittable_cells};
use crate::values::{str_at, u64_at};
use modelshare_event::Task;

/// Which shown apps' figures to compute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicAppsQuery {
    /// The `app_id`s of the apps that opted in.
    pub apps: Vec<String>,
    pub period: Period,
    pub task: Option<Task>,
}

/// One shown app's successful requests on one model in one task, over the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicAppUse {
    pub app_id: String,
    pub task: Task,
    pub model: String,
    pub tokens: u64,
    pub requests: u64,
}

/// Per shown app, task and model, the sums of the app's parts that count (see the module docs).
/// `list` is the placeholder list of the shown apps.
fn public_app_sql(scope: &Scope, list: &str) -> String {
    format!(
        "WITH parts AS (\
           SELECT date, task, model, provider, app_id, \
             sum(input_tokens + output_tokens) AS tokens, sum(requests) AS requests \
           FROM cell_apps WHERE {filter} \
           GROUP BY date, task, model, provider, app_id), \
         unpublished AS (\
           SELECT date, task, model, provider, \
             sum(CASE WHEN app_id IN ({list}) THEN 0 ELSE 1 END) AS apps \
           FROM parts GROUP BY date, task, model, provider), \
         groups AS (\
           SELECT date, task, model, provider, \
             count(DISTINCT CASE WHEN app_id IN ({list}) THEN NULL ELSE app_id END) AS apps \
           FROM cell_apps WHERE {filter} \
           GROUP BY date, task, model, provider, context, {FALLBACK}, position), \
         groups_count AS (\
           SELECT g.date, g.task, g.model, g.provider, \
             min(CASE WHEN {group_counts} THEN 1 ELSE 0 END) AS ok \
           FROM groups g JOIN ({splittable}) s ON g.date = s.date AND g.task = s.task \
             AND g.model = s.model AND g.provider = s.provider \
           GROUP BY g.date, g.task, g.model, g.provider) \
         SELECT p.app_id, p.task, p.model, sum(p.tokens) AS tokens, sum(p.requests) AS requests \
         FROM parts p JOIN unpublished u \
           ON p.date = u.date AND p.task = u.task AND p.model = u.model \
             AND p.provider = u.provider \
         LEFT JOIN groups_count c \
           ON p.date = c.date AND p.task = c.task AND p.model = c.model \
             AND p.provider = c.provider \
         WHERE p.app_id IN ({list}) AND {counts} AND (c.ok IS NULL OR c.ok = 1) \
         GROUP BY p.app_id, p.task, p.model",
        filter = scope.filter(),
        counts = none_or_publishable_sql("u.apps"),
        group_counts = none_or_publishable_sql("g.apps"),
        splittable = splittable_cells(scope),
    )
}

impl QueryEngine {
    /// What each shown app of `q.apps` used in `q.period`, per task and model, under the rule
    /// of the module docs; most tokens first.
    pub async fn public_app_uses(
        &self,
        q: &PublicAppsQuery,
    ) -> Result<Vec<PublicAppUse>, QueryError> {
        if q.apps.is_empty() {
            return Ok(Vec::new());
        }
        let scope = Scope::period(&q.period, q.task);
        let mut params = scope.params(self.config().min_apps);
        let list = bound_list("app", q.apps.iter().map(String::as_str), &mut params);
        let sql = public_app_sql(&scope, &list);
        let mut out = Vec::new();
        for b in self.sql_with_params(&sql, params).await? {
            for row in 0..b.num_rows() {
                let task = str_at(&b, "task", row)?;
                out.push(PublicAppUse {
                    app_id: str_at(&b, "app_id", row)?.to_owned(),
                    task: task.parse().map_err(|_| {
                        QueryError::Shape(format!("unknown task {task:?} in the lake"))
                    })?,
                    model: str_at(&b, "model", row)?.to_owned(),
                    tokens: u64_at(&b, "tokens", row)?,
                    requests: u64_at(&b, "requests", row)?,
                });
            }
        }
        out.sort_by(|a, b| {
            b.tokens
                .cmp(&a.tokens)
                .then_with(|| a.app_id.cmp(&b.app_id))
                .then_with(|| a.task.cmp(&b.task))
                .then_with(|| a.model.cmp(&b.model))
        });
        Ok(out)
    }
}
