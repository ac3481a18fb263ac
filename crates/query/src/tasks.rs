//! Per-task overview: each task's totals and its top models in a period.

use crate::QueryError;
use crate::engine::QueryEngine;
use crate::leaderboard::{FIGURES_SQL, Figures, figures_at, share_of, usage_filter};
use crate::period::Period;
use crate::values::str_at;
use modelshare_event::Task;
use std::collections::HashMap;

/// One task's figures and its top models (by tokens).
#[derive(Debug, Clone)]
pub struct TaskSummary {
    pub task: Task,
    pub figures: Figures,
    /// Share of the period's tokens across all tasks.
    pub share: f64,
    /// (model, figures, share of the task's tokens), at most `top` of them.
    pub top_models: Vec<(String, Figures, f64)>,
}

/// The answer: published tasks by tokens, and the folded rest.
#[derive(Debug, Clone)]
pub struct TasksOverview {
    pub period: Period,
    pub totals: Figures,
    pub tasks: Vec<TaskSummary>,
    /// Tasks with fewer than `min_apps` apps, summed (their count in `folded_tasks`).
    pub folded: Figures,
    pub folded_tasks: usize,
}

impl QueryEngine {
    /// Totals per task and the top `top` models of each.
    pub async fn tasks(&self, period: Period, top: usize) -> Result<TasksOverview, QueryError> {
        let min_apps = self.config().min_apps;
        let filter = usage_filter(&period.date_predicate(), None);
        let per_task_sql =
            format!("SELECT task, {FIGURES_SQL} FROM events WHERE {filter} GROUP BY 1");
        let per_cell_sql =
            format!("SELECT task, model, {FIGURES_SQL} FROM events WHERE {filter} GROUP BY 1, 2");
        let (per_task, per_cell, totals) = tokio::try_join!(
            self.sql(&per_task_sql),
            self.sql(&per_cell_sql),
            self.figures_where(&filter),
        )?;
        let mut models: HashMap<Task, Vec<(String, Figures)>> = HashMap::new();
        for batch in &per_cell {
            for row in 0..batch.num_rows() {
                let Ok(task) = str_at(batch, "task", row)?.parse::<Task>() else {
                    continue;
                };
                let fig = figures_at(batch, row)?;
                if fig.apps >= min_apps {
                    let model = str_at(batch, "model", row)?.to_owned();
                    models.entry(task).or_default().push((model, fig));
                }
            }
        }
        let mut tasks = Vec::new();
        let mut folded = Figures::default();
        let mut folded_tasks = 0;
        for batch in &per_task {
            for row in 0..batch.num_rows() {
                let Ok(task) = str_at(batch, "task", row)?.parse::<Task>() else {
                    continue;
                };
                let fig = figures_at(batch, row)?;
                if fig.apps < min_apps {
                    folded = folded.plus(&fig);
                    folded_tasks += 1;
                    continue;
                }
                let mut top_models = models.remove(&task).unwrap_or_default();
                top_models.sort_by(|a, b| b.1.tokens().cmp(&a.1.tokens()).then(a.0.cmp(&b.0)));
                top_models.truncate(top);
                let top_models = top_models
                    .into_iter()
                    .map(|(m, f)| {
                        let s = share_of(f.tokens(), fig.tokens());
                        (m, f, s)
                    })
                    .collect();
                tasks.push(TaskSummary {
                    task,
                    figures: fig,
                    share: share_of(fig.tokens(), totals.tokens()),
                    top_models,
                });
            }
        }
        tasks.sort_by(|a, b| {
            b.figures
                .tokens()
                .cmp(&a.figures.tokens())
                .then(a.task.cmp(&b.task))
        });
        // Folded tasks' distinct apps cannot be summed; report none rather than a wrong number.
        folded.apps = 0;
        Ok(TasksOverview {
            period,
            totals,
            tasks,
            folded,
            folded_tasks,
        })
    }
}
