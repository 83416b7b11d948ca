//! Tests of the real-Redis harness itself.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use dramatiq_sentinel_harness::{
    Auth, Deployment, DeploymentOptions, HarnessError, ProcessId, Role, connect, redis,
};

/// Generous: the machine running the tests may be busy.
const WAIT: Duration = Duration::from_secs(30);
/// Until an old master that comes back is a replica again (Sentinel refreshes `INFO` of
/// replicas every ten seconds).
const REJOIN: Duration = Duration::from_secs(60);

type TestResult = Result<(), HarnessError>;

/// PING with these credentials.
fn ping(addr: SocketAddr, auth: &Auth) -> redis::RedisResult<String> {
    let mut connection = connect(addr, auth, None, Duration::from_secs(2))?;
    redis::cmd("PING").query(&mut connection)
}

#[test]
fn starts_healthy() -> TestResult {
    let deployment = Deployment::start(DeploymentOptions::default())?;
    let nodes = deployment.nodes();
    assert_eq!(nodes.len(), 3);
    assert_eq!(deployment.sentinels().len(), 3);
    assert_eq!(deployment.master()?, nodes[0]);
    let master_addr = deployment.announced_addr(nodes[0]);
    for (sentinel, reported) in deployment.reported_masters(deployment.service_name()) {
        assert_eq!(reported?, Some(master_addr), "{sentinel}");
        let role = deployment.role(sentinel)?;
        assert_eq!(
            role,
            Role::Sentinel {
                masters: vec!["mymaster".to_owned()]
            }
        );
        let info: String = deployment.query(sentinel, redis::cmd("INFO").arg("sentinel"))?;
        assert!(info.contains("slaves=2,sentinels=3"), "{info}");
    }
    match deployment.role(nodes[0])? {
        Role::Master { replicas } => assert_eq!(replicas.len(), 2),
        other => panic!("node-0 is {other:?}"),
    }
    for &replica in &nodes[1..] {
        assert!(deployment.role(replica)?.is_linked_replica_of(master_addr));
    }
    assert!(deployment.nat_map().is_empty());
    assert!(deployment.log_paths().iter().all(|p| p.is_file()));
    // Without a failover, waiting for a new master times out and says what everyone reports.
    match deployment.wait_for_new_master(nodes[0], Duration::from_millis(200)) {
        Err(HarnessError::Timeout { detail, .. }) => {
            for sentinel in deployment.sentinels() {
                assert!(
                    detail.contains(&format!("{sentinel} reports {master_addr} (node-0)")),
                    "{detail}"
                );
            }
            assert!(detail.contains("node-1 ("), "{detail}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    Ok(())
}

#[test]
fn graceful_failover_changes_the_master_all_sentinels_report() -> TestResult {
    let deployment = Deployment::start(DeploymentOptions::default())?;
    let (old, new) = deployment.failover_and_wait(WAIT)?;
    assert_ne!(old, new);
    for (sentinel, reported) in deployment.reported_masters(deployment.service_name()) {
        assert_eq!(
            reported?,
            Some(deployment.announced_addr(new)),
            "{sentinel}"
        );
    }
    assert!(deployment.role(new)?.is_master());
    // The old master is demoted and every node ends up replicating from the new one.
    deployment.wait_healthy(REJOIN)?;
    assert!(
        deployment
            .role(old)?
            .is_linked_replica_of(deployment.announced_addr(new))
    );
    Ok(())
}

#[test]
fn killed_master_is_replaced_within_detection_time() -> TestResult {
    let deployment = Deployment::start(DeploymentOptions::default())?;
    // Detection (down-after), then one failover attempt, which Sentinel bounds by failover-timeout.
    let bound = deployment.down_after() + deployment.failover_timeout();
    let start = Instant::now();
    let killed = deployment.kill_master()?;
    assert!(!deployment.is_running(killed));
    let new = deployment.wait_for_new_master(killed, WAIT)?;
    let took = start.elapsed();
    assert_ne!(new, killed);
    assert!(
        took < bound,
        "replacing a killed master took {took:?}, expected < {bound:?}"
    );
    // Back on the same port, it rejoins as a replica.
    deployment.revive(killed)?;
    deployment.wait_healthy(REJOIN)?;
    assert!(
        deployment
            .role(killed)?
            .is_linked_replica_of(deployment.announced_addr(new))
    );
    Ok(())
}

#[test]
fn frozen_master_is_replaced_and_rejoins_after_thaw() -> TestResult {
    let deployment = Deployment::start(DeploymentOptions::default())?;
    let frozen = deployment.master()?;
    deployment.freeze(frozen)?;
    assert!(deployment.is_frozen(frozen));
    assert!(matches!(
        deployment.role(frozen),
        Err(HarnessError::Frozen(_))
    ));
    let new = deployment.wait_for_new_master(frozen, WAIT)?;
    deployment.thaw(frozen)?;
    deployment.wait_healthy(REJOIN)?;
    assert!(
        deployment
            .role(frozen)?
            .is_linked_replica_of(deployment.announced_addr(new))
    );
    Ok(())
}

#[test]
fn sentinels_and_replicas_restart_on_the_same_port() -> TestResult {
    let deployment = Deployment::start(DeploymentOptions::default())?;
    let sentinel = deployment.sentinels()[0];
    let addr = deployment.addr(sentinel);
    deployment.stop_sentinel(sentinel);
    assert!(matches!(
        deployment.reported_master(sentinel, deployment.service_name()),
        Err(HarnessError::NotRunning(_))
    ));
    // The remaining sentinels still agree.
    assert_eq!(deployment.master()?, deployment.nodes()[0]);
    deployment.start_sentinel(sentinel)?;
    assert_eq!(deployment.addr(sentinel), addr);
    let replica = deployment.nodes()[1];
    let pid = deployment.pid(replica);
    deployment.restart(replica)?;
    assert_ne!(deployment.pid(replica), pid);
    deployment.wait_healthy(WAIT)?;
    assert_eq!(
        deployment.reported_master(sentinel, deployment.service_name())?,
        Some(deployment.announced_addr(deployment.nodes()[0]))
    );
    Ok(())
}

#[test]
fn nat_mode_announced_addresses_refuse_and_mapped_ones_accept() -> TestResult {
    let deployment = Deployment::start(DeploymentOptions::default().nat(true))?;
    let map = deployment.nat_map();
    assert_eq!(map.len(), 6, "3 data nodes and 3 sentinels: {map:?}");
    for (announced, mapped) in &map {
        let (announced, mapped): (SocketAddr, SocketAddr) =
            match (announced.parse(), mapped.parse()) {
                (Ok(a), Ok(m)) => (a, m),
                _ => panic!("bad map entry {announced} -> {mapped}"),
            };
        assert_ne!(announced, mapped);
        assert!(ping(announced, &Auth::None).is_err(), "{announced} answers");
        assert_no_bytes(announced);
        assert_eq!(ping(mapped, &Auth::None).ok().as_deref(), Some("PONG"));
    }
    // Sentinels report announced addresses, and fail over through them.
    let master = deployment.master()?;
    let reported =
        deployment.reported_master(deployment.sentinels()[0], deployment.service_name())?;
    assert_eq!(reported, Some(deployment.announced_addr(master)));
    assert!(map.contains_key(&deployment.announced_addr(master).to_string()));
    let (_, new) = deployment.failover_and_wait(WAIT)?;
    assert_eq!(
        map.get(&deployment.announced_addr(new).to_string()),
        Some(&deployment.addr(new).to_string())
    );
    Ok(())
}

/// A raw TCP client gets not a single byte from an announced address: reset or closed.
fn assert_no_bytes(addr: SocketAddr) {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return; // refused outright: also fine
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buffer = [0_u8; 16];
    match stream.read(&mut buffer) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("{addr} sent {n} bytes"),
    }
}

#[test]
fn tls_mode_requires_tls_and_a_client_certificate() -> TestResult {
    let deployment = Deployment::start(DeploymentOptions::default().replicas(1).tls(true))?;
    let tls = deployment.tls().expect("TLS material");
    let nodes = deployment.nodes().into_iter().map(ProcessId::from);
    for id in nodes.chain(deployment.sentinels().into_iter().map(ProcessId::from)) {
        let addr = deployment.addr(id);
        assert!(ping(addr, &Auth::None).is_err(), "{id}: plain TCP accepted");
        let pong = connect(addr, &Auth::None, Some(tls), Duration::from_secs(2))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        assert_eq!(pong.as_deref().ok(), Some("PONG"), "{id}: {pong:?}");
        let without_cert = redis::Client::build_with_tls(
            format!("rediss://{addr}/"),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(tls.ca.clone()),
            },
        )
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        assert!(
            without_cert.is_err(),
            "{id}: no client certificate, yet {without_cert:?}"
        );
    }
    let (old, new) = deployment.failover_and_wait(WAIT)?;
    assert_ne!(old, new);
    Ok(())
}

#[test]
fn wrong_passwords_are_refused() -> TestResult {
    let deployment = Deployment::start(
        DeploymentOptions::default()
            .replicas(1)
            .data_password("data-secret")
            .sentinel_password("sentinel-secret"),
    )?;
    let node = deployment.addr(deployment.nodes()[0]);
    let sentinel = deployment.addr(deployment.sentinels()[0]);
    for (addr, right) in [(node, "data-secret"), (sentinel, "sentinel-secret")] {
        assert_eq!(
            ping(addr, &Auth::Password(right.into())).ok().as_deref(),
            Some("PONG")
        );
        let wrong = ping(addr, &Auth::Password("wrong".into()));
        assert_eq!(
            wrong.as_ref().map_err(redis::RedisError::kind),
            Err(redis::ErrorKind::AuthenticationFailed),
            "{addr}: {wrong:?}"
        );
        let anonymous = ping(addr, &Auth::None);
        assert!(
            format!("{anonymous:?}").contains("NOAUTH"),
            "{addr}: {anonymous:?}"
        );
    }
    // Each side's password is not the other's.
    assert!(ping(node, &Auth::Password("sentinel-secret".into())).is_err());
    assert_eq!(deployment.data_auth().password(), Some("data-secret"));
    assert_eq!(
        deployment.sentinel_auth().password(),
        Some("sentinel-secret")
    );
    Ok(())
}

#[test]
fn acl_users_work_for_clients_replicas_and_sentinels() -> TestResult {
    let deployment = Deployment::start(
        DeploymentOptions::default()
            .replicas(1)
            .data_acl_user("app", "app-secret")
            .sentinel_acl_user("watcher", "watcher-secret"),
    )?;
    let node = deployment.addr(deployment.nodes()[0]);
    let sentinel = deployment.addr(deployment.sentinels()[0]);
    let app = Auth::User {
        username: "app".into(),
        password: "app-secret".into(),
    };
    assert_eq!(ping(node, &app).ok().as_deref(), Some("PONG"));
    assert!(ping(node, &Auth::None).is_err(), "default user is disabled");
    assert!(ping(node, &Auth::Password("app-secret".into())).is_err());
    let watcher = Auth::User {
        username: "watcher".into(),
        password: "watcher-secret".into(),
    };
    assert_eq!(ping(sentinel, &watcher).ok().as_deref(), Some("PONG"));
    assert!(
        ping(sentinel, &Auth::None).is_err(),
        "default user is disabled"
    );
    // An automatic failover needs the sentinels to vote with each other (sentinel-user) and to
    // reconfigure the nodes (auth-user).
    let killed = deployment.kill_master()?;
    deployment.wait_for_new_master(killed, WAIT)?;
    Ok(())
}

#[test]
fn a_second_service_is_monitored_by_the_same_sentinels() -> TestResult {
    let deployment = Deployment::start(DeploymentOptions::default().second_service("other"))?;
    let other = deployment.service_nodes("other");
    assert_eq!(other.len(), 2);
    assert_eq!(deployment.second_service_name(), Some("other"));
    for sentinel in deployment.sentinels() {
        match deployment.role(sentinel)? {
            Role::Sentinel { mut masters } => {
                masters.sort();
                assert_eq!(masters, ["mymaster", "other"]);
            }
            role => panic!("{sentinel} is {role:?}"),
        }
    }
    let first = deployment.master()?;
    assert_eq!(deployment.master_of("other")?, other[0]);
    deployment.failover_of("other")?;
    assert_eq!(deployment.wait_for_new_master(other[0], WAIT)?, other[1]);
    assert_eq!(
        deployment.master()?,
        first,
        "the first service is untouched"
    );
    Ok(())
}

#[test]
fn deployments_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Deployment>();
}

#[test]
fn monitor_sees_the_commands_a_node_runs() -> TestResult {
    let d = Deployment::start(DeploymentOptions::default())?;
    let master = d.master()?;
    let monitor = dramatiq_sentinel_harness::Monitor::start(&d, master)?;
    let before = dramatiq_sentinel_harness::unix_now();
    // Some time with nothing to read first: the monitor keeps reading after read timeouts.
    std::thread::sleep(Duration::from_millis(300));
    d.query::<()>(master, redis::cmd("SET").arg("monitored").arg(1))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = monitor.seen();
        if let Some(e) = seen.iter().find(|e| e.command == "set") {
            assert!(e.at >= before - 1.0, "{e:?} at the server's time");
            break;
        }
        assert!(Instant::now() < deadline, "no SET seen: {seen:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(monitor.stop().iter().any(|e| e.command == "set"));
    Ok(())
}
