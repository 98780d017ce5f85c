//! Run ids.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// Identifies one run: 128 bits, written as 32 lowercase hex digits.
///
/// [`RunId::random`] ids begin with the creation time in milliseconds, so they sort roughly
/// by age. Pick your own with [`RunId::from_u128`] (for example from an order number) and
/// start the run with `Engine::start_as`: starting the same id twice is refused, which makes
/// starting a run idempotent.
///
/// ```
/// use flow_core::RunId;
///
/// let id = RunId::from_u128(42);
/// assert_eq!(id.to_string(), "0000000000000000000000000000002a");
/// assert_eq!("0000000000000000000000000000002a".parse::<RunId>().unwrap(), id);
/// assert!("run-42".parse::<RunId>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(u128);

impl RunId {
    /// A new id: 48 bits of the current Unix time in milliseconds, then 80 random bits.
    pub fn random() -> RunId {
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let random = fastrand::u128(..) & ((1u128 << 80) - 1);
        RunId(((millis & ((1u128 << 48) - 1)) << 80) | random)
    }

    /// The id with this value.
    pub const fn from_u128(value: u128) -> RunId {
        RunId(value)
    }

    /// The id's value.
    pub const fn as_u128(self) -> u128 {
        self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunId({self})")
    }
}

/// A string that is not a run id.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{text}` is not a run id: a run id is 32 hex digits, as printed by the engine")]
pub struct ParseRunIdError {
    text: String,
}

impl FromStr for RunId {
    type Err = ParseRunIdError;

    fn from_str(text: &str) -> Result<RunId, ParseRunIdError> {
        let valid = text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit());
        match u128::from_str_radix(text, 16) {
            Ok(value) if valid => Ok(RunId(value)),
            _ => Err(ParseRunIdError { text: text.chars().take(64).collect() }),
        }
    }
}

impl Serialize for RunId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RunId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RunId, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
