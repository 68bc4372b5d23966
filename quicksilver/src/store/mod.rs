//! The database behind tasks and executions.
//!
//! Everything the runner, the CLI and the built-in commands read or write
//! goes through [`Store`], so that a new backend changes this module alone.
//! Each call runs on tokio's blocking pool, never on a worker thread.

mod rows;
mod schema;
mod sql_types;

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::expression::{AppearsOnTable, Expression, ValidGrouping};
use diesel::prelude::*;
use diesel::query_builder::QueryFragment;
use diesel::query_builder::QueryId;
use diesel::query_dsl::LoadQuery;
use diesel::r2d2::{ConnectionManager, Pool};
use tokio::sync::watch;

use self::rows::{
    encode_arguments, from_db, to_db, ExecutionRow, InsertExecution, InsertTask, TaskRow,
};
use self::schema::{quicksilver_executions as executions, quicksilver_tasks as tasks};
use self::sql_types::{StoredTime, UtcTime};
use crate::execution::{Execution, ExecutionFilter, Status};
use crate::task::{NewTask, Task, TaskChanges, TaskFilter};

/// The environment variable that contains the database URL.
pub const DATABASE_URL_VAR: &str = "QUICKSILVER_DATABASE_URL";

/// The database file used when [`DATABASE_URL_VAR`] is not set.
pub const DEFAULT_DATABASE: &str = "quicksilver.sqlite3";

/// Write transactions between two checkpoints of the WAL. An execution
/// writes about 8 pages in 2 transactions, so the log stays near 2 MB.
const CHECKPOINT_EVERY: u64 = 128;

/// The errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL names a backend this build does not support.
    #[error("unsupported database URL `{url}`: {reason}")]
    UnsupportedUrl {
        /// The URL, without credentials.
        url: String,
        /// The URL forms to use instead.
        reason: String,
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
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            StoreError::Pool(_) | StoreError::Worker(_) => true,
            StoreError::Query(Error::DatabaseError(kind, info)) => {
                matches!(
                    kind,
                    DatabaseErrorKind::ClosedConnection
                        | DatabaseErrorKind::UnableToSendCommand
                        | DatabaseErrorKind::SerializationFailure
                ) || is_transient_message(info.message())
            }
            StoreError::Query(
                Error::BrokenTransactionManager | Error::RollbackErrorOnCommit { .. },
            ) => true,
            _ => false,
        }
    }
}

/// Returns whether a database error message means the database is busy or
/// unreachable for now: SQLite's locks, a server that restarts or dropped
/// the connection, or a lock wait that a retry can win.
fn is_transient_message(message: &str) -> bool {
    const TRANSIENT: [&str; 14] = [
        // SQLite
        "database is locked",
        "database table is locked",
        "busy",
        // PostgreSQL
        "terminating connection",
        "server closed the connection",
        "connection to server",
        "the database system is starting up",
        "the database system is shutting down",
        "deadlock detected",
        "could not serialize access",
        // MySQL and MariaDB
        "server has gone away",
        "Lost connection",
        "Deadlock found",
        "Lock wait timeout",
    ];
    let message = message.to_ascii_lowercase();
    TRANSIENT
        .iter()
        .any(|text| message.contains(&text.to_ascii_lowercase()))
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

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
    backend: Backend,
    /// The database URL, without credentials.
    url: String,
    /// The URL with its credentials, kept for the PostgreSQL listener's own
    /// connection; empty on the other backends. Never shown.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    listen_url: String,
    /// The name of the database in lock file names: the SQLite file's full
    /// path, or the URL without credentials.
    key_source: String,
    /// A counter bumped by every change to tasks made through this store.
    changes: watch::Sender<u64>,
    /// The SQL statements sent through the pool's connections.
    statements: Arc<AtomicU64>,
    /// This process's turn to write to a SQLite file, shared by every store
    /// opened on it. Servers take concurrent writers, so they have none.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    writer: Option<Arc<Mutex<()>>>,
    /// Write transactions since the store opened.
    writes: AtomicU64,
    /// Execution ends waiting for the next write transaction.
    finishes: Mutex<FinishQueue>,
    /// Notified each time a write that took queued ends commits them or
    /// puts them back, and each time a flush ends.
    settled: tokio::sync::Notify,
}

