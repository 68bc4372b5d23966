-- Whether a run of the task that ends in `error` raises an alert: NULL
-- follows the runner's setting, TRUE and FALSE override it for this task.
ALTER TABLE quicksilver_tasks ADD COLUMN alert_on_failure BOOLEAN;

-- The lookup of runs that ended in `error` or `killed` since a time, by
-- alerts and the dashboard. MySQL has no partial indexes, so unlike on the
-- other backends it covers every status.
CREATE INDEX quicksilver_executions_status_ended
    ON quicksilver_executions (status, ended);
