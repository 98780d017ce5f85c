//! Checks of parallel branches: a fork's declaration, each branch staying in itself and
//! ending in a `branch_end`, and the join taking one output per branch.

use syn::Ident;

use super::last_segments;
use crate::ast::{Branch, Machine, State, type_text};
use crate::attr::Errors;
use crate::suggest;

/// A fork names at least two branches and a join, all states of this machine, and says
/// nothing else about where the run goes; `branch_end` goes without targets. Returns whether
/// the state's names resolve.
pub(super) fn declaration(
    machine: &Machine,
    state: &State,
    names: &[String],
    errors: &mut Errors,
) -> bool {
    let name = &state.ident;
    let mut sound = true;
    let unknown = |target: &Ident, errors: &mut Errors| {
        let hint = suggest::hint(&target.to_string(), "states", names.iter().map(String::as_str));
        errors.push(
            target.span(),
            format!("no state named `{target}` in machine `{}`\n{hint}", machine.ident),
        );
    };
    if let Some(span) = state.attr.branch_end
        && (state.attr.to.is_some() || state.is_end() || state.attr.fork.is_some())
    {
        errors.push(
            span,
            format!(
                "state `{name}` ends its branch, so it goes nowhere else\n= help: a branch_end \
                 state returns its output to the join; remove its to(...), end or fork(...)"
            ),
        );
    }
    if let Some(span) = state.attr.collect
        && !state.splits()
    {
        errors.push(
            span,
            format!(
                "state `{name}` does not fork, so it has no branches to collect
= help: \
                 collect goes with fork(...) or fan_out(...) and join = ...: the join then takes \
                 each branch's Result<Output, flow::BranchError>"
            ),
        );
    }
    if let Some(fan_out) = &state.attr.fan_out {
        return fan_out_declaration(machine, state, fan_out, errors, &unknown) && sound;
    }
    let Some((fork, branches)) = &state.attr.fork else {
        if let Some(join) = &state.attr.join {
            errors.push_spanned(
                join,
                format!(
                    "state `{name}` has `join` but no fork(...)\n= help: a fork declares both: \
                     #[state(fork(a, b), join = {join})]"
                ),
            );
        }
        return sound;
    };
    if state.attr.to.is_some() || state.is_end() {
        errors.push(
            *fork,
            format!(
                "state `{name}` forks, so its run goes to its branches and then to its join\n\
                 = help: remove its to(...) or end"
            ),
        );
    }
    if branches.len() < 2 {
        errors.push(
            *fork,
            format!(
                "a fork runs two or more branches, but `{name}` names {}\n= help: name each \
                 branch's first state: fork(pay, reserve); for one path, use to(...)",
                branches.len()
            ),
        );
    }
    for branch in branches {
        if machine.index_of(branch).is_none() {
            sound = false;
            unknown(branch, errors);
        }
    }
    sound & joins(machine, state, *fork, ("forks", "fork"), errors, &unknown)
}

/// A fan-out names the state each item's branch starts in, taking one item, and a join; it
/// says nothing else about where the run goes.
fn fan_out_declaration(
    machine: &Machine,
    state: &State,
    fan_out: &crate::attr::FanOutAttr,
    errors: &mut Errors,
    unknown: &dyn Fn(&Ident, &mut Errors),
) -> bool {
    let name = &state.ident;
    let mut sound = true;
    if state.attr.to.is_some() || state.is_end() || state.attr.fork.is_some() {
        errors.push(
            fan_out.span,
            format!(
                "state `{name}` fans out, so its run goes to its branches and then to its join\n\
                 = help: remove its to(...), end or fork(...)"
            ),
        );
    }
    match fan_out.target.first().map(|target| (target, machine.index_of(target))) {
        None => sound = false,
        Some((target, None)) => {
            sound = false;
            unknown(target, errors);
        }
        Some((target, Some(index))) if machine.states[index].payload.len() != 1 => {
            let taken = &machine.states[index];
            errors.push(
                taken.func.sig.paren_token.span.join(),
                format!(
                    "state `{target}` starts each branch of fan_out `{name}`, so it takes one \
                     item after the context, but it takes {}\n= help: write `async fn \
                     {target}(cx: &mut Context, item: Item)`; fan_out!({target}, items) gives \
                     each branch one of the items",
                    taken.payload.len()
                ),
            );
        }
        Some(_) => {}
    }
    sound & joins(machine, state, fan_out.span, ("fans out", "fan_out"), errors, unknown)
}

