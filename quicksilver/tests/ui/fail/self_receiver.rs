use quicksilver::Context;

struct Mailer;

impl Mailer {
    #[quicksilver::command]
    async fn send(&self, _ctx: &Context) {}
}

fn main() {}
