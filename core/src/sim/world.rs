//! The simulated deployment: data nodes with roles, sentinels with their view of the master,
//! and the scripts of failovers as Redis 7.0 plays them (timings measured on real Redis).

use crate::addr::Addr;
use crate::rng::Rng;
use std::time::{Duration, Instant};

/// Whether a simulated process answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    Up,
    /// Killed: connections are refused.
    Down,
    /// Stopped (SIGSTOP) or partitioned half-open: connections hang, nothing is answered.
    Hung,
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) announced: Addr,
    pub(crate) reachable: Addr,
    pub(crate) master: bool,
    pub(crate) health: Health,
    /// Another node was promoted while this one still says master: writes it accepts are lost.
    pub(crate) deposed_by: Option<usize>,
    /// Since when it has not answered (killed or frozen).
    pub(crate) down_since: Option<Instant>,
    /// The configuration epoch of its last promotion (0 for the first master).
    pub(crate) config_epoch: u64,
    /// Its replication offset: a master's grows with each write it acknowledges, a replica
    /// that is up holds the true master's (replication is instant; a replica down or frozen
    /// during writes lags, and is promoted behind).
    pub(crate) offset: u64,
    /// The node a replica replicates from (what its `ROLE` names): the master of the last
    /// reconfiguration it saw.
    pub(crate) following: usize,
    /// The highest offset it ever had (a full resync moves `offset` back).
    pub(crate) peak_offset: u64,
    /// Its replication ID (a replica's is its master's), the one it had before its last
    /// promotion, and the first byte of that history it lacks (`second_repl_offset`).
    pub(crate) replid: u64,
    pub(crate) replid2: Option<u64>,
    pub(crate) second_offset: u64,
    /// Until when its writes wait (`CLIENT PAUSE ... WRITE` of the core's).
    pub(crate) writes_paused_until: Option<Instant>,
}

#[derive(Debug, Clone)]
pub(crate) struct Sentinel {
    pub(crate) announced: Addr,
    pub(crate) reachable: Addr,
    pub(crate) health: Health,
    /// The node it names as master, and the configuration epoch of that view.
    pub(crate) view: usize,
    pub(crate) view_epoch: u64,
    /// Its current epoch: it only grows, and each growth is announced (`+new-epoch`).
    pub(crate) current_epoch: u64,
    /// The process under test can reach it (false: cut off from it, as by a partition between
    /// the client and this sentinel only; the sentinel itself goes on, and may lead a failover).
    pub(crate) heard: bool,
}

/// A failover the world is playing.
#[derive(Debug, Clone)]
pub(crate) struct Failover {
    pub(crate) old: usize,
    pub(crate) candidate: usize,
    pub(crate) promoted_at: Option<Instant>,
    /// When the core first received a signal of this failover while using the old master.
    pub(crate) signal_seen_at: Option<Instant>,
    /// Every sentinel adopted the new master.
    pub(crate) done: bool,
    /// The epoch of this failover attempt (the promoted configuration's `config-epoch`).
    pub(crate) epoch: u64,
    /// The candidate's replication offset when it was promoted.
    pub(crate) promoted_offset: u64,
    /// The sentinel that leads it.
    pub(crate) leader: usize,
}

/// Something the world does at a scheduled time.
#[derive(Debug, Clone)]
pub(crate) enum Script {
    /// A sentinel publishes a message to its subscribers.
    Publish {
        sentinel: usize,
        channel: String,
        payload: String,
        /// The failover this message announces, if any.
        f: Option<usize>,
    },
    /// The candidate of failover `f` becomes master (it answers `ROLE` master).
    Promote { f: usize },
    /// Sentinel `s` adopts the new master of failover `f` and publishes `+switch-master`.
    Adopt { f: usize, s: usize },
    /// The node becomes a replica (sentinels reconfigured it).
    Demote { node: usize },
    /// The leader of failover `f` re-points the other replicas to its candidate (Sentinel's
    /// `SLAVEOF`, which closes their client connections).
    Repoint { f: usize },
    /// Sentinel `sentinel` reaches a new epoch and announces it (`+new-epoch`): with
    /// `attempt`, it starts a failover attempt (of `f`, or of another kind) with the next
    /// epoch of the world; otherwise it learns the epoch of failover `f`. A sentinel's epoch
    /// never goes back, so nothing is announced when it is already there.
    Epoch {
        sentinel: usize,
        f: Option<usize>,
        attempt: bool,
    },
    /// A frozen node resumes.
    Thaw { node: usize },
}

