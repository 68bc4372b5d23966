//! Fixtures of the process-level tests: the test host binary run as child
//! processes on a database in a temporary folder, or on a [`TestDatabase`]
//! of any backend, and stopped with real signals.
//!
//! A [`Sandbox`] owns the folder. [`Sandbox::run`] runs one CLI command to
//! its end; [`Sandbox::spawn`] starts a long-running one, such as
//! `run-queue`, as a [`HostProcess`] that the test signals, kills and waits
//! for. Each child writes its standard output and error to files in the
//! folder, so a chatty child never blocks on a full pipe and a failing test
//! can print everything the child wrote.
//!
//! The tests read the database through [`quicksilver::Store`] (typed rows)
//! or through the CLI's `--json` output, and edit rows by hand with
//! [`Sandbox::execute_sql`].

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use quicksilver::{Execution, ExecutionFilter, Store, Task, TaskFilter};
use tempfile::TempDir;

use crate::backends::{Backend, TestDatabase};
use crate::describe;

/// How long [`Sandbox::run`] lets a CLI command take before it fails the
/// test.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the waits poll a child process or the database.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The log filter of the children, unless a test sets `RUST_LOG` itself.
/// It is fixed so that the developer's own `RUST_LOG` cannot change what the
/// tests read on standard error.
pub const HOST_LOG_FILTER: &str = "info";

/// A temporary folder with a database file and a lock folder, and the host
/// binary that the tests run on them. [`Sandbox::on`] puts the database on
/// a [`TestDatabase`] instead of the folder's file.
///
/// The folder is deleted, and the test database dropped, when the value
/// drops.
pub struct Sandbox {
    host: PathBuf,
    folder: TempDir,
    runtime: tokio::runtime::Runtime,
    store: OnceLock<Store>,
    children: AtomicUsize,
    /// The database of [`Sandbox::on`], or `None` for the SQLite file in
    /// `folder`. Declared after `store`, so that the store's connections
    /// close before the database is dropped.
    database: Option<TestDatabase>,
}

/// What a CLI command that ran to its end returned and wrote.
#[derive(Debug)]
pub struct HostOutput {
    /// The command line, for assertion messages.
    pub args: Vec<String>,
    /// How the process ended.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

/// A host process started with [`Sandbox::spawn`].
///
/// Dropping it kills the process with SIGKILL if it still runs, so that a
/// failing test leaves no runner behind.
pub struct HostProcess {
    child: Child,
    label: String,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    exit: Option<(ExitStatus, DateTime<Utc>)>,
}

impl Sandbox {
    /// Creates the folder, with `locks/` inside it for the lock files.
    ///
    /// `host` is the path of the test host binary, which only an
    /// integration test can name:
    /// `Sandbox::new(env!("CARGO_BIN_EXE_quicksilver-test-host"))`.
    ///
    /// # Panics
    ///
    /// Panics when the folder or the tokio runtime cannot be created.
    pub fn new(host: &str) -> Sandbox {
        let folder = tempfile::tempdir().expect("create a temporary folder for the sandbox");
        std::fs::create_dir(folder.path().join("locks")).expect("create the lock folder");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build the tokio runtime that reads the store");
        Sandbox {
            host: PathBuf::from(host),
            folder,
            runtime,
            store: OnceLock::new(),
            children: AtomicUsize::new(0),
            database: None,
        }
    }

    /// Creates the folder like [`new`](Sandbox::new), with `database` as the
    /// database of the children and of the store.
    ///
    /// # Panics
    ///
    /// As [`new`](Sandbox::new).
    pub fn on(host: &str, database: TestDatabase) -> Sandbox {
        Sandbox {
            database: Some(database),
            ..Sandbox::new(host)
        }
    }

    /// Returns the temporary folder.
    pub fn folder(&self) -> &Path {
        self.folder.path()
    }

