//! Compile tests of `#[quicksilver::command]`: the cases under `ui/pass`
//! build and run, and each case under `ui/fail` fails with the errors in its
//! `.stderr` file. Run with `TRYBUILD=overwrite` to rewrite those files after
//! a deliberate change to a message. The expected messages are those of
//! the workspace's test run (`cargo test --workspace`): the optional
//! features it turns on link crates that make rustc spell `Send` in full.

#[test]
fn macro_ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
