//! The web dashboard: server-rendered pages for operators, served by an
//! axum router that a host nests at a path of its choice, next to the
//! [status endpoint](crate::http).
//!
//! | route | page or action |
//! | --- | --- |
//! | `GET /` | overview: health, queues with their runners, counts of executions by status in the last hour and day, overdue tasks, recent failures |
//! | `GET /tasks` | tasks, filtered by queue and searched in command and arguments |
//! | `GET /tasks/new`, `POST /tasks/new` | the form that adds a task |
//! | `GET /tasks/{id}` | one task: schedule, its next runs, a runtime chart with the alert threshold, its latest executions |
//! | `GET /tasks/{id}/edit`, `POST /tasks/{id}/edit` | the form that edits a task |
//! | `POST /tasks/{id}/pause`, `/resume`, `/run` | pause, resume, or make the task due now |
//! | `GET /tasks/{id}/delete`, `POST /tasks/{id}/delete` | the confirmation page, and the deletion |
//! | `GET /executions` | executions, newest first, 50 a page, filtered by status, task and runtime, searched in output |
//! | `GET /executions/{id}` | one execution with its full output |
//! | `GET /status` | the JSON status report of [`crate::http`] |
//! | `GET /assets/{version}/{file}` | the style sheet and the script, cached for a year |
//!
//! Links, form actions and redirects are relative, so the pages work at any
//! prefix, also behind a proxy that strips it. The root page is reached at
//! the prefix itself (`/quicksilver` when nested at `/quicksilver`); axum
//! returns 404 for `/quicksilver/` unless the host routes it too.
//!
//! # Security
//!
//! Every value shown is HTML-escaped, and the pages send a
//! `Content-Security-Policy` that allows only the dashboard's own style
//! sheet and script.
//!
//! Every change is a `POST` that must carry the token of the
//! `quicksilver_csrf` cookie (`HttpOnly`, `SameSite=Strict`) in its
//! `csrf_token` field, compared in constant time. A request that a browser
//! marks as cross-site (`Sec-Fetch-Site`), or whose `Origin` names another
//! host than `Host`, is rejected too. Each rejection is a 403 page that
//! says why, and nothing is written.
//!
//! The router has no authentication unless [`Dashboard::auth`] sets one.
//! **Without one, whoever reaches the dashboard can read every task and
//! output and pause, edit, run and delete tasks.** So always put an auth
//! check in front of it: [`Auth`] checks a bearer token or HTTP basic
//! credentials, and a host with its own login puts its own layer in front
//! instead, as with any axum router. With [`Dashboard::auth`], every route
//! needs the credentials (pages, actions, assets and `/status`), except
//! `/status` when [`Dashboard::public_status`] leaves it open to monitors.
//!
//! # Examples
//!
//! A host that serves the dashboard at `/quicksilver` to callers with a
//! password, and accepts the same secret as a bearer token:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use quicksilver::dashboard::{Auth, Dashboard};
//! use quicksilver::Store;
//!
//! let folder = tempfile::tempdir()?;
//! let path = folder.path().join("tasks.sqlite3");
//! let store = Store::open(path.to_str().ok_or("the path is not UTF-8")?).await?;
//!
//! let secret = std::env::var("DASHBOARD_SECRET").unwrap_or_else(|_| "change-me".to_owned());
//! let auth = Auth::basic("admin", secret.clone()).or(Auth::bearer(secret));
//! let dashboard = Dashboard::new(store).auth(auth).build();
//! let app = axum::Router::new().nest("/quicksilver", dashboard);
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, app)
//!     .with_graceful_shutdown(shutdown_signal())
//!     .await?;
//! # Ok(())
//! # }
//! # async fn shutdown_signal() {}
//! ```
//!
//! The same check as a layer that the host adds itself, for instance to
//! guard its other routes with it too:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::middleware;
//! use quicksilver::dashboard::{require_auth, Auth, Dashboard};
//!
//! # let folder = tempfile::tempdir()?;
//! # let path = folder.path().join("tasks.sqlite3");
//! # let store = quicksilver::Store::open(path.to_str().ok_or("not UTF-8")?).await?;
//! let auth = Auth::bearer("a long random token");
//! let app: axum::Router = axum::Router::new()
//!     .nest("/quicksilver", Dashboard::new(store).build())
//!     .layer(middleware::from_fn_with_state(auth, require_auth));
//! # drop(app);
//! # Ok(())
//! # }
//! ```
//!
//! # Caveats
//!
//! - A runtime filter or an output search scans at most 10,000 execution
//!   ids a page (the page says which), so that a search never reads the
//!   whole history; the next page goes on below them.
//! - Counts of executions stop at 100,000 a status and period.
//! - Times are shown and entered in UTC.
//! - The task form accepts only commands that the serving program
//!   registers, and checks the arguments with the command's parser, so
//!   serve the dashboard from a program that links the commands.

mod actions;
mod assets;
mod auth;
mod chart;
mod csrf;
mod forms;
mod layout;
mod pages;

use std::sync::Arc;

use axum::response::IntoResponse as _;
use axum::routing::{get, post};
use axum::Router;

use crate::alert::AlertSettings;
use crate::clock::{Clock, SystemClock};
use crate::http::StatusRouter;
use crate::store::Store;

pub use self::auth::{require_auth, Auth};

