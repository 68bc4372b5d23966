//! The generated registration is an anonymous constant, which an `impl` block
//! cannot contain, so a command cannot be an associated function. The error
//! comes from the compiler, not from the macro.

use quicksilver::Context;

struct Mailer;

impl Mailer {
    #[quicksilver::command]
    async fn send(_ctx: &Context) {}
}

fn main() {}