/// A fork or fan-out (`how`: the verb and the key, for messages; `span` its key) names a
/// join that is a state of this machine.
fn joins(
    machine: &Machine,
    state: &State,
    span: proc_macro2::Span,
    (verb, key): (&str, &str),
    errors: &mut Errors,
    unknown: &dyn Fn(&Ident, &mut Errors),
) -> bool {
    match &state.attr.join {
        None => {
            errors.push(
                span,
                format!(
                    "state `{}` {verb} but names no join\n= help: say where the branches meet: \
                     #[state({key}(...), join = next_state)]",
                    state.ident
                ),
            );
            false
        }
        Some(join) if machine.index_of(join).is_none() => {
            unknown(join, errors);
            false
        }
        Some(_) => true,
    }
}

/// Each branch of a fork stays in itself and ends in a `branch_end`, and the join takes one
/// output per branch, in the fork's order, of the type that branch ends with. Returns whether
/// all is well: the graph checks after it would only restate what it reports.
pub(super) fn branches(machine: &Machine, errors: &mut Errors) -> bool {
    let branches = machine.branches();
    let main = main_flow(machine);
    let mut sound = true;
    // Where a branch leaves itself: into another branch (said once per pair), or into the
    // main flow.
    let mut reported: Vec<(usize, usize)> = Vec::new();
    for (index, branch) in branches.iter().enumerate() {
        let fork = &machine.states[branch.fork];
        let label = branch_label(machine, branch);
        for &at in &branch.states {
            let here = &machine.states[at];
            for target in here.targets().iter().chain(&here.attr.fallback) {
                let Some(to) = machine.index_of(target) else { continue };
                let other =
                    branches.iter().position(|b| b.states.contains(&to) && !b.states.contains(&at));
                if let Some(other) = other {
                    sound = false;
                    let pair = (index.min(other), index.max(other));
                    if !reported.contains(&pair) {
                        reported.push(pair);
                        let them = &machine.states[branches[other].entry];
                        errors.push(
                            target.span(),
                            format!(
                                "`{}` goes to `{target}`, which {label} shares with branch `{}`: \
                                 a branch cannot go into another\n= help: give each branch its \
                                 own states; branches meet only at the join",
                                here.ident, them.ident
                            ),
                        );
                    }
                } else if main[to] && !main[at] {
                    sound = false;
                    let join = fork.attr.join.as_ref().map_or_else(String::new, Ident::to_string);
                    errors.push(
                        target.span(),
                        format!(
                            "`{target}` is outside {label}: a branch reaches the rest of the \
                             machine only through its join\n= help: end the branch with a \
                             #[state(branch_end)] state; the join `{join}` goes on from there"
                        ),
                    );
                }
            }
        }
    }
    if !sound {
        return false;
    }
    for branch in &branches {
        let label = branch_label(machine, branch);
        for &at in &branch.states {
            let here = &machine.states[at];
            if let Some(span) = here.attr.end {
                sound = false;
                errors.push(
                    span,
                    format!(
                        "state `{}` is in {label}, so it cannot end the run\n= help: end the \
                         branch instead: #[state(branch_end)]",
                        here.ident
                    ),
                );
            }
            if let Some(span) = here.split_span() {
                sound = false;
                errors.push(
                    span,
                    format!(
                        "state `{}` forks inside {label}; forks do not nest in this version\n\
                         = help: fork once, with every branch in the one fork(...)",
                        here.ident
                    ),
                );
            }
        }
        sound &= ends(machine, branch, &label, errors);
    }
    // The join, once per fork: its parameters against the branches' outputs.
    for (index, state) in machine.states.iter().enumerate() {
        if state.splits() {
            let of_fork: Vec<&Branch> = branches.iter().filter(|b| b.fork == index).collect();
            sound &= join(machine, state, &of_fork, errors);
        }
    }
    for state in &machine.states {
        let reached = branches
            .iter()
            .any(|b| b.states.iter().any(|&i| machine.states[i].ident == state.ident));
        if let Some(span) = state.attr.branch_end
            && !reached
        {
            sound = false;
            errors.push(
                span,
                format!(
                    "state `{}` is marked branch_end, but no fork's branch reaches it\n= help: \
                     branch_end ends a branch of a #[state(fork(...), join = ...)]; for the \
                     run's end, write `end`",
                    state.ident
                ),
            );
        }
    }
    sound
}