#[derive(Debug, Clone)]
pub(crate) struct World {
    pub(crate) service: String,
    pub(crate) nodes: Vec<Node>,
    pub(crate) sentinels: Vec<Sentinel>,
    pub(crate) failovers: Vec<Failover>,
    pub(crate) down_after: Duration,
    /// After an aborted attempt, Sentinel waits (2 × failover-timeout) before trying again.
    pub(crate) retry_after: Option<Instant>,
    /// The highest epoch any sentinel reached (each failover attempt takes the next one, when
    /// it starts).
    pub(crate) epoch: u64,
}

impl World {
    pub(crate) fn new(nodes: usize, sentinels: usize, nat: bool, down_after: Duration) -> Self {
        let addr = |announced_host: &str, port: u16| {
            let reachable = Addr::new("127.0.0.1", port);
            let announced = if nat {
                Addr::new(announced_host, 6379)
            } else {
                reachable.clone()
            };
            (announced, reachable)
        };
        World {
            service: "svc".to_owned(),
            nodes: (0..nodes)
                .map(|i| {
                    let (announced, reachable) =
                        addr(&format!("10.0.0.{}", i + 1), 7000 + i as u16);
                    Node {
                        announced,
                        reachable,
                        master: i == 0,
                        health: Health::Up,
                        deposed_by: None,
                        down_since: None,
                        config_epoch: 0,
                        offset: 0,
                        following: 0,
                        peak_offset: 0,
                        replid: 1,
                        replid2: None,
                        second_offset: 0,
                        writes_paused_until: None,
                    }
                })
                .collect(),
            sentinels: (0..sentinels)
                .map(|i| {
                    let (announced, reachable) =
                        addr(&format!("10.0.1.{}", i + 1), 26379 + i as u16);
                    Sentinel {
                        announced,
                        reachable,
                        health: Health::Up,
                        view: 0,
                        view_epoch: 0,
                        current_epoch: 0,
                        heard: true,
                    }
                })
                .collect(),
            failovers: Vec::new(),
            down_after,
            retry_after: None,
            epoch: 0,
        }
    }

    /// The master sentinels agree on once every failover finished.
    pub(crate) fn true_master(&self) -> usize {
        self.failovers.last().map_or(0, |f| f.candidate)
    }

    pub(crate) fn busy(&self, now: Instant) -> bool {
        self.failovers.last().is_some_and(|f| !f.done) || self.retry_after.is_some_and(|t| now < t)
    }

    pub(crate) fn node_at(&self, reachable: &Addr) -> Option<usize> {
        self.nodes.iter().position(|n| n.reachable == *reachable)
    }

    pub(crate) fn sentinel_at(&self, reachable: &Addr) -> Option<usize> {
        self.sentinels
            .iter()
            .position(|s| s.reachable == *reachable)
    }

    /// A sentinel that is up, chosen at random.
    pub(crate) fn random_up_sentinel(&self, rng: &mut Rng) -> Option<usize> {
        self.up_sentinel(rng)
    }

    /// `channel` events about the replicas of the true master (only `only`, if given), as a
    /// sentinel publishes them: `slave <ip>:<port> <ip> <port> @ <name> <ip> <port>`.
    pub(crate) fn replica_events(
        &self,
        channel: &str,
        only: Option<usize>,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let master = self.true_master();
        (0..self.nodes.len())
            .filter(|&n| n != master && only.is_none_or(|o| o == n))
            .map(|n| {
                let payload = self.replica_payload(n, master);
                (channel.as_bytes().to_vec(), payload.into_bytes())
            })
            .collect()
    }

