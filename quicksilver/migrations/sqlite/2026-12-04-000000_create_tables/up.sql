-- Tasks: how and when each command runs.
CREATE TABLE quicksilver_tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    command TEXT NOT NULL,
    -- A JSON array of strings, passed to the command's argument parser.
    arguments TEXT NOT NULL DEFAULT '[]',
    queue TEXT NOT NULL DEFAULT 'default',
    -- Exactly one of repeat_interval (seconds) or cron is set.
    repeat_interval BIGINT,
    cron TEXT,
    time_zone TEXT,
    -- Seconds after which a run is stopped and recorded as killed.
    max_duration BIGINT,
    next_run TIMESTAMP NOT NULL,
    alerts_postponed_until TIMESTAMP,
    paused BOOLEAN NOT NULL DEFAULT 0,
    -- The id of the task declaration that installed the row, if any.
    declaration TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- The runner's lookup of due tasks of a queue.
CREATE INDEX quicksilver_tasks_queue_next_run ON quicksilver_tasks (queue, paused, next_run);
CREATE UNIQUE INDEX quicksilver_tasks_declaration ON quicksilver_tasks (declaration);

-- Executions: one row per run of a command.
CREATE TABLE quicksilver_executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    task_id BIGINT REFERENCES quicksilver_tasks (id) ON DELETE SET NULL,
    command TEXT NOT NULL,
    arguments TEXT NOT NULL DEFAULT '[]',
    -- NULL for a command run in the foreground with `run`.
    queue TEXT,
    status TEXT NOT NULL,
    due_at TIMESTAMP,
    started TIMESTAMP,
    ended TIMESTAMP,
    runtime_seconds DOUBLE,
    output TEXT NOT NULL DEFAULT '',
    runner TEXT
);

CREATE INDEX quicksilver_executions_task_status_started
    ON quicksilver_executions (task_id, status, started);
CREATE INDEX quicksilver_executions_status_started
    ON quicksilver_executions (status, started);
CREATE INDEX quicksilver_executions_queue_status
    ON quicksilver_executions (queue, status);

-- Runners: one row per runner process, kept fresh by its heartbeat so that
-- runners on other hosts can tell a live runner from a dead one.
CREATE TABLE quicksilver_runners (
    -- The runner's identity: host name, process id and a random part.
    id TEXT PRIMARY KEY NOT NULL,
    queue TEXT NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    heartbeat_at TIMESTAMP NOT NULL,
    -- NULL while the runner runs or after it died without stopping.
    stopped_at TIMESTAMP
);

CREATE INDEX quicksilver_runners_queue_heartbeat
    ON quicksilver_runners (queue, heartbeat_at);

-- Leases: named locks shared by all hosts, such as `command:<name>` for a
-- command declared with `lock`. A lease past expires_at is free to take.
CREATE TABLE quicksilver_leases (
    name TEXT PRIMARY KEY NOT NULL,
    -- The identity of the runner that holds the lease.
    holder TEXT NOT NULL,
    -- The execution run under the lease, if any.
    execution_id BIGINT,
    acquired_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
