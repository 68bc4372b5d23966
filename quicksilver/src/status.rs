//! The status report that monitors poll, in the original's JSON shape:
//! `{"issues": [...], "status": "ok"}`, or `"error"` when an issue exists.
//!
//! Two kinds of issue, as in the original:
//!
//! - overdue: a task, not paused and not running, that has waited more
//!   than [`AlertSettings::overdue_after`] while no other run of its queue
//!   is going on. It waits from its next run, or from its last change (a
//!   resume) or the start of a live runner of its queue when those come
//!   later. It carries `task`, `outlier_threshold` (that delay, in
//!   seconds) and `overdue` (how long it has waited, in seconds).
//! - too few runs: a task still running at its next run with fewer than two
//!   executions recorded, so that no history shows whether the run is
//!   stuck. It carries `task` and `issue` (`"Only 1 run recorded."`).
//!
//! Each issue also carries fields of this crate beside the original's:
//! `kind`, `task_id`, `queue`, `next_run`, `last_success`, `p95_runtime`
//! and `runs`. A monitor that reads only the original's fields keeps
//! working.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

use crate::alert::AlertSettings;
use crate::store::{RuntimeStats, Store, StoreError};

type Result<T, E = StoreError> = std::result::Result<T, E>;
use crate::task::Task;

/// The health of the scheduler, as the report spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No issue.
    Ok,
    /// At least one issue.
    Error,
}

/// The kind of an issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueKind {
    /// The task's next run is long past and nothing of its queue runs.
    Overdue,
    /// The task is still running at its next run, without enough history
    /// to judge the run.
    TooFewRuns,
}

/// One issue of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Issue {
    /// The task's command, as the original names a task.
    pub task: String,
    /// For an overdue task: the seconds after its next run at which a task
    /// is overdue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlier_threshold: Option<f64>,
    /// For an overdue task: the seconds since its next run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overdue: Option<f64>,
    /// For a task with too few runs: the original's sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue: Option<String>,
    /// The kind of issue.
    pub kind: IssueKind,
    /// The task's row id.
    pub task_id: i64,
    /// The task's queue.
    pub queue: String,
    /// The task's next run.
    #[serde(serialize_with = "rfc3339")]
    pub next_run: DateTime<Utc>,
    /// When the task's latest successful run ended.
    #[serde(serialize_with = "rfc3339_option")]
    pub last_success: Option<DateTime<Utc>>,
    /// The 95th percentile of the runtimes of its latest successful runs,
    /// in seconds.
    pub p95_runtime: Option<f64>,
    /// How many successful runs those figures come from.
    pub runs: u64,
}

/// The status report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StatusReport {
    /// Every issue found, most overdue first.
    pub issues: Vec<Issue>,
    /// `ok` without issues, else `error`.
    pub status: Health,
    /// When the report was made.
    #[serde(serialize_with = "rfc3339")]
    pub checked_at: DateTime<Utc>,
}

impl StatusReport {
    /// Returns whether the report found no issue.
    pub fn is_ok(&self) -> bool {
        self.status == Health::Ok
    }

    /// Returns the report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|error| {
            // Serializing these plain fields cannot fail; should it ever,
            // the monitor still gets valid JSON that reports it.
            serde_json::json!({ "issues": [], "status": "error", "error": error.to_string() })
                .to_string()
        })
    }
}

