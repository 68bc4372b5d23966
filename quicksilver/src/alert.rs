//! Alerts: the rules that find slow, overdue, killed, stale and failed
//! runs, and the sinks that deliver what they find.
//!
//! Every runner evaluates the rules over all tasks of its database, at each
//! [`AlertSettings::check_interval`] and as soon as one of its own runs is
//! killed or fails. Each alert is sent to every sink of the runner; then the
//! task's alerts are postponed for [`AlertSettings::postpone`], a time kept
//! in the task row, so that every runner of every host reads it and a task
//! alerts once a window, whatever the number of runners. When a sink fails,
//! the postponement is undone and the alert is tried again at the next
//! evaluation.

use std::fmt::{self, Write as _};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::command::BoxError;
use crate::runner::humanize;

#[cfg(feature = "email")]
mod email;

#[cfg(feature = "email")]
pub use self::email::{EmailError, EmailSink, EmailSinkBuilder};

/// The thresholds of the alert rules and of the status report.
///
/// The defaults are the original's. An outlier is a run longer than the
/// mean plus 2 standard deviations of the task's finished runs, once more
/// than 5 exist, and no run under 60 s is one. A task is overdue after
/// waiting 120 s, and its alerts are postponed for 15 minutes after each.
/// Rules run every 60 s.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AlertSettings {
    /// How many standard deviations above the mean make a run an outlier.
    pub deviations: f64,
    /// The successful runs a task needs, more than this, before its runs
    /// are compared with them.
    pub min_runs: u64,
    /// Runs shorter than this raise no alert from the task's history
    /// (`max_runtime`, when lower, still applies).
    pub min_runtime: Duration,
    /// Runs longer than this always raise a runtime alert, when set.
    pub max_runtime: Option<Duration>,
    /// How long past its next run a task waits before it is overdue.
    pub overdue_after: Duration,
    /// How long the alerts of a task stay quiet after one was sent.
    pub postpone: Duration,
    /// Whether a run that ended in `error` alerts, for tasks that do not
    /// say otherwise.
    pub alert_on_failure: bool,
    /// How often a runner evaluates the rules.
    pub check_interval: Duration,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            deviations: 2.0,
            min_runs: 5,
            min_runtime: Duration::from_secs(60),
            max_runtime: None,
            overdue_after: Duration::from_secs(120),
            postpone: Duration::from_secs(15 * 60),
            alert_on_failure: false,
            check_interval: Duration::from_secs(60),
        }
    }
}

/// The kind of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A run is still going, longer than the task's runs usually take or
    /// than the maximum runtime.
    LongRunning,
    /// A task's next run is long past and nothing of its queue is running.
    Overdue,
    /// A run was stopped at its max duration.
    Killed,
    /// A run was left `ongoing` by a runner that died, and marked `killed`.
    Stale,
    /// A run ended in `error`.
    Failed,
}

impl AlertKind {
    /// Returns the kind as written in subjects and logs, such as
    /// `long-running`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::LongRunning => "long-running",
            AlertKind::Overdue => "overdue",
            AlertKind::Killed => "killed",
            AlertKind::Stale => "stale",
            AlertKind::Failed => "failed",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert, as handed to each sink.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Alert {
    /// The alert's kind.
    pub kind: AlertKind,
    /// The task's row id.
    pub task_id: i64,
    /// The task's command.
    pub command: String,
    /// The task's arguments.
    pub arguments: Vec<String>,
    /// The task's queue.
    pub queue: String,
    /// The host of the runner that raised the alert.
    pub host: String,
    /// When the rule found it.
    pub raised_at: DateTime<Utc>,
    /// The execution concerned, if any.
    pub execution_id: Option<i64>,
    /// When that execution started.
    pub started: Option<DateTime<Utc>>,
    /// How long it ran, or has run so far.
    #[serde(serialize_with = "seconds")]
    pub runtime: Option<Duration>,
    /// The mean runtime of the task's successful runs.
    #[serde(serialize_with = "seconds")]
    pub mean: Option<Duration>,
    /// The standard deviation of those runtimes.
    #[serde(serialize_with = "seconds")]
    pub deviation: Option<Duration>,
    /// How many successful runs the mean and deviation come from.
    pub runs: u64,
    /// The runtime above which a run alerts, or for an overdue task the
    /// delay after which it is overdue.
    #[serde(serialize_with = "seconds")]
    pub threshold: Option<Duration>,
    /// The task's next run, for an overdue task.
    pub next_run: Option<DateTime<Utc>>,
    /// How long past its next run an overdue task is.
    #[serde(serialize_with = "seconds")]
    pub overdue: Option<Duration>,
    /// The end of the execution's output, for killed, stale and failed runs.
    pub output: Option<String>,
    /// Other findings about the task in the same evaluation, such as more
    /// failed runs since its alerts were last postponed, that this alert
    /// covers.
    pub similar: u64,
}

/// Serializes an optional duration as seconds.
fn seconds<S: serde::Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(duration) => s.serialize_f64(duration.as_secs_f64()),
        None => s.serialize_none(),
    }
}

