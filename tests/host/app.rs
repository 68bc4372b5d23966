//! The host application that the process-level tests start, signal and kill.
//!
//! It is quicksilver's CLI with a few commands of its own: `sleep_for` and
//! the locked `exclusive_sleep` take a set time, and `beat` returns at once.
//! Two task declarations, one on the `other` queue, give `install-tasks` and
//! `check` something to install.
//!
//! The multi-runner tests use three more commands. `record_tick` appends
//! the tick it serves to a file that every runner process shares, and the
//! locked `exclusive_span` appends when it starts and ends.
//! `clear_successful_now` deletes the successful executions that ended
//! before the runner's clock. They also set runner options that the CLI
//! does not have through environment variables, read by `run-queue` only,
//! all in milliseconds:
//!
//! - `QUICKSILVER_TEST_HEARTBEAT_INTERVAL_MS`: the time between two
//!   heartbeats.
//! - `QUICKSILVER_TEST_HEARTBEAT_TIMEOUT_MS`: the heartbeat age after
//!   which a runner counts as dead. Set both heartbeat variables or none.
//! - `QUICKSILVER_TEST_CLOCK_OFFSET_MS`: the offset of the runner's clock
//!   from the system clock, negative for a clock behind.
//!
//! ```text
//! cargo build --bin quicksilver-test-host
//! QUICKSILVER_DATABASE_URL=/tmp/host.sqlite3 target/debug/quicksilver-test-host tasks
//! ```

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{SecondsFormat, TimeDelta, Utc};
use clap::Parser;
use quicksilver::cli::{Cli, CliOptions, Command, RunQueueArgs};
use quicksilver::{Context, Runner, Status, StopReason, TaskDeclaration, TestClock};
use tracing_subscriber::prelude::*;

/// The environment variable with the time between two heartbeats of a
/// runner started with `run-queue`, in milliseconds.
const HEARTBEAT_INTERVAL_VAR: &str = "QUICKSILVER_TEST_HEARTBEAT_INTERVAL_MS";

/// The environment variable with the heartbeat age, in milliseconds, after
/// which a runner started with `run-queue` takes another for dead.
const HEARTBEAT_TIMEOUT_VAR: &str = "QUICKSILVER_TEST_HEARTBEAT_TIMEOUT_MS";

/// The environment variable with the offset of the clock of a runner
/// started with `run-queue` from the system clock, in milliseconds.
const CLOCK_OFFSET_VAR: &str = "QUICKSILVER_TEST_CLOCK_OFFSET_MS";

/// Arguments of `sleep_for` and `exclusive_sleep`.
#[derive(Debug, clap::Parser)]
struct SleepArgs {
    /// How long the command sleeps, in seconds.
    #[arg(long)]
    seconds: f64,

    /// Text written at the start of the lines before and after the sleep.
    #[arg(long, default_value = "sleep")]
    write: String,
}

/// Sleeps, writing a line before and after.
#[quicksilver::command]
async fn sleep_for(ctx: &Context, args: SleepArgs) {
    sleep_between_lines(ctx, &args).await;
}

/// Sleeps like `sleep_for`, but never two runs at once on the machine.
#[quicksilver::command(lock)]
async fn exclusive_sleep(ctx: &Context, args: SleepArgs) {
    sleep_between_lines(ctx, &args).await;
}

/// Writes one line.
#[quicksilver::command]
async fn beat(ctx: &Context) {
    ctx.write_line(format!("beat at {}", ctx.now().to_rfc3339()));
}

/// Arguments of `record_tick`.
#[derive(Debug, clap::Parser)]
struct RecordArgs {
    /// The file that gets one line for each run.
    #[arg(long)]
    file: PathBuf,

    /// How long the command sleeps after writing its line, in seconds.
    #[arg(long, default_value_t = 0.0)]
    seconds: f64,
}

/// Appends `task=ID due=TIME execution=ID pid=PID` to the file, so that a
/// test can count the runs of each tick after their rows are deleted, then
/// sleeps.
#[quicksilver::command]
async fn record_tick(ctx: &Context, args: RecordArgs) -> Result<(), std::io::Error> {
    let task = ctx
        .task_id()
        .map_or_else(|| "none".to_owned(), |id| id.to_string());
    let due = ctx.due_at().map_or_else(
        || "none".to_owned(),
        |due| due.to_rfc3339_opts(SecondsFormat::Micros, true),
    );
    let line = format!(
        "task={task} due={due} execution={} pid={}\n",
        ctx.execution_id(),
        std::process::id()
    );
    append_line(&args.file, &line)?;
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    Ok(())
}

/// Sleeps between two lines appended to the file,
/// `start TIME execution=ID pid=PID` and `end TIME execution=ID pid=PID`,
/// with the system clock's time. Never two runs at once, across every
/// runner that shares the database.
#[quicksilver::command(lock)]
async fn exclusive_span(ctx: &Context, args: RecordArgs) -> Result<(), std::io::Error> {
    let mark = |edge: &str| {
        format!(
            "{edge} {} execution={} pid={}\n",
            Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            ctx.execution_id(),
            std::process::id()
        )
    };
    append_line(&args.file, &mark("start"))?;
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    append_line(&args.file, &mark("end"))?;
    Ok(())
}

