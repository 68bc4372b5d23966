//! The command-line interface a host embeds in its own binary.
//!
//! [`Cli`] is a clap parser with the whole tree: `run-queue`,
//! `install-tasks`, `check`, `tasks`, `executions`, `run` and `status`. A
//! host that has its own CLI nests [`Cli`] as one of its subcommands.
//!
//! Exit codes: 0 for success, 1 when a command run with `run` fails or
//! `check` finds a problem, 2 for invalid input (an unknown command, a bad
//! interval or cron expression, a missing task), as clap does for usage
//! errors. `status` is a Nagios-style check: 0 when the status report finds
//! no issue, 1 when it finds one, and 3 (Nagios's UNKNOWN) when the
//! database cannot be opened or read.
//!
//! # Examples
//!
//! ```no_run
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! enum Host {
//!     /// Serve the web site.
//!     Serve,
//!     /// Manage recurring tasks.
//!     Tasks(quicksilver::cli::Cli),
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     match Host::parse() {
//!         Host::Serve => std::process::ExitCode::SUCCESS,
//!         Host::Tasks(cli) => cli.run().await,
//!     }
//! }
//! ```

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Parser, Subcommand};
use tokio::sync::watch;

use crate::alert::AlertSettings;
use crate::clock::{Clock, SystemClock};
use crate::command::{check_command, CauseChain};
use crate::execution::{summary_line, Execution, ExecutionFilter, Status};
use crate::lock;
use crate::runner::{self, run_command, RunRequest, Runner, StopReason};
use crate::schedule::Schedule;
use crate::store::{database_url_from_env, Store, StoreError, DATABASE_URL_VAR};
use crate::task::{declarations, NewTask, Task, TaskChanges, TaskFilter, DEFAULT_QUEUE};

/// The environment variable listing `check` ids to silence, comma-separated.
pub const SILENCED_CHECKS_VAR: &str = "QUICKSILVER_SILENCED_CHECKS";

/// The exit code for invalid input.
const EXIT_INVALID: u8 = 2;

/// The exit code of `status` when the database cannot be opened or read:
/// Nagios's UNKNOWN, so that a monitor can distinguish it from a report
/// with issues.
const EXIT_UNKNOWN: u8 = 3;

/// quicksilver's command tree, with the options every subcommand shares.
#[derive(Debug, Parser)]
#[command(about = "Runs and manages recurring tasks")]
pub struct Cli {
    /// The shared options.
    #[command(flatten)]
    pub options: CliOptions,

    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand shares.
#[derive(Debug, Clone, Args)]
pub struct CliOptions {
    /// Database URL: a SQLite file path (created when missing),
    /// `postgres://USER@HOST/DB` or `mysql://USER@HOST/DB`.
    #[arg(long, global = true, env = DATABASE_URL_VAR, value_name = "URL")]
    pub database: Option<String>,

    /// Folder of the lock files of queues and locked commands [default: the
    /// system's temporary folder].
    #[arg(long, global = true, env = lock::LOCK_DIR_VAR, value_name = "DIR")]
    pub lock_dir: Option<PathBuf>,
}

/// A quicksilver subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the tasks of one queue until stopped.
    RunQueue(RunQueueArgs),
    /// Inserts the declared tasks that are not installed yet.
    InstallTasks,
    /// Lists declared tasks that are not installed.
    Check(CheckArgs),
    /// Lists and manages tasks.
    Tasks(TasksArgs),
    /// Lists executions, newest first.
    Executions(ExecutionsArgs),
    /// Runs one command in the foreground and records it as an execution.
    Run(RunArgs),
    /// Prints the status report as JSON and exits 1 when it finds an issue.
    #[command(after_help = STATUS_EXIT_CODES)]
    Status(StatusArgs),
}

/// Options of `run-queue`.
#[derive(Debug, Clone, Args)]
pub struct RunQueueArgs {
    /// The queue to run.
    #[arg(long, default_value = DEFAULT_QUEUE, value_name = "NAME")]
    pub task_queue: String,

    /// Maximum sleep between two checks for tasks changed by other
    /// processes, in seconds. Due tasks wake the runner on time regardless.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS", value_parser = positive_seconds)]
    pub sleep_duration: f64,

    /// Minutes after which the runner finishes its current runs and starts
    /// afresh (re-executing this program) to return memory; 0 or unset never.
    #[arg(long, value_name = "MINUTES", value_parser = clap::value_parser!(u64).range(0..=5_256_000))]
    pub restart_after: Option<u64>,

    /// How many executions of the queue may run at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,

    /// Seconds running executions get to finish after SIGINT or SIGTERM
    /// before they are recorded as killed.
    #[arg(long, default_value_t = runner::DEFAULT_GRACE_PERIOD.as_secs_f64(), value_name = "SECONDS", value_parser = non_negative_seconds)]
    pub grace_period: f64,

    /// Max duration in seconds of runs of tasks that set none.
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub max_duration: Option<f64>,

    /// Seconds between two heartbeats of the runner.
    #[arg(long, default_value_t = runner::DEFAULT_HEARTBEAT_INTERVAL.as_secs_f64(), value_name = "SECONDS", value_parser = positive_seconds)]
    pub heartbeat: f64,

    /// Seconds without a heartbeat after which another runner counts as
    /// dead, and its running executions are recorded as killed; at least
    /// twice `--heartbeat`.
    #[arg(long, default_value_t = runner::DEFAULT_HEARTBEAT_TIMEOUT.as_secs_f64(), value_name = "SECONDS", value_parser = positive_seconds)]
    pub heartbeat_timeout: f64,

    /// The alert rules and where alerts go.
    #[command(flatten)]
    pub alerts: AlertArgs,
}

/// Alert options of `run-queue`. Alerts go to the log, and by e-mail when
/// an SMTP server is set.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Alerts")]
pub struct AlertArgs {
    /// Turns the alert rules off for this runner; other runners still
    /// evaluate them.
    #[arg(long)]
    pub no_alerts: bool,

    /// Seconds a task's alerts stay quiet after one is sent.
    #[arg(long, default_value_t = AlertSettings::default().postpone.as_secs_f64(), value_name = "SECONDS", value_parser = positive_seconds)]
    pub alert_postpone: f64,

    /// Seconds past its next run after which an idle task is overdue.
    #[arg(long, default_value_t = AlertSettings::default().overdue_after.as_secs_f64(), value_name = "SECONDS", value_parser = non_negative_seconds)]
    pub overdue_after: f64,

    /// Seconds under which a run raises no alert from its task's history
    /// (`--alert-max-runtime`, when lower, still applies).
    #[arg(long, default_value_t = AlertSettings::default().min_runtime.as_secs_f64(), value_name = "SECONDS", value_parser = non_negative_seconds)]
    pub alert_min_runtime: f64,

    /// Seconds over which a run always raises a runtime alert [default:
    /// none].
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub alert_max_runtime: Option<f64>,

    /// Standard deviations above the mean runtime that make a run an
    /// outlier.
    #[arg(long, default_value_t = AlertSettings::default().deviations, value_name = "N", value_parser = non_negative_number)]
    pub alert_deviations: f64,

    /// Successful runs a task needs, more than this, before its runs are
    /// compared with them.
    #[arg(long, default_value_t = AlertSettings::default().min_runs, value_name = "N")]
    pub alert_min_runs: u64,

    /// Makes runs that end in error alert, for tasks that do not choose
    /// otherwise (`tasks edit --alert-on-failure`).
    #[arg(long)]
    pub alert_on_failure: bool,

    /// Seconds between two evaluations of the alert rules.
    #[arg(long, default_value_t = AlertSettings::default().check_interval.as_secs_f64(), value_name = "SECONDS", value_parser = positive_seconds)]
    pub alert_check_interval: f64,
}

impl AlertArgs {
    /// Returns the alert settings these options describe.
    pub fn settings(&self) -> AlertSettings {
        AlertSettings {
            postpone: Duration::from_secs_f64(self.alert_postpone),
            overdue_after: Duration::from_secs_f64(self.overdue_after),
            min_runtime: Duration::from_secs_f64(self.alert_min_runtime),
            max_runtime: self.alert_max_runtime.map(Duration::from_secs_f64),
            deviations: self.alert_deviations,
            min_runs: self.alert_min_runs,
            alert_on_failure: self.alert_on_failure,
            check_interval: Duration::from_secs_f64(self.alert_check_interval),
        }
    }
}

/// Options of `check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// A check id to silence; repeatable. QUICKSILVER_SILENCED_CHECKS adds
    /// more, comma-separated.
    #[arg(long, value_name = "ID")]
    pub silence: Vec<String>,
}

