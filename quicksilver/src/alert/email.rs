//! The e-mail sink: alerts over SMTP through lettre.

use std::env::{self, VarError};
use std::fmt;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::alert::{Alert, AlertSink, SinkFuture};
use crate::runner::host_name;

/// The environment variable with the SMTP URL that [`EmailSink::from_env`]
/// reads.
const URL_VAR: &str = "QUICKSILVER_SMTP_URL";

/// The environment variable with the comma-separated administrator
/// addresses.
const ADMINS_VAR: &str = "QUICKSILVER_ADMINS";

/// The environment variable with the sender address, optional.
const FROM_VAR: &str = "QUICKSILVER_ALERT_FROM";

/// The URL forms that lettre's `from_url` accepts, for error messages.
const URL_FORMS: &str = "smtp://[user:password@]host[:port][?tls=required|opportunistic] \
                         or smtps://[user:password@]host[:port]";

/// A sink that e-mails each alert to the administrators over SMTP.
///
/// Each message goes to every administrator (the `To` header), comes from
/// the sender, and has the first administrator as `Reply-To`, so that a
/// reply reaches a person even when the sender is an unattended address.
/// The subject is [`Alert::subject`] and the plain-text body
/// [`Alert::body`].
///
/// The server comes from a URL, as lettre 0.11's
/// [`AsyncSmtpTransport::from_url`] reads it:
///
/// - `smtps://user:password@host` for SMTP over TLS, port 465 by default;
/// - `smtp://user:password@host?tls=required` for STARTTLS, port 587 by
///   default;
/// - `smtp://host?tls=opportunistic` for STARTTLS when the server offers
///   it, port 587 by default;
/// - `smtp://host` for plain SMTP, port 25 by default.
///
/// User and password are optional and must be percent-encoded. The sink's
/// `Debug` and `Display` output and its errors show the URL with the
/// password replaced by `***`.
///
/// Each send opens its own connection and drops it after the message, so
/// the sink keeps no connection open between alerts. A send that takes
/// longer than the [timeout](EmailSinkBuilder::timeout) fails, so that an
/// unreachable server does not hold up the runner. A failed send returns a
/// boxed [`EmailError`] that names the server and the cause.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use quicksilver::alert::EmailSink;
///
/// let sink = EmailSink::builder("smtp://alerts:secret@mail.example.com:587?tls=required")
///     .administrators(["ops@example.com", "Jane Doe <jane@example.com>"])
///     .sender("quicksilver@db1.example.com")
///     .timeout(Duration::from_secs(5))
///     .build()?;
/// assert_eq!(
///     sink.to_string(),
///     "e-mail to ops@example.com, Jane Doe <jane@example.com> \
///      through smtp://alerts:***@mail.example.com:587?tls=required"
/// );
/// # Ok::<(), quicksilver::alert::EmailError>(())
/// ```
///
/// # Caveats
///
/// Sends need a tokio runtime, as the runner has, because lettre's
/// connection pool spawns tasks on it.
pub struct EmailSink {
    /// lettre's settings, from which each send builds a transport.
    settings: AsyncSmtpTransportBuilder,
    /// The URL with its password replaced by `***`.
    server: String,
    /// The recipients, never empty. The first is also the `Reply-To`.
    administrators: Vec<Mailbox>,
    sender: Mailbox,
    timeout: Duration,
}

impl EmailSink {
    /// The default of [`EmailSinkBuilder::timeout`]: 10 seconds.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// Starts a builder of a sink that sends through the SMTP server at
    /// `url`.
    pub fn builder(url: impl Into<String>) -> EmailSinkBuilder {
        EmailSinkBuilder {
            url: url.into(),
            administrators: Vec::new(),
            sender: None,
            host: None,
            timeout: EmailSink::DEFAULT_TIMEOUT,
        }
    }

