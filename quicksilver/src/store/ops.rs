// The store's queries, written once for every backend. Each backend's
// module includes this file after defining `Conn` (its connection type),
// `Db` (its diesel backend) and the functions where the backends differ:
// `writer_turn`, `begin_write`, `insert_task_row`, `insert_execution_row`,
// `first_due`, `load_due_now`, `take_tick`, `apply_moves`, `explain_due`
// and the constant `QUEUE_IS_SQL`.

/// Runs `work` in a write transaction once it is this connection's turn
/// to write.
pub(super) fn write_in_turn<T>(
    inner: &StoreInner,
    connection: &mut Conn,
    work: impl FnOnce(&mut Conn) -> Result<T>,
) -> Result<T> {
    let _turn = writer_turn(inner);
    begin_write(connection, work)
}

/// Runs `work` in a write transaction that first records the execution
/// ends taken into `ends`, and returns whether one of them moved a task's
/// next run. The caller must have the writer turn. When the transaction
/// fails, the ends go back to the queue.
pub(super) fn write_with_queued_finishes<T>(
    ends: FinishBatch,
    connection: &mut Conn,
    work: impl FnOnce(&mut Conn) -> Result<T>,
) -> Result<(bool, T)> {
    let value = begin_write(connection, |connection| {
        for finish in ends.ends() {
            write_finish(connection, finish)?;
        }
        work(connection)
    })?;
    let moved = ends.ends().any(|finish| finish.next_run.is_some());
    ends.written();
    Ok((moved, value))
}

/// Writes the end of one execution, and the next run its command chose.
pub(super) fn write_finish(connection: &mut Conn, finish: &Finish) -> Result<()> {
    RecordEnd {
        id: finish.execution_id,
        status: finish.status.as_str(),
        started: finish.started.map(to_db),
        ended: to_db(finish.ended),
        runtime_seconds: finish.runtime.as_secs_f64(),
        output: &finish.output,
    }
    .execute(connection)?;
    if let (Some(task_id), Some(next_run)) = (finish.task_id, finish.next_run) {
        diesel::update(tasks::table.find(task_id))
            .set((
                tasks::next_run.eq(to_db(next_run)),
                tasks::updated_at.eq(to_db(finish.ended)),
            ))
            .execute(connection)?;
    }
    Ok(())
}


pub(super) fn load_task(connection: &mut Conn, id: i64) -> Result<Task> {
    tasks::table
        .find(id)
        .select(TaskRow::as_select())
        .first(connection)
        .optional()?
        .map(Task::from)
        .ok_or(StoreError::TaskNotFound { id })
}

pub(super) fn insert_task(
    connection: &mut Conn,
    task: &NewTask,
    now: DateTime<Utc>,
) -> Result<Task> {
    let (repeat_interval, cron, time_zone) = task.schedule.to_parts();
    let next_run = task
        .next_run
        .unwrap_or_else(|| task.schedule.first_run_at(now));
    let row = InsertTask {
        command: task.command.trim(),
        arguments: encode_arguments(&task.arguments),
        queue: task.queue.trim(),
        repeat_interval,
        cron,
        time_zone,
        max_duration: task.max_duration.map(duration_seconds),
        next_run: to_db(next_run),
        paused: task.paused,
        declaration: task.declaration.as_deref(),
        alert_on_failure: task.alert_on_failure,
        created_at: to_db(now),
        updated_at: to_db(now),
    };
    let id = insert_task_row(connection, &row)?;
    load_task(connection, id)
}

pub(super) fn apply_changes(
    connection: &mut Conn,
    id: i64,
    changes: TaskChanges,
    now: DateTime<Utc>,
) -> Result<()> {
    let current = load_task(connection, id)?;
    let target = tasks::table.find(id);

    if let Some(command) = &changes.command {
        diesel::update(target)
            .set(tasks::command.eq(command.trim()))
            .execute(connection)?;
    }
    if let Some(arguments) = &changes.arguments {
        diesel::update(target)
            .set(tasks::arguments.eq(encode_arguments(arguments)))
            .execute(connection)?;
    }
    if let Some(queue) = &changes.queue {
        diesel::update(target)
            .set(tasks::queue.eq(queue.trim()))
            .execute(connection)?;
    }
    if let Some(schedule) = &changes.schedule {
        let (repeat_interval, cron, time_zone) = schedule.to_parts();
        diesel::update(target)
            .set((
                tasks::repeat_interval.eq(repeat_interval),
                tasks::cron.eq(cron),
                tasks::time_zone.eq(time_zone),
            ))
            .execute(connection)?;
        if changes.next_run.is_none() && current.schedule().ok().as_ref() != Some(schedule) {
            diesel::update(target)
                .set(tasks::next_run.eq(to_db(schedule.first_run_at(now))))
                .execute(connection)?;
        }
    }
    if let Some(max_duration) = changes.max_duration {
        diesel::update(target)
            .set(tasks::max_duration.eq(max_duration.map(duration_seconds)))
            .execute(connection)?;
    }
    if let Some(next_run) = changes.next_run {
        diesel::update(target)
            .set(tasks::next_run.eq(to_db(next_run)))
            .execute(connection)?;
    }
    if let Some(postponed) = changes.alerts_postponed_until {
        diesel::update(target)
            .set(tasks::alerts_postponed_until.eq(postponed.map(to_db)))
            .execute(connection)?;
    }
    if let Some(paused) = changes.paused {
        diesel::update(target)
            .set(tasks::paused.eq(paused))
            .execute(connection)?;
    }
    if let Some(alert_on_failure) = changes.alert_on_failure {
        diesel::update(target)
            .set(tasks::alert_on_failure.eq(alert_on_failure))
            .execute(connection)?;
    }
    diesel::update(target)
        .set(tasks::updated_at.eq(to_db(now)))
        .execute(connection)?;
    Ok(())
}