fn branch_label(machine: &Machine, branch: &Branch) -> String {
    let fork = &machine.states[branch.fork];
    format!("branch `{}` of fork `{}`", machine.states[branch.entry].ident, fork.ident)
}

/// The states a run reaches without entering a branch: a fork leads to its join.
fn main_flow(machine: &Machine) -> Vec<bool> {
    let mut main = vec![false; machine.states.len()];
    let start = machine.start().and_then(|s| machine.index_of(&s.ident));
    let mut stack: Vec<usize> = start.into_iter().collect();
    while let Some(at) = stack.pop() {
        if std::mem::replace(&mut main[at], true) {
            continue;
        }
        let here = &machine.states[at];
        let next = here.targets().iter().chain(&here.attr.fallback).chain(&here.attr.join);
        stack.extend(next.filter_map(|name| machine.index_of(name)));
    }
    main
}

/// The branch ends at least once, and its ends agree on one output type.
fn ends(machine: &Machine, branch: &Branch, label: &str, errors: &mut Errors) -> bool {
    let entry = &machine.states[branch.entry];
    let ends = branch_ends(machine, branch);
    let Some(first) = ends.first() else {
        errors.push(
            entry.ident.span(),
            format!(
                "{label} never ends: no state it reaches is marked branch_end\n= help: mark the \
                 branch's last state #[state(branch_end)]; its output goes to the join"
            ),
        );
        return false;
    };
    let mut sound = true;
    for other in &ends[1..] {
        if let (Some(expected), Some(found)) = (&first.returns, &other.returns)
            && last_segments(expected) != last_segments(found)
        {
            sound = false;
            errors.push_spanned(
                found,
                format!(
                    "branch_end `{}` returns `{}`, but branch_end `{}` of the same branch returns \
                     `{}`\n= help: a branch has one output type",
                    other.ident,
                    type_text(found),
                    first.ident,
                    type_text(expected)
                ),
            );
        }
    }
    sound
}

/// The `branch_end` states of a branch, in declaration order.
fn branch_ends<'a>(machine: &'a Machine, branch: &Branch) -> Vec<&'a State> {
    branch.states.iter().map(|&i| &machine.states[i]).filter(|s| s.is_branch_end()).collect()
}

