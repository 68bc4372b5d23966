//! A command declared `lock`, run by five runners with a lock folder each,
//! as on five hosts, two of them on one queue and one on each of three
//! others: the file lock of one cannot see the others', so only the lease
//! in the database keeps their runs apart. No two runs may
//! overlap, and the runs that find the lease taken are recorded as
//! skipped.
//!
//! Each run of `exclusive_span` appends its start and end, read from the
//! system clock, to a file that both runners share, and the check compares
//! those times.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use quicksilver::{NewTask, Schedule, Status};
use support::cluster::{assert_running, heartbeat_env, stop_runners, whole_second_after};

/// The queues of the tasks that run the locked command every second, one
/// task each. Runners `a` and `b` serve the first, where they also race
/// for each tick; one runner serves each other queue. Runners of
/// different queues start their runs at the very moment of the tick, so
/// they take the lease at the same time.
const QUEUES: [&str; 4] = ["default", "second", "third", "fourth"];

/// How long each run holds the lock, in seconds.
const RUN_SECONDS: &str = "0.7";

/// How long the runners serve the tasks.
const RUN_FOR: Duration = Duration::from_secs(14);

/// The start and end of one run, from the file.
#[derive(Debug, Clone)]
struct Span {
    execution_id: i64,
    pid: u32,
    start: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
}

/// Parses the lines `start TIME execution=ID pid=PID` and
/// `end TIME execution=ID pid=PID` into one span per execution.
fn parse_spans(text: &str) -> Vec<Span> {
    let mut spans: BTreeMap<i64, Span> = BTreeMap::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [edge, time, execution, pid] = parts[..] else {
            panic!("malformed line {line:?}");
        };
        let time = DateTime::parse_from_rfc3339(time)
            .unwrap_or_else(|error| panic!("the time of {line:?}: {error}"))
            .with_timezone(&Utc);
        let number = |part: &str, name: &str| -> i64 {
            part.strip_prefix(name)
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| panic!("no `{name}` number in {line:?}"))
        };
        let execution_id = number(execution, "execution=");
        let pid = u32::try_from(number(pid, "pid=")).expect("a pid fits in u32");
        match edge {
            "start" => {
                let previous = spans.insert(
                    execution_id,
                    Span {
                        execution_id,
                        pid,
                        start: time,
                        end: None,
                    },
                );
                assert!(previous.is_none(), "execution {execution_id} started twice");
            }
            "end" => {
                let span = spans
                    .get_mut(&execution_id)
                    .unwrap_or_else(|| panic!("execution {execution_id} ended before it started"));
                span.end = Some(time);
            }
            other => panic!("unknown edge `{other}` in {line:?}"),
        }
    }
    spans.into_values().collect()
}

support::cluster_tests! {
    fn lease_keeps_locked_runs_apart(cluster: Cluster) on [sqlite, postgres, mysql] {
        let spans_file = cluster.file("spans.log");
        let spans_path = spans_file.to_str().expect("UTF-8 path");
        let first_tick = whole_second_after(Duration::from_secs(3));
        for queue in QUEUES {
            let schedule = Schedule::every(1).expect("1 s is a valid interval");
            let task = NewTask::new("exclusive_span", schedule)
                .arguments(["--file", spans_path, "--seconds", RUN_SECONDS])
                .queue(queue)
                .next_run(first_tick);
            cluster.add_task(task);
        }

        // A short heartbeat makes the lease short too: it lasts one
        // timeout and is renewed every third of it, so each run renews it
        // at least once.
        let env = heartbeat_env(Duration::from_millis(500), Duration::from_millis(1500));
        let runner_args = |queue| ["--sleep-duration", "0.5", "--task-queue", queue];
        let mut runners = vec![
            cluster.start_runner("a", &runner_args(QUEUES[0]), &env),
            cluster.start_runner("b", &runner_args(QUEUES[0]), &env),
        ];
        for queue in &QUEUES[1..] {
            runners.push(cluster.start_runner(queue, &runner_args(queue), &env));
        }
        let pids: Vec<u32> = runners.iter().map(|runner| runner.pid()).collect();

        std::thread::sleep(RUN_FOR);
        assert_running(&mut runners, &format!("after {RUN_FOR:?}"));
        stop_runners(&mut runners);

        let text = std::fs::read_to_string(&spans_file)
            .unwrap_or_else(|error| panic!("read {}: {error}", spans_file.display()));
        let mut spans = parse_spans(&text);
        spans.sort_by_key(|span| span.start);
        let listing = spans
            .iter()
            .map(|span| format!("  {span:?}"))
            .collect::<Vec<_>>()
            .join("\n");

        for span in &spans {
            assert!(
                span.end.is_some(),
                "run {} never ended:\n{listing}",
                span.execution_id
            );
        }
        let overlaps: Vec<String> = spans
            .windows(2)
            .filter(|pair| pair[0].end.is_some_and(|end| end > pair[1].start))
            .map(|pair| {
                format!(
                    "run {} (pid {}) started at {} before run {} (pid {}) ended at {:?}",
                    pair[1].execution_id,
                    pair[1].pid,
                    pair[1].start,
                    pair[0].execution_id,
                    pair[0].pid,
                    pair[0].end
                )
            })
            .collect();
        assert!(
            overlaps.is_empty(),
            "{} runs of the locked command overlapped:\n{}\nall runs:\n{listing}",
            overlaps.len(),
            overlaps.join("\n")
        );

        let seconds = RUN_FOR.as_secs() as usize;
        assert!(
            spans.len() >= seconds / 2,
            "the locked command ran at least {} times in {seconds} s, got {}:\n{listing}",
            seconds / 2,
            spans.len()
        );
        // Runners `a` and `b` race for the one task of their queue, so
        // either may win every tick; runs from two runners are enough.
        let runs_from: BTreeSet<u32> = spans.iter().map(|span| span.pid).collect();
        assert!(
            runs_from.len() >= 2,
            "runs came from at least two of the runners {pids:?}:\n{listing}"
        );

        let executions = cluster.sandbox().executions_of_command("exclusive_span");
        let successes = executions
            .iter()
            .filter(|execution| execution.status == Status::Success)
            .count();
        assert_eq!(
            successes,
            spans.len(),
            "each successful execution is one span in the file:\n{listing}"
        );
        let skipped_by_lease = executions
            .iter()
            .filter(|execution| execution.status == Status::Error)
            .filter(|execution| execution.output.contains("on another host"))
            .count();
        let unexpected: Vec<String> = executions
            .iter()
            .filter(|execution| execution.status != Status::Success)
            .filter(|execution| {
                !execution
                    .output
                    .contains("skipped: command `exclusive_span` is locked")
            })
            .map(|execution| {
                format!(
                    "#{} {}: {}",
                    execution.id, execution.status, execution.output
                )
            })
            .collect();
        assert!(
            unexpected.is_empty(),
            "runs that failed for another reason:\n{}",
            unexpected.join("\n")
        );
        eprintln!(
            "{}: {} runs, {skipped_by_lease} skipped because another runner had the lease",
            cluster.backend(),
            spans.len()
        );
        assert!(
            skipped_by_lease > 0,
            "some runs found the lease held by another runner, so the lease was tested"
        );
    }
}
