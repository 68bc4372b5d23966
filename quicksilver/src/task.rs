//! Tasks: the stored rows that define how and when a command runs, and the
//! default tasks a host declares in code.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::command::find_command;
use crate::schedule::{Schedule, ScheduleError};

/// The queue of a task that names none.
pub const DEFAULT_QUEUE: &str = "default";

/// A stored task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    /// The row id.
    pub id: i64,
    /// The name of the command the task runs.
    pub command: String,
    /// The argument list passed to the command's parser, one string each.
    pub arguments: Vec<String>,
    /// The queue whose runner runs the task.
    pub queue: String,
    /// The repeat interval in seconds, for a fixed-rate schedule.
    pub repeat_interval: Option<i64>,
    /// The cron expression (with a seconds field), for a cron schedule.
    pub cron: Option<String>,
    /// The IANA time zone of the cron expression.
    pub time_zone: Option<String>,
    /// The run time in seconds after which a run is stopped and `killed`.
    pub max_duration: Option<i64>,
    /// When the task runs next.
    pub next_run: DateTime<Utc>,
    /// Until when alerts about the task are held back.
    pub alerts_postponed_until: Option<DateTime<Utc>>,
    /// Whether the runner skips the task.
    pub paused: bool,
    /// The id of the declaration that installed the task, if one did.
    pub declaration: Option<String>,
    /// Whether a run that ends in `error` raises an alert. `None` follows
    /// the runner's [`AlertSettings::alert_on_failure`].
    ///
    /// [`AlertSettings::alert_on_failure`]: crate::alert::AlertSettings::alert_on_failure
    pub alert_on_failure: Option<bool>,
    /// When the row was created.
    pub created_at: DateTime<Utc>,
    /// When the row last changed, by an operator or the runner.
    pub updated_at: DateTime<Utc>,
}

impl Task {
    /// Returns the task's schedule, parsed from its columns.
    ///
    /// # Errors
    ///
    /// - [`ScheduleError`] when the stored columns do not form a valid
    ///   schedule, for example after a hand-edited row.
    pub fn schedule(&self) -> Result<Schedule, ScheduleError> {
        Schedule::from_parts(
            self.repeat_interval,
            self.cron.as_deref(),
            self.time_zone.as_deref(),
        )
    }

    /// Returns the max duration as a [`Duration`], if set.
    pub fn max_duration(&self) -> Option<Duration> {
        self.max_duration
            .and_then(|seconds| u64::try_from(seconds).ok())
            .map(Duration::from_secs)
    }
}

/// The fields of a task to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// The command to run.
    pub command: String,
    /// The command's argument list.
    pub arguments: Vec<String>,
    /// The queue; [`DEFAULT_QUEUE`] unless set.
    pub queue: String,
    /// How often the task runs.
    pub schedule: Schedule,
    /// The run time after which a run is stopped.
    pub max_duration: Option<Duration>,
    /// The first run; the schedule's first tick after now when unset.
    pub next_run: Option<DateTime<Utc>>,
    /// Whether the task starts paused.
    pub paused: bool,
    /// The declaration that installs the task, if any.
    pub declaration: Option<String>,
    /// Whether a run that ends in `error` raises an alert. `None` follows
    /// the runner's setting.
    pub alert_on_failure: Option<bool>,
}

impl NewTask {
    /// Creates a task of `command` on the default queue, with no arguments.
    pub fn new(command: impl Into<String>, schedule: Schedule) -> Self {
        NewTask {
            command: command.into(),
            arguments: Vec::new(),
            queue: DEFAULT_QUEUE.to_owned(),
            schedule,
            max_duration: None,
            next_run: None,
            paused: false,
            declaration: None,
            alert_on_failure: None,
        }
    }

