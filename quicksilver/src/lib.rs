#![doc = include_str!("../../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

// Lets the macros' `::quicksilver::...` paths resolve inside this crate too.
extern crate self as quicksilver;

mod builtins;
mod clock;
mod command;
mod context;
mod error;
mod execution;
mod lock;
mod output;
mod runner;
mod schedule;
mod task;

pub mod alert;
pub mod cli;
pub mod status;
pub mod store;

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;

#[cfg(feature = "dashboard")]
#[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
pub mod dashboard;

pub use crate::clock::{Clock, SystemClock, TestClock};
pub use crate::command::{
    commands, duplicate_commands, find_command, ArgumentError, BoxError, CommandDescriptor,
    IntoOutcome, NextRun, Outcome, StartFn,
};
pub use crate::context::Context;
pub use crate::error::{Error, Result};
pub use crate::execution::{Execution, ExecutionFilter, Status, UnknownStatus};
pub use crate::lock::{LockError, LOCK_DIR_VAR};
pub use crate::output::{capture_layer, CaptureLayer, OUTPUT_LIMIT};
pub use crate::runner::{
    Runner, RunnerBuilder, RunnerError, StopReason, DEFAULT_GRACE_PERIOD,
    DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_HEARTBEAT_TIMEOUT, DEFAULT_SLEEP_DURATION,
};
pub use crate::schedule::{CronSchedule, Schedule, ScheduleError};
pub use crate::store::{RunnerInfo, Store, StoreError};
pub use crate::task::{
    declarations, DeclarationError, Declared, NewTask, Task, TaskChanges, TaskDeclaration,
    TaskFilter, DEFAULT_QUEUE,
};

/// Marks an async fn as a quicksilver command and registers it by name.
///
/// The function takes `&quicksilver::Context` and, optionally, a second
/// parameter of a type that derives `clap::Parser`, parsed from the task's
/// argument list. It returns `()`, [`NextRun`], or a `Result` of either.
///
/// Options: `name = "..."` registers the command under another name than the
/// function's. `lock` makes it exclusive: no two runs of it overlap on the
/// machine, whether a runner or a person with `run` started them.
///
/// # Examples
///
/// ```
/// use quicksilver::Context;
///
/// #[derive(clap::Parser)]
/// struct Greeting {
///     #[arg(long, default_value = "world")]
///     name: String,
/// }
///
/// #[quicksilver::command(name = "greet", lock)]
/// async fn greet(ctx: &Context, args: Greeting) -> Result<(), std::io::Error> {
///     ctx.write_line(format!("hello, {}", args.name));
///     Ok(())
/// }
///
/// assert!(quicksilver::find_command("greet").unwrap().is_locked());
/// ```
pub use quicksilver_macros::command;

/// Registers a default task with `inventory`, for `install-tasks` and `check`.
///
/// The argument is a constant [`TaskDeclaration`] expression.
///
/// # Examples
///
/// ```
/// use quicksilver::TaskDeclaration;
///
/// quicksilver::declare_task!(TaskDeclaration::every("clear_successful_executions", 900));
/// quicksilver::declare_task!(
///     TaskDeclaration::cron("clear_ongoing_executions", "0 0 3 * * *", "Europe/Paris")
///         .arguments(&["--before-minutes", "1440"])
///         .id("nightly_ongoing_cleanup")
/// );
/// ```
#[macro_export]
macro_rules! declare_task {
    ($declaration:expr) => {
        $crate::__private::inventory::submit! {
            $crate::__private::DeclarationEntry::new($declaration, ::core::module_path!())
        }
    };
}

/// Items that generated code names by full path. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;

    pub use crate::command::{
        ArgumentError, CommandDescriptor, CommandFuture, IntoOutcome, Outcome, StartFn,
    };
    pub use crate::context::Context;
    pub use crate::task::DeclarationEntry;

    /// Parses a task's argument list into the command's clap type.
    pub fn parse_arguments<A: clap::Parser>(
        command: &str,
        arguments: &[String],
    ) -> Result<A, ArgumentError> {
        crate::command::parse_arguments(command, arguments)
    }

    /// Rejects arguments for a command that takes none.
    pub fn expect_no_arguments(command: &str, arguments: &[String]) -> Result<(), ArgumentError> {
        crate::command::expect_no_arguments(command, arguments)
    }

    /// Converts a command's return value, with a clear error for bad types.
    pub fn into_outcome<T: IntoOutcome>(value: T) -> Outcome {
        value.into_outcome()
    }
}
