//! The runner: claims the due tasks of one queue and runs them.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::alert::{AlertSettings, AlertSink, Monitor};
use crate::clock::{Clock, SystemClock};
use crate::command::{find_command, CauseChain, NextRun};
use crate::context::{Context, ContextParts};
use crate::execution::{summary_line, Status};
use crate::lock::{self, Attempt, LockError, LockKind};
use crate::output::{self, OutputBuffer, EXECUTION_SPAN, OUTPUT_LIMIT};
use crate::store::{Claim, Finish, ReapRequest, Reaped, RunnerRecord, Store, StoreError};
use crate::task::DEFAULT_QUEUE;

/// How long before a due time the runner's timer fires, to finish the
/// wait with a precise thread sleep (see [`finish_sleep`]).
const TIMER_SLACK: Duration = Duration::from_millis(3);

/// The maximum time a runner on SQLite goes without reading its queue,
/// even when the file looks unchanged.
const FORCED_CHECK: Duration = Duration::from_secs(60);

/// On SQLite, a heartbeat looks for dead runners of its queue only every
/// this many beats while the last look found no run of another runner.
const SQLITE_REAP_EVERY: u32 = 4;

/// The shortest time before a due time at which the runner claims a task,
/// so that it can start it on time.
const MIN_CLAIM_LEAD: Duration = Duration::from_millis(2);

/// The maximum time before a due time at which the runner claims a task.
/// Claiming records the execution as `ongoing`, so it stays close to the
/// start.
const MAX_CLAIM_LEAD: Duration = Duration::from_millis(50);

/// The default bound on how long the runner sleeps between checks.
pub const DEFAULT_SLEEP_DURATION: Duration = Duration::from_secs(5);

/// The default time between two heartbeats of a runner.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);

/// The default age of a heartbeat after which its runner counts as dead.
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(45);

/// The default time running executions get to finish after a stop signal.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(20);

/// A wall-clock jump larger than this, against the monotonic clock, makes
/// the runner move the queue's schedule with it.
const CLOCK_JUMP_TOLERANCE: TimeDelta = TimeDelta::seconds(2);

/// The maximum duration a runner option accepts: ten years.
const MAX_OPTION_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The maximum wait between retries of a failed database call.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// The errors that stop a runner before or while it runs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// A runner option is out of range.
    #[error("invalid runner option {option} = {value}: {reason}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// The rejected value.
        value: String,
        /// The accepted range.
        reason: &'static str,
    },
    /// Two functions register the same command name.
    #[error("command names registered more than once: {0}; rename one with #[quicksilver::command(name = \"...\")]")]
    DuplicateCommands(String),
    /// The store failed in a way a retry cannot cure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The queue lock file could not be used.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The runner's thread could not be started.
    #[error("cannot start the runner's thread")]
    Thread(#[source] std::io::Error),
    /// The runner's own code panicked; commands that panic never cause this.
    #[error("the runner panicked: {0}")]
    Panicked(String),
}

/// The reason a runner returned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// Another runner on this machine serves the queue; this one did nothing.
    QueueTaken {
        /// The note of the other runner in the lock file: its pid and
        /// identity.
        holder: String,
    },
    /// SIGINT or SIGTERM arrived; the name of the signal.
    Signal(&'static str),
    /// The shutdown future given to [`RunnerBuilder::shutdown_signal`]
    /// completed.
    Shutdown,
    /// The restart time set with [`RunnerBuilder::restart_after`] passed;
    /// the caller starts a fresh runner or process.
    RestartDue,
}

/// A runner of one queue.
///
/// A runner claims the due tasks of its queue from the store, runs each in
/// the command registered under the task's command name, and records each
/// run as an execution. It sleeps until the next task falls due, and wakes
/// early when a task changes through the same [`Store`].
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), quicksilver::RunnerError> {
/// use std::time::Duration;
///
/// let reason = quicksilver::Runner::run_queue("default")
///     .sleep_duration(Duration::from_secs(5))
///     .restart_after(Duration::from_secs(30 * 60))
///     .run()
///     .await?;
/// println!("runner stopped: {reason:?}");
/// # Ok(())
/// # }
/// ```
pub struct Runner {
    options: Options,
    store: Option<Store>,
    database_url: Option<String>,
    shutdown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    identity: String,
}

/// The options of a [`Runner`].
#[must_use = "a runner builder does nothing until `run` or `build` is called"]
pub struct RunnerBuilder {
    options: Options,
    store: Option<Store>,
    database_url: Option<String>,
    shutdown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

/// The validated options that the runner and its executions share.
struct Options {
    queue: String,
    clock: Arc<dyn Clock>,
    sleep_duration: Duration,
    restart_after: Option<Duration>,
    concurrency: usize,
    grace_period: Duration,
    default_max_duration: Option<Duration>,
    lock_dir: PathBuf,
    handle_signals: bool,
    on_execution_end: Option<Arc<ExecutionHook>>,
    heartbeat_interval: Duration,
    heartbeat_timeout: Duration,
    /// The alert rules' settings; `None` turns alerts off.
    alerts: Option<AlertSettings>,
    alert_sinks: Vec<Arc<dyn AlertSink>>,
}

/// A callback the runner calls with each execution it recorded.
type ExecutionHook = dyn Fn(&crate::execution::Execution) + Send + Sync;

impl std::fmt::Debug for RunnerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.options.fmt(f)
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerOptions")
            .field("queue", &self.queue)
            .field("sleep_duration", &self.sleep_duration)
            .field("restart_after", &self.restart_after)
            .field("concurrency", &self.concurrency)
            .field("grace_period", &self.grace_period)
            .field("default_max_duration", &self.default_max_duration)
            .field("lock_dir", &self.lock_dir)
            .field("alerts", &self.alerts)
            .field(
                "alert_sinks",
                &self
                    .alert_sinks
                    .iter()
                    .map(|sink| sink.name())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// Starts building a runner for `queue`.
    pub fn run_queue(queue: impl Into<String>) -> RunnerBuilder {
        RunnerBuilder {
            store: None,
            database_url: None,
            shutdown: None,
            options: Options {
                queue: queue.into(),
                clock: Arc::new(SystemClock),
                sleep_duration: DEFAULT_SLEEP_DURATION,
                restart_after: None,
                concurrency: 1,
                grace_period: DEFAULT_GRACE_PERIOD,
                default_max_duration: None,
                lock_dir: lock::default_lock_dir(),
                handle_signals: true,
                on_execution_end: None,
                heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
                heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
                alerts: Some(AlertSettings::default()),
                alert_sinks: Vec::new(),
            },
        }
    }

    /// Starts building a runner for the `default` queue.
    pub fn builder() -> RunnerBuilder {
        Runner::run_queue(DEFAULT_QUEUE)
    }

    /// Returns the runner's identity: host name, process id and a random
    /// part, as recorded in each execution it runs.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Runs the queue until a stop signal, the shutdown future, or the
    /// restart time.
    ///
    /// Returns at once with [`StopReason::QueueTaken`] when another runner
    /// on this machine holds the queue's lock.
    ///
    /// # Errors
    ///
    /// - [`RunnerError::Store`] when the store cannot be opened, or fails
    ///   with an error that retrying cannot cure.
    /// - [`RunnerError::Lock`] when the queue's lock file cannot be used.
    /// - [`RunnerError::DuplicateCommands`] when two functions register the
    ///   same command name.
    pub async fn run(self) -> Result<StopReason, RunnerError> {
        let Runner {
            options,
            store,
            database_url,
            shutdown,
            identity,
        } = self;
        let store = match store {
            Some(store) => store,
            None => match &database_url {
                Some(url) => Store::open(url).await?,
                None => Store::open_from_env().await?,
            },
        };
        let state = RunState {
            store,
            options: Arc::new(options),
            identity: Arc::from(identity),
            commands: tokio::runtime::Handle::current(),
            alert_now: Arc::new(tokio::sync::Notify::new()),
        };

        // The runner's own loop, timers and bookkeeping run on a thread of
        // their own, so that commands that block the host's worker threads
        // cannot delay claims, max durations or shutdown.
        let (result_sender, result_receiver) = tokio::sync::oneshot::channel();
        let (cancel_sender, cancel_receiver) = tokio::sync::oneshot::channel::<()>();
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        let thread_name = format!("quicksilver-{}", state.options.queue);
        let thread = std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = result_sender.send(Err(RunnerError::Thread(error)));
                        return;
                    }
                };
                let result = tracing::dispatcher::with_default(&dispatch, || {
                    runtime.block_on(async {
                        tokio::select! {
                            result = state.run(shutdown) => Some(result),
                            // The caller dropped `run`: stop as abruptly as
                            // an aborted task would.
                            _ = cancel_receiver => None,
                        }
                    })
                });
                // Dropping the runtime waits for its blocking calls, such as
                // a heartbeat's write, so that none still uses a database
                // connection while the process exits: a client library
                // used during exit can crash it (seen with libpq over TLS).
                drop(runtime);
                if let Some(result) = result {
                    let _ = result_sender.send(result);
                }
            })
            .map_err(RunnerError::Thread)?;

        let _cancel_on_drop = cancel_sender;
        match result_receiver.await {
            Ok(result) => result,
            Err(_) => {
                let message = match thread.join() {
                    Err(payload) => panic_text(payload),
                    Ok(()) => "the runner thread ended without a result".to_owned(),
                };
                Err(RunnerError::Panicked(message))
            }
        }
    }
}

