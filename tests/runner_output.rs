//! Output: what a command writes and the tracing events it emits land in
//! its execution's output. The output is capped at 1 MiB, ends with a marker
//! that gives the number of dropped bytes, and takes no more than that in
//! memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use quicksilver::{Context, NewTask, Schedule, Status, OUTPUT_LIMIT};
use support::{describe, resident_memory_bytes, BackgroundRunner, TestDatabase, TestDb};

const MIB: usize = 1024 * 1024;

const WAIT: Duration = Duration::from_secs(15);

/// The width of each line `write_3_mib` writes, newline included.
const LINE_WIDTH: usize = 64;

/// The memory growth accepted while a command writes 200 MiB. Other tests
/// of this file run at the same time in the same process, so this leaves
/// room for their allocations too.
const MAX_GROWTH: u64 = 50 * MIB as u64;

/// The resident memory when `write_200_mib` started, in bytes.
static BASELINE: AtomicU64 = AtomicU64::new(0);

/// The largest resident memory seen after each write of `write_200_mib`.
static PEAK: AtomicU64 = AtomicU64::new(0);

/// Held by each backend's run of `output_memory_stays_bounded`, so that one
/// `write_200_mib` at a time sets `BASELINE` and `PEAK`.
static MEMORY_TEST: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Returns line `index` of the 3 MiB output, `LINE_WIDTH` bytes long.
fn numbered_line(index: usize) -> String {
    format!("line {index:0width$}\n", width = LINE_WIDTH - 6)
}

#[quicksilver::command]
async fn write_3_mib(ctx: &Context) {
    let lines_per_write = 1024;
    let writes = 3 * MIB / LINE_WIDTH / lines_per_write;
    for write in 0..writes {
        let first = write * lines_per_write;
        let chunk: String = (first..first + lines_per_write)
            .map(numbered_line)
            .collect();
        ctx.write(chunk);
    }
}

#[quicksilver::command]
async fn write_200_mib(ctx: &Context) {
    let baseline = resident_memory_bytes();
    BASELINE.store(baseline, Ordering::SeqCst);
    PEAK.store(baseline, Ordering::SeqCst);
    for _ in 0..200 {
        let chunk = "y".repeat(MIB);
        ctx.write(&chunk);
        drop(chunk);
        PEAK.fetch_max(resident_memory_bytes(), Ordering::SeqCst);
        tokio::task::yield_now().await;
    }
}

#[quicksilver::command]
async fn emit_events(ctx: &Context) {
    ctx.write_line("before the events");
    tracing::info!("syncing ledger");
    tracing::warn!(account = 42, region = "eu-west", "balance below threshold");
    let batch = tracing::info_span!("batch", batch.id = 3);
    batch.in_scope(|| tracing::error!(rows = 0_u64, "batch was empty"));
    tokio::task::yield_now().await;
    tracing::debug!(retry = true, "after an await");
    ctx.write_line("after the events");
}

fn hourly() -> Schedule {
    Schedule::every(3600).expect("1 hour is a valid interval")
}

/// Splits a truncated output of a command that wrote `written` bytes into
/// the text kept and the marker line, and checks that the marker reports
/// the bytes not kept and that the whole fits in the limit.
fn split_marker(output: &str, written: usize) -> (&str, &str) {
    let (kept, marker) = output.rsplit_once('\n').unwrap_or_else(|| {
        panic!(
            "output has no line break before a marker: {} bytes",
            output.len()
        )
    });
    assert!(
        marker.starts_with("[output truncated: ") && marker.ends_with(']'),
        "the output ends with the truncation marker, not {marker:?}"
    );
    let dropped = written - kept.len();
    assert!(
        marker.contains(&format!("{dropped} more bytes were dropped")),
        "the marker reports the {dropped} bytes not kept: {marker:?}"
    );
    assert!(
        output.len() <= OUTPUT_LIMIT,
        "the output is {} bytes, more than the {OUTPUT_LIMIT} byte limit",
        output.len()
    );
    assert!(
        kept.len() + 200 >= OUTPUT_LIMIT,
        "the marker takes the place of at most 200 bytes, but only {} bytes were kept",
        kept.len()
    );
    (kept, marker)
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn output_past_limit_is_cut_with_marker(database: TestDatabase);
}
async fn output_past_limit_is_cut_with_marker(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = db.add_task(NewTask::new("write_3_mib", hourly())).await;
    let runner = BackgroundRunner::start(db.runner("default"));

    let executions = db.wait_for_status(task.id, Status::Success, 1, WAIT).await;
    runner.stop().await;
    let output = &executions[0].output;

    let (kept, _) = split_marker(output, 3 * MIB);
    let expected: String = (0..OUTPUT_LIMIT / LINE_WIDTH).map(numbered_line).collect();
    assert!(
        expected.as_bytes().starts_with(kept.as_bytes()),
        "the kept text is the start of the first {} lines, in order, starting {:?}",
        OUTPUT_LIMIT / LINE_WIDTH,
        &kept[..LINE_WIDTH * 2]
    );
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tracing_events_land_in_output(database: TestDatabase);
}
async fn tracing_events_land_in_output(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = db.add_task(NewTask::new("emit_events", hourly())).await;
    let runner = BackgroundRunner::start(db.runner("default"));

    let executions = db.wait_for_status(task.id, Status::Success, 1, WAIT).await;
    runner.stop().await;
    let output = &executions[0].output;

    let expected_in_order = [
        "before the events",
        "INFO",
        "syncing ledger",
        "WARN",
        "balance below threshold",
        "account=42",
        "region=\"eu-west\"",
        "ERROR",
        "batch was empty",
        "rows=0",
        "DEBUG",
        "after an await",
        "retry=true",
        "after the events",
    ];
    let mut position = 0;
    for expected in expected_in_order {
        let found = output[position..].find(expected);
        assert!(
            found.is_some(),
            "the output has {expected:?} after byte {position}: {output:?}"
        );
        position += found.unwrap_or_default() + expected.len();
    }
    assert!(
        !output.contains("execution finished"),
        "the runner's own events stay out of the output: {output:?}"
    );
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn output_memory_stays_bounded(database: TestDatabase);
}
async fn output_memory_stays_bounded(database: TestDatabase) {
    let _one_at_a_time = MEMORY_TEST.lock().await;
    BASELINE.store(0, Ordering::SeqCst);
    let db = TestDb::open(database).await;
    let task = db.add_task(NewTask::new("write_200_mib", hourly())).await;
    let runner = BackgroundRunner::start(db.runner("default"));

    let executions = db.wait_for_status(task.id, Status::Success, 1, WAIT).await;
    runner.stop().await;
    let listing = describe(&executions);

    let baseline = BASELINE.load(Ordering::SeqCst);
    let peak = PEAK.load(Ordering::SeqCst);
    assert!(baseline > 0, "the command measured its memory:\n{listing}");
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "resident memory while writing 200 MiB: {} MiB at start, {} MiB at peak",
        baseline / MIB as u64,
        peak / MIB as u64
    );
    assert!(
        growth < MAX_GROWTH,
        "resident memory grew by {} MiB while the command wrote 200 MiB, more than {} MiB",
        growth / MIB as u64,
        MAX_GROWTH / MIB as u64
    );
    split_marker(&executions[0].output, 200 * MIB);
}
