//! The per-task alert-on-failure setting through the CLI: `tasks add` and
//! `tasks edit` set it with `--alert-on-failure on|off|default`, and
//! `tasks show` and `tasks --json` print it.

use support::process::Sandbox;
use support::TestDatabase;

fn sandbox(database: TestDatabase) -> Sandbox {
    Sandbox::on(env!("CARGO_BIN_EXE_quicksilver-test-host"), database)
}

/// Returns the `alert_on_failure` value of task `id` in `tasks list --json`.
fn listed_setting(sandbox: &Sandbox, id: i64) -> serde_json::Value {
    let output = sandbox.run_ok(&["tasks", "list", "--json"]);
    let tasks: Vec<serde_json::Value> = serde_json::from_str(&output.stdout)
        .unwrap_or_else(|error| panic!("parse the task list ({error}):\n{}", output.stdout));
    let task = tasks
        .iter()
        .find(|task| task["id"].as_i64() == Some(id))
        .unwrap_or_else(|| panic!("task {id} is listed:\n{}", output.stdout));
    task.get("alert_on_failure")
        .cloned()
        .unwrap_or_else(|| panic!("task {id} has an alert_on_failure field:\n{task}"))
}

support::backend_tests! {
    #[test]
    fn add_and_edit_set_alert_on_failure(database: TestDatabase);
}
fn add_and_edit_set_alert_on_failure(database: TestDatabase) {
    let sandbox = sandbox(database);
    let plain = sandbox.add_task(&["beat", "--every", "60"]);
    let opted_in = sandbox.add_task(&["beat", "--every", "60", "--alert-on-failure", "on"]);

    assert_eq!(
        sandbox.task(plain).alert_on_failure,
        None,
        "added without the flag"
    );
    assert_eq!(listed_setting(&sandbox, plain), serde_json::Value::Null);
    assert_eq!(
        sandbox.task(opted_in).alert_on_failure,
        Some(true),
        "added with `on`"
    );
    assert_eq!(
        listed_setting(&sandbox, opted_in),
        serde_json::Value::Bool(true)
    );

    let id = opted_in.to_string();
    sandbox.run_ok(&["tasks", "edit", &id, "--alert-on-failure", "off"]);
    assert_eq!(
        sandbox.task(opted_in).alert_on_failure,
        Some(false),
        "edited to `off`"
    );
    assert_eq!(
        listed_setting(&sandbox, opted_in),
        serde_json::Value::Bool(false)
    );

    sandbox.run_ok(&["tasks", "edit", &id, "--every", "7"]);
    assert_eq!(
        sandbox.task(opted_in).alert_on_failure,
        Some(false),
        "an edit without the flag keeps the setting"
    );

    sandbox.run_ok(&["tasks", "edit", &id, "--alert-on-failure", "default"]);
    assert_eq!(
        sandbox.task(opted_in).alert_on_failure,
        None,
        "edited to `default`"
    );
    assert_eq!(listed_setting(&sandbox, opted_in), serde_json::Value::Null);

    sandbox.run_ok(&[
        "tasks",
        "edit",
        &plain.to_string(),
        "--alert-on-failure",
        "on",
    ]);
    assert_eq!(
        sandbox.task(plain).alert_on_failure,
        Some(true),
        "edited to `on`"
    );
}

support::backend_tests! {
    #[test]
    fn show_prints_alert_on_failure(database: TestDatabase);
}
fn show_prints_alert_on_failure(database: TestDatabase) {
    let sandbox = sandbox(database);
    let opted_out = sandbox.add_task(&["beat", "--every", "60", "--alert-on-failure", "off"]);
    let plain = sandbox.add_task(&["beat", "--every", "60"]);

    let shown_off = sandbox.run_ok(&["tasks", "show", &opted_out.to_string()]);
    let shown_plain = sandbox.run_ok(&["tasks", "show", &plain.to_string()]);
    let shown_json = sandbox.run_ok(&["tasks", "show", &opted_out.to_string(), "--json"]);

    assert!(
        shown_off.stdout.contains("alert on failure: off\n"),
        "show prints `off`\n{}",
        shown_off.describe()
    );
    assert!(
        shown_plain.stdout.contains("alert on failure: default"),
        "show prints `default`\n{}",
        shown_plain.describe()
    );
    let task: serde_json::Value = serde_json::from_str(&shown_json.stdout)
        .unwrap_or_else(|error| panic!("parse the task ({error}):\n{}", shown_json.stdout));
    assert_eq!(
        task["alert_on_failure"],
        serde_json::Value::Bool(false),
        "show --json prints the setting\n{}",
        shown_json.describe()
    );
}
