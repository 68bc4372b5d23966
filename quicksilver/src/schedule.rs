//! Schedules of recurring tasks: a fixed-rate interval, or a cron expression
//! evaluated in a time zone.

use std::fmt;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, SubsecRound, TimeDelta, TimeZone,
    Utc,
};
use chrono_tz::{GapInfo, Tz};
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// The names of the six fields of a cron expression, in order.
const FIELD_NAMES: &str = "second minute hour day-of-month month day-of-week";

/// The position of the hour field, which decides the daylight-saving rule.
const HOUR_FIELD: usize = 2;

/// Each field's name and the values it accepts, in the order of the expression.
const FIELDS: [(&str, &str); 6] = [
    ("second", "0-59"),
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31, `L` or `W`"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT, where 0 and 7 are Sunday"),
];

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// How often a task runs.
///
/// # Examples
///
/// ```
/// use chrono::{DateTime, Utc};
/// use quicksilver::Schedule;
///
/// let every_five_seconds = Schedule::every(5)?;
/// let due: DateTime<Utc> = "2026-03-29T12:00:00Z".parse()?;
/// let now: DateTime<Utc> = "2026-03-29T12:00:12Z".parse()?;
/// // The missed ticks at 12:00:05 and 12:00:10 coalesce into the next one.
/// let next: DateTime<Utc> = "2026-03-29T12:00:15Z".parse()?;
/// assert_eq!(every_five_seconds.next_after(due, now), next);
///
/// // Paris skips from 02:00 to 03:00 on 2026-03-29, so 02:30 runs at 03:00.
/// let half_past_two = Schedule::cron("0 30 2 * * *", "Europe/Paris")?;
/// let evening: DateTime<Utc> = "2026-03-28T22:00:00Z".parse()?;
/// let first: DateTime<Utc> = "2026-03-29T01:00:00Z".parse()?;
/// assert_eq!(half_past_two.first_run_at(evening), first);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Fixed-rate repeat every `seconds` seconds of real (UTC) time.
    ///
    /// Runs stay on the grid `due + k * seconds`: a late run does not move
    /// the later ones, and ticks missed while the task could not run
    /// coalesce into one run. Time zones and daylight saving play no part.
    Every {
        /// The interval in seconds, from 1 to
        /// [`Schedule::MAX_INTERVAL_SECONDS`] when built by
        /// [`Schedule::every`]. The methods treat 0 as 1.
        seconds: u64,
    },
    /// A cron expression with a seconds field, in an IANA time zone.
    Cron(CronSchedule),
}

impl Schedule {
    /// The largest repeat interval, 10 years of 365 days, in seconds.
    pub const MAX_INTERVAL_SECONDS: u64 = 315_360_000;

    /// Creates a fixed-rate schedule that runs every `seconds` seconds.
    ///
    /// # Errors
    ///
    /// - [`ScheduleError::ZeroInterval`] when `seconds` is 0.
    /// - [`ScheduleError::IntervalTooLarge`] when `seconds` is above
    ///   [`Schedule::MAX_INTERVAL_SECONDS`].
    pub fn every(seconds: u64) -> Result<Schedule, ScheduleError> {
        if seconds == 0 {
            return Err(ScheduleError::ZeroInterval);
        }
        if seconds > Self::MAX_INTERVAL_SECONDS {
            return Err(ScheduleError::IntervalTooLarge { seconds });
        }
        Ok(Schedule::Every { seconds })
    }

    /// Parses a cron schedule from a six-field expression and an IANA time
    /// zone name such as `"Europe/Paris"` or `"UTC"`.
    ///
    /// See [`CronSchedule`] for the syntax and the daylight-saving rules.
    ///
    /// # Errors
    ///
    /// - [`ScheduleError::InvalidCron`] when the expression does not have
    ///   exactly six fields or a field is malformed.
    /// - [`ScheduleError::NoOccurrence`] when no date ever matches the
    ///   expression.
    /// - [`ScheduleError::UnknownTimeZone`] when `time_zone` is not an IANA
    ///   time zone name.
    pub fn cron(expression: &str, time_zone: &str) -> Result<Schedule, ScheduleError> {
        let name = time_zone.trim();
        let zone = name
            .parse::<Tz>()
            .map_err(|_| ScheduleError::UnknownTimeZone {
                name: name.to_owned(),
            })?;
        CronSchedule::new(expression, zone).map(Schedule::Cron)
    }

    /// Builds a schedule from the stored columns of a task row.
    ///
    /// Exactly one of `repeat_interval` (seconds) and `cron` must be set.
    /// `time_zone` defaults to `"UTC"` for a cron expression, and a fixed-rate
    /// schedule ignores it.
    ///
    /// # Errors
    ///
    /// - [`ScheduleError::ExactlyOneRequired`] when both or neither of
    ///   `repeat_interval` and `cron` are set.
    /// - [`ScheduleError::NegativeInterval`] when `repeat_interval` is
    ///   negative.
    /// - Any error of [`Schedule::every`] or [`Schedule::cron`].
    pub fn from_parts(
        repeat_interval: Option<i64>,
        cron: Option<&str>,
        time_zone: Option<&str>,
    ) -> Result<Schedule, ScheduleError> {
        match (repeat_interval, cron) {
            (Some(seconds), None) => {
                let seconds = u64::try_from(seconds)
                    .map_err(|_| ScheduleError::NegativeInterval { seconds })?;
                Schedule::every(seconds)
            }
            (None, Some(expression)) => Schedule::cron(expression, time_zone.unwrap_or("UTC")),
            (repeat_interval, cron) => Err(ScheduleError::ExactlyOneRequired {
                repeat_interval,
                cron: cron.map(str::to_owned),
            }),
        }
    }

    /// Returns the columns to store for this schedule: the repeat interval
    /// in seconds, the cron expression and the time zone name.
    ///
    /// A fixed-rate schedule stores no time zone.
    pub fn to_parts(&self) -> (Option<i64>, Option<String>, Option<String>) {
        match self {
            Schedule::Every { seconds } => {
                // Only a variant built by hand can exceed `i64::MAX`, since
                // `every` caps the interval far below it.
                let seconds = i64::try_from(*seconds).unwrap_or(i64::MAX);
                (Some(seconds), None, None)
            }
            Schedule::Cron(cron) => (
                None,
                Some(cron.expression.clone()),
                Some(cron.time_zone.name().to_owned()),
            ),
        }
    }

