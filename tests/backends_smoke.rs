//! Backends: each test database starts empty, takes writes through a plain
//! diesel connection, is isolated from the others, and is gone once its
//! guard drops.
//!
//! The PostgreSQL and MySQL tests run when `QUICKSILVER_TEST_POSTGRES_URL`
//! and `QUICKSILVER_TEST_MYSQL_URL` name a server; `.ci/run` sets both.

use std::panic::AssertUnwindSafe;
use std::path::Path;

use diesel::sql_types::Text;
use diesel::SqliteConnection;
use diesel::{Connection, MysqlConnection, PgConnection, QueryableByName, RunQueryDsl};
use support::backends::{self, Backend, TestDatabase};

#[derive(QueryableByName)]
struct Note {
    #[diesel(sql_type = Text)]
    note: String,
}

/// Returns the notes of the table `smoke`, read through a new connection of
/// the database's backend.
fn notes(database: &TestDatabase) -> Vec<String> {
    let query = diesel::sql_query("SELECT note FROM smoke ORDER BY id");
    let url = database.url();
    let rows: Vec<Note> = match database.backend() {
        Backend::Sqlite => {
            let mut connection = SqliteConnection::establish(url).expect("connect to SQLite");
            query.load(&mut connection)
        }
        Backend::Postgres => {
            let mut connection = PgConnection::establish(url).expect("connect to PostgreSQL");
            query.load(&mut connection)
        }
        Backend::Mysql => {
            let mut connection = MysqlConnection::establish(url).expect("connect to MySQL");
            query.load(&mut connection)
        }
    }
    .unwrap_or_else(|error| panic!("read the notes of {database:?}: {error}"));
    rows.into_iter().map(|row| row.note).collect()
}

/// Returns whether the database of a dropped guard still exists.
fn database_exists(backend: Backend, name: &str) -> bool {
    match backend.server_url() {
        None => Path::new(name).exists(),
        Some(server_url) => backends::server_test_databases(backend, &server_url)
            .iter()
            .any(|existing| existing == name),
    }
}

support::backend_tests! {
    #[tokio::test]
    async fn database_takes_writes(database: TestDatabase) {
        database.execute_sql(
            "CREATE TABLE smoke (id BIGINT PRIMARY KEY, note TEXT NOT NULL); \
             INSERT INTO smoke (id, note) VALUES (1, 'first'), (2, 'second')",
        );

        assert_eq!(notes(&database), ["first", "second"], "notes of {database:?}");
    }

    #[tokio::test]
    async fn databases_are_isolated(first: TestDatabase) {
        let second = TestDatabase::create(first.backend())
            .expect("the backend of the first database is enabled");
        assert_ne!(first.url(), second.url(), "two test databases share a URL");

        first.execute_sql("CREATE TABLE smoke (id BIGINT PRIMARY KEY, note TEXT NOT NULL)");
        second.execute_sql("CREATE TABLE smoke (id BIGINT PRIMARY KEY, note TEXT NOT NULL)");
        first.execute_sql("INSERT INTO smoke (id, note) VALUES (1, 'first only')");

        assert_eq!(notes(&first), ["first only"], "notes of {first:?}");
        assert!(notes(&second).is_empty(), "{second:?} sees a row of {first:?}");
    }

    #[tokio::test]
    async fn dropping_guard_drops_database(database: TestDatabase) {
        database.execute_sql("CREATE TABLE smoke (id BIGINT PRIMARY KEY, note TEXT NOT NULL)");
        let backend = database.backend();
        let name = database.name().to_owned();
        assert!(database_exists(backend, &name), "{name} exists while its guard lives");

        drop(database);

        assert!(!database_exists(backend, &name), "{name} is still there after its guard dropped");
    }
}

#[test]
fn enabled_backends_include_sqlite() {
    let enabled = support::enabled_backends();

    assert_eq!(
        enabled.first(),
        Some(&Backend::Sqlite),
        "enabled: {enabled:?}"
    );
    for backend in [Backend::Postgres, Backend::Mysql] {
        assert_eq!(
            enabled.contains(&backend),
            backend.server_url().is_some(),
            "{backend} is enabled exactly when its URL variable is set: {enabled:?}"
        );
    }
}

#[test]
fn stale_databases_are_dropped() {
    for backend in support::enabled_backends() {
        let Some(server_url) = backend.server_url() else {
            continue;
        };
        // Named as if it had been created in 2001.
        let stale = "qs_t_1000000000_00000000deadbeef";
        let keep = TestDatabase::create_on(backend, &server_url);
        keep.execute_sql(&format!("CREATE DATABASE {stale}"));

        backends::drop_stale_databases(backend, &server_url);

        assert!(
            !database_exists(backend, stale),
            "{backend}: {stale} is still there"
        );
        assert!(
            database_exists(backend, keep.name()),
            "{backend}: a fresh database was dropped"
        );
    }
}

#[test]
fn unreachable_server_fails_naming_url() {
    // Nothing listens on port 1 of the loopback address, so the connection
    // is refused at once.
    let cases = [
        (Backend::Postgres, "postgres://postgres@127.0.0.1:1/test"),
        (Backend::Mysql, "mysql://root:secret@127.0.0.1:1/test"),
    ];
    for (backend, url) in cases {
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            TestDatabase::create_on(backend, url);
        }));

        let panic = result.expect_err("creating a database on a closed port fails the test");
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| format!("{panic:?}"));
        assert!(
            message.contains("127.0.0.1:1"),
            "{backend}: names the server: {message}"
        );
        assert!(
            message.contains("unset QUICKSILVER_TEST_"),
            "{backend}: gives the fix: {message}"
        );
        assert!(
            !message.contains("secret"),
            "{backend}: hides the password: {message}"
        );
    }
}