impl RunnerBuilder {
    /// Sets the queue to run.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.options.queue = queue.into();
        self
    }

    /// Sets the store; by default the runner opens the one named by
    /// `QUICKSILVER_DATABASE_URL`.
    pub fn store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Sets the database URL to open when no store is given.
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = Some(url.into());
        self
    }

    /// Sets the clock; [`SystemClock`] by default.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.options.clock = Arc::new(clock);
        self
    }

    /// Sets the longest sleep between two checks of the queue (5 s by
    /// default).
    ///
    /// The runner wakes at each task's due time, and when a task changes
    /// through its own store, whatever this is. The bound sets how soon it
    /// notices tasks changed by another process, such as the CLI.
    pub fn sleep_duration(mut self, sleep_duration: Duration) -> Self {
        self.options.sleep_duration = sleep_duration;
        self
    }

    /// Makes the runner stop claiming after `restart_after`, let running
    /// executions finish, and return [`StopReason::RestartDue`].
    pub fn restart_after(mut self, restart_after: Duration) -> Self {
        self.options.restart_after = Some(restart_after);
        self
    }

    /// Sets how many executions of the queue may run at once (1 by
    /// default). Two runs of one task never overlap, whatever this is.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.options.concurrency = concurrency;
        self
    }

    /// Sets how long running executions get to finish after a stop signal
    /// before they are recorded `killed` (20 s by default).
    pub fn grace_period(mut self, grace_period: Duration) -> Self {
        self.options.grace_period = grace_period;
        self
    }

    /// Sets the max duration of runs of tasks that set none.
    pub fn default_max_duration(mut self, max_duration: Duration) -> Self {
        self.options.default_max_duration = Some(max_duration);
        self
    }

    /// Sets the folder of lock files; `QUICKSILVER_LOCK_DIR` or the
    /// system's temporary folder by default.
    pub fn lock_dir(mut self, lock_dir: impl Into<PathBuf>) -> Self {
        self.options.lock_dir = lock_dir.into();
        self
    }

    /// Sets how often the runner writes its heartbeat (15 s by default),
    /// and how old another runner's heartbeat may be before that runner
    /// counts as dead (45 s by default).
    ///
    /// At each heartbeat the runner also looks for dead runners of its
    /// queue: their `ongoing` executions become `killed` and their leases
    /// are released, so a dead runner's runs are recorded within about
    /// `timeout + interval`. The timeout must exceed the interval by the
    /// clock difference between hosts and the longest database outage to
    /// ride out. At least twice the interval is required.
    pub fn heartbeat(mut self, interval: Duration, timeout: Duration) -> Self {
        self.options.heartbeat_interval = interval;
        self.options.heartbeat_timeout = timeout;
        self
    }

    /// Sets the thresholds of the alert rules ([`AlertSettings::default`]
    /// unless set), and turns alerts on if [`RunnerBuilder::no_alerts`]
    /// turned them off.
    ///
    /// The runner evaluates the rules over every task of its database at
    /// each [`AlertSettings::check_interval`], and at once when one of its
    /// runs is killed or fails; see [`crate::alert`].
    pub fn alerts(mut self, settings: AlertSettings) -> Self {
        self.options.alerts = Some(settings);
        self
    }

    /// Adds a sink that receives this runner's alerts. Alerts go to the log
    /// ([`crate::alert::LogSink`]) in any case.
    pub fn alert_sink(mut self, sink: impl AlertSink) -> Self {
        self.options.alert_sinks.push(Arc::new(sink));
        self
    }

    /// Adds a shared sink, as [`RunnerBuilder::alert_sink`] does.
    pub fn shared_alert_sink(mut self, sink: Arc<dyn AlertSink>) -> Self {
        self.options.alert_sinks.push(sink);
        self
    }

    /// Turns the alert rules off for this runner: it neither evaluates
    /// them nor sends alerts. Other runners still do.
    pub fn no_alerts(mut self) -> Self {
        self.options.alerts = None;
        self
    }

    /// Sets whether SIGINT and SIGTERM stop the runner (on by default).
    pub fn handle_signals(mut self, handle_signals: bool) -> Self {
        self.options.handle_signals = handle_signals;
        self
    }

    /// Calls `hook` with each execution once its end is recorded, for
    /// printing or metrics. It runs on the execution's task, so it should
    /// return quickly.
    pub fn on_execution_end(
        mut self,
        hook: impl Fn(&crate::execution::Execution) + Send + Sync + 'static,
    ) -> Self {
        self.options.on_execution_end = Some(Arc::new(hook));
        self
    }

    /// Stops the runner gracefully when `shutdown` completes.
    pub fn shutdown_signal(mut self, shutdown: impl Future<Output = ()> + Send + 'static) -> Self {
        self.shutdown = Some(Box::pin(shutdown));
        self
    }

    /// Validates the options and returns the runner.
    ///
    /// # Errors
    ///
    /// - [`RunnerError::InvalidOption`] for an empty queue name, a
    ///   concurrency of 0, a sleep duration under 10 ms or a zero max
    ///   duration.
    pub fn build(self) -> Result<Runner, RunnerError> {
        let options = &self.options;
        if options.queue.trim().is_empty() {
            return Err(RunnerError::InvalidOption {
                option: "queue",
                value: format!("{:?}", options.queue),
                reason: "a queue needs a name, such as `default`",
            });
        }
        if options.concurrency == 0 {
            return Err(RunnerError::InvalidOption {
                option: "concurrency",
                value: "0".to_owned(),
                reason: "at least 1 execution must be able to run",
            });
        }
        if options.sleep_duration < Duration::from_millis(10) {
            return Err(RunnerError::InvalidOption {
                option: "sleep_duration",
                value: format!("{:?}", options.sleep_duration),
                reason: "use at least 10 ms; the runner wakes at each due time anyway",
            });
        }
        if options.heartbeat_interval < Duration::from_millis(100)
            || options.heartbeat_timeout < options.heartbeat_interval * 2
        {
            return Err(RunnerError::InvalidOption {
                option: "heartbeat",
                value: format!(
                    "interval {:?}, timeout {:?}",
                    options.heartbeat_interval, options.heartbeat_timeout
                ),
                reason: "use an interval of at least 100 ms and a timeout of at least twice \
                         the interval",
            });
        }
        let durations = [
            ("heartbeat", Some(options.heartbeat_timeout)),
            ("sleep_duration", Some(options.sleep_duration)),
            ("grace_period", Some(options.grace_period)),
            ("restart_after", options.restart_after),
            ("default_max_duration", options.default_max_duration),
        ];
        for (option, duration) in durations {
            if duration.is_some_and(|duration| duration > MAX_OPTION_DURATION) {
                return Err(RunnerError::InvalidOption {
                    option,
                    value: format!("{duration:?}"),
                    reason: "use at most ten years",
                });
            }
        }
        if let Some(alerts) = &options.alerts {
            validate_alerts(alerts)?;
        }
        if options.default_max_duration == Some(Duration::ZERO) {
            return Err(RunnerError::InvalidOption {
                option: "default_max_duration",
                value: "0s".to_owned(),
                reason: "a zero max duration would kill every run",
            });
        }
        Ok(Runner {
            options: self.options,
            store: self.store,
            database_url: self.database_url,
            shutdown: self.shutdown,
            identity: runner_identity(),
        })
    }

    /// Builds the runner and runs it; see [`Runner::run`].
    ///
    /// # Errors
    ///
    /// - As [`RunnerBuilder::build`] and [`Runner::run`].
    pub async fn run(self) -> Result<StopReason, RunnerError> {
        self.build()?.run().await
    }
}

