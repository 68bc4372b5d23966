//! The pages that read: overview, tasks, one task, executions, one
//! execution, the task forms and the delete confirmation.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{html, Markup};

use super::chart::{outlier_threshold, runtime_chart};
use super::forms::{FormErrors, TaskForm};
use super::layout::{
    format_seconds, query_string, relative, status_badge, time_cell, Page, PageContext, Rejection,
    Section,
};
use crate::execution::{Execution, Status};
use crate::runner::DEFAULT_HEARTBEAT_TIMEOUT;
use crate::status::{self, IssueKind};
use crate::store::dashboard::{ExecutionQuery, RuntimeRange, TaskQuery, COUNT_CAP, SCAN_WINDOW};
use crate::store::StoreError;
use crate::task::Task;

/// Executions a page.
const EXECUTION_PAGE: i64 = 50;

/// Tasks a listing shows at most.
const TASK_LIMIT: i64 = 500;

/// Finished runs in a task's runtime chart.
const CHART_RUNS: i64 = 60;

/// Executions on a task's page.
const TASK_EXECUTIONS: i64 = 20;

/// Upcoming runs previewed on a task's page.
const PREVIEW_RUNS: usize = 5;

/// The runtime buckets of the executions filter: their value in the
/// query, label, and range in seconds.
const RUNTIME_BUCKETS: [(&str, &str, f64, Option<f64>); 6] = [
    ("under-1m", "under a minute", 0.0, Some(60.0)),
    ("1-5m", "1 to 5 minutes", 60.0, Some(300.0)),
    ("5-15m", "5 to 15 minutes", 300.0, Some(900.0)),
    ("15-30m", "15 to 30 minutes", 900.0, Some(1_800.0)),
    ("30-60m", "30 to 60 minutes", 1_800.0, Some(3_600.0)),
    ("over-1h", "over an hour", 3_600.0, None),
];

/// The query string of a page, as pairs in the order sent.
type Params = Query<Vec<(String, String)>>;

fn param<'a>(params: &'a [(String, String)], name: &str) -> &'a str {
    params
        .iter()
        .find(|(key, _)| key == name)
        .map_or("", |(_, value)| value.as_str())
}

/// Returns the 404 page of a path id that is not a number, naming it.
pub(super) fn invalid_id(page: &PageContext, noun: &str, id: &str) -> Response {
    page.not_found(format!(
        "{noun} `{id}` not found: {noun} ids are whole numbers, as the lists show them."
    ))
}

/// Returns the 400 page of a query parameter that cannot be read.
fn bad_parameter(page: &PageContext, message: String) -> Response {
    page.rejection(Rejection {
        status: StatusCode::BAD_REQUEST,
        title: "Invalid filter",
        message,
    })
}

/// Returns the sentence of a `notice` query parameter, from a fixed list,
/// so that a crafted link cannot put other text on the page.
fn notice_text(params: &[(String, String)]) -> Option<String> {
    let task = param(params, "task");
    let task = if task.parse::<i64>().is_ok() {
        format!("Task {task}")
    } else {
        "The task".to_owned()
    };
    let text = match param(params, "notice") {
        "created" => format!("{task} was added."),
        "saved" => format!("{task} was saved."),
        "paused" => format!("{task} is paused: runners skip it until it is resumed."),
        "resumed" => format!("{task} is resumed."),
        "run" => format!(
            "{task} is due now: its queue's runner starts it as soon as a lane is free and no \
             run of it is going on, once the task is not paused."
        ),
        "deleted" => format!("{task} was deleted. Its executions stay, detached from it."),
        _ => return None,
    };
    Some(text)
}

fn notice(params: &[(String, String)]) -> Markup {
    html! {
        @if let Some(text) = notice_text(params) {
            p.message.notice role="status" { (text) }
        }
    }
}

