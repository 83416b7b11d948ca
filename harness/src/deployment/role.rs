//! The `ROLE` reply of a process, parsed.

use std::net::SocketAddr;

use redis::Value;

/// What a process says it is (`ROLE`). Addresses are as Redis reports them, i.e. announced
/// addresses in NAT mode.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// A master.
    Master {
        /// The replicas connected to it.
        replicas: Vec<SocketAddr>,
    },
    /// A replica.
    Replica {
        /// The master it replicates from.
        master: SocketAddr,
        /// The link state: `connect`, `connecting`, `sync` or `connected`.
        state: String,
    },
    /// A sentinel.
    Sentinel {
        /// The services it monitors.
        masters: Vec<String>,
    },
}

impl Role {
    /// True for a master.
    pub fn is_master(&self) -> bool {
        matches!(self, Self::Master { .. })
    }

    /// True for a replica whose link to `master` is up.
    pub fn is_linked_replica_of(&self, master: SocketAddr) -> bool {
        matches!(self, Self::Replica { master: m, state } if *m == master && state == "connected")
    }

    /// Parses a `ROLE` reply.
    pub(crate) fn parse(value: &Value) -> Result<Self, String> {
        let Value::Array(items) = value else {
            return Err(format!("not an array: {value:?}"));
        };
        let kind = items.first().and_then(text);
        match kind.as_deref() {
            Some("master") => {
                let replicas = match items.get(2) {
                    Some(Value::Array(entries)) => entries
                        .iter()
                        .map(|entry| match entry {
                            Value::Array(fields) => addr(fields.first(), fields.get(1)),
                            other => Err(format!("bad replica entry {other:?}")),
                        })
                        .collect::<Result<_, _>>()?,
                    other => return Err(format!("bad replica list {other:?}")),
                };
                Ok(Self::Master { replicas })
            }
            Some("slave") => Ok(Self::Replica {
                master: addr(items.get(1), items.get(2))?,
                state: items
                    .get(3)
                    .and_then(text)
                    .ok_or_else(|| format!("no link state in {items:?}"))?,
            }),
            Some("sentinel") => {
                let masters = match items.get(1) {
                    Some(Value::Array(names)) => names.iter().filter_map(text).collect(),
                    other => return Err(format!("bad master list {other:?}")),
                };
                Ok(Self::Sentinel { masters })
            }
            _ => Err(format!("unknown role in {items:?}")),
        }
    }
}

/// A bulk, simple or integer value as text.
pub(crate) fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// An `ip`, `port` pair as an address.
pub(crate) fn addr(ip: Option<&Value>, port: Option<&Value>) -> Result<SocketAddr, String> {
    let (Some(ip), Some(port)) = (ip.and_then(text), port.and_then(text)) else {
        return Err(format!("missing ip or port: {ip:?} {port:?}"));
    };
    let ip = ip.parse().map_err(|_| format!("not an IP address: {ip}"))?;
    let port = port.parse().map_err(|_| format!("not a port: {port}"))?;
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_roles() {
        let master = Value::Array(vec![
            bulk("master"),
            Value::Int(42),
            Value::Array(vec![Value::Array(vec![
                bulk("127.0.0.1"),
                bulk("7001"),
                bulk("42"),
            ])]),
        ]);
        assert_eq!(
            Role::parse(&master),
            Ok(Role::Master {
                replicas: vec![SocketAddr::from(([127, 0, 0, 1], 7001))]
            })
        );
        let replica = Value::Array(vec![
            bulk("slave"),
            bulk("127.0.0.1"),
            Value::Int(7000),
            bulk("connected"),
            Value::Int(42),
        ]);
        let role = Role::parse(&replica);
        assert!(
            matches!(&role, Ok(r) if r.is_linked_replica_of(SocketAddr::from(([127, 0, 0, 1], 7000))))
        );
        let sentinel = Value::Array(vec![bulk("sentinel"), Value::Array(vec![bulk("mymaster")])]);
        assert_eq!(
            Role::parse(&sentinel),
            Ok(Role::Sentinel {
                masters: vec!["mymaster".to_owned()]
            })
        );
        assert!(Role::parse(&Value::Nil).is_err());
    }
}
