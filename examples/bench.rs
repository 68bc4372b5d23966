//! Benchmarks of the runner: how close to its due time each execution
//! starts, how many executions a second one queue sustains, and what the
//! runner costs in CPU, memory, wake-ups and SQL statements, idle and with
//! 100,000 tasks. The `precision` and `idle` workloads also run on
//! tokio-cron-scheduler in the same process, and quicksilver's figures are
//! printed as ratios to its figures.
//!
//! ```text
//! cargo run --release --example bench -- precision
//! cargo run --release --example bench -- load --concurrency 16
//! cargo run --release --example bench -- burst
//! cargo run --release --example bench -- compare
//! cargo run --release --example bench -- all --seconds 5
//! ```
//!
//! Workloads, each with its defaults (`--tasks`, `--interval`, `--seconds`
//! and `--concurrency` change them):
//!
//! - `precision`: 10 tasks every 1 s for 60 s on one lane.
//! - `load`: 500 tasks every 1 s for 60 s on one lane.
//! - `burst`: 10,000 tasks all due at one instant, run once with one lane
//!   and once with `--concurrency` lanes (64 unless set). `--seconds` bounds
//!   each pass (120 s by default).
//! - `idle`: 1 task every 3600 s, watched for 60 s.
//! - `scale`: 100,000 tasks of which 10 fall due every `--interval` (1 s),
//!   for 60 s; the first 10 are already due when the runner starts.
//! - `compare`: `precision` and `idle` on quicksilver, then on
//!   tokio-cron-scheduler.
//! - `all`: `compare`, `precision` again with the runner's info-level log
//!   written to a file, then `load`, `burst` and `scale`.
//!
//! Tasks run `bench_noop`, a command that does nothing and is recorded like
//! any other. All tasks of a run are first due at one instant, as
//! `install-tasks` makes them, unless `--spread` spreads them evenly over
//! one interval. Each run uses a fresh SQLite file in a temporary folder,
//! or a queue of its own in the database that `--database` names (its rows
//! are deleted afterwards).
//!
//! Figures come from the process's own accounting in /proc, so the
//! benchmark runs on Linux only: CPU time and voluntary context switches
//! summed over the threads in `/proc/self/task/*/sched`, peak RSS from
//! `VmHWM` (reset before each run through `/proc/self/clear_refs`), and SQL
//! statements from [`Store::statement_count`]. The output ends with one
//! JSON object of figures per run, one a line.

use std::error::Error;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, TimeDelta, Timelike, Utc};
use clap::{Parser, ValueEnum};
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use quicksilver::{
    Context, Execution, ExecutionFilter, NewTask, Runner, Schedule, Status, StopReason, Store,
    TaskFilter,
};
use serde_json::{json, Map, Value};
use tempfile::TempDir;
use tokio::sync::{watch, Notify};
use tokio_cron_scheduler::{Job, JobScheduler};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;

type BoxError = Box<dyn Error + Send + Sync>;

/// The command every benchmark task runs.
const COMMAND: &str = "bench_noop";

/// The tasks of `scale` that fall due at each tick.
const SCALE_DUE_PER_TICK: u64 = 10;

/// How long `idle` lets the runner start before it measures.
const IDLE_WARM_UP: Duration = Duration::from_secs(1);

/// The tasks of the `runners` workload unless `--tasks` is given.
const RUNNERS_TASKS: u64 = 5_000;

/// The environment variable that names the server of the `runners`
/// workload when `--database` is not given.
const SERVER_URL_VAR: &str = "QUICKSILVER_BENCH_POSTGRES_URL";

/// The lanes of the second `burst` pass unless `--concurrency` is given.
const BURST_CONCURRENCY: usize = 64;

/// Rows per INSERT statement when populating tasks. At 8 columns a row, a
/// statement stays well under SQLite's limit of 32,766 bound values.
const INSERT_BATCH: usize = 1_000;

/// The executions of the `dashboard` workload unless `--tasks` is given.
const DASHBOARD_EXECUTIONS: u64 = 100_000;

/// The tasks the `dashboard` workload spreads its executions over.
const DASHBOARD_TASKS: u64 = 20;

/// Requests per page in the `dashboard` workload.
const DASHBOARD_REQUESTS: usize = 7;

/// Writes `count` finished executions of `task_ids`, one a minute up to
/// now, in one statement: 90 % successes, 8 % errors and 2 % kills, with
/// runtimes from a second to two hours and a line of output each.
fn fill_executions(url: &str, task_ids: &[i64], count: u64) -> Result<(), BoxError> {
    let mut connection = SqliteConnection::establish(url)?;
    let first = task_ids.first().copied().unwrap_or(1);
    let tasks = task_ids.len().max(1);
    diesel::sql_query(format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
         INSERT INTO quicksilver_executions \
         (task_id, command, arguments, queue, status, due_at, started, ended, runtime_seconds, output, runner) \
         SELECT {first} + (i % {tasks}), '{COMMAND}', '[]', 'default', \
           CASE WHEN i % 50 = 0 THEN 'killed' WHEN i % 12 = 0 THEN 'error' ELSE 'success' END, \
           datetime('now', '-' || ({count} - i) || ' minutes'), \
           datetime('now', '-' || ({count} - i) || ' minutes'), \
           datetime('now', '-' || ({count} - i) || ' minutes', '+' || (1 + (i * 37) % 7200) || ' seconds'), \
           1 + (i * 37) % 7200, \
           CASE WHEN i % 12 = 0 THEN 'error: the upstream timed out after 30 s' \
                ELSE 'synced ' || (i % 997) || ' rows' END, \
           'bench:1:dashboard' \
         FROM n"
    ))
    .execute(&mut connection)?;
    Ok(())
}

/// Clock ticks per second in /proc/PID/stat: `USER_HZ`, which Linux fixes
/// at 100 on x86 and ARM (`getconf CLK_TCK`).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// Does nothing; its executions are recorded like any other's.
#[quicksilver::command(name = "bench_noop")]
async fn bench_noop(_ctx: &Context) {}

/// The columns of quicksilver's tables that the benchmark writes directly,
/// to insert thousands of tasks in one transaction and to delete its rows
/// from a database given with `--database`.
mod schema {
    diesel::table! {
        quicksilver_tasks (id) {
            id -> BigInt,
            command -> Text,
            arguments -> Text,
            queue -> Text,
            repeat_interval -> Nullable<BigInt>,
            next_run -> Timestamp,
            paused -> Bool,
            created_at -> Timestamp,
            updated_at -> Timestamp,
        }
    }

    diesel::table! {
        quicksilver_executions (id) {
            id -> BigInt,
            queue -> Nullable<Text>,
        }
    }
}

use schema::{quicksilver_executions as executions, quicksilver_tasks as tasks};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// 10 tasks every second for 60 s: lateness and regularity.
    Precision,
    /// 500 tasks every second for 60 s: throughput, lateness and CPU.
    Load,
    /// 10,000 tasks due at one instant, on one lane and on several.
    Burst,
    /// 1 task every hour, watched for 60 s: CPU, wake-ups and queries.
    Idle,
    /// 100,000 tasks, 10 due every second, for 60 s: CPU and memory.
    Scale,
    /// `precision` and `idle` on quicksilver and on tokio-cron-scheduler.
    Compare,
    /// 5,000 tasks due at one instant on PostgreSQL, run by one, two and
    /// three runners, and on SQLite by one.
    Runners,
    /// The dashboard's pages over a database of 100,000 executions: the
    /// time each takes to respond over loopback.
    Dashboard,
    /// Every workload, in one process.
    All,
}

#[derive(Debug, Parser)]
#[command(about = "Benchmarks quicksilver's runner; see the header of examples/bench.rs")]
struct Args {
    /// The workload to run.
    #[arg(value_enum)]
    workload: Workload,

    /// The SQLite database to use, where each run gets a queue of its own
    /// and deletes its rows afterwards. By default each run uses a fresh
    /// file in a temporary folder.
    #[arg(long, value_name = "URL")]
    database: Option<String>,

    /// The number of tasks (single workloads only).
    #[arg(long, value_name = "N")]
    tasks: Option<u64>,

    /// Seconds between two runs of a task, or in `scale` between two due
    /// batches of 10 tasks (single workloads only).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    interval: Option<u64>,

    /// How long each run lasts, in seconds, or for `burst` the bound on each
    /// pass. Shorten it for smoke tests.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    seconds: Option<u64>,