/// Checks the alert settings that [`RunnerBuilder::build`] would otherwise
/// accept and the rules could not use.
fn validate_alerts(settings: &AlertSettings) -> Result<(), RunnerError> {
    if !settings.deviations.is_finite() || settings.deviations < 0.0 {
        return Err(RunnerError::InvalidOption {
            option: "alerts.deviations",
            value: settings.deviations.to_string(),
            reason: "use a number of standard deviations of 0 or more, such as 2",
        });
    }
    if settings.check_interval < Duration::from_millis(100) {
        return Err(RunnerError::InvalidOption {
            option: "alerts.check_interval",
            value: format!("{:?}", settings.check_interval),
            reason: "use at least 100 ms",
        });
    }
    let durations = [
        ("alerts.min_runtime", Some(settings.min_runtime)),
        ("alerts.max_runtime", settings.max_runtime),
        ("alerts.overdue_after", Some(settings.overdue_after)),
        ("alerts.postpone", Some(settings.postpone)),
        ("alerts.check_interval", Some(settings.check_interval)),
    ];
    for (option, duration) in durations {
        if duration.is_some_and(|duration| duration > MAX_OPTION_DURATION) {
            return Err(RunnerError::InvalidOption {
                option,
                value: format!("{duration:?}"),
                reason: "use at most ten years",
            });
        }
    }
    Ok(())
}

/// Returns the identities of the runners running in this process.
fn live_runners() -> &'static std::sync::Mutex<std::collections::HashSet<String>> {
    static LIVE: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> =
        std::sync::OnceLock::new();
    LIVE.get_or_init(Default::default)
}

/// Keeps a runner's identity in [`live_runners`] while it runs.
struct LiveRunner(String);

impl LiveRunner {
    fn new(identity: &str) -> Self {
        live_runners()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(identity.to_owned());
        LiveRunner(identity.to_owned())
    }
}

impl Drop for LiveRunner {
    fn drop(&mut self) {
        live_runners()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
    }
}

/// Returns whether the runner with `identity` still runs on this machine.
///
/// A runner of this process is alive while it is registered. A runner of
/// another process is alive while a process with its pid runs this same
/// program, as `/proc` shows. A runner of another host, or on a system
/// without `/proc`, counts as gone.
fn runner_is_alive(identity: &str) -> bool {
    let mut parts = identity.rsplitn(3, ':');
    let (_random, pid, host) = (parts.next(), parts.next(), parts.next());
    let (Some(pid), Some(host)) = (pid.and_then(|pid| pid.parse::<u32>().ok()), host) else {
        return false;
    };
    if host != host_name() {
        return false;
    }
    if pid == std::process::id() {
        return live_runners()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(identity);
    }
    // A pid reused by an unrelated program after a reboot must not pass,
    // so the program must be this one.
    let theirs = std::fs::read_link(format!("/proc/{pid}/exe"));
    let ours = std::fs::read_link("/proc/self/exe");
    matches!((theirs, ours), (Ok(theirs), Ok(ours)) if theirs == ours)
}

/// Returns whether the runner with `identity` runs on this host.
fn runs_on_this_host(identity: &str) -> bool {
    let mut parts = identity.rsplitn(3, ':');
    let host = parts.nth(2);
    host == Some(host_name().as_str())
}

pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Returns `host:pid:random`, unique among runners that share a database.
pub(crate) fn runner_identity() -> String {
    let host = host_name();
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        hasher.finish() as u32
    )
}

#[derive(Clone)]
struct RunState {
    store: Store,
    options: Arc<Options>,
    identity: Arc<str>,
    commands: tokio::runtime::Handle,
    /// Wakes the alert evaluation when a run of this runner ends killed or
    /// in error.
    alert_now: Arc<tokio::sync::Notify>,
}

impl RunState {
    async fn run(
        &self,
        shutdown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    ) -> Result<StopReason, RunnerError> {
        let options = &self.options;
        let queue = options.queue.as_str();
        let span = tracing::info_span!("quicksilver.runner", queue.name = queue, runner.id = %self.identity);

        let duplicates = crate::command::duplicate_commands();
        if !duplicates.is_empty() {
            let listed: Vec<String> = duplicates
                .iter()
                .map(|(name, modules)| format!("`{name}` in {}", modules.join(" and ")))
                .collect();
            return Err(RunnerError::DuplicateCommands(listed.join(", ")));
        }

        let lock_path =
            lock::lock_path(&options.lock_dir, &self.store.key(), LockKind::Queue, queue);
        let note = format!("pid {} runner {}", std::process::id(), self.identity);
        let _queue_lock = match lock::try_lock(&lock_path, &note)? {
            Attempt::Acquired(held) => held,
            Attempt::Taken { holder } => {
                tracing::info!(parent: &span, lock.path = %lock_path.display(), holder = %holder,
                    "queue `{queue}` is taken by another runner on this machine; exiting");
                return Ok(StopReason::QueueTaken { holder });
            }
        };
        let _live = LiveRunner::new(&self.identity);
        // Polling the stop future once installs the signal handlers, so a
        // SIGTERM after the `runner started` log line stops the runner
        // gracefully instead of ending the process.
        let mut stop = Box::pin(stop_signal(self.options.handle_signals, shutdown));
        let early = std::future::poll_fn(|cx| std::task::Poll::Ready(stop.as_mut().poll(cx))).await;
        if let std::task::Poll::Ready(reason) = early {
            return Ok(reason);
        }
        tracing::info!(parent: &span, database = %self.store.url(), "runner started");
        if !output::capture_installed() {
            tracing::warn!(parent: &span,
                "quicksilver::capture_layer() is not part of the tracing subscriber: \
                 events that commands emit will not appear in execution output");
        }

        self.kill_orphans(&span).await?;
        let record = self.runner_record();
        retry(&span, "register the runner", || {
            self.store
                .register_runner(record.clone(), self.options.clock.now())
        })
        .await?;
        let stopped = self.serve(stop).instrument(span.clone()).await;
        if let Err(error) = self
            .store
            .stop_runner(&self.identity, self.options.clock.now())
            .await
        {
            tracing::warn!(parent: &span, error = %CauseChain(&error),
                "recording the runner's stop failed; other runners will take it for dead \
                 once its heartbeat is too old");
        }
        stopped
    }