/// Options of `tasks`: a listing, or an action.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TasksArgs {
    /// The action. Without one, the tasks are listed.
    #[command(subcommand)]
    pub action: Option<TaskAction>,

    /// The listing's filters.
    #[command(flatten)]
    pub list: TaskListArgs,
}

/// Filters of the task listing.
#[derive(Debug, Clone, Default, Args)]
pub struct TaskListArgs {
    /// Only tasks of this queue.
    #[arg(long, value_name = "NAME")]
    pub queue: Option<String>,

    /// Only tasks of this command.
    #[arg(long, value_name = "NAME")]
    pub command: Option<String>,

    /// Only paused tasks.
    #[arg(long, conflicts_with = "active")]
    pub paused: bool,

    /// Only tasks that are not paused.
    #[arg(long)]
    pub active: bool,

    /// Prints a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// An action on tasks.
#[derive(Debug, Clone, Subcommand)]
pub enum TaskAction {
    /// Lists tasks.
    List(TaskListArgs),
    /// Shows one task and its next runs.
    Show(TaskIdArgs),
    /// Adds a task.
    Add(TaskAddArgs),
    /// Changes fields of a task.
    Edit(TaskEditArgs),
    /// Pauses a task: runners skip it.
    Pause(TaskIdArgs),
    /// Resumes a paused task.
    Resume(TaskIdArgs),
    /// Deletes a task; its executions stay.
    #[command(alias = "delete")]
    Remove(TaskIdArgs),
    /// Makes a task due now.
    RunNow(TaskIdArgs),
}

/// A task id.
#[derive(Debug, Clone, Args)]
pub struct TaskIdArgs {
    /// The task's id.
    pub id: i64,

    /// Prints JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Schedule options shared by `tasks add` and `tasks edit`.
#[derive(Debug, Clone, Default, Args)]
pub struct ScheduleArgs {
    /// Repeat interval in seconds (fixed-rate).
    #[arg(
        long,
        value_name = "SECONDS",
        conflicts_with = "cron",
        allow_negative_numbers = true
    )]
    pub every: Option<String>,

    /// Cron expression with a seconds field, such as "0 */5 * * * *".
    #[arg(long, value_name = "EXPRESSION")]
    pub cron: Option<String>,

    /// IANA time zone of the cron expression [default: UTC].
    #[arg(long, value_name = "ZONE", conflicts_with = "every")]
    pub time_zone: Option<String>,
}

/// Options of `tasks add`.
#[derive(Debug, Clone, Args)]
pub struct TaskAddArgs {
    /// The command to run.
    pub command: String,

    /// Arguments passed to the command, one word each; put `--` before
    /// arguments that start with a dash.
    #[arg(value_name = "ARGUMENT")]
    pub arguments: Vec<String>,

    /// The schedule.
    #[command(flatten)]
    pub schedule: ScheduleArgs,

    /// The queue.
    #[arg(long, default_value = DEFAULT_QUEUE, value_name = "NAME")]
    pub queue: String,

