//! Fresh databases on each backend: SQLite always, PostgreSQL and MySQL when
//! the environment names a server for them.
//!
//! [`backend_tests!`](crate::backend_tests) turns one test body into one
//! test per backend, so that a failure names its backend:
//!
//! ```text
//! test database_takes_writes::sqlite ... ok
//! test database_takes_writes::postgres ... ok
//! test database_takes_writes::mysql ... ok
//! ```
//!
//! Each test gets a [`TestDatabase`]: a file in a temporary folder on SQLite,
//! and a database with a unique `qs_t_` name on a server, dropped again when
//! the value drops. The server URLs come from [`POSTGRES_URL_VAR`] and
//! [`MYSQL_URL_VAR`]; `.ci/run` sets both. When one is not set, the tests of
//! that backend pass without running, and the test binary writes one
//! `skipping ...` line to standard error. When one is set but the server is
//! unreachable, the tests of that backend fail.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::connection::SimpleConnection;
use diesel::sql_types::Text;
use diesel::{Connection, MysqlConnection, PgConnection, QueryableByName, RunQueryDsl};
use diesel::{ConnectionError, QueryResult, SqliteConnection};
use tempfile::TempDir;
use url::Url;

/// The environment variable with the URL of the PostgreSQL test server, such
/// as `postgres://postgres@127.0.0.1:5432/test`.
pub const POSTGRES_URL_VAR: &str = "QUICKSILVER_TEST_POSTGRES_URL";

/// The environment variable with the URL of the MySQL or MariaDB test
/// server, such as `mysql://root@127.0.0.1:3306/test`.
pub const MYSQL_URL_VAR: &str = "QUICKSILVER_TEST_MYSQL_URL";

/// The start of the name of every database that [`TestDatabase`] creates on
/// a server. The full name is `qs_t_<unix seconds>_<16 hex digits>`.
pub const DATABASE_PREFIX: &str = "qs_t_";

/// The age after which a test database left on a server, by a test process
/// that was killed before it could drop it, is dropped by the next test run.
pub const STALE_AFTER: Duration = Duration::from_secs(60 * 60);

/// A database backend that quicksilver's store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
    /// A MySQL or MariaDB server.
    Mysql,
}

impl Backend {
    /// Every backend, in the order the tests run them.
    pub const ALL: [Backend; 3] = [Backend::Sqlite, Backend::Postgres, Backend::Mysql];

