DROP TABLE quicksilver_executions;
DROP TABLE quicksilver_tasks;