/// `GET /`: health, queues and runners, counts by status, overdue tasks and
/// recent failures.
pub(super) async fn overview(page: PageContext) -> Response {
    let store = &page.state.store;
    let now = page.now;
    let loaded = async {
        let report = status::report(store, &page.state.settings, now).await?;
        let counts = store.status_counts(now).await?;
        let queues = store.queue_names(100).await?;
        let runners = store.runners_of(queues.clone(), 10).await?;
        let failures = store
            .latest_ended(vec![Status::Error, Status::Killed], 10)
            .await?;
        Ok::<_, StoreError>((report, counts, queues, runners, failures))
    }
    .await;
    let (report, counts, queues, runners, failures) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => return page.store_failure(&error),
    };

    let overdue: Vec<_> = report
        .issues
        .iter()
        .filter(|issue| issue.kind == IssueKind::Overdue)
        .collect();
    let count_text = |count: i64| {
        if count >= COUNT_CAP {
            format!("{COUNT_CAP}+")
        } else {
            count.to_string()
        }
    };
    let timeout = chrono::TimeDelta::from_std(DEFAULT_HEARTBEAT_TIMEOUT).unwrap_or_default();

    let body = html! {
        p {
            "Health: "
            @if report.is_ok() {
                strong.health-ok { "ok" } " — no issue."
            } @else {
                strong.health-error { "error" } " — " (report.issues.len()) " issue(s), listed below."
            }
        }
        div.grid {
            section.panel {
                h2 { "Queues and runners" }
                @if queues.is_empty() {
                    p.muted { "No queue yet: add a task, or start a runner." }
                }
                @for queue in &queues {
                    h3 { a href=(page.href(&format!("tasks{}", query_string(&[("queue", queue)])))) { (queue) } }
                    @let of_queue: Vec<_> = runners.iter().filter(|runner| &runner.queue == queue).collect();
                    @if of_queue.is_empty() {
                        p.muted { "No runner has served this queue." }
                    } @else {
                        div.scroll { table {
                            thead { tr { th { "Runner" } th { "State" } th { "Last heartbeat" } } }
                            tbody {
                                @for runner in &of_queue {
                                    tr {
                                        td { code { (runner.identity) } }
                                        td {
                                            @if runner.stopped_at.is_some() {
                                                span.muted { "stopped" }
                                            } @else if now - runner.heartbeat_at > timeout {
                                                span.status.status-error { "silent" }
                                            } @else {
                                                span.status.status-success { "running" }
                                            }
                                        }
                                        td { (relative(runner.heartbeat_at, now)) }
                                    }
                                }
                            }
                        } }
                    }
                }
            }
            section.panel {
                h2 { "Executions by status" }
                table {
                    thead { tr { th { "Status" } th.number { "Last hour" } th.number { "Last day" } } }
                    tbody {
                        @for count in &counts {
                            tr {
                                td {
                                    a href=(page.href(&format!("executions{}", query_string(&[("status", count.status.as_str())])))) {
                                        (status_badge(count.status))
                                    }
                                }
                                td.number { (count_text(count.last_hour)) }
                                td.number { (count_text(count.last_day)) }
                            }
                        }
                    }
                }
                p.hint.muted { "Finished runs count by their end, pending and ongoing ones by their start." }
            }
        }
        section.panel {
            h2 { "Overdue tasks" }
            @if overdue.is_empty() {
                p.muted { "None: every task ran on time, or its queue is busy." }
            } @else {
                div.scroll { table {
                    thead { tr { th { "Task" } th { "Queue" } th { "Next run" } th.number { "Overdue by" } } }
                    tbody {
                        @for issue in &overdue {
                            tr {
                                td { a href=(page.href(&format!("tasks/{}", issue.task_id))) { (issue.task) } }
                                td { (issue.queue) }
                                td { (time_cell(Some(issue.next_run), now)) }
                                td.number { (format_seconds(issue.overdue.unwrap_or_default())) }
                            }
                        }
                    }
                } }
            }
            @for issue in report.issues.iter().filter(|issue| issue.kind == IssueKind::TooFewRuns) {
                p {
                    a href=(page.href(&format!("tasks/{}", issue.task_id))) { (issue.task) }
                    " is still running at its next run: "
                    (issue.issue.as_deref().unwrap_or_default())
                }
            }
        }
        section.panel {
            h2 { "Recent failures" }
            @if failures.is_empty() {
                p.muted { "No execution ended in error or was killed." }
            } @else {
                (execution_table(&page, &failures))
            }
        }
    };
    page.render(
        StatusCode::OK,
        "Overview",
        Page::new(body).section(Section::Overview),
    )
}

