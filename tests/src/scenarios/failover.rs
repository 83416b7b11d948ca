//! Failover scenarios with a worker pool on a reliable queue: every one checks that no job is
//! lost, none runs twice, none starts while the workers are paused, and the workers run on the
//! new master afterwards.

use super::startup::addr;
use super::{Timeline, serial, start};
use dramatiq_sentinel_harness::pool::{Pool, PoolOptions, attach};
use dramatiq_sentinel_harness::runtime::TestRuntime;
use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, NodeId, redis};
use dramatiq_sentinel_harness::{WAIT, config_for, wait_for};
use dramatiq_sentinel_supervisor::{Config, ConfigBuilder, DetectionPath, Event, Supervisor};

/// A completed switch away from a master (not the startup).
pub fn switched(e: &Event) -> bool {
    matches!(e, Event::SwitchCompleted { old: Some(_), .. })
}

/// Waits until the supervisor uses `node`.
pub fn wait_master<R: TestRuntime>(sup: &Supervisor<R::Rt>, d: &Deployment, node: NodeId) {
    let want = addr(d.addr(node));
    wait_for("the supervisor to use the new master", WAIT, || {
        let now = sup.current_master();
        if now.as_ref() == Some(&want) {
            Ok(())
        } else {
            Err(format!("{now:?}, want {want}"))
        }
    });
}

/// A supervisor with the pool's hooks, and the pool working on `before` jobs.
pub struct Running<R: TestRuntime> {
    /// The runtime.
    pub rt: R,
    /// The supervisor.
    pub sup: Supervisor<R::Rt>,
    /// The pool.
    pub pool: Pool,
    /// Its events.
    pub timeline: Timeline,
    errors_before: usize,
}

impl<R: TestRuntime> Running<R> {
    /// Starts a supervisor (config from `tweak(config_for(d))`) and a pool with 3000 jobs, and
    /// waits until the pool is busy.
    pub fn start(
        d: &Deployment,
        options: PoolOptions,
        tweak: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    ) -> Self {
        let errors_before = super::logs::errors();
        let rt = R::new();
        let timeline = Timeline::default();
        let ledger = Pool::ledger();
        let config = tweak(config_for(d)).build().expect("valid config");
        let sup = start(
            &rt,
            attach(&ledger, Supervisor::<R::Rt>::builder(config)),
            &timeline,
        );
        let mut pool = Pool::start(&rt, ledger, &sup, options);
        if options.long_jobs > 0 {
            pool.produce(d, "long", options.long_jobs);
        }
        pool.produce(d, "before", 3000);
        pool.wait_completed(100);
        Self {
            rt,
            sup,
            pool,
            timeline,
            errors_before,
        }
    }

    /// More jobs (they run on the current master), then the checks, then a clean shutdown.
    /// With `drain` configured, each switch paused the pool; without (the default), none did.
    pub fn finish(mut self, d: &Deployment) {
        self.pool.produce(d, "after", 200);
        let requeued = self.pool.finish_and_check(d);
        let switches = self.timeline.count(switched);
        if self.sup.config().drain() {
            assert!(
                self.pool.ledger.pauses() >= switches.min(1),
                "the workers were drained"
            );
        } else {
            assert_eq!(self.pool.ledger.pauses(), 0, "no drain without `drain`");
        }
        assert_eq!(
            self.timeline
                .count(|e| matches!(e, Event::Stopped { .. } | Event::PauseTimedOut { .. })),
            0
        );
        let final_master = d.master().expect("master");
        let master = addr(d.addr(final_master));
        assert_eq!(
            self.sup.current_master(),
            Some(master.clone()),
            "on the final master"
        );
        // The status names it too, NAT-mapped, with the address the sentinels announce.
        let status = self.rt.block_on(self.sup.status()).expect("status");
        assert_eq!(status.master.addr, master, "{status:?}");
        assert_eq!(
            status.master.announced,
            addr(d.announced_addr(final_master)),
            "{status:?}"
        );
        assert_eq!(status.in_use, Some(master), "{status:?}");
        let switches: Vec<_> = self
            .timeline
            .events()
            .into_iter()
            .filter(switched)
            .collect();
        eprintln!(
            "{}: {} jobs, {} requeued, {} pauses, switches {switches:#?}, worker errors {:?}",
            R::NAME,
            self.pool.ledger.completed(),
            requeued,
            self.pool.ledger.pauses(),
            self.pool.errors()
        );
        self.rt
            .block_on(self.sup.shutdown())
            .expect("clean shutdown");
        assert_eq!(
            super::logs::errors(),
            self.errors_before,
            "error-level logs during a failover that worked (RUST_LOG=error shows them)"
        );
    }
}

