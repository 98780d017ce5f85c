//! The in-process store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Checkpoint, CheckpointStore, Filter, RunSummary, Status, StoreError};
use crate::RunId;

/// Keeps checkpoints in memory: the same compare-and-set as the durable stores, nothing
/// survives the process. Clones share the same runs, so two engines given clones of one store
/// see each other's writes (as two processes on one database would).
///
/// ```
/// use flow_core::store::MemoryStore;
///
/// let store = MemoryStore::new();
/// let shared = store.clone();
/// # let _ = shared;
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    runs: Arc<Mutex<Runs>>,
}

#[derive(Debug, Default)]
struct Runs {
    by_id: HashMap<RunId, Run>,
    order: Vec<RunId>,
}

#[derive(Debug)]
struct Run {
    summary: RunSummary,
    log: Vec<Checkpoint>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn runs(&self) -> MutexGuard<'_, Runs> {
        // Every update below is complete before it can panic, so a poisoned lock still
        // guards consistent data.
        self.runs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl CheckpointStore for MemoryStore {
    async fn save(&self, checkpoint: Checkpoint) -> Result<(), StoreError> {
        let mut runs = self.runs();
        let id = checkpoint.run;
        let stored = runs.by_id.get(&id).and_then(|run| run.log.last()).map(|last| last.seq);
        let follows = match stored {
            None => checkpoint.seq == 0,
            Some(last) => checkpoint.seq == last + 1,
        };
        if !follows {
            return Err(StoreError::Conflict { run: id, seq: checkpoint.seq, stored });
        }
        if checkpoint.seq == 0 {
            let summary = RunSummary {
                run: id,
                machine: checkpoint.machine.to_string(),
                status: checkpoint.status,
                note: None,
            };
            runs.by_id.insert(id, Run { summary, log: Vec::new() });
            runs.order.push(id);
        }
        if let Some(run) = runs.by_id.get_mut(&id) {
            if checkpoint.status != Status::Running {
                run.summary.status = checkpoint.status;
            }
            run.log.push(checkpoint);
        }
        Ok(())
    }

    async fn latest(&self, run: RunId) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self.runs().by_id.get(&run).and_then(|run| run.log.last().cloned()))
    }

    async fn checkpoints(&self, run: RunId) -> Result<Vec<Checkpoint>, StoreError> {
        Ok(self.runs().by_id.get(&run).map(|run| run.log.clone()).unwrap_or_default())
    }

    async fn summary(&self, run: RunId) -> Result<Option<RunSummary>, StoreError> {
        Ok(self.runs().by_id.get(&run).map(|run| run.summary.clone()))
    }

    async fn list(&self, filter: Filter) -> Result<Vec<RunSummary>, StoreError> {
        let runs = self.runs();
        Ok(runs
            .order
            .iter()
            .filter_map(|id| runs.by_id.get(id))
            .map(|run| &run.summary)
            .filter(|summary| filter.matches(summary))
            .cloned()
            .collect())
    }

    async fn mark(
        &self,
        run: RunId,
        status: Status,
        note: Option<String>,
    ) -> Result<(), StoreError> {
        if let Some(run) = self.runs().by_id.get_mut(&run) {
            run.summary.status = status;
            run.summary.note = note;
        }
        Ok(())
    }
}