/// `GET /tasks`: tasks filtered by queue and searched in command and
/// arguments, with their actions.
pub(super) async fn tasks(page: PageContext, Query(params): Params) -> Response {
    let queue = param(&params, "queue").trim().to_owned();
    let search = param(&params, "q").trim().to_owned();
    let store = &page.state.store;
    let loaded = async {
        let queues = store.queue_names(100).await?;
        let query = TaskQuery {
            queue: (!queue.is_empty()).then(|| queue.clone()),
            search: (!search.is_empty()).then(|| search.clone()),
            limit: TASK_LIMIT,
        };
        let (tasks, more) = store.task_page(query).await?;
        Ok::<_, StoreError>((queues, tasks, more))
    }
    .await;
    let (queues, tasks, more) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => return page.store_failure(&error),
    };
    let here = format!(
        "tasks{}",
        query_string(&[("queue", &queue), ("q", &search)])
    );

    let body = html! {
        (notice(&params))
        form.filters method="get" action=(page.href("tasks")) {
            label { "Queue"
                select name="queue" {
                    option value="" { "every queue" }
                    @for name in &queues { option value=(name) selected[*name == queue] { (name) } }
                }
            }
            label { "Search command and arguments"
                input type="search" name="q" value=(search);
            }
            button type="submit" { "Filter" }
            a.button.primary href=(page.href("tasks/new")) { "Add a task" }
        }
        @if tasks.is_empty() {
            p.muted { "No task matches." }
        } @else {
            div.scroll { table.cards {
                thead { tr {
                    th { "Task" } th { "Arguments" } th { "Queue" } th { "Schedule" }
                    th { "Next run" } th { "Max duration" } th { "Actions" }
                } }
                tbody {
                    @for task in &tasks {
                        tr {
                            td data-label="Task" {
                                a href=(page.href(&format!("tasks/{}", task.id))) { (task.command) }
                                " " span.muted { "#" (task.id) }
                                @if task.paused { " " span.paused { "paused" } }
                            }
                            td data-label="Arguments" { (arguments_text(&task.arguments)) }
                            td data-label="Queue" { (task.queue) }
                            td data-label="Schedule" { (schedule_text(task)) }
                            td data-label="Next run" { (time_cell(Some(task.next_run), page.now)) }
                            td data-label="Max duration" { (max_duration_text(task)) }
                            td data-label="Actions" { (task_actions(&page, task, &here)) }
                        }
                    }
                }
            } }
            @if more {
                p.muted { "Only the first " (TASK_LIMIT) " tasks are shown: filter by queue or search to find the others." }
            }
        }
    };
    page.render(
        StatusCode::OK,
        "Tasks",
        Page::new(body).section(Section::Tasks),
    )
}

/// Returns the pause or resume, run-now, edit and delete buttons of a
/// task, which come back to `return_to` after the change.
fn task_actions(page: &PageContext, task: &Task, return_to: &str) -> Markup {
    let post = |action: &str, label: &str| {
        html! {
            form.inline method="post" action=(page.href(&format!("tasks/{}/{action}", task.id))) {
                (page.csrf.field())
                input type="hidden" name="return_to" value=(return_to);
                button type="submit" { (label) }
            }
        }
    };
    html! {
        div.actions {
            @if task.paused {
                (post("resume", "Resume"))
            } @else {
                (post("pause", "Pause"))
            }
            (post("run", "Run now"))
            a.button href=(page.href(&format!("tasks/{}/edit", task.id))) { "Edit" }
            a.button.danger href=(page.href(&format!("tasks/{}/delete", task.id))) { "Delete" }
        }
    }
}

fn arguments_text(arguments: &[String]) -> Markup {
    html! {
        @if arguments.is_empty() {
            span.muted { "none" }
        } @else {
            @for (index, argument) in arguments.iter().enumerate() {
                @if index > 0 { " " }
                code { (argument) }
            }
        }
    }
}

fn schedule_text(task: &Task) -> Markup {
    match task.schedule() {
        Ok(schedule) => html! { (schedule.to_string()) },
        Err(error) => html! { span.status.status-error { "invalid: " (error.to_string()) } },
    }
}

fn max_duration_text(task: &Task) -> Markup {
    match task.max_duration() {
        Some(duration) => html! { (format_seconds(duration.as_secs_f64())) },
        None => html! { span.muted { "none" } },
    }
}