impl Alert {
    /// Creates an alert of `kind` about a task, raised at `raised_at` by a
    /// runner on `host`, with no execution, figures or output.
    ///
    /// The struct is `#[non_exhaustive]`, so code outside this crate, such
    /// as a test of a sink, starts here and then sets the public fields.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use quicksilver::alert::{Alert, AlertKind};
    ///
    /// let mut alert = Alert::new(
    ///     AlertKind::LongRunning,
    ///     3,
    ///     "report",
    ///     "default",
    ///     "db1",
    ///     chrono::Utc::now(),
    /// );
    /// alert.execution_id = Some(42);
    /// alert.runtime = Some(Duration::from_secs(95));
    /// assert_eq!(alert.subject(), "[quicksilver] long-running: report (task 3) on db1");
    /// assert!(alert.body().contains("execution:  42"));
    /// ```
    pub fn new(
        kind: AlertKind,
        task_id: i64,
        command: impl Into<String>,
        queue: impl Into<String>,
        host: impl Into<String>,
        raised_at: DateTime<Utc>,
    ) -> Alert {
        Alert {
            kind,
            task_id,
            command: command.into(),
            arguments: Vec::new(),
            queue: queue.into(),
            host: host.into(),
            raised_at,
            execution_id: None,
            started: None,
            runtime: None,
            mean: None,
            deviation: None,
            runs: 0,
            threshold: None,
            next_run: None,
            overdue: None,
            output: None,
            similar: 0,
        }
    }

    /// Returns a one-line subject that names the kind, the task and the
    /// host, such as `[quicksilver] long-running: report (task 3) on db1`.
    pub fn subject(&self) -> String {
        format!(
            "[quicksilver] {}: {} (task {}) on {}",
            self.kind, self.command, self.task_id, self.host
        )
    }

    /// Returns a plain-text description of the alert, one fact a line.
    pub fn body(&self) -> String {
        let mut body = String::new();
        let headline = match self.kind {
            AlertKind::LongRunning => "A run of this task is taking longer than expected.",
            AlertKind::Overdue => {
                "This task is overdue: its next run is past and it has not started."
            }
            AlertKind::Killed => "A run of this task was stopped at its max duration.",
            AlertKind::Stale => "A run of this task was left ongoing by a runner that stopped.",
            AlertKind::Failed => "A run of this task ended in error.",
        };
        let _ = writeln!(body, "{headline}\n");
        let _ = writeln!(body, "task:       {} (id {})", self.command, self.task_id);
        if !self.arguments.is_empty() {
            let _ = writeln!(body, "arguments:  {}", self.arguments.join(" "));
        }
        let _ = writeln!(body, "queue:      {}", self.queue);
        let _ = writeln!(body, "host:       {}", self.host);
        if let Some(id) = self.execution_id {
            let _ = writeln!(body, "execution:  {id}");
        }
        if let Some(started) = self.started {
            let _ = writeln!(body, "started:    {}", timestamp(started));
        }
        if let Some(runtime) = self.runtime {
            let _ = writeln!(body, "runtime:    {}", humanize_precise(runtime));
        }
        match (self.mean, self.deviation) {
            (Some(mean), Some(deviation)) => {
                let _ = writeln!(
                    body,
                    "mean:       {} over {} successful runs",
                    humanize_precise(mean),
                    self.runs
                );
                let _ = writeln!(body, "deviation:  {}", humanize_precise(deviation));
            }
            _ => {
                let _ = writeln!(body, "history:    {} successful runs", self.runs);
            }
        }
        if let Some(threshold) = self.threshold {
            let _ = writeln!(body, "threshold:  {}", humanize_precise(threshold));
        }
        if let Some(next_run) = self.next_run {
            let _ = writeln!(body, "next run:   {}", timestamp(next_run));
        }
        if let Some(overdue) = self.overdue {
            let _ = writeln!(body, "overdue by: {}", humanize(overdue));
        }
        if self.similar > 0 {
            let _ = writeln!(
                body,
                "also:       {} similar runs since the last alert",
                self.similar
            );
        }
        let _ = writeln!(body, "raised at:  {}", timestamp(self.raised_at));
        if let Some(output) = &self.output {
            let _ = writeln!(body, "\noutput (end):\n{output}");
        }
        body
    }
}