    fn up_sentinel(&self, rng: &mut Rng) -> Option<usize> {
        let up: Vec<usize> = (0..self.sentinels.len())
            .filter(|&s| self.sentinels[s].health == Health::Up)
            .collect();
        (!up.is_empty()).then(|| up[rng.below(up.len() as u64) as usize])
    }

    fn master_payload(&self, node: usize) -> String {
        let a = &self.nodes[node].announced;
        format!("master {} {} {}", self.service, a.host(), a.port())
    }

    fn replica_payload(&self, node: usize, master: usize) -> String {
        let (r, m) = (&self.nodes[node].announced, &self.nodes[master].announced);
        format!(
            "slave {}:{} {} {} @ {} {} {}",
            r.host(),
            r.port(),
            r.host(),
            r.port(),
            self.service,
            m.host(),
            m.port()
        )
    }

    /// Starts a failover of the current master, promoting a healthy replica. `detect` is the
    /// delay before sentinels agree the master is down (zero for `SENTINEL FAILOVER`); the
    /// `leader` sentinel leads it (when it is up), else a random one.
    /// Returns the script, or nothing when a failover is already running or impossible.
    pub(crate) fn failover(
        &mut self,
        detect: Duration,
        leader: Option<usize>,
        now: Instant,
        rng: &mut Rng,
    ) -> Vec<(Duration, Script)> {
        if self.busy(now) {
            return Vec::new();
        }
        let old = self.true_master();
        let replicas: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| n != old && !self.nodes[n].master && self.nodes[n].health == Health::Up)
            .collect();
        let leader = match leader {
            Some(l)
                if self
                    .sentinels
                    .get(l)
                    .is_some_and(|s| s.health == Health::Up) =>
            {
                Some(l)
            }
            Some(_) => None,
            None => self.up_sentinel(rng),
        };
        let Some(leader) = leader else {
            return Vec::new();
        };
        if replicas.is_empty() {
            return Vec::new();
        }
        let candidate = replicas[rng.below(replicas.len() as u64) as usize];
        let f = self.failovers.len();
        self.failovers.push(Failover {
            old,
            candidate,
            promoted_at: None,
            signal_seen_at: None,
            done: false,
            epoch: 0, // taken when the attempt starts
            promoted_offset: 0,
            leader,
        });
        let ms = Duration::from_millis;
        let pub_ = |s: usize, ch: &str, payload: String| Script::Publish {
            sentinel: s,
            channel: ch.to_owned(),
            payload,
            f: Some(f),
        };
        let m = self.master_payload(old);
        let c = self.replica_payload(candidate, old);
        let mut script = Vec::new();
        if !detect.is_zero() {
            for s in 0..self.sentinels.len() {
                let at = detect + rng.between(ms(0), ms(100));
                script.push((at, pub_(s, "+sdown", m.clone())));
                script.push((at + ms(5), pub_(s, "+odown", format!("{m} #quorum 2/2"))));
            }
        }
        // After an automatic detection the leader starts about 110 ms after `+odown`.
        let t = if detect.is_zero() {
            detect
        } else {
            detect + ms(110)
        };
        // Each sentinel announces the new epoch on its connections before any message of
        // the attempt: the leader when it starts it, the others when they learn the new
        // configuration (just before their `+switch-master`).
        script.extend([
            (
                t + ms(19),
                Script::Epoch {
                    sentinel: leader,
                    f: Some(f),
                    attempt: true,
                },
            ),
            (t + ms(20), pub_(leader, "+try-failover", m.clone())),
            (t + ms(41), pub_(leader, "+elected-leader", m.clone())),
            (
                t + ms(44),
                pub_(leader, "+failover-state-select-slave", m.clone()),
            ),
            (t + ms(123), pub_(leader, "+selected-slave", c.clone())),
            (
                t + ms(126),
                pub_(leader, "+failover-state-send-slaveof-noone", c.clone()),
            ),
            (t + rng.between(ms(150), ms(250)), Script::Promote { f }),
            (t + ms(1100), pub_(leader, "+promoted-slave", c.clone())),
            (t + ms(1101), Script::Adopt { f, s: leader }),
            (t + rng.between(ms(1102), ms(1300)), Script::Repoint { f }),
        ]);
        for s in (0..self.sentinels.len()).filter(|&s| s != leader) {
            let at = t + rng.between(ms(1100), ms(2200));
            let learn = Script::Epoch {
                sentinel: s,
                f: Some(f),
                attempt: false,
            };
            script.push((at, learn));
            script.push((at, Script::Adopt { f, s }));
        }
        // The old master, if it still runs, is reconfigured as a replica about 11 s later.
        script.push((
            t + rng.between(ms(10_000), ms(12_000)),
            Script::Demote { node: old },
        ));
        script
    }

    /// A failover attempt that the leader aborts: no promotion.
    pub(crate) fn aborted_failover(
        &mut self,
        now: Instant,
        rng: &mut Rng,
    ) -> Vec<(Duration, Script)> {
        let Some(leader) = self.up_sentinel(rng) else {
            return Vec::new();
        };
        if self.busy(now) {
            return Vec::new();
        }
        self.retry_after = Some(now + Duration::from_secs(3));
        let m = self.master_payload(self.true_master());
        let ms = Duration::from_millis;
        let p = |ch: &str, payload: String| Script::Publish {
            sentinel: leader,
            channel: ch.to_owned(),
            payload,
            f: None,
        };
        let attempt = Script::Epoch {
            sentinel: leader,
            f: None,
            attempt: true,
        };
        vec![
            (ms(19), attempt),
            (ms(20), p("+try-failover", m.clone())),
            (ms(41), p("+elected-leader", m.clone())),
            (ms(44), p("+failover-state-select-slave", m.clone())),
            (ms(60), p("-failover-abort-no-good-slave", m)),
        ]
    }

    /// The same story for a service this process does not use (its attempt takes the next
    /// epoch too: epochs belong to the sentinels, not to a service).
    pub(crate) fn other_service_failover(&self, rng: &mut Rng) -> Vec<(Duration, Script)> {
        let Some(s) = self.up_sentinel(rng) else {
            return Vec::new();
        };
        let ms = Duration::from_millis;
        let p = |ch: &str, payload: &str| Script::Publish {
            sentinel: s,
            channel: ch.to_owned(),
            payload: payload.to_owned(),
            f: None,
        };
        let attempt = Script::Epoch {
            sentinel: s,
            f: None,
            attempt: true,
        };
        vec![
            (ms(19), attempt),
            (ms(20), p("+try-failover", "master other 10.9.9.9 6379")),
            (
                ms(123),
                p(
                    "+selected-slave",
                    "slave 10.9.9.8:6379 10.9.9.8 6379 @ other 10.9.9.9 6379",
                ),
            ),
            (
                ms(1100),
                p("+switch-master", "other 10.9.9.9 6379 10.9.9.8 6379"),
            ),
        ]
    }

    /// The replicas the leader of failover `f` re-points to its candidate: the others that are
    /// up and still follow another node (the old master is reconfigured later, by `Demote`).
    pub(crate) fn repointed(&self, f: usize) -> Vec<usize> {
        let (old, candidate) = (self.failovers[f].old, self.failovers[f].candidate);
        (0..self.nodes.len())
            .filter(|&n| n != old && n != candidate)
            .filter(|&n| !self.nodes[n].master && self.nodes[n].health == Health::Up)
            .filter(|&n| self.nodes[n].following != candidate)
            .collect()
    }

    /// Applies a scripted step; returns a `+switch-master` publication for `Adopt`.
    pub(crate) fn apply(&mut self, step: &Script, now: Instant) -> Option<(usize, String, String)> {
        match *step {
            Script::Publish { .. } => None,
            Script::Epoch {
                sentinel,
                f,
                attempt,
            } => {
                let epoch = if attempt {
                    self.epoch += 1;
                    if let Some(f) = f {
                        self.failovers[f].epoch = self.epoch;
                    }
                    self.epoch
                } else {
                    f.map_or(0, |f| self.failovers[f].epoch)
                };
                let current = &mut self.sentinels[sentinel].current_epoch;
                if *current >= epoch {
                    return None;
                }
                *current = epoch;
                Some((sentinel, "+new-epoch".to_owned(), epoch.to_string()))
            }
            Script::Promote { f } => {
                let (old, candidate) = (self.failovers[f].old, self.failovers[f].candidate);
                self.failovers[f].promoted_at = Some(now);
                self.nodes[candidate].master = true;
                self.nodes[candidate].config_epoch = self.failovers[f].epoch;
                self.failovers[f].promoted_offset = self.nodes[candidate].offset;
                // A new history begins: the old one is kept as the second.
                let c = &mut self.nodes[candidate];
                c.replid2 = Some(c.replid);
                c.second_offset = c.offset + 1;
                c.replid = 1000 + f as u64;
                self.nodes[candidate].deposed_by = None;
                if self.nodes[old].master {
                    self.nodes[old].deposed_by = Some(candidate);
                }
                None
            }
            Script::Adopt { f, s } => {
                let (old, candidate) = (self.failovers[f].old, self.failovers[f].candidate);
                self.sentinels[s].view = candidate;
                self.sentinels[s].view_epoch = self.failovers[f].epoch;
                if self.sentinels.iter().all(|x| x.view == candidate) {
                    self.failovers[f].done = true;
                }
                let (o, n) = (&self.nodes[old].announced, &self.nodes[candidate].announced);
                let payload = format!(
                    "{} {} {} {} {}",
                    self.service,
                    o.host(),
                    o.port(),
                    n.host(),
                    n.port()
                );
                Some((s, "+switch-master".to_owned(), payload))
            }
            Script::Demote { node } => {
                let truth = self.true_master();
                if node != truth && self.nodes[node].health == Health::Up {
                    // It syncs with its new master (a full resync: its own writes are gone).
                    self.nodes[node].master = false;
                    self.nodes[node].deposed_by = None;
                    self.nodes[node].following = truth;
                    self.nodes[node].peak_offset =
                        self.nodes[node].peak_offset.max(self.nodes[node].offset);
                    self.nodes[node].offset = self.nodes[truth].offset;
                    self.nodes[node].replid = self.nodes[truth].replid;
                    self.nodes[node].replid2 = None;
                }
                None
            }
            Script::Repoint { f } => {
                let candidate = self.failovers[f].candidate;
                for n in self.repointed(f) {
                    self.nodes[n].following = candidate;
                }
                None
            }
            Script::Thaw { node } => {
                if self.nodes[node].health == Health::Hung {
                    self.nodes[node].health = Health::Up;
                    self.nodes[node].down_since = None;
                }
                None
            }
        }
    }
}

