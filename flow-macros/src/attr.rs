//! The attribute grammar: `#[state(...)]` and `#[flow::machine(...)]`.
//!
//! ```text
//! #[flow::machine(max_steps = 1000, name = "checkout", version = 2)]
//! #[state(start, end, to(a, b), retry(attempts = 5, backoff = "100ms..10s", jitter = "full"),
//!         timeout = "30s", max_visits = 3, wait = "1h",
//!         signal(timeout = "3d", default = escalate), compensate = refund,
//!         fallback = review, on_failure = pause)]
//! ```
//!
//! Every problem is pushed to [`Errors`] and parsing goes on, so one compile shows them all.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, Ident, Lit, LitStr, Token};

use crate::suggest;

const STATE_KEYS: [&str; 17] = [
    "start",
    "end",
    "to",
    "retry",
    "timeout",
    "max_visits",
    "wait",
    "signal",
    "compensate",
    "fallback",
    "on_failure",
    "uses",
    "fork",
    "join",
    "branch_end",
    "fan_out",
    "collect",
];
const SIGNAL_KEYS: [&str; 2] = ["timeout", "default"];
const RETRY_KEYS: [&str; 3] = ["attempts", "backoff", "jitter"];
/// The values of `retry(jitter = "...")`.
const JITTERS: [&str; 3] = ["full", "equal", "none"];
const MACHINE_KEYS: [&str; 5] = ["max_steps", "name", "version", "pools", "priority"];
const DURATION_HELP: &str =
    "= help: write a number and a unit, such as \"250ms\", \"30s\", \"5m\", \"1h30m\" or \"2d\"";

