//! Exclusive commands, with the options in either order.

use quicksilver::Context;

#[derive(clap::Parser)]
struct SyncArgs {
    #[arg(long)]
    full: bool,
}

#[quicksilver::command(name = "sync", lock)]
async fn synchronize(_ctx: &Context, args: SyncArgs) -> anyhow_like::Result<()> {
    let _ = args.full;
    Ok(())
}

#[quicksilver::command(lock, name = "rebuild")]
async fn rebuild(_ctx: &Context) {}

#[quicksilver::command(lock)]
async fn compact(_ctx: &Context) {}

/// A stand-in for `anyhow::Result`, whose error is any boxed error.
mod anyhow_like {
    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
}

fn main() {
    for name in ["sync", "rebuild", "compact"] {
        let command = quicksilver::find_command(name).expect("the command is registered");
        assert!(command.is_locked(), "`{name}` is locked");
    }
}
