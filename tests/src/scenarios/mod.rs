//! Scenarios of the supervisor against real deployments, written once and run on every
//! runtime shim.
//!
//! A runtime implements [`TestRuntime`] (of dramatiq-sentinel-harness: its [`Runtime`] type and
//! a `block_on`) and expands [`supervisor_suite!`](crate::supervisor_suite) in a test file; every scenario becomes a
//! `#[test]` of that file. Scenarios drive the deployment (blocking harness calls) from the
//! test thread while the supervisor and a worker pool (the harness's reference pool,
//! `dramatiq_sentinel_harness::pool`) run on the runtime's own threads.

pub mod apalis;
pub mod database;
pub mod deadpool;
pub mod deposed;
pub mod escalation;
pub mod failover;
pub mod leader_unheard;
pub mod logs;
pub mod long_jobs;
pub mod lost_writes;
pub mod metrics;
pub mod pubsub;
pub mod resilience;
pub mod startup;
pub mod watches;

use dramatiq_sentinel_harness::runtime::TestRuntime;
use dramatiq_sentinel_harness::sync::lock;
use dramatiq_sentinel_harness::{WAIT, wait_for};
use dramatiq_sentinel_supervisor::{Builder, Event, Runtime, StartError, Supervisor};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Serialises scenarios of one test binary: each starts six or more Redis processes, and the
/// machine has few cores.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    logs::init();
    lock(&LOCK)
}

/// Every event with the time the supervisor emitted it (recorded by a hook, so in order and
/// before the actions that follow each event).
#[derive(Clone, Default)]
pub struct Timeline(Arc<Mutex<Vec<(Instant, Event)>>>);

impl Timeline {
    /// Records every event of the builder's supervisor.
    pub fn attach<R: Runtime>(&self, builder: Builder<R>) -> Builder<R> {
        let me = self.clone();
        builder.on_event(move |e| me.lock().push((Instant::now(), e.clone())))
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(Instant, Event)>> {
        lock(&self.0)
    }

    /// A copy of the events so far.
    pub fn events(&self) -> Vec<Event> {
        self.lock().iter().map(|(_, e)| e.clone()).collect()
    }

    /// How many events so far match.
    pub fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.lock().iter().filter(|(_, e)| pred(e)).count()
    }

    /// Waits until `n` events match.
    pub fn wait_count(&self, what: &str, n: usize, pred: impl Fn(&Event) -> bool) {
        wait_for(what, WAIT, || {
            let c = self.count(&pred);
            if c >= n {
                Ok(())
            } else {
                Err(format!("{c} of {n}; events: {:#?}", self.events()))
            }
        })
    }
}

/// Starts a supervisor for `d` on runtime `rt`, recording its events; panics with the error.
pub fn start<R: TestRuntime>(
    rt: &R,
    builder: Builder<R::Rt>,
    timeline: &Timeline,
) -> Supervisor<R::Rt> {
    try_start(rt, builder, timeline).unwrap_or_else(|e| panic!("{}: start failed: {e}", R::NAME))
}

/// Starts a supervisor, returning the error.
pub fn try_start<R: TestRuntime>(
    rt: &R,
    builder: Builder<R::Rt>,
    timeline: &Timeline,
) -> Result<Supervisor<R::Rt>, StartError> {
    let builder = timeline.attach(builder);
    rt.block_on(builder.start())
}

/// Expands to one `#[test]` per scenario, for the given [`TestRuntime`].
#[macro_export]
macro_rules! supervisor_suite {
    ($rt:ty) => {
        $crate::supervisor_suite!(@tests $rt;
            startup::starts_on_a_healthy_deployment,
            startup::dropping_the_last_handle_stops_the_supervisor,
            startup::invalid_configuration_names_the_field,
            startup::wrong_sentinel_password_names_the_sentinel,
            startup::unknown_service_name_is_its_own_error,
            startup::permanent_errors_fail_fast,
            failover::graceful_failover_with_a_worker_pool,
            failover::graceful_failover_with_a_drain,
            lost_writes::lost_writes_are_reported_when_the_replica_lags,
            long_jobs::long_jobs_through_a_graceful_failover,
            long_jobs::long_jobs_through_a_master_kill,
            long_jobs::long_jobs_through_a_frozen_master,
            failover::master_killed_with_a_worker_pool,
            failover::master_frozen_then_thawed,
            failover::two_failovers_in_quick_succession,
            leader_unheard::leader_unheard_restarted_sentinel,
            leader_unheard::leader_unheard_cut_off_sentinel,
            leader_unheard::leader_unheard_twice,
            watches::replica_watches_are_one_silent_connection_per_replica,
            watches::supervisors_sharing_connections_watch_each_replica_once,
            deposed::a_deposed_master_makes_late_writers_wait,
            database::a_database_other_than_0_is_kept_through_a_switch,
            database::a_database_the_server_refuses_fails_the_start_clearly,
            failover::other_service_failover_causes_no_pause,
            failover::nat_works_with_the_map_and_fails_clearly_without,
            failover::acl_users_work_and_wrong_ones_fail_clearly,
            failover::tls_with_client_certificates,
            resilience::sentinel_restart_with_backoff,
            resilience::missed_failover_caught_by_the_poll,
            resilience::missed_failover_caught_on_reconnect,
            resilience::unreachable_master_holds_commands_for_the_hold_timeout,
            resilience::a_command_in_flight_when_the_master_dies_may_have_run,
            escalation::pause_timeout_fails_with_the_fail_policy,
            escalation::pause_timeout_exits_the_process,
            apalis::apalis_through_a_graceful_failover,
            apalis::apalis_through_a_graceful_failover_with_a_drain,
            apalis::apalis_through_a_master_kill,
            apalis::apalis_through_a_frozen_master,
            pubsub::pubsub_subscriptions_follow_the_master,
            deadpool::deadpool_pool_through_a_failover,
            metrics::metrics_through_a_graceful_failover,
        );
        /// Not a test of its own: the child process of `pause_timeout_exits_the_process`,
        /// which runs it with `--ignored --exact`.
        #[test]
        #[ignore = "child process of pause_timeout_exits_the_process"]
        fn pause_timeout_child() {
            $crate::scenarios::escalation::pause_timeout_child::<$rt>();
        }
    };
    (@tests $rt:ty; $($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::scenarios::$module::$name::<$rt>();
            }
        )*
    };
}
