//! The web dashboard over real HTTP: the router served by `axum::serve` on
//! a loopback port and driven with a minimal HTTP/1.1 client, on each
//! backend.
//!
//! The tests write tasks through the store and executions with SQL, since
//! no public API records an execution with a chosen status, start, runtime
//! and output. Forms are posted as a browser would: with the
//! `quicksilver_csrf` cookie that a page set, and its token in the
//! `csrf_token` field.

use axum::Router;
use chrono::{DateTime, TimeDelta, Utc};
use quicksilver::dashboard::{Auth, Dashboard};
use quicksilver::{NewTask, Schedule, Task};
use support::history::{self, sql_time};
use support::http::{HttpRequest, HttpResponse, Server};
use support::{Backend, TestDatabase, TestDb};

/// Text that a page must never return unescaped.
const SCRIPT: &str = "<script>alert(\"x\")</script>";

/// The same text as maud escapes it.
const SCRIPT_ESCAPED: &str = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;";

/// Adds a task of `command` every `seconds`, on `queue`, with `arguments`.
async fn add_task(db: &TestDb, command: &str, arguments: &[&str], queue: &str) -> Task {
    let schedule = Schedule::every(60).expect("a valid interval");
    db.add_task(
        NewTask::new(command, schedule)
            .arguments(arguments.iter().copied())
            .queue(queue),
    )
    .await
}

/// Records an execution of `task` with `status`, started at `started`, and
/// returns nothing: ids grow with each insert. A finished one ends
/// `runtime` seconds later.
fn insert_execution(
    db: &TestDb,
    task: &Task,
    status: &str,
    started: DateTime<Utc>,
    runtime: Option<f64>,
    output: &str,
) {
    history::insert_execution(db.database(), task, status, started, runtime, output);
}

/// Returns the dashboard of the test database, without auth.
fn dashboard(db: &TestDb) -> Router {
    Dashboard::new(db.store().clone()).build()
}

/// A browser's session: the CSRF cookie and token that a page gave.
struct Session {
    token: String,
}

impl Session {
    /// Loads `path` and keeps the CSRF cookie it sets.
    async fn start(server: &Server, path: &str) -> Session {
        let response = server.get(path).await;
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        let cookie = response
            .header_values("set-cookie")
            .into_iter()
            .find_map(|value| value.strip_prefix("quicksilver_csrf="))
            .unwrap_or_else(|| panic!("{path} sets no CSRF cookie: {:?}", response.headers));
        let token = cookie.split(';').next().unwrap_or_default().to_owned();
        assert!(
            response
                .text()
                .contains(&format!("name=\"csrf_token\" value=\"{token}\"")),
            "the page's forms carry the cookie's token"
        );
        Session { token }
    }

    /// Posts `fields` to `path` with the cookie and the token, as a
    /// same-origin browser form.
    async fn post(&self, server: &Server, path: &str, fields: &[(&str, &str)]) -> HttpResponse {
        let mut all = vec![("csrf_token", self.token.as_str())];
        all.extend_from_slice(fields);
        server
            .send(
                HttpRequest::new("POST", path)
                    .header("Cookie", &format!("quicksilver_csrf={}", self.token))
                    .header("Sec-Fetch-Site", "same-origin")
                    .form(&all),
            )
            .await
    }
}

/// Returns the fields of the task form for `task`, as a browser would
/// send them unchanged, with `changes` replacing some.
fn form_of(task: &Task, changes: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let next_run = task.next_run.format("%Y-%m-%d %H:%M:%S").to_string();
    let mut fields: Vec<(&'static str, String)> = vec![
        ("command", task.command.clone()),
        ("arguments", task.arguments.join("\n")),
        ("queue", task.queue.clone()),
        ("schedule", "every".to_owned()),
        (
            "every",
            task.repeat_interval
                .map(|s| s.to_string())
                .unwrap_or_default(),
        ),
        ("cron", String::new()),
        ("time_zone", "UTC".to_owned()),
        ("max_duration", String::new()),
        ("next_run", next_run.clone()),
        ("next_run_shown", next_run),
        ("alerts_postponed_until", String::new()),
        ("alerts_postponed_until_shown", String::new()),
        ("alert_on_failure", "default".to_owned()),
    ];
    for (name, value) in changes {
        match fields.iter_mut().find(|(field, _)| field == name) {
            Some(field) => field.1 = (*value).to_owned(),
            None => fields.push((name, (*value).to_owned())),
        }
    }
    fields
}

fn as_pairs<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    fields
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

/// Returns the execution ids a listing shows, in order.
fn listed_executions(page: &str) -> Vec<i64> {
    page.split("\">#")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            rest[digits.len()..]
                .starts_with("</a>")
                .then(|| digits.parse().ok())
                .flatten()
        })
        .collect()
}