    /// Returns the row that describes this runner to the other runners.
    fn runner_record(&self) -> RunnerRecord {
        RunnerRecord {
            identity: self.identity.to_string(),
            queue: self.options.queue.clone(),
            host: host_name(),
            pid: std::process::id(),
        }
    }

    /// Writes this runner's heartbeat, then marks the runs of dead runners
    /// of the queue `killed`. A failure is logged and tried again at the
    /// next heartbeat.
    async fn beat(&self, memory: &HeartbeatMemory, running: Vec<i64>) {
        let now = self.options.clock.now();
        let timeout = self.options.heartbeat_timeout;
        let request = ReapRequest {
            queue: self.options.queue.clone(),
            runner: self.identity.to_string(),
            running,
            suspects: lock_memory(&memory.suspects).clone(),
            stale_before: now - to_delta(timeout),
            now,
            dead_reason: format!(
                "killed: the runner of this execution sent no heartbeat for over {} \
                 (found by runner {} at {})",
                humanize(timeout),
                self.identity,
                now.to_rfc3339()
            ),
            unknown_reason: format!(
                "killed: this run was claimed while the connection to the database broke, \
                 so runner {} never started it (found at {})",
                self.identity,
                now.to_rfc3339()
            ),
        };
        // On SQLite, every runner of a queue shares one machine, and the
        // queue lock keeps a second one away unless it uses another lock
        // folder: while no run of another runner was seen, looking once a
        // minute is enough.
        let beats = memory.since_reap.fetch_add(1, Ordering::Relaxed) + 1;
        let look = !self.store.is_sqlite()
            || memory.others_seen.load(Ordering::Relaxed)
            || beats >= SQLITE_REAP_EVERY;
        let reaped = match self.store.heartbeat(self.runner_record(), now).await {
            Ok(()) if look => {
                memory.since_reap.store(0, Ordering::Relaxed);
                self.store.reap(request).await
            }
            Ok(()) => Ok(Reaped {
                suspects: lock_memory(&memory.suspects).clone(),
                others_seen: false,
                ..Reaped::default()
            }),
            Err(error) => Err(error),
        };
        match reaped {
            Ok(reaped) => {
                let failures = memory.failures.swap(0, Ordering::Relaxed);
                if failures > 0 {
                    tracing::info!(failures, "heartbeat written again");
                }
                *lock_memory(&memory.suspects) = reaped.suspects;
                memory
                    .others_seen
                    .store(reaped.others_seen, Ordering::Relaxed);
                for (execution_id, runner) in reaped.dead {
                    tracing::warn!(execution.id = execution_id, runner.id = %runner,
                        "marked execution killed: its runner stopped sending heartbeats");
                }
                for execution_id in reaped.unknown {
                    tracing::warn!(
                        execution.id = execution_id,
                        "marked execution killed: its claim was cut off by a lost connection, \
                         so it never started"
                    );
                }
            }
            Err(error) => {
                let failures = memory.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::error!(error = %CauseChain(&error), failures,
                        "writing the heartbeat failed; retrying at the next one");
                }
            }
        }
    }

    /// Marks the executions of this queue left `ongoing` by a runner that
    /// is gone. Holding the queue lock proves no live runner on this
    /// machine serves the queue.
    async fn kill_orphans(&self, span: &tracing::Span) -> Result<(), RunnerError> {
        let now = self.options.clock.now();
        let reason = format!(
            "killed: the runner that started this execution stopped before it ended \
             (found by runner {} at {})",
            self.identity,
            now.to_rfc3339()
        );
        let (killed, spared) = retry(span, "mark orphaned executions", || {
            // Runs of runners on other hosts are left to the heartbeat
            // check, which alone can tell whether those runners live.
            self.store
                .kill_ongoing(&self.options.queue, reason.clone(), now, |runner| {
                    runner_is_alive(runner) || !runs_on_this_host(runner)
                })
        })
        .await?;
        for execution_id in killed {
            tracing::warn!(parent: span, execution.id = execution_id,
                "marked execution killed: it was left ongoing by a runner that stopped");
        }
        for (execution_id, runner) in spared {
            tracing::warn!(parent: span, execution.id = execution_id, runner.id = %runner,
                "execution is ongoing under a runner that still runs on this machine, with \
                 another lock folder; give every runner the same QUICKSILVER_LOCK_DIR");
        }
        Ok(())
    }

    async fn serve(
        &self,
        mut stop: Pin<Box<impl Future<Output = StopReason>>>,
    ) -> Result<StopReason, RunnerError> {
        let options = &self.options;
        let clock = options.clock.clone();
        let restart_at = options
            .restart_after
            .and_then(|after| tokio::time::Instant::now().checked_add(after));
        let (kill_sender, kill_receiver) = watch::channel(None::<String>);
        let mut running = Lanes::new(self.store.clone());

        let mut last_wall = clock.now();
        let mut last_instant = Instant::now();
        let mut failures = 0u32;
        let mut changes = self.store.watch_changes();
        // On PostgreSQL, changes that other processes make wake the runner
        // at once. Elsewhere it reads them at its next check.
        let _listener = self
            .store
            .listen_for_changes()
            .map(|listener| AbortOnDrop(listener.abort_handle()));
        let mut expected_due = None;
        let mut claim_lead = MIN_CLAIM_LEAD;
        // On SQLite, a periodic wake-up finds the file unchanged most of the
        // time: then it skips its query, up to FORCED_CHECK apart.
        let mut seen_stamp = None;
        let mut last_check = Instant::now();
        let mut periodic_wake = false;
        // The heartbeat runs beside this loop, so that a due time that comes
        // during its writes is claimed on time, and goes on while running
        // executions finish after a stop.
        let heartbeat = {
            let state = self.clone();
            let running_ids = running.ids.clone();
            let interval = options.heartbeat_interval;
            let task = tokio::spawn(async move {
                let memory = HeartbeatMemory::default();
                loop {
                    tokio::time::sleep(interval).await;
                    let ids = lock_memory(&running_ids).values().copied().collect();
                    state.beat(&memory, ids).await;
                }
            });
            AbortOnDrop(task.abort_handle())
        };
        let alerts = self.watch_alerts();

        let reason = loop {
            let now = clock.now();
            let elapsed = TimeDelta::from_std(last_instant.elapsed()).unwrap_or(TimeDelta::MAX);
            let skew = now - (last_wall + elapsed);
            if skew.abs() > CLOCK_JUMP_TOLERANCE {
                self.follow_clock_jump(skew, now).await;
            }
            last_wall = now;
            last_instant = Instant::now();

            running.join_ended().await;
            let unchanged = periodic_wake
                && failures == 0
                && last_check.elapsed() < FORCED_CHECK
                && seen_stamp.is_some()
                && self.store.file_stamp() == seen_stamp;
            periodic_wake = false;
            if unchanged {
                let deadline = self.next_wake(expected_due, claim_lead, failures, running.len());
                tokio::select! {
                    () = clock.sleep_until(deadline.at - to_delta(TIMER_SLACK)) => {
                        finish_sleep(&*clock, deadline.at);
                        periodic_wake = deadline.periodic;
                    }
                    Ok(()) = changes.changed() => {}
                    Some(()) = running.join_next(), if !running.is_empty() => {}
                    reason = &mut stop => break reason,
                    () = sleep_until_option(restart_at) => break StopReason::RestartDue,
                }
                continue;
            }
            let free = options.concurrency.saturating_sub(running.len());
            // Tasks due within the claim lead are claimed now, as of their
            // due time, and started when it comes: the claim's own time
            // then does not make them late. A wake-up for a due time that
            // the last claim reported goes straight to the claim, without
            // checking first.
            let as_of = match expected_due {
                Some(due) if due > now && due - now <= to_delta(claim_lead) => due,
                _ => now,
            };
            let expected = expected_due.is_some_and(|due| due <= as_of);
            let mut next_due = None;
            let claim_started = Instant::now();
            // Only an idle queue skips checks, so a busy one spares the
            // two `stat` calls.
            let stamp = if running.is_empty() {
                self.store.file_stamp()
            } else {
                None
            };
            match self
                .store
                .claim_due(&options.queue, as_of, free, &self.identity, expected)
                .await
            {
                Ok(batch) => {
                    if failures > 0 {
                        tracing::info!(failures, "database reachable again; claiming resumed");
                    }
                    failures = 0;
                    seen_stamp = stamp;
                    last_check = Instant::now();
                    if !batch.claims.is_empty() {
                        claim_lead = lead_after(claim_started.elapsed());
                        if as_of > clock.now() {
                            clock.sleep_until(as_of - to_delta(TIMER_SLACK)).await;
                            finish_sleep(&*clock, as_of);
                        }
                    }
                    for claim in batch.claims {
                        let execution = Execution::new(self, claim, kill_receiver.clone());
                        running.spawn(execution);
                    }
                    next_due = batch.next_due;
                }
                Err(error) if error.is_transient() => {
                    failures += 1;
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::error!(error = %CauseChain(&error), failures,
                            "claiming due tasks failed; retrying");
                    }
                }
                Err(error) => return Err(error.into()),
            }

            expected_due = next_due;
            let deadline = self.next_wake(next_due, claim_lead, failures, running.len());

            tokio::select! {
                () = clock.sleep_until(deadline.at - to_delta(TIMER_SLACK)) => {
                    finish_sleep(&*clock, deadline.at);
                    periodic_wake = deadline.periodic;
                }
                Ok(()) = changes.changed() => {}
                Some(()) = running.join_next(), if !running.is_empty() => {}
                reason = &mut stop => break reason,
                () = sleep_until_option(restart_at) => break StopReason::RestartDue,
            }
        };

        let drained = self
            .drain(reason, &mut running, &kill_sender, &mut stop)
            .await;
        // No heartbeat may write after the runner records its stop.
        drop(heartbeat);
        drop(alerts);
        drained
    }

    /// Returns when the runner's loop wakes next: ahead of the next due
    /// time by the claim lead while a lane is free, and no later than the
    /// sleep duration (or the retry delay after failures).
    fn next_wake(
        &self,
        next_due: Option<DateTime<Utc>>,
        claim_lead: Duration,
        failures: u32,
        running: usize,
    ) -> Wake {
        let options = &self.options;
        let now = options.clock.now();
        let bound = now + to_delta(options.sleep_duration.min(backoff(failures)));
        match next_due {
            Some(due) if running < options.concurrency && failures == 0 => {
                let claim_at = due - to_delta(claim_lead);
                if claim_at < bound {
                    Wake {
                        at: claim_at,
                        periodic: false,
                    }
                } else {
                    Wake {
                        at: bound,
                        periodic: true,
                    }
                }
            }
            _ => Wake {
                at: bound,
                periodic: failures == 0,
            },
        }
    }

    /// Starts evaluating the alert rules beside the runner's loop: at once,
    /// then at each check interval and whenever one of this runner's runs
    /// ends killed or in error. Returns `None` when alerts are off.
    fn watch_alerts(&self) -> Option<AbortOnDrop> {
        let settings = self.options.alerts.clone()?;
        let interval = settings.check_interval;
        let monitor = self.options.alert_sinks.iter().fold(
            Monitor::new(self.store.clone(), settings),
            |monitor, sink| monitor.shared_sink(sink.clone()),
        );
        let clock = self.options.clock.clone();
        let wake = self.alert_now.clone();
        let task = tokio::spawn(
            async move {
                let mut failures = 0u32;
                loop {
                    match monitor.evaluate(clock.now()).await {
                        Ok(_) if failures > 0 => {
                            tracing::info!(failures, "alert rules evaluated again");
                            failures = 0;
                        }
                        Ok(_) => {}
                        Err(error) => {
                            failures += 1;
                            if failures == 1 || failures.is_power_of_two() {
                                tracing::error!(error = %CauseChain(&error), failures,
                                    "evaluating the alert rules failed; retrying at the next check");
                            }
                        }
                    }
                    tokio::select! {
                        () = tokio::time::sleep(interval) => {}
                        () = wake.notified() => {}
                    }
                }
            }
            .in_current_span(),
        );
        Some(AbortOnDrop(task.abort_handle()))
    }

    /// Waits for running executions after the runner stopped claiming.
    async fn drain(
        &self,
        reason: StopReason,
        running: &mut Lanes,
        kill_sender: &watch::Sender<Option<String>>,
        stop: &mut Pin<Box<impl Future<Output = StopReason>>>,
    ) -> Result<StopReason, RunnerError> {
        let grace = self.options.grace_period;
        let mut reason = reason;
        tracing::info!(reason = ?reason, running = running.len(), "runner stopping");

        // A restart lets runs finish however long they take, unless a stop
        // signal arrives meanwhile; a stop signal gives them the grace period.
        if reason == StopReason::RestartDue {
            loop {
                tokio::select! {
                    joined = running.join_next() => if joined.is_none() { break },
                    signal = &mut *stop => { reason = signal; break }
                }
            }
        }

        let deadline = tokio::time::Instant::now() + grace;
        while !running.is_empty() {
            tokio::select! {
                _ = running.join_next() => {}
                () = tokio::time::sleep_until(deadline) => break,
            }
        }

        if !running.is_empty() {
            let cause = match &reason {
                StopReason::Signal(signal) => format!("the runner received {signal}"),
                _ => "the runner stopped".to_owned(),
            };
            let message = format!(
                "killed: {cause} and the run did not finish within the grace period of {}",
                humanize(grace)
            );
            tracing::warn!(
                running = running.len(),
                "grace period over; killing running executions"
            );
            let _ = kill_sender.send(Some(message));
            while running.join_next().await.is_some() {}
        }
        tracing::info!(reason = ?reason, "runner stopped");
        Ok(reason)
    }

    /// Moves the queue's schedule after the wall clock jumped.
    ///
    /// Forward jumps need nothing: the tasks are due, and each runs once
    /// (missed ticks coalesce). Backward jumps would leave every next run
    /// far in the future, so next runs move back by the jump.
    async fn follow_clock_jump(&self, skew: TimeDelta, now: DateTime<Utc>) {
        tracing::warn!(jump_seconds = skew.as_seconds_f64(), "wall clock jumped");
        if skew >= TimeDelta::zero() {
            return;
        }
        if let Err(error) = self
            .store
            .shift_next_runs(&self.options.queue, skew, now)
            .await
        {
            tracing::error!(error = %CauseChain(&error),
                "moving next runs after a backward clock jump failed; tasks wait for their stored next run");
        }
    }
}

