//! Network addresses as sentinels report them, and the NAT map that makes them reachable.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A `host:port` address of a data node or a sentinel, exactly as written (no DNS lookup).
///
/// Two addresses are equal when host and port are equal as text: `localhost:6379` and
/// `127.0.0.1:6379` are different addresses, as they are for Redis Sentinel itself.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addr {
    host: String,
    port: u16,
}

impl Addr {
    /// An address from a host (name, IPv4 or IPv6 literal without brackets) and a port.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }

    /// The addresses as `host:port, host:port`, for messages.
    pub fn join(addrs: &[Addr]) -> String {
        addrs
            .iter()
            .map(Addr::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// What failed at each address as `host:port: why; host:port: why`, for messages.
    pub fn join_failures(failures: &[(Addr, String)]) -> String {
        failures
            .iter()
            .map(|(a, e)| format!("{a}: {e}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The host part, without brackets for IPv6.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Builds an address from the `ip` and `port` tokens of a sentinel reply or message.
    pub(crate) fn from_tokens(host: &str, port: &str) -> Result<Self, AddrError> {
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(AddrError::BadHost(host.to_owned()));
        }
        let port = parse_port(port)?;
        Ok(Self::new(host, port))
    }
}

fn parse_port(port: &str) -> Result<u16, AddrError> {
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(AddrError::BadPort(port.to_owned())),
        Ok(p) => Ok(p),
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a text is not a `host:port` address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    /// The text has no `:port` suffix.
    #[error("`{0}` is not `host:port`")]
    MissingPort(String),
    /// The host is empty or contains whitespace or control characters.
    #[error("invalid host `{0}`")]
    BadHost(String),
    /// The port is not a number from 1 to 65535.
    #[error("invalid port `{0}` (expected 1..=65535)")]
    BadPort(String),
}

impl FromStr for Addr {
    type Err = AddrError;

    /// Parses `host:port`, `ipv4:port` or `[ipv6]:port`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix('[') {
            let (host, port) = rest
                .split_once("]:")
                .ok_or_else(|| AddrError::MissingPort(s.to_owned()))?;
            return Addr::from_tokens(host, port);
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| AddrError::MissingPort(s.to_owned()))?;
        if host.contains(':') {
            // An unbracketed IPv6 literal is ambiguous.
            return Err(AddrError::BadHost(host.to_owned()));
        }
        Addr::from_tokens(host, port)
    }
}

/// Maps addresses that sentinels announce to addresses this process can reach.
///
/// Applied to every address a sentinel reports (masters, candidates, other sentinels). An
/// address without an entry is used as announced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatMap {
    map: BTreeMap<Addr, Addr>,
}

impl NatMap {
    /// An empty map: every address is used as announced.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule: `announced` is reached at `reachable`. Returns the rule it replaced.
    pub fn insert(&mut self, announced: Addr, reachable: Addr) -> Option<Addr> {
        self.map.insert(announced, reachable)
    }

    /// The reachable address for an announced one.
    pub fn map(&self, announced: &Addr) -> Addr {
        self.map
            .get(announced)
            .cloned()
            .unwrap_or_else(|| announced.clone())
    }

    /// Whether the map has no rules.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The rules, ordered by announced address.
    pub fn iter(&self) -> impl Iterator<Item = (&Addr, &Addr)> {
        self.map.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, host, port) in [
            ("127.0.0.1:6379", "127.0.0.1", 6379),
            ("localhost:1", "localhost", 1),
            ("[::1]:26379", "::1", 26379),
        ] {
            let a: Addr = text.parse().expect("valid");
            assert_eq!((a.host(), a.port()), (host, port));
            assert_eq!(a.to_string(), text);
        }
    }

    #[test]
    fn rejects_bad_addresses() {
        for text in [
            "",
            "host",
            ":6379",
            "h:0",
            "h:70000",
            "h:x",
            "::1:6379",
            "[::1]6379",
            "a b:1",
        ] {
            assert!(text.parse::<Addr>().is_err(), "{text:?} should be rejected");
        }
    }

    #[test]
    fn nat_maps_known_and_passes_unknown() {
        let mut nat = NatMap::new();
        let a = Addr::new("10.0.0.1", 6379);
        let b = Addr::new("127.0.0.1", 7000);
        nat.insert(a.clone(), b.clone());
        assert_eq!(nat.map(&a), b);
        assert_eq!(nat.map(&b), b);
    }
}