fn data(s: &str) -> crate::reply::Reply {
    crate::reply::Reply::Data(s.as_bytes().to_vec())
}

/// Replies as a real Redis 7.0 would give them.
impl World {
    /// `SENTINEL MASTER <name>` on sentinel `s`.
    pub(crate) fn master_reply(
        &self,
        s: usize,
        service: &str,
        now: Instant,
    ) -> crate::reply::Reply {
        use crate::reply::Reply;
        if service != self.service {
            return Reply::Error("ERR No such master with that name".into());
        }
        let node = &self.nodes[self.sentinels[s].view];
        let down = node
            .down_since
            .is_some_and(|t| now.saturating_duration_since(t) >= self.down_after);
        // The leader of a failover flags it until it adopts the new configuration.
        let leading = self
            .failovers
            .iter()
            .any(|f| !f.done && f.leader == s && self.sentinels[s].view == f.old);
        let flags = match (down, leading) {
            (true, true) => "master,s_down,o_down,failover_in_progress",
            (true, false) => "master,s_down,o_down",
            (false, true) => "master,failover_in_progress",
            (false, false) => "master",
        };
        Reply::Array(vec![
            data("name"),
            data(&self.service),
            data("ip"),
            data(node.announced.host()),
            data("port"),
            data(&node.announced.port().to_string()),
            data("flags"),
            data(flags),
            data("config-epoch"),
            data(&self.sentinels[s].view_epoch.to_string()),
        ])
    }

