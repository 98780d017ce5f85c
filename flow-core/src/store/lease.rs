//! An engine's hold on a run: the [`Lease`] it writes under, the [`Claimed`] run a claim
//! returns, and the [`Halt`] asked of the holder.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Checkpoint;

/// An engine's claim on a run: who holds it, and the fencing token of this claim.
///
/// Every claim of a run gets a token one higher than the claim before, so a write carrying an
/// older token comes from an engine that lost the run, and the store refuses it
/// ([`StoreError::Fenced`](super::StoreError::Fenced)). State bodies read the token from
/// [`crate::current`] to fence the side effects they make elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The engine holding the run: its owner id
    /// ([`CheckpointStore::heartbeat`](super::CheckpointStore::heartbeat) keeps it alive).
    pub owner: Arc<str>,
    /// This claim's fencing token.
    pub token: u64,
}

/// A run an engine has claimed: its latest checkpoint, and the claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The run's latest checkpoint (its `entries` left `"[]"`).
    pub checkpoint: Checkpoint,
    /// The new claim; write the run's next checkpoints under it.
    pub lease: Lease,
    /// Whether the run was taken from an engine whose lease expired, rather than released:
    /// the attempt that engine was running was interrupted.
    pub taken_over: bool,
    /// A cancel or pause requested while the run was held elsewhere, still to be honoured.
    pub halt: Option<Halt>,
}

/// A request to stop a run that an engine holds: recorded in the store, and honoured by that
/// engine at the run's next safe point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Halt {
    /// Hold the run, to be resumed later.
    Pause = 1,
    /// End the run as cancelled.
    Cancel = 2,
}

impl Halt {
    /// `"pause"` or `"cancel"`: how stores write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Halt::Pause => "pause",
            Halt::Cancel => "cancel",
        }
    }

    /// Reads [`Halt::as_str`] back; `None` for anything else.
    pub fn parse(text: &str) -> Option<Halt> {
        match text {
            "pause" => Some(Halt::Pause),
            "cancel" => Some(Halt::Cancel),
            _ => None,
        }
    }
}
