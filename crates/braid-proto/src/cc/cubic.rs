//! CUBIC congestion control, RFC 9438.

use super::CongestionControl;
use crate::time::{Duration, Instant};

//= rfc9438#5.1
//# C SHOULD be set to 0.4
const C: f64 = 0.4;
//= rfc9438#4.6
//# beta_cubic SHOULD be set to 0.7
const BETA: f64 = 0.7;

/// CUBIC (RFC 9438) with fast convergence and the Reno-friendly region. Windows are kept in
/// segments as floating point internally and exposed in bytes.
#[derive(Debug, Clone)]
pub struct Cubic {
    mss: usize,
    /// Congestion window in segments.
    cwnd: f64,
    /// Slow-start threshold in segments (infinite before the first loss).
    ssthresh: f64,
    /// W_max: the window before the last reduction, in segments.
    w_max: f64,
    /// cwnd just before the last reduction (for the α switch of §4.3).
    cwnd_prior: f64,
    /// K of §4.2, seconds.
    k: f64,
    /// Start of the current congestion-avoidance epoch.
    epoch_start: Option<Instant>,
    /// W_est of §4.3, segments.
    w_est: f64,
    fast_convergence: bool,
    /// State before the last congestion event, for undo.
    prior: Option<Box<Cubic>>,
}

impl Cubic {
    pub fn new(mss: usize, initial_window: usize) -> Self {
        let mss = mss.max(1);
        Cubic {
            mss,
            cwnd: (initial_window.max(mss) as f64) / mss as f64,
            ssthresh: f64::INFINITY,
            w_max: 0.0,
            cwnd_prior: 0.0,
            k: 0.0,
            epoch_start: None,
            w_est: 0.0,
            fast_convergence: true,
            prior: None,
        }
    }

    /// W_cubic(t) of RFC 9438 §4.2, in segments, for `t` seconds into the epoch.
    pub fn w_cubic(&self, t: f64) -> f64 {
        //= rfc9438#4.2
        //# W_cubic(t) = C*(t-K)^3 + W_max
        C * (t - self.k).powi(3) + self.w_max
    }

    /// K of the current epoch (seconds).
    pub fn k(&self) -> f64 {
        self.k
    }

    /// W_max (segments).
    pub fn w_max(&self) -> f64 {
        self.w_max
    }

    /// Enables or disables fast convergence (§4.7), on by default.
    pub fn set_fast_convergence(&mut self, on: bool) {
        self.fast_convergence = on;
    }

    fn reduce(&mut self) {
        //= rfc9438#4.7
        //# if cwnd < W_max and fast convergence enabled, W_max = cwnd * (1 + beta_cubic) / 2, else W_max = cwnd
        if self.fast_convergence && self.cwnd < self.w_max {
            self.w_max = self.cwnd * (1.0 + BETA) / 2.0;
        } else {
            self.w_max = self.cwnd;
        }
        self.cwnd_prior = self.cwnd;
        //= rfc9438#4.6
        //# ssthresh = cwnd * beta_cubic; cwnd = max(ssthresh, 2)
        self.ssthresh = (self.cwnd * BETA).max(2.0);
        self.epoch_start = None;
    }
}

impl CongestionControl for Cubic {
    fn on_ack(&mut self, now: Instant, acked: usize, rtt: Option<Duration>, _flight: usize) {
        let acked_segs = acked as f64 / self.mss as f64;
        if self.cwnd < self.ssthresh {
            //= rfc9438#4.10
            //# slow start as in RFC 5681 (with byte counting, RFC 3465, L = 2)
            self.cwnd += acked_segs.min(2.0);
            return;
        }
        let epoch = match self.epoch_start {
            Some(e) => e,
            None => {
                //= rfc9438#4.2
                //# K = cubic_root((W_max - cwnd_epoch)/C); t is measured from the start of congestion avoidance
                self.epoch_start = Some(now);
                if self.w_max > self.cwnd {
                    self.k = ((self.w_max - self.cwnd) / C).cbrt();
                } else {
                    self.k = 0.0;
                    self.w_max = self.cwnd;
                }
                self.w_est = self.cwnd;
                now
            }
        };
        let t = now.saturating_duration_since(epoch).as_secs_f64();
        let rtt = rtt.unwrap_or(Duration::from_millis(100)).as_secs_f64();
        //= rfc9438#4.3
        //# W_est = W_est + alpha_cubic * segments_acked / cwnd, alpha_cubic = 3(1-beta)/(1+beta), then 1 once W_est >= cwnd_prior
        let alpha = if self.w_est >= self.cwnd_prior {
            1.0
        } else {
            3.0 * (1.0 - BETA) / (1.0 + BETA)
        };
        self.w_est += alpha * acked_segs / self.cwnd;
        let w_t = self.w_cubic(t);
        if w_t < self.w_est {
            //= rfc9438#4.3
            //# if W_cubic(t) < W_est, cwnd = W_est (Reno-friendly region)
            self.cwnd = self.cwnd.max(self.w_est);
        } else {
            //= rfc9438#4.4
            //# target = W_cubic(t + RTT) bounded to [cwnd, 1.5 cwnd]; cwnd += (target - cwnd)/cwnd per ACK
            let target = self.w_cubic(t + rtt).clamp(self.cwnd, 1.5 * self.cwnd);
            self.cwnd += (target - self.cwnd) / self.cwnd * acked_segs;
        }
    }

