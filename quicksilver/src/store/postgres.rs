//! The PostgreSQL backend, through libpq.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::{Connection as _, InstrumentationEvent, SimpleConnection};
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) type Conn = diesel::PgConnection;
pub(super) type Db = diesel::pg::Pg;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// The queue condition of the due lookups.
pub(super) const QUEUE_IS_SQL: &str = "quicksilver_tasks.queue = ";

/// The advisory lock that keeps two processes from migrating at once.
const MIGRATION_LOCK: i64 = 0x7175_6963_6b73_696c;

include!("ops.rs");
include!("server.rs");

fn backend(pool: Pool<ConnectionManager<Conn>>) -> Backend {
    Backend::Postgres(pool)
}

/// Applies the pending migrations while holding an advisory lock, so that
/// runners starting together on a new database apply them once.
fn migrate(connection: &mut Conn) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    connection.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
    let applied = connection.run_pending_migrations(MIGRATIONS).map(drop);
    connection.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
    applied
}

pub(super) fn insert_task_row(connection: &mut Conn, row: &InsertTask<'_>) -> Result<i64> {
    Ok(diesel::insert_into(tasks::table)
        .values(row)
        .returning(tasks::id)
        .get_result(connection)?)
}

pub(super) fn insert_execution_row(
    connection: &mut Conn,
    row: &InsertExecution<'_>,
) -> Result<i64> {
    Ok(diesel::insert_into(executions::table)
        .values(row)
        .returning(executions::id)
        .get_result(connection)?)
}

/// Returns PostgreSQL's plans of the due lookups of `queue`.
pub(super) fn explain_due(connection: &mut Conn, queue: &str) -> Result<Vec<String>> {
    #[derive(QueryableByName)]
    struct PlanRow {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }

    use diesel::sql_types::{BigInt, Text};
    let now = Utc::now();
    let next = diesel::debug_query::<Db, _>(&next_due_query(queue, Some(1))).to_string();
    let due = diesel::debug_query::<Db, _>(&due_now_query(queue, now, Some(1))).to_string();
    let mut lines = vec!["next due:".to_owned()];
    let sql = next.split(" -- binds: ").next().unwrap_or_default();
    let rows: Vec<PlanRow> = diesel::sql_query(format!("EXPLAIN {sql}"))
        .bind::<Text, _>(queue)
        .bind::<BigInt, _>(1)
        .load(connection)?;
    lines.extend(rows.into_iter().map(|row| format!("  {}", row.line)));
    lines.push("due now:".to_owned());
    let sql = due.split(" -- binds: ").next().unwrap_or_default();
    let rows: Vec<PlanRow> = diesel::sql_query(format!("EXPLAIN {sql}"))
        .bind::<Text, _>(queue)
        .bind::<UtcTime, _>(to_db(now))
        .bind::<BigInt, _>(1)
        .load(connection)?;
    lines.extend(rows.into_iter().map(|row| format!("  {}", row.line)));
    Ok(lines)
}
