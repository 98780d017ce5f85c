//! Our own view of a `#[flow::machine]` module: the machine, its states, their payloads.
//!
//! Parsing records what the user wrote, with spans, and reports only what cannot be
//! represented at all; [`valid`](crate::valid) judges the rest.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, Item, ItemFn, ItemMod, Pat, PathArguments,
    ReturnType, Type, Visibility,
};

use crate::attr::{self, Errors, MachineAttr, StateAttr};

/// A `#[flow::machine]` module.
pub struct Machine {
    /// The module's own attributes (docs and the like).
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub ident: Ident,
    pub config: MachineAttr,
    /// Every item that is not a state, as written.
    pub items: Vec<Item>,
    /// The states, in declaration order.
    pub states: Vec<State>,
}

/// One `#[state]` fn.
pub struct State {
    pub ident: Ident,
    pub attr: StateAttr,
    /// The fn as written, its `#[state]` removed.
    pub func: ItemFn,
    /// The first parameter: the context, if the fn takes any parameter.
    pub context: Option<Param>,
    /// The parameters after the context, but the signal.
    pub payload: Vec<Param>,
    /// The parameter marked `#[signal]`: what the state waits for before its first attempt.
    pub signal: Option<Param>,
    /// Whether a parameter is marked `#[signal]`, even one refused (then `signal` is `None`).
    pub signal_marked: bool,
    /// `T` in the return type `Result<T>` (any path type whose first generic argument is `T`).
    pub returns: Option<Type>,
}

/// A parameter of a state fn.
pub struct Param {
    /// Its name; `None` for a pattern that binds no single name (`_`, a tuple).
    pub ident: Option<Ident>,
    pub ty: Type,
    /// The whole parameter, for errors about it.
    pub span: Span,
}

impl Machine {
    /// Parses the macro's arguments and the module it is placed on.
    /// Problems that still leave a machine to validate go to `errors`; `Err` means there is none.
    pub fn parse(
        args: TokenStream,
        input: TokenStream,
        errors: &mut Errors,
    ) -> syn::Result<Machine> {
        let module: ItemMod = syn::parse2(input).map_err(|error| {
            syn::Error::new(
                error.span(),
                "#[flow::machine] goes on a module: `pub mod checkout { ... }`",
            )
        })?;
        let config = attr::machine(args, errors);
        let Some((_, content)) = module.content else {
            return Err(syn::Error::new_spanned(
                &module,
                "#[flow::machine] needs the module's states inline\n= help: write `mod name { ... }` with its #[state] fns inside, not `mod name;`",
            ));
        };
        let mut items = Vec::new();
        let mut states = Vec::new();
        for item in content {
            match item {
                Item::Fn(mut func) => match take_state_attr(&mut func.attrs) {
                    Some(found) => {
                        let attr = attr::state(&found, errors);
                        states.push(State::new(func, attr, errors));
                    }
                    None => items.push(Item::Fn(func)),
                },
                other => {
                    if let Some(found) = item_attrs(&other).iter().find(|a| is_state_attr(a)) {
                        errors.push_spanned(
                            found,
                            "#[state] goes on an async fn\n= help: a state is an `async fn` whose arguments are its payload",
                        );
                    }
                    items.push(other);
                }
            }
        }
        Ok(Machine {
            attrs: module.attrs,
            vis: module.vis,
            ident: module.ident,
            config,
            items,
            states,
        })
    }

    /// The machine's name: `name = "..."` if given, else the module's name.
    pub fn name(&self) -> String {
        self.config.name.clone().unwrap_or_else(|| self.ident.to_string())
    }

    /// The start state: the first state marked `start`.
    pub fn start(&self) -> Option<&State> {
        self.states.iter().find(|state| state.attr.start.is_some())
    }

