//! NewReno window increase, RFC 5681 §3.1, with Appropriate Byte Counting (RFC 3465).

use super::CongestionControl;
use crate::time::{Duration, Instant};

/// RFC 5681 congestion control with byte counting.
#[derive(Debug, Clone)]
pub struct Reno {
    mss: usize,
    cwnd: usize,
    ssthresh: usize,
    /// Bytes acknowledged in congestion avoidance since the last increase.
    acked_accum: usize,
    /// (cwnd, ssthresh) before the last congestion event, for undo.
    prior: Option<(usize, usize)>,
}

impl Reno {
    pub fn new(mss: usize, initial_window: usize) -> Self {
        Reno {
            mss: mss.max(1),
            cwnd: initial_window.max(mss),
            ssthresh: usize::MAX,
            acked_accum: 0,
            prior: None,
        }
    }
}

impl CongestionControl for Reno {
    fn on_ack(&mut self, _now: Instant, acked: usize, _rtt: Option<Duration>, _flight: usize) {
        if self.cwnd < self.ssthresh {
            //= rfc3465#2.2
            //# cwnd is increased by min(N, L*SMSS) where N is the number of previously unacknowledged bytes (L = 2)
            self.cwnd += acked.min(2 * self.mss);
        } else {
            //= rfc5681#3.1
            //# cwnd += SMSS once per RTT in congestion avoidance (byte counting: per cwnd bytes acked)
            self.acked_accum += acked;
            if self.acked_accum >= self.cwnd {
                self.acked_accum -= self.cwnd;
                self.cwnd += self.mss;
            }
        }
    }

    fn undo_congestion_event(&mut self) {
        if let Some((cwnd, ssthresh)) = self.prior.take() {
            self.cwnd = self.cwnd.max(cwnd);
            self.ssthresh = ssthresh;
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, flight: usize) {
        self.prior = Some((self.cwnd, self.ssthresh));
        //= rfc5681#3.1
        //# ssthresh = max (FlightSize / 2, 2*SMSS)
        self.ssthresh = (flight / 2).max(2 * self.mss);
        self.cwnd = self.ssthresh;
        self.acked_accum = 0;
    }

    fn on_rto(&mut self, _now: Instant, flight: usize) {
        // Kept for an undo when the timeout proves spurious (RFC 3522/4015 via timestamps).
        self.prior = Some((self.cwnd, self.ssthresh));
        //= rfc5681#3.1
        //# on timeout ssthresh = max (FlightSize / 2, 2*SMSS) and cwnd = 1 full-sized segment
        self.ssthresh = (flight / 2).max(2 * self.mss);
        self.cwnd = self.mss;
        self.acked_accum = 0;
    }

    fn exit_slow_start(&mut self, _now: Instant) {
        if self.cwnd < self.ssthresh {
            self.ssthresh = self.cwnd;
        }
    }

    fn cwnd(&self) -> usize {
        self.cwnd
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    fn set_mss(&mut self, mss: usize) {
        self.mss = mss.max(1);
        self.cwnd = self.cwnd.max(self.mss);
    }

    fn name(&self) -> &'static str {
        "reno"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_abc_and_avoidance() {
        let now = Instant::ZERO;
        let mut r = Reno::new(1000, 10_000);
        // ABC caps one ACK's increase at 2*SMSS.
        r.on_ack(now, 5000, None, 10_000);
        assert_eq!(r.cwnd(), 12_000);
        r.on_ack(now, 1000, None, 10_000);
        assert_eq!(r.cwnd(), 13_000);
        r.on_congestion_event(now, 20_000);
        assert_eq!(r.ssthresh(), 10_000);
        assert_eq!(r.cwnd(), 10_000);
        // one MSS per cwnd of acknowledged bytes
        for _ in 0..9 {
            r.on_ack(now, 1000, None, 10_000);
        }
        assert_eq!(r.cwnd(), 10_000);
        r.on_ack(now, 1000, None, 10_000);
        assert_eq!(r.cwnd(), 11_000);
        r.on_rto(now, 3000);
        assert_eq!(r.cwnd(), 1000);
        assert_eq!(r.ssthresh(), 2000);
    }
}