    fn undo_congestion_event(&mut self) {
        if let Some(prior) = self.prior.take() {
            let cwnd = self.cwnd;
            *self = *prior;
            self.cwnd = self.cwnd.max(cwnd);
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, _flight: usize) {
        let mut saved = self.clone();
        saved.prior = None;
        self.prior = Some(Box::new(saved));
        self.reduce();
        self.cwnd = self.ssthresh;
    }

    fn on_rto(&mut self, _now: Instant, _flight: usize) {
        // Kept for an undo when the timeout proves spurious (RFC 3522/4015 via timestamps).
        let mut saved = self.clone();
        saved.prior = None;
        self.prior = Some(Box::new(saved));
        //= rfc9438#4.8
        //# on RTO: ssthresh and W_max as for a congestion event; cwnd = 1 segment, then slow start
        self.reduce();
        self.cwnd = 1.0;
    }

    fn exit_slow_start(&mut self, _now: Instant) {
        if self.cwnd < self.ssthresh {
            self.ssthresh = self.cwnd;
            self.epoch_start = None;
        }
    }

    fn cwnd(&self) -> usize {
        (self.cwnd * self.mss as f64) as usize
    }

    fn ssthresh(&self) -> usize {
        if self.ssthresh.is_finite() {
            (self.ssthresh * self.mss as f64) as usize
        } else {
            usize::MAX
        }
    }

    /// Counts the window in segments of `mss` bytes from now on, keeping it in bytes. The
    /// state kept for an undo is converted too: an undo after the MSS changed (the MPTCP
    /// option reservation, a fallback to plain TCP) must restore the window in the current
    /// unit, not in a stale one (one segment of the old, smaller unit is less than one
    /// full segment of the new one and lets nothing go after a timeout).
    fn set_mss(&mut self, mss: usize) {
        let mss = mss.max(1);
        let bytes = self.cwnd * self.mss as f64;
        self.mss = mss;
        self.cwnd = (bytes / mss as f64).max(1.0);
        if let Some(p) = self.prior.as_mut() {
            p.set_mss(mss);
        }
    }

    fn name(&self) -> &'static str {
        "cubic"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1000;

    fn in_ca(w: f64) -> Cubic {
        let mut c = Cubic::new(MSS, (w as usize) * MSS);
        c.on_congestion_event(Instant::ZERO, 0);
        c
    }

    #[test]
    fn reduction_uses_beta_and_k_formula() {
        let mut c = in_ca(100.0);
        assert_eq!(c.cwnd(), 70 * MSS);
        assert_eq!(c.ssthresh(), 70 * MSS);
        assert!((c.w_max() - 100.0).abs() < 1e-9);
        c.on_ack(
            Instant::from_millis(1),
            MSS,
            Some(Duration::from_millis(100)),
            0,
        );
        // K = cbrt(W_max * (1 - beta) / C) = cbrt(75)
        assert!((c.k() - 75f64.cbrt()).abs() < 1e-6, "{}", c.k());
    }

    /// The MSS changes between a timeout and its undo (an MPTCP subflow that falls back
    /// drops its option reservation): the restored window is in the new unit, and a
    /// one-segment window after a later timeout is one segment of the new size.
    #[test]
    fn an_undo_after_the_mss_changed_restores_the_window_in_bytes() {
        let mut c = Cubic::new(1420, 10 * 1420);
        c.on_rto(Instant::ZERO, 10 * 1420);
        c.set_mss(1448);
        assert_eq!(c.cwnd(), 1448, "one segment of the new size");
        c.undo_congestion_event();
        assert_eq!(
            c.cwnd(),
            10 * 1420,
            "the window before the timeout, in bytes"
        );
        c.on_rto(Instant::ZERO, 10 * 1420);
        assert_eq!(c.cwnd(), 1448, "one full segment, not one of the old size");
    }

    #[test]
    fn fast_convergence_lowers_w_max() {
        let mut c = in_ca(100.0);
        // a second loss below W_max: W_max = 70 * (1 + 0.7) / 2 = 59.5
        c.on_congestion_event(Instant::ZERO, 0);
        assert!((c.w_max() - 59.5).abs() < 1e-9);
        assert_eq!(c.cwnd(), 49 * MSS);
    }

    #[test]
    fn window_follows_cubic_curve() {
        let mut c = in_ca(1000.0);
        let rtt = Duration::from_millis(50);
        let mut now = Instant::ZERO;
        let k = (1000.0f64 * 0.3 / 0.4).cbrt();
        // ack one cwnd per RTT until t = K
        while now.as_secs_f64() < k {
            let segs = c.cwnd() / MSS;
            for _ in 0..segs {
                c.on_ack(now, MSS, Some(rtt), c.cwnd());
            }
            now += rtt;
        }
        let w = c.cwnd() as f64 / MSS as f64;
        // At t = K the curve reaches W_max (concave region is entered from below).
        assert!((w - 1000.0).abs() < 25.0, "cwnd {w} segments at t=K");
        // Beyond K the convex region grows above W_max following C (t-K)^3.
        for _ in 0..40 {
            let segs = c.cwnd() / MSS;
            for _ in 0..segs {
                c.on_ack(now, MSS, Some(rtt), c.cwnd());
            }
            now += rtt;
        }
        let t = now.as_secs_f64();
        let expect = 0.4 * (t - k).powi(3) + 1000.0;
        let w = c.cwnd() as f64 / MSS as f64;
        assert!(
            w > 1000.0 && (w - expect).abs() / expect < 0.05,
            "{w} vs {expect}"
        );
    }

    #[test]
    fn reno_friendly_region_on_small_windows() {
        // Small W_max and long RTT: the Reno estimate dominates the cubic curve.
        let mut c = in_ca(10.0);
        let rtt = Duration::from_millis(500);
        let mut now = Instant::ZERO;
        for _ in 0..20 {
            let segs = c.cwnd() / MSS;
            for _ in 0..segs {
                c.on_ack(now, MSS, Some(rtt), c.cwnd());
            }
            now += Duration::from_millis(1);
        }
        // After ~20 windows, W_est grew by about alpha (0.53) then 1 segment per window.
        let w = c.cwnd() as f64 / MSS as f64;
        assert!(w > 7.0 + 10.0 && w < 7.0 + 20.0, "{w}");
    }

    #[test]
    fn undo_restores_the_window_before_the_event() {
        let mut c = Cubic::new(MSS, 100 * MSS);
        c.on_congestion_event(Instant::ZERO, 0);
        assert_eq!(c.cwnd(), 70 * MSS);
        c.undo_congestion_event();
        assert_eq!(c.cwnd(), 100 * MSS);
        assert_eq!(c.ssthresh(), usize::MAX);
        // Nothing left to undo.
        c.undo_congestion_event();
        assert_eq!(c.cwnd(), 100 * MSS);
        // A spurious timeout is undone the same way.
        c.on_rto(Instant::ZERO, 0);
        assert_eq!(c.cwnd(), MSS);
        c.undo_congestion_event();
        assert_eq!(c.cwnd(), 100 * MSS);
    }

    #[test]
    fn rto_resets_to_one_segment_then_slow_start() {
        let mut c = Cubic::new(MSS, 10 * MSS);
        c.on_rto(Instant::ZERO, 0);
        assert_eq!(c.cwnd(), MSS);
        assert_eq!(c.ssthresh(), 7 * MSS);
        c.on_ack(Instant::ZERO, MSS, None, MSS);
        assert_eq!(c.cwnd(), 2 * MSS);
    }
}
