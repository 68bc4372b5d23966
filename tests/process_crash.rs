//! Crashes: a runner killed with SIGKILL in the middle of a run leaves an
//! `ongoing` execution, which the next runner of the queue marks `killed`
//! before it runs the task again on its schedule.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use quicksilver::Status;
use support::describe;
use support::process::Sandbox;
use support::TestDatabase;

support::backend_tests! {
    #[test]
    fn next_runner_kills_orphaned_execution(database: TestDatabase);
}
fn next_runner_kills_orphaned_execution(database: TestDatabase) {
    let sandbox = Sandbox::on(env!("CARGO_BIN_EXE_quicksilver-test-host"), database);
    let task = sandbox.add_task(&["sleep_for", "--every", "2", "--", "--seconds", "30"]);

    let mut crashed = sandbox.spawn(&["run-queue", "--sleep-duration", "0.5"]);
    let runs =
        sandbox.wait_for_executions(task, Duration::from_secs(10), "an ongoing run", |runs| {
            runs.iter().any(|run| run.status == Status::Ongoing)
        });
    let orphan = runs
        .iter()
        .find(|run| run.status == Status::Ongoing)
        .map(|run| run.id)
        .expect("the wait returned an ongoing run");

    crashed.signal("KILL");
    let status = crashed.wait(Duration::from_secs(5));
    assert_eq!(
        status.and_then(|status| status.signal()),
        Some(9),
        "SIGKILL ends the first runner, got {status:?}\n{}",
        crashed.describe()
    );
    let left = sandbox.executions_of_task(task);
    assert!(
        left.iter()
            .any(|run| run.id == orphan && run.status == Status::Ongoing),
        "execution {orphan} is still recorded ongoing after the crash:\n{}",
        describe(&left)
    );

    let mut next = sandbox.spawn(&[
        "run-queue",
        "--sleep-duration",
        "0.5",
        "--grace-period",
        "0.5",
    ]);
    let runs = sandbox.wait_for_executions(
        task,
        Duration::from_secs(10),
        "the orphan killed and a new run ongoing",
        |runs| {
            let orphan_killed = runs
                .iter()
                .any(|run| run.id == orphan && run.status == Status::Killed);
            let new_run = runs
                .iter()
                .any(|run| run.id > orphan && run.status == Status::Ongoing);
            orphan_killed && new_run
        },
    );
    let killed = runs
        .iter()
        .find(|run| run.id == orphan)
        .expect("the orphan is still listed");
    assert!(
        killed.output.contains("runner") && killed.output.contains("stopped"),
        "the orphan's output says its runner stopped: {:?}",
        killed.output
    );
    assert!(
        killed.ended.is_some(),
        "the orphan has an end time:\n{}",
        describe(&runs)
    );
    assert!(
        next.stderr().contains("marked execution killed"),
        "the new runner logs that it marked the orphan killed\n{}",
        next.describe()
    );

    next.signal("TERM");
    let status = next.wait(Duration::from_secs(5));
    assert!(
        status.is_some_and(|status| status.success()),
        "the new runner exits with 0 after SIGTERM, got {status:?}\n{}",
        next.describe()
    );
    let runs = sandbox.executions_of_task(task);
    assert!(
        runs.iter().all(|run| run.status != Status::Ongoing),
        "no execution is left ongoing after a graceful stop:\n{}",
        describe(&runs)
    );
}

support::backend_tests! {
    #[test]
    fn runner_killed_while_idle_resumes_schedule(database: TestDatabase);
}
fn runner_killed_while_idle_resumes_schedule(database: TestDatabase) {
    let sandbox = Sandbox::on(env!("CARGO_BIN_EXE_quicksilver-test-host"), database);
    let task = sandbox.add_task(&["beat", "--every", "1"]);

    let mut crashed = sandbox.spawn(&["run-queue", "--sleep-duration", "0.5"]);
    sandbox.wait_for_executions(
        task,
        Duration::from_secs(10),
        "two successful runs",
        |runs| {
            runs.iter()
                .filter(|run| run.status == Status::Success)
                .count()
                >= 2
        },
    );
    crashed.signal("KILL");
    crashed.wait(Duration::from_secs(5));
    let before = sandbox.executions_of_task(task).len();

    let mut next = sandbox.spawn(&["run-queue", "--sleep-duration", "0.5"]);
    let runs = sandbox.wait_for_executions(
        task,
        Duration::from_secs(10),
        "two more successful runs by the new runner",
        |runs| {
            runs[before.min(runs.len())..]
                .iter()
                .filter(|run| run.status == Status::Success)
                .count()
                >= 2
        },
    );
    next.signal("TERM");
    next.wait(Duration::from_secs(5));

    let unfinished: Vec<_> = runs
        .iter()
        .filter(|run| run.status != Status::Success)
        .collect();
    assert!(
        unfinished.len() <= 1,
        "at most the run cut by SIGKILL did not succeed:\n{}",
        describe(&runs)
    );
    let runs = sandbox.executions_of_task(task);
    assert!(
        runs.iter().all(|run| run.status != Status::Ongoing),
        "no execution is left ongoing:\n{}",
        describe(&runs)
    );
}

support::backend_tests! {
    #[test]
    fn live_run_of_other_runner_is_spared(database: TestDatabase);
}
/// Two runners of one queue whose lock folders differ both start. The
/// second must not take the first one's live run for an orphan: killing
/// its record would let the task start again while the run goes on.
fn live_run_of_other_runner_is_spared(database: TestDatabase) {
    let sandbox = Sandbox::on(env!("CARGO_BIN_EXE_quicksilver-test-host"), database);
    let task = sandbox.add_task(&["sleep_for", "--every", "1", "--", "--seconds", "3"]);
    let other_locks = sandbox.folder().join("other-locks");
    std::fs::create_dir(&other_locks).expect("create a second lock folder");
    let other_locks = other_locks.to_str().expect("UTF-8 path");

    let mut first = sandbox.spawn(&["run-queue", "--sleep-duration", "0.5"]);
    let runs =
        sandbox.wait_for_executions(task, Duration::from_secs(10), "an ongoing run", |runs| {
            runs.iter().any(|run| run.status == Status::Ongoing)
        });
    let live = runs
        .iter()
        .find(|run| run.status == Status::Ongoing)
        .map(|run| run.id)
        .expect("the wait returned an ongoing run");

    let mut second = sandbox.spawn_with_env(
        &["run-queue", "--sleep-duration", "0.5"],
        &[("QUICKSILVER_LOCK_DIR", other_locks)],
    );
    second.wait_for_stderr("runner started", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(4));
    first.signal("TERM");
    second.signal("TERM");
    first.wait(Duration::from_secs(30));
    second.wait(Duration::from_secs(30));

    let runs = sandbox.executions_of_task(task);
    let listing = describe(&runs);
    let spared = runs
        .iter()
        .find(|run| run.id == live)
        .expect("the live run is still recorded");
    assert_eq!(
        spared.status,
        Status::Success,
        "the first runner's run ends as it ran, not killed by the second runner:\n{listing}"
    );
    let mut spans: Vec<_> = runs
        .iter()
        .filter(|run| run.status == Status::Success)
        .map(|run| (run.started, run.ended))
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "two runs of the task overlap: {pair:?}\n{listing}"
        );
    }
}