/// Selects the tasks of `queue` that are not paused and have no ongoing run.
///
/// The runner sends these lookups at every check, so they are written for
/// SQLite's statement cache. SQLite marks a statement for compiling again
/// when a value is bound to a parameter compared with `=` to an integer
/// column or given to `LIMIT`, and diesel resets the bindings after each
/// use, which expires such a statement: every use would compile it again,
/// which measured at half the CPU of an execution. So constants are written
/// into the SQL, the queue is bound as `+?`, which SQLite leaves unmarked
/// and which still uses the index, and callers stop reading rows instead of
/// binding a `LIMIT`.
pub(super) fn due_tasks(queue: &str) -> tasks::BoxedQuery<'_, Db> {
    let ongoing = executions::table
        .filter(executions::task_id.eq(tasks::id.nullable()))
        .filter(Condition(ONGOING_STATUS_SQL));
    tasks::table
        .filter(QueueIs(queue))
        .filter(Condition("quicksilver_tasks.paused = FALSE"))
        .filter(diesel::dsl::not(diesel::dsl::exists(ongoing)))
        .into_boxed()
}


impl QueryFragment<Db> for Condition {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, Db>,
    ) -> QueryResult<()> {
        out.push_sql(self.0);
        Ok(())
    }
}

impl QueryFragment<Db> for QueueIs<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, Db>,
    ) -> QueryResult<()> {
        out.push_sql(QUEUE_IS_SQL);
        out.push_bind_param::<diesel::sql_types::Text, _>(self.0)
    }
}


impl QueryFragment<Db> for RecordEnd<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, Db>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Double, Nullable, Text};
        out.push_sql("UPDATE quicksilver_executions SET status = ");
        out.push_bind_param::<Text, _>(self.status)?;
        out.push_sql(", started = COALESCE(");
        out.push_bind_param::<Nullable<UtcTime>, _>(&self.started)?;
        out.push_sql(", started), ended = ");
        out.push_bind_param::<UtcTime, _>(&self.ended)?;
        out.push_sql(", runtime_seconds = ");
        out.push_bind_param::<Double, _>(&self.runtime_seconds)?;
        out.push_sql(", output = ");
        out.push_bind_param::<Text, _>(self.output)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<BigInt, _>(&self.id)
    }
}

impl RunQueryDsl<Conn> for RecordEnd<'_> {}

impl<const RETURNING_ID: bool> QueryFragment<Db> for ExecutionInsert<'_, RETURNING_ID> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, Db>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Nullable, Text};
        let row = self.0;
        out.push_sql(
            "INSERT INTO quicksilver_executions \
             (task_id, command, arguments, queue, status, due_at, started, runner) VALUES (",
        );
        out.push_bind_param::<Nullable<BigInt>, _>(&row.task_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(row.command)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&row.arguments)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.queue)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(row.status)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<UtcTime>, _>(&row.due_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<UtcTime>, _>(&row.started)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.runner)?;
        out.push_sql(if RETURNING_ID { ") RETURNING id" } else { ")" });
        Ok(())
    }
}

impl<const RETURNING_ID: bool> RunQueryDsl<Conn> for ExecutionInsert<'_, RETURNING_ID> {}

/// Returns the query that lists the tasks of `queue` in the order they
/// fall due. Its first row is the next due time.
pub(super) fn next_due_query(
    queue: &str,
    limit: Option<usize>,
) -> impl LoadQuery<'_, Conn, StoredTime> + QueryFragment<Db> + '_ {
    // Ordered rather than MIN, so that the database walks the index in
    // next-run order and stops at the first task without an ongoing run,
    // instead of reading every task of the queue.
    let query = due_tasks(queue)
        .order(tasks::next_run)
        .select(tasks::next_run);
    match limit {
        Some(limit) => query.limit(i64::try_from(limit).unwrap_or(i64::MAX)),
        None => query,
    }
}

