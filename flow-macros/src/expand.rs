//! Code generation for a validated machine. Nothing here checks user input: [`valid`] did.
//!
//! Inside the user's module this adds:
//! - `State`, the state enum (serde, `Debug`, `Clone`), one variant per state;
//! - one next type per non-end state (`Validate` for `validate`), with a variant per target;
//! - `Goto` impls for exactly the declared edges, and the target constructors `goto!` uses;
//! - `Machine`, implementing `flow::Machine`; the static graph; `run` and `graph`.
//!
//! [`valid`]: crate::valid

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, Type};

use crate::ast::{Machine, State, type_text};
use crate::attr::{Jitter, OnFailure};
use crate::suggest;

/// Runs that enter this many states without ending fail, unless `max_steps` says otherwise.
const DEFAULT_MAX_STEPS: u64 = 10_000;

pub fn machine(machine: &Machine) -> TokenStream {
    let attrs = &machine.attrs;
    let vis = &machine.vis;
    let ident = &machine.ident;
    let items = &machine.items;
    let fns = machine.states.iter().map(|state| &state.func);
    let state_enum = state_enum(machine);
    let next_types = machine
        .states
        .iter()
        .filter(|s| !s.is_end() && !s.is_branch_end())
        .map(|s| if s.splits() { fork_type(machine, s) } else { next_type(machine, s) });
    let targets = targets(machine);
    let machine_impl = machine_impl(machine);
    let graph = graph(machine);
    let signal_impls = signal_impls(machine);
    let stored = stored(machine);
    quote! {
        #(#attrs)*
        #vis mod #ident {
            #(#items)*
            #(#fns)*
            #state_enum
            #(#next_types)*
            #targets
            #machine_impl
            #signal_impls
            #stored
            #graph
        }
    }
}

/// The module as it stands in for the machine when the macro reports errors: the user's items,
/// each state fn with a body that does nothing, and an empty stand-in for each next type.
///
/// Dropping the module instead would add noise to the real errors: an `unused import` warning
/// for every `use` the states needed, and an unresolved name wherever a helper's signature
/// names a next type.
pub fn stand_in(machine: &Machine) -> TokenStream {
    let attrs = &machine.attrs;
    let vis = &machine.vis;
    let ident = &machine.ident;
    let items = &machine.items;
    let taken: Vec<Ident> = items.iter().filter_map(item_ident).collect();
    let mut next_types: Vec<Ident> = Vec::new();
    for state in &machine.states {
        let name = state.variant();
        if !taken.contains(&name) && !next_types.contains(&name) {
            next_types.push(name);
        }
    }
    // A name declared twice is reported; the stand-in defines it once.
    let mut defined: Vec<&Ident> = Vec::new();
    let fns = machine.states.iter().filter(|state| {
        let first = !defined.contains(&&state.ident);
        defined.push(&state.ident);
        first
    });
    let fns = fns.map(|state| inert(&state.func, crate::valid::returns_ok(state)));
    // The states' bodies are gone, so helpers they called would be reported unused.
    quote! {
        #(#attrs)*
        #[allow(unused)]
        #vis mod #ident {
            #(#items)*
            #(#fns)*
            #(pub enum #next_types {})*
        }
    }
}