    /// The machine's context type `C`, and the state it is taken from: the start state's
    /// `&mut C` first parameter, or else the first state that has one.
    pub fn context(&self) -> Option<(&State, &Type)> {
        self.start().and_then(with_context).or_else(|| self.states.iter().find_map(with_context))
    }

    /// The index of the state named `name`.
    pub fn index_of(&self, name: &Ident) -> Option<usize> {
        self.states.iter().position(|state| state.ident == *name)
    }
}

impl State {
    fn new(mut func: ItemFn, attr: StateAttr, errors: &mut Errors) -> State {
        let mut params = Vec::new();
        let mut signal = None;
        let mut signal_marked = false;
        let count = func.sig.inputs.len();
        for (index, input) in func.sig.inputs.iter_mut().enumerate() {
            match input {
                FnArg::Receiver(receiver) => errors.push_spanned(
                    &*receiver,
                    "a state cannot take `self`\n= help: a state is a free async fn: its first parameter is the context, `cx: &mut YourContext`",
                ),
                FnArg::Typed(typed) => {
                    let ident = match &*typed.pat {
                        Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                            Some(pat.ident.clone())
                        }
                        _ => None,
                    };
                    let marked = typed.attrs.iter().position(|a| a.path().is_ident("signal"));
                    let param = Param { ident, ty: (*typed.ty).clone(), span: typed.span() };
                    let Some(position) = marked else {
                        params.push(param);
                        continue;
                    };
                    let mark = typed.attrs.remove(position);
                    signal_marked = true;
                    if index == 0 {
                        errors.push_spanned(&mark, "the context cannot be the signal\n= help: mark a parameter after the context: `#[signal] decision: Decision`");
                    } else if index + 1 != count {
                        errors.push_spanned(&mark, "the #[signal] parameter comes last\n= help: move it after the payload parameters");
                    } else if signal.is_some() {
                        errors.push_spanned(&mark, "a state waits for one signal");
                    } else if param.ident.is_none() {
                        errors.push(param.span, "the signal parameter needs a plain name\n= help: write `#[signal] decision: Decision`");
                    } else {
                        signal = Some(param);
                    }
                }
            }
        }
        let mut params = params.into_iter();
        let context = params.next();
        let payload: Vec<Param> = params.collect();
        for param in &payload {
            if param.ident.is_none() {
                errors.push(
                    param.span,
                    "a payload parameter needs a plain name\n= help: write `name: Type`; the name becomes the field of the state's variant",
                );
            }
        }
        let returns = match &func.sig.output {
            ReturnType::Type(_, ty) => first_generic(ty),
            ReturnType::Default => None,
        };
        State {
            ident: func.sig.ident.clone(),
            attr,
            func,
            context,
            payload,
            signal,
            signal_marked,
            returns,
        }
    }

    /// The `UpperCamelCase` form of the state's name: its variant and its next type.
    pub fn variant(&self) -> Ident {
        let camel: String = self
            .ident
            .to_string()
            .trim_start_matches("r#")
            .split('_')
            .filter(|part| !part.is_empty())
            .map(|part| {
                let mut chars = part.chars();
                chars
                    .next()
                    .map(|c| c.to_uppercase().chain(chars).collect::<String>())
                    .unwrap_or_default()
            })
            .collect();
        Ident::new(&camel, self.ident.span())
    }

    /// The payload's field names (checked present before expansion).
    pub fn fields(&self) -> Vec<Ident> {
        self.payload.iter().filter_map(|param| param.ident.clone()).collect()
    }

    /// The payload's types.
    pub fn types(&self) -> Vec<&Type> {
        self.payload.iter().map(|param| &param.ty).collect()
    }

    /// The targets declared in `to(...)`, in order.
    pub fn targets(&self) -> &[Ident] {
        self.attr.to.as_ref().map_or(&[], |(_, targets)| targets)
    }

    pub fn is_end(&self) -> bool {
        self.attr.end.is_some()
    }

    /// Whether the state ends a branch of a fork (`branch_end`).
    pub fn is_branch_end(&self) -> bool {
        self.attr.branch_end.is_some()
    }

    /// The first states of the branches this state forks into, in order; empty if it does
    /// not fork.
    pub fn branches(&self) -> &[Ident] {
        match (&self.attr.fork, &self.attr.fan_out) {
            (Some((_, branches)), _) => branches,
            (None, Some(fan_out)) => &fan_out.target,
            (None, None) => &[],
        }
    }

    /// Whether the state splits the run: a fork or a fan-out.
    pub fn splits(&self) -> bool {
        self.attr.fork.is_some() || self.attr.fan_out.is_some()
    }

    /// The `fork` or `fan_out` keyword.
    pub fn split_span(&self) -> Option<Span> {
        self.attr.fork.as_ref().map(|(span, _)| *span).or(self
            .attr
            .fan_out
            .as_ref()
            .map(|f| f.span))
    }

    /// Whether the state says where a run goes after it: targets, an end, a fork or a
    /// branch end.
    pub fn declares_next(&self) -> bool {
        self.attr.to.is_some() || self.is_end() || self.splits() || self.is_branch_end()
    }
}