    /// Returns the product name, as in messages.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
            Backend::Mysql => "MySQL",
        }
    }

    /// Returns the environment variable with the server URL, or `None` for
    /// SQLite, which needs no server.
    pub fn url_var(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some(POSTGRES_URL_VAR),
            Backend::Mysql => Some(MYSQL_URL_VAR),
        }
    }

    /// Returns the server URL from the environment, or `None` when the
    /// variable is not set or empty, and always for SQLite.
    pub fn server_url(self) -> Option<String> {
        let url = std::env::var(self.url_var()?).ok()?;
        (!url.trim().is_empty()).then_some(url)
    }

    /// Returns whether the tests of this backend run. When they do not, the
    /// first call in the process writes why to standard error.
    pub fn is_enabled(self) -> bool {
        let Some(var) = self.url_var() else {
            return true;
        };
        if self.server_url().is_some() {
            return true;
        }
        static SKIP_LINES: [Once; 3] = [Once::new(), Once::new(), Once::new()];
        SKIP_LINES[self.index()].call_once(|| {
            write_stderr_line(&format!(
                "skipping {}: {var} is not set (for example {})",
                self.name(),
                self.example_url(),
            ));
        });
        false
    }

    fn example_url(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => "postgres://postgres@127.0.0.1:5432/test",
            Backend::Mysql => "mysql://root@127.0.0.1:3306/test",
        }
    }

    fn index(self) -> usize {
        match self {
            Backend::Sqlite => 0,
            Backend::Postgres => 1,
            Backend::Mysql => 2,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// Returns the backends whose tests run: SQLite, and each server backend
/// whose URL variable is set. Writes one `skipping ...` line to standard
/// error for each other backend, once per process.
pub fn enabled_backends() -> Vec<Backend> {
    Backend::ALL
        .into_iter()
        .filter(|backend| backend.is_enabled())
        .collect()
}

/// Runs `body` on a fresh database of `backend`, or returns at once when
/// the backend is not enabled. The database is dropped when `body` returns
/// or panics.
///
/// # Panics
///
/// As [`TestDatabase::create`], and whenever `body` panics.
pub async fn run_on<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(TestDatabase) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(database) = TestDatabase::create(backend) {
        body(database).await;
    }
}

/// Runs `body` like [`run_on`], for a test that is not async, such as one
/// that runs a tokio runtime of its own.
///
/// # Panics
///
/// As [`run_on`].
pub fn run_blocking_on<F>(backend: Backend, body: F)
where
    F: FnOnce(TestDatabase),
{
    if let Some(database) = TestDatabase::create(backend) {
        body(database);
    }
}

/// Generates one test per backend from one test body.
///
/// Each function becomes a module with the tests `sqlite`, `postgres` and
/// `mysql`, each with the given attributes (at least the test attribute).
/// The body gets a fresh [`TestDatabase`](crate::backends::TestDatabase) and
/// can use the items of the enclosing module. A backend whose server URL is not
/// set passes without running (see
/// [`Backend::is_enabled`](crate::backends::Backend::is_enabled)). Bodies may
/// be `async fn` (with an async test attribute such as `#[tokio::test]`) or
/// plain `fn` (with `#[test]`).
///
/// ```ignore
/// support::backend_tests! {
///     #[tokio::test]
///     async fn database_starts_empty(database: TestDatabase) {
///         database.execute_sql("CREATE TABLE t (id BIGINT)");
///     }
///
///     #[test]
///     fn database_takes_writes(database: TestDatabase) {
///         database.execute_sql("CREATE TABLE t (id BIGINT); INSERT INTO t VALUES (1)");
///     }
/// }
/// ```
///
/// A signature that ends with `;` instead of a body names a function of
/// the enclosing module with that signature, which rustfmt and clippy then
/// see as ordinary code:
///
/// ```ignore
/// support::backend_tests! {
///     #[tokio::test]
///     async fn database_starts_empty(database: TestDatabase);
/// }
/// async fn database_starts_empty(database: TestDatabase) {
///     database.execute_sql("CREATE TABLE t (id BIGINT)");
/// }
/// ```
#[macro_export]
macro_rules! backend_tests {
    () => {};
    (
        $(#[$attribute:meta])+
        async fn $name:ident($database:ident: TestDatabase);
        $($rest:tt)*
    ) => {
        mod $name {
            $(#[$attribute])+
            async fn sqlite() {
                $crate::backends::run_on($crate::backends::Backend::Sqlite, super::$name).await;
            }

            $(#[$attribute])+
            async fn postgres() {
                $crate::backends::run_on($crate::backends::Backend::Postgres, super::$name).await;
            }

            $(#[$attribute])+
            async fn mysql() {
                $crate::backends::run_on($crate::backends::Backend::Mysql, super::$name).await;
            }
        }

        $crate::backend_tests! { $($rest)* }
    };
    (
        $(#[$attribute:meta])+
        fn $name:ident($database:ident: TestDatabase);
        $($rest:tt)*
    ) => {
        mod $name {
            $(#[$attribute])+
            fn sqlite() {
                $crate::backends::run_blocking_on($crate::backends::Backend::Sqlite, super::$name);
            }

            $(#[$attribute])+
            fn postgres() {
                $crate::backends::run_blocking_on($crate::backends::Backend::Postgres, super::$name);
            }

            $(#[$attribute])+
            fn mysql() {
                $crate::backends::run_blocking_on($crate::backends::Backend::Mysql, super::$name);
            }
        }

        $crate::backend_tests! { $($rest)* }
    };
    (
        $(#[$attribute:meta])+
        async fn $name:ident($database:ident: TestDatabase) $body:block
        $($rest:tt)*
    ) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($database: $crate::backends::TestDatabase) $body

            $(#[$attribute])+
            async fn sqlite() {
                $crate::backends::run_on($crate::backends::Backend::Sqlite, body).await;
            }

            $(#[$attribute])+
            async fn postgres() {
                $crate::backends::run_on($crate::backends::Backend::Postgres, body).await;
            }

            $(#[$attribute])+
            async fn mysql() {
                $crate::backends::run_on($crate::backends::Backend::Mysql, body).await;
            }
        }

        $crate::backend_tests! { $($rest)* }
    };
    (
        $(#[$attribute:meta])+
        fn $name:ident($database:ident: TestDatabase) $body:block
        $($rest:tt)*
    ) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($database: $crate::backends::TestDatabase) $body

            $(#[$attribute])+
            fn sqlite() {
                $crate::backends::run_blocking_on($crate::backends::Backend::Sqlite, body);
            }

            $(#[$attribute])+
            fn postgres() {
                $crate::backends::run_blocking_on($crate::backends::Backend::Postgres, body);
            }

            $(#[$attribute])+
            fn mysql() {
                $crate::backends::run_blocking_on($crate::backends::Backend::Mysql, body);
            }
        }

        $crate::backend_tests! { $($rest)* }
    };
}

/// A fresh, empty database for one test.
///
/// On SQLite it is a file in a temporary folder. On a server it is a
/// database named `qs_t_<unix seconds>_<random>`. Dropping the value deletes
/// the folder or drops the database, so close the test's connections to it
/// first: PostgreSQL closes the ones still open, but MySQL waits for their
/// open transactions.
pub struct TestDatabase {
    backend: Backend,
    url: String,
    name: String,
    /// The URL of the server's own database, through which this one is
    /// dropped, or `None` on SQLite.
    server_url: Option<String>,
    /// The folder of the SQLite file, deleted on drop.
    _folder: Option<TempDir>,
}

impl TestDatabase {
    /// Creates a database on `backend`, on the server that its URL
    /// variable names. Returns `None` when the backend is not enabled (see
    /// [`Backend::is_enabled`]).
    ///
    /// Blocks while it talks to the server. The first call for a server in
    /// each process also drops the test databases older than
    /// [`STALE_AFTER`].
    ///
    /// # Panics
    ///
    /// Panics when the temporary folder cannot be created, when the URL
    /// variable is not a valid URL, when the server is unreachable, or when
    /// the server rejects the `CREATE DATABASE`.
    pub fn create(backend: Backend) -> Option<TestDatabase> {
        if !backend.is_enabled() {
            return None;
        }
        match backend.server_url() {
            None => Some(TestDatabase::create_sqlite()),
            Some(server_url) => Some(TestDatabase::create_on(backend, &server_url)),
        }
    }

    /// Creates a database on the `backend` server at `server_url`, which
    /// names an existing database of that server to connect to, such as
    /// `test`.
    ///
    /// # Panics
    ///
    /// Panics on SQLite, which has no server, and as
    /// [`create`](TestDatabase::create).
    pub fn create_on(backend: Backend, server_url: &str) -> TestDatabase {
        assert!(
            backend != Backend::Sqlite,
            "SQLite has no server; use TestDatabase::create(Backend::Sqlite)"
        );
        let server = parse_url(backend, server_url);
        let mut connection = ServerConnection::open(backend, server_url)
            .unwrap_or_else(|error| panic!("{}", unreachable_message(backend, &server, &error)));

        static STALE_CLEANUPS: [Once; 3] = [Once::new(), Once::new(), Once::new()];
        STALE_CLEANUPS[backend.index()].call_once(|| {
            if let Err(error) = connection.drop_stale_databases() {
                write_stderr_line(&format!(
                    "warning: could not drop the stale test databases on {}: {error}",
                    redact(&server),
                ));
            }
        });

        let name = unique_database_name();
        connection.create_database(&name).unwrap_or_else(|error| {
            panic!(
                "create the test database {name} on {}: {error}",
                redact(&server)
            )
        });
        let mut url = server.clone();
        url.set_path(&format!("/{name}"));
        TestDatabase {
            backend,
            url: url.to_string(),
            name,
            server_url: Some(server_url.to_owned()),
            _folder: None,
        }
    }

    fn create_sqlite() -> TestDatabase {
        let folder = tempfile::tempdir().expect("create a temporary folder for the database");
        let path = folder.path().join("quicksilver.sqlite3");
        let url = path.to_str().expect("temporary path is UTF-8").to_owned();
        TestDatabase {
            backend: Backend::Sqlite,
            url: url.clone(),
            name: url,
            server_url: None,
            _folder: Some(folder),
        }
    }

    /// Returns the backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Returns the database URL: a file path on SQLite, the server URL with
    /// the test database's name on a server.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Returns the database name on a server, or the file path on SQLite.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `sql`, one or more statements separated by `;`, on a new
    /// connection to the database.
    ///
    /// # Panics
    ///
    /// Panics when the connection fails or a statement fails.
    pub fn execute_sql(&self, sql: &str) {
        let result = match self.backend {
            Backend::Sqlite => SqliteConnection::establish(&self.url)
                .map_err(|error| error.to_string())
                .and_then(|mut connection| batch_execute(&mut connection, sql)),
            Backend::Postgres => PgConnection::establish(&self.url)
                .map_err(|error| error.to_string())
                .and_then(|mut connection| batch_execute(&mut connection, sql)),
            Backend::Mysql => MysqlConnection::establish(&self.url)
                .map_err(|error| error.to_string())
                .and_then(|mut connection| batch_execute(&mut connection, sql)),
        };
        if let Err(error) = result {
            panic!(
                "run `{sql}` on the {} test database {}: {error}",
                self.backend, self.name
            );
        }
    }
}

impl fmt::Debug for TestDatabase {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TestDatabase")
            .field("backend", &self.backend)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(server_url) = &self.server_url else {
            // The temporary folder deletes the SQLite file.
            return;
        };
        let dropped = ServerConnection::open(self.backend, server_url)
            .map_err(|error| error.to_string())
            .and_then(|mut connection| {
                connection
                    .drop_database(&self.name)
                    .map_err(|error| error.to_string())
            });
        if let Err(error) = dropped {
            // A panic here would abort a test that is already unwinding.
            write_stderr_line(&format!(
                "warning: could not drop the {} test database {}: {error}. A test run \
                 after {} minutes drops it",
                self.backend,
                self.name,
                STALE_AFTER.as_secs() / 60,
            ));
        }
    }
}

/// Returns the names of the test databases on the `backend` server at
/// `server_url`.
///
/// # Panics
///
/// Panics on SQLite, when the server is unreachable, or when the server
/// rejects the query.
pub fn server_test_databases(backend: Backend, server_url: &str) -> Vec<String> {
    let server = parse_url(backend, server_url);
    let mut connection = ServerConnection::open(backend, server_url)
        .unwrap_or_else(|error| panic!("{}", unreachable_message(backend, &server, &error)));
    connection
        .test_databases()
        .unwrap_or_else(|error| panic!("list the databases on {}: {error}", redact(&server)))
}

/// Drops the test databases older than [`STALE_AFTER`] on the `backend`
/// server at `server_url`, as the first [`TestDatabase::create_on`] of each
/// process does.
///
/// # Panics
///
/// As [`server_test_databases`], and when a `DROP DATABASE` fails.
pub fn drop_stale_databases(backend: Backend, server_url: &str) {
    let server = parse_url(backend, server_url);
    let mut connection = ServerConnection::open(backend, server_url)
        .unwrap_or_else(|error| panic!("{}", unreachable_message(backend, &server, &error)));
    connection.drop_stale_databases().unwrap_or_else(|error| {
        panic!(
            "drop the stale test databases on {}: {error}",
            redact(&server)
        )
    });
}

/// A connection to a server's own database, for `CREATE DATABASE` and
/// `DROP DATABASE`.
enum ServerConnection {
    Postgres(PgConnection),
    Mysql(MysqlConnection),
}

#[derive(QueryableByName)]
struct DatabaseName {
    #[diesel(sql_type = Text)]
    name: String,
}

impl ServerConnection {
    fn open(backend: Backend, url: &str) -> Result<ServerConnection, ConnectionError> {
        match backend {
            Backend::Sqlite => unreachable!("SQLite has no server"),
            Backend::Postgres => PgConnection::establish(url).map(ServerConnection::Postgres),
            Backend::Mysql => MysqlConnection::establish(url).map(ServerConnection::Mysql),
        }
    }

    fn create_database(&mut self, name: &str) -> QueryResult<()> {
        match self {
            ServerConnection::Postgres(connection) => {
                connection.batch_execute(&format!("CREATE DATABASE \"{name}\" ENCODING 'UTF8'"))
            }
            ServerConnection::Mysql(connection) => connection.batch_execute(&format!(
                "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            )),
        }
    }

    /// Drops the database `name`, closing the connections to it first on
    /// PostgreSQL (which needs version 13 or later for that).
    fn drop_database(&mut self, name: &str) -> QueryResult<()> {
        match self {
            ServerConnection::Postgres(connection) => connection
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")),
            ServerConnection::Mysql(connection) => {
                connection.batch_execute(&format!("DROP DATABASE IF EXISTS `{name}`"))
            }
        }
    }

    fn test_databases(&mut self) -> QueryResult<Vec<String>> {
        let query = match self {
            ServerConnection::Postgres(_) => "SELECT datname AS name FROM pg_database",
            ServerConnection::Mysql(_) => {
                "SELECT schema_name AS name FROM information_schema.schemata"
            }
        };
        let names: Vec<DatabaseName> = match self {
            ServerConnection::Postgres(connection) => diesel::sql_query(query).load(connection)?,
            ServerConnection::Mysql(connection) => diesel::sql_query(query).load(connection)?,
        };
        Ok(names
            .into_iter()
            .map(|row| row.name)
            .filter(|name| created_at(name).is_some())
            .collect())
    }

    fn drop_stale_databases(&mut self) -> QueryResult<()> {
        let now = unix_seconds();
        for name in self.test_databases()? {
            let Some(created) = created_at(&name) else {
                continue;
            };
            if now.saturating_sub(created) > STALE_AFTER.as_secs() {
                self.drop_database(&name)?;
            }
        }
        Ok(())
    }
}

/// Writes `line` to standard error in one write. It goes to the file
/// descriptor because libtest captures `eprintln!` of passing tests, and a
/// single write keeps it whole among the test harness's lines.
fn write_stderr_line(line: &str) {
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

fn batch_execute(connection: &mut impl SimpleConnection, sql: &str) -> Result<(), String> {
    connection
        .batch_execute(sql)
        .map_err(|error| error.to_string())
}

/// Returns a new database name: the prefix, the time in Unix seconds (read
/// back by the stale-database cleanup) and 64 random bits.
fn unique_database_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!(
        "{DATABASE_PREFIX}{}_{:016x}",
        unix_seconds(),
        hasher.finish()
    )
}

/// Returns the creation time in Unix seconds of a database named by
/// [`unique_database_name`], or `None` for any other name.
fn created_at(name: &str) -> Option<u64> {
    let rest = name.strip_prefix(DATABASE_PREFIX)?;
    let (seconds, random) = rest.split_once('_')?;
    let well_formed = !seconds.is_empty()
        && seconds.bytes().all(|byte| byte.is_ascii_digit())
        && random.len() == 16
        && random.bytes().all(|byte| byte.is_ascii_hexdigit());
    if !well_formed {
        return None;
    }
    seconds.parse().ok()
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn parse_url(backend: Backend, url: &str) -> Url {
    let var = backend.url_var().unwrap_or("the server URL");
    Url::parse(url).unwrap_or_else(|error| {
        panic!(
            "{var} is not a valid {} URL ({error}). Expected a URL like {}",
            backend.name(),
            backend.example_url()
        )
    })
}

fn unreachable_message(backend: Backend, server: &Url, error: &ConnectionError) -> String {
    let var = backend.url_var().unwrap_or("the server URL");
    // libpq's messages span several lines.
    let error = error
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "cannot connect to the {name} test server at {url}. Start the server (`.ci/run` \
         shows how) or unset {var} to skip the {name} tests. The connection error: {error}",
        name = backend.name(),
        url = redact(server),
    )
}

/// Returns `url` with its password, if any, replaced by `***`.
fn redact(url: &Url) -> String {
    let mut redacted = url.clone();
    if redacted.password().is_some() {
        let _ = redacted.set_password(Some("***"));
    }
    redacted.to_string()
}
