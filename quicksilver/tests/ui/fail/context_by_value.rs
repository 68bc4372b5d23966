use quicksilver::Context;

#[quicksilver::command]
async fn report(_ctx: Context) {}

#[quicksilver::command]
async fn rebuild(_ctx: &mut Context) {}

fn main() {}