    /// Returns the first run of a newly created task.
    ///
    /// A fixed-rate schedule runs at `now`. A cron schedule runs at its
    /// first occurrence at or after `now` truncated to the second.
    ///
    /// # Caveats
    ///
    /// When no occurrence exists before the year 5000, the limit of the
    /// croner search, this returns [`DateTime::<Utc>::MAX_UTC`], a time that
    /// never comes due.
    pub fn first_run_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Schedule::Every { .. } => now,
            Schedule::Cron(cron) => {
                // Occurrences fall on whole seconds, so the first one at or
                // after a whole second is the first one after the second
                // before it.
                let start = now.trunc_subsecs(0);
                let second_before = start
                    .checked_sub_signed(TimeDelta::seconds(1))
                    .unwrap_or(start);
                cron.occurrence_after(second_before)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC)
            }
        }
    }

    /// Returns the run after a tick that was due at `due` and claimed at
    /// `now`.
    ///
    /// A fixed-rate schedule returns `due + k * seconds` for the smallest
    /// `k >= 1` that lies strictly after `now`, so ticks missed while the task
    /// could not run coalesce into one, and the result is never at or before
    /// `now`. A `now` earlier than `due`, from clocks that differ, gives
    /// `due + seconds`. A cron schedule returns its first occurrence strictly
    /// after the later of `due` and `now`.
    ///
    /// # Caveats
    ///
    /// When the next run lies past the range of [`DateTime`], or past the
    /// year 5000 for a cron schedule, this returns
    /// [`DateTime::<Utc>::MAX_UTC`], a time that never comes due.
    pub fn next_after(&self, due: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        self.next_run(due, now).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Returns the next `count` run times strictly after `from`, for
    /// previews.
    ///
    /// A fixed-rate schedule counts its grid from `from`: `from + seconds`,
    /// `from + 2 * seconds` and so on. The list is shorter than `count` only
    /// when the runs reach the limits described in [`Schedule::next_after`].
    pub fn upcoming(&self, from: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        std::iter::successors(self.next_run(from, from), |&previous| {
            self.next_run(previous, previous)
        })
        .take(count)
        .collect()
    }

    /// Returns the run after a tick due at `due` and claimed at `now`, or
    /// `None` when it lies past the supported range.
    fn next_run(&self, due: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every { seconds } => next_on_grid(due, now, *seconds),
            Schedule::Cron(cron) => cron.occurrence_after(due.max(now)),
        }
    }
}

impl From<CronSchedule> for Schedule {
    fn from(cron: CronSchedule) -> Self {
        Schedule::Cron(cron)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every { seconds } => {
                let (count, unit) = largest_exact_unit(*seconds);
                write!(f, "every {count}{unit}")
            }
            Schedule::Cron(cron) => write!(f, "{cron}"),
        }
    }
}

/// A cron expression with a seconds field, evaluated in an IANA time zone.
///
/// The expression has six fields: `second minute hour day-of-month month
/// day-of-week`. A field takes `*`, a value, a list (`1,15`), a range
/// (`9-17`) or a step (`*/5`, `10-50/20`). Months and weekdays also take
/// names (`JAN`, `MON`), and the day fields take croner's `L`, `W`, `#` and
/// `?`. When both day fields are restricted, a day that matches either one
/// fires, as in Vixie cron. A `+` in front of the day-of-week
/// (`0 0 0 1 * +MON`) requires both instead.
///
/// # Daylight saving time
///
/// The fields match the wall clock of the time zone. Where that clock skips
/// or repeats local times, the hour field decides what runs, in the spirit
/// of Vixie cron:
///
/// - An hour field that contains `*` or a step (`*`, `*/2`, `8-18/2`) makes
///   an interval job. It runs at every instant whose wall clock matches. A
///   local time that a spring-forward gap skips never shows on the clock, so
///   it does not run, and the ticks in the gap are not piled onto its end. A
///   local time that a fall-back repeats runs in both passes. So
///   `0 */15 * * * *` runs every 15 minutes of real time through both
///   transitions: 92 times on a 23-hour day and 100 times on a 25-hour day.
/// - Any other hour field (`2`, `2,14`, `9-17`, even `0-23`) makes a
///   fixed-time job. Each matching local time runs once, at the first
///   instant at which the wall clock shows that time or a later one. A time
///   inside a gap therefore runs at the end of the gap: `0 30 2 * * *` in
///   `Europe/Paris` on 2026-03-29, when the clock jumps from 02:00 to 03:00,
///   runs at 03:00 local time (01:00 UTC). All the times inside one gap
///   share that single run, which also absorbs a matching time at the end of
///   the gap itself. A time inside a repeated hour runs in the first pass
///   only.
///
/// # Caveats
///
/// - A year field is not supported, so that a schedule never runs out of
///   occurrences.
/// - Searches stop at the year 5000, the limit of croner, and times before
///   the year 2 count from the start of the year 2.
/// - Time zone rules come from the tables of chrono-tz 0.10. Those tables
///   list transitions up to 2099 (checked for `Europe/Paris` and
///   `America/New_York`), and later years use standard time all year.
#[derive(Clone)]
pub struct CronSchedule {
    /// The expression with its fields separated by single spaces.
    expression: String,
    time_zone: Tz,
    /// The parsed expression, boxed because croner's `Cron` takes over 300
    /// bytes and would make every `Schedule` that large.
    pattern: Box<Cron>,
    /// Whether the daylight-saving rule of fixed-time jobs applies.
    fixed_time: bool,
}

impl CronSchedule {
    /// Parses a six-field cron expression to evaluate in `time_zone`.
    ///
    /// Whitespace around the expression is trimmed, and the fields are
    /// stored separated by single spaces.
    ///
    /// # Errors
    ///
    /// - [`ScheduleError::InvalidCron`] when the expression does not have
    ///   exactly six fields or a field is malformed.
    /// - [`ScheduleError::NoOccurrence`] when no date ever matches the
    ///   expression.
    pub fn new(expression: &str, time_zone: Tz) -> Result<CronSchedule, ScheduleError> {
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let invalid = |reason: String| ScheduleError::InvalidCron {
            expression: expression.trim().to_owned(),
            reason,
        };

        check_field_count(&fields).map_err(invalid)?;
        let normalized = fields.join(" ");
        let pattern = cron_parser()
            .parse(&normalized)
            .map_err(|error| invalid(explain_parse_error(&fields, &error)))?;

        if !matches_any_time(&pattern) {
            return Err(ScheduleError::NoOccurrence {
                expression: expression.trim().to_owned(),
            });
        }

        let fixed_time = !fields[HOUR_FIELD].contains(['*', '/']);
        Ok(CronSchedule {
            expression: normalized,
            time_zone,
            pattern: Box::new(pattern),
            fixed_time,
        })
    }

    /// Returns the expression, with its fields separated by single spaces.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Returns the time zone whose wall clock the expression matches.
    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    /// Returns whether the expression is a fixed-time job, which is the case
    /// when its hour field contains neither `*` nor a step.
    ///
    /// A fixed-time job runs a local time that daylight saving skips at the
    /// end of the gap, and a repeated local time in the first pass only. See
    /// [`CronSchedule`] for both rules.
    pub fn is_fixed_time(&self) -> bool {
        self.fixed_time
    }

    /// Returns the first occurrence strictly after `instant`, or `None` when
    /// the search reaches the year 5000.
    fn occurrence_after(&self, instant: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // croner searches the years 1 to 4999, and chrono panics when it
        // shifts an instant at the edge of its range to local time. So an
        // instant from the year 5000 on has no occurrence, and an earlier
        // instant than the year 2 counts from the start of the year 2.
        if instant.year() >= croner::YEAR_UPPER_LIMIT {
            return None;
        }
        let earliest = NaiveDate::from_ymd_opt(croner::YEAR_LOWER_LIMIT + 1, 1, 1)
            .and_then(|day| day.and_hms_opt(0, 0, 0))
            .map(|midnight| midnight.and_utc());
        let instant = earliest.map_or(instant, |earliest| instant.max(earliest));

        // Occurrences fall on whole seconds, so dropping the fraction keeps
        // the same result and matches what croner compares.
        let instant = instant.trunc_subsecs(0);
        if self.fixed_time {
            return self.fixed_time_occurrence_after(instant);
        }

        // An hour field with `*` or a step always makes croner 4 treat the
        // expression as an interval job. croner runs those by the rules
        // documented on this type: it skips wall-clock times inside a gap and
        // runs repeated ones in both passes, in real-time order.
        let local = instant.with_timezone(&self.time_zone);
        let next = self.pattern.find_next_occurrence(&local, false).ok()?;
        Some(next.with_timezone(&Utc))
    }

