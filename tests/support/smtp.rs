//! A small SMTP server on 127.0.0.1 that records the messages it receives,
//! for the tests of the e-mail alert sink.
//!
//! It speaks what lettre sends over plain TCP: `EHLO` or `HELO`, `AUTH
//! PLAIN`, `MAIL FROM`, `RCPT TO`, `DATA` (with dot-unstuffing), `RSET`,
//! `NOOP` and `QUIT`. It accepts any credentials, sender and recipient, and
//! offers no TLS. A test can stop it and start another on the same port to
//! play a server that goes down and comes back.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::POLL_INTERVAL;

/// The name the server gives in its greeting and its `EHLO` reply.
const SERVER_NAME: &str = "smtp.test.invalid";

/// A message as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The name the client gave with `EHLO` or `HELO`, if it did.
    pub client: Option<String>,
    /// The user and password of `AUTH PLAIN`, if the client logged in.
    pub credentials: Option<(String, String)>,
    /// The envelope sender, from `MAIL FROM`, without angle brackets.
    pub from: String,
    /// The envelope recipients, from each `RCPT TO`, without angle brackets.
    pub recipients: Vec<String>,
    /// The message after dot-unstuffing, with its CRLF line ends and
    /// without the final `.` line.
    pub data: String,
    /// The header fields of `data` in order, names as sent and folded
    /// values joined into one line.
    pub headers: Vec<(String, String)>,
}

impl ReceivedMessage {
    /// Returns the value of the first header field called `name`, in any
    /// case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Returns the body: the data after the first empty line.
    pub fn body(&self) -> &str {
        match self.data.split_once("\r\n\r\n") {
            Some((_, body)) => body,
            None => "",
        }
    }
}

/// The state that the sessions of one server share.
#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<ReceivedMessage>>,
    /// The reply to the end of `DATA` in place of `250`, when set.
    rejection: Mutex<Option<String>>,
}

