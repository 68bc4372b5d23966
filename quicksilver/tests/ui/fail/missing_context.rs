#[quicksilver::command]
async fn heartbeat() {}

fn main() {}
