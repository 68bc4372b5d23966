use quicksilver::Context;

#[derive(clap::Parser)]
struct Args {}

#[quicksilver::command]
async fn greet(_ctx: &Context, _args: Args, _extra: u32, _more: bool) {}

fn main() {}
