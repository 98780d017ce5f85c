//! Every check on a parsed machine: signatures, the graph, names, and `goto!` targets.
//!
//! All problems are collected and reported at once, each on the user's offending token with a
//! hint. Nothing here generates code.

use std::collections::{BTreeSet, HashMap};

use syn::visit::Visit;
use syn::{Ident, Item, Macro, Type};

use crate::ast::{Machine, State, context_type, type_text};
use crate::attr::Errors;
use crate::suggest;

mod forks;

/// A state's `signal(...)` must configure a `#[signal]` parameter, a timeout needs a default
/// and a default a timeout, and the default must be a declared target taking this state's
/// payload (the run goes there with it).
fn signals(machine: &Machine, errors: &mut Errors) {
    for state in &machine.states {
        let Some(config) = &state.attr.signal else { continue };
        if state.signal.is_none() && state.signal_marked {
            continue; // the refused #[signal] is reported
        }
        if state.signal.is_none() {
            errors.push(
                config.span,
                format!(
                    "state `{}` has signal(...) but no #[signal] parameter\n= help: add the value it waits for as its last parameter: `#[signal] decision: Decision`",
                    state.ident
                ),
            );
            continue;
        }
        if state.attr.policy.wait.is_some() {
            errors.push(
                config.span,
                "a state waits either for a time (`wait`) or for a signal, not both\n= help: put the `wait` on a state before this one",
            );
        }
        match (&config.timeout, &config.default) {
            (Some((span, _)), None) => errors.push(
                *span,
                format!(
                    "a signal timeout needs a default target\n= help: say where the run goes when no signal comes in time: signal(timeout = \"...\", default = {})",
                    state.targets().first().map_or_else(|| "...".to_owned(), ToString::to_string)
                ),
            ),
            (None, Some(default)) => errors.push_spanned(
                default,
                "a default target needs a timeout\n= help: signal(timeout = \"3d\", default = ...): the run goes to the default when the timeout passes",
            ),
            (Some(_), Some(default)) => {
                if !state.targets().contains(default) {
                    errors.push_spanned(
                        default,
                        format!(
                            "the default `{default}` is not among the targets of `{}`\n= help: add it to #[state(to(...))]",
                            state.ident
                        ),
                    );
                } else if let Some(target) = machine.index_of(default).map(|i| &machine.states[i]) {
                    let ours: Vec<String> = state.payload.iter().map(|p| type_text(&p.ty)).collect();
                    let theirs: Vec<String> = target.payload.iter().map(|p| type_text(&p.ty)).collect();
                    if ours != theirs {
                        errors.push_spanned(
                            default,
                            format!(
                                "the default `{default}` takes ({}), but `{}` has ({}) to give it\n= help: on a timeout the run goes to the default with this state's payload; make the two payloads the same",
                                theirs.join(", "),
                                state.ident,
                                ours.join(", ")
                            ),
                        );
                    }
                }
            }
            (None, None) => {}
        }
    }
}

/// A state's `uses(...)` names pools the machine declares in `pools(...)`.
fn pools(machine: &Machine, errors: &mut Errors) {
    let declared: Vec<String> = machine.config.pools.iter().map(ToString::to_string).collect();
    for state in &machine.states {
        for (pool, _) in &state.attr.policy.uses {
            if declared.iter().any(|name| pool == name) {
                continue;
            }
            let message = if declared.is_empty() {
                format!(
                    "state `{}` uses pool `{pool}`, but machine `{}` declares no pools\n= help: declare the engine pools its states use: #[flow::machine(pools({pool}))]",
                    state.ident, machine.ident
                )
            } else {
                let hint =
                    suggest::hint(&pool.to_string(), "pools", declared.iter().map(String::as_str));
                format!(
                    "no pool `{pool}` in #[flow::machine(pools({}))]\n{hint}",
                    declared.join(", ")
                )
            };
            errors.push_spanned(pool, message);
        }
    }
}

