//! The proc macros of [`flow-machine`](https://docs.rs/flow-machine): `#[flow::machine]` and
//! `#[state]`, documented there with every key.
//!
//! `#[flow::machine]` is a pipeline: `ast` parses the module into our own view of it,
//! `attr` reads each `#[state(...)]`, `valid` checks the whole graph and collects every
//! error, and `expand` generates the code. Users depend on `flow-machine` (whose library is
//! `flow`), which re-exports these.
#![forbid(unsafe_code)]

mod ast;
mod attr;
mod expand;
mod outside;
mod suggest;
mod valid;

use proc_macro::TokenStream;

/// The generated code names `::flow::...` paths: use the macro through the `flow-machine`
/// package (`use flow::...`), not this crate directly.
#[proc_macro_attribute]
pub fn machine(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = attr::Errors::default();
    let machine = match ast::Machine::parse(args.into(), input.into(), &mut errors) {
        Ok(machine) => machine,
        Err(error) => return error.into_compile_error().into(),
    };
    valid::check(&machine, &mut errors);
    match errors.finish() {
        Ok(()) => expand::machine(&machine),
        // The module stays, with inert states, so the errors are all the user sees.
        Err(error) => {
            let mut output = error.into_compile_error();
            output.extend(expand::stand_in(&machine));
            output
        }
    }
    .into()
}

/// `#[state]` does nothing by itself: `#[flow::machine]` reads and removes it. Used anywhere
/// else, it is a compile error.
#[proc_macro_attribute]
pub fn state(_args: TokenStream, input: TokenStream) -> TokenStream {
    let call_site = proc_macro::Span::call_site();
    let Ok(func) = syn::parse::<syn::ItemFn>(input.clone()) else {
        let error = syn::Error::new(
            call_site.into(),
            "#[state] goes on an async fn inside a #[flow::machine] module",
        );
        let mut output = error.into_compile_error();
        output.extend(proc_macro2::TokenStream::from(input));
        return output.into();
    };
    // A module that lacks #[flow::machine] has several states: one error says so, and the fns
    // stay, inert, so that nothing else is reported about them.
    let mut output = proc_macro2::TokenStream::new();
    if outside::first_in_file(call_site) {
        output.extend(
            syn::Error::new(
                call_site.into(),
                "#[state] only works on an async fn inside a #[flow::machine] module\n\
                 = help: put the states in a module marked #[flow::machine]: \
                 `#[flow::machine] pub mod checkout { use super::*; ... }`",
            )
            .into_compile_error(),
        );
    }
    output.extend(quote::ToTokens::into_token_stream(expand::inert(&func, false)));
    output.into()
}