/// Formats a time as RFC 3339 in UTC, to the millisecond.
fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Formats a duration in seconds to the millisecond, and from a minute on
/// also as [`humanize`] does.
fn humanize_precise(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if duration < Duration::from_secs(60) {
        format!("{seconds:.3} s")
    } else {
        format!("{seconds:.3} s ({})", humanize(duration))
    }
}

/// The future a sink returns.
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>;

/// A destination of alerts: e-mail, the log, or anything a host writes.
///
/// A sink that returns an error is logged by the runner, which carries on;
/// the alert is tried again at the next evaluation.
///
/// # Examples
///
/// A sink that hands each alert to a channel, as a webhook or chat sink
/// would hand it to an HTTP client:
///
/// ```
/// use quicksilver::alert::{Alert, AlertSink, SinkFuture};
///
/// struct ChannelSink(tokio::sync::mpsc::UnboundedSender<String>);
///
/// impl AlertSink for ChannelSink {
///     fn name(&self) -> &str {
///         "channel"
///     }
///
///     fn send<'a>(&'a self, alert: &'a Alert) -> SinkFuture<'a> {
///         Box::pin(async move {
///             self.0.send(alert.subject())?;
///             Ok(())
///         })
///     }
/// }
///
/// let (sender, _receiver) = tokio::sync::mpsc::unbounded_channel();
/// let runner = quicksilver::Runner::run_queue("default").alert_sink(ChannelSink(sender));
/// # drop(runner);
/// ```
pub trait AlertSink: Send + Sync + 'static {
    /// Returns a short name for logs, such as `email`.
    fn name(&self) -> &str;

    /// Delivers one alert.
    fn send<'a>(&'a self, alert: &'a Alert) -> SinkFuture<'a>;
}

/// A sink that writes each alert to the log through `tracing`, at the
/// `warn` level. Every [`Monitor`], and so every runner, logs each alert
/// through it besides its other sinks; a host rarely adds it itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogSink;

impl AlertSink for LogSink {
    fn name(&self) -> &str {
        "log"
    }

    fn send<'a>(&'a self, alert: &'a Alert) -> SinkFuture<'a> {
        Box::pin(async move {
            tracing::warn!(
                alert.kind = %alert.kind,
                task.id = alert.task_id,
                task.command = %alert.command,
                queue.name = %alert.queue,
                execution.id = alert.execution_id,
                runtime_seconds = alert.runtime.map(|runtime| runtime.as_secs_f64()),
                "{}",
                alert.subject()
            );
            Ok(())
        })
    }
}

/// How many characters of a run's output an alert carries, from its end.
const OUTPUT_TAIL: usize = 2_000;

/// The outcome of one evaluation of the rules.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Evaluation {
    /// The alerts every sink accepted.
    pub sent: Vec<Alert>,
    /// The alerts a sink rejected, with the sink's name and error. Each is
    /// found again at the next evaluation.
    pub failed: Vec<(Alert, String)>,
}

