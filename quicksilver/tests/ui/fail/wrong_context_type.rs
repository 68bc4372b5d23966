#[quicksilver::command]
async fn report(_ctx: &String) {}

fn main() {}