/// The executions running on a runner's tokio tasks.
struct Lanes {
    set: JoinSet<()>,
    /// The execution of each task in the set, shared with the heartbeat.
    ids: Arc<std::sync::Mutex<HashMap<tokio::task::Id, i64>>>,
    store: Store,
}

impl Lanes {
    fn new(store: Store) -> Self {
        Lanes {
            set: JoinSet::new(),
            ids: Arc::default(),
            store,
        }
    }

    fn len(&self) -> usize {
        self.set.len()
    }

    fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    fn spawn(&mut self, execution: Execution) {
        let execution_id = execution.claim.execution_id;
        let handle = self.set.spawn(execution.run());
        lock_memory(&self.ids).insert(handle.id(), execution_id);
    }

    /// Waits for one execution task to end, and returns `None` when none
    /// runs.
    ///
    /// An execution task that panicked, which a command's panic never
    /// causes, would leave its execution `ongoing` and its task blocked, so
    /// the execution is recorded as `error` here.
    async fn join_next(&mut self) -> Option<()> {
        let joined = self.set.join_next_with_id().await?;
        self.joined(joined).await;
        Some(())
    }

    /// Takes in every execution task that has ended, without waiting, so
    /// that the next claim fills all the lanes they freed at once.
    async fn join_ended(&mut self) {
        while let Some(joined) = self.set.try_join_next_with_id() {
            self.joined(joined).await;
        }
    }