/// Builds the status report of `store` at `now`, with the thresholds of
/// `settings`. Reading the report never alerts and never writes.
///
/// # Errors
///
/// - [`crate::StoreError`] when the database cannot be read.
pub async fn report(
    store: &Store,
    settings: &AlertSettings,
    now: DateTime<Utc>,
) -> Result<StatusReport> {
    let snapshot = store.monitor_snapshot(now).await?;
    let running_tasks: std::collections::HashSet<i64> = snapshot
        .ongoing
        .iter()
        .filter_map(|execution| execution.task_id)
        .collect();
    let busy_queues: std::collections::HashSet<&str> = snapshot
        .ongoing
        .iter()
        .filter_map(|execution| execution.queue.as_deref())
        .collect();
    let overdue_after = settings.overdue_after.as_secs_f64();

    let mut overdue: Vec<(&Task, f64)> = Vec::new();
    let mut running: Vec<&Task> = Vec::new();
    let mut waiting: Vec<&Task> = Vec::new();
    for task in &snapshot.due {
        if running_tasks.contains(&task.id) {
            running.push(task);
        } else if !busy_queues.contains(task.queue.as_str())
            && seconds_between(task.next_run, now) > overdue_after
        {
            waiting.push(task);
        }
    }
    let served = if waiting.is_empty() {
        std::collections::HashMap::new()
    } else {
        crate::alert::served_since(store, now).await?
    };
    for task in waiting {
        let since = served.get(task.queue.as_str()).copied();
        let late = crate::alert::overdue_by(task, now, since).as_secs_f64();
        if late > overdue_after {
            overdue.push((task, late));
        }
    }
    let counts = store
        .execution_counts(running.iter().map(|task| task.id).collect(), 2)
        .await?;
    let few: Vec<(&Task, i64)> = running
        .iter()
        .zip(counts)
        .filter(|(_, (_, count))| *count < 2)
        .map(|(task, (_, count))| (*task, count))
        .collect();

    let ids = overdue
        .iter()
        .map(|(task, _)| task.id)
        .chain(few.iter().map(|(task, _)| task.id))
        .collect();
    let stats: std::collections::HashMap<i64, RuntimeStats> =
        store.runtime_stats_of(ids).await?.into_iter().collect();
    let issue = |task: &Task, kind| {
        let figures = stats.get(&task.id).cloned().unwrap_or_default();
        Issue {
            task: task.command.clone(),
            outlier_threshold: None,
            overdue: None,
            issue: None,
            kind,
            task_id: task.id,
            queue: task.queue.clone(),
            next_run: task.next_run,
            last_success: figures.last_success,
            p95_runtime: figures.p95,
            runs: figures.runs,
        }
    };

    let mut issues = Vec::new();
    for (task, late) in overdue {
        issues.push(Issue {
            outlier_threshold: Some(overdue_after),
            overdue: Some(late),
            ..issue(task, IssueKind::Overdue)
        });
    }
    for (task, count) in few {
        let noun = if count == 1 { "run" } else { "runs" };
        issues.push(Issue {
            issue: Some(format!("Only {count} {noun} recorded.")),
            ..issue(task, IssueKind::TooFewRuns)
        });
    }
    let status = if issues.is_empty() {
        Health::Ok
    } else {
        Health::Error
    };
    Ok(StatusReport {
        issues,
        status,
        checked_at: now,
    })
}

/// Returns the seconds from `earlier` to `later`, negative when `later`
/// comes first.
fn seconds_between(earlier: DateTime<Utc>, later: DateTime<Utc>) -> f64 {
    (later - earlier)
        .to_std()
        .map(|elapsed| elapsed.as_secs_f64())
        .unwrap_or_else(|_| {
            -((earlier - later)
                .to_std()
                .map_or(0.0, |ahead| ahead.as_secs_f64()))
        })
}

fn rfc3339<S: Serializer>(
    time: &DateTime<Utc>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn rfc3339_option<S: Serializer>(
    time: &Option<DateTime<Utc>>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    match time {
        Some(time) => rfc3339(time, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_between_is_signed() {
        let start = DateTime::<Utc>::from_timestamp(1_000, 0).expect("valid time");
        let later = start + chrono::TimeDelta::milliseconds(1_500);
        assert_eq!(seconds_between(start, later), 1.5);
        assert_eq!(seconds_between(later, start), -1.5);
    }

    #[test]
    fn empty_report_original_shape() {
        let report = StatusReport {
            issues: Vec::new(),
            status: Health::Ok,
            checked_at: DateTime::<Utc>::from_timestamp(0, 0).expect("valid time"),
        };
        let value: serde_json::Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
        assert_eq!(value["status"], "ok");
        assert_eq!(value["issues"], serde_json::json!([]));
    }
}
