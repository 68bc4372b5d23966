//! A headless Chromium that the browser tests drive over WebDriver.
//!
//! [`Browser::start`] runs Debian's `chromedriver` on a free loopback port
//! and opens a session of headless Chromium through it with `fantoccini`.
//! Chromium starts with a fresh profile in a temporary folder and with the
//! switches that stop its background traffic (updates, sync, metrics, safe
//! browsing). Its host resolver fails every host but `localhost` and
//! `127.0.0.1`, so a page that loads anything from elsewhere fails to load
//! it.
//!
//! The helpers panic with the page's URL and text when a wait times out, so
//! that a failing test shows what the operator saw, and they save a
//! screenshot of the page into the `failures` folder beside the screenshots.
//!
//! When Chromium or chromedriver is missing, [`Browser::start`] writes a
//! line to stderr that reports the skipped test and the reason, and returns
//! `None`. With `QUICKSILVER_REQUIRE_BROWSER=1`, as CI sets it, it panics
//! instead, so that CI never passes without running the browser tests.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::{Semaphore, SemaphorePermit};

/// The variable that names the chromedriver binary, in place of the one
/// found on `PATH`.
pub const CHROMEDRIVER_VAR: &str = "QUICKSILVER_CHROMEDRIVER";

/// The variable that names the Chromium binary, in place of Debian's.
pub const CHROMIUM_VAR: &str = "QUICKSILVER_CHROMIUM";

/// The variable that turns a missing browser into a test failure when set
/// to `1`.
pub const REQUIRE_VAR: &str = "QUICKSILVER_REQUIRE_BROWSER";

/// How long a wait for text or an element lasts before the test fails.
/// Generous, because each test runs a runner, a server and Chromium's
/// processes at once, and CI machines may have few cores.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the waits read the page.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How often a wait that reloads the page loads it again: four requests a
/// second, where polling at [`POLL_INTERVAL`] would send twenty.
const RELOAD_INTERVAL: Duration = Duration::from_millis(250);

/// How long chromedriver may take to print its port, and Chromium to open
/// a session.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long chromedriver may take to exit after `GET /shutdown`.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// The viewport of the desktop screenshots, in CSS pixels.
pub const DESKTOP: ViewportSize = ViewportSize {
    width: 1280,
    height: 900,
};

/// The viewport of the phone-width checks, in CSS pixels: that of a
/// 6.1-inch phone in portrait, such as an iPhone 14.
pub const PHONE: ViewportSize = ViewportSize {
    width: 390,
    height: 844,
};

/// The browsers open at once across the tests of a binary. Each Chromium
/// runs several processes, so more at once would slow a machine with few
/// cores enough to fail the tests' timing.
static BROWSER_SLOTS: Semaphore = Semaphore::const_new(2);

/// Chromium's switches besides the profile folder and the window size.
///
/// `--no-sandbox` lets Chromium run as root, as it does in CI. The browser
/// loads only the tests' own loopback pages.
const CHROMIUM_SWITCHES: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-breakpad",
    "--no-pings",
    "--metrics-recording-only",
    "--password-store=basic",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--lang=en-US",
];

/// The size of a viewport in CSS pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewportSize {
    /// The width.
    pub width: u32,
    /// The height.
    pub height: u32,
}

/// A headless Chromium session, with its chromedriver and its profile.
///
/// Dropping it shuts chromedriver down, which closes Chromium.
pub struct Browser {
    client: Client,
    // Declared before `_folder` so that chromedriver and Chromium exit
    // before their folder is deleted.
    driver: Driver,
    _folder: TempDir,
    screenshots: PathBuf,
    test: String,
    _slot: SemaphorePermit<'static>,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a [`DESKTOP`]
    /// viewport, whose screenshots go into `screenshots`.
    ///
    /// Returns `None`, after a line on stderr that names `test` and the
    /// missing program, when Chromium or chromedriver is not installed.
    ///
    /// # Panics
    ///
    /// Panics when a program is missing and `QUICKSILVER_REQUIRE_BROWSER`
    /// is `1`, and when chromedriver or Chromium is installed but fails to
    /// start.
    pub async fn start(test: &str, screenshots: impl Into<PathBuf>) -> Option<Browser> {
        let programs = match Programs::find() {
            Ok(programs) => programs,
            Err(missing) => {
                skip(test, &missing);
                return None;
            }
        };
        let slot = BROWSER_SLOTS
            .acquire()
            .await
            .expect("the browser semaphore is never closed");

        let folder = tempfile::Builder::new()
            .prefix("quicksilver-browser-")
            .tempdir()
            .expect("create a temporary folder for the browser profile");
        let driver = Driver::start(&programs.chromedriver, folder.path());
        let client = open_session(&driver, &programs.chromium, folder.path()).await;

        let screenshots = screenshots.into();
        std::fs::create_dir_all(&screenshots).unwrap_or_else(|error| {
            panic!(
                "create the screenshot folder {}: {error}",
                screenshots.display()
            )
        });
        let browser = Browser {
            client,
            driver,
            _folder: folder,
            screenshots,
            test: test.to_owned(),
            _slot: slot,
        };
        browser.resize(DESKTOP).await;
        Some(browser)
    }

