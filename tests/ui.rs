//! Compile-time checks: every wiring mistake is refused with a spanned, actionable error
//! (`tests/ui/*.rs`, each beside the `.stderr` a user would see), and every DSL form compiles
//! (`tests/ui/pass/*.rs`).

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
