//! Invalid input: the CLI rejects it with exit code 2 and one `error:` line
//! naming the value, and writes nothing. A task row broken by hand is
//! paused by the runner, which records an `error` execution with the cause
//! and goes on running the other tasks.

use std::time::Duration;

use diesel::sql_types::Bool;
use diesel::{Connection, QueryableByName, RunQueryDsl};
use diesel::{MysqlConnection, PgConnection, SqliteConnection};
use quicksilver::{Execution, Status};
use support::describe;
use support::process::Sandbox;
use support::{Backend, TestDatabase};

fn sandbox(database: TestDatabase) -> Sandbox {
    Sandbox::on(env!("CARGO_BIN_EXE_quicksilver-test-host"), database)
}

/// Creates a sandbox with one task and one execution, so that a stray
/// write shows in the listings.
fn sandbox_with_rows(database: TestDatabase) -> Sandbox {
    let sandbox = sandbox(database);
    sandbox.add_task(&["beat", "--every", "60"]);
    sandbox.run_ok(&["run", "beat"]);
    sandbox
}

/// Returns the task and execution listings as the CLI prints them in JSON.
fn snapshot(sandbox: &Sandbox) -> (String, String) {
    let tasks = sandbox.run_ok(&["tasks", "--json"]).stdout;
    let executions = sandbox
        .run_ok(&["executions", "--json", "--limit", "1000"])
        .stdout;
    (tasks, executions)
}

/// Returns whether `line` names `value`: as a whole word once quotes and
/// backticks are removed, or as a substring for values with spaces.
fn names_value(line: &str, value: &str) -> bool {
    let plain: String = line
        .chars()
        .filter(|c| !matches!(c, '`' | '\'' | '"'))
        .collect();
    if value.contains(' ') {
        return plain.contains(value);
    }
    plain
        .split_whitespace()
        .map(|word| {
            word.trim_end_matches([':', ',', ';', '.', ')'])
                .trim_start_matches('(')
        })
        .any(|word| word == value)
}

/// Runs the host with `args` on `database` and checks that it rejects
/// them: exit code 2, one `error:` line on stderr that names `value`, and no
/// change to the tasks and executions.
fn assert_rejected(database: TestDatabase, args: &[&str], value: &str) {
    let sandbox = sandbox_with_rows(database);
    let before = snapshot(&sandbox);

    let output = sandbox.run(args);

    assert_eq!(output.code(), Some(2), "exit code\n{}", output.describe());
    let errors = output.error_lines();
    assert_eq!(
        errors.len(),
        1,
        "one `error:` line on stderr\n{}",
        output.describe()
    );
    assert!(
        names_value(errors[0], value),
        "the error names `{value}`: {:?}",
        errors[0]
    );
    let after = snapshot(&sandbox);
    assert_eq!(after.0, before.0, "the tasks are unchanged");
    assert_eq!(after.1, before.1, "the executions are unchanged");
}