    /// Returns the first run of a fixed-time job strictly after `instant`.
    ///
    /// Each matching wall-clock time runs at the first instant that shows it
    /// or a later time. That instant never decreases as the wall-clock time
    /// grows, so the walk over matching wall-clock times stops at the first
    /// one that runs after `instant`. Matches that run at or before
    /// `instant` only occur when `instant` lies in the second pass of a
    /// repeated hour, and the walk steps over them.
    fn fixed_time_occurrence_after(&self, instant: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut wall = instant.with_timezone(&self.time_zone).naive_local();
        loop {
            wall = self.pattern.find_next_occurrence(&wall, false).ok()?;
            if let Some(run) = self.first_instant_showing(wall) {
                if run > instant {
                    return Some(run);
                }
            }
        }
    }

    /// Returns the first instant at which the zone's wall clock shows `wall`
    /// or a later time, or `None` past the end of the time zone tables.
    fn first_instant_showing(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        let instant = match self.time_zone.from_local_datetime(&wall) {
            LocalResult::Single(instant) => instant,
            LocalResult::Ambiguous(earlier, _) => earlier,
            // The clock skips `wall`, and the end of the gap is the first
            // instant that shows a later time.
            LocalResult::None => GapInfo::new(&wall, &self.time_zone)?.end?,
        };
        Some(instant.with_timezone(&Utc))
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression && self.time_zone == other.time_zone
    }
}

impl Eq for CronSchedule {}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CronSchedule")
            .field("expression", &self.expression)
            .field("time_zone", &self.time_zone)
            .field("fixed_time", &self.fixed_time)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cron `{}` ({})", self.expression, self.time_zone.name())
    }
}

/// An error building a [`Schedule`] from user input or stored columns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// A repeat interval of 0 seconds.
    #[error("invalid repeat interval 0: use a number of seconds of at least 1")]
    ZeroInterval,

    /// A negative repeat interval, read from a stored row.
    #[error("invalid repeat interval {seconds}: use a number of seconds of at least 1")]
    NegativeInterval {
        /// The stored interval in seconds.
        seconds: i64,
    },

    /// A repeat interval above [`Schedule::MAX_INTERVAL_SECONDS`].
    #[error(
        "invalid repeat interval {seconds}: use at most {max} seconds (10 years)",
        max = Schedule::MAX_INTERVAL_SECONDS
    )]
    IntervalTooLarge {
        /// The requested interval in seconds.
        seconds: u64,
    },

    /// A cron expression that does not parse.
    #[error("invalid cron expression `{expression}`: {reason}")]
    InvalidCron {
        /// The expression, trimmed.
        expression: String,
        /// The reason and its fix, with croner's message when croner rejected
        /// a field.
        reason: String,
    },

    /// A time zone name that is not in the IANA time zone database.
    #[error("unknown time zone `{name}`: use an IANA name such as `Europe/Paris` or `UTC`")]
    UnknownTimeZone {
        /// The name, trimmed.
        name: String,
    },

    /// A cron expression that parses but matches no date at all.
    #[error(
        "cron expression `{expression}` never fires: no date matches its day-of-month, \
         month and day-of-week fields, so pick a day that exists in the chosen months"
    )]
    NoOccurrence {
        /// The expression, trimmed.
        expression: String,
    },

    /// Stored columns with both or neither of a repeat interval and a cron
    /// expression.
    #[error("invalid task schedule: {}", describe_set_parts(.repeat_interval, .cron))]
    ExactlyOneRequired {
        /// The stored repeat interval in seconds.
        repeat_interval: Option<i64>,
        /// The stored cron expression.
        cron: Option<String>,
    },
}

/// Describes which of the two exclusive columns are set.
fn describe_set_parts(repeat_interval: &Option<i64>, cron: &Option<String>) -> String {
    match (repeat_interval, cron) {
        (Some(seconds), Some(expression)) => format!(
            "both repeat interval {seconds} and cron expression `{expression}` are set, \
             but a task needs exactly one of them"
        ),
        _ => "neither a repeat interval nor a cron expression is set, \
              but a task needs exactly one of them"
            .to_owned(),
    }
}

/// Returns the parser for six-field expressions, with Vixie weekday numbers
/// (0 and 7 are Sunday) and without croner's lenient step syntax.
fn cron_parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Disallowed)
        .build()
}

/// Checks that the expression has six fields, and otherwise returns the
/// reason with the fix.
fn check_field_count(fields: &[&str]) -> Result<(), String> {
    match fields {
        [_, _, _, _, _, _] => Ok(()),
        [] => Err(format!(
            "the expression is empty, but six fields are required: {FIELD_NAMES}"
        )),
        [nickname] if nickname.starts_with('@') => Err(format!(
            "nickname `{nickname}` is not supported, so write six fields ({FIELD_NAMES}) \
             such as `0 0 0 * * *`"
        )),
        [_, _, _, _, _] => Err(format!(
            "found 5 fields but the seconds field is required, so add one in front: `0 {}`",
            fields.join(" ")
        )),
        [_, _, _, _, _, _, _] => Err(format!(
            "found 7 fields but a year field is not supported, so remove the seventh field \
             and keep six: {FIELD_NAMES}"
        )),
        _ => Err(format!(
            "found {} but six fields are required: {FIELD_NAMES}",
            match fields.len() {
                1 => "1 field".to_owned(),
                count => format!("{count} fields"),
            }
        )),
    }
}

/// Explains why croner rejected a six-field expression, naming the first
/// field that croner also rejects on its own.
fn explain_parse_error(fields: &[&str], error: &CronError) -> String {
    for (index, (field, (name, accepted))) in fields.iter().zip(FIELDS).enumerate() {
        let mut probe = ["*"; 6];
        probe[index] = field;
        if let Err(field_error) = cron_parser().parse(&probe.join(" ")) {
            return format!(
                "invalid {name} field `{field}` ({}), so use {accepted}",
                croner_reason(&field_error)
            );
        }
    }
    croner_reason(error)
}

/// Returns croner's message for `error`, without its category prefix and
/// final period.
fn croner_reason(error: &CronError) -> String {
    let message = match error {
        CronError::InvalidPattern(message)
        | CronError::IllegalCharacters(message)
        | CronError::ComponentError(message) => message.clone(),
        other => other.to_string(),
    };
    message.trim_end_matches('.').to_owned()
}

/// Returns whether `pattern` matches any wall-clock time at all.
///
/// The Gregorian calendar repeats every 400 years, weekdays included, so a
/// pattern without a year field that matches nothing in 400 consecutive
/// years never matches. The search covers the last 400 years before croner's
/// search limit, which makes a failing search as short as possible and keeps
/// the result independent of the current date.
fn matches_any_time(pattern: &Cron) -> bool {
    let first_year = croner::YEAR_UPPER_LIMIT - 400;
    let Some(start) =
        NaiveDate::from_ymd_opt(first_year, 1, 1).and_then(|day| day.and_hms_opt(0, 0, 0))
    else {
        // Only a croner with a search limit below the year 401 gets here.
        // Accept the pattern rather than reject every expression.
        return true;
    };
    pattern.find_next_occurrence(&start, true).is_ok()
}

