//! A command with only the context, registered under its function's name.

#[quicksilver::command]
async fn heartbeat(ctx: &quicksilver::Context) -> Result<(), std::io::Error> {
    ctx.write_line("alive");
    Ok(())
}

fn main() {
    let command = quicksilver::find_command("heartbeat").expect("`heartbeat` is registered");
    assert_eq!(command.name(), "heartbeat");
    assert!(!command.is_locked());
    assert_eq!(command.module(), module_path!());
}