/// Errors collected across phases, reported together.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    /// Records `message` at `span`.
    pub fn push(&mut self, span: Span, message: impl std::fmt::Display) {
        self.add(syn::Error::new(span, message));
    }

    /// Records `message` spanning all of `tokens`.
    pub fn push_spanned(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.add(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error as it is.
    pub fn add(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// `Err` with every recorded error, or `Ok(())` if there were none.
    pub fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// What one `#[state(...)]` says.
pub struct StateAttr {
    /// `start`, where present.
    pub start: Option<Span>,
    /// `end`, where present.
    pub end: Option<Span>,
    /// `to(...)`: its keyword's span and the target names.
    pub to: Option<(Span, Vec<Ident>)>,
    /// Retries, timeout and visit limit.
    pub policy: PolicyAttr,
    /// `signal(timeout = "3d", default = escalate)`, where present.
    pub signal: Option<SignalAttr>,
    /// `compensate = refund`: the fn undoing a completed visit.
    pub compensate: Option<syn::Path>,
    /// `fallback = review`: where the run goes when this state fails for good.
    pub fallback: Option<Ident>,
    /// `on_failure = pause` (or `fail`), with its value's span.
    pub on_failure: Option<(Span, OnFailure)>,
    /// `fork(pay, reserve)`: its keyword's span and the branches' first states.
    pub fork: Option<(Span, Vec<Ident>)>,
    /// `join = ship`: where a fork's branches meet.
    pub join: Option<Ident>,
    /// `branch_end`, where present: the state ends its branch of a fork.
    pub branch_end: Option<Span>,
    /// `collect`, where present: the fork's join takes each branch's `Result`.
    pub collect: Option<Span>,
    /// `fan_out(summarise, limit = 3)`: a branch per item, all starting in one state.
    pub fan_out: Option<FanOutAttr>,
}

/// What `fan_out(...)` says.
pub struct FanOutAttr {
    /// The `fan_out` keyword.
    pub span: Span,
    /// The state each item's branch starts in, as a one-element list (like a fork's).
    pub target: Vec<Ident>,
    /// How many branches run at once; all of them unless set.
    pub limit: Option<u32>,
    /// How many branches' outputs the join waits for; all of them unless set.
    pub first: Option<u32>,
}

/// What `on_failure = ...` says.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    Fail,
    Pause,
}

/// How a retry's wait is drawn under its ceiling: `retry(jitter = "equal")`.
#[derive(Clone, Copy)]
pub enum Jitter {
    Full,
    Equal,
    None,
}

/// How long a state waits for its signal, and where it goes without one.
pub struct SignalAttr {
    /// The `signal` keyword.
    pub span: Span,
    /// `timeout = "..."`, with its value's span.
    pub timeout: Option<(Span, Duration)>,
    /// `default = state`.
    pub default: Option<Ident>,
}

/// The policy keys of a `#[state(...)]`; `None` where not given.
#[derive(Default)]
pub struct PolicyAttr {
    pub attempts: Option<u32>,
    pub backoff: Option<(Duration, Duration)>,
    pub jitter: Option<Jitter>,
    pub timeout: Option<Duration>,
    pub max_visits: Option<u32>,
    pub wait: Option<Duration>,
    /// `uses(gpu = 1, api)`: pool names, as written, and units (1 when not given).
    pub uses: Vec<(Ident, u32)>,
}

/// What `#[flow::machine(...)]` says.
#[derive(Default)]
pub struct MachineAttr {
    pub name: Option<String>,
    pub max_steps: Option<u64>,
    pub version: Option<u32>,
    /// `pools(gpu, api)`: the engine pools its states may use.
    pub pools: Vec<Ident>,
    /// `priority = -1`: its runs' priority for pools, lower first.
    pub priority: Option<i32>,
}

/// Reads a `#[state]` or `#[state(...)]` attribute.
pub fn state(attr: &Attribute, errors: &mut Errors) -> StateAttr {
    let mut out = StateAttr {
        start: None,
        end: None,
        to: None,
        policy: PolicyAttr::default(),
        signal: None,
        compensate: None,
        fallback: None,
        on_failure: None,
        fork: None,
        join: None,
        branch_end: None,
        collect: None,
        fan_out: None,
    };
    if matches!(attr.meta, syn::Meta::Path(_)) {
        return out;
    }
    let result = attr.parse_nested_meta(|meta| {
        let Some(key) = meta.path.get_ident().map(Ident::to_string) else {
            errors.push_spanned(&meta.path, "expected a key of #[state(...)]");
            return skip_value(&meta);
        };
        let span = meta.path.span();
        let repeated = match key.as_str() {
            "start" => out.start.replace(span).is_some(),
            "end" => out.end.replace(span).is_some(),
            "branch_end" => out.branch_end.replace(span).is_some(),
            "collect" => out.collect.replace(span).is_some(),
            "fork" => {
                let mut branches = Vec::new();
                meta.parse_nested_meta(|branch| {
                    match branch.path.get_ident() {
                        Some(name) if branches.contains(name) => errors.push_spanned(
                            name,
                            format!("branch `{name}` is listed twice in this fork(...)\n= help: each branch runs once; remove this `{name}`"),
                        ),
                        Some(name) => branches.push(name.clone()),
                        None => errors.push_spanned(
                            &branch.path,
                            "expected a state name\n= help: name the first state of each branch: fork(pay, reserve)",
                        ),
                    }
                    Ok(())
                })?;
                out.fork.replace((span, branches)).is_some()
            }
            "fan_out" => {
                let mut fan_out = FanOutAttr { span, target: Vec::new(), limit: None, first: None };
                meta.parse_nested_meta(|option| {
                    if option.path.is_ident("limit") {
                        let value = option.value()?.parse::<Expr>()?;
                        match int_value::<u32>(&value, "limit", errors) {
                            Some(0) => errors.push_spanned(&value, "limit = 0 would run no branch\n= help: limit is how many items run at once; use 1 or more, or leave it out for all"),
                            limit => fan_out.limit = limit,
                        }
                        return Ok(());
                    }
                    if option.path.is_ident("first") {
                        let value = option.value()?.parse::<Expr>()?;
                        match int_value::<u32>(&value, "first", errors) {
                            Some(0) => errors.push_spanned(&value, "first = 0 would join before any branch ends\n= help: first is how many items' outputs the join waits for; use 1 or more, or leave it out for all"),
                            first => fan_out.first = first,
                        }
                        return Ok(());
                    }
                    match option.path.get_ident() {
                        Some(name) if fan_out.target.is_empty() && !option.input.peek(Token![=]) => {
                            fan_out.target.push(name.clone());
                        }
                        _ => {
                            errors.push_spanned(&option.path, "fan_out takes one state, then an optional limit and first\n= help: fan_out(summarise), fan_out(summarise, limit = 3) or fan_out(summarise, first = 2)");
                            return skip_value(&option);
                        }
                    }
                    Ok(())
                })?;
                if fan_out.target.is_empty() {
                    errors.push(span, "fan_out names the state each item's branch starts in\n= help: fan_out(summarise), where `summarise` takes one item");
                }
                out.fan_out.replace(fan_out).is_some()
            }
            "join" => {
                let value = meta.value()?.parse::<Expr>()?;
                match expr_ident(&value) {
                    Some(join) => out.join.replace(join).is_some(),
                    None => {
                        errors.push_spanned(&value, "`join` names the state the branches meet in\n= help: join = ship, where `ship` takes one parameter per branch");
                        false
                    }
                }
            }
            "to" if meta.input.peek(syn::Token![=]) => {
                // `to = ship` or `to = [a, b]`: read the names anyway, so that the one error is
                // this one, not knock-ons about missing targets.
                let equals: syn::Token![=] = meta.input.parse()?;
                let value = meta.input.parse::<Expr>()?;
                let names: Vec<Ident> = match &value {
                    Expr::Path(path) => path.path.get_ident().cloned().into_iter().collect(),
                    Expr::Array(list) => list.elems.iter().filter_map(expr_ident).collect(),
                    Expr::Tuple(list) => list.elems.iter().filter_map(expr_ident).collect(),
                    Expr::Paren(inner) => expr_ident(&inner.expr).into_iter().collect(),
                    _ => Vec::new(),
                };
                let written = if names.is_empty() {
                    "next_state".to_owned()
                } else {
                    names.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                };
                errors.push(
                    equals.span,
                    format!("`to` takes its targets in parentheses, without `=`\n= help: write `to({written})`"),
                );
                out.to.replace((span, names)).is_some()
            }
            "to" => {
                let mut targets = Vec::new();
                meta.parse_nested_meta(|target| {
                    match target.path.get_ident() {
                        Some(name) => targets.push(name.clone()),
                        None => errors.push_spanned(
                            &target.path,
                            "expected a state name\n= help: name the target states: to(charge, reject)",
                        ),
                    }
                    Ok(())
                })?;
                out.to.replace((span, targets)).is_some()
            }
            "uses" => {
                let repeated = !out.policy.uses.is_empty();
                meta.parse_nested_meta(|pool| {
                    let Some(name) = pool.path.get_ident().cloned() else {
                        errors.push_spanned(&pool.path, "expected a pool name\n= help: uses(gpu = 1, api = 2)");
                        return skip_value(&pool);
                    };
                    let units = if pool.input.peek(Token![=]) {
                        let value = pool.value()?.parse::<Expr>()?;
                        match int_value::<u32>(&value, "units", errors) {
                            Some(0) => {
                                errors.push_spanned(&value, format!("a state that holds no `{name}` needs no uses({name} = ...)\n= help: remove it, or hold 1 or more"));
                                None
                            }
                            units => units,
                        }
                    } else {
                        Some(1)
                    };
                    if out.policy.uses.iter().any(|(known, _)| *known == name) {
                        errors.push_spanned(&name, format!("pool `{name}` is named twice in this uses(...)\n= help: name it once, with all the units: uses({name} = 2)"));
                    } else if let Some(units) = units {
                        out.policy.uses.push((name, units));
                    }
                    Ok(())
                })?;
                repeated
            }
            "retry" => {
                let policy = &out.policy;
                let repeated =
                    policy.attempts.is_some() || policy.backoff.is_some() || policy.jitter.is_some();
                let mut keys = Vec::new();
                meta.parse_nested_meta(|option| {
                    if given_twice(&option, &mut keys, "retry(...)", errors) {
                        return skip_value(&option);
                    }
                    retry_option(&option, &mut out.policy, errors)
                })?;
                // A backoff without attempts would never be used: the state tries once.
                let shapes_a_retry = keys.iter().any(|key| key == "backoff" || key == "jitter");
                if shapes_a_retry && !keys.iter().any(|key| key == "attempts") {
                    errors.push_spanned(
                        &meta.path,
                        "retry(...) without `attempts` retries nothing: a state makes one attempt \
                         unless `attempts` says more\n= help: say how many tries, the first \
                         included, such as retry(attempts = 3, backoff = \"1s..1m\")",
                    );
                }
                repeated
            }
            "timeout" => {
                let value = meta.value()?.parse::<Expr>()?;
                let timeout = duration_value(&value, "timeout", errors);
                if timeout == Some(Duration::ZERO) {
                    errors.push_spanned(&value, "a timeout of zero would fail every attempt\n= help: give the longest time one attempt may take, such as \"30s\"");
                }
                out.policy.timeout.replace(timeout.unwrap_or_default()).is_some()
            }
            "max_visits" => {
                let value = meta.value()?.parse::<Expr>()?;
                let visits = int_value::<u32>(&value, "max_visits", errors);
                if visits == Some(0) {
                    errors.push_spanned(&value, "max_visits = 0 would refuse the first visit\n= help: max_visits counts how often a run may enter this state; use 1 or more");
                }
                out.policy.max_visits.replace(visits.unwrap_or(1)).is_some()
            }
            "wait" => {
                let value = meta.value()?.parse::<Expr>()?;
                let wait = duration_value(&value, "wait", errors);
                out.policy.wait.replace(wait.unwrap_or_default()).is_some()
            }
            "signal" => {
                let mut signal = SignalAttr { span, timeout: None, default: None };
                if meta.input.peek(syn::token::Paren) {
                    let mut keys = Vec::new();
                    meta.parse_nested_meta(|option| {
                        if given_twice(&option, &mut keys, "signal(...)", errors) {
                            return skip_value(&option);
                        }
                        signal_option(&option, &mut signal, errors)
                    })?;
                }
                out.signal.replace(signal).is_some()
            }
            "compensate" => {
                let value = meta.value()?.parse::<Expr>()?;
                let path = match value {
                    Expr::Path(path) if path.qself.is_none() => Some(path.path),
                    other => {
                        errors.push_spanned(&other, "`compensate` names an async fn\n= help: compensate = refund, where `async fn refund(cx: &mut Context, <this state's payload>) -> Result<()>`");
                        None
                    }
                };
                out.compensate.replace(path.unwrap_or_else(|| meta.path.clone())).is_some()
            }
            "fallback" => {
                let value = meta.value()?.parse::<Expr>()?;
                let target = match &value {
                    Expr::Path(path) if path.path.get_ident().is_some() => path.path.get_ident().cloned(),
                    _ => {
                        errors.push_spanned(&value, "`fallback` names a state of this machine\n= help: fallback = review, where `review` takes the failure: `failure: flow::Caught`");
                        None
                    }
                };
                match target {
                    Some(target) => out.fallback.replace(target).is_some(),
                    None => false,
                }
            }
            "on_failure" => {
                let value = meta.value()?.parse::<Expr>()?;
                let choice = match &value {
                    Expr::Path(path) if path.path.is_ident("pause") => Some(OnFailure::Pause),
                    Expr::Path(path) if path.path.is_ident("fail") => Some(OnFailure::Fail),
                    _ => {
                        errors.push_spanned(&value, "`on_failure` is `fail` or `pause`\n= help: on_failure = pause holds the run for an operator to resume; to go to another state, write fallback = state");
                        None
                    }
                };
                match choice {
                    Some(choice) => out.on_failure.replace((value.span(), choice)).is_some(),
                    None => false,
                }
            }
            other => {
                let hint = suggest::hint(other, "keys of #[state(...)]", STATE_KEYS);
                errors.push(span, format!("unknown key `{other}` in #[state(...)]\n{hint}"));
                return skip_value(&meta);
            }
        };
        if repeated {
            errors.push(
                span,
                format!(
                    "`{key}` is given twice in this #[state(...)]\n= help: give each key once; \
                     keep the one you mean and remove this one"
                ),
            );
        }
        Ok(())
    });
    if let Err(error) = result {
        errors.add(error);
    }
    out
}

fn signal_option(
    meta: &ParseNestedMeta,
    signal: &mut SignalAttr,
    errors: &mut Errors,
) -> syn::Result<()> {
    let key = meta.path.get_ident().map(Ident::to_string).unwrap_or_default();
    match key.as_str() {
        "timeout" => {
            let value = meta.value()?.parse::<Expr>()?;
            if let Some(timeout) = duration_value(&value, "timeout", errors) {
                signal.timeout = Some((value.span(), timeout));
            }
        }
        "default" => {
            let value = meta.value()?.parse::<Expr>()?;
            match &value {
                Expr::Path(path) if path.path.get_ident().is_some() => {
                    signal.default = path.path.get_ident().cloned();
                }
                _ => errors.push_spanned(
                    &value,
                    "`default` names a state\n= help: signal(timeout = \"3d\", default = escalate)",
                ),
            }
        }
        other => {
            let hint = suggest::hint(other, "keys of signal(...)", SIGNAL_KEYS);
            errors
                .push_spanned(&meta.path, format!("unknown key `{other}` in signal(...)\n{hint}"));
            return skip_value(meta);
        }
    }
    Ok(())
}

fn retry_option(
    meta: &ParseNestedMeta,
    policy: &mut PolicyAttr,
    errors: &mut Errors,
) -> syn::Result<()> {
    let key = meta.path.get_ident().map(Ident::to_string).unwrap_or_default();
    match key.as_str() {
        "attempts" => {
            let value = meta.value()?.parse::<Expr>()?;
            match int_value::<u32>(&value, "attempts", errors) {
                Some(0) => errors.push_spanned(
                    &value,
                    "retry attempts must be at least 1\n= help: `attempts` counts every try, the first included: attempts = 1 means no retry, attempts = 3 means up to two retries",
                ),
                Some(n) => policy.attempts = Some(n),
                None => {}
            }
        }
        "backoff" => {
            let value = meta.value()?.parse::<Expr>()?;
            policy.backoff = backoff_value(&value, errors);
        }
        "jitter" => {
            let value = meta.value()?.parse::<Expr>()?;
            policy.jitter = jitter_value(&value, errors);
        }
        other => {
            let hint = suggest::hint(other, "keys of retry(...)", RETRY_KEYS);
            errors.push_spanned(&meta.path, format!("unknown key `{other}` in retry(...)\n{hint}"));
            return skip_value(meta);
        }
    }
    Ok(())
}

/// Reads the arguments of `#[flow::machine(...)]`.
pub fn machine(args: TokenStream, errors: &mut Errors) -> MachineAttr {
    let mut out = MachineAttr::default();
    let mut keys = Vec::new();
    let parser = syn::meta::parser(|meta| {
        if given_twice(&meta, &mut keys, "#[flow::machine(...)]", errors) {
            return skip_value(&meta);
        }
        let key = meta.path.get_ident().map(Ident::to_string).unwrap_or_default();
        match key.as_str() {
            "max_steps" => {
                let value = meta.value()?.parse::<Expr>()?;
                match int_value::<u64>(&value, "max_steps", errors) {
                    Some(0) => errors.push_spanned(&value, "max_steps = 0 would refuse every run\n= help: max_steps bounds how many states one run may enter; use 1 or more"),
                    steps => out.max_steps = steps,
                }
            }
            "name" => {
                let name = meta.value()?.parse::<LitStr>()?;
                if name.value().trim().is_empty() {
                    errors.push_spanned(&name, "a machine's name cannot be empty");
                }
                out.name = Some(name.value());
            }
            "version" => {
                let value = meta.value()?.parse::<Expr>()?;
                match int_value::<u32>(&value, "version", errors) {
                    Some(0) => errors.push_spanned(&value, "versions start at 1\n= help: a machine without `version` is version 1; bump it each time its shape changes"),
                    version => out.version = version,
                }
            }
            "pools" => {
                meta.parse_nested_meta(|pool| {
                    match pool.path.get_ident() {
                        Some(name) if out.pools.contains(name) => errors.push_spanned(
                            name,
                            format!("pool `{name}` is listed twice\n= help: remove this `{name}`"),
                        ),
                        Some(name) => out.pools.push(name.clone()),
                        None => errors.push_spanned(
                            &pool.path,
                            "expected a pool name\n= help: name the engine's pools its states use: pools(gpu, api)",
                        ),
                    }
                    Ok(())
                })?;
            }
            "priority" => {
                let value = meta.value()?.parse::<Expr>()?;
                out.priority = signed_value(&value, "priority", errors);
            }
            other => {
                let hint = suggest::hint(other, "keys of #[flow::machine(...)]", MACHINE_KEYS);
                errors.push_spanned(
                    &meta.path,
                    format!("unknown key `{other}` in #[flow::machine(...)]\n{hint}"),
                );
                return skip_value(&meta);
            }
        }
        Ok(())
    });
    if let Err(error) = parser.parse2(args) {
        errors.add(error);
    }
    out
}

/// Whether `meta`'s key is in `keys` already (then reported, on its second use), else adds it.
fn given_twice(
    meta: &ParseNestedMeta,
    keys: &mut Vec<String>,
    place: &str,
    errors: &mut Errors,
) -> bool {
    let Some(key) = meta.path.get_ident().map(Ident::to_string) else { return false };
    if keys.contains(&key) {
        errors.push_spanned(
            &meta.path,
            format!(
                "`{key}` is given twice in this {place}\n= help: give each key once; keep the \
                 one you mean and remove this one"
            ),
        );
        return true;
    }
    keys.push(key);
    false
}

/// Consumes `= value` or `(...)` after a key that was already reported.
fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<TokenStream>()?;
    }
    Ok(())
}

