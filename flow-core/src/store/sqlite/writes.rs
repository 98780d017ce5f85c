//! What the writer thread does inside a batch's transaction: a checkpoint's compare-and-set
//! and fencing check, a claim, and a run's deletion.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

use super::schema::{
    ADVANCE_RUN, CHAIN, CLAIM, DELETE_HISTORY, DELETE_RUN, HEAD, INSERT_HISTORY, INSERT_RUN,
    LATEST, MOVE_RUN,
};
use super::{checkpoint, from_sql, to_sql};
use crate::store::{Checkpoint, Claimed, Halt, Lease, StoreError};

pub(super) fn save(
    transaction: &Connection,
    checkpoint: &Checkpoint,
) -> rusqlite::Result<Result<(), StoreError>> {
    let run = checkpoint.run.to_string();
    let head: Option<(i64, i64, Option<String>, i64)> = transaction
        .prepare_cached(HEAD)?
        .query_row([&run], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
        .optional()?;
    let stored = head.as_ref().map(|(seq, ..)| from_sql(*seq));
    let follows = match stored {
        None => checkpoint.seq == 0,
        Some(last) => checkpoint.seq == last + 1,
    };
    if !follows {
        return Ok(Err(StoreError::Conflict { run: checkpoint.run, seq: checkpoint.seq, stored }));
    }
    if let Some((_, _, owner, token)) = &head {
        let holds = match (&checkpoint.lease, owner) {
            (Some(lease), Some(owner)) => *lease.owner == **owner && to_sql(lease.token) == *token,
            (None, None) => true,
            _ => false,
        };
        if !holds {
            return Ok(Err(StoreError::Fenced { run: checkpoint.run }));
        }
    }
    let seq = to_sql(checkpoint.seq);
    let wait = checkpoint.wait.map(|wait| wait.as_str());
    let status = checkpoint.status.as_str();
    let wake_at = checkpoint.wake_at.map(to_sql);
    // Its history entries, if it adds any, are appended to the run's history.
    let mut history = head.as_ref().map_or(0, |(_, head, ..)| *head);
    if checkpoint.entries != "[]" {
        transaction.prepare_cached(INSERT_HISTORY)?.execute(params![
            run,
            seq,
            Some(history).filter(|id| *id != 0),
            checkpoint.entries,
        ])?;
        history = transaction.last_insert_rowid();
    }
    // The latest checkpoint replaces the one before, in the head.
    let at = to_sql(checkpoint.at);
    let owner = checkpoint.lease.as_ref().filter(|_| checkpoint.keeps_lease());
    let owner = owner.map(|lease| &*lease.owner);
    let due_at = checkpoint.due_at().map(to_sql);
    let (version, fingerprint) = (checkpoint.version, &checkpoint.fingerprint);
    let (state, snapshot) = (&checkpoint.state, &checkpoint.snapshot);
    match head {
        None => {
            let token = checkpoint.lease.as_ref().map_or(0, |lease| to_sql(lease.token));
            transaction.prepare_cached(INSERT_RUN)?.execute(params![
                run,
                history,
                at,
                version,
                fingerprint,
                state,
                wake_at,
                wait,
                snapshot,
                checkpoint.machine,
                status,
                due_at,
                owner,
                token,
                checkpoint.key
            ])?;
        }
        // Held before and after: nothing indexed changes.
        Some((_, _, Some(_), _)) if checkpoint.keeps_lease() => {
            transaction.prepare_cached(ADVANCE_RUN)?.execute(params![
                run,
                seq,
                history,
                at,
                version,
                fingerprint,
                state,
                wake_at,
                wait,
                snapshot
            ])?;
        }
        Some(_) => {
            transaction.prepare_cached(MOVE_RUN)?.execute(params![
                run,
                seq,
                history,
                at,
                version,
                fingerprint,
                state,
                wake_at,
                wait,
                snapshot,
                status,
                due_at,
                owner
            ])?;
        }
    }
    Ok(Ok(()))
}

/// Claims the runs `ids` for `owner`, returning each with its latest checkpoint.
pub(super) fn claim(
    transaction: &Connection,
    ids: Vec<String>,
    owner: &str,
    taken_over: bool,
) -> rusqlite::Result<Vec<Claimed>> {
    let owner: Arc<str> = Arc::from(owner);
    let mut claimed = Vec::with_capacity(ids.len());
    for id in ids {
        let (token, halt): (i64, Option<String>) = transaction
            .prepare_cached(CLAIM)?
            .query_row(params![id, &*owner], |row| Ok((row.get(0)?, row.get(1)?)))?;
        let checkpoint = transaction.prepare_cached(LATEST)?.query_row([&id], checkpoint)?;
        claimed.push(Claimed {
            checkpoint,
            lease: Lease { owner: Arc::clone(&owner), token: from_sql(token) },
            taken_over,
            halt: halt.as_deref().and_then(Halt::parse),
        });
    }
    Ok(claimed)
}

pub(super) fn delete_run(transaction: &Connection, run: &str) -> rusqlite::Result<()> {
    transaction.prepare_cached(&format!("{CHAIN} {DELETE_HISTORY}"))?.execute([run])?;
    transaction.prepare_cached(DELETE_RUN)?.execute([run])?;
    Ok(())
}
