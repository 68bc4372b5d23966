//! The database behind tasks and executions.
//!
//! Everything the runner, the CLI and the built-in commands read or write
//! goes through [`Store`], so that a new backend changes this module alone.
//! Each call runs on tokio's blocking pool, never on a worker thread.

mod rows;
mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::connection::DefaultLoadingMode;
use diesel::connection::{Connection as _, InstrumentationEvent, SimpleConnection};
use diesel::expression::{AppearsOnTable, Expression, ValidGrouping};
use diesel::prelude::*;
use diesel::query_builder::QueryFragment;
use diesel::query_builder::QueryId;
use diesel::query_dsl::LoadQuery;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use tokio::sync::watch;

use self::rows::{
    encode_arguments, from_db, to_db, ExecutionRow, InsertExecution, InsertTask, TaskRow,
};
use self::schema::{quicksilver_executions as executions, quicksilver_tasks as tasks};
use crate::execution::{Execution, ExecutionFilter, Status};
use crate::task::{NewTask, Task, TaskChanges, TaskFilter};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// The environment variable that contains the database URL.
pub const DATABASE_URL_VAR: &str = "QUICKSILVER_DATABASE_URL";

/// The database file used when [`DATABASE_URL_VAR`] is not set.
pub const DEFAULT_DATABASE: &str = "quicksilver.sqlite3";

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Write transactions between two checkpoints of the WAL. An execution
/// writes about 8 pages in 2 transactions, so the log stays near 2 MB.
const CHECKPOINT_EVERY: u64 = 128;

/// The errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL names a backend this build does not support.
    #[error(
        "unsupported database URL `{url}`: this build of quicksilver stores tasks in SQLite; \
         give a file path such as `quicksilver.sqlite3` or `sqlite://path/to/file.sqlite3`"
    )]
    UnsupportedUrl {
        /// The URL, without credentials.
        url: String,
    },
    /// The database could not be opened or prepared.
    #[error("cannot open database `{url}`: {reason}")]
    Open {
        /// The URL, without credentials.
        url: String,
        /// The failure, with the fix where one is known.
        reason: String,
    },
    /// The embedded migrations could not be applied.
    #[error("cannot apply quicksilver's migrations to `{url}`: {reason}")]
    Migration {
        /// The URL, without credentials.
        url: String,
        /// What failed.
        reason: String,
    },
    /// No connection could be taken from the pool in time.
    #[error("no database connection available")]
    Pool(#[source] diesel::r2d2::PoolError),
    /// A query failed.
    #[error("database query failed")]
    Query(#[from] diesel::result::Error),
    /// The task does not exist.
    #[error("task {id} not found: list the tasks with `tasks` to find its id")]
    TaskNotFound {
        /// The missing id.
        id: i64,
    },
    /// The execution does not exist.
    #[error("execution {id} not found")]
    ExecutionNotFound {
        /// The missing id.
        id: i64,
    },
    /// A stored row cannot be read back.
    #[error("{row} cannot be read: {reason}")]
    InvalidRow {
        /// The row, as `task 12` or `execution 40`.
        row: String,
        /// The reason the row is unreadable.
        reason: String,
    },
    /// A task's fields are invalid.
    #[error("invalid task: {reason}")]
    InvalidTask {
        /// The reason the task is invalid, naming the value.
        reason: String,
    },
    /// The blocking thread that ran the query panicked or was cancelled.
    #[error("database worker stopped")]
    Worker(#[source] tokio::task::JoinError),
}

impl StoreError {
    /// Returns whether the error is the database being busy or unreachable,
    /// which a retry may cure, as opposed to a bad request.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Pool(_) | StoreError::Worker(_) => true,
            StoreError::Query(diesel::result::Error::DatabaseError(_, info)) => {
                let message = info.message();
                message.contains("locked") || message.contains("busy")
            }
            StoreError::Query(diesel::result::Error::BrokenTransactionManager) => true,
            _ => false,
        }
    }
}

type Result<T, E = StoreError> = std::result::Result<T, E>;
type Connection = PooledConnection<ConnectionManager<SqliteConnection>>;

/// The database of tasks and executions.
///
/// Cheap to clone: clones share one connection pool.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use quicksilver::{NewTask, Schedule, Store};
///
/// let folder = tempfile::tempdir()?;
/// let store = Store::open(folder.path().join("tasks.sqlite3").to_str().unwrap()).await?;
/// let task = store
///     .add_task(NewTask::new("clear_successful_executions", Schedule::every(900)?))
///     .await?;
/// assert_eq!(store.task(task.id).await?.queue, "default");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    pool: Pool<ConnectionManager<SqliteConnection>>,
    url: String,
    path: PathBuf,
    /// A counter bumped by every change to tasks made through this store.
    changes: watch::Sender<u64>,
    /// The SQL statements sent through the pool's connections.
    statements: Arc<AtomicU64>,
    /// This process's turn to write to the database file, shared by every
    /// store opened on it.
    writer: Arc<Mutex<()>>,
    /// Write transactions since the store opened.
    writes: AtomicU64,
    /// Execution ends waiting for the next write transaction.
    finishes: Mutex<FinishQueue>,
}

