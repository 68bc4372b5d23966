//! The e-mail alert sink against the SMTP test server on 127.0.0.1. The
//! tests check the message it sends and its errors when the server is down,
//! silent or rejects the message. A runner's failure alert reaches the
//! server once the server is back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, TimeZone as _, Utc};
use quicksilver::alert::{
    Alert, AlertKind, AlertSettings, AlertSink, EmailError, EmailSink, SinkFuture,
};
use quicksilver::{BoxError, Context, NewTask, Schedule, Status};
use support::smtp::SmtpServer;
use support::TestDb;
use tokio::net::TcpListener;
use tracing::instrument::WithSubscriber as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// The password in the SMTP URLs, which no error may show.
const PASSWORD: &str = "pa55-w0rd-9f2";

/// The timeout of the sinks under test, short so that a hanging send fails
/// the test quickly.
const TIMEOUT: Duration = Duration::from_secs(2);

/// How long the runner test waits for runs and e-mails.
const WAIT: Duration = Duration::from_secs(10);

#[quicksilver::command]
async fn export_invoices(_ctx: &Context) -> Result<(), std::io::Error> {
    Err(std::io::Error::other("the invoice service returned 503"))
}

/// Returns the URL of the server on 127.0.0.1:`port` with a user and the
/// password.
fn url_with_password(port: u16) -> String {
    format!("smtp://alerts:{PASSWORD}@127.0.0.1:{port}")
}

/// Returns the URL that errors show for [`url_with_password`].
fn redacted_url(port: u16) -> String {
    format!("smtp://alerts:***@127.0.0.1:{port}")
}

fn sink(url: String) -> EmailSink {
    EmailSink::builder(url)
        .administrators(["ops@example.com", "Jane Doe <jane@example.com>"])
        .sender("quicksilver@db1.example.com")
        .timeout(TIMEOUT)
        .build()
        .expect("build the e-mail sink")
}

/// Returns an alert about a run of `report` taking 95 s where its 12
/// successful runs took 20.5 s on average.
fn long_running_alert() -> Alert {
    let raised_at = Utc
        .with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .expect("a valid time");
    let mut alert = Alert::new(
        AlertKind::LongRunning,
        3,
        "report",
        "reports",
        "db1",
        raised_at,
    );
    alert.arguments = vec!["--month".to_owned(), "2026-02".to_owned()];
    alert.execution_id = Some(42);
    alert.started = Some(raised_at - TimeDelta::seconds(95));
    alert.runtime = Some(Duration::from_secs(95));
    alert.mean = Some(Duration::from_millis(20_500));
    alert.deviation = Some(Duration::from_millis(4_250));
    alert.runs = 12;
    alert.threshold = Some(Duration::from_millis(29_000));
    alert
}

/// Returns the [`EmailError`] in a sink's error.
///
/// # Panics
///
/// Panics when the error is of another type.
fn email_error(error: &BoxError) -> &EmailError {
    error
        .downcast_ref::<EmailError>()
        .unwrap_or_else(|| panic!("expected an EmailError, got {error:?}"))
}

