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

#[cfg(feature = "sqlite")]
impl ToSql<UtcTime, diesel::sqlite::Sqlite> for StoredTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::sqlite::Sqlite>) -> serialize::Result {
        ToSql::<diesel::sql_types::Timestamp, diesel::sqlite::Sqlite>::to_sql(&self.0, out)
    }
}

#[cfg(feature = "sqlite")]
impl FromSql<UtcTime, diesel::sqlite::Sqlite> for StoredTime {
    fn from_sql(value: diesel::sqlite::SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
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