/// A whole number that may be negative: `-1`.
fn signed_value(value: &Expr, key: &str, errors: &mut Errors) -> Option<i32> {
    match value {
        Expr::Unary(syn::ExprUnary { op: syn::UnOp::Neg(_), expr, .. }) => {
            int_value::<i32>(expr, key, errors).map(|n| -n)
        }
        other => int_value::<i32>(other, key, errors),
    }
}

fn int_value<N>(value: &Expr, key: &str, errors: &mut Errors) -> Option<N>
where
    N: std::str::FromStr,
    N::Err: std::fmt::Display,
{
    match value {
        Expr::Lit(ExprLit { lit: Lit::Int(int), .. }) => match int.base10_parse::<N>() {
            Ok(n) => Some(n),
            Err(error) => {
                errors.push_spanned(int, format!("`{key}` {error}"));
                None
            }
        },
        _ => {
            errors
                .push_spanned(value, format!("`{key}` takes a whole number, such as `{key} = 3`"));
            None
        }
    }
}

fn string_value<'a>(
    value: &'a Expr,
    key: &str,
    example: &str,
    errors: &mut Errors,
) -> Option<&'a LitStr> {
    match value {
        Expr::Lit(ExprLit { lit: Lit::Str(text), .. }) => Some(text),
        _ => {
            errors.push_spanned(
                value,
                format!("`{key}` takes a string, such as `{key} = \"{example}\"`"),
            );
            None
        }
    }
}