#[tokio::test]
async fn sink_sends_alert_to_administrators() {
    let server = SmtpServer::start().await;
    let sink = sink(url_with_password(server.port()));
    let alert = long_running_alert();

    sink.send(&alert).await.expect("send the alert");

    let messages = server.wait_for_messages(1, TIMEOUT).await;
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let message = &messages[0];

    // The envelope and the login.
    assert_eq!(message.from, "quicksilver@db1.example.com");
    assert_eq!(message.recipients, ["ops@example.com", "jane@example.com"]);
    assert_eq!(
        message.credentials,
        Some(("alerts".to_owned(), PASSWORD.to_owned()))
    );

    // The header.
    assert_eq!(message.header("From"), Some("quicksilver@db1.example.com"));
    assert_eq!(
        message.header("To"),
        Some("ops@example.com, \"Jane Doe\" <jane@example.com>")
    );
    assert_eq!(message.header("Reply-To"), Some("ops@example.com"));
    assert_eq!(
        message.header("Subject"),
        Some("[quicksilver] long-running: report (task 3) on db1")
    );
    assert_eq!(
        message.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    // 7bit, so that the body below is the text as written.
    assert_eq!(message.header("Content-Transfer-Encoding"), Some("7bit"));

    // The body: the alert's own text, which names the task, the host, the
    // execution and its figures. The formats of the figures are
    // `Alert::body`'s, so only the numbers are checked here.
    let body = message.body();
    let expected = [
        ("task:", "report (id 3)"),
        ("arguments:", "--month 2026-02"),
        ("queue:", "reports"),
        ("host:", "db1"),
        ("execution:", "42"),
        ("runtime:", "95"),
        ("mean:", "20.5"),
        ("mean:", "12 successful runs"),
        ("deviation:", "4.25"),
        ("threshold:", "29"),
    ];
    for (label, value) in expected {
        let line = body.lines().find(|line| line.starts_with(label));
        assert!(
            line.is_some_and(|line| line.contains(value)),
            "expected a line {label} with {value:?} in:\n{body}"
        );
    }
    // lettre ends the body with a line break of its own.
    let sent = alert.body().replace('\n', "\r\n");
    assert_eq!(body.trim_end(), sent.trim_end(), "the whole body");
}

#[tokio::test]
async fn send_during_outage_fails_then_recovers() {
    let server = SmtpServer::start().await;
    let port = server.port();
    let sink = sink(url_with_password(port));
    let alert = long_running_alert();
    sink.send(&alert)
        .await
        .expect("send while the server is up");
    assert_eq!(server.messages().len(), 1);

    server.stop().await;
    let started = Instant::now();
    let error = sink
        .send(&alert)
        .await
        .expect_err("send while the server is down");
    let elapsed = started.elapsed();

    // A refused connection fails at once, well within the timeout.
    assert!(elapsed < TIMEOUT, "the send took {elapsed:?}: {error}");
    let message = error.to_string();
    assert!(
        matches!(email_error(&error), EmailError::Send { .. }),
        "{error:?}"
    );
    assert!(
        message.starts_with(&format!(
            "failed to send an alert e-mail through {}: ",
            redacted_url(port)
        )),
        "{message}"
    );
    assert!(message.contains("Connection refused"), "{message}");
    assert!(!message.contains(PASSWORD), "{message}");
    assert!(!format!("{error:?}").contains(PASSWORD), "{error:?}");

    let server = SmtpServer::start_on(port).await;
    sink.send(&alert)
        .await
        .expect("send after the server started again");
    let messages = server.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(
        messages[0].header("Subject"),
        Some(alert.subject().as_str())
    );
}

#[tokio::test]
async fn send_times_out_on_silent_server() {
    // The kernel completes the connection on the listener's backlog, and
    // nothing ever reads from it or writes the SMTP greeting.
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a silent listener");
    let port = listener.local_addr().expect("read its address").port();
    let timeout = Duration::from_millis(500);
    let sink = EmailSink::builder(url_with_password(port))
        .administrators(["ops@example.com"])
        .sender("quicksilver@db1.example.com")
        .timeout(timeout)
        .build()
        .expect("build the e-mail sink");

    let started = Instant::now();
    let error = sink
        .send(&long_running_alert())
        .await
        .expect_err("send to a server that never greets");
    let elapsed = started.elapsed();

    assert!(elapsed >= timeout, "failed after {elapsed:?}: {error}");
    assert!(
        elapsed < timeout + Duration::from_secs(2),
        "failed after {elapsed:?}: {error}"
    );
    assert_eq!(
        email_error(&error),
        &EmailError::Timeout {
            server: redacted_url(port),
            timeout,
        }
    );
    let message = error.to_string();
    assert!(message.contains(&redacted_url(port)), "{message}");
    assert!(!message.contains(PASSWORD), "{message}");
    drop(listener);
}

#[tokio::test]
async fn send_reports_the_server_rejection() {
    let server = SmtpServer::start().await;
    server.reject_messages(Some("554 5.7.1 alerts are not welcome here"));
    let sink = sink(url_with_password(server.port()));

    let error = sink
        .send(&long_running_alert())
        .await
        .expect_err("send to a server that rejects the message");

    let message = error.to_string();
    assert!(
        matches!(email_error(&error), EmailError::Send { .. }),
        "{error:?}"
    );
    assert!(message.contains(&redacted_url(server.port())), "{message}");
    assert!(message.contains("554"), "{message}");
    assert!(message.contains("alerts are not welcome here"), "{message}");
    assert!(!message.contains(PASSWORD), "{message}");
    assert!(server.messages().is_empty());
}

/// A sink that hands each alert to an [`EmailSink`] and counts the sends
/// that failed.
struct CountingSink {
    email: EmailSink,
    failures: Arc<AtomicUsize>,
}

impl AlertSink for CountingSink {
    fn name(&self) -> &str {
        "counting email"
    }

    fn send<'a>(&'a self, alert: &'a Alert) -> SinkFuture<'a> {
        Box::pin(async move {
            let sent = self.email.send(alert).await;
            if sent.is_err() {
                self.failures.fetch_add(1, Ordering::SeqCst);
            }
            sent
        })
    }
}

/// A tracing layer that keeps the text of every event: its message and
/// fields, as a log line would show them.
#[derive(Clone, Default)]
struct LogLines(Arc<std::sync::Mutex<Vec<String>>>);

impl LogLines {
    fn matching(&self, text: &str) -> Vec<String> {
        self.0
            .lock()
            .expect("log lock")
            .iter()
            .filter(|line| line.contains(text))
            .cloned()
            .collect()
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().expect("log lock").clone()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogLines {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Line(String);
        impl tracing::field::Visit for Line {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write as _;
                let _ = write!(self.0, " {}={value:?}", field.name());
            }
        }
        let mut line = Line(event.metadata().level().to_string());
        event.record(&mut line);
        self.0.lock().expect("log lock").push(line.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_alert_survives_server_outage() {
    // A port with no server behind it until a send has failed.
    let server = SmtpServer::start().await;
    let port = server.port();
    server.stop().await;

    let db = TestDb::new().await;
    let every_second = Schedule::every(1).expect("a valid interval");
    let task = db
        .add_task(NewTask::new("export_invoices", every_second).alert_on_failure(true))
        .await;
    let mut settings = AlertSettings::default();
    settings.check_interval = Duration::from_millis(200);
    let failures = Arc::new(AtomicUsize::new(0));
    let sink = CountingSink {
        email: sink(url_with_password(port)),
        failures: Arc::clone(&failures),
    };
    let logs = LogLines::default();
    let subscriber = tracing_subscriber::registry().with(logs.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(
        db.runner("default")
            .alerts(settings)
            .alert_sink(sink)
            .shutdown_signal(async move {
                let _ = stopped.await;
            })
            .run()
            .with_subscriber(subscriber),
    );

    // The runner evaluates the rules as soon as a run fails, and again at
    // each check while the send fails.
    let deadline = Instant::now() + WAIT;
    while failures.load(Ordering::SeqCst) < 2 {
        assert!(
            Instant::now() < deadline,
            "no two failed sends within {WAIT:?}: {:?}",
            db.executions(task.id).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let server = SmtpServer::start_on(port).await;
    let messages = server.wait_for_messages(1, WAIT).await;
    let _ = stop.send(());
    runner
        .await
        .expect("the runner's task ends")
        .expect("the runner stops cleanly");

    // Each failed attempt is logged once, at error level, naming the
    // server without its password; the runner went on meanwhile.
    let failed_sends = failures.load(Ordering::SeqCst);
    let logged = logs.matching("sending an alert failed");
    assert_eq!(logged.len(), failed_sends, "{logged:#?}");
    assert!(
        logged.iter().all(|line| line.starts_with("ERROR")),
        "{logged:#?}"
    );
    assert!(
        logged.iter().all(|line| line.contains(&redacted_url(port))),
        "{logged:#?}"
    );
    let leaked: Vec<String> = logs
        .all()
        .into_iter()
        .filter(|line| line.contains(PASSWORD))
        .collect();
    assert!(leaked.is_empty(), "the log shows the password: {leaked:#?}");

    // One alert for all the failures: the task's alerts are postponed for
    // 15 minutes after it.
    let messages_after_stop = server.messages();
    assert_eq!(messages_after_stop.len(), 1, "{messages_after_stop:#?}");
    let message = &messages[0];
    assert_eq!(message.recipients, ["ops@example.com", "jane@example.com"]);
    let subject = message.header("Subject").unwrap_or_default();
    let expected_start = format!(
        "[quicksilver] failed: export_invoices (task {}) on ",
        task.id
    );
    assert!(subject.starts_with(&expected_start), "{subject}");

    let body = message.body();
    let execution_id: i64 = body
        .lines()
        .find_map(|line| line.strip_prefix("execution:"))
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or_else(|| panic!("no execution id in:\n{body}"));
    let executions = db.executions(task.id).await;
    let execution = executions
        .iter()
        .find(|execution| execution.id == execution_id)
        .unwrap_or_else(|| panic!("execution {execution_id} is not a run of task {}", task.id));
    assert_eq!(execution.status, Status::Error);
    assert!(
        body.contains("the invoice service returned 503"),
        "the body carries the run's output:\n{body}"
    );
}