/// An SMTP server on 127.0.0.1, running on a task of the test's runtime
/// until [`stop`](SmtpServer::stop) or drop.
pub struct SmtpServer {
    address: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SmtpServer {
    /// Starts a server on a free port of 127.0.0.1.
    ///
    /// # Panics
    ///
    /// Panics when no port can be bound.
    pub async fn start() -> SmtpServer {
        SmtpServer::start_on(0).await
    }

    /// Starts a server on `port` of 127.0.0.1, or on a free port when
    /// `port` is 0.
    ///
    /// The socket allows the address to be reused, so a server can start on
    /// the port of one just stopped, whose closed connections the kernel
    /// still keeps in `TIME_WAIT`.
    ///
    /// # Panics
    ///
    /// Panics when the port cannot be bound, such as when another process
    /// took it.
    pub async fn start_on(port: u16) -> SmtpServer {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listener = listen(address)
            .unwrap_or_else(|error| panic!("bind the SMTP test server to {address}: {error}"));
        let address = listener
            .local_addr()
            .expect("read the SMTP test server's address");

        let shared = Arc::new(Shared::default());
        let (shutdown, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(listener, Arc::clone(&shared), stopped));
        SmtpServer {
            address,
            shared,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Returns the address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Returns the port the server listens on.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Returns the URL of the server without credentials, such as
    /// `smtp://127.0.0.1:40125`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.address)
    }

    /// Returns the messages received so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        lock(&self.shared.messages).clone()
    }

    /// Makes the server reply to the end of each message's data with
    /// `reply`, such as `554 5.7.1 rejected`, and drop the message. `None`
    /// makes it accept messages again.
    pub fn reject_messages(&self, reply: Option<&str>) {
        *lock(&self.shared.rejection) = reply.map(str::to_owned);
    }

    /// Waits until the server has received at least `count` messages and
    /// returns them, oldest first.
    ///
    /// # Panics
    ///
    /// Panics after `timeout`, with the messages received.
    pub async fn wait_for_messages(&self, count: usize, timeout: Duration) -> Vec<ReceivedMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {count} messages on the SMTP \
                     test server at {}; received: {messages:#?}",
                    self.address
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Closes the listener and every open connection, and waits until they
    /// are closed, so that connections to the port are refused.
    ///
    /// # Panics
    ///
    /// Panics when the server's task panicked.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("the SMTP test server's task ends without a panic");
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Binds a listener with `SO_REUSEADDR` to `address`.
fn listen(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(64)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Accepts connections until `stopped` completes, then closes the listener
/// and aborts the sessions.
async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stopped: oneshot::Receiver<()>) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let shared = Arc::clone(&shared);
                    sessions.spawn(async move {
                        if let Err(error) = session(stream, &shared).await {
                            tracing::debug!(%peer, %error, "SMTP test session ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // Such as too many open files: wait instead of spinning.
                    tracing::warn!(%error, "the SMTP test server failed to accept a connection");
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
            },
            Some(joined) = sessions.join_next(), if !sessions.is_empty() => {
                if let Err(error) = joined {
                    if error.is_panic() {
                        std::panic::resume_unwind(error.into_panic());
                    }
                }
            }
        }
    }
    drop(listener);
    sessions.shutdown().await;
}

/// The state of one SMTP session.
#[derive(Default)]
struct Session {
    client: Option<String>,
    credentials: Option<(String, String)>,
    /// The sender of the current transaction, after `MAIL FROM`.
    from: Option<String>,
    recipients: Vec<String>,
}

impl Session {
    /// Ends the current transaction, as `RSET`, `EHLO` and the end of
    /// `DATA` do.
    fn reset(&mut self) {
        self.from = None;
        self.recipients.clear();
    }
}

/// Serves one connection until `QUIT` or until the client closes it.
async fn session(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut session = Session::default();
    let greeting = format!("220 {SERVER_NAME} ESMTP quicksilver test server");
    write_reply(&mut writer, &greeting).await?;

    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, argument) = text.split_once(' ').unwrap_or((text, ""));
        let argument = argument.trim();

        let reply = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                session.client = Some(argument.to_owned());
                session.reset();
                format!("250-{SERVER_NAME}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 AUTH PLAIN")
            }
            "HELO" => {
                session.client = Some(argument.to_owned());
                session.reset();
                format!("250 {SERVER_NAME}")
            }
            "AUTH" => authenticate(argument, &mut reader, &mut writer, &mut session).await?,
            "MAIL" => match path(argument, "FROM:") {
                Some(from) => {
                    session.reset();
                    session.from = Some(from);
                    "250 2.1.0 OK".to_owned()
                }
                None => "501 5.5.4 expected MAIL FROM:<address>".to_owned(),
            },
            "RCPT" => match (&session.from, path(argument, "TO:")) {
                (None, _) => "503 5.5.1 MAIL first".to_owned(),
                (Some(_), None) => "501 5.5.4 expected RCPT TO:<address>".to_owned(),
                (Some(_), Some(recipient)) => {
                    session.recipients.push(recipient);
                    "250 2.1.5 OK".to_owned()
                }
            },
            "DATA" => match &session.from {
                None => "503 5.5.1 MAIL first".to_owned(),
                Some(_) if session.recipients.is_empty() => "503 5.5.1 RCPT first".to_owned(),
                Some(from) => {
                    write_reply(&mut writer, "354 end data with <CR><LF>.<CR><LF>").await?;
                    let data = read_data(&mut reader).await?;
                    let reply = accept_message(shared, &session, from.clone(), data);
                    session.reset();
                    reply
                }
            },
            "RSET" => {
                session.reset();
                "250 2.0.0 OK".to_owned()
            }
            "NOOP" => "250 2.0.0 OK".to_owned(),
            "QUIT" => {
                write_reply(&mut writer, "221 2.0.0 bye").await?;
                return Ok(());
            }
            _ => format!("502 5.5.2 command not implemented: {verb}"),
        };
        write_reply(&mut writer, &reply).await?;
    }
}

/// Records a message unless the server rejects messages, and returns the
/// reply to the end of its data.
fn accept_message(shared: &Shared, session: &Session, from: String, data: Vec<u8>) -> String {
    if let Some(rejection) = lock(&shared.rejection).clone() {
        return rejection;
    }
    let data = String::from_utf8_lossy(&data).into_owned();
    let message = ReceivedMessage {
        client: session.client.clone(),
        credentials: session.credentials.clone(),
        from,
        recipients: session.recipients.clone(),
        headers: parse_headers(&data),
        data,
    };
    let mut messages = lock(&shared.messages);
    messages.push(message);
    format!("250 2.0.0 OK: queued as {}", messages.len())
}