/// Evaluates the alert rules over a store and sends what they find.
///
/// A runner keeps one and calls it on its own; a host may also call
/// [`Monitor::evaluate`] itself, for example from a runner-less process.
///
/// # Examples
///
/// ```no_run
/// use quicksilver::alert::{AlertSettings, Monitor};
///
/// #[tokio::main]
/// async fn main() -> Result<(), quicksilver::StoreError> {
///     let store = quicksilver::Store::open("quicksilver.sqlite3").await?;
///     let monitor = Monitor::new(store, AlertSettings::default());
///     let evaluation = monitor.evaluate(chrono::Utc::now()).await?;
///     println!("{} alerts sent", evaluation.sent.len());
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Monitor {
    store: crate::Store,
    settings: AlertSettings,
    sinks: Vec<std::sync::Arc<dyn AlertSink>>,
    host: String,
    accepted: std::sync::Arc<std::sync::Mutex<AcceptedBy>>,
}

/// For each alert still being tried (task, kind, execution), the indexes
/// of the sinks that accepted it.
type AcceptedBy =
    std::collections::HashMap<(i64, AlertKind, Option<i64>), std::collections::HashSet<usize>>;

/// How far back a run that ended killed, stale or failed still alerts: an
/// alert that no sink could take is tried at each check for this long.
const EVENT_LOOKBACK: Duration = Duration::from_secs(24 * 3600);

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sinks: Vec<&str> = self.sinks.iter().map(|sink| sink.name()).collect();
        f.debug_struct("Monitor")
            .field("settings", &self.settings)
            .field("sinks", &sinks)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// A finding of the rules, before it becomes an alert.
struct Finding {
    alert: Alert,
    previous: Option<DateTime<Utc>>,
}

impl Monitor {
    /// Returns a monitor of `store` with `settings` and no sink: alerts go
    /// to the log ([`LogSink`]), and to each sink added.
    pub fn new(store: crate::Store, settings: AlertSettings) -> Self {
        Monitor {
            store,
            settings,
            sinks: Vec::new(),
            host: crate::runner::host_name(),
            accepted: std::sync::Arc::default(),
        }
    }

    /// Adds a sink. Each alert goes to every sink.
    #[must_use]
    pub fn sink(mut self, sink: impl AlertSink) -> Self {
        self.sinks.push(std::sync::Arc::new(sink));
        self
    }

