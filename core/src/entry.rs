//! One entry of a `SENTINEL MASTER`, `SENTINEL REPLICAS` or `SENTINEL SENTINELS` reply: the
//! node's announced address, its flags and every field as text. The core reads masters and
//! sentinels through it; the supervisor's status query shows it.

use crate::addr::Addr;
use crate::reply::Reply;
use std::collections::BTreeMap;

/// A data node or a sentinel as a sentinel describes it (announced, before any NAT map).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SentinelEntry {
    /// The `ip` and `port` fields.
    pub announced: Addr,
    /// The `flags` field split at commas (`master`, `slave`, `sentinel`, `s_down`, ...).
    pub flags: Vec<String>,
    /// Every field, as text (`role-reported`, `master-link-status`, `config-epoch`, ...).
    pub fields: BTreeMap<String, String>,
}

impl SentinelEntry {
    /// Reads an entry: a RESP3 map or a RESP2 flat `[key, value, ...]` array with at least
    /// `ip` and `port`. The error says what is missing or wrong.
    pub fn parse(reply: &Reply) -> Result<Self, String> {
        let pairs: Vec<(&Reply, &Reply)> = match reply {
            Reply::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
            Reply::Array(items) => items.chunks_exact(2).map(|kv| (&kv[0], &kv[1])).collect(),
            Reply::Error(e) => return Err(e.clone()),
            other => return Err(format!("not a sentinel entry: {other:?}")),
        };
        let fields: BTreeMap<String, String> = pairs
            .into_iter()
            .filter_map(|(k, v)| {
                let value = v.text().map(|t| t.into_owned()).unwrap_or_default();
                Some((k.text()?.into_owned(), value))
            })
            .collect();
        let field = |k: &str| fields.get(k).ok_or_else(|| format!("no `{k}` field"));
        let announced =
            Addr::from_tokens(field("ip")?, field("port")?).map_err(|e| e.to_string())?;
        let flags = fields
            .get("flags")
            .map(|f| {
                f.split(',')
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            announced,
            flags,
            fields,
        })
    }

    /// No `s_down`, `o_down` or `disconnected` flag.
    pub fn is_healthy(&self) -> bool {
        flags_healthy(&self.flags)
    }
}

/// Whether `flags` has none of `s_down`, `o_down`, `disconnected` (the one flag test of the
/// project: the core's verdict on a master and the status view's "healthy").
pub fn flags_healthy(flags: &[String]) -> bool {
    !flags
        .iter()
        .any(|f| matches!(f.as_str(), "s_down" | "o_down" | "disconnected"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(s: &str) -> Reply {
        Reply::Data(s.as_bytes().to_vec())
    }

    #[test]
    fn flat_and_map_entries_read_the_same() {
        let kv = [
            ("name", "127.0.0.1:7000"),
            ("ip", "127.0.0.1"),
            ("port", "7000"),
            ("flags", "master,s_down"),
        ];
        let flat = Reply::Array(kv.iter().flat_map(|(k, v)| [data(k), data(v)]).collect());
        let map = Reply::Map(kv.iter().map(|(k, v)| (data(k), data(v))).collect());
        let a = SentinelEntry::parse(&flat).expect("flat");
        assert_eq!(a, SentinelEntry::parse(&map).expect("map"));
        assert_eq!(a.announced, Addr::new("127.0.0.1", 7000));
        assert_eq!(a.flags, ["master", "s_down"]);
        assert_eq!(a.fields["name"], "127.0.0.1:7000");
        assert!(!a.is_healthy());
    }

    #[test]
    fn missing_or_bad_fields_are_named() {
        let no_port = Reply::Array(vec![data("ip"), data("10.0.0.1")]);
        assert_eq!(
            SentinelEntry::parse(&no_port),
            Err("no `port` field".into())
        );
        let bad = Reply::Array(vec![data("ip"), data("h"), data("port"), data("x")]);
        assert!(SentinelEntry::parse(&bad).is_err());
        assert!(SentinelEntry::parse(&Reply::Int(1)).is_err());
        assert!(flags_healthy(&["master".to_owned()]));
        assert!(!flags_healthy(&[
            "slave".to_owned(),
            "disconnected".to_owned()
        ]));
    }
}
