use std::rc::Rc;

use quicksilver::Context;

#[quicksilver::command]
async fn report(_ctx: &Context) -> Result<(), std::io::Error> {
    let counter = Rc::new(0);
    std::future::ready(()).await;
    drop(counter);
    Ok(())
}

fn main() {}