    /// Executions of the queue that may run at once: the lanes of
    /// `precision`, `load` and `scale` (1 by default) and of the second
    /// `burst` pass (64 by default).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    concurrency: Option<u64>,

    /// Spreads the first runs of the tasks evenly over one interval instead
    /// of making them all due at one instant.
    #[arg(long)]
    spread: bool,

    /// Writes the runner's log at info level to FILE during every run.
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let single = !matches!(args.workload, Workload::Compare | Workload::All);
    if !single && (args.tasks.is_some() || args.interval.is_some()) {
        return Err("--tasks and --interval apply to one workload; \
                    run `compare` and `all` without them"
            .into());
    }

    let log = RunnerLog::install();
    // This runtime's blocking threads live through every run, so that their
    // CPU time stays in the per-thread accounting that the figures sum.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(Duration::from_secs(24 * 3600))
        .build()?;
    runtime.block_on(run(args, log))
}

async fn run(args: Args, log: RunnerLog) -> Result<(), BoxError> {
    let mut bench = Bench::new(&args, log)?;
    if let Some(path) = &args.log_file {
        bench.log.start(path)?;
    }
    match args.workload {
        Workload::Precision => {
            let spec = bench.periodic_spec(Workload::Precision);
            bench.periodic(&spec).await?;
        }
        Workload::Load => {
            let spec = bench.periodic_spec(Workload::Load);
            bench.periodic(&spec).await?;
        }
        Workload::Scale => {
            let spec = bench.periodic_spec(Workload::Scale);
            bench.periodic(&spec).await?;
        }
        Workload::Burst => bench.burst_passes().await?,
        Workload::Idle => {
            bench.idle().await?;
        }
        Workload::Compare => bench.compare().await?,
        Workload::Runners => bench.runners().await?,
        Workload::Dashboard => bench.dashboard().await?,
        Workload::All => {
            bench.compare().await?;
            bench.logged_precision().await?;
            let load = bench.periodic_spec(Workload::Load);
            bench.periodic(&load).await?;
            bench.burst_passes().await?;
            let scale = bench.periodic_spec(Workload::Scale);
            bench.periodic(&scale).await?;
        }
    }

    println!();
    for figures in &bench.results {
        println!("{}", serde_json::to_string(figures)?);
    }
    Ok(())
}

/// The settings shared by the runs, the temporary folder, and the figures
/// of the runs so far.
struct Bench {
    database: Option<String>,
    tasks: Option<u64>,
    interval: Option<u64>,
    seconds: Option<u64>,
    concurrency: Option<usize>,
    spread: bool,
    folder: TempDir,
    runs: u64,
    log: RunnerLog,
    results: Vec<Map<String, Value>>,
}

impl Bench {
    fn new(args: &Args, log: RunnerLog) -> Result<Bench, BoxError> {
        Ok(Bench {
            database: args.database.clone(),
            tasks: args.tasks,
            interval: args.interval,
            seconds: args.seconds,
            concurrency: args.concurrency.map(|lanes| lanes as usize),
            spread: args.spread,
            folder: tempfile::Builder::new()
                .prefix("quicksilver-bench")
                .tempdir()?,
            runs: 0,
            log,
            results: Vec::new(),
        })
    }

    fn periodic_spec(&self, workload: Workload) -> PeriodicSpec {
        let (name, tasks, per_tick, first_batch_at_start) = match workload {
            Workload::Load => ("load", self.tasks.unwrap_or(500), None, false),
            Workload::Scale => (
                "scale",
                self.tasks.unwrap_or(100_000),
                Some(SCALE_DUE_PER_TICK),
                true,
            ),
            _ => ("precision", self.tasks.unwrap_or(10), None, false),
        };
        let tasks = tasks.max(1);
        PeriodicSpec {
            workload: name,
            tasks,
            per_tick: per_tick.unwrap_or(tasks).min(tasks),
            tick_seconds: self.interval.unwrap_or(1),
            seconds: self.seconds.unwrap_or(60),
            concurrency: self.concurrency.unwrap_or(1),
            spread: self.spread,
            first_batch_at_start,
        }
    }

    /// Creates the database of one run and the queue its tasks go to.
    async fn bed(&mut self, workload: &str) -> Result<Bed, BoxError> {
        self.runs += 1;
        let (url, shared) = match &self.database {
            Some(url) => (url.clone(), true),
            None => {
                let path = self
                    .folder
                    .path()
                    .join(format!("{workload}-{}.sqlite3", self.runs));
                (path.to_string_lossy().into_owned(), false)
            }
        };
        let queue = format!("bench-{workload}-{}-{}", std::process::id(), self.runs);
        // Opening the store creates the file and its tables.
        let path = PathBuf::from(Store::open(&url).await?.url());
        let lock_dir = self.folder.path().join("locks");
        fs::create_dir_all(&lock_dir)?;
        Ok(Bed {
            url,
            path,
            queue,
            shared,
            lock_dir,
        })
    }

    fn push(&mut self, figures: Figures) -> usize {
        self.results.push(figures.0);
        self.results.len() - 1
    }

    /// Runs `precision` and `idle` on quicksilver and then on
    /// tokio-cron-scheduler, and prints quicksilver's figures as ratios.
    async fn compare(&mut self) -> Result<(), BoxError> {
        let spec = self.periodic_spec(Workload::Precision);
        let ours = self.periodic(&spec).await?;
        let theirs = self.cron_precision(&spec).await?;
        self.attach_ratios(ours, theirs);

        let ours = self.idle().await?;
        let theirs = self.cron_idle().await?;
        self.attach_ratios(ours, theirs);
        Ok(())
    }

    /// Runs `precision` with the runner's log at info level in a file,
    /// unless `--log-file` already turned the log on for every run.
    async fn logged_precision(&mut self) -> Result<(), BoxError> {
        let spec = self.periodic_spec(Workload::Precision);
        if self.log.is_on() {
            return self.periodic(&spec).await.map(drop);
        }
        let path = self.folder.path().join("runner.log");
        self.log.start(&path)?;
        let result = self.periodic(&spec).await;
        self.log.stop();
        result.map(drop)
    }

    /// Prints the figures of run `ours` as ratios to those of run `theirs`
    /// and adds the ratios to the figures of `ours`.
    fn attach_ratios(&mut self, ours: usize, theirs: usize) {
        const KEYS: [&str; 6] = [
            "lateness_p50_ms",
            "lateness_p99_ms",
            "lateness_max_ms",
            "cpu_seconds",
            "wakeups_per_minute",
            "peak_rss_mb",
        ];
        let mut ratios = Map::new();
        println!("  quicksilver / tokio-cron-scheduler:");
        for key in KEYS {
            let ours = self.results[ours].get(key).and_then(Value::as_f64);
            let theirs = self.results[theirs].get(key).and_then(Value::as_f64);
            let ratio = match (ours, theirs) {
                (Some(ours), Some(theirs)) if theirs > 0.0 => Some(ours / theirs),
                _ => None,
            };
            let shown = ratio.map_or_else(|| "no ratio".to_owned(), |r| format!("{r:.3}"));
            println!(
                "    {key:<20} {:>10} / {:<10} = {shown}",
                format_figure(ours),
                format_figure(theirs)
            );
            ratios.insert(
                key.to_owned(),
                ratio.map_or(Value::Null, |r| json!(round(r, 3))),
            );
        }
        self.results[ours].insert(
            "ratio_to_tokio_cron_scheduler".to_owned(),
            Value::Object(ratios),
        );
    }