/// `compensate = f` names an async fn taking the context and the state's payload, on a state
/// the run can leave; `fallback = s` names a state taking the failure as its one payload, and
/// is not combined with `on_failure`.
fn failures(machine: &Machine, names: &[String], errors: &mut Errors) {
    let context = machine.context().map_or_else(|| "Context".to_owned(), |(_, ty)| type_text(ty));
    for state in &machine.states {
        let name = &state.ident;
        if let Some(path) = &state.attr.compensate {
            compensation(machine, state, path, &context, errors);
        }
        let Some(fallback) = &state.attr.fallback else { continue };
        if let Some((span, _)) = state.attr.on_failure {
            errors.push(
                span,
                format!("state `{name}` has both a fallback and on_failure\n= help: a failure goes to the fallback `{fallback}`; remove one of the two"),
            );
        }
        let Some(target) = machine.index_of(fallback).map(|i| &machine.states[i]) else {
            let hint =
                suggest::hint(&fallback.to_string(), "states", names.iter().map(String::as_str));
            errors.push(
                fallback.span(),
                format!("no state named `{fallback}` in machine `{}`\n{hint}", machine.ident),
            );
            continue;
        };
        if target.payload.len() != 1 {
            let types: Vec<String> = target.payload.iter().map(|p| type_text(&p.ty)).collect();
            errors.push_spanned(
                fallback,
                format!(
                    "the fallback `{fallback}` takes ({}), but a fallback takes one payload: the failure\n= help: write `async fn {fallback}(cx: &mut {context}, failure: flow::Caught) -> ...`",
                    types.join(", ")
                ),
            );
        }
    }
}

/// The checks of `compensate = path` that need no types: the rest is the compiler's, on the
/// generated call spanned on `path`.
fn compensation(
    machine: &Machine,
    state: &State,
    path: &syn::Path,
    context: &str,
    errors: &mut Errors,
) {
    let name = &state.ident;
    let payload: Vec<String> = state
        .payload
        .iter()
        .map(|p| {
            let field = p.ident.as_ref().map_or("_".to_owned(), ToString::to_string);
            format!("{field}: {}", type_text(&p.ty))
        })
        .collect();
    let mut params = vec![format!("cx: &mut {context}")];
    params.extend(payload);
    let wanted = |f: &dyn std::fmt::Display| {
        format!(
            "= help: a compensation takes the context and the state's payload: `async fn {f}({}) -> Result<()>`",
            params.join(", ")
        )
    };
    if state.is_end() {
        errors.push_spanned(
            path,
            format!("end state `{name}` ends the run, so its compensation would never run\n= help: compensate the states a run leaves; remove `compensate` here"),
        );
        return;
    }
    let Some(ident) = path.get_ident() else { return };
    if machine.index_of(ident).is_some() {
        errors.push_spanned(
            path,
            format!("`{ident}` is a state; a compensation is a plain async fn\n{}", wanted(ident)),
        );
        return;
    }
    let found = machine.items.iter().find_map(|item| match item {
        Item::Fn(func) if func.sig.ident == *ident => Some(func),
        _ => None,
    });
    let Some(func) = found else {
        // Imported by name, or by a path in the attribute: the compiler resolves it. Anything
        // else is reported here with the fn to write, which rustc's "cannot find" would not say.
        if !imports_by_name(machine, ident) {
            errors.push_spanned(
                path,
                format!(
                    "no fn `{ident}` in module `{}` for the compensation of state `{name}`\n= help: write `async fn {ident}({}) -> Result<()>` beside the states, or import it by name: `use super::{ident};`",
                    machine.ident,
                    params.join(", ")
                ),
            );
        }
        return;
    };
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        errors.push(
            sig.fn_token.span,
            format!("compensation `{ident}` of state `{name}` is not async\n{}", wanted(ident)),
        );
    }
    if sig.inputs.len() != params.len() {
        errors.push(
            sig.paren_token.span.join(),
            format!(
                "compensation `{ident}` of state `{name}` takes {} parameter(s), but is given {}: the context and `{name}`'s payload\n{}",
                sig.inputs.len(),
                params.len(),
                wanted(ident)
            ),
        );
    }
    let given: Vec<&Type> = state.payload.iter().map(|p| &p.ty).collect();
    let taken: Vec<&Type> = sig
        .inputs
        .iter()
        .skip(1)
        .filter_map(|input| match input {
            syn::FnArg::Typed(typed) => Some(&*typed.ty),
            syn::FnArg::Receiver(_) => None,
        })
        .collect();
    let differ = given.iter().zip(&taken).any(|(a, b)| last_segments(a) != last_segments(b));
    if sig.inputs.len() == params.len() && differ {
        let text = |types: &[&Type]| types.iter().map(type_text).collect::<Vec<_>>().join(", ");
        errors.push_spanned(
            path,
            format!(
                "compensation `{ident}` takes ({}), but state `{name}` holds ({}) to undo\n{}",
                text(&taken),
                text(&given),
                wanted(ident)
            ),
        );
    }
    if matches!(sig.output, syn::ReturnType::Default) {
        errors.push(
            sig.paren_token.span.close(),
            format!(
                "compensation `{ident}` of state `{name}` must return a `Result`\n{}",
                wanted(ident)
            ),
        );
    }
}