/// Handles `AUTH PLAIN`, with the credentials on the command line or on the
/// next line, and returns the final reply.
async fn authenticate(
    argument: &str,
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: &mut OwnedWriteHalf,
    session: &mut Session,
) -> io::Result<String> {
    let (mechanism, initial) = argument.split_once(' ').unwrap_or((argument, ""));
    if !mechanism.eq_ignore_ascii_case("PLAIN") {
        return Ok(format!("504 5.5.4 mechanism not supported: {mechanism}"));
    }
    let encoded = if initial.is_empty() {
        write_reply(writer, "334 ").await?;
        let mut line = String::new();
        reader.read_line(&mut line).await?;
        line.trim().to_owned()
    } else {
        initial.trim().to_owned()
    };

    // RFC 4616: authorization identity, user and password, NUL-separated.
    let decoded = decode_base64(&encoded).map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    let parts: Option<Vec<String>> =
        decoded.map(|text| text.split('\0').map(str::to_owned).collect());
    match parts.as_deref() {
        Some([_authorization, user, password]) => {
            session.credentials = Some((user.clone(), password.clone()));
            Ok("235 2.7.0 authentication succeeded".to_owned())
        }
        _ => Ok("501 5.5.2 cannot decode the AUTH PLAIN response".to_owned()),
    }
}

/// Reads the lines of `DATA` up to the line with a single `.`, and removes
/// the dot that the client added before each line starting with one.
async fn read_data(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client closed the connection inside DATA",
            ));
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(data);
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        data.extend_from_slice(unstuffed);
    }
}

/// Returns the address of `FROM:<address>` or `TO:<address>`, where
/// `prefix` is `FROM:` or `TO:`, ignoring the parameters after it.
fn path(argument: &str, prefix: &str) -> Option<String> {
    let head = argument.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = argument[prefix.len()..].trim_start();
    let inner = rest.strip_prefix('<')?;
    let (address, _parameters) = inner.split_once('>')?;
    Some(address.to_owned())
}

/// Splits the header section of `data` into fields, joining folded lines.
fn parse_headers(data: &str) -> Vec<(String, String)> {
    let section = data.split_once("\r\n\r\n").map_or(data, |(head, _)| head);
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in section.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            // RFC 5322 unfolding removes the line break and keeps the
            // whitespace.
            if let Some((_, value)) = headers.last_mut() {
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.to_owned(), value.trim_start().to_owned()));
        }
    }
    headers
}

/// Decodes standard base64 with optional padding, or returns `None` on a
/// character outside its alphabet.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut decoded = Vec::with_capacity(text.len() / 4 * 3);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for byte in text.bytes().take_while(|byte| *byte != b'=') {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            decoded.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(decoded)
}

/// Writes one reply, which may span several lines, and a final CRLF.
async fn write_reply(writer: &mut OwnedWriteHalf, text: &str) -> io::Result<()> {
    writer.write_all(text.as_bytes()).await?;
    writer.write_all(b"\r\n").await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_base64_reads_plain_credentials() {
        let decoded = decode_base64("AGFsZXJ0cwBzM2NyZXQ=").expect("valid base64");
        assert_eq!(decoded, b"\0alerts\0s3cret");
        assert_eq!(decode_base64("Zm9vYg==").as_deref(), Some(&b"foob"[..]));
        assert_eq!(decode_base64("Zm9v").as_deref(), Some(&b"foo"[..]));
        assert_eq!(decode_base64("Zm9v!"), None);
    }

    #[test]
    fn parse_headers_unfolds_lines() {
        let data = "Subject: a long\r\n subject\r\nTo: a@example.com,\r\n\tb@example.com\r\n\r\nbody: no header\r\n";
        let headers = parse_headers(data);
        assert_eq!(
            headers,
            [
                ("Subject".to_owned(), "a long subject".to_owned()),
                ("To".to_owned(), "a@example.com,\tb@example.com".to_owned()),
            ]
        );
    }

    #[test]
    fn path_reads_address_and_skips_parameters() {
        assert_eq!(
            path("FROM:<a@example.com> BODY=8BITMIME", "FROM:").as_deref(),
            Some("a@example.com")
        );
        assert_eq!(
            path("to: <b@example.com>", "TO:").as_deref(),
            Some("b@example.com")
        );
        assert_eq!(path("FROM:<>", "FROM:").as_deref(), Some(""));
        assert_eq!(path("FROM:a@example.com", "FROM:"), None);
        assert_eq!(path("TO:<b@example.com>", "FROM:"), None);
    }
}
