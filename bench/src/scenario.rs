//! The failover scenarios of the writer and job workloads: their ids on the command line and
//! their labels in the tables.

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Scenario {
    /// `SENTINEL FAILOVER`.
    Graceful,
    /// The master killed with SIGKILL.
    Kill,
    /// The master frozen (SIGSTOP) for 3 s, then thawed.
    Freeze,
    /// `SENTINEL FAILOVER` led by a sentinel the client cannot reach (its address, configured
    /// and as the other sentinels announce it, leads to a port that closes every connection),
    /// so the client never hears the failover's early signals.
    LeaderUnheard,
}

impl Scenario {
    /// Every scenario of a default run, in table order (`leader-unheard` runs when asked for,
    /// with the writer workload only).
    pub(crate) const ALL: [Scenario; 3] = [Scenario::Graceful, Scenario::Kill, Scenario::Freeze];

    /// The id on the command line.
    pub(crate) fn id(self) -> &'static str {
        match self {
            Scenario::Graceful => "graceful",
            Scenario::Kill => "kill",
            Scenario::Freeze => "freeze",
            Scenario::LeaderUnheard => "leader-unheard",
        }
    }

    /// The label in the tables.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Scenario::Graceful => "graceful `SENTINEL FAILOVER`",
            Scenario::Kill => "master SIGKILL",
            Scenario::Freeze => "master frozen 3 s",
            Scenario::LeaderUnheard => "graceful, led by a sentinel the client cannot reach",
        }
    }

    /// The scenario of an id on the command line.
    pub(crate) fn parse(id: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .chain([Scenario::LeaderUnheard])
            .find(|s| s.id() == id)
            .ok_or_else(|| {
                format!("unknown scenario `{id}` (graceful, kill, freeze, leader-unheard)")
            })
    }
}
