//! The SQLite backend: a file, bundled SQLite, WAL.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use diesel::connection::{
    Connection as _, DefaultLoadingMode, InstrumentationEvent, SimpleConnection,
};
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) type Conn = diesel::SqliteConnection;
pub(super) type Db = diesel::sqlite::Sqlite;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The queue condition of the due lookups. SQLite leaves `+?` unmarked for
/// recompiling, where `= ?` on an indexed column expires the cached
/// statement at every bind; the index is used either way.
pub(super) const QUEUE_IS_SQL: &str = "quicksilver_tasks.queue = +";

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

/// Waits for this process's turn to write to the database file: its
/// connections queue on a mutex, which wakes the next writer at once,
/// instead of racing for the file lock and sleeping in SQLite's busy
/// handler.
pub(super) fn writer_turn(inner: &StoreInner) -> Option<std::sync::MutexGuard<'_, ()>> {
    inner.writer.as_ref().map(|writer| {
        writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    })
}

/// Runs `work` in a `BEGIN IMMEDIATE` transaction, which holds SQLite's
/// write lock from its first statement.
pub(super) fn begin_write<T>(
    connection: &mut Conn,
    work: impl FnOnce(&mut Conn) -> Result<T>,
) -> Result<T> {
    connection.immediate_transaction(work)
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

/// Returns when the next task of `queue` falls due. Rows are read from
/// the statement until the first, instead of binding a `LIMIT`, which
/// would make SQLite compile the statement again at each use.
pub(super) fn first_due(connection: &mut Conn, queue: &str) -> Result<Option<StoredTime>> {
    Ok(next_due_query(queue, None)
        .load_iter::<StoredTime, DefaultLoadingMode>(connection)?
        .next()
        .transpose()?)
}

/// Returns up to `limit` tasks of `queue` due at `now`. The caller holds
/// SQLite's write lock, so no other runner can claim them meanwhile.
pub(super) fn load_due_now(
    connection: &mut Conn,
    queue: &str,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<TaskRow>> {
    Ok(due_now_query(queue, now, None)
        .load_iter::<TaskRow, DefaultLoadingMode>(connection)?
        .take(limit)
        .collect::<QueryResult<Vec<_>>>()?)
}

/// The next runs that a claim moves, grouped by the new next run.
#[derive(Debug, Default)]
pub(super) struct Moves(HashMap<StoredTime, Vec<i64>>);

/// Takes the tick of task `id` due at `due`. The claim holds SQLite's
/// write lock, so no other runner can take it: the move is only noted, and
/// [`apply_moves`] writes the moves of the whole claim together.
pub(super) fn take_tick(
    _connection: &mut Conn,
    moves: &mut Moves,
    id: i64,
    _due: StoredTime,
    next_run: StoredTime,
) -> Result<bool> {
    moves.0.entry(next_run).or_default().push(id);
    Ok(true)
}

/// Writes the noted moves. Tasks of one schedule claimed together share
/// their next run, so this is usually one statement.
pub(super) fn apply_moves(connection: &mut Conn, moves: Moves) -> Result<()> {
    for (next_run, ids) in moves.0 {
        diesel::update(tasks::table.filter(tasks::id.eq_any(&ids)))
            .set(tasks::next_run.eq(next_run))
            .execute(connection)?;
    }
    Ok(())
}

/// Returns SQLite's plans of the due lookups of `queue`.
pub(super) fn explain_due(connection: &mut Conn, queue: &str) -> Result<Vec<String>> {
    #[derive(QueryableByName)]
    struct PlanRow {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }

    use diesel::sql_types::Text;
    let now = Utc::now();
    let lookups = [
        ("next due", plain_sql(&next_due_query(queue, None))),
        ("due now", plain_sql(&due_now_query(queue, now, None))),
    ];
    let mut lines = Vec::new();
    for (name, sql) in lookups {
        let explain = diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}")).bind::<Text, _>(queue);
        let rows: Vec<PlanRow> = if name == "due now" {
            explain.bind::<UtcTime, _>(to_db(now)).load(connection)?
        } else {
            explain.load(connection)?
        };
        lines.push(format!("{name}:"));
        lines.extend(rows.into_iter().map(|row| format!("  {}", row.detail)));
    }
    Ok(lines)
}

/// Returns the SQL text of `query`, with `?` for each bound value.
pub(super) fn plain_sql(query: &impl QueryFragment<Db>) -> String {
    let shown = diesel::debug_query::<Db, _>(query).to_string();
    match shown.rsplit_once(" -- binds: ") {
        Some((sql, _)) => sql.to_owned(),
        None => shown,
    }
}

/// Prepares each new connection: pragmas, and a count of its statements.
#[derive(Debug)]
struct SqlitePragmas {
    statements: Arc<AtomicU64>,
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, connection: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        let statements = self.statements.clone();
        connection.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if matches!(event, InstrumentationEvent::StartQuery { .. }) {
                statements.fetch_add(1, Ordering::Relaxed);
            }
        });
        // WAL mode is stored in the database file, so it is set once at open.
        // Automatic checkpoints are off because they run inside a commit and
        // delay the claim that made it; `checkpoint_in_background` runs them instead.
        let pragmas = format!(
            "PRAGMA busy_timeout = {}; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA wal_autocheckpoint = 0;",
            BUSY_TIMEOUT.as_millis()
        );
        connection
            .batch_execute(&pragmas)
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

