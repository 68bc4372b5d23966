//! Functions named like the locals of the generated entry point, a raw
//! identifier, and explicit lifetimes, none of which confuse the expansion.

use quicksilver::Context;

#[derive(clap::Parser)]
struct Arguments {
    #[arg(long)]
    verbose: bool,
}

#[quicksilver::command]
async fn context(_ctx: &Context) {}

#[quicksilver::command]
async fn arguments(_ctx: &Context, arguments: Arguments) {
    let _ = arguments.verbose;
}

#[quicksilver::command]
async fn output<'a>(_context: &'a Context) {}

#[quicksilver::command]
async fn r#type(_ctx: &Context) {}

fn main() {
    for name in ["context", "arguments", "output", "type"] {
        assert!(
            quicksilver::find_command(name).is_some(),
            "`{name}` is registered"
        );
    }
}
