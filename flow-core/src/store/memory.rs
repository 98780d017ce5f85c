//! The in-process store.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    Checkpoint, CheckpointStore, Claimed, Cursor, Filter, Halt, Lease, Order, RunSummary, Status,
    StoreError, Wait,
};
use crate::RunId;

/// Keeps runs in memory: the same compare-and-set, leases and fencing as the durable stores,
/// nothing survives the process. Clones share the same runs, so two engines given clones of
/// one store see each other's writes (as two processes on one database would).
///
/// ```
/// use flow::store::MemoryStore;
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
    /// Every run, in listing order: by creation time, then id.
    listed: BTreeSet<Cursor>,
    /// Runs no engine holds, by when they are due.
    due: BTreeSet<(u64, RunId)>,
    /// Runs an engine holds.
    held: BTreeSet<RunId>,
    /// Each owner's lease expiry.
    owners: HashMap<Arc<str>, u64>,
}

#[derive(Debug)]
struct Run {
    summary: RunSummary,
    latest: Checkpoint,
    /// Each checkpoint's entries that added some, with its seq.
    history: Vec<(u64, String)>,
    owner: Option<Arc<str>>,
    token: u64,
    due_at: Option<u64>,
    halt: Option<Halt>,
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

impl Runs {
    /// Sets who holds `id` and when it is due, keeping the indexes in step.
    fn place(&mut self, id: RunId, owner: Option<Arc<str>>, due_at: Option<u64>) {
        let Some(run) = self.by_id.get_mut(&id) else { return };
        if let Some(old) = run.due_at {
            self.due.remove(&(old, id));
        }
        if owner.is_some() {
            self.held.insert(id);
        } else {
            self.held.remove(&id);
        }
        if let Some(due) = due_at {
            self.due.insert((due, id));
        }
        run.owner = owner;
        run.due_at = due_at;
    }

    fn expired(&self, owner: &str, now: u64) -> bool {
        self.owners.get(owner).is_none_or(|expires| *expires < now)
    }

    fn claim_one(&mut self, id: RunId, owner: &Arc<str>, taken_over: bool) -> Option<Claimed> {
        self.place(id, Some(Arc::clone(owner)), None);
        let run = self.by_id.get_mut(&id)?;
        run.token += 1;
        run.summary.wait = None;
        let lease = Lease { owner: Arc::clone(owner), token: run.token };
        Some(Claimed { checkpoint: run.latest.clone(), lease, taken_over, halt: run.halt })
    }

    fn remove(&mut self, id: RunId) {
        self.place(id, None, None);
        if let Some(run) = self.by_id.remove(&id) {
            self.listed.remove(&run.summary.cursor());
        }
    }

    /// The summaries `filter` matches, in its order, scanning only the runs within its time
    /// bounds and cursor.
    fn matching<'a>(&'a self, filter: &'a Filter) -> Box<dyn Iterator<Item = &'a RunSummary> + 'a> {
        let (low, high) = filter.range();
        let empty = match (low, high) {
            (Bound::Excluded(low), Bound::Excluded(high)) => low >= high,
            _ => false,
        };
        if empty {
            return Box::new(std::iter::empty());
        }
        let range = self.listed.range((low, high));
        let ordered: Box<dyn Iterator<Item = &Cursor>> = match filter.order {
            Order::OldestFirst => Box::new(range),
            Order::NewestFirst => Box::new(range.rev()),
        };
        Box::new(
            ordered
                .filter_map(|cursor| self.by_id.get(&cursor.run))
                .map(|run| &run.summary)
                .filter(|summary| filter.matches(summary)),
        )
    }
}

/// Why a run waits in the store after `checkpoint`: a paused or finished run waits for
/// nothing, whatever wait its checkpoint keeps (a paused one keeps it for its resume).
fn waiting(checkpoint: &Checkpoint) -> Option<Wait> {
    checkpoint.wait.filter(|_| checkpoint.status == Status::Running)
}