/// The connection pool of the database's backend.
enum Backend {
    #[cfg(feature = "sqlite")]
    Sqlite(Pool<ConnectionManager<diesel::SqliteConnection>>),
    #[cfg(feature = "postgres")]
    Postgres(Pool<ConnectionManager<diesel::PgConnection>>),
    #[cfg(feature = "mysql")]
    Mysql(Pool<ConnectionManager<diesel::MysqlConnection>>),
}

/// A database a backend opened and migrated.
struct Opened {
    backend: Backend,
    url: String,
    listen_url: String,
    key_source: String,
    statements: Arc<AtomicU64>,
    writer: Option<Arc<Mutex<()>>>,
}

impl StoreInner {
    fn finishes(&self) -> std::sync::MutexGuard<'_, FinishQueue> {
        self.finishes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The sizes and modification times of a SQLite file and of its
/// write-ahead log; see [`Store::file_stamp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileStamp {
    database: Option<(u64, Option<std::time::SystemTime>)>,
    log: Option<(u64, Option<std::time::SystemTime>)>,
}

/// Execution ends queued for the next write, by ticket.
///
/// An end is first `pending`. A write takes every pending end, and
/// `in_flight` lists them until the write commits them or puts them back.
/// An end whose ticket is in neither is written.
#[derive(Debug, Default)]
struct FinishQueue {
    pending: BTreeMap<u64, Finish>,
    in_flight: HashSet<u64>,
    last_ticket: u64,
    /// Whether a [`Store::flush_finish`] call is writing. Only one writes
    /// at a time.
    flushing: bool,
}

impl FinishQueue {
    fn is_written(&self, ticket: u64) -> bool {
        !self.pending.contains_key(&ticket) && !self.in_flight.contains(&ticket)
    }
}

/// The queued ends that one write took. Unless [`FinishBatch::written`]
/// marks them committed, dropping the batch puts them back in the queue.
/// Dropping it also wakes the waiters of [`Store::flush_finish`].
struct FinishBatch {
    inner: Arc<StoreInner>,
    ends: BTreeMap<u64, Finish>,
    /// Whether this is the batch of the one flush allowed at a time.
    flush: bool,
}

impl FinishBatch {
    /// Creates the batch of a write that records the ends beside its own
    /// work.
    fn alongside(inner: &Arc<StoreInner>) -> Self {
        Self {
            inner: inner.clone(),
            ends: BTreeMap::new(),
            flush: false,
        }
    }

    /// Takes every pending end, and returns whether there was any.
    fn take(&mut self) -> bool {
        let mut queue = self.inner.finishes();
        let pending = std::mem::take(&mut queue.pending);
        queue.in_flight.extend(pending.keys().copied());
        drop(queue);
        self.ends.extend(pending);
        !self.ends.is_empty()
    }

    fn ends(&self) -> impl Iterator<Item = &Finish> {
        self.ends.values()
    }

    /// Marks the taken ends as committed.
    fn written(mut self) {
        let mut queue = self.inner.finishes();
        for ticket in self.ends.keys() {
            queue.in_flight.remove(ticket);
        }
        drop(queue);
        self.ends.clear();
    }
}

impl Drop for FinishBatch {
    fn drop(&mut self) {
        let mut queue = self.inner.finishes();
        for ticket in self.ends.keys() {
            queue.in_flight.remove(ticket);
        }
        queue.pending.append(&mut self.ends);
        if self.flush {
            queue.flushing = false;
        }
        drop(queue);
        self.inner.settled.notify_waiters();
    }
}

