//! The actions that write: add, edit, pause, resume, run now and delete a
//! task. Each is a `POST` whose form passed the CSRF check, and responds
//! with a 303 redirect to the page to show next.

use axum::extract::Path;
use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::csrf::CheckedForm;
use super::forms::{FormErrors, TaskForm};
use super::layout::{query_string, Page, PageContext, Section};
use super::pages::{edit_page, invalid_id};
use crate::store::StoreError;

/// Returns a 303 redirect to `path` inside the dashboard, with a notice of
/// what was done to task `id`.
fn redirect(page: &PageContext, path: &str, notice: &str, id: i64) -> Response {
    let separator = if path.contains('?') { '&' } else { '?' };
    let id = id.to_string();
    let notice = query_string(&[("notice", notice), ("task", &id)]);
    let location = format!("{}{path}{separator}{}", page.base, &notice[1..]);
    match HeaderValue::from_str(&location) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, page.base.clone())],
        )
            .into_response(),
    }
}

/// Returns the page to come back to from a form's `return_to` field: a
/// path inside the dashboard, such as `tasks?queue=default`, or
/// `fallback` when the field is missing or leads elsewhere.
fn return_path(field: Option<&str>, fallback: String) -> String {
    let Some(path) = field else {
        return fallback;
    };
    let allowed = path.starts_with("tasks") || path.starts_with("executions");
    let safe = path
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || b"/?&=%-_.~+".contains(&byte))
        && !path.contains("//")
        && !path.contains("..");
    if allowed && safe {
        path.to_owned()
    } else {
        fallback
    }
}

/// `POST /tasks/new`: adds a task, or shows the form again with its
/// problems and 422.
pub(super) async fn create_task(form: CheckedForm) -> Response {
    let page = &form.page;
    let input = TaskForm::from_fields(&form.fields);
    let invalid = |errors: FormErrors| {
        let body = input.render(page, &page.href("tasks/new"), "Add the task", &errors);
        page.render(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Add a task",
            Page::new(body).section(Section::Tasks),
        )
    };
    let task = match input.to_new_task(&page.state.store) {
        Ok(task) => task,
        Err(errors) => return invalid(errors),
    };
    match page.state.store.add_task(task).await {
        Ok(task) => {
            tracing::info!(task.id = task.id, task.command = %task.command, "dashboard added a task");
            redirect(page, &format!("tasks/{}", task.id), "created", task.id)
        }
        Err(StoreError::InvalidTask { reason }) => invalid(FormErrors::general(format!(
            "The task is invalid: {reason}."
        ))),
        Err(error) => page.store_failure(&error),
    }
}

/// `POST /tasks/{id}/edit`: saves the task, or shows the form again with
/// its problems and 422.
pub(super) async fn update_task(Path(id): Path<String>, form: CheckedForm) -> Response {
    let page = &form.page;
    let Ok(id) = id.parse::<i64>() else {
        return invalid_id(page, "task", &id);
    };
    let store = &page.state.store;
    let task = match store.task(id).await {
        Ok(task) => task,
        Err(error) => return page.store_failure(&error),
    };
    let input = TaskForm::from_fields(&form.fields);
    let changes = match input.to_changes(store) {
        Ok(changes) => changes,
        Err(errors) => {
            return edit_page(
                page,
                &task,
                &input,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    };
    match store.update_task(id, changes).await {
        Ok(task) => {
            tracing::info!(task.id = id, task.command = %task.command, "dashboard edited a task");
            redirect(page, &format!("tasks/{id}"), "saved", id)
        }
        Err(StoreError::InvalidTask { reason }) => {
            let errors = FormErrors::general(format!("The task is invalid: {reason}."));
            edit_page(
                page,
                &task,
                &input,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
        Err(error) => page.store_failure(&error),
    }
}

/// The one-click changes of a task.
#[derive(Debug, Clone, Copy)]
enum Change {
    Pause,
    Resume,
    RunNow,
}

async fn change_task(id: &str, form: CheckedForm, change: Change) -> Response {
    let page = &form.page;
    let Ok(id) = id.parse::<i64>() else {
        return invalid_id(page, "task", id);
    };
    let store = &page.state.store;
    let (result, notice, verb) = match change {
        Change::Pause => (store.pause_task(id).await, "paused", "paused"),
        Change::Resume => (store.resume_task(id).await, "resumed", "resumed"),
        Change::RunNow => (store.run_task_now(id).await, "run", "made due now"),
    };
    match result {
        Ok(task) => {
            tracing::info!(task.id = id, task.command = %task.command, "dashboard {verb} a task");
            let back = return_path(form.fields.get("return_to"), format!("tasks/{id}"));
            redirect(page, &back, notice, id)
        }
        Err(error) => page.store_failure(&error),
    }
}

/// `POST /tasks/{id}/pause`.
pub(super) async fn pause_task(Path(id): Path<String>, form: CheckedForm) -> Response {
    change_task(&id, form, Change::Pause).await
}

/// `POST /tasks/{id}/resume`.
pub(super) async fn resume_task(Path(id): Path<String>, form: CheckedForm) -> Response {
    change_task(&id, form, Change::Resume).await
}

/// `POST /tasks/{id}/run`: makes the task due now.
pub(super) async fn run_task(Path(id): Path<String>, form: CheckedForm) -> Response {
    change_task(&id, form, Change::RunNow).await
}

/// `POST /tasks/{id}/delete`: deletes the task; its executions stay.
pub(super) async fn delete_task(Path(id): Path<String>, form: CheckedForm) -> Response {
    let page = &form.page;
    let Ok(id) = id.parse::<i64>() else {
        return invalid_id(page, "task", &id);
    };
    match page.state.store.remove_task(id).await {
        Ok(()) => {
            tracing::info!(task.id = id, "dashboard deleted a task");
            redirect(page, "tasks", "deleted", id)
        }
        Err(error) => page.store_failure(&error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_path_stays_inside_the_dashboard() {
        let fallback = || "tasks/4".to_owned();
        assert_eq!(
            return_path(Some("tasks?queue=a%20b&q=x"), fallback()),
            "tasks?queue=a%20b&q=x"
        );
        assert_eq!(return_path(Some("executions"), fallback()), "executions");
        for outside in [
            "https://evil.test/",
            "//evil.test",
            "tasks/../../admin",
            "tasks\\x",
            "status",
            "tasks\"><script>",
        ] {
            assert_eq!(
                return_path(Some(outside), fallback()),
                "tasks/4",
                "{outside}"
            );
        }
        assert_eq!(return_path(None, fallback()), "tasks/4");
    }
}
