//! Commands: the named async functions that tasks run.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::context::Context;

/// The boxed error type that a command's failure is turned into.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The future that a registered command's entry point returns.
pub type CommandFuture = Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>;

/// The signature of the entry point that `#[quicksilver::command]` generates.
pub type StartFn = fn(Context, &[String]) -> Result<CommandFuture, ArgumentError>;

/// A command registered with `#[quicksilver::command]`.
///
/// The macro submits one descriptor per command to [`inventory`]; the runner
/// and the CLI find them by name with [`find_command`].
#[derive(Debug)]
pub struct CommandDescriptor {
    name: &'static str,
    lock: bool,
    module: &'static str,
    start: StartFn,
}

impl CommandDescriptor {
    #[doc(hidden)]
    pub const fn new(name: &'static str, lock: bool, module: &'static str, start: StartFn) -> Self {
        CommandDescriptor {
            name,
            lock,
            module,
            start,
        }
    }

    /// Returns the name tasks use to run this command.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Returns whether the command is exclusive: never two runs at once on
    /// a machine.
    pub fn is_locked(&self) -> bool {
        self.lock
    }

    /// Returns the module path of the function that defines the command.
    pub fn module(&self) -> &'static str {
        self.module
    }

    /// Parses `arguments` and returns the command's future.
    ///
    /// # Errors
    ///
    /// - [`ArgumentError`] when the arguments do not parse, with clap's
    ///   message.
    pub fn start(
        &self,
        context: Context,
        arguments: &[String],
    ) -> Result<CommandFuture, ArgumentError> {
        (self.start)(context, arguments)
    }
}

inventory::collect!(CommandDescriptor);

/// Returns the command registered under `name`, if any.
pub fn find_command(name: &str) -> Option<&'static CommandDescriptor> {
    registry().get(name).copied()
}

/// Returns every registered command, sorted by name.
pub fn commands() -> Vec<&'static CommandDescriptor> {
    let mut all: Vec<_> = registry().values().copied().collect();
    all.sort_by_key(|descriptor| descriptor.name);
    all
}

/// Returns the names that more than one command registers, with the modules
/// that register them.
///
/// The registry keeps the first of each name, so a duplicate makes the other
/// function unreachable. The runner does not start while this is not empty.
pub fn duplicate_commands() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut modules: HashMap<&'static str, Vec<&'static str>> = HashMap::new();
    for descriptor in inventory::iter::<CommandDescriptor> {
        modules
            .entry(descriptor.name)
            .or_default()
            .push(descriptor.module);
    }
    let mut duplicates: Vec<_> = modules
        .into_iter()
        .filter(|(_, modules)| modules.len() > 1)
        .map(|(name, mut modules)| {
            modules.sort_unstable();
            (name, modules)
        })
        .collect();
    duplicates.sort_unstable();
    duplicates
}

fn registry() -> &'static HashMap<&'static str, &'static CommandDescriptor> {
    static REGISTRY: OnceLock<HashMap<&'static str, &'static CommandDescriptor>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut map = HashMap::new();
        for descriptor in inventory::iter::<CommandDescriptor> {
            map.entry(descriptor.name).or_insert(descriptor);
        }
        map
    })
}

/// Checks that `command` is registered and accepts `arguments`, without
/// running it, and returns the reason when it does not, naming the value.
pub(crate) fn check_command(
    store: &crate::Store,
    command: &str,
    arguments: &[String],
) -> Result<(), String> {
    let Some(descriptor) = find_command(command) else {
        let known: Vec<&str> = commands()
            .iter()
            .map(|descriptor| descriptor.name())
            .collect();
        return Err(format!(
            "unknown command `{command}`: this program registers {}",
            if known.is_empty() {
                "no commands".to_owned()
            } else {
                known.join(", ")
            }
        ));
    };
    // Starting a command parses its arguments and builds its future; the
    // future is dropped without being polled, so nothing runs.
    let probe = Context::new(crate::context::ContextParts {
        store: store.clone(),
        clock: std::sync::Arc::new(crate::clock::SystemClock),
        output: std::sync::Arc::new(crate::output::OutputBuffer::new(0, false)),
        command: command.to_owned(),
        task_id: None,
        execution_id: 0,
        due_at: None,
        started_at: Utc::now(),
    });
    descriptor
        .start(probe, arguments)
        .map(drop)
        .map_err(|error| error.to_string())
}

/// The error returned when a task's arguments do not fit its command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid arguments for command `{command}`: {message}")]
pub struct ArgumentError {
    command: String,
    message: String,
}

impl ArgumentError {
    /// Creates an error for `command` with a message giving the reason.
    pub fn new(command: impl Into<String>, message: impl Into<String>) -> Self {
        ArgumentError {
            command: command.into(),
            message: message.into(),
        }
    }

    /// Returns the command whose arguments were rejected.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Returns the reason, as clap rendered it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// When a command wants its task to run next, in place of the schedule.
///
/// A command returns it (alone or inside `Ok`) to set its own next run, as
/// the original's `_qs_next_run` did. Without it the schedule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextRun {
    /// The task's schedule decides.
    Schedule,
    /// The task runs next at this instant.
    At(DateTime<Utc>),
    /// The task runs next this long after the run ended.
    After(Duration),
}

