//! Functions of the same name in different modules, each registered with its
//! own module path, and a command declared inside a function body.

use quicksilver::Context;

#[quicksilver::command(name = "outer.cleanup")]
async fn cleanup(_ctx: &Context) {}

mod jobs {
    pub(crate) mod nightly {
        use quicksilver::Context;

        #[quicksilver::command(name = "nightly.cleanup")]
        async fn cleanup(_ctx: &Context) {}
    }
}

fn main() {
    #[quicksilver::command]
    async fn local_cleanup(_ctx: &Context) {}

    let outer = quicksilver::find_command("outer.cleanup").expect("`outer.cleanup` is registered");
    assert_eq!(outer.module(), module_path!());

    let nightly =
        quicksilver::find_command("nightly.cleanup").expect("`nightly.cleanup` is registered");
    assert_eq!(
        nightly.module(),
        format!("{}::jobs::nightly", module_path!())
    );

    assert!(quicksilver::find_command("local_cleanup").is_some());
    assert!(quicksilver::duplicate_commands().is_empty());
}
