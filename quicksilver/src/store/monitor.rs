//! The reads behind alerts and the status report, and the postponement of
//! a task's alerts, which every runner shares through the task row.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::rows::{from_db, to_db, ExecutionRow, TaskRow};
use super::schema::{quicksilver_executions as executions, quicksilver_tasks as tasks};
use super::sql_types::StoredTime;
use super::{Result, Store};
use crate::execution::{Execution, Status};
use crate::task::Task;

/// How many of a task's latest successful runs its runtime figures use.
pub const RUNTIME_HISTORY: i64 = 1_000;

/// At most this many rows come back from one monitoring read, so that a
/// database in trouble cannot make an evaluation load it all.
const MONITOR_LIMIT: i64 = 1_000;

/// Figures of a task's latest finished runs: at most [`RUNTIME_HISTORY`]
/// of those that ended `success` or `error` on their own. The runtime
/// alert compares a run with all of them, as the original does. The status
/// report shows the figures of the successful ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuntimeStats {
    /// How many finished runs the outlier figures come from.
    pub finished: u64,
    /// Their mean runtime in seconds; `None` without runs.
    pub finished_mean: Option<f64>,
    /// The standard deviation of their runtimes in seconds (population,
    /// as the original computes it); `None` without runs.
    pub finished_deviation: Option<f64>,
    /// How many successful runs the figures come from.
    pub runs: u64,
    /// Their mean runtime in seconds; `None` without runs.
    pub mean: Option<f64>,
    /// The sample standard deviation of their runtimes in seconds; `None`
    /// with fewer than two runs.
    pub deviation: Option<f64>,
    /// The 95th percentile of their runtimes in seconds (nearest rank);
    /// `None` without runs.
    pub p95: Option<f64>,
    /// When the latest successful run ended.
    pub last_success: Option<DateTime<Utc>>,
}

impl RuntimeStats {
    /// Computes the figures from the runtimes in seconds of successful and
    /// failed runs and the end of the latest successful one.
    pub(crate) fn from_runs(
        successes: Vec<f64>,
        failures: &[f64],
        last_success: Option<DateTime<Utc>>,
    ) -> Self {
        let finished: Vec<f64> = successes
            .iter()
            .chain(failures)
            .copied()
            .filter(|runtime| runtime.is_finite())
            .collect();
        let count = finished.len() as f64;
        let finished_mean = (!finished.is_empty()).then(|| finished.iter().sum::<f64>() / count);
        let finished_deviation = finished_mean.map(|mean| {
            let squares: f64 = finished
                .iter()
                .map(|runtime| (runtime - mean).powi(2))
                .sum();
            (squares / count).sqrt()
        });
        RuntimeStats {
            finished: finished.len() as u64,
            finished_mean,
            finished_deviation,
            ..RuntimeStats::from_runtimes(successes, last_success)
        }
    }

    /// Computes the figures of successful runs from their runtimes in
    /// seconds and the end of the latest one.
    pub(crate) fn from_runtimes(
        mut runtimes: Vec<f64>,
        last_success: Option<DateTime<Utc>>,
    ) -> Self {
        runtimes.retain(|runtime| runtime.is_finite());
        let runs = runtimes.len();
        if runs == 0 {
            return RuntimeStats {
                last_success,
                ..RuntimeStats::default()
            };
        }
        let count = runs as f64;
        let mean = runtimes.iter().sum::<f64>() / count;
        let deviation = (runs > 1).then(|| {
            let squares: f64 = runtimes
                .iter()
                .map(|runtime| (runtime - mean).powi(2))
                .sum();
            (squares / (count - 1.0)).sqrt()
        });
        runtimes.sort_by(f64::total_cmp);
        // Nearest rank: the smallest runtime with at least 95 % of the runs
        // at or below it.
        let rank = (0.95 * count).ceil().max(1.0) as usize;
        let p95 = runtimes.get(rank.min(runs) - 1).copied();
        RuntimeStats {
            runs: runs as u64,
            mean: Some(mean),
            deviation,
            p95,
            last_success,
            ..RuntimeStats::default()
        }
    }
}

