use quicksilver::Context;

const NAME: &str = "report";

#[quicksilver::command(name = NAME)]
async fn report(_ctx: &Context) {}

#[quicksilver::command(name)]
async fn rebuild(_ctx: &Context) {}

fn main() {}
