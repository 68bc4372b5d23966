//! Executions: the record of each run of a command.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

/// The state of an execution, spelled as stored and as shown in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Scheduled, not started yet.
    Pending,
    /// Running now, or left behind by a runner that died.
    Ongoing,
    /// The command finished without error.
    Success,
    /// The command returned an error or panicked, or could not start.
    Error,
    /// The run was stopped: past its max duration, at shutdown, or found
    /// orphaned by a dead runner.
    Killed,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Ongoing,
        Status::Success,
        Status::Error,
        Status::Killed,
    ];

    /// Returns the stored spelling: `pending`, `ongoing`, `success`,
    /// `error` or `killed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Ongoing => "ongoing",
            Status::Success => "success",
            Status::Error => "error",
            Status::Killed => "killed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error returned when a string is not a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status `{0}`: use one of pending, ongoing, success, error, killed")]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| UnknownStatus(text.to_owned()))
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One run of a command, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Execution {
    /// The row id.
    pub id: i64,
    /// The task that ran, if the run came from a task that still exists.
    pub task_id: Option<i64>,
    /// The command that ran.
    pub command: String,
    /// The arguments it ran with.
    pub arguments: Vec<String>,
    /// The queue it ran on; `None` for a foreground `run`.
    pub queue: Option<String>,
    /// Its status.
    pub status: Status,
    /// The scheduled time of the tick this run serves.
    #[serde(serialize_with = "rfc3339_option")]
    pub due_at: Option<DateTime<Utc>>,
    /// When the run started.
    #[serde(serialize_with = "rfc3339_option")]
    pub started: Option<DateTime<Utc>>,
    /// When the run ended.
    #[serde(serialize_with = "rfc3339_option")]
    pub ended: Option<DateTime<Utc>>,
    /// How long the run took, in seconds.
    pub runtime_seconds: Option<f64>,
    /// The text the command wrote and logged, and the error if it failed.
    pub output: String,
    /// The identity of the runner (or foreground process) that ran it.
    pub runner: Option<String>,
}

impl Execution {
    /// Returns the line of the output that best sums up the run: the
    /// `error:` or `killed:` line the runner wrote when the run failed,
    /// else the last line the command wrote.
    pub fn summary(&self) -> &str {
        summary_line(&self.output)
    }
}

/// Returns the last line starting with `error:` or `killed:`, or else the
/// last non-empty line of `output`.
pub(crate) fn summary_line(output: &str) -> &str {
    let mut lines = output.lines().rev().filter(|line| !line.trim().is_empty());
    output
        .lines()
        .rev()
        .find(|line| line.starts_with("error: ") || line.starts_with("killed: "))
        .or_else(|| lines.next())
        .unwrap_or("")
}

fn rfc3339_option<S: Serializer>(
    value: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(time) => serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Micros, true)),
        None => serializer.serialize_none(),
    }
}

/// The filters of an execution listing, which is newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionFilter {
    /// Only executions with this status.
    pub status: Option<Status>,
    /// Only executions of this task.
    pub task_id: Option<i64>,
    /// Only executions of this command.
    pub command: Option<String>,
    /// Only executions of this queue.
    pub queue: Option<String>,
    /// At most this many rows.
    pub limit: i64,
}

impl Default for ExecutionFilter {
    fn default() -> Self {
        ExecutionFilter {
            status: None,
            task_id: None,
            command: None,
            queue: None,
            limit: 100,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_text() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
        }
    }

    #[test]
    fn summary_prefers_error_over_cause() {
        let output = "step 1\nerror: sync failed\ncaused by: disk is gone\n";
        assert_eq!(summary_line(output), "error: sync failed");
    }

    #[test]
    fn summary_falls_back_to_last_line() {
        assert_eq!(summary_line("one\ntwo\n\n"), "two");
        assert_eq!(summary_line(""), "");
    }

    #[test]
    fn unknown_status_names_the_value() {
        let error = "done".parse::<Status>().unwrap_err();
        assert!(error.to_string().contains("`done`"), "{error}");
    }
}
