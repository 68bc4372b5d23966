use quicksilver::Context;

#[quicksilver::command]
async fn count(_ctx: &Context) -> i32 {
    1
}

#[quicksilver::command]
async fn count_or_fail(_ctx: &Context) -> Result<i32, std::io::Error> {
    Ok(1)
}

fn main() {}