/// `GET /tasks/{id}`: the task, its next runs, its runtime chart and its
/// latest executions.
pub(super) async fn task(
    page: PageContext,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return invalid_id(&page, "task", &id);
    };
    let store = &page.state.store;
    let loaded = async {
        let task = store.task(id).await?;
        let stats = store.runtime_stats(id).await?;
        let history = store.runtime_history(id, CHART_RUNS).await?;
        let latest = store
            .execution_page(ExecutionQuery {
                task_id: Some(id),
                limit: TASK_EXECUTIONS,
                ..ExecutionQuery::default()
            })
            .await?;
        Ok::<_, StoreError>((task, stats, history, latest))
    }
    .await;
    let (task, stats, history, latest) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => return page.store_failure(&error),
    };

    let settings = &page.state.settings;
    let now = page.now;
    let upcoming = upcoming_runs(&task, now);
    let threshold = outlier_threshold(&stats, settings);
    let ongoing = latest
        .executions
        .iter()
        .any(|execution| execution.status == Status::Ongoing);
    let here = format!("tasks/{id}");

    let body = html! {
        (notice(&params))
        (task_actions(&page, &task, &here))
        section.panel {
            table.fields { tbody {
                tr { th { "Command" } td { code { (task.command) } } }
                tr { th { "Arguments" } td { (arguments_text(&task.arguments)) } }
                tr { th { "Queue" } td { (task.queue) } }
                tr { th { "Schedule" } td { (schedule_text(&task)) } }
                tr { th { "State" } td {
                    @if task.paused { span.paused { "paused" } } @else { "active" }
                } }
                tr { th { "Max duration" } td { (max_duration_text(&task)) } }
                tr { th { "Alerts postponed until" } td { (time_cell(task.alerts_postponed_until, now)) } }
                tr { th { "Alert on failure" } td {
                    @match task.alert_on_failure {
                        None => { "as the runner's setting" }
                        Some(true) => { "yes" }
                        Some(false) => { "no" }
                    }
                } }
                @if let Some(declaration) = &task.declaration {
                    tr { th { "Declared as" } td { code { (declaration) } } }
                }
                tr { th { "Created" } td { (time_cell(Some(task.created_at), now)) } }
                tr { th { "Updated" } td { (time_cell(Some(task.updated_at), now)) } }
            } }
        }
        h2 { "Next runs" }
        @if task.paused {
            p.paused { "The task is paused: none of these runs happens until it is resumed." }
        }
        ol {
            @for run in &upcoming { li { (time_cell(Some(*run), now)) } }
        }
        h2 { "Runtimes" }
        @if history.is_empty() {
            p.muted { "No finished run yet." }
        } @else {
            (runtime_chart(&page.base, &history, &stats, settings))
            p.legend {
                span { "Bars: the latest " (history.len()) " finished runs, oldest first; red ones failed." }
                @if let Some(mean) = stats.mean {
                    span.mean-key { "— mean of successful runs: " (format_seconds(mean)) }
                }
                @if let Some(threshold) = threshold {
                    span.threshold-key {
                        "- - mean + " (settings.deviations) " standard deviations: " (format_seconds(threshold))
                    }
                }
            }
        }
        p.muted {
            (stats.runs) " successful runs recorded"
            @if let Some(p95) = stats.p95 { ", 95th percentile " (format_seconds(p95)) }
            ". A run still going alerts when it passes the dashed line, once more than "
            (settings.min_runs) " successful runs exist, and never under "
            (format_seconds(settings.min_runtime.as_secs_f64())) "."
            @if let Some(max) = settings.max_runtime {
                " It always alerts past " (format_seconds(max.as_secs_f64())) "."
            }
        }
        h2 { "Latest executions" }
        @if latest.executions.is_empty() {
            p.muted { "No execution yet." }
        } @else {
            (execution_table(&page, &latest.executions))
            p { a href=(page.href(&format!("executions{}", query_string(&[("task", &id.to_string())])))) { "All executions of this task" } }
        }
    };
    let title = format!("Task {id}: {}", task.command);
    page.render(
        StatusCode::OK,
        &title,
        Page::new(body).section(Section::Tasks).refresh(ongoing),
    )
}

