//! `install-tasks` and `check` on the task declarations compiled into the
//! test host.

use support::process::{HostOutput, Sandbox};
use support::TestDatabase;

/// The declaration ids of the test host: its own two and quicksilver's
/// built-in housekeeping task.
const DECLARATIONS: [&str; 3] = [
    "quicksilver.clear_successful_executions",
    "quicksilver_test_host.beat",
    "quicksilver_test_host.sleep_for",
];

fn sandbox(database: TestDatabase) -> Sandbox {
    Sandbox::on(env!("CARGO_BIN_EXE_quicksilver-test-host"), database)
}

/// Returns the check ids that `check` lists, from lines `ID: declared task ...`.
fn listed_checks(output: &HostOutput) -> Vec<String> {
    output
        .stdout
        .lines()
        .filter_map(|line| line.split_once(": declared task "))
        .map(|(id, _)| id.to_owned())
        .collect()
}

support::backend_tests! {
    #[test]
    fn install_twice_adds_no_duplicates(database: TestDatabase);
}
fn install_twice_adds_no_duplicates(database: TestDatabase) {
    let sandbox = sandbox(database);

    let first = sandbox.run_ok(&["install-tasks"]);
    let installed = first
        .stdout
        .lines()
        .filter(|line| line.starts_with("installed task "))
        .count();
    for id in DECLARATIONS {
        assert!(
            first.stdout.contains(&format!("({id})")),
            "the first install names declaration {id}\n{}",
            first.describe()
        );
    }
    let tasks_after_first = sandbox.tasks();
    assert_eq!(
        tasks_after_first.len(),
        installed,
        "one task per installed declaration\n{}",
        first.describe()
    );

    let second = sandbox.run_ok(&["install-tasks"]);
    assert_eq!(
        second.stdout.trim(),
        format!("all {installed} declared tasks are installed"),
        "the second install reports nothing new\n{}",
        second.describe()
    );
    let tasks_after_second = sandbox.tasks();
    assert_eq!(
        tasks_after_second, tasks_after_first,
        "the second install changes no task"
    );
}

support::backend_tests! {
    #[test]
    fn check_lists_missing_declarations_until_installed(database: TestDatabase);
}
fn check_lists_missing_declarations_until_installed(database: TestDatabase) {
    let sandbox = sandbox(database);

    let before = sandbox.run(&["check"]);
    assert_eq!(
        before.code(),
        Some(1),
        "exit code of check before install\n{}",
        before.describe()
    );
    let listed = listed_checks(&before);
    for id in DECLARATIONS {
        let check_id = format!("{id}.W001");
        assert!(
            listed.contains(&check_id),
            "check lists {check_id}; it listed {listed:?}\n{}",
            before.describe()
        );
    }
    assert!(
        listed.iter().all(|id| id.ends_with(".W001")),
        "every check id ends with .W001: {listed:?}"
    );

    sandbox.run_ok(&["install-tasks"]);
    let after = sandbox.run(&["check"]);
    assert_eq!(
        after.code(),
        Some(0),
        "exit code of check after install\n{}",
        after.describe()
    );
    assert!(
        listed_checks(&after).is_empty(),
        "check lists nothing after install\n{}",
        after.describe()
    );
    assert!(
        after.stdout.contains("all declared tasks are installed"),
        "check says all are installed\n{}",
        after.describe()
    );
}

support::backend_tests! {
    #[test]
    fn check_is_silenced_by_flag_and_environment(database: TestDatabase);
}
fn check_is_silenced_by_flag_and_environment(database: TestDatabase) {
    let sandbox = sandbox(database);
    let listed = listed_checks(&sandbox.run(&["check"]));
    assert!(!listed.is_empty(), "check lists the missing declarations");

    let mut all_flags = vec!["check"];
    for id in &listed {
        all_flags.extend(["--silence", id.as_str()]);
    }
    let flagged = sandbox.run(&all_flags);
    assert_eq!(
        flagged.code(),
        Some(0),
        "exit code with every check silenced by --silence\n{}",
        flagged.describe()
    );

    let variable = listed.join(", ");
    let from_env = sandbox.run_with_env(&["check"], &[("QUICKSILVER_SILENCED_CHECKS", &variable)]);
    assert_eq!(
        from_env.code(),
        Some(0),
        "exit code with every check silenced by QUICKSILVER_SILENCED_CHECKS={variable}\n{}",
        from_env.describe()
    );

    let silenced = listed[0].as_str();
    let partly = sandbox.run(&["check", "--silence", silenced]);
    assert_eq!(
        partly.code(),
        Some(1),
        "exit code with one of {} checks silenced\n{}",
        listed.len(),
        partly.describe()
    );
    let still_listed = listed_checks(&partly);
    assert!(
        !still_listed.iter().any(|id| id == silenced),
        "the silenced {silenced} is not listed: {still_listed:?}"
    );
    assert_eq!(
        still_listed.len(),
        listed.len() - 1,
        "the other checks are still listed: {still_listed:?}"
    );
}

support::backend_tests! {
    #[test]
    fn install_keeps_operator_edits(database: TestDatabase);
}
fn install_keeps_operator_edits(database: TestDatabase) {
    let sandbox = sandbox(database);
    sandbox.run_ok(&["install-tasks"]);
    let declared = |declaration: &str| {
        sandbox
            .tasks()
            .into_iter()
            .find(|task| task.declaration.as_deref() == Some(declaration))
            .unwrap_or_else(|| panic!("a task is installed for {declaration}"))
    };
    let beat = declared("quicksilver_test_host.beat");
    let sleep = declared("quicksilver_test_host.sleep_for");

    sandbox.run_ok(&["tasks", "edit", &beat.id.to_string(), "--every", "7"]);
    sandbox.run_ok(&["tasks", "pause", &sleep.id.to_string()]);
    let count = sandbox.tasks().len();
    let again = sandbox.run_ok(&["install-tasks"]);

    assert_eq!(
        sandbox.tasks().len(),
        count,
        "install adds no task for edited declarations\n{}",
        again.describe()
    );
    let beat_after = sandbox.task(beat.id);
    assert_eq!(
        beat_after.repeat_interval,
        Some(7),
        "the edited interval of task {} stays",
        beat.id
    );
    assert!(
        sandbox.task(sleep.id).paused,
        "the paused task {} stays paused",
        sleep.id
    );
}

support::backend_tests! {
    #[test]
    fn install_carries_declared_alert_on_failure(database: TestDatabase);
}
fn install_carries_declared_alert_on_failure(database: TestDatabase) {
    let sandbox = sandbox(database);
    sandbox.run_ok(&["install-tasks"]);
    let declared = |declaration: &str| {
        sandbox
            .tasks()
            .into_iter()
            .find(|task| task.declaration.as_deref() == Some(declaration))
            .unwrap_or_else(|| panic!("a task is installed for {declaration}"))
    };

    assert_eq!(
        declared("quicksilver_test_host.sleep_for").alert_on_failure,
        Some(true),
        "sleep_for is declared with .alert_on_failure(true)"
    );
    assert_eq!(
        declared("quicksilver_test_host.beat").alert_on_failure,
        None,
        "beat is declared without a setting, so it follows the runner's"
    );
}