    /// Runs a periodic workload and returns the index of its figures.
    async fn periodic(&mut self, spec: &PeriodicSpec) -> Result<usize, BoxError> {
        let bed = self.bed(spec.workload).await?;
        let plan = PeriodicPlan::new(spec, Utc::now());
        let insert_seconds = populate(&bed, spec.tasks, plan.period_seconds, |index| {
            plan.first_run(index)
        })
        .await?;
        let query_plans = if spec.workload == "scale" {
            explain_due_queries(&bed).await?
        } else {
            Vec::new()
        };
        let lead = TimeDelta::milliseconds((spec.tick_seconds as i64 * 500).min(500));
        let window = Window::UntilRecorded {
            start: plan.first_due - lead,
            deadline: plan.window_end + TimeDelta::seconds(5),
            expected: plan.expected_at_start + plan.expected,
        };
        let measured = measure(&bed, spec.concurrency, window).await?;
        bed.finish().await?;

        let samples: Vec<Sample> = measured
            .executions
            .iter()
            .filter_map(Sample::of)
            .filter(|s| s.due >= plan.first_due && s.due < plan.window_end)
            .collect();
        let timing = Timing::of(&samples, plan.period_seconds as f64 * 1_000.0);
        let window_seconds = (plan.ticks * spec.tick_seconds) as f64;
        let first_run_ms = measured
            .first_started()
            .filter(|_| spec.first_batch_at_start)
            .map(|started| (started - measured.opened_at).as_seconds_f64() * 1_000.0);

        let mut figures = Figures::new(spec.workload, "quicksilver");
        figures.set("tasks", spec.tasks);
        figures.set("interval_seconds", plan.period_seconds);
        figures.set("due_per_tick", spec.per_tick);
        figures.set("seconds", window_seconds);
        figures.set("concurrency", spec.concurrency);
        figures.set("spread", spec.spread);
        figures.set("runner_log", self.log.describe());
        figures.set("insert_seconds", round(insert_seconds, 3));
        figures.set("expected_executions", plan.expected);
        figures.set("executions", samples.len());
        figures.set("complete", measured.complete);
        figures.set("failed_executions", measured.failed());
        figures.set(
            "executions_per_second",
            round(samples.len() as f64 / window_seconds, 2),
        );
        timing.add_to(&mut figures);
        measured.usage.add_to(&mut figures, samples.len());
        figures.set("peak_rss_mb", round(measured.peak_rss_mb, 1));
        if let Some(ms) = first_run_ms {
            figures.set("start_to_first_run_ms", round(ms, 2));
        }
        if !query_plans.is_empty() {
            figures.set("query_plans", query_plans.clone());
        }

        println!();
        println!(
            "== {}: quicksilver, {} tasks, {} due every {} s (each every {} s), {} s, \
             {} lane(s){}{}",
            spec.workload,
            spec.tasks,
            spec.per_tick,
            spec.tick_seconds,
            plan.period_seconds,
            window_seconds,
            spec.concurrency,
            if spec.spread { ", spread" } else { "" },
            self.log.summary(),
        );
        println!(
            "  tasks inserted in {insert_seconds:.3} s; executions {} of {} expected \
             ({:.1}/s){}",
            samples.len(),
            plan.expected,
            samples.len() as f64 / window_seconds,
            measured.failure_note(),
        );
        timing.print();
        measured.usage.print(samples.len());
        println!("  peak RSS           {:.1} MB", measured.peak_rss_mb);
        if let Some(ms) = first_run_ms {
            println!("  first run          {ms:.1} ms after the store was opened");
        }
        for line in &query_plans {
            println!("  {line}");
        }
        Ok(self.push(figures))
    }

    /// Runs `dashboard`: fills a SQLite file with 20 tasks and 100,000
    /// executions (or `--tasks` executions), serves the dashboard on a
    /// loopback port, and times each page over 7 requests.
    async fn dashboard(&mut self) -> Result<(), BoxError> {
        let count = self.tasks.unwrap_or(DASHBOARD_EXECUTIONS);
        let path = self.folder.path().join("dashboard.sqlite3");
        let url = path.to_string_lossy().into_owned();
        let store = Store::open(&url).await?;
        let mut task_ids = Vec::new();
        for index in 0..DASHBOARD_TASKS {
            let task = store
                .add_task(NewTask::new(COMMAND, Schedule::every(60 + index)?).paused(true))
                .await?;
            task_ids.push(task.id);
        }
        let filling = Instant::now();
        fill_executions(&url, &task_ids, count)?;
        println!(
            "== dashboard: {count} executions of {} tasks written in {:.2} s",
            task_ids.len(),
            filling.elapsed().as_secs_f64()
        );

        let app = quicksilver::dashboard::Dashboard::new(store.clone()).build();
        let server = support::http::Server::start(app).await;
        let newest = store
            .executions(quicksilver::ExecutionFilter {
                limit: 1,
                ..Default::default()
            })
            .await?;
        let newest_id = newest.first().map_or(1, |execution| execution.id);
        let pages = [
            ("overview", "/".to_owned()),
            ("tasks", "/tasks".to_owned()),
            ("one task", format!("/tasks/{}", task_ids[0])),
            ("executions", "/executions".to_owned()),
            (
                "executions, page 100",
                format!("/executions?before={}", newest_id - 5_000),
            ),
            (
                "executions by status",
                "/executions?status=error".to_owned(),
            ),
            (
                "executions by task",
                format!("/executions?task={}", task_ids[3]),
            ),
            (
                "executions by runtime",
                "/executions?runtime=5-15m".to_owned(),
            ),
            ("output search", "/executions?q=timed+out".to_owned()),
            ("one execution", format!("/executions/{newest_id}")),
            ("status", "/status".to_owned()),
        ];
        println!(
            "  {:<24} {:>8} {:>8} {:>8} {:>9}",
            "page", "p50 ms", "max ms", "status", "bytes"
        );
        for (name, path) in pages {
            let mut times = Vec::new();
            let mut last = None;
            for _ in 0..DASHBOARD_REQUESTS {
                let started = Instant::now();
                let response = server.get(&path).await;
                times.push(started.elapsed().as_secs_f64() * 1e3);
                last = Some(response);
            }
            let response = last.ok_or("no request was made")?;
            times.sort_by(f64::total_cmp);
            let p50 = times[times.len() / 2];
            let max = times[times.len() - 1];
            let bytes = response.text().len();
            println!(
                "  {name:<24} {p50:>8.2} {max:>8.2} {:>8} {bytes:>9}",
                response.status
            );
            let mut figures = Map::new();
            figures.insert("workload".into(), json!("dashboard"));
            figures.insert("page".into(), json!(name));
            figures.insert("path".into(), json!(path));
            figures.insert("executions".into(), json!(count));
            figures.insert("http_status".into(), json!(response.status));
            figures.insert("p50_ms".into(), json!(round(p50, 3)));
            figures.insert("max_ms".into(), json!(round(max, 3)));
            figures.insert("bytes".into(), json!(bytes));
            self.results.push(figures);
        }
        server.stop().await;
        Ok(())
    }

    /// Runs `burst` with one lane and with the concurrency option.
    async fn burst_passes(&mut self) -> Result<(), BoxError> {
        let lanes = self.concurrency.unwrap_or(BURST_CONCURRENCY);
        self.burst(1).await?;
        if lanes != 1 {
            self.burst(lanes).await?;
        }
        Ok(())
    }

    /// Runs `runners`: the server from `--database` or
    /// `QUICKSILVER_BENCH_POSTGRES_URL`, then a SQLite file.
    async fn runners(&mut self) -> Result<(), BoxError> {
        let server = self
            .database
            .clone()
            .or_else(|| std::env::var(SERVER_URL_VAR).ok())
            .ok_or_else(|| {
                format!(
                    "the runners workload needs a PostgreSQL or MySQL database: give \
                     --database postgres://USER@HOST/DATABASE or set {SERVER_URL_VAR}"
                )
            })?;
        let count = self.tasks.unwrap_or(RUNNERS_TASKS);
        let lanes = self.concurrency.unwrap_or(BURST_CONCURRENCY);
        for runners in 1..=3 {
            self.runners_pass(&server, runners, count, lanes).await?;
        }
        let sqlite = self
            .folder
            .path()
            .join(format!("runners-{}.sqlite3", self.runs));
        self.runners_pass(&sqlite.to_string_lossy(), 1, count, lanes)
            .await?;
        Ok(())
    }