/// Returns the task's next run and the ticks after it, as the runner
/// would take them from now.
fn upcoming_runs(task: &Task, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut runs = vec![task.next_run];
    if let Ok(schedule) = task.schedule() {
        let after = schedule.next_after(task.next_run, now.max(task.next_run));
        if after != DateTime::<Utc>::MAX_UTC {
            runs.push(after);
            runs.extend(schedule.upcoming(after, PREVIEW_RUNS.saturating_sub(2)));
        }
    }
    runs
}

/// `GET /executions`: one page of executions, filtered.
pub(super) async fn executions(page: PageContext, Query(params): Params) -> Response {
    let status_text = param(&params, "status");
    let task_text = param(&params, "task").trim();
    let runtime_text = param(&params, "runtime");
    let search = param(&params, "q").trim();
    let before_text = param(&params, "before").trim();

    let status = match status_text {
        "" => None,
        text => match text.parse::<Status>() {
            Ok(status) => Some(status),
            Err(error) => return bad_parameter(&page, format!("Invalid status filter: {error}.")),
        },
    };
    let task_id = match task_text {
        "" => None,
        text => match text.parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => {
                return bad_parameter(
                    &page,
                    format!("Invalid task filter `{text}`: give a task id, such as 4."),
                )
            }
        },
    };
    let runtime = match runtime_text {
        "" => None,
        text => match RUNTIME_BUCKETS.iter().find(|(value, ..)| *value == text) {
            Some((_, _, min, max)) => Some(RuntimeRange {
                min: *min,
                max: *max,
            }),
            None => {
                let known: Vec<&str> = RUNTIME_BUCKETS.iter().map(|(value, ..)| *value).collect();
                return bad_parameter(
                    &page,
                    format!(
                        "Invalid runtime filter `{text}`: use one of {}.",
                        known.join(", ")
                    ),
                );
            }
        },
    };
    let before = match before_text {
        "" => None,
        text => match text.parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => {
                return bad_parameter(
                    &page,
                    format!("Invalid page cursor `{text}`: follow the Older link instead."),
                )
            }
        },
    };

    let store = &page.state.store;
    let query = ExecutionQuery {
        status,
        task_id,
        runtime,
        search: (!search.is_empty()).then(|| search.to_owned()),
        before,
        limit: EXECUTION_PAGE,
    };
    let loaded = async {
        let (tasks, _) = store
            .task_page(TaskQuery {
                limit: TASK_LIMIT,
                ..TaskQuery::default()
            })
            .await?;
        let result = store.execution_page(query).await?;
        Ok::<_, StoreError>((tasks, result))
    }
    .await;
    let (tasks, result) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => return page.store_failure(&error),
    };

    let filters = [
        ("status", status_text),
        ("task", task_text),
        ("runtime", runtime_text),
        ("q", search),
    ];
    let older_href = result.older.map(|older| {
        let cursor = older.to_string();
        let mut pairs = filters.to_vec();
        pairs.push(("before", &cursor));
        page.href(&format!("executions{}", query_string(&pairs)))
    });
    let ongoing = result
        .executions
        .iter()
        .any(|execution| execution.status == Status::Ongoing);
    let body = html! {
        form.filters method="get" action=(page.href("executions")) {
            label { "Status"
                select name="status" {
                    option value="" { "every status" }
                    @for choice in Status::ALL {
                        option value=(choice.as_str()) selected[status == Some(choice)] { (choice.as_str()) }
                    }
                }
            }
            label { "Task"
                select name="task" {
                    option value="" { "every task" }
                    @if let Some(id) = task_id {
                        @if !tasks.iter().any(|task| task.id == id) {
                            option value=(id) selected { "#" (id) }
                        }
                    }
                    @for task in &tasks {
                        option value=(task.id) selected[task_id == Some(task.id)] {
                            "#" (task.id) " " (task.command)
                        }
                    }
                }
            }
            label { "Runtime"
                select name="runtime" {
                    option value="" { "any runtime" }
                    @for (value, label, ..) in RUNTIME_BUCKETS {
                        option value=(value) selected[runtime_text == value] { (label) }
                    }
                }
            }
            label { "Search output"
                input type="search" name="q" value=(search);
            }
            button type="submit" { "Filter" }
        }
        @if let Some((low, high)) = result.scanned {
            p.muted {
                "Runtime and output filters scan at most " (SCAN_WINDOW)
                " executions a page: this page looked at ids " (low) " to " (high.saturating_sub(1)) "."
                @if result.older.is_some() { " Older ones are on the next pages." }
            }
        }
        @if result.executions.is_empty() {
            p.muted { "No execution matches on this page." }
        } @else {
            (execution_table(&page, &result.executions))
        }
        div.pager {
            @if before.is_some() {
                a href=(page.href(&format!("executions{}", query_string(&filters)))) { "Newest" }
            }
            @if let Some(older) = &older_href {
                a href=(older) { "Older →" }
            }
        }
    };
    page.render(
        StatusCode::OK,
        "Executions",
        Page::new(body)
            .section(Section::Executions)
            .refresh(ongoing),
    )
}

