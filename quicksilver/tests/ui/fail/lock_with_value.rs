use quicksilver::Context;

#[quicksilver::command(lock = true)]
async fn report(_ctx: &Context) {}

#[quicksilver::command(lock = false)]
async fn rebuild(_ctx: &Context) {}

fn main() {}
