// The code that the PostgreSQL and MySQL backends share, included by both
// after they define `Conn`, `Db` and `MIGRATIONS`. Database servers take
// concurrent writers and serve runners on several hosts, so a claim takes
// each tick with a conditional update instead of holding a file lock.

/// Connections a process keeps open to the server.
const POOL_SIZE: u32 = 4;

/// How long taking a connection from the pool may wait, which bounds how
/// long a call waits for a server that does not respond.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Counts each statement a connection sends.
#[derive(Debug)]
struct CountStatements {
    statements: Arc<AtomicU64>,
}

impl CustomizeConnection<Conn, diesel::r2d2::Error> for CountStatements {
    fn on_acquire(&self, connection: &mut Conn) -> Result<(), diesel::r2d2::Error> {
        let statements = self.statements.clone();
        connection.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if matches!(event, InstrumentationEvent::StartQuery { .. }) {
                statements.fetch_add(1, Ordering::Relaxed);
            }
        });
        prepare_connection(connection).map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Connects to the server at `url`, applies the migrations and returns the
/// pool.
pub(super) fn open(url: &str) -> Result<Opened> {
    let shown = redact(url.trim());
    // A first connection fails at once, with the server's own reason,
    // where the pool would retry until its timeout.
    let mut connection = Conn::establish(url.trim()).map_err(|error| StoreError::Open {
        url: shown.clone(),
        reason: format!("{error}; check that the server runs and that the URL's host, port, user, password and database are right"),
    })?;
    migrate(&mut connection).map_err(|error| StoreError::Migration {
        url: shown.clone(),
        reason: error.to_string(),
    })?;
    drop(connection);

    let statements = Arc::new(AtomicU64::new(0));
    let pool = Pool::builder()
        .max_size(POOL_SIZE)
        // Every connection is opened before `build` returns, and kept: none
        // is opened, closed or replaced by the pool's own threads later,
        // unless it breaks. A connection still opening or closing on such a
        // thread when the process exits can crash it inside the client
        // library (seen with libpq over TLS).
        .min_idle(Some(POOL_SIZE))
        .idle_timeout(None)
        .max_lifetime(None)
        // A server connection can break (restart, idle timeout), so the
        // pool checks each one before handing it out.
        .test_on_check_out(true)
        .connection_timeout(CONNECT_TIMEOUT)
        .connection_customizer(Box::new(CountStatements {
            statements: statements.clone(),
        }))
        .build(ConnectionManager::<Conn>::new(url.trim()))
        .map_err(|error| StoreError::Open {
            url: shown.clone(),
            reason: error.to_string(),
        })?;
    Ok(Opened {
        backend: backend(pool),
        url: shown.clone(),
        listen_url: listen_url(url.trim()),
        key_source: shown,
        statements,
        writer: None,
    })
}

/// Returns no writer turn, since a server takes concurrent writers.
pub(super) fn writer_turn(_inner: &StoreInner) -> Option<std::sync::MutexGuard<'_, ()>> {
    None
}

pub(super) fn begin_write<T>(
    connection: &mut Conn,
    work: impl FnOnce(&mut Conn) -> Result<T>,
) -> Result<T> {
    connection.transaction(work)
}

/// Returns when the next task of `queue` falls due.
pub(super) fn first_due(
    connection: &mut Conn,
    queue: &str,
) -> Result<Option<StoredTime>> {
    Ok(next_due_query(queue, Some(1))
        .get_result::<StoredTime>(connection)
        .optional()?)
}

/// Returns up to `limit` tasks of `queue` due at `now` and locks their
/// rows until the claim commits. Rows locked by another runner's claim
/// are skipped, so runners that claim together take different tasks
/// instead of queueing on the same rows. The lock only spreads the work:
/// [`take_tick`] alone decides who runs a tick.
pub(super) fn load_due_now(
    connection: &mut Conn,
    queue: &str,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<TaskRow>> {
    let ongoing = executions::table
        .filter(executions::task_id.eq(tasks::id.nullable()))
        .filter(Condition(ONGOING_STATUS_SQL));
    Ok(tasks::table
        .filter(QueueIs(queue))
        .filter(Condition("quicksilver_tasks.paused = FALSE"))
        .filter(diesel::dsl::not(diesel::dsl::exists(ongoing)))
        .filter(tasks::next_run.le(to_db(now)))
        .order((tasks::next_run, tasks::id))
        .limit(i64::try_from(limit).unwrap_or(i64::MAX))
        .select(TaskRow::as_select())
        .for_update()
        .skip_locked()
        .load(connection)?)
}

/// Nothing to gather: [`take_tick`] writes each move itself.
#[derive(Debug, Default)]
pub(super) struct Moves(());

/// Takes the tick of task `id` due at `due`, moving its next run to
/// `next_run`, and returns whether this runner got it.
///
/// The update applies only while the task's next run is still `due`, the
/// task is not paused and no run of it is ongoing. When two runners race
/// for one tick, the server makes the second wait on the row until the
/// first commits, then finds the next run moved and updates nothing. The
/// next run is the token of the tick, whatever time the runners' clocks
/// show.
pub(super) fn take_tick(
    connection: &mut Conn,
    _moves: &mut Moves,
    id: i64,
    due: StoredTime,
    next_run: StoredTime,
) -> Result<bool> {
    let ongoing = executions::table
        .filter(executions::task_id.eq(tasks::id.nullable()))
        .filter(Condition(ONGOING_STATUS_SQL));
    let taken = diesel::update(
        tasks::table
            .filter(tasks::id.eq(id))
            .filter(tasks::next_run.eq(due))
            .filter(tasks::paused.eq(false))
            .filter(diesel::dsl::not(diesel::dsl::exists(ongoing))),
    )
    .set(tasks::next_run.eq(next_run))
    .execute(connection)?;
    Ok(taken == 1)
}

pub(super) fn apply_moves(_connection: &mut Conn, _moves: Moves) -> Result<()> {
    Ok(())
}
