//! The web dashboard in headless Chromium: what an operator sees and does,
//! checked against what the database holds.
//!
//! Each test serves the real dashboard router on a loopback port next to a
//! real runner of the `default` queue, both on a fresh SQLite database, and
//! drives the pages through [`Browser`]. The tests click the buttons and
//! fill the forms that an operator would, then assert both the text that
//! the page shows and the rows that the store returns.
//!
//! The tests find the elements by routes and form fields. They click the
//! buttons of the forms that post to `tasks/{id}/pause`, `/resume` and
//! `/run`. They fill the edit form's `#every` field and the executions
//! filter's `status`, `task`, `runtime` and `q` fields. They read the `#id`
//! link in the first cell of each execution row.
//!
//! `main_pages_render` saves a screenshot of each main page into
//! `target/screenshots`. With `QUICKSILVER_UPDATE_SCREENSHOTS=1` it also
//! copies them into `docs/screenshots`, the pictures of the README.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use chrono::{DateTime, TimeDelta, Utc};
use quicksilver::dashboard::Dashboard;
use quicksilver::{Context, Execution, NewTask, Schedule, Status, Task};
use support::browser::{Browser, PHONE};
use support::http::Server;
use support::{describe, due_at, BackgroundRunner, TestDb};

/// How long the runner may take to produce the executions a test waits
/// for. Generous, because Chromium shares the machine's cores.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// The variable that makes `main_pages_render` copy its screenshots into
/// `docs/screenshots`.
const UPDATE_SCREENSHOTS_VAR: &str = "QUICKSILVER_UPDATE_SCREENSHOTS";

/// The screenshots that the README shows.
const README_SCREENSHOTS: [&str; 7] = [
    "overview",
    "tasks",
    "task",
    "task-edit",
    "executions",
    "execution",
    "overview-phone",
];

/// Writes `beat`, for the tasks that repeat every second or two.
#[quicksilver::command]
async fn heartbeat(ctx: &Context) {
    ctx.write_line("beat");
}

/// Arguments of `reconcile_invoices`.
#[derive(Debug, clap::Parser)]
struct ReconcileArgs {
    /// The invoice batch that the output names.
    #[arg(long)]
    batch: u32,
}

/// Writes a line that names its batch, for the output search.
#[quicksilver::command]
async fn reconcile_invoices(ctx: &Context, args: ReconcileArgs) {
    ctx.write_line("fetching open invoices");
    ctx.write_line(format!(
        "reconciled invoice batch {}: 12 invoices",
        args.batch
    ));
}

/// Fails, so that an execution ends in `error`.
#[quicksilver::command]
async fn import_rates(ctx: &Context) -> Result<(), std::io::Error> {
    ctx.write_line("requesting the rate feed");
    Err(std::io::Error::other("the rate feed returned 503"))
}

/// Returns the folder of the screenshots, `target/screenshots`.
fn screenshot_folder() -> PathBuf {
    let target_tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let target = target_tmp
        .parent()
        .expect("CARGO_TARGET_TMPDIR is a folder inside the target folder");
    target.join("screenshots")
}

/// Starts the browser of `test`, or returns `None` after a line that
/// reports the skipped test.
async fn start_browser(test: &str) -> Option<Browser> {
    Browser::start(test, screenshot_folder()).await
}

/// A host application: the dashboard at `/quicksilver` and a runner of the
/// `default` queue, on one fresh SQLite database.
struct Host {
    runner: Option<BackgroundRunner>,
    server: Server,
    db: TestDb,
}

impl Host {
    async fn start() -> Host {
        let db = TestDb::new().await;
        let dashboard = Dashboard::new(db.store().clone()).build();
        let server = Server::start(Router::new().nest("/quicksilver", dashboard)).await;
        let runner = BackgroundRunner::start(db.runner("default"));
        Host {
            runner: Some(runner),
            server,
            db,
        }
    }

    /// Returns the URL of the dashboard page at `path`: `""` for the
    /// overview, `"/tasks"` for the tasks.
    fn url(&self, path: &str) -> String {
        format!("http://{}/quicksilver{path}", self.server.address())
    }

    /// Stops the runner, so that nothing changes while the test reads.
    async fn stop_runner(&mut self) {
        if let Some(runner) = self.runner.take() {
            runner.stop().await;
        }
    }

