//! Compile tests of `#[quicksilver::command]`: the cases under `ui/pass`
//! build and run, and each case under `ui/fail` fails with the errors in its
//! `.stderr` file. Run with `TRYBUILD=overwrite` to rewrite those files after
//! a deliberate change to a message.

#[test]
fn macro_ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
