DROP INDEX quicksilver_executions_status_ended;
ALTER TABLE quicksilver_tasks DROP COLUMN alert_on_failure;
