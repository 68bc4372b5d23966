//! The reads behind the dashboard's pages: counts of executions by status,
//! task and execution listings with filters and keyset pagination, runners
//! by queue, and the runtime history of a task.
//!
//! Every query has a `LIMIT` and starts from an index, so that pages stay
//! fast however many executions the database holds. Filters that no index
//! serves (a runtime range, a search in the output) scan a bounded window
//! of at most [`SCAN_WINDOW`] execution ids per page.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::coordination::RunnerRow;
use super::rows::{to_db, ExecutionRow, TaskRow};
use super::schema::{
    quicksilver_executions as executions, quicksilver_runners as runners,
    quicksilver_tasks as tasks,
};
use super::sql_types::{StoredTime, UtcTime};
use super::{Result, RunnerInfo, Store};
use crate::execution::{Execution, Status};
use crate::store::rows::from_db;
use crate::task::Task;

/// The maximum number of rows a count of executions reads from its index. The
/// dashboard shows a count that reached it as "100000+".
pub(crate) const COUNT_CAP: i64 = 100_000;

/// How many execution ids one page of a runtime or output filter scans.
pub(crate) const SCAN_WINDOW: i64 = 10_000;

/// The escape character of `LIKE` patterns. Not a backslash, which MySQL
/// reads as an escape inside string literals too.
const LIKE_ESCAPE: char = '!';

diesel::define_sql_function! {
    /// SQL's `LOWER`, for searches that ignore case on every backend.
    #[sql_name = "LOWER"]
    fn lowercase(text: Text) -> Text;
}

/// The SQL that differs between backends.
trait DashboardSql {
    /// The last 1,000 characters of the output column: enough for the
    /// summary line of a listing, without reading outputs of up to 1 MiB.
    const OUTPUT_TAIL: &'static str;
    /// Counts, up to a bound given as the third parameter, the executions
    /// with the status given as the first parameter and the time column
    /// `{column}` at or after the second parameter.
    const CAPPED_COUNT: &'static str;
}

#[cfg(feature = "sqlite")]
impl DashboardSql for diesel::sqlite::Sqlite {
    const OUTPUT_TAIL: &'static str = "substr(quicksilver_executions.output, -1000)";
    const CAPPED_COUNT: &'static str = "SELECT COUNT(*) AS count FROM (SELECT 1 AS one \
         FROM quicksilver_executions WHERE status = {status} AND {column} >= ? LIMIT ?) AS capped";
}

#[cfg(feature = "postgres")]
impl DashboardSql for diesel::pg::Pg {
    const OUTPUT_TAIL: &'static str = "right(quicksilver_executions.output, 1000)";
    const CAPPED_COUNT: &'static str = "SELECT COUNT(*) AS count FROM (SELECT 1 AS one \
         FROM quicksilver_executions WHERE status = {status} AND {column} >= $1 LIMIT $2) AS capped";
}

#[cfg(feature = "mysql")]
impl DashboardSql for diesel::mysql::Mysql {
    const OUTPUT_TAIL: &'static str = "RIGHT(quicksilver_executions.output, 1000)";
    const CAPPED_COUNT: &'static str = "SELECT COUNT(*) AS count FROM (SELECT 1 AS one \
         FROM quicksilver_executions WHERE status = {status} AND {column} >= ? LIMIT ?) AS capped";
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// How many executions of one status ran recently, each count at most
/// [`COUNT_CAP`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusCount {
    pub(crate) status: Status,
    pub(crate) last_hour: i64,
    pub(crate) last_day: i64,
}

/// The filters of a task listing.
#[derive(Debug, Clone, Default)]
pub(crate) struct TaskQuery {
    /// Only tasks of this queue.
    pub(crate) queue: Option<String>,
    /// Only tasks whose command or arguments contain this text, ignoring
    /// case.
    pub(crate) search: Option<String>,
    /// At most this many tasks.
    pub(crate) limit: i64,
}

/// A runtime range in seconds: at least `min`, and below `max` when set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RuntimeRange {
    pub(crate) min: f64,
    pub(crate) max: Option<f64>,
}

/// The filters and the position of one page of executions, newest first.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExecutionQuery {
    pub(crate) status: Option<Status>,
    pub(crate) task_id: Option<i64>,
    pub(crate) runtime: Option<RuntimeRange>,
    /// Only executions whose output contains this text, ignoring case.
    pub(crate) search: Option<String>,
    /// Only executions with an id below this one: the keyset cursor.
    pub(crate) before: Option<i64>,
    /// At most this many executions.
    pub(crate) limit: i64,
}