    /// Builds a sink from environment variables, or returns `None` when
    /// `QUICKSILVER_SMTP_URL` is not set.
    ///
    /// - `QUICKSILVER_SMTP_URL`: the server, as in the [type's
    ///   documentation](EmailSink).
    /// - `QUICKSILVER_ADMINS`: the administrator addresses, separated by
    ///   commas, so display names must not contain commas.
    /// - `QUICKSILVER_ALERT_FROM`: the sender, `quicksilver@<host name>`
    ///   when not set.
    ///
    /// A variable set to an empty or blank value counts as not set. The
    /// timeout is [`EmailSink::DEFAULT_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// - [`EmailError::NotUnicode`] when a variable is not valid Unicode.
    /// - Every error of [`EmailSinkBuilder::build`], such as
    ///   [`EmailError::NoAdministrators`] when `QUICKSILVER_SMTP_URL` is set
    ///   and `QUICKSILVER_ADMINS` is not.
    pub fn from_env() -> Result<Option<EmailSink>, EmailError> {
        EmailSink::from_variables(|name| match env::var(name) {
            Ok(value) => Ok(Some(value)),
            Err(VarError::NotPresent) => Ok(None),
            Err(VarError::NotUnicode(_)) => Err(EmailError::NotUnicode { name }),
        })
    }

    /// Builds a sink from the variables that `lookup` returns, as
    /// [`EmailSink::from_env`] describes.
    fn from_variables(
        lookup: impl Fn(&'static str) -> Result<Option<String>, EmailError>,
    ) -> Result<Option<EmailSink>, EmailError> {
        let read = |name| -> Result<Option<String>, EmailError> {
            let value = lookup(name)?;
            Ok(value.filter(|value| !value.trim().is_empty()))
        };
        let Some(url) = read(URL_VAR)? else {
            return Ok(None);
        };

        let administrators = read(ADMINS_VAR)?.unwrap_or_default();
        let administrators = administrators
            .split(',')
            .map(str::trim)
            .filter(|address| !address.is_empty());
        let mut builder = EmailSink::builder(url).administrators(administrators);
        if let Some(sender) = read(FROM_VAR)? {
            builder = builder.sender(sender);
        }
        builder.build().map(Some)
    }

    /// Sends `alert` to the administrators.
    async fn deliver(&self, alert: &Alert) -> Result<(), EmailError> {
        let message = self.message(alert)?;

        // A transport of its own for each send, so that its connection pool
        // belongs to the runtime of this call and is dropped with it.
        let transport: AsyncSmtpTransport<Tokio1Executor> = self.settings.clone().build();
        let sent = tokio::time::timeout(self.timeout, transport.send(message)).await;
        match sent {
            Ok(Ok(_)) => {
                tracing::debug!(
                    alert.kind = %alert.kind,
                    task.id = alert.task_id,
                    smtp.server = %self.server,
                    recipients = self.administrators.len(),
                    "alert e-mail sent"
                );
                Ok(())
            }
            Ok(Err(error)) => Err(EmailError::Send {
                server: self.server.clone(),
                reason: error.to_string(),
            }),
            Err(_) => Err(EmailError::Timeout {
                server: self.server.clone(),
                timeout: self.timeout,
            }),
        }
    }

    /// Builds the message of `alert`.
    fn message(&self, alert: &Alert) -> Result<Message, EmailError> {
        let mut builder = Message::builder()
            .from(self.sender.clone())
            .subject(alert.subject())
            .header(ContentType::TEXT_PLAIN);
        if let Some(first) = self.administrators.first() {
            builder = builder.reply_to(first.clone());
        }
        for administrator in &self.administrators {
            builder = builder.to(administrator.clone());
        }
        builder
            .body(alert.body())
            .map_err(|error| EmailError::Message {
                reason: error.to_string(),
            })
    }
}

impl AlertSink for EmailSink {
    fn name(&self) -> &str {
        "email"
    }

