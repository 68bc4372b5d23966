//! Fixtures of the multi-runner tests: several runner processes of the test
//! host on one database, each with a lock folder of its own.
//!
//! Runners on one machine that share a lock folder keep each other off a
//! queue with a file lock. With a lock folder each, as runners on separate
//! hosts have, only the database keeps them from running a tick twice, which
//! is what these tests check. [`cluster_tests!`](crate::cluster_tests) runs
//! one test body on the backends it names, each on a fresh
//! [`TestDatabase`].
//!
//! The checks read the executions back and compare each task's due ticks
//! with the grid of its schedule: [`duplicate_ticks`] lists the ticks that
//! ran more than once, [`missing_ticks`] the ticks of the grid that never
//! ran.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Bool};
use diesel::{Connection, MysqlConnection, PgConnection, QueryableByName, RunQueryDsl};
use quicksilver::{Execution, NewTask, Status, Task};

use crate::backends::{Backend, TestDatabase};
use crate::describe;
use crate::process::{HostProcess, Sandbox};

/// How long a runner process may take to log that it started.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a runner process may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Several runner processes of the test host on one test database.
///
/// Dropping it drops the database, so drop the runner processes first:
/// declare them after the cluster.
pub struct Cluster {
    sandbox: Sandbox,
    backend: Backend,
    database_name: String,
    runtime: tokio::runtime::Runtime,
}

impl Cluster {
    /// Creates a cluster on `database`, whose runners run the host binary
    /// at `host`.
    ///
    /// # Panics
    ///
    /// Panics when the temporary folder or the tokio runtime cannot be
    /// created.
    pub fn new(host: &str, database: TestDatabase) -> Cluster {
        let backend = database.backend();
        let database_name = database.name().to_owned();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build the tokio runtime that writes tasks");
        Cluster {
            sandbox: Sandbox::on(host, database),
            backend,
            database_name,
            runtime,
        }
    }

    /// Returns the backend of the database.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Returns the sandbox that starts the processes and reads the store.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Returns the path of a file in the cluster's temporary folder, which
    /// every runner process can write to.
    pub fn file(&self, name: &str) -> PathBuf {
        self.sandbox.folder().join(name)
    }

    /// Inserts `task` through the store and returns it.
    ///
    /// # Panics
    ///
    /// Panics when the store rejects the task.
    pub fn add_task(&self, task: NewTask) -> Task {
        let command = task.command.clone();
        let store = self.sandbox.store();
        self.runtime
            .block_on(store.add_task(task))
            .unwrap_or_else(|error| panic!("add a task of `{command}`: {error}"))
    }

    /// Starts `run-queue` with `args` added, as the runner `name`, with the
    /// lock folder `locks-NAME` of its own and `env` added to its
    /// environment, and waits until it logs that it started.
    ///
    /// # Panics
    ///
    /// Panics when the folder cannot be created, or when the runner exits
    /// or stays silent for [`START_TIMEOUT`].
    pub fn start_runner(&self, name: &str, args: &[&str], env: &[(&str, String)]) -> HostProcess {
        let lock_dir = self.sandbox.folder().join(format!("locks-{name}"));
        std::fs::create_dir_all(&lock_dir)
            .unwrap_or_else(|error| panic!("create {}: {error}", lock_dir.display()));
        let lock_dir = lock_dir.to_string_lossy().into_owned();

        let mut full_args = vec!["run-queue"];
        full_args.extend_from_slice(args);
        let mut full_env: Vec<(&str, &str)> = vec![("QUICKSILVER_LOCK_DIR", lock_dir.as_str())];
        full_env.extend(env.iter().map(|(name, value)| (*name, value.as_str())));

        let mut runner = self.sandbox.spawn_with_env(&full_args, &full_env);
        runner.wait_for_stderr("runner started", START_TIMEOUT);
        runner
    }

    /// Returns every execution, oldest first.
    ///
    /// # Panics
    ///
    /// Panics when the executions cannot be read.
    pub fn executions(&self) -> Vec<Execution> {
        self.sandbox.executions()
    }

