//! The e-mail sink: alerts over SMTP through lettre.

/// Placeholder replaced by the e-mail sink.
#[derive(Debug)]
pub struct EmailSink;

/// Placeholder replaced by the e-mail sink's error.
#[derive(Debug, thiserror::Error)]
#[error("e-mail")]
pub struct EmailError;