    fn send<'a>(&'a self, alert: &'a Alert) -> SinkFuture<'a> {
        Box::pin(async move {
            self.deliver(alert).await?;
            Ok(())
        })
    }
}

impl fmt::Debug for EmailSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The transport settings contain the password, so they stay out.
        f.debug_struct("EmailSink")
            .field("server", &self.server)
            .field("administrators", &join(&self.administrators))
            .field("sender", &self.sender.to_string())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for EmailSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "e-mail to {} through {}",
            join(&self.administrators),
            self.server
        )
    }
}

/// Joins mailboxes with commas, as in a `To` header.
fn join(mailboxes: &[Mailbox]) -> String {
    let texts: Vec<String> = mailboxes.iter().map(Mailbox::to_string).collect();
    texts.join(", ")
}

/// A builder of an [`EmailSink`], from [`EmailSink::builder`].
///
/// [`build`](EmailSinkBuilder::build) checks every setting, so that a wrong
/// one fails at startup instead of at the first alert.
#[derive(Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct EmailSinkBuilder {
    url: String,
    administrators: Vec<String>,
    sender: Option<String>,
    host: Option<String>,
    timeout: Duration,
}

impl EmailSinkBuilder {
    /// Sets the addresses that receive the alerts, such as
    /// `ops@example.com` or `Ops <ops@example.com>`. The first also
    /// receives the replies.
    pub fn administrators<I>(mut self, administrators: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.administrators = administrators.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the address that the alerts come from. It defaults to
    /// `quicksilver@<host>`, with the [host](EmailSinkBuilder::host).
    pub fn sender(mut self, sender: impl Into<String>) -> Self {
        self.sender = Some(sender.into());
        self
    }

    /// Sets the host name of the default sender. It defaults to this
    /// machine's host name, as alerts show it.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Sets how long one send may take, from the connection to the server's
    /// reply to the message. It defaults to [`EmailSink::DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the settings and builds the sink, without connecting to the
    /// server.
    ///
    /// # Errors
    ///
    /// - [`EmailError::InvalidUrl`] when the URL cannot be parsed, or its
    ///   scheme or `tls` parameter is not one of those the [sink
    ///   accepts](EmailSink).
    /// - [`EmailError::NoAdministrators`] when no administrator is set.
    /// - [`EmailError::InvalidAddress`] when an administrator or the sender
    ///   is not a valid address.
    /// - [`EmailError::InvalidDefaultSender`] when no sender is set and the
    ///   host name does not make a valid address.
    /// - [`EmailError::ZeroTimeout`] when the timeout is zero.
    pub fn build(self) -> Result<EmailSink, EmailError> {
        let url = self.url.trim();
        let server = redact_password(url);
        if let Err(reason) = check_url_form(url) {
            return Err(EmailError::InvalidUrl {
                url: server,
                reason,
            });
        }
        // NOTE: the tests send only over plain SMTP on loopback; the TLS forms
        // (`smtps://`, `?tls=required`) are parsed here but never sent through.
        let settings = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|error| {
            // lettre wraps the URL parser's error, such as `invalid port
            // number`, in a `Connection error` that no connection caused.
            let reason = match std::error::Error::source(&error) {
                Some(source) => source.to_string(),
                None => error.to_string(),
            };
            EmailError::InvalidUrl {
                url: server.clone(),
                reason,
            }
        })?;

        if self.timeout.is_zero() {
            return Err(EmailError::ZeroTimeout);
        }

        if self.administrators.is_empty() {
            return Err(EmailError::NoAdministrators);
        }
        let administrators = self
            .administrators
            .iter()
            .map(|address| parse_mailbox("administrator", address))
            .collect::<Result<Vec<_>, _>>()?;

        let sender = match &self.sender {
            Some(sender) => parse_mailbox("sender", sender)?,
            None => {
                let host = self.host.unwrap_or_else(host_name);
                let address = format!("quicksilver@{host}");
                address
                    .parse::<Mailbox>()
                    .map_err(|error| EmailError::InvalidDefaultSender {
                        host,
                        reason: lowercase_first(&error.to_string()),
                    })?
            }
        };

        Ok(EmailSink {
            settings: settings.timeout(Some(self.timeout)),
            server,
            administrators,
            sender,
            timeout: self.timeout,
        })
    }
}