support::backend_tests! {
    #[test]
    fn tasks_add_rejects_unknown_command(database: TestDatabase) {
        assert_rejected(database, &["tasks", "add", "nope", "--every", "5"], "nope");
    }

    #[test]
    fn run_rejects_unknown_command(database: TestDatabase) {
        assert_rejected(database, &["run", "nope"], "nope");
    }

    #[test]
    fn tasks_add_rejects_zero_interval(database: TestDatabase) {
        assert_rejected(database, &["tasks", "add", "beat", "--every", "0"], "0");
    }

    #[test]
    fn tasks_add_rejects_text_interval(database: TestDatabase) {
        assert_rejected(database, &["tasks", "add", "beat", "--every", "abc"], "abc");
    }

    #[test]
    fn tasks_add_rejects_negative_interval(database: TestDatabase) {
        assert_rejected(database, &["tasks", "add", "beat", "--every", "-5"], "-5");
    }

    #[test]
    fn negative_interval_error_names_interval(database: TestDatabase) {
        let sandbox = sandbox(database);
        let output = sandbox.run(&["tasks", "add", "beat", "--every", "-5"]);
        let errors = output.error_lines();
        assert_eq!(
            errors.len(),
            1,
            "one `error:` line on stderr\n{}",
            output.describe()
        );
        assert!(
            errors[0].contains("invalid repeat interval"),
            "the error says the repeat interval is invalid: {:?}",
            errors[0]
        );
        assert!(
            !output.stderr.contains("'-- -5'"),
            "the CLI does not advise `-- -5`, which would pass -5 to the command\n{}",
            output.describe()
        );
    }

    #[test]
    fn tasks_add_rejects_short_cron(database: TestDatabase) {
        assert_rejected(database, &["tasks", "add", "beat", "--cron", "* * *"], "* * *");
    }

    #[test]
    fn tasks_add_rejects_cron_without_seconds(database: TestDatabase) {
        assert_rejected(
            database,
            &["tasks", "add", "beat", "--cron", "*/5 * * * *"],
            "*/5 * * * *",
        );
    }

    #[test]
    fn tasks_add_rejects_unknown_time_zone(database: TestDatabase) {
        assert_rejected(
            database,
            &[
                "tasks",
                "add",
                "beat",
                "--cron",
                "0 * * * * *",
                "--time-zone",
                "Mars/Base",
            ],
            "Mars/Base",
        );
    }

    #[test]
    fn tasks_add_rejects_time_zone_without_cron(database: TestDatabase) {
        assert_rejected(
            database,
            &[
                "tasks",
                "add",
                "beat",
                "--every",
                "5",
                "--time-zone",
                "Europe/Paris",
            ],
            "--time-zone",
        );
    }

    #[test]
    fn tasks_add_rejects_bad_next_run(database: TestDatabase) {
        assert_rejected(
            database,
            &[
                "tasks",
                "add",
                "beat",
                "--every",
                "5",
                "--next-run",
                "tomorrow",
            ],
            "tomorrow",
        );
    }

    #[test]
    fn tasks_add_rejects_bad_command_arguments(database: TestDatabase) {
        assert_rejected(
            database,
            &["tasks", "add", "sleep_for", "--every", "5", "--", "--nope"],
            "--nope",
        );
    }

    #[test]
    fn run_rejects_bad_command_arguments(database: TestDatabase) {
        assert_rejected(database, &["run", "sleep_for", "--nope"], "--nope");
    }

    #[test]
    fn tasks_edit_rejects_missing_task(database: TestDatabase) {
        assert_rejected(database, &["tasks", "edit", "999", "--every", "5"], "999");
    }

    #[test]
    fn tasks_add_rejects_unknown_alert_setting(database: TestDatabase) {
        assert_rejected(
            database,
            &[
                "tasks",
                "add",
                "beat",
                "--every",
                "5",
                "--alert-on-failure",
                "yes",
            ],
            "yes",
        );
    }

    #[test]
    fn tasks_edit_rejects_unknown_alert_setting(database: TestDatabase) {
        // The task of `sandbox_with_rows` is the first row of a fresh
        // database, so its id is 1.
        assert_rejected(
            database,
            &["tasks", "edit", "1", "--alert-on-failure", "always"],
            "always",
        );
    }

    #[test]
    fn tasks_pause_rejects_missing_task(database: TestDatabase) {
        assert_rejected(database, &["tasks", "pause", "999"], "999");
    }

    #[test]
    fn tasks_remove_rejects_missing_task(database: TestDatabase) {
        assert_rejected(database, &["tasks", "remove", "999"], "999");
    }

    #[test]
    fn executions_rejects_unknown_status(database: TestDatabase) {
        assert_rejected(database, &["executions", "--status", "done"], "done");
    }

    #[test]
    fn executions_rejects_zero_limit(database: TestDatabase) {
        assert_rejected(database, &["executions", "--limit", "0"], "0");
    }

    #[test]
    fn executions_rejects_negative_limit(database: TestDatabase) {
        assert_rejected(database, &["executions", "--limit", "-1"], "-1");
    }
}

// Runs on SQLite only, because a server database has no folder.
#[test]
fn database_in_missing_folder_is_rejected() {
    let database = TestDatabase::create(Backend::Sqlite).expect("SQLite is always enabled");
    let sandbox = sandbox_with_rows(database);
    let before = snapshot(&sandbox);
    let folder = sandbox.folder().join("missing");
    let database = folder.join("quicksilver.sqlite3");
    let database = database.to_str().expect("temporary paths are UTF-8");

    let output = sandbox.run(&["--database", database, "tasks"]);

    assert_eq!(output.code(), Some(2), "exit code\n{}", output.describe());
    let errors = output.error_lines();
    assert_eq!(
        errors.len(),
        1,
        "one `error:` line on stderr\n{}",
        output.describe()
    );
    let folder_text = folder.to_str().expect("temporary paths are UTF-8");
    assert!(
        names_value(errors[0], folder_text),
        "the error names the folder {folder_text}: {:?}",
        errors[0]
    );
    assert!(
        !folder.exists(),
        "the missing folder {folder_text} is not created"
    );
    assert_eq!(
        snapshot(&sandbox),
        before,
        "the sandbox database is unchanged"
    );
}

