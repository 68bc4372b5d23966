use quicksilver::Context;

#[quicksilver::command(name = "report", timeout = 30)]
async fn report(_ctx: &Context) {}

fn main() {}
