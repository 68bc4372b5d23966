//! Queue locks across processes: one runner per queue per machine, while
//! runners of other queues share the database with it.

use std::time::Duration;

use quicksilver::{Execution, Status};
use support::describe;
use support::process::{HostProcess, Sandbox};
use support::TestDatabase;

fn sandbox(database: TestDatabase) -> Sandbox {
    Sandbox::on(env!("CARGO_BIN_EXE_quicksilver-test-host"), database)
}

fn start_runner(sandbox: &Sandbox, args: &[&str]) -> HostProcess {
    let mut full = vec!["run-queue", "--sleep-duration", "0.5"];
    full.extend_from_slice(args);
    let mut runner = sandbox.spawn(&full);
    runner.wait_for_stderr("runner started", Duration::from_secs(10));
    runner
}

support::backend_tests! {
    #[test]
    fn second_runner_of_queue_exits_at_once(database: TestDatabase);
}
fn second_runner_of_queue_exits_at_once(database: TestDatabase) {
    let sandbox = sandbox(database);
    let mut first = start_runner(&sandbox, &[]);

    let second = sandbox.run(&["run-queue"]);

    assert_eq!(
        second.code(),
        Some(0),
        "exit code of the second runner\n{}",
        second.describe()
    );
    assert!(
        second.elapsed < Duration::from_secs(1),
        "the second runner took {:?} to exit\n{}",
        second.elapsed,
        second.describe()
    );
    assert!(
        second.stderr.contains("queue `default` is taken"),
        "the second runner says the queue is taken\n{}",
        second.describe()
    );
    assert!(
        first.is_running(),
        "the first runner still runs after the second exits\n{}",
        first.describe()
    );
}

support::backend_tests! {
    #[test]
    fn runners_of_two_queues_share_database(database: TestDatabase);
}
fn runners_of_two_queues_share_database(database: TestDatabase) {
    let sandbox = sandbox(database);
    let default_task = sandbox.add_task(&["sleep_for", "--every", "1", "--", "--seconds", "1"]);
    let other_task = sandbox.add_task(&[
        "sleep_for",
        "--every",
        "1",
        "--queue",
        "other",
        "--",
        "--seconds",
        "1",
    ]);
    let mut default_runner = start_runner(&sandbox, &[]);
    let mut other_runner = start_runner(&sandbox, &["--task-queue", "other"]);

    std::thread::sleep(Duration::from_secs(6));
    default_runner.signal("TERM");
    other_runner.signal("TERM");
    let default_exit = default_runner.wait(Duration::from_secs(10));
    let other_exit = other_runner.wait(Duration::from_secs(10));

    assert!(
        default_exit.is_some_and(|status| status.success()),
        "the default runner exits with 0 after SIGTERM, got {default_exit:?}\n{}",
        default_runner.describe()
    );
    assert!(
        other_exit.is_some_and(|status| status.success()),
        "the other runner exits with 0 after SIGTERM, got {other_exit:?}\n{}",
        other_runner.describe()
    );

    let default_runs = sandbox.executions_of_task(default_task);
    let other_runs = sandbox.executions_of_task(other_task);
    for (queue, runs) in [("default", &default_runs), ("other", &other_runs)] {
        let listing = describe(runs);
        assert!(
            runs.len() >= 3,
            "queue {queue} ran its 1 s task at least 3 times in 6 s:\n{listing}"
        );
        assert!(
            runs.iter().all(|run| run.status == Status::Success),
            "every execution of queue {queue} succeeded:\n{listing}"
        );
        assert!(
            runs.iter().all(|run| run.queue.as_deref() == Some(queue)),
            "every execution of task on queue {queue} records that queue:\n{listing}"
        );
    }

    let parallel = default_runs
        .iter()
        .any(|run| other_runs.iter().any(|other| overlap(run, other)));
    assert!(
        parallel,
        "runs of the two queues overlap in time\ndefault:\n{}other:\n{}",
        describe(&default_runs),
        describe(&other_runs)
    );

    for runner in [&default_runner, &other_runner] {
        let stderr = runner.stderr();
        let locked: Vec<&str> = stderr
            .lines()
            .filter(|line| line.contains("database is locked"))
            .collect();
        assert!(
            locked.is_empty(),
            "no stderr line says the database is locked: {locked:#?}"
        );
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|line| line.to_lowercase().contains("error"))
            .collect();
        assert!(
            errors.is_empty(),
            "no stderr line reports an error: {errors:#?}"
        );
    }
}

fn overlap(first: &Execution, second: &Execution) -> bool {
    match (first.started, first.ended, second.started, second.ended) {
        (Some(first_start), Some(first_end), Some(second_start), Some(second_end)) => {
            first_start < second_end && second_start < first_end
        }
        _ => false,
    }
}