    /// Makes `count` tasks due at one instant on `url` and times how long
    /// `runners` runners, each with a store and lock folder of its own as
    /// on separate hosts, take to record all their executions.
    async fn runners_pass(
        &mut self,
        url: &str,
        runners: usize,
        count: u64,
        lanes: usize,
    ) -> Result<usize, BoxError> {
        self.runs += 1;
        let queue = format!("bench-runners-{}-{}", std::process::id(), self.runs);
        let store = Store::open(url).await?;
        let due = whole_second(Utc::now() + insert_margin(count) * 4) + TimeDelta::seconds(1);
        let inserting = Instant::now();
        let tasks: Vec<NewTask> = (0..count)
            .map(|_| {
                Ok(NewTask::new(COMMAND, Schedule::every(86_400)?)
                    .queue(&queue)
                    .next_run(due))
            })
            .collect::<Result<_, quicksilver::ScheduleError>>()?;
        store.install(tasks).await?;
        let insert_seconds = inserting.elapsed().as_secs_f64();

        let progress = Arc::new(Progress::new(count));
        let mut started = Vec::new();
        for index in 0..runners {
            let lock_dir = self
                .folder
                .path()
                .join(format!("host-{}-{index}", self.runs));
            fs::create_dir_all(&lock_dir)?;
            let bed = Bed {
                url: url.to_owned(),
                path: PathBuf::new(),
                queue: queue.clone(),
                shared: true,
                lock_dir,
            };
            let own_store = Store::open(url).await?;
            started.push(start_runner(&own_store, &bed, lanes, progress.clone())?);
        }
        let bound = TimeDelta::seconds(self.seconds.unwrap_or(120) as i64);
        let complete = progress.wait_until(due + bound).await;
        let finished_at = progress.completed_at().unwrap_or_else(Instant::now);
        for runner in started {
            runner.stop().await?;
        }
        let executions = read_executions(&store, &queue).await?;
        let tasks_ids: std::collections::HashSet<Option<i64>> = executions
            .iter()
            .map(|execution| execution.task_id)
            .collect();
        let duplicates = executions.len() - tasks_ids.len();
        let due_instant = Instant::now()
            .checked_sub((Utc::now() - due).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or_else(Instant::now);
        let seconds = finished_at
            .saturating_duration_since(due_instant)
            .as_secs_f64();
        let rate = executions.len() as f64 / seconds.max(f64::EPSILON);
        let backend = url
            .split("://")
            .next()
            .filter(|_| url.contains("://"))
            .unwrap_or("sqlite");

        let mut figures = Figures::new("runners", "quicksilver");
        figures.set("backend", backend);
        figures.set("runners", runners);
        figures.set("tasks", count);
        figures.set("concurrency", lanes);
        figures.set("insert_seconds", round(insert_seconds, 3));
        figures.set("executions", executions.len());
        figures.set("duplicate_executions", duplicates);
        figures.set("complete", complete);
        figures.set("seconds_to_all_recorded", round(seconds, 3));
        figures.set("executions_per_second", round(rate, 1));

        println!();
        println!(
            "== runners: quicksilver on {backend}, {count} tasks due at one instant, \
             {runners} runner(s) of {lanes} lane(s)"
        );
        println!(
            "  tasks inserted in {insert_seconds:.3} s; {} executions recorded {seconds:.3} s \
             after their due time{}: {rate:.0} executions/s; {duplicates} ran twice",
            executions.len(),
            if complete { "" } else { " (incomplete)" },
        );
        self.delete_queue(&store, &queue).await?;
        Ok(self.push(figures))
    }

    /// Deletes the tasks of `queue`. Their executions stay, under the
    /// run's queue name, since the store deletes executions only by status
    /// and age, which would reach beyond the run on a shared database.
    async fn delete_queue(&self, store: &Store, queue: &str) -> Result<(), BoxError> {
        let filter = TaskFilter {
            queue: Some(queue.to_owned()),
            ..TaskFilter::default()
        };
        for task in store.tasks(filter).await? {
            store.remove_task(task.id).await?;
        }
        Ok(())
    }

    /// Makes `--tasks` tasks due at one instant and times how long the
    /// runner takes to record all their executions.
    async fn burst(&mut self, concurrency: usize) -> Result<usize, BoxError> {
        let bed = self.bed("burst").await?;
        let count = self.tasks.unwrap_or(10_000);
        let bound = TimeDelta::seconds(self.seconds.unwrap_or(120) as i64);
        let due = whole_second(Utc::now() + insert_margin(count)) + TimeDelta::seconds(1);
        // A period far past the bound, so that each task runs once.
        let period = 86_400;
        let insert_seconds = populate(&bed, count, period, |_| due).await?;

        let window = Window::UntilRecorded {
            start: due - TimeDelta::milliseconds(500),
            deadline: due + bound,
            expected: count,
        };
        let measured = measure(&bed, concurrency, window).await?;
        bed.finish().await?;

        let samples: Vec<Sample> = measured.executions.iter().filter_map(Sample::of).collect();
        let finished_at = measured.completed_at.unwrap_or(measured.ended_at);
        let seconds = finished_at
            .saturating_duration_since(measured.instant_of(due))
            .as_secs_f64();
        let rate = samples.len() as f64 / seconds.max(f64::EPSILON);
        let lateness = Percentiles::of(samples.iter().map(Sample::lateness_ms).collect());

        let mut figures = Figures::new("burst", "quicksilver");
        figures.set("tasks", count);
        figures.set("concurrency", concurrency);
        figures.set("runner_log", self.log.describe());
        figures.set("insert_seconds", round(insert_seconds, 3));
        figures.set("executions", samples.len());
        figures.set("complete", measured.complete);
        figures.set("failed_executions", measured.failed());
        figures.set("seconds_to_all_recorded", round(seconds, 3));
        figures.set("executions_per_second", round(rate, 1));
        lateness.add_to(&mut figures);
        measured.usage.add_to(&mut figures, samples.len());
        figures.set("peak_rss_mb", round(measured.peak_rss_mb, 1));

        println!();
        println!(
            "== burst: quicksilver, {count} tasks due at one instant, {concurrency} lane(s){}",
            self.log.summary()
        );
        println!(
            "  tasks inserted in {insert_seconds:.3} s; {} executions recorded {seconds:.3} s \
             after their due time{}: {rate:.0} executions/s{}",
            samples.len(),
            if measured.complete {
                ""
            } else {
                " (incomplete)"
            },
            measured.failure_note(),
        );
        lateness.print("lateness");
        measured.usage.print(samples.len());
        println!("  peak RSS           {:.1} MB", measured.peak_rss_mb);
        Ok(self.push(figures))
    }

    /// Watches a runner whose tasks are far from due.
    async fn idle(&mut self) -> Result<usize, BoxError> {
        let bed = self.bed("idle").await?;
        let count = self.tasks.unwrap_or(1);
        let period = self.interval.unwrap_or(3600);
        let seconds = self.seconds.unwrap_or(60);
        let first_due = whole_second(Utc::now()) + TimeDelta::seconds(period as i64);
        populate(&bed, count, period, |_| first_due).await?;

        let window = Window::Fixed {
            warm_up: IDLE_WARM_UP,
            length: Duration::from_secs(seconds),
        };
        let measured = measure(&bed, 1, window).await?;
        bed.finish().await?;
        let executions = measured.executions.len();
        let usage = &measured.usage;

        let mut figures = Figures::new("idle", "quicksilver");
        figures.set("tasks", count);
        figures.set("interval_seconds", period);
        figures.set("seconds", seconds);
        figures.set("runner_log", self.log.describe());
        idle_figures(&mut figures, executions, usage, measured.peak_rss_mb);

        println!();
        println!(
            "== idle: quicksilver, {count} task(s) every {period} s, watched {seconds} s{}",
            self.log.summary()
        );
        print_idle(executions, usage, measured.peak_rss_mb);
        Ok(self.push(figures))
    }

    /// Runs `precision` on tokio-cron-scheduler: one cron job a task, with
    /// a seconds field, each noting when it starts.
    async fn cron_precision(&mut self, spec: &PeriodicSpec) -> Result<usize, BoxError> {
        let interval = spec.tick_seconds;
        if 60 % interval != 0 {
            return Err(format!(
                "invalid --interval {interval} for tokio-cron-scheduler: its cron \
                 schedule `*/N` repeats evenly only when N divides 60"
            )
            .into());
        }
        let starts = Arc::new(Mutex::new(Vec::<(i64, DateTime<Utc>)>::new()));
        let expression = format!("*/{interval} * * * * *");

        reset_peak_rss()?;
        let mut scheduler = JobScheduler::new().await?;
        for job in 0..spec.tasks as i64 {
            let starts = starts.clone();
            let job = Job::new_async(expression.as_str(), move |_, _| {
                let now = Utc::now();
                lock(&starts).push((job, now));
                Box::pin(async {})
            })?;
            scheduler.add(job).await?;
        }
        scheduler.start().await?;

        // The ticks of `*/N` fall on multiples of N seconds in Unix time,
        // since N divides a minute.
        let tick = TimeDelta::seconds(interval as i64);
        let first_due = grid_at_or_after(Utc::now() + TimeDelta::seconds(2), interval);
        let ticks = spec.ticks();
        let window_end = first_due + tick * ticks as i32;
        sleep_until(first_due - TimeDelta::milliseconds(500)).await;
        let before = Usage::read_without_store()?;
        // The scheduler checks every 500 ms, so the last tick has started
        // 900 ms after it was due, and the next one is not due yet.
        sleep_until(window_end - tick + TimeDelta::milliseconds(900)).await;
        let after = Usage::read_without_store()?;
        let peak_rss_mb = peak_rss_mb()?;
        scheduler.shutdown().await?;

        let samples: Vec<Sample> = lock(&starts)
            .iter()
            .map(|&(task, started)| Sample {
                task,
                due: grid_at_or_before(started, interval),
                started,
            })
            .filter(|s| s.due >= first_due && s.due < window_end)
            .collect();
        let timing = Timing::of(&samples, interval as f64 * 1_000.0);
        let usage = after.since(&before);
        let window_seconds = (ticks * interval) as f64;
        let expected = spec.tasks * ticks;

        let mut figures = Figures::new("precision", "tokio-cron-scheduler");
        figures.set("tasks", spec.tasks);
        figures.set("interval_seconds", interval);
        figures.set("seconds", window_seconds);
        figures.set("expected_executions", expected);
        figures.set("executions", samples.len());
        figures.set(
            "executions_per_second",
            round(samples.len() as f64 / window_seconds, 2),
        );
        timing.add_to(&mut figures);
        usage.add_to(&mut figures, samples.len());
        figures.set("queries_per_minute", Value::Null);
        figures.set("peak_rss_mb", round(peak_rss_mb, 1));

        println!();
        println!(
            "== precision: tokio-cron-scheduler, {} jobs `{expression}`, {window_seconds} s \
             (in memory, nothing recorded)",
            spec.tasks
        );
        println!(
            "  executions         {} of {expected} expected",
            samples.len()
        );
        timing.print();
        usage.print(samples.len());
        println!("  peak RSS           {peak_rss_mb:.1} MB (process-wide, after the runs before)");
        Ok(self.push(figures))
    }

    /// Runs `idle` on tokio-cron-scheduler: one job repeated every hour.
    async fn cron_idle(&mut self) -> Result<usize, BoxError> {
        let period = self.interval.unwrap_or(3600);
        let seconds = self.seconds.unwrap_or(60);
        let ran = Arc::new(AtomicU64::new(0));

        reset_peak_rss()?;
        let mut scheduler = JobScheduler::new().await?;
        let counter = ran.clone();
        let job = Job::new_repeated_async(Duration::from_secs(period), move |_, _| {
            counter.fetch_add(1, Ordering::Relaxed);
            Box::pin(async {})
        })?;
        scheduler.add(job).await?;
        scheduler.start().await?;
        tokio::time::sleep(IDLE_WARM_UP).await;
        let before = Usage::read_without_store()?;
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let after = Usage::read_without_store()?;
        let peak_rss_mb = peak_rss_mb()?;
        scheduler.shutdown().await?;
        let usage = after.since(&before);
        let executions = ran.load(Ordering::Relaxed) as usize;

        let mut figures = Figures::new("idle", "tokio-cron-scheduler");
        figures.set("tasks", 1);
        figures.set("interval_seconds", period);
        figures.set("seconds", seconds);
        idle_figures(&mut figures, executions, &usage, peak_rss_mb);
        figures.set("queries_per_minute", Value::Null);

        println!();
        println!("== idle: tokio-cron-scheduler, 1 job every {period} s, watched {seconds} s");
        print_idle(executions, &usage, peak_rss_mb);
        Ok(self.push(figures))
    }
}

/// A periodic workload: `tasks` tasks, `per_tick` of them due at each tick.
#[derive(Debug, Clone)]
struct PeriodicSpec {
    workload: &'static str,
    tasks: u64,
    per_tick: u64,
    tick_seconds: u64,
    seconds: u64,
    concurrency: usize,
    spread: bool,
    /// Makes the first batch due when the runner starts, to time the first
    /// run; the steady ticks follow.
    first_batch_at_start: bool,
}

impl PeriodicSpec {
    fn ticks(&self) -> u64 {
        (self.seconds / self.tick_seconds).max(1)
    }
}

/// The due times of a periodic workload.
///
/// Task `i` belongs to batch `i / per_tick`, and batch `b` is first due at
/// tick `b`. Every task repeats once all batches have come due, so that
/// `per_tick` tasks fall due at each tick.
#[derive(Debug, Clone)]
struct PeriodicPlan {
    spec: PeriodicSpec,
    /// Each task's interval.
    period_seconds: u64,
    /// The due time of the batch that `first_batch_at_start` makes due at
    /// once.
    populated_from: DateTime<Utc>,
    /// The first steady tick: late enough for the tasks to be inserted and
    /// the runner to start.
    first_due: DateTime<Utc>,
    ticks: u64,
    window_end: DateTime<Utc>,
    /// Executions due from `first_due` to `window_end`.
    expected: u64,
    /// Executions already due when the runner starts.
    expected_at_start: u64,
}

impl PeriodicPlan {
    fn new(spec: &PeriodicSpec, now: DateTime<Utc>) -> PeriodicPlan {
        let ticks = spec.ticks();
        let first_due = whole_second(now + insert_margin(spec.tasks)) + TimeDelta::seconds(1);
        let mut plan = PeriodicPlan {
            spec: spec.clone(),
            period_seconds: spec.tasks.div_ceil(spec.per_tick) * spec.tick_seconds,
            populated_from: whole_second(now),
            first_due,
            ticks,
            window_end: first_due + TimeDelta::seconds((ticks * spec.tick_seconds) as i64),
            expected: 0,
            expected_at_start: 0,
        };
        let period = TimeDelta::seconds(plan.period_seconds as i64);
        for index in 0..spec.tasks {
            let mut due = plan.first_run(index);
            if due < first_due {
                plan.expected_at_start += 1;
                continue;
            }
            while due < plan.window_end {
                plan.expected += 1;
                due += period;
            }
        }
        plan
    }