/// The result a finished command reports to the runner.
#[derive(Debug)]
pub struct Outcome {
    pub(crate) result: Result<NextRun, BoxError>,
}

impl Outcome {
    /// Creates a successful outcome.
    pub fn success(next_run: NextRun) -> Self {
        Outcome {
            result: Ok(next_run),
        }
    }

    /// Creates a failed outcome from an error.
    pub fn failure(error: impl Into<BoxError>) -> Self {
        Outcome {
            result: Err(error.into()),
        }
    }

    /// Returns whether the command succeeded.
    pub fn is_success(&self) -> bool {
        self.result.is_ok()
    }
}

/// The return types a command may have.
///
/// Implemented for `()`, [`NextRun`], `Option<DateTime<Utc>>` (`None` leaves
/// the schedule in charge), and `Result<T, E>` where `T` is one of those and
/// `E` converts into a boxed error (any `std::error::Error`,
/// `anyhow::Error`, `String`, `&str`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a return type a quicksilver command can have",
    label = "this command returns `{Self}`",
    note = "return `()`, `quicksilver::NextRun`, `Option<DateTime<Utc>>`, or `Result<T, E>` with one of those as `T` and an error type as `E`"
)]
pub trait IntoOutcome {
    /// Converts the command's return value.
    fn into_outcome(self) -> Outcome;
}

impl IntoOutcome for () {
    fn into_outcome(self) -> Outcome {
        Outcome::success(NextRun::Schedule)
    }
}

impl IntoOutcome for NextRun {
    fn into_outcome(self) -> Outcome {
        Outcome::success(self)
    }
}

impl IntoOutcome for Option<DateTime<Utc>> {
    fn into_outcome(self) -> Outcome {
        Outcome::success(self.map_or(NextRun::Schedule, NextRun::At))
    }
}

impl<T, E> IntoOutcome for Result<T, E>
where
    T: IntoOutcome,
    E: Into<BoxError>,
{
    fn into_outcome(self) -> Outcome {
        match self {
            Ok(value) => value.into_outcome(),
            Err(error) => Outcome::failure(error),
        }
    }
}

/// Formats an error and each of its sources, one per line.
pub(crate) struct CauseChain<'a>(pub(crate) &'a (dyn StdError + 'static));

impl fmt::Display for CauseChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, "\ncaused by: {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// Parses a task's argument list with clap, for generated code.
pub(crate) fn parse_arguments<A: clap::Parser>(
    command: &str,
    arguments: &[String],
) -> Result<A, ArgumentError> {
    let words = std::iter::once(command.to_owned()).chain(arguments.iter().cloned());
    A::try_parse_from(words).map_err(|error| {
        // clap renders several lines for a terminal. Keep the reason and the
        // usage, on one line.
        let rendered = error.render().to_string();
        let lines: Vec<&str> = rendered
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("For more information"))
            .map(|line| line.strip_prefix("error: ").unwrap_or(line))
            .collect();
        ArgumentError::new(command, lines.join("; "))
    })
}

/// Rejects arguments given to a command that takes none, for generated code.
pub(crate) fn expect_no_arguments(
    command: &str,
    arguments: &[String],
) -> Result<(), ArgumentError> {
    match arguments.first() {
        None => Ok(()),
        Some(first) => Err(ArgumentError::new(
            command,
            format!(
                "the command takes no arguments but {} were given (first: `{first}`); \
                 remove them from the task",
                arguments.len()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser, Debug)]
    struct Sample {
        #[arg(long)]
        name: String,
    }

    #[test]
    fn parse_arguments_keeps_spaces_and_equals() {
        let parsed: Sample =
            parse_arguments("sample", &["--name".into(), "a = b  c".into()]).unwrap();
        assert_eq!(parsed.name, "a = b  c");
    }

    #[test]
    fn parse_arguments_names_command_on_error() {
        let error = parse_arguments::<Sample>("sample", &["--nope".into()]).unwrap_err();
        assert_eq!(error.command(), "sample");
        assert!(error.message().contains("--nope"), "{}", error.message());
    }

    #[test]
    fn no_arguments_rejects_extra_words() {
        assert!(expect_no_arguments("beat", &[]).is_ok());
        let error = expect_no_arguments("beat", &["x".into()]).unwrap_err();
        assert!(error.to_string().contains("`x`"), "{error}");
    }

    #[test]
    fn result_outcome_keeps_next_run() {
        let at = Utc::now();
        let outcome = Ok::<_, std::io::Error>(NextRun::At(at)).into_outcome();
        assert_eq!(outcome.result.unwrap(), NextRun::At(at));
    }

    #[test]
    fn cause_chain_lists_sources() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer failed")]
        struct Outer(#[source] std::io::Error);
        let error = Outer(std::io::Error::other("disk gone"));
        assert_eq!(
            CauseChain(&error).to_string(),
            "outer failed\ncaused by: disk gone"
        );
    }
}