    /// Seconds after which a run is stopped and recorded as killed.
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub max_duration: Option<String>,

    /// First run, as RFC 3339 or `now` [default: the schedule's first tick].
    #[arg(long, value_name = "TIME")]
    pub next_run: Option<String>,

    /// Adds the task paused.
    #[arg(long)]
    pub paused: bool,

    /// Whether a run that ends in `error` raises an alert: `on`, `off`, or
    /// `default` to follow the runner's setting.
    #[arg(long, value_name = "on|off|default", default_value = "default")]
    pub alert_on_failure: String,

    /// Prints the task as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `tasks edit`.
#[derive(Debug, Clone, Args)]
pub struct TaskEditArgs {
    /// The task's id.
    pub id: i64,

    /// A new command.
    #[arg(long, value_name = "NAME")]
    pub command: Option<String>,

    /// A new schedule.
    #[command(flatten)]
    pub schedule: ScheduleArgs,

    /// A new queue.
    #[arg(long, value_name = "NAME")]
    pub queue: Option<String>,

    /// A new max duration in seconds, or `none` to remove it.
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub max_duration: Option<String>,

    /// A new next run, as RFC 3339 or `now`.
    #[arg(long, value_name = "TIME")]
    pub next_run: Option<String>,

    /// Whether a run that ends in `error` raises an alert: `on`, `off`, or
    /// `default` to follow the runner's setting.
    #[arg(long, value_name = "on|off|default")]
    pub alert_on_failure: Option<String>,

    /// New arguments; every word after this flag is one argument, so give
    /// it last. With no words it clears the arguments.
    #[arg(long, num_args = 0.., allow_hyphen_values = true, value_name = "ARGUMENT")]
    pub arguments: Option<Vec<String>>,

    /// Prints the task as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `executions`.
#[derive(Debug, Clone, Args)]
pub struct ExecutionsArgs {
    /// Only executions with this status: pending, ongoing, success, error
    /// or killed.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,

    /// Only executions of this task id.
    #[arg(long, value_name = "ID")]
    pub task: Option<i64>,

    /// Only executions of this command.
    #[arg(long, value_name = "NAME")]
    pub command: Option<String>,

    /// Only executions of this queue.
    #[arg(long, value_name = "NAME")]
    pub queue: Option<String>,

    /// At most this many executions.
    #[arg(
        long,
        default_value_t = 20,
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub limit: i64,

    /// Shows the execution with this id in full, output included.
    #[arg(long, value_name = "ID", conflicts_with_all = ["status", "task", "command", "queue"])]
    pub id: Option<i64>,

    /// Prints a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Options of `run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The command to run.
    pub command: String,

    /// Arguments passed to the command as they are.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGUMENT"
    )]
    pub arguments: Vec<String>,
}

/// Options of `status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Seconds past its next run after which a task that is not running,
    /// and whose queue runs nothing, is overdue.
    #[arg(
        long,
        default_value_t = crate::alert::AlertSettings::default().overdue_after.as_secs_f64(),
        value_name = "SECONDS",
        value_parser = non_negative_seconds,
        allow_negative_numbers = true
    )]
    pub overdue_after: f64,
}

/// The exit codes of `status`, as its help lists them.
const STATUS_EXIT_CODES: &str = "\
Exit codes, as a Nagios check reads them:
  0  no issue (the report's status is `ok`)
  1  at least one issue (the report's status is `error`)
  2  invalid options
  3  the database cannot be opened or read (Nagios's UNKNOWN); the reason
     is on standard error and in the `error` field of the JSON";

/// A failure of a subcommand, with the exit code it maps to.
#[derive(Debug)]
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    fn invalid(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: EXIT_INVALID,
        }
    }

    fn failed(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: 1,
        }
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        let code = match error {
            StoreError::TaskNotFound { .. }
            | StoreError::ExecutionNotFound { .. }
            | StoreError::InvalidTask { .. }
            | StoreError::UnsupportedUrl { .. } => EXIT_INVALID,
            _ => 1,
        };
        Failure {
            message: CauseChain(&error).to_string().replace('\n', ": "),
            code,
        }
    }
}

type Outcome = Result<u8, Failure>;

impl Cli {
    /// Runs the parsed subcommand and returns the process's exit code.
    ///
    /// Errors are printed to standard error as one line.
    pub async fn run(self) -> ExitCode {
        match self.execute().await {
            Ok(code) => ExitCode::from(code),
            Err(failure) => {
                eprintln!("error: {}", failure.message);
                ExitCode::from(failure.code)
            }
        }
    }

    async fn execute(self) -> Outcome {
        let options = self.options;
        match self.command {
            Command::RunQueue(args) => run_queue(&options, args).await,
            Command::InstallTasks => install_tasks(&options).await,
            Command::Check(args) => check(&options, args).await,
            Command::Tasks(args) => tasks(&options, args).await,
            Command::Executions(args) => executions(&options, args).await,
            Command::Run(args) => run_foreground(&options, args).await,
            Command::Status(args) => status(&options, args).await,
        }
    }
}

async fn open_store(options: &CliOptions) -> Result<Store, Failure> {
    let url = options
        .database
        .clone()
        .unwrap_or_else(database_url_from_env);
    Store::open(&url).await.map_err(|error| {
        let mut failure = Failure::from(error);
        failure.code = EXIT_INVALID.max(failure.code);
        failure
    })
}

fn lock_dir(options: &CliOptions) -> PathBuf {
    options
        .lock_dir
        .clone()
        .unwrap_or_else(lock::default_lock_dir)
}

/// The longest duration, in seconds, that a duration flag accepts: ten
/// years.
const MAX_SECONDS: f64 = 315_360_000.0;

fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value > 0.0 && value <= MAX_SECONDS => Ok(value),
        _ => Err(format!(
            "`{text}` is not a number of seconds above 0 and at most {MAX_SECONDS} (ten years)"
        )),
    }
}