    /// Returns the path of the SQLite file in the folder, which is the
    /// database of a sandbox made with [`new`](Sandbox::new). A sandbox made
    /// with [`on`](Sandbox::on) uses [`database_url`](Sandbox::database_url)
    /// instead.
    pub fn database(&self) -> PathBuf {
        self.folder.path().join("quicksilver.sqlite3")
    }

    /// Returns the database URL, which the children get in
    /// `QUICKSILVER_DATABASE_URL`.
    pub fn database_url(&self) -> String {
        match &self.database {
            Some(database) => database.url().to_owned(),
            None => self.database().to_string_lossy().into_owned(),
        }
    }

    /// Returns the backend of the database.
    pub fn backend(&self) -> Backend {
        self.database
            .as_ref()
            .map_or(Backend::Sqlite, TestDatabase::backend)
    }

    /// Returns the lock folder, which the children get in
    /// `QUICKSILVER_LOCK_DIR`.
    pub fn lock_dir(&self) -> PathBuf {
        self.folder.path().join("locks")
    }

    /// Runs the host with `args` to its end and returns what it wrote.
    ///
    /// # Panics
    ///
    /// Panics when the host cannot start or runs longer than
    /// [`COMMAND_TIMEOUT`].
    pub fn run(&self, args: &[&str]) -> HostOutput {
        self.run_with_env(args, &[])
    }

    /// Runs the host like [`run`](Sandbox::run), with `env` added to its
    /// environment.
    ///
    /// # Panics
    ///
    /// As [`run`](Sandbox::run).
    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> HostOutput {
        let started = Instant::now();
        let mut process = self.spawn_with_env(args, env);
        let Some(status) = process.wait(COMMAND_TIMEOUT) else {
            panic!(
                "`{}` still runs after {COMMAND_TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                process.label,
                process.stdout(),
                process.stderr()
            );
        };
        HostOutput {
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            status,
            stdout: process.stdout(),
            stderr: process.stderr(),
            elapsed: started.elapsed(),
        }
    }

    /// Runs the host with `args` and returns its output, failing the test
    /// unless it exits with 0.
    ///
    /// # Panics
    ///
    /// Panics when the host fails, and as [`run`](Sandbox::run).
    pub fn run_ok(&self, args: &[&str]) -> HostOutput {
        let output = self.run(args);
        assert_eq!(
            output.code(),
            Some(0),
            "exit code of `{}`\n{}",
            args.join(" "),
            output.describe()
        );
        output
    }

