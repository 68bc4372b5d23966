//! Arguments: each string of a task's argument list reaches the command's
//! parser byte for byte, with no shell, splitting or trimming on the way.

use std::time::Duration;

use quicksilver::{Context, NewTask, Schedule, Status};
use support::{describe, BackgroundRunner, TestDatabase, TestDb};

#[derive(Debug, clap::Parser)]
struct EchoArguments {
    /// Each value, written back as a JSON array.
    #[arg(long = "value")]
    values: Vec<String>,
}

#[quicksilver::command]
async fn echo_arguments(ctx: &Context, arguments: EchoArguments) -> Result<(), serde_json::Error> {
    ctx.write(serde_json::to_string(&arguments.values)?);
    Ok(())
}

/// Values that a shell, a naive split or a trim would change.
const VALUES: [&str; 13] = [
    "two words",
    "key=value=more",
    "  leading and trailing  ",
    "\"double quoted\"",
    "'single quoted'",
    "back\\slash\\",
    "$HOME; echo `id` | cat && exit 1",
    "naïve café, 日本語, 🦀",
    "e\u{301} combining accent",
    "",
    "first line\nsecond line\n",
    "tab\there",
    "--value",
];

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn arguments_reach_command_unchanged(database: TestDatabase);
}
async fn arguments_reach_command_unchanged(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let arguments: Vec<String> = VALUES
        .iter()
        .map(|value| format!("--value={value}"))
        .collect();
    let schedule = Schedule::every(3600).expect("1 hour is a valid interval");
    let task = db
        .add_task(NewTask::new("echo_arguments", schedule).arguments(arguments.clone()))
        .await;
    assert_eq!(
        task.arguments, arguments,
        "the stored task keeps the arguments"
    );
    let runner = BackgroundRunner::start(db.runner("default"));

    let executions = db
        .wait_for_status(task.id, Status::Success, 1, Duration::from_secs(5))
        .await;
    runner.stop().await;
    let execution = &executions[0];
    let listing = describe(&executions);
    assert_eq!(
        execution.status,
        Status::Success,
        "the command parsed its arguments:\n{listing}"
    );
    assert_eq!(
        execution.arguments, arguments,
        "the execution records the arguments it ran with"
    );

    let received: Vec<String> = serde_json::from_str(&execution.output)
        .unwrap_or_else(|error| panic!("output {:?} is a JSON list: {error}", execution.output));
    assert_eq!(
        received.len(),
        VALUES.len(),
        "one value per argument: {received:?}"
    );
    for (index, (sent, got)) in VALUES.iter().zip(&received).enumerate() {
        assert_eq!(
            got.as_bytes(),
            sent.as_bytes(),
            "value {index} reached the command changed: sent {sent:?}, got {got:?}"
        );
    }
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn separate_words_reach_command_unchanged(database: TestDatabase);
}
async fn separate_words_reach_command_unchanged(database: TestDatabase) {
    let db = TestDb::open(database).await;
    // Each `--value` and its value are two strings here, with no `=`
    // between them. Values that start with `-` are left out, because clap
    // would read them as flags in this form.
    let sent: Vec<&str> = VALUES
        .iter()
        .copied()
        .filter(|value| !value.starts_with('-'))
        .collect();
    let arguments: Vec<String> = sent
        .iter()
        .flat_map(|value| ["--value".to_owned(), (*value).to_owned()])
        .collect();
    let schedule = Schedule::every(3600).expect("1 hour is a valid interval");
    let task = db
        .add_task(NewTask::new("echo_arguments", schedule).arguments(arguments))
        .await;
    let runner = BackgroundRunner::start(db.runner("default"));

    let executions = db
        .wait_for_status(task.id, Status::Success, 1, Duration::from_secs(5))
        .await;
    runner.stop().await;
    let output = &executions[0].output;
    let received: Vec<String> = serde_json::from_str(output)
        .unwrap_or_else(|error| panic!("output {output:?} is a JSON list: {error}"));
    assert_eq!(
        received.len(),
        sent.len(),
        "one value per argument: {received:?}"
    );
    for (index, (sent, got)) in sent.iter().zip(&received).enumerate() {
        assert_eq!(
            got.as_bytes(),
            sent.as_bytes(),
            "value {index} reached the command changed: sent {sent:?}, got {got:?}"
        );
    }
}
