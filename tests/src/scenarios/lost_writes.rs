//! Lost writes made visible and handed back: a failover onto a replica that lags is reported
//! with the bytes of replication stream it lacks and the commands of those bytes, read back
//! from the old master's backlog ([`Event::WritesLost`]); a failover onto a replica that kept
//! up is not (the graceful scenarios assert that).

use super::startup::addr;
use super::{Timeline, serial, start};
use dramatiq_sentinel_harness::runtime::TestRuntime;
use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, NodeId};
use dramatiq_sentinel_harness::{WAIT, config_for, wait_for};
use dramatiq_sentinel_supervisor::{Event, Supervisor};
use std::sync::mpsc;
use std::time::Duration;

/// Values written while the replica is frozen: 16 MiB, far more than the socket buffers hold,
/// so the replica cannot catch up before it processes its promotion.
const WRITES: usize = 256;
const VALUE: usize = 64 * 1024;

/// One replica, frozen (SIGSTOP) while 16 MiB of writes are acknowledged through the
/// supervisor's handle; `SENTINEL FAILOVER` onto it; thawed once the sentinel sent it
/// `SLAVEOF NO ONE`, so it is promoted before it read what it missed. The switch reports
/// `WritesLost` naming the old and new master with a positive byte count, and the written keys
/// missing on the new master prove the loss real; its commands, read back from the old
/// master's backlog, are exactly the writes of the missing keys.
pub fn lost_writes_are_reported_when_the_replica_lags<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default().replicas(1)).expect("deployment");
    let rt = R::new();
    let timeline = Timeline::default();
    let sup = start(
        &rt,
        Supervisor::<R::Rt>::builder(config_for(&d).build().expect("config")),
        &timeline,
    );
    let old = d.master().expect("master");
    let replica = d
        .nodes()
        .into_iter()
        .find(|n| *n != old)
        .expect("a replica");
    let mut conn = sup.master().dedicated();
    // The replica streams: it acknowledged a write.
    let replicated: i64 = rt
        .block_on(async {
            redis::cmd("SET")
                .arg("lost:before")
                .arg(1)
                .query_async::<()>(&mut conn)
                .await?;
            redis::cmd("WAIT")
                .arg(1)
                .arg(10_000)
                .query_async(&mut conn)
                .await
        })
        .expect("WAIT");
    assert_eq!(replicated, 1, "the replica acknowledged the write");
    let promotion_sent = watch_promotion_orders(&d);
    d.freeze(replica).expect("freeze the replica");
    let value = vec![b'x'; VALUE];
    rt.block_on(async {
        for i in 0..WRITES {
            redis::cmd("SET")
                .arg(format!("lost:{i}"))
                .arg(&value)
                .query_async::<()>(&mut conn)
                .await
                .expect("write acknowledged by the master");
        }
    });
    d.failover().expect("SENTINEL FAILOVER");
    let waited = promotion_sent.recv_timeout(WAIT);
    d.thaw(replica).expect("thaw the replica");
    waited.expect("the sentinel sends SLAVEOF NO ONE to the frozen replica");
    let new = d.wait_for_new_master(old, WAIT).expect("promoted");
    assert_eq!(new, replica);
    timeline.wait_count("the lost-write report", 1, |e| {
        matches!(e, Event::WritesLost { .. })
    });
    let reports: Vec<_> = timeline
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::WritesLost { .. }))
        .collect();
    let [
        Event::WritesLost {
            old: o,
            new: n,
            old_offset,
            new_offset,
            bytes,
            commands,
            unread,
        },
    ] = reports.as_slice()
    else {
        panic!("one report: {reports:?}")
    };
    assert_eq!(*o, addr(d.addr(old)));
    assert_eq!(*n, addr(d.addr(new)));
    assert!(
        *bytes > 0 && *bytes == old_offset - new_offset,
        "{reports:?}"
    );
    let missing = missing_keys(&d, new);
    assert!(
        missing > 0,
        "the replica lagged: writes are missing on the new master"
    );
    // At least the missing values' bytes (each SET is more than its value in the stream).
    assert!(
        *bytes >= (missing * VALUE) as u64,
        "{bytes} bytes reported for {missing} missing values of {VALUE} bytes"
    );
    // Handed back: one `SET` per missing key, each with its value, and nothing else.
    let Some(commands) = commands else {
        panic!("the old master still held the writes, yet: {unread:?}")
    };
    let missing_keys = missing_key_names(&d, new);
    let handed_back: Vec<String> = commands
        .iter()
        .map(|c| {
            let [set, key, v] = c.args.as_slice() else {
                panic!("a SET: {c:?}")
            };
            assert_eq!((set.as_slice(), v.len()), (&b"SET"[..], VALUE), "{key:?}");
            String::from_utf8_lossy(key).into_owned()
        })
        .collect();
    assert_eq!(
        handed_back, missing_keys,
        "exactly the writes the new master lacks"
    );
    eprintln!(
        "{}: {bytes} bytes lost reported ({old_offset} -> {new_offset}), {missing} of {WRITES} values missing, {} commands handed back",
        R::NAME,
        commands.len()
    );
    rt.block_on(sup.shutdown()).expect("clean shutdown");
}

/// A channel that receives once a sentinel announced `+failover-state-wait-promotion` (it sent
/// `SLAVEOF NO ONE` to the candidate).
fn watch_promotion_orders(d: &Deployment) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    for s in d.sentinels() {
        let mut conn = d.connect(s).expect("sentinel connection");
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut pubsub = conn.as_pubsub();
            if pubsub.subscribe("+failover-state-wait-promotion").is_err()
                || pubsub.set_read_timeout(Some(WAIT)).is_err()
            {
                return;
            }
            if pubsub.get_message().is_ok() {
                let _ = tx.send(());
            }
        });
    }
    rx
}

/// How many of the written keys the new master lacks (once it answers).
fn missing_keys(d: &Deployment, node: NodeId) -> usize {
    missing_key_names(d, node).len()
}

/// The written keys the new master lacks, in the order they were written.
fn missing_key_names(d: &Deployment, node: NodeId) -> Vec<String> {
    wait_for("the new master to answer", Duration::from_secs(30), || {
        let mut conn = d.connect(node).map_err(|e| e.to_string())?;
        let mut missing = Vec::new();
        for i in 0..WRITES {
            let key = format!("lost:{i}");
            let exists: bool = redis::cmd("EXISTS")
                .arg(&key)
                .query(&mut conn)
                .map_err(|e| e.to_string())?;
            if !exists {
                missing.push(key);
            }
        }
        Ok(missing)
    })
}
