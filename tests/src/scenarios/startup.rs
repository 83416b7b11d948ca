//! Startup scenarios: a healthy start (status, commands, clean shutdown), and each startup
//! error.

use super::{Timeline, serial, start, try_start};
use dramatiq_sentinel_harness::runtime::TestRuntime;
use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, redis};
use dramatiq_sentinel_harness::{WAIT, config_for, wait_for};
use dramatiq_sentinel_supervisor::{
    Addr, Config, Credentials, Event, Failure, MasterConnection, StartError, StatusError,
    Supervisor,
};
use std::net::SocketAddr;
use std::time::Duration;

/// The supervisor's address for a harness address.
pub fn addr(a: SocketAddr) -> Addr {
    Addr::new(a.ip().to_string(), a.port())
}

/// Connections the master has (`INFO clients`), the harness's own query included.
fn clients(d: &Deployment) -> usize {
    let master = d.master().expect("master");
    let info: String = d
        .query(master, redis::cmd("INFO").arg("clients"))
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("connected_clients")
}

/// Waits until the deployment has no more client connections than `baseline` (the count
/// before the supervisor started): every connection of the supervisor closed.
fn wait_connections_closed(d: &Deployment, baseline: usize) {
    wait_for("the supervisor's connections to close", WAIT, || {
        let now = clients(d);
        if now <= baseline {
            Ok(())
        } else {
            Err(format!("{now} clients, {baseline} before"))
        }
    });
}

/// Starts on a healthy deployment: ready with the right master, commands and status work (also
/// from a thread outside the runtime), and shutdown ends every task and closes every
/// connection.
pub fn starts_on_a_healthy_deployment<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    let baseline = clients(&d);
    let rt = R::new();
    let timeline = Timeline::default();
    let config = config_for(&d).build().expect("valid config");
    let builder = Supervisor::<R::Rt>::builder(config);
    let mut events = builder.subscribe();
    let sup = start(&rt, builder, &timeline);
    let master = addr(d.addr(d.master().expect("master")));
    assert_eq!(sup.current_master(), Some(master.clone()));
    assert_eq!(timeline.count(|e| matches!(e, Event::Ready { .. })), 1);
    timeline.wait_count("every listener up", 3, |e| {
        matches!(e, Event::ListenerUp { .. })
    });
    rt.block_on(async {
        let first = events.recv().await;
        assert!(
            first.is_some(),
            "the early subscription sees startup events"
        );
        let mut conn = sup.master();
        let () = redis::cmd("SET")
            .arg("greeting")
            .arg("hello")
            .query_async(&mut conn)
            .await
            .expect("SET");
        let got: String = redis::cmd("GET")
            .arg("greeting")
            .query_async(&mut conn.dedicated())
            .await
            .expect("GET");
        assert_eq!(got, "hello");
        let status = sup.status().await.expect("status");
        assert_eq!(status.master.addr, master);
        assert!(
            status.master.flags.iter().any(|f| f == "master"),
            "{status:?}"
        );
        assert!(status.master.is_healthy(), "{status:?}");
        assert_eq!(status.replicas.len(), 2, "{status:?}");
        assert_eq!(status.sentinels.len(), 2, "{status:?}");
        assert!(status.quorum.reachable, "{status:?}");
        assert_eq!(status.in_use, Some(master.clone()));
        assert!(!status.fenced);
        let permit = sup.gate().enter().await.expect("the gate is open");
        assert_eq!(sup.gate().in_flight(), 1);
        drop(permit);
    });
    // The handles work from a thread outside the runtime too: a dedicated handle opens its
    // connection there (on the supervisor's runtime) and waits for it on the runtime's timer.
    let (conn, gate) = (sup.master(), sup.gate());
    let outside = std::thread::spawn(move || {
        futures_lite::future::block_on(async move {
            let _permit = gate.enter().await.expect("the gate is open");
            let mut own = conn.dedicated();
            let n: i64 = redis::cmd("INCR")
                .arg("outside")
                .query_async(&mut own)
                .await
                .expect("INCR on a dedicated handle");
            let mut shared = conn.clone();
            let m: i64 = redis::cmd("INCR")
                .arg("outside")
                .query_async(&mut shared)
                .await
                .expect("INCR on the shared handle");
            (n, m)
        })
    });
    assert_eq!(
        outside.join().expect("no panic outside the runtime"),
        (1, 2)
    );
    rt.block_on(sup.shutdown()).expect("clean shutdown");
    assert!(sup.is_stopped());
    rt.block_on(async {
        let mut conn = sup.master();
        let err = redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .expect_err("stopped");
        assert!(err.to_string().contains("stopped"), "{err}");
        assert!(sup.gate().enter().await.is_err());
        assert_eq!(sup.status().await, Err(StatusError::Stopped));
        while events.recv().await.is_some() {}
    });
    wait_connections_closed(&d, baseline);
}