/// `func` as a fn that does nothing, for a state whose machine could not be generated: its
/// parameters keep their types, so the imports they use stay used; its body goes, as it names
/// generated items (`goto!`), and so does its return type unless `keep_return`.
pub fn inert(func: &syn::ItemFn, keep_return: bool) -> syn::ItemFn {
    let mut func = func.clone();
    func.attrs.retain(|attr| attr.path().segments.last().is_none_or(|s| s.ident != "state"));
    func.attrs.push(syn::parse_quote!(#[allow(unused)]));
    // A receiver is an error of its own in a free fn; the macro has reported it already.
    func.sig.inputs = func
        .sig
        .inputs
        .into_iter()
        .filter_map(|input| match input {
            syn::FnArg::Typed(mut typed) => {
                typed.attrs.retain(|attr| !attr.path().is_ident("signal"));
                Some(syn::FnArg::Typed(typed))
            }
            syn::FnArg::Receiver(_) => None,
        })
        .collect();
    if keep_return {
        func.block = Box::new(syn::parse_quote!({ loop {} }));
    } else {
        func.sig.output = syn::ReturnType::Default;
        func.block = Box::new(syn::parse_quote!({}));
    }
    func
}

/// The name an item defines in the type namespace, if any.
fn item_ident(item: &syn::Item) -> Option<Ident> {
    match item {
        syn::Item::Enum(item) => Some(item.ident.clone()),
        syn::Item::Struct(item) => Some(item.ident.clone()),
        syn::Item::Type(item) => Some(item.ident.clone()),
        syn::Item::Union(item) => Some(item.ident.clone()),
        syn::Item::Trait(item) => Some(item.ident.clone()),
        syn::Item::Mod(item) => Some(item.ident.clone()),
        _ => None,
    }
}

/// The context type (validation ensured every state takes it by `&mut`).
fn context(machine: &Machine) -> Type {
    machine.context().map_or_else(|| syn::parse_quote!(()), |(_, ty)| ty.clone())
}

fn output(machine: &Machine) -> Type {
    machine
        .states
        .iter()
        .find(|state| state.is_end())
        .and_then(|state| state.returns.clone())
        .unwrap_or_else(|| syn::parse_quote!(()))
}

/// The fields of a variant carrying `state`'s payload, each documented.
fn payload_fields(state: &State) -> TokenStream {
    if state.payload.is_empty() {
        return TokenStream::new();
    }
    let fields = state.payload.iter().filter_map(|param| {
        let ident = param.ident.as_ref()?;
        let ty = &param.ty;
        let doc = format!("`{ident}`, of the payload of state `{}`.", state.ident);
        Some(quote! { #[doc = #doc] #ident: #ty })
    });
    quote! { { #(#fields),* } }
}

/// The fields of `state`'s variant of the state enum: its payload, and the signal it waits
/// for (`None` until it arrives), each stored through its generated codec ([`stored`]).
fn state_fields(state: &State) -> TokenStream {
    let payload = state.payload.iter().enumerate().filter_map(|(index, param)| {
        let ident = param.ident.as_ref()?;
        let ty = &param.ty;
        let doc = format!("`{ident}`, of the payload of state `{}`.", state.ident);
        let codec = codec_name(state, &index.to_string()).to_string();
        Some(quote! { #[doc = #doc] #[serde(with = #codec)] #ident: #ty })
    });
    let signal = state.signal.as_ref().map(|signal| {
        let ident = &signal.ident;
        let ty = &signal.ty;
        let doc = format!("The signal `{}` waits for; `None` until it arrives.", state.ident);
        let codec = codec_name(state, "signal").to_string();
        quote! {
            #[doc = #doc]
            #[serde(default, with = #codec)]
            #ident: ::core::option::Option<#ty>
        }
    });
    let fields: Vec<TokenStream> = payload.chain(signal).collect();
    if fields.is_empty() {
        TokenStream::new()
    } else {
        quote! { { #(#fields),* } }
    }
}

/// The module through which a payload field (`part` its index) or the signal (`part` is
/// `signal`) of `state` is stored.
fn codec_name(state: &State, part: &str) -> Ident {
    format_ident!("__flow_stored_{}_{}", state.ident, part)
}

/// One `#[serde(with)]` module per payload field and signal, storing it through
/// `flow::__private::stored`, and one check per distinct type, spanned on the user's type.
///
/// Deriving serde for the state enum over the user's types directly would report a type without
/// serde once for every place the derive uses it (three to six errors of serde internals); the
/// codecs compile for any type, and the check is the one error.
fn stored(machine: &Machine) -> TokenStream {
    let mut codecs = Vec::new();
    let mut aliases = Vec::new();
    let mut checked: Vec<String> = Vec::new();
    let mut checks = Vec::new();
    for state in &machine.states {
        let payload = state.payload.iter().enumerate().map(|(i, param)| (i.to_string(), param));
        for (part, param) in payload.chain(state.signal.iter().map(|s| ("signal".to_owned(), s))) {
            let module = codec_name(state, &part);
            let user_ty = &param.ty;
            // Through an alias declared beside the user's code, so the type's path resolves
            // as the user wrote it (payload aliases come with `targets`).
            let alias = format_ident!("__flow_{}_{}", state.ident, part);
            let ty = if part == "signal" {
                aliases.push(quote! {
                    #[allow(non_camel_case_types)]
                    type #alias = #user_ty;
                });
                quote!(::core::option::Option<super::#alias>)
            } else {
                quote!(super::#alias)
            };
            codecs.push(quote! {
                #[doc(hidden)]
                #[allow(non_snake_case, dead_code)]
                mod #module {
                    use ::flow::__private::stored::{NotSerde as _, Probe, ViaSerde as _};
                    use ::flow::__private::serde::{Deserializer, Serializer};

                    pub fn serialize<S: Serializer>(
                        value: &#ty,
                        serializer: S,
                    ) -> ::core::result::Result<S::Ok, S::Error> {
                        (&Probe::<#ty>::new()).store(value, serializer)
                    }

                    pub fn deserialize<'de, D: Deserializer<'de>>(
                        deserializer: D,
                    ) -> ::core::result::Result<#ty, D::Error> {
                        (&Probe::<#ty>::new()).load(deserializer)
                    }
                }
            });
            let text = type_text(user_ty);
            if checked.contains(&text) {
                continue;
            }
            checked.push(text);
            let check = quote_spanned! {user_ty.span()=>
                ::flow::__private::stored::check::<#user_ty>();
            };
            checks.push(check);
        }
    }
    for state in machine.states.iter().filter(|s| s.is_branch_end()) {
        let Some(output) = &state.returns else { continue };
        let text = type_text(output);
        if !checked.contains(&text) {
            checked.push(text);
            checks.push(quote_spanned! {output.span()=>
                ::flow::__private::stored::check::<#output>();
            });
        }
    }
    // Each join parameter takes its branch's output type: the compiler compares the types the
    // macro only compared as text.
    for branch in machine.branches() {
        let fork = &machine.states[branch.fork];
        let Some(join) = fork.attr.join.as_ref().and_then(|j| machine.index_of(j)) else {
            continue;
        };
        let join = &machine.states[join];
        let position =
            fork.branches().iter().position(|b| *b == machine.states[branch.entry].ident);
        let (Some(position), Some(param)) = (position, position.and_then(|p| join.payload.get(p)))
        else {
            continue;
        };
        let alias = format_ident!("__flow_{}_{}", join.ident, position);
        for &at in &branch.states {
            let state = &machine.states[at];
            if let (true, Some(output)) = (state.is_branch_end(), &state.returns) {
                let output = if fork.attr.collect.is_some() {
                    quote!(::core::result::Result<#output, ::flow::BranchError>)
                } else {
                    quote!(#output)
                };
                let output = if fork.attr.fan_out.is_some() {
                    quote!(::std::vec::Vec<#output>)
                } else {
                    output
                };
                checks.push(quote_spanned! {param.ty.span()=>
                    let _ = |output: #output| -> #alias { output };
                });
            }
        }
    }
    quote! {
        #(#aliases)*
        #(#codecs)*

        /// Fails to compile, spanned on the type, if a payload or signal has no serde.
        #[doc(hidden)]
        #[allow(dead_code)]
        fn __flow_check_stored() {
            #(#checks)*
        }
    }
}

/// `State::Variant { a, b }` as an expression with the payload in scope: a state just entered,
/// its signal (if it waits for one) not yet arrived.
fn entered(state: &State) -> TokenStream {
    let variant = state.variant();
    let fields = state.fields();
    match &state.signal {
        Some(signal) => {
            let ident = &signal.ident;
            quote! { State::#variant { #(#fields,)* #ident: ::core::option::Option::None } }
        }
        None => variant_with_fields(&quote!(State), state),
    }
}

/// `Variant { a, b }` or `Variant`, as a pattern or an expression with fields in scope.
fn variant_with_fields(owner: &TokenStream, state: &State) -> TokenStream {
    let variant = state.variant();
    let fields = state.fields();
    if fields.is_empty() {
        quote! { #owner::#variant }
    } else {
        quote! { #owner::#variant { #(#fields),* } }
    }
}

fn state_enum(machine: &Machine) -> TokenStream {
    let doc = format!(
        "Where a run of the `{}` machine is: one variant per state, carrying that state's payload.",
        machine.ident
    );
    let variants = machine.states.iter().map(|state| {
        let variant = state.variant();
        let fields = state_fields(state);
        let doc = format!("In state `{}`.", state.ident);
        quote! { #[doc = #doc] #variant #fields }
    });
    quote! {
        #[doc = #doc]
        #[derive(
            ::core::fmt::Debug,
            ::core::clone::Clone,
            ::flow::__private::serde::Serialize,
            ::flow::__private::serde::Deserialize,
        )]
        #[serde(crate = "::flow::__private::serde")]
        #[allow(dead_code)]
        pub enum State { #(#variants),* }
    }
}

/// A fork state's next type: the states its branches start in, built by `fork!` through
/// `ForkInto`, implemented for exactly the declared branches in their order.
fn fork_type(machine: &Machine, state: &State) -> TokenStream {
    let name = state.variant();
    let branches: Vec<&State> = state
        .branches()
        .iter()
        .filter_map(|b| machine.index_of(b))
        .map(|i| &machine.states[i])
        .collect();
    let doc = format!(
        "Where state `{}` goes: into its branches {} at once. Its body returns this, built with \
         `fork!`.",
        state.ident,
        suggest::list(branches.iter().map(|branch| &branch.ident))
    );
    let markers: Vec<&Ident> = branches.iter().map(|branch| &branch.ident).collect();
    let values: Vec<Ident> =
        (0..branches.len()).map(|i| format_ident!("__flow_branch{}", i)).collect();
    let entries = branches.iter().zip(&values).map(|(branch, value)| {
        let marker = &branch.ident;
        let fields = branch.fields();
        let entered = entered(branch);
        quote! { { let __flow_to::#marker(#(#fields),*) = #value; #entered } }
    });
    let span = state.split_span().unwrap_or_else(Span::call_site);
    if let (true, Some(target)) = (state.attr.fan_out.is_some(), branches.first()) {
        let marker = &target.ident;
        let fields = target.fields();
        let entered = entered(target);
        let fan_out_into = quote_spanned! {span=>
            impl ::flow::codegen::FanOutInto<__flow_to::#marker> for #name {
                fn fan_out_into(items: ::std::vec::Vec<__flow_to::#marker>) -> Self {
                    let entered = |__flow_to::#marker(#(#fields),*)| #entered;
                    #name(::core::iter::Iterator::collect(
                        ::core::iter::Iterator::map(::core::iter::IntoIterator::into_iter(items), entered),
                    ))
                }
            }
        };
        return quote! {
            #[doc = #doc]
            #[derive(::core::fmt::Debug)]
            pub struct #name(::std::vec::Vec<State>);

            #fan_out_into
        };
    }
    let fork_into = quote_spanned! {span=>
        impl ::flow::codegen::ForkInto<(#(__flow_to::#markers,)*)> for #name {
            fn fork_into((#(#values,)*): (#(__flow_to::#markers,)*)) -> Self {
                #name(::std::vec![#(#entries),*])
            }
        }
    };
    quote! {
        #[doc = #doc]
        #[derive(::core::fmt::Debug)]
        pub struct #name(::std::vec::Vec<State>);

        #fork_into
    }
}

fn next_type(machine: &Machine, state: &State) -> TokenStream {
    let name = state.variant();
    let targets: Vec<&State> = state
        .targets()
        .iter()
        .filter_map(|t| machine.index_of(t))
        .map(|i| &machine.states[i])
        .collect();
    let doc = format!(
        "Where state `{}` may go: {}. Its body returns this, built with `goto!`.",
        state.ident,
        suggest::list(targets.iter().map(|target| &target.ident))
    );
    let variants = targets.iter().map(|target| {
        let variant = target.variant();
        let fields = payload_fields(target);
        let doc = format!("Go to `{}`.", target.ident);
        quote! { #[doc = #doc] #variant #fields }
    });
    let own = quote!(#name);
    let into_state = targets.iter().map(|target| {
        let from = variant_with_fields(&own, target);
        let to = entered(target);
        quote! { #from => #to }
    });
    // Spanned on the user's `to(...)` entry, so "`Validate` implements `Goto<charge>`" points there.
    let gotos = state.targets().iter().zip(&targets).map(|(declared, target)| {
        let marker = &target.ident;
        let fields = target.fields();
        let to = variant_with_fields(&own, target);
        quote_spanned! {declared.span()=>
            impl ::flow::Goto<__flow_to::#marker> for #name {
                fn goto(target: __flow_to::#marker) -> Self {
                    let __flow_to::#marker(#(#fields),*) = target;
                    #to
                }
            }
        }
    });
    quote! {
        #[doc = #doc]
        #[derive(::core::fmt::Debug)]
        #[allow(dead_code)]
        pub enum #name { #(#variants),* }

        impl ::core::convert::From<#name> for State {
            fn from(next: #name) -> State {
                match next { #(#into_state),* }
            }
        }

        #(#gotos)*
    }
}

/// The constructors `goto!(target(...))` builds: one tuple struct per state, its payload's types
/// reached through aliases declared in the user's module so paths resolve as the user wrote them.
fn targets(machine: &Machine) -> TokenStream {
    let mut aliases = Vec::new();
    let mut markers = Vec::new();
    for state in &machine.states {
        let marker = &state.ident;
        let fields: Vec<TokenStream> = state
            .payload
            .iter()
            .enumerate()
            .map(|(i, param)| {
                let alias = format_ident!("__flow_{}_{}", state.ident, i);
                let ty = &param.ty;
                aliases.push(quote! {
                    #[allow(non_camel_case_types)]
                    type #alias = #ty;
                });
                quote!(pub super::#alias)
            })
            .collect();
        let doc = format!("Enters `{}`: `goto!({}(...))`.", state.ident, state.ident);
        markers.push(quote! {
            #[doc = #doc]
            pub struct #marker(#(#fields),*);
        });
    }
    quote! {
        #(#aliases)*

        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        pub mod __flow_to {
            #(#markers)*
        }
    }
}

fn machine_impl(machine: &Machine) -> TokenStream {
    let name = machine.name();
    let context = context(machine);
    let output = output(machine);
    let start = machine.start().unwrap_or(&machine.states[0]);
    let input_types = start.types();
    let input_fields = start.fields();
    let input = match input_types.as_slice() {
        [single] => quote!(#single),
        many => quote!((#(#many),*)),
    };
    let start_state = entered(start);
    let bind_input = match input_fields.as_slice() {
        [single] => quote!(let #single = input;),
        many => quote!(let (#(#many),*) = input;),
    };
    let indexes = machine.states.iter().enumerate().map(|(i, state)| {
        let variant = state.variant();
        quote! { State::#variant { .. } => #i }
    });
    let arms = machine.states.iter().map(|state| {
        let func = &state.ident;
        let variant = state.variant();
        // Fields bound under generated names: a field named like a fn (`order: Order` in
        // `async fn order`) would otherwise shadow the fn it is passed to.
        let fields = state.fields();
        let mut bound = bindings(&fields);
        let pattern = match &state.signal {
            Some(signal) => {
                let ident = &signal.ident;
                let value = format_ident!("__flow_signal");
                let pattern = quote! {
                    State::#variant {
                        #(#fields: #bound,)* #ident: ::core::option::Option::Some(#value)
                    }
                };
                bound.push(value);
                pattern
            }
            None if fields.is_empty() => quote!(State::#variant),
            None => quote!(State::#variant { #(#fields: #bound),* }),
        };
        let fields = bound;
        let span = state.ident.span();
        let call = quote_spanned!(span=> #func(__flow_cx, #(#fields),*).await);
        let done = if state.splits() {
            quote!(::flow::Step::Fork(output.0))
        } else if state.is_branch_end() {
            let ty = state.returns.clone().unwrap_or_else(|| syn::parse_quote!(()));
            let message = format!("the output of branch_end `{func}` could not be stored: {{}}");
            quote! {
                ::flow::Step::BranchDone({
                    use ::flow::__private::stored::{NotSerde as _, ViaSerde as _};
                    (&::flow::__private::stored::Probe::<#ty>::new())
                        .store(&output, ::flow::__private::serde_json::value::Serializer)
                        .map_err(|error| ::flow::Error::permanent(::std::format!(#message, error)))?
                })
            }
        } else if state.is_end() {
            quote!(::flow::Step::Done(output))
        } else {
            quote!(::flow::Step::Next(::core::convert::From::from(output)))
        };
        // The runtime runs no attempt before the signal arrives; were one asked for, it fails
        // plainly instead of running the body without its value.
        let unsignalled = state.signal.as_ref().map(|_| {
            let message = format!("state `{func}` was run before its signal arrived");
            quote! {
                State::#variant { .. } => ::core::result::Result::Err(::flow::Error::permanent(#message)),
            }
        });
        quote! {
            #pattern => match #call {
                ::core::result::Result::Ok(output) => ::core::result::Result::Ok(#done),
                ::core::result::Result::Err(error) => {
                    ::core::result::Result::Err(::core::convert::Into::<::flow::Error>::into(error))
                }
            },
            #unsignalled
        }
    });
    // Spanned on the user's context type: a context that is not `Send` makes this future not
    // `Send`, and that one error shows there.
    let context_span = machine.context().map_or_else(Span::call_site, |(_, ty)| ty.span());
    let step_future = quote_spanned! {context_span=>
        impl ::core::future::Future<
            Output = ::flow::Result<::flow::Step<State, #output>>,
        > + ::core::marker::Send + '_
    };
    let signals = signal_methods(machine);
    let schemas = schema_methods(machine, &input);
    let joins = join_methods(machine);
    let failures = failure_methods(machine);
    let machine_doc = format!(
        "The `{}` machine, as the runtime sees it: `flow::Runner::new().run::<{}::Machine>(input, &mut cx)`.",
        machine.ident, machine.ident
    );
    let run_doc = format!(
        "Runs the `{}` machine in memory from `input` to its output, with each state's retries, \
         timeouts and visit limits. For a fixed jitter seed or other limits, use `flow::Runner`.",
        machine.ident
    );
    let graph_doc = format!(
        "The shape of the `{}` machine: states, edges and policies; `.to_mermaid()`, `.to_dot()`.",
        machine.ident
    );
    quote! {
        #[doc = #machine_doc]
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy, ::core::default::Default)]
        #[allow(dead_code)]
        pub struct Machine;

        impl ::flow::Machine for Machine {
            const NAME: &'static str = #name;
            type Context = #context;
            type Input = #input;
            type Output = #output;
            type State = State;

            fn graph() -> &'static ::flow::Graph {
                &__FLOW_GRAPH
            }

            fn start(input: #input) -> State {
                #bind_input
                #start_state
            }

            fn index(state: &State) -> usize {
                match state { #(#indexes),* }
            }

            fn step(
                __flow_state: State,
                __flow_cx: &mut #context,
            ) -> #step_future {
                async move {
                    match __flow_state { #(#arms)* }
                }
            }

            #signals
            #schemas
            #joins
            #failures
        }

        #[doc = #run_doc]
        #[allow(dead_code)]
        pub async fn run(
            input: #input,
            cx: &mut #context,
        ) -> ::core::result::Result<::flow::Finished<#output>, ::flow::RunError> {
            ::flow::Runner::new().run::<Machine>(input, cx).await
        }

        #[doc = #graph_doc]
        #[allow(dead_code)]
        pub fn graph() -> &'static ::flow::Graph {
            &__FLOW_GRAPH
        }
    }
}

/// `Machine`'s `fork_context` and `join`, for a machine that forks.
fn join_methods(machine: &Machine) -> TokenStream {
    let forks: Vec<(usize, &State)> =
        machine.states.iter().enumerate().filter(|(_, s)| s.splits()).collect();
    let Some((_, first)) = forks.first() else { return TokenStream::new() };
    let context = context(machine);
    // Spanned on `fork`, so a context that is not `Clone` is reported there.
    let span = first.split_span().unwrap_or_else(Span::call_site);
    let fork_context = quote_spanned! {span=>
        fn fork_context(cx: &#context) -> ::core::option::Option<#context> {
            ::core::option::Option::Some(::core::clone::Clone::clone(cx))
        }
    };
    let arms = forks.iter().filter_map(|(index, fork)| {
        let join = &machine.states[machine.index_of(fork.attr.join.as_ref()?)?];
        let fields = join.fields();
        let aliases = (0..join.payload.len()).map(|i| format_ident!("__flow_{}_{}", join.ident, i));
        let entered = entered(join);
        if let (true, [field], [alias]) =
            (fork.attr.fan_out.is_some(), &fields[..], &aliases.clone().collect::<Vec<_>>()[..])
        {
            // Every item's output, in item order, read as one list.
            return Some(quote! {
                #index => {
                    let #field: #alias = (&::flow::__private::stored::Probe::<#alias>::new())
                        .load(::flow::__private::serde_json::Value::Array(outputs.collect()))?;
                    ::core::result::Result::Ok(#entered)
                }
            });
        }
        Some(quote! {
            #index => {
                #( let #fields: #aliases = (&::flow::__private::stored::Probe::<#aliases>::new())
                    .load(next()?)?; )*
                ::core::result::Result::Ok(#entered)
            }
        })
    });
    quote! {
        #fork_context

        fn join(
            fork: usize,
            outputs: ::std::vec::Vec<::flow::__private::serde_json::Value>,
        ) -> ::core::result::Result<State, ::flow::__private::serde_json::Error> {
            use ::flow::__private::stored::{NotSerde as _, ViaSerde as _};
            let custom = <::flow::__private::serde_json::Error as ::flow::__private::serde::de::Error>::custom;
            let mut outputs = outputs.into_iter();
            #[allow(unused_mut)]
            let mut next = || outputs.next().ok_or_else(|| custom("a branch's output is missing"));
            match fork {
                #(#arms)*
                _ => ::core::result::Result::Err(custom("this state does not fork")),
            }
        }
    }
}

/// `Machine`'s `input_schema` and `signal_schema`: each type's JSON Schema through
/// `flow::__private::schema`, which gives `None` for a type without one (or without the
/// `schemars` feature) instead of requiring it.
fn schema_methods(machine: &Machine, input: &TokenStream) -> TokenStream {
    let probe = |ty: &dyn quote::ToTokens| {
        quote! {{
            use ::flow::__private::schema::{NoSchema as _, ViaSchema as _};
            (&::flow::__private::schema::Probe::<#ty>::new()).schema()
        }}
    };
    let input_schema = probe(input);
    let arms = machine.states.iter().enumerate().filter_map(|(index, state)| {
        let schema = probe(&state.signal.as_ref()?.ty);
        Some(quote! { #index => #schema, })
    });
    let arms: Vec<TokenStream> = arms.collect();
    let signal_schema = (!arms.is_empty()).then(|| {
        quote! {
            fn signal_schema(
                index: usize,
            ) -> ::core::option::Option<::flow::__private::serde_json::Value> {
                match index {
                    #(#arms)*
                    _ => ::core::option::Option::None,
                }
            }
        }
    });
    quote! {
        fn input_schema() -> ::core::option::Option<::flow::__private::serde_json::Value> {
            #input_schema
        }

        #signal_schema
    }
}

/// `Machine`'s signal methods: which states wait, delivering a signal, the timeout's default.
fn signal_methods(machine: &Machine) -> TokenStream {
    let waiting: Vec<&State> = machine.states.iter().filter(|s| s.signal.is_some()).collect();
    if waiting.is_empty() {
        return TokenStream::new();
    }
    let waits = waiting.iter().map(|state| {
        let variant = state.variant();
        let ident = state.signal.as_ref().map(|signal| &signal.ident);
        quote! { State::#variant { #ident: ::core::option::Option::None, .. } => true, }
    });
    let delivers = waiting.iter().map(|state| {
        let variant = state.variant();
        let ident = state.signal.as_ref().map(|signal| &signal.ident);
        let ty = state.signal.as_ref().map(|signal| &signal.ty);
        quote! {
            State::#variant { #ident, .. } => {
                use ::flow::__private::stored::{NotSerde as _, ViaSerde as _};
                *#ident = ::core::option::Option::Some(
                    (&::flow::__private::stored::Probe::<#ty>::new()).load(signal)?,
                );
                ::core::result::Result::Ok(())
            }
        }
    });
    let timeouts = waiting.iter().filter_map(|state| {
        let config = state.attr.signal.as_ref()?;
        let default = config.default.as_ref()?;
        let target = &machine.states[machine.index_of(default)?];
        let variant = state.variant();
        let fields = state.fields();
        let to = entered(target);
        // The target's payload fields take this state's values, in order.
        let renames = target.fields().into_iter().zip(fields.clone()).map(|(to, from)| {
            quote! { let #to = #from; }
        });
        Some(quote! {
            State::#variant { #(#fields,)* .. } => {
                #(#renames)*
                ::core::option::Option::Some(#to)
            }
        })
    });
    quote! {
        fn waits_for_signal(state: &State) -> bool {
            #[allow(unreachable_patterns)]
            match state { #(#waits)* _ => false }
        }

        fn deliver_signal(
            state: &mut State,
            signal: ::flow::__private::serde_json::Value,
        ) -> ::core::result::Result<(), ::flow::__private::serde_json::Error> {
            #[allow(unreachable_patterns)]
            match state {
                #(#delivers)*
                _ => ::core::result::Result::Err(
                    <::flow::__private::serde_json::Error as ::flow::__private::serde::de::Error>::custom(
                        "this state waits for no signal",
                    ),
                ),
            }
        }

        fn signal_timeout(state: State) -> ::core::option::Option<State> {
            #[allow(unreachable_patterns, unused_variables)]
            match state { #(#timeouts)* _ => ::core::option::Option::None }
        }
    }
}

/// Generated names to bind `fields` to, one each: by position, so that a parameter named
/// `_id` does not become `__flow__id`, which `non_snake_case` warns about in the user's
/// crate.
fn bindings(fields: &[syn::Ident]) -> Vec<syn::Ident> {
    let bind = |(index, field): (usize, &syn::Ident)| {
        format_ident!("__flow_field{}", index, span = field.span())
    };
    fields.iter().enumerate().map(bind).collect()
}

/// `Machine`'s `compensate` and `fallback`, for the states that declare them.
fn failure_methods(machine: &Machine) -> TokenStream {
    let context = context(machine);
    let compensations: Vec<TokenStream> = machine
        .states
        .iter()
        .filter_map(|state| {
            let path = state.attr.compensate.as_ref()?;
            let variant = state.variant();
            let fields = state.fields();
            let bound = bindings(&fields);
            // Spanned on the user's `compensate = path`, so a signature mismatch shows there.
            let call = quote_spanned!(path.span()=> #path(__flow_cx, #(#bound),*).await);
            Some(quote! {
                State::#variant { #(#fields: #bound,)* .. } => match #call {
                    ::core::result::Result::Ok(_) => ::core::result::Result::Ok(()),
                    ::core::result::Result::Err(error) => ::core::result::Result::Err(
                        ::core::convert::Into::<::flow::Error>::into(error),
                    ),
                },
            })
        })
        .collect();
    let compensate = (!compensations.is_empty()).then(|| {
        quote! {
            fn compensate(
                __flow_state: State,
                __flow_cx: &mut #context,
            ) -> impl ::core::future::Future<Output = ::flow::Result<()>> + ::core::marker::Send + '_ {
                async move {
                    #[allow(unreachable_patterns)]
                    match __flow_state {
                        #(#compensations)*
                        // A visit recorded by a version that had a compensation here.
                        other => ::core::result::Result::Err(
                            ::flow::__private::no_compensation::<Machine>(&other),
                        ),
                    }
                }
            }
        }
    });
    let fallbacks: Vec<TokenStream> = machine
        .states
        .iter()
        .enumerate()
        .filter_map(|(index, state)| {
            let fallback = state.attr.fallback.as_ref()?;
            let target = &machine.states[machine.index_of(fallback)?];
            let param = target.payload.first()?;
            let field = param.ident.as_ref()?;
            let ty = &param.ty;
            let to = entered(target);
            // Spanned on the user's `fallback = target`: the edge that needs the conversion.
            let take = quote_spanned! {fallback.span()=>
                <#ty as ::flow::FromCaught>::from_caught(caught)
            };
            Some(quote! {
                #index => {
                    let #field = #take;
                    ::core::option::Option::Some(#to)
                }
            })
        })
        .collect();
    let fallback = (!fallbacks.is_empty()).then(|| {
        quote! {
            fn fallback(index: usize, caught: ::flow::Caught) -> ::core::option::Option<State> {
                match index {
                    #(#fallbacks)*
                    _ => ::core::option::Option::None,
                }
            }
        }
    });
    quote! { #compensate #fallback }
}

/// `impl flow::Signal<Machine> for T` for each signal type `T`, naming the states waiting for
/// it.
fn signal_impls(machine: &Machine) -> TokenStream {
    let mut by_type: Vec<(String, &Type, Vec<String>)> = Vec::new();
    for state in &machine.states {
        let Some(signal) = &state.signal else { continue };
        let text = type_text(&signal.ty);
        match by_type.iter_mut().find(|(t, ..)| *t == text) {
            Some((_, _, states)) => states.push(state.ident.to_string()),
            None => by_type.push((text, &signal.ty, vec![state.ident.to_string()])),
        }
    }
    // Stored through the probe, like the state enum's fields: a type without serde is
    // reported once, by the check in `stored`.
    let impls = by_type.iter().map(|(_, ty, states)| {
        quote! {
            impl ::flow::Signal<Machine> for #ty {
                const STATES: &'static [&'static str] = &[#(#states),*];

                fn to_json(
                    &self,
                ) -> ::core::result::Result<
                    ::flow::__private::serde_json::Value,
                    ::flow::__private::serde_json::Error,
                > {
                    use ::flow::__private::stored::{NotSerde as _, ViaSerde as _};
                    (&::flow::__private::stored::Probe::<#ty>::new())
                        .store(self, ::flow::__private::serde_json::value::Serializer)
                }
            }
        }
    });
    quote! { #(#impls)* }
}

fn graph(machine: &Machine) -> TokenStream {
    let name = machine.name();
    let count = machine.states.len();
    let start = machine.start().and_then(|s| machine.index_of(&s.ident)).unwrap_or(0);
    let max_steps = machine.config.max_steps.unwrap_or(DEFAULT_MAX_STEPS);
    let version = machine.config.version.unwrap_or(1);
    let priority = machine.config.priority.unwrap_or(0);
    let fingerprint = fingerprint(machine);
    let legacy = legacy_fingerprint(machine);
    let states = machine.states.iter().map(|state| {
        let name = state.ident.to_string();
        let is_start = state.attr.start.is_some();
        let is_end = state.is_end();
        let branch_end = state.is_branch_end();
        let fork = option(state.attr.join.as_ref().filter(|_| state.splits()).map(|join| {
            let branches = state.branches().iter().map(ToString::to_string);
            let join = join.to_string();
            let fan_out = state.attr.fan_out.is_some();
            let limit =
                option(state.attr.fan_out.as_ref().and_then(|f| f.limit).map(|n| quote!(#n)));
            let first =
                option(state.attr.fan_out.as_ref().and_then(|f| f.first).map(|n| quote!(#n)));
            let collect = state.attr.collect.is_some();
            quote! {
                ::flow::codegen::ForkInfo {
                    branches: &[#(#branches),*],
                    join: #join,
                    fan_out: #fan_out,
                    limit: #limit,
                    first: #first,
                    collect: #collect,
                }
            }
        }));
        let payload = state.payload.iter().filter_map(|param| {
            let field = param.ident.as_ref()?.to_string();
            let ty = type_text(&param.ty);
            Some(quote!((#field, #ty)))
        });
        let output = match (is_end, &state.returns) {
            (true, Some(ty)) => {
                let text = type_text(ty);
                quote!(::core::option::Option::Some(#text))
            }
            _ => quote!(::core::option::Option::None),
        };
        let policy = &state.attr.policy;
        let attempts = policy.attempts.unwrap_or(1);
        let (base, cap) = match policy.backoff {
            Some((base, cap)) => (duration(base), duration(cap)),
            None => (quote!(::flow::Backoff::DEFAULT.base), quote!(::flow::Backoff::DEFAULT.cap)),
        };
        let jitter = match policy.jitter {
            None | Some(Jitter::Full) => quote!(::flow::Jitter::Full),
            Some(Jitter::Equal) => quote!(::flow::Jitter::Equal),
            Some(Jitter::None) => quote!(::flow::Jitter::None),
        };
        let timeout = option(policy.timeout.map(duration));
        let max_visits = option(policy.max_visits.map(|n| quote!(#n)));
        let wait = option(policy.wait.map(duration));
        let uses = policy.uses.iter().map(|(pool, units)| {
            let pool = pool.to_string();
            quote!((#pool, #units))
        });
        let on_failure = match (&state.attr.fallback, state.attr.on_failure) {
            (Some(fallback), _) => {
                let fallback = fallback.to_string();
                quote!(::flow::OnFailure::Fallback(#fallback))
            }
            (None, Some((_, OnFailure::Pause))) => quote!(::flow::OnFailure::Pause),
            (None, _) => quote!(::flow::OnFailure::Fail),
        };
        let compensate = option(state.attr.compensate.as_ref().map(|path| {
            let text = type_text(path);
            quote!(#text)
        }));
        let signal = option(state.signal.as_ref().map(|signal| {
            let ty = type_text(&signal.ty);
            let config = state.attr.signal.as_ref();
            let timeout = option(config.and_then(|c| c.timeout).map(|(_, t)| duration(t)));
            let default = option(config.and_then(|c| c.default.as_ref()).map(|d| {
                let d = d.to_string();
                quote!(#d)
            }));
            quote! { ::flow::SignalInfo { ty: #ty, timeout: #timeout, default: #default } }
        }));
        quote! {
            ::flow::StateInfo {
                name: #name,
                start: #is_start,
                end: #is_end,
                payload: &[#(#payload),*],
                output: #output,
                policy: ::flow::Policy {
                    retry: ::flow::RetryPolicy {
                        attempts: #attempts,
                        backoff: ::flow::Backoff { base: #base, cap: #cap, jitter: #jitter },
                    },
                    timeout: #timeout,
                    max_visits: #max_visits,
                    wait: #wait,
                    on_failure: #on_failure,
                    uses: &[#(#uses),*],
                },
                fork: #fork,
                branch_end: #branch_end,
                signal: #signal,
                compensate: #compensate,
            }
        }
    });
    // Declared transitions, then each fork's edges into its branches and out of their ends.
    let mut edges: Vec<TokenStream> = machine
        .states
        .iter()
        .flat_map(|state| {
            let from = state.ident.to_string();
            state.targets().iter().chain(state.branches()).map(move |to| {
                let to = to.to_string();
                quote!((#from, #to))
            })
        })
        .collect();
    for branch in machine.branches() {
        let Some(join) = &machine.states[branch.fork].attr.join else { continue };
        let join = join.to_string();
        for &at in &branch.states {
            let state = &machine.states[at];
            if state.is_branch_end() {
                let from = state.ident.to_string();
                edges.push(quote!((#from, #join)));
            }
        }
    }
    quote! {
        static __FLOW_STATES: [::flow::StateInfo; #count] = [#(#states),*];

        static __FLOW_GRAPH: ::flow::Graph = ::flow::Graph {
            name: #name,
            states: &__FLOW_STATES,
            edges: &[#(#edges),*],
            start: #start,
            max_steps: #max_steps,
            version: #version,
            priority: #priority,
            fingerprint: #fingerprint,
            legacy_fingerprints: &[#legacy],
        };
    }
}

/// A hash of what a checkpoint's meaning depends on: the machine's name and context type, and
/// each state's name, payload fields (names and types), signal, targets, fallback, output
/// type and compensation. Policies are left out: changing a retry or a timeout does not change
/// what a stored run means.
///
/// The shape is written in a canonical order (states by name, fields by name, targets by
/// name), so declaring the same states, fields or targets in another order, or formatting
/// them differently, leaves it as it is. FNV-1a over the types as written, so it is the same
/// on every build of the same source; a type spelled differently (`String` vs
/// `std::string::String`) changes it, which errs on the side of asking for a version bump.
fn fingerprint(machine: &Machine) -> String {
    let context = machine.context().map(|(_, ty)| type_text(ty)).unwrap_or_default();
    let mut states: Vec<String> = machine
        .states
        .iter()
        .map(|state| {
            let field = |param: &crate::ast::Param| {
                let name = param.ident.as_ref().map(ToString::to_string).unwrap_or_default();
                format!("{name}:{}", type_text(&param.ty))
            };
            let mut payload: Vec<String> = state.payload.iter().map(field).collect();
            payload.sort();
            let mut targets: Vec<String> =
                state.targets().iter().map(ToString::to_string).collect();
            targets.sort();
            let signal = state.signal.as_ref().map(field).unwrap_or_default();
            let fallback = state.attr.fallback.as_ref().map(ToString::to_string);
            let output = state.returns.as_ref().filter(|_| state.is_end()).map(type_text);
            let compensate = state.attr.compensate.as_ref().map(type_text);
            // Only forks and branch ends add to the text: other machines keep their prints.
            let mut parallel = String::new();
            if let (Some(join), false) = (&state.attr.join, state.branches().is_empty()) {
                let branches: Vec<String> =
                    state.branches().iter().map(ToString::to_string).collect();
                let kind = if state.attr.fan_out.is_some() { "fan_out" } else { "fork" };
                parallel.push_str(&format!(" {kind}({}) join({join})", branches.join(",")));
                if state.attr.collect.is_some() {
                    parallel.push_str(" collect");
                }
            }
            if state.is_branch_end() {
                let output = state.returns.as_ref().map(type_text).unwrap_or_default();
                parallel.push_str(&format!(" branch_end({output})"));
            }
            format!(
                "state {} {{payload({}) signal({signal}) to({}) fallback({}) output({}) \
                 compensate({}){parallel}}}",
                state.ident,
                payload.join(","),
                targets.join(","),
                fallback.unwrap_or_default(),
                output.unwrap_or_default(),
                compensate.unwrap_or_default(),
            )
        })
        .collect();
    states.sort();
    fnv(&format!(
        "flow shape 2; machine {}; context({context}); {}",
        machine.name(),
        states.join("; ")
    ))
}

/// The fingerprint earlier flow versions computed: [`fingerprint`]'s shape in declaration
/// order, without compensations or field names. Generated beside the current one so that
/// runs stored with it are still recognised as this machine's.
fn legacy_fingerprint(machine: &Machine) -> String {
    let context = machine.context().map(|(_, ty)| type_text(ty)).unwrap_or_default();
    let mut shape = format!("{};{context}", machine.name());
    for state in &machine.states {
        shape.push_str(&format!(";{}(", state.ident));
        for param in &state.payload {
            shape.push_str(&type_text(&param.ty));
            shape.push(',');
        }
        shape.push(')');
        if let Some(signal) = &state.signal {
            shape.push_str(&format!("?{}", type_text(&signal.ty)));
        }
        let targets: Vec<_> = state.targets().iter().map(ToString::to_string).collect();
        shape.push_str(&format!("->[{}]", targets.join(",")));
        if let Some(fallback) = &state.attr.fallback {
            shape.push_str(&format!("!{fallback}"));
        }
        if let (true, Some(output)) = (state.is_end(), &state.returns) {
            shape.push_str(&format!("=>{}", type_text(output)));
        }
    }
    fnv(&shape)
}

/// FNV-1a, 64 bits, as 16 hex digits.
fn fnv(shape: &str) -> String {
    let hash = shape.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

fn duration(duration: std::time::Duration) -> TokenStream {
    let secs = duration.as_secs();
    let nanos = duration.subsec_nanos();
    quote!(::core::time::Duration::new(#secs, #nanos))
}

fn option(value: Option<TokenStream>) -> TokenStream {
    match value {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    }
}