/// Returns `due + k * seconds` for the smallest `k >= 1` that lies strictly
/// after `now`, or `None` past the range of [`DateTime`].
fn next_on_grid(due: DateTime<Utc>, now: DateTime<Utc>, seconds: u64) -> Option<DateTime<Utc>> {
    // A hand-built `Every { seconds: 0 }` steps by one second instead of
    // dividing by zero.
    let period = i128::from(seconds.max(1)) * NANOS_PER_SECOND;
    let due_nanos = to_nanos(due);
    let elapsed = to_nanos(now) - due_nanos;
    let steps = if elapsed < 0 { 1 } else { elapsed / period + 1 };
    from_nanos(due_nanos + steps * period)
}

fn to_nanos(instant: DateTime<Utc>) -> i128 {
    i128::from(instant.timestamp()) * NANOS_PER_SECOND
        + i128::from(instant.timestamp_subsec_nanos())
}

fn from_nanos(nanos: i128) -> Option<DateTime<Utc>> {
    let seconds = i64::try_from(nanos.div_euclid(NANOS_PER_SECOND)).ok()?;
    let subsec_nanos = u32::try_from(nanos.rem_euclid(NANOS_PER_SECOND)).ok()?;
    DateTime::from_timestamp(seconds, subsec_nanos)
}

