//! The status endpoint over real HTTP: the router served by `axum::serve`
//! on a loopback port and read with a minimal HTTP/1.1 client, on each
//! backend.
//!
//! The routers run on a [`TestClock`] set to [`now`]. The tests write the
//! tasks through the store and the executions with SQL, since no public API
//! records an execution with a chosen status, start and runtime.

use axum::Router;
use chrono::{DateTime, TimeDelta, TimeZone as _, Utc};
use quicksilver::http::StatusRouter;
use quicksilver::{NewTask, Schedule, Task, TestClock};
use serde_json::{json, Value};
use support::history::{self, sql_time};
use support::http::{HttpResponse, Server};
use support::{TestDatabase, TestDb};

/// Returns the time the routers' clocks start at.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0)
        .single()
        .expect("a valid time")
}

/// Returns a router builder on the test database, with a clock at [`now`].
fn status_router(db: &TestDb) -> StatusRouter {
    StatusRouter::new(db.store().clone()).clock(TestClock::starting_at(now()))
}

/// Adds a task of `command`, repeating every minute, on `queue`, due at
/// `next_run`, and last changed a day before it, so that it has waited
/// since `next_run`.
async fn add_task(db: &TestDb, command: &str, queue: &str, next_run: DateTime<Utc>) -> Task {
    let schedule = Schedule::every(60).expect("a valid interval");
    let task = db
        .add_task(
            NewTask::new(command, schedule)
                .queue(queue)
                .next_run(next_run),
        )
        .await;
    db.database().execute_sql(&format!(
        "UPDATE quicksilver_tasks SET updated_at = '{}' WHERE id = {}",
        sql_time(next_run - chrono::TimeDelta::days(1)),
        task.id
    ));
    db.task(task.id).await
}

/// Records an execution of `task` with `status`, started at `started`. A
/// finished one ends `runtime` seconds later; an `ongoing` one has no end
/// and no runtime.
fn insert_execution(
    db: &TestDb,
    task: &Task,
    status: &str,
    started: DateTime<Utc>,
    runtime: Option<f64>,
) {
    history::insert_execution(db.database(), task, status, started, runtime, "");
}

/// Returns the issue of the task with `task_id`.
fn issue_of(report: &Value, task_id: i64) -> &Value {
    report["issues"]
        .as_array()
        .expect("`issues` is an array")
        .iter()
        .find(|issue| issue["task_id"] == task_id)
        .unwrap_or_else(|| panic!("no issue of task {task_id} in {report:#}"))
}

/// Returns the task ids of the issues, in their order.
fn issue_task_ids(report: &Value) -> Vec<i64> {
    report["issues"]
        .as_array()
        .expect("`issues` is an array")
        .iter()
        .map(|issue| issue["task_id"].as_i64().expect("`task_id` is a number"))
        .collect()
}

fn assert_no_store(response: &HttpResponse) {
    assert_eq!(
        response.header("cache-control"),
        Some("no-store"),
        "Cache-Control of {response:?}"
    );
}

support::backend_tests! {
    #[tokio::test]
    async fn empty_database_answers_200_ok(database: TestDatabase);

    #[tokio::test]
    async fn overdue_task_answers_503(database: TestDatabase);

    #[tokio::test]
    async fn always_ok_answers_200_with_issues(database: TestDatabase);

    #[tokio::test]
    async fn running_queue_is_not_overdue(database: TestDatabase);

    #[tokio::test]
    async fn issues_carry_runtime_figures(database: TestDatabase);

    #[tokio::test]
    async fn running_task_with_one_run_is_an_issue(database: TestDatabase);

    #[tokio::test]
    async fn unreadable_database_answers_503_with_error(database: TestDatabase);

    #[tokio::test]
    async fn post_is_method_not_allowed(database: TestDatabase);

    #[tokio::test]
    async fn nested_router_serves_under_prefix(database: TestDatabase);
}

async fn empty_database_answers_200_ok(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let server = Server::start(status_router(&db).build()).await;

    let response = server.get("/status").await;
    server.stop().await;

    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_no_store(&response);
    let report = response.json();
    assert_eq!(report["status"], "ok", "{report:#}");
    assert_eq!(report["issues"], json!([]), "{report:#}");
    let checked_at = report["checked_at"]
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .unwrap_or_else(|| panic!("`checked_at` is an RFC 3339 time: {report:#}"));
    let offset = checked_at.with_timezone(&Utc) - now();
    assert!(
        offset >= TimeDelta::zero() && offset < TimeDelta::seconds(30),
        "`checked_at` is the router's clock: {report:#}"
    );
}