impl StoreInner {
    /// Waits for this process's turn to write to the database file.
    fn writer_turn(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn finishes(&self) -> std::sync::MutexGuard<'_, FinishQueue> {
        self.finishes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Execution ends queued for the next write, each with its ticket.
#[derive(Debug, Default)]
struct FinishQueue {
    pending: Vec<(u64, Finish)>,
    last_ticket: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.inner.url)
            .finish()
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
        // delay the claim that made it; `Store::write` checkpoints instead.
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

impl Store {
    /// Opens the store at `url` and applies the embedded migrations.
    ///
    /// `url` is a SQLite file path, `sqlite://PATH` or `file:PATH`; the file
    /// is created when missing.
    ///
    /// # Errors
    ///
    /// - [`StoreError::UnsupportedUrl`] for another kind of URL.
    /// - [`StoreError::Open`] when the file cannot be opened or created.
    /// - [`StoreError::Migration`] when the schema cannot be brought up to
    ///   date.
    pub async fn open(url: &str) -> Result<Store> {
        let url = url.to_owned();
        tokio::task::spawn_blocking(move || Store::open_blocking(&url))
            .await
            .map_err(StoreError::Worker)?
    }

    /// Opens the store named by `QUICKSILVER_DATABASE_URL`, or
    /// `quicksilver.sqlite3` in the current folder when it is not set.
    ///
    /// # Errors
    ///
    /// - As [`Store::open`].
    pub async fn open_from_env() -> Result<Store> {
        Store::open(&database_url_from_env()).await
    }

    fn open_blocking(url: &str) -> Result<Store> {
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
        let writer = writer_turn(&path);
        Ok(Store {
            inner: Arc::new(StoreInner {
                pool,
                url: display_url,
                path,
                changes: watch::Sender::new(0),
                statements,
                writer,
                writes: AtomicU64::new(0),
                finishes: Mutex::default(),
            }),
        })
    }

    /// Returns the database URL, without credentials.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Returns how many SQL statements this store has sent since it opened,
    /// counting those of every clone, for benchmarks and monitoring.
    pub fn statement_count(&self) -> u64 {
        self.inner.statements.load(Ordering::Relaxed)
    }

    /// Returns a short, stable key of this database, used to name lock
    /// files so that two databases on one machine never share a lock.
    pub fn key(&self) -> String {
        // FNV-1a: stable across Rust versions, unlike the std hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.inner.path.to_string_lossy().bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{hash:016x}")
    }

    /// Returns a receiver notified of each change to tasks made through this
    /// store or a clone of it. Changes made by other processes do not reach
    /// it, so runners pick them up at their next check.
    pub(crate) fn watch_changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    fn notify_change(&self) {
        self.inner
            .changes
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    /// Runs `work` in a write transaction on the blocking pool.
    ///
    /// The transaction begins with `BEGIN IMMEDIATE`, so it holds SQLite's
    /// write lock from its first statement, and it waits for this process's
    /// writer turn first: connections of one process queue on a mutex,
    /// which wakes the next writer at once, instead of racing for the file
    /// lock and sleeping in SQLite's busy handler. Every
    /// [`CHECKPOINT_EVERY`] write transactions, a checkpoint of the WAL
    /// runs on another pooled connection, outside the writer turn.
    async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteConnection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let result = self
            .run(move |connection| write_in_turn(&inner, connection, work))
            .await;
        self.count_write();
        result
    }

    /// Counts a write transaction, and starts a checkpoint every
    /// [`CHECKPOINT_EVERY`] of them.
    fn count_write(&self) {
        let writes = self.inner.writes.fetch_add(1, Ordering::Relaxed) + 1;
        if writes % CHECKPOINT_EVERY == 0 {
            self.checkpoint_in_background();
        }
    }

    /// Copies the WAL back into the database file on a blocking thread,
    /// without waiting for it. A passive checkpoint takes no lock that
    /// writers or readers wait for; what it cannot copy yet, because a
    /// reader still needs it, the next one copies.
    fn checkpoint_in_background(&self) {
        let pool = self.inner.pool.clone();
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

    async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let pool = self.inner.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = pool.get().map_err(StoreError::Pool)?;
            work(&mut connection)
        })
        .await
        .map_err(StoreError::Worker)?
    }

    /// Returns the tasks that match `filter`, ordered by queue and next run.
    ///
    /// # Errors
    ///
    /// - [`StoreError::Query`] when the database fails.
    pub async fn tasks(&self, filter: TaskFilter) -> Result<Vec<Task>> {
        self.run(move |connection| {
            let mut query = tasks::table.into_boxed();
            if let Some(queue) = filter.queue {
                query = query.filter(tasks::queue.eq(queue));
            }
            if let Some(command) = filter.command {
                query = query.filter(tasks::command.eq(command));
            }
            if let Some(paused) = filter.paused {
                query = query.filter(tasks::paused.eq(paused));
            }
            let rows = query
                .order((tasks::queue, tasks::next_run, tasks::id))
                .select(TaskRow::as_select())
                .load(connection)?;
            Ok(rows.into_iter().map(Task::from).collect())
        })
        .await
    }

    /// Returns the task with `id`.
    ///
    /// # Errors
    ///
    /// - [`StoreError::TaskNotFound`] when there is none.
    /// - [`StoreError::Query`] when the database fails.
    pub async fn task(&self, id: i64) -> Result<Task> {
        self.run(move |connection| load_task(connection, id)).await
    }

    /// Creates a task and returns it.
    ///
    /// # Errors
    ///
    /// - [`StoreError::InvalidTask`] for an empty command or queue, or a max
    ///   duration of zero.
    /// - [`StoreError::Query`] when the database fails, including a second
    ///   task with the same declaration id.
    pub async fn add_task(&self, task: NewTask) -> Result<Task> {
        validate_new_task(&task)?;
        let now = Utc::now();
        let created = self
            .write(move |connection| insert_task(connection, &task, now))
            .await?;
        self.notify_change();
        Ok(created)
    }

