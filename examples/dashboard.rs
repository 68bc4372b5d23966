//! A host that serves quicksilver's web dashboard while it runs a few demo
//! tasks: one fast, one slow, and one that always fails.
//!
//! ```text
//! cargo run --example dashboard
//! cargo run --example dashboard -- --port 0 --seconds 60
//! QUICKSILVER_DASHBOARD_TOKEN=s3cret cargo run --example dashboard
//! ```
//!
//! The first line on standard output is the dashboard's address, such as
//! `listening on http://127.0.0.1:8080/quicksilver/`; with `--port 0` it
//! names the port the system picked. The server listens on 127.0.0.1 only.
//!
//! With `QUICKSILVER_DASHBOARD_TOKEN` set, every request needs it: as the
//! password of HTTP basic authentication with the user name `admin`
//! (browsers ask for it), or as `Authorization: Bearer <token>`. Without
//! it the dashboard is open to every local user, which suits a demo only.
//!
//! The tasks live in `quicksilver.sqlite3` in the current folder, or in
//! the database that `QUICKSILVER_DATABASE_URL` names. Ctrl-C or SIGTERM
//! stops the server and lets running executions finish.

use std::time::Duration;

use axum::response::Redirect;
use axum::routing::get;
use axum::Router;
use clap::Parser;
use quicksilver::dashboard::{Auth, Dashboard};
use quicksilver::{Context, Runner, Store, TaskDeclaration};
use tracing_subscriber::prelude::*;

/// The environment variable with the token that the dashboard requires.
const TOKEN_VAR: &str = "QUICKSILVER_DASHBOARD_TOKEN";

/// Writes a line and returns at once.
#[quicksilver::command]
async fn demo_fast(ctx: &Context) {
    ctx.write_line(format!("fast run due at {:?}", ctx.due_at()));
}

quicksilver::declare_task!(TaskDeclaration::every("demo_fast", 5).id("dashboard_demo.fast"));

/// Arguments of `demo_slow`.
#[derive(Debug, clap::Parser)]
struct SlowArgs {
    /// How long the run works, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

/// Works for a while, writing its progress, so the dashboard shows an
/// ongoing execution.
#[quicksilver::command]
async fn demo_slow(ctx: &Context, args: SlowArgs) {
    for second in 1..=args.seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        ctx.write_line(format!("worked {second} of {} seconds", args.seconds));
    }
}

quicksilver::declare_task!(TaskDeclaration::every("demo_slow", 60)
    .arguments(&["--seconds", "20"])
    .max_duration(120)
    .id("dashboard_demo.slow"));

/// Always fails, so the dashboard has failures to show.
#[quicksilver::command]
async fn demo_fail(ctx: &Context) -> Result<(), std::io::Error> {
    ctx.write_line("connecting to the demo service");
    Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "the demo service refused the connection",
    ))
}

quicksilver::declare_task!(TaskDeclaration::every("demo_fail", 30).id("dashboard_demo.fail"));

#[derive(Debug, Parser)]
#[command(about = "Serves quicksilver's dashboard on 127.0.0.1 while it runs demo tasks")]
struct Args {
    /// The port to listen on, on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 8080)]
    port: u16,

    /// Stops after this many seconds instead of waiting for Ctrl-C.
    #[arg(long, value_name = "SECONDS")]
    seconds: Option<u64>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(quicksilver::capture_layer())
        .init();
    let args = Args::parse();

    let store = Store::open_from_env().await?;
    let declared = quicksilver::declarations().map_err(|errors| format!("{errors:?}"))?;
    let installed = store
        .install(declared.into_iter().map(|declared| declared.task).collect())
        .await?;
    for task in installed {
        eprintln!("installed task {}: {}", task.id, task.command);
    }

    let mut dashboard = Dashboard::new(store.clone());
    match std::env::var(TOKEN_VAR) {
        Ok(token) if !token.is_empty() => {
            dashboard = dashboard.auth(Auth::basic("admin", token.clone()).or(Auth::bearer(token)));
            eprintln!("{TOKEN_VAR} is set: sign in as `admin` with the token as password");
        }
        _ => eprintln!("{TOKEN_VAR} is not set: the dashboard needs no credentials"),
    }
    // axum routes `/quicksilver` to the nested root but not `/quicksilver/`,
    // so the address with the slash redirects to it.
    let app = Router::new().nest("/quicksilver", dashboard.build()).route(
        "/quicksilver/",
        get(|| async { Redirect::to("../quicksilver") }),
    );

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let address = listener.local_addr()?;
    println!("listening on http://{address}/quicksilver/");

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut runner_stopped = stopped.clone();
    let runner = Runner::run_queue("default")
        .store(store.clone())
        // Four lanes, so that the slow task never holds up the fast one.
        .concurrency(4)
        .handle_signals(false)
        .shutdown_signal(async move {
            let _ = runner_stopped.wait_for(|stop| *stop).await;
        })
        .build()?;
    let runner = tokio::spawn(runner.run());

    let mut server_stopped = stopped.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = server_stopped.wait_for(|stop| *stop).await;
            })
            .await
    });

    wait_for_stop(args.seconds).await;
    eprintln!("stopping: waiting for running executions to finish");
    let _ = stop.send(true);
    server.await??;
    let reason = runner.await??;
    eprintln!("runner stopped: {reason:?}");
    Ok(())
}

/// Returns on Ctrl-C, on SIGTERM, or after `seconds` when set.
async fn wait_for_stop(seconds: Option<u64>) {
    let deadline = async {
        match seconds {
            Some(seconds) => tokio::time::sleep(Duration::from_secs(seconds)).await,
            None => std::future::pending().await,
        }
    };
    let terminate = async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut terminate) => {
                    terminate.recv().await;
                }
                Err(error) => {
                    eprintln!("cannot listen for SIGTERM ({error}); Ctrl-C still stops");
                    std::future::pending::<()>().await;
                }
            }
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
        () = deadline => {}
    }
}
