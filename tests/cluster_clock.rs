//! Two runners of one queue whose clocks are 2 s apart, while a task
//! deletes the successful executions every second: each tick a runner
//! claims still runs exactly once.
//!
//! Each tick falls due on the runner ahead 2 s before the other, so it
//! claims first, but it has 2 lanes for 12 tasks whose runs take 2.5 s. The runner
//! behind claims the ticks left over once its own clock reaches them, and
//! the next run it stores lies in the past of the runner ahead, which
//! claims it as soon as a lane frees:
//!
//! ```text
//! real time      0     1     2     3     4
//! ahead clock    2     3     4     5     6     claims 2 ticks due at 2
//! behind clock   0     1     2     3     4     claims the other ticks due at 2
//! ```
//!
//! The executions' rows are deleted as the test runs, so each run also
//! appends its tick to a file (`record_tick`), and the file is what the
//! checks count.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use quicksilver::{NewTask, Schedule, Status};
use support::cluster::{
    assert_running, clock_offset_env, heartbeat_env, stop_runners, whole_second_after,
};

/// Tasks every second that record their tick.
const TASKS: usize = 12;

/// How long each recording run sleeps, in seconds: longer than the clock
/// gap, so that the runner ahead cannot keep up alone.
const RUN_SECONDS: &str = "2.5";

/// How far the clock of the runner ahead is from the other's.
const CLOCK_GAP: TimeDelta = TimeDelta::seconds(2);

/// How long the runners serve the tasks.
const RUN_FOR: Duration = Duration::from_secs(16);

/// One line of the file that `record_tick` appends to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Record {
    task_id: i64,
    due_at: DateTime<Utc>,
    execution_id: i64,
    pid: u32,
}

/// Parses `task=ID due=TIME execution=ID pid=PID`.
fn parse_record(line: &str) -> Record {
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("the record {line:?} has no field `{name}`"))
    };
    let number = |name: &str| -> i64 {
        field(name)
            .parse()
            .unwrap_or_else(|error| panic!("field `{name}` of {line:?}: {error}"))
    };
    let due_at = DateTime::parse_from_rfc3339(field("due"))
        .unwrap_or_else(|error| panic!("field `due` of {line:?}: {error}"))
        .with_timezone(&Utc);
    Record {
        task_id: number("task"),
        due_at,
        execution_id: number("execution"),
        pid: u32::try_from(number("pid")).expect("a pid fits in u32"),
    }
}