    /// `SENTINEL SENTINELS <name>` on sentinel `s`: the others, as announced.
    pub(crate) fn sentinels_reply(&self, s: usize) -> crate::reply::Reply {
        use crate::reply::Reply;
        Reply::Array(
            (0..self.sentinels.len())
                .filter(|&o| o != s)
                .map(|o| {
                    let a = &self.sentinels[o].announced;
                    Reply::Array(vec![
                        data("ip"),
                        data(a.host()),
                        data("port"),
                        data(&a.port().to_string()),
                    ])
                })
                .collect(),
        )
    }

    /// `SENTINEL REPLICAS <name>` on sentinel `s`: every node but the master it names, as
    /// announced, flagged down when it has not answered for `down_after`.
    pub(crate) fn replicas_reply(&self, s: usize, now: Instant) -> crate::reply::Reply {
        use crate::reply::Reply;
        let master = self.sentinels[s].view;
        Reply::Array(
            (0..self.nodes.len())
                .filter(|&n| n != master)
                .map(|n| {
                    let node = &self.nodes[n];
                    let down = node
                        .down_since
                        .is_some_and(|t| now.saturating_duration_since(t) >= self.down_after);
                    let a = &node.announced;
                    Reply::Array(vec![
                        data("ip"),
                        data(a.host()),
                        data("port"),
                        data(&a.port().to_string()),
                        data("flags"),
                        data(if down { "slave,s_down" } else { "slave" }),
                    ])
                })
                .collect(),
        )
    }

