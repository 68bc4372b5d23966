//! The HTTP status endpoint: an axum router that a host nests at a path of
//! its choice.
//!
//! `GET /status` returns the [status report](crate::status) as JSON, with
//! `Content-Type: application/json` and `Cache-Control: no-store`, so that
//! no proxy serves an old report:
//!
//! | report | HTTP status |
//! | --- | --- |
//! | `"status": "ok"` | 200 OK |
//! | `"status": "error"` | 503 Service Unavailable, or the code of [`StatusRouter::error_status`]; 200 with [`StatusRouter::always_ok`] |
//! | none, because the database cannot be read | 503, with `{"issues": [], "status": "error", "error": "..."}` |
//!
//! The 503 for an `error` report lets load balancers and uptime checkers
//! that look only at the status code see the problem. The original Django
//! app returns 200 whatever the report's status, and [`StatusRouter::always_ok`]
//! does the same, for monitors that read the body.
//!
//! The route is read-only: other methods get 405 Method Not Allowed, and
//! building the report never writes to the database. The `error` message
//! is the text of the store's error, which leaves passwords out, and adds
//! no database URL.
//!
//! The router has no authentication of its own. The report names tasks,
//! queues and runtimes, so a host that serves it beyond a private network
//! puts an auth layer in front of it, such as a bearer token checked with
//! [`axum::middleware::from_fn_with_state`]. With the `dashboard` feature,
//! `quicksilver::dashboard::Auth` and `require_auth` are such a check, with
//! the secret compared in constant time.
//!
//! # Examples
//!
//! A host that serves the report at `/quicksilver/status` to callers that
//! send `Authorization: Bearer <token>`, the token taken from the
//! environment (this sketch compares it with `==`; compare in constant time
//! where timing can be measured):
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use axum::extract::{Request, State};
//! use axum::http::{header, StatusCode};
//! use axum::middleware::{self, Next};
//! use axum::response::Response;
//! use axum::Router;
//! use quicksilver::http::StatusRouter;
//! use quicksilver::Store;
//!
//! /// Lets a request through when it carries the expected bearer token.
//! async fn require_token(
//!     State(expected): State<Arc<str>>,
//!     request: Request,
//!     next: Next,
//! ) -> Result<Response, StatusCode> {
//!     let token = request
//!         .headers()
//!         .get(header::AUTHORIZATION)
//!         .and_then(|value| value.to_str().ok())
//!         .and_then(|value| value.strip_prefix("Bearer "));
//!     match token {
//!         Some(token) if token == &*expected => Ok(next.run(request).await),
//!         _ => Err(StatusCode::UNAUTHORIZED),
//!     }
//! }
//!
//! let folder = tempfile::tempdir()?;
//! let path = folder.path().join("tasks.sqlite3");
//! let store = Store::open(path.to_str().ok_or("the path is not UTF-8")?).await?;
//!
//! let token: Arc<str> = std::env::var("STATUS_TOKEN")
//!     .map_err(|_| "set STATUS_TOKEN to the token that monitors send")?
//!     .into();
//! let status = StatusRouter::new(store)
//!     .build()
//!     .layer(middleware::from_fn_with_state(token, require_token));
//! let app: Router = Router::new().nest("/quicksilver", status);
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, app)
//!     .with_graceful_shutdown(shutdown_signal())
//!     .await?;
//! # Ok(())
//! # }
//! # async fn shutdown_signal() {}
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::alert::AlertSettings;
use crate::clock::{Clock, SystemClock};
use crate::command::CauseChain;
use crate::status;
use crate::store::{Store, StoreError};

/// Returns the status router of `store` with the default settings: the
/// thresholds of [`AlertSettings::default`], 503 for an `error` report, and
/// the system clock.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let folder = tempfile::tempdir()?;
/// let path = folder.path().join("tasks.sqlite3");
/// let store = quicksilver::Store::open(path.to_str().ok_or("the path is not UTF-8")?).await?;
/// let app: axum::Router = axum::Router::new().nest("/quicksilver", quicksilver::http::router(store));
/// # drop(app);
/// # Ok(())
/// # }
/// ```
pub fn router(store: Store) -> Router {
    StatusRouter::new(store).build()
}

/// A builder of the status router, for settings other than
/// [`router`]'s defaults.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
///
/// use quicksilver::alert::AlertSettings;
/// use quicksilver::http::StatusRouter;
///
/// let folder = tempfile::tempdir()?;
/// let path = folder.path().join("tasks.sqlite3");
/// let store = quicksilver::Store::open(path.to_str().ok_or("the path is not UTF-8")?).await?;
///
/// let mut settings = AlertSettings::default();
/// settings.overdue_after = Duration::from_secs(300);
/// let status: axum::Router = StatusRouter::new(store)
///     .alerts(settings)
///     .always_ok()
///     .build();
/// # drop(status);
/// # Ok(())
/// # }
/// ```
#[must_use = "a status router builder does nothing until `build` is called"]
pub struct StatusRouter {
    store: Store,
    settings: AlertSettings,
    error_status: StatusCode,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for StatusRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusRouter")
            .field("store", &self.store)
            .field("settings", &self.settings)
            .field("error_status", &self.error_status)
            .finish_non_exhaustive()
    }
}