/// Returns the table of `executions`, with a summary line of each output.
fn execution_table(page: &PageContext, executions: &[Execution]) -> Markup {
    html! {
        div.scroll { table.cards {
            thead { tr {
                th { "Execution" } th { "Task" } th { "Status" } th { "Started" }
                th.number { "Runtime" } th { "Output" }
            } }
            tbody {
                @for execution in executions {
                    tr {
                        td data-label="Execution" { a href=(page.href(&format!("executions/{}", execution.id))) { "#" (execution.id) } }
                        td data-label="Task" {
                            @if let Some(task_id) = execution.task_id {
                                a href=(page.href(&format!("tasks/{task_id}"))) { (execution.command) }
                            } @else {
                                (execution.command)
                            }
                        }
                        td data-label="Status" { (status_badge(execution.status)) }
                        td data-label="Started" { (time_cell(execution.started, page.now)) }
                        td.number data-label="Runtime" {
                            @match execution.runtime_seconds {
                                Some(seconds) => { (format_seconds(seconds)) }
                                None => {
                                    @if let (Status::Ongoing, Some(started)) = (execution.status, execution.started) {
                                        span.muted { (format_seconds((page.now - started).num_milliseconds().max(0) as f64 / 1000.0)) " so far" }
                                    } @else {
                                        span.muted { "—" }
                                    }
                                }
                            }
                        }
                        td.summary data-label="Output" { (execution.summary()) }
                    }
                }
            }
        } }
    }
}

/// `GET /executions/{id}`: one execution with its full output.
pub(super) async fn execution(page: PageContext, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return invalid_id(&page, "execution", &id);
    };
    let execution = match page.state.store.execution(id).await {
        Ok(execution) => execution,
        Err(error) => return page.store_failure(&error),
    };
    let now = page.now;
    let ongoing = execution.status == Status::Ongoing;
    let body = html! {
        section.panel {
            table.fields { tbody {
                tr { th { "Status" } td { (status_badge(execution.status)) } }
                tr { th { "Task" } td {
                    @if let Some(task_id) = execution.task_id {
                        a href=(page.href(&format!("tasks/{task_id}"))) { "Task " (task_id) }
                    } @else {
                        span.muted { "none: a foreground run, or its task was deleted" }
                    }
                } }
                tr { th { "Command" } td { code { (execution.command) } } }
                tr { th { "Arguments" } td { (arguments_text(&execution.arguments)) } }
                tr { th { "Queue" } td { (execution.queue.as_deref().unwrap_or("—")) } }
                tr { th { "Due at" } td { (time_cell(execution.due_at, now)) } }
                tr { th { "Started" } td { (time_cell(execution.started, now)) } }
                tr { th { "Ended" } td { (time_cell(execution.ended, now)) } }
                tr { th { "Runtime" } td {
                    @match execution.runtime_seconds {
                        Some(seconds) => { (format_seconds(seconds)) }
                        None => { span.muted { "—" } }
                    }
                } }
                tr { th { "Runner" } td { code { (execution.runner.as_deref().unwrap_or("—")) } } }
            } }
        }
        h2 { "Output" }
        @if execution.output.is_empty() {
            p.muted { "No output." }
        } @else {
            pre.output { (execution.output) }
        }
    };
    let title = format!("Execution {id}");
    page.render(
        StatusCode::OK,
        &title,
        Page::new(body)
            .section(Section::Executions)
            .refresh(ongoing),
    )
}