    /// Applies `changes` to the task with `id` and returns the result.
    ///
    /// A new schedule moves the next run to the schedule's first tick from
    /// now, unless `changes` sets the next run as well.
    ///
    /// # Errors
    ///
    /// - [`StoreError::TaskNotFound`] when there is no such task.
    /// - [`StoreError::InvalidTask`] for an empty command or queue, or a max
    ///   duration of zero.
    /// - [`StoreError::Query`] when the database fails.
    pub async fn update_task(&self, id: i64, changes: TaskChanges) -> Result<Task> {
        validate_changes(&changes)?;
        let now = Utc::now();
        let updated = self
            .write(move |connection| {
                apply_changes(connection, id, changes, now)?;
                load_task(connection, id)
            })
            .await?;
        self.notify_change();
        Ok(updated)
    }

    /// Pauses the task with `id`: runners skip it until it is resumed.
    ///
    /// # Errors
    ///
    /// - As [`Store::update_task`].
    pub async fn pause_task(&self, id: i64) -> Result<Task> {
        let changes = TaskChanges {
            paused: Some(true),
            ..TaskChanges::default()
        };
        self.update_task(id, changes).await
    }

    /// Resumes the task with `id`.
    ///
    /// A task resumed after its next run passed runs once at once, and then
    /// on its schedule.
    ///
    /// # Errors
    ///
    /// - As [`Store::update_task`].
    pub async fn resume_task(&self, id: i64) -> Result<Task> {
        let changes = TaskChanges {
            paused: Some(false),
            ..TaskChanges::default()
        };
        self.update_task(id, changes).await
    }

    /// Makes the task with `id` due now, so its runner starts it as soon as
    /// a lane is free and no run of it is ongoing.
    ///
    /// # Errors
    ///
    /// - As [`Store::update_task`].
    pub async fn run_task_now(&self, id: i64) -> Result<Task> {
        let changes = TaskChanges {
            next_run: Some(Utc::now()),
            ..TaskChanges::default()
        };
        self.update_task(id, changes).await
    }

    /// Deletes the task with `id`. Its executions stay, detached from it.
    ///
    /// # Errors
    ///
    /// - [`StoreError::TaskNotFound`] when there is no such task.
    /// - [`StoreError::Query`] when the database fails.
    pub async fn remove_task(&self, id: i64) -> Result<()> {
        self.write(move |connection| {
            diesel::update(executions::table.filter(executions::task_id.eq(id)))
                .set(executions::task_id.eq(None::<i64>))
                .execute(connection)?;
            let deleted = diesel::delete(tasks::table.find(id)).execute(connection)?;
            if deleted == 0 {
                return Err(StoreError::TaskNotFound { id });
            }
            Ok(())
        })
        .await?;
        self.notify_change();
        Ok(())
    }

    /// Returns the declaration ids of the installed tasks.
    ///
    /// # Errors
    ///
    /// - [`StoreError::Query`] when the database fails.
    pub async fn installed_declarations(&self) -> Result<Vec<String>> {
        self.run(|connection| {
            Ok(tasks::table
                .filter(tasks::declaration.is_not_null())
                .select(tasks::declaration.assume_not_null())
                .order(tasks::declaration)
                .load(connection)?)
        })
        .await
    }

    /// Inserts each task whose declaration id is not installed yet and
    /// returns the inserted tasks. Installed tasks are left as they are,
    /// edited or not.
    ///
    /// # Errors
    ///
    /// - [`StoreError::InvalidTask`] when a task is invalid; nothing is
    ///   inserted then.
    /// - [`StoreError::Query`] when the database fails; nothing is inserted
    ///   then.
    pub async fn install(&self, declared: Vec<NewTask>) -> Result<Vec<Task>> {
        for task in &declared {
            validate_new_task(task)?;
        }
        let now = Utc::now();
        let inserted = self
            .write(move |connection| {
                let mut inserted = Vec::new();
                for task in &declared {
                    let exists = match &task.declaration {
                        Some(id) => {
                            tasks::table
                                .filter(tasks::declaration.eq(id))
                                .count()
                                .get_result::<i64>(connection)?
                                > 0
                        }
                        None => false,
                    };
                    if !exists {
                        inserted.push(insert_task(connection, task, now)?);
                    }
                }
                Ok(inserted)
            })
            .await?;
        if !inserted.is_empty() {
            self.notify_change();
        }
        Ok(inserted)
    }

    /// Returns the executions that match `filter`, newest first.
    ///
    /// # Errors
    ///
    /// - [`StoreError::Query`] when the database fails.
    /// - [`StoreError::InvalidRow`] when a row cannot be read.
    pub async fn executions(&self, filter: ExecutionFilter) -> Result<Vec<Execution>> {
        self.run(move |connection| {
            let mut query = executions::table.into_boxed();
            if let Some(status) = filter.status {
                query = query.filter(executions::status.eq(status.as_str()));
            }
            if let Some(task_id) = filter.task_id {
                query = query.filter(executions::task_id.eq(task_id));
            }
            if let Some(command) = filter.command {
                query = query.filter(executions::command.eq(command));
            }
            if let Some(queue) = filter.queue {
                query = query.filter(executions::queue.eq(queue));
            }
            query
                .order(executions::id.desc())
                .limit(filter.limit.max(0))
                .select(ExecutionRow::as_select())
                .load(connection)?
                .into_iter()
                .map(Execution::try_from)
                .collect()
        })
        .await
    }

    /// Returns the execution with `id`.
    ///
    /// # Errors
    ///
    /// - [`StoreError::ExecutionNotFound`] when there is none.
    /// - [`StoreError::Query`] when the database fails.
    pub async fn execution(&self, id: i64) -> Result<Execution> {
        self.run(move |connection| {
            executions::table
                .find(id)
                .select(ExecutionRow::as_select())
                .first(connection)
                .optional()?
                .ok_or(StoreError::ExecutionNotFound { id })
                .and_then(Execution::try_from)
        })
        .await
    }

