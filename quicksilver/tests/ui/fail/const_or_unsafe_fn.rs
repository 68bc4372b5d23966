use quicksilver::Context;

#[quicksilver::command]
const async fn report(_ctx: &Context) {}

#[quicksilver::command]
async unsafe fn rebuild(_ctx: &Context) {}

fn main() {}
