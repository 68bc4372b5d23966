//! A command with no return type and a context it does not use.

#[quicksilver::command]
async fn nothing(_ctx: &quicksilver::Context) {}

fn main() {
    assert!(quicksilver::find_command("nothing").is_some());
}
