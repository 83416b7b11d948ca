//! Writing `redis.conf` for data nodes and `sentinel.conf` for sentinels.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::client::Auth;
use super::nat::INSIDE_SOURCE;
use super::ports::LOOPBACK;
use super::tls::TlsFiles;

/// What data nodes and sentinels share: where they listen and how they are reached.
#[derive(Debug)]
pub(crate) struct Listen<'a> {
    /// The port it listens on (127.0.0.1).
    pub(crate) port: u16,
    /// Its working directory.
    pub(crate) dir: PathBuf,
    /// NAT mode: the address it announces instead of its own.
    pub(crate) announce: Option<SocketAddr>,
    /// TLS mode: its certificate.
    pub(crate) tls: Option<&'a TlsFiles>,
}

/// Settings of one data node's `redis.conf`.
#[derive(Debug)]
pub(crate) struct NodeConfig<'a> {
    /// Port, directory, NAT and TLS.
    pub(crate) listen: Listen<'a>,
    /// Credentials clients, replicas and sentinels must present.
    pub(crate) auth: &'a Auth,
    /// The (announced) address of its master, for replicas.
    pub(crate) replica_of: Option<SocketAddr>,
    /// `tcp-backlog`, when not Redis's default (511).
    pub(crate) tcp_backlog: Option<u32>,
}

/// One service (master name) the sentinels monitor.
#[derive(Debug)]
pub(crate) struct MonitoredService<'a> {
    /// The service (master) name.
    pub(crate) name: &'a str,
    /// The (announced) address of its master.
    pub(crate) master: SocketAddr,
    /// How many replicas it has.
    pub(crate) replicas: usize,
}

/// Settings of one sentinel's `sentinel.conf`.
#[derive(Debug)]
pub(crate) struct SentinelConfig<'a> {
    /// Port, directory, NAT and TLS.
    pub(crate) listen: Listen<'a>,
    /// Credentials clients and other sentinels must present to it.
    pub(crate) auth: &'a Auth,
    /// Credentials it presents to the data nodes.
    pub(crate) data_auth: &'a Auth,
    /// The services it monitors.
    pub(crate) services: &'a [MonitoredService<'a>],
    /// The quorum.
    pub(crate) quorum: usize,
    /// `down-after-milliseconds`.
    pub(crate) down_after: Duration,
    /// `failover-timeout`.
    pub(crate) failover_timeout: Duration,
    /// Its sentinel id (`sentinel myid`).
    pub(crate) id: &'a str,
    /// The other sentinels (`sentinel known-sentinel`).
    pub(crate) peers: &'a [Peer],
}

/// Another sentinel, as a sentinel's config names it.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    /// Its sentinel id.
    pub(crate) id: String,
    /// Its announced address.
    pub(crate) announced: SocketAddr,
}

/// Settings shared by data nodes and sentinels.
fn common(out: &mut String, listen: &Listen<'_>) {
    let _ = writeln!(
        out,
        "# written by dramatiq-sentinel-harness; Redis rewrites it"
    );
    let port = listen.port;
    match listen.tls {
        None => {
            let _ = writeln!(out, "port {port}");
        }
        Some(tls) => {
            // TLS only, for clients, replication and sentinel links alike.
            let _ = writeln!(out, "port 0\ntls-port {port}");
            let _ = writeln!(
                out,
                "tls-cert-file {}",
                quote(&tls.cert_file.to_string_lossy())
            );
            let _ = writeln!(
                out,
                "tls-key-file {}",
                quote(&tls.key_file.to_string_lossy())
            );
            let _ = writeln!(
                out,
                "tls-ca-cert-file {}",
                quote(&tls.ca_file.to_string_lossy())
            );
            let _ = writeln!(out, "tls-auth-clients yes\ntls-replication yes");
        }
    }
    let _ = writeln!(out, "bind {LOOPBACK}");
    let _ = writeln!(out, "dir {}", quote(&listen.dir.to_string_lossy()));
    let _ = writeln!(out, "protected-mode no");
    let _ = writeln!(out, "loglevel notice");
    // The config path in the process title lets `scripts/test.sh` find leftovers of its own run.
    let _ = writeln!(
        out,
        "proc-title-template \"{{title}} {{listen-addr}} {{server-mode}} {{config-file}}\""
    );
    if listen.announce.is_some() {
        // Outgoing connections (replication, sentinel links) come from this address, which the
        // NAT proxies let through; connections from anywhere else are reset.
        let _ = writeln!(out, "bind-source-addr {INSIDE_SOURCE}");
    }
}