/// Splits `seconds` into a count of the largest unit among days, hours and
/// minutes that divides it exactly, falling back to seconds.
fn largest_exact_unit(seconds: u64) -> (u64, &'static str) {
    const UNITS: [(u64, &str); 3] = [(86_400, "d"), (3_600, "h"), (60, "m")];
    UNITS
        .iter()
        .find(|(unit_seconds, _)| seconds > 0 && seconds % unit_seconds == 0)
        .map_or((seconds, "s"), |(unit_seconds, suffix)| {
            (seconds / unit_seconds, *suffix)
        })
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeDelta, Timelike};

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("test times are valid RFC 3339")
    }

    fn cron(expression: &str, time_zone: &str) -> Schedule {
        Schedule::cron(expression, time_zone).expect("test expressions are valid")
    }

    fn cron_schedule(expression: &str, time_zone: &str) -> CronSchedule {
        match cron(expression, time_zone) {
            Schedule::Cron(cron) => cron,
            Schedule::Every { .. } => unreachable!("Schedule::cron returns a cron schedule"),
        }
    }

    fn invalid_reason(expression: &str) -> String {
        match Schedule::cron(expression, "UTC") {
            Err(ScheduleError::InvalidCron { reason, .. }) => reason,
            other => panic!("expected InvalidCron for `{expression}`, got {other:?}"),
        }
    }

    /// Returns the UTC instant of local midnight at the start of `date`.
    fn local_midnight(time_zone: &str, date: &str) -> DateTime<Utc> {
        let zone: Tz = time_zone.parse().expect("test zones are valid");
        let day: NaiveDate = date.parse().expect("test dates are valid");
        let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists");
        zone.from_local_datetime(&midnight)
            .single()
            .expect("test days do not start in a transition")
            .with_timezone(&Utc)
    }

    /// Returns every run in `[start, end)`, found by chaining `next_after`
    /// from the first run, as a runner would.
    fn runs_between(
        schedule: &Schedule,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let mut runs = Vec::new();
        let mut run = schedule.first_run_at(start);
        while run < end {
            runs.push(run);
            run = schedule.next_after(run, run);
        }
        runs
    }

    /// Returns the runs of the local day `date` in `time_zone`.
    fn runs_on_local_day(expression: &str, time_zone: &str, date: &str) -> Vec<DateTime<Utc>> {
        let day: NaiveDate = date.parse().expect("test dates are valid");
        let next_day = day.succ_opt().expect("test dates have a next day");
        let start = local_midnight(time_zone, date);
        let end = local_midnight(time_zone, &next_day.to_string());
        runs_between(&cron(expression, time_zone), start, end)
    }

    fn is_strictly_increasing(runs: &[DateTime<Utc>]) -> bool {
        runs.windows(2).all(|pair| pair[0] < pair[1])
    }

    fn gaps_between(runs: &[DateTime<Utc>]) -> Vec<TimeDelta> {
        runs.windows(2).map(|pair| pair[1] - pair[0]).collect()
    }

    // Fixed-rate grid

    #[test]
    fn every_on_time_runs_one_interval_later() {
        let schedule = Schedule::every(5).expect("5 is valid");
        let due = at("2026-01-01T12:00:00Z");
        assert_eq!(schedule.next_after(due, due), at("2026-01-01T12:00:05Z"));
    }

    #[test]
    fn every_late_within_interval_keeps_grid() {
        let schedule = Schedule::every(5).expect("5 is valid");
        let next = schedule.next_after(at("2026-01-01T12:00:00Z"), at("2026-01-01T12:00:03.700Z"));
        assert_eq!(next, at("2026-01-01T12:00:05Z"));
    }

    #[test]
    fn every_late_by_one_interval_skips_now() {
        let schedule = Schedule::every(5).expect("5 is valid");
        let next = schedule.next_after(at("2026-01-01T12:00:00Z"), at("2026-01-01T12:00:05Z"));
        assert_eq!(next, at("2026-01-01T12:00:10Z"));
    }

    #[test]
    fn every_late_by_many_intervals_coalesces() {
        let schedule = Schedule::every(5).expect("5 is valid");
        let next = schedule.next_after(at("2026-01-01T12:00:00Z"), at("2026-01-01T12:07:33Z"));
        assert_eq!(next, at("2026-01-01T12:07:35Z"));
    }

    #[test]
    fn every_late_by_days_coalesces() {
        let schedule = Schedule::every(900).expect("900 is valid");
        let next = schedule.next_after(at("2026-01-01T00:00:00Z"), at("2026-01-03T10:14:59Z"));
        assert_eq!(next, at("2026-01-03T10:15:00Z"));
    }

    #[test]
    fn every_now_before_due() {
        let schedule = Schedule::every(5).expect("5 is valid");
        let next = schedule.next_after(at("2026-01-01T12:00:00Z"), at("2026-01-01T11:59:00Z"));
        assert_eq!(next, at("2026-01-01T12:00:05Z"));
    }

    #[test]
    fn every_keeps_subsecond_grid() {
        let schedule = Schedule::every(5).expect("5 is valid");
        let next = schedule.next_after(at("2026-01-01T12:00:00.250Z"), at("2026-01-01T12:00:12Z"));
        assert_eq!(next, at("2026-01-01T12:00:15.250Z"));
    }

    #[test]
    fn every_never_returns_time_at_or_before_now() {
        let schedule = Schedule::every(7).expect("7 is valid");
        let due = at("2026-01-01T12:00:00Z");
        for late_by in 0..100 {
            let now = due + TimeDelta::milliseconds(late_by * 350);
            let next = schedule.next_after(due, now);
            assert!(next > now, "next {next} is not after now {now}");
            assert!(
                next - now <= TimeDelta::seconds(7),
                "next {next} skips a tick after {now}"
            );
        }
    }

    #[test]
    fn every_first_run_is_now() {
        let schedule = Schedule::every(60).expect("60 is valid");
        let now = at("2026-01-01T12:00:00.123Z");
        assert_eq!(schedule.first_run_at(now), now);
    }

    #[test]
    fn every_ignores_daylight_saving() {
        let schedule = Schedule::every(3_600).expect("3600 is valid");
        let runs = schedule.upcoming(at("2026-03-28T22:30:00Z"), 6);
        let hour = TimeDelta::hours(1);
        assert!(
            gaps_between(&runs).iter().all(|gap| *gap == hour),
            "runs {runs:?}"
        );
    }

    #[test]
    fn every_past_datetime_range_saturates() {
        let schedule = Schedule::every(Schedule::MAX_INTERVAL_SECONDS).expect("max is valid");
        let late = DateTime::<Utc>::MAX_UTC - TimeDelta::days(1);
        assert_eq!(schedule.next_after(late, late), DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn every_built_with_zero_steps_by_one_second() {
        let schedule = Schedule::Every { seconds: 0 };
        let due = at("2026-01-01T12:00:00Z");
        assert_eq!(schedule.next_after(due, due), at("2026-01-01T12:00:01Z"));
    }

    #[test]
    fn every_rejects_zero() {
        assert_eq!(Schedule::every(0), Err(ScheduleError::ZeroInterval));
    }

    #[test]
    fn every_rejects_more_than_ten_years() {
        let seconds = Schedule::MAX_INTERVAL_SECONDS + 1;
        assert_eq!(
            Schedule::every(seconds),
            Err(ScheduleError::IntervalTooLarge { seconds })
        );
    }

    #[test]
    fn every_accepts_ten_years() {
        let seconds = Schedule::MAX_INTERVAL_SECONDS;
        assert_eq!(Schedule::every(seconds), Ok(Schedule::Every { seconds }));
    }

    #[test]
    fn every_accepts_one_second() {
        assert_eq!(Schedule::every(1), Ok(Schedule::Every { seconds: 1 }));
    }

    // Cron parsing

    #[test]
    fn cron_parses_seconds_field() {
        let schedule = cron("*/10 * * * * *", "UTC");
        let next = schedule.next_after(at("2026-01-01T12:00:00Z"), at("2026-01-01T12:00:00Z"));
        assert_eq!(next, at("2026-01-01T12:00:10Z"));
    }

    #[test]
    fn cron_trims_and_normalizes_whitespace() {
        let schedule = cron_schedule("  0  */5 *\t* * *\n", "UTC");
        assert_eq!(schedule.expression(), "0 */5 * * * *");
    }

    #[test]
    fn cron_keeps_time_zone() {
        let schedule = cron_schedule("0 * * * * *", " Europe/Paris ");
        assert_eq!(schedule.time_zone(), chrono_tz::Europe::Paris);
    }

    #[test]
    fn cron_rejects_five_fields_with_hint() {
        let error = Schedule::cron("*/5 * * * *", "UTC").expect_err("5 fields are rejected");
        let expected = ScheduleError::InvalidCron {
            expression: "*/5 * * * *".to_owned(),
            reason: "found 5 fields but the seconds field is required, \
                     so add one in front: `0 */5 * * * *`"
                .to_owned(),
        };
        assert_eq!(error, expected);
    }

    #[test]
    fn cron_five_field_message_shows_fix() {
        let error = Schedule::cron("*/5 * * * *", "UTC").expect_err("5 fields are rejected");
        assert_eq!(
            error.to_string(),
            "invalid cron expression `*/5 * * * *`: found 5 fields but the seconds field \
             is required, so add one in front: `0 */5 * * * *`"
        );
    }

    #[test]
    fn cron_rejects_year_field() {
        let reason = invalid_reason("0 0 0 1 1 * 2030");
        assert!(
            reason.contains("a year field is not supported"),
            "reason: {reason}"
        );
    }

    #[test]
    fn cron_rejects_too_few_fields() {
        let reason = invalid_reason("0 0 0 *");
        assert!(
            reason.starts_with("found 4 fields but six fields are required"),
            "reason: {reason}"
        );
    }

    #[test]
    fn cron_rejects_too_many_fields() {
        let reason = invalid_reason("0 0 0 * * * * *");
        assert!(
            reason.starts_with("found 8 fields but six fields are required"),
            "reason: {reason}"
        );
    }

    #[test]
    fn cron_rejects_empty_expression() {
        let reason = invalid_reason("   ");
        assert!(
            reason.starts_with("the expression is empty"),
            "reason: {reason}"
        );
    }

    #[test]
    fn cron_rejects_nickname() {
        let reason = invalid_reason("@daily");
        assert!(
            reason.starts_with("nickname `@daily` is not supported"),
            "reason: {reason}"
        );
    }

    #[test]
    fn cron_rejects_hour_out_of_range() {
        let error = Schedule::cron("0 0 25 * * *", "UTC").expect_err("hour 25 is rejected");
        assert_eq!(
            error.to_string(),
            "invalid cron expression `0 0 25 * * *`: invalid hour field `25` \
             (Number out of bounds), so use 0-23"
        );
    }

    #[test]
    fn cron_rejects_bad_day_of_week_name() {
        let reason = invalid_reason("0 0 0 * * MON-FOO");
        assert!(
            reason.starts_with("invalid day-of-week field `MON-FOO`"),
            "reason: {reason}"
        );
    }

    #[test]
    fn cron_rejects_single_number_step() {
        let reason = invalid_reason("0 0/5 * * * *");
        assert!(
            reason.starts_with("invalid minute field `0/5`"),
            "reason: {reason}"
        );
    }

    #[test]
    fn cron_rejects_unknown_time_zone() {
        let error = Schedule::cron("0 * * * * *", "Mars/Base").expect_err("Mars/Base is unknown");
        assert_eq!(
            error.to_string(),
            "unknown time zone `Mars/Base`: use an IANA name such as `Europe/Paris` or `UTC`"
        );
    }

    #[test]
    fn cron_rejects_february_thirtieth() {
        let error = Schedule::cron("0 0 0 30 2 *", "UTC").expect_err("Feb 30 never fires");
        let expected = ScheduleError::NoOccurrence {
            expression: "0 0 0 30 2 *".to_owned(),
        };
        assert_eq!(error, expected);
    }

    #[test]
    fn cron_rejects_thirty_first_of_short_months() {
        let error = Schedule::cron("0 0 0 31 4,6,9,11 *", "UTC").expect_err("never fires");
        assert!(
            matches!(error, ScheduleError::NoOccurrence { .. }),
            "error: {error:?}"
        );
    }

    #[test]
    fn cron_accepts_rare_leap_day_on_monday() {
        let schedule = cron("0 0 0 29 2 +MON", "UTC");
        let first = schedule.first_run_at(at("2026-01-01T00:00:00Z"));
        assert_eq!(first, at("2044-02-29T00:00:00Z"));
    }

    #[test]
    fn cron_day_fields_match_either_day() {
        // The 13th of the month or any Friday, as in Vixie cron.
        let runs = cron("0 0 0 13 * FRI", "UTC").upcoming(at("2026-03-01T00:00:00Z"), 3);
        let expected = [
            at("2026-03-06T00:00:00Z"),
            at("2026-03-13T00:00:00Z"),
            at("2026-03-20T00:00:00Z"),
        ];
        assert_eq!(runs, expected);
    }

    #[test]
    fn cron_classifies_hour_field() {
        let cases = [
            ("0 30 2 * * *", true),
            ("0 */15 2 * * *", true),
            ("0 0 2,14 * * *", true),
            ("0 0 0-23 * * *", true),
            ("0 */15 * * * *", false),
            ("0 0 */2 * * *", false),
            ("0 0 8-18/2 * * *", false),
        ];
        for (expression, fixed_time) in cases {
            let schedule = cron_schedule(expression, "UTC");
            assert_eq!(
                schedule.is_fixed_time(),
                fixed_time,
                "expression `{expression}`"
            );
        }
    }

    // Cron run times outside transitions

    #[test]
    fn cron_first_run_includes_current_second() {
        let schedule = cron("0 * * * * *", "UTC");
        let first = schedule.first_run_at(at("2026-01-01T12:00:00.500Z"));
        assert_eq!(first, at("2026-01-01T12:00:00Z"));
    }

    #[test]
    fn cron_first_run_after_passed_second() {
        let schedule = cron("0 * * * * *", "UTC");
        let first = schedule.first_run_at(at("2026-01-01T12:00:01Z"));
        assert_eq!(first, at("2026-01-01T12:01:00Z"));
    }

    #[test]
    fn cron_next_after_is_strictly_after_due() {
        let schedule = cron("0 * * * * *", "UTC");
        let due = at("2026-01-01T12:00:00Z");
        assert_eq!(schedule.next_after(due, due), at("2026-01-01T12:01:00Z"));
    }

    #[test]
    fn cron_next_after_counts_from_late_now() {
        let schedule = cron("0 * * * * *", "UTC");
        let next = schedule.next_after(at("2026-01-01T12:00:00Z"), at("2026-01-01T12:05:00Z"));
        assert_eq!(next, at("2026-01-01T12:06:00Z"));
    }

    #[test]
    fn cron_next_after_now_before_due() {
        let schedule = cron("0 * * * * *", "UTC");
        let next = schedule.next_after(at("2026-01-01T12:00:00Z"), at("2026-01-01T11:58:30Z"));
        assert_eq!(next, at("2026-01-01T12:01:00Z"));
    }

    #[test]
    fn cron_uses_time_zone_wall_clock() {
        let schedule = cron("0 0 9 * * *", "America/New_York");
        let first = schedule.first_run_at(at("2026-01-15T00:00:00Z"));
        assert_eq!(first, at("2026-01-15T14:00:00Z"));
    }

    #[test]
    fn cron_far_future_saturates() {
        let schedule = cron("0 0 0 * * *", "Europe/Paris");
        let late = DateTime::<Utc>::MAX_UTC;
        assert_eq!(schedule.next_after(late, late), DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn cron_far_past_counts_from_year_two() {
        let schedule = cron("0 0 0 * * *", "Europe/Paris");
        let early = DateTime::<Utc>::MIN_UTC;
        assert_eq!(schedule.next_after(early, early).year(), 2);
    }

    #[test]
    fn cron_first_run_at_min_time() {
        let schedule = cron("0 */15 * * * *", "America/New_York");
        assert_eq!(schedule.first_run_at(DateTime::<Utc>::MIN_UTC).year(), 2);
    }

    #[test]
    fn cron_interval_far_future_saturates() {
        let schedule = cron("0 */15 * * * *", "Europe/Paris");
        let late = at("5500-01-01T00:00:00Z");
        assert_eq!(schedule.next_after(late, late), DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn upcoming_lists_cron_runs_in_order() {
        let schedule = cron("0 0 9 * * MON-FRI", "UTC");
        // 2026-01-02 is a Friday.
        let runs = schedule.upcoming(at("2026-01-02T10:00:00Z"), 3);
        let expected = [
            at("2026-01-05T09:00:00Z"),
            at("2026-01-06T09:00:00Z"),
            at("2026-01-07T09:00:00Z"),
        ];
        assert_eq!(runs, expected);
    }

    #[test]
    fn upcoming_excludes_from() {
        let schedule = cron("0 0 9 * * *", "UTC");
        let runs = schedule.upcoming(at("2026-01-05T09:00:00Z"), 1);
        assert_eq!(runs, [at("2026-01-06T09:00:00Z")]);
    }

    #[test]
    fn upcoming_counts_every_grid_from_start() {
        let schedule = Schedule::every(90).expect("90 is valid");
        let runs = schedule.upcoming(at("2026-01-01T12:00:00Z"), 3);
        let expected = [
            at("2026-01-01T12:01:30Z"),
            at("2026-01-01T12:03:00Z"),
            at("2026-01-01T12:04:30Z"),
        ];
        assert_eq!(runs, expected);
    }

    #[test]
    fn upcoming_with_zero_count_is_empty() {
        let schedule = Schedule::every(90).expect("90 is valid");
        assert!(schedule.upcoming(at("2026-01-01T12:00:00Z"), 0).is_empty());
    }

    #[test]
    fn upcoming_stops_at_range_end() {
        let schedule = Schedule::every(Schedule::MAX_INTERVAL_SECONDS).expect("max is valid");
        let late = DateTime::<Utc>::MAX_UTC - TimeDelta::days(365 * 15);
        assert_eq!(schedule.upcoming(late, 5).len(), 1);
    }

    // Daylight saving time: Europe/Paris skips 02:00-03:00 on 2026-03-29
    // (at 01:00 UTC) and repeats 02:00-03:00 on 2026-10-25 (from 00:00 to
    // 02:00 UTC). America/New_York skips 02:00-03:00 on 2026-03-08 (at 07:00
    // UTC) and repeats 01:00-02:00 on 2026-11-01 (from 05:00 to 07:00 UTC).

    #[test]
    fn paris_spring_gap_runs_at_gap_end() {
        let runs = runs_on_local_day("0 30 2 * * *", "Europe/Paris", "2026-03-29");
        assert_eq!(runs, [at("2026-03-29T01:00:00Z")]);
    }

    #[test]
    fn paris_spring_fixed_time_resumes_next_day() {
        let schedule = cron("0 30 2 * * *", "Europe/Paris");
        let gap_end = at("2026-03-29T01:00:00Z");
        assert_eq!(
            schedule.next_after(gap_end, gap_end),
            at("2026-03-30T00:30:00Z")
        );
    }

    #[test]
    fn paris_spring_times_in_gap_share_one_run() {
        let runs = runs_on_local_day("0 0,30 2 * * *", "Europe/Paris", "2026-03-29");
        assert_eq!(runs, [at("2026-03-29T01:00:00Z")]);
    }

    #[test]
    fn paris_spring_gap_run_absorbs_three_oclock() {
        let runs = runs_on_local_day("0 0 2,3 * * *", "Europe/Paris", "2026-03-29");
        assert_eq!(runs, [at("2026-03-29T01:00:00Z")]);
    }

    #[test]
    fn paris_spring_minute_step_in_gap_runs_once() {
        let runs = runs_on_local_day("0 */15 2 * * *", "Europe/Paris", "2026-03-29");
        assert_eq!(runs, [at("2026-03-29T01:00:00Z")]);
    }

    #[test]
    fn paris_spring_first_run_inside_gap_day() {
        let schedule = cron("0 30 2 * * *", "Europe/Paris");
        let first = schedule.first_run_at(at("2026-03-29T00:59:59.900Z"));
        assert_eq!(first, at("2026-03-29T01:00:00Z"));
    }

    #[test]
    fn paris_spring_hour_step_skips_missing_hour() {
        let runs = runs_on_local_day("0 0 */2 * * *", "Europe/Paris", "2026-03-29");
        let hours: Vec<u32> = runs
            .iter()
            .map(|run| run.with_timezone(&chrono_tz::Europe::Paris).time().hour())
            .collect();
        assert_eq!(hours, [0, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22]);
    }

    #[test]
    fn paris_fall_runs_first_pass_only() {
        let runs = runs_on_local_day("0 30 2 * * *", "Europe/Paris", "2026-10-25");
        assert_eq!(runs, [at("2026-10-25T00:30:00Z")]);
    }

    #[test]
    fn paris_fall_second_pass_claim_waits_a_day() {
        let schedule = cron("0 30 2 * * *", "Europe/Paris");
        // 01:40 UTC is 02:40 local time in the second pass.
        let next = schedule.next_after(at("2026-10-25T00:30:00Z"), at("2026-10-25T01:40:00Z"));
        assert_eq!(next, at("2026-10-26T01:30:00Z"));
    }

    #[test]
    fn paris_fall_minute_step_runs_first_pass() {
        let runs = runs_on_local_day("0 */15 2 * * *", "Europe/Paris", "2026-10-25");
        let expected = [
            at("2026-10-25T00:00:00Z"),
            at("2026-10-25T00:15:00Z"),
            at("2026-10-25T00:30:00Z"),
            at("2026-10-25T00:45:00Z"),
        ];
        assert_eq!(runs, expected);
    }

    #[test]
    fn paris_fall_hour_step_runs_in_both_passes() {
        let runs = runs_on_local_day("0 0 */2 * * *", "Europe/Paris", "2026-10-25");
        let two_oclock: Vec<DateTime<Utc>> = runs
            .into_iter()
            .filter(|run| run.with_timezone(&chrono_tz::Europe::Paris).time().hour() == 2)
            .collect();
        assert_eq!(
            two_oclock,
            [at("2026-10-25T00:00:00Z"), at("2026-10-25T01:00:00Z")]
        );
    }

    #[test]
    fn new_york_spring_gap_runs_at_gap_end() {
        let runs = runs_on_local_day("0 30 2 * * *", "America/New_York", "2026-03-08");
        assert_eq!(runs, [at("2026-03-08T07:00:00Z")]);
    }

    #[test]
    fn new_york_fall_runs_first_pass_only() {
        let runs = runs_on_local_day("0 30 1 * * *", "America/New_York", "2026-11-01");
        assert_eq!(runs, [at("2026-11-01T05:30:00Z")]);
    }

    #[test]
    fn new_york_fall_fixed_time_resumes_next_day() {
        let schedule = cron("0 30 1 * * *", "America/New_York");
        let next = schedule.next_after(at("2026-11-01T05:30:00Z"), at("2026-11-01T06:45:00Z"));
        assert_eq!(next, at("2026-11-02T06:30:00Z"));
    }

    #[test]
    fn new_york_fall_skips_second_pass() {
        let schedule = cron("* * 1 * * *", "America/New_York");
        // 06:00:30 UTC is 01:00:30 EST, early in the second pass.
        let now = at("2026-11-01T06:00:30Z");
        assert_eq!(schedule.next_after(now, now), at("2026-11-02T06:00:00Z"));
    }

    #[test]
    fn every_fifteen_minutes_on_short_and_long_days() {
        let cases = [
            ("Europe/Paris", "2026-03-29", 92),
            ("Europe/Paris", "2026-10-25", 100),
            ("America/New_York", "2026-03-08", 92),
            ("America/New_York", "2026-11-01", 100),
        ];
        for (time_zone, date, expected) in cases {
            let runs = runs_on_local_day("0 */15 * * * *", time_zone, date);
            assert_eq!(runs.len(), expected, "{time_zone} on {date}");
        }
    }

    #[test]
    fn every_fifteen_minutes_is_strictly_increasing() {
        for (time_zone, date) in [
            ("Europe/Paris", "2026-03-29"),
            ("Europe/Paris", "2026-10-25"),
            ("America/New_York", "2026-03-08"),
            ("America/New_York", "2026-11-01"),
        ] {
            let runs = runs_on_local_day("0 */15 * * * *", time_zone, date);
            assert!(
                is_strictly_increasing(&runs),
                "{time_zone} on {date}: {runs:?}"
            );
        }
    }

    #[test]
    fn every_fifteen_minutes_keeps_real_time_spacing() {
        let quarter = TimeDelta::minutes(15);
        for (time_zone, date) in [
            ("Europe/Paris", "2026-03-29"),
            ("Europe/Paris", "2026-10-25"),
            ("America/New_York", "2026-03-08"),
            ("America/New_York", "2026-11-01"),
        ] {
            let runs = runs_on_local_day("0 */15 * * * *", time_zone, date);
            let gaps = gaps_between(&runs);
            assert!(
                gaps.iter().all(|gap| *gap == quarter),
                "{time_zone} on {date}: {runs:?}"
            );
        }
    }

    #[test]
    fn every_second_across_spring_transition() {
        let schedule = cron("* * * * * *", "Europe/Paris");
        // 00:59:59 UTC is 01:59:59 CET and 01:00:00 UTC is 03:00:00 CEST.
        let before = at("2026-03-29T00:59:59Z");
        assert_eq!(
            schedule.next_after(before, before),
            at("2026-03-29T01:00:00Z")
        );
    }

    #[test]
    fn every_second_across_fall_transition() {
        let schedule = cron("* * * * * *", "Europe/Paris");
        // 00:59:59 UTC is 02:59:59 CEST and 01:00:00 UTC is 02:00:00 CET.
        let before = at("2026-10-25T00:59:59Z");
        assert_eq!(
            schedule.next_after(before, before),
            at("2026-10-25T01:00:00Z")
        );
    }

    #[test]
    fn every_second_runs_through_transitions() {
        let second = TimeDelta::seconds(1);
        for (time_zone, start) in [
            ("Europe/Paris", "2026-03-29T00:30:00Z"),
            ("Europe/Paris", "2026-10-25T00:30:00Z"),
            ("America/New_York", "2026-03-08T06:30:00Z"),
            ("America/New_York", "2026-11-01T05:30:00Z"),
        ] {
            let schedule = cron("* * * * * *", time_zone);
            let start = at(start);
            let runs = runs_between(&schedule, start, start + TimeDelta::hours(1));
            assert_eq!(runs.len(), 3_600, "{time_zone} from {start}");
            assert!(
                gaps_between(&runs).iter().all(|gap| *gap == second),
                "{time_zone} from {start}"
            );
        }
    }

    #[test]
    fn lord_howe_half_hour_shift_counts() {
        // Australia/Lord_Howe moves its clock by 30 minutes: 02:00 becomes
        // 02:30 on 2026-10-04 and 02:00 becomes 01:30 on 2026-04-05.
        let short = runs_on_local_day("0 */15 * * * *", "Australia/Lord_Howe", "2026-10-04");
        let long = runs_on_local_day("0 */15 * * * *", "Australia/Lord_Howe", "2026-04-05");
        assert_eq!(short.len(), 94);
        assert_eq!(long.len(), 98);
    }

    /// Returns the runs in `[start, end)` by the documented rules, checking
    /// each second of real time on its own.
    ///
    /// An interval job runs at every instant whose wall clock matches. A
    /// fixed-time job runs at an instant when the wall clock moves past a
    /// matching time that it has not shown before: each second normally, and
    /// a whole gap at once at the end of a gap.
    fn runs_by_rule(
        schedule: &CronSchedule,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let second = TimeDelta::seconds(1);
        let wall_at =
            |instant: DateTime<Utc>| instant.with_timezone(&schedule.time_zone).naive_local();
        let matches = |wall: NaiveDateTime| {
            schedule
                .pattern
                .is_time_matching(&wall)
                .expect("croner matches valid times")
        };

        let mut runs = Vec::new();
        let mut latest_wall = wall_at(start - second);
        let mut instant = start;
        while instant < end {
            let wall = wall_at(instant);
            if !schedule.fixed_time {
                if matches(wall) {
                    runs.push(instant);
                }
            } else if wall > latest_wall {
                let mut candidate_wall = latest_wall + second;
                while candidate_wall <= wall && !matches(candidate_wall) {
                    candidate_wall += second;
                }
                if candidate_wall <= wall {
                    runs.push(instant);
                }
                latest_wall = wall;
            }
            instant += second;
        }
        runs
    }

    #[test]
    fn runs_match_rules_around_transitions() {
        let expressions = [
            "0 */15 * * * *",
            "*/20 */7 * * * *",
            "0 30 2 * * *",
            "0 0,30 2 * * *",
            "0 */15 2 * * *",
            "0 0 */2 * * *",
            "0 0 1-3 * * *",
            "30 * 1,2 * * *",
            "0 15,45 1 * * *",
        ];
        // Each window starts three hours before a transition and ends three
        // hours after it.
        let windows = [
            ("Europe/Paris", "2026-03-28T22:00:00Z"),
            ("Europe/Paris", "2026-10-24T22:00:00Z"),
            ("America/New_York", "2026-03-08T04:00:00Z"),
            ("America/New_York", "2026-11-01T03:00:00Z"),
            ("Australia/Lord_Howe", "2026-04-04T12:00:00Z"),
            ("Australia/Lord_Howe", "2026-10-03T12:30:00Z"),
        ];
        for (time_zone, start) in windows {
            let start = at(start);
            let end = start + TimeDelta::hours(6);
            for expression in expressions {
                let schedule = cron_schedule(expression, time_zone);
                let expected = runs_by_rule(&schedule, start, end);
                let actual = runs_between(&Schedule::Cron(schedule), start, end);
                assert_eq!(
                    actual, expected,
                    "`{expression}` in {time_zone} from {start}"
                );
            }
        }
    }

    // Stored columns

    #[test]
    fn parts_round_trip_every() {
        let schedule = Schedule::every(900).expect("900 is valid");
        let (repeat_interval, cron, time_zone) = schedule.to_parts();
        let parsed = Schedule::from_parts(repeat_interval, cron.as_deref(), time_zone.as_deref());
        assert_eq!(parsed, Ok(schedule));
    }

    #[test]
    fn parts_of_every() {
        let schedule = Schedule::every(900).expect("900 is valid");
        assert_eq!(schedule.to_parts(), (Some(900), None, None));
    }

    #[test]
    fn parts_round_trip_cron() {
        let schedule = cron("0 */5 * * * *", "Europe/Paris");
        let (repeat_interval, cron, time_zone) = schedule.to_parts();
        let parsed = Schedule::from_parts(repeat_interval, cron.as_deref(), time_zone.as_deref());
        assert_eq!(parsed, Ok(schedule));
    }

    #[test]
    fn parts_of_cron() {
        let schedule = cron("0 */5 * * * *", "Europe/Paris");
        let expected = (
            None,
            Some("0 */5 * * * *".to_owned()),
            Some("Europe/Paris".to_owned()),
        );
        assert_eq!(schedule.to_parts(), expected);
    }

    #[test]
    fn from_parts_defaults_time_zone_to_utc() {
        let parsed = Schedule::from_parts(None, Some("0 */5 * * * *"), None);
        assert_eq!(parsed, Ok(cron("0 */5 * * * *", "UTC")));
    }

    #[test]
    fn from_parts_every_ignores_time_zone() {
        let parsed = Schedule::from_parts(Some(60), None, Some("Europe/Paris"));
        assert_eq!(parsed, Ok(Schedule::Every { seconds: 60 }));
    }

    #[test]
    fn from_parts_rejects_both() {
        let parsed = Schedule::from_parts(Some(60), Some("0 * * * * *"), None);
        let expected = ScheduleError::ExactlyOneRequired {
            repeat_interval: Some(60),
            cron: Some("0 * * * * *".to_owned()),
        };
        assert_eq!(parsed, Err(expected));
    }

    #[test]
    fn from_parts_rejects_neither() {
        let parsed = Schedule::from_parts(None, None, Some("UTC"));
        let expected = ScheduleError::ExactlyOneRequired {
            repeat_interval: None,
            cron: None,
        };
        assert_eq!(parsed, Err(expected));
    }

    #[test]
    fn from_parts_rejects_negative_interval() {
        let parsed = Schedule::from_parts(Some(-5), None, None);
        assert_eq!(parsed, Err(ScheduleError::NegativeInterval { seconds: -5 }));
    }

    #[test]
    fn from_parts_rejects_zero_interval() {
        assert_eq!(
            Schedule::from_parts(Some(0), None, None),
            Err(ScheduleError::ZeroInterval)
        );
    }

    #[test]
    fn from_parts_rejects_unknown_time_zone() {
        let parsed = Schedule::from_parts(None, Some("0 * * * * *"), Some("Mars/Base"));
        let expected = ScheduleError::UnknownTimeZone {
            name: "Mars/Base".to_owned(),
        };
        assert_eq!(parsed, Err(expected));
    }

    #[test]
    fn cron_equality_compares_time_zone() {
        assert_ne!(
            cron("0 * * * * *", "UTC"),
            cron("0 * * * * *", "Europe/Paris")
        );
    }

    #[test]
    fn cron_equality_ignores_spacing() {
        assert_eq!(cron("0  *  * * * *", "UTC"), cron("0 * * * * *", "UTC"));
    }

    // Display

    #[test]
    fn display_every_uses_largest_exact_unit() {
        let cases = [
            (1, "every 1s"),
            (5, "every 5s"),
            (90, "every 90s"),
            (120, "every 2m"),
            (900, "every 15m"),
            (3_600, "every 1h"),
            (5_400, "every 90m"),
            (86_400, "every 1d"),
            (172_800, "every 2d"),
            (90_000, "every 25h"),
        ];
        for (seconds, expected) in cases {
            let schedule = Schedule::every(seconds).expect("test intervals are valid");
            assert_eq!(schedule.to_string(), expected, "{seconds} seconds");
        }
    }

    #[test]
    fn display_every_zero_built_by_hand() {
        assert_eq!(Schedule::Every { seconds: 0 }.to_string(), "every 0s");
    }

    #[test]
    fn display_cron_shows_expression_and_zone() {
        let schedule = cron("0 */5 * * * *", "Europe/Paris");
        assert_eq!(schedule.to_string(), "cron `0 */5 * * * *` (Europe/Paris)");
    }

    // Error messages

    #[test]
    fn error_messages_name_value_and_fix() {
        let cases = [
            (
                ScheduleError::ZeroInterval,
                "invalid repeat interval 0: use a number of seconds of at least 1",
            ),
            (
                ScheduleError::NegativeInterval { seconds: -5 },
                "invalid repeat interval -5: use a number of seconds of at least 1",
            ),
            (
                ScheduleError::IntervalTooLarge {
                    seconds: 400_000_000,
                },
                "invalid repeat interval 400000000: use at most 315360000 seconds (10 years)",
            ),
            (
                ScheduleError::NoOccurrence {
                    expression: "0 0 0 30 2 *".to_owned(),
                },
                "cron expression `0 0 0 30 2 *` never fires: no date matches its day-of-month, \
                 month and day-of-week fields, so pick a day that exists in the chosen months",
            ),
            (
                ScheduleError::ExactlyOneRequired {
                    repeat_interval: Some(60),
                    cron: Some("0 * * * * *".to_owned()),
                },
                "invalid task schedule: both repeat interval 60 and cron expression \
                 `0 * * * * *` are set, but a task needs exactly one of them",
            ),
            (
                ScheduleError::ExactlyOneRequired {
                    repeat_interval: None,
                    cron: None,
                },
                "invalid task schedule: neither a repeat interval nor a cron expression is set, \
                 but a task needs exactly one of them",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(error.to_string(), expected, "{error:?}");
        }
    }
}