    /// Adds a task with `tasks add ARGS --json` and returns its id.
    ///
    /// # Panics
    ///
    /// Panics when the CLI rejects the task or prints no id.
    pub fn add_task(&self, args: &[&str]) -> i64 {
        let mut full = vec!["tasks", "add", "--json"];
        full.extend_from_slice(args);
        let output = self.run_ok(&full);
        let task: serde_json::Value = serde_json::from_str(&output.stdout)
            .unwrap_or_else(|error| panic!("parse the task JSON ({error}):\n{}", output.stdout));
        task["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("the task JSON has no id:\n{}", output.stdout))
    }

    /// Starts the host with `args` in the background.
    ///
    /// # Panics
    ///
    /// Panics when the host cannot start.
    pub fn spawn(&self, args: &[&str]) -> HostProcess {
        self.spawn_with_env(args, &[])
    }

    /// Starts the host like [`spawn`](Sandbox::spawn), with `env` added to
    /// its environment.
    ///
    /// # Panics
    ///
    /// As [`spawn`](Sandbox::spawn).
    pub fn spawn_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> HostProcess {
        let number = self.children.fetch_add(1, Ordering::Relaxed);
        let stdout_path = self.folder.path().join(format!("child-{number}.stdout"));
        let stderr_path = self.folder.path().join(format!("child-{number}.stderr"));
        let stdout = File::create(&stdout_path).expect("create the child's stdout file");
        let stderr = File::create(&stderr_path).expect("create the child's stderr file");

        let mut command = Command::new(&self.host);
        command
            .args(args)
            .env("QUICKSILVER_DATABASE_URL", self.database_url())
            .env("QUICKSILVER_LOCK_DIR", self.lock_dir())
            .env("RUST_LOG", HOST_LOG_FILTER)
            .env_remove("QUICKSILVER_SILENCED_CHECKS")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        for (name, value) in env {
            command.env(name, value);
        }

        let label = format!("quicksilver-test-host {}", args.join(" "));
        let child = command.spawn().unwrap_or_else(|error| {
            panic!("start `{label}` from {}: {error}", self.host.display())
        });
        HostProcess {
            child,
            label,
            stdout_path,
            stderr_path,
            exit: None,
        }
    }

    /// Returns the store on the sandbox's database, opened on first use.
    ///
    /// # Panics
    ///
    /// Panics when the database cannot be opened.
    pub fn store(&self) -> &Store {
        self.store.get_or_init(|| {
            let url = self.database_url();
            self.runtime
                .block_on(Store::open(&url))
                .unwrap_or_else(|error| panic!("open the sandbox database {url}: {error}"))
        })
    }

    /// Returns every execution, oldest first.
    ///
    /// # Panics
    ///
    /// Panics when the executions cannot be read.
    pub fn executions(&self) -> Vec<Execution> {
        self.executions_matching(ExecutionFilter {
            limit: i64::MAX,
            ..ExecutionFilter::default()
        })
    }

    /// Returns the executions of the task with `task_id`, oldest first.
    ///
    /// # Panics
    ///
    /// Panics when the executions cannot be read.
    pub fn executions_of_task(&self, task_id: i64) -> Vec<Execution> {
        self.executions_matching(ExecutionFilter {
            task_id: Some(task_id),
            limit: i64::MAX,
            ..ExecutionFilter::default()
        })
    }

    /// Returns the executions of the command `command`, oldest first.
    ///
    /// # Panics
    ///
    /// Panics when the executions cannot be read.
    pub fn executions_of_command(&self, command: &str) -> Vec<Execution> {
        self.executions_matching(ExecutionFilter {
            command: Some(command.to_owned()),
            limit: i64::MAX,
            ..ExecutionFilter::default()
        })
    }

    fn executions_matching(&self, filter: ExecutionFilter) -> Vec<Execution> {
        let store = self.store();
        let mut executions = self
            .runtime
            .block_on(store.executions(filter.clone()))
            .unwrap_or_else(|error| panic!("list executions with {filter:?}: {error}"));
        executions.reverse();
        executions
    }

    /// Returns every task, by queue and next run.
    ///
    /// # Panics
    ///
    /// Panics when the tasks cannot be read.
    pub fn tasks(&self) -> Vec<Task> {
        let store = self.store();
        self.runtime
            .block_on(store.tasks(TaskFilter::default()))
            .unwrap_or_else(|error| panic!("list tasks: {error}"))
    }

    /// Returns the task with `id`.
    ///
    /// # Panics
    ///
    /// Panics when the task cannot be read.
    pub fn task(&self, id: i64) -> Task {
        let store = self.store();
        self.runtime
            .block_on(store.task(id))
            .unwrap_or_else(|error| panic!("read task {id}: {error}"))
    }

    /// Polls the executions of the task with `task_id` until `done` holds
    /// for them (oldest first), and returns them.
    ///
    /// # Panics
    ///
    /// Panics after `timeout`, with `expected` and the executions seen.
    pub fn wait_for_executions(
        &self,
        task_id: i64,
        timeout: Duration,
        expected: &str,
        mut done: impl FnMut(&[Execution]) -> bool,
    ) -> Vec<Execution> {
        let deadline = Instant::now() + timeout;
        loop {
            let executions = self.executions_of_task(task_id);
            if done(&executions) {
                return executions;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for task {task_id}: {expected}; \
                     its executions:\n{}",
                    describe(&executions)
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Runs `sql` on the database through a connection of its own, as an
    /// operator with a SQL shell would.
    ///
    /// # Panics
    ///
    /// Panics when the database cannot be opened or the statements fail.
    pub fn execute_sql(&self, sql: &str) {
        match &self.database {
            Some(database) if database.backend() != Backend::Sqlite => database.execute_sql(sql),
            _ => self.execute_sqlite(sql),
        }
    }

    /// Runs `sql` on the SQLite file with a busy timeout, so that it waits
    /// for the children's writes instead of failing.
    fn execute_sqlite(&self, sql: &str) {
        let url = self.database_url();
        let mut connection = SqliteConnection::establish(&url)
            .unwrap_or_else(|error| panic!("open {url} for hand edits: {error}"));
        connection
            .batch_execute("PRAGMA busy_timeout = 10000;")
            .expect("set the busy timeout of the hand-edit connection");
        connection
            .batch_execute(sql)
            .unwrap_or_else(|error| panic!("run `{sql}` on {url}: {error}"));
    }
}

impl HostOutput {
    /// Returns the exit code, or `None` when a signal ended the process.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Returns the lines of standard error that start with `error:`.
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|line| line.starts_with("error:"))
            .collect()
    }

    /// Formats the command line, exit status and output, for assertion
    /// messages.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
            self.args.join(" "),
            self.status,
            self.stdout,
            self.stderr
        )
    }
}

impl HostProcess {
    /// Returns the process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (a name such as `TERM`, `INT` or `KILL`) with the
    /// `kill` program.
    ///
    /// # Panics
    ///
    /// Panics when `kill` cannot run or fails, as for a process that is
    /// already gone.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap_or_else(|error| panic!("run `kill -{signal} {pid}`: {error}"));
        assert!(status.success(), "`kill -{signal} {pid}` failed: {status}");
    }