/// Names `#[flow::machine]` generates in the module besides each state's next type.
const GENERATED: [&str; 4] = ["State", "Machine", "run", "graph"];

/// Records every problem of `machine` in `errors`.
pub fn check(machine: &Machine, errors: &mut Errors) {
    if machine.states.is_empty() {
        errors.push(
            machine.ident.span(),
            format!(
                "machine `{}` has no states\n= help: mark its async fns with #[state(...)], one of them #[state(start, to(...))]",
                machine.ident
            ),
        );
        return;
    }
    let (names, unique) = state_names(machine, errors);
    signatures(machine, errors);
    owned(machine, errors);
    // Walking a graph with unknown or ambiguous names would only restate those errors.
    if declarations(machine, &names, errors) && unique && forks::branches(machine, errors) {
        reachability(machine, errors);
    }
    outputs(machine, errors);
    signals(machine, errors);
    pools(machine, errors);
    failures(machine, &names, errors);
    collisions(machine, errors);
    for state in &machine.states {
        let declared_ok = state.targets().iter().all(|t| names.iter().any(|n| t == n));
        if declared_ok && state.declares_next() {
            GotoTargets { machine, state, names: &names, errors }.visit_block(&state.func.block);
        }
    }
}

/// The state names, and whether they are all distinct.
fn state_names(machine: &Machine, errors: &mut Errors) -> (Vec<String>, bool) {
    let mut unique = true;
    let mut seen = HashMap::new();
    for state in &machine.states {
        let name = state.ident.to_string();
        if seen.insert(name.clone(), ()).is_some() {
            unique = false;
            errors.push(
                state.ident.span(),
                format!("a state named `{name}` is already declared in this machine\n= help: give each state its own name"),
            );
        }
    }
    // `charge_2` and `charge2` are two names but one variant and next type, `Charge2`.
    let mut variants: HashMap<String, &Ident> = HashMap::new();
    for state in &machine.states {
        let variant = state.variant().to_string();
        match variants.get(&variant) {
            Some(first) if **first != state.ident => {
                unique = false;
                errors.push(
                    state.ident.span(),
                    format!("states `{first}` and `{}` both become `{variant}`, the name of their variant and next type\n= help: rename `{}` so that its UpperCamelCase form differs", state.ident, state.ident),
                );
            }
            Some(_) => {}
            None => {
                variants.insert(variant, &state.ident);
            }
        }
    }
    let names = machine.states.iter().map(|state| state.ident.to_string()).collect();
    (names, unique)
}

