//! Housekeeping commands that ship with quicksilver.
//!
//! They are ordinary commands, declared with the same macro and declaration
//! as a host's own, and double as examples of both.

use chrono::TimeDelta;

use crate::context::Context;
use crate::execution::Status;
use crate::store::StoreError;
use crate::task::TaskDeclaration;

/// Arguments of `clear_successful_executions`.
#[derive(Debug, clap::Parser)]
#[command(about = "Deletes successful executions that ended more than --before-minutes ago")]
struct ClearSuccessful {
    /// Age in minutes past which successful executions are deleted.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..))]
    before_minutes: u32,
}

/// Deletes old successful executions; failed, killed and ongoing ones stay
/// for diagnosis.
#[crate::command]
async fn clear_successful_executions(
    ctx: &Context,
    args: ClearSuccessful,
) -> Result<(), StoreError> {
    let before = ctx.now() - TimeDelta::minutes(i64::from(args.before_minutes));
    let deleted = ctx
        .store()
        .delete_executions(Status::Success, before)
        .await?;
    ctx.write_line(format!(
        "deleted {deleted} successful executions that ended before {}",
        before.to_rfc3339()
    ));
    Ok(())
}

crate::declare_task!(TaskDeclaration::every("clear_successful_executions", 900));

/// Arguments of `clear_ongoing_executions`.
#[derive(Debug, clap::Parser)]
#[command(about = "Marks killed, or deletes, executions ongoing for more than --before-minutes")]
struct ClearOngoing {
    /// Age in minutes past which an ongoing execution counts as stuck.
    #[arg(long, default_value_t = 1440, value_parser = clap::value_parser!(u32).range(1..))]
    before_minutes: u32,

    /// Deletes stuck executions instead of marking them `killed`.
    #[arg(long)]
    delete: bool,
}

/// Ends executions stuck `ongoing`, such as those of a foreground `run`
/// whose process was killed.
///
/// It goes by age alone: a run still going after `--before-minutes` is
/// marked too, so choose an age above the longest legitimate run.
#[crate::command]
async fn clear_ongoing_executions(ctx: &Context, args: ClearOngoing) -> Result<(), StoreError> {
    let now = ctx.now();
    let before = now - TimeDelta::minutes(i64::from(args.before_minutes));
    let reason = format!(
        "killed: still ongoing after {} minutes, so clear_ongoing_executions (execution {}) \
         ended it",
        args.before_minutes,
        ctx.execution_id()
    );
    let cleared = ctx
        .store()
        .clear_ongoing(before, args.delete, reason, now)
        .await?;
    let verb = if args.delete {
        "deleted"
    } else {
        "marked killed"
    };
    ctx.write_line(format!(
        "{verb} {} executions ongoing since before {}",
        cleared.len(),
        before.to_rfc3339()
    ));
    for id in cleared {
        tracing::warn!(execution.id = id, "{verb} stuck execution");
    }
    Ok(())
}