/// A builder of the dashboard router.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use quicksilver::alert::AlertSettings;
/// use quicksilver::dashboard::{Auth, Dashboard};
///
/// let folder = tempfile::tempdir()?;
/// let path = folder.path().join("tasks.sqlite3");
/// let store = quicksilver::Store::open(path.to_str().ok_or("the path is not UTF-8")?).await?;
///
/// let dashboard: axum::Router = Dashboard::new(store)
///     .alerts(AlertSettings::default())
///     .auth(Auth::bearer("a long random token"))
///     .public_status()
///     .build();
/// # drop(dashboard);
/// # Ok(())
/// # }
/// ```
#[must_use = "a dashboard builder does nothing until `build` is called"]
pub struct Dashboard {
    store: Store,
    settings: AlertSettings,
    clock: Arc<dyn Clock>,
    auth: Option<Auth>,
    public_status: bool,
    allowed_hosts: Vec<String>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("store", &self.store)
            .field("settings", &self.settings)
            .field("auth", &self.auth)
            .field("public_status", &self.public_status)
            .field("allowed_hosts", &self.allowed_hosts)
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// Starts a dashboard on `store`, without authentication, with the
    /// thresholds of [`AlertSettings::default`] and the system clock.
    pub fn new(store: Store) -> Self {
        Dashboard {
            store,
            settings: AlertSettings::default(),
            clock: Arc::new(SystemClock),
            auth: None,
            public_status: false,
            allowed_hosts: Vec::new(),
        }
    }

    /// Sets the alert thresholds that the overview, the runtime chart and
    /// the status report use ([`AlertSettings::default`] unless set). Give
    /// the runners' settings, so that the chart's threshold is theirs.
    pub fn alerts(mut self, settings: AlertSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Sets the clock of the pages and of the status report;
    /// [`SystemClock`] by default. Changes made from the pages, such as
    /// "run now", use the store's time, which is the system's.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets the credentials that every route needs; a request without them
    /// gets 401 with a `WWW-Authenticate` challenge.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Leaves `GET /status` open without the credentials of
    /// [`Dashboard::auth`], for monitors. The report names tasks and
    /// queues, so leave it closed where those are private.
    pub fn public_status(mut self) -> Self {
        self.public_status = true;
        self
    }

    /// Adds host names (as in the `Host` header, with a port where one is
    /// used, such as `ops.example.com` or `10.0.0.5:8080`) that may reach a
    /// dashboard without [`Dashboard::auth`].
    ///
    /// Without auth, the dashboard responds only to requests whose `Host`
    /// is a loopback name (`localhost`, `127.0.0.1`, `[::1]`, any port) or one
    /// of these, and 421 to others. A web page can point a name of its own
    /// at 127.0.0.1 (DNS rebinding) and then read and change what a
    /// dashboard on loopback shows; the check stops it. With auth, the
    /// browser sends no credentials to such a name, and every host gets a
    /// response.
    pub fn allowed_hosts<I>(mut self, hosts: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.allowed_hosts.extend(
            hosts
                .into_iter()
                .map(|host| host.into().to_ascii_lowercase()),
        );
        self
    }

    /// Builds the router of the pages, the actions, the assets and
    /// `GET /status`.
    pub fn build(self) -> Router {
        let state = Arc::new(DashboardState {
            store: self.store.clone(),
            settings: self.settings.clone(),
            clock: self.clock.clone(),
        });
        let status = StatusRouter::new(self.store)
            .alerts(self.settings)
            .shared_clock(self.clock)
            .build();

        let pages = Router::new()
            .route("/", get(pages::overview))
            .route("/tasks", get(pages::tasks))
            .route(
                "/tasks/new",
                get(pages::new_task).post(actions::create_task),
            )
            .route("/tasks/{id}", get(pages::task))
            .route(
                "/tasks/{id}/edit",
                get(pages::edit_task).post(actions::update_task),
            )
            .route("/tasks/{id}/pause", post(actions::pause_task))
            .route("/tasks/{id}/resume", post(actions::resume_task))
            .route("/tasks/{id}/run", post(actions::run_task))
            .route(
                "/tasks/{id}/delete",
                get(pages::delete_task).post(actions::delete_task),
            )
            .route("/executions", get(pages::executions))
            .route("/executions/{id}", get(pages::execution))
            .route("/assets/{version}/{file}", get(assets::serve))
            .fallback(pages::not_found)
            .with_state(state)
            .layer(axum::middleware::map_response(layout::security_headers));

        match self.auth {
            None => {
                let allowed = Arc::new(self.allowed_hosts);
                pages
                    .merge(status)
                    .layer(axum::middleware::from_fn_with_state(allowed, check_host))
            }
            Some(auth) => {
                let guard = axum::middleware::from_fn_with_state(auth, require_auth);
                if self.public_status {
                    pages.layer(guard).merge(status)
                } else {
                    pages.merge(status).layer(guard)
                }
            }
        }
    }
}

/// Responds 421 to a request whose `Host` is neither a loopback name nor
/// one of `allowed`; see [`Dashboard::allowed_hosts`].
async fn check_host(
    axum::extract::State(allowed): axum::extract::State<Arc<Vec<String>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let host = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if host_is_allowed(&host, &allowed) {
        return next.run(request).await;
    }
    tracing::warn!(host = %host, "dashboard request for a host that is not allowed; responded 421");
    let message = format!(
        "The dashboard does not answer for the host `{host}`: without authentication it \
         answers only loopback names and the hosts given to `Dashboard::allowed_hosts`. \
         Add the host there, or set `Dashboard::auth`.\n"
    );
    (axum::http::StatusCode::MISDIRECTED_REQUEST, message).into_response()
}

/// Returns whether `host` (a `Host` header, lowercase) is a loopback name,
/// with or without a port, or one of `allowed`.
fn host_is_allowed(host: &str, allowed: &[String]) -> bool {
    if allowed.iter().any(|name| name == host) {
        return true;
    }
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    matches!(name, "localhost" | "127.0.0.1" | "::1")
}

/// The state shared by the handlers.
struct DashboardState {
    store: Store,
    settings: AlertSettings,
    clock: Arc<dyn Clock>,
}

type SharedState = Arc<DashboardState>;
