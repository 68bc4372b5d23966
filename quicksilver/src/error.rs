//! The crate's error type.

use crate::command::ArgumentError;
use crate::lock::LockError;
use crate::runner::RunnerError;
use crate::schedule::ScheduleError;
use crate::store::StoreError;
use crate::task::DeclarationError;

/// Any error of quicksilver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A store error.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An invalid schedule.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// Arguments that do not fit a command.
    #[error(transparent)]
    Arguments(#[from] ArgumentError),
    /// A lock file error.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A runner error.
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// An invalid task declaration.
    #[error(transparent)]
    Declaration(#[from] DeclarationError),
}

/// A `Result` with quicksilver's [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;
