use quicksilver::Context;

#[quicksilver::command("report")]
async fn report(_ctx: &Context) {}

fn main() {}
