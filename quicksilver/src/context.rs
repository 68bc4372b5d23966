//! The context a command runs in.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::output::OutputBuffer;
use crate::store::Store;

/// The environment of a running command: its output, the store, the ids
/// of its task and execution, and the time.
///
/// Cheap to clone; clones share one output.
#[derive(Clone)]
pub struct Context {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    store: Store,
    clock: Arc<dyn Clock>,
    output: Arc<OutputBuffer>,
    command: String,
    task_id: Option<i64>,
    execution_id: i64,
    due_at: Option<DateTime<Utc>>,
    started_at: DateTime<Utc>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("command", &self.inner.command)
            .field("task_id", &self.inner.task_id)
            .field("execution_id", &self.inner.execution_id)
            .finish_non_exhaustive()
    }
}

pub(crate) struct ContextParts {
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) output: Arc<OutputBuffer>,
    pub(crate) command: String,
    pub(crate) task_id: Option<i64>,
    pub(crate) execution_id: i64,
    pub(crate) due_at: Option<DateTime<Utc>>,
    pub(crate) started_at: DateTime<Utc>,
}

impl Context {
    pub(crate) fn new(parts: ContextParts) -> Self {
        Context {
            inner: Arc::new(ContextInner {
                store: parts.store,
                clock: parts.clock,
                output: parts.output,
                command: parts.command,
                task_id: parts.task_id,
                execution_id: parts.execution_id,
                due_at: parts.due_at,
                started_at: parts.started_at,
            }),
        }
    }

    /// Appends `text` to the execution's output as it is.
    pub fn write(&self, text: impl AsRef<str>) {
        self.inner.output.push(text.as_ref());
    }

    /// Appends `text` and a newline to the execution's output.
    pub fn write_line(&self, text: impl AsRef<str>) {
        let text = text.as_ref();
        let mut line = String::with_capacity(text.len() + 1);
        line.push_str(text);
        line.push('\n');
        self.inner.output.push(&line);
    }

    /// Returns the store of tasks and executions.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Returns the name of the running command.
    pub fn command(&self) -> &str {
        &self.inner.command
    }

    /// Returns the id of the task, or `None` for a foreground `run`.
    pub fn task_id(&self) -> Option<i64> {
        self.inner.task_id
    }

    /// Returns the id of this run's execution.
    pub fn execution_id(&self) -> i64 {
        self.inner.execution_id
    }

    /// Returns the scheduled time of the tick this run serves, or `None`
    /// for a foreground `run`.
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        self.inner.due_at
    }

    /// Returns when this run started.
    pub fn started_at(&self) -> DateTime<Utc> {
        self.inner.started_at
    }

    /// Returns the current time from the runner's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }
}
