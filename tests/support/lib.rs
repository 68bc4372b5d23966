//! Shared fixtures of the integration tests.
//!
//! Each test gets a fresh database ([`TestDb`]) and starts the real runner
//! on a tokio task ([`BackgroundRunner`]). The tests wait for results by
//! polling the store until a deadline, so that a failing test ends with the
//! executions it saw instead of hanging.
//!
//! [`backends`] gives a test a fresh database on SQLite, PostgreSQL or MySQL
//! by URL, and [`backend_tests!`] runs one test body on each backend.
//!
//! [`smtp`] runs an SMTP server on 127.0.0.1 that records what the e-mail
//! alert sink sends.
//!
//! [`browser`] drives a headless Chromium through chromedriver, for the
//! tests of the web dashboard.

pub mod backends;
pub mod browser;
pub mod cluster;
pub mod history;
pub mod http;
pub mod process;
pub mod smtp;

pub use backends::{enabled_backends, Backend, TestDatabase};

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use quicksilver::{
    Execution, ExecutionFilter, NewTask, Runner, RunnerBuilder, RunnerError, Status, StopReason,
    Store, Task,
};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// How often the waits read the store.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long [`BackgroundRunner::stop`] waits for the runner to return.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Installs the global tracing subscriber of this test binary, once.
///
/// The subscriber contains [`quicksilver::capture_layer`], so the events a
/// command emits land in its execution's output. It also contains a
/// formatter that prints to the test's captured output at the level
/// `RUST_LOG` sets (`warn` when it is not set).
pub fn install_tracing() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
        let printed = tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_ansi(false)
            .with_filter(filter);
        tracing_subscriber::registry()
            .with(printed)
            .with(quicksilver::capture_layer())
            .init();
    });
}

/// A store on a fresh test database, with a temporary folder for the lock
/// files of the runners started on it.
///
/// The folder is deleted and the database dropped when the value drops.
pub struct TestDb {
    // Declared first so that the store's connections close before the
    // database is dropped.
    store: Store,
    folder: TempDir,
    database: TestDatabase,
}

impl TestDb {
    /// Creates a fresh SQLite database, applies the migrations and installs
    /// the tracing subscriber.
    ///
    /// # Panics
    ///
    /// Panics when the temporary folder or the database cannot be created.
    pub async fn new() -> TestDb {
        let database =
            TestDatabase::create(Backend::Sqlite).expect("the SQLite backend is always enabled");
        TestDb::open(database).await
    }

    /// Opens a store on `database`, applies the migrations and installs the
    /// tracing subscriber.
    ///
    /// # Panics
    ///
    /// Panics when the lock folder cannot be created or the store cannot be
    /// opened.
    pub async fn open(database: TestDatabase) -> TestDb {
        install_tracing();
        let folder = tempfile::tempdir().expect("create a temporary folder for the lock files");
        let store = Store::open(database.url()).await.unwrap_or_else(|error| {
            panic!(
                "open the {} test database {}: {error}",
                database.backend(),
                database.name()
            )
        });
        TestDb {
            store,
            folder,
            database,
        }
    }

    /// Returns the store; clones share its connection pool and its change
    /// notifications.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Returns the backend of the database.
    pub fn backend(&self) -> Backend {
        self.database.backend()
    }

    /// Returns the test database under the store.
    pub fn database(&self) -> &TestDatabase {
        &self.database
    }

    /// Returns the temporary folder of the lock files.
    pub fn folder(&self) -> &Path {
        self.folder.path()
    }

    /// Returns the folder of the lock files of runners on this database.
    pub fn lock_dir(&self) -> PathBuf {
        self.folder.path().to_path_buf()
    }

    /// Returns a builder of a runner of `queue` on this database, with the
    /// lock files in the test's folder and OS signals left to the test
    /// harness.
    pub fn runner(&self, queue: &str) -> RunnerBuilder {
        Runner::run_queue(queue)
            .store(self.store.clone())
            .lock_dir(self.lock_dir())
            .handle_signals(false)
    }