/// `async`, no generics, a `&mut` context shared by all states, and a `Result<...>` return.
fn signatures(machine: &Machine, errors: &mut Errors) {
    let context = machine.context();
    let expected = context.map(|(_, ty)| ty);
    let suggested = expected.map_or("YourContext".to_owned(), type_text);
    for state in &machine.states {
        let sig = &state.func.sig;
        let name = &state.ident;
        if sig.asyncness.is_none() {
            errors.push(
                sig.fn_token.span,
                format!("state `{name}` is not async\n= help: write `async fn {name}(...)`: states are async fns"),
            );
        }
        if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
            errors.push_spanned(
                &sig.generics,
                format!("state `{name}` cannot be generic\n= help: a state's payload is stored and resumed, so its types must be concrete"),
            );
        }
        let missing = format!(
            "state `{name}` has no context parameter\n= help: the first parameter of every state is the machine's context, taken by `&mut`: `async fn {name}(cx: &mut {suggested}, ...)`"
        );
        match &state.context {
            _ if sig.receiver().is_some() => {} // `self` is reported, and shifts every parameter
            None => errors.push(sig.paren_token.span.join(), missing),
            Some(param) => match (&param.ty, context_type(&param.ty), expected) {
                (syn::Type::Reference(shared), None, _) => errors.push_spanned(
                    shared,
                    format!(
                        "state `{name}` takes its context by `&`, but a state may change it: take it by `&mut`\n= help: write `&mut {}`",
                        type_text(&shared.elem)
                    ),
                ),
                (_, None, _) => errors.push(param.span, missing),
                (_, Some(found), Some(expected)) if type_text(found) != type_text(expected) => errors.push_spanned(
                    found,
                    format!(
                        "state `{name}` takes context `{}`, but state `{}` takes `{}`\n= help: every state of a machine shares one context type",
                        type_text(found),
                        context.map_or(&machine.states[0], |(owner, _)| owner).ident,
                        type_text(expected)
                    ),
                ),
                _ => {}
            },
        }
        let wanted = if state.is_end() || state.is_branch_end() {
            "Result<Output>".to_owned()
        } else {
            format!("Result<{}>", state.variant())
        };
        let declares_nothing = !state.declares_next();
        match (&state.returns, state.is_end() || state.is_branch_end()) {
            _ if declares_nothing => {} // reported by `declarations`
            _ if wrapper(state).is_some_and(|w| w != "Result") => {
                let wrapper = wrapper(state).expect("checked");
                errors.push_spanned(
                    wrapper,
                    format!(
                        "state `{name}` returns `{wrapper}<...>`, but a state returns `{wanted}`\n= help: a state that cannot go on returns an error: `Err(Error::permanent(\"why\"))`, or `Error::retryable` to try again"
                    ),
                );
            }
            (None, _) => errors.push(
                returns_span(state),
                format!(
                    "state `{name}` must return `{wanted}`\n= help: {}",
                    if state.is_branch_end() {
                        "a branch_end state returns its branch's output, which the join receives: `-> Result<Receipt>`".to_owned()
                    } else if state.is_end() {
                        "an end state returns the run's output: `-> Result<Receipt>`".to_owned()
                    } else {
                        format!("`{}` is the state's next type, generated from its to(...); a body returns it with goto!(target(...))", state.variant())
                    }
                ),
            ),
            (Some(returns), false) if !is_named(returns, &state.variant()) => errors.push_spanned(
                returns,
                format!(
                    "state `{name}` must return `Result<{0}>`, not `Result<{1}>`\n= help: `{0}` is the state's next type, generated from its to(...); return it with goto!(target(...))",
                    state.variant(),
                    type_text(returns)
                ),
            ),
            _ => {}
        }
    }
}

/// Payloads and signals are owned: they are stored in every checkpoint and move between tasks.
fn owned(machine: &Machine, errors: &mut Errors) {
    for state in &machine.states {
        for param in state.payload.iter().chain(&state.signal) {
            let mut borrows = Borrows(None);
            borrows.visit_type(&param.ty);
            let Some((span, owned)) = borrows.0 else { continue };
            let field = param.ident.as_ref().map_or("_".to_owned(), ToString::to_string);
            errors.push(
                span,
                format!(
                    "state `{}` takes `{field}: {}`, a borrowed value, but payloads and signals are owned: they are stored in every checkpoint and move between tasks\n= help: take {owned}",
                    state.ident,
                    type_text(&param.ty),
                ),
            );
        }
    }
}

