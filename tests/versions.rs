//! Versions and migrations: runs checkpointed by version 1 of a machine, resumed by version 2
//! through a typed migration; and the runs no known version matches, refused by name.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use flow::history::{Failure, Outcome};
use flow::prelude::*;
use flow::store::{Filter, SqliteStore, Status};
use flow::{Engine, EngineError, Migrate, RunId};
use serde::{Deserialize, Serialize};

/// Emails whose `verify` hangs: a run left there is "in flight" when its process dies.
static HANG: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);

async fn maybe_hang(email: &str) {
    if HANG.lock().unwrap().contains(email) {
        std::future::pending::<()>().await;
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Mailer {
    pub sent: u32,
}

/// Version 1, as it was deployed. Kept so its runs can be read and migrated.
#[flow::machine(name = "signup")]
pub mod signup_v1 {
    use super::*;

    #[state(start, to(verify))]
    async fn register(cx: &mut Mailer, email: String) -> Result<Register> {
        cx.sent += 1;
        goto!(verify(email))
    }

    #[state(to(welcome))]
    async fn verify(_cx: &mut Mailer, email: String) -> Result<Verify> {
        maybe_hang(&email).await;
        goto!(welcome(email))
    }

    #[state(end)]
    async fn welcome(cx: &mut Mailer, email: String) -> Result<String> {
        Ok(format!("welcome {email} after {} mail(s)", cx.sent))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Address {
    pub email: String,
    pub domain: String,
}

impl Address {
    fn parse(email: String) -> Address {
        let domain = email.rsplit('@').next().unwrap_or_default().to_owned();
        Address { email, domain }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Mailer2 {
    pub sent: u32,
    pub locale: String,
}

/// Version 2: `verify` and `welcome` carry a parsed address, the context a locale.
#[flow::machine(name = "signup", version = 2)]
pub mod signup {
    use super::*;

    #[state(start, to(verify))]
    async fn register(cx: &mut Mailer2, email: String) -> Result<Register> {
        cx.sent += 1;
        goto!(verify(Address::parse(email)))
    }

    #[state(to(welcome), retry(attempts = 2))]
    async fn verify(_cx: &mut Mailer2, address: Address) -> Result<Verify> {
        maybe_hang(&address.email).await;
        goto!(welcome(address))
    }

    #[state(end)]
    async fn welcome(cx: &mut Mailer2, address: Address) -> Result<String> {
        let Address { email, domain } = address;
        Ok(format!("welcome {email} of {domain} after {} mail(s), in {}", cx.sent, cx.locale))
    }
}

impl Migrate<signup_v1::Machine> for signup::Machine {
    fn migrate(state: signup_v1::State, cx: Mailer) -> Result<(signup::State, Mailer2)> {
        let state = match state {
            signup_v1::State::Register { email } => signup::State::Register { email },
            signup_v1::State::Verify { email } => {
                signup::State::Verify { address: Address::parse(email) }
            }
            signup_v1::State::Welcome { email } => {
                signup::State::Welcome { address: Address::parse(email) }
            }
        };
        Ok((state, Mailer2 { sent: cx.sent, locale: "en".into() }))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A short lease, so that runs held by a process that died are taken over soon.
const LEASE: Duration = Duration::from_millis(200);

/// Version 1 starts a run for each email and dies with them all hanging in `verify`. The
/// next engine takes them over once its lease lapses, counting the attempt that was cut off
/// as failed (`verify` has a second attempt in version 2).
fn leave_v1_runs(path: &PathBuf, emails: &[&str]) -> Vec<RunId> {
    HANG.lock().unwrap().extend(emails.iter().map(|e| e.to_string()));
    runtime().block_on(async {
        let engine = Engine::builder()
            .store(SqliteStore::open(path).unwrap())
            .machine::<signup_v1::Machine>()
            .lease(LEASE)
            .build()
            .unwrap();
        let mut runs = Vec::new();
        for email in emails {
            runs.push(engine.start::<signup_v1::Machine>(email.to_string()).await.unwrap().id());
        }
        for &run in &runs {
            while engine.status(run).await.unwrap().state == "register" {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        runs
    })
}

/// Waits until an engine has marked `run` stuck.
async fn until_stuck(engine: &Engine, run: RunId) {
    while engine.status(run).await.unwrap().status != Status::Stuck {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_v1_run_resumes_on_v2_through_its_migration() {
    let path = common::db("versions-migrate");
    let runs = leave_v1_runs(&path, &["ada@example.org"]);
    HANG.lock().unwrap().remove("ada@example.org");

    runtime().block_on(async {
        let engine = Engine::builder()
            .store(SqliteStore::open(&path).unwrap())
            .machine::<signup::Machine>()
            .migration::<signup_v1::Machine, signup::Machine>()
            .build()
            .unwrap();
        // Taken over, migrated and finished by this engine on its own.
        let output = engine.handle::<signup::Machine>(runs[0]).await.unwrap().output().await;
        // `register` ran under v1 (its mail count survived); the rest ran under v2.
        assert_eq!(
            output.unwrap(),
            "welcome ada@example.org of example.org after 1 mail(s), in en"
        );

        let status = engine.status(runs[0]).await.unwrap();
        assert_eq!(status.version, 2);
        let path: Vec<_> = status.history.iter().map(|e| (e.state, e.attempt)).collect();
        assert_eq!(path, [("register", 1), ("verify", 1), ("verify", 2), ("welcome", 1)]);
        let Outcome::Failed { failure, .. } = &status.history[1].outcome else {
            panic!("the cut-off attempt failed: {:?}", status.history[1]);
        };
        assert_eq!(*failure, Failure::Interrupted);
    });
}

#[test]
fn a_run_of_an_unknown_version_is_stuck_with_both_versions_named_and_others_go_on() {
    let path = common::db("versions-unknown-version");
    let stale = leave_v1_runs(&path, &["bob@example.org"])[0];
    HANG.lock().unwrap().remove("bob@example.org");

    runtime().block_on(async {
        // Version 2 without the migration: the v1 run cannot be read.
        let engine = Engine::builder()
            .store(SqliteStore::open(&path).unwrap())
            .machine::<signup::Machine>()
            .build()
            .unwrap();
        let fresh = engine.start::<signup::Machine>("cy@example.org".into()).await.unwrap();
        // Taken over once the dead process's lease lapses, and found unreadable.
        until_stuck(&engine, stale).await;
        let report = engine.resume_pending().await.unwrap();
        let [EngineError::Incompatible { run, stored_version: 1, version: 2, .. }] =
            &report.failed[..]
        else {
            panic!("expected the v1 run to be refused, got {:?}", report.failed);
        };
        assert_eq!(*run, stale);
        let message = report.failed[0].to_string();
        let v1 = signup_v1::graph().fingerprint;
        let v2 = signup::graph().fingerprint;
        assert_ne!(v1, v2);
        assert_eq!(
            message,
            format!(
                "run {stale} of machine `signup` was stored by version 1 (fingerprint {v1}); \
                 this binary has version 2 (fingerprint {v2}): no registered migration starts \
                 from the stored version and fingerprint: keep the old version's module and \
                 register EngineBuilder::migration::<Old, New>()"
            )
        );
        // The other run is unharmed.
        assert!(fresh.output().await.unwrap().starts_with("welcome cy@example.org"));
        let stuck = engine.list(Filter::new().status(Status::Stuck)).await.unwrap();
        assert_eq!(stuck.len(), 1);
        assert_eq!(stuck[0].note.as_deref(), Some(message.as_str()));
    });

    // A binary with the migration picks the stuck run up.
    runtime().block_on(async {
        let engine = Engine::builder()
            .store(SqliteStore::open(&path).unwrap())
            .machine::<signup::Machine>()
            .migration::<signup_v1::Machine, signup::Machine>()
            .build()
            .unwrap();
        assert_eq!(engine.resume_pending().await.unwrap().resumed, [stale]);
        let output = engine.handle::<signup::Machine>(stale).await.unwrap().output().await;
        assert!(output.unwrap().starts_with("welcome bob@example.org of example.org"));
        assert_eq!(engine.status(stale).await.unwrap().status, Status::Completed);
    });
}

/// The same version number with another shape: someone changed the machine and forgot the
/// bump. Refused, not misread.
#[flow::machine(name = "signup")]
pub mod signup_changed_in_place {
    use super::*;

    #[state(start, to(verify))]
    async fn register(_cx: &mut Mailer, email: String) -> Result<Register> {
        goto!(verify(email, 3))
    }

    #[state(to(welcome))]
    async fn verify(_cx: &mut Mailer, email: String, tries: u8) -> Result<Verify> {
        goto!(welcome(format!("{email} {tries}")))
    }

    #[state(end)]
    async fn welcome(_cx: &mut Mailer, email: String) -> Result<String> {
        Ok(email)
    }
}

#[test]
fn a_shape_change_without_a_version_bump_is_refused() {
    let path = common::db("versions-no-bump");
    let run = leave_v1_runs(&path, &["dee@example.org"])[0];
    runtime().block_on(async {
        let engine = Engine::builder()
            .store(SqliteStore::open(&path).unwrap())
            .machine::<signup_changed_in_place::Machine>()
            .build()
            .unwrap();
        until_stuck(&engine, run).await;
        let report = engine.resume_pending().await.unwrap();
        let [error @ EngineError::Incompatible { stored_version: 1, version: 1, .. }] =
            &report.failed[..]
        else {
            panic!("expected a refusal, got {:?}", report.failed);
        };
        assert!(error.to_string().contains("changed without a version bump"), "{error}");
        assert_eq!(engine.status(run).await.unwrap().status, Status::Stuck);
    });
}

#[test]
fn a_migration_must_lead_to_the_registered_machine() {
    let error =
        Engine::builder().migration::<signup_v1::Machine, signup::Machine>().build().unwrap_err();
    assert_eq!(
        error.to_string(),
        "the engine cannot be built: a migration leads to machine `signup`, which is not \
         registered; add .machine::<...>() for it"
    );
}