    /// Deletes the executions with `status` that ended before `ended_before`
    /// and returns how many were deleted.
    ///
    /// # Errors
    ///
    /// - [`StoreError::Query`] when the database fails.
    pub async fn delete_executions(
        &self,
        status: Status,
        ended_before: DateTime<Utc>,
    ) -> Result<usize> {
        self.run(move |connection| {
            Ok(diesel::delete(
                executions::table
                    .filter(executions::status.eq(status.as_str()))
                    .filter(executions::ended.lt(to_db(ended_before))),
            )
            .execute(connection)?)
        })
        .await
    }

    /// Deletes, or marks `killed` with `reason` in their output, the
    /// executions still `ongoing` that started before `started_before`, and
    /// returns their ids.
    ///
    /// # Errors
    ///
    /// - [`StoreError::Query`] when the database fails.
    pub async fn clear_ongoing(
        &self,
        started_before: DateTime<Utc>,
        delete: bool,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>> {
        self.write(move |connection| {
            let stuck = executions::table
                .filter(executions::status.eq(Status::Ongoing.as_str()))
                .filter(executions::started.lt(to_db(started_before)))
                .select(executions::id)
                .load::<i64>(connection)?;
            if delete {
                diesel::delete(executions::table.filter(executions::id.eq_any(&stuck)))
                    .execute(connection)?;
            } else {
                mark_killed(connection, &stuck, &reason, now)?;
            }
            Ok(stuck)
        })
        .await
    }

    /// Claims up to `limit` due tasks of `queue` and records an `ongoing`
    /// execution for each, in one transaction, and returns them with the
    /// next time a task of the queue falls due. `expected` says that a task
    /// is known to be due, which skips the read that checks it.
    ///
    /// A task is due when it is not paused, its next run is at or before
    /// `now`, and no run of it is ongoing. Its next run moves to the first
    /// tick of its schedule after `now`, so missed ticks coalesce into this
    /// one run. A task whose schedule cannot be read is paused, with an
    /// `error` execution that gives the reason.
    pub(crate) async fn claim_due(
        &self,
        queue: &str,
        now: DateTime<Utc>,
        limit: usize,
        runner: &str,
        expected: bool,
    ) -> Result<ClaimBatch> {
        let queue = queue.to_owned();
        let runner = runner.to_owned();
        let inner = self.inner.clone();
        let (batch, moved) = self
            .run(move |connection| {
                // Most wake-ups that were not expected find nothing due:
                // check them with a read first, so that an idle runner never
                // takes the write lock.
                let next_due = if expected && limit > 0 {
                    Some(now)
                } else {
                    next_due_at(connection, &queue)?
                };
                if limit == 0 || next_due.is_none_or(|due| due > now) {
                    let batch = ClaimBatch {
                        claims: Vec::new(),
                        next_due,
                    };
                    return Ok((batch, false));
                }
                let _turn = inner.writer_turn();
                let (moved, batch) =
                    write_with_queued_finishes(&inner, connection, |connection| {
                        let due = due_now_query(&queue, now)
                            .load_iter::<TaskRow, DefaultLoadingMode>(connection)?
                            .take(limit)
                            .collect::<QueryResult<Vec<_>>>()?;
                        let claims = claim_rows(connection, due, now, &runner)?;
                        let next_due = next_due_at(connection, &queue)?;
                        Ok(ClaimBatch { claims, next_due })
                    })?;
                Ok((batch, moved))
            })
            .await?;
        if !batch.claims.is_empty() {
            self.count_write();
        }
        if moved {
            self.notify_change();
        }
        Ok(batch)
    }

    /// Returns SQLite's query plans of the two lookups that the runner of
    /// `queue` sends at every check: when the next task falls due, and
    /// which tasks are due now. Each line is one step of a plan, headed by
    /// the lookup it belongs to.
    ///
    /// Both should search the `quicksilver_tasks_queue_next_run` index,
    /// which keeps a check cheap however many tasks the queue holds.
    ///
    /// # Errors
    ///
    /// - [`StoreError::Query`] when the database fails.
    pub async fn explain_due_queries(&self, queue: &str) -> Result<Vec<String>> {
        #[derive(QueryableByName)]
        struct PlanRow {
            #[diesel(sql_type = diesel::sql_types::Text)]
            detail: String,
        }

        let queue = queue.to_owned();
        self.run(move |connection| {
            let now = Utc::now();
            let lookups = [
                ("next due", plain_sql(&next_due_query(&queue))),
                ("due now", plain_sql(&due_now_query(&queue, now))),
            ];
            let mut lines = Vec::new();
            for (name, sql) in lookups {
                use diesel::sql_types::{Text, Timestamp};
                let explain =
                    diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}")).bind::<Text, _>(&queue);
                let rows: Vec<PlanRow> = if name == "due now" {
                    explain.bind::<Timestamp, _>(to_db(now)).load(connection)?
                } else {
                    explain.load(connection)?
                };
                lines.push(format!("{name}:"));
                lines.extend(rows.into_iter().map(|row| format!("  {}", row.detail)));
            }
            Ok(lines)
        })
        .await
    }

    /// Records the start of a foreground run of `command` and returns the
    /// execution id.
    pub(crate) async fn start_foreground(
        &self,
        command: &str,
        arguments: &[String],
        runner: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let command = command.to_owned();
        let arguments = encode_arguments(arguments);
        let runner = runner.to_owned();
        self.run(move |connection| {
            let row = InsertExecution {
                task_id: None,
                command: &command,
                arguments,
                queue: None,
                status: Status::Ongoing.as_str(),
                due_at: None,
                started: Some(to_db(now)),
                runner: Some(&runner),
            };
            Ok(diesel::insert_into(executions::table)
                .values(&row)
                .returning(executions::id)
                .get_result(connection)?)
        })
        .await
    }