    /// Adds a shared sink.
    #[must_use]
    pub fn shared_sink(mut self, sink: std::sync::Arc<dyn AlertSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Sets the host name that alerts name (this machine's by default).
    #[must_use]
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// Returns the settings.
    pub fn settings(&self) -> &AlertSettings {
        &self.settings
    }

    /// Evaluates every rule at `now` over all tasks of the store, sends
    /// one alert per task whose alerts are not postponed, and postpones
    /// that task's alerts.
    ///
    /// # Errors
    ///
    /// - [`crate::StoreError`] when the database cannot be read or
    ///   written. Sink failures are not errors: they are logged and listed
    ///   in [`Evaluation::failed`].
    pub async fn evaluate(&self, now: DateTime<Utc>) -> Result<Evaluation, crate::StoreError> {
        let mut findings: Vec<Finding> = Vec::new();
        self.long_running(now, &mut findings).await?;
        self.ended_badly(now, &mut findings).await?;
        // Every alert names the task's history, whatever its kind.
        let missing: Vec<i64> = findings
            .iter()
            .filter(|finding| finding.alert.mean.is_none())
            .map(|finding| finding.alert.task_id)
            .collect();
        if !missing.is_empty() {
            let figures: std::collections::HashMap<i64, crate::store::RuntimeStats> = self
                .store
                .runtime_stats_of(missing)
                .await?
                .into_iter()
                .collect();
            for finding in &mut findings {
                if let Some(figures) = figures.get(&finding.alert.task_id) {
                    if finding.alert.mean.is_none() {
                        finding.alert.runs = figures.finished;
                        finding.alert.mean = figures.finished_mean.map(Duration::from_secs_f64);
                        finding.alert.deviation =
                            figures.finished_deviation.map(Duration::from_secs_f64);
                    }
                }
            }
        }
        let mut evaluation = Evaluation::default();
        for finding in findings {
            let until = now + to_delta(self.settings.postpone);
            let task_id = finding.alert.task_id;
            if !self.store.postpone_alerts(task_id, now, until).await? {
                continue;
            }
            match self.deliver(&finding.alert).await {
                Ok(()) => evaluation.sent.push(finding.alert),
                Err(error) => {
                    self.store
                        .restore_alerts(task_id, until, finding.previous)
                        .await?;
                    evaluation.failed.push((finding.alert, error));
                }
            }
        }
        Ok(evaluation)
    }

    /// Logs `alert` and sends it to every sink that has not accepted it yet;
    /// returns the first failure, after logging each. A sink that accepted an
    /// alert is not given it again when another sink's failure makes the
    /// next evaluation try it again, and the log shows it once.
    async fn deliver(&self, alert: &Alert) -> Result<(), String> {
        let key = (alert.task_id, alert.kind, alert.execution_id);
        let accepted = self.accepted().get(&key).cloned();
        if accepted.is_none() {
            let _ = LogSink.send(alert).await;
        }
        let mut failure = None;
        let mut now_accepted = accepted.unwrap_or_default();
        for (index, sink) in self.sinks.iter().enumerate() {
            if now_accepted.contains(&index) {
                continue;
            }
            match sink.send(alert).await {
                Ok(()) => {
                    now_accepted.insert(index);
                }
                Err(error) => {
                    let chain = crate::command::CauseChain(error.as_ref()).to_string();
                    tracing::error!(alert.sink = sink.name(), alert.kind = %alert.kind,
                        task.id = alert.task_id, error = %chain,
                        "sending an alert failed; it is tried again at the next evaluation");
                    failure.get_or_insert(format!("{}: {chain}", sink.name()));
                }
            }
        }
        let mut memory = self.accepted();
        if failure.is_some() {
            memory.insert(key, now_accepted);
        } else {
            memory.remove(&key);
        }
        failure.map_or(Ok(()), Err)
    }

    /// Returns, for each alert still being tried, the sinks that accepted it.
    fn accepted(&self) -> std::sync::MutexGuard<'_, AcceptedBy> {
        self.accepted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Finds overdue tasks and runs going on for too long.
    async fn long_running(
        &self,
        now: DateTime<Utc>,
        findings: &mut Vec<Finding>,
    ) -> Result<(), crate::StoreError> {
        let settings = &self.settings;
        let snapshot = self
            .store
            .monitor_snapshot(now - to_delta(settings.overdue_after))
            .await?;
        let busy_queues: std::collections::HashSet<&str> = snapshot
            .ongoing
            .iter()
            .filter_map(|execution| execution.queue.as_deref())
            .collect();
        let running: std::collections::HashSet<i64> = snapshot
            .ongoing
            .iter()
            .filter_map(|execution| execution.task_id)
            .collect();

        // Runs shorter than both thresholds cannot alert; the others need
        // their task's history.
        let shortest = settings
            .max_runtime
            .map_or(settings.min_runtime, |max| max.min(settings.min_runtime));
        let long: Vec<(&crate::Execution, Duration)> = snapshot
            .ongoing
            .iter()
            .filter_map(|execution| {
                let started = execution.started?;
                let runtime = (now - started).to_std().ok()?;
                (runtime > shortest && execution.task_id.is_some()).then_some((execution, runtime))
            })
            .collect();
        let stats: std::collections::HashMap<i64, crate::store::RuntimeStats> = self
            .store
            .runtime_stats_of(
                long.iter()
                    .filter_map(|(execution, _)| execution.task_id)
                    .collect(),
            )
            .await?
            .into_iter()
            .collect();
        for (execution, runtime) in long {
            let Some(task_id) = execution.task_id else {
                continue;
            };
            let figures = stats.get(&task_id).cloned().unwrap_or_default();
            let Some(threshold) = self.runtime_threshold_of(&figures, runtime) else {
                continue;
            };
            let task = match self.store.task(task_id).await {
                Ok(task) => task,
                Err(crate::StoreError::TaskNotFound { .. }) => continue,
                Err(error) => return Err(error),
            };
            if postponed(&task, now) {
                continue;
            }
            let mut alert = self.alert(AlertKind::LongRunning, &task, now);
            alert.execution_id = Some(execution.id);
            alert.started = execution.started;
            alert.runtime = Some(runtime);
            alert.mean = figures.finished_mean.map(Duration::from_secs_f64);
            alert.deviation = figures.finished_deviation.map(Duration::from_secs_f64);
            alert.runs = figures.finished;
            alert.threshold = Some(threshold);
            push(findings, alert, task.alerts_postponed_until);
        }

        let candidates: Vec<&crate::Task> = snapshot
            .due
            .iter()
            .filter(|task| {
                !running.contains(&task.id)
                    && !busy_queues.contains(task.queue.as_str())
                    && !postponed(task, now)
            })
            .collect();
        let served = if candidates.is_empty() {
            std::collections::HashMap::new()
        } else {
            served_since(&self.store, now).await?
        };
        for task in candidates {
            let late = overdue_by(task, now, served.get(task.queue.as_str()).copied());
            if late <= settings.overdue_after {
                continue;
            }
            let mut alert = self.alert(AlertKind::Overdue, task, now);
            alert.next_run = Some(task.next_run);
            alert.overdue = Some(late);
            alert.threshold = Some(settings.overdue_after);
            push(findings, alert, task.alerts_postponed_until);
        }
        Ok(())
    }

    /// Returns the runtime above which a run with `runtime` alerts, if it
    /// does: above the max runtime always, else above the mean plus the
    /// deviations once the task has enough runs, and never below the min
    /// runtime.
    fn runtime_threshold_of(
        &self,
        figures: &crate::store::RuntimeStats,
        runtime: Duration,
    ) -> Option<Duration> {
        let settings = &self.settings;
        if let Some(max) = settings.max_runtime {
            if runtime > max {
                return Some(max);
            }
        }
        if figures.finished <= settings.min_runs || runtime <= settings.min_runtime {
            return None;
        }
        let mean = figures.finished_mean?;
        let threshold = mean + settings.deviations * figures.finished_deviation.unwrap_or(0.0);
        let threshold = Duration::try_from_secs_f64(threshold).ok()?;
        (runtime > threshold).then_some(threshold)
    }

    /// Finds runs that ended killed, stale or failed since the task's last
    /// alert, and at most one postponement window ago.
    async fn ended_badly(
        &self,
        now: DateTime<Utc>,
        findings: &mut Vec<Finding>,
    ) -> Result<(), crate::StoreError> {
        let settings = &self.settings;
        let lookback = EVENT_LOOKBACK.max(settings.postpone);
        let ended = self.store.failed_since(now - to_delta(lookback)).await?;
        for (execution, task) in ended {
            let Some(kind) = self.kind_of_end(&execution, &task) else {
                continue;
            };
            let ended = execution.ended.unwrap_or(now);
            if postponed(&task, now)
                || task
                    .alerts_postponed_until
                    .is_some_and(|until| ended <= until)
            {
                continue;
            }
            if let Some(found) = findings
                .iter_mut()
                .find(|found| found.alert.task_id == task.id)
            {
                found.alert.similar += 1;
                continue;
            }
            let mut alert = self.alert(kind, &task, now);
            alert.execution_id = Some(execution.id);
            alert.started = execution.started;
            alert.runtime = execution
                .runtime_seconds
                .and_then(|runtime| Duration::try_from_secs_f64(runtime).ok());
            alert.output = Some(tail(&execution.output, OUTPUT_TAIL).to_owned());
            push(findings, alert, task.alerts_postponed_until);
        }
        Ok(())
    }

    /// Returns the alert a run that ended `killed` or `error` raises, if
    /// any: a run stopped at shutdown or cancelled raises none, nor does a
    /// failure of a task that does not alert on failure.
    fn kind_of_end(&self, execution: &crate::Execution, task: &crate::Task) -> Option<AlertKind> {
        match execution.status {
            crate::Status::Error => task
                .alert_on_failure
                .unwrap_or(self.settings.alert_on_failure)
                .then_some(AlertKind::Failed),
            crate::Status::Killed => kill_kind(&execution.output),
            _ => None,
        }
    }

    /// Returns an alert of `kind` about `task`, raised at `now` on this
    /// monitor's host.
    fn alert(&self, kind: AlertKind, task: &crate::Task, now: DateTime<Utc>) -> Alert {
        let mut alert = Alert::new(
            kind,
            task.id,
            task.command.clone(),
            task.queue.clone(),
            self.host.clone(),
            now,
        );
        alert.arguments = task.arguments.clone();
        alert
    }
}

/// Returns, for each queue that a live runner serves, since when one has:
/// the start of the earliest of its runners whose heartbeat is fresh.
pub(crate) async fn served_since(
    store: &crate::Store,
    now: DateTime<Utc>,
) -> Result<std::collections::HashMap<String, DateTime<Utc>>, crate::StoreError> {
    let fresh = now - to_delta(crate::runner::DEFAULT_HEARTBEAT_TIMEOUT);
    let mut served: std::collections::HashMap<String, DateTime<Utc>> =
        std::collections::HashMap::new();
    for runner in store.runners(None).await? {
        if runner.stopped_at.is_some() || runner.heartbeat_at < fresh {
            continue;
        }
        let since = served.entry(runner.queue).or_insert(runner.started_at);
        *since = (*since).min(runner.started_at);
    }
    Ok(served)
}

/// Returns how long `task` has waited to run at `now`: since its next run,
/// or since it last changed (a resume, an edit), or since a live runner
/// started to serve its queue (`served_since`), whichever came last. A
/// runner that starts after downtime, or a task resumed long after its
/// next run, is therefore not overdue while the runner gets to it.
pub(crate) fn overdue_by(
    task: &crate::Task,
    now: DateTime<Utc>,
    served_since: Option<DateTime<Utc>>,
) -> Duration {
    let waiting_since = task
        .next_run
        .max(task.updated_at)
        .max(served_since.unwrap_or(task.next_run));
    (now - waiting_since).to_std().unwrap_or_default()
}

/// Adds a finding unless its task has one already.
fn push(findings: &mut Vec<Finding>, alert: Alert, previous: Option<DateTime<Utc>>) {
    if let Some(found) = findings
        .iter_mut()
        .find(|found| found.alert.task_id == alert.task_id)
    {
        found.alert.similar += 1;
    } else {
        findings.push(Finding { alert, previous });
    }
}

/// Returns whether the task's alerts are postponed past `now`.
fn postponed(task: &crate::Task, now: DateTime<Utc>) -> bool {
    task.alerts_postponed_until.is_some_and(|until| until > now)
}

/// The start of the line the runner writes when a run passes its max
/// duration.
pub(crate) const MAX_DURATION_KILL: &str = "killed: the run exceeded its max duration";

/// The starts of the lines written when a run is found left behind by a
/// runner that stopped.
pub(crate) const STALE_KILLS: [&str; 4] = [
    "killed: the runner that started this execution stopped",
    "killed: the runner of this execution sent no heartbeat",
    "killed: this run was claimed while the connection to the database broke",
    "killed: still ongoing after",
];

/// Tells from a killed run's output why it was killed: at its max duration,
/// or left behind. Runs stopped at shutdown raise no alert.
fn kill_kind(output: &str) -> Option<AlertKind> {
    let line = output
        .lines()
        .rev()
        .find(|line| line.starts_with("killed: "))?;
    if line.starts_with(MAX_DURATION_KILL) {
        Some(AlertKind::Killed)
    } else if STALE_KILLS.iter().any(|start| line.starts_with(start)) {
        Some(AlertKind::Stale)
    } else {
        None
    }
}

/// Returns the last `limit` bytes of `text` or fewer, cut at a character
/// boundary.
fn tail(text: &str, limit: usize) -> &str {
    let mut start = text.len().saturating_sub(limit);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn to_delta(duration: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(duration).unwrap_or(chrono::TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_lines_tell_the_kind() {
        assert_eq!(
            kill_kind("x\nkilled: the run exceeded its max duration of 1s\n"),
            Some(AlertKind::Killed)
        );
        assert_eq!(
            kill_kind("killed: the runner of this execution sent no heartbeat for over 45s"),
            Some(AlertKind::Stale)
        );
        assert_eq!(
            kill_kind("killed: SIGTERM and the run did not finish within the grace period"),
            None
        );
        assert_eq!(kill_kind("no reason"), None);
    }

    #[test]
    fn tail_cuts_at_a_character() {
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("ab", 3), "ab");
        assert_eq!(tail("aé", 1), "");
    }
}