    /// Returns the first due time of task `index`.
    fn first_run(&self, index: u64) -> DateTime<Utc> {
        let spec = &self.spec;
        let batch = index / spec.per_tick;
        if spec.first_batch_at_start && batch == 0 {
            return self.populated_from;
        }
        let steady_batch = batch - u64::from(spec.first_batch_at_start);
        let mut due =
            self.first_due + TimeDelta::seconds((steady_batch * spec.tick_seconds) as i64);
        if spec.spread {
            let slot = (index % spec.per_tick) as i64;
            let tick_micros = spec.tick_seconds as i64 * 1_000_000;
            due += TimeDelta::microseconds(slot * tick_micros / spec.per_tick as i64);
        }
        due
    }
}

/// Returns how long inserting `tasks` tasks may take, at 50,000 a second,
/// plus time for the runner to start.
fn insert_margin(tasks: u64) -> TimeDelta {
    TimeDelta::milliseconds(1_500 + tasks as i64 / 50)
}

fn idle_figures(figures: &mut Figures, executions: usize, usage: &UsageDelta, peak_rss_mb: f64) {
    figures.set("executions", executions);
    figures.set(
        "executions_per_second",
        round(executions as f64 / usage.seconds.max(f64::EPSILON), 3),
    );
    for key in ["lateness_p50_ms", "lateness_p99_ms", "lateness_max_ms"] {
        figures.set(key, Value::Null);
    }
    usage.add_to(figures, executions);
    figures.set(
        "cpu_seconds_per_minute",
        round(usage.cpu_seconds / usage.minutes(), 5),
    );
    figures.set("peak_rss_mb", round(peak_rss_mb, 1));
}

fn print_idle(executions: usize, usage: &UsageDelta, peak_rss_mb: f64) {
    println!("  executions         {executions}");
    usage.print(executions);
    println!(
        "  CPU per minute     {:.5} s",
        usage.cpu_seconds / usage.minutes()
    );
    println!("  peak RSS           {peak_rss_mb:.1} MB");
}

/// When the measurement of a runner starts and ends.
enum Window {
    /// From `start` until `expected` executions are recorded or `deadline`
    /// passes.
    UntilRecorded {
        start: DateTime<Utc>,
        deadline: DateTime<Utc>,
        expected: u64,
    },
    /// For `length`, after the runner has run for `warm_up`.
    Fixed { warm_up: Duration, length: Duration },
}

/// The figures of one runner over a measurement window.
struct Measurement {
    /// When the runner's store was opened: the start of the runner.
    opened_at: DateTime<Utc>,
    usage: UsageDelta,
    peak_rss_mb: f64,
    complete: bool,
    /// When the expected executions were all recorded.
    completed_at: Option<Instant>,
    ended_at: Instant,
    /// Every execution of the run's queue, read after the runner stopped.
    executions: Vec<Execution>,
}

impl Measurement {
    fn first_started(&self) -> Option<DateTime<Utc>> {
        self.executions.iter().filter_map(|e| e.started).min()
    }