/// A command line, its environment, and the value its error names.
type RejectedRun = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn run_queue_rejects_bad_alert_settings() {
    let sandbox = Sandbox::new(env!("CARGO_BIN_EXE_quicksilver-test-host"));
    let cases: [RejectedRun; 3] = [
        (
            &["run-queue"],
            &[
                (
                    "QUICKSILVER_SMTP_URL",
                    "smtp://alerts:hunter2@127.0.0.1:2525",
                ),
                ("QUICKSILVER_ADMINS", "not an address"),
            ],
            "not an address",
        ),
        (
            &["run-queue"],
            &[("QUICKSILVER_SMTP_URL", "smtp://127.0.0.1:2525")],
            "QUICKSILVER_ADMINS",
        ),
        (
            &["run-queue", "--alert-check-interval", "0.01"],
            &[],
            "10ms",
        ),
    ];
    for (args, env, value) in cases {
        let output = sandbox.run_with_env(args, env);

        assert_eq!(output.code(), Some(2), "exit code\n{}", output.describe());
        let errors = output.error_lines();
        assert_eq!(errors.len(), 1, "one `error:` line\n{}", output.describe());
        assert!(
            errors[0].contains(value),
            "the error names {value}: {:?}",
            errors[0]
        );
        assert!(
            !output.stderr.contains("hunter2"),
            "no password in the output\n{}",
            output.describe()
        );
        assert!(
            !sandbox.database().exists(),
            "no database is created for a rejected run\n{}",
            output.describe()
        );
    }
}

/// The `paused` column of a task row, read without decoding the row.
#[derive(QueryableByName)]
struct PausedColumn {
    #[diesel(sql_type = Bool)]
    paused: bool,
}

fn paused_column(sandbox: &Sandbox, task: i64) -> bool {
    let url = sandbox.database_url();
    let query = diesel::sql_query(format!(
        "SELECT paused FROM quicksilver_tasks WHERE id = {task}"
    ));
    let rows: Vec<PausedColumn> = match sandbox.backend() {
        Backend::Sqlite => {
            let mut connection = SqliteConnection::establish(&url).expect("open the database");
            query.load(&mut connection)
        }
        Backend::Postgres => {
            let mut connection = PgConnection::establish(&url).expect("connect to PostgreSQL");
            query.load(&mut connection)
        }
        Backend::Mysql => {
            let mut connection = MysqlConnection::establish(&url).expect("connect to MySQL");
            query.load(&mut connection)
        }
    }
    .expect("read the paused column");
    rows.first()
        .unwrap_or_else(|| panic!("task {task} exists"))
        .paused
}

/// Breaks a task row with `set` (a SQL `SET` list), starts a runner, and
/// checks that it records an `error` execution whose output contains
/// `reason`, pauses the task, and keeps running a healthy task.
fn assert_broken_task_paused(database: TestDatabase, set: &str, reason: &str) {
    let sandbox = sandbox(database);
    let healthy = sandbox.add_task(&["beat", "--every", "1"]);
    let broken = sandbox.add_task(&["beat", "--every", "60", "--next-run", "now"]);
    sandbox.execute_sql(&format!(
        "UPDATE quicksilver_tasks SET {set} WHERE id = {broken}"
    ));

    let mut runner = sandbox.spawn(&["run-queue", "--sleep-duration", "0.5"]);
    let broken_runs = sandbox.wait_for_executions(
        broken,
        Duration::from_secs(10),
        "an error execution",
        |runs| runs.iter().any(|run| run.status == Status::Error),
    );
    let failure = broken_runs
        .iter()
        .find(|run| run.status == Status::Error)
        .expect("the wait returned an error execution");
    let failed_at = failure.ended.expect("the error execution has an end time");
    let healthy_runs = sandbox.wait_for_executions(
        healthy,
        Duration::from_secs(10),
        "two successful runs after the broken task failed",
        |runs| {
            runs.iter()
                .filter(|run| run.status == Status::Success && run.started > Some(failed_at))
                .count()
                >= 2
        },
    );
    let still_running = runner.is_running();
    let later_runs = sandbox.executions_of_task(broken);
    runner.signal("TERM");
    runner.wait(Duration::from_secs(5));

    assert!(
        failure.output.contains(reason),
        "the error output says why ({reason:?}): {:?}",
        failure.output
    );
    assert!(
        failure.output.contains("paused"),
        "the error output says the task was paused: {:?}",
        failure.output
    );
    assert!(
        paused_column(&sandbox, broken),
        "the broken task {broken} is paused"
    );
    assert_eq!(
        later_runs.len(),
        1,
        "the broken task ran once and not again:\n{}",
        describe(&later_runs)
    );
    assert!(
        still_running,
        "the runner keeps running after the broken task\n{}",
        runner.describe()
    );
    let failed: Vec<&Execution> = healthy_runs
        .iter()
        .filter(|run| run.status != Status::Success && run.status != Status::Ongoing)
        .collect();
    assert!(
        failed.is_empty(),
        "every run of the healthy task succeeds:\n{}",
        describe(&healthy_runs)
    );
}