fn non_negative_number(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(number) if number.is_finite() && number >= 0.0 => Ok(number),
        _ => Err(format!(
            "`{text}` is not a number of 0 or more, such as 2 or 1.5"
        )),
    }
}

fn non_negative_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=MAX_SECONDS).contains(&value) => Ok(value),
        _ => Err(format!(
            "`{text}` is not a number of seconds from 0 to {MAX_SECONDS} (ten years)"
        )),
    }
}

async fn run_queue(options: &CliOptions, args: RunQueueArgs) -> Outcome {
    // Every option and the e-mail settings are checked before the database
    // is opened, so that a bad one creates and migrates nothing.
    configure_runner(
        options,
        &args,
        Runner::run_queue(args.task_queue.clone()),
        false,
    )?
    .build()
    .map_err(|error| Failure::invalid(error.to_string()))?;
    let store = open_store(options).await?;
    let runner = configure_runner(
        options,
        &args,
        Runner::run_queue(args.task_queue.clone()).store(store),
        true,
    )?
    .build()
    .map_err(|error| Failure::invalid(error.to_string()))?;

    match runner.run().await {
        Ok(StopReason::QueueTaken { holder }) => {
            // The runner logged it; say it here too when nothing shows logs.
            if !tracing::dispatcher::has_been_set() {
                eprintln!(
                    "queue `{}` is taken by another runner on this machine ({holder}); exiting",
                    args.task_queue
                );
            }
            Ok(0)
        }
        Ok(StopReason::RestartDue) => restart_process(),
        Ok(_) => Ok(0),
        Err(error) => Err(Failure::failed(
            CauseChain(&error).to_string().replace('\n', ": "),
        )),
    }
}

/// Applies the options of `run-queue` to `builder`, with the alert sinks
/// of the environment, saying which in the log when `announce` is set.
fn configure_runner(
    options: &CliOptions,
    args: &RunQueueArgs,
    builder: runner::RunnerBuilder,
    announce: bool,
) -> Result<runner::RunnerBuilder, Failure> {
    let mut builder = builder
        .lock_dir(lock_dir(options))
        .sleep_duration(Duration::from_secs_f64(args.sleep_duration))
        .concurrency(usize::from(args.concurrency))
        .grace_period(Duration::from_secs_f64(args.grace_period))
        .heartbeat(
            Duration::from_secs_f64(args.heartbeat),
            Duration::from_secs_f64(args.heartbeat_timeout),
        );
    if let Some(minutes) = args.restart_after.filter(|minutes| *minutes > 0) {
        builder = builder.restart_after(Duration::from_secs(minutes.saturating_mul(60)));
    }
    if let Some(seconds) = args.max_duration {
        builder = builder.default_max_duration(Duration::from_secs_f64(seconds));
    }
    if args.alerts.no_alerts {
        Ok(builder.no_alerts())
    } else {
        with_alert_sinks(builder.alerts(args.alerts.settings()), announce)
    }
}

/// Adds the e-mail sink that `QUICKSILVER_SMTP_URL`, `QUICKSILVER_ADMINS`
/// and `QUICKSILVER_ALERT_FROM` describe, if the first is set. Alerts go to
/// the log as well.
#[cfg(feature = "email")]
fn with_alert_sinks(
    builder: runner::RunnerBuilder,
    announce: bool,
) -> Result<runner::RunnerBuilder, Failure> {
    let email =
        crate::alert::EmailSink::from_env().map_err(|error| Failure::invalid(error.to_string()))?;
    Ok(match email {
        Some(email) => {
            if announce {
                tracing::info!(sink = ?email, "alerts go to the log and by e-mail");
            }
            builder.alert_sink(email)
        }
        None => builder,
    })
}

/// Without the `email` feature, alerts go to the log; an SMTP server set
/// in the environment is an error rather than silently unused.
#[cfg(not(feature = "email"))]
fn with_alert_sinks(
    builder: runner::RunnerBuilder,
    _announce: bool,
) -> Result<runner::RunnerBuilder, Failure> {
    if std::env::var_os("QUICKSILVER_SMTP_URL").is_some() {
        return Err(Failure::invalid(
            "QUICKSILVER_SMTP_URL is set but this program was built without quicksilver's \
             `email` feature; enable the feature or unset the variable"
                .to_owned(),
        ));
    }
    Ok(builder)
}

/// Replaces this process with a fresh run of the same program and
/// arguments, so the memory of past runs returns to the system.
#[cfg(unix)]
fn restart_process() -> Outcome {
    use std::os::unix::process::CommandExt;

    let program = std::env::current_exe()
        .map_err(|error| Failure::failed(format!("cannot restart: {error}")))?;
    tracing::info!(program = %program.display(), "restarting the runner process");
    let error = std::process::Command::new(&program)
        .args(std::env::args_os().skip(1))
        .exec();
    Err(Failure::failed(format!(
        "cannot restart `{}`: {error}; start the runner again (from cron, for example)",
        program.display()
    )))
}

#[cfg(not(unix))]
fn restart_process() -> Outcome {
    // Without exec, exit and let the service manager or cron start a fresh one.
    Ok(0)
}

async fn install_tasks(options: &CliOptions) -> Outcome {
    let declared = declarations().map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        Failure::invalid(lines.join("\nerror: "))
    })?;
    let store = open_store(options).await?;
    let total = declared.len();
    let installed = store
        .install(declared.into_iter().map(|declared| declared.task).collect())
        .await?;
    for task in &installed {
        println!(
            "installed task {}: {} ({})",
            task.id,
            describe_task(task),
            task.declaration.as_deref().unwrap_or("")
        );
    }
    if installed.is_empty() {
        println!("all {total} declared tasks are installed");
    }
    Ok(0)
}

