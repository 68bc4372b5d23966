use quicksilver::Context;

#[quicksilver::command(name = "daily report")]
async fn report(_ctx: &Context) {}

#[quicksilver::command(name = "reports/daily")]
async fn daily(_ctx: &Context) {}

#[quicksilver::command]
async fn café(_ctx: &Context) {}

fn main() {}