fn duration_value(value: &Expr, key: &str, errors: &mut Errors) -> Option<Duration> {
    let text = string_value(value, key, "30s", errors)?;
    match parse_duration(&text.value()) {
        Ok(duration) => Some(duration),
        Err(problem) => {
            errors.push_spanned(
                text,
                format!("bad duration {:?} for `{key}`: {problem}\n{DURATION_HELP}", text.value()),
            );
            None
        }
    }
}

/// `"BASE..CAP"` (exponential from BASE, capped at CAP) or `"BASE"` (every wait up to BASE).
fn backoff_value(value: &Expr, errors: &mut Errors) -> Option<(Duration, Duration)> {
    let text = string_value(value, "backoff", "100ms..10s", errors)?;
    let raw = text.value();
    let (base, cap) = raw.split_once("..").unwrap_or((&raw, &raw));
    let parsed = parse_duration(base).and_then(|base| Ok((base, parse_duration(cap)?)));
    match parsed {
        Ok((base, cap)) if base > cap => {
            errors.push_spanned(text, format!("backoff {raw:?} starts above its cap\n= help: write \"BASE..CAP\" with BASE <= CAP, such as \"100ms..10s\""));
            None
        }
        Ok(bounds) => Some(bounds),
        Err(problem) => {
            errors.push_spanned(text, format!("bad backoff {raw:?}: {problem}\n= help: write \"BASE..CAP\", such as \"100ms..10s\": retry n waits up to min(CAP, BASE * 2^(n-1))"));
            None
        }
    }
}

