//! What every part of the core acts with besides its own state: the configuration, and what it
//! may do to the world: start operations (each registered in the table of pending ops), queue
//! actions and events, set deadlines (jittered from the configuration's seed). The core owns
//! one and lends it to the part that acts.

use crate::action::Action;
use crate::config::Config;
use crate::event::Event;
use crate::op::{OpId, Ops, Pending};
use crate::rng::Rng;
use crate::timers::Timers;
use std::collections::VecDeque;

/// The configuration, the core's outputs in order, and the operations it waits for.
#[derive(Debug)]
pub(crate) struct Context {
    /// The configuration.
    pub(crate) cfg: Config,
    /// Op ids and what each pending one is for.
    pub(crate) ops: Ops,
    /// Deadlines by reason.
    pub(crate) timers: Timers,
    /// Jitter for every backoff and poll delay, seeded from the configuration.
    pub(crate) rng: Rng,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
}

impl Context {
    /// Nothing queued yet; jitter drawn from the configuration's seed.
    pub(crate) fn new(cfg: Config) -> Self {
        Self {
            rng: Rng::new(cfg.jitter_seed.unwrap_or(0)),
            cfg,
            ops: Ops::default(),
            timers: Timers::default(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

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
