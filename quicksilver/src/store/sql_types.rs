//! The SQL type of the time columns.

use chrono::NaiveDateTime;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, Output, ToSql};

/// A UTC time without time zone: `TIMESTAMP` on SQLite and PostgreSQL and
/// `DATETIME(6)` on MySQL and MariaDB.
///
/// Diesel's `Timestamp` binds MySQL parameters as `TIMESTAMP` values, and a
/// MariaDB 10.11 server stores such a parameter outside 1970 to 2038 as NULL
/// even in a `DATETIME` column, so this type binds them as `DATETIME`.
#[derive(
    diesel::sql_types::SqlType, diesel::query_builder::QueryId, Clone, Copy, Debug, Default,
)]
#[diesel(postgres_type(oid = 1114, array_oid = 1115))]
#[diesel(sqlite_type(name = "Text"))]
#[diesel(mysql_type(name = "DateTime"))]
#[allow(unreachable_pub)]
pub struct UtcTime;

/// A value of a [`UtcTime`] column: UTC, without time zone.
#[derive(AsExpression, FromSqlRow, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[diesel(sql_type = UtcTime)]
#[allow(unreachable_pub)]
pub struct StoredTime(pub NaiveDateTime);

/// The text form of times on SQLite, diesel's `%F %T%.f`
/// (`2026-12-05 10:00:00.250`), which sorts as the times do.
#[cfg(feature = "sqlite")]
const SQLITE_FORMAT: &str = "%F %T%.f";

/// [`SQLITE_FORMAT`] parsed once: chrono's `format` and `parse_from_str`
/// parse their format string at every call, which showed in profiles of
/// busy runners.
#[cfg(feature = "sqlite")]
fn sqlite_format() -> &'static [chrono::format::Item<'static>] {
    static ITEMS: std::sync::OnceLock<Vec<chrono::format::Item<'static>>> =
        std::sync::OnceLock::new();
    ITEMS.get_or_init(|| {
        chrono::format::StrftimeItems::new(SQLITE_FORMAT)
            .parse_to_owned()
            .expect("the SQLite time format is valid")
    })
}

#[cfg(feature = "sqlite")]
impl ToSql<UtcTime, diesel::sqlite::Sqlite> for StoredTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::sqlite::Sqlite>) -> serialize::Result {
        out.set_value(self.0.format_with_items(sqlite_format().iter()).to_string());
        Ok(serialize::IsNull::No)
    }
}

#[cfg(feature = "sqlite")]
impl FromSql<UtcTime, diesel::sqlite::Sqlite> for StoredTime {
    fn from_sql(mut value: diesel::sqlite::SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        // Times this crate wrote have this one format. Other forms, such as
        // a time a person typed into the database, go through diesel's search.
        if value.value_type() == Some(diesel::sqlite::SqliteType::Text) {
            let mut parsed = chrono::format::Parsed::new();
            let read =
                chrono::format::parse(&mut parsed, value.read_text(), sqlite_format().iter())
                    .and_then(|()| parsed.to_naive_datetime_with_offset(0));
            if let Ok(time) = read {
                return Ok(StoredTime(time));
            }
        }
        FromSql::<diesel::sql_types::Timestamp, diesel::sqlite::Sqlite>::from_sql(value)
            .map(StoredTime)
    }
}

#[cfg(feature = "postgres")]
impl ToSql<UtcTime, diesel::pg::Pg> for StoredTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::pg::Pg>) -> serialize::Result {
        ToSql::<diesel::sql_types::Timestamp, diesel::pg::Pg>::to_sql(&self.0, out)
    }
}

#[cfg(feature = "postgres")]
impl FromSql<UtcTime, diesel::pg::Pg> for StoredTime {
    fn from_sql(value: diesel::pg::PgValue<'_>) -> deserialize::Result<Self> {
        FromSql::<diesel::sql_types::Timestamp, diesel::pg::Pg>::from_sql(value).map(StoredTime)
    }
}

#[cfg(feature = "mysql")]
impl ToSql<UtcTime, diesel::mysql::Mysql> for StoredTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::mysql::Mysql>) -> serialize::Result {
        ToSql::<diesel::sql_types::Datetime, diesel::mysql::Mysql>::to_sql(&self.0, out)
    }
}

#[cfg(feature = "mysql")]
impl FromSql<UtcTime, diesel::mysql::Mysql> for StoredTime {
    fn from_sql(value: diesel::mysql::MysqlValue<'_>) -> deserialize::Result<Self> {
        FromSql::<diesel::sql_types::Datetime, diesel::mysql::Mysql>::from_sql(value)
            .map(StoredTime)
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use chrono::{NaiveDate, NaiveDateTime};
    use diesel::connection::Connection as _;
    use diesel::dsl::sql;
    use diesel::{IntoSql as _, RunQueryDsl as _};

    use super::{StoredTime, UtcTime};

    fn time(nanos: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 12, 5)
            .and_then(|day| day.and_hms_nano_opt(10, 0, 7, nanos))
            .expect("valid time")
    }

    #[test]
    fn sqlite_times_round_trip_in_diesel_form() {
        let mut connection =
            diesel::SqliteConnection::establish(":memory:").expect("in-memory database");
        for (nanos, text) in [
            (0, "2026-12-05 10:00:07"),
            (250_000_000, "2026-12-05 10:00:07.250"),
            (123_456_000, "2026-12-05 10:00:07.123456"),
            (123_456_789, "2026-12-05 10:00:07.123456789"),
        ] {
            let stored = StoredTime(time(nanos));
            let written: String = diesel::select(
                sql::<diesel::sql_types::Text>("CAST(")
                    .bind::<UtcTime, _>(stored)
                    .sql(" AS TEXT)"),
            )
            .get_result(&mut connection)
            .expect("written");
            assert_eq!(written, text);
            let read: StoredTime = diesel::select(stored.into_sql::<UtcTime>())
                .get_result(&mut connection)
                .expect("read");
            assert_eq!(read, stored);
        }
    }

    #[test]
    fn sqlite_times_in_other_forms_are_read() {
        let mut connection =
            diesel::SqliteConnection::establish(":memory:").expect("in-memory database");
        for (text, expected) in [
            ("'2026-12-05T10:00:07'", time(0)),
            ("'2026-12-05 10:00:07.5Z'", time(500_000_000)),
            (
                "'2026-12-05 10:00'",
                time(0) - chrono::TimeDelta::seconds(7),
            ),
        ] {
            let read: StoredTime = diesel::select(sql::<UtcTime>(text))
                .get_result(&mut connection)
                .unwrap_or_else(|error| panic!("{text}: {error}"));
            assert_eq!(read.0, expected, "{text}");
        }
    }
}