/// `"full"`, `"equal"` or `"none"`.
fn jitter_value(value: &Expr, errors: &mut Errors) -> Option<Jitter> {
    let text = string_value(value, "jitter", "equal", errors)?;
    match text.value().as_str() {
        "full" => Some(Jitter::Full),
        "equal" => Some(Jitter::Equal),
        "none" => Some(Jitter::None),
        other => {
            let help = match suggest::closest(other, JITTERS) {
                Some(close) => format!("= help: did you mean \"{close}\"?"),
                None => "= help: \"full\" (the default) waits a random time up to each retry's ceiling, \"equal\" a random time between half of it and all of it, \"none\" exactly the ceiling".to_owned(),
            };
            errors.push_spanned(
                text,
                format!("unknown jitter {other:?}: write \"full\", \"equal\" or \"none\"\n{help}"),
            );
            None
        }
    }
}

/// Parses `"250ms"`, `"1.5s"`, `"1h30m"`: numbers each followed by a unit.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("it is empty".into());
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len =
            rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if number.is_empty() {
            return Err(format!("`{}` does not start with a number", rest.trim()));
        }
        let value: f64 = number.parse().map_err(|_| format!("`{number}` is not a number"))?;
        let scale = match unit.trim() {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "" => return Err(format!("`{number}` has no unit")),
            other => return Err(format!("`{other}` is not a unit (ns, us, ms, s, m, h, d)")),
        };
        total += value * scale;
        rest = after;
    }
    Duration::try_from_secs_f64(total).map_err(|_| "it is too long".into())
}

/// The name in an expression that is a bare identifier.
fn expr_ident(expr: &Expr) -> Option<Ident> {
    match expr {
        Expr::Path(path) => path.path.get_ident().cloned(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("3 sec").unwrap_err().contains("not a unit"));
        assert!(parse_duration("").is_err());
    }
}