/// The first reference or lifetime in a type, and the owned type to suggest.
struct Borrows(Option<(proc_macro2::Span, String)>);

impl<'ast> Visit<'ast> for Borrows {
    fn visit_type_reference(&mut self, reference: &'ast syn::TypeReference) {
        if self.0.is_some() {
            return;
        }
        let elem = type_text(&reference.elem);
        let owned = match &*reference.elem {
            Type::Path(path) if path.path.is_ident("str") => "`String`".to_owned(),
            Type::Path(path) if path.path.is_ident("Path") => "`PathBuf`".to_owned(),
            Type::Slice(slice) => format!("`Vec<{}>`", type_text(&slice.elem)),
            _ => format!("`{elem}`"),
        };
        self.0 =
            Some((syn::spanned::Spanned::span(&reference.and_token), format!("{owned} instead")));
    }

    fn visit_lifetime(&mut self, lifetime: &'ast syn::Lifetime) {
        if self.0.is_none() {
            self.0 = Some((
                lifetime.span(),
                "a type without lifetimes (`String`, not `Cow<'a, str>`)".to_owned(),
            ));
        }
    }
}

/// `start`, `end` and `to(...)` are consistent; returns whether edges are sound enough to walk.
fn declarations(machine: &Machine, names: &[String], errors: &mut Errors) -> bool {
    let mut sound = true;
    let starts: Vec<&State> = machine.states.iter().filter(|s| s.attr.start.is_some()).collect();
    match starts.as_slice() {
        [] => {
            sound = false;
            errors.push(
                machine.ident.span(),
                format!(
                    "machine `{}` has no start state\n= help: mark the state where runs begin: #[state(start, to(...))] on `{}`?",
                    machine.ident, machine.states[0].ident
                ),
            );
        }
        [_] => {}
        [first, rest @ ..] => {
            for extra in rest {
                errors.push(
                    extra.attr.start.unwrap_or(extra.ident.span()),
                    format!(
                        "a machine has one start state, but `{}` is marked start too\n= help: `{}` is already the start state; remove `start` from one of them",
                        extra.ident, first.ident
                    ),
                );
            }
        }
    }
    // A state with neither targets nor `end` is reported below, with both fixes.
    let dead_end = |state: &State| !state.declares_next();
    if !machine.states.iter().any(State::is_end) && !machine.states.iter().any(dead_end) {
        sound = false;
        errors.push(
            machine.ident.span(),
            format!(
                "machine `{}` has no end state\n= help: mark the state that returns the run's output with #[state(end)]",
                machine.ident
            ),
        );
    }
    for state in &machine.states {
        let name = &state.ident;
        match (&state.attr.to, state.attr.end) {
            (Some((to, _)), Some(_)) => errors.push(
                *to,
                format!("end state `{name}` cannot have targets\n= help: an end state finishes the run with its output; remove `end` or the to(...)"),
            ),
            (None, None) if state.declares_next() => {}
            (None, None) => {
                sound = false;
                let mut gone_to = GotoNames(Vec::new());
                gone_to.visit_block(&state.func.block);
                let help = if gone_to.0.is_empty() {
                    "declare where it may go, #[state(to(next_state))], or mark it #[state(end)]"
                        .to_owned()
                } else {
                    let mut names: Vec<String> = Vec::new();
                    for target in gone_to.0 {
                        if !names.contains(&target.to_string()) {
                            names.push(target.to_string());
                        }
                    }
                    format!("its body goes to {}: declare it, #[state(to({}))]", suggest::list(names.iter()), names.join(", "))
                };
                errors.push(
                    name.span(),
                    format!("state `{name}` has no targets and is not an end state\n= help: {help}"),
                );
            }
            _ => {}
        }
        sound &= forks::declaration(machine, state, names, errors);
        let mut seen = BTreeSet::new();
        for target in state.targets() {
            if !names.iter().any(|n| target == n) {
                sound = false;
                let hint =
                    suggest::hint(&target.to_string(), "states", names.iter().map(String::as_str));
                errors.push(
                    target.span(),
                    format!("no state named `{target}` in machine `{}`\n{hint}", machine.ident),
                );
            } else if !seen.insert(target.to_string()) {
                errors.push(
                    target.span(),
                    format!(
                        "`{target}` is listed twice in this to(...)\n= help: name each next \
                         state once; remove this `{target}`"
                    ),
                );
            }
        }
    }
    sound
}

