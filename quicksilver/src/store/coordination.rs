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
use super::{Result, Store};
use crate::execution::Status;

/// A lease's row, as [`Store::take_lease`] inserts it.
#[derive(Debug, Insertable)]
#[diesel(table_name = leases)]
pub(crate) struct LeaseRow<'a> {
    pub(crate) name: &'a str,
    pub(crate) holder: &'a str,
    pub(crate) execution_id: Option<i64>,
    pub(crate) acquired_at: StoredTime,
    pub(crate) expires_at: StoredTime,
}

/// A runner's row, as [`Store::register_runner`] writes it.
#[derive(Debug, Clone)]
pub(crate) struct RunnerRecord {
    pub(crate) identity: String,
    pub(crate) queue: String,
    pub(crate) host: String,
    pub(crate) pid: u32,
}

/// The request of [`Store::reap`]: what to look for, and the reasons to record.
#[derive(Debug, Clone)]
pub(crate) struct ReapRequest {
    pub(crate) queue: String,
    /// The runner that reaps.
    pub(crate) runner: String,
    /// The executions that runner runs.
    pub(crate) running: Vec<i64>,
    /// The runner's executions that the last reap found and it did not
    /// run. Only those found again are killed: a claim that committed
    /// after `running` was taken shows up once, and is running by the next
    /// reap.
    pub(crate) suspects: Vec<i64>,
    /// Heartbeats before this are too old.
    pub(crate) stale_before: DateTime<Utc>,
    pub(crate) now: DateTime<Utc>,
    pub(crate) dead_reason: String,
    pub(crate) unknown_reason: String,
}

/// The executions [`Store::reap`] marked `killed`.
#[derive(Debug, Default)]
pub(crate) struct Reaped {
    /// Runs of dead runners, with their runner.
    pub(crate) dead: Vec<(i64, String)>,
    /// Runs of the reaping runner that never started.
    pub(crate) unknown: Vec<i64>,
    /// Runs of the reaping runner found for the first time, to give as
    /// `suspects` to the next reap.
    pub(crate) suspects: Vec<i64>,
    /// Whether other runners had runs of the queue going on, dead or alive.
    pub(crate) others_seen: bool,
}

/// A runner's row, as read.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = runners)]
pub(crate) struct RunnerRow {
    id: String,
    queue: String,
    host: String,
    pid: i64,
    started_at: StoredTime,
    heartbeat_at: StoredTime,
    stopped_at: Option<StoredTime>,
}

impl From<RunnerRow> for RunnerInfo {
    fn from(row: RunnerRow) -> Self {
        RunnerInfo {
            identity: row.id,
            queue: row.queue,
            host: row.host,
            pid: row.pid,
            started_at: from_db(row.started_at),
            heartbeat_at: from_db(row.heartbeat_at),
            stopped_at: row.stopped_at.map(from_db),
        }
    }
}

