//! A command registered under a name other than its function's, with every
//! kind of character that a name may contain.

use quicksilver::Context;

#[quicksilver::command(name = "Reports.send-daily_2")]
async fn send_daily_report(_ctx: &Context) {}

fn main() {
    assert!(quicksilver::find_command("Reports.send-daily_2").is_some());
    assert!(quicksilver::find_command("send_daily_report").is_none());
}
