//! What [`CheckpointStore::list`](super::CheckpointStore::list) is asked for, and what it
//! gives back: [`Filter`], [`Order`], [`Cursor`] and [`RunSummary`].

use std::fmt;
use std::ops::Bound;
use std::str::FromStr;

use serde::Serialize;
use thiserror::Error;

use super::{Status, Wait};
use crate::RunId;

/// Which runs [`CheckpointStore::list`](super::CheckpointStore::list) returns, in which order
/// and how many; every criterion left `None` matches all.
///
/// ```
/// use flow::store::{Filter, Status, Wait};
///
/// let stuck_checkouts = Filter::new().machine("checkout").status(Status::Stuck);
/// let order = Filter::new().key("order-1042");
/// // The 50 newest runs waiting for a signal in state `approve`, created since a time.
/// let approvals = Filter::new()
///     .state("approve")
///     .wait(Wait::Signal)
///     .created_after(1_767_225_600_000)
///     .newest_first()
///     .limit(50);
/// # let _ = (stuck_checkouts, order, approvals);
/// ```
///
/// # Paging
///
/// A listing with a [`limit`](Filter::limit) is one page; the next page is the same filter
/// with the [`cursor`](Filter::cursor) of the page's last run ([`RunSummary::cursor`]). Runs
/// are ordered by creation time, then by id, so pages neither skip nor repeat a run, even
/// while new runs are created (they come before the first page in newest-first order, after
/// the last page in oldest-first order).
///
/// ```
/// use flow::store::{CheckpointStore, Filter, MemoryStore, StoreError};
///
/// # async fn pages(store: MemoryStore) -> Result<(), StoreError> {
/// let mut filter = Filter::new().newest_first().limit(100);
/// loop {
///     let page = store.list(filter.clone()).await?;
///     // ... show the page ...
///     match page.last() {
///         Some(last) if page.len() == 100 => filter = filter.cursor(last.cursor()),
///         _ => break,
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only runs of this machine.
    pub machine: Option<String>,
    /// Only runs with this status.
    pub status: Option<Status>,
    /// Only runs started under this business key.
    pub key: Option<String>,
    /// Only runs in (or, finished, ended in) the state of this name ([`RunSummary::state`]).
    pub state: Option<String>,
    /// Only runs that wait in the store for this reason ([`RunSummary::wait`]): unfinished,
    /// held by no engine.
    pub wait: Option<Wait>,
    /// Only runs created strictly after this time, in Unix milliseconds.
    pub created_after: Option<u64>,
    /// Only runs created strictly before this time, in Unix milliseconds.
    pub created_before: Option<u64>,
    /// Oldest first (the default) or newest first.
    pub order: Order,
    /// Only runs that come after this one in [`order`](Filter::order): the next page of a
    /// listing.
    pub cursor: Option<Cursor>,
    /// At most this many runs; `None` (the default): all of them.
    pub limit: Option<usize>,
}

impl Filter {
    /// Matches every run, oldest first, without a limit.
    pub fn new() -> Filter {
        Filter::default()
    }

    /// Only runs of the machine named `name`.
    pub fn machine(mut self, name: impl Into<String>) -> Filter {
        self.machine = Some(name.into());
        self
    }

    /// Only runs with `status`.
    pub fn status(mut self, status: Status) -> Filter {
        self.status = Some(status);
        self
    }

    /// Only runs started under the business key `key` (one run per machine at most: the
    /// key and the machine make the run's id).
    pub fn key(mut self, key: impl Into<String>) -> Filter {
        self.key = Some(key.into());
        self
    }

    /// Only runs in the state named `name` (a finished run: that it ended in).
    pub fn state(mut self, name: impl Into<String>) -> Filter {
        self.state = Some(name.into());
        self
    }

    /// Only runs waiting in the store for `wait`: a signal, a timer or a backoff. (A paused
    /// run is [`Status::Paused`].)
    pub fn wait(mut self, wait: Wait) -> Filter {
        self.wait = Some(wait);
        self
    }

    /// Only runs created strictly after `ms`, in Unix milliseconds.
    pub fn created_after(mut self, ms: u64) -> Filter {
        self.created_after = Some(ms);
        self
    }

    /// Only runs created strictly before `ms`, in Unix milliseconds.
    pub fn created_before(mut self, ms: u64) -> Filter {
        self.created_before = Some(ms);
        self
    }

    /// Lists in `order`.
    pub fn order(mut self, order: Order) -> Filter {
        self.order = order;
        self
    }

    /// Lists the newest runs first: [`Order::NewestFirst`].
    pub fn newest_first(self) -> Filter {
        self.order(Order::NewestFirst)
    }

    /// Only runs that come after `cursor` in the filter's order: the page that follows the
    /// one whose last run gave `cursor` ([`RunSummary::cursor`]).
    pub fn cursor(mut self, cursor: Cursor) -> Filter {
        self.cursor = Some(cursor);
        self
    }

    /// At most `limit` runs.
    pub fn limit(mut self, limit: usize) -> Filter {
        self.limit = Some(limit);
        self
    }