    /// Queues the end of an execution for the next write transaction of
    /// this store, and returns its ticket for [`Store::flush_finish`].
    ///
    /// Queued ends are written by whichever write comes first: another
    /// end's flush or the runner's next claim. When many executions end
    /// together, one transaction records them all instead of one each.
    pub(crate) fn queue_finish(&self, finish: Finish) -> u64 {
        let mut queue = self.inner.finishes();
        queue.last_ticket += 1;
        let ticket = queue.last_ticket;
        queue.pending.push((ticket, finish));
        ticket
    }

    /// Returns once the end queued under `ticket` is written, writing it
    /// and every other queued end in one transaction unless another write
    /// took it already. On an error the ends stay queued, so calling it
    /// again retries.
    pub(crate) async fn flush_finish(&self, ticket: u64) -> Result<()> {
        let inner = self.inner.clone();
        let (wrote, moved) = self
            .run(move |connection| {
                let _turn = inner.writer_turn();
                // Under the writer turn no write is under way, so an end
                // that is no longer queued is written.
                let queued = inner.finishes().pending.iter().any(|(t, _)| *t == ticket);
                if !queued {
                    return Ok((false, false));
                }
                let (moved, ()) = write_with_queued_finishes(&inner, connection, |_| Ok(()))?;
                Ok((true, moved))
            })
            .await?;
        if wrote {
            self.count_write();
        }
        if moved {
            self.notify_change();
        }
        Ok(())
    }

    /// Marks the `ongoing` executions of `queue` as `killed`, appending
    /// `reason` to their output, except those whose runner `is_alive`
    /// accepts. Returns the killed ids and the spared ones with their runner.
    pub(crate) async fn kill_ongoing(
        &self,
        queue: &str,
        reason: String,
        now: DateTime<Utc>,
        is_alive: impl Fn(&str) -> bool + Send + 'static,
    ) -> Result<(Vec<i64>, Vec<(i64, String)>)> {
        let queue = queue.to_owned();
        self.write(move |connection| {
            let ongoing = executions::table
                .filter(executions::queue.eq(&queue))
                .filter(executions::status.eq(Status::Ongoing.as_str()))
                .select((executions::id, executions::runner))
                .load::<(i64, Option<String>)>(connection)?;
            let mut orphans = Vec::new();
            let mut spared = Vec::new();
            for (id, runner) in ongoing {
                match runner {
                    Some(runner) if is_alive(&runner) => spared.push((id, runner)),
                    _ => orphans.push(id),
                }
            }
            mark_killed(connection, &orphans, &reason, now)?;
            Ok((orphans, spared))
        })
        .await
    }

    /// Moves the next run of every task of `queue` by `delta`, after the
    /// wall clock jumped by the same amount. Cron tasks move to their first
    /// tick after `now` instead, since they follow the wall clock.
    pub(crate) async fn shift_next_runs(
        &self,
        queue: &str,
        delta: TimeDelta,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let queue = queue.to_owned();
        self.write(move |connection| {
            let rows = tasks::table
                .filter(tasks::queue.eq(&queue))
                .select(TaskRow::as_select())
                .load(connection)?;
            let count = rows.len();
            for row in rows {
                let next_run = from_db(row.next_run);
                let moved = match (&row.cron, row.repeat_interval) {
                    (Some(_), _) => Task::from(row.clone())
                        .schedule()
                        .ok()
                        .map(|schedule| schedule.first_run_at(now))
                        .unwrap_or(next_run),
                    _ => next_run + delta,
                };
                diesel::update(tasks::table.find(row.id))
                    .set(tasks::next_run.eq(to_db(moved)))
                    .execute(connection)?;
            }
            Ok(count)
        })
        .await
    }
}

/// A batch of claimed executions and the next due time after it.
#[derive(Debug)]
pub(crate) struct ClaimBatch {
    pub(crate) claims: Vec<Claim>,
    pub(crate) next_due: Option<DateTime<Utc>>,
}

/// One claimed run: the task as it was when claimed, and its execution.
#[derive(Debug)]
pub(crate) struct Claim {
    pub(crate) execution_id: i64,
    pub(crate) task: Task,
    pub(crate) due_at: DateTime<Utc>,
    /// Set when the task could not be run at all; the execution is already
    /// recorded as `error` with this text.
    pub(crate) rejected: Option<String>,
}

/// The end of an execution, as the runner reports it.
#[derive(Debug, Clone)]
pub(crate) struct Finish {
    pub(crate) execution_id: i64,
    pub(crate) task_id: Option<i64>,
    pub(crate) status: Status,
    /// When the command itself started, after its lock was taken; the
    /// claim's start time stays when the command never started.
    pub(crate) started: Option<DateTime<Utc>>,
    pub(crate) ended: DateTime<Utc>,
    pub(crate) runtime: Duration,
    pub(crate) output: String,
    pub(crate) next_run: Option<DateTime<Utc>>,
}

/// Runs `work` in a `BEGIN IMMEDIATE` transaction once it is this
/// connection's turn to write.
fn write_in_turn<T>(
    inner: &StoreInner,
    connection: &mut SqliteConnection,
    work: impl FnOnce(&mut SqliteConnection) -> Result<T>,
) -> Result<T> {
    let _turn = inner.writer_turn();
    connection.immediate_transaction(work)
}

