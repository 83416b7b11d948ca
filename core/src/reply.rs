//! The raw reply shape the runtime shims fill mechanically from their Redis client's values.

use std::borrow::Cow;

/// A Redis reply, as received, before the core interprets it.
///
/// Shims convert their client's value type into this without any judgement: bulk strings to
/// [`Reply::Data`], simple strings to [`Reply::Status`], server errors to [`Reply::Error`],
/// arrays, sets and pushes to [`Reply::Array`], RESP3 maps to [`Reply::Map`], anything else
/// (doubles, booleans, big numbers) to [`Reply::Data`] holding its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A nil / null reply.
    Nil,
    /// An integer reply.
    Int(i64),
    /// A bulk string (or any other scalar as text).
    Data(Vec<u8>),
    /// A simple string, such as `OK`.
    Status(String),
    /// An error reply from the server, such as `ERR No such master with that name`.
    Error(String),
    /// An array (RESP2 array, RESP3 array, set or push).
    Array(Vec<Reply>),
    /// A RESP3 map, as ordered key/value pairs.
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    /// The text of a string-like reply (bulk string, simple string, integer), if it is valid
    /// UTF-8.
    pub fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Reply::Data(bytes) => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
            Reply::Status(s) => Some(Cow::Borrowed(s)),
            Reply::Int(i) => Some(Cow::Owned(i.to_string())),
            _ => None,
        }
    }

    /// Looks up `key` in a RESP3 map or a RESP2 flat `[key, value, key, value, ..]` array, as
    /// `SENTINEL MASTER`, `SENTINEL REPLICAS` and `SENTINEL SENTINELS` entries are shaped.
    pub fn field(&self, key: &str) -> Option<&Reply> {
        match self {
            Reply::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.text().as_deref() == Some(key))
                .map(|(_, v)| v),
            Reply::Array(items) => items
                .chunks_exact(2)
                .find(|kv| kv[0].text().as_deref() == Some(key))
                .map(|kv| &kv[1]),
            _ => None,
        }
    }
}