/// The `redis.conf` of a data node.
pub(crate) fn node_config(config: &NodeConfig<'_>) -> String {
    let mut out = String::new();
    common(&mut out, &config.listen);
    out.push_str("save \"\"\nappendonly no\n");
    out.push_str("repl-diskless-sync yes\nrepl-diskless-sync-delay 0\n");
    // A production-sized replication backlog (Redis's default is 1 MiB): what a replica
    // promoted behind lacks can be read back from it (allocated as it fills, not up front).
    out.push_str("repl-backlog-size 64mb\n");
    if let Some(backlog) = config.tcp_backlog {
        let _ = writeln!(out, "tcp-backlog {backlog}");
    }
    match config.auth {
        Auth::None => {}
        Auth::Password(password) => {
            let _ = writeln!(out, "requirepass {}", quote(password));
            let _ = writeln!(out, "masterauth {}", quote(password));
        }
        Auth::User { username, password } => {
            out.push_str("user default off\n");
            let _ = writeln!(out, "{}", acl_user(username, password));
            let _ = writeln!(out, "masteruser {}", quote(username));
            let _ = writeln!(out, "masterauth {}", quote(password));
        }
    }
    if let Some(announce) = config.listen.announce {
        let _ = writeln!(out, "replica-announce-ip {}", announce.ip());
        let _ = writeln!(out, "replica-announce-port {}", announce.port());
    }
    if let Some(master) = config.replica_of {
        let _ = writeln!(out, "replicaof {} {}", master.ip(), master.port());
    }
    out
}

/// The `sentinel.conf` of a sentinel.
pub(crate) fn sentinel_config(config: &SentinelConfig<'_>) -> String {
    let mut out = String::new();
    common(&mut out, &config.listen);
    let _ = writeln!(out, "sentinel myid {}", config.id);
    if let Some(announce) = config.listen.announce {
        let _ = writeln!(out, "sentinel announce-ip {}", announce.ip());
        let _ = writeln!(out, "sentinel announce-port {}", announce.port());
    }
    match config.auth {
        Auth::None => {}
        // A sentinel uses its own requirepass to authenticate to the other sentinels.
        Auth::Password(password) => {
            let _ = writeln!(out, "requirepass {}", quote(password));
        }
        Auth::User { username, password } => {
            out.push_str("user default off\n");
            let _ = writeln!(out, "{}", acl_user(username, password));
            let _ = writeln!(out, "sentinel sentinel-user {}", quote(username));
            let _ = writeln!(out, "sentinel sentinel-pass {}", quote(password));
        }
    }
    for service in config.services {
        let name = service.name;
        let master = service.master;
        let _ = writeln!(
            out,
            "sentinel monitor {name} {} {} {}",
            master.ip(),
            master.port(),
            config.quorum
        );
        let _ = writeln!(
            out,
            "sentinel down-after-milliseconds {name} {}",
            config.down_after.as_millis()
        );
        let _ = writeln!(
            out,
            "sentinel failover-timeout {name} {}",
            config.failover_timeout.as_millis()
        );
        let _ = writeln!(
            out,
            "sentinel parallel-syncs {name} {}",
            service.replicas.max(1)
        );
        if let Some(username) = config.data_auth.username() {
            let _ = writeln!(out, "sentinel auth-user {name} {}", quote(username));
        }
        if let Some(password) = config.data_auth.password() {
            let _ = writeln!(out, "sentinel auth-pass {name} {}", quote(password));
        }
        for peer in config.peers {
            let addr = peer.announced;
            let _ = writeln!(
                out,
                "sentinel known-sentinel {name} {} {} {}",
                addr.ip(),
                addr.port(),
                peer.id
            );
        }
    }
    out
}

/// An ACL user with every permission.
fn acl_user(username: &str, password: &str) -> String {
    format!(
        "user {} on {} ~* &* +@all",
        quote(username),
        quote(&format!(">{password}"))
    )
}

/// A double-quoted config argument (Redis `sdssplitargs` syntax).
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quotes_config_arguments() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("a \"b\" \\ c"), "\"a \\\"b\\\" \\\\ c\"");
    }
}
