//! Commands that choose their next run, directly or inside `Ok`.

use std::time::Duration;

use quicksilver::{Context, NextRun};

#[quicksilver::command]
async fn poll_feed(_ctx: &Context) -> NextRun {
    NextRun::After(Duration::from_secs(5))
}

#[quicksilver::command]
async fn poll_mailbox(_ctx: &Context) -> Result<NextRun, std::fmt::Error> {
    Ok(NextRun::Schedule)
}

fn main() {
    assert!(quicksilver::find_command("poll_feed").is_some());
    assert!(quicksilver::find_command("poll_mailbox").is_some());
}
