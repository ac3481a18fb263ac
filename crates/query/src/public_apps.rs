//! The figures of apps that chose to be shown by name, and the rule that keeps them from
//! exposing the apps that did not.
//!
//! # The rule
//!
//! A shown app's figures are sums of its parts of the groups of `crate::privacy` (its `ok`
//! events of one day, task, model, provider, context segment, attempt kind and position). Its
//! part of a group counts only when the group's *unpublished* apps (those that did not opt in)
//! number none or at least `min_apps`. The same test holds for every shown app in the group,
//! so either all of their parts count or none does.
//!
//! Why: the public totals are sums of whole publishable groups. Subtracting the shown apps'
//! figures from them removes, from each group, either nothing or every shown app's part,
//! leaving the group's unpublished apps, who are none or at least `min_apps`. A group that is
//! not publishable at all enters only through shown apps' parts when it has no unpublished app,
//! so only apps that agreed to be shown. So no combination of published figures isolates fewer
//! than `min_apps` unpublished apps.

use crate::QueryError;
use crate::engine::{GROUP, QueryEngine};
use crate::fragments::{FALLBACK, bound_list};
use crate::period::Period;
use crate::privacy::{Scope, none_or_publishable_sql};
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
        "WITH rows AS (\
           SELECT {GROUP}, app_id, input_tokens + output_tokens AS tokens, requests \
           FROM (SELECT date, task, model, provider, context, {FALLBACK} AS fallback, position, \
                   app_id, input_tokens, output_tokens, requests \
                 FROM cell_apps WHERE {filter})), \
         unpublished AS (\
           SELECT {GROUP}, \
             count(DISTINCT CASE WHEN app_id IN ({list}) THEN NULL ELSE app_id END) AS apps \
           FROM rows GROUP BY {GROUP}) \
         SELECT r.app_id, r.task, r.model, sum(r.tokens) AS tokens, sum(r.requests) AS requests \
         FROM rows r JOIN unpublished u \
           ON r.date = u.date AND r.task = u.task AND r.model = u.model \
             AND r.provider = u.provider AND r.context = u.context \
             AND r.fallback = u.fallback AND r.position = u.position \
         WHERE r.app_id IN ({list}) AND {counts} \
         GROUP BY r.app_id, r.task, r.model",
        filter = scope.filter(),
        counts = none_or_publishable_sql("u.apps"),
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