/// Every state is reachable from the start, and an end is reachable from every state.
fn reachability(machine: &Machine, errors: &mut Errors) {
    let Some(start) = machine.start().and_then(|s| machine.index_of(&s.ident)) else {
        return;
    };
    let mut edges: Vec<Vec<usize>> = machine
        .states
        .iter()
        .map(|state| {
            let fallback = state.attr.fallback.iter();
            let next = state.targets().iter().chain(fallback).chain(state.branches());
            next.filter_map(|t| machine.index_of(t)).collect()
        })
        .collect();
    // A branch's ends lead to its fork's join.
    for branch in machine.branches() {
        let join = machine.states[branch.fork].attr.join.as_ref().and_then(|j| machine.index_of(j));
        for &at in &branch.states {
            if machine.states[at].is_branch_end() {
                edges[at].extend(join);
            }
        }
    }
    let count = machine.states.len();
    let forward = closure(count, &[start], |i| edges[i].clone());
    let ends: Vec<usize> = (0..count).filter(|&i| machine.states[i].is_end()).collect();
    let reaches_end = closure(count, &ends, |i| {
        (0..edges.len()).filter(|&from| edges[from].contains(&i)).collect()
    });
    let start_name = &machine.states[start].ident;
    for (i, state) in machine.states.iter().enumerate() {
        let name = &state.ident;
        if !forward[i] {
            errors.push(
                name.span(),
                format!("state `{name}` is unreachable: no path from the start state `{start_name}` leads to it\n= help: add `{name}` to the to(...) of a state that should lead to it, or remove it"),
            );
        } else if !reaches_end[i] {
            errors.push(
                name.span(),
                format!("no end state can be reached from state `{name}`: a run that enters it can never finish\n= help: give it (or a state it leads to) a target that leads to an end state"),
            );
        }
    }
}

/// Which of `len` nodes are reachable from `roots` by `next`.
fn closure(len: usize, roots: &[usize], next: impl Fn(usize) -> Vec<usize>) -> Vec<bool> {
    let mut seen = vec![false; len];
    let mut stack = roots.to_vec();
    while let Some(node) = stack.pop() {
        if !std::mem::replace(&mut seen[node], true) {
            stack.extend(next(node));
        }
    }
    seen
}

/// All end states return the same output type.
fn outputs(machine: &Machine, errors: &mut Errors) {
    let mut ends =
        machine.states.iter().filter(|s| s.is_end()).filter_map(|s| Some((s, s.returns.as_ref()?)));
    let Some((first, expected)) = ends.next() else {
        return;
    };
    for (state, found) in ends {
        if type_text(found) != type_text(expected) {
            errors.push_spanned(
                found,
                format!(
                    "end state `{}` returns `{}`, but end state `{}` returns `{}`\n= help: a run has one output type: make every end state return the same type (an enum, if the outcomes differ)",
                    state.ident,
                    type_text(found),
                    first.ident,
                    type_text(expected)
                ),
            );
        }
    }
}