/// Returns the `href` of the first link whose text is `text`.
fn link_to(page: &str, text: &str) -> String {
    let end = page
        .find(&format!(">{text}</a>"))
        .unwrap_or_else(|| panic!("no link `{text}` in the page:\n{page}"));
    let start = page[..end].rfind("href=\"").expect("the link has an href") + "href=\"".len();
    let href = &page[start..end];
    href[..href.find('"').expect("the href ends")].replace("&amp;", "&")
}

/// Resolves the relative reference `href` against the request path
/// `from`, as a browser does.
fn resolve(from: &str, href: &str) -> String {
    let (href, query) = match href.split_once('?') {
        Some((path, query)) => (path, format!("?{query}")),
        None => (href, String::new()),
    };
    let mut segments: Vec<&str> = from.split('/').collect();
    segments.pop();
    for part in href.split('/') {
        match part {
            ".." => {
                if segments.len() > 1 {
                    segments.pop();
                }
            }
            "." => {}
            other => segments.push(other),
        }
    }
    let mut path = segments.join("/");
    let names_folder = href.ends_with('/') || href == "." || href.ends_with("/.");
    if names_folder && !path.ends_with('/') {
        path.push('/');
    }
    format!("{path}{query}")
}

fn assert_html(response: &HttpResponse, path: &str) {
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{path}"
    );
    assert_eq!(response.header("cache-control"), Some("no-store"), "{path}");
    let policy = response
        .header("content-security-policy")
        .unwrap_or_default();
    assert!(policy.contains("script-src 'self'"), "{path}: {policy}");
    assert_eq!(response.header("x-frame-options"), Some("DENY"), "{path}");
}

fn assert_escaped(response: &HttpResponse, path: &str) {
    let text = response.text();
    assert!(
        !text.contains(SCRIPT),
        "{path} returns the script unescaped"
    );
    assert!(
        text.contains(SCRIPT_ESCAPED),
        "{path} shows the escaped script:\n{text}"
    );
}

support::backend_tests! {
    #[tokio::test]
    async fn pages_render_with_values_escaped(database: TestDatabase);

    #[tokio::test]
    async fn overview_counts_recent_executions(database: TestDatabase);

    #[tokio::test]
    async fn pause_resume_and_run_now_write(database: TestDatabase);

    #[tokio::test]
    async fn forms_without_valid_token_are_rejected(database: TestDatabase);

    #[tokio::test]
    async fn edit_saves_every_field(database: TestDatabase);

    #[tokio::test]
    async fn invalid_edit_answers_422_unchanged(database: TestDatabase);

    #[tokio::test]
    async fn add_creates_task_or_answers_422(database: TestDatabase);

    #[tokio::test]
    async fn delete_confirms_then_deletes(database: TestDatabase);

    #[tokio::test]
    async fn unknown_ids_answer_404(database: TestDatabase);

    #[tokio::test]
    async fn executions_filter_and_paginate(database: TestDatabase);

    #[tokio::test]
    async fn tasks_filter_by_queue_and_search(database: TestDatabase);
}

async fn pages_render_with_values_escaped(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = add_task(
        &db,
        "clear_successful_executions",
        &["--before-minutes", "5"],
        "default",
    )
    .await;
    // A task row as a hand edit could leave it: the store does not check
    // commands, so the pages must escape whatever a row holds.
    let odd = add_task(&db, "odd", &["--name", SCRIPT], SCRIPT).await;
    let now = Utc::now();
    insert_execution(
        &db,
        &task,
        "success",
        now - TimeDelta::minutes(5),
        Some(1.5),
        "done",
    );
    insert_execution(
        &db,
        &odd,
        "error",
        now - TimeDelta::minutes(3),
        Some(0.5),
        SCRIPT,
    );
    let server = Server::start(dashboard(&db)).await;

    let paths = [
        "/".to_owned(),
        "/tasks".to_owned(),
        format!("/tasks/{}", odd.id),
        format!("/tasks/{}/edit", odd.id),
        format!("/tasks/{}/delete", odd.id),
        "/executions".to_owned(),
        "/executions/2".to_owned(),
    ];
    let mut responses = Vec::new();
    for path in &paths {
        responses.push((path.clone(), server.get(path).await));
    }
    let new_form = server.get("/tasks/new").await;
    let task_page = server.get(&format!("/tasks/{}", task.id)).await;
    server.stop().await;

    for (path, response) in &responses {
        assert_html(response, path);
        assert_escaped(response, path);
    }
    assert_html(&new_form, "/tasks/new");
    assert!(new_form.text().contains("name=\"command\""));
    assert!(
        new_form.text().contains("clear_successful_executions"),
        "the registered commands are offered"
    );

    let overview = responses[0].1.text();
    assert!(overview.contains("Recent failures"), "{overview}");
    assert!(overview.contains("Executions by status"), "{overview}");
    let tasks = responses[1].1.text();
    assert!(tasks.contains("clear_successful_executions"), "{tasks}");
    assert!(tasks.contains("every 1m"), "the schedule is shown: {tasks}");
    let execution = responses[6].1.text();
    assert!(execution.contains("<pre class=\"output\">"), "{execution}");

    assert_html(&task_page, "/tasks/1");
    let text = task_page.text();
    assert!(text.contains("Next runs"), "{text}");
    assert!(
        text.contains("<svg class=\"chart\""),
        "the runtime chart is inline: {text}"
    );
    assert!(text.contains("--before-minutes"), "{text}");
}