    /// Returns the WebDriver client, for what the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and waits until the page has loaded.
    ///
    /// # Panics
    ///
    /// Panics when the page cannot be opened.
    pub async fn open(&self, url: &str) {
        if let Err(error) = self.client.goto(url).await {
            self.fail(&format!("open {url}: {error}")).await;
        }
    }

    /// Loads the current page again.
    ///
    /// # Panics
    ///
    /// Panics when the page cannot be loaded.
    pub async fn reload(&self) {
        if let Err(error) = self.client.refresh().await {
            self.fail(&format!("reload the page: {error}")).await;
        }
    }

    /// Returns the URL of the current page.
    ///
    /// # Panics
    ///
    /// Panics when chromedriver does not return it.
    pub async fn url(&self) -> url::Url {
        self.client
            .current_url()
            .await
            .unwrap_or_else(|error| panic!("read the current URL: {error}"))
    }

    /// Waits until the URL of the current page contains `expected`, as
    /// after a form submission or a redirect, and returns the URL.
    ///
    /// # Panics
    ///
    /// Panics after [`WAIT_TIMEOUT`] with the page's text.
    pub async fn wait_for_url(&self, expected: &str) -> url::Url {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        loop {
            let url = self.client.current_url().await;
            if let Ok(url) = &url {
                if url.as_str().contains(expected) {
                    return url.clone();
                }
            }
            if Instant::now() >= deadline {
                let seen = match url {
                    Ok(url) => url.to_string(),
                    Err(error) => format!("unreadable: {error}"),
                };
                let message = format!(
                    "timed out after {WAIT_TIMEOUT:?} waiting for a URL that contains \
                     {expected:?}; the last one was {seen}"
                );
                self.fail(&message).await;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until an element matches the CSS `selector`, and returns it.
    ///
    /// # Panics
    ///
    /// Panics after [`WAIT_TIMEOUT`] with the page's text.
    pub async fn find(&self, selector: &str) -> Element {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        loop {
            let error = match self.client.find(Locator::Css(selector)).await {
                Ok(element) => return element,
                Err(error) => error,
            };
            if Instant::now() >= deadline {
                let message = format!(
                    "no element matches `{selector}` after {WAIT_TIMEOUT:?}; last error: {error}"
                );
                self.fail(&message).await;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Returns the elements that match the CSS `selector` now, without
    /// waiting.
    ///
    /// # Panics
    ///
    /// Panics when chromedriver rejects the selector.
    pub async fn find_all(&self, selector: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(selector))
            .await
            .unwrap_or_else(|error| panic!("find the elements that match `{selector}`: {error}"))
    }

    /// Clicks the element that matches `selector`, once it exists.
    ///
    /// A click on a link or a submit button returns once the next page has
    /// started loading; wait for its text before reading it.
    ///
    /// # Panics
    ///
    /// Panics when no element matches within [`WAIT_TIMEOUT`] or the click
    /// fails, for example on a hidden element.
    pub async fn click(&self, selector: &str) {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        loop {
            let element = self.find(selector).await;
            let error = match element.click().await {
                Ok(()) => return,
                Err(error) => error,
            };
            // A page that reloads itself replaces the element between the
            // find and the click; the click did nothing then.
            if !error.is_stale_element_reference() || Instant::now() >= deadline {
                self.fail(&format!("click `{selector}`: {error}")).await;
            }
        }
    }

    /// Replaces the value of the field that matches `selector` with `text`,
    /// typed as keys.
    ///
    /// # Panics
    ///
    /// Panics when no field matches within [`WAIT_TIMEOUT`] or it takes no
    /// input.
    pub async fn fill(&self, selector: &str, text: &str) {
        let field = self.find(selector).await;
        let typed = async {
            field.clear().await?;
            field.send_keys(text).await
        };
        if let Err(error) = typed.await {
            self.fail(&format!("type {text:?} into `{selector}`: {error}"))
                .await;
        }
    }

    /// Chooses the option with `value` in the `<select>` that matches
    /// `selector`.
    ///
    /// # Panics
    ///
    /// Panics when no element matches within [`WAIT_TIMEOUT`] or it has no
    /// such option.
    pub async fn select(&self, selector: &str, value: &str) {
        let field = self.find(selector).await;
        if let Err(error) = field.select_by_value(value).await {
            self.fail(&format!("choose {value:?} in `{selector}`: {error}"))
                .await;
        }
    }

    /// Submits the form that matches `selector` as pressing Enter in it
    /// would: through `requestSubmit()`, which runs the form's validation
    /// and submit handlers.
    ///
    /// # Panics
    ///
    /// Panics when no form matches within [`WAIT_TIMEOUT`] or the script
    /// fails.
    pub async fn submit(&self, selector: &str) {
        let form = self.find(selector).await;
        let argument = serde_json::to_value(&form).expect("an element serializes to JSON");
        let submitted = self
            .client
            .execute("arguments[0].requestSubmit();", vec![argument])
            .await;
        if let Err(error) = submitted {
            self.fail(&format!("submit `{selector}`: {error}")).await;
        }
    }

    /// Returns the text of the page as rendered: `document.body.innerText`.
    ///
    /// # Errors
    ///
    /// - [`CmdError`] when the page is being replaced by the next one, or
    ///   chromedriver fails.
    pub async fn try_text(&self) -> Result<String, CmdError> {
        let text = self
            .client
            .execute(
                "return document.body ? document.body.innerText : '';",
                Vec::new(),
            )
            .await?;
        Ok(text.as_str().unwrap_or_default().to_owned())
    }

    /// Returns the text of the page as rendered.
    ///
    /// # Panics
    ///
    /// Panics when the text cannot be read.
    pub async fn text(&self) -> String {
        self.try_text()
            .await
            .unwrap_or_else(|error| panic!("read the page's text: {error}"))
    }

    /// Returns the rendered text of the element that matches `selector`.
    ///
    /// # Panics
    ///
    /// Panics when no element matches within [`WAIT_TIMEOUT`] or its text
    /// cannot be read.
    pub async fn text_of(&self, selector: &str) -> String {
        let element = self.find(selector).await;
        match element.text().await {
            Ok(text) => text,
            Err(error) => {
                self.fail(&format!("read the text of `{selector}`: {error}"))
                    .await
            }
        }
    }

    /// Returns the text content of each element that matches `selector`
    /// now, trimmed, in document order.
    ///
    /// # Errors
    ///
    /// - [`CmdError`] when the page is being replaced or chromedriver fails.
    pub async fn try_texts(&self, selector: &str) -> Result<Vec<String>, CmdError> {
        let texts = self
            .client
            .execute(
                "return Array.from(document.querySelectorAll(arguments[0]), \
                 (element) => element.textContent.trim());",
                vec![Value::from(selector)],
            )
            .await?;
        let texts = texts
            .as_array()
            .map(|texts| {
                texts
                    .iter()
                    .map(|text| text.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        Ok(texts)
    }

    /// Returns the text content of each element that matches `selector`,
    /// trimmed, in document order.
    ///
    /// # Panics
    ///
    /// Panics when the texts cannot be read.
    pub async fn texts(&self, selector: &str) -> Vec<String> {
        match self.try_texts(selector).await {
            Ok(texts) => texts,
            Err(error) => {
                self.fail(&format!("read the texts of `{selector}`: {error}"))
                    .await
            }
        }
    }

    /// Waits until the page's text contains `expected`, without reloading.
    ///
    /// # Panics
    ///
    /// Panics after [`WAIT_TIMEOUT`] with the page's text.
    pub async fn wait_for_text(&self, expected: &str) {
        self.wait_for_page(&format!("the text {expected:?}"), false, |text| {
            text.contains(expected)
        })
        .await;
    }

    /// Reloads the page until its text contains `expected`, for pages that
    /// show the database as it was when they loaded.
    ///
    /// # Panics
    ///
    /// Panics after [`WAIT_TIMEOUT`] with the page's text.
    pub async fn reload_until_text(&self, expected: &str) {
        self.wait_for_page(&format!("the text {expected:?}"), true, |text| {
            text.contains(expected)
        })
        .await;
    }

    /// Waits until `done` holds for the page's text, reloading the page
    /// before each read when `reload` is true, and returns the text.
    ///
    /// # Panics
    ///
    /// Panics after [`WAIT_TIMEOUT`] with `expected` and the page's text.
    pub async fn wait_for_page(
        &self,
        expected: &str,
        reload: bool,
        mut done: impl FnMut(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        let mut last_error = None;
        loop {
            if reload {
                if let Err(error) = self.client.refresh().await {
                    last_error = Some(error);
                }
            }
            // A read fails while a page is being replaced by the next one.
            match self.try_text().await {
                Ok(text) if done(&text) => return text,
                Ok(_) => {}
                Err(error) => last_error = Some(error),
            }
            if Instant::now() >= deadline {
                let mut message =
                    format!("timed out after {WAIT_TIMEOUT:?} waiting for {expected}");
                if let Some(error) = last_error {
                    message.push_str(&format!("; last error: {error}"));
                }
                self.fail(&message).await;
            }
            let pause = if reload {
                RELOAD_INTERVAL
            } else {
                POLL_INTERVAL
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// Resizes the window so that its viewport, where the page lays out
    /// and what a screenshot shows, is `size`.
    ///
    /// # Panics
    ///
    /// Panics when chromedriver cannot resize the window.
    pub async fn resize(&self, size: ViewportSize) {
        // Headless Chromium still counts a frame around the viewport in the
        // window's size, so the frame is measured and added.
        let frame = self
            .client
            .execute(
                "return [window.outerWidth - window.innerWidth, \
                 window.outerHeight - window.innerHeight];",
                Vec::new(),
            )
            .await
            .unwrap_or_else(|error| panic!("measure the window's frame: {error}"));
        let frame_side = |index: usize| {
            frame[index]
                .as_u64()
                .and_then(|pixels| u32::try_from(pixels).ok())
                .unwrap_or(0)
        };
        let (width, height) = (size.width + frame_side(0), size.height + frame_side(1));
        self.client
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|error| panic!("resize the window to {width}x{height}: {error}"));
    }

    /// Returns the width of the page's layout viewport, in CSS pixels.
    ///
    /// # Panics
    ///
    /// Panics when the script fails.
    pub async fn viewport_width(&self) -> u64 {
        self.number("return document.documentElement.clientWidth;")
            .await
    }

    /// Returns the width of the page's content, in CSS pixels: wider than
    /// [`viewport_width`](Browser::viewport_width) when the page scrolls
    /// sideways.
    ///
    /// # Panics
    ///
    /// Panics when the script fails.
    pub async fn content_width(&self) -> u64 {
        self.number("return document.documentElement.scrollWidth;")
            .await
    }

    async fn number(&self, script: &str) -> u64 {
        let value = self
            .client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|error| panic!("run `{script}`: {error}"));
        value
            .as_u64()
            .unwrap_or_else(|| panic!("`{script}` returned {value}, not a whole number"))
    }

    /// Saves a PNG screenshot of the window as `<name>.png` in the
    /// screenshot folder, and returns its path.
    ///
    /// # Panics
    ///
    /// Panics when the screenshot cannot be taken or written.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let path = self.screenshots.join(format!("{name}.png"));
        self.save_screenshot(&path)
            .await
            .unwrap_or_else(|error| panic!("save the screenshot {}: {error}", path.display()));
        path
    }

    async fn save_screenshot(&self, path: &Path) -> Result<(), String> {
        let png = self
            .client
            .screenshot()
            .await
            .map_err(|error| error.to_string())?;
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(|error| error.to_string())?;
        }
        std::fs::write(path, png).map_err(|error| error.to_string())
    }

    /// Panics with `message`, the page's URL and text, and the path of a
    /// screenshot of the page in the `failures` folder.
    async fn fail(&self, message: &str) -> ! {
        let url = match self.client.current_url().await {
            Ok(url) => url.to_string(),
            Err(error) => format!("(unknown: {error})"),
        };
        let text = match self.try_text().await {
            Ok(text) => text,
            Err(error) => format!("(unreadable: {error})"),
        };
        // The profile folder goes with the browser, so the log is copied
        // beside the screenshot.
        let stem =
            self.screenshots
                .join("failures")
                .join(format!("{}-{}", self.test, unique_suffix()));
        let path = stem.with_extension("png");
        let screenshot = match self.save_screenshot(&path).await {
            Ok(()) => format!("screenshot: {}", path.display()),
            Err(error) => format!("no screenshot: {error}"),
        };
        let log = stem.with_extension("chromedriver.log");
        let log = match std::fs::copy(&self.driver.log, &log) {
            Ok(_) => format!("chromedriver log: {}", log.display()),
            Err(error) => format!("no chromedriver log: {error}"),
        };
        panic!(
            "{message}\npage: {url}\n{screenshot}\n{log}\npage text:\n{}",
            indent(&text)
        );
    }
}

/// Returns a suffix that differs between calls in one process.
fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Indents each line of `text` by four spaces, and cuts it after 80 lines.
fn indent(text: &str) -> String {
    let mut lines: Vec<String> = text
        .lines()
        .take(80)
        .map(|line| format!("    {line}"))
        .collect();
    if text.lines().count() > 80 {
        lines.push("    ...".to_owned());
    }
    lines.join("\n")
}

/// Writes the line that reports a skipped browser test and its reason, or
/// panics when `QUICKSILVER_REQUIRE_BROWSER` is `1`.
fn skip(test: &str, missing: &str) {
    let reason = format!(
        "{missing}. Install Debian's chromium and chromium-driver packages, \
         or name the binaries in {CHROMIUM_VAR} and {CHROMEDRIVER_VAR}"
    );
    if std::env::var(REQUIRE_VAR).as_deref() == Ok("1") {
        panic!("{test}: {reason} ({REQUIRE_VAR}=1 makes a missing browser a failure)");
    }
    // Written to the process's stderr, past the test harness's capture, so
    // that the line shows in a passing run too.
    let line = format!("browser test {test} skipped: {reason}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// The paths of the two programs.
struct Programs {
    chromedriver: PathBuf,
    chromium: PathBuf,
}

impl Programs {
    /// Finds chromedriver and Chromium, or returns which is missing.
    fn find() -> Result<Programs, String> {
        let chromedriver = from_var(CHROMEDRIVER_VAR)?
            .or_else(|| on_path("chromedriver"))
            .ok_or("chromedriver is not on PATH")?;
        // Debian's /usr/bin/chromium is a shell script that adds the
        // switches in /etc/chromium.d, among them Google API keys and
        // remote extensions. The binary behind it takes only ours.
        let debian = Path::new("/usr/lib/chromium/chromium");
        let chromium = from_var(CHROMIUM_VAR)?
            .or_else(|| debian.is_file().then(|| debian.to_path_buf()))
            .or_else(|| on_path("chromium"))
            .or_else(|| on_path("chromium-browser"))
            .ok_or("Chromium is not installed: neither /usr/lib/chromium/chromium nor chromium on PATH exists")?;
        Ok(Programs {
            chromedriver,
            chromium,
        })
    }
}

/// Returns the path that the variable `name` sets, if it is set.
fn from_var(name: &str) -> Result<Option<PathBuf>, String> {
    let Some(value) = std::env::var_os(name) else {
        return Ok(None);
    };
    let path = PathBuf::from(value);
    if path.is_file() {
        Ok(Some(path))
    } else {
        Err(format!(
            "{name} names {}, which is not a file",
            path.display()
        ))
    }
}

/// Returns the first file called `program` in the folders of `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    let folders = std::env::var_os("PATH")?;
    std::env::split_paths(&folders)
        .map(|folder| folder.join(program))
        .find(|path| path.is_file())
}

/// A chromedriver process listening on a loopback port.
struct Driver {
    process: Child,
    port: u16,
    log: PathBuf,
}

impl Driver {
    /// Starts chromedriver on a port that the system picks, logging into
    /// `folder`, and waits for the line that gives the port.
    ///
    /// # Panics
    ///
    /// Panics when chromedriver cannot start or prints no port within
    /// [`START_TIMEOUT`].
    fn start(program: &Path, folder: &Path) -> Driver {
        let log = folder.join("chromedriver.log");
        let mut process = Command::new(program)
            .arg("--port=0")
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("start {}: {error}", program.display()));

        // chromedriver prints "ChromeDriver was started successfully on
        // port N." on stdout. The thread reads on until chromedriver exits,
        // so that a full pipe never blocks it.
        let stdout = process.stdout.take().expect("stdout is piped");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut printed = Vec::new();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(port) = parse_port(&line) {
                    let _ = sender.send(Ok(port));
                    break;
                }
                printed.push(line);
            }
            let _ = sender.send(Err(printed.join("\n")));
            for _ in lines {}
        });

        let mut driver = Driver {
            process,
            port: 0,
            log,
        };
        match receiver.recv_timeout(START_TIMEOUT) {
            Ok(Ok(port)) => driver.port = port,
            Ok(Err(printed)) => panic!(
                "{} exited without printing its port; it printed:\n{}",
                program.display(),
                indent(&printed)
            ),
            Err(_) => panic!(
                "{} printed no port within {START_TIMEOUT:?}",
                program.display()
            ),
        }
        driver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Returns the port of chromedriver's start line.
fn parse_port(line: &str) -> Option<u16> {
    let rest = line.split("started successfully on port ").nth(1)?;
    rest.trim_end_matches('.').trim().parse().ok()
}

impl Drop for Driver {
    /// Asks chromedriver to shut down, which closes its browsers, and kills
    /// it when it does not exit in time. A killed chromedriver leaves its
    /// Chromium running, so the kill is the fallback only.
    fn drop(&mut self) {
        if self.port != 0 {
            if let Err(error) = request_shutdown(self.port) {
                eprintln!(
                    "ask chromedriver on port {} to shut down: {error}",
                    self.port
                );
            }
        }
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        while Instant::now() < deadline {
            match self.process.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) => std::thread::sleep(POLL_INTERVAL),
                Err(_) => break,
            }
        }
        eprintln!(
            "chromedriver (pid {}) did not exit within {SHUTDOWN_TIMEOUT:?} of its shutdown; \
             killing it, which may leave its Chromium running",
            self.process.id()
        );
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Sends `GET /shutdown` to chromedriver on `port` and reads the response.
fn request_shutdown(port: u16) -> std::io::Result<()> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, SHUTDOWN_TIMEOUT)?;
    stream.set_read_timeout(Some(SHUTDOWN_TIMEOUT))?;
    stream.set_write_timeout(Some(SHUTDOWN_TIMEOUT))?;
    let request =
        format!("GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    Ok(())
}

/// Opens a WebDriver session of headless Chromium at `chromium`, with its
/// profile in `folder`.
///
/// # Panics
///
/// Panics when the session does not open within [`START_TIMEOUT`].
async fn open_session(driver: &Driver, chromium: &Path, folder: &Path) -> Client {
    let profile = folder.join("profile");
    let mut arguments: Vec<String> = CHROMIUM_SWITCHES.iter().map(|s| s.to_string()).collect();
    arguments.push(format!("--user-data-dir={}", profile.display()));
    arguments.push(format!(
        "--window-size={},{}",
        DESKTOP.width, DESKTOP.height
    ));

    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".to_owned(), json!("chrome"));
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({ "binary": chromium, "args": arguments }),
    );
    capabilities.insert("pageLoadStrategy".to_owned(), Value::from("normal"));

    let mut builder = ClientBuilder::new(HttpConnector::new());
    builder.capabilities(capabilities);
    let connected = tokio::time::timeout(START_TIMEOUT, builder.connect(&driver.url())).await;
    match connected {
        Ok(Ok(client)) => client,
        Ok(Err(error)) => panic!(
            "open a session of {} through chromedriver: {error}\nchromedriver log:\n{}",
            chromium.display(),
            indent(&log_tail(&driver.log))
        ),
        Err(_) => panic!(
            "{} opened no session within {START_TIMEOUT:?}\nchromedriver log:\n{}",
            chromium.display(),
            indent(&log_tail(&driver.log))
        ),
    }
}

/// Returns the last 40 lines of the log at `path`.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_comes_from_start_line() {
        let line = "ChromeDriver was started successfully on port 34261.";
        assert_eq!(parse_port(line), Some(34261));
        assert_eq!(parse_port("Only local connections are allowed."), None);
    }
}
