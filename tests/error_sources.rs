//! A state's error keeps its cause: the caller downcasts the run's error to the type the state
//! returned and walks its `source` chain, in memory and on an engine; a run read back after a
//! restart keeps the message and its causes. `?` takes an `anyhow::Result` or an
//! `eyre::Result` inside a state, and a run's error becomes an anyhow or eyre error with its
//! causes.

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
    Anyhow,
    Eyre,
}

fn charge_with_anyhow() -> anyhow::Result<u32> {
    use anyhow::Context;
    Err(Declined { code: 51, source: Gateway }).context("charging the card")
}

fn charge_with_eyre() -> eyre::Result<u32> {
    use eyre::WrapErr;
    Err(Declined { code: 51, source: Gateway }).wrap_err("charging the card")
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
            Mode::Anyhow => {
                let amount = charge_with_anyhow()?;
                goto!(done(amount))
            }
            Mode::Eyre => {
                let amount = charge_with_eyre()?;
                goto!(done(amount))
            }
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

#[tokio::test]
async fn question_mark_on_an_anyhow_result_keeps_the_chain() {
    let error = Runner::new().run::<Checkout>(Mode::Anyhow, &mut Shop).await.unwrap_err();
    assert_eq!(error.downcast_ref::<Declined>().map(|d| d.code), Some(51));
    assert_reaches_declined(&error);
    let RunError::StateFailed { attempts, .. } = &error else { panic!("{error:?}") };
    let expected = "charging the card: card declined (code 51): the gateway answered 402";
    assert_eq!(attempts[0], Failure::error(expected, false));
}

#[tokio::test]
async fn question_mark_on_an_eyre_result_keeps_the_chain() {
    let error = Runner::new().run::<Checkout>(Mode::Eyre, &mut Shop).await.unwrap_err();
    assert_eq!(error.downcast_ref::<Declined>().map(|d| d.code), Some(51));
    assert_reaches_declined(&error);
    let RunError::StateFailed { attempts, .. } = &error else { panic!("{error:?}") };
    let expected = "charging the card: card declined (code 51): the gateway answered 402";
    assert_eq!(attempts[0], Failure::error(expected, false));
}

/// What an application does at its boundary: `?` from the engine's error into anyhow's.
async fn charge_in_app(engine: &Engine) -> anyhow::Result<u32> {
    let handle = engine.start_with::<Checkout>(Mode::Custom, Shop).await?;
    Ok(handle.output().await?)
}

#[tokio::test]
async fn a_runs_error_becomes_an_anyhow_or_eyre_error_with_its_causes() {
    let engine = engine(MemoryStore::new());
    let error = charge_in_app(&engine).await.unwrap_err();
    assert!(error.downcast_ref::<EngineError>().is_some());
    let declined = error.chain().find_map(|cause| cause.downcast_ref::<Declined>());
    assert_eq!(declined.map(|d| d.code), Some(51));
    assert!(format!("{error:#}").ends_with("the gateway answered 402"), "{error:#}");

    let handle = engine.start_with::<Checkout>(Mode::Custom, Shop).await.unwrap();
    let engine_error = handle.output().await.unwrap_err();
    let report = eyre::Report::from(engine_error);
    let declined = report.chain().find_map(|cause| cause.downcast_ref::<Declined>());
    assert_eq!(declined.map(|d| d.code), Some(51));

    let run_error = Runner::new().run::<Checkout>(Mode::Custom, &mut Shop).await.unwrap_err();
    let error = anyhow::Error::from(run_error);
    assert!(error.chain().any(|cause| cause.is::<Gateway>()));
}