async fn overview_counts_recent_executions(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = add_task(&db, "counted", &[], "default").await;
    let now = Utc::now();
    // Two errors in the last hour, one more in the last day, one older.
    for minutes in [10, 20, 120, 60 * 30] {
        insert_execution(
            &db,
            &task,
            "error",
            now - TimeDelta::minutes(minutes),
            Some(1.0),
            "failed",
        );
    }
    insert_execution(
        &db,
        &task,
        "success",
        now - TimeDelta::minutes(5),
        Some(1.0),
        "ok",
    );
    insert_execution(&db, &task, "ongoing", now - TimeDelta::minutes(1), None, "");
    let server = Server::start(dashboard(&db)).await;

    let response = server.get("/").await;
    server.stop().await;

    assert_html(&response, "/");
    let text = response.text();
    let row = |status: &str, hour: u32, day: u32| {
        format!(
            "status-{status}\">{status}</span></a></td><td class=\"number\">{hour}</td>\
             <td class=\"number\">{day}</td>"
        )
    };
    assert!(text.contains(&row("error", 2, 3)), "{text}");
    assert!(text.contains(&row("success", 1, 1)), "{text}");
    assert!(text.contains(&row("ongoing", 1, 1)), "{text}");
    assert!(text.contains(&row("killed", 0, 0)), "{text}");
    assert!(
        !text.contains("data-refresh"),
        "the overview does not reload itself"
    );
}

async fn pause_resume_and_run_now_write(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = add_task(&db, "beat", &[], "default").await;
    let later = Utc::now() + TimeDelta::hours(2);
    db.store()
        .update_task(
            task.id,
            quicksilver::TaskChanges {
                next_run: Some(later),
                ..Default::default()
            },
        )
        .await
        .expect("the next run moves");
    let server = Server::start(dashboard(&db)).await;
    let session = Session::start(&server, "/tasks").await;

    let paused = session
        .post(
            &server,
            &format!("/tasks/{}/pause", task.id),
            &[("return_to", "tasks?queue=default")],
        )
        .await;
    let after_pause = db.task(task.id).await;
    let resumed = session
        .post(&server, &format!("/tasks/{}/resume", task.id), &[])
        .await;
    let after_resume = db.task(task.id).await;
    let before_run = Utc::now();
    let run = session
        .post(&server, &format!("/tasks/{}/run", task.id), &[])
        .await;
    let after_run = db.task(task.id).await;
    let notice_page = server
        .get("/tasks?queue=default&notice=paused&task=1")
        .await;
    server.stop().await;

    assert_eq!(paused.status, 303, "{}", paused.text());
    assert_eq!(
        paused.header("location"),
        Some(format!("../../tasks?queue=default&notice=paused&task={}", task.id).as_str())
    );
    assert!(after_pause.paused, "the pause is written");
    assert_eq!(resumed.status, 303, "{}", resumed.text());
    assert_eq!(
        resumed.header("location"),
        Some(format!("../../tasks/{}?notice=resumed&task={}", task.id, task.id).as_str())
    );
    assert!(!after_resume.paused, "the resume is written");
    assert_eq!(run.status, 303, "{}", run.text());
    assert!(
        after_run.next_run <= Utc::now()
            && after_run.next_run >= before_run - TimeDelta::seconds(1),
        "run now makes the task due now: {}",
        after_run.next_run
    );
    assert!(
        notice_page.text().contains("is paused"),
        "{}",
        notice_page.text()
    );
}

async fn forms_without_valid_token_are_rejected(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = add_task(&db, "beat", &[], "default").await;
    let server = Server::start(dashboard(&db)).await;
    let session = Session::start(&server, "/tasks").await;
    let other = Session::start(&server, "/tasks").await;
    let path = format!("/tasks/{}/pause", task.id);
    let cookie = format!("quicksilver_csrf={}", session.token);

    let attempts = [
        (
            "no token",
            HttpRequest::new("POST", &path)
                .header("Cookie", &cookie)
                .form(&[]),
        ),
        (
            "another session's token",
            HttpRequest::new("POST", &path)
                .header("Cookie", &cookie)
                .form(&[("csrf_token", &other.token)]),
        ),
        (
            "no cookie",
            HttpRequest::new("POST", &path).form(&[("csrf_token", &session.token)]),
        ),
        (
            "cross-site fetch",
            HttpRequest::new("POST", &path)
                .header("Cookie", &cookie)
                .header("Sec-Fetch-Site", "cross-site")
                .form(&[("csrf_token", &session.token)]),
        ),
        (
            "foreign origin",
            HttpRequest::new("POST", &path)
                .header("Cookie", &cookie)
                .header("Origin", "http://evil.test")
                .form(&[("csrf_token", &session.token)]),
        ),
    ];
    let mut responses = Vec::new();
    for (label, request) in attempts {
        responses.push((label, server.send(request).await));
    }
    let delete = server
        .send(
            HttpRequest::new("POST", &format!("/tasks/{}/delete", task.id))
                .header("Cookie", &cookie)
                .form(&[("csrf_token", "forged")]),
        )
        .await;
    let edit = server
        .send(
            HttpRequest::new("POST", &format!("/tasks/{}/edit", task.id))
                .header("Cookie", &cookie)
                .form(&as_pairs(&form_of(&task, &[("every", "5")]))),
        )
        .await;
    let after = db.task(task.id).await;
    server.stop().await;

    for (label, response) in responses {
        assert_eq!(response.status, 403, "{label}: {}", response.text());
        assert!(
            response.text().contains("nothing was written"),
            "{label}: {}",
            response.text()
        );
    }
    assert_eq!(delete.status, 403, "{}", delete.text());
    assert_eq!(edit.status, 403, "{}", edit.text());
    assert_eq!(after, task, "no rejected form changed the task");
}

