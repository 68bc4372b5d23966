//! Execution output: what a command writes and the `tracing` events it emits
//! during its run, capped in size.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context as LayerContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The maximum size of an execution's output, in bytes: 1 MiB.
///
/// Output past it is dropped and a line saying how much was dropped ends
/// the stored output.
pub const OUTPUT_LIMIT: usize = 1024 * 1024;

/// The name of the span each run executes in.
pub(crate) const EXECUTION_SPAN: &str = "quicksilver.execution";

/// The bounded text of one execution's output.
#[derive(Debug)]
pub(crate) struct OutputBuffer {
    state: Mutex<BufferState>,
    limit: usize,
    echo: bool,
}

#[derive(Debug, Default)]
struct BufferState {
    text: String,
    dropped: usize,
}

impl OutputBuffer {
    pub(crate) fn new(limit: usize, echo: bool) -> Self {
        OutputBuffer {
            state: Mutex::new(BufferState::default()),
            limit,
            echo,
        }
    }

    /// Appends `text`, keeping at most the limit and counting the rest.
    pub(crate) fn push(&self, text: &str) {
        if self.echo {
            let mut stdout = std::io::stdout().lock();
            // A closed stdout must not fail the command that writes.
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.limit.saturating_sub(state.text.len());
        if text.len() <= room {
            state.text.push_str(text);
        } else {
            let mut cut = room;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            state.text.push_str(&text[..cut]);
            state.dropped += text.len() - cut;
        }
    }

    /// Returns the output so far, with the truncation marker when some was
    /// dropped.
    pub(crate) fn contents(&self) -> String {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.dropped == 0 {
            return state.text.clone();
        }
        // The marker replaces the end of the kept text, so that the whole
        // stays within the limit. Cutting more can lengthen the count in the
        // marker by a digit, hence the loop.
        let mut keep = state.text.len();
        let marker = loop {
            while !state.text.is_char_boundary(keep) {
                keep -= 1;
            }
            let dropped = state.dropped + (state.text.len() - keep);
            let marker = format!(
                "\n[output truncated: {dropped} more bytes were dropped past the {} byte limit]",
                self.limit
            );
            let over = (keep + marker.len()).saturating_sub(self.limit);
            if over == 0 || keep == 0 {
                break marker;
            }
            keep = keep.saturating_sub(over);
        };
        let mut text = String::with_capacity(keep + marker.len());
        text.push_str(&state.text[..keep]);
        text.push_str(&marker);
        text
    }
}

/// Buffers of running executions, by output key, for the capture layer.
///
/// The key is unique in the process, unlike execution ids, which repeat
/// when one process uses several databases.
fn active() -> &'static Mutex<HashMap<u64, Arc<OutputBuffer>>> {
    static ACTIVE: OnceLock<Mutex<HashMap<u64, Arc<OutputBuffer>>>> = OnceLock::new();
    ACTIVE.get_or_init(Mutex::default)
}

static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

static LAYER_INSTALLED: AtomicBool = AtomicBool::new(false);

/// Returns whether a [`capture_layer`] is part of a registered subscriber.
pub(crate) fn capture_installed() -> bool {
    LAYER_INSTALLED.load(Ordering::Relaxed)
}

/// Makes `buffer` the destination of events in spans whose `output.key`
/// field is the returned registration's key, until the registration drops.
pub(crate) fn register(buffer: Arc<OutputBuffer>) -> Registration {
    let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
    active()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, buffer);
    Registration { key }
}

pub(crate) struct Registration {
    key: u64,
}

impl Registration {
    pub(crate) fn key(&self) -> u64 {
        self.key
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        active()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

/// Returns a `tracing` layer that copies the events a command emits during
/// a run into that execution's output.
///
/// Add it to the host's subscriber. Without it the output contains only what
/// commands write to their [`Context`](crate::Context), and the runner logs
/// a warning about it once at start.
///
/// # Examples
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// tracing_subscriber::registry()
///     .with(tracing_subscriber::fmt::layer())
///     .with(quicksilver::capture_layer())
///     .init();
/// ```
pub fn capture_layer() -> CaptureLayer {
    CaptureLayer { _private: () }
}

/// The layer returned by [`capture_layer`].
#[derive(Debug)]
pub struct CaptureLayer {
    _private: (),
}

struct SpanBuffer(Arc<OutputBuffer>);

impl<S> Layer<S> for CaptureLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, _subscriber: &tracing::Dispatch) {
        LAYER_INSTALLED.store(true, Ordering::Relaxed);
    }

    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: LayerContext<'_, S>) {
        if attributes.metadata().name() != EXECUTION_SPAN {
            return;
        }
        let mut visitor = OutputKeyVisitor(None);
        attributes.record(&mut visitor);
        let Some(key) = visitor.0 else {
            return;
        };
        let buffer = active()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let (Some(buffer), Some(span)) = (buffer, context.span(id)) {
            span.extensions_mut().insert(SpanBuffer(buffer));
        }
    }

    fn on_event(&self, event: &Event<'_>, context: LayerContext<'_, S>) {
        let Some(scope) = context.event_scope(event) else {
            return;
        };
        for span in scope {
            let extensions = span.extensions();
            if let Some(SpanBuffer(buffer)) = extensions.get::<SpanBuffer>() {
                let metadata = event.metadata();
                let mut line = format!("{} {}: ", metadata.level(), metadata.target());
                event.record(&mut LineVisitor(&mut line));
                line.push('\n');
                buffer.push(&line);
                return;
            }
        }
    }
}

struct OutputKeyVisitor(Option<u64>);

impl Visit for OutputKeyVisitor {
    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "output.key" {
            self.0 = u64::try_from(value).ok();
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "output.key" {
            self.0 = Some(value);
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn fmt::Debug) {}
}

/// Formats an event as `message key=value key=value`.
struct LineVisitor<'a>(&'a mut String);

impl Visit for LineVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_cuts_at_limit_with_marker() {
        let buffer = OutputBuffer::new(200, false);
        buffer.push(&"a".repeat(150));
        buffer.push(&"b".repeat(100));
        let text = buffer.contents();
        assert_eq!(text.len(), 200, "{text}");
        assert!(text.starts_with(&"a".repeat(100)), "{text}");
        assert!(text.ends_with("byte limit]"), "{text}");
        let kept = text.find('\n').unwrap();
        let dropped = 250 - kept;
        assert!(text.contains(&format!(" {dropped} more bytes")), "{text}");
    }

    #[test]
    fn buffer_cuts_on_char_boundary() {
        let buffer = OutputBuffer::new(5, false);
        buffer.push("abcdé");
        let text = buffer.contents();
        assert!(!text.contains('\u{fffd}'), "{text}");
        assert!(text.contains("[output truncated"), "{text}");
    }

    #[test]
    fn buffer_under_limit_has_no_marker() {
        let buffer = OutputBuffer::new(100, false);
        buffer.push("fine\n");
        assert_eq!(buffer.contents(), "fine\n");
    }
}
