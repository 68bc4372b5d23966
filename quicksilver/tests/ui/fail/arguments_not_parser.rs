use quicksilver::Context;

struct ReportArgs {
    _days: u32,
}

#[quicksilver::command]
async fn report(_ctx: &Context, _args: ReportArgs) {}

fn main() {}