/// The names the macro generates must not clash with the user's.
fn collisions(machine: &Machine, errors: &mut Errors) {
    let mut generated: Vec<(String, String)> = GENERATED
        .iter()
        .map(|name| (name.to_string(), format!("the generated `{}::{name}`", machine.ident)))
        .collect();
    for state in &machine.states {
        let variant = state.variant().to_string();
        if GENERATED.contains(&variant.as_str())
            || GENERATED.contains(&state.ident.to_string().as_str())
        {
            errors.push(
                state.ident.span(),
                format!("a state cannot be named `{}`: #[flow::machine] generates `{}::{}` itself\n= help: rename the state", state.ident, machine.ident, if GENERATED.contains(&variant.as_str()) { variant.clone() } else { state.ident.to_string() }),
            );
        }
        generated.push((variant, format!("the next type of state `{}`", state.ident)));
    }
    for item in &machine.items {
        let Some(ident) = item_ident(item) else {
            continue;
        };
        if let Some((_, what)) = generated.iter().find(|(name, _)| ident == name) {
            errors.push(
                ident.span(),
                format!("`{ident}` is taken by {what}, which #[flow::machine] generates in this module\n= help: rename this item, or define it outside the module and refer to it by path"),
            );
        }
    }
    for state in &machine.states {
        for param in state.payload.iter().chain(&state.context) {
            let mut paths = TypeNames(Vec::new());
            paths.visit_type(&param.ty);
            for ident in paths.0 {
                if let Some((_, what)) = generated.iter().find(|(name, _)| ident == name) {
                    errors.push(
                        ident.span(),
                        format!("`{ident}` here would name {what}, not your type\n= help: rename the state, or write this type's full path (`crate::...::{ident}`)"),
                    );
                }
            }
        }
    }
}

/// Single-segment type names used inside a type.
struct TypeNames(Vec<Ident>);

impl<'ast> Visit<'ast> for TypeNames {
    fn visit_type_path(&mut self, path: &'ast syn::TypePath) {
        if path.qself.is_none()
            && path.path.segments.len() == 1
            && path.path.leading_colon.is_none()
        {
            self.0.push(path.path.segments[0].ident.clone());
        }
        syn::visit::visit_type_path(self, path);
    }
}

/// The first token of every `goto!(...)` in a body: the states it goes to.
struct GotoNames(Vec<Ident>);

impl<'ast> Visit<'ast> for GotoNames {
    fn visit_macro(&mut self, mac: &'ast Macro) {
        if mac.path.segments.last().is_some_and(|segment| segment.ident == "goto")
            && let Some(proc_macro2::TokenTree::Ident(ident)) =
                mac.tokens.clone().into_iter().next()
        {
            self.0.push(ident);
        }
    }
}

/// `goto!(target(...))` in a state's body names one of that state's declared targets.
struct GotoTargets<'a> {
    machine: &'a Machine,
    state: &'a State,
    names: &'a [String],
    errors: &'a mut Errors,
}

impl<'ast> Visit<'ast> for GotoTargets<'_> {
    fn visit_macro(&mut self, mac: &'ast Macro) {
        if mac.path.segments.last().is_none_or(|segment| segment.ident != "goto") {
            return;
        }
        let Some(target) = mac.tokens.clone().into_iter().next().and_then(|token| match token {
            proc_macro2::TokenTree::Ident(ident) => Some(ident),
            _ => None,
        }) else {
            return;
        };
        let from = &self.state.ident;
        if !self.names.iter().any(|name| target == name) {
            let hint =
                suggest::hint(&target.to_string(), "states", self.names.iter().map(String::as_str));
            self.errors.push(
                target.span(),
                format!("no state named `{target}` in machine `{}`\n{hint}", self.machine.ident),
            );
        } else if self.state.is_end() {
            self.errors.push_spanned(
                &mac.tokens,
                format!("end state `{from}` cannot go to another state\n= help: an end state returns the run's output: `Ok(output)`"),
            );
        } else if self.state.is_branch_end() {
            self.errors.push_spanned(
                &mac.tokens,
                format!("state `{from}` ends its branch, so it cannot go to another state\n= help: a branch_end state returns its branch's output: `Ok(output)`"),
            );
        } else if let Some(fan_out) = &self.state.attr.fan_out {
            let target =
                fan_out.target.first().map_or_else(|| "state".to_owned(), ToString::to_string);
            self.errors.push_spanned(
                &mac.tokens,
                format!("state `{from}` fans out, so it goes to one branch per item\n= help: return fan_out!({target}, items)"),
            );
        } else if self.state.attr.fork.is_some() {
            let branches: Vec<String> =
                self.state.branches().iter().map(|b| format!("{b}(...)")).collect();
            self.errors.push_spanned(
                &mac.tokens,
                format!("state `{from}` forks, so it goes to all its branches at once\n= help: return fork!({})", branches.join(", ")),
            );
        } else if !self.state.targets().contains(&target) {
            let allowed = suggest::list(self.state.targets());
            let mut declared: Vec<String> =
                self.state.targets().iter().map(ToString::to_string).collect();
            declared.push(target.to_string());
            self.errors.push_spanned(
                &mac.tokens,
                format!(
                    "state `{from}` does not declare a transition to `{target}`\n= note: declare it in the state's attribute: #[state(to({}))]\n= help: `{from}` can go to: {allowed}",
                    declared.join(", ")
                ),
            );
        }
    }
}