    /// Adds a task of `command` with `arguments`, repeating every
    /// `seconds`, first due at `next_run`.
    async fn add_task(
        &self,
        command: &str,
        arguments: &[&str],
        seconds: u64,
        next_run: DateTime<Utc>,
    ) -> Task {
        let schedule = Schedule::every(seconds).expect("a valid interval");
        let task = NewTask::new(command, schedule)
            .arguments(arguments.iter().copied())
            .next_run(next_run);
        self.db.add_task(task).await
    }
}

/// Returns the execution ids that the page lists, from the `#id` link in
/// the first cell of each row.
async fn listed_executions(browser: &Browser) -> Vec<i64> {
    let links = browser
        .texts("main table tbody tr td:first-child a[href*='executions/']")
        .await;
    links
        .iter()
        .map(|link| {
            link.trim_start_matches('#')
                .parse()
                .unwrap_or_else(|error| panic!("execution link {link:?} is not `#id`: {error}"))
        })
        .collect()
}

/// Returns the ids of `executions`, newest first as the pages list them.
fn ids_newest_first<'a>(executions: impl IntoIterator<Item = &'a Execution>) -> Vec<i64> {
    let mut ids: Vec<i64> = executions
        .into_iter()
        .map(|execution| execution.id)
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids
}

/// Records a finished execution of `task` with a chosen runtime.
///
/// A runner cannot produce a run of minutes in a test's time, so the runs
/// of the runtime buckets above one minute are written with SQL.
fn insert_finished_execution(db: &TestDb, task: &Task, status: Status, runtime: TimeDelta) {
    let ended = Utc::now() - TimeDelta::seconds(5);
    let started = ended - runtime;
    let time = |time: DateTime<Utc>| time.naive_utc().format("%F %T%.f").to_string();
    db.database().execute_sql(&format!(
        "INSERT INTO quicksilver_executions \
         (task_id, command, arguments, queue, status, due_at, started, ended, \
          runtime_seconds, output, runner) \
         VALUES ({id}, '{command}', '[]', '{queue}', '{status}', '{started}', '{started}', \
          '{ended}', {runtime}, 'imported run', 'browser-test')",
        id = task.id,
        command = task.command,
        queue = task.queue,
        started = time(started),
        ended = time(ended),
        runtime = runtime.as_seconds_f64(),
    ));
}

//   heartbeat A: x x x | (paused)            | x x ...  (resumed)
//   heartbeat B: x x x | x  x  x   (3 more)  | x x ...
//                      pause                 resume
//
// While A is paused, B's three runs show that the runner went on claiming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_stops_executions() {
    let Some(browser) = start_browser("pausing_stops_executions").await else {
        return;
    };
    let host = Host::start().await;
    let now = Utc::now();
    let paused = host.add_task("heartbeat", &[], 1, now).await;
    let control = host.add_task("heartbeat", &[], 1, now).await;
    host.db
        .wait_for_status(paused.id, Status::Success, 2, RUN_TIMEOUT)
        .await;

    // Pause from the tasks page, whose button posts and comes back to it.
    browser.open(&host.url("/tasks")).await;
    browser.wait_for_text("heartbeat").await;
    let pause = format!("form[action$='tasks/{}/pause'] button", paused.id);
    browser.click(&pause).await;
    browser
        .wait_for_text(&format!(
            "Task {} is paused: runners skip it until it is resumed.",
            paused.id
        ))
        .await;
    assert!(
        host.db.task(paused.id).await.paused,
        "the task is paused in the database"
    );
    let resume = format!("form[action$='tasks/{}/resume'] button", paused.id);
    browser.find(&resume).await;
    assert!(
        browser.find_all(&pause).await.is_empty(),
        "the tasks page shows Resume in place of Pause"
    );

    // Any run claimed before the pause has its row by now.
    let before = host.db.executions(paused.id).await;
    let control_runs = host.db.executions(control.id).await.len();
    host.db
        .wait_until(control.id, RUN_TIMEOUT, "3 more runs", |executions| {
            executions.len() >= control_runs + 3
        })
        .await;
    let after = host.db.executions(paused.id).await;
    assert_eq!(
        after.len(),
        before.len(),
        "no execution of the paused task started while the other task ran 3 times:\n{}",
        describe(&after)
    );

    // The task's executions, filtered on the executions page.
    browser.open(&host.url("/executions")).await;
    browser
        .select("form.filters select[name='task']", &paused.id.to_string())
        .await;
    apply_filters(&browser, &format!("task={}", paused.id)).await;
    let expected = ids_newest_first(&after);
    let listed = listed_executions(&browser).await;
    assert_eq!(listed, expected, "the page lists the task's executions");

    // Resuming starts the task again.
    browser
        .open(&host.url(&format!("/tasks/{}", paused.id)))
        .await;
    browser.click(&resume).await;
    browser
        .wait_for_text(&format!("Task {} is resumed.", paused.id))
        .await;
    assert!(
        !host.db.task(paused.id).await.paused,
        "the task is active in the database"
    );
    let resumed = host
        .db
        .wait_until(paused.id, RUN_TIMEOUT, "a run after the resume", |runs| {
            runs.len() > after.len()
        })
        .await;
    assert!(resumed.len() > after.len());
}

