//! The application's pub/sub handle through a failover (issue 14): its subscriptions move to
//! the new master, the connection to the old one is closed, the gap is reported as an event,
//! and messages published on the new master after the switch arrive.

use super::failover::{switched, wait_master};
use super::startup::addr;
use super::{Timeline, serial, start};
use dramatiq_sentinel_harness::runtime::{TestRuntime, spawn};
use dramatiq_sentinel_harness::sync::lock;
use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, NodeId, redis};
use dramatiq_sentinel_harness::{WAIT, config_for, wait_for};
use dramatiq_sentinel_supervisor::{Event, Supervisor};
use std::sync::{Arc, Mutex};

/// Our pub/sub connections on `node`: `CLIENT LIST TYPE pubsub` without the sentinels' own
/// (named `sentinel-...`).
fn our_subscribers(d: &Deployment, node: NodeId) -> Result<Vec<String>, String> {
    let list: String = d
        .query(
            node,
            redis::cmd("CLIENT").arg("LIST").arg("TYPE").arg("pubsub"),
        )
        .map_err(|e| e.to_string())?;
    Ok(list
        .lines()
        .filter(|l| !l.contains("name=sentinel-"))
        .map(str::to_owned)
        .collect())
}

/// Publishes `payload` on `channel` on `node`; returns the number of receivers.
fn publish(d: &Deployment, node: NodeId, channel: &str, payload: &str) -> Result<i64, String> {
    d.query(node, redis::cmd("PUBLISH").arg(channel).arg(payload))
        .map_err(|e| e.to_string())
}

/// A subscriber on a channel and a pattern through `SENTINEL FAILOVER`.
pub fn pubsub_subscriptions_follow_the_master<R: TestRuntime>() {
    let _serial = serial();
    let errors_before = super::logs::errors();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    let rt = R::new();
    let timeline = Timeline::default();
    let config = config_for(&d).build().expect("valid config");
    let sup = start(&rt, Supervisor::<R::Rt>::builder(config), &timeline);
    let received: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    rt.block_on(async {
        let mut ps = sup.master().pubsub();
        ps.subscribe("news").await.expect("subscribe");
        ps.psubscribe("alerts.*").await.expect("psubscribe");
        let received = Arc::clone(&received);
        spawn::<R>(async move {
            while let Some(msg) = ps.recv().await {
                let channel = msg.get_channel_name().to_owned();
                let payload: String = msg.get_payload().unwrap_or_default();
                lock(&received).push((channel, payload));
            }
        });
    });
    let got = |payload: &str| lock(&received).iter().any(|(_, p)| p == payload);

    let old = d.master().expect("master");
    assert_eq!(
        our_subscribers(&d, old).expect("CLIENT LIST").len(),
        1,
        "one pub/sub connection of ours on the master"
    );
    // Subscribed before `subscribe` returned: the first publication arrives.
    assert_eq!(publish(&d, old, "news", "before"), Ok(1));
    wait_for("the message published before the failover", WAIT, || {
        if got("before") {
            Ok(())
        } else {
            Err(format!("{:?}", lock(&received)))
        }
    });

    let (_, new) = d.failover_and_wait(WAIT).expect("failover");
    timeline.wait_count("the switch", 1, switched);
    let new = d.master().unwrap_or(new);
    wait_master::<R>(&sup, &d, new);
    timeline.wait_count("the pub/sub gap reported", 1, |e| {
        matches!(e, Event::PubSubResubscribed { .. })
    });
    let resubscribed: Vec<Event> = timeline
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::PubSubResubscribed { .. }))
        .collect();
    match &resubscribed[..] {
        [
            Event::PubSubResubscribed {
                old: Some(from),
                new: to,
                channels: 1,
                patterns: 1,
                gap,
            },
        ] => {
            assert_eq!(*from, addr(d.addr(old)), "{resubscribed:?}");
            assert_eq!(*to, addr(d.addr(new)), "{resubscribed:?}");
            eprintln!("{}: pub/sub gap {gap:?}", R::NAME);
        }
        other => panic!("one resubscription to the new master expected: {other:?}"),
    }

    // Messages published on the new master after the switch arrive, on the channel and on
    // the pattern.
    let mut n = 0;
    wait_for("a message published on the new master", WAIT, || {
        n += 1;
        let payload = format!("after-{n}");
        publish(&d, new, "news", &payload)?;
        if got(&payload) {
            Ok(())
        } else {
            Err(format!("{:?}", lock(&received)))
        }
    });
    let mut n = 0;
    wait_for(
        "a pattern message published on the new master",
        WAIT,
        || {
            n += 1;
            let payload = format!("alert-{n}");
            publish(&d, new, "alerts.disk", &payload)?;
            if lock(&received)
                .iter()
                .any(|(c, p)| c == "alerts.disk" && *p == payload)
            {
                Ok(())
            } else {
                Err(format!("{:?}", lock(&received)))
            }
        },
    );
    assert_eq!(
        our_subscribers(&d, new).map(|l| l.len()),
        Ok(1),
        "one connection of ours"
    );
    wait_for(
        "no pub/sub connection of ours on the old master",
        WAIT,
        || {
            let left = our_subscribers(&d, old)?;
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        },
    );

    // After a shutdown the handle's stream ends.
    rt.block_on(sup.shutdown()).expect("clean shutdown");
    wait_for("the pub/sub connection to close", WAIT, || {
        let left = our_subscribers(&d, new)?;
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
    assert_eq!(super::logs::errors(), errors_before, "no error-level log");
}