    /// Sets the argument list.
    pub fn arguments<I, S>(mut self, arguments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.arguments = arguments.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Sets the max duration.
    pub fn max_duration(mut self, max_duration: Duration) -> Self {
        self.max_duration = Some(max_duration);
        self
    }

    /// Sets the first run.
    pub fn next_run(mut self, next_run: DateTime<Utc>) -> Self {
        self.next_run = Some(next_run);
        self
    }

    /// Sets whether the task starts paused.
    pub fn paused(mut self, paused: bool) -> Self {
        self.paused = paused;
        self
    }

    /// Sets whether a run that ends in `error` raises an alert, in place of
    /// the runner's setting.
    pub fn alert_on_failure(mut self, alert_on_failure: bool) -> Self {
        self.alert_on_failure = Some(alert_on_failure);
        self
    }
}

/// Changes to a stored task; fields left `None` keep their value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskChanges {
    /// A new command name.
    pub command: Option<String>,
    /// A new argument list.
    pub arguments: Option<Vec<String>>,
    /// A new queue.
    pub queue: Option<String>,
    /// A new schedule; the next run moves to its first tick unless
    /// `next_run` is set too.
    pub schedule: Option<Schedule>,
    /// A new max duration; `Some(None)` removes it.
    pub max_duration: Option<Option<Duration>>,
    /// A new next run.
    pub next_run: Option<DateTime<Utc>>,
    /// A new postponement of alerts; `Some(None)` removes it.
    pub alerts_postponed_until: Option<Option<DateTime<Utc>>>,
    /// Pauses or resumes the task.
    pub paused: Option<bool>,
    /// A new alert-on-failure setting. `Some(None)` makes the task follow
    /// the runner's setting again.
    pub alert_on_failure: Option<Option<bool>>,
}

/// The filters of a task listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    /// Only tasks of this queue.
    pub queue: Option<String>,
    /// Only tasks of this command.
    pub command: Option<String>,
    /// Only paused (`Some(true)`) or active (`Some(false)`) tasks.
    pub paused: Option<bool>,
}

/// A default task compiled into the host.
///
/// Register one with [`declare_task!`](crate::declare_task). `install-tasks`
/// inserts those not installed yet. It never overwrites a task an operator
/// edited, because it matches installed tasks by declaration id, not by
/// their fields. The id is `<crate>.<command>` unless set with
/// [`id`](TaskDeclaration::id); two declarations of one command in one
/// crate need distinct ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskDeclaration {
    command: &'static str,
    arguments: &'static [&'static str],
    schedule: DeclaredSchedule,
    queue: &'static str,
    max_duration: Option<u64>,
    alert_on_failure: Option<bool>,
    id: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeclaredSchedule {
    Every(u64),
    Cron {
        expression: &'static str,
        time_zone: &'static str,
    },
}

impl TaskDeclaration {
    /// Declares a task of `command` every `seconds` seconds, fixed-rate.
    pub const fn every(command: &'static str, seconds: u64) -> Self {
        TaskDeclaration {
            command,
            arguments: &[],
            schedule: DeclaredSchedule::Every(seconds),
            queue: DEFAULT_QUEUE,
            max_duration: None,
            alert_on_failure: None,
            id: None,
        }
    }

    /// Declares a task of `command` on a cron expression with a seconds
    /// field, in an IANA time zone such as `"Europe/Paris"` or `"UTC"`.
    pub const fn cron(
        command: &'static str,
        expression: &'static str,
        time_zone: &'static str,
    ) -> Self {
        TaskDeclaration {
            command,
            arguments: &[],
            schedule: DeclaredSchedule::Cron {
                expression,
                time_zone,
            },
            queue: DEFAULT_QUEUE,
            max_duration: None,
            alert_on_failure: None,
            id: None,
        }
    }

    /// Sets the argument list.
    pub const fn arguments(mut self, arguments: &'static [&'static str]) -> Self {
        self.arguments = arguments;
        self
    }

    /// Sets the queue.
    pub const fn queue(mut self, queue: &'static str) -> Self {
        self.queue = queue;
        self
    }

    /// Sets the max duration in seconds.
    pub const fn max_duration(mut self, seconds: u64) -> Self {
        self.max_duration = Some(seconds);
        self
    }

    /// Sets whether a run that ends in `error` raises an alert, in place of
    /// the runner's setting.
    pub const fn alert_on_failure(mut self, alert_on_failure: bool) -> Self {
        self.alert_on_failure = Some(alert_on_failure);
        self
    }

    /// Sets the declaration id, which `check` reports and which silences it.
    pub const fn id(mut self, id: &'static str) -> Self {
        self.id = Some(id);
        self
    }
}