async fn check(options: &CliOptions, args: CheckArgs) -> Outcome {
    let declared = declarations().map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        Failure::invalid(lines.join("\nerror: "))
    })?;
    let store = open_store(options).await?;
    let installed: HashSet<String> = store.installed_declarations().await?.into_iter().collect();
    let mut silenced: HashSet<String> = args.silence.into_iter().collect();
    if let Ok(list) = std::env::var(SILENCED_CHECKS_VAR) {
        silenced.extend(list.split(',').map(|id| id.trim().to_owned()));
    }

    let mut problems = 0;
    for declaration in declared {
        let check_id = format!("{}.W001", declaration.id);
        if installed.contains(&declaration.id) || silenced.contains(&check_id) {
            continue;
        }
        problems += 1;
        println!(
            "{check_id}: declared task `{}` ({}, declared in {}) is not installed\n  \
             hint: run `install-tasks` to install it, or silence this check with \
             `--silence {check_id}` or {SILENCED_CHECKS_VAR}={check_id}",
            declaration.id,
            describe_new_task(&declaration.task),
            declaration.module
        );
    }
    if problems == 0 {
        println!("all declared tasks are installed");
        Ok(0)
    } else {
        Ok(1)
    }
}

async fn tasks(options: &CliOptions, args: TasksArgs) -> Outcome {
    let store = open_store(options).await?;
    let action = args.action.unwrap_or(TaskAction::List(args.list));
    match action {
        TaskAction::List(list) => {
            let filter = TaskFilter {
                queue: list.queue,
                command: list.command,
                paused: if list.paused {
                    Some(true)
                } else if list.active {
                    Some(false)
                } else {
                    None
                },
            };
            let tasks = store.tasks(filter).await?;
            if list.json {
                print_json(&tasks.iter().map(task_json).collect::<Vec<_>>())?;
            } else {
                print_task_table(&tasks);
            }
            Ok(0)
        }
        TaskAction::Show(args) => {
            let task = store.task(args.id).await?;
            print_task(&task, args.json, true)
        }
        TaskAction::Add(args) => {
            let task = add_task(&store, args.clone()).await?;
            print_task(&task, args.json, false)
        }
        TaskAction::Edit(args) => {
            let json = args.json;
            let task = edit_task(&store, args).await?;
            print_task(&task, json, false)
        }
        TaskAction::Pause(args) => {
            let task = store.pause_task(args.id).await?;
            print_task(&task, args.json, false)
        }
        TaskAction::Resume(args) => {
            let task = store.resume_task(args.id).await?;
            print_task(&task, args.json, false)
        }
        TaskAction::Remove(args) => {
            store.remove_task(args.id).await?;
            println!("removed task {}", args.id);
            Ok(0)
        }
        TaskAction::RunNow(args) => {
            let task = store.run_task_now(args.id).await?;
            print_task(&task, args.json, false)
        }
    }
}

fn parse_schedule(args: &ScheduleArgs) -> Result<Option<Schedule>, Failure> {
    if args.time_zone.is_some() && args.cron.is_none() {
        return Err(Failure::invalid(
            "`--time-zone` applies to cron schedules: give `--cron EXPRESSION` too",
        ));
    }
    if let Some(every) = &args.every {
        let seconds = every.trim().parse::<u64>().map_err(|_| {
            Failure::invalid(format!(
                "invalid repeat interval `{every}`: give a whole number of seconds, such as `--every 30`"
            ))
        })?;
        let schedule =
            Schedule::every(seconds).map_err(|error| Failure::invalid(error.to_string()))?;
        return Ok(Some(schedule));
    }
    if let Some(cron) = &args.cron {
        let zone = args.time_zone.as_deref().unwrap_or("UTC");
        let schedule =
            Schedule::cron(cron, zone).map_err(|error| Failure::invalid(error.to_string()))?;
        return Ok(Some(schedule));
    }
    Ok(None)
}

fn parse_seconds_option(text: &str) -> Result<Duration, Failure> {
    match text.trim().parse::<u64>() {
        Ok(seconds) if seconds > 0 && seconds as f64 <= MAX_SECONDS => {
            Ok(Duration::from_secs(seconds))
        }
        _ => Err(Failure::invalid(format!(
            "invalid max duration `{text}`: give a whole number of seconds from 1 to \
             {MAX_SECONDS} (ten years)"
        ))),
    }
}

/// Parses an `--alert-on-failure` value. `default` parses as `None`, which
/// follows the runner's setting.
fn parse_alert_on_failure(text: &str) -> Result<Option<bool>, Failure> {
    match text.trim() {
        "on" => Ok(Some(true)),
        "off" => Ok(Some(false)),
        "default" => Ok(None),
        _ => Err(Failure::invalid(format!(
            "invalid alert-on-failure setting `{text}`: give `on`, `off`, or `default` to \
             follow the runner's setting"
        ))),
    }
}

/// Returns how `tasks show` spells a task's alert-on-failure setting, as
/// `--alert-on-failure` takes it.
fn alert_on_failure_text(setting: Option<bool>) -> &'static str {
    match setting {
        Some(true) => "on",
        Some(false) => "off",
        None => "default (the runner's setting)",
    }
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, Failure> {
    if text.trim() == "now" {
        return Ok(Utc::now());
    }
    DateTime::parse_from_rfc3339(text.trim())
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| {
            Failure::invalid(format!(
                "invalid time `{text}` ({error}): use RFC 3339, such as `2026-01-31T08:00:00Z`, or `now`"
            ))
        })
}

/// Checks that `command` is registered and accepts `arguments`, without
/// running it.
fn validate_command(store: &Store, command: &str, arguments: &[String]) -> Result<(), Failure> {
    check_command(store, command, arguments).map_err(Failure::invalid)
}