    /// Waits up to `timeout` for the process to exit and returns how it
    /// ended, or `None` when it still runs.
    ///
    /// # Panics
    ///
    /// Panics when the process's state cannot be read.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((status, _)) = self.poll_exit() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Returns when the process was seen to have exited, within
    /// [`POLL_INTERVAL`] of the real time, or `None` while it runs.
    ///
    /// # Panics
    ///
    /// Panics when the process's state cannot be read.
    pub fn exited_at(&mut self) -> Option<DateTime<Utc>> {
        self.poll_exit().map(|(_, at)| at)
    }

    /// Returns whether the process still runs.
    ///
    /// # Panics
    ///
    /// Panics when the process's state cannot be read.
    pub fn is_running(&mut self) -> bool {
        self.poll_exit().is_none()
    }

    fn poll_exit(&mut self) -> Option<(ExitStatus, DateTime<Utc>)> {
        if self.exit.is_none() {
            let status = self
                .child
                .try_wait()
                .unwrap_or_else(|error| panic!("read the state of `{}`: {error}", self.label));
            self.exit = status.map(|status| (status, Utc::now()));
        }
        self.exit
    }

    /// Waits until standard error contains `text`.
    ///
    /// # Panics
    ///
    /// Panics when the process exits first or `timeout` passes, with what
    /// it wrote.
    pub fn wait_for_stderr(&mut self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr().contains(text) {
                return;
            }
            if let Some((status, _)) = self.poll_exit() {
                panic!(
                    "`{}` exited ({status}) before writing {text:?} to stderr\n{}",
                    self.label,
                    self.describe()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "`{}` did not write {text:?} to stderr within {timeout:?}\n{}",
                    self.label,
                    self.describe()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Returns what the process wrote to standard output so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Returns what the process wrote to standard error so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Formats the command line and the output so far, for assertion
    /// messages.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nstdout:\n{}\nstderr:\n{}",
            self.label,
            self.stdout(),
            self.stderr()
        )
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        if self.exit.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `probe` until it returns a value or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
