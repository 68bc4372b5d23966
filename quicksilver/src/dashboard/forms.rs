//! The task form: its fields as typed, their validation, and its markup.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{html, Markup};

use super::csrf::Fields;
use super::layout::{format_time, PageContext};
use crate::command::{check_command, commands};
use crate::schedule::Schedule;
use crate::store::Store;
use crate::task::{NewTask, Task, TaskChanges, DEFAULT_QUEUE};

/// The task form's fields, as the operator typed them.
#[derive(Debug, Clone, Default)]
pub(super) struct TaskForm {
    pub(super) command: String,
    /// One argument a line.
    pub(super) arguments: String,
    pub(super) queue: String,
    /// `every` or `cron`.
    pub(super) schedule: String,
    pub(super) every: String,
    pub(super) cron: String,
    pub(super) time_zone: String,
    pub(super) max_duration: String,
    pub(super) next_run: String,
    /// The next run the form showed, to tell whether the operator changed
    /// it.
    pub(super) next_run_shown: String,
    pub(super) alerts_postponed_until: String,
    pub(super) alerts_postponed_until_shown: String,
    /// `default`, `yes` or `no`.
    pub(super) alert_on_failure: String,
    pub(super) paused: bool,
}

/// The problems of a form, each with the field it belongs to.
#[derive(Debug, Clone, Default)]
pub(super) struct FormErrors(Vec<(&'static str, String)>);

impl FormErrors {
    fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push((field, message.into()));
    }

    /// Records a problem that belongs to no single field.
    pub(super) fn general(message: impl Into<String>) -> FormErrors {
        let mut errors = FormErrors::default();
        errors.add("", message);
        errors
    }

    fn of(&self, field: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(name, _)| *name == field)
            .map(|(_, message)| message.as_str())
            .collect()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A validated form: the task's fields, parsed.
struct Parsed {
    command: String,
    arguments: Vec<String>,
    queue: String,
    schedule: Schedule,
    max_duration: Option<Duration>,
    next_run: Option<DateTime<Utc>>,
    next_run_changed: bool,
    alerts_postponed_until: Option<DateTime<Utc>>,
    alerts_postponed_changed: bool,
    alert_on_failure: Option<bool>,
    paused: bool,
}

impl TaskForm {
    /// Returns the form of a new task: every 60 seconds on the default
    /// queue.
    pub(super) fn blank() -> TaskForm {
        TaskForm {
            queue: DEFAULT_QUEUE.to_owned(),
            schedule: "every".to_owned(),
            every: "60".to_owned(),
            time_zone: "UTC".to_owned(),
            alert_on_failure: "default".to_owned(),
            ..TaskForm::default()
        }
    }

    /// Returns the form filled with `task`'s values.
    pub(super) fn of_task(task: &Task) -> TaskForm {
        let next_run = format_time(task.next_run);
        let postponed = task
            .alerts_postponed_until
            .map(format_time)
            .unwrap_or_default();
        TaskForm {
            command: task.command.clone(),
            arguments: task.arguments.join("\n"),
            queue: task.queue.clone(),
            schedule: if task.cron.is_some() { "cron" } else { "every" }.to_owned(),
            every: task
                .repeat_interval
                .map(|seconds| seconds.to_string())
                .unwrap_or_default(),
            cron: task.cron.clone().unwrap_or_default(),
            time_zone: task.time_zone.clone().unwrap_or_else(|| "UTC".to_owned()),
            max_duration: task
                .max_duration
                .map(|seconds| seconds.to_string())
                .unwrap_or_default(),
            next_run_shown: next_run.clone(),
            next_run,
            alerts_postponed_until_shown: postponed.clone(),
            alerts_postponed_until: postponed,
            alert_on_failure: match task.alert_on_failure {
                None => "default",
                Some(true) => "yes",
                Some(false) => "no",
            }
            .to_owned(),
            paused: task.paused,
        }
    }

    /// Reads the form from the submitted fields.
    pub(super) fn from_fields(fields: &Fields) -> TaskForm {
        TaskForm {
            command: fields.text("command"),
            arguments: fields.text("arguments"),
            queue: fields.text("queue"),
            schedule: fields.text("schedule"),
            every: fields.text("every"),
            cron: fields.text("cron"),
            time_zone: fields.text("time_zone"),
            max_duration: fields.text("max_duration"),
            next_run: fields.text("next_run"),
            next_run_shown: fields.text("next_run_shown"),
            alerts_postponed_until: fields.text("alerts_postponed_until"),
            alerts_postponed_until_shown: fields.text("alerts_postponed_until_shown"),
            alert_on_failure: fields.text("alert_on_failure"),
            paused: fields.get("paused").is_some(),
        }
    }

    /// Returns the task to add, or every problem of the form.
    pub(super) fn to_new_task(&self, store: &Store) -> Result<NewTask, FormErrors> {
        let parsed = self.parse(store)?;
        let mut task = NewTask::new(parsed.command, parsed.schedule)
            .arguments(parsed.arguments)
            .queue(parsed.queue)
            .paused(parsed.paused);
        task.max_duration = parsed.max_duration;
        task.next_run = parsed.next_run;
        task.alert_on_failure = parsed.alert_on_failure;
        Ok(task)
    }

    /// Returns the changes to apply to a task, or every problem of the
    /// form. A next run or postponement left as the form showed it stays
    /// as stored, so that a new schedule still moves the next run.
    pub(super) fn to_changes(&self, store: &Store) -> Result<TaskChanges, FormErrors> {
        let parsed = self.parse(store)?;
        Ok(TaskChanges {
            command: Some(parsed.command),
            arguments: Some(parsed.arguments),
            queue: Some(parsed.queue),
            schedule: Some(parsed.schedule),
            max_duration: Some(parsed.max_duration),
            next_run: parsed.next_run.filter(|_| parsed.next_run_changed),
            alerts_postponed_until: parsed
                .alerts_postponed_changed
                .then_some(parsed.alerts_postponed_until),
            paused: Some(parsed.paused),
            alert_on_failure: Some(parsed.alert_on_failure),
        })
    }

    fn parse(&self, store: &Store) -> Result<Parsed, FormErrors> {
        let mut errors = FormErrors::default();

        let command = self.command.trim().to_owned();
        let arguments: Vec<String> = self
            .arguments
            .lines()
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect();
        if command.is_empty() {
            errors.add(
                "command",
                "The command is empty: enter the name of a command this program registers.",
            );
        } else if let Err(message) = check_command(store, &command, &arguments) {
            let field = if message.starts_with("unknown command") {
                "command"
            } else {
                "arguments"
            };
            errors.add(field, capitalize(&message));
        }

        let queue = self.queue.trim().to_owned();
        if queue.is_empty() {
            errors.add(
                "queue",
                "The queue is empty: use `default` or the name of another queue.",
            );
        }

        let schedule = match self.schedule.as_str() {
            "cron" => self.parse_cron(&mut errors),
            "every" => self.parse_every(&mut errors),
            other => {
                errors.add(
                    "schedule",
                    format!("Unknown schedule kind `{other}`: choose a repeat interval or cron."),
                );
                None
            }
        };

        let max_duration = match self.max_duration.trim() {
            "" => None,
            text => match text.parse::<u64>() {
                Ok(0) => {
                    errors.add(
                        "max_duration",
                        "A max duration of 0 seconds would kill every run: enter at least 1, \
                         or leave it empty for no limit.",
                    );
                    None
                }
                Ok(seconds) if seconds > Schedule::MAX_INTERVAL_SECONDS => {
                    errors.add(
                        "max_duration",
                        format!(
                            "The max duration {seconds} is above ten years ({} seconds): enter \
                             less, or leave it empty for no limit.",
                            Schedule::MAX_INTERVAL_SECONDS
                        ),
                    );
                    None
                }
                Ok(seconds) => Some(Duration::from_secs(seconds)),
                Err(_) => {
                    errors.add(
                        "max_duration",
                        format!(
                            "The max duration `{text}` is not a whole number of seconds: enter \
                             one, such as 300, or leave it empty for no limit."
                        ),
                    );
                    None
                }
            },
        };

        let next_run = parse_time_field("next_run", "next run", &self.next_run, &mut errors);
        let alerts_postponed_until = parse_time_field(
            "alerts_postponed_until",
            "alerts-postponed-until time",
            &self.alerts_postponed_until,
            &mut errors,
        );
        let alert_on_failure = match self.alert_on_failure.as_str() {
            "" | "default" => None,
            "yes" => Some(true),
            "no" => Some(false),
            other => {
                errors.add(
                    "alert_on_failure",
                    format!("Unknown choice `{other}`: choose default, yes or no."),
                );
                None
            }
        };

        match schedule {
            Some(schedule) if errors.is_empty() => Ok(Parsed {
                command,
                arguments,
                queue,
                schedule,
                max_duration,
                next_run,
                next_run_changed: self.next_run.trim() != self.next_run_shown.trim(),
                alerts_postponed_until,
                alerts_postponed_changed: self.alerts_postponed_until.trim()
                    != self.alerts_postponed_until_shown.trim(),
                alert_on_failure,
                paused: self.paused,
            }),
            _ => Err(errors),
        }
    }

    fn parse_every(&self, errors: &mut FormErrors) -> Option<Schedule> {
        let text = self.every.trim();
        if text.is_empty() {
            errors.add(
                "every",
                "The repeat interval is empty: enter a number of seconds, such as 60.",
            );
            return None;
        }
        let Ok(seconds) = text.parse::<u64>() else {
            errors.add(
                "every",
                format!(
                    "The repeat interval `{text}` is not a whole number of seconds: enter one, \
                     such as 60, or choose cron."
                ),
            );
            return None;
        };
        Schedule::every(seconds)
            .map_err(|error| errors.add("every", capitalize(&error.to_string())))
            .ok()
    }

    fn parse_cron(&self, errors: &mut FormErrors) -> Option<Schedule> {
        let expression = self.cron.trim();
        if expression.is_empty() {
            errors.add(
                "cron",
                "The cron expression is empty: enter six fields with seconds first, such as \
                 `0 30 2 * * *` for 02:30:00 every day.",
            );
            return None;
        }
        let time_zone = match self.time_zone.trim() {
            "" => "UTC",
            zone => zone,
        };
        Schedule::cron(expression, time_zone)
            .map_err(|error| {
                let field = match error {
                    crate::ScheduleError::UnknownTimeZone { .. } => "time_zone",
                    _ => "cron",
                };
                errors.add(field, capitalize(&error.to_string()));
            })
            .ok()
    }

    /// Returns the form's markup, posting to `action`, with `errors` shown
    /// beside their fields.
    pub(super) fn render(
        &self,
        page: &PageContext,
        action: &str,
        submit: &str,
        errors: &FormErrors,
    ) -> Markup {
        let general = errors.of("");
        let command_names: Vec<&str> = commands().iter().map(|command| command.name()).collect();
        let cron = self.schedule == "cron";
        html! {
            @if !errors.is_empty() {
                div.message.error role="alert" {
                    p { "Nothing was saved. Fix the fields marked below and submit again." }
                    @for message in &general { p { (message) } }
                }
            }
            form.task.panel method="post" action=(action) {
                (page.csrf.field())
                (field(errors, "command", "Command", html! {
                    input #command type="text" name="command" value=(self.command)
                        list="commands" required autocomplete="off" spellcheck="false";
                    datalist #commands {
                        @for name in &command_names { option value=(name) {} }
                    }
                }, "The name of a registered command."))
                (field(errors, "arguments", "Arguments", html! {
                    textarea #arguments name="arguments" rows="4" spellcheck="false" { (self.arguments) }
                }, "One argument a line, such as --before-minutes then 120. Blank lines are left out."))
                (field(errors, "queue", "Queue", html! {
                    input #queue type="text" name="queue" value=(self.queue) required spellcheck="false";
                }, "The runner of this queue runs the task."))
                fieldset {
                    legend { "Schedule" }
                    label.choice {
                        input type="radio" name="schedule" value="every" checked[!cron];
                        " Repeat interval"
                    }
                    label.choice {
                        input type="radio" name="schedule" value="cron" checked[cron];
                        " Cron"
                    }
                    @for message in errors.of("schedule") { p.problem { (message) } }
                    (field(errors, "every", "Repeat interval (seconds)", html! {
                        input #every type="text" inputmode="numeric" name="every" value=(self.every);
                    }, "Fixed-rate: runs stay on the grid of the first run, such as :00, :15, :30 for 900."))
                    (field(errors, "cron", "Cron expression", html! {
                        input #cron type="text" name="cron" value=(self.cron) spellcheck="false";
                    }, "Six fields, seconds first: 0 30 2 * * * runs at 02:30:00 every day."))
                    (field(errors, "time_zone", "Time zone", html! {
                        input #time_zone type="text" name="time_zone" value=(self.time_zone) spellcheck="false";
                    }, "An IANA name for the cron expression, such as Europe/Paris or UTC."))
                }
                (field(errors, "max_duration", "Max duration (seconds)", html! {
                    input #max_duration type="text" inputmode="numeric" name="max_duration" value=(self.max_duration);
                }, "A run longer than this is stopped and recorded as killed. Empty: no limit."))
                (field(errors, "next_run", "Next run (UTC)", html! {
                    input #next_run type="text" name="next_run" value=(self.next_run)
                        placeholder="2026-03-02 12:00:00" spellcheck="false";
                    input type="hidden" name="next_run_shown" value=(self.next_run_shown);
                }, "YYYY-MM-DD HH:MM:SS. Empty: the schedule's first tick from now."))
                (field(errors, "alerts_postponed_until", "Alerts postponed until (UTC)", html! {
                    input #alerts_postponed_until type="text" name="alerts_postponed_until"
                        value=(self.alerts_postponed_until) placeholder="2026-03-02 12:00:00" spellcheck="false";
                    input type="hidden" name="alerts_postponed_until_shown" value=(self.alerts_postponed_until_shown);
                }, "No alert about the task is sent before this time. Empty: none postponed."))
                (field(errors, "alert_on_failure", "Alert on failure", html! {
                    select #alert_on_failure name="alert_on_failure" {
                        option value="default" selected[self.alert_on_failure == "default" || self.alert_on_failure.is_empty()] {
                            "As the runner's setting"
                        }
                        option value="yes" selected[self.alert_on_failure == "yes"] { "Yes: a run that ends in error alerts" }
                        option value="no" selected[self.alert_on_failure == "no"] { "No" }
                    }
                }, ""))
                div.field {
                    label {
                        input type="checkbox" name="paused" value="on" checked[self.paused];
                        " Paused: runners skip the task until it is resumed"
                    }
                }
                button.primary type="submit" { (submit) }
            }
        }
    }
}

