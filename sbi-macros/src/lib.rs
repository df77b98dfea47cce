//! The `#[simulator]` attribute and the `sample!` site marker of the sbi toolkit.
//!
//! Use them through `sbi_runtime` (`use sbi_runtime::prelude::*;`), which documents the
//! language. This crate turns one annotated function into a parameter struct, a prior and
//! a simulator: the private module `ast` reads the function, `valid` checks every rule and
//! collects all mistakes in one `ctxt::Ctxt`, and `expand` writes the code.

mod ast;
mod ctxt;
mod digest;
mod expand;
mod valid;

use proc_macro::TokenStream;

/// Turns a function into a model: a `…Params` struct, a `…Prior` and a simulator struct.
///
/// The function's first statements are prior sites `let name = sample!(DIST);` (or
/// `sample!(DIST; N)` for `N` coordinates); the rest is the simulator. It takes an rng
/// (`rng: &mut impl Rng`) and, optionally, settings that become fields of the simulator
/// struct; it returns the observation. See `sbi_runtime` for the full description.
#[proc_macro_attribute]
pub fn simulator(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::simulator(args.into(), input.into()).into()
}

/// Declares a prior site. Only valid as `let name = sample!(DIST);` (or `sample!(DIST; N)`)
/// at the start of a `#[simulator]` function, which removes it; anywhere else it is a
/// compile error.
#[proc_macro]
pub fn sample(_input: TokenStream) -> TokenStream {
    // The call site of a function-like macro spans the whole `sample!(...)` invocation.
    syn::Error::new(
        proc_macro2::Span::call_site(),
        "`sample!` declares a prior site and only works as `let name = sample!(...);` \
         at the start of a function marked `#[simulator]`",
    )
    .to_compile_error()
    .into()
}