impl fmt::Debug for EmailSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSinkBuilder")
            .field("url", &redact_password(&self.url))
            .field("administrators", &self.administrators)
            .field("sender", &self.sender)
            .field("host", &self.host)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Parses an address such as `ops@example.com` or `Ops <ops@example.com>`.
fn parse_mailbox(role: &'static str, address: &str) -> Result<Mailbox, EmailError> {
    address
        .trim()
        .parse()
        .map_err(
            |error: lettre::address::AddressError| EmailError::InvalidAddress {
                role,
                address: address.to_owned(),
                reason: lowercase_first(&error.to_string()),
            },
        )
}

/// Checks the scheme and the `tls` parameter of `url`, and returns the
/// reason when lettre would reject them.
///
/// lettre's own message for a wrong value names the scheme and the `tls`
/// parameter together, and a URL without a scheme fails there as `smtp host
/// undefined`.
fn check_url_form(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("missing scheme".to_owned());
    };
    if scheme.eq_ignore_ascii_case("smtps") {
        // lettre ignores `tls` with `smtps`, which is TLS from the start.
        return Ok(());
    }
    if !scheme.eq_ignore_ascii_case("smtp") {
        return Err(format!("unsupported scheme `{scheme}`"));
    }

    // lettre reads the first `tls` parameter of the query.
    let query = rest.split_once('?').map_or("", |(_, query)| query);
    let query = query.split_once('#').map_or(query, |(query, _)| query);
    let tls = query.split('&').find_map(|pair| pair.strip_prefix("tls="));
    match tls {
        None | Some("required" | "opportunistic") => Ok(()),
        Some(tls) => Err(format!("unsupported tls parameter `{tls}`")),
    }
}

/// Replaces the password of a URL such as `smtp://user:secret@host:587`
/// with `***`, and returns other URLs unchanged.
///
/// The credentials end at the last `@`, so a password with an unencoded
/// `@`, `/`, `?` or `#` is hidden too. An `@` in the path or query of a URL
/// whose host has a port hides more than the password, which is the safe
/// side.
fn redact_password(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    let Some((user, _password)) = credentials.split_once(':') else {
        return url.to_owned();
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{user}:***@{host}"),
    }
}

