//! A first host application: two commands of its own, the built-in
//! housekeeping commands, and quicksilver's CLI.
//!
//! With no subcommand it installs the declared tasks and runs every queue
//! they use, printing each execution as it ends, until Ctrl-C (or for
//! `--seconds N`). With a subcommand it is quicksilver's CLI:
//!
//! ```text
//! cargo run --example quickstart
//! cargo run --example quickstart -- --seconds 10
//! cargo run --example quickstart -- executions --status success --limit 5
//! cargo run --example quickstart -- tasks
//! cargo run --example quickstart -- run report --pause-seconds 1
//! ```
//!
//! The tasks live in `quicksilver.sqlite3` in the current folder, or in
//! the database that `QUICKSILVER_DATABASE_URL` names.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use quicksilver::cli::{Cli, CliOptions, Command};
use quicksilver::{Context, Runner, Store, TaskDeclaration};
use tracing_subscriber::prelude::*;

/// Writes one line a second, so there is always something to watch.
#[quicksilver::command]
async fn heartbeat(ctx: &Context) -> Result<(), std::io::Error> {
    let due = ctx.due_at().unwrap_or_else(|| ctx.now());
    ctx.write_line(format!("beat due at {}", due.format("%H:%M:%S%.3f")));
    Ok(())
}

quicksilver::declare_task!(TaskDeclaration::every("heartbeat", 1));

/// Arguments of `report`.
#[derive(Debug, clap::Parser)]
struct ReportArgs {
    /// Seconds the report pretends to work.
    #[arg(long, default_value_t = 3)]
    pause_seconds: u64,
}

/// A slower job on its own queue, so it never delays the heartbeat.
#[quicksilver::command(lock)]
async fn report(ctx: &Context, args: ReportArgs) -> Result<(), quicksilver::StoreError> {
    tracing::info!(pause_seconds = args.pause_seconds, "report started");
    tokio::time::sleep(Duration::from_secs(args.pause_seconds)).await;
    let recent = ctx
        .store()
        .executions(quicksilver::ExecutionFilter {
            status: Some(quicksilver::Status::Success),
            limit: 1000,
            ..Default::default()
        })
        .await?;
    ctx.write_line(format!("{} recent successful executions", recent.len()));
    Ok(())
}

quicksilver::declare_task!(TaskDeclaration::every("report", 10)
    .arguments(&["--pause-seconds", "3"])
    .queue("slow")
    .max_duration(60));

#[derive(Debug, Parser)]
#[command(about = "quicksilver's quickstart host application")]
struct Quickstart {
    #[command(flatten)]
    options: CliOptions,

    /// Stops after this many seconds when running the queues.
    #[arg(long, value_name = "SECONDS")]
    seconds: Option<u64>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(quicksilver::capture_layer())
        .init();

    let app = Quickstart::parse();
    if let Some(command) = app.command {
        let cli = Cli {
            options: app.options,
            command,
        };
        return Ok(cli.run().await);
    }

    let url = app
        .options
        .database
        .clone()
        .unwrap_or_else(quicksilver::store::database_url_from_env);
    let store = Store::open(&url).await?;
    let declared = quicksilver::declarations().map_err(|errors| format!("{errors:?}"))?;
    let queues: BTreeSet<String> = declared.iter().map(|d| d.task.queue.clone()).collect();
    for task in store
        .install(declared.into_iter().map(|d| d.task).collect())
        .await?
    {
        println!(
            "installed task {}: {} on queue {}",
            task.id, task.command, task.queue
        );
    }
    println!(
        "database: {}; running queues: {queues:?}; Ctrl-C stops",
        store.url()
    );

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut runners = tokio::task::JoinSet::new();
    for queue in queues {
        let mut stopped = stopped.clone();
        let runner = Runner::run_queue(queue)
            .store(store.clone())
            .on_execution_end(|execution| {
                let output = execution.summary();
                println!(
                    "execution {:>5}  {:<30} {:<8} {:>8.3}s  {output}",
                    execution.id,
                    execution.command,
                    execution.status.as_str(),
                    execution.runtime_seconds.unwrap_or_default(),
                );
            })
            .shutdown_signal(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            });
        runners.spawn(runner.run());
    }

    if let Some(seconds) = app.seconds {
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let _ = stop.send(true);
    }
    while let Some(stopped) = runners.join_next().await {
        println!("runner stopped: {:?}", stopped??);
    }
    Ok(ExitCode::SUCCESS)
}