/// A runner that shares the database, as recorded in its row.
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

    /// Finds the `ongoing` executions of `queue` that no live runner runs,
    /// marks them `killed` and releases the leases of their dead runners.
    ///
    /// Two kinds are found:
    /// - runs of a dead runner: one whose heartbeat is older than
    ///   `stale_before`, that stopped, or that has no row;
    /// - runs of `runner` itself that are not in `running`: their claim
    ///   reached the database while its reply was lost with the
    ///   connection, so they never started, and would otherwise block their
    ///   task for good. Such a run is killed when two reaps in a row find
    ///   it.
    ///
    /// One read finds them, so that the usual case, none, writes nothing.
    pub(crate) async fn reap(&self, request: ReapRequest) -> Result<Reaped> {
        let queue = request.queue.clone();
        let ongoing: Vec<(i64, Option<String>)> = on_backend!(self, |connection, inner| {
            Ok(executions::table
                .filter(executions::queue.eq(&queue))
                .filter(executions::status.eq(Status::Ongoing.as_str()))
                .select((executions::id, executions::runner))
                .load(connection)?)
        })?;
        let mut unknown = Vec::new();
        let mut suspects = Vec::new();
        let mut others: Vec<(i64, String)> = Vec::new();
        for (id, runner) in ongoing {
            match runner {
                Some(runner) if runner == request.runner => {
                    if !request.running.contains(&id) {
                        if request.suspects.contains(&id) {
                            unknown.push(id);
                        } else {
                            suspects.push(id);
                        }
                    }
                }
                runner => others.push((id, runner.unwrap_or_default())),
            }
        }
        let mut dead = Vec::new();
        let others_seen = !others.is_empty();
        if others_seen {
            let mut names: Vec<String> = others.iter().map(|(_, r)| r.clone()).collect();
            names.sort();
            names.dedup();
            let stale_before = request.stale_before;
            let live: Vec<String> = on_backend!(self, |connection, inner| {
                Ok(runners::table
                    .filter(runners::id.eq_any(&names))
                    .filter(runners::heartbeat_at.ge(to_db(stale_before)))
                    .filter(runners::stopped_at.is_null())
                    .select(runners::id)
                    .load(connection)?)
            })?;
            dead = others
                .into_iter()
                .filter(|(_, runner)| !live.contains(runner))
                .collect();
        }
        if dead.is_empty() && unknown.is_empty() {
            return Ok(Reaped {
                suspects,
                others_seen,
                ..Reaped::default()
            });
        }
        let now = request.now;
        write_on_backend!(self, |connection| {
            let ids: Vec<i64> = dead.iter().map(|(id, _)| *id).collect();
            // Read again under the write: a run may have ended meanwhile.
            let still = |connection: &mut Conn, ids: &[i64]| -> Result<Vec<i64>> {
                Ok(executions::table
                    .filter(executions::id.eq_any(ids))
                    .filter(executions::status.eq(Status::Ongoing.as_str()))
                    .select(executions::id)
                    .load(connection)?)
            };
            let dead_ids = still(connection, &ids)?;
            mark_killed(connection, &dead_ids, &request.dead_reason, now)?;
            let unknown = still(connection, &unknown)?;
            mark_killed(connection, &unknown, &request.unknown_reason, now)?;
            let holders: Vec<&String> = dead.iter().map(|(_, runner)| runner).collect();
            diesel::delete(leases::table.filter(leases::holder.eq_any(holders)))
                .execute(connection)?;
            let dead = dead
                .into_iter()
                .filter(|(id, _)| dead_ids.contains(id))
                .collect();
            Ok(Reaped {
                dead,
                unknown,
                suspects,
                others_seen,
            })
        })
    }

    /// Returns the runners recorded for `queue`, or for every queue, most
    /// recent heartbeat first.
    ///
    /// # Errors
    ///
    /// - [`super::StoreError::Query`] when the database fails.
    pub async fn runners(&self, queue: Option<&str>) -> Result<Vec<RunnerInfo>> {
        let queue = queue.map(str::to_owned);
        let rows: Vec<RunnerRow> = on_backend!(self, |connection, inner| {
            let mut query = runners::table.into_boxed();
            if let Some(queue) = &queue {
                query = query.filter(runners::queue.eq(queue));
            }
            Ok(query
                .order(runners::heartbeat_at.desc())
                .select(RunnerRow::as_select())
                .load(connection)?)
        })?;
        Ok(rows.into_iter().map(RunnerInfo::from).collect())
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
            // A free lease has no row, so the insert comes first: where two
            // holders race, the primary key lets one in. An update first
            // would lock the missing row's gap on MySQL, where two such
            // transactions deadlock on their inserts.
            let row = LeaseRow {
                name: &name,
                holder: &holder,
                execution_id,
                acquired_at: to_db(now),
                expires_at: to_db(expires_at),
            };
            if insert_lease(connection, &row)? {
                return Ok(None);
            }
            // The row exists: take it over if it expired or is this
            // holder's; leave another holder's live lease.
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
            Ok(Some(current.unwrap_or_else(|| "another runner".to_owned())))
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
