//! The PostgreSQL backend, through libpq.

use std::future::Future as _;
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

/// Inserts `row` unless a lease of that name exists, and returns whether
/// it did. A failed insert would abort the transaction on PostgreSQL, so
/// the conflict is skipped instead of raised.
pub(super) fn insert_lease(connection: &mut Conn, row: &LeaseRow<'_>) -> Result<bool> {
    Ok(
        diesel::insert_into(super::schema::quicksilver_leases::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(connection)?
            == 1,
    )
}
include!("server.rs");

/// The channel on which changes to tasks are announced.
const CHANNEL: &str = "quicksilver_tasks";

/// The maximum wait between two attempts to connect the listener.
const MAX_LISTEN_RETRY: Duration = Duration::from_secs(30);

/// PostgreSQL's defaults suit the store: nothing to set.
fn prepare_connection(_connection: &mut Conn) -> QueryResult<()> {
    Ok(())
}

fn listen_url(url: &str) -> String {
    url.to_owned()
}

/// Announces a change to tasks on [`CHANNEL`], from a blocking thread,
/// without waiting. A lost announcement costs only latency: runners see
/// the change at their next check anyway.
pub(super) fn notify_in_background(pool: &Pool<ConnectionManager<Conn>>) {
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let sent = pool
            .get()
            .map_err(StoreError::Pool)
            .and_then(|mut connection| Ok(connection.batch_execute(&format!("NOTIFY {CHANNEL}"))?));
        if let Err(error) = sent {
            tracing::debug!(error = %crate::command::CauseChain(&error),
                "announcing a change to tasks failed; runners see it at their next check");
        }
    });
}

/// Listens on [`CHANNEL`] with a connection of its own and calls `wake`
/// for each announcement, reconnecting with a growing pause when the
/// connection breaks. Runs until dropped.
// NOTE: the listener connects without TLS. A server that requires TLS
// rejects it, and runners then see changes at their next check only.
pub(super) async fn listen(url: &str, wake: impl Fn()) {
    let mut failures = 0u32;
    loop {
        match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
            Ok((client, mut connection)) => {
                let statement = format!("LISTEN {CHANNEL}");
                let mut listening = Box::pin(client.batch_execute(&statement));
                let mut subscribed = false;
                let ended = loop {
                    let message = std::future::poll_fn(|cx| {
                        if !subscribed {
                            if let std::task::Poll::Ready(result) = listening.as_mut().poll(cx) {
                                subscribed = true;
                                if let Err(error) = result {
                                    return std::task::Poll::Ready(Some(Err(error)));
                                }
                            }
                        }
                        connection.poll_message(cx)
                    })
                    .await;
                    match message {
                        Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => {
                            failures = 0;
                            wake();
                        }
                        Some(Ok(_)) => {}
                        Some(Err(error)) => break Some(error),
                        None => break None,
                    }
                };
                // Changes made while the listener was away are seen now.
                wake();
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    match ended {
                        Some(error) => tracing::warn!(error = %error,
                            "the connection that listens for task changes broke; reconnecting"),
                        None => tracing::warn!(
                            "the connection that listens for task changes closed; reconnecting"
                        ),
                    }
                }
            }
            Err(error) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(error = %error, failures,
                        "cannot connect to listen for task changes; runners see changes of \
                         other processes at their next check until it works");
                }
            }
        }
        let pause = Duration::from_millis(250)
            .saturating_mul(2u32.saturating_pow(failures.min(8)))
            .min(MAX_LISTEN_RETRY);
        tokio::time::sleep(pause).await;
    }
}

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
    Ok(ExecutionInsert::<true>(row).get_result(connection)?)
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