impl ExecutionQuery {
    /// Returns whether a filter that no index serves is set, so that the
    /// page scans a window of ids.
    pub(crate) fn is_windowed(&self) -> bool {
        self.runtime.is_some() || self.search.is_some()
    }
}

/// One page of executions. Each output is cut to its last 1,000
/// characters.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExecutionPage {
    pub(crate) executions: Vec<Execution>,
    /// The cursor of the next, older page, when older executions exist.
    pub(crate) older: Option<i64>,
    /// For a windowed query, the ids it scanned: from the first up to,
    /// not including, the second.
    pub(crate) scanned: Option<(i64, i64)>,
}

/// One point of a task's runtime history.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RuntimePoint {
    pub(crate) execution_id: i64,
    pub(crate) status: Status,
    pub(crate) started: Option<DateTime<Utc>>,
    pub(crate) runtime_seconds: f64,
}

/// Escapes `%`, `_` and the escape character itself, and wraps the text
/// in `%` so that `LIKE` finds it anywhere, in lowercase.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for character in text.to_lowercase().chars() {
        if matches!(character, '%' | '_' | LIKE_ESCAPE) {
            pattern.push(LIKE_ESCAPE);
        }
        pattern.push(character);
    }
    pattern.push('%');
    pattern
}

/// Returns `'status'` as SQL, and for `error` and `killed` also the
/// condition of the partial index of failed runs, which SQLite uses only
/// when the query states it word for word.
fn status_literal(status: Status) -> String {
    match status {
        Status::Error | Status::Killed => format!(
            "'{}' AND quicksilver_executions.status IN ('error', 'killed')",
            status.as_str()
        ),
        _ => format!("'{}'", status.as_str()),
    }
}

/// The columns of an execution row, with only the end of its output
/// (`DashboardSql::OUTPUT_TAIL`), for listings. Expands where the
/// backend's `Db` is in scope.
macro_rules! columns_with_output_tail {
    () => {
        (
            executions::id,
            executions::task_id,
            executions::command,
            executions::arguments,
            executions::queue,
            executions::status,
            executions::due_at,
            executions::started,
            executions::ended,
            executions::runtime_seconds,
            diesel::dsl::sql::<Text>(<Db as DashboardSql>::OUTPUT_TAIL),
            executions::runner,
        )
    };
}

impl Store {
    /// Counts the executions of each status of the last hour and of the
    /// last day before `now`: `error` and `killed` ones by their end, the
    /// others by their start. Each count reads the `(status, ended)` index
    /// of failed runs or the `(status, started)` index, and stops at
    /// [`COUNT_CAP`].
    pub(crate) async fn status_counts(&self, now: DateTime<Utc>) -> Result<Vec<StatusCount>> {
        let hour_ago = to_db(now - chrono::TimeDelta::hours(1));
        let day_ago = to_db(now - chrono::TimeDelta::days(1));
        on_backend!(self, |connection, inner| {
            let mut counts = Vec::with_capacity(Status::ALL.len());
            for status in Status::ALL {
                let column = match status {
                    Status::Pending | Status::Ongoing | Status::Success => "started",
                    Status::Error | Status::Killed => "ended",
                };
                // The status is one of ours, written as a literal so that
                // the partial index of failed runs applies.
                let sql = <Db as DashboardSql>::CAPPED_COUNT
                    .replace("{column}", column)
                    .replace("{status}", &status_literal(status));
                let mut count = |since: StoredTime| -> Result<i64> {
                    let row: CountRow = diesel::sql_query(sql.as_str())
                        .bind::<UtcTime, _>(since)
                        .bind::<BigInt, _>(COUNT_CAP)
                        .get_result(connection)?;
                    Ok(row.count)
                };
                let last_hour = count(hour_ago)?;
                let last_day = count(day_ago)?;
                counts.push(StatusCount {
                    status,
                    last_hour,
                    last_day,
                });
            }
            Ok(counts)
        })
    }

    /// Returns up to `query.limit` tasks, ordered by queue and next run,
    /// and whether more matched.
    pub(crate) async fn task_page(&self, query: TaskQuery) -> Result<(Vec<Task>, bool)> {
        on_backend!(self, |connection, inner| {
            let mut select = tasks::table.into_boxed();
            if let Some(queue) = &query.queue {
                select = select.filter(tasks::queue.eq(queue));
            }
            if let Some(search) = &query.search {
                let pattern = contains_pattern(search);
                select = select.filter(
                    lowercase(tasks::command)
                        .like(pattern.clone())
                        .escape(LIKE_ESCAPE)
                        .or(lowercase(tasks::arguments)
                            .like(pattern)
                            .escape(LIKE_ESCAPE)),
                );
            }
            let mut rows = select
                .order((tasks::queue, tasks::next_run, tasks::id))
                .limit(query.limit.saturating_add(1))
                .select(TaskRow::as_select())
                .load(connection)?;
            let more = rows.len() as i64 > query.limit;
            rows.truncate(usize::try_from(query.limit).unwrap_or(0));
            Ok((rows.into_iter().map(Task::from).collect(), more))
        })
    }

