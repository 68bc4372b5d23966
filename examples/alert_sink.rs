//! A sink of one's own: alerts as JSON lines, the way a webhook or chat
//! sink would post them.
//!
//! A task fails every 2 seconds and opts in to failure alerts; the runner
//! evaluates the rules every second and postpones each task's alerts for
//! 10 seconds, so about one alert in five failures reaches the sink.
//!
//! ```text
//! cargo run --example alert_sink -- --seconds 25
//! ```
//!
//! A webhook sink replaces the body of `send` with a POST of the same JSON
//! through the host's HTTP client; an error it returns is logged by the
//! runner, and the alert is tried again at the next evaluation.

use std::io::Write as _;
use std::time::Duration;

use clap::Parser;
use quicksilver::alert::{Alert, AlertSettings, AlertSink, SinkFuture};
use quicksilver::{Context, NewTask, Runner, Schedule, Store};

/// Fails on every run, as a job whose upstream is down would.
#[quicksilver::command]
async fn sync_upstream(_ctx: &Context) -> Result<(), std::io::Error> {
    Err(std::io::Error::other(
        "upstream returned 503 Service Unavailable",
    ))
}

/// Writes each alert to standard output as one line of JSON.
struct JsonLines;

impl AlertSink for JsonLines {
    fn name(&self) -> &str {
        "json-lines"
    }

    fn send<'a>(&'a self, alert: &'a Alert) -> SinkFuture<'a> {
        Box::pin(async move {
            let line = serde_json::to_string(alert)?;
            writeln!(std::io::stdout().lock(), "{line}")?;
            Ok(())
        })
    }
}

/// Options of the example.
#[derive(Debug, Parser)]
struct Options {
    /// Seconds to run before stopping.
    #[arg(long, default_value_t = 25)]
    seconds: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let options = Options::parse();
    let folder = tempfile::tempdir()?;
    let store = Store::open(&folder.path().join("alerts.sqlite3").to_string_lossy()).await?;
    store
        .add_task(NewTask::new("sync_upstream", Schedule::every(2)?).alert_on_failure(true))
        .await?;

    let mut settings = AlertSettings::default();
    settings.check_interval = Duration::from_secs(1);
    settings.postpone = Duration::from_secs(10);
    Runner::run_queue("default")
        .store(store)
        .lock_dir(folder.path())
        .alerts(settings)
        .alert_sink(JsonLines)
        .shutdown_signal(tokio::time::sleep(Duration::from_secs(options.seconds)))
        .run()
        .await?;
    Ok(())
}
