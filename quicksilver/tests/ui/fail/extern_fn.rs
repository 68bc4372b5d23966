use quicksilver::Context;

#[quicksilver::command]
async extern "C" fn report(_ctx: &Context) {}

fn main() {}