pub(super) fn open(url: &str) -> Result<Opened> {
    let path = sqlite_path(url)?;
    let display_url = path.display().to_string();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let problem = match std::fs::metadata(parent) {
            Ok(metadata) if metadata.is_dir() => None,
            Ok(_) => Some("is not a folder".to_owned()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Some("does not exist; create it or choose another path".to_owned())
            }
            Err(error) => Some(format!("cannot be read ({error})")),
        };
        if let Some(problem) = problem {
            return Err(StoreError::Open {
                url: display_url,
                reason: format!("the folder `{}` {problem}", parent.display()),
            });
        }
    }

    // A first connection and a read of the header fail at once on a file
    // that is not a database or cannot be opened, where the pool would
    // retry until its timeout.
    check_sqlite_file(&path).map_err(|reason| StoreError::Open {
        url: display_url.clone(),
        reason,
    })?;

    let statements = Arc::new(AtomicU64::new(0));
    let manager = ConnectionManager::<SqliteConnection>::new(path.to_string_lossy());
    let pool = Pool::builder()
        .max_size(4)
        .min_idle(Some(1))
        // A SQLite connection is a local file handle that cannot go
        // stale, so the `SELECT 1` check on each checkout is skipped.
        .test_on_check_out(false)
        .connection_timeout(Duration::from_secs(30))
        .connection_customizer(Box::new(SqlitePragmas {
            statements: statements.clone(),
        }))
        .build(manager)
        .map_err(|error| StoreError::Open {
            url: display_url.clone(),
            reason: format!("{error}; check that the file and its folder are writable"),
        })?;

    let mut connection = pool.get().map_err(|error| StoreError::Open {
        url: display_url.clone(),
        reason: error.to_string(),
    })?;
    connection
        .batch_execute("PRAGMA journal_mode = WAL;")
        .map_err(|error| StoreError::Open {
            url: display_url.clone(),
            reason: format!("cannot switch to WAL mode: {error}"),
        })?;
    // Holding the write lock while checking and applying migrations keeps
    // two processes that open a new database at once from both applying
    // them.
    connection
        .immediate_transaction(|connection| {
            connection
                .run_pending_migrations(MIGRATIONS)
                .map(drop)
                .map_err(diesel::result::Error::QueryBuilderError)
        })
        .map_err(|error| StoreError::Migration {
            url: display_url.clone(),
            reason: error.to_string(),
        })?;
    drop(connection);

    let path = path.canonicalize().unwrap_or(path);
    let writer = shared_writer_turn(&path);
    Ok(Opened {
        backend: Backend::Sqlite(pool),
        url: display_url,
        listen_url: String::new(),
        key_source: path.to_string_lossy().into_owned(),
        statements,
        writer: Some(writer),
    })
}