/// Submits the executions filter and waits for the page whose query
/// contains `query`.
async fn apply_filters(browser: &Browser, query: &str) {
    browser.submit("form.filters").await;
    browser.wait_for_url(query).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_now_starts_execution() {
    let Some(browser) = start_browser("run_now_starts_execution").await else {
        return;
    };
    let host = Host::start().await;
    let in_an_hour = Utc::now() + TimeDelta::hours(1);
    let task = host
        .add_task("reconcile_invoices", &["--batch", "4711"], 3600, in_an_hour)
        .await;

    browser
        .open(&host.url(&format!("/tasks/{}", task.id)))
        .await;
    browser.wait_for_text("No execution yet.").await;
    assert!(host.db.executions(task.id).await.is_empty());

    browser
        .click(&format!("form[action$='tasks/{}/run'] button", task.id))
        .await;
    browser
        .wait_for_text(&format!("Task {} is due now", task.id))
        .await;
    let executions = host
        .db
        .wait_for_status(task.id, Status::Success, 1, RUN_TIMEOUT)
        .await;
    assert_eq!(executions.len(), 1, "one run:\n{}", describe(&executions));
    let execution = &executions[0];
    assert!(
        execution
            .output
            .contains("reconciled invoice batch 4711: 12 invoices"),
        "the output names the batch: {:?}",
        execution.output
    );

    // The task page lists the run; its link opens the output.
    browser
        .reload_until_text(&format!("#{}", execution.id))
        .await;
    assert_eq!(listed_executions(&browser).await, vec![execution.id]);
    browser
        .click(&format!("a[href$='executions/{}']", execution.id))
        .await;
    browser
        .wait_for_text(&format!("Execution {}", execution.id))
        .await;
    browser
        .wait_for_text("reconciled invoice batch 4711: 12 invoices")
        .await;
    let status = browser.text_of("main .status").await;
    assert_eq!(status, "success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_interval_reschedules_task() {
    let Some(browser) = start_browser("edited_interval_reschedules_task").await else {
        return;
    };
    let host = Host::start().await;
    let in_an_hour = Utc::now() + TimeDelta::hours(1);
    let task = host.add_task("heartbeat", &[], 3600, in_an_hour).await;

    browser
        .open(&host.url(&format!("/tasks/{}/edit", task.id)))
        .await;
    browser.wait_for_text("Repeat interval (seconds)").await;
    let every = browser.find("#every").await;
    let interval = every.prop("value").await.expect("read the interval field");
    assert_eq!(
        interval.as_deref(),
        Some("3600"),
        "the form shows the interval"
    );

    browser.fill("#every", "2").await;
    browser.submit("form.task").await;
    browser
        .wait_for_text(&format!("Task {} was saved.", task.id))
        .await;
    browser.wait_for_text("every 2s").await;

    let edited = host.db.task(task.id).await;
    let checked_at = Utc::now();
    assert_eq!(edited.repeat_interval, Some(2));
    assert!(
        edited.next_run <= checked_at + TimeDelta::seconds(2),
        "the next run {} moved from an hour ahead to within 2 s of {checked_at}",
        edited.next_run
    );

    // The runner takes the new schedule: runs due on a 2 s grid. A runner
    // that falls behind merges missed ticks, so the gap is a multiple.
    let executions = host
        .db
        .wait_for_status(task.id, Status::Success, 2, RUN_TIMEOUT)
        .await;
    let gap = due_at(&executions[1]) - due_at(&executions[0]);
    assert_eq!(
        gap.num_milliseconds() % 2000,
        0,
        "runs are due a multiple of 2 s apart:\n{}",
        describe(&executions)
    );
    assert!(
        gap < TimeDelta::minutes(1),
        "runs are due {gap} apart, not an hour:\n{}",
        describe(&executions)
    );
    browser
        .reload_until_text(&format!("#{}", executions[1].id))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_filter_by_status_and_runtime() {
    let Some(browser) = start_browser("executions_filter_by_status_and_runtime").await else {
        return;
    };
    let mut host = Host::start().await;
    let now = Utc::now();
    let tick = host.add_task("heartbeat", &[], 3600, now).await;
    let failing = host.add_task("import_rates", &[], 3600, now).await;
    host.db
        .wait_for_status(tick.id, Status::Success, 1, RUN_TIMEOUT)
        .await;
    host.db
        .wait_for_status(failing.id, Status::Error, 1, RUN_TIMEOUT)
        .await;
    host.stop_runner().await;
    insert_finished_execution(&host.db, &tick, Status::Success, TimeDelta::seconds(90));
    insert_finished_execution(&host.db, &failing, Status::Killed, TimeDelta::minutes(20));

    let all = host.db.all_executions().await;
    assert_eq!(
        all.len(),
        4,
        "two runs and two imported:\n{}",
        describe(&all)
    );

    // Status: error.
    browser.open(&host.url("/executions")).await;
    browser.wait_for_text("Search output").await;
    assert_eq!(listed_executions(&browser).await, ids_newest_first(&all));
    browser
        .select("form.filters select[name='status']", "error")
        .await;
    apply_filters(&browser, "status=error").await;
    let errors = ids_newest_first(all.iter().filter(|run| run.status == Status::Error));
    assert_eq!(errors.len(), 1);
    assert_eq!(listed_executions(&browser).await, errors);
    browser
        .wait_for_text("error: the rate feed returned 503")
        .await;

    // Runtime: 1 to 5 minutes, any status.
    browser
        .select("form.filters select[name='status']", "")
        .await;
    browser
        .select("form.filters select[name='runtime']", "1-5m")
        .await;
    apply_filters(&browser, "runtime=1-5m").await;
    assert!(
        !browser
            .url()
            .await
            .query()
            .unwrap_or_default()
            .contains("status=error"),
        "the status filter is cleared"
    );
    let between = |run: &&Execution| {
        run.runtime_seconds
            .is_some_and(|seconds| (60.0..300.0).contains(&seconds))
    };
    let medium = ids_newest_first(all.iter().filter(between));
    assert_eq!(medium.len(), 1);
    assert_eq!(listed_executions(&browser).await, medium);
    browser.wait_for_text("1 min 30 s").await;

    // Runtime: under a minute.
    browser
        .select("form.filters select[name='runtime']", "under-1m")
        .await;
    apply_filters(&browser, "runtime=under-1m").await;
    let short = ids_newest_first(
        all.iter()
            .filter(|run| run.runtime_seconds.is_some_and(|seconds| seconds < 60.0)),
    );
    assert_eq!(short.len(), 2);
    assert_eq!(listed_executions(&browser).await, short);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_search_output() {
    let Some(browser) = start_browser("executions_search_output").await else {
        return;
    };
    let mut host = Host::start().await;
    let now = Utc::now();
    let batch_4711 = host
        .add_task("reconcile_invoices", &["--batch", "4711"], 3600, now)
        .await;
    let batch_815 = host
        .add_task("reconcile_invoices", &["--batch", "815"], 3600, now)
        .await;
    host.db
        .wait_for_status(batch_4711.id, Status::Success, 1, RUN_TIMEOUT)
        .await;
    host.db
        .wait_for_status(batch_815.id, Status::Success, 1, RUN_TIMEOUT)
        .await;
    host.stop_runner().await;

    let all = host.db.all_executions().await;
    let matching = ids_newest_first(all.iter().filter(|run| run.output.contains("batch 4711")));
    assert_eq!(
        matching.len(),
        1,
        "one run names batch 4711:\n{}",
        describe(&all)
    );

    browser.open(&host.url("/executions")).await;
    browser
        .fill("form.filters input[name='q']", "batch 4711")
        .await;
    apply_filters(&browser, "q=batch+4711").await;
    assert_eq!(listed_executions(&browser).await, matching);
    let text = browser.text().await;
    assert!(
        text.contains("reconciled invoice batch 4711: 12 invoices"),
        "the row shows the matching line:\n{text}"
    );
    assert!(
        !text.contains("batch 815"),
        "the run of batch 815 is filtered out:\n{text}"
    );

    browser
        .fill("form.filters input[name='q']", "no such line")
        .await;
    apply_filters(&browser, "q=no+such+line").await;
    browser
        .wait_for_text("No execution matches on this page.")
        .await;
    assert!(listed_executions(&browser).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn main_pages_render() {
    let Some(browser) = start_browser("main_pages_render").await else {
        return;
    };
    let host = Host::start().await;
    let now = Utc::now();
    let beat = host.add_task("heartbeat", &[], 1, now).await;
    let reconcile = host
        .add_task("reconcile_invoices", &["--batch", "4711"], 900, now)
        .await;
    let rates = host.add_task("import_rates", &[], 300, now).await;
    host.db
        .wait_for_status(beat.id, Status::Success, 5, RUN_TIMEOUT)
        .await;
    let reconciled = host
        .db
        .wait_for_status(reconcile.id, Status::Success, 1, RUN_TIMEOUT)
        .await;
    host.db
        .wait_for_status(rates.id, Status::Error, 1, RUN_TIMEOUT)
        .await;
    // Paused, so that no run is ongoing and no page reloads itself.
    host.db
        .store()
        .pause_task(beat.id)
        .await
        .expect("pause the heartbeat");

    let pages = [
        (String::new(), "overview", "Queues and runners"),
        ("/tasks".to_owned(), "tasks", "Add a task"),
        (format!("/tasks/{}", beat.id), "task", "Latest executions"),
        (
            format!("/tasks/{}/edit", reconcile.id),
            "task-edit",
            "Repeat interval (seconds)",
        ),
        ("/executions".to_owned(), "executions", "Search output"),
        (
            format!("/executions/{}", reconciled[0].id),
            "execution",
            "reconciled invoice batch 4711",
        ),
    ];
    for (path, name, expected) in pages {
        browser.open(&host.url(&path)).await;
        browser.wait_for_text(expected).await;
        browser.screenshot(name).await;
    }

    // The overview names what the database holds.
    browser.open(&host.url("")).await;
    let text = browser
        .wait_for_page("the overview", false, |text| {
            text.contains("Recent failures")
        })
        .await;
    assert!(text.contains("error: the rate feed returned 503"), "{text}");
    assert!(text.contains("default"), "the queue is listed:\n{text}");

    // At phone width, the page fits the screen: tables scroll inside their
    // panels, and the page itself does not scroll sideways.
    browser.resize(PHONE).await;
    browser.reload().await;
    browser.wait_for_text("Queues and runners").await;
    let viewport = browser.viewport_width().await;
    let content = browser.content_width().await;
    assert!(
        viewport <= u64::from(PHONE.width),
        "the viewport is {viewport} px wide"
    );
    assert!(
        content <= viewport,
        "the overview is {content} px wide in a {viewport} px viewport"
    );
    browser.screenshot("overview-phone").await;

    if std::env::var(UPDATE_SCREENSHOTS_VAR).as_deref() == Ok("1") {
        copy_readme_screenshots();
    }
}

/// Copies the README's screenshots from `target/screenshots` into
/// `docs/screenshots`.
fn copy_readme_screenshots() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&docs)
        .unwrap_or_else(|error| panic!("create {}: {error}", docs.display()));
    for name in README_SCREENSHOTS {
        let from = screenshot_folder().join(format!("{name}.png"));
        let to = docs.join(format!("{name}.png"));
        std::fs::copy(&from, &to)
            .unwrap_or_else(|error| panic!("copy {} to {}: {error}", from.display(), to.display()));
    }
}