/// Lowercases the first letter of lettre's capitalized messages, such as
/// `Invalid email domain`.
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// An invalid setting of the [`EmailSink`], or a failed send.
///
/// No message contains the password of the SMTP URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmailError {
    /// The SMTP URL cannot be parsed, or its scheme or `tls` parameter is
    /// not one that the sink accepts.
    #[error("invalid SMTP URL `{url}`: {reason}, expected {URL_FORMS}")]
    InvalidUrl {
        /// The URL, with its password replaced by `***`.
        url: String,
        /// The reason, such as `invalid port number`.
        reason: String,
    },
    /// No administrator address was given.
    #[error(
        "no administrator address to send alerts to: set at least one, \
         such as with {ADMINS_VAR}=ops@example.com"
    )]
    NoAdministrators,
    /// An administrator or the sender is not a valid address.
    #[error(
        "invalid {role} address `{address}`: {reason}, expected an address such as \
         `ops@example.com` or `Ops <ops@example.com>`"
    )]
    InvalidAddress {
        /// `administrator` or `sender`.
        role: &'static str,
        /// The address as given.
        address: String,
        /// lettre's reason, such as `invalid email domain`.
        reason: String,
    },
    /// No sender was set, and the host name does not make a valid one.
    #[error(
        "invalid default sender `quicksilver@{host}`, made from the host name: {reason}. \
         Set the sender, such as with {FROM_VAR}=quicksilver@example.com"
    )]
    InvalidDefaultSender {
        /// The host name.
        host: String,
        /// lettre's reason, such as `invalid input`.
        reason: String,
    },
    /// The timeout is zero, so every send would fail.
    #[error("invalid e-mail timeout of 0 s: set a duration greater than zero")]
    ZeroTimeout,
    /// An environment variable is not valid Unicode.
    #[error("environment variable {name} is not valid Unicode")]
    NotUnicode {
        /// The variable.
        name: &'static str,
    },
    /// lettre could not build the message of an alert.
    #[error("cannot build the alert e-mail: {reason}")]
    Message {
        /// lettre's message.
        reason: String,
    },
    /// The server could not be reached, or it rejected the message.
    #[error("failed to send an alert e-mail through {server}: {reason}")]
    Send {
        /// The server's URL, with its password replaced by `***`.
        server: String,
        /// lettre's message, such as `Connection error: Connection refused
        /// (os error 111)`.
        reason: String,
    },
    /// The send took longer than the timeout.
    #[error(
        "timed out after {timeout:?} sending an alert e-mail through {server}: \
         check that the server is reachable, or raise the timeout"
    )]
    Timeout {
        /// The server's URL, with its password replaced by `***`.
        server: String,
        /// The timeout.
        timeout: Duration,
    },
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const PASSWORD: &str = "s3cret-Pa55";

    fn valid() -> EmailSinkBuilder {
        EmailSink::builder(format!("smtp://alerts:{PASSWORD}@127.0.0.1:2525"))
            .administrators(["ops@example.com"])
    }

    fn build_error(builder: EmailSinkBuilder) -> EmailError {
        match builder.build() {
            Ok(sink) => panic!("expected an error, built {sink:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn redact_password_hides_only_the_password() {
        let cases = [
            ("smtp://mail.example.com:25", "smtp://mail.example.com:25"),
            (
                "smtp://alerts@mail.example.com",
                "smtp://alerts@mail.example.com",
            ),
            (
                "smtp://alerts:secret@mail.example.com:587?tls=required",
                "smtp://alerts:***@mail.example.com:587?tls=required",
            ),
            (
                "smtps://:secret@mail.example.com",
                "smtps://:***@mail.example.com",
            ),
            (
                "smtp://alerts:se@cret@mail.example.com",
                "smtp://alerts:***@mail.example.com",
            ),
            (
                "smtp://alerts:se/cr?et@mail.example.com",
                "smtp://alerts:***@mail.example.com",
            ),
            (
                "alerts:secret@mail.example.com",
                "alerts:***@mail.example.com",
            ),
            ("", ""),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_password(url), expected, "{url}");
        }
    }

    #[test]
    fn builder_accepts_each_url_form() {
        let urls = [
            "smtp://127.0.0.1:2525",
            "smtp://mail.example.com",
            "SMTP://mail.example.com",
            "smtps://alerts:secret@mail.example.com",
            "smtp://alerts:secret@mail.example.com:587?tls=required",
            "smtp://mail.example.com?tls=opportunistic",
            "smtp://mail.example.com?tls=required#fragment",
            "smtps://mail.example.com?tls=required",
            "smtp://alerts:p%40ss@mail.example.com/db1.example.com",
            "  smtp://mail.example.com  ",
        ];
        for url in urls {
            let built = EmailSink::builder(url)
                .administrators(["ops@example.com"])
                .build();
            assert!(built.is_ok(), "{url}: {built:?}");
        }
    }

    #[test]
    fn invalid_urls_rejected_without_password() {
        let cases = [
            ("mail.example.com:587", "missing scheme"),
            (
                "http://alerts:{PASSWORD}@mail.example.com",
                "unsupported scheme `http`",
            ),
            (
                "smtp://alerts:{PASSWORD}@mail.example.com:port",
                "invalid port number",
            ),
            ("smtp://alerts:{PASSWORD}@", "empty host"),
            (
                "smtp://alerts:{PASSWORD}@mail.example.com?tls=yes",
                "tls parameter",
            ),
        ];
        for (url, reason) in cases {
            let url = url.replace("{PASSWORD}", PASSWORD);
            let error = build_error(EmailSink::builder(&url).administrators(["ops@example.com"]));
            let message = error.to_string();
            assert!(
                matches!(error, EmailError::InvalidUrl { .. }),
                "{url}: {error:?}"
            );
            assert!(message.contains(reason), "{url}: {message}");
            assert!(message.contains(URL_FORMS), "{url}: {message}");
            assert!(!message.contains(PASSWORD), "{url}: {message}");
            assert!(!format!("{error:?}").contains(PASSWORD), "{url}: {error:?}");
        }
    }

    #[test]
    fn builder_names_the_redacted_url() {
        let url = format!("smtp://alerts:{PASSWORD}@mail.example.com:port");
        let message = build_error(EmailSink::builder(url)).to_string();
        assert!(
            message.contains("`smtp://alerts:***@mail.example.com:port`"),
            "{message}"
        );
    }

    #[test]
    fn builder_requires_an_administrator() {
        let error = build_error(valid().administrators(Vec::<String>::new()));
        assert_eq!(error, EmailError::NoAdministrators);
        assert!(error.to_string().contains(ADMINS_VAR), "{error}");
    }

    #[test]
    fn builder_names_the_invalid_administrator() {
        let error = build_error(valid().administrators(["ops@example.com", "dba at example"]));
        let message = error.to_string();
        assert!(
            matches!(
                error,
                EmailError::InvalidAddress {
                    role: "administrator",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            message.starts_with("invalid administrator address `dba at example`: "),
            "{message}"
        );
        assert!(message.contains("`ops@example.com`"), "{message}");
    }

    #[test]
    fn builder_names_the_invalid_sender() {
        let error = build_error(valid().sender("quicksilver@"));
        let message = error.to_string();
        assert!(
            matches!(error, EmailError::InvalidAddress { role: "sender", .. }),
            "{error:?}"
        );
        assert!(
            message.starts_with("invalid sender address `quicksilver@`: "),
            "{message}"
        );
    }

    #[test]
    fn sender_defaults_to_quicksilver_at_host() {
        let sink = valid()
            .host("db1.example.com")
            .build()
            .expect("build the sink");
        assert_eq!(sink.sender.to_string(), "quicksilver@db1.example.com");

        let sink = valid().build().expect("build the sink");
        assert_eq!(
            sink.sender.to_string(),
            format!("quicksilver@{}", host_name())
        );
    }

    #[test]
    fn invalid_host_asks_for_a_sender() {
        let error = build_error(valid().host("db 1"));
        let message = error.to_string();
        assert!(
            matches!(error, EmailError::InvalidDefaultSender { .. }),
            "{error:?}"
        );
        assert!(
            message.starts_with("invalid default sender `quicksilver@db 1`"),
            "{message}"
        );
        assert!(message.contains(FROM_VAR), "{message}");
    }

    #[test]
    fn builder_rejects_a_zero_timeout() {
        let error = build_error(valid().timeout(Duration::ZERO));
        assert_eq!(error, EmailError::ZeroTimeout);
    }

    #[test]
    fn debug_and_display_hide_the_password() {
        let builder = valid()
            .administrators(["ops@example.com", "Jane Doe <jane@example.com>"])
            .sender("Quicksilver <quicksilver@example.com>");
        let builder_debug = format!("{builder:?}");
        assert!(!builder_debug.contains(PASSWORD), "{builder_debug}");
        assert!(
            builder_debug.contains("smtp://alerts:***@127.0.0.1:2525"),
            "{builder_debug}"
        );

        let sink = builder.build().expect("build the sink");
        let debug = format!("{sink:?}");
        let display = sink.to_string();
        assert!(!debug.contains(PASSWORD), "{debug}");
        assert!(!display.contains(PASSWORD), "{display}");
        assert_eq!(
            display,
            "e-mail to ops@example.com, Jane Doe <jane@example.com> \
             through smtp://alerts:***@127.0.0.1:2525"
        );
        assert!(
            debug.contains("sender: \"Quicksilver <quicksilver@example.com>\""),
            "{debug}"
        );
    }

    #[test]
    fn message_sets_recipients_and_reply_to() {
        let sink = valid()
            .administrators(["ops@example.com", "dba@example.com"])
            .sender("quicksilver@db1.example.com")
            .build()
            .expect("build the sink");
        let alert = Alert::new(
            crate::alert::AlertKind::Failed,
            7,
            "report",
            "default",
            "db1",
            chrono::Utc::now(),
        );
        let message = sink.message(&alert).expect("build the message");

        let recipients: Vec<String> = message
            .envelope()
            .to()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(recipients, ["ops@example.com", "dba@example.com"]);
        let from = message.envelope().from().map(ToString::to_string);
        assert_eq!(from.as_deref(), Some("quicksilver@db1.example.com"));

        let formatted = String::from_utf8(message.formatted()).expect("an ASCII message");
        assert!(
            formatted.contains("Reply-To: ops@example.com\r\n"),
            "{formatted}"
        );
        assert!(
            formatted.contains(&format!("Subject: {}\r\n", alert.subject())),
            "{formatted}"
        );
    }

    /// Runs [`EmailSink::from_variables`] on a table instead of the
    /// process's environment, which other tests share.
    fn from_variables(variables: &[(&str, &str)]) -> Result<Option<EmailSink>, EmailError> {
        let variables: HashMap<String, String> = variables
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        EmailSink::from_variables(|name| Ok(variables.get(name).cloned()))
    }

    #[test]
    fn from_env_without_url_returns_none() {
        let sink = from_variables(&[(ADMINS_VAR, "ops@example.com")]).expect("no error");
        assert!(sink.is_none());

        let sink =
            from_variables(&[(URL_VAR, "  "), (ADMINS_VAR, "ops@example.com")]).expect("no error");
        assert!(sink.is_none());
    }

    #[test]
    fn from_env_reads_url_admins_and_sender() {
        let sink = from_variables(&[
            (URL_VAR, &format!("smtp://alerts:{PASSWORD}@127.0.0.1:2525")),
            (
                ADMINS_VAR,
                " ops@example.com, ,Jane Doe <jane@example.com>,",
            ),
            (FROM_VAR, "quicksilver@db1.example.com"),
        ])
        .expect("no error")
        .expect("a sink");
        assert_eq!(
            join(&sink.administrators),
            "ops@example.com, Jane Doe <jane@example.com>"
        );
        assert_eq!(sink.sender.to_string(), "quicksilver@db1.example.com");
        assert_eq!(sink.server, "smtp://alerts:***@127.0.0.1:2525");
        assert_eq!(sink.timeout, EmailSink::DEFAULT_TIMEOUT);
    }

    #[test]
    fn from_env_with_url_requires_admins() {
        for admins in [None, Some(""), Some(" , ")] {
            let mut variables = vec![(URL_VAR, "smtp://127.0.0.1:2525")];
            if let Some(admins) = admins {
                variables.push((ADMINS_VAR, admins));
            }
            let error = from_variables(&variables).map(|sink| sink.is_some());
            assert_eq!(error, Err(EmailError::NoAdministrators), "{admins:?}");
        }
    }

    #[test]
    fn from_env_passes_lookup_errors_on() {
        let error = EmailSink::from_variables(|name| Err(EmailError::NotUnicode { name }))
            .map(|sink| sink.is_some());
        assert_eq!(error, Err(EmailError::NotUnicode { name: URL_VAR }));
    }
}