impl StatusRouter {
    /// Starts a status router on `store`, with [`router`]'s defaults.
    pub fn new(store: Store) -> Self {
        StatusRouter {
            store,
            settings: AlertSettings::default(),
            error_status: StatusCode::SERVICE_UNAVAILABLE,
            clock: Arc::new(SystemClock),
        }
    }

    /// Sets the thresholds of the report ([`AlertSettings::default`] unless
    /// set). The report uses [`AlertSettings::overdue_after`].
    pub fn alerts(mut self, settings: AlertSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Sets the HTTP status of a report whose status is `error`: 503
    /// Service Unavailable unless set.
    ///
    /// A database that cannot be read gets 503 whatever this is, because
    /// there is no report to return then.
    pub fn error_status(mut self, status: StatusCode) -> Self {
        self.error_status = status;
        self
    }

    /// Sets the HTTP status of every report to 200 OK, `error` ones
    /// included, as the original does. The body's `status` still
    /// distinguishes them. Same as `error_status(StatusCode::OK)`.
    pub fn always_ok(self) -> Self {
        self.error_status(StatusCode::OK)
    }

    /// Sets the clock that gives the report's time; [`SystemClock`] by
    /// default. Tests pass a [`crate::TestClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets a clock that another router shares.
    #[cfg(feature = "dashboard")]
    pub(crate) fn shared_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the router, with the one route `GET /status`.
    pub fn build(self) -> Router {
        let state = Arc::new(RouterState {
            store: self.store,
            settings: self.settings,
            error_status: self.error_status,
            clock: self.clock,
            failures: AtomicU64::new(0),
        });
        Router::new()
            .route("/status", get(status_handler))
            .with_state(state)
    }
}

/// The state the handler shares across requests.
struct RouterState {
    store: Store,
    settings: AlertSettings,
    error_status: StatusCode,
    clock: Arc<dyn Clock>,
    /// Failed reports in a row, to log the first, then at powers of two.
    failures: AtomicU64,
}

async fn status_handler(State(state): State<Arc<RouterState>>) -> Response {
    let now = state.clock.now();
    match status::report(&state.store, &state.settings, now).await {
        Ok(report) => {
            let failures = state.failures.swap(0, Ordering::Relaxed);
            if failures > 0 {
                tracing::info!(failures, "status report read the database again");
            }
            let code = if report.is_ok() {
                StatusCode::OK
            } else {
                state.error_status
            };
            (code, no_store(), Json(report)).into_response()
        }
        Err(error) => {
            let failures = state.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if failures == 1 || failures.is_power_of_two() {
                tracing::error!(error = %CauseChain(&error), failures,
                    "status report failed: the database cannot be read");
            }
            (
                StatusCode::SERVICE_UNAVAILABLE,
                no_store(),
                Json(unreadable_body(&error)),
            )
                .into_response()
        }
    }
}

/// Returns the `Cache-Control` header of every response.
fn no_store() -> [(header::HeaderName, HeaderValue); 1] {
    [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))]
}

/// Returns the body for a database that cannot be read: the report's shape
/// with no issues, and the error with its causes on one line.
///
/// The message is the text of the store's errors, whose URLs have no
/// credentials, and adds no URL of its own.
fn unreadable_body(error: &StoreError) -> serde_json::Value {
    let message = CauseChain(error).to_string().replace('\n', ": ");
    serde_json::json!({ "issues": [], "status": "error", "error": message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_body_keeps_report_shape() {
        let cause = diesel::result::Error::QueryBuilderError("no such table: x".into());
        let body = unreadable_body(&StoreError::Query(cause));
        assert_eq!(body["status"], "error");
        assert_eq!(body["issues"], serde_json::json!([]));
        assert_eq!(
            body["error"],
            "database query failed: caused by: no such table: x"
        );
    }

    #[tokio::test]
    async fn error_status_is_503_unless_always_ok() -> Result<(), StoreError> {
        let folder = tempfile::tempdir().expect("create a temporary folder");
        let path = folder.path().join("tasks.sqlite3");
        let store = Store::open(&path.to_string_lossy()).await?;

        let default = StatusRouter::new(store.clone());
        assert_eq!(default.error_status, StatusCode::SERVICE_UNAVAILABLE);
        let always_ok = StatusRouter::new(store).always_ok();
        assert_eq!(always_ok.error_status, StatusCode::OK);
        Ok(())
    }
}
