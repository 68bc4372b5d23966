use quicksilver::Context;

#[quicksilver::command]
fn heartbeat(_ctx: &Context) {}

fn main() {}