    async fn joined(&mut self, joined: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        let (id, panic) = match joined {
            Ok((id, ())) => (id, None),
            Err(error) => (
                error.id(),
                error.is_panic().then(|| panic_text(error.into_panic())),
            ),
        };
        let execution_id = lock_memory(&self.ids).remove(&id);
        if let (Some(execution_id), Some(message)) = (execution_id, panic) {
            let span = tracing::error_span!("quicksilver.claim", execution.id = execution_id);
            tracing::error!(parent: &span, panic = %message, "the runner failed while running an execution");
            let finish = Finish {
                execution_id,
                task_id: None,
                status: Status::Error,
                started: None,
                ended: Utc::now(),
                runtime: Duration::ZERO,
                output: format!("error: the runner failed while running this execution: {message}"),
                next_run: None,
            };
            record(&self.store, finish, &span).await;
        }
    }
}

/// One claimed run on its way through the command.
struct Execution {
    store: Store,
    options: Arc<Options>,
    identity: Arc<str>,
    commands: tokio::runtime::Handle,
    claim: Claim,
    kill: watch::Receiver<Option<String>>,
    alert_now: Arc<tokio::sync::Notify>,
}

impl Execution {
    fn new(state: &RunState, claim: Claim, kill: watch::Receiver<Option<String>>) -> Self {
        Execution {
            store: state.store.clone(),
            options: state.options.clone(),
            identity: state.identity.clone(),
            commands: state.commands.clone(),
            claim,
            kill,
            alert_now: state.alert_now.clone(),
        }
    }

    async fn run(self) {
        let task = &self.claim.task;
        let span = tracing::info_span!("quicksilver.claim",
            execution.id = self.claim.execution_id, task.id = task.id, task.command = %task.command);
        if let Some(message) = &self.claim.rejected {
            tracing::error!(parent: &span, reason = %message, "task cannot run, so it was paused");
            return;
        }

        let started_at = self.options.clock.now();
        let request = RunRequest {
            store: self.store.clone(),
            clock: self.options.clock.clone(),
            command: task.command.clone(),
            arguments: task.arguments.clone(),
            task_id: Some(task.id),
            execution_id: self.claim.execution_id,
            due_at: Some(self.claim.due_at),
            started_at,
            max_duration: task.max_duration().or(self.options.default_max_duration),
            lock_dir: self.options.lock_dir.clone(),
            holder: format!("pid {} runner {}", std::process::id(), self.identity),
            lease_holder: self.identity.to_string(),
            lease_timeout: self.options.heartbeat_timeout,
            echo: false,
            commands: self.commands.clone(),
        };
        let finished = run_command(request, self.kill)
            .instrument(span.clone())
            .await;
        let report = self.options.on_execution_end.as_ref().map(|hook| {
            let execution = crate::execution::Execution {
                id: finished.execution_id,
                task_id: Some(task.id),
                command: task.command.clone(),
                arguments: task.arguments.clone(),
                queue: Some(task.queue.clone()),
                status: finished.status,
                due_at: Some(self.claim.due_at),
                started: finished.started.or(Some(started_at)),
                ended: Some(finished.ended),
                runtime_seconds: Some(finished.runtime.as_secs_f64()),
                output: finished.output.clone(),
                runner: Some(self.identity.to_string()),
            };
            (hook.clone(), execution)
        });
        let ended_badly = matches!(finished.status, Status::Error | Status::Killed);
        record(&self.store, finished, &span).await;
        if ended_badly {
            self.alert_now.notify_one();
        }
        if let Some((hook, execution)) = report {
            hook(&execution);
        }
    }
}

/// When the runner's loop wakes next, and whether only to look for changes
/// of other processes.
struct Wake {
    at: DateTime<Utc>,
    periodic: bool,
}

/// Everything needed to run one command once.
pub(crate) struct RunRequest {
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) command: String,
    pub(crate) arguments: Vec<String>,
    pub(crate) task_id: Option<i64>,
    pub(crate) execution_id: i64,
    pub(crate) due_at: Option<DateTime<Utc>>,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) max_duration: Option<Duration>,
    pub(crate) lock_dir: PathBuf,
    pub(crate) holder: String,
    /// The holder of the command's lease in the database: the runner's
    /// identity.
    pub(crate) lease_holder: String,
    /// How long the lease lasts unless renewed.
    pub(crate) lease_timeout: Duration,
    pub(crate) echo: bool,
    /// The runtime that runs the command itself: the host's.
    pub(crate) commands: tokio::runtime::Handle,
}

