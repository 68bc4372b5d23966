//! The memory a host pays for quicksilver: a runner with a few tasks on the
//! default build (SQLite only), watched for a while, then its peak RSS.
//!
//! It is an example of the `quicksilver` package itself (in
//! `quicksilver/examples/`), so that it builds
//! with the crate's default features alone, without the PostgreSQL and
//! MySQL client libraries that the benchmark host links:
//!
//! ```text
//! cargo run --release -p quicksilver --example footprint -- --seconds 60
//! ```
//!
//! It prints a summary, then one JSON object with `peak_rss_mb`,
//! `executions` and the other figures.

use std::time::{Duration, Instant};

use quicksilver::{Context, NewTask, Runner, Schedule, Store};

/// A command that records its run and returns, like most recurring jobs.
#[quicksilver::command]
async fn touch(ctx: &Context) {
    ctx.write_line("touched");
}

/// Reads a `VmHWM`-style line of /proc/self/status, in megabytes.
fn status_megabytes(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kilobytes: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes / 1024.0)
}

/// Returns the value of `--name VALUE` on the command line, parsed.
fn option<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    let arguments: Vec<String> = std::env::args().collect();
    match arguments.iter().position(|argument| argument == name) {
        Some(index) => arguments
            .get(index + 1)
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| format!("{name} needs a value, such as {name} 60")),
        None => Ok(default),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = option("--seconds", 60)?;
    let tasks: u64 = option("--tasks", 5)?;
    let folder = tempfile::tempdir()?;
    let store = Store::open(&folder.path().join("footprint.sqlite3").to_string_lossy()).await?;
    for _ in 0..tasks {
        store
            .add_task(NewTask::new("touch", Schedule::every(1)?))
            .await?;
    }

    let started = Instant::now();
    Runner::run_queue("default")
        .store(store.clone())
        .lock_dir(folder.path())
        .handle_signals(false)
        .shutdown_signal(tokio::time::sleep(Duration::from_secs(seconds)))
        .run()
        .await?;
    let executions = store
        .executions(quicksilver::ExecutionFilter {
            limit: i64::MAX,
            ..Default::default()
        })
        .await?
        .len();
    let peak = status_megabytes("VmHWM:").unwrap_or(f64::NAN);
    let resident = status_megabytes("VmRSS:").unwrap_or(f64::NAN);

    println!("== footprint: {tasks} task(s) every 1 s for {seconds} s, SQLite-only build");
    println!("  executions         {executions}");
    println!("  peak RSS           {peak:.1} MB (resident at the end {resident:.1} MB)");
    println!();
    println!(
        "{}",
        serde_json::json!({
            "workload": "footprint",
            "tasks": tasks,
            "seconds": seconds,
            "executions": executions,
            "peak_rss_mb": (peak * 10.0).round() / 10.0,
            "rss_at_end_mb": (resident * 10.0).round() / 10.0,
            "wall_seconds": started.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}
