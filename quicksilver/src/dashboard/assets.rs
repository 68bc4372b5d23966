//! The style sheet and the script, compiled into the binary and served
//! under a path that changes with their content, so that browsers may
//! cache them for a year.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The style sheet's file name.
pub(super) const STYLE: &str = "dashboard.css";

/// The script's file name.
pub(super) const SCRIPT: &str = "dashboard.js";

const STYLE_TEXT: &str = include_str!("assets/dashboard.css");
const SCRIPT_TEXT: &str = include_str!("assets/dashboard.js");

/// Returns the version segment of the asset paths: a hash of both files.
pub(super) fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        // FNV-1a: stable across builds and Rust versions.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in STYLE_TEXT.bytes().chain(SCRIPT_TEXT.bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{hash:016x}")
    })
}

/// Returns the link to the asset `file` from a page whose root is `base`.
pub(super) fn href(base: &str, file: &str) -> String {
    format!("{base}assets/{}/{file}", version())
}

/// Serves an asset of the current version. Other versions and names get
/// 404, so a cached page of an older build never gets new files under an
/// old name.
pub(super) async fn serve(Path((version_segment, file)): Path<(String, String)>) -> Response {
    let (text, content_type) = match file.as_str() {
        STYLE => (STYLE_TEXT, "text/css; charset=utf-8"),
        SCRIPT => (SCRIPT_TEXT, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "404 Not Found: no such asset\n").into_response(),
    };
    if version_segment != version() {
        return (
            StatusCode::NOT_FOUND,
            "404 Not Found: this asset version is not served; reload the page\n",
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        text,
    )
        .into_response()
}
