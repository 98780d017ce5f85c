//! A [`Filter`] as SQL, for the stores whose runs' heads are rows of a `flow_runs` table
//! with the same column names (SQLite and PostgreSQL): only the criteria a filter sets become
//! conditions, so each listing is a plain `WHERE ... ORDER BY created, id LIMIT n` that the
//! database can serve from an index.

use std::fmt::Write;
use std::ops::Bound;

use super::{Filter, Order};
use crate::RunId;

/// The SQL dialects: how a parameter is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// `?1`, `?2`, …
    #[cfg(feature = "sqlite")]
    Sqlite,
    /// `$1::text`, `$2::bigint`, …: typed, as PostgreSQL cannot always infer them.
    #[cfg(feature = "postgres")]
    Postgres,
}

/// A parameter of a filter's SQL, for the store to convert to its driver's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value {
    Text(String),
    Int(i64),
    Run(RunId),
}

/// A filter's conditions on `flow_runs` and their parameters.
#[derive(Debug, Default)]
pub(super) struct Conditions {
    /// `AND`-joined conditions, each starting with ` AND `; empty for a filter that matches
    /// every run. Appended to a `WHERE` that has one condition already.
    pub sql: String,
    pub values: Vec<Value>,
}

/// The SQL of the summary a listing gives: the wait is the latest checkpoint's while the run
/// waits in the store, unfinished and held by no engine.
pub(super) const WAITING: &str = "status = 'running' AND owner IS NULL";

impl Conditions {
    /// The conditions of every criterion `filter` sets ([`Filter::matches`]), their
    /// parameters numbered from `first`.
    pub fn of(filter: &Filter, dialect: Dialect, first: usize) -> Conditions {
        let mut conditions = Conditions { sql: String::new(), values: Vec::new() };
        let texts = [
            ("machine", &filter.machine),
            ("key", &filter.key),
            ("state", &filter.state),
            ("status", &filter.status.map(|status| status.as_str().to_owned())),
        ];
        for (column, value) in texts {
            if let Some(value) = value {
                let param = conditions.push(Value::Text(value.clone()), dialect, first);
                let _ = write!(conditions.sql, " AND {column} = {param}");
            }
        }
        if let Some(wait) = filter.wait {
            let param = conditions.push(Value::Text(wait.as_str().to_owned()), dialect, first);
            let _ = write!(conditions.sql, " AND {WAITING} AND wait = {param}");
        }
        // The row comparison is exact; the plain one on `created` beside it lets an index on
        // `created` alone (PostgreSQL's) start the scan at the cursor.
        let (low, high) = filter.range();
        for (bound, operator) in [(low, '>'), (high, '<')] {
            if let Bound::Excluded(cursor) = bound {
                let created = conditions.push(Value::Int(to_sql(cursor.created)), dialect, first);
                let run = conditions.push(Value::Run(cursor.run), dialect, first);
                let _ = write!(
                    conditions.sql,
                    " AND created {operator}= {created} AND (created, id) {operator} ({created}, {run})"
                );
            }
        }
        conditions
    }

    /// Adds `value`, and returns how the SQL refers to it.
    pub fn push(&mut self, value: Value, dialect: Dialect, first: usize) -> String {
        let n = first + self.values.len();
        let param = match (dialect, &value) {
            #[cfg(feature = "sqlite")]
            (Dialect::Sqlite, _) => format!("?{n}"),
            #[cfg(feature = "postgres")]
            (Dialect::Postgres, Value::Text(_)) => format!("${n}::text"),
            #[cfg(feature = "postgres")]
            (Dialect::Postgres, Value::Int(_)) => format!("${n}::bigint"),
            #[cfg(feature = "postgres")]
            (Dialect::Postgres, Value::Run(_)) => format!("${n}::uuid"),
        };
        self.values.push(value);
        param
    }
}

/// `ORDER BY` and `LIMIT` for `filter`, its limit a parameter after `conditions`' own.
pub(super) fn order_and_limit(
    filter: &Filter,
    conditions: &mut Conditions,
    dialect: Dialect,
    first: usize,
) -> String {
    let mut sql = match filter.order {
        Order::OldestFirst => " ORDER BY created, id".to_owned(),
        Order::NewestFirst => " ORDER BY created DESC, id DESC".to_owned(),
    };
    if let Some(limit) = filter.limit {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let param = conditions.push(Value::Int(limit), dialect, first);
        let _ = write!(sql, " LIMIT {param}");
    }
    sql
}

/// Unix milliseconds as SQL's 64-bit integers, which they stay far below the top of.
fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
