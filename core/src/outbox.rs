//! What the parts of the core may do besides changing their own state: start operations (each
//! registered in the table of pending ops), queue actions and events, set deadlines. The core
//! owns one and lends it to the part that acts.

use crate::action::Action;
use crate::event::Event;
use crate::op::{OpId, Ops, Pending};
use crate::timers::Timers;
use std::collections::VecDeque;

/// The core's outputs, in order, and the operations it waits for.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// Op ids and what each pending one is for.
    pub(crate) ops: Ops,
    /// Deadlines by reason.
    pub(crate) timers: Timers,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
}

impl Outbox {
    /// Queues an action.
    pub(crate) fn act(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    /// Queues an event.
    pub(crate) fn emit(&mut self, event: Event) {
        self.events.push_back(event);
    }

    /// A new op id, pending for `what`.
    pub(crate) fn start(&mut self, what: Pending) -> OpId {
        self.ops.start(what)
    }

    /// The next action, in order.
    pub(crate) fn next_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event, in order.
    pub(crate) fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}