/// A graceful failover of the deployment with a working pool.
fn graceful<R: TestRuntime>(
    options: DeploymentOptions,
    tweak: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) {
    let _serial = serial();
    let d = Deployment::start(options).expect("deployment");
    let run = Running::<R>::start(&d, PoolOptions::default(), tweak);
    let (_old, new) = d.failover_and_wait(WAIT).expect("failover");
    run.timeline.wait_count("the switch", 1, switched);
    wait_master::<R>(&run.sup, &d, d.master().unwrap_or(new));
    // With early fencing (the default) a graceful failover is detected by the early signals
    // and switched on the candidate's promotion, before `+switch-master`.
    let paths: Vec<_> = run
        .timeline
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::SwitchCompleted {
                old: Some(_), path, ..
            } => Some(path),
            _ => None,
        })
        .collect();
    assert_eq!(paths, [DetectionPath::EarlySignal], "detection paths");
    // The replica kept up: no loss to report.
    assert_eq!(
        run.timeline
            .count(|e| matches!(e, Event::WritesLost { .. })),
        0,
        "a graceful failover onto a replica that kept up loses nothing"
    );
    run.finish(&d);
}

/// `SENTINEL FAILOVER` while the pool works.
pub fn graceful_failover_with_a_worker_pool<R: TestRuntime>() {
    graceful::<R>(DeploymentOptions::default(), |b| b);
}

/// The same with the opt-in drain: the pool is paused once its jobs in flight are done, and no
/// job starts until it resumes on the new master.
pub fn graceful_failover_with_a_drain<R: TestRuntime>() {
    graceful::<R>(DeploymentOptions::default(), |b| b.drain(true));
}

/// NAT: every address the sentinels announce resets client connections; with the NAT map the
/// supervisor works as usual; without it, startup fails naming the announced master.
pub fn nat_works_with_the_map_and_fails_clearly_without<R: TestRuntime>() {
    graceful::<R>(DeploymentOptions::default().nat(true), |b| b);
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default().nat(true)).expect("deployment");
    let rt = R::new();
    let no_map = Config::builder()
        .sentinels(d.sentinel_addrs().iter().map(ToString::to_string))
        .service_name(d.service_name().to_owned())
        .startup_timeout(Some(std::time::Duration::from_secs(3)))
        .build()
        .expect("valid");
    let e = super::try_start(
        &rt,
        Supervisor::<R::Rt>::builder(no_map),
        &Timeline::default(),
    )
    .expect_err("unreachable announced master");
    let announced = addr(d.announced_addr(d.master().expect("master")));
    match &e {
        dramatiq_sentinel_supervisor::StartError::VerificationFailed { node, .. } => {
            assert_eq!(*node, announced, "{e}")
        }
        other => panic!("expected VerificationFailed for {announced}, got {other:?}"),
    }
}

