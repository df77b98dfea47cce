//! The `#[simulator]` language at compile time: one compile-fail case per rule (with its
//! expected message in the `.stderr` beside it) and cases that must compile.
//! Regenerate the messages after a deliberate change with `TRYBUILD=overwrite cargo test --test compile`.

#[test]
fn simulator_macro_rules() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
