//! Diesel table definitions, matching the embedded migrations.

diesel::table! {
    use diesel::sql_types::*;
    use super::super::sql_types::UtcTime;

    quicksilver_tasks (id) {
        id -> BigInt,
        command -> Text,
        arguments -> Text,
        queue -> Text,
        repeat_interval -> Nullable<BigInt>,
        cron -> Nullable<Text>,
        time_zone -> Nullable<Text>,
        max_duration -> Nullable<BigInt>,
        next_run -> UtcTime,
        alerts_postponed_until -> Nullable<UtcTime>,
        paused -> Bool,
        declaration -> Nullable<Text>,
        alert_on_failure -> Nullable<Bool>,
        created_at -> UtcTime,
        updated_at -> UtcTime,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::super::sql_types::UtcTime;

    quicksilver_executions (id) {
        id -> BigInt,
        task_id -> Nullable<BigInt>,
        command -> Text,
        arguments -> Text,
        queue -> Nullable<Text>,
        status -> Text,
        due_at -> Nullable<UtcTime>,
        started -> Nullable<UtcTime>,
        ended -> Nullable<UtcTime>,
        runtime_seconds -> Nullable<Double>,
        output -> Text,
        runner -> Nullable<Text>,
    }
}

diesel::joinable!(quicksilver_executions -> quicksilver_tasks (task_id));

diesel::table! {
    use diesel::sql_types::*;
    use super::super::sql_types::UtcTime;

    quicksilver_runners (id) {
        id -> Text,
        queue -> Text,
        host -> Text,
        pid -> BigInt,
        started_at -> UtcTime,
        heartbeat_at -> UtcTime,
        stopped_at -> Nullable<UtcTime>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::super::sql_types::UtcTime;

    quicksilver_leases (name) {
        name -> Text,
        holder -> Text,
        execution_id -> Nullable<BigInt>,
        acquired_at -> UtcTime,
        expires_at -> UtcTime,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    quicksilver_tasks,
    quicksilver_executions,
    quicksilver_runners,
    quicksilver_leases,
);