/// Runs `work` in a `BEGIN IMMEDIATE` transaction that first records every
/// queued execution end, and returns whether one of them moved a task's
/// next run. The caller holds the writer turn. When the transaction fails,
/// the ends go back to the queue.
fn write_with_queued_finishes<T>(
    inner: &StoreInner,
    connection: &mut SqliteConnection,
    work: impl FnOnce(&mut SqliteConnection) -> Result<T>,
) -> Result<(bool, T)> {
    let batch = std::mem::take(&mut inner.finishes().pending);
    let outcome = connection.immediate_transaction(|connection| {
        for (_, finish) in &batch {
            write_finish(connection, finish)?;
        }
        work(connection)
    });
    match outcome {
        Ok(value) => {
            let moved = batch.iter().any(|(_, finish)| finish.next_run.is_some());
            Ok((moved, value))
        }
        Err(error) => {
            let mut queue = inner.finishes();
            let newer = std::mem::take(&mut queue.pending);
            queue.pending = batch;
            queue.pending.extend(newer);
            Err(error)
        }
    }
}

/// Writes the end of one execution, and the next run its command chose.
fn write_finish(connection: &mut SqliteConnection, finish: &Finish) -> Result<()> {
    if let Some(started) = finish.started {
        diesel::update(executions::table.find(finish.execution_id))
            .set(executions::started.eq(to_db(started)))
            .execute(connection)?;
    }
    diesel::update(executions::table.find(finish.execution_id))
        .set((
            executions::status.eq(finish.status.as_str()),
            executions::ended.eq(to_db(finish.ended)),
            executions::runtime_seconds.eq(finish.runtime.as_secs_f64()),
            executions::output.eq(&finish.output),
        ))
        .execute(connection)?;
    if let (Some(task_id), Some(next_run)) = (finish.task_id, finish.next_run) {
        diesel::update(tasks::table.find(task_id))
            .set((
                tasks::next_run.eq(to_db(next_run)),
                tasks::updated_at.eq(to_db(finish.ended)),
            ))
            .execute(connection)?;
    }
    Ok(())
}

