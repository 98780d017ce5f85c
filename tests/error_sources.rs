//! A state's error keeps its cause: the caller downcasts the run's error to the type the state
//! returned and walks its `source` chain, in memory and on an engine; a run read back after a
//! restart keeps the message and its causes.

mod common;

use std::error::Error as StdError;

use flow::history::Failure;
use flow::prelude::*;
use flow::store::{MemoryStore, SqliteStore};
use flow::{Engine, EngineError, RunError, Runner};
use serde::{Deserialize, Serialize};

/// What the card gateway said, the cause of a decline.
#[derive(Debug, thiserror::Error)]
#[error("the gateway answered 402")]
pub struct Gateway;

/// The error the `charge` state returns: a type of the user's own, with a cause.
#[derive(Debug, thiserror::Error)]
#[error("card declined (code {code})")]
pub struct Declined {
    pub code: u32,
    #[source]
    pub source: Gateway,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum Mode {
    Custom,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Shop;

#[flow::machine]
pub mod checkout {
    use super::*;

    #[state(start, to(done))]
    async fn charge(_cx: &mut Shop, mode: Mode) -> Result<Charge> {
        match mode {
            Mode::Custom => Err(Error::permanent(Declined { code: 51, source: Gateway })),
        }
    }

    #[state(end)]
    async fn done(_cx: &mut Shop, amount: u32) -> Result<u32> {
        Ok(amount)
    }
}

type Checkout = checkout::Machine;

/// The messages of `error` and of each of its causes, in order.
fn chain(error: &(dyn StdError + 'static)) -> Vec<String> {
    let mut messages = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        messages.push(error.to_string());
        next = error.source();
    }
    messages
}

/// `error`'s chain holds `Declined`, and after it its cause.
fn assert_reaches_declined(error: &(dyn StdError + 'static)) {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(declined) = error.downcast_ref::<Declined>() {
            assert_eq!(declined.code, 51);
            let cause = error.source().expect("the decline keeps its cause");
            assert!(cause.downcast_ref::<Gateway>().is_some(), "{cause:?}");
            return;
        }
        next = error.source();
    }
    panic!("no Declined in the chain: {:?}", chain(error));
}

#[tokio::test]
async fn a_runner_error_downcasts_to_the_states_error() {
    let error = Runner::new().run::<Checkout>(Mode::Custom, &mut Shop).await.unwrap_err();
    let declined = error.downcast_ref::<Declined>().expect("the state's own error");
    assert_eq!(declined.code, 51);
    assert!(error.downcast_ref::<Gateway>().is_some(), "its cause too");
    assert_reaches_declined(&error);
    let RunError::StateFailed { attempts, .. } = &error else { panic!("{error:?}") };
    assert!(attempts[0].downcast_ref::<Declined>().is_some());
    assert!(attempts[0].source_error().is_some());
    // What is stored is what failures are compared by.
    assert_eq!(
        attempts[0],
        Failure::error("card declined (code 51): the gateway answered 402", true)
    );
}

fn engine(store: impl flow::store::CheckpointStore) -> Engine {
    Engine::builder().store(store).machine::<Checkout>().build().unwrap()
}

#[tokio::test]
async fn an_engine_error_downcasts_to_the_states_error() {
    let engine = engine(MemoryStore::new());
    let handle = engine.start_with::<Checkout>(Mode::Custom, Shop).await.unwrap();
    let error = handle.output().await.unwrap_err();
    let EngineError::Failed { error: failed, .. } = &error else { panic!("{error:?}") };
    assert_eq!(failed.downcast_ref::<Declined>().map(|d| d.code), Some(51));
    assert_eq!(failed.history().len(), 1, "the stored history comes with it");
    assert_reaches_declined(&error);
}

#[test]
fn a_run_read_back_after_a_restart_keeps_the_message_and_its_causes() {
    let path = common::db("error-sources-restart");
    let runtime = || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let run = runtime().block_on(async {
        let engine = engine(SqliteStore::open(&path).unwrap());
        let handle = engine.start_with::<Checkout>(Mode::Custom, Shop).await.unwrap();
        let run = handle.id();
        assert!(handle.output().await.is_err());
        run
    });
    runtime().block_on(async {
        let engine = engine(SqliteStore::open(&path).unwrap());
        let error = engine.handle::<Checkout>(run).await.unwrap().output().await.unwrap_err();
        let EngineError::Failed { error: failed, .. } = &error else { panic!("{error:?}") };
        // The live error is gone with the process that saw it; its message and causes stay.
        assert!(failed.downcast_ref::<Declined>().is_none());
        let messages = chain(&error);
        assert_eq!(
            messages.last().unwrap(),
            "permanent error: card declined (code 51): the gateway answered 402",
            "{messages:?}"
        );
        assert!(messages[0].contains("card declined (code 51): the gateway answered 402"));
    });
}
