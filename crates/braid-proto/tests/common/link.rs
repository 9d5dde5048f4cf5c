//! [`Link`]: one direction of [`EpNet`](super::EpNet)'s wire. Part of the shared harness;
//! see `conn_pair.rs`.

use braid_proto::time::{Duration, Instant};

/// A FIFO bottleneck with a one-way delay, a tail-drop queue and optional faults: every
/// n-th packet lost, seeded random loss, an outage, jitter (which reorders) and
/// duplication.
pub struct Link {
    /// Bytes per second; 0 = infinite.
    pub rate: u64,
    pub delay: Duration,
    /// Bytes the queue holds before the bottleneck; more are tail-dropped.
    pub queue_limit: usize,
    pub busy_until: Instant,
    pub drop_every: Option<u64>,
    /// Random loss probability in parts per million (seeded xorshift).
    pub loss_ppm: u32,
    /// Extra random delay per packet (reorders packets).
    pub jitter_us: u64,
    /// Deliver every Nth packet twice.
    pub dup_every: Option<u64>,
    /// Everything sent in this interval is lost (an outage).
    pub outage: Option<(Instant, Instant)>,
    pub rng: u64,
    /// Packets offered.
    pub count: u64,
    /// Packets lost, by any cause.
    pub dropped: u64,
}

impl Link {
    pub fn new(rate: u64, delay: Duration, queue_limit: usize, drop_every: Option<u64>) -> Link {
        Link {
            rate,
            delay,
            queue_limit,
            busy_until: Instant::ZERO,
            drop_every,
            loss_ppm: 0,
            jitter_us: 0,
            dup_every: None,
            outage: None,
            rng: 0x9E37_79B9_7F4A_7C15,
            count: 0,
            dropped: 0,
        }
    }

    /// [`EpNet`](super::EpNet)'s default: 100 Mbit/s, 5 ms one way, an unbounded queue.
    pub fn wire() -> Link {
        Link::new(12_500_000, Duration::from_millis(5), usize::MAX, None)
    }

    /// Offers a packet of `len` bytes at `now`; returns the arrival time of each copy that
    /// gets through (none when lost, two when duplicated).
    pub fn send(&mut self, now: Instant, len: usize) -> Vec<Instant> {
        self.count += 1;
        if let Some(n) = self.drop_every {
            if self.count % n == 0 {
                self.dropped += 1;
                return Vec::new();
            }
        }
        if self
            .outage
            .is_some_and(|(from, to)| now >= from && now < to)
        {
            self.dropped += 1;
            return Vec::new();
        }
        if self.loss_ppm > 0 && (self.next_rand() % 1_000_000) < u64::from(self.loss_ppm) {
            self.dropped += 1;
            return Vec::new();
        }
        let start = self.busy_until.max(now);
        let queued = start - now;
        if self.rate > 0 {
            let backlog = queued.as_secs_f64() * self.rate as f64;
            if backlog > self.queue_limit as f64 {
                self.dropped += 1;
                return Vec::new();
            }
            let tx = Duration::from_nanos(len as u64 * 1_000_000_000 / self.rate);
            self.busy_until = start + tx;
        } else {
            self.busy_until = start;
        }
        let mut at = self.busy_until + self.delay;
        if self.jitter_us > 0 {
            at += Duration::from_micros(self.next_rand() % self.jitter_us);
        }
        match self.dup_every {
            Some(n) if self.count % n == 0 => vec![at, at],
            _ => vec![at],
        }
    }

    fn next_rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}
