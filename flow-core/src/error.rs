//! The error a state returns, and how it is classed for retries.

use std::error::Error as StdError;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A boxed error as states produce them.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// `Result` with [`Error`] as the default error type: what every state returns.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Why a state attempt failed, and whether retrying it can help.
///
/// `?` converts into a **retryable** `Error` whatever converts into a [`BoxError`]: any
/// `std::error::Error + Send + Sync`, a `String` or `&str` message, an `anyhow::Error` or an
/// `eyre::Report` (their chain of causes kept), so a flaky call is retried by the state's
/// policy without ceremony. Mark errors that no retry can fix
/// (a declined card, invalid input) with [`Error::permanent`] or [`ResultExt::permanent`]: the
/// runtime then stops retrying that state at once.
///
/// Like `anyhow::Error`, this type does not implement `std::error::Error` itself; that is what
/// lets `?` accept every error type. The errors the runtime returns to callers, such as
/// [`RunError`](crate::RunError), do implement it.
///
/// ```
/// use flow::{Error, Result, ResultExt};
///
/// fn parse(raw: &str) -> Result<u32> {
///     // `?` turns any error into a retryable `Error`...
///     let n: u32 = raw.trim().parse().permanent()?; // ...unless marked permanent.
///     if n == 0 {
///         return Err(Error::permanent("a quantity of zero can never succeed"));
///     }
///     Ok(n)
/// }
/// assert!(parse("x").unwrap_err().is_permanent());
/// assert_eq!(parse("7").unwrap(), 7);
/// ```
pub struct Error {
    source: BoxError,
    permanent: bool,
}

impl Error {
    /// A failure that a later attempt may not repeat (a timeout upstream, a 503): the default.
    pub fn retryable(error: impl Into<BoxError>) -> Self {
        Error { source: error.into(), permanent: false }
    }

    /// A failure no retry can fix: the state fails at once, whatever attempts remain.
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        Error { source: error.into(), permanent: true }
    }

    /// Whether the runtime will stop retrying on this error.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The same error, marked permanent.
    pub fn into_permanent(mut self) -> Self {
        self.permanent = true;
        self
    }

    /// The underlying error.
    pub fn source(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.source
    }

    /// The underlying error, owned: to hand it on, or to downcast it
    /// (`Box::<dyn Error>::downcast`).
    pub fn into_source(self) -> BoxError {
        self.source
    }

    /// The error's message followed by its chain of causes, `: `-separated.
    pub fn message(&self) -> String {
        let mut text = self.source.to_string();
        let mut cause = self.source.source();
        while let Some(next) = cause {
            text.push_str(": ");
            text.push_str(&next.to_string());
            cause = next.source();
        }
        text
    }
}

// `Into<BoxError>` rather than `StdError`: `anyhow::Error` and `eyre::Report` are no
// `std::error::Error`, and an impl of their own would conflict with a blanket impl over
// `StdError` (coherence cannot rule out their implementing it later), while both convert into
// a `BoxError`, keeping their causes.
impl<E: Into<BoxError>> From<E> for Error {
    fn from(error: E) -> Self {
        Error::retryable(error)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("source", &self.source)
            .field("permanent", &self.permanent)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// An error shared by the values that carry it: the error a state returned, kept as it was
/// in a [`Failure`](crate::history::Failure), a [`RunError`](crate::RunError) and an
/// [`EngineError`](crate::EngineError) while the process that saw it runs.
///
/// It dereferences to the error itself, so `downcast_ref` and `source` reach the original
/// type and its causes. A run read back from a store has no live error: only the message
/// (causes included) was stored.
#[derive(Clone)]
pub struct SharedError(Arc<dyn StdError + Send + Sync + 'static>);

impl SharedError {
    /// Shares `error`.
    pub fn new(error: impl Into<BoxError>) -> Self {
        SharedError(Arc::from(error.into()))
    }
}

// Deliberately not `std::error::Error` itself: as the `#[source]` of an error it then stands
// for the error it holds, whose type `downcast_ref` finds.
impl Deref for SharedError {
    type Target = dyn StdError + Send + Sync + 'static;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl fmt::Debug for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

/// The first error of type `E` in the chain that starts at `error`: the error itself or one of
/// its causes.
pub(crate) fn find<'a, E: StdError + 'static>(
    error: &'a (dyn StdError + 'static),
) -> Option<&'a E> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref::<E>() {
            return Some(found);
        }
        next = error.source();
    }
    None
}

/// Marks the error of a `Result` as permanent or retryable on the way through `?`.
pub trait ResultExt<T> {
    /// Converts the error into a permanent [`Error`]: no retry will be attempted.
    fn permanent(self) -> Result<T>;
    /// Converts the error into a retryable [`Error`] (what `?` does by default).
    fn retryable(self) -> Result<T>;
}

impl<T, E: Into<BoxError>> ResultExt<T> for core::result::Result<T, E> {
    fn permanent(self) -> Result<T> {
        self.map_err(Error::permanent)
    }

    fn retryable(self) -> Result<T> {
        self.map_err(Error::retryable)
    }
}
