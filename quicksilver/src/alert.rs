//! Alerts: the rules that find slow, overdue, killed, stale and failed
//! runs, and the sinks that deliver what they find.
//!
//! Every runner evaluates the rules over all tasks of its database, at each
//! [`AlertSettings::check_interval`] and as soon as one of its own runs is
//! killed or fails. Each alert is sent to every sink of the runner; then the
//! task's alerts are postponed for [`AlertSettings::postpone`], a time kept
//! in the task row, so that every runner of every host sees it and a task
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
pub use self::email::{EmailError, EmailSink};

/// The thresholds of the alert rules and of the status report.
///
/// The defaults are the original's: an outlier is a run longer than the
/// mean plus 2 standard deviations of the task's successful runs, once more
/// than 5 exist; no runtime alert below 60 s; a task is overdue 120 s past
/// its next run; alerts of a task are postponed for 15 minutes after each.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AlertSettings {
    /// How many standard deviations above the mean make a run an outlier.
    pub deviations: f64,
    /// The successful runs a task needs, more than this, before its runs
    /// are compared with them.
    pub min_runs: u64,
    /// Runs shorter than this never raise a runtime alert.
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
            check_interval: Duration::from_secs(30),
        }
    }
}

/// What an alert is about.
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
    /// What the alert is about.
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
    /// Other runs of the task that the rule found since the last alert and
    /// that this alert stands for.
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

/// Formats a duration to the millisecond below a minute, else as
/// [`humanize`] does.
fn humanize_precise(duration: Duration) -> String {
    if duration < Duration::from_secs(60) {
        format!("{:.3} s", duration.as_secs_f64())
    } else {
        humanize(duration)
    }
}

/// The future a sink returns.
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>;

/// Where alerts go: e-mail, the log, or anything a host writes.
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
/// ```
pub trait AlertSink: Send + Sync + 'static {
    /// A short name for logs, such as `email`.
    fn name(&self) -> &str;

    /// Delivers one alert.
    fn send<'a>(&'a self, alert: &'a Alert) -> SinkFuture<'a>;
}

/// A sink that writes each alert to the log through `tracing`, at the
/// `warn` level. A runner without sinks uses it.
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
