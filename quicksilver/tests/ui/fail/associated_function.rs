//! The generated registration is a module-level item, so a command cannot be
//! an associated function, and the compiler says so in its own words.

use quicksilver::Context;

struct Mailer;

impl Mailer {
    #[quicksilver::command]
    async fn send(_ctx: &Context) {}
}

fn main() {}