/// Deletes the successful executions that ended before the runner's
/// clock, as `clear_successful_executions` does for the ones older than
/// `--before-minutes`, which must be at least 1.
#[quicksilver::command]
async fn clear_successful_now(ctx: &Context) -> Result<(), quicksilver::StoreError> {
    let before = ctx.now();
    let deleted = ctx
        .store()
        .delete_executions(Status::Success, before)
        .await?;
    ctx.write_line(format!(
        "deleted {deleted} successful executions that ended before {}",
        before.to_rfc3339_opts(SecondsFormat::Micros, true)
    ));
    Ok(())
}

/// Appends `line` in one `write` to a file opened for appending, so that
/// lines of concurrent processes never mix.
fn append_line(path: &PathBuf, line: &str) -> Result<(), std::io::Error> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(line.as_bytes())
}

async fn sleep_between_lines(ctx: &Context, args: &SleepArgs) {
    ctx.write_line(format!("{}: sleeping for {}s", args.write, args.seconds));
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    ctx.write_line(format!("{}: woke after {}s", args.write, args.seconds));
}

quicksilver::declare_task!(TaskDeclaration::every("beat", 1));
quicksilver::declare_task!(TaskDeclaration::every("sleep_for", 30)
    .arguments(&["--seconds", "1"])
    .queue("other")
    .alert_on_failure(true));

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr_layer)
        .with(quicksilver::capture_layer())
        .init();

    let cli = Cli::parse();
    let test_options = match TestRunnerOptions::from_env() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    match (cli.command, test_options) {
        (Command::RunQueue(args), Some(test_options)) => {
            run_queue_with(&cli.options, args, test_options).await
        }
        (command, _) => {
            Cli {
                options: cli.options,
                command,
            }
            .run()
            .await
        }
    }
}

/// Runner options that only the tests set, from the `QUICKSILVER_TEST_*`
/// environment variables.
#[derive(Debug, Default)]
struct TestRunnerOptions {
    heartbeat: Option<(Duration, Duration)>,
    clock_offset: Option<TimeDelta>,
}

impl TestRunnerOptions {
    /// Reads the variables, and returns `None` when none is set.
    fn from_env() -> Result<Option<TestRunnerOptions>, String> {
        let interval = milliseconds_var(HEARTBEAT_INTERVAL_VAR)?;
        let timeout = milliseconds_var(HEARTBEAT_TIMEOUT_VAR)?;
        let offset = milliseconds_var(CLOCK_OFFSET_VAR)?;
        let heartbeat = match (interval, timeout) {
            (None, None) => None,
            (Some(interval), Some(timeout)) if interval >= 0 && timeout >= 0 => Some((
                Duration::from_millis(interval.unsigned_abs()),
                Duration::from_millis(timeout.unsigned_abs()),
            )),
            _ => {
                return Err(format!(
                    "set both {HEARTBEAT_INTERVAL_VAR} and {HEARTBEAT_TIMEOUT_VAR}, to \
                     milliseconds of 0 or more"
                ))
            }
        };
        let clock_offset = offset.map(TimeDelta::milliseconds);
        if heartbeat.is_none() && clock_offset.is_none() {
            return Ok(None);
        }
        Ok(Some(TestRunnerOptions {
            heartbeat,
            clock_offset,
        }))
    }
}

/// Returns the whole number of milliseconds in the variable `name`, or
/// `None` when it is not set.
fn milliseconds_var(name: &str) -> Result<Option<i64>, String> {
    let Ok(text) = std::env::var(name) else {
        return Ok(None);
    };
    text.trim().parse().map(Some).map_err(|error| {
        format!("invalid {name} `{text}`: {error}; give a whole number of milliseconds")
    })
}

/// Runs `run-queue` as the CLI does, with the test options added.
/// `--restart-after` is rejected, because the restart re-executes the
/// program, which this replacement does not do.
async fn run_queue_with(
    options: &CliOptions,
    args: RunQueueArgs,
    test_options: TestRunnerOptions,
) -> ExitCode {
    if args.restart_after.is_some() {
        eprintln!("error: --restart-after cannot be combined with the QUICKSILVER_TEST_* options");
        return ExitCode::from(2);
    }
    let url = options
        .database
        .clone()
        .unwrap_or_else(quicksilver::store::database_url_from_env);
    let mut builder = Runner::run_queue(args.task_queue.clone())
        .database_url(url)
        .sleep_duration(Duration::from_secs_f64(args.sleep_duration))
        .concurrency(usize::from(args.concurrency))
        .grace_period(Duration::from_secs_f64(args.grace_period));
    if let Some(lock_dir) = &options.lock_dir {
        builder = builder.lock_dir(lock_dir);
    }
    if let Some(seconds) = args.max_duration {
        builder = builder.default_max_duration(Duration::from_secs_f64(seconds));
    }
    if let Some((interval, timeout)) = test_options.heartbeat {
        builder = builder.heartbeat(interval, timeout);
    }
    if let Some(offset) = test_options.clock_offset {
        let clock = TestClock::new();
        clock.advance(offset);
        builder = builder.clock(clock);
    }
    tracing::info!(
        heartbeat = ?test_options.heartbeat,
        clock_offset_ms = test_options.clock_offset.map(|offset| offset.num_milliseconds()),
        "runner uses test options"
    );

    let runner = match builder.build() {
        Ok(runner) => runner,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    match runner.run().await {
        Ok(StopReason::RestartDue) => {
            eprintln!("error: the runner asked for a restart, which this host does not do");
            ExitCode::FAILURE
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// Formats `error` followed by each of its sources, separated by `: `.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
