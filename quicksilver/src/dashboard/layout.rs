//! The page shell, the responses and the formatting shared by the pages.

use std::fmt::Write as _;

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use maud::{html, Markup, DOCTYPE};

use super::assets;
use super::csrf::CsrfToken;
use super::SharedState;
use crate::command::CauseChain;
use crate::execution::Status;
use crate::store::StoreError;

/// How often a page with an ongoing execution reloads, in seconds.
pub(super) const REFRESH_SECONDS: u32 = 5;

/// The policy of every page: only the dashboard's own style sheet and
/// script, no frames, forms posted to the dashboard only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; \
     script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// The sections of the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Overview,
    Tasks,
    Executions,
}

/// The context of every page handler: the shared state, the relative path to
/// the dashboard's root, the CSRF token and the time.
pub(super) struct PageContext {
    pub(super) state: SharedState,
    /// The relative reference from the requested page to the dashboard's
    /// root, ending in `/`: `./`, `../../`, or `quicksilver/` for a root
    /// reached without its trailing slash.
    pub(super) base: String,
    pub(super) csrf: CsrfToken,
    pub(super) now: DateTime<Utc>,
}

impl FromRequestParts<SharedState> for PageContext {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let inner = parts.uri.path().to_owned();
        let original = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| inner.clone(), |uri| uri.path().to_owned());
        let base = relative_base(&inner, &original);
        let csrf = CsrfToken::of(&parts.headers).map_err(|error| {
            tracing::error!(%error, "dashboard cannot draw a random CSRF token");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("500 Internal Server Error: no random token could be drawn ({error})\n"),
            )
                .into_response()
        })?;
        Ok(PageContext {
            state: state.clone(),
            base,
            csrf,
            now: state.clock.now(),
        })
    }
}

/// Returns the relative reference from the page at `inner` (the path
/// inside the dashboard) to the dashboard's root. `original` is the path
/// that the client requested, prefix included.
pub(super) fn relative_base(inner: &str, original: &str) -> String {
    let depth = inner.matches('/').count().saturating_sub(1);
    if depth > 0 {
        return "../".repeat(depth);
    }
    if inner == "/" && !original.ends_with('/') {
        // The root without its trailing slash: the browser resolves
        // relative links against the prefix's parent folder.
        if let Some(last) = original.rsplit('/').next().filter(|last| !last.is_empty()) {
            return format!("{last}/");
        }
    }
    "./".to_owned()
}

/// An error page: its status, title and message.
pub(super) struct Rejection {
    pub(super) status: StatusCode,
    pub(super) title: &'static str,
    pub(super) message: String,
}

impl PageContext {
    /// Returns a link to `path` inside the dashboard, such as `tasks/4`.
    pub(super) fn href(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Renders a page with the layout.
    pub(super) fn render(&self, status: StatusCode, title: &str, page: Page) -> Response {
        let refresh = page.refresh.then_some(REFRESH_SECONDS);
        let nav = |section: Section, path: &str, label: &str| {
            html! {
                a href=(self.href(path)) aria-current=[(page.section == Some(section)).then_some("page")] {
                    (label)
                }
            }
        };
        let markup = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="robots" content="noindex";
                    title { (title) " · quicksilver" }
                    link rel="stylesheet" href=(assets::href(&self.base, assets::STYLE));
                    script src=(assets::href(&self.base, assets::SCRIPT)) defer {}
                }
                body data-refresh=[refresh] {
                    header.top {
                        nav {
                            a.brand href=(self.base) { "quicksilver" }
                            (nav(Section::Overview, "", "Overview"))
                            (nav(Section::Tasks, "tasks", "Tasks"))
                            (nav(Section::Executions, "executions", "Executions"))
                            a href=(self.href("status")) { "Status JSON" }
                        }
                    }
                    main {
                        h1 { (title) }
                        (page.body)
                    }
                    footer {
                        "Times are UTC. Now: " (format_time(self.now))
                        @if let Some(seconds) = refresh {
                            " · This page reloads every " (seconds) " s while a run is ongoing."
                        }
                    }
                }
            }
        };
        let mut response = (status, markup).into_response();
        if let Some(cookie) = self.csrf.set_cookie() {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        response
    }

    /// Renders an error page.
    pub(super) fn rejection(&self, rejection: Rejection) -> Response {
        let body = html! {
            p.message.error { (rejection.message) }
            p { a href=(self.base) { "Back to the overview" } }
        };
        self.render(rejection.status, rejection.title, Page::new(body))
    }

    /// Renders the 403 page of a form whose CSRF check failed.
    pub(super) fn forbidden(&self, reason: &str) -> Response {
        self.rejection(Rejection {
            status: StatusCode::FORBIDDEN,
            title: "Request rejected",
            message: format!(
                "This change was rejected and nothing was written: {reason}. Go back, reload \
                 the page, and submit the form again."
            ),
        })
    }

    /// Renders the 404 page of a missing row.
    pub(super) fn not_found(&self, message: String) -> Response {
        self.rejection(Rejection {
            status: StatusCode::NOT_FOUND,
            title: "Not found",
            message,
        })
    }

    /// Renders the page of a failed store call: 404 for a missing task or
    /// execution, 503 for a database that failed. Logs the failure.
    pub(super) fn store_failure(&self, error: &StoreError) -> Response {
        match error {
            StoreError::TaskNotFound { id } => self.not_found(format!(
                "Task {id} not found: it was deleted, or the id is wrong. The task list shows \
                 every task."
            )),
            StoreError::ExecutionNotFound { id } => self.not_found(format!(
                "Execution {id} not found: it was deleted, for example by \
                 clear_successful_executions, or the id is wrong."
            )),
            other => {
                let message = CauseChain(other).to_string().replace('\n', ": ");
                tracing::error!(error = %message, "dashboard page failed: the database cannot be read");
                self.rejection(Rejection {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    title: "Database unavailable",
                    message: format!(
                        "The database could not be read ({message}). Nothing was changed; \
                         try again once it is back."
                    ),
                })
            }
        }
    }
}