/// Returns one labelled field with its problems and its hint.
fn field(errors: &FormErrors, name: &str, label: &str, input: Markup, hint: &str) -> Markup {
    let problems = errors.of(name);
    html! {
        div class=(if problems.is_empty() { "field" } else { "field invalid" }) {
            label for=(name) { (label) }
            (input)
            @for problem in &problems { p.problem { (problem) } }
            @if !hint.is_empty() { p.hint { (hint) } }
        }
    }
}

/// Parses an optional UTC time field, recording a problem that names the
/// value.
fn parse_time_field(
    field: &'static str,
    noun: &str,
    text: &str,
    errors: &mut FormErrors,
) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match parse_utc(text) {
        Some(time) => Some(time),
        None => {
            errors.add(
                field,
                format!(
                    "The {noun} `{text}` is not a time: use YYYY-MM-DD HH:MM:SS in UTC, such as \
                     2026-03-02 12:00:00."
                ),
            );
            None
        }
    }
}

/// Parses `2026-03-02 12:00:00` (seconds optional, `T` allowed, `Z` or
/// `UTC` allowed) as UTC, or an RFC 3339 time with an offset.
pub(super) fn parse_utc(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    let bare = text
        .strip_suffix("UTC")
        .or_else(|| text.strip_suffix('Z'))
        .unwrap_or(text)
        .trim()
        .replacen('T', " ", 1);
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(&bare, format).ok())
        .map(|naive| naive.and_utc())
}

/// Returns `message` with its first letter in uppercase and a final
/// period, as the form shows messages.
fn capitalize(message: &str) -> String {
    let mut characters = message.chars();
    let mut text: String = match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => String::new(),
    };
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_utc() {
        let expected: DateTime<Utc> = "2026-03-02T12:00:05Z".parse().expect("a time");
        for text in [
            "2026-03-02 12:00:05",
            "2026-03-02T12:00:05",
            "2026-03-02 12:00:05 UTC",
            "2026-03-02T12:00:05Z",
            "2026-03-02T13:00:05+01:00",
        ] {
            assert_eq!(parse_utc(text), Some(expected), "{text}");
        }
        assert_eq!(
            parse_utc("2026-03-02 12:00"),
            Some(expected - chrono::TimeDelta::seconds(5))
        );
        assert_eq!(parse_utc("tomorrow"), None);
    }

    #[test]
    fn messages_start_in_uppercase() {
        assert_eq!(
            capitalize("unknown time zone `X`: use UTC"),
            "Unknown time zone `X`: use UTC."
        );
    }
}
