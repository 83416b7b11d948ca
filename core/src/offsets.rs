//! Lost writes made visible: the replication offset of the old master at the fence against
//! the offset of the new master when it was verified. Redis replicates asynchronously, so a
//! replica promoted behind its master's offset lacks the writes in between, writes the old
//! master acknowledged. Offsets only move forward across a promotion (the promoted replica's
//! `master_repl_offset` continues the old master's stream), so a new master verified at a
//! lower offset than the old master reported proves that many bytes of the stream lost. The
//! check never reports a loss that did not happen: the old master's offset is the last it
//! reported (a lower bound of what it acknowledged), the new master's is read after its
//! promotion (an upper bound of what it had then).

use crate::action::OpId;
use crate::addr::Addr;
use crate::event::Event;

/// What the core knows of replication offsets.
#[derive(Debug, Default)]
pub(crate) struct Offsets {
    /// The offset a master last reported in a `ROLE` reply, with its address.
    last: Option<(Addr, u64)>,
    /// The `ROLE` poll of the master in use sent at the fence, if not answered yet.
    fence_probe: Option<(OpId, Addr)>,
    /// A switch that moved from `old` to `new`, verified at `new_offset`, waiting for the old
    /// master's answer to the fence probe.
    moved: Option<(Addr, Addr, u64)>,
}

impl Offsets {
    /// The fence polls the master in use with `op`.
    pub(crate) fn fenced(&mut self, op: OpId, master: Addr) {
        self.fence_probe = Some((op, master));
    }

    /// Whether `op` is the fence's poll of the old master.
    pub(crate) fn is_fence_probe(&self, op: OpId) -> bool {
        self.fence_probe.as_ref().is_some_and(|(p, _)| *p == op)
    }

    /// `node` reported `offset` as master.
    pub(crate) fn observed(&mut self, node: &Addr, offset: u64) {
        self.last = Some((node.clone(), offset));
    }

    /// The fence's poll answered (`Some(offset)` when the old master still said master), or
    /// failed: a switch that waited for it is checked now.
    pub(crate) fn fence_probe_done(&mut self, offset: Option<u64>) -> Option<Event> {
        let (_, node) = self.fence_probe.take()?;
        if let Some(offset) = offset {
            self.observed(&node, offset);
        }
        let (old, new, new_offset) = self.moved.take()?;
        self.check(old, new, new_offset)
    }

    /// The master in use moved from `old` to `new`, whose `ROLE` reported `new_offset` when it
    /// was verified: a loss is reported now, or once the fence's poll of `old` answered.
    pub(crate) fn activated(
        &mut self,
        old: Option<&Addr>,
        new: &Addr,
        new_offset: Option<u64>,
    ) -> Option<Event> {
        let result = match (old, new_offset) {
            (Some(old), Some(offset)) if old != new => {
                if self.fence_probe.as_ref().is_some_and(|(_, n)| n == old) {
                    self.moved = Some((old.clone(), new.clone(), offset));
                    None
                } else {
                    self.check(old.clone(), new.clone(), offset)
                }
            }
            _ => None,
        };
        if let Some(offset) = new_offset {
            self.observed(new, offset);
        }
        result
    }

    fn check(&self, old: Addr, new: Addr, new_offset: u64) -> Option<Event> {
        let (_, old_offset) = self.last.as_ref().filter(|(a, _)| *a == old)?;
        (*old_offset > new_offset).then(|| Event::WritesLost {
            bytes: old_offset - new_offset,
            old,
            new,
            old_offset: *old_offset,
            new_offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> Addr {
        Addr::new("127.0.0.1", port)
    }

    #[test]
    fn a_new_master_behind_the_old_one_is_reported_once() {
        let mut o = Offsets::default();
        o.observed(&a(1), 100);
        o.fenced(OpId(1), a(1));
        // Activated before the fence's poll answered: reported with the answer.
        assert_eq!(o.activated(Some(&a(1)), &a(2), Some(90)), None);
        let Some(Event::WritesLost { bytes, .. }) = o.fence_probe_done(Some(130)) else {
            panic!("a loss")
        };
        assert_eq!(bytes, 40);
        assert_eq!(o.fence_probe_done(Some(130)), None, "once");
        // The poll answered first; the new master ahead of it: nothing lost.
        o.fenced(OpId(2), a(2));
        assert_eq!(o.fence_probe_done(Some(200)), None);
        assert_eq!(o.activated(Some(&a(2)), &a(3), Some(250)), None);
        // The old master's poll failed (killed): the last offset it reported decides.
        o.fenced(OpId(3), a(3));
        assert_eq!(o.fence_probe_done(None), None);
        assert!(matches!(
            o.activated(Some(&a(3)), &a(1), Some(240)),
            Some(Event::WritesLost { bytes: 10, .. })
        ));
        // Nothing known of the old master: nothing reported.
        assert_eq!(o.activated(Some(&a(4)), &a(5), Some(0)), None);
    }
}