async fn add_task(store: &Store, args: TaskAddArgs) -> Result<Task, Failure> {
    validate_command(store, &args.command, &args.arguments)?;
    let schedule = parse_schedule(&args.schedule)?.ok_or_else(|| {
        Failure::invalid("a task needs a schedule: give `--every SECONDS` or `--cron EXPRESSION`")
    })?;
    let mut task = NewTask::new(args.command, schedule)
        .arguments(args.arguments)
        .queue(args.queue)
        .paused(args.paused);
    if let Some(max_duration) = &args.max_duration {
        task = task.max_duration(parse_seconds_option(max_duration)?);
    }
    if let Some(next_run) = &args.next_run {
        task = task.next_run(parse_time(next_run)?);
    }
    task.alert_on_failure = parse_alert_on_failure(&args.alert_on_failure)?;
    Ok(store.add_task(task).await?)
}

async fn edit_task(store: &Store, args: TaskEditArgs) -> Result<Task, Failure> {
    let current = store.task(args.id).await?;
    let command = args
        .command
        .clone()
        .unwrap_or_else(|| current.command.clone());
    let arguments = args
        .arguments
        .clone()
        .unwrap_or_else(|| current.arguments.clone());
    if args.command.is_some() || args.arguments.is_some() {
        validate_command(store, &command, &arguments)?;
    }

    // An edit keeps what it does not name: a new expression keeps the
    // task's zone, and a new zone alone applies to the task's expression.
    let mut schedule_args = args.schedule.clone();
    if schedule_args.cron.is_some() && schedule_args.time_zone.is_none() {
        schedule_args.time_zone = current.time_zone.clone();
    }
    if schedule_args.cron.is_none() && schedule_args.time_zone.is_some() {
        match &current.cron {
            Some(expression) => schedule_args.cron = Some(expression.clone()),
            None => {
                return Err(Failure::invalid(format!(
                    "`--time-zone` applies to cron schedules, and task {} repeats every \
                     interval; give `--cron EXPRESSION` too",
                    args.id
                )))
            }
        }
    }
    let mut changes = TaskChanges {
        command: args.command,
        arguments: args.arguments,
        queue: args.queue,
        schedule: parse_schedule(&schedule_args)?,
        ..TaskChanges::default()
    };
    if let Some(max_duration) = &args.max_duration {
        changes.max_duration = Some(if max_duration.trim() == "none" {
            None
        } else {
            Some(parse_seconds_option(max_duration)?)
        });
    }
    if let Some(next_run) = &args.next_run {
        changes.next_run = Some(parse_time(next_run)?);
    }
    if let Some(setting) = &args.alert_on_failure {
        changes.alert_on_failure = Some(parse_alert_on_failure(setting)?);
    }
    Ok(store.update_task(args.id, changes).await?)
}

async fn executions(options: &CliOptions, args: ExecutionsArgs) -> Outcome {
    let store = open_store(options).await?;
    if let Some(id) = args.id {
        let execution = store.execution(id).await?;
        if args.json {
            print_json(&execution)?;
        } else {
            print_execution(&execution);
        }
        return Ok(0);
    }
    let status = match &args.status {
        Some(text) => Some(
            text.parse::<Status>()
                .map_err(|error| Failure::invalid(error.to_string()))?,
        ),
        None => None,
    };
    if args.limit < 1 {
        return Err(Failure::invalid(format!(
            "invalid limit `{}`: give at least 1",
            args.limit
        )));
    }
    let filter = ExecutionFilter {
        status,
        task_id: args.task,
        command: args.command,
        queue: args.queue,
        limit: args.limit,
    };
    let executions = store.executions(filter).await?;
    if args.json {
        print_json(&executions)?;
    } else {
        print_execution_table(&executions);
    }
    Ok(0)
}

async fn run_foreground(options: &CliOptions, args: RunArgs) -> Outcome {
    let store = open_store(options).await?;
    validate_command(&store, &args.command, &args.arguments)?;

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let identity = runner::runner_identity();
    let started_at = clock.now();
    let execution_id = store
        .start_foreground(&args.command, &args.arguments, &identity, started_at)
        .await?;

    let (kill_sender, kill_receiver) = watch::channel(None);
    let signals = tokio::spawn(async move {
        if let Some(signal) = foreground_signal().await {
            let _ = kill_sender.send(Some(format!("killed: the process received {signal}")));
        }
    });
    let request = RunRequest {
        store: store.clone(),
        clock,
        command: args.command.clone(),
        arguments: args.arguments.clone(),
        task_id: None,
        execution_id,
        due_at: None,
        started_at,
        max_duration: None,
        lock_dir: lock_dir(options),
        holder: format!("pid {} foreground run {identity}", std::process::id()),
        lease_holder: identity.clone(),
        lease_timeout: crate::runner::DEFAULT_HEARTBEAT_TIMEOUT,
        echo: true,
        commands: tokio::runtime::Handle::current(),
    };
    let finish = run_command(request, kill_receiver).await;
    signals.abort();

    let status = finish.status;
    let failure_text = (status != Status::Success).then(|| {
        let line = summary_line(&finish.output);
        let line = line.strip_prefix("error: ").unwrap_or(line);
        line.strip_prefix("killed: ").unwrap_or(line).to_owned()
    });
    let span = tracing::info_span!("quicksilver.run", execution.id = execution_id, task.command = %args.command);
    runner::record(&store, finish, &span).await;
    match failure_text {
        None => Ok(0),
        Some(text) => {
            eprintln!("execution {execution_id} ended {status}: {text}");
            Ok(1)
        }
    }
}

