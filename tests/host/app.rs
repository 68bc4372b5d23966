//! The host application that the process-level tests start, signal and kill.
//!
//! It is quicksilver's CLI with a few commands of its own: `sleep_for` and
//! the locked `exclusive_sleep` take a set time, and `beat` returns at once.
//! Two task declarations, one on the `other` queue, give `install-tasks` and
//! `check` something to install.
//!
//! ```text
//! cargo build --bin quicksilver-test-host
//! QUICKSILVER_DATABASE_URL=/tmp/host.sqlite3 target/debug/quicksilver-test-host tasks
//! ```

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use quicksilver::cli::Cli;
use quicksilver::{Context, TaskDeclaration};
use tracing_subscriber::prelude::*;

/// Arguments of `sleep_for` and `exclusive_sleep`.
#[derive(Debug, clap::Parser)]
struct SleepArgs {
    /// How long the command sleeps, in seconds.
    #[arg(long)]
    seconds: f64,

    /// Text written at the start of the lines before and after the sleep.
    #[arg(long, default_value = "sleep")]
    write: String,
}

/// Sleeps, writing a line before and after.
#[quicksilver::command]
async fn sleep_for(ctx: &Context, args: SleepArgs) {
    sleep_between_lines(ctx, &args).await;
}

/// Sleeps like `sleep_for`, but never two runs at once on the machine.
#[quicksilver::command(lock)]
async fn exclusive_sleep(ctx: &Context, args: SleepArgs) {
    sleep_between_lines(ctx, &args).await;
}

/// Writes one line.
#[quicksilver::command]
async fn beat(ctx: &Context) {
    ctx.write_line(format!("beat at {}", ctx.now().to_rfc3339()));
}

async fn sleep_between_lines(ctx: &Context, args: &SleepArgs) {
    ctx.write_line(format!("{}: sleeping for {}s", args.write, args.seconds));
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    ctx.write_line(format!("{}: woke after {}s", args.write, args.seconds));
}

quicksilver::declare_task!(TaskDeclaration::every("beat", 1));
quicksilver::declare_task!(TaskDeclaration::every("sleep_for", 30)
    .arguments(&["--seconds", "1"])
    .queue("other"));

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr_layer)
        .with(quicksilver::capture_layer())
        .init();

    Cli::parse().run().await
}
