//! Runners and leases: how runners that share a database know of each
//! other. Each runner keeps a row fresh with its heartbeat; a runner whose
//! heartbeat is too old is dead, and its executions and leases are freed.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::rows::{from_db, to_db};
use super::schema::{
    quicksilver_executions as executions, quicksilver_leases as leases,
    quicksilver_runners as runners,
};
use super::sql_types::StoredTime;
use super::{Result, Store, StoreError};
use crate::execution::Status;

/// A runner's row, as [`Store::register_runner`] writes it.
#[derive(Debug, Clone)]
pub(crate) struct RunnerRecord {
    pub(crate) identity: String,
    pub(crate) queue: String,
    pub(crate) host: String,
    pub(crate) pid: u32,
}

/// A runner that shares the database, as its row says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerInfo {
    /// The runner's identity: host, process id and a random part.
    pub identity: String,
    /// The queue it serves.
    pub queue: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id on that host.
    pub pid: i64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// When it stopped, for a runner that stopped cleanly.
    pub stopped_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Records a runner that starts, with its first heartbeat.
    pub(crate) async fn register_runner(
        &self,
        runner: RunnerRecord,
        now: DateTime<Utc>,
    ) -> Result<()> {
        write_on_backend!(self, |connection| {
            diesel::delete(runners::table.find(&runner.identity)).execute(connection)?;
            diesel::insert_into(runners::table)
                .values((
                    runners::id.eq(&runner.identity),
                    runners::queue.eq(&runner.queue),
                    runners::host.eq(&runner.host),
                    runners::pid.eq(i64::from(runner.pid)),
                    runners::started_at.eq(to_db(now)),
                    runners::heartbeat_at.eq(to_db(now)),
                ))
                .execute(connection)?;
            Ok(())
        })
    }

    /// Writes a runner's heartbeat. A runner whose row is gone, because
    /// another runner took it for dead, writes it again.
    pub(crate) async fn heartbeat(&self, runner: RunnerRecord, now: DateTime<Utc>) -> Result<()> {
        let identity = runner.identity.clone();
        let updated = on_backend!(self, |connection, inner| {
            Ok(diesel::update(runners::table.find(&identity))
                .set((
                    runners::heartbeat_at.eq(to_db(now)),
                    runners::stopped_at.eq(None::<StoredTime>),
                ))
                .execute(connection)?)
        })?;
        if updated == 0 {
            self.register_runner(runner, now).await?;
        }
        Ok(())
    }

    /// Records that a runner stopped cleanly.
    pub(crate) async fn stop_runner(&self, identity: &str, now: DateTime<Utc>) -> Result<()> {
        let identity = identity.to_owned();
        on_backend!(self, |connection, inner| {
            diesel::update(runners::table.find(&identity))
                .set(runners::stopped_at.eq(Some(to_db(now))))
                .execute(connection)?;
            Ok(())
        })
    }

    /// Marks `killed` the `ongoing` executions of `queue` whose runner is
    /// dead: its heartbeat is older than `stale_before`, or it stopped.
    /// Their leases are released. Returns the killed executions with their
    /// runner.
    ///
    /// A read finds them first, so that the usual case, none, writes
    /// nothing.
    pub(crate) async fn reap_dead_runners(
        &self,
        queue: &str,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
        reason: String,
    ) -> Result<Vec<(i64, String)>> {
        let queue = queue.to_owned();
        let dead = move || {
            runners::table
                .filter(
                    runners::heartbeat_at
                        .lt(to_db(stale_before))
                        .or(runners::stopped_at.is_not_null()),
                )
                .select(runners::id.nullable())
        };
        let read_queue = queue.clone();
        let found: Vec<(i64, Option<String>)> = on_backend!(self, |connection, inner| {
            Ok(executions::table
                .filter(executions::queue.eq(&read_queue))
                .filter(executions::status.eq(Status::Ongoing.as_str()))
                .filter(executions::runner.eq_any(dead()))
                .select((executions::id, executions::runner))
                .load(connection)?)
        })?;
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let killed = write_on_backend!(self, |connection| {
            // Read again under the write: a runner may have recorded the
            // end of a run meanwhile.
            let found: Vec<(i64, Option<String>)> = executions::table
                .filter(executions::queue.eq(&queue))
                .filter(executions::status.eq(Status::Ongoing.as_str()))
                .filter(executions::runner.eq_any(dead()))
                .select((executions::id, executions::runner))
                .load(connection)?;
            let ids: Vec<i64> = found.iter().map(|(id, _)| *id).collect();
            mark_killed(connection, &ids, &reason, now)?;
            let holders: Vec<String> = found.iter().filter_map(|(_, r)| r.clone()).collect();
            diesel::delete(leases::table.filter(leases::holder.eq_any(&holders)))
                .execute(connection)?;
            Ok(found)
        })?;
        Ok(killed
            .into_iter()
            .map(|(id, runner)| (id, runner.unwrap_or_default()))
            .collect())
    }

    /// Marks `killed` the `ongoing` executions of `runner` that it does not
    /// run: those of a claim whose commit reached the database while its
    /// answer was lost with the connection. Without this, such a run would
    /// stay `ongoing` under a live runner and block its task for good.
    pub(crate) async fn kill_unknown_runs(
        &self,
        runner: &str,
        running: Vec<i64>,
        now: DateTime<Utc>,
        reason: String,
    ) -> Result<Vec<i64>> {
        let runner = runner.to_owned();
        let read_runner = runner.clone();
        let ours: Vec<i64> = on_backend!(self, |connection, inner| {
            Ok(executions::table
                .filter(executions::runner.eq(&read_runner))
                .filter(executions::status.eq(Status::Ongoing.as_str()))
                .select(executions::id)
                .load(connection)?)
        })?;
        let unknown: Vec<i64> = ours
            .into_iter()
            .filter(|id| !running.contains(id))
            .collect();
        if unknown.is_empty() {
            return Ok(unknown);
        }
        write_on_backend!(self, |connection| {
            let still: Vec<i64> = executions::table
                .filter(executions::id.eq_any(&unknown))
                .filter(executions::runner.eq(&runner))
                .filter(executions::status.eq(Status::Ongoing.as_str()))
                .select(executions::id)
                .load(connection)?;
            mark_killed(connection, &still, &reason, now)?;
            Ok(still)
        })
    }

    /// Returns the runners recorded for `queue`, or for every queue, most
    /// recent heartbeat first.
    ///
    /// # Errors
    ///
    /// - [`StoreError::Query`] when the database fails.
    pub async fn runners(&self, queue: Option<&str>) -> Result<Vec<RunnerInfo>> {
        let queue = queue.map(str::to_owned);
        type Row = (
            String,
            String,
            String,
            i64,
            StoredTime,
            StoredTime,
            Option<StoredTime>,
        );
        let rows: Vec<Row> = on_backend!(self, |connection, inner| {
            let mut query = runners::table.into_boxed();
            if let Some(queue) = &queue {
                query = query.filter(runners::queue.eq(queue));
            }
            Ok(query
                .order(runners::heartbeat_at.desc())
                .select((
                    runners::id,
                    runners::queue,
                    runners::host,
                    runners::pid,
                    runners::started_at,
                    runners::heartbeat_at,
                    runners::stopped_at,
                ))
                .load(connection)?)
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(identity, queue, host, pid, started, heartbeat, stopped)| RunnerInfo {
                    identity,
                    queue,
                    host,
                    pid,
                    started_at: from_db(started),
                    heartbeat_at: from_db(heartbeat),
                    stopped_at: stopped.map(from_db),
                },
            )
            .collect())
    }

    /// Takes the lease `name` for `holder` until `expires_at`, unless
    /// another holder has it and it has not expired. Returns the holder
    /// that has it when this one cannot.
    pub(crate) async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        execution_id: Option<i64>,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Option<String>> {
        let name = name.to_owned();
        let holder = holder.to_owned();
        write_on_backend!(self, |connection| {
            // An expired lease, or one of this holder, is taken over; a
            // live one of another holder stays.
            let taken = diesel::update(
                leases::table.filter(leases::name.eq(&name)).filter(
                    leases::expires_at
                        .le(to_db(now))
                        .or(leases::holder.eq(&holder)),
                ),
            )
            .set((
                leases::holder.eq(&holder),
                leases::execution_id.eq(execution_id),
                leases::acquired_at.eq(to_db(now)),
                leases::expires_at.eq(to_db(expires_at)),
            ))
            .execute(connection)?;
            if taken == 1 {
                return Ok(None);
            }
            let current: Option<String> = leases::table
                .find(&name)
                .select(leases::holder)
                .first(connection)
                .optional()?;
            if let Some(current) = current {
                return Ok(Some(current));
            }
            // No row: insert one. Two holders that race here both try; the
            // primary key lets one in and fails the other, whose whole
            // transaction then reports the lease as taken.
            let inserted = diesel::insert_into(leases::table)
                .values((
                    leases::name.eq(&name),
                    leases::holder.eq(&holder),
                    leases::execution_id.eq(execution_id),
                    leases::acquired_at.eq(to_db(now)),
                    leases::expires_at.eq(to_db(expires_at)),
                ))
                .execute(connection);
            match inserted {
                Ok(_) => Ok(None),
                Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                )) => Ok(Some("another runner".to_owned())),
                Err(error) => Err(StoreError::Query(error)),
            }
        })
    }

    /// Extends the lease `name` of `holder` to `expires_at`. Returns false
    /// when the holder no longer has it.
    pub(crate) async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool> {
        let name = name.to_owned();
        let holder = holder.to_owned();
        let renewed = on_backend!(self, |connection, inner| {
            Ok(diesel::update(
                leases::table
                    .filter(leases::name.eq(&name))
                    .filter(leases::holder.eq(&holder)),
            )
            .set(leases::expires_at.eq(to_db(expires_at)))
            .execute(connection)?)
        })?;
        Ok(renewed == 1)
    }

    /// Releases the lease `name` if `holder` has it.
    pub(crate) async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let name = name.to_owned();
        let holder = holder.to_owned();
        on_backend!(self, |connection, inner| {
            diesel::delete(
                leases::table
                    .filter(leases::name.eq(&name))
                    .filter(leases::holder.eq(&holder)),
            )
            .execute(connection)?;
            Ok(())
        })
    }
}