/// The result of one monitoring read: the runs going on now, and the tasks
/// whose next run is past.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    /// Every `ongoing` execution, oldest first, output left out.
    pub(crate) ongoing: Vec<Execution>,
    /// Tasks not paused whose next run is at or before the given time,
    /// latest-due last.
    pub(crate) due: Vec<Task>,
}

impl Store {
    /// Returns the runtime figures of the task with `task_id`, from its
    /// latest successful runs.
    ///
    /// # Errors
    ///
    /// - [`super::StoreError::Query`] when the database fails.
    pub async fn runtime_stats(&self, task_id: i64) -> Result<RuntimeStats> {
        let mut all = self.runtime_stats_of(vec![task_id]).await?;
        Ok(all.pop().map(|(_, stats)| stats).unwrap_or_default())
    }

    /// Returns the runtime figures of each task of `task_ids`, in that
    /// order, read on one connection.
    pub(crate) async fn runtime_stats_of(
        &self,
        task_ids: Vec<i64>,
    ) -> Result<Vec<(i64, RuntimeStats)>> {
        on_backend!(self, |connection, inner| {
            let mut all = Vec::with_capacity(task_ids.len());
            for task_id in task_ids {
                let rows: Vec<(String, Option<f64>, Option<StoredTime>)> = executions::table
                    .filter(executions::task_id.eq(task_id))
                    .filter(
                        executions::status
                            .eq_any([Status::Success.as_str(), Status::Error.as_str()]),
                    )
                    .order(executions::started.desc())
                    .limit(RUNTIME_HISTORY)
                    .select((
                        executions::status,
                        executions::runtime_seconds,
                        executions::ended,
                    ))
                    .load(connection)?;
                let success = Status::Success.as_str();
                let last_success = rows
                    .iter()
                    .filter(|(status, _, _)| status == success)
                    .filter_map(|(_, _, ended)| *ended)
                    .map(from_db)
                    .max();
                let (successes, failures): (Vec<_>, Vec<_>) = rows
                    .into_iter()
                    .partition(|(status, _, _)| status == success);
                let successes = successes
                    .into_iter()
                    .filter_map(|(_, runtime, _)| runtime)
                    .collect();
                let failures: Vec<f64> = failures
                    .into_iter()
                    .filter_map(|(_, runtime, _)| runtime)
                    .collect();
                all.push((
                    task_id,
                    RuntimeStats::from_runs(successes, &failures, last_success),
                ));
            }
            Ok(all)
        })
    }

    /// Returns how many executions each task of `task_ids` has recorded,
    /// counting at most `cap`.
    pub(crate) async fn execution_counts(
        &self,
        task_ids: Vec<i64>,
        cap: i64,
    ) -> Result<Vec<(i64, i64)>> {
        on_backend!(self, |connection, inner| {
            let mut all = Vec::with_capacity(task_ids.len());
            for task_id in task_ids {
                let ids: Vec<i64> = executions::table
                    .filter(executions::task_id.eq(task_id))
                    .select(executions::id)
                    .limit(cap)
                    .load(connection)?;
                all.push((task_id, ids.len() as i64));
            }
            Ok(all)
        })
    }

    /// Reads the `ongoing` executions of every queue and the tasks, not
    /// paused, whose next run is at or before `due_before`.
    pub(crate) async fn monitor_snapshot(&self, due_before: DateTime<Utc>) -> Result<Snapshot> {
        on_backend!(self, |connection, inner| {
            let ongoing = executions::table
                .filter(executions::status.eq(Status::Ongoing.as_str()))
                .order(executions::started.asc())
                .limit(MONITOR_LIMIT)
                .select(ExecutionRow::as_select())
                .load(connection)?
                .into_iter()
                .map(Execution::try_from)
                .collect::<Result<Vec<_>>>()?;
            let due = tasks::table
                .filter(tasks::paused.eq(false))
                .filter(tasks::next_run.le(to_db(due_before)))
                .order(tasks::next_run.asc())
                .limit(MONITOR_LIMIT)
                .select(TaskRow::as_select())
                .load(connection)?
                .into_iter()
                .map(Task::from)
                .collect();
            Ok(Snapshot { ongoing, due })
        })
    }