/// A declaration together with where it was made, as `inventory` stores it.
#[doc(hidden)]
#[derive(Debug)]
pub struct DeclarationEntry {
    declaration: TaskDeclaration,
    module: &'static str,
}

impl DeclarationEntry {
    #[doc(hidden)]
    pub const fn new(declaration: TaskDeclaration, module: &'static str) -> Self {
        DeclarationEntry {
            declaration,
            module,
        }
    }
}

inventory::collect!(DeclarationEntry);

/// A validated task declaration, ready to install.
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    /// The declaration id.
    pub id: String,
    /// The module that declared it.
    pub module: &'static str,
    /// The task it installs.
    pub task: NewTask,
}

/// An error in the task declarations compiled into the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeclarationError {
    /// The declaration's schedule is invalid.
    #[error("declared task `{id}` in {module} has an invalid schedule: {source}")]
    Schedule {
        /// The declaration id.
        id: String,
        /// The declaring module.
        module: String,
        /// The schedule's error.
        #[source]
        source: ScheduleError,
    },
    /// The declaration runs a command that is not registered.
    #[error(
        "declared task `{id}` in {module} runs unknown command `{command}`: \
         mark an async fn `{command}` with #[quicksilver::command] or fix the declaration"
    )]
    UnknownCommand {
        /// The declaration id.
        id: String,
        /// The declaring module.
        module: String,
        /// The unknown command.
        command: String,
    },
    /// Two declarations share one id.
    #[error(
        "task declarations in {first} and {second} share the id `{id}`: \
         give one of them another id with `.id(\"...\")`"
    )]
    DuplicateId {
        /// The shared id.
        id: String,
        /// The module of the first declaration.
        first: String,
        /// The module of the second declaration.
        second: String,
    },
    /// A declaration names an empty queue or a zero max duration.
    #[error("declared task `{id}` in {module} is invalid: {reason}")]
    Invalid {
        /// The declaration id.
        id: String,
        /// The declaring module.
        module: String,
        /// The reason the declaration is invalid.
        reason: String,
    },
}

/// Returns the task declarations compiled into this binary, validated and
/// sorted by id.
///
/// # Errors
///
/// - Every problem found, at once: an invalid schedule, an unknown command,
///   two declarations with one id.
pub fn declarations() -> Result<Vec<Declared>, Vec<DeclarationError>> {
    let mut declared: Vec<Declared> = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<String, &'static str> = HashMap::new();

    for entry in inventory::iter::<DeclarationEntry> {
        match validate(entry) {
            Ok(valid) => {
                if let Some(first) = seen.insert(valid.id.clone(), entry.module) {
                    errors.push(DeclarationError::DuplicateId {
                        id: valid.id,
                        first: first.to_owned(),
                        second: entry.module.to_owned(),
                    });
                } else {
                    declared.push(valid);
                }
            }
            Err(error) => errors.push(error),
        }
    }

    if errors.is_empty() {
        declared.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(declared)
    } else {
        Err(errors)
    }
}

