//! Run ids.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;
use uuid::Uuid;

/// Identifies one run: a UUID (RFC 9562), written as 32 lowercase hex digits.
///
/// [`RunId::random`] ids are UUID v7: they begin with the creation time, so they sort by age.
/// A run started under a business key ("order-1042", with `Engine::start_keyed`) has the id
/// [`RunId::for_key`] derives from its machine and key, the same every time. Pick any other
/// id with [`RunId::from_u128`] and start the run with `Engine::start_as`. Starting an id
/// twice is refused, which makes starting a run idempotent.
///
/// Ids parse from the form they are printed in, and from the usual hyphenated form of a
/// UUID (8-4-4-4-12 hex digits), in either case.
///
/// ```
/// use flow::RunId;
///
/// let id = RunId::from_u128(42);
/// assert_eq!(id.to_string(), "0000000000000000000000000000002a");
/// assert_eq!("0000000000000000000000000000002a".parse::<RunId>().unwrap(), id);
/// assert_eq!("00000000-0000-0000-0000-00000000002A".parse::<RunId>().unwrap(), id);
/// assert!("run-42".parse::<RunId>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(u128);

impl RunId {
    /// The namespace of the UUID v5 ids [`RunId::for_key`] derives from business keys:
    /// `99bbd2bc-12d1-462e-ba1d-8b5d251379a6`, fixed for good.
    pub const KEY_NAMESPACE: RunId = RunId(0x99bb_d2bc_12d1_462e_ba1d_8b5d_2513_79a6);

    /// A new id, a UUID v7 (RFC 9562, section 5.7): 48 bits of the current Unix time in
    /// milliseconds, the version, a 12-bit counter, the variant, then 62 random bits. The ids
    /// one process makes sort in the order it made them: the counter goes up within a
    /// millisecond, and the time part goes on from the last id's if the clock has not moved
    /// past it (the RFC's "fixed-length dedicated counter", method 1).
    pub fn random() -> RunId {
        // Lock-free, and the random bits from `fastrand`: an in-memory run makes an id per
        // run, and a system call for the random bits, or a lock shared by every thread, cost
        // a fifth to a third of a trivial run's transitions (perf `chain`).
        static LAST: AtomicU64 = AtomicU64::new(0);
        const VERSION: u64 = 0x7000;
        const COUNTER: u64 = 0x0fff;
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let now = ((millis as u64) & ((1 << 48) - 1)) << 16 | VERSION;
        let mut last = LAST.load(Ordering::Relaxed);
        let high = loop {
            let next = if now > last {
                now
            } else if last & COUNTER == COUNTER {
                // The counter is spent: the next millisecond's first id.
                ((last >> 16) + 1) << 16 | VERSION
            } else {
                last + 1
            };
            match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break next,
                Err(seen) => last = seen,
            }
        };
        let low = (fastrand::u64(..) & ((1 << 62) - 1)) | (0b10 << 62);
        RunId(u128::from(high) << 64 | u128::from(low))
    }

    /// The id of the run of machine `machine` for the business key `key`, which
    /// `Engine::start_keyed` starts the run under: a UUID v5 (RFC 9562, section 5.5:
    /// SHA-1 over a namespace and a name) in [`RunId::KEY_NAMESPACE`], whose name is the
    /// length of `machine` in bytes (8 bytes, big-endian), `machine`, then `key`, all as
    /// UTF-8. The length keeps every (machine, key) pair apart, whatever bytes they hold.
    ///
    /// The id depends on nothing else: not on the version of `flow`, of Rust or of any
    /// dependency, nor on the platform. It never changes, so an id computed today finds the
    /// run in a store written years ago, and any UUID v5 implementation computes it.
    ///
    /// ```
    /// use flow::RunId;
    ///
    /// let id = RunId::for_key("checkout", "order-1042");
    /// assert_eq!(id, RunId::for_key("checkout", "order-1042"));
    /// assert_ne!(id, RunId::for_key("refund", "order-1042"));
    /// ```
    pub fn for_key(machine: &str, key: &str) -> RunId {
        let length = u64::try_from(machine.len()).unwrap_or(u64::MAX);
        let mut name = Vec::with_capacity(8 + machine.len() + key.len());
        name.extend_from_slice(&length.to_be_bytes());
        name.extend_from_slice(machine.as_bytes());
        name.extend_from_slice(key.as_bytes());
        let namespace = Uuid::from_u128(RunId::KEY_NAMESPACE.0);
        RunId(Uuid::new_v5(&namespace, &name).as_u128())
    }

    /// The namespace of the UUID v5 ids [`RunId::branch`] derives for a fork's branches:
    /// `5d0c4a57-6a8e-4f0b-9a39-0b7f3c1e2d64`, fixed for good.
    pub const BRANCH_NAMESPACE: RunId = RunId(0x5d0c_4a57_6a8e_4f0b_9a39_0b7f_3c1e_2d64);

    /// The id of the run that executes branch `index` (from 0, in the fork's order, or the
    /// item's place in a fan-out) of the fork that `parent` entered at checkpoint `visit`: a
    /// UUID v5 (RFC 9562, section 5.5) in [`RunId::BRANCH_NAMESPACE`], whose name is the
    /// parent's 16 bytes, then `visit` (8 bytes) and `index` (4 bytes), big-endian.
    ///
    /// Derived, not drawn, so that a fork resumed after a crash finds the branches it had
    /// started instead of starting them again. `Engine::branches` lists a run's.
    pub fn branch(parent: RunId, visit: u64, index: u32) -> RunId {
        let mut name = [0; 28];
        name[..16].copy_from_slice(&parent.0.to_be_bytes());
        name[16..24].copy_from_slice(&visit.to_be_bytes());
        name[24..].copy_from_slice(&index.to_be_bytes());
        let namespace = Uuid::from_u128(RunId::BRANCH_NAMESPACE.0);
        RunId(Uuid::new_v5(&namespace, &name).as_u128())
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
        f.write_str(self.hex().as_str())
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunId({self})")
    }
}

