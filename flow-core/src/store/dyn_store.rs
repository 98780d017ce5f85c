//! [`CheckpointStore`] behind one type: the engine holds any store as a `Box<dyn DynStore>`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{
    Checkpoint, CheckpointStore, Claimed, Filter, Halt, Lease, RunSummary, Status, StoreError,
};
use crate::RunId;

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// [`CheckpointStore`] with boxed futures, so the engine can hold any store behind one type.
pub(crate) trait DynStore: Send + Sync + 'static {
    fn save(&self, checkpoint: Checkpoint) -> Boxed<'_, ()>;
    fn claim<'a>(
        &'a self,
        owner: &'a str,
        machines: &'a [&'static str],
        now: u64,
        limit: usize,
    ) -> Boxed<'a, Vec<Claimed>>;
    fn take_over<'a>(
        &'a self,
        owner: &'a str,
        machines: &'a [&'static str],
        now: u64,
        limit: usize,
    ) -> Boxed<'a, Vec<Claimed>>;
    fn next_due<'a>(&'a self, machines: &'a [&'static str]) -> Boxed<'a, Option<u64>>;
    fn heartbeat<'a>(
        &'a self,
        owner: &'a str,
        now: u64,
        expires: u64,
    ) -> Boxed<'a, Vec<(RunId, Halt)>>;
    fn release(&self, run: RunId, lease: Lease) -> Boxed<'_, ()>;
    fn request_halt(&self, run: RunId, halt: Halt) -> Boxed<'_, bool>;
    fn latest(&self, run: RunId) -> Boxed<'_, Option<Checkpoint>>;
    fn history(&self, run: RunId) -> Boxed<'_, Vec<String>>;
    fn history_after(&self, run: RunId, after: u64) -> Boxed<'_, Option<Vec<(u64, String)>>>;
    fn summary(&self, run: RunId) -> Boxed<'_, Option<RunSummary>>;
    fn list(&self, filter: Filter) -> Boxed<'_, Vec<RunSummary>>;
    fn mark(
        &self,
        run: RunId,
        status: Status,
        note: Option<String>,
        lease: Option<Lease>,
    ) -> Boxed<'_, ()>;
    fn delete_finished(&self, filter: Filter, before: u64) -> Boxed<'_, u64>;
    fn delete(&self, run: RunId) -> Boxed<'_, bool>;
    fn shared_between_processes(&self) -> bool;
    fn runnable_hint(&self) -> Option<Arc<tokio::sync::Notify>>;
}

impl<S: CheckpointStore> DynStore for S {
    fn save(&self, checkpoint: Checkpoint) -> Boxed<'_, ()> {
        Box::pin(CheckpointStore::save(self, checkpoint))
    }
    fn claim<'a>(
        &'a self,
        owner: &'a str,
        machines: &'a [&'static str],
        now: u64,
        limit: usize,
    ) -> Boxed<'a, Vec<Claimed>> {
        Box::pin(CheckpointStore::claim(self, owner, machines, now, limit))
    }
    fn take_over<'a>(
        &'a self,
        owner: &'a str,
        machines: &'a [&'static str],
        now: u64,
        limit: usize,
    ) -> Boxed<'a, Vec<Claimed>> {
        Box::pin(CheckpointStore::take_over(self, owner, machines, now, limit))
    }
    fn next_due<'a>(&'a self, machines: &'a [&'static str]) -> Boxed<'a, Option<u64>> {
        Box::pin(CheckpointStore::next_due(self, machines))
    }
    fn heartbeat<'a>(
        &'a self,
        owner: &'a str,
        now: u64,
        expires: u64,
    ) -> Boxed<'a, Vec<(RunId, Halt)>> {
        Box::pin(CheckpointStore::heartbeat(self, owner, now, expires))
    }
    fn release(&self, run: RunId, lease: Lease) -> Boxed<'_, ()> {
        Box::pin(CheckpointStore::release(self, run, lease))
    }
    fn request_halt(&self, run: RunId, halt: Halt) -> Boxed<'_, bool> {
        Box::pin(CheckpointStore::request_halt(self, run, halt))
    }
    fn latest(&self, run: RunId) -> Boxed<'_, Option<Checkpoint>> {
        Box::pin(CheckpointStore::latest(self, run))
    }
    fn history(&self, run: RunId) -> Boxed<'_, Vec<String>> {
        Box::pin(CheckpointStore::history(self, run))
    }
    fn history_after(&self, run: RunId, after: u64) -> Boxed<'_, Option<Vec<(u64, String)>>> {
        Box::pin(CheckpointStore::history_after(self, run, after))
    }
    fn summary(&self, run: RunId) -> Boxed<'_, Option<RunSummary>> {
        Box::pin(CheckpointStore::summary(self, run))
    }
    fn list(&self, filter: Filter) -> Boxed<'_, Vec<RunSummary>> {
        Box::pin(CheckpointStore::list(self, filter))
    }
    fn mark(
        &self,
        run: RunId,
        status: Status,
        note: Option<String>,
        lease: Option<Lease>,
    ) -> Boxed<'_, ()> {
        Box::pin(CheckpointStore::mark(self, run, status, note, lease))
    }
    fn delete_finished(&self, filter: Filter, before: u64) -> Boxed<'_, u64> {
        Box::pin(CheckpointStore::delete_finished(self, filter, before))
    }
    fn delete(&self, run: RunId) -> Boxed<'_, bool> {
        Box::pin(CheckpointStore::delete(self, run))
    }
    fn shared_between_processes(&self) -> bool {
        CheckpointStore::shared_between_processes(self)
    }
    fn runnable_hint(&self) -> Option<Arc<tokio::sync::Notify>> {
        CheckpointStore::runnable_hint(self)
    }
}