/// The fork's join takes one parameter per branch, in the fork's order, each of the type that
/// branch ends with. Parameters in another order are one mistake, said once.
fn join(machine: &Machine, fork: &State, branches: &[&Branch], errors: &mut Errors) -> bool {
    let Some(join) = fork.attr.join.as_ref().and_then(|j| machine.index_of(j)) else {
        return true;
    };
    let join = &machine.states[join];
    // Each branch's output type, in the fork's order.
    let outputs: Vec<(&Ident, Option<&syn::Type>)> = fork
        .branches()
        .iter()
        .map(|name| {
            let branch = branches.iter().find(|b| machine.states[b.entry].ident == *name);
            let end = branch.and_then(|b| branch_ends(machine, b).into_iter().next());
            (name, end.and_then(|s| s.returns.as_ref()))
        })
        .collect();
    let context = machine.context().map_or_else(|| "Context".to_owned(), |(_, ty)| type_text(ty));
    // With `collect`, the join takes each branch's `Result` rather than its output.
    let collect = fork.attr.collect.is_some();
    let result = |output: String, error: &str| {
        if collect { format!("Result<{output}, {error}BranchError>") } else { output }
    };
    if fork.attr.fan_out.is_some() {
        // One parameter: every item's output, in item order.
        let Some((target, Some(output))) = outputs.first().copied() else { return true };
        let wanted = format!("Vec<{}>", result(type_text(output), "flow::"));
        let fits = join.payload.len() == 1
            && last_segments(&join.payload[0].ty)
                == format!("Vec<{}>", result(last_segments(output), ""));
        if !fits {
            let what = if collect { "result" } else { "output" };
            errors.push(
                join.func.sig.paren_token.span.join(),
                format!(
                    "join `{}` of fan_out `{}` takes every branch's {what} in one `{wanted}`, as \
                     branch `{target}` ends with `{}`\n= help: write `async fn {}(cx: &mut \
                     {context}, outputs: {wanted})`; the {what}s come in the items' order",
                    join.ident,
                    fork.ident,
                    type_text(output),
                    join.ident,
                ),
            );
            return false;
        }
        return true;
    }
    let params: Vec<String> = outputs
        .iter()
        .map(|(name, ty)| {
            let ty = ty.map_or_else(|| "_".to_owned(), |ty| result(type_text(ty), "flow::"));
            format!("{name}: {ty}")
        })
        .collect();
    let wanted = format!(
        "= help: a join takes the context and one output per branch, in the fork's order: \
         `async fn {}(cx: &mut {context}, {})`",
        join.ident,
        params.join(", ")
    );
    let span = join.func.sig.paren_token.span.join();
    if join.payload.len() != outputs.len() {
        errors.push(
            span,
            format!(
                "join `{}` takes {} parameter(s) after the context, but fork `{}` has {} \
                 branches\n{wanted}",
                join.ident,
                join.payload.len(),
                fork.ident,
                outputs.len()
            ),
        );
        return false;
    }
    let found: Vec<String> = join.payload.iter().map(|p| last_segments(&p.ty)).collect();
    let expected: Vec<Option<String>> =
        outputs.iter().map(|(_, ty)| ty.map(|ty| result(last_segments(ty), ""))).collect();
    let differ: Vec<usize> = (0..found.len())
        .filter(|&i| expected[i].as_ref().is_some_and(|e| *e != found[i]))
        .collect();
    if differ.is_empty() {
        return true;
    }
    let (mut sorted_found, mut sorted_expected) = (found.clone(), expected.clone());
    sorted_found.sort();
    sorted_expected.sort();
    if differ.len() > 1
        && sorted_expected.iter().zip(&sorted_found).all(|(e, f)| e.as_ref() == Some(f))
    {
        errors.push(
            span,
            format!(
                "join `{}` takes the branches' outputs in another order than fork `{}` declares \
                 its branches ({})\n{wanted}",
                join.ident,
                fork.ident,
                fork.branches().iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ),
        );
        return false;
    }
    for i in differ {
        let param = &join.payload[i];
        let (name, output) = outputs[i];
        errors.push_spanned(
            &param.ty,
            format!(
                "join `{}` takes `{}` for branch `{name}` of fork `{}`, which ends with `{}`\n{wanted}",
                join.ident,
                type_text(&param.ty),
                fork.ident,
                output.map_or_else(String::new, type_text),
            ),
        );
    }
    false
}