    /// Polls every execution until `done` holds for them, and returns them.
    ///
    /// # Panics
    ///
    /// Panics after `timeout`, with `expected` and the executions seen.
    pub fn wait_for_executions(
        &self,
        timeout: Duration,
        expected: &str,
        mut done: impl FnMut(&[Execution]) -> bool,
    ) -> Vec<Execution> {
        let deadline = Instant::now() + timeout;
        loop {
            let executions = self.executions();
            if done(&executions) {
                return executions;
            }
            if Instant::now() >= deadline {
                let recent = &executions[executions.len().saturating_sub(40)..];
                panic!(
                    "timed out after {timeout:?} waiting for {expected}; the last executions:\n{}",
                    describe(recent)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Closes every connection to the test database, other than the one
    /// that closes them, as a server restart would, and returns how many
    /// it closed. The server itself keeps running, since other tests share
    /// it.
    ///
    /// # Panics
    ///
    /// Panics on SQLite, which has no connections to close, and when the
    /// server cannot be reached or rejects the statements.
    pub fn close_connections(&self) -> usize {
        let server_url = self
            .backend
            .server_url()
            .unwrap_or_else(|| panic!("{} has no server connections to close", self.backend));
        match self.backend {
            Backend::Sqlite => unreachable!("SQLite has no server"),
            Backend::Postgres => close_postgres_connections(&server_url, &self.database_name),
            Backend::Mysql => close_mysql_connections(&server_url, &self.database_name),
        }
    }
}

#[derive(QueryableByName)]
struct Terminated {
    #[diesel(sql_type = Bool)]
    terminated: bool,
}

#[derive(QueryableByName)]
struct ConnectionId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

fn close_postgres_connections(server_url: &str, database: &str) -> usize {
    let mut connection = PgConnection::establish(server_url)
        .unwrap_or_else(|error| panic!("connect to the PostgreSQL server: {error}"));
    let rows: Vec<Terminated> = diesel::sql_query(
        "SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind::<diesel::sql_types::Text, _>(database)
    .load(&mut connection)
    .unwrap_or_else(|error| panic!("terminate the connections to {database}: {error}"));
    rows.iter().filter(|row| row.terminated).count()
}

fn close_mysql_connections(server_url: &str, database: &str) -> usize {
    let mut connection = MysqlConnection::establish(server_url)
        .unwrap_or_else(|error| panic!("connect to the MySQL server: {error}"));
    let ids: Vec<ConnectionId> = diesel::sql_query(
        "SELECT CAST(id AS SIGNED) AS id FROM information_schema.processlist \
         WHERE db = ? AND id <> CONNECTION_ID()",
    )
    .bind::<diesel::sql_types::Text, _>(database)
    .load(&mut connection)
    .unwrap_or_else(|error| panic!("list the connections to {database}: {error}"));
    let listed = ids.len();
    let mut closed = 0;
    let mut failures = Vec::new();
    for ConnectionId { id } in ids {
        // A connection may close on its own between the listing and the
        // kill, which then fails with "Unknown thread id".
        match connection.batch_execute(&format!("KILL CONNECTION {id}")) {
            Ok(()) => closed += 1,
            Err(error) => failures.push(format!("connection {id}: {error}")),
        }
    }
    assert!(
        closed > 0 || listed == 0,
        "none of the {listed} connections to {database} could be closed: {}",
        failures.join("; ")
    );
    closed
}

/// Runs `body` on a fresh database of the backend named `backend`
/// (`sqlite`, `postgres` or `mysql`), with runners of the host binary at
/// `host`, or returns at once when the backend is not enabled.
///
/// # Panics
///
/// Panics for another backend name, as [`TestDatabase::create`], and
/// whenever `body` panics.
pub fn run_on(host: &str, backend: &str, body: impl FnOnce(Cluster)) {
    let backend = match backend {
        "sqlite" => Backend::Sqlite,
        "postgres" => Backend::Postgres,
        "mysql" => Backend::Mysql,
        other => panic!("unknown backend `{other}`: use sqlite, postgres or mysql"),
    };
    if let Some(database) = TestDatabase::create(backend) {
        body(Cluster::new(host, database));
    }
}

/// Generates one test per named backend from one test body that gets a
/// [`Cluster`] of the test host binary.
///
/// Each function becomes a module with one `#[test]` per backend in the
/// brackets, named after it, so that a failure names its backend. A backend
/// whose server URL is not set passes without running.
///
/// ```ignore
/// support::cluster_tests! {
///     fn runners_share_ticks(cluster: Cluster) on [sqlite, postgres, mysql] {
///         let runner = cluster.start_runner("a", &[], &[]);
///     }
/// }
/// ```
#[macro_export]
macro_rules! cluster_tests {
    ($(
        $(#[doc = $doc:expr])*
        fn $name:ident($cluster:ident: Cluster) on [$($backend:ident),+ $(,)?] $body:block
    )*) => {$(
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($cluster: $crate::cluster::Cluster) $body

            $(
                #[test]
                fn $backend() {
                    $crate::cluster::run_on(
                        env!("CARGO_BIN_EXE_quicksilver-test-host"),
                        stringify!($backend),
                        body,
                    );
                }
            )+
        }
    )*};
}

/// Returns the environment of a runner that writes its heartbeat every
/// `interval` and takes runners silent for `timeout` for dead.
pub fn heartbeat_env(interval: Duration, timeout: Duration) -> Vec<(&'static str, String)> {
    vec![
        (
            "QUICKSILVER_TEST_HEARTBEAT_INTERVAL_MS",
            interval.as_millis().to_string(),
        ),
        (
            "QUICKSILVER_TEST_HEARTBEAT_TIMEOUT_MS",
            timeout.as_millis().to_string(),
        ),
    ]
}

/// Returns the environment entry of a runner whose clock runs `offset`
/// ahead of the system clock (behind when negative).
pub fn clock_offset_env(offset: TimeDelta) -> (&'static str, String) {
    (
        "QUICKSILVER_TEST_CLOCK_OFFSET_MS",
        offset.num_milliseconds().to_string(),
    )
}

/// Returns the first whole second at least `lead` from now, as the first
/// tick of tasks that every runner has started before.
pub fn whole_second_after(lead: Duration) -> DateTime<Utc> {
    let at = Utc::now() + TimeDelta::from_std(lead).unwrap_or(TimeDelta::MAX);
    let floor = at
        .duration_trunc(TimeDelta::seconds(1))
        .unwrap_or_else(|error| panic!("round {at} down to the second: {error}"));
    floor + TimeDelta::seconds(1)
}

/// Sends SIGTERM to each runner and waits for it to exit with 0.
///
/// # Panics
///
/// Panics when a runner does not exit within [`STOP_TIMEOUT`] or exits
/// with another status.
pub fn stop_runners(runners: &mut [HostProcess]) {
    for runner in runners.iter() {
        runner.signal("TERM");
    }
    for runner in runners.iter_mut() {
        let status = runner.wait(STOP_TIMEOUT);
        assert!(
            status.is_some_and(|status| status.success()),
            "the runner exits with 0 after SIGTERM, got {status:?}\n{}",
            tail(runner)
        );
    }
}

/// Checks that each runner still runs, `when` naming the moment for the
/// message.
///
/// # Panics
///
/// Panics when a runner exited, with its exit status and its last output.
pub fn assert_running(runners: &mut [HostProcess], when: &str) {
    for runner in runners.iter_mut() {
        if let Some(status) = runner.wait(Duration::ZERO) {
            panic!(
                "runner pid {} exited {when}, with {status}\n{}",
                runner.pid(),
                tail(runner)
            );
        }
    }
}

/// Returns the last lines of what the runner wrote, for assertion
/// messages: a runner of hundreds of ticks logs far too much to show.
pub fn tail(runner: &HostProcess) -> String {
    let stderr = runner.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    let last_lines = lines[lines.len().saturating_sub(30)..].join("\n");
    format!(
        "stdout:\n{}\nlast lines of stderr:\n{last_lines}",
        runner.stdout()
    )
}

/// Returns the lines of what the runner wrote to standard error that
/// contain `text`.
pub fn stderr_lines_with(runner: &HostProcess, text: &str) -> Vec<String> {
    runner
        .stderr()
        .lines()
        .filter(|line| line.contains(text))
        .map(str::to_owned)
        .collect()
}

/// Returns the process id in a runner identity `host:pid:random`.
pub fn identity_pid(identity: &str) -> Option<u32> {
    identity.rsplit(':').nth(1)?.parse().ok()
}

/// Returns the executions of the tasks with `task_ids`, grouped by task,
/// each group ordered by due time.
pub fn by_task<'a>(
    executions: &'a [Execution],
    task_ids: &[i64],
) -> BTreeMap<i64, Vec<&'a Execution>> {
    let mut groups: BTreeMap<i64, Vec<&Execution>> =
        task_ids.iter().map(|id| (*id, Vec::new())).collect();
    for execution in executions {
        let Some(group) = execution.task_id.and_then(|id| groups.get_mut(&id)) else {
            continue;
        };
        group.push(execution);
    }
    for group in groups.values_mut() {
        group.sort_by_key(|execution| (execution.due_at, execution.id));
    }
    groups
}

/// Returns one line for each due tick that more than one execution of the
/// same task served, naming the executions.
pub fn duplicate_ticks(groups: &BTreeMap<i64, Vec<&Execution>>) -> Vec<String> {
    let mut problems = Vec::new();
    for (task_id, executions) in groups {
        let mut by_due: BTreeMap<Option<DateTime<Utc>>, Vec<&Execution>> = BTreeMap::new();
        for execution in executions {
            by_due.entry(execution.due_at).or_default().push(execution);
        }
        for (due, runs) in by_due {
            if runs.len() > 1 {
                problems.push(format!(
                    "task {task_id}: tick {} ran {} times:\n{}",
                    show(due),
                    runs.len(),
                    describe_with_runner(&runs)
                ));
            }
        }
    }
    problems
}

/// Returns one line for each tick of the grid `first + k * period` within
/// `from..=to` that no execution of the task served, unless `excused`
/// returns true for the task and the tick.
pub fn missing_ticks(
    groups: &BTreeMap<i64, Vec<&Execution>>,
    first: DateTime<Utc>,
    period: TimeDelta,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    mut excused: impl FnMut(i64, DateTime<Utc>) -> bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (task_id, executions) in groups {
        let mut tick = first;
        while tick <= to {
            let served = executions.iter().any(|run| run.due_at == Some(tick));
            if tick >= from && !served && !excused(*task_id, tick) {
                problems.push(format!(
                    "task {task_id}: tick {} never ran",
                    show(Some(tick))
                ));
            }
            tick += period;
        }
    }
    problems
}

/// Fails the test with `failure`, a description of the problems, and up
/// to 20 of `problems` when there are any.
///
/// # Panics
///
/// Panics when `problems` is not empty.
pub fn assert_none(problems: &[String], failure: &str) {
    if problems.is_empty() {
        return;
    }
    let first: Vec<&str> = problems.iter().take(20).map(String::as_str).collect();
    panic!(
        "{} {failure}. The first {}:\n{}",
        problems.len(),
        first.len(),
        first.join("\n")
    );
}

/// Counts the executions by the process id of their runner.
pub fn runs_by_pid(executions: &[Execution]) -> BTreeMap<u32, usize> {
    let mut counts = BTreeMap::new();
    for execution in executions {
        if let Some(pid) = execution.runner.as_deref().and_then(identity_pid) {
            *counts.entry(pid).or_insert(0) += 1;
        }
    }
    counts
}

/// Returns the executions with `status`.
pub fn with_status(executions: &[Execution], status: Status) -> Vec<&Execution> {
    executions
        .iter()
        .filter(|execution| execution.status == status)
        .collect()
}

/// Formats executions one a line with their runner, for assertion
/// messages.
pub fn describe_with_runner(executions: &[&Execution]) -> String {
    let mut text = String::new();
    for execution in executions {
        let runner = execution.runner.as_deref().unwrap_or("-");
        let last_line = execution.output.lines().last().unwrap_or("");
        let _ = writeln!(
            text,
            "  #{} {} due {} started {} ended {} runner {runner} output {last_line:?}",
            execution.id,
            execution.status,
            show(execution.due_at),
            show(execution.started),
            show(execution.ended),
        );
    }
    text
}

/// Formats a time as `HH:MM:SS.ffffff`, or `-` for none.
pub fn show(time: Option<DateTime<Utc>>) -> String {
    match time {
        Some(time) => time.format("%H:%M:%S%.6f").to_string(),
        None => "-".to_owned(),
    }
}
