//! Congestion control behind a trait: [`Reno`] (RFC 5681 with ABC, RFC 3465) and [`Cubic`]
//! (RFC 9438, the default, like Linux).
//!
//! The TCP engine ([`crate::tcp::Tcb`]) owns one `Box<dyn CongestionControl>` per subflow and
//! calls it at exactly these points:
//! - [`CongestionControl::on_ack`] for every ACK that acknowledges new data outside fast
//!   recovery, and only while the sender was window-limited (an application-limited sender
//!   does not grow its window);
//! - [`CongestionControl::on_congestion_event`] once when fast recovery starts (RFC 6675 /
//!   RFC 6582);
//! - [`CongestionControl::on_rto`] on the first retransmission timeout of a series;
//! - [`CongestionControl::exit_slow_start`] when the engine's HyStart++ (RFC 9406) delay
//!   detector sees the RTT of a round grow, so slow start ends before the queue overflows.
//!
//! During fast recovery the engine does not grow the window: it sends while
//! `pipe < cwnd()` (RFC 6675) and returns to normal increases after the recovery point.
//!
//! # Coupled congestion control (MPTCP, planned)
//!
//! RFC 6356 (LIA) and OLIA need, on every ACK of one subflow, the windows and RTTs of all
//! subflows of the connection. The trait is shaped for that: every method takes `&mut self`
//! and receives `now` and the RTT, and a coupled controller is simply an implementation that
//! also holds a handle to a per-connection shared table (one entry per subflow, updated by
//! each subflow's controller on every call, e.g. `Arc<Mutex<CoupledGroup>>` keyed by a subflow
//! index). The connection layer builds those controllers and installs them with
//! [`crate::tcp::Tcb::set_congestion_control`]; nothing in the subflow engine changes.

mod cubic;
mod reno;

pub use cubic::Cubic;
pub use reno::Reno;

use crate::time::{Duration, Instant};

/// Which congestion controller a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CcAlgorithm {
    /// NewReno increase per RFC 5681 with Appropriate Byte Counting (RFC 3465, L = 2).
    Reno,
    /// CUBIC, RFC 9438 (β = 0.7, C = 0.4, fast convergence, Reno-friendly region).
    #[default]
    Cubic,
}

impl CcAlgorithm {
    /// Builds a controller for a subflow with this MSS and initial window (bytes).
    pub fn build(self, mss: usize, initial_window: usize) -> Box<dyn CongestionControl> {
        match self {
            CcAlgorithm::Reno => Box::new(Reno::new(mss, initial_window)),
            CcAlgorithm::Cubic => Box::new(Cubic::new(mss, initial_window)),
        }
    }
}

impl core::fmt::Display for CcAlgorithm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            CcAlgorithm::Reno => "reno",
            CcAlgorithm::Cubic => "cubic",
        })
    }
}

impl core::str::FromStr for CcAlgorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "reno" | "newreno" => Ok(CcAlgorithm::Reno),
            "cubic" => Ok(CcAlgorithm::Cubic),
            _ => Err(UnknownAlgorithm),
        }
    }
}

/// A congestion-control name that is not known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown congestion control algorithm")]
pub struct UnknownAlgorithm;

/// A congestion controller of one subflow. Windows are in bytes.
pub trait CongestionControl: core::fmt::Debug + Send {
    /// `acked` new bytes were acknowledged at `now`; `rtt` is the smoothed RTT if known and
    /// `bytes_in_flight` what was outstanding before this ACK.
    fn on_ack(&mut self, now: Instant, acked: usize, rtt: Option<Duration>, bytes_in_flight: usize);
    /// A loss was detected by duplicate ACKs or SACK: fast recovery starts.
    fn on_congestion_event(&mut self, now: Instant, bytes_in_flight: usize);
    /// The retransmission timer expired (first expiry of a series).
    fn on_rto(&mut self, now: Instant, bytes_in_flight: usize);
    /// The last congestion event was spurious (the "lost" segment was only reordered, as
    /// the timestamps showed, RFC 3522 style): restore the state from before it. Controllers
    /// that cannot undo keep their reduced window (the default).
    fn undo_congestion_event(&mut self) {}
    /// Slow start should end now (HyStart++ saw the RTT grow, RFC 9406): ssthresh = cwnd.
    fn exit_slow_start(&mut self, now: Instant);
    /// The congestion window.
    fn cwnd(&self) -> usize;
    /// The slow-start threshold (`usize::MAX` before the first loss).
    fn ssthresh(&self) -> usize;
    /// The sender's MSS changed (after the handshake).
    fn set_mss(&mut self, mss: usize);
    /// A pacing rate in bytes per second, if the controller wants its own. With `None` (the
    /// default) the engine paces at 2 × cwnd / SRTT in slow start and 1.2 × after, when
    /// `TcpConfig::pacing` is on.
    fn pacing_rate(&self, _srtt: Option<Duration>) -> Option<u64> {
        None
    }
    /// The algorithm's name, for reports.
    fn name(&self) -> &'static str;
}
