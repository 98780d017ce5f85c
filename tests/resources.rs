//! Resources for contexts: clients and pools are not stored; the engine gives them back to
//! every run it executes, after any restart, without globals.

mod common;

use std::sync::Arc;
use std::time::Duration;

use flow::prelude::*;
use flow::store::{SqliteStore, Wait};
use flow::testing::TestClock;
use flow::{Engine, RunId};
use serde::{Deserialize, Serialize};

/// A client the workflow calls: not data, so not stored.
#[derive(Debug)]
pub struct Mailer {
    pub name: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Outbox {
    pub sent: u32,
    #[serde(skip)]
    pub mailer: Option<Arc<Mailer>>,
}

#[flow::machine]
pub mod welcome {
    use super::*;

    #[state(start, to(send))]
    async fn sign_up(_cx: &mut Outbox, user: String) -> Result<SignUp> {
        goto!(send(user))
    }

    /// A day after signing up, through whatever mailer the engine gives.
    #[state(end, wait = "1d")]
    async fn send(cx: &mut Outbox, user: String) -> Result<String> {
        let mailer = cx.mailer.as_ref().ok_or_else(|| Error::permanent("no mailer given"))?;
        cx.sent += 1;
        Ok(format!("{} welcomed {user}", mailer.name))
    }
}

fn engine(path: &std::path::Path, mailer: &str) -> Engine {
    let mailer = Arc::new(Mailer { name: mailer.into() });
    Engine::builder()
        .store(SqliteStore::open(path).unwrap())
        .machine_with::<welcome::Machine>(move |outbox| outbox.mailer = Some(mailer.clone()))
        .clock(TestClock::new())
        // Nothing else writes these files: no need to look for other processes' writes
        // every 250 ms of the paused clock's day.
        .poll_interval(Duration::from_secs(3600))
        .build()
        .unwrap()
}

fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

#[test]
fn a_run_resumed_by_a_fresh_engine_reaches_the_client_given_to_that_engine() {
    let path = common::db("resources-restart");
    let run: RunId = paused().block_on(async {
        let engine = engine(&path, "the old mailer");
        let run = engine.start::<welcome::Machine>("ada".into()).await.unwrap().id();
        while engine.status(run).await.unwrap().wait != Some(Wait::Timer) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        run
    }); // the process stops while the run waits a day

    paused().block_on(async {
        let engine = engine(&path, "the new mailer");
        let output = engine.handle::<welcome::Machine>(run).await.unwrap().output().await;
        assert_eq!(output.unwrap(), "the new mailer welcomed ada");
    });
}

#[test]
fn two_engines_in_one_process_give_their_own_clients() {
    let (one, two) = (common::db("resources-one"), common::db("resources-two"));
    paused().block_on(async {
        let first = engine(&one, "mailer one");
        let second = engine(&two, "mailer two");
        let a = first.start::<welcome::Machine>("bo".into()).await.unwrap();
        let b = second.start::<welcome::Machine>("cy".into()).await.unwrap();
        assert_eq!(a.output().await.unwrap(), "mailer one welcomed bo");
        assert_eq!(b.output().await.unwrap(), "mailer two welcomed cy");
    });
}

#[tokio::test(start_paused = true)]
async fn the_in_memory_runner_takes_the_context_as_given() {
    let mut outbox = Outbox { sent: 0, mailer: Some(Arc::new(Mailer { name: "local".into() })) };
    let done = welcome::run("di".into(), &mut outbox).await.unwrap();
    assert_eq!(done.output, "local welcomed di");
    assert_eq!(outbox.sent, 1);
}
