//! Row types and the conversions between rows and the public types.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Timelike, Utc};
use diesel::prelude::*;

use super::schema::{quicksilver_executions, quicksilver_tasks};
use super::sql_types::StoredTime;
use super::StoreError;
use crate::execution::{Execution, Status};
use crate::task::Task;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = quicksilver_tasks)]
pub(crate) struct TaskRow {
    pub(crate) id: i64,
    pub(crate) command: String,
    pub(crate) arguments: String,
    pub(crate) queue: String,
    pub(crate) repeat_interval: Option<i64>,
    pub(crate) cron: Option<String>,
    pub(crate) time_zone: Option<String>,
    pub(crate) max_duration: Option<i64>,
    pub(crate) next_run: StoredTime,
    pub(crate) alerts_postponed_until: Option<StoredTime>,
    pub(crate) paused: bool,
    pub(crate) declaration: Option<String>,
    pub(crate) alert_on_failure: Option<bool>,
    pub(crate) created_at: StoredTime,
    pub(crate) updated_at: StoredTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = quicksilver_tasks)]
pub(crate) struct InsertTask<'a> {
    pub(crate) command: &'a str,
    pub(crate) arguments: String,
    pub(crate) queue: &'a str,
    pub(crate) repeat_interval: Option<i64>,
    pub(crate) cron: Option<String>,
    pub(crate) time_zone: Option<String>,
    pub(crate) max_duration: Option<i64>,
    pub(crate) next_run: StoredTime,
    pub(crate) paused: bool,
    pub(crate) declaration: Option<&'a str>,
    pub(crate) alert_on_failure: Option<bool>,
    pub(crate) created_at: StoredTime,
    pub(crate) updated_at: StoredTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = quicksilver_executions)]
pub(crate) struct ExecutionRow {
    pub(crate) id: i64,
    pub(crate) task_id: Option<i64>,
    pub(crate) command: String,
    pub(crate) arguments: String,
    pub(crate) queue: Option<String>,
    pub(crate) status: String,
    pub(crate) due_at: Option<StoredTime>,
    pub(crate) started: Option<StoredTime>,
    pub(crate) ended: Option<StoredTime>,
    pub(crate) runtime_seconds: Option<f64>,
    pub(crate) output: String,
    pub(crate) runner: Option<String>,
}

/// The values of a new execution row, written by `ExecutionInsert`.
#[derive(Debug)]
pub(crate) struct InsertExecution<'a> {
    pub(crate) task_id: Option<i64>,
    pub(crate) command: &'a str,
    pub(crate) arguments: String,
    pub(crate) queue: Option<&'a str>,
    pub(crate) status: &'static str,
    pub(crate) due_at: Option<StoredTime>,
    pub(crate) started: Option<StoredTime>,
    pub(crate) runner: Option<&'a str>,
}

/// The latest time stored. Later times, such as the "never" of a schedule
/// without more occurrences, are stored as this one, because SQLite compares
/// times as text and a five-digit year would sort before every other.
fn latest_stored() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|date| date.and_hms_micro_opt(23, 59, 59, 999_999))
        .unwrap_or(NaiveDateTime::MAX)
}

/// Converts a time to the stored form: UTC, truncated to microseconds so
/// that every backend stores the same value, and at most the year 9999.
pub(crate) fn to_db(time: DateTime<Utc>) -> StoredTime {
    let naive = time.naive_utc().min(latest_stored());
    let micros = naive.nanosecond() / 1_000 * 1_000;
    StoredTime(naive.with_nanosecond(micros).unwrap_or(naive))
}

pub(crate) fn from_db(time: StoredTime) -> DateTime<Utc> {
    time.0.and_utc()
}

pub(crate) fn encode_arguments(arguments: &[String]) -> String {
    serde_json::Value::from(arguments.to_vec()).to_string()
}

/// Reads the arguments column: a JSON array of strings, as quicksilver
/// writes it, or else one argument per line, as the original Django app
/// stored them and as an operator may type them into the row by hand.
pub(crate) fn decode_arguments(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_else(|_| text.lines().map(str::to_owned).collect())
}

impl From<TaskRow> for Task {
    fn from(row: TaskRow) -> Self {
        let arguments = decode_arguments(&row.arguments);
        Task {
            id: row.id,
            command: row.command,
            arguments,
            queue: row.queue,
            repeat_interval: row.repeat_interval,
            cron: row.cron,
            time_zone: row.time_zone,
            max_duration: row.max_duration,
            next_run: from_db(row.next_run),
            alerts_postponed_until: row.alerts_postponed_until.map(from_db),
            paused: row.paused,
            declaration: row.declaration,
            alert_on_failure: row.alert_on_failure,
            created_at: from_db(row.created_at),
            updated_at: from_db(row.updated_at),
        }
    }
}

impl TryFrom<ExecutionRow> for Execution {
    type Error = StoreError;

    fn try_from(row: ExecutionRow) -> Result<Self, Self::Error> {
        let owner = format!("execution {}", row.id);
        let arguments = decode_arguments(&row.arguments);
        let status = row
            .status
            .parse::<Status>()
            .map_err(|error| StoreError::InvalidRow {
                row: owner,
                reason: error.to_string(),
            })?;
        Ok(Execution {
            id: row.id,
            task_id: row.task_id,
            command: row.command,
            arguments,
            queue: row.queue,
            status,
            due_at: row.due_at.map(from_db),
            started: row.started.map(from_db),
            ended: row.ended.map(from_db),
            runtime_seconds: row.runtime_seconds,
            output: row.output,
            runner: row.runner,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip_byte_for_byte() {
        let arguments = vec!["--name".to_owned(), " a = b\n\"c\" ".to_owned()];
        let text = encode_arguments(&arguments);
        assert_eq!(decode_arguments(&text), arguments);
    }

    #[test]
    fn far_future_is_stored_as_year_9999() {
        let stored = to_db(DateTime::<Utc>::MAX_UTC);
        assert_eq!(stored.0.to_string(), "9999-12-31 23:59:59.999999");
        assert!(to_db(Utc::now()) < stored);
    }

    #[test]
    fn non_json_arguments_read_one_per_line() {
        assert_eq!(decode_arguments("--name\na b = c"), ["--name", "a b = c"]);
    }

    #[test]
    fn empty_arguments_column_is_no_arguments() {
        assert!(decode_arguments("").is_empty());
    }
}
