use quicksilver::Context;

#[derive(clap::Parser)]
struct ReportArgs {}

#[quicksilver::command]
async fn report(_ctx: &Context, _args: &ReportArgs) {}

#[quicksilver::command]
async fn rebuild(_ctx: &Context, _args: impl clap::Parser) {}

fn main() {}