    fn failed(&self) -> usize {
        self.executions
            .iter()
            .filter(|e| e.status != Status::Success)
            .count()
    }

    fn failure_note(&self) -> String {
        match self.failed() {
            0 => String::new(),
            failed => format!(", {failed} not successful"),
        }
    }

    /// Converts a wall-clock time of the run to the monotonic clock.
    fn instant_of(&self, time: DateTime<Utc>) -> Instant {
        let now = Instant::now();
        let ago = (Utc::now() - time).to_std().unwrap_or(Duration::ZERO);
        now.checked_sub(ago).unwrap_or(now)
    }
}

/// Opens the run's store afresh, as a new process would, starts a runner
/// on it, and measures the process over `window`.
async fn measure(bed: &Bed, concurrency: usize, window: Window) -> Result<Measurement, BoxError> {
    reset_peak_rss()?;
    let opened_at = Utc::now();
    let store = Store::open(&bed.url).await?;
    let expected = match window {
        Window::UntilRecorded { expected, .. } => expected,
        Window::Fixed { .. } => 0,
    };
    let progress = Arc::new(Progress::new(expected));
    let runner = start_runner(&store, bed, concurrency, progress.clone())?;

    let (before, complete) = match window {
        Window::UntilRecorded {
            start, deadline, ..
        } => {
            sleep_until(start).await;
            let before = Usage::read(&store)?;
            (before, progress.wait_until(deadline).await)
        }
        Window::Fixed { warm_up, length } => {
            tokio::time::sleep(warm_up).await;
            let before = Usage::read(&store)?;
            tokio::time::sleep(length).await;
            (before, false)
        }
    };
    let after = Usage::read(&store)?;
    let peak_rss_mb = peak_rss_mb()?;
    runner.stop().await?;

    Ok(Measurement {
        opened_at,
        usage: after.since(&before),
        peak_rss_mb,
        complete,
        completed_at: progress.completed_at(),
        ended_at: after.at,
        executions: read_executions(&store, &bed.queue).await?,
    })
}

/// The database and queue of one run.
struct Bed {
    url: String,
    path: PathBuf,
    queue: String,
    /// Whether the database was given with `--database`, so that only the
    /// run's rows are deleted afterwards, not the file.
    shared: bool,
    lock_dir: PathBuf,
}

impl Bed {
    fn connect(&self) -> Result<SqliteConnection, BoxError> {
        let mut connection = SqliteConnection::establish(&self.path.to_string_lossy())?;
        diesel::sql_query("PRAGMA busy_timeout = 10000").execute(&mut connection)?;
        Ok(connection)
    }

    /// Deletes the run's database file, or its rows from a shared one.
    async fn finish(self) -> Result<(), BoxError> {
        let Bed {
            path,
            queue,
            shared,
            ..
        } = self;
        tokio::task::spawn_blocking(move || -> Result<(), BoxError> {
            if shared {
                let mut connection = SqliteConnection::establish(&path.to_string_lossy())?;
                connection.immediate_transaction(|connection| {
                    diesel::delete(executions::table.filter(executions::queue.eq(&queue)))
                        .execute(connection)?;
                    diesel::delete(tasks::table.filter(tasks::queue.eq(&queue)))
                        .execute(connection)?;
                    Ok::<_, diesel::result::Error>(())
                })?;
                return Ok(());
            }
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                match fs::remove_file(&file) {
                    Err(error) if error.kind() != io::ErrorKind::NotFound => {
                        return Err(error.into())
                    }
                    _ => {}
                }
            }
            Ok(())
        })
        .await?
    }
}

/// Inserts `count` tasks of the run's queue, every `period` seconds, the
/// task numbered `i` first due at `first_run(i)`, in one transaction.
async fn populate(
    bed: &Bed,
    count: u64,
    period: u64,
    first_run: impl Fn(u64) -> DateTime<Utc>,
) -> Result<f64, BoxError> {
    let started = Instant::now();
    let now = Utc::now().naive_utc();
    let next_runs: Vec<NaiveDateTime> = (0..count).map(|i| first_run(i).naive_utc()).collect();
    let mut connection = bed.connect()?;
    let queue = bed.queue.clone();
    let period = period as i64;
    tokio::task::spawn_blocking(move || -> Result<(), BoxError> {
        connection.immediate_transaction(|connection| {
            for chunk in next_runs.chunks(INSERT_BATCH) {
                let rows: Vec<_> = chunk
                    .iter()
                    .map(|&next_run| {
                        (
                            tasks::command.eq(COMMAND),
                            tasks::arguments.eq("[]"),
                            tasks::queue.eq(&queue),
                            tasks::repeat_interval.eq(Some(period)),
                            tasks::next_run.eq(next_run),
                            tasks::paused.eq(false),
                            tasks::created_at.eq(now),
                            tasks::updated_at.eq(now),
                        )
                    })
                    .collect();
                diesel::insert_into(tasks::table)
                    .values(&rows)
                    .execute(connection)?;
            }
            Ok::<_, diesel::result::Error>(())
        })?;
        Ok(())
    })
    .await??;
    Ok(started.elapsed().as_secs_f64())
}

/// Returns the store's query plans of the runner's due lookups on the
/// run's database.
async fn explain_due_queries(bed: &Bed) -> Result<Vec<String>, BoxError> {
    let store = Store::open(&bed.url).await?;
    Ok(store.explain_due_queries(&bed.queue).await?)
}

/// A started runner and the sender that stops it.
struct RunningRunner {
    task: tokio::task::JoinHandle<Result<StopReason, quicksilver::RunnerError>>,
    stop: watch::Sender<bool>,
}

impl RunningRunner {
    async fn stop(self) -> Result<StopReason, BoxError> {
        let _ = self.stop.send(true);
        Ok(self.task.await??)
    }
}