    /// Whether `summary` passes the filter's criteria: every field but
    /// [`limit`](Filter::limit) (the [`cursor`](Filter::cursor) in the filter's order).
    pub fn matches(&self, summary: &RunSummary) -> bool {
        self.machine.as_ref().is_none_or(|name| *name == summary.machine)
            && self.status.is_none_or(|status| status == summary.status)
            && self.key.as_ref().is_none_or(|key| summary.key.as_ref() == Some(key))
            && self.state.as_ref().is_none_or(|state| *state == summary.state)
            && self.wait.is_none_or(|wait| summary.wait == Some(wait))
            && self.created_after.is_none_or(|after| summary.created > after)
            && self.created_before.is_none_or(|before| summary.created < before)
            && self.cursor.is_none_or(|cursor| self.order.follows(summary.cursor(), cursor))
    }

    /// The range of [`Cursor`]s (creation time, then id) that the time bounds and the cursor
    /// leave, as bounds for an index ordered by them: a store scans only that range.
    pub(crate) fn range(&self) -> (Bound<Cursor>, Bound<Cursor>) {
        let mut low = match self.created_after {
            Some(after) => {
                Bound::Excluded(Cursor { created: after, run: RunId::from_u128(u128::MAX) })
            }
            None => Bound::Unbounded,
        };
        let mut high = match self.created_before {
            Some(before) => Bound::Excluded(Cursor { created: before, run: RunId::from_u128(0) }),
            None => Bound::Unbounded,
        };
        let tighter = |bound: &Bound<Cursor>, cursor: Cursor, above: bool| match bound {
            Bound::Excluded(other) => (cursor > *other) == above,
            _ => true,
        };
        if let Some(cursor) = self.cursor {
            match self.order {
                Order::OldestFirst if tighter(&low, cursor, true) => {
                    low = Bound::Excluded(cursor);
                }
                Order::NewestFirst if tighter(&high, cursor, false) => {
                    high = Bound::Excluded(cursor);
                }
                _ => {}
            }
        }
        (low, high)
    }
}

/// The order [`CheckpointStore::list`](super::CheckpointStore::list) gives runs in: by
/// creation time, runs created in the same millisecond by id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Order {
    /// The oldest run first (the default).
    #[default]
    OldestFirst,
    /// The newest run first.
    NewestFirst,
}

impl Order {
    /// Whether a run at `position` comes after `cursor` in this order.
    pub fn follows(self, position: Cursor, cursor: Cursor) -> bool {
        match self {
            Order::OldestFirst => position > cursor,
            Order::NewestFirst => position < cursor,
        }
    }
}

/// Where a run stands in a listing: its creation time, then its id. Given to
/// [`Filter::cursor`], it continues a listing after that run.
///
/// Written as text (`1767225600000-0193f1e2...`: the creation time in Unix milliseconds, a
/// dash, the run's id) for a command line or a URL; [`FromStr`] reads it back.
///
/// ```
/// use flow::RunId;
/// use flow::store::Cursor;
///
/// let cursor = Cursor { created: 1_767_225_600_000, run: RunId::from_u128(42) };
/// let text = cursor.to_string();
/// assert_eq!(text, "1767225600000-0000000000000000000000000000002a");
/// assert_eq!(text.parse::<Cursor>().unwrap(), cursor);
/// assert!("yesterday".parse::<Cursor>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    /// When the run was created, in Unix milliseconds.
    pub created: u64,
    /// The run.
    pub run: RunId,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.created, self.run)
    }
}

impl FromStr for Cursor {
    type Err = ParseCursorError;

    fn from_str(text: &str) -> Result<Cursor, ParseCursorError> {
        let error = || ParseCursorError { text: text.to_owned() };
        let (created, run) = text.split_once('-').ok_or_else(error)?;
        Ok(Cursor {
            created: created.parse().map_err(|_| error())?,
            run: run.parse().map_err(|_| error())?,
        })
    }
}

/// A text that is not a [`Cursor`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "`{text}` is not a listing cursor: expected the creation time in Unix milliseconds, a \
     dash and a run id (`1767225600000-0193f1e2...`), as a listing gives it"
)]
pub struct ParseCursorError {
    /// The text.
    pub text: String,
}

/// One run as [`CheckpointStore::list`](super::CheckpointStore::list) sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    /// The run.
    pub run: RunId,
    /// Its machine's name.
    pub machine: String,
    /// The business key it was started under, if any.
    pub key: Option<String>,
    /// Where it stands.
    pub status: Status,
    /// The name of the state it is in (or ended in), as of its last checkpoint.
    pub state: String,
    /// Why a run is stuck; `None` otherwise.
    pub note: Option<String>,
    /// Why an unfinished run waits, if it does.
    pub wait: Option<Wait>,
    /// When it was created, in Unix milliseconds.
    pub created: u64,
    /// When its last checkpoint was written, in Unix milliseconds.
    pub updated: u64,
}

impl RunSummary {
    /// Where the run stands in a listing: give it to [`Filter::cursor`] for the next page.
    pub fn cursor(&self) -> Cursor {
        Cursor { created: self.created, run: self.run }
    }
}
