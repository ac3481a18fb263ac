//! Per-task overview: each task's totals and its top models in a period.
//!
//! A task's figures are the sum of its publishable groups (see [`crate::privacy`]), so a
//! task is listed exactly when it has one; the rest of a task beyond its listed models is made
//! of whole publishable groups too.

use crate::QueryError;
use crate::engine::QueryEngine;
use crate::leaderboard::{Figures, share_of};
use crate::period::Period;
use crate::privacy::{Dim, Group, Scope};
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

/// The answer: tasks with publishable groups, by tokens.
#[derive(Debug, Clone)]
pub struct TasksOverview {
    pub period: Period,
    pub totals: Figures,
    pub tasks: Vec<TaskSummary>,
}

impl QueryEngine {
    /// Totals per task and the top `top` models of each.
    pub async fn tasks(&self, period: Period, top: usize) -> Result<TasksOverview, QueryError> {
        let scope = Scope::period(&period, None);
        let [per_task, per_cell, total]: [Vec<Group>; 3] = self
            .published_sets(&scope, &[&[Dim::Task], &[Dim::Task, Dim::Model], &[]])
            .await?
            .try_into()
            .map_err(|_| QueryError::Shape("three grouping sets expected".into()))?;
        let totals = total.first().map(|(_, f)| *f).unwrap_or_default();
        let mut models: HashMap<Task, Vec<(String, Figures)>> = HashMap::new();
        for (key, fig) in per_cell {
            if let [task, model] = key.as_slice()
                && let Ok(task) = task.parse::<Task>()
            {
                models.entry(task).or_default().push((model.clone(), fig));
            }
        }
        let mut tasks = Vec::new();
        for (key, fig) in per_task {
            let Some(Ok(task)) = key.first().map(|t| t.parse::<Task>()) else {
                continue;
            };
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
        tasks.sort_by(|a, b| {
            b.figures
                .tokens()
                .cmp(&a.figures.tokens())
                .then(a.task.cmp(&b.task))
        });
        Ok(TasksOverview {
            period,
            totals,
            tasks,
        })
    }
}
