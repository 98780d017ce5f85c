//! The `CheckpointStore` contract, one suite run against every store (memory, SQLite and, with
//! the `postgres` feature, PostgreSQL): the compare-and-set on sequence numbers and fencing
//! (`writes`), reads and history (`history`), claims (`claims`), leases (`leases`), halts and
//! marks (`halts`), deletion (`deletion`), listing (`listing`) and business keys (`keys`).
//! Then what only one store has: `sqlite_only` (group commit, a file changed under the store,
//! upgrading an older file) and `postgres_only`.

#[path = "../common/mod.rs"]
mod common;

mod claims;
mod deletion;
mod group_commit;
mod halts;
mod harness;
mod history;
mod keys;
mod leases;
mod listing;
#[cfg(feature = "postgres")]
mod postgres_only;
mod sqlite_only;
mod writes;

/// Each contract test, given as `topic::name`, once per store: `memory::name`, `sqlite::name`
/// and (with the `postgres` feature) `postgres::name`.
macro_rules! contract {
    ($($topic:ident::$test:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $test() {
                super::$topic::$test(flow::store::MemoryStore::new()).await;
            })*
        }
        mod sqlite {
            $(#[tokio::test]
            async fn $test() {
                super::$topic::$test(super::harness::sqlite(stringify!($test))).await;
            })*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(#[tokio::test]
            async fn $test() {
                super::$topic::$test(super::common::postgres(stringify!($test)).await).await;
            })*
        }
        /// Said in every run without PostgreSQL, so that leaving it out is never silent.
        #[cfg(not(feature = "postgres"))]
        #[test]
        #[ignore = "the PostgreSQL contract tests need `--features postgres` and DATABASE_URL"]
        fn postgres_contract() {}
    };
}

contract!(
    writes::seq_0_creates_a_run_once_and_each_checkpoint_follows_the_last,
    writes::writes_are_fenced_by_the_current_claim,
    history::latest_is_the_newest_snapshot_and_history_the_entries_added,
    history::history_after_gives_each_later_checkpoints_entries_with_its_seq,
    claims::a_claim_returns_the_latest_checkpoint_as_written,
    claims::a_waiting_run_is_claimed_from_its_deadline_and_not_before,
    claims::claim_takes_only_the_named_machines,
    claims::claim_honours_its_limit_earliest_due_first,
    claims::each_claim_of_a_run_gets_a_higher_token,
    claims::next_due_is_the_earliest_due_run_no_engine_holds,
    leases::an_expired_lease_is_taken_over_and_its_holder_fenced,
    leases::release_frees_a_run_at_once_unless_its_lease_is_stale,
    halts::halts_are_delivered_to_the_holder_and_to_the_next_claim,
    halts::a_checkpoint_that_ends_or_pauses_a_run_clears_its_halt,
    halts::mark_is_fenced_stuck_holds_a_run_and_running_frees_it,
    deletion::delete_removes_a_finished_run_and_its_history,
    deletion::delete_refuses_an_unfinished_run,
    deletion::delete_finished_deletes_matching_runs_finished_before,
    listing::list_and_summary_reflect_status_wait_and_times,
    keys::a_keyed_run_keeps_its_key_and_lists_by_it,
);