impl CheckpointStore for MemoryStore {
    async fn save(&self, checkpoint: Checkpoint) -> Result<(), StoreError> {
        let mut runs = self.runs();
        let id = checkpoint.run;
        let run = runs.by_id.get(&id);
        let stored = run.map(|run| run.latest.seq);
        let follows = match stored {
            None => checkpoint.seq == 0,
            Some(last) => checkpoint.seq == last + 1,
        };
        if !follows {
            return Err(StoreError::Conflict { run: id, seq: checkpoint.seq, stored });
        }
        if let Some(run) = run {
            let holds = match (&checkpoint.lease, &run.owner) {
                (Some(lease), Some(owner)) => lease.owner == *owner && lease.token == run.token,
                (None, None) => true,
                _ => false,
            };
            if !holds {
                return Err(StoreError::Fenced { run: id });
            }
        }
        let owner = checkpoint.lease.as_ref().filter(|_| checkpoint.keeps_lease());
        let owner = owner.map(|lease| Arc::clone(&lease.owner));
        let token = checkpoint.lease.as_ref().map_or(0, |lease| lease.token);
        let due_at = checkpoint.due_at();
        let mut latest = checkpoint;
        let entries = std::mem::replace(&mut latest.entries, "[]".into());
        latest.lease = None;
        if latest.seq == 0 {
            let summary = RunSummary {
                run: id,
                machine: latest.machine.to_string(),
                key: latest.key.clone(),
                status: latest.status,
                state: latest.state.to_string(),
                note: None,
                wait: waiting(&latest),
                created: latest.at,
                updated: latest.at,
            };
            let run = Run {
                summary,
                latest: latest.clone(),
                history: Vec::new(),
                owner: None,
                token,
                due_at: None,
                halt: None,
            };
            runs.listed.insert(run.summary.cursor());
            runs.by_id.insert(id, run);
        }
        if let Some(run) = runs.by_id.get_mut(&id) {
            // The key is the run's, written once.
            latest.key.clone_from(&run.summary.key);
            run.summary.status = latest.status;
            run.summary.state.clear();
            run.summary.state.push_str(&latest.state);
            run.summary.note = None;
            run.summary.wait = waiting(&latest);
            run.summary.updated = latest.at;
            if latest.status != Status::Running {
                run.halt = None;
            }
            if entries != "[]" {
                run.history.push((latest.seq, entries));
            }
            run.latest = latest;
        }
        runs.place(id, owner, due_at);
        Ok(())
    }

