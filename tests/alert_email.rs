//! The e-mail alert sink against the SMTP test server on 127.0.0.1: the
//! message it sends, and its errors when the server is down, silent or
//! rejects the message.

use std::time::{Duration, Instant};

use chrono::{TimeDelta, TimeZone as _, Utc};
use quicksilver::alert::{Alert, AlertKind, AlertSink, EmailError, EmailSink};
use quicksilver::BoxError;
use support::smtp::SmtpServer;
use tokio::net::TcpListener;

/// The password in the SMTP URLs, which no error may show.
const PASSWORD: &str = "pa55-w0rd-9f2";

/// The timeout of the sinks under test, short so that a hanging send fails
/// the test quickly.
const TIMEOUT: Duration = Duration::from_secs(2);

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

    // The body.
    let body = message.body();
    let expected_lines = [
        "A run of this task is taking longer than expected.",
        "task:       report (id 3)",
        "arguments:  --month 2026-02",
        "queue:      reports",
        "host:       db1",
        "execution:  42",
        "started:    2026-03-01T11:58:25.000Z",
        "runtime:    1m35s",
        "mean:       20.500 s over 12 successful runs",
        "deviation:  4.250 s",
        "threshold:  29.000 s",
        "raised at:  2026-03-01T12:00:00.000Z",
    ];
    let lines: Vec<&str> = body.lines().collect();
    for expected in expected_lines {
        assert!(lines.contains(&expected), "missing {expected:?} in:\n{body}");
    }
    assert_eq!(body, alert.body().replace('\n', "\r\n"), "the whole body");
}

#[tokio::test]
async fn send_fails_while_server_is_down_then_recovers() {
    let server = SmtpServer::start().await;
    let port = server.port();
    let sink = sink(url_with_password(port));
    let alert = long_running_alert();
    sink.send(&alert).await.expect("send while the server is up");
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
async fn send_times_out_when_server_never_greets() {
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
    assert!(
        message.contains(&redacted_url(server.port())),
        "{message}"
    );
    assert!(message.contains("554"), "{message}");
    assert!(
        message.contains("alerts are not welcome here"),
        "{message}"
    );
    assert!(!message.contains(PASSWORD), "{message}");
    assert!(server.messages().is_empty());
}