/// A type as text with every path cut to its last segment (`Order` for `crate::shop::Order`):
/// two types the macro tells apart this way are different whatever the imports.
pub(crate) fn last_segments(ty: &Type) -> String {
    struct Cut;
    impl syn::visit_mut::VisitMut for Cut {
        fn visit_path_mut(&mut self, path: &mut syn::Path) {
            if let Some(last) = path.segments.pop() {
                path.segments.clear();
                path.segments.push(last.into_value());
            }
            path.leading_colon = None;
            syn::visit_mut::visit_path_mut(self, path);
        }
    }
    let mut ty = ty.clone();
    syn::visit_mut::VisitMut::visit_type_mut(&mut Cut, &mut ty);
    type_text(&ty)
}

/// Whether a `use` of the module imports `ident` by name (`use super::refund;`, or renamed to it).
fn imports_by_name(machine: &Machine, ident: &Ident) -> bool {
    fn names(tree: &syn::UseTree, ident: &Ident) -> bool {
        match tree {
            syn::UseTree::Path(path) => names(&path.tree, ident),
            syn::UseTree::Name(name) => name.ident == *ident,
            syn::UseTree::Rename(rename) => rename.rename == *ident,
            syn::UseTree::Glob(_) => false,
            syn::UseTree::Group(group) => group.items.iter().any(|tree| names(tree, ident)),
        }
    }
    machine.items.iter().any(|item| matches!(item, Item::Use(used) if names(&used.tree, ident)))
}

/// The outer type of what `state` returns: `Result` in `Result<Validate>`.
fn wrapper(state: &State) -> Option<&Ident> {
    match &state.func.sig.output {
        syn::ReturnType::Type(_, ty) => match &**ty {
            Type::Path(path) => path.path.segments.last().map(|segment| &segment.ident),
            _ => None,
        },
        syn::ReturnType::Default => None,
    }
}

/// Whether `state` returns what the macro accepts: `Result<Validate>` (its next type), or
/// `Result<T>` for an end state.
pub fn returns_ok(state: &State) -> bool {
    let Some(returns) = &state.returns else { return false };
    wrapper(state).is_some_and(|w| w == "Result")
        && (state.is_end() || state.is_branch_end() || is_named(returns, &state.variant()))
}

fn is_named(ty: &Type, name: &Ident) -> bool {
    matches!(ty, Type::Path(path) if path.qself.is_none() && path.path.is_ident(name))
}

fn returns_span(state: &State) -> proc_macro2::Span {
    match &state.func.sig.output {
        syn::ReturnType::Type(_, ty) => syn::spanned::Spanned::span(&**ty),
        syn::ReturnType::Default => state.func.sig.paren_token.span.close(),
    }
}

fn item_ident(item: &Item) -> Option<&Ident> {
    match item {
        Item::Const(i) => Some(&i.ident),
        Item::Enum(i) => Some(&i.ident),
        Item::Fn(i) => Some(&i.sig.ident),
        Item::Mod(i) => Some(&i.ident),
        Item::Static(i) => Some(&i.ident),
        Item::Struct(i) => Some(&i.ident),
        Item::Trait(i) => Some(&i.ident),
        Item::Type(i) => Some(&i.ident),
        Item::Union(i) => Some(&i.ident),
        _ => None,
    }
}