/// Runs a command: resolves it, parses its arguments, takes its lock if it
/// has one, runs it with a max duration and a kill switch, and returns how
/// the execution ends.
pub(crate) async fn run_command(
    request: RunRequest,
    mut kill: watch::Receiver<Option<String>>,
) -> Finish {
    let buffer = Arc::new(OutputBuffer::new(OUTPUT_LIMIT, request.echo));
    let task_label = match request.task_id {
        Some(id) => format!("task {id}"),
        None => "this run".to_owned(),
    };
    let mut finish = Finish {
        execution_id: request.execution_id,
        task_id: request.task_id,
        status: Status::Error,
        started: None,
        ended: request.started_at,
        runtime: Duration::ZERO,
        output: String::new(),
        next_run: None,
    };

    let Some(descriptor) = find_command(&request.command) else {
        let fix = match request.task_id {
            Some(id) => {
                format!("or change the task's command with `tasks edit {id} --command NAME`")
            }
            None => "or run one of the commands that `run --help` lists".to_owned(),
        };
        finish.output = format!(
            "error: {task_label} runs unknown command `{}`: no command of this name is \
             registered in this binary; mark an async fn with #[quicksilver::command] {fix}",
            request.command
        );
        finish.ended = request.clock.now();
        return finish;
    };

    let context = Context::new(ContextParts {
        store: request.store.clone(),
        clock: request.clock.clone(),
        output: buffer.clone(),
        command: request.command.clone(),
        task_id: request.task_id,
        execution_id: request.execution_id,
        due_at: request.due_at,
        started_at: request.started_at,
    });
    let future = match descriptor.start(context, &request.arguments) {
        Ok(future) => future,
        Err(error) => {
            let fix = match request.task_id {
                Some(id) => format!("fix the arguments with `tasks edit {id} --arguments ...`"),
                None => "fix the arguments on the command line".to_owned(),
            };
            finish.output = format!(
                "error: {task_label} has invalid arguments for command `{}`; {fix}\n{}",
                request.command,
                error.message()
            );
            finish.ended = request.clock.now();
            return finish;
        }
    };

    let _command_lock = if descriptor.is_locked() {
        let path = lock::lock_path(
            &request.lock_dir,
            &request.store.key(),
            LockKind::Command,
            descriptor.name(),
        );
        let taken = match lock::try_lock(&path, &request.holder) {
            Ok(Attempt::Acquired(held)) => {
                // The file lock covers this machine; the lease in the
                // database covers the other hosts that share it.
                let mut attempts = 0;
                let lease = loop {
                    let now = request.clock.now();
                    let taken = request
                        .store
                        .take_lease(
                            &lease_name(descriptor.name()),
                            &request.lease_holder,
                            Some(request.execution_id),
                            now,
                            now + to_delta(request.lease_timeout),
                        )
                        .await;
                    match taken {
                        // Two hosts that take a lease at once can deadlock
                        // on MySQL, which rolls one back: try that one again.
                        Err(error) if error.is_transient() && attempts < LEASE_ATTEMPTS => {
                            attempts += 1;
                            tracing::debug!(error = %CauseChain(&error), attempts,
                                "taking the command's lease failed; retrying");
                            tokio::time::sleep(Duration::from_millis(10 << attempts)).await;
                        }
                        taken => break taken,
                    }
                };
                match lease {
                    Ok(None) => Ok(held),
                    Ok(Some(holder)) => Err(Ok(format!("runner {holder}, on another host"))),
                    Err(error) => Err(Err(CauseChain(&error).to_string())),
                }
            }
            Ok(Attempt::Taken { holder }) => {
                Err(Ok(format!("{holder}; lock file {}", path.display())))
            }
            Err(error) => Err(Err(CauseChain(&error).to_string())),
        };
        match taken {
            Ok(held) => Some(held),
            Err(Ok(holder)) => {
                let schedule_note = if request.task_id.is_some() {
                    "; the task keeps its schedule"
                } else {
                    ""
                };
                finish.output = format!(
                    "error: skipped: command `{}` is locked, so at most one run of it goes at a \
                     time, and another run has the lock ({holder}){schedule_note}",
                    descriptor.name(),
                );
                finish.ended = request.clock.now();
                return finish;
            }
            Err(Err(error)) => {
                finish.output = format!("error: {error}");
                finish.ended = request.clock.now();
                return finish;
            }
        }
    } else {
        None
    };
    let lease = _command_lock
        .as_ref()
        .map(|_| lease_name(descriptor.name()));

    let registration = output::register(buffer.clone());
    let span = tracing::info_span!(
        EXECUTION_SPAN,
        execution.id = request.execution_id,
        output.key = registration.key()
    );
    finish.started = Some(request.clock.now());
    let started = Instant::now();
    let mut handle = request
        .commands
        .spawn(WithDispatcher::current(future.instrument(span)));
    // Ends the command when this future is dropped, as when the runner's
    // task is aborted, so that it never runs on unsupervised and unrecorded.
    let _abort_command = AbortOnDrop(handle.abort_handle());
    let max_duration = request.max_duration;
    let timeout = sleep_until_option(
        max_duration.and_then(|limit| tokio::time::Instant::now().checked_add(limit)),
    );

    let (status, ending) = tokio::select! {
        joined = &mut handle => match joined {
            Ok(outcome) => match outcome.result {
                Ok(next_run) => {
                    finish.next_run = match next_run {
                        NextRun::Schedule => None,
                        NextRun::At(at) => Some(at),
                        NextRun::After(delay) => Some(
                            request
                                .clock
                                .now()
                                .checked_add_signed(to_delta(delay))
                                .unwrap_or(DateTime::<Utc>::MAX_UTC),
                        ),
                    };
                    (Status::Success, None)
                }
                Err(error) => (Status::Error, Some(format!("error: {}", CauseChain(error.as_ref())))),
            },
            Err(error) if error.is_panic() => {
                let message = panic_text(error.into_panic());
                (Status::Error, Some(format!("error: the command panicked: {message}")))
            }
            Err(_) => (Status::Killed, Some("killed: the command's task was cancelled".to_owned())),
        },
        () = timeout => {
            handle.abort();
            let limit = max_duration.map(humanize).unwrap_or_default();
            (Status::Killed, Some(format!("killed: the run exceeded its max duration of {limit}")))
        }
        message = wait_for_kill(&mut kill) => {
            handle.abort();
            (Status::Killed, Some(message))
        }
        () = keep_lease(&request, lease.as_deref()) => unreachable!("keeping a lease never ends"),
    };
    if let Some(name) = &lease {
        if let Err(error) = request
            .store
            .release_lease(name, &request.lease_holder)
            .await
        {
            tracing::warn!(lease = %name, error = %CauseChain(&error),
                "releasing the command's lease failed; it frees itself when it expires");
        }
    }

    if handle.is_finished() || status != Status::Killed {
        drop(registration);
    } else {
        // An aborted command stops at its next await; give it a moment, so
        // its last events still land in the output.
        let _ = tokio::time::timeout(Duration::from_millis(100), &mut handle).await;
        drop(registration);
    }

    let mut output = buffer.contents();
    if let Some(ending) = ending {
        if !output.is_empty() && !output.ends_with('\n') {
            output.push('\n');
        }
        output.push_str(&ending);
    }
    finish.status = status;
    finish.output = output;
    finish.runtime = started.elapsed();
    finish.ended = request.clock.now();
    finish
}

/// The state a runner's heartbeats pass from one to the next.
#[derive(Debug, Default)]
struct HeartbeatMemory {
    /// Heartbeats that failed in a row.
    failures: AtomicU32,
    /// Heartbeats since the last look for dead runners.
    since_reap: AtomicU32,
    /// Whether the last look found runs of other runners of the queue.
    others_seen: std::sync::atomic::AtomicBool,
    /// The runner's own executions that the last heartbeat found ongoing
    /// but not running (see `ReapRequest::suspects`).
    suspects: std::sync::Mutex<Vec<i64>>,
}

fn lock_memory<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Attempts to take a command's lease before its run is recorded as
/// failed: about 5 s of pauses in all.
const LEASE_ATTEMPTS: u32 = 8;

/// Returns the name of the lease that a command declared with `lock`
/// takes while it runs.
fn lease_name(command: &str) -> String {
    format!("command:{command}")
}

/// Renews the lease `name`, when there is one, until the future is
/// dropped: every third of the lease's timeout, so that it expires only
/// when its holder is gone.
async fn keep_lease(request: &RunRequest, name: Option<&str>) {
    let Some(name) = name else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(request.lease_timeout / 3).await;
        let expires_at = request.clock.now() + to_delta(request.lease_timeout);
        match request
            .store
            .renew_lease(name, &request.lease_holder, expires_at)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(lease = %name,
                "the command's lease was taken over, so another host may run it too; \
                 the runner's heartbeat stopped for longer than its timeout"),
            Err(error) => tracing::warn!(lease = %name, error = %CauseChain(&error),
                "renewing the command's lease failed; retrying"),
        }
    }
}