/// Returns the writer turn of the database file at `path`, shared by every
/// store of this process opened on it.
fn writer_turn(path: &Path) -> Arc<Mutex<()>> {
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

/// Returns the database URL from `QUICKSILVER_DATABASE_URL`, or the default
/// SQLite file.
pub fn database_url_from_env() -> String {
    std::env::var(DATABASE_URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_DATABASE.to_owned())
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

fn sqlite_path(url: &str) -> Result<PathBuf> {
    let trimmed = url.trim();
    let scheme = trimmed.split_once("://").map(|(scheme, _)| scheme);
    let path = match scheme {
        Some("sqlite") => &trimmed["sqlite://".len()..],
        Some(_) => {
            return Err(StoreError::UnsupportedUrl {
                url: redact(trimmed),
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

/// Hides the password of a URL such as `postgres://user:secret@host/db`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

fn validate_new_task(task: &NewTask) -> Result<()> {
    validate_fields(
        Some(&task.command),
        Some(&task.queue),
        task.max_duration.as_ref(),
    )
}

fn validate_changes(changes: &TaskChanges) -> Result<()> {
    validate_fields(
        changes.command.as_ref(),
        changes.queue.as_ref(),
        changes.max_duration.as_ref().and_then(Option::as_ref),
    )
}

fn validate_fields(
    command: Option<&String>,
    queue: Option<&String>,
    max_duration: Option<&Duration>,
) -> Result<()> {
    if command.is_some_and(|command| command.trim().is_empty()) {
        return Err(StoreError::InvalidTask {
            reason: "the command name is empty".to_owned(),
        });
    }
    if queue.is_some_and(|queue| queue.trim().is_empty()) {
        return Err(StoreError::InvalidTask {
            reason: "the queue name is empty; use `default` or another name".to_owned(),
        });
    }
    if max_duration.is_some_and(|duration| duration.as_secs() > 315_360_000) {
        return Err(StoreError::InvalidTask {
            reason: "a max duration above ten years (315360000 seconds) is not supported; \
                     remove it to let runs go on without a limit"
                .to_owned(),
        });
    }
    if max_duration.is_some_and(|duration| duration.as_secs() == 0) {
        return Err(StoreError::InvalidTask {
            reason: "a max duration under 1 second would kill every run; remove it or use at \
                     least 1 second"
                .to_owned(),
        });
    }
    Ok(())
}

fn load_task(connection: &mut SqliteConnection, id: i64) -> Result<Task> {
    tasks::table
        .find(id)
        .select(TaskRow::as_select())
        .first(connection)
        .optional()?
        .map(Task::from)
        .ok_or(StoreError::TaskNotFound { id })
}

fn insert_task(
    connection: &mut SqliteConnection,
    task: &NewTask,
    now: DateTime<Utc>,
) -> Result<Task> {
    let (repeat_interval, cron, time_zone) = task.schedule.to_parts();
    let next_run = task
        .next_run
        .unwrap_or_else(|| task.schedule.first_run_at(now));
    let row = InsertTask {
        command: task.command.trim(),
        arguments: encode_arguments(&task.arguments),
        queue: task.queue.trim(),
        repeat_interval,
        cron,
        time_zone,
        max_duration: task.max_duration.map(duration_seconds),
        next_run: to_db(next_run),
        paused: task.paused,
        declaration: task.declaration.as_deref(),
        created_at: to_db(now),
        updated_at: to_db(now),
    };
    let id: i64 = diesel::insert_into(tasks::table)
        .values(&row)
        .returning(tasks::id)
        .get_result(connection)?;
    load_task(connection, id)
}

fn apply_changes(
    connection: &mut SqliteConnection,
    id: i64,
    changes: TaskChanges,
    now: DateTime<Utc>,
) -> Result<()> {
    let current = load_task(connection, id)?;
    let target = tasks::table.find(id);

    if let Some(command) = &changes.command {
        diesel::update(target)
            .set(tasks::command.eq(command.trim()))
            .execute(connection)?;
    }
    if let Some(arguments) = &changes.arguments {
        diesel::update(target)
            .set(tasks::arguments.eq(encode_arguments(arguments)))
            .execute(connection)?;
    }
    if let Some(queue) = &changes.queue {
        diesel::update(target)
            .set(tasks::queue.eq(queue.trim()))
            .execute(connection)?;
    }
    if let Some(schedule) = &changes.schedule {
        let (repeat_interval, cron, time_zone) = schedule.to_parts();
        diesel::update(target)
            .set((
                tasks::repeat_interval.eq(repeat_interval),
                tasks::cron.eq(cron),
                tasks::time_zone.eq(time_zone),
            ))
            .execute(connection)?;
        if changes.next_run.is_none() && current.schedule().ok().as_ref() != Some(schedule) {
            diesel::update(target)
                .set(tasks::next_run.eq(to_db(schedule.first_run_at(now))))
                .execute(connection)?;
        }
    }
    if let Some(max_duration) = changes.max_duration {
        diesel::update(target)
            .set(tasks::max_duration.eq(max_duration.map(duration_seconds)))
            .execute(connection)?;
    }
    if let Some(next_run) = changes.next_run {
        diesel::update(target)
            .set(tasks::next_run.eq(to_db(next_run)))
            .execute(connection)?;
    }
    if let Some(postponed) = changes.alerts_postponed_until {
        diesel::update(target)
            .set(tasks::alerts_postponed_until.eq(postponed.map(to_db)))
            .execute(connection)?;
    }
    if let Some(paused) = changes.paused {
        diesel::update(target)
            .set(tasks::paused.eq(paused))
            .execute(connection)?;
    }
    diesel::update(target)
        .set(tasks::updated_at.eq(to_db(now)))
        .execute(connection)?;
    Ok(())
}

fn duration_seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// Selects the tasks of `queue` that are not paused and have no ongoing run.
///
/// The runner sends these lookups at every check, so they are written for
/// SQLite's statement cache. SQLite marks a statement for compiling again
/// when a value is bound to a parameter compared with `=` to an integer
/// column or given to `LIMIT`, and diesel resets the bindings after each
/// use, which expires such a statement: every use would compile it again,
/// which measured at half the CPU of an execution. So constants are written
/// into the SQL, the queue is bound as `+?`, which SQLite leaves unmarked
/// and which still uses the index, and callers stop reading rows instead of
/// binding a `LIMIT`.
fn due_tasks(queue: &str) -> tasks::BoxedQuery<'_, diesel::sqlite::Sqlite> {
    let ongoing = executions::table
        .filter(executions::task_id.eq(tasks::id.nullable()))
        .filter(Condition(ONGOING_STATUS_SQL));
    tasks::table
        .filter(QueueIs(queue))
        .filter(Condition("quicksilver_tasks.paused = 0"))
        .filter(diesel::dsl::not(diesel::dsl::exists(ongoing)))
        .into_boxed()
}

/// The ongoing-status condition of [`due_tasks`], with the status spelled
/// as [`Status::Ongoing`] stores it.
const ONGOING_STATUS_SQL: &str = "quicksilver_executions.status = 'ongoing'";

/// A condition written as fixed SQL. Unlike `diesel::dsl::sql`, it leaves
/// the statement in diesel's cache.
#[derive(Debug, Clone, Copy)]
struct Condition(&'static str);

/// The condition that a task belongs to a queue, with the queue bound as
/// `+?` (see [`due_tasks`]).
#[derive(Debug, Clone, Copy)]
struct QueueIs<'a>(&'a str);

impl Expression for Condition {
    type SqlType = diesel::sql_types::Bool;
}

impl Expression for QueueIs<'_> {
    type SqlType = diesel::sql_types::Bool;
}

impl<QS> AppearsOnTable<QS> for Condition {}

impl<QS> AppearsOnTable<QS> for QueueIs<'_> {}

impl<GB> ValidGrouping<GB> for Condition {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl<GB> ValidGrouping<GB> for QueueIs<'_> {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl QueryId for Condition {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryId for QueueIs<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<diesel::sqlite::Sqlite> for Condition {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
    ) -> QueryResult<()> {
        out.push_sql(self.0);
        Ok(())
    }
}

impl QueryFragment<diesel::sqlite::Sqlite> for QueueIs<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
    ) -> QueryResult<()> {
        out.push_sql("quicksilver_tasks.queue = +");
        out.push_bind_param::<diesel::sql_types::Text, _>(self.0)
    }
}

/// Returns the SQL text of `query`, with `?` for each bound value.
fn plain_sql(query: &impl QueryFragment<diesel::sqlite::Sqlite>) -> String {
    let shown = diesel::debug_query::<diesel::sqlite::Sqlite, _>(query).to_string();
    match shown.rsplit_once(" -- binds: ") {
        Some((sql, _)) => sql.to_owned(),
        None => shown,
    }
}

/// The query that lists the tasks of `queue` in the order they fall due,
/// read up to the first row to find when the next one falls due.
fn next_due_query(
    queue: &str,
) -> impl LoadQuery<'_, SqliteConnection, chrono::NaiveDateTime>
       + QueryFragment<diesel::sqlite::Sqlite>
       + '_ {
    // Ordered rather than MIN, so that SQLite walks the index in next-run
    // order and stops at the first task without an ongoing run, instead of
    // reading every task of the queue.
    due_tasks(queue)
        .order(tasks::next_run)
        .select(tasks::next_run)
}

/// The query that lists the tasks of `queue` due at `now`, read up to the
/// number of free lanes.
fn due_now_query(
    queue: &str,
    now: DateTime<Utc>,
) -> impl LoadQuery<'_, SqliteConnection, TaskRow> + QueryFragment<diesel::sqlite::Sqlite> + '_ {
    due_tasks(queue)
        .filter(tasks::next_run.le(to_db(now)))
        .order((tasks::next_run, tasks::id))
        .select(TaskRow::as_select())
}

fn next_due_at(connection: &mut SqliteConnection, queue: &str) -> Result<Option<DateTime<Utc>>> {
    let next = next_due_query(queue)
        .load_iter::<chrono::NaiveDateTime, DefaultLoadingMode>(connection)?
        .next()
        .transpose()?;
    Ok(next.map(from_db))
}

/// Claims the due tasks `rows`: records an `ongoing` execution for each
/// and moves each task's next run to its schedule's next tick.
fn claim_rows(
    connection: &mut SqliteConnection,
    rows: Vec<TaskRow>,
    now: DateTime<Utc>,
    runner: &str,
) -> Result<Vec<Claim>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let tasks: Vec<Task> = rows.into_iter().map(Task::from).collect();
    let inserts: Vec<InsertExecution<'_>> = tasks
        .iter()
        .map(|task| InsertExecution {
            task_id: Some(task.id),
            command: &task.command,
            arguments: encode_arguments(&task.arguments),
            queue: Some(&task.queue),
            status: Status::Ongoing.as_str(),
            due_at: Some(to_db(task.next_run)),
            started: Some(to_db(now)),
            runner: Some(runner),
        })
        .collect();
    // One row a statement: diesel caches the prepared single-row insert,
    // where a many-row one would be compiled anew for each batch size,
    // which measured slower.
    let mut ids = Vec::with_capacity(inserts.len());
    for insert in &inserts {
        let id: i64 = diesel::insert_into(executions::table)
            .values(insert)
            .returning(executions::id)
            .get_result(connection)?;
        ids.push(id);
    }
    drop(inserts);

    let mut claims = Vec::with_capacity(tasks.len());
    let mut moves: HashMap<chrono::NaiveDateTime, Vec<i64>> = HashMap::new();
    for (task, execution_id) in tasks.into_iter().zip(ids) {
        let due_at = task.next_run;
        let rejected = match task.schedule() {
            Ok(schedule) => {
                let next_run = to_db(schedule.next_after(due_at, now));
                moves.entry(next_run).or_default().push(task.id);
                None
            }
            Err(error) => Some(reject_task(connection, &task, execution_id, &error, now)?),
        };
        claims.push(Claim {
            execution_id,
            task,
            due_at,
            rejected,
        });
    }
    // Tasks of one schedule claimed together share their next run, so this
    // is usually one statement.
    for (next_run, ids) in moves {
        diesel::update(tasks::table.filter(tasks::id.eq_any(&ids)))
            .set(tasks::next_run.eq(next_run))
            .execute(connection)?;
    }
    Ok(claims)
}