    async fn claim(
        &self,
        owner: &str,
        machines: &[&'static str],
        now: u64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut runs = self.runs();
        let wanted = |run: &Run| machines.contains(&run.summary.machine.as_str());
        let mut picked = Vec::new();
        for (due, id) in &runs.due {
            if picked.len() >= limit || *due > now {
                break;
            }
            if runs.by_id.get(id).is_some_and(wanted) {
                picked.push(*id);
            }
        }
        let owner: Arc<str> = Arc::from(owner);
        Ok(picked.into_iter().filter_map(|id| runs.claim_one(id, &owner, false)).collect())
    }

    async fn take_over(
        &self,
        owner: &str,
        machines: &[&'static str],
        now: u64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut runs = self.runs();
        let mut picked = Vec::new();
        for id in &runs.held {
            let Some(run) = runs.by_id.get(id) else { continue };
            let lapsed = run.owner.as_deref().is_some_and(|held| runs.expired(held, now));
            if picked.len() < limit && lapsed && machines.contains(&run.summary.machine.as_str()) {
                picked.push(*id);
            }
        }
        let owner: Arc<str> = Arc::from(owner);
        Ok(picked.into_iter().filter_map(|id| runs.claim_one(id, &owner, true)).collect())
    }

    async fn next_due(&self, machines: &[&'static str]) -> Result<Option<u64>, StoreError> {
        let runs = self.runs();
        Ok(runs
            .due
            .iter()
            .find(|(_, id)| {
                runs.by_id
                    .get(id)
                    .is_some_and(|run| machines.contains(&run.summary.machine.as_str()))
            })
            .map(|(due, _)| *due))
    }

    async fn heartbeat(
        &self,
        owner: &str,
        _now: u64,
        expires: u64,
    ) -> Result<Vec<(RunId, Halt)>, StoreError> {
        let mut runs = self.runs();
        runs.owners.insert(Arc::from(owner), expires);
        Ok(runs
            .held
            .iter()
            .filter_map(|id| runs.by_id.get(id))
            .filter(|run| run.owner.as_deref() == Some(owner))
            .filter_map(|run| run.halt.map(|halt| (run.summary.run, halt)))
            .collect())
    }

    async fn release(&self, run: RunId, lease: Lease) -> Result<(), StoreError> {
        let mut runs = self.runs();
        let holds = runs.by_id.get(&run).is_some_and(|stored| {
            stored.owner.as_deref() == Some(&*lease.owner) && stored.token == lease.token
        });
        if holds {
            runs.place(run, None, Some(0));
        }
        Ok(())
    }

    async fn request_halt(&self, run: RunId, halt: Halt) -> Result<bool, StoreError> {
        let mut runs = self.runs();
        match runs.by_id.get_mut(&run) {
            Some(stored) if !stored.summary.status.is_finished() => {
                stored.halt = stored.halt.max(Some(halt));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn latest(&self, run: RunId) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self.runs().by_id.get(&run).map(|run| run.latest.clone()))
    }

    async fn history(&self, run: RunId) -> Result<Vec<String>, StoreError> {
        let runs = self.runs();
        let history = runs.by_id.get(&run).map(|run| run.history.as_slice()).unwrap_or_default();
        Ok(history.iter().map(|(_, entries)| entries.clone()).collect())
    }

    async fn history_after(
        &self,
        run: RunId,
        after: u64,
    ) -> Result<Option<Vec<(u64, String)>>, StoreError> {
        let runs = self.runs();
        let history = runs.by_id.get(&run).map(|run| run.history.as_slice()).unwrap_or_default();
        Ok(Some(history.iter().filter(|(seq, _)| *seq > after).cloned().collect()))
    }

    async fn summary(&self, run: RunId) -> Result<Option<RunSummary>, StoreError> {
        Ok(self.runs().by_id.get(&run).map(|run| run.summary.clone()))
    }

    async fn list(&self, filter: Filter) -> Result<Vec<RunSummary>, StoreError> {
        let runs = self.runs();
        let limit = filter.limit.unwrap_or(usize::MAX);
        Ok(runs.matching(&filter).take(limit).cloned().collect())
    }

    async fn mark(
        &self,
        run: RunId,
        status: Status,
        note: Option<String>,
        lease: Option<Lease>,
    ) -> Result<(), StoreError> {
        let mut runs = self.runs();
        if let Some(stored) = runs.by_id.get_mut(&run) {
            let holds = match (&lease, &stored.owner) {
                (Some(lease), Some(owner)) => lease.owner == *owner && lease.token == stored.token,
                (None, None) => true,
                _ => false,
            };
            if !holds {
                return Err(StoreError::Fenced { run });
            }
            stored.summary.status = status;
            stored.summary.note = note;
            stored.summary.wait = None;
            let due = (status == Status::Running).then_some(0);
            runs.place(run, None, due);
        }
        Ok(())
    }

    async fn delete_finished(&self, filter: Filter, before: u64) -> Result<u64, StoreError> {
        let mut runs = self.runs();
        let doomed: Vec<RunId> = runs
            .matching(&filter)
            .filter(|s| s.status.is_finished() && s.updated < before)
            .map(|s| s.run)
            .collect();
        for id in &doomed {
            runs.remove(*id);
        }
        Ok(doomed.len() as u64)
    }

    async fn delete(&self, run: RunId) -> Result<bool, StoreError> {
        let mut runs = self.runs();
        let Some(stored) = runs.by_id.get(&run) else { return Ok(false) };
        let status = stored.summary.status;
        if !status.is_finished() {
            return Err(StoreError::Unfinished { run, status });
        }
        runs.remove(run);
        Ok(true)
    }

    fn shared_between_processes(&self) -> bool {
        false
    }
}