support::cluster_tests! {
    fn skewed_clocks_run_each_tick_once(cluster: Cluster) on [sqlite, postgres, mysql] {
        let ticks_file = cluster.file("ticks.log");
        let ticks_path = ticks_file.to_str().expect("UTF-8 path");
        let first_tick = whole_second_after(Duration::from_secs(3));
        let every_second = || Schedule::every(1).expect("1 s is a valid interval");
        let task_ids: BTreeSet<i64> = (0..TASKS)
            .map(|_| {
                let task = NewTask::new("record_tick", every_second())
                    .arguments(["--file", ticks_path, "--seconds", RUN_SECONDS])
                    .next_run(first_tick);
                cluster.add_task(task).id
            })
            .collect();
        let cleanup = cluster
            .add_task(NewTask::new("clear_successful_now", every_second()).next_run(first_tick));

        // The timeout exceeds the interval by more than the clock gap, as
        // the heartbeat's documentation requires.
        let mut env = heartbeat_env(Duration::from_secs(1), Duration::from_secs(5));
        env.push(clock_offset_env(TimeDelta::zero()));
        let behind = cluster.start_runner(
            "behind",
            &["--sleep-duration", "0.5", "--concurrency", "12"],
            &env,
        );
        let mut env = heartbeat_env(Duration::from_secs(1), Duration::from_secs(5));
        env.push(clock_offset_env(CLOCK_GAP));
        let ahead = cluster.start_runner(
            "ahead",
            &["--sleep-duration", "0.5", "--concurrency", "2"],
            &env,
        );
        let pids = [behind.pid(), ahead.pid()];
        let mut runners = [behind, ahead];
        for runner in &runners {
            assert!(
                runner.stderr().contains("runner uses test options"),
                "the runner applied the test options:\n{}",
                runner.describe()
            );
        }

        std::thread::sleep(RUN_FOR);
        assert_running(&mut runners, &format!("after {RUN_FOR:?}"));
        stop_runners(&mut runners);

        let text = std::fs::read_to_string(&ticks_file)
            .unwrap_or_else(|error| panic!("read {}: {error}", ticks_file.display()));
        let records: Vec<Record> = text.lines().map(parse_record).collect();
        let listing = || {
            let mut sorted = records.clone();
            sorted.sort();
            sorted
                .iter()
                .map(|record| format!("  {record:?}"))
                .collect::<Vec<_>>()
                .join("\n")
        };

        let mut runs_of_tick: BTreeMap<(i64, DateTime<Utc>), Vec<i64>> = BTreeMap::new();
        for record in &records {
            runs_of_tick
                .entry((record.task_id, record.due_at))
                .or_default()
                .push(record.execution_id);
        }
        let duplicates: Vec<String> = runs_of_tick
            .iter()
            .filter(|(_, runs)| runs.len() > 1)
            .map(|((task_id, due), runs)| format!("task {task_id} tick {due}: executions {runs:?}"))
            .collect();
        assert!(
            duplicates.is_empty(),
            "{} ticks ran more than once:\n{}\nall records:\n{}",
            duplicates.len(),
            duplicates.join("\n"),
            listing()
        );

        let execution_ids: BTreeSet<i64> =
            records.iter().map(|record| record.execution_id).collect();
        assert_eq!(
            execution_ids.len(),
            records.len(),
            "each execution recorded its tick once:\n{}",
            listing()
        );
        let unknown: Vec<&Record> = records
            .iter()
            .filter(|record| !task_ids.contains(&record.task_id))
            .collect();
        assert!(unknown.is_empty(), "records of unknown tasks: {unknown:?}");

        let mut runs_by_pid: BTreeMap<u32, usize> = BTreeMap::new();
        for record in &records {
            *runs_by_pid.entry(record.pid).or_insert(0) += 1;
        }
        eprintln!(
            "{}: {} ticks recorded; runs by pid {runs_by_pid:?} (behind {}, ahead {})",
            cluster.backend(),
            records.len(),
            pids[0],
            pids[1]
        );
        for pid in pids {
            assert!(
                runs_by_pid.contains_key(&pid),
                "the runner with pid {pid} ran some ticks, got {runs_by_pid:?}"
            );
        }

        // A task runs about every 3 s: its 2.5 s run, then the wait for
        // a free lane. Ticks due meanwhile coalesce into one run.
        let seconds = RUN_FOR.as_secs() as usize;
        let expected_runs = seconds / 4;
        for task_id in &task_ids {
            let runs = records
                .iter()
                .filter(|record| record.task_id == *task_id)
                .count();
            assert!(
                runs >= expected_runs,
                "task {task_id} ran {runs} times in {seconds} s, expected at least \
                 {expected_runs}:\n{}",
                listing()
            );
        }

        // The rows that the cleanup left agree with the file.
        let executions = cluster.executions();
        let recorded: Vec<_> = executions
            .iter()
            .filter(|execution| execution.task_id.is_some_and(|id| task_ids.contains(&id)))
            .collect();
        for execution in &recorded {
            assert!(
                execution_ids.contains(&execution.id),
                "execution #{} ({}, due {:?}) is in the database but not in the file",
                execution.id,
                execution.status,
                execution.due_at
            );
        }
        assert!(
            recorded.len() < records.len() / 2,
            "the cleanup deleted most successful runs: {} rows left of {} runs",
            recorded.len(),
            records.len()
        );
        let cleanups: Vec<_> = executions
            .iter()
            .filter(|execution| execution.task_id == Some(cleanup.id))
            .filter(|execution| execution.status != Status::Success)
            .collect();
        assert!(
            cleanups.is_empty(),
            "every cleanup run succeeded, got {:?}",
            cleanups
                .iter()
                .map(|execution| (&execution.status, &execution.output))
                .collect::<Vec<_>>()
        );
        assert!(
            executions
                .iter()
                .all(|execution| execution.status != Status::Ongoing),
            "no execution is left ongoing after a graceful stop"
        );
    }
}