/// Runs `$body` on a pooled connection of the store's backend, on tokio's
/// blocking pool, with `$connection` bound to the connection and `$inner`
/// to the store's shared state. The body is compiled once per backend,
/// with that backend's queries (`ops.rs` and its module) in scope.
macro_rules! on_backend {
    ($store:expr, |$connection:ident, $inner:ident| $body:expr) => {{
        let store: &$crate::store::Store = $store;
        #[allow(unused_variables)]
        let $inner = store.inner.clone();
        match &store.inner.backend {
            #[cfg(feature = "sqlite")]
            $crate::store::Backend::Sqlite(pool) => {
                #[allow(unused_imports, clippy::wildcard_imports)]
                use $crate::store::sqlite::*;
                $crate::store::run_blocking(pool.clone(), move |$connection: &mut Conn| $body).await
            }
            #[cfg(feature = "postgres")]
            $crate::store::Backend::Postgres(pool) => {
                #[allow(unused_imports, clippy::wildcard_imports)]
                use $crate::store::postgres::*;
                $crate::store::run_blocking(pool.clone(), move |$connection: &mut Conn| $body).await
            }
            #[cfg(feature = "mysql")]
            $crate::store::Backend::Mysql(pool) => {
                #[allow(unused_imports, clippy::wildcard_imports)]
                use $crate::store::mysql::*;
                $crate::store::run_blocking(pool.clone(), move |$connection: &mut Conn| $body).await
            }
        }
    }};
}

/// Runs `$body` as [`on_backend!`] does, in a write transaction taken in
/// this process's writer turn, and counts the write.
macro_rules! write_on_backend {
    ($store:expr, |$connection:ident| $body:expr) => {{
        let store: &$crate::store::Store = $store;
        let result = on_backend!(store, |connection, inner| {
            write_in_turn(&inner, connection, move |$connection| $body)
        });
        store.count_write();
        result
    }};
}

mod coordination;
#[cfg(feature = "dashboard")]
pub(crate) mod dashboard;
mod monitor;

pub use self::coordination::RunnerInfo;
pub(crate) use self::coordination::{LeaseRow, ReapRequest, Reaped, RunnerRecord};
pub use self::monitor::{RuntimeStats, RUNTIME_HISTORY};

/// Runs `work` with a connection of `pool` on tokio's blocking pool.
async fn run_blocking<C, T, F>(pool: Pool<ConnectionManager<C>>, work: F) -> Result<T>
where
    C: diesel::r2d2::R2D2Connection + 'static,
    T: Send + 'static,
    F: FnOnce(&mut C) -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let mut connection = pool.get().map_err(StoreError::Pool)?;
        work(&mut connection)
    })
    .await
    .map_err(StoreError::Worker)?
}

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!("enable at least one of quicksilver's features `sqlite`, `postgres` and `mysql`");

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.inner.url)
            .finish()
    }
}

impl Store {
    /// Opens the store at `url` and applies the embedded migrations.
    ///
    /// `url` chooses the backend: `postgres://` (or `postgresql://`) for
    /// PostgreSQL, `mysql://` for MySQL and MariaDB, and otherwise a SQLite
    /// file path, `sqlite://PATH` or `file:PATH`, created when missing.
    /// Each backend needs its cargo feature: `sqlite` (on by default),
    /// `postgres` or `mysql`.
    ///
    /// # Errors
    ///
    /// - [`StoreError::UnsupportedUrl`] for another kind of URL, or one
    ///   whose backend this build leaves out.
    /// - [`StoreError::Open`] when the database cannot be reached, opened
    ///   or created.
    /// - [`StoreError::Migration`] when the schema cannot be brought up to
    ///   date.
    pub async fn open(url: &str) -> Result<Store> {
        let url = url.to_owned();
        tokio::task::spawn_blocking(move || Store::open_blocking(&url))
            .await
            .map_err(StoreError::Worker)?
    }