    /// `INFO replication` of node `n`, the fields the core reads.
    pub(crate) fn replication_reply(&self, n: usize) -> crate::reply::Reply {
        let node = &self.nodes[n];
        let (replid2, second) = match node.replid2 {
            Some(r) => (replid(r), i64::try_from(node.second_offset).unwrap_or(-1)),
            None => ("0".repeat(40), -1),
        };
        let text = format!(
            "# Replication\r\nrole:{}\r\nmaster_replid:{}\r\nmaster_replid2:{replid2}\r\n\
             master_repl_offset:{}\r\nsecond_repl_offset:{second}\r\n",
            if node.master { "master" } else { "slave" },
            replid(node.replid),
            node.offset,
        );
        crate::reply::Reply::Data(text.into_bytes())
    }

    /// What `PSYNC <replid> <from>` on node `n` streams, `bytes` of it: the writes of that
    /// history from `from` on (one command `SET w <offset>` per offset), if the node is a
    /// master of that history and holds them.
    pub(crate) fn backlog(&self, n: usize, id: &str, from: u64, bytes: u64) -> Option<Vec<u8>> {
        let node = &self.nodes[n];
        let to = from.checked_add(bytes)?.checked_sub(1)?;
        (node.master && replid(node.replid) == id && from >= 1 && to <= node.offset).then(|| {
            (from..=to)
                .flat_map(|k| crate::lost::encode(&[b"SET", b"w", k.to_string().as_bytes()]))
                .collect()
        })
    }

    /// `ROLE` of node `n`.
    pub(crate) fn role_reply(&self, n: usize) -> crate::reply::Reply {
        use crate::reply::Reply;
        let offset = i64::try_from(self.nodes[n].offset).unwrap_or(i64::MAX);
        if self.nodes[n].master {
            Reply::Array(vec![
                data("master"),
                Reply::Int(offset),
                Reply::Array(vec![]),
            ])
        } else {
            let m = &self.nodes[self.nodes[n].following].announced;
            Reply::Array(vec![
                data("slave"),
                data(m.host()),
                Reply::Int(i64::from(m.port())),
                data("connected"),
                Reply::Int(offset),
            ])
        }
    }
}

/// A replication ID as Redis shows it (40 hex digits).
pub(crate) fn replid(id: u64) -> String {
    format!("{id:040x}")
}
