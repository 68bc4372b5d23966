//! `status` as a Nagios-style check: the report's JSON on standard output,
//! and exit code 0 without issues, 1 with issues, and 3 when the database
//! cannot be opened or read.

use chrono::{SecondsFormat, TimeDelta, Utc};
use serde_json::{json, Value};
use support::process::{HostOutput, Sandbox};
use support::TestDatabase;

fn sandbox(database: TestDatabase) -> Sandbox {
    Sandbox::on(env!("CARGO_BIN_EXE_quicksilver-test-host"), database)
}

/// Parses the standard output of `status` as JSON.
fn report(output: &HostOutput) -> Value {
    serde_json::from_str(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "standard output is not JSON ({error})\n{}",
            output.describe()
        )
    })
}

/// Checks that `status` failed to read the database: exit code 3, one
/// `error:` line on standard error that contains `reason`, and the error
/// JSON on standard output.
fn assert_unreadable(output: &HostOutput, reason: &str) {
    assert_eq!(output.code(), Some(3), "exit code\n{}", output.describe());
    let errors = output.error_lines();
    assert_eq!(errors.len(), 1, "one `error:` line\n{}", output.describe());
    assert!(
        errors[0].contains(reason),
        "the error contains {reason:?}: {:?}",
        errors[0]
    );
    let body = report(output);
    assert_eq!(body["status"], "error", "{body:#}");
    assert_eq!(body["issues"], json!([]), "{body:#}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|text| text.contains(reason)),
        "the JSON error contains {reason:?}: {body:#}"
    );
}

support::backend_tests! {
    #[test]
    fn status_exits_0_without_issues(database: TestDatabase);

    #[test]
    fn status_exits_1_for_an_overdue_task(database: TestDatabase);

    #[test]
    fn status_exits_3_for_an_unreadable_database(database: TestDatabase);
}

fn status_exits_0_without_issues(database: TestDatabase) {
    let sandbox = sandbox(database);
    sandbox.add_task(&["beat", "--every", "60"]);

    let output = sandbox.run(&["status"]);

    assert_eq!(output.code(), Some(0), "exit code\n{}", output.describe());
    let body = report(&output);
    assert_eq!(body["status"], "ok", "{body:#}");
    assert_eq!(body["issues"], json!([]), "{body:#}");
}

fn status_exits_1_for_an_overdue_task(database: TestDatabase) {
    let sandbox = sandbox(database);
    let ten_minutes_ago = (Utc::now() - TimeDelta::minutes(10))
        .to_rfc3339_opts(SecondsFormat::Secs, true)
        .to_string();
    let id = sandbox.add_task(&["beat", "--every", "60", "--next-run", &ten_minutes_ago]);
    // A task waits from its last change at the latest: make it as old as
    // its next run, as a task that nothing ran since.
    let long_ago = (Utc::now() - TimeDelta::minutes(30)).format("%Y-%m-%d %H:%M:%S");
    sandbox.execute_sql(&format!(
        "UPDATE quicksilver_tasks SET updated_at = '{long_ago}' WHERE id = {id}"
    ));

    let output = sandbox.run(&["status"]);

    assert_eq!(output.code(), Some(1), "exit code\n{}", output.describe());
    assert!(output.error_lines().is_empty(), "{}", output.describe());
    let body = report(&output);
    assert_eq!(body["status"], "error", "{body:#}");
    let issue = &body["issues"][0];
    assert_eq!(issue["task_id"], id, "{body:#}");
    assert_eq!(issue["task"], "beat", "{body:#}");
    assert_eq!(issue["kind"], "overdue", "{body:#}");
    assert_eq!(issue["outlier_threshold"], 120.0, "{body:#}");

    // Ten minutes late is within a threshold of fifteen.
    let output = sandbox.run(&["status", "--overdue-after", "900"]);

    assert_eq!(output.code(), Some(0), "exit code\n{}", output.describe());
    assert_eq!(report(&output)["status"], "ok");
}

fn status_exits_3_for_an_unreadable_database(database: TestDatabase) {
    let sandbox = sandbox(database);
    sandbox.add_task(&["beat", "--every", "60"]);
    sandbox.execute_sql("DROP TABLE quicksilver_executions");

    let output = sandbox.run(&["status"]);

    assert_unreadable(&output, "quicksilver_executions");
}

#[test]
fn status_exits_3_for_a_missing_sqlite_file() {
    let sandbox = Sandbox::new(env!("CARGO_BIN_EXE_quicksilver-test-host"));
    let path = sandbox.database();

    let output = sandbox.run(&["status"]);

    assert_unreadable(&output, "does not exist");
    assert!(
        !path.exists(),
        "`status` creates no database at {}",
        path.display()
    );
}

#[test]
fn status_exits_3_for_a_non_database_file() {
    let sandbox = Sandbox::new(env!("CARGO_BIN_EXE_quicksilver-test-host"));
    std::fs::write(
        sandbox.database(),
        "not a database, but text of some length\n".repeat(64),
    )
    .expect("write the file");

    let output = sandbox.run(&["status"]);

    assert_unreadable(&output, "not a SQLite database");
}

#[test]
fn status_help_lists_the_exit_codes() {
    let sandbox = Sandbox::new(env!("CARGO_BIN_EXE_quicksilver-test-host"));

    let output = sandbox.run_ok(&["status", "--help"]);

    for expected in [
        "--overdue-after <SECONDS>",
        "[default: 120]",
        "Exit codes",
        "  3  ",
    ] {
        assert!(
            output.stdout.contains(expected),
            "the help contains {expected:?}\n{}",
            output.describe()
        );
    }
}