    /// Returns the names of the queues that tasks or runners name, sorted,
    /// at most `limit` of each.
    pub(crate) async fn queue_names(&self, limit: i64) -> Result<Vec<String>> {
        on_backend!(self, |connection, inner| {
            let mut names: Vec<String> = tasks::table
                .select(tasks::queue)
                .distinct()
                .order(tasks::queue)
                .limit(limit)
                .load(connection)?;
            let runner_queues: Vec<String> = runners::table
                .select(runners::queue)
                .distinct()
                .order(runners::queue)
                .limit(limit)
                .load(connection)?;
            names.extend(runner_queues);
            names.sort();
            names.dedup();
            Ok(names)
        })
    }

    /// Returns the runners of each queue of `queues`, latest heartbeat
    /// first, at most `limit` a queue.
    pub(crate) async fn runners_of(
        &self,
        queues: Vec<String>,
        limit: i64,
    ) -> Result<Vec<RunnerInfo>> {
        let rows: Vec<RunnerRow> = on_backend!(self, |connection, inner| {
            let mut all = Vec::new();
            for queue in &queues {
                let rows: Vec<RunnerRow> = runners::table
                    .filter(runners::queue.eq(queue))
                    .order(runners::heartbeat_at.desc())
                    .limit(limit)
                    .select(RunnerRow::as_select())
                    .load(connection)?;
                all.extend(rows);
            }
            Ok(all)
        })?;
        Ok(rows.into_iter().map(RunnerInfo::from).collect())
    }

    /// Returns one page of executions, newest first, each output cut to its
    /// end (see [`ExecutionPage`]).
    ///
    /// A query with a runtime range or an output search scans the
    /// [`SCAN_WINDOW`] ids below its cursor at most, and its next page
    /// starts below that window when this one is not full.
    pub(crate) async fn execution_page(&self, query: ExecutionQuery) -> Result<ExecutionPage> {
        on_backend!(self, |connection, inner| {
            let top = match query.before {
                Some(before) => before,
                None => executions::table
                    .select(executions::id)
                    .order(executions::id.desc())
                    .limit(1)
                    .first::<i64>(connection)
                    .optional()?
                    .map_or(0, |id| id.saturating_add(1)),
            };
            let bottom = top.saturating_sub(SCAN_WINDOW);

            // NOTE: no index orders a status's or a task's rows by id, so
            // with those filters the database reads the status's (or the
            // task's) index range and sorts it. clear_successful_executions
            // bounds the successes; errors and kills stay until deleted.
            let mut select = executions::table
                .filter(executions::id.lt(top))
                .into_boxed();
            if query.is_windowed() {
                select = select.filter(executions::id.ge(bottom));
            }
            if let Some(status) = query.status {
                select = select.filter(executions::status.eq(status.as_str()));
            }
            if let Some(task_id) = query.task_id {
                select = select.filter(executions::task_id.eq(task_id));
            }
            if let Some(range) = query.runtime {
                select = select.filter(executions::runtime_seconds.ge(range.min));
                if let Some(max) = range.max {
                    select = select.filter(executions::runtime_seconds.lt(max));
                }
            }
            if let Some(search) = &query.search {
                select = select.filter(
                    lowercase(executions::output)
                        .like(contains_pattern(search))
                        .escape(LIKE_ESCAPE),
                );
            }
            let mut rows: Vec<ExecutionRow> = select
                .order(executions::id.desc())
                .limit(query.limit.saturating_add(1))
                .select(columns_with_output_tail!())
                .load(connection)?;

            let full = rows.len() as i64 > query.limit;
            rows.truncate(usize::try_from(query.limit).unwrap_or(0));
            let older = if full {
                rows.last().map(|row| row.id)
            } else if query.is_windowed() && bottom > 0 {
                // The window ran out before the page filled: continue below
                // it when any older execution exists.
                executions::table
                    .filter(executions::id.lt(bottom))
                    .select(executions::id)
                    .order(executions::id.desc())
                    .limit(1)
                    .first::<i64>(connection)
                    .optional()?
                    .map(|_| bottom)
            } else {
                None
            };
            let executions = rows
                .into_iter()
                .map(Execution::try_from)
                .collect::<Result<Vec<_>>>()?;
            Ok(ExecutionPage {
                executions,
                older,
                scanned: query.is_windowed().then_some((bottom.max(0), top)),
            })
        })
    }