    /// Inserts `task` and returns it.
    ///
    /// # Panics
    ///
    /// Panics when the store rejects the task.
    pub async fn add_task(&self, task: NewTask) -> Task {
        let command = task.command.clone();
        self.store
            .add_task(task)
            .await
            .unwrap_or_else(|error| panic!("add a task of `{command}`: {error}"))
    }

    /// Returns the task with `id`.
    ///
    /// # Panics
    ///
    /// Panics when the task cannot be read.
    pub async fn task(&self, id: i64) -> Task {
        self.store
            .task(id)
            .await
            .unwrap_or_else(|error| panic!("read task {id}: {error}"))
    }

    /// Returns the executions of the task with `id`, oldest first.
    ///
    /// # Panics
    ///
    /// Panics when the executions cannot be read.
    pub async fn executions(&self, task_id: i64) -> Vec<Execution> {
        let filter = ExecutionFilter {
            task_id: Some(task_id),
            limit: i64::MAX,
            ..ExecutionFilter::default()
        };
        self.list(filter).await
    }

    /// Returns every execution in the database, oldest first.
    ///
    /// # Panics
    ///
    /// Panics when the executions cannot be read.
    pub async fn all_executions(&self) -> Vec<Execution> {
        let filter = ExecutionFilter {
            limit: i64::MAX,
            ..ExecutionFilter::default()
        };
        self.list(filter).await
    }

    async fn list(&self, filter: ExecutionFilter) -> Vec<Execution> {
        let mut executions = self
            .store
            .executions(filter.clone())
            .await
            .unwrap_or_else(|error| panic!("list executions with {filter:?}: {error}"));
        executions.reverse();
        executions
    }

