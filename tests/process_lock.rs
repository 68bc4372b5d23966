//! Command locks across processes: runs of a `lock` command never overlap,
//! whether a runner or a person with `run` started them, and a run that
//! finds the lock held is recorded as skipped.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use quicksilver::{Execution, Status};
use support::describe;
use support::process::{HostOutput, Sandbox};
use support::TestDatabase;

support::backend_tests! {
    #[test]
    fn locked_command_never_overlaps_across_processes(database: TestDatabase);
}
fn locked_command_never_overlaps_across_processes(database: TestDatabase) {
    let sandbox = Sandbox::on(env!("CARGO_BIN_EXE_quicksilver-test-host"), database);

    // A person's run holds the lock first, so the runner's first claim
    // finds it taken.
    let mut first_cli =
        sandbox.spawn(&["run", "exclusive_sleep", "--seconds", "2", "--write", "cli"]);
    wait_for_stdout(&mut first_cli, "cli: sleeping");
    let task = sandbox.add_task(&["exclusive_sleep", "--every", "1", "--", "--seconds", "2"]);
    let mut runner = sandbox.spawn(&[
        "run-queue",
        "--sleep-duration",
        "0.5",
        "--grace-period",
        "10",
    ]);

    let mut cli_runs: Vec<HostOutput> = Vec::new();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(700));
        cli_runs.push(sandbox.run(&["run", "exclusive_sleep", "--seconds", "1"]));
    }
    let first_exit = first_cli.wait(Duration::from_secs(10));
    assert!(
        first_exit.is_some_and(|status| status.success()),
        "the first CLI run, which took the lock, exits with 0, got {first_exit:?}\n{}",
        first_cli.describe()
    );

    runner.signal("TERM");
    let runner_exit = runner.wait(Duration::from_secs(15));
    assert!(
        runner_exit.is_some_and(|status| status.success()),
        "the runner exits with 0 after SIGTERM, got {runner_exit:?}\n{}",
        runner.describe()
    );

    let runs = sandbox.executions_of_command("exclusive_sleep");
    let listing = describe(&runs);
    let mut successes: Vec<&Execution> = runs
        .iter()
        .filter(|run| run.status == Status::Success)
        .collect();
    successes.sort_by_key(|run| run.started);
    assert!(
        successes.iter().any(|run| run.task_id.is_none()),
        "a CLI run succeeded:\n{listing}"
    );
    assert!(
        successes.iter().any(|run| run.task_id == Some(task)),
        "a run of the task succeeded:\n{listing}"
    );
    for pair in successes.windows(2) {
        assert!(
            pair[0].ended <= pair[1].started,
            "successful runs #{} and #{} overlap:\n{listing}",
            pair[0].id,
            pair[1].id
        );
    }

    let skipped: Vec<&Execution> = runs
        .iter()
        .filter(|run| run.status == Status::Error)
        .collect();
    for run in &skipped {
        assert!(
            run.output.contains("skipped") && run.output.contains("is locked"),
            "error run #{} says it was skipped because the command is locked: {:?}",
            run.id,
            run.output
        );
    }
    assert!(
        skipped.iter().any(|run| run.task_id == Some(task)),
        "a run of the task found the lock held and was skipped:\n{listing}"
    );
    assert!(
        runs.iter()
            .all(|run| run.status == Status::Success || run.status == Status::Error),
        "every run succeeded or was skipped:\n{listing}"
    );

    for cli in &cli_runs {
        let id = reported_execution(cli);
        match cli.code() {
            Some(0) => assert_eq!(
                id,
                None,
                "a successful run reports no failure\n{}",
                cli.describe()
            ),
            Some(1) => {
                let id = id.unwrap_or_else(|| {
                    panic!("a failed run names its execution\n{}", cli.describe())
                });
                let run = runs
                    .iter()
                    .find(|run| run.id == id)
                    .unwrap_or_else(|| panic!("execution {id} is recorded:\n{listing}"));
                assert_eq!(run.status, Status::Error, "status of skipped CLI run #{id}");
                assert!(
                    cli.stderr.contains("skipped"),
                    "the CLI says the run was skipped\n{}",
                    cli.describe()
                );
            }
            other => panic!(
                "a CLI run exits with 0 or 1, got {other:?}\n{}",
                cli.describe()
            ),
        }
    }
    assert!(
        cli_runs.iter().any(|cli| cli.code() == Some(1)),
        "a CLI run started while the runner held the lock exits with 1:\n{}",
        cli_runs
            .iter()
            .map(HostOutput::describe)
            .collect::<Vec<_>>()
            .join("\n")
    );

    let task_row = sandbox.task(task);
    let offset = task_row.next_run - Utc::now();
    assert!(
        offset.abs() <= TimeDelta::seconds(5),
        "the task's next run {} is within 5 s of now, {offset} away",
        task_row.next_run
    );
    assert!(!task_row.paused, "the task is still active");
}

fn wait_for_stdout(process: &mut support::process::HostProcess, text: &str) {
    let seen = support::process::wait_until(Duration::from_secs(10), || {
        process.stdout().contains(text).then_some(())
    });
    assert!(
        seen.is_some(),
        "`{text}` on stdout within 10 s\n{}",
        process.describe()
    );
}

/// Returns the execution id in the CLI's `execution N ended ...` line.
fn reported_execution(output: &HostOutput) -> Option<i64> {
    output.stderr.lines().find_map(|line| {
        let rest = line.strip_prefix("execution ")?;
        let (id, tail) = rest.split_once(' ')?;
        tail.starts_with("ended").then(|| id.parse().ok()).flatten()
    })
}
