-- Times are UTC, stored in DATETIME(6) columns: microseconds, no time zone
-- conversion, and years up to 9999. Indexed text columns are VARCHAR(255),
-- because InnoDB indexes TEXT only by a prefix. TEXT defaults are
-- expressions in parentheses, the form that both MySQL 8.0.13+ and
-- MariaDB 10.2+ accept. The utf8mb4_bin collation makes text comparisons
-- case- and accent-sensitive, as they are on SQLite and PostgreSQL.
-- NOTE: utf8mb4_bin ignores trailing spaces in comparisons (PAD SPACE), so
-- the unique indexes treat `a` and `a ` as the same value.

-- Tasks: how and when each command runs.
CREATE TABLE quicksilver_tasks (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    command TEXT NOT NULL,
    -- A JSON array of strings, passed to the command's argument parser.
    arguments TEXT NOT NULL DEFAULT ('[]'),
    queue VARCHAR(255) NOT NULL DEFAULT 'default',
    -- Exactly one of repeat_interval (seconds) or cron is set.
    repeat_interval BIGINT,
    cron TEXT,
    time_zone TEXT,
    -- Seconds after which a run is stopped and recorded as killed.
    max_duration BIGINT,
    next_run DATETIME(6) NOT NULL,
    alerts_postponed_until DATETIME(6),
    paused BOOLEAN NOT NULL DEFAULT FALSE,
    -- The id of the task declaration that installed the row, if any.
    declaration VARCHAR(255),
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The runner's lookup of due tasks of a queue.
CREATE INDEX quicksilver_tasks_queue_next_run ON quicksilver_tasks (queue, paused, next_run);
CREATE UNIQUE INDEX quicksilver_tasks_declaration ON quicksilver_tasks (declaration);

-- Executions: one row per run of a command.
CREATE TABLE quicksilver_executions (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    task_id BIGINT,
    command TEXT NOT NULL,
    arguments TEXT NOT NULL DEFAULT ('[]'),
    -- NULL for a command run in the foreground with `run`.
    queue VARCHAR(255),
    status VARCHAR(255) NOT NULL,
    due_at DATETIME(6),
    started DATETIME(6),
    ended DATETIME(6),
    runtime_seconds DOUBLE,
    -- LONGTEXT, because TEXT holds only 64 KiB and an output may be larger.
    output LONGTEXT NOT NULL DEFAULT (''),
    runner TEXT
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE INDEX quicksilver_executions_task_status_started
    ON quicksilver_executions (task_id, status, started);
CREATE INDEX quicksilver_executions_status_started
    ON quicksilver_executions (status, started);
CREATE INDEX quicksilver_executions_queue_status
    ON quicksilver_executions (queue, status);
-- Added after the indexes so that InnoDB backs it with one of them instead
-- of creating an index of its own.
ALTER TABLE quicksilver_executions
    ADD CONSTRAINT quicksilver_executions_task_id FOREIGN KEY (task_id)
        REFERENCES quicksilver_tasks (id) ON DELETE SET NULL;

-- Runners: one row per runner process, kept fresh by its heartbeat so that
-- runners on other hosts can tell a live runner from a dead one.
CREATE TABLE quicksilver_runners (
    -- The runner's identity: host name, process id and a random part.
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    queue VARCHAR(255) NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    started_at DATETIME(6) NOT NULL,
    heartbeat_at DATETIME(6) NOT NULL,
    -- NULL while the runner runs or after it died without stopping.
    stopped_at DATETIME(6)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE INDEX quicksilver_runners_queue_heartbeat
    ON quicksilver_runners (queue, heartbeat_at);

-- Leases: named locks shared by all hosts, such as `command:<name>` for a
-- command declared with `lock`. A lease past expires_at is free to take.
CREATE TABLE quicksilver_leases (
    name VARCHAR(255) NOT NULL PRIMARY KEY,
    -- The identity of the runner that holds the lease.
    holder TEXT NOT NULL,
    -- The execution run under the lease, if any.
    execution_id BIGINT,
    acquired_at DATETIME(6) NOT NULL,
    expires_at DATETIME(6) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