    fn open_blocking(url: &str) -> Result<Store> {
        let opened = match BackendKind::of(url)? {
            #[cfg(feature = "sqlite")]
            BackendKind::Sqlite => sqlite::open(url)?,
            #[cfg(feature = "postgres")]
            BackendKind::Postgres => postgres::open(url)?,
            #[cfg(feature = "mysql")]
            BackendKind::Mysql => mysql::open(url)?,
        };
        Ok(Store {
            inner: Arc::new(StoreInner {
                backend: opened.backend,
                url: opened.url,
                key_source: opened.key_source,
                listen_url: opened.listen_url,
                changes: watch::Sender::new(0),
                statements: opened.statements,
                writer: opened.writer,
                writes: AtomicU64::new(0),
                finishes: Mutex::default(),
                settled: tokio::sync::Notify::new(),
            }),
        })
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

    /// Returns the database URL, without credentials.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Returns how many SQL statements this store has sent since it opened,
    /// counting those of every clone, for benchmarks and monitoring.
    pub fn statement_count(&self) -> u64 {
        self.inner.statements.load(Ordering::Relaxed)
    }

    /// Returns a stamp of the SQLite file and its write-ahead log (their
    /// sizes and modification times), or `None` on a server.
    ///
    /// Every commit, of any process, appends to the log or rewrites it, so
    /// an unchanged stamp means that nothing changed since it was taken: a
    /// runner then skips its periodic check for changes of other processes
    /// without a query. File times have the kernel clock's granularity, so
    /// the runner still checks at least once a minute.
    pub(crate) fn file_stamp(&self) -> Option<FileStamp> {
        #[cfg(feature = "sqlite")]
        #[allow(irrefutable_let_patterns)]
        if let Backend::Sqlite(_) = &self.inner.backend {
            let path = std::path::Path::new(&self.inner.key_source);
            let of = |path: &std::path::Path| {
                std::fs::metadata(path)
                    .ok()
                    .map(|metadata| (metadata.len(), metadata.modified().ok()))
            };
            let mut log = path.as_os_str().to_owned();
            log.push("-wal");
            return Some(FileStamp {
                database: of(path),
                log: of(std::path::Path::new(&log)),
            });
        }
        None
    }

    /// Returns whether the store is on a SQLite file.
    pub(crate) fn is_sqlite(&self) -> bool {
        #[cfg(feature = "sqlite")]
        #[allow(irrefutable_let_patterns)]
        if let Backend::Sqlite(_) = &self.inner.backend {
            return true;
        }
        false
    }

    /// Returns a short, stable key of this database, used to name lock
    /// files so that two databases on one machine never share a lock.
    pub fn key(&self) -> String {
        // FNV-1a: stable across Rust versions, unlike the std hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.inner.key_source.bytes() {
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

    /// Wakes the runners of this process after a change to tasks and, on
    /// PostgreSQL, those of other processes and hosts through `NOTIFY`.
    fn notify_change(&self) {
        self.wake_runners();
        #[cfg(feature = "postgres")]
        #[allow(irrefutable_let_patterns)]
        if let Backend::Postgres(pool) = &self.inner.backend {
            postgres::notify_in_background(pool);
        }
    }

    /// Wakes the runners of this process, which then check their queue.
    fn wake_runners(&self) {
        self.inner
            .changes
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    /// Starts listening, on the current tokio runtime, for the changes that
    /// other processes make to tasks, and wakes this process's runners on
    /// each. Only PostgreSQL can tell (`LISTEN`); on the other backends this
    /// does nothing, and runners see changes of other processes at their
    /// next check. The listener stops when the returned guard is dropped.
    pub(crate) fn listen_for_changes(&self) -> Option<tokio::task::JoinHandle<()>> {
        #[cfg(feature = "postgres")]
        #[allow(irrefutable_let_patterns)]
        if let Backend::Postgres(_) = &self.inner.backend {
            let store = self.clone();
            return Some(tokio::spawn(async move {
                postgres::listen(&store.inner.listen_url, || store.wake_runners()).await;
            }));
        }
        None
    }

    /// Counts a write transaction, and on SQLite starts a checkpoint of
    /// the write-ahead log every [`CHECKPOINT_EVERY`] of them.
    fn count_write(&self) {
        let writes = self.inner.writes.fetch_add(1, Ordering::Relaxed) + 1;
        if writes % CHECKPOINT_EVERY != 0 {
            return;
        }
        #[cfg(feature = "sqlite")]
        #[allow(irrefutable_let_patterns)]
        if let Backend::Sqlite(pool) = &self.inner.backend {
            sqlite::checkpoint_in_background(pool);
        }
    }

    /// Returns the tasks that match `filter`, ordered by queue and next run.
    ///
    /// # Errors
    ///
    /// - [`StoreError::Query`] when the database fails.
    pub async fn tasks(&self, filter: TaskFilter) -> Result<Vec<Task>> {
        on_backend!(self, |connection, inner| {
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
    }

    /// Returns the task with `id`.
    ///
    /// # Errors
    ///
    /// - [`StoreError::TaskNotFound`] when there is none.
    /// - [`StoreError::Query`] when the database fails.
    pub async fn task(&self, id: i64) -> Result<Task> {
        on_backend!(self, |connection, inner| load_task(connection, id))
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
        let created = write_on_backend!(self, |connection| insert_task(connection, &task, now))?;
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
        let updated = write_on_backend!(self, |connection| {
            apply_changes(connection, id, changes, now)?;
            load_task(connection, id)
        })?;
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
        write_on_backend!(self, |connection| {
            diesel::update(executions::table.filter(executions::task_id.eq(id)))
                .set(executions::task_id.eq(None::<i64>))
                .execute(connection)?;
            let deleted = diesel::delete(tasks::table.find(id)).execute(connection)?;
            if deleted == 0 {
                return Err(StoreError::TaskNotFound { id });
            }
            Ok(())
        })?;
        self.notify_change();
        Ok(())
    }

    /// Returns the declaration ids of the installed tasks.
    ///
    /// # Errors
    ///
    /// - [`StoreError::Query`] when the database fails.
    pub async fn installed_declarations(&self) -> Result<Vec<String>> {
        on_backend!(self, |connection, inner| {
            Ok(tasks::table
                .filter(tasks::declaration.is_not_null())
                .select(tasks::declaration.assume_not_null())
                .order(tasks::declaration)
                .load(connection)?)
        })
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
        let inserted = write_on_backend!(self, |connection| {
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
        })?;
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
        on_backend!(self, |connection, inner| {
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
    }

    /// Returns the execution with `id`.
    ///
    /// # Errors
    ///
    /// - [`StoreError::ExecutionNotFound`] when there is none.
    /// - [`StoreError::Query`] when the database fails.
    pub async fn execution(&self, id: i64) -> Result<Execution> {
        on_backend!(self, |connection, inner| {
            executions::table
                .find(id)
                .select(ExecutionRow::as_select())
                .first(connection)
                .optional()?
                .ok_or(StoreError::ExecutionNotFound { id })
                .and_then(Execution::try_from)
        })
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
        on_backend!(self, |connection, inner| {
            Ok(diesel::delete(
                executions::table
                    .filter(executions::status.eq(status.as_str()))
                    .filter(executions::ended.lt(to_db(ended_before))),
            )
            .execute(connection)?)
        })
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
        write_on_backend!(self, |connection| {
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
    }

    /// Claims up to `limit` due tasks of `queue` and records an `ongoing`
    /// execution for each, in one transaction, and returns them with the
    /// next time a task of the queue falls due. `expected` means that a task
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
        let (batch, moved) = on_backend!(self, |connection, inner| {
            // Most wake-ups that were not expected find nothing due:
            // check them with a read first, so that an idle runner never
            // takes the write lock.
            let next_due = if expected && limit > 0 {
                Some(now)
            } else {
                first_due(connection, &queue)?.map(from_db)
            };
            if limit == 0 || next_due.is_none_or(|due| due > now) {
                let batch = ClaimBatch {
                    claims: Vec::new(),
                    next_due,
                };
                return Ok((batch, false));
            }
            let _turn = writer_turn(&inner);
            let mut ends = FinishBatch::alongside(&inner);
            ends.take();
            let (moved, batch) = write_with_queued_finishes(ends, connection, |connection| {
                let due = load_due_now(connection, &queue, now, limit)?;
                let claims = claim_rows(connection, due, now, &runner)?;
                let next_due = first_due(connection, &queue)?.map(from_db);
                Ok(ClaimBatch { claims, next_due })
            })?;
            Ok((batch, moved))
        })?;
        if !batch.claims.is_empty() {
            self.count_write();
        }
        if moved {
            self.notify_change();
        }
        Ok(batch)
    }

    /// Returns the database's query plans of the two lookups that the runner of
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
        let queue = queue.to_owned();
        on_backend!(self, |connection, inner| explain_due(connection, &queue))
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
        on_backend!(self, |connection, inner| {
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
            insert_execution_row(connection, &row)
        })
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
        queue.pending.insert(ticket, finish);
        ticket
    }

    /// Returns once the end queued under `ticket` is written.
    ///
    /// One caller at a time writes every pending end in one transaction,
    /// unless another write took them already. The other callers wait on
    /// the runtime, not on a blocking thread each. On an error the ends
    /// stay queued, so calling it again retries.
    pub(crate) async fn flush_finish(&self, ticket: u64) -> Result<()> {
        let mut ends = loop {
            let settled = self.inner.settled.notified();
            {
                let mut queue = self.inner.finishes();
                if queue.is_written(ticket) {
                    return Ok(());
                }
                if queue.pending.contains_key(&ticket) && !queue.flushing {
                    queue.flushing = true;
                    let mut ends = FinishBatch::alongside(&self.inner);
                    ends.flush = true;
                    break ends;
                }
            }
            settled.await;
        };
        let moved = on_backend!(self, |connection, inner| {
            let _turn = writer_turn(&inner);
            // A claim may have written them while this waited for its turn.
            if !ends.take() {
                return Ok(None);
            }
            write_with_queued_finishes(ends, connection, |_| Ok(())).map(|(moved, ())| Some(moved))
        })?;
        if let Some(moved) = moved {
            self.count_write();
            if moved {
                self.notify_change();
            }
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
        write_on_backend!(self, |connection| {
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
        write_on_backend!(self, |connection| {
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

/// Returns the database URL from `QUICKSILVER_DATABASE_URL`, or the default
/// SQLite file.
pub fn database_url_from_env() -> String {
    std::env::var(DATABASE_URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_DATABASE.to_owned())
}

/// The backends a database URL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BackendKind {
    #[cfg(feature = "sqlite")]
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres,
    #[cfg(feature = "mysql")]
    Mysql,
}

impl BackendKind {
    /// Returns the backend that `url` names, or why this build cannot open
    /// it.
    fn of(url: &str) -> Result<BackendKind> {
        let trimmed = url.trim();
        let scheme = trimmed
            .split_once("://")
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        #[allow(unused_variables)]
        let missing = |feature: &str, backend: &str| StoreError::UnsupportedUrl {
            url: redact(trimmed),
            reason: format!(
                "this build of quicksilver leaves out {backend}; enable the cargo feature \
                 `{feature}` of the quicksilver dependency"
            ),
        };
        match scheme.as_deref() {
            Some("postgres" | "postgresql") => {
                #[cfg(feature = "postgres")]
                return Ok(BackendKind::Postgres);
                #[cfg(not(feature = "postgres"))]
                return Err(missing("postgres", "PostgreSQL"));
            }
            Some("mysql") => {
                #[cfg(feature = "mysql")]
                return Ok(BackendKind::Mysql);
                #[cfg(not(feature = "mysql"))]
                return Err(missing("mysql", "MySQL and MariaDB"));
            }
            Some("sqlite") | None => {
                #[cfg(feature = "sqlite")]
                return Ok(BackendKind::Sqlite);
                #[cfg(not(feature = "sqlite"))]
                return Err(missing("sqlite", "SQLite"));
            }
            Some(_) => Err(StoreError::UnsupportedUrl {
                url: redact(trimmed),
                reason: "give `postgres://USER@HOST/DATABASE`, `mysql://USER@HOST/DATABASE`, \
                         or a SQLite file path such as `quicksilver.sqlite3`"
                    .to_owned(),
            }),
        }
    }
}

/// Hides the password of a URL such as `postgres://user:secret@host/db`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The credentials end at the last `@` before the query, so that a
    // password holding an `@` stays hidden whole.
    let head = rest.split(['?', '#']).next().unwrap_or(rest);
    match head.rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{}", &rest[at + 1..])
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

fn duration_seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
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

/// The statement that records the end of an execution.
///
/// diesel compiles an `UPDATE` built with its query builder again at
/// every use; this one has a fixed text, so each connection keeps it
/// compiled. On SQLite that saved a quarter of a run's instructions.
#[derive(Debug, Clone, Copy)]
struct RecordEnd<'a> {
    id: i64,
    status: &'a str,
    /// When the command started, if later than the claim's start.
    started: Option<StoredTime>,
    ended: StoredTime,
    runtime_seconds: f64,
    output: &'a str,
}

/// The [`QueryId`] of every [`RecordEnd`]: its text never changes.
#[derive(Debug)]
struct RecordEndQuery;

impl QueryId for RecordEnd<'_> {
    type QueryId = RecordEndQuery;
    const HAS_STATIC_QUERY_ID: bool = true;
}

/// The statement that inserts an execution row, with `RETURNING id` when
/// `RETURNING_ID` is set (SQLite and PostgreSQL). diesel builds the text of
/// an insert of optional values anew at every use; this one is fixed, so
/// the connection keeps it compiled.
#[derive(Debug, Clone, Copy)]
struct ExecutionInsert<'a, const RETURNING_ID: bool>(&'a InsertExecution<'a>);

/// The [`QueryId`] of an [`ExecutionInsert`].
#[derive(Debug)]
struct ExecutionInsertQuery<const RETURNING_ID: bool>;

impl<const RETURNING_ID: bool> QueryId for ExecutionInsert<'_, RETURNING_ID> {
    type QueryId = ExecutionInsertQuery<RETURNING_ID>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::Query for ExecutionInsert<'_, true> {
    type SqlType = diesel::sql_types::BigInt;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_the_whole_password() {
        assert_eq!(
            redact("postgres://app:p@ss/w@db.internal:5432/prod?application_name=a@b"),
            "postgres://app:***@db.internal:5432/prod?application_name=a@b"
        );
        assert_eq!(
            redact("mysql://root@127.0.0.1/test"),
            "mysql://root:***@127.0.0.1/test"
        );
        assert_eq!(
            redact("postgres://db.internal/prod"),
            "postgres://db.internal/prod"
        );
    }

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

    /// Opens a store in a new SQLite file, adds `count` tasks that run
    /// every minute, and claims them all at the returned time.
    async fn claimed_tasks(count: usize) -> (tempfile::TempDir, Store, DateTime<Utc>, Vec<Claim>) {
        let folder = tempfile::tempdir().expect("temporary folder");
        let store = Store::open(&folder.path().join("ends.sqlite3").to_string_lossy())
            .await
            .expect("store opens");
        for _ in 0..count {
            let schedule = crate::Schedule::every(60).expect("schedule");
            store
                .add_task(NewTask::new("noop", schedule))
                .await
                .expect("task added");
        }
        let now = Utc::now() + TimeDelta::seconds(120);
        let batch = store
            .claim_due("default", now, count, "test-runner", false)
            .await
            .expect("claimed");
        assert_eq!(batch.claims.len(), count);
        (folder, store, now, batch.claims)
    }

    fn success(claim: &Claim, now: DateTime<Utc>) -> Finish {
        Finish {
            execution_id: claim.execution_id,
            task_id: Some(claim.task.id),
            status: Status::Success,
            started: None,
            ended: now,
            runtime: Duration::from_millis(1),
            output: format!("end of {}", claim.execution_id),
            next_run: None,
        }
    }

    async fn assert_all_recorded(store: &Store, count: usize) {
        let recorded = store
            .executions(ExecutionFilter {
                limit: 1_000,
                ..ExecutionFilter::default()
            })
            .await
            .expect("executions");
        assert_eq!(recorded.len(), count);
        for execution in recorded {
            assert_eq!(execution.status, Status::Success, "{execution:?}");
            assert_eq!(execution.output, format!("end of {}", execution.id));
        }
        let queue = store.inner.finishes();
        assert!(queue.pending.is_empty(), "ends left pending");
        assert!(queue.in_flight.is_empty(), "ends left in flight");
        assert!(!queue.flushing, "a flush left marked");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_ends_are_written_in_one_transaction() {
        let (_folder, store, now, claims) = claimed_tasks(200).await;

        let tickets: Vec<u64> = claims
            .iter()
            .map(|claim| store.queue_finish(success(claim, now)))
            .collect();
        let writes_before = store.inner.writes.load(Ordering::Relaxed);
        let mut flushes = tokio::task::JoinSet::new();
        for ticket in tickets {
            let store = store.clone();
            flushes.spawn(async move { store.flush_finish(ticket).await });
        }
        let all = async {
            while let Some(joined) = flushes.join_next().await {
                joined.expect("flush task").expect("end recorded");
            }
        };
        tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .expect("every flush returns");
        let writes = store.inner.writes.load(Ordering::Relaxed) - writes_before;
        assert_eq!(writes, 1, "200 queued ends took {writes} transactions");
        assert_all_recorded(&store, 200).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ends_flushed_beside_claims_are_all_written() {
        let (_folder, store, now, claims) = claimed_tasks(300).await;

        // Claims of an empty queue write the queued ends as they go.
        let claiming = {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    store
                        .claim_due("other", now, 10, "test-runner", true)
                        .await
                        .expect("claim");
                    tokio::task::yield_now().await;
                }
            })
        };
        let mut ends = tokio::task::JoinSet::new();
        for claim in claims {
            let store = store.clone();
            ends.spawn(async move {
                let ticket = store.queue_finish(success(&claim, now));
                store.flush_finish(ticket).await
            });
        }
        let all = async {
            while let Some(joined) = ends.join_next().await {
                joined.expect("end task").expect("end recorded");
            }
            claiming.await.expect("claims");
        };
        tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .expect("every flush returns");
        assert_all_recorded(&store, 300).await;
    }

    #[test]
    fn ongoing_condition_spells_the_stored_status() {
        let spelled = format!("'{}'", Status::Ongoing.as_str());
        assert!(ONGOING_STATUS_SQL.ends_with(&spelled));
    }

    #[test]
    fn lost_server_connections_are_transient() {
        for message in [
            "Server has gone away",
            "Lost connection to server during query",
            "terminating connection due to administrator command",
            "database is locked",
        ] {
            assert!(is_transient_message(message), "{message}");
        }
        assert!(!is_transient_message("no such table: quicksilver_tasks"));
    }

    #[test]
    fn unknown_schemes_are_rejected_without_password() {
        let error = BackendKind::of("oracle://app:hunter2@db/prod").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("oracle://app:***@db/prod"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}