fn start_runner(
    store: &Store,
    bed: &Bed,
    concurrency: usize,
    progress: Arc<Progress>,
) -> Result<RunningRunner, BoxError> {
    let (stop, mut stopped) = watch::channel(false);
    let runner = Runner::run_queue(&bed.queue)
        .store(store.clone())
        .concurrency(concurrency)
        .lock_dir(&bed.lock_dir)
        .handle_signals(false)
        .on_execution_end(move |execution| progress.record(execution))
        .shutdown_signal(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .build()?;
    Ok(RunningRunner {
        task: tokio::spawn(runner.run()),
        stop,
    })
}

/// Counts the executions the runner recorded, through its end hook, and
/// notes when the expected number was reached.
struct Progress {
    expected: u64,
    recorded: AtomicU64,
    completed_at: Mutex<Option<Instant>>,
    complete: Notify,
}

impl Progress {
    fn new(expected: u64) -> Progress {
        Progress {
            expected,
            recorded: AtomicU64::new(0),
            completed_at: Mutex::new(None),
            complete: Notify::new(),
        }
    }

    fn record(&self, _execution: &Execution) {
        let recorded = self.recorded.fetch_add(1, Ordering::SeqCst) + 1;
        if recorded == self.expected {
            *lock(&self.completed_at) = Some(Instant::now());
            self.complete.notify_one();
        }
    }

    fn completed_at(&self) -> Option<Instant> {
        *lock(&self.completed_at)
    }

    /// Waits until the expected executions are recorded or `deadline`
    /// passes, and returns whether they were.
    async fn wait_until(&self, deadline: DateTime<Utc>) -> bool {
        if self.expected == 0 {
            sleep_until(deadline).await;
            return false;
        }
        let wait = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::time::timeout(wait, self.complete.notified())
            .await
            .is_ok()
    }
}

async fn read_executions(store: &Store, queue: &str) -> Result<Vec<Execution>, BoxError> {
    let filter = ExecutionFilter {
        queue: Some(queue.to_owned()),
        limit: i64::MAX,
        ..ExecutionFilter::default()
    };
    Ok(store.executions(filter).await?)
}

/// One start of a task against its due time.
#[derive(Debug, Clone, Copy)]
struct Sample {
    task: i64,
    due: DateTime<Utc>,
    started: DateTime<Utc>,
}

impl Sample {
    fn of(execution: &Execution) -> Option<Sample> {
        Some(Sample {
            task: execution.task_id?,
            due: execution.due_at?,
            started: execution.started?,
        })
    }

    fn lateness_ms(&self) -> f64 {
        (self.started - self.due).as_seconds_f64() * 1_000.0
    }
}

/// Percentiles of a list of milliseconds, by nearest rank.
#[derive(Debug, Clone, Copy, Default)]
struct Percentiles {
    count: usize,
    p50: f64,
    p99: f64,
    max: f64,
    min: f64,
    mean: f64,
}

impl Percentiles {
    fn of(mut values: Vec<f64>) -> Percentiles {
        if values.is_empty() {
            return Percentiles::default();
        }
        values.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = (p / 100.0 * values.len() as f64).ceil() as usize;
            values[index.clamp(1, values.len()) - 1]
        };
        Percentiles {
            count: values.len(),
            p50: rank(50.0),
            p99: rank(99.0),
            max: values[values.len() - 1],
            min: values[0],
            mean: values.iter().sum::<f64>() / values.len() as f64,
        }
    }

    fn add_to(&self, figures: &mut Figures) {
        let value = |v: f64| {
            if self.count == 0 {
                Value::Null
            } else {
                json!(round(v, 3))
            }
        };
        figures.set("lateness_p50_ms", value(self.p50));
        figures.set("lateness_p99_ms", value(self.p99));
        figures.set("lateness_max_ms", value(self.max));
        figures.set("lateness_mean_ms", value(self.mean));
    }

    fn print(&self, label: &str) {
        println!(
            "  {label:<18} p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (mean {:.3}, min {:.3})",
            self.p50, self.p99, self.max, self.mean, self.min
        );
    }
}

/// Lateness and regularity of the starts of periodic tasks.
#[derive(Debug, Default)]
struct Timing {
    lateness: Percentiles,
    /// Lateness of the first start among the tasks due at one instant: how
    /// late the runner woke, without the wait for a lane.
    first_of_tick: Percentiles,
    /// Differences between the gap of two consecutive starts of one task
    /// and its interval, in milliseconds.
    gap_error: Percentiles,
    gap_sd_ms: f64,
    /// The largest change of lateness between a task's first and last
    /// start, in milliseconds.
    drift_ms: f64,
    /// Ticks skipped because a run started more than an interval late.
    missed_ticks: u64,
    /// Due times off the task's fixed-rate grid, which stays 0 unless the
    /// schedule drifted.
    off_grid: u64,
}

impl Timing {
    fn of(samples: &[Sample], period_ms: f64) -> Timing {
        let mut by_task: std::collections::BTreeMap<i64, Vec<Sample>> = Default::default();
        for sample in samples {
            by_task.entry(sample.task).or_default().push(*sample);
        }

        let mut gaps = Vec::new();
        let mut drift_ms: f64 = 0.0;
        let mut missed_ticks = 0;
        let mut off_grid = 0;
        for runs in by_task.values_mut() {
            runs.sort_by_key(|s| s.due);
            for pair in runs.windows(2) {
                let due_gap = (pair[1].due - pair[0].due).as_seconds_f64() * 1_000.0;
                let steps = (due_gap / period_ms).round();
                if (due_gap - steps * period_ms).abs() > 0.001 {
                    off_grid += 1;
                }
                if steps > 1.0 {
                    missed_ticks += steps as u64 - 1;
                    continue;
                }
                let gap = (pair[1].started - pair[0].started).as_seconds_f64() * 1_000.0;
                gaps.push(gap - period_ms);
            }
            if let (Some(first), Some(last)) = (runs.first(), runs.last()) {
                drift_ms = drift_ms.max((last.lateness_ms() - first.lateness_ms()).abs());
            }
        }
        let gap_sd_ms = standard_deviation(&gaps);
        let mut first_of_tick: std::collections::BTreeMap<DateTime<Utc>, f64> = Default::default();
        for sample in samples {
            let first = first_of_tick.entry(sample.due).or_insert(f64::MAX);
            *first = first.min(sample.lateness_ms());
        }
        Timing {
            lateness: Percentiles::of(samples.iter().map(Sample::lateness_ms).collect()),
            first_of_tick: Percentiles::of(first_of_tick.into_values().collect()),
            gap_error: Percentiles::of(gaps),
            gap_sd_ms,
            drift_ms,
            missed_ticks,
            off_grid,
        }
    }

    fn add_to(&self, figures: &mut Figures) {
        self.lateness.add_to(figures);
        figures.set("first_of_tick_p50_ms", round(self.first_of_tick.p50, 3));
        figures.set("first_of_tick_p99_ms", round(self.first_of_tick.p99, 3));
        figures.set("first_of_tick_max_ms", round(self.first_of_tick.max, 3));
        // Without two runs of one task there are no gaps to measure.
        let gap = |value: f64| {
            if self.gap_error.count == 0 {
                Value::Null
            } else {
                json!(round(value, 3))
            }
        };
        figures.set("gap_error_min_ms", gap(self.gap_error.min));
        figures.set("gap_error_max_ms", gap(self.gap_error.max));
        figures.set("gap_sd_ms", gap(self.gap_sd_ms));
        figures.set("drift_ms", gap(self.drift_ms));
        figures.set("missed_ticks", self.missed_ticks);
        figures.set("off_grid_due_times", self.off_grid);
    }

    fn print(&self) {
        self.lateness.print("lateness");
        self.first_of_tick.print("first of a tick");
        if self.gap_error.count == 0 {
            println!(
                "  gaps of one task   none: no task ran twice; {} missed ticks",
                self.missed_ticks
            );
            return;
        }
        println!(
            "  gaps of one task   interval {:+.3}..{:+.3} ms (sd {:.3} ms); drift {:.3} ms; \
             {} missed ticks; {} due times off the grid",
            self.gap_error.min,
            self.gap_error.max,
            self.gap_sd_ms,
            self.drift_ms,
            self.missed_ticks,
            self.off_grid
        );
    }
}

fn standard_deviation(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let variance =
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64;
    variance.sqrt()
}

/// The process's counters at one instant.
#[derive(Debug, Clone, Copy)]
struct Usage {
    at: Instant,
    /// CPU time of the live threads, from `se.sum_exec_runtime` in
    /// /proc/self/task/*/sched (nanosecond resolution).
    cpu_seconds: f64,
    /// User and system time of the whole process from /proc/self/stat,
    /// in clock ticks of 10 ms: a cross-check, and the split between the
    /// two.
    user_seconds: f64,
    system_seconds: f64,
    /// Voluntary context switches of the live threads: how often a thread
    /// went to sleep, and so woke up again.
    wakeups: u64,
    statements: u64,
}

/// The difference of two [`Usage`] readings.
#[derive(Debug, Clone, Copy)]
struct UsageDelta {
    seconds: f64,
    cpu_seconds: f64,
    user_seconds: f64,
    system_seconds: f64,
    wakeups: u64,
    statements: u64,
}

impl Usage {
    fn read(store: &Store) -> Result<Usage, BoxError> {
        let mut usage = Usage::read_without_store()?;
        usage.statements = store.statement_count();
        Ok(usage)
    }

    fn read_without_store() -> Result<Usage, BoxError> {
        let (cpu_seconds, wakeups) = thread_accounting()?;
        let (user_seconds, system_seconds) = process_cpu_seconds()?;
        Ok(Usage {
            at: Instant::now(),
            cpu_seconds,
            user_seconds,
            system_seconds,
            wakeups,
            statements: 0,
        })
    }

    fn since(&self, before: &Usage) -> UsageDelta {
        UsageDelta {
            seconds: self.at.duration_since(before.at).as_secs_f64(),
            cpu_seconds: self.cpu_seconds - before.cpu_seconds,
            user_seconds: self.user_seconds - before.user_seconds,
            system_seconds: self.system_seconds - before.system_seconds,
            wakeups: self.wakeups.saturating_sub(before.wakeups),
            statements: self.statements.saturating_sub(before.statements),
        }
    }
}

