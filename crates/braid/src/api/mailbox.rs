//! A worker's mailbox (see `workers.rs`): what the other workers hand it, packets that
//! reached their queues but belong to its connections and (for the first worker) monitor
//! events, with the waker that brings its driver to them.

use std::sync::Mutex;
use std::task::Waker;

use crate::ctl::MonitorEvent;
use crate::sync::lock;

/// A packet another worker passed on.
pub(crate) struct Passed {
    /// The path it arrived on.
    pub iface: usize,
    /// How many workers passed it on (the last on the round answers it).
    pub passed: u8,
    pub packet: Vec<u8>,
}

/// What other workers hand a worker: packets, and (for the first worker) monitor events.
#[derive(Default)]
pub(crate) struct Mailbox {
    pub packets: Vec<Passed>,
    pub events: Vec<MonitorEvent>,
    waker: Option<Waker>,
}

impl Mailbox {
    /// Takes what waits into `packets` and `events`, and remembers who to wake for more.
    pub fn take(
        mailbox: &Mutex<Mailbox>,
        waker: &Waker,
        packets: &mut Vec<Passed>,
        events: &mut Vec<MonitorEvent>,
    ) {
        let mut m = lock(mailbox);
        packets.append(&mut m.packets);
        events.append(&mut m.events);
        if !m.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            m.waker = Some(waker.clone());
        }
    }

    /// Wakes the owner (to look at its peers again).
    pub fn wake(mailbox: &Mutex<Mailbox>) {
        let waker = lock(mailbox).waker.clone();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Leaves something, waking the owner when the mailbox was empty (a worker empties
    /// its mailbox each time it runs).
    pub fn put(mailbox: &Mutex<Mailbox>, f: impl FnOnce(&mut Mailbox)) {
        let waker = {
            let mut m = lock(mailbox);
            let was_empty = m.packets.is_empty() && m.events.is_empty();
            f(&mut m);
            if was_empty {
                m.waker.clone()
            } else {
                None
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}
