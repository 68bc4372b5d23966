//! A documented `pub(crate)` command with other attributes, which the macro
//! keeps as written.

#![deny(missing_docs, unused)]

/// Sends the daily digest.
///
/// The function stays callable like any other.
#[quicksilver::command(name = "digest")]
#[allow(clippy::unused_async)]
pub(crate) async fn send_digest(_ctx: &quicksilver::Context) -> Result<(), std::io::Error> {
    Ok(())
}

fn main() {
    assert!(quicksilver::find_command("digest").is_some());
}
