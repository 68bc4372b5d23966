use quicksilver::Context;

#[quicksilver::command(name = "")]
async fn report(_ctx: &Context) {}

fn main() {}