async fn status(options: &CliOptions, args: StatusArgs) -> Outcome {
    let url = options
        .database
        .clone()
        .unwrap_or_else(database_url_from_env);
    if let Some(path) = missing_sqlite_file(&url) {
        return Err(unreadable(format!(
            "database file `{}` does not exist: check `--database` or {DATABASE_URL_VAR}; \
             a runner or `install-tasks` creates it",
            path.display()
        )));
    }
    let store = Store::open(&url)
        .await
        .map_err(|error| unreadable(Failure::from(error).message))?;

    let settings = crate::alert::AlertSettings {
        overdue_after: Duration::from_secs_f64(args.overdue_after),
        ..Default::default()
    };
    let report = crate::status::report(&store, &settings, Utc::now())
        .await
        .map_err(|error| unreadable(Failure::from(error).message))?;
    println!("{}", report.to_json());
    Ok(if report.is_ok() { 0 } else { 1 })
}

/// Prints the JSON of a status that could not be read, in the report's
/// shape as the HTTP endpoint returns it, and returns the failure for
/// standard error.
fn unreadable(message: String) -> Failure {
    let body = serde_json::json!({ "issues": [], "status": "error", "error": &message });
    println!(
        "{}",
        serde_json::to_string_pretty(&body).unwrap_or_else(|_| body.to_string())
    );
    Failure {
        message,
        code: EXIT_UNKNOWN,
    }
}

/// Returns the path of the SQLite file that `url` names when that file does
/// not exist, so that `status` reports it instead of creating an empty
/// database that reports no issue.
///
/// Reads SQLite URLs as the store does: a path with no scheme, or after
/// `sqlite://`, `sqlite:` or `file:`. Returns `None` for server URLs, and
/// for paths whose existence cannot be checked, which the store then
/// reports itself.
fn missing_sqlite_file(url: &str) -> Option<PathBuf> {
    let trimmed = url.trim();
    let path = match trimmed.split_once("://") {
        Some(("sqlite", rest)) => rest,
        Some(_) => return None,
        None => trimmed.strip_prefix("sqlite:").unwrap_or(trimmed),
    };
    let path = path.strip_prefix("file:").unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    let path = std::path::Path::new(path);
    match path.try_exists() {
        Ok(false) => Some(path.to_path_buf()),
        _ => None,
    }
}

#[cfg(unix)]
async fn foreground_signal() -> Option<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};

    let mut terminate = signal(SignalKind::terminate()).ok()?;
    let mut interrupt = signal(SignalKind::interrupt()).ok()?;
    tokio::select! {
        _ = terminate.recv() => Some("SIGTERM"),
        _ = interrupt.recv() => Some("SIGINT"),
    }
}

#[cfg(not(unix))]
async fn foreground_signal() -> Option<&'static str> {
    tokio::signal::ctrl_c().await.ok().map(|()| "SIGINT")
}

fn print_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|error| Failure::failed(format!("cannot encode JSON: {error}")))?;
    println!("{text}");
    Ok(())
}

fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn schedule_text(task: &Task) -> String {
    match task.schedule() {
        Ok(schedule) => schedule.to_string(),
        Err(error) => format!("invalid: {error}"),
    }
}

fn describe_task(task: &Task) -> String {
    format!(
        "{}{} ({}, queue {})",
        task.command,
        arguments_text(&task.arguments),
        schedule_text(task),
        task.queue
    )
}

fn describe_new_task(task: &NewTask) -> String {
    format!(
        "command `{}{}`, {}, queue {}",
        task.command,
        arguments_text(&task.arguments),
        task.schedule,
        task.queue
    )
}

fn arguments_text(arguments: &[String]) -> String {
    let mut text = String::new();
    for argument in arguments {
        if argument.is_empty() || argument.contains(char::is_whitespace) || argument.contains('"') {
            let _ = write!(text, " {argument:?}");
        } else {
            let _ = write!(text, " {argument}");
        }
    }
    text
}

/// Converts a task to JSON: its stored fields plus its schedule as text.
fn task_json(task: &Task) -> serde_json::Value {
    let mut value = serde_json::to_value(task).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert("schedule".to_owned(), schedule_text(task).into());
    }
    value
}

fn print_task(task: &Task, json: bool, with_preview: bool) -> Outcome {
    if json {
        print_json(&task_json(task))?;
        return Ok(0);
    }
    println!("task {}", task.id);
    println!(
        "  command:          {}{}",
        task.command,
        arguments_text(&task.arguments)
    );
    println!("  queue:            {}", task.queue);
    println!("  schedule:         {}", schedule_text(task));
    println!("  next run:         {}", format_time(task.next_run));
    if let Some(max_duration) = task.max_duration() {
        println!("  max duration:     {}", runner::humanize(max_duration));
    }
    println!(
        "  state:            {}",
        if task.paused { "paused" } else { "active" }
    );
    println!(
        "  alert on failure: {}",
        alert_on_failure_text(task.alert_on_failure)
    );
    if let Some(declaration) = &task.declaration {
        println!("  declared as:      {declaration}");
    }
    if with_preview {
        if let Ok(schedule) = task.schedule() {
            let upcoming = schedule.upcoming(task.next_run, 4);
            let runs: Vec<String> = std::iter::once(task.next_run)
                .chain(upcoming)
                .map(format_time)
                .collect();
            println!("  next runs:        {}", runs.join(", "));
        }
    }
    Ok(0)
}

fn print_task_table(tasks: &[Task]) {
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|task| {
            vec![
                task.id.to_string(),
                task.queue.clone(),
                format!("{}{}", task.command, arguments_text(&task.arguments)),
                schedule_text(task),
                format_time(task.next_run),
                if task.paused { "paused" } else { "active" }.to_owned(),
            ]
        })
        .collect();
    print_table(
        &["ID", "QUEUE", "COMMAND", "SCHEDULE", "NEXT RUN", "STATE"],
        &rows,
    );
}

