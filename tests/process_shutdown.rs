//! Graceful shutdown: SIGTERM and SIGINT stop the runner from claiming, let
//! a running execution finish within the grace period, and record it
//! `killed` past it.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use quicksilver::{Execution, Status};
use support::describe;
use support::process::{HostProcess, Sandbox};
use support::TestDatabase;

/// The run time of the task that each test stops halfway.
const RUN_SECONDS: &str = "3";

/// One run of a 3 s task stopped by a signal one second in.
struct Stopped {
    run: Execution,
    all: Vec<Execution>,
    exit: Option<ExitStatus>,
    signalled_at: DateTime<Utc>,
    exited_at: Option<DateTime<Utc>>,
    runner: HostProcess,
    _sandbox: Sandbox,
}

fn stop_during_run(database: TestDatabase, signal: &str, grace_period: &str) -> Stopped {
    let sandbox = Sandbox::on(env!("CARGO_BIN_EXE_quicksilver-test-host"), database);
    let task = sandbox.add_task(&[
        "sleep_for",
        "--every",
        "60",
        "--next-run",
        "now",
        "--",
        "--seconds",
        RUN_SECONDS,
    ]);
    let mut runner = sandbox.spawn(&[
        "run-queue",
        "--sleep-duration",
        "0.5",
        "--grace-period",
        grace_period,
    ]);
    sandbox.wait_for_executions(task, Duration::from_secs(10), "an ongoing run", |runs| {
        runs.iter().any(|run| run.status == Status::Ongoing)
    });
    std::thread::sleep(Duration::from_secs(1));

    let signalled_at = Utc::now();
    runner.signal(signal);
    let exit = runner.wait(Duration::from_secs(15));
    let exited_at = runner.exited_at();
    let all = sandbox.executions_of_task(task);
    let run = all.first().cloned().expect("the task ran once");
    Stopped {
        run,
        all,
        exit,
        signalled_at,
        exited_at,
        runner,
        _sandbox: sandbox,
    }
}

fn assert_run_finishes(stopped: &Stopped, signal: &str) {
    let run = &stopped.run;
    assert_eq!(
        run.status,
        Status::Success,
        "the run ends success after SIG{signal} within the grace period:\n{}{}",
        describe(&stopped.all),
        stopped.runner.describe()
    );
    assert!(
        run.output.contains("woke after 3s"),
        "the run wrote its last line: {:?}",
        run.output
    );
    assert_exits_with_zero(stopped, signal);

    let ended = run.ended.expect("a finished run has an end time");
    let exited_at = stopped.exited_at.expect("the runner exited");
    let lag = exited_at - ended;
    assert!(
        lag >= TimeDelta::zero(),
        "the runner exits after the run ended at {ended}, not at {exited_at}"
    );
    assert!(
        lag <= TimeDelta::seconds(1),
        "the runner exits within 1 s of the run's end, took {lag}"
    );
    assert_nothing_ongoing(stopped);
}

fn assert_run_killed(stopped: &Stopped, signal: &str) {
    let run = &stopped.run;
    assert_eq!(
        run.status,
        Status::Killed,
        "the run is killed when the grace period ends first:\n{}{}",
        describe(&stopped.all),
        stopped.runner.describe()
    );
    let reason = run.output.lines().last().unwrap_or("");
    assert!(
        reason.contains(&format!("SIG{signal}")),
        "the reason names SIG{signal}: {reason:?}"
    );
    assert!(
        reason.contains("grace period of 0.5s"),
        "the reason names the grace period of 0.5s: {reason:?}"
    );
    assert!(
        !run.output.contains("woke after"),
        "the run was cut before its last line: {:?}",
        run.output
    );
    assert_exits_with_zero(stopped, signal);

    let exited_at = stopped.exited_at.expect("the runner exited");
    let took = exited_at - stopped.signalled_at;
    assert!(
        took <= TimeDelta::milliseconds(1500),
        "the runner exits within 1.5 s of SIG{signal} with a 0.5 s grace period, took {took}"
    );
    assert_nothing_ongoing(stopped);
}