    /// Returns the latest `limit` executions with one of `statuses`, by
    /// end, newest first, each output cut to its end. Each status reads
    /// the `(status, ended)` index.
    pub(crate) async fn latest_ended(
        &self,
        statuses: Vec<Status>,
        limit: i64,
    ) -> Result<Vec<Execution>> {
        on_backend!(self, |connection, inner| {
            let mut all: Vec<ExecutionRow> = Vec::new();
            for status in &statuses {
                // A literal status, so that the partial index of failed
                // runs applies to `error` and `killed`.
                let literal = diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
                    "quicksilver_executions.status = {}",
                    status_literal(*status)
                ));
                let rows: Vec<ExecutionRow> = executions::table
                    .filter(literal)
                    .filter(executions::ended.is_not_null())
                    .order(executions::ended.desc())
                    .limit(limit)
                    .select(columns_with_output_tail!())
                    .load(connection)?;
                all.extend(rows);
            }
            all.sort_by(|a, b| b.ended.cmp(&a.ended).then(b.id.cmp(&a.id)));
            all.truncate(usize::try_from(limit).unwrap_or(0));
            all.into_iter().map(Execution::try_from).collect()
        })
    }

    /// Returns the runtimes of the latest `limit` finished runs of a task,
    /// oldest first. Each status reads the `(task_id, status, started)`
    /// index.
    pub(crate) async fn runtime_history(
        &self,
        task_id: i64,
        limit: i64,
    ) -> Result<Vec<RuntimePoint>> {
        on_backend!(self, |connection, inner| {
            let mut points = Vec::new();
            for status in [Status::Success, Status::Error, Status::Killed] {
                let rows: Vec<(i64, Option<StoredTime>, Option<f64>)> = executions::table
                    .filter(executions::task_id.eq(task_id))
                    .filter(executions::status.eq(status.as_str()))
                    .order(executions::started.desc())
                    .limit(limit)
                    .select((
                        executions::id,
                        executions::started,
                        executions::runtime_seconds,
                    ))
                    .load(connection)?;
                points.extend(rows.into_iter().filter_map(|(id, started, runtime)| {
                    Some(RuntimePoint {
                        execution_id: id,
                        status,
                        started: started.map(from_db),
                        runtime_seconds: runtime.filter(|seconds| seconds.is_finite())?,
                    })
                }));
            }
            points.sort_by(|a, b| {
                b.started
                    .cmp(&a.started)
                    .then(b.execution_id.cmp(&a.execution_id))
            });
            points.truncate(usize::try_from(limit).unwrap_or(0));
            points.reverse();
            Ok(points)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_search_the_status_indexes() -> Result<()> {
        #[derive(QueryableByName)]
        struct PlanRow {
            #[diesel(sql_type = Text)]
            detail: String,
        }

        let folder = tempfile::tempdir().expect("a temporary folder");
        let store = Store::open(&folder.path().join("plans.sqlite3").to_string_lossy()).await?;
        let plans: Vec<String> = on_backend!(&store, |connection, inner| {
            let mut plans = Vec::new();
            for column in ["started", "ended"] {
                let sql = format!(
                    "EXPLAIN QUERY PLAN {}",
                    <Db as DashboardSql>::CAPPED_COUNT
                        .replace("{column}", column)
                        .replace("{status}", &status_literal(Status::Error))
                );
                let rows: Vec<PlanRow> = diesel::sql_query(sql)
                    .bind::<UtcTime, _>(to_db(Utc::now()))
                    .bind::<BigInt, _>(COUNT_CAP)
                    .load(connection)?;
                let lines: Vec<String> = rows.into_iter().map(|row| row.detail).collect();
                plans.push(lines.join("\n"));
            }
            Ok(plans)
        })?;

        assert!(
            plans[0].contains("quicksilver_executions_status_started (status=? AND started>?)"),
            "{}",
            plans[0]
        );
        assert!(
            plans[1].contains("quicksilver_executions_status_ended (status=? AND ended>?)"),
            "{}",
            plans[1]
        );
        Ok(())
    }

    #[test]
    fn search_pattern_escapes_wildcards() {
        assert_eq!(contains_pattern("50%_done!"), "%50!%!_done!!%");
        assert_eq!(contains_pattern("Error"), "%error%");
    }
}