impl UsageDelta {
    fn minutes(&self) -> f64 {
        (self.seconds / 60.0).max(f64::EPSILON)
    }

    fn add_to(&self, figures: &mut Figures, executions: usize) {
        figures.set("window_seconds", round(self.seconds, 3));
        figures.set("cpu_seconds", round(self.cpu_seconds, 5));
        figures.set("cpu_user_seconds_proc_stat", round(self.user_seconds, 2));
        figures.set(
            "cpu_system_seconds_proc_stat",
            round(self.system_seconds, 2),
        );
        figures.set(
            "cpu_share_of_one_core",
            round(self.cpu_seconds / self.seconds.max(f64::EPSILON), 5),
        );
        figures.set("statements", self.statements);
        figures.set(
            "queries_per_minute",
            round(self.statements as f64 / self.minutes(), 1),
        );
        figures.set(
            "wakeups_per_minute",
            round(self.wakeups as f64 / self.minutes(), 1),
        );
        if executions > 0 {
            let per_execution = self.cpu_seconds * 1_000.0 / executions as f64;
            figures.set("cpu_ms_per_execution", round(per_execution, 4));
            figures.set(
                "statements_per_execution",
                round(self.statements as f64 / executions as f64, 2),
            );
        }
    }

    fn print(&self, executions: usize) {
        println!(
            "  CPU                {:.4} s in {:.1} s ({:.2}% of one core; /proc/self/stat: \
             {:.2} s user, {:.2} s system)",
            self.cpu_seconds,
            self.seconds,
            self.cpu_seconds / self.seconds.max(f64::EPSILON) * 100.0,
            self.user_seconds,
            self.system_seconds,
        );
        if executions > 0 {
            println!(
                "  per execution      {:.4} ms CPU, {:.2} SQL statements",
                self.cpu_seconds * 1_000.0 / executions as f64,
                self.statements as f64 / executions as f64
            );
        }
        println!(
            "  per minute         {:.1} SQL statements, {:.1} thread wake-ups",
            self.statements as f64 / self.minutes(),
            self.wakeups as f64 / self.minutes()
        );
    }
}

/// Sums CPU seconds and voluntary context switches over the live threads.
///
/// NOTE: a thread that exits drops out of the sum, with the CPU time it
/// used; /proc/self/stat, printed beside, still counts it.
fn thread_accounting() -> Result<(f64, u64), BoxError> {
    let mut cpu_ms = 0.0;
    let mut switches = 0;
    for entry in fs::read_dir("/proc/self/task")? {
        let path = entry?.path().join("sched");
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            // The thread ended after the folder was listed.
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error.into()),
        };
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            match key.trim() {
                "se.sum_exec_runtime" => cpu_ms += value.trim().parse::<f64>()?,
                "nr_voluntary_switches" => switches += value.trim().parse::<u64>()?,
                _ => {}
            }
        }
    }
    Ok((cpu_ms / 1_000.0, switches))
}

/// Returns the user and the system time of the process, dead threads
/// included.
fn process_cpu_seconds() -> Result<(f64, f64), BoxError> {
    let stat = fs::read_to_string("/proc/self/stat")?;
    // The fields after the command name, which is in brackets and may
    // contain spaces. utime and stime are fields 14 and 15 of the line.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("/proc/self/stat has no command name in brackets")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| -> Result<f64, BoxError> {
        let field = fields
            .get(index)
            .ok_or("/proc/self/stat has fewer fields than expected")?;
        Ok(field.parse::<f64>()?)
    };
    Ok((
        ticks(11)? / CLOCK_TICKS_PER_SECOND,
        ticks(12)? / CLOCK_TICKS_PER_SECOND,
    ))
}

/// Returns `VmHWM`, the peak resident set size, in MB.
fn peak_rss_mb() -> Result<f64, BoxError> {
    let status = fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .ok_or("/proc/self/status has no VmHWM line")?;
    let kilobytes: f64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kilobytes / 1024.0)
}

/// Sets the peak resident set size back to the current one, so each run
/// reports its own peak.
fn reset_peak_rss() -> Result<(), BoxError> {
    fs::write("/proc/self/clear_refs", "5").map_err(|error| {
        format!("cannot reset the peak RSS through /proc/self/clear_refs: {error}").into()
    })
}

/// The figures of one run, as one JSON object.
struct Figures(Map<String, Value>);

impl Figures {
    fn new(workload: &str, scheduler: &str) -> Figures {
        let mut figures = Figures(Map::new());
        figures.set("workload", workload);
        figures.set("scheduler", scheduler);
        figures
    }

    fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.0.insert(key.to_owned(), value.into());
    }
}

/// The runner's log: a formatter that writes to a file at info level while
/// it is on, and drops everything while it is off. Warnings and errors
/// always go to stderr.
struct RunnerLog {
    sink: Arc<LogSink>,
    set_level: Box<dyn Fn(LevelFilter) -> Result<(), BoxError> + Send + Sync>,
}

#[derive(Default)]
struct LogSink {
    file: Mutex<Option<(PathBuf, File)>>,
}

impl io::Write for &LogSink {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        let mut file = lock(&self.file);
        match file.as_mut() {
            Some((_, file)) => file.write(buffer),
            None => Ok(buffer.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut file = lock(&self.file);
        match file.as_mut() {
            Some((_, file)) => file.flush(),
            None => Ok(()),
        }
    }
}

impl RunnerLog {
    fn install() -> RunnerLog {
        let sink = Arc::new(LogSink::default());
        let (filter, handle) = reload::Layer::new(LevelFilter::OFF);
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(sink.clone())
                    .with_filter(filter),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(io::stderr)
                    .with_filter(LevelFilter::WARN),
            )
            .with(quicksilver::capture_layer())
            .init();
        RunnerLog {
            sink,
            set_level: Box::new(move |level| {
                handle.modify(|filter| *filter = level)?;
                Ok(())
            }),
        }
    }

    fn start(&self, path: &Path) -> Result<(), BoxError> {
        let file = File::create(path)
            .map_err(|error| format!("cannot create the log file {}: {error}", path.display()))?;
        *lock(&self.sink.file) = Some((path.to_owned(), file));
        (self.set_level)(LevelFilter::INFO)
    }

    fn stop(&self) {
        if let Err(error) = (self.set_level)(LevelFilter::OFF) {
            eprintln!("warning: cannot turn the runner log off: {error}");
        }
        *lock(&self.sink.file) = None;
    }

    fn is_on(&self) -> bool {
        lock(&self.sink.file).is_some()
    }

    /// Returns `, runner log info to PATH` while the log is on, for a
    /// summary's heading.
    fn summary(&self) -> String {
        match lock(&self.sink.file).as_ref() {
            Some((path, _)) => format!(", runner log info to {}", path.display()),
            None => String::new(),
        }
    }

    /// Returns `info to PATH` while the log is on, and null otherwise.
    fn describe(&self) -> Value {
        match &*lock(&self.sink.file) {
            Some((path, _)) => json!(format!("info to {}", path.display())),
            None => Value::Null,
        }
    }
}

fn whole_second(time: DateTime<Utc>) -> DateTime<Utc> {
    time.with_nanosecond(0).unwrap_or(time)
}

/// Returns the first multiple of `seconds` in Unix time at or after `time`.
fn grid_at_or_after(time: DateTime<Utc>, seconds: u64) -> DateTime<Utc> {
    let step = seconds as i64;
    let unix = time.timestamp() + i64::from(time.nanosecond() > 0);
    let aligned = unix.div_euclid(step) * step + if unix % step == 0 { 0 } else { step };
    DateTime::from_timestamp(aligned, 0).unwrap_or(time)
}

/// Returns the last multiple of `seconds` in Unix time at or before `time`.
fn grid_at_or_before(time: DateTime<Utc>, seconds: u64) -> DateTime<Utc> {
    let step = seconds as i64;
    let aligned = time.timestamp().div_euclid(step) * step;
    DateTime::from_timestamp(aligned, 0).unwrap_or(time)
}

async fn sleep_until(time: DateTime<Utc>) {
    let wait = (time - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    tokio::time::sleep(wait).await;
}

/// Locks `mutex`, also after a panic in another holder, since every value
/// guarded here stays valid.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

fn format_figure(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value}"))
}
