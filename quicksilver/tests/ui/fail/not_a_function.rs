#[quicksilver::command]
struct Report;

fn main() {}
