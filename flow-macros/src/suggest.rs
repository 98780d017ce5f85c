//! "Did you mean" hints for misspelled names.

/// The candidate closest to `name`, if one is close enough to be a likely typo: within a
/// third of its length in edits, or else the only candidate that begins with the same three
/// letters (`retires` for `retry`).
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    let candidates: Vec<&str> = candidates.into_iter().collect();
    let near = candidates
        .iter()
        .map(|candidate| (distance(name, candidate), *candidate))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, candidate)| candidate);
    near.or_else(|| {
        let stem: String = name.chars().take(3).collect();
        let mut alike = candidates
            .iter()
            .filter(|candidate| stem.chars().count() == 3 && candidate.starts_with(&stem));
        match (alike.next(), alike.next()) {
            (Some(only), None) => Some(*only),
            _ => None,
        }
    })
}

/// A help line: "did you mean `x`?" for a close candidate, else the full list of candidates.
pub fn hint<'a>(
    name: &str,
    what: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
) -> String {
    match closest(name, candidates.clone()) {
        Some(close) => format!("= help: did you mean `{close}`?"),
        None => format!("= help: the {what} are: {}", list(candidates)),
    }
}

/// `a`, `b`, `c`: names as code, comma-separated.
pub fn list<T: std::fmt::Display>(names: impl IntoIterator<Item = T>) -> String {
    names.into_iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn a_near_name_or_the_only_one_with_its_first_letters() {
        let keys = ["start", "end", "to", "retry", "timeout", "max_visits", "wait"];
        assert_eq!(closest("retyr", keys), Some("retry"));
        assert_eq!(closest("retires", keys), Some("retry"));
        assert_eq!(closest("tim", keys), Some("timeout"));
        // Two keys begin with `ma`...: only one with `max`.
        assert_eq!(closest("maximum", ["max_visits", "max_steps"]), None);
        assert_eq!(closest("zzz", keys), None);
    }
}