/// Pauses a task whose schedule cannot be read and ends its execution as
/// `error` with the reason, which it returns. Without a next run the task
/// would be due again at once, so it is paused instead of looping.
fn reject_task(
    connection: &mut SqliteConnection,
    task: &Task,
    execution_id: i64,
    error: &impl std::fmt::Display,
    now: DateTime<Utc>,
) -> Result<String> {
    let message = format!(
        "error: task {id} has an invalid schedule: {error}; the task was paused, so fix \
         it with `tasks edit {id} --every SECONDS` (or `--cron`) and resume it with \
         `tasks resume {id}`",
        id = task.id
    );
    diesel::update(tasks::table.find(task.id))
        .set((tasks::paused.eq(true), tasks::updated_at.eq(to_db(now))))
        .execute(connection)?;
    diesel::update(executions::table.find(execution_id))
        .set((
            executions::status.eq(Status::Error.as_str()),
            executions::ended.eq(to_db(now)),
            executions::runtime_seconds.eq(0.0),
            executions::output.eq(&message),
        ))
        .execute(connection)?;
    Ok(message)
}

fn mark_killed(
    connection: &mut SqliteConnection,
    ids: &[i64],
    reason: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    for &id in ids {
        let row: ExecutionRow = executions::table
            .find(id)
            .select(ExecutionRow::as_select())
            .first(connection)?;
        let runtime = row
            .started
            .map(|started| (now - from_db(started)).as_seconds_f64().max(0.0));
        let output = if row.output.is_empty() {
            reason.to_owned()
        } else {
            format!("{}\n{reason}", row.output)
        };
        diesel::update(executions::table.find(id))
            .set((
                executions::status.eq(Status::Killed.as_str()),
                executions::ended.eq(to_db(now)),
                executions::runtime_seconds.eq(runtime),
                executions::output.eq(output),
            ))
            .execute(connection)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn due_lookups_search_the_next_run_index() {
        let folder = tempfile::tempdir().expect("temporary folder");
        let store = Store::open(&folder.path().join("plans.sqlite3").to_string_lossy())
            .await
            .expect("store opens");
        let lines = store.explain_due_queries("default").await.expect("plans");
        let text = lines.join("\n");
        let searches = lines
            .iter()
            .filter(|line| line.contains("INDEX quicksilver_tasks_queue_next_run (queue=?"))
            .count();
        assert_eq!(searches, 2, "both lookups search the index:\n{text}");
        assert!(!text.contains("SCAN"), "no lookup scans a table:\n{text}");
    }

    #[test]
    fn ongoing_condition_spells_the_stored_status() {
        let spelled = format!("'{}'", Status::Ongoing.as_str());
        assert!(ONGOING_STATUS_SQL.ends_with(&spelled));
    }

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
        let error = sqlite_path("postgres://app:hunter2@db/prod").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("postgres://app:***@db/prod"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn memory_database_is_rejected() {
        assert!(sqlite_path(":memory:").is_err());
    }
}