/// TLS only, with client certificates required (`tls-auth-clients yes`): with the deployment's
/// CA and a client certificate a graceful failover works as usual; trusting only the system's
/// store, startup fails naming each sentinel and the certificate problem.
pub fn tls_with_client_certificates<R: TestRuntime>() {
    graceful::<R>(DeploymentOptions::default().tls(true), |b| b);
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default().tls(true)).expect("deployment");
    let rt = R::new();
    let untrusted = config_for(&d)
        .tls_root_cert(None)
        .startup_timeout(Some(std::time::Duration::from_secs(3)))
        .build()
        .expect("valid");
    let e = super::try_start(
        &rt,
        Supervisor::<R::Rt>::builder(untrusted),
        &Timeline::default(),
    )
    .expect_err("a CA the system does not trust");
    let dramatiq_sentinel_supervisor::StartError::NoSentinelReachable { failures, .. } = &e else {
        panic!("expected NoSentinelReachable, got {e:?}");
    };
    assert_eq!(failures.len(), d.sentinels().len(), "{e}");
    for (sentinel, reason) in failures {
        assert!(reason.contains("certificate"), "{sentinel}: {reason}");
    }
}

/// ACL users on sentinels and data nodes: a graceful failover works; a wrong user name fails
/// startup naming the sentinels.
pub fn acl_users_work_and_wrong_ones_fail_clearly<R: TestRuntime>() {
    let options = DeploymentOptions::default()
        .sentinel_acl_user("watcher", "s3cret")
        .data_acl_user("worker", "pa55");
    graceful::<R>(options.clone(), |b| b);
    let _serial = serial();
    let d = Deployment::start(options).expect("deployment");
    let rt = R::new();
    let wrong = config_for(&d)
        .sentinel_auth(Some(dramatiq_sentinel_supervisor::Credentials {
            username: Some("intruder".into()),
            password: "s3cret".into(),
        }))
        .startup_timeout(Some(std::time::Duration::from_secs(3)))
        .build()
        .expect("valid");
    let e = super::try_start(
        &rt,
        Supervisor::<R::Rt>::builder(wrong),
        &Timeline::default(),
    )
    .expect_err("wrong user");
    let text = e.to_string();
    assert!(
        matches!(
            e,
            dramatiq_sentinel_supervisor::StartError::NoSentinelReachable { .. }
        ),
        "{e:?}"
    );
    for s in d.sentinel_addrs() {
        assert!(text.contains(&s.to_string()), "{text} names {s}");
    }
    assert!(text.contains("authentication failed"), "{text}");
}

/// The master is killed (SIGKILL) while the pool works; the pool acknowledges durably
/// (`WAIT 1`), as an application must to survive losing a master.
pub fn master_killed_with_a_worker_pool<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    let durable = PoolOptions {
        durable: true,
        ..PoolOptions::default()
    };
    // The held command below relies on the hold outlasting detection and promotion.
    let run = Running::<R>::start(&d, durable, |b| b.hold_timeout(WAIT));
    let killed = d.kill_master().expect("kill");
    // A command issued now, on a handle that must connect, finds the master dead long before
    // the sentinels notice (down-after 2 s): it is held, not failed, and lands on the new one.
    let conn = run.sup.master().dedicated();
    assert_eq!(
        conn.node(),
        Some(addr(d.addr(killed))),
        "still the old master"
    );
    assert!(
        !conn.is_held(),
        "not fenced yet: the sentinels have not noticed"
    );
    let mut held = conn.clone();
    let written = run.rt.block_on(async move {
        redis::cmd("SET")
            .arg("held-through-the-kill")
            .arg(1)
            .query_async::<()>(&mut held)
            .await
    });
    assert!(written.is_ok(), "the held command failed: {written:?}");
    let new = d.wait_for_new_master(killed, WAIT).expect("new master");
    run.timeline.wait_count("the switch", 1, switched);
    wait_master::<R>(&run.sup, &d, d.master().unwrap_or(new));
    let on_master: Option<i64> = d
        .query(
            d.master().unwrap_or(new),
            &redis::cmd("GET").arg("held-through-the-kill").clone(),
        )
        .expect("GET on the new master");
    assert_eq!(on_master, Some(1), "the held command ran on the new master");
    run.finish(&d);
}

