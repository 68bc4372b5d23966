//! Every problem is reported in one build, in the options and in the
//! function alike.

use quicksilver::Context;

#[quicksilver::command(name = "", colour = "red", lock = true)]
fn report<T>(_ctx: Context, _a: T, _b: u32) {}

fn main() {}
