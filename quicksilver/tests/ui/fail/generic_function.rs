use quicksilver::Context;

#[quicksilver::command]
async fn greet<A: clap::Parser, const N: usize>(_ctx: &Context, _args: A) {}

fn main() {}
