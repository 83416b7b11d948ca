//! Operation ids: what correlates an action with its completions.

use std::fmt;

/// Correlates an action with its completion. Completions carrying an id the core no longer
/// waits for (late, duplicate or superseded) are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u64);

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}