/// Client connections of a data node other than sentinels, replication links, the harness's
/// own query and the supervisor's watch of it as a replica (RESP3, idle since its `ROLE`).
fn foreign_clients(d: &Deployment, node: NodeId) -> Result<Vec<String>, String> {
    let list: String = d
        .query(node, &redis::cmd("CLIENT").arg("LIST").clone())
        .map_err(|e| e.to_string())?;
    Ok(list
        .lines()
        .filter(|l| !l.contains("name=sentinel-"))
        .filter(|l| !l.contains("cmd=client|list"))
        .filter(|l| !(l.contains("resp=3") && l.contains("cmd=role")))
        .filter(|l| {
            l.split(' ')
                .find_map(|f| f.strip_prefix("flags="))
                .is_none_or(|f| !f.contains('S') && !f.contains('M'))
        })
        .map(str::to_owned)
        .collect())
}

/// The master freezes (SIGSTOP) while the pool works; after the failover it is thawed: the
/// supervisor has closed every connection to it, so nothing of ours reaches it (but the
/// watch it keeps on it once the sentinels made it a replica, which sends nothing).
pub fn master_frozen_then_thawed<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    let durable = PoolOptions {
        durable: true,
        ..PoolOptions::default()
    };
    let run = Running::<R>::start(&d, durable, |b| b);
    let frozen = d.master().expect("master");
    d.freeze(frozen).expect("freeze");
    let new = d.wait_for_new_master(frozen, WAIT).expect("new master");
    run.timeline.wait_count("the switch", 1, switched);
    wait_master::<R>(&run.sup, &d, d.master().unwrap_or(new));
    d.thaw(frozen).expect("thaw");
    wait_for("no connection of ours on the thawed master", WAIT, || {
        let clients = foreign_clients(&d, frozen)?;
        if clients.is_empty() {
            Ok(())
        } else {
            Err(format!("{clients:#?}"))
        }
    });
    run.finish(&d);
}

/// Two graceful failovers in quick succession.
pub fn two_failovers_in_quick_succession<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    // Durable acks (`WAIT 1`): Redis acknowledges writes before a replica that has just
    // resynced from the first new master receives them; if the second failover promotes that
    // replica in between, the writes are gone, whatever the client does (seen here: ~11 KB
    // acknowledged 60 ms before the second `+try-failover`, missing from the promoted replica).
    let durable = PoolOptions {
        durable: true,
        ..PoolOptions::default()
    };
    let run = Running::<R>::start(&d, durable, |b| b);
    let (_, first) = d.failover_and_wait(WAIT).expect("first failover");
    let (_, second) = d.failover_and_wait(WAIT).expect("second failover");
    assert_ne!(first, second);
    run.timeline.wait_count("two switches", 2, switched);
    wait_master::<R>(&run.sup, &d, d.master().unwrap_or(second));
    run.finish(&d);
}

/// A failover of another service monitored by the same sentinels: no fence, no pause. (Its
/// messages are dropped by the listeners before they queue.) A failover of ours afterwards is
/// the one switch, on the same listeners: they were up and heard both.
pub fn other_service_failover_causes_no_pause<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default().second_service("other"))
        .expect("deployment");
    let run = Running::<R>::start(&d, PoolOptions::default(), |b| b);
    let old = d.master_of("other").expect("other's master");
    d.failover_of("other")
        .expect("failover of the other service");
    d.wait_for_new_master(old, WAIT)
        .expect("other's new master");
    let fenced = |e: &Event| {
        matches!(
            e,
            Event::Fenced { .. } | Event::SwitchDetected { old: Some(_), .. }
        )
    };
    assert_eq!(
        run.timeline.count(fenced),
        0,
        "{:#?}",
        run.timeline.events()
    );
    assert_eq!(
        run.pool.ledger.pauses(),
        0,
        "no pause for the other service"
    );
    let (_, ours) = d.failover_and_wait(WAIT).expect("our failover");
    run.timeline.wait_count("our switch", 1, switched);
    wait_master::<R>(&run.sup, &d, d.master().unwrap_or(ours));
    let detected: Vec<_> = run
        .timeline
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::SwitchDetected {
                old: Some(_), new, ..
            } => Some(new),
            _ => None,
        })
        .collect();
    assert_eq!(
        detected,
        [addr(d.addr(ours))],
        "only our failover was acted on"
    );
    run.finish(&d);
}
