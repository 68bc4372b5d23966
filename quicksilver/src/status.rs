//! The status report: the original's `{"issues": [...], "status": ...}`.
