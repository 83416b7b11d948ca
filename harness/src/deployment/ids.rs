//! Identifiers of the processes of a deployment.

use std::fmt;

/// A data node (master or replica) of a [`Deployment`](super::Deployment).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub(crate) usize);

/// A sentinel of a [`Deployment`](super::Deployment).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SentinelId(pub(crate) usize);

/// Any process of a deployment: what the process controls
/// ([`kill`](super::Deployment::kill), [`freeze`](super::Deployment::freeze), ...) and
/// [`query`](super::Deployment::query) accept. `NodeId` and `SentinelId` convert into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProcessId {
    /// A data node.
    Node(NodeId),
    /// A sentinel.
    Sentinel(SentinelId),
}

impl NodeId {
    /// The position of the node in the deployment (0 is the first service's initial master).
    pub fn index(self) -> usize {
        self.0
    }
}

impl SentinelId {
    /// The position of the sentinel in the deployment.
    pub fn index(self) -> usize {
        self.0
    }
}

impl From<NodeId> for ProcessId {
    fn from(id: NodeId) -> Self {
        Self::Node(id)
    }
}

impl From<SentinelId> for ProcessId {
    fn from(id: SentinelId) -> Self {
        Self::Sentinel(id)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node-{}", self.0)
    }
}

impl fmt::Display for SentinelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sentinel-{}", self.0)
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Node(id) => id.fmt(f),
            Self::Sentinel(id) => id.fmt(f),
        }
    }
}