/// Returns the query that lists the tasks of `queue` due at `now`, of
/// which the runner claims as many as it has free lanes.
pub(super) fn due_now_query(
    queue: &str,
    now: DateTime<Utc>,
    limit: Option<usize>,
) -> impl LoadQuery<'_, Conn, TaskRow> + QueryFragment<Db> + '_ {
    let query = due_tasks(queue)
        .filter(tasks::next_run.le(to_db(now)))
        .order((tasks::next_run, tasks::id))
        .select(TaskRow::as_select());
    match limit {
        Some(limit) => query.limit(i64::try_from(limit).unwrap_or(i64::MAX)),
        None => query,
    }
}

/// Claims the due tasks `rows`: takes each task's tick, moving its next
/// run to its schedule's next tick, and records an `ongoing` execution for
/// each tick taken. A tick that another runner took first is skipped (see
/// `take_tick`).
pub(super) fn claim_rows(
    connection: &mut Conn,
    rows: Vec<TaskRow>,
    now: DateTime<Utc>,
    runner: &str,
) -> Result<Vec<Claim>> {
    let mut claims = Vec::with_capacity(rows.len());
    let mut moves = Moves::default();
    for row in rows {
        let task = Task::from(row);
        let due_at = task.next_run;
        match task.schedule() {
            Ok(schedule) => {
                let next_run = to_db(schedule.next_after(due_at, now));
                if !take_tick(connection, &mut moves, task.id, to_db(due_at), next_run)? {
                    continue;
                }
                // One row a statement: diesel caches the prepared single-row
                // insert, where a many-row one would be compiled anew for
                // each batch size, which measured slower on SQLite.
                let execution_id = insert_execution_row(connection, &claim_row(&task, due_at, now, runner))?;
                claims.push(Claim {
                    execution_id,
                    task,
                    due_at,
                    rejected: None,
                });
            }
            Err(error) => {
                let execution_id = insert_execution_row(connection, &claim_row(&task, due_at, now, runner))?;
                let message = reject_task(connection, &task, execution_id, &error, now)?;
                claims.push(Claim {
                    execution_id,
                    task,
                    due_at,
                    rejected: Some(message),
                });
            }
        }
    }
    apply_moves(connection, moves)?;
    Ok(claims)
}

/// Returns the `ongoing` execution row of a claimed tick.
fn claim_row<'a>(
    task: &'a Task,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
    runner: &'a str,
) -> InsertExecution<'a> {
    InsertExecution {
        task_id: Some(task.id),
        command: &task.command,
        arguments: encode_arguments(&task.arguments),
        queue: Some(&task.queue),
        status: Status::Ongoing.as_str(),
        due_at: Some(to_db(due_at)),
        started: Some(to_db(now)),
        runner: Some(runner),
    }
}

/// Pauses a task whose schedule cannot be read and ends its execution as
/// `error` with the reason, which it returns. Without a next run the task
/// would be due again at once, so it is paused instead of looping.
pub(super) fn reject_task(
    connection: &mut Conn,
    task: &Task,
    execution_id: i64,
    error: &impl std::fmt::Display,
    now: DateTime<Utc>,
) -> Result<String> {
    let message = format!(
        "error: task {id} has an invalid schedule: {error}; the task was paused, so fix \
         it with `tasks edit {id} --every SECONDS` (or `--cron`) and resume it with \
         `tasks resume {id}`",
        id = task.id
    );
    diesel::update(tasks::table.find(task.id))
        .set((tasks::paused.eq(true), tasks::updated_at.eq(to_db(now))))
        .execute(connection)?;
    diesel::update(executions::table.find(execution_id))
        .set((
            executions::status.eq(Status::Error.as_str()),
            executions::ended.eq(to_db(now)),
            executions::runtime_seconds.eq(0.0),
            executions::output.eq(&message),
        ))
        .execute(connection)?;
    Ok(message)
}

pub(super) fn mark_killed(
    connection: &mut Conn,
    ids: &[i64],
    reason: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    for &id in ids {
        let row: ExecutionRow = executions::table
            .find(id)
            .select(ExecutionRow::as_select())
            .first(connection)?;
        let runtime = row
            .started
            .map(|started| (now - from_db(started)).as_seconds_f64().max(0.0));
        let output = if row.output.is_empty() {
            reason.to_owned()
        } else {
            format!("{}\n{reason}", row.output)
        };
        diesel::update(executions::table.find(id))
            .set((
                executions::status.eq(Status::Killed.as_str()),
                executions::ended.eq(to_db(now)),
                executions::runtime_seconds.eq(runtime),
                executions::output.eq(output),
            ))
            .execute(connection)?;
    }
    Ok(())
}

