DROP TABLE quicksilver_leases;
DROP TABLE quicksilver_runners;
DROP TABLE quicksilver_executions;
DROP TABLE quicksilver_tasks;
