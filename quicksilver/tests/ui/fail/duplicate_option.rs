use quicksilver::Context;

#[quicksilver::command(name = "a", lock, name = "b")]
async fn report(_ctx: &Context) {}

#[quicksilver::command(lock, lock)]
async fn rebuild(_ctx: &Context) {}

fn main() {}