/// The content of a page and how the shell shows it.
pub(super) struct Page {
    pub(super) body: Markup,
    pub(super) section: Option<Section>,
    pub(super) refresh: bool,
}

impl Page {
    pub(super) fn new(body: Markup) -> Page {
        Page {
            body,
            section: None,
            refresh: false,
        }
    }

    pub(super) fn section(mut self, section: Section) -> Page {
        self.section = Some(section);
        self
    }

    pub(super) fn refresh(mut self, refresh: bool) -> Page {
        self.refresh = refresh;
        self
    }
}

/// Adds the security headers to every response of the pages, and
/// `Cache-Control: no-store` to those that set no caching of their own.
pub(super) async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let fixed: [(HeaderName, &'static str); 4] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Formats a time as `2026-03-02 12:00:05`, in UTC.
pub(super) fn format_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Returns a `<time>` element with the time and how far it is from `now`.
pub(super) fn time_cell(time: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Markup {
    match time {
        None => html! { span.muted { "—" } },
        Some(time) if time == DateTime::<Utc>::MAX_UTC => html! { span.muted { "never" } },
        Some(time) => html! {
            time datetime=(time.to_rfc3339_opts(SecondsFormat::Millis, true)) {
                (format_time(time))
            }
            " "
            span.muted { "(" (relative(time, now)) ")" }
        },
    }
}

/// Returns how far `time` is from `now`: `in 5 s` or `3 min ago`.
pub(super) fn relative(time: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (time - now).num_milliseconds() as f64 / 1000.0;
    if seconds.abs() < 1.0 {
        return "now".to_owned();
    }
    let span = format_seconds(seconds.abs().floor());
    if seconds > 0.0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// Formats a duration in seconds: `250 ms`, `2.5 s`, `42 s`, `3 min 5 s`,
/// `2 h 10 min` or `3 d 4 h`.
pub(super) fn format_seconds(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "—".to_owned();
    }
    if seconds < 0.001 {
        return "under 1 ms".to_owned();
    }
    if seconds < 1.0 {
        return format!("{:.0} ms", seconds * 1000.0);
    }
    if seconds < 10.0 {
        let text = format!("{seconds:.2}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        return format!("{text} s");
    }
    let whole = seconds.round() as u64;
    let (days, hours, minutes, rest) = (
        whole / 86_400,
        whole / 3_600 % 24,
        whole / 60 % 60,
        whole % 60,
    );
    if days > 0 {
        format!("{days} d {hours} h")
    } else if hours > 0 {
        format!("{hours} h {minutes} min")
    } else if minutes > 0 {
        format!("{minutes} min {rest} s")
    } else {
        format!("{rest} s")
    }
}

/// Returns a status badge.
pub(super) fn status_badge(status: Status) -> Markup {
    html! { span class=(format!("status status-{status}")) { (status.as_str()) } }
}

/// Returns a query string, `?` included, of the pairs whose value is not
/// empty, or an empty string when none is.
pub(super) fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut query = String::new();
    for (name, value) in pairs.iter().filter(|(_, value)| !value.is_empty()) {
        query.push(if query.is_empty() { '?' } else { '&' });
        query.push_str(&percent_encode(name));
        query.push('=');
        query.push_str(&percent_encode(value));
    }
    query
}

/// Percent-encodes every byte but the unreserved characters of RFC 3986.
pub(super) fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_climbs_to_the_root() {
        assert_eq!(relative_base("/", "/quicksilver"), "quicksilver/");
        assert_eq!(relative_base("/", "/admin/quicksilver"), "quicksilver/");
        assert_eq!(relative_base("/", "/"), "./");
        assert_eq!(relative_base("/tasks", "/quicksilver/tasks"), "./");
        assert_eq!(relative_base("/tasks/4", "/quicksilver/tasks/4"), "../");
        assert_eq!(relative_base("/tasks/4/edit", "/q/tasks/4/edit"), "../../");
    }

    #[test]
    fn seconds_read_naturally() {
        assert_eq!(format_seconds(0.0001), "under 1 ms");
        assert_eq!(format_seconds(0.25), "250 ms");
        assert_eq!(format_seconds(2.5), "2.5 s");
        assert_eq!(format_seconds(2.0), "2 s");
        assert_eq!(format_seconds(42.4), "42 s");
        assert_eq!(format_seconds(185.0), "3 min 5 s");
        assert_eq!(format_seconds(7_800.0), "2 h 10 min");
        assert_eq!(format_seconds(273_600.0), "3 d 4 h");
    }

    #[test]
    fn query_strings_are_encoded() {
        assert_eq!(
            query_string(&[("q", "a b&c"), ("queue", "")]),
            "?q=a%20b%26c"
        );
        assert_eq!(query_string(&[("queue", "")]), "");
    }
}