/// Writes the end of an execution, retrying while the database is busy or
/// unreachable, so that no record is lost while the process lives.
pub(crate) async fn record(store: &Store, finish: Finish, span: &tracing::Span) {
    let level_status = finish.status;
    let runtime = finish.runtime.as_secs_f64();
    let execution_id = finish.execution_id;
    let output = summary_line(&finish.output).to_owned();
    let ticket = store.queue_finish(finish);
    let recorded = retry(span, "record execution", || store.flush_finish(ticket)).await;
    match recorded {
        Ok(()) => match level_status {
            Status::Success => {
                tracing::info!(parent: span, status = %level_status, runtime_seconds = runtime, "execution finished")
            }
            Status::Killed => {
                tracing::warn!(parent: span, status = %level_status, runtime_seconds = runtime, "execution killed")
            }
            _ => {
                tracing::error!(parent: span, status = %level_status, runtime_seconds = runtime, output = %output, "execution failed")
            }
        },
        Err(error) => {
            tracing::error!(parent: span, execution.id = execution_id, error = %CauseChain(&error),
                "recording the end of the execution failed; it stays ongoing until a runner restarts");
        }
    }
}

/// Returns the message of a panic payload.
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".to_owned())
}

/// Calls `operation` until it succeeds or fails with an error that is not
/// transient, waiting longer after each failure and logging the first
/// failure and then every power of two.
async fn retry<T, F, Fut>(
    span: &tracing::Span,
    operation_name: &str,
    mut operation: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut failures = 0u32;
    loop {
        match operation().await {
            Ok(value) => {
                if failures > 0 {
                    tracing::info!(parent: span, failures, "{operation_name}: database reachable again");
                }
                return Ok(value);
            }
            Err(error) if error.is_transient() => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::error!(parent: span, error = %CauseChain(&error), failures, "{operation_name} failed; retrying");
                }
                tokio::time::sleep(backoff(failures)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Returns the wait after `failures` consecutive failures: 100 ms doubling
/// up to [`MAX_RETRY_DELAY`], or the full sleep when nothing failed.
fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::MAX;
    }
    let factor = 1u32 << failures.min(8).saturating_sub(1);
    (Duration::from_millis(100) * factor).min(MAX_RETRY_DELAY)
}

/// A future polled, and dropped, with the dispatcher that was the default
/// where it was made.
///
/// Commands run on the host's runtime, whose threads may have another
/// default subscriber than the runner's thread. tracing's registry closes
/// a span's parent through the default subscriber of the thread that drops
/// the span, so a span dropped there after the last poll (as when the task
/// ends or is aborted) would reach the wrong registry and panic.
struct WithDispatcher<T> {
    dispatch: tracing::Dispatch,
    future: Option<Pin<Box<dyn Future<Output = T> + Send>>>,
}

impl<T> WithDispatcher<T> {
    fn current(future: impl Future<Output = T> + Send + 'static) -> Self {
        WithDispatcher {
            dispatch: tracing::dispatcher::get_default(Clone::clone),
            future: Some(Box::pin(future)),
        }
    }
}

impl<T> Future for WithDispatcher<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<T> {
        let this = &mut *self;
        let dispatch = this.dispatch.clone();
        tracing::dispatcher::with_default(&dispatch, || {
            let Some(future) = this.future.as_mut() else {
                return std::task::Poll::Pending;
            };
            let polled = future.as_mut().poll(cx);
            if polled.is_ready() {
                this.future = None;
            }
            polled
        })
    }
}

impl<T> Drop for WithDispatcher<T> {
    fn drop(&mut self) {
        if let Some(future) = self.future.take() {
            tracing::dispatcher::with_default(&self.dispatch, || drop(future));
        }
    }
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn wait_for_kill(kill: &mut watch::Receiver<Option<String>>) -> String {
    loop {
        if let Some(message) = kill.borrow_and_update().clone() {
            return message;
        }
        if kill.changed().await.is_err() {
            // The runner is gone; nothing will ask for a kill any more.
            std::future::pending::<()>().await;
        }
    }
}

async fn sleep_until_option(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn stop_signal(
    handle_signals: bool,
    shutdown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
) -> StopReason {
    let shutdown = async move {
        match shutdown {
            Some(shutdown) => shutdown.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = shutdown => StopReason::Shutdown,
        signal = os_signal(handle_signals) => StopReason::Signal(signal),
    }
}

#[cfg(unix)]
async fn os_signal(enabled: bool) -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};

    if !enabled {
        return std::future::pending().await;
    }
    let (mut terminate, mut interrupt) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(terminate), Ok(interrupt)) => (terminate, interrupt),
        (Err(error), _) | (_, Err(error)) => {
            tracing::error!(%error, "cannot listen for SIGTERM and SIGINT; stop the runner with its shutdown future");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    }
}

#[cfg(not(unix))]
async fn os_signal(enabled: bool) -> &'static str {
    if !enabled || tokio::signal::ctrl_c().await.is_err() {
        return std::future::pending().await;
    }
    "SIGINT"
}

/// Returns how long before a due time to claim, after a claim that took
/// `took`: half as long again, plus a millisecond, within
/// [`MIN_CLAIM_LEAD`] and [`MAX_CLAIM_LEAD`].
fn lead_after(took: Duration) -> Duration {
    (took * 3 / 2 + Duration::from_millis(1)).clamp(MIN_CLAIM_LEAD, MAX_CLAIM_LEAD)
}

/// Sleeps the thread through the last moments before `deadline`.
///
/// tokio's timer counts whole milliseconds and rounds deadlines up, so it
/// wakes 1 to 2.5 ms late (measured here). The runner's timer is therefore
/// set [`TIMER_SLACK`] early, and this thread sleep, which wakes within a
/// fraction of a millisecond, covers the rest. It blocks the runner's own
/// thread, which runs no commands, for at most [`TIMER_SLACK`].
fn finish_sleep(clock: &dyn Clock, deadline: DateTime<Utc>) {
    if let Ok(rest) = (deadline - clock.now()).to_std() {
        std::thread::sleep(rest.min(TIMER_SLACK));
    }
}

fn to_delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

/// Formats a duration as `1.5s`, `30s` or `2m30s`.
pub(crate) fn humanize(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if duration.subsec_nanos() != 0 || seconds == 0 {
        let text = format!("{:.3}", duration.as_secs_f64());
        return format!("{}s", text.trim_end_matches('0').trim_end_matches('.'));
    }
    match (seconds / 3600, seconds % 3600 / 60, seconds % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_cap() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(20), MAX_RETRY_DELAY);
    }

    #[test]
    fn humanize_reads_well() {
        assert_eq!(humanize(Duration::from_secs(30)), "30s");
        assert_eq!(humanize(Duration::from_secs(150)), "2m30s");
        assert_eq!(humanize(Duration::from_secs(7200)), "2h");
        assert_eq!(humanize(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn identity_has_host_pid_and_random_part() {
        let identity = runner_identity();
        let parts: Vec<_> = identity.rsplitn(3, ':').collect();
        assert_eq!(parts.len(), 3, "{identity}");
        assert_eq!(parts[1], std::process::id().to_string());
        assert_ne!(runner_identity(), identity);
    }
}
