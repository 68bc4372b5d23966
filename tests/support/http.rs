//! An axum router served on a loopback port, and a minimal HTTP/1.1 client
//! that reads whole responses, for the tests of the status endpoint and
//! the dashboard.
//!
//! The client sends each request on a new connection with
//! `Connection: close` and reads until the server closes it, so a test
//! gets exactly the bytes the server wrote.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long one request may take before it fails the test.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A router served on a loopback port until [`Server::stop`].
pub struct Server {
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Serves `app` on a free port of 127.0.0.1.
    ///
    /// # Panics
    ///
    /// Panics when no loopback port can be bound.
    pub async fn start(app: Router) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let address = listener.local_addr().expect("the listener's address");
        let (sender, receiver) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = receiver.await;
                })
                .await
        });
        Server {
            address,
            shutdown: Some(sender),
            handle,
        }
    }

    /// Returns the address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Sends `GET path` and reads the whole response.
    pub async fn get(&self, path: &str) -> HttpResponse {
        self.send(HttpRequest::new("GET", path)).await
    }

    /// Sends a request without a body and reads the whole response.
    pub async fn request(&self, method: &str, path: &str) -> HttpResponse {
        self.send(HttpRequest::new(method, path)).await
    }

    /// Sends `request` and reads the whole response.
    ///
    /// # Panics
    ///
    /// Panics when the exchange fails or takes more than
    /// [`REQUEST_TIMEOUT`].
    pub async fn send(&self, request: HttpRequest) -> HttpResponse {
        let label = format!("{} {}", request.method, request.path);
        let bytes = request.to_bytes(self.address);
        let exchange = async {
            let mut stream = TcpStream::connect(self.address).await?;
            stream.write_all(&bytes).await?;
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await?;
            Ok::<_, std::io::Error>(raw)
        };
        let raw = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| panic!("{label} took more than {REQUEST_TIMEOUT:?}"))
            .unwrap_or_else(|error| panic!("{label} failed: {error}"));
        HttpResponse::parse(&raw)
    }

    /// Stops the server and waits for it, so that the router's store is
    /// closed before the test database is dropped.
    ///
    /// # Panics
    ///
    /// Panics when the server does not stop within [`REQUEST_TIMEOUT`] or
    /// returned an error.
    pub async fn stop(mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
        tokio::time::timeout(REQUEST_TIMEOUT, &mut self.handle)
            .await
            .expect("the server stops")
            .expect("the server task did not panic")
            .expect("the server returned no error");
    }
}

impl Drop for Server {
    /// Stops serving when the server is dropped without [`Server::stop`].
    fn drop(&mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
    }
}

/// An HTTP/1.1 request to send with [`Server::send`].
#[derive(Debug, Clone)]
pub struct HttpRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpRequest {
    /// Starts a request without headers (besides `Host`, `Connection` and
    /// `Content-Length`, which every request gets) and without a body.
    pub fn new(method: &str, path: &str) -> HttpRequest {
        HttpRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> HttpRequest {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets an `application/x-www-form-urlencoded` body of `fields`.
    pub fn form(mut self, fields: &[(&str, &str)]) -> HttpRequest {
        let body: Vec<String> = fields
            .iter()
            .map(|(name, value)| format!("{}={}", form_encode(name), form_encode(value)))
            .collect();
        self.body = body.join("&").into_bytes();
        self.header("Content-Type", "application/x-www-form-urlencoded")
    }

    fn to_bytes(&self, address: SocketAddr) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.method,
            self.path,
            self.body.len()
        );
        // The server's address is the `Host` unless the request names one.
        if !self
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("host"))
        {
            head.push_str(&format!("Host: {address}\r\n"));
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Encodes a form value: `application/x-www-form-urlencoded`, with spaces
/// as `+`.
pub fn form_encode(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                encoded.push(char::from(byte));
            }
            b' ' => encoded.push('+'),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

/// An HTTP/1.1 response as read from the socket.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers, names in lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body, with chunked framing removed.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Parses a response: status line, headers, and a body framed by
    /// `Content-Length`, by chunks, or by the end of the connection.
    ///
    /// # Panics
    ///
    /// Panics when `raw` is not an HTTP/1.1 response.
    pub fn parse(raw: &[u8]) -> HttpResponse {
        let split = raw
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(raw)));
        let head = std::str::from_utf8(&raw[..split]).expect("the head is UTF-8");
        let rest = &raw[split + 4..];

        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("invalid status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();

        let mut response = HttpResponse {
            status,
            headers,
            body: Vec::new(),
        };
        response.body = if response.header("transfer-encoding") == Some("chunked") {
            decode_chunks(rest)
        } else if let Some(length) = response.header("content-length") {
            let length: usize = length.parse().expect("a numeric Content-Length");
            rest[..length].to_vec()
        } else {
            rest.to_vec()
        };
        response
    }

    /// Returns the first value of the header `name` (in lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }

    /// Returns every value of the header `name` (in lowercase).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// Returns the body as text.
    ///
    /// # Panics
    ///
    /// Panics when the body is not UTF-8.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("the body is UTF-8")
    }

    /// Parses the body as JSON.
    ///
    /// # Panics
    ///
    /// Panics when the body is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "the body is not JSON ({error}):\n{}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

fn decode_chunks(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|window| window == b"\r\n")
            .expect("a chunk size line");
        let line = std::str::from_utf8(&rest[..line_end]).expect("the chunk size is ASCII");
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).expect("a hexadecimal chunk size");
        rest = &rest[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}