/// Dropping the last `Supervisor` clone stops it: a clone dropped changes nothing, the last
/// one dropped stops it although its master handle and gate are still held (they fail with
/// `Failure::Stopped`), and every connection of the supervisor closes.
pub fn dropping_the_last_handle_stops_the_supervisor<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    let baseline = clients(&d);
    let rt = R::new();
    let timeline = Timeline::default();
    let config = config_for(&d).build().expect("valid config");
    let sup = start(&rt, Supervisor::<R::Rt>::builder(config), &timeline);
    let (conn, gate, other) = (sup.master(), sup.gate(), sup.clone());
    drop(sup);
    let ping = |mut conn: MasterConnection| {
        rt.block_on(async move { redis::cmd("PING").query_async::<String>(&mut conn).await })
    };
    assert_eq!(
        ping(conn.clone()).expect("a clone is still held: running"),
        "PONG"
    );
    assert!(!other.is_stopped());
    drop(other);
    wait_for("the supervisor to stop", WAIT, || {
        match ping(conn.clone()) {
            Err(e) if Failure::of(&e) == Some(Failure::Stopped) => Ok(()),
            other => Err(format!("PING: {other:?}")),
        }
    });
    assert!(
        rt.block_on(gate.enter()).is_err(),
        "the gate of a stopped supervisor is closed"
    );
    wait_connections_closed(&d, baseline);
}

/// Invalid settings are rejected with the name of the field, before any I/O.
pub fn invalid_configuration_names_the_field<R: TestRuntime>() {
    let cases = [
        (
            Config::builder().sentinels(["nope"]).build(),
            "sentinels[0]",
        ),
        (
            Config::builder()
                .set("pause_timeout", "-1")
                .and_then(|b| b.build()),
            "pause_timeout",
        ),
        (
            Config::builder()
                .min_backoff(Duration::from_secs(10))
                .max_backoff(Duration::from_secs(1))
                .build(),
            "min_backoff",
        ),
    ];
    for (result, field) in cases {
        let e = result.expect_err("invalid");
        assert_eq!(e.field(), field);
        assert!(e.to_string().contains(field), "{e}");
    }
    // A certificate that looks like PEM but is not one: start says so before connecting.
    let rt = R::new();
    let config = Config::builder()
        .sentinels(["127.0.0.1:1"])
        .tls(true)
        .tls_root_cert(Some(
            b"-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n".to_vec(),
        ))
        .build()
        .expect("looks like PEM");
    match rt.block_on(Supervisor::<R::Rt>::start(config)) {
        Err(StartError::InvalidConfig { field, .. }) => assert_eq!(field, "tls_root_cert"),
        other => panic!("expected an InvalidConfig error for `tls_root_cert`, got {other:?}"),
    }
}