async fn overdue_task_answers_503(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = add_task(&db, "beat", "default", now() - TimeDelta::minutes(10)).await;
    let server = Server::start(status_router(&db).build()).await;

    let response = server.get("/status").await;
    server.stop().await;

    assert_eq!(response.status, 503, "{response:?}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_no_store(&response);
    let report = response.json();
    assert_eq!(report["status"], "error", "{report:#}");
    assert_eq!(issue_task_ids(&report), vec![task.id], "{report:#}");
    let issue = issue_of(&report, task.id);
    assert_eq!(issue["task"], "beat", "{issue:#}");
    assert_eq!(issue["kind"], "overdue", "{issue:#}");
    assert_eq!(issue["queue"], "default", "{issue:#}");
    assert_eq!(issue["outlier_threshold"], 120.0, "{issue:#}");
    let overdue = issue["overdue"].as_f64().expect("`overdue` is a number");
    assert!(
        (600.0..630.0).contains(&overdue),
        "overdue by about 600 s: {issue:#}"
    );
    assert_eq!(issue["next_run"], "2026-03-02T11:50:00.000Z", "{issue:#}");
    assert!(issue.get("issue").is_none(), "{issue:#}");
}

async fn always_ok_answers_200_with_issues(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = add_task(&db, "beat", "default", now() - TimeDelta::minutes(10)).await;
    let server = Server::start(status_router(&db).always_ok().build()).await;

    let response = server.get("/status").await;
    server.stop().await;

    assert_eq!(response.status, 200, "{response:?}");
    assert_no_store(&response);
    let report = response.json();
    assert_eq!(report["status"], "error", "{report:#}");
    assert_eq!(issue_task_ids(&report), vec![task.id], "{report:#}");
    assert_eq!(issue_of(&report, task.id)["kind"], "overdue");
}

async fn running_queue_is_not_overdue(database: TestDatabase) {
    let db = TestDb::open(database).await;
    // `late` waits behind `long_run`, which runs on the same queue; `other`
    // is on another queue, where nothing runs.
    let late = add_task(&db, "late", "default", now() - TimeDelta::minutes(10)).await;
    let long_run = add_task(&db, "long_run", "default", now() + TimeDelta::hours(1)).await;
    let other = add_task(&db, "other", "other", now() - TimeDelta::minutes(10)).await;
    insert_execution(
        &db,
        &long_run,
        "ongoing",
        now() - TimeDelta::minutes(15),
        None,
    );
    let server = Server::start(status_router(&db).build()).await;

    let response = server.get("/status").await;
    server.stop().await;

    let report = response.json();
    let ids = issue_task_ids(&report);
    assert!(
        !ids.contains(&late.id),
        "a task whose queue runs is not overdue: {report:#}"
    );
    assert_eq!(ids, vec![other.id], "{report:#}");
    assert_eq!(response.status, 503, "{response:?}");
}

async fn issues_carry_runtime_figures(database: TestDatabase) {
    let db = TestDb::open(database).await;
    // Most overdue first: `five_runs` by 12 minutes, `one_run` by 11 and
    // `no_runs` by 10.
    let no_runs = add_task(&db, "no_runs", "default", now() - TimeDelta::minutes(10)).await;
    let one_run = add_task(&db, "one_run", "default", now() - TimeDelta::minutes(11)).await;
    let five_runs = add_task(&db, "five_runs", "default", now() - TimeDelta::minutes(12)).await;
    insert_execution(
        &db,
        &one_run,
        "success",
        now() - TimeDelta::hours(1),
        Some(2.5),
    );
    for (hours, runtime) in [(5, 1.0), (4, 2.0), (3, 3.0), (2, 4.0), (1, 10.0)] {
        let started = now() - TimeDelta::hours(hours);
        insert_execution(&db, &five_runs, "success", started, Some(runtime));
    }
    // Failed runs are left out of the figures.
    insert_execution(
        &db,
        &five_runs,
        "error",
        now() - TimeDelta::minutes(30),
        Some(50.0),
    );
    let server = Server::start(status_router(&db).build()).await;

    let response = server.get("/status").await;
    server.stop().await;

    assert_eq!(response.status, 503, "{response:?}");
    let report = response.json();
    assert_eq!(
        issue_task_ids(&report),
        vec![five_runs.id, one_run.id, no_runs.id],
        "{report:#}"
    );

    let issue = issue_of(&report, no_runs.id);
    assert_eq!(issue["runs"], 0, "{issue:#}");
    assert_eq!(issue["p95_runtime"], Value::Null, "{issue:#}");
    assert_eq!(issue["last_success"], Value::Null, "{issue:#}");

    let issue = issue_of(&report, one_run.id);
    assert_eq!(issue["runs"], 1, "{issue:#}");
    assert_eq!(issue["p95_runtime"], 2.5, "{issue:#}");
    assert_eq!(
        issue["last_success"], "2026-03-02T11:00:02.500Z",
        "{issue:#}"
    );

    let issue = issue_of(&report, five_runs.id);
    assert_eq!(issue["runs"], 5, "{issue:#}");
    assert_eq!(issue["p95_runtime"], 10.0, "{issue:#}");
    assert_eq!(
        issue["last_success"], "2026-03-02T11:00:10.000Z",
        "{issue:#}"
    );
}

async fn running_task_with_one_run_is_an_issue(database: TestDatabase) {
    let db = TestDb::open(database).await;
    // Both run past their next run. `first` has no run before this one, so
    // no history shows whether it is stuck, but `second` has a finished run.
    let first = add_task(&db, "first", "default", now() - TimeDelta::minutes(10)).await;
    let second = add_task(&db, "second", "default", now() - TimeDelta::minutes(10)).await;
    let started = now() - TimeDelta::minutes(11);
    insert_execution(&db, &first, "ongoing", started, None);
    insert_execution(
        &db,
        &second,
        "success",
        started - TimeDelta::hours(1),
        Some(1.0),
    );
    insert_execution(&db, &second, "ongoing", started, None);
    let server = Server::start(status_router(&db).build()).await;

    let response = server.get("/status").await;
    server.stop().await;

    assert_eq!(response.status, 503, "{response:?}");
    let report = response.json();
    assert_eq!(report["status"], "error", "{report:#}");
    assert_eq!(issue_task_ids(&report), vec![first.id], "{report:#}");
    let issue = issue_of(&report, first.id);
    assert_eq!(issue["task"], "first", "{issue:#}");
    assert_eq!(issue["issue"], "Only 1 run recorded.", "{issue:#}");
    assert_eq!(issue["kind"], "too_few_runs", "{issue:#}");
    assert_eq!(issue["runs"], 0, "{issue:#}");
    assert!(issue.get("overdue").is_none(), "{issue:#}");
    assert!(issue.get("outlier_threshold").is_none(), "{issue:#}");
}

async fn unreadable_database_answers_503_with_error(database: TestDatabase) {
    let db = TestDb::open(database).await;
    add_task(&db, "beat", "default", now() - TimeDelta::minutes(10)).await;
    db.database()
        .execute_sql("DROP TABLE quicksilver_executions");
    // An unreadable database gets 503 even from a router that returns 200
    // for every report, because there is no report.
    let default = Server::start(status_router(&db).build()).await;
    let always_ok = Server::start(status_router(&db).always_ok().build()).await;

    let responses = [default.get("/status").await, always_ok.get("/status").await];
    default.stop().await;
    always_ok.stop().await;

    for response in responses {
        assert_eq!(response.status, 503, "{response:?}");
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_no_store(&response);
        let body = response.json();
        assert_eq!(body["status"], "error", "{body:#}");
        assert_eq!(body["issues"], json!([]), "{body:#}");
        let message = body["error"].as_str().expect("`error` is a string");
        assert!(
            message.contains("quicksilver_executions"),
            "the message names the problem: {message}"
        );
        assert!(
            !message.contains(db.database().url()),
            "the message leaves the database URL out: {message}"
        );
    }
}

async fn post_is_method_not_allowed(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let server = Server::start(status_router(&db).build()).await;

    let post = server.request("POST", "/status").await;
    let delete = server.request("DELETE", "/status").await;
    server.stop().await;

    for response in [post, delete] {
        assert_eq!(response.status, 405, "{response:?}");
        let allow = response.header("allow").unwrap_or_default();
        assert!(allow.contains("GET"), "Allow names GET: {response:?}");
    }
}

async fn nested_router_serves_under_prefix(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let app = Router::new().nest(
        "/quicksilver",
        quicksilver::http::router(db.store().clone()),
    );
    let server = Server::start(app).await;

    let nested = server.get("/quicksilver/status").await;
    let bare = server.get("/status").await;
    server.stop().await;

    assert_eq!(nested.status, 200, "{nested:?}");
    assert_eq!(nested.json()["status"], "ok");
    assert_eq!(bare.status, 404, "{bare:?}");
}