    /// Returns the executions that ended `error` or `killed` at or after
    /// `since`, newest first, with their task.
    pub(crate) async fn failed_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(Execution, Task)>> {
        on_backend!(self, |connection, inner| {
            // Literal statuses, which let the planner use the partial index
            // of failed runs.
            let failed = diesel::dsl::sql::<diesel::sql_types::Bool>(
                "quicksilver_executions.status IN ('error', 'killed')",
            );
            executions::table
                .inner_join(tasks::table)
                .filter(failed)
                .filter(executions::ended.ge(to_db(since)))
                .order(executions::ended.desc())
                .limit(MONITOR_LIMIT)
                .select((ExecutionRow::as_select(), TaskRow::as_select()))
                .load::<(ExecutionRow, TaskRow)>(connection)?
                .into_iter()
                .map(|(execution, task)| Ok((Execution::try_from(execution)?, Task::from(task))))
                .collect()
        })
    }

    /// Postpones the alerts of the task with `task_id` until `until`, if
    /// they are not postponed past `now` already. Returns whether this call
    /// postponed them: of several runners that find the same alert, one
    /// alone sends it.
    pub(crate) async fn postpone_alerts(
        &self,
        task_id: i64,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let changed = write_on_backend!(self, |connection| {
            Ok(diesel::update(
                tasks::table.find(task_id).filter(
                    tasks::alerts_postponed_until
                        .is_null()
                        .or(tasks::alerts_postponed_until.le(to_db(now))),
                ),
            )
            .set(tasks::alerts_postponed_until.eq(to_db(until)))
            .execute(connection)?)
        })?;
        Ok(changed == 1)
    }

    /// Undoes [`Store::postpone_alerts`] after the alert could not be
    /// sent: the postponement goes back to `previous` unless someone set
    /// another since.
    pub(crate) async fn restore_alerts(
        &self,
        task_id: i64,
        until: DateTime<Utc>,
        previous: Option<DateTime<Utc>>,
    ) -> Result<()> {
        write_on_backend!(self, |connection| {
            diesel::update(
                tasks::table
                    .find(task_id)
                    .filter(tasks::alerts_postponed_until.eq(to_db(until))),
            )
            .set(tasks::alerts_postponed_until.eq(previous.map(to_db)))
            .execute(connection)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_no_run_are_empty() {
        let stats = RuntimeStats::from_runtimes(Vec::new(), None);
        assert_eq!(stats, RuntimeStats::default());
    }

    #[test]
    fn one_run_has_a_mean_and_no_deviation() {
        let stats = RuntimeStats::from_runtimes(vec![2.5], None);
        assert_eq!(stats.runs, 1);
        assert_eq!(stats.mean, Some(2.5));
        assert_eq!(stats.deviation, None);
        assert_eq!(stats.p95, Some(2.5));
    }

    #[test]
    fn deviation_is_the_sample_one() {
        let stats = RuntimeStats::from_runtimes(vec![2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0], None);
        assert_eq!(stats.mean, Some(5.0));
        let deviation = stats.deviation.expect("eight runs have a deviation");
        assert!(
            (deviation - (32.0f64 / 7.0).sqrt()).abs() < 1e-12,
            "{deviation}"
        );
    }

    #[test]
    fn outliers_compare_with_every_finished_run() {
        let stats = RuntimeStats::from_runs(vec![2.0, 4.0, 4.0, 4.0], &[5.0, 5.0, 7.0, 9.0], None);
        assert_eq!(stats.finished, 8);
        assert_eq!(stats.finished_mean, Some(5.0));
        assert_eq!(stats.finished_deviation, Some(2.0));
        assert_eq!(stats.runs, 4);
        assert_eq!(stats.mean, Some(3.5));
    }

    #[test]
    fn p95_is_the_nearest_rank() {
        let runtimes: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(RuntimeStats::from_runtimes(runtimes, None).p95, Some(95.0));
        let runtimes: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(RuntimeStats::from_runtimes(runtimes, None).p95, Some(10.0));
    }
}