fn validate(entry: &DeclarationEntry) -> Result<Declared, DeclarationError> {
    let declaration = &entry.declaration;
    let crate_name = entry.module.split("::").next().unwrap_or(entry.module);
    let id = declaration
        .id
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{crate_name}.{}", declaration.command));
    let module = entry.module.to_owned();

    let schedule = match declaration.schedule {
        DeclaredSchedule::Every(seconds) => Schedule::every(seconds),
        DeclaredSchedule::Cron {
            expression,
            time_zone,
        } => Schedule::cron(expression, time_zone),
    }
    .map_err(|source| DeclarationError::Schedule {
        id: id.clone(),
        module: module.clone(),
        source,
    })?;

    if find_command(declaration.command).is_none() {
        return Err(DeclarationError::UnknownCommand {
            id,
            module,
            command: declaration.command.to_owned(),
        });
    }
    if declaration.queue.trim().is_empty() {
        return Err(DeclarationError::Invalid {
            id,
            module,
            reason: "the queue name is empty".to_owned(),
        });
    }
    if declaration.max_duration == Some(0) {
        return Err(DeclarationError::Invalid {
            id,
            module,
            reason: "a max duration of 0 seconds would kill every run; remove it or use at least 1"
                .to_owned(),
        });
    }

    let mut task = NewTask::new(declaration.command, schedule)
        .arguments(declaration.arguments.iter().copied())
        .queue(declaration.queue);
    task.max_duration = declaration.max_duration.map(Duration::from_secs);
    task.alert_on_failure = declaration.alert_on_failure;
    task.declaration = Some(id.clone());
    Ok(Declared {
        id,
        module: entry.module,
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(declaration: TaskDeclaration) -> DeclarationEntry {
        DeclarationEntry::new(declaration, "host::jobs")
    }

    #[test]
    fn declared_cron_is_validated_with_reason() {
        let declaration =
            TaskDeclaration::cron("clear_successful_executions", "*/5 * * * *", "UTC");
        let error = validate(&entry(declaration)).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, DeclarationError::Schedule { .. }),
            "{message}"
        );
        assert!(
            message.contains("host.clear_successful_executions"),
            "{message}"
        );
        assert!(message.contains("seconds field"), "{message}");
    }

    #[test]
    fn declared_time_zone_is_validated() {
        let declaration =
            TaskDeclaration::cron("clear_successful_executions", "0 0 3 * * *", "Mars/Base");
        let message = validate(&entry(declaration)).unwrap_err().to_string();
        assert!(message.contains("Mars/Base"), "{message}");
    }

    #[test]
    fn declared_zero_interval_is_rejected() {
        let declaration = TaskDeclaration::every("clear_successful_executions", 0);
        assert!(matches!(
            validate(&entry(declaration)),
            Err(DeclarationError::Schedule { .. })
        ));
    }

    #[test]
    fn declared_unknown_command_names_fix() {
        let declaration = TaskDeclaration::every("sweep_floors", 60);
        let message = validate(&entry(declaration)).unwrap_err().to_string();
        assert!(
            message.contains("unknown command `sweep_floors`"),
            "{message}"
        );
        assert!(message.contains("#[quicksilver::command]"), "{message}");
    }

    #[test]
    fn declaration_id_defaults_to_crate_and_command() {
        let declaration = TaskDeclaration::every("clear_successful_executions", 60)
            .queue("housekeeping")
            .arguments(&["--before-minutes", "5"]);
        let declared = validate(&entry(declaration)).unwrap();
        assert_eq!(declared.id, "host.clear_successful_executions");
        assert_eq!(declared.task.queue, "housekeeping");
        assert_eq!(declared.task.arguments, ["--before-minutes", "5"]);
        assert_eq!(
            declared.task.declaration.as_deref(),
            Some("host.clear_successful_executions")
        );
    }

    #[test]
    fn declared_alert_on_failure_is_carried() {
        let plain = TaskDeclaration::every("clear_successful_executions", 60);
        let opted_in = plain.alert_on_failure(true);
        let opted_out = plain.alert_on_failure(false);

        let declared = |declaration| validate(&entry(declaration)).unwrap().task;
        assert_eq!(declared(plain).alert_on_failure, None);
        assert_eq!(declared(opted_in).alert_on_failure, Some(true));
        assert_eq!(declared(opted_out).alert_on_failure, Some(false));
    }

    #[test]
    fn new_task_alert_defaults_to_runner() {
        let schedule = Schedule::every(60).unwrap();
        let task = NewTask::new("clear_successful_executions", schedule);
        assert_eq!(task.alert_on_failure, None);
        assert_eq!(task.alert_on_failure(false).alert_on_failure, Some(false));
    }

    #[test]
    fn builtin_declarations_are_valid() {
        let declared = declarations().expect("the built-in declarations are valid");
        let ids: Vec<&str> = declared
            .iter()
            .map(|declared| declared.id.as_str())
            .collect();
        assert!(
            ids.contains(&"quicksilver.clear_successful_executions"),
            "{ids:?}"
        );
    }
}
