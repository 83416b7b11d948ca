//! A database other than 0 (`db`): the connection a switch opens to the new master selects it
//! (in the same round trip as the `ROLE` that verifies the node), so the application's
//! commands after the switch land in that database, as before it, and never in database 0.

use super::failover::{switched, wait_master};
use super::{Timeline, serial, start, try_start};
use dramatiq_sentinel_harness::runtime::TestRuntime;
use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, NodeId, redis};
use dramatiq_sentinel_harness::{WAIT, config_for};
use dramatiq_sentinel_supervisor::Supervisor;

/// The database the application works in.
const DB: u32 = 3;

/// The two keys the application wrote, read on `node` in database `db`.
fn keys(d: &Deployment, node: NodeId, db: u32) -> (Option<String>, Option<String>) {
    let mut c = d.connect(node).expect("a connection");
    redis::cmd("SELECT")
        .arg(db)
        .query::<()>(&mut c)
        .expect("SELECT");
    redis::pipe()
        .cmd("GET")
        .arg("db:before")
        .cmd("GET")
        .arg("db:after")
        .query(&mut c)
        .expect("GET")
}

/// Writes before and after a graceful failover go to database `DB` of the master in use.
pub fn a_database_other_than_0_is_kept_through_a_switch<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    let rt = R::new();
    let timeline = Timeline::default();
    let config = config_for(&d).db(DB).build().expect("valid config");
    let sup = start(&rt, Supervisor::<R::Rt>::builder(config), &timeline);
    let set = |key: &'static str| {
        let mut master = sup.master();
        rt.block_on(async move {
            redis::cmd("SET")
                .arg(key)
                .arg("1")
                .query_async::<()>(&mut master)
                .await
        })
    };
    set("db:before").expect("SET before the failover");
    let (_old, new) = d.failover_and_wait(WAIT).expect("failover");
    timeline.wait_count("the switch", 1, switched);
    wait_master::<R>(&sup, &d, new);
    set("db:after").expect("SET after the failover");
    let one = Some("1".to_owned());
    assert_eq!(keys(&d, new, DB), (one.clone(), one), "in database {DB}");
    assert_eq!(keys(&d, new, 0), (None, None), "in database 0");
    rt.block_on(sup.shutdown()).expect("clean shutdown");
}

/// A database the server does not have (Redis has 16 by default): the start fails, and says
/// which database was refused.
pub fn a_database_the_server_refuses_fails_the_start_clearly<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    let rt = R::new();
    let config = config_for(&d)
        .db(100)
        .startup_timeout(Some(std::time::Duration::from_secs(3)))
        .build()
        .expect("valid config");
    let e = try_start(
        &rt,
        Supervisor::<R::Rt>::builder(config),
        &Timeline::default(),
    )
    .expect_err("database 100 does not exist");
    let text = e.to_string();
    assert!(text.contains("refused to switch to database 100"), "{text}");
}
