//! This crate on its own (`cargo test -p dramatiq-sentinel-smol`: `redis` built with
//! `smol-comp` only) against real Redis: a master, a replica and one sentinel started here
//! (`redis-server` from `REDIS_SERVER` or `PATH`). The whole scenario suite runs on smol in
//! the workspace's `tests` package; this checks the shim alone, with both executor choices.

use dramatiq_sentinel_smol::redis::{self, AsyncCommands};
use dramatiq_sentinel_smol::{Addr, Builder, Config, Event, Smol, Supervisor};
use smol::Executor;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

/// A master, a replica and a sentinel (quorum 1) on loopback ports; killed on drop.
struct Deployment {
    dir: PathBuf,
    children: Vec<Child>,
    master: u16,
    replica: u16,
    sentinel: u16,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn sync_query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
    cmd.query(&mut conn)
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Deployment {
    fn start(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("dramatiq-smol-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut d = Self {
            dir,
            children: Vec::new(),
            master: free_port(),
            replica: free_port(),
            sentinel: free_port(),
        };
        d.spawn("master", d.master, "", false);
        let replica = format!("replicaof 127.0.0.1 {}\n", d.master);
        d.spawn("replica", d.replica, &replica, false);
        // Synced before the sentinel starts, so that its first `INFO` of the master lists it.
        wait_until("the replica to sync", || {
            let info: redis::RedisResult<String> =
                sync_query(d.replica, redis::cmd("INFO").arg("replication"));
            matches!(info, Ok(s) if s.contains("master_link_status:up"))
        });
        let sentinel = format!(
            "sentinel monitor svc 127.0.0.1 {} 1\nsentinel down-after-milliseconds svc 2000\n\
             sentinel failover-timeout svc 10000\n",
            d.master
        );
        d.spawn("sentinel", d.sentinel, &sentinel, true);
        wait_until("the sentinel to see the replica", || {
            let replicas: redis::RedisResult<Vec<redis::Value>> = sync_query(
                d.sentinel,
                redis::cmd("SENTINEL").arg("REPLICAS").arg("svc"),
            );
            matches!(replicas, Ok(r) if r.len() == 1)
        });
        d
    }

    fn spawn(&mut self, name: &str, port: u16, extra: &str, sentinel: bool) {
        let conf = self.dir.join(format!("{name}.conf"));
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nsave \"\"\nappendonly no\nrepl-diskless-sync-delay 0\n\
             proc-title-template \"{{title}} {{listen-addr}} {{server-mode}} {{config-file}}\"\n\
             logfile {}\n{extra}",
            self.dir.display(),
            self.dir.join(format!("{name}.log")).display()
        );
        std::fs::write(&conf, text).expect("config");
        let server = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut cmd = Command::new(&server);
        cmd.arg(&conf).stdout(Stdio::null()).stderr(Stdio::null());
        if sentinel {
            cmd.arg("--sentinel");
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {server} (set REDIS_SERVER): {e}"));
        self.children.push(child);
        wait_until(&format!("{name} to answer"), || {
            sync_query::<String>(port, &redis::cmd("PING")).is_ok()
        });
    }

    fn config(&self) -> Config {
        Config::builder()
            .sentinels([format!("127.0.0.1:{}", self.sentinel)])
            .service_name("svc")
            .min_backoff(Duration::from_millis(200))
            .startup_timeout(Some(Duration::from_secs(30)))
            .build()
            .expect("valid config")
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn addr(port: u16) -> Addr {
    Addr::new("127.0.0.1", port)
}

/// Commands through the master handle reach the current master.
async fn set_get(sup: &Supervisor, value: &str) {
    let mut conn = sup.master();
    let () = conn.set("key", value).await.expect("SET");
    let got: String = conn.get("key").await.expect("GET");
    assert_eq!(got, value);
}

/// On an executor of the application's: the supervisor's tasks (and so its hooks) run on that
/// executor's threads, and it follows a graceful failover.
#[test]
fn own_executor_follows_a_failover() {
    let d = Deployment::start("own");
    let executor = Arc::new(Executor::new());
    let (stop, stopped) = smol::channel::unbounded::<()>();
    let threads: Vec<_> = (0..2)
        .map(|i| {
            let executor = Arc::clone(&executor);
            let stopped = stopped.clone();
            std::thread::Builder::new()
                .name(format!("app-executor-{i}"))
                .spawn(move || {
                    let _closed = smol::block_on(executor.run(stopped.recv()));
                })
                .expect("thread")
        })
        .collect();
    let hook_threads = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&hook_threads);
    let builder = Builder::new(Smol::with_executor(executor), d.config()).on_event(move |_| {
        let name = std::thread::current().name().unwrap_or("?").to_owned();
        recorded.lock().expect("lock").push(name);
    });
    let mut events = builder.subscribe();
    let sup = smol::block_on(builder.start()).expect("started");
    assert_eq!(sup.current_master(), Some(addr(d.master)));
    smol::block_on(set_get(&sup, "before"));

    // `NOGOODSLAVE` until the sentinel has its own recent `INFO` of the replica: retry.
    wait_until("SENTINEL FAILOVER to be accepted", || {
        let failover = redis::cmd("SENTINEL").arg("FAILOVER").arg("svc").clone();
        sync_query::<()>(d.sentinel, &failover).is_ok()
    });
    let switched = smol::block_on(smol::future::or(
        async {
            while let Some(event) = events.recv().await {
                if let Event::SwitchCompleted { old: Some(_), .. } = event {
                    return true;
                }
            }
            false
        },
        async {
            smol::Timer::after(WAIT).await;
            false
        },
    ));
    assert!(switched, "no switch within {WAIT:?}");
    assert_eq!(sup.current_master(), Some(addr(d.replica)));
    smol::block_on(set_get(&sup, "after"));
    let on_new: String = sync_query(d.replica, redis::cmd("GET").arg("key")).expect("GET");
    assert_eq!(on_new, "after", "the write went to the new master");
    smol::block_on(sup.shutdown()).expect("clean shutdown");

    let names = hook_threads.lock().expect("lock").clone();
    assert!(!names.is_empty());
    assert!(
        names.iter().all(|n| n.starts_with("app-executor-")),
        "hooks ran on {names:?}"
    );
    drop(stop);
    for t in threads {
        t.join().expect("executor thread");
    }
}

/// `Supervisor::start` on smol's global executor, driven from a plain `smol::block_on`.
#[test]
fn global_executor_starts_and_shuts_down() {
    let d = Deployment::start("global");
    smol::block_on(async {
        let sup = Supervisor::start(d.config()).await.expect("started");
        assert_eq!(sup.current_master(), Some(addr(d.master)));
        set_get(&sup, "hello").await;
        let status = sup.status().await.expect("status");
        assert_eq!(status.master.addr, addr(d.master));
        assert_eq!(status.replicas.len(), 1, "{status:?}");
        let permit = sup.gate().enter().await.expect("open gate");
        assert_eq!(sup.gate().in_flight(), 1);
        drop(permit);
        sup.shutdown().await.expect("clean shutdown");
    });
}

/// TLS settings without a TLS feature of this crate: a clear error before any connection.
#[cfg(not(any(feature = "tls-rustls", feature = "tls-native-tls")))]
#[test]
fn tls_without_a_tls_feature_names_the_field() {
    let config = Config::builder()
        .sentinels(["127.0.0.1:1"])
        .tls(true)
        .build()
        .expect("valid");
    match smol::block_on(Supervisor::start(config)) {
        Err(dramatiq_sentinel_smol::StartError::InvalidConfig { field, problem }) => {
            assert_eq!(field, "tls");
            assert!(problem.contains("feature"), "{problem}");
        }
        other => panic!("expected InvalidConfig for `tls`, got {other:?}"),
    }
}