/// `GET /tasks/new`: the empty task form.
pub(super) async fn new_task(page: PageContext) -> Response {
    let body = TaskForm::blank().render(
        &page,
        &page.href("tasks/new"),
        "Add the task",
        &FormErrors::default(),
    );
    page.render(
        StatusCode::OK,
        "Add a task",
        Page::new(body).section(Section::Tasks),
    )
}

/// `GET /tasks/{id}/edit`: the task form, filled in.
pub(super) async fn edit_task(page: PageContext, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return invalid_id(&page, "task", &id);
    };
    let task = match page.state.store.task(id).await {
        Ok(task) => task,
        Err(error) => return page.store_failure(&error),
    };
    edit_page(
        &page,
        &task,
        &TaskForm::of_task(&task),
        &FormErrors::default(),
        StatusCode::OK,
    )
}

/// Renders the edit form of `task` with `form`'s values and `errors`.
pub(super) fn edit_page(
    page: &PageContext,
    task: &Task,
    form: &TaskForm,
    errors: &FormErrors,
    status: StatusCode,
) -> Response {
    let body = html! {
        p { a href=(page.href(&format!("tasks/{}", task.id))) { "Back to the task" } }
        (form.render(page, &page.href(&format!("tasks/{}/edit", task.id)), "Save", errors))
    };
    let title = format!("Edit task {}: {}", task.id, task.command);
    page.render(status, &title, Page::new(body).section(Section::Tasks))
}

/// `GET /tasks/{id}/delete`: the confirmation page.
pub(super) async fn delete_task(page: PageContext, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return invalid_id(&page, "task", &id);
    };
    let task = match page.state.store.task(id).await {
        Ok(task) => task,
        Err(error) => return page.store_failure(&error),
    };
    let body = html! {
        section.panel {
            p {
                "Delete task " (task.id) ", which runs " code { (task.command) } " "
                (arguments_text(&task.arguments)) " on queue " (task.queue) "?"
            }
            p.muted {
                "Its executions stay, detached from it. A task declaration in the program's \
                 code installs the task again at the next install-tasks."
            }
            div.actions {
                form.inline method="post" action=(page.href(&format!("tasks/{id}/delete"))) {
                    (page.csrf.field())
                    button.danger.primary type="submit" { "Delete the task" }
                }
                a.button href=(page.href(&format!("tasks/{id}"))) { "Cancel" }
            }
        }
    };
    let title = format!("Delete task {id}?");
    page.render(
        StatusCode::OK,
        &title,
        Page::new(body).section(Section::Tasks),
    )
}

/// Renders the 404 page of a path that the dashboard does not serve.
pub(super) async fn not_found(page: PageContext) -> Response {
    page.not_found(
        "No dashboard page has this address. The links at the top lead to the pages that exist."
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_come_from_a_fixed_list() {
        let params = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect()
        };
        assert_eq!(
            notice_text(&params(&[("notice", "paused"), ("task", "4")])).as_deref(),
            Some("Task 4 is paused: runners skip it until it is resumed.")
        );
        assert_eq!(
            notice_text(&params(&[("notice", "saved"), ("task", "<b>")])).as_deref(),
            Some("The task was saved.")
        );
        assert_eq!(notice_text(&params(&[("notice", "<script>")])), None);
    }

    #[test]
    fn upcoming_runs_follow_the_grid() {
        let now: DateTime<Utc> = "2026-03-02T12:00:00Z".parse().expect("a time");
        let task = Task {
            id: 1,
            command: "beat".to_owned(),
            arguments: Vec::new(),
            queue: "default".to_owned(),
            repeat_interval: Some(60),
            cron: None,
            time_zone: None,
            max_duration: None,
            next_run: now + chrono::TimeDelta::seconds(30),
            alerts_postponed_until: None,
            paused: false,
            declaration: None,
            alert_on_failure: None,
            created_at: now,
            updated_at: now,
        };
        let runs = upcoming_runs(&task, now);
        let seconds: Vec<i64> = runs.iter().map(|run| (*run - now).num_seconds()).collect();
        assert_eq!(seconds, [30, 90, 150, 210, 270]);
    }
}