/// A wrong sentinel password fails startup with an error naming every sentinel and saying
/// authentication failed; the right one starts.
pub fn wrong_sentinel_password_names_the_sentinel<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default().sentinel_password("s3cret"))
        .expect("deployment");
    let rt = R::new();
    let wrong = config_for(&d)
        .sentinel_auth(Some(Credentials {
            username: None,
            password: "wrong".into(),
        }))
        .startup_timeout(Some(WAIT))
        .build()
        .expect("valid");
    let timeline = Timeline::default();
    let e =
        try_start(&rt, Supervisor::<R::Rt>::builder(wrong), &timeline).expect_err("wrong password");
    // At once, when every sentinel refused (`startup_fail_fast`), not at the deadline.
    let StartError::NoSentinelReachable { failures, waited } = &e else {
        panic!("expected NoSentinelReachable, got {e:?}");
    };
    assert!(*waited < WAIT, "failed fast: {e}");
    let text = e.to_string();
    for s in d.sentinel_addrs() {
        assert!(text.contains(&s.to_string()), "{text} names {s}");
    }
    for (sentinel, reason) in failures {
        assert!(
            reason.contains("authentication failed") || reason.contains("WRONGPASS"),
            "{sentinel}: {reason}"
        );
    }
    let right = config_for(&d).build().expect("valid");
    let sup = start(
        &rt,
        Supervisor::<R::Rt>::builder(right),
        &Timeline::default(),
    );
    rt.block_on(sup.shutdown()).expect("clean shutdown");
}

/// A service name the sentinels do not monitor is its own error, naming the sentinels.
pub fn unknown_service_name_is_its_own_error<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default().replicas(1)).expect("deployment");
    let rt = R::new();
    let config = config_for(&d)
        .service_name("nope")
        .startup_timeout(Some(WAIT))
        .build()
        .expect("valid");
    let e = try_start(
        &rt,
        Supervisor::<R::Rt>::builder(config),
        &Timeline::default(),
    )
    .expect_err("unknown name");
    match &e {
        StartError::MasterNameUnknown {
            service,
            sentinels,
            waited,
        } => {
            assert_eq!(service, "nope");
            assert_eq!(sentinels.len(), 3, "{e}");
            assert!(*waited < WAIT, "failed fast: {e}");
        }
        other => panic!("expected MasterNameUnknown, got {other:?}"),
    }
    // Patient when asked: the same error, at the deadline.
    let patient = config_for(&d)
        .service_name("nope")
        .startup_fail_fast(false)
        .startup_timeout(Some(Duration::from_secs(2)))
        .build()
        .expect("valid");
    let e = try_start(
        &rt,
        Supervisor::<R::Rt>::builder(patient),
        &Timeline::default(),
    )
    .expect_err("unknown name");
    match &e {
        StartError::MasterNameUnknown { waited, .. } => {
            assert!(*waited >= Duration::from_secs(2), "waited: {e}")
        }
        other => panic!("expected MasterNameUnknown, got {other:?}"),
    }
}

/// Addresses that are not sentinels (data nodes), and a data-node password the master refuses:
/// start fails at once with the error naming each, not at `startup_timeout`.
pub fn permanent_errors_fail_fast<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(
        DeploymentOptions::default()
            .replicas(1)
            .data_password("pa55"),
    )
    .expect("deployment");
    let rt = R::new();
    let not_sentinels = config_for(&d)
        .sentinels(d.nodes().iter().map(|n| d.addr(*n).to_string()))
        .startup_timeout(Some(WAIT))
        .build()
        .expect("valid");
    let e = try_start(
        &rt,
        Supervisor::<R::Rt>::builder(not_sentinels),
        &Timeline::default(),
    )
    .expect_err("data nodes are not sentinels");
    let StartError::NoSentinelReachable { failures, waited } = &e else {
        panic!("expected NoSentinelReachable, got {e:?}");
    };
    assert!(*waited < WAIT, "failed fast: {e}");
    assert_eq!(failures.len(), d.nodes().len(), "{e}");
    for (node, reason) in failures {
        assert!(reason.contains("unknown command"), "{node}: {reason}");
    }
    let wrong = config_for(&d)
        .redis_auth(Some(Credentials {
            username: None,
            password: "wrong".into(),
        }))
        .startup_timeout(Some(WAIT))
        .build()
        .expect("valid");
    let e = try_start(
        &rt,
        Supervisor::<R::Rt>::builder(wrong),
        &Timeline::default(),
    )
    .expect_err("wrong data-node password");
    let master = addr(d.addr(d.master().expect("master")));
    match &e {
        StartError::VerificationFailed {
            node,
            reason,
            waited,
        } => {
            assert_eq!(*node, master, "{e}");
            assert!(reason.contains("authentication failed"), "{e}");
            assert!(*waited < WAIT, "failed fast: {e}");
        }
        other => panic!("expected VerificationFailed, got {other:?}"),
    }
}