    /// Polls the executions of the task with `task_id` until `done` holds
    /// for them (oldest first), and returns them.
    ///
    /// # Panics
    ///
    /// Panics after `timeout`, with `expected` and the executions seen.
    pub async fn wait_until(
        &self,
        task_id: i64,
        timeout: Duration,
        expected: &str,
        mut done: impl FnMut(&[Execution]) -> bool,
    ) -> Vec<Execution> {
        let deadline = Instant::now() + timeout;
        loop {
            let executions = self.executions(task_id).await;
            if done(&executions) {
                return executions;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for task {task_id}: {expected}. \
                     Its executions:\n{}",
                    describe(&executions)
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until the task with `task_id` has at least `count` executions
    /// with `status`, and returns all its executions, oldest first.
    ///
    /// # Panics
    ///
    /// Panics after `timeout`, with the executions seen.
    pub async fn wait_for_status(
        &self,
        task_id: i64,
        status: Status,
        count: usize,
        timeout: Duration,
    ) -> Vec<Execution> {
        let expected = format!("{count} executions with status `{status}`");
        self.wait_until(task_id, timeout, &expected, |executions| {
            with_status(executions, status).len() >= count
        })
        .await
    }
}

/// A runner running on a tokio task of the test's runtime.
pub struct BackgroundRunner {
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<StopReason, RunnerError>>,
}

impl BackgroundRunner {
    /// Starts the runner that `builder` describes, with a shutdown future
    /// that [`stop`](BackgroundRunner::stop) completes.
    ///
    /// The runner also shuts down when this value drops.
    pub fn start(builder: RunnerBuilder) -> BackgroundRunner {
        let (sender, receiver) = oneshot::channel::<()>();
        let shutdown = async move {
            // A dropped sender completes the future too.
            let _ = receiver.await;
        };
        let handle = tokio::spawn(builder.shutdown_signal(shutdown).run());
        BackgroundRunner {
            shutdown: Some(sender),
            handle,
        }
    }

    /// Completes the runner's shutdown future and returns why it stopped.
    ///
    /// # Panics
    ///
    /// Panics when the runner fails, panics, or takes longer than
    /// [`STOP_TIMEOUT`] to return.
    pub async fn stop(mut self) -> StopReason {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
        self.join(STOP_TIMEOUT).await
    }

    /// Waits for the runner to return on its own and returns why it did.
    ///
    /// # Panics
    ///
    /// Panics when the runner fails, panics, or is still running after
    /// `timeout`.
    pub async fn join(mut self, timeout: Duration) -> StopReason {
        let joined = tokio::time::timeout(timeout, &mut self.handle).await;
        match joined {
            Err(_) => {
                self.handle.abort();
                panic!("the runner was still running {timeout:?} after it was asked to return")
            }
            Ok(Err(error)) => panic!("the runner's task failed: {error}"),
            Ok(Ok(Err(error))) => panic!("the runner returned an error: {error}"),
            Ok(Ok(Ok(reason))) => reason,
        }
    }

    /// Returns whether the runner returned.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Cancels the runner's task at its next await, as if its process had
    /// stopped without a shutdown, and waits until the task is gone.
    pub async fn abort(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }
}

/// Returns the executions with `status`, in the given order.
pub fn with_status(executions: &[Execution], status: Status) -> Vec<&Execution> {
    executions
        .iter()
        .filter(|execution| execution.status == status)
        .collect()
}

/// Formats executions one a line, for assertion messages.
pub fn describe(executions: &[impl std::borrow::Borrow<Execution>]) -> String {
    let mut text = String::new();
    for execution in executions {
        let execution = execution.borrow();
        let output = execution.output.lines().last().unwrap_or("");
        let output: String = output.chars().take(160).collect();
        let _ = writeln!(
            text,
            "  #{} {} due {} started {} ended {} output {output:?}",
            execution.id,
            execution.status,
            show_time(execution.due_at),
            show_time(execution.started),
            show_time(execution.ended),
        );
    }
    if text.is_empty() {
        text.push_str("  (none)\n");
    }
    text
}

fn show_time(time: Option<DateTime<Utc>>) -> String {
    match time {
        Some(time) => time.format("%H:%M:%S%.6f").to_string(),
        None => "-".to_owned(),
    }
}

/// Returns when the execution started.
///
/// # Panics
///
/// Panics when the execution has no start time.
pub fn started(execution: &Execution) -> DateTime<Utc> {
    execution
        .started
        .unwrap_or_else(|| panic!("execution {} has no start time", execution.id))
}

/// Returns when the execution ended.
///
/// # Panics
///
/// Panics when the execution has no end time.
pub fn ended(execution: &Execution) -> DateTime<Utc> {
    execution
        .ended
        .unwrap_or_else(|| panic!("execution {} has no end time", execution.id))
}

/// Returns the scheduled tick the execution served.
///
/// # Panics
///
/// Panics when the execution has no due time.
pub fn due_at(execution: &Execution) -> DateTime<Utc> {
    execution
        .due_at
        .unwrap_or_else(|| panic!("execution {} has no due time", execution.id))
}

/// Returns the run time of the execution from its start and end.
///
/// # Panics
///
/// Panics when the execution has no start or end time.
pub fn run_time(execution: &Execution) -> TimeDelta {
    ended(execution) - started(execution)
}

/// Formats a time difference in milliseconds, as `4.021 ms`.
pub fn millis(delta: TimeDelta) -> String {
    let micros = delta.num_microseconds().unwrap_or(i64::MAX);
    format!("{:.3} ms", micros as f64 / 1000.0)
}

/// Returns the resident memory of this process, in bytes, from
/// `/proc/self/status`.
///
/// # Panics
///
/// Panics when the file cannot be read or has no `VmRSS` line, as on
/// systems other than Linux.
pub fn resident_memory_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("/proc/self/status has a VmRSS line");
    let kilobytes: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap_or_else(|error| panic!("parse {line:?}: {error}"));
    kilobytes * 1024
}
