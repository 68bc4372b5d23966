//! Executions written straight into a test database, with the status,
//! times and output a test chooses, as a runner would have recorded them.

use chrono::{DateTime, TimeDelta, Utc};
use quicksilver::Task;

use crate::backends::TestDatabase;

/// Formats a time as the store writes it on SQLite, which the PostgreSQL
/// `TIMESTAMP` and MySQL `DATETIME(6)` columns also read as UTC.
pub fn sql_time(time: DateTime<Utc>) -> String {
    time.naive_utc().format("%F %T%.f").to_string()
}

/// Quotes `text` as an SQL string literal.
pub fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Records an execution of `task` with `status`, due and started at
/// `started`. With `runtime` (seconds) it ends that much later; without,
/// it has no end and no runtime, as an `ongoing` one.
///
/// # Panics
///
/// Panics when the database rejects the row.
pub fn insert_execution(
    database: &TestDatabase,
    task: &Task,
    status: &str,
    started: DateTime<Utc>,
    runtime: Option<f64>,
    output: &str,
) {
    let (ended, runtime) = match runtime {
        Some(seconds) => {
            let ended = started + TimeDelta::microseconds((seconds * 1e6).round() as i64);
            (sql_text(&sql_time(ended)), seconds.to_string())
        }
        None => ("NULL".to_owned(), "NULL".to_owned()),
    };
    let started = sql_text(&sql_time(started));
    database.execute_sql(&format!(
        "INSERT INTO quicksilver_executions \
         (task_id, command, arguments, queue, status, due_at, started, ended, \
          runtime_seconds, output, runner) \
         VALUES ({}, {}, '[]', {}, {}, {started}, {started}, {ended}, {runtime}, {}, 'test')",
        task.id,
        sql_text(&task.command),
        sql_text(&task.queue),
        sql_text(status),
        sql_text(output),
    ));
}