fn assert_exits_with_zero(stopped: &Stopped, signal: &str) {
    assert!(
        stopped.exit.is_some_and(|status| status.code() == Some(0)),
        "the runner exits with 0 after SIG{signal}, got {:?}\n{}",
        stopped.exit,
        stopped.runner.describe()
    );
}

fn assert_nothing_ongoing(stopped: &Stopped) {
    assert!(
        stopped.all.iter().all(|run| run.status != Status::Ongoing),
        "no execution is left ongoing:\n{}",
        describe(&stopped.all)
    );
}

support::backend_tests! {
    #[test]
    fn sigterm_run_finishes_within_grace(database: TestDatabase);
}
fn sigterm_run_finishes_within_grace(database: TestDatabase) {
    let stopped = stop_during_run(database, "TERM", "10");
    assert_run_finishes(&stopped, "TERM");
}

support::backend_tests! {
    #[test]
    fn sigterm_run_killed_past_grace(database: TestDatabase);
}
fn sigterm_run_killed_past_grace(database: TestDatabase) {
    let stopped = stop_during_run(database, "TERM", "0.5");
    assert_run_killed(&stopped, "TERM");
}

support::backend_tests! {
    #[test]
    fn sigint_run_finishes_within_grace(database: TestDatabase);
}
fn sigint_run_finishes_within_grace(database: TestDatabase) {
    let stopped = stop_during_run(database, "INT", "10");
    assert_run_finishes(&stopped, "INT");
}

support::backend_tests! {
    #[test]
    fn sigint_run_killed_past_grace(database: TestDatabase);
}
fn sigint_run_killed_past_grace(database: TestDatabase) {
    let stopped = stop_during_run(database, "INT", "0.5");
    assert_run_killed(&stopped, "INT");
}

support::backend_tests! {
    #[test]
    fn sigterm_stops_idle_runner_at_once(database: TestDatabase);
}
fn sigterm_stops_idle_runner_at_once(database: TestDatabase) {
    let sandbox = Sandbox::on(env!("CARGO_BIN_EXE_quicksilver-test-host"), database);
    let mut runner = sandbox.spawn(&["run-queue"]);
    runner.wait_for_stderr("runner started", Duration::from_secs(10));

    let signalled = Instant::now();
    runner.signal("TERM");
    let exit = runner.wait(Duration::from_secs(5));
    let took = signalled.elapsed();

    assert!(
        exit.is_some_and(|status| status.code() == Some(0)),
        "the idle runner exits with 0 after SIGTERM, got {exit:?}\n{}",
        runner.describe()
    );
    assert!(
        took <= Duration::from_millis(500),
        "the idle runner exits within 0.5 s of SIGTERM, took {took:?}"
    );
}

support::backend_tests! {
    #[test]
    fn sigterm_kills_foreground_run(database: TestDatabase);
}
fn sigterm_kills_foreground_run(database: TestDatabase) {
    let sandbox = Sandbox::on(env!("CARGO_BIN_EXE_quicksilver-test-host"), database);
    let mut cli = sandbox.spawn(&["run", "sleep_for", "--seconds", "5"]);
    let started = support::process::wait_until(Duration::from_secs(10), || {
        cli.stdout().contains("sleeping").then_some(())
    });
    assert!(started.is_some(), "the run starts\n{}", cli.describe());

    cli.signal("TERM");
    let exit = cli.wait(Duration::from_secs(5));
    assert!(
        exit.is_some_and(|status| status.code() == Some(1)),
        "a foreground run stopped by SIGTERM exits with 1, got {exit:?}\n{}",
        cli.describe()
    );
    let runs = sandbox.executions_of_command("sleep_for");
    assert_eq!(
        runs.len(),
        1,
        "one execution is recorded:\n{}",
        describe(&runs)
    );
    assert_eq!(
        runs[0].status,
        Status::Killed,
        "status of the foreground run"
    );
    assert!(
        runs[0].output.contains("SIGTERM"),
        "the output names SIGTERM: {:?}",
        runs[0].output
    );
}