async fn edit_saves_every_field(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = add_task(&db, "clear_successful_executions", &[], "default").await;
    let server = Server::start(dashboard(&db)).await;
    let session = Session::start(&server, &format!("/tasks/{}/edit", task.id)).await;

    let fields = form_of(
        &task,
        &[
            ("arguments", "--before-minutes\r\n30\r\n"),
            ("queue", "slow"),
            ("schedule", "cron"),
            ("cron", "0 30 2 * * *"),
            ("time_zone", "Europe/Paris"),
            ("max_duration", "120"),
            ("alerts_postponed_until", "2030-01-02 03:04:05"),
            ("alert_on_failure", "yes"),
            ("paused", "on"),
        ],
    );
    let saved = session
        .post(
            &server,
            &format!("/tasks/{}/edit", task.id),
            &as_pairs(&fields),
        )
        .await;
    let after = db.task(task.id).await;
    server.stop().await;

    assert_eq!(saved.status, 303, "{}", saved.text());
    assert_eq!(
        saved.header("location"),
        Some(format!("../../tasks/{}?notice=saved&task={}", task.id, task.id).as_str())
    );
    assert_eq!(after.arguments, ["--before-minutes", "30"]);
    assert_eq!(after.queue, "slow");
    assert_eq!(after.cron.as_deref(), Some("0 30 2 * * *"));
    assert_eq!(after.time_zone.as_deref(), Some("Europe/Paris"));
    assert_eq!(after.repeat_interval, None);
    assert_eq!(after.max_duration, Some(120));
    assert_eq!(
        after.alerts_postponed_until,
        Some("2030-01-02T03:04:05Z".parse().expect("a time"))
    );
    assert_eq!(after.alert_on_failure, Some(true));
    assert!(after.paused);
    // The schedule changed and the next run field did not, so the next
    // run moved to the cron's first tick: 02:30 in Paris.
    let paris = after.next_run.with_timezone(&chrono_tz::Europe::Paris);
    assert_eq!(
        paris.format("%H:%M:%S").to_string(),
        "02:30:00",
        "{}",
        after.next_run
    );
}

