//! What the endpoint has to do next, kept per connection so that its work is per event and
//! never a walk over every connection: the connections that may have a packet to send (a
//! FIFO, so that they take turns), and every connection's next deadline (ordered, so that
//! the earliest is at hand and the due ones are found without a scan).
//!
//! A connection is marked ready after anything that may give it something to send (a
//! packet for it, an application call, a timer, a path-manager command: every path ends in
//! `Endpoint::sync`), and leaves the queue when asked for a packet and it has none. Its
//! deadline is refreshed at the same points.

use std::collections::{BTreeSet, VecDeque};

use crate::time::Instant;

#[derive(Debug, Default)]
pub(super) struct Agenda {
    /// Connections (slot indices) that may have a packet to send, oldest first.
    ready: VecDeque<usize>,
    /// `queued[i]`: slot `i` is in `ready`.
    queued: Vec<bool>,
    /// (deadline, slot) of every connection with a timer.
    timers: BTreeSet<(Instant, usize)>,
    /// Each slot's deadline as filed in `timers`.
    deadline: Vec<Option<Instant>>,
}

impl Agenda {
    fn grow(&mut self, idx: usize) {
        if self.queued.len() <= idx {
            self.queued.resize(idx + 1, false);
            self.deadline.resize(idx + 1, None);
        }
    }

    /// Slot `idx` may have something to send.
    pub fn mark(&mut self, idx: usize) {
        self.grow(idx);
        if !self.queued[idx] {
            self.queued[idx] = true;
            self.ready.push_back(idx);
        }
    }

    /// The next connection to ask for a packet (it leaves the queue; mark it again if it
    /// sent one).
    pub fn pop(&mut self) -> Option<usize> {
        let idx = self.ready.pop_front()?;
        if let Some(q) = self.queued.get_mut(idx) {
            *q = false;
        }
        Some(idx)
    }

    /// Connections waiting to be asked.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Files slot `idx`'s next deadline (`None`: no timer).
    pub fn set_deadline(&mut self, idx: usize, t: Option<Instant>) {
        self.grow(idx);
        if self.deadline[idx] == t {
            return;
        }
        if let Some(old) = self.deadline[idx] {
            self.timers.remove(&(old, idx));
        }
        if let Some(t) = t {
            self.timers.insert((t, idx));
        }
        self.deadline[idx] = t;
    }

    /// The earliest deadline of any connection.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|&(t, _)| t)
    }

    /// The connections whose deadline is `now` or earlier, earliest first.
    pub fn due(&self, now: Instant) -> Vec<usize> {
        self.timers
            .range(..=(now, usize::MAX))
            .map(|&(_, idx)| idx)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    #[test]
    fn ready_connections_take_turns_and_are_queued_once() {
        let mut a = Agenda::default();
        a.mark(3);
        a.mark(1);
        a.mark(3);
        assert_eq!(a.ready_len(), 2);
        assert_eq!(a.pop(), Some(3));
        a.mark(3);
        assert_eq!(a.pop(), Some(1));
        assert_eq!(a.pop(), Some(3));
        assert_eq!(a.pop(), None);
    }

    #[test]
    fn deadlines_are_ordered_moved_and_dropped() {
        let t = |ms| Instant::ZERO + Duration::from_millis(ms);
        let mut a = Agenda::default();
        a.set_deadline(0, Some(t(30)));
        a.set_deadline(1, Some(t(10)));
        a.set_deadline(2, Some(t(20)));
        assert_eq!(a.next_deadline(), Some(t(10)));
        assert_eq!(a.due(t(20)), vec![1, 2]);
        a.set_deadline(1, Some(t(40)));
        a.set_deadline(2, None);
        assert_eq!(a.next_deadline(), Some(t(30)));
        assert_eq!(a.due(t(35)), vec![0]);
        a.set_deadline(0, None);
        a.set_deadline(1, None);
        assert_eq!(a.next_deadline(), None);
    }
}