/// One branch of a fork: the states a run can visit in it.
pub struct Branch {
    /// The fork state, by index.
    pub fork: usize,
    /// The branch's first state, by index.
    pub entry: usize,
    /// Every state reachable from `entry` by `to(...)` and `fallback`, `entry` included, in
    /// index order.
    pub states: Vec<usize>,
}

impl Machine {
    /// Every branch of every fork whose names resolve, in declaration order.
    pub fn branches(&self) -> Vec<Branch> {
        let mut out = Vec::new();
        for (fork, state) in self.states.iter().enumerate() {
            for name in state.branches() {
                let Some(entry) = self.index_of(name) else { continue };
                let mut seen = vec![false; self.states.len()];
                let mut stack = vec![entry];
                while let Some(at) = stack.pop() {
                    if std::mem::replace(&mut seen[at], true) {
                        continue;
                    }
                    let here = &self.states[at];
                    let next = here.targets().iter().chain(here.attr.fallback.iter());
                    stack.extend(next.filter_map(|name| self.index_of(name)));
                }
                let states = (0..seen.len()).filter(|&i| seen[i]).collect();
                out.push(Branch { fork, entry, states });
            }
        }
        out
    }
}

/// `state` and its context type, if its first parameter is `&mut C`.
fn with_context(state: &State) -> Option<(&State, &Type)> {
    Some((state, context_type(&state.context.as_ref()?.ty)?))
}

/// The context type `T` of a `&mut T` parameter.
pub fn context_type(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Reference(reference) if reference.mutability.is_some() => Some(&reference.elem),
        _ => None,
    }
}

/// A type as compact text, `Vec<String>` rather than `Vec < String >`: for messages and metadata.
pub fn type_text(ty: &impl quote::ToTokens) -> String {
    let raw = ty.to_token_stream().to_string();
    let mut text = raw
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" < ", "<")
        .replace("< ", "<")
        .replace(" <", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace("& ", "&")
        .replace("( ", "(")
        .replace(" )", ")")
        .replace("[ ", "[")
        .replace(" ]", "]")
        .replace(" ;", ";");
    if text.starts_with("::") {
        text = text.trim_start_matches("::").to_owned();
    }
    text
}

fn first_generic(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let PathArguments::AngleBracketed(args) = &path.path.segments.last()?.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(inner) => Some(inner.clone()),
        _ => None,
    }
}

fn is_state_attr(attr: &Attribute) -> bool {
    attr.path().segments.last().is_some_and(|segment| segment.ident == "state")
}

fn take_state_attr(attrs: &mut Vec<Attribute>) -> Option<Attribute> {
    let position = attrs.iter().position(is_state_attr)?;
    Some(attrs.remove(position))
}

fn item_attrs(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}