/// Copies the WAL back into the database file on a blocking thread,
/// without waiting for it. A passive checkpoint takes no lock that
/// writers or readers wait for. What it cannot copy yet, because a
/// reader still needs it, the next one copies.
pub(super) fn checkpoint_in_background(pool: &Pool<ConnectionManager<Conn>>) {
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let outcome = pool
            .get()
            .map_err(StoreError::Pool)
            .and_then(|mut connection| {
                Ok(connection.batch_execute("PRAGMA wal_checkpoint(PASSIVE);")?)
            });
        if let Err(error) = outcome {
            tracing::warn!(error = %crate::command::CauseChain(&error),
                "checkpointing the SQLite write-ahead log failed; the next checkpoint retries");
        }
    });
}

/// Opens `path` once and reads its schema version, and returns the reason,
/// with a fix, when that fails.
fn check_sqlite_file(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err("the path is a folder; give the path of a database file".to_owned());
    }
    let mut connection = SqliteConnection::establish(&path.to_string_lossy())
        .map_err(|error| format!("{error}; check that the folder is writable"))?;
    connection
        .batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA schema_version;",
            BUSY_TIMEOUT.as_millis()
        ))
        .map_err(|error| {
            let text = error.to_string();
            if text.contains("not a database") {
                format!(
                    "{text}: the file exists but is not a SQLite database; point \
                     {DATABASE_URL_VAR} at another file"
                )
            } else {
                format!("{text}; check that the file and its folder are readable and writable")
            }
        })
}

pub(super) fn sqlite_path(url: &str) -> Result<PathBuf> {
    let trimmed = url.trim();
    let scheme = trimmed.split_once("://").map(|(scheme, _)| scheme);
    let path = match scheme {
        Some("sqlite") => &trimmed["sqlite://".len()..],
        Some(_) => {
            return Err(StoreError::UnsupportedUrl {
                url: redact(trimmed),
                reason: "give a SQLite file path such as `quicksilver.sqlite3`".to_owned(),
            })
        }
        None => trimmed.strip_prefix("sqlite:").unwrap_or(trimmed),
    };
    let path = path.strip_prefix("file:").unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::Open {
            url: trimmed.to_owned(),
            reason: "a file path is required: runners and the CLI share the database, \
                     which an in-memory database cannot do"
                .to_owned(),
        });
    }
    Ok(Path::new(path).to_path_buf())
}

/// Returns the writer turn of the database file at `path`, shared by every
/// store of this process opened on it.
fn shared_writer_turn(path: &Path) -> Arc<Mutex<()>> {
    static TURNS: OnceLock<Mutex<HashMap<PathBuf, Weak<Mutex<()>>>>> = OnceLock::new();
    let mut turns = TURNS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    turns.retain(|_, turn| turn.strong_count() > 0);
    if let Some(turn) = turns.get(path).and_then(Weak::upgrade) {
        return turn;
    }
    let turn = Arc::new(Mutex::new(()));
    turns.insert(path.to_owned(), Arc::downgrade(&turn));
    turn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_resolve_to_paths() {
        assert_eq!(sqlite_path("a.sqlite3").unwrap(), Path::new("a.sqlite3"));
        assert_eq!(
            sqlite_path("sqlite:///tmp/a.db").unwrap(),
            Path::new("/tmp/a.db")
        );
        assert_eq!(sqlite_path("sqlite:b.db").unwrap(), Path::new("b.db"));
    }

    #[test]
    fn other_schemes_are_rejected_without_password() {
        let error = sqlite_path("oracle://app:hunter2@db/prod").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("oracle://app:***@db/prod"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn memory_database_is_rejected() {
        assert!(sqlite_path(":memory:").is_err());
    }
}
