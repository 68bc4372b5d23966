//! The MySQL and MariaDB backend, through libmysqlclient.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::{Connection as _, InstrumentationEvent, SimpleConnection};
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) type Conn = diesel::MysqlConnection;
pub(super) type Db = diesel::mysql::Mysql;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/mysql");

/// The queue condition of the due lookups.
pub(super) const QUEUE_IS_SQL: &str = "quicksilver_tasks.queue = ";

include!("ops.rs");

/// Inserts `row` unless a lease of that name exists, and returns whether
/// it did. A failed insert would abort the transaction on PostgreSQL, so
/// the conflict is skipped instead of raised.
pub(super) fn insert_lease(connection: &mut Conn, row: &LeaseRow<'_>) -> Result<bool> {
    Ok(
        diesel::insert_or_ignore_into(super::schema::quicksilver_leases::table)
            .values(row)
            .execute(connection)?
            == 1,
    )
}
include!("server.rs");

/// Sets READ COMMITTED on each connection. Under InnoDB's default,
/// REPEATABLE READ, claims and recorded ends of several runners lock gaps
/// of the executions' indexes and deadlock each other often. The claim's
/// correctness rests on its conditional update, which needs no more than
/// READ COMMITTED.
fn prepare_connection(connection: &mut Conn) -> QueryResult<()> {
    connection.batch_execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
}

/// MySQL has no notifications: nothing listens.
fn listen_url(_url: &str) -> String {
    String::new()
}

fn backend(pool: Pool<ConnectionManager<Conn>>) -> Backend {
    Backend::Mysql(pool)
}

/// Applies the pending migrations while holding a named lock, so that
/// runners starting together on a new database apply them once.
fn migrate(connection: &mut Conn) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    connection.batch_execute("DO GET_LOCK('quicksilver_migrations', 60)")?;
    let applied = connection.run_pending_migrations(MIGRATIONS).map(drop);
    connection.batch_execute("DO RELEASE_LOCK('quicksilver_migrations')")?;
    applied
}

/// Returns the id the connection's last insert generated. MySQL has no
/// `RETURNING`; `LAST_INSERT_ID()` is kept per connection, so another
/// client's insert cannot change it.
fn last_insert_id(connection: &mut Conn) -> Result<i64> {
    let id: u64 = diesel::select(diesel::dsl::sql::<
        diesel::sql_types::Unsigned<diesel::sql_types::BigInt>,
    >("LAST_INSERT_ID()"))
    .get_result(connection)?;
    i64::try_from(id).map_err(|_| StoreError::InvalidRow {
        row: format!("insert id {id}"),
        reason: "it is above the largest id quicksilver stores".to_owned(),
    })
}

pub(super) fn insert_task_row(connection: &mut Conn, row: &InsertTask<'_>) -> Result<i64> {
    diesel::insert_into(tasks::table)
        .values(row)
        .execute(connection)?;
    last_insert_id(connection)
}

pub(super) fn insert_execution_row(
    connection: &mut Conn,
    row: &InsertExecution<'_>,
) -> Result<i64> {
    ExecutionInsert::<false>(row).execute(connection)?;
    last_insert_id(connection)
}

/// Returns the plans of the due lookups of `queue`, one line per table
/// that MySQL reads, with the index it uses.
pub(super) fn explain_due(connection: &mut Conn, queue: &str) -> Result<Vec<String>> {
    #[derive(QueryableByName)]
    struct PlanRow {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        table: Option<String>,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        key: Option<String>,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        #[diesel(column_name = "type")]
        access: Option<String>,
    }

    use diesel::sql_types::{BigInt, Text};
    let now = Utc::now();
    let next = diesel::debug_query::<Db, _>(&next_due_query(queue, Some(1))).to_string();
    let due = diesel::debug_query::<Db, _>(&due_now_query(queue, now, Some(1))).to_string();
    let show = |rows: Vec<PlanRow>| {
        rows.into_iter().map(|row| {
            format!(
                "  {} via {} ({})",
                row.table.unwrap_or_default(),
                row.key.unwrap_or_else(|| "no index".to_owned()),
                row.access.unwrap_or_default()
            )
        })
    };
    let mut lines = vec!["next due:".to_owned()];
    let sql = next.split(" -- binds: ").next().unwrap_or_default();
    let rows: Vec<PlanRow> = diesel::sql_query(format!("EXPLAIN {sql}"))
        .bind::<Text, _>(queue)
        .bind::<BigInt, _>(1)
        .load(connection)?;
    lines.extend(show(rows));
    lines.push("due now:".to_owned());
    let sql = due.split(" -- binds: ").next().unwrap_or_default();
    let rows: Vec<PlanRow> = diesel::sql_query(format!("EXPLAIN {sql}"))
        .bind::<Text, _>(queue)
        .bind::<UtcTime, _>(to_db(now))
        .bind::<BigInt, _>(1)
        .load(connection)?;
    lines.extend(show(rows));
    Ok(lines)
}