/// A string that is not a run id.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "`{text}` is not a run id: a run id is 32 hex digits, as printed by the engine, or a UUID \
     in its hyphenated form (8-4-4-4-12 hex digits)"
)]
pub struct ParseRunIdError {
    text: String,
}

impl FromStr for RunId {
    type Err = ParseRunIdError;

    fn from_str(text: &str) -> Result<RunId, ParseRunIdError> {
        // Only the printed form and the hyphenated one: not the braced or URN forms.
        match Uuid::try_parse(text) {
            Ok(id) if text.len() == 32 || text.len() == 36 => Ok(RunId(id.as_u128())),
            _ => Err(ParseRunIdError { text: text.chars().take(64).collect() }),
        }
    }
}

impl Serialize for RunId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.hex().as_str())
    }
}

/// A run id's 32 lowercase hex digits, on the stack.
struct Hex([u8; 32]);

impl Hex {
    fn as_str(&self) -> &str {
        // Only ASCII digits are ever written into it.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl RunId {
    /// The id's text, written out by hand rather than through `{:032x}`, which goes digit by
    /// digit through the padding machinery: every event a server sends names its run.
    fn hex(&self) -> Hex {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 32];
        for (i, byte) in self.0.to_be_bytes().into_iter().enumerate() {
            text[2 * i] = DIGITS[usize::from(byte >> 4)];
            text[2 * i + 1] = DIGITS[usize::from(byte & 0x0f)];
        }
        Hex(text)
    }
}

impl<'de> Deserialize<'de> for RunId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RunId, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The derivation is a promise to every store ever written: this id must never change.
    #[test]
    fn a_key_maps_to_the_same_id_forever() {
        let id = RunId::for_key("checkout", "order-1042");
        assert_eq!(id.to_string(), "2ba3cae2fe5452098f461a884391336d");
        assert_eq!(Uuid::from_u128(id.as_u128()).get_version_num(), 5);
    }

    #[test]
    fn machine_and_key_are_kept_apart() {
        assert_ne!(RunId::for_key("ab", "c"), RunId::for_key("a", "bc"));
        assert_ne!(RunId::for_key("checkout", "1"), RunId::for_key("refund", "1"));
    }

    #[test]
    fn random_ids_are_v7_in_creation_order() {
        let ids: Vec<RunId> = (0..1000).map(|_| RunId::random()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(Uuid::from_u128(ids[0].as_u128()).get_version_num(), 7);
    }

    #[test]
    fn ids_parse_from_their_usual_forms() {
        let id = RunId::from_u128(0x0190_6d6b_8f3a_7c12_9e4b_28e9_c8a1_b2c3);
        let printed = "01906d6b8f3a7c129e4b28e9c8a1b2c3";
        assert_eq!(id.to_string(), printed);
        for text in [
            printed,
            "01906D6B8F3A7C129E4B28E9C8A1B2C3",
            "01906d6b-8f3a-7c12-9e4b-28e9c8a1b2c3",
            "01906D6B-8F3A-7C12-9E4B-28E9C8A1B2C3",
        ] {
            assert_eq!(text.parse::<RunId>(), Ok(id), "{text}");
        }
        for text in [
            "",
            "…28e9c8",
            "01906d6b8f3a7c129e4b28e9c8a1b2c",
            "01906d6b8f3a7c129e4b28e9c8a1b2c3a",
            "+1906d6b8f3a7c129e4b28e9c8a1b2c3",
            "01906d6b-8f3a7c12-9e4b-28e9c8a1b2c3",
            "{01906d6b-8f3a-7c12-9e4b-28e9c8a1b2c3}",
            "urn:uuid:01906d6b-8f3a-7c12-9e4b-28e9c8a1b2c3",
            "g1906d6b8f3a7c129e4b28e9c8a1b2c3",
        ] {
            assert!(text.parse::<RunId>().is_err(), "{text}");
        }
    }
}