async fn invalid_edit_answers_422_unchanged(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = add_task(&db, "clear_successful_executions", &[], "default").await;
    let server = Server::start(dashboard(&db)).await;
    let session = Session::start(&server, &format!("/tasks/{}/edit", task.id)).await;
    let path = format!("/tasks/{}/edit", task.id);

    let cases: [(&[(&'static str, &str)], &str); 7] = [
        (
            &[("every", "abc")],
            "The repeat interval `abc` is not a whole number of seconds",
        ),
        (&[("every", "0")], "Invalid repeat interval 0"),
        (
            &[("schedule", "cron"), ("cron", "every minute")],
            "Invalid cron expression `every minute`",
        ),
        (
            &[
                ("schedule", "cron"),
                ("cron", "0 * * * * *"),
                ("time_zone", "Mars/Olympus"),
            ],
            "Unknown time zone `Mars/Olympus`",
        ),
        (
            &[("command", "no_such_command")],
            "Unknown command `no_such_command`",
        ),
        (
            &[("arguments", "--no-such-flag")],
            "Invalid arguments for command `clear_successful_executions`",
        ),
        (
            &[("max_duration", "ten")],
            "The max duration `ten` is not a whole number of seconds",
        ),
    ];
    let mut responses = Vec::new();
    for (changes, _) in &cases {
        let fields = form_of(&task, changes);
        responses.push(session.post(&server, &path, &as_pairs(&fields)).await);
    }
    let after = db.task(task.id).await;
    server.stop().await;

    for ((changes, message), response) in cases.iter().zip(&responses) {
        assert_eq!(response.status, 422, "{changes:?}: {}", response.text());
        let text = response.text();
        assert!(
            text.contains(message),
            "{changes:?}: no `{message}` in\n{text}"
        );
        assert!(text.contains("Nothing was saved"), "{changes:?}");
        for (name, value) in changes.iter() {
            if *name != "schedule" {
                assert!(
                    text.contains(&format!("value=\"{value}\""))
                        || text.contains(&format!(">{value}</textarea>")),
                    "{changes:?}: the form shows the typed `{value}` again"
                );
            }
        }
    }
    assert_eq!(after, task, "no invalid form changed the task");
}

async fn add_creates_task_or_answers_422(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let server = Server::start(dashboard(&db)).await;
    let session = Session::start(&server, "/tasks/new").await;
    let base = [
        ("command", "clear_ongoing_executions"),
        ("arguments", ""),
        ("queue", "nightly"),
        ("schedule", "every"),
        ("every", "300"),
        ("cron", ""),
        ("time_zone", "UTC"),
        ("max_duration", "60"),
        ("next_run", ""),
        ("alert_on_failure", "no"),
    ];

    let invalid: Vec<(&str, &str)> = base
        .iter()
        .map(|&(name, value)| {
            if name == "every" {
                (name, "-5")
            } else {
                (name, value)
            }
        })
        .collect();
    let rejected = session.post(&server, "/tasks/new", &invalid).await;
    let after_rejected = db.store().tasks(Default::default()).await.expect("tasks");
    let created = session.post(&server, "/tasks/new", &base).await;
    let tasks = db.store().tasks(Default::default()).await.expect("tasks");
    server.stop().await;

    assert_eq!(rejected.status, 422, "{}", rejected.text());
    assert!(
        rejected
            .text()
            .contains("The repeat interval `-5` is not a whole number"),
        "{}",
        rejected.text()
    );
    assert!(after_rejected.is_empty(), "{after_rejected:?}");

    assert_eq!(created.status, 303, "{}", created.text());
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    let task = &tasks[0];
    assert_eq!(task.command, "clear_ongoing_executions");
    assert_eq!(task.queue, "nightly");
    assert_eq!(task.repeat_interval, Some(300));
    assert_eq!(task.max_duration, Some(60));
    assert_eq!(task.alert_on_failure, Some(false));
    assert_eq!(
        created.header("location"),
        Some(format!("../tasks/{}?notice=created&task={}", task.id, task.id).as_str())
    );
}

async fn delete_confirms_then_deletes(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = add_task(&db, "beat", &[], "default").await;
    insert_execution(&db, &task, "success", Utc::now(), Some(1.0), "kept");
    let server = Server::start(dashboard(&db)).await;
    let session = Session::start(&server, &format!("/tasks/{}/delete", task.id)).await;

    let confirmation = server.get(&format!("/tasks/{}/delete", task.id)).await;
    let still_there = db.store().task(task.id).await;
    let deleted = session
        .post(&server, &format!("/tasks/{}/delete", task.id), &[])
        .await;
    let gone = db.store().task(task.id).await;
    let executions = db.all_executions().await;
    let again = session
        .post(&server, &format!("/tasks/{}/delete", task.id), &[])
        .await;
    server.stop().await;

    assert_html(&confirmation, "the confirmation");
    assert!(
        confirmation.text().contains("Delete the task"),
        "{}",
        confirmation.text()
    );
    assert!(
        still_there.is_ok(),
        "showing the confirmation deletes nothing"
    );
    assert_eq!(deleted.status, 303, "{}", deleted.text());
    assert_eq!(
        deleted.header("location"),
        Some(format!("../../tasks?notice=deleted&task={}", task.id).as_str())
    );
    assert!(gone.is_err(), "the task is deleted");
    assert_eq!(executions.len(), 1, "its execution stays");
    assert_eq!(executions[0].task_id, None, "detached from the task");
    assert_eq!(again.status, 404, "{}", again.text());
}

async fn unknown_ids_answer_404(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let server = Server::start(dashboard(&db)).await;
    let session = Session::start(&server, "/tasks/new").await;

    let mut responses = Vec::new();
    for path in [
        "/tasks/999",
        "/tasks/999/edit",
        "/tasks/999/delete",
        "/executions/999",
        "/tasks/abc",
        "/no/such/page",
    ] {
        responses.push((path, server.get(path).await));
    }
    for path in [
        "/tasks/999/pause",
        "/tasks/999/resume",
        "/tasks/999/run",
        "/tasks/999/delete",
    ] {
        responses.push((path, session.post(&server, path, &[]).await));
    }
    let edit = session
        .post(
            &server,
            "/tasks/999/edit",
            &[("command", "beat"), ("every", "5")],
        )
        .await;
    server.stop().await;

    for (path, response) in &responses {
        assert_eq!(response.status, 404, "{path}: {}", response.text());
        assert_eq!(
            response.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
    }
    assert!(
        responses[0].1.text().contains("Task 999 not found"),
        "{}",
        responses[0].1.text()
    );
    assert!(
        responses[3].1.text().contains("Execution 999 not found"),
        "{}",
        responses[3].1.text()
    );
    assert!(
        responses[4].1.text().contains("task `abc` not found"),
        "{}",
        responses[4].1.text()
    );
    assert_eq!(edit.status, 404, "{}", edit.text());
}

async fn executions_filter_and_paginate(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let first = add_task(&db, "first", &[], "default").await;
    let second = add_task(&db, "second", &[], "default").await;
    let start = Utc::now() - TimeDelta::hours(3);
    // 120 executions, oldest first: every third is an error of `second`;
    // runtimes cycle through 10 s, 120 s, 4000 s and 30 s.
    for index in 0..120_i64 {
        let (task, status) = if index % 3 == 0 {
            (&second, "error")
        } else {
            (&first, "success")
        };
        let runtime = [10.0, 120.0, 4000.0, 30.0][(index % 4) as usize];
        let output = if index == 7 {
            "found the Needle here"
        } else {
            "plain"
        };
        insert_execution(
            &db,
            task,
            status,
            start + TimeDelta::seconds(index),
            Some(runtime),
            output,
        );
    }
    let server = Server::start(dashboard(&db)).await;

    let page_one = server.get("/executions").await;
    let older = link_to(page_one.text(), "Older →");
    let page_two = server.get(&resolve("/executions", &older)).await;
    let older = link_to(page_two.text(), "Older →");
    let page_three = server.get(&resolve("/executions", &older)).await;
    let errors = server.get("/executions?status=error").await;
    let of_second = server.get(&format!("/executions?task={}", second.id)).await;
    let long = server.get("/executions?runtime=over-1h").await;
    let medium = server.get("/executions?runtime=1-5m&status=success").await;
    let search = server.get("/executions?q=needle").await;
    let bad_status = server.get("/executions?status=done").await;
    let bad_runtime = server.get("/executions?runtime=forever").await;
    server.stop().await;

    let all: Vec<i64> = (1..=120).rev().collect();
    assert_html(&page_one, "/executions");
    assert_eq!(listed_executions(page_one.text()), all[..50]);
    assert!(older.contains("before=21"), "{older}");
    assert_eq!(listed_executions(page_two.text()), all[50..100]);
    assert_eq!(listed_executions(page_three.text()), all[100..]);
    assert!(
        !page_three.text().contains("Older →"),
        "the last page has no older link"
    );
    assert!(page_three.text().contains(">Newest</a>"));

    // Ids are 1-based: execution `id` is index `id - 1`.
    let expected = |keep: &dyn Fn(i64) -> bool| -> Vec<i64> {
        (1..=120).rev().filter(|id| keep(id - 1)).take(50).collect()
    };
    assert_eq!(
        listed_executions(errors.text()),
        expected(&|index| index % 3 == 0)
    );
    assert_eq!(
        listed_executions(of_second.text()),
        expected(&|index| index % 3 == 0)
    );
    assert_eq!(
        listed_executions(long.text()),
        expected(&|index| index % 4 == 2)
    );
    assert_eq!(
        listed_executions(medium.text()),
        expected(&|index| index % 4 == 1 && index % 3 != 0)
    );
    assert_eq!(listed_executions(search.text()), [8]);
    assert!(
        search.text().contains("scan at most 10000"),
        "{}",
        search.text()
    );
    assert_eq!(bad_status.status, 400, "{}", bad_status.text());
    assert!(
        bad_status.text().contains("unknown status `done`"),
        "{}",
        bad_status.text()
    );
    assert_eq!(bad_runtime.status, 400, "{}", bad_runtime.text());
}

async fn tasks_filter_by_queue_and_search(database: TestDatabase) {
    let db = TestDb::open(database).await;
    add_task(&db, "alpha", &["--Target", "files_100%"], "default").await;
    add_task(&db, "beta", &[], "slow").await;
    add_task(&db, "gamma", &["--target", "db"], "slow").await;
    let server = Server::start(dashboard(&db)).await;

    let slow = server.get("/tasks?queue=slow").await;
    let search = server.get("/tasks?q=TARGET").await;
    let wildcard = server.get("/tasks?q=100%25").await;
    let underscore = server.get("/tasks?q=file_").await;
    server.stop().await;

    let commands = |response: &HttpResponse| -> Vec<&str> {
        ["alpha", "beta", "gamma"]
            .into_iter()
            .filter(|command| response.text().contains(&format!(">{command}</a>")))
            .collect()
    };
    assert_eq!(commands(&slow), ["beta", "gamma"]);
    assert_eq!(
        commands(&search),
        ["alpha", "gamma"],
        "the search ignores case"
    );
    assert_eq!(commands(&wildcard), ["alpha"], "`%` is searched as text");
    assert_eq!(
        commands(&underscore),
        Vec::<&str>::new(),
        "`_` is searched as text"
    );
}

#[tokio::test]
async fn output_search_scans_a_bounded_window() {
    let db = TestDb::new().await;
    assert_eq!(db.backend(), Backend::Sqlite);
    let task = add_task(&db, "many", &[], "default").await;
    insert_execution(&db, &task, "error", Utc::now(), Some(1.0), "the needle");
    // 10 050 newer executions without the needle, in one statement.
    db.database().execute_sql(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10050) \
         INSERT INTO quicksilver_executions \
         (task_id, command, arguments, queue, status, started, ended, runtime_seconds, output) \
         SELECT {}, 'many', '[]', 'default', 'success', '{now}', '{now}', 1.0, 'hay' FROM n",
        task.id,
        now = sql_time(Utc::now()),
    ));
    let server = Server::start(dashboard(&db)).await;

    let first = server.get("/executions?q=needle").await;
    let older = link_to(first.text(), "Older →");
    let second = server.get(&resolve("/executions", &older)).await;
    server.stop().await;

    assert_html(&first, "the first window");
    assert!(
        listed_executions(first.text()).is_empty(),
        "the needle is below the first window"
    );
    assert!(
        first.text().contains("this page looked at ids 52 to 10051"),
        "{}",
        first.text()
    );
    assert!(older.contains("before=52"), "{older}");
    assert_eq!(listed_executions(second.text()), [1]);
}

#[tokio::test]
async fn ongoing_execution_page_reloads() {
    let db = TestDb::new().await;
    let task = add_task(&db, "long", &[], "default").await;
    insert_execution(
        &db,
        &task,
        "ongoing",
        Utc::now() - TimeDelta::seconds(30),
        None,
        "step 1",
    );
    insert_execution(&db, &task, "success", Utc::now(), Some(2.0), "done");
    let server = Server::start(dashboard(&db)).await;

    let ongoing = server.get("/executions/1").await;
    let finished = server.get("/executions/2").await;
    let listing = server.get("/executions?status=success").await;
    let with_ongoing = server.get("/executions").await;
    server.stop().await;

    assert!(
        ongoing.text().contains("<body data-refresh=\"5\">"),
        "{}",
        ongoing.text()
    );
    assert!(
        !finished.text().contains("data-refresh"),
        "{}",
        finished.text()
    );
    assert!(!listing.text().contains("data-refresh"));
    assert!(with_ongoing.text().contains("data-refresh=\"5\""));
}

#[tokio::test]
async fn assets_are_versioned_and_cached() {
    let db = TestDb::new().await;
    let server = Server::start(dashboard(&db)).await;

    let page = server.get("/tasks").await;
    let text = page.text();
    let style = text
        .split("rel=\"stylesheet\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a style sheet link")
        .to_owned();
    let css = server.get(&resolve("/tasks", &style)).await;
    let script = server
        .get(&resolve(
            "/tasks",
            &style.replace("dashboard.css", "dashboard.js"),
        ))
        .await;
    let old = server.get("/assets/0000000000000000/dashboard.css").await;
    server.stop().await;

    assert!(style.starts_with("./assets/"), "{style}");
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(
        css.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert!(css.text().contains("svg.chart"));
    assert_eq!(script.status, 200);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(script.text().contains("data-refresh"));
    assert_eq!(old.status, 404);
}

#[tokio::test]
async fn links_work_under_any_prefix() {
    let db = TestDb::new().await;
    let task = add_task(&db, "clear_successful_executions", &[], "default").await;
    let app = Router::new().nest("/admin/jobs", dashboard(&db));
    let server = Server::start(app).await;

    let root = server.get("/admin/jobs").await;
    let tasks_href = link_to(root.text(), "Tasks");
    let tasks_path = resolve("/admin/jobs", &tasks_href);
    let tasks = server.get(&tasks_path).await;
    let task_path = resolve(
        &tasks_path,
        &link_to(tasks.text(), "clear_successful_executions"),
    );
    let task_page = server.get(&task_path).await;
    let overview_path = resolve(&task_path, &link_to(task_page.text(), "Overview"));
    let edit_path = resolve(&task_path, &link_to(task_page.text(), "Edit"));
    let status = server.get("/admin/jobs/status").await;

    let session = Session::start(&server, &edit_path).await;
    let paused = session
        .post(
            &server,
            &format!("/admin/jobs/tasks/{}/pause", task.id),
            &[],
        )
        .await;
    let location = paused.header("location").unwrap_or_default().to_owned();
    let after = server
        .get(&resolve(
            &format!("/admin/jobs/tasks/{}/pause", task.id),
            &location,
        ))
        .await;
    server.stop().await;

    assert_eq!(tasks_href, "jobs/tasks");
    assert_eq!(tasks_path, "/admin/jobs/tasks");
    assert_html(&tasks, &tasks_path);
    assert_eq!(task_path, format!("/admin/jobs/tasks/{}", task.id));
    assert_html(&task_page, &task_path);
    assert_eq!(overview_path, "/admin/jobs/");
    assert_eq!(edit_path, format!("/admin/jobs/tasks/{}/edit", task.id));
    assert_eq!(status.status, 200, "the status endpoint is served too");
    assert_eq!(status.json()["status"], "ok");
    assert_eq!(paused.status, 303, "{}", paused.text());
    assert_html(&after, &location);
    assert!(after.text().contains("is paused"), "{}", after.text());
}

#[tokio::test]
async fn foreign_hosts_need_auth_or_allowing() {
    let db = TestDb::new().await;
    let open = Server::start(dashboard(&db)).await;
    let allowing = Server::start(
        Dashboard::new(db.store().clone())
            .allowed_hosts(["ops.example.com"])
            .build(),
    )
    .await;
    let guarded = Server::start(
        Dashboard::new(db.store().clone())
            .auth(Auth::bearer("t0ken"))
            .build(),
    )
    .await;
    let as_host = |path: &str, host: &str| HttpRequest::new("GET", path).header("Host", host);

    // A page that points its own name at 127.0.0.1 gets nothing.
    let rebound = open
        .send(as_host("/tasks", "rebind.attacker.test:8080"))
        .await;
    assert_eq!(rebound.status, 421, "{}", rebound.text());
    assert!(
        rebound.text().contains("rebind.attacker.test:8080"),
        "{}",
        rebound.text()
    );
    let rebound_post = open
        .send(
            HttpRequest::new("POST", "/tasks/1/pause")
                .header("Host", "rebind.attacker.test")
                .form(&[("csrf_token", "x")]),
        )
        .await;
    assert_eq!(rebound_post.status, 421, "{}", rebound_post.text());
    // Loopback names, with or without a port, get the page.
    for host in ["localhost", "localhost:8080", "127.0.0.1:9", "[::1]:8080"] {
        let page = open.send(as_host("/tasks", host)).await;
        assert_eq!(page.status, 200, "Host {host}: {}", page.text());
    }
    // Allowed names get the page, others get 421.
    let allowed = allowing.send(as_host("/tasks", "OPS.example.com")).await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    let other = allowing
        .send(as_host("/tasks", "ops.example.com.evil.test"))
        .await;
    assert_eq!(other.status, 421, "{}", other.text());
    // With auth, credentials decide, whatever the host.
    let with_token = guarded
        .send(as_host("/tasks", "ops.internal:8080").header("Authorization", "Bearer t0ken"))
        .await;
    assert_eq!(with_token.status, 200, "{}", with_token.text());
}

#[tokio::test]
async fn auth_layers_require_credentials() {
    let db = TestDb::new().await;
    let bearer = Dashboard::new(db.store().clone())
        .auth(Auth::bearer("t0ken"))
        .build();
    let basic = Dashboard::new(db.store().clone())
        .auth(Auth::basic("admin", "pa55"))
        .public_status()
        .build();
    let layered = Router::new()
        .nest("/quicksilver", Dashboard::new(db.store().clone()).build())
        .layer(axum::middleware::from_fn_with_state(
            Auth::bearer("t0ken"),
            quicksilver::dashboard::require_auth,
        ));
    let bearer = Server::start(bearer).await;
    let basic = Server::start(basic).await;
    let layered = Server::start(layered).await;
    let with = |path: &str, authorization: &str| {
        HttpRequest::new("GET", path).header("Authorization", authorization)
    };

    let bearer_none = bearer.get("/tasks").await;
    let bearer_wrong = bearer.send(with("/tasks", "Bearer t0ke")).await;
    let bearer_ok = bearer.send(with("/tasks", "Bearer t0ken")).await;
    let bearer_status = bearer.get("/status").await;
    let bearer_post = bearer.request("POST", "/tasks/1/pause").await;
    // "admin:pa55" and "admin:wrong" in base64.
    let basic_none = basic.get("/").await;
    let basic_wrong = basic.send(with("/", "Basic YWRtaW46d3Jvbmc=")).await;
    let basic_ok = basic.send(with("/", "Basic YWRtaW46cGE1NQ==")).await;
    let basic_status = basic.get("/status").await;
    let layered_none = layered.get("/quicksilver/executions").await;
    let layered_ok = layered
        .send(with("/quicksilver/executions", "Bearer t0ken"))
        .await;
    bearer.stop().await;
    basic.stop().await;
    layered.stop().await;

    for response in [
        &bearer_none,
        &bearer_wrong,
        &bearer_status,
        &bearer_post,
        &layered_none,
    ] {
        assert_eq!(response.status, 401, "{}", response.text());
        assert_eq!(
            response.header("www-authenticate"),
            Some("Bearer realm=\"quicksilver\"")
        );
    }
    for response in [&basic_none, &basic_wrong] {
        assert_eq!(response.status, 401, "{}", response.text());
        assert_eq!(
            response.header("www-authenticate"),
            Some("Basic realm=\"quicksilver\", charset=\"UTF-8\"")
        );
    }
    assert_html(&bearer_ok, "/tasks with the token");
    assert_html(&basic_ok, "/ with the password");
    assert_html(&layered_ok, "/quicksilver/executions with the token");
    assert_eq!(
        basic_status.status, 200,
        "public_status leaves /status open"
    );
}
