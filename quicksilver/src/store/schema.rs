//! Diesel table definitions, matching the embedded migrations.

diesel::table! {
    quicksilver_tasks (id) {
        id -> BigInt,
        command -> Text,
        arguments -> Text,
        queue -> Text,
        repeat_interval -> Nullable<BigInt>,
        cron -> Nullable<Text>,
        time_zone -> Nullable<Text>,
        max_duration -> Nullable<BigInt>,
        next_run -> Timestamp,
        alerts_postponed_until -> Nullable<Timestamp>,
        paused -> Bool,
        declaration -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    quicksilver_executions (id) {
        id -> BigInt,
        task_id -> Nullable<BigInt>,
        command -> Text,
        arguments -> Text,
        queue -> Nullable<Text>,
        status -> Text,
        due_at -> Nullable<Timestamp>,
        started -> Nullable<Timestamp>,
        ended -> Nullable<Timestamp>,
        runtime_seconds -> Nullable<Double>,
        output -> Text,
        runner -> Nullable<Text>,
    }
}

diesel::joinable!(quicksilver_executions -> quicksilver_tasks (task_id));
diesel::allow_tables_to_appear_in_same_query!(quicksilver_tasks, quicksilver_executions);