fn print_execution_table(executions: &[Execution]) {
    let rows: Vec<Vec<String>> = executions
        .iter()
        .map(|execution| {
            let mut output = execution.summary().to_owned();
            if output.chars().count() > 60 {
                output = output.chars().take(57).collect::<String>() + "...";
            }
            vec![
                execution.id.to_string(),
                execution
                    .task_id
                    .map(|id| id.to_string())
                    .unwrap_or_else(|| "-".to_owned()),
                execution.command.clone(),
                execution.queue.clone().unwrap_or_else(|| "-".to_owned()),
                execution.status.to_string(),
                execution.started.map(format_time).unwrap_or_default(),
                execution
                    .runtime_seconds
                    .map(|seconds| format!("{seconds:.3}s"))
                    .unwrap_or_default(),
                output,
            ]
        })
        .collect();
    print_table(
        &[
            "ID", "TASK", "COMMAND", "QUEUE", "STATUS", "STARTED", "RUNTIME", "OUTPUT",
        ],
        &rows,
    );
}

fn print_execution(execution: &Execution) {
    println!("execution {}", execution.id);
    let task = execution
        .task_id
        .map(|id| id.to_string())
        .unwrap_or_else(|| "-".to_owned());
    println!("  task:     {task}");
    println!(
        "  command:  {}{}",
        execution.command,
        arguments_text(&execution.arguments)
    );
    println!("  queue:    {}", execution.queue.as_deref().unwrap_or("-"));
    println!("  status:   {}", execution.status);
    if let Some(due_at) = execution.due_at {
        println!("  due at:   {}", format_time(due_at));
    }
    if let Some(started) = execution.started {
        println!("  started:  {}", format_time(started));
    }
    if let Some(ended) = execution.ended {
        println!("  ended:    {}", format_time(ended));
    }
    if let Some(runtime) = execution.runtime_seconds {
        println!("  runtime:  {runtime:.3}s");
    }
    println!("  runner:   {}", execution.runner.as_deref().unwrap_or("-"));
    println!("  output:");
    for line in execution.output.lines() {
        println!("    {line}");
    }
}

/// Prints rows under a header, each column as wide as its widest cell.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    if rows.is_empty() {
        println!("(none)");
        return;
    }
    let mut widths: Vec<usize> = header.iter().map(|title| title.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let format_row = |cells: Vec<&str>| {
        let mut line = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if index + 1 == cells.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        line.trim_end().to_owned()
    };
    println!("{}", format_row(header.to_vec()));
    for row in rows {
        println!("{}", format_row(row.iter().map(String::as_str).collect()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_tree_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn every_rejects_text_with_the_value() {
        let args = ScheduleArgs {
            every: Some("soon".to_owned()),
            ..ScheduleArgs::default()
        };
        let failure = parse_schedule(&args).unwrap_err();
        assert_eq!(failure.code, EXIT_INVALID);
        assert!(failure.message.contains("`soon`"), "{}", failure.message);
    }

    #[test]
    fn time_accepts_rfc3339_and_now() {
        assert!(parse_time("2026-01-31T08:00:00Z").is_ok());
        assert!(parse_time("now").is_ok());
        assert_eq!(parse_time("tomorrow").unwrap_err().code, EXIT_INVALID);
    }

    #[test]
    fn alert_on_failure_accepts_on_off_default() {
        assert_eq!(parse_alert_on_failure("on").unwrap(), Some(true));
        assert_eq!(parse_alert_on_failure("off").unwrap(), Some(false));
        assert_eq!(parse_alert_on_failure(" default ").unwrap(), None);
    }

    #[test]
    fn alert_on_failure_rejects_other_values() {
        let failure = parse_alert_on_failure("yes").unwrap_err();
        assert_eq!(failure.code, EXIT_INVALID);
        for expected in ["`yes`", "`on`", "`off`", "`default`"] {
            assert!(
                failure.message.contains(expected),
                "the message names {expected}: {}",
                failure.message
            );
        }
    }

    #[test]
    fn alert_on_failure_text_reads_back_as_flag() {
        for setting in [Some(true), Some(false), None] {
            let text = alert_on_failure_text(setting);
            let flag = text.split_whitespace().next().unwrap_or_default();
            assert_eq!(parse_alert_on_failure(flag).unwrap(), setting, "{text}");
        }
    }

    #[test]
    fn add_alert_setting_defaults_to_runner() {
        let cli = Cli::try_parse_from(["host", "tasks", "add", "beat", "--every", "5"]).unwrap();
        let Command::Tasks(TasksArgs {
            action: Some(TaskAction::Add(args)),
            ..
        }) = cli.command
        else {
            panic!("`tasks add` parses as TaskAction::Add: {:?}", cli.command);
        };
        assert_eq!(args.alert_on_failure, "default");
    }

    #[test]
    fn arguments_text_quotes_spaces() {
        let arguments = vec!["--name".to_owned(), "a b".to_owned()];
        assert_eq!(arguments_text(&arguments), " --name \"a b\"");
    }

    #[test]
    fn missing_sqlite_file_reads_urls_as_the_store() {
        let folder = tempfile::tempdir().expect("create a temporary folder");
        let present = folder.path().join("present.sqlite3");
        std::fs::write(&present, b"").expect("create a file");
        let absent = folder.path().join("absent.sqlite3");
        let present = present.to_string_lossy();
        let absent = absent.to_string_lossy();

        assert_eq!(missing_sqlite_file(&present), None);
        assert_eq!(missing_sqlite_file(&format!("sqlite://{present}")), None);
        for url in [
            absent.to_string(),
            format!("sqlite://{absent}"),
            format!("sqlite:{absent}"),
            format!("file:{absent}"),
        ] {
            assert_eq!(
                missing_sqlite_file(&url).as_deref(),
                Some(std::path::Path::new(&*absent)),
                "{url}"
            );
        }
        assert_eq!(missing_sqlite_file("postgres://user@127.0.0.1/app"), None);
        assert_eq!(missing_sqlite_file(":memory:"), None);
    }
}
