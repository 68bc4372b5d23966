//! A command whose second parameter is parsed from the task's arguments.

use quicksilver::Context;

#[derive(clap::Parser)]
struct GreetArgs {
    #[arg(long, default_value = "world")]
    name: String,
}

#[quicksilver::command]
async fn greet(ctx: &Context, args: GreetArgs) -> Result<(), String> {
    ctx.write_line(format!("hello, {}", args.name));
    Ok(())
}

fn main() {
    let command = quicksilver::find_command("greet").expect("`greet` is registered");
    assert!(!command.is_locked());
}