support::backend_tests! {
    #[test]
    fn runner_pauses_task_without_schedule(database: TestDatabase) {
        assert_broken_task_paused(
            database,
            "repeat_interval = NULL, cron = NULL",
            "neither a repeat interval nor a cron expression",
        );
    }

    #[test]
    fn runner_pauses_task_with_invalid_cron(database: TestDatabase) {
        assert_broken_task_paused(
            database,
            "repeat_interval = NULL, cron = 'nonsense', time_zone = 'UTC'",
            "nonsense",
        );
    }
}

support::backend_tests! {
    #[test]
    fn runner_reads_non_json_arguments_per_line(database: TestDatabase);
}
/// An arguments column that is not a JSON array is read one argument per
/// line, as the original Django app stored arguments: the command gets
/// those words, and rejects them if they do not fit, without pausing.
fn runner_reads_non_json_arguments_per_line(database: TestDatabase) {
    let sandbox = sandbox(database);
    let fitting = sandbox.add_task(&[
        "sleep_for",
        "--every",
        "60",
        "--next-run",
        "now",
        "--",
        "--seconds",
        "1",
    ]);
    let unfitting = sandbox.add_task(&["beat", "--every", "60", "--next-run", "now"]);
    sandbox.execute_sql(&format!(
        "UPDATE quicksilver_tasks SET arguments = '--seconds\n0.1' WHERE id = {fitting}"
    ));
    sandbox.execute_sql(&format!(
        "UPDATE quicksilver_tasks SET arguments = 'not json' WHERE id = {unfitting}"
    ));

    let mut runner = sandbox.spawn(&["run-queue", "--sleep-duration", "0.5"]);
    let fitting_runs = sandbox.wait_for_executions(
        fitting,
        Duration::from_secs(10),
        "a successful run",
        |runs| runs.iter().any(|run| run.status == Status::Success),
    );
    let unfitting_runs = sandbox.wait_for_executions(
        unfitting,
        Duration::from_secs(10),
        "an error execution",
        |runs| runs.iter().any(|run| run.status == Status::Error),
    );
    runner.signal("TERM");
    runner.wait(Duration::from_secs(5));

    assert_eq!(
        fitting_runs[0].arguments,
        ["--seconds", "0.1"],
        "the lines became the arguments:\n{}",
        describe(&fitting_runs)
    );
    let failure = &unfitting_runs[0];
    assert!(
        failure.output.contains("invalid arguments") && failure.output.contains("not json"),
        "the error names the invalid arguments: {:?}",
        failure.output
    );
    assert!(
        !paused_column(&sandbox, unfitting),
        "a task with unfitting arguments keeps its schedule"
    );
}

support::backend_tests! {
    #[test]
    fn missing_schedule_repaired_with_cli(database: TestDatabase);
}
fn missing_schedule_repaired_with_cli(database: TestDatabase) {
    let sandbox = sandbox(database);
    let task = sandbox.add_task(&["beat", "--every", "60"]);
    sandbox.execute_sql(&format!(
        "UPDATE quicksilver_tasks SET repeat_interval = NULL, paused = TRUE WHERE id = {task}"
    ));
    let id = task.to_string();

    let edit = sandbox.run(&["tasks", "edit", &id, "--every", "5"]);
    let resume = sandbox.run(&["tasks", "resume", &id]);

    assert_eq!(
        edit.code(),
        Some(0),
        "exit code of the edit\n{}",
        edit.describe()
    );
    assert_eq!(
        resume.code(),
        Some(0),
        "exit code of resume\n{}",
        resume.describe()
    );
    let repaired = sandbox.task(task);
    assert_eq!(repaired.repeat_interval, Some(5), "the repaired interval");
    assert!(!repaired.paused, "the repaired task is active");
}

support::backend_tests! {
    #[test]
    fn corrupt_arguments_repaired_with_cli(database: TestDatabase);
}
fn corrupt_arguments_repaired_with_cli(database: TestDatabase) {
    let sandbox = sandbox(database);
    let task = sandbox.add_task(&["sleep_for", "--every", "60", "--", "--seconds", "1"]);
    sandbox.execute_sql(&format!(
        "UPDATE quicksilver_tasks SET arguments = 'not json', paused = TRUE WHERE id = {task}"
    ));
    let id = task.to_string();

    let listing = sandbox.run(&["tasks"]);
    let edit = sandbox.run(&["tasks", "edit", &id, "--arguments", "--seconds", "2"]);

    assert_eq!(
        listing.code(),
        Some(0),
        "the task listing still works with a corrupt row\n{}",
        listing.describe()
    );
    assert_eq!(
        edit.code(),
        Some(0),
        "`tasks edit --arguments` repairs the row, as the runner's error advises\n{}",
        edit.describe()
    );
    assert_eq!(
        sandbox.task(task).arguments,
        ["--seconds", "2"],
        "the repaired arguments"
    );
}
