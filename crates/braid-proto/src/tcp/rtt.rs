//! Round-trip time estimation and the retransmission timeout, RFC 6298.

use crate::time::Duration;

/// The RTT estimator and RTO of one subflow.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    min_rtt: Option<Duration>,
    latest: Option<Duration>,
    rto: Duration,
    min_rto: Duration,
    max_rto: Duration,
}

/// Clock granularity G of RFC 6298 §2 (the engine's clock is in microseconds; timestamps in
/// milliseconds).
const GRANULARITY: Duration = Duration::from_millis(1);

impl RttEstimator {
    pub fn new(initial_rto: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            min_rtt: None,
            latest: None,
            rto: initial_rto.clamp(min_rto, max_rto.max(min_rto)),
            min_rto,
            max_rto: max_rto.max(min_rto),
        }
    }

    /// Feeds one RTT measurement.
    pub fn sample(&mut self, r: Duration) {
        self.latest = Some(r);
        self.min_rtt = Some(self.min_rtt.map_or(r, |m| m.min(r)));
        match self.srtt {
            None => {
                //= rfc6298#2.2
                //# SRTT <- R, RTTVAR <- R/2, RTO <- SRTT + max (G, K*RTTVAR)
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                //= rfc6298#2.3
                //# RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|, SRTT <- (1 - alpha) * SRTT + alpha * R'
                let diff = srtt.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((srtt * 7 + r) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        //= rfc6298#2.4
        //# Whenever RTO is computed, if it is less than 1 second, then the RTO SHOULD be rounded up to 1 second.
        // Like Linux, braid uses a configurable lower bound (200 ms by default) instead of 1 s.
        self.rto = (srtt + GRANULARITY.max(self.rttvar * 4)).clamp(self.min_rto, self.max_rto);
    }

    /// Smoothed RTT, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// Lowest RTT seen.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// Latest sample.
    pub fn latest(&self) -> Option<Duration> {
        self.latest
    }

    /// RTT variation.
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// The base RTO (without backoff).
    pub fn rto(&self) -> Duration {
        self.rto
    }

    /// The RTO after `backoff` consecutive expirations (doubling each time, RFC 6298 §5.5),
    /// bounded by the maximum.
    pub fn backed_off(&self, backoff: u32) -> Duration {
        let factor = 1u32 << backoff.min(16);
        self.rto.saturating_mul(factor).min(self.max_rto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6298_first_and_later_samples() {
        let mut r = RttEstimator::new(
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(60),
        );
        assert_eq!(r.rto(), Duration::from_secs(1));
        r.sample(Duration::from_millis(100));
        assert_eq!(r.srtt(), Some(Duration::from_millis(100)));
        assert_eq!(r.rttvar(), Duration::from_millis(50));
        // 100 + 4*50 = 300
        assert_eq!(r.rto(), Duration::from_millis(300));
        r.sample(Duration::from_millis(200));
        // rttvar = (3*50 + 100)/4 = 62.5; srtt = (7*100 + 200)/8 = 112.5
        assert_eq!(r.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(r.rttvar(), Duration::from_micros(62_500));
        assert_eq!(r.rto(), Duration::from_micros(362_500));
        assert_eq!(r.backed_off(2), Duration::from_micros(1_450_000));
    }

    #[test]
    fn min_rto_applies() {
        let mut r = RttEstimator::new(
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(60),
        );
        r.sample(Duration::from_millis(1));
        assert_eq!(r.rto(), Duration::from_millis(200));
        assert_eq!(r.backed_off(30), Duration::from_secs(60));
    }
}
