//! The proc macros of [`flow`](https://docs.rs/flow): `#[flow::machine]` and `#[state]`.
//!
//! `#[flow::machine]` is a pipeline: `ast` parses the module into our own view of it,
//! `attr` reads each `#[state(...)]`, `valid` checks the whole graph and collects every
//! error, and `expand` generates the code. Users depend on `flow`, which re-exports these.
#![forbid(unsafe_code)]

mod ast;
mod attr;
mod expand;
mod suggest;
mod valid;

use proc_macro::TokenStream;

/// Turns a module of `#[state]` async fns into a typed state machine.
///
/// See the `flow` crate's documentation for the DSL.
#[proc_macro_attribute]
pub fn machine(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = attr::Errors::default();
    let expanded =
        ast::Machine::parse(args.into(), input.into(), &mut errors).and_then(|machine| {
            valid::check(&machine, &mut errors);
            errors.finish().map(|()| expand::machine(&machine))
        });
    expanded.unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Marks an `async fn` as a state of the enclosing `#[flow::machine]` module.
///
/// Inert: `#[flow::machine]` reads and removes it. Used anywhere else, it is an error.
#[proc_macro_attribute]
pub fn state(_args: TokenStream, input: TokenStream) -> TokenStream {
    let input = proc_macro2::TokenStream::from(input);
    let mut error = syn::Error::new(
        proc_macro2::Span::call_site(),
        "#[state] only works on an async fn inside a #[flow::machine] module\n\
         = help: put this fn in a module marked #[flow::machine]",
    )
    .into_compile_error();
    error.extend(input);
    error.into()
}
